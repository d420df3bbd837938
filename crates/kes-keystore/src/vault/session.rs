//! The session with Vault: the token (renewed, or replaced by a new
//! login), the health ping that tracks a sealed Vault, and the one call
//! that every K/V and transit request goes through.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use zeroize::Zeroizing;

use super::auth::{Login, Token};
use super::http::{Response, BODY_LIMIT};
use super::Inner;
use crate::Error;

/// Pause between login attempts of the renewal task while Vault refuses.
pub(super) const LOGIN_RETRY: Duration = Duration::from_secs(1);
/// Longest pause between those attempts, so a long outage is not logged
/// every second.
pub(super) const LOGIN_RETRY_MAX: Duration = Duration::from_secs(16);

/// Keeps the token alive: renews it at 80 % of its TTL and logs in again
/// when renewal fails, is refused, or cannot give a useful TTL any more.
pub(super) async fn renew_token(inner: Arc<Inner>) {
    let mut backoff = LOGIN_RETRY;
    loop {
        let token = inner.current_token();
        let changed = inner.token_changed.notified();
        let Some(at) = token.renew_at() else {
            // Non-expiring token: only a login elsewhere changes anything.
            changed.await;
            continue;
        };
        tokio::select! {
            _ = tokio::time::sleep_until(at.into()) => {}
            _ = changed => continue,
        }
        if inner.current_token().generation != token.generation {
            continue;
        }
        let renewed = if token.renewable {
            match token.renew(&inner.http, inner.auth_namespace()).await {
                // Vault caps renewals at the token's max TTL; once the
                // granted TTL shrinks below half, a new login is better.
                Ok(t) if t.ttl >= t.login_ttl / 2 => Some(t),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "vault: token renewal failed; logging in again");
                    None
                }
            }
        } else {
            None
        };
        match renewed {
            Some(t) => {
                inner.store_renewed(t);
                backoff = LOGIN_RETRY;
            }
            None => match inner.relogin(token.generation).await {
                Ok(_) => backoff = LOGIN_RETRY,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "vault: login failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(LOGIN_RETRY_MAX);
                }
            },
        }
    }
}

/// Tracks whether Vault is sealed, so requests fail at once while it is
/// and resume once a ping sees it unsealed.
pub(super) async fn ping_health(inner: Arc<Inner>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        // Errors are recorded in `sealed` where they mean a seal; anything
        // else shows up in the callers' own requests.
        let _ = inner.health().await;
    }
}

impl Inner {
    pub(super) fn current_token(&self) -> Token {
        kes_core::sync::read(&self.token).clone()
    }

    pub(super) fn store_token(&self, token: Token) {
        *kes_core::sync::write(&self.token) = token;
    }

    /// Stores a renewed token unless a login replaced it meanwhile: the
    /// newer token must not be overwritten by the older one.
    pub(super) fn store_renewed(&self, token: Token) {
        let mut current = kes_core::sync::write(&self.token);
        if current.generation == token.generation {
            *current = token;
        }
    }

    pub(super) fn auth_namespace(&self) -> Option<&str> {
        match &self.login {
            Login::AppRole { namespace, .. } | Login::Kubernetes { namespace, .. } => {
                namespace.as_deref()
            }
        }
    }

    /// Logs in again unless someone else already replaced the token of
    /// `generation`; returns the token to use.
    pub(super) async fn relogin(&self, generation: u64) -> Result<Token, Error> {
        let _guard = self.login_lock.lock().await;
        let current = self.current_token();
        if current.generation != generation {
            return Ok(current);
        }
        let fresh = self.login.login(&self.http, generation + 1).await?;
        self.store_token(fresh.clone());
        self.token_changed.notify_one();
        Ok(fresh)
    }

    /// Whether Vault still accepts `token` (`auth/token/lookup-self`, which
    /// every token may call). Errors count as "no", which leads to a login.
    pub(super) async fn token_alive(&self, token: &Token) -> bool {
        let resp = self
            .http
            .send(
                Method::GET,
                "auth/token/lookup-self",
                Some(&token.value),
                self.auth_namespace(),
                None,
                BODY_LIMIT,
            )
            .await;
        matches!(resp, Ok(r) if r.status == StatusCode::OK)
    }

    /// A token that has not expired, logging in first if needed.
    pub(super) async fn valid_token(&self) -> Result<Token, Error> {
        let token = self.current_token();
        if token.expired(Instant::now()) {
            return self.relogin(token.generation).await;
        }
        Ok(token)
    }

    /// `sys/health`, which Vault answers without a token and outside any
    /// namespace. Updates the sealed flag.
    pub(super) async fn health(&self) -> Result<Duration, Error> {
        let started = Instant::now();
        let resp = self.http.health().await?;
        let latency = started.elapsed();
        match resp.status.as_u16() {
            // active, standby, DR secondary, performance standby
            200 | 429 | 472 | 473 => {
                self.sealed.store(false, Ordering::Release);
                Ok(latency)
            }
            503 => {
                self.sealed.store(true, Ordering::Release);
                Err(Error::unreachable("vault is sealed"))
            }
            501 => {
                self.sealed.store(true, Ordering::Release);
                Err(Error::unreachable("vault is not initialized"))
            }
            _ => Err(Error::other(format!(
                "vault: health check failed ({}): {}",
                resp.status,
                resp.vault_errors()
            ))),
        }
    }

    /// Sends a request with a valid token in the store's namespace. A 403
    /// (revoked or expired token) leads to one new login and one retry; a
    /// sealed Vault fails at once.
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
        limit: usize,
    ) -> Result<Response, Error> {
        if self.sealed.load(Ordering::Acquire) {
            return Err(Error::other("vault is sealed"));
        }
        let mut token = self.valid_token().await?;
        let mut retried = false;
        loop {
            let resp = self
                .http
                .send(
                    method.clone(),
                    path,
                    Some(&token.value),
                    self.namespace.as_deref(),
                    body.as_ref().map(|b| b.to_vec()),
                    limit,
                )
                .await?;
            match resp.status {
                // A 403 means either a revoked token or a policy that
                // forbids this path. Only the first is cured by a login,
                // and logins are costly for Vault (each one stores a new
                // token), so the token is checked first.
                StatusCode::FORBIDDEN if !retried && !self.token_alive(&token).await => {
                    retried = true;
                    token = self.relogin(token.generation).await?;
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    let errors = resp.vault_errors();
                    if errors.contains("sealed") {
                        self.sealed.store(true, Ordering::Release);
                        return Err(Error::other("vault is sealed"));
                    }
                    return Err(Error::other(format!(
                        "vault: {method} /v1/{path}: {errors}"
                    )));
                }
                _ => return Ok(resp),
            }
        }
    }

    pub(super) fn failure(&self, op: &str, name: &str, resp: &Response) -> Error {
        Error::other(format!(
            "vault: {op} '{name}' failed ({}): {}",
            resp.status,
            resp.vault_errors()
        ))
    }
}
