//! IAM wildcard patterns: `*` matches any run of characters (`/` and `:`
//! included), `?` matches exactly one character.

use std::fmt;

/// A wildcard pattern, compiled once when its policy is loaded.
///
/// `*` matches any sequence of characters, including none and including `/`;
/// `?` matches exactly one character. Matching is case-sensitive, as for ARNs,
/// or ASCII case-insensitive, as for action names.
///
/// ```
/// use portcullis_iam::Pattern;
///
/// let pattern = Pattern::new("arn:aws:execute-api:*:*:abc123/prod/GET/pets/*");
/// assert!(pattern.matches("arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets/1/toys"));
/// assert!(!pattern.matches("arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/pets/1"));
/// assert!(Pattern::new("pets/?").matches("pets/7"));
/// assert!(!Pattern::new("pets/?").matches("pets/77"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    source: Box<str>,
    kind: Kind,
    case_insensitive: bool,
}

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    /// `*`: matches everything.
    Any,
    /// No wildcard at all.
    Exact,
    /// `prefix*` with no other wildcard.
    Prefix(Box<str>),
    /// Only `*` wildcards, case-sensitive: `prefix*middle*...*suffix`, matched
    /// exactly and in linear time by finding each middle literal leftmost.
    Segments {
        prefix: Box<str>,
        middles: Box<[Box<str>]>,
        suffix: Box<str>,
    },
    /// Anything else: matched by the greedy two-pointer algorithm.
    Glob,
}

impl Pattern {
    /// Compiles a case-sensitive pattern (ARNs, condition values).
    #[must_use]
    pub fn new(source: &str) -> Self {
        Self::compile(source, false)
    }

    /// Compiles an ASCII case-insensitive pattern (action names).
    #[must_use]
    pub fn case_insensitive(source: &str) -> Self {
        Self::compile(source, true)
    }

    fn compile(source: &str, case_insensitive: bool) -> Self {
        let wildcards = source.bytes().filter(|b| *b == b'*' || *b == b'?').count();
        let kind = if source.bytes().all(|b| b == b'*') && !source.is_empty() {
            Kind::Any
        } else if wildcards == 0 {
            Kind::Exact
        } else if wildcards == 1 && source.ends_with('*') {
            Kind::Prefix(source[..source.len() - 1].into())
        } else if !case_insensitive && !source.contains('?') {
            let mut parts = source.split('*');
            // `split` yields at least one part, and at least two here since the
            // pattern holds a `*`.
            let prefix = parts.next().unwrap_or_default().into();
            let mut rest: Vec<Box<str>> = parts.map(Into::into).collect();
            let suffix = rest.pop().unwrap_or_default();
            rest.retain(|m| !m.is_empty());
            Kind::Segments {
                prefix,
                middles: rest.into(),
                suffix,
            }
        } else {
            Kind::Glob
        };
        Self {
            source: source.into(),
            kind,
            case_insensitive,
        }
    }

    /// The pattern as written in the policy.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern contains a wildcard.
    #[must_use]
    pub fn has_wildcard(&self) -> bool {
        !matches!(self.kind, Kind::Exact)
    }

    /// Whether the pattern matches the whole of `input`.
    #[must_use]
    pub fn matches(&self, input: &str) -> bool {
        match &self.kind {
            Kind::Any => true,
            Kind::Exact => eq(
                self.source.as_bytes(),
                input.as_bytes(),
                self.case_insensitive,
            ),
            Kind::Prefix(prefix) => {
                input.len() >= prefix.len()
                    && eq(
                        prefix.as_bytes(),
                        &input.as_bytes()[..prefix.len()],
                        self.case_insensitive,
                    )
            }
            Kind::Segments {
                prefix,
                middles,
                suffix,
            } => segments(input, prefix, middles, suffix),
            Kind::Glob => glob(
                self.source.as_bytes(),
                input.as_bytes(),
                self.case_insensitive,
            ),
        }
    }
}

fn eq(a: &[u8], b: &[u8], case_insensitive: bool) -> bool {
    eq_from_end(a, b) || (case_insensitive && a.eq_ignore_ascii_case(b))
}

/// Byte equality, compared from the end eight bytes at a time. Policy ARNs
/// share long prefixes (`arn:aws:execute-api:us-east-1:123456789012:`) and
/// differ in their tails (API, stage, method, path), so a mismatch shows up
/// in the first word compared.
fn eq_from_end(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |s: &[u8], end: usize| -> u64 {
        let bytes: [u8; 8] = s[end - 8..end].try_into().unwrap_or([0; 8]);
        u64::from_ne_bytes(bytes)
    };
    let mut end = a.len();
    while end >= 8 {
        if word(a, end) != word(b, end) {
            return false;
        }
        end -= 8;
    }
    a[..end].iter().zip(&b[..end]).all(|(x, y)| x == y)
}

fn byte_eq(a: u8, b: u8, case_insensitive: bool) -> bool {
    a == b || (case_insensitive && a.eq_ignore_ascii_case(&b))
}

/// The length of the UTF-8 character that starts with `first`.
fn char_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Star-only matching: the prefix and suffix are anchored, and each middle
/// literal is taken at its leftmost occurrence, which is optimal for `*`.
fn segments(input: &str, prefix: &str, middles: &[Box<str>], suffix: &str) -> bool {
    if input.len() < prefix.len() + suffix.len()
        || !eq_from_end(prefix.as_bytes(), &input.as_bytes()[..prefix.len()])
        || !eq_from_end(
            suffix.as_bytes(),
            &input.as_bytes()[input.len() - suffix.len()..],
        )
    {
        return false;
    }
    // The suffix takes the end; the middles must fit in what is before it.
    // Both ends matched whole UTF-8 strings, so these are char boundaries.
    let Some(mut rest) = input.get(prefix.len()..input.len() - suffix.len()) else {
        return false;
    };
    for middle in middles {
        match find(rest.as_bytes(), middle.as_bytes()) {
            // `at + middle.len()` ends a match of a whole UTF-8 string, so it
            // is a character boundary.
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// The first position of `needle` in `haystack`. ARN segments are short, so
/// a first-byte scan beats setting up a Two-Way searcher.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    if haystack.len() < needle.len() {
        return None;
    }
    let last_start = haystack.len() - needle.len();
    let mut at = 0;
    while at <= last_start {
        at += haystack[at..=last_start].iter().position(|&b| b == first)?;
        // A byte loop: the rest of a segment is a few bytes, too short to be
        // worth a call to `memcmp`.
        if haystack[at + 1..at + needle.len()]
            .iter()
            .zip(rest)
            .all(|(a, b)| a == b)
        {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// Greedy wildcard matching with one backtrack point: linear in practice,
/// `O(pattern × input)` in the worst case, never exponential.
///
/// Both sides are valid UTF-8 (they come from `&str`), so `?` steps over one
/// whole character and a `*` retry resumes on a character boundary.
fn glob(pattern: &[u8], input: &[u8], case_insensitive: bool) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < input.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, i));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += char_len(input[i]);
                    continue;
                }
                c if byte_eq(c, input[i], case_insensitive) => {
                    p += 1;
                    i += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((star_p, star_i)) => {
                let next = star_i + char_len(input[star_i]);
                star = Some((star_p, next));
                p = star_p + 1;
                i = next;
            }
            None => return false,
        }
    }
    // `i` may overshoot on a truncated character only if the input was not
    // UTF-8, which a `&str` rules out.
    if i > input.len() {
        return false;
    }
    pattern[p..].iter().all(|b| *b == b'*')
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.source)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything/at/all", true),
            ("**", "x", true),
            ("", "", true),
            ("", "a", false),
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("abc", "ab", false),
            ("a*", "a", true),
            ("a*", "abc/def", true),
            ("a*", "b", false),
            ("*c", "abc", true),
            ("*c", "abd", false),
            ("a*c", "ac", true),
            ("a*c", "a/b/c", true),
            ("a*c", "a/b/cd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "abbc", false),
            ("a?c", "aéc", true),
            ("?", "é", true),
            ("??", "é", false),
            ("*/GET/*", "api/prod/GET/pets/1", true),
            ("*/GET/*", "api/prod/POST/pets/1", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXcYb", false),
            ("a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            ("*?", "", false),
            ("*?", "x", true),
            ("*é*", "café au lait", true),
            ("a*b", "ab", true),
            ("a*ab", "ab", false),
            ("a*b*b", "abb", true),
            ("a*b*b", "ab", false),
            ("*ab*ab*", "xabyab", true),
            ("*ab*ab*", "xaby", false),
            ("ab*ba", "aba", false),
            ("*:abc/*/DELETE/*", "arn:x:abc/prod/DELETE/a", true),
            ("*:abc/*/DELETE/*", "arn:x:abc/prod/GET/a", false),
        ];
        for (pattern, input, expected) in cases {
            assert_eq!(
                Pattern::new(pattern).matches(input),
                *expected,
                "{pattern:?} on {input:?}"
            );
            // The general algorithm agrees with every fast path.
            assert_eq!(
                glob(pattern.as_bytes(), input.as_bytes(), false),
                *expected,
                "glob {pattern:?} on {input:?}"
            );
        }
    }

    #[test]
    fn case_rules() {
        assert!(!Pattern::new("ABC").matches("abc"));
        assert!(Pattern::case_insensitive("execute-api:Invoke").matches("EXECUTE-API:invoke"));
        assert!(Pattern::case_insensitive("execute-api:*").matches("Execute-Api:Invoke"));
        assert!(Pattern::case_insensitive("execute-api:In*e").matches("execute-api:INVOKE"));
        assert!(!Pattern::case_insensitive("execute-api:In*e").matches("execute-api:INVOK"));
    }
}
