//! The embedded, durable store: the state in memory, every change written to
//! a [redb](https://docs.rs/redb) database in one durable transaction before
//! it is applied (the journal itself is [`crate::journal`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis_core::clock::{SharedClock, SystemClock};
use redb::Database;

use crate::error::StoreError;
use crate::journal::{Journal, RedbJournal};
use crate::state::{State, StoreOptions};
use crate::store::{Inner, LocalStore};

/// The embedded, durable store: the default. See the [crate docs](crate)
/// for why redb.
pub type EmbeddedStore = LocalStore;

/// The file name [`LocalStore::open_dir`] uses in its directory.
pub const DATABASE_FILE: &str = "control-plane.redb";

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
