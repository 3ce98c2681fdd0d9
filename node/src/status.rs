//! How the node is doing: per peer, whether the serving node is connected to it, when it was
//! last in contact, the last error in words, which documents it is behind on and by how many
//! changes, and the traffic exchanged; per document, which peers hold it as this node does.
//!
//! Everything comes from the store, which the serving node keeps up to date (links, contact,
//! traffic, the heads each peer is known to hold), so `poa-node status` in another process, the
//! dashboard's health page and a restarted node all tell the same thing.

use poa_protocol::NodeId;
use poa_protocol::doc::DocId;
use serde::Serialize;

use crate::node::Node;
use crate::store::{StoreError, Traffic};

/// The whole picture.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// This node.
    pub node: NodeStatus,
    /// Each pinned peer.
    pub peers: Vec<PeerStatus>,
    /// Each document held.
    pub documents: Vec<DocStatus>,
    /// Each State or body whose key this node follows past the key it trusts (a rotation or
    /// recovery), or whose chain needs a person's attention (a fork, a recovery it cannot
    /// check).
    pub keys: Vec<KeyStatus>,
}

/// A State's or body's key chain as this node follows it, from its published document.
#[derive(Clone, Debug, Serialize)]
pub struct KeyStatus {
    /// The State or body code.
    pub principal: String,
    /// The key this node trusts for it (the chain's root).
    pub trusted: String,
    /// The key in force now.
    pub current: String,
    /// The epoch of the key in force (one more per recovery).
    pub epoch: u32,
    /// How many keys were retired.
    pub retired: usize,
    /// A fork froze the chain: nothing new its keys sign stands until a recovery.
    pub frozen: bool,
    /// What a person should know, in words.
    pub notes: Vec<String>,
}

/// This node.
#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    /// Its NodeId.
    pub node_id: String,
    /// Its display name.
    pub name: String,
    /// Whether a `serve` runs on its home.
    pub serving: bool,
    /// The process id of that `serve`.
    pub pid: Option<String>,
    /// Documents held.
    pub documents: usize,
    /// Changes held, over all documents.
    pub changes: usize,
    /// When this was read (Unix seconds).
    pub at: i64,
}

/// One pinned peer.
#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    /// Its NodeId.
    pub node_id: String,
    /// Its display name.
    pub name: String,
    /// Where it is dialled, if anywhere.
    pub addr: Option<String>,
    /// Whether the serving node has a live connection with it now.
    pub connected: bool,
    /// Since when (Unix seconds).
    pub connected_since: Option<i64>,
    /// The last completed exchange (Unix seconds).
    pub last_contact: Option<i64>,
    /// The same, as "3 min ago".
    pub last_contact_ago: Option<String>,
    /// The last error, in words that say what to do.
    pub last_error: Option<String>,
    /// When it happened (Unix seconds).
    pub last_error_at: Option<i64>,
    /// Whether it holds every document it may read as this node holds it.
    pub in_sync: bool,
    /// The documents it may read from this node.
    pub documents: Vec<PeerDoc>,
    /// What went over every connection with it.
    pub traffic: Traffic,
    /// Changes it sent that were rejected.
    pub invalid_changes: i64,
    /// Misbehaviour proven against its key.
    pub flagged: Option<String>,
}

/// A document a peer may read, as far as this node knows the peer holds it.
#[derive(Clone, Debug, Serialize)]
pub struct PeerDoc {
    /// The document.
    pub doc: String,
    /// Whether the peer is known to hold all of it.
    pub in_sync: bool,
    /// Changes this node would send it.
    pub behind: usize,
}

/// One document held.
#[derive(Clone, Debug, Serialize)]
pub struct DocStatus {
    /// The document.
    pub doc: String,
    /// Changes held.
    pub changes: usize,
    /// The peers known to hold it as this node does (by name).
    pub in_sync_with: Vec<String>,
    /// The peers that may read it and are known to lack some of it (by name).
    pub behind: Vec<String>,
}

/// Reads the status. `serving` is the pid of the `serve` holding the home's lock, if one runs
/// (links written by a `serve` that is gone are not live).
pub fn status(node: &Node, serving: Option<String>, now: i64) -> Result<Status, StoreError> {
    let docs = node.store.doc_ids()?;
    let mut sizes = Vec::with_capacity(docs.len());
    for d in &docs {
        let n = node.store.with_ledger(d, |l| l.len())?.unwrap_or(0);
        sizes.push(n);
    }
    let mut documents: Vec<DocStatus> = docs
        .iter()
        .zip(&sizes)
        .map(|(d, n)| DocStatus {
            doc: d.to_string(),
            changes: *n,
            in_sync_with: Vec::new(),
            behind: Vec::new(),
        })
        .collect();
    let mut peers = Vec::new();
    for p in node.store.peers()? {
        let mut per_doc = Vec::new();
        for (i, d) in docs.iter().enumerate() {
            if !crate::host::can_read(node, &p.node_id, d) {
                continue;
            }
            let behind = behind_by(node, &p.node_id, d)?;
            let entry = &mut documents[i];
            if behind == 0 {
                entry.in_sync_with.push(p.name.clone());
            } else {
                entry.behind.push(p.name.clone());
            }
            per_doc.push(PeerDoc {
                doc: d.to_string(),
                in_sync: behind == 0,
                behind,
            });
        }
        let connected = serving.is_some() && p.connected_since.is_some();
        peers.push(PeerStatus {
            node_id: p.node_id.to_string(),
            name: p.name,
            addr: p.addr,
            connected,
            connected_since: p.connected_since.filter(|_| connected),
            last_contact: p.last_seen,
            last_contact_ago: p.last_seen.map(|t| ago(now, t)),
            last_error: p.last_error,
            last_error_at: p.last_error_at,
            in_sync: per_doc.iter().all(|d| d.in_sync),
            documents: per_doc,
            traffic: p.traffic,
            invalid_changes: p.invalid_changes,
            flagged: p.flagged,
        });
    }
    let mut keys = Vec::new();
    for d in &docs {
        if !matches!(d, DocId::State(_) | DocId::Offers(_)) {
            continue;
        }
        let (Ok(Some(chain)), Some(p)) = (node.key_chain_of(d), d.principal()) else {
            continue;
        };
        if chain.retired.is_empty() && !chain.frozen && chain.notes.is_empty() {
            continue;
        }
        keys.push(KeyStatus {
            principal: p.code(),
            trusted: chain.root.to_string(),
            current: chain.current.to_string(),
            epoch: chain.epoch,
            retired: chain.retired.len(),
            frozen: chain.frozen,
            notes: chain.notes.clone(),
        });
    }
    Ok(Status {
        node: NodeStatus {
            node_id: node.id().to_string(),
            name: node.home.config.name.clone(),
            serving: serving.is_some(),
            pid: serving,
            documents: docs.len(),
            changes: sizes.iter().sum(),
            at: now,
        },
        peers,
        documents,
        keys,
    })
}

/// How many changes of `doc` this node would send `peer`: those outside the causal past of the
/// heads the peer is known to hold.
fn behind_by(node: &Node, peer: &NodeId, doc: &DocId) -> Result<usize, StoreError> {
    let shared = node.store.shared_heads(peer, doc)?;
    Ok(node
        .store
        .with_ledger(doc, |l| l.exported_since(&shared).len())?
        .unwrap_or(0))
}

/// `then` seen from `now`: "just now", "3 min ago", "5 h ago", "2 days ago".
pub fn ago(now: i64, then: i64) -> String {
    let s = now.saturating_sub(then).max(0);
    match s {
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h ago", s / 3600),
        86_400..172_800 => "1 day ago".into(),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// A Unix time as `2026-12-01 21:50 UTC`.
pub fn when(t: i64) -> String {
    let day = poa_protocol::Date::from_unix_seconds(t);
    let secs = t.rem_euclid(86_400);
    format!("{day} {:02}:{:02} UTC", secs / 3600, secs % 3600 / 60)
}

/// A number of bytes as people read it: `830 B`, `12.4 kB`, `3.1 MB`.
pub fn bytes(n: u64) -> String {
    match n {
        0..1000 => format!("{n} B"),
        1000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.1} GB", n as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(ago(1000, 1000), "just now");
        assert_eq!(ago(1000, 2000), "just now");
        assert_eq!(ago(1000 + 180, 1000), "3 min ago");
        assert_eq!(ago(7200 + 5, 0), "2 h ago");
        assert_eq!(ago(86_400 * 3, 0), "3 days ago");
        assert_eq!(when(1_764_625_800), "2025-12-01 21:50 UTC");
        assert_eq!(bytes(830), "830 B");
        assert_eq!(bytes(12_400), "12.4 kB");
    }
}
