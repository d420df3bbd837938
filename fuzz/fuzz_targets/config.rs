//! The server config file: the YAML walker, `${VAR}` substitution, the
//! schema check and every section's validation. Any text must either parse
//! or fail with an error message, never panic or hang. A few environment
//! variables exist so that references can resolve.
#![no_main]

use kes_server::config::ServerConfig;
use libfuzzer_sys::fuzz_target;
use std::sync::Once;

static ENV: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    ENV.call_once(|| {
        // Single-threaded at this point: the fuzzer runs one input at a time.
        std::env::set_var(
            "KES_FUZZ_IDENTITY",
            "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22",
        );
        std::env::set_var("KES_FUZZ_EMPTY", "");
        std::env::set_var("KES_FUZZ_DURATION", "5m");
        std::env::set_var("KES_FUZZ_PATH", "/tmp/kes-fuzz-does-not-exist");
        std::env::set_var("KES_FUZZ_ADDR", "127.0.0.1:7373");
    });
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ServerConfig::parse(text) {
        Ok(config) => {
            assert!(!config.admin.as_str().is_empty());
            let _ = config.skips_auth_anywhere();
            let _ = format!("{config:?}");
        }
        Err(err) => {
            assert!(err.to_string().starts_with("kesconf: "), "{err}");
        }
    }
});
