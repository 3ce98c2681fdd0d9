//! Sixth red-team round: attacks on the fifth round's fixes (`set_sender` / `revoked_for_good`,
//! `counts_against_peer`, `readmit_revoked`, the `forcing` set, `written_over`).
//!
//! Each test was written by the red team to pass while its attack succeeded; each now asserts
//! that the attack fails (the fixes: a void value the change has seen speaks for no record's
//! areas, `Ledger::speaks`; a revoked node's changes refused whoever relays them; one batch
//! admitted in work proportional to it, `Ledger::admit_batch`; past the hard twin cap,
//! relayed evidence still comes in).

use automerge::ChangeHash;
use serde_json::json;

use crate::authority::{Cutoff, Grant, GrantKind, Scope, SignedGrant};
use crate::change::{FlatAction, FlatOp, SignedChange};
use crate::date::Date;
use crate::doc::DocId;
use crate::id::{NodeId, Principal, StateCode};
use crate::ledger::{Admitted, Ledger, Rejection, Verdict, actor_bytes};
use crate::model::{Area, Progress};
use crate::sign::{NodeKey, sign_change};

const T0: i64 = 1_760_000_000;

fn xaa() -> StateCode {
    StateCode::from_static("XAA")
}

fn key(seed: u8) -> NodeKey {
    NodeKey::from_seed(&[seed; 32])
}

/// A writer: a node key and the actor it writes with.
struct W {
    key: NodeKey,
    actor: Vec<u8>,
}

impl W {
    fn new(seed: u8) -> W {
        let key = key(seed);
        let actor = actor_bytes(&key.node_id(), &[seed; 8]);
        W { key, actor }
    }
    fn id(&self) -> NodeId {
        self.key.node_id()
    }
    fn sign(&self, doc: &DocId, data: crate::change::ChangeData) -> SignedChange {
        let hash = data.to_automerge(doc).expect("encodes").hash();
        SignedChange {
            signature: sign_change(&self.key, doc, &hash).to_vec(),
            data,
        }
    }
    /// A change on exactly `deps`.
    fn at(&self, l: &Ledger, deps: &[ChangeHash], ops: Vec<FlatOp>) -> SignedChange {
        self.sign(l.doc(), l.change_at(deps, &self.actor, T0, ops))
    }
    /// A change as an honest node makes it: on the heads of what stands.
    fn next(&self, l: &Ledger, ops: Vec<FlatOp>) -> SignedChange {
        self.sign(l.doc(), l.next_change(&self.actor, T0, ops))
    }
}

fn hash_of(doc: &DocId, c: &SignedChange) -> ChangeHash {
    c.data.to_automerge(doc).expect("encodes").hash()
}

fn put(l: &Ledger, container: &str, key: &str, value: &serde_json::Value) -> FlatOp {
    FlatOp {
        container: l.doc().kind().container(container).expect("container"),
        key: key.to_string(),
        action: FlatAction::Put {
            value: value.to_string(),
            preds: Vec::new(),
        },
    }
}

fn delegation(state_key: &NodeKey, node: &NodeId, scope: Option<Scope>) -> SignedGrant {
    SignedGrant::sign(
        state_key,
        Grant {
            kind: GrantKind::Delegation,
            principal: Principal::State(xaa()),
            node: *node,
            scope,
            expires: None,
            issued: Date::new(2025, 1, 1).expect("date"),
            key: state_key.node_id(),
            cutoff: Vec::new(),
            serial: 0,
            kept: Vec::new(),
            recovery: None,
        },
    )
}

fn revocation(state_key: &NodeKey, node: &NodeId, cutoff: Vec<Cutoff>) -> SignedGrant {
    SignedGrant::sign(
        state_key,
        Grant {
            kind: GrantKind::Revocation,
            principal: Principal::State(xaa()),
            node: *node,
            scope: None,
            expires: None,
            issued: Date::new(2025, 6, 1).expect("date"),
            key: state_key.node_id(),
            cutoff,
            serial: 0,
            kept: Vec::new(),
            recovery: None,
        },
    )
}

fn grant_op(l: &Ledger, g: &SignedGrant) -> FlatOp {
    FlatOp {
        container: l
            .doc()
            .kind()
            .container(g.grant.kind.container())
            .expect("container"),
        key: g.storage_key(),
        action: FlatAction::Put {
            value: g.to_text(),
            preds: Vec::new(),
        },
    }
}

fn admit_new(l: &mut Ledger, c: &SignedChange, k: &NodeId) -> ChangeHash {
    match l.admit(c, Some(k)) {
        Admitted::New(h) => h,
        other => panic!("expected New, got {other:?}"),
    }
}

fn target(id: &str, version: u32, area: Area) -> serde_json::Value {
    json!({"id": id, "state": "XAA", "version": version, "area": area, "title": format!("target {id}")})
}

/// A State document with the State's key `sk`, and two scoped ministries each placing its
/// own delegation: `m` (marking) and `m2` (stockpile).
fn two_ministries(sk: &NodeKey, m: &W, m2: &W) -> (Ledger, NodeId) {
    let k = sk.node_id();
    let mut l = Ledger::new(&DocId::State(xaa()));
    let g = l.genesis_hash().expect("genesis");
    let d2 = delegation(sk, &m2.id(), Some(Scope::Areas(vec![Area::Stockpile])));
    let c = m2.at(&l, &[g], vec![grant_op(&l, &d2)]);
    admit_new(&mut l, &c, &k);
    let d = delegation(sk, &m.id(), Some(Scope::Areas(vec![Area::Marking])));
    let c = m.at(&l, &[g], vec![grant_op(&l, &d)]);
    admit_new(&mut l, &c, &k);
    l.settle(Some(&k));
    (l, k)
}

/// The squat: a change of the marking ministry `m` that puts `squat` (a value whose area is
/// its own) at a key it predicts an honest ministry will use, and that is void as a whole
/// (a second operation is out of its scope), so no honest node ever sees the squatted key as
/// taken. Then a standing change of `m` built on it, so the void squat sits in the causal past
/// of whatever honest nodes write next.
fn squat(l: &mut Ledger, k: &NodeId, m: &W, container: &str, key: &str, value: serde_json::Value) {
    let heads = l.settle(Some(k)).heads.clone();
    let x = m.at(
        l,
        &heads,
        vec![
            put(l, container, key, &value),
            // Out of the marking ministry's scope: voids the whole change.
            put(
                l,
                "needs",
                "R-squat",
                &json!({"id": "R-squat", "area": "stockpile"}),
            ),
        ],
    );
    let xh = admit_new(l, &x, k);
    // A standing change of the ministry, on the void squat.
    let s = m.at(
        l,
        &[xh],
        vec![put(
            l,
            "targets",
            "T-own/1",
            &target("T-own", 1, Area::Marking),
        )],
    );
    let sh = admit_new(l, &s, k);
    l.settle(Some(k));
    assert!(
        matches!(l.verdict(&xh), Some(Verdict::Void(_))),
        "the squat is void"
    );
    assert_eq!(
        l.verdict(&sh),
        Some(&Verdict::Stands),
        "the change on it stands"
    );
    // Honest nodes see nothing at the squatted key.
    assert!(l.live_refs(container, key).is_empty());
    assert!(l.settle(Some(k)).heads.contains(&sh));
}

/// ATTACK 5a (written_over, targets): a marking ministry takes over a stockpile ministry's
/// target.
///
/// `written_over` says a put with no predecessors "speaks for no record's areas" if a put at
/// the same key is in its causal past that nothing there replaced — *whatever the verdicts*.
/// The marking ministry M squats `targets/T9/1` with a void change (the squat's other
/// operation is out of its scope) and builds one standing change on it. The honest stockpile
/// ministry M2 then writes target T9 (a predictable id) as any honest node does: on the heads
/// of what stands, with no predecessor (nothing is live at the key). Its first version is now
/// "written over" and is left out of `target_areas`; the squat's op is not (its author could
/// write a marking record). So T9's areas are {marking}, and M writes T9 version 2 (retagged
/// marking) and withdraws T9: both stand. Breaks (a): a change written by someone not allowed
/// to write it stands; and (b): the honest ministry's target is taken over / withdrawn.
#[test]
fn redteam6_void_squat_makes_honest_first_version_written_over_and_lets_other_area_take_it() {
    let sk = key(1);
    let m = W::new(10); // marking
    let m2 = W::new(20); // stockpile
    let (mut l, k) = two_ministries(&sk, &m, &m2);
    squat(
        &mut l,
        &k,
        &m,
        "targets",
        "T9/1",
        target("T9", 1, Area::Marking),
    );

    // The honest stockpile ministry writes its target T9, as its node would.
    assert!(l.live_refs("targets", "T9/1").is_empty());
    let f = m2.next(
        &l,
        vec![put(
            &l,
            "targets",
            "T9/1",
            &target("T9", 1, Area::Stockpile),
        )],
    );
    let fh = admit_new(&mut l, &f, &k);
    let view = l.settle(Some(&k)).view.clone();
    assert_eq!(l.verdict(&fh), Some(&Verdict::Stands));
    assert_eq!(view["targets"]["T9/1"]["area"], "stockpile");

    // Control: without the squat, M could neither withdraw T9 nor write its next version.
    // (Checked on a fresh ledger holding the same honest target.)
    {
        let (mut c, k) = two_ministries(&sk, &m, &m2);
        let f = m2.next(
            &c,
            vec![put(
                &c,
                "targets",
                "T9/1",
                &target("T9", 1, Area::Stockpile),
            )],
        );
        admit_new(&mut c, &f, &k);
        c.settle(Some(&k));
        let w = m.next(
            &c,
            vec![put(&c, "withdrawn", "T9", &json!({"date": "2025-07-01"}))],
        );
        let wh = admit_new(&mut c, &w, &k);
        c.settle(Some(&k));
        assert!(matches!(c.verdict(&wh), Some(Verdict::Void(_))));
    }

    // The honest stockpile ministry still versions and withdraws its own target: the void
    // squat in its past speaks for nothing.
    {
        let mut c = l.clone();
        let own = m2.next(
            &c,
            vec![put(
                &c,
                "targets",
                "T9/2",
                &target("T9", 2, Area::Stockpile),
            )],
        );
        let oh = admit_new(&mut c, &own, &k);
        c.settle(Some(&k));
        assert_eq!(
            c.verdict(&oh),
            Some(&Verdict::Stands),
            "M2's own version 2 stands"
        );
        let own = m2.next(
            &c,
            vec![put(&c, "withdrawn", "T9", &json!({"date": "2025-07-02"}))],
        );
        let oh = admit_new(&mut c, &own, &k);
        c.settle(Some(&k));
        assert_eq!(
            c.verdict(&oh),
            Some(&Verdict::Stands),
            "M2's own withdrawal stands"
        );
    }

    // The marking ministry tries to rewrite T9 as a marking target, and to withdraw it.
    let v2 = m.next(
        &l,
        vec![put(&l, "targets", "T9/2", &target("T9", 2, Area::Marking))],
    );
    let v2h = admit_new(&mut l, &v2, &k);
    l.settle(Some(&k));
    let wd = m.next(
        &l,
        vec![put(&l, "withdrawn", "T9", &json!({"date": "2025-07-01"}))],
    );
    let wdh = admit_new(&mut l, &wd, &k);
    let s = l.settle(Some(&k));
    let view = s.view.clone();
    assert!(
        matches!(l.verdict(&v2h), Some(Verdict::Void(_))),
        "M's version 2 of T9 is void"
    );
    assert!(
        matches!(l.verdict(&wdh), Some(Verdict::Void(_))),
        "M's withdrawal of T9 is void"
    );
    assert!(view["targets"].get("T9/2").is_none());
    assert!(view["withdrawn"].get("T9").is_none());
    assert_eq!(view["targets"]["T9/1"]["area"], "stockpile");
    assert_eq!(l.verdict(&fh), Some(&Verdict::Stands));
}

/// ATTACK 5b (written_over, retracted/progress/ID): a marking ministry withdraws a stockpile
/// ministry's progress report.
///
/// Progress ids are `TARGET/DATE` (`Progress::bare`), so predictable. M (marking) squats
/// `progress/T2/2025-12-31` with a void change whose value reports on its own marking target
/// (so `could_write` holds for it), and builds a standing change on it. The honest stockpile
/// ministry M2 publishes its report `T2/2025-12-31` on the heads of what stands, with no
/// predecessor. In `record_areas("retracted", …)` M2's report is skipped as `written_over`,
/// and the squat alone decides: {marking}. M's `retracted/progress/T2/2025-12-31` stands and
/// every reader leaves M2's report out. Breaks (a) and (b).
#[test]
fn redteam6_void_squat_lets_other_area_withdraw_honest_progress_report() {
    let sk = key(2);
    let m = W::new(11); // marking
    let m2 = W::new(21); // stockpile
    let (mut l, k) = two_ministries(&sk, &m, &m2);
    // Each ministry's own target.
    let t1 = m.next(
        &l,
        vec![put(&l, "targets", "T1/1", &target("T1", 1, Area::Marking))],
    );
    admit_new(&mut l, &t1, &k);
    l.settle(Some(&k));
    let t2 = m2.next(
        &l,
        vec![put(
            &l,
            "targets",
            "T2/1",
            &target("T2", 1, Area::Stockpile),
        )],
    );
    admit_new(&mut l, &t2, &k);
    l.settle(Some(&k));

    let id = "T2/2025-12-31";
    let mut fake = Progress::bare("T1", Date::new(2025, 12, 31).expect("date"), Some(1.0));
    fake.id = id.to_string();
    squat(
        &mut l,
        &k,
        &m,
        "progress",
        id,
        serde_json::to_value(&fake).expect("json"),
    );

    // The honest report of M2.
    let report = Progress::bare("T2", Date::new(2025, 12, 31).expect("date"), Some(40.0));
    assert_eq!(report.id, id);
    assert!(l.live_refs("progress", id).is_empty());
    let p = m2.next(
        &l,
        vec![put(
            &l,
            "progress",
            id,
            &serde_json::to_value(&report).expect("json"),
        )],
    );
    let ph = admit_new(&mut l, &p, &k);
    l.settle(Some(&k));
    assert_eq!(l.verdict(&ph), Some(&Verdict::Stands));

    // Control: on a ledger holding the same report without the squat, the marking
    // ministry's withdrawal is void (out of scope).
    let key_r = format!("progress/{id}");
    {
        let (mut c, k) = two_ministries(&sk, &m, &m2);
        let t2 = m2.next(
            &c,
            vec![put(
                &c,
                "targets",
                "T2/1",
                &target("T2", 1, Area::Stockpile),
            )],
        );
        admit_new(&mut c, &t2, &k);
        c.settle(Some(&k));
        let p = m2.next(
            &c,
            vec![put(
                &c,
                "progress",
                id,
                &serde_json::to_value(&report).expect("json"),
            )],
        );
        admit_new(&mut c, &p, &k);
        c.settle(Some(&k));
        let w = m.next(
            &c,
            vec![put(
                &c,
                "retracted",
                &key_r,
                &json!({"date": "2026-01-05", "reason": "withdrawn by marking"}),
            )],
        );
        let wh = admit_new(&mut c, &w, &k);
        c.settle(Some(&k));
        assert!(matches!(c.verdict(&wh), Some(Verdict::Void(_))));
    }

    // The honest ministry still withdraws its own report.
    {
        let mut c = l.clone();
        let w = m2.next(
            &c,
            vec![put(
                &c,
                "retracted",
                &key_r,
                &json!({"date": "2026-01-04", "reason": "wrong figure"}),
            )],
        );
        let wh = admit_new(&mut c, &w, &k);
        c.settle(Some(&k));
        assert_eq!(
            c.verdict(&wh),
            Some(&Verdict::Stands),
            "M2's own withdrawal stands"
        );
    }

    // The marking ministry cannot withdraw it.
    let w = m.next(
        &l,
        vec![put(
            &l,
            "retracted",
            &key_r,
            &json!({"date": "2026-01-05", "reason": "withdrawn by marking"}),
        )],
    );
    let wh = admit_new(&mut l, &w, &k);
    let view = l.settle(Some(&k)).view.clone();
    assert!(
        matches!(l.verdict(&wh), Some(Verdict::Void(_))),
        "M's withdrawal is void"
    );
    let data = crate::doc::StateData::from_json(&view);
    assert!(!data.withdrawn_progress.contains_key(id));
    assert!(
        data.progress.contains_key(id),
        "the stockpile report still counts"
    );
}

/// The change after `prev` on its actor, built by hand (the ledger does not hold `prev`).
fn after(w: &W, doc: &DocId, prev: &SignedChange, ops: Vec<FlatOp>) -> SignedChange {
    let d = &prev.data;
    let data = crate::change::ChangeData {
        actor: w.actor.clone(),
        seq: d.seq + 1,
        start_op: d.start_op + d.ops.len() as u64,
        time: T0,
        message: None,
        deps: vec![hash_of(doc, prev).0],
        ops,
    };
    w.sign(doc, data)
}

/// A published State document (readers `*`) with the State's node `s` (scope all, which
/// placed its own delegation and the share list) and a ministry `r` (scope all) that wrote
/// one record. Returns the host, the document and the key.
fn public_doc(
    sk: &NodeKey,
    s: &W,
    r: &W,
) -> (crate::testing::MemHost, DocId, NodeId, SignedChange) {
    let k = sk.node_id();
    let doc = DocId::State(xaa());
    let mut host = crate::testing::host(None, &[(Principal::State(xaa()), k)]);
    let mut l = Ledger::new(&doc);
    let g = l.genesis_hash().expect("genesis");
    let ds = delegation(sk, &s.id(), None);
    let c = s.at(&l, &[g], vec![grant_op(&l, &ds)]);
    admit_new(&mut l, &c, &k);
    l.settle(Some(&k));
    let c = s.next(&l, vec![put(&l, "readers", "*", &json!(true))]);
    admit_new(&mut l, &c, &k);
    let dr = delegation(sk, &r.id(), None);
    let c = r.at(&l, &[g], vec![grant_op(&l, &dr)]);
    admit_new(&mut l, &c, &k);
    l.settle(Some(&k));
    let last = r.next(
        &l,
        vec![put(
            &l,
            "needs",
            "R1",
            &json!({"id": "R1", "area": "marking"}),
        )],
    );
    admit_new(&mut l, &last, &k);
    l.settle(Some(&k));
    host.ledgers.insert(doc.clone(), l);
    (host, doc, k, last)
}

/// ATTACK 1 (`set_sender`: the revoked-node refusal only when the revoked node sends):
/// unbounded storage of a revoked node's void changes, through any pinned peer that may read.
///
/// R (a ministry) is revoked with a cut-off naming its last change, which every node holds.
/// R keeps signing: a chain of new changes on its own actor (no twins, no new actor: neither
/// cap applies). Sent by R itself, each is refused (`Rejection::Revoked`). Handed to any other
/// pinned peer P that may read the document (here the document is public, so any pinned
/// donor or other State's node) and relayed by P, every one of them is admitted and stored,
/// void, for good: honest nodes do not even relay them (not exported), so only the nodes P
/// talks to pay, but they pay without bound, and nothing counts against P (they are
/// admissions, not rejections). The threat model says only "twins" are held this way "at the
/// twins' cost": a chain is not bounded by any cap. Breaks (d): P is not a writer of the
/// document, yet it makes the node store as much as it likes, past the revocation that is
/// the remedy for R's volume.
///
/// Root cause: `from_author = self.sender.is_none_or(|p| p == author)` in `admit_inner`.
/// Suggested fix: refuse a change `revoked_for_good` settles whoever sends it unless another
/// author's change needs it (`needed`; the capped queue and `readmit_revoked` already bring it
/// in when the honest change built on it arrives, and the honest relay sends it again with
/// that change), or bound per sender and document what is admitted void.
#[test]
fn redteam6_relay_makes_node_store_unbounded_void_chain_of_revoked_node() {
    let sk = key(3);
    let s = W::new(30);
    let r = W::new(31);
    let p = key(32).node_id(); // a pinned peer, no writer of anything here
    let (mut host, doc, k, last) = public_doc(&sk, &s, &r);
    // The State revokes R, keeping what it wrote (the cut-off names its last change).
    {
        let l = host.ledgers.get_mut(&doc).expect("held");
        let rv = revocation(&sk, &r.id(), l.cutoff_for(&r.id()));
        let c = s.next(l, vec![grant_op(l, &rv)]);
        admit_new(l, &c, &k);
        l.settle(Some(&k));
    }
    // R signs on, after its revocation: a chain longer than the budget for relayed ones.
    const N: usize = crate::ledger::RELAYED_REVOKED_KEEP + 100;
    let mut chain = Vec::with_capacity(N);
    let mut prev = last.clone();
    for i in 0..N {
        let c = {
            let l = &host.ledgers[&doc];
            after(
                &r,
                &doc,
                &prev,
                vec![put(
                    l,
                    "needs",
                    &format!("J{i}"),
                    &json!({"id": format!("J{i}"), "area": "marking"}),
                )],
            )
        };
        prev = c.clone();
        chain.push(c);
    }
    let before = host.ledgers[&doc].len();
    // From R itself: all refused, and every refusal counts against R (it is closed after as
    // many as any peer).
    let from_r = crate::session::Host::apply(&mut host, &r.id(), &doc, chain.clone(), false);
    assert_eq!(from_r.accepted, 0);
    assert_eq!(from_r.rejected.len(), N);
    assert_eq!(from_r.counted, N, "R's own refused changes count against R");
    assert_eq!(host.ledgers[&doc].len(), before);
    // Relayed by P: held, void, up to the budget (an honest relay that has not seen the
    // revocation forwards such changes in good faith, and an honest change may follow in
    // another batch), then refused; none of it held against P.
    let from_p = crate::session::Host::apply(&mut host, &p, &doc, chain.clone(), false);
    assert!(from_p.fatal.is_none());
    assert_eq!(
        from_p.accepted,
        crate::ledger::RELAYED_REVOKED_KEEP,
        "P made the node store no more of R's chain than the budget"
    );
    assert_eq!(from_p.counted, 0);
    // Again, through another connection: nothing more.
    let again = crate::session::Host::apply(&mut host, &p, &doc, chain.clone(), false);
    assert_eq!(again.accepted, 0);
    let l = host.ledgers.get_mut(&doc).expect("held");
    assert_eq!(l.len(), before + crate::ledger::RELAYED_REVOKED_KEEP);
    l.settle(Some(&k));
    for c in &chain {
        let h = hash_of(&doc, c);
        if l.has(&h) {
            assert!(matches!(l.verdict(&h), Some(Verdict::Void(_))));
            assert!(!l.is_exported(&h), "void and not relayed");
        }
    }
}

/// ATTACK 3 (the batch loop around `readmit_revoked`): a batch in reverse causal order costs
/// the receiver quadratic work.
///
/// `apply` (the node's `StoreTx::apply` and `MemHost::apply_batch`, the same loop) passes over
/// every waiting change of the batch again after each pass that admitted anything, and each
/// attempt checks the change, re-encodes it and verifies its signature before it finds a
/// dependency missing. A peer sending N changes in reverse causal order (a hostile relay may
/// reorder, the wire's "in causal order" is not checked) makes N passes: N²/2 full admission
/// attempts for N changes. With the message limit of 5,000 changes that is 12.5 million
/// signature verifications for one frame, of changes that are all honest and all end up held
/// (nothing counts against the peer). Breaks (d): "a frame costs work in proportion to what
/// it carries" and "each tried again only when a dependency it waits for arrives".
/// Suggested fix: order the batch topologically (by the dependencies inside it) before the
/// loop, or retry a waiting change only when one of its missing dependencies was admitted
/// (index the waiting changes by the hash they miss), and verify signatures once per change.
#[test]
fn redteam6_reverse_ordered_batch_costs_quadratic_work() {
    let sk = key(4);
    let s = W::new(40);
    let r = W::new(41);
    let p = key(42).node_id();
    let (host, doc, _k, last) = public_doc(&sk, &s, &r);
    const N: usize = 300;
    let mut chain = Vec::with_capacity(N);
    let mut prev = last.clone();
    for i in 0..N {
        let c = {
            let l = &host.ledgers[&doc];
            after(
                &r,
                &doc,
                &prev,
                vec![put(
                    l,
                    "needs",
                    &format!("Q{i}"),
                    &json!({"id": format!("Q{i}"), "area": "marking"}),
                )],
            )
        };
        prev = c.clone();
        chain.push(c);
    }
    let mut in_order = host.clone();
    let a = crate::session::Host::apply(&mut in_order, &p, &doc, chain.clone(), false);
    assert_eq!(a.accepted, N);
    let mut reversed = host.clone();
    let mut rev = chain.clone();
    rev.reverse();
    let b = crate::session::Host::apply(&mut reversed, &p, &doc, rev.clone(), false);
    assert_eq!(
        b.accepted, N,
        "the same honest changes, all held in the end"
    );
    assert_eq!(b.counted, 0);
    // The work, counted in admissions tried: in proportion to the batch, whatever its order.
    for order in [chain.clone(), rev] {
        let mut l = host.ledgers[&doc].clone();
        let batch = l
            .admit_batch(order, Some(&_k), Some(p), |_| {
                Ok::<_, std::convert::Infallible>(false)
            })
            .unwrap_or_else(|e| match e {});
        assert_eq!(batch.held.len(), N);
        assert!(
            batch.attempts <= 2 * N,
            "{} admissions tried for {N} changes",
            batch.attempts
        );
    }
}

/// ATTACK 4 (caps, evidence and `counts_against_peer`): two honest nodes never converge on
/// what they offer, and resend the same refused evidence forever.
///
/// A leaked ministry key L signs 70 twins at one position. It gives node A the two with the
/// smallest hashes, and node B 64 others in decreasing hash order: each is then "among the
/// smallest" B holds, so B takes them up to `HARD_TWINS` (64). The evidence every node offers
/// is "the two twins with the smallest hashes" *it holds*: A offers the global two smallest,
/// B its own two smallest. A sends B its evidence; B refuses it for good (`TooManyTwins`: 64
/// held, no one wants it), and since the fifth round that refusal does not count against A,
/// so the connection is never closed either. A takes B's evidence, but its own stays the
/// smallest. Their `offered` heads differ after every exchange: the sync that compares them
/// never settles, and every round re-sends and re-refuses the same changes. Breaks the
/// invariant "two honest nodes ... converge on the same heads" (c), with an unbounded
/// repetition of work (d).
///
/// Root cause: the evidence is chosen among what each node holds (`judge`: the two smallest
/// held), while `HARD_TWINS` (and likewise `HARD_ACTORS_PER_AUTHOR`) lets a node hold a
/// different, full set that keeps out the smaller ones. Suggested fix: past the hard limit,
/// still take a change that would be among the evidence (the 2 smallest, or the 9 smallest
/// first changes), dropping (or not exporting) the larger ones it displaces, so the evidence
/// held is the same set on every node; or choose the evidence by a rule that does not depend
/// on what else is held (e.g. the first two twins in the causal order of the positions).
#[test]
fn redteam6_hard_twin_cap_keeps_honest_nodes_offering_different_evidence_forever() {
    let sk = key(5);
    let lk = W::new(50);
    let k = sk.node_id();
    let doc = DocId::State(xaa());
    let mut base = Ledger::new(&doc);
    let g = base.genesis_hash().expect("genesis");
    let d = delegation(&sk, &lk.id(), None);
    let c = lk.at(&base, &[g], vec![grant_op(&base, &d)]);
    let dh = admit_new(&mut base, &c, &k);
    base.settle(Some(&k));
    let mut twins: Vec<(ChangeHash, SignedChange)> = (0..70)
        .map(|i| {
            let c = lk.at(
                &base,
                &[dh],
                vec![put(
                    &base,
                    "needs",
                    &format!("N{i}"),
                    &json!({"id": format!("N{i}"), "area": "marking"}),
                )],
            );
            (hash_of(&doc, &c), c)
        })
        .collect();
    twins.sort_by_key(|(h, _)| *h);
    let mut a = base.clone();
    let mut b = base.clone();
    for (_, c) in &twins[..2] {
        admit_new(&mut a, c, &k);
    }
    // B: the 64 largest, largest first.
    for (_, c) in twins[6..].iter().rev() {
        admit_new(&mut b, c, &k);
    }
    assert_eq!(b.len(), base.len() + 64);
    let relay = key(51).node_id();
    for round in 0..3 {
        a.settle(Some(&k));
        b.settle(Some(&k));
        let to_b: Vec<SignedChange> = a
            .exported_since(&b.settle(Some(&k)).offered.clone())
            .iter()
            .filter_map(|h| a.signed(h))
            .collect();
        let to_a: Vec<SignedChange> = b
            .exported_since(&a.settle(Some(&k)).offered.clone())
            .iter()
            .filter_map(|h| b.signed(h))
            .collect();
        if round == 0 {
            assert!(!to_b.is_empty(), "A has evidence B lacks");
        } else {
            assert!(
                to_b.is_empty(),
                "round {round}: A still has evidence B lacks"
            );
        }
        // Relayed by A (not the author): B takes A's evidence though it is past the hard cap.
        b.set_sender(Some(relay));
        for c in &to_b {
            match b.admit(c, Some(&k)) {
                Admitted::New(_) | Admitted::Known(_) => {}
                other => panic!("B refused A's evidence: {other:?}"),
            }
        }
        b.set_sender(None);
        a.set_sender(Some(relay));
        for c in &to_a {
            let _ = a.admit(c, Some(&k));
        }
        a.set_sender(None);
        let (oa, ob) = (
            a.settle(Some(&k)).offered.clone(),
            b.settle(Some(&k)).offered.clone(),
        );
        assert_eq!(
            oa, ob,
            "round {round}: the two honest nodes offer the same heads"
        );
        assert!(b.has(&twins[0].0), "B holds the smallest twin");
    }
    // From the author itself, past the hard cap, even a smaller twin is refused, and the
    // refusal counts against it.
    let mut c = base.clone();
    for (_, t) in twins[6..].iter().rev() {
        admit_new(&mut c, t, &k);
    }
    c.set_sender(Some(lk.id()));
    match c.admit(&twins[0].1, Some(&k)) {
        Admitted::Refused(_, r @ Rejection::TooManyTwins { .. }) => {
            assert!(r.counts_against_peer())
        }
        other => panic!("the author's own flood past the hard cap came in: {other:?}"),
    }
}
