//! Key rotation and recovery: the principal's keys as a document's rotations and recoveries
//! make them, judged over the set held, whatever the order the changes came in.

use proptest::prelude::*;

use serde_json::Value as Json;

use crate::authority::{Grant, GrantKind, KeyChain, Scope, SignedGrant, Signers};
use crate::change::{FlatAction, FlatOp, SignedChange};
use crate::doc::DocId;
use crate::id::{NodeId, Principal};
use crate::ledger::{Admitted, Ledger, actor_bytes};
use crate::sign::{NodeKey, sign_change};

const T0: i64 = 1_767_225_600; // 2026-01-01

fn k(seed: u8) -> NodeKey {
    NodeKey::from_seed(&[seed; 32])
}

/// The State key trusted everywhere (the root), and its recovery key.
fn root() -> NodeKey {
    k(40)
}
fn recovery() -> NodeKey {
    k(41)
}

fn doc() -> DocId {
    DocId::State("XAA".parse().unwrap())
}

fn signed_grant(
    by: &NodeKey,
    kind: GrantKind,
    about: &NodeId,
    serial: u32,
    kept: &[&SignedGrant],
) -> SignedGrant {
    SignedGrant::sign(
        by,
        Grant {
            kind,
            principal: Principal::State("XAA".parse().unwrap()),
            node: *about,
            scope: (kind == GrantKind::Delegation).then_some(Scope::ALL),
            expires: None,
            issued: "2026-01-01".parse().unwrap(),
            key: by.node_id(),
            cutoff: Vec::new(),
            serial,
            kept: kept.iter().map(|g| g.storage_key()).collect(),
            recovery: None,
        },
    )
}

fn delegation(by: &NodeKey, node: &NodeKey) -> SignedGrant {
    signed_grant(by, GrantKind::Delegation, &node.node_id(), 0, &[])
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

pub(super) fn target_op(id: &str) -> FlatOp {
    let mut t = crate::model::tests::xaa_t1();
    t.id = id.into();
    FlatOp {
        container: doc().kind().container("targets").unwrap(),
        key: format!("{id}/v1"),
        action: FlatAction::Put {
            value: serde_json::to_value(&t).unwrap().to_string(),
            preds: vec![],
        },
    }
}

/// `author`'s next change on `l`, built on what stands there, admitted there; the change.
fn write(l: &mut Ledger, author: &NodeKey, ops: Vec<FlatOp>) -> SignedChange {
    let key = root().node_id();
    l.settle(Some(&key));
    let data = l.next_change(&actor_bytes(&author.node_id(), &[7; 8]), T0, ops);
    let h = data.to_automerge(l.doc()).unwrap().hash();
    let sc = SignedChange {
        data,
        signature: sign_change(author, l.doc(), &h).to_vec(),
    };
    assert!(matches!(l.admit(&sc, Some(&key)), Admitted::New(_)));
    l.settle(Some(&key));
    sc
}

fn target_ids(view: &Json) -> Vec<String> {
    let mut ids: Vec<String> = view["targets"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// `changes` in the order `seed` shuffles them, and the generator's state after.
fn shuffled(changes: &[SignedChange], seed: u64) -> (Vec<SignedChange>, u64) {
    let mut order: Vec<SignedChange> = changes.to_vec();
    let mut rng = seed | 1;
    for i in (1..order.len()).rev() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        order.swap(i, (rng % (i as u64 + 1)) as usize);
    }
    (order, rng)
}

/// Admits `changes` in the order `seed` shuffles them, in batches of random sizes, and
/// returns the settled view's target keys.
fn replay(changes: &[SignedChange], seed: u64, recovery_known: bool) -> (Vec<String>, KeyChain) {
    let key = root().node_id();
    let (order, mut rng) = shuffled(changes, seed);
    let mut l = Ledger::new(&doc());
    l.set_recovery(recovery_known.then(|| recovery().node_id()));
    // Whatever is refused for lack of what is held comes again, as sync sends it again.
    for _round in 0..order.len() + 1 {
        let mut rest = order.clone();
        while !rest.is_empty() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let take = 1 + (rng % rest.len() as u64) as usize;
            let batch: Vec<SignedChange> = rest.drain(..take).collect();
            l.admit_batch(batch, Some(&key), None, |_| Ok::<_, ()>(false))
                .unwrap();
        }
    }
    let s = l.settle(Some(&key)).clone();
    (target_ids(&s.view), (*l.key_chain(&key)).clone())
}

/// What the scenarios below write, and the keys they use.
struct Story {
    changes: Vec<SignedChange>,
}

/// The State's node (1) and a ministry (2), delegated by the root; the State rotates to key
/// 50, keeping both delegations, and delegates ministry 3 with the new key, which writes T3.
/// After the rotation the old key signs a delegation of node 4, which writes T4; ministry 2
/// writes T2 after the rotation.
fn rotation_story() -> Story {
    let (first, m2, m3, m4) = (k(1), k(2), k(3), k(4));
    let new_key = k(50);
    let mut l = Ledger::new(&doc());
    let d1 = delegation(&root(), &first);
    let d2 = delegation(&root(), &m2);
    let mut changes = vec![
        write(&mut l, &first, vec![grant_op(&d1)]),
        write(&mut l, &first, vec![grant_op(&d2)]),
    ];
    // Node 4's delegation by the old key is written where the rotation is not yet held.
    let mut before = l.clone();
    let rotation = signed_grant(
        &root(),
        GrantKind::Rotation,
        &new_key.node_id(),
        0,
        &[&d1, &d2],
    );
    changes.push(write(&mut l, &first, vec![grant_op(&rotation)]));
    let d3 = delegation(&new_key, &m3);
    changes.push(write(&mut l, &first, vec![grant_op(&d3)]));
    changes.push(write(&mut l, &m3, vec![target_op("T3")]));
    changes.push(write(&mut l, &m2, vec![target_op("T2")]));
    let d4 = delegation(&root(), &m4);
    changes.push(write(&mut before, &m4, vec![grant_op(&d4)]));
    changes.push(write(&mut before, &m4, vec![target_op("T4")]));
    Story { changes }
}

/// The root key leaks to node 9: it delegates itself with it, writes a forged target TX,
/// revokes the honest ministry 2 and rotates the key to its own key 60. The State recovers
/// with its recovery key to key 70, keeping its own and ministry 2's delegations; key 70
/// delegates ministry 5, which writes T5; ministry 2 writes T2.
fn recovery_story() -> Story {
    let (first, m2, m5, thief) = (k(1), k(2), k(5), k(9));
    let (thief_key, recovered) = (k(60), k(70));
    let mut l = Ledger::new(&doc());
    l.set_recovery(Some(recovery().node_id()));
    let d1 = delegation(&root(), &first);
    let d2 = delegation(&root(), &m2);
    let mut changes = vec![
        write(&mut l, &first, vec![grant_op(&d1)]),
        write(&mut l, &first, vec![grant_op(&d2)]),
    ];
    let mut stolen = l.clone();
    let d9 = delegation(&root(), &thief);
    changes.push(write(&mut stolen, &thief, vec![grant_op(&d9)]));
    changes.push(write(&mut stolen, &thief, vec![target_op("TX")]));
    let revoke2 = signed_grant(&root(), GrantKind::Revocation, &m2.node_id(), 0, &[]);
    changes.push(write(&mut stolen, &thief, vec![grant_op(&revoke2)]));
    let rotate = signed_grant(
        &root(),
        GrantKind::Rotation,
        &thief_key.node_id(),
        0,
        &[&d9],
    );
    changes.push(write(&mut stolen, &thief, vec![grant_op(&rotate)]));
    let recover = signed_grant(
        &recovery(),
        GrantKind::Recovery,
        &recovered.node_id(),
        1,
        &[&d1, &d2],
    );
    changes.push(write(&mut l, &first, vec![grant_op(&recover)]));
    let d5 = delegation(&recovered, &m5);
    changes.push(write(&mut l, &first, vec![grant_op(&d5)]));
    changes.push(write(&mut l, &m5, vec![target_op("T5")]));
    changes.push(write(&mut l, &m2, vec![target_op("T2")]));
    Story { changes }
}

#[test]
fn a_rotation_hands_over_and_the_old_key_signs_nothing_after() {
    let story = rotation_story();
    let (ids, chain) = replay(&story.changes, 1, false);
    assert_eq!(
        ids,
        vec!["T2/v1", "T3/v1"],
        "T4's delegation by the old key is void"
    );
    assert_eq!(chain.current, k(50).node_id());
    assert_eq!(chain.retired, vec![(root().node_id(), GrantKind::Rotation)]);
}

#[test]
fn a_recovery_voids_what_the_leaked_key_signed() {
    let story = recovery_story();
    let (ids, chain) = replay(&story.changes, 1, true);
    assert_eq!(
        ids,
        vec!["T2/v1", "T5/v1"],
        "TX is void, T2 stands: the revocation is void"
    );
    assert_eq!(chain.current, k(70).node_id());
    assert_eq!(chain.epoch, 1);
    // A node that knows no recovery key cannot follow it, and says so: the thief's rotation
    // is what it follows.
    let (ids, chain) = replay(&story.changes, 1, false);
    assert_eq!(ids, vec!["TX/v1"]);
    assert_eq!(chain.current, k(60).node_id());
    assert!(chain.notes.iter().any(|n| n.contains("cannot check")));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any arrival order and batching gives the same verdicts.
    #[test]
    fn rotation_and_recovery_reach_one_verdict_in_any_order(seed in any::<u64>()) {
        let (ids, chain) = replay(&rotation_story().changes, seed, false);
        prop_assert_eq!(ids, vec!["T2/v1".to_string(), "T3/v1".to_string()]);
        prop_assert_eq!(chain.current, k(50).node_id());
        let (ids, chain) = replay(&recovery_story().changes, seed, true);
        prop_assert_eq!(ids, vec!["T2/v1".to_string(), "T5/v1".to_string()]);
        prop_assert_eq!(chain.current, k(70).node_id());
    }
}

#[test]
fn a_key_that_signs_two_rotations_freezes_the_chain_until_a_recovery() {
    let r = root();
    let honest = delegation(&r, &k(1));
    let thiefs = delegation(&r, &k(9));
    // The State rotated keeping its delegation; the root leaked later and the thief forks,
    // keeping its own and the honest one: neither rotation is followed, the root is not in
    // force again, and nothing the root signed stands (what a fork keeps is the forked key's
    // word, and that key is the thief's too).
    let a = signed_grant(&r, GrantKind::Rotation, &k(50).node_id(), 0, &[&honest]);
    let b = signed_grant(
        &r,
        GrantKind::Rotation,
        &k(51).node_id(),
        0,
        &[&honest, &thiefs],
    );
    let chain = KeyChain::resolve(
        r.node_id(),
        Some(recovery().node_id()),
        [a.clone(), b.clone()],
    );
    assert!(chain.frozen);
    assert!(
        chain
            .notes
            .iter()
            .any(|n| n.contains("2 different rotations"))
    );
    assert!(!chain.accepts(&honest), "a fork keeps nothing");
    assert!(!chain.accepts(&thiefs));
    assert!(
        !chain.accepts(&delegation(&r, &k(8))),
        "the root signs nothing new"
    );
    assert!(!chain.accepts(&delegation(&k(51), &k(8))));
    // The recovery settles it; rotations of the epoch it ended count no more.
    let rec = signed_grant(
        &recovery(),
        GrantKind::Recovery,
        &k(52).node_id(),
        1,
        &[&honest],
    );
    let chain = KeyChain::resolve(r.node_id(), Some(recovery().node_id()), [a, b, rec]);
    assert_eq!(chain.current, k(52).node_id());
    assert!(!chain.frozen);
    assert!(
        chain.accepts(&honest),
        "the recovery keeps what the State wants"
    );
    assert!(!chain.accepts(&thiefs));
}

#[test]
fn only_the_recovery_key_recovers_and_only_once_an_epoch() {
    let r = root();
    let rec_id = Some(recovery().node_id());
    // Signed by the State key (leaked), or any other key: not a recovery.
    let forged = signed_grant(&r, GrantKind::Recovery, &k(60).node_id(), 1, &[]);
    let other = signed_grant(&k(61), GrantKind::Recovery, &k(60).node_id(), 1, &[]);
    let chain = KeyChain::resolve(r.node_id(), rec_id, [forged, other]);
    assert_eq!(chain.current, r.node_id());
    // Two recoveries for one epoch by the recovery key: neither is followed, and the key
    // they were made to retire is not in force either (the recovery key leaked: it stops the
    // State until its operators set a new root, and never speaks for it).
    let a = signed_grant(&recovery(), GrantKind::Recovery, &k(62).node_id(), 1, &[]);
    let b = signed_grant(&recovery(), GrantKind::Recovery, &k(63).node_id(), 1, &[]);
    let chain = KeyChain::resolve(r.node_id(), rec_id, [a.clone(), b]);
    assert_eq!(chain.current, r.node_id());
    assert!(chain.frozen);
    assert!(!chain.accepts(&delegation(&r, &k(8))));
    assert!(!chain.accepts(&delegation(&k(62), &k(8))));
    assert!(
        chain
            .notes
            .iter()
            .any(|n| n.contains("2 different recoveries") && n.contains("--state-key"))
    );
    // A later epoch needs the one before it.
    let c = signed_grant(&recovery(), GrantKind::Recovery, &k(64).node_id(), 2, &[]);
    let chain = KeyChain::resolve(r.node_id(), rec_id, [c.clone()]);
    assert_eq!(chain.current, r.node_id());
    let chain = KeyChain::resolve(r.node_id(), rec_id, [c, a]);
    assert_eq!(chain.current, k(64).node_id());
    assert_eq!(chain.epoch, 2);
}

#[test]
fn a_recovery_can_name_the_next_recovery_key() {
    let r = root();
    let next = k(45);
    let mut g = Grant {
        kind: GrantKind::Recovery,
        principal: Principal::State("XAA".parse().unwrap()),
        node: k(62).node_id(),
        scope: None,
        expires: None,
        issued: "2026-01-01".parse().unwrap(),
        key: recovery().node_id(),
        cutoff: Vec::new(),
        serial: 1,
        kept: Vec::new(),
        recovery: Some(next.node_id()),
    };
    let first = SignedGrant::sign(&recovery(), g.clone());
    // The old recovery key cannot sign epoch 2; the one named can.
    g.serial = 2;
    g.node = k(63).node_id();
    let by_old = SignedGrant::sign(&recovery(), g.clone());
    g.key = next.node_id();
    let by_next = SignedGrant::sign(&next, g);
    let rec_id = Some(recovery().node_id());
    let chain = KeyChain::resolve(r.node_id(), rec_id, [first.clone(), by_old]);
    assert_eq!(chain.current, k(62).node_id());
    let chain = KeyChain::resolve(r.node_id(), rec_id, [first, by_next]);
    assert_eq!(chain.current, k(63).node_id());
}

#[test]
fn a_view_at_heads_before_the_recovery_reads_the_chain_off_that_past_only() {
    let story = recovery_story();
    let key = root().node_id();
    let mut l = Ledger::new(&doc());
    l.set_recovery(Some(recovery().node_id()));
    l.admit_batch(story.changes.clone(), Some(&key), None, |_| {
        Ok::<_, ()>(false)
    })
    .unwrap();
    // Heads: the thief's forged target, before the recovery.
    let tx = story.changes[3].data.to_automerge(&doc()).unwrap().hash();
    let at = l.view_at(&[tx], Some(&key)).unwrap();
    assert_eq!(target_ids(&at.view), vec!["TX/v1"]);
    let now = l.settle(Some(&key)).clone();
    assert!(!target_ids(&now.view).contains(&"TX/v1".to_string()));
}

/// A recovery placed by a node no key delegates (a State's node that never wrote, whose key
/// file is lost) moves the chain and is offered: judged with the chain it starts, it used to
/// count as a dead record ("not delegated"), found by trying `state-key recover` on a fresh
/// home. It does not stand (since session 23 no change of a node without a delegation does:
/// a stranger's concurrent copies of a record stood, and were relayed, without end).
#[test]
fn a_recovery_placed_by_a_node_with_no_delegation_moves_the_chain() {
    let (fresh, ministry, recovered) = (k(1), k(3), k(70));
    let mut l = Ledger::new(&doc());
    l.set_recovery(Some(recovery().node_id()));
    let recover = signed_grant(
        &recovery(),
        GrantKind::Recovery,
        &recovered.node_id(),
        1,
        &[],
    );
    let c = write(&mut l, &fresh, vec![grant_op(&recover)]);
    let h = c.data.to_automerge(&doc()).unwrap().hash();
    assert!(l.is_exported(&h));
    assert_eq!(l.key_chain(&root().node_id()).current, recovered.node_id());
    // The new key delegates a ministry, which writes.
    write(
        &mut l,
        &ministry,
        vec![grant_op(&delegation(&recovered, &ministry))],
    );
    let c = write(&mut l, &ministry, vec![target_op("T1")]);
    let h = c.data.to_automerge(&doc()).unwrap().hash();
    assert_eq!(l.verdict(&h), Some(&crate::ledger::Verdict::Stands));
}

/// A change by `author` built on `base` (not admitted anywhere) placing `g`.
fn placed(base: &Ledger, author: &NodeKey, g: &SignedGrant) -> SignedChange {
    let data = base.next_change(
        &actor_bytes(&author.node_id(), &[7; 8]),
        T0,
        vec![grant_op(g)],
    );
    let h = data.to_automerge(base.doc()).unwrap().hash();
    SignedChange {
        data,
        signature: sign_change(author, base.doc(), &h).to_vec(),
    }
}

/// The root key has leaked, and the thief signs `n` rotations from it, each placed by a
/// different stranger, on a document where the State's node holds its delegation. The
/// changes, and the delegation.
fn fork_flood(n: u8) -> (Ledger, Vec<SignedChange>, SignedGrant) {
    let mut l = Ledger::new(&doc());
    l.set_recovery(Some(recovery().node_id()));
    let d1 = delegation(&root(), &k(1));
    write(&mut l, &k(1), vec![grant_op(&d1)]);
    let flood = (0..n)
        .map(|i| {
            let g = signed_grant(
                &root(),
                GrantKind::Rotation,
                &k(100 + i).node_id(),
                0,
                &[&d1],
            );
            placed(&l, &k(150 + i % 100), &g)
        })
        .collect();
    (l, flood, d1)
}

fn rotation_key_of(c: &SignedChange) -> String {
    let FlatAction::Put { value, .. } = &c.data.ops[0].action else {
        unreachable!()
    };
    SignedGrant::parse(value).unwrap().storage_key()
}

/// How many of `l`'s changes that place a rotation it holds, and how many it offers.
fn rotations_held_and_offered(l: &Ledger) -> (usize, usize) {
    let key = root().node_id();
    let mut l = l.clone();
    l.settle(Some(&key));
    let rotations: Vec<ChangeHash> = l
        .signed_changes()
        .filter(|(_, c)| {
            c.data
                .ops
                .iter()
                .any(|op| Some(op.container) == doc().kind().container("rotations"))
        })
        .map(|(h, _)| h)
        .collect();
    let offered = rotations.iter().filter(|h| l.is_exported(h)).count();
    (rotations.len(), offered)
}

use automerge::ChangeHash;

#[test]
fn a_flood_of_forks_costs_a_node_at_most_max_forks_records_and_offers_two() {
    use crate::authority::MAX_FORKS;
    let key = root().node_id();
    let (base, mut flood, d1) = fork_flood(40);
    // Descending storage keys: each record is, with it, among the two smallest, so only the
    // per-point bound stops the flood.
    flood.sort_by_key(|c| std::cmp::Reverse(rotation_key_of(c)));
    let mut a = base.clone();
    for c in &flood {
        a.admit(c, Some(&key));
    }
    let (held, offered) = rotations_held_and_offered(&a);
    assert!(held <= MAX_FORKS, "held {held}");
    assert_eq!(offered, 2, "a fork is proved by two");
    // Ascending: only the first two are ever read.
    let mut b = base.clone();
    for c in flood.iter().rev() {
        b.admit(c, Some(&key));
    }
    assert_eq!(rotations_held_and_offered(&b), (2, 2));
    // Both are frozen, and keep nothing of the root's.
    for l in [&a, &b] {
        let chain = l.key_chain(&key);
        assert!(chain.frozen);
        assert!(!chain.accepts(&d1));
    }
    // A relay fed what A offers takes those two. (A, its bound reached, reads the two
    // smallest of what it holds, not B's: where a thief floods a node directly, nodes may
    // read different pairs, and offer them in vain, but their verdicts are the same.)
    let mut c = base.clone();
    let mut a2 = a.clone();
    a2.settle(Some(&key));
    for ch in crate::redteam15_tests::offered(&a2) {
        c.admit(&ch, Some(&key));
    }
    assert_eq!(rotations_held_and_offered(&c), (2, 2));
    let read = |l: &Ledger| l.key_chain(&key).read.clone();
    assert_eq!(read(&c), read(&a));
    assert_eq!(a.key_chain(&key).frozen, b.key_chain(&key).frozen);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// In any arrival order, a node holds at most `MAX_FORKS` of a fork's records, offers two,
    /// and reaches the same verdict: frozen, nothing of the forked key standing.
    #[test]
    fn a_fork_flood_is_bounded_and_judged_alike_in_any_order(seed in any::<u64>()) {
        let key = root().node_id();
        let (base, flood, d1) = fork_flood(24);
        let (order, _) = shuffled(&flood, seed);
        let mut l = base.clone();
        for c in &order {
            l.admit(c, Some(&key));
        }
        let (held, offered) = rotations_held_and_offered(&l);
        prop_assert!(held <= crate::authority::MAX_FORKS);
        prop_assert_eq!(offered, 2);
        let chain = l.key_chain(&key);
        prop_assert!(chain.frozen);
        prop_assert!(!chain.accepts(&d1));
        prop_assert_eq!(chain.read.len(), 2);
    }
}

#[test]
fn a_retired_recovery_key_that_signs_again_freezes_the_state_and_hands_nothing_back() {
    let r = root();
    let rec_id = Some(recovery().node_id());
    // The State recovered to key 62, naming a new recovery key 45; the old recovery key then
    // leaked, and its thief signs a second recovery for the same epoch.
    let honest = {
        let mut g = signed_grant(&recovery(), GrantKind::Recovery, &k(62).node_id(), 1, &[]).grant;
        g.recovery = Some(k(45).node_id());
        SignedGrant::sign(&recovery(), g)
    };
    let thiefs = signed_grant(&recovery(), GrantKind::Recovery, &k(66).node_id(), 1, &[]);
    let chain = KeyChain::resolve(r.node_id(), rec_id, [honest.clone(), thiefs.clone()]);
    assert!(chain.frozen);
    for signer in [&r, &k(62), &k(66)] {
        assert!(
            !chain.accepts(&delegation(signer, &k(8))),
            "no key speaks for the State, the root (the key the recovery retired) least of all"
        );
    }
    // A node holding the honest recovery takes the thief's record from anyone (so every
    // node freezes alike), and then follows no rotation of the root's.
    let mut l = Ledger::new(&doc());
    l.set_recovery(rec_id);
    write(&mut l, &k(1), vec![grant_op(&delegation(&r, &k(1)))]);
    let base = l.clone();
    assert!(matches!(
        l.admit(&placed(&base, &k(1), &honest), Some(&r.node_id())),
        Admitted::New(_)
    ));
    assert_eq!(l.key_chain(&r.node_id()).current, k(62).node_id());
    assert!(matches!(
        l.admit(&placed(&base, &k(77), &thiefs), Some(&r.node_id())),
        Admitted::New(_)
    ));
    let rot = signed_grant(&r, GrantKind::Rotation, &k(78).node_id(), 0, &[]);
    l.admit(&placed(&base, &k(79), &rot), Some(&r.node_id()));
    let chain = l.key_chain(&r.node_id());
    assert!(chain.frozen);
    assert_ne!(chain.current, k(78).node_id());
    assert!(!chain.read.contains(&rot.storage_key()));
}
