//! Tests of the SQLi detector: its prefilter against libinjection, on
//! generated input and on the fingerprint table.

use proptest::prelude::*;

use super::*;

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
        b"", b" ", b" ", b", ", b".", b"'", b" '", b"' ", b"' - ", b"'=", b"@", b" @", b"@@", b"-",
        b" - ", b"--", b"=", b"&", b"&&", b"/", b":", b"#", b"(", b")", b";", b"\"", b"+", b"*",
        b"\n",
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
