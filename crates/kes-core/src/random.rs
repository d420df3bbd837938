//! The one random source of KES: keys, ivs and nonces, API keys,
//! certificate serials, PEM encryption ivs, and the client's retry jitter.

use rand::Rng as _;

/// Fills `buf` from a CSPRNG: rand's thread-local ChaCha12 generator, seeded
/// from the OS and reseeded from it every 64 KiB of output. A system call per
/// ciphertext cost ~40% of an encryption (docs/performance.md). Randomness is
/// not optional for a KES, so if the OS cannot seed it the call panics.
pub fn fill(buf: &mut [u8]) {
    rand::rng().fill_bytes(buf);
}
