//! Method selectors, as API Gateway keys per-method settings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::PlanError;

/// A method selector as API Gateway keys per-method settings:
/// `{resource_path}/{HTTP_METHOD}`.
///
/// - `/pets/GET`: GET on `/pets`;
/// - `//GET`: GET on the root resource `/`;
/// - `/pets/{petId}/*`: any method on `/pets/{petId}`;
/// - `/*/*`: any method on any resource.
///
/// When a routing layer left the request's
/// [`ApiResource`](crate::resource::ApiResource), a selector applies to that
/// resource only when it names it ([`matches_resource`](Self::matches_resource)),
/// as API Gateway keys method settings. Otherwise a resource path is matched
/// segment by segment against the request's resource (the route template
/// when the framework knows it, such as axum's `MatchedPath`, otherwise the
/// concrete path): a `{name}` segment matches any one segment, `{name+}`
/// matches the rest of the path, and `/*` as the whole resource matches
/// every path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MethodSelector {
    resource: String,
    method: String,
}

impl MethodSelector {
    /// The resource path part, such as `/pets` or `/`.
    #[must_use]
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The method part, such as `GET` or `*`.
    #[must_use]
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Whether this selector applies to `method` on `resource_path`.
    #[must_use]
    pub fn matches(&self, method: &str, resource_path: &str) -> bool {
        if self.method != "*" && !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        if self.resource == "/*" {
            return true;
        }
        let mut pattern = self.resource.split('/').skip(1);
        let mut path = resource_path.split('/').skip(1);
        if self.resource == "/" {
            return resource_path == "/" || resource_path.is_empty();
        }
        loop {
            match (pattern.next(), path.next()) {
                (None, None) => return true,
                (Some(p), Some(_)) if p.starts_with('{') && p.ends_with("+}") => return true,
                (Some(p), Some(s)) if (p.starts_with('{') && p.ends_with('}')) || p == s => {}
                _ => return false,
            }
        }
    }

    /// Whether this selector applies to `method` on the API resource
    /// `resource_path` (a template such as `/loyalty/{proxy+}`, from an
    /// [`ApiResource`](crate::resource::ApiResource)), as API Gateway keys
    /// method settings: the selector's resource is that resource itself, or
    /// `/*`. Unlike [`matches`](Self::matches), `{proxy+}` here names one
    /// resource, not the paths below it, so `/loyalty/{proxy+}/*` does not
    /// apply to a resource `/loyalty/{id}/get` of its own.
    #[must_use]
    pub fn matches_resource(&self, method: &str, resource_path: &str) -> bool {
        (self.method == "*" || self.method.eq_ignore_ascii_case(method))
            && (self.resource == "/*" || self.resource == resource_path)
    }

    /// How specific the selector is; a higher value is more specific. An exact
    /// resource beats a templated one, which beats `/*`; then an exact method
    /// beats `*`.
    #[must_use]
    pub fn specificity(&self) -> (u8, usize, u8) {
        let resource_rank = if self.resource == "/*" {
            0
        } else if self.resource.contains('{') {
            1
        } else {
            2
        };
        let literal_segments = self
            .resource
            .split('/')
            .filter(|s| !s.is_empty() && !s.starts_with('{') && *s != "*")
            .count();
        (
            resource_rank,
            literal_segments,
            u8::from(self.method != "*"),
        )
    }
}

impl FromStr for MethodSelector {
    type Err = PlanError;

    fn from_str(key: &str) -> Result<Self, PlanError> {
        let bad = |why: &str| PlanError::new(format!("\"{key}\""), why.to_owned());
        if !key.starts_with('/') {
            return Err(bad("a method key starts with `/`, as in `/pets/GET`"));
        }
        let (resource, method) = key
            .rsplit_once('/')
            .ok_or_else(|| bad("a method key ends in `/{METHOD}`"))?;
        let resource = if resource.is_empty() { "/" } else { resource };
        let method_ok =
            method == "*" || (!method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase()));
        if !method_ok {
            return Err(bad("the method must be an upper-case HTTP method or `*`"));
        }
        if resource.len() > 1 && resource.ends_with('/') {
            return Err(bad("the resource path must not end in `/`"));
        }
        Ok(Self {
            resource: resource.to_owned(),
            method: method.to_owned(),
        })
    }
}

impl fmt::Display for MethodSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.resource == "/" {
            write!(f, "//{}", self.method)
        } else {
            write!(f, "{}/{}", self.resource, self.method)
        }
    }
}

impl Serialize for MethodSelector {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MethodSelector {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
