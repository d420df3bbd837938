//! Vault authentication: AppRole or Kubernetes login, and the token that
//! results from it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use zeroize::Zeroizing;

use super::http::{Http, BODY_LIMIT};
use crate::config::VaultConfig;
use crate::Error;

/// How KES logs in to Vault.
pub(crate) enum Login {
    AppRole {
        engine: String,
        namespace: Option<String>,
        id: Zeroizing<String>,
        secret: Zeroizing<String>,
    },
    Kubernetes {
        engine: String,
        namespace: Option<String>,
        role: String,
        /// A literal JWT, or a file path that is re-read on every login
        /// because Kubernetes rotates projected service-account tokens.
        jwt: Zeroizing<String>,
    },
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Login::AppRole { engine, .. } => write!(f, "AppRole({engine})"),
            Login::Kubernetes { engine, role, .. } => write!(f, "Kubernetes({engine}, {role})"),
        }
    }
}

/// An auth namespace of `/` means the root namespace; an empty one means
/// the key store's namespace.
fn auth_namespace(ns: &str, default: &Option<String>) -> Option<String> {
    match ns.trim() {
        "" => default.clone(),
        "/" => None,
        ns => Some(ns.to_string()),
    }
}

fn mount(engine: &str, default: &str) -> Result<String, Error> {
    let engine = engine.trim().trim_matches('/');
    let engine = if engine.is_empty() { default } else { engine };
    super::check_path(engine, "auth engine")?;
    Ok(engine.to_string())
}

/// A JWT that contains a path separator is a file name.
fn is_jwt_file(jwt: &str) -> bool {
    jwt.contains('/') || jwt.contains(std::path::MAIN_SEPARATOR)
}

impl Login {
    pub(super) fn from_config(
        config: &VaultConfig,
        namespace: &Option<String>,
    ) -> Result<Self, Error> {
        match (&config.approle, &config.kubernetes) {
            (Some(_), Some(_)) => Err(Error::other(
                "vault: more than one authentication method (approle, kubernetes) configured",
            )),
            (None, None) => Err(Error::other(
                "vault: no authentication method configured: set approle or kubernetes",
            )),
            (Some(a), None) => {
                if a.id.trim().is_empty() {
                    return Err(Error::other("vault: approle: missing role id"));
                }
                if a.secret.trim().is_empty() {
                    return Err(Error::other("vault: approle: missing secret id"));
                }
                Ok(Login::AppRole {
                    engine: mount(&a.engine, "approle")?,
                    namespace: auth_namespace(&a.namespace, namespace),
                    id: Zeroizing::new(a.id.trim().to_string()),
                    secret: Zeroizing::new(a.secret.trim().to_string()),
                })
            }
            (None, Some(k)) => {
                if k.role.trim().is_empty() {
                    return Err(Error::other("vault: kubernetes: missing role"));
                }
                let jwt = k.jwt.trim();
                if jwt.is_empty() {
                    return Err(Error::other("vault: kubernetes: missing jwt"));
                }
                if is_jwt_file(jwt) {
                    std::fs::metadata(jwt).map_err(|e| {
                        Error::other(format!("vault: kubernetes: cannot read jwt file '{jwt}'"))
                            .with_source(e)
                    })?;
                }
                Ok(Login::Kubernetes {
                    engine: mount(&k.engine, "kubernetes")?,
                    namespace: auth_namespace(&k.namespace, namespace),
                    role: k.role.trim().to_string(),
                    jwt: Zeroizing::new(jwt.to_string()),
                })
            }
        }
    }

    /// Logs in and returns a fresh token.
    pub(super) async fn login(&self, http: &Http, generation: u64) -> Result<Token, Error> {
        let (engine, namespace, body, method) = match self {
            Login::AppRole {
                engine,
                namespace,
                id,
                secret,
            } => {
                let body = super::wire::json_body(&BTreeMap::from([
                    ("role_id", id.as_str()),
                    ("secret_id", secret.as_str()),
                ]))?;
                (engine, namespace, body, "approle")
            }
            Login::Kubernetes {
                engine,
                namespace,
                role,
                jwt,
            } => {
                let jwt = if is_jwt_file(jwt) {
                    read_jwt_file(jwt).await?
                } else {
                    jwt.clone()
                };
                let body = super::wire::json_body(&BTreeMap::from([
                    ("role", role.as_str()),
                    ("jwt", jwt.as_str()),
                ]))?;
                (engine, namespace, body, "kubernetes")
            }
        };
        let started = Instant::now();
        let resp = http
            .send(
                Method::POST,
                &format!("auth/{engine}/login"),
                None,
                namespace.as_deref(),
                Some(body.to_vec()),
                BODY_LIMIT,
            )
            .await
            .map_err(|e| match e {
                Error::Unreachable { message, source } => Error::Unreachable {
                    message: format!("{method} login failed: {message}"),
                    source,
                },
                other => other,
            })?;
        if resp.status == StatusCode::SERVICE_UNAVAILABLE {
            return Err(Error::other(format!(
                "vault: {method} login failed: {}",
                resp.vault_errors()
            )));
        }
        if !resp.status.is_success() {
            return Err(Error::other(format!(
                "vault: {method} login failed ({}): {}",
                resp.status,
                resp.vault_errors()
            )));
        }
        Token::from_auth_response(&resp.body, started, generation)
            .map_err(|e| Error::other(format!("vault: {method} login failed")).with_source(e))
    }
}

/// Largest JWT file read; service-account tokens are a few KB.
const MAX_JWT_FILE: u64 = 64 << 10;

/// Reads the JWT file at `path` into buffers that are wiped when dropped:
/// the JWT is a credential Vault accepts for the KES role.
async fn read_jwt_file(path: &str) -> Result<Zeroizing<String>, Error> {
    let fail = |e: &dyn fmt::Display| {
        Error::other(format!("vault: kubernetes: cannot read jwt file '{path}'"))
            .with_source(e.to_string())
    };
    let owned = path.to_string();
    let bytes = tokio::task::spawn_blocking(move || {
        crate::fs::files::read_secret(std::fs::File::open(&owned)?, MAX_JWT_FILE)
    })
    .await
    .map_err(|e| fail(&e))?
    .map_err(|e| fail(&e))?
    .ok_or_else(|| fail(&format!("larger than {MAX_JWT_FILE} bytes")))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| fail(&"not UTF-8 text"))?;
    Ok(Zeroizing::new(text.trim().to_string()))
}

/// A Vault token and its lease. Its value never appears in `Debug` output.
#[derive(Clone)]
pub struct Token {
    /// The token itself, sent as `X-Vault-Token`.
    pub value: Zeroizing<String>,
    /// When the lease was granted (taken before the request was sent, so
    /// the expiry we compute is never later than Vault's).
    pub issued: Instant,
    /// Zero for a token that never expires.
    pub ttl: Duration,
    /// The TTL granted at login; renewals asking for it but getting much
    /// less have hit the token's max TTL.
    pub login_ttl: Duration,
    /// Whether Vault lets the token be renewed.
    pub renewable: bool,
    /// Counts logins, so concurrent requests that saw the same token fail
    /// trigger only one new login.
    pub generation: u64,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("ttl", &self.ttl)
            .field("renewable", &self.renewable)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// The longest lease taken at its word: ten years.
const MAX_LEASE: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

#[derive(serde::Deserialize)]
struct AuthResponse {
    auth: Option<AuthInfo>,
}

#[derive(serde::Deserialize)]
struct AuthInfo {
    client_token: super::wire::SecretString,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
}

impl Token {
    /// Decodes the `auth` part of a login or renewal response.
    pub fn from_auth_response(
        body: &[u8],
        issued: Instant,
        generation: u64,
    ) -> Result<Self, String> {
        let auth = serde_json::from_slice::<AuthResponse>(body)
            .map_err(|e| format!("malformed response: {e}"))?
            .auth
            .ok_or("response carries no auth information")?;
        let super::wire::SecretString(value) = auth.client_token;
        if value.is_empty() {
            return Err("response carries an empty token".into());
        }
        // A lease of some 2^63 seconds would overflow the `Instant`
        // arithmetic of `expired` and `renew_at`; no real lease comes near
        // the cap (Vault's default maximum is 32 days).
        let ttl = Duration::from_secs(auth.lease_duration).min(MAX_LEASE);
        Ok(Token {
            value,
            issued,
            ttl,
            login_ttl: ttl,
            renewable: auth.renewable,
            generation,
        })
    }

    /// How long before the expiry a token is no longer handed out, so that
    /// a request never reaches Vault with a token that just expired.
    fn safety_margin(&self) -> Duration {
        (self.ttl / 10).min(Duration::from_secs(2))
    }

    /// Whether the token may no longer be used at `now`: its lease ends
    /// within the safety margin. A token without TTL never expires.
    pub fn expired(&self, now: Instant) -> bool {
        !self.ttl.is_zero() && now + self.safety_margin() >= self.issued + self.ttl
    }

    /// When the token should be renewed: at 80 % of its TTL.
    pub fn renew_at(&self) -> Option<Instant> {
        (!self.ttl.is_zero()).then(|| self.issued + self.ttl.mul_f64(0.8))
    }

    /// Renews the token for another `login_ttl`. Returns the renewed token,
    /// or an error after which KES logs in again.
    pub(crate) async fn renew(&self, http: &Http, namespace: Option<&str>) -> Result<Token, Error> {
        let body = serde_json::json!({ "increment": self.login_ttl.as_secs() }).to_string();
        let mut last = Error::other("vault: token renewal failed");
        // Up to three tries for transport and server errors; a 4xx means
        // the token cannot be renewed (revoked, not renewable), so a new
        // login is the only way on.
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
            }
            let started = Instant::now();
            match http
                .send(
                    Method::POST,
                    "auth/token/renew-self",
                    Some(&self.value),
                    namespace,
                    Some(body.clone().into_bytes()),
                    BODY_LIMIT,
                )
                .await
            {
                Ok(resp) if resp.status.is_success() => {
                    let mut renewed =
                        Token::from_auth_response(&resp.body, started, self.generation)
                            .map_err(|e| Error::other("vault: token renewal").with_source(e))?;
                    renewed.login_ttl = self.login_ttl;
                    if renewed.value.as_str() != self.value.as_str() {
                        return Err(Error::other("vault: token renewal returned another token"));
                    }
                    return Ok(renewed);
                }
                Ok(resp) if resp.status.is_client_error() => {
                    return Err(Error::other(format!(
                        "vault: token renewal failed ({}): {}",
                        resp.status,
                        resp.vault_errors()
                    )));
                }
                Ok(resp) => {
                    last = Error::other(format!(
                        "vault: token renewal failed ({}): {}",
                        resp.status,
                        resp.vault_errors()
                    ));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found while writing the `vault_response` fuzz target (its seed
    /// `login-huge-lease` reproduces it): a lease beyond what `Instant` can
    /// add used to panic in `expired` and `renew_at`, i.e. in every request
    /// and in the renewal task.
    #[test]
    fn huge_lease_durations_do_not_overflow() {
        for lease in [u64::MAX, i64::MAX as u64, 9_999_999_999_999_999_999] {
            let body = format!(
                r#"{{"auth":{{"client_token":"t","lease_duration":{lease},"renewable":true}}}}"#
            );
            let issued = Instant::now();
            let token = Token::from_auth_response(body.as_bytes(), issued, 0).unwrap();
            assert!(!token.expired(issued));
            assert!(!token.expired(issued + Duration::from_secs(3600)));
            assert!(token.renew_at().unwrap() > issued + Duration::from_secs(3600));
        }
    }
}
