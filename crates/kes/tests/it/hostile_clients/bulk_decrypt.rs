//! The work one legacy bulk decrypt may cause: its ciphertexts say nothing
//! of the key version that sealed them, so each is tried with the
//! retained versions. Versions that opened earlier ciphertexts of the
//! request are tried first, and the request may make 10,000 attempts in
//! all (docs/security.md, docs/rotation.md).

use super::common::{Setup, TestServer};

#[tokio::test]
async fn bulk_decrypt_work_is_bounded() {
    let server = TestServer::start(Setup::new());
    let admin = server.admin_client();
    assert_eq!(
        admin.request("POST", "/v1/key/create/k", None).await.status,
        200
    );
    // One data key per version, 100 versions (the most a key retains).
    let mut deks = Vec::new();
    for version in 1..=100 {
        if version > 1 {
            let resp = admin.request("POST", "/v1/key/rotate/k", None).await;
            assert_eq!(resp.status, 200, "{}", resp.text());
            assert_eq!(resp.json()["version"], version);
        }
        let dek = admin
            .request("POST", "/v1/key/generate/k", None)
            .await
            .json();
        deks.push(dek);
    }
    let bulk = |picks: &mut dyn Iterator<Item = usize>| {
        let items: Vec<_> = picks
            .map(|v| serde_json::json!({ "ciphertext": deks[v]["ciphertext"] }))
            .collect();
        serde_json::to_vec(&items).unwrap()
    };

    // 1,000 ciphertexts of the oldest version: 100 attempts for the first,
    // one for each other; answered as the Go wire format has it.
    let body = bulk(&mut std::iter::repeat_n(0, 1000));
    let resp = admin
        .request("POST", "/v1/key/bulk/decrypt/k", Some(&body))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let plaintexts = resp.json();
    assert_eq!(plaintexts.as_array().unwrap().len(), 1000);
    assert!(plaintexts
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["plaintext"] == deks[0]["plaintext"]));

    // A few versions mixed: still well within the budget.
    let body = bulk(&mut (0..1000).map(|i| [0, 42, 99][i % 3]));
    let resp = admin
        .request("POST", "/v1/key/bulk/decrypt/k", Some(&body))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()[2]["plaintext"], deks[99]["plaintext"]);

    // Cycling through every version: 100 attempts per ciphertext, about
    // 100,000 in all. Refused once the budget is spent.
    let body = bulk(&mut (0..1000).map(|i| i % 100));
    let resp = admin
        .request("POST", "/v1/key/bulk/decrypt/k", Some(&body))
        .await;
    assert_eq!(
        resp.status,
        400,
        "{}",
        &resp.text()[..200.min(resp.text().len())]
    );
    assert_eq!(
        resp.message(),
        "too many decryption attempts: the ciphertexts need too many key versions, decrypt fewer per request"
    );
    // A single decrypt of the oldest version still works.
    let single =
        serde_json::to_vec(&serde_json::json!({ "ciphertext": deks[0]["ciphertext"] })).unwrap();
    let resp = admin
        .request("POST", "/v1/key/decrypt/k", Some(&single))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["plaintext"], deks[0]["plaintext"]);
}
