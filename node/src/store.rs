//! The node's SQLite database: documents as a compacted snapshot plus signed incremental changes,
//! the quarantine of rejected changes, and the append-only audit log.
//!
//! Every write is one SQLite transaction. A change is reported as written only after its
//! transaction commits; on any error nothing is written.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use poa_protocol::authority::Trust;
use poa_protocol::automerge::{Automerge, Change, ChangeHash};
use poa_protocol::doc::{DocId, genesis};
use poa_protocol::rules::{Applied, Author, Incoming, apply_checked, verify_document};
use poa_protocol::sign::Signature;
use poa_protocol::{NodeId, StateCode, rules::Rejection};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// Changes kept outside the snapshot before a write folds them in.
const COMPACT_AFTER: i64 = 64;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored document does not load.
    #[error("document {doc} in the database does not load: {reason}")]
    Corrupt {
        /// The document.
        doc: String,
        /// Why.
        reason: String,
    },
    /// A stored change fails verification.
    #[error("document {doc} holds a change that fails verification: {rejection}")]
    Unverified {
        /// The document.
        doc: String,
        /// The verdict (boxed: it is large and rare).
        rejection: Box<Rejection>,
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
}

/// Append-only migrations, applied in order by `PRAGMA user_version`. Never edit one that has
/// landed: add another.
const MIGRATIONS: &[&str] = &[
    // 1: documents, signed changes, quarantine, audit.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value BLOB NOT NULL
    ) STRICT;
    CREATE TABLE docs (
        id       TEXT PRIMARY KEY,
        snapshot BLOB,
        heads    BLOB NOT NULL,
        updated  INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE changes (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        doc         TEXT NOT NULL REFERENCES docs(id),
        hash        BLOB NOT NULL,
        author      BLOB,
        signature   BLOB,
        bytes       BLOB NOT NULL,
        source      BLOB,
        received    INTEGER NOT NULL,
        in_snapshot INTEGER NOT NULL DEFAULT 0,
        UNIQUE (doc, hash)
    ) STRICT;
    CREATE INDEX changes_pending ON changes (doc, in_snapshot, seq);
    CREATE TABLE quarantine (
        doc       TEXT NOT NULL,
        hash      BLOB NOT NULL,
        author    BLOB,
        signature BLOB,
        bytes     BLOB NOT NULL,
        peer      BLOB,
        reason    TEXT NOT NULL,
        at        INTEGER NOT NULL,
        PRIMARY KEY (doc, hash)
    ) STRICT;
    CREATE TABLE audit (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        at     INTEGER NOT NULL,
        event  TEXT NOT NULL,
        doc    TEXT,
        change BLOB,
        peer   BLOB,
        detail TEXT NOT NULL
    ) STRICT;
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    "#,
    // 2: pinned peers, per-peer per-document sync states, what each peer last offered.
    r#"
    CREATE TABLE peers (
        node_id         BLOB PRIMARY KEY,
        name            TEXT NOT NULL,
        addr            TEXT,
        state           TEXT,
        added           INTEGER NOT NULL,
        last_seen       INTEGER,
        last_error      TEXT,
        invalid_changes INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE sync_states (
        peer  BLOB NOT NULL,
        doc   TEXT NOT NULL,
        state BLOB NOT NULL,
        PRIMARY KEY (peer, doc)
    ) STRICT;
    CREATE TABLE peer_offers (
        peer BLOB NOT NULL,
        doc  TEXT NOT NULL,
        PRIMARY KEY (peer, doc)
    ) STRICT;
    "#,
    // 3: the State keys this node trusts, and how it learnt each.
    r#"
    CREATE TABLE state_keys (
        state   TEXT PRIMARY KEY,
        key     BLOB NOT NULL,
        source  TEXT NOT NULL,
        learned INTEGER NOT NULL
    ) STRICT;
    "#,
];

/// What learning a State key did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Learned {
    /// The key is now trusted for the State.
    New,
    /// The same key was already trusted.
    Known,
    /// Another key is trusted for the State: the new claim is refused.
    Conflict {
        /// The key already trusted.
        trusted: NodeId,
        /// How it was learnt.
        source: String,
    },
}

/// An event of the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditEvent {
    /// A change was accepted into a document.
    Accepted,
    /// A change was refused and quarantined.
    Rejected,
}

impl AuditEvent {
    fn as_str(&self) -> &'static str {
        match self {
            AuditEvent::Accepted => "accepted",
            AuditEvent::Rejected => "rejected",
        }
    }
}

/// A document read from the store, verified.
#[derive(Debug)]
pub struct StoredDoc {
    /// The document.
    pub doc: Automerge,
    /// Changes not yet folded into the snapshot.
    pub pending: i64,
}

/// Summary of a held document.
#[derive(Clone, Debug)]
pub struct DocSummary {
    /// Its id.
    pub id: String,
    /// Its heads.
    pub heads: Vec<ChangeHash>,
    /// How many changes it has.
    pub changes: i64,
    /// Unix seconds of the last write.
    pub updated: i64,
}

/// A verified document kept in memory, valid while the database still records the same heads.
struct Cached {
    heads: Vec<u8>,
    doc: Automerge,
    pending: i64,
}

type Cache = std::cell::RefCell<HashMap<String, Cached>>;

/// The database.
pub struct Store {
    conn: Connection,
    /// Documents verified once and kept, so a busy node does not re-check every signature on
    /// every message. An entry is used only while `docs.heads` still matches it, so writes by
    /// another process (the CLI while `serve` runs) are seen.
    cache: Cache,
    /// The State keys this node trusts, mirrored from `state_keys`.
    trust: std::cell::RefCell<Trust>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// A pinned peer.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Peer {
    /// Its key.
    pub node_id: NodeId,
    /// A display name.
    pub name: String,
    /// Where to reach it, if it listens.
    pub addr: Option<String>,
    /// The State it was pinned as a node of, if any.
    pub state: Option<String>,
    /// Unix seconds when pinned.
    pub added: i64,
    /// Unix seconds of the last completed exchange.
    pub last_seen: Option<i64>,
    /// The last error talking to it.
    pub last_error: Option<String>,
    /// How many changes it sent that were rejected.
    pub invalid_changes: i64,
}

fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

fn decode_heads(bytes: &[u8]) -> Vec<ChangeHash> {
    bytes
        .chunks_exact(32)
        .filter_map(|c| <[u8; 32]>::try_from(c).ok().map(ChangeHash))
        .collect()
}

fn sig_from_blob(blob: Option<Vec<u8>>) -> Option<Signature> {
    blob.and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let mut store = Store {
            conn,
            cache: Cache::default(),
            trust: Default::default(),
        };
        store.migrate()?;
        store.reload_trust()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The schema version.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// Reads a value of the meta table.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Sets a value of the meta table.
    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Loads and verifies a document; `None` if this node holds none by that id.
    pub fn load(&self, doc: &DocId) -> Result<Option<StoredDoc>, StoreError> {
        load_cached(&self.conn, &self.cache, &self.trust.borrow(), doc)
    }

    fn reload_trust(&self) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare("SELECT state, key FROM state_keys")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut trust = Trust::default();
        for (state, key) in rows {
            if let (Ok(state), Ok(key)) = (state.parse(), <[u8; 32]>::try_from(key.as_slice())) {
                trust.state_keys.insert(state, NodeId(key));
            }
        }
        *self.trust.borrow_mut() = trust;
        Ok(())
    }

    /// The State keys this node trusts.
    pub fn trust(&self) -> Trust {
        self.trust.borrow().clone()
    }

    /// Every trusted State key with how it was learnt.
    pub fn state_keys(&self) -> Result<Vec<(String, NodeId, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT state, key, source FROM state_keys ORDER BY state")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(s, k, src)| {
                Some((s, NodeId(<[u8; 32]>::try_from(k.as_slice()).ok()?), src))
            })
            .collect())
    }

    /// Trusts `key` for `state`, unless another key is already trusted for it: the first key
    /// learnt for a State wins, and a different one later is a conflict to report, loudly.
    pub fn learn_state_key(
        &self,
        state: &StateCode,
        key: &NodeId,
        source: &str,
        now: i64,
    ) -> Result<Learned, StoreError> {
        let existing: Option<(Vec<u8>, String)> = self
            .conn
            .query_row(
                "SELECT key, source FROM state_keys WHERE state = ?1",
                [state.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match existing {
            Some((k, _)) if k == key.0 => Ok(Learned::Known),
            Some((k, source)) => Ok(Learned::Conflict {
                trusted: NodeId(<[u8; 32]>::try_from(k.as_slice()).unwrap_or([0; 32])),
                source,
            }),
            None => {
                self.conn.execute(
                    "INSERT INTO state_keys (state, key, source, learned) VALUES (?1, ?2, ?3, ?4)",
                    params![state.to_string(), key.0.to_vec(), source, now],
                )?;
                self.reload_trust()?;
                Ok(Learned::New)
            }
        }
    }

    /// Appends a line to the audit log outside any document write (trust decisions, conflicts,
    /// what was sent and received).
    pub fn audit_event(
        &self,
        now: i64,
        event: &str,
        doc: Option<&DocId>,
        peer: Option<&NodeId>,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO audit (at, event, doc, change, peer, detail) VALUES (?1, ?2, ?3, NULL, ?4, ?5)",
            params![now, event, doc.map(|d| d.to_string()), peer.map(|p| p.0.to_vec()), detail],
        )?;
        Ok(())
    }

    /// Runs `f` on a verified document without copying it; `None` if the node holds none.
    pub fn with_doc<T>(
        &self,
        doc: &DocId,
        f: impl FnOnce(&Automerge) -> T,
    ) -> Result<Option<T>, StoreError> {
        if !ensure_cached(&self.conn, &self.cache, &self.trust.borrow(), doc)? {
            return Ok(None);
        }
        Ok(self.cache.borrow().get(&doc.to_string()).map(|c| f(&c.doc)))
    }

    /// The heads the database records for a document, without loading it.
    pub fn heads(&self, doc: &DocId) -> Result<Option<Vec<ChangeHash>>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT heads FROM docs WHERE id = ?1",
                [doc.to_string()],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .optional()?
            .map(|b| decode_heads(&b)))
    }

    /// Every document's recorded heads.
    pub fn all_heads(&self) -> Result<Vec<(DocId, Vec<ChangeHash>)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, heads FROM docs ORDER BY id")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, h)| Some((id.parse().ok()?, decode_heads(&h))))
            .collect())
    }

    /// SQLite's data version: changes when another connection commits.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    /// Pins a peer, or updates its name, address and State.
    pub fn add_peer(
        &self,
        id: &NodeId,
        name: &str,
        addr: Option<&str>,
        state: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO peers (node_id, name, addr, state, added) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (node_id) DO UPDATE SET name = excluded.name, addr = excluded.addr,
                 state = excluded.state",
            params![id.0.to_vec(), name, addr, state, now],
        )?;
        Ok(())
    }

    /// Unpins a peer and forgets what was exchanged with it. Returns whether it was pinned.
    pub fn remove_peer(&mut self, id: &NodeId) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let key = id.0.to_vec();
        let n = tx.execute("DELETE FROM peers WHERE node_id = ?1", [&key])?;
        tx.execute("DELETE FROM sync_states WHERE peer = ?1", [&key])?;
        tx.execute("DELETE FROM peer_offers WHERE peer = ?1", [&key])?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Every pinned peer.
    pub fn peers(&self) -> Result<Vec<Peer>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT node_id, name, addr, state, added, last_seen, last_error, invalid_changes
             FROM peers ORDER BY name, node_id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    Peer {
                        node_id: NodeId([0; 32]),
                        name: r.get(1)?,
                        addr: r.get(2)?,
                        state: r.get(3)?,
                        added: r.get(4)?,
                        last_seen: r.get(5)?,
                        last_error: r.get(6)?,
                        invalid_changes: r.get(7)?,
                    },
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, mut p)| {
                p.node_id = NodeId(<[u8; 32]>::try_from(key.as_slice()).ok()?);
                Some(p)
            })
            .collect())
    }

    /// The State a pinned peer was pinned as a node of, if any.
    pub fn peer_state(&self, id: &NodeId) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT state FROM peers WHERE node_id = ?1")?
            .query_row([id.0.to_vec()], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    /// Records a completed exchange with a peer, or the error that ended one.
    pub fn peer_outcome(
        &self,
        id: &NodeId,
        now: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        match error {
            None => self.conn.execute(
                "UPDATE peers SET last_seen = ?2, last_error = NULL WHERE node_id = ?1",
                params![id.0.to_vec(), now],
            )?,
            Some(e) => self.conn.execute(
                "UPDATE peers SET last_error = ?2 WHERE node_id = ?1",
                params![id.0.to_vec(), e],
            )?,
        };
        Ok(())
    }

    /// Counts changes a peer sent that were rejected.
    pub fn add_invalid(&self, id: &NodeId, n: usize) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE peers SET invalid_changes = invalid_changes + ?2 WHERE node_id = ?1",
            params![id.0.to_vec(), n as i64],
        )?;
        Ok(())
    }

    /// The persisted Automerge sync state with a peer for a document.
    pub fn sync_state(&self, peer: &NodeId, doc: &DocId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT state FROM sync_states WHERE peer = ?1 AND doc = ?2")?
            .query_row(params![peer.0.to_vec(), doc.to_string()], |r| r.get(0))
            .optional()?)
    }

    /// Persists the Automerge sync state with a peer for a document.
    pub fn set_sync_state(
        &self,
        peer: &NodeId,
        doc: &DocId,
        state: &[u8],
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO sync_states (peer, doc, state) VALUES (?1, ?2, ?3)
                 ON CONFLICT (peer, doc) DO UPDATE SET state = excluded.state",
            )?
            .execute(params![peer.0.to_vec(), doc.to_string(), state])?;
        Ok(())
    }

    /// The documents a peer offered at the last full listing.
    pub fn peer_offers(&self, peer: &NodeId) -> Result<Vec<DocId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT doc FROM peer_offers WHERE peer = ?1 ORDER BY doc")?;
        let rows = stmt
            .query_map([peer.0.to_vec()], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows.iter().filter_map(|s| s.parse().ok()).collect())
    }

    /// Adds a document to those a peer is expected to offer.
    pub fn add_peer_offer(&self, peer: &NodeId, doc: &DocId) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO peer_offers (peer, doc) VALUES (?1, ?2)",
            params![peer.0.to_vec(), doc.to_string()],
        )?;
        Ok(())
    }

    /// Replaces the list of documents a peer offers.
    pub fn set_peer_offers(&mut self, peer: &NodeId, docs: &[DocId]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM peer_offers WHERE peer = ?1", [peer.0.to_vec()])?;
        for d in docs {
            tx.execute(
                "INSERT OR IGNORE INTO peer_offers (peer, doc) VALUES (?1, ?2)",
                params![peer.0.to_vec(), d.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The ids of all documents held, sorted.
    pub fn doc_ids(&self) -> Result<Vec<DocId>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT id FROM docs ORDER BY id")?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids.iter().filter_map(|s| s.parse().ok()).collect())
    }

    /// Summaries of all documents held.
    pub fn summaries(&self) -> Result<Vec<DocSummary>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT d.id, d.heads, d.updated, (SELECT COUNT(*) FROM changes c WHERE c.doc = d.id)
             FROM docs d ORDER BY d.id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(DocSummary {
                    id: r.get(0)?,
                    heads: decode_heads(&r.get::<_, Vec<u8>>(1)?),
                    updated: r.get(2)?,
                    changes: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Runs `f` in one SQLite transaction: it commits if `f` succeeds, and nothing is written if
    /// it fails.
    pub fn transact<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut StoreTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let trust = self.trust.borrow().clone();
        let mut stx = StoreTx {
            tx,
            cache: &self.cache,
            trust,
            written: Vec::new(),
        };
        let out = f(&mut stx)?;
        let StoreTx { tx, written, .. } = stx;
        tx.commit().map_err(StoreError::from)?;
        let mut cache = self.cache.borrow_mut();
        for (id, heads, doc, pending) in written {
            cache.insert(
                id,
                Cached {
                    heads,
                    doc,
                    pending,
                },
            );
        }
        Ok(out)
    }

    /// Audit rows, oldest first, from `since` (unix seconds).
    pub fn audit(&self, since: i64) -> Result<Vec<AuditRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, at, event, doc, change, peer, detail FROM audit WHERE at >= ?1 ORDER BY seq",
        )?;
        let rows = stmt
            .query_map([since], |r| {
                Ok(AuditRow {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    event: r.get(2)?,
                    doc: r.get(3)?,
                    change: r.get::<_, Option<Vec<u8>>>(4)?.map(|b| hex(&b)),
                    peer: r.get::<_, Option<Vec<u8>>>(5)?.and_then(node_id_of),
                    detail: r.get(6)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The stored signature of every change of a document, by change hash.
    pub fn signatures(&self, doc: &DocId) -> Result<HashMap<ChangeHash, Signature>, StoreError> {
        signatures_in(&self.conn, doc)
    }
}

/// One line of the audit log.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuditRow {
    /// Position in the log.
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// accepted, rejected, sent, received...
    pub event: String,
    /// The document.
    pub doc: Option<String>,
    /// The change hash, hex.
    pub change: Option<String>,
    /// The peer involved.
    pub peer: Option<String>,
    /// Why, or what.
    pub detail: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn node_id_of(b: Vec<u8>) -> Option<String> {
    <[u8; 32]>::try_from(b.as_slice())
        .ok()
        .map(|k| NodeId(k).to_string())
}

fn signatures_in(
    conn: &Connection,
    doc: &DocId,
) -> Result<HashMap<ChangeHash, Signature>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT hash, signature FROM changes WHERE doc = ?1")?;
    let rows = stmt.query_map([doc.to_string()], |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
    })?;
    let mut out = HashMap::new();
    for row in rows {
        let (hash, sig) = row?;
        if let (Ok(hash), Some(sig)) = (<[u8; 32]>::try_from(hash.as_slice()), sig_from_blob(sig)) {
            out.insert(ChangeHash(hash), sig);
        }
    }
    Ok(out)
}

/// Makes sure the cache holds a fresh, verified copy of `doc`. Returns false if the database
/// holds no such document.
fn ensure_cached(
    conn: &Connection,
    cache: &Cache,
    trust: &Trust,
    doc: &DocId,
) -> Result<bool, StoreError> {
    let id = doc.to_string();
    let heads: Option<Vec<u8>> = conn
        .prepare_cached("SELECT heads FROM docs WHERE id = ?1")?
        .query_row([&id], |r| r.get(0))
        .optional()?;
    let Some(heads) = heads else {
        return Ok(false);
    };
    if cache.borrow().get(&id).is_some_and(|c| c.heads == heads) {
        return Ok(true);
    }
    let Some(loaded) = load_in(conn, trust, doc)? else {
        return Ok(false);
    };
    cache.borrow_mut().insert(
        id,
        Cached {
            heads,
            doc: loaded.doc,
            pending: loaded.pending,
        },
    );
    Ok(true)
}

fn load_cached(
    conn: &Connection,
    cache: &Cache,
    trust: &Trust,
    doc: &DocId,
) -> Result<Option<StoredDoc>, StoreError> {
    if !ensure_cached(conn, cache, trust, doc)? {
        return Ok(None);
    }
    Ok(cache.borrow().get(&doc.to_string()).map(|c| StoredDoc {
        doc: c.doc.clone(),
        pending: c.pending,
    }))
}

fn load_in(conn: &Connection, trust: &Trust, doc: &DocId) -> Result<Option<StoredDoc>, StoreError> {
    let id = doc.to_string();
    let corrupt = |reason: String| StoreError::Corrupt {
        doc: id.clone(),
        reason,
    };
    let snapshot: Option<Option<Vec<u8>>> = conn
        .query_row("SELECT snapshot FROM docs WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(snapshot) = snapshot else {
        return Ok(None);
    };
    let mut am = match snapshot {
        Some(bytes) => Automerge::load(&bytes).map_err(|e| corrupt(e.to_string()))?,
        None => Automerge::new(),
    };
    let mut stmt = conn
        .prepare("SELECT bytes, signature, in_snapshot FROM changes WHERE doc = ?1 ORDER BY seq")?;
    let rows = stmt.query_map([&id], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, Option<Vec<u8>>>(1)?,
            r.get::<_, bool>(2)?,
        ))
    })?;
    let mut stored = Vec::new();
    let mut pending = Vec::new();
    for row in rows {
        let (bytes, signature, in_snapshot) = row?;
        let change = Change::from_bytes(bytes).map_err(|e| corrupt(e.to_string()))?;
        if !in_snapshot {
            pending.push(change.clone());
        }
        stored.push(Incoming {
            change,
            signature: sig_from_blob(signature),
        });
    }
    let pending_count = pending.len() as i64;
    am.apply_changes(pending)
        .map_err(|e| corrupt(e.to_string()))?;
    verify_document(trust, doc, &am, &stored).map_err(|rejection| StoreError::Unverified {
        doc: id.clone(),
        rejection: Box::new(rejection),
    })?;
    Ok(Some(StoredDoc {
        doc: am,
        pending: pending_count,
    }))
}

/// A write transaction on the store.
pub struct StoreTx<'a> {
    tx: Transaction<'a>,
    cache: &'a Cache,
    trust: Trust,
    /// Documents saved in this transaction, cached once it commits.
    written: Vec<(String, Vec<u8>, Automerge, i64)>,
}

impl std::fmt::Debug for StoreTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTx").finish_non_exhaustive()
    }
}

/// Where a change came from.
#[derive(Clone, Copy, Debug)]
pub enum Source {
    /// Written on this node.
    Local,
    /// Received from a peer.
    Peer(NodeId),
}

impl Source {
    fn peer_blob(&self) -> Option<Vec<u8>> {
        match self {
            Source::Local => None,
            Source::Peer(id) => Some(id.0.to_vec()),
        }
    }
}

impl StoreTx<'_> {
    /// Loads and verifies a document inside this transaction.
    pub fn load(&self, doc: &DocId) -> Result<Option<StoredDoc>, StoreError> {
        load_cached(&self.tx, self.cache, &self.trust, doc)
    }

    /// Loads a document, or creates it from its genesis.
    pub fn load_or_create(&mut self, doc: &DocId, now: i64) -> Result<StoredDoc, StoreError> {
        if let Some(d) = self.load(doc)? {
            return Ok(d);
        }
        let am = genesis(doc);
        self.tx.execute(
            "INSERT INTO docs (id, snapshot, heads, updated) VALUES (?1, NULL, ?2, ?3)",
            params![doc.to_string(), encode_heads(&am.get_heads()), now],
        )?;
        for change in am.get_changes(&[]) {
            self.insert_change(doc, &change, Author::Genesis, None, Source::Local, now)?;
        }
        Ok(StoredDoc {
            doc: am,
            pending: 1,
        })
    }

    fn insert_change(
        &mut self,
        doc: &DocId,
        change: &Change,
        author: Author,
        signature: Option<&Signature>,
        source: Source,
        now: i64,
    ) -> Result<(), StoreError> {
        let author_blob = match author {
            Author::Genesis => None,
            Author::Node(id) => Some(id.0.to_vec()),
        };
        self.tx.execute(
            "INSERT OR IGNORE INTO changes (doc, hash, author, signature, bytes, source, received)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                doc.to_string(),
                change.hash().0.to_vec(),
                author_blob,
                signature.map(|s| s.to_vec()),
                change.raw_bytes(),
                source.peer_blob(),
                now
            ],
        )?;
        Ok(())
    }

    /// Appends a line to the audit log.
    pub fn audit(
        &mut self,
        now: i64,
        event: &str,
        doc: Option<&DocId>,
        change: Option<&ChangeHash>,
        peer: Option<&NodeId>,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO audit (at, event, doc, change, peer, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                now,
                event,
                doc.map(|d| d.to_string()),
                change.map(|h| h.0.to_vec()),
                peer.map(|p| p.0.to_vec()),
                detail
            ],
        )?;
        Ok(())
    }

    /// The hashes of changes of `doc` that were rejected before.
    pub fn quarantined(&self, doc: &DocId) -> Result<HashSet<ChangeHash>, StoreError> {
        let mut stmt = self
            .tx
            .prepare("SELECT hash FROM quarantine WHERE doc = ?1")?;
        let rows = stmt.query_map([doc.to_string()], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = HashSet::new();
        for row in rows {
            if let Ok(h) = <[u8; 32]>::try_from(row?.as_slice()) {
                out.insert(ChangeHash(h));
            }
        }
        Ok(out)
    }

    /// Passes `incoming` through the gate onto `stored`, and records the outcome: accepted
    /// changes with their signatures, rejected ones in quarantine, both in the audit log.
    /// The caller commits the transaction.
    pub fn apply(
        &mut self,
        doc_id: &DocId,
        stored: &mut StoredDoc,
        incoming: Vec<Incoming>,
        source: Source,
        now: i64,
    ) -> Result<Applied, StoreError> {
        let known_bad = self.quarantined(doc_id)?;
        let by_hash: HashMap<ChangeHash, Incoming> = incoming
            .iter()
            .map(|i| (i.change.hash(), i.clone()))
            .collect();
        let applied = apply_checked(&self.trust, doc_id, &mut stored.doc, incoming, &known_bad);
        let peer = match source {
            Source::Local => None,
            Source::Peer(p) => Some(p),
        };
        if !applied.accepted.is_empty() {
            // A document first received from a peer gets its row here.
            self.tx.execute(
                "INSERT OR IGNORE INTO docs (id, snapshot, heads, updated) VALUES (?1, NULL, X'', ?2)",
                params![doc_id.to_string(), now],
            )?;
        }
        for (hash, author) in &applied.accepted {
            let Some(inc) = by_hash.get(hash) else {
                continue;
            };
            self.insert_change(
                doc_id,
                &inc.change,
                *author,
                inc.signature.as_ref(),
                source,
                now,
            )?;
            let who = match author {
                Author::Genesis => "genesis".to_string(),
                Author::Node(n) => format!("by node {}", n.short()),
            };
            self.audit(
                now,
                AuditEvent::Accepted.as_str(),
                Some(doc_id),
                Some(hash),
                peer.as_ref(),
                &who,
            )?;
            stored.pending += 1;
        }
        for (hash, rejection) in &applied.rejected {
            let Some(inc) = by_hash.get(hash) else {
                continue;
            };
            let reason = rejection.to_string();
            self.tx.execute(
                "INSERT OR IGNORE INTO quarantine (doc, hash, author, signature, bytes, peer, reason, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    doc_id.to_string(),
                    hash.0.to_vec(),
                    poa_protocol::sign::claimed_author(inc.change.actor_id()).map(|a| a.0.to_vec()),
                    inc.signature.map(|s| s.to_vec()),
                    inc.change.raw_bytes(),
                    source.peer_blob(),
                    reason,
                    now
                ],
            )?;
            self.audit(
                now,
                AuditEvent::Rejected.as_str(),
                Some(doc_id),
                Some(hash),
                peer.as_ref(),
                &reason,
            )?;
        }
        if !applied.accepted.is_empty() {
            self.save(doc_id, stored, now)?;
        }
        Ok(applied)
    }

    /// Records a document's new heads, folding changes into the snapshot when enough piled up.
    fn save(&mut self, doc: &DocId, stored: &mut StoredDoc, now: i64) -> Result<(), StoreError> {
        let heads = encode_heads(&stored.doc.get_heads());
        if stored.pending >= COMPACT_AFTER {
            self.tx.execute(
                "UPDATE docs SET snapshot = ?2, heads = ?3, updated = ?4 WHERE id = ?1",
                params![doc.to_string(), stored.doc.save(), heads, now],
            )?;
            self.tx.execute(
                "UPDATE changes SET in_snapshot = 1 WHERE doc = ?1 AND in_snapshot = 0",
                [doc.to_string()],
            )?;
            stored.pending = 0;
        } else {
            self.tx.execute(
                "UPDATE docs SET heads = ?2, updated = ?3 WHERE id = ?1",
                params![doc.to_string(), heads, now],
            )?;
        }
        self.written.retain(|(id, ..)| *id != doc.to_string());
        self.written
            .push((doc.to_string(), heads, stored.doc.clone(), stored.pending));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poa_protocol::automerge::ReadDoc;
    use poa_protocol::doc::{put_record, target_key};
    use poa_protocol::sign::{NodeKey, actor_id, sign_change};

    fn write(
        store: &mut Store,
        key: &NodeKey,
        doc: &DocId,
        id: &str,
    ) -> Result<Applied, StoreError> {
        store.transact(|tx| {
            let mut stored = tx.load_or_create(doc, 1)?;
            let mut scratch = stored.doc.clone();
            scratch.set_actor(actor_id(&key.node_id(), &[9; 8]));
            let owned = !poa_protocol::doc::document_json(&stored.doc, None)["owner"]
                .as_object()
                .is_none_or(|o| o.is_empty());
            let mut t = scratch.transaction();
            let err = |e: poa_protocol::doc::DocError| StoreError::Corrupt {
                doc: doc.to_string(),
                reason: e.to_string(),
            };
            if !owned {
                // The first writer of a pool claims it.
                poa_protocol::doc::put_value(
                    &mut t,
                    "owner",
                    &key.node_id().to_string(),
                    &serde_json::json!(true),
                )
                .map_err(err)?;
            }
            put_record(
                &mut t,
                "pooled",
                &target_key(id, 1),
                &serde_json::json!({"x": 1}),
            )
            .map_err(err)?;
            let (hash, _) = t.commit();
            let hash = hash.expect("a change");
            let change = scratch.get_change_by_hash(&hash).expect("stored");
            let signature = Some(sign_change(key, doc, &hash));
            tx.apply(
                doc,
                &mut stored,
                vec![Incoming { change, signature }],
                Source::Local,
                1,
            )
        })
    }

    #[test]
    fn writes_survive_reopen_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("poa.db");
        let key = NodeKey::from_seed(&[5; 32]);
        let doc: DocId = "pool/p1".parse().unwrap();
        let mut store = Store::open(&path).unwrap();
        for i in 0..(COMPACT_AFTER + 5) {
            let out = write(&mut store, &key, &doc, &format!("R{i}")).unwrap();
            assert_eq!(out.accepted.len(), 1);
        }
        drop(store);
        let store = Store::open(&path).unwrap();
        let loaded = store.load(&doc).unwrap().unwrap();
        assert_eq!(loaded.doc.get_changes(&[]).len() as i64, COMPACT_AFTER + 6);
        assert!(loaded.pending < COMPACT_AFTER);
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_tampered_signature_on_disk_stops_the_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("poa.db");
        let key = NodeKey::from_seed(&[5; 32]);
        let doc: DocId = "pool/p1".parse().unwrap();
        let mut store = Store::open(&path).unwrap();
        write(&mut store, &key, &doc, "R1").unwrap();
        store
            .conn
            .execute(
                "UPDATE changes SET signature = zeroblob(64) WHERE author IS NOT NULL",
                [],
            )
            .unwrap();
        // A fresh open (no cache) reads the tampered rows from disk.
        drop(store);
        let store = Store::open(&path).unwrap();
        assert!(matches!(
            store.load(&doc),
            Err(StoreError::Unverified { .. })
        ));
    }

    #[test]
    fn the_audit_log_is_append_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("poa.db")).unwrap();
        store
            .conn
            .execute(
                "INSERT INTO audit (at, event, detail) VALUES (1, 'x', 'y')",
                [],
            )
            .unwrap();
        assert!(store.conn.execute("DELETE FROM audit", []).is_err());
        assert!(
            store
                .conn
                .execute("UPDATE audit SET detail = 'z'", [])
                .is_err()
        );
    }
}
