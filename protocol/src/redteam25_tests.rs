//! Red-team round 25: attacks on the key-rotation/recovery rules (the screen's `EverHeld`,
//! fork records standing nowhere, carriers), written by a red-team helper against adfd837.
//! All five failed there; each asserts the property the rules promise.

use std::collections::BTreeSet;

use automerge::ChangeHash;

use crate::authority::{GrantKind, SignedGrant};
use crate::change::{FlatOp, SignedChange};
use crate::id::NodeId;
use crate::ledger::{Admitted, Ledger, Verdict};
use crate::redteam16_tests::{change, doc, hash_of, key, put};
use crate::redteam23_tests::{grant, standing, sync};
use crate::rotation_tests::target_op;
use crate::sign::NodeKey;

pub(super) fn deleg(signer: &NodeKey, node: &NodeKey) -> SignedGrant {
    grant(signer, GrantKind::Delegation, 0, &node.node_id(), &[])
}

/// A change by `author` on `deps`, admitted on `l`, must be New.
pub(super) fn put_on(
    l: &mut Ledger,
    root: &NodeId,
    author: &NodeKey,
    suffix: u8,
    deps: &[ChangeHash],
    ops: Vec<FlatOp>,
) -> SignedChange {
    let c = change(l, author, suffix, deps, ops);
    let r = l.admit(&c, Some(root));
    assert!(matches!(r, Admitted::New(_)), "{r:?}");
    l.settle(Some(root));
    c
}

/// A ledger (following `recovery`) where the State's node S (`key(1)`), delegated by K0
/// (`key(40)`), rotated K0 to `k1`, keeping its delegation: the ledger, the genesis, S's
/// delegation and the rotation's change.
pub(super) fn rotated(
    k1: &NodeKey,
    recovery: Option<&NodeKey>,
) -> (Ledger, ChangeHash, SignedGrant, SignedChange) {
    let k0 = key(40);
    let root = k0.node_id();
    let s = key(1);
    let mut a = Ledger::new(&doc());
    a.set_recovery(recovery.map(|r| r.node_id()));
    let g = a.genesis_hash().unwrap();
    let ds = deleg(&k0, &s);
    let c_ds = put_on(&mut a, &root, &s, 1, &[g], vec![put(&ds)]);
    let rot = grant(&k0, GrantKind::Rotation, 0, &k1.node_id(), &[&ds]);
    let c_rot = put_on(&mut a, &root, &s, 1, &[hash_of(&c_ds)], vec![put(&rot)]);
    assert_eq!(a.key_chain(&root).current, k1.node_id());
    (a, g, ds, c_rot)
}

/// The new epoch's node `nn`, on the recovery carried by `c_rv` and held on `a`, delegates
/// itself by the new key `n1` and writes target TN there (it stands): its two changes.
pub(super) fn new_node_writes(
    a: &mut Ledger,
    root: &NodeId,
    nn: &NodeKey,
    n1: &NodeKey,
    c_rv: &SignedChange,
) -> (SignedChange, SignedChange) {
    let dn = deleg(n1, nn);
    let c_dn = put_on(a, root, nn, 1, &[hash_of(c_rv)], vec![put(&dn)]);
    let c_t = put_on(a, root, nn, 1, &[hash_of(&c_dn)], vec![target_op("TN")]);
    assert!(matches!(a.verdict(&hash_of(&c_t)), Some(Verdict::Stands)));
    (c_dn, c_t)
}

/// `b` takes `changes` (the recovery's carrier and the new node's changes) from `nn` in one
/// batch, then syncs with `a` to a fixpoint.
pub(super) fn taken_from(
    a: &mut Ledger,
    b: &mut Ledger,
    root: &NodeId,
    nn: &NodeKey,
    changes: &[&SignedChange],
) {
    let r = b
        .admit_batch(
            changes.iter().map(|c| (*c).clone()).collect(),
            Some(root),
            Some(nn.node_id()),
            |_| Ok::<_, ()>(false),
        )
        .unwrap();
    eprintln!("B refused {:?}, waiting {}", r.refused, r.waiting.len());
    sync(a, b, root);
}

pub(super) fn held(l: &Ledger) -> BTreeSet<ChangeHash> {
    l.signed_changes().map(|(h, _)| h).collect()
}

/// ATTACK 1 (promise 2 and 4; EverHeld). After a recovery, the chain never walks the old
/// epoch's rotations, so `EverHeld` forgets the old epoch's rotated keys (only the old epoch's
/// first key is `retired`). The State rotated K0 -> K1 in epoch 0 and K1 delegated ministry M,
/// which wrote a target; the State's node S (kept through rotation and recovery) built a
/// target on M's change. Then the State recovers (epoch 1), the recovery carried by S on a
/// branch without M's changes. Node A takes the changes in causal order with the recovery
/// last; node C takes the same set in another causal order (the recovery right after the
/// rotation). On C, M's delegation is refused at the screen (signed by K1, which C's chain
/// never held), so S's honest target built on it waits for good on C: A and C split, and
/// sync does not heal it.
#[test]
fn rt25_recovery_forgets_old_epoch_rotated_keys_and_strands_honest_changes() {
    let (k0, rec, k1, n1) = (key(40), key(41), key(42), key(43));
    let root = k0.node_id();
    let s = key(1);
    let m = key(2);
    let (mut a, _, ds, c_rot) = rotated(&k1, Some(&rec));
    // The recovery, placed by S on its heads then (before it saw M's work).
    let rv = grant(&rec, GrantKind::Recovery, 1, &n1.node_id(), &[&ds]);
    let mut c = a.clone();
    let c_rv = change(&a, &s, 1, &[hash_of(&c_rot)], vec![put(&rv)]);
    // Meanwhile (on A, before the recovery): K1 delegates M, M writes, S builds on M's work.
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
    // Now A takes the recovery.
    assert!(matches!(a.admit(&c_rv, Some(&root)), Admitted::New(_)));
    a.settle(Some(&root));
    assert_eq!(a.key_chain(&root).current, n1.node_id());
    assert!(
        matches!(a.verdict(&hash_of(&c_s)), Some(Verdict::Stands)),
        "S's target stands on A: {:?}",
        a.verdict(&hash_of(&c_s))
    );
    // C: the same changes, the recovery first (a valid causal order).
    c.set_recovery(Some(rec.node_id()));
    let mut outs = Vec::new();
    for x in [&c_rv, &c_dm, &c_m, &c_s] {
        outs.push(c.admit(x, Some(&root)));
    }
    c.settle(Some(&root));
    sync(&mut a, &mut c, &root);
    eprintln!("C's admissions: {outs:#?}");
    eprintln!(
        "A holds {} changes, C holds {}; C holds S's target: {}",
        held(&a).len(),
        held(&c).len(),
        c.has(&hash_of(&c_s))
    );
    assert_eq!(
        held(&a),
        held(&c),
        "A and C hold different sets after a sync"
    );
    assert_eq!(standing(&mut a, &root), standing(&mut c, &root));
}

/// ATTACK 2 (promise 3 and 4; EverHeld). The State rotated K0 -> K1 (honestly) and K0 leaked.
/// The thief signs, with the retired K0, a delegation for each of thousands of fresh
/// sock-puppet nodes; each puppet places its own delegation (passes the screen: `own_grants`
/// with `EverHeld`, which accepts the root whatever happened since). None of them stands, but
/// each is held and takes an actor slot, until `MAX_ACTORS` is reached. Then an honest node H,
/// delegated by the key in force K1, cannot get its own delegation admitted: the document is
/// closed to every new honest writer, for good (held changes are never dropped, and a
/// recovery does not help: the root stays in `EverHeld`).
#[test]
fn rt25_retired_key_sock_puppets_fill_max_actors_and_lock_out_new_honest_nodes() {
    let (k0, k1) = (key(40), key(41));
    let root = k0.node_id();
    let (mut a, g, _, c_rot) = rotated(&k1, None);
    // The thief's puppets.
    let mut puppets_held = 0usize;
    for i in 0..crate::ledger::MAX_ACTORS as u32 {
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&i.to_le_bytes());
        seed[31] = 0xAB;
        let p = NodeKey::from_seed(&seed);
        let dp = deleg(&k0, &p);
        let c = change(&a, &p, 1, &[g], vec![put(&dp)]);
        match a.admit(&c, Some(&root)) {
            Admitted::New(_) => puppets_held += 1,
            other => {
                eprintln!("puppet {i} refused: {other:?}");
                break;
            }
        }
    }
    a.settle(Some(&root));
    let standing_puppets = a
        .signed_changes()
        .filter(|(h, _)| matches!(a.verdict(h), Some(Verdict::Stands)))
        .count();
    eprintln!(
        "held {puppets_held} sock-puppet delegations by the retired key; {standing_puppets} changes stand in all"
    );
    // An honest node delegated by the key in force.
    let h = key(3);
    let dh = deleg(&k1, &h);
    let c_h = change(&a, &h, 1, &[hash_of(&c_rot)], vec![put(&dh)]);
    let r = a.admit(&c_h, Some(&root));
    eprintln!("the honest node's own delegation by K1: {r:?}");
    assert!(
        matches!(r, Admitted::New(_)),
        "an honest node delegated by the key in force is refused after the thief's puppets: {r:?}"
    );
}

/// ATTACK 3 (promise 3; EverHeld). One sock puppet of a retired key writes a long linear
/// run of changes: every one is void, none is offered. Before the State recovers, the key
/// is one of the last epoch's and its puppet is held as a delegated node's void writes are
/// (the documented limit); once a recovery is held, nothing the retired key delegated passes
/// the screen unless the recovery kept it. Before the fix the root stayed in `EverHeld`
/// forever and the puppet's 1,500 changes were all held after the recovery.
#[test]
fn rt25_after_a_recovery_a_retired_keys_puppet_is_refused() {
    let (k0, rec, n1) = (key(40), key(44), key(45));
    let root = k0.node_id();
    let s = key(1);
    let (mut a, g, ds, c_rot) = rotated(&key(41), Some(&rec));
    let rv = grant(&rec, GrantKind::Recovery, 1, &n1.node_id(), &[&ds]);
    put_on(&mut a, &root, &s, 1, &[hash_of(&c_rot)], vec![put(&rv)]);
    assert_eq!(a.key_chain(&root).epoch, 1);
    let p = key(99);
    let dp = deleg(&k0, &p);
    let c_dp = change(&a, &p, 1, &[g], vec![put(&dp)]);
    let r = a.admit(&c_dp, Some(&root));
    assert!(
        matches!(
            r,
            Admitted::Refused(_, crate::ledger::Rejection::NotAWriter { .. })
        ),
        "the retired key's puppet is let in after the recovery: {r:?}"
    );
    // Nor by building on it: its next change waits, marks nothing, and is refused as its own.
    let c_next = change(&a, &p, 1, &[hash_of(&c_dp)], vec![target_op("P0")]);
    assert!(!matches!(a.admit(&c_next, Some(&root)), Admitted::New(_)));
    assert!(!a.has(&hash_of(&c_dp)));
}

/// ATTACK 4 (promise 4 and 2; MAX_COPIES). The State recovers (epoch 1, new key N1). The
/// recovery is carried by the new epoch's node N, which holds no delegation yet (it passes
/// the screen through `places_read_records`); N then places its own delegation by N1 on the
/// carrier, and writes. A stranger who saw the record replays it in MAX_COPIES changes of
/// its own and hands them to B first. B then refuses N's carrier (each record held in
/// MAX_COPIES changes) and nothing forces it in: the only changes that need it are N's own
/// (`wanted_by_other` asks for another author). So N, the recovered State's node, can never
/// write on B, while A (which got N's carrier first) stands everything N wrote.
#[test]
fn rt25_stranger_copies_of_a_recovery_lock_out_the_new_epochs_node() {
    let d = doc();
    let (k0, rec, n1) = (key(40), key(41), key(43));
    let root = k0.node_id();
    let s = key(1);
    let nn = key(5);
    let mut a = Ledger::new(&d);
    a.set_recovery(Some(rec.node_id()));
    let g = a.genesis_hash().unwrap();
    let ds = deleg(&k0, &s);
    let c_ds = put_on(&mut a, &root, &s, 1, &[g], vec![put(&ds)]);
    let mut b = a.clone();
    let rv = grant(&rec, GrantKind::Recovery, 1, &n1.node_id(), &[]);
    let c_rv = put_on(&mut a, &root, &nn, 1, &[hash_of(&c_ds)], vec![put(&rv)]);
    let (c_dn, c_t) = new_node_writes(&mut a, &root, &nn, &n1, &c_rv);
    assert_eq!(a.key_chain(&root).current, n1.node_id());
    // The stranger's copies reach B first.
    for i in 0..crate::ledger::MAX_COPIES as u8 {
        let c = change(&b, &key(150 + i), 1, &[g], vec![put(&rv)]);
        let r = b.admit(&c, Some(&root));
        eprintln!("copy {i}: {r:?}");
    }
    b.settle(Some(&root));
    assert_eq!(b.key_chain(&root).current, n1.node_id());
    taken_from(&mut a, &mut b, &root, &nn, &[&c_rv, &c_dn, &c_t]);
    eprintln!(
        "B holds N's target: {}; A: {:?}, B: {:?}",
        b.has(&hash_of(&c_t)),
        a.verdict(&hash_of(&c_t)),
        b.verdict(&hash_of(&c_t))
    );
    assert!(
        b.has(&hash_of(&c_t)),
        "the new epoch's node cannot write on B"
    );
    assert_eq!(standing(&mut a, &root), standing(&mut b, &root));
}

/// ATTACK 5 (promise 3). A sock puppet of the retired key (any screened author: it passes by
/// `has_any_delegation`, so neither `places_read_records` nor MAX_COPIES applies) places
/// rotation records each signed by a fresh throwaway key: every record is at a new chain
/// point (kind, epoch, signer), so MAX_FORKS never bites. All are held, none is read, and
/// each admission re-scans every held record (`chain_flood`, and the key chain's cache is
/// invalidated by every one): the per-change cost grows with the flood (quadratic total).
#[test]
fn rt25_puppet_floods_rotation_records_at_fresh_chain_points() {
    let k0 = key(40);
    let root = k0.node_id();
    let (mut a, g, _, _) = rotated(&key(41), None);
    let p = key(99);
    let dp = deleg(&k0, &p);
    let mut prev = hash_of(&put_on(&mut a, &root, &p, 1, &[g], vec![put(&dp)]));
    const N: u32 = 1200;
    let mut n = 0;
    let mut t = std::time::Instant::now();
    for i in 0..N {
        let mut seed = [7u8; 32];
        seed[..4].copy_from_slice(&i.to_le_bytes());
        let junk = NodeKey::from_seed(&seed);
        let r = grant(&junk, GrantKind::Rotation, i, &junk.node_id(), &[]);
        let c = change(&a, &p, 1, &[prev], vec![put(&r)]);
        if !matches!(a.admit(&c, Some(&root)), Admitted::New(_)) {
            break;
        }
        prev = hash_of(&c);
        n += 1;
        if (i + 1) % 300 == 0 {
            eprintln!("records {}..{}: {:?}", i + 1 - 300, i + 1, t.elapsed());
            t = std::time::Instant::now();
        }
    }
    eprintln!("held {n} rotation records at fresh chain points");
    assert!(
        n <= 4 * crate::authority::MAX_FORKS,
        "a puppet made the node hold {n} rotation records"
    );
}
