//! PEM certificates and private keys, including legacy encrypted keys made
//! with the `openssl` CLI (files in tests/data).

use kes_core::pem::{self, PemError};
use rustls_pki_types::PrivateKeyDer;

const PASSWORD: &[u8] = b"kes-test-password";

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/{name}",
        crate::manifest_dir().display()
    ))
    .unwrap()
}

fn sec1(key: &PrivateKeyDer<'_>) -> Vec<u8> {
    match key {
        PrivateKeyDer::Sec1(der) => der.secret_sec1_der().to_vec(),
        other => panic!("expected SEC1 key, got {other:?}"),
    }
}

#[test]
fn plain_keys_of_every_format() {
    let ec = pem::parse_private_key(&data("ec.key"), None).unwrap();
    assert!(matches!(ec, PrivateKeyDer::Sec1(_)));
    let rsa = pem::parse_private_key(&data("rsa.key"), None).unwrap();
    assert!(matches!(rsa, PrivateKeyDer::Pkcs1(_)));
    let pkcs8 = pem::parse_private_key(&data("ec_pkcs8.key"), None).unwrap();
    assert!(matches!(pkcs8, PrivateKeyDer::Pkcs8(_)));
    // A password for an unencrypted key is simply not needed.
    let again = pem::parse_private_key(&data("ec.key"), Some(PASSWORD)).unwrap();
    assert_eq!(sec1(&again), sec1(&ec));
}

#[test]
fn encrypted_keys_decrypt_to_the_plain_key() {
    let plain = sec1(&pem::parse_private_key(&data("ec.key"), None).unwrap());
    for name in [
        "ec_aes128.key",
        "ec_aes192.key",
        "ec_aes256.key",
        "ec_des3.key",
    ] {
        let key = pem::parse_private_key(&data(name), Some(PASSWORD)).unwrap();
        assert_eq!(sec1(&key), plain, "{name}");
    }
    let rsa_plain = pem::parse_private_key(&data("rsa.key"), None).unwrap();
    let rsa = pem::parse_private_key(&data("rsa_aes256.key"), Some(PASSWORD)).unwrap();
    assert_eq!(rsa.secret_der(), rsa_plain.secret_der());
}

#[test]
fn encrypted_key_without_password() {
    for password in [None, Some(&b""[..])] {
        let err = pem::parse_private_key(&data("ec_aes256.key"), password).unwrap_err();
        assert_eq!(err, PemError::PasswordRequired);
        assert_eq!(
            err.to_string(),
            "private key is encrypted: password required"
        );
    }
}

#[test]
fn dek_info_alone_marks_an_encrypted_block() {
    let text = String::from_utf8(data("ec_aes256.key")).unwrap();
    let without_proc_type = text.replace("Proc-Type: 4,ENCRYPTED\n", "");
    assert_ne!(without_proc_type, text);
    assert_eq!(
        pem::parse_private_key(without_proc_type.as_bytes(), None).unwrap_err(),
        PemError::PasswordRequired
    );
    let key = pem::parse_private_key(without_proc_type.as_bytes(), Some(PASSWORD)).unwrap();
    assert_eq!(
        sec1(&key),
        sec1(&pem::parse_private_key(&data("ec.key"), None).unwrap())
    );
}

#[test]
fn wrong_password_is_a_clear_error() {
    for name in [
        "ec_aes128.key",
        "ec_aes256.key",
        "ec_des3.key",
        "rsa_aes256.key",
    ] {
        for password in ["wrong", "kes-test-passwor", "kes-test-password "] {
            let err = pem::parse_private_key(&data(name), Some(password.as_bytes())).unwrap_err();
            assert_eq!(err, PemError::IncorrectPassword, "{name} {password}");
        }
    }
    assert!(!PemError::IncorrectPassword.to_string().contains("kes-test"));
}

#[test]
fn truncated_keys_are_errors() {
    for name in ["ec_aes256_truncated.key", "ec_aes256_no_end.key"] {
        let err = pem::parse_private_key(&data(name), Some(PASSWORD)).unwrap_err();
        assert!(matches!(err, PemError::Malformed(_)), "{name}: {err:?}");
    }
    let full = data("ec.key");
    let cut = &full[..full.len() / 2];
    assert!(pem::parse_private_key(cut, None).is_err());
}

#[test]
fn certificate_blocks_in_key_files_are_skipped_and_others_rejected() {
    let combined = data("ec_cert_and_key.pem");
    let key = pem::parse_private_key(&combined, Some(PASSWORD)).unwrap();
    assert_eq!(
        sec1(&key),
        sec1(&pem::parse_private_key(&data("ec.key"), None).unwrap())
    );
    let certs = pem::parse_certificates(&combined).unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].as_ref(), data("ec.crt.der").as_slice());

    let mut other = data("ec.key");
    other.extend_from_slice(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
    assert_eq!(
        pem::parse_private_key(&other, None).unwrap_err(),
        PemError::UnsupportedBlock("PUBLIC KEY".into())
    );
    let mut two = data("ec.key");
    two.extend_from_slice(&data("rsa.key"));
    assert_eq!(
        pem::parse_private_key(&two, None).unwrap_err(),
        PemError::TooManyPrivateKeys
    );
    assert_eq!(
        pem::parse_private_key(&data("ec.crt"), None).unwrap_err(),
        PemError::NoPrivateKey
    );
    assert_eq!(
        pem::parse_certificates(&data("ec.key")).unwrap_err(),
        PemError::NoCertificate
    );
}

#[test]
fn certificates_are_whitespace_tolerant() {
    let text = String::from_utf8(data("ec.crt")).unwrap();
    let messy: String = text.lines().map(|line| format!("  {line}\t\r\n")).collect();
    let messy = format!("leading text\n\n{messy}\ntrailing\n{text}");
    let certs = pem::parse_certificates(messy.as_bytes()).unwrap();
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0].as_ref(), data("ec.crt.der").as_slice());
    assert_eq!(certs[1], certs[0]);

    let bad = text.replace("-----END CERTIFICATE-----", "-----END PRIVATE KEY-----");
    assert!(matches!(
        pem::parse_certificates(bad.as_bytes()),
        Err(PemError::Malformed(_))
    ));
}

#[test]
fn encrypt_round_trip() {
    let key = kes_core::ApiKey::generate();
    let der = key.to_pkcs8_der();
    let encrypted = pem::encrypt_private_key(&der, b"secret").unwrap();
    assert!(encrypted.contains("Proc-Type: 4,ENCRYPTED"));
    assert!(encrypted.contains("DEK-Info: AES-256-CBC,"));
    let decrypted = pem::parse_private_key(encrypted.as_bytes(), Some(b"secret")).unwrap();
    assert_eq!(decrypted.secret_der(), der.as_slice());
    assert_eq!(
        pem::parse_private_key(encrypted.as_bytes(), Some(b"Secret")).unwrap_err(),
        PemError::IncorrectPassword
    );
    assert_eq!(
        pem::parse_private_key(encrypted.as_bytes(), None).unwrap_err(),
        PemError::PasswordRequired
    );
}

#[test]
#[ignore = "needs openssl; scripts/test runs it"]
fn openssl_reads_our_encrypted_keys() {
    // Interop check in the other direction: OpenSSL's traditional-format
    // reader must accept what `kes identity new --encrypt` writes.
    let status = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .expect("openssl is not installed (Debian: apt-get install openssl)");
    assert!(status.status.success());
    let key = kes_core::ApiKey::generate();
    let encrypted = pem::encrypt_private_key(&key.to_pkcs8_der(), b"secret-pass").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    std::fs::write(&path, encrypted.as_bytes()).unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "pkey",
            "-outform",
            "DER",
            "-passin",
            "pass:secret-pass",
            "-in",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, key.to_pkcs8_der().as_slice());
}
