//! Red team, eighth round: attacks on commit 3ba86ec (`Ledger::speaks` with `later`,
//! `admit_batch`'s re-taking of revoked changes, `hard_cap`). Each test was written to pass
//! while its attack worked on 3ba86ec; each now asserts that it fails (every value of a
//! standing author counts for a withdrawal; a value written over a record the change found
//! speaks for nothing; a waiting change is tried again when its author may pass the screen).

use automerge::ChangeHash;
use serde_json::json;

use crate::authority::{Grant, GrantKind, Scope, SignedGrant};
use crate::change::{ChangeData, FlatAction, FlatOp, SignedChange};
use crate::doc::DocId;
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

fn doc() -> DocId {
    DocId::State(xaa())
}

fn state_key() -> NodeKey {
    key(40)
}

fn grant(kind: GrantKind, node: &NodeKey, scope: Option<Scope>) -> SignedGrant {
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
            cutoff: vec![],
            serial: 0,
            kept: Vec::new(),
            recovery: None,
        },
    )
}

fn grant_op(g: &SignedGrant) -> FlatOp {
    FlatOp {
        container: doc().kind().container(g.grant.kind.container()).unwrap(),
        key: g.storage_key(),
        action: FlatAction::Put {
            value: g.to_text(),
            preds: vec![],
        },
    }
}

fn put(container: &str, k: &str, value: serde_json::Value) -> FlatOp {
    FlatOp {
        container: doc().kind().container(container).unwrap(),
        key: k.into(),
        action: FlatAction::Put {
            value: value.to_string(),
            preds: vec![],
        },
    }
}

fn signed(k: &NodeKey, data: ChangeData) -> SignedChange {
    let h = data.to_automerge(&doc()).unwrap().hash();
    SignedChange {
        data,
        signature: sign_change(k, &doc(), &h).to_vec(),
    }
}

fn hash_of(c: &SignedChange) -> ChangeHash {
    c.data.to_automerge(&doc()).unwrap().hash()
}

fn actor(k: &NodeKey, suffix: u8) -> Vec<u8> {
    actor_bytes(&k.node_id(), &[suffix; 8])
}

/// Builds a change by `k` (actor suffix `suffix`) on exactly `deps`, admits it, settles.
fn write(
    l: &mut Ledger,
    k: &NodeKey,
    suffix: u8,
    deps: &[ChangeHash],
    ops: Vec<FlatOp>,
) -> SignedChange {
    let data = l.change_at(deps, &actor(k, suffix), T0 + 60, ops);
    let c = signed(k, data);
    let skey = state_key().node_id();
    assert!(
        matches!(l.admit(&c, Some(&skey)), Admitted::New(_)),
        "admitted"
    );
    l.settle(Some(&skey));
    c
}

fn verdict(l: &Ledger, c: &SignedChange) -> Verdict {
    l.verdict(&hash_of(c)).cloned().unwrap()
}

fn trusted() -> NodeId {
    state_key().node_id()
}

/// The State's own node (scope all) delegates itself, then a stockpile ministry `s` and a
/// marking ministry `m`. Returns the ledger and the hash of the second change.
fn bootstrap(n0: &NodeKey, others: &[(&NodeKey, Option<Scope>)]) -> (Ledger, ChangeHash) {
    let mut l = Ledger::new(&doc());
    let g = l.genesis_hash().unwrap();
    let c0 = write(
        &mut l,
        n0,
        0,
        &[g],
        vec![grant_op(&grant(
            GrantKind::Delegation,
            n0,
            Some(Scope::ALL),
        ))],
    );
    let ops = others
        .iter()
        .map(|(k, s)| grant_op(&grant(GrantKind::Delegation, k, s.clone())))
        .collect();
    let c1 = write(&mut l, n0, 0, &[hash_of(&c0)], ops);
    assert_eq!(verdict(&l, &c1), Verdict::Stands);
    (l, hash_of(&c1))
}

/// ATTACK (a): the marking ministry withdraws the stockpile ministry's progress report, and
/// the withdrawal STANDS.
///
/// The withdrawal's scope (`record_areas`, "retracted") drops every value at the withdrawn key
/// whose author `could_write` it, with the value's areas computed as seen from the
/// *withdrawal* (`cx` = the withdrawal). For a progress report those areas are
/// `target_areas(T5, cx)`, in which a first version of T5 not in the withdrawal's past always
/// speaks (`speaks(.., later = true)`), void or not. The report itself was judged with its own
/// `cx`, in which that first version, in its past and void, did not speak. So:
///
/// - F: the marking ministry writes a rival `targets/T5/1` (area marking) having seen the
///   stockpile T5/1: an edit in place, void; K: a standing marking record built on F, so
///   honest nodes' heads include F.
/// - P1: the stockpile ministry, honestly building on its heads (so on F), reports on T5:
///   stands (F is void in its past and says nothing).
/// - V: the marking ministry writes its own value at `progress/P1` (target T6, its own)
///   after seeing P1: an edit in place, void.
/// - Wd: on a past without F, V or P1 (another actor id of the marking node), the marking
///   ministry writes `retracted/progress/P1`. Seen from Wd, T5 is in two areas (F speaks:
///   later), so the stockpile ministry "could not write" P1 and P1 is skipped; V (concurrent,
///   so it speaks) is a marking report its author could write. Wd's areas: marking. It stands,
///   and the view lists the stockpile report as withdrawn.
#[test]
fn redteam8_marking_withdraws_stockpile_report() {
    let n0 = key(1);
    let s = key(2);
    let m = key(3);
    let (mut l, c1) = bootstrap(
        &n0,
        &[
            (&s, Some(Scope::Areas(vec![Area::Stockpile]))),
            (&m, Some(Scope::Areas(vec![Area::Marking]))),
        ],
    );
    // The stockpile ministry's target.
    let t5 = write(
        &mut l,
        &s,
        0,
        &[c1],
        vec![put(
            "targets",
            "T5/1",
            json!({"id": "T5", "version": 1, "area": "stockpile"}),
        )],
    );
    assert_eq!(verdict(&l, &t5), Verdict::Stands);
    // F: a rival first version written with the real one in view: void.
    let f = write(
        &mut l,
        &m,
        0,
        &[hash_of(&t5)],
        vec![put(
            "targets",
            "T5/1",
            json!({"id": "T5", "version": 1, "area": "marking"}),
        )],
    );
    assert!(matches!(verdict(&l, &f), Verdict::Void(_)));
    // K: the marking ministry's own target, standing, built on F.
    let k = write(
        &mut l,
        &m,
        0,
        &[hash_of(&f)],
        vec![put(
            "targets",
            "T6/1",
            json!({"id": "T6", "version": 1, "area": "marking"}),
        )],
    );
    assert_eq!(verdict(&l, &k), Verdict::Stands);
    // P1: the stockpile ministry's honest report, on its heads (which hold K, so F).
    let heads = l.settled().unwrap().heads.clone();
    assert!(heads.contains(&hash_of(&k)));
    let p1 = write(
        &mut l,
        &s,
        0,
        &heads,
        vec![put(
            "progress",
            "P1",
            json!({"id": "P1", "target": "T5", "target_version": 1}),
        )],
    );
    assert_eq!(
        verdict(&l, &p1),
        Verdict::Stands,
        "the honest report stands"
    );
    // V: the marking ministry's own value at progress/P1, after seeing P1: void.
    let v = write(
        &mut l,
        &m,
        0,
        &[hash_of(&p1)],
        vec![put(
            "progress",
            "P1",
            json!({"id": "P1", "target": "T6", "target_version": 1}),
        )],
    );
    assert!(matches!(verdict(&l, &v), Verdict::Void(_)));
    // Wd: the withdrawal, on the stockpile target only (another actor id of the marking node).
    let wd = write(
        &mut l,
        &m,
        1,
        &[hash_of(&t5)],
        vec![put("retracted", "progress/P1", json!({"reason": "gone"}))],
    );
    // The marking ministry's withdrawal of a stockpile report is void.
    assert!(matches!(verdict(&l, &wd), Verdict::Void(_)));
    assert_eq!(verdict(&l, &p1), Verdict::Stands);
    let view = l.settled().unwrap().view.clone();
    assert!(view["retracted"].get("progress/P1").is_none());
    assert_eq!(
        view["progress"]["P1"]["target"], "T5",
        "the report is still shown"
    );
    // Order does not matter: a second node fed the same changes in another causal order
    // agrees (the verdict is wrong everywhere alike).
    let mut other = Ledger::new(&doc());
    let all: Vec<SignedChange> = l.signed_changes().map(|(_, c)| c).collect();
    let mut pending: Vec<SignedChange> = all.into_iter().rev().collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|c| matches!(other.admit(c, Some(&trusted())), Admitted::Waiting(..)));
        assert!(pending.len() < before);
    }
    other.settle(Some(&trusted()));
    assert!(matches!(
        other.verdict(&hash_of(&wd)),
        Some(Verdict::Void(_))
    ));
}

/// ATTACK (b), beyond "Known limits": a *void* first version, written by the marking ministry
/// after it has seen everything (the stockpile T5/1, T5/2 and a progress report in its past),
/// retroactively voids the stockpile ministry's second version and report.
///
/// `speaks(at, cx, later = true)` lets a target's first version speak for every change not in
/// its past, whatever its own verdict; a first version that had the real one in its past is an
/// edit in place (void everywhere), yet it still adds its area to T5. The known limit speaks of
/// a rival first version written "on a past without it", which is a *dispute* (shown and
/// flagged); this one is void, no dispute is shown, and the stockpile records simply vanish.
/// (Before 3ba86ec a first version with T5/2 in its past did not speak for T5/2.)
#[test]
fn redteam8_void_later_first_version_voids_honest_versions() {
    let n0 = key(1);
    let s = key(2);
    let m = key(3);
    let (mut l, c1) = bootstrap(
        &n0,
        &[
            (&s, Some(Scope::Areas(vec![Area::Stockpile]))),
            (&m, Some(Scope::Areas(vec![Area::Marking]))),
        ],
    );
    let t1 = write(
        &mut l,
        &s,
        0,
        &[c1],
        vec![put(
            "targets",
            "T5/1",
            json!({"id": "T5", "version": 1, "area": "stockpile"}),
        )],
    );
    let t2 = write(
        &mut l,
        &s,
        0,
        &[hash_of(&t1)],
        vec![put(
            "targets",
            "T5/2",
            json!({"id": "T5", "version": 2, "area": "stockpile"}),
        )],
    );
    let p = write(
        &mut l,
        &s,
        0,
        &[hash_of(&t2)],
        vec![put(
            "progress",
            "P1",
            json!({"id": "P1", "target": "T5", "target_version": 2}),
        )],
    );
    assert_eq!(verdict(&l, &t2), Verdict::Stands);
    assert_eq!(verdict(&l, &p), Verdict::Stands);
    // The marking ministry, having seen all of it, writes T5/1 again: an edit in place.
    let f = write(
        &mut l,
        &m,
        0,
        &[hash_of(&p)],
        vec![put(
            "targets",
            "T5/1",
            json!({"id": "T5", "version": 1, "area": "marking"}),
        )],
    );
    assert!(
        matches!(verdict(&l, &f), Verdict::Void(_)),
        "the rival is void"
    );
    // ...and the stockpile ministry's version 2 and its report, both in its past, stand.
    assert_eq!(verdict(&l, &t2), Verdict::Stands);
    assert_eq!(verdict(&l, &p), Verdict::Stands);
    assert_eq!(verdict(&l, &t1), Verdict::Stands);
    let settled = l.settled().unwrap();
    assert!(settled.view["targets"].get("T5/2").is_some());
    assert!(settled.view["progress"].get("P1").is_some());
}

/// ATTACK (c)/(b) on `admit_batch`: one batch, two orders, two results.
///
/// A revoked node R relays (it is the sender, so its own change R1 is refused as revoked) a
/// batch holding R1, an honest change W of a newly delegated ministry A built on R1 and on
/// D, the change placing A's delegation. In causal order [D, R1, W], W passes the screen,
/// marks R1 as needed, R1 is re-taken and everything comes in. In the order [R1, W, D], W
/// is tried before A's delegation is held: `admit_inner` returns `Waiting` *before* marking
/// its missing dependencies as wanted (the screen fails), so the re-take of R1 that W's
/// arrival triggers is refused again, for good within the batch (`retaken`); D then wakes
/// only one of W's two missing dependencies, and W is left waiting. ARCHITECTURE.md: "a
/// revoked change refused before a later change showed it needed it is taken again, once, as
/// soon as that change waits for it ... whatever order the batch came in".
#[test]
fn redteam8_batch_order_leaves_honest_change_waiting() {
    let n0 = key(1);
    let r = key(2);
    let a = key(3);
    let (mut base, c1) = bootstrap(&n0, &[(&r, Some(Scope::ALL))]);
    let skey = trusted();
    // R writes R1 (before it is revoked); A's delegation D; A's change W on D and R1.
    let mut full = base.clone();
    let r1 = write(
        &mut full,
        &r,
        0,
        &[c1],
        vec![put("readers", "x", json!(true))],
    );
    let d = write(
        &mut full,
        &n0,
        0,
        &[c1],
        vec![grant_op(&grant(
            GrantKind::Delegation,
            &a,
            Some(Scope::ALL),
        ))],
    );
    let w = write(
        &mut full,
        &a,
        0,
        &[hash_of(&d), hash_of(&r1)],
        vec![put("readers", "y", json!(true))],
    );
    // The victim holds the revocation of R (keeping nothing) but none of R1, D, W.
    let rv = write(
        &mut base,
        &n0,
        0,
        &[c1],
        vec![grant_op(&grant(GrantKind::Revocation, &r, None))],
    );
    assert_eq!(verdict(&base, &rv), Verdict::Stands);
    let run = |order: Vec<SignedChange>| {
        let mut l = base.clone();
        let b = l
            .admit_batch(order, Some(&skey), Some(r.node_id()), |_| {
                Ok::<_, std::convert::Infallible>(false)
            })
            .unwrap();
        (l, b)
    };
    let (l1, b1) = run(vec![d.clone(), r1.clone(), w.clone()]);
    let (l2, b2) = run(vec![r1.clone(), w.clone(), d.clone()]);
    // Causal order: all three held.
    assert_eq!(b1.held.len(), 3);
    assert!(l1.has(&hash_of(&w)) && l1.has(&hash_of(&r1)));
    assert!(b1.waiting.is_empty());
    // The other order: only D; R1 refused, the honest W left waiting for it.
    assert_eq!(b2.held.len(), 3, "{:?}", b2.refused);
    assert!(l2.has(&hash_of(&w)) && l2.has(&hash_of(&r1)));
    assert!(b2.waiting.is_empty() && b2.refused.is_empty());
}
