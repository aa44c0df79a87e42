//! The embedded, durable store: the state in memory, every change written to
//! a [redb](https://docs.rs/redb) database in one durable transaction before
//! it is applied.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis_core::clock::{SharedClock, SystemClock};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;
use crate::model::{ApiKey, UsagePlanRecord};
use crate::record::{StoredKey, StoredPlan};
use crate::state::{Change, Counter, DayRec, State, StoreOptions};
use crate::store::{Inner, Journal, LocalStore};

/// The embedded, durable store: the default. See the [crate docs](crate)
/// for why redb.
pub type EmbeddedStore = LocalStore;

/// The file name [`LocalStore::open_dir`] uses in its directory.
pub const DATABASE_FILE: &str = "control-plane.redb";

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
    db: Database,
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

    fn load(&self, state: &mut State) -> Result<(), StoreError> {
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

fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // The database holds key values (where they are retained).
        options.mode(0o600);
    }
    options.open(path).map(drop).map_err(StoreError::backend)
}

impl LocalStore {
    /// Opens (or creates) the embedded store in the file at `path`, with the
    /// default options and the system clock.
    ///
    /// After a crash, every quota request that was reserved but not
    /// reported is counted as used (see [`crate::reservation`]).
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] when the file cannot be opened or created,
    /// is not a redb database, is corrupt, or is open in another process
    /// (redb locks the file).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, StoreOptions::default(), Arc::new(SystemClock))
    }

    /// Opens (or creates) the embedded store in `dir`/[`DATABASE_FILE`],
    /// creating the directory if needed. Returns the store and the file's
    /// path.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), and when the directory cannot be created.
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<(Self, PathBuf), StoreError> {
        std::fs::create_dir_all(dir.as_ref()).map_err(StoreError::backend)?;
        let path = dir.as_ref().join(DATABASE_FILE);
        Ok((Self::open(&path)?, path))
    }

    /// [`open`](Self::open) with options and a clock.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_with(
        path: impl AsRef<Path>,
        options: StoreOptions,
        clock: SharedClock,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref();
        create_private_file(path)?;
        let db = Database::create(path).map_err(StoreError::backend)?;
        let journal = RedbJournal { db };
        let mut state = State::new(options);
        journal.load(&mut state)?;
        let recovered = state.recover();
        if !recovered.is_empty() {
            tracing::warn!(
                counters = recovered.len(),
                "control-plane store: counting reserved but unreported quota as used (the last run did not shut down cleanly)"
            );
            journal.write(&recovered)?;
            state.apply(recovered);
        }
        Ok(Self {
            inner: Arc::new(Inner::new(state, Journal::Embedded(journal), clock)),
        })
    }
}
