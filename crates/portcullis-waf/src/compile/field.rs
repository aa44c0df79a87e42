//! Compiling fields to match and their text transformation chains.

use std::collections::HashSet;

use http::HeaderName;

use crate::engine::{Field, NamePattern, Oversize};
use crate::model::{self};
use crate::transform::TransformKind;

use super::compiler::{Compiler, Res, join};

impl Compiler<'_> {
    pub(super) fn chain(
        &self,
        tts: &[model::TextTransformation],
        path: &str,
        optional: bool,
    ) -> Res<Box<[TransformKind]>> {
        if tts.is_empty() && !optional {
            return Err(self.err(
                &join(path, "TextTransformations"),
                "at least one TextTransformation is required (use NONE)",
            ));
        }
        let mut seen = HashSet::new();
        for (i, t) in tts.iter().enumerate() {
            if !seen.insert(t.priority) {
                return Err(self.err(
                    &join(path, &format!("TextTransformations[{i}].Priority")),
                    format!("duplicate transformation priority {}", t.priority),
                ));
            }
        }
        let mut sorted: Vec<&model::TextTransformation> = tts.iter().collect();
        sorted.sort_by_key(|t| t.priority);
        Ok(sorted
            .into_iter()
            .map(|t| t.kind)
            .filter(|k| *k != TransformKind::None)
            .collect())
    }

    pub(super) fn input(
        &mut self,
        field: &model::FieldToMatch,
        tts: &[model::TextTransformation],
        path: &str,
    ) -> Res<usize> {
        let field = self.field(field, &join(path, "FieldToMatch"))?;
        let chain = self.chain(tts, path, false)?;
        let field_id = match self.field_ids.get(&field) {
            Some(id) => *id,
            None => {
                let id = self.fields.len();
                self.fields.push(field.clone());
                self.field_ids.insert(field, id);
                id
            }
        };
        let key = (field_id, chain.to_vec());
        if let Some(id) = self.input_ids.get(&key) {
            return Ok(*id);
        }
        let id = self.inputs.len();
        self.inputs.push((field_id, chain));
        self.input_ids.insert(key, id);
        Ok(id)
    }

    fn field(&self, f: &model::FieldToMatch, path: &str) -> Res<Field> {
        if let Some(key) = f.other.keys().next() {
            return Err(self.err(
                &join(path, key),
                format!("FieldToMatch `{key}` is not supported"),
            ));
        }
        let count = [
            f.single_header.is_some(),
            f.headers.is_some(),
            f.cookies.is_some(),
            f.single_query_argument.is_some(),
            f.all_query_arguments.is_some(),
            f.uri_path.is_some(),
            f.query_string.is_some(),
            f.method.is_some(),
            f.body.is_some(),
            f.json_body.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if count != 1 {
            return Err(self.err(
                path,
                format!("FieldToMatch must set exactly one field, this one sets {count}"),
            ));
        }
        let oversize = |o: Option<model::OversizeHandling>| match o {
            None | Some(model::OversizeHandling::Continue) => Oversize::Continue,
            Some(model::OversizeHandling::Match) => Oversize::Match,
            Some(model::OversizeHandling::NoMatch) => Oversize::NoMatch,
        };
        Ok(if let Some(h) = &f.single_header {
            let name = HeaderName::try_from(h.name.as_str()).map_err(|_| {
                self.err(
                    &join(path, "SingleHeader.Name"),
                    format!("`{}` is not a valid header name", h.name),
                )
            })?;
            Field::SingleHeader(name)
        } else if let Some(h) = &f.headers {
            Field::Headers {
                pattern: self.name_pattern(
                    &h.match_pattern,
                    &join(path, "Headers.MatchPattern"),
                    true,
                )?,
                scope: h.match_scope,
                oversize: oversize(Some(h.oversize_handling)),
            }
        } else if let Some(c) = &f.cookies {
            Field::Cookies {
                pattern: self.name_pattern(
                    &c.match_pattern,
                    &join(path, "Cookies.MatchPattern"),
                    false,
                )?,
                scope: c.match_scope,
                oversize: oversize(Some(c.oversize_handling)),
            }
        } else if let Some(q) = &f.single_query_argument {
            Field::SingleQueryArgument(q.name.to_ascii_lowercase())
        } else if f.all_query_arguments.is_some() {
            Field::AllQueryArguments
        } else if f.uri_path.is_some() {
            Field::UriPath
        } else if f.query_string.is_some() {
            Field::QueryString
        } else if f.method.is_some() {
            Field::Method
        } else if let Some(b) = &f.body {
            Field::Body {
                oversize: oversize(b.oversize_handling),
            }
        } else if let Some(j) = &f.json_body {
            let pattern = match (&j.match_pattern.all, &j.match_pattern.included_paths) {
                (Some(_), None) => None,
                (None, Some(paths)) => {
                    for (i, p) in paths.iter().enumerate() {
                        if !(p.is_empty() || p.starts_with('/')) {
                            return Err(self.err(
                                &join(path, &format!("JsonBody.MatchPattern.IncludedPaths[{i}]")),
                                format!("`{p}` is not a JSON pointer (it must start with `/`)"),
                            ));
                        }
                    }
                    Some(paths.clone().into_boxed_slice())
                }
                _ => {
                    return Err(self.err(
                        &join(path, "JsonBody.MatchPattern"),
                        "MatchPattern must set exactly one of All or IncludedPaths",
                    ));
                }
            };
            Field::JsonBody {
                paths: pattern,
                scope: j.match_scope,
                invalid: j.invalid_fallback_behavior,
                oversize: oversize(j.oversize_handling),
            }
        } else {
            return Err(self.err(path, "empty FieldToMatch"));
        })
    }

    fn name_pattern(&self, p: &model::MultiPattern, path: &str, headers: bool) -> Res<NamePattern> {
        let norm = |names: &Vec<String>| -> Box<[String]> {
            names
                .iter()
                .map(|n| {
                    if headers {
                        n.to_ascii_lowercase()
                    } else {
                        n.clone()
                    }
                })
                .collect()
        };
        match (&p.all, &p.included_headers, &p.excluded_headers) {
            (Some(_), None, None) => Ok(NamePattern::All),
            (None, Some(names), None) => Ok(NamePattern::Included(norm(names))),
            (None, None, Some(names)) => Ok(NamePattern::Excluded(norm(names))),
            _ => Err(self.err(
                path,
                "MatchPattern must set exactly one of All, Included... or Excluded...",
            )),
        }
    }
}
