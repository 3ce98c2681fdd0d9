//! The test harness: builds federations of real nodes (own SQLite file, own QUIC endpoint on
//! loopback) in a few lines, and the records of the illustrative data set.

pub mod rogue;

use std::time::Duration;

use poa_node::federation::{Member, wait_until};
use poa_node::home::InitOptions;
use poa_node::sync::EngineConfig;
use poa_protocol::doc::DocId;
use poa_protocol::model::{Area, Direction, Indicator, IndicatorKind, Target};
use poa_protocol::{BodyKind, StateCode};

/// How long a test waits for a federation to converge before it fails.
pub const CONVERGE: Duration = Duration::from_secs(30);

/// An engine configuration for tests: quick polling, and an anti-entropy period long enough
/// that convergence in a test comes from pushes and rounds, not from repair.
pub fn config() -> EngineConfig {
    EngineConfig {
        anti_entropy: Duration::from_secs(3600),
        poll: Duration::from_millis(50),
        round_timeout: Duration::from_secs(60),
    }
}

/// A temp folder holding several node homes; dropped at the end of the test.
#[derive(Debug)]
pub struct Homes(pub tempfile::TempDir);

impl Homes {
    /// A new temp folder.
    pub fn new() -> Homes {
        Homes(tempfile::tempdir().expect("temp dir"))
    }

    /// Starts a State's node.
    pub async fn state(&self, label: &str, code: &str) -> Member {
        let code: StateCode = code.parse().expect("state code");
        let opts = InitOptions::state(code, &format!("{label} node"));
        Member::start(label, &self.0.path().join(label), &opts, config())
            .await
            .expect("node starts")
    }

    /// Starts another node of a State, without a State key: it writes only once the State's
    /// first node delegates it.
    pub async fn ministry(&self, label: &str, code: &str) -> Member {
        let code: StateCode = code.parse().expect("state code");
        let opts = InitOptions {
            create_state_key: false,
            ..InitOptions::state(code, &format!("{label} node"))
        };
        Member::start(label, &self.0.path().join(label), &opts, config())
            .await
            .expect("node starts")
    }

    /// Starts a body's node.
    pub async fn body(&self, label: &str, code: &str, kind: BodyKind) -> Member {
        let opts = InitOptions::body(code.parse().expect("body code"), kind, label);
        Member::start(label, &self.0.path().join(label), &opts, config())
            .await
            .expect("node starts")
    }
}

impl Default for Homes {
    fn default() -> Self {
        Self::new()
    }
}

/// Pins two nodes to each other, both with addresses.
pub fn link(a: &Member, b: &Member, a_state: Option<&str>, b_state: Option<&str>) {
    let parse = |s: Option<&str>| s.map(|s| s.parse::<StateCode>().expect("state"));
    a.pin(b, parse(b_state)).expect("pin");
    b.pin(a, parse(a_state)).expect("pin");
}

/// The heads a member holds of a document (empty if none).
pub fn heads(m: &Member, doc: &DocId) -> Vec<String> {
    m.with_node(|n| {
        n.store
            .heads(doc)
            .expect("heads")
            .unwrap_or_default()
            .iter()
            .map(|h| h.to_string())
            .collect()
    })
}

/// Waits until every member holds `doc` with the same non-empty heads.
pub async fn converge(members: &[&Member], doc: &DocId) -> Duration {
    wait_until(CONVERGE, || {
        let first = heads(members[0], doc);
        !first.is_empty() && members.iter().all(|m| heads(m, doc) == first)
    })
    .await
    .unwrap_or_else(|| {
        let all: Vec<_> = members
            .iter()
            .map(|m| (m.label.clone(), heads(m, doc)))
            .collect();
        panic!("{doc} did not converge: {all:?}")
    })
}

/// A quantitative target with the given id and values.
pub fn target(id: &str, area: Area, title: &str, baseline: f64, value: f64) -> Target {
    Target {
        id: id.into(),
        state: "XAA".parse().expect("code"),
        version: 1,
        cycle: "BMS9".parse().expect("cycle"),
        area,
        title: title.into(),
        description: None,
        indicator: Indicator {
            kind: IndicatorKind::Quantitative,
            text: title.into(),
            unit: Some("percent".into()),
            direction: Some(Direction::Increase),
        },
        baseline: Some(baseline),
        baseline_year: Some(2023),
        baseline_source: None,
        value: Some(value),
        deadline: "2026-06-30".parse().expect("date"),
        mosaic: vec![],
        refs: vec![],
        sdg: None,
        conditional_on: vec![],
        supersedes: None,
        reason: None,
    }
}

/// Has `first` (holder of the State key) delegate `other` with scope all, and waits until
/// `other` has learnt the State key and holds the delegation.
pub async fn delegate_all(first: &Member, other: &Member) {
    let id = other.id();
    first
        .with_node(|n| n.delegate(id, poa_protocol::authority::Scope::ALL, None))
        .expect("delegate");
    wait_delegated(first, other).await;
}

/// Waits until `other` holds, in both its State's published document and its draft, a
/// delegation from `first`'s State that it can verify.
pub async fn wait_delegated(first: &Member, other: &Member) {
    let id = other.id();
    let state = first.with_node(|n| n.own_state()).expect("a State node");
    let ok = wait_until(CONVERGE, || {
        other.with_node(|n| {
            let verified = n
                .grants(state)
                .map(|g| g.iter().any(|(g, ok)| g.node == id && *ok))
                .unwrap_or(false);
            let in_draft = n
                .document(&DocId::Draft(state))
                .map(|d| {
                    poa_protocol::doc::document_json(&d, None)["delegations"]
                        .get(id.to_string())
                        .is_some()
                })
                .unwrap_or(false);
            verified && in_draft
        })
    })
    .await;
    assert!(
        ok.is_some(),
        "{} never received its delegation",
        other.label
    );
}

/// Waits until `m` has recorded a rejection of `change` in its audit log, and returns the
/// reason; fails the test if it never does.
pub async fn rejected_by(m: &Member, change: &poa_protocol::automerge::Change) -> String {
    rejected_by_hash(m, &change.hash().to_string()).await
}

/// [`rejected_by`] for a change known by its hash (hex).
pub async fn rejected_by_hash(m: &Member, hash: &str) -> String {
    let find = || {
        m.with_node(|n| {
            n.store
                .audit(0)
                .expect("audit")
                .into_iter()
                .find(|r| r.event == "rejected" && r.change.as_deref() == Some(hash))
                .map(|r| r.detail)
        })
    };
    let found = wait_until(CONVERGE, || find().is_some()).await;
    assert!(
        found.is_some(),
        "{} recorded no rejection of {hash}",
        m.label
    );
    find().unwrap_or_default()
}

/// The key of a running node, to act as it.
pub fn key_of(m: &Member) -> poa_protocol::sign::NodeKey {
    m.with_node(|n| poa_protocol::sign::NodeKey::from_seed(&n.home.key.seed()))
}

/// A change to `doc` made on top of `base`'s copy by `key` (with a fresh actor suffix), written
/// by `f`, and its signature: what a node holding `key` could send, honest or not.
pub fn craft_with(
    base: &Member,
    doc: &DocId,
    key: &poa_protocol::sign::NodeKey,
    f: impl FnOnce(&mut poa_protocol::automerge::transaction::Transaction<'_>),
) -> (poa_protocol::automerge::Change, Vec<u8>) {
    use poa_protocol::automerge::ReadDoc;
    use std::sync::atomic::{AtomicU8, Ordering};
    // A fresh actor suffix per crafted change, so two crafted by one key never share a
    // sequence number.
    static SUFFIX: AtomicU8 = AtomicU8::new(0x40);
    let suffix = SUFFIX.fetch_add(1, Ordering::Relaxed);
    let mut am = base
        .with_node(|n| n.document(doc))
        .expect("base holds the document");
    am.set_actor(poa_protocol::sign::actor_id(&key.node_id(), &[suffix; 8]));
    let mut tx = am.transaction();
    f(&mut tx);
    let hash = tx.commit().0.expect("the change is not empty");
    let change = am.get_change_by_hash(&hash).expect("just made");
    let sig = poa_protocol::sign::sign_change(key, doc, &hash).to_vec();
    (change, sig)
}
