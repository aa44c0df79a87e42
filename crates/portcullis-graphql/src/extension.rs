//! The async-graphql extension that enforces the directives on every field.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextRequest, NextResolve, ResolveInfo,
};
use async_graphql::{
    ErrorExtensionValues, PathSegment, Pos, QueryPathSegment, Response, ServerError, ServerResult,
    Value,
};

use crate::iam::FieldIam;
use crate::rules::{AuthPolicy, RequestAuth, SharedPolicy};

/// AppSync's `errorType` for a field the request may not read.
pub const UNAUTHORIZED_FIELD: &str = "Unauthorized";

/// Enforces an [`AuthPolicy`] on every field a query, mutation or
/// subscription resolves, for code-first and dynamic schemas alike.
///
/// It reads the request's [`RequestAuth`] from the GraphQL request's data
/// (put there with `request.data(auth)`, as [`execute`](crate::execute)
/// does). A field the request may not read is not resolved: it becomes
/// `null`, and the response gets AppSync's error
/// `{"errorType": "Unauthorized", "message": "Not Authorized to access <field> on type <Type>", "path": ..., "locations": ...}`;
/// the rest of the query is still answered. A denied non-null field makes its
/// parent `null`, as GraphQL's null propagation says. A request with no
/// `RequestAuth` may read nothing. Introspection is not checked.
///
/// ```
/// use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};
/// use portcullis_graphql::{AppSyncDirectives, AuthMode, AuthPolicy, RequestAuth, Rules};
///
/// struct Query;
/// #[Object]
/// impl Query {
///     async fn public(&self) -> Option<&str> { Some("hello") }
///     async fn secret(&self) -> Option<&str> { Some("s3cret") }
/// }
///
/// let policy = AuthPolicy::new(AuthMode::AmazonCognitoUserPools)
///     .field_rules("Query", "public", Rules::new().allow(AuthMode::ApiKey));
/// let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
///     .extension(AppSyncDirectives::new(policy))
///     .finish();
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let request = async_graphql::Request::new("{ public secret }")
///     .data(RequestAuth::new(AuthMode::ApiKey));
/// let response = schema.execute(request).await;
/// let json = serde_json::to_value(portcullis_graphql::AppSyncResponse::from(response)).unwrap();
/// assert_eq!(json["data"], serde_json::json!({"public": "hello", "secret": null}));
/// assert_eq!(json["errors"][0]["errorType"], "Unauthorized");
/// assert_eq!(json["errors"][0]["message"], "Not Authorized to access secret on type Query");
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct AppSyncDirectives {
    policy: SharedPolicy,
    iam: Option<Arc<FieldIam>>,
}

impl AppSyncDirectives {
    /// Enforces `policy`.
    #[must_use]
    pub fn new(policy: AuthPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
            iam: None,
        }
    }

    /// Also authorizes AWS_IAM requests' top-level fields with the callers'
    /// IAM policies (`appsync:GraphQL`, see [`FieldIam`]). Without it the
    /// AWS_IAM mode is authenticated by its signature only, and reads what
    /// the `@aws_iam` directives allow.
    #[must_use]
    pub fn iam(mut self, iam: FieldIam) -> Self {
        self.iam = Some(Arc::new(iam));
        self
    }

    /// The policy enforced.
    #[must_use]
    pub fn policy(&self) -> &AuthPolicy {
        &self.policy
    }

    /// The per-field IAM authorization, if any.
    #[must_use]
    pub fn field_iam(&self) -> Option<&FieldIam> {
        self.iam.as_deref()
    }

    /// Whether `auth` may read `type_name.field`: the directives, and, for a
    /// top-level field (`top_level`) in AWS_IAM mode, the caller's IAM
    /// policies.
    #[must_use]
    pub fn allows(
        &self,
        type_name: &str,
        field: &str,
        top_level: bool,
        auth: &RequestAuth,
    ) -> bool {
        allows(
            &self.policy,
            self.iam.as_deref(),
            type_name,
            field,
            top_level,
            auth,
        )
    }
}

fn allows(
    policy: &AuthPolicy,
    iam: Option<&FieldIam>,
    type_name: &str,
    field: &str,
    top_level: bool,
    auth: &RequestAuth,
) -> bool {
    policy.allows(type_name, field, auth)
        && (!top_level || iam.is_none_or(|iam| iam.allows(type_name, field, auth)))
}

impl ExtensionFactory for AppSyncDirectives {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PerRequest {
            policy: Arc::clone(&self.policy),
            iam: self.iam.clone(),
            denied: Mutex::new(Vec::new()),
        })
    }
}

/// One request's instance: the errors of the fields it denied, added to the
/// response when the request ends.
struct PerRequest {
    policy: SharedPolicy,
    iam: Option<Arc<FieldIam>>,
    denied: Mutex<Vec<ServerError>>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for PerRequest {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        let denied = match self.denied.lock() {
            Ok(mut denied) => std::mem::take(&mut *denied),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        response.errors.extend(denied);
        response
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        // Introspection is not checked; nor is each item of a list, which
        // dynamic schemas also pass through this hook (its segment is an
        // index): the field holding the list was checked.
        if info.is_for_introspection || matches!(info.path_node.segment, QueryPathSegment::Index(_))
        {
            return next.run(ctx, info).await;
        }
        let top_level = info.path_node.parent.is_none();
        let allowed = ctx.data_opt::<RequestAuth>().is_some_and(|auth| {
            allows(
                &self.policy,
                self.iam.as_deref(),
                info.parent_type,
                info.name,
                top_level,
                auth,
            )
        });
        if allowed {
            return next.run(ctx, info).await;
        }
        tracing::debug!(
            layer = "graphql",
            outcome = "refused",
            reason = "UNAUTHORIZED",
            detail = "field_not_authorized",
            r#type = info.parent_type,
            field = info.name,
            mode = ctx.data_opt::<RequestAuth>().map(|a| a.mode().as_str()),
            "field not authorized"
        );
        let error = unauthorized_field(&info);
        if info.return_type.ends_with('!') {
            // null cannot stand here: the error goes up to the nearest
            // nullable parent, as any resolver error does.
            return Err(error);
        }
        match self.denied.lock() {
            Ok(mut denied) => denied.push(error),
            Err(poisoned) => poisoned.into_inner().push(error),
        }
        Ok(None)
    }
}

fn unauthorized_field(info: &ResolveInfo<'_>) -> ServerError {
    let pos: Pos = info
        .field
        .alias
        .as_ref()
        .map_or(info.field.name.pos, |alias| alias.pos);
    let mut error = ServerError::new(
        format!(
            "Not Authorized to access {} on type {}",
            info.name, info.parent_type
        ),
        Some(pos),
    );
    let mut path = Vec::new();
    let mut node = Some(info.path_node);
    while let Some(current) = node {
        path.push(match current.segment {
            QueryPathSegment::Name(name) => PathSegment::Field(name.to_owned()),
            QueryPathSegment::Index(index) => PathSegment::Index(index),
        });
        node = current.parent;
    }
    path.reverse();
    error.path = path;
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("errorType", UNAUTHORIZED_FIELD);
    error.extensions = Some(extensions);
    error
}
