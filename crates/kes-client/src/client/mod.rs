//! The client: one [`Client`] over one or more KES servers.
//!
//! - `api`: one method per API endpoint, request and response bodies.
//! - `transport`: sending a request, fail-over and retries, streaming.
//! - `builder`: [`ClientBuilder`], endpoints and credentials.
//! - `tls`: the server certificates the client trusts (the rustls
//!   configuration itself is `kes_core::tls`).

mod api;
mod builder;
mod tls;
mod transport;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

pub use builder::{normalize_endpoint, ClientBuilder};

/// A client of one or more KES servers. Cheap to clone; clones share the
/// connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Vec<String>,
    http: transport::Http,
    /// The endpoint that answered last; requests start there so that a dead
    /// endpoint costs one failed connect, not one per request.
    preferred: AtomicUsize,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.inner.endpoints)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// The endpoints (`host:port`) in the order they were given.
    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }
}
