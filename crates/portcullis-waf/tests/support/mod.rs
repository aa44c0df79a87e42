//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};

use http::Request;
use portcullis_core::client_ip::PeerAddr;
use serde::Deserialize;
use serde_json::Value;

/// A request described in a fixture.
#[derive(Debug, Deserialize)]
pub struct RequestSpec {
    #[serde(default = "get")]
    pub method: String,
    #[serde(default = "root")]
    pub uri: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub ip: Option<IpAddr>,
}

fn get() -> String {
    "GET".to_owned()
}
fn root() -> String {
    "/".to_owned()
}

impl RequestSpec {
    pub fn build(&self) -> Request<String> {
        let mut builder = Request::builder()
            .method(self.method.as_str())
            .uri(self.uri.as_str());
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut request = builder.body(self.body.clone()).expect("fixture request");
        if let Some(ip) = self.ip {
            request
                .extensions_mut()
                .insert(PeerAddr(SocketAddr::new(ip, 40000)));
        }
        request
    }
}

/// A request from `ip`.
pub fn from_ip(ip: &str, uri: &str) -> Request<String> {
    let mut request = Request::get(uri).body(String::new()).unwrap();
    request
        .extensions_mut()
        .insert(PeerAddr(SocketAddr::new(ip.parse().unwrap(), 40000)));
    request
}

const VC: &str =
    r#"{"SampledRequestsEnabled":false,"CloudWatchMetricsEnabled":false,"MetricName":"m"}"#;

/// A web ACL (default Allow) with one Block rule per statement, in order.
pub fn acl_with(statements: &[Value]) -> String {
    let rules: Vec<Value> = statements
        .iter()
        .enumerate()
        .map(|(i, s)| {
            serde_json::json!({
                "Name": format!("rule-{i}"), "Priority": i, "Statement": s,
                "Action": {"Block": {}}, "VisibilityConfig": serde_json::from_str::<Value>(VC).unwrap()
            })
        })
        .collect();
    serde_json::json!({
        "Name": "test-acl",
        "ARN": "arn:aws:wafv2:us-east-1:111122223333:regional/webacl/test-acl/abc",
        "DefaultAction": {"Allow": {}},
        "Rules": rules,
        "VisibilityConfig": serde_json::from_str::<Value>(VC).unwrap()
    })
    .to_string()
}
