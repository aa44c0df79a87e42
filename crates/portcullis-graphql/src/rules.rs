//! The `@aws_*` directives as rules, and AppSync's way of deciding whether a
//! request may read a field.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use async_graphql::Value;
use async_graphql::parser::types::{ConstDirective, TypeKind, TypeSystemDefinition};
use portcullis_core::context::{ApiKeyContext, Caller};
use serde_json::Value as Json;

use crate::mode::AuthMode;

/// Who made a GraphQL request, and by which mode: what the
/// [`AppSyncAuthLayer`](crate::AppSyncAuthLayer) leaves in the request's
/// extensions, and what the [`AppSyncDirectives`](crate::AppSyncDirectives)
/// extension reads from the GraphQL request's data.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestAuth {
    mode: AuthMode,
    caller: Option<Caller>,
    api_key: Option<ApiKeyContext>,
}

impl RequestAuth {
    /// A request authorized by `mode`.
    #[must_use]
    pub fn new(mode: AuthMode) -> Self {
        Self {
            mode,
            caller: None,
            api_key: None,
        }
    }

    /// Sets the caller the mode's layer established.
    #[must_use]
    pub fn with_caller(mut self, caller: Caller) -> Self {
        self.caller = Some(caller);
        self
    }

    /// Sets the API key the API-key layer accepted.
    #[must_use]
    pub fn with_api_key(mut self, key: ApiKeyContext) -> Self {
        self.api_key = Some(key);
        self
    }

    /// The mode that authorized the request.
    #[must_use]
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The caller (IAM principal, token subject, authorizer principal), when
    /// the mode has one.
    #[must_use]
    pub fn caller(&self) -> Option<&Caller> {
        self.caller.as_ref()
    }

    /// The API key, in API_KEY mode.
    #[must_use]
    pub fn api_key(&self) -> Option<&ApiKeyContext> {
        self.api_key.as_ref()
    }

    /// Whether the caller is in any of `groups`: the caller's groups (the
    /// JWT layer reads `cognito:groups`), or else the token's
    /// `cognito:groups` claim.
    #[must_use]
    pub fn in_any_group(&self, groups: &BTreeSet<String>) -> bool {
        let Some(caller) = &self.caller else {
            return false;
        };
        if !caller.groups().is_empty() {
            return caller.groups().iter().any(|g| groups.contains(g));
        }
        match caller.claim("cognito:groups") {
            Some(Json::Array(items)) => items
                .iter()
                .any(|g| g.as_str().is_some_and(|g| groups.contains(g))),
            Some(Json::String(one)) => groups.contains(one),
            _ => false,
        }
    }
}

/// The modes (and, for Cognito user pools, the groups) one type or field
/// allows: the `@aws_*` directives on it.
///
/// ```
/// use portcullis_graphql::{AuthMode, Rules};
///
/// // @aws_api_key @aws_cognito_user_pools(cognito_groups: ["Admin"])
/// let rules = Rules::new()
///     .allow(AuthMode::ApiKey)
///     .allow_groups(["Admin"]);
/// assert!(rules.names(AuthMode::ApiKey));
/// assert!(!rules.names(AuthMode::AwsIam));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Per mode: the groups required (empty: any caller of the mode).
    modes: BTreeMap<AuthMode, BTreeSet<String>>,
}

impl Rules {
    /// No directive.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows `mode` (`@aws_api_key`, `@aws_iam`, `@aws_oidc`, `@aws_lambda`,
    /// `@aws_cognito_user_pools`).
    #[must_use]
    pub fn allow(mut self, mode: AuthMode) -> Self {
        self.modes.entry(mode).or_default();
        self
    }

    /// Allows Cognito user-pool callers in any of `groups`
    /// (`@aws_cognito_user_pools(cognito_groups: [...])` or
    /// `@aws_auth(cognito_groups: [...])`). Several group directives on one
    /// type or field add up, as in Amplify's simulator.
    #[must_use]
    pub fn allow_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.modes
            .entry(AuthMode::AmazonCognitoUserPools)
            .or_default()
            .extend(groups.into_iter().map(Into::into));
        self
    }

    /// Whether no directive is present.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.modes.is_empty()
    }

    /// Whether the rules name `mode`.
    #[must_use]
    pub fn names(&self, mode: AuthMode) -> bool {
        self.modes.contains_key(&mode)
    }

    /// The groups required of `mode`'s callers (empty: any).
    #[must_use]
    pub fn groups(&self, mode: AuthMode) -> Option<&BTreeSet<String>> {
        self.modes.get(&mode)
    }

    /// Whether `auth` passes these rules: its mode is named, and, when groups
    /// are named for it, the caller is in one of them.
    #[must_use]
    pub fn allows(&self, auth: &RequestAuth) -> bool {
        match self.modes.get(&auth.mode()) {
            None => false,
            Some(groups) if groups.is_empty() => true,
            Some(groups) => auth.in_any_group(groups),
        }
    }
}

/// What decided a field: for logs and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The field's own directives.
    Field,
    /// The directives on the type that holds the field.
    Type,
    /// No directive on either: only the default mode may read it.
    DefaultMode,
}

/// An API's authorization: its default mode, and the `@aws_*` directives
/// on its types and fields.
///
/// AppSync's rules:
/// - a field's directives override its type's;
/// - with no directive on either, only the default mode may read the field;
/// - once directives name modes, the default mode is not implied;
/// - groups must intersect the caller's `cognito:groups`.
///
/// ```
/// use portcullis_graphql::{AuthMode, AuthPolicy, RequestAuth};
///
/// let policy = AuthPolicy::from_sdl(AuthMode::AmazonCognitoUserPools, r#"
///     type Query {
///         searchFlights(from: String!, to: String!): [Flight] @aws_api_key @aws_cognito_user_pools
///         listBookings: [String] @aws_cognito_user_pools(cognito_groups: ["Admin"])
///         me: String
///     }
///     type Flight @aws_api_key @aws_cognito_user_pools { id: ID! }
/// "#).unwrap();
/// let key = RequestAuth::new(AuthMode::ApiKey);
/// assert!(policy.allows("Query", "searchFlights", &key));
/// assert!(policy.allows("Flight", "id", &key));
/// assert!(!policy.allows("Query", "listBookings", &key));
/// assert!(!policy.allows("Query", "me", &key)); // no directive: the default mode only
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthPolicy {
    default_mode: AuthMode,
    types: HashMap<String, Rules>,
    fields: HashMap<String, HashMap<String, Rules>>,
    subscription_type: Option<String>,
}

/// A schema whose directives cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The SDL does not parse.
    #[error("the schema does not parse: {0}")]
    Parse(#[from] async_graphql::parser::Error),
    /// A directive's `cognito_groups` argument is not a list of strings.
    #[error("{at}: `cognito_groups` must be a list of strings")]
    BadGroups {
        /// The type or `Type.field`, and the directive.
        at: String,
    },
    /// `@aws_auth` on a type, or on a field of a type that is not a root
    /// operation type: AppSync accepts it on top-level fields only.
    #[error(
        "{at}: @aws_auth works only on the fields of the query, mutation and subscription types"
    )]
    AwsAuthNotTopLevel {
        /// The type or `Type.field` carrying it.
        at: String,
    },
    /// `@aws_auth`, which AppSync accepts only when Cognito user pools are
    /// the default mode.
    #[error(
        "{at}: @aws_auth works only when AMAZON_COGNITO_USER_POOLS is the default mode (the default is {default})"
    )]
    AwsAuthNeedsUserPools {
        /// The `Type.field` carrying it.
        at: String,
        /// The API's default mode.
        default: AuthMode,
    },
}

impl AuthPolicy {
    /// A policy with no directive: only `default_mode` may read anything.
    #[must_use]
    pub fn new(default_mode: AuthMode) -> Self {
        Self {
            default_mode,
            types: HashMap::new(),
            fields: HashMap::new(),
            subscription_type: None,
        }
    }

    /// The directives on a type (code-first).
    #[must_use]
    pub fn type_rules(mut self, type_name: impl Into<String>, rules: Rules) -> Self {
        self.types.insert(type_name.into(), rules);
        self
    }

    /// The directives on a field (code-first).
    #[must_use]
    pub fn field_rules(
        mut self,
        type_name: impl Into<String>,
        field: impl Into<String>,
        rules: Rules,
    ) -> Self {
        self.fields
            .entry(type_name.into())
            .or_default()
            .insert(field.into(), rules);
        self
    }

    /// Reads the `@aws_*` directives of a schema's SDL: AppSync's schema, or
    /// the SDL async-graphql exports for a code-first schema that uses the
    /// directives of [`directives`](crate::directives). Other directives are
    /// ignored, and so are types that are not objects or interfaces.
    ///
    /// # Errors
    ///
    /// [`PolicyError`]: the SDL does not parse, a `cognito_groups` argument
    /// is not a list of strings, or `@aws_auth` is used with a default mode
    /// other than AMAZON_COGNITO_USER_POOLS.
    pub fn from_sdl(default_mode: AuthMode, sdl: &str) -> Result<Self, PolicyError> {
        let document = async_graphql::parser::parse_schema(sdl)?;
        let mut roots: Vec<String> = Vec::new();
        let mut subscription_type = None;
        for definition in &document.definitions {
            if let TypeSystemDefinition::Schema(schema) = definition {
                let schema = &schema.node;
                if let Some(subscription) = &schema.subscription {
                    subscription_type = Some(subscription.node.to_string());
                }
                for root in [&schema.query, &schema.mutation, &schema.subscription]
                    .into_iter()
                    .flatten()
                {
                    roots.push(root.node.to_string());
                }
            }
        }
        if roots.is_empty() {
            roots = vec!["Query".into(), "Mutation".into(), "Subscription".into()];
        }
        let mut policy = Self::new(default_mode);
        policy.subscription_type = subscription_type;
        for definition in &document.definitions {
            let TypeSystemDefinition::Type(ty) = definition else {
                continue;
            };
            let ty = &ty.node;
            let type_name = ty.name.node.as_str();
            let fields = match &ty.kind {
                TypeKind::Object(object) => &object.fields,
                TypeKind::Interface(interface) => &interface.fields,
                _ => continue,
            };
            if ty.directives.iter().any(|d| d.node.name.node == "aws_auth") {
                return Err(PolicyError::AwsAuthNotTopLevel {
                    at: type_name.to_owned(),
                });
            }
            let top_level = roots.iter().any(|r| r == type_name);
            let rules = rules_of(
                ty.directives.iter().map(|d| &d.node),
                type_name,
                default_mode,
            )?;
            if !rules.is_empty() {
                let entry = policy.types.entry(type_name.to_owned()).or_default();
                for (mode, groups) in rules.modes {
                    entry.modes.entry(mode).or_default().extend(groups);
                }
            }
            for field in fields {
                let field = &field.node;
                let at = format!("{type_name}.{}", field.name.node);
                if !top_level
                    && field
                        .directives
                        .iter()
                        .any(|d| d.node.name.node == "aws_auth")
                {
                    return Err(PolicyError::AwsAuthNotTopLevel { at });
                }
                let rules = rules_of(field.directives.iter().map(|d| &d.node), &at, default_mode)?;
                if !rules.is_empty() {
                    policy
                        .fields
                        .entry(type_name.to_owned())
                        .or_default()
                        .insert(field.name.node.to_string(), rules);
                }
            }
        }
        Ok(policy)
    }

    /// The API's default mode.
    #[must_use]
    pub fn default_mode(&self) -> AuthMode {
        self.default_mode
    }

    /// The subscription type's name, when the SDL's `schema { ... }` names
    /// one (async-graphql's SDL does when it is not `Subscription`).
    #[must_use]
    pub fn subscription_type(&self) -> Option<&str> {
        self.subscription_type.as_deref()
    }

    /// Names the subscription type (code-first policies whose subscription
    /// type is not called `Subscription`).
    #[must_use]
    pub fn with_subscription_type(mut self, name: impl Into<String>) -> Self {
        self.subscription_type = Some(name.into());
        self
    }

    /// The rules that decide `type_name.field`, and where they come from.
    /// [`Source::DefaultMode`] comes with rules naming the default mode only.
    #[must_use]
    pub fn effective_rules(&self, type_name: &str, field: &str) -> (Rules, Source) {
        if let Some(rules) = self.fields.get(type_name).and_then(|f| f.get(field)) {
            return (rules.clone(), Source::Field);
        }
        if let Some(rules) = self.types.get(type_name) {
            return (rules.clone(), Source::Type);
        }
        (Rules::new().allow(self.default_mode), Source::DefaultMode)
    }

    /// Whether `auth` may read `type_name.field`.
    #[must_use]
    pub fn allows(&self, type_name: &str, field: &str, auth: &RequestAuth) -> bool {
        if let Some(rules) = self.fields.get(type_name).and_then(|f| f.get(field)) {
            return rules.allows(auth);
        }
        if let Some(rules) = self.types.get(type_name) {
            return rules.allows(auth);
        }
        auth.mode() == self.default_mode
    }
}

/// The rules of one directive list.
fn rules_of<'a>(
    directives: impl Iterator<Item = &'a ConstDirective>,
    at: &str,
    default_mode: AuthMode,
) -> Result<Rules, PolicyError> {
    let mut rules = Rules::new();
    for directive in directives {
        let name = directive.name.node.as_str();
        let mode = match name {
            "aws_api_key" => AuthMode::ApiKey,
            "aws_iam" => AuthMode::AwsIam,
            "aws_oidc" => AuthMode::OpenidConnect,
            "aws_lambda" => AuthMode::AwsLambda,
            "aws_cognito_user_pools" => AuthMode::AmazonCognitoUserPools,
            "aws_auth" => {
                if default_mode != AuthMode::AmazonCognitoUserPools {
                    return Err(PolicyError::AwsAuthNeedsUserPools {
                        at: at.to_owned(),
                        default: default_mode,
                    });
                }
                AuthMode::AmazonCognitoUserPools
            }
            _ => continue,
        };
        rules = rules.allow(mode);
        if mode == AuthMode::AmazonCognitoUserPools
            && let Some(value) = directive.get_argument("cognito_groups")
        {
            let groups = string_list(&value.node).ok_or_else(|| PolicyError::BadGroups {
                at: format!("{at} @{name}"),
            })?;
            rules = rules.allow_groups(groups);
        }
    }
    Ok(rules)
}

fn string_list(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::List(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        // GraphQL input coercion: a single value where a list is expected.
        Value::String(s) => Some(vec![s.clone()]),
        Value::Null => Some(Vec::new()),
        _ => None,
    }
}

/// A policy shared by the extension's per-request instances.
pub(crate) type SharedPolicy = Arc<AuthPolicy>;

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::context::AuthMethod;

    const SDL: &str = r#"
        type Query @aws_iam {
            searchFlights(from: String!, to: String!): [Flight] @aws_api_key @aws_cognito_user_pools
            getLoyalty(customerId: ID!): Loyalty @aws_cognito_user_pools
            listBookings: [Booking] @aws_cognito_user_pools(cognito_groups: ["Admin"])
            legacy: String @aws_auth(cognito_groups: ["Admin", "Ops"])
            inherited: String
        }
        type Flight @aws_api_key @aws_cognito_user_pools { id: ID! price: Int @aws_iam }
        type Loyalty { points: Int }
        type Booking @aws_cognito_user_pools(cognito_groups: ["Admin"]) { id: ID! }
        type Open { plain: String }
        extend type Query { extra: String @aws_oidc @aws_lambda }
    "#;

    fn user(groups: &[&str]) -> RequestAuth {
        RequestAuth::new(AuthMode::AmazonCognitoUserPools)
            .with_caller(Caller::new("alice", AuthMethod::Jwt).with_groups(groups.iter().copied()))
    }

    fn policy() -> AuthPolicy {
        AuthPolicy::from_sdl(AuthMode::AmazonCognitoUserPools, SDL).expect("the SDL parses")
    }

    #[test]
    fn field_directives_override_the_types() {
        let p = policy();
        let iam = RequestAuth::new(AuthMode::AwsIam);
        // Query is @aws_iam, but each of these fields names its own modes.
        assert!(!p.allows("Query", "searchFlights", &iam));
        assert!(!p.allows("Query", "getLoyalty", &iam));
        // A field without directives inherits the type's.
        assert!(p.allows("Query", "inherited", &iam));
        assert!(!p.allows("Query", "inherited", &user(&[])));
        assert_eq!(p.effective_rules("Query", "inherited").1, Source::Type);
        // And a field's own directive wins over its type's the other way too.
        assert!(p.allows("Flight", "price", &iam));
        assert!(!p.allows("Flight", "price", &RequestAuth::new(AuthMode::ApiKey)));
        assert!(p.allows("Flight", "id", &RequestAuth::new(AuthMode::ApiKey)));
        assert_eq!(p.effective_rules("Flight", "price").1, Source::Field);
    }

    #[test]
    fn no_directive_means_the_default_mode_only() {
        let p = policy();
        assert!(p.allows("Loyalty", "points", &user(&[])));
        assert!(!p.allows("Loyalty", "points", &RequestAuth::new(AuthMode::ApiKey)));
        assert!(!p.allows("Open", "plain", &RequestAuth::new(AuthMode::AwsIam)));
        assert_eq!(p.effective_rules("Open", "plain").1, Source::DefaultMode);
        // Once a directive names modes, the default is not implied.
        let iam_default = AuthPolicy::from_sdl(
            AuthMode::AwsIam,
            "type Query { a: String @aws_api_key b: String }",
        )
        .expect("parses");
        let iam = RequestAuth::new(AuthMode::AwsIam);
        assert!(!iam_default.allows("Query", "a", &iam));
        assert!(iam_default.allows("Query", "b", &iam));
    }

    #[test]
    fn groups_must_intersect() {
        let p = policy();
        assert!(p.allows("Query", "listBookings", &user(&["Admin"])));
        assert!(p.allows("Query", "listBookings", &user(&["Staff", "Admin"])));
        assert!(!p.allows("Query", "listBookings", &user(&["Staff"])));
        assert!(!p.allows("Query", "listBookings", &user(&[])));
        assert!(p.allows("Query", "legacy", &user(&["Ops"])));
        assert!(!p.allows("Query", "legacy", &user(&["Staff"])));
        // Type-level groups apply to the type's fields.
        assert!(p.allows("Booking", "id", &user(&["Admin"])));
        assert!(!p.allows("Booking", "id", &user(&["Staff"])));
        // Groups only constrain user-pool callers; other modes must be named.
        assert!(!p.allows("Query", "listBookings", &RequestAuth::new(AuthMode::ApiKey)));
    }

    #[test]
    fn groups_fall_back_to_the_claim() {
        let mut claims = BTreeMap::new();
        claims.insert("cognito:groups".to_owned(), serde_json::json!(["Admin"]));
        let auth = RequestAuth::new(AuthMode::AmazonCognitoUserPools)
            .with_caller(Caller::new("bob", AuthMethod::Jwt).with_claims(claims));
        assert!(policy().allows("Query", "listBookings", &auth));
    }

    #[test]
    fn extensions_and_other_modes() {
        let p = policy();
        assert!(p.allows("Query", "extra", &RequestAuth::new(AuthMode::OpenidConnect)));
        assert!(p.allows("Query", "extra", &RequestAuth::new(AuthMode::AwsLambda)));
        assert!(!p.allows("Query", "extra", &user(&[])));
    }

    #[test]
    fn bad_schemas_fail_at_load_time() {
        let bad_groups = AuthPolicy::from_sdl(
            AuthMode::AmazonCognitoUserPools,
            "type Query { a: String @aws_cognito_user_pools(cognito_groups: [1]) }",
        );
        assert!(
            matches!(bad_groups, Err(PolicyError::BadGroups { at }) if at == "Query.a @aws_cognito_user_pools")
        );
        let aws_auth = AuthPolicy::from_sdl(
            AuthMode::ApiKey,
            r#"type Query { a: String @aws_auth(cognito_groups: ["A"]) }"#,
        );
        assert!(matches!(
            aws_auth,
            Err(PolicyError::AwsAuthNeedsUserPools { .. })
        ));
        assert!(matches!(
            AuthPolicy::from_sdl(AuthMode::ApiKey, "type Query {"),
            Err(PolicyError::Parse(_))
        ));
        let nested = AuthPolicy::from_sdl(
            AuthMode::AmazonCognitoUserPools,
            r#"type Query { a: A } type A { b: String @aws_auth(cognito_groups: ["X"]) }"#,
        );
        assert!(matches!(nested, Err(PolicyError::AwsAuthNotTopLevel { at }) if at == "A.b"));
        // A renamed root is a root.
        let renamed = AuthPolicy::from_sdl(
            AuthMode::AmazonCognitoUserPools,
            r#"schema { query: Root } type Root { b: String @aws_auth(cognito_groups: ["X"]) }"#,
        )
        .expect("a root field");
        assert!(
            renamed
                .effective_rules("Root", "b")
                .0
                .names(AuthMode::AmazonCognitoUserPools)
        );
    }

    #[test]
    fn code_first_matches_sdl() {
        let built = AuthPolicy::new(AuthMode::AmazonCognitoUserPools)
            .field_rules(
                "Query",
                "listBookings",
                Rules::new().allow_groups(["Admin"]),
            )
            .type_rules("Flight", Rules::new().allow(AuthMode::ApiKey));
        assert!(built.allows("Query", "listBookings", &user(&["Admin"])));
        assert!(!built.allows("Query", "listBookings", &user(&["Staff"])));
        assert!(built.allows("Flight", "id", &RequestAuth::new(AuthMode::ApiKey)));
        assert!(built.allows("Query", "other", &user(&[])));
    }
}
