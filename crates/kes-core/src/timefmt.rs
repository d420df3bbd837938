//! Timestamps as Go's `encoding/json` writes them: RFC 3339 with up to nine
//! fractional digits, trailing zeros (and a bare `.`) removed, `Z` for UTC.

use time::{OffsetDateTime, UtcOffset};

/// Formats `t` like Go's `time.RFC3339Nano` (what `encoding/json` emits).
pub fn format_rfc3339_nano(t: OffsetDateTime) -> String {
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = t.nanosecond();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    let offset = t.offset();
    if offset == UtcOffset::UTC {
        out.push('Z');
    } else {
        let (h, m, _) = offset.as_hms();
        let sign = if offset.is_negative() { '-' } else { '+' };
        out.push_str(&format!("{sign}{:02}:{:02}", h.abs(), m.abs()));
    }
    out
}

/// Parses an RFC 3339 timestamp (with or without fractional seconds).
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn go_style() {
        assert_eq!(
            format_rfc3339_nano(datetime!(2024-01-12 10:39:20.886816 UTC)),
            "2024-01-12T10:39:20.886816Z"
        );
        assert_eq!(
            format_rfc3339_nano(datetime!(2009-11-10 23:00:00 UTC)),
            "2009-11-10T23:00:00Z"
        );
        assert_eq!(
            format_rfc3339_nano(datetime!(2024-01-12 11:39:20.5 +01:00)),
            "2024-01-12T11:39:20.5+01:00"
        );
        assert_eq!(
            format_rfc3339_nano(datetime!(0001-01-01 00:00:00 UTC)),
            "0001-01-01T00:00:00Z"
        );
    }

    #[test]
    fn parse_round_trip() {
        let t = parse_rfc3339("2024-01-12T11:39:20.886816+01:00").unwrap();
        assert_eq!(t.unix_timestamp(), 1705055960);
        assert_eq!(t.nanosecond(), 886816000);
    }
}
