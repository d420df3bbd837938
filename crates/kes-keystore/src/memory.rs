//! The in-memory key store of `kes server --dev` and of tests.
//! SKELETON: to be filled in (issue 3).
