//! The attacks of the first review, each replayed over real QUIC against real nodes by a pinned
//! peer speaking the protocol by hand (`poa_tests::rogue`), named after its finding. Each
//! asserts that the attack's effect is absent on every honest node and that the honest nodes
//! keep syncing. (Gate-level findings are in `protocol/src/ledger_tests.rs`.)

#![allow(clippy::unwrap_used)]

use poa_node::federation::{Member, wait_until};
use poa_protocol::authority::{Grant, GrantKind, Scope, SignedGrant};
use poa_protocol::doc::{DocId, target_key};
use poa_protocol::model::Area;
use poa_protocol::sign::NodeKey;
use poa_protocol::wire::{
    Bloom, Claim, DocHeads, DocSync, Hello, MAX_FRAME, Message, PROTOCOL_VERSION,
};
use poa_protocol::{BodyKind, Principal, StateCode};
use poa_tests::rogue::{As, Rogue, frame, goodbye, sync_frame};
use poa_tests::{
    CONVERGE, Homes, converge, craft, hash_of, heads, holds, key_of, link, principal_key, put,
    refused_by, target, trust, view,
};

fn xaa() -> StateCode {
    "XAA".parse().unwrap()
}

fn published() -> DocId {
    DocId::State(xaa())
}

/// XAA's node publishes T1 publicly; the Secretariat pins it as XAA's node and syncs; a rogue
/// is pinned by both as a donor (so it may read what is public).
async fn victim_and_witness(homes: &Homes, seed: u8) -> (Member, Member, Rogue) {
    let victim = homes.state("victim", "XAA").await;
    let witness = homes.body("witness", "UNODA", BodyKind::Secretariat).await;
    link(&victim, &witness, Some("XAA"), None);
    victim
        .with_node(|n| {
            n.add_target(target("T1", Area::Marking, "Mark SALW", 40.0, 70.0))?;
            n.publish_target("T1")?;
            n.share(&published(), &[], true)
        })
        .unwrap();
    converge(&[&victim, &witness], &published()).await;
    let rogue = Rogue::new(seed);
    let id = rogue.id();
    for m in [&victim, &witness] {
        m.with_node(|n| n.store.add_peer(&id, "rogue", None, None, 0))
            .unwrap();
    }
    (victim, witness, rogue)
}

/// The victim still syncs: a new target reaches the witness.
async fn still_syncs(victim: &Member, witness: &Member, id: &str) {
    victim
        .with_node(|n| {
            n.add_target(target(id, Area::Marking, "Later", 1.0, 2.0))?;
            n.publish_target(id)
        })
        .unwrap();
    converge(&[victim, witness], &published()).await;
    let ids: Vec<String> = witness
        .with_node(|n| n.target_views(Some(xaa())))
        .unwrap()
        .iter()
        .map(|v| v.current().target.id.clone())
        .collect();
    assert!(ids.contains(&id.to_string()), "{ids:?}");
}

/// C1: no node other than a pool's creator can claim, squat or coordinate it, nor write a
/// body's offers: the ids are bound to keys, and the audience never grows by such a write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_nobody_claims_a_pool_or_a_bodys_offers_document() {
    let homes = Homes::new();
    let xrb = homes.body("xrb", "XRB", BodyKind::Regional).await;
    let un = homes.body("un", "UNODA", BodyKind::Secretariat).await;
    let donor = homes.body("donor", "XZZ", BodyKind::Donor).await;
    link(&xrb, &un, None, None);
    un.pin_as(&donor, Some(Principal::Body("XZZ".parse().unwrap())))
        .unwrap();
    donor.pin(&un, None).unwrap();
    let un_id = un.id();
    let pool = xrb
        .with_node(|n| {
            let p = n.pool_create("xanadu", "Xanadu", None)?;
            n.pool_observe("xanadu", un_id, "UN Secretariat")?;
            Ok::<_, poa_node::NodeError>(p)
        })
        .unwrap();
    converge(&[&xrb, &un], &pool).await;
    donor
        .with_node(|n| {
            n.add_offer(poa_node::demo::dataset().unwrap().donor.offers[0].clone())?;
            n.publish_offers(None)?;
            let d = n.offers_doc();
            n.share(&d, &[], true)
        })
        .unwrap();
    let offers: DocId = "offers/XZZ".parse().unwrap();
    converge(&[&donor, &un], &offers).await;

    // The attacker is the observer's own key turned hostile: it may read the pool, so its
    // changes reach the gate. Building on the genesis alone, it names itself in the charter
    // and adds itself as an observer; it rewrites the donor's offer and shares it.
    let attacker = Rogue::with_key(key_of(&un));
    let attacker_key = key_of(&un);
    let genesis = vec![poa_protocol::doc::genesis_hash(&pool)];
    let charter = craft(
        &un,
        &pool,
        &attacker_key,
        Some(&genesis),
        vec![put(
            &pool,
            "charter",
            "charter",
            &serde_json::json!({"name": "Mine", "node": un_id.to_string(), "coordinator": "UN", "created": "2026-01-01"}),
        )],
    );
    let observer = craft(
        &un,
        &pool,
        &attacker_key,
        None,
        vec![put(
            &pool,
            "observers",
            &NodeKey::from_seed(&[99; 32]).node_id().to_string(),
            &serde_json::json!({"name": "me", "added": "2026-01-01"}),
        )],
    );
    let offer = craft(
        &un,
        &offers,
        &attacker_key,
        None,
        vec![put(&offers, "readers", "*", &true)],
    );
    let who = As {
        claims: Claim::Body("UNODA".parse().unwrap(), BodyKind::Secretariat),
        key: None,
        recovery: None,
    };
    attacker
        .send_as(
            &xrb,
            &who,
            vec![
                sync_frame(&pool, std::slice::from_ref(&charter)),
                sync_frame(&pool, std::slice::from_ref(&observer)),
            ],
        )
        .await;
    for c in [&charter, &observer] {
        let why = refused_by(&xrb, &hash_of(&pool, c)).await;
        assert!(why.contains("neither the coordinator"), "{why}");
    }
    let donor_key = key_of(&donor);
    let _ = donor_key;
    Rogue::with_key(key_of(&un))
        .send_as(
            &donor,
            &who,
            vec![sync_frame(&offers, std::slice::from_ref(&offer))],
        )
        .await;
    let why = refused_by(&donor, &hash_of(&offers, &offer)).await;
    assert!(why.contains("no delegation of XZZ's body key"), "{why}");
    // The pool still has one coordinator and one observer, everywhere.
    converge(&[&xrb, &un], &pool).await;
    for m in [&xrb, &un] {
        let p = m.with_node(|n| n.pool("xanadu")).unwrap();
        assert_eq!(p.owner.into_iter().collect::<Vec<_>>(), [xrb.id()]);
        assert_eq!(p.observers.keys().copied().collect::<Vec<_>>(), [un_id]);
    }
    // A pool "xanadu" made by another node is another document, not this one.
    assert_ne!(
        DocId::Pool(poa_protocol::doc::PoolId::new("xanadu", &un_id)),
        pool
    );
}

/// C2: a change with an operation counter at the top of its range, or with no operations,
/// from a peer with no rights or with them, is refused before it is stored or parsed by
/// Automerge; the document keeps taking writes and syncing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2_changes_breaking_counters_or_empty_are_refused_and_the_document_keeps_working() {
    let homes = Homes::new();
    let (victim, witness, rogue) = victim_and_witness(&homes, 80).await;
    let base = craft(
        &victim,
        &published(),
        &rogue.key,
        None,
        vec![put(&published(), "readers", "*", &true)],
    );
    let mut overflow = base.data.clone();
    overflow.start_op = u32::MAX as u64;
    let mut empty = base.data.clone();
    empty.ops.clear();
    // The victim's own key, as if stolen, for the same shapes: refused all the same.
    let own = key_of(&victim);
    let mut own_overflow = base.data.clone();
    own_overflow.actor = poa_protocol::ledger::actor_bytes(&own.node_id(), &[0x77; 8]);
    own_overflow.start_op = u32::MAX as u64;
    let frames: Vec<Vec<u8>> = [
        poa_tests::sign(&published(), &rogue.key, overflow),
        poa_tests::sign(&published(), &rogue.key, empty),
        poa_tests::sign(&published(), &own, own_overflow),
    ]
    .iter()
    .map(|c| sync_frame(&published(), std::slice::from_ref(c)))
    .collect();
    // And a draft: the rogue may not even be heard about it.
    let draft = DocId::Draft(xaa());
    let mut frames = frames;
    frames.push(sync_frame(&draft, std::slice::from_ref(&base)));
    let (answers, _) = rogue.send_raw(&victim, frames).await;
    assert!(
        answers
            .iter()
            .any(|m| matches!(m, Message::SyncIdle { doc } if *doc == draft)),
        "{answers:?}"
    );
    let rejected = victim.with_node(|n| {
        n.store
            .audit(0)
            .unwrap()
            .into_iter()
            .filter(|r| r.event == "rejected")
            .map(|r| r.detail)
            .collect::<Vec<_>>()
    });
    assert!(
        rejected
            .iter()
            .any(|r| r.contains("first operation counter")),
        "{rejected:?}"
    );
    assert!(
        rejected.iter().any(|r| r.contains("no operations")),
        "{rejected:?}"
    );
    assert!(heads(&victim, &draft).len() <= 1);
    still_syncs(&victim, &witness, "T2").await;
}

/// H3: a State's key is never learnt from a document's content nor from whoever speaks first.
/// A relay that pins none of XAB's nodes does not take a forged state/XAB; once its operator
/// pins the real XAB node, the real document arrives and is the only one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h3_a_first_copy_from_anyone_does_not_fix_a_states_key() {
    let homes = Homes::new();
    let relay = homes.body("relay", "XRB", BodyKind::Regional).await;
    let xab = homes.state("xab", "XAB").await;
    let xab_doc = DocId::State("XAB".parse().unwrap());
    // The forger makes its own "XAB" with a State key of its own and offers it first.
    let forger = Rogue::new(81);
    let fake_state = NodeKey::from_seed(&[82; 32]);
    let grant = SignedGrant::sign(
        &fake_state,
        Grant {
            kind: GrantKind::Delegation,
            principal: Principal::State("XAB".parse().unwrap()),
            node: forger.id(),
            scope: Some(Scope::ALL),
            expires: None,
            issued: "2026-01-01".parse().unwrap(),
            key: fake_state.node_id(),
            cutoff: vec![],
            serial: 0,
            kept: Vec::new(),
            recovery: None,
        },
    );
    let mut l = poa_protocol::ledger::Ledger::new(&xab_doc);
    l.settle(Some(&fake_state.node_id()));
    let actor = poa_protocol::ledger::actor_bytes(&forger.id(), &[1; 8]);
    let data = l.next_change(
        &actor,
        1_767_225_600,
        vec![poa_tests::put_text(
            &xab_doc,
            "delegations",
            &grant.storage_key(),
            grant.to_text(),
        )],
    );
    let forged = poa_tests::sign(&xab_doc, &forger.key, data);
    let id = forger.id();
    relay
        .with_node(|n| n.store.add_peer(&id, "forger", None, None, 0))
        .unwrap();
    forger
        .deliver(
            &relay,
            &As::state("XAB", Some(fake_state.node_id())),
            &xab_doc,
            std::slice::from_ref(&forged),
        )
        .await;
    assert!(
        heads(&relay, &xab_doc).is_empty(),
        "the forged copy was taken"
    );
    assert!(relay.with_node(|n| {
        n.store
            .trust()
            .key(&Principal::State("XAB".parse().unwrap()))
            .is_none()
    }));
    let noted = relay.with_node(|n| {
        n.store
            .audit(0)
            .unwrap()
            .iter()
            .any(|r| r.event == "trust-needed")
    });
    assert!(noted, "the relay did not say it needs a key");
    // The operator pins XAB's real node: its key is learnt from it, and its document taken.
    link(&xab, &relay, Some("XAB"), None);
    xab.with_node(|n| {
        n.add_target(target("T1", Area::Tracing, "Trace", 12.0, 25.0))?;
        n.publish_target("T1")?;
        n.share(&xab_doc, &[relay.id()], false)
    })
    .unwrap();
    converge(&[&xab, &relay], &xab_doc).await;
    let real = principal_key(&xab);
    assert_eq!(
        relay.with_node(|n| n
            .store
            .trust()
            .key(&Principal::State("XAB".parse().unwrap()))
            .copied()),
        Some(real)
    );
    // The forger tries again: its changes are not even stored now.
    forger
        .send_as(
            &relay,
            &As::state("XAB", None),
            vec![sync_frame(&xab_doc, std::slice::from_ref(&forged))],
        )
        .await;
    assert!(!holds(&relay, &xab_doc, &hash_of(&xab_doc, &forged)));
}

/// H4: a sync message whose Bloom filter claims more entries than its bits hold is refused
/// when decoded, before anything allocates for it; the sender is disconnected with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h4_a_bloom_filter_lying_about_its_size_is_refused_without_allocating() {
    let homes = Homes::new();
    let (victim, witness, rogue) = victim_and_witness(&homes, 83).await;
    let lying = Message::Sync(DocSync {
        doc: published(),
        heads: vec![],
        shared: vec![],
        have: Bloom {
            entries: u32::MAX,
            bits: vec![0xff; 64],
        },
        need: vec![],
        changes: vec![],
        answer: false,
    });
    let before = poa_tests::rss_kib();
    let (answers, ended) = rogue.send_raw(&victim, vec![frame(&lying)]).await;
    let why = goodbye(&answers).unwrap_or(ended);
    assert!(why.contains("Bloom filter"), "{why}");
    let grew = poa_tests::rss_kib().saturating_sub(before);
    assert!(grew < 64 * 1024, "memory grew by {grew} KiB");
    still_syncs(&victim, &witness, "T2").await;
}

/// H5: no byte a peer sends reaches a decompressor or Automerge's parser: changes travel as
/// explicit operations with bounded sizes. A frame announcing more than the maximum is refused
/// from its length alone, and a change with a value over the bound is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h5_no_peer_bytes_reach_an_inflater_and_large_values_are_refused() {
    let homes = Homes::new();
    let (victim, witness, rogue) = victim_and_witness(&homes, 84).await;
    let huge = ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
    let (answers, ended) = rogue.send_raw(&victim, vec![huge]).await;
    let why = goodbye(&answers).unwrap_or(ended);
    assert!(why.contains("exceeds the maximum"), "{why}");
    let big = craft(
        &victim,
        &published(),
        &rogue.key,
        None,
        vec![poa_tests::put_text(
            &published(),
            "readers",
            "x",
            format!("\"{}\"", "z".repeat(poa_protocol::change::MAX_VALUE + 1)),
        )],
    );
    let before = poa_tests::rss_kib();
    rogue
        .send_raw(&victim, vec![sync_frame(&published(), &[big])])
        .await;
    let rejected = victim.with_node(|n| {
        n.store
            .audit(0)
            .unwrap()
            .into_iter()
            .any(|r| r.event == "rejected" && r.detail.contains("is not JSON"))
    });
    assert!(rejected);
    assert!(poa_tests::rss_kib().saturating_sub(before) < 64 * 1024);
    still_syncs(&victim, &witness, "T2").await;
}

/// M1: a State's changes that reached a relay before the relay trusted its key are not locked
/// out: nothing was quarantined for want of a key, and once the operator gives the key, the
/// relay lists its peers again and takes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m1_changes_offered_before_the_key_was_trusted_are_taken_once_it_is() {
    let homes = Homes::new();
    let xaa_node = homes.state("xaa", "XAA").await;
    let xrb = homes.body("xrb", "XRB", BodyKind::Regional).await;
    let un = homes.body("un", "UNODA", BodyKind::Secretariat).await;
    link(&xaa_node, &xrb, Some("XAA"), None);
    link(&xrb, &un, None, None);
    let readers = [xrb.id(), un.id()];
    xaa_node
        .with_node(|n| {
            n.add_target(target("T1", Area::Marking, "Mark SALW", 40.0, 70.0))?;
            n.publish_target("T1")?;
            n.share(&published(), &readers, false)
        })
        .unwrap();
    converge(&[&xaa_node, &xrb], &published()).await;
    // The Secretariat is offered state/XAA by XRB, but trusts no key for XAA: it takes nothing.
    let noted = wait_until(CONVERGE, || {
        un.with_node(|n| {
            n.store
                .audit(0)
                .unwrap()
                .iter()
                .any(|r| r.event == "trust-needed")
        })
    })
    .await;
    assert!(noted.is_some());
    assert!(heads(&un, &published()).is_empty());
    // Its operator gives the key: the document arrives with no new write anywhere.
    trust(&un, Principal::State(xaa()), principal_key(&xaa_node));
    converge(&[&xaa_node, &xrb, &un], &published()).await;
}

/// M2: changes waiting for dependencies are kept only once their signatures are checked, and
/// in bounded bytes per peer: an unsigned flood is refused, and a signed one that never sends
/// its dependencies gets its sender disconnected, not the node's memory filled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m2_changes_waiting_for_dependencies_are_bounded_and_signature_checked_first() {
    let homes = Homes::new();
    let (victim, witness, rogue) = victim_and_witness(&homes, 85).await;
    let chunk = |i: usize, signed: bool| {
        let mut c = craft(
            &victim,
            &published(),
            &rogue.key,
            None,
            vec![poa_tests::put_text(
                &published(),
                "readers",
                &format!("k{i}"),
                format!("\"{}\"", "v".repeat(60_000)),
            )],
        );
        c.data.deps = vec![[i as u8 + 1; 32]];
        c = poa_tests::sign(&published(), &rogue.key, c.data);
        if !signed {
            c.signature.clear();
        }
        c
    };
    let unsigned: Vec<Vec<u8>> = (0..20)
        .map(|i| sync_frame(&published(), &[chunk(i, false)]))
        .collect();
    rogue.send_raw(&victim, unsigned).await;
    assert_eq!(victim.engine().parked(), 0, "unsigned changes were parked");
    // Signed, each 60 KB, waiting for dependencies that do not exist: beyond 16 MiB the sender
    // is cut off and what it parked is let go.
    let before = poa_tests::rss_kib();
    let mut frames = Vec::new();
    for i in 0..400 {
        let c = chunk(i % 250, true);
        frames.push(sync_frame(&published(), &[c]));
    }
    let (answers, ended) = rogue.send_raw(&victim, frames).await;
    let why = goodbye(&answers).unwrap_or(ended);
    assert!(why.contains("waiting for dependencies"), "{why}");
    assert!(victim.engine().parked() < 400);
    assert!(poa_tests::rss_kib().saturating_sub(before) < 128 * 1024);
    still_syncs(&victim, &witness, "T2").await;
}

/// M7: offer lists naming invented documents make the node keep nothing for them: no rows, no
/// growth of the database beyond one digest per peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m7_offers_naming_invented_documents_leave_nothing_stored() {
    let homes = Homes::new();
    let (victim, witness, rogue) = victim_and_witness(&homes, 86).await;
    let db = victim.dir.join("poa.db");
    let size = || {
        std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(victim.dir.join("poa.db-wal"))
                .map(|m| m.len())
                .unwrap_or(0)
    };
    let before = size();
    let invented: Vec<DocHeads> = (0..30_000)
        .map(|i| DocHeads {
            doc: DocId::Pool(poa_protocol::doc::PoolId::new(
                &format!("p{i}"),
                &rogue.id(),
            )),
            heads: vec![[7; 32]],
        })
        .collect();
    let frames = vec![
        frame(&Message::Summary {
            root: [1; 32],
            docs: 30_000,
        }),
        frame(&Message::Offers { docs: invented }),
    ];
    rogue.send_raw(&victim, frames).await;
    let (held, _) = victim
        .with_node(|n| n.store.peer_offers(&rogue.id()))
        .unwrap();
    assert!(
        held.is_empty(),
        "{} rows kept for invented documents",
        held.len()
    );
    let grew = size().saturating_sub(before);
    assert!(grew < 2 << 20, "the database grew by {grew} bytes");
    still_syncs(&victim, &witness, "T2").await;
}

/// L1: the answer to a sync message about a document the peer may not read is the same
/// whether or not the node holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_the_answer_does_not_tell_whether_a_document_is_held() {
    let homes = Homes::new();
    let (victim, _witness, rogue) = victim_and_witness(&homes, 87).await;
    let held = DocId::Draft(xaa());
    let not_held = DocId::Draft("XAB".parse().unwrap());
    assert!(!heads(&victim, &held).is_empty());
    let ask = |doc: &DocId| {
        frame(&Message::Sync(DocSync {
            doc: doc.clone(),
            heads: vec![],
            shared: vec![],
            have: Bloom::default(),
            need: vec![],
            changes: vec![],
            answer: false,
        }))
    };
    let (a, _) = rogue.send_raw(&victim, vec![ask(&held)]).await;
    let (b, _) = rogue.send_raw(&victim, vec![ask(&not_held)]).await;
    let about = |msgs: &[Message], doc: &DocId| -> Vec<String> {
        msgs.iter()
            .filter(|m| m.docs().contains(&doc))
            .map(|m| m.kind().to_string())
            .collect()
    };
    assert_eq!(about(&a, &held), ["sync-idle"]);
    assert_eq!(about(&b, &not_held), ["sync-idle"]);
}

/// Frames that do not decode, or announce more than the maximum, disconnect their sender with
/// the reason, and the node keeps syncing with the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_frames_disconnect_the_sender_only() {
    let homes = Homes::new();
    let (victim, witness, rogue) = victim_and_witness(&homes, 88).await;
    let mut garbage = 5u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[250, 251, 252, 253, 254]);
    for (frames, expect) in [
        (vec![garbage], "malformed frame"),
        (vec![u32::MAX.to_be_bytes().to_vec()], "exceeds the maximum"),
    ] {
        let (got, ended) = rogue.send_raw(&victim, frames).await;
        let reason = goodbye(&got).unwrap_or_default();
        assert!(
            reason.contains(expect) || ended.contains(expect),
            "expected '{expect}', got goodbye '{reason}', close '{ended}'"
        );
    }
    still_syncs(&victim, &witness, "T2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_hello_naming_another_key_is_refused() {
    let homes = Homes::new();
    let (victim, _witness, rogue) = victim_and_witness(&homes, 89).await;
    let lie = Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        node: NodeKey::from_seed(&[72; 32]).node_id(),
        name: "liar".into(),
        claims: Claim::State(xaa()),
        key: None,
        recovery: None,
    });
    let (got, ended) = rogue.send_raw(&victim, vec![frame(&lie)]).await;
    let reason = goodbye(&got).unwrap_or_default();
    assert!(
        reason.contains("hello") || ended.contains("hello"),
        "goodbye '{reason}', close '{ended}'"
    );
}

/// A change touching a target of another area, by a node delegated only for marking, arriving
/// through a relay: held nowhere as standing, shown nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_an_out_of_scope_change_is_void_at_every_hop() {
    let homes = Homes::new();
    let (victim, witness, _rogue) = victim_and_witness(&homes, 90).await;
    let marking = homes.ministry("marking", "XAA").await;
    link(&victim, &marking, Some("XAA"), Some("XAA"));
    let marking_id = marking.id();
    victim
        .with_node(|n| n.delegate(marking_id, Scope::Areas(vec![Area::Marking]), None))
        .unwrap();
    poa_tests::wait_delegated(&victim, &marking).await;
    converge(&[&victim, &marking, &witness], &published()).await;
    let mut t = target("T9", Area::Stockpile, "Depots", 1.0, 2.0);
    t.state = xaa();
    let bad = craft(
        &witness,
        &published(),
        &key_of(&marking),
        None,
        vec![put(&published(), "targets", &target_key("T9", 1), &t)],
    );
    Rogue::with_key(key_of(&marking))
        .send_as(
            &victim,
            &As::state("XAA", None),
            vec![sync_frame(&published(), std::slice::from_ref(&bad))],
        )
        .await;
    let why = refused_by(&victim, &hash_of(&published(), &bad)).await;
    converge(&[&victim, &witness], &published()).await;
    assert!(why.contains("covers marking, not"), "{why}");
    for m in [&victim, &witness] {
        assert!(view(m, &published())["targets"].get("T9/1").is_none());
    }
}

/// A copy of an honest change with a forged signature, sent first by a pinned peer, does not
/// mark that change (its hash) rejected for good: a change built on it that arrives before
/// the real copy waits for it, and both are taken once the real copy comes. (A bad signature
/// belongs to the copy; the hash is the change's content.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_copy_does_not_make_the_real_change_or_its_descendants_rejected() {
    use poa_node::store::Source;
    let homes = Homes::new();
    let (victim, witness, rogue) = victim_and_witness(&homes, 61).await;
    let doc = published();
    let key = key_of(&victim);
    let c = craft(
        &victim,
        &doc,
        &key,
        None,
        vec![put(
            &doc,
            "targets",
            &target_key("T7", 1),
            &target("T7", Area::Marking, "Seven", 1.0, 2.0),
        )],
    );
    let ch = hash_of(&doc, &c);
    // D, on C (the victim's copy does not hold C: D is made on C's data by hand).
    let d = poa_tests::craft_after(
        &doc,
        &key,
        &c,
        vec![put(
            &doc,
            "targets",
            &target_key("T8", 1),
            &target("T8", Area::Marking, "Eight", 1.0, 2.0),
        )],
    );
    let dh = hash_of(&doc, &d);
    let mut forged = c.clone();
    forged.signature = vec![0; 64];
    let now = poa_node::node::now_secs();
    let first = witness
        .with_node(|n| {
            n.store
                .transact(|tx| tx.apply(&doc, vec![forged], Source::Peer(rogue.id()), now))
        })
        .unwrap();
    assert_eq!(first.rejected.len(), 1, "{:?}", first.rejected);
    let second = witness
        .with_node(|n| {
            n.store
                .transact(|tx| tx.apply(&doc, vec![d.clone()], Source::Peer(victim.id()), now))
        })
        .unwrap();
    assert!(second.rejected.is_empty(), "{:?}", second.rejected);
    assert_eq!(second.waiting.len(), 1, "D waits for C");
    let third = witness
        .with_node(|n| {
            n.store
                .transact(|tx| tx.apply(&doc, vec![c, d], Source::Peer(victim.id()), now))
        })
        .unwrap();
    assert_eq!(third.accepted.len(), 2, "{:?}", third.rejected);
    assert!(holds(&witness, &doc, &ch) && holds(&witness, &doc, &dh));
}

/// Red team, round 32: a pinned peer listing thousands of made-up bodies' documents, again
/// and again, wrote one `trust-needed` audit row per document per listing. Now each is noted
/// once, and at most `TRUST_NOTES` in all, then one row says the rest go unnoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_untrusted_documents_again_and_again_writes_a_bounded_audit() {
    use poa_node::host::TRUST_NOTES;
    let homes = Homes::new();
    let (victim, _witness, rogue) = victim_and_witness(&homes, 62).await;
    let rows = || {
        victim.with_node(|n| {
            n.store
                .audit(0)
                .unwrap()
                .iter()
                .filter(|r| r.event == "trust-needed")
                .count()
        })
    };
    let listing = |round: u32, from: usize, to: usize| -> Vec<Vec<u8>> {
        let mut root = [0u8; 32];
        root[..4].copy_from_slice(&round.to_be_bytes());
        let docs: Vec<DocHeads> = (from..to)
            .map(|d| DocHeads {
                doc: format!("offers/X{d:05}").parse().unwrap(),
                heads: Vec::new(),
            })
            .collect();
        vec![
            frame(&Message::Summary {
                root,
                docs: docs.len() as u32,
            }),
            frame(&Message::Offers { docs }),
        ]
    };
    let before = rows();
    let half = TRUST_NOTES / 2;
    // The same documents listed three times: each noted once.
    let frames: Vec<Vec<u8>> = (0..3).flat_map(|r| listing(r, 0, half)).collect();
    rogue.send_raw(&victim, frames).await;
    assert_eq!(rows() - before, half);
    // Ever new ones: noted up to the bound, then one row for the rest.
    let frames: Vec<Vec<u8>> = (3..6)
        .flat_map(|r| {
            let from = half + (r as usize - 3) * TRUST_NOTES;
            listing(r, from, from + TRUST_NOTES)
        })
        .collect();
    rogue.send_raw(&victim, frames).await;
    assert_eq!(rows() - before, TRUST_NOTES + 1);
}
