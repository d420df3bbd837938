//! Client certificates → identity, as the TLS layer hands them over: the
//! leaf selection over a chain and the SPKI hash of the chosen leaf. The
//! input is split into up to four DER certificates.
#![no_main]

use kes_core::identity::identify;
use kes_core::Identity;
use kes_fuzz::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(identity) = Identity::from_certificate_der(data) {
        assert!(identity.is_hash());
        assert_eq!(identity.as_str().len(), 64);
    }
    let mut input = Input(data);
    let count = usize::from(input.byte() % 4);
    let mut chain: Vec<&[u8]> = Vec::new();
    for _ in 0..count {
        let len = usize::from(u16::from_le_bytes([input.byte(), input.byte()]));
        chain.push(input.take(len));
    }
    chain.push(input.rest());
    if let Ok(identity) = identify(&chain) {
        assert!(!identity.as_str().is_empty());
    }
});
