#![forbid(unsafe_code)]
//! Async Rust SDK for the KES HTTP API.
