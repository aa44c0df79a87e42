//! Property test: the compiled wildcard matcher agrees with a small recursive
//! reference model on random patterns and inputs.

use portcullis_iam::Pattern;
use proptest::prelude::*;

/// The reference: `*` any run of characters, `?` exactly one.
fn reference(pattern: &[char], input: &[char]) -> bool {
    match pattern.split_first() {
        None => input.is_empty(),
        Some(('*', rest)) => (0..=input.len()).any(|i| reference(rest, &input[i..])),
        Some(('?', rest)) => !input.is_empty() && reference(rest, &input[1..]),
        Some((c, rest)) => input.first() == Some(c) && reference(rest, &input[1..]),
    }
}

proptest! {
    #[test]
    fn matcher_agrees_with_reference(
        pattern in "[ab/é*?]{0,8}",
        input in "[ab/é]{0,10}",
    ) {
        let p: Vec<char> = pattern.chars().collect();
        let i: Vec<char> = input.chars().collect();
        prop_assert_eq!(Pattern::new(&pattern).matches(&input), reference(&p, &i));
    }

    #[test]
    fn case_insensitive_matcher_agrees_with_lowercased_reference(
        pattern in "[aAbB:*?]{0,8}",
        input in "[aAbB:]{0,10}",
    ) {
        let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
        let i: Vec<char> = input.to_ascii_lowercase().chars().collect();
        prop_assert_eq!(Pattern::case_insensitive(&pattern).matches(&input), reference(&p, &i));
    }
}
