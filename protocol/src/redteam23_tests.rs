//! Red-team round of session 23: attacks on the key-rotation/recovery rules as that session
//! first changed them (a fork's two smallest records read, a bound on records per point of
//! the chain). Each test asserts the property the rules promise and failed before its fix:
//! the screen reads grants by every key the chain ever held (`EverHeld`), and no record the
//! chain stops at stands. Attack 4 (copies of a read record) is
//! bounded by `MAX_COPIES`.

use std::collections::BTreeSet;

use automerge::ChangeHash;

use crate::authority::{Grant, GrantKind, Scope, SignedGrant};
use crate::change::{FlatOp, SignedChange};
use crate::date::Date;
use crate::id::{NodeId, Principal, StateCode};
use crate::ledger::{Admitted, Ledger, Verdict, actor_bytes};
use crate::redteam15_tests::offered;
use crate::redteam16_tests::{change, doc, hash_of, key, put};
use crate::sign::{NodeKey, sign_change};

const T0: i64 = 1_767_225_600;

pub(super) fn grant(
    signer: &NodeKey,
    kind: GrantKind,
    serial: u32,
    node: &NodeId,
    kept: &[&SignedGrant],
) -> SignedGrant {
    SignedGrant::sign(
        signer,
        Grant {
            kind,
            principal: Principal::State(StateCode::from_static("XAA")),
            node: *node,
            scope: (kind == GrantKind::Delegation).then_some(Scope::ALL),
            expires: None,
            issued: Date::from_unix_seconds(T0),
            key: signer.node_id(),
            cutoff: vec![],
            serial,
            kept: kept.iter().map(|g| g.storage_key()).collect(),
            recovery: None,
        },
    )
}

/// What an honest node does: its next change on `l` (Ledger::next_change, as `commit_one`
/// does), admitted there.
fn honest(l: &mut Ledger, root: &NodeId, author: &NodeKey, ops: Vec<FlatOp>) -> SignedChange {
    l.settle(Some(root));
    let data = l.next_change(&actor_bytes(&author.node_id(), &[7; 8]), T0, ops);
    let h = data.to_automerge(l.doc()).unwrap().hash();
    let sc = SignedChange {
        data,
        signature: sign_change(author, l.doc(), &h).to_vec(),
    };
    assert!(matches!(l.admit(&sc, Some(root)), Admitted::New(_)));
    l.settle(Some(root));
    sc
}

/// Two nodes holding the State's honest rotation K0 (key 40) -> K1 (key 41), placed by node
/// 10 on the genesis: the nodes, the genesis, the rotation and its change.
fn rotated_pair() -> (Ledger, Ledger, ChangeHash, SignedGrant, SignedChange) {
    let (k0, k1) = (key(40), key(41));
    let root = k0.node_id();
    let mut a = Ledger::new(&doc());
    let mut b = Ledger::new(&doc());
    let g = a.genesis_hash().unwrap();
    let r1 = grant(&k0, GrantKind::Rotation, 0, &k1.node_id(), &[]);
    let h = change(&a, &key(10), 1, &[g], vec![put(&r1)]);
    assert!(matches!(a.admit(&h, Some(&root)), Admitted::New(_)));
    assert!(matches!(b.admit(&h, Some(&root)), Admitted::New(_)));
    (a, b, g, r1, h)
}

/// Sync two ledgers to a fixpoint: each takes (in a batch, as sync does) all the other offers,
/// again and again.
pub(super) fn sync(a: &mut Ledger, b: &mut Ledger, root: &NodeId) {
    for _ in 0..20 {
        a.settle(Some(root));
        b.settle(Some(root));
        let from_a = offered(a);
        let from_b = offered(b);
        let ra = b
            .admit_batch(from_a, Some(root), None, |_| Ok::<_, ()>(false))
            .unwrap();
        let rb = a
            .admit_batch(from_b, Some(root), None, |_| Ok::<_, ()>(false))
            .unwrap();
        a.settle(Some(root));
        b.settle(Some(root));
        if ra.held.is_empty() && rb.held.is_empty() {
            return;
        }
    }
}

pub(super) fn standing(l: &mut Ledger, root: &NodeId) -> BTreeSet<ChangeHash> {
    l.settle(Some(root));
    l.signed_changes()
        .map(|(h, _)| h)
        .filter(|h| matches!(l.verdict(h), Some(Verdict::Stands)))
        .collect()
}

/// ATTACK 1 (rule 4, and rule 3). A thief holding the State's current key K0 rotates it to its
/// own key, the rotation placed by its node on the genesis alone (not on the State's history).
/// The State's node S, delegated by K0, recovers with the recovery key. S's recovery change is
/// built (next_change) on S's own previous change, its delegation, which the thief's rotation
/// voided. A node B that received the thief's rotation first refuses S's delegation change at
/// the screen (S has no delegation in force on B, and it is not a rotation record), so S's
/// recovery waits for it for good: B never takes the honest recovery and keeps the thief's key
/// in force, while S is in epoch 1.
#[test]
fn rt23_a_node_that_saw_the_thiefs_rotation_first_never_takes_the_recovery() {
    let d = doc();
    let k0 = key(40);
    let rec = key(41);
    let root = k0.node_id();
    let s = key(1); // the State's node
    let thief_node = key(9);
    let thief_key = key(60);
    let new_key = key(70);

    let mut sl = Ledger::new(&d);
    sl.set_recovery(Some(rec.node_id()));
    let d1 = grant(&k0, GrantKind::Delegation, 0, &s.node_id(), &[]);
    let c1 = honest(&mut sl, &root, &s, vec![put(&d1)]);
    let g = sl.genesis_hash().unwrap();
    // The thief's rotation, on the genesis only.
    let rot = grant(&k0, GrantKind::Rotation, 0, &thief_key.node_id(), &[]);
    let tr = change(&sl, &thief_node, 1, &[g], vec![put(&rot)]);
    assert!(matches!(sl.admit(&tr, Some(&root)), Admitted::New(_)));
    sl.settle(Some(&root));
    assert_eq!(sl.key_chain(&root).current, thief_key.node_id());
    // The State recovers, keeping S's delegation.
    let recov = grant(&rec, GrantKind::Recovery, 1, &new_key.node_id(), &[&d1]);
    let cr = honest(&mut sl, &root, &s, vec![put(&recov)]);
    assert_eq!(sl.key_chain(&root).current, new_key.node_id());
    assert_eq!(sl.key_chain(&root).epoch, 1);
    assert!(matches!(sl.verdict(&hash_of(&c1)), Some(Verdict::Stands)));

    // B: a node that knows the recovery key and got the thief's rotation first.
    let mut b = Ledger::new(&d);
    b.set_recovery(Some(rec.node_id()));
    assert!(matches!(b.admit(&tr, Some(&root)), Admitted::New(_)));
    sync(&mut sl, &mut b, &root);
    eprintln!(
        "B holds S's delegation change: {}, S's recovery change: {}; B's key in force: {} (epoch {}), S's: {} (epoch {})",
        b.has(&hash_of(&c1)),
        b.has(&hash_of(&cr)),
        b.key_chain(&root).current.short(),
        b.key_chain(&root).epoch,
        sl.key_chain(&root).current.short(),
        sl.key_chain(&root).epoch,
    );
    assert_eq!(
        b.key_chain(&root).current,
        new_key.node_id(),
        "B never takes the State's recovery: the thief's key stays in force there"
    );
}

/// ATTACK 2 (rule 1). The thief holds the retired key K0 (the State rotated K0 -> K1). It
/// signs a second rotation from K0 (a fork) and places it in a change that depends on its own
/// node's delegation by K0, which it placed where K0 was still in force (node A). A is frozen;
/// node B, which held the honest rotation before the thief's delegation came, refuses that
/// delegation change at the screen and so never takes the fork's carrier A offers: B follows
/// K1, A has no key in force, for good.
#[test]
fn rt23_a_fork_carried_on_a_change_the_other_node_refuses_splits_the_verdict() {
    let k0 = key(40);
    let root = k0.node_id();
    let thief_node = key(9);
    let kx = key(61);
    // A took the thief's node delegation by K0 while K0 was in force there (before the
    // honest rotation K0 -> K1, which both hold).
    let mut a = Ledger::new(&doc());
    let (_, mut b, g, _, h) = rotated_pair();
    let dt = grant(&k0, GrantKind::Delegation, 0, &thief_node.node_id(), &[]);
    let cd = change(&a, &thief_node, 1, &[g], vec![put(&dt)]);
    assert!(matches!(a.admit(&cd, Some(&root)), Admitted::New(_)));
    assert!(matches!(a.admit(&h, Some(&root)), Admitted::New(_)));
    // The fork, carried on the thief's delegation change.
    let fork = grant(&k0, GrantKind::Rotation, 0, &kx.node_id(), &[]);
    let f = change(&a, &thief_node, 1, &[hash_of(&cd)], vec![put(&fork)]);
    assert!(matches!(a.admit(&f, Some(&root)), Admitted::New(_)));
    a.settle(Some(&root));
    b.settle(Some(&root));
    assert!(a.key_chain(&root).frozen);
    sync(&mut a, &mut b, &root);
    eprintln!(
        "A frozen: {}, B frozen: {}, B's key in force: {}, B holds the fork carrier: {}",
        a.key_chain(&root).frozen,
        b.key_chain(&root).frozen,
        b.key_chain(&root).current.short(),
        b.has(&hash_of(&f))
    );
    assert_eq!(
        a.key_chain(&root).frozen,
        b.key_chain(&root).frozen,
        "synced nodes disagree on whether the chain is frozen"
    );
}

/// ATTACK 3 (rule 1). The thief holding the retired key K0 signs 17 fork rotations. Node A
/// gets them largest storage key first: each is among the two smallest held when it comes, so
/// each is taken, until MAX_FORKS are held at that point; the two smallest (which B holds) are
/// then refused by the fork bound (`MAX_FORKS`) forever. A reads other records than B, so the
/// carriers that stand differ on two synced nodes, for good.
#[test]
fn rt23_max_forks_refuses_the_two_smallest_and_synced_nodes_stand_different_changes() {
    let k0 = key(40);
    let root = k0.node_id();
    let (mut a, mut b, g, _, _) = rotated_pair();
    // 17 forks, each placed by its own stranger on the genesis.
    let mut forks: Vec<(String, SignedChange)> = (0..17u8)
        .map(|i| {
            let r = grant(&k0, GrantKind::Rotation, 0, &key(100 + i).node_id(), &[]);
            let c = change(&a, &key(150 + i), 1, &[g], vec![put(&r)]);
            (r.storage_key(), c)
        })
        .collect();
    forks.sort_by(|x, y| x.0.cmp(&y.0));
    // B: the two smallest.
    for (_, c) in forks.iter().take(2).rev() {
        b.admit(c, Some(&root));
    }
    // A: largest first.
    let mut taken = 0;
    for (_, c) in forks.iter().rev() {
        if matches!(a.admit(c, Some(&root)), Admitted::New(_)) {
            taken += 1;
        }
    }
    sync(&mut a, &mut b, &root);
    let sa = standing(&mut a, &root);
    let sb = standing(&mut b, &root);
    eprintln!(
        "A took {taken} forks; A frozen {}, B frozen {}; A holds smallest fork: {}; standing only on A: {}, only on B: {}",
        a.key_chain(&root).frozen,
        b.key_chain(&root).frozen,
        a.has(&hash_of(&forks[0].1)),
        sa.difference(&sb).count(),
        sb.difference(&sa).count()
    );
    assert_eq!(sa, sb, "synced nodes stand different changes");
}

/// ATTACK 4 (rule 2). A stranger with no key replays the State's read rotation record in
/// as many changes as it signs: every one passes the screen (`places_read_records`: the chain
/// reads that record) and is stored.
#[test]
fn rt23_a_stranger_makes_a_node_store_unboundedly_many_copies_of_a_read_record() {
    let root = key(40).node_id();
    let stranger = key(66);
    let (mut a, _, _, rot, h) = rotated_pair();
    const N: usize = 1000;
    let mut prev = hash_of(&h);
    let mut stored = 0;
    for _ in 0..N {
        let c = change(&a, &stranger, 7, &[prev], vec![put(&rot)]);
        if matches!(a.admit(&c, Some(&root)), Admitted::New(_)) {
            stored += 1;
        }
        prev = hash_of(&c);
    }
    eprintln!("a stranger with no key made A store {stored} changes");
    assert!(stored < crate::ledger::MAX_COPIES, "stored {stored}");
}

/// Copies by strangers, concurrent with each other, are bounded and change nothing that
/// stands: node A holds the State's rotation and the `MAX_COPIES` - 1 copies it takes of a
/// stranger's flood; node B holds the rotation and another copy, and the State's node writes a
/// target on B. After a sync, A holds the target and both stand the same changes. (With the
/// stranger's copies standing, as they did, A and B stood different ones for good; before the
/// copy bound, every copy stood and was relayed.)
#[test]
fn rt23_copies_of_a_record_by_strangers_stand_nowhere_and_are_bounded() {
    let d = doc();
    let (k0, k1) = (key(40), key(41));
    let root = k0.node_id();
    let s = key(10);
    let mut a = Ledger::new(&d);
    let d1 = grant(&k0, GrantKind::Delegation, 0, &s.node_id(), &[]);
    honest(&mut a, &root, &s, vec![put(&d1)]);
    let rot = grant(&k0, GrantKind::Rotation, 0, &k1.node_id(), &[&d1]);
    honest(&mut a, &root, &s, vec![put(&rot)]);
    let mut b = a.clone();
    let g = a.genesis_hash().unwrap();
    // The stranger's copies on A, each on the genesis (concurrent with everything).
    let mut held = 0;
    for i in 0..crate::ledger::MAX_COPIES as u8 + 2 {
        let c = change(&a, &key(150 + i), 1, &[g], vec![put(&rot)]);
        if matches!(a.admit(&c, Some(&root)), Admitted::New(_)) {
            held += 1;
        }
    }
    assert!(held < crate::ledger::MAX_COPIES);
    // B: one more copy, by another stranger, and the State's next change on B's heads.
    let other = change(&b, &key(170), 1, &[g], vec![put(&rot)]);
    assert!(matches!(b.admit(&other, Some(&root)), Admitted::New(_)));
    b.settle(Some(&root));
    let mut t = crate::model::tests::xaa_t1();
    t.id = "T1".into();
    let target = FlatOp {
        container: d.kind().container("targets").unwrap(),
        key: "T1/v1".into(),
        action: crate::change::FlatAction::Put {
            value: serde_json::to_value(&t).unwrap().to_string(),
            preds: vec![],
        },
    };
    let w = honest(&mut b, &root, &s, vec![target]);
    sync(&mut a, &mut b, &root);
    assert!(a.has(&hash_of(&w)), "the State's target reached A");
    assert_eq!(standing(&mut a, &root), standing(&mut b, &root));
}

/// Second red-team round of session 23, against 29b2c3f (where it failed): MAX_COPIES
/// pre-emption. The State rotates K0 -> K1 (keeping S's delegation); the rotation
/// is placed by node N, which holds no delegation (it passes the screen only through
/// `places_read_records`). A stranger who saw the record replays it in MAX_COPIES changes of
/// its own and hands them to B first. B then refuses N's real carrier C (every record already
/// held MAX_COPIES times), and with it everything built on C: N's own delegation by K1 and
/// S's later honest changes.
#[test]
fn rt23_stranger_copies_do_not_preempt_the_honest_rotation_carrier() {
    let d = doc();
    let k0 = key(40);
    let k1 = key(41);
    let root = k0.node_id();
    let s = key(1); // State node delegated by K0
    let n = key(2); // State node that places the rotation, no delegation yet
    let stranger = key(66);

    let mut a = Ledger::new(&d);
    let mut b = Ledger::new(&d);
    let d_s = grant(&k0, GrantKind::Delegation, 0, &s.node_id(), &[]);
    let c1 = honest(&mut a, &root, &s, vec![put(&d_s)]);
    assert!(matches!(b.admit(&c1, Some(&root)), Admitted::New(_)));
    let g = a.genesis_hash().unwrap();

    // The honest rotation, keeping S's delegation, placed by N on A.
    let rot = grant(&k0, GrantKind::Rotation, 0, &k1.node_id(), &[&d_s]);
    let c = change(&a, &n, 1, &[hash_of(&c1)], vec![put(&rot)]);
    let r = a.admit(&c, Some(&root));
    assert!(matches!(r, Admitted::New(_)), "{r:?}");
    a.settle(Some(&root));
    // N is then delegated by K1, and S writes on.
    let d_n = grant(&k1, GrantKind::Delegation, 0, &n.node_id(), &[]);
    let e = honest(&mut a, &root, &s, vec![put(&d_n)]);
    eprintln!(
        "on A: C stands {:?}; E deps on C: {}",
        a.verdict(&hash_of(&c)),
        e.data.deps.contains(&hash_of(&c).0)
    );

    // The stranger replays the record MAX_COPIES times, to B first.
    for i in 0..crate::ledger::MAX_COPIES as u8 {
        let x = change(&b, &stranger, 10 + i, &[g], vec![put(&rot)]);
        let r = b.admit(&x, Some(&root));
        eprintln!("B takes stranger copy {i}: {r:?}");
    }
    b.settle(Some(&root));
    sync(&mut a, &mut b, &root);
    let sa = standing(&mut a, &root);
    let sb = standing(&mut b, &root);
    eprintln!(
        "B holds C: {}, E: {}; key in force A {} B {}; standing only on A: {}, only on B: {}",
        b.has(&hash_of(&c)),
        b.has(&hash_of(&e)),
        a.key_chain(&root).current.short(),
        b.key_chain(&root).current.short(),
        sa.difference(&sb).count(),
        sb.difference(&sa).count()
    );
    assert_eq!(sa, sb, "synced nodes stand different changes");
}
