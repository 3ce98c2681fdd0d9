//! Red-team round 31 (session 27), written by a red-team helper against fb3beee: attacks on
//! the well-founded reading of a pool's removals. `rt31_a_removal_…` (a re-join makes
//! membership not antitone, so `lower` held a node `upper` lacked) and `rt31_b_…` (an expired
//! member's removal stood) failed there; the order property passed and stays.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::change::SignedChange;
use crate::ledger::Verdict;
use crate::redteam26_tests::{
    build, del, deliver, first_op, hash, invite_op, node, section_op, shuffle, summary,
};
use crate::redteam28_tests::{join_op, verdict_of, world};
use crate::sign::NodeKey;

fn stands(v: &Verdict) -> bool {
    matches!(v, Verdict::Stands)
}

fn member_key(k: &NodeKey) -> String {
    format!("XAB/{}", k.node_id())
}

/// Membership is not antitone in the removers: X left on its own (actor 1), and concurrently
/// A removed X's first join; X re-joins on a past with A's removal but not its own leave
/// (actor 2). A `members` key is a Set, so that re-join stands only if A's removal stands:
/// X is a member exactly when A's removals count. A and B remove each other (a 2-cycle).
/// X, from the re-join's actor, removes the honest member Z.
///
/// Reading: U0 = {A, B, Z}, L0 = {X, Z}, U1 = Γ(L0) = {A, B}, L1 = Γ(U1) = {X, Z}, and
/// Γ(L1) = U1 settles, with removals counted by L1 ∋ X although X ∉ U1: X's re-join is void,
/// X's own section is void (not a member), yet X's removal of Z stands and Z, whom only that
/// removal names, loses its section.
struct NonAntitone {
    changes: Vec<SignedChange>,
    rejoin: SignedChange,
    x_section: SignedChange,
    x_removes_z: SignedChange,
    z_section: SignedChange,
    doc: crate::doc::DocId,
    l: crate::ledger::Ledger,
}

fn non_antitone() -> NonAntitone {
    let mut w = world();
    let doc = w.doc.clone();
    let (a, b, x, z) = (node(20), node(21), node(22), node(23));
    let c1 = build(
        &mut w.m,
        &node(10),
        1,
        &[w.g0],
        vec![invite_op(&doc, &node(13), vec![])],
    );
    let mut changes = vec![c1.clone()];
    let mut joins = Vec::new();
    for k in [&a, &b, &x, &z] {
        let j = build(
            &mut w.m,
            k,
            1,
            &[hash(&doc, &c1)],
            vec![join_op(&doc, w.xab, &w.real_key, k)],
        );
        changes.push(j.clone());
        joins.push(j);
    }
    let (ja, jb, jx, jz) = (&joins[0], &joins[1], &joins[2], &joins[3]);
    let sa = build(
        &mut w.m,
        &a,
        1,
        &[hash(&doc, ja)],
        vec![section_op(&doc, "SA", &a, vec![])],
    );
    let sb = build(
        &mut w.m,
        &b,
        1,
        &[hash(&doc, jb)],
        vec![section_op(&doc, "SB", &b, vec![])],
    );
    let z_section = build(
        &mut w.m,
        &z,
        1,
        &[hash(&doc, jz)],
        vec![section_op(&doc, "SZ", &z, vec![])],
    );
    changes.extend([sa.clone(), sb.clone(), z_section.clone()]);
    // A and B remove each other (fresh actors, on pasts of the other's join only).
    let a_rm_b = build(
        &mut w.m,
        &a,
        2,
        &[hash(&doc, jb)],
        vec![del(&doc, "members", &member_key(&b), first_op(jb))],
    );
    let b_rm_a = build(
        &mut w.m,
        &b,
        2,
        &[hash(&doc, ja)],
        vec![del(&doc, "members", &member_key(&a), first_op(ja))],
    );
    // X leaves on its own (actor 1), and A removes X's join concurrently (actor 3).
    let x_leaves = build(
        &mut w.m,
        &x,
        1,
        &[hash(&doc, jx)],
        vec![del(&doc, "members", &member_key(&x), first_op(jx))],
    );
    let a_rm_x = build(
        &mut w.m,
        &a,
        3,
        &[hash(&doc, jx)],
        vec![del(&doc, "members", &member_key(&x), first_op(jx))],
    );
    // X re-joins on a past with A's removal but without its own leave (actor 2).
    let rejoin = build(
        &mut w.m,
        &x,
        2,
        &[hash(&doc, &a_rm_x)],
        vec![join_op(&doc, w.xab, &w.real_key, &x)],
    );
    let x_section = build(
        &mut w.m,
        &x,
        2,
        &[hash(&doc, &rejoin)],
        vec![section_op(&doc, "SX", &x, vec![])],
    );
    let x_removes_z = build(
        &mut w.m,
        &x,
        2,
        &[hash(&doc, &x_section), hash(&doc, jz)],
        vec![del(&doc, "members", &member_key(&z), first_op(jz))],
    );
    changes.extend([
        a_rm_b,
        b_rm_a,
        x_leaves,
        a_rm_x,
        rejoin.clone(),
        x_section.clone(),
        x_removes_z.clone(),
    ]);
    NonAntitone {
        changes,
        rejoin,
        x_section,
        x_removes_z,
        z_section,
        doc,
        l: w.m,
    }
}

#[test]
fn rt31_a_removal_by_a_node_whose_membership_is_void_stands_and_voids_an_honest_member() {
    let mut s = non_antitone();
    s.l.settle(None);
    let rejoin = verdict_of(&s.l, &s.doc, &s.rejoin);
    let xs = verdict_of(&s.l, &s.doc, &s.x_section);
    let xz = verdict_of(&s.l, &s.doc, &s.x_removes_z);
    let zs = verdict_of(&s.l, &s.doc, &s.z_section);
    eprintln!("rejoin {rejoin:?}\nx section {xs:?}\nx removes z {xz:?}\nz section {zs:?}");
    assert!(
        !stands(&xz) || stands(&xs),
        "X's removal of Z stands, yet X is not a member (its own section on the same past is \
         void: {xs:?}; its re-join: {rejoin:?})"
    );
    assert!(
        stands(&zs) || stands(&xs),
        "honest Z, named only by a removal of a node that is no member, lost its section: {zs:?}"
    );
    // And whatever arrives first, the same verdicts.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..8 {
        let mut order = s.changes.clone();
        shuffle(&mut order, &mut seed);
        let mut other = deliver(&s.doc, &order);
        assert_eq!(summary(&mut s.l), summary(&mut other));
    }
}

#[test]
fn rt31_a_the_non_antitone_history_is_order_independent() {
    let mut s = non_antitone();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..8 {
        let mut order = s.changes.clone();
        shuffle(&mut order, &mut seed);
        let mut other = deliver(&s.doc, &order);
        assert_eq!(summary(&mut s.l), summary(&mut other));
    }
}

/// A member whose delegation expired on 2026-01-15 cannot place a section dated after it
/// (round 26), but its removal of the State's other node, dated 2026-06-01, stands: the
/// expiry is checked for sections only, never for the removals a member makes.
#[test]
fn rt31_b_a_member_whose_delegation_expired_still_removes_the_states_other_node() {
    use crate::authority::SignedGrant;
    use crate::ledger::actor_bytes;
    use crate::redteam26_tests::{proof, put, sign};
    let mut w = world();
    let doc = w.doc.clone();
    let (x, h) = (node(30), node(31));
    let c1 = build(
        &mut w.m,
        &node(10),
        1,
        &[w.g0],
        vec![invite_op(&doc, &node(13), vec![])],
    );
    let mut g = proof(&w.real_key, w.xab, &x).grant;
    g.expires = Some("2026-01-15".parse().unwrap());
    let expiring = SignedGrant::sign(&w.real_key, g);
    let jx = build(
        &mut w.m,
        &x,
        1,
        &[hash(&doc, &c1)],
        vec![put(
            &doc,
            "members",
            &member_key(&x),
            &expiring.to_text(),
            vec![],
        )],
    );
    let jh = build(
        &mut w.m,
        &h,
        1,
        &[hash(&doc, &c1)],
        vec![join_op(&doc, w.xab, &w.real_key, &h)],
    );
    let sh = build(
        &mut w.m,
        &h,
        1,
        &[hash(&doc, &jh)],
        vec![section_op(&doc, "SH", &h, vec![])],
    );
    assert!(
        stands(&verdict_of(&w.m, &doc, &jx)),
        "the join, dated before the expiry, stands"
    );
    let late = 1_780_272_000; // 2026-06-01
    let late_change = |l: &mut crate::ledger::Ledger, ops| {
        let data = l.change_at(
            &[hash(&doc, &jx), hash(&doc, &sh)],
            &actor_bytes(&x.node_id(), &[2; 8]),
            late,
            ops,
        );
        let sc = sign(&doc, &x, data);
        l.admit(&sc, None);
        l.settle(None);
        sc
    };
    let late_section = late_change(&mut w.m, vec![section_op(&doc, "SX", &x, vec![])]);
    let v = verdict_of(&w.m, &doc, &late_section);
    assert!(
        !stands(&v),
        "control: a late section of the expired member is void: {v:?}"
    );
    let removal = {
        let data = w.m.change_at(
            &[hash(&doc, &jx), hash(&doc, &sh)],
            &actor_bytes(&x.node_id(), &[3; 8]),
            late,
            vec![del(&doc, "members", &member_key(&h), first_op(&jh))],
        );
        let sc = sign(&doc, &x, data);
        w.m.admit(&sc, None);
        w.m.settle(None);
        sc
    };
    let v = verdict_of(&w.m, &doc, &removal);
    let hs = verdict_of(&w.m, &doc, &sh);
    assert!(
        !stands(&v),
        "a removal dated 2026-06-01 by a member whose delegation expired 2026-01-15 stands \
         ({v:?}); the State's honest node H loses its section: {hs:?}"
    );
}
