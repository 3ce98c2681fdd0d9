//! Tests of the gate: admission, standing, the view, and the property that every node holding
//! the same changes shows the same document, whatever order they arrived in.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::authority::{Cutoff, Grant, Trust};
use crate::pool::{Charter, PoolData};
use crate::sign::{NodeKey, sign_change};

const T0: i64 = 1_767_225_600; // 2026-01-01

fn xaa() -> StateCode {
    "XAA".parse().unwrap()
}

fn state_key() -> NodeKey {
    NodeKey::from_seed(&[40; 32])
}

fn key() -> NodeId {
    state_key().node_id()
}

fn node(seed: u8) -> NodeKey {
    NodeKey::from_seed(&[seed; 32])
}

fn actor(k: &NodeKey, suffix: u8) -> Vec<u8> {
    actor_bytes(&k.node_id(), &[suffix; 8])
}

fn op(doc: &DocId, container: &str, key: &str, value: &Json) -> FlatOp {
    FlatOp {
        container: doc.kind().container(container).unwrap(),
        key: key.into(),
        action: FlatAction::Put {
            value: value.to_string(),
            preds: vec![],
        },
    }
}

fn op_text(doc: &DocId, container: &str, key: &str, text: &str) -> FlatOp {
    FlatOp {
        container: doc.kind().container(container).unwrap(),
        key: key.into(),
        action: FlatAction::Put {
            value: text.into(),
            preds: vec![],
        },
    }
}

fn sign(doc: &DocId, k: &NodeKey, data: ChangeData) -> SignedChange {
    let h = data.to_automerge(doc).unwrap().hash();
    SignedChange {
        data,
        signature: sign_change(k, doc, &h).to_vec(),
    }
}

fn grant(kind: GrantKind, n: &NodeKey, scope: Option<Scope>, cutoff: Vec<Cutoff>) -> SignedGrant {
    SignedGrant::sign(
        &state_key(),
        Grant {
            kind,
            principal: Principal::State(xaa()),
            node: n.node_id(),
            scope,
            expires: None,
            issued: "2026-01-01".parse().unwrap(),
            key: key(),
            cutoff,
            serial: 0,
            kept: Vec::new(),
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

fn target(id: &str, version: u32, area: &str) -> Json {
    let mut t = crate::model::tests::xaa_t1();
    t.id = id.into();
    t.version = version;
    t.area = area.parse().unwrap();
    serde_json::to_value(&t).unwrap()
}

fn published() -> DocId {
    DocId::State(xaa())
}

/// Makes `k`'s next change on `l` and admits it; the hash and its verdict.
fn write(l: &mut Ledger, k: &NodeKey, suffix: u8, ops: Vec<FlatOp>) -> (ChangeHash, Verdict) {
    l.settle(Some(&key()));
    let data = l.next_change(&actor(k, suffix), T0, ops);
    let sc = sign(l.doc(), k, data);
    match l.admit(&sc, Some(&key())) {
        Admitted::New(h) => {
            l.settle(Some(&key()));
            (h, l.verdict(&h).cloned().unwrap())
        }
        other => panic!("{other:?}"),
    }
}

/// A State document in which the first node (seed 1) delegated itself and `others` with the
/// given scopes.
fn delegated(others: &[(&NodeKey, Scope)]) -> Ledger {
    let doc = published();
    let mut l = Ledger::new(&doc);
    let first = node(1);
    let own = grant(GrantKind::Delegation, &first, Some(Scope::ALL), vec![]);
    let (_, v) = write(&mut l, &first, 1, vec![grant_op(&doc, &own)]);
    assert_eq!(v, Verdict::Stands);
    let ops: Vec<FlatOp> = others
        .iter()
        .map(|(k, s)| {
            grant_op(
                &doc,
                &grant(GrantKind::Delegation, k, Some(s.clone()), vec![]),
            )
        })
        .collect();
    if !ops.is_empty() {
        let (_, v) = write(&mut l, &first, 1, ops);
        assert_eq!(v, Verdict::Stands);
    }
    l
}

fn view_targets(l: &mut Ledger) -> Vec<String> {
    let v = &l.settle(Some(&key())).view;
    v["targets"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn void_reason(v: &Verdict) -> String {
    match v {
        Verdict::Void(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

#[test]
fn a_record_is_written_once_and_read_back() {
    let doc = published();
    let mut l = delegated(&[]);
    let first = node(1);
    let (_, v) = write(
        &mut l,
        &first,
        1,
        vec![op(&doc, "targets", "T1/1", &target("T1", 1, "marking"))],
    );
    assert_eq!(v, Verdict::Stands);
    let data = crate::doc::StateData::from_json(&l.settle(Some(&key())).view);
    assert_eq!(data.latest("T1").map(|t| t.area), Some(Area::Marking));
    assert!(data.unreadable.is_empty(), "{:?}", data.unreadable);
    // Writing the key again, even with the same record, is an edit in place: void.
    let (_, v) = write(
        &mut l,
        &first,
        1,
        vec![op(&doc, "targets", "T1/1", &target("T1", 1, "marking"))],
    );
    assert!(void_reason(&v).contains("never edited in place"), "{v:?}");
}

#[test]
fn c2_malformed_changes_are_refused_before_anything_parses_them() {
    let doc = published();
    let mut l = delegated(&[]);
    let first = node(1);
    l.settle(Some(&key()));
    let good = l.next_change(
        &actor(&first, 1),
        T0,
        vec![op(&doc, "targets", "T1/1", &target("T1", 1, "marking"))],
    );
    let cases: Vec<(ChangeData, &str)> = vec![
        (
            ChangeData {
                start_op: u32::MAX as u64,
                ..good.clone()
            },
            "first operation counter",
        ),
        (
            ChangeData {
                start_op: good.start_op + 5,
                ..good.clone()
            },
            "starts at operation",
        ),
        (
            ChangeData {
                seq: good.seq + 3,
                ..good.clone()
            },
            "sequence number",
        ),
        (
            ChangeData {
                ops: vec![],
                ..good.clone()
            },
            "no operations",
        ),
        (
            ChangeData {
                deps: vec![],
                ..good.clone()
            },
            "no dependency",
        ),
    ];
    for (data, why) in cases {
        let sc = sign(&doc, &first, data);
        match l.admit(&sc, Some(&key())) {
            Admitted::Refused(_, r) => {
                assert!(r.to_string().contains(why), "{r} does not say {why}");
                assert!(r.is_permanent());
            }
            other => panic!("{why}: {other:?}"),
        }
    }
    // A signature by another key than the actor names.
    let forged = SignedChange {
        signature: sign(&doc, &node(9), good.clone()).signature,
        data: good,
    };
    assert!(matches!(
        l.admit(&forged, Some(&key())),
        Admitted::Refused(_, Rejection::BadSignature { .. })
    ));
}

/// M3: a change carries its operations explicitly, so its cost is its size, and the count is
/// bounded before any operation is looked at.
#[test]
fn m3_a_change_with_more_operations_than_allowed_is_refused_before_it_is_judged() {
    let doc = published();
    let mut l = delegated(&[]);
    let first = node(1);
    l.settle(Some(&key()));
    let ops: Vec<FlatOp> = (0..50_000)
        .map(|i| op(&doc, "readers", &format!("r{i}"), &json!(true)))
        .collect();
    let data = l.next_change(&actor(&first, 1), T0, ops);
    let started = std::time::Instant::now();
    match l.admit(&sign_unchecked(&doc, &first, &data), Some(&key())) {
        Admitted::Refused(_, Rejection::Malformed(Malformed::TooMany("operations", 50_000, _))) => {
        }
        other => panic!("{other:?}"),
    }
    // Refused on its count, not after decoding 50,000 operations into the document.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// A signature over a hash computed by hand, for changes too large to encode normally.
fn sign_unchecked(doc: &DocId, k: &NodeKey, data: &ChangeData) -> SignedChange {
    let h = data
        .to_automerge(doc)
        .map(|c| c.hash())
        .unwrap_or(ChangeHash([0; 32]));
    SignedChange {
        data: data.clone(),
        signature: sign_change(k, doc, &h).to_vec(),
    }
}

#[test]
fn a_stranger_cannot_make_a_node_store_its_changes() {
    let doc = published();
    let mut l = delegated(&[]);
    let stranger = node(7);
    l.settle(Some(&key()));
    let data = l.next_change(
        &actor(&stranger, 1),
        T0,
        vec![op(&doc, "readers", "*", &json!(true))],
    );
    let r = l.admit(&sign(&doc, &stranger, data), Some(&key()));
    assert!(
        matches!(r, Admitted::Refused(_, Rejection::NotAWriter { .. })),
        "{r:?}"
    );
    // Nor place grants, even genuine ones, about other nodes.
    let g = grant(GrantKind::Delegation, &node(8), Some(Scope::ALL), vec![]);
    let data = l.next_change(&actor(&stranger, 1), T0, vec![grant_op(&doc, &g)]);
    assert!(matches!(
        l.admit(&sign(&doc, &stranger, data), Some(&key())),
        Admitted::Refused(_, Rejection::NotAWriter { .. })
    ));
    // Without the State key trusted, nothing is judged at all.
    let data = l.next_change(
        &actor(&node(1), 1),
        T0,
        vec![op(&doc, "readers", "*", &json!(true))],
    );
    assert!(matches!(
        l.admit(&sign(&doc, &node(1), data), None),
        Admitted::Refused(_, Rejection::NoKey(_))
    ));
}

#[test]
fn l2_a_grant_is_stored_once_and_only_as_signed() {
    let doc = published();
    let mut l = delegated(&[]);
    let first = node(1);
    let g = grant(GrantKind::Delegation, &node(5), Some(Scope::ALL), vec![]);
    let (_, v) = write(&mut l, &first, 1, vec![grant_op(&doc, &g)]);
    assert_eq!(v, Verdict::Stands);
    let (_, v) = write(&mut l, &first, 1, vec![grant_op(&doc, &g)]);
    assert!(void_reason(&v).contains("stored twice"), "{v:?}");
    // A re-serialisation of a valid grant is not the grant.
    let mut loose = grant_op(
        &doc,
        &grant(GrantKind::Delegation, &node(6), Some(Scope::ALL), vec![]),
    );
    if let FlatAction::Put { value, .. } = &mut loose.action {
        let v: Json = serde_json::from_str(value).unwrap();
        *value = serde_json::to_string_pretty(&v).unwrap();
    }
    let (_, v) = write(&mut l, &first, 1, vec![loose]);
    assert!(void_reason(&v).contains("canonical"), "{v:?}");
}

#[test]
fn h1_a_scoped_ministry_writes_only_its_areas_judged_before_and_after() {
    let doc = published();
    let marking = node(3);
    let mut l = delegated(&[(&marking, Scope::Areas(vec![Area::Marking]))]);
    let delegation = l.settle(Some(&key())).heads.clone();
    let first = node(1);
    let (_, v) = write(
        &mut l,
        &marking,
        3,
        vec![op(&doc, "targets", "T1/1", &target("T1", 1, "marking"))],
    );
    assert_eq!(v, Verdict::Stands);
    let (_, v) = write(
        &mut l,
        &marking,
        3,
        vec![op(&doc, "targets", "T9/1", &target("T9", 1, "stockpile"))],
    );
    assert!(void_reason(&v).contains("stockpile"), "{v:?}");
    // Another ministry's stockpile target cannot be superseded into a marking one...
    let (_, v) = write(
        &mut l,
        &first,
        1,
        vec![op(&doc, "targets", "T5/1", &target("T5", 1, "stockpile"))],
    );
    assert_eq!(v, Verdict::Stands);
    let (_, v) = write(
        &mut l,
        &marking,
        3,
        vec![op(&doc, "targets", "T5/2", &target("T5", 2, "marking"))],
    );
    assert!(void_reason(&v).contains("stockpile"), "{v:?}");
    // ...nor withdrawn, nor reported on, nor shared.
    let (_, v) = write(
        &mut l,
        &marking,
        3,
        vec![op(&doc, "withdrawn", "T5", &json!("2026-01-02"))],
    );
    assert!(void_reason(&v).contains("stockpile"), "{v:?}");
    let (_, v) = write(
        &mut l,
        &marking,
        3,
        vec![op(&doc, "readers", "*", &json!(true))],
    );
    assert!(void_reason(&v).contains("needs scope all"), "{v:?}");
    // Building on the genesis to create T5/1 again, in its own area, does not replace the
    // stockpile record: the two are disputed and neither shows.
    l.settle(Some(&key()));
    let data = l.change_at(
        &delegation,
        &actor(&marking, 4),
        T0,
        vec![op(&doc, "targets", "T5/1", &target("T5", 1, "marking"))],
    );
    let _ = l.admit(&sign(&doc, &marking, data), Some(&key()));
    let shown = view_targets(&mut l);
    assert!(!shown.contains(&"T5/1".to_string()), "{shown:?}");
    assert!(
        l.settle(Some(&key()))
            .disputed
            .iter()
            .any(|d| d.path == "targets/T5/1")
    );
}

#[test]
fn h2_a_revoked_node_cannot_backdate_and_its_late_changes_are_void_in_any_order() {
    let doc = published();
    let ministry = node(2);
    let mut base = delegated(&[(&ministry, Scope::ALL)]);
    let first = node(1);
    // The ministry writes T1; the State revokes it with the cut-off after T1; then, from a state
    // before the revocation and with an old timestamp, the ministry writes T2.
    let (t1, _) = write(
        &mut base,
        &ministry,
        2,
        vec![op(&doc, "targets", "T1/1", &target("T1", 1, "marking"))],
    );
    let before_revocation = base.settle(Some(&key())).heads.clone();
    let cut = base.cutoff_for(&ministry.node_id());
    let rev = grant(GrantKind::Revocation, &ministry, None, cut);
    let (r, v) = write(&mut base, &first, 1, vec![grant_op(&doc, &rev)]);
    assert_eq!(v, Verdict::Stands);
    let late = base.change_at(
        &before_revocation,
        &actor(&ministry, 2),
        T0 - 86_400,
        vec![op(&doc, "targets", "T2/1", &target("T2", 1, "marking"))],
    );
    let late = sign(&doc, &ministry, late);
    let all: Vec<SignedChange> = base
        .signed_changes()
        .map(|(_, c)| c)
        .chain([late.clone()])
        .collect();
    for order in [
        vec![0, 1, 2, 3, 4],
        vec![4, 3, 2, 1, 0],
        vec![0, 1, 4, 2, 3],
    ] {
        let mut l = Ledger::new(&doc);
        let mut pending: Vec<SignedChange> = order.iter().map(|i| all[*i].clone()).collect();
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|c| matches!(l.admit(c, Some(&key())), Admitted::Waiting(..)));
            assert!(pending.len() < before, "stuck");
        }
        l.settle(Some(&key()));
        assert_eq!(l.verdict(&t1), Some(&Verdict::Stands));
        assert_eq!(l.verdict(&r), Some(&Verdict::Stands));
        let late_hash = late.data.to_automerge(&doc).unwrap().hash();
        // Void if it came before the revocation; refused (not held) once the revocation is.
        if let Some(v) = l.verdict(&late_hash) {
            assert!(void_reason(v).contains("revoked"));
        }
        assert_eq!(view_targets(&mut l), vec!["T1/1".to_string()]);
    }
}

#[test]
fn m4_an_equivocation_voids_both_changes_everywhere_and_honest_work_on_either_stands() {
    let doc = published();
    let e = node(4);
    let first = node(1);
    let mut base = delegated(&[(&e, Scope::ALL)]);
    base.settle(Some(&key()));
    let heads = base.settled().unwrap().heads.clone();
    let a = sign(
        &doc,
        &e,
        base.change_at(
            &heads,
            &actor(&e, 4),
            T0,
            vec![op(&doc, "targets", "E1/1", &target("E1", 1, "marking"))],
        ),
    );
    let b = sign(
        &doc,
        &e,
        base.change_at(
            &heads,
            &actor(&e, 4),
            T0,
            vec![op(&doc, "targets", "E2/1", &target("E2", 1, "marking"))],
        ),
    );
    // Two nodes each get one twin, and the first node builds on what it has.
    let mut left = base.clone();
    assert!(matches!(left.admit(&a, Some(&key())), Admitted::New(_)));
    let (h1, _) = write(
        &mut left,
        &first,
        1,
        vec![op(&doc, "targets", "H1/1", &target("H1", 1, "marking"))],
    );
    let mut right = base.clone();
    assert!(matches!(right.admit(&b, Some(&key())), Admitted::New(_)));
    // They exchange everything: both twins void, the honest change stands, on both.
    let from_left: Vec<SignedChange> = left.signed_changes().map(|(_, c)| c).collect();
    let from_right: Vec<SignedChange> = right.signed_changes().map(|(_, c)| c).collect();
    for c in from_right {
        let _ = left.admit(&c, Some(&key()));
    }
    let mut right2 = right.clone();
    for c in from_left {
        let _ = right2.admit(&c, Some(&key()));
    }
    for l in [&mut left, &mut right2] {
        let s = l.settle(Some(&key())).clone();
        assert!(s.flagged.iter().any(|(n, _)| *n == e.node_id()));
        assert_eq!(l.verdict(&h1), Some(&Verdict::Stands));
        let shown = view_targets(l);
        assert_eq!(shown, vec!["H1/1".to_string()]);
        // Both twins are offered, so every node learns of the equivocation.
        for t in [&a, &b] {
            assert!(l.is_exported(&t.data.to_automerge(&doc).unwrap().hash()));
        }
    }
    assert_eq!(
        left.settle(Some(&key())).view,
        right2.settle(Some(&key())).view
    );
    assert_eq!(
        left.settle(Some(&key())).heads,
        right2.settle(Some(&key())).heads
    );
}

#[test]
fn m6_a_delete_of_what_is_not_there_is_refused() {
    let doc = published();
    let mut l = delegated(&[]);
    let first = node(1);
    l.settle(Some(&key()));
    let mut bad = op(&doc, "readers", "*", &json!(true));
    bad.action = FlatAction::Delete {
        preds: vec![OpRef {
            counter: 3,
            actor: actor(&first, 1),
        }],
    };
    let data = l.next_change(&actor(&first, 1), T0, vec![bad]);
    assert!(matches!(
        l.admit(&sign(&doc, &first, data), Some(&key())),
        Admitted::Refused(_, Rejection::BadPred { .. })
    ));
}

#[test]
fn an_expired_delegation_writes_nothing_dated_after_it() {
    let doc = published();
    let mut l = delegated(&[]);
    let first = node(1);
    let m = node(6);
    let mut g = grant(GrantKind::Delegation, &m, Some(Scope::ALL), vec![]);
    g.grant.expires = Some("2025-12-31".parse().unwrap());
    let g = SignedGrant::sign(&state_key(), g.grant);
    write(&mut l, &first, 1, vec![grant_op(&doc, &g)]);
    let (_, v) = write(
        &mut l,
        &m,
        6,
        vec![op(&doc, "targets", "T1/1", &target("T1", 1, "marking"))],
    );
    assert!(void_reason(&v).contains("expired"), "{v:?}");
}

#[test]
fn a_node_never_equivocates_itself_after_its_change_is_voided() {
    let doc = published();
    let m = node(3);
    let mut l = delegated(&[(&m, Scope::Areas(vec![Area::Marking]))]);
    // A void change is not offered, but the next change of its actor still builds on it.
    let (bad, v) = write(&mut l, &m, 3, vec![op(&doc, "readers", "*", &json!(true))]);
    assert!(matches!(v, Verdict::Void(_)));
    assert!(!l.is_exported(&bad));
    let (good, v) = write(
        &mut l,
        &m,
        3,
        vec![op(&doc, "targets", "T1/1", &target("T1", 1, "marking"))],
    );
    assert_eq!(v, Verdict::Stands);
    assert!(l.deps(&good).contains(&bad));
    assert!(l.settle(Some(&key())).flagged.is_empty());
}

#[test]
fn view_at_heads_is_the_document_as_it_stood_then() {
    let doc = published();
    let m = node(2);
    let mut l = delegated(&[(&m, Scope::ALL)]);
    let first = node(1);
    write(
        &mut l,
        &m,
        2,
        vec![op(&doc, "targets", "T1/1", &target("T1", 1, "marking"))],
    );
    let then = l.settle(Some(&key())).clone();
    let rev = grant(GrantKind::Revocation, &m, None, vec![]);
    write(&mut l, &first, 1, vec![grant_op(&doc, &rev)]);
    assert!(
        view_targets(&mut l).is_empty(),
        "a cut-off naming nothing voids everything"
    );
    let at = l.view_at(&then.heads, Some(&key())).unwrap();
    assert_eq!(at.view, then.view);
    assert_eq!(at.heads, then.heads);
}

fn pool_fixture() -> (DocId, Ledger, NodeKey) {
    let coordinator = node(10);
    let id = DocId::Pool(PoolId::new("xanadu", &coordinator.node_id()));
    (id.clone(), Ledger::new(&id), coordinator)
}

pub(crate) fn pool_write(
    l: &mut Ledger,
    k: &NodeKey,
    suffix: u8,
    ops: Vec<FlatOp>,
) -> Result<Verdict, Rejection> {
    l.settle(None);
    let data = l.next_change(&actor(k, suffix), T0, ops);
    let sc = sign(l.doc(), k, data);
    match l.admit(&sc, None) {
        Admitted::New(h) => {
            l.settle(None);
            Ok(l.verdict(&h).cloned().unwrap())
        }
        Admitted::Refused(_, r) => Err(r),
        other => panic!("{other:?}"),
    }
}

#[test]
fn c1_nobody_but_its_creator_coordinates_a_pool() {
    let (doc, mut l, coordinator) = pool_fixture();
    let squatter = node(11);
    let charter = |n: &NodeKey| {
        serde_json::to_value(Charter {
            name: "Xanadu".into(),
            node: n.node_id(),
            framework: None,
            coordinator: "XRB".into(),
            created: "2026-01-01".parse().unwrap(),
        })
        .unwrap()
    };
    // A squatter writing first, even claiming to be the coordinator, is refused outright.
    let r = pool_write(
        &mut l,
        &squatter,
        1,
        vec![op(&doc, "charter", "charter", &charter(&squatter))],
    );
    assert!(matches!(r, Err(Rejection::NotAWriter { .. })), "{r:?}");
    let r = pool_write(
        &mut l,
        &squatter,
        1,
        vec![op(
            &doc,
            "observers",
            &squatter.node_id().to_string(),
            &json!({"name": "me", "added": "2026-01-01"}),
        )],
    );
    assert!(matches!(r, Err(Rejection::NotAWriter { .. })), "{r:?}");
    // The creator writes the charter naming itself, and nobody else's name will do.
    let v = pool_write(
        &mut l,
        &coordinator,
        1,
        vec![op(&doc, "charter", "charter", &charter(&squatter))],
    )
    .unwrap();
    assert!(void_reason(&v).contains("names its coordinator"), "{v:?}");
    let v = pool_write(
        &mut l,
        &coordinator,
        1,
        vec![op(&doc, "charter", "charter", &charter(&coordinator))],
    )
    .unwrap();
    assert_eq!(v, Verdict::Stands);
    let data = PoolData::from_json(
        &l.settle(None).view,
        match &doc {
            DocId::Pool(p) => p,
            _ => unreachable!(),
        },
        &Trust::default(),
    );
    assert_eq!(
        data.owner.iter().collect::<Vec<_>>(),
        vec![&coordinator.node_id()]
    );
}

#[test]
fn m5_a_member_joins_only_for_itself_and_counts_only_under_the_trusted_state_key() {
    let (doc, mut l, coordinator) = pool_fixture();
    let pool_id = match &doc {
        DocId::Pool(p) => p.clone(),
        _ => unreachable!(),
    };
    let xab: StateCode = "XAB".parse().unwrap();
    let real_key = node(13);
    let fake_key = node(14);
    let xab_node = node(15);
    let invite = |k: &NodeKey| json!({"state": "XAB", "state_key": k.node_id().to_string(), "invited": "2026-01-01"});
    let proof = |k: &NodeKey, n: &NodeKey| {
        SignedGrant::sign(
            k,
            Grant {
                kind: GrantKind::Delegation,
                principal: Principal::State(xab),
                node: n.node_id(),
                scope: Some(Scope::ALL),
                expires: None,
                issued: "2026-01-01".parse().unwrap(),
                key: k.node_id(),
                cutoff: vec![],
                serial: 0,
                kept: Vec::new(),
                recovery: None,
            },
        )
    };
    // The coordinator invites XAB naming a key it made up, and cannot enrol XAB's node itself.
    let v = pool_write(
        &mut l,
        &coordinator,
        1,
        vec![op(&doc, "invites", "XAB", &invite(&fake_key))],
    )
    .unwrap();
    assert_eq!(v, Verdict::Stands);
    let key = format!("XAB/{}", xab_node.node_id());
    let forced = proof(&fake_key, &xab_node).to_text();
    let v = pool_write(
        &mut l,
        &coordinator,
        1,
        vec![op_text(&doc, "members", &key, &forced)],
    )
    .unwrap();
    assert!(void_reason(&v).contains("only for itself"), "{v:?}");
    // A node it controls joins "as XAB" under the made-up key: it stands in the pool document,
    // but no node that trusts XAB's real key counts it, and no node that knows no key for XAB.
    let puppet = node(16);
    let pkey = format!("XAB/{}", puppet.node_id());
    let p = proof(&fake_key, &puppet).to_text();
    let v = pool_write(
        &mut l,
        &puppet,
        1,
        vec![op_text(&doc, "members", &pkey, &p)],
    )
    .unwrap();
    assert_eq!(v, Verdict::Stands);
    let view = l.settle(None).view.clone();
    for trust in [
        Trust::default(),
        Trust::default().with(Principal::State(xab), real_key.node_id()),
    ] {
        let data = PoolData::from_json(&view, &pool_id, &trust);
        assert!(!data.is_member(xab));
        assert!(data.unverified.contains_key(&xab));
        assert!(!data.audience().contains(&puppet.node_id()));
    }
    // Only with the fake key trusted would it count: trust comes from the operator alone.
    let fooled = PoolData::from_json(
        &view,
        &pool_id,
        &Trust::default().with(Principal::State(xab), fake_key.node_id()),
    );
    assert!(fooled.is_member(xab));
}

/// One step of a writer in the property test.
#[derive(Clone, Debug)]
enum Step {
    /// Writer `w` writes a target of area `a` on its replica.
    Write(usize, bool),
    /// Writer `w` takes everything writer `from` has.
    Merge(usize, usize),
    /// Writer `w` writes on the delegations only, as if it had seen nothing since.
    Backdate(usize),
    /// The equivocator signs two changes at one position.
    Equivocate,
    /// The State revokes the revoked writer, with a cut-off at what the first node has seen.
    Revoke,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            4 => (0usize..5, any::<bool>()).prop_map(|(w, a)| Step::Write(w, a)),
            3 => (0usize..5, 0usize..5).prop_map(|(a, b)| Step::Merge(a, b)),
            1 => (0usize..5).prop_map(Step::Backdate),
            1 => Just(Step::Equivocate),
            1 => Just(Step::Revoke),
        ],
        1..28,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random honest and hostile changes (out of scope, backdated by a revoked node,
    /// equivocations, late revocations), delivered in random orders and batches to three
    /// ledgers: the same verdicts, views and heads, and nothing hostile shown.
    #[test]
    fn every_node_reaches_the_same_verdicts(
        steps in steps(),
        orders in proptest::collection::vec(any::<u64>(), 3),
    ) {
        let doc = published();
        // 0 first (all), 1 honest (all), 2 scoped (marking), 3 revoked later (all), 4 equivocator.
        let keys = [node(1), node(2), node(3), node(4), node(5)];
        let base = delegated(&[
            (&keys[1], Scope::ALL),
            (&keys[2], Scope::Areas(vec![Area::Marking])),
            (&keys[3], Scope::ALL),
            (&keys[4], Scope::ALL),
        ]);
        let mut replicas: Vec<Ledger> = (0..5).map(|_| base.clone()).collect();
        let mut universe: Vec<SignedChange> = base.signed_changes().map(|(_, c)| c).collect();
        let mut revoked_at: Option<Vec<Cutoff>> = None;
        for (n, step) in steps.iter().enumerate() {
            match *step {
                Step::Write(w, stockpile) => {
                    let area = if stockpile { "stockpile" } else { "marking" };
                    let k = &keys[w];
                    let r = &mut replicas[w];
                    r.settle(Some(&key()));
                    let data = r.next_change(&actor(k, w as u8), T0, vec![op(&doc, "targets", &format!("T{n}/1"), &target(&format!("T{n}"), 1, area))]);
                    let sc = sign(&doc, k, data);
                    let _ = r.admit(&sc, Some(&key()));
                    universe.push(sc);
                }
                Step::Merge(to, from) if to != from => {
                    let theirs: Vec<SignedChange> = replicas[from].signed_changes().map(|(_, c)| c).collect();
                    for c in theirs {
                        let _ = replicas[to].admit(&c, Some(&key()));
                    }
                }
                Step::Merge(..) => {}
                Step::Backdate(w) => {
                    let k = &keys[w];
                    let r = &replicas[w];
                    let old = base.clone().settle(Some(&key())).heads.clone();
                    let mut deps = old;
                    // Keep its own chain so the change is well formed.
                    let mine: Vec<ChangeHash> = r.signed_changes().filter(|(_, c)| c.data.actor == actor(k, w as u8)).map(|(h, _)| h).collect();
                    deps.extend(mine.last().copied());
                    let data = r.change_at(&deps, &actor(k, w as u8), T0 - 1, vec![op(&doc, "targets", &format!("B{n}/1"), &target(&format!("B{n}"), 1, "marking"))]);
                    universe.push(sign(&doc, k, data));
                }
                Step::Equivocate => {
                    let k = &keys[4];
                    let r = &mut replicas[4];
                    r.settle(Some(&key()));
                    for t in ["X", "Y"] {
                        let data = r.next_change(&actor(k, 4), T0, vec![op(&doc, "targets", &format!("{t}{n}/1"), &target(&format!("{t}{n}"), 1, "marking"))]);
                        universe.push(sign(&doc, k, data));
                    }
                }
                Step::Revoke if revoked_at.is_none() => {
                    let cut = replicas[0].cutoff_for(&keys[3].node_id());
                    let g = grant(GrantKind::Revocation, &keys[3], None, cut.clone());
                    let r = &mut replicas[0];
                    r.settle(Some(&key()));
                    let data = r.next_change(&actor(&keys[0], 0), T0, vec![grant_op(&doc, &g)]);
                    let sc = sign(&doc, &keys[0], data);
                    let _ = r.admit(&sc, Some(&key()));
                    universe.push(sc);
                    revoked_at = Some(cut);
                }
                Step::Revoke => {}
            }
        }
        let mut results = Vec::new();
        for seed in orders {
            let mut order: Vec<usize> = (0..universe.len()).collect();
            let mut s = seed | 1;
            for i in (1..order.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                order.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let mut l = Ledger::new(&doc);
            let mut pending: Vec<SignedChange> = Vec::new();
            for chunk in order.chunks(((seed % 4) + 1) as usize) {
                pending.extend(chunk.iter().map(|i| universe[*i].clone()));
                loop {
                    let before = pending.len();
                    pending.retain(|c| matches!(l.admit(c, Some(&key())), Admitted::Waiting(..)));
                    if pending.len() == before { break; }
                }
                // Settling between batches must not change the final verdicts.
                l.settle(Some(&key()));
            }
            prop_assert!(pending.is_empty(), "changes left waiting");
            let settled = l.settle(Some(&key())).clone();
            // A revoked node's change its held revocation cannot keep is refused at admission,
            // so whether a node holds it (void) depends on whether the revocation came first:
            // held void and not held are the same verdict.
            let mut verdicts: Vec<(ChangeHash, String)> = l
                .audit_rows()
                .into_iter()
                .filter(|(_, _, v)| !matches!(v, Verdict::Void(Denied::Revoked(_))))
                .map(|(h, _, v)| (h, format!("{v:?}")))
                .collect();
            verdicts.sort();
            // Nothing out of scope, by the revoked node past its cut-off, or equivocated stands.
            let by_hash: HashMap<ChangeHash, &SignedChange> = universe
                .iter()
                .map(|c| (c.data.to_automerge(&doc).unwrap().hash(), c))
                .collect();
            for (h, author, v) in l.audit_rows() {
                let (Author::Node(a), Verdict::Stands) = (author, &v) else { continue };
                let Some(c) = by_hash.get(&h) else { continue };
                if a == keys[2].node_id() {
                    for o in &c.data.ops {
                        let area = o.value().and_then(area_of_value);
                        prop_assert!(area.is_none_or(|x| x == Area::Marking), "out of scope stands");
                    }
                }
                if a == keys[3].node_id()
                    && let Some(cut) = &revoked_at
                {
                    let hexa = hex(&c.data.actor);
                    let last = cut.iter().find(|x| x.actor == hexa).map_or(0, |x| x.seq);
                    prop_assert!(c.data.seq <= last, "a change past the cut-off stands");
                }
                if a == keys[4].node_id() {
                    let twin = c.data.ops.iter().any(|o| o.key.starts_with('X') || o.key.starts_with('Y'));
                    prop_assert!(!twin, "an equivocated change stands");
                }
            }
            results.push((settled.view.clone(), settled.heads.clone(), verdicts));
        }
        prop_assert_eq!(&results[0], &results[1]);
        prop_assert_eq!(&results[1], &results[2]);
    }
}

/// A ministry's delegation is narrowed (from all to marking) on the day it was issued, with
/// the cut-off of what it wrote so far. What it wrote before stands; what it writes after is
/// judged under the narrower scope, on whatever past it builds, in any arrival order.
#[test]
fn a_replaced_delegation_judges_what_came_after_its_cutoff_and_keeps_what_came_before() {
    let doc = published();
    let ministry = node(2);
    let mut l = delegated(&[(&ministry, Scope::ALL)]);
    let first = node(1);
    let early = l.settle(Some(&key())).heads.clone();
    let (t1, v) = write(
        &mut l,
        &ministry,
        2,
        vec![op(&doc, "targets", "T1/1", &target("T1", 1, "stockpile"))],
    );
    assert_eq!(v, Verdict::Stands);
    let mut narrow = grant(
        GrantKind::Delegation,
        &ministry,
        Some(Scope::Areas(vec![Area::Marking])),
        l.cutoff_for(&ministry.node_id()),
    );
    narrow.grant.serial = 1;
    let narrow = SignedGrant::sign(&state_key(), narrow.grant);
    let (_, v) = write(&mut l, &first, 1, vec![grant_op(&doc, &narrow)]);
    assert_eq!(v, Verdict::Stands);
    // After the narrowing: a stockpile target is out of scope, even built on the past before
    // the narrowing (or before its first target); a marking one stands.
    // (A fresh actor id on the old past: the same one would equivocate.)
    for (past, suffix) in [
        (l.settle(Some(&key())).heads.clone(), 2),
        (early.clone(), 3),
    ] {
        let mut m = l.clone();
        m.settle(Some(&key()));
        let c = m.change_at(
            &past,
            &actor(&ministry, suffix),
            T0,
            vec![op(&doc, "targets", "T2/1", &target("T2", 1, "stockpile"))],
        );
        let h = match m.admit(&sign(&doc, &ministry, c), Some(&key())) {
            Admitted::New(h) => h,
            other => panic!("{other:?}"),
        };
        m.settle(Some(&key()));
        assert!(void_reason(m.verdict(&h).unwrap()).contains("stockpile"));
        assert_eq!(m.verdict(&t1), Some(&Verdict::Stands));
    }
    let (_, v) = write(
        &mut l,
        &ministry,
        2,
        vec![op(&doc, "targets", "T3/1", &target("T3", 1, "marking"))],
    );
    assert_eq!(v, Verdict::Stands);
    // Any arrival order: the same verdicts.
    let all: Vec<SignedChange> = l.signed_changes().map(|(_, c)| c).collect();
    let want = {
        l.settle(Some(&key()));
        l.audit_rows()
    };
    let mut rev = Ledger::new(&doc);
    let mut pending: Vec<SignedChange> = all.into_iter().rev().collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|c| matches!(rev.admit(c, Some(&key())), Admitted::Waiting(..)));
        assert!(pending.len() < before, "stuck");
    }
    rev.settle(Some(&key()));
    let mut got = rev.audit_rows();
    let mut want = want;
    got.sort_by_key(|r| r.0);
    want.sort_by_key(|r| r.0);
    assert_eq!(got, want);
}

/// Found by the simulator (seed 0xaa29bd2475f1d9c1): two ministries of one State, of different
/// areas, created the same target id while apart. A node holding both judged each out of scope
/// (the target was in two areas) and offered neither; a node holding one kept it standing: they
/// disagreed for good. A first version is judged on its own area, so the two are a dispute on
/// every node, and what decides a target's areas is offered.
#[test]
fn two_ministries_creating_one_target_id_apart_converge_on_a_dispute() {
    let doc = published();
    let transfers = node(3);
    let marking = node(4);
    let mut l = delegated(&[
        (&transfers, Scope::Areas(vec![Area::Transfers])),
        (&marking, Scope::Areas(vec![Area::Marking])),
    ]);
    let base = l.settle(Some(&key())).heads.clone();
    let a = l.change_at(
        &base,
        &actor(&transfers, 3),
        T0,
        vec![op(&doc, "targets", "T12/1", &target("T12", 1, "transfers"))],
    );
    let b = l.change_at(
        &base,
        &actor(&marking, 4),
        T0,
        vec![op(&doc, "targets", "T12/1", &target("T12", 1, "marking"))],
    );
    let (a, b) = (sign(&doc, &transfers, a), sign(&doc, &marking, b));
    let mut x = l.clone();
    let mut y = l;
    for c in [&a, &b] {
        assert!(matches!(x.admit(c, Some(&key())), Admitted::New(_)));
    }
    assert!(matches!(y.admit(&a, Some(&key())), Admitted::New(_)));
    x.settle(Some(&key()));
    let offered: Vec<SignedChange> = x
        .signed_changes()
        .filter(|(h, _)| x.is_exported(h))
        .map(|(_, c)| c)
        .collect();
    for c in &offered {
        let _ = y.admit(c, Some(&key()));
    }
    let (sx, sy) = (
        x.settle(Some(&key())).clone(),
        y.settle(Some(&key())).clone(),
    );
    assert_eq!(sx.offered, sy.offered);
    assert_eq!(sx.heads, sy.heads);
    assert_eq!(sx.view, sy.view);
    assert!(sx.disputed.iter().any(|d| d.path == "targets/T12/1"));
}

/// In the draft, records are corrected in place and deleted; a scoped ministry does either
/// only to records in its areas, judged on the value before and after.
#[test]
fn a_draft_record_is_corrected_or_deleted_only_within_the_writers_areas() {
    let doc = DocId::Draft(xaa());
    let marking = node(3);
    let first = node(1);
    let mut l = Ledger::new(&doc);
    let own = grant(GrantKind::Delegation, &first, Some(Scope::ALL), vec![]);
    assert_eq!(
        write(&mut l, &first, 1, vec![grant_op(&doc, &own)]).1,
        Verdict::Stands
    );
    let g = grant(
        GrantKind::Delegation,
        &marking,
        Some(Scope::Areas(vec![Area::Marking])),
        vec![],
    );
    assert_eq!(
        write(&mut l, &first, 1, vec![grant_op(&doc, &g)]).1,
        Verdict::Stands
    );
    let put = |l: &mut Ledger, k: &NodeKey, suffix: u8, at: &str, value: Option<&Json>| {
        l.settle(Some(&key()));
        let preds = l.live_refs("targets", at);
        let op = FlatOp {
            container: doc.kind().container("targets").unwrap(),
            key: at.into(),
            action: match value {
                Some(v) => FlatAction::Put {
                    value: v.to_string(),
                    preds,
                },
                None => FlatAction::Delete { preds },
            },
        };
        write(l, k, suffix, vec![op])
    };
    let stockpile = target("T5", 1, "stockpile");
    assert_eq!(
        put(&mut l, &first, 1, "T5/1", Some(&stockpile)).1,
        Verdict::Stands
    );
    let mine = target("T1", 1, "marking");
    assert_eq!(
        put(&mut l, &marking, 3, "T1/1", Some(&mine)).1,
        Verdict::Stands
    );

    // Its own record: corrected, then deleted.
    let mut fixed = mine.clone();
    fixed["title"] = json!("Mark all State-held SALW");
    assert_eq!(
        put(&mut l, &marking, 3, "T1/1", Some(&fixed)).1,
        Verdict::Stands
    );
    assert_eq!(
        l.settle(Some(&key())).view["targets"]["T1/1"]["title"],
        "Mark all State-held SALW"
    );
    assert_eq!(put(&mut l, &marking, 3, "T1/1", None).1, Verdict::Stands);
    assert!(!view_targets(&mut l).contains(&"T1/1".to_string()));

    // Another ministry's stockpile record: neither turned into a marking one nor deleted.
    let (_, v) = put(
        &mut l,
        &marking,
        3,
        "T5/1",
        Some(&target("T5", 1, "marking")),
    );
    assert!(void_reason(&v).contains("stockpile"), "{v:?}");
    let (_, v) = put(&mut l, &marking, 3, "T5/1", None);
    assert!(void_reason(&v).contains("stockpile"), "{v:?}");
    assert_eq!(
        l.settle(Some(&key())).view["targets"]["T5/1"]["area"],
        "stockpile"
    );

    // A published document's record is still never edited in place.
    let mut p = delegated(&[]);
    let pdoc = published();
    assert_eq!(
        write(
            &mut p,
            &first,
            1,
            vec![op(&pdoc, "targets", "T5/1", &stockpile)]
        )
        .1,
        Verdict::Stands
    );
    let preds = p.live_refs("targets", "T5/1");
    let edit = FlatOp {
        container: pdoc.kind().container("targets").unwrap(),
        key: "T5/1".into(),
        action: FlatAction::Put {
            value: target("T5", 1, "marking").to_string(),
            preds,
        },
    };
    let (_, v) = write(&mut p, &first, 1, vec![edit]);
    assert!(void_reason(&v).contains("never edited in place"), "{v:?}");
}

/// An honest correction of a record that is later voided (its author revoked with a cut-off
/// before it) keeps standing, with the rest of its change: naming a void value as the one it
/// replaces is naming nothing. (Before, "a decision replaces exactly the one it follows"
/// voided the correction, and the first node's other record in the same change with it: a
/// leaked ministry key's forged write, once cut off, took the State's fix of it along.)
#[test]
fn a_correction_of_what_is_voided_later_stands_with_the_rest_of_its_change() {
    let doc = DocId::Draft(xaa());
    let first = node(1);
    let ministry = node(2);
    let mut l = Ledger::new(&doc);
    let own = grant(GrantKind::Delegation, &first, Some(Scope::ALL), vec![]);
    let g = grant(GrantKind::Delegation, &ministry, Some(Scope::ALL), vec![]);
    for g in [own, g] {
        assert_eq!(
            write(&mut l, &first, 1, vec![grant_op(&doc, &g)]).1,
            Verdict::Stands
        );
    }
    // Nothing of the ministry's stands after the revocation.
    let cut = l.cutoff_for(&ministry.node_id());
    let (forged, v) = write(
        &mut l,
        &ministry,
        2,
        vec![op(&doc, "targets", "T1/1", &target("T1", 1, "marking"))],
    );
    assert_eq!(v, Verdict::Stands);
    // The first node corrects it, naming it, and writes another record in the same change.
    l.settle(Some(&key()));
    let fix = FlatOp {
        container: doc.kind().container("targets").unwrap(),
        key: "T1/1".into(),
        action: FlatAction::Put {
            value: target("T1", 1, "stockpile").to_string(),
            preds: l.live_refs("targets", "T1/1"),
        },
    };
    let other = op(&doc, "targets", "T2/1", &target("T2", 1, "marking"));
    let (fixed, v) = write(&mut l, &first, 1, vec![fix, other]);
    assert_eq!(v, Verdict::Stands);
    // And a deletion of another forged record, naming it.
    let (_, v) = write(
        &mut l,
        &ministry,
        2,
        vec![op(&doc, "targets", "T3/1", &target("T3", 1, "marking"))],
    );
    assert_eq!(v, Verdict::Stands);
    l.settle(Some(&key()));
    let delete = FlatOp {
        container: doc.kind().container("targets").unwrap(),
        key: "T3/1".into(),
        action: FlatAction::Delete {
            preds: l.live_refs("targets", "T3/1"),
        },
    };
    let (deleted, v) = write(&mut l, &first, 1, vec![delete]);
    assert_eq!(v, Verdict::Stands);
    let rev = grant(GrantKind::Revocation, &ministry, None, cut);
    assert_eq!(
        write(&mut l, &first, 1, vec![grant_op(&doc, &rev)]).1,
        Verdict::Stands
    );
    l.settle(Some(&key()));
    assert!(void_reason(l.verdict(&forged).unwrap()).contains("revoked"));
    assert_eq!(l.verdict(&fixed), Some(&Verdict::Stands), "the fix");
    assert_eq!(l.verdict(&deleted), Some(&Verdict::Stands), "the deletion");
    let view = l.settle(Some(&key())).view.clone();
    assert_eq!(view["targets"]["T1/1"]["area"], "stockpile");
    assert!(view["targets"].get("T2/1").is_some());
    assert!(view["targets"].get("T3/1").is_none());
}
