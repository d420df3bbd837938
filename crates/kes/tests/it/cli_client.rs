//! The kes-client SDK against the real `kes server` over mTLS on 127.0.0.1.

use crate::common;

use common::{Setup, TestServer};
use kes_client::{Client, Error};
use kes_core::ApiKey;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A loopback port nobody listens on.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr.to_string()
}

fn client(server: &TestServer, key: &ApiKey) -> Client {
    Client::builder()
        .endpoints([server.addr.to_string()])
        .api_key(key)
        .ca_file(&server.setup.server_cert)
        .build()
        .unwrap()
}

const POLICY: &str = "policy:\n  app:\n    allow:\n    - /v1/key/create/app-*\n    - /v1/key/generate/app-*\n    - /v1/key/decrypt/app-*\n    - /v1/identity/self/describe\n    deny:\n    - /v1/key/create/app-forbidden*\n    identities:\n    - ${APP_IDENTITY}\n";

fn start_with_app() -> (TestServer, ApiKey) {
    let app = ApiKey::generate();
    let mut setup = Setup::new().with(POLICY);
    setup
        .env
        .push(("APP_IDENTITY".into(), app.identity().to_string()));
    (TestServer::start(setup), app)
}

#[test]
fn key_lifecycle_and_typed_errors() {
    let server = TestServer::start(Setup::new());
    let rt = runtime();
    let c = client(&server, &server.setup.admin);
    rt.block_on(async {
        let v = c.version().await.unwrap();
        assert!(!v.version.is_empty());
        c.ready().await.unwrap();
        let s = c.status().await.unwrap();
        assert!(!s.os.is_empty() && s.num_cpu > 0);
        assert!(!s.keystore_unreachable);
        let api = c.api().await.unwrap();
        // The Go KES's 22 routes, then rotate, retire, restore and deleted.
        assert_eq!(api.len(), 26);
        assert_eq!(api[22].path, "/v1/key/rotate/");
        assert_eq!(api[23].path, "/v1/key/retire/");
        assert!(api
            .iter()
            .any(|r| r.path == "/v1/key/import/" && r.max_body == 1_000_000));

        c.create_key("my-key").await.unwrap();
        assert_eq!(c.create_key("my-key").await.unwrap_err(), Error::KeyExists);
        let info = c.describe_key("my-key").await.unwrap();
        assert_eq!(info.name, "my-key");
        assert!(info.algorithm == "AES256" || info.algorithm == "ChaCha20");
        assert_eq!(info.created_by, server.setup.admin.identity().to_string());
        assert!(info.created_at.is_some());

        let dek = c.generate_key("my-key", b"bucket/object").await.unwrap();
        assert_eq!(dek.plaintext.len(), 32);
        let plain = c
            .decrypt("my-key", &dek.ciphertext, b"bucket/object")
            .await
            .unwrap();
        assert_eq!(plain, dek.plaintext);
        assert_eq!(
            c.decrypt("my-key", &dek.ciphertext, b"other")
                .await
                .unwrap_err(),
            Error::DecryptionFailed
        );
        // The plaintext must not show up in Debug output.
        let dbg = format!("{dek:?}");
        assert!(!dbg.contains(&format!("{:?}", &dek.plaintext[..4])));

        let msg = vec![7u8; 1000];
        let ct = c.encrypt("my-key", &msg, b"").await.unwrap();
        let ct2 = c.encrypt("my-key", &msg, b"").await.unwrap();
        assert_ne!(ct, ct2);
        assert_eq!(*c.decrypt("my-key", &ct, b"").await.unwrap(), msg);

        let h1 = c.hmac("my-key", b"root access key").await.unwrap();
        assert_eq!(h1.len(), 32);
        assert_eq!(h1, c.hmac("my-key", b"root access key").await.unwrap());
        assert_ne!(h1, c.hmac("my-key", b"root secret key").await.unwrap());

        c.import_key("imported", &[0x42; 32], "AES256")
            .await
            .unwrap();
        assert_eq!(
            c.describe_key("imported").await.unwrap().algorithm,
            "AES256"
        );
        let err = c
            .import_key("short", &[0x42; 16], "AES256")
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(406));
        assert_eq!(err.to_string(), "invalid key size for 'AES256'");

        assert_eq!(c.list_keys("*").await.unwrap(), ["imported", "my-key"]);
        assert_eq!(c.list_keys("my").await.unwrap(), ["my-key"]);
        assert!(c.list_keys("zzz").await.unwrap().is_empty());

        let err = c.create_key("in.valid").await.unwrap_err();
        assert_eq!(err.status(), Some(400));
        assert_eq!(
            err.to_string(),
            "key name 'in.valid' is empty, too long or contains invalid characters"
        );

        c.delete_key("my-key").await.unwrap();
        assert_eq!(
            c.describe_key("my-key").await.unwrap_err(),
            Error::KeyNotFound
        );
        assert_eq!(
            c.generate_key("my-key", b"").await.unwrap_err(),
            Error::KeyNotFound
        );

        let metrics = c.metrics().await.unwrap();
        assert!(metrics.contains("kes_http_request_success"));
    });
}

#[test]
fn policies_identities_and_not_allowed() {
    let (server, app) = start_with_app();
    let rt = runtime();
    let admin = client(&server, &server.setup.admin);
    let app_client = client(&server, &app);
    rt.block_on(async {
        assert_eq!(admin.list_policies("*").await.unwrap(), ["app"]);
        let info = admin.describe_policy("app").await.unwrap();
        assert_eq!(info.name, "app");
        let p = admin.read_policy("app").await.unwrap();
        assert_eq!(p.allow.len(), 4);
        assert!(p.allow.contains(&"/v1/key/create/app-*".to_string()));
        assert_eq!(p.deny, ["/v1/key/create/app-forbidden*"]);
        assert_eq!(
            admin.describe_policy("nope").await.unwrap_err(),
            Error::PolicyNotFound
        );

        let mut ids = vec![
            server.setup.admin.identity().to_string(),
            app.identity().to_string(),
        ];
        ids.sort();
        assert_eq!(admin.list_identities("*").await.unwrap(), ids);
        let id = admin
            .describe_identity(app.identity().as_str())
            .await
            .unwrap();
        assert_eq!(id.policy, "app");
        assert!(!id.admin);
        assert_eq!(
            admin.describe_identity(&"0".repeat(64)).await.unwrap_err(),
            Error::IdentityNotFound
        );
        let me = admin.self_describe().await.unwrap();
        assert!(me.admin);
        assert_eq!(me.identity, server.setup.admin.identity().to_string());

        app_client.create_key("app-1").await.unwrap();
        let dek = app_client.generate_key("app-1", b"").await.unwrap();
        app_client
            .decrypt("app-1", &dek.ciphertext, b"")
            .await
            .unwrap();
        assert_eq!(
            app_client.create_key("app-forbidden").await.unwrap_err(),
            Error::NotAllowed
        );
        assert_eq!(
            app_client.delete_key("app-1").await.unwrap_err(),
            Error::NotAllowed
        );
        assert_eq!(
            app_client.list_keys("*").await.unwrap_err(),
            Error::NotAllowed
        );
    });
}

#[test]
fn fails_over_to_the_next_endpoint() {
    let server = TestServer::start(Setup::new());
    let rt = runtime();
    let dead = closed_port();
    let c = Client::builder()
        .endpoints([dead.clone(), format!("https://{}", server.addr)])
        .api_key(&server.setup.admin)
        .ca_file(&server.setup.server_cert)
        .build()
        .unwrap();
    rt.block_on(async {
        let start = Instant::now();
        c.create_key("k1").await.unwrap();
        // A refused connection moves on at once, without a retry pause.
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
        for i in 0..5 {
            c.generate_key("k1", format!("{i}").as_bytes())
                .await
                .unwrap();
        }
        // A typed error from the live endpoint is final, not retried elsewhere.
        assert_eq!(c.create_key("k1").await.unwrap_err(), Error::KeyExists);

        // Nothing reachable: a connection error after two retry rounds.
        let none = Client::builder()
            .endpoints([dead.clone(), closed_port()])
            .api_key(&server.setup.admin)
            .insecure(true)
            .build()
            .unwrap();
        let start = Instant::now();
        let err = none.version().await.unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, Error::Refused { .. }), "{err:?}");
        assert!(err.to_string().contains("127.0.0.1:"), "{err}");
        assert!(took >= Duration::from_millis(400), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    });
}

/// Writes a client certificate and key for a fresh identity; the key is
/// RFC 1423-encrypted when a password is given.
fn client_cert_files(dir: &std::path::Path, password: Option<&str>) -> (PathBuf, PathBuf, ApiKey) {
    let id = kes_core::certgen::new_identity(&kes_core::certgen::CertificateOptions {
        subject: Some("client".into()),
        ..Default::default()
    })
    .unwrap();
    let cert = dir.join(format!("client-{}.crt", password.is_some()));
    let key = dir.join(format!("client-{}.key", password.is_some()));
    std::fs::write(
        &cert,
        kes_core::pem::encode("CERTIFICATE", &id.certificate.certificate_der),
    )
    .unwrap();
    let key_pem = match password {
        None => kes_core::pem::encode("PRIVATE KEY", &id.certificate.private_key_der),
        Some(p) => {
            kes_core::pem::encrypt_private_key(&id.certificate.private_key_der, p.as_bytes())
                .unwrap()
                .to_string()
        }
    };
    std::fs::write(&key, key_pem).unwrap();
    (cert, key, id.api_key)
}

#[test]
fn certificate_files_and_server_verification() {
    let setup = Setup::new();
    let dir = setup.dir.path().to_owned();
    let (cert, key, api_key) = client_cert_files(&dir, None);
    let (ecert, ekey, _) = client_cert_files(&dir, Some("correct horse"));
    let server = TestServer::start(setup);
    let rt = runtime();
    let addr = server.addr.to_string();
    rt.block_on(async {
        // Certificate files: the identity is the certificate's key.
        let c = Client::builder()
            .endpoints([&addr])
            .certificate_files(&cert, &key, None)
            .ca_file(&server.setup.server_cert)
            .build()
            .unwrap();
        let err = c.list_keys("*").await.unwrap_err();
        assert_eq!(err, Error::NotAllowed);
        let me = c.self_describe().await;
        // Not the admin: either described or unknown, but never admin.
        if let Ok(me) = me {
            assert_eq!(me.identity, api_key.identity().to_string());
            assert!(!me.admin);
        }

        // An encrypted key with its password works; without one or with a
        // wrong one the client is not built.
        Client::builder()
            .endpoints([&addr])
            .certificate_files(&ecert, &ekey, Some("correct horse"))
            .ca_file(&server.setup.server_cert)
            .build()
            .unwrap()
            .version()
            .await
            .unwrap();
        let err = Client::builder()
            .endpoints([&addr])
            .certificate_files(&ecert, &ekey, None)
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "private key is encrypted: password required"
        );
        let err = Client::builder()
            .endpoints([&addr])
            .certificate_files(&ecert, &ekey, Some("wrong"))
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::Pem(_)), "{err:?}");

        // Without the CA the self-signed server certificate is refused;
        // --insecure accepts it.
        let c = Client::builder()
            .endpoints([&addr])
            .api_key(&server.setup.admin)
            .build()
            .unwrap();
        let err = c.version().await.unwrap_err();
        assert!(matches!(err, Error::Tls { .. }), "{err:?}");
        assert!(
            err.to_string().to_lowercase().contains("certificate"),
            "{err}"
        );
        let c = Client::builder()
            .endpoints([&addr])
            .api_key(&server.setup.admin)
            .insecure(true)
            .build()
            .unwrap();
        c.version().await.unwrap();
    });
}

#[test]
fn audit_log_streams_events_as_they_happen() {
    let server = TestServer::start(Setup::new().with("log:\n  audit: on\n"));
    let rt = runtime();
    let c = client(&server, &server.setup.admin);
    rt.block_on(async {
        let mut stream = c.audit_log().await.unwrap();
        let c2 = c.clone();
        let creator = tokio::spawn(async move {
            // Keep producing events until the subscriber has seen one: the
            // subscription may become active slightly after the request.
            for i in 0..50 {
                c2.create_key(&format!("audited-{i}")).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        // Events of other requests (e.g. the subscription itself) may come
        // first; the create must arrive within the deadline.
        let event = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let event = stream
                    .next()
                    .await
                    .expect("stream open")
                    .expect("valid event");
                if event.request.path.starts_with("/v1/key/create/audited-") {
                    return event;
                }
            }
        })
        .await
        .expect("an audit event for the create within 10s");
        assert_eq!(event.response.code, 200);
        assert_eq!(
            event.request.identity,
            server.setup.admin.identity().to_string()
        );
        creator.abort();
    });
}
