#![warn(missing_docs)]
//! Async Rust SDK for the KES HTTP API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kes_client::Error> {
//! let api_key = kes_core::ApiKey::parse("kes:v1:AGaV6VXHasF0FnaB60WdCOeTZ8eTIDikL4zlN16c8NAs").unwrap();
//! let client = kes_client::Client::builder()
//!     .endpoints(["127.0.0.1:7373"])
//!     .api_key(&api_key)
//!     .build()?;
//! client.create_key("my-key").await?;
//! let dek = client.generate_key("my-key", b"").await?;
//! let plaintext = client.decrypt("my-key", &dek.ciphertext, b"").await?;
//! assert_eq!(plaintext, dek.plaintext);
//! # Ok(()) }
//! ```
//!
//! Requests go to the endpoint that answered last; on a network error or
//! a 5xx other than 501 the next endpoint is tried, and a round that failed
//! with network errors or 503 is retried twice after 200–1000 ms.

mod client;
pub mod env;
mod error;
mod log;
mod pem;
mod types;

pub use client::{normalize_endpoint, Client, ClientBuilder};
pub use error::{Cause, Error, TlsFailure};
/// The `--insecure` verifier; it lives with the one TLS client
/// configuration in `kes_core::tls`.
pub use kes_core::tls::NoServerVerification;
pub use log::LogStream;
pub use pem::is_encrypted_private_key;
pub use types::*;
