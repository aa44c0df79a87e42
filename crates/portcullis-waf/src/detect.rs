//! SQL injection and cross-site scripting detection.
//!
//! Both use [`libinjectionrs`], a pure-Rust port of libinjection (its SQLi
//! half vendored with a faster keyword lookup, see `src/libinjection/`): the
//! tokenizer-and-fingerprint detector that ModSecurity and the OWASP Core Rule
//! Set use (`@detectSQLi`, `@detectXSS`) and the closest public analogue of
//! what AWS WAF's SQLi and XSS statements do. It was chosen over the
//! `libinjection` crate, which binds the C library and downloads and builds
//! it at build time, and over a home-grown detector, because libinjection's
//! fingerprints carry years of tuning against real attack corpora.
//!
//! - **SQLi HIGH** is libinjection as it is: the vendored detector gives the C
//!   library's verdict and fingerprint on every input of `tests/libinjection_c.rs`
//!   (libinjection's samples, the CRS 941/942 inputs and 100,000 generated
//!   ones), checked against the C library itself (PyPI's `libinjection-python`).
//!   HIGH adds one pattern libinjection whitelists: a value that closes a
//!   quote and comments the rest out with `#` (`admin' #`, see
//!   `quote_then_hash_comment`).
//! - **SQLi LOW** (AWS's default) is libinjection minus the detections that are
//!   libinjection's own false positives on ordinary text (`prose_at_low`): a
//!   quoted word next to a keyword in the double-quote context (`"LIKE" STAMP`
//!   is `sos`), `80% ACRYLIC AND 20% WOOL` (`1&1` without a comparison), a
//!   word before a dash comment (`1611-IioXX--`, `1c`). Of the 17,131
//!   libinjection SQLi samples C flags, LOW keeps 17,130.
//! - **XSS** is libinjection's or a second detector's (`crate::xss`: split and
//!   nested tags, event handlers, script URLs with whitespace or entities in
//!   the scheme, script after a broken-out string). libinjection runs behind an exact prefilter: its HTML5 tokenizer
//!   can report an attack only on a tag, a comment, a doctype (all need `<`) or
//!   an attribute value after a blacklisted attribute name (`on...`, `href`,
//!   `style`, ...) and `=`, so input with no `<` and no such name before an
//!   `=` is skipped (see `xss_possible`).

/// Whether LOW sensitivity sets aside a detection of C libinjection's as
/// ordinary text: `fingerprint` was found in the quote context of `flags`.
///
/// Each case is one of libinjection's own false positives
/// (`false_positives.txt`), narrowed until it drops none of libinjection's
/// SQLi samples that C flags with the same fingerprint, but one
/// (`aa" =+ - "0`):
/// - `sos` read in the double-quote context: a quoted word next to a keyword
///   (`"LIKE" STAMP`, `36" X 48 "`); single-quote `sos` is an attack
///   (`X' = 'X`) unless the text escapes apostrophes (`DK'*''''''`);
/// - `s&s` read in the double-quote context with the logic word spaced out
///   as prose (`calendar" and "disney`);
/// - `1&1` with no comparison (`80% ACRYLIC AND 20% WOOL`), where attacks
///   compare (`-9087 or 3038=3038`, `1 AND 1 SOUNDS LIKE 1`);
/// - `1c` with a letter or a comma before the comment (`1611-IioXXIG1ti--`,
///   `1,1--`), where attacks have a number alone (`417652--`, `1 * 1 --`);
/// - `nc` and `Enknk` (`x/*`, `select x from y where`).
fn prose_at_low(fingerprint: &str, flags: crate::libinjection::SqliFlags, input: &[u8]) -> bool {
    let double_quoted = flags.quote_context() == b'"';
    let contains = |needle: &[u8]| {
        input
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    match fingerprint {
        "sos" => double_quoted || contains(b"''''"),
        "s&s" => {
            double_quoted
                && [
                    &b"\" and \""[..],
                    b"\" or \"",
                    b"\" && \"",
                    b"\" || \"",
                    b"\" xor \"",
                ]
                .iter()
                .any(|prose| contains(prose))
        }
        "1&1" => {
            !input.iter().any(|b| matches!(b, b'=' | b'<' | b'>'))
                && !contains(b"like")
                && !contains(b"between")
        }
        "1c" => {
            let comment = input
                .windows(2)
                .position(|w| w == b"--" || w == b"/*")
                .or_else(|| input.iter().position(|&b| b == b'#'))
                .unwrap_or(input.len());
            input[..comment]
                .iter()
                .any(|&b| b.is_ascii_alphabetic() || b == b',')
        }
        "nc" | "Enknk" => true,
        _ => false,
    }
}

/// Whether `input` looks like SQL injection at the given sensitivity.
#[must_use]
pub fn is_sqli(input: &[u8], high: bool) -> bool {
    sqli_one(input, high) || form_values(input).any(|value| sqli_one(value, high))
}

/// The values of `name=value&name=value` input (a form body or a query
/// string inspected whole), which libinjection reads best on their own.
fn form_values(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    // Most values hold no `=`: the word-at-a-time test skips the byte scan.
    let looks_like_form = crate::transform::contains_any(input, [b'='])
        && input.iter().position(|&b| b == b'=').is_some_and(|eq| {
            input[..eq]
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"_-.[]".contains(&b))
        });
    // Not a form: no pair to split (and no scan for `&`).
    looks_like_form
        .then(|| input.split(|&b| b == b'&'))
        .into_iter()
        .flatten()
        .filter_map(|pair| {
            pair.iter()
                .position(|&b| b == b'=')
                .map(|eq| &pair[eq + 1..])
        })
        .filter(|value| !value.is_empty())
}

/// Whether `input` is one word of `[A-Za-z0-9_]`: libinjection reads it as a
/// single token, and no single-token fingerprint is SQL injection (a test
/// checks this on every keyword and on 200,000 random words).
fn single_word(input: &[u8]) -> bool {
    input
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `input` is a decimal number `[0-9]+.[0-9]+` (a JSON price, a
/// version): libinjection reads it as one number token, fingerprint `1`,
/// which is not SQL injection (a test checks 200,000 random ones).
fn decimal(input: &[u8]) -> bool {
    match input.iter().position(|&b| b == b'.') {
        Some(dot) => {
            let (int, frac) = (&input[..dot], &input[dot + 1..]);
            !int.is_empty()
                && !frac.is_empty()
                && int.iter().all(u8::is_ascii_digit)
                && frac.iter().all(u8::is_ascii_digit)
        }
        None => false,
    }
}

/// Whether libinjection cannot report `input` as SQL injection, proven from
/// its fingerprint table; `false` means "run the detector".
///
/// The argument, checked by the tests below against the table and the full
/// detector:
/// - The input has no double quote or backtick, at most one apostrophe, and
///   no comment start (`--`, `/*`, `#`), so it is never re-read as MySQL.
///   Its other bytes are letters, digits, `_`, `.`, `,`, `:`, `/`, `-`, `=`,
///   `&` (never two in a row), `@`, whitespace other than NUL and 0xA0, and
///   bytes from 0x80 up (libinjection reads those as word bytes, except
///   0xA0). So a form or query string (`customer=C-1001&fields=points`), an
///   e-mail address or a name such as `O'Neil` can qualify.
/// - Every word the tokenizer can look up is absent from the keyword table
///   (`word_tokens_absent`), so each word token is a bareword `n`. Two tokens
///   merge only when `"A B"` is in the table; every multi-word keyword starts
///   with a keyword or one of `MERGING_NON_KEYWORDS`, or goes on with a
///   keyword (`AT TIME`, `FULL JOIN`), and starts with a letter (a test
///   checks all three), so neither a word nor an operator here merges.
/// - Then every token is `n`, a number `1`, an operator `o` (`-`, `/`, `=`,
///   `&`, and two-byte ones such as `&=` or `:=`: the tokenizer makes the
///   logic operator `&` only from `&&`, `||` and keywords such as `AND`), a
///   comma, a dot, a colon, a variable `v` (from `@`) or a string `s` (from
///   the apostrophe), and folding only drops tokens. The fingerprint is
///   made of these types, and no fingerprint of the table is made of
///   `n1o,.:` alone (a test checks the table).
/// - A variable: each `@` comes first or right after a word byte, so the
///   token before each `v` is a word, a number, a dot or another `v`, never
///   an operator; and folding keeps it so (a rule that drops that token
///   keeps the word or number before its operator, `1 - x@y` folds to `1v`).
///   Every fingerprint of the table made of `n1o,.:v` has an `o` right
///   before a `v` (`1ov`, `n1ovo`; a test checks).
/// - An apostrophe (never with an `@`): read with no quote context, it
///   opens a string `s` that runs to the end of the input, the last token,
///   and no fingerprint of the table made of `n1o,.:` and one `s` ends with
///   it. Read as if a quote came first, the string it closes is the first
///   token (libinjection stops there: there is no double quote), and
///   `apostrophe_before_word` keeps an operator from coming right after it.
///   No fold drops that next token (of the folding rules that apply to
///   these types, each drops only a token that follows an operator, or an
///   operator itself), and the fingerprints of the table
///   made of `n1o,.:` and one `s` that start with it go on with an `o`
///   (`so1n,`, `son1o`; a test checks).
///
/// So libinjection says "not SQLi".
fn sqli_impossible(input: &[u8]) -> bool {
    let mut previous = b' ';
    let mut apostrophe = None;
    let mut variable = false;
    let mut prose = true;
    for (i, &b) in input.iter().enumerate() {
        let class = BYTE_CLASS[usize::from(b)];
        if class & PLAIN != 0 {
            prose &= class & PROSE != 0;
            previous = b;
            continue;
        }
        prose = false;
        let allowed = match b {
            // `--` starts a comment; `/` is an operator (`/*` needs `*`).
            b'-' => previous != b'-',
            // `&` alone is an operator `o`; `&&` is the logic operator `&`.
            b'&' => previous != b'&',
            // A variable `v`, never right after an operator (nor `@@`).
            b'@' => {
                variable = true;
                i == 0 || word_byte(previous)
            }
            b'\'' => apostrophe.replace(i).is_none(),
            _ => false,
        };
        if !allowed {
            return false;
        }
        previous = b;
    }
    match apostrophe {
        Some(_) if variable => false,
        Some(at) if !apostrophe_before_word(input, at) => false,
        _ => word_tokens_absent(input) || (prose && plain_keyword_prose(input)),
    }
}

/// Whether libinjection reads prose `input` (word bytes and whitespace
/// other than NUL and 0xA0: checked by the caller) as words that are each a
/// bareword `n` or a plain keyword `k` (`Please leave at the door`, where
/// `LEAVE` is a keyword), and not as exactly three words with a keyword
/// among them: the fingerprint is then made of `n` and `k` and is not
/// `nkn`, the only fingerprint of the table made of those two types (a test
/// checks), so libinjection says "not SQLi".
///
/// Why the tokens are those:
/// - With no quote, comment, operator, comma, parenthesis or `@`, the
///   tokens are words and numbers. Each run of word bytes here must start
///   with a word start (a letter, `_`, a byte from 0x80 up but 0xA0), so it
///   is one word token: no numbers, and a `.` inside a run stays in the word
///   as no prefix before a `.` is a keyword other than a listed bareword
///   (`parse_word` splits only at such a keyword).
/// - The word is absent from the table (`n`), a keyword `k` or a listed
///   bareword `n`; over 31 bytes is turned away (the tokenizer truncates).
/// - Two consecutive words merge only when `"A B"` is in the table: no such
///   pair is, so none merges.
/// - No folding rule drops a bareword or a keyword with no comma or
///   operator between them, and the one that changes a type turns the
///   keyword `IN` into a bareword (an operator needs a `(` after it): the
///   fingerprint has one type per word, up to five, so three words make a
///   three-type fingerprint and any other count none of `nkn`'s length.
fn plain_keyword_prose(input: &[u8]) -> bool {
    use crate::libinjection::TokenType;
    use crate::libinjection::sqli_data::lookup_keyword;
    /// The tokenizer's token size: longer words are truncated.
    const TOKEN_SIZE: usize = 32;
    let mut previous: Option<&[u8]> = None;
    let (mut words, mut keywords) = (0usize, 0usize);
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if !word_byte(b) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
                return false;
            }
            i += 1;
            continue;
        }
        let start = i;
        while i < input.len() && word_byte(input[i]) {
            i += 1;
        }
        let word = &input[start..i];
        if !word_start(word[0]) || word.len() >= TOKEN_SIZE {
            return false;
        }
        let splits = word.iter().enumerate().any(|(dot, &b)| {
            b == b'.'
                && !matches!(
                    lookup_keyword(&word[..dot]),
                    None | Some(TokenType::Bareword)
                )
        });
        if splits {
            return false;
        }
        match lookup_keyword(word) {
            None | Some(TokenType::Bareword) => {}
            Some(TokenType::Keyword) => keywords += 1,
            Some(_) => return false,
        }
        words += 1;
        if let Some(left) = previous {
            let mut pair = [0u8; 2 * TOKEN_SIZE];
            let len = left.len() + 1 + word.len();
            pair[..left.len()].copy_from_slice(left);
            pair[left.len()] = b' ';
            pair[left.len() + 1..len].copy_from_slice(word);
            if lookup_keyword(&pair[..len]).is_some() {
                return false;
            }
        }
        previous = Some(word);
    }
    !(words == 3 && keywords > 0)
}

/// Whether the byte after the apostrophe at `at` is a word byte, or there is
/// none: read as if a quote came first, the string the apostrophe closes is
/// then followed by a word, a number or a dot, never by an operator.
fn apostrophe_before_word(input: &[u8], at: usize) -> bool {
    input.get(at + 1).is_none_or(|&b| word_byte(b))
}

/// The first words of libinjection's multi-word keywords that are not
/// keywords themselves and can merge with a word absent from the table
/// (`CURRENT SERVER`, `NEXT VALUE`): a word token absent from the table can
/// still merge with the next when it is one of these. `AT` and `FULL` are
/// not here: every keyword they start goes on with a keyword (`AT TIME`,
/// `FULL JOIN`, `FULL OUTER`), which the prefilter turns away anyway (a test
/// checks the list against the table).
const MERGING_NON_KEYWORDS: [&[u8]; 3] = [b"CURRENT", b"NEXT", b"PREVIOUS"];

/// `BYTE_CLASS` bit: a byte `sqli_impossible` allows anywhere (letters,
/// digits, `_`, `.`, `,`, `:`, `/`, `=`, whitespace other than NUL and 0xA0,
/// bytes from 0x80 up but 0xA0).
const PLAIN: u8 = 1;
/// `BYTE_CLASS` bit: see `word_byte`.
const WORD: u8 = 2;
/// `BYTE_CLASS` bit: see `word_start`.
const WORD_START: u8 = 4;
/// `BYTE_CLASS` bit: a byte of the prose `plain_keyword_prose` reads (word
/// bytes, whitespace other than NUL and 0xA0).
const PROSE: u8 = 8;

/// The prefilter's byte classes, one table lookup a byte.
const BYTE_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        let high = byte >= 0x80 && byte != 0xa0;
        let start = byte.is_ascii_alphabetic() || byte == b'_' || high;
        let word = start || byte.is_ascii_digit() || byte == b'.';
        let plain = word
            || matches!(
                byte,
                b',' | b':' | b'/' | b'=' | b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c
            );
        let prose = word || matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
        table[b] = ((plain as u8) * PLAIN)
            | ((word as u8) * WORD)
            | ((start as u8) * WORD_START)
            | ((prose as u8) * PROSE);
        b += 1;
    }
    table
};

/// Whether a byte is read inside a word or a number by libinjection (for the
/// bytes `sqli_impossible` allows): a letter, a digit, `_`, `.` or a byte
/// from 0x80 up but 0xA0.
fn word_byte(b: u8) -> bool {
    BYTE_CLASS[usize::from(b)] & WORD != 0
}

/// Whether a word token may start at a byte: a letter, `_` or a byte from
/// 0x80 up but 0xA0.
fn word_start(b: u8) -> bool {
    BYTE_CLASS[usize::from(b)] & WORD_START != 0
}

/// Whether none of the words the tokenizer may look up in `input` is in
/// libinjection's keyword table. A run of word bytes that starts with a
/// word start is one word token (parse_word stops only at a delimiter, or
/// at a `.` after a prefix that is a keyword); one that starts with a digit
/// or `.` is numbers, then a word token from a letter that follows a byte a
/// number may end with (a digit, `.`, hex letters, `x`, the `e`/`d`/`f` of
/// exponents and Oracle suffixes). Each such word is checked whole, and so
/// is its every prefix before a `.` (parse_word looks those up).
fn word_tokens_absent(input: &[u8]) -> bool {
    let absent = |word: &[u8]| {
        crate::libinjection::sqli_data::lookup_keyword(word).is_none()
            && !MERGING_NON_KEYWORDS
                .iter()
                .any(|first| word.eq_ignore_ascii_case(first))
            && word
                .iter()
                .enumerate()
                .filter(|&(_, &b)| b == b'.')
                .all(|(dot, _)| {
                    crate::libinjection::sqli_data::lookup_keyword(&word[..dot]).is_none()
                })
    };
    input
        .split(|&b| !word_byte(b))
        .filter(|run| !run.is_empty())
        .all(|run| {
            if word_start(run[0]) {
                return absent(run);
            }
            (1..run.len())
                .filter(|&i| {
                    word_start(run[i])
                        && (run[i - 1].is_ascii_hexdigit()
                            || matches!(run[i - 1], b'.' | b'x' | b'X'))
                })
                .all(|i| absent(&run[i..]))
        })
}

/// HIGH sensitivity's addition to libinjection: a login name that closes a
/// quote and comments out the rest of the query with MySQL's `#`
/// (`admin' #`, `admin"#`). libinjection sets `#` comments aside (its
/// fingerprint `sc` is whitelisted for them, "too many false positives").
/// Here the value must start with one word holding a letter (a user name,
/// an email), then the quote, then only whitespace before the `#`: text
/// does not (`O'Neil`, `7" #2 NEEDLE`, `SOAP 1 '#`, `FOO BAR'# BLAH`, the
/// last three from libinjection's `false_positives.txt`).
fn quote_then_hash_comment(input: &[u8]) -> bool {
    let Some(quote) = input.iter().position(|&b| matches!(b, b'\'' | b'"')) else {
        return false;
    };
    let name = &input[..quote];
    !name.is_empty()
        && name.iter().any(u8::is_ascii_alphabetic)
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'@' | b'.' | b'-'))
        && input[quote + 1..]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'#')
}

fn sqli_one(input: &[u8], high: bool) -> bool {
    if high && quote_then_hash_comment(input) {
        return true;
    }
    if input.is_empty() || single_word(input) || decimal(input) || sqli_impossible(input) {
        return false;
    }
    let mut state =
        crate::libinjection::SqliState::new(input, crate::libinjection::SqliFlags::FLAG_NONE);
    if !state.detect() {
        return false;
    }
    high || !prose_at_low(state.get_fingerprint().as_str(), state.flags(), input)
}

/// libinjection's verdict on `input` alone: the fingerprint when it reports
/// SQL injection. [`is_sqli`] adds sensitivity and form handling on top.
#[must_use]
pub fn libinjection_sqli(input: &[u8]) -> Option<String> {
    let mut state =
        crate::libinjection::SqliState::new(input, crate::libinjection::SqliFlags::FLAG_NONE);
    if state.detect() {
        Some(state.get_fingerprint().as_str().to_owned())
    } else {
        None
    }
}

/// Whether `input` looks like cross-site scripting.
#[must_use]
pub fn is_xss(input: &[u8]) -> bool {
    xss_one(input) || form_values(input).any(xss_one)
}

fn xss_one(input: &[u8]) -> bool {
    (xss_possible(input) && libinjectionrs::detect_xss(input).is_injection())
        || crate::xss::is_xss(input)
}

/// Whether libinjection's XSS detector can report `input` at all; `false`
/// only where it provably says "safe", so skipping it changes no verdict.
///
/// The detector (`XssDetector::is_xss`, run in five HTML contexts) reports a
/// doctype, a tag or a comment, which its HTML5 tokenizer only produces after
/// a `<`, or an attribute value right after an attribute name that
/// `is_black_attr` flags. Without `<` (and without NUL, which its name
/// comparisons skip), that needs an attribute name token `T` followed by `=`
/// (directly or after whitespace): `T` ends where that whitespace run (or the
/// `=`) starts, `T[1..]` holds none of the tokenizer's name delimiters
/// (whitespace, `/`, `=`, `>`), and `T` is black only if it starts with `on`
/// and has at least 5 bytes (event handlers), starts with `xmlns` or `xlink`,
/// or equals a name of libinjection's `BLACK_ATTRS`, all without case. This
/// checks every suffix of the delimiter-free run before each `=` for those
/// conditions, a superset of what the detector can flag. The tests below
/// check the implication on random, fragment-built and corpus inputs.
fn xss_possible(input: &[u8]) -> bool {
    let white = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let delimiter = |b: u8| white(b) || matches!(b, b'/' | b'=' | b'>');
    // Without `<`, NUL or `=` the loop below finds nothing: skip it, eight
    // bytes at a time.
    if !crate::transform::contains_any(input, [b'<', 0, b'=']) {
        return false;
    }
    let mut names = false;
    for (eq, &b) in input.iter().enumerate() {
        match b {
            b'<' | 0 => return true,
            b'=' if !names => {
                let mut end = eq;
                while end > 0 && white(input[end - 1]) {
                    end -= 1;
                }
                let mut start = end;
                while start > 0 && !delimiter(input[start - 1]) {
                    start -= 1;
                }
                names = black_suffix(&input[start..end]);
            }
            _ => {}
        }
    }
    names
}

/// Whether some suffix of `run` (a NUL-free run of attribute-name bytes) is
/// a name libinjection's `is_black_attr` can flag, or in a superset of them:
/// at least 5 bytes starting with `on` (event handlers; libinjection then
/// checks its list of events), `xmlns` or `xlink`, or one of libinjection's
/// `BLACK_ATTRS` (`libinjectionrs` 0.1.1, `src/xss/blacklists.rs`) exactly,
/// all without ASCII case.
fn black_suffix(run: &[u8]) -> bool {
    let prefixed = run.windows(5).any(|w| match w[0] | 0x20 {
        b'o' => (w[1] | 0x20) == b'n',
        b'x' => w.eq_ignore_ascii_case(b"xmlns") || w.eq_ignore_ascii_case(b"xlink"),
        _ => false,
    });
    let Some(&last) = run.last() else {
        return false;
    };
    // Every name of BLACK_ATTRS ends with a letter: only those ending with
    // `last` (without case) can equal a suffix.
    let candidates: &[&[u8]] = match last | 0x20 {
        b'n' => &[b"ACTION", b"FORMACTION"],
        b'e' => &[b"ATTRIBUTENAME", b"STYLE"],
        b'y' => &[b"BY"],
        b'd' => &[b"BACKGROUND"],
        b's' => &[b"DATAFORMATAS", b"VALUES"],
        b'c' => &[b"DATASRC", b"DYNSRC", b"LOWSRC", b"SRC"],
        b'r' => &[b"FILTER", b"FOLDER", b"HANDLER", b"POSTER"],
        b'm' => &[b"FROM"],
        b'f' => &[b"HREF", b"XLINK:HREF"],
        b'o' => &[b"TO"],
        _ => &[],
    };
    prefixed
        || candidates.iter().any(|name| {
            run.len() >= name.len() && run[run.len() - name.len()..].eq_ignore_ascii_case(name)
        })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// libinjection's blacklisted attribute names (`BLACK_ATTRS` of
    /// `libinjectionrs` 0.1.1, `src/xss/blacklists.rs`), compared without case.
    const BLACK_ATTRS: [&[u8]; 20] = [
        b"ACTION",
        b"ATTRIBUTENAME",
        b"BY",
        b"BACKGROUND",
        b"DATAFORMATAS",
        b"DATASRC",
        b"DYNSRC",
        b"FILTER",
        b"FORMACTION",
        b"FOLDER",
        b"FROM",
        b"HANDLER",
        b"HREF",
        b"LOWSRC",
        b"POSTER",
        b"SRC",
        b"STYLE",
        b"TO",
        b"VALUES",
        b"XLINK:HREF",
    ];

    /// The byte table says what the byte predicates spelled out say.
    #[test]
    fn byte_classes_match_their_definitions() {
        for b in 0..=u8::MAX {
            let high = b >= 0x80 && b != 0xa0;
            let start = b.is_ascii_alphabetic() || b == b'_' || high;
            let word = start || b.is_ascii_digit() || b == b'.';
            let plain = word || b",:/= \t\n\r\x0b\x0c".contains(&b);
            let prose = word || b" \t\n\r\x0b\x0c".contains(&b);
            assert_eq!(word_start(b), start, "{b:#x}");
            assert_eq!(word_byte(b), word, "{b:#x}");
            assert_eq!(BYTE_CLASS[usize::from(b)] & PLAIN != 0, plain, "{b:#x}");
            assert_eq!(BYTE_CLASS[usize::from(b)] & PROSE != 0, prose, "{b:#x}");
        }
    }

    #[test]
    fn single_words_are_never_sqli_for_libinjection() {
        let raw = |w: &[u8]| {
            let mut state =
                crate::libinjection::SqliState::new(w, crate::libinjection::SqliFlags::FLAG_NONE);
            state.detect()
        };
        for keyword in crate::libinjection::sqli_data::SQL_KEYWORDS {
            let word = keyword.word.as_bytes();
            if single_word(word) {
                assert!(!raw(word), "{}", keyword.word);
                assert!(!raw(&word.to_ascii_lowercase()), "{}", keyword.word);
            }
        }
        let alphabet = b"abcdefxyzABCEFXZ0123456789_";
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = 1 + (state % 12) as usize;
            let word: Vec<u8> = (0..len)
                .map(|i| alphabet[((state >> (i * 5)) % alphabet.len() as u64) as usize])
                .collect();
            assert!(!raw(&word), "{}", String::from_utf8_lossy(&word));
        }
    }

    #[test]
    fn decimals_are_never_sqli_for_libinjection() {
        let raw = |w: &[u8]| {
            let mut state =
                crate::libinjection::SqliState::new(w, crate::libinjection::SqliFlags::FLAG_NONE);
            state.detect()
        };
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let int = 1 + (state % 12) as usize;
            let frac = 1 + ((state >> 8) % 12) as usize;
            let mut word: Vec<u8> = (0..int + 1 + frac)
                .map(|i| b'0' + ((state >> ((i * 3) % 60)) % 10) as u8)
                .collect();
            word[int] = b'.';
            assert!(decimal(&word));
            assert!(!raw(&word), "{}", String::from_utf8_lossy(&word));
        }
        for not_decimal in [
            &b"1."[..],
            b".5",
            b"1.2.3",
            b"1e5",
            b"0x1.5",
            b"1.5a",
            b"-1.5",
            b".",
        ] {
            assert!(!decimal(not_decimal), "{not_decimal:?}");
        }
    }

    /// Inputs built from the pieces the XSS prefilter reasons about: the
    /// tokenizer's delimiters, quotes, `<`, NUL, 0xFF, blacklisted attribute
    /// names and event handlers, URL schemes, and filler.
    fn xss_fragments() -> impl Strategy<Value = Vec<u8>> {
        const PIECES: &[&[u8]] = &[
            b"=",
            b" ",
            b"\t",
            b"\n",
            b"\x0b",
            b"\x0c",
            b"\r",
            b"/",
            b">",
            b"<",
            b"'",
            b"\"",
            b"`",
            b"\0",
            b"\xff",
            b"&",
            b"?",
            b"!",
            b"-",
            b":",
            b"a",
            b"x",
            b"C-1001",
            b"on",
            b"ON",
            b"oN",
            b"onclick",
            b"onerror",
            b"onload",
            b"onmouseover",
            b"ONFOCUS",
            b"xmlns",
            b"XLINK",
            b"xlink:href",
            b"href",
            b"HREF",
            b"src",
            b"style",
            b"to",
            b"by",
            b"from",
            b"values",
            b"action",
            b"formaction",
            b"attributename",
            b"background",
            b"dataformatas",
            b"datasrc",
            b"dynsrc",
            b"filter",
            b"folder",
            b"handler",
            b"lowsrc",
            b"poster",
            b"javascript:",
            b"vbscript:",
            b"data:",
            b"alert(1)",
            b"customer",
            b"fields",
            b"points",
            b"&#x6a;",
            b"script",
            b"svg",
            b"!--",
            b"?",
        ];
        prop::collection::vec(
            prop_oneof![
                4 => prop::sample::select(PIECES).prop_map(<[u8]>::to_vec),
                1 => any::<u8>().prop_map(|b| vec![b]),
            ],
            0..16,
        )
        .prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// The XSS prefilter skips only what libinjection calls safe.
        #[test]
        fn xss_prefilter_skips_only_safe_input(input in xss_fragments()) {
            if !xss_possible(&input) {
                prop_assert!(!libinjectionrs::detect_xss(&input).is_injection());
            }
        }

        /// The same on arbitrary bytes.
        #[test]
        fn xss_prefilter_skips_only_safe_bytes(input in prop::collection::vec(any::<u8>(), 0..64)) {
            if !xss_possible(&input) {
                prop_assert!(!libinjectionrs::detect_xss(&input).is_injection());
            }
        }
    }

    /// The fingerprints of libinjection's table, in its own spelling
    /// (upper case: `N` for a bareword, `O` an operator, `S` a string, `V`
    /// a variable).
    fn table_fingerprints() -> Vec<&'static str> {
        crate::libinjection::sqli_data::SQL_KEYWORDS
            .iter()
            .filter(|keyword| keyword.token_type == b'F')
            .map(|keyword| &keyword.word[1..])
            .collect()
    }

    /// No fingerprint of libinjection's table is made only of the token
    /// types `sqli_impossible` leaves possible, in the arrangements it
    /// leaves possible: barewords, numbers and punctuation alone; with
    /// variables, none right after an operator; with one string, first and
    /// not followed by an operator, or last and not after one.
    #[test]
    fn no_fingerprint_is_made_of_what_the_prefilter_lets_through() {
        let fingerprints = table_fingerprints();
        assert!(
            fingerprints.len() > 8_000,
            "{} fingerprints",
            fingerprints.len()
        );
        // The table spells types in upper case; a check in lower case
        // would pass whatever the table held.
        assert!(fingerprints.contains(&"SOS") && fingerprints.contains(&"1OV"));
        let made_of = |f: &str, types: &str| f.bytes().all(|t| types.as_bytes().contains(&t));
        for f in &fingerprints {
            assert!(!made_of(f, "N1O,.:"), "{f}");
            if made_of(f, "N1O,.:V") {
                assert!(f.contains("OV"), "{f}");
            }
            if made_of(f, "N1O,.:S") && f.matches('S').count() == 1 {
                assert!(!f.ends_with('S'), "{f}");
                if f.starts_with('S') {
                    assert!(f.starts_with("SO"), "{f}");
                }
            }
        }
        // What the rules above exclude does occur: each arrangement matters.
        assert!(fingerprints.contains(&"SO1N,") && fingerprints.contains(&"N1OVO"));
        // Barewords and keywords alone: `plain_keyword_prose` turns away
        // exactly three words with a keyword among them.
        let words_only: Vec<&str> = fingerprints
            .iter()
            .copied()
            .filter(|f| made_of(f, "NK"))
            .collect();
        assert_eq!(words_only, ["NKN"]);
    }

    /// Words separated by whitespace: keywords of every type, the words
    /// that start multi-word keywords and what follows them, ordinary words,
    /// words with a dot, numbers.
    fn keyword_prose() -> impl Strategy<Value = Vec<u8>> {
        let mut words: Vec<&'static [u8]> = crate::libinjection::sqli_data::SQL_KEYWORDS
            .iter()
            .filter(|k| k.token_type != b'F')
            .flat_map(|k| k.word.split(' '))
            .map(str::as_bytes)
            .collect();
        words.extend([
            &b"Please"[..],
            b"leave",
            b"at",
            b"the",
            b"door.",
            b"Jane",
            b"x",
            b"St.",
            b"leave.it",
            b"e.g.",
            b"\xc3\xa9t\xc3\xa9",
            b"42",
            b"1e5",
        ]);
        // Plain keywords and ordinary words often, so that the prefilter
        // has something to pass.
        let plain: Vec<&'static [u8]> = crate::libinjection::sqli_data::SQL_KEYWORDS
            .iter()
            .filter(|k| k.token_type == b'k' || k.token_type == b'n')
            .map(|k| k.word.as_bytes())
            .chain([&b"please"[..], b"door", b"the", b"at", b"x"])
            .collect();
        let word = prop_oneof![prop::sample::select(words), prop::sample::select(plain)];
        const SEPARATORS: &[&[u8]] = &[b" ", b"  ", b"\t", b"\n", b" ", b""];
        let separator = prop::sample::select(SEPARATORS);
        prop::collection::vec((word, separator), 0..7).prop_map(|pairs| {
            pairs
                .into_iter()
                .flat_map(|(word, separator)| [word, separator])
                .flatten()
                .copied()
                .collect()
        })
    }

    #[test]
    fn keyword_prose_skips_the_tokenizer() {
        for text in [
            &b"Please leave at the door."[..],
            b"Leave it with the neighbours",
        ] {
            assert!(sqli_impossible(text), "{}", String::from_utf8_lossy(text));
            assert!(libinjection_sqli(text).is_none());
        }
        // Three words around a keyword, a multi-word keyword, a word that
        // is another type, a comma: the tokenizer runs.
        for text in [
            &b"please leave now"[..],
            b"lock in share mode please",
            b"please select the door",
            b"please leave, at the door",
        ] {
            assert!(!sqli_impossible(text), "{}", String::from_utf8_lossy(text));
        }
    }

    /// Two words merge only when the pair is a keyword. Every multi-word
    /// keyword starts with a letter (no operator token, `=`, `&`, `-`,
    /// `&=`, ..., starts one), and with a word that is a keyword itself, or
    /// one of `MERGING_NON_KEYWORDS`, or goes on with a keyword; and each of
    /// `MERGING_NON_KEYWORDS` starts one that goes on with a word absent
    /// from the table. So the words the prefilter lets through never merge,
    /// and the list is no longer than it needs to be.
    #[test]
    fn multi_word_keywords_start_with_a_keyword() {
        let lookup = |w: &str| crate::libinjection::sqli_data::lookup_keyword(w.as_bytes());
        let mut needed = std::collections::BTreeSet::new();
        for keyword in crate::libinjection::sqli_data::SQL_KEYWORDS {
            let mut words = keyword.word.split(' ');
            let (Some(first), Some(second)) = (words.next(), words.next()) else {
                continue;
            };
            assert!(
                first
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic()),
                "{}",
                keyword.word
            );
            if lookup(first).is_none() {
                let continues_with_keyword = second
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic())
                    && lookup(second).is_some();
                if !continues_with_keyword {
                    needed.insert(first.as_bytes());
                }
            }
        }
        let listed: std::collections::BTreeSet<&[u8]> = MERGING_NON_KEYWORDS.into_iter().collect();
        assert_eq!(listed, needed);
    }

    /// Inputs built from what the SQLi prefilter reasons about: words that
    /// are keywords and words that are not, numbers with exponents, hex and
    /// suffixes, the punctuation it allows, and some it does not.
    fn sqli_fragments() -> impl Strategy<Value = Vec<u8>> {
        const PIECES: &[&[u8]] = &[
            b"union",
            b"SELECT",
            b"or",
            b"and",
            b"x",
            b"C",
            b"at",
            b"time",
            b"zone",
            b"current",
            b"user",
            b"customer",
            b"points",
            b"Harbour",
            b"sleep",
            b"null",
            b"LOCK",
            b"in",
            b"mode",
            b"e",
            b"d",
            b"f",
            b"U",
            b"1",
            b"0",
            b"42",
            b"1e",
            b"1e5",
            b"0x",
            b"0x1f",
            b"0b1",
            b"1f",
            b"1d",
            b".",
            b"..",
            b".5",
            b",",
            b":",
            b"::",
            b"/",
            b"-",
            b"--",
            b" ",
            b"\t",
            b"\n",
            b"_",
            b"\xc3\xa9",
            b"\xa0",
            b"'",
            b"\"",
            b"`",
            b"#",
            b"*",
            b"=",
            b"&",
            b"&&",
            b"&=",
            b"==",
            b":=",
            b"||",
            b"(",
            b")",
            b"@",
            b";",
            b"+",
            b"!",
            b"|",
            b"\0",
        ];
        prop::collection::vec(prop::sample::select(PIECES).prop_map(<[u8]>::to_vec), 0..12)
            .prop_map(|pieces| pieces.concat())
    }

    /// Prose and JSON-ish values: ordinary words, names with apostrophes,
    /// e-mail addresses, SQL keywords (and the words that start multi-word
    /// ones), numbers, and the punctuation between them, the prefilter's
    /// and some it turns away.
    fn prose_fragments() -> impl Strategy<Value = Vec<u8>> {
        const WORDS: &[&[u8]] = &[
            b"Please",
            b"leave",
            b"at",
            b"AT",
            b"the",
            b"door",
            b"Jane",
            b"O'Neil",
            b"O",
            b"Neil",
            b"don't",
            b"can't",
            b"Lou's",
            b"jane@example.com",
            b"x@y",
            b"n",
            b"N",
            b"e",
            b"x",
            b"b",
            b"q",
            b"nq",
            b"Nq",
            b"u",
            b"St.n",
            b"select",
            b"UNION",
            b"or",
            b"and",
            b"time",
            b"zone",
            b"current",
            b"server",
            b"full",
            b"join",
            b"outer",
            b"next",
            b"value",
            b"for",
            b"user",
            b"sleep",
            b"1",
            b"42",
            b"3.5",
            b"0",
            b"0x",
            b"1e",
            b"1e5",
            b"\xc3\xa9t\xc3\xa9",
        ];
        const SEPARATORS: &[&[u8]] = &[
            b"", b" ", b" ", b", ", b".", b"'", b" '", b"' ", b"' - ", b"'=", b"@", b" @", b"@@",
            b"-", b" - ", b"--", b"=", b"&", b"&&", b"/", b":", b"#", b"(", b")", b";", b"\"",
            b"+", b"*", b"\n",
        ];
        prop::collection::vec(
            (
                prop::sample::select(WORDS),
                prop::sample::select(SEPARATORS),
            ),
            0..8,
        )
        .prop_map(|pairs| {
            pairs
                .into_iter()
                .flat_map(|(word, separator)| [word, separator])
                .flatten()
                .copied()
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(30_000))]

        /// The SQLi prefilter skips only what libinjection calls safe.
        #[test]
        fn sqli_prefilter_skips_only_safe_input(input in sqli_fragments()) {
            if sqli_impossible(&input) {
                prop_assert!(libinjection_sqli(&input).is_none(), "{:?}", String::from_utf8_lossy(&input));
            }
        }

        /// The same on arbitrary bytes of the alphabet it allows.
        #[test]
        fn sqli_prefilter_skips_only_safe_bytes(
            input in prop::collection::vec(prop::sample::select(&b"abdefnoqrtxyzBEFNQUX0123456789_.,:/-=&@' \t\xc3\xa9"[..]), 0..40)
        ) {
            if sqli_impossible(&input) {
                prop_assert!(libinjection_sqli(&input).is_none(), "{:?}", String::from_utf8_lossy(&input));
            }
        }

        /// The same on words between whitespace, keywords among them.
        #[test]
        fn sqli_prefilter_skips_only_safe_keyword_prose(input in keyword_prose()) {
            if sqli_impossible(&input) {
                prop_assert!(libinjection_sqli(&input).is_none(), "{:?}", String::from_utf8_lossy(&input));
            }
        }

        /// The same on prose and JSON-ish values: names with apostrophes,
        /// e-mail addresses, SQL keywords among ordinary words, digits,
        /// `#`, `-` and the string prefixes (`n'`, `e'`, `nq'`, ...).
        #[test]
        fn sqli_prefilter_skips_only_safe_prose(input in prose_fragments()) {
            if sqli_impossible(&input) {
                prop_assert!(libinjection_sqli(&input).is_none(), "{:?}", String::from_utf8_lossy(&input));
            }
        }
    }

    /// Every line of the shared corpora (libinjection's samples and the CRS
    /// regression tests), raw and percent-decoded, whole and split at `&`,
    /// `=` and `"`: the XSS and SQLi prefilters skip only what libinjection
    /// calls safe.
    #[test]
    fn xss_prefilter_skips_only_safe_corpus_input() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora");
        let mut files = Vec::new();
        for sub in [
            "libinjection",
            "crs-regression/REQUEST-941-APPLICATION-ATTACK-XSS",
            "crs-regression/REQUEST-942-APPLICATION-ATTACK-SQLI",
        ] {
            if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
                files.extend(entries.map(|e| e.unwrap().path()));
            }
        }
        if files.is_empty() {
            println!("corpus check skipped: no corpora in {}", dir.display());
            return;
        }
        let decode = |line: &[u8]| -> Vec<u8> {
            let mut out = Vec::with_capacity(line.len());
            let mut i = 0;
            while i < line.len() {
                let hex = |b: u8| (b as char).to_digit(16);
                match (
                    line[i],
                    line.get(i + 1).copied().and_then(hex),
                    line.get(i + 2).copied().and_then(hex),
                ) {
                    (b'%', Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    (b'+', _, _) => {
                        out.push(b' ');
                        i += 1;
                    }
                    (b, _, _) => {
                        out.push(b);
                        i += 1;
                    }
                }
            }
            out
        };
        let (mut checked, mut skipped, mut sqli_skipped) = (0usize, 0usize, 0usize);
        for file in files {
            let text = std::fs::read(&file).unwrap();
            for line in text.split(|&b| b == b'\n') {
                for whole in [line.to_vec(), decode(line)] {
                    let parts = whole
                        .split(|&b| b == b'&' || b == b'=' || b == b'"')
                        .map(<[u8]>::to_vec);
                    for input in std::iter::once(whole.clone()).chain(parts) {
                        checked += 1;
                        if sqli_impossible(&input) {
                            sqli_skipped += 1;
                            assert!(
                                libinjection_sqli(&input).is_none(),
                                "{}: {}",
                                file.display(),
                                String::from_utf8_lossy(&input)
                            );
                        }
                        if !xss_possible(&input) {
                            skipped += 1;
                            assert!(
                                !libinjectionrs::detect_xss(&input).is_injection(),
                                "{}: {}",
                                file.display(),
                                String::from_utf8_lossy(&input)
                            );
                        }
                    }
                }
            }
        }
        println!(
            "xss prefilter: {checked} corpus inputs, {skipped} skipped; sqli prefilter: {sqli_skipped} skipped"
        );
        assert!(
            sqli_skipped > 10_000,
            "{sqli_skipped} skipped by the SQLi prefilter"
        );
        assert!(
            checked > 100_000 && skipped > 10_000,
            "{checked} checked, {skipped} skipped"
        );
    }

    #[test]
    fn xss_prefilter_keeps_every_blacklisted_attribute() {
        for name in BLACK_ATTRS {
            let lower = name.to_ascii_lowercase();
            for input in [
                [name, &b"=javascript:alert(1)"[..]].concat(),
                [&b"x '"[..], &lower, b" = 'javascript:alert(1)'"].concat(),
            ] {
                assert!(xss_possible(&input), "{}", String::from_utf8_lossy(&input));
            }
        }
        for flagged in [
            &b"\" onmouseover=alert(1) x=\""[..],
            b"x'onclick=alert(1)",
            b"a=b onerror =alert(1)",
            b"xmlns:x=y",
            b"style=x",
            b"href\t=javascript:alert(1)",
        ] {
            assert!(
                xss_possible(flagged),
                "{}",
                String::from_utf8_lossy(flagged)
            );
            assert!(
                libinjectionrs::detect_xss(flagged).is_injection(),
                "{}",
                String::from_utf8_lossy(flagged)
            );
        }
        // The load test's query: no `<` and no blacklisted name before an `=`.
        assert!(!xss_possible(b"customer=C-1001&fields=points"));
        assert!(!xss_possible(b"a = b"));
    }

    #[test]
    fn classic_attacks_and_ordinary_text() {
        assert!(is_sqli(b"1' OR '1'='1", false));
        assert!(is_sqli(b"1 UNION SELECT password FROM users--", false));
        assert!(!is_sqli(b"hello world", false));
        assert!(!is_sqli(b"\"LIKE\" STAMP", false));
        assert!(is_sqli(b"\"LIKE\" STAMP", true));
        // C libinjection flags these; LOW keeps them (they compare, or have
        // a number alone before the comment).
        for attack in [
            &b"-9087 or 3038=3038"[..],
            b"1 AND 1 SOUNDS LIKE 1",
            b"417652--",
            b"1 * 1 --",
            b"X' = 'X",
            b"A' OR 'B",
            b"1\"OR!\"a",
        ] {
            assert!(
                is_sqli(attack, false),
                "{}",
                String::from_utf8_lossy(attack)
            );
        }
        // HIGH's addition: a closed quote, then a `#` comment.
        for attack in [
            &b"admin' #"[..],
            b"admin'#",
            b"admin\" #",
            b"jane@example.com'\t# rest",
        ] {
            assert!(
                libinjection_sqli(attack).is_none(),
                "{}",
                String::from_utf8_lossy(attack)
            );
            assert!(is_sqli(attack, true), "{}", String::from_utf8_lossy(attack));
            assert!(
                !is_sqli(attack, false),
                "{}",
                String::from_utf8_lossy(attack)
            );
        }
        for text in [
            &b"O'Neil #1 fan"[..],
            b"rock 'n' roll #1",
            b"'# quoted",
            b"5' x #2",
            b"7\" #2 CIRCULAR NEEDLE",
            b"BAMBOO CHARCOAL SOAP 1 '#",
            b"FOO BAR'# BLAH",
        ] {
            assert!(!is_sqli(text, true), "{}", String::from_utf8_lossy(text));
        }
        // ... and these, which LOW reads as prose.
        for prose in [
            &b"80% ACRYLIC AND 20% WOOL"[..],
            b"1611-IioXXIG1ti8rspL2vbXFy--",
            b"1,1--",
            b"'countdown calendar\" and \"disney:",
            b"x/*",
            // libinjection's `false_positives.txt`: 33 quotes after the `*`.
            &[&b"MISTERGLAS.DK'*"[..], &[b'\''; 33]].concat(),
        ] {
            assert!(
                libinjection_sqli(prose).is_some(),
                "{}",
                String::from_utf8_lossy(prose)
            );
            assert!(!is_sqli(prose, false), "{}", String::from_utf8_lossy(prose));
        }
        assert!(is_xss(b"<script>alert(1)</script>"));
        assert!(is_xss(b"\" onmouseover=alert(1) x=\""));
        assert!(!is_xss(b"just a comment, no markup"));
        assert!(!is_xss(b"a = b"));
    }
}
