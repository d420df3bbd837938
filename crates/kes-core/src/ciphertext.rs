//! Ciphertext formats: the current raw format `sealed || iv16 || nonce12`,
//! and the legacy JSON and MessagePack formats (spec §8.4-8.5).
//!
//! SKELETON: bodies to be filled in (issue 2).
