//! The values of a form-encoded input, which both detectors also inspect one by one.

/// The values of `name=value&name=value` input (a form body or a query
/// string inspected whole), which libinjection reads best on their own.
pub(super) fn form_values(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    // Most values hold no `=`: the word-at-a-time test skips the byte scan.
    let looks_like_form = crate::transform::contains_any(input, [b'='])
        && input.iter().position(|&b| b == b'=').is_some_and(|eq| {
            input[..eq]
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"_-.[]".contains(&b))
        });
    // Not a form: no pair to split (and no scan for `&`).
    looks_like_form
        .then(|| input.split(|&b| b == b'&'))
        .into_iter()
        .flatten()
        .filter_map(|pair| {
            pair.iter()
                .position(|&b| b == b'=')
                .map(|eq| &pair[eq + 1..])
        })
        .filter(|value| !value.is_empty())
}
