//! What the layer reads from a request: its identity-source values, and the
//! event the authorizer is called with.

use std::borrow::Cow;
use std::collections::BTreeMap;

use http::request::Parts;
use portcullis_core::resource::ApiResource;

use crate::config::{Config, Identity};
use crate::decision::AuthorizerRefusal;
use crate::event::{AuthorizerEvent, IdentityEvent, RequestContextEvent, RequestEvent, TokenEvent};
use crate::identity;

/// The identity of a request: the values of its sources. A TOKEN identity
/// needs no allocation.
pub(crate) enum IdentityValues<'r> {
    Token(Cow<'r, str>),
    Request(Vec<Cow<'r, str>>),
}

impl IdentityValues<'_> {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            IdentityValues::Token(token) => (Some(token.as_ref()), &[][..]),
            IdentityValues::Request(values) => (None, values.as_slice()),
        };
        one.into_iter().chain(many.iter().map(AsRef::as_ref))
    }
}

impl Config {
    pub(crate) fn read_identity<'r>(
        &'r self,
        parts: &'r Parts,
        source_ip: Option<&'r str>,
        path: &'r str,
    ) -> Result<IdentityValues<'r>, AuthorizerRefusal> {
        let stage = self.arns.stage();
        let values = match &self.identity {
            Identity::Token { source, validation } => {
                let token =
                    identity::read(source, parts, &self.stage_variables, stage, source_ip, path)
                        .ok_or(AuthorizerRefusal::MissingIdentity)?;
                if token.len() > self.max_identity_bytes {
                    return Err(AuthorizerRefusal::IdentityTooLarge);
                }
                if validation.as_ref().is_some_and(|re| !re.is_match(&token)) {
                    return Err(AuthorizerRefusal::TokenFailedValidation);
                }
                IdentityValues::Token(token)
            }
            Identity::Request { sources } => {
                let mut values = Vec::with_capacity(sources.len());
                let mut total = 0;
                for source in sources {
                    let value = identity::read(
                        source,
                        parts,
                        &self.stage_variables,
                        stage,
                        source_ip,
                        path,
                    )
                    .ok_or(AuthorizerRefusal::MissingIdentity)?;
                    total += value.len();
                    if total > self.max_identity_bytes {
                        return Err(AuthorizerRefusal::IdentityTooLarge);
                    }
                    values.push(value);
                }
                IdentityValues::Request(values)
            }
        };
        Ok(values)
    }

    pub(crate) fn event(
        &self,
        parts: &Parts,
        path: &str,
        method_arn: String,
        identity: &IdentityValues<'_>,
        source_ip: Option<&str>,
    ) -> AuthorizerEvent {
        match &self.identity {
            Identity::Token { .. } => AuthorizerEvent::Token(TokenEvent {
                authorization_token: identity.iter().next().unwrap_or_default().to_owned(),
                method_arn,
            }),
            Identity::Request { .. } => {
                let mut headers = BTreeMap::new();
                let mut multi_headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for (name, value) in &parts.headers {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    multi_headers
                        .entry(name.as_str().to_owned())
                        .or_default()
                        .push(value.clone());
                    headers.insert(name.as_str().to_owned(), value);
                }
                let mut query = BTreeMap::new();
                let mut multi_query: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for (k, v) in identity::query_pairs(parts.uri.query().unwrap_or("")) {
                    multi_query
                        .entry(k.to_string())
                        .or_default()
                        .push(v.to_string());
                    query.insert(k.into_owned(), v.into_owned());
                }
                let path = path.to_owned();
                // The resource a routing layer in front matched, as API
                // Gateway sends it; without one, the path stands for it.
                let (resource, path_parameters) = match parts.extensions.get::<ApiResource>() {
                    Some(routed) => (
                        routed.resource_path().to_owned(),
                        routed
                            .path_parameters()
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .collect(),
                    ),
                    None => (path.clone(), BTreeMap::new()),
                };
                let method = parts.method.as_str().to_owned();
                let user_agent = parts
                    .headers
                    .get(http::header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                AuthorizerEvent::Request(Box::new(RequestEvent {
                    method_arn,
                    resource: resource.clone(),
                    path: path.clone(),
                    http_method: method.clone(),
                    headers,
                    multi_value_headers: multi_headers,
                    query_string_parameters: query,
                    multi_value_query_string_parameters: multi_query,
                    path_parameters,
                    stage_variables: self.stage_variables.clone(),
                    request_context: RequestContextEvent {
                        path: path.clone(),
                        account_id: self.arns.account_id().to_owned(),
                        stage: self.arns.stage().to_owned(),
                        api_id: self.arns.api_id().to_owned(),
                        resource_path: resource,
                        http_method: method,
                        protocol: format!("{:?}", parts.version),
                        identity: IdentityEvent {
                            source_ip: source_ip.map(str::to_owned),
                            user_agent,
                        },
                    },
                }))
            }
        }
    }
}
