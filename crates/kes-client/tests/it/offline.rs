//! Client behaviour that needs no server: unreachable endpoints, retry
//! pacing and configuration errors. (End-to-end tests against the real
//! server are in `crates/kes/tests/it/cli_client.rs`.)

use kes_client::{Client, Error};
use std::time::{Duration, Instant};

/// A loopback port nobody listens on.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    addr
}

fn api_key() -> kes_core::ApiKey {
    kes_core::ApiKey::parse("kes:v1:AGaV6VXHasF0FnaB60WdCOeTZ8eTIDikL4zlN16c8NAs").unwrap()
}

#[tokio::test]
async fn unreachable_endpoints_are_retried_twice_then_reported() {
    let (a, b) = (closed_port(), closed_port());
    let client = Client::builder()
        .endpoints([a.as_str(), b.as_str()])
        .api_key(&api_key())
        .insecure(true)
        .build()
        .unwrap();
    let start = Instant::now();
    let err = client.create_key("my-key").await.unwrap_err();
    let took = start.elapsed();
    // Nobody listens there: a refusal, told apart from a timeout or a TLS
    // failure, with the system's error as its source.
    assert!(matches!(err, Error::Refused { .. }), "{err:?}");
    assert!(std::error::Error::source(&err).is_some(), "{err:?}");
    assert_eq!(err.status(), None);
    // The message names an endpoint and the cause, and no secret.
    let msg = err.to_string();
    assert!(msg.contains(&a) || msg.contains(&b), "{msg}");
    assert!(!msg.contains("AGaV6VXH"), "{msg}");
    // Two pauses of 200–1000 ms between the three rounds.
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_millis(2900), "{took:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout() {
    // Accepts connections and never says a word, not even the TLS
    // handshake.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            conns.push(conn);
        }
    });
    let client = Client::builder()
        .endpoints([addr.as_str()])
        .api_key(&api_key())
        .insecure(true)
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = client.version().await.unwrap_err();
    assert_eq!(
        err,
        Error::Timeout {
            endpoint: addr.clone()
        }
    );
    assert_eq!(err.to_string(), format!("{addr}: request timed out"));
    held.abort();
}

#[test]
fn configuration_errors() {
    let err = Client::builder()
        .endpoints(["127.0.0.1:7373"])
        .ca_file("/nonexistent/ca.pem")
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::File {
                what: "CA certificate",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    // The I/O error is the source, not part of the message.
    let io = std::error::Error::source(&err).unwrap().to_string();
    assert!(!err.to_string().contains(&io), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, b"not a certificate").unwrap();
    let err = Client::builder()
        .endpoints(["127.0.0.1:7373"])
        .ca_file(&not_pem)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Pem(_)), "{err:?}");

    let cert = dir.path().join("c.pem");
    std::fs::write(&cert, b"").unwrap();
    let err = Client::builder()
        .endpoints(["127.0.0.1:7373"])
        .certificate_files(&cert, &cert, None)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Pem(_)), "{err:?}");

    // A client from an API key builds without touching the network.
    let client = Client::builder()
        .endpoints(["https://127.0.0.1:7373/", "localhost:7374"])
        .api_key(&api_key())
        .build()
        .unwrap();
    assert_eq!(client.endpoints(), ["127.0.0.1:7373", "localhost:7374"]);
    assert!(!format!("{client:?}").contains("AGaV6VXH"));
}
