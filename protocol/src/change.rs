//! A change as poa nodes write, send and store it, and the Automerge change it stands for.
//!
//! Automerge's binary change format is columnar and run-length encoded: a few hundred bytes can
//! claim millions of operations, and its parser was not written to face hostile input (it panics
//! on some, and inflates compressed chunks without limit). So no byte a peer sends ever reaches
//! Automerge's parser. A change travels and is stored as [`ChangeData`]: an explicit list of
//! at most [`MAX_OPS`] flat operations, each putting a JSON text under a key of one of the
//! document's top-level maps (fixed by its genesis) or deleting such an entry. Every bound is
//! checked ([`ChangeData::check`]) before anything else looks at it.
//!
//! The Automerge change is then *derived* from it with Automerge's own encoder
//! ([`ChangeData::to_automerge`]), so the document is an ordinary Automerge document (its
//! export opens in any Automerge implementation) and the hash the author signs is the Automerge
//! change hash. The encoding is deterministic: every node derives the same bytes and hash from
//! the same `ChangeData`.

use std::num::NonZeroU64;
use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::legacy::{self, Key, ObjectId, OpId, OpType, SortedVec};
use automerge::{ActorId, Change, ChangeHash, ObjType, ScalarValue};
use serde::{Deserialize, Serialize};

use crate::doc::{DocId, genesis_actor};
use crate::sign::{ACTOR_LEN, Signature};

/// The most operations one change may carry.
pub const MAX_OPS: usize = 1000;
/// The most dependencies one change may name.
pub const MAX_DEPS: usize = 64;
/// The longest key, in bytes.
pub const MAX_KEY: usize = 200;
/// The longest value (a JSON text), in bytes.
pub const MAX_VALUE: usize = 64 * 1024;
/// The most bytes of keys and values one change may carry.
pub const MAX_CHANGE_BYTES: usize = 1 << 20;
/// The longest change message, in bytes.
pub const MAX_MESSAGE: usize = 256;
/// The most earlier operations one operation may replace or delete.
pub const MAX_PREDS: usize = 8;
/// The highest sequence number and operation counter accepted (Automerge keeps some in 32 bits).
pub const MAX_COUNTER: u64 = 1 << 31;
/// The deepest nesting a JSON value may have.
pub const MAX_JSON_DEPTH: usize = 16;

/// An earlier operation that an operation replaces or deletes: its counter and actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OpRef {
    /// The operation's counter.
    pub counter: u64,
    /// Its actor's bytes (a node's actor id: NodeId and suffix).
    pub actor: Vec<u8>,
}

/// What a flat operation does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlatAction {
    /// Sets the key to a JSON text, replacing the operations named (none for a new key).
    Put {
        /// The JSON text.
        value: String,
        /// The operations it replaces.
        preds: Vec<OpRef>,
    },
    /// Deletes the values the named operations put.
    Delete {
        /// The operations whose values it deletes.
        preds: Vec<OpRef>,
    },
}

/// One operation: on a key of one of the document's top-level maps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlatOp {
    /// The map, by its position in the document kind's list of containers.
    pub container: u8,
    /// The key within it.
    pub key: String,
    /// What it does.
    pub action: FlatAction,
}

impl FlatOp {
    /// The operations this one replaces or deletes.
    pub fn preds(&self) -> &[OpRef] {
        match &self.action {
            FlatAction::Put { preds, .. } | FlatAction::Delete { preds } => preds,
        }
    }

    /// The value put, if this is a put.
    pub fn value(&self) -> Option<&str> {
        match &self.action {
            FlatAction::Put { value, .. } => Some(value),
            FlatAction::Delete { .. } => None,
        }
    }
}

/// A change in the form poa nodes send and store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeData {
    /// The author's actor id: NodeId (32 bytes) then the store's suffix (8 bytes).
    pub actor: Vec<u8>,
    /// Its position in the actor's chain of changes to this document, from 1.
    pub seq: u64,
    /// The counter of its first operation: one more than the highest in its causal past.
    pub start_op: u64,
    /// Unix seconds, as the author's clock said. Never trusted for a verdict that matters.
    pub time: i64,
    /// An optional note.
    pub message: Option<String>,
    /// The hashes of the changes it builds on, sorted.
    pub deps: Vec<[u8; 32]>,
    /// What it does.
    pub ops: Vec<FlatOp>,
}

/// A change with its author's signature, as it travels and is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedChange {
    /// The change.
    pub data: ChangeData,
    /// The author's signature over the change hash (bound to the document id).
    pub signature: Vec<u8>,
}

/// The most bytes a stored or sent change may take encoded.
pub const MAX_ENCODED: usize = 2 << 20;

fn codec() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_ENCODED>()
}

impl ChangeData {
    /// The change in its stored form (bincode, the same encoding as on the wire).
    pub fn to_bytes(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, codec()).unwrap_or_default()
    }

    /// Reads a stored change; bounded like everything read from outside.
    pub fn from_bytes(bytes: &[u8]) -> Result<ChangeData, Malformed> {
        let (c, used): (ChangeData, usize) = bincode::serde::decode_from_slice(bytes, codec())
            .map_err(|e| Malformed::Encode(e.to_string()))?;
        if used != bytes.len() {
            return Err(Malformed::Encode("trailing bytes".into()));
        }
        Ok(c)
    }
}

impl SignedChange {
    /// The signature, if it has the right length.
    pub fn signature(&self) -> Option<Signature> {
        <[u8; 64]>::try_from(self.signature.as_slice()).ok()
    }
}

/// Why a change is malformed. Every variant is a property of the change alone, so the verdict
/// is the same on every node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// The actor id is not a NodeId and an 8-byte suffix.
    #[error("its actor id has {0} bytes, not {ACTOR_LEN}")]
    Actor(usize),
    /// Sequence number or counter out of range.
    #[error("its {0} is {1}, outside 1..{MAX_COUNTER}")]
    Counter(&'static str, u64),
    /// No operations.
    #[error("it has no operations")]
    Empty,
    /// Too many of something.
    #[error("it has {1} {0}, more than the {2} allowed")]
    TooMany(&'static str, usize, usize),
    /// Dependencies not sorted or repeated.
    #[error("its dependencies are not sorted and distinct")]
    Deps,
    /// No dependencies: every change builds on its document's genesis at least.
    #[error("it names no dependency (every change builds on the document's genesis)")]
    NoDeps,
    /// A container index the document kind does not have.
    #[error("it writes container #{0}, which this kind of document does not have")]
    Container(u8),
    /// A bad key.
    #[error("it writes key {0:?}: keys are 1 to {MAX_KEY} printable ASCII characters")]
    Key(String),
    /// Two operations on one key.
    #[error("it writes key {0} twice")]
    TwoOps(String),
    /// A value that is not JSON, or nested too deep.
    #[error("the value at {0} is not JSON of at most {MAX_JSON_DEPTH} levels")]
    Json(String),
    /// Preds not sorted, repeated, or with a bad actor.
    #[error("operation on {0} names its predecessors out of order or twice")]
    Preds(String),
    /// A delete that deletes nothing.
    #[error("the delete of {0} names nothing to delete")]
    EmptyDelete(String),
    /// The timestamp is absurd.
    #[error("its time {0} is not a plausible Unix time")]
    Time(i64),
    /// The message is too long or has control characters.
    #[error("its message is longer than {MAX_MESSAGE} bytes or has control characters")]
    Message,
    /// Automerge's encoder refused it (a bug in the checks above if it ever happens).
    #[error("it cannot be encoded as an Automerge change: {0}")]
    Encode(String),
}

fn key_ok(k: &str) -> bool {
    !k.is_empty() && k.len() <= MAX_KEY && k.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

fn json_depth_ok(v: &serde_json::Value, depth: usize) -> bool {
    if depth > MAX_JSON_DEPTH {
        return false;
    }
    match v {
        serde_json::Value::Array(a) => a.iter().all(|x| json_depth_ok(x, depth + 1)),
        serde_json::Value::Object(m) => m.values().all(|x| json_depth_ok(x, depth + 1)),
        _ => true,
    }
}

/// Parses a value's JSON text, bounded in size and depth.
pub fn parse_value(text: &str) -> Option<serde_json::Value> {
    if text.len() > MAX_VALUE {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    json_depth_ok(&v, 0).then_some(v)
}

fn preds_ok(preds: &[OpRef]) -> bool {
    preds.len() <= MAX_PREDS
        && preds
            .iter()
            .all(|p| p.actor.len() == ACTOR_LEN && p.counter >= 1 && p.counter < MAX_COUNTER)
        && preds
            .windows(2)
            .all(|w| (w[0].counter, &w[0].actor) < (w[1].counter, &w[1].actor))
}

impl ChangeData {
    /// Checks every bound that is a property of the change alone: sizes, counts, ranges,
    /// shapes. `containers` is how many top-level maps the document kind has.
    pub fn check(&self, containers: usize) -> Result<(), Malformed> {
        if self.actor.len() != ACTOR_LEN {
            return Err(Malformed::Actor(self.actor.len()));
        }
        if self.seq == 0 || self.seq >= MAX_COUNTER {
            return Err(Malformed::Counter("sequence number", self.seq));
        }
        if self.start_op < 2 || self.start_op >= MAX_COUNTER {
            return Err(Malformed::Counter("first operation counter", self.start_op));
        }
        if self.ops.is_empty() {
            return Err(Malformed::Empty);
        }
        if self.ops.len() > MAX_OPS {
            return Err(Malformed::TooMany("operations", self.ops.len(), MAX_OPS));
        }
        if self.start_op + self.ops.len() as u64 >= MAX_COUNTER {
            return Err(Malformed::Counter("last operation counter", self.start_op));
        }
        if self.deps.is_empty() {
            return Err(Malformed::NoDeps);
        }
        if self.deps.len() > MAX_DEPS {
            return Err(Malformed::TooMany(
                "dependencies",
                self.deps.len(),
                MAX_DEPS,
            ));
        }
        if !self.deps.windows(2).all(|w| w[0] < w[1]) {
            return Err(Malformed::Deps);
        }
        // Far past and far future alike: honest clocks are within years of now, and the
        // bound only keeps arithmetic on dates sane.
        if !(0..=(1i64 << 40)).contains(&self.time) {
            return Err(Malformed::Time(self.time));
        }
        if let Some(m) = &self.message
            && (m.len() > MAX_MESSAGE || m.chars().any(char::is_control))
        {
            return Err(Malformed::Message);
        }
        let mut bytes = 0usize;
        let mut seen = std::collections::HashSet::new();
        for op in &self.ops {
            if usize::from(op.container) >= containers {
                return Err(Malformed::Container(op.container));
            }
            if !key_ok(&op.key) {
                return Err(Malformed::Key(op.key.chars().take(40).collect()));
            }
            if !seen.insert((op.container, op.key.as_str())) {
                return Err(Malformed::TwoOps(op.key.clone()));
            }
            if !preds_ok(op.preds()) {
                return Err(Malformed::Preds(op.key.clone()));
            }
            bytes += op.key.len();
            match &op.action {
                FlatAction::Put { value, .. } => {
                    if value.len() > MAX_VALUE || parse_value(value).is_none() {
                        return Err(Malformed::Json(op.key.clone()));
                    }
                    bytes += value.len();
                }
                FlatAction::Delete { preds } => {
                    if preds.is_empty() {
                        return Err(Malformed::EmptyDelete(op.key.clone()));
                    }
                }
            }
            if bytes > MAX_CHANGE_BYTES {
                return Err(Malformed::TooMany("bytes", bytes, MAX_CHANGE_BYTES));
            }
        }
        Ok(())
    }

    /// The Automerge change this stands for, in document `doc`. Call [`ChangeData::check`]
    /// first: this relies on its bounds. Automerge's encoder runs contained, so even a bug in
    /// the checks makes this an error, never a panic.
    pub fn to_automerge(&self, doc: &DocId) -> Result<Change, Malformed> {
        let genesis = genesis_actor(doc);
        let ops = self
            .ops
            .iter()
            .map(|op| {
                let preds: SortedVec<OpId> = op
                    .preds()
                    .iter()
                    .map(|p| OpId::new(p.counter, &ActorId::from(p.actor.as_slice())))
                    .collect();
                legacy::Op {
                    action: match &op.action {
                        FlatAction::Put { value, .. } => {
                            OpType::Put(ScalarValue::from(value.as_str()))
                        }
                        FlatAction::Delete { .. } => OpType::Delete,
                    },
                    obj: ObjectId::Id(OpId::new(container_counter(op.container), &genesis)),
                    key: Key::Map(op.key.as_str().into()),
                    pred: preds,
                    insert: false,
                }
            })
            .collect();
        let start_op = NonZeroU64::new(self.start_op)
            .ok_or(Malformed::Counter("first operation counter", 0))?;
        let expanded = automerge::ExpandedChange {
            operations: ops,
            actor_id: ActorId::from(self.actor.as_slice()),
            hash: None,
            seq: self.seq,
            start_op,
            time: self.time,
            message: self.message.clone(),
            deps: self.deps.iter().map(|d| ChangeHash(*d)).collect(),
            extra_bytes: Vec::new(),
            author: None,
        };
        contain(|| Change::from(expanded)).map_err(Malformed::Encode)
    }
}

/// Runs `f`, turning a panic into an error: the containment every call into a third-party
/// library on peer-influenced data gets, on top of the checks made before it.
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into())
    })
}

/// The operation counter of the genesis operation that made container `index`: the genesis
/// puts `schema` (1) and `doc` (2), then makes the containers in order from 3.
pub fn container_counter(index: u8) -> u64 {
    3 + u64::from(index)
}

/// The genesis change of a document: `schema`, `doc`, then one map per container, by a fixed
/// actor at time 0, with no dependencies. Every node derives the same bytes from the id.
pub fn genesis_change(doc: &DocId, schema: u64) -> Result<Change, Malformed> {
    let actor = genesis_actor(doc);
    let mut ops = vec![
        legacy::Op {
            action: OpType::Put(ScalarValue::Uint(schema)),
            obj: ObjectId::Root,
            key: Key::Map("schema".into()),
            pred: SortedVec::new(),
            insert: false,
        },
        legacy::Op {
            action: OpType::Put(ScalarValue::from(doc.to_string().as_str())),
            obj: ObjectId::Root,
            key: Key::Map("doc".into()),
            pred: SortedVec::new(),
            insert: false,
        },
    ];
    for name in doc.kind().containers() {
        ops.push(legacy::Op {
            action: OpType::Make(ObjType::Map),
            obj: ObjectId::Root,
            key: Key::Map((*name).into()),
            pred: SortedVec::new(),
            insert: false,
        });
    }
    let expanded = automerge::ExpandedChange {
        operations: ops,
        actor_id: actor,
        hash: None,
        seq: 1,
        start_op: NonZeroU64::MIN,
        time: 0,
        message: Some("genesis".into()),
        deps: Vec::new(),
        extra_bytes: Vec::new(),
        author: None,
    };
    contain(|| Change::from(expanded)).map_err(Malformed::Encode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::ReadDoc;

    fn doc() -> DocId {
        "state/XAA".parse().unwrap()
    }

    fn sample() -> ChangeData {
        let g = genesis_change(&doc(), crate::doc::SCHEMA).unwrap();
        ChangeData {
            actor: vec![7; ACTOR_LEN],
            seq: 1,
            start_op: g.max_op() + 1,
            time: 1_700_000_000,
            message: None,
            deps: vec![g.hash().0],
            ops: vec![FlatOp {
                container: 0,
                key: "T1/1".into(),
                action: FlatAction::Put {
                    value: r#"{"id":"T1"}"#.into(),
                    preds: vec![],
                },
            }],
        }
    }

    #[test]
    fn a_change_derives_to_an_automerge_change_that_automerge_applies() {
        let g = genesis_change(&doc(), crate::doc::SCHEMA).unwrap();
        let data = sample();
        data.check(9).unwrap();
        let c = data.to_automerge(&doc()).unwrap();
        assert_eq!(c.seq(), 1);
        assert_eq!(c.deps(), &[g.hash()]);
        // Deterministic: the same data gives the same hash.
        assert_eq!(c.hash(), data.to_automerge(&doc()).unwrap().hash());
        let mut am = automerge::Automerge::new();
        am.apply_changes([g, c]).unwrap();
        let (targets, id) = am.get(automerge::ROOT, "targets").unwrap().unwrap();
        assert!(matches!(targets, automerge::Value::Object(ObjType::Map)));
        let (v, _) = am.get(&id, "T1/1").unwrap().unwrap();
        assert_eq!(v.as_str(), Some(r#"{"id":"T1"}"#));
    }

    #[test]
    fn bounds_are_checked() {
        let ok = sample();
        let mut c = ok.clone();
        c.ops.clear();
        assert_eq!(c.check(9), Err(Malformed::Empty));
        let mut c = ok.clone();
        c.start_op = u32::MAX as u64;
        assert!(matches!(c.check(9), Err(Malformed::Counter(..))));
        let mut c = ok.clone();
        c.ops[0].container = 9;
        assert_eq!(c.check(9), Err(Malformed::Container(9)));
        let mut c = ok.clone();
        c.ops.push(c.ops[0].clone());
        assert!(matches!(c.check(9), Err(Malformed::TwoOps(_))));
        let mut c = ok.clone();
        c.ops[0].key = "a\nb".into();
        assert!(matches!(c.check(9), Err(Malformed::Key(_))));
        let mut c = ok.clone();
        c.ops[0].action = FlatAction::Put {
            value: "[".repeat(40) + &"]".repeat(40),
            preds: vec![],
        };
        assert!(matches!(c.check(9), Err(Malformed::Json(_))));
        let mut c = ok.clone();
        c.deps = vec![[2; 32], [1; 32]];
        assert_eq!(c.check(9), Err(Malformed::Deps));
        let mut c = ok;
        c.actor = vec![1; 16];
        assert_eq!(c.check(9), Err(Malformed::Actor(16)));
    }

    #[test]
    fn contain_turns_a_panic_into_an_error() {
        let r: Result<(), String> = contain(|| panic!("boom"));
        assert_eq!(r, Err("boom".into()));
    }
}
