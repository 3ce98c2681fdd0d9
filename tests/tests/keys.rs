//! A State's key over real QUIC and SQLite: a rotation followed by the relay and the
//! Secretariat, the old key refused after it; a leaked key's forgeries voided everywhere by a
//! recovery signed with the recovery key, which the relay learnt from XAA's hello and the
//! Secretariat from the relay's introduction.

#![allow(clippy::unwrap_used)]

use poa_node::federation::{Member, wait_until};
use poa_protocol::authority::{Grant, GrantKind, Scope, SignedGrant};
use poa_protocol::change::SignedChange;
use poa_protocol::doc::{DocId, target_key};
use poa_protocol::model::Area;
use poa_protocol::sign::NodeKey;
use poa_protocol::{BodyKind, Principal, StateCode};
use poa_tests::rogue::{As, Rogue, sync_frame};
use poa_tests::{
    CONVERGE, Homes, converge, delegate_all, key_of, link, put, put_text, target, view,
};

fn xaa() -> StateCode {
    "XAA".parse().unwrap()
}

fn published() -> DocId {
    DocId::State(xaa())
}

/// XAA's first node, a neighbour XAB (pinned by the relay), the regional body XRB and the
/// Secretariat, which learns XAA's key through XRB; XAA publishes T1 and shares it with all.
async fn federation(homes: &Homes) -> (Member, Member, Member, Member) {
    let xaa_node = homes.state("xaa", "XAA").await;
    let xab_node = homes.state("xab", "XAB").await;
    let xrb = homes.body("xrb", "XRB", BodyKind::Regional).await;
    let un = homes.body("un", "UNODA", BodyKind::Secretariat).await;
    link(&xaa_node, &xrb, Some("XAA"), None);
    link(&xab_node, &xrb, Some("XAB"), None);
    link(&xrb, &un, None, None);
    un.trust_introductions_from(&xrb).unwrap();
    un.accept_from(&xab_node, None).unwrap();
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

/// The State key `m` holds now.
fn state_key(m: &Member) -> NodeKey {
    m.with_node(|n| NodeKey::from_seed(&n.home.principal_key.as_ref().unwrap().seed()))
}

fn targets(m: &Member) -> Vec<String> {
    let mut ids: Vec<String> = view(m, &published())["targets"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

fn delegation_by(key: &NodeKey, node: &Member) -> SignedGrant {
    SignedGrant::sign(
        key,
        Grant {
            kind: GrantKind::Delegation,
            principal: Principal::State(xaa()),
            node: node.id(),
            scope: Some(Scope::ALL),
            expires: None,
            issued: "2026-01-01".parse().unwrap(),
            key: key.node_id(),
            cutoff: Vec::new(),
            serial: 0,
            kept: Vec::new(),
            recovery: None,
        },
    )
}

/// `author`'s changes, one per step, each on the one before, the first on `base`'s copy of
/// XAA's document: built on a copy of that copy, as a node holding `author`'s key would.
fn chain(
    base: &Member,
    author: &Member,
    steps: Vec<Vec<poa_protocol::change::FlatOp>>,
) -> Vec<SignedChange> {
    let key = key_of(author);
    let actor = poa_protocol::ledger::actor_bytes(&author.id(), &[0x5a; 8]);
    let root = base.with_node(|n| n.store.trust().key_for_doc(&published()).copied());
    let mut l = base
        .with_node(|n| n.store.with_ledger(&published(), |l| l.clone()))
        .unwrap()
        .unwrap();
    let mut out: Vec<SignedChange> = Vec::new();
    for ops in steps {
        let deps = match out.last() {
            Some(c) => vec![poa_tests::hash_of(&published(), c)],
            None => l.settle(root.as_ref()).heads.clone(),
        };
        let data = l.change_at(&deps, &actor, poa_node::node::now_secs(), ops);
        let c = poa_tests::sign(&published(), &key, data);
        l.admit(&c, root.as_ref());
        out.push(c);
    }
    out
}

/// The steps by which `thief`, holding `key`, delegates itself and writes target `id`.
fn forge_steps(thief: &Member, key: &NodeKey, id: &str) -> Vec<Vec<poa_protocol::change::FlatOp>> {
    let own = delegation_by(key, thief);
    let mut t = target(id, Area::Marking, "forged", 10.0, 20.0);
    t.state = xaa();
    vec![
        vec![put_text(
            &published(),
            "delegations",
            &own.storage_key(),
            own.to_text(),
        )],
        vec![put(&published(), "targets", &target_key(id, 1), &t)],
    ]
}

async fn send(thief: &Member, to: &[&Member], changes: &[SignedChange]) {
    let rogue = Rogue::with_key(key_of(thief));
    for hop in to {
        rogue
            .send_as(
                hop,
                &As::state("XAB", None),
                vec![sync_frame(&published(), changes)],
            )
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_delegates_at_every_node_and_the_old_key_signs_nothing_after() {
    let homes = Homes::new();
    let (xaa_node, xab_node, xrb, un) = federation(&homes).await;
    let old = state_key(&xaa_node);
    let new = NodeKey::from_seed(&[77; 32]);
    xaa_node
        .with_node(|n| n.rotate_principal_key(NodeKey::from_seed(&new.seed()), &[]))
        .unwrap();
    // A ministry delegated by the new key writes; the relay and the Secretariat take it.
    let ministry = homes.ministry("mod", "XAA").await;
    link(&xaa_node, &ministry, Some("XAA"), Some("XAA"));
    xaa_node
        .with_node(|n| n.delegate(ministry.id(), Scope::ALL, None))
        .unwrap();
    converge(&[&xaa_node, &ministry], &DocId::Draft(xaa())).await;
    ministry
        .with_node(|n| {
            n.add_target(target("T2", Area::Marking, "Mark more", 70.0, 90.0))?;
            n.publish_target("T2")
        })
        .unwrap();
    converge(&[&ministry, &xaa_node, &xrb, &un], &published()).await;
    for m in [&xaa_node, &xrb, &un] {
        assert_eq!(targets(m), vec!["T1/1", "T2/1"], "{}", m.label);
        let chain = m
            .with_node(|n| n.key_chain_of(&published()))
            .unwrap()
            .unwrap();
        assert_eq!(
            chain.current,
            new.node_id(),
            "{} follows the rotation",
            m.label
        );
        assert_eq!(chain.root, old.node_id());
        // And `status` says so, on every node that follows it.
        let st = m
            .with_node(|n| poa_node::status::status(n, None, 0))
            .unwrap();
        let k = st
            .keys
            .iter()
            .find(|k| k.principal == "XAA")
            .expect("XAA in status");
        assert_eq!(
            (k.retired, k.current.clone()),
            (1, new.node_id().to_string())
        );
    }
    // The old key, after the rotation, delegates XAB's node, which writes T9: void or refused
    // at every node, whichever it reaches first.
    let forged = chain(&xrb, &xab_node, forge_steps(&xab_node, &old, "T9"));
    send(&xab_node, &[&un, &xrb], &forged).await;
    converge(&[&xaa_node, &xrb, &un], &published()).await;
    for m in [&xaa_node, &xrb, &un] {
        assert_eq!(targets(m), vec!["T1/1", "T2/1"], "{} shows T9", m.label);
    }
    // The State rotates again and lets the ministry's delegation lapse: what the ministry
    // wrote stops standing everywhere. A node with no delegation is a mistake, refused.
    let err = xaa_node
        .with_node(|n| n.rotate_principal_key(NodeKey::from_seed(&[78; 32]), &[xab_node.id()]))
        .unwrap_err();
    assert!(err.to_string().contains("no delegation of"), "{err}");
    let done = xaa_node
        .with_node(|n| n.rotate_principal_key(NodeKey::from_seed(&[78; 32]), &[ministry.id()]))
        .unwrap();
    assert_eq!(done.lapsed, vec![ministry.id().to_string()]);
    converge(&[&xaa_node, &xrb, &un], &published()).await;
    for m in [&xaa_node, &xrb, &un] {
        assert_eq!(targets(m), vec!["T1/1"], "{} after the lapse", m.label);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_voids_what_the_leaked_key_signed_on_every_node() {
    let homes = Homes::new();
    let (xaa_node, xab_node, xrb, un) = federation(&homes).await;
    // The relay learnt XAA's recovery key from XAA's hello (vouched for by the State key), and
    // the Secretariat from the relay's introduction: no operator gave it to either.
    let recovery = recovery_key(&xaa_node);
    for m in [&xrb, &un] {
        let known = || recovery_known(m) == Some(recovery.node_id());
        assert!(
            wait_until(CONVERGE, known).await.is_some(),
            "{} learnt XAA's recovery key",
            m.label
        );
    }
    assert_eq!(
        recovery_known(&xab_node),
        None,
        "XAB pinned no XAA node and has no introducer"
    );
    // XAA's key leaks to XAB's node, which delegates itself, writes TX and rotates the key to
    // one of its own; the Secretariat and the relay take it, as they must: the key signed it.
    let leaked = state_key(&xaa_node);
    let thief_key = NodeKey::from_seed(&[99; 32]);
    let rotation = SignedGrant::sign(
        &leaked,
        Grant {
            kind: GrantKind::Rotation,
            principal: Principal::State(xaa()),
            node: thief_key.node_id(),
            scope: None,
            expires: None,
            issued: "2026-01-01".parse().unwrap(),
            key: leaked.node_id(),
            cutoff: Vec::new(),
            serial: 0,
            // A careful thief keeps every grant there is, so nothing looks different.
            kept: view(&xrb, &published())["delegations"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .chain([delegation_by(&leaked, &xab_node).storage_key()])
                .collect(),
            recovery: None,
        },
    );
    let mut steps = forge_steps(&xab_node, &leaked, "TX");
    steps.push(vec![put_text(
        &published(),
        "rotations",
        &rotation.storage_key(),
        rotation.to_text(),
    )]);
    let stolen = chain(&xrb, &xab_node, steps);
    send(&xab_node, &[&un, &xrb], &stolen).await;
    assert!(
        wait_until(CONVERGE, || targets(&un) == ["T1/1", "TX/1"])
            .await
            .is_some(),
        "the forgery stands at the Secretariat before the recovery"
    );
    // The State recovers with its recovery key and writes again.
    let recovered = NodeKey::from_seed(&[88; 32]);
    xaa_node
        .with_node(|n| {
            n.recover_principal_key(&recovery, NodeKey::from_seed(&recovered.seed()), &[], &[])
        })
        .unwrap();
    xaa_node
        .with_node(|n| {
            n.add_target(target("T3", Area::Marking, "Mark again", 70.0, 90.0))?;
            n.publish_target("T3")
        })
        .unwrap();
    converge(&[&xaa_node, &xrb, &un], &published()).await;
    for m in [&xaa_node, &xrb, &un] {
        assert_eq!(targets(m), vec!["T1/1", "T3/1"], "{}", m.label);
        let chain = m
            .with_node(|n| n.key_chain_of(&published()))
            .unwrap()
            .unwrap();
        assert_eq!(chain.current, recovered.node_id(), "{}", m.label);
        assert_eq!(chain.epoch, 1);
    }
    // The thief keeps signing with the leaked key after the recovery: nothing of it stands.
    let later = chain(&un, &xab_node, forge_steps(&xab_node, &leaked, "TY"));
    send(&xab_node, &[&un, &xrb], &later).await;
    converge(&[&xaa_node, &xrb, &un], &published()).await;
    for m in [&xaa_node, &xrb, &un] {
        assert_eq!(targets(m), vec!["T1/1", "T3/1"], "{}", m.label);
    }
}

/// XAA's only State-key holder is lost with its key. A new home of XAA, which no key
/// delegates, recovers with the recovery key and names the delegations to keep (the lost
/// node's and a ministry's): the relay and the Secretariat follow the new key, what the kept
/// nodes wrote still stands, and the new home writes. Before the fix the command refused the
/// recovery there ("not delegated") and wrote nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_home_recovers_a_lost_state_key_and_keeps_the_named_delegations() {
    let homes = Homes::new();
    let (xaa_node, _xab, xrb, un) = federation(&homes).await;
    let ministry = homes.ministry("ministry", "XAA").await;
    let fresh = homes.ministry("fresh", "XAA").await;
    for m in [&ministry, &fresh] {
        link(&xaa_node, m, Some("XAA"), Some("XAA"));
        link(m, &xrb, Some("XAA"), None);
    }
    delegate_all(&xaa_node, &ministry).await;
    let recovery = recovery_key(&xaa_node);
    let ready =
        || recovery_known(&fresh) == Some(recovery.node_id()) && targets(&fresh) == ["T1/1"];
    assert!(
        wait_until(CONVERGE, ready).await.is_some(),
        "the new home holds T1 and XAA's recovery key"
    );
    let lost = xaa_node.id();
    xaa_node.stop().await;

    let new_key = NodeKey::from_seed(&[77; 32]);
    let done = fresh
        .with_node(|n| {
            n.recover_principal_key(
                &recovery,
                NodeKey::from_seed(&new_key.seed()),
                &[],
                &[lost, ministry.id()],
            )
        })
        .unwrap();
    assert_eq!(done.kept, 2);
    fresh
        .with_node(|n| {
            n.add_target(target("T3", Area::Marking, "Mark again", 70.0, 90.0))?;
            n.publish_target("T3")
        })
        .unwrap();
    ministry
        .with_node(|n| {
            n.add_target(target("T4", Area::Marking, "Mark more", 10.0, 20.0))?;
            n.publish_target("T4")
        })
        .unwrap();
    let want = ["T1/1", "T3/1", "T4/1"];
    for m in [&fresh, &ministry, &xrb, &un] {
        let follows = || {
            targets(m) == want
                && m.with_node(|n| n.key_chain_of(&published()))
                    .ok()
                    .flatten()
                    .is_some_and(|c| c.current == new_key.node_id() && c.epoch == 1)
        };
        assert!(
            wait_until(CONVERGE, follows).await.is_some(),
            "{} follows the recovery and shows {want:?}: {:?}",
            m.label,
            targets(m)
        );
    }
    // A node the operator named by mistake is refused, and nothing is written.
    let stranger = NodeKey::from_seed(&[5; 32]).node_id();
    let err = fresh
        .with_node(|n| {
            n.recover_principal_key(&recovery, NodeKey::from_seed(&[78; 32]), &[], &[stranger])
        })
        .unwrap_err();
    assert!(err.to_string().contains("no delegation of"), "{err}");
}

/// The recovery key `init` wrote into the home of `first`, XAA's first node.
fn recovery_key(first: &Member) -> NodeKey {
    let path = first.with_node(|n| n.home.dir().join(poa_node::home::RECOVERY_KEY));
    NodeKey::from_seed(&read_seed(&path))
}

/// The recovery key `m` trusts for XAA, if any.
fn recovery_known(m: &Member) -> Option<poa_protocol::NodeId> {
    m.with_node(|n| {
        n.store
            .trust()
            .recovery
            .get(&Principal::State(xaa()))
            .copied()
    })
}

fn read_seed(path: &std::path::Path) -> [u8; 32] {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.trim();
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    seed
}

/// A node pinned as one of XAA's (its key may have leaked) can tell a relay XAA's State key,
/// but not choose XAA's recovery key: the relay takes a recovery key only with the State
/// key's signature over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_key_is_learnt_from_a_pinned_node_only_as_the_state_key_vouched_for_it() {
    let homes = Homes::new();
    let xaa_node = homes.state("xaa", "XAA").await;
    let relay = homes.body("xrb", "XRB", BodyKind::Regional).await;
    let root = state_key(&xaa_node);
    let honest = xaa_node
        .with_node(|n| n.store.recovery_vouch(&Principal::State(xaa())))
        .unwrap()
        .expect("XAA's first node vouches for its recovery key");
    let rogue = Rogue::new(61);
    relay
        .with_node(|n| {
            n.store.add_peer(
                &rogue.id(),
                "XAA ministry",
                None,
                Some(&Principal::State(xaa())),
                0,
            )
        })
        .unwrap();
    let recovery_here = || recovery_known(&relay);
    // Its own choice of recovery key, signed by its own key, then by nobody: ignored.
    let mine = NodeKey::from_seed(&[62; 32]);
    for vouch in [
        poa_protocol::wire::RecoveryVouch::sign(
            &NodeKey::from_seed(&[61; 32]),
            &Principal::State(xaa()),
            &mine.node_id(),
        ),
        poa_protocol::wire::RecoveryVouch {
            key: mine.node_id(),
            signature: honest.signature.clone(),
        },
    ] {
        let who = As {
            recovery: Some(vouch),
            ..As::state("XAA", Some(root.node_id()))
        };
        rogue.send_as(&relay, &who, Vec::new()).await;
        assert_eq!(
            relay.with_node(|n| n.store.trust().key(&Principal::State(xaa())).copied()),
            Some(root.node_id()),
            "the State key is learnt from the pinned node"
        );
        assert_eq!(recovery_here(), None);
    }
    // The vouch XAA's own node holds, presented by the same node: learnt.
    let who = As {
        recovery: Some(honest.clone()),
        ..As::state("XAA", Some(root.node_id()))
    };
    rogue.send_as(&relay, &who, Vec::new()).await;
    assert_eq!(recovery_here(), Some(honest.key));
}
