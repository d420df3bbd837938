//! Go-syntax durations as the config file and the CLI write them: what
//! parses, what is refused with which message, and how they are printed.

use kes_core::duration::{format_duration, parse_duration};
use std::time::Duration;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn durations() {
    let valid = [
        ("0", 0),
        ("-0", 0),
        ("0s", 0),
        ("+5s", 5_000_000_000),
        ("300ms", 300_000_000),
        ("1.5h", 5_400_000_000_000),
        ("2h45m", 9_900_000_000_000),
        ("5m0s", 300_000_000_000),
        ("1h2m3s4ms5us6ns", 3_723_004_005_006),
        ("1µs", 1_000),
        ("1μs", 1_000),
        (".5s", 500_000_000),
        ("5.s", 5_000_000_000),
        ("1.0000000001s", 1_000_000_000),
        ("0.1ns", 0),
        ("2562047h47m16.854775807s", i64::MAX as u64),
    ];
    for (text, nanos) in valid {
        assert_eq!(
            parse_duration(text),
            Ok(Duration::from_nanos(nanos)),
            "{text}"
        );
    }
    let invalid = [
        ("", "invalid duration"),
        ("-", "invalid duration"),
        (".", "invalid duration"),
        ("s", "invalid duration"),
        ("30", "missing unit"),
        ("1.5", "missing unit"),
        ("1d", "unknown unit 'd'"),
        ("1 s", "unknown unit ' s'"),
        ("-1s", "negative"),
        ("-1.5h", "negative"),
        ("2562047h47m16.854775808s", "too large"),
        ("99999999999999999999999999999999999999999h", "too large"),
    ];
    for (text, expected) in invalid {
        let err = parse_duration(text).unwrap_err();
        assert!(err.contains(expected), "{text}: {err}");
    }

    let formatted = [
        (Duration::ZERO, "0s"),
        (Duration::from_nanos(1), "1ns"),
        (Duration::from_nanos(1_500), "1.5µs"),
        (Duration::from_micros(1_500), "1.5ms"),
        (secs(30), "30s"),
        (secs(300), "5m0s"),
        (secs(3600), "1h0m0s"),
        (Duration::from_millis(90_500), "1m30.5s"),
        (secs(9_900), "2h45m0s"),
        (Duration::from_nanos(7), "7ns"),
        (Duration::from_nanos(15_200), "15.2µs"),
        (Duration::from_micros(15_200), "15.2ms"),
        (Duration::from_millis(200), "200ms"),
        (Duration::from_millis(1_500), "1.5s"),
        (secs(90), "1m30s"),
    ];
    for (d, text) in formatted {
        assert_eq!(format_duration(d), text);
        assert_eq!(parse_duration(text), Ok(d), "round trip of {text}");
    }
}
