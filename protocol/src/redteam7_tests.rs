//! Seventh red-team round: attacks on the sixth round's gate (`Ledger::speaks`,
//! `Ledger::admit_batch`, the relayed-revoked budget, the caps past the screen) and on the
//! offers draft. Each test was written to pass while its attack succeeded; each now asserts
//! that it fails (a target's first version speaks for its areas whenever it was written;
//! a refused revoked change is taken again as soon as a waiting change needs it; a relay's
//! flood is capped at twice the author's hard cap).

use serde_json::json;

use crate::authority::{Cutoff, Grant, GrantKind, Scope, SignedGrant};
use crate::change::{ChangeData, FlatAction, FlatOp, SignedChange};
use crate::doc::{DocId, StateData};
use crate::id::{NodeId, Principal, StateCode};
use crate::ledger::{Admitted, Ledger, Verdict, actor_bytes};
use crate::model::Area;
use crate::sign::{NodeKey, sign_change};

const T0: i64 = 1_767_225_600;

fn key(seed: u8) -> NodeKey {
    NodeKey::from_seed(&[seed; 32])
}
fn xaa() -> StateCode {
    StateCode::from_static("XAA")
}
/// The State key of XAA.
fn state_key() -> NodeKey {
    key(40)
}
fn trusted() -> NodeId {
    state_key().node_id()
}

fn grant(
    kind: GrantKind,
    node: &NodeKey,
    scope: Option<Scope>,
    cutoff: Vec<Cutoff>,
) -> SignedGrant {
    SignedGrant::sign(
        &state_key(),
        Grant {
            kind,
            principal: Principal::State(xaa()),
            node: node.node_id(),
            scope,
            expires: None,
            issued: crate::date::Date::from_unix_seconds(T0),
            key: state_key().node_id(),
            cutoff,
            serial: 0,
            kept: Vec::new(),
            recovery: None,
        },
    )
}

fn grant_op(doc: &DocId, g: &SignedGrant) -> FlatOp {
    FlatOp {
        container: doc.kind().container(g.grant.kind.container()).unwrap(),
        key: g.storage_key(),
        action: FlatAction::Put {
            value: g.to_text(),
            preds: vec![],
        },
    }
}

fn put(doc: &DocId, container: &str, key: &str, value: String) -> FlatOp {
    FlatOp {
        container: doc.kind().container(container).unwrap(),
        key: key.into(),
        action: FlatAction::Put {
            value,
            preds: vec![],
        },
    }
}

fn signed(doc: &DocId, k: &NodeKey, data: ChangeData) -> SignedChange {
    let h = data.to_automerge(doc).unwrap().hash();
    SignedChange {
        data,
        signature: sign_change(k, doc, &h).to_vec(),
    }
}

fn actor(k: &NodeKey, n: u8) -> Vec<u8> {
    actor_bytes(&k.node_id(), &[n; 8])
}

/// A target record as the node writes it.
fn target(id: &str, version: u32, area: Area) -> String {
    json!({
        "id": id,
        "state": "XAA",
        "version": version,
        "cycle": "BMS9",
        "area": area,
        "title": format!("target {id} v{version}"),
        "indicator": {"kind": "quantitative", "text": "share", "unit": "percent", "direction": "increase"},
        "baseline": 40.0,
        "baseline_year": 2023,
        "value": 70.0,
        "deadline": "2026-06-30",
        "supersedes": if version > 1 { Some(version - 1) } else { None },
        "reason": if version > 1 { Some("changed") } else { None },
    })
    .to_string()
}

/// Admits, expecting it to be new.
fn admit_new(l: &mut Ledger, c: &SignedChange) -> automerge::ChangeHash {
    match l.admit(c, Some(&trusted())) {
        Admitted::New(h) => {
            l.settle(Some(&trusted()));
            h
        }
        other => panic!("not admitted: {other:?}"),
    }
}

/// State XAA's published document with its own node (key 10, scope all) having delegated a
/// stockpile ministry (key 1) and a marking ministry (key 2).
fn state_doc() -> (DocId, Ledger, NodeKey, NodeKey, NodeKey) {
    let doc = DocId::State(xaa());
    let mut l = Ledger::new(&doc);
    l.settle(Some(&trusted()));
    let own = key(10);
    let stockpile = key(1);
    let marking = key(2);
    let c = l.next_change(
        &actor(&own, 0),
        T0,
        vec![grant_op(
            &doc,
            &grant(GrantKind::Delegation, &own, Some(Scope::ALL), vec![]),
        )],
    );
    admit_new(&mut l, &signed(&doc, &own, c));
    let ops = vec![
        grant_op(
            &doc,
            &grant(
                GrantKind::Delegation,
                &stockpile,
                Some(Scope::Areas(vec![Area::Stockpile])),
                vec![],
            ),
        ),
        grant_op(
            &doc,
            &grant(
                GrantKind::Delegation,
                &marking,
                Some(Scope::Areas(vec![Area::Marking])),
                vec![],
            ),
        ),
    ];
    let c = l.next_change(&actor(&own, 0), T0, ops);
    admit_new(&mut l, &signed(&doc, &own, c));
    (doc, l, own, stockpile, marking)
}

fn stands(l: &Ledger, h: &automerge::ChangeHash) -> bool {
    matches!(l.verdict(h), Some(Verdict::Stands))
}

/// ATTACK 1 (property a): a marking ministry supersedes a stockpile target.
///
/// The marking ministry writes version 2 of target T5, in its own area, into the published
/// document *before* the stockpile ministry's version 1 is there (it can read the State's
/// draft, where T5/1 sits until published, or just guess the State's next id). When judging
/// T5/2, `Ledger::speaks` lets no first version speak that has T5/2 in its past ("a later
/// change cannot change what it found"), and there is none in its past or concurrent: its
/// areas are only its own value's, marking, so it stands. The stockpile ministry then
/// publishes T5/1 on its heads (which include the standing T5/2): T5/1 stands too. The view
/// now has T5 v1 (stockpile, by the stockpile ministry) and v2 (marking, by the marking
/// ministry): the latest version, the one every reader sees, is the marking ministry's.
/// Under the old `written_over` rule every first version held spoke, so T5/2 became void as
/// soon as T5/1 arrived.
#[test]
fn redteam7_marking_ministry_supersedes_stockpile_target_written_before_v1() {
    let (doc, mut l, _own, stockpile, marking) = state_doc();
    // The marking ministry: version 2 of T5, no version 1 anywhere yet.
    let c = l.next_change(
        &actor(&marking, 0),
        T0 + 10,
        vec![put(&doc, "targets", "T5/2", target("T5", 2, Area::Marking))],
    );
    let squat = admit_new(&mut l, &signed(&doc, &marking, c));
    // The stockpile ministry publishes its target T5 on its heads.
    let c = l.next_change(
        &actor(&stockpile, 0),
        T0 + 20,
        vec![put(
            &doc,
            "targets",
            "T5/1",
            target("T5", 1, Area::Stockpile),
        )],
    );
    let honest = admit_new(&mut l, &signed(&doc, &stockpile, c));
    let s = l.settle(Some(&trusted())).clone();
    assert!(stands(&l, &honest));
    // The marking ministry's version of a stockpile target is void once the target exists.
    assert!(!stands(&l, &squat), "the marking ministry's T5/2 stands");
    let data = StateData::from_json(&s.view);
    let latest = data.latest("T5").expect("T5");
    assert_eq!(latest.version, 1);
    assert_eq!(latest.area, Area::Stockpile);

    // The same T5/2, concurrent with T5/1 instead (built on the delegations only), is void:
    // the verdict depends on the past the attacker chose and when it wrote.
    let (doc2, mut l2, _, stockpile2, marking2) = state_doc();
    let base = l2.settled().unwrap().heads.clone();
    let c = l2.next_change(
        &actor(&stockpile2, 0),
        T0 + 20,
        vec![put(
            &doc2,
            "targets",
            "T5/1",
            target("T5", 1, Area::Stockpile),
        )],
    );
    admit_new(&mut l2, &signed(&doc2, &stockpile2, c));
    let c = l2.change_at(
        &base,
        &actor(&marking2, 0),
        T0 + 10,
        vec![put(
            &doc2,
            "targets",
            "T5/2",
            target("T5", 2, Area::Marking),
        )],
    );
    let concurrent = admit_new(&mut l2, &signed(&doc2, &marking2, c));
    assert!(!stands(&l2, &concurrent));
}

/// ATTACK 2 (property a): a marking ministry withdraws a stockpile target, the same way:
/// one change writing `withdrawn/T5` together with a version T5/2 of its own area (a
/// withdrawal's areas are the target's first versions that speak *and* the versions the
/// change itself writes), before T5/1 is published. The later T5/1 does not speak for it, so
/// the withdrawal stands, and the stockpile ministry's target is withdrawn the moment it is
/// published (and `supersede_target` refuses it: "withdrawn").
#[test]
fn redteam7_marking_ministry_withdraws_stockpile_target_before_it_is_published() {
    let (doc, mut l, _own, stockpile, marking) = state_doc();
    let c = l.next_change(
        &actor(&marking, 0),
        T0 + 10,
        vec![
            put(&doc, "targets", "T5/2", target("T5", 2, Area::Marking)),
            put(&doc, "withdrawn", "T5", json!("2026-01-02").to_string()),
        ],
    );
    let squat = admit_new(&mut l, &signed(&doc, &marking, c));
    let c = l.next_change(
        &actor(&stockpile, 0),
        T0 + 20,
        vec![put(
            &doc,
            "targets",
            "T5/1",
            target("T5", 1, Area::Stockpile),
        )],
    );
    let honest = admit_new(&mut l, &signed(&doc, &stockpile, c));
    let s = l.settle(Some(&trusted())).clone();
    assert!(stands(&l, &honest));
    assert!(
        !stands(&l, &squat),
        "the marking ministry's withdrawal stands"
    );
    let data = StateData::from_json(&s.view);
    assert!(!data.withdrawn.contains_key("T5"));
    assert_eq!(data.versions("T5")[0].area, Area::Stockpile);
}

/// A revoked ministry (key 3) that wrote `n` changes past its cut-off on which an honest
/// node of the State (its own node, key 10) built a change: the victim's ledger holding the
/// revocation and the kept change, and the batch (run, then the honest change), in causal
/// order.
fn revoked_run(
    n: usize,
) -> (
    DocId,
    Ledger,
    NodeKey,
    Vec<SignedChange>,
    automerge::ChangeHash,
) {
    let (doc, mut src, own, _stockpile, _marking) = state_doc();
    let revoked = key(3);
    let c = src.next_change(
        &actor(&own, 0),
        T0 + 1,
        vec![grant_op(
            &doc,
            &grant(
                GrantKind::Delegation,
                &revoked,
                Some(Scope::Areas(vec![Area::Marking])),
                vec![],
            ),
        )],
    );
    admit_new(&mut src, &signed(&doc, &own, c));
    // Its kept change.
    let c = src.next_change(
        &actor(&revoked, 0),
        T0 + 2,
        vec![put(
            &doc,
            "needs",
            "N0",
            json!({"id": "N0", "area": "marking"}).to_string(),
        )],
    );
    admit_new(&mut src, &signed(&doc, &revoked, c));
    let cut = src.cutoff_for(&revoked.node_id());
    let before_run = src.settled().unwrap().heads.clone();
    let mut victim = src.clone();
    // The run past the cut-off, and the honest change on top of it (made before the honest
    // node saw the revocation).
    let mut batch = Vec::new();
    for i in 0..n {
        let c = src.next_change(
            &actor(&revoked, 0),
            T0 + 3 + i as i64,
            vec![put(
                &doc,
                "needs",
                &format!("N{}", i + 1),
                json!({"id": format!("N{}", i + 1), "area": "marking"}).to_string(),
            )],
        );
        let c = signed(&doc, &revoked, c);
        admit_new(&mut src, &c);
        batch.push(c);
    }
    let c = src.next_change(
        &actor(&own, 0),
        T0 + 100_000,
        vec![put(
            &doc,
            "needs",
            "H1",
            json!({"id": "H1", "area": "stockpile"}).to_string(),
        )],
    );
    let h = signed(&doc, &own, c);
    let honest = admit_new(&mut src, &h);
    batch.push(h);
    // The revocation, on the past without the run: the victim holds it and the kept change.
    let r = victim.change_at(
        &before_run,
        &actor(&own, 1),
        T0 + 5,
        vec![grant_op(
            &doc,
            &grant(GrantKind::Revocation, &revoked, None, cut),
        )],
    );
    admit_new(&mut victim, &signed(&doc, &own, r));
    (doc, victim, revoked, batch, honest)
}

/// ATTACK 3 (property c, and b for the batch): `Ledger::admit_batch` gives different results
/// for two orders of the same batch. The revoked node sends its own run past its cut-off and
/// the honest change built on it (its author's changes are refused "unless another author's
/// change needs it"). In causal order all of it comes in: the run is refused, the honest
/// change waits, and the second phase takes the run again latest first, each one's need
/// known when its dependency is tried. With the run newest first (then the honest change),
/// the first pass refuses the run, the second re-takes it in reverse of that (oldest first): every
/// change of the run is tried before the one that needs it has said so, is refused for good
/// (there is no third phase), and only the tip, wanted by the honest change, waits. The
/// capped list (64 changes) would force a short run in, but not one longer than 64: the
/// honest change stays waiting, and with it what the batch brought.
#[test]
fn redteam7_admit_batch_result_depends_on_batch_order() {
    let n = 80;
    let (_doc, victim, revoked, batch, honest) = revoked_run(n);
    let sender = Some(revoked.node_id());
    let none = |_: &automerge::ChangeHash| Ok::<bool, ()>(false);

    let mut causal = victim.clone();
    let a = causal
        .admit_batch(batch.clone(), Some(&trusted()), sender, none)
        .unwrap();
    let mut reversed = victim.clone();
    // The run newest first, then the honest change.
    let mut rev: Vec<SignedChange> = batch[..n].iter().rev().cloned().collect();
    rev.push(batch[n].clone());
    let b = reversed
        .admit_batch(rev, Some(&trusted()), sender, none)
        .unwrap();

    // Causal order: everything held, the honest change stands.
    assert_eq!(a.held.len(), n + 1);
    assert!(a.waiting.is_empty());
    assert!(causal.has(&honest));
    causal.settle(Some(&trusted()));
    assert!(stands(&causal, &honest));
    // Reverse order, the same batch: the same is held, in proportion to the batch.
    assert_eq!(b.held.len(), n + 1);
    assert!(b.waiting.is_empty() && b.refused.is_empty());
    assert!(reversed.has(&honest));
    assert_eq!(causal.len(), reversed.len());
    assert!(b.attempts <= 3 * (n + 1), "{} attempts", b.attempts);
}

/// ATTACK 4 (property b, and c between nodes): one leaked ministry key, relayed by any other
/// pinned peer that may read the document, fills the document's actor table, and the node
/// then refuses every honest new actor.
///
/// Past the hard cap of actors per author (36), a change with a new actor still comes in when
/// a peer other than its author sends it, if it is among the 9 smallest first changes of its
/// author's actors. Sent in falling hash order, every one is the smallest so far: the relay
/// brings in 4,096 actors of the one leaked key (the documented limit needed two leaked keys
/// whose changes depend on each other). The document's actor cap (4,096) is then reached, and
/// the next honest node with a new actor (a ministry delegated today) is refused
/// `TooManyActors` on this node, while a node that got the same flood from its author took
/// 36 actors and holds the honest change.
#[test]
fn redteam7_relay_fills_actor_table_with_one_leaked_key() {
    let (doc, base, own, _stockpile, marking) = state_doc();
    let heads = base.settled().unwrap().heads.clone();
    let mut flood: Vec<(automerge::ChangeHash, SignedChange)> = (0..4_200u32)
        .map(|i| {
            let mut suffix = [0u8; 8];
            suffix[..4].copy_from_slice(&i.to_be_bytes());
            suffix[4] = 0xAA;
            let a = actor_bytes(&marking.node_id(), &suffix);
            let c = base.change_at(
                &heads,
                &a,
                T0 + 1,
                vec![put(
                    &doc,
                    "needs",
                    &format!("J{i}"),
                    json!({"id": format!("J{i}"), "area": "marking"}).to_string(),
                )],
            );
            let h = c.to_automerge(&doc).unwrap().hash();
            (h, signed(&doc, &marking, c))
        })
        .collect();
    flood.sort_by_key(|a| std::cmp::Reverse(a.0));
    let flood: Vec<SignedChange> = flood.into_iter().map(|(_, c)| c).collect();
    let none = |_: &automerge::ChangeHash| Ok::<bool, ()>(false);
    let relay = key(50).node_id();

    // A ministry delegated after the flood, and its first change (a new actor).
    let mut src = base.clone();
    let c = src.next_change(
        &actor(&own, 0),
        T0 + 5,
        vec![grant_op(
            &doc,
            &grant(
                GrantKind::Delegation,
                &key(4),
                Some(Scope::Areas(vec![Area::Stockpile])),
                vec![],
            ),
        )],
    );
    let delegation = signed(&doc, &own, c);
    admit_new(&mut src, &delegation);
    let c = src.next_change(
        &actor(&key(4), 0),
        T0 + 6,
        vec![put(
            &doc,
            "needs",
            "S1",
            json!({"id": "S1", "area": "stockpile"}).to_string(),
        )],
    );
    let honest = signed(&doc, &key(4), c);
    let honest_hash = admit_new(&mut src, &honest);
    assert!(stands(&src, &honest_hash));

    // Node A: the flood from its author.
    let mut a = base.clone();
    let fa = a
        .admit_batch(
            flood.clone(),
            Some(&trusted()),
            Some(marking.node_id()),
            none,
        )
        .unwrap();
    // Node B: the same flood relayed by another pinned peer.
    let mut b = base.clone();
    let fb = b
        .admit_batch(flood, Some(&trusted()), Some(relay), none)
        .unwrap();
    assert!(fa.held.len() <= 40, "author's flood held {}", fa.held.len());
    assert!(fb.held.len() <= 80, "relayed flood held {}", fb.held.len());

    // Then the honest ministry's change, from an honest peer: A takes it, B refuses it.
    let from = Some(own.node_id());
    let ra = a
        .admit_batch(
            vec![delegation.clone(), honest.clone()],
            Some(&trusted()),
            from,
            none,
        )
        .unwrap();
    let rb = b
        .admit_batch(vec![delegation, honest], Some(&trusted()), from, none)
        .unwrap();
    assert_eq!(ra.held.len(), 2);
    assert!(a.has(&honest_hash));
    a.settle(Some(&trusted()));
    assert!(stands(&a, &honest_hash));
    assert_eq!(rb.held.len(), 2, "{:?}", rb.refused);
    b.settle(Some(&trusted()));
    assert!(stands(&b, &honest_hash));
}
