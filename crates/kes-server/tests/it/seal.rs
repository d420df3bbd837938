//! `keystore.fs.seal` (docs/hsm.md): the config section, and the sealed fs
//! store opened the way the server opens it, against SoftHSM2.

use kes_keystore::config::{Pkcs11SealConfig, SealConfig, TokenRef};
use kes_server::config::{KeyStoreConfig, ServerConfig};
use kes_testkit::softhsm::{self, KEY, PIN, TOKEN};
use std::path::Path;

const ADMIN: &str = "c84cc9b91ae2399b043da7eca616048d4b4200edf2ff418d8af3835911db945d";

fn config_with_fs(fs: &str) -> String {
    format!(
        "admin:\n  identity: {ADMIN}\ntls:\n  key: ./server.key\n  cert: ./server.cert\nkeystore:\n  fs:\n{fs}"
    )
}

fn seal_yaml(dir: &Path, module: &Path, token: &str) -> String {
    config_with_fs(&format!(
        "    path: {}\n    seal:\n      pkcs11:\n        module: {}\n{token}        pin: {PIN}\n        key: {KEY}\n",
        dir.display(),
        module.display()
    ))
}

fn parse_error(yaml: &str) -> String {
    match ServerConfig::parse(yaml) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn seal_section_parses() {
    let yaml = seal_yaml(
        Path::new("/var/lib/kes/keys"),
        Path::new("/usr/lib/softhsm/libsofthsm2.so"),
        "        token: kes\n",
    );
    let config = ServerConfig::parse(&yaml).unwrap();
    assert_eq!(config.warnings, Vec::<String>::new(), "every key is known");
    let KeyStoreConfig::Fs(fs) = &config.keystore else {
        panic!("{:?}", config.keystore)
    };
    assert_eq!(
        fs.seal,
        Some(SealConfig::Pkcs11(Pkcs11SealConfig {
            module: "/usr/lib/softhsm/libsofthsm2.so".into(),
            token: TokenRef::Label("kes".into()),
            pin: PIN.into(),
            key: KEY.into(),
        }))
    );
    let debug = format!("{:?}", config.keystore);
    assert!(!debug.contains(PIN), "the PIN is redacted: {debug}");
    assert!(debug.contains("<redacted>"), "{debug}");

    let by_slot = seal_yaml(Path::new("/k"), Path::new("/m.so"), "        slot: 7\n");
    let KeyStoreConfig::Fs(fs) = ServerConfig::parse(&by_slot).unwrap().keystore else {
        panic!()
    };
    assert!(matches!(fs.seal, Some(SealConfig::Pkcs11(ref p)) if p.token == TokenRef::Slot(7)));

    // Without `seal` the store is today's.
    let plain = ServerConfig::parse(&config_with_fs("    path: /k\n")).unwrap();
    assert!(matches!(plain.keystore, KeyStoreConfig::Fs(ref fs) if fs.seal.is_none()));
}

#[test]
fn seal_section_errors() {
    let yaml = |pkcs11: &str| config_with_fs(&format!("    path: /k\n    seal:\n{pkcs11}"));
    let cases = [
        (
            yaml("      hsm: {}\n"),
            "kesconf: invalid fs keystore seal: no sealing method specified (keystore.fs.seal.pkcs11)",
        ),
        (
            yaml("      pkcs11:\n        module: /m.so\n        token: t\n        key: k\n"),
            "kesconf: invalid fs keystore seal: no PIN specified (keystore.fs.seal.pkcs11.pin)",
        ),
        (
            yaml("      pkcs11:\n        module: /m.so\n        pin: p\n        key: k\n"),
            "no token label (or slot) specified (keystore.fs.seal.pkcs11.token)",
        ),
        (
            yaml("      pkcs11:\n        module: /m.so\n        token: t\n        slot: 1\n        pin: p\n        key: k\n"),
            "both keystore.fs.seal.pkcs11.token and keystore.fs.seal.pkcs11.slot specified",
        ),
        (
            yaml("      pkcs11:\n        module: /m.so\n        slot: one\n        pin: p\n        key: k\n"),
            "must be a slot number",
        ),
        (
            yaml("      pkcs11:\n        token: t\n        pin: p\n        key: k\n"),
            "no PKCS#11 module specified (keystore.fs.seal.pkcs11.module)",
        ),
    ];
    for (yaml, expected) in cases {
        let error = parse_error(&yaml);
        assert!(
            error.contains(expected),
            "{error:?} does not say {expected:?}"
        );
        assert!(!error.contains("pin: p"), "{error}");
    }
    // A typo is a warning with a suggestion, as for every known key.
    let typo = config_with_fs(
        "    path: /k\n    seal:\n      pkcs11:\n        module: /m.so\n        token: t\n        pin: p\n        key: k\n        modul: /m.so\n",
    );
    let config = ServerConfig::parse(&typo).unwrap();
    assert_eq!(
        config.warnings,
        ["kesconf: unknown key 'modul' in line 15 (did you mean 'module'?) is ignored"]
    );
}

/// A sealed directory opened without `seal` is refused: its entries would
/// read as garbage and new keys would be plain next to sealed ones.
#[tokio::test]
async fn sealed_store_without_seal_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(kes_seal::SEAL_FILE), "kes-seal v1\n").unwrap();
    let yaml = config_with_fs(&format!("    path: {}\n", tmp.path().display()));
    let config = ServerConfig::parse(&yaml).unwrap();
    let error = match kes_server::open_store(&config.keystore).await {
        Ok(_) => panic!("a sealed store opened without seal"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains("is a sealed store (it holds .kes-seal): configure keystore.fs.seal"),
        "{error}"
    );
}

/// The server opens the sealed store its config names, and again after a
/// restart; the keys it created are sealed on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SoftHSM2; scripts/test runs it"]
async fn server_opens_sealed_store() {
    let Some(hsm) = softhsm::isolated("seal::server_opens_sealed_store") else {
        return;
    };
    let dir = hsm.dir().join("keys");
    let yaml = seal_yaml(&dir, &hsm.module, &format!("        token: {TOKEN}\n"));
    let config = ServerConfig::parse(&yaml).unwrap();
    let store = kes_server::open_store(&config.keystore).await.unwrap();
    store
        .create("my-key", b"{\"bytes\":\"secret\"}")
        .await
        .unwrap();
    store.close().await;
    let raw = std::fs::read(dir.join("my-key")).unwrap();
    assert_eq!(&raw[..kes_seal::ENTRY_MAGIC.len()], kes_seal::ENTRY_MAGIC);

    let store = kes_server::open_store(&config.keystore).await.unwrap();
    assert_eq!(
        *store.get("my-key").await.unwrap(),
        b"{\"bytes\":\"secret\"}"
    );
    let wrong_pin = ServerConfig::parse(&yaml.replace(PIN, "0000")).unwrap();
    let error = match kes_server::open_store(&wrong_pin.keystore).await {
        Ok(_) => panic!("opened with a wrong PIN"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains(&format!("failed to open fs key store '{}'", dir.display()))
            && error.contains(&format!("the PIN of token '{TOKEN}' is wrong")),
        "{error}"
    );
}
