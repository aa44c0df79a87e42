//! What the integration tests share.

use std::convert::Infallible;

use async_graphql::Executor;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use portcullis_graphql::{BoxBody, RequestAuth};
use tower::Service;

/// `POST /graphql` behind the layer: runs the JSON GraphQL request on
/// `executor` for the request's [`RequestAuth`] and answers in AppSync's
/// shape.
pub(crate) fn graphql_endpoint<E: Executor>(
    executor: E,
) -> impl Service<
    Request<BoxBody>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(move |request: Request<BoxBody>| {
        let executor = executor.clone();
        async move {
            let auth = request.extensions().get::<RequestAuth>().cloned();
            let body = request
                .into_body()
                .collect()
                .await
                .expect("a body")
                .to_bytes();
            let query: async_graphql::Request = serde_json::from_slice(&body).expect("JSON");
            let answer = portcullis_graphql::execute(&executor, query, auth).await;
            let json = serde_json::to_vec(&answer).expect("serializes");
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(json))))
        }
    })
}
