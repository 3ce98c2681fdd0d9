//! The sync engine: drives the wire protocol over QUIC connections to pinned peers.
//!
//! One bidirectional stream per connection carries every message, in order:
//!
//! 1. each side sends `Hello` and a `Summary` (a digest of the documents it offers the other and
//!    their heads). A side whose expectation matches answers `SummaryOk`: peers already in sync
//!    learn it in one round trip and a few dozen bytes, however many documents they share;
//! 2. otherwise it asks for the list (`ListRequest` → `Offers`) and runs an Automerge sync
//!    session for each document whose heads differ. Each `Sync` envelope carries the signatures
//!    of the changes inside; every change passes the gate before it is applied. Each `Sync` is
//!    answered by a `Sync` or a `SyncIdle`, so both sides know when a session is over;
//! 3. while serving, a change accepted here (written locally or received from any peer) is pushed
//!    at once to every connected peer allowed to read it, and a periodic `Summary` repairs what
//!    pushes missed. Relaying falls out: every document is synced with every peer that may read it.
//!
//! A node never names a document to a peer outside its share list: every outgoing message passes
//! through [`Conn::send`], which refuses and records it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use poa_protocol::automerge::sync::{self, SyncDoc};
use poa_protocol::automerge::{Automerge, ChangeHash};
use poa_protocol::doc::{DocId, document_json, readers};
use poa_protocol::pool::PoolData;
use poa_protocol::rules::{Incoming, may_read};
use poa_protocol::sign::NodeKey;
use poa_protocol::wire::{
    self, Claim, DocHeads, Hello, Message, PROTOCOL_VERSION, SyncEnvelope, WireError,
};
use poa_protocol::{NodeId, Participant, StateCode};
use tokio::sync::{broadcast, mpsc, watch};

use crate::node::{Node, NodeError, now_secs};
use crate::store::{Learned, Peer, Source, StoreError, StoredDoc};
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
    /// The peer broke the protocol.
    #[error("peer broke the protocol: {0}")]
    Protocol(String),
    /// The peer said goodbye with a reason before the round completed.
    #[error("peer closed: {0}")]
    Closed(String),
    /// Nothing happened for too long.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl From<WireError> for SyncError {
    fn from(e: WireError) -> Self {
        SyncError::Protocol(e.to_string())
    }
}

/// What one connection exchanged.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SyncReport {
    /// The peer.
    pub peer: String,
    /// Changes accepted per document.
    pub accepted: BTreeMap<String, usize>,
    /// Changes rejected per document, with the first reason.
    pub rejected: BTreeMap<String, (usize, String)>,
    /// Changes sent per document.
    pub sent: BTreeMap<String, usize>,
    /// Bytes written on the stream.
    pub bytes_sent: u64,
    /// Bytes read from the stream.
    pub bytes_received: u64,
    /// Messages written.
    pub messages_sent: u64,
    /// Messages read.
    pub messages_received: u64,
    /// Times this side waited for the other: round trips, for the side that dialled.
    pub round_trips: u64,
    /// Milliseconds from connection to the end of the round.
    pub millis: u64,
}

/// Settings of the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Seconds between anti-entropy summaries on an idle connection.
    pub anti_entropy: Duration,
    /// How often to look for writes made by other processes (the CLI while serving).
    pub poll: Duration,
    /// Longest wait for a peer during a one-shot round.
    pub round_timeout: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            anti_entropy: Duration::from_secs(60),
            poll: Duration::from_millis(250),
            round_timeout: Duration::from_secs(120),
        }
    }
}

/// The engine: a node, shared by every connection task.
pub struct Engine {
    node: Mutex<Node>,
    key: NodeKey,
    hello: Hello,
    own_state: Option<StateCode>,
    pins: Pins,
    changed: broadcast::Sender<DocId>,
    heads: Mutex<HashMap<DocId, Vec<ChangeHash>>>,
    revealed: Mutex<HashMap<NodeId, BTreeSet<DocId>>>,
    /// Live connections per peer (both sides may dial, and a one-shot round may run beside
    /// a served connection).
    connected: Mutex<HashMap<NodeId, usize>>,
    /// Changes received before their dependencies, by document, until those arrive.
    parked: Mutex<HashMap<DocId, Vec<(NodeId, Incoming)>>>,
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
            state_key: None,
        };
        let own_state = node.home.config.participant.state();
        let heads = node.store.all_heads()?.into_iter().collect();
        let (changed, _) = broadcast::channel(1024);
        let engine = Engine {
            node: Mutex::new(node),
            key,
            hello,
            own_state,
            pins: Pins::default(),
            changed,
            heads: Mutex::new(heads),
            revealed: Mutex::new(HashMap::new()),
            connected: Mutex::new(HashMap::new()),
            parked: Mutex::new(HashMap::new()),
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

    /// Parks changes that wait for dependencies, keeping at most [`MAX_PARKED`] per document and
    /// [`MAX_PARKED_TOTAL`] in all (the newest): peers cannot make this node hold more. What is
    /// let go comes again on a later connection, whose sync session starts afresh.
    fn park(&self, doc: &DocId, from: NodeId, changes: Vec<Incoming>) {
        if changes.is_empty() {
            return;
        }
        let mut parked = lock(&self.parked);
        let elsewhere: usize = parked
            .iter()
            .filter(|(d, _)| *d != doc)
            .map(|(_, l)| l.len())
            .sum();
        let list = parked.entry(doc.clone()).or_default();
        let new: HashSet<ChangeHash> = changes.iter().map(|c| c.change.hash()).collect();
        list.retain(|(_, p)| !new.contains(&p.change.hash()));
        list.extend(changes.into_iter().map(|c| (from, c)));
        let room = MAX_PARKED.min(MAX_PARKED_TOTAL.saturating_sub(elsewhere));
        if list.len() > room {
            let excess = list.len() - room;
            tracing::warn!(doc = %doc, dropped = excess, "too many changes waiting for dependencies");
            list.drain(..excess);
        }
    }

    fn unpark(&self, doc: &DocId) -> Vec<(NodeId, Incoming)> {
        lock(&self.parked).remove(doc).unwrap_or_default()
    }

    /// How many changes wait for dependencies, over all documents.
    pub fn parked(&self) -> usize {
        lock(&self.parked).values().map(Vec::len).sum()
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

    /// Broadcasts every document whose heads moved since last looked at.
    fn notify_changes(&self, node: &Node) -> Result<(), StoreError> {
        let now = node.store.all_heads()?;
        let mut known = lock(&self.heads);
        for (doc, heads) in now {
            if known.get(&doc) != Some(&heads) {
                known.insert(doc.clone(), heads);
                let _ = self.changed.send(doc);
            }
        }
        Ok(())
    }

    fn note_changed(&self, doc: &DocId, heads: Vec<ChangeHash>) {
        lock(&self.heads).insert(doc.clone(), heads);
        let _ = self.changed.send(doc.clone());
    }

    fn peer_row(node: &Node, peer: &NodeId) -> Result<Option<Peer>, StoreError> {
        Ok(node.store.peers()?.into_iter().find(|p| p.node_id == *peer))
    }

    fn peer_state(node: &Node, peer: &NodeId) -> Result<Option<StateCode>, StoreError> {
        Ok(node.store.peer_state(peer)?.and_then(|s| s.parse().ok()))
    }

    fn can_read(&self, node: &Node, peer: &NodeId, doc: &DocId) -> Result<bool, StoreError> {
        let peer_state = Self::peer_state(node, peer)?;
        // A draft never leaves its own State's nodes, and only this State's nodes hold one.
        if doc.is_draft() && doc.state() != self.own_state {
            return Ok(false);
        }
        if let DocId::Pool(_) = doc
            && Self::pool(node, doc)?.is_some_and(|p| p.may_read(peer, peer_state))
        {
            return Ok(true);
        }
        let readers = node.store.with_doc(doc, readers)?.unwrap_or_default();
        if may_read(doc, &readers, peer, peer_state) {
            return Ok(true);
        }
        // A State shares its published document with a pool it is a member of: the pool's
        // audience reads it for as long as the State stays a member.
        for r in readers.iter().filter(|r| r.starts_with("pool/")) {
            if let (Ok(pool_id), Some(state)) = (r.parse::<DocId>(), doc.state())
                && let Some(pool) = Self::pool(node, &pool_id)?
                && pool.is_member(state)
                && pool.audience().contains(peer)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn pool(node: &Node, doc: &DocId) -> Result<Option<PoolData>, StoreError> {
        node.store
            .with_doc(doc, |d| PoolData::from_json(&document_json(d, None)))
    }

    /// The documents this node offers `peer`, with their heads.
    fn offered(
        &self,
        node: &Node,
        peer: &NodeId,
    ) -> Result<Vec<(DocId, Vec<ChangeHash>)>, StoreError> {
        let mut out = Vec::new();
        for (doc, heads) in node.store.all_heads()? {
            if self.can_read(node, peer, &doc)? {
                out.push((doc, heads));
            }
        }
        Ok(out)
    }
}

/// The most changes a document may have waiting for their dependencies.
pub const MAX_PARKED: usize = 10_000;

/// The most changes that may wait for their dependencies, over all documents: peers cannot make
/// a node hold more in memory, whatever documents they name.
pub const MAX_PARKED_TOTAL: usize = 50_000;

/// Which side opened the connection, and whether it runs one round or stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Dialled for `poa-node sync`: one round, then goodbye.
    OneShot,
    /// Serving: stay connected, push changes, repair periodically.
    Stay,
}

/// The state of one connection.
struct Conn {
    peer: NodeId,
    out: mpsc::UnboundedSender<Message>,
    hello: Option<Hello>,
    states: HashMap<DocId, sync::State>,
    inflight: HashSet<DocId>,
    last_sent_root: Option<[u8; 32]>,
    acked_root: Option<[u8; 32]>,
    peer_root_done: bool,
    listing: Option<[u8; 32]>,
    listing_answered: bool,
    processed: HashSet<[u8; 32]>,
    dirty: bool,
    report: SyncReport,
    awaiting: bool,
    named_by_peer: HashSet<DocId>,
    closing: Option<String>,
}

impl Conn {
    fn new(peer: NodeId, out: mpsc::UnboundedSender<Message>) -> Conn {
        Conn {
            peer,
            out,
            hello: None,
            states: HashMap::new(),
            inflight: HashSet::new(),
            last_sent_root: None,
            acked_root: None,
            peer_root_done: false,
            listing: None,
            listing_answered: false,
            processed: HashSet::new(),
            dirty: true,
            report: SyncReport {
                peer: peer.to_string(),
                ..SyncReport::default()
            },
            awaiting: false,
            named_by_peer: HashSet::new(),
            closing: None,
        }
    }

    /// Sends a message, refusing (and logging) any that would name a document the peer may not
    /// read. Every outgoing message passes here.
    fn send(&mut self, engine: &Engine, node: &Node, msg: Message) -> Result<(), SyncError> {
        let docs: Vec<DocId> = msg.docs().into_iter().cloned().collect();
        for doc in &docs {
            // Naming back a document the peer named first reveals nothing; content is gated
            // where sync messages are generated.
            if !self.named_by_peer.contains(doc) && !engine.can_read(node, &self.peer, doc)? {
                tracing::error!(peer = %self.peer.short(), doc = %doc, kind = msg.kind(), "refused to send a document the peer may not read");
                return Ok(());
            }
        }
        if !docs.is_empty() {
            lock(&engine.revealed)
                .entry(self.peer)
                .or_default()
                .extend(docs);
        }
        self.sent(&msg);
        let _ = self.out.send(msg);
        Ok(())
    }

    /// Counts a message going out. Messages that ask for an answer start a wait: the next
    /// message received ends it, and counts as one round trip.
    fn sent(&mut self, msg: &Message) {
        self.report.messages_sent += 1;
        if matches!(
            msg,
            Message::Hello(_) | Message::Summary { .. } | Message::ListRequest | Message::Sync(_)
        ) {
            self.awaiting = true;
        }
    }

    fn done(&self) -> bool {
        self.hello.is_some()
            && self.last_sent_root.is_some()
            && self.acked_root == self.last_sent_root
            && self.peer_root_done
            && self.inflight.is_empty()
            && self.listing.is_none()
    }

    fn state_for(&mut self, node: &Node, doc: &DocId) -> Result<&mut sync::State, StoreError> {
        if !self.states.contains_key(doc) {
            let state = node
                .store
                .sync_state(&self.peer, doc)?
                .and_then(|b| sync::State::decode(&b).ok())
                .unwrap_or_default();
            self.states.insert(doc.clone(), state);
        }
        Ok(self.states.entry(doc.clone()).or_default())
    }

    /// Generates the next sync message for `doc`, if there is anything to say, wrapped with the
    /// signatures of the changes it carries.
    fn generate(
        &mut self,
        node: &Node,
        doc: &DocId,
        am: Option<&Automerge>,
    ) -> Result<Option<SyncEnvelope>, SyncError> {
        let peer = self.peer;
        let state = self.state_for(node, doc)?;
        let msg = match am {
            Some(am) => am.generate_sync_message(state),
            None => node
                .store
                .with_doc(doc, |am| am.generate_sync_message(state))?
                .unwrap_or_else(|| Automerge::new().generate_sync_message(state)),
        };
        let Some(msg) = msg else {
            return Ok(None);
        };
        let encoded_state = state.encode();
        node.store.set_sync_state(&peer, doc, &encoded_state)?;
        let changes = wire::message_changes(&msg)?;
        let signatures = if changes.is_empty() {
            Vec::new()
        } else {
            let sigs = node.store.signatures(doc)?;
            changes
                .iter()
                .map(|c| sigs.get(&c.hash()).map(|s| s.to_vec()).unwrap_or_default())
                .collect()
        };
        if !changes.is_empty() {
            *self.report.sent.entry(doc.to_string()).or_default() += changes.len();
            node.store.audit_event(
                now_secs(),
                "sent",
                Some(doc),
                Some(&peer),
                &format!("{} change(s)", changes.len()),
            )?;
        }
        Ok(Some(SyncEnvelope {
            doc: doc.clone(),
            message: msg.encode(),
            signatures,
        }))
    }

    /// Starts (or continues) a session for `doc` if there is anything to send. A node that holds
    /// nothing of a document the peer offered starts from an empty history to take the peer's
    /// (a relay's first copy); otherwise only a peer that may read the document gets a session.
    fn push(&mut self, engine: &Engine, node: &Node, doc: &DocId) -> Result<(), SyncError> {
        if self.inflight.contains(doc) {
            return Ok(());
        }
        let holds_nothing = node.store.heads(doc)?.is_none();
        if !holds_nothing && !engine.can_read(node, &self.peer, doc)? {
            return Ok(());
        }
        if let Some(env) = self.generate(node, doc, None)? {
            self.inflight.insert(doc.clone());
            self.send(engine, node, Message::Sync(env))?;
        }
        Ok(())
    }

    fn handle(&mut self, engine: &Engine, msg: Message) -> Result<(), SyncError> {
        self.report.messages_received += 1;
        if self.awaiting {
            self.report.round_trips += 1;
            self.awaiting = false;
        }
        if self.hello.is_none() && !matches!(msg, Message::Hello(_) | Message::Goodbye { .. }) {
            return Err(SyncError::Protocol(format!("{} before hello", msg.kind())));
        }
        self.dispatch(engine, msg)?;
        self.after(engine)
    }

    fn dispatch(&mut self, engine: &Engine, msg: Message) -> Result<(), SyncError> {
        let node = lock(&engine.node);
        match msg {
            Message::Hello(h) => {
                if h.version != PROTOCOL_VERSION {
                    return Err(WireError::Version(h.version).into());
                }
                if h.node != self.peer {
                    return Err(SyncError::Protocol(format!(
                        "hello names node {} but TLS proved {}",
                        h.node, self.peer
                    )));
                }
                if self.hello.is_some() {
                    return Err(SyncError::Protocol("second hello".into()));
                }
                self.check_claims(&node, &h)?;
                self.hello = Some(h);
            }
            Message::Summary { root, .. } => {
                let mut expected: Vec<(DocId, Vec<ChangeHash>)> = Vec::new();
                for d in node.store.peer_offers(&self.peer)? {
                    let heads = node.store.heads(&d)?.unwrap_or_default();
                    expected.push((d, heads));
                }
                let mine = wire::summary_root(expected.iter().map(|(d, h)| (d, h.as_slice())));
                if mine == root || self.processed.contains(&root) {
                    self.peer_root_done = true;
                    self.send(engine, &node, Message::SummaryOk { root })?;
                } else {
                    self.peer_root_done = false;
                    self.listing = Some(root);
                    self.listing_answered = false;
                    self.send(engine, &node, Message::ListRequest)?;
                }
            }
            Message::SummaryOk { root } => {
                if Some(root) == self.last_sent_root {
                    self.acked_root = Some(root);
                }
            }
            Message::ListRequest => {
                let docs = engine
                    .offered(&node, &self.peer)?
                    .into_iter()
                    .map(|(doc, heads)| DocHeads {
                        doc,
                        heads: heads.iter().map(|h| h.0).collect(),
                    })
                    .collect();
                self.send(engine, &node, Message::Offers { docs })?;
            }
            Message::Offers { docs } => {
                self.named_by_peer
                    .extend(docs.iter().map(|d| d.doc.clone()));
                drop(node);
                let mut node = lock(&engine.node);
                let ids: Vec<DocId> = docs.iter().map(|d| d.doc.clone()).collect();
                node.store.set_peer_offers(&self.peer, &ids)?;
                self.listing_answered = true;
                for d in docs {
                    let theirs: Vec<ChangeHash> = d.heads.iter().map(|h| ChangeHash(*h)).collect();
                    let mut ours = node.store.heads(&d.doc)?.unwrap_or_default();
                    let mut theirs_sorted = theirs.clone();
                    ours.sort();
                    theirs_sorted.sort();
                    if ours != theirs_sorted {
                        self.push(engine, &node, &d.doc)?;
                    }
                }
            }
            Message::Sync(env) => {
                drop(node);
                self.on_sync(engine, env)?;
            }
            Message::SyncIdle { doc } => {
                self.inflight.remove(&doc);
                self.push(engine, &node, &doc)?;
            }
            Message::Goodbye { reason } => {
                self.closing = Some(reason);
            }
            other => {
                return Err(SyncError::Protocol(format!(
                    "unexpected {} message",
                    other.kind()
                )));
            }
        }
        Ok(())
    }

    /// Checks what a peer's hello claims against what this node knows, and learns a State's
    /// key from the first pinned node of that State. A second, different key claiming the same
    /// State is refused and reported.
    fn check_claims(&self, node: &Node, h: &Hello) -> Result<(), SyncError> {
        let now = now_secs();
        let row = Engine::peer_row(node, &self.peer)?;
        let pinned_state: Option<StateCode> = row
            .as_ref()
            .and_then(|p| p.state.as_ref())
            .and_then(|s| s.parse().ok());
        let name = row.map(|p| p.name).unwrap_or_else(|| self.peer.short());
        let claimed = match &h.claims {
            Claim::State(s) => Some(*s),
            Claim::Body(..) => None,
        };
        if let Some(pinned) = pinned_state
            && claimed != Some(pinned)
        {
            return Err(SyncError::Protocol(format!(
                "pinned as a node of {pinned}, but it says it acts for {}",
                Participant::from(&h.claims)
            )));
        }
        let (Some(state), Some(key)) = (claimed, h.state_key) else {
            return Ok(());
        };
        let learned = if pinned_state == Some(state) {
            node.store.learn_state_key(
                &state,
                &key,
                &format!("first hello of pinned {state} node {name}"),
                now,
            )?
        } else {
            match node.store.trust().state_key(&state) {
                Some(k) if *k != key => Learned::Conflict {
                    trusted: *k,
                    source: "already trusted".into(),
                },
                _ => Learned::Known,
            }
        };
        match learned {
            Learned::New => {
                node.store.audit_event(
                    now,
                    "trust",
                    None,
                    Some(&self.peer),
                    &format!("learnt {state}'s State key {key} from pinned node {name}"),
                )?;
                Ok(())
            }
            Learned::Known => Ok(()),
            Learned::Conflict { trusted, source } => {
                let why = format!(
                    "node {} claims to act for {state} under State key {key}, but {state}'s State key is {trusted} ({source}); refusing it",
                    self.peer
                );
                tracing::error!(peer = %self.peer.short(), "{why}");
                node.store
                    .audit_event(now, "conflict", None, Some(&self.peer), &why)?;
                Err(SyncError::Protocol(why))
            }
        }
    }

    /// Learns a State's key from the first copy of its document, when this node pinned none of
    /// its nodes (a relay's or the Secretariat's case): the key every grant in the copy names,
    /// if they name exactly one.
    fn learn_from_document(
        &self,
        node: &Node,
        doc: &DocId,
        changes: &[poa_protocol::automerge::Change],
    ) -> Result<(), SyncError> {
        let Some(state) = doc.state() else {
            return Ok(());
        };
        if node.store.trust().state_key(&state).is_some() {
            return Ok(());
        }
        let keys = poa_protocol::authority::grant_keys(changes);
        let now = now_secs();
        match keys.as_slice() {
            [] => {}
            [key] => {
                node.store.learn_state_key(
                    &state,
                    key,
                    &format!("first copy of {doc}, from node {}", self.peer.short()),
                    now,
                )?;
                node.store.audit_event(
                    now,
                    "trust",
                    Some(doc),
                    Some(&self.peer),
                    &format!("learnt {state}'s State key {key} from the first copy of {doc}"),
                )?;
            }
            many => {
                let why = format!(
                    "the first copy of {doc} names {} different State keys for {state}; trusting none: pin a node of {state} with `peer add … --state {state}`",
                    many.len()
                );
                tracing::error!(peer = %self.peer.short(), "{why}");
                node.store
                    .audit_event(now, "conflict", Some(doc), Some(&self.peer), &why)?;
            }
        }
        Ok(())
    }

    fn on_sync(&mut self, engine: &Engine, env: SyncEnvelope) -> Result<(), SyncError> {
        let doc = env.doc.clone();
        self.named_by_peer.insert(doc.clone());
        {
            // The peer syncs this document with us, so it will likely offer it to us from now
            // on: expect it in its next summary. A wrong guess costs one list exchange.
            let node = lock(&engine.node);
            node.store.add_peer_offer(&self.peer, &doc)?;
        }
        let msg = sync::Message::decode(&env.message)
            .map_err(|e| SyncError::Protocol(format!("sync message for {doc}: {e}")))?;
        let changes = wire::message_changes(&msg)?;
        // Signatures pair with the changes by position; a missing one leaves the change
        // unsigned, and the gate refuses it.
        let incoming: Vec<Incoming> = changes
            .into_iter()
            .enumerate()
            .map(|(i, change)| Incoming {
                signature: env
                    .signatures
                    .get(i)
                    .and_then(|s| wire::signature_from_wire(s)),
                change,
            })
            .collect();
        let mut node = lock(&engine.node);
        let now = now_secs();
        let peer = self.peer;
        if !incoming.is_empty() {
            let changes: Vec<_> = incoming.iter().map(|i| i.change.clone()).collect();
            self.learn_from_document(&node, &doc, &changes)?;
            node.store.audit_event(
                now,
                "received",
                Some(&doc),
                Some(&peer),
                &format!("{} change(s)", incoming.len()),
            )?;
        }
        // Changes that came before their dependencies (over a second connection to the same
        // peer, say) wait in memory, each with the peer that sent it, and are tried again when
        // more of the document arrives: dropping them would lose them, as the sender's sync
        // session counts them as sent. Batches are applied per sender, so the audit log and the
        // count of invalid changes name the peer that actually sent each change.
        let (outcomes, mut stored) = if incoming.is_empty() {
            let stored = node.store.load(&doc)?.unwrap_or(StoredDoc {
                doc: Automerge::new(),
                pending: 0,
            });
            (Vec::new(), stored)
        } else {
            let mut batches: Vec<(NodeId, Vec<Incoming>)> = vec![(peer, incoming)];
            for (from, change) in engine.unpark(&doc) {
                match batches.iter_mut().find(|(p, _)| *p == from) {
                    Some((_, b)) => b.push(change),
                    None => batches.push((from, vec![change])),
                }
            }
            node.store.transact(|tx| -> Result<_, StoreError> {
                let mut stored = tx.load(&doc)?.unwrap_or(StoredDoc {
                    doc: Automerge::new(),
                    pending: 0,
                });
                let mut outcomes = Vec::new();
                loop {
                    let mut progress = false;
                    let mut still = Vec::new();
                    for (from, batch) in batches {
                        let by_hash: HashMap<ChangeHash, Incoming> =
                            batch.iter().map(|i| (i.change.hash(), i.clone())).collect();
                        let applied =
                            tx.apply(&doc, &mut stored, batch, Source::Peer(from), now)?;
                        progress |= !applied.accepted.is_empty();
                        let waiting: Vec<Incoming> = applied
                            .waiting
                            .iter()
                            .filter_map(|h| by_hash.get(h).cloned())
                            .collect();
                        if !waiting.is_empty() {
                            still.push((from, waiting));
                        }
                        outcomes.push((from, applied));
                    }
                    batches = still;
                    if !progress || batches.is_empty() {
                        break;
                    }
                }
                for (from, waiting) in batches {
                    engine.park(&doc, from, waiting);
                }
                Ok((outcomes, stored))
            })?
        };
        let accepted: usize = outcomes.iter().map(|(_, a)| a.accepted.len()).sum();
        if accepted > 0 {
            *self.report.accepted.entry(doc.to_string()).or_default() += accepted;
            self.dirty = true;
            engine.note_changed(&doc, stored.doc.get_heads());
        }
        for (from, applied) in &outcomes {
            if let Some((_, first)) = applied.rejected.first() {
                if *from == peer {
                    let entry = self
                        .report
                        .rejected
                        .entry(doc.to_string())
                        .or_insert((0, first.to_string()));
                    entry.0 += applied.rejected.len();
                }
                node.store.add_invalid(from, applied.rejected.len())?;
                tracing::warn!(peer = %from.short(), doc = %doc, rejected = applied.rejected.len(), cause = %first, "rejected changes from peer");
            }
        }
        // Automerge still needs the message's heads and bloom filter; the changes were already
        // applied (or refused) through the gate above.
        let mut stripped = msg;
        stripped.changes = sync::ChunkList::empty();
        let state = self.state_for(&node, &doc)?;
        stored
            .doc
            .receive_sync_message(state, stripped)
            .map_err(|e| SyncError::Protocol(format!("sync message for {doc}: {e}")))?;
        let encoded = state.encode();
        node.store.set_sync_state(&peer, &doc, &encoded)?;
        drop(node);
        let node = lock(&engine.node);
        // Answer with content only a peer that may read the document. A node that holds
        // nothing of it may still answer (to ask for it): an empty history carries no changes.
        let holds_nothing = stored.doc.get_heads().is_empty();
        let reply = if holds_nothing || engine.can_read(&node, &peer, &doc)? {
            self.generate(&node, &doc, Some(&stored.doc))?
        } else {
            None
        };
        match reply {
            Some(env) => {
                self.inflight.insert(doc.clone());
                self.send(engine, &node, Message::Sync(env))?;
            }
            None => {
                self.inflight.remove(&doc);
                self.send(engine, &node, Message::SyncIdle { doc })?;
            }
        }
        Ok(())
    }

    /// Once no session is open: finish a listing, and tell the peer if what we offer changed.
    fn after(&mut self, engine: &Engine) -> Result<(), SyncError> {
        if !self.inflight.is_empty() {
            return Ok(());
        }
        let node = lock(&engine.node);
        if let Some(root) = self.listing
            && self.listing_answered
        {
            self.processed.insert(root);
            self.listing = None;
            self.peer_root_done = true;
            self.send(engine, &node, Message::SummaryOk { root })?;
        }
        if self.dirty || self.last_sent_root.is_none() {
            self.dirty = false;
            let offered = engine.offered(&node, &self.peer)?;
            let root = wire::summary_root(offered.iter().map(|(d, h)| (d, h.as_slice())));
            if Some(root) != self.last_sent_root {
                self.last_sent_root = Some(root);
                self.acked_root = None;
                self.send(
                    engine,
                    &node,
                    Message::Summary {
                        root,
                        docs: offered.len() as u32,
                    },
                )?;
            }
        }
        Ok(())
    }

    /// The periodic repair: restate what we offer, so the peer can catch what pushes missed.
    fn anti_entropy(&mut self, engine: &Engine) -> Result<(), SyncError> {
        if !self.inflight.is_empty() || self.hello.is_none() {
            return Ok(());
        }
        self.last_sent_root = None;
        self.dirty = true;
        self.after(engine)
    }
}

async fn read_message(
    recv: &mut quinn::RecvStream,
    bytes: &mut u64,
) -> Result<Option<Message>, SyncError> {
    let mut prefix = [0u8; 4];
    match recv.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(SyncError::Closed(e.to_string())),
    }
    let len = wire::frame_len(prefix)?;
    let mut payload = vec![0u8; len];
    recv.read_exact(&mut payload)
        .await
        .map_err(|e| SyncError::Protocol(format!("truncated frame: {e}")))?;
    *bytes += 4 + len as u64;
    Ok(Some(wire::decode_payload(&payload)?))
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
    let (mut send, mut recv) = if initiator {
        conn.open_bi().await?
    } else {
        conn.accept_bi().await?
    };
    *lock(&engine.connected).entry(peer).or_default() += 1;
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
    // Frames are read by their own task: `read_exact` is not cancel-safe, and the loop below
    // drops whichever futures did not win each `select!`.
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (in_tx, mut incoming) = mpsc::channel::<Result<Option<Message>, SyncError>>(16);
    let reader = {
        let received = received.clone();
        tokio::spawn(async move {
            loop {
                let mut bytes = 0;
                let msg = read_message(&mut recv, &mut bytes).await;
                received.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
                let end = !matches!(msg, Ok(Some(_)));
                if in_tx.send(msg).await.is_err() || end {
                    break;
                }
            }
        })
    };
    let mut c = Conn::new(peer, tx);
    let mut changes = engine.changed.subscribe();
    let mut tick = tokio::time::interval(engine.config.anti_entropy);
    tick.reset();
    let outcome: Result<(), SyncError> = async {
        {
            // Hello and the first summary leave together: peers already in sync need no more
            // than this one flight and its answer.
            let node = lock(&engine.node);
            let mut hello = engine.hello.clone();
            // The State key this node acts under, as far as it knows it now.
            hello.state_key = engine
                .own_state
                .and_then(|s| node.store.trust().state_key(&s).copied());
            c.send(&engine, &node, Message::Hello(hello))?;
        }
        c.after(&engine)?;
        let deadline = tokio::time::sleep(engine.config.round_timeout);
        tokio::pin!(deadline);
        loop {
            if mode == Mode::OneShot && c.done() {
                let node = lock(&engine.node);
                c.send(&engine, &node, Message::Goodbye { reason: "sync round complete".into() })?;
                return Ok(());
            }
            if let Some(reason) = c.closing.take() {
                tracing::debug!(reason, "peer said goodbye");
                return if mode == Mode::OneShot && initiator {
                    Err(SyncError::Closed(reason))
                } else {
                    Ok(())
                };
            }
            tokio::select! {
                msg = incoming.recv() => match msg.unwrap_or(Ok(None))? {
                    Some(m) => c.handle(&engine, m)?,
                    None => return Ok(()),
                },
                doc = changes.recv(), if mode == Mode::Stay => {
                    match doc {
                        Ok(doc) => {
                            let node = lock(&engine.node);
                            c.push(&engine, &node, &doc)?;
                            // A pool's audience decides who reads its members' documents: a
                            // change to it may change what this peer is offered.
                            if matches!(doc, DocId::Pool(_)) {
                                c.dirty = true;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            c.anti_entropy(&engine)?;
                        }
                        Err(broadcast::error::RecvError::Closed) => return Ok(()),
                    }
                    c.after(&engine)?;
                }
                _ = tick.tick(), if mode == Mode::Stay => c.anti_entropy(&engine)?,
                _ = shutdown.changed() => {
                    let node = lock(&engine.node);
                    c.send(&engine, &node, Message::Goodbye { reason: "node shutting down".into() })?;
                    return Ok(());
                }
                _ = &mut deadline, if mode == Mode::OneShot => {
                    return Err(SyncError::Timeout(engine.config.round_timeout));
                }
            }
        }
    }
    .await;
    if let Err(e) = &outcome {
        // Tell the peer why, then close: a peer that breaks the protocol is disconnected with a
        // reason, and this node goes on serving the others.
        tracing::warn!(cause = %e, "closing connection");
        let _ = c.out.send(Message::Goodbye {
            reason: e.to_string(),
        });
    }
    let Conn {
        out, mut report, ..
    } = c;
    drop(out);
    reader.abort();
    report.bytes_received = received.load(std::sync::atomic::Ordering::Relaxed);
    report.bytes_sent = writer.await.unwrap_or(0);
    report.millis = started.elapsed().as_millis() as u64;
    {
        let mut connected = lock(&engine.connected);
        if let Some(n) = connected.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                connected.remove(&peer);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use poa_protocol::automerge::{ReadDoc, transaction::Transactable};

    use super::*;
    use crate::home::{Home, InitOptions};

    /// `n` distinct changes (unsigned: parking does not look at signatures).
    fn changes(n: usize) -> Vec<Incoming> {
        let mut am = Automerge::new();
        (0..n)
            .map(|i| {
                let mut tx = am.transaction();
                tx.put(poa_protocol::automerge::ROOT, "k", i as i64)
                    .expect("a put on a fresh map");
                let hash = tx.commit().0.expect("a change");
                Incoming {
                    change: am.get_change_by_hash(&hash).expect("just made"),
                    signature: None,
                }
            })
            .collect()
    }

    #[test]
    fn parked_changes_are_bounded_per_document_and_in_all() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let home = Home::init(
            dir.path(),
            &InitOptions::body(
                "XRB".parse().expect("code"),
                poa_protocol::BodyKind::Regional,
                "test",
            ),
        )
        .expect("init");
        let engine = Engine::new(
            Node::from_home(home).expect("node"),
            EngineConfig::default(),
        )
        .expect("engine");
        let peer = NodeId([7; 32]);
        let all = changes(MAX_PARKED + 10);
        let doc = |i: usize| DocId::Pool(format!("p{i}"));
        engine.park(&doc(0), peer, all.clone());
        assert_eq!(engine.parked(), MAX_PARKED, "the oldest ten were let go");
        // Parking the same changes again from another peer replaces, never doubles.
        engine.park(&doc(0), NodeId([8; 32]), all[..100].to_vec());
        assert_eq!(engine.parked(), MAX_PARKED);
        for i in 1..MAX_PARKED_TOTAL / MAX_PARKED + 2 {
            engine.park(&doc(i), peer, all[..MAX_PARKED].to_vec());
        }
        assert_eq!(engine.parked(), MAX_PARKED_TOTAL);
        assert_eq!(engine.unpark(&doc(0)).len(), MAX_PARKED);
        assert!(engine.unpark(&doc(0)).is_empty());
    }
}
