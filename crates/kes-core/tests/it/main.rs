//! The integration tests of kes-core, one module per subject, in
//! one binary so that the test build links once per crate.

mod crypto_properties;
mod crypto_vectors;
mod crypto_wycheproof;
mod duration;
mod identity_apikey;
mod identity_cert;
mod identity_pem;
mod identity_proptest;
