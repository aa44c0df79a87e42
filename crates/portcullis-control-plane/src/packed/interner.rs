//! [`Interner`]: values kept once, with a count of their users, each named
//! by a `u32` (the packed counters' plan ids, long key ids and terms).

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

/// The hasher of the packed tables: `foldhash`, randomly seeded.
pub(super) type Hasher = foldhash::fast::RandomState;

/// Values kept once, with a count of their users, each named by a `u32`.
pub(super) struct Interner<T> {
    /// `(value, users)`; `None` for a free entry.
    pub(super) entries: Vec<Option<(T, u32)>>,
    pub(super) free: Vec<u32>,
    index: HashTable<u32>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
        }
    }
}

impl<T: Hash + Eq> Interner<T> {
    pub(super) fn get(&self, id: u32) -> Option<&T> {
        self.entries
            .get(id as usize)
            .and_then(Option::as_ref)
            .map(|(value, _)| value)
    }

    pub(super) fn find<Q>(&self, hasher: &Hasher, value: &Q) -> Option<u32>
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = hasher.hash_one(value);
        self.index
            .find(hash, |&id| {
                self.get(id).is_some_and(|v| v.borrow() == value)
            })
            .copied()
    }

    /// The value's id, with one more user; `make` builds the value to keep
    /// when it is not kept yet.
    pub(super) fn acquire<Q>(&mut self, hasher: &Hasher, value: &Q, make: impl FnOnce() -> T) -> u32
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(id) = self.find(hasher, value) {
            if let Some(Some((_, users))) = self.entries.get_mut(id as usize) {
                *users = users.saturating_add(1);
            }
            return id;
        }
        let entry = Some((make(), 1));
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(slot) = self.entries.get_mut(id as usize) {
                    *slot = entry;
                }
                id
            }
            None => {
                // An interned value has a user, and users are at most
                // `MAX_COUNTERS` (the packed store's) + 1 slots and day records: the id fits.
                let id = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
                self.entries.push(entry);
                id
            }
        };
        let hash = hasher.hash_one(value);
        let entries = &self.entries;
        self.index.insert_unique(hash, id, |&other| {
            entries
                .get(other as usize)
                .and_then(Option::as_ref)
                .map_or(0, |(v, _)| hasher.hash_one(v))
        });
        id
    }

    /// One user fewer; the value is dropped with its last.
    pub(super) fn release(&mut self, hasher: &Hasher, id: u32) {
        let Some(Some((value, users))) = self.entries.get_mut(id as usize) else {
            return;
        };
        *users = users.saturating_sub(1);
        if *users > 0 {
            return;
        }
        let hash = hasher.hash_one(&*value);
        if let Ok(entry) = self.index.find_entry(hash, |&other| other == id) {
            entry.remove();
        }
        if let Some(slot) = self.entries.get_mut(id as usize) {
            *slot = None;
        }
        self.free.push(id);
        if self.free.len() == self.entries.len() {
            // Nothing left: give the memory back.
            *self = Self::default();
        }
    }
}
