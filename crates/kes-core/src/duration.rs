//! Durations in Go's `time.ParseDuration` syntax, because existing KES
//! configs and command lines are written in it (`5m0s`, `30s`, `1.5h`,
//! `2h45m`): one parser and one formatter for the config file, the CLI,
//! the logs and kes-bench.

use std::time::Duration;

const NANOS_PER_UNIT: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000), // U+00B5 micro sign, accepted by Go
    ("μs", 1_000), // U+03BC Greek mu, accepted by Go
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// [`NANOS_PER_UNIT`] and `d` (24 h), for the lifecycle settings only
/// (`lifecycle.rotate[].every: 90d`): periods of rotation are counted in
/// days, and Go has no day unit. Every other setting stays Go-exact.
const NANOS_PER_UNIT_WITH_DAYS: [(&str, u128); 9] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
];

/// Go's durations are an i64 of nanoseconds; larger values are refused
/// rather than silently saturated.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parses a duration in Go syntax: a sequence of decimal numbers, each with
/// an optional fraction and a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`),
/// e.g. `300ms`, `1.5h`, `2h45m`, `5m0s`. A lone `0` needs no unit.
/// Negative durations are refused: no KES setting has a use for them.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_with_units(s, &NANOS_PER_UNIT, "ns, us, ms, s, m or h")
}

/// [`parse_duration`] with one more unit, `d` (24 hours), as in `90d` or
/// `1d12h`: for the lifecycle settings of the config file (a kes-rs
/// addition), whose periods are counted in days. Not for settings the Go
/// KES also reads: those must stay Go-exact.
pub fn parse_duration_with_days(s: &str) -> Result<Duration, String> {
    parse_with_units(s, &NANOS_PER_UNIT_WITH_DAYS, "ns, us, ms, s, m, h or d")
}

fn parse_with_units(s: &str, units: &[(&str, u128)], names: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration '{s}'");
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(digits);
        rest = after;
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let n = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after_dot[..n];
            rest = &after_dot[n..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let (unit, after_unit) = rest.split_at(unit_len);
        rest = after_unit;
        if unit.is_empty() {
            return Err(format!("missing unit in duration '{s}' (use {names})"));
        }
        let Some(&(_, per_unit)) = units.iter().find(|(name, _)| *name == unit) else {
            return Err(format!("unknown unit '{unit}' in duration '{s}'"));
        };
        let too_large = || format!("duration '{s}' is too large");
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| too_large())?
        };
        let mut nanos = whole.checked_mul(per_unit).ok_or_else(too_large)?;
        // Digits beyond nanosecond precision of the largest unit cannot
        // change the result, so only the first 20 are looked at.
        let frac = &frac_part[..frac_part.len().min(20)];
        if !frac.is_empty() {
            let numerator: u128 = frac.parse().map_err(|_| invalid())?;
            let scale = 10u128.pow(frac.len() as u32);
            nanos += numerator * per_unit / scale;
        }
        total = total.checked_add(nanos).ok_or_else(too_large)?;
        if total > MAX_NANOS {
            return Err(too_large());
        }
    }
    if negative && total > 0 {
        return Err(format!("duration '{s}' is negative"));
    }
    Ok(Duration::from_nanos(total as u64))
}

fn fraction(value: u128, digits: u32) -> String {
    let scale = 10u128.pow(digits);
    let (whole, frac) = (value / scale, value % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// Formats a duration the way Go prints one (`5m0s`, `30s`, `1h0m0s`,
/// `1.5ms`), so messages and banners read like the Go KES.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", fraction(nanos, 3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", fraction(nanos, 6));
    }
    let secs = nanos / 1_000_000_000;
    let (hours, minutes) = (secs / 3600, (secs % 3600) / 60);
    let seconds = fraction(nanos % 60_000_000_000, 9);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// [`parse_duration`] for command-line intervals and deadlines, where zero
/// makes no sense (`kes metric --rate`, `kes-bench -d`).
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        Duration::ZERO => Err(format!("invalid duration '{s}': must be greater than zero")),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_only_where_asked_for() {
        let day = Duration::from_secs(86_400);
        assert_eq!(parse_duration_with_days("90d"), Ok(90 * day));
        assert_eq!(
            parse_duration_with_days("1d12h"),
            Ok(day + Duration::from_secs(12 * 3600))
        );
        assert_eq!(parse_duration_with_days("1.5d"), Ok(day + day / 2));
        assert_eq!(parse_duration_with_days("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration_with_days("0"), Ok(Duration::ZERO));
        assert!(parse_duration_with_days("2")
            .unwrap_err()
            .contains("m, h or d"));
        assert!(parse_duration_with_days("1w").is_err());
        assert!(parse_duration_with_days("-1d").is_err());
        // 106,752 days are Go's i64 of nanoseconds; beyond, refused.
        assert!(parse_duration_with_days("106751d").is_ok());
        assert!(parse_duration_with_days("106752d").is_err());
        // The Go syntax itself has no day.
        assert_eq!(
            parse_duration("1d"),
            Err("unknown unit 'd' in duration '1d'".into())
        );
    }

    #[test]
    fn positive_durations() {
        assert_eq!(parse_positive_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(
            parse_positive_duration("1m30s"),
            Ok(Duration::from_secs(90))
        );
        for bad in ["", "0", "0s", "5", "s", "5x", "-1s", "5s5", "1e999s"] {
            assert!(parse_positive_duration(bad).is_err(), "{bad}");
        }
    }
}
