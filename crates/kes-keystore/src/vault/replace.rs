//! `replace_if` on K/V v2: a check-and-set write, verified against a
//! delete and create of the same name, then the older versions destroyed.

use std::time::Duration;

use hyper::StatusCode;

use super::wire::{CheckAndSet, KvV2MetadataData, KvV2Written, KvV2WrittenData};
use super::Inner;
use crate::{BeforeWrite, Error};

/// How long after its write a K/V v2 version that KES does not read yet
/// may still belong to a replacement in progress (`Inner::replace_if_v2`):
/// its check and its destroy, or its undo, are at most four requests of at
/// most 15 s each after the write. Older, it was left behind by a server
/// that stopped in between. Vault's clock stamps the version and ours
/// measures its age, so the two may be apart by up to a minute of this.
pub(super) const IN_FLIGHT: Duration = Duration::from_secs(120);

/// Whether a Vault time stamp (RFC 3339) lies less than `age` back (or in
/// the future). A stamp that cannot be read counts as recent, which only
/// ever answers `Changed`.
pub(super) fn written_within(stamp: &str, age: Duration) -> bool {
    use time::format_description::well_known::Rfc3339;
    match time::OffsetDateTime::parse(stamp, &Rfc3339) {
        Ok(at) => time::OffsetDateTime::now_utc() - at < age,
        Err(_) => true,
    }
}

impl Inner {
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
    pub(super) async fn replace_if_v2(
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
    pub(super) async fn undo_foreign_write(
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
}
