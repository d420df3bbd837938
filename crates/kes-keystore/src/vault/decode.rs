//! The decoders of Vault response bodies: pure functions, public so that
//! the fuzz targets reach them (not an API).

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
    use super::layout::KvVersion;
    use super::wire::{entry_fields, EntryField};
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
    let out: Out = serde_json::from_slice(body)
        .map_err(|e| Error::other("vault: transit encrypt: malformed response").with_source(e))?;
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
    use super::wire::SecretString;
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
