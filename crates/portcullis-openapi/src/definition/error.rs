//! Why a definition cannot be loaded, as core's
//! [`ConfigError`](portcullis_core::config::ConfigError), and the paths that
//! say where.
//!
//! The loader builds JSON pointers (`/paths/~1pets~1{id}/get`, with list
//! positions as `/[3]`); an error's path is the pointer written as the
//! configuration's dotted path (`paths./pets/{id}.get`, `security[3]`).

use portcullis_core::config::ConfigError;

/// A value at the JSON pointer `pointer` is missing or of the wrong shape.
pub(crate) fn invalid(pointer: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::new(dotted(pointer), reason)
}

/// The extension `name` at `pointer` is neither applied nor ignored on
/// purpose.
pub(super) fn unsupported(pointer: &str, name: &str) -> ConfigError {
    invalid(pointer, format!("the extension `{name}` is not supported"))
}

/// The bytes are neither JSON nor YAML, or too many of them.
pub(super) fn unreadable(reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::whole(format!("the definition cannot be read: {reason}"))
}

/// A key as a JSON pointer token.
pub(crate) fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A list position as a JSON pointer token that [`dotted`] writes as `[i]`.
pub(super) fn index(i: usize) -> String {
    format!("[{i}]")
}

/// The JSON pointer `pointer` as a dotted path: keys joined by `.`, list
/// positions as `[i]`.
fn dotted(pointer: &str) -> String {
    let mut out = String::with_capacity(pointer.len());
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        if !out.is_empty() && !token.starts_with('[') {
            out.push('.');
        }
        out.push_str(&token);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{dotted, escape, index};

    #[test]
    fn pointers_become_dotted_paths() {
        let pointer = format!(
            "/paths/{}/get/x-amazon-apigateway-integration",
            escape("/pets/{id}")
        );
        assert_eq!(
            dotted(&pointer),
            "paths./pets/{id}.get.x-amazon-apigateway-integration"
        );
        assert_eq!(
            dotted(&format!("/security/{}/{}", index(3), escape("a~b"))),
            "security[3].a~b"
        );
        assert_eq!(dotted(""), "");
    }
}
