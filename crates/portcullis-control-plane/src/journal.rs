//! Where a local store writes its changes before applying them: nowhere
//! (the in-memory store), or a [redb](https://docs.rs/redb) database in one
//! durable transaction per operation (the embedded store), from which the
//! embedded store also loads its state when opened.

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;
use crate::model::{ApiKey, UsagePlanRecord};
use crate::record::{StoredKey, StoredPlan};
use crate::state::{Change, Counter, DayRec, State};

/// Where a local store writes its changes before applying them.
pub(crate) enum Journal {
    /// Nothing: the in-memory store.
    Memory,
    /// One durable redb transaction per operation.
    Embedded(RedbJournal),
}

impl Journal {
    pub(crate) fn blocks(&self) -> bool {
        matches!(self, Journal::Embedded(_))
    }

    pub(crate) fn write(&self, changes: &[Change]) -> Result<(), StoreError> {
        match self {
            Journal::Memory => Ok(()),
            Journal::Embedded(journal) => journal.write(changes),
        }
    }
}

const KEYS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("api_keys");
const PLANS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("usage_plans");
const ASSOCS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("usage_plan_keys");
const COUNTERS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("quota_counters");
const DAYS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("usage_records");

/// Turns one stored entry into the change that loads it.
type Loader<'a> = dyn FnMut(&str, &[u8]) -> Result<Change, StoreError> + 'a;

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(StoreError::backend)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(StoreError::backend)
}

fn pair_key(pair: &(String, String)) -> Result<String, StoreError> {
    serde_json::to_string(pair).map_err(StoreError::backend)
}

fn day_key(pair: &(String, String), day: i32) -> Result<String, StoreError> {
    serde_json::to_string(&(&pair.0, &pair.1, day)).map_err(StoreError::backend)
}

fn api_key(stored: StoredKey) -> Result<ApiKey, StoreError> {
    ApiKey::try_from(stored).map_err(StoreError::backend)
}

/// The embedded store's journal: one redb write transaction per operation,
/// committed with [`Durability::Immediate`] (checksummed commit slot, then
/// `fsync`), so a committed change survives `kill -9` and power loss.
pub(crate) struct RedbJournal {
    pub(crate) db: Database,
}

impl RedbJournal {
    pub(crate) fn write(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(StoreError::backend)?;
        tx.set_durability(Durability::Immediate)
            .map_err(StoreError::backend)?;
        {
            let mut keys = tx.open_table(KEYS).map_err(StoreError::backend)?;
            let mut plans = tx.open_table(PLANS).map_err(StoreError::backend)?;
            let mut assocs = tx.open_table(ASSOCS).map_err(StoreError::backend)?;
            let mut counters = tx.open_table(COUNTERS).map_err(StoreError::backend)?;
            let mut days = tx.open_table(DAYS).map_err(StoreError::backend)?;
            for change in changes {
                let done = match change {
                    Change::PutKey(key) => keys
                        .insert(
                            key.id.as_str(),
                            encode(&StoredKey::from(&**key))?.as_slice(),
                        )
                        .map(drop),
                    Change::DelKey(id) => keys.remove(id.as_str()).map(drop),
                    Change::PutPlan(plan) => plans
                        .insert(plan.id(), encode(&StoredPlan::from(&**plan))?.as_slice())
                        .map(drop),
                    Change::DelPlan(id) => plans.remove(id.as_str()).map(drop),
                    Change::PutAssoc(pair) => assocs
                        .insert(pair_key(pair)?.as_str(), [].as_slice())
                        .map(drop),
                    Change::DelAssoc(pair) => assocs.remove(pair_key(pair)?.as_str()).map(drop),
                    Change::PutCounter(pair, counter) => counters
                        .insert(pair_key(pair)?.as_str(), encode(counter)?.as_slice())
                        .map(drop),
                    Change::DelCounter(pair) => counters.remove(pair_key(pair)?.as_str()).map(drop),
                    Change::PutDay(pair, day, rec) => days
                        .insert(day_key(pair, *day)?.as_str(), encode(rec)?.as_slice())
                        .map(drop),
                    Change::DelDay(pair, day) => {
                        days.remove(day_key(pair, *day)?.as_str()).map(drop)
                    }
                };
                done.map_err(StoreError::backend)?;
            }
        }
        tx.commit().map_err(StoreError::backend)
    }

    pub(crate) fn load(&self, state: &mut State) -> Result<(), StoreError> {
        let tx = self.db.begin_read().map_err(StoreError::backend)?;
        let mut changes = Vec::new();
        let mut each = |table: TableDefinition<'_, &str, &[u8]>,
                        f: &mut Loader<'_>|
         -> Result<(), StoreError> {
            let table = match tx.open_table(table) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
                Err(e) => return Err(StoreError::backend(e)),
            };
            for entry in table.iter().map_err(StoreError::backend)? {
                let (k, v) = entry.map_err(StoreError::backend)?;
                changes.push(f(k.value(), v.value())?);
            }
            Ok(())
        };
        each(KEYS, &mut |_, v| {
            Ok(Change::PutKey(Box::new(api_key(decode(v)?)?)))
        })?;
        each(PLANS, &mut |_, v| {
            let stored: StoredPlan = decode(v)?;
            Ok(Change::PutPlan(Box::new(UsagePlanRecord::from(stored))))
        })?;
        each(ASSOCS, &mut |k, _| {
            Ok(Change::PutAssoc(decode(k.as_bytes())?))
        })?;
        each(COUNTERS, &mut |k, v| {
            let counter: Counter = decode(v)?;
            Ok(Change::PutCounter(decode(k.as_bytes())?, counter))
        })?;
        each(DAYS, &mut |k, v| {
            let (plan, key, day): (String, String, i32) = decode(k.as_bytes())?;
            let rec: DayRec = decode(v)?;
            Ok(Change::PutDay((plan, key), day, rec))
        })?;
        state.apply(changes);
        Ok(())
    }
}
