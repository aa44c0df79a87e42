//! Tests of the JSON body scanner, against the serde_json visitor it replaced.

/// The previous implementation (serde_json's parser driving a visitor), kept
/// as the reference model the scanner is compared with.
mod reference {
    use std::borrow::Cow;
    use std::fmt;

    use super::super::Item;
    use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

    /// The keys and leaf values of `body`, or `None` when it is not one valid JSON
    /// document (trailing whitespace is allowed; serde_json's nesting limit of 128
    /// applies).
    pub(super) fn items(body: &[u8]) -> Option<Vec<Item<'_>>> {
        // About one key or value per 16 bytes of a typical document.
        let mut out = Vec::with_capacity(body.len() / 16);
        // One UTF-8 check of the whole body (fast on ASCII) instead of one per
        // string: the parser then reads a `&str` and checks no string again.
        // Invalid UTF-8 anywhere makes the document invalid either way: inside a
        // string serde_json refuses it, outside one it is a syntax error.
        let text = std::str::from_utf8(body).ok()?;
        let mut de = serde_json::Deserializer::from_str(text);
        Collect { out: &mut out }.deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(out)
    }

    /// A number as `Value`'s `Display` prints it (serde_json's own writer: no
    /// formatting machinery); a non-finite float, which parsing never yields,
    /// as `null` like `Value::from`.
    fn number_text<N: serde::Serialize>(n: N) -> Vec<u8> {
        serde_json::to_vec(&n).unwrap_or_else(|_| b"null".to_vec())
    }

    /// Pushes a value (and, inside it, every key and leaf) onto `out`.
    struct Collect<'o, 'a> {
        out: &'o mut Vec<Item<'a>>,
    }

    /// Pushes a map key onto `out`.
    struct Key<'o, 'a> {
        out: &'o mut Vec<Item<'a>>,
    }

    impl<'de> DeserializeSeed<'de> for Collect<'_, 'de> {
        type Value = ();

        fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
            de.deserialize_any(self)
        }
    }

    impl<'de> DeserializeSeed<'de> for Key<'_, 'de> {
        type Value = ();

        fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
            de.deserialize_str(self)
        }
    }

    macro_rules! leaf_visitors {
        ($push:ident) => {
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
                let text: &'static [u8] = if v { b"true" } else { b"false" };
                self.$push(Cow::Borrowed(text));
                Ok(())
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
                self.$push(Cow::Owned(number_text(v)));
                Ok(())
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
                self.$push(Cow::Owned(number_text(v)));
                Ok(())
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
                self.$push(Cow::Owned(number_text(v)));
                Ok(())
            }

            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<(), E> {
                self.$push(Cow::Borrowed(v.as_bytes()));
                Ok(())
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
                self.$push(Cow::Owned(v.as_bytes().to_vec()));
                Ok(())
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<(), E> {
                self.$push(Cow::Owned(v.into_bytes()));
                Ok(())
            }
        };
    }

    impl<'de> Collect<'_, 'de> {
        fn push_leaf(self, text: Cow<'de, [u8]>) {
            self.out.push(Item {
                is_key: false,
                text,
            });
        }
    }

    impl<'de> Key<'_, 'de> {
        fn push_key(self, text: Cow<'de, [u8]>) {
            self.out.push(Item { is_key: true, text });
        }
    }

    impl<'de> Visitor<'de> for Collect<'_, 'de> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }

        leaf_visitors!(push_leaf);

        fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
            self.push_leaf(Cow::Borrowed(b"null"));
            Ok(())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq
                .next_element_seed(Collect {
                    out: &mut *self.out,
                })?
                .is_some()
            {}
            Ok(())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while map
                .next_key_seed(Key {
                    out: &mut *self.out,
                })?
                .is_some()
            {
                map.next_value_seed(Collect {
                    out: &mut *self.out,
                })?;
            }
            Ok(())
        }
    }

    impl<'de> Visitor<'de> for Key<'_, 'de> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object key")
        }

        leaf_visitors!(push_key);

        fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
            Err(E::custom("a key cannot be null"))
        }
    }
}

use super::*;
use crate::model::MatchScope;
use proptest::prelude::*;
use serde_json::Value;

/// The old walk over a parsed `Value`, as the reference model.
fn walk(value: &Value, scope: MatchScope, out: &mut Vec<Vec<u8>>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if scope != MatchScope::Value {
                    out.push(k.as_bytes().to_vec());
                }
                walk(v, scope, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, scope, out)),
        leaf => {
            if scope != MatchScope::Key {
                out.push(match leaf {
                    Value::String(s) => s.as_bytes().to_vec(),
                    other => other.to_string().into_bytes(),
                });
            }
        }
    }
}

fn scoped(items: &[Item<'_>], scope: MatchScope) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = items
        .iter()
        .filter(|i| match scope {
            MatchScope::All => true,
            MatchScope::Key => i.is_key,
            MatchScope::Value => !i.is_key,
        })
        .map(|i| i.text.to_vec())
        .collect();
    out.sort();
    out
}

#[test]
fn same_texts_as_a_value_walk() {
    let docs = [
        r#"{"a": "x\"y", "b": [1, -2, 3.5, 1e300, true, false, null, {"c\u0041": "\u00e9"}], "n": 18446744073709551615}"#,
        r#""just a string""#,
        "42",
        "-0.0",
        "[]",
        "{}",
        r#"[[[{"k": [0.1, 2.50, 1E2, -7]}]]]"#,
        " { \"sp\" : \" a b \" } \n",
    ];
    for doc in docs {
        let value: Value = serde_json::from_str(doc).unwrap();
        let got = items(doc.as_bytes()).unwrap();
        for scope in [MatchScope::All, MatchScope::Key, MatchScope::Value] {
            let mut want = Vec::new();
            walk(&value, scope, &mut want);
            want.sort();
            assert_eq!(scoped(&got, scope), want, "{doc} {scope:?}");
        }
    }
}

#[test]
fn strings_without_escapes_are_borrowed() {
    let got = items(br#"{"plain": "text", "esc": "a\nb"}"#).unwrap();
    assert!(matches!(got[0].text, Cow::Borrowed(b"plain")));
    assert!(matches!(got[1].text, Cow::Borrowed(b"text")));
    assert_eq!(&*got[3].text, b"a\nb");
}

#[test]
fn invalid_documents_are_refused() {
    for doc in [
        "",
        "{",
        "{\"a\": }",
        "[1,]",
        "{} {}",
        "{\"a\": 1} x",
        "nul",
        "\"\\x\"",
        "{1: 2}",
    ] {
        assert!(items(doc.as_bytes()).is_none(), "{doc}");
        assert!(serde_json::from_str::<Value>(doc).is_err(), "{doc}");
    }
    for doc in [
        &b"{\"a\": \"\xff\"}"[..],
        b"{\"a\xc3\": 1}",
        b"[1]\xff",
        b"\xef\xbb\xbf[1]",
    ] {
        assert!(items(doc).is_none(), "{doc:?}");
        assert!(serde_json::from_slice::<Value>(doc).is_err(), "{doc:?}");
    }
    let deep = "[".repeat(200) + &"]".repeat(200);
    assert!(items(deep.as_bytes()).is_none());
    assert!(serde_json::from_str::<Value>(&deep).is_err());
}

#[test]
fn duplicate_keys_keep_every_value() {
    let got = items(br#"{"a": "first", "a": "second"}"#).unwrap();
    let values = scoped(&got, MatchScope::Value);
    assert_eq!(values, vec![b"first".to_vec(), b"second".to_vec()]);
}

#[test]
fn nesting_limit_is_serde_jsons() {
    for depth in [126, 127, 128, 129] {
        for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
            let doc = open.repeat(depth) + "1" + &close.repeat(depth);
            let want = serde_json::from_str::<Value>(&doc).is_ok();
            assert_eq!(items(doc.as_bytes()).is_some(), want, "{depth} {open}");
            assert_eq!(reference::items(doc.as_bytes()).is_some(), want);
        }
    }
    assert!(items(("[".repeat(127) + &"]".repeat(127)).as_bytes()).is_some());
    assert!(items(("[".repeat(128) + &"]".repeat(128)).as_bytes()).is_none());
}

#[test]
fn numbers_read_as_serde_json_prints_them() {
    let cases: [(&str, &str); 16] = [
        ("0", "0"),
        ("-0", "-0.0"),
        ("-7", "-7"),
        ("12.5", "12.5"),
        ("12.50", "12.5"),
        ("1E2", "100.0"),
        ("1.0", "1.0"),
        ("0.5", "0.5"),
        ("0.05", "0.05"),
        ("0.0000001", "1e-7"),
        ("18446744073709551615", "18446744073709551615"),
        ("18446744073709551616", "1.8446744073709552e+19"),
        ("-9223372036854775808", "-9223372036854775808"),
        ("-9223372036854775809", "-9.223372036854776e+18"),
        ("123456789012345.6", "123456789012345.6"),
        ("1234567890123456.7", "1234567890123456.8"),
    ];
    for (doc, want) in cases {
        let got = items(doc.as_bytes()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(std::str::from_utf8(&got[0].text).unwrap(), want, "{doc}");
        assert_eq!(reference::items(doc.as_bytes()).unwrap(), got, "{doc}");
    }
    assert!(items(b"1e400").is_none());
    assert!(serde_json::from_str::<Value>("1e400").is_err());
}

/// JSON text with the forms a serializer never writes: escapes of every
/// kind (lone surrogates included), exponents, trailing zeros, long
/// numbers, random whitespace, duplicate keys.
fn json_text() -> impl Strategy<Value = String> {
    let ws = "[ \t\r\n]{0,2}";
    let number = "-?(0|[1-9][0-9]{0,21})(\\.[0-9]{1,18})?([eE][+-]?[0-9]{1,3})?";
    let string = "\"([a-zA-Z0-9 <>'=&%;]|é|💥|\\\\[nrtbf\"\\\\/]|\\\\u[0-9a-fA-FdD]{4}|\\\\u[dD][89abAB][0-9a-f]{2}\\\\u[dD][c-fC-F][0-9a-f]{2}){0,8}\"";
    let leaf = prop_oneof![
        number.prop_map(String::from),
        string.prop_map(String::from),
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just("null".to_owned()),
    ];
    leaf.prop_recursive(5, 48, 6, move |inner| {
        prop_oneof![
            (prop::collection::vec((inner.clone(), ws, ws), 0..6)).prop_map(|items| {
                let body: Vec<String> = items
                    .into_iter()
                    .map(|(v, a, b)| format!("{a}{v}{b}"))
                    .collect();
                format!("[{}]", body.join(","))
            }),
            (prop::collection::vec((string.prop_map(String::from), inner, ws, ws), 0..6)).prop_map(
                |entries| {
                    let body: Vec<String> = entries
                        .into_iter()
                        .map(|(k, v, a, b)| format!("{a}{k}{b}:{a}{v}{b}"))
                        .collect();
                    format!("{{{}}}", body.join(","))
                }
            ),
        ]
    })
    .prop_flat_map(move |doc| (ws, Just(doc), ws))
    .prop_map(|(a, doc, b)| format!("{a}{doc}{b}"))
}

/// Arbitrary `serde_json::Value`s (unique keys), for the comparison
/// with a walk of the parsed tree.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        (-1e6..1e6f64).prop_map(|f| Value::from((f * 100.0).round() / 100.0)),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    /// The scanner gives exactly the previous serde_json visitor's items
    /// (text, kind and order), and refuses exactly what it refused.
    #[test]
    fn scanner_matches_serde_json_on_json_text(doc in json_text()) {
        let got = items(doc.as_bytes());
        prop_assert_eq!(&got, &reference::items(doc.as_bytes()), "{}", doc);
        prop_assert_eq!(got.is_some(), serde_json::from_str::<Value>(&doc).is_ok(), "{}", doc);
    }

    /// Cut, spliced or corrupted documents: accepted and read exactly as
    /// serde_json does.
    #[test]
    fn scanner_matches_serde_json_on_damaged_text(
        doc in json_text(),
        at in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        byte in prop::sample::select(&b"{}[]\",:\\ -0.e1tnf\x01\xff"[..]),
        how in 0..3u8,
    ) {
        let mut bytes = doc.into_bytes();
        if !bytes.is_empty() {
            let i = at.index(bytes.len());
            match how {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => bytes.truncate(cut.index(bytes.len())),
            }
        }
        let got = items(&bytes);
        prop_assert_eq!(&got, &reference::items(&bytes), "{:?}", String::from_utf8_lossy(&bytes));
        prop_assert_eq!(got.is_some(), serde_json::from_slice::<Value>(&bytes).is_ok());
    }

    /// On any serialized `Value` (compact and pretty), the keys and leaves
    /// are those of a walk of the tree serde_json reads back (which may
    /// differ from `value` in a float's last digit), in document order.
    #[test]
    fn scanner_gives_a_value_walks_items(value in json_value()) {
        for doc in [serde_json::to_vec(&value).unwrap(), serde_json::to_vec_pretty(&value).unwrap()] {
            let mut want = Vec::new();
            ordered_walk(&serde_json::from_slice(&doc).unwrap(), &mut want);
            let got: Vec<(bool, Vec<u8>)> = items(&doc)
                .unwrap()
                .into_iter()
                .map(|i| (i.is_key, i.text.into_owned()))
                .collect();
            prop_assert_eq!(&got, &want);
        }
    }
}

/// Keys and leaves of a `Value` in the order serde_json writes them.
fn ordered_walk(value: &Value, out: &mut Vec<(bool, Vec<u8>)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                out.push((true, k.as_bytes().to_vec()));
                ordered_walk(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| ordered_walk(v, out)),
        Value::String(s) => out.push((false, s.as_bytes().to_vec())),
        other => out.push((false, other.to_string().into_bytes())),
    }
}
