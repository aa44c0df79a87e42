//! Forwarding headers from an attacker: the resolver must always answer, and
//! never with an address the peer did not vouch for.
#![no_main]

use http::{HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use portcullis_core::client_ip::{ClientIpResolver, ForwardedHeader, PeerAddr, parse_ip_with_port};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_ip_with_port(text);
    }
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut request = Request::new(());
    request
        .headers_mut()
        .insert("x-forwarded-for", value.clone());
    request.headers_mut().insert("forwarded", value);
    request
        .extensions_mut()
        .insert(PeerAddr("10.0.0.1:443".parse().expect("valid literal")));
    let resolver =
        ClientIpResolver::new().trust_proxies(["10.0.0.0/8".parse().expect("valid literal")]);
    for resolver in [
        resolver.clone(),
        resolver.forwarded_header(ForwardedHeader::Forwarded),
    ] {
        let ip = resolver
            .resolve(&request)
            .expect("a known peer always resolves");
        assert!(ip.to_string().len() <= 45);
    }
});
