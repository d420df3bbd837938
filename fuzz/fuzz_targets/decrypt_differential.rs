//! Differential decryption: kes-core (aws-lc-rs) against the RustCrypto
//! AEADs with textbook HMAC-SHA256 / HChaCha20 key derivation, for every
//! wire format. Both must accept exactly the authentic ciphertexts and
//! return the same plaintext.
#![no_main]

use base64::Engine as _;
use kes_core::{KeyAlgorithm, SecretKey};
use kes_fuzz::reference;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Wire {
    Raw,
    /// `label` picks one of the labels KES wrote, `widths` the str/bin
    /// encoding of each of the five fields.
    MessagePack {
        label: u8,
        key_id: Vec<u8>,
        widths: [u8; 4],
    },
    Json {
        label: bool,
        id: String,
        newline_at: Option<u8>,
    },
}

#[derive(Debug, Arbitrary)]
struct Case {
    chacha: bool,
    key: [u8; 32],
    iv: [u8; 16],
    nonce: [u8; 12],
    aad: Vec<u8>,
    plaintext: Vec<u8>,
    wire: Wire,
    /// Flip bits of one byte of the raw ciphertext: (index, xor mask).
    tamper: Option<(u16, u8)>,
    /// Arbitrary bytes offered to both implementations.
    junk: Vec<u8>,
}

fn msgpack_field(out: &mut Vec<u8>, width: u8, bytes: &[u8]) {
    let len = bytes.len();
    match width % 7 {
        0 if len < 32 => out.push(0xa0 | len as u8),
        1 if len < 256 => out.extend_from_slice(&[0xc4, len as u8]),
        2 if len < 256 => out.extend_from_slice(&[0xd9, len as u8]),
        3 if len < 65536 => {
            out.push(0xc5);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        4 if len < 65536 => {
            out.push(0xda);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        5 => {
            out.push(0xdb);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
        _ => {
            out.push(0xc6);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
    out.extend_from_slice(bytes);
}

fn encode(case: &Case, sealed: &[u8]) -> Vec<u8> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    match &case.wire {
        Wire::Raw => [sealed, &case.iv, &case.nonce].concat(),
        Wire::MessagePack {
            label,
            key_id,
            widths,
        } => {
            let labels: [&[u8]; 4] = [
                b"AES256",
                b"AES256-GCM_SHA256",
                b"ChaCha20",
                b"XCHACHA20-POLY1305",
            ];
            let mut out = vec![0x95];
            msgpack_field(&mut out, widths[0], labels[usize::from(label % 4)]);
            msgpack_field(&mut out, widths[1], key_id);
            msgpack_field(&mut out, widths[2], &case.iv);
            msgpack_field(&mut out, widths[3], &case.nonce);
            msgpack_field(&mut out, widths[0] / 7, sealed);
            out
        }
        Wire::Json {
            label,
            id,
            newline_at,
        } => {
            let aead = if *label {
                "AES-256-GCM-HMAC-SHA-256"
            } else {
                "ChaCha20Poly1305"
            };
            let mut bytes = b64(sealed);
            // Go's base64 decoder skips line breaks anywhere.
            if let Some(at) = newline_at {
                let at = usize::from(*at).min(bytes.len());
                bytes.insert_str(at, "\r\n");
            }
            serde_json::json!({
                "aead": aead,
                "id": id,
                "iv": b64(&case.iv),
                "nonce": b64(&case.nonce),
                "bytes": bytes,
            })
            .to_string()
            .into_bytes()
        }
    }
}

fuzz_target!(|case: Case| {
    let algorithm = if case.chacha {
        KeyAlgorithm::ChaCha20
    } else {
        KeyAlgorithm::Aes256
    };
    let ours = SecretKey::new(algorithm, case.key);

    // Reference encrypts, kes-core decrypts, in every wire format.
    let sealed = reference::seal(
        case.chacha,
        &case.key,
        &case.iv,
        &case.nonce,
        &case.aad,
        &case.plaintext,
    );
    let wire = encode(&case, &sealed);
    let opened = ours
        .decrypt(&wire, &case.aad)
        .expect("authentic ciphertext");
    assert_eq!(&opened[..], &case.plaintext[..]);

    // Any change to the raw form breaks authenticity in both.
    if let Some((index, mask)) = case.tamper.filter(|(_, mask)| *mask != 0) {
        let mut raw = [&sealed[..], &case.iv, &case.nonce].concat();
        let at = usize::from(index) % raw.len();
        raw[at] ^= mask;
        assert!(ours.decrypt(&raw, &case.aad).is_err());
        assert!(reference::open_raw(case.chacha, &case.key, &raw, &case.aad).is_none());
    }

    // kes-core encrypts, the reference decrypts.
    let ciphertext = ours.encrypt(&case.plaintext, &case.aad);
    let back =
        reference::open_raw(case.chacha, &case.key, &ciphertext, &case.aad).expect("authentic");
    assert_eq!(back, case.plaintext);

    // Arbitrary bytes: the raw-format verdicts agree.
    if !matches!(case.junk.first(), Some(0x95 | b'{')) {
        let a = ours.decrypt(&case.junk, &case.aad).ok().map(|p| p.to_vec());
        let b = reference::open_raw(case.chacha, &case.key, &case.junk, &case.aad);
        assert_eq!(a, b);
    }
});
