//! The `JsonBody` scanner on arbitrary bytes: it must not panic, must accept
//! exactly the documents serde_json accepts, and, on a document without
//! repeated keys, must give the keys and leaves of serde_json's `Value`
//! (strings unescaped, numbers as serde_json prints them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_waf::json::items;
use serde_json::Value;

fn walk(value: &Value, out: &mut Vec<(bool, Vec<u8>)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                out.push((true, k.as_bytes().to_vec()));
                walk(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
        Value::String(s) => out.push((false, s.as_bytes().to_vec())),
        other => out.push((false, other.to_string().into_bytes())),
    }
}

fuzz_target!(|data: &[u8]| {
    let got = items(data);
    let parsed = serde_json::from_slice::<Value>(data);
    assert_eq!(got.is_some(), parsed.is_ok(), "acceptance differs from serde_json");
    if let (Some(got), Ok(value)) = (got, parsed) {
        let mut got: Vec<(bool, Vec<u8>)> = got
            .into_iter()
            .map(|item| (item.is_key, item.text.into_owned()))
            .collect();
        let mut want = Vec::new();
        walk(&value, &mut want);
        // A `Value` keeps one value of a repeated key; compare only when no
        // key was dropped (the Value's map may also reorder keys).
        if got.len() == want.len() {
            got.sort();
            want.sort();
            assert_eq!(got, want, "items differ from a Value walk");
        }
    }
});
