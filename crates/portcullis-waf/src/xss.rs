//! The second XSS detector: what a browser would run that libinjection's
//! HTML5 tokenizer misses.
//!
//! libinjection reads the input as HTML in five contexts and flags tags and
//! attributes from its blacklists. It misses payloads whose markup is split
//! or nested (`<scr<script>ipt>`), script URLs with whitespace or entities
//! inside the scheme (`jav&#x09;ascript:`), and script that breaks out of a
//! quoted JavaScript string (`'";alert(1)//`). This detector works on a
//! normalised copy of the input, the way a browser's URL and HTML parsers
//! read it: ASCII lower-cased, character references decoded (numeric ones
//! and the named ones used for evasion), NUL, tab, CR and LF dropped. It
//! flags:
//!
//! - a dangerous element anywhere: `<script`, `<iframe`, `<object`,
//!   `<embed`, `<applet`, `<meta`, `<base`, `<svg`, `<math`, `<frame`,
//!   `<link`, `<style`, `<form`, `<isindex`, `<template`, `<xss`, and the
//!   closing `</script`;
//! - an event handler attribute (`onerror=`, `onload =`, one of the
//!   HTML/SVG event names in `EVENTS`) after a tag opening, a quote, a
//!   slash or whitespace;
//! - a script URL (`javascript:`, `vbscript:`, `livescript:`, `data:text/html`,
//!   `data:image/svg`, `data:application/x`) where a URL starts: at the
//!   start of the value, after `=`, a quote, `(` or whitespace, with code
//!   right after the colon;
//! - JavaScript after a broken-out string: a quote, then only `;`, `)`,
//!   `+`, `-`, `,`, `|`, `&` or whitespace, then a call of one of `SINKS`
//!   (`alert(`, `eval(`, `document.cookie`, ...);
//! - CSS script: `expression(` and `-moz-binding` in a `style`.
//!
//! It allocates the normalised copy only when the input has a byte some rule
//! needs (`worth_normalising`).

/// Elements that run script, load a document or change how the page loads,
/// after `<` (lower case).
const ELEMENTS: &[&[u8]] = &[
    b"script",
    b"/script",
    b"iframe",
    b"object",
    b"embed",
    b"applet",
    b"meta",
    b"base",
    b"svg",
    b"math",
    b"frame",
    b"link",
    b"style",
    b"form",
    b"isindex",
    b"template",
    b"xss",
];

/// Event handler attribute names (lower case), HTML's and SVG's.
const EVENTS: &[&[u8]] = &[
    b"onabort",
    b"onactivate",
    b"onafterprint",
    b"onanimationend",
    b"onanimationiteration",
    b"onanimationstart",
    b"onauxclick",
    b"onbeforecopy",
    b"onbeforecut",
    b"onbeforeinput",
    b"onbeforepaste",
    b"onbeforeprint",
    b"onbeforeunload",
    b"onbegin",
    b"onblur",
    b"onbounce",
    b"oncanplay",
    b"oncanplaythrough",
    b"onchange",
    b"onclick",
    b"onclose",
    b"oncontextmenu",
    b"oncopy",
    b"oncuechange",
    b"oncut",
    b"ondblclick",
    b"ondrag",
    b"ondragend",
    b"ondragenter",
    b"ondragleave",
    b"ondragover",
    b"ondragstart",
    b"ondrop",
    b"ondurationchange",
    b"onend",
    b"onended",
    b"onerror",
    b"onfinish",
    b"onfocus",
    b"onfocusin",
    b"onfocusout",
    b"onformdata",
    b"onfullscreenchange",
    b"onhashchange",
    b"oninput",
    b"oninvalid",
    b"onkeydown",
    b"onkeypress",
    b"onkeyup",
    b"onload",
    b"onloadeddata",
    b"onloadedmetadata",
    b"onloadstart",
    b"onmessage",
    b"onmousedown",
    b"onmouseenter",
    b"onmouseleave",
    b"onmousemove",
    b"onmouseout",
    b"onmouseover",
    b"onmouseup",
    b"onmousewheel",
    b"onpageshow",
    b"onpaste",
    b"onpause",
    b"onplay",
    b"onplaying",
    b"onpointerdown",
    b"onpointerenter",
    b"onpointerleave",
    b"onpointermove",
    b"onpointerout",
    b"onpointerover",
    b"onpointerup",
    b"onpopstate",
    b"onprogress",
    b"onratechange",
    b"onrepeat",
    b"onreset",
    b"onresize",
    b"onscroll",
    b"onsearch",
    b"onseeked",
    b"onseeking",
    b"onselect",
    b"onselectionchange",
    b"onselectstart",
    b"onshow",
    b"onstart",
    b"onstorage",
    b"onsubmit",
    b"onsuspend",
    b"ontimeupdate",
    b"ontoggle",
    b"ontouchend",
    b"ontouchmove",
    b"ontouchstart",
    b"ontransitionend",
    b"onunload",
    b"onvolumechange",
    b"onwaiting",
    b"onwheel",
];

/// URL schemes that run script or render a document.
const SCHEMES: &[&[u8]] = &[
    b"javascript:",
    b"vbscript:",
    b"livescript:",
    b"data:text/html",
    b"data:image/svg",
    b"data:application/x",
];

/// Calls and properties an injected script uses.
const SINKS: &[&[u8]] = &[
    b"alert(",
    b"alert`",
    b"prompt(",
    b"prompt`",
    b"confirm(",
    b"confirm`",
    b"eval(",
    b"document.cookie",
    b"document.write",
    b"document.location",
    b"window.location",
    b"location.href",
    b"string.fromcharcode",
    b"settimeout(",
    b"setinterval(",
    b"fetch(",
    b"atob(",
    b"import(",
    b"top[",
    b"self[",
    b"window[",
];

/// Whether `input` holds script a browser would run, by the rules of the
/// module documentation.
pub(crate) fn is_xss(input: &[u8]) -> bool {
    if !worth_normalising(input) {
        return false;
    }
    let text = normalise(input);
    tags(&text) || events(&text) || schemes(&text) || sinks(&text) || css(&text)
}

/// Whether some rule can match `input`: each needs, in the raw input, a
/// byte of its own or a character reference that `normalise` decodes (so
/// `&fields=` in a query is not one). Tags need `<`, script URLs `:`, broken-out strings a
/// quote or a backtick, event handlers `on` (NUL, tab, CR and LF between
/// are dropped), CSS script `:` or `expression(`. Skipping the rest changes
/// no verdict (a test checks it on the corpora) and allocates nothing.
fn worth_normalising(input: &[u8]) -> bool {
    let dropped = |b: &u8| matches!(b, 0 | b'\t' | b'\n' | b'\r');
    input.iter().enumerate().any(|(i, &b)| match b {
        b'<' | b':' | b'\'' | b'"' | b'`' => true,
        b'&' => reference(&input[i..]).is_some(),
        b'o' | b'O' => input[i + 1..]
            .iter()
            .find(|b| !dropped(b))
            .is_some_and(|&next| next | 0x20 == b'n'),
        b'(' => {
            let before: Vec<u8> = input[..i]
                .iter()
                .filter(|b| !dropped(b))
                .map(u8::to_ascii_lowercase)
                .collect();
            before.ends_with(b"expression")
        }
        _ => false,
    })
}

/// The input as the rules read it: ASCII lower case, character references
/// decoded, NUL, tab, CR and LF removed.
fn normalise(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'&'
            && let Some((decoded, used)) = reference(&input[i..])
        {
            push_normalised(&mut out, decoded);
            i += used;
            continue;
        }
        push_normalised(&mut out, b);
        i += 1;
    }
    out
}

fn push_normalised(out: &mut Vec<u8>, b: u8) {
    if !matches!(b, 0 | b'\t' | b'\n' | b'\r') {
        out.push(b.to_ascii_lowercase());
    }
}

/// The byte a character reference at the start of `input` stands for (ASCII
/// only; others decode to a placeholder that no rule matches), and its
/// length. The `;` is optional, as in browsers for numeric references.
fn reference(input: &[u8]) -> Option<(u8, usize)> {
    const NAMED: &[(&[u8], u8)] = &[
        (b"&tab;", b'\t'),
        (b"&newline;", b'\n'),
        (b"&colon;", b':'),
        (b"&lpar;", b'('),
        (b"&rpar;", b')'),
        (b"&quot;", b'"'),
        (b"&apos;", b'\''),
        (b"&lt;", b'<'),
        (b"&gt;", b'>'),
        (b"&sol;", b'/'),
        (b"&equals;", b'='),
        (b"&period;", b'.'),
        (b"&grave;", b'`'),
        (b"&amp;", b'&'),
    ];
    if input.get(1) != Some(&b'#') {
        // The names are in lower case: comparing the first letter first
        // turns most `&` of a query string (`&fields=`) away at once.
        let first = input.get(1)?.to_ascii_lowercase();
        return NAMED
            .iter()
            .find(|(name, _)| {
                name[1] == first
                    && input.len() >= name.len()
                    && input[..name.len()].eq_ignore_ascii_case(name)
            })
            .map(|&(name, b)| (b, name.len()));
    }
    let (radix, start) = match input.get(2) {
        Some(b'x' | b'X') => (16, 3),
        _ => (10, 2),
    };
    let digits = input[start..]
        .iter()
        .take_while(|b| {
            if radix == 16 {
                b.is_ascii_hexdigit()
            } else {
                b.is_ascii_digit()
            }
        })
        .count();
    if digits == 0 {
        return None;
    }
    let value = input[start..start + digits]
        .iter()
        .try_fold(0u32, |acc, &b| {
            let digit = (b as char).to_digit(radix)?;
            acc.checked_mul(radix)?.checked_add(digit)
        })
        .unwrap_or(u32::MAX);
    let mut used = start + digits;
    if input.get(used) == Some(&b';') {
        used += 1;
    }
    let decoded = u8::try_from(value)
        .ok()
        .filter(u8::is_ascii)
        .unwrap_or(0x80);
    Some((decoded, used))
}

fn starts_with_any(text: &[u8], names: &[&[u8]]) -> bool {
    names.iter().any(|name| text.starts_with(name))
}

/// `<` then a dangerous element whose name ends there.
fn tags(text: &[u8]) -> bool {
    text.iter().enumerate().any(|(i, &b)| {
        b == b'<'
            && ELEMENTS.iter().any(|name| {
                let rest = &text[i + 1..];
                rest.starts_with(name)
                    && rest
                        .get(name.len())
                        .is_none_or(|&end| !end.is_ascii_alphanumeric() && end != b'-')
            })
    })
}

/// An event handler name after a delimiter, then optional spaces and `=`.
fn events(text: &[u8]) -> bool {
    text.windows(2).enumerate().any(|(i, w)| {
        w == b"on"
            && (i == 0 || matches!(text[i - 1], b'<' | b' ' | b'"' | b'\'' | b'/' | b'`' | b';'))
            && EVENTS.iter().any(|event| {
                let rest = &text[i..];
                rest.starts_with(event) && {
                    let after = &rest[event.len()..];
                    let spaces = after.iter().take_while(|&&b| b == b' ').count();
                    after.get(spaces) == Some(&b'=')
                }
            })
    })
}

/// A script URL where a URL starts (the start, or after `=`, a quote, `(`
/// or `>`, spaces aside), with code right after its colon (so prose such as
/// "JavaScript: The Good Parts" is not one). Spaces inside the scheme are
/// skipped, as browsers skip tabs and newlines there.
fn schemes(text: &[u8]) -> bool {
    let mut before: Option<u8> = None;
    for (i, &b) in text.iter().enumerate() {
        if b == b' ' {
            continue;
        }
        let url_start =
            before.is_none_or(|c| matches!(c, b'=' | b'"' | b'\'' | b'(' | b'`' | b'>'));
        if url_start
            && SCHEMES
                .iter()
                .any(|scheme| spaced_prefix_then_code(&text[i..], scheme))
        {
            return true;
        }
        before = Some(b);
    }
    false
}

/// Whether `text` starts with `scheme`, spaces allowed between its bytes,
/// and a byte other than a space follows.
fn spaced_prefix_then_code(text: &[u8], scheme: &[u8]) -> bool {
    let mut matched = 0;
    let mut j = 0;
    while j < text.len() && matched < scheme.len() {
        if text[j] == scheme[matched] {
            matched += 1;
        } else if text[j] != b' ' {
            return false;
        }
        j += 1;
    }
    matched == scheme.len() && text.get(j).is_some_and(|&b| b != b' ')
}

/// A quote, then only statement punctuation and spaces, then a sink.
fn sinks(text: &[u8]) -> bool {
    text.iter().enumerate().any(|(i, &b)| {
        matches!(b, b'"' | b'\'' | b'`') && {
            let rest = &text[i + 1..];
            let skip = rest
                .iter()
                .take_while(|&&b| {
                    matches!(b, b';' | b')' | b'+' | b'-' | b',' | b'|' | b'&' | b' ')
                })
                .count();
            skip > 0 && starts_with_any(&rest[skip..], SINKS)
        }
    })
}

/// CSS that runs script in old browsers.
fn css(text: &[u8]) -> bool {
    let has = |needle: &[u8]| text.windows(needle.len()).any(|w| w == needle);
    has(b"style") && (has(b"expression(") || has(b"-moz-binding"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_payloads_libinjection_misses() {
        for attack in [
            &b"<scr<script>ipt>alert(1)</scr<script>ipt>"[..],
            b"'\";alert('xss)//",
            b"<a href=\"about:<script>document.cookie=true;</script>\">",
            b"<img src=\"jav\tascript:alert(1)\">",
            b"<img src=\"jav&#x09;ascript:alert(1)\">",
            b"<a href=\"&#106;avascript:alert(1)\">x</a>",
            b"<a href=\"java&Tab;script&colon;alert(1)\">",
            b"\" onmouseover=alert(1) x=\"",
            b"<body onload =alert(1)>",
            b"<div style=\"width: expression(alert(1))\">",
            b"javascript:alert(document.domain)",
            b"x' + alert(1) + '",
            b"<iframe src=data:text/html;base64,PHNjcmlwdD4=>",
        ] {
            assert!(is_xss(attack), "{}", String::from_utf8_lossy(attack));
        }
    }

    #[test]
    fn ordinary_text() {
        for text in [
            &b"JavaScript: The Good Parts"[..],
            b"Learn javascript: basics",
            b"Jane O'Neil",
            b"rock 'n' roll",
            b"price < 5 and size > 3",
            b"onion=3&online=true",
            b"customer=C-1001&fields=points",
            b"{\"note\":\"Please leave at the door.\"}",
            b"I'd say: \"alert me\"",
            b"a <b> tag",
            b"time 10:30, ratio 1:2",
            b"see https://example.com/a?b=c&d=e",
        ] {
            assert!(!is_xss(text), "{}", String::from_utf8_lossy(text));
        }
    }

    /// Every line of libinjection's samples, raw and URL-decoded, and
    /// built fragments: where the gate skips, the rules find nothing.
    #[test]
    fn the_gate_skips_only_what_no_rule_flags() {
        let rules = |input: &[u8]| {
            let text = normalise(input);
            tags(&text) || events(&text) || schemes(&text) || sinks(&text) || css(&text)
        };
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/corpora/libinjection");
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries {
                let text = std::fs::read(entry.unwrap().path()).unwrap();
                for line in text.split(|&b| b == b'\n') {
                    inputs.push(line.to_vec());
                    let plus_as_space: Vec<u8> = line
                        .iter()
                        .map(|&b| if b == b'+' { b' ' } else { b })
                        .collect();
                    let decoded: Vec<u8> =
                        percent_encoding::percent_decode(&plus_as_space).collect();
                    inputs.push(decoded);
                }
            }
        }
        let pieces: [&[u8]; 16] = [
            b"o",
            b"\0n",
            b"n",
            b"load",
            b"error",
            b"=",
            b"&#",
            b"x3c;",
            b"&lt;",
            b"expressio\tn",
            b"(",
            b"script",
            b"java",
            b"\tscript",
            b"alert(1)",
            b" ",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..50_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = 1 + (state % 7) as usize;
            inputs.push(
                (0..n)
                    .map(|k| pieces[((state >> (k * 4)) % 16) as usize])
                    .collect::<Vec<_>>()
                    .concat(),
            );
        }
        let mut skipped = 0;
        for input in &inputs {
            if !worth_normalising(input) {
                skipped += 1;
                assert!(!rules(input), "{}", String::from_utf8_lossy(input));
            }
        }
        assert!(skipped > 1_000, "{skipped}");
    }

    #[test]
    fn references_decode_as_browsers_read_them() {
        assert_eq!(normalise(b"&#x6A;&#97&Tab;&colon;A"), b"ja:a");
        assert_eq!(normalise(b"&#99999999999;x"), b"\x80x");
        assert_eq!(normalise(b"&unknown; &#;"), b"&unknown; &#;");
        // Every named reference, in any case (tab and newline are then
        // dropped); a name's first letter alone or another letter is not one.
        assert_eq!(
            normalise(b"&TAB;&NewLine;&COLON;&LPar;&rpar;&QUOT;&Apos;&LT;&gt;&SOL;&Equals;&PERIOD;&Grave;&AMP;"),
            b":()\"'<>/=.`&"
        );
        assert_eq!(normalise(b"&t &f &"), b"&t &f &");
    }
}
