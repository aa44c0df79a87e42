//! The local stores' quota counters and usage records, packed.
//!
//! A local store keeps one [`Counter`] for every (plan, key) pair that has
//! been counted, and one [`DayRec`] for each past day of each pair, for as
//! long as the retention keeps it. At a million keys these are most of the
//! store's memory, so they are not kept as maps keyed by two `String`s:
//!
//! - **Plan ids** are interned: a pair names its plan by a `u32`.
//! - **Key ids** of up to [`INLINE_KEY_BYTES`] bytes (AWS key ids are 10
//!   characters) are kept inline in 16 bytes; a longer one is interned once,
//!   whatever the number of plans and days that name it, and named by a
//!   `u32`.
//! - A counter's **terms** (its period's start, its first period's start,
//!   the quota's limit and period, and the period's allowance) are the same
//!   for nearly every key of a plan in a period: they are interned, and a
//!   counter names them by a `u32`.
//! - Its **counts** (budget, reserved, used, the day's base and the
//!   generation) are five `u32`s when each fits; a counter with a count of
//!   `u32::MAX` or more keeps its five counts as `u64`s in a side map.
//! - The counters are **slots** in one array, found through a `hashbrown`
//!   [`HashTable`] of `u32` slot numbers (hashed with `foldhash`, randomly
//!   seeded). A removed counter's slot goes on a free list, and its index
//!   entry is removed with it, so a later counter in the slot is found only
//!   by its own ids.
//!
//! Every interned value is reference-counted, and dropped with its last
//! user.
//!
//! What each costs, per counter: 48 bytes of slot, 4 bytes and a control
//! byte of index (at a load of 44–88 %: 5.7–11.4 bytes), and for a counter
//! whose counts do not fit 32 bits 40 more bytes and a map entry. A key id
//! longer than 15 bytes costs one heap copy and an entry of about 40 bytes,
//! shared by every pair naming it. A usage record costs 40 bytes in a
//! B-tree (24 of key, 16 of record) instead of two `String`s, their heap
//! blocks and the day.
//!
//! The embedded store's file is unchanged by this: what it writes and reads
//! are [`Counter`]s and [`DayRec`]s, packed here only once loaded.

mod interner;

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash};
use std::ops::Bound;

use hashbrown::HashTable;

use crate::state::{Counter, DayRec};
use interner::{Hasher, Interner};

/// Key-id bytes kept inline in a slot; longer ids are interned.
pub(crate) const INLINE_KEY_BYTES: usize = 15;

/// The most counters a store holds: slot numbers are `u32`s, one of them
/// marking a vacant slot.
pub(crate) const MAX_COUNTERS: usize = (u32::MAX - 1) as usize;

/// A key id in 16 bytes: byte 0 is the length and bytes 1.. the id when it
/// fits; else byte 0 is [`LONG`] and bytes 4..8 the id's interned number.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct KeyCode([u8; 16]);

const LONG: u8 = u8::MAX;

impl KeyCode {
    fn inline(key: &str) -> Option<Self> {
        let len = u8::try_from(key.len())
            .ok()
            .filter(|_| key.len() <= INLINE_KEY_BYTES)?;
        let mut bytes = [0; 16];
        bytes[0] = len;
        bytes[1..=key.len()].copy_from_slice(key.as_bytes());
        Some(Self(bytes))
    }

    fn long(id: u32) -> Self {
        let mut bytes = [0; 16];
        bytes[0] = LONG;
        bytes[4..8].copy_from_slice(&id.to_le_bytes());
        Self(bytes)
    }

    /// The bytes of an inline id.
    fn inline_bytes(&self) -> &[u8] {
        self.0.get(1..=usize::from(self.0[0])).unwrap_or_default()
    }

    fn long_id(&self) -> Option<u32> {
        (self.0[0] == LONG)
            .then(|| u32::from_le_bytes([self.0[4], self.0[5], self.0[6], self.0[7]]))
    }
}

/// A counter's terms: what nearly every key of a plan shares in a period.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Terms {
    period_start: i64,
    first_period_start: i64,
    limit: u64,
    allowance: u64,
    kind: u8,
}

impl Terms {
    fn of(c: &Counter) -> Self {
        Self {
            period_start: c.period_start,
            first_period_start: c.first_period_start,
            limit: c.limit,
            allowance: c.allowance,
            kind: c.kind,
        }
    }
}

/// Free slots from which [`Packed::remove`] compacts the counters, when
/// they are more than half.
const COMPACT_MIN_FREE: usize = 1024;

/// The plan of a vacant slot.
const VACANT: u32 = u32::MAX;

/// One counter: 48 bytes.
#[derive(Clone, Copy)]
struct Slot {
    key: KeyCode,
    /// The plan's interned id, or [`VACANT`].
    plan: u32,
    terms: u32,
    day: i32,
    /// budget, reserved, used, day_used_base, generation; all `u32::MAX`
    /// when they are in the wide map.
    counts: [u32; 5],
}

const WIDE: [u32; 5] = [u32::MAX; 5];

fn counts_of(c: &Counter) -> [u64; 5] {
    [c.budget, c.reserved, c.used, c.day_used_base, c.generation]
}

/// The counts as `u32`s, when each is below `u32::MAX`.
fn narrow(counts: [u64; 5]) -> Option<[u32; 5]> {
    let mut out = [0; 5];
    for (o, c) in out.iter_mut().zip(counts) {
        *o = u32::try_from(c).ok().filter(|&c| c != u32::MAX)?;
    }
    Some(out)
}

/// The quota counters and usage records of a local store (see the module
/// docs).
pub(crate) struct Packed {
    hasher: Hasher,
    /// The slot number of every counter, by the hash of its ids.
    index: HashTable<u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Counts of counters whose counts do not fit 32 bits, by slot.
    wide: HashMap<u32, [u64; 5], Hasher>,
    plans: Interner<Box<str>>,
    keys: Interner<Box<str>>,
    terms: Interner<Terms>,
    /// Usage records by (plan, key, day).
    days: BTreeMap<(u32, KeyCode, i32), DayRec>,
}

impl Default for Packed {
    fn default() -> Self {
        Self {
            hasher: Hasher::default(),
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            wide: HashMap::default(),
            plans: Interner::default(),
            keys: Interner::default(),
            terms: Interner::default(),
            days: BTreeMap::new(),
        }
    }
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packed")
            .field("counters", &self.len())
            .field("days", &self.days.len())
            .finish_non_exhaustive()
    }
}

impl Packed {
    /// How many counters are held.
    pub(crate) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether a counter for a pair not held yet fits.
    pub(crate) fn has_room(&self) -> bool {
        self.len() < MAX_COUNTERS
    }

    fn hash_ids(&self, plan: u32, key: &[u8]) -> u64 {
        self.hasher.hash_one((plan, key))
    }

    fn key_bytes<'a>(&'a self, code: &'a KeyCode) -> &'a [u8] {
        match code.long_id() {
            Some(id) => self.keys.get(id).map_or(&[], |k| k.as_bytes()),
            None => code.inline_bytes(),
        }
    }

    /// The code of a key id already kept, without keeping it.
    fn find_key(&self, key: &str) -> Option<KeyCode> {
        KeyCode::inline(key).or_else(|| self.keys.find(&self.hasher, key).map(KeyCode::long))
    }

    /// The code of a key id, with one more user when it is interned.
    fn acquire_key(&mut self, key: &str) -> KeyCode {
        KeyCode::inline(key)
            .unwrap_or_else(|| KeyCode::long(self.keys.acquire(&self.hasher, key, || key.into())))
    }

    fn release_key(&mut self, code: KeyCode) {
        if let Some(id) = code.long_id() {
            self.keys.release(&self.hasher, id);
        }
    }

    fn find_slot(&self, plan_id: &str, key_id: &str) -> Option<u32> {
        let plan = self.plans.find(&self.hasher, plan_id)?;
        let hash = self.hash_ids(plan, key_id.as_bytes());
        self.index
            .find(hash, |&slot| {
                self.slots
                    .get(slot as usize)
                    .is_some_and(|s| s.plan == plan && self.key_bytes(&s.key) == key_id.as_bytes())
            })
            .copied()
    }

    fn unpack(&self, number: u32, slot: &Slot) -> Counter {
        let [budget, reserved, used, day_used_base, generation] = if slot.counts == WIDE {
            self.wide.get(&number).copied().unwrap_or_default()
        } else {
            slot.counts.map(u64::from)
        };
        let terms = self.terms.get(slot.terms).copied().unwrap_or(Terms {
            period_start: 0,
            first_period_start: 0,
            limit: 0,
            allowance: 0,
            kind: 0,
        });
        Counter {
            period_start: terms.period_start,
            first_period_start: terms.first_period_start,
            limit: terms.limit,
            kind: terms.kind,
            day: slot.day,
            budget,
            reserved,
            used,
            day_used_base,
            allowance: terms.allowance,
            generation,
        }
    }

    /// The pair's counter.
    pub(crate) fn get(&self, plan_id: &str, key_id: &str) -> Option<Counter> {
        let number = self.find_slot(plan_id, key_id)?;
        let slot = self.slots.get(number as usize)?;
        Some(self.unpack(number, slot))
    }

    /// The pair's counter with its slot number, for
    /// [`set_counts`](Self::set_counts).
    pub(crate) fn get_numbered(&self, plan_id: &str, key_id: &str) -> Option<(u32, Counter)> {
        let number = self.find_slot(plan_id, key_id)?;
        let slot = self.slots.get(number as usize)?;
        Some((number, self.unpack(number, slot)))
    }

    /// Writes the counts of `counter` into slot `number`, whose terms and
    /// day `counter` keeps: an in-place update, with no lookup of the ids
    /// and nothing interned. A counter whose terms or day changed goes
    /// through [`insert`](Self::insert).
    pub(crate) fn set_counts(&mut self, number: u32, counter: &Counter) {
        let counts = counts_of(counter);
        match (self.slots.get_mut(number as usize), narrow(counts)) {
            (Some(slot), Some(narrow)) if slot.counts != WIDE => slot.counts = narrow,
            (Some(slot), _) => {
                let terms = slot.terms;
                self.fill(number, counter, Some(terms));
            }
            (None, _) => {}
        }
    }

    /// Whether the pair has a counter.
    pub(crate) fn contains(&self, plan_id: &str, key_id: &str) -> bool {
        self.find_slot(plan_id, key_id).is_some()
    }

    /// Writes `counter`'s terms and counts into slot `number`.
    fn fill(&mut self, number: u32, counter: &Counter, old_terms: Option<u32>) -> u32 {
        let terms = Terms::of(counter);
        let id = match old_terms {
            Some(old) if self.terms.get(old) == Some(&terms) => old,
            _ => {
                let id = self.terms.acquire(&self.hasher, &terms, || terms);
                if let Some(old) = old_terms {
                    self.terms.release(&self.hasher, old);
                }
                id
            }
        };
        let counts = counts_of(counter);
        let packed = match narrow(counts) {
            Some(narrow) => {
                self.wide.remove(&number);
                narrow
            }
            None => {
                self.wide.insert(number, counts);
                WIDE
            }
        };
        if let Some(slot) = self.slots.get_mut(number as usize) {
            slot.terms = id;
            slot.day = counter.day;
            slot.counts = packed;
        }
        id
    }

    /// Sets the pair's counter. A new pair beyond [`MAX_COUNTERS`] is not
    /// kept: the operations check [`has_room`](Self::has_room) first.
    pub(crate) fn insert(&mut self, plan_id: &str, key_id: &str, counter: &Counter) {
        if let Some(number) = self.find_slot(plan_id, key_id) {
            let old = self.slots.get(number as usize).map(|s| s.terms);
            self.fill(number, counter, old);
            return;
        }
        if !self.has_room() {
            tracing::error!(
                "control-plane store: {MAX_COUNTERS} quota counters held, one more is not kept"
            );
            return;
        }
        let plan = self.plans.acquire(&self.hasher, plan_id, || plan_id.into());
        let key = self.acquire_key(key_id);
        let vacant = Slot {
            key,
            plan,
            terms: 0,
            day: 0,
            counts: [0; 5],
        };
        let number = match self.free.pop() {
            Some(number) => {
                if let Some(slot) = self.slots.get_mut(number as usize) {
                    *slot = vacant;
                }
                number
            }
            None => {
                // `has_room`: fewer than `MAX_COUNTERS` slots are in use.
                let number = u32::try_from(self.slots.len()).unwrap_or(VACANT);
                self.slots.push(vacant);
                number
            }
        };
        self.fill(number, counter, None);
        let hash = self.hash_ids(plan, key_id.as_bytes());
        let (slots, keys, hasher) = (&self.slots, &self.keys, &self.hasher);
        self.index.insert_unique(hash, number, |&other| {
            slots.get(other as usize).map_or(0, |s| {
                let key = match s.key.long_id() {
                    Some(id) => keys.get(id).map_or(&[][..], |k| k.as_bytes()),
                    None => s.key.inline_bytes(),
                };
                hasher.hash_one((s.plan, key))
            })
        });
    }

    /// Drops the pair's counter; its slot is reused by a later one.
    pub(crate) fn remove(&mut self, plan_id: &str, key_id: &str) {
        let Some(number) = self.find_slot(plan_id, key_id) else {
            return;
        };
        let Some(slot) = self.slots.get(number as usize).copied() else {
            return;
        };
        let hash = self.hash_ids(slot.plan, key_id.as_bytes());
        if let Ok(entry) = self.index.find_entry(hash, |&other| other == number) {
            entry.remove();
        }
        self.wide.remove(&number);
        self.terms.release(&self.hasher, slot.terms);
        self.plans.release(&self.hasher, slot.plan);
        self.release_key(slot.key);
        if let Some(s) = self.slots.get_mut(number as usize) {
            s.plan = VACANT;
        }
        self.free.push(number);
        if self.free.len() == self.slots.len() {
            // No counter left: give the memory back.
            self.slots = Vec::new();
            self.free = Vec::new();
            self.index = HashTable::new();
            self.wide = HashMap::default();
        } else if self.free.len() >= COMPACT_MIN_FREE && self.free.len() * 2 > self.slots.len() {
            self.compact();
        }
    }

    /// Moves the counters into a new array of their size, and rebuilds the
    /// index at its size: the memory of the removed ones goes back to the
    /// allocator.
    fn compact(&mut self) {
        let old = std::mem::take(&mut self.slots);
        let mut wide = std::mem::take(&mut self.wide);
        let live = old.len() - self.free.len();
        self.free = Vec::new();
        self.slots = Vec::with_capacity(live);
        self.index = HashTable::with_capacity(live);
        self.wide = HashMap::with_capacity_and_hasher(wide.len(), self.hasher.clone());
        for (slot, old_number) in old.into_iter().zip(0u32..) {
            if slot.plan == VACANT {
                continue;
            }
            // Fewer than `MAX_COUNTERS` counters were held.
            let number = u32::try_from(self.slots.len()).unwrap_or(VACANT);
            if slot.counts == WIDE
                && let Some(counts) = wide.remove(&old_number)
            {
                self.wide.insert(number, counts);
            }
            self.slots.push(slot);
            let hash = self.hash_ids(slot.plan, self.key_bytes(&slot.key));
            // No rehash: the table was made with room for every counter.
            self.index.insert_unique(hash, number, |_| 0);
        }
    }

    /// Every counter, with its plan and key ids.
    pub(crate) fn counters(&self) -> impl Iterator<Item = (&str, &[u8], Counter)> + '_ {
        self.slots
            .iter()
            .zip(0u32..)
            .filter(|(s, _)| s.plan != VACANT)
            .map(|(s, number)| {
                let plan = self.plans.get(s.plan).map_or("", |p| &**p);
                (plan, self.key_bytes(&s.key), self.unpack(number, s))
            })
    }

    // ---------------------------------------------------------------- days

    /// The pair's (plan, key) codes, when both are kept.
    fn find_pair(&self, plan_id: &str, key_id: &str) -> Option<(u32, KeyCode)> {
        Some((
            self.plans.find(&self.hasher, plan_id)?,
            self.find_key(key_id)?,
        ))
    }

    /// The pair's usage record of `day`.
    pub(crate) fn day(&self, plan_id: &str, key_id: &str, day: i32) -> Option<DayRec> {
        let (plan, key) = self.find_pair(plan_id, key_id)?;
        self.days.get(&(plan, key, day)).copied()
    }

    /// The pair's usage records from day `from` to day `to`, in day order.
    pub(crate) fn days(
        &self,
        plan_id: &str,
        key_id: &str,
        from: Bound<i32>,
        to: Bound<i32>,
    ) -> impl Iterator<Item = (i32, DayRec)> + '_ {
        let range = self.find_pair(plan_id, key_id).map(|(plan, key)| {
            let bound = |b: Bound<i32>| match b {
                Bound::Included(d) => Bound::Included((plan, key, d)),
                Bound::Excluded(d) => Bound::Excluded((plan, key, d)),
                Bound::Unbounded => Bound::Included((plan, key, i32::MIN)),
            };
            let upper = match to {
                Bound::Unbounded => Bound::Included((plan, key, i32::MAX)),
                to => bound(to),
            };
            self.days.range((bound(from), upper))
        });
        range
            .into_iter()
            .flatten()
            .map(|((_, _, day), rec)| (*day, *rec))
    }

    /// Sets the pair's usage record of `day`.
    pub(crate) fn put_day(&mut self, plan_id: &str, key_id: &str, day: i32, rec: DayRec) {
        if let Some((plan, key)) = self.find_pair(plan_id, key_id)
            && let Some(stored) = self.days.get_mut(&(plan, key, day))
        {
            *stored = rec;
            return;
        }
        let plan = self.plans.acquire(&self.hasher, plan_id, || plan_id.into());
        let key = self.acquire_key(key_id);
        self.days.insert((plan, key, day), rec);
    }

    /// Drops the pair's usage record of `day`.
    pub(crate) fn remove_day(&mut self, plan_id: &str, key_id: &str, day: i32) {
        let Some((plan, key)) = self.find_pair(plan_id, key_id) else {
            return;
        };
        if self.days.remove(&(plan, key, day)).is_some() {
            self.plans.release(&self.hasher, plan);
            self.release_key(key);
        }
    }

    /// The key ids with counters or usage records in the plan.
    pub(crate) fn plan_key_ids(&self, plan_id: &str) -> Vec<String> {
        let Some(plan) = self.plans.find(&self.hasher, plan_id) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = self
            .slots
            .iter()
            .filter(|s| s.plan == plan)
            .map(|s| s.key)
            .chain(
                self.days
                    .range((plan, KeyCode([0; 16]), i32::MIN)..)
                    .take_while(|((p, _, _), _)| *p == plan)
                    .map(|((_, key, _), _)| *key),
            )
            .map(|code| String::from_utf8_lossy(self.key_bytes(&code)).into_owned())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

#[cfg(test)]
mod tests;
