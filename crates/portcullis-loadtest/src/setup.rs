//! The gateway the benchmark runs: a configuration folder written to a
//! temporary directory (ten WAF rules, an IP set, an IAM user and policy, a
//! Cognito-style issuer, an API key in a usage plan whose limits never
//! refuse), and the credentials clients present.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::ValueEnum;

use crate::Error;

/// The API key every request presents (demo value, benchmark only).
pub(crate) const API_KEY: &str = "LoadTestKey0123456789abcdefghij";
/// The IAM user's access key id (benchmark only).
pub(crate) const ACCESS_KEY: &str = "AKIALOADTEST00000001";
/// The IAM user's secret (benchmark only).
pub(crate) const SECRET: &str = "loadTestSecretKey00000000000000000000001";
/// The region of the gateway and of SigV4 scopes.
pub(crate) const REGION: &str = "us-east-1";
/// The API id.
pub(crate) const API_ID: &str = "a1b2c3d4e5";
/// The stage.
pub(crate) const STAGE: &str = "prod";
/// The request every variant serves: a GET with a query, which the WAF's
/// SQLi and XSS rules inspect.
pub(crate) const PATH: &str = "/loyalty/C-1001/get?customer=C-1001&fields=points";
/// The prefix of the Redis variant's keys, which tells its commands apart
/// from other clients' in `MONITOR`.
pub(crate) const REDIS_PREFIX: &str = "pcl-loadtest";
/// The Cognito user pool.
const POOL: &str = "us-east-1_LoadTest";
/// The app client id tokens are issued to.
const CLIENT_ID: &str = "loadtest-web";

/// The demo RSA key that signs the benchmark's JWT (its public half is
/// `fixtures/jwks.json`). Benchmark only.
const SIGNING_KEY: &str = include_str!("../fixtures/demo-signing-key.pem");
const JWKS: &str = include_str!("../fixtures/jwks.json");
const KID: &str = "airline-loyalty-demo-1";

/// What sits in front of the hello-world service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Variant {
    /// The service alone.
    Bare,
    /// WAF, JWT (verified-token cache on), API key, throttle, quota; in memory.
    Jwt,
    /// WAF, SigV4 with IAM policy evaluation, API key, throttle, quota; in memory.
    Sigv4,
    /// The JWT variant with throttle and quota on Redis.
    Redis,
}

/// Ten rules, shaped like a production web ACL for a JSON API: an IP
/// blocklist, a per-IP rate limit, SQLi and XSS on query and body, size
/// limits, bad bots, path traversal, an admin path, and a counting rule
/// that labels GETs.
const WEB_ACL: &str = r#"{
  "Name": "loadtest-acl",
  "ARN": "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/loadtest-acl/0d1e2f3a",
  "DefaultAction": {"Allow": {}},
  "VisibilityConfig": {"SampledRequestsEnabled": false, "CloudWatchMetricsEnabled": false, "MetricName": "loadtest-acl"},
  "Rules": [
    {"Name": "blocked-clients", "Priority": 0, "Action": {"Block": {}},
     "Statement": {"IPSetReferenceStatement": {"ARN": "arn:aws:wafv2:us-east-1:123456789012:regional/ipset/blocked-clients/7f3c0e1a"}},
     "VisibilityConfig": {"SampledRequestsEnabled": false, "CloudWatchMetricsEnabled": false, "MetricName": "r0"}},
    {"Name": "rate-per-ip", "Priority": 1, "Action": {"Block": {}},
     "Statement": {"RateBasedStatement": {"Limit": 2000000000, "EvaluationWindowSec": 300, "AggregateKeyType": "IP"}},
     "VisibilityConfig": {"SampledRequestsEnabled": false, "CloudWatchMetricsEnabled": false, "MetricName": "r1"}},
    {"Name": "sqli-query-and-body", "Priority": 2, "Action": {"Block": {}},
     "Statement": {"OrStatement": {"Statements": [
       {"SqliMatchStatement": {"FieldToMatch": {"QueryString": {}},
         "TextTransformations": [{"Priority": 0, "Type": "URL_DECODE"}, {"Priority": 1, "Type": "HTML_ENTITY_DECODE"}]}},
       {"SqliMatchStatement": {"FieldToMatch": {"Body": {"OversizeHandling": "CONTINUE"}},
         "TextTransformations": [{"Priority": 0, "Type": "URL_DECODE"}, {"Priority": 1, "Type": "HTML_ENTITY_DECODE"}]}}]}},
     "VisibilityConfig": {"SampledRequestsEnabled": false, "CloudWatchMetricsEnabled": false, "MetricName": "r2"}},
    {"Name": "xss-query-and-body", "Priority": 3, "Action": {"Block": {}},
     "Statement": {"OrStatement": {"Statements": [
       {"XssMatchStatement": {"FieldToMatch": {"QueryString": {}},
         "TextTransformations": [{"Priority": 0, "Type": "URL_DECODE"}, {"Priority": 1, "Type": "HTML_ENTITY_DECODE"}]}},
       {"XssMatchStatement": {"FieldToMatch": {"Body": {"OversizeHandling": "CONTINUE"}},
         "TextTransformations": [{"Priority": 0, "Type": "URL_DECODE"}, {"Priority": 1, "Type": "HTML_ENTITY_DECODE"}]}}]}},
     "VisibilityConfig": {"SampledRequestsEnabled": false, "CloudWatchMetricsEnabled": false, "MetricName": "r3"}},
    {"Name": "body-too-large", "Priority": 4, "Action": {"Block": {}},
     "Statement": {"SizeConstraintStatement": {"FieldToMatch": {"Body": {"OversizeHandling": "MATCH"}},
       "ComparisonOperator": "GT", "Size": 16384, "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}},
     "VisibilityConfig": {"SampledRequestsEnabled": false, "CloudWatchMetricsEnabled": false, "MetricName": "r4"}},
    {"Name": "query-too-long", "Priority": 5, "Action": {"Block": {}},
     "Statement": {"SizeConstraintStatement": {"FieldToMatch": {"QueryString": {}},
       "ComparisonOperator": "GT", "Size": 2048, "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}},
     "VisibilityConfig": {"SampledRequestsEnabled": false, "CloudWatchMetricsEnabled": false, "MetricName": "r5"}},
    {"Name": "bad-bots", "Priority": 6, "Action": {"Block": {}},
     "Statement": {"ByteMatchStatement": {"FieldToMatch": {"SingleHeader": {"Name": "user-agent"}},
       "PositionalConstraint": "CONTAINS", "SearchString": "sqlmap",
       "TextTransformations": [{"Priority": 0, "Type": "LOWERCASE"}]}},
     "VisibilityConfig": {"SampledRequestsEnabled": false, "CloudWatchMetricsEnabled": false, "MetricName": "r6"}},
    {"Name": "path-traversal", "Priority": 7, "Action": {"Block": {}},
     "Statement": {"RegexMatchStatement": {"FieldToMatch": {"UriPath": {}}, "RegexString": "\\.\\./|/etc/passwd",
       "TextTransformations": [{"Priority": 0, "Type": "URL_DECODE"}]}},
     "VisibilityConfig": {"SampledRequestsEnabled": false, "CloudWatchMetricsEnabled": false, "MetricName": "r7"}},
    {"Name": "admin-path", "Priority": 8, "Action": {"Block": {}},
     "Statement": {"ByteMatchStatement": {"FieldToMatch": {"UriPath": {}},
       "PositionalConstraint": "STARTS_WITH", "SearchString": "/admin",
       "TextTransformations": [{"Priority": 0, "Type": "LOWERCASE"}]}},
     "VisibilityConfig": {"SampledRequestsEnabled": false, "CloudWatchMetricsEnabled": false, "MetricName": "r8"}},
    {"Name": "label-gets", "Priority": 9, "Action": {"Count": {}}, "RuleLabels": [{"Name": "method:get"}],
     "Statement": {"ByteMatchStatement": {"FieldToMatch": {"Method": {}},
       "PositionalConstraint": "EXACTLY", "SearchString": "GET",
       "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}},
     "VisibilityConfig": {"SampledRequestsEnabled": false, "CloudWatchMetricsEnabled": false, "MetricName": "r9"}}
  ]
}"#;

const IP_SETS: &str = r#"[{"IPSet": {"Name": "blocked-clients",
  "ARN": "arn:aws:wafv2:us-east-1:123456789012:regional/ipset/blocked-clients/7f3c0e1a",
  "IPAddressVersion": "IPV4", "Addresses": ["192.0.2.0/24", "198.51.100.66/32", "203.0.113.0/24"]}}]"#;

const POLICY: &str = r#"{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": "execute-api:Invoke",
   "Resource": "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/loyalty/*"},
  {"Effect": "Deny", "Action": "execute-api:Invoke",
   "Resource": "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/*/admin/*"}]}"#;

/// Writes the configuration folder for `variant` and returns the path of its
/// `gateway.toml`.
pub(crate) fn write_config(variant: Variant, redis_url: &str) -> Result<PathBuf, Error> {
    let dir = std::env::temp_dir().join(format!(
        "portcullis-loadtest-{}-{}",
        std::process::id(),
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos()
    ));
    std::fs::create_dir_all(&dir)?;
    write(&dir, "web-acl.json", WEB_ACL)?;
    write(&dir, "ip-sets.json", IP_SETS)?;
    write(&dir, "invoke.json", POLICY)?;
    write(&dir, "jwks.json", JWKS)?;
    let auth = match variant {
        Variant::Sigv4 => format!(
            r#"
[[iam.users]]
arn = "arn:aws:iam::123456789012:user/loadtest"
access_key_id = "{ACCESS_KEY}"
secret_access_key = "{SECRET}"
policies = ["invoke.json"]
"#
        ),
        Variant::Bare | Variant::Jwt | Variant::Redis => format!(
            r#"
[jwt]
cognito_user_pool = "{POOL}"
jwks = "jwks.json"
client_ids = ["{CLIENT_ID}"]
token_use = "id"
"#
        ),
    };
    let store = if variant == Variant::Redis {
        format!("kind = \"redis\"\nurl = \"{redis_url}\"\nkey_prefix = \"{REDIS_PREFIX}\"")
    } else {
        "kind = \"memory\"".to_owned()
    };
    let toml = format!(
        r#"
[gateway]
region = "{REGION}"
account_id = "123456789012"
api_id = "{API_ID}"
stage = "{STAGE}"

# Limits high enough never to refuse during a benchmark: the layers still
# take a token and count every request.
[[usage_plans]]
id = "unlimited"
throttle = {{ rate_limit = 1000000000.0, burst_limit = 1000000000 }}
quota = {{ limit = 1000000000000000, period = "MONTH" }}

[[api_keys]]
id = "loadtest"
value = "{API_KEY}"
usage_plans = ["unlimited"]
{auth}
[waf]
web_acl = "web-acl.json"
ip_sets = ["ip-sets.json"]

[store]
{store}
"#
    );
    let path = dir.join("gateway.toml");
    write(&dir, "gateway.toml", &toml)?;
    Ok(path)
}

fn write(dir: &Path, name: &str, text: &str) -> Result<(), Error> {
    std::fs::write(dir.join(name), text)
        .map_err(|e| format!("{}: {e}", dir.join(name).display()))?;
    Ok(())
}

/// A Cognito-style ID token for the benchmark's pool, valid for an hour.
pub(crate) fn token() -> Result<String, Error> {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.to_owned());
    let claims = serde_json::json!({
        "iss": format!("https://cognito-idp.{REGION}.amazonaws.com/{POOL}"),
        "sub": "loadtest-user", "aud": CLIENT_ID, "token_use": "id",
        "iat": now - 10, "exp": now + 3600, "cognito:username": "loadtest",
    });
    let key = EncodingKey::from_rsa_pem(SIGNING_KEY.as_bytes())?;
    Ok(encode(&header, &claims, &key)?)
}

/// The SigV4 headers (`authorization`, `x-amz-date`) of a GET of `path` on
/// `host`, signed now with the benchmark user's credentials.
pub(crate) fn sigv4_headers(host: &str, path: &str) -> Result<Vec<(String, String)>, Error> {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let identity = Credentials::new(ACCESS_KEY, SECRET, None, None, "loadtest").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("execute-api")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()?
        .into();
    let headers = [("host", host), ("x-api-key", API_KEY)];
    let signable = SignableRequest::new(
        "GET",
        format!("http://{host}{path}"),
        headers.into_iter(),
        SignableBody::Bytes(&[]),
    )?;
    let (instructions, _) = sign(signable, &params)?.into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}
