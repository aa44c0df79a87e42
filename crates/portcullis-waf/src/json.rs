//! JSON body inspection without building a `serde_json::Value`.
//!
//! `JsonBody` with `MatchPattern: All` inspects every key and every leaf value
//! of the document. Parsing into a `Value` allocates a map per object and a
//! `String` per string, and the old walk then copied every string again. This
//! module drives serde_json's parser with a visitor that records the keys and
//! leaves as it meets them, borrowing every string that has no escape sequence
//! straight from the body. The text of a number, a boolean or `null` is the
//! same as `Value`'s `Display` gives, so a rule sees the same bytes as before.
//!
//! One difference from a `Value`: a key repeated in one object has all its
//! values inspected, where a `Value` keeps only the last one. An attacker can
//! then not hide a payload behind a later duplicate key.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// One key or leaf value of a JSON document, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item<'a> {
    /// An object key (`true`) or a leaf value (`false`).
    pub(crate) is_key: bool,
    /// Its text: a string unescaped, any other leaf as JSON prints it.
    pub(crate) text: Cow<'a, [u8]>,
}

/// The keys and leaf values of `body`, or `None` when it is not one valid JSON
/// document (trailing whitespace is allowed; serde_json's nesting limit of 128
/// applies).
pub(crate) fn items(body: &[u8]) -> Option<Vec<Item<'_>>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MatchScope;
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
}
