//! Where the `kes` command (and other tools) find the server and the
//! credentials: flags first, then the environment variables the Go `kes`
//! CLI reads (`MINIO_KES_SERVER`, `KES_SERVER`, `KES_API_KEY`, ...).
//!
//! Environment lookups are passed in as a function so that callers decide
//! where values come from (the process environment, a test table).

use crate::client::normalize_endpoint;
use crate::error::Error;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Server list variables, in order of precedence.
pub const SERVER_VARS: [&str; 3] = ["MINIO_KES_SERVER", "KES_SERVER", "MINIO_KMS_KES_ENDPOINT"];
/// API key variables, in order of precedence.
pub const API_KEY_VARS: [&str; 3] = ["MINIO_KES_API_KEY", "KES_API_KEY", "MINIO_KMS_KES_API_KEY"];
/// Client certificate file variables, in order of precedence. The last is
/// MinIO's own, which docs/minio.md sets for the MinIO server.
pub const CERT_VARS: [&str; 4] = [
    "MINIO_KES_CERT_FILE",
    "KES_CLIENT_CERT",
    "MINIO_KES_CLIENT_CERT",
    "MINIO_KMS_KES_CERT_FILE",
];
/// Client private key file variables, in order of precedence.
pub const KEY_VARS: [&str; 4] = [
    "MINIO_KES_KEY_FILE",
    "KES_CLIENT_KEY",
    "MINIO_KES_CLIENT_KEY",
    "MINIO_KMS_KES_KEY_FILE",
];
/// Password of an encrypted client private key.
pub const KEY_PASSWORD_VAR: &str = "KES_CLIENT_KEY_PASSWORD";
/// Password variables, in order of precedence: [`KEY_PASSWORD_VAR`], then
/// MinIO's own, which goes with `MINIO_KMS_KES_KEY_FILE`.
pub const KEY_PASSWORD_VARS: [&str; 2] = [KEY_PASSWORD_VAR, "MINIO_KMS_KES_KEY_PASSWORD"];
/// CA certificate file to trust in addition to the system roots.
pub const CA_VAR: &str = "KES_CA";
/// CA variables, in order of precedence: [`CA_VAR`], then MinIO's own,
/// which may also name a directory of CA certificates.
pub const CA_VARS: [&str; 2] = [CA_VAR, "MINIO_KMS_KES_CAPATH"];
/// The server when nothing is configured.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:7373";

/// The error without any credentials: the Go CLI's words, then both ways
/// to give them.
pub const NO_CREDENTIALS: &str =
    "no API key specified: set KES_API_KEY, or KES_CLIENT_CERT and KES_CLIENT_KEY";

/// How the client authenticates.
pub enum Credentials {
    /// A `kes:v1:` API key (secret).
    ApiKey(Zeroizing<String>),
    /// PEM certificate and private-key files.
    CertificateFiles {
        /// The certificate file.
        cert: PathBuf,
        /// The private-key file.
        key: PathBuf,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            Credentials::CertificateFiles { cert, key } => f
                .debug_struct("CertificateFiles")
                .field("cert", cert)
                .field("key", key)
                .finish(),
        }
    }
}

/// The first non-empty value of `vars`.
pub fn first_var(vars: &[&str], env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    vars.iter()
        .filter_map(|v| env(v))
        .find(|v| !v.trim().is_empty())
}

/// The endpoints from `--server` or the environment, default
/// `127.0.0.1:7373`; a comma-separated list, schemes stripped.
pub fn endpoints(
    flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, Error> {
    let list = match flag.filter(|f| !f.trim().is_empty()) {
        Some(f) => f.to_owned(),
        None => first_var(&SERVER_VARS, env).unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned()),
    };
    let endpoints = list
        .split(',')
        .filter(|e| !e.trim().is_empty())
        .map(normalize_endpoint)
        .collect::<Result<Vec<_>, _>>()?;
    if endpoints.is_empty() {
        return Err(Error::Config(format!("invalid server list '{list}'")));
    }
    Ok(endpoints)
}

/// The credentials from `--api-key` or the environment. An API key and a
/// certificate/key pair from the environment exclude each other; an
/// explicit `--api-key` wins over the environment.
pub fn credentials(
    api_key_flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, Error> {
    if let Some(k) = api_key_flag.filter(|k| !k.trim().is_empty()) {
        return Ok(Credentials::ApiKey(Zeroizing::new(k.trim().to_owned())));
    }
    let api_key = first_var(&API_KEY_VARS, env).map(Zeroizing::new);
    let cert = first_var(&CERT_VARS, env);
    let key = first_var(&KEY_VARS, env);
    match (api_key, cert, key) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(Error::Config(
            "either an API key or a client certificate/key can be specified, not both".into(),
        )),
        (Some(k), None, None) => Ok(Credentials::ApiKey(Zeroizing::new(k.trim().to_owned()))),
        (None, Some(cert), Some(key)) => Ok(Credentials::CertificateFiles {
            cert: cert.into(),
            key: key.into(),
        }),
        (None, Some(_), None) => Err(Error::Config("no client private key specified".into())),
        (None, None, Some(_)) => Err(Error::Config("no client certificate specified".into())),
        (None, None, None) => Err(Error::Config(NO_CREDENTIALS.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn endpoint_precedence() {
        let e = env(&[]);
        assert_eq!(endpoints(None, &e).unwrap(), ["127.0.0.1:7373"]);
        let e = env(&[
            ("MINIO_KMS_KES_ENDPOINT", "https://c:3"),
            ("KES_SERVER", "b:2"),
        ]);
        assert_eq!(endpoints(None, &e).unwrap(), ["b:2"]);
        let e = env(&[
            ("MINIO_KES_SERVER", "http://a:1/,https://a2:1"),
            ("KES_SERVER", "b:2"),
        ]);
        assert_eq!(endpoints(None, &e).unwrap(), ["a:1", "a2:1"]);
        assert_eq!(endpoints(Some("x:9, y:8,"), &e).unwrap(), ["x:9", "y:8"]);
        let e = env(&[("KES_SERVER", ""), ("MINIO_KMS_KES_ENDPOINT", "c:3")]);
        assert_eq!(endpoints(None, &e).unwrap(), ["c:3"]);
        assert!(endpoints(Some(","), &env(&[])).is_err());
        assert!(endpoints(Some("a b:1"), &env(&[])).is_err());
    }

    #[test]
    fn credential_precedence() {
        let err = credentials(None, &env(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no API key specified: set KES_API_KEY, or KES_CLIENT_CERT and KES_CLIENT_KEY"
        );

        // MinIO's variables, as docs/minio.md sets them for MinIO.
        let e = env(&[
            ("MINIO_KMS_KES_CERT_FILE", "m.crt"),
            ("MINIO_KMS_KES_KEY_FILE", "m.key"),
        ]);
        match credentials(None, &e).unwrap() {
            Credentials::CertificateFiles { cert, key } => {
                assert_eq!(cert, PathBuf::from("m.crt"));
                assert_eq!(key, PathBuf::from("m.key"));
            }
            other => panic!("unexpected {other:?}"),
        }

        let e = env(&[
            ("KES_API_KEY", "kes:v1:b"),
            ("MINIO_KMS_KES_API_KEY", "kes:v1:c"),
        ]);
        match credentials(None, &e).unwrap() {
            Credentials::ApiKey(k) => assert_eq!(k.as_str(), "kes:v1:b"),
            other => panic!("unexpected {other:?}"),
        }
        match credentials(Some("kes:v1:a"), &e).unwrap() {
            Credentials::ApiKey(k) => assert_eq!(k.as_str(), "kes:v1:a"),
            other => panic!("unexpected {other:?}"),
        }

        let e = env(&[
            ("KES_CLIENT_CERT", "c.crt"),
            ("MINIO_KES_KEY_FILE", "c.key"),
        ]);
        match credentials(None, &e).unwrap() {
            Credentials::CertificateFiles { cert, key } => {
                assert_eq!(cert, PathBuf::from("c.crt"));
                assert_eq!(key, PathBuf::from("c.key"));
            }
            other => panic!("unexpected {other:?}"),
        }

        let e = env(&[("KES_API_KEY", "kes:v1:b"), ("KES_CLIENT_CERT", "c.crt")]);
        assert!(credentials(None, &e)
            .unwrap_err()
            .to_string()
            .contains("not both"));
        let e = env(&[("KES_CLIENT_CERT", "c.crt")]);
        assert_eq!(
            credentials(None, &e).unwrap_err().to_string(),
            "no client private key specified"
        );
        let e = env(&[("KES_CLIENT_KEY", "c.key")]);
        assert_eq!(
            credentials(None, &e).unwrap_err().to_string(),
            "no client certificate specified"
        );
    }

    #[test]
    fn api_key_is_not_in_debug_output() {
        let c = Credentials::ApiKey(Zeroizing::new("kes:v1:secret".into()));
        assert!(!format!("{c:?}").contains("secret"));
    }
}
