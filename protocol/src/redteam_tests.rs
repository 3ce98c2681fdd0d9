//! Attacks from the second review of the gate and the session, through the real `Ledger` and
//! `Session`. Each test was written to pass while its attack succeeded (and did, on the code
//! before the fix); each now asserts that the attack fails, and says in its comment what it
//! used to do.
//!
//! Run: `cargo test -p poa-protocol --lib redteam`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::authority::{Cutoff, Grant, GrantKind, Scope, SignedGrant};
use crate::change::{ChangeData, FlatAction, FlatOp, SignedChange};
use crate::date::Date;
use crate::doc::{DocId, PoolId, StateData};
use crate::id::{NodeId, Principal, StateCode};
use crate::ledger::{Admitted, Ledger, Verdict, actor_bytes};
use crate::model::Area;
use crate::sign::{NodeKey, sign_change};

pub(crate) const T0: i64 = 1_767_225_600; // 2026-01-01

pub(crate) fn key(seed: u8) -> NodeKey {
    NodeKey::from_seed(&[seed; 32])
}

fn key16(seed: u16) -> NodeKey {
    let mut s = [7u8; 32];
    s[0..2].copy_from_slice(&seed.to_be_bytes());
    s[2] = 0xAB;
    NodeKey::from_seed(&s)
}

pub(crate) fn xaa() -> StateCode {
    StateCode::from_static("XAA")
}

/// The State key of XAA.
pub(crate) fn state_key() -> NodeKey {
    key(40)
}

pub(crate) fn grant(
    kind: GrantKind,
    node: &NodeId,
    scope: Option<Scope>,
    cutoff: Vec<Cutoff>,
) -> SignedGrant {
    SignedGrant::sign(
        &state_key(),
        Grant {
            kind,
            principal: Principal::State(xaa()),
            node: *node,
            scope,
            expires: None,
            issued: Date::from_unix_seconds(T0),
            key: state_key().node_id(),
            cutoff,
            serial: 0,
            kept: Vec::new(),
            recovery: None,
        },
    )
}

pub(crate) fn grant_op(doc: &DocId, g: &SignedGrant) -> FlatOp {
    FlatOp {
        container: doc.kind().container(g.grant.kind.container()).unwrap(),
        key: g.storage_key(),
        action: FlatAction::Put {
            value: g.to_text(),
            preds: vec![],
        },
    }
}

pub(crate) fn put(doc: &DocId, container: &str, k: &str, value: String) -> FlatOp {
    FlatOp {
        container: doc.kind().container(container).unwrap(),
        key: k.into(),
        action: FlatAction::Put {
            value,
            preds: vec![],
        },
    }
}

pub(crate) fn signed(doc: &DocId, k: &NodeKey, data: ChangeData) -> SignedChange {
    let h = data.to_automerge(doc).unwrap().hash();
    SignedChange {
        data,
        signature: sign_change(k, doc, &h).to_vec(),
    }
}

pub(crate) fn hash_of(doc: &DocId, c: &SignedChange) -> automerge::ChangeHash {
    c.data.to_automerge(doc).unwrap().hash()
}

pub(crate) fn actor(k: &NodeKey, suffix: u8) -> Vec<u8> {
    actor_bytes(&k.node_id(), &[suffix; 8])
}

pub(crate) fn target_json(id: &str, version: u32, area: Area) -> String {
    let mut t = crate::model::tests::xaa_t1();
    t.id = id.into();
    t.version = version;
    t.area = area;
    if version > 1 {
        t.supersedes = Some(version - 1);
        t.reason = Some("changed".into());
    }
    serde_json::to_string(&t).unwrap()
}

fn admit_ok(l: &mut Ledger, c: &SignedChange, s: &NodeId) -> automerge::ChangeHash {
    match l.admit(c, Some(s)) {
        Admitted::New(h) => {
            l.settle(Some(s));
            h
        }
        other => panic!("not admitted: {other:?}"),
    }
}

/// Admits a change of a revoked node past its cut-off: held (void), or, once the revocation
/// settles that it can never stand, refused at admission. Either way it stands nowhere.
pub(crate) fn admit_void_or_refused(
    l: &mut Ledger,
    c: &SignedChange,
    s: Option<&NodeId>,
) -> Option<automerge::ChangeHash> {
    match l.admit(c, s) {
        Admitted::New(h) => {
            l.settle(s);
            Some(h)
        }
        Admitted::Refused(_, crate::ledger::Rejection::Revoked { .. }) => None,
        other => panic!("neither held nor refused as revoked: {other:?}"),
    }
}

/// Builds `state/XAA` with one change by node A delegating A (all) and the given others.
fn state_doc_with(
    delegated: &[(&NodeKey, Scope)],
) -> (DocId, Ledger, NodeKey, automerge::ChangeHash) {
    let doc = DocId::State(xaa());
    let s = state_key().node_id();
    let a = key(1);
    let own = vec![grant_op(
        &doc,
        &grant(
            GrantKind::Delegation,
            &a.node_id(),
            Some(Scope::ALL),
            vec![],
        ),
    )];
    let mut ops = Vec::new();
    for (k, scope) in delegated {
        ops.push(grant_op(
            &doc,
            &grant(
                GrantKind::Delegation,
                &k.node_id(),
                Some(scope.clone()),
                vec![],
            ),
        ));
    }
    let mut l = Ledger::new(&doc);
    l.settle(Some(&s));
    let c0 = l.next_change(&actor(&a, 0), T0, own);
    let c0 = signed(&doc, &a, c0);
    let mut h1 = admit_ok(&mut l, &c0, &s);
    if !ops.is_empty() {
        let c1 = l.next_change(&actor(&a, 0), T0, ops);
        let c1 = signed(&doc, &a, c1);
        h1 = admit_ok(&mut l, &c1, &s);
    }
    (doc, l, a, h1)
}

// ---------------------------------------------------------------------------------------------
// 1. Scope bypass by chosen dependencies.
// ---------------------------------------------------------------------------------------------

/// A ministry delegated for `marking` only tried to supersede AND withdraw a `stockpile` target
/// written by another ministry, building its change on a past that does not contain the target
/// (its delegation is all it needs there), so the gate saw only the area the attacker wrote.
/// The target's area is now what its first version, held anywhere, says: the change is void
/// on every past it can claim.
#[test]
fn redteam_scoped_ministry_supersedes_and_withdraws_out_of_scope_target() {
    let m = key(2);
    let marking = Scope::Areas(vec![Area::Marking]);
    let (doc, mut l, a, h1) = state_doc_with(&[(&m, marking)]);
    let s = state_key().node_id();
    // Ministry A (scope all) writes a stockpile target T1.
    let c2 = l.next_change(
        &actor(&a, 0),
        T0 + 10,
        vec![put(
            &doc,
            "targets",
            "T1/1",
            target_json("T1", 1, Area::Stockpile),
        )],
    );
    let c2 = signed(&doc, &a, c2);
    admit_ok(&mut l, &c2, &s);

    let ops = || {
        vec![
            put(&doc, "targets", "T1/2", target_json("T1", 2, Area::Marking)),
            put(&doc, "withdrawn", "T1", "\"2026-01-02\"".into()),
        ]
    };
    // Honest attempt, on the heads: void, out of scope.
    let mut honest_l = l.clone();
    let honest = honest_l.next_change(&actor(&m, 0), T0 + 20, ops());
    let honest = signed(&doc, &m, honest);
    let hh = admit_ok(&mut honest_l, &honest, &s);
    assert!(
        matches!(honest_l.verdict(&hh), Some(Verdict::Void(_))),
        "control: the marking ministry cannot touch the stockpile target from the heads"
    );

    // Attack: the same operations, built on the delegation change only, or on any other past.
    assert_void_on_every_past(&l, &doc, &m, T0 + 20, ops);
    let attack = l.change_at(&[h1], &actor(&m, 0), T0 + 20, ops());
    admit_ok(&mut l, &signed(&doc, &m, attack), &s);
    let data = StateData::from_json(&l.settle(Some(&s)).view);
    let latest = data.latest("T1").unwrap();
    assert_eq!((latest.version, latest.area), (1, Area::Stockpile));
    assert!(!data.withdrawn.contains_key("T1"));
}

/// Admits a change of `author` with `ops` built on each past it could claim (every held change
/// alone, the genesis, the heads) into a copy of `l`: each must be void.
fn assert_void_on_every_past(
    l: &Ledger,
    doc: &DocId,
    author: &NodeKey,
    time: i64,
    ops: impl Fn() -> Vec<FlatOp>,
) {
    let s = state_key().node_id();
    let mut pasts: Vec<Vec<automerge::ChangeHash>> =
        l.signed_changes().map(|(h, _)| vec![h]).collect();
    let mut probe = l.clone();
    pasts.push(probe.settle(Some(&s)).heads.clone());
    for (n, past) in pasts.into_iter().enumerate() {
        let mut l = l.clone();
        l.settle(Some(&s));
        let data = l.change_at(&past, &actor(author, 0x60 + n as u8), time, ops());
        let c = signed(doc, author, data);
        match l.admit(&c, Some(&s)) {
            Admitted::New(h) => {
                l.settle(Some(&s));
                assert!(
                    matches!(l.verdict(&h), Some(Verdict::Void(_))),
                    "built on {past:?}, the change stands"
                );
            }
            Admitted::Refused(..) => {}
            other => panic!("{other:?}"),
        }
    }
}

/// The same trick let the marking ministry file a progress report saying the stockpile target
/// is achieved (writing a marking version of T1 alongside, in the same change). Void now.
#[test]
fn redteam_scoped_ministry_reports_achieved_on_out_of_scope_target() {
    let m = key(2);
    let marking = Scope::Areas(vec![Area::Marking]);
    let (doc, mut l, a, h1) = state_doc_with(&[(&m, marking)]);
    let s = state_key().node_id();
    let c2 = l.next_change(
        &actor(&a, 0),
        T0 + 10,
        vec![put(
            &doc,
            "targets",
            "T1/1",
            target_json("T1", 1, Area::Stockpile),
        )],
    );
    admit_ok(&mut l, &signed(&doc, &a, c2), &s);
    let progress = serde_json::json!({
        "id": "R1", "target": "T1", "target_version": 9, "as_of": "2026-01-02", "value": 99.0,
        "assessment": "achieved", "note": "done"
    })
    .to_string();
    let attack = l.change_at(
        &[h1],
        &actor(&m, 0),
        T0 + 20,
        vec![
            put(&doc, "targets", "T1/9", target_json("T1", 9, Area::Marking)),
            put(&doc, "progress", "R1", progress),
        ],
    );
    let ha = admit_ok(&mut l, &signed(&doc, &m, attack), &s);
    assert!(matches!(l.verdict(&ha), Some(Verdict::Void(_))));
    let data = StateData::from_json(&l.settle(Some(&s)).view);
    assert!(!data.progress.contains_key("R1"));
    assert_eq!(data.latest("T1").unwrap().version, 1);
}

// ---------------------------------------------------------------------------------------------
// 2. Arrival-order dependent admission caps (actors per author, twins): a hostile author made
//    an honest node's changes unadmittable everywhere else, for good.
// ---------------------------------------------------------------------------------------------

/// A delegated (leaked) node E writes with 10 actor ids. Node H receives E's 10th actor first
/// and builds an honest change on it (it stood when H wrote). Every other node received E's
/// first 9 actors first, so it refused the 10th (TooManyActors) and H's change waited for it
/// forever. A cap now never refuses a change another author's change needs: O takes E's 10th
/// change with H's, and the two honest nodes converge.
#[test]
fn redteam_ten_actors_cut_off_an_honest_node_for_good() {
    let e = key(3);
    let (doc, base, a, h1) = state_doc_with(&[(&e, Scope::ALL)]);
    let s = state_key().node_id();
    let _ = a;
    let hnode = key(1); // A itself is the honest victim H (delegated all)
    // E's ten changes, each on its own actor, each on the delegation change.
    let e_changes: Vec<SignedChange> = (0..10u8)
        .map(|i| {
            let c = base.change_at(
                &[h1],
                &actor(&e, 100 + i),
                T0 + 5,
                vec![put(&doc, "needs", &format!("N{i}"), "{\"junk\":1}".into())],
            );
            signed(&doc, &e, c)
        })
        .collect();

    // Node H: gets E's 10th change first, and writes on top of it.
    let mut lh = base.clone();
    admit_ok(&mut lh, &e_changes[9], &s);
    let honest = lh.next_change(
        &actor(&hnode, 0),
        T0 + 60,
        vec![put(
            &doc,
            "targets",
            "T7/1",
            target_json("T7", 1, Area::Marking),
        )],
    );
    let honest = signed(&doc, &hnode, honest);
    admit_ok(&mut lh, &honest, &s);
    assert!(honest.data.deps.contains(&hash_of(&doc, &e_changes[9]).0));
    // ...and later receives the others (8 of them fit: E then has 9 actors here).
    for c in &e_changes[..9] {
        let _ = lh.admit(c, Some(&s));
    }
    lh.settle(Some(&s));
    // H's own later work builds on its own chain.
    let later = lh.next_change(
        &actor(&hnode, 0),
        T0 + 120,
        vec![put(
            &doc,
            "targets",
            "T8/1",
            target_json("T8", 1, Area::Marking),
        )],
    );
    let later = signed(&doc, &hnode, later);
    admit_ok(&mut lh, &later, &s);

    // Node O: got E's first 9 actors first (e.g. E sent them to O directly).
    let mut lo = base.clone();
    for c in &e_changes[..9] {
        admit_ok(&mut lo, c, &s);
    }
    // Then it syncs everything H holds, as often as it likes, in causal order.
    for _round in 0..3 {
        for (_, c) in lh.signed_changes() {
            let _ = lo.admit(&c, Some(&s));
        }
    }
    exchange(&mut lh, &mut lo, &s);
    assert!(lo.has(&hash_of(&doc, &honest)) && lo.has(&hash_of(&doc, &later)));
    let vh = StateData::from_json(&lh.settle(Some(&s)).view);
    let vo = StateData::from_json(&lo.settle(Some(&s)).view);
    assert!(
        vh.latest("T7").is_some() && vh.latest("T8").is_some(),
        "H shows its targets"
    );
    assert!(
        vo.latest("T7").is_some() && vo.latest("T8").is_some(),
        "O shows them too"
    );
    assert_eq!(lh.settle(Some(&s)).offered, lo.settle(Some(&s)).offered);
    assert_eq!(lh.settle(Some(&s)).view, lo.settle(Some(&s)).view);
}

fn send_offered(from: &mut Ledger, to: &mut Ledger, s: &NodeId) {
    from.settle(Some(s));
    let offered: Vec<SignedChange> = from
        .signed_changes()
        .filter(|(h, _)| from.is_exported(h))
        .map(|(_, c)| c)
        .collect();
    for c in &offered {
        let _ = to.admit(c, Some(s));
    }
    to.settle(Some(s));
}

/// Two ledgers send each other what they offer, in causal order, until neither takes more.
fn exchange(a: &mut Ledger, b: &mut Ledger, s: &NodeId) {
    for _ in 0..8 {
        let before = (a.len(), b.len());
        send_offered(a, b, s);
        send_offered(b, a, s);
        if (a.len(), b.len()) == before {
            return;
        }
    }
}

/// The same with twins: E signs 33 changes at one actor and sequence number. H gets the 33rd
/// first and builds on it; every other node held 32 already and refused the 33rd for good
/// (TooManyTwins), so H's change could never be admitted there. Now it comes in with H's.
#[test]
fn redteam_thirty_three_twins_cut_off_an_honest_node_for_good() {
    let e = key(3);
    let (doc, base, _a, h1) = state_doc_with(&[(&e, Scope::ALL)]);
    let s = state_key().node_id();
    let hnode = key(1);
    let twins: Vec<SignedChange> = (0..33u32)
        .map(|i| {
            let c = base.change_at(
                &[h1],
                &actor(&e, 7),
                T0 + 5,
                vec![put(&doc, "needs", &format!("N{i}"), "{\"junk\":1}".into())],
            );
            signed(&doc, &e, c)
        })
        .collect();
    let mut lh = base.clone();
    admit_ok(&mut lh, &twins[32], &s);
    let honest = lh.next_change(
        &actor(&hnode, 0),
        T0 + 60,
        vec![put(
            &doc,
            "targets",
            "T7/1",
            target_json("T7", 1, Area::Marking),
        )],
    );
    let honest = signed(&doc, &hnode, honest);
    admit_ok(&mut lh, &honest, &s);

    let mut lo = base.clone();
    for t in &twins[..32] {
        assert!(matches!(lo.admit(t, Some(&s)), Admitted::New(_)));
    }
    lo.settle(Some(&s));
    for (_, c) in lh.signed_changes() {
        let _ = lo.admit(&c, Some(&s));
    }
    assert!(lo.has(&hash_of(&doc, &honest)));
    exchange(&mut lh, &mut lo, &s);
    let vo = StateData::from_json(&lo.settle(Some(&s)).view);
    let vh = StateData::from_json(&lh.settle(Some(&s)).view);
    assert!(vh.latest("T7").is_some());
    assert!(vo.latest("T7").is_some(), "the honest target reaches O");
    assert_eq!(lh.settle(Some(&s)).offered, lo.settle(Some(&s)).offered);
    // Of the 33 twins, only the two with the smallest hashes are offered: the proof.
    let offered = twins
        .iter()
        .filter(|t| lo.is_exported(&hash_of(&doc, t)))
        .count();
    assert_eq!(
        offered,
        2 + 1,
        "the pair, and the twin H's change builds on"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Pools ignore revocations.
// ---------------------------------------------------------------------------------------------

pub(crate) fn pool_setup() -> (DocId, PoolId, Ledger, NodeKey) {
    let c = key(5);
    let id = PoolId::new("xanadu", &c.node_id());
    let doc = DocId::Pool(id.clone());
    let mut l = Ledger::new(&doc);
    l.settle(None);
    let charter = serde_json::json!({
        "name": "Xanadu", "node": c.node_id(), "coordinator": "XZZ", "created": "2026-01-01"
    })
    .to_string();
    let invite = serde_json::json!({
        "state": "XAA", "state_key": state_key().node_id(), "invited": "2026-01-01"
    })
    .to_string();
    let ch = l.next_change(
        &actor(&c, 0),
        T0,
        vec![
            put(&doc, "charter", "charter", charter),
            put(&doc, "invites", "XAA", invite),
        ],
    );
    let ch = signed(&doc, &c, ch);
    assert!(matches!(l.admit(&ch, None), Admitted::New(_)));
    l.settle(None);
    (doc, id, l, c)
}

pub(crate) fn join(l: &mut Ledger, doc: &DocId, n: &NodeKey, t: i64) -> automerge::ChangeHash {
    let g = grant(
        GrantKind::Delegation,
        &n.node_id(),
        Some(Scope::ALL),
        vec![],
    );
    let c = l.next_change(
        &actor(n, 0),
        t,
        vec![put(
            doc,
            "members",
            &format!("XAA/{}", n.node_id()),
            g.to_text(),
        )],
    );
    let c = signed(doc, n, c);
    let h = match l.admit(&c, None) {
        Admitted::New(h) => h,
        o => panic!("{o:?}"),
    };
    l.settle(None);
    assert_eq!(l.verdict(&h), Some(&Verdict::Stands));
    h
}

/// XAA's State key revokes ministry node N (its key leaked). In the pool XAA is a member of,
/// nothing changed: N stayed in the pool's audience (so kept reading `state/XAA`, which XAA
/// shares with the pool), and went on writing XAA's part of the pool: it removed XAA's honest
/// node and linked whatever targets it liked as XAA's contribution. The revocation is now
/// placed in the pool too (`XAA/N/revoked`, with a cut-off for the pool): N is no member for
/// any reader, and what it writes after the cut-off is void, whatever past it claims.
#[test]
fn redteam_revoked_node_keeps_acting_for_its_state_in_pools() {
    let s = state_key().node_id();
    let trust = crate::authority::Trust::default().with(Principal::State(xaa()), s);
    let (pdoc, pid, mut pl, _c) = pool_setup();
    let a = key(1); // XAA's honest node
    let n = key(3); // XAA's ministry node, later revoked
    join(&mut pl, &pdoc, &a, T0 + 10);
    join(&mut pl, &pdoc, &n, T0 + 20);

    // The State document: A and N delegated, XAA shares with the pool, then N is revoked.
    let sdoc = DocId::State(xaa());
    let (sdoc2, mut sl, a2, _h1) = state_doc_with(&[(&n, Scope::ALL)]);
    assert_eq!(sdoc, sdoc2);
    let share = sl.next_change(
        &actor(&a2, 0),
        T0 + 30,
        vec![put(&sdoc, "readers", &format!("pool/{pid}"), "true".into())],
    );
    admit_ok(&mut sl, &signed(&sdoc, &a2, share), &s);
    let before_revocation = pl.settle(None).heads.clone();
    let mut cut = sl.cutoff_for(&n.node_id());
    cut.extend(pl.cutoff_for(&n.node_id()));
    let rev = grant(GrantKind::Revocation, &n.node_id(), None, cut);
    let rc = sl.next_change(&actor(&a2, 0), T0 + 40, vec![grant_op(&sdoc, &rev)]);
    admit_ok(&mut sl, &signed(&sdoc, &a2, rc), &s);
    let sview = sl.settle(Some(&s)).view.clone();
    assert!(
        crate::doc::delegated_nodes(&sview)
            .iter()
            .all(|x| *x != n.node_id().to_string()),
        "N is revoked in XAA's document"
    );

    // XAA's node A places the revocation in the pool.
    let placed = pl.next_change(
        &actor(&a, 0),
        T0 + 50,
        vec![put(
            &pdoc,
            "members",
            &format!("XAA/{}/revoked", n.node_id()),
            rev.to_text(),
        )],
    );
    let hp = match pl.admit(&signed(&pdoc, &a, placed), None) {
        Admitted::New(h) => h,
        o => panic!("{o:?}"),
    };
    pl.settle(None);
    assert_eq!(pl.verdict(&hp), Some(&Verdict::Stands));

    // After the revocation, N kicks A out of the pool and links T99 as XAA's contribution,
    // building on the pool as it was before the revocation.
    let a_entry = format!("XAA/{}", a.node_id());
    let preds = pl.live_refs("members", &a_entry);
    let contribution =
        serde_json::json!({"target": "T99", "contributed": "2026-02-01"}).to_string();
    let attack = pl.change_at(
        &before_revocation,
        &actor(&n, 0),
        T0 + 86400 * 31,
        vec![
            FlatOp {
                container: pdoc.kind().container("members").unwrap(),
                key: a_entry.clone(),
                action: FlatAction::Delete { preds },
            },
            put(&pdoc, "sections", "XAA/T99", contribution),
        ],
    );
    let attack = signed(&pdoc, &n, attack);
    if let Some(h) = admit_void_or_refused(&mut pl, &attack, None) {
        assert!(
            matches!(pl.verdict(&h), Some(Verdict::Void(_))),
            "the revoked node's pool write is void"
        );
    }
    let pview = pl.settle(None).view.clone();
    let pd = crate::pool::PoolData::from_json(&pview, &pid, &trust);
    assert!(pd.is_member(xaa()));
    let nodes: Vec<NodeId> = pd.members[&xaa()].keys().copied().collect();
    assert_eq!(nodes, vec![a.node_id()], "A is XAA's member; N is not");
    assert!(
        !pd.contributions
            .get(&xaa())
            .is_some_and(|c| c.contains_key("T99"))
    );
    // And the revoked node may not read XAA's published document through the pool.
    let pools = |d: &DocId| (d == &pdoc).then(|| pd.clone());
    assert!(!crate::rules::may_read(
        &sdoc,
        &sview,
        crate::rules::Reader {
            node: &n.node_id(),
            pinned_as: None
        },
        pools
    ));
}

/// The coordinator of a pool removed a State's real member nodes: it invited the State under a
/// key it made up, joined a node of its own "for" that State with a delegation signed by the
/// made-up key, and that node deleted the State's genuine members. A member now removes only
/// nodes whose membership the same key signed: the delete is void and XAA stays a member.
#[test]
fn redteam_coordinator_evicts_a_states_members_with_a_fake_key() {
    let s = state_key().node_id();
    let trust = crate::authority::Trust::default().with(Principal::State(xaa()), s);
    let (pdoc, pid, mut pl, c) = pool_setup();
    let a = key(1);
    join(&mut pl, &pdoc, &a, T0 + 10);
    let pd = crate::pool::PoolData::from_json(&pl.settle(None).view, &pid, &trust);
    assert!(pd.is_member(xaa()));

    // The coordinator replaces XAA's invitation with one naming a key it holds.
    let fake_state = key(66);
    let fake_node = key(67);
    let invite = serde_json::json!({
        "state": "XAA", "state_key": fake_state.node_id(), "invited": "2026-01-05"
    })
    .to_string();
    let preds = pl.live_refs("invites", "XAA");
    let ch = pl.next_change(
        &actor(&c, 0),
        T0 + 100,
        vec![FlatOp {
            container: pdoc.kind().container("invites").unwrap(),
            key: "XAA".into(),
            action: FlatAction::Put {
                value: invite,
                preds,
            },
        }],
    );
    let h = match pl.admit(&signed(&pdoc, &c, ch), None) {
        Admitted::New(h) => h,
        o => panic!("{o:?}"),
    };
    pl.settle(None);
    assert_eq!(pl.verdict(&h), Some(&Verdict::Stands));
    // Its own node joins "for XAA" with a delegation signed by the made-up key, and in the same
    // change deletes XAA's genuine member.
    let g = SignedGrant::sign(
        &fake_state,
        Grant {
            kind: GrantKind::Delegation,
            principal: Principal::State(xaa()),
            node: fake_node.node_id(),
            scope: Some(Scope::ALL),
            expires: None,
            issued: Date::from_unix_seconds(T0),
            key: fake_state.node_id(),
            cutoff: vec![],
            serial: 0,
            kept: Vec::new(),
            recovery: None,
        },
    );
    let a_entry = format!("XAA/{}", a.node_id());
    let preds = pl.live_refs("members", &a_entry);
    let j = pl.next_change(
        &actor(&fake_node, 0),
        T0 + 200,
        vec![put(
            &pdoc,
            "members",
            &format!("XAA/{}", fake_node.node_id()),
            g.to_text(),
        )],
    );
    let hj = match pl.admit(&signed(&pdoc, &fake_node, j), None) {
        Admitted::New(h) => h,
        o => panic!("{o:?}"),
    };
    pl.settle(None);
    assert_eq!(pl.verdict(&hj), Some(&Verdict::Stands));
    let d = pl.next_change(
        &actor(&fake_node, 0),
        T0 + 300,
        vec![FlatOp {
            container: pdoc.kind().container("members").unwrap(),
            key: a_entry,
            action: FlatAction::Delete { preds },
        }],
    );
    let hd = match pl.admit(&signed(&pdoc, &fake_node, d), None) {
        Admitted::New(h) => h,
        o => panic!("{o:?}"),
    };
    let view = pl.settle(None).view.clone();
    assert!(
        matches!(pl.verdict(&hd), Some(Verdict::Void(_))),
        "the fake member's delete is void"
    );
    let pd = crate::pool::PoolData::from_json(&view, &pid, &trust);
    assert!(pd.is_member(xaa()), "XAA stays a member");
    assert!(pd.audience().contains(&a.node_id()));
}

// ---------------------------------------------------------------------------------------------
// 4. A pool's 4096-actor cap, filled by keys anyone can make.
// ---------------------------------------------------------------------------------------------

/// Anyone who may hand a node a pool's changes (an observer, an invited State, a member, the
/// coordinator) filled its actor table: the screen let any key in that wrote a `members` entry
/// ending in its own id, invited or not, and once 4096 actors were held no new actor was ever
/// admitted to the pool. A join is now screened for a delegation signed by a key an invitation
/// names: strangers' keys, with junk or with a delegation they signed themselves, are refused,
/// and the invited node joins.
#[test]
fn redteam_strangers_fill_a_pools_actor_table() {
    let (pdoc, _pid, mut pl, _c) = pool_setup();
    let base = pl.clone();
    let g = base.genesis_hash().unwrap();
    let mut flood = Vec::new();
    for k in 0..456u16 {
        let sk = key16(k);
        let own = SignedGrant::sign(
            &sk,
            Grant {
                kind: GrantKind::Delegation,
                principal: Principal::State(xaa()),
                node: sk.node_id(),
                scope: Some(Scope::ALL),
                expires: None,
                issued: Date::from_unix_seconds(T0),
                key: sk.node_id(),
                cutoff: vec![],
                serial: 0,
                kept: Vec::new(),
                recovery: None,
            },
        );
        for a in 0..9u8 {
            let value = if a % 2 == 0 {
                "1".to_string()
            } else {
                own.to_text()
            };
            let c = base.change_at(
                &[g],
                &actor(&sk, a),
                T0,
                vec![put(
                    &pdoc,
                    "members",
                    &format!("XAA/{}", sk.node_id()),
                    value,
                )],
            );
            flood.push(signed(&pdoc, &sk, c));
        }
    }
    let mut taken = 0;
    for c in &flood {
        if matches!(pl.admit(c, None), Admitted::New(_)) {
            taken += 1;
        }
    }
    pl.settle(None);
    assert_eq!(taken, 0, "a stranger's flood was held");
    // An honest invited node joins.
    let a = key(1);
    let gr = grant(
        GrantKind::Delegation,
        &a.node_id(),
        Some(Scope::ALL),
        vec![],
    );
    let j = pl.next_change(
        &actor(&a, 0),
        T0 + 10,
        vec![put(
            &pdoc,
            "members",
            &format!("XAA/{}", a.node_id()),
            gr.to_text(),
        )],
    );
    let j = signed(&pdoc, &a, j);
    assert!(matches!(pl.admit(&j, None), Admitted::New(_)));
}

// ---------------------------------------------------------------------------------------------
// 5. The session tells a peer whether an unreadable document is held.
// ---------------------------------------------------------------------------------------------

use crate::session::{Mode, Session, SessionConfig};
use crate::testing::{MemHost, Pin, host};
use crate::wire::{Claim, DocHeads, Hello, Message, PROTOCOL_VERSION};

fn victim_with(hold: bool) -> (MemHost, NodeId, DocId) {
    // The victim V is a node of body XRB that holds XBB's published document (XBB shares it
    // with V only), or does not. The attacker P is a pinned donor, in no share list.
    let xbb = StateCode::from_static("XBB");
    let xbb_key = key(41);
    let doc = DocId::State(xbb);
    let v = key(20).node_id();
    let p = key(21).node_id();
    let mut h = host(
        Some(Principal::Body(crate::id::BodyCode::from_static("XRB"))),
        &[(Principal::State(xbb), xbb_key.node_id())],
    );
    h.pins.insert(p, Pin::default());
    if hold {
        let w = key(22);
        let g = SignedGrant::sign(
            &xbb_key,
            Grant {
                kind: GrantKind::Delegation,
                principal: Principal::State(xbb),
                node: w.node_id(),
                scope: Some(Scope::ALL),
                expires: None,
                issued: Date::from_unix_seconds(T0),
                key: xbb_key.node_id(),
                cutoff: vec![],
                serial: 0,
                kept: Vec::new(),
                recovery: None,
            },
        );
        let mut l = Ledger::new(&doc);
        l.settle(Some(&xbb_key.node_id()));
        let c = l.next_change(&actor(&w, 0), T0, vec![grant_op(&doc, &g)]);
        let c = signed(&doc, &w, c);
        h.admit(&doc, &[c]);
        let l = &h.ledgers[&doc];
        let c2 = l.next_change(
            &actor(&w, 0),
            T0 + 1,
            vec![put(&doc, "readers", &v.to_string(), "true".into())],
        );
        let c2 = signed(&doc, &w, c2);
        h.admit(&doc, &[c2]);
        assert!(!h.can_read(&p, &doc), "P may not read XBB's document");
    }
    (h, p, doc)
}

/// What V sends P after P lists `doc` with `heads`.
fn probe(hold: bool, heads: Vec<[u8; 32]>) -> Vec<Message> {
    let (mut h, p, doc) = victim_with(hold);
    let me = Hello {
        version: PROTOCOL_VERSION,
        node: key(20).node_id(),
        name: "v".into(),
        claims: Claim::Body(
            crate::id::BodyCode::from_static("XRB"),
            crate::id::BodyKind::Regional,
        ),
        key: None,
        recovery: None,
    };
    let mut s = Session::new(p, me, Mode::Stay, SessionConfig::default());
    s.start(&mut h, 0);
    while s.poll_transmit().is_some() {}
    let hello = Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        node: p,
        name: "p".into(),
        claims: Claim::Body(
            crate::id::BodyCode::from_static("XZZ"),
            crate::id::BodyKind::Donor,
        ),
        key: None,
        recovery: None,
    });
    s.handle(&mut h, hello, 1).unwrap();
    s.handle(
        &mut h,
        Message::Summary {
            root: [9; 32],
            docs: 1,
        },
        2,
    )
    .unwrap();
    let mut out = Vec::new();
    while let Some(m) = s.poll_transmit() {
        out.push(m);
    }
    assert!(out.iter().any(|m| matches!(m, Message::ListRequest)));
    s.handle(
        &mut h,
        Message::Offers {
            docs: vec![DocHeads { doc, heads }],
        },
        3,
    )
    .unwrap();
    let mut out = Vec::new();
    while let Some(m) = s.poll_transmit() {
        out.push(m);
    }
    out
}

/// A pinned peer that may not read `state/XBB` lists the document with empty heads, with its
/// genesis hash (which anyone derives from the id), or with made-up heads, to learn whether the
/// victim holds it. It used to: a victim not holding it asked for it, one holding it stayed
/// silent. The victim's answer is now the same message either way.
#[test]
fn redteam_listing_reveals_whether_an_unreadable_doc_is_held() {
    let genesis = crate::doc::genesis_hash(&DocId::State(StateCode::from_static("XBB"))).0;
    for heads in [vec![], vec![genesis], vec![[0xEE; 32]]] {
        let held = probe(true, heads.clone());
        let not_held = probe(false, heads);
        assert!(
            not_held.iter().any(|m| matches!(m, Message::Sync(_))),
            "not held: the victim asks for it: {not_held:?}"
        );
        assert_eq!(
            held, not_held,
            "the answer tells whether the document is held"
        );
    }
}

/// A session with the victim V (the node of `victim_with(false)`), P's hello handled and P's
/// listing of `doc` (with made-up heads) answered: V asked P for the document.
fn session_after_listing(h: &mut MemHost, p: NodeId, doc: &DocId) -> Session {
    let me = Hello {
        version: PROTOCOL_VERSION,
        node: key(20).node_id(),
        name: "v".into(),
        claims: Claim::Body(
            crate::id::BodyCode::from_static("XRB"),
            crate::id::BodyKind::Regional,
        ),
        key: None,
        recovery: None,
    };
    let mut s = Session::new(p, me, Mode::Stay, SessionConfig::default());
    s.start(h, 0);
    while s.poll_transmit().is_some() {}
    let hello = Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        node: p,
        name: "p".into(),
        claims: Claim::Body(
            crate::id::BodyCode::from_static("XZZ"),
            crate::id::BodyKind::Donor,
        ),
        key: None,
        recovery: None,
    });
    s.handle(h, hello, 1).unwrap();
    s.handle(
        h,
        Message::Summary {
            root: [9; 32],
            docs: 1,
        },
        2,
    )
    .unwrap();
    while s.poll_transmit().is_some() {}
    s.handle(
        h,
        Message::Offers {
            docs: vec![DocHeads {
                doc: doc.clone(),
                heads: vec![[0xEE; 32]],
            }],
        },
        3,
    )
    .unwrap();
    let asked: Vec<Message> = std::iter::from_fn(|| s.poll_transmit()).collect();
    assert!(
        asked
            .iter()
            .any(|m| matches!(m, Message::Sync(d) if d.doc == *doc)),
        "V asked P for the document it does not hold: {asked:?}"
    );
    // P never gives it; it just says it is idle.
    s.handle(h, Message::SyncIdle { doc: doc.clone() }, 4)
        .unwrap();
    while s.poll_transmit().is_some() {}
    s
}

/// The full content of a document leaked to a peer that may not read it. P (a pinned donor in
/// no share list) lists `state/XBB` to V before V holds it, so V asks P for it. P answers
/// nothing useful. Later V receives XBB's document from XBB's own node (shared with V only). P
/// then sent an empty `Sync` about it, and V, taking it as the answer to its ask, replied with
/// every change of the document. An ask now counts only while no copy is held: V answers
/// `SyncIdle` and names nothing of the document.
#[test]
fn redteam_stale_asked_leaks_an_unreadable_document() {
    let (mut v, p, doc) = victim_with(false);
    let mut s = session_after_listing(&mut v, p, &doc);

    // Later: V receives XBB's published document from XBB's node (its share list names V only).
    let (full, _, _) = victim_with(true);
    let changes: Vec<SignedChange> = full.ledgers[&doc]
        .signed_changes()
        .map(|(_, c)| c)
        .collect();
    v.admit(&doc, &changes);
    assert!(v.ledgers.contains_key(&doc));
    assert!(!v.can_read(&p, &doc), "P may not read XBB's document");

    // P asks, as a node holding nothing would.
    s.handle(
        &mut v,
        Message::Sync(crate::wire::DocSync {
            doc: doc.clone(),
            heads: vec![],
            shared: vec![],
            have: crate::wire::Bloom::default(),
            need: vec![],
            changes: vec![],
            answer: false,
        }),
        10,
    )
    .unwrap();
    let out: Vec<Message> = std::iter::from_fn(|| s.poll_transmit()).collect();
    let leaked: Vec<&SignedChange> = out
        .iter()
        .filter_map(|m| match m {
            Message::Sync(d) if d.doc == doc => Some(d.changes.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        leaked.is_empty(),
        "changes of the document went to P: {out:?}"
    );
    assert!(
        out.iter()
            .all(|m| !m.docs().contains(&&doc) || matches!(m, Message::SyncIdle { .. })),
        "V said more than SyncIdle about the document: {out:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. A revoked key rewrites what its revocation said stands.
// ---------------------------------------------------------------------------------------------

/// N's key leaks; the State revokes N with a cut-off keeping N's three legitimate records. After
/// the revocation, N (the thief) still passes the admission screen (a delegation of N is in the
/// document), so it signed a twin of its own first change, or wrote with 9 actor ids: either
/// voided *everything* N ever wrote, the records the cut-off kept included. A cut-off now names
/// the last kept change of each actor, and what it keeps (that change and its past) stands
/// whatever else the node signs.
#[test]
fn redteam_revoked_key_voids_what_its_cutoff_kept() {
    let n = key(3);
    let (doc, base, a, h1) = state_doc_with(&[(&n, Scope::ALL)]);
    let s = state_key().node_id();
    let mut l = base.clone();
    let mut first = None;
    for i in 1..=3u32 {
        let c = l.next_change(
            &actor(&n, 0),
            T0 + i64::from(i),
            vec![put(
                &doc,
                "targets",
                &format!("T{i}/1"),
                target_json(&format!("T{i}"), 1, Area::Marking),
            )],
        );
        let h = admit_ok(&mut l, &signed(&doc, &n, c), &s);
        first.get_or_insert(h);
    }
    let cut = l.cutoff_for(&n.node_id());
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0].seq, 3);
    let rev = grant(GrantKind::Revocation, &n.node_id(), None, cut);
    let rc = l.next_change(&actor(&a, 0), T0 + 100, vec![grant_op(&doc, &rev)]);
    admit_ok(&mut l, &signed(&doc, &a, rc), &s);
    let before = StateData::from_json(&l.settle(Some(&s)).view);
    assert!(
        before.latest("T1").is_some() && before.latest("T3").is_some(),
        "the cut-off keeps N's three records"
    );

    // (a) a twin of N's first change, signed after the revocation.
    let mut la = l.clone();
    let twin = la.change_at(
        &[h1],
        &actor(&n, 0),
        T0 + 200,
        vec![put(&doc, "needs", "X", "{\"x\":1}".into())],
    );
    assert_eq!(twin.seq, 1);
    admit_void_or_refused(&mut la, &signed(&doc, &n, twin), Some(&s));
    let after = StateData::from_json(&la.settle(Some(&s)).view);
    assert!(
        after.latest("T1").is_some()
            && after.latest("T2").is_some()
            && after.latest("T3").is_some(),
        "a twin signed after the revocation voids nothing the cut-off kept"
    );
    assert!(after.needs.is_empty(), "and does not stand itself");

    // (b) nine fresh actors, after the revocation.
    let mut lb = l.clone();
    for i in 0..8u8 {
        let c = lb.change_at(
            &[h1],
            &actor(&n, 200 + i),
            T0 + 300,
            vec![put(&doc, "needs", &format!("Y{i}"), "{\"y\":1}".into())],
        );
        admit_void_or_refused(&mut lb, &signed(&doc, &n, c), Some(&s));
    }
    let after = StateData::from_json(&lb.settle(Some(&s)).view);
    assert!(
        after.latest("T1").is_some() && after.latest("T3").is_some(),
        "nine actors after the revocation void nothing the cut-off kept"
    );
    assert!(after.needs.is_empty());
    let _ = first;
}

// ---------------------------------------------------------------------------------------------
// 7. Narrowing a delegation does not narrow it.
// ---------------------------------------------------------------------------------------------

/// The State narrows ministry M from scope all to `marking` (a new delegation, issued later).
/// M tried to keep writing anything by building on a past that holds only its old, broader
/// delegation. Which delegation judges a change is now decided by the whole set: the latest
/// issued whose cut-off the change comes after.
#[test]
fn redteam_narrowed_delegation_is_ignored_by_choosing_deps() {
    let m = key(2);
    let (doc, mut l, a, h1) = state_doc_with(&[(&m, Scope::ALL)]);
    let s = state_key().node_id();
    let narrow = SignedGrant::sign(
        &state_key(),
        Grant {
            kind: GrantKind::Delegation,
            principal: Principal::State(xaa()),
            node: m.node_id(),
            scope: Some(Scope::Areas(vec![Area::Marking])),
            expires: None,
            issued: Date::from_unix_seconds(T0 + 86400 * 30),
            key: state_key().node_id(),
            cutoff: vec![],
            serial: 0,
            kept: Vec::new(),
            recovery: None,
        },
    );
    let c = l.next_change(
        &actor(&a, 0),
        T0 + 86400 * 30,
        vec![grant_op(&doc, &narrow)],
    );
    admit_ok(&mut l, &signed(&doc, &a, c), &s);

    let ops = || {
        vec![put(
            &doc,
            "targets",
            "T5/1",
            target_json("T5", 1, Area::Stockpile),
        )]
    };
    let mut honest = l.clone();
    let hc = honest.next_change(&actor(&m, 0), T0 + 86400 * 40, ops());
    let hh = admit_ok(&mut honest, &signed(&doc, &m, hc), &s);
    assert!(
        matches!(honest.verdict(&hh), Some(Verdict::Void(_))),
        "control: narrowed on the heads"
    );

    let _ = h1;
    assert_void_on_every_past(&l, &doc, &m, T0 + 86400 * 40, ops);
}

/// Even when M's delegation was placed *after* the target it attacks (so every past holding the
/// delegation also holds the target), M placed its own delegation again on the genesis (a node
/// may place grants about itself) and built on that. Void now, as on every other past.
#[test]
fn redteam_scope_bypass_with_a_self_placed_delegation() {
    let (doc, mut l, a, _h0) = state_doc_with(&[]);
    let s = state_key().node_id();
    let m = key(2);
    let c2 = l.next_change(
        &actor(&a, 0),
        T0 + 10,
        vec![put(
            &doc,
            "targets",
            "T1/1",
            target_json("T1", 1, Area::Stockpile),
        )],
    );
    admit_ok(&mut l, &signed(&doc, &a, c2), &s);
    let dm = grant(
        GrantKind::Delegation,
        &m.node_id(),
        Some(Scope::Areas(vec![Area::Marking])),
        vec![],
    );
    let c3 = l.next_change(&actor(&a, 0), T0 + 20, vec![grant_op(&doc, &dm)]);
    admit_ok(&mut l, &signed(&doc, &a, c3), &s);

    let g = l.genesis_hash().unwrap();
    let own = l.change_at(&[g], &actor(&m, 0), T0 + 30, vec![grant_op(&doc, &dm)]);
    let ho = admit_ok(&mut l, &signed(&doc, &m, own), &s);
    assert_eq!(l.verdict(&ho), Some(&Verdict::Stands));
    let attack = l.change_at(
        &[ho],
        &actor(&m, 0),
        T0 + 40,
        vec![
            put(&doc, "targets", "T1/2", target_json("T1", 2, Area::Marking)),
            put(&doc, "withdrawn", "T1", "\"2026-01-03\"".into()),
        ],
    );
    let ha = admit_ok(&mut l, &signed(&doc, &m, attack), &s);
    assert!(matches!(l.verdict(&ha), Some(Verdict::Void(_))));
    let data = StateData::from_json(&l.settle(Some(&s)).view);
    assert!(!data.withdrawn.contains_key("T1"));
    assert_eq!(data.latest("T1").unwrap().area, Area::Stockpile);
}

// ---------------------------------------------------------------------------------------------
// 8. Unbounded evidence: one revoked key makes every honest node hold and relay without limit.
// ---------------------------------------------------------------------------------------------

/// A revoked (or any once-delegated) key signs 32 twins at sequence 1, then 32 twins at sequence
/// 2 on one of them, and so on, each up to 1 MiB: every one was equivocation *evidence*, which
/// honest nodes exported and relayed to every peer. A revoked node's equivocations are not
/// evidence now (its cut-off decides), and for others only the smallest pair at the first
/// position is: the flood stays on the nodes it was sent to directly.
#[test]
fn redteam_revoked_key_floods_unbounded_relayed_evidence() {
    let n = key(3);
    let (doc, mut l, a, h1) = state_doc_with(&[(&n, Scope::ALL)]);
    let s = state_key().node_id();
    let rev = grant(
        GrantKind::Revocation,
        &n.node_id(),
        None,
        l.cutoff_for(&n.node_id()),
    );
    let rc = l.next_change(&actor(&a, 0), T0 + 100, vec![grant_op(&doc, &rev)]);
    admit_ok(&mut l, &signed(&doc, &a, rc), &s);

    let positions = 20u32;
    let mut on = h1;
    let mut all = Vec::new();
    for seq in 1..=positions {
        let mut next = None;
        for t in 0..32u32 {
            let c = l.change_at(
                &[on],
                &actor(&n, 9),
                T0 + 200,
                vec![put(
                    &doc,
                    "needs",
                    &format!("S{seq}-{t}"),
                    "{\"x\":1}".into(),
                )],
            );
            assert_eq!(c.seq, u64::from(seq));
            let c = signed(&doc, &n, c);
            if let Some(h) = admit_void_or_refused(&mut l, &c, Some(&s)) {
                next.get_or_insert(h);
                all.push(h);
            }
        }
        // Refused at admission (the revocation is held): nothing to build on, nothing held.
        let Some(n) = next else { break };
        on = n;
    }
    l.settle(Some(&s));
    let exported = all.iter().filter(|h| l.is_exported(h)).count();
    assert_eq!(exported, 0, "none of it is relayed by honest nodes");

    // And one such change can weigh a megabyte.
    let big: Vec<FlatOp> = (0..15)
        .map(|i| {
            put(
                &doc,
                "needs",
                &format!("BIG{i}"),
                format!("\"{}\"", "x".repeat(65_000)),
            )
        })
        .collect();
    let c = l.change_at(&[on], &actor(&n, 9), T0 + 300, big.clone());
    let c2 = l.change_at(&[on], &actor(&n, 9), T0 + 301, big);
    let (c, c2) = (signed(&doc, &n, c), signed(&doc, &n, c2));
    let bytes = c.data.to_bytes().len();
    assert!(bytes > 950_000, "{bytes}");
    for c in [&c, &c2] {
        if let Some(h) = admit_void_or_refused(&mut l, c, Some(&s)) {
            assert!(!l.is_exported(&h), "nor are megabyte twins");
        }
    }
}
