//! Go-syntax durations (`5m0s`, `1.5h`), as the config and CLI read them:
//! parsing must not panic or overflow, and formatting a parsed duration
//! must read back as the same duration.
#![no_main]

use kes_core::duration::{format_duration, parse_duration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_duration(text) {
        let formatted = format_duration(d);
        assert_eq!(
            parse_duration(&formatted),
            Ok(d),
            "{text:?} -> {formatted:?}"
        );
    }
});
