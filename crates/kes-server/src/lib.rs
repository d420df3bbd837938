#![forbid(unsafe_code)]
//! The KES HTTPS server.
