//! Red-team round 29: attacks on `writer_now` / `wanted_by_writer` (a revocation that keeps a
//! writer's change) and on the repeated pool judgement (`POOL_PASSES`, `PoolFacts::same`),
//! written by a red-team helper against 3f7e5e6, where the three attacks failed (the control
//! passed). Each test asserts the property the rules promise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::authority::{Cutoff, Grant, GrantKind, SignedGrant};
use crate::change::SignedChange;
use crate::date::Date;
use crate::id::{Principal, StateCode};
use crate::ledger::{Admitted, Verdict, actor_bytes};
use crate::pool::PoolData;
use crate::redteam16_tests::{change, doc, hash_of, key, put};
use crate::redteam23_tests::{grant, standing, sync};
use crate::redteam25_tests::{deleg, held, put_on, rotated};
use crate::redteam26_tests::{
    build, del, deliver, first_op, hash, invite_op, node, section_op, shuffle, summary,
};
use crate::redteam28_tests::{join_op, reader, verdict_of, world};
use crate::rotation_tests::target_op;
use crate::sign::NodeKey;

const T0: i64 = 1_767_225_600;

fn hexs(b: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(b)
}

/// A revocation of `node` by `signer` in XAA's document, keeping exactly `heads` (actor
/// suffix, seq, head change).
fn revocation_keeping(
    signer: &NodeKey,
    node: &NodeKey,
    heads: &[(u8, u64, &SignedChange)],
) -> SignedGrant {
    SignedGrant::sign(
        signer,
        Grant {
            kind: GrantKind::Revocation,
            principal: Principal::State(StateCode::from_static("XAA")),
            node: node.node_id(),
            scope: None,
            expires: None,
            issued: Date::from_unix_seconds(T0),
            key: signer.node_id(),
            cutoff: heads
                .iter()
                .map(|(suffix, seq, c)| Cutoff {
                    doc: doc(),
                    actor: hexs(&actor_bytes(&node.node_id(), &[*suffix; 8])),
                    seq: *seq,
                    head: Some(hash_of(c).to_string()),
                })
                .collect(),
            serial: 0,
            kept: vec![],
            recovery: None,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// ATTACK 1: `writer_now` turns false as soon as *any* revocation of the writer is held, even one
// whose cut-off keeps the very change that wants the run.

/// The story of redteam25's attack 1 / redteam27's attack 4 (the old epoch's ministry M wrote
/// TM; the State's node S, kept through rotation and recovery, built TS on it; the recovery
/// moved the State to epoch 1, so M's delegation, signed by K1, no longer passes the screen).
/// S's change pulls M's change through the screen because S is a writer *now*
/// (`wanted_by_writer` → `writer_now`). With `revoke`, the new epoch then retires S honestly:
/// its node NN (delegated by the new key) places a revocation of S whose cut-off KEEPS S's
/// work, TS included. A takes the changes before the revocation; C, which a pinned peer fed
/// the revocation before M's run (a valid causal order), must end with the same set.
fn kept_writer_story(revoke: bool) {
    let (k0, rec, k1, n1) = (key(40), key(41), key(42), key(43));
    let root = k0.node_id();
    let s = key(1);
    let m = key(2);
    let nn = key(3);
    let (mut a, _, ds, c_rot) = rotated(&k1, Some(&rec));
    let rv = grant(&rec, GrantKind::Recovery, 1, &n1.node_id(), &[&ds]);
    let mut c = a.clone();
    // S's recovery, on its heads then (before it saw M's work): S actor 1, seq 3.
    let c_rv = change(&a, &s, 1, &[hash_of(&c_rot)], vec![put(&rv)]);
    // Before the recovery, on A: K1 delegates M, M writes, S builds on M's work (actor 2).
    let dm = deleg(&k1, &m);
    let c_dm = put_on(&mut a, &root, &m, 1, &[hash_of(&c_rot)], vec![put(&dm)]);
    let c_m = put_on(
        &mut a,
        &root,
        &m,
        1,
        &[hash_of(&c_dm)],
        vec![target_op("TM")],
    );
    let c_s = put_on(
        &mut a,
        &root,
        &s,
        2,
        &[hash_of(&c_m)],
        vec![target_op("TS")],
    );
    assert!(matches!(a.admit(&c_rv, Some(&root)), Admitted::New(_)));
    a.settle(Some(&root));
    assert_eq!(a.key_chain(&root).current, n1.node_id());
    // The new epoch's node NN delegates itself by the new key, then (with `revoke`) retires
    // S, keeping all S wrote (actor 1 up to the recovery, actor 2 up to TS).
    let dn = deleg(&n1, &nn);
    let c_dn = put_on(&mut a, &root, &nn, 1, &[hash_of(&c_rv)], vec![put(&dn)]);
    let mut order = vec![c_rv.clone(), c_dn.clone()];
    if revoke {
        let rs = revocation_keeping(&n1, &s, &[(1, 3, &c_rv), (2, 1, &c_s)]);
        let c_rs = put_on(&mut a, &root, &nn, 1, &[hash_of(&c_dn)], vec![put(&rs)]);
        order.push(c_rs);
    }
    a.settle(Some(&root));
    let v_s = a.verdict(&hash_of(&c_s)).cloned();
    assert!(
        matches!(v_s, Some(Verdict::Stands)),
        "S's TS stands on A (the revocation keeps it): {v_s:?}"
    );
    // C: the recovery, the new node's delegation and the revocation first, then M's run and
    // S's change.
    order.extend([c_dm, c_m.clone(), c_s.clone()]);
    for x in &order {
        c.admit(x, Some(&root));
    }
    c.settle(Some(&root));
    sync(&mut a, &mut c, &root);
    assert!(
        c.has(&hash_of(&c_s)),
        "S's change, kept by the State's own revocation and standing on A, is stranded on C \
         (C holds TM: {})",
        c.has(&hash_of(&c_m))
    );
    assert_eq!(
        held(&a),
        held(&c),
        "A and C hold different sets after a sync"
    );
    assert_eq!(standing(&mut a, &root), standing(&mut c, &root));
}

/// Failed before the fix: `writer_now` turned false at any revocation held, so on C, S's want
/// of M's change no longer passed the screen, and TS, a change the State's own revocation
/// says stands, waited there for good.
#[test]
fn rt29_a_revocation_that_keeps_a_writers_change_strands_it_where_it_came_first() {
    kept_writer_story(true);
}

/// Control: the same story without the revocation heals on a sync (redteam27's fix).
#[test]
fn rt29_a_control_without_the_revocation_heals() {
    kept_writer_story(false);
}

// ---------------------------------------------------------------------------------------------
// ATTACK 2: pool facts that never settle. Two removals, each void exactly when the other
// stands, flip the facts every pass; after POOL_PASSES the last pass is judged against facts
// the pass before it made, which contradict the verdicts it returns.

fn is_member(data: &PoolData, xab: StateCode, n: &NodeKey) -> bool {
    data.members
        .get(&xab)
        .is_some_and(|ms| ms.contains_key(&n.node_id()))
}

fn counted(data: &PoolData, xab: StateCode, t: &str) -> bool {
    data.contributions
        .get(&xab)
        .is_some_and(|c| c.contains_key(t))
}

/// The State's honest node H (a member, its section T1 linked before anything else) removes
/// the rogue node R (a leaked key of the same State, also a member). R, on a past without
/// H's removal (it chooses its deps), removes H. Pass 1 (each as of its past): both
/// removals stand. Pass 2 (members in force in the whole set): neither remover is a member,
/// both void. Pass 3: both members again, both stand... The facts never settle; the last
/// pass (6, even) voids both removals, yet is judged against pass 5's facts, in which H was
/// removed: the view shows H (and R) as members, while H's section, written before any
/// removal, is void. H's removal of R did nothing, and R voided H's work by a removal that is
/// itself void.
#[test]
fn rt29_b_mutual_removal_never_settles_and_voids_a_member_in_the_view() {
    let mut w = world();
    let doc = w.doc.clone();
    let h = node(15);
    let r = node(17);
    let c1 = build(
        &mut w.m,
        &node(10),
        1,
        &[w.g0],
        vec![invite_op(&doc, &node(13), vec![])],
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
        vec![section_op(&doc, "T1", &h, vec![])],
    );
    let jr = build(
        &mut w.m,
        &r,
        1,
        &[hash(&doc, &c1)],
        vec![join_op(&doc, w.xab, &w.real_key, &r)],
    );
    // H removes R (it saw R's join).
    let h_rm = build(
        &mut w.m,
        &h,
        1,
        &[hash(&doc, &sh), hash(&doc, &jr)],
        vec![del(
            &doc,
            "members",
            &format!("XAB/{}", r.node_id()),
            first_op(&jr),
        )],
    );
    // R removes H, on a past without H's removal of R.
    let r_rm = build(
        &mut w.m,
        &r,
        1,
        &[hash(&doc, &jr), hash(&doc, &jh)],
        vec![del(
            &doc,
            "members",
            &format!("XAB/{}", h.node_id()),
            first_op(&jh),
        )],
    );
    let v_h_rm = verdict_of(&w.m, &doc, &h_rm);
    let v_r_rm = verdict_of(&w.m, &doc, &r_rm);
    let v_sh = verdict_of(&w.m, &doc, &sh);
    let data = reader(&mut w);
    let h_member = is_member(&data, w.xab, &h);
    let r_member = is_member(&data, w.xab, &r);
    let t1 = counted(&data, w.xab, "T1");
    eprintln!(
        "H's removal of R: {v_h_rm:?}; R's removal of H: {v_r_rm:?}; H member: {h_member}; \
         R member: {r_member}; H's section: {v_sh:?}; counted: {t1}"
    );
    assert!(
        !h_member || (matches!(v_sh, Verdict::Stands) && t1),
        "H is a member in the view but its section (before any removal) is void: \
         H's removal of R {v_h_rm:?}, R's removal of H {v_r_rm:?}, H's section {v_sh:?}"
    );
}

/// The same cycle made by two rogue nodes alone (two leaked keys of the State, A and B, both
/// joined under the real key): A removes B and the honest node H, B removes A. The facts
/// flip every pass; the final verdicts void all three removals, so the view shows H as a
/// member, yet H's section (which it wrote before anything) is void, judged against pass 5's
/// facts. The verdict also hangs on the parity of POOL_PASSES, not on the set.
#[test]
fn rt29_c_two_rogue_nodes_flip_the_facts_and_void_an_honest_members_section() {
    let mut w = world();
    let doc = w.doc.clone();
    let h = node(15);
    let a = node(17);
    let b = node(18);
    let key = |n: &NodeKey| format!("XAB/{}", n.node_id());
    let c1 = build(
        &mut w.m,
        &node(10),
        1,
        &[w.g0],
        vec![invite_op(&doc, &node(13), vec![])],
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
        vec![section_op(&doc, "T1", &h, vec![])],
    );
    let ja = build(
        &mut w.m,
        &a,
        1,
        &[hash(&doc, &c1)],
        vec![join_op(&doc, w.xab, &w.real_key, &a)],
    );
    let jb = build(
        &mut w.m,
        &b,
        1,
        &[hash(&doc, &c1)],
        vec![join_op(&doc, w.xab, &w.real_key, &b)],
    );
    let a_rm = build(
        &mut w.m,
        &a,
        1,
        &[hash(&doc, &ja), hash(&doc, &jb), hash(&doc, &jh)],
        vec![
            del(&doc, "members", &key(&b), first_op(&jb)),
            del(&doc, "members", &key(&h), first_op(&jh)),
        ],
    );
    let b_rm = build(
        &mut w.m,
        &b,
        1,
        &[hash(&doc, &jb), hash(&doc, &ja)],
        vec![del(&doc, "members", &key(&a), first_op(&ja))],
    );
    let cs = vec![c1, jh, sh.clone(), ja, jb, a_rm.clone(), b_rm.clone()];
    let v_a = verdict_of(&w.m, &doc, &a_rm);
    let v_b = verdict_of(&w.m, &doc, &b_rm);
    let v_sh = verdict_of(&w.m, &doc, &sh);
    let data = reader(&mut w);
    let h_member = is_member(&data, w.xab, &h);
    let t1 = counted(&data, w.xab, "T1");
    eprintln!(
        "A's removals: {v_a:?}; B's removal: {v_b:?}; H member: {h_member}; H's section: \
         {v_sh:?}; counted: {t1}"
    );
    // Arrival order does not change it (each pass is a function of the set): the split is
    // between the view and the verdicts, on every node alike.
    let reference = summary(&mut w.m);
    let mut seed = 0x0bad_cafe_dead_beefu64;
    for round in 0..40 {
        let mut order = cs.clone();
        shuffle(&mut order, &mut seed);
        let mut l = deliver(&doc, &order);
        assert_eq!(
            summary(&mut l).0,
            reference.0,
            "round {round}: verdicts differ"
        );
    }
    assert!(
        !h_member || (matches!(v_sh, Verdict::Stands) && t1),
        "H is a member in the view but its section is void: A's removals {v_a:?}, \
         B's removal {v_b:?}, H's section {v_sh:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Round 28's open finding: a section put at the State's key concurrently.

/// XAB's real node links T1. A puppet, joined for XAB under a key the coordinator made up
/// (and unverified by every reader), puts its own T1 on a past without the real section, with
/// a text that sorts after it. No rule of the gate can refuse it (it replaces nothing), and a
/// set shows one value: the puppet's, which readers drop, so the State's own link vanished.
/// Readers must still count the real node's section, in any arrival order.
#[test]
fn rt29_d_a_concurrent_section_by_an_unverified_member_hides_no_real_link() {
    let mut w = world();
    let doc = w.doc.clone();
    let fake_key = node(14);
    let honest = node(15);
    let puppet = node(16);
    let c1 = build(
        &mut w.m,
        &node(10),
        1,
        &[w.g0],
        vec![invite_op(&doc, &fake_key, vec![])],
    );
    let jp = build(
        &mut w.m,
        &puppet,
        1,
        &[hash(&doc, &c1)],
        vec![join_op(&doc, w.xab, &fake_key, &puppet)],
    );
    let c2 = build(
        &mut w.m,
        &node(10),
        1,
        &[hash(&doc, &jp)],
        vec![invite_op(&doc, &w.real_key, first_op(&c1))],
    );
    let jh = build(
        &mut w.m,
        &honest,
        1,
        &[hash(&doc, &c2)],
        vec![join_op(&doc, w.xab, &w.real_key, &honest)],
    );
    let sh = build(
        &mut w.m,
        &honest,
        1,
        &[hash(&doc, &jh)],
        vec![section_op(&doc, "T1", &honest, vec![])],
    );
    let late = serde_json::json!({
        "target": "T1", "contributed": "2099-12-31", "by": puppet.node_id().to_string()
    })
    .to_string();
    let sp = build(
        &mut w.m,
        &puppet,
        1,
        &[hash(&doc, &jh)],
        vec![crate::redteam26_tests::put(
            &doc,
            "sections",
            "XAB/T1",
            &late,
            vec![],
        )],
    );
    let data = reader(&mut w);
    let by = data
        .contributions
        .get(&w.xab)
        .and_then(|c| c.get("T1"))
        .and_then(|c| c.by);
    eprintln!(
        "puppet's section: {:?}; real section: {:?}; counted by: {by:?}",
        verdict_of(&w.m, &doc, &sp),
        verdict_of(&w.m, &doc, &sh)
    );
    assert_eq!(
        by,
        Some(honest.node_id()),
        "XAB's real link to T1 is hidden"
    );
    let cs = vec![c1, jp, c2, jh, sh, sp];
    let reference = summary(&mut w.m);
    let mut seed = 0x5ec7_10e5_u64;
    for round in 0..20 {
        let mut order = cs.clone();
        shuffle(&mut order, &mut seed);
        let mut l = deliver(&doc, &order);
        assert_eq!(
            summary(&mut l).0,
            reference.0,
            "round {round}: verdicts differ"
        );
        let view = l.settle(None).view.clone();
        let d = PoolData::from_json(
            &view,
            &w.pool,
            &crate::authority::Trust::default()
                .with(crate::id::Principal::State(w.xab), w.real_key.node_id()),
        );
        assert_eq!(
            d.contributions
                .get(&w.xab)
                .and_then(|c| c.get("T1"))
                .and_then(|c| c.by),
            by
        );
    }
}
