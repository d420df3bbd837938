//! The integration tests of kes-client, one module per subject, in
//! one binary so that the test build links once per crate.

mod offline;
