//! Cross-site scripting: libinjection behind an exact prefilter, and the
//! second detector of `crate::xss`.

use super::form::form_values;

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
pub(super) fn xss_possible(input: &[u8]) -> bool {
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
mod tests;
