//! AWS WAF's text transformations, on bytes.
//!
//! Each transformation follows the AWS WAF developer guide, and where the
//! guide is terse, ModSecurity's transformation of the same name (AWS WAF's
//! list is ModSecurity's). Decoded code points are written as UTF-8. Where AWS
//! documents nothing (`CMD_LINE_WIN`, `CMD_LINE_UNIX`, `JS_DECODE_EXT`), the
//! behaviour chosen is written on the variant.
//!
//! ```
//! use portcullis_waf::transform::{apply_chain, TransformKind};
//!
//! let out = apply_chain(&[TransformKind::UrlDecode, TransformKind::Lowercase], b"%53ELECT%20x");
//! assert_eq!(&*out, b"select x");
//! ```

mod decode;
mod scan;
mod text;

use std::borrow::Cow;

use serde::Deserialize;

use decode::{
    base64_decode, css_decode, escape_seq_decode, hex_decode, html_entity_decode, js_decode,
    sql_hex_decode, url_decode, utf8_to_unicode,
};
pub(crate) use scan::contains_any;
use scan::{changed_if, has_ascii_uppercase, is_space};
use text::{
    CmdFlavour, cmd_line, compress_white_space, normalize_path, remove_comments_char,
    remove_whitespace, replace_comments, trim,
};

/// One text transformation type.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum TransformKind {
    /// No change.
    None,
    /// `\f \t \n \r \v` and NBSP become a space; runs of spaces become one.
    CompressWhiteSpace,
    /// `&quot; &amp; &lt; &gt; &nbsp; &apos; &#nnn; &#xhh;` are decoded.
    HtmlEntityDecode,
    /// ASCII `A-Z` become `a-z`.
    Lowercase,
    /// ASCII `a-z` become `A-Z`.
    Uppercase,
    /// Deletes `\ " ' ^`, deletes spaces before `/` and `(`, turns `,` and `;`
    /// into spaces, compresses spaces, lowercases.
    CmdLine,
    /// `CMD_LINE` for Windows shells: `\` is a path separator there, so it
    /// becomes `/` instead of being deleted. (AWS documents no detail.)
    CmdLineWin,
    /// `CMD_LINE` for Unix shells: `^` is not a shell escape there and is kept;
    /// `$IFS`-style `${IFS}` and `$IFS` become a space. (AWS documents no detail.)
    CmdLineUnix,
    /// `%hh` decoded, `+` becomes a space.
    UrlDecode,
    /// `URL_DECODE` plus IIS's `%uhhhh`; full-width ASCII becomes ASCII.
    UrlDecodeUni,
    /// Base64 decoded, up to the first character outside the alphabet.
    Base64Decode,
    /// Base64 decoded, skipping characters outside the alphabet.
    Base64DecodeExt,
    /// Pairs of hex digits decoded to bytes.
    HexDecode,
    /// The raw 16-byte MD5 digest.
    Md5,
    /// The raw 32-byte SHA-256 digest.
    Sha256,
    /// Each `/* ... */` (or an unterminated `/* ...`) becomes one space.
    ReplaceComments,
    /// Deletes `/*`, `*/`, `--` and `#`.
    RemoveCommentsChar,
    /// ANSI C escapes (`\n`, `\x41`, `\101`, ...) decoded.
    EscapeSeqDecode,
    /// SQL hex literals (`0x414243`) decoded.
    SqlHexDecode,
    /// CSS escapes (`\41`, `\000041 `, `\;`) decoded.
    CssDecode,
    /// JavaScript escapes (`\x41`, `\u0041`, `\101`, `\n`) decoded.
    JsDecode,
    /// `JS_DECODE` plus ES2015 `\u{1F600}` escapes. (AWS documents no detail.)
    JsDecodeExt,
    /// Removes repeated slashes, `./` and `../` segments (not at the start).
    NormalizePath,
    /// `\` becomes `/`, then `NORMALIZE_PATH`.
    NormalizePathWin,
    /// Deletes NUL bytes.
    RemoveNulls,
    /// NUL bytes become spaces.
    ReplaceNulls,
    /// Deletes whitespace.
    RemoveWhitespace,
    /// Multi-byte UTF-8 characters become `%uhhhh`.
    Utf8ToUnicode,
    /// Whitespace removed at both ends.
    Trim,
    /// Whitespace removed at the start.
    TrimLeft,
    /// Whitespace removed at the end.
    TrimRight,
}

impl TransformKind {
    /// Every transformation, for tests and fuzzing.
    pub const ALL: [TransformKind; 31] = [
        TransformKind::None,
        TransformKind::CompressWhiteSpace,
        TransformKind::HtmlEntityDecode,
        TransformKind::Lowercase,
        TransformKind::Uppercase,
        TransformKind::CmdLine,
        TransformKind::CmdLineWin,
        TransformKind::CmdLineUnix,
        TransformKind::UrlDecode,
        TransformKind::UrlDecodeUni,
        TransformKind::Base64Decode,
        TransformKind::Base64DecodeExt,
        TransformKind::HexDecode,
        TransformKind::Md5,
        TransformKind::Sha256,
        TransformKind::ReplaceComments,
        TransformKind::RemoveCommentsChar,
        TransformKind::EscapeSeqDecode,
        TransformKind::SqlHexDecode,
        TransformKind::CssDecode,
        TransformKind::JsDecode,
        TransformKind::JsDecodeExt,
        TransformKind::NormalizePath,
        TransformKind::NormalizePathWin,
        TransformKind::RemoveNulls,
        TransformKind::ReplaceNulls,
        TransformKind::RemoveWhitespace,
        TransformKind::Utf8ToUnicode,
        TransformKind::Trim,
        TransformKind::TrimLeft,
        TransformKind::TrimRight,
    ];

    /// Applies this transformation. `None` means the input is unchanged.
    #[must_use]
    pub fn apply(self, input: &[u8]) -> Option<Vec<u8>> {
        match self {
            TransformKind::None => None,
            TransformKind::CompressWhiteSpace => compress_white_space(input),
            TransformKind::HtmlEntityDecode => html_entity_decode(input),
            TransformKind::Lowercase => {
                has_ascii_uppercase(input).then(|| input.to_ascii_lowercase())
            }
            TransformKind::Uppercase => changed_if(
                input,
                |b| b.is_ascii_lowercase(),
                <[u8]>::to_ascii_uppercase,
            ),
            TransformKind::CmdLine => Some(cmd_line(input, CmdFlavour::Generic)),
            TransformKind::CmdLineWin => Some(cmd_line(input, CmdFlavour::Windows)),
            TransformKind::CmdLineUnix => Some(cmd_line(input, CmdFlavour::Unix)),
            TransformKind::UrlDecode => url_decode(input, false),
            TransformKind::UrlDecodeUni => url_decode(input, true),
            TransformKind::Base64Decode => Some(base64_decode(input, false)),
            TransformKind::Base64DecodeExt => Some(base64_decode(input, true)),
            TransformKind::HexDecode => Some(hex_decode(input)),
            TransformKind::Md5 => {
                use md5::Digest;
                Some(md5::Md5::digest(input).to_vec())
            }
            TransformKind::Sha256 => {
                use sha2::Digest;
                Some(sha2::Sha256::digest(input).to_vec())
            }
            TransformKind::ReplaceComments => replace_comments(input),
            TransformKind::RemoveCommentsChar => remove_comments_char(input),
            TransformKind::EscapeSeqDecode => escape_seq_decode(input),
            TransformKind::SqlHexDecode => sql_hex_decode(input),
            TransformKind::CssDecode => css_decode(input),
            TransformKind::JsDecode => js_decode(input, false),
            TransformKind::JsDecodeExt => js_decode(input, true),
            TransformKind::NormalizePath => normalize_path(input, false),
            TransformKind::NormalizePathWin => normalize_path(input, true),
            TransformKind::RemoveNulls => changed_if(
                input,
                |b| b == 0,
                |i| i.iter().copied().filter(|&b| b != 0).collect(),
            ),
            TransformKind::ReplaceNulls => changed_if(
                input,
                |b| b == 0,
                |i| i.iter().map(|&b| if b == 0 { b' ' } else { b }).collect(),
            ),
            TransformKind::RemoveWhitespace => remove_whitespace(input),
            TransformKind::Utf8ToUnicode => utf8_to_unicode(input),
            TransformKind::Trim => trim(input, true, true),
            TransformKind::TrimLeft => trim(input, true, false),
            TransformKind::TrimRight => trim(input, false, true),
        }
    }
}

/// The bytes that can make a chain of transformations change its input: a
/// value holding none of them comes out of the chain unchanged, so it can be
/// borrowed without running the chain. Only for chains whose every
/// transformation changes nothing without one of its trigger bytes (the
/// decoders need `%`, `+` or `&`, `LOWERCASE` a capital letter, and so on);
/// see [`TransformKind::trigger`].
#[derive(Clone)]
pub(crate) struct ChainTriggers([bool; 256]);

impl ChainTriggers {
    /// The triggers of `chain`, or `None` when one of its transformations
    /// may change an input whatever its bytes (a hash, base64).
    pub(crate) fn new(chain: &[TransformKind]) -> Option<Self> {
        let mut table = [false; 256];
        for kind in chain {
            let trigger = kind.trigger()?;
            for (b, flag) in (0..=u8::MAX).zip(table.iter_mut()) {
                *flag |= trigger(b);
            }
        }
        Some(Self(table))
    }

    /// Whether the chain leaves `input` unchanged for want of a trigger
    /// byte. Each transformation of the chain then sees the input itself
    /// and leaves it unchanged in turn.
    pub(crate) fn leave_unchanged(&self, input: &[u8]) -> bool {
        !input.iter().any(|&b| self.0[usize::from(b)])
    }
}

impl TransformKind {
    /// A test true of every byte that can make this transformation change
    /// its input: an input with no such byte is left unchanged (`apply`
    /// returns `None`). `None` for transformations that change any input
    /// (hashes, base64, `CMD_LINE`) or whose triggers are not worth spelling
    /// out.
    fn trigger(self) -> Option<fn(u8) -> bool> {
        Some(match self {
            TransformKind::None => |_| false,
            TransformKind::Lowercase => |b| b.is_ascii_uppercase(),
            TransformKind::Uppercase => |b| b.is_ascii_lowercase(),
            TransformKind::UrlDecode | TransformKind::UrlDecodeUni => |b| b == b'%' || b == b'+',
            TransformKind::HtmlEntityDecode => |b| b == b'&',
            TransformKind::CompressWhiteSpace | TransformKind::RemoveWhitespace => {
                |b| is_space(b) || b == 0xc2
            }
            TransformKind::RemoveNulls | TransformKind::ReplaceNulls => |b| b == 0,
            TransformKind::Trim | TransformKind::TrimLeft | TransformKind::TrimRight => {
                |b| is_space(b) || b == 0
            }
            TransformKind::Utf8ToUnicode => |b| b >= 0x80,
            _ => return None,
        })
    }
}

/// Applies transformations in order (the caller sorts them by priority).
#[must_use]
pub fn apply_chain<'a>(chain: &[TransformKind], input: &'a [u8]) -> Cow<'a, [u8]> {
    let mut value = Cow::Borrowed(input);
    for kind in chain {
        if let Some(out) = kind.apply(&value) {
            value = Cow::Owned(out);
        }
    }
    value
}

#[cfg(test)]
mod tests;
