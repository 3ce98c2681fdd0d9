//! The node's SQLite database: every document as the signed changes it holds, what the node
//! trusts and whom it pins, per-peer sync bookkeeping, and the append-only audit log.
//!
//! A document is stored as its changes in the order they were admitted (a causal order), and
//! read back through the same gate ([`Ledger`]) as a change from a peer: every signature and
//! every structural check runs again on load, so a tampered row stops the document from loading
//! instead of showing. Verified ledgers are cached and valid while the database records the
//! same version of the document.
//!
//! Every write is one SQLite transaction ([`Store::transact`]). A change is reported as written
//! only after its transaction commits; on any error nothing is written, and the cached ledgers
//! it touched are dropped so they are read again.
//!
//! The code follows the tables: `schema` (the migrations), `documents` (documents, their
//! changes, the ledger cache and [`StoreTx`]), `trust` (trusted keys), `peers` (pinned peers and
//! what is remembered per peer), `audit` (the audit log) and `meta` (small settings).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use poa_protocol::NodeId;
use poa_protocol::authority::Trust;
use poa_protocol::doc::DocId;
use poa_protocol::ledger::Ledger;
use rusqlite::Connection;

mod audit;
mod documents;
mod meta;
mod peers;
mod schema;
#[cfg(test)]
mod tests;
mod trust;

pub use audit::AuditRow;
pub use documents::{DocSummary, Outcome, Source, StoreTx};
pub use peers::{Peer, Traffic};
pub use trust::Learned;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored change fails verification.
    #[error("document {doc} in the database holds a change that fails verification: {reason}")]
    Unverified {
        /// The document.
        doc: String,
        /// Why.
        reason: String,
    },
    /// The database was written by a newer poa-node.
    #[error(
        "the database has schema version {found}, newer than this poa-node knows ({known}); upgrade poa-node"
    )]
    TooNew {
        /// In the file.
        found: i64,
        /// Known here.
        known: i64,
    },
    /// The database holds documents in the format of poa-node 0.1.
    #[error(
        "this database holds documents in the format of poa-node 0.1, which this version cannot read: keep the old binary to read them, and make a new home with `poa-node init`"
    )]
    OldFormat,
}

/// The schema version this binary writes (`PRAGMA user_version` once migrated).
pub fn known_schema_version() -> i64 {
    schema::MIGRATIONS.len() as i64
}

/// The database.
pub struct Store {
    conn: Connection,
    cache: RefCell<HashMap<DocId, Cached>>,
    trust: RefCell<Trust>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

struct Cached {
    version: i64,
    ledger: Ledger,
}

fn node_of(b: &[u8]) -> Option<NodeId> {
    <[u8; 32]>::try_from(b).ok().map(NodeId)
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    /// A new database file is made readable by its owner only.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        #[cfg(unix)]
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            // SQLite gives its -wal and -shm files the permissions of the database file.
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path);
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let mut store = Store {
            conn,
            cache: RefCell::new(HashMap::new()),
            trust: RefCell::new(Trust::default()),
        };
        store.migrate()?;
        store.reload_trust()?;
        Ok(store)
    }

    /// Opens the database at `path` read-only, as it is: no migration, nothing written (for
    /// `doctor`). Documents read back through the gate as with [`Store::open`].
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let store = Store {
            conn,
            cache: RefCell::new(HashMap::new()),
            trust: RefCell::new(Trust::default()),
        };
        store.reload_trust()?;
        Ok(store)
    }

    /// SQLite's data version: changes when another connection commits.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    /// Runs `f` in one SQLite transaction: it commits if `f` succeeds, and nothing is written if
    /// it fails (the ledgers it touched are read again next time).
    pub fn transact<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut StoreTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let mut stx = StoreTx {
            tx,
            cache: &self.cache,
            trust: &self.trust,
            touched: BTreeSet::new(),
        };
        let out = f(&mut stx);
        let StoreTx { tx, touched, .. } = stx;
        let committed = match out {
            Ok(v) => {
                let started = std::time::Instant::now();
                let done = tx.commit();
                crate::metrics::observe(
                    &crate::metrics::metrics().sqlite_commit_seconds,
                    started.elapsed(),
                );
                done.map(|()| v).map_err(|e| E::from(StoreError::from(e)))
            }
            Err(e) => Err(e),
        };
        if committed.is_err() {
            let mut cache = self.cache.borrow_mut();
            for d in touched {
                cache.remove(&d);
            }
        }
        committed
    }
}
