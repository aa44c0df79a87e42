//! The keys and leaf values a `JsonBody` rule inspects.
//!
//! `JsonBody` with `MatchPattern: All` inspects every key and every leaf value
//! of the document. [`items`] reads them in one pass over the bytes, with no
//! `serde_json::Value` tree and no recursion: a string without an escape
//! sequence, and a number whose text is the one `serde_json` prints, is
//! borrowed straight from the body. Only a string with an escape and an
//! unusual number (`1E2`, `12.50`, `-0`, more than 15 digits) are handed to
//! `serde_json` itself, so a rule sees exactly the bytes a `Value` walk gives
//! and exactly the documents `serde_json` accepts are valid (its nesting
//! limit of 128 included). The caller bounds the input: the WAF reads at most
//! its body inspection limit (16 KB by default).
//!
//! One difference from a `Value`: a key repeated in one object has all its
//! values inspected, where a `Value` keeps only the last one. An attacker can
//! then not hide a payload behind a later duplicate key.

use std::borrow::Cow;

/// One key or leaf value of a JSON document, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<'a> {
    /// An object key (`true`) or a leaf value (`false`).
    pub is_key: bool,
    /// Its text: a string unescaped, any other leaf as `serde_json` prints it
    /// (`true`, `null`, `12.5`, `1E2` as `100.0`).
    pub text: Cow<'a, [u8]>,
}

/// `serde_json`'s nesting limit: the 128th nested array or object is an error.
const DEPTH_LIMIT: u32 = 128;

/// The keys and leaf values of `body` in document order, or `None` when it is
/// not one valid JSON document as `serde_json` reads it (whitespace around it
/// allowed, at most 127 nested arrays and objects).
///
/// Time and memory are linear in `body.len()`; bound it before calling, as
/// the WAF does with its body inspection limit.
#[must_use]
pub fn items(body: &[u8]) -> Option<Vec<Item<'_>>> {
    // About one key or value per 16 bytes of a typical document.
    let mut out = Vec::with_capacity(body.len() / 16);
    scan(body, |is_key, text| out.push(Item { is_key, text }))?;
    Some(out)
}

/// Calls `emit(is_key, text)` for each key and leaf value of `body` in
/// document order, as [`items`] lists them; `None` when `body` is not one
/// valid JSON document, possibly after some calls (the caller then discards
/// what it was given).
pub(crate) fn scan<'a>(body: &'a [u8], emit: impl FnMut(bool, Cow<'a, [u8]>)) -> Option<()> {
    Scanner {
        bytes: body,
        at: 0,
        emit,
    }
    .document()
}

/// Eight copies of `byte`, one per byte of a `u64`.
const fn splat(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

/// The index of the first byte at or after `at` that ends a plain run of
/// string content: `"`, `\` or a control character (below 0x20), or
/// `bytes.len()`. Eight bytes at a time: in each word, the classic
/// "has a byte below n" test flags the bytes that are zero after XOR with the
/// quote or the backslash, or below 0x20; the lowest flagged byte is exact
/// (only bytes above a true hit may be flagged falsely).
#[inline(always)]
fn plain_run_end(bytes: &[u8], mut at: usize) -> usize {
    const HIGH: u64 = splat(0x80);
    let below = |x: u64, n: u8| x.wrapping_sub(splat(n)) & !x & HIGH;
    while let Some(chunk) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let word = u64::from_le_bytes(*chunk);
        let hits = below(word ^ splat(b'"'), 1)
            | below(word ^ splat(b'\\'), 1)
            | below(word, 0x20)
            | (word & HIGH);
        if hits != 0 {
            return at + (hits.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&b) = bytes.get(at) {
        if b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b) {
            return at;
        }
        at += 1;
    }
    at
}

struct Scanner<'a, F> {
    bytes: &'a [u8],
    at: usize,
    emit: F,
}

impl<'a, F: FnMut(bool, Cow<'a, [u8]>)> Scanner<'a, F> {
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.at).copied()
    }

    /// Consumes `byte` (after whitespace) or fails.
    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// The whole document. Containers open and close on an explicit stack
    /// (one bit per level: set for an object), so hostile nesting cannot
    /// exhaust the thread's stack.
    fn document(&mut self) -> Option<()> {
        let mut objects: u128 = 0;
        let mut depth: u32 = 0;
        'value: loop {
            // A value is expected here.
            match self.peek()? {
                open @ (b'{' | b'[') => {
                    self.at += 1;
                    depth += 1;
                    if depth >= DEPTH_LIMIT {
                        return None;
                    }
                    let object = open == b'{';
                    objects = (objects << 1) | u128::from(object);
                    let close = if object { b'}' } else { b']' };
                    if self.peek()? == close {
                        self.at += 1;
                        depth -= 1;
                        objects >>= 1;
                    } else {
                        if object {
                            self.key()?;
                        }
                        continue 'value;
                    }
                }
                b'"' => {
                    let text = self.string()?;
                    (self.emit)(false, text);
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => {
                    let text = self.number()?;
                    (self.emit)(false, text);
                }
                _ => return None,
            }
            // A value is complete: close containers until one continues.
            loop {
                if depth == 0 {
                    self.skip_whitespace();
                    return (self.at == self.bytes.len()).then_some(());
                }
                let object = objects & 1 == 1;
                match self.peek()? {
                    b',' => {
                        self.at += 1;
                        if object {
                            self.key()?;
                        }
                        continue 'value;
                    }
                    b'}' if object => {}
                    b']' if !object => {}
                    _ => return None,
                }
                self.at += 1;
                depth -= 1;
                objects >>= 1;
            }
        }
    }

    /// An object key and the `:` after it.
    fn key(&mut self) -> Option<()> {
        if self.peek()? != b'"' {
            return None;
        }
        let text = self.string()?;
        (self.emit)(true, text);
        self.expect(b':')
    }

    fn literal(&mut self, word: &'static [u8]) -> Option<()> {
        let end = self.at + word.len();
        if self.bytes.get(self.at..end)? != word {
            return None;
        }
        self.at = end;
        (self.emit)(false, Cow::Borrowed(word));
        Some(())
    }

    /// A string at its opening quote: borrowed when it has no escape,
    /// otherwise unescaped by `serde_json`, which also refuses what it
    /// refuses (`\x`, a lone surrogate). Its bytes must be UTF-8, as
    /// serde_json requires; they are checked only when one is not ASCII
    /// (outside strings, such a byte is a syntax error anyway).
    #[inline(always)]
    fn string(&mut self) -> Option<Cow<'a, [u8]>> {
        let open = self.at;
        let mut at = open + 1;
        let mut escaped = false;
        let mut ascii = true;
        loop {
            at = plain_run_end(self.bytes, at);
            match *self.bytes.get(at)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    // The escaped byte is never the closing quote.
                    at += 2;
                }
                0x80.. => {
                    ascii = false;
                    at += 1;
                }
                // serde_json refuses control characters in strings.
                _ => return None,
            }
        }
        self.at = at + 1;
        if escaped {
            let decoded: String = serde_json::from_slice(&self.bytes[open..=at]).ok()?;
            Some(Cow::Owned(decoded.into_bytes()))
        } else {
            let content = &self.bytes[open + 1..at];
            if !ascii {
                std::str::from_utf8(content).ok()?;
            }
            Some(Cow::Borrowed(content))
        }
    }

    /// A number: JSON's grammar, then its text as `serde_json` prints the
    /// value it parses. The source text is that text, and is borrowed, for
    /// an integer that fits `i64`/`u64` (not `-0`, which serde_json reads as
    /// a float) and for a decimal with a non-zero integer part or first
    /// fraction digit, a non-zero last digit and at most 15 digits (which
    /// parses exactly and which ryu prints back digit for digit). Anything
    /// else is parsed and printed by `serde_json`.
    fn number(&mut self) -> Option<Cow<'a, [u8]>> {
        let bytes = self.bytes;
        let start = self.at;
        let mut at = start;
        let digits = |at: &mut usize| {
            let from = *at;
            while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            *at - from
        };
        let negative = bytes[at] == b'-';
        if negative {
            at += 1;
        }
        let int_start = at;
        let int_digits = match bytes.get(at) {
            Some(b'0') => {
                at += 1;
                1
            }
            Some(b'1'..=b'9') => digits(&mut at),
            _ => return None,
        };
        let int_zero = bytes[int_start] == b'0';
        let mut frac = None;
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            let frac_start = at;
            if digits(&mut at) == 0 {
                return None;
            }
            frac = Some(frac_start);
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            if digits(&mut at) == 0 {
                return None;
            }
            exponent = true;
        }
        self.at = at;
        let source = &bytes[start..at];
        let plain = !exponent
            && match frac {
                None => {
                    if negative {
                        !int_zero && int_digits <= 18
                    } else {
                        int_digits <= 19
                    }
                }
                Some(frac_start) => {
                    let fraction = &bytes[frac_start..at];
                    let significant = if int_zero {
                        fraction.len()
                    } else {
                        int_digits + fraction.len()
                    };
                    fraction.last() != Some(&b'0')
                        && (!int_zero || fraction[0] != b'0')
                        && significant <= 15
                }
            };
        if plain {
            return Some(Cow::Borrowed(source));
        }
        let value: serde_json::Number = serde_json::from_slice(source).ok()?;
        serde_json::to_vec(&value).ok().map(Cow::Owned)
    }
}

#[cfg(test)]
mod tests;
