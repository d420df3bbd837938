//! Vault / OpenBao response bodies: K/V v1 and v2 reads, LIST, transit
//! encrypt and decrypt, login and renewal (`auth`), error bodies. A Vault
//! (or anything answering in its place) must not be able to crash KES;
//! the token schedule derived from a login must be computable.
#![no_main]

use http::StatusCode;
use kes_fuzz::Input;
use kes_keystore::vault::decode;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let selector = input.byte();
    let name = input.text();
    let status = StatusCode::from_u16(100 + u16::from(input.byte()) * 2).unwrap_or(StatusCode::OK);
    let body = input.rest();
    match selector % 6 {
        0 | 1 => {
            if let Ok(Some(value)) = decode::kv_entry(body, &name, selector % 6 == 1) {
                let _ = decode::is_transit_ciphertext(&value);
            }
        }
        2 => {
            if let Ok(names) = decode::key_names(body, &name) {
                assert!(names
                    .iter()
                    .all(|n| n.starts_with(name.as_str()) && !n.ends_with('/')));
            }
        }
        3 => {
            if let Ok(ciphertext) = decode::transit_ciphertext(body) {
                assert!(decode::is_transit_ciphertext(&ciphertext));
            }
            let _ = decode::transit_plaintext(body, &name);
        }
        4 => {
            let issued = Instant::now();
            if let Ok(token) = decode::Token::from_auth_response(body, issued, 0) {
                assert!(!token.value.is_empty());
                // What the renewal task and every request compute.
                let _ = token.expired(issued);
                let _ = token.expired(issued + Duration::from_secs(3600));
                if let Some(at) = token.renew_at() {
                    assert!(at >= issued);
                }
            }
        }
        _ => {
            let message = decode::errors(status, body);
            assert!(message.len() <= 512 || message.starts_with("HTTP "));
        }
    }
});
