//! The document schema: which documents exist, their deterministic genesis, and how records are
//! written into and read out of Automerge.
//!
//! Every document starts from a **genesis change** that any node can recompute from the
//! document's id alone (fixed actor, time 0, fixed content). All nodes therefore share the same
//! top-level containers (`targets`, `progress`, ...), and two nodes that write into a document
//! before they ever synced still merge cleanly, instead of each creating its own `targets` map
//! and one silently hiding the other.
//!
//! Records are immutable maps of scalar fields keyed by a stable record key (`T1/2` for version 2
//! of target T1). Nothing is edited in place, so concurrent writers never conflict on a field.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::assist::MatchRecord;
use crate::id::StateCode;
use crate::model::{Need, Offer, Progress, Target, check_id};

/// The schema version written into every genesis.
pub const SCHEMA: u64 = 1;

/// The id of a document.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocId {
    /// `state/XAA`: what a State publishes.
    State(StateCode),
    /// `state/XAA/draft`: a State's private working copy. Never leaves its own nodes.
    Draft(StateCode),
    /// `offers/XZZ`: the offers and match responses of a provider.
    Offers(String),
    /// `pool/<id>`: a sub-regional pool.
    Pool(String),
    /// `secretariat/<name>`: calendars and stocktake records.
    Secretariat(String),
}

/// Why a text is not a document id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a document id: use state/XAA, state/XAA/draft, offers/XZZ, pool/<id> or secretariat/<name>"
)]
pub struct DocIdError(pub String);

/// The kind of a document, which fixes its containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocKind {
    /// A State's published or draft document.
    State,
    /// A provider's offers.
    Offers,
    /// A pool.
    Pool,
    /// A Secretariat document.
    Secretariat,
}

impl DocKind {
    /// The top-level maps every document of this kind has from its genesis on.
    pub fn containers(&self) -> &'static [&'static str] {
        match self {
            DocKind::State => &[
                "targets",
                "progress",
                "withdrawn",
                "needs",
                "delegations",
                "revocations",
                "pools",
                "matches",
                "readers",
            ],
            DocKind::Offers => &["owner", "offers", "matches", "readers"],
            DocKind::Pool => &[
                "owner",
                "charter",
                "members",
                "invites",
                "observers",
                "sections",
                "pooled",
                "readers",
            ],
            DocKind::Secretariat => &["owner", "calendar", "records", "readers"],
        }
    }
}

impl DocId {
    /// What kind of document this is.
    pub fn kind(&self) -> DocKind {
        match self {
            DocId::State(_) | DocId::Draft(_) => DocKind::State,
            DocId::Offers(_) => DocKind::Offers,
            DocId::Pool(_) => DocKind::Pool,
            DocId::Secretariat(_) => DocKind::Secretariat,
        }
    }

    /// The State whose document this is, for `state/…` documents.
    pub fn state(&self) -> Option<StateCode> {
        match self {
            DocId::State(s) | DocId::Draft(s) => Some(*s),
            _ => None,
        }
    }

    /// Whether this is a private draft, which never leaves its State's own nodes.
    pub fn is_draft(&self) -> bool {
        matches!(self, DocId::Draft(_))
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocId::State(s) => write!(f, "state/{s}"),
            DocId::Draft(s) => write!(f, "state/{s}/draft"),
            DocId::Offers(p) => write!(f, "offers/{p}"),
            DocId::Pool(p) => write!(f, "pool/{p}"),
            DocId::Secretariat(n) => write!(f, "secretariat/{n}"),
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
        let parts: Vec<&str> = s.split('/').collect();
        let name_ok = |n: &str| check_id(n).is_ok();
        match parts.as_slice() {
            ["state", code] => Ok(DocId::State(code.parse().map_err(|_| err())?)),
            ["state", code, "draft"] => Ok(DocId::Draft(code.parse().map_err(|_| err())?)),
            ["offers", p] if name_ok(p) => Ok(DocId::Offers(p.to_ascii_uppercase())),
            ["pool", p] if name_ok(p) => Ok(DocId::Pool(p.to_string())),
            ["secretariat", n] if name_ok(n) => Ok(DocId::Secretariat(n.to_string())),
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

/// The document as it is before anyone writes to it. Every node computes the same bytes.
pub fn genesis(doc: &DocId) -> Automerge {
    let mut am = Automerge::new().with_actor(genesis_actor(doc));
    let mut tx = am.transaction();
    // Writing to a fresh in-memory document cannot fail; errors here would be a bug in our
    // schema, so they surface as an empty genesis that every node would still agree on.
    let _ = tx.put(ROOT, "schema", SCHEMA);
    let _ = tx.put(ROOT, "doc", doc.to_string());
    for c in doc.kind().containers() {
        let _ = tx.put_object(ROOT, *c, ObjType::Map);
    }
    tx.commit_with(
        CommitOptions::default()
            .with_time(0)
            .with_message("genesis"),
    );
    am
}

/// The hash of a document's genesis change.
pub fn genesis_hash(doc: &DocId) -> ChangeHash {
    let am = genesis(doc);
    am.get_heads()
        .first()
        .copied()
        .unwrap_or(ChangeHash([0; 32]))
}

/// Errors reading or writing records.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    /// The document lacks a container its genesis should have made.
    #[error("document has no '{0}' map: it was not created from a poa genesis")]
    NoContainer(String),
    /// Automerge refused an operation.
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    /// A record could not be turned into fields.
    #[error("record encoding: {0}")]
    Encode(#[from] serde_json::Error),
    /// A record key is already taken.
    #[error("{0} already exists")]
    Exists(String),
}

fn container<R: ReadDoc>(doc: &R, name: &str) -> Result<ObjId, DocError> {
    match doc.get(ROOT, name)? {
        Some((automerge::Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Err(DocError::NoContainer(name.to_string())),
    }
}

fn put_json<T: Transactable>(
    tx: &mut T,
    obj: &ObjId,
    key: automerge::Prop,
    value: &Json,
    insert: bool,
) -> Result<(), DocError> {
    let scalar = |v: ScalarValue, tx: &mut T| -> Result<(), DocError> {
        match &key {
            automerge::Prop::Seq(i) if insert => tx.insert(obj, *i, v)?,
            k => tx.put(obj, k.clone(), v)?,
        }
        Ok(())
    };
    let object = |t: ObjType, tx: &mut T| -> Result<ObjId, DocError> {
        Ok(match &key {
            automerge::Prop::Seq(i) if insert => tx.insert_object(obj, *i, t)?,
            k => tx.put_object(obj, k.clone(), t)?,
        })
    };
    match value {
        Json::Null => scalar(ScalarValue::Null, tx),
        Json::Bool(b) => scalar(ScalarValue::Boolean(*b), tx),
        Json::Number(n) => {
            let v = if let Some(i) = n.as_i64() {
                ScalarValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                ScalarValue::Uint(u)
            } else {
                ScalarValue::F64(n.as_f64().unwrap_or(f64::NAN))
            };
            scalar(v, tx)
        }
        Json::String(s) => scalar(ScalarValue::Str(s.as_str().into()), tx),
        Json::Array(items) => {
            let list = object(ObjType::List, tx)?;
            for (i, item) in items.iter().enumerate() {
                put_json(tx, &list, automerge::Prop::Seq(i), item, true)?;
            }
            Ok(())
        }
        Json::Object(fields) => {
            let map = object(ObjType::Map, tx)?;
            for (k, v) in fields {
                put_json(tx, &map, automerge::Prop::Map(k.clone()), v, false)?;
            }
            Ok(())
        }
    }
}

/// Converts a hydrated Automerge value to JSON. Maps come out with sorted keys, so equal
/// documents give byte-identical JSON.
pub fn to_json(value: &automerge::hydrate::Value) -> Json {
    use automerge::hydrate::Value as H;
    match value {
        H::Scalar(s) => match s {
            ScalarValue::Str(s) => Json::String(s.to_string()),
            ScalarValue::Int(i) => Json::from(*i),
            ScalarValue::Uint(u) => Json::from(*u),
            ScalarValue::F64(f) => serde_json::Number::from_f64(*f)
                .map(Json::Number)
                .unwrap_or(Json::Null),
            ScalarValue::Boolean(b) => Json::Bool(*b),
            ScalarValue::Counter(c) => Json::from(i64::from(c)),
            ScalarValue::Timestamp(t) => Json::from(*t),
            ScalarValue::Bytes(b) => Json::String(data_encoding::HEXLOWER.encode(b)),
            ScalarValue::Unknown { .. } | ScalarValue::Null => Json::Null,
        },
        H::Map(m) => Json::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), to_json(&v.value)))
                .collect(),
        ),
        H::List(l) => Json::Array(l.iter().map(|v| to_json(&v.value)).collect()),
        H::Text(t) => Json::String(t.to_string()),
    }
}

/// Writes a record into `container` under `key`. Fails if the key is taken: records are never
/// overwritten.
pub fn put_record<T: Transactable, R: Serialize>(
    tx: &mut T,
    container_name: &str,
    key: &str,
    record: &R,
) -> Result<(), DocError> {
    let obj = container(tx, container_name)?;
    if tx.get(&obj, key)?.is_some() {
        return Err(DocError::Exists(format!("{container_name}/{key}")));
    }
    let json = serde_json::to_value(record)?;
    put_json(
        tx,
        &obj,
        automerge::Prop::Map(key.to_string()),
        &json,
        false,
    )
}

/// Sets a plain value (a flag, a date) in `container` under `key`, replacing what was there.
pub fn put_value<T: Transactable>(
    tx: &mut T,
    container_name: &str,
    key: &str,
    value: &Json,
) -> Result<(), DocError> {
    let obj = container(tx, container_name)?;
    put_json(
        tx,
        &obj,
        automerge::Prop::Map(key.to_string()),
        value,
        false,
    )
}

/// Sets `value` at `path` below a container, making the maps on the way that are not there yet
/// (and reusing those that are, so concurrent writers under one map do not hide each other).
pub fn put_at<T: Transactable>(
    tx: &mut T,
    container_name: &str,
    path: &[&str],
    value: &Json,
) -> Result<(), DocError> {
    let mut obj = container(tx, container_name)?;
    let Some((last, parents)) = path.split_last() else {
        return Err(DocError::Exists(container_name.to_string()));
    };
    for key in parents {
        obj = match tx.get(&obj, *key)? {
            Some((automerge::Value::Object(ObjType::Map), id)) => id,
            _ => tx.put_object(&obj, *key, ObjType::Map)?,
        };
    }
    put_json(
        tx,
        &obj,
        automerge::Prop::Map(last.to_string()),
        value,
        false,
    )
}

/// Deletes the entry at `path` below a container. Returns whether it was there.
pub fn delete_at<T: Transactable>(
    tx: &mut T,
    container_name: &str,
    path: &[&str],
) -> Result<bool, DocError> {
    let mut obj = container(tx, container_name)?;
    let Some((last, parents)) = path.split_last() else {
        return Ok(false);
    };
    for key in parents {
        obj = match tx.get(&obj, *key)? {
            Some((automerge::Value::Object(_), id)) => id,
            _ => return Ok(false),
        };
    }
    if tx.get(&obj, *last)?.is_none() {
        return Ok(false);
    }
    tx.delete(&obj, *last)?;
    Ok(true)
}

/// The NodeIds (text) a document's share list names; `*` stands for everyone.
pub fn readers(doc: &Automerge) -> std::collections::BTreeSet<String> {
    match container(doc, "readers") {
        Ok(obj) => doc.keys(&obj).collect(),
        Err(_) => Default::default(),
    }
}

/// The key of the share list that stands for everyone.
pub const PUBLIC: &str = "*";

/// The whole document as JSON at `heads` (all heads when `None`).
pub fn document_json(doc: &Automerge, heads: Option<&[ChangeHash]>) -> Json {
    to_json(&doc.hydrate(heads))
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
    /// Reads a State document at `heads`.
    pub fn read(doc: &Automerge, heads: Option<&[ChangeHash]>) -> StateData {
        Self::from_json(&document_json(doc, heads))
    }

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

/// Offers of a provider's document.
pub fn read_offers(doc: &Automerge) -> (BTreeMap<String, Offer>, Vec<Unreadable>) {
    let data = OffersData::read(doc);
    (data.offers, data.unreadable)
}

/// A provider's document, read into typed records.
#[derive(Clone, Debug, Default)]
pub struct OffersData {
    /// Offers by id.
    pub offers: BTreeMap<String, Offer>,
    /// The provider's decisions on matches, by match key.
    pub matches: BTreeMap<String, MatchRecord>,
    /// The provider's node(s).
    pub owner: Vec<String>,
    /// Records that did not parse.
    pub unreadable: Vec<Unreadable>,
}

impl OffersData {
    /// Reads an offers document.
    pub fn read(doc: &Automerge) -> OffersData {
        Self::read_at(doc, None)
    }

    /// Reads an offers document at `heads` (all heads when `None`).
    pub fn read_at(doc: &Automerge, heads: Option<&[ChangeHash]>) -> OffersData {
        let root = document_json(doc, heads);
        let mut data = OffersData::default();
        data.offers = records(&root, "offers", &mut data.unreadable)
            .into_iter()
            .collect();
        data.matches = records(&root, "matches", &mut data.unreadable)
            .into_iter()
            .collect();
        data.owner = plain(&root, "owner").into_keys().collect();
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_ids_round_trip() {
        for s in [
            "state/XAA",
            "state/KEN/draft",
            "offers/XZZ",
            "pool/xanadu",
            "secretariat/calendar",
        ] {
            assert_eq!(s.parse::<DocId>().unwrap().to_string(), s);
        }
        for bad in [
            "state/QQQ",
            "state",
            "pool/",
            "pool/a b",
            "state/XAA/other",
            "",
        ] {
            assert!(bad.parse::<DocId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn genesis_is_deterministic_and_per_document() {
        let a: DocId = "state/XAA".parse().unwrap();
        let b: DocId = "state/XAB".parse().unwrap();
        assert_eq!(genesis(&a).save(), genesis(&a).save());
        assert_eq!(genesis_hash(&a), genesis_hash(&a));
        assert_ne!(genesis_hash(&a), genesis_hash(&b));
        let json = document_json(&genesis(&a), None);
        assert_eq!(json["doc"], "state/XAA");
        assert!(json["targets"].is_object());
    }

    #[test]
    fn records_round_trip_through_automerge() {
        let id: DocId = "state/XAA".parse().unwrap();
        let mut doc = genesis(&id);
        let t = crate::model::tests::xaa_t1();
        let mut tx = doc.transaction();
        put_record(&mut tx, "targets", &target_key("T1", 1), &t).unwrap();
        tx.commit();
        let data = StateData::read(&doc, None);
        assert_eq!(data.latest("T1"), Some(&t));
        assert!(data.unreadable.is_empty());

        let mut tx = doc.transaction();
        assert!(matches!(
            put_record(&mut tx, "targets", "T1/1", &t),
            Err(DocError::Exists(_))
        ));
    }

    #[test]
    fn unreadable_records_are_listed_not_fatal() {
        let id: DocId = "state/XAA".parse().unwrap();
        let mut doc = genesis(&id);
        let mut tx = doc.transaction();
        put_value(&mut tx, "targets", "T9/1", &serde_json::json!({"id": 3})).unwrap();
        tx.commit();
        let data = StateData::read(&doc, None);
        assert!(data.targets.is_empty());
        assert_eq!(data.unreadable.len(), 1);
        assert_eq!(data.unreadable[0].path, "targets/T9/1");
    }
}
