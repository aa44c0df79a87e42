//! SQL injection and cross-site scripting detection.
//!
//! Both use [`libinjectionrs`], a pure-Rust port of libinjection (its SQLi
//! half vendored with a faster keyword lookup, see `src/libinjection/`): the
//! tokenizer-and-fingerprint detector that ModSecurity and the OWASP Core Rule
//! Set use (`@detectSQLi`, `@detectXSS`) and the closest public analogue of
//! what AWS WAF's SQLi and XSS statements do. It was chosen over the
//! `libinjection` crate, which binds the C library and downloads and builds
//! it at build time, and over a home-grown detector, because libinjection's
//! fingerprints carry years of tuning against real attack corpora.
//!
//! - **SQLi HIGH** is libinjection as it is: the vendored detector gives the C
//!   library's verdict and fingerprint on every input of `tests/libinjection_c.rs`
//!   (libinjection's samples, the CRS 941/942 inputs and 100,000 generated
//!   ones), checked against the C library itself (PyPI's `libinjection-python`).
//!   HIGH adds one pattern libinjection whitelists: a value that closes a
//!   quote and comments the rest out with `#` (`admin' #`, see
//!   `quote_then_hash_comment`).
//! - **SQLi LOW** (AWS's default) is libinjection minus the detections that are
//!   libinjection's own false positives on ordinary text (`prose_at_low`): a
//!   quoted word next to a keyword in the double-quote context (`"LIKE" STAMP`
//!   is `sos`), `80% ACRYLIC AND 20% WOOL` (`1&1` without a comparison), a
//!   word before a dash comment (`1611-IioXX--`, `1c`). Of the 17,131
//!   libinjection SQLi samples C flags, LOW keeps 17,130.
//! - **XSS** is libinjection's or a second detector's (`crate::xss`: split and
//!   nested tags, event handlers, script URLs with whitespace or entities in
//!   the scheme, script after a broken-out string). libinjection runs behind an exact prefilter: its HTML5 tokenizer
//!   can report an attack only on a tag, a comment, a doctype (all need `<`) or
//!   an attribute value after a blacklisted attribute name (`on...`, `href`,
//!   `style`, ...) and `=`, so input with no `<` and no such name before an
//!   `=` is skipped (see `xss_possible`).

mod form;
mod sqli;
mod xss;

pub use sqli::{is_sqli, libinjection_sqli};
pub use xss::is_xss;

#[cfg(test)]
mod tests;
