//! Red team, round 15: attacks on the key chain (rotations, recoveries). Each test failed
//! before its fix: the chain was read off records that some honest nodes held and others
//! never would (a void change carrying a fork), and a fork's keys reached further records.

use automerge::ChangeHash;

use crate::authority::{Grant, GrantKind, Scope, SignedGrant};
use crate::change::{ChangeData, FlatAction, FlatOp, SignedChange};
use crate::date::Date;
use crate::doc::DocId;
use crate::id::{Principal, StateCode};
use crate::ledger::{Admitted, Ledger, Verdict, actor_bytes};
use crate::sign::{NodeKey, sign_change};

fn key(seed: u8) -> NodeKey {
    NodeKey::from_seed(&[seed; 32])
}

fn xaa() -> StateCode {
    StateCode::from_static("XAA")
}

fn day() -> Date {
    Date::from_unix_seconds(1_767_225_600)
}

fn grant(
    signer: &NodeKey,
    kind: GrantKind,
    node: &NodeKey,
    serial: u32,
    kept: Vec<String>,
) -> SignedGrant {
    SignedGrant::sign(
        signer,
        Grant {
            kind,
            principal: Principal::State(xaa()),
            node: node.node_id(),
            scope: (kind == GrantKind::Delegation).then_some(Scope::ALL),
            expires: None,
            issued: day(),
            key: signer.node_id(),
            cutoff: vec![],
            serial,
            kept,
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

fn change(
    l: &Ledger,
    doc: &DocId,
    k: &NodeKey,
    deps: &[ChangeHash],
    ops: Vec<FlatOp>,
) -> SignedChange {
    let actor = actor_bytes(&k.node_id(), &[7; 8]);
    signed(doc, k, l.change_at(deps, &actor, 1_767_225_600, ops))
}

fn new_hash(a: Admitted) -> ChangeHash {
    match a {
        Admitted::New(h) => h,
        other => panic!("not admitted: {other:?}"),
    }
}

/// The State's node delegated by K0, then the honest rotation K0 -> K1 keeping that
/// delegation, then K1's delegation of a ministry: the three changes and their hashes.
struct Honest {
    c_ds: SignedChange,
    c_rot: SignedChange,
    c_dm: SignedChange,
    h_ds: ChangeHash,
    h_dm: ChangeHash,
    d_s: SignedGrant,
    d_m: SignedGrant,
    rot: SignedGrant,
}

fn honest(l: &mut Ledger, doc: &DocId) -> Honest {
    let (k0, k1, s, m) = (key(40), key(41), key(1), key(2));
    let root = k0.node_id();
    let genesis = l.genesis_hash().unwrap();
    let d_s = grant(&k0, GrantKind::Delegation, &s, 0, vec![]);
    let c_ds = change(l, doc, &s, &[genesis], vec![grant_op(doc, &d_s)]);
    let h_ds = new_hash(l.admit(&c_ds, Some(&root)));
    let rot = grant(&k0, GrantKind::Rotation, &k1, 0, vec![d_s.storage_key()]);
    let c_rot = change(l, doc, &s, &[h_ds], vec![grant_op(doc, &rot)]);
    let h_rot = new_hash(l.admit(&c_rot, Some(&root)));
    let d_m = grant(&k1, GrantKind::Delegation, &m, 0, vec![]);
    let c_dm = change(l, doc, &s, &[h_rot], vec![grant_op(doc, &d_m)]);
    let h_dm = new_hash(l.admit(&c_dm, Some(&root)));
    Honest {
        c_ds,
        c_rot,
        c_dm,
        h_ds,
        h_dm,
        d_s,
        d_m,
        rot,
    }
}

/// A thief holding the State's key K0 (which the State then retires by an honest rotation
/// K0 -> K1) prepares one change, placed by its own node T: a delegation of T and a rotation
/// K0 -> T, both signed by K0. A node that receives it before the honest rotation holds it;
/// once the rotation arrives, the change is void (a retired key's grant) and never offered.
/// Its rotation used to freeze that node's chain while a node that got the rotation first
/// refused the change and followed K1: opposite verdicts for good. A change that mixes
/// rotations with other grants moves no chain now, so both nodes follow K1.
#[test]
fn a_void_change_carrying_a_fork_moves_no_chain_in_any_order() {
    let doc = DocId::State(xaa());
    let (k0, k1, t) = (key(40), key(41), key(66));
    let root = k0.node_id();
    let base = Ledger::new(&doc);
    let genesis = base.genesis_hash().unwrap();
    let d_t = grant(&k0, GrantKind::Delegation, &t, 0, vec![]);
    let fork = grant(&k0, GrantKind::Rotation, &t, 0, vec![]);
    let c_thief = change(
        &base,
        &doc,
        &t,
        &[genesis],
        vec![grant_op(&doc, &fork), grant_op(&doc, &d_t)],
    );

    // B: the honest order; the thief's change comes after the rotation and is refused, or
    // (its grants signed by a key the chain held, which the screen takes since session 23)
    // held void.
    let mut b = Ledger::new(&doc);
    let hb = honest(&mut b, &doc);
    let got = b.admit(&c_thief, Some(&root));
    let sb = b.settle(Some(&root)).clone();
    match got {
        Admitted::Refused(..) => {}
        Admitted::New(h) => assert!(matches!(b.verdict(&h), Some(Verdict::Void(_)))),
        other => panic!("{other:?}"),
    }

    // A: the thief's change first.
    let mut a = Ledger::new(&doc);
    new_hash(a.admit(&hb.c_ds, Some(&root)));
    let h_thief = new_hash(a.admit(&c_thief, Some(&root)));
    new_hash(a.admit(&hb.c_rot, Some(&root)));
    new_hash(a.admit(&hb.c_dm, Some(&root)));
    let sa = a.settle(Some(&root)).clone();
    assert!(matches!(a.verdict(&h_thief), Some(Verdict::Void(_))));
    for l in [&a, &b] {
        let chain = l.key_chain(&root);
        assert!(!chain.frozen);
        assert_eq!(chain.current, k1.node_id());
        assert_eq!(l.verdict(&hb.h_ds), Some(&Verdict::Stands));
        assert_eq!(l.verdict(&hb.h_dm), Some(&Verdict::Stands));
    }
    assert_eq!(sa.view, sb.view);
    assert_eq!(sa.offered, sb.offered);
    assert!(sa.view["delegations"].get(hb.d_m.storage_key()).is_some());
}

/// After the honest rotation K0 -> K1 is held everywhere, anyone holding the retired key K0
/// sends a victim one change holding two rotation records: its fork K0 -> X and a copy of the
/// honest rotation. The change is void (the copy stores a grant twice), and it used to be
/// offered to no one while the victim's chain froze: the thief froze the nodes it chose. Such
/// a change is now offered whatever its verdict, so every node holds the fork and freezes the
/// same way (a leaked retired key is the State's to recover from), and the recovery restores
/// both.
#[test]
fn a_fork_by_a_retired_key_reaches_every_node_and_a_recovery_restores_them_all() {
    let doc = DocId::State(xaa());
    let (k0, k2, s, stranger, r) = (key(40), key(42), key(1), key(77), key(90));
    let root = k0.node_id();
    let mut honest_l = Ledger::new(&doc);
    let h = honest(&mut honest_l, &doc);
    let mut victim = Ledger::new(&doc);
    for c in [&h.c_ds, &h.c_rot, &h.c_dm] {
        new_hash(victim.admit(c, Some(&root)));
    }
    let fork = grant(&k0, GrantKind::Rotation, &key(78), 0, vec![]);
    let carrier = change(
        &victim,
        &doc,
        &stranger,
        &[h.h_dm],
        vec![grant_op(&doc, &fork), grant_op(&doc, &h.rot)],
    );
    let h_carrier = new_hash(victim.admit(&carrier, Some(&root)));
    victim.settle(Some(&root));
    assert!(matches!(victim.verdict(&h_carrier), Some(Verdict::Void(_))));
    assert!(victim.is_exported(&h_carrier), "the fork is offered");
    // The honest node takes it from the victim, and both reach the same verdicts.
    new_hash(honest_l.admit(&carrier, Some(&root)));
    for l in [&mut victim, &mut honest_l] {
        l.set_recovery(Some(r.node_id()));
    }
    let (sv, sh) = (
        victim.settle(Some(&root)).clone(),
        honest_l.settle(Some(&root)).clone(),
    );
    assert_eq!(sv.view, sh.view);
    assert_eq!(sv.offered, sh.offered);
    assert!(victim.key_chain(&root).frozen && honest_l.key_chain(&root).frozen);

    // The State recovers: epoch 1, K2, keeping its own delegation and the ministry's.
    let rec = grant(
        &r,
        GrantKind::Recovery,
        &k2,
        1,
        vec![h.d_s.storage_key(), h.d_m.storage_key()],
    );
    let heads = honest_l.settled().unwrap().heads.clone();
    let c_rec = change(&honest_l, &doc, &s, &heads, vec![grant_op(&doc, &rec)]);
    for l in [&mut victim, &mut honest_l] {
        new_hash(l.admit(&c_rec, Some(&root)));
        l.settle(Some(&root));
        let chain = l.key_chain(&root);
        assert!(!chain.frozen);
        assert_eq!(chain.current, k2.node_id());
        assert_eq!(l.verdict(&h.h_dm), Some(&Verdict::Stands));
    }
    assert_eq!(
        victim.settled().unwrap().view,
        honest_l.settled().unwrap().view
    );
}

/// Once a retired key K0 forks the chain (K0 -> X1), the keys the fork names used to be
/// "reachable": rotations signed by X1, X2, ... (a stranger's own keys), 512 junk `kept`
/// entries each, passed the screen and stood, and every honest node offered them (10 MB in
/// 40 changes from a node nobody delegated). A forked key reaches nothing now: the fork
/// itself is held (it is what freezes the chain), and what its keys sign is refused.
#[test]
fn a_fork_reaches_no_further_records() {
    let doc = DocId::State(xaa());
    let stranger = key(77);
    let root = key(40).node_id();
    let mut l = Ledger::new(&doc);
    let h = honest(&mut l, &doc);
    let junk: Vec<String> = (0..512)
        .map(|i| format!("{}/{:016x}", key(200).node_id(), i))
        .collect();
    let x = |i: u8| {
        NodeKey::from_seed(&[
            i, 0xAA, 0x55, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
            21, 22, 23, 24, 25, 26, 27, 28, 29,
        ])
    };
    // In one change, the fork and what its key signs: refused.
    let fork = grant(&key(40), GrantKind::Rotation, &x(1), 0, junk.clone());
    let on = grant(&x(1), GrantKind::Rotation, &x(2), 0, junk.clone());
    let both = change(
        &l,
        &doc,
        &stranger,
        &[h.h_dm],
        vec![grant_op(&doc, &fork), grant_op(&doc, &on)],
    );
    assert!(matches!(l.admit(&both, Some(&root)), Admitted::Refused(..)));
    // The fork alone is held and offered; then what its key signs is refused.
    let c_fork = change(&l, &doc, &stranger, &[h.h_dm], vec![grant_op(&doc, &fork)]);
    let h_fork = new_hash(l.admit(&c_fork, Some(&root)));
    l.settle(Some(&root));
    assert!(l.is_exported(&h_fork));
    assert!(l.key_chain(&root).frozen);
    let c_on = change(&l, &doc, &stranger, &[h_fork], vec![grant_op(&doc, &on)]);
    assert!(matches!(l.admit(&c_on, Some(&root)), Admitted::Refused(..)));
}

/// Offers `changes` to `l` until nothing more is taken (what waits for a dependency or is
/// refused is offered again, as peers do on later rounds).
fn take_all(l: &mut Ledger, root: &crate::id::NodeId, changes: &[SignedChange]) {
    loop {
        let mut took = false;
        for c in changes {
            if matches!(l.admit(c, Some(root)), Admitted::New(_)) {
                took = true;
            }
        }
        if !took {
            break;
        }
    }
    l.settle(Some(root));
}

/// What `l` offers its peers.
pub(super) fn offered(l: &Ledger) -> Vec<SignedChange> {
    l.signed_changes()
        .filter(|(h, _)| l.is_exported(h))
        .map(|(_, c)| c)
        .collect()
}

use proptest::prelude::Strategy as _;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Two nodes take the honest chain, the thief's mixed change, the retired key's fork and
    /// the recovery each in its own order (each change possibly never reaching one of them),
    /// then sync what they offer: they reach the same verdicts and follow the same key.
    #[test]
    fn the_key_chain_is_the_same_on_two_nodes_after_any_arrival_order_and_a_sync(
        order_a in proptest::sample::subsequence((0..6usize).collect::<Vec<_>>(), 0..=6)
            .prop_shuffle(),
        order_b in proptest::sample::subsequence((0..6usize).collect::<Vec<_>>(), 0..=6)
            .prop_shuffle(),
    ) {
        let doc = DocId::State(xaa());
        let (k0, t, r) = (key(40), key(66), key(90));
        let root = k0.node_id();
        let mut base = Ledger::new(&doc);
        let genesis = base.genesis_hash().unwrap();
        let h = honest(&mut base, &doc);
        let d_t = grant(&k0, GrantKind::Delegation, &t, 0, vec![]);
        let mixed = change(
            &base,
            &doc,
            &t,
            &[genesis],
            vec![
                grant_op(&doc, &grant(&k0, GrantKind::Rotation, &t, 0, vec![])),
                grant_op(&doc, &d_t),
            ],
        );
        let fork = change(
            &base,
            &doc,
            &key(77),
            &[h.h_dm],
            vec![
                grant_op(&doc, &grant(&k0, GrantKind::Rotation, &key(78), 0, vec![])),
                grant_op(&doc, &h.rot),
            ],
        );
        let rec = grant(
            &r,
            GrantKind::Recovery,
            &key(42),
            1,
            vec![h.d_s.storage_key(), h.d_m.storage_key()],
        );
        let c_rec = change(&base, &doc, &key(1), &[h.h_dm], vec![grant_op(&doc, &rec)]);
        let all = [h.c_ds, h.c_rot, h.c_dm, mixed, fork, c_rec];
        let mut a = Ledger::new(&doc);
        let mut b = Ledger::new(&doc);
        for l in [&mut a, &mut b] {
            l.set_recovery(Some(r.node_id()));
        }
        for i in &order_a {
            take_all(&mut a, &root, std::slice::from_ref(&all[*i]));
        }
        for i in &order_b {
            take_all(&mut b, &root, std::slice::from_ref(&all[*i]));
        }
        // Sync until neither takes anything more.
        loop {
            let (na, nb) = (a.signed_changes().count(), b.signed_changes().count());
            take_all(&mut a, &root, &offered(&b));
            take_all(&mut b, &root, &offered(&a));
            if (na, nb) == (a.signed_changes().count(), b.signed_changes().count()) {
                break;
            }
        }
        let (sa, sb) = (a.settled().unwrap().clone(), b.settled().unwrap().clone());
        proptest::prop_assert_eq!(&sa.view, &sb.view);
        proptest::prop_assert_eq!(&sa.offered, &sb.offered);
        proptest::prop_assert_eq!(&*a.key_chain(&root), &*b.key_chain(&root));
    }
}
