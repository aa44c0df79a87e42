//! The one client-IP resolver that WAF IP sets, throttles by IP and IAM's
//! `aws:SourceIp` all use.
//!
//! The peer address of the connection is the client, unless the peer is a
//! proxy the operator trusts. Then the forwarding header (`X-Forwarded-For` by
//! default, or RFC 7239 `Forwarded`) is read from the right, skipping every
//! trusted proxy, and the first address that is not a trusted proxy is the
//! client. The left-most entry, which the client itself wrote, is believed
//! only when every hop after it is trusted.
//!
//! The peer address comes from the request extensions: [`PeerAddr`], which a
//! plain hyper server inserts, or, with the `axum` feature, axum's
//! `ConnectInfo<SocketAddr>`, or, with the `tonic` feature, tonic's
//! `TcpConnectInfo`.
//!
//! ```
//! use std::net::{IpAddr, SocketAddr};
//! use portcullis_core::client_ip::{ClientIpResolver, PeerAddr};
//!
//! let resolver = ClientIpResolver::new().trust_proxies(["10.0.0.0/8".parse().unwrap()]);
//! let mut request = http::Request::builder()
//!     .header("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2")
//!     .body(())
//!     .unwrap();
//! request.extensions_mut().insert(PeerAddr("10.0.0.1:443".parse::<SocketAddr>().unwrap()));
//! // 10.0.0.2 is a trusted proxy; 203.0.113.7 is the client. 6.6.6.6 was
//! // written by the client and is not believed.
//! assert_eq!(resolver.resolve(&request), Some("203.0.113.7".parse::<IpAddr>().unwrap()));
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::header::FORWARDED;
use http::{Extensions, HeaderMap, HeaderName, Request};
use ipnet::IpNet;

use crate::context::RequestContextExt;

/// The peer address of the connection a request came on. A hyper server puts
/// it in each request's extensions; axum's `ConnectInfo` is read as well.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

/// Which forwarding header trusted proxies write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

/// Resolves the client IP of a request. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct ClientIpResolver {
    trusted: Arc<[IpNet]>,
    header: ForwardedHeader,
}

/// The most forwarding entries read from one request, so that a huge header
/// costs little.
const MAX_HOPS: usize = 64;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

impl ClientIpResolver {
    /// A resolver that trusts no proxy: the client is the peer address.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts proxies in these networks to report the client address.
    #[must_use]
    pub fn trust_proxies(mut self, networks: impl IntoIterator<Item = IpNet>) -> Self {
        let mut all: Vec<IpNet> = self.trusted.iter().copied().collect();
        all.extend(networks);
        self.trusted = all.into();
        self
    }

    /// Reads this forwarding header from trusted proxies.
    #[must_use]
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// The trusted proxy networks.
    #[must_use]
    pub fn trusted_proxies(&self) -> &[IpNet] {
        &self.trusted
    }

    /// Whether `ip` is a trusted proxy.
    #[must_use]
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client IP of `request`, or `None` when the peer address is unknown.
    pub fn resolve<B>(&self, request: &Request<B>) -> Option<IpAddr> {
        self.resolve_parts(request.headers(), request.extensions())
    }

    /// The client IP from a request's headers and extensions.
    #[must_use]
    pub fn resolve_parts(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        // A layer further out resolved it already (see
        // [`Self::resolve_and_store`]): the header walk is done.
        if let Some(ip) = extensions.client_ip() {
            return Some(ip);
        }
        let peer = peer_addr(extensions)?.ip().to_canonical();
        Some(self.resolve_from_peer(peer, headers))
    }

    /// Resolves the client IP and stores it in the request's
    /// [`RequestContext`](crate::context::RequestContext), where the resolver
    /// reads it first: the layers inside skip the header walk.
    pub fn resolve_and_store<B>(&self, request: &mut Request<B>) -> Option<IpAddr> {
        let ip = self.resolve(request)?;
        request.request_context_mut().set_client_ip(ip);
        Some(ip)
    }

    /// The client IP given the peer address and the request headers.
    #[must_use]
    pub fn resolve_from_peer(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let mut last_trusted = peer;
        let entries: Box<dyn Iterator<Item = &str>> = match self.header {
            ForwardedHeader::XForwardedFor => Box::new(
                header_values_from_right(headers, &X_FORWARDED_FOR)
                    .flat_map(|value| value.rsplit(',')),
            ),
            ForwardedHeader::Forwarded => Box::new(
                header_values_from_right(headers, &FORWARDED)
                    .flat_map(|value| value.rsplit(','))
                    .map(forwarded_for_param),
            ),
        };
        for entry in entries.take(MAX_HOPS) {
            match parse_ip_with_port(entry) {
                Some(ip) if self.is_trusted(ip) => last_trusted = ip,
                Some(ip) => return ip,
                // An entry no trusted proxy would write: stop believing the
                // header here.
                None => return last_trusted,
            }
        }
        last_trusted
    }
}

fn header_values_from_right<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> impl Iterator<Item = &'a str> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .collect();
    values.into_iter().rev()
}

/// The `for=` parameter of one RFC 7239 `Forwarded` element, unquoted.
fn forwarded_for_param(element: &str) -> &str {
    element
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
        .map(|(_, value)| value.trim().trim_matches('"'))
        .unwrap_or("")
}

/// Parses an address as forwarding headers write it: `203.0.113.7`,
/// `203.0.113.7:8080`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:443`.
/// IPv4-mapped IPv6 addresses become IPv4.
#[must_use]
pub fn parse_ip_with_port(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = if let Some(rest) = entry.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        inside.parse::<IpAddr>().ok()?
    } else if let Ok(ip) = entry.parse::<IpAddr>() {
        ip
    } else {
        entry.parse::<SocketAddr>().ok()?.ip()
    };
    Some(ip.to_canonical())
}

fn peer_addr(extensions: &Extensions) -> Option<SocketAddr> {
    if let Some(PeerAddr(addr)) = extensions.get::<PeerAddr>() {
        return Some(*addr);
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) =
        extensions.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(*addr);
    }
    #[cfg(feature = "tonic")]
    if let Some(info) = extensions.get::<tonic::transport::server::TcpConnectInfo>() {
        return info.remote_addr();
    }
    None
}

#[cfg(test)]
mod tests;
