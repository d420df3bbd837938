//! The integration tests of kes-server, one module per subject, in
//! one binary so that the test build links once per crate.

mod common;
mod go_base64;
mod listing;
mod offline;
mod seal;
