//! The fs key store: one file per key in a directory.
//! SKELETON: to be filled in (issue 3).
