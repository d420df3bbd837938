//! AWS Secrets Manager key store.
//!
//! Each KES key is one secret whose `SecretString` is the key-store encoding
//! of the key version, exactly as the Go KES writes it, so both servers can
//! share one Secrets Manager. Built on the official AWS SDK for Rust with the
//! workspace's single rustls (aws-lc-rs) stack.
//!
//! Differences from the reference, all compatible with its data:
//! - `list(prefix)` asks Secrets Manager to filter by name prefix instead of
//!   reading every secret of the account;
//! - an optional `prefix` namespaces the secret names (`kes/` + key name);
//! - names that are not valid KES key names are left out of listings, as no
//!   API call could use them.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_secretsmanager::config::Credentials;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use aws_sdk_secretsmanager::Client;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorSettings};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use zeroize::Zeroizing;

use crate::config::AwsConfig;

mod errors;
mod labels;

#[doc(hidden)]
pub use self::errors::map_error;
use self::labels::{read_current, swap_current};
use crate::{Error, KeyStore};

/// How long a TCP (and TLS) connect to Secrets Manager may take before the
/// store counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound of one HTTP attempt, so that a hung endpoint cannot block a
/// request (or the cache's status probe) forever.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound of a whole operation, retries included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts per operation (first try included). The SDK's standard retry
/// mode retries throttling (`ThrottlingException`, 429), 5xx and transport
/// errors with exponential backoff and jitter.
const MAX_ATTEMPTS: u32 = 4;
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Secrets Manager returns at most 100 secrets per `ListSecrets` page.
const LIST_PAGE_SIZE: i32 = 100;
/// Longest secret name Secrets Manager accepts.
const MAX_SECRET_NAME_LEN: usize = 512;
/// The label of the version a secret's readers get.
const CURRENT_STAGE: &str = "AWSCURRENT";
/// The label AWS moves to the version `AWSCURRENT` leaves.
const PREVIOUS_STAGE: &str = "AWSPREVIOUS";
/// The label of a value that `replace_if` has put but not yet made current.
/// A label sits on one version at a time: a second put moves it, and the
/// version it left has no label, i.e. is deprecated, which is fine for a
/// value that is either about to become current or never will.
const PENDING_STAGE: &str = "KESPENDING";

use crate::BeforeWrite;

/// A key store keeping each key as one secret in AWS Secrets Manager.
pub struct SecretsManagerKeyStore {
    client: Client,
    /// The resolved endpoint URL, probed by [`KeyStore::status`].
    endpoint: String,
    region: String,
    kms_key: Option<String>,
    prefix: String,
    probe: Connector,
    before_write: Mutex<Option<BeforeWrite>>,
}

// Written by hand so that credentials can never end up in a log line.
impl fmt::Debug for SecretsManagerKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsManagerKeyStore")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("kms_key", &self.kms_key)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Connects to Secrets Manager as configured and probes it once; fails if
/// the configuration is invalid or the endpoint is unreachable. Logs a
/// warning for a plain `http://` endpoint.
///
/// Credentials: if any of access key, secret key and session token is set,
/// exactly those are used; if all three are empty, the SDK's default chain
/// (environment, shared credentials/config profile, web identity token, ECS
/// container credentials, EC2 instance metadata) provides them.
pub async fn connect(config: &AwsConfig) -> Result<SecretsManagerKeyStore, Error> {
    let endpoint = endpoint_url(&config.endpoint)?;
    let region = config.region.trim();
    if region.is_empty() {
        return Err(Error::other("aws: no region specified"));
    }
    validate_prefix(&config.prefix)?;
    // Accepted, as for an emulator or a local proxy, but said out loud.
    if let Some(warning) = plain_http_warning(config) {
        tracing::warn!("{warning}");
    }

    let retry = RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF);
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint.clone())
        .retry_config(retry)
        .timeout_config(timeouts);
    let static_credentials = !(config.access_key.is_empty()
        && config.secret_key.is_empty()
        && config.session_token.is_empty());
    if static_credentials {
        let token = (!config.session_token.is_empty()).then(|| config.session_token.clone());
        loader = loader.credentials_provider(Credentials::new(
            config.access_key.clone(),
            config.secret_key.clone(),
            token,
            None,
            "kes-config",
        ));
    }
    let sdk_config = loader.load().await;

    let probe = Connector::builder()
        .connector_settings(
            HttpConnectorSettings::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .read_timeout(ATTEMPT_TIMEOUT)
                .build(),
        )
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build();

    let kms_key = config.kms_key.trim();
    let store = SecretsManagerKeyStore {
        client: Client::new(&sdk_config),
        endpoint,
        region: region.to_owned(),
        kms_key: (!kms_key.is_empty()).then(|| kms_key.to_owned()),
        prefix: config.prefix.clone(),
        probe,
        before_write: Mutex::new(None),
    };
    store.status().await?;
    Ok(store)
}

/// The start-up warning for a Secrets Manager endpoint without TLS, if the
/// endpoint is one. Requests are signed, so the secret key itself never
/// crosses the network, but every key (a secret's value) does, readable to
/// anyone on the path. [`connect`] logs it.
pub fn plain_http_warning(config: &AwsConfig) -> Option<String> {
    let endpoint = config.endpoint.trim();
    endpoint
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
        .then(|| {
            format!(
                "keystore.aws.secretsmanager.endpoint '{endpoint}' is plain HTTP: \
                 requests are signed (the secret key is not sent) but every key travels in clear"
            )
        })
}

/// A bare host means HTTPS (as the Go SDK does); a full URL is taken as is,
/// which is how emulators on `http://127.0.0.1:PORT` are reached.
fn endpoint_url(endpoint: &str) -> Result<String, Error> {
    let endpoint = endpoint.trim();
    if endpoint.is_empty() {
        return Err(Error::other("aws: no endpoint specified"));
    }
    let url = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("https://{endpoint}")
    };
    let uri: http::Uri = url.parse().map_err(|err| {
        Error::other(format!("aws: invalid endpoint '{endpoint}'")).with_source(err)
    })?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(Error::other(format!(
                "aws: invalid endpoint '{endpoint}': scheme must be http or https"
            )))
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(Error::other(format!(
            "aws: invalid endpoint '{endpoint}': no host"
        )));
    }
    Ok(url)
}

/// The prefix becomes part of every secret name and of the `ListSecrets`
/// name filter, so it must fit both of their character sets.
fn validate_prefix(prefix: &str) -> Result<(), Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c);
    if !prefix.chars().all(allowed) {
        return Err(Error::other(format!(
            "aws: invalid prefix '{prefix}': only letters, digits and /_+=.@- are allowed"
        )));
    }
    if prefix.len() + kes_core::name::MAX_NAME_LEN > MAX_SECRET_NAME_LEN {
        return Err(Error::other(format!(
            "aws: prefix is longer than {} bytes",
            MAX_SECRET_NAME_LEN - kes_core::name::MAX_NAME_LEN
        )));
    }
    Ok(())
}

/// The name filter of `ListSecrets` only accepts these characters, and a
/// leading `!` would turn it into a negation.
fn usable_as_filter(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= MAX_SECRET_NAME_LEN
        && !prefix.starts_with('!')
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " :_@/+=.-".contains(c))
}

impl SecretsManagerKeyStore {
    /// The secret name of a key. The name was validated by the server, but
    /// the store checks again: a name like an ARN would address another
    /// secret.
    fn secret_name(&self, name: &str) -> Result<String, Error> {
        if !crate::versions::valid_stored_name(name) {
            return Err(Error::other(format!("aws: invalid key name '{name}'")));
        }
        Ok(format!("{}{name}", self.prefix))
    }

    /// See [`read_current`].
    async fn read_current(&self, secret_name: &str) -> Result<(Zeroizing<Vec<u8>>, String), Error> {
        read_current(&self.client, secret_name).await
    }

    /// Test hook (fault injection), see [`BeforeWrite`].
    fn before_write_hook(&self) -> Option<BeforeWrite> {
        kes_core::sync::lock(&self.before_write).clone()
    }

    /// Installs (or with `None` removes) a hook that `replace_if` awaits
    /// between its compare and its conditional write. Only for tests that
    /// put another mutation into exactly that window; not an API.
    #[doc(hidden)]
    pub fn set_before_conditional_write(&self, hook: Option<BeforeWrite>) {
        *kes_core::sync::lock(&self.before_write) = hook;
    }

    /// The key name of a listed secret, if it is one of ours.
    fn key_name<'a>(&self, secret_name: &'a str) -> Option<&'a str> {
        secret_name
            .strip_prefix(self.prefix.as_str())
            .filter(|name| crate::versions::valid_stored_name(name))
    }
}

#[async_trait::async_trait]
impl KeyStore for SecretsManagerKeyStore {
    async fn status(&self) -> Result<Duration, Error> {
        let request = HttpRequest::get(&self.endpoint)
            .map_err(|err| Error::other("aws: invalid endpoint").with_source(err))?;
        let start = Instant::now();
        // Any HTTP answer, even an error status, proves the endpoint is up;
        // the body is not needed.
        match self.probe.call(request).await {
            Ok(_response) => Ok(start.elapsed()),
            Err(err) => Err(Error::unreachable(format!("aws: {}", self.endpoint)).with_source(err)),
        }
    }

    async fn create(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        let secret_name = self.secret_name(name)?;
        let mut request = self
            .client
            .create_secret()
            .name(&secret_name)
            .set_kms_key_id(self.kms_key.clone());
        // KES values are ASCII (base64 protobuf) and go into SecretString as
        // the Go KES does; anything else can only be kept as binary. The SDK
        // copies the value into its request and serialised body, which it
        // frees without wiping: out of our reach.
        request = match std::str::from_utf8(value) {
            Ok(text) => request.secret_string(text),
            Err(_) => request.secret_binary(Blob::new(value)),
        };
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|err| map_error(err, "create", &secret_name))
    }

    async fn get(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        let secret_name = self.secret_name(name)?;
        Ok(self.read_current(&secret_name).await?.0)
    }

    /// A compare-and-swap on the `AWSCURRENT` label: the new value is put
    /// as a version that only carries the label `KESPENDING`, then `AWSCURRENT`
    /// is moved to it with `RemoveFromVersionId` = the version whose value
    /// was compared. AWS refuses that move unless `AWSCURRENT` is still on
    /// exactly that version ("If the label is attached and you either do
    /// not specify this parameter, or the version ID does not match, then
    /// the operation fails", UpdateSecretVersionStage), and version ids are
    /// never reused, not even by a secret deleted and created again under
    /// the same name. So the move is the linearization point: another
    /// writer, a delete, or a delete followed by a create all make it fail,
    /// and nothing readable changed. moto 5.2 enforces the same check
    /// (`update_secret_version_stage` in its `secretsmanager/models.py`).
    async fn replace_if(&self, name: &str, current: &[u8], value: &[u8]) -> Result<(), Error> {
        let secret_name = self.secret_name(name)?;
        let text = std::str::from_utf8(value)
            .map_err(|_| Error::other(format!("aws: value of '{secret_name}' is not text")))?;
        let (stored, read_version) = self.read_current(&secret_name).await?;
        if *stored != *current {
            return Err(Error::Changed);
        }
        drop(stored);
        // From here on it runs as a task of its own, so that it goes to its
        // end even when the request that started it is cancelled: a label
        // left behind would keep the old value readable as AWSPREVIOUS.
        let client = self.client.clone();
        let text = Zeroizing::new(text.to_owned());
        let hook = self.before_write_hook();
        tokio::spawn(async move {
            if let Some(hook) = hook {
                hook().await;
            }
            swap_current(&client, &secret_name, &read_version, &text).await
        })
        .await
        .map_err(|e| Error::other("aws: replacing a secret: the task failed").with_source(e))?
    }

    /// AWS has no conditional delete: this compares, then deletes. A delete
    /// and a create of the same name landing between the two would be
    /// deleted in place of the compared secret. Only the release of a
    /// retirement lease uses it, and the lease is advisory (retirement is
    /// safe through [`KeyStore::replace_if`] alone), so that window, two
    /// requests wide, is accepted.
    async fn delete_if(&self, name: &str, current: &[u8]) -> Result<(), Error> {
        let secret_name = self.secret_name(name)?;
        let (stored, _) = self.read_current(&secret_name).await?;
        if *stored != *current {
            return Err(Error::Changed);
        }
        drop(stored);
        self.delete(name).await
    }

    async fn delete(&self, name: &str) -> Result<(), Error> {
        let secret_name = self.secret_name(name)?;
        self.client
            .delete_secret()
            .secret_id(&secret_name)
            .force_delete_without_recovery(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| map_error(err, "delete", &secret_name))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let secret_prefix = format!("{}{prefix}", self.prefix);
        let filter = usable_as_filter(&secret_prefix).then(|| {
            Filter::builder()
                .key(FilterNameStringType::Name)
                .values(secret_prefix.clone())
                .build()
        });
        let mut names = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_secrets()
                .max_results(LIST_PAGE_SIZE)
                .set_filters(filter.clone().map(|f| vec![f]))
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|err| map_error(err, "list", &secret_prefix))?;
            for entry in page.secret_list.unwrap_or_default() {
                // The server-side filter is an optimisation; the exact prefix
                // test here is what decides.
                if let Some(name) = entry.name.as_deref().and_then(|n| self.key_name(n)) {
                    if name.starts_with(prefix) {
                        names.push(name.to_owned());
                    }
                }
            }
            match page.next_token {
                Some(token) if !token.is_empty() => next_token = Some(token),
                _ => break,
            }
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint_url("secretsmanager.us-east-2.amazonaws.com").unwrap(),
            "https://secretsmanager.us-east-2.amazonaws.com"
        );
        assert_eq!(
            endpoint_url(" http://127.0.0.1:5000 ").unwrap(),
            "http://127.0.0.1:5000"
        );
        for bad in ["", "   ", "ftp://host", "https://", "http://exa mple.com"] {
            assert!(endpoint_url(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn plain_http_is_warned_about() {
        let config = |endpoint: &str| AwsConfig {
            endpoint: endpoint.into(),
            ..AwsConfig::default()
        };
        assert_eq!(
            plain_http_warning(&config("http://127.0.0.1:5000 ")).unwrap(),
            "keystore.aws.secretsmanager.endpoint 'http://127.0.0.1:5000' is plain HTTP: \
             requests are signed (the secret key is not sent) but every key travels in clear"
        );
        // A bare host means HTTPS.
        for quiet in [
            "secretsmanager.us-east-2.amazonaws.com",
            "https://secretsmanager.us-east-2.amazonaws.com",
            "",
        ] {
            assert_eq!(plain_http_warning(&config(quiet)), None, "{quiet:?}");
        }
    }

    #[test]
    fn prefixes() {
        for good in ["", "kes/", "tenant-1/kes_", "a.b@c+d=e"] {
            assert!(validate_prefix(good).is_ok(), "{good:?}");
        }
        for bad in ["kes prefix", "kes:", "ü/", &"a".repeat(500)] {
            assert!(validate_prefix(bad).is_err(), "{bad:?}");
        }
        assert!(usable_as_filter("kes/my-key"));
        assert!(!usable_as_filter(""));
        assert!(!usable_as_filter("!kes"));
        assert!(!usable_as_filter("kes*"));
    }
}
