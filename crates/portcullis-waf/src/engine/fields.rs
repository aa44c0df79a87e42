//! Extracting the parts of a request a rule inspects (`FieldToMatch`).

use std::borrow::Cow;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::ops::Deref;
use std::rc::Rc;

use http::{HeaderMap, Uri};
use serde_json::Value;

use super::{
    Env, Field, HEADERS_LIMIT_BYTES, HEADERS_LIMIT_COUNT, Oversize, RequestView, Rule, RuleBody,
    Stmt,
};
use crate::model::{InvalidFallbackBehavior, MatchScope};
use crate::transform::TransformKind;

/// What one evaluation of the web ACL has read of the request so far: the
/// fields, their transformed values, the body's JSON, the labels and the
/// client IP, each read once.
pub(super) struct Ctx<'a, 'e> {
    pub(super) req: RequestView<'a>,
    pub(super) env: &'e Env,
    pub(super) fields: Vec<Option<Extracted<'a>>>,
    /// Per input, the transformed value of each field value, `None` where
    /// the chain left it unchanged; empty when it changed none.
    pub(super) inputs: Vec<Option<Vec<Option<Vec<u8>>>>>,
    pub(super) json: Option<Option<Value>>,
    /// The body's JSON keys and leaf values, each list distinct, read once
    /// for every `JsonBody` field with `MatchPattern: All`.
    pub(super) json_items: Option<Option<JsonItems<'a>>>,
    pub(super) labels: Vec<String>,
    pub(super) client_ip: Option<Option<IpAddr>>,
}

impl<'a> Ctx<'a, '_> {
    pub(super) fn add_label(&mut self, label: &str) {
        if !self.labels.iter().any(|l| l == label) {
            self.labels.push(label.to_owned());
        }
    }

    pub(super) fn client_ip(&mut self) -> Option<IpAddr> {
        *self.client_ip.get_or_insert_with(|| {
            self.env
                .resolver
                .resolve_parts(self.req.headers, self.req.extensions)
        })
    }
}

pub(super) struct Extracted<'a> {
    pub(super) values: Values<'a>,
    pub(super) forced: Option<bool>,
}

/// A field's values: one (a path, a method: no list allocated), a list, or
/// the JSON body's keys or values, shared with the other fields that read
/// them (no copy).
pub(super) enum Values<'a> {
    One(Cow<'a, [u8]>),
    Many(Vec<Cow<'a, [u8]>>),
    Shared(Rc<Vec<Cow<'a, [u8]>>>),
}

impl<'a> Deref for Values<'a> {
    type Target = [Cow<'a, [u8]>];

    fn deref(&self) -> &Self::Target {
        match self {
            Values::One(value) => std::slice::from_ref(value),
            Values::Many(values) => values,
            Values::Shared(values) => values,
        }
    }
}

/// The keys and the leaf values of a JSON body, in document order; each
/// list made distinct the first time a field that needs it asks.
pub(super) struct JsonItems<'a> {
    keys: Rc<Vec<Cow<'a, [u8]>>>,
    values: Rc<Vec<Cow<'a, [u8]>>>,
    keys_distinct: bool,
    values_distinct: bool,
}

impl<'a> JsonItems<'a> {
    fn read(body: &'a [u8]) -> Option<Self> {
        // At most one key and one value per 4 bytes of a document; about
        // one of each per 16 bytes of a typical one.
        let mut keys = Vec::with_capacity(body.len() / 16);
        let mut values = Vec::with_capacity(body.len() / 16);
        crate::json::scan(body, |is_key, text| {
            if is_key {
                keys.push(text);
            } else {
                values.push(text);
            }
        })?;
        Some(Self {
            keys: Rc::new(keys),
            values: Rc::new(values),
            keys_distinct: false,
            values_distinct: false,
        })
    }

    fn keys(&mut self, dedupe: bool) -> Values<'a> {
        if dedupe && !self.keys_distinct {
            let keys = Rc::unwrap_or_clone(std::mem::take(&mut self.keys));
            self.keys = Rc::new(distinct(keys));
            self.keys_distinct = true;
        }
        Values::Shared(Rc::clone(&self.keys))
    }

    fn values(&mut self, dedupe: bool) -> Values<'a> {
        if dedupe && !self.values_distinct {
            let values = Rc::unwrap_or_clone(std::mem::take(&mut self.values));
            self.values = Rc::new(distinct(values));
            self.values_distinct = true;
        }
        Values::Shared(Rc::clone(&self.values))
    }
}

pub(super) fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .map(trim_ascii)
        .filter(|c| !c.is_empty())
        .map(|c| match c.iter().position(|&b| b == b'=') {
            Some(i) => (&c[..i], &c[i + 1..]),
            None => (c, &c[c.len()..]),
        })
}

fn trim_ascii(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

pub(super) fn query_args(uri: &Uri) -> impl Iterator<Item = (&[u8], &[u8])> {
    uri.query()
        .unwrap_or("")
        .as_bytes()
        .split(|&b| b == b'&')
        .filter(|a| !a.is_empty())
        .map(|a| match a.iter().position(|&b| b == b'=') {
            Some(i) => (&a[..i], &a[i + 1..]),
            None => (a, &a[a.len()..]),
        })
}

fn oversize_forced(oversize: Oversize) -> Option<bool> {
    match oversize {
        Oversize::Continue => None,
        Oversize::Match => Some(true),
        Oversize::NoMatch => Some(false),
    }
}

fn push_scoped<'a>(
    values: &mut Vec<Cow<'a, [u8]>>,
    scope: MatchScope,
    key: &'a [u8],
    value: &'a [u8],
) {
    if scope != MatchScope::Value {
        values.push(Cow::Borrowed(key));
    }
    if scope != MatchScope::Key {
        values.push(Cow::Borrowed(value));
    }
}

/// Multi-valued fields often repeat values (JSON arrays of similar objects);
/// testing each distinct value once gives the same answer for less. The first
/// of equal values stays, in order; equality is on the bytes (the hash only
/// finds candidates, so a collision never hides a value). The table is a
/// randomly seeded open-addressing table of indices into the kept values,
/// sized once: no per-value allocation, and no crafted set of values can
/// make probing quadratic across processes.
fn distinct(mut values: Vec<Cow<'_, [u8]>>) -> Vec<Cow<'_, [u8]>> {
    let n = values.len();
    if n <= 1 {
        return values;
    }
    if n <= 8 {
        // A few values: comparing each with those kept is cheaper than hashing.
        let mut kept = 0;
        for i in 0..n {
            if !values[..kept].iter().any(|k| **k == *values[i]) {
                values.swap(kept, i);
                kept += 1;
            }
        }
        values.truncate(kept);
        return values;
    }
    let slots = (2 * n).next_power_of_two();
    // 0 is an empty slot, otherwise the kept value's index plus one. Up to
    // 128 values (most requests) the table lives on the stack.
    let mut small = [0u32; 256];
    let mut large = Vec::new();
    let table: &mut [u32] = if slots <= small.len() {
        &mut small[..slots]
    } else {
        large.resize(slots, 0);
        &mut large
    };
    let mask = slots - 1;
    let state = foldhash::fast::RandomState::default();
    let mut kept = 0;
    for i in 0..n {
        let mut slot = state.hash_one(&*values[i]) as usize & mask;
        let fresh = loop {
            match table[slot] as usize {
                0 => break true,
                k if *values[k - 1] == *values[i] => break false,
                _ => slot = (slot + 1) & mask,
            }
        };
        if fresh {
            values.swap(kept, i);
            kept += 1;
            // `kept <= n`, which fits `u32`: a body past 4 GB is never
            // inspected (the limit is at most 64 KB).
            table[slot] = kept as u32;
        }
    }
    values.truncate(kept);
    values
}

pub(super) fn extract<'a>(field: &Field, dedupe: bool, ctx: &mut Ctx<'a, '_>) -> Extracted<'a> {
    let mut extracted = extract_all(field, dedupe, ctx);
    let multi_valued = match field {
        Field::Headers { .. } | Field::Cookies { .. } | Field::AllQueryArguments => true,
        // `MatchPattern: All` with scope KEY or VALUE takes a list that
        // `extract_all` made distinct.
        Field::JsonBody {
            paths: None,
            scope: MatchScope::Key | MatchScope::Value,
            ..
        } => false,
        Field::JsonBody { .. } => true,
        _ => false,
    };
    if dedupe
        && multi_valued
        && let Values::Many(values) = extracted.values
    {
        extracted.values = Values::Many(distinct(values));
    }
    extracted
}

/// Which fields are worth deduplicating: those that some input tests with a
/// transformation chain, a regular expression, a pattern set or the SQLi or
/// XSS detector. A field only byte- or size-matched untransformed (a JSON
/// key compared with `__proto__`) costs less to test twice than to hash.
pub(crate) fn dedupe_fields(
    rules: &[Rule],
    inputs: &[(usize, Box<[TransformKind]>)],
    field_count: usize,
) -> Vec<bool> {
    fn visit(stmt: &Stmt, inputs: &[(usize, Box<[TransformKind]>)], out: &mut [bool]) {
        let (input, costly) = match stmt {
            Stmt::Byte { input, .. } | Stmt::Size { input, .. } => (*input, false),
            Stmt::Regex { input, .. }
            | Stmt::RegexSet { input, .. }
            | Stmt::Sqli { input, .. }
            | Stmt::Xss { input } => (*input, true),
            Stmt::Rate(rate) => {
                if let Some(scope) = &rate.scope_down {
                    visit(scope, inputs, out);
                }
                return;
            }
            Stmt::And(list) | Stmt::Or(list) => {
                list.iter().for_each(|s| visit(s, inputs, out));
                return;
            }
            Stmt::Not(inner) => return visit(inner, inputs, out),
            Stmt::Geo { .. } | Stmt::Ip { .. } | Stmt::Label { .. } => return,
        };
        if let Some((field, chain)) = inputs.get(input)
            && let Some(flag) = out.get_mut(*field)
        {
            *flag |= costly || !chain.is_empty();
        }
    }
    let mut out = vec![false; field_count];
    for rule in rules {
        match &rule.body {
            RuleBody::Plain { stmt, .. } => visit(stmt, inputs, &mut out),
            RuleBody::Group(group) => {
                if let Some(scope) = &group.scope_down {
                    visit(scope, inputs, &mut out);
                }
                for inner in &group.rules {
                    if let RuleBody::Plain { stmt, .. } = &inner.body {
                        visit(stmt, inputs, &mut out);
                    }
                }
            }
        }
    }
    out
}

fn extract_all<'a>(field: &Field, dedupe: bool, ctx: &mut Ctx<'a, '_>) -> Extracted<'a> {
    let req = ctx.req;
    let plain = |values: Vec<Cow<'a, [u8]>>| Extracted {
        values: Values::Many(values),
        forced: None,
    };
    let one = |value: &'a [u8]| Extracted {
        values: Values::One(Cow::Borrowed(value)),
        forced: None,
    };
    match field {
        Field::SingleHeader(name) => plain(
            req.headers
                .get_all(name)
                .iter()
                .map(|v| Cow::Borrowed(v.as_bytes()))
                .collect(),
        ),
        Field::Headers {
            pattern,
            scope,
            oversize,
        } => {
            let mut values = Vec::new();
            let (mut bytes, mut count, mut over) = (0usize, 0usize, false);
            for (name, value) in req.headers {
                bytes += name.as_str().len() + value.len() + 4;
                count += 1;
                if bytes > HEADERS_LIMIT_BYTES || count > HEADERS_LIMIT_COUNT {
                    over = true;
                    break;
                }
                if pattern.admits(name.as_str()) {
                    push_scoped(
                        &mut values,
                        *scope,
                        name.as_str().as_bytes(),
                        value.as_bytes(),
                    );
                }
            }
            let forced = if over {
                oversize_forced(*oversize)
            } else {
                None
            };
            Extracted {
                values: Values::Many(values),
                forced,
            }
        }
        Field::Cookies {
            pattern,
            scope,
            oversize,
        } => {
            let mut values = Vec::new();
            let (mut bytes, mut count, mut over) = (0usize, 0usize, false);
            for (name, value) in cookies(req.headers) {
                bytes += name.len() + value.len() + 2;
                count += 1;
                if bytes > HEADERS_LIMIT_BYTES || count > HEADERS_LIMIT_COUNT {
                    over = true;
                    break;
                }
                if pattern.admits(&String::from_utf8_lossy(name)) {
                    push_scoped(&mut values, *scope, name, value);
                }
            }
            let forced = if over {
                oversize_forced(*oversize)
            } else {
                None
            };
            Extracted {
                values: Values::Many(values),
                forced,
            }
        }
        Field::SingleQueryArgument(name) => plain(
            query_args(req.uri)
                .filter(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| Cow::Borrowed(v))
                .collect(),
        ),
        Field::AllQueryArguments => {
            plain(query_args(req.uri).map(|(_, v)| Cow::Borrowed(v)).collect())
        }
        Field::UriPath => one(req.uri.path().as_bytes()),
        Field::QueryString => one(req.uri.query().unwrap_or("").as_bytes()),
        Field::Method => one(req.method.as_str().as_bytes()),
        Field::Body { oversize } => Extracted {
            values: Values::One(Cow::Borrowed(req.body)),
            forced: if req.body_oversize {
                oversize_forced(*oversize)
            } else {
                None
            },
        },
        Field::JsonBody {
            paths,
            scope,
            invalid,
            oversize,
        } => {
            if req.body_oversize
                && let Some(forced) = oversize_forced(*oversize)
            {
                return Extracted {
                    values: Values::Many(Vec::new()),
                    forced: Some(forced),
                };
            }
            if req.body.iter().all(u8::is_ascii_whitespace) {
                // Nothing to inspect: an empty body is not invalid JSON.
                return plain(Vec::new());
            }
            let parsed = match paths {
                None => ctx
                    .json_items
                    .get_or_insert_with(|| JsonItems::read(req.body))
                    .as_mut()
                    .map(|items| match scope {
                        MatchScope::Key => items.keys(dedupe),
                        MatchScope::Value => items.values(dedupe),
                        MatchScope::All => {
                            let mut all = Vec::with_capacity(items.keys.len() + items.values.len());
                            all.extend(items.keys.iter().cloned());
                            all.extend(items.values.iter().cloned());
                            Values::Many(all)
                        }
                    }),
                Some(paths) => ctx
                    .json
                    .get_or_insert_with(|| serde_json::from_slice::<Value>(req.body).ok())
                    .as_ref()
                    .map(|doc| {
                        let mut values = Vec::new();
                        for p in paths.iter() {
                            if let Some(v) = doc.pointer(p) {
                                walk_json(v, *scope, &mut values);
                            }
                        }
                        Values::Many(values)
                    }),
            };
            match parsed {
                Some(values) => Extracted {
                    values,
                    forced: None,
                },
                None => match invalid {
                    Some(InvalidFallbackBehavior::Match) => Extracted {
                        values: Values::Many(Vec::new()),
                        forced: Some(true),
                    },
                    Some(InvalidFallbackBehavior::NoMatch) => Extracted {
                        values: Values::Many(Vec::new()),
                        forced: Some(false),
                    },
                    Some(InvalidFallbackBehavior::EvaluateAsString) | None => one(req.body),
                },
            }
        }
    }
}

fn walk_json(value: &Value, scope: MatchScope, out: &mut Vec<Cow<'static, [u8]>>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if scope != MatchScope::Value {
                    out.push(Cow::Owned(k.as_bytes().to_vec()));
                }
                walk_json(v, scope, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk_json(v, scope, out)),
        leaf => {
            if scope != MatchScope::Key {
                let text = match leaf {
                    Value::String(s) => s.as_bytes().to_vec(),
                    other => other.to_string().into_bytes(),
                };
                out.push(Cow::Owned(text));
            }
        }
    }
}
