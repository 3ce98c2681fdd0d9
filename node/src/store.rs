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

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use poa_protocol::authority::{Trust, TrustSource};
use poa_protocol::automerge::ChangeHash;
use poa_protocol::change::{ChangeData, SignedChange};
use poa_protocol::doc::DocId;
use poa_protocol::ledger::{Admitted, Author, Ledger, Rejection, Verdict};
use poa_protocol::{NodeId, Principal};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// Rows of permanently rejected changes kept per peer; beyond, rejections are only counted.
const MAX_REJECTED_ROWS: i64 = 1000;

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
    // 4: documents as explicit signed changes judged by the ledger; trust in State and body
    // keys with its source; the heads each peer is known to hold; peers pinned as a body's.
    // (Format 1 documents cannot be converted: `migrate` refuses a database that holds any.)
    r#"
    DROP INDEX changes_pending;
    DROP TABLE changes;
    DROP TABLE docs;
    DROP TABLE quarantine;
    DROP TABLE sync_states;
    CREATE TABLE documents (
        id      TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        created INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE doc_changes (
        pos       INTEGER PRIMARY KEY AUTOINCREMENT,
        doc       TEXT NOT NULL REFERENCES documents(id),
        hash      BLOB NOT NULL,
        data      BLOB NOT NULL,
        signature BLOB NOT NULL,
        source    BLOB,
        received  INTEGER NOT NULL,
        UNIQUE (doc, hash)
    ) STRICT;
    CREATE INDEX doc_changes_by_doc ON doc_changes (doc, pos);
    CREATE TABLE rejected (
        doc    TEXT NOT NULL,
        hash   BLOB NOT NULL,
        peer   BLOB,
        reason TEXT NOT NULL,
        at     INTEGER NOT NULL,
        PRIMARY KEY (doc, hash)
    ) STRICT;
    CREATE TABLE shared_heads (
        peer  BLOB NOT NULL,
        doc   TEXT NOT NULL,
        heads BLOB NOT NULL,
        PRIMARY KEY (peer, doc)
    ) STRICT;
    CREATE TABLE peer_unheld (
        peer   BLOB PRIMARY KEY,
        digest BLOB NOT NULL,
        count  INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE trusted_keys (
        principal TEXT PRIMARY KEY,
        key       BLOB NOT NULL,
        source    TEXT NOT NULL,
        learned   INTEGER NOT NULL
    ) STRICT;
    INSERT INTO trusted_keys (principal, key, source, learned)
        SELECT 'state:' || state, key, '"operator"', learned FROM state_keys;
    DROP TABLE state_keys;
    DELETE FROM peer_offers;
    ALTER TABLE peers ADD COLUMN body TEXT;
    ALTER TABLE peers ADD COLUMN flagged TEXT;
    ALTER TABLE peers ADD COLUMN introducer INTEGER NOT NULL DEFAULT 0;
    "#,
];

/// What learning a principal's key did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Learned {
    /// The key is now trusted for the principal.
    New,
    /// The same key was already trusted.
    Known,
    /// Another key is trusted for the principal: the new claim is refused.
    Conflict {
        /// The key already trusted.
        trusted: NodeId,
        /// How it was learnt.
        source: String,
    },
}

/// Summary of a held document.
#[derive(Clone, Debug)]
pub struct DocSummary {
    /// Its id.
    pub id: String,
    /// Its heads.
    pub heads: Vec<ChangeHash>,
    /// How many changes it holds, the genesis included.
    pub changes: usize,
    /// How many of them do not stand.
    pub void: usize,
}

struct Cached {
    version: i64,
    ledger: Ledger,
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
    /// The State or body it was pinned as a node of, if any.
    pub pinned_as: Option<Principal>,
    /// Unix seconds when pinned.
    pub added: i64,
    /// Unix seconds of the last completed exchange.
    pub last_seen: Option<i64>,
    /// The last error talking to it.
    pub last_error: Option<String>,
    /// How many changes it sent that were rejected.
    pub invalid_changes: i64,
    /// Misbehaviour found in what it signed or sent (equivocation...), if any.
    pub flagged: Option<String>,
    /// Whether the operator chose it as an introducer: the keys it trusts first-hand are
    /// trusted here too.
    pub introducer: bool,
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

/// What [`StoreTx::apply`] did with a batch.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Newly held, in the order admitted.
    pub accepted: Vec<ChangeHash>,
    /// Refused, with the reason.
    pub rejected: Vec<(Option<ChangeHash>, Rejection)>,
    /// Waiting for dependencies not held: the change and what it lacks.
    pub waiting: Vec<(SignedChange, Vec<ChangeHash>)>,
    /// Held changes that stood before and are now void, with why.
    pub voided: Vec<(ChangeHash, String)>,
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

fn node_of(b: &[u8]) -> Option<NodeId> {
    <[u8; 32]>::try_from(b).ok().map(NodeId)
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

/// Loads a document's rows into a ledger, checking every one again.
fn load_ledger(conn: &Connection, doc: &DocId, key: Option<&NodeId>) -> Result<Ledger, StoreError> {
    let id = doc.to_string();
    let bad = |reason: String| StoreError::Unverified {
        doc: id.clone(),
        reason,
    };
    let mut stmt =
        conn.prepare_cached("SELECT data, signature FROM doc_changes WHERE doc = ?1 ORDER BY pos")?;
    let rows = stmt.query_map([&id], |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut ledger = Ledger::new(doc);
    for row in rows {
        let (data, signature) = row?;
        let data = ChangeData::from_bytes(&data).map_err(|e| bad(e.to_string()))?;
        match ledger.admit_stored(&SignedChange { data, signature }, key) {
            Admitted::New(_) | Admitted::Known(_) => {}
            Admitted::Waiting(h, _) => {
                return Err(bad(format!("change {h} is stored before its dependencies")));
            }
            Admitted::Refused(_, r) => return Err(bad(r.to_string())),
        }
    }
    ledger.settle(key);
    Ok(ledger)
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
        conn.pragma_update(None, "synchronous", "NORMAL")?;
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
        if (1..4).contains(&version) {
            let docs: i64 = tx.query_row("SELECT COUNT(*) FROM docs", [], |r| r.get(0))?;
            if docs > 0 {
                return Err(StoreError::OldFormat);
            }
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

    // ------------------------------------------------------------------------------------
    // Trust
    // ------------------------------------------------------------------------------------

    fn reload_trust(&self) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT principal, key FROM trusted_keys")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut trust = Trust::default();
        for (p, key) in rows {
            if let (Ok(p), Some(key)) = (p.parse::<Principal>(), node_of(&key)) {
                trust.keys.insert(p, key);
            }
        }
        *self.trust.borrow_mut() = trust;
        Ok(())
    }

    /// The principal keys this node trusts.
    pub fn trust(&self) -> Trust {
        self.trust.borrow().clone()
    }

    /// Every trusted key with how it was learnt.
    pub fn trusted_keys(&self) -> Result<Vec<(Principal, NodeId, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT principal, key, source FROM trusted_keys ORDER BY principal")?;
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
            .filter_map(|(p, k, src)| {
                let source = serde_json::from_str::<TrustSource>(&src)
                    .map(|s| s.to_string())
                    .unwrap_or(src);
                Some((p.parse().ok()?, node_of(&k)?, source))
            })
            .collect())
    }

    /// Trusts `key` for `principal`, unless another key is trusted for it already: the first
    /// key from a source the operator chose wins, and a different one later is a conflict.
    pub fn learn_key(
        &self,
        principal: &Principal,
        key: &NodeId,
        source: &TrustSource,
        now: i64,
    ) -> Result<Learned, StoreError> {
        let existing: Option<(Vec<u8>, String)> = self
            .conn
            .query_row(
                "SELECT key, source FROM trusted_keys WHERE principal = ?1",
                [principal.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match existing {
            Some((k, _)) if k == key.0 => Ok(Learned::Known),
            Some((k, source)) => Ok(Learned::Conflict {
                trusted: node_of(&k).unwrap_or(NodeId([0; 32])),
                source: serde_json::from_str::<TrustSource>(&source)
                    .map(|s| s.to_string())
                    .unwrap_or(source),
            }),
            None => {
                self.conn.execute(
                    "INSERT INTO trusted_keys (principal, key, source, learned) VALUES (?1, ?2, ?3, ?4)",
                    params![
                        principal.to_string(),
                        key.0.to_vec(),
                        serde_json::to_string(source).unwrap_or_default(),
                        now
                    ],
                )?;
                // What peers offered that could not be judged without this key may be
                // takeable now: forget their digests, so each peer's next summary differs and
                // its list is asked for again (whether or not a session is open now).
                self.conn.execute("DELETE FROM peer_unheld", [])?;
                self.reload_trust()?;
                Ok(Learned::New)
            }
        }
    }

    // ------------------------------------------------------------------------------------
    // Documents
    // ------------------------------------------------------------------------------------

    fn version(conn: &Connection, doc: &DocId) -> Result<Option<i64>, StoreError> {
        Ok(conn
            .prepare_cached("SELECT version FROM documents WHERE id = ?1")?
            .query_row([doc.to_string()], |r| r.get(0))
            .optional()?)
    }

    /// Makes sure the cache holds a fresh, verified and settled ledger of `doc`. False if the
    /// node holds no such document.
    fn ensure(&self, conn: &Connection, doc: &DocId) -> Result<bool, StoreError> {
        let Some(version) = Self::version(conn, doc)? else {
            self.cache.borrow_mut().remove(doc);
            return Ok(false);
        };
        let key = self.trust.borrow().key_for_doc(doc).copied();
        let mut cache = self.cache.borrow_mut();
        match cache.get_mut(doc) {
            Some(c) if c.version == version => {
                c.ledger.settle(key.as_ref());
            }
            _ => {
                let ledger = load_ledger(conn, doc, key.as_ref())?;
                cache.insert(doc.clone(), Cached { version, ledger });
            }
        }
        Ok(true)
    }

    /// Runs `f` on a held document's settled ledger; `None` if the node holds none.
    pub fn with_ledger<T>(
        &self,
        doc: &DocId,
        f: impl FnOnce(&Ledger) -> T,
    ) -> Result<Option<T>, StoreError> {
        if !self.ensure(&self.conn, doc)? {
            return Ok(None);
        }
        Ok(self.cache.borrow().get(doc).map(|c| f(&c.ledger)))
    }

    /// A held document's view (what its standing changes make of it).
    pub fn view(&self, doc: &DocId) -> Result<Option<serde_json::Value>, StoreError> {
        self.with_ledger(doc, |l| {
            l.settled().map(|s| s.view.clone()).unwrap_or_default()
        })
    }

    /// The heads of a held document's standing changes (what a report cites).
    pub fn heads(&self, doc: &DocId) -> Result<Option<Vec<ChangeHash>>, StoreError> {
        self.with_ledger(doc, |l| {
            l.settled().map(|s| s.heads.clone()).unwrap_or_default()
        })
    }

    /// The heads a held document offers peers: its standing changes and the evidence it holds
    /// of misbehaviour (see [`poa_protocol::ledger::Settled::offered`]).
    pub fn offered_heads(&self, doc: &DocId) -> Result<Option<Vec<ChangeHash>>, StoreError> {
        self.with_ledger(doc, |l| {
            l.settled().map(|s| s.offered.clone()).unwrap_or_default()
        })
    }

    /// Every held document's id and version: cheap, to notice writes by other processes.
    pub fn versions(&self) -> Result<Vec<(DocId, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, version FROM documents ORDER BY id")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, v)| Some((id.parse().ok()?, v)))
            .collect())
    }

    /// The ids of all documents held, sorted.
    pub fn doc_ids(&self) -> Result<Vec<DocId>, StoreError> {
        Ok(self.versions()?.into_iter().map(|(d, _)| d).collect())
    }

    /// Every held document's heads.
    pub fn all_heads(&self) -> Result<Vec<(DocId, Vec<ChangeHash>)>, StoreError> {
        let mut out = Vec::new();
        for doc in self.doc_ids()? {
            if let Some(h) = self.heads(&doc)? {
                out.push((doc, h));
            }
        }
        Ok(out)
    }

    /// Summaries of all documents held.
    pub fn summaries(&self) -> Result<Vec<DocSummary>, StoreError> {
        let mut out = Vec::new();
        for doc in self.doc_ids()? {
            if let Some(s) = self.with_ledger(&doc, |l| DocSummary {
                id: doc.to_string(),
                heads: l.settled().map(|s| s.heads.clone()).unwrap_or_default(),
                changes: l.len(),
                void: l.voided().len(),
            })? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// SQLite's data version: changes when another connection commits.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    /// Whether a change of `doc` was rejected for good before.
    pub fn is_rejected(&self, doc: &DocId, hash: &ChangeHash) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM rejected WHERE doc = ?1 AND hash = ?2")?
            .query_row(params![doc.to_string(), hash.0.to_vec()], |_| Ok(()))
            .optional()?
            .is_some())
    }

    // ------------------------------------------------------------------------------------
    // Peers
    // ------------------------------------------------------------------------------------

    /// Pins a peer, or updates its name, address and what it was pinned as.
    pub fn add_peer(
        &self,
        id: &NodeId,
        name: &str,
        addr: Option<&str>,
        pinned_as: Option<&Principal>,
        now: i64,
    ) -> Result<(), StoreError> {
        let (state, body) = match pinned_as {
            Some(Principal::State(s)) => (Some(s.to_string()), None),
            Some(Principal::Body(b)) => (None, Some(b.to_string())),
            None => (None, None),
        };
        self.conn.execute(
            "INSERT INTO peers (node_id, name, addr, state, body, added) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (node_id) DO UPDATE SET name = excluded.name, addr = excluded.addr,
                 state = excluded.state, body = excluded.body",
            params![id.0.to_vec(), name, addr, state, body, now],
        )?;
        Ok(())
    }

    /// Makes a pinned peer an introducer, or no longer one. Returns whether it is pinned.
    pub fn set_introducer(&self, id: &NodeId, introducer: bool) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE peers SET introducer = ?2 WHERE node_id = ?1",
            params![id.0.to_vec(), introducer],
        )?;
        Ok(n > 0)
    }

    /// The keys this node trusts first-hand (not through an introducer): what it may vouch
    /// for.
    pub fn first_hand_keys(&self) -> Result<Vec<(Principal, NodeId)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT principal, key, source FROM trusted_keys ORDER BY principal")?;
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
            .filter(|(_, _, src)| {
                !matches!(
                    serde_json::from_str::<TrustSource>(src),
                    Ok(TrustSource::Introducer(_))
                )
            })
            .filter_map(|(p, k, _)| Some((p.parse().ok()?, node_of(&k)?)))
            .collect())
    }

    /// Reads the trusted keys again (another process may have added one).
    pub fn refresh_trust(&self) -> Result<bool, StoreError> {
        let before = self.trust.borrow().clone();
        self.reload_trust()?;
        Ok(*self.trust.borrow() != before)
    }

    /// Unpins a peer and forgets what was exchanged with it. Returns whether it was pinned.
    pub fn remove_peer(&mut self, id: &NodeId) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let key = id.0.to_vec();
        let n = tx.execute("DELETE FROM peers WHERE node_id = ?1", [&key])?;
        tx.execute("DELETE FROM shared_heads WHERE peer = ?1", [&key])?;
        tx.execute("DELETE FROM peer_offers WHERE peer = ?1", [&key])?;
        tx.execute("DELETE FROM peer_unheld WHERE peer = ?1", [&key])?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Every pinned peer.
    pub fn peers(&self) -> Result<Vec<Peer>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT node_id, name, addr, state, body, added, last_seen, last_error, invalid_changes, flagged, introducer
             FROM peers ORDER BY name, node_id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, i64>(8)?,
                    r.get::<_, Option<String>>(9)?,
                    r.get::<_, bool>(10)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(
                |(k, name, addr, state, body, added, seen, err, invalid, flagged, introducer)| {
                    let pinned_as = match (state, body) {
                        (Some(s), _) => s.parse().ok().map(Principal::State),
                        (None, Some(b)) => b.parse().ok().map(Principal::Body),
                        _ => None,
                    };
                    Some(Peer {
                        node_id: node_of(&k)?,
                        name,
                        addr,
                        pinned_as,
                        added,
                        last_seen: seen,
                        last_error: err,
                        invalid_changes: invalid,
                        flagged,
                        introducer,
                    })
                },
            )
            .collect())
    }

    /// A pinned peer.
    pub fn peer(&self, id: &NodeId) -> Result<Option<Peer>, StoreError> {
        Ok(self.peers()?.into_iter().find(|p| p.node_id == *id))
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

    /// Records misbehaviour proven against a pinned peer's key.
    pub fn flag_peer(&self, id: &NodeId, why: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE peers SET flagged = ?2 WHERE node_id = ?1",
            params![id.0.to_vec(), why],
        )?;
        Ok(())
    }

    /// The heads this node knows it and `peer` both hold of `doc`.
    pub fn shared_heads(&self, peer: &NodeId, doc: &DocId) -> Result<Vec<ChangeHash>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT heads FROM shared_heads WHERE peer = ?1 AND doc = ?2")?
            .query_row(params![peer.0.to_vec(), doc.to_string()], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .optional()?
            .map(|b| decode_heads(&b))
            .unwrap_or_default())
    }

    /// Remembers them; only for a document held here.
    pub fn set_shared_heads(
        &self,
        peer: &NodeId,
        doc: &DocId,
        heads: &[ChangeHash],
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO shared_heads (peer, doc, heads)
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM documents WHERE id = ?2)
                 ON CONFLICT (peer, doc) DO UPDATE SET heads = excluded.heads",
            )?
            .execute(params![
                peer.0.to_vec(),
                doc.to_string(),
                encode_heads(heads)
            ])?;
        Ok(())
    }

    /// The documents held here that a peer offered at its last listing, and the digest of the
    /// ones it offered that are not held here.
    pub fn peer_offers(&self, peer: &NodeId) -> Result<poa_protocol::testing::Listing, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT doc FROM peer_offers WHERE peer = ?1 ORDER BY doc")?;
        let docs = stmt
            .query_map([peer.0.to_vec()], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        let unheld: Option<(Vec<u8>, i64)> = self
            .conn
            .prepare_cached("SELECT digest, count FROM peer_unheld WHERE peer = ?1")?
            .query_row([peer.0.to_vec()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let unheld = unheld
            .and_then(|(d, c)| Some((<[u8; 32]>::try_from(d.as_slice()).ok()?, c as u32)))
            .unwrap_or(([0; 32], 0));
        Ok((docs.iter().filter_map(|s| s.parse().ok()).collect(), unheld))
    }

    /// Replaces what a peer offers: rows only for documents held here, and one digest for
    /// the rest, so a peer naming invented documents makes this node keep nothing for them.
    pub fn set_peer_offers(
        &mut self,
        peer: &NodeId,
        held: &[DocId],
        unheld: ([u8; 32], u32),
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM peer_offers WHERE peer = ?1", [peer.0.to_vec()])?;
        for d in held {
            tx.execute(
                "INSERT OR IGNORE INTO peer_offers (peer, doc)
                 SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM documents WHERE id = ?2)",
                params![peer.0.to_vec(), d.to_string()],
            )?;
        }
        tx.execute(
            "INSERT INTO peer_unheld (peer, digest, count) VALUES (?1, ?2, ?3)
             ON CONFLICT (peer) DO UPDATE SET digest = excluded.digest, count = excluded.count",
            params![peer.0.to_vec(), unheld.0.to_vec(), unheld.1],
        )?;
        tx.commit()?;
        Ok(())
    }

    // ------------------------------------------------------------------------------------
    // Audit
    // ------------------------------------------------------------------------------------

    /// Appends a line to the audit log outside any document write.
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
                    peer: r
                        .get::<_, Option<Vec<u8>>>(5)?
                        .and_then(|b| node_of(&b))
                        .map(|n| n.to_string()),
                    detail: r.get(6)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
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
            Ok(v) => tx
                .commit()
                .map(|()| v)
                .map_err(|e| E::from(StoreError::from(e))),
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

/// One line of the audit log.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuditRow {
    /// Position in the log.
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// accepted, rejected, voided, sent, received, trust, conflict...
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

/// A write transaction on the store.
pub struct StoreTx<'a> {
    tx: Transaction<'a>,
    cache: &'a RefCell<HashMap<DocId, Cached>>,
    trust: &'a RefCell<Trust>,
    touched: BTreeSet<DocId>,
}

impl std::fmt::Debug for StoreTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTx").finish_non_exhaustive()
    }
}

impl StoreTx<'_> {
    fn key(&self, doc: &DocId) -> Option<NodeId> {
        self.trust.borrow().key_for_doc(doc).copied()
    }

    /// Makes sure the cache holds the document's ledger as this transaction sees it; a
    /// document not held starts from its genesis (and is created when a change is accepted).
    fn ensure(&mut self, doc: &DocId) -> Result<bool, StoreError> {
        let key = self.key(doc);
        let version = Store::version(&self.tx, doc)?;
        let mut cache = self.cache.borrow_mut();
        let fresh = match (cache.get(doc), version) {
            (Some(c), Some(v)) => c.version == v,
            (Some(c), None) => c.version == 0 && self.touched.contains(doc),
            (None, _) => false,
        };
        if !fresh {
            let ledger = match version {
                Some(_) => load_ledger(&self.tx, doc, key.as_ref())?,
                None => Ledger::new(doc),
            };
            cache.insert(
                doc.clone(),
                Cached {
                    version: version.unwrap_or(0),
                    ledger,
                },
            );
        }
        if let Some(c) = cache.get_mut(doc) {
            c.ledger.settle(key.as_ref());
        }
        Ok(version.is_some())
    }

    /// Runs `f` on the document's settled ledger as this transaction sees it (with the
    /// changes admitted so far in it), or on its bare genesis if not held.
    pub fn with_ledger<T>(
        &mut self,
        doc: &DocId,
        f: impl FnOnce(&Ledger) -> T,
    ) -> Result<T, StoreError> {
        self.ensure(doc)?;
        let cache = self.cache.borrow();
        let c = cache.get(doc).ok_or_else(|| StoreError::Unverified {
            doc: doc.to_string(),
            reason: "missing from the cache".into(),
        })?;
        Ok(f(&c.ledger))
    }

    /// Whether the document is held (as this transaction sees it).
    pub fn holds(&mut self, doc: &DocId) -> Result<bool, StoreError> {
        Ok(Store::version(&self.tx, doc)?.is_some())
    }

    /// Passes `changes` through the gate into `doc`, and stores what is admitted: the changes,
    /// their audit lines, permanent rejections (bounded per peer), and the audit of changes
    /// that stood and are now void. Changes waiting for dependencies are returned, not kept.
    /// Nothing is kept of a document that had no change admitted.
    pub fn apply(
        &mut self,
        doc: &DocId,
        changes: Vec<SignedChange>,
        source: Source,
        now: i64,
    ) -> Result<Outcome, StoreError> {
        let held = self.ensure(doc)?;
        self.touched.insert(doc.clone());
        let key = self.key(doc);
        let mut out = Outcome::default();
        let standing_before: Vec<ChangeHash> = {
            let cache = self.cache.borrow();
            cache
                .get(doc)
                .map(|c| {
                    c.ledger
                        .audit_rows()
                        .into_iter()
                        .filter(|(_, _, v)| *v == Verdict::Stands)
                        .map(|(h, _, _)| h)
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut pending = changes;
        let mut admitted: Vec<SignedChange> = Vec::new();
        loop {
            let mut progressed = false;
            let mut still = Vec::new();
            for c in pending {
                let verdict = {
                    let mut cache = self.cache.borrow_mut();
                    let Some(entry) = cache.get_mut(doc) else {
                        break;
                    };
                    entry.ledger.admit(&c, key.as_ref())
                };
                match verdict {
                    Admitted::New(h) => {
                        out.accepted.push(h);
                        admitted.push(c);
                        progressed = true;
                    }
                    Admitted::Known(_) => {}
                    Admitted::Waiting(h, missing) => {
                        let mut dead = None;
                        for m in &missing {
                            if self.rejected(doc, m)? {
                                dead = Some(*m);
                                break;
                            }
                        }
                        match dead {
                            Some(dep) => out.rejected.push((
                                Some(h),
                                Rejection::DependsOnRejected {
                                    hash: h.to_string()[..12].to_string(),
                                    dep: dep.to_string()[..12].to_string(),
                                },
                            )),
                            None => still.push((c, missing)),
                        }
                    }
                    Admitted::Refused(h, r) => out.rejected.push((h, r)),
                }
            }
            if !progressed || still.is_empty() {
                out.waiting = still;
                break;
            }
            pending = still.into_iter().map(|(c, _)| c).collect();
        }
        // Record what was admitted.
        if !out.accepted.is_empty() {
            if !held {
                self.tx.execute(
                    "INSERT INTO documents (id, version, created) VALUES (?1, 0, ?2)",
                    params![doc.to_string(), now],
                )?;
            }
            for (h, c) in out.accepted.iter().zip(&admitted) {
                self.tx
                    .prepare_cached(
                        "INSERT INTO doc_changes (doc, hash, data, signature, source, received)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![
                        doc.to_string(),
                        h.0.to_vec(),
                        c.data.to_bytes(),
                        c.signature,
                        source.peer_blob(),
                        now
                    ])?;
            }
            let version: i64 = self.tx.query_row(
                "UPDATE documents SET version = version + 1 WHERE id = ?1 RETURNING version",
                [doc.to_string()],
                |r| r.get(0),
            )?;
            // A pool's audience decides who may read its members' documents: what a peer
            // offered that could not be taken from it may be takeable now.
            if matches!(doc, DocId::Pool(_)) {
                self.tx.execute("DELETE FROM peer_unheld", [])?;
            }
            let mut cache = self.cache.borrow_mut();
            if let Some(c) = cache.get_mut(doc) {
                c.version = version;
                c.ledger.settle(key.as_ref());
            }
        }
        // Permanent rejections, bounded per peer.
        let peer = source.peer_blob();
        for (h, r) in &out.rejected {
            if let (Some(h), true) = (h, r.is_permanent()) {
                let rows: i64 = self.tx.query_row(
                    "SELECT COUNT(*) FROM rejected WHERE peer IS ?1",
                    params![peer],
                    |x| x.get(0),
                )?;
                if rows < MAX_REJECTED_ROWS {
                    self.tx.execute(
                        "INSERT OR IGNORE INTO rejected (doc, hash, peer, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![doc.to_string(), h.0.to_vec(), peer, r.to_string(), now],
                    )?;
                }
            }
        }
        // The audit: each accepted change with its verdict, refusals summed up per batch (a
        // peer cannot make the log grow by more than a line per message), and changes that
        // stood and no longer do.
        let (rows, voided) = {
            let cache = self.cache.borrow();
            let Some(c) = cache.get(doc) else {
                return Ok(out);
            };
            let rows: Vec<(ChangeHash, String)> = out
                .accepted
                .iter()
                .map(|h| {
                    let who = match c.ledger.author(h) {
                        Some(Author::Node(n)) => format!("by node {}", n.short()),
                        _ => "genesis".into(),
                    };
                    let v = match c.ledger.verdict(h) {
                        Some(Verdict::Void(d)) => format!("{who}; held but void: {d}"),
                        _ => who,
                    };
                    (*h, v)
                })
                .collect();
            let voided: Vec<(ChangeHash, String)> = standing_before
                .iter()
                .filter_map(|h| match c.ledger.verdict(h) {
                    Some(Verdict::Void(d)) => Some((*h, d.to_string())),
                    _ => None,
                })
                .collect();
            (rows, voided)
        };
        for (h, detail) in &rows {
            self.audit(
                now,
                "accepted",
                Some(doc),
                Some(h),
                source_peer(&source).as_ref(),
                detail,
            )?;
        }
        if let Some((_, first)) = out.rejected.first() {
            self.audit(
                now,
                "rejected",
                Some(doc),
                out.rejected.first().and_then(|(h, _)| h.as_ref()),
                source_peer(&source).as_ref(),
                &format!(
                    "{} change(s) refused; the first: {first}",
                    out.rejected.len()
                ),
            )?;
        }
        for (h, why) in &voided {
            self.audit(now, "voided", Some(doc), Some(h), None, why)?;
        }
        out.voided = voided;
        Ok(out)
    }

    fn rejected(&self, doc: &DocId, hash: &ChangeHash) -> Result<bool, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM rejected WHERE doc = ?1 AND hash = ?2")?
            .query_row(params![doc.to_string(), hash.0.to_vec()], |_| Ok(()))
            .optional()?
            .is_some())
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
        self.tx
            .prepare_cached(
                "INSERT INTO audit (at, event, doc, change, peer, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                now,
                event,
                doc.map(|d| d.to_string()),
                change.map(|h| h.0.to_vec()),
                peer.map(|p| p.0.to_vec()),
                detail
            ])?;
        Ok(())
    }
}

fn source_peer(s: &Source) -> Option<NodeId> {
    match s {
        Source::Local => None,
        Source::Peer(p) => Some(*p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poa_protocol::change::{FlatAction, FlatOp};
    use poa_protocol::doc::PoolId;
    use poa_protocol::ledger::actor_bytes;
    use poa_protocol::sign::{NodeKey, sign_change};

    fn write(store: &mut Store, key: &NodeKey, doc: &DocId, id: &str) -> Outcome {
        store
            .transact(|tx| {
                let data = tx.with_ledger(doc, |l| {
                    l.next_change(
                        &actor_bytes(&key.node_id(), &[9; 8]),
                        1,
                        vec![FlatOp {
                            container: doc.kind().container("pooled").unwrap_or(0),
                            key: id.into(),
                            action: FlatAction::Put {
                                value: "{}".into(),
                                preds: vec![],
                            },
                        }],
                    )
                })?;
                let hash = data.to_automerge(doc).expect("encodes").hash();
                let c = SignedChange {
                    signature: sign_change(key, doc, &hash).to_vec(),
                    data,
                };
                tx.apply(doc, vec![c], Source::Local, 1)
            })
            .expect("writes")
    }

    #[test]
    fn writes_survive_reopen_and_are_verified_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("poa.db");
        let key = NodeKey::from_seed(&[5; 32]);
        let doc = DocId::Pool(PoolId::new("p1", &key.node_id()));
        let mut store = Store::open(&path).unwrap();
        for i in 0..70 {
            let out = write(&mut store, &key, &doc, &format!("R{i}"));
            assert_eq!(out.accepted.len(), 1, "{:?}", out.rejected);
        }
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.with_ledger(&doc, |l| l.len()).unwrap(), Some(71));
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o077,
                0,
                "the database is readable by others: {mode:o}"
            );
        }
    }

    #[test]
    fn a_tampered_row_stops_the_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("poa.db");
        let key = NodeKey::from_seed(&[5; 32]);
        let doc = DocId::Pool(PoolId::new("p1", &key.node_id()));
        let mut store = Store::open(&path).unwrap();
        write(&mut store, &key, &doc, "R1");
        store
            .conn
            .execute("UPDATE doc_changes SET signature = zeroblob(64)", [])
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert!(matches!(
            store.view(&doc),
            Err(StoreError::Unverified { .. })
        ));
    }

    #[test]
    fn a_failed_transaction_leaves_no_trace_in_the_database_or_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let key = NodeKey::from_seed(&[5; 32]);
        let doc = DocId::Pool(PoolId::new("p1", &key.node_id()));
        let mut store = Store::open(&dir.path().join("poa.db")).unwrap();
        write(&mut store, &key, &doc, "R1");
        let r: Result<(), StoreError> = store.transact(|tx| {
            let data = tx.with_ledger(&doc, |l| {
                l.next_change(
                    &actor_bytes(&key.node_id(), &[9; 8]),
                    1,
                    vec![FlatOp {
                        container: 5,
                        key: "R2".into(),
                        action: FlatAction::Put {
                            value: "{}".into(),
                            preds: vec![],
                        },
                    }],
                )
            })?;
            let hash = data.to_automerge(&doc).unwrap().hash();
            let c = SignedChange {
                signature: sign_change(&key, &doc, &hash).to_vec(),
                data,
            };
            tx.apply(&doc, vec![c], Source::Local, 1)?;
            Err(StoreError::OldFormat)
        });
        assert!(r.is_err());
        assert_eq!(store.with_ledger(&doc, |l| l.len()).unwrap(), Some(2));
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
