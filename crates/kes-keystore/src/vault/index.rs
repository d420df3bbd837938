//! The storage index of OpenBao's consistency headers, kept so that a
//! standby never answers a request from a copy older than what this key
//! store has already seen.

use std::sync::Mutex;

use base64::Engine as _;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::http::request;

/// OpenBao's consistency headers (since 2.7; HashiCorp Vault Enterprise
/// has the same names). Every answer of a node on a raft (or other
/// indexed) storage carries `X-Vault-Index`, an opaque token of the
/// storage state the node had when it answered. A request that carries a
/// token back is answered by a standby only once its own copy has reached
/// that state; before, with `X-Vault-Inconsistent: forward-active-node`,
/// the standby forwards it to the active node (the default without this
/// header is a 429 for the client to retry). The active node ignores the
/// headers; the dev server (in-memory storage) and HashiCorp Vault OSS
/// send no index, and KES sends the headers only once it has received
/// one.
const INDEX_HEADER: &str = "X-Vault-Index";
const INCONSISTENT_HEADER: &str = "X-Vault-Inconsistent";
const FORWARD_ACTIVE_NODE: &str = "forward-active-node";

/// The longest index kept. OpenBao's is about 100 bytes (base64 of a
/// cluster id and a raft index); a longer one is not kept, so that a
/// broken or hostile server cannot make KES repeat large headers on every
/// request.
const MAX_INDEX_LEN: usize = 512;

/// The storage index this key store sends with its requests: the one of
/// the newest state any answer has shown it, shared by all requests of
/// one key store. A key KES has just created is then read by every later
/// request through a standby that has the write, or by the active node,
/// never as missing from a lagging copy.
///
/// Concurrent requests make answers arrive out of order, and a standby
/// answers a read with its own (possibly older) index: keeping simply
/// the last one received, as OpenBao's Go client does by default, could
/// step back behind a write whose answer arrived just before, and a read
/// of that key would be stale again (`raft_standby_reads` catches it:
/// keys created among concurrent reads read as missing). So when both
/// indices are OpenBao's (base64 of a JSON object with `cluster`,
/// optional `namespace` and a decimal `value`, its Go client's
/// `IndexValue`) of the same cluster and namespace, the higher value is
/// kept: raft indices only grow. Any other
/// pair (another format, another cluster after the endpoint moved) is
/// opaque, and the last one received wins. Index values are storage
/// metadata, not secrets, and are never logged.
#[derive(Default)]
pub(super) struct StorageIndex(Mutex<Option<HeaderValue>>);

impl StorageIndex {
    /// The index to send, if any answer has had one.
    fn current(&self) -> Option<HeaderValue> {
        kes_core::sync::lock(&self.0).clone()
    }

    /// Adds the consistency headers to a request, once there is an index.
    pub(super) fn require(&self, req: request::Builder) -> request::Builder {
        match self.current() {
            Some(index) => req
                .header(INDEX_HEADER, index)
                .header(INCONSISTENT_HEADER, FORWARD_ACTIVE_NODE),
            None => req,
        }
    }

    /// Keeps the index of an answer if it is newer (see the type). An
    /// answer with several index headers is ambiguous and ignored.
    pub(super) fn observe(&self, headers: &HeaderMap) {
        let mut values = headers.get_all(INDEX_HEADER).iter();
        let (Some(received), None) = (values.next(), values.next()) else {
            return;
        };
        if received.len() > MAX_INDEX_LEN {
            tracing::debug!(
                len = received.len(),
                "vault: X-Vault-Index longer than {MAX_INDEX_LEN} bytes, not kept"
            );
            return;
        }
        let mut kept = kes_core::sync::lock(&self.0);
        if supersedes(kept.as_ref(), received) {
            *kept = Some(received.clone());
        }
    }
}

/// Whether `received` replaces the `kept` index (see [`StorageIndex`]).
fn supersedes(kept: Option<&HeaderValue>, received: &HeaderValue) -> bool {
    if received.is_empty() || received.len() > MAX_INDEX_LEN || received.to_str().is_err() {
        return false;
    }
    match (kept.and_then(openbao_index), openbao_index(received)) {
        (Some((kept_place, kept_value)), Some((place, value))) if kept_place == place => {
            value > kept_value
        }
        _ => kept != Some(received),
    }
}

/// The cluster and namespace, and the raft index, of an OpenBao index
/// value; `None` for any other form.
fn openbao_index(value: &HeaderValue) -> Option<((String, String), u64)> {
    #[derive(serde::Deserialize)]
    struct Index {
        cluster: String,
        #[serde(default)]
        namespace: String,
        value: String,
    }
    let json = base64::engine::general_purpose::STANDARD
        .decode(value.as_bytes())
        .ok()?;
    let index: Index = serde_json::from_slice(&json).ok()?;
    let raft: u64 = index.value.parse().ok()?;
    Some(((index.cluster, index.namespace), raft))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Request;

    fn openbao(cluster: &str, value: &str) -> HeaderValue {
        let json = format!(r#"{{"cluster":"{cluster}","value":"{value}"}}"#);
        let encoded = base64::engine::general_purpose::STANDARD.encode(json);
        HeaderValue::from_str(&encoded).unwrap()
    }

    fn answer(values: &[&HeaderValue]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(INDEX_HEADER, (*v).clone());
        }
        headers
    }

    fn sent(index: &StorageIndex) -> (Option<HeaderValue>, Option<HeaderValue>) {
        let req = index
            .require(Request::builder().uri("http://127.0.0.1/v1/kes/k"))
            .body(())
            .unwrap();
        (
            req.headers().get(INDEX_HEADER).cloned(),
            req.headers().get(INCONSISTENT_HEADER).cloned(),
        )
    }

    #[test]
    fn no_index_no_headers() {
        let index = StorageIndex::default();
        assert_eq!(sent(&index), (None, None));
        index.observe(&HeaderMap::new());
        assert_eq!(sent(&index), (None, None), "an answer without index");
        index.observe(&answer(&[&HeaderValue::from_static("")]));
        assert_eq!(sent(&index), (None, None), "an empty index");
    }

    #[test]
    fn index_received_is_sent_with_forwarding() {
        let index = StorageIndex::default();
        let i33 = openbao("8f55", "33");
        index.observe(&answer(&[&i33]));
        assert_eq!(
            sent(&index),
            (
                Some(i33),
                Some(HeaderValue::from_static("forward-active-node"))
            )
        );
    }

    #[test]
    fn the_newest_openbao_index_is_kept() {
        let index = StorageIndex::default();
        let (i33, i34, i40) = (
            openbao("8f55", "33"),
            openbao("8f55", "34"),
            openbao("8f55", "40"),
        );
        index.observe(&answer(&[&i34]));
        index.observe(&answer(&[&i40]));
        assert_eq!(index.current(), Some(i40.clone()));
        // A lagging standby's answer (or a late answer of an older
        // request) does not step back.
        index.observe(&answer(&[&i33]));
        assert_eq!(index.current(), Some(i40.clone()));
        // Numbers, not strings: "100" is newer than "40".
        let i100 = openbao("8f55", "100");
        index.observe(&answer(&[&i100]));
        assert_eq!(index.current(), Some(i100.clone()));
        // Another cluster (the endpoint moved): the latest received.
        let other = openbao("0bd1", "7");
        index.observe(&answer(&[&other]));
        assert_eq!(index.current(), Some(other));
    }

    #[test]
    fn opaque_indices_latest_received() {
        let index = StorageIndex::default();
        let (a, b) = (
            HeaderValue::from_static("v1:opaque-b"),
            HeaderValue::from_static("v1:opaque-a"),
        );
        index.observe(&answer(&[&a]));
        index.observe(&answer(&[&b]));
        assert_eq!(index.current(), Some(b.clone()));
        // An OpenBao index after an opaque one, and back.
        let i5 = openbao("8f55", "5");
        index.observe(&answer(&[&i5]));
        assert_eq!(index.current(), Some(i5));
        index.observe(&answer(&[&a]));
        assert_eq!(index.current(), Some(a));
        // A non-numeric value is opaque too.
        let text = openbao("8f55", "lsn/1A");
        index.observe(&answer(&[&text]));
        assert_eq!(index.current(), Some(text));
    }

    #[test]
    fn oversize_and_ambiguous_indices_are_refused() {
        let index = StorageIndex::default();
        let i33 = openbao("8f55", "33");
        index.observe(&answer(&[&i33]));
        let at_limit = HeaderValue::from_str(&"a".repeat(MAX_INDEX_LEN)).unwrap();
        let over = HeaderValue::from_str(&"b".repeat(MAX_INDEX_LEN + 1)).unwrap();
        index.observe(&answer(&[&over]));
        assert_eq!(index.current(), Some(i33.clone()), "over the limit");
        index.observe(&answer(&[&openbao("8f55", "50"), &openbao("8f55", "60")]));
        assert_eq!(index.current(), Some(i33.clone()), "two index headers");
        let latin1 = HeaderValue::from_bytes(b"caf\xe9").unwrap();
        index.observe(&answer(&[&latin1]));
        assert_eq!(index.current(), Some(i33), "not visible ASCII");
        index.observe(&answer(&[&at_limit]));
        assert_eq!(index.current(), Some(at_limit), "at the limit");
    }
}
