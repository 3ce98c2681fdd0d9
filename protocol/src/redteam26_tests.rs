//! Red-team round 26 (session 25): attacks on the pool gate, written by a red-team helper
//! against c148703: sections written and deleted by a member node whose membership is signed
//! by a key that is not the State's, a removed or expired member writing on a past it chose,
//! a join on a past before its invitation was withdrawn. The five `rt26_a_…` tests failed
//! there; the two order properties (a hostile pool and a hostile draft history) passed and
//! stay as properties.

use serde_json::{Value as Json, json};

use crate::authority::{Grant, GrantKind, Scope, SignedGrant, Trust};
use crate::change::{ChangeData, FlatAction, FlatOp, OpRef, SignedChange};
use crate::doc::{DocId, PoolId};
use crate::id::{NodeId, Principal, StateCode};
use crate::ledger::{Admitted, Ledger, Rejection, Verdict, actor_bytes};
use crate::pool::PoolData;
use crate::sign::{NodeKey, sign_change};

const T0: i64 = 1_767_225_600; // 2026-01-01

pub(super) fn node(seed: u8) -> NodeKey {
    NodeKey::from_seed(&[seed; 32])
}

pub(super) fn sign(doc: &DocId, k: &NodeKey, data: ChangeData) -> SignedChange {
    let h = data.to_automerge(doc).unwrap().hash();
    SignedChange {
        data,
        signature: sign_change(k, doc, &h).to_vec(),
    }
}

pub(super) fn put(
    doc: &DocId,
    container: &str,
    key: &str,
    text: &str,
    preds: Vec<OpRef>,
) -> FlatOp {
    FlatOp {
        container: doc.kind().container(container).unwrap(),
        key: key.into(),
        action: FlatAction::Put {
            value: text.into(),
            preds,
        },
    }
}

pub(super) fn del(doc: &DocId, container: &str, key: &str, preds: Vec<OpRef>) -> FlatOp {
    FlatOp {
        container: doc.kind().container(container).unwrap(),
        key: key.into(),
        action: FlatAction::Delete { preds },
    }
}

pub(super) fn pool_write(
    l: &mut Ledger,
    k: &NodeKey,
    ops: Vec<FlatOp>,
) -> Result<Verdict, Rejection> {
    crate::ledger::tests::pool_write(l, k, 1, ops)
}

pub(super) fn proof(signer: &NodeKey, state: StateCode, n: &NodeKey) -> SignedGrant {
    SignedGrant::sign(
        signer,
        Grant {
            kind: GrantKind::Delegation,
            principal: Principal::State(state),
            node: n.node_id(),
            scope: Some(Scope::ALL),
            expires: None,
            issued: "2026-01-01".parse().unwrap(),
            key: signer.node_id(),
            cutoff: vec![],
            serial: 0,
            kept: Vec::new(),
            recovery: None,
        },
    )
}

/// The first operation of `c`, as a predecessor.
pub(super) fn first_op(c: &SignedChange) -> Vec<OpRef> {
    vec![OpRef {
        counter: c.data.start_op,
        actor: c.data.actor.clone(),
    }]
}

/// A new pool `xanadu` of coordinator `node(10)`: the coordinator, the id, the document and
/// an empty ledger.
pub(super) fn new_pool() -> (NodeKey, PoolId, DocId, Ledger) {
    let coordinator = node(10);
    let pool = PoolId::new("xanadu", &coordinator.node_id());
    let doc = DocId::Pool(pool.clone());
    let l = Ledger::new(&doc);
    (coordinator, pool, doc, l)
}

pub(super) fn invite(state: &str, k: &NodeId) -> String {
    json!({"state": state, "state_key": k.to_string(), "invited": "2026-01-01"}).to_string()
}

pub(super) fn contribution(t: &str, by: &NodeKey) -> String {
    json!({"target": t, "contributed": "2026-01-02", "by": by.node_id().to_string()}).to_string()
}

/// The coordinator's invitation of XAB under `key`, replacing `preds`.
pub(super) fn invite_op(doc: &DocId, key: &NodeKey, preds: Vec<OpRef>) -> FlatOp {
    put(doc, "invites", "XAB", &invite("XAB", &key.node_id()), preds)
}

/// XAB's section linking target `t`, placed by `by`, replacing `preds`.
pub(super) fn section_op(doc: &DocId, t: &str, by: &NodeKey, preds: Vec<OpRef>) -> FlatOp {
    put(
        doc,
        "sections",
        &format!("XAB/{t}"),
        &contribution(t, by),
        preds,
    )
}

struct Fixture {
    doc: DocId,
    pool: PoolId,
    l: Ledger,
    xab: StateCode,
    real_key: NodeKey,
    honest: NodeKey,
    puppet: NodeKey,
}

/// A pool whose coordinator first invited XAB under a key it made up (a puppet node joined
/// under it), then corrected the invitation to XAB's real key, under which XAB's real node
/// joined and linked its target T1.
fn fixture() -> Fixture {
    let (coordinator, pool, doc, mut l) = new_pool();
    let xab: StateCode = "XAB".parse().unwrap();
    let real_key = node(13);
    let fake_key = node(14);
    let honest = node(15);
    let puppet = node(16);
    let v = pool_write(
        &mut l,
        &coordinator,
        vec![invite_op(&doc, &fake_key, vec![])],
    )
    .unwrap();
    assert_eq!(v, Verdict::Stands);
    let pkey = format!("XAB/{}", puppet.node_id());
    let v = pool_write(
        &mut l,
        &puppet,
        vec![put(
            &doc,
            "members",
            &pkey,
            &proof(&fake_key, xab, &puppet).to_text(),
            vec![],
        )],
    )
    .unwrap();
    assert_eq!(v, Verdict::Stands);
    let preds = l.live_refs("invites", "XAB");
    let v = pool_write(
        &mut l,
        &coordinator,
        vec![invite_op(&doc, &real_key, preds)],
    )
    .unwrap();
    assert_eq!(v, Verdict::Stands);
    let hkey = format!("XAB/{}", honest.node_id());
    let v = pool_write(
        &mut l,
        &honest,
        vec![put(
            &doc,
            "members",
            &hkey,
            &proof(&real_key, xab, &honest).to_text(),
            vec![],
        )],
    )
    .unwrap();
    assert_eq!(v, Verdict::Stands);
    let v = pool_write(
        &mut l,
        &honest,
        vec![section_op(&doc, "T1", &honest, vec![])],
    )
    .unwrap();
    assert_eq!(v, Verdict::Stands);
    Fixture {
        doc,
        pool,
        l,
        xab,
        real_key,
        honest,
        puppet,
    }
}

fn data(f: &mut Fixture) -> PoolData {
    let view: Json = f.l.settle(None).view.clone();
    PoolData::from_json(
        &view,
        &f.pool,
        &Trust::default().with(Principal::State(f.xab), f.real_key.node_id()),
    )
}

/// Member removal is guarded ("a member removes only nodes whose membership the same State key
/// signed"), but a State's sections are not: the puppet, a member of XAB only under the key the
/// coordinator made up (unverified everywhere), deletes the section XAB's real node placed.
#[test]
fn rt26_a_puppet_member_under_a_made_up_key_deletes_the_states_real_section() {
    let mut f = fixture();
    let before = data(&mut f);
    assert!(before.is_member(f.xab));
    assert!(before.contributions[&f.xab].contains_key("T1"));
    assert!(!before.audience().contains(&f.puppet.node_id()));
    let preds = f.l.live_refs("sections", "XAB/T1");
    assert_eq!(preds.len(), 1);
    let doc = f.doc.clone();
    let v = pool_write(
        &mut f.l,
        &f.puppet,
        vec![del(&doc, "sections", "XAB/T1", preds)],
    );
    let after = data(&mut f);
    let kept = after
        .contributions
        .get(&f.xab)
        .is_some_and(|c| c.contains_key("T1"));
    assert!(
        kept && !matches!(v, Ok(Verdict::Stands)),
        "the puppet's delete of XAB's section: {v:?}; XAB's T1 still linked: {kept}"
    );
    let _ = &f.honest;
}

/// The same puppet links a target of XAB into the pool in XAB's name. The gate cannot tell
/// which key is XAB's (each reader does, by trust), so the section may stand; but it names
/// the puppet as its placer, and no node trusting XAB's real key counts it. Before the fix
/// it was counted as XAB's contribution.
#[test]
fn rt26_a_puppet_member_under_a_made_up_key_links_targets_in_the_states_name() {
    let mut f = fixture();
    let doc = f.doc.clone();
    let v = pool_write(
        &mut f.l,
        &f.puppet,
        vec![section_op(&doc, "T9", &f.puppet, vec![])],
    );
    let after = data(&mut f);
    let counted = after
        .contributions
        .get(&f.xab)
        .is_some_and(|c| c.contains_key("T9"));
    assert!(
        !counted,
        "the puppet's section in XAB's name: {v:?}; counted as XAB's: {counted}"
    );
}

// ---------------------------------------------------------------------------------------------
// Arrival-order property over a hostile pool history.

pub(super) fn build(
    l: &mut Ledger,
    k: &NodeKey,
    suffix: u8,
    deps: &[automerge::ChangeHash],
    ops: Vec<FlatOp>,
) -> SignedChange {
    let actor = actor_bytes(&k.node_id(), &[suffix; 8]);
    let data = l.change_at(deps, &actor, T0, ops);
    let sc = sign(l.doc(), k, data);
    match l.admit(&sc, None) {
        Admitted::New(_) | Admitted::Known(_) => {}
        other => panic!("building: {other:?}"),
    }
    l.settle(None);
    sc
}

pub(super) fn hash(doc: &DocId, c: &SignedChange) -> automerge::ChangeHash {
    c.data.to_automerge(doc).unwrap().hash()
}

pub(super) fn revocation(
    signer: &NodeKey,
    state: StateCode,
    n: &NodeKey,
    cutoff: Vec<crate::authority::Cutoff>,
) -> SignedGrant {
    SignedGrant::sign(
        signer,
        Grant {
            kind: GrantKind::Revocation,
            principal: Principal::State(state),
            node: n.node_id(),
            scope: None,
            expires: None,
            issued: "2026-01-03".parse().unwrap(),
            key: signer.node_id(),
            cutoff,
            serial: 0,
            kept: Vec::new(),
            recovery: None,
        },
    )
}

/// Admits `cs` in the given order, then again whatever is not held yet (as sync would send
/// it again), until nothing moves.
pub(super) fn deliver(doc: &DocId, cs: &[SignedChange]) -> Ledger {
    let mut l = Ledger::new(doc);
    l.set_sender(Some(node(99).node_id()));
    let mut pending: Vec<SignedChange> = cs.to_vec();
    loop {
        let before = pending.len();
        let mut next = Vec::new();
        for c in pending {
            match l.admit(&c, None) {
                Admitted::New(_) | Admitted::Known(_) => {}
                _ => next.push(c),
            }
        }
        pending = next;
        if pending.is_empty() || pending.len() == before {
            break;
        }
    }
    l.settle(None);
    l
}

pub(super) fn summary(l: &mut Ledger) -> (Vec<String>, String, Vec<automerge::ChangeHash>) {
    let s = l.settle(None).clone();
    let mut verdicts: Vec<String> = l
        .audit_rows()
        .into_iter()
        .map(|(h, _, v)| format!("{h} {v:?}"))
        .collect();
    verdicts.sort();
    let mut offered = s.offered.clone();
    offered.sort();
    (verdicts, s.view.to_string(), offered)
}

pub(super) fn shuffle<T>(v: &mut [T], seed: &mut u64) {
    for i in (1..v.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let j = (*seed % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// A pool history with a puppet, a revocation of the State's real node whose cut-off keeps its
/// join only, twins of that node after the cut-off, changes built on void ones, a second actor
/// of the revoked node, and leaves: every arrival order gives the same verdicts and view.
#[test]
fn rt26_pool_history_with_revocation_and_twins_is_order_independent() {
    let coordinator = node(10);
    let pool = PoolId::new("xanadu", &coordinator.node_id());
    let doc = DocId::Pool(pool.clone());
    let mut m = Ledger::new(&doc);
    let xab: StateCode = "XAB".parse().unwrap();
    let real_key = node(13);
    let fake_key = node(14);
    let h = node(15);
    let p = node(16);
    let h2 = node(17);
    let g0 = m.genesis_hash().unwrap();
    let hkey = format!("XAB/{}", h.node_id());
    let h2key = format!("XAB/{}", h2.node_id());
    let pkey = format!("XAB/{}", p.node_id());
    let mut cs = Vec::new();
    let c1 = build(
        &mut m,
        &coordinator,
        1,
        &[g0],
        vec![invite_op(&doc, &fake_key, vec![])],
    );
    let c2 = build(
        &mut m,
        &p,
        1,
        &[hash(&doc, &c1)],
        vec![put(
            &doc,
            "members",
            &pkey,
            &proof(&fake_key, xab, &p).to_text(),
            vec![],
        )],
    );
    let preds = m.live_refs("invites", "XAB");
    let c3 = build(
        &mut m,
        &coordinator,
        1,
        &[hash(&doc, &c2)],
        vec![invite_op(&doc, &real_key, preds)],
    );
    let c4 = build(
        &mut m,
        &h,
        1,
        &[hash(&doc, &c3)],
        vec![put(
            &doc,
            "members",
            &hkey,
            &proof(&real_key, xab, &h).to_text(),
            vec![],
        )],
    );
    let c4b = build(
        &mut m,
        &h2,
        1,
        &[hash(&doc, &c3)],
        vec![put(
            &doc,
            "members",
            &h2key,
            &proof(&real_key, xab, &h2).to_text(),
            vec![],
        )],
    );
    let c5 = build(
        &mut m,
        &h,
        1,
        &[hash(&doc, &c4), hash(&doc, &c4b)],
        vec![section_op(&doc, "T1", &h, vec![])],
    );
    // A twin of c5 by H, at seq 2, on c4 only.
    let c6 = build(
        &mut m,
        &h,
        1,
        &[hash(&doc, &c4)],
        vec![section_op(&doc, "T2", &h, vec![])],
    );
    let c10 = build(
        &mut m,
        &h,
        2,
        &[hash(&doc, &c3)],
        vec![section_op(&doc, "T3", &h, vec![])],
    );
    let c12 = build(
        &mut m,
        &h,
        1,
        &[hash(&doc, &c6)],
        vec![del(&doc, "members", &hkey, first_op(&c4))],
    );
    // The revocation of H, keeping its join (c4) only, placed by H2 on c5.
    let hactor = data_encoding::HEXLOWER.encode(&actor_bytes(&h.node_id(), &[1; 8]));
    let cut = vec![crate::authority::Cutoff {
        doc: doc.clone(),
        actor: hactor,
        seq: 1,
        head: Some(hash(&doc, &c4).to_string()),
    }];
    let rev = revocation(&real_key, xab, &h, cut);
    let c7 = build(
        &mut m,
        &h2,
        1,
        &[hash(&doc, &c5)],
        vec![put(
            &doc,
            "members",
            &format!("{hkey}/revoked"),
            &rev.to_text(),
            vec![],
        )],
    );
    // H2 builds on the twin c6 and deletes H's section T2 there.
    let preds_t2: Vec<OpRef> = first_op(&c6);
    let c8 = build(
        &mut m,
        &h2,
        1,
        &[hash(&doc, &c6), hash(&doc, &c7)],
        vec![del(&doc, "sections", "XAB/T2", preds_t2)],
    );
    // H2 re-links T1 over the (void) T1 of H, naming it.
    let preds_t1: Vec<OpRef> = first_op(&c5);
    let c9 = build(
        &mut m,
        &h2,
        1,
        &[hash(&doc, &c8)],
        vec![section_op(&doc, "T1", &h2, preds_t1)],
    );
    // H, revoked, with a second actor on a past without its join; and P deleting H2's entry.
    let r11 = m.live_refs("members", &h2key);
    let c11 = build(
        &mut m,
        &p,
        1,
        &[hash(&doc, &c9)],
        vec![del(&doc, "members", &h2key, r11)],
    );
    // H leaves after its revocation (void), and P deletes whatever T1 is on c9.
    let r13 = first_op(&c9);
    let c13 = build(
        &mut m,
        &p,
        1,
        &[hash(&doc, &c11), hash(&doc, &c12)],
        vec![del(&doc, "sections", "XAB/T1", r13)],
    );
    for c in [c1, c2, c3, c4, c4b, c5, c6, c7, c8, c9, c10, c11, c12, c13] {
        cs.push(c);
    }
    let reference = summary(&mut m);
    eprintln!("reference verdicts:\n{}", reference.0.join("\n"));
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..300 {
        let mut order = cs.clone();
        shuffle(&mut order, &mut seed);
        let mut l = deliver(&doc, &order);
        let got = summary(&mut l);
        assert_eq!(
            l.len(),
            m.len(),
            "round {round}: held {} of {}",
            l.len(),
            m.len()
        );
        assert_eq!(got.0, reference.0, "round {round}: verdicts differ");
        assert_eq!(got.1, reference.1, "round {round}: views differ");
        assert_eq!(got.2, reference.2, "round {round}: offered differ");
    }
    // A view at each change's heads is the document a node holding only that past shows.
    for c in &cs {
        let head = hash(&doc, c);
        let at = m.view_at(&[head], None).unwrap();
        let mut past = std::collections::HashSet::new();
        let mut stack = vec![head];
        while let Some(x) = stack.pop() {
            if past.insert(x) {
                stack.extend(m.deps(&x));
            }
        }
        let only: Vec<SignedChange> = cs
            .iter()
            .filter(|d| past.contains(&hash(&doc, d)))
            .cloned()
            .collect();
        let mut fresh = deliver(&doc, &only);
        let s = fresh.settle(None).clone();
        assert_eq!(
            at.view, s.view,
            "view_at {head} differs from a node holding only its past"
        );
        let mut a = at.offered.clone();
        a.sort();
        let mut b = s.offered.clone();
        b.sort();
        assert_eq!(a, b, "offered at {head} differ");
    }
}

/// A State's delegation of its node for a pool membership expires on 2026-01-15. In a State's
/// documents a change dated after its delegation's last day does not stand; in the pool, the
/// expiry is checked on the join only: months after it, by its own honest date, the node still
/// links and unlinks its State's targets and removes the State's other node.
#[test]
fn rt26_a_member_whose_delegation_expired_keeps_writing_the_pool_by_its_own_late_dates() {
    let (coordinator, pool, doc, mut l) = new_pool();
    let xab: StateCode = "XAB".parse().unwrap();
    let real_key = node(13);
    let h = node(15);
    let v = pool_write(
        &mut l,
        &coordinator,
        vec![invite_op(&doc, &real_key, vec![])],
    )
    .unwrap();
    assert_eq!(v, Verdict::Stands);
    let mut g = proof(&real_key, xab, &h).grant;
    g.expires = Some("2026-01-15".parse().unwrap());
    let expiring = SignedGrant::sign(&real_key, g);
    let hkey = format!("XAB/{}", h.node_id());
    let v = pool_write(
        &mut l,
        &h,
        vec![put(&doc, "members", &hkey, &expiring.to_text(), vec![])],
    )
    .unwrap();
    assert_eq!(
        v,
        Verdict::Stands,
        "the join, dated before the expiry, stands"
    );
    // 2026-06-01, long after the delegation's last day, by the node's own date.
    let late = 1_780_272_000;
    l.settle(None);
    let data = l.next_change(
        &actor_bytes(&h.node_id(), &[1; 8]),
        late,
        vec![section_op(&doc, "T7", &h, vec![])],
    );
    let sc = sign(&doc, &h, data);
    let Admitted::New(hash) = l.admit(&sc, None) else {
        panic!()
    };
    l.settle(None);
    let v = l.verdict(&hash).cloned().unwrap();
    let view: Json = l.settle(None).view.clone();
    let shown = view["sections"].get("XAB/T7").is_some();
    let reads = PoolData::from_json(
        &view,
        &pool,
        &Trust::default().with(Principal::State(xab), real_key.node_id()),
    )
    .audience()
    .contains(&h.node_id());
    assert!(
        !matches!(v, Verdict::Stands) && !shown,
        "a change dated 2026-06-01 under a delegation that expired 2026-01-15: {v:?}; shown: {shown}; still in the pool's audience: {reads}"
    );
}

/// XAB's node H2 removes XAB's node H from the pool (allowed: the same State key signed both
/// memberships). H then writes on a past that leaves out its removal, a dependency it chose:
/// its section stands and is shown, whatever the removal said, and so forever after.
#[test]
fn rt26_a_removed_member_keeps_writing_by_choosing_a_past_without_its_removal() {
    let (coordinator, _, doc, mut l) = new_pool();
    let xab: StateCode = "XAB".parse().unwrap();
    let real_key = node(13);
    let h = node(15);
    let h2 = node(17);
    let g0 = l.genesis_hash().unwrap();
    let c1 = build(
        &mut l,
        &coordinator,
        1,
        &[g0],
        vec![invite_op(&doc, &real_key, vec![])],
    );
    let hkey = format!("XAB/{}", h.node_id());
    let h2key = format!("XAB/{}", h2.node_id());
    let c2 = build(
        &mut l,
        &h,
        1,
        &[hash(&doc, &c1)],
        vec![put(
            &doc,
            "members",
            &hkey,
            &proof(&real_key, xab, &h).to_text(),
            vec![],
        )],
    );
    let c3 = build(
        &mut l,
        &h2,
        1,
        &[hash(&doc, &c2)],
        vec![put(
            &doc,
            "members",
            &h2key,
            &proof(&real_key, xab, &h2).to_text(),
            vec![],
        )],
    );
    let removal = first_op(&c2);
    let c4 = build(
        &mut l,
        &h2,
        1,
        &[hash(&doc, &c3)],
        vec![del(&doc, "members", &hkey, removal)],
    );
    assert_eq!(
        l.verdict(&hash(&doc, &c4)),
        Some(&Verdict::Stands),
        "the removal stands"
    );
    let view: Json = l.settle(None).view.clone();
    assert!(
        view["members"].get(&hkey).is_none(),
        "H is no member any more"
    );
    // H, removed, writes on its own join only.
    let c5 = build(
        &mut l,
        &h,
        1,
        &[hash(&doc, &c2)],
        vec![section_op(&doc, "T5", &h, vec![])],
    );
    let v = l.verdict(&hash(&doc, &c5)).cloned();
    let view: Json = l.settle(None).view.clone();
    let shown = view["sections"].get("XAB/T5").is_some();
    assert!(
        !matches!(v, Some(Verdict::Stands)) && !shown,
        "a removed member's section on a past without its removal: {v:?}; shown: {shown}"
    );
}

/// The coordinator invites XAB, then withdraws the invitation (deletes the slot). A node of
/// XAB that never joined joins afterwards, on a past it chose that ends before the withdrawal:
/// the join stands, and XAB is a verified member of a pool that no longer invites it.
#[test]
fn rt26_a_join_on_a_past_before_the_invitation_was_withdrawn_stands() {
    let (coordinator, pool, doc, mut l) = new_pool();
    let xab: StateCode = "XAB".parse().unwrap();
    let real_key = node(13);
    let h = node(15);
    let g0 = l.genesis_hash().unwrap();
    let c1 = build(
        &mut l,
        &coordinator,
        1,
        &[g0],
        vec![invite_op(&doc, &real_key, vec![])],
    );
    let withdraw = first_op(&c1);
    let c2 = build(
        &mut l,
        &coordinator,
        1,
        &[hash(&doc, &c1)],
        vec![del(&doc, "invites", "XAB", withdraw)],
    );
    assert_eq!(
        l.verdict(&hash(&doc, &c2)),
        Some(&Verdict::Stands),
        "the withdrawal stands"
    );
    let hkey = format!("XAB/{}", h.node_id());
    let c3 = build(
        &mut l,
        &h,
        1,
        &[hash(&doc, &c1)],
        vec![put(
            &doc,
            "members",
            &hkey,
            &proof(&real_key, xab, &h).to_text(),
            vec![],
        )],
    );
    let v = l.verdict(&hash(&doc, &c3)).cloned();
    let view: Json = l.settle(None).view.clone();
    let member = PoolData::from_json(
        &view,
        &pool,
        &Trust::default().with(Principal::State(xab), real_key.node_id()),
    )
    .is_member(xab);
    assert!(
        !matches!(v, Some(Verdict::Stands)) && !member,
        "a join after the invitation was withdrawn, on a past before it: {v:?}; XAB a member: {member}"
    );
}

/// No hostile coordinator needed: an honest coordinator once invited XAB under a wrong key F
/// (say, fed to it) and corrected it to XAB's real key before anyone joined. The holder of F
/// joins afterwards on a past before the correction, and then deletes the section XAB's real
/// node placed since.
#[test]
fn rt26_a_corrected_invitation_still_admits_the_wrong_keys_node_which_deletes_the_states_section() {
    let (coordinator, pool, doc, mut l) = new_pool();
    let xab: StateCode = "XAB".parse().unwrap();
    let real_key = node(13);
    let fake_key = node(14);
    let h = node(15);
    let p = node(16);
    let g0 = l.genesis_hash().unwrap();
    let c1 = build(
        &mut l,
        &coordinator,
        1,
        &[g0],
        vec![invite_op(&doc, &fake_key, vec![])],
    );
    let fix = first_op(&c1);
    let c2 = build(
        &mut l,
        &coordinator,
        1,
        &[hash(&doc, &c1)],
        vec![invite_op(&doc, &real_key, fix)],
    );
    let hkey = format!("XAB/{}", h.node_id());
    let c3 = build(
        &mut l,
        &h,
        1,
        &[hash(&doc, &c2)],
        vec![put(
            &doc,
            "members",
            &hkey,
            &proof(&real_key, xab, &h).to_text(),
            vec![],
        )],
    );
    let c4 = build(
        &mut l,
        &h,
        1,
        &[hash(&doc, &c3)],
        vec![section_op(&doc, "T1", &h, vec![])],
    );
    // Later: the wrong key's node joins on c1 (before the correction)...
    let pkey = format!("XAB/{}", p.node_id());
    let c5 = build(
        &mut l,
        &p,
        1,
        &[hash(&doc, &c1)],
        vec![put(
            &doc,
            "members",
            &pkey,
            &proof(&fake_key, xab, &p).to_text(),
            vec![],
        )],
    );
    // ...and then, on everything, deletes XAB's section.
    let gone = first_op(&c4);
    let c6 = build(
        &mut l,
        &p,
        1,
        &[hash(&doc, &c4), hash(&doc, &c5)],
        vec![del(&doc, "sections", "XAB/T1", gone)],
    );
    let v5 = l.verdict(&hash(&doc, &c5)).cloned();
    let v6 = l.verdict(&hash(&doc, &c6)).cloned();
    let view: Json = l.settle(None).view.clone();
    let linked = PoolData::from_json(
        &view,
        &pool,
        &Trust::default().with(Principal::State(xab), real_key.node_id()),
    )
    .contributions
    .get(&xab)
    .is_some_and(|c| c.contains_key("T1"));
    assert!(
        linked && !matches!(v6, Some(Verdict::Stands)),
        "late join under the corrected-away key: {v5:?}; its delete of XAB's section: {v6:?}; T1 still linked: {linked}"
    );
}

// ---------------------------------------------------------------------------------------------
// Arrival-order property over a hostile draft history (scoped ministries, a revoked node with
// twins, honest work built on void changes and on a twin).

fn sgrant(
    state_key: &NodeKey,
    kind: GrantKind,
    n: &NodeKey,
    scope: Option<Scope>,
    cutoff: Vec<crate::authority::Cutoff>,
) -> SignedGrant {
    SignedGrant::sign(
        state_key,
        Grant {
            kind,
            principal: Principal::State("XAA".parse().unwrap()),
            node: n.node_id(),
            scope,
            expires: None,
            issued: "2026-01-01".parse().unwrap(),
            key: state_key.node_id(),
            cutoff,
            serial: 0,
            kept: Vec::new(),
            recovery: None,
        },
    )
}

fn gop(doc: &DocId, g: &SignedGrant) -> FlatOp {
    put(
        doc,
        g.grant.kind.container(),
        &g.storage_key(),
        &g.to_text(),
        vec![],
    )
}

fn tgt(id: &str, version: u32, area: &str) -> String {
    let mut t = crate::model::tests::xaa_t1();
    t.id = id.into();
    t.version = version;
    t.area = area.parse().unwrap();
    serde_json::to_value(&t).unwrap().to_string()
}

fn keyed_build(
    l: &mut Ledger,
    root: &NodeId,
    k: &NodeKey,
    suffix: u8,
    deps: &[automerge::ChangeHash],
    ops: Vec<FlatOp>,
) -> SignedChange {
    let actor = actor_bytes(&k.node_id(), &[suffix; 8]);
    let data = l.change_at(deps, &actor, T0, ops);
    let sc = sign(l.doc(), k, data);
    match l.admit(&sc, Some(root)) {
        Admitted::New(_) | Admitted::Known(_) => {}
        other => panic!("building: {other:?}"),
    }
    l.settle(Some(root));
    sc
}

fn keyed_deliver(doc: &DocId, root: &NodeId, cs: &[SignedChange]) -> Ledger {
    let mut l = Ledger::new(doc);
    l.set_sender(Some(node(99).node_id()));
    let mut pending: Vec<SignedChange> = cs.to_vec();
    loop {
        let before = pending.len();
        let mut next = Vec::new();
        for c in pending {
            match l.admit(&c, Some(root)) {
                Admitted::New(_) | Admitted::Known(_) => {}
                _ => next.push(c),
            }
        }
        pending = next;
        if pending.is_empty() || pending.len() == before {
            break;
        }
    }
    l.settle(Some(root));
    l
}

fn keyed_summary(
    l: &mut Ledger,
    root: &NodeId,
) -> (Vec<String>, String, Vec<automerge::ChangeHash>) {
    let s = l.settle(Some(root)).clone();
    let mut verdicts: Vec<String> = l
        .audit_rows()
        .into_iter()
        .map(|(h, _, v)| format!("{h} {v:?}"))
        .collect();
    verdicts.sort();
    let mut offered = s.offered.clone();
    offered.sort();
    (verdicts, s.view.to_string(), offered)
}

fn opref(c: &SignedChange, op: usize) -> OpRef {
    OpRef {
        counter: c.data.start_op + op as u64,
        actor: c.data.actor.clone(),
    }
}

#[test]
fn rt26_draft_history_with_scopes_revocation_and_twins_is_order_independent() {
    use crate::model::Area;
    let sk = node(40);
    let root = sk.node_id();
    let doc = DocId::Draft("XAA".parse().unwrap());
    let mut m = Ledger::new(&doc);
    let f1 = node(1);
    let a = node(2);
    let b = node(3);
    let r = node(4);
    let g0 = m.genesis_hash().unwrap();
    let d1 = keyed_build(
        &mut m,
        &root,
        &f1,
        1,
        &[g0],
        vec![gop(
            &doc,
            &sgrant(&sk, GrantKind::Delegation, &f1, Some(Scope::ALL), vec![]),
        )],
    );
    let d2 = keyed_build(
        &mut m,
        &root,
        &f1,
        1,
        &[hash(&doc, &d1)],
        vec![
            gop(
                &doc,
                &sgrant(
                    &sk,
                    GrantKind::Delegation,
                    &a,
                    Some(Scope::Areas(vec![Area::Marking])),
                    vec![],
                ),
            ),
            gop(
                &doc,
                &sgrant(
                    &sk,
                    GrantKind::Delegation,
                    &b,
                    Some(Scope::Areas(vec![Area::Stockpile])),
                    vec![],
                ),
            ),
            gop(
                &doc,
                &sgrant(&sk, GrantKind::Delegation, &r, Some(Scope::ALL), vec![]),
            ),
        ],
    );
    let hd2 = hash(&doc, &d2);
    let a1 = keyed_build(
        &mut m,
        &root,
        &a,
        1,
        &[hd2],
        vec![put(
            &doc,
            "targets",
            "T1/1",
            &tgt("T1", 1, "marking"),
            vec![],
        )],
    );
    let b1 = keyed_build(
        &mut m,
        &root,
        &b,
        1,
        &[hd2],
        vec![put(
            &doc,
            "targets",
            "T2/1",
            &tgt("T2", 1, "stockpile"),
            vec![],
        )],
    );
    // B (stockpile) corrects A's T1 into stockpile: out of scope, void.
    let b2 = keyed_build(
        &mut m,
        &root,
        &b,
        1,
        &[hash(&doc, &a1), hash(&doc, &b1)],
        vec![put(
            &doc,
            "targets",
            "T1/1",
            &tgt("T1", 1, "stockpile"),
            vec![opref(&a1, 0)],
        )],
    );
    // A corrects T1 naming its own value, on B's void correction (which it leaves unnamed).
    let a2 = keyed_build(
        &mut m,
        &root,
        &a,
        1,
        &[hash(&doc, &b2)],
        vec![put(
            &doc,
            "targets",
            "T1/1",
            &tgt("T1", 1, "marking"),
            vec![opref(&a1, 0)],
        )],
    );
    // R (scope all) writes a progress report on T1, and a twin writing a request instead.
    let prog = json!({"id": "P1", "target": "T1", "as_of": "2026-01-02", "value": 1.0}).to_string();
    let r1 = keyed_build(
        &mut m,
        &root,
        &r,
        1,
        &[hash(&doc, &a1)],
        vec![put(&doc, "progress", "P1", &prog, vec![])],
    );
    let need = json!({"id": "R1", "area": "marking", "title": "x"}).to_string();
    let r1t = keyed_build(
        &mut m,
        &root,
        &r,
        1,
        &[hash(&doc, &a1)],
        vec![put(&doc, "needs", "R1", &need, vec![])],
    );
    // R deletes B's T2 on r1t (before its revocation; void: not kept).
    let r2 = keyed_build(
        &mut m,
        &root,
        &r,
        1,
        &[hash(&doc, &r1t), hash(&doc, &b1)],
        vec![del(&doc, "targets", "T2/1", vec![opref(&b1, 0)])],
    );
    // F1 revokes R keeping r1 only.
    let ractor = data_encoding::HEXLOWER.encode(&actor_bytes(&r.node_id(), &[1; 8]));
    let cut = vec![crate::authority::Cutoff {
        doc: doc.clone(),
        actor: ractor,
        seq: 1,
        head: Some(hash(&doc, &r1).to_string()),
    }];
    let rev = keyed_build(
        &mut m,
        &root,
        &f1,
        1,
        &[hash(&doc, &r1), hash(&doc, &a2)],
        vec![gop(
            &doc,
            &sgrant(&sk, GrantKind::Revocation, &r, None, cut),
        )],
    );
    // A builds on R's twin: withdraws the request R1 (marking) and deletes T1 (naming a2).
    let a3 = keyed_build(
        &mut m,
        &root,
        &a,
        1,
        &[hash(&doc, &r1t), hash(&doc, &a2)],
        vec![put(
            &doc,
            "retracted",
            "needs/R1",
            &json!({"reason": "dup", "date": "2026-01-03"}).to_string(),
            vec![],
        )],
    );
    // B, on R's void delete, writes T2 again with no predecessor (its value gone there).
    let b3 = keyed_build(
        &mut m,
        &root,
        &b,
        1,
        &[hash(&doc, &r2)],
        vec![put(
            &doc,
            "targets",
            "T2/1",
            &tgt("T2", 1, "stockpile"),
            vec![],
        )],
    );
    // F1 (scope all) corrects T2 on b1, naming it, into marking.
    let f2 = keyed_build(
        &mut m,
        &root,
        &f1,
        1,
        &[hash(&doc, &rev), hash(&doc, &b1)],
        vec![put(
            &doc,
            "targets",
            "T2/1",
            &tgt("T2", 1, "marking"),
            vec![opref(&b1, 0)],
        )],
    );
    // A, marking, deletes T2 on f2 (now marking), naming F1's value.
    let a4 = keyed_build(
        &mut m,
        &root,
        &a,
        1,
        &[hash(&doc, &a3), hash(&doc, &f2)],
        vec![del(&doc, "targets", "T2/1", vec![opref(&f2, 0)])],
    );
    let cs = vec![d1, d2, a1, b1, b2, a2, r1, r1t, r2, rev, a3, b3, f2, a4];
    let reference = keyed_summary(&mut m, &root);
    eprintln!(
        "reference verdicts:\n{}\nview: {}",
        reference.0.join("\n"),
        reference.1
    );
    let mut seed = 0x1234_5678_9abc_def1u64;
    for round in 0..300 {
        let mut order = cs.clone();
        shuffle(&mut order, &mut seed);
        let mut l = keyed_deliver(&doc, &root, &order);
        assert_eq!(
            l.len(),
            m.len(),
            "round {round}: held {} of {}",
            l.len(),
            m.len()
        );
        let got = keyed_summary(&mut l, &root);
        assert_eq!(got.0, reference.0, "round {round}: verdicts differ");
        assert_eq!(got.1, reference.1, "round {round}: views differ");
        assert_eq!(got.2, reference.2, "round {round}: offered differ");
    }
    for c in &cs {
        let head = hash(&doc, c);
        let at = m.view_at(&[head], Some(&root)).unwrap();
        let mut past = std::collections::HashSet::new();
        let mut stack = vec![head];
        while let Some(x) = stack.pop() {
            if past.insert(x) {
                stack.extend(m.deps(&x));
            }
        }
        let only: Vec<SignedChange> = cs
            .iter()
            .filter(|d| past.contains(&hash(&doc, d)))
            .cloned()
            .collect();
        let mut fresh = keyed_deliver(&doc, &root, &only);
        let s = fresh.settle(Some(&root)).clone();
        assert_eq!(
            at.view, s.view,
            "view_at {head} differs from a node holding only its past"
        );
    }
}
