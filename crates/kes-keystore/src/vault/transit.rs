//! Transit wrapping: key values stored as the transit engine's
//! ciphertext of them, and read back through it.

use std::collections::BTreeMap;

use base64::Engine as _;
use hyper::Method;
use zeroize::Zeroizing;

use super::http::{Response, BODY_LIMIT};
use super::wire::json_body;
use super::{decode, Inner};
use crate::Error;

pub(super) struct Transit {
    pub(super) engine: String,
    pub(super) key: String,
}

/// Whether a stored value is a transit ciphertext (`vault:v<N>:…`).
#[doc(hidden)]
pub fn is_transit_ciphertext(value: &str) -> bool {
    value.strip_prefix("vault:v").is_some_and(|rest| {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest.as_bytes().get(digits) == Some(&b':')
    })
}

impl Inner {
    /// What is written for a key value: the transit ciphertext of it, or
    /// the value itself (KES values are text).
    pub(super) async fn stored_value(&self, value: &[u8]) -> Result<Zeroizing<String>, Error> {
        match &self.transit {
            Some(transit) => Ok(Zeroizing::new(self.transit_encrypt(transit, value).await?)),
            None => Ok(Zeroizing::new(
                std::str::from_utf8(value)
                    .map_err(|_| Error::other("vault: key value is not UTF-8 text"))?
                    .to_string(),
            )),
        }
    }

    pub(super) async fn transit_encrypt(
        &self,
        transit: &Transit,
        value: &[u8],
    ) -> Result<String, Error> {
        let plaintext = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(value));
        let body = json_body(&BTreeMap::from([("plaintext", plaintext.as_str())]))?;
        let resp = self
            .transit_call(transit, "encrypt", "encrypt", body)
            .await?;
        decode::transit_ciphertext(&resp.body)
    }

    /// Posts `body` to the transit engine's `op` endpoint (`encrypt` or
    /// `decrypt`); `what` names the operation in the error.
    pub(super) async fn transit_call(
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

    pub(super) async fn transit_decrypt(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transit_prefix_detection() {
        assert!(is_transit_ciphertext("vault:v1:abc"));
        assert!(is_transit_ciphertext("vault:v12:abc"));
        assert!(!is_transit_ciphertext("vault:v:abc"));
        assert!(!is_transit_ciphertext("vault:vx:abc"));
        assert!(!is_transit_ciphertext("CiQKIOwvcxe1"));
        assert!(!is_transit_ciphertext("{\"bytes\":\"...\"}"));
    }
}
