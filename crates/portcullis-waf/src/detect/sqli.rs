//! SQL injection: libinjection behind an exact prefilter, with LOW's
//! exceptions.

use super::form::form_values;

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
pub(super) fn sqli_impossible(input: &[u8]) -> bool {
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

#[cfg(test)]
mod tests;
