//! PEM files: TLS certificates and private keys from the config, client
//! certificates, and RFC 1423 encrypted private keys (`Proc-Type:
//! 4,ENCRYPTED`, AES/DES/3DES-CBC with `EVP_BytesToKey`). The first input
//! byte chooses the password length, then the password, then the PEM text.
#![no_main]

use kes_core::pem;
use kes_fuzz::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let password = input.chunk();
    let text = input.rest();
    if let Ok(blocks) = pem::decode_blocks(text) {
        for block in &blocks {
            // Re-encoding an unencrypted block must decode to the same bytes.
            if block.headers.is_empty() && !block.label.is_empty() {
                let encoded = pem::encode(&block.label, &block.contents);
                let again = pem::decode_blocks(encoded.as_bytes()).expect("own encoding");
                assert_eq!(again.len(), 1);
                assert_eq!(again[0].label, block.label);
                assert_eq!(&again[0].contents[..], &block.contents[..]);
            }
        }
    }
    let _ = pem::parse_certificates(text);
    let _ = pem::parse_private_key(text, Some(password));
    let _ = pem::parse_private_key(text, None);
});
