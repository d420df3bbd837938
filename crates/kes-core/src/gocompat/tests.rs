//! Go's rules, as the Go KES applies them to request bodies and stored data.

use super::*;

/// The fields the tests read.
const FIELDS: &[&str] = &[
    "aead",
    "cipher",
    "ciphertext",
    "context",
    "keep",
    "key",
    "message",
    "missing",
    "plaintext",
];

#[test]
fn go_escaping() {
    assert_eq!(
        to_json(&serde_json::json!({"v": "<a&b>\u{2028}"})),
        b"{\"v\":\"\\u003ca\\u0026b\\u003e\\u2028\"}\n".to_vec()
    );
    assert_eq!(to_json(&["é"]), "[\"é\"]\n".as_bytes().to_vec());
}

#[test]
fn uint_fields_decode_as_go_does() {
    let keep = |body: &str| {
        GoJson::parse(body.as_bytes(), FIELDS)
            .unwrap()
            .uint("keep")
            .ok()
    };
    assert_eq!(keep(r#"{"keep":2}"#), Some(2));
    assert_eq!(keep(r#"{}"#), Some(0));
    assert_eq!(keep(r#"{"keep":null}"#), Some(0));
    assert_eq!(keep(r#"{"KEEP":3,"keep":null}"#), Some(3));
    assert_eq!(keep(r#"{"keep":1,"Keep":4}"#), Some(4));
    for bad in [
        r#"{"keep":-1}"#,
        r#"{"keep":1.5}"#,
        r#"{"keep":"2"}"#,
        r#"{"keep":true}"#,
        r#"{"keep":18446744073709551616}"#,
    ] {
        assert!(keep(bad).is_none(), "{bad}");
    }
}

#[test]
fn go_json_decoding() {
    let j = GoJson::parse(br#"{"CONTEXT":"e30=","Plaintext":null} trailing"#, FIELDS).unwrap();
    assert_eq!(j.bytes("context").unwrap().as_slice(), b"{}");
    assert!(j.bytes("plaintext").unwrap().is_empty());
    assert!(j.bytes("missing").unwrap().is_empty());
    let j = GoJson::parse(br#"{"context":"e30=\n"}"#, FIELDS).unwrap();
    assert_eq!(j.bytes("context").unwrap().as_slice(), b"{}");
    assert!(GoJson::parse(b"{not json", FIELDS).is_err());
    assert!(GoJson::parse(b"[1]", FIELDS).is_err());
    assert!(GoJson::parse(b"", FIELDS).is_err());
    let j = GoJson::parse(br#"{"context":"e30"}"#, FIELDS).unwrap();
    assert!(
        j.bytes("context").is_err(),
        "unpadded base64 is rejected like Go"
    );
    let j = GoJson::parse(br#"{"context":5}"#, FIELDS).unwrap();
    assert!(j.bytes("context").is_err());
}

#[test]
fn go_json_last_matching_key_wins() {
    // "e30=" is {}, "W10=" is [].
    let j = GoJson::parse(br#"{"context":"e30=","CONTEXT":"W10="}"#, FIELDS).unwrap();
    assert_eq!(j.bytes("context").unwrap().as_slice(), b"[]");
    let j = GoJson::parse(br#"{"CONTEXT":"e30=","context":"W10="}"#, FIELDS).unwrap();
    assert_eq!(j.bytes("context").unwrap().as_slice(), b"[]");
    // Exact repeats count in document order too, around other spellings.
    let j = GoJson::parse(
        br#"{"context":"e30=","Context":"W10=","context":"e30="}"#,
        FIELDS,
    )
    .unwrap();
    assert_eq!(j.bytes("context").unwrap().as_slice(), b"{}");
    // null empties a []byte that an earlier key set ...
    let j = GoJson::parse(br#"{"context":"e30=","Context":null}"#, FIELDS).unwrap();
    assert!(j.bytes("context").unwrap().is_empty());
    // ... but leaves a string alone, as Go does.
    let j = GoJson::parse(br#"{"cipher":"AES256","CIPHER":null}"#, FIELDS).unwrap();
    assert_eq!(j.string("cipher").unwrap(), "AES256");
    let j = GoJson::parse(br#"{"cipher":"AES256","Cipher":"ChaCha20"}"#, FIELDS).unwrap();
    assert_eq!(j.string("cipher").unwrap(), "ChaCha20");
    // A bad value fails the decode even when a later key is good.
    let j = GoJson::parse(br#"{"context":"e30","Context":"e30="}"#, FIELDS).unwrap();
    assert!(j.bytes("context").is_err());
    let j = GoJson::parse(br#"{"cipher":1,"cipher":"AES256"}"#, FIELDS).unwrap();
    assert!(j.string("cipher").is_err());
    // Keys of other fields do not interfere.
    let j = GoJson::parse(br#"{"plaintext":"e30=","context":"W10="}"#, FIELDS).unwrap();
    assert_eq!(j.bytes("plaintext").unwrap().as_slice(), b"{}");
}

#[test]
fn go_json_case_folding() {
    let j = GoJson::parse("{\"\u{212A}ey\":\"e30=\"}".as_bytes(), FIELDS).unwrap();
    assert_eq!(
        j.bytes("key").unwrap().as_slice(),
        b"{}",
        "Kelvin sign K folds to k"
    );
    let j = GoJson::parse(br#"{"\u212Aey":"e30="}"#, FIELDS).unwrap();
    assert_eq!(
        j.bytes("key").unwrap().as_slice(),
        b"{}",
        "escaped Kelvin sign"
    );
    let j = GoJson::parse("{\"me\u{17F}Sage\":\"e30=\"}".as_bytes(), FIELDS).unwrap();
    assert_eq!(
        j.bytes("message").unwrap().as_slice(),
        b"{}",
        "long s folds to s"
    );
    let j = GoJson::parse(
        "{\"CIPHER\":\"x\",\"ciphe\u{280}\":\"y\"}".as_bytes(),
        FIELDS,
    )
    .unwrap();
    assert_eq!(j.string("cipher").unwrap(), "x");
    // Characters that only look alike, or fold only in Turkish, or fold
    // to more than one character, do not match.
    for key in [
        "ke\u{1D67}",   // ᵧ (modifier letter)
        "\u{1E31}ey",   // ḱ
        "c\u{131}pher", // dotless ı
        "c\u{130}pher", // dotted İ
        "ciphe\u{280}", // ʀ
        "KEY\u{0}",
        "ke",
        "keyy",
        "",
    ] {
        let body = serde_json::json!({ key: "e30=" }).to_string();
        let j = GoJson::parse(body.as_bytes(), FIELDS).unwrap();
        assert!(j.bytes("key").unwrap().is_empty(), "{key:?}");
        assert!(j.string("cipher").unwrap().is_empty(), "{key:?}");
    }
    assert!(key_matches("\u{212A}\u{17F}", "ks"));
    assert!(key_matches("\u{212A}\u{17F}", "KS"));
    assert!(!key_matches("\u{212A}", "s"));
    assert!(!key_matches("\u{17F}", "k"));
}

#[test]
fn go_json_lists() {
    let items = GoJson::parse_list(
        br#"[{"ciphertext":"e30=","CIPHERTEXT":"W10="},null,{}] x"#,
        FIELDS,
    )
    .unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].bytes("ciphertext").unwrap().as_slice(), b"[]");
    assert!(items[1].bytes("ciphertext").unwrap().is_empty());
    assert!(items[2].bytes("ciphertext").unwrap().is_empty());
    assert!(GoJson::parse_list(b"null", FIELDS).unwrap().is_empty());
    assert!(GoJson::parse_list(b"[1]", FIELDS).is_err());
    assert!(GoJson::parse_list(b"{}", FIELDS).is_err());
    assert!(GoJson::parse_list(b"", FIELDS).is_err());
}

#[test]
fn base64_is_go_std_encoding() {
    let decode = |s: &str| decode_base64(s).map(|b| b.to_vec());
    assert_eq!(decode("QQ==").unwrap(), b"A");
    assert_eq!(decode("").unwrap(), b"");
    assert_eq!(decode("AQ\r\nI=\n").unwrap(), [1, 2]);
    // The unused bits of the last character are ignored: `QR==` is `A`
    // to Go, as are `QS==` … `QV==`; `QUJ=` is `AB`.
    for s in ["QR==", "QS==", "QT==", "QV=="] {
        assert_eq!(decode(s).unwrap(), b"A", "{s}");
    }
    assert_eq!(decode("QUJ=").unwrap(), b"AB");
    assert_eq!(decode("QUI=").unwrap(), b"AB");
    // Padding is required, and only where it belongs.
    for s in ["QQ", "QQ=", "QUI", "QQ===", "=QQ=", "QQ==QQ==", "Q===", "Q"] {
        assert!(decode(s).is_none(), "{s}");
    }
    // Characters outside the standard alphabet are refused, URL-safe ones
    // and white space other than `\r` and `\n` included.
    for s in [
        "Q-==",
        "Q_==",
        "QQ== ",
        " QQ==",
        "QQ\t==",
        "Q*==",
        "QQ\u{e9}=",
    ] {
        assert!(decode(s).is_none(), "{s:?}");
    }
    assert_eq!(encode_base64(b"A"), "QQ==");
}

#[test]
fn lenient_base64_in_request_fields() {
    let j = GoJson::parse(br#"{"plaintext":"QR=="}"#, FIELDS).unwrap();
    assert_eq!(j.bytes("plaintext").unwrap().as_slice(), b"A");
    let j = GoJson::parse(br#"{"plaintext":"QR"}"#, FIELDS).unwrap();
    assert!(j.bytes("plaintext").is_err());
}

#[test]
fn fold_key_and_key_matches_agree() {
    for key in [
        "Key",
        "\u{212A}EY",
        "me\u{17F}sage",
        "c\u{131}pher",
        "ke\u{1D67}",
        "k",
        "",
    ] {
        for name in ["key", "message", "cipher", "k"] {
            assert_eq!(
                key_matches(key, name),
                fold_key(key) == name,
                "{key:?} {name}"
            );
        }
    }
}

#[test]
fn whole_documents_refuse_trailing_bytes() {
    assert!(GoJson::parse(br#"{"aead":"x"} {}"#, FIELDS).is_ok());
    assert!(GoJson::parse_document(br#"{"aead":"x"} {}"#, FIELDS).is_err());
    let j = GoJson::parse_document(b" {\"AEAD\":\"x\"} \n", FIELDS).unwrap();
    assert_eq!(j.string("aead").unwrap(), "x");
}

#[test]
fn other_members_are_skipped_unread() {
    // Go skips a member no field takes without converting it: a number
    // beyond f64 fails only a field that takes it.
    let j = GoJson::parse(br#"{"x":1e400,"plaintext":"QQ=="}"#, &["plaintext"]).unwrap();
    assert_eq!(j.bytes("plaintext").unwrap().as_slice(), b"A");
    assert!(GoJson::parse(br#"{"plaintext":1e400}"#, &["plaintext"]).is_err());
    // Members of other fields are not kept, so not read as this one.
    let j = GoJson::parse(br#"{"context":"e30="}"#, &["plaintext"]).unwrap();
    assert!(j.bytes("context").unwrap().is_empty());
}
