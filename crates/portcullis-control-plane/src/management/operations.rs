//! The operations, one method each, over the store and the quota engine.

use std::collections::BTreeSet;

use bytes::{Buf, Bytes};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use portcullis_api_key::ApiKeyValue;
use portcullis_core::context::Caller;
use portcullis_core::context::RequestContextExt;
use portcullis_core::path::CanonicalPath;
use portcullis_iam::RequestContext;
use portcullis_quota::usage::UsagePage;
use serde::Serialize;

use super::auth::Authorization;
use super::input::{PlanDraft, api_key_update, new_api_key, patch_operations, usage_updates};
use super::request::{
    Query, Route, USAGE_ADMIN_OPERATIONS, operation_name, parse_body, parse_date, parse_query,
    parse_required,
};
use super::response::{ApiError, accepted, json, usage_response};
use super::views::{
    ApiKeyView, CreateApiKeyInput, CreateUsagePlanInput, CreateUsagePlanKeyInput, UsagePlanKeyView,
    UsagePlanView,
};
use super::{BoxError, Inner, csv};
use crate::model::{ApiKeyFilter, NewApiKey, PageRequest, UsagePlanRecord};
use crate::state::NewUsagePlan;
use crate::store::ControlPlaneStore;

impl<S: ControlPlaneStore + Clone + Send + Sync + 'static> Inner<S> {
    /// A list answer: `item` (the model's name), or `items` for the usage
    /// admin mount.
    fn list<T: Serialize>(&self, items: &[T], position: Option<&str>) -> Response<Full<Bytes>> {
        let name = if self.usage_admin_only {
            "items"
        } else {
            "item"
        };
        let mut body = serde_json::Map::new();
        body.insert(
            name.to_owned(),
            serde_json::to_value(items).unwrap_or_default(),
        );
        if let Some(position) = position {
            body.insert("position".to_owned(), position.into());
        }
        json(StatusCode::OK, &body)
    }

    fn authorize(&self, caller: &Caller, method: &Method, path: &str) -> Result<(), ApiError> {
        let Authorization::Iam(policies) = &self.authorization else {
            return Ok(());
        };
        let principal = caller.principal();
        let action = format!("apigateway:{method}");
        let resource = format!("arn:aws:apigateway:{}::{path}", self.region);
        let ctx = RequestContext::new(principal, resource.as_str()).with_action(action.as_str());
        let decision = portcullis_iam::evaluate(&policies.policies(principal), None, &ctx);
        if decision.is_allowed() {
            return Ok(());
        }
        tracing::info!(
            layer = "management",
            outcome = "deny",
            reason = decision.as_str(),
            principal,
            action = %action,
            resource = %resource,
        );
        let mut message = format!(
            "User: {principal} is not authorized to perform: {action} on resource: {resource}"
        );
        if decision.is_explicit_deny() {
            message.push_str(" with an explicit deny");
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            message,
        ))
    }

    async fn read_body<B>(&self, body: B) -> Result<Bytes, ApiError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        match Limited::new(body, self.body_limit).collect().await {
            Ok(collected) => {
                let mut buf = collected.aggregate();
                Ok(buf.copy_to_bytes(buf.remaining()))
            }
            Err(error) if error.is::<LengthLimitError>() => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BadRequestException",
                format!("Request body exceeds {} bytes", self.body_limit),
            )),
            Err(_) => Err(ApiError::bad("Could not read the request body")),
        }
    }

    pub(super) async fn handle<B>(
        &self,
        request: Request<B>,
    ) -> Result<(Response<Full<Bytes>>, &'static str), ApiError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let caller = parts.caller().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            )
        })?;
        // Every decision that names a resource reads the one canonical path.
        let path = CanonicalPath::of_uri(&parts.uri).map_err(|refusal| {
            let kind = refusal.gateway_response().kind();
            ApiError::new(
                kind.default_status(),
                kind.error_type(),
                kind.default_message(),
            )
        })?;
        let path = path.as_str().to_owned();
        let route =
            Route::parse(&path).ok_or_else(|| ApiError::not_found("Invalid resource path"))?;
        let query = Query(parse_query(parts.uri.query().unwrap_or("")));
        let method = parts.method.clone();
        let operation = operation_name(&method, &route, &query).ok_or_else(|| {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowedException",
                format!("{method} is not allowed on {path}"),
            )
        })?;
        if self.usage_admin_only && !USAGE_ADMIN_OPERATIONS.contains(&operation) {
            return Err(ApiError::not_found("Invalid resource path"));
        }
        self.authorize(&caller, &method, &path)?;
        let body = if matches!(method, Method::POST | Method::PATCH | Method::PUT) {
            self.read_body(body).await?
        } else {
            Bytes::new()
        };
        let response = self.dispatch(operation, route, &query, &body).await?;
        Ok((response, operation))
    }

    async fn dispatch(
        &self,
        operation: &'static str,
        route: Route,
        query: &Query,
        body: &[u8],
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let store = &self.store;
        match (operation, route) {
            ("CreateApiKey", Route::ApiKeys) => {
                let input: CreateApiKeyInput = parse_body(body)?;
                let new = new_api_key(input)?;
                let key = store.create_api_key(new).await?;
                Ok(json(StatusCode::CREATED, &ApiKeyView::of(&key, true)))
            }
            ("ImportApiKeys", Route::ApiKeys) => self.import_api_keys(query, body).await,
            ("GetApiKeys", Route::ApiKeys) => {
                let filter = ApiKeyFilter {
                    name_query: query.get("name").map(str::to_owned),
                    customer_id: query.get("customerId").map(str::to_owned),
                };
                let include = query.flag("includeValues")?;
                let page = store.get_api_keys(filter, query.page()?).await?;
                let items: Vec<ApiKeyView<'_>> = page
                    .items
                    .iter()
                    .map(|k| ApiKeyView::of(k, include))
                    .collect();
                Ok(self.list(&items, page.position.as_deref()))
            }
            ("GetApiKey", Route::ApiKey(id)) => {
                let include = query.flag("includeValue")?;
                let key = store.get_api_key(&id).await?;
                Ok(json(StatusCode::OK, &ApiKeyView::of(&key, include)))
            }
            ("UpdateApiKey", Route::ApiKey(id)) => {
                let update = api_key_update(&patch_operations(body)?)?;
                let key = store.update_api_key(&id, update).await?;
                Ok(json(StatusCode::OK, &ApiKeyView::of(&key, false)))
            }
            ("DeleteApiKey", Route::ApiKey(id)) => {
                store.delete_api_key(&id).await?;
                Ok(accepted())
            }
            ("CreateUsagePlan", Route::Plans) => {
                let input: CreateUsagePlanInput = parse_required(body)?;
                if input.name.as_deref().is_none_or(str::is_empty) {
                    return Err(ApiError::bad("name is required"));
                }
                // The store chooses the id; the draft's is a placeholder.
                let plan = PlanDraft::from_input("new", &input)?.build()?;
                let record = store
                    .create_usage_plan(NewUsagePlan {
                        id: None,
                        plan,
                        tags: input.tags,
                    })
                    .await?;
                Ok(json(StatusCode::CREATED, &UsagePlanView::of(&record)))
            }
            ("GetUsagePlans", Route::Plans) => {
                let page = store
                    .get_usage_plans(query.get("keyId"), query.page()?)
                    .await?;
                let items: Vec<UsagePlanView<'_>> =
                    page.items.iter().map(UsagePlanView::of).collect();
                Ok(self.list(&items, page.position.as_deref()))
            }
            ("GetUsagePlan", Route::Plan(id)) => {
                let record = store.get_usage_plan(&id).await?;
                Ok(json(StatusCode::OK, &UsagePlanView::of(&record)))
            }
            ("UpdateUsagePlan", Route::Plan(id)) => {
                let ops = patch_operations(body)?;
                let current = store.get_usage_plan(&id).await?;
                let mut draft = PlanDraft::of(&current.plan);
                for op in &ops {
                    draft.apply(op)?;
                }
                let plan = draft.build()?;
                let record = store
                    .update_usage_plan(UsagePlanRecord {
                        plan,
                        tags: current.tags,
                    })
                    .await?;
                Ok(json(StatusCode::OK, &UsagePlanView::of(&record)))
            }
            ("DeleteUsagePlan", Route::Plan(id)) => {
                store.delete_usage_plan(&id).await?;
                Ok(accepted())
            }
            ("CreateUsagePlanKey", Route::PlanKeys(plan)) => {
                let input: CreateUsagePlanKeyInput = parse_required(body)?;
                let key_id = input
                    .key_id
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| ApiError::bad("keyId is required"))?;
                let key_type = input
                    .key_type
                    .ok_or_else(|| ApiError::bad("keyType is required"))?;
                let key = store
                    .create_usage_plan_key(&plan, &key_id, &key_type)
                    .await?;
                Ok(json(StatusCode::CREATED, &UsagePlanKeyView::of(&key)))
            }
            ("GetUsagePlanKeys", Route::PlanKeys(plan)) => {
                let page = store
                    .get_usage_plan_keys(&plan, query.get("name"), query.page()?)
                    .await?;
                let items: Vec<UsagePlanKeyView<'_>> =
                    page.items.iter().map(UsagePlanKeyView::of).collect();
                Ok(self.list(&items, page.position.as_deref()))
            }
            ("GetUsagePlanKey", Route::PlanKey(plan, key)) => {
                let key = store.get_usage_plan_key(&plan, &key).await?;
                Ok(json(StatusCode::OK, &UsagePlanKeyView::of(&key)))
            }
            ("DeleteUsagePlanKey", Route::PlanKey(plan, key)) => {
                store.delete_usage_plan_key(&plan, &key).await?;
                Ok(accepted())
            }
            ("GetUsage", Route::Usage(plan)) => self.get_usage(&plan, query).await,
            ("UpdateUsage", Route::KeyUsage(plan, key)) => {
                let updates = usage_updates(&patch_operations(body)?)?;
                let record = store.get_usage_plan(&plan).await?;
                store.get_usage_plan_key(&plan, &key).await?;
                let mut last = None;
                for update in updates {
                    last = Some(self.usage.update_usage(&record.plan, &key, update).await?);
                }
                let usage =
                    last.ok_or_else(|| ApiError::bad("patchOperations must not be empty"))?;
                Ok(usage_response(&usage))
            }
            _ => Err(ApiError::not_found("Invalid resource path")),
        }
    }

    async fn get_usage(
        &self,
        plan_id: &str,
        query: &Query,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let start = parse_date("startDate", query.get("startDate"))?;
        let end = parse_date("endDate", query.get("endDate"))?;
        let record = self.store.get_usage_plan(plan_id).await?;
        let counted = self.store.usage_keys(plan_id).await?;
        let keys: Vec<String> = match query.get("keyId") {
            Some(key) => {
                let known = counted.iter().any(|k| k == key)
                    || self.store.get_usage_plan_key(plan_id, key).await.is_ok();
                if !known {
                    return Err(ApiError::not_found(format!(
                        "Invalid API Key identifier specified: {key} is not in usage plan {plan_id}"
                    )));
                }
                vec![key.to_owned()]
            }
            None => {
                let mut keys: BTreeSet<String> = counted.into_iter().collect();
                let mut page = PageRequest::first(crate::model::MAX_PAGE_LIMIT);
                loop {
                    let listed = self
                        .store
                        .get_usage_plan_keys(plan_id, None, page.clone())
                        .await?;
                    keys.extend(listed.items.iter().map(|k| k.id.clone()));
                    match page.next(&listed) {
                        Some(next) => page = next,
                        None => break,
                    }
                }
                keys.into_iter().collect()
            }
        };
        let page = query.page()?;
        let mut usage_page = UsagePage::new();
        if let Some(limit) = page.limit {
            usage_page = usage_page.limit(limit as usize);
        }
        if let Some(position) = page.position {
            usage_page = usage_page.position(position);
        }
        let usage = self
            .usage
            .get_usage_page_of_keys(&record.plan, &keys, start, end, &usage_page)
            .await?;
        Ok(usage_response(&usage))
    }

    async fn import_api_keys(
        &self,
        query: &Query,
        body: &[u8],
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        match query.get("format") {
            Some(f) if f.eq_ignore_ascii_case("csv") => {}
            Some(other) => {
                return Err(ApiError::bad(format!(
                    "Invalid format {other:?}: only csv is supported"
                )));
            }
            None => return Err(ApiError::bad("format is required")),
        }
        let fail_on_warnings = query.flag("failonwarnings")?;
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad("The API key file is not UTF-8"))?;
        let rows = csv::parse(text).map_err(ApiError::bad)?;
        // Every plan named must exist before anything is written.
        let mut plans = BTreeSet::new();
        for row in &rows {
            for plan in &row.usage_plan_ids {
                if plans.insert(plan.clone()) {
                    self.store.get_usage_plan(plan).await.map_err(|_| {
                        ApiError::bad(format!("Invalid usage plan identifier {plan} in the file"))
                    })?;
                }
            }
        }
        let mut inputs = Vec::with_capacity(rows.len());
        for row in &rows {
            let value = ApiKeyValue::new(row.key.clone())
                .map_err(|e| ApiError::bad(format!("Invalid key value for {}: {e}", row.name)))?;
            inputs.push(NewApiKey {
                name: Some(row.name.clone()),
                description: row.description.clone(),
                customer_id: row.customer_id.clone(),
                enabled: row.enabled,
                value: Some(value),
                ..NewApiKey::default()
            });
        }
        let keys = self.store.import_api_keys(inputs).await?;
        let mut warnings = Vec::new();
        for (key, row) in keys.iter().zip(&rows) {
            for plan in &row.usage_plan_ids {
                if let Err(error) = self
                    .store
                    .create_usage_plan_key(plan, &key.id, "API_KEY")
                    .await
                {
                    warnings.push(format!(
                        "{}: not added to usage plan {plan}: {error}",
                        key.id
                    ));
                }
            }
        }
        if fail_on_warnings && !warnings.is_empty() {
            return Err(ApiError::bad(warnings.join("; ")));
        }
        let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        Ok(json(
            StatusCode::CREATED,
            &serde_json::json!({ "ids": ids, "warnings": warnings }),
        ))
    }
}
