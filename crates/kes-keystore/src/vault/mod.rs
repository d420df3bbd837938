//! HashiCorp Vault / OpenBao K/V key store.
//!
//! The layout is the Go KES's, so either implementation can read the
//! other's keys:
//!
//! * KV v1: the entry `<engine>/<prefix>/<name>` holds `{"<name>": "<value>"}`.
//! * KV v2: the same data at `<engine>/data/<prefix>/<name>`, written with
//!   `options.cas=0` (so a concurrent create cannot overwrite) and read at
//!   version 1: KES never updates a key, so version 1 is the key even if
//!   someone later writes more versions by hand. Only retirement rewrites
//!   an entry ([`KeyStore::replace_if`]: a check-and-set write, verified
//!   against a delete and create of the same name, then the older versions
//!   are destroyed); K/V v1 has no conditional write and refuses it.
//! * With transit wrapping the value is the `vault:v1:…` ciphertext of
//!   base64(value) under the transit key; reads detect that prefix.
//!
//! Two background tasks run per store: token renewal (at 80 % of the TTL,
//! a new login when renewal fails) and a health ping every `status.ping`
//! that tracks whether Vault is sealed, so that requests fail at once while
//! it is instead of waiting for Vault.

mod auth;
mod http;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hyper::{Method, StatusCode};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use self::auth::{Login, Token};
use self::http::{Http, Response, BODY_LIMIT, LIST_BODY_LIMIT};
use crate::config::VaultConfig;
use crate::{Error, KeyStore};

/// `status.ping` when the config leaves it unset.
const DEFAULT_PING: Duration = Duration::from_secs(10);

/// How long after creating a version entry on K/V v1 it is read back (see
/// `VaultKeyStore::settle_v1_version_entry`): far longer than a competing
/// write, whose existence check came before our write, takes to land.
const V1_CREATE_SETTLE: Duration = Duration::from_millis(500);
/// How long after its write a K/V v2 version that KES does not read yet
/// may still belong to a replacement in progress (`Inner::replace_if_v2`):
/// its check and its destroy, or its undo, are at most four requests of at
/// most 15 s each after the write. Older, it was left behind by a server
/// that stopped in between. Vault's clock stamps the version and ours
/// measures its age, so the two may be apart by up to a minute of this.
const IN_FLIGHT: Duration = Duration::from_secs(120);
/// Pause between login attempts of the renewal task while Vault refuses.
const LOGIN_RETRY: Duration = Duration::from_secs(1);
/// Longest pause between those attempts, so a long outage is not logged
/// every second.
const LOGIN_RETRY_MAX: Duration = Duration::from_secs(16);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KvVersion {
    V1,
    V2,
}

/// Accepts mount paths and prefixes made of URL-safe characters, so that
/// no config value can change the meaning of a request path.
fn check_path(path: &str, what: &str) -> Result<(), Error> {
    let ok = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        && !path.split('/').any(|seg| seg == "." || seg == "..");
    if ok {
        Ok(())
    } else {
        Err(Error::other(format!(
            "vault: invalid {what} '{path}': only A-Z a-z 0-9 - _ . / are allowed"
        )))
    }
}

/// Names reach us validated, but the store still refuses anything that
/// could leave the prefix or need escaping.
fn check_name(name: &str) -> Result<(), Error> {
    if crate::versions::valid_stored_name(name) {
        Ok(())
    } else {
        Err(Error::other(format!("vault: invalid key name '{name}'")))
    }
}

struct Layout {
    engine: String,
    prefix: String,
    version: KvVersion,
}

impl Layout {
    fn join(&self, middle: Option<&str>, name: &str) -> String {
        let mut path = self.engine.clone();
        for part in [middle.unwrap_or(""), &self.prefix, name] {
            if !part.is_empty() {
                path.push('/');
                path.push_str(part);
            }
        }
        path
    }

    fn read_path(&self, name: &str) -> String {
        match self.version {
            KvVersion::V1 => self.join(None, name),
            // Version 1, like the Go KES: the only one KES writes when it
            // creates an entry, so a version written by hand later does not
            // change a key. Only retirement writes more (see `replace_if`).
            KvVersion::V2 => format!("{}?version=1", self.join(Some("data"), name)),
        }
    }

    /// K/V v2: the latest version, where retirement left the first entry of
    /// a key after destroying version 1.
    fn latest_path(&self, name: &str) -> String {
        self.join(Some("data"), name)
    }

    fn write_path(&self, name: &str) -> String {
        match self.version {
            KvVersion::V1 => self.join(None, name),
            KvVersion::V2 => self.join(Some("data"), name),
        }
    }

    /// K/V v2: the metadata of an entry (all its versions).
    fn metadata_path(&self, name: &str) -> String {
        self.join(Some("metadata"), name)
    }

    fn destroy_path(&self, name: &str) -> String {
        self.join(Some("destroy"), name)
    }

    fn delete_path(&self, name: &str) -> String {
        match self.version {
            KvVersion::V1 => self.join(None, name),
            KvVersion::V2 => self.join(Some("metadata"), name),
        }
    }

    fn list_path(&self) -> String {
        let dir = match self.version {
            KvVersion::V1 => self.join(None, ""),
            KvVersion::V2 => self.join(Some("metadata"), ""),
        };
        format!("{dir}/?list=true")
    }
}

struct Transit {
    engine: String,
    key: String,
}

/// Whether a stored value is a transit ciphertext (`vault:v<N>:…`).
#[doc(hidden)]
pub fn is_transit_ciphertext(value: &str) -> bool {
    value.strip_prefix("vault:v").is_some_and(|rest| {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest.as_bytes().get(digits) == Some(&b':')
    })
}

/// The version number a K/V v2 write created.
#[derive(serde::Deserialize)]
struct KvV2Written {
    data: KvV2WrittenData,
}

#[derive(serde::Deserialize)]
struct KvV2WrittenData {
    version: u64,
    /// When the version was written (RFC 3339, nanoseconds): with the
    /// number, it tells this version from one of the same number in an
    /// entry deleted and created again since.
    #[serde(default)]
    created_time: String,
}

/// The metadata of a K/V v2 entry: `GET <engine>/metadata/<path>`.
#[derive(serde::Deserialize)]
struct KvV2Metadata {
    data: KvV2MetadataData,
}

#[derive(serde::Deserialize)]
struct KvV2MetadataData {
    /// When the entry was created. A delete of the metadata followed by a
    /// write of the same path makes a new entry, with a new time and its
    /// versions counted from 1 again.
    created_time: String,
    current_version: u64,
    #[serde(default)]
    versions: BTreeMap<String, KvV2VersionMetadata>,
}

#[derive(serde::Deserialize)]
struct KvV2VersionMetadata {
    #[serde(default)]
    created_time: String,
    #[serde(default)]
    deletion_time: String,
    #[serde(default)]
    destroyed: bool,
}

impl KvV2VersionMetadata {
    /// Neither deleted nor destroyed.
    fn readable(&self) -> bool {
        self.deletion_time.is_empty() && !self.destroyed
    }
}

impl KvV2MetadataData {
    fn version(&self, version: u64) -> Option<&KvV2VersionMetadata> {
        self.versions.get(&version.to_string())
    }

    /// The K/V version [`Inner::read`] returns: version 1 while it can be
    /// read, else the latest.
    fn read_version(&self) -> u64 {
        match self.version(1) {
            Some(v) if v.readable() => 1,
            _ => self.current_version,
        }
    }
}

use crate::BeforeWrite;

/// A K/V v2 write; with `cas=0` it only creates (fails if the entry
/// exists), without options it adds a version.
#[derive(serde::Serialize)]
struct KvV2Write<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<CheckAndSet>,
    data: BTreeMap<&'a str, &'a str>,
}

#[derive(serde::Serialize)]
struct CheckAndSet {
    cas: u64,
}

/// A secret string in a Vault response (a token, a transit plaintext):
/// copied from the response buffer straight into a buffer that is wiped
/// when dropped, never held in a `serde_json::Value`. A string with JSON
/// escapes passes through serde_json's scratch buffer first, which is freed
/// unwiped; tokens and the base64 values KES stores need no escapes.
pub(crate) struct SecretString(pub Zeroizing<String>);

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = SecretString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E>(self, v: &str) -> Result<SecretString, E> {
                Ok(SecretString(Zeroizing::new(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<SecretString, E> {
                Ok(SecretString(Zeroizing::new(v)))
            }
        }
        deserializer.deserialize_str(Visit)
    }
}

/// A field of a stored K/V entry: the string that holds a key (kept like a
/// [`SecretString`]) or anything else, which is skipped without being
/// kept.
enum EntryField {
    Text(Zeroizing<String>),
    Other,
}

impl<'de> serde::Deserialize<'de> for EntryField {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::IgnoredAny;
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = EntryField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<EntryField, E> {
                Ok(EntryField::Text(Zeroizing::new(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<EntryField, E> {
                Ok(EntryField::Text(Zeroizing::new(v)))
            }
            fn visit_bool<E>(self, _: bool) -> Result<EntryField, E> {
                Ok(EntryField::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<EntryField, E> {
                Ok(EntryField::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<EntryField, E> {
                Ok(EntryField::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<EntryField, E> {
                Ok(EntryField::Other)
            }
            fn visit_unit<E>(self) -> Result<EntryField, E> {
                Ok(EntryField::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<EntryField, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(EntryField::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<EntryField, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(EntryField::Other)
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// The fields of a K/V entry; `None` for a deleted K/V v2 version.
type EntryFields = Option<BTreeMap<String, EntryField>>;

/// Decodes a K/V read response into the entry's fields: `data` (v1) or
/// `data.data` (v2).
fn entry_fields(body: &[u8], version: KvVersion) -> serde_json::Result<EntryFields> {
    #[derive(serde::Deserialize)]
    struct V1 {
        data: Option<BTreeMap<String, EntryField>>,
    }
    #[derive(serde::Deserialize)]
    struct V2 {
        data: Option<V2Data>,
    }
    #[derive(serde::Deserialize)]
    struct V2Data {
        data: Option<BTreeMap<String, EntryField>>,
    }
    match version {
        // A v1 response without data is an entry without our field.
        KvVersion::V1 => Ok(Some(
            serde_json::from_slice::<V1>(body)?.data.unwrap_or_default(),
        )),
        // A deleted (not destroyed) v2 version has `data: null`.
        KvVersion::V2 => Ok(serde_json::from_slice::<V2>(body)?
            .data
            .and_then(|d| d.data)),
    }
}

/// Whether a Vault time stamp (RFC 3339) lies less than `age` back (or in
/// the future). A stamp that cannot be read counts as recent, which only
/// ever answers `Changed`.
fn written_within(stamp: &str, age: Duration) -> bool {
    use time::format_description::well_known::Rfc3339;
    match time::OffsetDateTime::parse(stamp, &Rfc3339) {
        Ok(at) => time::OffsetDateTime::now_utc() - at < age,
        Err(_) => true,
    }
}

/// Whether a K/V v2 404 answer describes a version (deleted or destroyed)
/// of an entry that exists, rather than an entry that does not.
fn describes_a_version(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Answer {
        data: Option<Data>,
    }
    #[derive(serde::Deserialize)]
    struct Data {
        metadata: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Answer>(body)
        .ok()
        .and_then(|a| a.data)
        .is_some_and(|d| d.metadata.is_some())
}

/// Serialises a request body that holds a secret straight into a buffer
/// that is zeroized on drop (a `serde_json::Value` would leave copies).
fn json_body<T: serde::Serialize>(value: &T) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut buf = Zeroizing::new(Vec::with_capacity(4096));
    serde_json::to_writer(&mut *buf, value)
        .map_err(|e| Error::other("vault: encoding a request").with_source(e))?;
    Ok(buf)
}

struct Inner {
    http: Http,
    layout: Layout,
    transit: Option<Transit>,
    namespace: Option<String>,
    login: Login,
    token: RwLock<Token>,
    /// Serialises logins, so a burst of failures leads to one login.
    login_lock: tokio::sync::Mutex<()>,
    /// Wakes the renewal task after a login it did not do itself.
    token_changed: Notify,
    /// Set by the health ping (or a 503) while Vault is sealed.
    sealed: AtomicBool,
}

/// The Vault / OpenBao K/V key store.
pub struct VaultKeyStore {
    inner: Arc<Inner>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// KV v1 has no check-and-set: a create is a read, then a write. Two
    /// creates of one name in this process are serialised so that neither
    /// can overwrite the other. Between servers the create-only policy of
    /// docs/vault.md narrows the gap but cannot close it (Vault's existence
    /// check is not atomic with the write), so version entries are also
    /// read back (`settle_v1_version_entry`); KV v2 uses `cas=0`.
    v1_creates: tokio::sync::Mutex<()>,
    before_write: Mutex<Option<BeforeWrite>>,
}

impl fmt::Debug for VaultKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultKeyStore")
            .field("endpoint", &self.inner.http.endpoint())
            .field("engine", &self.inner.layout.engine)
            .field("version", &self.inner.layout.version)
            .field("prefix", &self.inner.layout.prefix)
            .field("auth", &self.inner.login)
            .finish_non_exhaustive()
    }
}

/// The start-up warning for a Vault endpoint without TLS, if the endpoint
/// is one: the token, the login credentials and every key would cross the
/// network readable to anyone on the path. [`connect`] logs it.
pub fn plain_http_warning(config: &VaultConfig) -> Option<String> {
    let endpoint = config.endpoint.trim();
    is_plain_http(endpoint).then(|| {
        format!(
            "keystore.vault.endpoint '{endpoint}' is plain HTTP: the Vault token, \
             the login credentials and every key travel in clear"
        )
    })
}

/// Whether an endpoint URL has the `http` scheme.
fn is_plain_http(endpoint: &str) -> bool {
    endpoint
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
}

/// Connects to Vault: checks the config, logs in and starts the token
/// renewal and health-ping tasks. Fails if Vault cannot be reached or the
/// login is refused. Logs a warning for a plain `http://` endpoint.
pub async fn connect(config: &VaultConfig) -> Result<VaultKeyStore, Error> {
    VaultKeyStore::connect(config).await
}

impl VaultKeyStore {
    /// K/V v1 has no atomic create: Vault tells `create` from `update` by
    /// an existence check that is not part of the write, so two servers
    /// creating one entry at the same moment can both be told they created
    /// it while the later write replaces the earlier. For a key version
    /// that would lose everything sealed with the replaced version (the
    /// key store contract test of concurrent rotations on three servers
    /// caught it: 13 rotations answered, 12 versions kept). So a version
    /// entry (or retirement lock) is read back once any write that raced
    /// with ours has long landed: another value means the race was lost,
    /// and the caller is told the entry exists (a rotation then creates
    /// the next version). First entries of keys keep the Go KES's
    /// behaviour: no wait on a key create.
    async fn settle_v1_version_entry(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        use subtle::ConstantTimeEq as _;
        tokio::time::sleep(V1_CREATE_SETTLE).await;
        match self.get(name).await {
            Ok(stored) if bool::from(stored.as_slice().ct_eq(value)) => Ok(()),
            Ok(_) => Err(Error::KeyExists),
            Err(Error::KeyNotFound) => Err(Error::other(format!(
                "vault: '{name}' was gone right after it was created"
            ))),
            Err(e) => Err(e),
        }
    }

    /// Installs (or with `None` removes) a hook that `replace_if` awaits
    /// between its compare and its conditional write. Only for tests that
    /// put another mutation into exactly that window; not an API.
    #[doc(hidden)]
    pub fn set_before_conditional_write(&self, hook: Option<BeforeWrite>) {
        *kes_core::sync::lock(&self.before_write) = hook;
    }

    fn before_write_hook(&self) -> Option<BeforeWrite> {
        kes_core::sync::lock(&self.before_write).clone()
    }

    /// `replace_if` on K/V v2 ([`Inner::replace_if_v2`]), run as a task of
    /// its own so that it goes to its end even when the request that
    /// started it is cancelled: a write without its check and its destroy
    /// would leave a newer version that holds up the next retirement of
    /// the key for [`IN_FLIGHT`].
    async fn replace_if_v2(&self, name: &str, current: &[u8], value: &[u8]) -> Result<(), Error> {
        let inner = Arc::clone(&self.inner);
        let hook = self.before_write_hook();
        let name = name.to_owned();
        let current = Zeroizing::new(current.to_vec());
        let value = Zeroizing::new(value.to_vec());
        tokio::spawn(async move { inner.replace_if_v2(&name, &current, &value, hook).await })
            .await
            .map_err(|e| {
                Error::other("vault: replacing an entry: the task failed").with_source(e)
            })?
    }

    /// See [`connect`].
    pub async fn connect(config: &VaultConfig) -> Result<VaultKeyStore, Error> {
        if config.endpoint.trim().is_empty() {
            return Err(Error::other("vault: no endpoint configured"));
        }
        let engine = config.engine.trim().trim_matches('/');
        let engine = if engine.is_empty() { "kv" } else { engine };
        check_path(engine, "engine")?;
        let prefix = config.prefix.trim().trim_matches('/');
        check_path(prefix, "prefix")?;
        let version = match config.version.trim() {
            "" | "v1" => KvVersion::V1,
            "v2" => KvVersion::V2,
            other => {
                return Err(Error::other(format!(
                    "vault: invalid K/V version '{other}': expected v1 or v2"
                )))
            }
        };
        let transit = match &config.transit {
            None => None,
            Some(t) => {
                let engine = t.engine.trim().trim_matches('/');
                let engine = if engine.is_empty() { "transit" } else { engine };
                check_path(engine, "transit engine")?;
                let key = t.key.trim();
                if key.is_empty() {
                    return Err(Error::other("vault: transit: missing key name"));
                }
                check_path(key, "transit key")?;
                if key.contains('/') {
                    return Err(Error::other(
                        "vault: transit: key name must not contain '/'",
                    ));
                }
                Some(Transit {
                    engine: engine.to_string(),
                    key: key.to_string(),
                })
            }
        };
        let namespace = match config.namespace.trim().trim_matches('/') {
            "" => None,
            ns => Some(ns.to_string()),
        };
        let login = Login::from_config(config, &namespace)?;
        let http = Http::new(config)?;
        // Accepted, as for a Vault on the same host or behind a local
        // proxy, but said out loud before the first credential is sent.
        if let Some(warning) = plain_http_warning(config) {
            tracing::warn!("{warning}");
        }
        let token = login.login(&http, 0).await?;

        let inner = Arc::new(Inner {
            http,
            layout: Layout {
                engine: engine.to_string(),
                prefix: prefix.to_string(),
                version,
            },
            transit,
            namespace,
            login,
            token: RwLock::new(token),
            login_lock: tokio::sync::Mutex::new(()),
            token_changed: Notify::new(),
            sealed: AtomicBool::new(false),
        });
        let ping = if config.status_ping.is_zero() {
            DEFAULT_PING
        } else {
            config.status_ping
        };
        // Dropping the store aborts these tasks even without `close`.
        let tasks = vec![
            tokio::spawn(renew_token(inner.clone())),
            tokio::spawn(ping_health(inner.clone(), ping)),
        ];
        Ok(VaultKeyStore {
            inner,
            tasks: Mutex::new(tasks),
            v1_creates: tokio::sync::Mutex::new(()),
            before_write: Mutex::new(None),
        })
    }
}

impl Drop for VaultKeyStore {
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

/// Keeps the token alive: renews it at 80 % of its TTL and logs in again
/// when renewal fails, is refused, or cannot give a useful TTL any more.
async fn renew_token(inner: Arc<Inner>) {
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
async fn ping_health(inner: Arc<Inner>, every: Duration) {
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
    fn current_token(&self) -> Token {
        kes_core::sync::read(&self.token).clone()
    }

    fn store_token(&self, token: Token) {
        *kes_core::sync::write(&self.token) = token;
    }

    /// Stores a renewed token unless a login replaced it meanwhile: the
    /// newer token must not be overwritten by the older one.
    fn store_renewed(&self, token: Token) {
        let mut current = kes_core::sync::write(&self.token);
        if current.generation == token.generation {
            *current = token;
        }
    }

    fn auth_namespace(&self) -> Option<&str> {
        match &self.login {
            Login::AppRole { namespace, .. } | Login::Kubernetes { namespace, .. } => {
                namespace.as_deref()
            }
        }
    }

    /// Logs in again unless someone else already replaced the token of
    /// `generation`; returns the token to use.
    async fn relogin(&self, generation: u64) -> Result<Token, Error> {
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
    async fn token_alive(&self, token: &Token) -> bool {
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
    async fn valid_token(&self) -> Result<Token, Error> {
        let token = self.current_token();
        if token.expired(Instant::now()) {
            return self.relogin(token.generation).await;
        }
        Ok(token)
    }

    /// `sys/health`, which Vault answers without a token and outside any
    /// namespace. Updates the sealed flag.
    async fn health(&self) -> Result<Duration, Error> {
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
    async fn call(
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

    fn failure(&self, op: &str, name: &str, resp: &Response) -> Error {
        Error::other(format!(
            "vault: {op} '{name}' failed ({}): {}",
            resp.status,
            resp.vault_errors()
        ))
    }

    /// `replace_if` on K/V v2.
    ///
    /// 1. Read the entry's metadata: its `created_time` (when this entry
    ///    was created) and `current_version` N; then the value KES reads
    ///    (version 1, or the latest once a retirement destroyed it) and
    ///    compare it with `current`. While KES reads version 1 but a newer
    ///    version exists, another replacement has written and not yet
    ///    destroyed: `Changed` (unless that version is older than
    ///    [`IN_FLIGHT`]: then it was left over and is written over).
    /// 2. Write the new value with `cas=N`: Vault refuses it if any version
    ///    was written since step 1 (`Changed`). This is the linearization
    ///    point, with one hole: versions count from 1 again in an entry that
    ///    was deleted (metadata delete, as KES deletes) and created anew, so
    ///    `cas=N` also matches a new key of the same name that reached
    ///    version N (ABA).
    /// 3. Close it: read the metadata again. The same `created_time` means
    ///    our version N+1 went into the entry compared in step 1 (a new
    ///    entry gets a new time, to the nanosecond) and nothing can take it
    ///    back: done. Another time means it went into a new key: undo it
    ///    (`undo_foreign_write`) so that the new key reads as before, and
    ///    answer `Changed`.
    /// 4. Only then destroy versions 1..=N, the retired key material.
    ///
    /// What remains: Vault destroys unconditionally, so a delete and a
    /// create of the same name that both complete between the check of
    /// step 3 and the destroy of step 4 (at least four requests of another
    /// server within one of ours) would lose the new key's first versions.
    /// The metadata is read once more after the destroy to report that
    /// case in the error log.
    async fn replace_if_v2(
        &self,
        name: &str,
        current: &[u8],
        value: &[u8],
        before_write: Option<BeforeWrite>,
    ) -> Result<(), Error> {
        let inner = self;
        let Some(before) = inner.metadata(name).await? else {
            return Err(Error::KeyNotFound);
        };
        // KES reads version 1 while it exists: a version written after it
        // is either a replacement between its write and its destroy (a
        // check-and-set on the current version would pass over it), or
        // left over by one that never finished (or written by hand).
        let read = before.read_version();
        if read < before.current_version {
            let newest = before.version(before.current_version);
            if newest.is_some_and(|v| v.readable() && written_within(&v.created_time, IN_FLIGHT)) {
                return Err(Error::Changed);
            }
            // Left over: never read by KES, written over and destroyed
            // with the rest below.
        }
        // Read after the metadata: a write in between raises the current
        // version, and the check-and-set below fails.
        match inner.read_value(name).await? {
            None => return Err(Error::KeyNotFound),
            Some(stored) if *stored != *current => return Err(Error::Changed),
            Some(_) => {}
        }
        if let Some(hook) = before_write {
            hook().await;
        }
        let cas = CheckAndSet {
            cas: before.current_version,
        };
        let resp = inner.write(name, value, Some(cas)).await?;
        match resp.status {
            StatusCode::OK | StatusCode::NO_CONTENT => {}
            // Also what a write with cas > 0 gets once the entry is gone.
            StatusCode::BAD_REQUEST if resp.vault_errors().contains("check-and-set") => {
                return Err(Error::Changed)
            }
            _ => return Err(inner.failure("replacing", name, &resp)),
        }
        let written: KvV2Written = serde_json::from_slice(&resp.body).map_err(|e| {
            Error::other(format!(
                "vault: replacing '{name}': malformed response: {e}"
            ))
        })?;
        let written = written.data;
        // Vault numbers the version a check-and-set on N makes N+1; any
        // other answer is not Vault's and nothing below could rely on it.
        if written.version != before.current_version + 1 {
            return Err(Error::other(format!(
                "vault: replacing '{name}': a write with cas={} made version {}",
                before.current_version, written.version
            )));
        }
        match inner.metadata(name).await? {
            Some(after) if after.created_time == before.created_time => {}
            // Deleted since our write: nothing of it is left to undo.
            None => return Err(Error::KeyNotFound),
            Some(after) => {
                inner.undo_foreign_write(name, &after, &written).await?;
                return Err(Error::Changed);
            }
        }
        let older: Vec<u64> = (1..written.version).collect();
        inner.destroy(name, &older).await?;
        if let Some(after) = inner.metadata(name).await? {
            if after.created_time != before.created_time {
                tracing::error!(
                    key = name,
                    "vault: the key was deleted and created again while its retired versions \
                     were destroyed: the new key may have lost K/V versions 1 to {}",
                    written.version - 1
                );
            }
        }
        Ok(())
    }

    /// Undoes a `replace_if` write that landed in a new entry of the same
    /// name (see `replace_if_v2`), described by `now`, its metadata read
    /// after the write. Vault keeps versions apart by number only, so ours
    /// is the version of our number with our `created_time`; if there is
    /// none, the new entry was deleted as well and took our write with it.
    ///
    /// If the new key is read from version 1 (it was never retired), our
    /// version was never visible: destroying it is the whole undo. If it is
    /// read from the latest version (it was retired, and our write became
    /// the latest), the version before ours, which KES read until then, is
    /// written again on top (check-and-set on our version) before ours is
    /// destroyed. Between our write and that rewrite, a reader of the new
    /// key gets our value: that needs a delete, a create, a rotation and a
    /// retirement of the key by other servers within two requests of ours.
    async fn undo_foreign_write(
        &self,
        name: &str,
        now: &KvV2MetadataData,
        written: &KvV2WrittenData,
    ) -> Result<(), Error> {
        let inner = self;
        let ours = written.version;
        if now
            .version(ours)
            .is_none_or(|v| v.created_time != written.created_time)
        {
            return Ok(());
        }
        if now.read_version() == ours {
            let restored = match inner.read_stored_version(name, ours - 1).await? {
                Some(stored) => {
                    let resp = inner
                        .write_stored(name, &stored, Some(CheckAndSet { cas: ours }))
                        .await?;
                    matches!(resp.status, StatusCode::OK | StatusCode::NO_CONTENT)
                }
                None => false,
            };
            if !restored {
                return Err(Error::other(format!(
                    "vault: '{name}' was deleted and created again during a retirement, \
                     and the new key could not be restored: K/V version {ours} of it holds \
                     the retired key's value"
                )));
            }
        }
        inner.destroy(name, &[ours]).await
    }

    /// Reads the stored string of `name`, or `None` if there is none.
    async fn read(&self, name: &str) -> Result<Option<Zeroizing<String>>, Error> {
        let mut resp = self
            .call(Method::GET, &self.layout.read_path(name), None, BODY_LIMIT)
            .await?;
        // No version 1 on K/V v2: either no entry, or a retirement
        // destroyed version 1 and the entry lives on in a later version.
        // Version entries are never rewritten, but a retirement lease may
        // be taken over (`replace_if`): for them the answer tells, as Vault
        // describes the missing version when the entry exists, which saves
        // a second request for the many reads of entries that do not exist.
        if resp.status == StatusCode::NOT_FOUND
            && self.layout.version == KvVersion::V2
            && (crate::versions::is_key_name(name) || describes_a_version(&resp.body))
        {
            resp = self
                .call(
                    Method::GET,
                    &self.layout.latest_path(name),
                    None,
                    BODY_LIMIT,
                )
                .await?;
        }
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if resp.status != StatusCode::OK {
            return Err(self.failure("reading", name, &resp));
        }
        decode::kv_entry(&resp.body, name, self.layout.version == KvVersion::V2)
    }

    /// The value of `name` as KES sees it (transit-decrypted), or `None`.
    async fn read_value(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        let Some(stored) = self.read(name).await? else {
            return Ok(None);
        };
        if is_transit_ciphertext(&stored) {
            return self.transit_decrypt(name, &stored).await.map(Some);
        }
        Ok(Some(Zeroizing::new(stored.as_bytes().to_vec())))
    }

    /// K/V v2: the stored string of one version of `name`, or `None` if
    /// that version cannot be read (deleted, destroyed, never written).
    async fn read_stored_version(
        &self,
        name: &str,
        version: u64,
    ) -> Result<Option<Zeroizing<String>>, Error> {
        let path = format!("{}?version={version}", self.layout.latest_path(name));
        let resp = self.call(Method::GET, &path, None, BODY_LIMIT).await?;
        match resp.status {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::OK => decode::kv_entry(&resp.body, name, true),
            _ => Err(self.failure("reading", name, &resp)),
        }
    }

    /// K/V v2: the metadata of `name`, or `None` if there is no entry.
    async fn metadata(&self, name: &str) -> Result<Option<KvV2MetadataData>, Error> {
        let resp = self
            .call(
                Method::GET,
                &self.layout.metadata_path(name),
                None,
                BODY_LIMIT,
            )
            .await?;
        match resp.status {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::OK => serde_json::from_slice::<KvV2Metadata>(&resp.body)
                .map(|m| Some(m.data))
                .map_err(|e| {
                    Error::other(format!(
                        "vault: reading the metadata of '{name}': malformed response"
                    ))
                    .with_source(e)
                }),
            _ => Err(self.failure("reading the metadata of", name, &resp)),
        }
    }

    /// K/V v2: destroys the listed versions of `name` (their data is gone
    /// for good; the metadata keeps their numbers). Vault destroys without
    /// any condition: callers make sure the versions are theirs first.
    async fn destroy(&self, name: &str, versions: &[u64]) -> Result<(), Error> {
        if versions.is_empty() {
            return Ok(());
        }
        let body = json_body(&serde_json::json!({ "versions": versions }))?;
        let resp = self
            .call(
                Method::PUT,
                &self.layout.destroy_path(name),
                Some(body),
                BODY_LIMIT,
            )
            .await?;
        match resp.status {
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            _ => Err(self.failure("destroying old versions of", name, &resp)),
        }
    }

    /// Writes `value` (transit-encrypted if configured) as the entry
    /// `name`: the data `{"<name>": "<value>"}`, with `options` on K/V v2.
    async fn write(
        &self,
        name: &str,
        value: &[u8],
        options: Option<CheckAndSet>,
    ) -> Result<Response, Error> {
        let stored = self.stored_value(value).await?;
        self.write_stored(name, &stored, options).await
    }

    /// Writes a string as stored (already transit-encrypted if it is).
    async fn write_stored(
        &self,
        name: &str,
        stored: &str,
        options: Option<CheckAndSet>,
    ) -> Result<Response, Error> {
        let data = BTreeMap::from([(name, stored)]);
        let body = match self.layout.version {
            KvVersion::V1 => json_body(&data)?,
            KvVersion::V2 => json_body(&KvV2Write { options, data })?,
        };
        self.call(
            Method::PUT,
            &self.layout.write_path(name),
            Some(body),
            BODY_LIMIT,
        )
        .await
    }

    /// What is written for a key value: the transit ciphertext of it, or
    /// the value itself (KES values are text).
    async fn stored_value(&self, value: &[u8]) -> Result<Zeroizing<String>, Error> {
        match &self.transit {
            Some(transit) => Ok(Zeroizing::new(self.transit_encrypt(transit, value).await?)),
            None => Ok(Zeroizing::new(
                std::str::from_utf8(value)
                    .map_err(|_| Error::other("vault: key value is not UTF-8 text"))?
                    .to_string(),
            )),
        }
    }

    async fn transit_encrypt(&self, transit: &Transit, value: &[u8]) -> Result<String, Error> {
        let plaintext = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(value));
        let body = json_body(&BTreeMap::from([("plaintext", plaintext.as_str())]))?;
        let resp = self
            .transit_call(transit, "encrypt", "encrypt", body)
            .await?;
        decode::transit_ciphertext(&resp.body)
    }

    /// Posts `body` to the transit engine's `op` endpoint (`encrypt` or
    /// `decrypt`); `what` names the operation in the error.
    async fn transit_call(
        &self,
        transit: &Transit,
        op: &str,
        what: &str,
        body: Zeroizing<Vec<u8>>,
    ) -> Result<Response, Error> {
        let path = format!("{}/{op}/{}", transit.engine, transit.key);
        let resp = self
            .call(Method::POST, &path, Some(body), BODY_LIMIT)
            .await?;
        if !resp.status.is_success() {
            return Err(Error::other(format!(
                "vault: transit {what} with key '{}' failed ({}): {}",
                transit.key,
                resp.status,
                resp.vault_errors()
            )));
        }
        Ok(resp)
    }

    async fn transit_decrypt(
        &self,
        name: &str,
        ciphertext: &str,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let Some(transit) = &self.transit else {
            return Err(Error::other(format!(
                "vault: key '{name}' is transit-encrypted but no transit key is configured"
            )));
        };
        let body = serde_json::json!({ "ciphertext": ciphertext }).to_string();
        let what = format!("decrypt of '{name}'");
        let resp = self
            .transit_call(transit, "decrypt", &what, Zeroizing::new(body.into_bytes()))
            .await?;
        decode::transit_plaintext(&resp.body, name)
    }
}

#[async_trait::async_trait]
impl KeyStore for VaultKeyStore {
    async fn status(&self) -> Result<Duration, Error> {
        self.inner.health().await
    }

    async fn create(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        check_name(name)?;
        let inner = &self.inner;
        let _serialised = match inner.layout.version {
            KvVersion::V1 => Some(self.v1_creates.lock().await),
            KvVersion::V2 => None,
        };
        if inner.read(name).await?.is_some() {
            return Err(Error::KeyExists);
        }
        // K/V v2 writes with cas=0: only if the entry does not exist.
        let resp = inner
            .write(name, value, Some(CheckAndSet { cas: 0 }))
            .await?;
        drop(_serialised);
        match resp.status {
            StatusCode::OK | StatusCode::NO_CONTENT
                if inner.layout.version == KvVersion::V1 && !crate::versions::is_key_name(name) =>
            {
                self.settle_v1_version_entry(name, value).await
            }
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            StatusCode::BAD_REQUEST if resp.vault_errors().contains("check-and-set") => {
                Err(Error::KeyExists)
            }
            // With the recommended policy (create but no update), Vault
            // refuses to write over an entry that appeared since our read:
            // the race was lost, nothing was overwritten.
            StatusCode::FORBIDDEN if inner.read(name).await?.is_some() => Err(Error::KeyExists),
            _ => Err(inner.failure("creating", name, &resp)),
        }
    }

    async fn replace_if(&self, name: &str, current: &[u8], value: &[u8]) -> Result<(), Error> {
        check_name(name)?;
        match self.inner.layout.version {
            // Vault K/V v1 writes unconditionally: a compare followed by a
            // write could bring back a key deleted in between, or overwrite
            // a new key of the same name. Refused rather than risked.
            KvVersion::V1 => Err(Error::other(format!(
                "vault: K/V v1 has no conditional write, so '{name}' cannot be retired safely: use K/V v2"
            ))),
            KvVersion::V2 => self.replace_if_v2(name, current, value).await,
        }
    }

    /// Vault has no conditional delete: this compares, then deletes. A
    /// delete and a create of the same name landing between the two would
    /// be deleted in place of the compared entry. Only the release of a
    /// retirement lease uses it, and the lease is advisory (retirement is
    /// safe through `replace_if` alone), so that window, two requests wide,
    /// is accepted.
    async fn delete_if(&self, name: &str, current: &[u8]) -> Result<(), Error> {
        check_name(name)?;
        let inner = &self.inner;
        match inner.read_value(name).await? {
            None => return Err(Error::KeyNotFound),
            Some(stored) if *stored != *current => return Err(Error::Changed),
            Some(_) => {}
        }
        let resp = inner
            .call(
                Method::DELETE,
                &inner.layout.delete_path(name),
                None,
                BODY_LIMIT,
            )
            .await?;
        match resp.status {
            StatusCode::OK | StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(inner.failure("deleting", name, &resp)),
        }
    }

    async fn get(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        check_name(name)?;
        self.inner.read_value(name).await?.ok_or(Error::KeyNotFound)
    }

    async fn delete(&self, name: &str) -> Result<(), Error> {
        check_name(name)?;
        let inner = &self.inner;
        // Vault deletes a missing entry without complaint; the read tells
        // the caller the truth, like the other key stores do.
        if inner.read(name).await?.is_none() {
            return Err(Error::KeyNotFound);
        }
        let resp = inner
            .call(
                Method::DELETE,
                &inner.layout.delete_path(name),
                None,
                BODY_LIMIT,
            )
            .await?;
        match resp.status {
            StatusCode::OK | StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(inner.failure("deleting", name, &resp)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let inner = &self.inner;
        let resp = inner
            .call(
                Method::GET,
                &inner.layout.list_path(),
                None,
                LIST_BODY_LIMIT,
            )
            .await?;
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if resp.status != StatusCode::OK {
            return Err(Error::other(format!(
                "vault: listing keys failed ({}): {}",
                resp.status,
                resp.vault_errors()
            )));
        }
        decode::key_names(&resp.body, prefix)
    }

    async fn close(&self) {
        let tasks = match self.tasks.lock() {
            Ok(mut tasks) => std::mem::take(&mut *tasks),
            Err(_) => Vec::new(),
        };
        for task in tasks {
            task.abort();
        }
    }
}

/// The decoders of Vault response bodies: pure functions, public so that
/// the fuzz targets reach them (not an API).
#[doc(hidden)]
pub mod decode {
    use base64::Engine as _;
    use hyper::StatusCode;
    use zeroize::Zeroizing;

    pub use super::auth::Token;
    pub use super::is_transit_ciphertext;
    use crate::Error;

    /// The `errors` array of a Vault error body, joined, for the error log.
    /// Vault never echoes secret values or tokens in it.
    pub fn errors(status: StatusCode, body: &[u8]) -> String {
        #[derive(serde::Deserialize)]
        struct Errors {
            #[serde(default)]
            errors: Vec<String>,
        }
        match serde_json::from_slice::<Errors>(body) {
            Ok(e) if !e.errors.is_empty() => {
                let mut msg = e.errors.join("; ");
                if msg.len() > 512 {
                    let mut end = 512;
                    while !msg.is_char_boundary(end) {
                        end -= 1;
                    }
                    msg.truncate(end);
                }
                msg
            }
            _ => format!("HTTP {status}"),
        }
    }

    /// The stored string of `name` in a K/V read response, or `None` for a
    /// deleted K/V v2 version. The value is decoded straight into a wiped
    /// string, never into a `serde_json::Value`.
    pub fn kv_entry(body: &[u8], name: &str, v2: bool) -> Result<Option<Zeroizing<String>>, Error> {
        use super::{entry_fields, EntryField, KvVersion};
        let version = if v2 { KvVersion::V2 } else { KvVersion::V1 };
        let fields = entry_fields(body, version).map_err(|e| {
            Error::other(format!("vault: reading '{name}': malformed response")).with_source(e)
        })?;
        let Some(mut fields) = fields else {
            return Ok(None);
        };
        match fields.remove(name) {
            Some(EntryField::Text(s)) => Ok(Some(s)),
            Some(EntryField::Other) => Err(Error::other(format!(
                "vault: entry '{name}' holds a non-string value"
            ))),
            None => Err(Error::other(format!(
                "vault: entry '{name}' has no field '{name}'"
            ))),
        }
    }

    /// The `vault:v…` ciphertext of a transit encrypt response.
    pub fn transit_ciphertext(body: &[u8]) -> Result<String, Error> {
        #[derive(serde::Deserialize)]
        struct Out {
            data: OutData,
        }
        #[derive(serde::Deserialize)]
        struct OutData {
            ciphertext: String,
        }
        let out: Out = serde_json::from_slice(body).map_err(|e| {
            Error::other("vault: transit encrypt: malformed response").with_source(e)
        })?;
        if !is_transit_ciphertext(&out.data.ciphertext) {
            return Err(Error::other(
                "vault: transit encrypt returned no vault:v ciphertext",
            ));
        }
        Ok(out.data.ciphertext)
    }

    /// The stored value in a transit decrypt response of key `name`, decoded
    /// through wiped buffers only.
    pub fn transit_plaintext(body: &[u8], name: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        use super::SecretString;
        #[derive(serde::Deserialize)]
        struct Out {
            data: OutData,
        }
        #[derive(serde::Deserialize)]
        struct OutData {
            plaintext: SecretString,
        }
        let out: Out = serde_json::from_slice(body).map_err(|_| {
            Error::other(format!(
                "vault: transit decrypt of '{name}': malformed response"
            ))
        })?;
        let SecretString(plaintext) = out.data.plaintext;
        // Decoded into a buffer big enough from the start, so that nothing
        // reallocates (and leaves a copy) on the way.
        let mut value = Zeroizing::new(Vec::with_capacity(base64::decoded_len_estimate(
            plaintext.len(),
        )));
        base64::engine::general_purpose::STANDARD
            .decode_vec(plaintext.as_bytes(), &mut value)
            .map_err(|_| {
                Error::other(format!(
                    "vault: transit decrypt of '{name}': plaintext is not base64"
                ))
            })?;
        Ok(value)
    }

    /// The key names starting with `prefix` in a LIST response.
    pub fn key_names(body: &[u8], prefix: &str) -> Result<Vec<String>, Error> {
        #[derive(serde::Deserialize)]
        struct Listing {
            data: ListData,
        }
        #[derive(serde::Deserialize)]
        struct ListData {
            #[serde(default)]
            keys: Vec<String>,
        }
        let listing: Listing = serde_json::from_slice(body)
            .map_err(|e| Error::other("vault: listing keys: malformed response").with_source(e))?;
        // Entries ending in `/` are sub-folders, not keys.
        Ok(listing
            .data
            .keys
            .into_iter()
            .filter(|k| !k.ends_with('/') && k.starts_with(prefix))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(engine: &str, prefix: &str, version: KvVersion) -> Layout {
        Layout {
            engine: engine.into(),
            prefix: prefix.into(),
            version,
        }
    }

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
            let token = decode::Token::from_auth_response(body.as_bytes(), issued, 0).unwrap();
            assert!(!token.expired(issued));
            assert!(!token.expired(issued + Duration::from_secs(3600)));
            assert!(token.renew_at().unwrap() > issued + Duration::from_secs(3600));
        }
    }

    #[test]
    fn paths_follow_the_go_kes_layout() {
        let v1 = layout("kv", "", KvVersion::V1);
        assert_eq!(v1.read_path("k"), "kv/k");
        assert_eq!(v1.write_path("k"), "kv/k");
        assert_eq!(v1.delete_path("k"), "kv/k");
        assert_eq!(v1.list_path(), "kv/?list=true");
        let v2 = layout("secret", "kes/a", KvVersion::V2);
        assert_eq!(v2.read_path("k"), "secret/data/kes/a/k?version=1");
        assert_eq!(v2.latest_path("k"), "secret/data/kes/a/k");
        assert_eq!(v2.destroy_path("k"), "secret/destroy/kes/a/k");
        assert_eq!(v2.write_path("k"), "secret/data/kes/a/k");
        assert_eq!(v2.delete_path("k"), "secret/metadata/kes/a/k");
        assert_eq!(v2.list_path(), "secret/metadata/kes/a/?list=true");
    }

    #[test]
    fn transit_prefix_detection() {
        assert!(is_transit_ciphertext("vault:v1:abc"));
        assert!(is_transit_ciphertext("vault:v12:abc"));
        assert!(!is_transit_ciphertext("vault:v:abc"));
        assert!(!is_transit_ciphertext("vault:vx:abc"));
        assert!(!is_transit_ciphertext("CiQKIOwvcxe1"));
        assert!(!is_transit_ciphertext("{\"bytes\":\"...\"}"));
    }

    fn text(fields: EntryFields, name: &str) -> Option<String> {
        match fields.unwrap().remove(name) {
            Some(EntryField::Text(s)) => Some(s.to_string()),
            Some(EntryField::Other) => Some("<other>".into()),
            None => None,
        }
    }

    #[test]
    fn stored_entries_decode_to_their_key_field() {
        let v1 = br#"{"request_id":"x","lease_duration":2764800,"data":{"my-key":"CiQK+/=","n":1,"o":{"a":[1,"s"]}},"wrap_info":null}"#;
        let fields = || entry_fields(v1, KvVersion::V1).unwrap();
        assert_eq!(text(fields(), "my-key").as_deref(), Some("CiQK+/="));
        assert_eq!(text(fields(), "n").as_deref(), Some("<other>"));
        assert_eq!(text(fields(), "o").as_deref(), Some("<other>"));
        assert_eq!(text(fields(), "missing"), None);
        // Escapes are decoded.
        let escaped = br#"{"data":{"k":"{\"bytes\":\"a\u002fb\"}"}}"#;
        assert_eq!(
            text(entry_fields(escaped, KvVersion::V1).unwrap(), "k").as_deref(),
            Some(r#"{"bytes":"a/b"}"#)
        );
        // A v1 answer without data is an entry without the key field.
        assert_eq!(text(entry_fields(b"{}", KvVersion::V1).unwrap(), "k"), None);

        let v2 =
            br#"{"data":{"data":{"my-key":"CiQK"},"metadata":{"version":1,"deletion_time":""}}}"#;
        assert_eq!(
            text(entry_fields(v2, KvVersion::V2).unwrap(), "my-key").as_deref(),
            Some("CiQK")
        );
        // A deleted v2 version has no data: no key.
        let deleted = br#"{"data":{"data":null,"metadata":{"version":1}}}"#;
        assert!(entry_fields(deleted, KvVersion::V2).unwrap().is_none());
        assert!(entry_fields(b"{}", KvVersion::V2).unwrap().is_none());
        for malformed in [&b"not json"[..], b"[]", br#"{"data":"x"}"#] {
            assert!(entry_fields(malformed, KvVersion::V1).is_err());
            assert!(entry_fields(malformed, KvVersion::V2).is_err());
        }
    }

    #[test]
    fn secret_strings_decode_from_json_strings_only() {
        let parsed: SecretString = serde_json::from_slice(br#""s.abc\n""#).unwrap();
        assert_eq!(parsed.0.as_str(), "s.abc\n");
        assert!(serde_json::from_slice::<SecretString>(b"5").is_err());
        assert!(serde_json::from_slice::<SecretString>(b"null").is_err());
    }

    #[test]
    fn plain_http_is_warned_about() {
        let config = |endpoint: &str| VaultConfig {
            endpoint: endpoint.into(),
            ..Default::default()
        };
        let warning = plain_http_warning(&config(" http://10.0.0.7:8200 ")).unwrap();
        assert_eq!(
            warning,
            "keystore.vault.endpoint 'http://10.0.0.7:8200' is plain HTTP: the Vault token, \
             the login credentials and every key travel in clear"
        );
        assert!(plain_http_warning(&config("HTTP://vault:8200")).is_some());
        for quiet in ["https://vault:8200", "HTTPS://vault", "", "vault:8200"] {
            assert_eq!(plain_http_warning(&config(quiet)), None, "{quiet:?}");
        }
    }

    #[test]
    fn config_paths_are_checked() {
        assert!(check_path("kv", "engine").is_ok());
        assert!(check_path("team-a/kv_2", "engine").is_ok());
        assert!(check_path("kv/../sys", "engine").is_err());
        assert!(check_path("kv?list=true", "engine").is_err());
        assert!(check_path("kv#x", "engine").is_err());
        assert!(check_name("../x").is_err());
        assert!(check_name("my-key").is_ok());
    }
}
