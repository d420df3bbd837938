//! Request bodies decoded with Go `encoding/json` semantics (`GoJson`):
//! create/import/encrypt/decrypt/generate/HMAC bodies. Any body must be
//! accepted or refused without panicking; the field accessors must agree
//! with each other.
#![no_main]

use kes_core::gocompat::GoJson;
use libfuzzer_sys::fuzz_target;

// The field names KES asks for (always ASCII; `GoJson` relies on it). Keys
// in the input fold onto them, `ſ` (U+017F) onto the `s` of `message` and
// `K` (U+212A) onto `k`, as in Go.
const FIELDS: [&str; 7] = [
    "plaintext",
    "ciphertext",
    "context",
    "bytes",
    "message",
    "name",
    "Plaintext",
];

fuzz_target!(|data: &[u8]| {
    let Ok(json) = GoJson::parse(data, &FIELDS) else {
        return;
    };
    for name in FIELDS {
        let text = json.string(name);
        let bytes = json.bytes(name);
        // A field that is base64 bytes is also a string; missing or null
        // fields are empty in both views.
        if let Ok(b) = &bytes {
            if b.is_empty() {
                continue;
            }
            let text = text.expect("a []byte field is a JSON string");
            assert!(!text.is_empty());
        }
    }
});
