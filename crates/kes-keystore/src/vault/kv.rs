//! The K/V requests of the store: reads (of the version KES reads, of
//! one version, of the metadata), writes and destroys.

use std::collections::BTreeMap;

use hyper::{Method, StatusCode};
use zeroize::Zeroizing;

use super::http::{Response, BODY_LIMIT};
use super::layout::KvVersion;
use super::wire::{
    describes_a_version, json_body, CheckAndSet, KvV2Metadata, KvV2MetadataData, KvV2Write,
};
use super::{decode, is_transit_ciphertext, Inner};
use crate::Error;

impl Inner {
    /// Reads the stored string of `name`, or `None` if there is none.
    pub(super) async fn read(&self, name: &str) -> Result<Option<Zeroizing<String>>, Error> {
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
    pub(super) async fn read_value(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
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
    pub(super) async fn read_stored_version(
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
    pub(super) async fn metadata(&self, name: &str) -> Result<Option<KvV2MetadataData>, Error> {
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

    /// Removes the entry `name` (on K/V v2 with all its versions). Vault
    /// answers the delete of a missing entry like any other.
    pub(super) async fn remove(&self, name: &str) -> Result<(), Error> {
        let resp = self
            .call(
                Method::DELETE,
                &self.layout.delete_path(name),
                None,
                BODY_LIMIT,
            )
            .await?;
        match resp.status {
            StatusCode::OK | StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(self.failure("deleting", name, &resp)),
        }
    }

    /// K/V v2: destroys the listed versions of `name` (their data is gone
    /// for good; the metadata keeps their numbers). Vault destroys without
    /// any condition: callers make sure the versions are theirs first.
    pub(super) async fn destroy(&self, name: &str, versions: &[u64]) -> Result<(), Error> {
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
    pub(super) async fn write(
        &self,
        name: &str,
        value: &[u8],
        options: Option<CheckAndSet>,
    ) -> Result<Response, Error> {
        let stored = self.stored_value(value).await?;
        self.write_stored(name, &stored, options).await
    }

    /// Writes a string as stored (already transit-encrypted if it is).
    pub(super) async fn write_stored(
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
}
