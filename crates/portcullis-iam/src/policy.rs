//! Policy documents: parsed, validated and compiled once, at load time.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::condition::Condition;
use crate::error::PolicyDocumentError;
use crate::json::{Path, as_object, as_str, string_list};
use crate::pattern::Pattern;

/// The largest policy document [`PolicyDocument::from_json`] reads: 128 KiB.
///
/// IAM's own limits are far lower (6,144 characters for a managed policy,
/// 8,192 for an API Gateway resource policy); this bound keeps a hostile
/// document from costing much while leaving room for generated policies, such
/// as a custom authorizer's answer.
pub const MAX_POLICY_BYTES: usize = 128 * 1024;

/// The policy language versions IAM accepts.
const VERSIONS: [&str; 2] = ["2012-10-17", "2008-10-17"];

/// An IAM policy document: an identity policy, a resource policy, or the
/// policy a custom authorizer returns.
///
/// It is validated and its wildcard patterns compiled when it is loaded, so
/// evaluation does no parsing. Serde reads and writes the JSON form IAM uses
/// (`Version`, `Statement` as one object or an array, `Sid`, `Effect`,
/// `Principal`/`NotPrincipal`, `Action`/`NotAction`, `Resource`/`NotResource`,
/// `Condition`); a deserialisation error names the path of the bad field.
///
/// ```
/// use portcullis_iam::{Decision, PolicyDocument, RequestContext};
///
/// let policy = PolicyDocument::from_json(r#"{
///     "Version": "2012-10-17",
///     "Statement": {
///         "Effect": "Allow",
///         "Action": "execute-api:Invoke",
///         "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/*"
///     }
/// }"#)?;
/// let ctx = RequestContext::new(
///     "arn:aws:iam::123456789012:user/alice",
///     "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets/1",
/// );
/// assert_eq!(policy.evaluate(&ctx), Decision::Allow);
///
/// let err = PolicyDocument::from_json(r#"{"Statement":[{"Effect":"Allow","Action":"x","Resource":"*"}]}"#)
///     .unwrap_err();
/// assert_eq!(err.path(), Some("Statement[0].Action"));
/// # Ok::<(), portcullis_iam::PolicyDocumentError>(())
/// ```
#[derive(Clone)]
pub struct PolicyDocument {
    version: Option<Box<str>>,
    id: Option<Box<str>>,
    statements: Box<[Statement]>,
    source: Arc<Value>,
}

impl PolicyDocument {
    /// Parses, validates and compiles a policy document, refusing documents
    /// larger than [`MAX_POLICY_BYTES`].
    ///
    /// # Errors
    ///
    /// [`PolicyDocumentError::TooLarge`] over the size limit, [`PolicyDocumentError::Json`] for
    /// text that is not JSON, and [`PolicyDocumentError::Invalid`] (with the path of
    /// the bad field) for JSON that is not a valid policy.
    pub fn from_json(json: &str) -> Result<Self, PolicyDocumentError> {
        Self::from_json_with_limit(json, MAX_POLICY_BYTES)
    }

    /// [`from_json`](Self::from_json) with a size limit of your own.
    ///
    /// # Errors
    ///
    /// As [`from_json`](Self::from_json).
    pub fn from_json_with_limit(json: &str, limit: usize) -> Result<Self, PolicyDocumentError> {
        if json.len() > limit {
            return Err(PolicyDocumentError::TooLarge {
                size: json.len(),
                limit,
            });
        }
        let value: Value =
            serde_json::from_str(json).map_err(|e| PolicyDocumentError::Json(e.to_string()))?;
        Self::from_value(value)
    }

    /// Validates and compiles a policy document already parsed as JSON.
    ///
    /// # Errors
    ///
    /// [`PolicyDocumentError::Invalid`], with the path of the bad field.
    pub fn from_value(value: Value) -> Result<Self, PolicyDocumentError> {
        let mut path = Path::default();
        let object = as_object(&value, &path)?;
        let mut version = None;
        let mut id = None;
        let mut statements = None;
        for (key, field) in object {
            path.push_key(key);
            match key.as_str() {
                "Version" => {
                    let v = as_str(field, &path)?;
                    if !VERSIONS.contains(&v) {
                        return Err(path
                            .invalid(format!("unsupported version `{v}`, expected `2012-10-17`")));
                    }
                    version = Some(v.into());
                }
                "Id" => id = Some(as_str(field, &path)?.into()),
                "Statement" => {
                    let list: Vec<&Value> = match field {
                        Value::Array(items) => items.iter().collect(),
                        Value::Object(_) => vec![field],
                        _ => return Err(path.invalid("expected a statement or an array of them")),
                    };
                    let mut compiled = Vec::with_capacity(list.len());
                    for (index, item) in list.iter().enumerate() {
                        if matches!(field, Value::Array(_)) {
                            path.push_index(index);
                        }
                        compiled.push(Statement::compile(item, &mut path)?);
                        if matches!(field, Value::Array(_)) {
                            path.pop();
                        }
                    }
                    statements = Some(compiled);
                }
                other => return Err(path.invalid(format!("unknown policy element `{other}`"))),
            }
            path.pop();
        }
        let statements = statements.ok_or_else(|| path.invalid("missing `Statement`"))?;
        Ok(Self {
            version,
            id,
            statements: statements.into(),
            source: Arc::new(value),
        })
    }

    /// The `Version` element, when present.
    #[must_use]
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The `Id` element, when present.
    #[must_use]
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The statements, in document order.
    #[must_use]
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// The document as it was loaded.
    #[must_use]
    pub fn as_json(&self) -> &Value {
        &self.source
    }
}

impl fmt::Debug for PolicyDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyDocument")
            .field("version", &self.version)
            .field("id", &self.id)
            .field("statements", &self.statements)
            .finish()
    }
}

impl PartialEq for PolicyDocument {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Serialize for PolicyDocument {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.source.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PolicyDocument {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        PolicyDocument::from_value(value).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for PolicyDocument {
    type Err = PolicyDocumentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_json(s)
    }
}

/// A statement's effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// The statement allows what it matches.
    Allow,
    /// The statement denies what it matches; a matching Deny always wins.
    Deny,
}

/// One compiled statement of a [`PolicyDocument`].
#[derive(Clone, Debug)]
pub struct Statement {
    pub(crate) sid: Option<Box<str>>,
    pub(crate) effect: Effect,
    pub(crate) principal: Option<PrincipalSpec>,
    pub(crate) not_principal: bool,
    pub(crate) actions: Vec<Pattern>,
    pub(crate) not_action: bool,
    pub(crate) resources: Vec<Pattern>,
    pub(crate) not_resource: bool,
    pub(crate) conditions: Vec<Condition>,
}

impl Statement {
    /// The `Sid`, when present.
    #[must_use]
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// Allow or Deny.
    #[must_use]
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// Whether the statement names principals (`Principal` or
    /// `NotPrincipal`), as a resource policy's statements do.
    #[must_use]
    pub fn has_principal(&self) -> bool {
        self.principal.is_some()
    }

    fn compile(value: &Value, path: &mut Path) -> Result<Self, PolicyDocumentError> {
        let object = as_object(value, path)?;
        let mut sid = None;
        let mut effect = None;
        let mut principal: Option<(PrincipalSpec, bool)> = None;
        let mut actions: Option<(Vec<Pattern>, bool)> = None;
        let mut resources: Option<(Vec<Pattern>, bool)> = None;
        let mut conditions = Vec::new();
        for (key, field) in object {
            path.push_key(key);
            match key.as_str() {
                "Sid" => sid = Some(as_str(field, path)?.into()),
                "Effect" => {
                    effect = Some(match as_str(field, path)? {
                        "Allow" => Effect::Allow,
                        "Deny" => Effect::Deny,
                        other => {
                            return Err(path.invalid(format!(
                                "unknown effect `{other}`, expected `Allow` or `Deny`"
                            )));
                        }
                    });
                }
                "Principal" | "NotPrincipal" => {
                    if principal.is_some() {
                        return Err(path.invalid("`Principal` and `NotPrincipal` are exclusive"));
                    }
                    principal = Some((PrincipalSpec::compile(field, path)?, key == "NotPrincipal"));
                }
                "Action" | "NotAction" => {
                    if actions.is_some() {
                        return Err(path.invalid("`Action` and `NotAction` are exclusive"));
                    }
                    let list = string_list(field, path, |s, path| {
                        if s == "*"
                            || s.split_once(':')
                                .is_some_and(|(svc, name)| !svc.is_empty() && !name.is_empty())
                        {
                            Ok(Pattern::case_insensitive(s))
                        } else {
                            Err(path
                                .invalid(format!("action `{s}` is not `*` or `service:action`")))
                        }
                    })?;
                    actions = Some((list, key == "NotAction"));
                }
                "Resource" | "NotResource" => {
                    if resources.is_some() {
                        return Err(path.invalid("`Resource` and `NotResource` are exclusive"));
                    }
                    let list = string_list(field, path, |s, path| {
                        if s.is_empty() {
                            Err(path.invalid("empty resource"))
                        } else {
                            Ok(Pattern::new(s))
                        }
                    })?;
                    resources = Some((list, key == "NotResource"));
                }
                "Condition" => conditions = Condition::compile_block(field, path)?,
                other => {
                    return Err(path.invalid(format!("unknown statement element `{other}`")));
                }
            }
            path.pop();
        }
        let effect = effect.ok_or_else(|| path.invalid("missing `Effect`"))?;
        let (actions, not_action) =
            actions.ok_or_else(|| path.invalid("missing `Action` or `NotAction`"))?;
        let (resources, not_resource) =
            resources.ok_or_else(|| path.invalid("missing `Resource` or `NotResource`"))?;
        let (principal, not_principal) = match principal {
            Some((spec, not)) => (Some(spec), not),
            None => (None, false),
        };
        Ok(Self {
            sid,
            effect,
            principal,
            not_principal,
            actions,
            not_action,
            resources,
            not_resource,
            conditions,
        })
    }
}

/// The principals a resource-policy statement names.
#[derive(Clone, Debug)]
pub(crate) enum PrincipalSpec {
    /// `"*"` or `{"AWS": "*"}`: everyone, anonymous callers included.
    Any,
    /// A list of principals.
    List(Vec<PrincipalId>),
}

#[derive(Clone, Debug)]
pub(crate) enum PrincipalId {
    /// Every principal of an account: `"123456789012"` or
    /// `"arn:aws:iam::123456789012:root"`.
    Account(Box<str>),
    /// One principal, by ARN (or a service or federated name).
    Exact(Box<str>),
}

impl PrincipalSpec {
    fn compile(value: &Value, path: &mut Path) -> Result<Self, PolicyDocumentError> {
        match value {
            Value::String(s) if s == "*" => Ok(PrincipalSpec::Any),
            Value::String(_) => {
                Err(path.invalid("a principal is `*` or an object such as `{\"AWS\": ...}`"))
            }
            Value::Object(map) => {
                let mut ids = Vec::new();
                for (kind, field) in map {
                    path.push_key(kind);
                    match kind.as_str() {
                        "AWS" => {
                            let list = string_list(field, path, |s, _| Ok(s.to_owned()))?;
                            for s in list {
                                if s == "*" {
                                    path.pop();
                                    return Ok(PrincipalSpec::Any);
                                }
                                ids.push(PrincipalId::parse_aws(&s));
                            }
                        }
                        "Service" | "Federated" | "CanonicalUser" => {
                            let list = string_list(field, path, |s, _| Ok(s.to_owned()))?;
                            ids.extend(list.into_iter().map(|s| PrincipalId::Exact(s.into())));
                        }
                        other => {
                            return Err(path.invalid(format!("unknown principal type `{other}`")));
                        }
                    }
                    path.pop();
                }
                Ok(PrincipalSpec::List(ids))
            }
            _ => Err(path.invalid("a principal is `*` or an object such as `{\"AWS\": ...}`")),
        }
    }

    pub(crate) fn matches(&self, principal: Option<&str>) -> bool {
        match self {
            PrincipalSpec::Any => true,
            PrincipalSpec::List(ids) => {
                principal.is_some_and(|p| ids.iter().any(|id| id.matches(p)))
            }
        }
    }
}

impl PrincipalId {
    fn parse_aws(s: &str) -> Self {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            return PrincipalId::Account(s.into());
        }
        if let Some(account) = s
            .strip_prefix("arn:")
            .and_then(|rest| arn_field(s, 4).filter(|_| rest.ends_with(":root")))
        {
            return PrincipalId::Account(account.into());
        }
        PrincipalId::Exact(s.into())
    }

    fn matches(&self, principal: &str) -> bool {
        match self {
            PrincipalId::Account(account) => {
                arn_field(principal, 4).is_some_and(|a| a == &**account)
            }
            PrincipalId::Exact(arn) => &**arn == principal || role_matches_session(arn, principal),
        }
    }
}

/// The `n`th colon-separated field of an ARN (0 is `arn`).
fn arn_field(arn: &str, n: usize) -> Option<&str> {
    arn.splitn(6, ':').nth(n)
}

/// Whether `role_arn` (`arn:aws:iam::ACCOUNT:role/path/NAME`) is the role
/// behind the session `principal` (`arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`),
/// as IAM matches a role named in a resource policy.
fn role_matches_session(role_arn: &str, principal: &str) -> bool {
    let (Some(role_resource), Some(session_resource)) =
        (arn_field(role_arn, 5), arn_field(principal, 5))
    else {
        return false;
    };
    let (Some(role_path), Some(session)) = (
        role_resource.strip_prefix("role/"),
        session_resource.strip_prefix("assumed-role/"),
    ) else {
        return false;
    };
    let role_name = role_path.rsplit('/').next().unwrap_or(role_path);
    let session_role = session.split('/').next().unwrap_or(session);
    arn_field(role_arn, 2) == Some("iam")
        && arn_field(principal, 2) == Some("sts")
        && arn_field(role_arn, 4) == arn_field(principal, 4)
        && role_name == session_role
}
