//! The `Date` header of AWS responses: the SDK's clock-skew interceptor
//! parses it with aws-smithy's HTTP-date parser on every response, before
//! any deserialiser runs (which `aws_response` does not cover), turns it
//! into a `SystemTime` and subtracts the request's time from it. Both steps
//! are repeated here on arbitrary header values.
#![no_main]

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, SystemTime};

fuzz_target!(|data: &[u8]| {
    // A header value a real HTTP stack delivers is visible ASCII and
    // spaces; the interceptor reads it as a string only if it is one.
    let Ok(date) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = DateTime::from_str(date, Format::HttpDate) else {
        return;
    };
    // What the SDK writes in this format, it reads back to the same time
    // (HTTP dates have whole seconds; the parser keeps fractions).
    if let Ok(formatted) = parsed.fmt(Format::HttpDate) {
        let again = DateTime::from_str(&formatted, Format::HttpDate)
            .unwrap_or_else(|e| panic!("{formatted:?} from {date:?} does not parse: {e}"));
        assert_eq!(again.secs(), parsed.secs(), "{date:?} -> {formatted:?}");
    }
    // The skew against a request sent at the epoch, at a time in 2026 and
    // at the far end of what a SystemTime holds, as the interceptor
    // computes it (never a panic: `duration_since` in both directions).
    if let Ok(server) = SystemTime::try_from(parsed) {
        for midpoint in [
            SystemTime::UNIX_EPOCH,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000),
            SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 2),
        ] {
            let _skew_ms = match server.duration_since(midpoint) {
                Ok(d) => d.as_millis() as i64,
                Err(e) => -(e.duration().as_millis() as i64),
            };
        }
    }
});
