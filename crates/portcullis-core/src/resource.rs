//! The API resource a request was routed to, as a request extension.
//!
//! API Gateway routes every request to one resource of the API, a path
//! template such as `/pets/{petId}` or `/loyalty/{proxy+}`, before anything
//! else names it: per-method settings (stage throttles) are keyed by that
//! resource (`resourcePath/httpMethod`), and a REQUEST authorizer's event
//! carries it as `resource`, with the values of its `{name}` segments as
//! `pathParameters`.
//!
//! A layer that routes requests to resources (portcullis-openapi's
//! `OpenApiLayer`) leaves an [`ApiResource`] in the request extensions, and
//! the layers behind it read it:
//!
//! - portcullis-throttle matches per-method selectors against the resource
//!   itself, by equality, so that the limit of `/loyalty/{proxy+}/*` is not
//!   also the limit of a more specific resource below it;
//! - portcullis-authorizer fills a REQUEST event's `resource`,
//!   `requestContext.resourcePath` and `pathParameters` from it.
//!
//! Without it (no routing layer in front), those layers fall back to the
//! framework's route template or the [`CanonicalPath`](crate::path::CanonicalPath).
//!
//! # Example
//!
//! ```
//! use http::Request;
//! use portcullis_core::resource::ApiResource;
//!
//! let resource = ApiResource::new("/loyalty/{proxy+}", [("proxy", "C-1001/get")]);
//! let mut request = Request::new(());
//! request.extensions_mut().insert(resource);
//!
//! let routed = request.extensions().get::<ApiResource>().unwrap();
//! assert_eq!(routed.resource_path(), "/loyalty/{proxy+}");
//! assert_eq!(routed.path_parameter("proxy"), Some("C-1001/get"));
//! assert_eq!(routed.path_parameter("customerId"), None);
//! ```

use std::sync::Arc;

/// The resource of the API a request was routed to: its path template and
/// the values its `{name}` and `{name+}` segments took in the request's
/// path. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ApiResource {
    resource_path: Arc<str>,
    path_parameters: Arc<[(Box<str>, Box<str>)]>,
}

impl ApiResource {
    /// The resource `resource_path` (a template such as `/pets/{petId}`,
    /// `/` for the root), with the values of its path parameters, by name
    /// and without braces (`proxy` for `{proxy+}`), decoded as the
    /// [`CanonicalPath`](crate::path::CanonicalPath) decodes them.
    pub fn new<K, V>(
        resource_path: impl Into<Arc<str>>,
        path_parameters: impl IntoIterator<Item = (K, V)>,
    ) -> Self
    where
        K: Into<Box<str>>,
        V: Into<Box<str>>,
    {
        Self {
            resource_path: resource_path.into(),
            path_parameters: path_parameters
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The resource's path template, such as `/loyalty/{proxy+}`: what API
    /// Gateway calls `resource` and `$context.resourcePath`.
    #[must_use]
    pub fn resource_path(&self) -> &str {
        &self.resource_path
    }

    /// The value of the path parameter `name` (without braces), if the
    /// resource has it.
    #[must_use]
    pub fn path_parameter(&self, name: &str) -> Option<&str> {
        self.path_parameters
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| &**v)
    }

    /// Every path parameter, as `(name, value)`, in the template's order.
    pub fn path_parameters(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.path_parameters.iter().map(|(k, v)| (&**k, &**v))
    }
}
