//! Red-team round 27: attacks on the key-rotation/recovery and admission rules as c148703
//! changed them (`EverHeld` narrowed to the last epoch, `wanted_by_writer`, carriers forced in
//! by their own author's change, `is_writer` past MAX_ACTORS), written by a red-team helper.
//! Each asserts a property the rules promise. Six failed on ad3a2a7 (the `rt27_…_control…`
//! tests and `rt27_real_sessions_with_a_flush_heal` passed there, and stay as controls).

use automerge::ChangeHash;

use crate::authority::GrantKind;
use crate::change::{ChangeData, FlatOp, SignedChange};
use crate::id::NodeId;
use crate::ledger::{Admitted, Ledger, Verdict, actor_bytes};
use crate::redteam15_tests::offered;
use crate::redteam16_tests::{change, doc, hash_of, key, put};
use crate::redteam23_tests::{grant, standing, sync};
use crate::redteam25_tests::{deleg, held, new_node_writes, put_on, rotated, taken_from};
use crate::rotation_tests::target_op;
use crate::sign::{NodeKey, sign_change};

const T0: i64 = 1_767_225_600;

fn puppet(i: u32, tag: u8) -> NodeKey {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    seed[31] = tag;
    NodeKey::from_seed(&seed)
}

/// A signed change with arbitrary (possibly absent) deps: it waits, so seq and start_op are
/// never checked.
fn raw(author: &NodeKey, suffix: u8, mut deps: Vec<[u8; 32]>, ops: Vec<FlatOp>) -> SignedChange {
    deps.sort();
    deps.dedup();
    let data = ChangeData {
        actor: actor_bytes(&author.node_id(), &[suffix; 8]),
        seq: 1,
        start_op: 2,
        time: T0,
        message: None,
        deps,
        ops,
    };
    let h = data.to_automerge(&doc()).unwrap().hash();
    SignedChange {
        data,
        signature: sign_change(author, &doc(), &h).to_vec(),
    }
}

/// Floods `l` with sock puppets, each placing its own delegation by `signer` on `g`, until
/// one is refused: how many were held.
fn fill_actors(l: &mut Ledger, root: &NodeId, signer: &NodeKey, g: ChangeHash, tag: u8) -> usize {
    let mut n = 0;
    for i in 0..(2 * crate::ledger::MAX_ACTORS as u32) {
        let p = puppet(i, tag);
        let c = change(l, &p, 1, &[g], vec![put(&deleg(signer, &p))]);
        match l.admit(&c, Some(root)) {
            Admitted::New(_) => n += 1,
            other => {
                eprintln!("puppet {i} refused: {other:?}");
                break;
            }
        }
    }
    l.settle(Some(root));
    n
}

/// ATTACK 1 (promise 4 and 2; the actor cap past MAX_ACTORS). The State rotated K0 -> K1;
/// K0 leaked. Its thief fills B with MAX_ACTORS sock puppets delegated by K0 (they pass the
/// screen: K0 is a key of the last epoch). The State recovers, the recovery carried (as
/// `a_recovery_placed_by_a_node_with_no_delegation_moves_the_chain` allows) by the new
/// epoch's node N on a fresh actor. On B the carrier is refused past MAX_ACTORS (N is no
/// writer before the recovery is held), and N's own delegation by N1 then fails the screen
/// (N1 is not a key of B's chain without the recovery), so the self-forcing of carriers is
/// never reached: B never takes the recovery, never N's writes, while A stands them.
#[test]
fn rt27_actor_flood_by_a_retired_key_locks_out_the_recovery_carried_by_a_new_node() {
    let (k0, rec, k1, n1) = (key(40), key(41), key(42), key(43));
    let root = k0.node_id();
    let nn = key(5);
    let (mut a, g, ds, c_rot) = rotated(&k1, Some(&rec));
    let mut b = a.clone();
    let n = fill_actors(&mut b, &root, &k0, g, 0xA1);
    eprintln!("B holds {n} puppets of the retired K0");
    let rv = grant(&rec, GrantKind::Recovery, 1, &n1.node_id(), &[&ds]);
    let c_rv = put_on(&mut a, &root, &nn, 1, &[hash_of(&c_rot)], vec![put(&rv)]);
    let (c_dn, c_t) = new_node_writes(&mut a, &root, &nn, &n1, &c_rv);
    taken_from(&mut a, &mut b, &root, &nn, &[&c_rv, &c_dn, &c_t]);
    eprintln!(
        "B's key in force is N1: {}; B holds N's target: {}",
        b.key_chain(&root).current == n1.node_id(),
        b.has(&hash_of(&c_t))
    );
    assert_eq!(
        b.key_chain(&root).current,
        n1.node_id(),
        "B never takes the State's recovery"
    );
    assert!(
        b.has(&hash_of(&c_t)),
        "the new epoch's node cannot write on B"
    );
    assert_eq!(standing(&mut a, &root), standing(&mut b, &root));
}

/// ATTACK 2 (promise 4; HARD_ACTORS). The thief holds the State's key in force K1 (why the
/// State recovers). Its puppets, delegated by K1, are writers by the chain, so they fill B up
/// to HARD_ACTORS. The State recovers (carried by S on its existing actor, the most favourable
/// case) and delegates its new node N by N1. On B every puppet is void now, but they hold
/// every actor slot for good: N's delegation is refused (a new actor past HARD_ACTORS), and
/// N can never write on B, however the changes travel.
#[test]
fn rt27_a_current_key_thiefs_puppets_lock_every_new_node_out_after_the_recovery() {
    let (k0, rec, k1, n1) = (key(40), key(41), key(42), key(43));
    let root = k0.node_id();
    let s = key(1);
    let nn = key(5);
    let (mut a, g, ds, c_rot) = rotated(&k1, Some(&rec));
    let mut b = a.clone();
    let n = fill_actors(&mut b, &root, &k1, g, 0xA2);
    eprintln!("B holds {n} puppets of the stolen K1");
    let rv = grant(&rec, GrantKind::Recovery, 1, &n1.node_id(), &[&ds]);
    let c_rv = put_on(&mut a, &root, &s, 1, &[hash_of(&c_rot)], vec![put(&rv)]);
    let (c_dn, c_t) = new_node_writes(&mut a, &root, &nn, &n1, &c_rv);
    taken_from(&mut a, &mut b, &root, &nn, &[&c_rv, &c_dn, &c_t]);
    b.settle(Some(&root));
    let puppets_standing = standing(&mut b, &root).len();
    eprintln!(
        "B's key in force is N1: {}; changes standing on B: {puppets_standing}; B holds N's target: {}",
        b.key_chain(&root).current == n1.node_id(),
        b.has(&hash_of(&c_t))
    );
    assert!(
        b.has(&hash_of(&c_t)),
        "after the recovery, the State's new node cannot write on B"
    );
    assert_eq!(standing(&mut a, &root), standing(&mut b, &root));
}

/// ATTACK 3 (promise 3; `wanted_by_writer`). One waiting change of a writer that depends on
/// the head of a stranger's run makes the whole run pass the screen: each change of the run,
/// wanted, passes its want on to the one before it (the wanters are inherited), so a node
/// stores every change of an arbitrarily long stranger run, none of which stands, none capped.
/// Here the writer is even a *revoked* ministry R, relayed (its own changes bounded by
/// RELAYED_REVOKED_KEEP): `wanted_by_writer` asks only whether R's delegation is accepted,
/// never whether R was revoked.
#[test]
fn rt27_one_waiting_change_of_a_revoked_writer_pulls_in_an_unbounded_stranger_run() {
    let k0 = key(40);
    let root = k0.node_id();
    let s = key(1);
    let r = key(2);
    let x = key(77);
    let mut a = Ledger::new(&doc());
    let g = a.genesis_hash().unwrap();
    let c_ds = put_on(&mut a, &root, &s, 1, &[g], vec![put(&deleg(&k0, &s))]);
    let c_dr = put_on(&mut a, &root, &r, 1, &[g], vec![put(&deleg(&k0, &r))]);
    let rv = grant(&k0, GrantKind::Revocation, 0, &r.node_id(), &[]);
    let c_rev = put_on(&mut a, &root, &s, 1, &[hash_of(&c_ds)], vec![put(&rv)]);
    // The stranger's run, built on a scratch copy that stores without a screen.
    let mut scratch = a.clone();
    const N: usize = 3000;
    let mut run = Vec::new();
    let mut prev = g;
    for i in 0..N {
        let c = change(&scratch, &x, 1, &[prev], vec![target_op(&format!("X{i}"))]);
        assert!(matches!(
            scratch.admit_stored(&c, Some(&root)),
            Admitted::New(_)
        ));
        prev = hash_of(&c);
        run.push(c);
    }
    let c_w = change(
        &scratch,
        &r,
        1,
        &[prev, hash_of(&c_dr), hash_of(&c_rev)],
        vec![target_op("RW")],
    );
    // Relayed by a peer P: the revoked ministry's change, then the run, head first.
    let mut batch = vec![c_w];
    batch.extend(run.iter().rev().cloned());
    let t = std::time::Instant::now();
    let out = a
        .admit_batch(batch, Some(&root), Some(key(88).node_id()), |_| {
            Ok::<_, ()>(false)
        })
        .unwrap();
    let strangers = run.iter().filter(|c| a.has(&hash_of(c))).count();
    a.settle(Some(&root));
    let standing_strangers = run
        .iter()
        .filter(|c| matches!(a.verdict(&hash_of(c)), Some(Verdict::Stands)))
        .count();
    eprintln!(
        "held {strangers} of the stranger's {N} changes ({standing_strangers} stand), {} refused, in {:?}",
        out.refused.len(),
        t.elapsed()
    );
    assert!(
        strangers <= 64,
        "one waiting change of a revoked writer made the node hold {strangers} stranger changes"
    );
}

/// The story of redteam25's attack 1, with the old epoch's ministry M writing a run of
/// `run` changes that the State's node S builds on before the recovery. Returns A (which
/// took everything before the recovery), C (which took the recovery first, then the rest in
/// causal order, one by one), and S's change.
fn old_epoch_run(run: usize) -> (Ledger, Ledger, NodeId, SignedChange) {
    let (k0, rec, k1, n1) = (key(40), key(41), key(42), key(43));
    let root = k0.node_id();
    let s = key(1);
    let m = key(2);
    let (mut a, _, ds, c_rot) = rotated(&k1, Some(&rec));
    let rv = grant(&rec, GrantKind::Recovery, 1, &n1.node_id(), &[&ds]);
    let mut c = a.clone();
    let c_rv = change(&a, &s, 1, &[hash_of(&c_rot)], vec![put(&rv)]);
    let dm = deleg(&k1, &m);
    let c_dm = put_on(&mut a, &root, &m, 1, &[hash_of(&c_rot)], vec![put(&dm)]);
    let mut later = vec![c_dm.clone()];
    let mut prev = hash_of(&c_dm);
    for i in 0..run {
        let cm = put_on(
            &mut a,
            &root,
            &m,
            1,
            &[prev],
            vec![target_op(&format!("M{i}"))],
        );
        prev = hash_of(&cm);
        later.push(cm);
    }
    let c_s = put_on(&mut a, &root, &s, 2, &[prev], vec![target_op("TS")]);
    later.push(c_s.clone());
    assert!(matches!(a.admit(&c_rv, Some(&root)), Admitted::New(_)));
    a.settle(Some(&root));
    assert!(matches!(a.verdict(&hash_of(&c_s)), Some(Verdict::Stands)));
    assert!(matches!(c.admit(&c_rv, Some(&root)), Admitted::New(_)));
    for x in &later {
        c.admit(x, Some(&root));
    }
    c.settle(Some(&root));
    (a, c, root, c_s)
}

/// ATTACK 4 (promise 2; `wanted_by_writer`, EverHeld narrowed). As redteam25's attack 1, but
/// the old epoch's ministry M wrote three changes, not one, before S built on them. C (the
/// recovery first) refuses M's delegation at the screen and holds nothing of M's run; S's
/// change wants only the run's last change. A batch in causal order (what a peer offers)
/// gives each change of the run before the one that passes on the want, so each sync pulls
/// in one more step at most; `sync` finds nothing new held after the first round and stops:
/// A and C, synced to a fixpoint, hold and stand different sets.
#[test]
fn rt27_an_old_epoch_ministrys_run_a_writer_built_on_is_not_pulled_in_by_a_sync() {
    let (mut a, mut c, root, c_s) = old_epoch_run(3);
    sync(&mut a, &mut c, &root);
    eprintln!(
        "A holds {}, C holds {}; C holds S's target: {}",
        held(&a).len(),
        held(&c).len(),
        c.has(&hash_of(&c_s))
    );
    assert!(c.has(&hash_of(&c_s)), "S's honest change is stranded on C");
    assert_eq!(held(&a), held(&c));
    assert_eq!(standing(&mut a, &root), standing(&mut c, &root));
}

/// One round of sync that never stops early: B takes A's offer in one batch, and A B's.
fn sync_round(a: &mut Ledger, b: &mut Ledger, root: &NodeId) {
    a.settle(Some(root));
    b.settle(Some(root));
    let from_a = offered(a);
    let from_b = offered(b);
    b.admit_batch(from_a, Some(root), None, |_| Ok::<_, ()>(false))
        .unwrap();
    a.admit_batch(from_b, Some(root), None, |_| Ok::<_, ()>(false))
        .unwrap();
    a.settle(Some(root));
    b.settle(Some(root));
}

/// ATTACK 5 (promise 2; the bounded `wanted` memory). As attack 4, but syncing on and on,
/// round after round. Left alone, each round pulls in one more step of the run; a stranger
/// between rounds sends C changes that carry a copy of the recovery record (they pass the
/// screen: the chain reads that record) on 64 made-up dependencies each: waiting, they are
/// never stored, yet each fills 64 slots of the 1,024 remembered wants, and 16 of them push
/// out every want S's change and the run left. C never gets S's change however often they
/// sync.
#[test]
fn rt27_a_stranger_flushes_the_remembered_wants_and_the_split_never_heals() {
    let (mut a, mut c, root, c_s) = old_epoch_run(3);
    let rv = a
        .grants_placed_by(None)
        .into_iter()
        .find(|g| g.grant.kind == GrantKind::Recovery);
    // grants_placed_by lists delegations and revocations only: rebuild the record.
    let rv = rv.unwrap_or_else(|| {
        let (rec, n1, k0, s) = (key(41), key(43), key(40), key(1));
        let ds = deleg(&k0, &s);
        grant(&rec, GrantKind::Recovery, 1, &n1.node_id(), &[&ds])
    });
    let f = key(160);
    let mut nonce = 0u32;
    for round in 0..12 {
        sync_round(&mut a, &mut c, &root);
        for _ in 0..17 {
            let deps: Vec<[u8; 32]> = (0..64)
                .map(|_| {
                    nonce += 1;
                    let mut h = [0xEEu8; 32];
                    h[..4].copy_from_slice(&nonce.to_le_bytes());
                    h
                })
                .collect();
            let fl = raw(&f, 1, deps, vec![put(&rv)]);
            let r = c.admit(&fl, Some(&root));
            assert!(matches!(r, Admitted::Waiting(..)), "{r:?}");
        }
        eprintln!(
            "round {round}: C holds {} of A's {}",
            held(&c).len(),
            held(&a).len()
        );
    }
    assert!(
        c.has(&hash_of(&c_s)),
        "S's honest change is stranded on C for good"
    );
    assert_eq!(standing(&mut a, &root), standing(&mut c, &root));
}

/// Control for attack 5: without the stranger, how many rounds the run takes to come in.
#[test]
fn rt27_control_rounds_without_a_flush() {
    let (mut a, mut c, root, c_s) = old_epoch_run(3);
    for round in 0..12 {
        sync_round(&mut a, &mut c, &root);
        eprintln!(
            "round {round}: C holds {} of A's {}; S's change: {}",
            held(&c).len(),
            held(&a).len(),
            c.has(&hash_of(&c_s))
        );
        if c.has(&hash_of(&c_s)) {
            break;
        }
    }
    assert!(c.has(&hash_of(&c_s)));
    assert_eq!(standing(&mut a, &root), standing(&mut c, &root));
}

/// ATTACK 4 through real sessions (the in-memory host, which parks waiting changes and
/// retries them with the next batch from the same peer): A and C run `sessions` one-shot
/// sessions back to back.
fn through_sessions(sessions: usize, flush: bool) -> (bool, usize, usize) {
    use crate::id::{Principal, StateCode};
    use crate::session::{Mode, SessionConfig};
    use crate::testing::{Pair, Pin, host};
    let d = doc();
    let xaa = Principal::State(StateCode::from_static("XAA"));
    let (a, c, root, c_s) = old_epoch_run(3);
    let (ida, idc) = (key(20).node_id(), key(21).node_id());
    let mut ha = host(Some(xaa.clone()), &[(xaa.clone(), root)]);
    let mut hc = host(Some(xaa.clone()), &[(xaa.clone(), root)]);
    let pin = Pin {
        pinned_as: Some(xaa.clone()),
        introducer: false,
    };
    ha.pins.insert(idc, pin.clone());
    hc.pins.insert(ida, pin);
    ha.ledgers.insert(d.clone(), a);
    hc.ledgers.insert(d.clone(), c);
    let rv = {
        let (rec, n1, k0, s) = (key(41), key(43), key(40), key(1));
        grant(
            &rec,
            GrantKind::Recovery,
            1,
            &n1.node_id(),
            &[&deleg(&k0, &s)],
        )
    };
    let mut nonce = 0u32;
    for i in 0..sessions {
        let mut pair = Pair::new(
            (ida, ha),
            (idc, hc),
            Mode::OneShot,
            SessionConfig::default(),
        );
        pair.drive(10_000);
        ha = pair.a.host;
        hc = pair.b.host;
        eprintln!(
            "session {i}: C holds {} of A's {}; parked on C: {}",
            hc.ledgers[&d].len(),
            ha.ledgers[&d].len(),
            hc.parked.len()
        );
        if flush {
            let l = hc.ledgers.get_mut(&d).unwrap();
            for _ in 0..17 {
                let deps: Vec<[u8; 32]> = (0..64)
                    .map(|_| {
                        nonce += 1;
                        let mut h = [0xEEu8; 32];
                        h[..4].copy_from_slice(&nonce.to_le_bytes());
                        h
                    })
                    .collect();
                let fl = raw(&key(160), 1, deps, vec![put(&rv)]);
                assert!(matches!(l.admit(&fl, Some(&root)), Admitted::Waiting(..)));
            }
        }
    }
    let lc = hc.ledgers.get_mut(&d).unwrap();
    (lc.has(&hash_of(&c_s)), lc.len(), ha.ledgers[&d].len())
}

#[test]
fn rt27_real_sessions_one_session_leaves_the_writers_change_stranded() {
    let (has, c, a) = through_sessions(1, false);
    eprintln!("after one session C holds {c}, A {a}");
    assert!(has, "after a full session, S's honest change is not on C");
}

#[test]
fn rt27_real_sessions_with_a_flush_heal() {
    let (has, c, a) = through_sessions(10, true);
    eprintln!("after ten sessions C holds {c}, A {a}");
    assert!(has, "after ten sessions, S's honest change is not on C");
}

#[test]
fn rt27_real_sessions_control_ten_sessions() {
    let (has, c, a) = through_sessions(10, false);
    eprintln!("after ten sessions C holds {c}, A {a}");
    assert!(has);
}
