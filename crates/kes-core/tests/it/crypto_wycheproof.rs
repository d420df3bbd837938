//! Wycheproof vectors through the exact primitive calls the ciphertext format
//! is built from (AES-256-GCM, ChaCha20-Poly1305, HMAC-SHA256).

use kes_core::key::primitive;
use kes_core::KeyAlgorithm;
use wycheproof::{aead, mac, TestResult};

/// Runs every test with a 256-bit key, 96-bit nonce and 128-bit tag (the
/// only parameters KES uses) and returns how many ran.
fn run_aead(name: aead::TestName, algorithm: KeyAlgorithm) -> usize {
    let set = aead::TestSet::load(name).unwrap();
    let mut ran = 0;
    for group in set.test_groups {
        if group.key_size != 256 || group.nonce_size != 96 || group.tag_size != 128 {
            continue;
        }
        for test in group.tests {
            let id = test.tc_id;
            let key: &[u8; 32] = test.key.as_slice().try_into().unwrap();
            let nonce: &[u8; 12] = test.nonce.as_slice().try_into().unwrap();
            let tag: &[u8; 16] = test.tag.as_slice().try_into().unwrap();

            let mut buffer = test.ct.to_vec();
            let opened = primitive::open(algorithm, key, nonce, &test.aad, &mut buffer, tag);
            match test.result {
                TestResult::Valid | TestResult::Acceptable => {
                    assert_eq!(opened, Ok(()), "tc {id}: {}", test.comment);
                    assert_eq!(buffer, test.pt.as_slice(), "tc {id}");

                    let mut sealed = test.pt.to_vec();
                    let computed = primitive::seal(algorithm, key, nonce, &test.aad, &mut sealed);
                    assert_eq!(sealed, test.ct.as_slice(), "tc {id}");
                    assert_eq!(&computed, tag, "tc {id}");
                }
                TestResult::Invalid => {
                    assert!(opened.is_err(), "tc {id} opened: {}", test.comment);
                }
            }
            ran += 1;
        }
    }
    ran
}

#[test]
fn aes_256_gcm() {
    let ran = run_aead(aead::TestName::AesGcm, KeyAlgorithm::Aes256);
    assert!(ran > 50, "only {ran} AES-256-GCM vectors ran");
}

#[test]
fn chacha20_poly1305() {
    let ran = run_aead(aead::TestName::ChaCha20Poly1305, KeyAlgorithm::ChaCha20);
    assert!(ran > 100, "only {ran} ChaCha20-Poly1305 vectors ran");
}

#[test]
fn hmac_sha256() {
    let set = mac::TestSet::load(mac::TestName::HmacSha256).unwrap();
    let mut ran = 0;
    for group in set.test_groups {
        for test in group.tests {
            let computed = primitive::hmac_sha256(&test.key, &test.msg);
            // Some groups check truncated tags; KES uses the full 32 bytes.
            let truncated = &computed[..test.tag.len().min(32)];
            let matches = test.tag.len() <= 32 && truncated == test.tag.as_slice();
            match test.result {
                TestResult::Valid | TestResult::Acceptable => {
                    assert!(matches, "tc {}: {}", test.tc_id, test.comment)
                }
                TestResult::Invalid => assert!(!matches, "tc {}: {}", test.tc_id, test.comment),
            }
            ran += 1;
        }
    }
    assert!(ran > 100, "only {ran} HMAC-SHA256 vectors ran");
}

/// HChaCha20 test vector of draft-irtf-cfrg-xchacha-03, §2.2.1.
#[test]
fn hchacha20_draft_vector() {
    let key: [u8; 32] = std::array::from_fn(|i| i as u8);
    let input: [u8; 16] = hex::decode("000000090000004a0000000031415927")
        .unwrap()
        .try_into()
        .unwrap();
    let expected = "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc";
    assert_eq!(hex::encode(*primitive::hchacha20(&key, &input)), expected);
}
