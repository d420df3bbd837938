//! Known answers: the Go KES's storage encoding, legacy key ids and
//! decryption vectors (its `internal/crypto/key_test.go`) and the fixtures in
//! `testdata/go-kes/`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kes_core::ciphertext::{Ciphertext, Format};
use kes_core::key::{DecryptError, KeyError};
use kes_core::{HmacKey, KeyAlgorithm, KeyVersion, SecretKey};

fn b64(s: &str) -> Vec<u8> {
    B64.decode(s).unwrap()
}

fn key32(s: &str) -> [u8; 32] {
    b64(s).try_into().unwrap()
}

const Z: [u8; 32] = [0; 32];
const K: &str = "dDHbTWgo+Yh3u804SYB5OyVMy6RiLeJYBQth1f6KlEU=";
const P1: &str = "CLcJoykFCWZDkEIiUq9bJRqwCwW9ZDvdgu8EMA==";

const V0: &str = r#"{"aead":"AES-256-GCM-HMAC-SHA-256","iv":"xLxIN3tSCkg2xMafuvwUwg==","nonce":"gu0mGwUkwcvMEoi5","bytes":"WVgRjeIJm3w50C/l+y7y2i6mbNg5NCAqN1zvOYWZKmc="}"#;
const V1: &str = r#"{"aead":"ChaCha20Poly1305","iv":"s3fSZ6vk5m+DfQA8yZWeUg==","nonce":"8/kHMnCMs3h9NZ2a","bytes":"cw22HjLq/4cx8507SW4hhSrYbDiMuRao4b5+GE+XfbE="}"#;
const V2: &str = r#"{"aead":"ChaCha20Poly1305","id":"66687aadf862bd776c8fc18b8e9f8e20","iv":"EC0eZp7Pqt+LnkOae5xaAg==","nonce":"X1ejXKmH/ugFZPkk","bytes":"wIGBTDs6aOvsqJfekZ0PYRT/OHyFX2TXqeNwl1SLXOI="}"#;
const V3: &str = "lbFBRVMyNTYtR0NNX1NIQTI1NtkgNjY2ODdhYWRmODYyYmQ3NzZjOGZjMThiOGU5ZjhlMjDEEExv7LAd4oz0SaHZrX5LBufEDEKME1ow1CDfUFrqv8QgJuy7Sw+jVqz99TK1HV851LT3K4mwwDv46TB2ngWkAJQ=";
const V4: &str = "lbJYQ0hBQ0hBMjAtUE9MWTEzMDXZIDY2Njg3YWFkZjg2MmJkNzc2YzhmYzE4YjhlOWY4ZTIwxBBAr+aptD4x2+qfOhiErbnkxAxYs8RmNC1JJXD1hiHEIJ2KqM0jjkME7ndx8nyVseesN83Np0rM5ejVUun+fNFu";
const V5: &str = "zwdDgHeRlIFRnJ7+DIhs/ka7GFK2CFSfDELqg1VCyTQzZ58o7MAdupMLk3ZjlMo2ZUDwldL2o41nAWDc";

#[test]
fn go_kes_ciphertexts_of_every_format_decrypt() {
    let aes = SecretKey::new(KeyAlgorithm::Aes256, Z);
    let chacha = SecretKey::new(KeyAlgorithm::ChaCha20, Z);
    let cases: [(&SecretKey, Vec<u8>, Format); 6] = [
        (&aes, V0.as_bytes().to_vec(), Format::Json),
        (&chacha, V1.as_bytes().to_vec(), Format::Json),
        (&chacha, V2.as_bytes().to_vec(), Format::Json),
        (&aes, b64(V3), Format::MessagePack),
        (&chacha, b64(V4), Format::MessagePack),
        (&aes, b64(V5), Format::Raw),
    ];
    for (i, (key, ciphertext, format)) in cases.iter().enumerate() {
        assert_eq!(
            Ciphertext::parse(ciphertext).unwrap().format,
            *format,
            "#{i}"
        );
        let plaintext = key
            .decrypt(ciphertext, b"")
            .unwrap_or_else(|e| panic!("#{i}: {e}"));
        assert_eq!(plaintext.as_slice(), &[0u8; 16], "#{i}");
        // The same bytes under the other algorithm must not open.
        let other = if key.algorithm() == KeyAlgorithm::Aes256 {
            &chacha
        } else {
            &aes
        };
        assert_eq!(other.decrypt(ciphertext, b""), Err(DecryptError), "#{i}");
        // Nor with some associated data.
        assert_eq!(key.decrypt(ciphertext, b"x"), Err(DecryptError), "#{i}");
    }
}

#[test]
fn tampered_go_kes_ciphertexts_fail_to_decrypt() {
    let aes = SecretKey::new(KeyAlgorithm::Aes256, Z);
    let chacha = SecretKey::new(KeyAlgorithm::ChaCha20, Z);
    let cases: [(&SecretKey, String); 7] = [
        // #8: a label KES never wrote.
        (&aes, V0.replace("AES-256-GCM-HMAC-SHA-256", "AES-256-GCM")),
        // #9: 20-byte iv.
        (
            &aes,
            V0.replace("xLxIN3tSCkg2xMafuvwUwg==", "EjOY4JKqjIrPmQ5z1KSR8zlhggY="),
        ),
        // #10: 8-byte ChaCha nonce.
        (&chacha, V1.replace("8/kHMnCMs3h9NZ2a", "SXAbms731/c=")),
        // #11: 8-byte AES nonce.
        (&aes, V0.replace("gu0mGwUkwcvMEoi5", "efY+4kYF9n8=")),
        // #12, #13: not authentic.
        (
            &aes,
            V0.replace(
                "WVgRjeIJm3w50C/l+y7y2i6mbNg5NCAqN1zvOYWZKmc=",
                "QTza1g5oX3f9cGJMbY1xJwWPj1F7R2VnNl6XpFKYQy0=",
            ),
        ),
        (
            &chacha,
            V1.replace(
                "cw22HjLq/4cx8507SW4hhSrYbDiMuRao4b5+GE+XfbE=",
                "TTi8pkO+Jh1JWAHvPxZeUk/iVoBPUCE4ZSVGBy3fW2s=",
            ),
        ),
        // #14: missing comma.
        (&aes, V0.replacen("\",\"iv\"", "\" \"iv\"", 1)),
    ];
    for (i, (key, ciphertext)) in cases.iter().enumerate() {
        assert_ne!(
            ciphertext.as_str(),
            V0,
            "case {} did not change the vector",
            i + 8
        );
        assert_ne!(
            ciphertext.as_str(),
            V1,
            "case {} did not change the vector",
            i + 8
        );
        assert_eq!(
            key.decrypt(ciphertext.as_bytes(), b""),
            Err(DecryptError),
            "#{}",
            i + 8
        );
    }
}

#[test]
fn encryption_round_trips_and_never_repeats_a_ciphertext() {
    let p0 = [0u8; 16];
    let p1 = b64(P1);
    let ad1 = [0u8; 16];
    for algorithm in [KeyAlgorithm::Aes256, KeyAlgorithm::ChaCha20] {
        for (key, plaintext, ad) in [(Z, &p0[..], &[][..]), (key32(K), &p1[..], &ad1[..])] {
            let key = SecretKey::new(algorithm, key);
            let ciphertext = key.encrypt(plaintext, ad);
            assert_eq!(ciphertext.len(), plaintext.len() + 44);
            assert_eq!(Ciphertext::parse(&ciphertext).unwrap().format, Format::Raw);
            assert_eq!(key.decrypt(&ciphertext, ad).unwrap().as_slice(), plaintext);
            // Fresh randomness every time.
            assert_ne!(key.encrypt(plaintext, ad), ciphertext);
        }
    }
}

#[test]
fn legacy_key_id_matches_go_kes() {
    let key = SecretKey::new(KeyAlgorithm::Aes256, Z);
    assert_eq!(key.legacy_key_id(), "66687aadf862bd776c8fc18b8e9f8e20");
}

const PROTO_KAT: &str = "CiQKIMiHG7XrN94FuwblJJor4f7f6rbqAl7DwsLaiIoyz0D2EAESJAognLXl4yqa4cjZTcSbsU6sNnN8kP9ARWkXwa20YQZa9HgQARoMCNithK0GEID67qYDIkAzZWNmY2RmMzhmY2JlMTQxYWUyNmExMDMwZjgxZTk2Yjc1MzM2NWE0Njc2MGFlNmI1Nzg2OThhOTdjNTlmZDIy";

#[test]
fn protobuf_key_version_decodes_and_encodes_as_go_kes() {
    let version = KeyVersion::decode(PROTO_KAT.as_bytes()).unwrap();
    assert_eq!(
        version.key,
        SecretKey::new(
            KeyAlgorithm::Aes256,
            key32("yIcbtes33gW7BuUkmivh/t/qtuoCXsPCwtqIijLPQPY=")
        )
    );
    assert_eq!(
        version.hmac_key,
        Some(HmacKey::new(key32(
            "nLXl4yqa4cjZTcSbsU6sNnN8kP9ARWkXwa20YQZa9Hg="
        )))
    );
    assert_eq!(version.created_at.unix_timestamp(), 1705055960);
    assert_eq!(version.created_at.nanosecond(), 886816000);
    assert_eq!(version.created_at.offset(), time::UtcOffset::UTC);
    assert_eq!(
        version.created_by,
        "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22"
    );
    assert_eq!(version.encode().unwrap(), PROTO_KAT);
}

#[test]
fn legacy_json_keys_decode() {
    let zero =
        KeyVersion::decode(br#"{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#).unwrap();
    assert_eq!(zero.key, SecretKey::new(KeyAlgorithm::Aes256, Z));
    assert!(zero.hmac_key.is_none());
    assert_eq!(zero.hmac(b"message"), None);
    assert_eq!(zero.created_at.year(), 1);
    assert_eq!(zero.created_by, "");
    assert_eq!(zero.encode(), Err(KeyError::Invalid("key has no HMAC key")));

    let xchacha = KeyVersion::decode(
        br#"{"bytes":"9ew6BCae3+13sniOUwttEJ62amg98YXc0OW0WBhNiCY=","algorithm":"XCHACHA20-POLY1305","created_at":"2009-11-10T23:00:00Z","created_by":"189d9de5331e3ee8abe9e4bd40d474ad621d79ccf83a711f6ac68050eb15a52a"}"#,
    )
    .unwrap();
    assert_eq!(
        xchacha.key,
        SecretKey::new(
            KeyAlgorithm::ChaCha20,
            key32("9ew6BCae3+13sniOUwttEJ62amg98YXc0OW0WBhNiCY=")
        )
    );
    assert!(xchacha.hmac_key.is_none());
    assert_eq!(xchacha.created_at.unix_timestamp(), 1257894000);
    assert_eq!(
        xchacha.created_by,
        "189d9de5331e3ee8abe9e4bd40d474ad621d79ccf83a711f6ac68050eb15a52a"
    );

    // v0.22 wrote a version field; Go matches field names case-insensitively.
    let v022 = KeyVersion::decode(
        br#"{"Bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","ALGORITHM":"ChaCha20","version":"v1","created_at":"2020-01-01T01:00:00+01:00"}"#,
    )
    .unwrap();
    assert_eq!(v022.key, SecretKey::new(KeyAlgorithm::ChaCha20, Z));
    assert_eq!(v022.created_at.unix_timestamp(), 1577836800);
    assert_eq!(v022.created_at.offset(), time::UtcOffset::UTC);
}

#[test]
fn invalid_key_values_are_rejected() {
    let rejected: [&[u8]; 9] = [
        br#"{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=""#,
        br#"{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="}"#,
        br#"{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","algorithm":"AES-128"}"#,
        br#"{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","created_at":"yesterday"}"#,
        br#"{"algorithm":"AES256"}"#,
        br#"[]"#,
        b"",
        b"not base64!",
        b"AAAA",
    ];
    for value in rejected {
        assert!(
            matches!(KeyVersion::decode(value), Err(KeyError::Invalid(_))),
            "{:?}",
            String::from_utf8_lossy(value)
        );
    }
}

/// Rebuilds the protobuf KAT with one part changed, to check each rule.
fn proto_variant(secret: &[u8], hmac: Option<&[u8]>) -> String {
    let mut out = vec![0x0a, secret.len() as u8];
    out.extend_from_slice(secret);
    if let Some(hmac) = hmac {
        out.extend_from_slice(&[0x12, hmac.len() as u8]);
        out.extend_from_slice(hmac);
    }
    B64.encode(out)
}

#[test]
fn protobuf_rules() {
    let mut secret = vec![0x0a, 0x20];
    secret.extend_from_slice(&[7; 32]);
    let mut hmac = secret.clone();
    secret.extend_from_slice(&[0x10, 0x02]);
    hmac.extend_from_slice(&[0x10, 0x01]);

    let good = KeyVersion::decode(proto_variant(&secret, Some(&hmac)).as_bytes()).unwrap();
    assert_eq!(good.key, SecretKey::new(KeyAlgorithm::ChaCha20, [7; 32]));
    assert_eq!(good.created_at.unix_timestamp(), 0);
    // Re-encoding is stable from here on.
    let again = KeyVersion::decode(good.encode().unwrap().as_bytes()).unwrap();
    assert_eq!(again.key, good.key);
    assert_eq!(again.hmac_key, good.hmac_key);

    let invalid = |s: String, why: &str| {
        assert!(KeyVersion::decode(s.as_bytes()).is_err(), "{why}");
    };
    invalid(proto_variant(&secret, None), "missing HMAC key");
    let mut bad_type = secret.clone();
    *bad_type.last_mut().unwrap() = 3;
    invalid(proto_variant(&bad_type, Some(&hmac)), "type 3");
    let mut no_type = secret.clone();
    no_type.truncate(34);
    invalid(proto_variant(&no_type, Some(&hmac)), "type 0");
    let mut bad_hash = hmac.clone();
    *bad_hash.last_mut().unwrap() = 2;
    invalid(proto_variant(&secret, Some(&bad_hash)), "hash 2");
    let mut short = vec![0x0a, 0x1f];
    short.extend_from_slice(&[7; 31]);
    short.extend_from_slice(&[0x10, 0x01]);
    invalid(proto_variant(&short, Some(&hmac)), "31-byte key");
}

#[test]
fn generated_versions_encode_and_decode() {
    for algorithm in [KeyAlgorithm::Aes256, KeyAlgorithm::ChaCha20] {
        let version = KeyVersion::generate(algorithm, "admin");
        let decoded = KeyVersion::decode(version.encode().unwrap().as_bytes()).unwrap();
        assert_eq!(decoded.key, version.key);
        assert_eq!(decoded.hmac_key, version.hmac_key);
        assert_eq!(decoded.created_at, version.created_at);
        assert_eq!(decoded.created_by, "admin");

        let (dek, ciphertext) = version.generate_dek(b"ctx");
        assert_eq!(ciphertext.len(), 32 + 44);
        assert_eq!(
            decoded.key.decrypt(&ciphertext, b"ctx").unwrap().as_slice(),
            &dek[..]
        );
        assert_eq!(decoded.hmac(b"m"), version.hmac(b"m"));
        assert!(decoded.hmac(b"m").is_some());
        assert_ne!(decoded.hmac(b"m"), decoded.hmac(b"n"));
    }
    assert_ne!(
        KeyVersion::generate(KeyAlgorithm::Aes256, "").key,
        KeyVersion::generate(KeyAlgorithm::Aes256, "").key
    );
}

#[test]
fn debug_output_hides_key_material() {
    let version = KeyVersion::decode(PROTO_KAT.as_bytes()).unwrap();
    let debug = format!("{version:?}");
    assert!(debug.contains("redacted"));
    for secret in ["yIcbtes33gW7BuUkmivh", "c8871bb5eb37de05", "200, 135, 27"] {
        assert!(!debug.contains(secret), "{debug}");
    }
}

#[test]
fn default_algorithm_follows_the_cpu() {
    let algorithm = KeyAlgorithm::default_for_cpu();
    #[cfg(target_arch = "x86_64")]
    {
        let aes_gcm = std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq");
        assert_eq!(algorithm == KeyAlgorithm::Aes256, aes_gcm);
    }
    assert_eq!(KeyAlgorithm::parse(algorithm.as_str()), Some(algorithm));
}

// ---- Go KES fixtures ----------------------------------------------------

fn fixtures() -> std::path::PathBuf {
    crate::manifest_dir().join("../../testdata/go-kes")
}

fn fixture_key(name: &str) -> KeyVersion {
    let value = std::fs::read(fixtures().join("keys").join(name)).unwrap();
    KeyVersion::decode(&value).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn go_kes_key_files_decode() {
    let vectors: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("vectors.json")).unwrap()).unwrap();
    let mut files = 0;
    for entry in std::fs::read_dir(fixtures().join("keys")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let version = fixture_key(&name);
        assert!(version.hmac_key.is_some(), "{name}");
        // The Go server wrote them just now, not at the epoch.
        assert!(version.created_at.year() >= 2024, "{name}");
        // Our encoding of the decoded key is what Go wrote, byte for byte.
        let stored = std::fs::read_to_string(fixtures().join("keys").join(&name)).unwrap();
        assert_eq!(version.encode().unwrap(), stored, "{name}");
        files += 1;
    }
    assert_eq!(files, 3);

    for (name, imported) in vectors["imported"].as_object().unwrap() {
        let algorithm = KeyAlgorithm::parse(imported["cipher"].as_str().unwrap()).unwrap();
        let raw = key32(imported["key"].as_str().unwrap());
        assert_eq!(
            fixture_key(name).key,
            SecretKey::new(algorithm, raw),
            "{name}"
        );
    }
}

#[test]
fn go_kes_ciphertexts_and_hmacs() {
    let vectors: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("vectors.json")).unwrap()).unwrap();
    let (mut decrypted, mut hmacs) = (0, 0);
    for v in vectors["vectors"].as_array().unwrap() {
        let name = v["key"].as_str().unwrap();
        let key = fixture_key(name);
        let field = |f: &str| b64(v[f].as_str().unwrap());
        match v["op"].as_str().unwrap() {
            "generate" | "encrypt" => {
                let (ciphertext, context) = (field("ciphertext"), field("context"));
                let plaintext = key.key.decrypt(&ciphertext, &context).unwrap();
                assert_eq!(plaintext.as_slice(), field("plaintext"), "{name} {v}");
                let mut wrong = context.clone();
                wrong.push(b' ');
                assert_eq!(key.key.decrypt(&ciphertext, &wrong), Err(DecryptError));
                decrypted += 1;
            }
            "hmac" => {
                let message = field("message");
                assert_eq!(
                    key.hmac(&message).unwrap().to_vec(),
                    field("hmac"),
                    "{name} {v}"
                );
                hmacs += 1;
            }
            op => panic!("unknown op {op}"),
        }
    }
    assert_eq!((decrypted, hmacs), (24, 9));
}

#[test]
fn go_leniencies() {
    // Go's base64 decoder skips line breaks, so a key file edited into
    // having a trailing newline still loads.
    let mut value = PROTO_KAT.as_bytes().to_vec();
    value.extend_from_slice(b"\r\n");
    let version = KeyVersion::decode(&value).unwrap();
    assert_eq!(version.encode().unwrap(), PROTO_KAT);

    // Go's encoding/json matches field names case-insensitively.
    let shouting = V0
        .replace("\"aead\"", "\"AEAD\"")
        .replace("\"iv\"", "\"IV\"")
        .replace("\"bytes\"", "\"Bytes\"");
    let aes = SecretKey::new(KeyAlgorithm::Aes256, Z);
    assert_eq!(
        aes.decrypt(shouting.as_bytes(), b"").unwrap().as_slice(),
        &[0u8; 16]
    );

    // Any MessagePack str width: vector #3 with its algorithm as str8.
    let v3 = b64(V3);
    assert_eq!(v3[1], 0xb1);
    let mut widened = vec![0x95, 0xd9, 17];
    widened.extend_from_slice(&v3[2..]);
    assert_eq!(aes.decrypt(&widened, b"").unwrap().as_slice(), &[0u8; 16]);
    assert_eq!(
        Ciphertext::parse(&widened).unwrap().format,
        Format::MessagePack
    );
}
