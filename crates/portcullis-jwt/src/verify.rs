//! Token parsing, signature verification and the issuer's claim checks.
//!
//! Parsing is our own (so that `alg: none`, `crit`, oversized and nested
//! headers are refused before any key is touched); the signature is checked by
//! `jsonwebtoken::crypto::verify` with the key the `kid` names.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use portcullis_core::context::{AuthMethod, Caller};
use serde::Deserialize;
use serde_json::Value;

/// Claims as parsed: the map the core `Caller` keeps, moved, never copied.
pub(crate) type ClaimMap = BTreeMap<String, Value>;

use crate::claims::JwtClaims;
use crate::issuer::Issuer;
use crate::keys::VerifyKey;
use crate::reject::JwtRefusal;

/// The largest decoded JOSE header accepted. Real headers are under 200 bytes.
const MAX_HEADER_BYTES: usize = 1024;

/// A compact JWS split, its header decoded, not yet verified.
#[derive(Debug)]
pub(crate) struct Jws<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    pub(crate) message: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) signature: &'a str,
}

/// A token split and decoded, not yet verified.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub(crate) jws: Jws<'a>,
    pub(crate) claims: ClaimMap,
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// Splits a compact JWS and decodes its header.
///
/// # Errors
///
/// The reason the token cannot be a JWS this layer accepts.
pub(crate) fn split(token: &str) -> Result<Jws<'_>, JwtRefusal> {
    let (header_b64, rest) = token.split_once('.').ok_or(JwtRefusal::Malformed)?;
    let (payload, signature) = rest.split_once('.').ok_or(JwtRefusal::Malformed)?;
    if signature.contains('.') || header_b64.is_empty() || payload.is_empty() {
        return Err(JwtRefusal::Malformed);
    }
    if header_b64.len() > MAX_HEADER_BYTES * 4 / 3 + 4 {
        return Err(JwtRefusal::Malformed);
    }
    let header_bytes = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| JwtRefusal::Malformed)?;
    let header: RawHeader<'_> =
        serde_json::from_slice(&header_bytes).map_err(|_| JwtRefusal::Malformed)?;
    if header.crit.is_some() {
        return Err(JwtRefusal::CriticalHeader);
    }
    if header.alg.eq_ignore_ascii_case("none") {
        return Err(JwtRefusal::AlgorithmNone);
    }
    let alg: Algorithm = header
        .alg
        .parse()
        .map_err(|_| JwtRefusal::UnsupportedAlgorithm)?;
    if signature.is_empty() {
        return Err(JwtRefusal::BadSignature);
    }
    Ok(Jws {
        alg,
        kid: header.kid.map(Cow::into_owned),
        message: &token[..header_b64.len() + 1 + payload.len()],
        payload,
        signature,
    })
}

/// Splits a compact JWS and decodes its header and its JSON claims.
///
/// # Errors
///
/// The reason the token cannot be a JWT this layer accepts.
pub(crate) fn parse(token: &str) -> Result<Parsed<'_>, JwtRefusal> {
    let jws = split(token)?;
    let payload = URL_SAFE_NO_PAD
        .decode(jws.payload)
        .map_err(|_| JwtRefusal::Malformed)?;
    let claims: ClaimMap = serde_json::from_slice(&payload).map_err(|_| JwtRefusal::Malformed)?;
    Ok(Parsed { jws, claims })
}

/// Checks the signature of a JWS with `key`.
pub(crate) fn check_signature(jws: &Jws<'_>, key: &VerifyKey) -> Result<(), JwtRefusal> {
    if !key.algs.contains(jws.alg) {
        return Err(JwtRefusal::KeyAlgorithmMismatch);
    }
    match jsonwebtoken::crypto::verify(jws.signature, jws.message.as_bytes(), &key.key, jws.alg) {
        Ok(true) => Ok(()),
        _ => Err(JwtRefusal::BadSignature),
    }
}

/// The issuer-level claim rules, compiled from an [`Issuer`].
#[derive(Debug)]
pub(crate) struct ClaimRules {
    pub(crate) issuer: String,
    audiences: Vec<String>,
    cognito: bool,
    client_ids: Vec<String>,
    leeway: u64,
    max_lifetime: Option<u64>,
    required: Vec<String>,
    groups_path: Vec<String>,
}

impl ClaimRules {
    pub(crate) fn new(issuer: &Issuer) -> Self {
        Self {
            issuer: issuer.issuer.clone(),
            audiences: issuer.audiences.clone(),
            cognito: issuer.cognito,
            client_ids: issuer.client_ids.clone(),
            leeway: issuer.leeway_seconds,
            max_lifetime: issuer.max_lifetime_seconds,
            required: issuer.required_claims.clone(),
            groups_path: claim_path(&issuer.groups_claim),
        }
    }

    /// Checks the claims at `now` (Unix seconds), returning `exp`.
    pub(crate) fn check(&self, claims: &ClaimMap, now: u64) -> Result<u64, JwtRefusal> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(JwtRefusal::UnknownIssuer);
        }
        let exp = numeric(claims, "exp")?.ok_or(JwtRefusal::MissingClaim)?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(JwtRefusal::Expired);
        }
        if let Some(nbf) = numeric(claims, "nbf")?
            && now.saturating_add(self.leeway) < nbf
        {
            return Err(JwtRefusal::NotYetValid);
        }
        let iat = numeric(claims, "iat")?;
        if let Some(iat) = iat
            && iat > now.saturating_add(self.leeway)
        {
            return Err(JwtRefusal::IssuedInFuture);
        }
        if let Some(max) = self.max_lifetime {
            let start = iat.unwrap_or(now);
            if exp.saturating_sub(start) > max.saturating_add(self.leeway) {
                return Err(JwtRefusal::LifetimeTooLong);
            }
        }
        if self.required.iter().any(|c| !claims.contains_key(c)) {
            return Err(JwtRefusal::MissingClaim);
        }
        if !self.audiences.is_empty() && !audience_matches(claims.get("aud"), &self.audiences) {
            return Err(JwtRefusal::WrongAudience);
        }
        if self.cognito {
            match claims.get("token_use").and_then(Value::as_str) {
                Some("id") => {
                    if !self.client_ids.is_empty()
                        && !audience_matches(claims.get("aud"), &self.client_ids)
                    {
                        return Err(JwtRefusal::WrongAudience);
                    }
                }
                Some("access") => {
                    let client = claims.get("client_id").and_then(Value::as_str);
                    if !self.client_ids.is_empty()
                        && !client.is_some_and(|c| self.client_ids.iter().any(|id| id == c))
                    {
                        return Err(JwtRefusal::WrongClientId);
                    }
                }
                _ => return Err(JwtRefusal::WrongTokenUse),
            }
        }
        Ok(exp)
    }

    /// Builds the caller and the shared claims of a verified token.
    pub(crate) fn caller(&self, claims: ClaimMap) -> (Caller, JwtClaims) {
        let principal = ["sub", "username", "cognito:username", "client_id"]
            .iter()
            .find_map(|name| claims.get(*name).and_then(Value::as_str))
            .unwrap_or_default()
            .to_owned();
        let groups = strings_at(&claims, &self.groups_path);
        let scopes = match claims.get("scope") {
            Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
            _ => match claims.get("scp") {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
                _ => Vec::new(),
            },
        };
        let caller = Caller::new(principal, AuthMethod::Jwt)
            .with_groups(groups)
            .with_scopes(scopes)
            .with_claims(claims);
        let claims = JwtClaims::new(caller.clone());
        (caller, claims)
    }
}

/// `a.b.c` → `["a", "b", "c"]`; a name with no dot (`cognito:groups`) is one
/// segment.
fn claim_path(path: &str) -> Vec<String> {
    path.split('.').map(str::to_owned).collect()
}

fn strings_at(claims: &ClaimMap, path: &[String]) -> Vec<String> {
    let Some((first, rest)) = path.split_first() else {
        return Vec::new();
    };
    let mut value = claims.get(first.as_str());
    for segment in rest {
        value = value.and_then(|v| v.get(segment.as_str()));
    }
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// A NumericDate claim: absent is `None`, a non-number is malformed.
fn numeric(claims: &ClaimMap, name: &str) -> Result<Option<u64>, JwtRefusal> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(v) = n.as_u64() {
                Ok(Some(v))
            } else if let Some(f) = n.as_f64().filter(|f| f.is_finite() && *f >= 0.0) {
                // Truncation is the intent: NumericDate may carry fractions.
                Ok(Some(f as u64))
            } else {
                Err(JwtRefusal::MissingClaim)
            }
        }
        Some(_) => Err(JwtRefusal::MissingClaim),
    }
}

fn audience_matches(aud: Option<&Value>, accepted: &[String]) -> bool {
    match aud {
        Some(Value::String(a)) => accepted.iter().any(|x| x == a),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .any(|a| accepted.iter().any(|x| x == a)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn refuses_bad_shapes_before_any_key() {
        let payload = b64(r#"{"sub":"a"}"#);
        let none = format!("{}.{payload}.", b64(r#"{"alg":"none"}"#));
        assert_eq!(parse(&none).unwrap_err(), JwtRefusal::AlgorithmNone);
        let none_case = format!("{}.{payload}.c2ln", b64(r#"{"alg":"NoNe"}"#));
        assert_eq!(parse(&none_case).unwrap_err(), JwtRefusal::AlgorithmNone);
        let crit = format!(
            "{}.{payload}.c2ln",
            b64(r#"{"alg":"RS256","crit":["exp"],"exp":1}"#)
        );
        assert_eq!(parse(&crit).unwrap_err(), JwtRefusal::CriticalHeader);
        let es512 = format!("{}.{payload}.c2ln", b64(r#"{"alg":"ES512"}"#));
        assert_eq!(parse(&es512).unwrap_err(), JwtRefusal::UnsupportedAlgorithm);
        assert_eq!(parse("a.b").unwrap_err(), JwtRefusal::Malformed);
        assert_eq!(parse("a.b.c.d").unwrap_err(), JwtRefusal::Malformed);
        let not_object = format!("{}.{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64("[1]"));
        assert_eq!(parse(&not_object).unwrap_err(), JwtRefusal::Malformed);
        let dup = format!("{}.{payload}.c2ln", b64(r#"{"alg":"RS256","alg":"none"}"#));
        assert_eq!(parse(&dup).unwrap_err(), JwtRefusal::Malformed);
    }

    #[test]
    fn json_bomb_headers_cost_little() {
        // Deep nesting within the header limit is skipped without recursion
        // (serde's IgnoredAny), and the token then stands or falls on its
        // signature.
        let nested = format!(
            r#"{{"alg":"RS256","x":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let token = format!("{}.{}.c2ln", b64(&nested), b64("{}"));
        assert!(parse(&token).is_ok());
        // Past the header limit it is refused before any JSON is read.
        let deep = format!(
            r#"{{"alg":"RS256","x":{}{}}}"#,
            "[".repeat(5000),
            "]".repeat(5000)
        );
        let token = format!("{}.{}.c2ln", b64(&deep), b64("{}"));
        assert_eq!(parse(&token).unwrap_err(), JwtRefusal::Malformed);
        // Many keys, or a nested object where `kid` belongs, are refused.
        let wide = format!(
            r#"{{"alg":"RS256","kid":{{"a":{}}}}}"#,
            "[".repeat(50) + &"]".repeat(50)
        );
        let token = format!("{}.{}.c2ln", b64(&wide), b64("{}"));
        assert_eq!(parse(&token).unwrap_err(), JwtRefusal::Malformed);
    }

    #[test]
    fn claim_rules_check_time_and_audience() {
        let rules = ClaimRules::new(
            &Issuer::new("https://issuer")
                .audiences(["api"])
                .leeway(std::time::Duration::from_secs(5))
                .max_lifetime(std::time::Duration::from_secs(3600)),
        );
        let claims = |v: Value| serde_json::from_value::<ClaimMap>(v).expect("object");
        let ok = claims(
            serde_json::json!({"iss":"https://issuer","exp":1000,"iat":900,"aud":["x","api"]}),
        );
        assert_eq!(rules.check(&ok, 950), Ok(1000));
        assert_eq!(rules.check(&ok, 1004), Ok(1000));
        assert_eq!(rules.check(&ok, 1005), Err(JwtRefusal::Expired));
        assert_eq!(rules.check(&ok, 800), Err(JwtRefusal::IssuedInFuture));
        let nbf =
            claims(serde_json::json!({"iss":"https://issuer","exp":1000,"nbf":960,"aud":"api"}));
        assert_eq!(rules.check(&nbf, 950), Err(JwtRefusal::NotYetValid));
        let long =
            claims(serde_json::json!({"iss":"https://issuer","exp":10000,"iat":900,"aud":"api"}));
        assert_eq!(rules.check(&long, 950), Err(JwtRefusal::LifetimeTooLong));
        let aud = claims(serde_json::json!({"iss":"https://issuer","exp":1000,"aud":"other"}));
        assert_eq!(rules.check(&aud, 950), Err(JwtRefusal::WrongAudience));
        let no_exp = claims(serde_json::json!({"iss":"https://issuer","aud":"api"}));
        assert_eq!(rules.check(&no_exp, 950), Err(JwtRefusal::MissingClaim));
        let bad_exp = claims(serde_json::json!({"iss":"https://issuer","exp":"1000","aud":"api"}));
        assert_eq!(rules.check(&bad_exp, 950), Err(JwtRefusal::MissingClaim));
    }

    #[test]
    fn groups_follow_a_dotted_path() {
        let rules = ClaimRules::new(&Issuer::new("i").groups_claim("realm_access.roles"));
        let claims = serde_json::json!({"sub":"u","realm_access":{"roles":["a","b"]},"scp":["s1"]});
        let (caller, _) = rules.caller(serde_json::from_value(claims).expect("object"));
        assert_eq!(caller.groups(), ["a", "b"]);
        assert_eq!(caller.scopes(), ["s1"]);
        assert_eq!(caller.principal(), "u");
    }
}
