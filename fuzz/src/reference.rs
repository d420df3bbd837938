//! Plain reference implementations, written from docs and specifications.

use aes_gcm::{AeadInOut as _, Aes256Gcm, KeyInit as _};
use chacha20poly1305::ChaCha20Poly1305;
use sha2::{Digest as _, Sha256};

/// HMAC-SHA256 as RFC 2104 defines it (keys of at most one block here).
pub fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

fn quarter_round(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

/// HChaCha20 as draft-irtf-cfrg-xchacha section 2.2 defines it.
pub fn hchacha20(key: &[u8; 32], input: &[u8; 16]) -> [u8; 32] {
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let mut s = [0u32; 16];
    s[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    for i in 0..8 {
        s[4 + i] = word(&key[4 * i..]);
    }
    for i in 0..4 {
        s[12 + i] = word(&input[4 * i..]);
    }
    for _ in 0..10 {
        quarter_round(&mut s, 0, 4, 8, 12);
        quarter_round(&mut s, 1, 5, 9, 13);
        quarter_round(&mut s, 2, 6, 10, 14);
        quarter_round(&mut s, 3, 7, 11, 15);
        quarter_round(&mut s, 0, 5, 10, 15);
        quarter_round(&mut s, 1, 6, 11, 12);
        quarter_round(&mut s, 2, 7, 8, 13);
        quarter_round(&mut s, 3, 4, 9, 14);
    }
    let mut out = [0u8; 32];
    for (i, w) in s[..4].iter().chain(&s[12..]).enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// The KES per-message key: HMAC-SHA256(key, iv) for AES256,
/// HChaCha20(key, iv) for ChaCha20.
fn derive(chacha: bool, key: &[u8; 32], iv: &[u8; 16]) -> [u8; 32] {
    if chacha {
        hchacha20(key, iv)
    } else {
        hmac_sha256(key, iv)
    }
}

/// Seals with the RustCrypto AEADs: `ciphertext || tag`.
pub fn seal(
    chacha: bool,
    key: &[u8; 32],
    iv: &[u8; 16],
    nonce: &[u8; 12],
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let derived = derive(chacha, key, iv);
    let mut buf = plaintext.to_vec();
    let tag = if chacha {
        ChaCha20Poly1305::new((&derived).into())
            .encrypt_inout_detached(nonce.into(), aad, (&mut buf[..]).into())
            .expect("short message")
    } else {
        Aes256Gcm::new((&derived).into())
            .encrypt_inout_detached(nonce.into(), aad, (&mut buf[..]).into())
            .expect("short message")
    };
    buf.extend_from_slice(&tag);
    buf
}

/// Opens a raw-format ciphertext `sealed || iv16 || nonce12` with the
/// RustCrypto AEADs.
pub fn open_raw(chacha: bool, key: &[u8; 32], ciphertext: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if ciphertext.len() < 16 + 16 + 12 {
        return None;
    }
    let (sealed, rest) = ciphertext.split_at(ciphertext.len() - 28);
    let iv: [u8; 16] = rest[..16].try_into().ok()?;
    let nonce: [u8; 12] = rest[16..].try_into().ok()?;
    let (encrypted, tag) = sealed.split_at(sealed.len() - 16);
    let derived = derive(chacha, key, &iv);
    let mut buf = encrypted.to_vec();
    let tag: [u8; 16] = tag.try_into().ok()?;
    let ok = if chacha {
        ChaCha20Poly1305::new((&derived).into())
            .decrypt_inout_detached((&nonce).into(), aad, (&mut buf[..]).into(), (&tag).into())
            .is_ok()
    } else {
        Aes256Gcm::new((&derived).into())
            .decrypt_inout_detached((&nonce).into(), aad, (&mut buf[..]).into(), (&tag).into())
            .is_ok()
    };
    ok.then_some(buf)
}

/// Go's `path.Clean`, transcribed from the Go standard library.
pub fn go_path_clean(path: &str) -> String {
    let p = path.as_bytes();
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p[0] == b'/';
    let n = p.len();
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let (mut r, mut dotdot) = (0, 0);
    if rooted {
        out.push(b'/');
        r = 1;
        dotdot = 1;
    }
    while r < n {
        if p[r] == b'/' {
            r += 1;
        } else if p[r] == b'.' && (r + 1 == n || p[r + 1] == b'/') {
            r += 1;
        } else if p[r] == b'.' && p[r + 1] == b'.' && (r + 2 == n || p[r + 2] == b'/') {
            r += 2;
            if out.len() > dotdot {
                // Drop bytes up to and including the previous `/`.
                let mut dropped = out.pop();
                while out.len() > dotdot && dropped != Some(b'/') {
                    dropped = out.pop();
                }
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if (rooted && out.len() != 1) || (!rooted && !out.is_empty()) {
                out.push(b'/');
            }
            while r < n && p[r] != b'/' {
                out.push(p[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        return ".".into();
    }
    String::from_utf8(out).expect("only ASCII bytes were removed")
}

/// Go's `net/http` `cleanPath`: rooted, cleaned, trailing slash kept.
pub fn go_clean_path(p: &str) -> String {
    if p.is_empty() {
        return "/".into();
    }
    let rooted = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    let mut np = go_path_clean(&rooted);
    if rooted.ends_with('/') && np != "/" {
        np.push('/');
    }
    np
}

/// A KES policy pattern: a trailing `*` makes the rest a string prefix,
/// anything else must be equal.
pub fn pattern_matches(pattern: &str, path: &str) -> bool {
    let pattern = pattern.as_bytes();
    let path = path.as_bytes();
    if let Some((b'*', prefix)) = pattern.split_last() {
        return path.len() >= prefix.len() && &path[..prefix.len()] == prefix;
    }
    pattern == path
}

/// Deny wins, then allow; nothing matching denies.
pub fn policy_allows(allow: &[String], deny: &[String], path: &str) -> bool {
    for p in deny {
        if pattern_matches(p, path) {
            return false;
        }
    }
    for p in allow {
        if pattern_matches(p, path) {
            return true;
        }
    }
    false
}

fn name_char(c: char) -> bool {
    c.is_ascii_digit() || c.is_ascii_uppercase() || c.is_ascii_lowercase() || c == '_' || c == '-'
}

/// `validName`: 1–80 bytes of `0-9 A-Z a-z _ -`, `-` neither first nor
/// last, and not `_` alone.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && name != "_"
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name.chars().all(name_char)
}

/// `validPattern`: empty or `*`; otherwise at most 80 bytes of name
/// characters with one optional `*` at the very end, `-` neither the first
/// nor the last character, and not `_` alone.
pub fn valid_pattern(pattern: &str) -> bool {
    if pattern.is_empty() || pattern == "*" {
        return true;
    }
    let chars: Vec<char> = pattern.chars().collect();
    pattern.len() <= 80
        && pattern != "_"
        && chars[0] != '-'
        && chars[chars.len() - 1] != '-'
        && chars
            .iter()
            .enumerate()
            .all(|(i, &c)| name_char(c) || (c == '*' && i == chars.len() - 1))
}

/// A list endpoint over `names`: the names matching `pattern` (a trailing
/// `*` or nothing lists by prefix), sorted, from `continue_at` on, at most
/// `limit`; plus the first name left out.
pub fn list(
    names: &[String],
    pattern: &str,
    continue_at: Option<&str>,
    limit: Option<usize>,
) -> Option<(Vec<String>, String)> {
    if !valid_pattern(pattern) {
        return None;
    }
    let prefix = pattern.strip_suffix('*').unwrap_or(pattern);
    let mut matching: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with(prefix))
        .cloned()
        .collect();
    matching.sort();
    matching.dedup();
    let mut from_start: Vec<String> = matching
        .into_iter()
        .filter(|n| continue_at.is_none_or(|c| n.as_str() >= c))
        .collect();
    match limit {
        Some(l) if from_start.len() > l => {
            let next = from_start[l].clone();
            from_start.truncate(l);
            Some((from_start, next))
        }
        _ => Some((from_start, String::new())),
    }
}

/// One page of a store's sorted listing (`KeyStore::list_page`): the names
/// that start with `prefix` and lie after `start`, sorted, without
/// duplicates, the `limit` smallest (at least one); whether more follow;
/// and how many names (duplicates included) start with `prefix` and lie
/// after `start`.
pub fn list_page(
    names: &[String],
    prefix: &str,
    start: std::ops::Bound<&str>,
    limit: usize,
) -> (Vec<String>, bool, usize) {
    use std::ops::Bound;
    let after = |n: &str| match start {
        Bound::Included(s) => n >= s,
        Bound::Excluded(s) => n > s,
        Bound::Unbounded => true,
    };
    let mut matching: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with(prefix) && after(n))
        .cloned()
        .collect();
    let matched = matching.len();
    matching.sort();
    matching.dedup();
    let limit = limit.max(1);
    let more = matching.len() > limit;
    matching.truncate(limit);
    (matching, more, matched)
}
