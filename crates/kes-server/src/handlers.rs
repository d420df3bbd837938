//! One function per endpoint of spec §5.4. Handlers see a validated caller
//! and a size-limited body; they return a response or an [`ApiError`], which
//! `http::error` turns into bytes. Key-store failures are mapped to API
//! errors here and only here, with their detail going to the error log.

use crate::routes::{Endpoint, Route};
use crate::state::{Shared, State};
use crate::wire::{self, b64, Body, GoJson};
use http_body_util::BodyExt;
use hyper::Response;
use kes_core::name::{valid_name, valid_pattern};
use kes_core::timefmt::format_rfc3339_nano;
use kes_core::{ApiError, HmacKey, Identity, KeyAlgorithm, KeyVersion, SecretKey};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// Everything a handler knows about the request.
pub struct Request<'a> {
    pub shared: &'a Shared,
    pub state: &'a State,
    pub route: &'a Route,
    /// The path remainder after a prefix route (key, policy or identity).
    pub resource: &'a str,
    /// The caller; `None` only on routes that skip authentication.
    pub identity: Option<&'a Identity>,
    /// The request body (in a buffer wiped when dropped); `None` when it
    /// exceeded the route's limit or could not be read (answered like
    /// invalid JSON).
    pub body: Option<&'a [u8]>,
    /// The raw query string.
    pub query: &'a str,
}

/// A handler's answer plus what the audit log should say about it.
pub struct Answer {
    pub response: Response<Body>,
    pub audit: Option<String>,
}

impl From<Response<Body>> for Answer {
    fn from(response: Response<Body>) -> Self {
        Answer {
            response,
            audit: None,
        }
    }
}

type Result<T> = std::result::Result<T, ApiError>;

/// Runs the handler of `req.route`.
pub async fn dispatch(req: Request<'_>) -> Result<Answer> {
    use Endpoint::*;
    match req.route.endpoint {
        Version => Ok(version().into()),
        Ready => ready(&req).await.map(Into::into),
        Status => status(&req).await.map(Into::into),
        Metrics => Ok(metrics(&req).into()),
        Api => Ok(api(&req).into()),
        KeyCreate => create_key(&req).await,
        KeyImport => import_key(&req).await,
        KeyDescribe => describe_key(&req).await.map(Into::into),
        KeyList => list_keys(&req).await.map(Into::into),
        KeyDelete => delete_key(&req).await,
        KeyGenerate => generate(&req).await.map(Into::into),
        KeyEncrypt => encrypt(&req).await.map(Into::into),
        KeyDecrypt => decrypt(&req).await.map(Into::into),
        KeyHmac => hmac(&req).await.map(Into::into),
        KeyBulkDecrypt => bulk_decrypt(&req).await.map(Into::into),
        PolicyDescribe => describe_policy(&req).map(Into::into),
        PolicyRead => read_policy(&req).map(Into::into),
        PolicyList => list_policies(&req).map(Into::into),
        IdentityDescribe => describe_identity(&req).map(Into::into),
        IdentitySelfDescribe => self_describe(&req).map(Into::into),
        IdentityList => list_identities(&req).map(Into::into),
        LogError => Ok(log_stream(req.shared.logs.subscribe_errors()?).into()),
        LogAudit => Ok(log_stream(req.shared.logs.subscribe_audit()?).into()),
    }
}

/// The release string `/version` reports.
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

fn version() -> Response<Body> {
    wire::json(&json!({
        "version": VERSION,
        "commit": option_env!("KES_BUILD_COMMIT").unwrap_or("<unknown>"),
    }))
}

/// Maps a key-store error to the API, logging what clients do not see.
fn store_error(err: kes_keystore::Error, generic: ApiError, op: &str, name: &str) -> ApiError {
    match err {
        kes_keystore::Error::KeyExists => ApiError::KEY_EXISTS,
        kes_keystore::Error::KeyNotFound => ApiError::KEY_NOT_FOUND,
        other => {
            tracing::error!(key = name, error = %other, "failed to {op} key");
            generic
        }
    }
}

fn key_name<'a>(req: &'a Request<'_>) -> Result<&'a str> {
    if valid_name(req.resource) {
        Ok(req.resource)
    } else {
        Err(ApiError::invalid_key_name(req.resource))
    }
}

fn caller(req: &Request<'_>) -> String {
    req.identity.map(|i| i.to_string()).unwrap_or_default()
}

async fn ready(req: &Request<'_>) -> Result<Response<Body>> {
    match req.state.cache.status().await {
        Ok(_) => Ok(wire::empty_ok()),
        Err(err) if err.is_unreachable() => {
            tracing::warn!(error = %err, "key store is not reachable");
            Err(ApiError::STORE_UNREACHABLE)
        }
        Err(err) => {
            tracing::error!(error = %err, "key store is unavailable");
            Err(ApiError::STORE_UNAVAILABLE)
        }
    }
}

async fn status(req: &Request<'_>) -> Result<Response<Body>> {
    let sys = crate::sysinfo::read();
    let mut doc = serde_json::Map::new();
    doc.insert("version".into(), VERSION.into());
    doc.insert("os".into(), crate::sysinfo::go_os().into());
    doc.insert("arch".into(), crate::sysinfo::go_arch().into());
    doc.insert(
        "uptime".into(),
        req.shared.metrics.uptime().as_secs().into(),
    );
    doc.insert("num_cpu".into(), sys.num_cpu.into());
    doc.insert("num_cpu_used".into(), sys.num_cpu_used.into());
    doc.insert("mem_heap_used".into(), sys.heap_used.into());
    doc.insert("mem_stack_used".into(), sys.stack_used.into());
    match req.state.cache.status().await {
        Ok(latency) => {
            let ms = latency.as_millis().max(1) as u64;
            doc.insert("keystore_latency".into(), ms.into());
        }
        Err(err) => {
            tracing::warn!(error = %err, "key store is not reachable");
            // The Go SDK refuses `keystore_unreachable` without
            // `keystore_unavailable` (spec §5.4), so we send both.
            doc.insert("keystore_unavailable".into(), true.into());
            doc.insert("keystore_unreachable".into(), true.into());
        }
    }
    Ok(wire::json(&serde_json::Value::Object(doc)))
}

fn metrics(req: &Request<'_>) -> Response<Body> {
    let extended = req
        .query
        .split('&')
        .any(|kv| kv == "extended" || kv == "extended=true" || kv == "extended=1");
    let figures = extended.then(|| {
        let s = req.state.cache.stats();
        crate::metrics::CacheFigures {
            hits: s.hits,
            misses: s.misses,
            store_reads: s.store_reads,
            store_errors: s.store_errors,
            keys: s.cached_keys,
        }
    });
    let text = req.shared.metrics.render(figures);
    let mut resp = Response::new(wire::full(text));
    resp.headers_mut().insert(
        ::http::header::CONTENT_TYPE,
        ::http::HeaderValue::from_static(
            "text/plain; version=0.0.4; charset=utf-8; escaping=underscores",
        ),
    );
    resp
}

fn api(req: &Request<'_>) -> Response<Body> {
    #[derive(Serialize)]
    struct ApiRoute<'a> {
        method: &'a str,
        path: &'a str,
        max_body: u64,
        timeout: u64,
    }
    let routes: Vec<ApiRoute<'_>> = req
        .state
        .routes
        .routes()
        .iter()
        .filter(|r| r.listed)
        .map(|r| ApiRoute {
            method: r.method.as_str(),
            path: r.path,
            max_body: r.max_body,
            timeout: r.timeout.as_secs(),
        })
        .collect();
    wire::json(&routes)
}

async fn create_key(req: &Request<'_>) -> Result<Answer> {
    let name = key_name(req)?;
    let key = KeyVersion::generate(req.state.default_algorithm, caller(req));
    req.state
        .cache
        .create(name, &key)
        .await
        .map_err(|e| store_error(e, ApiError::CREATE_FAILED, "create", name))?;
    Ok(Answer {
        response: wire::empty_ok(),
        audit: Some(format!("secret key '{name}' created")),
    })
}

async fn import_key(req: &Request<'_>) -> Result<Answer> {
    let name = key_name(req)?;
    let body = req.body.ok_or(ApiError::INVALID_IMPORT_BODY)?;
    let json = GoJson::parse(body).map_err(|_| ApiError::INVALID_IMPORT_BODY)?;
    let bytes = zeroize::Zeroizing::new(
        json.bytes("key")
            .map_err(|_| ApiError::INVALID_IMPORT_BODY)?,
    );
    let cipher = json
        .string("cipher")
        .map_err(|_| ApiError::INVALID_IMPORT_BODY)?;
    let algorithm =
        KeyAlgorithm::parse(&cipher).ok_or_else(|| ApiError::unsupported_algorithm(&cipher))?;
    let raw: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| ApiError::invalid_key_size(&cipher))?;
    let key = KeyVersion {
        key: SecretKey::new(algorithm, raw),
        hmac_key: Some(HmacKey::generate()),
        created_at: OffsetDateTime::now_utc(),
        created_by: caller(req),
    };
    req.state
        .cache
        .create(name, &key)
        .await
        .map_err(|e| store_error(e, ApiError::CREATE_FAILED, "import", name))?;
    Ok(Answer {
        response: wire::empty_ok(),
        audit: Some(format!("secret key '{name}' created")),
    })
}

async fn get_key(req: &Request<'_>, name: &str) -> Result<Arc<KeyVersion>> {
    req.state
        .cache
        .get(name)
        .await
        .map_err(|e| store_error(e, ApiError::READ_FAILED, "read", name))
}

async fn describe_key(req: &Request<'_>) -> Result<Response<Body>> {
    let name = key_name(req)?;
    let key = get_key(req, name).await?;
    let mut doc = serde_json::Map::new();
    doc.insert("name".into(), name.into());
    doc.insert("algorithm".into(), key.key.algorithm().as_str().into());
    doc.insert(
        "created_at".into(),
        format_rfc3339_nano(key.created_at).into(),
    );
    if !key.created_by.is_empty() {
        doc.insert("created_by".into(), key.created_by.clone().into());
    }
    Ok(wire::json(&serde_json::Value::Object(doc)))
}

/// Query parameters of list endpoints. Without `limit`, every match is
/// returned in one response (the reference's 1024-name pages lose keys with
/// the Go SDK, which resends `continue_at` as the prefix).
pub struct Paging<'a> {
    continue_at: Option<&'a str>,
    limit: Option<usize>,
}

pub fn paging(query: &str) -> Paging<'_> {
    let mut p = Paging {
        continue_at: None,
        limit: None,
    };
    for kv in query.split('&') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "continue" | "continue_at" if !v.is_empty() => p.continue_at = Some(v),
            "limit" => p.limit = v.parse().ok().filter(|n| *n > 0),
            _ => {}
        }
    }
    p
}

/// Applies paging to sorted names: names from `continue_at` on, at most
/// `limit`; returns the page and the first name not returned.
pub fn page(names: Vec<String>, paging: &Paging<'_>) -> (Vec<String>, String) {
    let start = match paging.continue_at {
        Some(c) => names.partition_point(|n| n.as_str() < c),
        None => 0,
    };
    let mut names = names;
    let rest = names.split_off(start);
    match paging.limit {
        Some(limit) if rest.len() > limit => {
            let next = rest[limit].clone();
            let mut page = rest;
            page.truncate(limit);
            (page, next)
        }
        _ => (rest, String::new()),
    }
}

pub fn list_prefix(pattern: &str) -> Result<&str> {
    if !valid_pattern(pattern) {
        return Err(ApiError::invalid_pattern(pattern));
    }
    // The reference strips the trailing `*` for policies and identities but
    // not for keys (spec §16.3); we strip it everywhere.
    Ok(pattern.strip_suffix('*').unwrap_or(pattern))
}

async fn list_keys(req: &Request<'_>) -> Result<Response<Body>> {
    let prefix = list_prefix(req.resource)?;
    let names = req.state.cache.list(prefix).await.map_err(|e| {
        tracing::error!(prefix, error = %e, "failed to list keys");
        ApiError::LIST_FAILED
    })?;
    let (names, continue_at) = page(names, &paging(req.query));
    let size: usize = names.iter().map(|n| n.len() + 3).sum();
    if size > wire::STREAM_LISTING_ABOVE {
        return Ok(wire::names_stream(names, continue_at));
    }
    let mut doc = serde_json::Map::new();
    doc.insert("names".into(), names.into());
    if !continue_at.is_empty() {
        doc.insert("continue_at".into(), continue_at.into());
    }
    Ok(wire::json(&serde_json::Value::Object(doc)))
}

async fn delete_key(req: &Request<'_>) -> Result<Answer> {
    let name = key_name(req)?;
    req.state
        .cache
        .delete(name)
        .await
        .map_err(|e| store_error(e, ApiError::DELETE_FAILED, "delete", name))?;
    Ok(Answer {
        response: wire::empty_ok(),
        audit: Some(format!("secret key '{name}' deleted")),
    })
}

fn body_json(req: &Request<'_>) -> Result<GoJson> {
    let body = req.body.ok_or(ApiError::INVALID_REQUEST_BODY)?;
    GoJson::parse(body).map_err(|_| ApiError::INVALID_REQUEST_BODY)
}

async fn generate(req: &Request<'_>) -> Result<Response<Body>> {
    let name = key_name(req)?;
    // The body is optional: MinIO's first call sends a context, `kes key
    // dek` without one may send nothing.
    let context = match req.body {
        Some([]) => Vec::new(),
        _ => body_json(req)?
            .bytes("context")
            .map_err(|_| ApiError::INVALID_REQUEST_BODY)?,
    };
    let key = get_key(req, name).await?;
    let (plaintext, ciphertext) = key.generate_dek(&context);
    let plaintext = zeroize::Zeroizing::new(b64(plaintext.as_slice()));
    let ciphertext = b64(&ciphertext);
    Ok(wire::secret_json(
        &DataKey {
            plaintext: &plaintext,
            ciphertext: &ciphertext,
        },
        plaintext.len() + ciphertext.len() + 32,
    ))
}

async fn encrypt(req: &Request<'_>) -> Result<Response<Body>> {
    let name = key_name(req)?;
    let json = body_json(req)?;
    let plaintext = zeroize::Zeroizing::new(
        json.bytes("plaintext")
            .map_err(|_| ApiError::INVALID_REQUEST_BODY)?,
    );
    let context = json
        .bytes("context")
        .map_err(|_| ApiError::INVALID_REQUEST_BODY)?;
    let key = get_key(req, name).await?;
    let ciphertext = key.key.encrypt(&plaintext, &context);
    Ok(wire::json(&Ciphertext {
        ciphertext: &b64(&ciphertext),
    }))
}

async fn decrypt(req: &Request<'_>) -> Result<Response<Body>> {
    let name = key_name(req)?;
    let json = body_json(req)?;
    let ciphertext = json
        .bytes("ciphertext")
        .map_err(|_| ApiError::INVALID_REQUEST_BODY)?;
    let context = json
        .bytes("context")
        .map_err(|_| ApiError::INVALID_REQUEST_BODY)?;
    let key = get_key(req, name).await?;
    let plaintext = key
        .key
        .decrypt(&ciphertext, &context)
        .map_err(|_| ApiError::DECRYPT)?;
    let plaintext = zeroize::Zeroizing::new(b64(&plaintext));
    Ok(wire::secret_json(
        &Plaintext {
            plaintext: &plaintext,
        },
        plaintext.len() + 16,
    ))
}

async fn hmac(req: &Request<'_>) -> Result<Response<Body>> {
    let name = key_name(req)?;
    let json = body_json(req)?;
    let message = zeroize::Zeroizing::new(
        json.bytes("message")
            .map_err(|_| ApiError::INVALID_REQUEST_BODY)?,
    );
    let key = get_key(req, name).await?;
    let mac = key.hmac(&message).ok_or(ApiError::HMAC_NOT_SUPPORTED)?;
    Ok(wire::json(&Mac { hmac: &b64(&mac) }))
}

// The responses of the hot endpoints, in the Go KES's field order; typed
// so that no JSON map is built per request.
#[derive(Serialize)]
struct DataKey<'a> {
    plaintext: &'a str,
    ciphertext: &'a str,
}

#[derive(Serialize)]
struct Ciphertext<'a> {
    ciphertext: &'a str,
}

#[derive(Serialize)]
struct Plaintext<'a> {
    plaintext: &'a str,
}

#[derive(Serialize)]
struct Mac<'a> {
    hmac: &'a str,
}

/// Legacy `POST /v1/key/bulk/decrypt/<name>` (spec §6).
async fn bulk_decrypt(req: &Request<'_>) -> Result<Response<Body>> {
    const MAX: usize = 1000;
    let name = key_name(req)?;
    let body = req.body.ok_or(ApiError::INVALID_REQUEST_BODY)?;
    // Each entry is decoded like a single decrypt's body (Go's rules for
    // duplicate and case-folded field names), so both routes read the same
    // ciphertext and context from the same bytes.
    let items = GoJson::parse_list(body).map_err(|_| ApiError::INVALID_REQUEST_BODY)?;
    if items.len() > MAX {
        return Err(ApiError::TOO_MANY_CIPHERTEXTS);
    }
    let key = get_key(req, name).await?;
    let mut out: Vec<zeroize::Zeroizing<String>> = Vec::with_capacity(items.len());
    for j in items {
        let ct = j
            .bytes("ciphertext")
            .map_err(|_| ApiError::INVALID_REQUEST_BODY)?;
        let ctx = j
            .bytes("context")
            .map_err(|_| ApiError::INVALID_REQUEST_BODY)?;
        let pt = key.key.decrypt(&ct, &ctx).map_err(|_| ApiError::DECRYPT)?;
        out.push(zeroize::Zeroizing::new(b64(&pt)));
    }
    let doc: Vec<Plaintext<'_>> = out.iter().map(|p| Plaintext { plaintext: p }).collect();
    let capacity = out.iter().map(|p| p.len() + 16).sum::<usize>() + 2;
    Ok(wire::secret_json(&doc, capacity))
}

fn policy_name<'a>(req: &'a Request<'_>) -> Result<&'a str> {
    if valid_name(req.resource) {
        Ok(req.resource)
    } else {
        Err(ApiError::invalid_policy_name(req.resource))
    }
}

fn created_at(req: &Request<'_>) -> String {
    format_rfc3339_nano(req.state.loaded)
}

fn describe_policy(req: &Request<'_>) -> Result<Response<Body>> {
    let name = policy_name(req)?;
    if !req.state.policies.contains_key(name) {
        return Err(ApiError::POLICY_NOT_FOUND);
    }
    Ok(wire::json(&json!({
        "name": name,
        "created_at": created_at(req),
        "created_by": req.state.admin.as_str(),
    })))
}

fn pattern_set(patterns: &[String]) -> serde_json::Value {
    let map: BTreeMap<&str, serde_json::Value> =
        patterns.iter().map(|p| (p.as_str(), json!({}))).collect();
    json!(map)
}

fn policy_document(
    req: &Request<'_>,
    name: &str,
    policy: &kes_core::Policy,
) -> serde_json::Map<String, serde_json::Value> {
    let mut doc = serde_json::Map::new();
    doc.insert("name".into(), name.into());
    if !policy.allow.is_empty() {
        doc.insert("allow".into(), pattern_set(&policy.allow));
    }
    if !policy.deny.is_empty() {
        doc.insert("deny".into(), pattern_set(&policy.deny));
    }
    doc.insert("created_at".into(), created_at(req).into());
    doc.insert("created_by".into(), req.state.admin.as_str().into());
    doc
}

fn read_policy(req: &Request<'_>) -> Result<Response<Body>> {
    let name = policy_name(req)?;
    let policy = req
        .state
        .policies
        .get(name)
        .ok_or(ApiError::POLICY_NOT_FOUND)?;
    Ok(wire::json(&serde_json::Value::Object(policy_document(
        req, name, policy,
    ))))
}

fn list_policies(req: &Request<'_>) -> Result<Response<Body>> {
    let prefix = list_prefix(req.resource)?;
    let names: Vec<String> = req
        .state
        .policies
        .keys()
        .filter(|n| n.starts_with(prefix))
        .cloned()
        .collect();
    let (names, continue_at) = page(names, &paging(req.query));
    Ok(wire::json(
        &json!({ "names": names, "continue_at": continue_at }),
    ))
}

fn describe_identity(req: &Request<'_>) -> Result<Response<Body>> {
    if !valid_name(req.resource) {
        return Err(ApiError::invalid_identity(req.resource));
    }
    let id = Identity::new(req.resource);
    if id == req.state.admin {
        return Ok(wire::json(
            &json!({ "admin": true, "created_at": created_at(req) }),
        ));
    }
    match req.state.identities.get(&id) {
        Some(policy) => Ok(wire::json(&json!({
            "policy": policy,
            "created_at": created_at(req),
            "created_by": req.state.admin.as_str(),
        }))),
        None => Err(ApiError::IDENTITY_NOT_FOUND),
    }
}

/// Self-describe answers every caller (the reference looked up the empty
/// resource and answered 404 to every non-admin, spec §16.1). Non-admins
/// get the shape the Go SDK decodes: the policy name as a string and the
/// allow/deny sets at the top level.
fn self_describe(req: &Request<'_>) -> Result<Response<Body>> {
    let id = req.identity.ok_or(ApiError::CERTIFICATE_REQUIRED)?;
    if *id == req.state.admin {
        return Ok(wire::json(&json!({
            "identity": id.as_str(),
            "admin": true,
            "created_at": created_at(req),
        })));
    }
    let (name, policy) = req
        .state
        .policy_of(id)
        .ok_or(ApiError::IDENTITY_NOT_FOUND)?;
    let mut doc = serde_json::Map::new();
    doc.insert("identity".into(), id.as_str().into());
    doc.insert("policy".into(), name.into());
    doc.insert("created_at".into(), created_at(req).into());
    doc.insert("created_by".into(), req.state.admin.as_str().into());
    if !policy.allow.is_empty() {
        doc.insert("allow".into(), pattern_set(&policy.allow));
    }
    if !policy.deny.is_empty() {
        doc.insert("deny".into(), pattern_set(&policy.deny));
    }
    Ok(wire::json(&serde_json::Value::Object(doc)))
}

fn list_identities(req: &Request<'_>) -> Result<Response<Body>> {
    let prefix = list_prefix(req.resource)?;
    let mut ids: Vec<String> = req
        .state
        .identities
        .keys()
        .map(|i| i.to_string())
        .chain(std::iter::once(req.state.admin.to_string()))
        .filter(|i| i.starts_with(prefix))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let (ids, continue_at) = page(ids, &paging(req.query));
    Ok(wire::json(
        &json!({ "identities": ids, "continue_at": continue_at }),
    ))
}

/// An NDJSON stream of log events; headers go out at once (the reference
/// sent them only with the first event) and each event is flushed as it
/// happens. The body reads the subscription directly: nothing is queued
/// per subscriber beyond the connection's write buffer, and a subscriber
/// that falls behind loses events (see [`crate::logs::Subscription`])
/// rather than slowing the server down or holding memory. The stream ends
/// cleanly when the server stops.
fn log_stream(sub: crate::logs::Subscription) -> Response<Body> {
    let stream = futures_util::stream::unfold(sub, |mut sub| async move {
        let line = sub.next().await?;
        Some((
            Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(line)),
            sub,
        ))
    });
    let body = http_body_util::StreamBody::new(stream).boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = ::http::StatusCode::OK;
    resp.headers_mut().insert(
        ::http::header::CONTENT_TYPE,
        ::http::HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn paging_returns_everything_without_limit() {
        let all = names(&["a", "b", "c"]);
        assert_eq!(page(all.clone(), &paging("")), (all.clone(), String::new()));
        assert_eq!(
            page(all.clone(), &paging("limit=2")),
            (names(&["a", "b"]), "c".to_string())
        );
        assert_eq!(
            page(all.clone(), &paging("continue=c&limit=2")),
            (names(&["c"]), String::new())
        );
        assert_eq!(
            page(all, &paging("continue=bb")),
            (names(&["c"]), String::new())
        );
    }

    #[test]
    fn list_prefix_strips_star() {
        assert_eq!(list_prefix("golden-i*").unwrap(), "golden-i");
        assert_eq!(list_prefix("*").unwrap(), "");
        assert_eq!(list_prefix("").unwrap(), "");
        assert!(list_prefix("a.b").is_err());
    }
}
