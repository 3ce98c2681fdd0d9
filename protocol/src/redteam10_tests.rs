//! Red team, tenth round: attacks on fde318f (`Ledger::over_found` now silences a put outside
//! the judged change's past whatever predecessors it names; early retry only on a grant).
//! Each test was written to pass while its attack worked there; each now asserts that it
//! fails (a draft's correction naming what it replaces speaks; the early retry is only for a
//! grant naming the waiting change's author, once).

use crate::authority::{Grant, GrantKind, Scope, SignedGrant};
use crate::change::{ChangeData, FlatAction, FlatOp, OpRef, SignedChange};
use crate::doc::DocId;
use crate::id::{Principal, StateCode};
use crate::ledger::{Admitted, Ledger, Verdict, actor_bytes};
use crate::model::Area;
use crate::sign::{NodeKey, sign_change};
use automerge::ChangeHash;

const T0: i64 = 1_767_225_600;

fn key(seed: u8) -> NodeKey {
    NodeKey::from_seed(&[seed; 32])
}

fn xaa() -> StateCode {
    StateCode::from_static("XAA")
}

fn state_key() -> NodeKey {
    key(40)
}

fn delegation(node: &NodeKey, scope: Scope) -> SignedGrant {
    SignedGrant::sign(
        &state_key(),
        Grant {
            kind: GrantKind::Delegation,
            principal: Principal::State(xaa()),
            node: node.node_id(),
            scope: Some(scope),
            expires: None,
            issued: crate::date::Date::from_unix_seconds(T0),
            key: state_key().node_id(),
            cutoff: vec![],
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

fn signed(doc: &DocId, k: &NodeKey, data: ChangeData) -> SignedChange {
    let h = data.to_automerge(doc).unwrap().hash();
    SignedChange {
        data,
        signature: sign_change(k, doc, &h).to_vec(),
    }
}

fn put(doc: &DocId, container: &str, k: &str, value: &str, preds: Vec<OpRef>) -> FlatOp {
    FlatOp {
        container: doc.kind().container(container).unwrap(),
        key: k.into(),
        action: FlatAction::Put {
            value: value.into(),
            preds,
        },
    }
}

/// A draft of State XAA: node 1 (the State's own node, scope all), node 2 a marking ministry,
/// node 3 a stockpile ministry; delegations in the first change.
struct World {
    doc: DocId,
    l: Ledger,
    all: Key,
    marking: Key,
    stockpile: Key,
}

struct Key {
    k: NodeKey,
    actor: Vec<u8>,
}

impl World {
    fn new(doc: DocId) -> World {
        let mk = |s: u8| {
            let k = key(s);
            let actor = actor_bytes(&k.node_id(), &[0; 8]);
            Key { k, actor }
        };
        let mut w = World {
            doc: doc.clone(),
            l: Ledger::new(&doc),
            all: mk(1),
            marking: mk(2),
            stockpile: mk(3),
        };
        // Each node places its own delegation (a change holding only its own grant).
        w.settle();
        for who in 1..=3u8 {
            let (scope, k) = match who {
                1 => (Scope::ALL, &w.all),
                2 => (Scope::Areas(vec![Area::Marking]), &w.marking),
                _ => (Scope::Areas(vec![Area::Stockpile]), &w.stockpile),
            };
            let op = grant_op(&w.doc, &delegation(&k.k, scope));
            let data = w.l.next_change(&k.actor, T0, vec![op]);
            let c = signed(&w.doc, &k.k, data);
            w.admit(c);
        }
        w
    }

    fn trusted(&self) -> crate::NodeId {
        state_key().node_id()
    }

    fn settle(&mut self) {
        let t = self.trusted();
        self.l.settle(Some(&t));
    }

    fn admit(&mut self, c: SignedChange) -> ChangeHash {
        let t = self.trusted();
        let h = match self.l.admit(&c, Some(&t)) {
            Admitted::New(h) => h,
            other => panic!("not admitted: {other:?}"),
        };
        self.settle();
        h
    }

    /// `who` writes `ops` on the heads (None) or on exactly `deps`.
    fn write(&mut self, who: u8, deps: Option<&[ChangeHash]>, ops: Vec<FlatOp>) -> ChangeHash {
        let k = match who {
            1 => &self.all,
            2 => &self.marking,
            _ => &self.stockpile,
        };
        let data = match deps {
            None => self.l.next_change(&k.actor, T0 + 10, ops),
            Some(d) => self.l.change_at(d, &k.actor, T0 + 10, ops),
        };
        let c = signed(&self.doc, &k.k, data);
        self.admit(c)
    }

    fn heads(&self) -> Vec<ChangeHash> {
        self.l.settled().unwrap().heads.clone()
    }

    fn stands(&self, h: &ChangeHash) -> bool {
        matches!(self.l.verdict(h), Some(Verdict::Stands))
    }

    fn refs(&self, container: &str, k: &str) -> Vec<OpRef> {
        self.l.live_refs(container, k)
    }
}

fn target(id: &str, area: &str) -> String {
    serde_json::json!({"id": id, "area": area, "title": id}).to_string()
}

fn report(t: &str, v: u32) -> String {
    serde_json::json!({"target": t, "value": v}).to_string()
}

/// The draft where the State's own node (scope all) moved a marking ministry's progress report
/// R1 from marking target T1 to stockpile target T2, correcting it in place (a put naming the
/// value it replaces, as drafts allow). Returns the world and the report's first change.
fn corrected_report() -> (World, ChangeHash) {
    let doc = DocId::Draft(xaa());
    let mut w = World::new(doc);
    let d = w.doc.clone();
    w.write(
        1,
        None,
        vec![
            put(&d, "targets", "T1/1", &target("T1", "marking"), vec![]),
            put(&d, "targets", "T2/1", &target("T2", "stockpile"), vec![]),
        ],
    );
    let p = w.write(
        2,
        None,
        vec![put(&d, "progress", "R1", &report("T1", 1), vec![])],
    );
    assert!(
        w.stands(&p),
        "the marking ministry reports on its own target"
    );
    let preds = w.refs("progress", "R1");
    assert_eq!(preds.len(), 1);
    let c = w.write(
        1,
        None,
        vec![put(&d, "progress", "R1", &report("T2", 1), preds)],
    );
    assert!(
        w.stands(&c),
        "the State's node corrects the report in place"
    );
    assert_eq!(
        w.refs("progress", "R1").len(),
        1,
        "one live value: the correction"
    );
    (w, p)
}

/// ATTACK (property a, write): a marking ministry withdraws a progress report that, in the
/// whole set, is a report on a STOCKPILE target, by building its withdrawal on a past that
/// holds the report as it first wrote it but not the State's correction (which it has seen).
/// Since fde318f, `over_found` silences the correction (a put outside the withdrawal's past
/// holding in its own past the value the withdrawal found), whatever predecessors it names:
/// only the old value (target T1, marking) speaks. Built on the heads, the same withdrawal is
/// void: the verdict depends on the dependencies the attacker picks.
#[test]
fn redteam10_marking_withdraws_corrected_stockpile_report_by_picking_past() {
    let d = DocId::Draft(xaa());
    let withdraw = || put(&d, "retracted", "progress/R1", r#"{"why":"x"}"#, vec![]);

    // Control: on the heads (holding the correction), the withdrawal is void.
    let (mut honest, _) = corrected_report();
    let x = honest.write(2, None, vec![withdraw()]);
    assert!(
        !honest.stands(&x),
        "on the heads the withdrawal is out of scope"
    );

    // The same withdrawal, built on the report's first change only: void too.
    let (mut w, p) = corrected_report();
    let x = w.write(2, Some(&[p]), vec![withdraw()]);
    assert!(
        !w.stands(&x),
        "a marking ministry withdrew a report on a stockpile target"
    );
    let view = &w.l.settled().unwrap().view;
    assert!(view["retracted"].get("progress/R1").is_none(), "{view}");
}

/// The draft where the State's own node wrote T1 as a marking target, then corrected its
/// first version in place to the stockpile area.
fn corrected_target() -> (World, ChangeHash) {
    let doc = DocId::Draft(xaa());
    let mut w = World::new(doc);
    let d = w.doc.clone();
    let t = w.write(
        1,
        None,
        vec![put(&d, "targets", "T1/1", &target("T1", "marking"), vec![])],
    );
    let preds = w.refs("targets", "T1/1");
    let c = w.write(
        1,
        None,
        vec![put(
            &d,
            "targets",
            "T1/1",
            &target("T1", "stockpile"),
            preds,
        )],
    );
    assert!(w.stands(&c));
    (w, t)
}

/// ATTACK (property a, write): a marking ministry writes version 2 of, reports on, and
/// withdraws a target that the State's node has moved to the stockpile area (a correction of
/// the draft's first version in place), by building on the first version before the
/// correction. `target_areas` asks `speaks` about each first version: the correction is
/// outside the change's past and holds the found value in its own past, so `over_found`
/// silences it although it names that value as predecessor (a legitimate correction).
#[test]
fn redteam10_marking_writes_on_corrected_stockpile_target_by_picking_past() {
    let d = DocId::Draft(xaa());
    let v2 = || put(&d, "targets", "T1/2", &target("T1", "marking"), vec![]);
    let rep = || put(&d, "progress", "R9", &report("T1", 7), vec![]);
    let wd = || put(&d, "withdrawn", "T1", r#"{"why":"x"}"#, vec![]);

    // Control: on the heads, each is out of scope.
    for op in [v2(), rep(), wd()] {
        let (mut honest, _) = corrected_target();
        let x = honest.write(2, None, vec![op]);
        assert!(!honest.stands(&x), "on the heads it is out of scope");
    }

    // On the first version only: void too.
    for op in [v2(), rep(), wd()] {
        let (mut w, t) = corrected_target();
        let k = op.key.clone();
        let x = w.write(2, Some(&[t]), vec![op]);
        assert!(
            !w.stands(&x),
            "marking ministry wrote {k} about a stockpile target"
        );
        assert_eq!(
            w.l.settled().unwrap().view["targets"]["T1/1"]["area"],
            "stockpile"
        );
    }
}

/// ATTACK (property d, cost): the early retry still costs one admission per waiting change
/// and grant-only change that arrives, and a batch can bring up to 63 grants one after
/// another. A revoked node V sends one batch: N changes of strangers (fresh keys, failing the
/// screen, so they never mark V's change as needed) each depending on V's post-cut-off change
/// R and on a chain of K grant-only changes G1 <- G2 <- ... <- GK (placed by a delegated
/// ministry M, re-placing its own delegation: admitted, void), sent in reverse order so that
/// each G comes in only after the strangers' retries of the previous one. Every G's arrival
/// retries every stranger's change (R stays refused and unheld): about N*K/2 admissions, each with a
/// signature check and an Automerge encoding, against "at most about two per change".
#[test]
fn redteam10_grant_chain_retries_every_waiting_change_per_grant() {
    const N: usize = 200;
    const K: usize = 63;
    let doc = DocId::State(xaa());
    let mut w = World::new(doc.clone());
    let v = key(9);
    let v_actor = actor_bytes(&v.node_id(), &[0; 8]);
    // The State's node delegates V (scope all); V writes one change.
    w.write(1, None, vec![grant_op(&doc, &delegation(&v, Scope::ALL))]);
    let data = w.l.next_change(
        &v_actor,
        T0 + 20,
        vec![put(
            &doc,
            "targets",
            "V1/1",
            &target("V1", "marking"),
            vec![],
        )],
    );
    let c1 = w.admit(signed(&doc, &v, data));
    // V's next change R, on c1 (built before the revocation, sent later).
    let r_data = w.l.change_at(
        &[c1],
        &v_actor,
        T0 + 30,
        vec![put(
            &doc,
            "targets",
            "V2/1",
            &target("V2", "marking"),
            vec![],
        )],
    );
    let r = signed(&doc, &v, r_data);
    // The State's node revokes V, cut off at c1.
    let rev = SignedGrant::sign(
        &state_key(),
        Grant {
            kind: GrantKind::Revocation,
            principal: Principal::State(xaa()),
            node: v.node_id(),
            scope: None,
            expires: None,
            issued: crate::date::Date::from_unix_seconds(T0 + 40),
            key: state_key().node_id(),
            cutoff: w.l.cutoff_for(&v.node_id()),
            serial: 0,
            kept: Vec::new(),
            recovery: None,
        },
    );
    w.write(1, None, vec![grant_op(&doc, &rev)]);
    // Build R and the grant chain in a copy (the victim does not hold them yet).
    let mut b = w.l.clone();
    let t = w.trusted();
    b.set_sender(Some(w.all.k.node_id()));
    let r_hash = match b.admit(&r, Some(&t)) {
        Admitted::New(h) => h,
        other => panic!("relayed R: {other:?}"),
    };
    let m_grant = grant_op(
        &doc,
        &delegation(&w.marking.k, Scope::Areas(vec![Area::Marking])),
    );
    let mut gs: Vec<(ChangeHash, SignedChange)> = Vec::new();
    for i in 0..K {
        let deps: Vec<ChangeHash> = match gs.last() {
            Some((h, _)) => vec![*h],
            None => w.heads(),
        };
        let data = b.change_at(
            &deps,
            &w.marking.actor,
            T0 + 50 + i as i64,
            vec![m_grant.clone()],
        );
        let g = signed(&doc, &w.marking.k, data);
        let h = match b.admit(&g, Some(&t)) {
            Admitted::New(h) => h,
            other => panic!("grant {i}: {other:?}"),
        };
        gs.push((h, g));
    }
    let mut batch: Vec<SignedChange> = Vec::new();
    for s in 0..N {
        let k = NodeKey::from_seed(&[
            (s % 250) as u8,
            (s / 250) as u8 + 100,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
            7,
        ]);
        let mut deps: Vec<[u8; 32]> = gs.iter().map(|(h, _)| h.0).collect();
        deps.push(r_hash.0);
        deps.sort();
        let data = ChangeData {
            actor: actor_bytes(&k.node_id(), &[0; 8]),
            seq: 1,
            start_op: 1_000,
            time: T0 + 100,
            message: None,
            deps,
            ops: vec![put(
                &doc,
                "targets",
                &format!("S{s}/1"),
                &target("S", "marking"),
                vec![],
            )],
        };
        batch.push(signed(&doc, &k, data));
    }
    batch.push(r);
    batch.extend(gs.iter().rev().map(|(_, g)| g.clone()));
    let total = batch.len();
    let out =
        w.l.admit_batch(batch, Some(&t), Some(v.node_id()), |_| {
            Ok::<bool, ()>(false)
        })
        .unwrap();
    assert_eq!(out.held.len(), K, "the grants come in");
    assert!(
        out.refused.iter().any(|(h, _)| *h == Some(r_hash)),
        "R stays refused: {:?}",
        out.refused
    );
    // At most about two admissions per change (6,726 for 264 changes before the fix).
    assert!(
        out.attempts <= 3 * total,
        "{} admissions for {} changes",
        out.attempts,
        total
    );
}
