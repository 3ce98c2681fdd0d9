//! The document schema: which documents exist, what each is bound to, their deterministic
//! genesis, and how records are read out of a document's view.
//!
//! Every document starts from a **genesis change** that any node can derive from the
//! document's id alone (fixed actor, time 0, fixed content): the `schema` and `doc` entries and
//! one map per container of its kind (`targets`, `progress`, ...). Every later change only puts
//! JSON texts under keys of those maps, or deletes such entries (see [`crate::change`]), so the
//! schema is flat: a container, a key, a value.
//!
//! Records are immutable: a key holds one record, written once (`targets/T1/2` is version 2 of
//! target T1). A few containers hold entries that can be replaced (a match decision) or removed
//! (a reader of the share list, a pool member); [`Policy`] says which.
//!
//! **Every document id is bound to a key** that no one else can claim: `state/XAA` and its draft
//! to the State key of XAA, `offers/XZZ` to the body key of XZZ (both as this node trusts them),
//! and `pool/<name>~<fingerprint>` to the node key whose fingerprint the id carries.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use automerge::{ActorId, ChangeHash};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::assist::MatchRecord;
use crate::id::{BodyCode, NodeId, Principal, StateCode};
use crate::model::{Need, Offer, Progress, Target, check_id};

/// The schema version written into every genesis.
pub const SCHEMA: u64 = 2;

/// Bytes of a pool id's fingerprint of its creator's key.
pub const POOL_FINGERPRINT: usize = 10;

/// The id of a pool: a name its creator chose, and a fingerprint of the creator's node key, so
/// that nobody else can create, claim or write as the coordinator of a pool by that id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolId {
    /// The name (`xanadu`).
    pub name: String,
    /// The first bytes of sha256 over the creator's key.
    pub fingerprint: [u8; POOL_FINGERPRINT],
}

/// The fingerprint a pool id carries for a creator key.
pub fn pool_fingerprint(creator: &NodeId) -> [u8; POOL_FINGERPRINT] {
    let digest = Sha256::digest([b"poa/pool/v1\0".as_slice(), &creator.0].concat());
    let mut fp = [0u8; POOL_FINGERPRINT];
    fp.copy_from_slice(&digest[..POOL_FINGERPRINT]);
    fp
}

impl PoolId {
    /// The id of a pool named `name` created by the node `creator`.
    pub fn new(name: &str, creator: &NodeId) -> PoolId {
        PoolId {
            name: name.to_string(),
            fingerprint: pool_fingerprint(creator),
        }
    }

    /// Whether `node` is the creator this id is bound to (the pool's coordinator).
    pub fn is_creator(&self, node: &NodeId) -> bool {
        pool_fingerprint(node) == self.fingerprint
    }

    fn fingerprint_text(&self) -> String {
        data_encoding::BASE32_NOPAD
            .encode(&self.fingerprint)
            .to_ascii_lowercase()
    }
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}~{}", self.name, self.fingerprint_text())
    }
}

impl fmt::Debug for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for PoolId {
    type Err = DocIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DocIdError(format!("pool/{s}"));
        let (name, fp) = s.split_once('~').ok_or_else(err)?;
        check_id(name).map_err(|_| err())?;
        let bytes = data_encoding::BASE32_NOPAD
            .decode(fp.to_ascii_uppercase().as_bytes())
            .map_err(|_| err())?;
        let fingerprint =
            <[u8; POOL_FINGERPRINT]>::try_from(bytes.as_slice()).map_err(|_| err())?;
        Ok(PoolId {
            name: name.to_string(),
            fingerprint,
        })
    }
}

/// The id of a document.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocId {
    /// `state/XAA`: what a State publishes.
    State(StateCode),
    /// `state/XAA/draft`: a State's private working copy. Never leaves its own nodes.
    Draft(StateCode),
    /// `offers/XZZ`: the offers and match responses of a body (a donor, an organisation).
    Offers(String),
    /// `offers/XZZ/draft`: a body's private working copy of its offers. Never leaves its own
    /// nodes.
    OffersDraft(String),
    /// `pool/<name>~<fingerprint>`: a sub-regional pool.
    Pool(PoolId),
}

/// Why a text is not a document id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a document id: use state/XAA, state/XAA/draft, offers/XZZ, offers/XZZ/draft or pool/<name>~<fingerprint> (see `poa-node doc list`)"
)]
pub struct DocIdError(pub String);

/// The kind of a document, which fixes its containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocKind {
    /// A State's published document.
    State,
    /// A State's draft: the same containers as its published document (so the same genesis),
    /// but its records are working copies that the State's nodes correct and delete until
    /// they are published.
    Draft,
    /// A body's offers.
    Offers,
    /// A body's draft offers: the containers of its offers, whose records the body's nodes
    /// correct and delete until they are published.
    OffersDraft,
    /// A pool.
    Pool,
}

/// How the entries of a container may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Written once, never replaced or deleted. Two different values written concurrently
    /// under one key are a dispute: neither is shown.
    Record,
    /// Replaced by a later put that names the value it replaces (a decision that changes).
    Slot,
    /// A draft's record: corrected in place by a put that names the value it replaces, and
    /// deleted by naming it; two different values written concurrently under one key are a
    /// dispute, as for a record: neither is shown.
    Working,
    /// Added and removed (a reader, a member).
    Set,
    /// Signed grants of the document's principal key, keyed by node and digest.
    Grant,
}

impl DocKind {
    /// The top-level maps every document of this kind has from its genesis on, in genesis
    /// order, with how their entries may change. Append only: the list is part of the genesis.
    pub fn container_policies(&self) -> &'static [(&'static str, Policy)] {
        use Policy::*;
        match self {
            DocKind::State => &[
                ("targets", Record),
                ("progress", Record),
                ("withdrawn", Record),
                ("needs", Record),
                ("delegations", Grant),
                ("revocations", Grant),
                ("pools", Record),
                ("matches", Slot),
                ("readers", Set),
                ("rotations", Grant),
                ("retracted", Record),
            ],
            DocKind::Draft => &[
                ("targets", Working),
                ("progress", Working),
                ("withdrawn", Working),
                ("needs", Working),
                ("delegations", Grant),
                ("revocations", Grant),
                ("pools", Record),
                ("matches", Slot),
                ("readers", Set),
                ("rotations", Grant),
                ("retracted", Working),
            ],
            DocKind::Offers => &[
                ("offers", Record),
                ("matches", Slot),
                ("readers", Set),
                ("delegations", Grant),
                ("revocations", Grant),
                ("rotations", Grant),
                ("retracted", Record),
            ],
            DocKind::OffersDraft => &[
                ("offers", Working),
                ("matches", Slot),
                ("readers", Set),
                ("delegations", Grant),
                ("revocations", Grant),
                ("rotations", Grant),
                ("retracted", Working),
            ],
            DocKind::Pool => &[
                ("charter", Record),
                ("members", Set),
                ("invites", Slot),
                ("observers", Set),
                ("sections", Set),
                ("pooled", Record),
                ("readers", Set),
            ],
        }
    }

    /// The names of the containers, in genesis order.
    pub fn containers(&self) -> Vec<&'static str> {
        self.container_policies().iter().map(|(n, _)| *n).collect()
    }

    /// The index of a container by name.
    pub fn container(&self, name: &str) -> Option<u8> {
        self.container_policies()
            .iter()
            .position(|(n, _)| *n == name)
            .and_then(|i| u8::try_from(i).ok())
    }

    /// The name and policy of a container by index.
    pub fn policy(&self, index: u8) -> Option<(&'static str, Policy)> {
        self.container_policies().get(usize::from(index)).copied()
    }
}

impl DocId {
    /// What kind of document this is.
    pub fn kind(&self) -> DocKind {
        match self {
            DocId::State(_) => DocKind::State,
            DocId::Draft(_) => DocKind::Draft,
            DocId::Offers(_) => DocKind::Offers,
            DocId::OffersDraft(_) => DocKind::OffersDraft,
            DocId::Pool(_) => DocKind::Pool,
        }
    }

    /// The State whose document this is, for `state/…` documents.
    pub fn state(&self) -> Option<StateCode> {
        match self {
            DocId::State(s) | DocId::Draft(s) => Some(*s),
            _ => None,
        }
    }

    /// Whether this is a private draft (a State's or a body's), which never leaves its
    /// principal's own nodes.
    pub fn is_draft(&self) -> bool {
        matches!(self, DocId::Draft(_) | DocId::OffersDraft(_))
    }

    /// The draft of this document (`state/XAA/draft`, `offers/XZZ/draft`), for a State's or a
    /// body's published document; a draft is its own draft.
    pub fn draft(&self) -> Option<DocId> {
        match self {
            DocId::State(s) | DocId::Draft(s) => Some(DocId::Draft(*s)),
            DocId::Offers(b) | DocId::OffersDraft(b) => Some(DocId::OffersDraft(b.clone())),
            DocId::Pool(_) => None,
        }
    }

    /// The principal whose trusted key this document is bound to; `None` for a pool, which is
    /// bound to the key its id fingerprints.
    pub fn principal(&self) -> Option<Principal> {
        match self {
            DocId::State(s) | DocId::Draft(s) => Some(Principal::State(*s)),
            DocId::Offers(b) | DocId::OffersDraft(b) => {
                b.parse::<BodyCode>().ok().map(Principal::Body)
            }
            DocId::Pool(_) => None,
        }
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocId::State(s) => write!(f, "state/{s}"),
            DocId::Draft(s) => write!(f, "state/{s}/draft"),
            DocId::Offers(p) => write!(f, "offers/{p}"),
            DocId::OffersDraft(p) => write!(f, "offers/{p}/draft"),
            DocId::Pool(p) => write!(f, "pool/{p}"),
        }
    }
}

impl fmt::Debug for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for DocId {
    type Err = DocIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DocIdError(s.to_string());
        if s.len() > 128 {
            return Err(err());
        }
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            ["state", code] => Ok(DocId::State(code.parse().map_err(|_| err())?)),
            ["state", code, "draft"] => Ok(DocId::Draft(code.parse().map_err(|_| err())?)),
            ["offers", p] => Ok(DocId::Offers(
                p.parse::<BodyCode>().map_err(|_| err())?.to_string(),
            )),
            ["offers", p, "draft"] => Ok(DocId::OffersDraft(
                p.parse::<BodyCode>().map_err(|_| err())?.to_string(),
            )),
            ["pool", p] => Ok(DocId::Pool(p.parse().map_err(|_| err())?)),
            _ => Err(err()),
        }
    }
}

impl Serialize for DocId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DocId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The actor of a document's genesis change: derived from the id, owned by nobody.
pub fn genesis_actor(doc: &DocId) -> ActorId {
    let digest = Sha256::digest(format!("poa/genesis/v1\0{doc}").as_bytes());
    ActorId::from(&digest[..16])
}

/// The genesis change of a document. Every node derives the same bytes.
pub fn genesis(doc: &DocId) -> Option<automerge::Change> {
    crate::change::genesis_change(doc, SCHEMA).ok()
}

/// The hash of a document's genesis change.
pub fn genesis_hash(doc: &DocId) -> ChangeHash {
    genesis(doc)
        .map(|c| c.hash())
        .unwrap_or(ChangeHash([0; 32]))
}

/// Errors writing records.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    /// A record could not be turned into JSON.
    #[error("record encoding: {0}")]
    Encode(#[from] serde_json::Error),
    /// A record key is already taken.
    #[error("{0} already exists")]
    Exists(String),
    /// A container this kind of document does not have.
    #[error("documents of this kind have no '{0}' map")]
    NoContainer(String),
    /// The change would break a bound (too many operations, too large).
    #[error("the change is too large: {0}")]
    TooLarge(String),
}

/// The JSON text a record is stored as.
pub fn record_text<R: Serialize>(record: &R) -> Result<String, DocError> {
    Ok(serde_json::to_string(record)?)
}

/// The key of the share list that stands for everyone.
pub const PUBLIC: &str = "*";

/// The NodeIds (text) and `pool/...` entries of a document's share list, from its view; `*`
/// stands for everyone.
pub fn readers(view: &Json) -> std::collections::BTreeSet<String> {
    view.get("readers")
        .and_then(Json::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Reads an Automerge document exported by a node (`poa-node doc export`) the plain way: each
/// container's entries with their JSON texts parsed, as Automerge merges them. It applies none
/// of the gate's rules (void changes, disputes), so it equals a node's view only for documents
/// where every change stands; the node's view is the authority.
pub fn automerge_view(am: &automerge::Automerge) -> Json {
    use automerge::ReadDoc;
    let mut root = serde_json::Map::new();
    let doc: Option<DocId> = am
        .get(automerge::ROOT, "doc")
        .ok()
        .flatten()
        .and_then(|(v, _)| v.as_str().and_then(|s| s.parse().ok()));
    let Some(doc) = doc else {
        return Json::Null;
    };
    root.insert("doc".into(), Json::String(doc.to_string()));
    root.insert("schema".into(), Json::from(SCHEMA));
    for name in doc.kind().containers() {
        let mut map = serde_json::Map::new();
        if let Ok(Some((_, obj))) = am.get(automerge::ROOT, name) {
            for key in am.keys(&obj) {
                if let Ok(Some((v, _))) = am.get(&obj, key.as_str())
                    && let Some(text) = v.as_str()
                    && let Some(value) = crate::change::parse_value(text)
                {
                    map.insert(key, value);
                }
            }
        }
        root.insert(name.into(), Json::Object(map));
    }
    Json::Object(root)
}

/// A record that is in the document but does not parse as this version of the schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// `targets/T1/1`.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// The State document, read into typed records. Records that do not parse are listed, not fatal:
/// a node must keep working when a newer peer writes fields it does not know.
#[derive(Clone, Debug, Default)]
pub struct StateData {
    /// Target versions by (id, version).
    pub targets: BTreeMap<(String, u32), Target>,
    /// Progress reports by id.
    pub progress: BTreeMap<String, Progress>,
    /// Withdrawn targets: id → the date of withdrawal.
    pub withdrawn: BTreeMap<String, Json>,
    /// Assistance requests by id.
    pub needs: BTreeMap<String, Need>,
    /// NodeIds (text) allowed to read the published document; `*` means everyone, and
    /// `pool/<id>` the audience of a pool the State is a member of.
    pub readers: BTreeMap<String, Json>,
    /// The State's decisions on matches of its requests with offers, by match key.
    pub matches: BTreeMap<String, MatchRecord>,
    /// Withdrawn records other than targets (`needs/R1`, `progress/T1/2026-06-30` → the
    /// withdrawal, with its date and reason). A withdrawn record is left out of `needs` and
    /// `progress`, so every reader leaves it out alike.
    pub retracted: BTreeMap<String, Json>,
    /// The progress reports withdrawn, by id (what `retracted` took out of `progress`).
    pub withdrawn_progress: BTreeMap<String, Progress>,
    /// The requests withdrawn, by id.
    pub withdrawn_needs: BTreeMap<String, Need>,
    /// Records that did not parse.
    pub unreadable: Vec<Unreadable>,
}

fn records<T: DeserializeOwned>(
    root: &Json,
    name: &str,
    unreadable: &mut Vec<Unreadable>,
) -> Vec<(String, T)> {
    let Some(Json::Object(map)) = root.get(name) else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(k, v)| match serde_json::from_value(v.clone()) {
            Ok(r) => Some((k.clone(), r)),
            Err(e) => {
                unreadable.push(Unreadable {
                    path: format!("{name}/{k}"),
                    reason: e.to_string(),
                });
                None
            }
        })
        .collect()
}

fn plain(root: &Json, name: &str) -> BTreeMap<String, Json> {
    match root.get(name) {
        Some(Json::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => BTreeMap::new(),
    }
}

impl StateData {
    /// Reads a State document from its JSON form.
    pub fn from_json(root: &Json) -> StateData {
        let mut data = StateData::default();
        for (key, t) in records::<Target>(root, "targets", &mut data.unreadable) {
            if target_key(&t.id, t.version) == key {
                data.targets.insert((t.id.clone(), t.version), t);
            } else {
                data.unreadable.push(Unreadable {
                    path: format!("targets/{key}"),
                    reason: "key does not match the target's id and version".into(),
                });
            }
        }
        data.progress = records(root, "progress", &mut data.unreadable)
            .into_iter()
            .collect();
        data.needs = records(root, "needs", &mut data.unreadable)
            .into_iter()
            .collect();
        data.matches = records(root, "matches", &mut data.unreadable)
            .into_iter()
            .collect();
        data.withdrawn = plain(root, "withdrawn");
        // A request or progress report the State withdrew (`retracted/needs/R1`) no longer
        // counts: every reader (the unmet list, matching, the stocktake) leaves it out alike.
        let retracted = plain(root, "retracted");
        let (needs, gone) = std::mem::take(&mut data.needs)
            .into_iter()
            .partition(|(id, _)| !retracted.contains_key(&format!("needs/{id}")));
        (data.needs, data.withdrawn_needs) = (needs, gone);
        let (progress, gone) = std::mem::take(&mut data.progress)
            .into_iter()
            .partition(|(id, _)| !retracted.contains_key(&format!("progress/{id}")));
        (data.progress, data.withdrawn_progress) = (progress, gone);
        data.retracted = retracted;
        data.readers = plain(root, "readers");
        data
    }

    /// The latest version of a target.
    pub fn latest(&self, id: &str) -> Option<&Target> {
        self.versions(id).last().copied()
    }

    /// Every version of a target, oldest first.
    pub fn versions(&self, id: &str) -> Vec<&Target> {
        self.targets
            .range((id.to_string(), 0)..=(id.to_string(), u32::MAX))
            .map(|(_, t)| t)
            .collect()
    }

    /// Target ids, sorted.
    pub fn target_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.targets.keys().map(|(id, _)| id.clone()).collect();
        ids.dedup();
        ids
    }

    /// Progress reports on a target, oldest first.
    pub fn progress_of(&self, id: &str) -> Vec<&Progress> {
        let mut v: Vec<&Progress> = self.progress.values().filter(|p| p.target == id).collect();
        v.sort_by(|a, b| a.as_of.cmp(&b.as_of).then(a.id.cmp(&b.id)));
        v
    }
}

/// The record key of a target version.
pub fn target_key(id: &str, version: u32) -> String {
    format!("{id}/{version}")
}

/// Offers of a provider's document, from its view.
pub fn read_offers(view: &Json) -> (BTreeMap<String, Offer>, Vec<Unreadable>) {
    let data = OffersData::from_json(view);
    (data.offers, data.unreadable)
}

/// A provider's document, read into typed records.
#[derive(Clone, Debug, Default)]
pub struct OffersData {
    /// Offers by id (those the provider withdrew are in `withdrawn`, not here).
    pub offers: BTreeMap<String, Offer>,
    /// Offers the provider withdrew (`retracted/offers/O1`), by id: kept on record, offered
    /// no longer.
    pub withdrawn: BTreeMap<String, Offer>,
    /// The withdrawals, with their date and reason, by `offers/ID`.
    pub retracted: BTreeMap<String, Json>,
    /// The provider's decisions on matches, by match key.
    pub matches: BTreeMap<String, MatchRecord>,
    /// The provider's nodes: those its body key delegated, and did not revoke.
    pub owner: Vec<String>,
    /// Records that did not parse.
    pub unreadable: Vec<Unreadable>,
}

impl OffersData {
    /// Reads an offers document from its view.
    pub fn from_json(root: &Json) -> OffersData {
        let mut data = OffersData::default();
        let retracted = plain(root, "retracted");
        (data.offers, data.withdrawn) = records(root, "offers", &mut data.unreadable)
            .into_iter()
            .partition(|(id, _)| !retracted.contains_key(&format!("offers/{id}")));
        data.retracted = retracted;
        data.matches = records(root, "matches", &mut data.unreadable)
            .into_iter()
            .collect();
        data.owner = delegated_nodes(root);
        data
    }
}

/// The nodes a document's view shows delegated (and not revoked): its writers.
pub fn delegated_nodes(root: &Json) -> Vec<String> {
    let node_of = |k: &String| k.split('/').next().unwrap_or_default().to_string();
    let revoked: std::collections::BTreeSet<String> =
        plain(root, "revocations").keys().map(node_of).collect();
    let mut out: Vec<String> = plain(root, "delegations")
        .keys()
        .map(node_of)
        .filter(|n| !revoked.contains(n))
        .collect();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(seed: u8) -> NodeId {
        crate::sign::NodeKey::from_seed(&[seed; 32]).node_id()
    }

    #[test]
    fn doc_ids_round_trip() {
        let pool = PoolId::new("xanadu", &node(1));
        let pool_text = format!("pool/{pool}");
        for s in [
            "state/XAA",
            "state/KEN/draft",
            "offers/XZZ",
            "offers/XZZ/draft",
            pool_text.as_str(),
        ] {
            assert_eq!(s.parse::<DocId>().unwrap().to_string(), s);
        }
        for bad in [
            "state/QQQ",
            "state",
            "pool/",
            "pool/xanadu",
            "pool/a b~aaaa",
            "pool/xanadu~notbase32!",
            "state/XAA/other",
            "secretariat/calendar",
            "offers/a b",
            "offers/XZZ/other",
            "",
        ] {
            assert!(bad.parse::<DocId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pool_id_is_bound_to_its_creator() {
        let id = PoolId::new("xanadu", &node(1));
        assert!(id.is_creator(&node(1)));
        assert!(!id.is_creator(&node(2)));
        assert_ne!(id, PoolId::new("xanadu", &node(2)));
        assert_eq!(id.to_string().len(), "xanadu~".len() + 16);
    }

    #[test]
    fn genesis_is_deterministic_and_per_document() {
        let a: DocId = "state/XAA".parse().unwrap();
        let b: DocId = "state/XAB".parse().unwrap();
        assert_eq!(
            genesis(&a).unwrap().raw_bytes(),
            genesis(&a).unwrap().raw_bytes()
        );
        assert_eq!(genesis_hash(&a), genesis_hash(&a));
        assert_ne!(genesis_hash(&a), genesis_hash(&b));
        let mut am = automerge::Automerge::new();
        am.apply_changes([genesis(&a).unwrap()]).unwrap();
        use automerge::ReadDoc;
        let (v, _) = am.get(automerge::ROOT, "doc").unwrap().unwrap();
        assert_eq!(v.as_str(), Some("state/XAA"));
        assert_eq!(DocKind::State.containers(), DocKind::Draft.containers());
        assert_eq!(
            DocKind::Offers.containers(),
            DocKind::OffersDraft.containers()
        );
        for (i, name) in DocKind::State.containers().iter().enumerate() {
            let (_, id) = am.get(automerge::ROOT, *name).unwrap().unwrap();
            assert_eq!(
                id.to_string(),
                format!(
                    "{}@{}",
                    crate::change::container_counter(i as u8),
                    genesis_actor(&a)
                ),
            );
        }
    }
}
