//! The append-only audit log: lines written by the node and by write transactions, and read
//! back.

use poa_protocol::NodeId;
use poa_protocol::automerge::ChangeHash;
use poa_protocol::doc::DocId;
use rusqlite::params;

use super::{Store, StoreError, StoreTx, node_of};
use crate::format::hex;

impl Store {
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

impl StoreTx<'_> {
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
