//! Stored key values, as read back from a key store: base64 protobuf or the
//! legacy JSON form, and first entries of keys pending deletion or being
//! purged. Decoding must not panic, and a protobuf key must survive
//! encode → decode unchanged.
#![no_main]

use kes_core::KeyVersion;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A first entry: a live key, a tombstone (a text header, then the
    // former first entry) or a purge's placeholder. Telling which must
    // not panic whatever the bytes.
    let _ = kes_keystore::versions::first_entry("fuzz", data);
    let Ok(version) = KeyVersion::decode(data) else {
        return;
    };
    // Using a decoded key must not panic either.
    let ciphertext = version.key.encrypt(b"fuzz", b"context");
    assert_eq!(
        &version.key.decrypt(&ciphertext, b"context").unwrap()[..],
        b"fuzz"
    );
    let _ = version.hmac(b"message");
    if version.hmac_key.is_none() {
        // The legacy JSON form carries no HMAC key and cannot be re-encoded.
        assert!(version.encode().is_err());
        return;
    }
    let encoded = version.encode().expect("a decoded protobuf key encodes");
    let again = KeyVersion::decode(encoded.as_bytes()).expect("re-encoded key decodes");
    assert!(again.key == version.key);
    assert!(again.hmac_key == version.hmac_key);
    assert_eq!(again.created_at, version.created_at);
    assert_eq!(again.created_by, version.created_by);
});
