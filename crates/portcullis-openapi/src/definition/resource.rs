//! A resource path template and how a request path matches it.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::method::MethodSettings;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Segment {
    Literal(String),
    Param,
    Greedy,
}

#[derive(Clone, Debug)]
pub(crate) struct Resource {
    pub(super) segments: Vec<Segment>,
    pub(crate) methods: BTreeMap<String, Arc<MethodSettings>>,
}

impl Resource {
    pub(super) fn matches(&self, path: &str) -> Option<Vec<u8>> {
        let parts: Vec<&str> = if path == "/" {
            Vec::new()
        } else {
            path.trim_start_matches('/').split('/').collect()
        };
        let mut ranks = Vec::with_capacity(self.segments.len());
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Greedy => {
                    if i >= parts.len() {
                        return None;
                    }
                    ranks.push(0);
                    return Some(ranks);
                }
                Segment::Param if parts.get(i).is_some_and(|p| !p.is_empty()) => ranks.push(1),
                Segment::Literal(l) if parts.get(i) == Some(&l.as_str()) => ranks.push(2),
                _ => return None,
            }
        }
        (parts.len() == self.segments.len()).then_some(ranks)
    }
}
