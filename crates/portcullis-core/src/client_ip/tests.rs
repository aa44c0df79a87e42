use super::*;
use http::HeaderValue;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test addresses are valid")
}

fn request(peer: &str, headers: &[(&'static str, &str)]) -> Request<()> {
    let mut builder = Request::builder();
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(()).expect("valid test request");
    request
        .extensions_mut()
        .insert(PeerAddr(peer.parse().expect("valid peer")));
    request
}

fn behind_proxies() -> ClientIpResolver {
    ClientIpResolver::new().trust_proxies([
        "10.0.0.0/8".parse().expect("valid"),
        "fd00::/8".parse().expect("valid"),
    ])
}

#[test]
fn an_untrusted_peer_is_the_client_whatever_it_claims() {
    let r = request("198.51.100.9:5000", &[("x-forwarded-for", "1.1.1.1")]);
    assert_eq!(behind_proxies().resolve(&r), Some(ip("198.51.100.9")));
    assert_eq!(
        ClientIpResolver::new().resolve(&r),
        Some(ip("198.51.100.9"))
    );
}

#[test]
fn the_left_most_spoofed_entry_is_ignored() {
    let r = request(
        "10.0.0.1:443",
        &[("x-forwarded-for", "127.0.0.1, 203.0.113.7")],
    );
    assert_eq!(behind_proxies().resolve(&r), Some(ip("203.0.113.7")));
}

#[test]
fn multi_hop_chains_skip_every_trusted_proxy() {
    let r = request(
        "10.0.0.1:443",
        &[(
            "x-forwarded-for",
            "8.8.8.8, 203.0.113.7, 10.1.1.1, 10.2.2.2",
        )],
    );
    assert_eq!(behind_proxies().resolve(&r), Some(ip("203.0.113.7")));
}

#[test]
fn repeated_headers_are_read_as_one_list() {
    let mut r = request(
        "10.0.0.1:443",
        &[("x-forwarded-for", "9.9.9.9, 203.0.113.7")],
    );
    r.headers_mut()
        .append("x-forwarded-for", HeaderValue::from_static("10.3.3.3"));
    assert_eq!(behind_proxies().resolve(&r), Some(ip("203.0.113.7")));
}

#[test]
fn when_every_hop_is_trusted_the_left_most_is_the_client() {
    let r = request("10.0.0.1:443", &[("x-forwarded-for", "10.9.9.9, 10.2.2.2")]);
    assert_eq!(behind_proxies().resolve(&r), Some(ip("10.9.9.9")));
}

#[test]
fn garbage_stops_the_walk_at_the_last_trusted_hop() {
    let r = request(
        "10.0.0.1:443",
        &[("x-forwarded-for", "203.0.113.7, not-an-ip, 10.2.2.2")],
    );
    assert_eq!(behind_proxies().resolve(&r), Some(ip("10.2.2.2")));
    let r = request("10.0.0.1:443", &[]);
    assert_eq!(behind_proxies().resolve(&r), Some(ip("10.0.0.1")));
}

#[test]
fn ipv6_peers_and_entries() {
    let r = request(
        "[fd00::1]:443",
        &[(
            "x-forwarded-for",
            "2001:db8::66, [2001:db8::7]:8443, fd00::2",
        )],
    );
    assert_eq!(behind_proxies().resolve(&r), Some(ip("2001:db8::7")));
    // An IPv4-mapped peer is treated as the IPv4 address it maps.
    let r = request(
        "[::ffff:10.0.0.1]:443",
        &[("x-forwarded-for", "203.0.113.7")],
    );
    assert_eq!(behind_proxies().resolve(&r), Some(ip("203.0.113.7")));
    let r = request(
        "[fd00::1]:443",
        &[("x-forwarded-for", "::ffff:203.0.113.8")],
    );
    assert_eq!(behind_proxies().resolve(&r), Some(ip("203.0.113.8")));
}

#[test]
fn rfc7239_forwarded() {
    let resolver = behind_proxies().forwarded_header(ForwardedHeader::Forwarded);
    let r = request(
        "10.0.0.1:443",
        &[(
            "forwarded",
            r#"for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711";by=10.0.0.9, for=10.5.5.5"#,
        )],
    );
    assert_eq!(resolver.resolve(&r), Some(ip("2001:db8:cafe::17")));
    let r = request(
        "10.0.0.1:443",
        &[("forwarded", "for=unknown, for=10.5.5.5")],
    );
    assert_eq!(resolver.resolve(&r), Some(ip("10.5.5.5")));
    // X-Forwarded-For is not read when Forwarded is configured.
    let r = request("10.0.0.1:443", &[("x-forwarded-for", "203.0.113.7")]);
    assert_eq!(resolver.resolve(&r), Some(ip("10.0.0.1")));
}

#[test]
fn no_peer_means_no_client_ip() {
    let r = Request::builder()
        .header("x-forwarded-for", "203.0.113.7")
        .body(())
        .expect("valid");
    assert_eq!(behind_proxies().resolve(&r), None);
}

#[test]
fn a_stored_client_ip_is_reused() {
    let mut r = request("10.0.0.1:443", &[("x-forwarded-for", "203.0.113.7")]);
    assert_eq!(
        behind_proxies().resolve_and_store(&mut r),
        Some(ip("203.0.113.7"))
    );
    // A resolver with other settings reads the stored answer.
    assert_eq!(ClientIpResolver::new().resolve(&r), Some(ip("203.0.113.7")));
}

#[test]
fn huge_headers_are_bounded() {
    let chain = vec!["10.1.1.1"; 10_000].join(", ");
    let r = request("10.0.0.1:443", &[("x-forwarded-for", &chain)]);
    assert_eq!(behind_proxies().resolve(&r), Some(ip("10.1.1.1")));
}

#[test]
fn parses_the_forms_proxies_write() {
    assert_eq!(parse_ip_with_port(" 1.2.3.4 "), Some(ip("1.2.3.4")));
    assert_eq!(parse_ip_with_port("1.2.3.4:80"), Some(ip("1.2.3.4")));
    assert_eq!(parse_ip_with_port("[::1]:80"), Some(ip("::1")));
    assert_eq!(parse_ip_with_port("[::1]"), Some(ip("::1")));
    assert_eq!(parse_ip_with_port("::1"), Some(ip("::1")));
    assert_eq!(parse_ip_with_port("_hidden"), None);
    assert_eq!(parse_ip_with_port("[::1"), None);
}

proptest::proptest! {
    #[test]
    fn never_panics_on_any_header(value in ".{0,200}") {
        if let Ok(value) = HeaderValue::from_str(&value) {
            let mut r = request("10.0.0.1:443", &[]);
            r.headers_mut().insert("x-forwarded-for", value.clone());
            r.headers_mut().insert("forwarded", value);
            // With a known peer there is always an answer, whatever the headers say.
            proptest::prop_assert!(behind_proxies().resolve(&r).is_some());
            proptest::prop_assert!(behind_proxies().forwarded_header(ForwardedHeader::Forwarded).resolve(&r).is_some());
        }
    }
}
