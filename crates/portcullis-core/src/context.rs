//! What layers learn about a request, left in its extensions for the layers
//! after them and for the application.
//!
//! Every fact lives in one extension, the [`RequestContext`]: the first
//! layer with something to say inserts it, the others write into it, and
//! the application reads it with [`RequestContextExt`]
//! (`request.caller()`, `request.api_key()`, `request.waf_labels()`).
//!
//! - [`Caller`]: who made the request, written by the SigV4, JWT and custom
//!   authorizer layers.
//! - [`ApiKeyContext`]: which API key, and its usage plan, written by the API-key
//!   layer and read by the throttle and quota layers.
//! - [`ApiKeySource`]: where the API-key layer reads a key, shared by the
//!   API-key layer and the OpenAPI definitions that name it.
//! - [`UsageIdentifierKey`]: the API key an authorizer chose (API Gateway's
//!   AUTHORIZER key source).
//! - [`WafLabels`]: the labels WAF rules added.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use self::subtle_free_eq::constant_time_eq;
use serde_json::Value;

use crate::plan::UsagePlan;

pub(crate) mod record;
mod request;

pub use self::request::{RequestContext, RequestContextExt};

/// How a [`Caller`] was authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// AWS Signature Version 4 with IAM credentials (the SigV4 layer).
    Iam,
    /// A JWT from a Cognito user pool or another OpenID Connect issuer.
    Jwt,
    /// A custom (Lambda-style) authorizer.
    CustomAuthorizer,
    /// Any other means, named by the application.
    Other(&'static str),
}

impl AuthMethod {
    /// A short name for logs and metrics.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthMethod::Iam => "iam",
            AuthMethod::Jwt => "jwt",
            AuthMethod::CustomAuthorizer => "custom_authorizer",
            AuthMethod::Other(name) => name,
        }
    }
}

/// The authenticated caller of a request.
///
/// The principal is what the layer that authenticated it knows the caller by:
/// an IAM ARN for SigV4, the `sub` (or `username`) claim for a JWT, the
/// `principalId` of a custom authorizer. Claims hold the token's claims or the
/// authorizer's context.
///
/// ```
/// use portcullis_core::context::{AuthMethod, Caller};
///
/// let caller = Caller::new("user-123", AuthMethod::Jwt)
///     .with_groups(["admins"])
///     .with_scopes(["loyalty/read"]);
/// assert!(caller.in_group("admins"));
/// assert!(caller.has_scope("loyalty/read"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Caller {
    principal: Arc<str>,
    method: AuthMethod,
    groups: Arc<[String]>,
    scopes: Arc<[String]>,
    claims: Arc<BTreeMap<String, Value>>,
}

impl Caller {
    /// A caller known by `principal`, authenticated by `method`.
    pub fn new(principal: impl Into<Arc<str>>, method: AuthMethod) -> Self {
        // Shared empty values: a caller without groups, scopes or claims
        // costs no allocation for them.
        static NO_STRINGS: LazyLock<Arc<[String]>> = LazyLock::new(|| Arc::from([]));
        static NO_CLAIMS: LazyLock<Arc<BTreeMap<String, Value>>> = LazyLock::new(Arc::default);
        Self {
            principal: principal.into(),
            method,
            groups: Arc::clone(&NO_STRINGS),
            scopes: Arc::clone(&NO_STRINGS),
            claims: Arc::clone(&NO_CLAIMS),
        }
    }

    /// Sets the caller's groups (such as `cognito:groups`).
    #[must_use]
    pub fn with_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the caller's OAuth scopes.
    #[must_use]
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the caller's claims or attributes.
    #[must_use]
    pub fn with_claims(mut self, claims: BTreeMap<String, Value>) -> Self {
        self.claims = Arc::new(claims);
        self
    }

    /// The principal: an id or an ARN.
    #[must_use]
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// How the caller was authenticated.
    #[must_use]
    pub fn method(&self) -> AuthMethod {
        self.method
    }

    /// The caller's groups.
    #[must_use]
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// The caller's scopes.
    #[must_use]
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The caller's claims or attributes.
    #[must_use]
    pub fn claims(&self) -> &BTreeMap<String, Value> {
        &self.claims
    }

    /// One claim or attribute.
    #[must_use]
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }

    /// Whether the caller is in `group`.
    #[must_use]
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// Whether the caller holds `scope`.
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// The API key a request presented, once the API-key layer has accepted it.
///
/// It holds the key's id, never its value, and the usage plan that applies to
/// the key on this stage (API Gateway allows at most one per stage).
///
/// Cloning it, and inserting it into a request, costs one atomic increment:
/// everything sits behind one `Arc`.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKeyContext {
    inner: Arc<ApiKeyInner>,
}

#[derive(Clone, Debug, PartialEq)]
struct ApiKeyInner {
    key_id: Arc<str>,
    name: Option<Arc<str>>,
    customer_id: Option<Arc<str>>,
    usage_plan: Option<Arc<UsagePlan>>,
}

impl ApiKeyContext {
    /// The context of the key with this id.
    pub fn new(key_id: impl Into<Arc<str>>) -> Self {
        Self {
            inner: Arc::new(ApiKeyInner {
                key_id: key_id.into(),
                name: None,
                customer_id: None,
                usage_plan: None,
            }),
        }
    }

    /// Sets the key's name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<Arc<str>>) -> Self {
        Arc::make_mut(&mut self.inner).name = Some(name.into());
        self
    }

    /// Sets the key's customer id (API Gateway's `customerId`).
    #[must_use]
    pub fn with_customer_id(mut self, customer_id: impl Into<Arc<str>>) -> Self {
        Arc::make_mut(&mut self.inner).customer_id = Some(customer_id.into());
        self
    }

    /// Sets the usage plan that applies to the key on this stage.
    #[must_use]
    pub fn with_usage_plan(mut self, plan: Arc<UsagePlan>) -> Self {
        Arc::make_mut(&mut self.inner).usage_plan = Some(plan);
        self
    }

    /// The key's id.
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.inner.key_id
    }

    /// The key's id, shared.
    #[must_use]
    pub fn key_id_arc(&self) -> &Arc<str> {
        &self.inner.key_id
    }

    /// The key's name.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// The key's customer id.
    #[must_use]
    pub fn customer_id(&self) -> Option<&str> {
        self.inner.customer_id.as_deref()
    }

    /// The usage plan that applies to the key on this stage.
    #[must_use]
    pub fn usage_plan(&self) -> Option<&Arc<UsagePlan>> {
        self.inner.usage_plan.as_ref()
    }
}

/// Where the API-key layer reads a request's key: API Gateway's
/// `apiKeySource` (`x-amazon-apigateway-api-key-source` in an OpenAPI
/// export), with its two values.
///
/// ```
/// use portcullis_core::context::ApiKeySource;
///
/// assert_eq!(ApiKeySource::default(), ApiKeySource::Header);
/// let source: ApiKeySource = serde_json::from_str(r#""AUTHORIZER""#).unwrap();
/// assert_eq!(source, ApiKeySource::Authorizer);
/// ```
///
/// API Gateway defines exactly these two values, so the enum is exhaustive:
/// a layer matches on it without a fallback arm.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum ApiKeySource {
    /// A request header, `x-api-key` unless configured otherwise. gRPC
    /// metadata are HTTP/2 headers, so this covers gRPC clients too.
    #[default]
    #[serde(rename = "HEADER")]
    Header,
    /// The key an authorizer chose: the [`UsageIdentifierKey`] an earlier
    /// layer put in the request's [`RequestContext`].
    #[serde(rename = "AUTHORIZER")]
    Authorizer,
}

/// The API key an authorizer chose for the request, API Gateway's
/// `usageIdentifierKey` (the AUTHORIZER API-key source).
///
/// It holds a secret: `Debug` redacts it, and equality is constant-time.
#[derive(Clone)]
pub struct UsageIdentifierKey(Arc<str>);

impl UsageIdentifierKey {
    /// Wraps a key value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The key's value. Handle it as a secret.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl PartialEq for UsageIdentifierKey {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for UsageIdentifierKey {}

impl fmt::Debug for UsageIdentifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UsageIdentifierKey(<redacted>)")
    }
}

/// The labels WAF rules added to a request, fully qualified (for example
/// `awswaf:123456789012:webacl:api-acl:internal` or
/// `awswaf:clientip:geo:country:US`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WafLabels(Vec<String>);

impl WafLabels {
    /// No labels.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a label, unless it is already present.
    pub fn add(&mut self, label: impl Into<String>) {
        let label = label.into();
        if !self.contains(&label) {
            self.0.push(label);
        }
    }

    /// Whether the request carries exactly this label.
    #[must_use]
    pub fn contains(&self, label: &str) -> bool {
        self.0.iter().any(|l| l == label)
    }

    /// Whether any label lies in this namespace: a prefix that ends at a `:`
    /// boundary (`awswaf:clientip:geo:` matches `awswaf:clientip:geo:country:US`).
    #[must_use]
    pub fn contains_namespace(&self, namespace: &str) -> bool {
        let namespace = namespace.strip_suffix(':').unwrap_or(namespace);
        self.0.iter().any(|l| {
            l.strip_prefix(namespace)
                .is_some_and(|rest| rest.starts_with(':'))
        })
    }

    /// The labels, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// How many labels there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<S: Into<String>> FromIterator<S> for WafLabels {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut labels = WafLabels::new();
        for label in iter {
            labels.add(label);
        }
        labels
    }
}

mod subtle_free_eq {
    /// Compares two byte strings in time that depends only on their lengths.
    pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        a.ct_eq(b).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_identifier_key_is_redacted() {
        let key = UsageIdentifierKey::new("abcdefghijklmnopqrstuvwxyz0123");
        let shown = format!("{key:?}");
        assert!(!shown.contains("abcdef"), "{shown}");
        assert_eq!(
            key,
            UsageIdentifierKey::new("abcdefghijklmnopqrstuvwxyz0123")
        );
        assert_ne!(
            key,
            UsageIdentifierKey::new("abcdefghijklmnopqrstuvwxyz0124")
        );
    }

    #[test]
    fn labels_match_by_name_and_namespace() {
        let labels: WafLabels = [
            "awswaf:clientip:geo:country:US",
            "awswaf:clientip:geo:country:US",
        ]
        .into_iter()
        .collect();
        assert_eq!(labels.len(), 1);
        assert!(labels.contains("awswaf:clientip:geo:country:US"));
        assert!(labels.contains_namespace("awswaf:clientip:geo:"));
        assert!(labels.contains_namespace("awswaf:clientip:geo"));
        assert!(!labels.contains_namespace("awswaf:clientip:ge"));
    }

    #[test]
    fn caller_exposes_groups_scopes_and_claims() {
        let mut claims = BTreeMap::new();
        claims.insert("email".to_owned(), Value::from("a@example.com"));
        let caller = Caller::new("sub-1", AuthMethod::Jwt)
            .with_groups(["Admins"])
            .with_scopes(["a/b"])
            .with_claims(claims);
        assert_eq!(caller.principal(), "sub-1");
        assert_eq!(caller.method().as_str(), "jwt");
        assert!(caller.in_group("Admins") && !caller.in_group("admins"));
        assert!(caller.has_scope("a/b"));
        assert_eq!(caller.claim("email"), Some(&Value::from("a@example.com")));
    }
}
