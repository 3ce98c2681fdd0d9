//! Sovereignty over real QUIC and SQLite: only a State writes its own data, and every honest
//! node reaches the same verdict, whoever relayed the change (pools: `pools.rs`). Each test
//! ends with the honest nodes on identical heads and the bad change absent.

#![allow(clippy::unwrap_used)]

use poa_node::federation::{Member, wait_until};
use poa_protocol::authority::Scope;
use poa_protocol::automerge::{Automerge, Change, ReadDoc};
use poa_protocol::doc::{DocId, put_record, target_key};
use poa_protocol::model::Area;
use poa_protocol::sign::{NodeKey, actor_id, sign_change};
use poa_protocol::wire::Claim;
use poa_protocol::{BodyKind, StateCode};
use poa_tests::rogue::{Rogue, sync_frame};
use poa_tests::{
    CONVERGE, Homes, converge, delegate_all, heads, link, rejected_by, target, wait_delegated,
};

fn xaa() -> StateCode {
    "XAA".parse().unwrap()
}

fn published() -> DocId {
    DocId::State(xaa())
}

/// The key of a running node, to act as it.
fn key_of(m: &Member) -> NodeKey {
    m.with_node(|n| NodeKey::from_seed(&n.home.key.seed()))
}

/// A change to `doc` made on top of `base`'s copy as actor `as_node` (+ suffix), adding a
/// target record, and the signature by `signer`.
fn craft(
    base: &Member,
    doc: &DocId,
    as_node: &NodeKey,
    signer: &NodeKey,
    id: &str,
    area: Area,
) -> (Change, Vec<u8>) {
    // A fresh actor suffix per crafted change, so two crafted by one node never share a
    // sequence number.
    static SUFFIX: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0x80);
    let suffix = SUFFIX.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut am: Automerge = base.with_node(|n| n.document(doc)).unwrap();
    am.set_actor(actor_id(&as_node.node_id(), &[suffix; 8]));
    let mut tx = am.transaction();
    put_record(
        &mut tx,
        "targets",
        &target_key(id, 1),
        &target(id, area, "forged", 10.0, 20.0),
    )
    .unwrap();
    let hash = tx.commit().0.unwrap();
    let change = am.get_change_by_hash(&hash).unwrap();
    let sig = sign_change(signer, doc, &hash).to_vec();
    (change, sig)
}

fn holds(m: &Member, doc: &DocId, change: &Change) -> bool {
    m.with_node(|n| {
        n.document(doc)
            .map(|d| d.get_missing_deps(&[change.hash()]).is_empty())
            .unwrap_or(false)
    })
}

/// XAA (first node), XAB, regional body XRB and the Secretariat; XAA publishes T1 and shares
/// with XRB and the Secretariat, which receives it through XRB.
async fn federation(homes: &Homes) -> (Member, Member, Member, Member) {
    let xaa_node = homes.state("xaa", "XAA").await;
    let xab_node = homes.state("xab", "XAB").await;
    let xrb = homes.body("xrb", "XRB", BodyKind::Regional).await;
    let un = homes.body("un", "UNODA", BodyKind::Secretariat).await;
    link(&xaa_node, &xrb, Some("XAA"), None);
    link(&xab_node, &xrb, Some("XAB"), None);
    link(&xrb, &un, None, None);
    // XAA also knows XAB's node (a neighbour), as a peer that may connect.
    xaa_node
        .accept_from(&xab_node, Some("XAB".parse().unwrap()))
        .unwrap();
    let readers = [xrb.id(), un.id()];
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
    let (bad, sig) = craft(
        &xaa_node,
        &published(),
        &xab_key,
        &xab_key,
        "T9",
        Area::Marking,
    );
    let rogue = Rogue::with_key(NodeKey::from_seed(&xab_key.seed()));
    // 1. Directly to XAA's node.
    rogue
        .send_as(
            &xaa_node,
            Claim::State("XAB".parse().unwrap()),
            vec![sync_frame(&published(), &[(bad.clone(), sig.clone())])],
        )
        .await;
    let why = rejected_by(&xaa_node, &bad).await;
    assert!(why.contains("not delegated by XAA's State key"), "{why}");
    // 2. To the relay, and straight to the Secretariat: refused at every hop.
    for hop in [&xrb, &un] {
        if hop.label == "un" {
            hop.accept_from(&xab_node, None).unwrap();
        }
        rogue
            .send_as(
                hop,
                Claim::State("XAB".parse().unwrap()),
                vec![sync_frame(&published(), &[(bad.clone(), sig.clone())])],
            )
            .await;
        let why = rejected_by(hop, &bad).await;
        assert!(
            why.contains("not delegated by XAA's State key"),
            "{}: {why}",
            hop.label
        );
    }
    converge(&[&xaa_node, &xrb, &un], &published()).await;
    for m in [&xaa_node, &xrb, &un] {
        assert!(
            !holds(m, &published(), &bad),
            "{} applied the forged change",
            m.label
        );
    }
    assert!(xrb.with_node(|n| {
        n.store
            .peers()
            .unwrap()
            .iter()
            .any(|p| p.label_is(&xab_node) && p.invalid_changes > 0)
    }));
}

trait PeerLabel {
    fn label_is(&self, m: &Member) -> bool;
}

impl PeerLabel for poa_node::store::Peer {
    fn label_is(&self, m: &Member) -> bool {
        self.node_id == m.id()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_altered_and_swapped_changes_are_refused() {
    let homes = Homes::new();
    let (xaa_node, xab_node, xrb, un) = federation(&homes).await;
    let xaa_key = key_of(&xaa_node);
    let xab_key = key_of(&xab_node);
    let rogue = Rogue::with_key(NodeKey::from_seed(&xab_key.seed()));
    let claim = || Claim::State("XAB".parse().unwrap());

    // 3. XAA's actor id, without XAA's key.
    let (forged, sig) = craft(&xrb, &published(), &xaa_key, &xab_key, "T7", Area::Marking);
    rogue
        .send_as(
            &xrb,
            claim(),
            vec![sync_frame(&published(), &[(forged.clone(), sig)])],
        )
        .await;
    let why = rejected_by(&xrb, &forged).await;
    assert!(why.contains("signature does not verify"), "{why}");

    // 4a. A valid change by XAA with its signature altered in transit.
    let (valid, mut sig) = craft(&xrb, &published(), &xaa_key, &xaa_key, "T8", Area::Marking);
    sig[5] ^= 0x20;
    rogue
        .send_as(
            &xrb,
            claim(),
            vec![sync_frame(&published(), &[(valid.clone(), sig)])],
        )
        .await;
    let why = rejected_by(&xrb, &valid).await;
    assert!(why.contains("signature does not verify"), "{why}");

    // 4b. Another valid change by XAA carrying the signature of a different change.
    let (other, other_sig) = craft(&un, &published(), &xaa_key, &xaa_key, "T6", Area::Marking);
    let (swapped, _) = craft(&un, &published(), &xaa_key, &xaa_key, "T5", Area::Marking);
    un.accept_from(&xab_node, None).unwrap();
    rogue
        .send_as(
            &un,
            claim(),
            vec![sync_frame(&published(), &[(swapped.clone(), other_sig)])],
        )
        .await;
    let why = rejected_by(&un, &swapped).await;
    assert!(why.contains("signature does not verify"), "{why}");

    // 4c. One byte of the change altered: the message does not even parse, and the sender is
    // disconnected with the reason.
    let (mut_me, sig) = craft(&xrb, &published(), &xaa_key, &xaa_key, "T4", Area::Marking);
    let mut frame = sync_frame(&published(), &[(mut_me.clone(), sig)]);
    let at = frame.len() - 80;
    frame[at] ^= 0x01;
    let (_, ended) = rogue.send_as(&xrb, claim(), vec![frame]).await;
    assert!(!ended.is_empty());

    converge(&[&xaa_node, &xrb, &un], &published()).await;
    for m in [&xaa_node, &xrb, &un] {
        for c in [&forged, &valid, &swapped, &mut_me, &other] {
            assert!(
                !holds(m, &published(), c),
                "{} applied a bad change",
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
    // The peer list shows it once the refused connection has ended.
    let shown = wait_until(CONVERGE, || {
        xrb.with_node(|n| {
            n.store.peers().unwrap().into_iter().any(|p| {
                p.node_id == impostor.id()
                    && p.last_error
                        .as_deref()
                        .unwrap_or("")
                        .contains("XAA's State key is")
            })
        })
    })
    .await;
    assert!(shown.is_some(), "the peer list does not show the conflict");
    // Honest nodes agree, on the real XAA's data.
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
async fn a_delegated_ministry_writes_until_revoked_and_a_scoped_one_only_its_areas() {
    let homes = Homes::new();
    let (xaa_node, _xab_node, xrb, un) = federation(&homes).await;
    let defence = homes.ministry("defence", "XAA").await;
    link(&xaa_node, &defence, Some("XAA"), Some("XAA"));
    delegate_all(&xaa_node, &defence).await;
    // 6. Accepted everywhere.
    defence
        .with_node(|n| {
            n.add_target(target("T5", Area::Stockpile, "Secure depots", 30.0, 60.0))?;
            n.publish_target("T5")
        })
        .unwrap();
    converge(&[&xaa_node, &defence, &xrb, &un], &published()).await;
    let at_un = un.with_node(|n| n.target_view(Some(xaa()), "T5"));
    assert!(
        at_un.is_ok(),
        "the delegated target did not reach the Secretariat"
    );

    // Revoked: once it knows, its own node refuses its writes, and a change it makes anyway is
    // refused everywhere; T5 stays.
    let defence_id = defence.id();
    xaa_node.with_node(|n| n.revoke(defence_id)).unwrap();
    converge(&[&xaa_node, &defence, &xrb, &un], &published()).await;
    let local =
        defence.with_node(|n| n.add_target(target("T6", Area::Stockpile, "More", 30.0, 60.0)));
    let msg = local.unwrap_err().to_string();
    assert!(msg.contains("revoked"), "{msg}");
    let defence_key = key_of(&defence);
    let (late, sig) = craft(
        &defence,
        &published(),
        &defence_key,
        &defence_key,
        "T6",
        Area::Stockpile,
    );
    let rogue = Rogue::with_key(NodeKey::from_seed(&defence_key.seed()));
    rogue
        .send_as(
            &xaa_node,
            Claim::State(xaa()),
            vec![sync_frame(&published(), &[(late.clone(), sig)])],
        )
        .await;
    let why = rejected_by(&xaa_node, &late).await;
    assert!(why.contains("revoked"), "{why}");
    converge(&[&xaa_node, &xrb, &un], &published()).await;
    assert!(un.with_node(|n| n.target_view(Some(xaa()), "T5")).is_ok());
    for m in [&xaa_node, &xrb, &un] {
        assert!(!holds(m, &published(), &late));
    }

    // 7. A delegation scoped to marking cannot write a stockpile target.
    let marking = homes.ministry("marking", "XAA").await;
    link(&xaa_node, &marking, Some("XAA"), Some("XAA"));
    let marking_id = marking.id();
    xaa_node
        .with_node(|n| n.delegate(marking_id, Scope::Areas(vec![Area::Marking]), None))
        .unwrap();
    wait_delegated(&xaa_node, &marking).await;
    let before = heads(&marking, &DocId::Draft(xaa()));
    let refused =
        marking.with_node(|n| n.add_target(target("T7", Area::Stockpile, "Depots", 1.0, 2.0)));
    let msg = refused.unwrap_err().to_string();
    assert!(msg.contains("covers marking, not"), "{msg}");
    assert_eq!(
        heads(&marking, &DocId::Draft(xaa())),
        before,
        "a refused write changed the draft"
    );
    marking
        .with_node(|n| n.add_target(target("T8", Area::Marking, "Mark more", 70.0, 90.0)))
        .unwrap();
    converge(&[&xaa_node, &marking, &defence], &DocId::Draft(xaa())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_given_a_revocation_and_changes_in_opposite_orders_reach_the_same_verdict() {
    let homes = Homes::new();
    let xaa_node = homes.state("xaa", "XAA").await;
    let defence = homes.ministry("defence", "XAA").await;
    link(&xaa_node, &defence, Some("XAA"), Some("XAA"));
    delegate_all(&xaa_node, &defence).await;
    let doc = published();
    converge(&[&xaa_node, &defence], &doc).await;
    let base: Automerge = xaa_node.with_node(|n| n.document(&doc)).unwrap();
    let base_heads = base.get_heads();
    let sigs = xaa_node.with_node(|n| n.store.signatures(&doc)).unwrap();
    let signed = |c: &Change| sigs.get(&c.hash()).map(|s| s.to_vec()).unwrap_or_default();
    let base_changes: Vec<(Change, Vec<u8>)> = base
        .get_changes(&[])
        .into_iter()
        .map(|c| {
            let s = signed(&c);
            (c, s)
        })
        .collect();

    // Concurrently with the revocation, the ministry writes T5; after seeing it, T6.
    let defence_key = key_of(&defence);
    let (concurrent, concurrent_sig) = craft(
        &xaa_node,
        &doc,
        &defence_key,
        &defence_key,
        "T5",
        Area::Marking,
    );
    let defence_id = defence.id();
    xaa_node.with_node(|n| n.revoke(defence_id)).unwrap();
    let after: Automerge = xaa_node.with_node(|n| n.document(&doc)).unwrap();
    let sigs = xaa_node.with_node(|n| n.store.signatures(&doc)).unwrap();
    let revocation: Vec<(Change, Vec<u8>)> = after
        .get_changes(&base_heads)
        .into_iter()
        .map(|c| {
            let s = sigs.get(&c.hash()).map(|s| s.to_vec()).unwrap_or_default();
            (c, s)
        })
        .collect();
    let (late, late_sig) = craft(
        &xaa_node,
        &doc,
        &defence_key,
        &defence_key,
        "T6",
        Area::Marking,
    );

    let r1 = homes.body("r1", "XRB", BodyKind::Regional).await;
    let r2 = homes.body("r2", "UNODA", BodyKind::Secretariat).await;
    let state_key = xaa_node.with_node(|n| n.home.state_key.as_ref().map(|k| k.node_id()));
    let rogue = Rogue::with_key(key_of(&xaa_node));
    let frame = |changes: &[(Change, Vec<u8>)]| sync_frame(&doc, changes);
    let c = (concurrent.clone(), concurrent_sig);
    let l = (late.clone(), late_sig);
    let orders = [
        (
            &r1,
            vec![
                frame(&base_changes),
                frame(&revocation),
                frame(std::slice::from_ref(&c)),
                frame(std::slice::from_ref(&l)),
            ],
        ),
        (
            &r2,
            vec![
                frame(&base_changes),
                frame(std::slice::from_ref(&l)),
                frame(std::slice::from_ref(&c)),
                frame(&revocation),
                frame(std::slice::from_ref(&l)),
            ],
        ),
    ];
    for (receiver, frames) in orders {
        receiver.accept_from(&xaa_node, Some(xaa())).unwrap();
        for f in frames {
            // One connection per delivery: nothing ties the order to a single session.
            rogue
                .send_with_key(receiver, Claim::State(xaa()), state_key, vec![f])
                .await;
        }
        let why = rejected_by(receiver, &late).await;
        assert!(why.contains("revoked"), "{}: {why}", receiver.label);
    }
    assert_eq!(heads(&r1, &doc), heads(&r2, &doc));
    for r in [&r1, &r2] {
        assert!(
            holds(r, &doc, &concurrent),
            "{} refused the concurrent change",
            r.label
        );
        assert!(
            !holds(r, &doc, &late),
            "{} applied the change made after the revocation",
            r.label
        );
    }
}
