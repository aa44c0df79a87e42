//! Tests of the transformations: each against its definition, and the
//! word-at-a-time scans and chain triggers against byte-by-byte ones.

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]

    /// The word-at-a-time tests agree with byte-by-byte ones.
    #[test]
    fn word_tests_agree_with_byte_tests(
        input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
        a in proptest::prelude::any::<u8>(),
        b in proptest::prelude::any::<u8>(),
    ) {
        proptest::prop_assert_eq!(
            contains_either(&input, a, b),
            input.iter().any(|&c| c == a || c == b)
        );
        proptest::prop_assert_eq!(
            contains_any(&input, [a, b, 0]),
            input.iter().any(|&c| c == a || c == b || c == 0)
        );
        proptest::prop_assert_eq!(
            has_ascii_uppercase(&input),
            input.iter().any(u8::is_ascii_uppercase)
        );
    }
}

/// Pieces that make transformations change their input, mixed with
/// arbitrary bytes.
fn fragments() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    const PIECES: [&[u8]; 24] = [
        b"%41",
        b"%u0041",
        b"%uff1c",
        b"%",
        b"+",
        b"&",
        b"&amp;",
        b"&#65;",
        b"&#x41",
        b"&#x",
        b"&LT",
        b"&nbsp",
        b"a",
        b"Z",
        b" ",
        b"  ",
        b"\t",
        b"\0",
        b"\xc2\xa0",
        b"\xc3\xa9",
        b"\\",
        b"/*",
        b"0x41",
        b"-",
    ];
    let piece = prop_oneof![
        prop::sample::select(&PIECES[..]).prop_map(<[u8]>::to_vec),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]

    /// A transformation leaves an input with none of its trigger bytes
    /// unchanged.
    #[test]
    fn no_trigger_byte_no_change(input in fragments()) {
        for kind in T::ALL {
            let Some(trigger) = kind.trigger() else { continue };
            let mut input = input.clone();
            input.retain(|&b| !trigger(b));
            proptest::prop_assert_eq!(kind.apply(&input), None, "{:?} {:?}", kind, input);
        }
    }

    /// A chain's triggers are the union of its transformations': where
    /// they say "unchanged", running the chain borrows the input.
    #[test]
    fn chain_triggers_agree_with_the_chain(
        input in fragments(),
        picks in proptest::collection::vec(0..T::ALL.len(), 0..4),
    ) {
        let chain: Vec<T> = picks.iter().map(|&i| T::ALL[i]).collect();
        let Some(triggers) = ChainTriggers::new(&chain) else {
            proptest::prop_assert!(chain.iter().any(|k| k.trigger().is_none()));
            return Ok(());
        };
        if triggers.leave_unchanged(&input) {
            proptest::prop_assert!(
                matches!(apply_chain(&chain, &input), Cow::Borrowed(_)),
                "{:?} {:?}", chain, input
            );
        }
    }

    /// Skipping the copy when no `&` starts a reference gives the full
    /// decoder's answer.
    #[test]
    fn entity_gate_agrees_with_the_decoder(input in fragments()) {
        proptest::prop_assert_eq!(html_entity_decode(&input), html_entity_decode_all(&input));
    }
}

#[test]
fn word_tests_find_every_position() {
    for len in 0..20 {
        for at in 0..len {
            for probe in [b'%', b'+', b'&', b'A', b'Z'] {
                let mut input = vec![b'a'; len];
                input[at] = probe;
                assert!(contains_either(&input, probe, b'+'), "{len} {at}");
                assert_eq!(has_ascii_uppercase(&input), probe.is_ascii_uppercase());
            }
            for other in [b'@', b'[', 0xc1, 0xda, b'z', 0x7f] {
                let mut input = vec![b'a'; len];
                input[at] = other;
                assert!(!has_ascii_uppercase(&input), "{other:#x}");
            }
        }
    }
}
use super::TransformKind as T;
use super::decode::html_entity_decode_all;
use super::scan::contains_either;
use super::*;

fn t(kind: T, input: &str) -> String {
    String::from_utf8_lossy(&apply_chain(&[kind], input.as_bytes())).into_owned()
}

#[test]
fn each_transformation_changes_what_it_should() {
    assert_eq!(t(T::None, "A b"), "A b");
    assert_eq!(t(T::CompressWhiteSpace, "a \t\n\r b\u{a0}c"), "a b c");
    assert_eq!(
        t(
            T::HtmlEntityDecode,
            "&lt;script&gt;&#x41;&#66;&quot;&amp;x&nbsp;"
        ),
        "<script>AB\"&x\u{a0}"
    );
    assert_eq!(t(T::HtmlEntityDecode, "a & b &zz;"), "a & b &zz;");
    assert_eq!(t(T::Lowercase, "SeLeCt"), "select");
    assert_eq!(t(T::Uppercase, "SeLeCt"), "SELECT");
    assert_eq!(t(T::CmdLine, "C^MD  \"/c\" , 'wh\\oami';"), "cmd/c whoami ");
    assert_eq!(
        t(T::CmdLineWin, "C:\\Windows\\cmd^.exe"),
        "c:/windows/cmd.exe"
    );
    assert_eq!(
        t(T::CmdLineUnix, "cat${IFS}/etc/pa's'swd"),
        "cat/etc/passwd"
    );
    assert_eq!(t(T::UrlDecode, "%27+or%201%3D1%zz"), "' or 1=1%zz");
    assert_eq!(t(T::UrlDecodeUni, "%u0027%uff1c%41"), "'<A");
    assert_eq!(t(T::Base64Decode, "c2VsZWN0!!eA=="), "select");
    assert_eq!(t(T::Base64DecodeExt, "c2Vs!ZWN0"), "select");
    assert_eq!(t(T::HexDecode, "414243"), "ABC");
    assert_eq!(
        hex::encode(T::Md5.apply(b"abc").unwrap()),
        "900150983cd24fb0d6963f7d28e17f72"
    );
    assert_eq!(
        hex::encode(T::Sha256.apply(b"abc").unwrap()),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(t(T::ReplaceComments, "sel/*x*/ect/* open"), "sel ect ");
    assert_eq!(t(T::RemoveCommentsChar, "a/*b*/c--d#e"), "abcde");
    assert_eq!(t(T::EscapeSeqDecode, r"a\x41\102\n\q"), "aAB\n\\q");
    assert_eq!(
        t(T::SqlHexDecode, "select 0x414243 from 0xz"),
        "select ABC from 0xz"
    );
    assert_eq!(t(T::CssDecode, r"\6a \61vascript\:"), "javascript:");
    assert_eq!(t(T::JsDecode, r"\x3cscript\u003e\101\n"), "<script>A\n");
    assert_eq!(t(T::JsDecodeExt, r"\u{3c}x\u{1F600}"), "<x\u{1F600}");
    assert_eq!(t(T::NormalizePath, "/a//b/./c/../d/"), "/a/b/d/");
    assert_eq!(t(T::NormalizePath, "../x/./y"), "../x/y");
    assert_eq!(t(T::NormalizePathWin, "\\a\\..\\b"), "/b");
    assert_eq!(t(T::RemoveNulls, "a\0b"), "ab");
    assert_eq!(t(T::ReplaceNulls, "a\0b"), "a b");
    assert_eq!(t(T::RemoveWhitespace, " a b\tc\n"), "abc");
    assert_eq!(t(T::Utf8ToUnicode, "aé"), "a%u00e9");
    assert_eq!(t(T::Trim, "  a b \t"), "a b");
    assert_eq!(t(T::TrimLeft, "  a "), "a ");
    assert_eq!(t(T::TrimRight, "  a "), "  a");
}

#[test]
fn unchanged_input_is_borrowed() {
    for kind in [
        T::None,
        T::Lowercase,
        T::UrlDecode,
        T::HtmlEntityDecode,
        T::Trim,
    ] {
        assert!(
            matches!(apply_chain(&[kind], b"plain"), Cow::Borrowed(_)),
            "{kind:?}"
        );
    }
}

#[test]
fn no_transformation_panics_on_awkward_input() {
    let inputs: [&[u8]; 8] = [
        b"",
        b"%",
        b"%u12",
        b"\\",
        b"&#",
        b"&#x110000;",
        b"\xff\xfe\xc2",
        b"0x",
    ];
    for kind in T::ALL {
        for input in inputs {
            let _ = kind.apply(input);
        }
    }
}
