//! PEM decoding of certificates and private keys, including legacy
//! RFC 1423 encrypted private keys (`Proc-Type: 4,ENCRYPTED`).
//!
//! SKELETON: bodies to be filled in (issue 2).
