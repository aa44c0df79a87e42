//! Reading a policy's JSON: the path of the field being compiled (for error
//! messages) and the typed accessors that name it when they fail.

use std::fmt;

use serde_json::{Map, Value};

use crate::error::PolicyDocumentError;

/// The JSON path of the field being compiled, for error messages:
/// `Statement[2].Condition.IpAddress.aws:SourceIp`.
#[derive(Default, Debug)]
pub(crate) struct Path {
    segments: Vec<Segment>,
}

#[derive(Debug)]
enum Segment {
    Key(String),
    Index(usize),
}

impl Path {
    pub(crate) fn push_key(&mut self, key: &str) {
        self.segments.push(Segment::Key(key.to_owned()));
    }

    pub(crate) fn push_index(&mut self, index: usize) {
        self.segments.push(Segment::Index(index));
    }

    pub(crate) fn pop(&mut self) {
        self.segments.pop();
    }

    pub(crate) fn invalid(&self, message: impl Into<String>) -> PolicyDocumentError {
        PolicyDocumentError::Invalid {
            path: self.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

pub(crate) fn as_object<'v>(
    value: &'v Value,
    path: &Path,
) -> Result<&'v Map<String, Value>, PolicyDocumentError> {
    value
        .as_object()
        .ok_or_else(|| path.invalid("expected an object"))
}

pub(crate) fn as_str<'v>(value: &'v Value, path: &Path) -> Result<&'v str, PolicyDocumentError> {
    value
        .as_str()
        .ok_or_else(|| path.invalid("expected a string"))
}

/// A string or a non-empty array of strings, each converted by `each`, with
/// each item's index in the path of its error.
pub(crate) fn string_list<T>(
    value: &Value,
    path: &mut Path,
    mut each: impl FnMut(&str, &Path) -> Result<T, PolicyDocumentError>,
) -> Result<Vec<T>, PolicyDocumentError> {
    match value {
        Value::String(s) => Ok(vec![each(s, path)?]),
        Value::Array(items) if !items.is_empty() => {
            let mut out = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                path.push_index(index);
                let s = as_str(item, path)?;
                out.push(each(s, path)?);
                path.pop();
            }
            Ok(out)
        }
        Value::Array(_) => Err(path.invalid("expected at least one value")),
        _ => Err(path.invalid("expected a string or an array of strings")),
    }
}
