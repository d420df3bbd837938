//! The algorithm of a secret key: its names and which one new keys get.

use std::fmt;

/// The algorithm of a secret key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// AES-256-GCM with an HMAC-SHA256-derived per-message key.
    Aes256,
    /// ChaCha20-Poly1305 with an HChaCha20-derived per-message key.
    ChaCha20,
}

impl KeyAlgorithm {
    /// The name describe reports: `AES256` or `ChaCha20`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Aes256 => "AES256",
            KeyAlgorithm::ChaCha20 => "ChaCha20",
        }
    }

    /// Parses `AES256`, `AES256-GCM_SHA256`, `ChaCha20`, `XCHACHA20-POLY1305`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "AES256" | "AES256-GCM_SHA256" => Some(KeyAlgorithm::Aes256),
            "ChaCha20" | "XCHACHA20-POLY1305" => Some(KeyAlgorithm::ChaCha20),
            _ => None,
        }
    }

    /// The algorithm new keys get: AES256 where the CPU has AES-GCM
    /// instructions, else ChaCha20.
    pub fn default_for_cpu() -> Self {
        if cpu_has_aes_gcm() {
            KeyAlgorithm::Aes256
        } else {
            KeyAlgorithm::ChaCha20
        }
    }
}

/// Without AES and carry-less multiply instructions AES-GCM is both slow and
/// (in portable code) harder to keep constant-time, so ChaCha20 wins there.
fn cpu_has_aes_gcm() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        // Rust's `aes` feature on aarch64 includes PMULL.
        std::arch::is_aarch64_feature_detected!("aes")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
