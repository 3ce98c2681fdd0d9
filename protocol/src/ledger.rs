//! The gate: one document's changes, which of them stand, and what the document shows.
//!
//! Every path into a document goes through a [`Ledger`]: a local write, a change from a peer or
//! a relay, a stored row read back from disk. It works in two steps, and the split is the point:
//!
//! 1. **Admission** ([`Ledger::admit`]) decides whether a change is held at all. It checks what
//!    is a property of the change alone or of its dependencies' own metadata, so the verdict is
//!    the same on every node: bounds and shape ([`ChangeData::check`]), the signature of the
//!    author its actor id names, that its sequence number continues its actor's chain and its
//!    first operation counter follows its dependencies' highest. It also screens out authors who
//!    could not be writers at all (no delegation of the document's key anywhere, not a pool's
//!    coordinator or member), so a stranger cannot make a node store its changes.
//! 2. **Standing** ([`Ledger::settle`]) decides, over the whole set held, which changes count.
//!    It is a pure function of (the set of changes, the document's key): the order they arrived
//!    in, who relayed them, and what their authors claim about time or dependencies cannot move
//!    it. What decides authority is read off the whole set, never off the past a change
//!    claims: a **revocation cut-off** of its author (signed by the document's key, found
//!    anywhere, naming the last kept change of each actor), an **equivocation** (two changes
//!    signed at one actor and sequence number: both void, with everything after them by that
//!    actor), an author using more actor ids than any honest node needs, the **delegation** the
//!    change falls under (the latest whose cut-off it comes after), and the **area** of a
//!    target (that of every first version held whose author could write it). Against those, a
//!    change stands if its operations are allowed on its causal past (records never edited in
//!    place, slots replaced exactly, pool membership). Grants are self-certifying (signed by
//!    the document's key), and a change holding only grants stands if the node they are about
//!    or a delegated node placed it; rotations and recoveries move the key chain whoever
//!    placed them (see [`KeyChain`]), and stand only where such a node placed them.
//!
//! What the document shows ([`Settled::view`]) is materialised from the standing changes only.
//! Voided changes stay stored, listed with the reason, and are never shown. Two records written
//! concurrently under one key with different content are a *dispute*: neither is shown, both
//! are listed ([`Settled::disputed`]). What a node offers its peers ([`Settled::heads`]) is the
//! standing changes with their causal past, and a bounded, canonical evidence of any
//! equivocation, so honest nodes converge on the same set and reach the same verdicts.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use automerge::ChangeHash;
use serde_json::{Value as Json, json};

use crate::authority::{
    BadGrant, Denied, GrantKind, KeyChain, MAX_FORKS, Scope, SignedGrant, Signers, chain_point,
};
use crate::change::{ChangeData, FlatAction, FlatOp, Malformed, OpRef, SignedChange, parse_value};
use crate::date::Date;
use crate::doc::{DocId, DocKind, Policy, PoolId, SCHEMA, genesis};
use crate::id::{NodeId, Principal, StateCode};
use crate::model::Area;
use crate::pool::Invite;
use crate::sign::{ACTOR_LEN, Signature, change_signing_bytes, verify};

/// The most actor ids one author may write with in one document before all its changes there
/// are void: an honest node uses one per store (a restore from backup starts another).
pub const MAX_ACTORS_PER_AUTHOR: usize = 8;
/// The most actors a document may have in all.
pub const MAX_ACTORS: usize = 4096;
/// The most changes held at one actor and sequence number. Two prove an equivocation; more are
/// kept (up to this bound) because honest nodes may have built on any of them.
pub const MAX_TWINS: usize = 32;

/// Why a change is not admitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Its shape breaks a bound.
    #[error("change is malformed: {0}")]
    Malformed(Malformed),
    /// The actor id does not name a valid key.
    #[error("change names an actor that is not a node's key")]
    ForeignActor,
    /// No signature, or one of the wrong length.
    #[error("change {hash} has no signature")]
    Unsigned {
        /// The change.
        hash: String,
    },
    /// The signature does not verify against the author the actor id names.
    #[error("change {hash} by node {author} rejected: its signature does not verify")]
    BadSignature {
        /// The change.
        hash: String,
        /// Who it claims to be from.
        author: NodeId,
    },
    /// The sequence number does not continue the actor's chain in the change's causal past.
    #[error("change {hash} by node {author} has sequence number {got}, not {expected}")]
    SeqGap {
        /// The change.
        hash: String,
        /// Its author.
        author: NodeId,
        /// What its past implies.
        expected: u64,
        /// What it says.
        got: u64,
    },
    /// The first operation counter does not follow the highest in its causal past.
    #[error("change {hash} by node {author} starts at operation {got}, not {expected}")]
    StartOp {
        /// The change.
        hash: String,
        /// Its author.
        author: NodeId,
        /// What its past implies.
        expected: u64,
        /// What it says.
        got: u64,
    },
    /// An operation names a predecessor its causal past does not hold on that key.
    #[error("change {hash} replaces or deletes an operation its past does not hold at {key}")]
    BadPred {
        /// The change.
        hash: String,
        /// The key.
        key: String,
    },
    /// A third change at one actor and sequence number: the equivocation is proven already.
    #[error("change {hash}: its author already equivocated at this position")]
    TooManyTwins {
        /// The change.
        hash: String,
        /// Whether its author sent it itself.
        by_author: bool,
    },
    /// Key rotations or recoveries beyond what the key chain needs (a flood).
    #[error("change {hash} refused: {why}")]
    ChainFlood {
        /// The change.
        hash: String,
        /// Whether its author sent it itself.
        by_author: bool,
        /// Why.
        why: String,
    },
    /// A new actor beyond what any honest author needs.
    #[error("change {hash}: too many actor ids in this document")]
    TooManyActors {
        /// The change.
        hash: String,
        /// Whether its author sent it itself.
        by_author: bool,
    },

    /// A change of a revoked node that its revocation's cut-off cannot keep: it would be void
    /// wherever it went.
    #[error(
        "change {hash} by node {author} refused: the node is revoked and its revocation keeps nothing more of it"
    )]
    Revoked {
        /// The change.
        hash: String,
        /// Its author.
        author: NodeId,
        /// Whether its author sent it itself.
        by_author: bool,
    },

    /// The document's key is not trusted here, so nothing of it can be judged.
    #[error("{0}")]
    NoKey(Denied),
    /// The author could not be a writer of this document at all.
    #[error("change {hash} by node {author} refused: {why}")]
    NotAWriter {
        /// The change.
        hash: String,
        /// Its author.
        author: NodeId,
        /// Why.
        why: String,
    },
    /// It depends on a change that was rejected for good.
    #[error("change {hash} depends on rejected change {dep}")]
    DependsOnRejected {
        /// The change.
        hash: String,
        /// The rejected ancestor.
        dep: String,
    },
}

impl Rejection {
    /// A short name of the kind of refusal, for counters and logs (a metric label: a few
    /// fixed values, never text the peer chose).
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::ForeignActor => "foreign_actor",
            Rejection::Unsigned { .. } => "unsigned",
            Rejection::BadSignature { .. } => "bad_signature",
            Rejection::SeqGap { .. } => "seq_gap",
            Rejection::StartOp { .. } => "start_op",
            Rejection::BadPred { .. } => "bad_pred",
            Rejection::TooManyTwins { .. } => "too_many_twins",
            Rejection::TooManyActors { .. } => "too_many_actors",
            Rejection::ChainFlood { .. } => "chain_flood",
            Rejection::Revoked { .. } => "revoked",
            Rejection::NoKey(_) => "no_key",
            Rejection::NotAWriter { .. } => "not_a_writer",
            Rejection::DependsOnRejected { .. } => "depends_on_rejected",
        }
    }

    /// Whether a peer that sent this change is to blame for it (and it counts toward the
    /// rejections a connection may carry). A refusal that depends on what else is held here
    /// (a cap, a revocation that arrived first) is not, when another peer relays the change:
    /// an honest relay forwards such changes in good faith, and honest changes may be built
    /// on them. It is when the author sends its own: a revoked node or a flooding author is
    /// closed after as many refusals as any other peer.
    pub fn counts_against_peer(&self) -> bool {
        match self {
            Rejection::Revoked { by_author, .. }
            | Rejection::TooManyTwins { by_author, .. }
            | Rejection::ChainFlood { by_author, .. }
            | Rejection::TooManyActors { by_author, .. } => *by_author,
            _ => true,
        }
    }

    /// Whether every node, whatever else it holds, reaches the same verdict on this change:
    /// such a rejection can be remembered for good, by the change's hash. The others depend
    /// on what is held (or trusted) at the time, and the change may be taken later. A missing
    /// or bad signature is not among them: the hash is the change's content, the signature
    /// comes with the copy, and a peer that sends a copy with a forged signature must not make
    /// the real change, or what is built on it, refused for good.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Rejection::Malformed(_)
                | Rejection::ForeignActor
                | Rejection::SeqGap { .. }
                | Rejection::StartOp { .. }
                | Rejection::DependsOnRejected { .. }
        )
    }
}

/// A change of a batch waiting for dependencies: its hash, the change, what it lacked, and how
/// many of those are still missing.
type Parked = (ChangeHash, SignedChange, Vec<ChangeHash>, usize);

/// What [`Ledger::admit_batch`] did with a batch of changes.
#[derive(Debug, Default)]
pub struct Batch {
    /// Newly held, with their hashes, in the order admitted: every change the batch brought
    /// in, those a cap had refused before and a change of the batch needed among them.
    pub held: Vec<(ChangeHash, SignedChange)>,
    /// Waiting for dependencies not held: the change's hash, the change, and what it lacks,
    /// in the order they came.
    pub waiting: Vec<(ChangeHash, SignedChange, Vec<ChangeHash>)>,
    /// Refused, with the reason.
    pub refused: Vec<(Option<ChangeHash>, Rejection)>,
    /// How many admissions were tried: at most four for each change of the batch (its first
    /// try, one early retry for a grant naming its author, one for the refusal of a revoked
    /// change it lacks, and the try once all it lacked is held), in whatever order they came.
    pub attempts: usize,
}

/// What [`Ledger::admit`] did with a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admitted {
    /// Newly held.
    New(ChangeHash),
    /// Already held.
    Known(ChangeHash),
    /// Some dependencies are not held yet: keep it and try again when they arrive.
    Waiting(ChangeHash, Vec<ChangeHash>),
    /// Not held.
    Refused(Option<ChangeHash>, Rejection),
}

/// Who wrote a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Author {
    /// The deterministic genesis every node derives.
    Genesis,
    /// A node, proven by its signature.
    Node(NodeId),
}

/// The verdict on a held change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It counts.
    Stands,
    /// It is held (stored, listed in the audit) but does not count, and why.
    Void(Denied),
    /// Outside the set being judged (a view at given heads).
    Excluded,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct OpAt {
    entry: u32,
    op: u16,
}

#[derive(Clone, Debug)]
struct Actor {
    bytes: Vec<u8>,
    author: Option<NodeId>,
}

#[derive(Clone, Debug)]
struct Entry {
    hash: ChangeHash,
    actor: u32,
    seq: u32,
    max_op: u64,
    deps: Vec<u32>,
    /// For each actor index, the highest sequence number in this change's causal past,
    /// itself included. Missing entries are zero.
    clock: Vec<u32>,
    /// `None` for the genesis.
    data: Option<ChangeData>,
    signature: Option<Signature>,
    grant_only: bool,
    new_actor: bool,
}

/// A record key with more than one concurrent value: neither is shown.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Disputed {
    /// `targets/T1/1`.
    pub path: String,
    /// The changes that wrote the values.
    pub changes: Vec<String>,
}

/// What a settled ledger says.
#[derive(Clone, Debug)]
pub struct Settled {
    /// The verdict on every held change, by position.
    verdicts: Vec<Verdict>,
    /// Whether each held change may be sent to peers: standing, an ancestor of one, or the
    /// evidence of an equivocation.
    exported: Vec<bool>,
    /// The heads of the standing changes and their causal past: what this node's own next
    /// change builds on, and what a report cites.
    pub heads: Vec<ChangeHash>,
    /// The heads of everything offered to peers: the standing changes, the evidence of
    /// equivocations and of authors with too many actors, and their causal past. This is what
    /// sync summarises and compares, so a node that lacks evidence another holds always differs
    /// from it and is sent it: two honest nodes never settle on one set of heads with
    /// different verdicts (a void change can sit in the past of a standing one).
    pub offered: Vec<ChangeHash>,
    /// The document as the standing changes make it: `{schema, doc, container: {key: value}}`.
    pub view: Json,
    /// Keys with concurrent, different records.
    pub disputed: Vec<Disputed>,
    /// Authors found misbehaving (equivocation, too many actors), with the reason.
    pub flagged: Vec<(NodeId, String)>,
}

/// One document's verified changes.
#[derive(Clone, Debug)]
pub struct Ledger {
    doc: DocId,
    kind: DocKind,
    entries: Vec<Entry>,
    by_hash: HashMap<ChangeHash, u32>,
    actors: Vec<Actor>,
    actor_ix: HashMap<Vec<u8>, u32>,
    author_actors: HashMap<NodeId, Vec<u32>>,
    by_actor_seq: HashMap<(u32, u32), Vec<u32>>,
    keys: BTreeMap<(u8, String), Vec<OpAt>>,
    op_at: HashMap<(u64, u32), Vec<OpAt>>,
    settled: Option<Settled>,
    settled_key: Option<NodeId>,
    /// The recovery key trusted for the document's principal: with it, recoveries count.
    recovery: Option<NodeId>,
    /// The key chain of the whole set, for the number of changes held and the root it was
    /// computed for.
    chain_cache: std::cell::RefCell<Option<(usize, NodeId, std::sync::Arc<KeyChain>)>>,
    /// Changes refused by a cap that depends on what else is held (twins at one position,
    /// actor ids per author), kept a little while with their author: a change of another
    /// author that arrives depending on one brings it in (see [`Ledger::admit`]).
    capped: VecDeque<(ChangeHash, NodeId, SignedChange)>,
    capped_bytes: usize,
    /// Hashes a waiting change of another author depends on, with that author: if one
    /// comes, those caps do not refuse it.
    wanted: VecDeque<(ChangeHash, NodeId)>,
    /// The same, for the batch being admitted (see [`Ledger::admit_batch`]): not evicted
    /// while the batch lasts, so a long run a change of the batch needs comes in whole; at
    /// most two distinct authors per hash, which is all "another author" asks.
    batch_wanted: Option<HashMap<ChangeHash, Vec<NodeId>>>,
    /// How many changes (and bytes) of revoked nodes that can never stand were held because
    /// another peer relayed them, since this ledger was made: bounded by
    /// [`RELAYED_REVOKED_KEEP`] and [`RELAYED_REVOKED_BYTES`].
    relayed_revoked: (usize, usize),
    /// For each change at a position (actor, seq) that holds twins, which held changes have it
    /// in their causal past (one bit per entry): a vector clock says only that *a* change at
    /// that position is in the past, not which twin.
    twin_desc: HashMap<u32, Descendants>,
    /// The capped changes already brought in (or tried) during the admission under way: each
    /// is tried once, however many waiting changes need it.
    forcing: HashSet<ChangeHash>,
    /// How many capped changes were brought in by force, in all (for tests of its cost).
    forced_total: u64,
    /// For the batch being admitted: the capped changes brought in by force that still wait,
    /// each not forced again until something it lacked (or a forced change it waits for) is
    /// held, so a chain of capped changes costs one forced admission each per batch however
    /// many changes of the batch need it.
    batch_forced: Option<ForcedWaiting>,
    /// The peer the changes being admitted came from, if the caller says (see
    /// [`Ledger::set_sender`] and [`Ledger::admit_batch`]).
    sender: Option<NodeId>,
}

/// Capped changes brought in by force that still wait, with what they lacked (see
/// [`Ledger::admit_batch`]).
#[derive(Clone, Debug, Default)]
struct ForcedWaiting {
    /// Forced change → the dependencies it lacked.
    lacks: HashMap<ChangeHash, Vec<ChangeHash>>,
    /// A lacked dependency → the forced changes that lacked it.
    waiting_on: HashMap<ChangeHash, Vec<ChangeHash>>,
}

impl ForcedWaiting {
    fn waits(&self, hash: &ChangeHash) -> bool {
        self.lacks.contains_key(hash)
    }

    fn add(&mut self, hash: ChangeHash, lacked: Vec<ChangeHash>) {
        for m in &lacked {
            self.waiting_on.entry(*m).or_default().push(hash);
        }
        self.lacks.insert(hash, lacked);
    }

    /// `hash` is held now: what lacked it may come in if forced again, and so may what waits
    /// for one of those (each entry is released once: linear in what was added).
    fn release(&mut self, hash: ChangeHash) {
        let mut stack = vec![hash];
        while let Some(h) = stack.pop() {
            for w in self.waiting_on.remove(&h).into_iter().flatten() {
                if self.lacks.remove(&w).is_some() {
                    stack.push(w);
                }
            }
        }
    }
}

/// One bit per entry: whether a given change is in that entry's causal past.
#[derive(Clone, Debug, Default)]
struct Descendants(Vec<u64>);

impl Descendants {
    fn get(&self, i: u32) -> bool {
        self.0
            .get(i as usize / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set(&mut self, i: u32) {
        let w = i as usize / 64;
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1 << (i % 64);
    }

    fn truncate(&mut self, len: usize) {
        self.0.truncate(len.div_ceil(64));
        if let Some(last) = self.0.last_mut()
            && !len.is_multiple_of(64)
        {
            *last &= (1u64 << (len % 64)) - 1;
        }
    }
}

/// Past these, a change that would belong to the evidence (a smaller hash) is refused too: an
/// author sending its twins or actors largest hash first gets no further.
const HARD_TWINS: usize = 2 * MAX_TWINS;
const HARD_ACTORS_PER_AUTHOR: usize = 4 * (MAX_ACTORS_PER_AUTHOR + 1);
/// Past this, not even a change another author's change needs brings in a new actor id.
const HARD_ACTORS: usize = MAX_ACTORS + WANTED_KEEP;
/// How many changes of revoked nodes that can never stand a document holds, void, because
/// other peers relayed them (per ledger, so per document and process).
pub const RELAYED_REVOKED_KEEP: usize = 1_000;
/// The same, in bytes.
pub const RELAYED_REVOKED_BYTES: usize = 16 << 20;
/// How many capped changes a ledger keeps, and their bytes at most.
const CAPPED_KEEP: usize = 64;
const CAPPED_BYTES: usize = 2 << 20;
/// How many wanted hashes a ledger remembers.
const WANTED_KEEP: usize = 1024;

fn short(hash: &ChangeHash) -> String {
    hash.to_string()[..12].to_string()
}

/// Roughly what a change weighs in memory.
/// The node whose key signs a change's actor, if it is one.
fn author_of(c: &SignedChange) -> Option<NodeId> {
    let key: [u8; 32] = c.data.actor.get(..32)?.try_into().ok()?;
    NodeId::from_key_bytes(key).ok()
}

/// A hard cap on what one author makes a node hold (twins at a position, actors): `hard` for
/// what the author sends itself, twice that for what another peer relays.
fn hard_cap(hard: usize, by_author: bool) -> usize {
    if by_author { hard } else { 2 * hard }
}

fn approx_bytes(c: &SignedChange) -> usize {
    256 + c
        .data
        .ops
        .iter()
        .map(|o| 64 + o.key.len() + o.value().map_or(0, str::len))
        .sum::<usize>()
}

fn parse_hash(text: &str) -> Option<ChangeHash> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(ChangeHash(out))
}

/// The most changes carrying one rotation or recovery record that a node takes from authors
/// who could place nothing else: one carrier is all the chain needs, and a few more let
/// copies made concurrently on different nodes meet.
pub const MAX_COPIES: usize = 4;

/// Whether the JSON `text` has the string `who` at `field` (a pool's charter naming its
/// coordinator's node, a section the node that placed it).
fn names(text: &str, field: &str, who: &str) -> bool {
    parse_value(text).is_some_and(|v| v.get(field).and_then(Json::as_str) == Some(who))
}

/// Whether every op of `data` (all puts of grants) is a grant naming `author` that `key`
/// accepts: a node placing its own delegation.
fn own_grants(author: &NodeId, data: &ChangeData, key: &impl Signers) -> bool {
    data.ops.iter().all(|op| {
        op.value()
            .and_then(|t| SignedGrant::parse(t).ok())
            .is_some_and(|g| g.grant.node == *author && key.accepts(&g))
    })
}

/// The most chain points (kind, epoch, signer) held whose records the key chain does not
/// read: a rotation by a key the chain never reaches is void, and one more point costs every
/// later admission.
pub const MAX_UNREAD_POINTS: usize = 64;

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

impl Ledger {
    /// A ledger holding only the document's genesis.
    pub fn new(doc: &DocId) -> Ledger {
        let mut l = Ledger {
            doc: doc.clone(),
            kind: doc.kind(),
            entries: Vec::new(),
            by_hash: HashMap::new(),
            actors: Vec::new(),
            actor_ix: HashMap::new(),
            author_actors: HashMap::new(),
            by_actor_seq: HashMap::new(),
            keys: BTreeMap::new(),
            op_at: HashMap::new(),
            settled: None,
            settled_key: None,
            recovery: None,
            chain_cache: std::cell::RefCell::new(None),
            capped: VecDeque::new(),
            capped_bytes: 0,
            wanted: VecDeque::new(),
            batch_wanted: None,
            relayed_revoked: (0, 0),
            twin_desc: HashMap::new(),
            forcing: HashSet::new(),
            forced_total: 0,
            batch_forced: None,
            sender: None,
        };
        if let Some(g) = genesis(doc) {
            let actor = g.actor_id().to_bytes().to_vec();
            l.actor_ix.insert(actor.clone(), 0);
            l.actors.push(Actor {
                bytes: actor,
                author: None,
            });
            l.by_hash.insert(g.hash(), 0);
            l.by_actor_seq.insert((0, 1), vec![0]);
            l.entries.push(Entry {
                hash: g.hash(),
                actor: 0,
                seq: 1,
                max_op: g.max_op(),
                deps: Vec::new(),
                clock: vec![1],
                data: None,
                signature: None,
                grant_only: false,
                new_actor: true,
            });
        }
        l
    }

    /// The document.
    pub fn doc(&self) -> &DocId {
        &self.doc
    }

    /// How many changes are held, the genesis included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether only the genesis is held.
    pub fn is_empty(&self) -> bool {
        self.entries.len() <= 1
    }

    /// Whether the change is held.
    pub fn has(&self, hash: &ChangeHash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// The hash of the genesis.
    pub fn genesis_hash(&self) -> Option<ChangeHash> {
        self.entries.first().map(|e| e.hash)
    }

    /// Every held change in the order it was admitted (which is a causal order), with its
    /// signature, the genesis left out (every node derives it).
    pub fn signed_changes(&self) -> impl Iterator<Item = (ChangeHash, SignedChange)> + '_ {
        self.entries.iter().filter_map(|e| {
            Some((
                e.hash,
                SignedChange {
                    data: e.data.clone()?,
                    signature: e.signature.map(|s| s.to_vec()).unwrap_or_default(),
                },
            ))
        })
    }

    /// One held change with its signature.
    pub fn signed(&self, hash: &ChangeHash) -> Option<SignedChange> {
        let e = &self.entries[*self.by_hash.get(hash)? as usize];
        Some(SignedChange {
            data: e.data.clone()?,
            signature: e.signature.map(|s| s.to_vec()).unwrap_or_default(),
        })
    }

    /// The author of a held change.
    pub fn author(&self, hash: &ChangeHash) -> Option<Author> {
        let e = &self.entries[*self.by_hash.get(hash)? as usize];
        Some(match self.actors[e.actor as usize].author {
            Some(n) => Author::Node(n),
            None => Author::Genesis,
        })
    }

    /// The dependencies of a held change.
    pub fn deps(&self, hash: &ChangeHash) -> Vec<ChangeHash> {
        match self.by_hash.get(hash) {
            Some(i) => self.entries[*i as usize]
                .deps
                .iter()
                .map(|d| self.entries[*d as usize].hash)
                .collect(),
            None => Vec::new(),
        }
    }

    fn merged_clock(&self, deps: &[u32]) -> Vec<u32> {
        let mut clock: Vec<u32> = Vec::new();
        for d in deps {
            let c = &self.entries[*d as usize].clock;
            if clock.len() < c.len() {
                clock.resize(c.len(), 0);
            }
            for (i, s) in c.iter().enumerate() {
                clock[i] = clock[i].max(*s);
            }
        }
        clock
    }

    /// Whether entry `x` is in the causal past of a change whose own actor is `actor` and
    /// whose clock is `clock` (the clock of its dependencies, or its own).
    /// Exact for a change alone at its position; [`Ledger::in_past_deps`] is exact for all.
    fn in_past_clock(&self, x: u32, clock: &[u32], actor: u32, seq: u32) -> bool {
        let e = &self.entries[x as usize];
        if e.actor == actor {
            return e.seq < seq;
        }
        clock.get(e.actor as usize).copied().unwrap_or(0) >= e.seq
    }

    /// Whether entry `x` is in the causal past of a change with dependencies `deps` (whose
    /// merged clock is `clock`, whose own actor and sequence number are `actor` and `seq`).
    /// A change at a position that holds twins is looked up in its exact descendants: which
    /// twin a chain went through is not in the clocks.
    fn in_past_deps(&self, x: u32, deps: &[u32], clock: &[u32], actor: u32, seq: u32) -> bool {
        match self.twin_desc.get(&x) {
            Some(d) => deps.iter().any(|p| *p == x || d.get(*p)),
            None => self.in_past_clock(x, clock, actor, seq),
        }
    }

    /// Whether entry `x` is strictly in the causal past of entry `at`.
    fn in_past(&self, x: u32, at: u32) -> bool {
        if x == at {
            return false;
        }
        if let Some(d) = self.twin_desc.get(&x) {
            return d.get(at);
        }
        let a = &self.entries[at as usize];
        self.in_past_clock(x, &a.clock, a.actor, a.seq)
    }

    /// Keeps the exact descendants of twins up to date once entry `ix` is added: every twin
    /// set gains `ix` if one of its dependencies has the twin in its past; a position that
    /// now holds two changes gets the descendants of each, computed over what is held (the
    /// entries are in causal order: a change comes after its dependencies).
    fn track_twins(&mut self, ix: u32) {
        let deps = self.entries[ix as usize].deps.clone();
        for (t, d) in self.twin_desc.iter_mut() {
            if deps.iter().any(|p| p == t || d.get(*p)) {
                d.set(ix);
            }
        }
        let e = &self.entries[ix as usize];
        let twins: Vec<u32> = match self.by_actor_seq.get(&(e.actor, e.seq)) {
            Some(v) if v.len() > 1 => v.clone(),
            _ => return,
        };
        for t in twins {
            if self.twin_desc.contains_key(&t) {
                continue;
            }
            let mut d = Descendants::default();
            for i in t + 1..=ix {
                if self.entries[i as usize]
                    .deps
                    .iter()
                    .any(|p| *p == t || d.get(*p))
                {
                    d.set(i);
                }
            }
            self.twin_desc.insert(t, d);
        }
    }

    /// Admits a change if it holds up (see the module documentation). `key` is the trusted key
    /// of the document's principal (ignored for pools, which are bound to their id).
    pub fn admit(&mut self, change: &SignedChange, key: Option<&NodeId>) -> Admitted {
        self.admit_with(change, key, true)
    }

    /// Admits a batch of changes from `sender` (`None`: this node's own), in any order: a
    /// change waiting for a dependency of the batch is tried again only once every dependency
    /// it lacked is held, so the work is in proportion to the batch however it is ordered.
    /// `dead` says whether a missing dependency was rejected for good (the change is then
    /// refused too). A change of a revoked node refused in the batch is taken again, once, as
    /// soon as a waiting change turns out to need it (the need is remembered by then, so it
    /// comes in, and its own missing dependency is taken again the same way): whatever order
    /// the batch came in, what it needs of a revoked run comes in whole.
    pub fn admit_batch<E>(
        &mut self,
        changes: Vec<SignedChange>,
        key: Option<&NodeId>,
        sender: Option<NodeId>,
        mut dead: impl FnMut(&ChangeHash) -> Result<bool, E>,
    ) -> Result<Batch, E> {
        self.sender = sender;
        self.batch_wanted = Some(HashMap::new());
        self.batch_forced = Some(ForcedWaiting::default());
        let out = self.admit_batch_inner(changes, key, &mut dead);
        self.batch_wanted = None;
        self.batch_forced = None;
        self.sender = None;
        out
    }

    fn admit_batch_inner<E>(
        &mut self,
        changes: Vec<SignedChange>,
        key: Option<&NodeId>,
        dead: &mut impl FnMut(&ChangeHash) -> Result<bool, E>,
    ) -> Result<Batch, E> {
        let mut out = Batch::default();
        let mut queue: VecDeque<SignedChange> = changes.into();
        // Waiting changes, each with how many of the dependencies it lacked are still missing,
        // and which of them wait for each missing hash.
        let mut parked: Vec<Option<Parked>> = Vec::new();
        let mut waiters: HashMap<ChangeHash, Vec<usize>> = HashMap::new();
        // Changes of a revoked node refused so far, by hash: one a waiting change turns out to
        // need is taken again at once (the need is remembered by then), once.
        let mut revoked: HashMap<ChangeHash, (Rejection, SignedChange)> = HashMap::new();
        let mut order: Vec<ChangeHash> = Vec::new();
        let mut retaken: HashSet<ChangeHash> = HashSet::new();
        // Each waiting change is tried early at most once for a grant naming its author and
        // once for the refusal of a revoked change it waits for: two budgets, so that using
        // one (the refusal, before the grant came) does not leave it waiting (still linear).
        let mut retried_on_grant: HashSet<ChangeHash> = HashSet::new();
        let mut retried_on_refusal: HashSet<ChangeHash> = HashSet::new();
        // Where each waiting change is parked, and those tried again because a later change
        // turned out to need them (once each: still linear).
        let mut parked_at: HashMap<ChangeHash, usize> = HashMap::new();
        let mut retried_on_want: HashSet<ChangeHash> = HashSet::new();
        while let Some(c) = queue.pop_front() {
            let before = self.entries.len();
            out.attempts += 1;
            let admitted = self.admit(&c, key);
            // Every change newly held (the one tried, and any capped one it brought in) is
            // reported, so the store keeps it, and wakes what waits for it.
            for ix in before..self.entries.len() {
                let h = self.entries[ix].hash;
                // The nodes a newly held grant names: a waiting change of theirs may pass
                // the screen now.
                let granted: Vec<NodeId> =
                    match (&self.entries[ix].data, self.entries[ix].grant_only) {
                        (Some(d), true) => d
                            .ops
                            .iter()
                            .filter_map(|op| op.value())
                            .filter_map(|v| SignedGrant::parse(v).ok())
                            .map(|g| g.grant.node)
                            .collect(),
                        _ => Vec::new(),
                    };
                let held = if matches!(admitted, Admitted::New(n) if n == h) {
                    Some(c.clone())
                } else {
                    self.signed(&h)
                };
                if let Some(held) = held {
                    out.held.push((h, held));
                }
                for w in waiters.remove(&h).into_iter().flatten() {
                    let Some(p) = parked[w].as_mut() else {
                        continue;
                    };
                    p.3 = p.3.saturating_sub(1);
                    // Tried again once all it lacked is held; or at once if what came is a
                    // grant (its author may pass the screen now) and what it still lacks is a
                    // refused revoked change, so that it says it needs it. Grants a batch
                    // brings are few: this costs at most one try per grant and waiting change.
                    let early = p.3 != 0
                        && !retried_on_grant.contains(&p.0)
                        && author_of(&p.1).is_some_and(|a| granted.contains(&a))
                        && p.2
                            .iter()
                            .any(|m| revoked.contains_key(m) && !self.by_hash.contains_key(m));
                    if early {
                        retried_on_grant.insert(p.0);
                    }
                    if (p.3 == 0 || early)
                        && let Some((_, c, _, _)) = parked[w].take()
                    {
                        queue.push_back(c);
                    }
                }
            }
            match admitted {
                Admitted::New(_) | Admitted::Known(_) => {}
                Admitted::Waiting(h, missing) => {
                    let mut gone = None;
                    for m in &missing {
                        if dead(m)? {
                            gone = Some(*m);
                            break;
                        }
                    }
                    if let Some(dep) = gone {
                        out.refused.push((
                            Some(h),
                            Rejection::DependsOnRejected {
                                hash: short(&h),
                                dep: short(&dep),
                            },
                        ));
                        continue;
                    }
                    let w = parked.len();
                    for m in &missing {
                        waiters.entry(*m).or_default().push(w);
                        // A refused revoked change this one needs, now that the need is
                        // remembered (only a change whose author passes the screen says so).
                        let needed = revoked.get(m).is_some_and(|(r, _)| match r {
                            Rejection::Revoked { author, .. } => self.wanted_by_other(m, author),
                            _ => false,
                        });
                        if needed && let Some((_, again)) = revoked.remove(m) {
                            retaken.insert(*m);
                            queue.push_front(again);
                        }
                    }
                    // What it lacks that waits here too, parked before anyone said it was
                    // needed, is tried again now that the need is remembered: a writer built on
                    // a run of changes its author alone could not bring in (an earlier epoch's
                    // ministry), and one batch brings the whole run, not one step of it (red
                    // team, session 25).
                    for m in &missing {
                        let Some(at) = parked_at.get(m).copied() else {
                            continue;
                        };
                        let needed = parked[at]
                            .as_ref()
                            .and_then(|p| author_of(&p.1))
                            .is_some_and(|a| self.wanted_by_writer(m, &a, key));
                        if needed
                            && retried_on_want.insert(*m)
                            && let Some((_, again, _, _)) = parked[at].take()
                        {
                            queue.push_front(again);
                        }
                    }
                    parked_at.insert(h, parked.len());
                    parked.push(Some((h, c, missing.clone(), missing.len())));
                }
                Admitted::Refused(Some(h), r @ Rejection::Revoked { .. })
                    if !retaken.contains(&h) =>
                {
                    if !revoked.contains_key(&h) {
                        order.push(h);
                    }
                    revoked.insert(h, (r, c));
                    // A change already waiting for it may not have said it needs it (its
                    // author did not pass the screen then): it is tried again, once.
                    for w in waiters.get(&h).into_iter().flatten() {
                        if let Some(p) = parked[*w].as_ref()
                            && !retried_on_refusal.contains(&p.0)
                        {
                            retried_on_refusal.insert(p.0);
                            if let Some((_, c, _, _)) = parked[*w].take() {
                                queue.push_back(c);
                            }
                        }
                    }
                }
                Admitted::Refused(h, r) => out.refused.push((h, r)),
            }
        }
        // What a forced admission brought in meanwhile is held, not refused nor waiting.
        for h in order {
            if let Some((r, _)) = revoked.remove(&h)
                && !self.has(&h)
            {
                out.refused.push((Some(h), r));
            }
        }
        out.waiting = parked
            .into_iter()
            .flatten()
            .filter(|(h, ..)| !self.has(h))
            .map(|(h, c, missing, _)| (h, c, missing))
            .collect();
        Ok(out)
    }

    /// Admits a change read back from this node's own store: every check but the screen of
    /// authors, which it passed when it arrived (standing is judged again all the same).
    pub fn admit_stored(&mut self, change: &SignedChange, key: Option<&NodeId>) -> Admitted {
        self.admit_with(change, key, false)
    }

    /// Says which peer the next changes given to [`Ledger::admit`] come from (`None`:
    /// unknown, or this node's own; [`Ledger::admit_batch`] says it itself). It decides no
    /// verdict: a refusal that depends on what else is held (a revocation, a cap) counts
    /// against the peer only when the peer is the change's author, and past the hard caps
    /// only changes relayed by another peer, among the evidence, come in.
    pub fn set_sender(&mut self, peer: Option<NodeId>) {
        self.sender = peer;
    }

    /// How many capped changes this ledger has brought in by force since it was made.
    pub fn forced_admissions(&self) -> u64 {
        self.forced_total
    }

    /// Admits a change a cap refused, because another author's change needs it.
    fn admit_forced(&mut self, change: &SignedChange, key: Option<&NodeId>) -> Admitted {
        self.forced_total += 1;
        self.admit_inner(change, key, true, true)
    }

    fn admit_with(
        &mut self,
        change: &SignedChange,
        key: Option<&NodeId>,
        screen: bool,
    ) -> Admitted {
        self.forcing.clear();
        let out = self.admit_inner(change, key, screen, false);
        self.forcing.clear();
        out
    }

    /// Whether a waiting change of an author other than `author` needs `hash`.
    fn wanted_by_other(&self, hash: &ChangeHash, author: &NodeId) -> bool {
        self.wanted.iter().any(|(h, a)| h == hash && a != author)
            || self
                .batch_wanted
                .as_ref()
                .and_then(|b| b.get(hash))
                .is_some_and(|ws| ws.iter().any(|a| a != author))
    }

    /// Whether a waiting change of a *writer* other than `author` needs `hash`: an author
    /// holding a delegation the key chain accepts now (the key in force, or kept), not one
    /// that passed the screen only by an older key or as a carrier of chain records. Such a
    /// change passes the screen whoever wrote it: an honest writer built on it, so every node
    /// must hold it to converge (a ministry delegated by a key an old epoch rotated to, whose
    /// work the State's node built on, found by the red team in session 25). Whether it
    /// stands is judged as for any other.
    fn wanted_by_writer(&self, hash: &ChangeHash, author: &NodeId, key: Option<&NodeId>) -> bool {
        let (Some(principal), Some(key)) = (self.doc.principal(), key) else {
            return false;
        };
        let batch = self.batch_wanted.as_ref().and_then(|b| b.get(hash));
        let mut wanters = self
            .wanted
            .iter()
            .filter(|(h, _)| h == hash)
            .map(|(_, a)| a)
            .chain(batch.into_iter().flatten())
            .filter(|a| *a != author)
            .peekable();
        if wanters.peek().is_none() {
            return false;
        }
        let chain = self.key_chain(key);
        wanters.any(|a| self.writer_now(a, &principal, key, &chain))
    }

    /// Whether `author` holds a delegation the key chain accepts now and every revocation of
    /// it held here still keeps a change of it this node lacks: a writer whose needs pass the
    /// screen and the caps. A revoked writer's one relayed change pulled in a stranger's run
    /// of any length (red team, session 25); but a change a revocation keeps is the State's
    /// own word that it stands, so what it needs comes in wherever the revocation came first
    /// (red team, session 26). Once the kept changes are held, the writer's wants count no
    /// more.
    fn writer_now(
        &self,
        author: &NodeId,
        principal: &Principal,
        key: &NodeId,
        chain: &KeyChain,
    ) -> bool {
        self.delegated_by(author, principal, chain)
            && !self
                .held_revocations(Some(key), Some(chain), &|_| true, Some(author))
                .values()
                .any(|g| g.grant.node == *author && !self.keeps_unheld(g))
    }

    /// Whether a revocation's cut-off names, for this document, a last kept change not held
    /// here.
    fn keeps_unheld(&self, g: &SignedGrant) -> bool {
        g.grant.cutoff.iter().any(|c| {
            c.doc == self.doc
                && c.head
                    .as_ref()
                    .and_then(|h| parse_hash(h))
                    .is_some_and(|h| !self.by_hash.contains_key(&h))
        })
    }

    /// How many actors held belong to writers now ([`Ledger::writer_now`]): past the hard
    /// cap of actors, a writer still gets a new actor while these are fewer than the soft
    /// cap, so the puppets of a key a recovery retired, void since, do not keep the State's
    /// new nodes out for good (red team, session 25). Counted only at the hard cap.
    fn writer_actors(&self, key: Option<&NodeId>) -> usize {
        let (Some(principal), Some(key)) = (self.doc.principal(), key) else {
            return usize::MAX;
        };
        let chain = self.key_chain(key);
        let mut writers: HashMap<NodeId, bool> = HashMap::new();
        self.actors
            .iter()
            .filter_map(|a| a.author)
            .filter(|a| {
                *writers
                    .entry(*a)
                    .or_insert_with(|| self.writer_now(a, &principal, key, &chain))
            })
            .count()
    }

    /// Whether `hash` would be among the `k` smallest hashes of `held` and itself.
    fn among_smallest(&self, held: impl Iterator<Item = u32>, hash: &ChangeHash, k: usize) -> bool {
        held.filter(|i| self.entries[*i as usize].hash < *hash)
            .count()
            < k
    }

    fn keep_capped(&mut self, hash: ChangeHash, author: NodeId, change: &SignedChange) {
        let bytes = approx_bytes(change);
        if bytes > CAPPED_BYTES || self.capped.iter().any(|(h, _, _)| *h == hash) {
            return;
        }
        while self.capped.len() >= CAPPED_KEEP || self.capped_bytes + bytes > CAPPED_BYTES {
            let Some((_, _, c)) = self.capped.pop_front() else {
                break;
            };
            self.capped_bytes = self.capped_bytes.saturating_sub(approx_bytes(&c));
        }
        self.capped_bytes += bytes;
        self.capped.push_back((hash, author, change.clone()));
    }

    fn admit_inner(
        &mut self,
        change: &SignedChange,
        key: Option<&NodeId>,
        screen: bool,
        forced: bool,
    ) -> Admitted {
        let data = &change.data;
        let containers = self.kind.container_policies().len();
        if let Err(m) = data.check(containers) {
            return Admitted::Refused(None, Rejection::Malformed(m));
        }
        let am = match data.to_automerge(&self.doc) {
            Ok(c) => c,
            Err(m) => return Admitted::Refused(None, Rejection::Malformed(m)),
        };
        let hash = am.hash();
        if self.by_hash.contains_key(&hash) {
            return Admitted::Known(hash);
        }
        let refuse = |r: Rejection| Admitted::Refused(Some(hash), r);
        let mut key_bytes = [0u8; 32];
        key_bytes.copy_from_slice(&data.actor[..32]);
        let Ok(author) = NodeId::from_key_bytes(key_bytes) else {
            return refuse(Rejection::ForeignActor);
        };
        let Some(signature) = change.signature() else {
            return refuse(Rejection::Unsigned { hash: short(&hash) });
        };
        if !verify(&author, &change_signing_bytes(&self.doc, &hash), &signature) {
            return refuse(Rejection::BadSignature {
                hash: short(&hash),
                author,
            });
        }
        // A revoked node's change that its revocation cannot keep is void everywhere: sent by
        // that node itself, it is not stored (its twins would cost every later admission)
        // nor waited for, unless another author's change needs it. Relayed by another peer,
        // it is held, void, within a budget: an honest relay that has not seen the
        // revocation forwards it in good faith, and an honest change it sends later, in
        // another batch, may be built on it; past the budget (a relay pouring in a revoked
        // node's chain) it is refused too.
        let needed = forced || self.wanted_by_other(&hash, &author);
        let by_author = self.sender.is_none_or(|p| p == author);
        let revoked = screen && !needed && self.revoked_for_good(&author, &data.actor, key);
        let bytes = approx_bytes(change);
        if revoked
            && (by_author
                || self.relayed_revoked.0 >= RELAYED_REVOKED_KEEP
                || self.relayed_revoked.1 + bytes > RELAYED_REVOKED_BYTES)
        {
            self.keep_capped(hash, author, change);
            return refuse(Rejection::Revoked {
                hash: short(&hash),
                author,
                by_author,
            });
        }
        let deps: Vec<ChangeHash> = data.deps.iter().map(|d| ChangeHash(*d)).collect();
        let missing: Vec<ChangeHash> = deps.iter().filter(|d| !self.has(d)).copied().collect();
        let grant_only = data.ops.iter().all(|op| {
            matches!(self.kind.policy(op.container), Some((_, Policy::Grant)))
                && matches!(op.action, FlatAction::Put { .. })
        });
        // Needed by a writer's change: it passes the screen (see [`Ledger::wanted_by_writer`]).
        let screen = screen && !self.wanted_by_writer(&hash, &author, key);
        if !missing.is_empty() {
            // Only a change whose author could write here marks anything as needed.
            if screen && self.screen(&author, data, grant_only, key).is_err() {
                return Admitted::Waiting(hash, missing);
            }
            // Who needs this change's dependencies: its author, and whoever needs the change
            // itself (so a change of another author two steps past a capped change still
            // brings it in).
            let mut wanters: Vec<NodeId> = vec![author];
            let batch = self.batch_wanted.as_ref().and_then(|b| b.get(&hash));
            for a in self
                .wanted
                .iter()
                .filter(|(h, _)| *h == hash)
                .map(|(_, a)| a)
                .chain(batch.into_iter().flatten())
            {
                if !wanters.contains(a) {
                    wanters.push(*a);
                }
            }
            // What this change lacks is wanted by everyone who wants it (remembered first, so
            // a capped dependency brought in below knows who needs it, and brings in its own).
            for m in &missing {
                for w in &wanters {
                    if let Some(b) = self.batch_wanted.as_mut() {
                        let ws = b.entry(*m).or_default();
                        if ws.len() < 2 && !ws.contains(w) {
                            ws.push(*w);
                        }
                    }
                    if !self.wanted.iter().any(|(h, a)| h == m && a == w) {
                        if self.wanted.len() >= WANTED_KEEP {
                            self.wanted.pop_front();
                        }
                        self.wanted.push_back((*m, *w));
                    }
                }
            }
            // A dependency refused by a cap that depends on arrival order, needed by another
            // author: an honest node built on it where it came first, so it comes in here too.
            // A change of a writer (not a carrier of chain records) also brings in a carrier
            // of its own author that the copies bound refused, if the chain reads its records:
            // the new epoch's node carries the recovery, then delegates itself on it, and a
            // stranger's copies of the record sent first must not lock it out (red team,
            // session 25). No other cap gives way to an author's own change.
            let own_writer = self.chain_records_of(data).is_none();
            let mut brought = false;
            for m in &missing {
                // Tried already in this admission, or forced earlier in the batch and still
                // waiting with nothing it lacked held since: forcing it again changes nothing.
                if self.forcing.contains(m)
                    || self.batch_forced.as_ref().is_some_and(|f| f.waits(m))
                {
                    continue;
                }
                let at = self.capped.iter().position(|(h, a, c)| {
                    h == m
                        && (wanters.iter().any(|w| w != a)
                            || (own_writer
                                && *a == author
                                && key.is_some_and(|k| self.places_read_records(&c.data, k))))
                });
                if let Some((h, a, c)) = at.and_then(|at| self.capped.remove(at)) {
                    self.forcing.insert(h);
                    self.capped_bytes = self.capped_bytes.saturating_sub(approx_bytes(&c));
                    match self.admit_forced(&c, key) {
                        Admitted::New(_) => brought = true,
                        // Still missing something itself: kept for when that comes.
                        Admitted::Waiting(_, lacked) => {
                            self.keep_capped(h, a, &c);
                            if let Some(f) = self.batch_forced.as_mut() {
                                f.add(h, lacked);
                            }
                        }
                        _ => {}
                    }
                }
            }
            if brought {
                return self.admit_inner(change, key, screen, forced);
            }
            return Admitted::Waiting(hash, missing);
        }
        let dep_ix: Vec<u32> = deps.iter().map(|d| self.by_hash[d]).collect();
        let dclock = self.merged_clock(&dep_ix);
        let existing_actor = self.actor_ix.get(&data.actor).copied();
        let own = existing_actor
            .and_then(|a| dclock.get(a as usize).copied())
            .unwrap_or(0);
        let expected_seq = u64::from(own) + 1;
        if data.seq != expected_seq {
            return refuse(Rejection::SeqGap {
                hash: short(&hash),
                author,
                expected: expected_seq,
                got: data.seq,
            });
        }
        let expected_start = dep_ix
            .iter()
            .map(|d| self.entries[*d as usize].max_op)
            .max()
            .unwrap_or(0)
            + 1;
        if data.start_op != expected_start {
            return refuse(Rejection::StartOp {
                hash: short(&hash),
                author,
                expected: expected_start,
                got: data.start_op,
            });
        }
        let seq = data.seq as u32;
        // Who could not write here at all is refused as such before any cap (a cap's refusal
        // of a relayed change does not count against the peer, this one does).
        if let Err(why) = if screen {
            self.screen(&author, data, grant_only, key)
        } else {
            Ok(())
        } {
            // Kept a while, as a capped change is: if a writer's change turns out to need it,
            // it comes in from here (see [`Ledger::wanted_by_writer`]).
            if matches!(why, Screen::NotAWriter(_)) {
                self.keep_capped(hash, author, change);
            }
            return refuse(match why {
                Screen::NoKey(d) => Rejection::NoKey(d),
                Screen::NotAWriter(why) => Rejection::NotAWriter {
                    hash: short(&hash),
                    author,
                    why,
                },
            });
        }
        // Caps on what a misbehaving author can make a node hold. They depend on what else is
        // held, so none refuses a change another author's change needs, or one that belongs
        // to the evidence every node offers (see [`Ledger::settle`]): honest nodes holding
        // different parts of a flood still converge.
        let wanted = forced || !screen || self.wanted_by_other(&hash, &author);
        // More rotations or recoveries than the chain needs (see [`Ledger::chain_flood`]).
        if screen
            && !wanted
            && let Some(why) = self.chain_flood(&author, data, key)
        {
            self.keep_capped(hash, author, change);
            return refuse(Rejection::ChainFlood {
                hash: short(&hash),
                by_author,
                why,
            });
        }
        // Past the soft cap only what would be among the evidence comes in; past the hard cap,
        // not even that from the author itself (a flood in falling hash order); a relay's, up
        // to twice the hard cap, so that the evidence an honest node relays still comes in
        // where the author's flood filled the hard cap, and a relay's flood is bounded too.
        if let Some(a) = existing_actor
            && let Some(twins) = self.by_actor_seq.get(&(a, seq))
            && twins.len() >= MAX_TWINS
            && !wanted
            && (twins.len() >= hard_cap(HARD_TWINS, by_author)
                || !self.among_smallest(twins.iter().copied(), &hash, 2))
        {
            self.keep_capped(hash, author, change);
            return refuse(Rejection::TooManyTwins {
                hash: short(&hash),
                by_author,
            });
        }
        if existing_actor.is_none() {
            // Past the soft cap, a new actor comes in only for a writer by the chain as it
            // stands, a change such a writer needs, or a carrier of chain records the chain
            // reads (the recovery that voids the puppets, carried by the new epoch's node);
            // past the hard cap, only while the actors of writers now are fewer than the soft
            // cap. A leaked key's sock puppets (each its own author, needing one another)
            // filled the document for good, and locked out the recovery and every ministry
            // delegated after (red team, session 25). Judged only at the caps.
            let exempt = || {
                !screen
                    || self.is_writer(&author, data, grant_only, key)
                    || (self.chain_records_of(data).is_some()
                        && key.is_some_and(|k| self.places_read_records(data, k)))
            };
            if self.actors.len() >= MAX_ACTORS
                && (!exempt()
                    || (self.actors.len() >= HARD_ACTORS && self.writer_actors(key) >= MAX_ACTORS))
            {
                self.keep_capped(hash, author, change);
                return refuse(Rejection::TooManyActors {
                    hash: short(&hash),
                    by_author,
                });
            }
            let firsts: Vec<u32> = self
                .author_actors
                .get(&author)
                .into_iter()
                .flatten()
                .filter_map(|a| self.first_of_actor(*a, &|_| true))
                .collect();
            if firsts.len() > MAX_ACTORS_PER_AUTHOR
                && !wanted
                && (firsts.len() >= hard_cap(HARD_ACTORS_PER_AUTHOR, by_author)
                    || !self.among_smallest(firsts.into_iter(), &hash, MAX_ACTORS_PER_AUTHOR + 1))
            {
                self.keep_capped(hash, author, change);
                return refuse(Rejection::TooManyActors {
                    hash: short(&hash),
                    by_author,
                });
            }
        }
        // A predecessor must be an operation on the same key in the change's causal past.
        for op in &data.ops {
            for p in op.preds() {
                let found = self.actor_ix.get(&p.actor).is_some_and(|pa| {
                    self.op_at.get(&(p.counter, *pa)).is_some_and(|ats| {
                        ats.iter().any(|at| {
                            let e = &self.entries[at.entry as usize];
                            let target = e.data.as_ref().map(|d| &d.ops[at.op as usize]);
                            target.is_some_and(|t| {
                                t.container == op.container
                                    && t.key == op.key
                                    && matches!(t.action, FlatAction::Put { .. })
                            }) && self.in_past_deps(
                                at.entry,
                                &dep_ix,
                                &dclock,
                                existing_actor.unwrap_or(u32::MAX),
                                seq,
                            )
                        })
                    })
                });
                if !found {
                    return refuse(Rejection::BadPred {
                        hash: short(&hash),
                        key: op.key.clone(),
                    });
                }
            }
        }
        if revoked {
            self.relayed_revoked.0 += 1;
            self.relayed_revoked.1 += bytes;
        }
        self.insert(
            hash,
            author,
            data,
            signature,
            dep_ix,
            dclock,
            grant_only,
            am.max_op(),
        );
        Admitted::New(hash)
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        hash: ChangeHash,
        author: NodeId,
        data: &ChangeData,
        signature: Signature,
        deps: Vec<u32>,
        mut clock: Vec<u32>,
        grant_only: bool,
        max_op: u64,
    ) {
        let ix = self.entries.len() as u32;
        let (actor, new_actor) = match self.actor_ix.get(&data.actor) {
            Some(a) => (*a, false),
            None => {
                let a = self.actors.len() as u32;
                self.actors.push(Actor {
                    bytes: data.actor.clone(),
                    author: Some(author),
                });
                self.actor_ix.insert(data.actor.clone(), a);
                self.author_actors.entry(author).or_default().push(a);
                (a, true)
            }
        };
        let seq = data.seq as u32;
        if clock.len() <= actor as usize {
            clock.resize(actor as usize + 1, 0);
        }
        clock[actor as usize] = seq;
        for (i, op) in data.ops.iter().enumerate() {
            let at = OpAt {
                entry: ix,
                op: i as u16,
            };
            self.keys
                .entry((op.container, op.key.clone()))
                .or_default()
                .push(at);
            self.op_at
                .entry((data.start_op + i as u64, actor))
                .or_default()
                .push(at);
        }
        self.by_hash.insert(hash, ix);
        self.by_actor_seq.entry((actor, seq)).or_default().push(ix);
        self.entries.push(Entry {
            hash,
            actor,
            seq,
            max_op,
            deps,
            clock,
            data: Some(data.clone()),
            signature: Some(signature),
            grant_only,
            new_actor,
        });
        self.track_twins(ix);
        if let Some(f) = self.batch_forced.as_mut() {
            f.release(hash);
        }
        self.settled = None;
    }

    /// Forgets every change admitted after the first `len`: undoes a tentative batch.
    pub fn truncate(&mut self, len: usize) {
        // The key chain is cached by the number of changes held: once the count is back to
        // where it was, with other changes, it would be another set's chain.
        *self.chain_cache.get_mut() = None;
        if let Some(f) = self.batch_forced.as_mut() {
            *f = ForcedWaiting::default();
        }
        let keep = len.max(1);
        self.twin_desc.retain(|t, _| (*t as usize) < keep);
        for d in self.twin_desc.values_mut() {
            d.truncate(keep);
        }
        while self.entries.len() > len.max(1) {
            let Some(e) = self.entries.pop() else { break };
            let ix = self.entries.len() as u32;
            self.by_hash.remove(&e.hash);
            if let Some(v) = self.by_actor_seq.get_mut(&(e.actor, e.seq)) {
                v.retain(|x| *x != ix);
                if v.len() == 1 {
                    // Alone at its position again: its clock is exact.
                    self.twin_desc.remove(&v[0]);
                }
                if v.is_empty() {
                    self.by_actor_seq.remove(&(e.actor, e.seq));
                }
            }
            if let Some(data) = &e.data {
                for (i, op) in data.ops.iter().enumerate() {
                    let k = (op.container, op.key.clone());
                    if let Some(v) = self.keys.get_mut(&k) {
                        v.retain(|at| at.entry != ix);
                        if v.is_empty() {
                            self.keys.remove(&k);
                        }
                    }
                    let k = (data.start_op + i as u64, e.actor);
                    if let Some(v) = self.op_at.get_mut(&k) {
                        v.retain(|at| at.entry != ix);
                        if v.is_empty() {
                            self.op_at.remove(&k);
                        }
                    }
                }
            }
            if e.new_actor
                && let Some(a) = self.actors.pop()
            {
                self.actor_ix.remove(&a.bytes);
                if let Some(author) = a.author
                    && let Some(v) = self.author_actors.get_mut(&author)
                {
                    v.retain(|x| *x != e.actor);
                    if v.is_empty() {
                        self.author_actors.remove(&author);
                    }
                }
            }
            self.settled = None;
        }
    }

    /// Whether `author` could be a writer of this document at all: the cheap screen that keeps
    /// strangers' changes from being stored. It does not decide standing.
    fn screen(
        &self,
        author: &NodeId,
        data: &ChangeData,
        grant_only: bool,
        key: Option<&NodeId>,
    ) -> Result<(), Screen> {
        match &self.doc {
            DocId::Pool(id) => {
                if id.is_creator(author) {
                    return Ok(());
                }
                let me = format!("/{author}");
                let members = self.kind.container("members");
                // A join names the node's State, and carries a delegation of the node signed
                // by the key an invitation of that State (held here, in any version) names:
                // a stranger's key cannot make a node hold its changes.
                let joining = data.ops.iter().any(|op| {
                    Some(op.container) == members
                        && op.key.ends_with(&me)
                        && op
                            .value()
                            .is_some_and(|v| self.invited_join(&op.key, author, v, &|_| true))
                });
                // A member: a join of its own it placed, signed by an invited key (held in any
                // version; what it may write is judged when it settles).
                let member = members.is_some_and(|c| {
                    self.keys
                        .range((c, String::new())..(c + 1, String::new()))
                        .any(|((_, k), _)| {
                            k.ends_with(&me)
                                && k.matches('/').count() == 1
                                && !self.member_keys(k, &|_| true).is_empty()
                        })
                });
                if joining || member {
                    Ok(())
                } else {
                    Err(Screen::NotAWriter(format!(
                        "it is neither the coordinator of {} nor a node joining it or a member of it",
                        self.doc
                    )))
                }
            }
            _ => {
                let Some(principal) = self.doc.principal() else {
                    return Err(Screen::NotAWriter("the document has no owner".into()));
                };
                let Some(key) = key else {
                    return Err(Screen::NoKey(no_key(&principal)));
                };
                let chain = self.key_chain(key);
                let ever = crate::authority::EverHeld(&chain);
                if (grant_only && own_grants(author, data, &ever))
                    || self.has_any_delegation(author, &principal, key)
                    || (grant_only && self.places_read_records(data, key))
                {
                    Ok(())
                } else {
                    Err(Screen::NotAWriter(format!(
                        "no delegation of {}'s {} names it",
                        principal.code(),
                        principal.key_name()
                    )))
                }
            }
        }
    }

    /// Whether held entry `i` passes the screen of authors on its own, with no change here
    /// wanting it: what any peer holding the same set takes from a relay. Only such changes
    /// make a set-wide judgement (an equivocation, too many actors) and its evidence. A
    /// stranger's changes a writer's waiting change let in are held only where that change
    /// is: offered as evidence, every peer without it refused them at the screen, and two
    /// honest nodes offered different heads for good (red team, round 30).
    fn screened(&self, i: u32, key: Option<&NodeId>) -> bool {
        let e = &self.entries[i as usize];
        match (&e.data, self.actors[e.actor as usize].author) {
            (Some(data), Some(author)) => self.screen(&author, data, e.grant_only, key).is_ok(),
            _ => true,
        }
    }

    fn has_any_delegation(&self, author: &NodeId, principal: &Principal, key: &NodeId) -> bool {
        let chain = self.key_chain(key);
        self.delegated_by(author, principal, &crate::authority::EverHeld(&chain))
    }

    /// Whether `author` writes here by the key chain as it stands (not by an older key, nor
    /// as a carrier of chain records): it holds a delegation the chain accepts, or `data` is
    /// its own delegation the chain accepts.
    fn is_writer(
        &self,
        author: &NodeId,
        data: &ChangeData,
        grant_only: bool,
        key: Option<&NodeId>,
    ) -> bool {
        let (Some(principal), Some(key)) = (self.doc.principal(), key) else {
            return false;
        };
        let chain = self.key_chain(key);
        self.writer_now(author, &principal, key, &chain)
            || (grant_only && own_grants(author, data, &*chain))
    }

    /// Whether a delegation of `author` that `key` accepts is held (in any change, whatever
    /// its verdict).
    fn delegated_by(&self, author: &NodeId, principal: &Principal, key: &impl Signers) -> bool {
        let Some(c) = self.kind.container("delegations") else {
            return false;
        };
        let prefix = format!("{author}/");
        self.keys
            .range((c, prefix.clone())..)
            .take_while(|((cc, k), _)| *cc == c && k.starts_with(&prefix))
            .any(|((_, k), ats)| {
                ats.iter().any(|at| {
                    self.op(*at).value().is_some_and(|text| {
                        SignedGrant::parse_at(text, k, GrantKind::Delegation, principal, key)
                            .is_ok()
                    })
                })
            })
    }

    fn op(&self, at: OpAt) -> &FlatOp {
        // Only entries with data have operations indexed.
        match &self.entries[at.entry as usize].data {
            Some(d) => &d.ops[at.op as usize],
            None => unreachable_op(),
        }
    }

    /// Settles the ledger against the document's key: judges every held change, materialises
    /// what stands, and computes what to offer peers. Cached until the next admission.
    pub fn settle(&mut self, key: Option<&NodeId>) -> &Settled {
        if self.settled.is_none() || self.settled_key.as_ref() != key {
            self.settled = Some(self.judge(None, key));
            self.settled_key = key.copied();
        }
        self.settled.get_or_insert_with(unreachable_settled)
    }

    /// Sets the recovery key this node trusts for the document's principal (`None` if it
    /// knows none): with it, the document's key recoveries are followed. Verdicts are
    /// judged again when it changes.
    pub fn set_recovery(&mut self, recovery: Option<NodeId>) {
        if self.recovery != recovery {
            self.recovery = recovery;
            self.settled = None;
            *self.chain_cache.get_mut() = None;
        }
    }

    /// The principal's keys as the rotations and recoveries held make them from the trusted
    /// `key` (see [`KeyChain`]).
    pub fn key_chain(&self, key: &NodeId) -> std::sync::Arc<KeyChain> {
        // Only the rotation records held move it: counted, not parsed.
        let n = self
            .kind
            .container("rotations")
            .map(|c| {
                self.keys
                    .range((c, String::new())..(c + 1, String::new()))
                    .map(|(_, ats)| ats.len())
                    .sum::<usize>()
            })
            .unwrap_or(0);
        if let Some((len, k, c)) = &*self.chain_cache.borrow()
            && *len == n
            && k == key
        {
            return c.clone();
        }
        let c = std::sync::Arc::new(self.chain_in(key, &|_| true));
        *self.chain_cache.borrow_mut() = Some((n, *key, c.clone()));
        c
    }

    /// The key chain read off the changes `inside` says are judged.
    fn chain_in(&self, key: &NodeId, inside: &dyn Fn(usize) -> bool) -> KeyChain {
        KeyChain::resolve(*key, self.recovery, self.chain_records(inside))
    }

    /// The rotations and recoveries `data` places, if that is all it places: each a put in the
    /// principal's `rotations` container, at its own storage key, with its signature checked.
    /// Only such changes move the key chain (see [`Ledger::chain_records`]).
    fn chain_records_of(&self, data: &ChangeData) -> Option<Vec<SignedGrant>> {
        let principal = self.doc.principal()?;
        let mut own = Vec::new();
        for op in &data.ops {
            let Some(Ok(g)) = op.value().map(SignedGrant::parse) else {
                return None;
            };
            if self.kind.policy(op.container).map(|(c, _)| c) != Some("rotations")
                || !matches!(g.grant.kind, GrantKind::Rotation | GrantKind::Recovery)
                || g.grant.principal != principal
                || g.storage_key() != op.key
            {
                return None;
            }
            own.push(g);
        }
        (!own.is_empty()).then_some(own)
    }

    /// Whether, with the records `data` places held too, the chain from `key` reads every one
    /// of them (follows it, or stops at it as one of a fork's two smallest). Such a change is
    /// worth holding whoever placed it: without it the State's own nodes, voided by a thief's
    /// rotation, could not bring in the recovery that restores them. Read off the chain alone:
    /// a record the chain does not read (a dead epoch's, one past a fork, a fork's third) is
    /// refused, so a thief's flood of forks costs a node no more than two records.
    fn places_read_records(&self, data: &ChangeData, key: &NodeId) -> bool {
        let Some(own) = self.chain_records_of(data) else {
            return false;
        };
        let chain = KeyChain::resolve(
            *key,
            self.recovery,
            self.chain_records(&|_| true)
                .into_iter()
                .chain(own.iter().cloned()),
        );
        own.iter().all(|g| chain.read.contains(&g.storage_key()))
    }

    /// Why `data`, placing only rotations and recoveries, is more of them than the chain
    /// needs, if it is: a record at a point of the chain (one kind, epoch and signer) where
    /// [`MAX_FORKS`] different records are held already (the chain reads two there), or, from
    /// an author holding no delegation, records each held in [`MAX_COPIES`] changes already
    /// (the chain needs one carrier). A cap like the others: it never refuses a change another
    /// author's change needs, and counts against the peer only when the author sends it.
    /// Without it a leaked key's forks, or a stranger's copies of a read record, were held
    /// without end (red team, session 23).
    fn chain_flood(
        &self,
        author: &NodeId,
        data: &ChangeData,
        key: Option<&NodeId>,
    ) -> Option<String> {
        let own = self.chain_records_of(data)?;
        let held = self.chain_entries(&|_| true);
        let mut at_point: HashMap<(u8, u32, NodeId), BTreeSet<String>> = HashMap::new();
        for (_, gs) in &held {
            for g in gs {
                at_point
                    .entry(chain_point(g))
                    .or_default()
                    .insert(g.storage_key());
            }
        }
        if own.iter().any(|g| {
            at_point
                .get(&chain_point(g))
                .is_some_and(|at| at.len() >= MAX_FORKS && !at.contains(&g.storage_key()))
        }) {
            return Some(format!(
                "{MAX_FORKS} different key rotations or recoveries signed by one key for one epoch are held already"
            ));
        }
        // Records at points the chain does not read (signed by keys it never reaches), from
        // any author, a delegated one too: a new point each, they escaped the bound above,
        // and every admission re-read them all (red team, session 25).
        if let Some(k) = key
            && own.iter().any(|g| !at_point.contains_key(&chain_point(g)))
            && !self.places_read_records(data, k)
        {
            let chain = self.key_chain(k);
            let unread = at_point
                .values()
                .filter(|at| at.iter().all(|x| !chain.read.contains(x)))
                .count();
            if unread >= MAX_UNREAD_POINTS {
                return Some(format!(
                    "key rotations or recoveries at {MAX_UNREAD_POINTS} points the key chain does not reach are held already"
                ));
            }
        }
        let copies = |k: &str| {
            held.iter()
                .filter(|(_, gs)| gs.iter().any(|g| g.storage_key() == k))
                .count()
        };
        let delegated = match (self.doc.principal(), key) {
            (Some(p), Some(k)) => self.has_any_delegation(author, &p, k),
            _ => false,
        };
        (!delegated && own.iter().all(|g| copies(&g.storage_key()) >= MAX_COPIES))
            .then(|| format!("each record it places is held in {MAX_COPIES} changes already"))
    }

    /// The rotations and recoveries of the document's principal held inside, from the
    /// changes that place nothing else (a change that mixes them with other grants moves no
    /// chain: its verdict could hide it from peers while its records still counted here).
    fn chain_records(&self, inside: &dyn Fn(usize) -> bool) -> Vec<SignedGrant> {
        self.chain_entries(inside)
            .into_iter()
            .flat_map(|(_, own)| own)
            .collect()
    }

    /// The changes held inside that place nothing but the principal's rotations and
    /// recoveries, in entry order, each with its records.
    fn chain_entries(&self, inside: &dyn Fn(usize) -> bool) -> Vec<(u32, Vec<SignedGrant>)> {
        let Some(c) = self.kind.container("rotations") else {
            return Vec::new();
        };
        let mut entries: BTreeSet<u32> = BTreeSet::new();
        for (_, ats) in self.keys.range((c, String::new())..(c + 1, String::new())) {
            for at in ats {
                if inside(at.entry as usize) && self.entries[at.entry as usize].grant_only {
                    entries.insert(at.entry);
                }
            }
        }
        entries
            .into_iter()
            .filter_map(|i| {
                let d = self.entries[i as usize].data.as_ref()?;
                Some((i, self.chain_records_of(d)?))
            })
            .collect()
    }

    /// The delegations and revocations held here (placed by `author`, if given), whatever
    /// their verdict now (a thief's rotation voids them until a recovery keeps them), each
    /// once.
    pub fn grants_placed_by(&self, author: Option<&NodeId>) -> Vec<SignedGrant> {
        let mut out: BTreeMap<String, SignedGrant> = BTreeMap::new();
        for e in &self.entries {
            let (Some(d), true) = (&e.data, e.grant_only) else {
                continue;
            };
            if author.is_some_and(|a| self.actors[e.actor as usize].author != Some(*a)) {
                continue;
            }
            for op in &d.ops {
                let Some(Ok(g)) = op.value().map(SignedGrant::parse) else {
                    continue;
                };
                if matches!(g.grant.kind, GrantKind::Delegation | GrantKind::Revocation)
                    && g.storage_key() == op.key
                {
                    out.insert(g.storage_key(), g);
                }
            }
        }
        out.into_values().collect()
    }

    /// The settled state, if [`Ledger::settle`] ran since the last admission.
    pub fn settled(&self) -> Option<&Settled> {
        self.settled.as_ref()
    }

    /// The document as it stands at `heads`: every change outside their causal past left out,
    /// revocations and equivocations included only if they are inside it. `None` if a head is
    /// not held.
    pub fn view_at(&self, heads: &[ChangeHash], key: Option<&NodeId>) -> Option<Settled> {
        let mut mask = vec![false; self.entries.len()];
        let mut stack: Vec<u32> = Vec::new();
        for h in heads {
            stack.push(*self.by_hash.get(h)?);
        }
        while let Some(i) = stack.pop() {
            if !mask[i as usize] {
                mask[i as usize] = true;
                stack.extend(self.entries[i as usize].deps.iter().copied());
            }
        }
        Some(self.judge(Some(&mask), key))
    }

    /// The valid revocations held (of `only`, if given), each once by its storage key: grants
    /// of the document's key in its `revocations` map, or for a pool, its members'
    /// revocations under `STATE/NODE/revoked`, signed by the key of that membership.
    fn held_revocations(
        &self,
        key: Option<&NodeId>,
        chain: Option<&KeyChain>,
        inside: &dyn Fn(usize) -> bool,
        only: Option<&NodeId>,
    ) -> BTreeMap<String, SignedGrant> {
        let mut revocations: BTreeMap<String, SignedGrant> = BTreeMap::new();
        let principal = self.doc.principal();
        if let (Some(principal), Some(key), Some(c)) =
            (&principal, key, self.kind.container("revocations"))
        {
            let key = &*match chain {
                Some(c) => std::sync::Arc::new(c.clone()),
                None => self.key_chain(key),
            };
            let from = only.map_or(String::new(), |n| format!("{n}/"));
            for ((cc, k), ats) in self.keys.range((c, from.clone())..(c + 1, String::new())) {
                debug_assert_eq!(*cc, c);
                if !k.starts_with(&from) {
                    break;
                }
                for at in ats {
                    if !inside(at.entry as usize) || !self.entries[at.entry as usize].grant_only {
                        continue;
                    }
                    let Some(text) = self.op(*at).value() else {
                        continue;
                    };
                    let Ok(g) =
                        SignedGrant::parse_at(text, k, GrantKind::Revocation, principal, key)
                    else {
                        continue;
                    };
                    revocations.insert(g.storage_key(), g);
                }
            }
        }
        // A pool holds its members' revocations in its `members` map, under
        // `STATE/NODE/revoked`, signed by the key that signed that node's membership.
        if let DocId::Pool(_) = &self.doc
            && let Some(c) = self.kind.container("members")
        {
            let tail = only.map(|n| format!("/{n}/revoked"));
            for ((_, k), ats) in self.keys.range((c, String::new())..(c + 1, String::new())) {
                if tail.as_ref().is_some_and(|t| !k.ends_with(t.as_str())) {
                    continue;
                }
                for at in ats {
                    if !inside(at.entry as usize) {
                        continue;
                    }
                    let Some(g) = self
                        .op(*at)
                        .value()
                        .and_then(|t| self.pool_revocation(k, t, &|e| inside(e as usize)))
                    else {
                        continue;
                    };
                    revocations.insert(g.storage_key(), g);
                }
            }
        }
        revocations
    }

    /// Whether a held revocation of `author` settles that a new change of `actor` can never
    /// stand: the revocation names no kept change of that actor here, or names one that is
    /// held (what it keeps is then that change's past, which holds nothing new).
    fn revoked_for_good(&self, author: &NodeId, actor: &[u8], key: Option<&NodeId>) -> bool {
        let actor_hex = hex(actor);
        self.held_revocations(key, None, &|_| true, Some(author))
            .values()
            .filter(|g| g.grant.node == *author)
            .any(|g| {
                match g
                    .grant
                    .cutoff
                    .iter()
                    .find(|c| c.doc == self.doc && c.actor == actor_hex)
                {
                    None => true,
                    Some(c) => c
                        .head
                        .as_ref()
                        .and_then(|h| parse_hash(h))
                        .is_none_or(|h| self.by_hash.contains_key(&h)),
                }
            })
    }

    fn judge(&self, mask: Option<&[bool]>, key: Option<&NodeId>) -> Settled {
        let n = self.entries.len();
        let inside = |i: usize| mask.is_none_or(|m| m[i]);
        let principal = self.doc.principal();

        // Voids that do not depend on causal position: revocation cut-offs and equivocations.
        // Revocations are grants: valid wherever they are held. Each says, per actor of the
        // revoked node, which of its changes stand: the named last change and its causal past
        // (followed exactly, along dependencies: a vector clock cannot tell twins apart).
        let mut cutoffs: HashMap<NodeId, Vec<HashMap<String, HashSet<u32>>>> = HashMap::new();
        // The principal's keys, read off the same changes.
        let chain = key.map(|k| match mask {
            None => self.key_chain(k),
            Some(_) => std::sync::Arc::new(self.chain_in(k, &inside)),
        });
        let chain = chain.as_deref();
        let revocations = self.held_revocations(key, chain, &inside, None);
        // Each distinct revocation once, however many copies of it are held.
        for g in revocations.values() {
            cutoffs
                .entry(g.grant.node)
                .or_default()
                .push(self.kept_here(g, &inside));
        }
        // Equivocations, of nodes not revoked (what a revocation keeps stands whatever else
        // the node signs). The evidence offered to peers is, at the first position each actor
        // equivocated at, the two changes with the smallest hashes: enough to prove it to any
        // node, the same pair on every node that holds them, and a flood of twins is not
        // relayed.
        let mut void_from: HashMap<u32, u32> = HashMap::new();
        let mut evidence = vec![false; n];
        let mut flagged: BTreeMap<NodeId, String> = BTreeMap::new();
        for ((actor, seq), twins) in &self.by_actor_seq {
            let author = self.actors[*actor as usize].author;
            if author.is_some_and(|a| cutoffs.contains_key(&a)) {
                continue;
            }
            if twins.iter().filter(|t| inside(**t as usize)).count() >= 2
                && twins
                    .iter()
                    .filter(|t| inside(**t as usize) && self.screened(**t, key))
                    .count()
                    >= 2
            {
                let f = void_from.entry(*actor).or_insert(*seq);
                *f = (*f).min(*seq);
                if let Some(a) = author {
                    flagged.insert(
                        a,
                        "signed two different changes at one position (equivocation)".into(),
                    );
                }
            }
        }
        // Authors with more actor ids than a node needs (not revoked): all their changes are
        // void, and the evidence is the first change of each of their first actors by hash.
        // Only changes that pass the screen on their own count, here and for equivocations
        // ([`Ledger::screened`]).
        let mut too_many: HashSet<NodeId> = HashSet::new();
        for (author, actors) in &self.author_actors {
            if cutoffs.contains_key(author) {
                continue;
            }
            let mut firsts: Vec<u32> = actors
                .iter()
                .filter_map(|a| self.first_of_actor(*a, &inside))
                .collect();
            if firsts.len() > MAX_ACTORS_PER_AUTHOR {
                firsts.retain(|i| self.screened(*i, key));
            }
            if firsts.len() > MAX_ACTORS_PER_AUTHOR {
                too_many.insert(*author);
                flagged.insert(
                    *author,
                    "wrote with more actor ids than a node needs".into(),
                );
                firsts.sort_by_key(|i| self.entries[*i as usize].hash);
                for i in firsts.into_iter().take(MAX_ACTORS_PER_AUTHOR + 1) {
                    evidence[i as usize] = true;
                }
            }
        }
        for (actor, seq) in &void_from {
            let mut held: Vec<u32> = self.by_actor_seq[&(*actor, *seq)]
                .iter()
                .copied()
                .filter(|t| inside(*t as usize) && self.screened(*t, key))
                .collect();
            held.sort_by_key(|t| self.entries[*t as usize].hash);
            for t in held.into_iter().take(2) {
                evidence[t as usize] = true;
            }
        }

        let mut delegations: HashMap<NodeId, Vec<SignedGrant>> = HashMap::new();
        if let (Some(principal), Some(key), Some(c)) =
            (&principal, chain, self.kind.container("delegations"))
        {
            for ((_, k), ats) in self.keys.range((c, String::new())..(c + 1, String::new())) {
                for at in ats {
                    if !inside(at.entry as usize) {
                        continue;
                    }
                    let Some(text) = self.op(*at).value() else {
                        continue;
                    };
                    if let Ok(g) =
                        SignedGrant::parse_at(text, k, GrantKind::Delegation, principal, key)
                    {
                        let mine = delegations.entry(g.grant.node).or_default();
                        if !mine.iter().any(|x| x.storage_key() == g.storage_key()) {
                            mine.push(g);
                        }
                    }
                }
            }
        }
        for grants in delegations.values_mut() {
            grants.sort_by_key(|g| (g.grant.serial, g.grant.issued, g.storage_key()));
        }
        let mut sw = SetWide {
            void_from,
            too_many,
            cutoffs,
            delegations,
            mask: mask.map(<[bool]>::to_vec),
            pool: None,
            member_keys: Default::default(),
        };

        let pass = |sw: &SetWide| -> Vec<Verdict> {
            let mut verdicts: Vec<Verdict> = Vec::with_capacity(n);
            for i in 0..n {
                if !inside(i) {
                    verdicts.push(Verdict::Excluded);
                    continue;
                }
                let e = &self.entries[i];
                let Some(data) = &e.data else {
                    verdicts.push(Verdict::Stands);
                    continue;
                };
                let Some(author) = self.actors[e.actor as usize].author else {
                    verdicts.push(Verdict::Void(Denied::Forbidden {
                        path: String::new(),
                        why: "an actor with no author".into(),
                    }));
                    continue;
                };
                let verdict = if let Some(revocations) = sw.cutoffs.get(&author)
                    && !self.kept(i as u32, revocations)
                {
                    // Nothing a revoked node wrote past its cut-off counts, grants included.
                    Err(Denied::Revoked(
                        principal.as_ref().map(|p| p.code()).unwrap_or_default(),
                    ))
                } else if e.grant_only {
                    self.judge_grants(i as u32, data, principal.as_ref(), chain, &verdicts)
                } else {
                    self.authorize(
                        i as u32,
                        &author,
                        data,
                        principal.as_ref(),
                        key,
                        sw,
                        &verdicts,
                    )
                };
                verdicts.push(match verdict {
                    Ok(()) => Verdict::Stands,
                    Err(d) => Verdict::Void(d),
                });
            }
            verdicts
        };
        let mut verdicts = pass(&sw);
        // A pool's writers are judged again against what the whole set says of its members
        // (see [`Ledger::pool_facts`]), never only as of the past a writer chose: judged that
        // way, a removed or expired member, or a join after its invitation was withdrawn,
        // wrote (red team, session 25).
        //
        // Which memberships are in force depends on which removals stand, and a removal stands
        // only if its author's membership is in force: members of one State may remove each
        // other in cycles, on any pasts, and the facts need not settle (a 2-cycle flips them
        // every pass, a 3-cycle every three; red team, sessions 26 and 30). So they are
        // taken as the well-founded reading of that rule, computed by alternating: `upper`,
        // the members in force when only the removals by `lower` count, and `lower`, those in
        // force when the removals by every member of `upper` count. From `upper` with no
        // removal counted, `lower` grows and `upper` shrinks, until neither moves (for
        // removals alone; a re-join breaks that, see [`PoolFacts::removes`]).
        // Then a removal counts only by a member in force for certain (`lower`, and `upper` as
        // well: see [`PoolFacts::removes`]), and a member writes while it may be in force
        // (`upper`): a removal that stands always keeps its
        // target out, and in a cycle no removal counts and every member stays, until the
        // State's key settles it with a revocation. Each pass is a function of the set alone,
        // so every node reaches the same verdicts, whatever arrived first.
        if matches!(self.doc, DocId::Pool(_)) {
            let first = self.pool_facts(&verdicts);
            let facts = |members: &PoolFacts, removers: &PoolFacts| PoolFacts {
                invited: first.invited.clone(),
                members: members.members.clone(),
                removers: Some(removers.members.keys().cloned().collect()),
            };
            let nobody = PoolFacts::default();
            sw.pool = Some(facts(&first, &nobody));
            verdicts = pass(&sw);
            let mut upper = self.pool_facts(&verdicts);
            for round in 1..=POOL_ROUNDS {
                sw.pool = Some(facts(&upper, &upper));
                verdicts = pass(&sw);
                let lower = self.pool_facts(&verdicts);
                if lower.same(&upper) {
                    // Settled with nothing undecided: the pass just made is the last.
                    break;
                }
                sw.pool = Some(facts(&upper, &lower));
                verdicts = pass(&sw);
                let next = self.pool_facts(&verdicts);
                if next.same(&upper) {
                    // Settled: the pass just made judged sections by `upper` and removals by
                    // `lower`.
                    break;
                }
                if round == POOL_ROUNDS {
                    // Not settled within the bound (a long crafted chain of removals): the
                    // same reading with what is known so far, still consistent (a removal
                    // that counts keeps its target out) and a function of the set.
                    sw.pool = Some(facts(&next, &lower));
                    verdicts = pass(&sw);
                }
                upper = next;
            }
        }

        // What is offered: the standing changes and their causal past (whose heads are
        // summarised), and the evidence of equivocations with its past (sent along).
        let closure = |seed: &dyn Fn(usize) -> bool| {
            let mut mark = vec![false; n];
            for i in (0..n).rev() {
                if seed(i) {
                    mark[i] = true;
                }
                if mark[i] {
                    for d in &self.entries[i].deps {
                        mark[*d as usize] = true;
                    }
                }
            }
            mark
        };
        // The first versions that decide a target's areas decide verdicts of other changes, so
        // they are offered whatever their own verdict: a node that lacked one would judge
        // differently for good.
        if let (Some(c), false) = (
            self.kind.container("targets"),
            matches!(self.doc, DocId::Pool(_)),
        ) {
            for ((_, k), ats) in self.keys.range((c, String::new())..(c + 1, String::new())) {
                if !k.ends_with("/1") {
                    continue;
                }
                for at in ats {
                    if inside(at.entry as usize)
                        && self
                            .first_version_area(*at, principal.as_ref(), &sw)
                            .is_some()
                    {
                        evidence[at.entry as usize] = true;
                    }
                }
            }
        }
        // The rotations and recoveries the chain read (followed, or stopped at) are offered
        // whatever the verdict of the changes that carry them: the chain is read off every such
        // change held, so a node that lacked one would follow a different key for good. One
        // carrier for each record is enough: a standing one if any, else the one with the
        // smallest hash (the same on every node that holds them; copies are not relayed).
        if let Some(chain) = chain
            && !chain.read.is_empty()
        {
            let mut carrier: BTreeMap<String, (bool, ChangeHash, usize)> = BTreeMap::new();
            for (i, own) in self.chain_entries(&inside) {
                let i = i as usize;
                let stands = matches!(verdicts[i], Verdict::Stands);
                for g in own {
                    let k = g.storage_key();
                    if !chain.read.contains(&k) {
                        continue;
                    }
                    // Standing first, then the smallest hash.
                    let rank = (!stands, self.entries[i].hash, i);
                    let best = carrier.entry(k).or_insert(rank);
                    if (rank.0, rank.1) < (best.0, best.1) {
                        *best = rank;
                    }
                }
            }
            for (_, _, i) in carrier.into_values() {
                evidence[i] = true;
            }
        }
        let standing = closure(&|i| matches!(verdicts[i], Verdict::Stands));
        let exported = closure(&|i| standing[i] || evidence[i]);
        let mut has_child = vec![false; n];
        for (i, e) in self.entries.iter().enumerate() {
            if standing[i] {
                for d in &e.deps {
                    has_child[*d as usize] = true;
                }
            }
        }
        let mut heads: Vec<ChangeHash> = (0..n)
            .filter(|i| standing[*i] && !has_child[*i])
            .map(|i| self.entries[i].hash)
            .collect();
        heads.sort();
        let mut exported_child = vec![false; n];
        for (i, e) in self.entries.iter().enumerate() {
            if exported[i] {
                for d in &e.deps {
                    exported_child[*d as usize] = true;
                }
            }
        }
        let mut offered: Vec<ChangeHash> = (0..n)
            .filter(|i| exported[*i] && !exported_child[*i])
            .map(|i| self.entries[i].hash)
            .collect();
        offered.sort();

        let (view, disputed) = self.materialise(&verdicts);
        Settled {
            verdicts,
            exported,
            heads,
            offered,
            view,
            disputed,
            flagged: flagged.into_iter().collect(),
        }
    }

    /// The first change of an actor (the one with the smallest hash if it has twins), among
    /// those judged.
    fn first_of_actor(&self, actor: u32, inside: &dyn Fn(usize) -> bool) -> Option<u32> {
        self.by_actor_seq
            .get(&(actor, 1))?
            .iter()
            .copied()
            .filter(|i| inside(*i as usize))
            .min_by_key(|i| self.entries[*i as usize].hash)
    }

    /// The operations on `(container, key)` that are live: put by a standing change and not
    /// replaced or deleted by another. With `at`, only changes in `at`'s causal past count.
    /// An operation's id as preds name it: its counter and its actor.
    fn op_id(&self, o: OpAt) -> (u64, Vec<u8>) {
        let e = &self.entries[o.entry as usize];
        (
            e.data.as_ref().map_or(0, |d| d.start_op) + u64::from(o.op),
            self.actors[e.actor as usize].bytes.clone(),
        )
    }

    fn live(&self, container: u8, key: &str, at: Option<u32>, verdicts: &[Verdict]) -> Vec<OpAt> {
        let Some(ops) = self.keys.get(&(container, key.to_string())) else {
            return Vec::new();
        };
        let counts = |o: &OpAt| {
            let i = o.entry as usize;
            i < verdicts.len()
                && matches!(verdicts[i], Verdict::Stands)
                && at.is_none_or(|a| self.in_past(o.entry, a))
        };
        let visible: Vec<OpAt> = ops.iter().copied().filter(counts).collect();
        let mut replaced: HashSet<(u64, Vec<u8>)> = HashSet::new();
        for o in &visible {
            for p in self.op(*o).preds() {
                replaced.insert((p.counter, p.actor.clone()));
            }
        }
        visible
            .into_iter()
            .filter(|o| {
                let op = self.op(*o);
                let e = &self.entries[o.entry as usize];
                let counter = e.data.as_ref().map_or(0, |d| d.start_op) + u64::from(o.op);
                matches!(op.action, FlatAction::Put { .. })
                    && !replaced.contains(&(counter, self.actors[e.actor as usize].bytes.clone()))
            })
            .collect()
    }

    /// Whether the value at `at` speaks for its record's areas when change `cx.i` is judged.
    /// A value in that change's past does if it stands (its verdict is known, as is every
    /// verdict of that past, and the same on every node): a void one (a squat voided by its
    /// own change, an edit in place of a record) says nothing about whose record it is. A
    /// concurrent value does, whatever it turns out to be, since the change cannot know it:
    /// building on a past without another area's record never leaves that record out. A value
    /// written after the change, with the change in its past, does too: a target's first
    /// version (a later version or a withdrawal written before the target exists must not
    /// make it another area's), and a value at a key a withdrawal names (a withdrawal written
    /// before another area's record, at a key its author emptied, must not withdraw that
    /// record: the view withdraws whatever is at the key, so the withdrawal answers for it).
    ///
    /// Outside the change's past, a value written over a value that stands in that past (it
    /// names no predecessor, yet that value is in its own past, not replaced there) speaks for
    /// nothing either: it is an edit in place of a record the change found, void wherever
    /// that record is held.
    fn speaks(&self, at: OpAt, cx: &Judging<'_>) -> bool {
        if self.in_past(at.entry, cx.i) {
            matches!(cx.verdicts.get(at.entry as usize), Some(Verdict::Stands))
        } else {
            !self.over_found(at, cx)
        }
    }

    /// Whether the put at `at` (outside change `cx.i`'s past) was written over a value `cx.i`
    /// found (in `cx.i`'s past, standing) and could not stand over it. Where records are
    /// written once, any put over a found record could not (an edit in place), whatever it
    /// names. Where they are corrected in place (a draft's working records, slots), a put over
    /// a found value still live in its own past that it does not name could not; one that
    /// names found values could only if its author's scope covers their areas (a correction by
    /// a ministry of another area is void); a put over a value deleted or corrected in its own
    /// past by an author whose scope covers that value (whatever that operation's verdict,
    /// which may not be known yet) was not written over it, but one deleted or corrected there
    /// only by an author who could not (a void delete by a ministry of another area) still
    /// was. What the change found then speaks for the record, not what came over it since.
    fn over_found(&self, at: OpAt, cx: &Judging<'_>) -> bool {
        let op = self.op(at);
        let FlatAction::Put { preds, .. } = &op.action else {
            return false;
        };
        let Some((container, policy)) = self.kind.policy(op.container) else {
            return false;
        };
        let Some(ops) = self.keys.get(&(op.container, op.key.clone())) else {
            return false;
        };
        let counter_of = |o: &OpAt| self.op_id(*o);
        let before: Vec<OpAt> = ops
            .iter()
            .copied()
            .filter(|o| self.in_past(o.entry, at.entry))
            .collect();
        let found: Vec<OpAt> = before
            .iter()
            .copied()
            .filter(|o| {
                matches!(self.op(*o).action, FlatAction::Put { .. })
                    && self.in_past(o.entry, cx.i)
                    && matches!(cx.verdicts.get(o.entry as usize), Some(Verdict::Stands))
            })
            .collect();
        if found.is_empty() {
            return false;
        }
        if !matches!(policy, Policy::Working | Policy::Slot) {
            return true;
        }
        // Whether the author of the operation at `o` could replace or delete a value of
        // `areas`: it could write here at all (as the whole set says) in a scope covering them.
        let could_replace = |o: &OpAt, areas: &[Area]| {
            let e = &self.entries[o.entry as usize];
            let (Some(data), Some(author)) =
                (e.data.as_ref(), self.actors[e.actor as usize].author)
            else {
                return false;
            };
            let time = Date::from_unix_seconds(data.time);
            self.author_standing(o.entry, &author, time, cx.principal, cx.sw)
                .is_ok_and(|scope| {
                    if areas.is_empty() {
                        scope.is_all()
                    } else {
                        areas.iter().all(|a| scope.covers(*a))
                    }
                })
        };
        let areas_of = |q: &OpAt| {
            self.op(*q)
                .value()
                .map(|v| self.record_areas(container, &op.key, v, cx))
                .unwrap_or_default()
        };
        let named: HashSet<(u64, Vec<u8>)> =
            preds.iter().map(|p| (p.counter, p.actor.clone())).collect();
        let mut named_areas = Vec::new();
        let mut names_found = false;
        for q in &found {
            let id = counter_of(q);
            if named.contains(&id) {
                names_found = true;
                named_areas.extend(areas_of(q));
                continue;
            }
            // Deleted or corrected in its own past, by an author who could (whatever that
            // operation's verdict, which may not be known yet): not written over it. A delete
            // or correction its author could not make (a ministry of another area) does not
            // take the found value out of the way.
            let areas = areas_of(q);
            let replaced = before.iter().any(|o| {
                self.op(*o)
                    .preds()
                    .iter()
                    .any(|p| (p.counter, p.actor.clone()) == id)
                    && could_replace(o, &areas)
            });
            if !replaced {
                // Over a found value still live in its own past, naming it not.
                return true;
            }
        }
        if !names_found {
            return false;
        }
        // A correction of found values: could its author stand over them?
        !could_replace(&at, &named_areas)
    }

    fn live_values(&self, container: &str, key: &str, at: Option<u32>, v: &[Verdict]) -> Vec<&str> {
        let Some(c) = self.kind.container(container) else {
            return Vec::new();
        };
        let mut out: Vec<&str> = self
            .live(c, key, at, v)
            .into_iter()
            .filter_map(|o| self.op(o).value())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn live_keys_with_prefix(
        &self,
        container: &str,
        prefix: &str,
        at: Option<u32>,
        v: &[Verdict],
    ) -> Vec<String> {
        let Some(c) = self.kind.container(container) else {
            return Vec::new();
        };
        self.keys
            .range((c, prefix.to_string())..)
            .take_while(|((cc, k), _)| *cc == c && k.starts_with(prefix))
            .filter(|((_, k), _)| !self.live(c, k, at, v).is_empty())
            .map(|((_, k), _)| k.clone())
            .collect()
    }

    fn judge_grants(
        &self,
        i: u32,
        data: &ChangeData,
        principal: Option<&Principal>,
        key: Option<&KeyChain>,
        verdicts: &[Verdict],
    ) -> Result<(), Denied> {
        let (Some(principal), Some(key)) = (principal, key) else {
            return Err(Denied::Forbidden {
                path: String::new(),
                why: "grants belong only in a State's or a body's documents".into(),
            });
        };
        // Grants are placed by the node they are about (bootstrapping its own delegation) or
        // by a node the key delegated: a stranger cannot fill a document with them.
        let author = self.actors[self.entries[i as usize].actor as usize].author;
        let own = data.ops.iter().all(|op| {
            op.value()
                .and_then(|t| SignedGrant::parse(t).ok())
                .is_some_and(|g| Some(g.grant.node) == author)
        });
        if !own
            && author.is_none_or(|a| {
                self.delegation_at(&a, principal, key, i, verdicts)
                    .is_none()
            })
        {
            return Err(Denied::NotDelegated(principal.code()));
        }
        for op in &data.ops {
            let Some((container, _)) = self.kind.policy(op.container) else {
                continue;
            };
            let path = format!("{container}/{}", op.key);
            let kind = match container {
                "delegations" => GrantKind::Delegation,
                "revocations" => GrantKind::Revocation,
                "rotations" => GrantKind::Rotation,
                _ => {
                    return Err(Denied::Forbidden {
                        path,
                        why: "not a container of grants".into(),
                    });
                }
            };
            let FlatAction::Put { value, preds } = &op.action else {
                return Err(Denied::Forbidden {
                    path,
                    why: "grants are never removed".into(),
                });
            };
            if !preds.is_empty()
                || !self
                    .live(op.container, &op.key, Some(i), verdicts)
                    .is_empty()
            {
                return Err(Denied::Forbidden {
                    path,
                    why: "grants are never edited or stored twice".into(),
                });
            }
            if kind == GrantKind::Rotation {
                // A rotation or recovery is checked here for its form, its place and its own
                // signature; which of them the principal's keys follow is the chain's
                // decision, over the whole set (see [`KeyChain`]). One the chain does not
                // follow (not read, or a fork it stops at) stands nowhere: a fork proves
                // itself by being held, and which of its records a node read must change no
                // view.
                if !key.read.contains(&op.key) || key.forks.contains(&op.key) {
                    return Err(Denied::Forbidden {
                        path,
                        why: "a key rotation or recovery the key chain does not follow".into(),
                    });
                }
                let g = SignedGrant::parse(value).map_err(|why| Denied::BadGrant {
                    path: path.clone(),
                    why,
                })?;
                let misplaced =
                    if !matches!(g.grant.kind, GrantKind::Rotation | GrantKind::Recovery) {
                        Some(format!("a {:?} in rotations", g.grant.kind))
                    } else if g.grant.principal != *principal {
                        Some(format!("a grant of {}", g.grant.principal))
                    } else if g.storage_key() != op.key {
                        Some(format!("stored at {}", op.key))
                    } else {
                        None
                    };
                if let Some(why) = misplaced {
                    return Err(Denied::BadGrant {
                        path,
                        why: BadGrant::Misplaced(why),
                    });
                }
                continue;
            }
            SignedGrant::parse_at(value, &op.key, kind, principal, key)
                .map_err(|why| Denied::BadGrant { path, why })?;
        }
        Ok(())
    }

    /// The latest delegation of `author` standing in `at`'s causal past.
    fn delegation_at(
        &self,
        author: &NodeId,
        principal: &Principal,
        key: &KeyChain,
        at: u32,
        verdicts: &[Verdict],
    ) -> Option<SignedGrant> {
        let prefix = format!("{author}/");
        let mut best: Option<SignedGrant> = None;
        for k in self.live_keys_with_prefix("delegations", &prefix, Some(at), verdicts) {
            for text in self.live_values("delegations", &k, Some(at), verdicts) {
                if let Ok(g) =
                    SignedGrant::parse_at(text, &k, GrantKind::Delegation, principal, key)
                {
                    let newer = best.as_ref().is_none_or(|b| {
                        (g.grant.serial, g.grant.issued, g.storage_key())
                            > (b.grant.serial, b.grant.issued, b.storage_key())
                    });
                    if newer {
                        best = Some(g);
                    }
                }
            }
        }
        best
    }

    /// The areas target `id` is in, as the whole set judged says (in a view at heads, their
    /// causal past), whatever a change's past holds:
    /// the area of every first version of it held whose author could write it (delegated with
    /// a scope covering that area, not revoked, not an equivocator), and the areas of the
    /// versions the change itself writes. A scoped author so cannot take over another area's
    /// target by building on a past without it: a first version written anywhere binds every
    /// later change about the target. (An author who writes a rival first version makes a
    /// dispute, which is shown as such.)
    fn target_areas(&self, id: &str, cx: &Judging<'_>) -> Vec<Area> {
        let mut out = Vec::new();
        let targets = self.kind.container("targets");
        if let Some(c) = targets
            && let Some(ats) = self.keys.get(&(c, crate::doc::target_key(id, 1)))
        {
            out.extend(
                ats.iter()
                    .filter(|at| cx.sw.inside(at.entry) && self.speaks(**at, cx))
                    .filter_map(|at| self.first_version_area(*at, cx.principal, cx.sw)),
            );
        }
        let prefix = format!("{id}/");
        for op in &cx.data.ops {
            if Some(op.container) == targets
                && op.key.starts_with(&prefix)
                && let Some(a) = op.value().and_then(area_of_value)
            {
                out.push(a);
            }
        }
        out
    }

    /// Whether the author of the operation at `at` could write here at all, as the whole set
    /// says: delegated (in any scope), not revoked past it, not an equivocator there.
    fn has_standing(&self, at: OpAt, cx: &Judging<'_>) -> bool {
        let e = &self.entries[at.entry as usize];
        let (Some(data), Some(author)) = (e.data.as_ref(), self.actors[e.actor as usize].author)
        else {
            return false;
        };
        let time = Date::from_unix_seconds(data.time);
        self.author_standing(at.entry, &author, time, cx.principal, cx.sw)
            .is_ok()
    }

    /// The area of a first version of a target (the operation at `at`), if its author could
    /// write it: delegated, as the whole set says, with a scope covering that area.
    fn first_version_area(
        &self,
        at: OpAt,
        principal: Option<&Principal>,
        sw: &SetWide,
    ) -> Option<Area> {
        let e = &self.entries[at.entry as usize];
        let area = self.op(at).value().and_then(area_of_value)?;
        let time = Date::from_unix_seconds(e.data.as_ref()?.time);
        let author = self.actors[e.actor as usize].author?;
        self.author_standing(at.entry, &author, time, principal, sw)
            .is_ok_and(|scope| scope.covers(area))
            .then_some(area)
    }

    /// Whether the author of entry `i` could write at all there, by what is true of the whole
    /// set and not of the change's past: kept by every revocation of it, or (never revoked)
    /// neither an equivocator at that position nor a user of too many actor ids; and
    /// delegated. Returns the scope it writes
    /// in (all, for a pool's writers, whose rights [`Ledger::authorize_pool`] judges).
    fn author_standing(
        &self,
        i: u32,
        author: &NodeId,
        time: Date,
        principal: Option<&Principal>,
        sw: &SetWide,
    ) -> Result<Scope, Denied> {
        let e = &self.entries[i as usize];
        let actor = hex(&self.actors[e.actor as usize].bytes);
        if let Some(revocations) = sw.cutoffs.get(author) {
            if !self.kept(i, revocations) {
                return Err(Denied::Revoked(
                    principal.map(|p| p.code()).unwrap_or_default(),
                ));
            }
        } else if sw.void_from.get(&e.actor).is_some_and(|s| e.seq >= *s) {
            return Err(Denied::Equivocation(*author));
        } else if sw.too_many.contains(author) {
            return Err(Denied::TooManyActors(*author));
        }
        if matches!(self.doc, DocId::Pool(_)) {
            return Ok(Scope::ALL);
        }
        let Some(principal) = principal else {
            return Err(Denied::Forbidden {
                path: String::new(),
                why: "the document has no owner".into(),
            });
        };
        let grant = sw
            .delegation_for(&self.doc, author, &actor, e.seq)
            .ok_or_else(|| Denied::NotDelegated(principal.code()))?;
        if let Some(expires) = grant.grant.expires
            && time > expires
        {
            return Err(Denied::Expired {
                principal: principal.code(),
                expires,
            });
        }
        Ok(grant.grant.scope.clone().unwrap_or(Scope::ALL))
    }

    #[allow(clippy::too_many_arguments)]
    fn authorize(
        &self,
        i: u32,
        author: &NodeId,
        data: &ChangeData,
        principal: Option<&Principal>,
        key: Option<&NodeId>,
        sw: &SetWide,
        verdicts: &[Verdict],
    ) -> Result<(), Denied> {
        let time = Date::from_unix_seconds(data.time);
        if principal.is_some() && key.is_none() {
            return Err(principal
                .map(no_key)
                .unwrap_or(Denied::NotDelegated(String::new())));
        }
        let scope = self.author_standing(i, author, time, principal, sw)?;
        if let DocId::Pool(id) = &self.doc {
            return self.authorize_pool(i, author, data, id, time, sw, verdicts);
        }
        for op in &data.ops {
            let (container, policy) = self
                .kind
                .policy(op.container)
                .unwrap_or(("?", Policy::Record));
            let path = format!("{container}/{}", op.key);
            if policy == Policy::Grant {
                return Err(Denied::Forbidden {
                    path,
                    why: "grants go in a change of their own".into(),
                });
            }
            self.check_policy(i, op, policy, &path, verdicts)?;
            if scope.is_all() {
                continue;
            }
            // Scope is judged on the record before and after the change: the value written,
            // and every value it replaces or deletes (a draft's records are corrected in
            // place, and a ministry corrects only what lies in its areas).
            let replaced = match &op.action {
                FlatAction::Put { preds, .. } if preds.is_empty() => Vec::new(),
                _ => self.live_values(container, &op.key, Some(i), verdicts),
            };
            let cx = Judging {
                i,
                data,
                principal,
                sw,
                verdicts,
            };
            let mut areas = Vec::new();
            for value in op.value().into_iter().chain(replaced) {
                areas.extend(self.record_areas(container, &op.key, value, &cx));
            }
            let needs_all = areas.is_empty();
            if needs_all {
                return Err(Denied::OutOfScope {
                    scope: scope.to_string(),
                    touched: format!("{path} (needs scope all)"),
                });
            }
            if let Some(a) = areas.iter().find(|a| !scope.covers(**a)) {
                return Err(Denied::OutOfScope {
                    scope: scope.to_string(),
                    touched: format!("{path} ({})", a.slug()),
                });
            }
        }
        Ok(())
    }

    /// The areas a record (`value`, at `container/key`) concerns, for the scope rule; none
    /// for what only a node of scope all writes.
    fn record_areas(&self, container: &str, key: &str, value: &str, cx: &Judging<'_>) -> Vec<Area> {
        let target_of = |v: &str| {
            parse_value(v).and_then(|v| v.get("target").and_then(Json::as_str).map(str::to_string))
        };
        match container {
            "targets" => {
                let id = key.split('/').next().unwrap_or_default();
                // A first version is judged on its own area: a rival one is a dispute over
                // that record, shown as such. Every later change about the target is judged
                // on the areas of all its first versions.
                let mut a = if key == crate::doc::target_key(id, 1) {
                    Vec::new()
                } else {
                    self.target_areas(id, cx)
                };
                a.extend(area_of_value(value));
                a
            }
            "progress" => target_of(value)
                .map(|t| self.target_areas(&t, cx))
                .unwrap_or_default(),
            "withdrawn" => self.target_areas(key, cx),
            "needs" => area_of_value(value).into_iter().collect(),
            // A withdrawal of a progress report or a request concerns what it withdraws: every
            // value held under that key anywhere whose author could write it, whatever past
            // the withdrawal claims (a rival put, later deleted, does not stand in for the
            // record it hid), written before it or after it, but for the void ones of its
            // past (see [`Ledger::speaks`]).
            "retracted" => {
                let Some((kind, id)) = key.split_once('/') else {
                    return Vec::new();
                };
                if !matches!(kind, "progress" | "needs") {
                    return Vec::new();
                }
                let Some(c) = self.kind.container(kind) else {
                    return Vec::new();
                };
                let mut a = Vec::new();
                for at in self.keys.get(&(c, id.to_string())).into_iter().flatten() {
                    let Some(v) = self.op(*at).value() else {
                        continue;
                    };
                    if !cx.sw.inside(at.entry) || !self.speaks(*at, cx) {
                        continue;
                    }
                    // Every value whose author could write here at all counts, with the areas
                    // it concerns as this change sees them: a value that speaks more areas
                    // than its author's scope makes the withdrawal harder, never easier.
                    if !self.has_standing(*at, cx) {
                        continue;
                    }
                    let areas = self.record_areas(kind, id, v, cx);
                    if areas.is_empty() {
                        return Vec::new();
                    }
                    a.extend(areas);
                }
                a
            }
            _ => Vec::new(),
        }
    }

    /// Records are written once; slots are replaced only by a put naming what it replaces;
    /// set entries are added once and deleted by naming them.
    fn check_policy(
        &self,
        i: u32,
        op: &FlatOp,
        policy: Policy,
        path: &str,
        verdicts: &[Verdict],
    ) -> Result<(), Denied> {
        let forbidden = |why: &str| Denied::Forbidden {
            path: path.to_string(),
            why: why.into(),
        };
        let live = self.live(op.container, &op.key, Some(i), verdicts);
        let live_refs: HashSet<(u64, Vec<u8>)> = live.iter().map(|o| self.op_id(*o)).collect();
        // Values at the key in the change's past that are void (their verdicts are known, the
        // same on every node). Naming one names nothing: it stood when the author wrote, and
        // was voided after (a revocation's cut-off, a removal from a pool). Refused, it would
        // take the honest change along, the rest of it too, for what another author did.
        let void_refs: HashSet<(u64, Vec<u8>)> = self
            .keys
            .get(&(op.container, op.key.clone()))
            .into_iter()
            .flatten()
            .filter(|o| {
                self.in_past(o.entry, i)
                    && !matches!(verdicts.get(o.entry as usize), Some(Verdict::Stands))
            })
            .map(|o| self.op_id(*o))
            .collect();
        // How many of `preds` are live, if each is live or void.
        let named = |preds: &[OpRef]| -> Option<usize> {
            let mut n = HashSet::new();
            for p in preds {
                let r = (p.counter, p.actor.clone());
                if live_refs.contains(&r) {
                    n.insert(r);
                } else if !void_refs.contains(&r) {
                    return None;
                }
            }
            Some(n.len())
        };
        match (&op.action, policy) {
            (FlatAction::Put { preds, .. }, Policy::Record | Policy::Set) => {
                if named(preds) != Some(0) || !live.is_empty() {
                    return Err(forbidden(
                        "records are never edited in place: write a new version, or withdraw",
                    ));
                }
            }
            (FlatAction::Put { preds, .. }, Policy::Slot | Policy::Working) => {
                if named(preds) != Some(live.len()) {
                    return Err(forbidden("a decision replaces exactly the one it follows"));
                }
            }
            (FlatAction::Delete { preds }, Policy::Set | Policy::Slot | Policy::Working) => {
                if named(preds).is_none() {
                    return Err(forbidden("it deletes what is not there"));
                }
            }
            (FlatAction::Delete { .. }, _) => {
                return Err(forbidden("records are never deleted: withdraw them"));
            }
            (_, Policy::Grant) => return Err(forbidden("grants go in a change of their own")),
        }
        Ok(())
    }

    /// What the whole set says of a pool under `verdicts`: the invitations and memberships
    /// in force.
    fn pool_facts(&self, verdicts: &[Verdict]) -> PoolFacts {
        let mut facts = PoolFacts::default();
        let (Some(ci), Some(c)) = (
            self.kind.container("invites"),
            self.kind.container("members"),
        ) else {
            return facts;
        };
        for ((_, state), _) in self
            .keys
            .range((ci, String::new())..(ci + 1, String::new()))
        {
            if !self.live(ci, state, None, verdicts).is_empty() {
                facts.invited.insert(state.clone());
            }
        }
        for ((_, key), _) in self.keys.range((c, String::new())..(c + 1, String::new())) {
            if key.matches('/').count() != 1
                || !key
                    .split('/')
                    .next()
                    .is_some_and(|s| facts.invited.contains(s))
            {
                continue;
            }
            if let Some(g) = self
                .live_values("members", key, None, verdicts)
                .into_iter()
                .find_map(|v| SignedGrant::parse(v).ok())
            {
                facts.members.insert(key.clone(), g);
            }
        }
        facts
    }

    #[allow(clippy::too_many_arguments)]
    fn authorize_pool(
        &self,
        i: u32,
        author: &NodeId,
        data: &ChangeData,
        id: &PoolId,
        time: Date,
        sw: &SetWide,
        verdicts: &[Verdict],
    ) -> Result<(), Denied> {
        let inside = |e: u32| sw.inside(e);
        let coordinator = id.is_creator(author);
        let me = author.to_string();
        for op in &data.ops {
            let (container, policy) = self
                .kind
                .policy(op.container)
                .unwrap_or(("?", Policy::Record));
            let path = format!("{container}/{}", op.key);
            self.check_policy(i, op, policy, &path, verdicts)?;
            let forbidden = |why: &str| Denied::Forbidden {
                path: path.clone(),
                why: why.into(),
            };
            match container {
                "members" if op.key.ends_with("/revoked") => match &op.action {
                    // Self-certifying: any writer of the pool may place it.
                    FlatAction::Put { value, .. } => {
                        if self.pool_revocation(&op.key, value, &inside).is_none() {
                            return Err(forbidden(
                                "not a revocation of that member signed by the key of its membership",
                            ));
                        }
                    }
                    FlatAction::Delete { .. } => {
                        return Err(forbidden("revocations are never removed"));
                    }
                },
                "members" => {
                    let (state, node) = op
                        .key
                        .split_once('/')
                        .ok_or_else(|| forbidden("members are keyed STATE/NODEID"))?;
                    let state: StateCode = state
                        .parse()
                        .map_err(|_| forbidden("members are keyed STATE/NODEID"))?;
                    match &op.action {
                        FlatAction::Put { value, .. } => {
                            if node != me {
                                return Err(forbidden("a node joins a pool only for itself"));
                            }
                            self.check_join(i, author, state, value, time, &path, verdicts)?;
                            // An invitation withdrawn in the whole set admits no join, whatever
                            // past the join names (red team, session 25).
                            if sw
                                .pool
                                .as_ref()
                                .is_some_and(|p| !p.invited.contains(state.as_str()))
                            {
                                return Err(Denied::NotInvited(state.to_string()));
                            }
                        }
                        FlatAction::Delete { .. } => {
                            let mine = format!("{state}/{me}");
                            let member = match &sw.pool {
                                Some(p) => p.removes(&mine),
                                None => !self
                                    .live_values("members", &mine, Some(i), verdicts)
                                    .is_empty(),
                            };
                            if node != me && !member {
                                return Err(Denied::NotMember(state.to_string()));
                            }
                            // A member whose delegation expired by the change's date removes
                            // no one, as it writes no section (red team, session 27).
                            if node != me
                                && let Some(g) = sw.pool.as_ref().and_then(|p| p.members.get(&mine))
                                && let Some(expires) = g.grant.expires
                                && time > expires
                            {
                                return Err(Denied::Expired {
                                    principal: state.to_string(),
                                    expires,
                                });
                            }
                            // Another node's entry goes only by a member whose own membership
                            // the same key signed: a node joined under a key someone made up
                            // cannot remove the State's real members.
                            if node != me {
                                let mine = self.member_keys_in(&format!("{state}/{me}"), sw);
                                let theirs = self.member_keys_in(&op.key, sw);
                                if !theirs.iter().all(|k| mine.contains(k)) {
                                    return Err(forbidden(
                                        "a member removes only nodes whose membership the same State key signed",
                                    ));
                                }
                            }
                        }
                    }
                }
                "sections" => {
                    let state = op.key.split('/').next().unwrap_or_default();
                    let key = format!("{state}/{me}");
                    // A member in the whole set (not as of the past the change names), and
                    // not expired at the change's date (as in a State's documents).
                    if let Some(p) = &sw.pool {
                        let Some(g) = p.members.get(&key) else {
                            return Err(Denied::NotMember(state.to_string()));
                        };
                        if let Some(expires) = g.grant.expires
                            && time > expires
                        {
                            return Err(Denied::Expired {
                                principal: state.to_string(),
                                expires,
                            });
                        }
                    } else {
                        let member = !self
                            .live_values("members", &key, Some(i), verdicts)
                            .is_empty()
                            || data.ops.iter().any(|o| {
                                Some(o.container) == self.kind.container("members")
                                    && o.key == key
                                    && o.value().is_some()
                            });
                        if !member {
                            return Err(Denied::NotMember(state.to_string()));
                        }
                    }
                    // A section names the node that placed it, so that readers count it only
                    // from a verified member; another node's section is replaced or removed
                    // only by a member whose membership the same State key signed (as for
                    // members): a node joined under a key someone made up neither links
                    // targets in the State's name nor unlinks the State's own.
                    if let FlatAction::Put { value, .. } = &op.action
                        && !names(value, "by", &me)
                    {
                        return Err(forbidden("a section names the node that placed it (`by`)"));
                    }
                    let mine = self.member_keys_in(&key, sw);
                    for at in self.live(op.container, &op.key, Some(i), verdicts) {
                        let placer =
                            self.actors[self.entries[at.entry as usize].actor as usize].author;
                        if let Some(placer) = placer
                            && placer != *author
                            && !self
                                .member_keys_in(&format!("{state}/{placer}"), sw)
                                .iter()
                                .all(|k| mine.contains(k))
                        {
                            return Err(forbidden(
                                "a member replaces only sections placed by nodes whose membership the same State key signed",
                            ));
                        }
                    }
                }
                _ => {
                    if !coordinator {
                        return Err(Denied::NotCoordinator(self.doc.to_string()));
                    }
                    // The charter names the coordinator's node, so readers know who it is.
                    if container == "charter" && !op.value().is_some_and(|v| names(v, "node", &me))
                    {
                        return Err(forbidden("the charter names its coordinator's node"));
                    }
                }
            }
        }
        Ok(())
    }

    /// A join: the node presents the delegation by which the key the coordinator's invitation
    /// names lets it act for the State, with scope all. Whether that key is the State's key is
    /// for each reader of the pool to say ([`crate::pool::PoolData`] checks it against trust).
    #[allow(clippy::too_many_arguments)]
    fn check_join(
        &self,
        i: u32,
        author: &NodeId,
        state: StateCode,
        value: &str,
        time: Date,
        path: &str,
        verdicts: &[Verdict],
    ) -> Result<(), Denied> {
        let bad = |why: BadGrant| Denied::BadGrant {
            path: path.to_string(),
            why,
        };
        let invites = self.live_values("invites", state.as_str(), Some(i), verdicts);
        let [invite] = invites.as_slice() else {
            return Err(Denied::NotInvited(state.to_string()));
        };
        let invite: Invite = parse_value(invite)
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| Denied::NotInvited(state.to_string()))?;
        if invite.state != state {
            return Err(Denied::NotInvited(state.to_string()));
        }
        if invite.node.is_some_and(|n| n != *author) {
            return Err(Denied::NotInvited(format!("this node of {state}")));
        }
        let principal = Principal::State(state);
        let g = SignedGrant::parse(value).map_err(bad)?;
        if g.grant.kind != GrantKind::Delegation
            || g.grant.principal != principal
            || g.grant.node != *author
        {
            return Err(bad(BadGrant::Misplaced(
                "it is not a delegation of this node by this State".into(),
            )));
        }
        if g.grant.key != invite.state_key {
            return Err(bad(BadGrant::WrongKey(
                g.grant.key,
                "the State key the invitation names".into(),
            )));
        }
        if !g.grant.scope.clone().unwrap_or(Scope::ALL).is_all() {
            return Err(Denied::OutOfScope {
                scope: g.grant.scope.map(|s| s.to_string()).unwrap_or_default(),
                touched: "pool membership (needs scope all)".into(),
            });
        }
        if let Some(expires) = g.grant.expires
            && time > expires
        {
            return Err(Denied::Expired {
                principal: state.to_string(),
                expires,
            });
        }
        Ok(())
    }

    fn materialise(&self, verdicts: &[Verdict]) -> (Json, Vec<Disputed>) {
        let mut root = serde_json::Map::new();
        root.insert("schema".into(), json!(SCHEMA));
        root.insert("doc".into(), json!(self.doc.to_string()));
        let mut containers: Vec<serde_json::Map<String, Json>> = self
            .kind
            .container_policies()
            .iter()
            .map(|_| serde_json::Map::new())
            .collect();
        let mut disputed = Vec::new();
        for (c, key) in self.keys.keys() {
            let Some((name, policy)) = self.kind.policy(*c) else {
                continue;
            };
            let live = self.live(*c, key, None, verdicts);
            let mut values: Vec<(&str, ChangeHash)> = live
                .iter()
                .filter_map(|o| Some((self.op(*o).value()?, self.entries[o.entry as usize].hash)))
                .collect();
            if values.is_empty() {
                continue;
            }
            values.sort();
            let distinct: BTreeSet<&str> = values.iter().map(|(v, _)| *v).collect();
            // A pool's sections: every value, when nodes of one State placed different ones
            // at once. Which placer is the State's is each reader's to say (by the State key
            // it trusts), so one greatest text would let a node joined under a key someone
            // made up hide the State's own link behind its own (red team, session 25).
            if distinct.len() > 1 && name == "sections" && matches!(self.doc, DocId::Pool(_)) {
                let all: Vec<Json> = distinct.iter().filter_map(|t| parse_value(t)).collect();
                containers[*c as usize].insert(key.clone(), Json::Array(all));
                continue;
            }
            let chosen = if distinct.len() > 1 && matches!(policy, Policy::Record | Policy::Working)
            {
                disputed.push(Disputed {
                    path: format!("{name}/{key}"),
                    changes: values.iter().map(|(_, h)| h.to_string()).collect(),
                });
                continue;
            } else {
                // Slots and sets: the greatest text, a rule no arrival order moves.
                distinct.iter().next_back().copied()
            };
            if let Some(text) = chosen
                && let Some(v) = parse_value(text)
            {
                containers[*c as usize].insert(key.clone(), v);
            }
        }
        for ((name, _), map) in self.kind.container_policies().iter().zip(containers) {
            root.insert((*name).into(), Json::Object(map));
        }
        (Json::Object(root), disputed)
    }

    /// Builds this node's next change: on top of the heads it offers (and of its own actor's
    /// latest change, so it never signs two changes at one position), with the sequence number
    /// and first operation counter that follow. The caller signs it and admits it.
    pub fn next_change(&self, actor: &[u8], time: i64, ops: Vec<FlatOp>) -> ChangeData {
        let mut deps: Vec<u32> = match &self.settled {
            Some(s) => s
                .heads
                .iter()
                .filter_map(|h| self.by_hash.get(h).copied())
                .collect(),
            None => self.all_heads_ix(),
        };
        if deps.is_empty() {
            deps.push(0);
        }
        if let Some(a) = self.actor_ix.get(actor) {
            let latest = self
                .by_actor_seq
                .iter()
                .filter(|((aa, _), _)| aa == a)
                .max_by_key(|((_, s), _)| *s)
                .and_then(|(_, v)| v.first().copied());
            if let Some(l) = latest {
                let clock = self.merged_clock(&deps);
                let e = &self.entries[l as usize];
                if clock.get(*a as usize).copied().unwrap_or(0) < e.seq {
                    deps.push(l);
                }
            }
        }
        let hashes: Vec<ChangeHash> = deps
            .iter()
            .map(|d| self.entries[*d as usize].hash)
            .collect();
        self.change_at(&hashes, actor, time, ops)
    }

    /// Every key of `container` at which an operation is held, whatever its verdict (a key
    /// that is a dispute, shown by no view, included).
    pub fn written_keys(&self, container: &str) -> Vec<String> {
        let Some(c) = self.kind.container(container) else {
            return Vec::new();
        };
        self.keys
            .range((c, String::new())..)
            .take_while(|((cc, _), _)| *cc == c)
            .map(|((_, k), _)| k.clone())
            .collect()
    }

    /// Whether any operation is held at `container/key`, whatever its verdict: a key with a
    /// history, where a node does not write a new record (another author may have prepared
    /// it, a withdrawal of it for one).
    pub fn ever_written(&self, container: &str, key: &str) -> bool {
        self.kind
            .container(container)
            .is_some_and(|c| self.keys.contains_key(&(c, key.to_string())))
    }

    /// A change on top of exactly `deps` (those held), with the sequence number and first
    /// operation counter they imply: what an author building on that state would sign. The
    /// tests and the simulator use it to build on old states, as a hostile author would.
    pub fn change_at(
        &self,
        deps: &[ChangeHash],
        actor: &[u8],
        time: i64,
        ops: Vec<FlatOp>,
    ) -> ChangeData {
        let deps: Vec<u32> = deps
            .iter()
            .filter_map(|h| self.by_hash.get(h).copied())
            .collect();
        // Drop deps that are in the past of other deps.
        let mut minimal: Vec<u32> = Vec::new();
        for d in &deps {
            if !deps.iter().any(|o| o != d && self.in_past(*d, *o)) && !minimal.contains(d) {
                minimal.push(*d);
            }
        }
        let clock = self.merged_clock(&minimal);
        let seq = self
            .actor_ix
            .get(actor)
            .and_then(|a| clock.get(*a as usize).copied())
            .unwrap_or(0) as u64
            + 1;
        let start_op = minimal
            .iter()
            .map(|d| self.entries[*d as usize].max_op)
            .max()
            .unwrap_or(0)
            + 1;
        let mut dep_hashes: Vec<[u8; 32]> = minimal
            .iter()
            .map(|d| self.entries[*d as usize].hash.0)
            .collect();
        dep_hashes.sort();
        ChangeData {
            actor: actor.to_vec(),
            seq,
            start_op,
            time,
            message: None,
            deps: dep_hashes,
            ops,
        }
    }

    fn all_heads_ix(&self) -> Vec<u32> {
        let mut has_child = vec![false; self.entries.len()];
        for e in &self.entries {
            for d in &e.deps {
                has_child[*d as usize] = true;
            }
        }
        (0..self.entries.len() as u32)
            .filter(|i| !has_child[*i as usize])
            .collect()
    }

    /// The live operations on a key as the document now stands: what a delete or a
    /// replacing put names. Call after [`Ledger::settle`].
    pub fn live_refs(&self, container: &str, key: &str) -> Vec<OpRef> {
        let (Some(c), Some(s)) = (self.kind.container(container), &self.settled) else {
            return Vec::new();
        };
        let mut out: Vec<OpRef> = self
            .live(c, key, None, &s.verdicts)
            .into_iter()
            .map(|o| {
                let e = &self.entries[o.entry as usize];
                OpRef {
                    counter: e.data.as_ref().map_or(0, |d| d.start_op) + u64::from(o.op),
                    actor: self.actors[e.actor as usize].bytes.clone(),
                }
            })
            .collect();
        out.sort();
        out
    }

    /// The verdict on a held change, once settled.
    pub fn verdict(&self, hash: &ChangeHash) -> Option<&Verdict> {
        let i = *self.by_hash.get(hash)? as usize;
        self.settled.as_ref()?.verdicts.get(i)
    }

    /// Every held change that does not stand, with the reason, once settled.
    pub fn voided(&self) -> Vec<(ChangeHash, Denied)> {
        let Some(s) = &self.settled else {
            return Vec::new();
        };
        self.entries
            .iter()
            .zip(&s.verdicts)
            .filter_map(|(e, v)| match v {
                Verdict::Void(d) => Some((e.hash, d.clone())),
                _ => None,
            })
            .collect()
    }

    /// Whether a held change is offered to peers, once settled.
    pub fn is_exported(&self, hash: &ChangeHash) -> bool {
        match (self.by_hash.get(hash), &self.settled) {
            (Some(i), Some(s)) => s.exported[*i as usize],
            _ => false,
        }
    }

    /// A pool member's revocation, if `key` (`STATE/NODE/revoked`) and `text` are one: a
    /// revocation of that node by that State, signed by the key that signed one of the node's
    /// held membership delegations there (so the State's own key, if the membership was real:
    /// a key someone else made up cannot revoke a member it did not sign).
    fn pool_revocation(
        &self,
        key: &str,
        text: &str,
        inside: &dyn Fn(u32) -> bool,
    ) -> Option<SignedGrant> {
        let (state, rest) = key.split_once('/')?;
        let node = rest.strip_suffix("/revoked")?;
        let state: StateCode = state.parse().ok()?;
        let node: NodeId = node.parse().ok()?;
        let g = SignedGrant::parse(text).ok()?;
        if g.grant.kind != GrantKind::Revocation
            || g.grant.node != node
            || g.grant.principal != Principal::State(state)
        {
            return None;
        }
        let signed_member = self.member_keys(&format!("{state}/{node}"), inside);
        signed_member.contains(&g.grant.key).then_some(g)
    }

    /// Whether `value` at members key `STATE/NODE` is a delegation of `author` by that State,
    /// signed by the State key some held invitation of that State names.
    fn invited_join(
        &self,
        key: &str,
        author: &NodeId,
        value: &str,
        inside: &dyn Fn(u32) -> bool,
    ) -> bool {
        let Some((state, _)) = key.split_once('/') else {
            return false;
        };
        let (Ok(code), Some(c)) = (state.parse::<StateCode>(), self.kind.container("invites"))
        else {
            return false;
        };
        let Ok(g) = SignedGrant::parse(value) else {
            return false;
        };
        if g.grant.kind != GrantKind::Delegation
            || g.grant.node != *author
            || g.grant.principal != Principal::State(code)
        {
            return false;
        }
        let DocId::Pool(id) = &self.doc else {
            return false;
        };
        // Only the coordinator invites: an invitation someone else put (void, but held) names
        // no key anybody chose.
        self.keys
            .get(&(c, state.to_string()))
            .into_iter()
            .flatten()
            .filter(|at| {
                let e = &self.entries[at.entry as usize];
                inside(at.entry)
                    && self.actors[e.actor as usize]
                        .author
                        .is_some_and(|a| id.is_creator(&a))
            })
            .filter_map(|at| self.op(*at).value())
            .filter_map(|t| parse_value(t).and_then(|v| serde_json::from_value::<Invite>(v).ok()))
            .any(|i| i.state == code && i.state_key == g.grant.key)
    }

    /// The keys that signed the membership delegations held under members key `STATE/NODE`
    /// that the node itself placed and that are about it and that State, signed by a key the
    /// coordinator's invitation of that State names: only the node places its own join, and
    /// only the invited key signs it, so no one can add a key to a membership (a void put by
    /// the coordinator, a copy of another node's delegation, or a delegation the node signed
    /// with a key it made up does not count).
    /// [`Ledger::member_keys`] over the changes `sw` judges, each entry's once a judgement:
    /// a pool's sections each asked again, and a judgement cost the cube of the history (red
    /// team, session 25).
    fn member_keys_in(&self, key: &str, sw: &SetWide) -> Vec<NodeId> {
        if let Some(k) = sw.member_keys.borrow().get(key) {
            return k.clone();
        }
        let k = self.member_keys(key, &|e| sw.inside(e));
        sw.member_keys
            .borrow_mut()
            .insert(key.to_string(), k.clone());
        k
    }

    fn member_keys(&self, key: &str, inside: &dyn Fn(u32) -> bool) -> Vec<NodeId> {
        let Some(c) = self.kind.container("members") else {
            return Vec::new();
        };
        let Some((state, node)) = key.split_once('/') else {
            return Vec::new();
        };
        let (Ok(state), Ok(node)) = (state.parse::<StateCode>(), node.parse::<NodeId>()) else {
            return Vec::new();
        };
        self.keys
            .get(&(c, key.to_string()))
            .into_iter()
            .flatten()
            .filter(|at| {
                let e = &self.entries[at.entry as usize];
                inside(at.entry) && self.actors[e.actor as usize].author == Some(node)
            })
            .filter_map(|at| self.op(*at).value())
            .filter(|t| self.invited_join(key, &node, t, inside))
            .filter_map(|t| SignedGrant::parse(t).ok())
            .filter(|g| {
                g.grant.kind == GrantKind::Delegation
                    && g.grant.node == node
                    && g.grant.principal == Principal::State(state)
            })
            .map(|g| g.grant.key)
            .collect()
    }

    /// Whether every revocation of its author keeps entry `i`.
    fn kept(&self, i: u32, revocations: &[HashMap<String, HashSet<u32>>]) -> bool {
        let e = &self.entries[i as usize];
        let actor = hex(&self.actors[e.actor as usize].bytes);
        revocations
            .iter()
            .all(|r| r.get(&actor).is_some_and(|k| k.contains(&i)))
    }

    /// What a revocation keeps of this document: per actor (hex) of the revoked node, the
    /// changes that stand.
    fn kept_here(
        &self,
        g: &SignedGrant,
        inside: &dyn Fn(usize) -> bool,
    ) -> HashMap<String, HashSet<u32>> {
        g.grant
            .cutoff
            .iter()
            .filter(|c| c.doc == self.doc)
            .map(|c| (c.actor.clone(), self.kept_by(c, inside)))
            .collect()
    }

    /// The changes of one actor a revocation's cut-off keeps: the named last change and that
    /// actor's changes in its causal past, followed along dependencies. Nothing while the
    /// named change is not held; nothing for a cut-off naming none.
    fn kept_by(
        &self,
        c: &crate::authority::Cutoff,
        inside: &dyn Fn(usize) -> bool,
    ) -> HashSet<u32> {
        let mut out = HashSet::new();
        let Some(actor) = self.actors.iter().position(|a| hex(&a.bytes) == c.actor) else {
            return out;
        };
        let actor = actor as u32;
        // A cut-off names the last kept change by its hash: a sequence number alone cannot
        // tell twins apart, so it keeps nothing.
        let Some(head) = &c.head else {
            return out;
        };
        let Some(&start) = parse_hash(head).and_then(|h| self.by_hash.get(&h)) else {
            return out;
        };
        if !inside(start as usize) || self.entries[start as usize].actor != actor {
            return out;
        }
        let mut seen = vec![false; self.entries.len()];
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i as usize], true) {
                continue;
            }
            let e = &self.entries[i as usize];
            if e.actor == actor {
                out.insert(i);
            }
            stack.extend(e.deps.iter().copied());
        }
        out
    }

    /// For each actor of `node`, its last standing change here: the cut-off a revocation of
    /// that node issued now would carry for this document (what stands of it now is what
    /// stands after). An actor with nothing standing is named with nothing kept.
    pub fn cutoff_for(&self, node: &NodeId) -> Vec<crate::authority::Cutoff> {
        let judged;
        let verdicts = match &self.settled {
            Some(s) => &s.verdicts,
            None => {
                judged = self.judge(None, self.settled_key.as_ref());
                &judged.verdicts
            }
        };
        let mut out = Vec::new();
        for a in self.author_actors.get(node).into_iter().flatten() {
            let last = self
                .by_actor_seq
                .iter()
                .filter(|((aa, _), _)| aa == a)
                .flat_map(|((_, s), ix)| ix.iter().map(move |i| (*s, *i)))
                .filter(|(_, i)| matches!(verdicts.get(*i as usize), Some(Verdict::Stands)))
                .max();
            out.push(crate::authority::Cutoff {
                doc: self.doc.clone(),
                actor: hex(&self.actors[*a as usize].bytes),
                seq: last.map_or(0, |(s, _)| u64::from(s)),
                head: last.map(|(_, i)| hex(&self.entries[i as usize].hash.0)),
            });
        }
        out.sort();
        out
    }

    /// The exported changes not in the causal past of `known` (hashes the peer is known to
    /// hold; those not held here are ignored), in causal order.
    pub fn exported_since(&self, known: &[ChangeHash]) -> Vec<ChangeHash> {
        let Some(s) = &self.settled else {
            return Vec::new();
        };
        let ix: Vec<u32> = known
            .iter()
            .filter_map(|h| self.by_hash.get(h).copied())
            .collect();
        let clock = self.merged_clock(&ix);
        let known_set: HashSet<u32> = ix.iter().copied().collect();
        (1..self.entries.len() as u32)
            .filter(|i| s.exported[*i as usize])
            .filter(|i| {
                let e = &self.entries[*i as usize];
                let known_here = match self.twin_desc.get(i) {
                    Some(d) => ix.iter().any(|k| d.get(*k)),
                    None => clock.get(e.actor as usize).copied().unwrap_or(0) >= e.seq,
                };
                !(known_set.contains(i) || known_here)
            })
            .map(|i| self.entries[i as usize].hash)
            .collect()
    }

    /// The exported descendants of `roots` (themselves included), in causal order.
    pub fn exported_descendants(&self, roots: &HashSet<ChangeHash>) -> Vec<ChangeHash> {
        let Some(s) = &self.settled else {
            return Vec::new();
        };
        let mut mark = vec![false; self.entries.len()];
        let mut out = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if !s.exported[i] {
                continue;
            }
            if roots.contains(&e.hash) || e.deps.iter().any(|d| mark[*d as usize]) {
                mark[i] = true;
                if i > 0 {
                    out.push(e.hash);
                }
            }
        }
        out
    }

    /// Heads of the set of changes in the causal past of both `a` and what this ledger holds:
    /// those of `a` that are held here, reduced to the ones not in another's past.
    pub fn held_heads_of(&self, a: &[ChangeHash]) -> Vec<ChangeHash> {
        let ix: Vec<u32> = a
            .iter()
            .filter_map(|h| self.by_hash.get(h).copied())
            .collect();
        let mut out: Vec<ChangeHash> = ix
            .iter()
            .filter(|i| !ix.iter().any(|o| o != *i && self.in_past(**i, *o)))
            .map(|i| self.entries[*i as usize].hash)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The author and verdict of every held change, for the audit.
    pub fn audit_rows(&self) -> Vec<(ChangeHash, Author, Verdict)> {
        let Some(s) = &self.settled else {
            return Vec::new();
        };
        self.entries
            .iter()
            .zip(&s.verdicts)
            .map(|(e, v)| {
                let a = match self.actors[e.actor as usize].author {
                    Some(n) => Author::Node(n),
                    None => Author::Genesis,
                };
                (e.hash, a, v.clone())
            })
            .collect()
    }

    /// The Automerge changes of the exported set, in causal order, for an export any Automerge
    /// implementation loads. Of twins, only the first held can go in (Automerge holds one
    /// change per actor and position), and so only what depends on it.
    pub fn automerge_changes(&self) -> Vec<automerge::Change> {
        let Some(s) = &self.settled else {
            return Vec::new();
        };
        let mut taken: HashSet<(u32, u32)> = HashSet::new();
        let mut skipped = vec![false; self.entries.len()];
        let mut out = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if !s.exported[i] {
                skipped[i] = true;
                continue;
            }
            if !taken.insert((e.actor, e.seq)) || e.deps.iter().any(|d| skipped[*d as usize]) {
                skipped[i] = true;
                continue;
            }
            let change = match &e.data {
                Some(d) => d.to_automerge(&self.doc).ok(),
                None => genesis(&self.doc),
            };
            match change {
                Some(c) => out.push(c),
                None => skipped[i] = true,
            }
        }
        out
    }
}

/// What decides authority over the whole set judged, computed before any verdict: what a
/// change's author chose as its dependencies cannot move it.
/// What judging change `i` reads: its data, the document's principal, what the whole set
/// says, and the verdicts of the changes before it (every change of its past among them).
struct Judging<'a> {
    i: u32,
    data: &'a ChangeData,
    principal: Option<&'a Principal>,
    sw: &'a SetWide,
    verdicts: &'a [Verdict],
}

struct SetWide {
    /// Actor → the first sequence number at which it equivocated (nodes not revoked).
    void_from: HashMap<u32, u32>,
    /// Authors with more actor ids than a node needs (nodes not revoked).
    too_many: HashSet<NodeId>,
    /// Revoked node → for each of its revocations, per actor (hex), the changes that stand.
    cutoffs: HashMap<NodeId, Vec<HashMap<String, HashSet<u32>>>>,
    /// Every valid delegation held, by node, oldest first.
    delegations: HashMap<NodeId, Vec<SignedGrant>>,
    /// The changes judged, by position, when not all are (a view at given heads): what a
    /// verdict reads off the set is read off these only.
    mask: Option<Vec<bool>>,
    /// For a pool, what the whole set says of it (see [`Ledger::pool_facts`]); `None` in the
    /// first pass.
    pool: Option<PoolFacts>,
    /// The keys that signed each pool membership entry held (see [`Ledger::member_keys_in`]).
    member_keys: std::cell::RefCell<HashMap<String, Vec<NodeId>>>,
}

/// What a pool's whole set of changes says, read off a first judgement of it.
#[derive(Debug, Default)]
struct PoolFacts {
    /// The States whose invitation is in force in the whole set (not withdrawn).
    invited: HashSet<String>,
    /// Each membership in force in the whole set (`STATE/NODEID`: joined, not left nor
    /// removed, whatever past a change of that node names, its State still invited) → the
    /// delegation it presents.
    members: HashMap<String, SignedGrant>,
    /// The memberships whose removals of other nodes count, when not all of `members`: those
    /// in force for certain, in the well-founded reading of a pool's removals.
    removers: Option<HashSet<String>>,
}

impl PoolFacts {
    /// Whether `key`'s removals of other nodes count.
    fn removes(&self, key: &str) -> bool {
        match &self.removers {
            // In force for certain *and* possibly in force: membership is not quite antitone
            // in the removers (a re-join stands only if a removal of the earlier join stood,
            // since a set entry is never written over), so `lower` may hold a node `upper`
            // does not, and its removals must not count (red team, session 27).
            Some(r) => r.contains(key) && self.members.contains_key(key),
            None => self.members.contains_key(key),
        }
    }

    /// Whether `other` says the same: the same States invited, the same memberships under the
    /// same delegations.
    fn same(&self, other: &PoolFacts) -> bool {
        self.invited == other.invited
            && self.members.len() == other.members.len()
            && self.members.iter().all(|(k, g)| {
                other
                    .members
                    .get(k)
                    .is_some_and(|o| o.storage_key() == g.storage_key())
            })
    }
}

/// The most rounds of the alternating judgement of a pool's memberships (two passes each):
/// each round settles at least one more member, in or out, so only a crafted chain of more
/// removals than this needs more.
const POOL_ROUNDS: usize = 6;

impl SetWide {
    /// Whether entry `i` is among the changes judged.
    fn inside(&self, i: u32) -> bool {
        self.mask
            .as_ref()
            .is_none_or(|m| m.get(i as usize).copied().unwrap_or(false))
    }

    /// The delegation a change of `author` at `actor` (hex) and `seq` is judged under: the
    /// latest (by serial, then issue date) whose cut-off, if it has one, this change comes after. A delegation that
    /// replaces an earlier one (narrowing, widening, renewing) carries the cut-off of what the
    /// node had written by then, which stays judged under the delegation it was written under.
    fn delegation_for(
        &self,
        doc: &DocId,
        author: &NodeId,
        actor: &str,
        seq: u32,
    ) -> Option<&SignedGrant> {
        self.delegations.get(author)?.iter().rev().find(|g| {
            g.grant
                .cutoff
                .iter()
                .find(|c| c.doc == *doc && c.actor == actor)
                .is_none_or(|c| u64::from(seq) > c.seq)
        })
    }
}

enum Screen {
    NoKey(Denied),
    NotAWriter(String),
}

fn no_key(p: &Principal) -> Denied {
    Denied::NoKey {
        code: p.code(),
        key_name: p.key_name(),
        kind: match p {
            Principal::State(_) => "state",
            Principal::Body(_) => "body",
        },
    }
}

fn area_of_value(text: &str) -> Option<Area> {
    parse_value(text)?
        .get("area")
        .and_then(Json::as_str)
        .and_then(|a| a.parse().ok())
}

#[cold]
fn unreachable_op() -> &'static FlatOp {
    // Operations are indexed only for entries that carry data; reaching here would be a bug in
    // the index. A static empty operation keeps the caller total.
    static EMPTY: std::sync::OnceLock<FlatOp> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| FlatOp {
        container: u8::MAX,
        key: String::new(),
        action: FlatAction::Delete { preds: Vec::new() },
    })
}

#[cold]
fn unreachable_settled() -> Settled {
    Settled {
        verdicts: Vec::new(),
        exported: Vec::new(),
        heads: Vec::new(),
        offered: Vec::new(),
        view: Json::Null,
        disputed: Vec::new(),
        flagged: Vec::new(),
    }
}

/// The bytes of a node's actor id.
pub fn actor_bytes(node: &NodeId, suffix: &[u8; ACTOR_LEN - 32]) -> Vec<u8> {
    let mut v = node.0.to_vec();
    v.extend_from_slice(suffix);
    v
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
pub(crate) mod tests;
