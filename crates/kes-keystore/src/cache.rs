//! The key cache in front of every key store.
//! SKELETON: to be filled in (issue 3).
