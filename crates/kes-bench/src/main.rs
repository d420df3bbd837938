#![forbid(unsafe_code)]
//! Load generator for KES-compatible servers (see issue: kes-bench).
fn main() {}
