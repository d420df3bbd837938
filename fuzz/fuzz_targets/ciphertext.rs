//! Ciphertexts as clients send them (`/v1/key/decrypt`): raw, legacy
//! MessagePack and legacy JSON. Parsing and decrypting any bytes must not
//! panic, and a parsed ciphertext must describe the bytes it came from.
#![no_main]

use kes_core::ciphertext::{Ciphertext, Format, IV_LEN, NONCE_LEN};
use kes_core::{KeyAlgorithm, SecretKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = Ciphertext::parse(data) {
        let raw = parsed.to_raw();
        assert_eq!(raw.len(), parsed.sealed.len() + IV_LEN + NONCE_LEN);
        match parsed.format {
            // Raw parsing only splits, so it must give back the input.
            Format::Raw => assert_eq!(raw, data),
            Format::MessagePack => assert_eq!(data[0], 0x95),
            Format::Json => assert_eq!(data[0], b'{'),
        }
        // The normalised form parses to the same parts, unless its first
        // byte happens to announce a legacy format. (A legacy JSON
        // ciphertext may lack its bytes; decryption rejects it later.)
        if !parsed.sealed.is_empty() && !matches!(raw.first(), Some(0x95 | b'{')) {
            let again = Ciphertext::parse(&raw).expect("raw form parses");
            assert_eq!(again.sealed, parsed.sealed);
            assert_eq!(again.iv, parsed.iv);
            assert_eq!(again.nonce, parsed.nonce);
        }
    }
    for algorithm in [KeyAlgorithm::Aes256, KeyAlgorithm::ChaCha20] {
        let key = SecretKey::new(algorithm, [0x42; 32]);
        // Random bytes are not authentic under a fixed key.
        assert!(key.decrypt(data, b"").is_err());
    }
});
