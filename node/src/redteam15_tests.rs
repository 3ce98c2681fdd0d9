//! Red team, round 15 (node side): a recovery after a body key leaked. The test failed
//! before its fix.

use poa_protocol::Date;
use poa_protocol::authority::{Grant, GrantKind, Scope, SignedGrant};
use poa_protocol::change::{FlatAction, FlatOp, SignedChange};
use poa_protocol::doc::DocId;
use poa_protocol::id::{BodyCode, BodyKind, Principal};
use poa_protocol::ledger::actor_bytes;
use poa_protocol::sign::{NodeKey, sign_change};

use crate::home::{Home, InitOptions};
use crate::node::Node;
use crate::store::Source;

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

/// A thief's change on top of what `node` holds of `doc`, signed by the thief's node key.
fn thief_change(node: &Node, doc: &DocId, t: &NodeKey, ops: Vec<FlatOp>) -> SignedChange {
    let actor = actor_bytes(&t.node_id(), &[9; 8]);
    let data = node
        .store
        .with_ledger(doc, |l| {
            let heads = l.settled().map(|s| s.heads.clone()).unwrap_or_default();
            l.change_at(&heads, &actor, node.now(), ops)
        })
        .unwrap()
        .unwrap();
    let h = data.to_automerge(doc).unwrap().hash();
    SignedChange {
        data,
        signature: sign_change(t, doc, &h).to_vec(),
    }
}

/// A body's key leaks. The thief delegates its own node with it and signs one more grant: a
/// delegation *of the body's own node*, with a serial above the body's and an expiry long past.
/// Both stand in `offers/XZZ` (the key was in force), so honest relays carry them to the body's
/// node. Its next `add_offer` copies the published grants into its offers draft
/// (`fill_offer_draft_grants`), so the body's node itself "placed" the thief's grant about it
/// in the draft. The recovery used to keep every grant the node placed about itself in a
/// draft, the thief's among them, which then locked the node out of its own documents. It
/// keeps only what the node placed in the published document now; this test failed before.
#[test]
fn a_recovery_keeps_no_thief_grant_its_node_copied_into_its_draft() {
    scenario(true);
}

/// The control: the same theft without an `add_offer` between it and the recovery.
#[test]
fn a_recovery_voids_a_thief_grant_about_the_body_node() {
    scenario(false);
}

fn scenario(copy: bool) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("xzz");
    let opts = InitOptions::body(BodyCode::from_static("XZZ"), BodyKind::Donor, "XZZ Agency");
    Home::init(&home, &opts).unwrap();
    let recovery = crate::home::read_key(&home.join("recovery.key")).unwrap();
    let mut n = Node::open(&home).unwrap();
    let me = n.id();
    let leaked = NodeKey::from_seed(&n.home.principal_key.as_ref().unwrap().seed());
    let data = crate::demo::dataset().unwrap();
    let mut offers = data.donor.offers.clone();
    let o2 = offers.pop().unwrap();
    let o1 = offers.pop().unwrap();
    n.add_offer(o1).unwrap();
    n.publish_offers(None).unwrap();
    let public = DocId::Offers("XZZ".to_string());

    // The thief, with the leaked body key.
    let t = NodeKey::from_seed(&[66; 32]);
    let sign = |node: &NodeId, serial: u32, expires: Option<Date>| {
        SignedGrant::sign(
            &leaked,
            Grant {
                kind: GrantKind::Delegation,
                principal: Principal::Body(BodyCode::from_static("XZZ")),
                node: *node,
                scope: Some(Scope::ALL),
                expires,
                issued: Date::from_unix_seconds(n.now()),
                key: leaked.node_id(),
                cutoff: vec![],
                serial,
                kept: vec![],
                recovery: None,
            },
        )
    };
    use poa_protocol::NodeId;
    let d_t = sign(&t.node_id(), 0, None);
    let d_me = sign(&me, 1000, Some("2000-01-01".parse().unwrap()));
    let now = n.now();
    let c1 = thief_change(&n, &public, &t, vec![grant_op(&public, &d_t)]);
    n.store
        .transact(|tx| tx.apply(&public, vec![c1], Source::Peer(t.node_id()), now))
        .unwrap();
    let c2 = thief_change(&n, &public, &t, vec![grant_op(&public, &d_me)]);
    let out = n
        .store
        .transact(|tx| tx.apply(&public, vec![c2], Source::Peer(t.node_id()), now))
        .unwrap();
    assert_eq!(out.accepted.len(), 1, "{out:?}");
    // Both stand (the key was in force): any honest relay carries them.
    let grants = n.grants().unwrap();
    assert!(
        grants
            .iter()
            .any(|(g, ok)| g.node == me && g.serial == 1000 && *ok)
    );

    // The body's node goes on working: the next offer copies the published grants into the
    // draft (and then fails: the thief's delegation of it has expired).
    let draft = DocId::OffersDraft("XZZ".to_string());
    if copy {
        let _ = n.add_offer(o2);
        let placed_by_me = n
            .store
            .with_ledger(&draft, |l| l.grants_placed_by(Some(&me)))
            .unwrap()
            .unwrap();
        assert!(
            placed_by_me
                .iter()
                .any(|g| g.storage_key() == d_me.storage_key())
        );
    }

    // The body recovers: a new key, signed by the recovery key.
    let change = n
        .recover_principal_key(&recovery, NodeKey::from_seed(&[77; 32]), &[], &[])
        .unwrap();
    assert_eq!(change.kind, "recovery");
    let chain = n.key_chain_of(&public).unwrap().unwrap();
    assert_eq!(chain.epoch, 1);
    // Neither of the thief's grants stands, and the body's node writes both documents again.
    use poa_protocol::authority::Signers;
    assert!(!chain.kept.contains(&d_me.storage_key()));
    assert!(!chain.accepts(&d_t));
    assert!(!chain.accepts(&d_me));
    n.write(&public, |w, _| w.put("readers", "*", &true))
        .unwrap();
    if copy {
        n.write(&draft, |w, _| w.put("readers", "*", &true))
            .unwrap();
    }
}
