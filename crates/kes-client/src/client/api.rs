//! One method per API endpoint, and the request and response bodies they
//! exchange.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http::Method;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::Client;
use crate::error::Error;
use crate::log::LogStream;
use crate::types::*;
use kes_core::api;

impl Client {
    // ---- server ----

    /// `GET /version`
    pub async fn version(&self) -> Result<Version, Error> {
        self.get_json("/version").await
    }

    /// `GET /v1/ready`: Ok if the server and its key store are ready.
    pub async fn ready(&self) -> Result<(), Error> {
        self.call(Method::GET, "/v1/ready", None).await.map(drop)
    }

    /// `GET /v1/status`
    pub async fn status(&self) -> Result<Status, Error> {
        self.get_json("/v1/status").await
    }

    /// `GET /v1/status` of one endpoint only (no fail-over), e.g. to tell
    /// which servers of a cluster are up.
    pub async fn status_of(&self, endpoint: &str) -> Result<Status, Error> {
        let body = self
            .attempt(endpoint, &Method::GET, "/v1/status", None)
            .await?;
        decode(&body)
    }

    /// `GET /v1/metrics`: the Prometheus text exposition as sent.
    pub async fn metrics(&self) -> Result<String, Error> {
        let body = self.call(Method::GET, "/v1/metrics", None).await?;
        String::from_utf8(body.to_vec())
            .map_err(|_| Error::invalid_response("metrics are not UTF-8"))
    }

    /// `GET /v1/api`
    pub async fn api(&self) -> Result<Vec<ApiRoute>, Error> {
        self.get_json("/v1/api").await
    }

    // ---- keys ----

    /// `POST /v1/key/create/<name>`
    pub async fn create_key(&self, name: &str) -> Result<(), Error> {
        let path = format!("/v1/key/create/{}", encode(name));
        self.call(Method::POST, &path, None).await.map(drop)
    }

    /// `POST /v1/key/import/<name>` with a raw 32-byte key and cipher
    /// (`AES256` or `ChaCha20`).
    pub async fn import_key(&self, name: &str, key: &[u8], cipher: &str) -> Result<(), Error> {
        let key = Zeroizing::new(B64.encode(key));
        let import = api::ImportKeyRequest {
            key: key.as_str(),
            cipher,
        };
        let body =
            Zeroizing::new(serde_json::to_vec(&import).map_err(|e| Error::Config(e.to_string()))?);
        let path = format!("/v1/key/import/{}", encode(name));
        self.call(Method::POST, &path, Some(Bytes::copy_from_slice(&body)))
            .await
            .map(drop)
    }

    /// `GET /v1/key/describe/<name>`
    pub async fn describe_key(&self, name: &str) -> Result<KeyInfo, Error> {
        self.get_json(&format!("/v1/key/describe/{}", encode(name)))
            .await
    }

    /// `GET /v1/key/list/<pattern>`: every key name matching `pattern`
    /// (`*` or empty for all), following `continue_at` pages.
    pub async fn list_keys(&self, pattern: &str) -> Result<Vec<String>, Error> {
        self.list_names("/v1/key/list/", pattern, "name").await
    }

    /// `DELETE /v1/key/delete/<name>`
    pub async fn delete_key(&self, name: &str) -> Result<(), Error> {
        let path = format!("/v1/key/delete/{}", encode(name));
        self.call(Method::DELETE, &path, None).await.map(drop)
    }

    /// `POST /v1/key/rotate/<name>`: adds a version to the key; generate
    /// and encrypt use it from then on, decrypt accepts every retained
    /// version. If the answer is lost and the call is repeated on another
    /// endpoint, the key gets one more version (none is ever lost).
    pub async fn rotate_key(&self, name: &str) -> Result<Rotated, Error> {
        let path = format!("/v1/key/rotate/{}", encode(name));
        let resp = self.call(Method::POST, &path, None).await?;
        decode(&resp)
    }

    /// `POST /v1/key/retire/<name>`: deletes every version of the key but
    /// the newest `keep` (≥ 1). What the deleted versions sealed can never
    /// be decrypted again. Needs the admin or a policy with an allow
    /// pattern starting with `/v1/key/retire/`.
    pub async fn retire_key(&self, name: &str, keep: u32) -> Result<Retired, Error> {
        let body = json_body(&api::RetireKeyRequest { keep })?;
        let path = format!("/v1/key/retire/{}", encode(name));
        let resp = self.call(Method::POST, &path, Some(body)).await?;
        decode(&resp)
    }

    /// `POST /v1/key/restore/<name>`: brings back a key pending deletion
    /// (deleted on a server with `lifecycle.deletion_window`), with all its
    /// versions; what it sealed decrypts again. [`Error::KeyNotFound`] if
    /// nothing of the name is pending (never deleted, or already purged),
    /// [`Error::KeyExists`] if the key is live. Needs the
    /// admin or a policy with an allow pattern starting with
    /// `/v1/key/restore/`.
    pub async fn restore_key(&self, name: &str) -> Result<(), Error> {
        let path = format!("/v1/key/restore/{}", encode(name));
        self.call(Method::POST, &path, None).await.map(drop)
    }

    /// `GET /v1/key/deleted/<pattern>`: the keys pending deletion whose
    /// names match `pattern` (`*` or empty for all, `prefix*`), sorted by
    /// name, with when they were deleted, by whom and from when on they
    /// may be purged; following `continue_at` pages.
    pub async fn list_deleted_keys(&self, pattern: &str) -> Result<Vec<DeletedKey>, Error> {
        let pattern = if pattern == "*" { "" } else { pattern };
        let mut keys: Vec<DeletedKey> = Vec::new();
        let mut continue_at = String::new();
        loop {
            let mut path = format!("/v1/key/deleted/{}", encode(pattern));
            if !continue_at.is_empty() {
                path.push_str("?continue=");
                path.push_str(&encode(&continue_at));
            }
            let page: api::DeletedKeys = self.get_json(&path).await?;
            keys.extend(page.keys);
            // A server that repeats its token would make us loop forever.
            if page.continue_at.is_empty() || page.continue_at == continue_at {
                break;
            }
            continue_at = page.continue_at;
        }
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        keys.dedup_by(|a, b| a.name == b.name);
        Ok(keys)
    }

    /// `POST /v1/key/generate/<name>`: a new data encryption key bound to
    /// `context`.
    pub async fn generate_key(&self, name: &str, context: &[u8]) -> Result<Dek, Error> {
        self.generate_key_with(name, context, None).await
    }

    /// [`Client::generate_key`] sealed by key version `version` (a retained
    /// one), or the current one for `None`.
    pub async fn generate_key_with(
        &self,
        name: &str,
        context: &[u8],
        version: Option<u32>,
    ) -> Result<Dek, Error> {
        let body = if context.is_empty() && version.is_none() {
            None
        } else {
            Some(json_body(&api::GenerateKeyRequest {
                context: B64.encode(context),
                version: version_text(version),
            })?)
        };
        let path = format!("/v1/key/generate/{}", encode(name));
        // Vec::from takes over the buffer without a copy, so the one buffer
        // that held the plaintext is wiped.
        let resp = Zeroizing::new(Vec::from(self.call(Method::POST, &path, body).await?));
        let wire: api::GenerateKeyResponse = decode(&resp)?;
        let wire_plaintext = Zeroizing::new(wire.plaintext);
        Ok(Dek {
            plaintext: decode_b64(&wire_plaintext, "plaintext")?,
            ciphertext: decode_b64(&wire.ciphertext, "ciphertext")?.to_vec(),
            version: parse_version(&wire.version)?,
        })
    }

    /// `POST /v1/key/encrypt/<name>`
    pub async fn encrypt(
        &self,
        name: &str,
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, Error> {
        Ok(self
            .encrypt_with(name, plaintext, context, None)
            .await?
            .ciphertext)
    }

    /// [`Client::encrypt`] with key version `version` (a retained one), or
    /// the current one for `None`; the answer names the version used when
    /// the server does.
    pub async fn encrypt_with(
        &self,
        name: &str,
        plaintext: &[u8],
        context: &[u8],
        version: Option<u32>,
    ) -> Result<Encrypted, Error> {
        // The base64 plaintext is wiped when dropped.
        let plaintext = Zeroizing::new(B64.encode(plaintext));
        let version = version_text(version);
        let body = json_body(&api::EncryptKeyRequest {
            plaintext: plaintext.as_str(),
            context: &B64.encode(context),
            version: &version,
        })?;
        let path = format!("/v1/key/encrypt/{}", encode(name));
        let resp = self.call(Method::POST, &path, Some(body)).await?;
        let wire: api::EncryptKeyResponse = decode(&resp)?;
        Ok(Encrypted {
            ciphertext: decode_b64(&wire.ciphertext, "ciphertext")?.to_vec(),
            version: parse_version(&wire.version)?,
        })
    }

    /// `POST /v1/key/decrypt/<name>`
    pub async fn decrypt(
        &self,
        name: &str,
        ciphertext: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.decrypt_with(name, ciphertext, context, None).await
    }

    /// [`Client::decrypt`] with exactly key version `version` (no other
    /// version is tried; a version the key does not retain is an error),
    /// or any retained version for `None`.
    pub async fn decrypt_with(
        &self,
        name: &str,
        ciphertext: &[u8],
        context: &[u8],
        version: Option<u32>,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let body = json_body(&api::DecryptKeyRequest {
            ciphertext: B64.encode(ciphertext),
            context: B64.encode(context),
            version: version_text(version),
        })?;
        let path = format!("/v1/key/decrypt/{}", encode(name));
        let resp = Zeroizing::new(Vec::from(self.call(Method::POST, &path, Some(body)).await?));
        let wire: api::DecryptKeyResponse = decode(&resp)?;
        let wire_plaintext = Zeroizing::new(wire.plaintext);
        decode_b64(&wire_plaintext, "plaintext")
    }

    /// `PUT /v1/key/hmac/<name>`: HMAC-SHA256 of `message` with the key's
    /// HMAC key.
    pub async fn hmac(&self, name: &str, message: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        // The base64 message is wiped when dropped.
        let message = Zeroizing::new(B64.encode(message));
        let body = json_body(&api::HmacRequest {
            message: message.as_str(),
            version: "",
        })?;
        let path = format!("/v1/key/hmac/{}", encode(name));
        // MinIO derives root credentials from HMACs: treat them as secrets.
        let resp = Zeroizing::new(Vec::from(self.call(Method::PUT, &path, Some(body)).await?));
        let wire: api::HmacResponse = decode(&resp)?;
        let hmac = Zeroizing::new(wire.hmac);
        decode_b64(&hmac, "hmac")
    }

    // ---- policies ----

    /// `GET /v1/policy/describe/<name>`
    pub async fn describe_policy(&self, name: &str) -> Result<PolicyInfo, Error> {
        self.get_json(&format!("/v1/policy/describe/{}", encode(name)))
            .await
    }

    /// `GET /v1/policy/read/<name>`
    pub async fn read_policy(&self, name: &str) -> Result<Policy, Error> {
        let mut p: Policy = self
            .get_json(&format!("/v1/policy/read/{}", encode(name)))
            .await?;
        if p.name.is_empty() {
            p.name = name.to_owned();
        }
        Ok(p)
    }

    /// `GET /v1/policy/list/<pattern>`
    pub async fn list_policies(&self, pattern: &str) -> Result<Vec<String>, Error> {
        self.list_names("/v1/policy/list/", pattern, "name").await
    }

    // ---- identities ----

    /// `GET /v1/identity/describe/<identity>`
    pub async fn describe_identity(&self, identity: &str) -> Result<IdentityInfo, Error> {
        let mut info: IdentityInfo = self
            .get_json(&format!("/v1/identity/describe/{}", encode(identity)))
            .await?;
        info.identity = identity.to_owned();
        Ok(info)
    }

    /// `GET /v1/identity/self/describe`
    pub async fn self_describe(&self) -> Result<SelfInfo, Error> {
        self.get_json("/v1/identity/self/describe").await
    }

    /// `GET /v1/identity/list/<pattern>`
    pub async fn list_identities(&self, pattern: &str) -> Result<Vec<String>, Error> {
        self.list_names("/v1/identity/list/", pattern, "identity")
            .await
    }

    // ---- logs ----

    /// `GET /v1/log/audit`: audit events as they happen.
    pub async fn audit_log(&self) -> Result<LogStream<AuditEvent>, Error> {
        Ok(LogStream::new(self.stream("/v1/log/audit").await?))
    }

    /// `GET /v1/log/error`: error-log records as they happen.
    pub async fn error_log(&self) -> Result<LogStream<ErrorEvent>, Error> {
        Ok(LogStream::new(self.stream("/v1/log/error").await?))
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let body = self.call(Method::GET, path, None).await?;
        decode(&body)
    }

    /// Lists names page by page: while the server sends a `continue_at`,
    /// asks again with `?continue=<name>`.
    async fn list_names(
        &self,
        route: &str,
        pattern: &str,
        ndjson_field: &str,
    ) -> Result<Vec<String>, Error> {
        let pattern = if pattern == "*" { "" } else { pattern };
        let mut names = Vec::new();
        let mut continue_at = String::new();
        loop {
            let mut path = format!("{route}{}", encode(pattern));
            if !continue_at.is_empty() {
                path.push_str("?continue=");
                path.push_str(&encode(&continue_at));
            }
            let (content_type, body) = self.call_with_type(Method::GET, &path, None).await?;
            if content_type.as_deref() == Some("application/x-ndjson") {
                // Legacy servers stream one {"name":..} object per line.
                names.extend(parse_ndjson_names(&body, ndjson_field)?);
                break;
            }
            let (page, next) = if route.starts_with("/v1/identity/") {
                let l: api::IdentityList = decode(&body)?;
                (l.identities, l.continue_at)
            } else {
                let l: api::Names = decode(&body)?;
                (l.names, l.continue_at.unwrap_or_default())
            };
            names.extend(page);
            // A server that repeats its token would make us loop forever.
            if next.is_empty() || next == continue_at {
                break;
            }
            continue_at = next;
        }
        names.sort();
        names.dedup();
        Ok(names)
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::undecodable("", e))
}

fn decode_b64(s: &str, field: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    B64.decode(s)
        .map(Zeroizing::new)
        .map_err(|_| Error::invalid_response(format!("'{field}' is not valid base64")))
}

fn json_body(v: &impl serde::Serialize) -> Result<Bytes, Error> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| Error::Config(e.to_string()))
}

fn parse_ndjson_names(body: &[u8], field: &str) -> Result<Vec<String>, Error> {
    let mut names = Vec::new();
    for line in body.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: serde_json::Value = decode(line)?;
        if let Some(err) = v.get("error").and_then(|e| e.as_str()) {
            return Err(Error::Api(kes_core::ApiError::new(500, err)));
        }
        match v.get(field).and_then(|n| n.as_str()) {
            Some(n) => names.push(n.to_owned()),
            None => return Err(Error::invalid_response(format!("missing '{field}'"))),
        }
    }
    Ok(names)
}

/// Bytes a path segment or query value keeps as they are: RFC 3986's
/// unreserved characters, plus `*` so that list patterns stay readable.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'*');

/// Percent-encodes a path segment or query value so that a name can never
/// change the path (`/`, `..`, `?`).
pub(crate) fn encode(s: &str) -> String {
    // A bare "." or ".." would be collapsed by path cleaning.
    if s == "." || s == ".." {
        return s.replace('.', "%2E");
    }
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// A version as the API writes it: a decimal string, empty for none.
fn version_text(version: Option<u32>) -> String {
    version.map(|v| v.to_string()).unwrap_or_default()
}

/// The `version` of a reply: `None` when absent or empty.
fn parse_version(text: &str) -> Result<Option<u32>, Error> {
    if text.is_empty() {
        return Ok(None);
    }
    text.strip_prefix('v')
        .unwrap_or(text)
        .parse()
        .map(Some)
        .map_err(|_| Error::invalid_response(format!("invalid key version '{text}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_the_path() {
        assert_eq!(encode("my-key_1"), "my-key_1");
        assert_eq!(encode("my-*"), "my-*");
        assert_eq!(encode("../x"), "..%2Fx");
        assert_eq!(encode(".."), "%2E%2E");
        assert_eq!(encode("a?b#c"), "a%3Fb%23c");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn legacy_ndjson_lists() {
        let body = b"{\"name\":\"a\"}\n{\"name\":\"b\"}\n";
        assert_eq!(parse_ndjson_names(body, "name").unwrap(), ["a", "b"]);
        let err = parse_ndjson_names(b"{\"name\":\"a\"}\n{\"error\":\"boom\"}\n", "name");
        assert_eq!(err.unwrap_err().to_string(), "boom");
    }
}
