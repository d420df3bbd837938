//! The integration tests of kes-keystore, one module per subject, in
//! one binary so that the test build links once per crate.

mod aws;
mod cache;
mod fs;
mod interleave;
mod memory;
mod rotation;
mod vault;
