//! The control plane's state and every operation on it, shared by the local
//! backends (in memory and embedded).
//!
//! An operation reads the state and answers the [`Change`]s it would make,
//! without making them: the store writes the changes to its journal (a no-op
//! in memory, one durable transaction when embedded) and only then applies
//! them. So invalid input, or a failed write, never changes the state.

mod counter;
mod keys;
mod quota;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use portcullis_core::plan::UsagePlan;

use crate::error::StoreError;
use crate::model::{ApiKey, Page, PageRequest, UsagePlanRecord};
use crate::packed::Packed;

pub(crate) use counter::{Counter, DayRec, date_of};

/// Limits on how much the store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// The most API keys (AWS's default quota: 10,000 per region).
    pub max_api_keys: usize,
    /// The most usage plans (AWS's default quota: 300 per region).
    pub max_usage_plans: usize,
    /// Days of usage records kept before today (90, as GetUsage covers).
    pub retention_days: u32,
    /// Whether the store keeps key values (for GetApiKey `includeValue`), or
    /// only their digests.
    pub retain_values: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_api_keys: 10_000,
            max_usage_plans: 300,
            retention_days: 90,
            retain_values: true,
        }
    }
}

pub(crate) type Pair = (String, String);

/// One change to the state.
#[derive(Clone, Debug)]
pub(crate) enum Change {
    PutKey(Box<ApiKey>),
    DelKey(String),
    PutPlan(Box<UsagePlanRecord>),
    DelPlan(String),
    /// (plan, key)
    PutAssoc(Pair),
    DelAssoc(Pair),
    PutCounter(Pair, Counter),
    DelCounter(Pair),
    PutDay(Pair, i32, DayRec),
    DelDay(Pair, i32),
}

impl Change {
    /// Whether the change touches keys, plans or associations (what caches
    /// of them must reload), rather than counters.
    pub(crate) fn is_config(&self) -> bool {
        matches!(
            self,
            Change::PutKey(_)
                | Change::DelKey(_)
                | Change::PutPlan(_)
                | Change::DelPlan(_)
                | Change::PutAssoc(_)
                | Change::DelAssoc(_)
        )
    }
}

/// Bytes of a key id kept in the entry itself: AWS key ids are 10
/// characters, so most never take a heap block of their own.
pub(crate) const INLINE_KEY: usize = 14;

/// A key id in 16 bytes: its bytes inline when they fit, else on the heap
/// behind a thin pointer. Always the bytes of a `str`.
pub(crate) enum KeyId {
    Inline {
        len: u8,
        bytes: [u8; INLINE_KEY],
    },
    // A thin pointer (8 bytes), so the id is 16 bytes, not 24.
    #[allow(clippy::redundant_allocation)]
    Heap(Box<Box<str>>),
}

impl KeyId {
    pub(crate) fn new(key: &str) -> Self {
        match u8::try_from(key.len()) {
            Ok(len) if key.len() <= INLINE_KEY => {
                let mut bytes = [0; INLINE_KEY];
                bytes[..key.len()].copy_from_slice(key.as_bytes());
                Self::Inline { len, bytes }
            }
            _ => Self::Heap(Box::new(key.into())),
        }
    }

    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(key) => key.as_bytes(),
        }
    }

    pub(crate) fn to_owned_string(&self) -> String {
        // The bytes were a `str`'s: the lossy path never replaces anything.
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }
}

/// A (plan id, key id) pair, owned or borrowed: the borrowed key type of
/// the maps keyed by one, so a lookup by `&str`s allocates nothing.
pub(crate) trait PairRef {
    fn pair(&self) -> (&str, &[u8]);
}

impl PairRef for (&str, &[u8]) {
    #[inline]
    fn pair(&self) -> (&str, &[u8]) {
        (self.0, self.1)
    }
}

impl Hash for dyn PairRef + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (plan, key) = self.pair();
        plan.hash(state);
        key.hash(state);
    }
}

impl PartialEq for dyn PairRef + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.pair() == other.pair()
    }
}

impl Eq for dyn PairRef + '_ {}

/// Everything a local store holds.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) options: StoreOptions,
    keys: BTreeMap<String, ApiKey>,
    by_digest: HashMap<[u8; 32], String>,
    plans: BTreeMap<String, UsagePlanRecord>,
    /// (plan, key)
    plan_keys: BTreeSet<Pair>,
    /// (key, plan)
    key_plans: BTreeSet<Pair>,
    /// Quota counters and usage records.
    counters: Packed,
}

type Op<T> = Result<(T, Vec<Change>), StoreError>;

fn not_found(what: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_owned(),
    }
}

fn page<'a, T: 'a, U>(
    items: impl Iterator<Item = (&'a String, T)>,
    request: &PageRequest,
    map: impl Fn(T) -> U,
) -> Result<Page<U>, StoreError> {
    let limit = request.checked_limit()?;
    let mut out = Vec::new();
    let mut position = None;
    let mut last: Option<&String> = None;
    let after = request.position.as_deref();
    for (id, item) in items.filter(|(id, _)| after.is_none_or(|p| id.as_str() > p)) {
        if out.len() == limit {
            // More follow: the next page starts after the last one returned.
            position = last.cloned();
            break;
        }
        last = Some(id);
        out.push(map(item));
    }
    Ok(Page {
        items: out,
        position,
    })
}

/// Whether two plans apply to a common stage (a plan with no stages applies
/// to every stage).
pub(crate) fn stages_overlap(a: &UsagePlan, b: &UsagePlan) -> Option<String> {
    if a.api_stages().is_empty() || b.api_stages().is_empty() {
        return Some("every stage".to_owned());
    }
    a.api_stages()
        .iter()
        .find(|s| b.applies_to(&s.api_id, &s.stage))
        .map(|s| format!("{}/{}", s.api_id, s.stage))
}

/// Input of CreateUsagePlan.
#[derive(Clone, Debug)]
pub struct NewUsagePlan {
    /// An id to use; `None` generates one.
    pub id: Option<String>,
    /// The plan, whose id is replaced by the chosen one. Its name is required.
    pub plan: UsagePlan,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl State {
    pub(crate) fn new(options: StoreOptions) -> Self {
        Self {
            options,
            ..Self::default()
        }
    }

    // ---------------------------------------------------------------- apply

    pub(crate) fn apply(&mut self, changes: Vec<Change>) {
        for change in changes {
            match change {
                Change::PutKey(key) => {
                    if let Some(old) = self.keys.get(&key.id) {
                        self.by_digest.remove(old.digest.as_bytes());
                    }
                    self.by_digest
                        .insert(*key.digest.as_bytes(), key.id.clone());
                    self.keys.insert(key.id.clone(), *key);
                }
                Change::DelKey(id) => {
                    if let Some(old) = self.keys.remove(&id) {
                        self.by_digest.remove(old.digest.as_bytes());
                    }
                }
                Change::PutPlan(plan) => {
                    self.plans.insert(plan.id().to_owned(), *plan);
                }
                Change::DelPlan(id) => {
                    self.plans.remove(&id);
                }
                Change::PutAssoc((plan, key)) => {
                    self.key_plans.insert((key.clone(), plan.clone()));
                    self.plan_keys.insert((plan, key));
                }
                Change::DelAssoc((plan, key)) => {
                    self.key_plans.remove(&(key.clone(), plan.clone()));
                    self.plan_keys.remove(&(plan, key));
                }
                Change::PutCounter((plan, key), counter) => {
                    self.counters.insert(&plan, &key, &counter);
                }
                Change::DelCounter((plan, key)) => {
                    self.counters.remove(&plan, &key);
                }
                Change::PutDay((plan, key), day, rec) => {
                    self.counters.put_day(&plan, &key, day, rec);
                }
                Change::DelDay((plan, key), day) => {
                    self.counters.remove_day(&plan, &key, day);
                }
            }
        }
    }
}

/// `plan` with its id replaced.
pub(crate) fn rebuild_with_id(plan: &UsagePlan, id: &str) -> Result<UsagePlan, StoreError> {
    let mut rebuilt = UsagePlan::new(id).map_err(|e| StoreError::bad(e.to_string()))?;
    if let Some(name) = plan.name() {
        rebuilt = rebuilt.with_name(name);
    }
    if let Some(description) = plan.description() {
        rebuilt = rebuilt.with_description(description);
    }
    if let Some(throttle) = plan.throttle() {
        rebuilt = rebuilt.with_throttle(*throttle);
    }
    if let Some(quota) = plan.quota() {
        rebuilt = rebuilt.with_quota(*quota);
    }
    for stage in plan.api_stages() {
        rebuilt = rebuilt.with_api_stage(stage.clone());
    }
    Ok(rebuilt)
}
