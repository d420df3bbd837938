//! The integration tests of kes-bench, one module per subject, in
//! one binary so that the test build links once per crate.

mod smoke;
