//! Reading an API's rules from the `@aws_*` directives of its SDL.

use async_graphql::Value;
use async_graphql::parser::types::{ConstDirective, TypeKind, TypeSystemDefinition};

use super::policy::AuthPolicy;
use super::rule_set::Rules;
use crate::mode::AuthMode;

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
