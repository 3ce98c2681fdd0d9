//! Sovereignty over real QUIC and SQLite: only a State writes its own data, every honest node
//! reaches the same verdict whoever relayed the change, and a revoked node's changes past its
//! cut-off are void everywhere, backdated or not (pools: `pools.rs`; attacks: `attacks.rs`).

#![allow(clippy::unwrap_used)]

use poa_node::federation::{Member, wait_until};
use poa_protocol::authority::Scope;
use poa_protocol::change::SignedChange;
use poa_protocol::doc::{DocId, target_key};
use poa_protocol::ledger::Verdict;
use poa_protocol::model::Area;
use poa_protocol::{BodyKind, Principal, StateCode};
use poa_tests::rogue::{As, Rogue, sync_frame};
use poa_tests::{
    CONVERGE, Homes, converge, craft, delegate_all, hash_of, heads, holds, key_of, link,
    principal_key, put, refused_by, target, verdict, view, wait_delegated,
};

fn xaa() -> StateCode {
    "XAA".parse().unwrap()
}

fn published() -> DocId {
    DocId::State(xaa())
}

/// A target record change of `published()` by `key`, on top of `base`'s copy (or `deps`).
fn forged_target(
    base: &Member,
    key: &poa_protocol::sign::NodeKey,
    deps: Option<&[poa_protocol::automerge::ChangeHash]>,
    id: &str,
    area: Area,
) -> SignedChange {
    let mut t = target(id, area, "forged", 10.0, 20.0);
    t.state = xaa();
    craft(
        base,
        &published(),
        key,
        deps,
        vec![put(&published(), "targets", &target_key(id, 1), &t)],
    )
}

/// XAA (first node), XAB, regional body XRB and the Secretariat; XAA publishes T1 and shares
/// with XRB, the Secretariat and XAB; the Secretariat receives it through XRB, which
/// introduces XAA's key to it.
async fn federation(homes: &Homes) -> (Member, Member, Member, Member) {
    let xaa_node = homes.state("xaa", "XAA").await;
    let xab_node = homes.state("xab", "XAB").await;
    let xrb = homes.body("xrb", "XRB", BodyKind::Regional).await;
    let un = homes.body("un", "UNODA", BodyKind::Secretariat).await;
    link(&xaa_node, &xrb, Some("XAA"), None);
    link(&xab_node, &xrb, Some("XAB"), None);
    link(&xrb, &un, None, None);
    un.trust_introductions_from(&xrb).unwrap();
    // XAA also knows XAB's node (a neighbour), as a peer that may connect.
    xaa_node
        .accept_from(&xab_node, Some("XAB".parse().unwrap()))
        .unwrap();
    let readers = [xrb.id(), un.id(), xab_node.id()];
    xaa_node
        .with_node(|n| {
            n.add_target(target("T1", Area::Marking, "Mark SALW", 40.0, 70.0))?;
            n.publish_target("T1")?;
            n.share(&published(), &readers, false)
        })
        .unwrap();
    converge(&[&xaa_node, &xrb, &un], &published()).await;
    (xaa_node, xab_node, xrb, un)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_states_node_cannot_write_a_states_document_directly_or_relayed() {
    let homes = Homes::new();
    let (xaa_node, xab_node, xrb, un) = federation(&homes).await;
    let xab_key = key_of(&xab_node);
    let bad = forged_target(&xaa_node, &xab_key, None, "T9", Area::Marking);
    let bad_hash = hash_of(&published(), &bad);
    let rogue = Rogue::with_key(key_of(&xab_node));
    // To XAA's node, to the relay and to the Secretariat: refused at every hop, before it is
    // stored.
    un.accept_from(&xab_node, None).unwrap();
    for hop in [&xaa_node, &xrb, &un] {
        rogue
            .send_as(
                hop,
                &As::state("XAB", None),
                vec![sync_frame(&published(), std::slice::from_ref(&bad))],
            )
            .await;
        let why = refused_by(hop, &bad_hash).await;
        assert!(
            why.contains("no delegation of XAA's State key names it"),
            "{}: {why}",
            hop.label
        );
    }
    converge(&[&xaa_node, &xrb, &un], &published()).await;
    for m in [&xaa_node, &xrb, &un] {
        assert!(
            !holds(m, &published(), &bad_hash),
            "{} stored the forged change",
            m.label
        );
    }
    let id = xab_node.id();
    assert!(xrb.with_node(|n| {
        n.store
            .peers()
            .unwrap()
            .iter()
            .any(|p| p.node_id == id && p.invalid_changes > 0)
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_altered_and_swapped_changes_are_refused() {
    let homes = Homes::new();
    let (xaa_node, _xab_node, xrb, un) = federation(&homes).await;
    let xaa_key = key_of(&xaa_node);
    let xrb_key = key_of(&xrb);
    // The relay itself turns hostile towards the Secretariat.
    let rogue = Rogue::with_key(key_of(&xrb));
    let relay = As {
        claims: poa_protocol::wire::Claim::Body("XRB".parse().unwrap(), BodyKind::Regional),
        key: None,
        recovery: None,
    };
    let send = |c: SignedChange| {
        let f = sync_frame(&published(), &[c]);
        let rogue = &rogue;
        let relay = relay.clone();
        let un = &un;
        async move { rogue.send_as(un, &relay, vec![f]).await }
    };

    // XAA's actor id, without XAA's key.
    let mut forged = forged_target(&un, &xaa_key, None, "T7", Area::Marking);
    forged.signature = poa_tests::sign(&published(), &xrb_key, forged.data.clone()).signature;
    send(forged.clone()).await;
    let why = refused_by(&un, &hash_of(&published(), &forged)).await;
    assert!(why.contains("signature does not verify"), "{why}");

    // A valid change by XAA with its signature altered in transit.
    let mut altered = forged_target(&un, &xaa_key, None, "T8", Area::Marking);
    altered.signature[5] ^= 0x20;
    send(altered.clone()).await;
    let why = refused_by(&un, &hash_of(&published(), &altered)).await;
    assert!(why.contains("signature does not verify"), "{why}");

    // Another valid change by XAA carrying the signature of a different change.
    let other = forged_target(&un, &xaa_key, None, "T6", Area::Marking);
    let mut swapped = forged_target(&un, &xaa_key, None, "T5", Area::Marking);
    swapped.signature = other.signature.clone();
    send(swapped.clone()).await;
    let why = refused_by(&un, &hash_of(&published(), &swapped)).await;
    assert!(why.contains("signature does not verify"), "{why}");

    converge(&[&xaa_node, &xrb, &un], &published()).await;
    for m in [&xaa_node, &xrb, &un] {
        for c in [&forged, &altered, &swapped, &other] {
            assert!(
                !holds(m, &published(), &hash_of(&published(), c)),
                "{} stored a bad change",
                m.label
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impostor_with_its_own_state_key_is_refused_and_reported() {
    let homes = Homes::new();
    let (xaa_node, _xab_node, xrb, un) = federation(&homes).await;
    let impostor = homes.state("impostor", "XAA").await;
    // XRB pins it as a node of XAA: it already knows XAA's real State key.
    link(&impostor, &xrb, Some("XAA"), None);
    let readers = [xrb.id(), un.id()];
    impostor
        .with_node(|n| {
            n.add_target(target("T1", Area::Marking, "Impostor target", 1.0, 2.0))?;
            n.publish_target("T1")?;
            n.share(&published(), &readers, false)
        })
        .unwrap();
    let reported = wait_until(CONVERGE, || {
        xrb.with_node(|n| {
            n.store
                .audit(0)
                .unwrap()
                .iter()
                .any(|r| r.event == "conflict" && r.detail.contains("State key"))
        })
    })
    .await;
    assert!(reported.is_some(), "the conflict was not reported");
    let shown = wait_until(CONVERGE, || {
        xrb.with_node(|n| {
            n.store.peers().unwrap().into_iter().any(|p| {
                p.node_id == impostor.id()
                    && p.last_error
                        .as_deref()
                        .unwrap_or("")
                        .contains("the key trusted here is")
            })
        })
    })
    .await;
    assert!(shown.is_some(), "the peer list does not show the conflict");
    let real = heads(&xaa_node, &published());
    converge(&[&xaa_node, &xrb, &un], &published()).await;
    assert_eq!(heads(&un, &published()), real);
    let titles: Vec<String> = un
        .with_node(|n| n.target_views(Some(xaa())))
        .unwrap()
        .iter()
        .map(|v| v.current().target.title.clone())
        .collect();
    assert_eq!(titles, ["Mark SALW"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegated_ministry_writes_until_revoked_and_cannot_backdate_past_it() {
    let homes = Homes::new();
    let (xaa_node, _xab_node, xrb, un) = federation(&homes).await;
    let defence = homes.ministry("defence", "XAA").await;
    link(&xaa_node, &defence, Some("XAA"), Some("XAA"));
    delegate_all(&xaa_node, &defence).await;
    defence
        .with_node(|n| {
            n.add_target(target("T5", Area::Stockpile, "Secure depots", 30.0, 60.0))?;
            n.publish_target("T5")
        })
        .unwrap();
    converge(&[&xaa_node, &defence, &xrb, &un], &published()).await;
    assert!(un.with_node(|n| n.target_view(Some(xaa()), "T5")).is_ok());
    let before_revocation = heads(&xaa_node, &published());
    let before: Vec<poa_protocol::automerge::ChangeHash> = xaa_node
        .with_node(|n| n.store.heads(&published()))
        .unwrap()
        .unwrap();
    assert_eq!(before.len(), before_revocation.len());

    // Revoked: the node is no longer one of XAA's own, so it reads nothing new; a change it
    // makes anyway, even on top of the heads before the revocation and dated before it, and
    // relayed by a node that may read the document, is void everywhere; T5 stays.
    let defence_id = defence.id();
    xaa_node.with_node(|n| n.revoke(defence_id)).unwrap();
    converge(&[&xaa_node, &xrb, &un], &published()).await;
    assert!(!xaa_node.with_node(|n| poa_node::host::can_read(n, &defence_id, &published())));
    let defence_key = key_of(&defence);
    let mut late = forged_target(&defence, &defence_key, Some(&before), "T6", Area::Stockpile);
    late.data.time = 1_700_000_000;
    let late = poa_tests::sign(&published(), &defence_key, late.data);
    let late_hash = hash_of(&published(), &late);
    Rogue::with_key(key_of(&xrb))
        .send_as(
            &xaa_node,
            &As {
                claims: poa_protocol::wire::Claim::Body("XRB".parse().unwrap(), BodyKind::Regional),
                key: None,
                recovery: None,
            },
            vec![sync_frame(&published(), std::slice::from_ref(&late))],
        )
        .await;
    let why = refused_by(&xaa_node, &late_hash).await;
    assert!(why.contains("revoked"), "{why}");
    converge(&[&xaa_node, &xrb, &un], &published()).await;
    assert!(un.with_node(|n| n.target_view(Some(xaa()), "T5")).is_ok());
    for m in [&xaa_node, &xrb, &un] {
        assert!(
            view(m, &published())["targets"].get("T6/1").is_none(),
            "{} shows the backdated change",
            m.label
        );
        if holds(m, &published(), &late_hash) {
            assert!(matches!(
                verdict(m, &published(), &late_hash),
                Some(Verdict::Void(_))
            ));
        }
    }

    // A delegation scoped to marking cannot write a stockpile target.
    let marking = homes.ministry("marking", "XAA").await;
    link(&xaa_node, &marking, Some("XAA"), Some("XAA"));
    let marking_id = marking.id();
    xaa_node
        .with_node(|n| n.delegate(marking_id, Scope::Areas(vec![Area::Marking]), None))
        .unwrap();
    wait_delegated(&xaa_node, &marking).await;
    let draft = DocId::Draft(xaa());
    let before = heads(&marking, &draft);
    let refused =
        marking.with_node(|n| n.add_target(target("T7", Area::Stockpile, "Depots", 1.0, 2.0)));
    let msg = refused.unwrap_err().to_string();
    assert!(msg.contains("covers marking, not"), "{msg}");
    assert_eq!(
        heads(&marking, &draft),
        before,
        "a refused write changed the draft"
    );
    marking
        .with_node(|n| n.add_target(target("T8", Area::Marking, "Mark more", 70.0, 90.0)))
        .unwrap();
    converge(&[&xaa_node, &marking], &draft).await;
}

/// The strong removal of a revocation, in any arrival order: two relays receive the same
/// changes in opposite orders over separate connections and end with the same heads, the same
/// view and the same verdicts; the revoked node's change outside the cut-off is void on both,
/// whether it was made before or after the revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_given_a_revocation_and_changes_in_opposite_orders_reach_the_same_verdict() {
    let homes = Homes::new();
    let xaa_node = homes.state("xaa", "XAA").await;
    let defence = homes.ministry("defence", "XAA").await;
    link(&xaa_node, &defence, Some("XAA"), Some("XAA"));
    delegate_all(&xaa_node, &defence).await;
    let doc = published();
    xaa_node.with_node(|n| n.share(&doc, &[], true)).unwrap();
    converge(&[&xaa_node, &defence], &doc).await;
    let base: Vec<SignedChange> = xaa_node
        .with_node(|n| {
            n.store
                .with_ledger(&doc, |l| l.signed_changes().map(|(_, c)| c).collect())
        })
        .unwrap()
        .unwrap();
    let base_heads = xaa_node
        .with_node(|n| n.store.heads(&doc))
        .unwrap()
        .unwrap();

    // The ministry writes T5, which XAA's node never sees; then the State revokes it (cut-off
    // at what it has seen); then the ministry writes T6 after it.
    let defence_key = key_of(&defence);
    let unseen = forged_target(&xaa_node, &defence_key, None, "T5", Area::Marking);
    let defence_id = defence.id();
    xaa_node.with_node(|n| n.revoke(defence_id)).unwrap();
    let revocation: Vec<SignedChange> = xaa_node
        .with_node(|n| {
            n.store.with_ledger(&doc, |l| {
                l.signed_changes()
                    .filter(|(h, _)| !base_heads.contains(h) && !l.deps(h).is_empty())
                    .map(|(_, c)| c)
                    .collect::<Vec<_>>()
            })
        })
        .unwrap()
        .unwrap()
        .into_iter()
        .filter(|c| !base.contains(c))
        .collect();
    assert_eq!(revocation.len(), 1, "one change holds the revocation");
    let late = forged_target(&xaa_node, &defence_key, None, "T6", Area::Marking);

    let r1 = homes.body("r1", "XRB", BodyKind::Regional).await;
    let r2 = homes.body("r2", "UNODA", BodyKind::Secretariat).await;
    let key = principal_key(&xaa_node);
    let rogue = Rogue::with_key(key_of(&xaa_node));
    let who = As::state("XAA", Some(key));
    let orders: [(&Member, Vec<Vec<SignedChange>>); 2] = [
        (
            &r1,
            vec![revocation.clone(), vec![unseen.clone()], vec![late.clone()]],
        ),
        (
            &r2,
            vec![vec![late.clone()], vec![unseen.clone()], revocation.clone()],
        ),
    ];
    for (receiver, batches) in orders {
        receiver.accept_from(&xaa_node, Some(xaa())).unwrap();
        // The first copy, offered as an honest peer would; then one connection per delivery,
        // so nothing ties the order to a single session.
        rogue.deliver(receiver, &who, &doc, &base).await;
        assert!(
            !heads(receiver, &doc).is_empty(),
            "{} took no first copy",
            receiver.label
        );
        for b in batches {
            rogue
                .send_as(receiver, &who, vec![sync_frame(&doc, &b)])
                .await;
        }
        for c in [&unseen, &late] {
            // Held and void if it came before the revocation; refused at admission (the
            // revocation settles it can never stand) if after.
            let h = hash_of(&doc, c);
            let why = refused_by(receiver, &h).await;
            assert!(why.contains("revoked"), "{}: {why}", receiver.label);
            if let Some(v) = verdict(receiver, &doc, &h) {
                assert!(
                    matches!(&v, Verdict::Void(d) if d.to_string().contains("revoked")),
                    "{}: {v:?}",
                    receiver.label
                );
            }
        }
    }
    assert_eq!(heads(&r1, &doc), heads(&r2, &doc));
    assert_eq!(view(&r1, &doc), view(&r2, &doc));
    assert!(view(&r1, &doc)["targets"].get("T5/1").is_none());
    let _ = Principal::State(xaa());
}

/// Expiry is made to stick by the key holder, not by dates: once a delegation's last day has
/// passed, the State's first node revokes it with a cut-off, and the ministry's changes after
/// it (whatever date they claim) are void.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_delegation_is_revoked_by_the_key_holder() {
    let homes = Homes::new();
    let xaa_node = homes.state("xaa", "XAA").await;
    let defence = homes.ministry("defence", "XAA").await;
    link(&xaa_node, &defence, Some("XAA"), Some("XAA"));
    let id = defence.id();
    let yesterday = poa_protocol::Date::from_unix_seconds(poa_node::node::now_secs() - 86_400);
    xaa_node
        .with_node(|n| n.delegate(id, Scope::ALL, Some(yesterday)))
        .unwrap();
    wait_delegated(&xaa_node, &defence).await;
    let lapsed = xaa_node.with_node(|n| n.lapse_expired()).unwrap();
    assert_eq!(lapsed, [id]);
    assert!(
        xaa_node
            .with_node(|n| n.lapse_expired())
            .unwrap()
            .is_empty(),
        "twice"
    );
    // The revocation is written to the published document and the draft: the lapsed ministry
    // is no longer one of XAA's own, and reads neither.
    let draft = DocId::Draft("XAA".parse().unwrap());
    for doc in [published(), draft] {
        assert!(!xaa_node.with_node(|n| poa_node::host::can_read(n, &id, &doc)));
    }
}
