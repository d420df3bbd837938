//! The documents as the Go KES writes them, and as old servers sent them.

use super::*;
use crate::gocompat::to_json;

#[test]
fn documents_as_the_go_kes_writes_them() {
    let names = Names {
        names: vec!["a<b".into()],
        continue_at: None,
    };
    assert_eq!(to_json(&names), b"{\"names\":[\"a\\u003cb\"]}\n");
    let names = Names {
        names: Vec::new(),
        continue_at: Some(String::new()),
    };
    assert_eq!(to_json(&names), b"{\"names\":[],\"continue_at\":\"\"}\n");
    let ids = IdentityList::default();
    assert_eq!(to_json(&ids), b"{\"identities\":[],\"continue_at\":\"\"}\n");
    let dek = GenerateKeyResponse {
        plaintext: "cA==",
        ciphertext: "Yw==",
        version: "",
    };
    assert_eq!(
        to_json(&dek),
        b"{\"plaintext\":\"cA==\",\"ciphertext\":\"Yw==\"}\n"
    );
    // Upstream's `version` (a string) after the Go KES's fields, when set.
    let rotated = GenerateKeyResponse {
        plaintext: "cA==",
        ciphertext: "Yw==",
        version: "3",
    };
    assert_eq!(
        to_json(&rotated),
        b"{\"plaintext\":\"cA==\",\"ciphertext\":\"Yw==\",\"version\":\"3\"}\n"
    );
    let read: EncryptKeyResponse = serde_json::from_str(r#"{"ciphertext":"Yw=="}"#).unwrap();
    assert_eq!(read.version, "");
    let r = Retired {
        retired: 1,
        version: 3,
        versions: 2,
    };
    assert_eq!(
        to_json(&r),
        b"{\"retired\":1,\"version\":3,\"versions\":2}\n"
    );
}

#[test]
fn times_as_go_writes_them() {
    let key = KeyInfo {
        name: "k".into(),
        algorithm: "AES256".into(),
        created_at: Some(time::macros::datetime!(2024-01-12 10:39:20.8868 UTC)),
        created_by: String::new(),
        version: None,
        versions: None,
        rotated_at: None,
        next_rotation: None,
    };
    let doc = to_json(&key);
    assert_eq!(
        doc,
        b"{\"name\":\"k\",\"algorithm\":\"AES256\",\"created_at\":\"2024-01-12T10:39:20.8868Z\"}\n"
    );
    let back: KeyInfo = serde_json::from_slice(&doc).unwrap();
    assert_eq!(back, key);
    // The schedule's next rotation comes last, in Go's format.
    let scheduled = KeyInfo {
        next_rotation: Some(time::macros::datetime!(2024-04-11 10:39:20.8868 UTC)),
        ..key.clone()
    };
    let doc = to_json(&scheduled);
    assert_eq!(
        doc,
        b"{\"name\":\"k\",\"algorithm\":\"AES256\",\"created_at\":\"2024-01-12T10:39:20.8868Z\",\"next_rotation\":\"2024-04-11T10:39:20.8868Z\"}\n"
    );
    assert_eq!(serde_json::from_slice::<KeyInfo>(&doc).unwrap(), scheduled);
    let legacy: KeyInfo = serde_json::from_str(r#"{"name":"k","created_at":null}"#).unwrap();
    assert_eq!(legacy.created_at, None);
    assert!(serde_json::from_str::<KeyInfo>(r#"{"name":"k","created_at":"x"}"#).is_err());
}

// The CLI printed these timestamps with the time crate's RFC 3339
// format before they were written in Go's: the two agree.
#[test]
fn go_times_are_what_the_time_crate_writes() {
    use time::format_description::well_known::Rfc3339;
    use time::macros::datetime;
    for t in [
        datetime!(2024-01-12 10:39:20.8868 UTC),
        datetime!(2024-01-12 10:39:20.000000001 UTC),
        datetime!(2024-01-12 11:39:20.5 +01:00),
        datetime!(2024-01-12 11:39:20 -05:30),
        datetime!(0001-01-01 00:00:00 UTC),
    ] {
        let go = crate::timefmt::format_rfc3339_nano(t);
        assert_eq!(go, t.format(&Rfc3339).unwrap());
    }
}

#[test]
fn request_bodies_in_field_order() {
    let enc = EncryptKeyRequest {
        plaintext: "cA==",
        context: "",
        version: "",
    };
    assert_eq!(
        serde_json::to_string(&enc).unwrap(),
        r#"{"plaintext":"cA=="}"#
    );
    let dec = DecryptKeyRequest {
        ciphertext: "Yw==",
        context: "eA==",
        version: "",
    };
    assert_eq!(
        serde_json::to_string(&dec).unwrap(),
        r#"{"ciphertext":"Yw==","context":"eA=="}"#
    );
    let pinned = DecryptKeyRequest {
        ciphertext: "Yw==",
        context: "",
        version: "2",
    };
    assert_eq!(
        serde_json::to_string(&pinned).unwrap(),
        r#"{"ciphertext":"Yw==","version":"2"}"#
    );
    let import = ImportKeyRequest {
        key: "aw==",
        cipher: "AES256",
    };
    assert_eq!(
        serde_json::to_string(&import).unwrap(),
        r#"{"key":"aw==","cipher":"AES256"}"#
    );
    let keep = RetireKeyRequest { keep: 2 };
    assert_eq!(serde_json::to_string(&keep).unwrap(), r#"{"keep":2}"#);
    assert_eq!(
        <DecryptKeyRequest>::FIELDS,
        ["ciphertext", "context", "version"]
    );
}

#[test]
fn policies_write_sets_and_read_lists() {
    let p = Policy {
        name: "p".into(),
        allow: vec!["/v1/key/*".into(), "/v1/a<".into(), "/v1/a<".into()],
        ..Default::default()
    };
    assert_eq!(
        to_json(&p),
        b"{\"name\":\"p\",\"allow\":{\"/v1/a\\u003c\":{},\"/v1/key/*\":{}}}\n"
    );
    let old: Policy = serde_json::from_str(r#"{"allow":["b","a"],"deny":null}"#).unwrap();
    assert_eq!(old.allow, ["a", "b"]);
    assert!(old.deny.is_empty());
}

#[test]
fn audit_events_as_the_go_kes_writes_them() {
    let ev = AuditEvent {
        time: time::macros::datetime!(2024-01-12 10:39:20.5 UTC),
        request: AuditRequest {
            ip: "10.1.2.3",
            proxy_ip: "",
            path: "/v1/key/create/a<b",
            identity: "",
            method: "POST",
        },
        response: AuditResponse { code: 200, time: 2 },
    };
    let line = to_json(&ev);
    assert_eq!(
        std::str::from_utf8(&line).unwrap(),
        "{\"time\":\"2024-01-12T10:39:20.5Z\",\"request\":{\"ip\":\"10.1.2.3\",\
         \"path\":\"/v1/key/create/a\\u003cb\",\"method\":\"POST\"},\
         \"response\":{\"code\":200,\"time\":2}}\n"
    );
    // An older server's event, without method.
    let old: AuditEvent =
        serde_json::from_str(r#"{"time":"2024-01-12T10:39:20Z","request":{"path":"/v1/status"},"response":{"code":200}}"#)
            .unwrap();
    assert!(old.request.method.is_empty());
    assert!(serde_json::from_str::<AuditEvent>(
        r#"{"time":null,"request":{},"response":{"code":1}}"#
    )
    .is_err());
}

#[test]
fn lists_read_leniently() {
    let n: Names = serde_json::from_str(r#"{"names":null}"#).unwrap();
    assert_eq!(n, Names::default());
    let n: Names = serde_json::from_str(r#"{"names":["a"],"continue_at":"b"}"#).unwrap();
    assert_eq!(n.continue_at.as_deref(), Some("b"));
    let i: IdentityList = serde_json::from_str(r#"{"identities":null}"#).unwrap();
    assert_eq!(i, IdentityList::default());
    let v: Version = serde_json::from_str(r#"{"version":"v1"}"#).unwrap();
    assert!(v.commit.is_empty());
}

#[test]
fn self_descriptions_in_both_shapes() {
    let me = SelfDescription {
        identity: "i".into(),
        policy: Some(SelfPolicy::Name("p".into())),
        created_at: Some(time::macros::datetime!(2024-01-12 10:39:20 UTC)),
        created_by: "a".into(),
        allow: Some(vec!["/v1/key/*".into()]),
        ..Default::default()
    };
    let doc = to_json(&me);
    assert_eq!(
        std::str::from_utf8(&doc).unwrap(),
        "{\"identity\":\"i\",\"policy\":\"p\",\"created_at\":\"2024-01-12T10:39:20Z\",\
         \"created_by\":\"a\",\"allow\":{\"/v1/key/*\":{}}}\n"
    );
    assert_eq!(serde_json::from_slice::<SelfDescription>(&doc).unwrap(), me);
    let other: SelfDescription = serde_json::from_str(
        r#"{"identity":"i","policy":{"name":"p","allow":{"a":{}}},"policy_name":"p","deny":null}"#,
    )
    .unwrap();
    let Some(SelfPolicy::Policy(p)) = other.policy else {
        panic!("{other:?}")
    };
    assert_eq!(p.allow, ["a"]);
    assert_eq!(other.deny, None);
    let odd: SelfDescription = serde_json::from_str(r#"{"identity":"i","policy":7}"#).unwrap();
    assert!(matches!(odd.policy, Some(SelfPolicy::Other(_))));
}
