//! Documents and their signed changes: loading and verifying ledgers, the ledger cache, and
//! the write transaction ([`StoreTx`]) that admits changes, records rejections and audits a
//! batch.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use poa_protocol::NodeId;
use poa_protocol::authority::Trust;
use poa_protocol::automerge::ChangeHash;
use poa_protocol::change::{ChangeData, SignedChange};
use poa_protocol::doc::DocId;
use poa_protocol::ledger::{Admitted, Author, Ledger, Rejection, Verdict};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{Cached, Store, StoreError};

/// Rows of permanently rejected changes kept per peer; beyond, rejections are only counted.
const MAX_REJECTED_ROWS: i64 = 1000;

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
    /// Waiting for dependencies not held: the change's hash, the change, and what it lacks.
    pub waiting: Vec<(ChangeHash, SignedChange, Vec<ChangeHash>)>,
    /// Held changes that stood before and are now void, with why.
    pub voided: Vec<(ChangeHash, String)>,
}

/// Loads a document's rows into a ledger, checking every one again.
fn load_ledger(
    conn: &Connection,
    doc: &DocId,
    key: Option<&NodeId>,
    recovery: Option<NodeId>,
) -> Result<Ledger, StoreError> {
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
    ledger.set_recovery(recovery);
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
        let recovery = self.trust.borrow().recovery_for_doc(doc).copied();
        let mut cache = self.cache.borrow_mut();
        match cache.get_mut(doc) {
            Some(c) if c.version == version => {
                c.ledger.set_recovery(recovery);
                c.ledger.settle(key.as_ref());
            }
            _ => {
                let ledger = load_ledger(conn, doc, key.as_ref(), recovery)?;
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

    /// Whether a change of `doc` was rejected for good before.
    pub fn is_rejected(&self, doc: &DocId, hash: &ChangeHash) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM rejected WHERE doc = ?1 AND hash = ?2")?
            .query_row(params![doc.to_string(), hash.0.to_vec()], |_| Ok(()))
            .optional()?
            .is_some())
    }
}

/// A write transaction on the store.
pub struct StoreTx<'a> {
    pub(super) tx: Transaction<'a>,
    pub(super) cache: &'a RefCell<HashMap<DocId, Cached>>,
    pub(super) trust: &'a RefCell<Trust>,
    pub(super) touched: BTreeSet<DocId>,
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
        let recovery = self.trust.borrow().recovery_for_doc(doc).copied();
        let version = Store::version(&self.tx, doc)?;
        let mut cache = self.cache.borrow_mut();
        let fresh = match (cache.get(doc), version) {
            (Some(c), Some(v)) => c.version == v,
            (Some(c), None) => c.version == 0 && self.touched.contains(doc),
            (None, _) => false,
        };
        if !fresh {
            let ledger = match version {
                Some(_) => load_ledger(&self.tx, doc, key.as_ref(), recovery)?,
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
            c.ledger.set_recovery(recovery);
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
        let batch = {
            let mut cache = self.cache.borrow_mut();
            let Some(entry) = cache.get_mut(doc) else {
                return Err(StoreError::Unverified {
                    doc: doc.to_string(),
                    reason: "missing from the cache".into(),
                });
            };
            let tx = &self.tx;
            entry
                .ledger
                .admit_batch(changes, key.as_ref(), source_peer(&source), |m| {
                    rejected_in(tx, doc, m)
                })?
        };
        let mut admitted: Vec<SignedChange> = Vec::with_capacity(batch.held.len());
        for (h, c) in batch.held {
            out.accepted.push(h);
            admitted.push(c);
        }
        out.rejected = batch.refused;
        out.waiting = batch.waiting;
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
}

/// Whether `hash` was rejected for good in `doc`.
fn rejected_in(tx: &Connection, doc: &DocId, hash: &ChangeHash) -> Result<bool, StoreError> {
    Ok(tx
        .prepare_cached("SELECT 1 FROM rejected WHERE doc = ?1 AND hash = ?2")?
        .query_row(params![doc.to_string(), hash.0.to_vec()], |_| Ok(()))
        .optional()?
        .is_some())
}

fn source_peer(s: &Source) -> Option<NodeId> {
    match s {
        Source::Local => None,
        Source::Peer(p) => Some(*p),
    }
}
