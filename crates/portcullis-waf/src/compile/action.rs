//! Compiling rule actions, custom request headers and custom responses.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::engine::{Action, BlockResponse};
use crate::model::{self};

use super::compiler::{Compiler, Res, join};

impl Compiler<'_> {
    pub(super) fn action(&self, action: &model::RuleAction, path: &str) -> Res<Action> {
        if action.captcha.is_some() || action.challenge.is_some() {
            let which = if action.captcha.is_some() {
                "Captcha"
            } else {
                "Challenge"
            };
            return Err(self.err(
                &join(path, which),
                format!(
                    "the {which} action is not supported: it needs AWS's token and puzzle service; use Block or Count"
                ),
            ));
        }
        match (&action.allow, &action.block, &action.count) {
            (Some(body), None, None) => Ok(Action::Allow(
                self.insert_headers(body, &join(path, "Allow"))?,
            )),
            (None, Some(body), None) => Ok(Action::Block(
                self.block_response(body, &join(path, "Block"))?,
            )),
            (None, None, Some(body)) => Ok(Action::Count(
                self.insert_headers(body, &join(path, "Count"))?,
            )),
            _ => Err(self.err(
                path,
                "an action must be exactly one of Allow, Block or Count",
            )),
        }
    }

    pub(super) fn insert_headers(
        &self,
        body: &model::ActionBody,
        path: &str,
    ) -> Res<Arc<[(HeaderName, HeaderValue)]>> {
        let Some(handling) = &body.custom_request_handling else {
            return Ok(Arc::from([]));
        };
        handling
            .insert_headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                self.header_pair(
                    h,
                    &join(path, &format!("CustomRequestHandling.InsertHeaders[{i}]")),
                )
            })
            .collect()
    }

    fn header_pair(&self, pair: &model::HeaderPair, path: &str) -> Res<(HeaderName, HeaderValue)> {
        let name = HeaderName::try_from(format!("x-amzn-waf-{}", pair.name)).map_err(|_| {
            self.err(
                &join(path, "Name"),
                format!("`{}` is not a valid header name", pair.name),
            )
        })?;
        let value = HeaderValue::try_from(pair.value.as_str())
            .map_err(|_| self.err(&join(path, "Value"), "not a valid header value"))?;
        Ok((name, value))
    }

    pub(super) fn block_response(
        &self,
        body: &model::ActionBody,
        path: &str,
    ) -> Res<Option<Arc<BlockResponse>>> {
        let Some(custom) = &body.custom_response else {
            return Ok(None);
        };
        let path = join(path, "CustomResponse");
        let status = StatusCode::from_u16(custom.response_code)
            .ok()
            .filter(|s| (200..=599).contains(&s.as_u16()))
            .ok_or_else(|| {
                self.err(
                    &join(&path, "ResponseCode"),
                    format!("response code {} is outside 200-599", custom.response_code),
                )
            })?;
        let mut headers = HeaderMap::new();
        for (i, pair) in custom.response_headers.iter().enumerate() {
            let (name, value) =
                self.header_pair(pair, &join(&path, &format!("ResponseHeaders[{i}]")))?;
            headers.append(name, value);
        }
        let body = match &custom.custom_response_body_key {
            None => None,
            Some(key) => {
                let Some(body) = self.bodies.get(key) else {
                    return Err(self.err(
                        &join(&path, "CustomResponseBodyKey"),
                        format!("no CustomResponseBodies entry `{key}`"),
                    ));
                };
                let content_type = HeaderValue::from_static(match body.content_type {
                    model::ContentType::TextPlain => "text/plain",
                    model::ContentType::TextHtml => "text/html",
                    model::ContentType::ApplicationJson => "application/json",
                });
                Some((content_type, Bytes::from(body.content.clone())))
            }
        };
        Ok(Some(Arc::new(BlockResponse {
            status,
            headers,
            body,
        })))
    }
}
