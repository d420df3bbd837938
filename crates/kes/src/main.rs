#![forbid(unsafe_code)]
//! The `kes` command.
fn main() {}
