//! The decoding transformations: HTML entities, URL, Base64, hex, escape
//! sequences, SQL hex, CSS and JavaScript escapes, UTF-8 to `\uXXXX`.

use super::scan::{contains_either, is_space};

fn push_char(out: &mut Vec<u8>, code: u32) {
    match char::from_u32(code) {
        Some(c) => {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        // Not a Unicode scalar value: keep the low byte, as ModSecurity does.
        None => out.push((code & 0xff) as u8),
    }
}

/// Full-width ASCII (U+FF01..U+FF5E) maps to ASCII, as ModSecurity's
/// `%u` decoding does.
fn fold_full_width(code: u32) -> u32 {
    if (0xff01..=0xff5e).contains(&code) {
        code - 0xff01 + 0x21
    } else {
        code
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The named references `HTML_ENTITY_DECODE` decodes, without case, with or
/// without the `;`.
const NAMED_ENTITIES: [(&[u8], &[u8]); 6] = [
    (b"quot", b"\""),
    (b"amp", b"&"),
    (b"lt", b"<"),
    (b"gt", b">"),
    (b"nbsp", "\u{a0}".as_bytes()),
    (b"apos", b"'"),
];

/// Whether `HTML_ENTITY_DECODE` decodes the `&` followed by `rest`: `&#`
/// and a digit, `&#x` and a hex digit, or a named reference.
fn entity_follows(rest: &[u8]) -> bool {
    match rest {
        [b'#', b'x' | b'X', d, ..] => d.is_ascii_hexdigit(),
        [b'#', d, ..] => d.is_ascii_digit(),
        _ => NAMED_ENTITIES.iter().any(|(name, _)| {
            rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name)
        }),
    }
}

pub(super) fn html_entity_decode(input: &[u8]) -> Option<Vec<u8>> {
    // A `&` that starts no reference (a query string's separators) is kept
    // as it is: only a reference changes the input, so without one nothing
    // is copied.
    if !contains_either(input, b'&', b'&')
        || !input
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'&' && entity_follows(&input[i + 1..]))
    {
        return None;
    }
    html_entity_decode_all(input)
}

pub(super) fn html_entity_decode_all(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] != b'&' {
            out.push(input[i]);
            i += 1;
            continue;
        }
        let rest = &input[i + 1..];
        if let Some(num) = rest.strip_prefix(b"#") {
            let (hex, digits) = match num.first() {
                Some(b'x' | b'X') => (true, &num[1..]),
                _ => (false, num),
            };
            let len = digits
                .iter()
                .take_while(|b| {
                    if hex {
                        b.is_ascii_hexdigit()
                    } else {
                        b.is_ascii_digit()
                    }
                })
                .count();
            if len > 0 {
                let mut code: u32 = 0;
                for &d in &digits[..len] {
                    let v = u32::from(hex_val(d).unwrap_or(0));
                    code = code
                        .saturating_mul(if hex { 16 } else { 10 })
                        .saturating_add(v);
                }
                push_char(&mut out, code);
                let mut consumed = 1 + 1 + usize::from(hex) + len;
                if input.get(i + consumed) == Some(&b';') {
                    consumed += 1;
                }
                i += consumed;
                continue;
            }
        } else {
            if let Some((name, value)) = NAMED_ENTITIES.iter().find(|(name, _)| {
                rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name)
            }) {
                out.extend_from_slice(value);
                let mut consumed = 1 + name.len();
                if input.get(i + consumed) == Some(&b';') {
                    consumed += 1;
                }
                i += consumed;
                continue;
            }
        }
        out.push(b'&');
        i += 1;
    }
    (out != input).then_some(out)
}

pub(super) fn url_decode(input: &[u8], unicode: bool) -> Option<Vec<u8>> {
    if !contains_either(input, b'%', b'+') {
        return None;
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'+' {
            out.push(b' ');
            i += 1;
        } else if b == b'%' {
            if unicode
                && matches!(input.get(i + 1), Some(b'u' | b'U'))
                && let Some(code) = hex_run(&input[(i + 2).min(input.len())..], 4)
            {
                push_char(&mut out, fold_full_width(code));
                i += 6;
            } else if let Some(code) = hex_run(&input[(i + 1).min(input.len())..], 2) {
                out.push(code as u8);
                i += 3;
            } else {
                out.push(b'%');
                i += 1;
            }
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(out)
}

/// The value of exactly `n` hex digits at the start of `s`.
fn hex_run(s: &[u8], n: usize) -> Option<u32> {
    if s.len() < n {
        return None;
    }
    s[..n]
        .iter()
        .try_fold(0u32, |acc, &b| Some(acc * 16 + u32::from(hex_val(b)?)))
}

fn base64_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

pub(super) fn base64_decode(input: &[u8], forgiving: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in input {
        let Some(v) = base64_value(b) else {
            if forgiving && b != b'=' {
                continue;
            }
            break;
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

pub(super) fn hex_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 2);
    let mut i = 0;
    while i < input.len() {
        match (
            hex_val(input[i]),
            input.get(i + 1).copied().and_then(hex_val),
        ) {
            (Some(h), Some(l)) => {
                out.push(h << 4 | l);
                i += 2;
            }
            _ => {
                out.push(input[i]);
                i += 1;
            }
        }
    }
    out
}

pub(super) fn escape_seq_decode(input: &[u8]) -> Option<Vec<u8>> {
    backslash_escapes(input, |rest, out| {
        let c = rest[0];
        let simple = match c {
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'\\' | b'?' | b'\'' | b'"' => Some(c),
            _ => None,
        };
        if let Some(v) = simple {
            out.push(v);
            1
        } else if (c == b'x' || c == b'X')
            && let Some(v) = hex_run(&rest[1..], 2)
        {
            out.push(v as u8);
            3
        } else if (b'0'..=b'7').contains(&c) {
            let (v, digits) = octal_escape(rest);
            out.push(v);
            digits
        } else {
            out.push(b'\\');
            0
        }
    })
}

pub(super) fn sql_hex_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    let mut changed = false;
    while i < input.len() {
        if input[i] == b'0'
            && matches!(input.get(i + 1), Some(b'x' | b'X'))
            && input.get(i + 2).copied().and_then(hex_val).is_some()
            && input.get(i + 3).copied().and_then(hex_val).is_some()
        {
            let mut j = i + 2;
            while let (Some(h), Some(l)) = (
                input.get(j).copied().and_then(hex_val),
                input.get(j + 1).copied().and_then(hex_val),
            ) {
                out.push(h << 4 | l);
                j += 2;
            }
            changed = true;
            i = j;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    changed.then_some(out)
}

pub(super) fn css_decode(input: &[u8]) -> Option<Vec<u8>> {
    if !input.contains(&b'\\') {
        return None;
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] != b'\\' {
            out.push(input[i]);
            i += 1;
            continue;
        }
        let rest = &input[i + 1..];
        let digits = rest
            .iter()
            .take(6)
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if digits > 0 {
            let code = rest[..digits].iter().fold(0u32, |acc, &d| {
                acc * 16 + u32::from(hex_val(d).unwrap_or(0))
            });
            push_char(&mut out, fold_full_width(code));
            i += 1 + digits;
            // One whitespace after a hex escape belongs to the escape.
            if input.get(i).is_some_and(|&b| is_space(b)) {
                i += 1;
            }
        } else if rest.first() == Some(&b'\n') {
            // A backslash-newline is a line continuation.
            i += 2;
        } else if let Some(&c) = rest.first() {
            out.push(c);
            i += 2;
        } else {
            // A trailing backslash is dropped.
            i += 1;
        }
    }
    (out != input).then_some(out)
}

pub(super) fn js_decode(input: &[u8], extended: bool) -> Option<Vec<u8>> {
    backslash_escapes(input, |rest, out| {
        let c = rest[0];
        let tail = &rest[1..];
        if c == b'u' && extended && tail.first() == Some(&b'{') {
            let digits = tail[1..]
                .iter()
                .take(6)
                .take_while(|b| b.is_ascii_hexdigit())
                .count();
            if digits > 0 && tail.get(1 + digits) == Some(&b'}') {
                let code = tail[1..1 + digits].iter().fold(0u32, |acc, &d| {
                    acc * 16 + u32::from(hex_val(d).unwrap_or(0))
                });
                push_char(out, fold_full_width(code));
                return digits + 3;
            }
        }
        if c == b'u'
            && let Some(code) = hex_run(tail, 4)
        {
            push_char(out, fold_full_width(code));
            5
        } else if c == b'x'
            && let Some(code) = hex_run(tail, 2)
        {
            out.push(code as u8);
            3
        } else if (b'0'..=b'7').contains(&c) {
            let (v, digits) = octal_escape(rest);
            out.push(v);
            digits
        } else {
            out.push(match c {
                b'a' => 0x07,
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'v' => 0x0b,
                other => other,
            });
            1
        }
    })
}

pub(super) fn utf8_to_unicode(input: &[u8]) -> Option<Vec<u8>> {
    if input.is_ascii() {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() * 2);
    for chunk in input.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_ascii() {
                out.push(c as u8);
            } else {
                out.extend_from_slice(format!("%u{:04x}", u32::from(c)).as_bytes());
            }
        }
        // Invalid sequences are kept as they are.
        out.extend_from_slice(chunk.invalid());
    }
    Some(out)
}

/// Copies `input`, decoding each backslash escape with `escape`: it gets
/// the bytes after the backslash (at least one), pushes what the escape
/// decodes to, and answers how many of those bytes it used (0 keeps them for
/// the next round). A backslash at the very end is kept. `None` when nothing
/// changed.
fn backslash_escapes(
    input: &[u8],
    mut escape: impl FnMut(&[u8], &mut Vec<u8>) -> usize,
) -> Option<Vec<u8>> {
    if !input.contains(&b'\\') {
        return None;
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] != b'\\' || i + 1 >= input.len() {
            out.push(input[i]);
            i += 1;
            continue;
        }
        i += 1 + escape(&input[i + 1..], &mut out);
    }
    (out != input).then_some(out)
}

/// The byte of an octal escape (`\7`, `\101`, up to three digits, the value
/// taken modulo 256 as C does) at the start of `digits`, and how many digits
/// it used. `digits` starts with at least one octal digit.
fn octal_escape(digits: &[u8]) -> (u8, usize) {
    let count = digits
        .iter()
        .take(3)
        .take_while(|b| (b'0'..=b'7').contains(b))
        .count();
    let value = digits[..count]
        .iter()
        .fold(0u32, |acc, &d| acc * 8 + u32::from(d - b'0'));
    ((value & 0xff) as u8, count)
}
