//! Reading an API's rules from the `@aws_*` directives of its SDL.

use async_graphql::Value;
use async_graphql::parser::types::{ConstDirective, TypeKind, TypeSystemDefinition};

use portcullis_core::config::ConfigError;

use super::policy::AuthPolicy;
use super::rule_set::Rules;
use crate::mode::AuthMode;

impl AuthPolicy {
    /// Reads the `@aws_*` directives of a schema's SDL: AppSync's schema, or
    /// the SDL async-graphql exports for a code-first schema that uses the
    /// directives of [`directives`](crate::directives). Other directives are
    /// ignored, and so are types that are not objects or interfaces.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`]: the SDL does not parse (an empty path), a
    /// `cognito_groups` argument is not a list of strings (at
    /// `Type.field.@directive.cognito_groups`), or `@aws_auth` is used off
    /// the root types' fields or with a default mode other than
    /// AMAZON_COGNITO_USER_POOLS (at `Type.field.@aws_auth`).
    pub fn from_sdl(default_mode: AuthMode, sdl: &str) -> Result<Self, ConfigError> {
        let document = async_graphql::parser::parse_schema(sdl)
            .map_err(|e| ConfigError::whole(format!("the schema does not parse: {e}")))?;
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
                return Err(not_top_level(type_name));
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
                    return Err(not_top_level(&at));
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
) -> Result<Rules, ConfigError> {
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
                    return Err(ConfigError::new(
                        format!("{at}.@aws_auth"),
                        format!(
                            "works only when AMAZON_COGNITO_USER_POOLS is the default mode (the default is {default_mode})"
                        ),
                    ));
                }
                AuthMode::AmazonCognitoUserPools
            }
            _ => continue,
        };
        rules = rules.allow(mode);
        if mode == AuthMode::AmazonCognitoUserPools
            && let Some(value) = directive.get_argument("cognito_groups")
        {
            let groups = string_list(&value.node).ok_or_else(|| {
                ConfigError::new(
                    format!("{at}.@{name}.cognito_groups"),
                    "must be a list of strings",
                )
            })?;
            rules = rules.allow_groups(groups);
        }
    }
    Ok(rules)
}

/// `@aws_auth` on a type, or on a field of a type that is not a root
/// operation type: AppSync accepts it on top-level fields only.
fn not_top_level(at: &str) -> ConfigError {
    ConfigError::new(
        format!("{at}.@aws_auth"),
        "works only on the fields of the query, mutation and subscription types",
    )
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
