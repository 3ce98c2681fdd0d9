//! The pinned peers and what is remembered per peer: the outcome of exchanges, rejected
//! changes and misbehaviour, the heads known shared, and what each peer last offered.

use poa_protocol::automerge::ChangeHash;
use poa_protocol::doc::DocId;
use poa_protocol::{NodeId, Principal};
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, node_of};

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
    /// Unix seconds of the last error, if one is kept.
    pub last_error_at: Option<i64>,
    /// Unix seconds since which the serving node has a live connection with it, as the serving
    /// node last wrote (true only while a `serve` holds the home's lock).
    pub connected_since: Option<i64>,
    /// What went over every connection with it.
    pub traffic: Traffic,
}

/// Bytes and changes exchanged with a peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Traffic {
    /// Bytes written to it.
    pub bytes_sent: u64,
    /// Bytes read from it.
    pub bytes_received: u64,
    /// Changes sent to it.
    pub changes_sent: u64,
    /// Changes taken from it.
    pub changes_received: u64,
}

impl Traffic {
    /// What `self` has that `earlier` had not.
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        Traffic {
            bytes_sent: self.bytes_sent.saturating_sub(earlier.bytes_sent),
            bytes_received: self.bytes_received.saturating_sub(earlier.bytes_received),
            changes_sent: self.changes_sent.saturating_sub(earlier.changes_sent),
            changes_received: self
                .changes_received
                .saturating_sub(earlier.changes_received),
        }
    }
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

impl Store {
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
            "SELECT node_id, name, addr, state, body, added, last_seen, last_error, invalid_changes, flagged, introducer,
                    last_error_at, connected_since, bytes_sent, bytes_received, changes_sent, changes_received
             FROM peers ORDER BY name, node_id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                let extra = (
                    r.get::<_, Option<i64>>(11)?,
                    r.get::<_, Option<i64>>(12)?,
                    Traffic {
                        bytes_sent: r.get::<_, i64>(13)?.max(0) as u64,
                        bytes_received: r.get::<_, i64>(14)?.max(0) as u64,
                        changes_sent: r.get::<_, i64>(15)?.max(0) as u64,
                        changes_received: r.get::<_, i64>(16)?.max(0) as u64,
                    },
                );
                Ok((
                    (
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
                    ),
                    extra,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(
                |(
                    (k, name, addr, state, body, added, seen, err, invalid, flagged, introducer),
                    (last_error_at, connected_since, traffic),
                )| {
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
                        last_error_at,
                        connected_since,
                        traffic,
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
                "UPDATE peers SET last_seen = ?2, last_error = NULL, last_error_at = NULL WHERE node_id = ?1",
                params![id.0.to_vec(), now],
            )?,
            Some(e) => self.conn.execute(
                "UPDATE peers SET last_error = ?2, last_error_at = ?3 WHERE node_id = ?1",
                params![id.0.to_vec(), e, now],
            )?,
        };
        Ok(())
    }

    /// Adds what went over a connection with a peer since it was last counted.
    pub fn add_peer_traffic(&self, id: &NodeId, t: &Traffic) -> Result<(), StoreError> {
        if *t == Traffic::default() {
            return Ok(());
        }
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.conn
            .prepare_cached(
                "UPDATE peers SET bytes_sent = bytes_sent + ?2, bytes_received = bytes_received + ?3,
                     changes_sent = changes_sent + ?4, changes_received = changes_received + ?5
                 WHERE node_id = ?1",
            )?
            .execute(params![
                id.0.to_vec(),
                n(t.bytes_sent),
                n(t.bytes_received),
                n(t.changes_sent),
                n(t.changes_received)
            ])?;
        Ok(())
    }

    /// Records that the serving node has a live connection with a peer since `since`, or
    /// none (`None`).
    pub fn set_peer_link(&self, id: &NodeId, since: Option<i64>) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE peers SET connected_since = ?2 WHERE node_id = ?1",
            params![id.0.to_vec(), since],
        )?;
        Ok(())
    }

    /// Forgets every live connection: a serving node starting, or ending, has none.
    pub fn clear_peer_links(&self) -> Result<(), StoreError> {
        self.conn
            .execute("UPDATE peers SET connected_since = NULL", [])?;
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
}
