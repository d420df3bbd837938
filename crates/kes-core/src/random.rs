//! The one random source of KES: keys, ivs and nonces, API keys,
//! certificate serials, PEM encryption ivs, and the client's retry jitter.

/// Fills `buf` from a CSPRNG: rand's thread-local ChaCha12 generator, seeded
/// from the OS and reseeded from it every 64 KiB of output. A system call per
/// ciphertext cost ~40% of an encryption (docs/performance.md). Randomness is
/// not optional for a KES, so if the OS cannot seed it the call panics.
#[cfg(feature = "crypto")]
pub fn fill(buf: &mut [u8]) {
    use rand::Rng as _;
    rand::rng().fill_bytes(buf);
}

/// Fills `buf` from aws-lc's CSPRNG. Without `crypto` (the SDK) nothing
/// here makes ciphertexts, so the generator TLS already carries serves and
/// the SDK compiles no ChaCha. Panics if it cannot be seeded.
#[cfg(not(feature = "crypto"))]
pub fn fill(buf: &mut [u8]) {
    aws_lc_rs::rand::fill(buf).expect("the system's random source failed");
}
