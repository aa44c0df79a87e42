//! The text-shaping transformations: white space, command lines, comments,
//! paths and trimming.

use std::borrow::Cow;

use super::scan::{contains, find, is_space};

pub(super) fn compress_white_space(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    let mut in_space = false;
    while i < input.len() {
        let b = input[i];
        let (space, width) = if is_space(b) {
            (true, 1)
        } else if b == 0xc2 && input.get(i + 1) == Some(&0xa0) {
            (true, 2)
        } else {
            (false, 1)
        };
        if space {
            if !in_space {
                out.push(b' ');
            }
            in_space = true;
        } else {
            out.push(b);
            in_space = false;
        }
        i += width;
    }
    (out != input).then_some(out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum CmdFlavour {
    Generic,
    Windows,
    Unix,
}

pub(super) fn cmd_line(input: &[u8], flavour: CmdFlavour) -> Vec<u8> {
    let unix_ifs: Cow<'_, [u8]> = if flavour == CmdFlavour::Unix {
        let mut s = input.to_vec();
        for pattern in [&b"${IFS}"[..], b"$IFS"] {
            s = replace_all(&s, pattern, b" ");
        }
        Cow::Owned(s)
    } else {
        Cow::Borrowed(input)
    };
    let mut out: Vec<u8> = Vec::with_capacity(input.len());
    for &b in unix_ifs.iter() {
        let b = match (b, flavour) {
            (b'\\', CmdFlavour::Windows) => b'/',
            (b'\\' | b'"' | b'\'', _) => continue,
            (b'^', CmdFlavour::Unix) => b'^',
            (b'^', _) => continue,
            (b',' | b';', _) => b' ',
            (b, _) if is_space(b) => b' ',
            (b, _) => b.to_ascii_lowercase(),
        };
        if b == b' ' && out.last() == Some(&b' ') {
            continue;
        }
        if b == b'/' || b == b'(' {
            while out.last() == Some(&b' ') {
                out.pop();
            }
        }
        out.push(b);
    }
    out
}

fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

pub(super) fn replace_comments(input: &[u8]) -> Option<Vec<u8>> {
    if !contains(input, b"/*") {
        return None;
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i..].starts_with(b"/*") {
            out.push(b' ');
            match find(&input[i + 2..], b"*/") {
                Some(end) => i += 2 + end + 2,
                None => break,
            }
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    Some(out)
}

pub(super) fn remove_comments_char(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let rest = &input[i..];
        if rest.starts_with(b"/*") || rest.starts_with(b"*/") || rest.starts_with(b"--") {
            i += 2;
        } else if rest[0] == b'#' {
            i += 1;
        } else {
            out.push(rest[0]);
            i += 1;
        }
    }
    (out.len() != input.len()).then_some(out)
}

pub(super) fn normalize_path(input: &[u8], windows: bool) -> Option<Vec<u8>> {
    let source: Cow<'_, [u8]> = if windows && input.contains(&b'\\') {
        Cow::Owned(
            input
                .iter()
                .map(|&b| if b == b'\\' { b'/' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(input)
    };
    let absolute = source.first() == Some(&b'/');
    let trailing = source.len() > 1 && source.last() == Some(&b'/');
    let mut segments: Vec<&[u8]> = Vec::new();
    // `..` segments that could not be resolved stay, at the start only.
    let mut leading_up = 0usize;
    for segment in source.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                if segments.pop().is_none() && !absolute {
                    leading_up += 1;
                }
            }
            s => segments.push(s),
        }
    }
    let mut out = Vec::with_capacity(source.len());
    if absolute {
        out.push(b'/');
    }
    let mut first = true;
    for _ in 0..leading_up {
        if !first {
            out.push(b'/');
        }
        out.extend_from_slice(b"..");
        first = false;
    }
    for segment in segments {
        if !first {
            out.push(b'/');
        }
        out.extend_from_slice(segment);
        first = false;
    }
    if trailing && !first {
        out.push(b'/');
    }
    (out != input).then_some(out)
}

pub(super) fn remove_whitespace(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if is_space(input[i]) {
            i += 1;
        } else if input[i] == 0xc2 && input.get(i + 1) == Some(&0xa0) {
            i += 2;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    (out.len() != input.len()).then_some(out)
}

pub(super) fn trim(input: &[u8], left: bool, right: bool) -> Option<Vec<u8>> {
    let mut start = 0;
    let mut end = input.len();
    if left {
        while start < end && (is_space(input[start]) || input[start] == 0) {
            start += 1;
        }
    }
    if right {
        while end > start && (is_space(input[end - 1]) || input[end - 1] == 0) {
            end -= 1;
        }
    }
    (start != 0 || end != input.len()).then(|| input[start..end].to_vec())
}
