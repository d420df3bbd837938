//! The cryptographic key operations: generate, encrypt, decrypt, HMAC and
//! the legacy bulk decrypt, with the search for the key version that
//! sealed a ciphertext.

use super::key::{body_json, get_key, key_name, store_error};
use super::{Answer, Call, Result};
use crate::http::wire;
use kes_core::gocompat::{encode_base64, GoJson};
use kes_core::ring::KeyRing;
use kes_core::{api, ApiError};
use kes_keystore::cache::RetirementCheck;
use std::sync::Arc;
use zeroize::Zeroizing;

pub(super) async fn generate(req: &Call<'_>) -> Result<Answer> {
    let name = key_name(req)?;
    // The body is optional: MinIO's first call sends a context, `kes key
    // dek` without one may send nothing.
    let (context, pinned) = match req.body() {
        Some([]) => (Zeroizing::new(Vec::new()), None),
        _ => {
            let json = body_json(req, <api::GenerateKeyRequest>::FIELDS)?;
            let context = json
                .bytes("context")
                .map_err(|_| ApiError::INVALID_REQUEST_BODY)?;
            (context, requested_version(&json)?)
        }
    };
    let key = get_key(req, name).await?;
    let (key, number) = sealing_version(req, name, key, pinned).await?;
    let (plaintext, ciphertext) = retained(name, &key, number)?.generate_dek(&context);
    let plaintext = Zeroizing::new(encode_base64(plaintext.as_slice()));
    let ciphertext = encode_base64(&ciphertext);
    let version = answered_version(&key, number, pinned);
    Ok(wire::secret_json(
        &api::GenerateKeyResponse {
            plaintext: plaintext.as_str(),
            ciphertext: ciphertext.as_str(),
            version: version.as_str(),
        },
        plaintext.len() + ciphertext.len() + 48,
    )
    .into())
}

pub(super) async fn encrypt(req: &Call<'_>) -> Result<Answer> {
    let name = key_name(req)?;
    let json = body_json(req, <api::EncryptKeyRequest>::FIELDS)?;
    let plaintext = json
        .bytes("plaintext")
        .map_err(|_| ApiError::INVALID_REQUEST_BODY)?;
    let context = json
        .bytes("context")
        .map_err(|_| ApiError::INVALID_REQUEST_BODY)?;
    let pinned = requested_version(&json)?;
    let key = get_key(req, name).await?;
    let (key, number) = sealing_version(req, name, key, pinned).await?;
    let ciphertext = retained(name, &key, number)?
        .key
        .encrypt(&plaintext, &context);
    Ok(wire::json(&api::EncryptKeyResponse {
        ciphertext: &encode_base64(&ciphertext),
        version: &answered_version(&key, number, pinned),
    })
    .into())
}

/// The `version` a crypto request names: `None` for none or an empty one.
/// A decimal number; a leading `v` is accepted too.
fn requested_version(json: &GoJson) -> Result<Option<u32>> {
    let text = json
        .string("version")
        .map_err(|_| ApiError::INVALID_REQUEST_BODY)?;
    if text.is_empty() {
        return Ok(None);
    }
    let digits = text.strip_prefix('v').unwrap_or(&text);
    match digits.parse::<u32>() {
        Ok(n) if n > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
        _ => Err(ApiError::new(
            400,
            format!(
                "invalid key version '{}': a version is a number from 1",
                text.chars().take(32).collect::<String>()
            ),
        )),
    }
}

/// The retained version `number` of `key`, or 400 for a version the key
/// does not have (yet, or any more).
fn retained<'k>(name: &str, key: &'k KeyRing, number: u32) -> Result<&'k kes_core::KeyVersion> {
    if number < key.first_version() {
        return Err(ApiError::new(
            400,
            format!("key '{name}' version {number} has been retired"),
        ));
    }
    key.versions()
        .get((number - key.first_version()) as usize)
        .map(|v| &**v)
        .ok_or_else(|| ApiError::new(400, format!("key '{name}' has no version {number}")))
}

/// The ring and the number of the version that seals: the current one, or
/// the `pinned` one if it is retained. A version newer than the cached
/// ring's current one may have been made by another node: the key is read
/// again once before it is refused.
async fn sealing_version(
    req: &Call<'_>,
    name: &str,
    key: Arc<KeyRing>,
    pinned: Option<u32>,
) -> Result<(Arc<KeyRing>, u32)> {
    let Some(number) = pinned else {
        let current = key.current_version();
        return Ok((key, current));
    };
    let key = if number > key.current_version() {
        match req.state.cache.refresh(name).await {
            Some(Ok(fresh)) => fresh,
            Some(Err(e)) => return Err(store_error(e, ApiError::READ_FAILED, "read", name)),
            None => key,
        }
    } else {
        key
    };
    retained(name, &key, number)?;
    Ok((key, number))
}

/// The `version` of a reply: the version used, when the request named one
/// or the key has been rotated; empty (left out) otherwise, so that a key
/// never rotated is answered byte for byte as the Go KES answers.
fn answered_version(key: &KeyRing, number: u32, pinned: Option<u32>) -> String {
    if pinned.is_some() || key.current_version() > 1 {
        number.to_string()
    } else {
        String::new()
    }
}

/// The fields of a decrypt body, in the single and the bulk decrypt.
const DECRYPT_FIELDS: &[&str] = <api::DecryptKeyRequest>::FIELDS;

pub(super) async fn decrypt(req: &Call<'_>) -> Result<Answer> {
    let name = key_name(req)?;
    let json = body_json(req, DECRYPT_FIELDS)?;
    let ciphertext = json
        .bytes("ciphertext")
        .map_err(|_| ApiError::INVALID_REQUEST_BODY)?;
    let context = json
        .bytes("context")
        .map_err(|_| ApiError::INVALID_REQUEST_BODY)?;
    let pinned = requested_version(&json)?;
    let mut key = get_key(req, name).await?;
    // One ciphertext tries each retained version at most twice (before
    // and after a refresh): bounded by the 100 versions a key retains.
    let mut trials = Trials::new(&key, usize::MAX);
    let plaintext = match pinned {
        Some(number) => open_pinned(req, name, &mut key, number, &ciphertext, &context).await?,
        None => open(req, name, &mut key, &mut trials, &ciphertext, &context).await?,
    };
    let plaintext = Zeroizing::new(encode_base64(&plaintext));
    Ok(wire::secret_json(
        &api::DecryptKeyResponse {
            plaintext: plaintext.as_str(),
        },
        plaintext.len() + 16,
    )
    .into())
}

/// Decryption attempts (one AEAD open with one key version) that one
/// legacy bulk decrypt may make. A ciphertext carries no version number,
/// so each is tried with the retained versions in turn; with 100 retained
/// versions a request of 1000 ciphertexts could cost 100,000 opens
/// (about 100 ms of a core). Versions that opened an earlier ciphertext of
/// the request are tried first, so a request whose ciphertexts share a few
/// versions stays far below the budget; one that cycles through many
/// versions is refused with [`BULK_TOO_COSTLY`].
pub(crate) const BULK_DECRYPT_ATTEMPTS: usize = 10_000;

/// The answer to a bulk decrypt past [`BULK_DECRYPT_ATTEMPTS`].
const BULK_TOO_COSTLY: ApiError = ApiError::from_static(
    400,
    "too many decryption attempts: the ciphertexts need too many key versions, decrypt fewer per request",
);

/// The order in which one request tries the versions of a key, and the
/// attempts it has left.
struct Trials {
    /// Indices into the ring's versions: those that opened a ciphertext of
    /// this request, most recent first, then the others newest first.
    order: Vec<usize>,
    left: usize,
    /// The index of the version that opened the last ciphertext.
    opened: Option<usize>,
}

impl Trials {
    fn new(key: &KeyRing, budget: usize) -> Trials {
        Trials {
            order: (0..key.retained()).rev().collect(),
            left: budget,
            opened: None,
        }
    }

    /// The ring changed (a refresh found new versions): the order starts
    /// over, the attempts made stay spent.
    fn reset(&mut self, key: &KeyRing) {
        self.order = (0..key.retained()).rev().collect();
    }

    /// Opens `ciphertext` with whichever version sealed it; `Ok(None)` if
    /// none did, [`BULK_TOO_COSTLY`] once the attempts are spent.
    fn open(
        &mut self,
        key: &KeyRing,
        ciphertext: &[u8],
        context: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let versions = key.versions();
        for at in 0..self.order.len() {
            if self.left == 0 {
                return Err(BULK_TOO_COSTLY);
            }
            self.left -= 1;
            let index = self.order[at];
            let Some(version) = versions.get(index) else {
                continue;
            };
            if let Ok(plaintext) = version.key.decrypt(ciphertext, context) {
                self.order[..=at].rotate_right(1);
                self.opened = Some(index);
                return Ok(Some(plaintext));
            }
        }
        Ok(None)
    }

    /// Whether the last ciphertext was opened by a version older than the
    /// current one: one that a retirement elsewhere may have retired.
    fn opened_older(&self, key: &KeyRing) -> bool {
        self.opened.is_some_and(|i| i + 1 < key.retained())
    }
}

/// Decrypts with whichever retained version of the key sealed the
/// ciphertext. If none of the cached versions does, the key is read from
/// the store once more (the cache rate-limits this per key and shares one
/// read between concurrent callers): another node may have rotated it.
///
/// If an older version opened it, another node may have retired that
/// version: the cache checks the key's first entry at most once a second
/// per key ([`kes_keystore::cache::RETIREMENT_CHECK_INTERVAL`]), so that a
/// retired version stops decrypting everywhere within that bound
/// (docs/rotation.md). Ciphertexts of the current version cost no check.
async fn open(
    req: &Call<'_>,
    name: &str,
    key: &mut Arc<KeyRing>,
    trials: &mut Trials,
    ciphertext: &[u8],
    context: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    if let Some(plaintext) = trials.open(key, ciphertext, context)? {
        if !trials.opened_older(key) {
            return Ok(plaintext);
        }
        return match req.state.cache.check_retirement(name, key).await {
            RetirementCheck::NotChecked | RetirementCheck::Unchanged => Ok(plaintext),
            RetirementCheck::Changed(fresh) => {
                // The plaintext of a version that may be retired now is
                // wiped unused; the key as the store has it decides.
                drop(plaintext);
                *key = fresh.map_err(|e| store_error(e, ApiError::READ_FAILED, "read", name))?;
                trials.reset(key);
                trials
                    .open(key, ciphertext, context)?
                    .ok_or(ApiError::DECRYPT)
            }
        };
    }
    if let Some(Ok(fresh)) = req.state.cache.refresh(name).await {
        let changed = fresh.current_version() != key.current_version()
            || fresh.first_version() != key.first_version()
            || fresh.lineage() != key.lineage();
        if changed {
            *key = fresh;
            trials.reset(key);
            return trials
                .open(key, ciphertext, context)?
                .ok_or(ApiError::DECRYPT);
        }
    }
    Err(ApiError::DECRYPT)
}

/// Decrypts with exactly version `number` of the key: no other version is
/// tried. A version newer than the cached ones makes one read of the key
/// (another node may have rotated); an older one than the current is
/// checked for retirement elsewhere as in [`open`].
async fn open_pinned(
    req: &Call<'_>,
    name: &str,
    key: &mut Arc<KeyRing>,
    number: u32,
    ciphertext: &[u8],
    context: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let (ring, _) = sealing_version(req, name, key.clone(), Some(number)).await?;
    *key = ring;
    let plaintext = retained(name, key, number)?
        .key
        .decrypt(ciphertext, context)
        .map_err(|_| ApiError::DECRYPT)?;
    if number == key.current_version() {
        return Ok(plaintext);
    }
    match req.state.cache.check_retirement(name, key).await {
        RetirementCheck::NotChecked | RetirementCheck::Unchanged => Ok(plaintext),
        RetirementCheck::Changed(fresh) => {
            drop(plaintext);
            *key = fresh.map_err(|e| store_error(e, ApiError::READ_FAILED, "read", name))?;
            retained(name, key, number)?
                .key
                .decrypt(ciphertext, context)
                .map_err(|_| ApiError::DECRYPT)
        }
    }
}

pub(super) async fn hmac(req: &Call<'_>) -> Result<Answer> {
    let name = key_name(req)?;
    let json = body_json(req, <api::HmacRequest>::FIELDS)?;
    let message = json
        .bytes("message")
        .map_err(|_| ApiError::INVALID_REQUEST_BODY)?;
    let pinned = requested_version(&json)?;
    let key = get_key(req, name).await?;
    let (key, number) = sealing_version(req, name, key, pinned).await?;
    let mac = retained(name, &key, number)?
        .hmac(&message)
        .ok_or(ApiError::HMAC_NOT_SUPPORTED)?;
    Ok(wire::json(&api::HmacResponse {
        hmac: &encode_base64(&mac),
        version: &answered_version(&key, number, pinned),
    })
    .into())
}

/// The legacy `POST /v1/key/bulk/decrypt/<name>` that the Go KES removed
/// and old MinIO versions still call: a list of decrypt bodies, at most
/// 1000, answered with a list of plaintexts.
pub(super) async fn bulk_decrypt(req: &Call<'_>) -> Result<Answer> {
    const MAX: usize = 1000;
    let name = key_name(req)?;
    let body = req.body().ok_or(ApiError::INVALID_REQUEST_BODY)?;
    // Each entry is decoded like a single decrypt's body (Go's rules for
    // duplicate and case-folded field names), so both routes read the same
    // ciphertext and context from the same bytes.
    let items =
        GoJson::parse_list(body, DECRYPT_FIELDS).map_err(|_| ApiError::INVALID_REQUEST_BODY)?;
    if items.len() > MAX {
        return Err(ApiError::TOO_MANY_CIPHERTEXTS);
    }
    let mut key = get_key(req, name).await?;
    let mut trials = Trials::new(&key, BULK_DECRYPT_ATTEMPTS);
    let mut out: Vec<Zeroizing<String>> = Vec::with_capacity(items.len());
    for j in items {
        let ct = j
            .bytes("ciphertext")
            .map_err(|_| ApiError::INVALID_REQUEST_BODY)?;
        let ctx = j
            .bytes("context")
            .map_err(|_| ApiError::INVALID_REQUEST_BODY)?;
        let pt = match requested_version(&j)? {
            Some(number) => open_pinned(req, name, &mut key, number, &ct, &ctx).await?,
            None => open(req, name, &mut key, &mut trials, &ct, &ctx).await?,
        };
        out.push(Zeroizing::new(encode_base64(&pt)));
    }
    let doc: Vec<api::DecryptKeyResponse<&str>> = out
        .iter()
        .map(|p| api::DecryptKeyResponse {
            plaintext: p.as_str(),
        })
        .collect();
    let capacity = out.iter().map(|p| p.len() + 16).sum::<usize>() + 2;
    Ok(wire::secret_json(&doc, capacity).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kes_core::ring::Lineage;
    use kes_core::{KeyAlgorithm, KeyVersion};

    /// A key with 100 retained versions and a ciphertext of each.
    fn ring_of_100() -> (KeyRing, Vec<Vec<u8>>) {
        let versions: Vec<Arc<KeyVersion>> = (0..100)
            .map(|_| Arc::new(KeyVersion::generate(KeyAlgorithm::Aes256, "")))
            .collect();
        let sealed = versions
            .iter()
            .enumerate()
            .map(|(i, v)| v.key.encrypt(format!("plaintext {i}").as_bytes(), b"ctx"))
            .collect();
        let ring = KeyRing::new(Lineage::derive(b"test"), 1, versions).unwrap();
        (ring, sealed)
    }

    #[test]
    fn a_bulk_decrypt_of_one_old_version_tries_it_first() {
        let (ring, sealed) = ring_of_100();
        let mut trials = Trials::new(&ring, BULK_DECRYPT_ATTEMPTS);
        for _ in 0..1000 {
            let plaintext = trials.open(&ring, &sealed[0], b"ctx").unwrap().unwrap();
            assert_eq!(plaintext.as_slice(), b"plaintext 0");
        }
        // 100 attempts for the first, one for each of the others.
        assert_eq!(BULK_DECRYPT_ATTEMPTS - trials.left, 100 + 999);
        // Three versions in turn cost at most three attempts each, once
        // each has been found.
        let mut trials = Trials::new(&ring, BULK_DECRYPT_ATTEMPTS);
        for i in 0..1000 {
            let v = [0, 50, 99][i % 3];
            let plaintext = trials.open(&ring, &sealed[v], b"ctx").unwrap().unwrap();
            assert_eq!(plaintext.as_slice(), format!("plaintext {v}").as_bytes());
        }
        assert_eq!(BULK_DECRYPT_ATTEMPTS - trials.left, 100 + 51 + 3 * 998);
    }

    #[test]
    fn a_bulk_decrypt_cycling_through_versions_is_cut_off() {
        let (ring, sealed) = ring_of_100();
        let mut trials = Trials::new(&ring, BULK_DECRYPT_ATTEMPTS);
        let mut opened = 0;
        let err = loop {
            match trials.open(&ring, &sealed[opened % 100], b"ctx") {
                Ok(Some(_)) => opened += 1,
                Ok(None) => panic!("a version failed to open its own ciphertext"),
                Err(err) => break err,
            }
        };
        assert_eq!(err.status(), 400);
        assert_eq!(err.message(), BULK_TOO_COSTLY.message());
        assert_eq!(trials.left, 0);
        assert!(opened < 1000, "{opened}");
        // A ciphertext of no version costs one attempt per version.
        let mut trials = Trials::new(&ring, BULK_DECRYPT_ATTEMPTS);
        assert!(trials.open(&ring, b"forged", b"ctx").unwrap().is_none());
        assert_eq!(BULK_DECRYPT_ATTEMPTS - trials.left, 100);
    }
}
