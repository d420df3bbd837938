//! Certificate generation: `kes identity new` and the API-key client
//! certificate.
//!
//! SKELETON: bodies to be filled in (issue 2).

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The underlying generator failed.
    #[error("failed to create certificate: {0}")]
    Generate(String),
}
