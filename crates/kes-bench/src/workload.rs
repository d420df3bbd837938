//! What each request is: the KES API or a Vault/OpenBao transit endpoint,
//! and the mix of calls.

use crate::client::{Conn, Connector};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use http_body_util::Full;

/// The kind of server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Target {
    /// A KES-compatible server (this one, or the Go KES).
    Kes,
    /// Vault or OpenBao transit (for comparison).
    Openbao,
}

/// The mix of calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Workload {
    /// Generate a data key without context.
    Generate,
    /// Decrypt data keys generated beforehand.
    Decrypt,
    /// What MinIO does per object: 1 generate to 3 decrypts, with
    /// `{"bucket":"bucket/object-N"}` contexts (KES only; transit has no
    /// associated data for non-derived keys, so none is sent there).
    Minio,
    /// Describe `--keys` keys round-robin (or the one `--key`): with
    /// `-n` equal to `--keys` it touches every key once (cache warming).
    Describe,
    /// Create keys `<key>0`, `<key>1`, … (one per request).
    Create,
    /// A long-running MinIO-like mix (KES only), per 10 requests: 2
    /// generate and 4 decrypt with object contexts, 1 describe, 1 list
    /// `<key>*`, and key churn: 1 create of a fresh key and 1 delete of a
    /// key created a few requests earlier.
    Mixed,
}

/// Which version of a rotated key seals the data keys of the decrypt calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SealWith {
    /// The newest: data keys generated after the rotations (decrypt finds
    /// the version at the first try).
    Newest,
    /// The oldest: data keys generated before the rotations (decrypt tries
    /// every newer version first).
    Oldest,
}

/// Rotations asked for before the run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rotation {
    /// How many times the key is rotated (through the API).
    pub count: u32,
    pub seal_with: SealWith,
}

/// How many data keys are generated up front for the decrypt calls.
const DECRYPT_POOL: usize = 64;

/// Mixed workload: the delete of request `i` removes the churn key created
/// by request `i - 1 - 10 * CHURN_LAG`, so that its create has normally
/// finished even with many connections in flight.
const CHURN_LAG: u64 = 8;

/// Everything needed to build request number `i`.
pub(crate) struct Plan {
    pub target: Target,
    pub workload: Workload,
    key: String,
    keys: Option<u64>,
    headers: Vec<(HeaderName, HeaderValue)>,
    generate_uri: Uri,
    decrypt_uri: Uri,
    /// Ready-made decrypt bodies.
    decrypt_bodies: Vec<Bytes>,
    /// Mixed workload: makes churn key names unique per run, so that runs
    /// back to back never collide on a key a previous one left behind.
    run_id: String,
}

impl Plan {
    pub(crate) fn new(
        connector: &Connector,
        target: Target,
        workload: Workload,
        key: &str,
        keys: Option<u64>,
        token: Option<&str>,
    ) -> Result<Self, String> {
        let mut headers = vec![(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )];
        if target == Target::Openbao {
            let token = token.ok_or("'--target openbao' needs '--token'")?;
            let mut value = HeaderValue::from_str(token)
                .map_err(|_| "invalid token: not a valid HTTP header value".to_string())?;
            value.set_sensitive(true);
            headers.push((HeaderName::from_static("x-vault-token"), value));
        }
        if matches!(target, Target::Openbao)
            && matches!(
                workload,
                Workload::Describe | Workload::Create | Workload::Mixed
            )
        {
            return Err(format!(
                "workload '{}' is only available for '--target kes'",
                workload_name(workload)
            ));
        }
        let (generate, decrypt) = match target {
            Target::Kes => (
                format!("/v1/key/generate/{key}"),
                format!("/v1/key/decrypt/{key}"),
            ),
            Target::Openbao => (
                format!("/v1/transit/datakey/plaintext/{key}"),
                format!("/v1/transit/decrypt/{key}"),
            ),
        };
        Ok(Self {
            target,
            workload,
            key: key.to_string(),
            keys,
            headers,
            generate_uri: connector.uri(&generate)?,
            decrypt_uri: connector.uri(&decrypt)?,
            decrypt_bodies: Vec::new(),
            run_id: format!(
                "{:x}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros())
                    .unwrap_or_default()
            ),
        })
    }

    /// Creates the key (tolerating one that exists, unless it is to be
    /// rotated), rotates it if asked to and, for decrypting workloads,
    /// generates the data keys to decrypt: before the rotations if they are
    /// to be sealed with the oldest version, else after them.
    pub(crate) async fn prepare(
        &mut self,
        connector: &Connector,
        create_key: bool,
        rotation: Rotation,
    ) -> Result<(), String> {
        let (mut conn, _) = connector.connect().await?;
        if rotation.count > 0 && self.target != Target::Kes {
            return Err("'--rotate' is only available for '--target kes'".into());
        }
        if rotation.count > 0 && self.keys.is_some() {
            return Err("'--rotate' rotates the one key '--key-name': drop '--keys'".into());
        }
        if create_key
            && matches!(
                self.workload,
                Workload::Generate | Workload::Decrypt | Workload::Minio | Workload::Mixed
            )
        {
            let created = self.create_key(connector, &mut conn).await?;
            // The oldest version is only known to be version 1, and the
            // rotated key only to have `count + 1` versions, for a new key.
            if !created && rotation.count > 0 {
                return Err(format!(
                    "'--rotate' needs a new key, and '{}' exists: choose another '--key-name'",
                    self.key
                ));
            }
        }
        let decrypting = matches!(
            self.workload,
            Workload::Decrypt | Workload::Minio | Workload::Mixed
        );
        if decrypting && rotation.seal_with == SealWith::Oldest {
            self.fill_decrypt_pool(connector, &mut conn).await?;
        }
        for _ in 0..rotation.count {
            self.rotate_key(connector, &mut conn).await?;
        }
        if decrypting && rotation.seal_with == SealWith::Newest {
            self.fill_decrypt_pool(connector, &mut conn).await?;
        }
        Ok(())
    }

    async fn rotate_key(&self, connector: &Connector, conn: &mut Conn) -> Result<(), String> {
        let req = connector.request(
            &Method::POST,
            connector.uri(&format!("/v1/key/rotate/{}", self.key))?,
            &self.headers,
            Bytes::new(),
        );
        let reply = conn.send(req).await?;
        if reply.status != StatusCode::OK {
            return Err(format!(
                "rotating key '{}' answered {}: {}",
                self.key,
                reply.status,
                snippet(&reply.body)
            ));
        }
        Ok(())
    }

    /// Generates the data keys the decrypt calls decrypt.
    async fn fill_decrypt_pool(
        &mut self,
        connector: &Connector,
        conn: &mut Conn,
    ) -> Result<(), String> {
        for j in 0..DECRYPT_POOL {
            let context = (matches!(self.workload, Workload::Minio | Workload::Mixed)
                && self.target == Target::Kes)
                .then(|| minio_context(j as u64));
            let req = connector.request(
                &Method::POST,
                self.generate_uri.clone(),
                &self.headers,
                self.generate_body(context.as_deref()),
            );
            let reply = conn.send(req).await?;
            if reply.status != StatusCode::OK {
                return Err(format!(
                    "preparing decrypt: generate answered {}: {}",
                    reply.status,
                    snippet(&reply.body)
                ));
            }
            let ciphertext = self.ciphertext_of(&reply.body)?;
            let body = match (self.target, context) {
                (Target::Kes, Some(ctx)) => {
                    serde_json::json!({"ciphertext": ciphertext, "context": ctx})
                }
                _ => serde_json::json!({"ciphertext": ciphertext}),
            };
            self.decrypt_bodies.push(Bytes::from(body.to_string()));
        }
        Ok(())
    }

    /// Creates the key; `false` if it existed already.
    async fn create_key(&self, connector: &Connector, conn: &mut Conn) -> Result<bool, String> {
        let path = match self.target {
            Target::Kes => format!("/v1/key/create/{}", self.key),
            Target::Openbao => format!("/v1/transit/keys/{}", self.key),
        };
        let req = connector.request(
            &Method::POST,
            connector.uri(&path)?,
            &self.headers,
            Bytes::new(),
        );
        let reply = conn.send(req).await?;
        let exists = reply.status == StatusCode::BAD_REQUEST
            && snippet(&reply.body).contains("key already exists");
        if reply.status.is_success() || exists {
            Ok(!exists)
        } else {
            Err(format!(
                "creating key '{}' answered {}: {}",
                self.key,
                reply.status,
                snippet(&reply.body)
            ))
        }
    }

    fn ciphertext_of(&self, body: &[u8]) -> Result<String, String> {
        let v: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| format!("preparing decrypt: generate reply is not JSON: {e}"))?;
        let c = match self.target {
            Target::Kes => &v["ciphertext"],
            Target::Openbao => &v["data"]["ciphertext"],
        };
        c.as_str()
            .map(str::to_string)
            .ok_or_else(|| "preparing decrypt: generate reply has no ciphertext".to_string())
    }

    fn generate_body(&self, context: Option<&str>) -> Bytes {
        match (self.target, context) {
            (Target::Kes, None) => Bytes::new(),
            (Target::Kes, Some(ctx)) => Bytes::from(format!("{{\"context\":\"{ctx}\"}}")),
            (Target::Openbao, _) => Bytes::from_static(b"{}"),
        }
    }

    fn name(&self, i: u64) -> String {
        match self.keys {
            Some(n) if n > 0 => format!("{}{}", self.key, i % n),
            _ => self.key.clone(),
        }
    }

    /// Request number `i` and the status it must answer with.
    pub(crate) fn request(
        &self,
        connector: &Connector,
        i: u64,
    ) -> Result<(http::Request<Full<Bytes>>, StatusCode), String> {
        let (method, uri, body) = match self.workload {
            Workload::Generate => (
                Method::POST,
                self.generate_uri.clone(),
                self.generate_body(None),
            ),
            Workload::Decrypt => (Method::POST, self.decrypt_uri.clone(), self.decrypt_body(i)),
            Workload::Minio if i % 4 == 0 => {
                let context = (self.target == Target::Kes).then(|| minio_context(i));
                (
                    Method::POST,
                    self.generate_uri.clone(),
                    self.generate_body(context.as_deref()),
                )
            }
            Workload::Minio => (Method::POST, self.decrypt_uri.clone(), self.decrypt_body(i)),
            Workload::Describe => (
                Method::GET,
                connector.uri(&format!("/v1/key/describe/{}", self.name(i)))?,
                Bytes::new(),
            ),
            Workload::Create => (
                Method::POST,
                connector.uri(&format!("/v1/key/create/{}{i}", self.key))?,
                Bytes::new(),
            ),
            Workload::Mixed => self.mixed_request(connector, i)?,
        };
        Ok((
            connector.request(&method, uri, &self.headers, body),
            StatusCode::OK,
        ))
    }

    /// Request `i` of the mixed workload (see [`Workload::Mixed`]).
    fn mixed_request(&self, connector: &Connector, i: u64) -> Result<(Method, Uri, Bytes), String> {
        Ok(match i % 10 {
            0 | 5 => (
                Method::POST,
                self.generate_uri.clone(),
                self.generate_body(Some(&minio_context(i))),
            ),
            1..=4 => (Method::POST, self.decrypt_uri.clone(), self.decrypt_body(i)),
            6 => (
                Method::GET,
                connector.uri(&format!("/v1/key/describe/{}", self.key))?,
                Bytes::new(),
            ),
            7 => (
                Method::GET,
                connector.uri(&format!("/v1/key/list/{}*", self.key))?,
                Bytes::new(),
            ),
            8 => (
                Method::POST,
                connector.uri(&format!("/v1/key/create/{}", self.churn_name(i)))?,
                Bytes::new(),
            ),
            _ => (
                Method::DELETE,
                connector.uri(&format!(
                    "/v1/key/delete/{}",
                    self.churn_name(i.saturating_sub(1 + 10 * CHURN_LAG))
                ))?,
                Bytes::new(),
            ),
        })
    }

    /// The churn key created by request `i` of the mixed workload. Its
    /// name does not start with the listed key name.
    fn churn_name(&self, i: u64) -> String {
        format!("churn-{}-{}-{i}", self.key, self.run_id)
    }

    /// Mixed workload, after the run: deletes the churn keys the run left
    /// behind. A delete can overtake its create when creates are slow (on
    /// the fs store each create syncs a file), and every run leaves its
    /// last creates, so without this back-to-back runs (`scripts/soak`)
    /// grow the key store and each listing reads a bigger directory.
    /// Returns how many keys were deleted.
    pub(crate) async fn remove_churn_keys(&self, connector: &Connector) -> Result<usize, String> {
        if self.workload != Workload::Mixed {
            return Ok(0);
        }
        let (mut conn, _) = connector.connect().await?;
        let prefix = format!("churn-{}-{}", self.key, self.run_id);
        let list = connector.request(
            &Method::GET,
            connector.uri(&format!("/v1/key/list/{prefix}"))?,
            &self.headers,
            Bytes::new(),
        );
        let reply = conn.send(list).await?;
        if reply.status != StatusCode::OK {
            return Err(format!("listing the churn keys: {}", reply.status));
        }
        let listing: serde_json::Value = serde_json::from_slice(&reply.body)
            .map_err(|e| format!("listing the churn keys: {e}"))?;
        let names: Vec<String> = listing["names"]
            .as_array()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for name in &names {
            let delete = connector.request(
                &Method::DELETE,
                connector.uri(&format!("/v1/key/delete/{name}"))?,
                &self.headers,
                Bytes::new(),
            );
            conn.send(delete).await?;
        }
        Ok(names.len())
    }

    /// A reply that is not the expected status but is no error either: in
    /// the mixed workload, deleting a churn key that is not there (its
    /// create is still in flight, or the run has just begun).
    pub(crate) fn tolerated(&self, i: u64, status: StatusCode) -> bool {
        self.workload == Workload::Mixed && i % 10 == 9 && status == StatusCode::NOT_FOUND
    }

    fn decrypt_body(&self, i: u64) -> Bytes {
        match self.decrypt_bodies.len() {
            0 => Bytes::new(),
            n => self.decrypt_bodies[(i as usize) % n].clone(),
        }
    }
}

/// The base64 of MinIO's context for object `n` of bucket `bucket`.
pub(crate) fn minio_context(n: u64) -> String {
    B64.encode(format!("{{\"bucket\":\"bucket/object-{n}\"}}"))
}

pub(crate) fn workload_name(w: Workload) -> &'static str {
    match w {
        Workload::Generate => "generate",
        Workload::Decrypt => "decrypt",
        Workload::Minio => "minio",
        Workload::Describe => "describe",
        Workload::Create => "create",
        Workload::Mixed => "mixed",
    }
}

/// The start of a reply body for error messages (replies of the servers
/// benchmarked here carry no secrets when they are errors).
pub(crate) fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(160)]);
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minio_context_is_base64_json() {
        let raw = B64.decode(minio_context(7)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(v["bucket"], "bucket/object-7");
    }
}
