//! Red team, eleventh round: attacks on the gate at 0730edd (`Ledger::over_found`,
//! `Ledger::speaks`, and `admit_batch`'s early retry). Each test was written to pass while
//! its attack worked there; each now asserts that it fails (in a draft, a put over a value
//! deleted in its own past speaks, a correction speaks only if its author could stand over
//! what it names; a change waiting for a revoked change refused later is tried again, once).

use automerge::ChangeHash;

use crate::authority::{Grant, GrantKind, Scope, SignedGrant};
use crate::change::{ChangeData, FlatAction, FlatOp, OpRef, SignedChange};
use crate::doc::DocId;
use crate::id::{Principal, StateCode};
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

/// The State key.
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

fn signed(doc: &DocId, k: &NodeKey, data: ChangeData) -> SignedChange {
    let h = data
        .to_automerge(doc)
        .map(|c| c.hash())
        .unwrap_or(ChangeHash([0; 32]));
    SignedChange {
        data,
        signature: sign_change(k, doc, &h).to_vec(),
    }
}

/// A ledger with three delegated nodes: the State's own (scope all), a marking ministry
/// (the attacker) and a stockpile ministry.
struct World {
    doc: DocId,
    l: Ledger,
    all: NodeKey,
    marking: NodeKey,
    stockpile: NodeKey,
}

impl World {
    fn new(doc: DocId) -> World {
        let all = key(1);
        let marking = key(2);
        let stockpile = key(3);
        let mut w = World {
            doc,
            l: Ledger::new(&DocId::Draft(xaa())),
            all,
            marking,
            stockpile,
        };
        w.l = Ledger::new(&w.doc);
        w.settle();
        // Each node places its own delegation (a grant-only change of its own).
        for (k, scope) in [
            (key(1), Scope::ALL),
            (key(2), Scope::Areas(vec![Area::Marking])),
            (key(3), Scope::Areas(vec![Area::Stockpile])),
        ] {
            let k = &k;
            let g = delegation(k, scope);
            let op = FlatOp {
                container: w.doc.kind().container("delegations").unwrap(),
                key: g.storage_key(),
                action: FlatAction::Put {
                    value: g.to_text(),
                    preds: vec![],
                },
            };
            let a = actor_bytes(&k.node_id(), &[0; 8]);
            let d = w.l.next_change(&a, T0, vec![op]);
            let k = NodeKey::from_seed(&k.seed());
            let h = w.admit(&k, d);
            assert!(w.stands(&h));
        }
        w
    }

    fn settle(&mut self) {
        self.l.settle(Some(&state_key().node_id()));
    }

    fn admit(&mut self, k: &NodeKey, d: ChangeData) -> ChangeHash {
        let c = signed(&self.doc, k, d);
        let h = match self.l.admit(&c, Some(&state_key().node_id())) {
            Admitted::New(h) => h,
            other => panic!("not admitted: {other:?}"),
        };
        self.settle();
        h
    }

    fn stands(&self, h: &ChangeHash) -> bool {
        matches!(self.l.verdict(h), Some(Verdict::Stands))
    }

    fn c(&self, name: &str) -> u8 {
        self.doc.kind().container(name).unwrap()
    }

    /// A change by `k` (actor suffix `suffix`) on exactly `deps` (the heads if empty).
    fn write(
        &mut self,
        k: &NodeKey,
        suffix: u8,
        deps: &[ChangeHash],
        ops: Vec<FlatOp>,
    ) -> ChangeHash {
        let actor = actor_bytes(&k.node_id(), &[suffix; 8]);
        let d = if deps.is_empty() {
            self.l.next_change(&actor, T0 + 10, ops)
        } else {
            self.l.change_at(deps, &actor, T0 + 10, ops)
        };
        let k = NodeKey::from_seed(&k.seed());
        self.admit(&k, d)
    }

    fn heads(&self) -> Vec<ChangeHash> {
        self.l.settled().unwrap().heads.clone()
    }

    fn put(
        &self,
        container: &str,
        key: &str,
        value: serde_json::Value,
        preds: Vec<OpRef>,
    ) -> FlatOp {
        FlatOp {
            container: self.c(container),
            key: key.into(),
            action: FlatAction::Put {
                value: value.to_string(),
                preds,
            },
        }
    }

    fn del(&self, container: &str, key: &str, preds: Vec<OpRef>) -> FlatOp {
        FlatOp {
            container: self.c(container),
            key: key.into(),
            action: FlatAction::Delete { preds },
        }
    }

    fn live(&self, container: &str, key: &str) -> Vec<OpRef> {
        self.l.live_refs(container, key)
    }
}

fn target(id: &str, version: u32, area: &str) -> serde_json::Value {
    serde_json::json!({"id": id, "version": version, "area": area})
}

/// ATTACK 1 (write, property a). In a draft, a marking ministry writes version 2 of (and a
/// progress report on, and a withdrawal of) a target that is, in the set, a stockpile target.
///
/// The marking ministry creates draft target T (marking), then deletes it (its own record,
/// in scope). The stockpile ministry (or the State's node) creates T afresh: a put naming no
/// predecessor, since nothing is live. The marking ministry, with a second actor id, builds
/// on the state where only its own first T/1 is there and writes T/2, a report on T and
/// withdrawn/T. `over_found` counts as "replaced" only the standing operations *in the
/// judged change's past*: the delete is not there, so the honest fresh T/1 looks like a
/// put "over" the marking T/1 the change found, naming no predecessor, and is silenced.
/// `target_areas` then hears only the deleted marking T/1: all three changes stand.
#[test]
fn redteam11_draft_fresh_put_after_unseen_delete_is_silenced() {
    let mut w = World::new(DocId::Draft(xaa()));
    let marking = NodeKey::from_seed(&w.marking.seed());
    let stockpile = NodeKey::from_seed(&w.stockpile.seed());
    // 1. The marking ministry's own draft target T (actor 0).
    let op = w.put("targets", "T/1", target("T", 1, "marking"), vec![]);
    let m = w.write(&marking, 0, &[], vec![op]);
    assert!(w.stands(&m));
    // 2. It deletes it (in scope: the value it deletes is marking).
    let op = w.del("targets", "T/1", w.live("targets", "T/1"));
    let d = w.write(&marking, 0, &[], vec![op]);
    assert!(w.stands(&d));
    // 3. The stockpile ministry creates T afresh (honest: nothing is live at T/1).
    assert!(w.live("targets", "T/1").is_empty());
    let op = w.put("targets", "T/1", target("T", 1, "stockpile"), vec![]);
    let s = w.write(&stockpile, 0, &[], vec![op]);
    assert!(w.stands(&s), "the stockpile ministry's T/1 stands");
    // 4. The marking ministry, on a second actor id, builds on `m` alone.
    let ops = vec![
        w.put("targets", "T/2", target("T", 2, "marking"), vec![]),
        w.put(
            "progress",
            "T/2027-06-30",
            serde_json::json!({"id": "T/2027-06-30", "target": "T", "target_version": 1}),
            vec![],
        ),
        w.put(
            "withdrawn",
            "T",
            serde_json::json!({"id": "T", "reason": "x"}),
            vec![],
        ),
    ];
    let evil = w.write(&marking, 1, &[m], ops);
    // The marking ministry's writes about a stockpile target are void.
    assert!(
        !w.stands(&evil),
        "marking ministry's T/2, report and withdrawal of a stockpile target stand"
    );
    let view = &w.l.settled().unwrap().view;
    assert_eq!(view["targets"]["T/1"], target("T", 1, "stockpile"));
    assert!(view["targets"].get("T/2").is_none());
    assert!(view["withdrawn"].get("T").is_none());
    // The same write by the marking ministry on the heads (seeing the fresh T/1) is void:
    // only the chosen past made it stand.
    let op = w.put("targets", "T/3", target("T", 3, "marking"), vec![]);
    let honest_view = w.write(&marking, 2, &[], vec![op]);
    assert!(!w.stands(&honest_view));
}

/// ATTACK 2 (deny, property b). In a draft, a marking ministry retroactively voids the
/// stockpile ministry's T/2 (and a report on T) by writing, after seeing them, a void
/// "correction" of the stockpile T/1 naming it as predecessor. 0730edd made every put with
/// predecessors in a Working container speak (`over_found` returns false at once), whatever
/// its own verdict; `target_areas` judges with `later = true`, so a first version written
/// after the judged change, with it in its past, speaks: the void marking T/1 adds marking to
/// T's areas, and the stockpile ministry's changes are out of scope. This is what fde318f
/// fixed for State documents ("a void rival that named the record as predecessor"), reopened
/// for drafts.
#[test]
fn redteam11_draft_void_correction_voids_published_version_retroactively() {
    let mut w = World::new(DocId::Draft(xaa()));
    let marking = NodeKey::from_seed(&w.marking.seed());
    let stockpile = NodeKey::from_seed(&w.stockpile.seed());
    let op = w.put("targets", "T/1", target("T", 1, "stockpile"), vec![]);
    let s1 = w.write(&stockpile, 0, &[], vec![op]);
    let op = w.put("targets", "T/2", target("T", 2, "stockpile"), vec![]);
    let s2 = w.write(&stockpile, 0, &[], vec![op]);
    let op = w.put(
        "progress",
        "T/2027-06-30",
        serde_json::json!({"id": "T/2027-06-30", "target": "T", "target_version": 2}),
        vec![],
    );
    let p = w.write(&stockpile, 0, &[], vec![op]);
    assert!(w.stands(&s1) && w.stands(&s2) && w.stands(&p));
    // The attacker, having seen everything, "corrects" the stockpile T/1 into marking.
    let op = w.put(
        "targets",
        "T/1",
        target("T", 1, "marking"),
        w.live("targets", "T/1"),
    );
    let x = w.write(&marking, 0, &[], vec![op]);
    assert!(
        !w.stands(&x),
        "the correction itself is void (out of scope)"
    );
    // The honest stockpile T/2 and report, written before it, still stand.
    assert!(w.stands(&s1));
    assert!(w.stands(&s2), "stockpile T/2 voided by a void correction");
    assert!(w.stands(&p), "stockpile report voided by a void correction");
    // And the stockpile ministry writes its later versions.
    let op = w.put("targets", "T/3", target("T", 3, "stockpile"), vec![]);
    let s3 = w.write(&stockpile, 0, &[], vec![op]);
    assert!(w.stands(&s3));
}

fn grant_change_op(doc: &DocId, g: &SignedGrant) -> FlatOp {
    FlatOp {
        container: doc.kind().container(g.grant.kind.container()).unwrap(),
        key: g.storage_key(),
        action: FlatAction::Put {
            value: g.to_text(),
            preds: vec![],
        },
    }
}

/// ATTACK 3 (delay, property b: an honest change left out depending on batch order). The
/// early retry fires only when the grant naming the waiting change's author arrives *after*
/// the revoked change it lacks was refused. A revoked node M relays, in one batch, its own
/// change R (refused: M sends it itself), an honest node X's own delegation G, and X's change
/// W built on G and R (X got R before the revocation). In the order W, G, R: W waits without
/// saying what it needs (X does not pass the screen yet); G arrives, but R is not refused yet
/// so no early retry; R is then refused and nothing tries W again. In the order G, W, R (or
/// W, R, G) W and R come in. The honest W is left waiting (and R refused for this batch) by
/// the order alone.
#[test]
fn redteam11_early_retry_misses_revoked_change_refused_after_grant() {
    let mut w = World::new(DocId::State(xaa()));
    let doc = w.doc.clone();
    let base: Vec<SignedChange> = w.l.signed_changes().map(|(_, c)| c).collect();
    let base_heads = w.heads();
    let marking = NodeKey::from_seed(&w.marking.seed());
    let x = key(5);
    // R: M's change, written before its revocation.
    let op = w.put("targets", "M/1", target("M", 1, "marking"), vec![]);
    let r = w.write(&marking, 0, &base_heads, vec![op]);
    // The revocation of M keeping nothing, by the State's node, on the base.
    let rev = SignedGrant::sign(
        &state_key(),
        Grant {
            kind: GrantKind::Revocation,
            principal: Principal::State(xaa()),
            node: marking.node_id(),
            scope: None,
            expires: None,
            issued: crate::date::Date::from_unix_seconds(T0 + 100),
            key: state_key().node_id(),
            cutoff: vec![],
            serial: 0,
            kept: Vec::new(),
            recovery: None,
        },
    );
    let all = NodeKey::from_seed(&w.all.seed());
    let op = grant_change_op(&doc, &rev);
    let revh = w.write(&all, 0, &base_heads, vec![op]);
    // G: X places its own delegation (scope all), on the base.
    let op = grant_change_op(&doc, &delegation(&x, Scope::ALL));
    let g = w.write(&x, 0, &base_heads, vec![op]);
    // W: X's change on G and R.
    let op = w.put("targets", "U/1", target("U", 1, "stockpile"), vec![]);
    let wh = w.write(&x, 0, &[g, r], vec![op]);
    let get = |h: &ChangeHash| w.l.signed(h).unwrap();
    let (rc, gc, wc, revc) = (get(&r), get(&g), get(&wh), get(&revh));
    let sk = state_key().node_id();
    let fresh = || {
        let mut l = Ledger::new(&doc);
        for c in base.iter().chain([&revc]) {
            let _ = l.admit(c, Some(&sk));
        }
        l.settle(Some(&sk));
        l
    };
    let run = |order: Vec<SignedChange>| {
        let mut l = fresh();
        let b = l
            .admit_batch(order, Some(&sk), Some(marking.node_id()), |_| {
                Ok::<_, std::convert::Infallible>(false)
            })
            .unwrap();
        (l.has(&wh), l.has(&r), b.waiting.len())
    };
    let good = run(vec![gc.clone(), wc.clone(), rc.clone()]);
    let good2 = run(vec![wc.clone(), rc.clone(), gc.clone()]);
    let bad = run(vec![wc.clone(), gc.clone(), rc.clone()]);
    assert_eq!(good, (true, true, 0), "order G, W, R: W and R come in");
    assert_eq!(good2, (true, true, 0), "order W, R, G: W and R come in");
    // The attack: the same batch in order W, G, R leaves the honest W waiting.
    assert_eq!(bad, (true, true, 0), "order W, G, R: W and R come in");
}
