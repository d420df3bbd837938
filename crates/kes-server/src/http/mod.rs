//! The HTTP layer: connections and their limits ([`server`]), the route
//! table (`routes.rs`), the API's handlers (`handlers/`), response bodies
//! ([`wire`]), metrics (`metrics.rs`) and TLS (`tls.rs`).

pub mod server;
pub mod wire;

pub(crate) mod handlers;
pub(crate) mod metrics;
pub(crate) mod routes;
pub(crate) mod tls;
