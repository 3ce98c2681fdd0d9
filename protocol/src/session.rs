//! The sync session with one peer, as a state machine with no I/O (in the style of
//! quinn-proto): the caller feeds it messages and the time, and takes from it the messages to
//! send, events, and when it next wants to be woken. Storage sits behind [`Host`], which the
//! node implements over SQLite and the simulator over in-memory stores.
//!
//! One ordered stream carries every message of a connection:
//!
//! 1. each side sends `Hello` and a `Summary` (a digest of the documents it offers the other and
//!    their heads). A side whose expectation matches answers `SummaryOk`: peers already in sync
//!    learn it in one round trip, however many documents they share;
//! 2. otherwise it asks for the list (`ListRequest` → `Offers`) and syncs each document whose
//!    heads differ, or that it does not hold and would take from this peer. Each `Sync` carries
//!    the sender's heads, the heads it knows both hold, a Bloom filter of its changes since, the
//!    hashes it lacks, and changes the receiver lacks; each is answered by a `Sync` or a
//!    `SyncIdle` (a `Sync` says whether it is an answer: both sides may start on a document
//!    at once, and a side is done with it only when every `Sync` it sent is answered). When
//!    the documents of a listing are done, the side says `SummaryOk`;
//! 3. while connected, a document that changed here is pushed at once, and a periodic `Summary`
//!    repairs what pushes missed.
//!
//! **Egress and ingress follow the read rule.** Every message that names a document passes
//! [`Session`]'s one send path, which checks [`Host::may_read`]. Changes of a document are taken
//! only from a peer that may read it, judged on the document with the changes (see
//! [`Host::apply`]). A listed document this node does not hold, or holds but by its copy the
//! peer may not read, is asked for with one and the same message, and a `Sync` about a
//! document the peer may not read here (or that this node does not hold and did not ask for)
//! gets `SyncIdle`: neither tells the peer whether the node holds the document. An ask lets
//! the peer's answer name the document only while no copy is held here.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use automerge::ChangeHash;
use serde::Serialize;

use crate::change::SignedChange;
use crate::doc::DocId;
use crate::id::NodeId;
use crate::ledger::Ledger;
use crate::wire::{
    Bloom, DocHeads, DocSync, Hello, MAX_HEADS, MAX_NEED, MAX_VOUCHES, Message, PROTOCOL_VERSION,
    Vouch,
};

/// Which side this is and how long it stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One round, then goodbye (`poa-node sync`).
    OneShot,
    /// Stay connected: push changes, repair periodically.
    Stay,
}

/// Limits and periods of a session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Milliseconds between anti-entropy summaries on an idle connection.
    pub anti_entropy_ms: u64,
    /// Rejected changes one connection may bring before it is closed.
    pub max_rejected: usize,
    /// Messages one document's sync may take on one connection before it stops for now.
    pub max_doc_rounds: u32,
    /// Documents not held here that one listing may have this node ask for.
    pub max_asked: usize,
    /// Bytes of changes one sync message carries at most (the rest follow in later turns).
    pub batch_bytes: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            anti_entropy_ms: 60_000,
            max_rejected: 256,
            max_doc_rounds: 64,
            max_asked: 10_000,
            batch_bytes: 1 << 20,
        }
    }
}

/// What applying a peer's changes did.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// Changes newly held.
    pub accepted: usize,
    /// Changes refused, with the reason.
    pub rejected: Vec<String>,
    /// How many of those count against the peer (`Rejection::counts_against_peer`).
    pub counted: usize,
    /// Changes kept waiting for their dependencies.
    pub waiting: usize,
    /// Whether the peer may read the document (with the changes): if not, nothing was applied.
    pub allowed: bool,
    /// A bound the peer broke: the connection closes with this reason.
    pub fatal: Option<String>,
}

/// What the session needs from the node: its documents, what it knows of the peer, and the
/// gated, durable application of changes.
pub trait Host {
    /// Checks a peer's hello against what this node knows of it (pins, claimed keys).
    fn hello(&mut self, peer: &NodeId, hello: &Hello) -> Result<(), String>;
    /// The keys this node trusts first-hand, to tell the peer.
    fn vouches(&mut self) -> Vec<Vouch>;
    /// The peer vouches for keys: the host takes them only if its operator chose the peer as
    /// an introducer. Returns whether it learnt a key it did not trust before.
    fn introduced(&mut self, peer: &NodeId, keys: Vec<Vouch>) -> bool;
    /// The documents this node offers the peer, with their heads.
    fn offered(&mut self, peer: &NodeId) -> Vec<(DocId, Vec<ChangeHash>)>;
    /// The documents (held here) the peer offered at its last listing, and a digest of the
    /// ones it offered that are not held here.
    fn expected(&mut self, peer: &NodeId) -> (Vec<DocId>, ([u8; 32], u32));
    /// Remembers the peer's listing.
    fn set_expected(&mut self, peer: &NodeId, held: &[DocId], unheld: ([u8; 32], u32));
    /// Whether the peer may read the document as this node holds it.
    fn may_read(&mut self, peer: &NodeId, doc: &DocId) -> bool;
    /// Whether this node would take a document it does not hold from this peer.
    fn takeable(&mut self, peer: &NodeId, doc: &DocId) -> bool;
    /// Runs `f` on a held document's settled ledger; `None` if not held.
    fn with_ledger<R>(&mut self, doc: &DocId, f: impl FnOnce(&Ledger) -> R) -> Option<R>;
    /// The heads this node knows it and the peer both hold.
    fn shared(&mut self, peer: &NodeId, doc: &DocId) -> Vec<ChangeHash>;
    /// Remembers them (only for held documents).
    fn set_shared(&mut self, peer: &NodeId, doc: &DocId, shared: &[ChangeHash]);
    /// What changes waiting here for their dependencies lack of `doc`: the dependencies that
    /// are neither held nor waiting themselves. A session asks its peer for them, since a
    /// change the peer's Bloom filter claimed by chance is sent by no rule but a `need`.
    /// What the changes `peer` sent lack comes first, then an equal share of what each other
    /// sender's lack ([`fair_share`]): no sender crowds out what another is asked for.
    fn lacking(&mut self, peer: &NodeId, doc: &DocId) -> Vec<ChangeHash>;
    /// Passes the peer's changes through the gate and stores what holds up, in one
    /// transaction, if the peer may read the document with them (or was asked for it).
    fn apply(
        &mut self,
        peer: &NodeId,
        doc: &DocId,
        changes: Vec<SignedChange>,
        asked: bool,
    ) -> Applied;
}

/// What happened, for the node to act on (push to other peers, log, count).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Changes were accepted into a document.
    Accepted {
        /// The document.
        doc: DocId,
        /// How many.
        count: usize,
    },
    /// Changes were refused.
    Rejected {
        /// The document.
        doc: DocId,
        /// How many.
        count: usize,
        /// The first reason.
        reason: String,
    },
    /// The peer said goodbye.
    Closed(String),
    /// A one-shot round is complete.
    RoundComplete,
    /// This node refused to send a message naming a document the peer may not read (a bug
    /// elsewhere if it ever happens).
    EgressRefused(DocId),
}

/// Why a session ends with an error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The peer broke the protocol.
    #[error("peer broke the protocol: {0}")]
    Protocol(String),
    /// The peer is not who this node accepts.
    #[error("{0}")]
    Refused(String),
}

/// What one connection exchanged.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncReport {
    /// The peer.
    pub peer: String,
    /// Changes accepted per document.
    pub accepted: BTreeMap<String, usize>,
    /// Changes rejected per document, with the first reason.
    pub rejected: BTreeMap<String, (usize, String)>,
    /// Changes sent per document.
    pub sent: BTreeMap<String, usize>,
    /// Bytes written on the stream (the I/O layer fills it in).
    pub bytes_sent: u64,
    /// Bytes read from the stream (the I/O layer fills it in).
    pub bytes_received: u64,
    /// Messages written.
    pub messages_sent: u64,
    /// Messages read.
    pub messages_received: u64,
    /// Times this side waited for the other: round trips, for the side that dialled.
    pub round_trips: u64,
    /// Milliseconds from connection to the end of the round (the I/O layer fills it in).
    pub millis: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    AwaitHello,
    Open,
    Closed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Theirs {
    /// No summary from the peer yet.
    Waiting,
    /// Its last summary is answered.
    Answered,
    /// Its summary did not match: listing requested, and once the offers arrive, the documents
    /// they started are being synced.
    Listing { root: [u8; 32], offers: bool },
}

type HeadsAndNeed = (Vec<[u8; 32]>, Vec<[u8; 32]>);

impl DocState {
    fn awaiting(&self) -> bool {
        self.pending > 0
    }

    /// A `Sync` about the document goes to the peer at `now`.
    fn sending(&mut self, now: u64) {
        self.pending = self.pending.saturating_add(1);
        self.since = now;
    }
}

#[derive(Debug, Default)]
struct DocState {
    /// This side's `Sync`s about the document that the peer has not answered yet. Both sides
    /// may start on a document at once (each saw a difference), so two exchanges can run side
    /// by side; the peer's `SyncIdle` ends one of them, and only when none is left is the
    /// document done here.
    pending: u32,
    /// When this side last sent about the document (the caller's clock).
    since: u64,
    sent: HashSet<ChangeHash>,
    /// The heads and the hashes asked for in the last message sent.
    last: Option<HeadsAndNeed>,
    rounds: u32,
    /// A round held back its pushes because the peer's shared heads were unknown here.
    held_back: bool,
}

/// Adds to `need` what changes waiting here lack (not held, not named yet), up to
/// [`MAX_NEED`] in all: the peer sends a change its filter of this node claimed by chance by no
/// rule but a `need`.
fn add_lacking(l: &Ledger, need: &mut Vec<ChangeHash>, lacking: &[ChangeHash]) {
    let mut named: HashSet<ChangeHash> = need.iter().copied().collect();
    for h in lacking {
        if need.len() >= MAX_NEED {
            break;
        }
        if !l.has(h) && named.insert(*h) {
            need.push(*h);
        }
    }
}

/// Up to `limit` distinct hashes: all of `peer`'s list first, then one from each other
/// sender's list in turn. What one sender makes up (any number of dependencies that exist
/// nowhere) takes no room from what the peer's own changes wait for, and only its share of the
/// rest.
pub fn fair_share<I: Iterator<Item = ChangeHash>>(
    peer: &NodeId,
    by_sender: impl IntoIterator<Item = (NodeId, I)>,
    limit: usize,
) -> Vec<ChangeHash> {
    let mut first = None;
    let mut others = Vec::new();
    for (from, list) in by_sender {
        if from == *peer {
            first = Some(list);
        } else {
            others.push(list);
        }
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut push = |h: ChangeHash, out: &mut Vec<ChangeHash>| {
        if seen.insert(h) {
            out.push(h);
        }
    };
    for h in first.into_iter().flatten() {
        if out.len() >= limit {
            return out;
        }
        push(h, &mut out);
    }
    while !others.is_empty() && out.len() < limit {
        others.retain_mut(|list| match list.next() {
            Some(h) if out.len() < limit => {
                push(h, &mut out);
                true
            }
            Some(_) => true,
            None => false,
        });
    }
    out
}

/// What the peer's last `Sync` brought: changes taken, and changes kept waiting here for what
/// they build on.
#[derive(Clone, Copy)]
struct Progress {
    accepted: usize,
    waiting: usize,
}

/// The peer's side of a document, from its last `Sync`.
struct Their {
    heads: Vec<ChangeHash>,
    shared: Vec<ChangeHash>,
    have: Bloom,
    need: Vec<ChangeHash>,
}

/// A peer's listing as this node took it: the documents held here, and the others with the
/// peer's heads.
type TakenListing = (Vec<DocId>, Vec<(DocId, Vec<ChangeHash>)>);

/// The sans-IO sync session with one peer.
#[derive(Debug)]
pub struct Session {
    peer: NodeId,
    me: Hello,
    mode: Mode,
    config: SessionConfig,
    phase: Phase,
    peer_hello: Option<Hello>,
    out: VecDeque<Message>,
    events: VecDeque<Event>,
    docs: BTreeMap<DocId, DocState>,
    last_sent_root: Option<[u8; 32]>,
    acked: bool,
    theirs: Theirs,
    /// Roots of the peer's summaries whose listing this node finished on this connection, no
    /// document of it given up: answered `SummaryOk` again without a listing.
    processed: VecDeque<[u8; 32]>,
    dirty: bool,
    next_anti_entropy: Option<u64>,
    /// Documents this node asked the peer for (see [`Session::ask`]), with a digest of the
    /// peer's heads then (at most `max_asked` of them, 32 bytes each, whatever the peer
    /// lists). An ask lets the peer's answer name the document only while it is not held
    /// here: once a copy is held, from anyone, the read rule alone decides.
    asked: BTreeMap<DocId, [u8; 32]>,
    /// Asks the peer's answer did not justify (it may not read the document even with its
    /// changes), by the digest of the heads then: not asked again at those heads on this
    /// connection. One per asked document, the last refusal: a peer listing the same
    /// documents at ever new heads leaves nothing more behind (red team, round 32).
    ask_refused: HashMap<DocId, [u8; 32]>,
    /// The peer's last listing as this node took it: documents held here, and the others with
    /// the peer's heads. Kept to update what the node expects as asked documents arrive.
    listing: Option<TakenListing>,
    rejected: usize,
    awaiting: bool,
    revealed: BTreeSet<DocId>,
    report: SyncReport,
    done_reported: bool,
    vouched: Vec<Vouch>,
    their_root: Option<[u8; 32]>,
    now: u64,
}

/// Whether a message tells the peer anything of the documents it names: a `SyncIdle`, and a
/// `Sync` that says nothing (an ask, a blind reply), are what a node holding nothing says
/// about a document the peer named, so they are not counted as naming it (a peer sending
/// `Sync`s about made-up documents would grow the record without bound).
fn reveals(msg: &Message) -> bool {
    match msg {
        Message::SyncIdle { .. } => false,
        Message::Sync(s) => {
            !(s.heads.is_empty()
                && s.shared.is_empty()
                && s.need.is_empty()
                && s.changes.is_empty()
                && s.have == Bloom::default())
        }
        _ => true,
    }
}

fn hashes(v: &[[u8; 32]]) -> Vec<ChangeHash> {
    v.iter().map(|h| ChangeHash(*h)).collect()
}

fn raw(v: &[ChangeHash]) -> Vec<[u8; 32]> {
    v.iter().map(|h| h.0).collect()
}

/// The summary digest of documents with their heads: the XOR of one digest per document, and
/// the count, hashed. Being a XOR, a node can combine the part it can compute (documents it
/// holds, with its own heads) with a remembered part (documents it does not hold, with the
/// heads the peer listed), and keep one row per peer for the latter.
pub fn summary_part<'a>(
    entries: impl IntoIterator<Item = (&'a DocId, &'a [ChangeHash])>,
) -> ([u8; 32], u32) {
    use sha2::Digest;
    let mut acc = [0u8; 32];
    let mut n = 0u32;
    for (doc, heads) in entries {
        let mut heads = heads.to_vec();
        heads.sort();
        let mut h = sha2::Sha256::new();
        h.update(b"poa/summary-doc/v2\0");
        h.update(doc.to_string().as_bytes());
        h.update([0]);
        for x in heads {
            h.update(x.0);
        }
        let d: [u8; 32] = h.finalize().into();
        for (a, b) in acc.iter_mut().zip(d) {
            *a ^= b;
        }
        n = n.wrapping_add(1);
    }
    (acc, n)
}

/// Combines summary parts into a root.
pub fn summary_root(parts: &[([u8; 32], u32)]) -> [u8; 32] {
    use sha2::Digest;
    let mut acc = [0u8; 32];
    let mut n = 0u32;
    for (p, c) in parts {
        for (a, b) in acc.iter_mut().zip(p) {
            *a ^= b;
        }
        n = n.wrapping_add(*c);
    }
    let mut h = sha2::Sha256::new();
    h.update(b"poa/summary/v2\0");
    h.update(acc);
    h.update(n.to_be_bytes());
    h.finalize().into()
}

fn heads_of(host: &mut impl Host, doc: &DocId) -> Vec<ChangeHash> {
    host.with_ledger(doc, |l| l.settled().map(|s| s.offered.clone()))
        .flatten()
        .unwrap_or_default()
}

fn holds(host: &mut impl Host, doc: &DocId) -> bool {
    host.with_ledger(doc, |_| ()).is_some()
}

fn approx_size(c: &SignedChange) -> usize {
    200 + c
        .data
        .ops
        .iter()
        .map(|o| o.key.len() + o.value().map_or(0, str::len) + 16)
        .sum::<usize>()
}

/// The signed changes of `to_send` not yet sent, in order, up to `batch` bytes (at least one)
/// and the frame's count; they are marked sent.
fn batch_of(
    l: &Ledger,
    sent: &mut HashSet<ChangeHash>,
    to_send: Vec<ChangeHash>,
    batch: usize,
) -> Vec<SignedChange> {
    let mut changes = Vec::new();
    let mut bytes = 0;
    for h in to_send {
        if changes.len() >= crate::wire::MAX_SYNC_CHANGES {
            break;
        }
        if sent.contains(&h) {
            continue;
        }
        let Some(c) = l.signed(&h) else { continue };
        bytes += approx_size(&c);
        if bytes > batch && !changes.is_empty() {
            break;
        }
        sent.insert(h);
        changes.push(c);
    }
    changes
}

impl Session {
    /// A session with `peer` (the key its TLS handshake proved), introducing this node with
    /// `me`.
    pub fn new(peer: NodeId, me: Hello, mode: Mode, config: SessionConfig) -> Session {
        Session {
            peer,
            me,
            mode,
            config,
            phase: Phase::AwaitHello,
            peer_hello: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
            docs: BTreeMap::new(),
            last_sent_root: None,
            acked: false,
            theirs: Theirs::Waiting,
            processed: VecDeque::new(),
            dirty: true,
            next_anti_entropy: None,
            asked: BTreeMap::new(),
            ask_refused: HashMap::new(),
            listing: None,
            rejected: 0,
            awaiting: false,
            revealed: BTreeSet::new(),
            report: SyncReport {
                peer: peer.to_string(),
                ..SyncReport::default()
            },
            done_reported: false,
            vouched: Vec::new(),
            their_root: None,
            now: 0,
        }
    }

    /// The peer.
    pub fn peer(&self) -> &NodeId {
        &self.peer
    }

    /// The peer's hello, once received.
    pub fn peer_hello(&self) -> Option<&Hello> {
        self.peer_hello.as_ref()
    }

    /// What was exchanged so far.
    pub fn report(&self) -> &SyncReport {
        &self.report
    }

    /// The documents this session named to the peer.
    pub fn revealed(&self) -> &BTreeSet<DocId> {
        &self.revealed
    }

    /// Sends the hello and the first summary together: peers already in sync need no more than
    /// this one flight and its answer.
    pub fn start(&mut self, host: &mut impl Host, now: u64) {
        self.now = now;
        self.queue(Message::Hello(self.me.clone()));
        self.introduce(host);
        self.next_anti_entropy = Some(now + self.config.anti_entropy_ms);
        self.after(host);
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When the session next wants [`Session::handle_timeout`] (milliseconds, the caller's clock).
    pub fn poll_timeout(&self) -> Option<u64> {
        match (self.mode, &self.phase) {
            (Mode::Stay, Phase::Open | Phase::AwaitHello) => self.next_anti_entropy,
            _ => None,
        }
    }

    /// Whether it stays connected or ends after one round.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether the session has said or heard goodbye.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether a one-shot round is complete: both summaries answered, nothing in flight.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Open
            && self.peer_hello.is_some()
            && self.last_sent_root.is_some()
            && self.acked
            && self.theirs == Theirs::Answered
            && self.docs.values().all(|d| !d.awaiting())
    }

    /// Says goodbye with a reason and stops.
    pub fn close(&mut self, reason: &str) {
        if self.phase != Phase::Closed {
            self.queue(Message::Goodbye {
                reason: reason.chars().take(crate::wire::MAX_TEXT / 4).collect(),
            });
            self.phase = Phase::Closed;
        }
    }

    /// The periodic repair: restate what this node offers, so the peer catches what pushes
    /// missed.
    pub fn handle_timeout(&mut self, host: &mut impl Host, now: u64) {
        let Some(at) = self.next_anti_entropy else {
            return;
        };
        self.now = self.now.max(now);
        if now < at || self.mode != Mode::Stay {
            return;
        }
        self.next_anti_entropy = Some(now + self.config.anti_entropy_ms);
        // A document whose answer never came (the peer stalled on it) is given up for now.
        let stale = self.config.anti_entropy_ms;
        let before = self.docs.len();
        self.docs
            .retain(|_, d| !(d.awaiting() && now.saturating_sub(d.since) > stale));
        // A listing with a document given up is not done: it ends unanswered and is not
        // remembered as processed, so the peer's next summary, even unchanged, is compared
        // with what this node expects again and listed again if it differs. (Remembered as
        // processed, every later summary at that root would be answered `SummaryOk` for the
        // rest of the connection, and the document never asked for again.)
        if self.docs.len() < before && matches!(self.theirs, Theirs::Listing { .. }) {
            self.theirs = Theirs::Answered;
        }
        if self.phase != Phase::Open || self.docs.values().any(|d| d.awaiting()) {
            return;
        }
        self.last_sent_root = None;
        self.dirty = true;
        self.after(host);
    }

    /// A document changed here: push it now if the peer may read it, and restate the summary
    /// once the exchange settles.
    ///
    /// Before the peer's hello the change is not dropped: the summary already queued may not
    /// hold it, so it is restated (and the peer lists what differs).
    pub fn push(&mut self, host: &mut impl Host, doc: &DocId) {
        if self.phase == Phase::Closed {
            return;
        }
        self.dirty = true;
        if self.phase == Phase::Open
            && !self.docs.get(doc).is_some_and(|d| d.awaiting())
            && host.may_read(&self.peer, doc)
        {
            self.begin(host, doc, true);
        }
        self.after(host);
    }

    /// What the peer may read may have changed (a pool changed): restate the summary.
    pub fn refresh(&mut self, host: &mut impl Host) {
        self.dirty = true;
        self.after(host);
    }

    /// This node's trust changed: tell the peer the keys it now vouches for, and list the
    /// peer's documents again (some may be takeable now).
    pub fn trust_changed(&mut self, host: &mut impl Host) {
        if self.phase == Phase::Closed {
            return;
        }
        self.introduce(host);
        self.relist();
        self.after(host);
    }

    fn introduce(&mut self, host: &mut impl Host) {
        let mut keys = host.vouches();
        keys.truncate(MAX_VOUCHES);
        if keys != self.vouched {
            self.vouched = keys.clone();
            self.queue(Message::Introduce { keys });
        }
    }

    fn relist(&mut self) {
        if self.phase == Phase::Open
            && self.theirs == Theirs::Answered
            && let Some(root) = self.their_root
        {
            self.processed.retain(|r| *r != root);
            self.theirs = Theirs::Listing {
                root,
                offers: false,
            };
            self.queue(Message::ListRequest);
        }
    }

    fn queue(&mut self, msg: Message) {
        self.report.messages_sent += 1;
        if matches!(
            msg,
            Message::Hello(_) | Message::Summary { .. } | Message::ListRequest | Message::Sync(_)
        ) {
            self.awaiting = true;
        }
        if let Message::Sync(s) = &msg
            && !s.changes.is_empty()
        {
            *self.report.sent.entry(s.doc.to_string()).or_default() += s.changes.len();
        }
        if reveals(&msg) {
            self.revealed.extend(msg.docs().into_iter().cloned());
        }
        self.out.push_back(msg);
    }

    /// The one send path for messages that name documents: a document the peer may not read
    /// is never named, unless the peer named it first in the message being answered, or this
    /// node asked the peer for it and holds no copy.
    /// Returns whether the message went.
    fn send(&mut self, host: &mut impl Host, msg: Message, answering: Option<&DocId>) -> bool {
        for doc in msg.docs() {
            let ok =
                answering == Some(doc) || self.asking(host, doc) || host.may_read(&self.peer, doc);
            if !ok {
                self.events.push_back(Event::EgressRefused(doc.clone()));
                return false;
            }
        }
        self.queue(msg);
        true
    }

    /// Handles one message from the peer, received at `now` (the caller's clock).
    pub fn handle(
        &mut self,
        host: &mut impl Host,
        msg: Message,
        now: u64,
    ) -> Result<(), SessionError> {
        self.now = self.now.max(now);
        self.report.messages_received += 1;
        if self.awaiting {
            self.report.round_trips += 1;
            self.awaiting = false;
        }
        if self.phase == Phase::Closed {
            return Ok(());
        }
        if self.phase == Phase::AwaitHello
            && !matches!(msg, Message::Hello(_) | Message::Goodbye { .. })
        {
            return Err(SessionError::Protocol(format!(
                "{} before hello",
                msg.kind()
            )));
        }
        match msg {
            Message::Hello(h) => self.on_hello(host, h)?,
            Message::Summary { root, .. } => {
                self.their_root = Some(root);
                let (held, unheld) = host.expected(&self.peer);
                let heads: Vec<(DocId, Vec<ChangeHash>)> = held
                    .into_iter()
                    .map(|d| {
                        let h = heads_of(host, &d);
                        (d, h)
                    })
                    .collect();
                let part = summary_part(heads.iter().map(|(d, h)| (d, h.as_slice())));
                let mine = summary_root(&[part, unheld]);
                if mine == root || self.processed.contains(&root) {
                    self.theirs = Theirs::Answered;
                    self.queue(Message::SummaryOk { root });
                } else {
                    self.theirs = Theirs::Listing {
                        root,
                        offers: false,
                    };
                    self.queue(Message::ListRequest);
                }
            }
            Message::SummaryOk { root } => {
                if Some(root) == self.last_sent_root {
                    self.acked = true;
                }
            }
            Message::ListRequest => {
                let docs: Vec<DocHeads> = host
                    .offered(&self.peer)
                    .into_iter()
                    .map(|(doc, heads)| DocHeads {
                        doc,
                        heads: raw(&heads),
                    })
                    .collect();
                self.send(host, Message::Offers { docs }, None);
            }
            Message::Offers { docs } => self.on_offers(host, docs),
            Message::Sync(s) => self.on_sync(host, s)?,
            Message::SyncIdle { doc } => {
                self.answered(&doc);
                if !self.docs.get(&doc).is_some_and(DocState::awaiting) {
                    self.docs.remove(&doc);
                }
            }
            Message::Goodbye { reason } => {
                self.events.push_back(Event::Closed(reason));
                self.phase = Phase::Closed;
                return Ok(());
            }
            Message::Introduce { keys } => {
                if host.introduced(&self.peer, keys) {
                    self.relist();
                }
            }
        }
        self.after(host);
        Ok(())
    }

    fn on_hello(&mut self, host: &mut impl Host, h: Hello) -> Result<(), SessionError> {
        if h.version != PROTOCOL_VERSION {
            return Err(SessionError::Protocol(format!(
                "peer speaks protocol version {}, this node speaks {PROTOCOL_VERSION}",
                h.version
            )));
        }
        if h.node != self.peer {
            return Err(SessionError::Protocol(format!(
                "hello names node {} but TLS proved {}",
                h.node, self.peer
            )));
        }
        if self.peer_hello.is_some() {
            return Err(SessionError::Protocol("second hello".into()));
        }
        host.hello(&self.peer, &h).map_err(SessionError::Refused)?;
        self.peer_hello = Some(h);
        self.phase = Phase::Open;
        Ok(())
    }

    fn on_offers(&mut self, host: &mut impl Host, docs: Vec<DocHeads>) {
        let mut held = Vec::new();
        let mut unheld: Vec<(DocId, Vec<ChangeHash>)> = Vec::new();
        let mut start = Vec::new();
        let mut asks = Vec::new();
        for d in docs {
            let mut theirs = hashes(&d.heads);
            theirs.sort();
            if holds(host, &d.doc) && host.may_read(&self.peer, &d.doc) {
                held.push(d.doc.clone());
                let mut ours = heads_of(host, &d.doc);
                ours.sort();
                if ours != theirs {
                    start.push(d.doc);
                }
                continue;
            }
            // Not held here, or held but by this copy the peer may not read it: answered
            // alike, so the answer does not tell the peer which.
            let at = summary_part([(&d.doc, theirs.as_slice())]).0;
            let refused = self.ask_refused.get(&d.doc) == Some(&at);
            if !refused
                && (self.asked.contains_key(&d.doc) || self.asked.len() < self.config.max_asked)
                && host.takeable(&self.peer, &d.doc)
            {
                // Recorded now: the expectation saved below leaves asked documents out.
                self.asked.insert(d.doc.clone(), at);
                asks.push(d.doc.clone());
            }
            unheld.push((d.doc, theirs));
        }
        self.listing = Some((held, unheld));
        self.save_expected(host);
        if let Theirs::Listing { root, .. } = self.theirs {
            self.theirs = Theirs::Listing { root, offers: true };
        }
        for doc in start {
            if !self.docs.get(&doc).is_some_and(|d| d.awaiting()) {
                self.begin(host, &doc, false);
            }
        }
        for doc in asks {
            if !self.docs.get(&doc).is_some_and(|d| d.awaiting()) {
                self.ask(host, doc);
            }
        }
    }

    /// Whether the peer's messages about `doc` are the answer to an ask: asked for, and still
    /// not held here.
    fn asking(&mut self, host: &mut impl Host, doc: &DocId) -> bool {
        self.asked.contains_key(doc) && !holds(host, doc)
    }

    /// Asks the peer for a document it listed that this node does not hold, or holds but by
    /// its copy the peer may not read (the peer's newer changes may be what makes it a reader:
    /// a share list grown since this copy; without asking, a relay with a stale copy and a new
    /// reader holding the newer one would wait on each other for good). The request is the
    /// same message either way (no heads, no filter, no hashes): it tells the peer nothing of
    /// this node's copy, not even whether there is one. The peer sends what it would send a
    /// node holding nothing, and the changes are kept only if, with them, the peer may read
    /// the document (the ingress rule, in [`Host::apply`]).
    fn ask(&mut self, host: &mut impl Host, doc: DocId) {
        let msg = DocSync {
            doc: doc.clone(),
            heads: Vec::new(),
            shared: Vec::new(),
            have: Bloom::default(),
            need: Vec::new(),
            changes: Vec::new(),
            answer: false,
        };
        // The peer named the document in the listing this answers.
        self.send_sync(host, msg, Some(&doc));
    }

    /// Tells the host what to expect of the peer's next summary: the documents it listed that
    /// are held here (with this node's heads, then), and a digest of the others, except those
    /// this node asked for and does not hold yet. A document asked for whose answer never came
    /// (the connection dropped) so keeps the next summary from matching, and it is asked for
    /// again; one that arrived moves to the held list.
    fn save_expected(&mut self, host: &mut impl Host) {
        let Some((held, unheld)) = &self.listing else {
            return;
        };
        let digest = summary_part(
            unheld
                .iter()
                .filter(|(d, _)| !self.asked.contains_key(d))
                .map(|(d, h)| (d, h.as_slice())),
        );
        host.set_expected(&self.peer, held, digest);
    }

    /// Starts (or restarts) syncing a document with the first message of a session. `push`:
    /// after a local write, when what the peer lacks is likely just that write.
    fn begin(&mut self, host: &mut impl Host, doc: &DocId, push: bool) {
        if let Some(msg) = self.generate(host, doc, None, false, push) {
            self.send_sync(host, msg, None);
        }
    }

    /// Sends a `Sync` through the one send path and, if it went, counts the answer it is owed.
    fn send_sync(&mut self, host: &mut impl Host, msg: DocSync, answering: Option<&DocId>) {
        let doc = msg.doc.clone();
        if self.send(host, Message::Sync(msg), answering) {
            let now = self.now;
            self.docs.entry(doc).or_default().sending(now);
        }
    }

    /// The peer answered one of this side's `Sync`s about `doc`.
    fn answered(&mut self, doc: &DocId) {
        if let Some(st) = self.docs.get_mut(doc) {
            st.pending = st.pending.saturating_sub(1);
        }
    }

    /// This side has nothing more to say about `doc` in the exchange it answers; what it
    /// remembers of the document goes once no `Sync` of its own still waits for an answer.
    fn idle(&mut self, host: &mut impl Host, doc: &DocId) {
        if !self.docs.get(doc).is_some_and(DocState::awaiting) {
            self.docs.remove(doc);
        }
        self.send(host, Message::SyncIdle { doc: doc.clone() }, Some(doc));
    }

    fn on_sync(&mut self, host: &mut impl Host, s: DocSync) -> Result<(), SessionError> {
        let doc = s.doc.clone();
        if s.answer {
            self.answered(&doc);
        }
        let held = holds(host, &doc);
        let readable = held && host.may_read(&self.peer, &doc);
        // The answer to an ask, about a document this node does not hold or holds but the
        // peer may not read here: whatever it says back is what a node holding nothing would
        // say, so the exchange tells nothing of the copy.
        let asked = !readable && self.asked.contains_key(&doc);
        let mut accepted = 0;
        let mut waiting = 0;
        let allowed = if s.changes.is_empty() {
            readable || asked
        } else if held || asked {
            let applied = host.apply(&self.peer, &doc, s.changes.clone(), asked);
            if let Some(why) = applied.fatal {
                return Err(SessionError::Protocol(why));
            }
            accepted = applied.accepted;
            waiting = applied.waiting;
            if applied.accepted > 0
                && let Some((held_list, unheld)) = &mut self.listing
                && let Some(at) = unheld.iter().position(|(d, _)| *d == doc)
            {
                unheld.remove(at);
                held_list.push(doc.clone());
                held_list.sort();
                self.save_expected(host);
            }
            if applied.accepted > 0 {
                *self.report.accepted.entry(doc.to_string()).or_default() += applied.accepted;
                self.events.push_back(Event::Accepted {
                    doc: doc.clone(),
                    count: applied.accepted,
                });
                self.dirty = true;
            }
            if let Some(first) = applied.rejected.first() {
                let n = applied.rejected.len();
                let e = self
                    .report
                    .rejected
                    .entry(doc.to_string())
                    .or_insert((0, first.clone()));
                e.0 += n;
                self.events.push_back(Event::Rejected {
                    doc: doc.clone(),
                    count: n,
                    reason: first.clone(),
                });
                self.rejected += applied.counted;
                if self.rejected > self.config.max_rejected {
                    return Err(SessionError::Protocol(format!(
                        "{} rejected changes on one connection (the last: {first})",
                        self.rejected
                    )));
                }
            }
            applied.allowed
        } else {
            false
        };
        if !allowed && let Some(at) = self.asked.get(&doc) {
            self.ask_refused.insert(doc.clone(), *at);
        }
        // The reply carries this node's copy only if the peer may read it as it is now, after
        // the changes and what they released from waiting (a release can end the peer's read).
        let blind = if s.changes.is_empty() {
            !readable
        } else {
            !(holds(host, &doc) && host.may_read(&self.peer, &doc))
        };
        let allowed = allowed && (!blind || asked);
        if !allowed {
            self.idle(host, &doc);
            return Ok(());
        }
        let their = Their {
            heads: hashes(&s.heads),
            shared: hashes(&s.shared),
            have: s.have,
            need: hashes(&s.need),
        };
        if !blind {
            let mut known = host.shared(&self.peer, &doc);
            known.extend(their.heads.iter().copied());
            let shared = host
                .with_ledger(&doc, |l| l.held_heads_of(&known))
                .unwrap_or_default();
            host.set_shared(&self.peer, &doc, &shared);
        }
        let progress = Progress { accepted, waiting };
        let reply = self.generate(host, &doc, Some((&their, progress)), blind, false);
        match reply {
            Some(msg) => self.send_sync(host, msg, Some(&doc)),
            None => self.idle(host, &doc),
        }
        Ok(())
    }

    /// The next sync message for `doc`, or `None` when there is nothing more to say.
    /// `blind`: as a node holding nothing would say it.
    fn generate(
        &mut self,
        host: &mut impl Host,
        doc: &DocId,
        their: Option<(&Their, Progress)>,
        blind: bool,
        push: bool,
    ) -> Option<DocSync> {
        let (shared, lacking) = if !blind && holds(host, doc) {
            (host.shared(&self.peer, doc), host.lacking(&self.peer, doc))
        } else {
            (Vec::new(), Vec::new())
        };
        let batch = self.config.batch_bytes;
        let max_rounds = self.config.max_doc_rounds;
        let st = self.docs.entry(doc.clone()).or_default();
        // Held back again only while the peer keeps sending changes (taken, or waiting here for
        // what they build on), so a peer whose shared heads never arrive here still gets this
        // node's changes.
        let may_hold_back =
            !st.held_back || their.is_some_and(|(_, p)| p.accepted > 0 || p.waiting > 0);
        let mut held_back = false;
        let sent = &mut st.sent;
        let computed = if blind {
            None
        } else {
            host.with_ledger(doc, |l| {
                let heads = l.settled().map(|s| s.offered.clone()).unwrap_or_default();
                let mine = l.exported_since(&shared);
                let have = Bloom::new(mine.iter());
                let mut need: Vec<ChangeHash> = Vec::new();
                let mut to_send: Vec<ChangeHash> = Vec::new();
                match their {
                    Some((t, _)) => {
                        need = t.heads.iter().filter(|h| !l.has(h)).copied().collect();
                        // Shared heads this node does not hold: the peer remembers more of this
                        // node than it has (a node restored from a backup). Its Bloom filter
                        // covers only what came after those heads, so what it had before them
                        // cannot be told apart here. Send only what it asks for; its reply brings
                        // those heads, and then its filter is exact.
                        if may_hold_back && t.shared.iter().any(|h| !l.has(h)) {
                            held_back = true;
                            to_send = t
                                .need
                                .iter()
                                .filter(|h| l.is_exported(h))
                                .copied()
                                .collect();
                            add_lacking(l, &mut need, &lacking);
                            return (heads, have, need, batch_of(l, sent, to_send, batch));
                        }
                        let mut known = t.shared.clone();
                        known.extend(t.heads.iter().copied());
                        let missing: HashSet<ChangeHash> = l
                            .exported_since(&known)
                            .into_iter()
                            .filter(|h| !t.have.contains(h))
                            .collect();
                        let mut set: Vec<ChangeHash> = l.exported_descendants(&missing);
                        // A set beside the list: a peer's `need` of thousands of hashes costs
                        // in proportion to what it names, not that times the document.
                        let mut listed: HashSet<ChangeHash> = set.iter().copied().collect();
                        for h in &t.need {
                            if l.is_exported(h) && listed.insert(*h) {
                                set.push(*h);
                            }
                        }
                        to_send = set;
                    }
                    None if push && !shared.is_empty() => {
                        // A push after a write, to a peer this node synced with before: send
                        // what it likely lacks at once. Not when a listing showed a difference:
                        // the shared heads remembered here may be older than what the peer
                        // holds (a node restored from a backup), so its filter decides.
                        to_send = mine.clone();
                    }
                    None => {}
                }
                add_lacking(l, &mut need, &lacking);
                (heads, have, need, batch_of(l, sent, to_send, batch))
            })
        };
        st.held_back |= held_back;
        let (mut heads, have, need, changes) =
            computed.unwrap_or_else(|| (Vec::new(), Bloom::default(), Vec::new(), Vec::new()));
        heads.truncate(MAX_HEADS);
        let mut need = need;
        need.truncate(MAX_NEED);
        if let Some((t, Progress { accepted, .. })) = their {
            let mut mine = heads.clone();
            mine.sort();
            let mut theirs = t.heads.clone();
            theirs.sort();
            if changes.is_empty() && need.is_empty() && mine == theirs {
                return None;
            }
            let same_as_last = st.last.as_ref() == Some(&(raw(&heads), raw(&need)));
            if changes.is_empty() && accepted == 0 && same_as_last {
                // No progress either way: stop for now; the next summary tries again.
                return None;
            }
        }
        st.rounds += 1;
        if st.rounds > max_rounds {
            return None;
        }
        st.last = Some((raw(&heads), raw(&need)));
        Some(DocSync {
            doc: doc.clone(),
            heads: raw(&heads),
            shared: raw(&shared).into_iter().take(MAX_HEADS).collect(),
            have,
            need: raw(&need),
            changes,
            answer: their.is_some(),
        })
    }

    /// Once no document is in flight: finish a listing, and tell the peer if what this node
    /// offers changed.
    fn after(&mut self, host: &mut impl Host) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.docs.values().any(|d| d.awaiting()) {
            return;
        }
        if let Theirs::Listing { root, offers: true } = self.theirs {
            self.processed.push_back(root);
            if self.processed.len() > 64 {
                self.processed.pop_front();
            }
            self.theirs = Theirs::Answered;
            self.queue(Message::SummaryOk { root });
        }
        if self.dirty || self.last_sent_root.is_none() {
            self.dirty = false;
            let offered = host.offered(&self.peer);
            let part = summary_part(offered.iter().map(|(d, h)| (d, h.as_slice())));
            let root = summary_root(&[part]);
            if Some(root) != self.last_sent_root {
                self.last_sent_root = Some(root);
                self.acked = false;
                self.queue(Message::Summary {
                    root,
                    docs: offered.len() as u32,
                });
            }
        }
        if self.mode == Mode::OneShot && self.is_done() && !self.done_reported {
            self.done_reported = true;
            self.events.push_back(Event::RoundComplete);
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
