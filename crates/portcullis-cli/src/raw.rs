//! Raw HTTP/1.1 requests, as the AWS SigV4 test suite writes them: a request
//! line, header lines, a blank line and the body.

use bytes::Bytes;

/// A request read from a raw HTTP/1.1 message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRequest {
    /// The method, as written.
    pub method: String,
    /// The request target, with bytes no HTTP client sends unencoded (a
    /// space, non-ASCII) percent-encoded, as a client would put them on the
    /// wire.
    pub target: String,
    /// The header lines in order; folded (obs-fold) lines are joined with one
    /// space, and values are trimmed of surrounding spaces and tabs, as an
    /// HTTP server does.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body: the bytes after the blank line, cut to `Content-Length` when
    /// the request has one.
    pub body: Vec<u8>,
}

/// The most bytes of a raw request read.
pub const MAX_RAW_REQUEST_BYTES: usize = 16 * 1024 * 1024;

fn wire_encode(text: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text {
        if b <= b' ' || b >= 0x7f || b"\"<>\\^`{|}".contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

fn trim_ows(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |i| i + 1);
    &value[start..end.max(start)]
}

impl RawRequest {
    /// Parses a raw request. Line ends may be CRLF or LF.
    ///
    /// # Errors
    ///
    /// A message saying what is malformed.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() > MAX_RAW_REQUEST_BYTES {
            return Err(format!(
                "the request is larger than {MAX_RAW_REQUEST_BYTES} bytes"
            ));
        }
        let (head, body) = split_head(bytes);
        // The head is read as bytes: a header value may hold any byte but
        // control characters (obs-text), and the verdict on such a request
        // is the layer's to give, not a parse error's.
        let mut lines = head
            .split(|b| *b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let request_line = lines
            .next()
            .filter(|l| !l.trim_ascii().is_empty())
            .ok_or("the request line is missing")?;
        let space = request_line
            .iter()
            .position(|b| *b == b' ')
            .ok_or("the request line has no request target")?;
        let (method, rest) = (&request_line[..space], &request_line[space + 1..]);
        let target = match rest.iter().rposition(|b| *b == b' ') {
            Some(at) if rest[at + 1..].starts_with(b"HTTP/") => &rest[..at],
            _ => rest,
        };
        if method.is_empty() || target.is_empty() {
            return Err("the request line needs a method and a request target".to_owned());
        }
        let method = String::from_utf8_lossy(method).into_owned();
        let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
        for line in lines {
            if line.is_empty() {
                continue;
            }
            if line.starts_with(b" ") || line.starts_with(b"\t") {
                let last = headers
                    .last_mut()
                    .ok_or("a continuation line comes before any header")?;
                last.1.push(b' ');
                last.1.extend_from_slice(trim_ows(line));
                continue;
            }
            let colon = line.iter().position(|b| *b == b':').ok_or_else(|| {
                format!(
                    "header line without `:`: {:?}",
                    String::from_utf8_lossy(line)
                )
            })?;
            headers.push((
                String::from_utf8_lossy(&line[..colon]).into_owned(),
                trim_ows(&line[colon + 1..]).to_vec(),
            ));
        }
        let mut body = body.to_vec();
        if let Some((_, length)) = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        {
            let length: usize = std::str::from_utf8(length)
                .ok()
                .and_then(|l| l.trim().parse().ok())
                .ok_or("Content-Length is not a number")?;
            if length > body.len() {
                return Err(format!(
                    "Content-Length is {length} but the body has {} bytes",
                    body.len()
                ));
            }
            body.truncate(length);
        }
        Ok(Self {
            method: method.to_owned(),
            target: wire_encode(target),
            headers,
            body,
        })
    }

    /// The request as an `http::Request`.
    ///
    /// # Errors
    ///
    /// A method, target, header name or value `http` refuses.
    pub fn to_http(&self) -> Result<http::Request<Bytes>, String> {
        let mut builder = http::Request::builder()
            .method(self.method.as_str())
            .uri(self.target.as_str());
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_slice());
        }
        builder
            .body(Bytes::from(self.body.clone()))
            .map_err(|e| format!("invalid request: {e}"))
    }
}

fn split_head(bytes: &[u8]) -> (&[u8], &[u8]) {
    let crlf = find(bytes, b"\r\n\r\n").map(|i| (i, 4));
    let lf = find(bytes, b"\n\n").map(|i| (i, 2));
    let split = match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    };
    match split {
        Some((at, len)) => (&bytes[..at], &bytes[at + len..]),
        None => (bytes, &[]),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::RawRequest;

    #[test]
    fn parses_the_suite_format() {
        let raw = RawRequest::parse(
            b"POST /a b?x=1 HTTP/1.1\nHost:example.com\nMy-Header: v1\n  folded \nContent-Length: 3\n\nabcdef",
        )
        .unwrap();
        assert_eq!(raw.method, "POST");
        assert_eq!(raw.target, "/a%20b?x=1");
        assert_eq!(raw.headers[0], ("Host".to_owned(), b"example.com".to_vec()));
        assert_eq!(raw.headers[1].1, b"v1 folded".to_vec());
        assert_eq!(raw.body, b"abc");
        let request = raw.to_http().unwrap();
        assert_eq!(request.uri().path(), "/a%20b");
    }

    #[test]
    fn reads_a_head_that_is_not_utf8() {
        let raw = RawRequest::parse(b"GET /caf\xe9 HTTP/1.1\nHost: h\nX-A: \xff\xfe\n\n").unwrap();
        assert_eq!(raw.target, "/caf%E9");
        assert_eq!(raw.headers[1].1, b"\xff\xfe".to_vec());
        assert!(raw.to_http().is_ok());
    }

    #[test]
    fn refuses_malformed_input() {
        assert!(RawRequest::parse(b"").is_err());
        assert!(RawRequest::parse(b"GET\n\n").is_err());
        assert!(RawRequest::parse(b"GET / HTTP/1.1\nno colon\n\n").is_err());
        assert!(RawRequest::parse(b"GET / HTTP/1.1\nContent-Length: 9\n\nab").is_err());
    }
}
