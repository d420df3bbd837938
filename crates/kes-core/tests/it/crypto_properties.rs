//! Property tests: round trips, tampering and hostile input.

use kes_core::ciphertext::Ciphertext;
use kes_core::key::DecryptError;
use kes_core::{KeyAlgorithm, KeyVersion, SecretKey};
use proptest::prelude::*;

fn algorithm() -> impl Strategy<Value = KeyAlgorithm> {
    prop_oneof![Just(KeyAlgorithm::Aes256), Just(KeyAlgorithm::ChaCha20)]
}

proptest! {
    #[test]
    fn encrypt_decrypt_round_trip(
        algorithm in algorithm(),
        key in any::<[u8; 32]>(),
        plaintext in proptest::collection::vec(any::<u8>(), 0..300),
        context in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let key = SecretKey::new(algorithm, key);
        let ciphertext = key.encrypt(&plaintext, &context);
        prop_assert_eq!(ciphertext.len(), plaintext.len() + 44);
        let decrypted = key.decrypt(&ciphertext, &context).unwrap();
        prop_assert_eq!(decrypted.as_slice(), plaintext.as_slice());
    }

    #[test]
    fn any_flipped_ciphertext_bit_fails(
        algorithm in algorithm(),
        key in any::<[u8; 32]>(),
        plaintext in proptest::collection::vec(any::<u8>(), 0..64),
        context in proptest::collection::vec(any::<u8>(), 0..32),
        bit in any::<prop::sample::Index>(),
    ) {
        let key = SecretKey::new(algorithm, key);
        let mut ciphertext = key.encrypt(&plaintext, &context);
        let bit = bit.index(ciphertext.len() * 8);
        ciphertext[bit / 8] ^= 1 << (bit % 8);
        prop_assert_eq!(key.decrypt(&ciphertext, &context), Err(DecryptError));
    }

    #[test]
    fn any_flipped_context_bit_fails(
        algorithm in algorithm(),
        key in any::<[u8; 32]>(),
        plaintext in proptest::collection::vec(any::<u8>(), 0..64),
        context in proptest::collection::vec(any::<u8>(), 1..32),
        bit in any::<prop::sample::Index>(),
    ) {
        let key = SecretKey::new(algorithm, key);
        let ciphertext = key.encrypt(&plaintext, &context);
        let mut wrong = context.clone();
        let bit = bit.index(wrong.len() * 8);
        wrong[bit / 8] ^= 1 << (bit % 8);
        prop_assert_eq!(key.decrypt(&ciphertext, &wrong), Err(DecryptError));
    }

    #[test]
    fn wrong_key_or_algorithm_fails(
        algorithm in algorithm(),
        key in any::<[u8; 32]>(),
        other in any::<[u8; 32]>(),
        plaintext in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        prop_assume!(key != other);
        let ciphertext = SecretKey::new(algorithm, key).encrypt(&plaintext, b"");
        prop_assert!(SecretKey::new(algorithm, other).decrypt(&ciphertext, b"").is_err());
        let swapped = match algorithm {
            KeyAlgorithm::Aes256 => KeyAlgorithm::ChaCha20,
            KeyAlgorithm::ChaCha20 => KeyAlgorithm::Aes256,
        };
        prop_assert!(SecretKey::new(swapped, key).decrypt(&ciphertext, b"").is_err());
    }

    /// Legacy formats are normalised to raw: re-wrapping a raw ciphertext
    /// in MessagePack or JSON must decrypt the same.
    #[test]
    fn legacy_wrappings_decrypt(
        algorithm in algorithm(),
        key in any::<[u8; 32]>(),
        plaintext in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let key = SecretKey::new(algorithm, key);
        let raw = key.encrypt(&plaintext, b"ctx");
        let parts = Ciphertext::parse(&raw).unwrap();

        let mut msgpack = vec![0x95, 0xa6];
        msgpack.extend_from_slice(b"AES256");
        msgpack.extend_from_slice(&[0xa0, 0xc4, 16]);
        msgpack.extend_from_slice(&parts.iv);
        msgpack.extend_from_slice(&[0xc4, 12]);
        msgpack.extend_from_slice(&parts.nonce);
        msgpack.push(0xc4);
        msgpack.push(parts.sealed.len() as u8);
        msgpack.extend_from_slice(&parts.sealed);
        prop_assert_eq!(key.decrypt(&msgpack, b"ctx").unwrap().to_vec(), plaintext.clone());

        let json = format!(
            r#"{{"aead":"ChaCha20Poly1305","iv":"{}","nonce":"{}","bytes":"{}"}}"#,
            b64(&parts.iv), b64(&parts.nonce), b64(&parts.sealed)
        );
        prop_assert_eq!(key.decrypt(json.as_bytes(), b"ctx").unwrap().to_vec(), plaintext);
    }

    #[test]
    fn random_bytes_never_panic_decrypt(
        algorithm in algorithm(),
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        first in prop_oneof![Just(0x95u8), Just(b'{'), any::<u8>()],
    ) {
        let mut bytes = bytes;
        bytes.insert(0, first);
        let key = SecretKey::new(algorithm, [9; 32]);
        prop_assert_eq!(key.decrypt(&bytes, b""), Err(DecryptError));
        let _ = Ciphertext::parse(&bytes);
    }

    #[test]
    fn random_bytes_never_panic_key_decode(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        as_base64 in any::<bool>(),
    ) {
        use base64::Engine as _;
        let value = if as_base64 {
            base64::engine::general_purpose::STANDARD.encode(&bytes).into_bytes()
        } else {
            bytes
        };
        let _ = KeyVersion::decode(&value);
    }

    #[test]
    fn random_json_never_panics_key_decode(
        bytes in "[a-zA-Z0-9+/=]{0,60}",
        algorithm in "[A-Za-z0-9-_]{0,20}",
        created_at in "[0-9TZ:.+-]{0,30}",
    ) {
        let value = format!(
            r#"{{"bytes":"{bytes}","algorithm":"{algorithm}","created_at":"{created_at}"}}"#
        );
        let _ = KeyVersion::decode(value.as_bytes());
    }
}
