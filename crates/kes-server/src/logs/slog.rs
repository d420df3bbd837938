//! The `slog` text format the Go KES logs in (`key=value` pairs, values
//! quoted as Go's `strconv.Quote` quotes them), the capping of fields a
//! client controls, and the JSON form of log lines.

use super::FIELD_CAP;
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::{self, Write as _};
use time::OffsetDateTime;

/// slog's text handler time: RFC 3339 in UTC with milliseconds. Written
/// straight into the line (`write!`) or made a string (`to_string`).
pub(crate) fn slog_time(t: OffsetDateTime) -> impl fmt::Display {
    struct SlogTime(OffsetDateTime);
    impl fmt::Display for SlogTime {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let t = self.0.to_offset(time::UtcOffset::UTC);
            write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            )
        }
    }
    SlogTime(t)
}

/// `s` cut to [`FIELD_CAP`] bytes (at a character boundary) and marked,
/// when longer.
pub(crate) fn cap_field(s: &str) -> Cow<'_, str> {
    if s.len() <= FIELD_CAP {
        return Cow::Borrowed(s);
    }
    let mut end = FIELD_CAP;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}...[truncated: {} bytes]", &s[..end], s.len()))
}

/// Characters Go's `strconv.Quote` escapes that could break a log line
/// or disguise it: controls (C0, DEL, C1 such as U+0085), every space but
/// U+0020 (U+2028 and U+2029 among them), format characters (the bidi
/// controls U+061C, U+200E/U+200F, U+202A–U+202E, U+2066–U+2069,
/// zero-width characters, U+FEFF, tags), private-use characters and
/// non-characters.
pub(crate) fn is_unsafe_char(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return u < 0x20 || u == 0x7f;
    }
    c.is_control()
        || c.is_whitespace()
        || (u & 0xfffe) == 0xfffe
        || matches!(
            u,
            0xad | 0x600..=0x605
                | 0x61c
                | 0x6dd
                | 0x70f
                | 0x890..=0x891
                | 0x8e2
                | 0x180e
                | 0x200b..=0x200f
                | 0x202a..=0x202e
                | 0x2060..=0x2064
                | 0x2066..=0x206f
                | 0xfeff
                | 0xfff9..=0xfffb
                | 0xe000..=0xf8ff
                | 0xfdd0..=0xfdef
                | 0x110bd
                | 0x110cd
                | 0x13430..=0x1343f
                | 0x1bca0..=0x1bca3
                | 0x1d173..=0x1d17a
                | 0xe0001
                | 0xe0020..=0xe007f
                | 0xf0000..
        )
}

fn needs_quote(s: &str) -> bool {
    s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=' || is_unsafe_char(c))
}

/// A slog text value: quoted when it is empty or contains spaces, quotes,
/// `=` or characters that could break the line, which are then escaped.
/// Written straight into the line (`write!`) or made a string
/// (`to_string`).
pub(crate) fn slog_value(s: &str) -> impl fmt::Display + '_ {
    struct SlogValue<'a>(&'a str);
    impl fmt::Display for SlogValue<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            if needs_quote(self.0) {
                write_go_quoted(f, self.0)
            } else {
                f.write_str(self.0)
            }
        }
    }
    SlogValue(s)
}

/// Writes `s` quoted as Go's `strconv.Quote` quotes it: `\"`, `\\`, the
/// short escapes `\a \b \f \n \r \t \v`, `\xNN` for other ASCII controls
/// and DEL, `\uNNNN` / `\UNNNNNNNN` for [`is_unsafe_char`] characters.
fn write_go_quoted(out: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    out.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\x07' => out.write_str("\\a")?,
            '\x08' => out.write_str("\\b")?,
            '\x0c' => out.write_str("\\f")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            '\x0b' => out.write_str("\\v")?,
            c if (c as u32) < 0x20 || c == '\x7f' => write!(out, "\\x{:02x}", c as u32)?,
            c if is_unsafe_char(c) && (c as u32) < 0x10000 => write!(out, "\\u{:04x}", c as u32)?,
            c if is_unsafe_char(c) => write!(out, "\\U{:08x}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

/// `value` as one JSON line (no newline) in which, beyond what Go's
/// encoder escapes, every [`is_unsafe_char`] is written `\uXXXX`, so that
/// a line read as text cannot be broken or disguised either.
pub(super) fn log_json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut line = kes_core::gocompat::to_json(value);
    line.pop(); // the newline
    let line = String::from_utf8(line).expect("JSON is UTF-8");
    // Raw bytes below 0x20 never occur in serialized JSON.
    if line.bytes().all(|b| b < 0x7f) {
        return line;
    }
    // Such characters occur only inside string literals, so replacing
    // them everywhere is exact.
    let mut out = String::with_capacity(line.len() + 16);
    for c in line.chars() {
        if is_unsafe_char(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slog_values() {
        assert_eq!(slog_value("abc").to_string(), "abc");
        assert_eq!(slog_value("a b").to_string(), "\"a b\"");
        assert_eq!(slog_value("").to_string(), "\"\"");
        assert_eq!(
            slog_value("secret key 'k' created").to_string(),
            "\"secret key 'k' created\""
        );
        assert_eq!(slog_value("a\"b=c\\d").to_string(), r#""a\"b=c\\d""#);
        assert_eq!(slog_value("é/ü").to_string(), "é/ü");
    }

    #[test]
    fn values_are_quoted_as_go_quotes_them() {
        assert_eq!(slog_value("a\nb").to_string(), r#""a\nb""#);
        assert_eq!(slog_value("\x01\x07\x7f").to_string(), r#""\x01\a\x7f""#);
        assert_eq!(slog_value("a\u{2028}b").to_string(), r#""a\u2028b""#);
        assert_eq!(slog_value("a\u{0085}b").to_string(), r#""a\u0085b""#);
        assert_eq!(
            slog_value("evil\u{202e}gpj.exe").to_string(),
            r#""evil\u202egpj.exe""#
        );
        assert_eq!(
            slog_value("\u{2066}\u{200f}\u{061c}").to_string(),
            r#""\u2066\u200f\u061c""#
        );
        assert_eq!(slog_value("tag\u{e0041}").to_string(), r#""tag\U000e0041""#);
        assert_eq!(slog_value("nb\u{a0}sp").to_string(), r#""nb\u00a0sp""#);
        // Printable non-ASCII stays as it is.
        assert_eq!(slog_value("名前😀").to_string(), "名前😀");
    }
}
