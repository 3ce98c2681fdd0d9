//! The test harness: builds federations of real nodes (own SQLite file, own QUIC endpoint on
//! loopback) in a few lines, and the records of the illustrative data set.

pub mod rogue;
pub mod sim;

use std::time::Duration;

use poa_node::federation::{Member, wait_until};
use poa_node::home::InitOptions;
use poa_node::sync::EngineConfig;
use poa_protocol::automerge::ChangeHash;
use poa_protocol::change::{ChangeData, FlatAction, FlatOp, SignedChange};
use poa_protocol::doc::DocId;
use poa_protocol::ledger::{Ledger, Verdict, actor_bytes};
use poa_protocol::model::{Area, Direction, Indicator, IndicatorKind, Target};
use poa_protocol::sign::{NodeKey, sign_change};
use poa_protocol::{BodyKind, StateCode};
use poa_protocol::{NodeId, Principal};

/// How long a test waits for a federation to converge before it fails.
pub const CONVERGE: Duration = Duration::from_secs(30);

/// An engine configuration for tests: quick polling, and an anti-entropy period long enough
/// that convergence in a test comes from pushes and rounds, not from repair.
pub fn config() -> EngineConfig {
    EngineConfig {
        anti_entropy: Duration::from_secs(3600),
        poll: Duration::from_millis(50),
        round_timeout: Duration::from_secs(60),
        ..EngineConfig::default()
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
            create_principal_key: false,
            ..InitOptions::state(code, &format!("{label} node"))
        };
        Member::start(label, &self.0.path().join(label), &opts, config())
            .await
            .expect("node starts")
    }

    /// Starts a node of the given kind with its own engine configuration.
    pub async fn start(&self, label: &str, opts: &InitOptions, config: EngineConfig) -> Member {
        Member::start(label, &self.0.path().join(label), opts, config)
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
            [DocId::State(state), DocId::Draft(state)].iter().all(|d| {
                n.grants_in(d)
                    .map(|g| g.iter().any(|(g, ok)| g.node == id && *ok))
                    .unwrap_or(false)
            })
        })
    })
    .await;
    assert!(
        ok.is_some(),
        "{} never received its delegation",
        other.label
    );
}

/// Waits until `m` has recorded a refusal of the change `hash` in its audit log (a change
/// refused outright, or held but void), and returns the reason; fails the test if it never
/// does.
pub async fn refused_by(m: &Member, hash: &ChangeHash) -> String {
    let hash = hash.to_string();
    let find = || {
        m.with_node(|n| {
            n.store
                .audit(0)
                .expect("audit")
                .into_iter()
                .find(|r| {
                    r.change.as_deref() == Some(hash.as_str())
                        && (r.event == "rejected"
                            || r.event == "voided"
                            || (r.event == "accepted" && r.detail.contains("void")))
                })
                .map(|r| r.detail)
        })
    };
    let found = wait_until(CONVERGE, || find().is_some()).await;
    assert!(found.is_some(), "{} recorded no refusal of {hash}", m.label);
    find().unwrap_or_default()
}

/// The key of a running node, to act as it.
pub fn key_of(m: &Member) -> NodeKey {
    m.with_node(|n| NodeKey::from_seed(&n.home.key.seed()))
}

/// A put of a record under `key` of `container` in `doc`.
pub fn put(doc: &DocId, container: &str, key: &str, value: &impl serde::Serialize) -> FlatOp {
    put_text(
        doc,
        container,
        key,
        serde_json::to_string(value).expect("JSON"),
    )
}

/// A put of a JSON text, exactly as given.
pub fn put_text(doc: &DocId, container: &str, key: &str, text: String) -> FlatOp {
    FlatOp {
        container: doc.kind().container(container).expect("a container"),
        key: key.into(),
        action: FlatAction::Put {
            value: text,
            preds: vec![],
        },
    }
}

/// Signs a change of `doc` with `key`.
pub fn sign(doc: &DocId, key: &NodeKey, data: ChangeData) -> SignedChange {
    let hash = data.to_automerge(doc).expect("encodes").hash();
    SignedChange {
        signature: sign_change(key, doc, &hash).to_vec(),
        data,
    }
}

/// The hash of a change of `doc`.
pub fn hash_of(doc: &DocId, c: &SignedChange) -> ChangeHash {
    c.data.to_automerge(doc).expect("encodes").hash()
}

fn fresh_suffix() -> [u8; 8] {
    use std::sync::atomic::{AtomicU8, Ordering};
    // A fresh actor suffix per crafted change, so two crafted by one key never share a
    // sequence number.
    static SUFFIX: AtomicU8 = AtomicU8::new(0x40);
    [SUFFIX.fetch_add(1, Ordering::Relaxed); 8]
}

/// A change to `doc` on top of `base`'s copy (its heads, or `deps` if given) by `key` with a
/// fresh actor suffix, signed: what a node holding `key` could send, honest or not.
pub fn craft(
    base: &Member,
    doc: &DocId,
    key: &NodeKey,
    deps: Option<&[ChangeHash]>,
    ops: Vec<FlatOp>,
) -> SignedChange {
    let actor = actor_bytes(&key.node_id(), &fresh_suffix());
    let data = base
        .with_node(|n| {
            n.store.with_ledger(doc, |l| match deps {
                Some(d) => l.change_at(d, &actor, poa_node::node::now_secs(), ops.clone()),
                None => l.next_change(&actor, poa_node::node::now_secs(), ops.clone()),
            })
        })
        .expect("the store reads")
        .unwrap_or_else(|| {
            Ledger::new(doc).next_change(&actor, poa_node::node::now_secs(), ops.clone())
        });
    sign(doc, key, data)
}

/// The change after `prev` in its author's chain, on `prev` alone, made by hand (for changes
/// no node holds yet, so nothing pushes them), signed by `key`.
pub fn craft_after(
    doc: &DocId,
    key: &NodeKey,
    prev: &SignedChange,
    ops: Vec<FlatOp>,
) -> SignedChange {
    let mut data = prev.data.clone();
    data.seq += 1;
    data.start_op += data.ops.len() as u64;
    data.deps = vec![hash_of(doc, prev).0];
    data.ops = ops;
    sign(doc, key, data)
}

/// Whether `m` holds the change `hash` of `doc`.
pub fn holds(m: &Member, doc: &DocId, hash: &ChangeHash) -> bool {
    m.with_node(|n| n.store.with_ledger(doc, |l| l.has(hash)))
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// The verdict `m` reaches on a change it holds.
pub fn verdict(m: &Member, doc: &DocId, hash: &ChangeHash) -> Option<Verdict> {
    m.with_node(|n| n.store.with_ledger(doc, |l| l.verdict(hash).cloned()))
        .ok()
        .flatten()
        .flatten()
}

/// The view `m` holds of a document (`Null` if it holds none).
pub fn view(m: &Member, doc: &DocId) -> serde_json::Value {
    m.with_node(|n| n.store.view(doc))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Has `m` trust `key` as `principal`'s, as its operator would with `poa-node trust`.
pub fn trust(m: &Member, principal: Principal, key: NodeId) {
    m.with_node(|n| {
        n.store.learn_key(
            &principal,
            &key,
            &poa_protocol::authority::TrustSource::Operator,
            0,
        )
    })
    .expect("trusts");
    m.with_node(|_| ());
}

/// The key of `m`'s State or body, as `m` trusts it.
pub fn principal_key(m: &Member) -> NodeId {
    m.with_node(|n| {
        n.home
            .principal_key
            .as_ref()
            .map(|k| k.node_id())
            .expect("the first node of its State or body")
    })
}

/// The resident memory of this process, in KiB (Linux; 0 elsewhere).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}
