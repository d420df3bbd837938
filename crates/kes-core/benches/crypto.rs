//! Micro-benchmarks of the KES ciphertext format, plus the measurements the
//! primitive and RNG choices in docs/performance.md rest on.
//!
//! cargo bench -p kes-core --bench crypto -- --warm-up-time 1 --measurement-time 3

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use kes_core::key::primitive;
use kes_core::{KeyAlgorithm, KeyVersion};

/// What MinIO sends for SSE-S3: `{"<bucket>":"<bucket>/<object>"}`.
const CONTEXT: &[u8] = br#"{"bucket":"bucket/object"}"#;

fn kes_format(c: &mut Criterion) {
    for algorithm in [KeyAlgorithm::Aes256, KeyAlgorithm::ChaCha20] {
        let version = KeyVersion::generate(algorithm, "bench");
        let mut group = c.benchmark_group(format!("kes/{algorithm}"));
        group.bench_function("generate_dek", |b| {
            b.iter(|| version.generate_dek(black_box(CONTEXT)))
        });
        let dek = [7u8; 32];
        group.bench_function("encrypt_32", |b| {
            b.iter(|| version.key.encrypt(black_box(&dek), black_box(CONTEXT)))
        });
        let ciphertext = version.key.encrypt(&dek, CONTEXT);
        group.bench_function("decrypt_32", |b| {
            b.iter(|| {
                version
                    .key
                    .decrypt(black_box(&ciphertext), black_box(CONTEXT))
            })
        });
        group.finish();
    }
}

/// A decrypt on a key with 10 versions: by trial (no `version` in the
/// request: the server tries the newest first, so a ciphertext of the
/// oldest costs 10 opens) against the version named (one open), as the
/// server's decrypt handler does each.
fn versions(c: &mut Criterion) {
    use kes_core::ring::{KeyRing, Lineage};
    use std::sync::Arc;
    let versions: Vec<Arc<KeyVersion>> = (0..10)
        .map(|_| Arc::new(KeyVersion::generate(KeyAlgorithm::Aes256, "bench")))
        .collect();
    let ring = KeyRing::new(Lineage::derive(b"bench"), 1, versions).unwrap();
    let dek = [7u8; 32];
    let newest = ring.current().key.encrypt(&dek, CONTEXT);
    let oldest = ring.oldest().key.encrypt(&dek, CONTEXT);
    let mut group = c.benchmark_group("kes/10-versions");
    group.bench_function("decrypt_newest_by_trial", |b| {
        b.iter(|| ring.decrypt(black_box(&newest), black_box(CONTEXT)))
    });
    group.bench_function("decrypt_oldest_by_trial", |b| {
        b.iter(|| ring.decrypt(black_box(&oldest), black_box(CONTEXT)))
    });
    group.bench_function("decrypt_oldest_by_version", |b| {
        b.iter(|| {
            ring.versions()[0]
                .key
                .decrypt(black_box(&oldest), black_box(CONTEXT))
        })
    });
    group.finish();
}

/// The OS generator against user-space CSPRNGs seeded from it.
fn rng(c: &mut Criterion) {
    use aws_lc_rs::rand::SecureRandom as _;
    use rand::Rng as _;

    let mut group = c.benchmark_group("rng_28_bytes");
    let mut buf = [0u8; 28];
    group.bench_function("getrandom_os", |b| {
        b.iter(|| getrandom::fill(black_box(&mut buf)).unwrap())
    });
    group.bench_function("rand_thread_rng", |b| {
        b.iter(|| rand::rng().fill_bytes(black_box(&mut buf)))
    });
    let system = aws_lc_rs::rand::SystemRandom::new();
    group.bench_function("aws_lc_rand", |b| {
        b.iter(|| system.fill(black_box(&mut buf)).unwrap())
    });
    group.finish();
}

/// The parts of one per-message seal of a 32-byte DEK: key derivation and
/// AEAD, aws-lc-rs (what `kes_core::key::primitive` uses) against RustCrypto.
fn backends(c: &mut Criterion) {
    use aes_gcm::{AeadInOut as _, Aes256Gcm, KeyInit as _};
    use aws_lc_rs::hmac;
    use chacha20poly1305::ChaCha20Poly1305;

    let master = [3u8; 32];
    let iv = [4u8; 16];
    let nonce = [5u8; 12];
    let dek = [7u8; 32];

    let mut group = c.benchmark_group("derive");
    group.bench_function("hmac_sha256/rustcrypto", |b| {
        b.iter(|| primitive::hmac_sha256(black_box(&master), &iv))
    });
    group.bench_function("hmac_sha256/aws-lc-rs", |b| {
        b.iter(|| hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, black_box(&master)), &iv))
    });
    group.bench_function("hchacha20/rustcrypto", |b| {
        b.iter(|| primitive::hchacha20(black_box(&master), &iv))
    });
    group.finish();

    let mut group = c.benchmark_group("seal_32");
    group.bench_function("aes256gcm/aws-lc-rs", |b| {
        b.iter(|| {
            let mut buf = dek;
            let tag = primitive::seal(
                KeyAlgorithm::Aes256,
                black_box(&master),
                &nonce,
                CONTEXT,
                &mut buf,
            );
            (buf, tag)
        })
    });
    group.bench_function("aes256gcm/rustcrypto", |b| {
        b.iter(|| {
            let mut buf = dek;
            let tag = Aes256Gcm::new(black_box(&master).into())
                .encrypt_inout_detached(&nonce.into(), CONTEXT, (&mut buf[..]).into())
                .unwrap();
            (buf, tag)
        })
    });
    group.bench_function("chacha20poly1305/aws-lc-rs", |b| {
        b.iter(|| {
            let mut buf = dek;
            let tag = primitive::seal(
                KeyAlgorithm::ChaCha20,
                black_box(&master),
                &nonce,
                CONTEXT,
                &mut buf,
            );
            (buf, tag)
        })
    });
    group.bench_function("chacha20poly1305/rustcrypto", |b| {
        b.iter(|| {
            let mut buf = dek;
            let tag = ChaCha20Poly1305::new(black_box(&master).into())
                .encrypt_inout_detached(&nonce.into(), CONTEXT, (&mut buf[..]).into())
                .unwrap();
            (buf, tag)
        })
    });
    group.finish();
}

criterion_group!(benches, kes_format, versions, rng, backends);
criterion_main!(benches);
