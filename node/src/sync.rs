//! The sync engine: the I/O around [`poa_protocol::session::Session`]. It owns the sockets,
//! tasks and timers; every decision about what to send and what to take is the session's, and
//! every change passes the gate in the store.
//!
//! Per connection, one task reads frames (growing a buffer only as bytes arrive, with a
//! deadline for each frame), one writes them, and the connection's loop feeds the session the
//! messages, the changes this node makes or receives from other peers (so they are pushed at
//! once), and its timer. Resources a peer can make this node hold are bounded per peer:
//! connections, bytes of a frame in progress, changes waiting for their dependencies.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use poa_protocol::authority::TrustSource;
use poa_protocol::automerge::ChangeHash;
use poa_protocol::change::SignedChange;
use poa_protocol::doc::DocId;
use poa_protocol::ledger::Ledger;
use poa_protocol::pool::PoolData;
use poa_protocol::rules::{Reader, may_read};
use poa_protocol::session::{self, Applied, Event, Host, Mode, Session, SessionConfig};
use poa_protocol::sign::NodeKey;
use poa_protocol::wire::{
    self, Claim, FrameBuffer, Hello, MAX_FRAME, Message, PROTOCOL_VERSION, Vouch,
};
use poa_protocol::{NodeId, Participant, Principal};
use tokio::sync::{broadcast, mpsc, watch};

pub use poa_protocol::session::SyncReport;

use crate::node::{Node, NodeError, now_secs};
use crate::store::{Learned, Peer, Source, StoreError};
use crate::transport::{self, Pins, TransportError};

/// Errors of a sync connection.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The node's data.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The transport.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// QUIC connection failure.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Dialling failed.
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The peer broke the protocol, or this node refused it.
    #[error("{0}")]
    Session(#[from] session::SessionError),
    /// The peer's bytes are not frames of this protocol.
    #[error("peer broke the protocol: {0}")]
    Protocol(String),
    /// The peer said goodbye with a reason before the round completed.
    #[error("peer closed: {0}")]
    Closed(String),
    /// Nothing happened for too long.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// Settings of the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Time between anti-entropy summaries on an idle connection.
    pub anti_entropy: Duration,
    /// How often to look for writes made by other processes (the CLI while serving).
    pub poll: Duration,
    /// Longest wait for a peer during a one-shot round.
    pub round_timeout: Duration,
    /// Longest time one frame may take to arrive once it has begun.
    pub frame_deadline: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            anti_entropy: Duration::from_secs(60),
            poll: Duration::from_millis(250),
            round_timeout: Duration::from_secs(120),
            frame_deadline: Duration::from_secs(30),
        }
    }
}

/// The most connections one peer may have open at once.
pub const MAX_CONNECTIONS_PER_PEER: usize = 4;
/// The most bytes of changes one peer may have waiting here for their dependencies.
pub const MAX_PARKED_BYTES_PER_PEER: usize = 16 << 20;
/// The most changes one peer may have waiting here for their dependencies.
pub const MAX_PARKED_PER_PEER: usize = 20_000;

/// What connection tasks are told about the node.
#[derive(Clone, Debug)]
enum Notice {
    /// A document changed here.
    Doc(DocId),
    /// The keys this node trusts changed.
    Trust,
}

#[derive(Debug, Default)]
struct Parked {
    by_doc: BTreeMap<DocId, Vec<(NodeId, SignedChange)>>,
    bytes: HashMap<NodeId, usize>,
    count: HashMap<NodeId, usize>,
}

fn change_bytes(c: &SignedChange) -> usize {
    64 + c.data.actor.len()
        + c.data.deps.len() * 32
        + c.data
            .ops
            .iter()
            .map(|o| o.key.len() + o.value().map_or(0, str::len) + 16)
            .sum::<usize>()
}

/// The engine: a node, shared by every connection task.
pub struct Engine {
    node: Mutex<Node>,
    key: NodeKey,
    hello: Hello,
    pins: Pins,
    changed: broadcast::Sender<Notice>,
    versions: Mutex<HashMap<DocId, i64>>,
    trust: Mutex<poa_protocol::authority::Trust>,
    revealed: Mutex<HashMap<NodeId, BTreeSet<DocId>>>,
    connected: Mutex<HashMap<NodeId, usize>>,
    parked: Mutex<Parked>,
    config: EngineConfig,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("node", &self.hello.node)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock would be a bug; the data is still consistent because every
    // write is a committed SQLite transaction, so keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// Wraps a node.
    pub fn new(node: Node, config: EngineConfig) -> Result<Arc<Engine>, SyncError> {
        let key = NodeKey::from_seed(&node.home.key.seed());
        let hello = Hello {
            version: PROTOCOL_VERSION,
            node: key.node_id(),
            name: node.home.config.name.clone(),
            claims: Claim::from(&node.home.config.participant),
            key: None,
        };
        let versions = node.store.versions()?.into_iter().collect();
        let trust = Mutex::new(node.store.trust());
        let (changed, _) = broadcast::channel(1024);
        let engine = Engine {
            node: Mutex::new(node),
            key,
            hello,
            pins: Pins::default(),
            changed,
            versions: Mutex::new(versions),
            trust,
            revealed: Mutex::new(HashMap::new()),
            connected: Mutex::new(HashMap::new()),
            parked: Mutex::new(Parked::default()),
            config,
        };
        engine.refresh_pins()?;
        Ok(Arc::new(engine))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.hello.node
    }

    /// Runs `f` on the node (the same code paths as the CLI), then pushes whatever it changed to
    /// connected peers.
    pub fn with_node<T>(&self, f: impl FnOnce(&mut Node) -> T) -> T {
        let mut node = lock(&self.node);
        let out = f(&mut node);
        if let Err(e) = self.notify_changes(&node) {
            tracing::warn!(cause = %e, "could not check for changed documents");
        }
        let _ = self.refresh_pins_with(&node);
        out
    }

    /// Reads through the node (the dashboard's path): no write, so nothing to push.
    pub fn read<T>(&self, f: impl FnOnce(&Node) -> T) -> T {
        f(&lock(&self.node))
    }

    /// The documents named to `peer` in anything this node sent it.
    pub fn revealed_to(&self, peer: &NodeId) -> BTreeSet<DocId> {
        lock(&self.revealed).get(peer).cloned().unwrap_or_default()
    }

    /// How many changes wait for dependencies, over all documents.
    pub fn parked(&self) -> usize {
        lock(&self.parked).by_doc.values().map(Vec::len).sum()
    }

    /// Peers with a live connection.
    pub fn connected(&self) -> BTreeSet<NodeId> {
        lock(&self.connected).keys().copied().collect()
    }

    fn refresh_pins(&self) -> Result<(), StoreError> {
        let node = lock(&self.node);
        self.refresh_pins_with(&node)
    }

    fn refresh_pins_with(&self, node: &Node) -> Result<(), StoreError> {
        let pinned: HashSet<NodeId> = node.store.peers()?.into_iter().map(|p| p.node_id).collect();
        if let Ok(mut pins) = self.pins.write() {
            *pins = pinned;
        }
        Ok(())
    }

    /// Broadcasts every document whose version moved since last looked at.
    fn notify_changes(&self, node: &Node) -> Result<(), StoreError> {
        // Keys learnt here, or by another process (the CLI's `trust` while serving).
        node.store.refresh_trust()?;
        let now_trusted = node.store.trust();
        {
            let mut t = lock(&self.trust);
            if *t != now_trusted {
                *t = now_trusted;
                let _ = self.changed.send(Notice::Trust);
            }
        }
        let now = node.store.versions()?;
        let mut known = lock(&self.versions);
        for (doc, v) in now {
            if known.get(&doc) != Some(&v) {
                known.insert(doc.clone(), v);
                let _ = self.changed.send(Notice::Doc(doc));
            }
        }
        Ok(())
    }

    /// The hello this node sends now: with the key of its State or body as it trusts it.
    fn hello_now(&self, node: &Node) -> Hello {
        let mut h = self.hello.clone();
        h.key = node
            .store
            .trust()
            .key(&node.home.config.participant.principal())
            .copied();
        h
    }

    /// Parks changes that wait for their dependencies, within the peer's bounds. Their
    /// signatures were checked before they got here. Returns an error when the peer would
    /// exceed them: it is disconnected.
    fn park(&self, doc: &DocId, from: NodeId, changes: Vec<SignedChange>) -> Result<(), String> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut p = lock(&self.parked);
        let list = p.by_doc.entry(doc.clone()).or_default();
        let mut added_bytes = 0;
        let mut added = 0;
        for c in changes {
            if list.iter().any(|(_, x)| x.data == c.data) {
                continue;
            }
            added_bytes += change_bytes(&c);
            added += 1;
            list.push((from, c));
        }
        let bytes = p.bytes.entry(from).or_default();
        *bytes += added_bytes;
        let over_bytes = *bytes > MAX_PARKED_BYTES_PER_PEER;
        let count = p.count.entry(from).or_default();
        *count += added;
        if over_bytes || *count > MAX_PARKED_PER_PEER {
            // Let go of everything this peer parked: what it sent comes again on a later
            // connection, whose sessions start afresh.
            for l in p.by_doc.values_mut() {
                l.retain(|(f, _)| *f != from);
            }
            p.by_doc.retain(|_, l| !l.is_empty());
            p.bytes.remove(&from);
            p.count.remove(&from);
            return Err(format!(
                "more than {} MiB or {MAX_PARKED_PER_PEER} changes waiting for dependencies it never sent",
                MAX_PARKED_BYTES_PER_PEER >> 20
            ));
        }
        Ok(())
    }

    fn unpark(&self, doc: &DocId) -> Vec<(NodeId, SignedChange)> {
        let mut p = lock(&self.parked);
        let list = p.by_doc.remove(doc).unwrap_or_default();
        for (from, c) in &list {
            if let Some(b) = p.bytes.get_mut(from) {
                *b = b.saturating_sub(change_bytes(c));
            }
            if let Some(n) = p.count.get_mut(from) {
                *n = n.saturating_sub(1);
            }
        }
        list
    }
}

/// What a node knows of a peer, to judge what it may read.
fn pinned_as(node: &Node, peer: &NodeId) -> Option<Principal> {
    node.store
        .peer(peer)
        .ok()
        .flatten()
        .and_then(|p| p.pinned_as)
}

fn pool_data(node: &Node, doc: &DocId) -> Option<PoolData> {
    let DocId::Pool(id) = doc else { return None };
    let view = node.store.view(doc).ok()??;
    Some(PoolData::from_json(&view, id, &node.store.trust()))
}

/// Whether `peer` may read `doc` as this node holds it (false if not held).
pub fn can_read(node: &Node, peer: &NodeId, doc: &DocId) -> bool {
    let own = node.home.config.participant.principal();
    // A draft never leaves its own State's nodes, and only this State's nodes hold one.
    if doc.is_draft() && doc.principal().as_ref() != Some(&own) {
        return false;
    }
    let Ok(Some(view)) = node.store.view(doc) else {
        return false;
    };
    let pinned = pinned_as(node, peer);
    may_read(
        doc,
        &view,
        Reader {
            node: peer,
            pinned_as: pinned.as_ref(),
        },
        |d| pool_data(node, d),
    )
}

/// The session's view of the node, for the length of one message.
struct EngineHost<'a> {
    engine: &'a Engine,
    node: &'a mut Node,
}

enum ApplyError {
    Store(StoreError),
    NotReader,
}

impl From<StoreError> for ApplyError {
    fn from(e: StoreError) -> Self {
        ApplyError::Store(e)
    }
}

impl Host for EngineHost<'_> {
    fn hello(&mut self, peer: &NodeId, h: &Hello) -> Result<(), String> {
        let now = now_secs();
        let row = self.node.store.peer(peer).map_err(|e| e.to_string())?;
        let name = row
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_else(|| peer.short());
        let claimed = Participant::from(&h.claims).principal();
        let pinned = row.and_then(|p| p.pinned_as);
        if let Some(p) = &pinned
            && *p != claimed
        {
            return Err(format!(
                "pinned as a node of {}, but it says it acts for {}",
                p.code(),
                Participant::from(&h.claims)
            ));
        }
        // A key is learnt only from a node the operator pinned as a node of that State or
        // body; whatever anyone else says about keys is ignored.
        let (Some(p), Some(key)) = (pinned, h.key) else {
            return Ok(());
        };
        let learned = self
            .node
            .store
            .learn_key(&p, &key, &TrustSource::PinnedNode(*peer), now)
            .map_err(|e| e.to_string())?;
        match learned {
            Learned::New => {
                let _ = self.node.store.audit_event(
                    now,
                    "trust",
                    None,
                    Some(peer),
                    &format!(
                        "learnt {}'s {} {key} from pinned node {name}",
                        p.code(),
                        p.key_name()
                    ),
                );
                let _ = self.engine.changed.send(Notice::Trust);
                Ok(())
            }
            Learned::Known => Ok(()),
            Learned::Conflict { trusted, source } => {
                let why = format!(
                    "node {peer} presents {key} as {}'s {}, but the key trusted here is {trusted} ({source}); refusing it",
                    p.code(),
                    p.key_name()
                );
                tracing::error!(peer = %peer.short(), "{why}");
                let _ = self
                    .node
                    .store
                    .audit_event(now, "conflict", None, Some(peer), &why);
                Err(why)
            }
        }
    }

    fn vouches(&mut self) -> Vec<Vouch> {
        self.node
            .store
            .first_hand_keys()
            .unwrap_or_default()
            .into_iter()
            .map(|(principal, key)| Vouch { principal, key })
            .collect()
    }

    fn introduced(&mut self, peer: &NodeId, keys: Vec<Vouch>) -> bool {
        let is_introducer = self
            .node
            .store
            .peer(peer)
            .ok()
            .flatten()
            .is_some_and(|p| p.introducer);
        if !is_introducer {
            return false;
        }
        let now = now_secs();
        let mut learnt = false;
        for v in keys {
            match self.node.store.learn_key(
                &v.principal,
                &v.key,
                &TrustSource::Introducer(*peer),
                now,
            ) {
                Ok(Learned::New) => {
                    learnt = true;
                    let _ = self.node.store.audit_event(
                        now,
                        "trust",
                        None,
                        Some(peer),
                        &format!(
                            "learnt {}'s {} {} from introducer {}",
                            v.principal.code(),
                            v.principal.key_name(),
                            v.key,
                            peer.short()
                        ),
                    );
                }
                Ok(Learned::Conflict { trusted, source }) => {
                    let _ = self.node.store.audit_event(
                        now,
                        "conflict",
                        None,
                        Some(peer),
                        &format!(
                            "introducer {} vouches for {} as {}'s {}, but {trusted} is trusted here ({source}); ignored",
                            peer.short(),
                            v.key,
                            v.principal.code(),
                            v.principal.key_name()
                        ),
                    );
                }
                _ => {}
            }
        }
        if learnt {
            let _ = self.engine.changed.send(Notice::Trust);
        }
        learnt
    }

    fn offered(&mut self, peer: &NodeId) -> Vec<(DocId, Vec<ChangeHash>)> {
        let mut out = Vec::new();
        for doc in self.node.store.doc_ids().unwrap_or_default() {
            if can_read(self.node, peer, &doc)
                && let Ok(Some(h)) = self.node.store.heads(&doc)
            {
                out.push((doc, h));
            }
        }
        out
    }

    fn expected(&mut self, peer: &NodeId) -> (Vec<DocId>, ([u8; 32], u32)) {
        self.node
            .store
            .peer_offers(peer)
            .unwrap_or_else(|_| (Vec::new(), ([0; 32], 0)))
    }

    fn set_expected(&mut self, peer: &NodeId, held: &[DocId], unheld: ([u8; 32], u32)) {
        if let Err(e) = self.node.store.set_peer_offers(peer, held, unheld) {
            tracing::warn!(cause = %e, "could not record a peer's listing");
        }
    }

    fn may_read(&mut self, peer: &NodeId, doc: &DocId) -> bool {
        can_read(self.node, peer, doc)
    }

    fn takeable(&mut self, peer: &NodeId, doc: &DocId) -> bool {
        let own = self.node.home.config.participant.principal();
        match doc {
            // Drafts come only from the State's own nodes, to the State's own nodes.
            DocId::Draft(_) => {
                doc.principal().as_ref() == Some(&own)
                    && pinned_as(self.node, peer).as_ref() == Some(&own)
            }
            // A pool is bound to its creator's key: anyone may bring it, the gate judges.
            DocId::Pool(_) => true,
            // A State's or body's document can be judged only with its key trusted.
            _ => {
                let trusted = self.node.store.trust().key_for_doc(doc).is_some();
                if !trusted {
                    let _ = self.node.store.audit_event(
                        now_secs(),
                        "trust-needed",
                        Some(doc),
                        Some(peer),
                        "offered, but no key of its owner is trusted here, so it cannot be checked: pin one of its nodes or run `poa-node trust`",
                    );
                }
                trusted
            }
        }
    }

    fn with_ledger<R>(&mut self, doc: &DocId, f: impl FnOnce(&Ledger) -> R) -> Option<R> {
        self.node.store.with_ledger(doc, f).ok().flatten()
    }

    fn shared(&mut self, peer: &NodeId, doc: &DocId) -> Vec<ChangeHash> {
        self.node.store.shared_heads(peer, doc).unwrap_or_default()
    }

    fn set_shared(&mut self, peer: &NodeId, doc: &DocId, shared: &[ChangeHash]) {
        if let Err(e) = self.node.store.set_shared_heads(peer, doc, shared) {
            tracing::warn!(cause = %e, "could not record shared heads");
        }
    }

    fn apply(
        &mut self,
        peer: &NodeId,
        doc: &DocId,
        changes: Vec<SignedChange>,
        _asked: bool,
    ) -> Applied {
        let mut out = Applied::default();
        // Changes this peer left waiting here for this document come along: these may be what
        // they lacked.
        let mut batch = changes;
        let mut others: Vec<(NodeId, SignedChange)> = Vec::new();
        for (from, c) in self.engine.unpark(doc) {
            if from == *peer {
                batch.push(c);
            } else {
                others.push((from, c));
            }
        }
        for (from, c) in others {
            let _ = self.engine.park(doc, from, vec![c]);
        }
        match apply_from(self.node, peer, doc, batch) {
            Ok(outcome) => {
                out.allowed = true;
                out.accepted = outcome.accepted.len();
                out.rejected = outcome
                    .rejected
                    .iter()
                    .map(|(_, r)| r.to_string())
                    .collect();
                out.waiting = outcome.waiting.len();
                if !outcome.rejected.is_empty() {
                    let _ = self.node.store.add_invalid(peer, outcome.rejected.len());
                }
                let waiting: Vec<SignedChange> =
                    outcome.waiting.into_iter().map(|(c, _)| c).collect();
                if let Err(why) = self.engine.park(doc, *peer, waiting) {
                    out.fatal = Some(why);
                }
                if out.accepted > 0 {
                    self.retry_parked(doc);
                    self.after_accept(doc);
                }
            }
            Err(ApplyError::NotReader) => out.allowed = false,
            Err(ApplyError::Store(e)) => {
                tracing::error!(cause = %e, doc = %doc, "could not store changes");
                out.fatal = Some(format!("this node could not store the changes: {e}"));
            }
        }
        out
    }
}

impl EngineHost<'_> {
    /// Retries what other peers left waiting for this document, each batch as from its own
    /// sender (so the audit names who sent what, and the read rule is applied to it), until
    /// nothing more applies.
    fn retry_parked(&mut self, doc: &DocId) {
        loop {
            let parked = self.engine.unpark(doc);
            if parked.is_empty() {
                return;
            }
            let mut by_sender: BTreeMap<NodeId, Vec<SignedChange>> = BTreeMap::new();
            for (from, c) in parked {
                by_sender.entry(from).or_default().push(c);
            }
            let mut progressed = false;
            for (from, batch) in by_sender {
                // If the sender may no longer read it, or the store failed, let them go: they
                // come again with the sender's next session.
                if let Ok(outcome) = apply_from(self.node, &from, doc, batch) {
                    progressed |= !outcome.accepted.is_empty();
                    let waiting = outcome.waiting.into_iter().map(|(c, _)| c).collect();
                    let _ = self.engine.park(doc, from, waiting);
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Records what a document now proves about its authors, and the version the engine saw.
    fn after_accept(&mut self, doc: &DocId) {
        let flagged = self
            .node
            .store
            .with_ledger(doc, |l| l.settled().map(|s| s.flagged.clone()))
            .ok()
            .flatten()
            .flatten()
            .unwrap_or_default();
        for (author, why) in flagged {
            let _ = self.node.store.flag_peer(&author, &why);
        }
        if let Ok(versions) = self.node.store.versions() {
            let mut known = lock(&self.engine.versions);
            for (d, v) in versions {
                if d == *doc {
                    known.insert(d, v);
                }
            }
        }
    }
}

/// Passes a peer's changes through the gate into `doc` in one transaction, keeping them only if
/// the peer may read the document with them (the read rule for ingress).
fn apply_from(
    node: &mut Node,
    peer: &NodeId,
    doc: &DocId,
    batch: Vec<SignedChange>,
) -> Result<crate::store::Outcome, ApplyError> {
    let now = now_secs();
    let trust = node.store.trust();
    let pinned = pinned_as(node, peer);
    node.store.transact(|tx| -> Result<_, ApplyError> {
        let outcome = tx.apply(doc, batch, Source::Peer(*peer), now)?;
        if !tx_can_read(tx, doc, peer, pinned.as_ref(), &trust)? {
            return Err(ApplyError::NotReader);
        }
        Ok(outcome)
    })
}

/// [`can_read`] inside a transaction, on the documents as the transaction sees them.
fn tx_can_read(
    tx: &mut crate::store::StoreTx<'_>,
    doc: &DocId,
    peer: &NodeId,
    pinned: Option<&Principal>,
    trust: &poa_protocol::authority::Trust,
) -> Result<bool, StoreError> {
    if !tx.holds(doc)? {
        return Ok(false);
    }
    let view = tx
        .with_ledger(doc, |l| l.settled().map(|s| s.view.clone()))?
        .unwrap_or_default();
    let mut ids: Vec<DocId> = poa_protocol::doc::readers(&view)
        .iter()
        .filter_map(|r| r.parse::<DocId>().ok())
        .filter(|d| matches!(d, DocId::Pool(_)))
        .collect();
    if matches!(doc, DocId::Pool(_)) {
        ids.push(doc.clone());
    }
    let mut pools: HashMap<DocId, PoolData> = HashMap::new();
    for id in ids {
        if let DocId::Pool(pid) = &id
            && tx.holds(&id)?
        {
            let v = tx
                .with_ledger(&id, |l| l.settled().map(|s| s.view.clone()))?
                .unwrap_or_default();
            pools.insert(id.clone(), PoolData::from_json(&v, pid, trust));
        }
    }
    Ok(may_read(
        doc,
        &view,
        Reader {
            node: peer,
            pinned_as: pinned,
        },
        |d| pools.get(d).cloned(),
    ))
}

/// Milliseconds on the engine's monotonic clock.
fn now_ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

fn session_config(config: &EngineConfig) -> SessionConfig {
    SessionConfig {
        anti_entropy_ms: config.anti_entropy.as_millis() as u64,
        ..SessionConfig::default()
    }
}

/// Reads frames from the stream into the channel: the buffer grows only with bytes that
/// arrived, and a frame that has begun must be complete within the deadline.
async fn read_frames(
    mut recv: quinn::RecvStream,
    tx: mpsc::Sender<Result<Message, SyncError>>,
    received: Arc<std::sync::atomic::AtomicU64>,
    deadline: Duration,
) {
    let mut buf = FrameBuffer::default();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut partial_since: Option<Instant> = None;
    loop {
        // Hand over every complete frame first.
        loop {
            match buf.next_message() {
                Ok(Some(m)) => {
                    if tx.send(Ok(m)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(SyncError::Protocol(e.to_string()))).await;
                    return;
                }
            }
        }
        if buf.buffered() > 4 + MAX_FRAME {
            let _ = tx
                .send(Err(SyncError::Protocol(
                    "frame larger than the maximum".into(),
                )))
                .await;
            return;
        }
        partial_since = match (buf.buffered(), partial_since) {
            (0, _) => None,
            (_, Some(t)) => Some(t),
            (_, None) => Some(Instant::now()),
        };
        let read = match partial_since {
            Some(t) => {
                let left = deadline.saturating_sub(t.elapsed());
                match tokio::time::timeout(left, recv.read(&mut chunk)).await {
                    Ok(r) => r,
                    Err(_) => {
                        let _ = tx
                            .send(Err(SyncError::Protocol(format!(
                                "a frame was not completed within {} s",
                                deadline.as_secs()
                            ))))
                            .await;
                        return;
                    }
                }
            }
            None => recv.read(&mut chunk).await,
        };
        match read {
            Ok(Some(n)) => {
                received.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                buf.push(&chunk[..n]);
            }
            Ok(None) => {
                if buf.buffered() > 0 {
                    let _ = tx
                        .send(Err(SyncError::Protocol(
                            "stream ended inside a frame".into(),
                        )))
                        .await;
                }
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(SyncError::Closed(e.to_string()))).await;
                return;
            }
        }
    }
}

/// Counts a live connection of a peer while it lives.
struct ConnSlot<'a> {
    engine: &'a Engine,
    peer: NodeId,
}

impl Drop for ConnSlot<'_> {
    fn drop(&mut self) {
        let mut connected = lock(&self.engine.connected);
        if let Some(n) = connected.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                connected.remove(&self.peer);
            }
        }
    }
}

/// Runs one connection until the round completes (one-shot) or it closes (serving).
async fn drive(
    engine: Arc<Engine>,
    conn: quinn::Connection,
    initiator: bool,
    mode: Mode,
    mut shutdown: watch::Receiver<bool>,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let peer = transport::peer_id(&conn)
        .ok_or_else(|| SyncError::Protocol("peer presented no ed25519 certificate".into()))?;
    let span = tracing::info_span!("peer", peer = %peer.short());
    let _guard = span.enter();
    {
        let mut connected = lock(&engine.connected);
        let n = connected.entry(peer).or_default();
        if *n >= MAX_CONNECTIONS_PER_PEER {
            drop(connected);
            let why = format!("more than {MAX_CONNECTIONS_PER_PEER} connections from one peer");
            conn.close(2u32.into(), why.as_bytes());
            return Err(SyncError::Protocol(why));
        }
        *n += 1;
    }
    let _slot = ConnSlot {
        engine: &engine,
        peer,
    };
    let (mut send, recv) = if initiator {
        conn.open_bi().await?
    } else {
        conn.accept_bi().await?
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        let mut written = 0u64;
        while let Some(msg) = rx.recv().await {
            let last = matches!(msg, Message::Goodbye { .. });
            let frame = match wire::encode_frame(&msg) {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(cause = %e, "could not encode a message");
                    continue;
                }
            };
            if send.write_all(&frame).await.is_err() {
                break;
            }
            written += frame.len() as u64;
            if last {
                break;
            }
        }
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
        written
    });
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (in_tx, mut incoming) = mpsc::channel::<Result<Message, SyncError>>(16);
    let reader = tokio::spawn(read_frames(
        recv,
        in_tx,
        received.clone(),
        engine.config.frame_deadline,
    ));
    let clock = Instant::now();
    let mut session = {
        let mut node = lock(&engine.node);
        let hello = engine.hello_now(&node);
        let mut s = Session::new(peer, hello, mode, session_config(&engine.config));
        let mut host = EngineHost {
            engine: &engine,
            node: &mut node,
        };
        s.start(&mut host, now_ms(clock));
        s
    };
    let mut changes = engine.changed.subscribe();
    let flush = |s: &mut Session, tx: &mpsc::UnboundedSender<Message>| {
        while let Some(m) = s.poll_transmit() {
            let _ = tx.send(m);
        }
    };
    flush(&mut session, &tx);
    let deadline = tokio::time::sleep(engine.config.round_timeout);
    tokio::pin!(deadline);
    let outcome: Result<(), SyncError> = async {
        loop {
            let events: Vec<Event> = std::iter::from_fn(|| session.poll_event()).collect();
            for e in events {
                match e {
                    Event::Accepted { doc, count } => {
                        tracing::debug!(doc = %doc, count, "accepted changes");
                        let _ = engine.changed.send(Notice::Doc(doc));
                    }
                    Event::Rejected { doc, count, reason } => {
                        tracing::warn!(doc = %doc, count, cause = %reason, "rejected changes from peer");
                    }
                    Event::Closed(reason) => {
                        tracing::debug!(reason, "peer said goodbye");
                        if mode == Mode::OneShot && initiator && !session.is_done() {
                            return Err(SyncError::Closed(reason));
                        }
                    }
                    Event::EgressRefused(doc) => {
                        tracing::error!(doc = %doc, "refused to name a document the peer may not read");
                    }
                    Event::RoundComplete => {}
                }
            }
            if session.is_closed() {
                return Ok(());
            }
            if mode == Mode::OneShot && initiator && session.is_done() {
                session.close("sync round complete");
                flush(&mut session, &tx);
                return Ok(());
            }
            let wake = session
                .poll_timeout()
                .map(|at| Duration::from_millis(at.saturating_sub(now_ms(clock))))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                msg = incoming.recv() => match msg {
                    Some(Ok(m)) => {
                        let mut node = lock(&engine.node);
                        let mut host = EngineHost { engine: &engine, node: &mut node };
                        session.handle(&mut host, m, now_ms(clock))?;
                    }
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                },
                doc = changes.recv(), if mode == Mode::Stay => {
                    let mut node = lock(&engine.node);
                    let mut host = EngineHost { engine: &engine, node: &mut node };
                    match doc {
                        Ok(Notice::Doc(doc)) => {
                            session.push(&mut host, &doc);
                            // A pool's audience decides who reads its members' documents.
                            if matches!(doc, DocId::Pool(_)) {
                                session.refresh(&mut host);
                            }
                        }
                        Ok(Notice::Trust) => session.trust_changed(&mut host),
                        Err(broadcast::error::RecvError::Lagged(_)) => session.refresh(&mut host),
                        Err(broadcast::error::RecvError::Closed) => return Ok(()),
                    }
                }
                _ = tokio::time::sleep(wake) => {
                    let mut node = lock(&engine.node);
                    let mut host = EngineHost { engine: &engine, node: &mut node };
                    session.handle_timeout(&mut host, now_ms(clock));
                }
                _ = shutdown.changed() => {
                    session.close("node shutting down");
                    flush(&mut session, &tx);
                    return Ok(());
                }
                _ = &mut deadline, if mode == Mode::OneShot => {
                    return Err(SyncError::Timeout(engine.config.round_timeout));
                }
            }
            flush(&mut session, &tx);
        }
    }
    .await;
    if let Err(e) = &outcome {
        // Tell the peer why, then close: a peer that breaks the protocol is disconnected with a
        // reason, and this node goes on serving the others.
        tracing::warn!(cause = %e, "closing connection");
        session.close(&e.to_string());
        flush(&mut session, &tx);
    }
    lock(&engine.revealed)
        .entry(peer)
        .or_default()
        .extend(session.revealed().iter().cloned());
    let mut report = session.report().clone();
    drop(tx);
    reader.abort();
    report.bytes_received = received.load(std::sync::atomic::Ordering::Relaxed);
    report.bytes_sent = writer.await.unwrap_or(0);
    report.millis = started.elapsed().as_millis() as u64;
    {
        let node = lock(&engine.node);
        let err = outcome.as_ref().err().map(|e| e.to_string());
        node.store.peer_outcome(&peer, now_secs(), err.as_deref())?;
    }
    match outcome {
        Ok(()) => {
            if initiator && mode == Mode::OneShot {
                conn.close(0u32.into(), b"done");
            }
            Ok(report)
        }
        Err(e) => {
            conn.close(1u32.into(), e.to_string().as_bytes());
            Err(e)
        }
    }
}

fn resolve(addr: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs().ok()?.next()
}

/// Dials one peer and runs one round with it.
pub async fn sync_with(
    engine: &Arc<Engine>,
    endpoint: &quinn::Endpoint,
    peer: &Peer,
) -> Result<SyncReport, SyncError> {
    let (_stop, never) = watch::channel(false);
    dial(
        engine.clone(),
        endpoint.clone(),
        peer.clone(),
        Mode::OneShot,
        never,
    )
    .await
}

/// One round with every known peer (or just `only`), for `poa-node sync`.
pub async fn sync_round(
    engine: &Arc<Engine>,
    only: Option<NodeId>,
) -> Result<Vec<(Peer, Result<SyncReport, SyncError>)>, SyncError> {
    let peers: Vec<Peer> = {
        let node = lock(&engine.node);
        node.store.peers()?
    };
    let endpoint = transport::endpoint(
        SocketAddr::from(([0, 0, 0, 0], 0)),
        &engine.key,
        engine.pins.clone(),
    )?;
    let mut out = Vec::new();
    for peer in peers {
        if only.is_some_and(|id| id != peer.node_id) || peer.addr.is_none() {
            continue;
        }
        let r = sync_with(engine, &endpoint, &peer).await;
        out.push((peer, r));
    }
    endpoint.close(0u32.into(), b"done");
    endpoint.wait_idle().await;
    Ok(out)
}

/// A running node: its engine, its address, and the handle that stops it.
#[derive(Debug)]
pub struct Server {
    engine: Arc<Engine>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops gracefully: says goodbye to every peer and waits for the tasks to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts serving: listens on `listen`, keeps connections to every peer with an address,
/// pushes changes, repairs periodically, and picks up writes made by other processes.
pub async fn serve(engine: Arc<Engine>, listen: SocketAddr) -> Result<Server, SyncError> {
    let endpoint = transport::endpoint(listen, &engine.key, engine.pins.clone())?;
    let addr = endpoint
        .local_addr()
        .map_err(|source| TransportError::Bind {
            addr: listen,
            source,
        })?;
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run_server(engine.clone(), endpoint, stop_rx));
    tracing::info!(%addr, node = %engine.id(), "serving");
    Ok(Server {
        engine,
        addr,
        stop,
        task,
    })
}

async fn run_server(
    engine: Arc<Engine>,
    endpoint: quinn::Endpoint,
    mut stop: watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    let mut backoff: HashMap<NodeId, (Instant, Duration)> = HashMap::new();
    let mut poll = tokio::time::interval(engine.config.poll);
    let mut last_version = None;
    let mut lapse_checked: Option<Instant> = None;
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let engine = engine.clone();
                let stop = stop.clone();
                tasks.spawn(async move {
                    match incoming.await {
                        Ok(conn) => {
                            if let Err(e) = drive(engine, conn, false, Mode::Stay, stop).await {
                                tracing::info!(cause = %e, "connection ended");
                            }
                        }
                        Err(e) => tracing::info!(cause = %e, "handshake refused"),
                    }
                });
            }
            _ = poll.tick() => {
                // Writes by other processes (the CLI while serving), and pins added since.
                let version = {
                    let node = lock(&engine.node);
                    node.store.data_version().ok()
                };
                if version != last_version {
                    last_version = version;
                    let node = lock(&engine.node);
                    let _ = engine.notify_changes(&node);
                    let _ = engine.refresh_pins_with(&node);
                }
                // Expired delegations are revoked by the key holder, once a minute at most.
                if lapse_checked.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    lapse_checked = Some(Instant::now());
                    match engine.with_node(|n| n.lapse_expired()) {
                        Ok(lapsed) if !lapsed.is_empty() => {
                            tracing::info!(count = lapsed.len(), "revoked expired delegations");
                        }
                        Err(e) => tracing::warn!(cause = %e, "could not revoke expired delegations"),
                        _ => {}
                    }
                }
                let peers = {
                    let node = lock(&engine.node);
                    node.store.peers().unwrap_or_default()
                };
                let connected = engine.connected();
                for peer in peers {
                    if peer.addr.is_none() || connected.contains(&peer.node_id) {
                        continue;
                    }
                    let now = Instant::now();
                    let (next, wait) = backoff.get(&peer.node_id).copied().unwrap_or((now, Duration::from_millis(500)));
                    if now < next {
                        continue;
                    }
                    backoff.insert(peer.node_id, (now + wait, (wait * 2).min(Duration::from_secs(60))));
                    let engine = engine.clone();
                    let endpoint = endpoint.clone();
                    let stop = stop.clone();
                    tasks.spawn(async move {
                        if let Err(e) = dial(engine, endpoint, peer.clone(), Mode::Stay, stop).await {
                            tracing::info!(peer = %peer.name, cause = %e, "could not sync with peer");
                        }
                    });
                }
                // A live connection resets its peer's backoff.
                for id in &connected {
                    backoff.remove(id);
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    // Every connection task saw the stop too and says goodbye; let them finish before the
    // endpoint closes under them.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    endpoint.close(0u32.into(), b"shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
}

async fn dial(
    engine: Arc<Engine>,
    endpoint: quinn::Endpoint,
    peer: Peer,
    mode: Mode,
    stop: watch::Receiver<bool>,
) -> Result<SyncReport, SyncError> {
    let result = async {
        let addr_text = peer
            .addr
            .clone()
            .ok_or_else(|| SyncError::Protocol(format!("peer {} has no address", peer.name)))?;
        let addr = resolve(&addr_text)
            .ok_or_else(|| SyncError::Protocol(format!("cannot resolve {addr_text}")))?;
        let cfg = transport::client_config(&engine.key, peer.node_id)?;
        let conn = endpoint.connect_with(cfg, addr, "poa-node")?.await?;
        drive(engine.clone(), conn, true, mode, stop).await
    }
    .await;
    if let Err(e) = &result {
        let node = lock(&engine.node);
        let _ = node
            .store
            .peer_outcome(&peer.node_id, now_secs(), Some(&e.to_string()));
    }
    result
}
