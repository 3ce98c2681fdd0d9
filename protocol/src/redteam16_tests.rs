//! Red-team round 16: attacks on the key-chain evidence rule of round 15. Each test failed
//! before its fix: what may be held whoever placed it, and what is offered, are now read off
//! the key chain alone (`reached`), and one carrier is offered per record the chain reads.

use automerge::ChangeHash;

use crate::authority::{Grant, GrantKind, SignedGrant};
use crate::change::{FlatAction, FlatOp, SignedChange};
use crate::date::Date;
use crate::doc::DocId;
use crate::id::{NodeId, Principal, StateCode};
use crate::ledger::{Admitted, Ledger, Verdict, actor_bytes};
use crate::sign::{NodeKey, sign_change};

pub(super) fn key(seed: u8) -> NodeKey {
    NodeKey::from_seed(&[seed; 32])
}

pub(super) fn doc() -> DocId {
    DocId::State(StateCode::from_static("XAA"))
}

fn record(signer: &NodeKey, kind: GrantKind, serial: u32, node: &NodeKey) -> SignedGrant {
    SignedGrant::sign(
        signer,
        Grant {
            kind,
            principal: Principal::State(StateCode::from_static("XAA")),
            node: node.node_id(),
            scope: None,
            expires: None,
            issued: Date::from_unix_seconds(1_767_225_600),
            key: signer.node_id(),
            cutoff: vec![],
            serial,
            kept: Vec::new(),
            recovery: None,
        },
    )
}

pub(super) fn put(g: &SignedGrant) -> FlatOp {
    FlatOp {
        container: doc().kind().container(g.grant.kind.container()).unwrap(),
        key: g.storage_key(),
        action: FlatAction::Put {
            value: g.to_text(),
            preds: vec![],
        },
    }
}

/// A change by `author` (actor suffix `suffix`) on `deps`, built against `l`, signed.
pub(super) fn change(
    l: &Ledger,
    author: &NodeKey,
    suffix: u8,
    deps: &[ChangeHash],
    ops: Vec<FlatOp>,
) -> SignedChange {
    let actor = actor_bytes(&author.node_id(), &[suffix; 8]);
    let data = l.change_at(deps, &actor, 1_767_225_600, ops);
    let h = data.to_automerge(&doc()).unwrap().hash();
    SignedChange {
        data,
        signature: sign_change(author, &doc(), &h).to_vec(),
    }
}

fn admit_all(l: &mut Ledger, root: &NodeId, cs: &[SignedChange]) -> Vec<Admitted> {
    let out = cs.iter().map(|c| l.admit(c, Some(root))).collect();
    l.settle(Some(root));
    out
}

pub(super) fn hash_of(c: &SignedChange) -> ChangeHash {
    c.data.to_automerge(&doc()).unwrap().hash()
}

/// A pinned peer holding no key and no delegation replays the State's own rotation record in
/// an unbounded chain of changes. Every one passes the screen (it "places only reachable
/// rotations"), is void (the record is stored twice in its past), and yet is exported: the
/// chain read that record, so rule (2) offers every change carrying it, whatever its verdict.
/// Honest nodes hold, and relay to each other, as many as the stranger signs.
/// (The attack above worked before this round's fix; the test asserts it no longer does.)
#[test]
fn copies_of_a_read_record_are_held_but_one_carrier_is_offered() {
    let d = doc();
    let k0 = key(40);
    let k1 = key(41);
    let root = k0.node_id();
    let state_node = key(10);
    let stranger = key(66);
    let mut a = Ledger::new(&d);
    let genesis = a.genesis_hash().unwrap();
    // The State rotates its key, K0 -> K1 (a normal, honest rotation).
    let rot = record(&k0, GrantKind::Rotation, 0, &k1);
    let h = change(&a, &state_node, 1, &[genesis], vec![put(&rot)]);
    assert!(matches!(
        admit_all(&mut a, &root, std::slice::from_ref(&h))[0],
        Admitted::New(_)
    ));
    assert_eq!(a.key_chain(&root).current, k1.node_id());
    // The stranger's flood: one actor, a linear chain, each change a copy of that record.
    const N: usize = 300;
    let mut flood = Vec::new();
    let mut prev = hash_of(&h);
    for _ in 0..N {
        let c = change(&a, &stranger, 7, &[prev], vec![put(&rot)]);
        if !matches!(a.admit(&c, Some(&root)), Admitted::New(_)) {
            break;
        }
        prev = hash_of(&c);
        flood.push(c);
    }
    // Since session 23, a node takes no more than `MAX_COPIES` carriers of one record.
    assert!(!flood.is_empty());
    assert!(
        flood.len() < crate::ledger::MAX_COPIES,
        "held {}",
        flood.len()
    );
    a.settle(Some(&root));
    for c in &flood {
        let h = hash_of(c);
        assert!(matches!(a.verdict(&h), Some(Verdict::Void(_))), "void");
    }
    // One carrier of the record is offered, with its causal past (its placer holds no
    // delegation either, so none stands: the one with the smallest hash), so no more than
    // the copies the bound let in.
    let carriers = std::iter::once(&h)
        .chain(&flood)
        .filter(|c| a.is_exported(&hash_of(c)))
        .count();
    assert!((1..=crate::ledger::MAX_COPIES).contains(&carriers));
    // A second honest node, fed what A offers (a relay), takes all of it and offers it on.
    let mut b = Ledger::new(&d);
    let offered: Vec<SignedChange> = a
        .signed_changes()
        .filter(|(h, _)| a.is_exported(h))
        .map(|(_, c)| c)
        .collect();
    let got = admit_all(&mut b, &root, &offered);
    let new = got.iter().filter(|x| matches!(x, Admitted::New(_))).count();
    assert!(new <= crate::ledger::MAX_COPIES, "B took {new} changes");
}

/// Two honest nodes that sync reach different verdicts for good. A thief holding the State's
/// *retired* key K0 signs recovery-kind records (never read by the chain, which reads only the
/// recovery key's recoveries) that `rotation_reach` follows from K0, an epoch key. Node B is
/// also sent one change `e2` that pairs a second K0 recovery for epoch 1 (which makes K0's
/// epoch-1 step a "fork", so it reaches nothing) with a rotation by a key reachable only when
/// e2 arrived; a later K0 record cuts that key off, so on B e2 is void and offered by neither
/// rule. Yet its K0 record still counts in B's `rotation_reach` (read off every held pure
/// change, whatever its verdict or export). A never receives e2: a change `d` stands and is
/// offered on A, and is void and not offered on B, with both holding it.
/// (The attack above worked before this round's fix; the test asserts it no longer does.)
#[test]
fn records_the_chain_does_not_reach_are_not_taken_and_synced_nodes_agree() {
    let d = doc();
    let k0 = key(40); // the root, retired by the honest rotation; leaked later
    let k1 = key(41);
    let root = k0.node_id();
    let (x, x2, z, z2, y, y2) = (key(50), key(51), key(52), key(53), key(54), key(55));
    let builder = Ledger::new(&d);
    let g = builder.genesis_hash().unwrap();
    let on_genesis = |author: u8, ops: Vec<FlatOp>| change(&builder, &key(author), 1, &[g], ops);
    let h = on_genesis(10, vec![put(&record(&k0, GrantKind::Rotation, 0, &k1))]);
    let a1 = on_genesis(60, vec![put(&record(&k0, GrantKind::Recovery, 1, &x))]);
    let a2 = on_genesis(61, vec![put(&record(&k0, GrantKind::Recovery, 2, &z))]);
    let dd = on_genesis(62, vec![put(&record(&x, GrantKind::Rotation, 0, &y))]);
    let e2 = on_genesis(
        63,
        vec![
            put(&record(&k0, GrantKind::Recovery, 1, &x2)),
            put(&record(&z, GrantKind::Rotation, 0, &y2)),
        ],
    );
    let a3 = on_genesis(64, vec![put(&record(&k0, GrantKind::Recovery, 2, &z2))]);

    let mut a = Ledger::new(&d);
    let mut b = Ledger::new(&d);
    for c in [&h, &a1, &a2, &dd, &a3] {
        a.admit(c, Some(&root));
    }
    for c in [&h, &a1, &a2, &dd, &e2, &a3] {
        b.admit(c, Some(&root));
    }
    // Records the chain does not reach (a retired key's recoveries, what their keys sign) are
    // not taken from a node nobody delegated.
    for c in [&a1, &a2, &dd, &e2, &a3] {
        assert!(!b.has(&hash_of(c)));
    }
    a.settle(Some(&root));
    b.settle(Some(&root));
    // Sync to a fixpoint: each takes everything the other offers.
    loop {
        let from_a: Vec<SignedChange> = a
            .signed_changes()
            .filter(|(h, _)| a.is_exported(h))
            .map(|(_, c)| c)
            .collect();
        let from_b: Vec<SignedChange> = b
            .signed_changes()
            .filter(|(h, _)| b.is_exported(h))
            .map(|(_, c)| c)
            .collect();
        let ra = admit_all(&mut b, &root, &from_a);
        let rb = admit_all(&mut a, &root, &from_b);
        if !ra.iter().chain(&rb).any(|r| matches!(r, Admitted::New(_))) {
            break;
        }
    }
    // The chain itself is the same, and honest: K1 in force, nothing frozen.
    assert_eq!(a.key_chain(&root).current, k1.node_id());
    assert_eq!(b.key_chain(&root).current, k1.node_id());
    assert!(!a.key_chain(&root).frozen && !b.key_chain(&root).frozen);
    assert_eq!(a.settled().unwrap().offered, b.settled().unwrap().offered);
    assert_eq!(a.settled().unwrap().view, b.settled().unwrap().view);
}

/// A thief holding only a retired State key (no fork, no freeze) adds standing records
/// without bound through a key of its own: one recovery-kind record K0 signs for epoch 1 (the
/// chain ignores it: the recovery key did not sign it) makes `rotation_reach` reach X, and
/// every rotation X signs stands and is offered, however many. The fifteenth round's fix
/// stopped a fork's keys from doing this; a recovery-kind record by an epoch key is not a fork.
/// (The attack above worked before this round's fix; the test asserts it no longer does.)
#[test]
fn a_retired_key_recovery_record_reaches_no_key() {
    let d = doc();
    let k0 = key(40);
    let k1 = key(41);
    let root = k0.node_id();
    let x = key(50);
    let mut l = Ledger::new(&d);
    let g = l.genesis_hash().unwrap();
    let h = change(
        &l,
        &key(10),
        1,
        &[g],
        vec![put(&record(&k0, GrantKind::Rotation, 0, &k1))],
    );
    let a1 = change(
        &l,
        &key(60),
        1,
        &[g],
        vec![put(&record(&k0, GrantKind::Recovery, 1, &x))],
    );
    admit_all(&mut l, &root, &[h, a1]);
    const N: u8 = 100;
    let mut mine = Vec::new();
    for i in 0..N {
        // Each by a different stranger author, each a distinct record X signed.
        let c = change(
            &l,
            &key(100 + i),
            1,
            &[g],
            vec![put(&record(&x, GrantKind::Rotation, 0, &key(i)))],
        );
        assert!(matches!(l.admit(&c, Some(&root)), Admitted::Refused(..)));
        mine.push(hash_of(&c));
    }
    l.settle(Some(&root));
    let chain = l.key_chain(&root);
    assert_eq!(chain.current, k1.node_id());
    assert!(!chain.frozen);
    for h in &mine {
        assert!(!l.has(h));
    }
}

/// The same split, through real sessions (`testing::Pair`): two nodes of the State, each
/// pinning the other as the State's, sync twice; `d` stays standing on A and void on B, and
/// their offered heads never meet.
/// (The attack above worked before this round's fix; the test asserts it no longer does.)
#[test]
fn synced_nodes_agree_through_real_sessions_after_a_retired_key_signs() {
    use crate::session::{Mode, SessionConfig};
    use crate::testing::{Pair, Pin, host};
    let d = doc();
    let xaa = Principal::State(StateCode::from_static("XAA"));
    let k0 = key(40);
    let k1 = key(41);
    let root = k0.node_id();
    let (x, x2, z, z2, y, y2) = (key(50), key(51), key(52), key(53), key(54), key(55));
    let builder = Ledger::new(&d);
    let g = builder.genesis_hash().unwrap();
    let on_genesis = |author: u8, ops: Vec<FlatOp>| change(&builder, &key(author), 1, &[g], ops);
    let h = on_genesis(10, vec![put(&record(&k0, GrantKind::Rotation, 0, &k1))]);
    let a1 = on_genesis(60, vec![put(&record(&k0, GrantKind::Recovery, 1, &x))]);
    let a2 = on_genesis(61, vec![put(&record(&k0, GrantKind::Recovery, 2, &z))]);
    let dd = on_genesis(62, vec![put(&record(&x, GrantKind::Rotation, 0, &y))]);
    let e2 = on_genesis(
        63,
        vec![
            put(&record(&k0, GrantKind::Recovery, 1, &x2)),
            put(&record(&z, GrantKind::Rotation, 0, &y2)),
        ],
    );
    let a3 = on_genesis(64, vec![put(&record(&k0, GrantKind::Recovery, 2, &z2))]);
    let a3h = hash_of(&a3);
    let (ida, idb) = (key(20).node_id(), key(21).node_id());
    let mut ha = host(Some(xaa.clone()), &[(xaa.clone(), root)]);
    let mut hb = host(Some(xaa.clone()), &[(xaa.clone(), root)]);
    ha.pins.insert(
        idb,
        Pin {
            pinned_as: Some(xaa.clone()),
            introducer: false,
        },
    );
    hb.pins.insert(
        ida,
        Pin {
            pinned_as: Some(xaa.clone()),
            introducer: false,
        },
    );
    ha.admit(
        &d,
        &[h.clone(), a1.clone(), a2.clone(), dd.clone(), a3.clone()],
    );
    // B gets a3 only through the sessions, from A.
    hb.admit(&d, &[h, a1, a2, dd.clone(), e2.clone()]);
    let (mut ha, mut hb) = (ha, hb);
    for _ in 0..2 {
        let mut pair = Pair::new(
            (ida, ha),
            (idb, hb),
            Mode::OneShot,
            SessionConfig::default(),
        );
        pair.drive(10_000);
        ha = pair.a.host;
        hb = pair.b.host;
    }
    let la = &ha.ledgers[&d];
    let lb = &hb.ledgers[&d];
    let dh = hash_of(&dd);
    assert!(
        !lb.has(&a3h) && !la.has(&a3h),
        "a retired key's recovery is not taken"
    );
    assert!(!la.has(&dh) && !lb.has(&dh));
    assert_eq!(la.settled().unwrap().offered, lb.settled().unwrap().offered);
    assert_eq!(la.settled().unwrap().view, lb.settled().unwrap().view);
}
