//! Who may write what: State keys, delegations and revocations, and the path rules every change
//! is held to.
//!
//! A State's key never writes documents itself; it signs **delegations** that let a node (one
//! per ministry) write the State's documents, within a scope of commitment areas and until an
//! expiry, and **revocations** that end them. Both are stored as signed records in the State's
//! own documents, so every node can check them, whoever relayed them.
//!
//! The verdict on a change reads only the change and the document's history *as of the change's
//! dependencies* (its causal past), so every node reaches the same verdict in any arrival order.
//! A revocation therefore binds the changes made after the revoked node saw it; changes made
//! concurrently with it (not depending on it) stand. An expiry date bounds what a revoked node
//! that never syncs again can do.

use std::collections::{BTreeMap, HashMap};

use automerge::legacy::{Key, ObjectId, OpType};
use automerge::{Automerge, Change, ChangeHash, Prop, ReadDoc, ScalarValue, Value};
use serde::{Deserialize, Serialize};

use crate::date::Date;
use crate::doc::DocId;
use crate::id::{NodeId, StateCode};
use crate::model::Area;
use crate::sign::{NodeKey, Signature, verify};

/// Which State keys this node trusts: learnt from the first pinned node of each State, from its
/// own State key, or from the first copy of a State's document it accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trust {
    /// State → the key that speaks for it.
    pub state_keys: BTreeMap<StateCode, NodeId>,
}

impl Trust {
    /// The key that speaks for `state`, if known.
    pub fn state_key(&self, state: &StateCode) -> Option<&NodeId> {
        self.state_keys.get(state)
    }
}

/// What a delegation lets a node write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scope {
    /// Everything of the State's documents (the word `all`).
    All(AllMarker),
    /// Only records of these commitment areas.
    Areas(Vec<Area>),
}

/// The literal `"all"` in a scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllMarker {
    /// All.
    All,
}

impl Scope {
    /// Everything.
    pub const ALL: Scope = Scope::All(AllMarker::All);

    /// Whether the scope covers an area.
    pub fn covers(&self, area: Area) -> bool {
        match self {
            Scope::All(_) => true,
            Scope::Areas(a) => a.contains(&area),
        }
    }

    /// Whether the scope covers everything.
    pub fn is_all(&self) -> bool {
        matches!(self, Scope::All(_))
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::All(_) => f.write_str("all"),
            Scope::Areas(a) => {
                f.write_str(&a.iter().map(|a| a.slug()).collect::<Vec<_>>().join(", "))
            }
        }
    }
}

/// The signed part of a delegation or revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// `delegation` or `revocation`.
    pub kind: GrantKind,
    /// The State.
    pub state: StateCode,
    /// The node it is about.
    pub node: NodeId,
    /// What it may write (delegations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Last day it is valid (delegations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Date>,
    /// When the State key signed it.
    pub issued: Date,
    /// The State key that signed it.
    pub state_key: NodeId,
}

/// Delegation or revocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantKind {
    /// Lets a node write for the State.
    Delegation,
    /// Ends a node's delegation.
    Revocation,
}

/// A grant with the State key's signature, as stored (one JSON string) in `delegations/<node>` or
/// `revocations/<node>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedGrant {
    /// What is granted.
    #[serde(flatten)]
    pub grant: Grant,
    /// The State key's signature over the grant, hex.
    pub signature: String,
}

fn grant_bytes(grant: &Grant) -> Vec<u8> {
    let mut msg = b"poa/grant/v1\0".to_vec();
    // serde_json writes struct fields in declaration order: the bytes are canonical.
    msg.extend_from_slice(&serde_json::to_vec(grant).unwrap_or_default());
    msg
}

impl SignedGrant {
    /// Signs a grant with the State key.
    pub fn sign(state_key: &NodeKey, grant: Grant) -> SignedGrant {
        let sig = state_key.sign(&grant_bytes(&grant));
        SignedGrant {
            grant,
            signature: data_encoding::HEXLOWER.encode(&sig),
        }
    }

    /// The stored text form.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses and checks the signature against the key the grant names.
    ///
    /// Every change to a State's document is judged against its author's delegation, so the
    /// same grant text is checked once per change: the texts whose signature verified are
    /// remembered (per thread, a bounded set of digests), and only parsed again.
    pub fn parse(text: &str) -> Result<SignedGrant, String> {
        thread_local! {
            static VERIFIED: std::cell::RefCell<std::collections::HashSet<[u8; 32]>> =
                std::cell::RefCell::new(std::collections::HashSet::new());
        }
        const REMEMBERED: usize = 4096;
        let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()).into();
        if VERIFIED.with(|v| v.borrow().contains(&digest)) {
            return serde_json::from_str(text).map_err(|e| format!("not a signed grant: {e}"));
        }
        let g = Self::parse_and_verify(text)?;
        VERIFIED.with(|v| {
            let mut v = v.borrow_mut();
            if v.len() >= REMEMBERED {
                v.clear();
            }
            v.insert(digest);
        });
        Ok(g)
    }

    fn parse_and_verify(text: &str) -> Result<SignedGrant, String> {
        let g: SignedGrant =
            serde_json::from_str(text).map_err(|e| format!("not a signed grant: {e}"))?;
        let sig: Signature = data_encoding::HEXLOWER
            .decode(g.signature.as_bytes())
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
            .ok_or("the grant's signature is not 64 bytes of hex")?;
        if !verify(&g.grant.state_key, &grant_bytes(&g.grant), &sig) {
            return Err("the grant's signature does not verify".into());
        }
        Ok(g)
    }
}

/// Why a change is not authorized.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// No State key is known for the document's State.
    #[error(
        "no State key is known for {0}; pin one of its nodes with `poa-node peer add NODEID@HOST:PORT --state {0}`"
    )]
    NoStateKey(StateCode),
    /// The author holds no delegation.
    #[error("not delegated by {0}'s State key")]
    NotDelegated(StateCode),
    /// The delegation was revoked in the change's causal past.
    #[error("its delegation from {0} was revoked")]
    Revoked(StateCode),
    /// The delegation expired before the change was made.
    #[error("its delegation from {state} expired on {expires}")]
    Expired {
        /// The State.
        state: StateCode,
        /// The last valid day.
        expires: Date,
    },
    /// The delegation's scope does not cover what the change touches.
    #[error("its delegation covers {scope}, not {touched}")]
    OutOfScope {
        /// The scope.
        scope: String,
        /// What it touched.
        touched: String,
    },
    /// A path nobody may write this way.
    #[error("it writes {path}: {why}")]
    Forbidden {
        /// The path.
        path: String,
        /// Why not.
        why: String,
    },
    /// A delegation or revocation record that does not hold up.
    #[error("it stores a bad grant at {path}: {why}")]
    BadGrant {
        /// The path.
        path: String,
        /// Why.
        why: String,
    },
    /// The author does not own the document.
    #[error("only the owner of {0} writes it")]
    NotOwner(String),
    /// A pool member writing another member's section.
    #[error("only {0}'s members write its section of the pool")]
    NotMember(String),
    /// A State joining a pool it was not invited to.
    #[error("{0} was not invited to this pool: its coordinator runs `poa-node pool invite` first")]
    NotInvited(String),
}

/// One operation, located: the path it writes and the value it puts.
#[derive(Clone, Debug)]
struct Touch {
    path: Vec<String>,
    value: Option<ScalarValue>,
    delete: bool,
}

fn prop_text(p: &Prop) -> String {
    match p {
        Prop::Map(k) => k.to_string(),
        Prop::Seq(_) => "#".into(),
    }
}

/// Locates every operation of a change in the document tree.
fn touches(doc: &Automerge, change: &Change) -> Result<Vec<Touch>, Denied> {
    let expanded = change.decode();
    let actor = change.actor_id().to_hex_string();
    let start = change.start_op().get();
    let mut created: HashMap<String, Vec<String>> = HashMap::new();
    let mut out = Vec::with_capacity(expanded.operations.len());
    for (i, op) in expanded.operations.iter().enumerate() {
        let mut path = match &op.obj {
            ObjectId::Root => Vec::new(),
            ObjectId::Id(id) => {
                let text = format!("{}@{}", id.counter(), id.actor().to_hex_string());
                match created.get(&text) {
                    Some(p) => p.clone(),
                    None => {
                        let unknown = || Denied::Forbidden {
                            path: text.clone(),
                            why: "it refers to an object the document does not have".into(),
                        };
                        let obj = doc.import_obj(&text).map_err(|_| unknown())?;
                        doc.parents(&obj)
                            .map_err(|_| unknown())?
                            .path()
                            .iter()
                            .map(|(_, p)| prop_text(p))
                            .collect()
                    }
                }
            }
        };
        path.push(match &op.key {
            Key::Map(k) => k.to_string(),
            Key::Seq(_) => "#".into(),
        });
        let (value, delete) = match &op.action {
            OpType::Make(_) => {
                created.insert(format!("{}@{actor}", start + i as u64), path.clone());
                (None, false)
            }
            OpType::Put(v) => (Some(v.clone()), false),
            OpType::Delete => (None, true),
            _ => (None, false),
        };
        out.push(Touch {
            path,
            value,
            delete,
        });
    }
    Ok(out)
}

fn str_at(doc: &Automerge, heads: &[ChangeHash], path: &[&str]) -> Option<String> {
    let mut obj = automerge::ROOT;
    for (i, key) in path.iter().enumerate() {
        let (value, id) = doc.get_at(&obj, *key, heads).ok()??;
        if i + 1 == path.len() {
            return match value {
                Value::Scalar(s) => match s.as_ref() {
                    ScalarValue::Str(s) => Some(s.to_string()),
                    _ => None,
                },
                _ => None,
            };
        }
        obj = id;
    }
    None
}

fn keys_at(doc: &Automerge, heads: &[ChangeHash], path: &[&str]) -> Vec<String> {
    let mut obj = automerge::ROOT;
    for key in path {
        match doc.get_at(&obj, *key, heads) {
            Ok(Some((_, id))) => obj = id,
            _ => return Vec::new(),
        }
    }
    doc.keys_at(&obj, heads).collect()
}

/// The delegation that lets `author` write for `state` as of `heads`, checked against the
/// trusted State key, revocations and expiry at `when`.
pub fn delegation_at(
    trust: &Trust,
    doc: &Automerge,
    heads: &[ChangeHash],
    state: StateCode,
    author: &NodeId,
    when: Date,
) -> Result<Grant, Denied> {
    let key = trust.state_key(&state).ok_or(Denied::NoStateKey(state))?;
    let node = author.to_string();
    let valid = |container: &str, kind: GrantKind| -> Option<Grant> {
        let text = str_at(doc, heads, &[container, &node])?;
        let g = SignedGrant::parse(&text).ok()?.grant;
        (g.kind == kind && g.state == state && g.node == *author && g.state_key == *key)
            .then_some(g)
    };
    if valid("revocations", GrantKind::Revocation).is_some() {
        return Err(Denied::Revoked(state));
    }
    let grant = valid("delegations", GrantKind::Delegation).ok_or(Denied::NotDelegated(state))?;
    if let Some(expires) = grant.expires
        && when > expires
    {
        return Err(Denied::Expired { state, expires });
    }
    Ok(grant)
}

/// The area of a target as of `heads`, or as set by this change.
fn target_area(
    doc: &Automerge,
    heads: &[ChangeHash],
    in_change: &[Touch],
    target: &str,
) -> Option<Area> {
    let prefix = format!("{target}/");
    for t in in_change {
        if t.path.len() == 3
            && t.path[0] == "targets"
            && t.path[1].starts_with(&prefix)
            && t.path[2] == "area"
            && let Some(ScalarValue::Str(s)) = &t.value
        {
            return s.parse().ok();
        }
    }
    for key in keys_at(doc, heads, &["targets"]) {
        if key.starts_with(&prefix)
            && let Some(a) = str_at(doc, heads, &["targets", &key, "area"])
        {
            return a.parse().ok();
        }
    }
    None
}

/// The area a touch of a State document concerns, or `None` for records of no single area
/// (the share list, pools, matches), which need a delegation of scope `all`.
fn area_of(doc: &Automerge, heads: &[ChangeHash], all: &[Touch], t: &Touch) -> Option<Area> {
    let record = t.path.get(1)?;
    let field = |name: &str| -> Option<String> {
        all.iter()
            .find(|o| {
                o.path.len() == 3
                    && o.path[0] == t.path[0]
                    && o.path[1] == *record
                    && o.path[2] == name
            })
            .and_then(|o| match &o.value {
                Some(ScalarValue::Str(s)) => Some(s.to_string()),
                _ => None,
            })
            .or_else(|| str_at(doc, heads, &[&t.path[0], record, name]))
    };
    match t.path[0].as_str() {
        "targets" | "needs" => field("area")?.parse().ok(),
        "progress" => target_area(doc, heads, all, &field("target")?),
        "withdrawn" => target_area(doc, heads, all, record),
        _ => None,
    }
}

fn check_grant_touch(t: &Touch, state: StateCode, trust: &Trust) -> Result<(), Denied> {
    let path = t.path.join("/");
    let bad = |why: &str| Denied::BadGrant {
        path: path.clone(),
        why: why.into(),
    };
    let [container, node] = t.path.as_slice() else {
        return Err(bad("a grant is one signed text directly under its map"));
    };
    let Some(ScalarValue::Str(text)) = &t.value else {
        return Err(bad("grants are never removed or edited, only added"));
    };
    let g = SignedGrant::parse(text).map_err(|e| bad(&e))?.grant;
    let kind = if container == "delegations" {
        GrantKind::Delegation
    } else {
        GrantKind::Revocation
    };
    let key = trust.state_key(&state).ok_or(Denied::NoStateKey(state))?;
    if g.kind != kind || g.state != state || g.node.to_string() != *node {
        return Err(bad("it does not match where it is stored"));
    }
    if g.state_key != *key {
        return Err(bad(&format!(
            "it is signed by {}, not by {state}'s State key",
            g.state_key
        )));
    }
    Ok(())
}

/// Checks one touch of a pool's `members`: a State's node joins for itself, presenting the
/// delegation by which the key the coordinator's invitation names lets it act for the State; a
/// member's node leaves for its State. Nobody, not even the coordinator, adds someone else.
fn check_membership(
    trust: &Trust,
    doc: &Automerge,
    heads: &[ChangeHash],
    all: &[Touch],
    t: &Touch,
    author: &NodeId,
    when: Date,
) -> Result<(), Denied> {
    let path = t.path.join("/");
    let forbidden = |why: &str| Denied::Forbidden {
        path: path.clone(),
        why: why.into(),
    };
    let me = author.to_string();
    let state: StateCode = t.path[1]
        .parse()
        .map_err(|_| forbidden("members are keyed by State code"))?;
    let members_now = keys_at(doc, heads, &["members", &t.path[1]]);
    match t.path.len() {
        2 if t.delete => {
            if members_now.contains(&me) {
                Ok(())
            } else {
                Err(Denied::NotMember(state.to_string()))
            }
        }
        2 => {
            // Making the State's map of nodes: only with this node's own entry in it.
            let joins = all.iter().any(|o| {
                o.path.len() == 3 && o.path[..2] == t.path[..] && o.path[2] == me && !o.delete
            });
            if joins {
                Ok(())
            } else {
                Err(forbidden("a node joins a pool only by adding itself"))
            }
        }
        3 if t.path[2] != me => Err(forbidden("a node joins or leaves a pool only for itself")),
        3 if t.delete => Ok(()),
        3 => {
            let key = state.to_string();
            let invited_key = str_at(doc, heads, &["invites", &key, "state_key"])
                .ok_or_else(|| Denied::NotInvited(key.clone()))?;
            if let Some(node) = str_at(doc, heads, &["invites", &key, "node"])
                && node != me
            {
                return Err(Denied::NotInvited(format!("this node of {key}")));
            }
            let bad = |why: &str| Denied::BadGrant {
                path: path.clone(),
                why: why.into(),
            };
            let Some(ScalarValue::Str(text)) = &t.value else {
                return Err(bad("a member's entry is its signed delegation"));
            };
            let g = SignedGrant::parse(text).map_err(|e| bad(&e))?.grant;
            if g.kind != GrantKind::Delegation || g.state != state || g.node != *author {
                return Err(bad("it is not a delegation of this node by this State"));
            }
            if g.state_key.to_string() != invited_key {
                return Err(bad(&format!(
                    "it is signed by {}, not by the State key the invitation names",
                    g.state_key
                )));
            }
            if let Some(k) = trust.state_key(&state)
                && *k != g.state_key
            {
                return Err(bad(&format!(
                    "it is signed by {}, not by {state}'s State key",
                    g.state_key
                )));
            }
            if !g.scope.clone().unwrap_or(Scope::ALL).is_all() {
                return Err(Denied::OutOfScope {
                    scope: g.scope.map(|s| s.to_string()).unwrap_or_default(),
                    touched: "pool membership (needs scope all)".into(),
                });
            }
            if let Some(expires) = g.expires
                && when > expires
            {
                return Err(Denied::Expired { state, expires });
            }
            Ok(())
        }
        _ => Err(forbidden("a member's entry is one signed delegation")),
    }
}

/// Decides whether `author` may make `change` to `doc_id`, reading the document as of the
/// change's dependencies.
pub fn authorize(
    trust: &Trust,
    doc_id: &DocId,
    doc: &Automerge,
    change: &Change,
    author: &NodeId,
) -> Result<(), Denied> {
    let all = touches(doc, change)?;
    let heads = change.deps();
    let when = Date::from_unix_seconds(change.timestamp());
    for t in &all {
        if t.path.len() < 2 {
            return Err(Denied::Forbidden {
                path: t.path.join("/"),
                why: "the top of a document is fixed by its genesis".into(),
            });
        }
    }
    match doc_id {
        DocId::State(state) | DocId::Draft(state) => {
            let mut delegation: Option<Grant> = None;
            for t in &all {
                if t.path[0] == "delegations" || t.path[0] == "revocations" {
                    check_grant_touch(t, *state, trust)?;
                    continue;
                }
                let grant = match &delegation {
                    Some(g) => g.clone(),
                    None => {
                        let g = delegation_at(trust, doc, heads, *state, author, when)?;
                        delegation = Some(g.clone());
                        g
                    }
                };
                let scope = grant.scope.clone().unwrap_or(Scope::ALL);
                if scope.is_all() {
                    continue;
                }
                match area_of(doc, heads, &all, t) {
                    Some(area) if scope.covers(area) => {}
                    Some(area) => {
                        return Err(Denied::OutOfScope {
                            scope: scope.to_string(),
                            touched: format!("{} ({})", t.path[..2].join("/"), area.slug()),
                        });
                    }
                    None => {
                        return Err(Denied::OutOfScope {
                            scope: scope.to_string(),
                            touched: format!("{} (needs scope all)", t.path[..2].join("/")),
                        });
                    }
                }
            }
            Ok(())
        }
        DocId::Pool(_) | DocId::Offers(_) | DocId::Secretariat(_) => {
            let owners = keys_at(doc, heads, &["owner"]);
            let me = author.to_string();
            let is_owner = owners.contains(&me);
            for t in &all {
                if t.path[0] == "owner" {
                    // The first writer claims the document; nobody claims it after that.
                    if !(owners.is_empty() && t.path[1] == me && !t.delete) {
                        return Err(Denied::NotOwner(doc_id.to_string()));
                    }
                    continue;
                }
                if t.path[0] == "members" && matches!(doc_id, DocId::Pool(_)) {
                    check_membership(trust, doc, heads, &all, t, author, when)?;
                    continue;
                }
                if t.path[0] == "sections" && matches!(doc_id, DocId::Pool(_)) {
                    let member = &t.path[1];
                    if !keys_at(doc, heads, &["members", member]).contains(&me) {
                        return Err(Denied::NotMember(member.clone()));
                    }
                    continue;
                }
                let claims_now = owners.is_empty()
                    && all
                        .iter()
                        .any(|o| o.path.len() == 2 && o.path[0] == "owner" && o.path[1] == me);
                if !is_owner && !claims_now {
                    return Err(Denied::NotOwner(doc_id.to_string()));
                }
            }
            Ok(())
        }
    }
}

/// The State keys named by grants in these changes' operations: how a node that pinned none of
/// a State's nodes learns its key from the first copy of its document (trust on first use).
pub fn grant_keys(changes: &[Change]) -> Vec<NodeId> {
    let mut keys = Vec::new();
    for c in changes {
        for op in c.decode().operations {
            if let OpType::Put(ScalarValue::Str(s)) = &op.action
                && s.starts_with('{')
                && let Ok(g) = SignedGrant::parse(s)
                && !keys.contains(&g.grant.state_key)
            {
                keys.push(g.grant.state_key);
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;
    use crate::doc::{genesis, put_value};
    use crate::rules::{Incoming, apply_checked};
    use crate::sign::{actor_id, sign_change};

    const STATE_SEED: u8 = 40;

    fn xaa() -> StateCode {
        "XAA".parse().unwrap()
    }

    fn trust() -> Trust {
        let mut t = Trust::default();
        t.state_keys
            .insert(xaa(), NodeKey::from_seed(&[STATE_SEED; 32]).node_id());
        t
    }

    fn grant(kind: GrantKind, node: &NodeKey, scope: Option<Scope>) -> String {
        let state_key = NodeKey::from_seed(&[STATE_SEED; 32]);
        SignedGrant::sign(
            &state_key,
            Grant {
                kind,
                state: xaa(),
                node: node.node_id(),
                scope,
                expires: None,
                issued: "2026-01-01".parse().unwrap(),
                state_key: state_key.node_id(),
            },
        )
        .to_text()
    }

    /// Makes one change on `doc` as `key` (suffix `suffix`), signed by `signer`.
    fn change(
        doc: &mut Automerge,
        key: &NodeKey,
        signer: &NodeKey,
        suffix: u8,
        f: impl FnOnce(&mut automerge::transaction::Transaction<'_>),
    ) -> Incoming {
        let id: DocId = DocId::State(xaa());
        doc.set_actor(actor_id(&key.node_id(), &[suffix; 8]));
        let mut tx = doc.transaction();
        f(&mut tx);
        let hash = tx.commit().0.unwrap();
        let change = doc.get_change_by_hash(&hash).unwrap();
        Incoming {
            change,
            signature: Some(sign_change(signer, &id, &hash)),
        }
    }

    fn put(
        tx: &mut automerge::transaction::Transaction<'_>,
        container: &str,
        key: &str,
        value: &str,
    ) {
        put_value(tx, container, key, &serde_json::Value::String(value.into())).unwrap();
    }

    fn target_record(tx: &mut automerge::transaction::Transaction<'_>, key: &str, area: &str) {
        let mut t = crate::model::tests::xaa_t1();
        t.id = key.split('/').next().unwrap().into();
        t.area = area.parse().unwrap();
        crate::doc::put_record(tx, "targets", key, &t).unwrap();
    }

    fn heads_and_accepted(doc: &Automerge) -> (Vec<ChangeHash>, usize) {
        (doc.get_heads(), doc.get_changes(&[]).len())
    }

    #[test]
    fn a_revocation_binds_what_depends_on_it_in_any_arrival_order() {
        let first = NodeKey::from_seed(&[1; 32]);
        let ministry = NodeKey::from_seed(&[2; 32]);
        let mut base = genesis(&DocId::State(xaa()));
        let d1 = change(&mut base, &first, &first, 1, |tx| {
            put(
                tx,
                "delegations",
                &first.node_id().to_string(),
                &grant(GrantKind::Delegation, &first, Some(Scope::ALL)),
            );
            put(
                tx,
                "delegations",
                &ministry.node_id().to_string(),
                &grant(GrantKind::Delegation, &ministry, Some(Scope::ALL)),
            );
        });
        // The State revokes the ministry; concurrently the ministry writes T1.
        let mut state_branch = base.clone();
        let revocation = change(&mut state_branch, &first, &first, 1, |tx| {
            put(
                tx,
                "revocations",
                &ministry.node_id().to_string(),
                &grant(GrantKind::Revocation, &ministry, None),
            );
        });
        let mut ministry_branch = base.clone();
        let concurrent = change(&mut ministry_branch, &ministry, &ministry, 2, |tx| {
            target_record(tx, "T1/1", "marking")
        });
        // Later the ministry learns of the revocation and writes T2: refused.
        ministry_branch
            .apply_changes([revocation.change.clone()])
            .unwrap();
        let after = change(&mut ministry_branch, &ministry, &ministry, 2, |tx| {
            target_record(tx, "T2/1", "marking")
        });

        let batch = [d1, revocation, concurrent.clone(), after.clone()];
        let mut verdicts = Vec::new();
        for order in [[0, 1, 2, 3], [0, 2, 3, 1], [3, 2, 1, 0]] {
            let mut doc = genesis(&DocId::State(xaa()));
            let mut accepted = HashSet::new();
            let mut rejected = HashSet::new();
            let mut waiting: Vec<Incoming> = Vec::new();
            for i in order {
                waiting.push(batch[i].clone());
                let out = apply_checked(
                    &trust(),
                    &DocId::State(xaa()),
                    &mut doc,
                    std::mem::take(&mut waiting),
                    &rejected,
                );
                accepted.extend(out.accepted.iter().map(|(h, _)| *h));
                for (h, r) in &out.rejected {
                    assert!(
                        matches!(
                            r,
                            crate::rules::Rejection::Denied {
                                denied: Denied::Revoked(_),
                                ..
                            }
                        ),
                        "{r}"
                    );
                    rejected.insert(*h);
                }
                waiting = batch
                    .iter()
                    .filter(|b| out.waiting.contains(&b.change.hash()))
                    .cloned()
                    .collect();
            }
            assert!(
                accepted.contains(&concurrent.change.hash()),
                "a concurrent change was refused"
            );
            assert!(
                rejected.contains(&after.change.hash()),
                "a change after the revocation was applied"
            );
            verdicts.push((heads_and_accepted(&doc), accepted, rejected));
        }
        assert!(verdicts.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn a_scoped_delegation_writes_only_its_areas() {
        let first = NodeKey::from_seed(&[1; 32]);
        let marking = NodeKey::from_seed(&[3; 32]);
        let mut doc = genesis(&DocId::State(xaa()));
        let d = change(&mut doc, &first, &first, 1, |tx| {
            put(
                tx,
                "delegations",
                &marking.node_id().to_string(),
                &grant(
                    GrantKind::Delegation,
                    &marking,
                    Some(Scope::Areas(vec![Area::Marking])),
                ),
            );
        });
        let ok = change(&mut doc, &marking, &marking, 3, |tx| {
            target_record(tx, "T1/1", "marking")
        });
        let mut base = genesis(&DocId::State(xaa()));
        let out = apply_checked(
            &trust(),
            &DocId::State(xaa()),
            &mut base,
            vec![d, ok],
            &HashSet::new(),
        );
        assert_eq!(out.accepted.len(), 2, "{:?}", out.rejected);
        let mut writer = base.clone();
        let bad = change(&mut writer, &marking, &marking, 3, |tx| {
            target_record(tx, "T9/1", "stockpile")
        });
        let share = change(&mut writer, &marking, &marking, 3, |tx| {
            put_value(tx, "readers", "*", &serde_json::json!(true)).unwrap();
        });
        let out = apply_checked(
            &trust(),
            &DocId::State(xaa()),
            &mut base,
            vec![bad],
            &HashSet::new(),
        );
        match &out.rejected[0].1 {
            crate::rules::Rejection::Denied {
                denied: Denied::OutOfScope { touched, .. },
                ..
            } => {
                assert!(touched.contains("stockpile"), "{touched}")
            }
            other => panic!("{other}"),
        }
        let out = apply_checked(
            &trust(),
            &DocId::State(xaa()),
            &mut base,
            vec![share],
            &HashSet::new(),
        );
        assert_eq!(out.accepted.len(), 0);
    }

    #[test]
    fn a_grant_signed_by_another_key_is_refused() {
        let impostor_state = NodeKey::from_seed(&[99; 32]);
        let node = NodeKey::from_seed(&[5; 32]);
        let text = SignedGrant::sign(
            &impostor_state,
            Grant {
                kind: GrantKind::Delegation,
                state: xaa(),
                node: node.node_id(),
                scope: Some(Scope::ALL),
                expires: None,
                issued: "2026-01-01".parse().unwrap(),
                state_key: impostor_state.node_id(),
            },
        )
        .to_text();
        let mut doc = genesis(&DocId::State(xaa()));
        let c = change(&mut doc, &node, &node, 5, |tx| {
            put(tx, "delegations", &node.node_id().to_string(), &text)
        });
        let mut base = genesis(&DocId::State(xaa()));
        let out = apply_checked(
            &trust(),
            &DocId::State(xaa()),
            &mut base,
            vec![c],
            &HashSet::new(),
        );
        assert!(matches!(
            &out.rejected[0].1,
            crate::rules::Rejection::Denied {
                denied: Denied::BadGrant { .. },
                ..
            }
        ));
    }

    /// A pool document and the gate, one change at a time.
    struct PoolFixture {
        id: DocId,
        doc: Automerge,
        trust: Trust,
    }

    impl PoolFixture {
        fn new() -> PoolFixture {
            let id: DocId = "pool/xanadu".parse().unwrap();
            PoolFixture {
                doc: genesis(&id),
                id,
                trust: Trust::default(),
            }
        }

        /// Makes a change as `key` and passes it through the gate: the reason if refused.
        fn step(
            &mut self,
            key: &NodeKey,
            f: impl FnOnce(&mut automerge::transaction::Transaction<'_>),
        ) -> Result<(), String> {
            let mut scratch = self.doc.clone();
            scratch.set_actor(actor_id(&key.node_id(), &[7; 8]));
            let mut tx = scratch.transaction();
            f(&mut tx);
            let hash = tx.commit().0.unwrap();
            let inc = Incoming {
                change: scratch.get_change_by_hash(&hash).unwrap(),
                signature: Some(sign_change(key, &self.id, &hash)),
            };
            let out = apply_checked(
                &self.trust,
                &self.id,
                &mut self.doc,
                vec![inc],
                &HashSet::new(),
            );
            match out.rejected.into_iter().next() {
                Some((_, r)) => Err(r.to_string()),
                None => Ok(()),
            }
        }
    }

    fn delegation(state: &str, state_key: &NodeKey, node: &NodeKey, scope: Scope) -> String {
        SignedGrant::sign(
            state_key,
            Grant {
                kind: GrantKind::Delegation,
                state: state.parse().unwrap(),
                node: node.node_id(),
                scope: Some(scope),
                expires: None,
                issued: "2026-01-01".parse().unwrap(),
                state_key: state_key.node_id(),
            },
        )
        .to_text()
    }

    fn invite(state: &str, state_key: &NodeKey) -> serde_json::Value {
        serde_json::json!({"state": state, "state_key": state_key.node_id().to_string(), "invited": "2026-01-01"})
    }

    fn join(
        tx: &mut automerge::transaction::Transaction<'_>,
        state: &str,
        node: &NodeKey,
        proof: &str,
    ) {
        crate::doc::put_at(
            tx,
            "members",
            &[state, &node.node_id().to_string()],
            &serde_json::json!(proof),
        )
        .unwrap();
    }

    #[test]
    fn a_pool_is_joined_by_invitation_and_consent_and_each_member_writes_only_its_section() {
        let coordinator = NodeKey::from_seed(&[10; 32]);
        let (xaa_key, xaa_node) = (NodeKey::from_seed(&[11; 32]), NodeKey::from_seed(&[12; 32]));
        let (xab_key, xab_node) = (NodeKey::from_seed(&[13; 32]), NodeKey::from_seed(&[14; 32]));
        let (xac_key, xac_node) = (NodeKey::from_seed(&[15; 32]), NodeKey::from_seed(&[16; 32]));
        let observer = NodeKey::from_seed(&[17; 32]);
        let mut p = PoolFixture::new();
        p.trust
            .state_keys
            .insert("XAB".parse().unwrap(), xab_key.node_id());
        let me = coordinator.node_id().to_string();
        p.step(&coordinator, |tx| {
            put_value(tx, "owner", &me, &serde_json::json!(true)).unwrap();
            put_value(tx, "invites", "XAA", &invite("XAA", &xaa_key)).unwrap();
            put_value(tx, "invites", "XAB", &invite("XAB", &xab_key)).unwrap();
            put_value(
                tx,
                "observers",
                &observer.node_id().to_string(),
                &serde_json::json!({"name": "UNODA", "added": "2026-01-01"}),
            )
            .unwrap();
        })
        .unwrap();

        // The coordinator cannot enrol a State: only the State's node joins, for itself.
        let xaa_proof = delegation("XAA", &xaa_key, &xaa_node, Scope::ALL);
        let forced = p.step(&coordinator, |tx| join(tx, "XAA", &xaa_node, &xaa_proof));
        assert!(
            forced
                .unwrap_err()
                .contains("joins a pool only by adding itself")
        );
        p.step(&xaa_node, |tx| join(tx, "XAA", &xaa_node, &xaa_proof))
            .unwrap();

        // XAC was not invited.
        let xac_proof = delegation("XAC", &xac_key, &xac_node, Scope::ALL);
        let uninvited = p.step(&xac_node, |tx| join(tx, "XAC", &xac_node, &xac_proof));
        assert!(uninvited.unwrap_err().contains("XAC was not invited"));
        // A node of XAC cannot join as XAB either, with a delegation of its own making...
        let forged = delegation("XAB", &xac_key, &xac_node, Scope::ALL);
        let err = p
            .step(&xac_node, |tx| join(tx, "XAB", &xac_node, &forged))
            .unwrap_err();
        assert!(
            err.contains("not by the State key the invitation names"),
            "{err}"
        );
        // ...and XAB's node needs a delegation of scope all.
        let narrow = delegation(
            "XAB",
            &xab_key,
            &xab_node,
            Scope::Areas(vec![Area::Marking]),
        );
        let err = p
            .step(&xab_node, |tx| join(tx, "XAB", &xab_node, &narrow))
            .unwrap_err();
        assert!(err.contains("needs scope all"), "{err}");
        let xab_proof = delegation("XAB", &xab_key, &xab_node, Scope::ALL);
        p.step(&xab_node, |tx| join(tx, "XAB", &xab_node, &xab_proof))
            .unwrap();

        // Sections: each member its own.
        let contribution = serde_json::json!({"target": "T2", "contributed": "2026-01-02"});
        p.step(&xab_node, |tx| {
            crate::doc::put_at(tx, "sections", &["XAB", "T2"], &contribution).unwrap()
        })
        .unwrap();
        let err = p
            .step(&xab_node, |tx| {
                crate::doc::put_at(tx, "sections", &["XAA", "T1"], &contribution).unwrap()
            })
            .unwrap_err();
        assert!(err.contains("only XAA's members"), "{err}");
        // Members and observers do not write the charter or the pooled targets.
        for who in [&xab_node, &observer] {
            let err = p
                .step(who, |tx| {
                    put_value(tx, "pooled", "P1", &serde_json::json!({"aggregate": "sum"})).unwrap()
                })
                .unwrap_err();
            assert!(err.contains("only the owner"), "{err}");
        }
        // The observer writes no section either.
        let err = p
            .step(&observer, |tx| {
                crate::doc::put_at(tx, "sections", &["XAB", "T9"], &contribution).unwrap()
            })
            .unwrap_err();
        assert!(err.contains("only XAB's members"), "{err}");

        // XAB leaves, which only its node can do; then it writes no section.
        let err = p
            .step(&xaa_node, |tx| {
                crate::doc::delete_at(tx, "members", &["XAB"]).unwrap();
            })
            .unwrap_err();
        assert!(err.contains("only XAB's members"), "{err}");
        p.step(&xab_node, |tx| {
            crate::doc::delete_at(tx, "members", &["XAB"]).unwrap();
        })
        .unwrap();
        let err = p
            .step(&xab_node, |tx| {
                crate::doc::put_at(tx, "sections", &["XAB", "T3"], &contribution).unwrap()
            })
            .unwrap_err();
        assert!(err.contains("only XAB's members"), "{err}");
        let data = crate::pool::PoolData::from_json(&crate::doc::document_json(&p.doc, None));
        assert_eq!(
            data.members
                .keys()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            ["XAA"]
        );
        assert_eq!(data.invites.len(), 2);
        assert_eq!(data.observers.len(), 1);
    }

    /// One writer's step in the property test.
    #[derive(Clone, Debug)]
    enum Step {
        /// Writer `w` writes a target.
        Write(usize),
        /// Writer `w` takes everything writer `from` has.
        Merge(usize, usize),
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        proptest::collection::vec(
            prop_oneof![
                (0usize..4).prop_map(Step::Write),
                (0usize..4, 0usize..4).prop_map(|(a, b)| Step::Merge(a, b)),
            ],
            1..24,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Random honest and hostile changes, delivered in random orders and batches to three
        /// nodes, give identical accepted sets and heads, and no hostile change is accepted.
        #[test]
        fn every_node_reaches_the_same_verdicts(
            steps in steps(),
            orders in proptest::collection::vec(Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()), 3),
        ) {
            let first = NodeKey::from_seed(&[1; 32]);
            let honest = NodeKey::from_seed(&[2; 32]);
            let outsider = NodeKey::from_seed(&[3; 32]); // never delegated
            let forger = NodeKey::from_seed(&[4; 32]);   // delegated, but its signatures are forged
            let id = DocId::State(xaa());
            let mut base = genesis(&id);
            let d = change(&mut base, &first, &first, 1, |tx| {
                for k in [&first, &honest, &forger] {
                    put(tx, "delegations", &k.node_id().to_string(), &grant(GrantKind::Delegation, k, Some(Scope::ALL)));
                }
            });
            // Writers 0, 1 honest; 2 an outsider; 3 a delegated node whose changes carry
            // another key's signature.
            let writers = [(&first, &first), (&honest, &honest), (&outsider, &outsider), (&forger, &outsider)];
            let mut docs: Vec<Automerge> = (0..4).map(|_| base.clone()).collect();
            let mut all: Vec<Incoming> = vec![d];
            let mut hostile = HashSet::new();
            for (n, step) in steps.iter().enumerate() {
                match *step {
                    Step::Write(w) => {
                        let (key, signer) = writers[w];
                        let inc = change(&mut docs[w], key, signer, w as u8 + 1, |tx| {
                            target_record(tx, &format!("T{n}/1"), "marking")
                        });
                        if w >= 2 { hostile.insert(inc.change.hash()); }
                        all.push(inc);
                    }
                    Step::Merge(to, from) if to != from => {
                        let theirs = docs[from].get_changes(&[]);
                        docs[to].apply_changes(theirs).unwrap();
                    }
                    Step::Merge(..) => {}
                }
            }
            let mut results = Vec::new();
            for seed in orders {
                // A deterministic shuffle and batching from the seed.
                let mut order: Vec<usize> = (0..all.len()).collect();
                let mut s = seed | 1;
                for i in (1..order.len()).rev() {
                    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                    order.swap(i, (s % (i as u64 + 1)) as usize);
                }
                let mut doc = genesis(&id);
                let mut bad = HashSet::new();
                let mut accepted = HashSet::new();
                let mut pending: Vec<Incoming> = Vec::new();
                for chunk in order.chunks(((seed % 3) + 1) as usize) {
                    pending.extend(chunk.iter().map(|&i| all[i].clone()));
                    let out = apply_checked(&trust(), &id, &mut doc, std::mem::take(&mut pending), &bad);
                    accepted.extend(out.accepted.iter().map(|(h, _)| *h));
                    bad.extend(out.rejected.iter().map(|(h, _)| *h));
                    pending = all.iter().filter(|i| out.waiting.contains(&i.change.hash())).cloned().collect();
                }
                prop_assert!(pending.is_empty());
                prop_assert!(accepted.is_disjoint(&hostile), "a hostile change was accepted");
                let mut acc: Vec<_> = accepted.into_iter().collect();
                acc.sort();
                results.push((doc.get_heads(), acc));
            }
            prop_assert_eq!(&results[0], &results[1]);
            prop_assert_eq!(&results[1], &results[2]);
        }
    }
}
