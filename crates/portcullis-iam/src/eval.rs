//! Evaluation: statements, documents, and API Gateway's combination of
//! identity and resource policies.

use std::fmt;
use std::sync::Arc;

use portcullis_core::response::messages;
use portcullis_core::{GatewayResponse, GatewayResponseType};

use crate::context::RequestContext;
use crate::policy::{Effect, PolicyDocument, Statement};

/// The outcome of evaluating policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// An Allow statement matched and no Deny did.
    Allow,
    /// A Deny statement matched: it wins over every Allow.
    ExplicitDeny,
    /// No statement matched: IAM's default.
    ImplicitDeny,
}

impl Decision {
    /// Whether the request may go on.
    #[must_use]
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }

    /// Whether a Deny statement matched.
    #[must_use]
    pub fn is_explicit_deny(self) -> bool {
        self == Decision::ExplicitDeny
    }

    /// A short name for logs and metrics: `allow`, `explicit_deny`,
    /// `implicit_deny`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::ExplicitDeny => "explicit_deny",
            Decision::ImplicitDeny => "implicit_deny",
        }
    }

    /// The refusal API Gateway sends for this decision, or `None` for
    /// [`Decision::Allow`]: ACCESS_DENIED with `User: <principal> is not
    /// authorized to perform: execute-api:Invoke on resource: <resource>`,
    /// ending in ` with an explicit deny` when a Deny matched.
    ///
    /// ```
    /// use portcullis_iam::Decision;
    ///
    /// let refusal = Decision::ExplicitDeny
    ///     .into_gateway_response("arn:aws:iam::123456789012:user/bob", "arn:aws:execute-api:us-east-1:123456789012:abc/prod/GET/")
    ///     .unwrap();
    /// assert_eq!(refusal.kind().as_str(), "ACCESS_DENIED");
    /// assert!(refusal.message().ends_with("with an explicit deny"));
    /// assert!(Decision::Allow.into_gateway_response("p", "r").is_none());
    /// ```
    #[must_use]
    pub fn into_gateway_response(
        self,
        principal_arn: &str,
        resource_arn: &str,
    ) -> Option<GatewayResponse> {
        match self {
            Decision::Allow => None,
            Decision::ExplicitDeny | Decision::ImplicitDeny => Some(
                GatewayResponse::new(GatewayResponseType::AccessDenied).with_message(
                    messages::iam_access_denied(
                        principal_arn,
                        resource_arn,
                        self.is_explicit_deny(),
                    ),
                ),
            ),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a policy is being applied, which decides what its `Principal` means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// An identity policy (or an authorizer's policy): it is attached to the
    /// caller, so `Principal` is not consulted.
    Identity,
    /// A resource policy: a statement applies only to the principals it names.
    Resource,
}

impl Statement {
    /// Whether the statement applies to the request (its effect aside).
    fn applies(&self, ctx: &RequestContext<'_>, role: Role) -> bool {
        let action = ctx.action();
        if self.actions.iter().any(|p| p.matches(action)) == self.not_action {
            return false;
        }
        let resource = ctx.resource();
        if self.resources.iter().any(|p| p.matches(resource)) == self.not_resource {
            return false;
        }
        if role == Role::Resource {
            let named = self
                .principal
                .as_ref()
                .is_some_and(|spec| spec.matches(ctx.principal_arn()));
            // A resource-policy statement with no principal applies to no one.
            if self.principal.is_none() || named == self.not_principal {
                return false;
            }
        }
        self.conditions.iter().all(|c| c.holds(ctx))
    }
}

/// The running result over several documents: explicit deny ends it.
fn fold(allowed: &mut bool, doc: &PolicyDocument, ctx: &RequestContext<'_>, role: Role) -> bool {
    for statement in doc.statements() {
        if statement.applies(ctx, role) {
            match statement.effect {
                Effect::Deny => return true,
                Effect::Allow => *allowed = true,
            }
        }
    }
    false
}

impl PolicyDocument {
    /// Evaluates this document alone as an identity policy (the `Principal`
    /// element is not consulted): what a custom authorizer's policy needs.
    #[must_use]
    pub fn evaluate(&self, ctx: &RequestContext<'_>) -> Decision {
        let mut allowed = false;
        if fold(&mut allowed, self, ctx, Role::Identity) {
            return Decision::ExplicitDeny;
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }
}

/// Evaluates a caller's identity policies and the API's resource policy
/// together, as API Gateway does when both belong to the same account.
///
/// - A Deny that matches in any policy wins: [`Decision::ExplicitDeny`].
/// - Otherwise an Allow in *either* an identity policy or the resource policy
///   allows.
/// - Otherwise the default: [`Decision::ImplicitDeny`].
///
/// Resource-policy statements apply only to the principals their `Principal`
/// names (`*` names everyone, anonymous callers included; an account id or
/// `arn:aws:iam::ACCOUNT:root` names every principal of that account; a role
/// ARN names its sessions). Cross-account access, where both policies must
/// allow, is [`evaluate_cross_account`].
///
/// ```
/// use std::sync::Arc;
/// use portcullis_iam::{evaluate, Decision, PolicyDocument, RequestContext};
///
/// let identity = Arc::new(PolicyDocument::from_json(
///     r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"execute-api:*","Resource":"*"}}"#,
/// )?);
/// let resource = PolicyDocument::from_json(r#"{"Version":"2012-10-17","Statement":{
///     "Effect":"Deny","Principal":"*","Action":"execute-api:Invoke",
///     "Resource":"arn:aws:execute-api:*:*:abc123/*/DELETE/*"}}"#)?;
/// let user = "arn:aws:iam::123456789012:user/alice";
/// let get = RequestContext::new(user, "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets");
/// let delete = RequestContext::new(user, "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/DELETE/pets/1");
/// assert_eq!(evaluate(&[identity.clone()], Some(&resource), &get), Decision::Allow);
/// assert_eq!(evaluate(&[identity], Some(&resource), &delete), Decision::ExplicitDeny);
/// # Ok::<(), portcullis_iam::PolicyDocumentError>(())
/// ```
#[must_use]
pub fn evaluate(
    identity_policies: &[Arc<PolicyDocument>],
    resource_policy: Option<&PolicyDocument>,
    ctx: &RequestContext<'_>,
) -> Decision {
    let mut allowed = false;
    for doc in identity_policies {
        if fold(&mut allowed, doc, ctx, Role::Identity) {
            return Decision::ExplicitDeny;
        }
    }
    if let Some(doc) = resource_policy
        && fold(&mut allowed, doc, ctx, Role::Resource)
    {
        return Decision::ExplicitDeny;
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

/// Evaluates policies for a caller from another account than the API's: an
/// explicit Deny anywhere wins, and otherwise the identity policies *and* the
/// resource policy must both allow.
#[must_use]
pub fn evaluate_cross_account(
    identity_policies: &[Arc<PolicyDocument>],
    resource_policy: &PolicyDocument,
    ctx: &RequestContext<'_>,
) -> Decision {
    let mut identity_allowed = false;
    for doc in identity_policies {
        if fold(&mut identity_allowed, doc, ctx, Role::Identity) {
            return Decision::ExplicitDeny;
        }
    }
    let mut resource_allowed = false;
    if fold(&mut resource_allowed, resource_policy, ctx, Role::Resource) {
        return Decision::ExplicitDeny;
    }
    if identity_allowed && resource_allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}
