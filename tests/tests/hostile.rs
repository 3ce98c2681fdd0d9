//! Hostile peers: a pinned peer that sends a change with a bad signature, garbage frames or
//! oversized frames. The node refuses, records why, disconnects the offender, and keeps
//! syncing with everyone else.

#![allow(clippy::unwrap_used)]

use poa_protocol::BodyKind;
use poa_protocol::automerge::sync::{self, SyncDoc};
use poa_protocol::automerge::transaction::Transactable;
use poa_protocol::automerge::{Automerge, ROOT, ReadDoc};
use poa_protocol::doc::{DocId, genesis};
use poa_protocol::model::Area;
use poa_protocol::sign::{NodeKey, actor_id, sign_change};
use poa_protocol::wire::{self, Claim, Hello, Message, PROTOCOL_VERSION, SyncEnvelope};
use poa_tests::rogue::Rogue;
use poa_tests::{Homes, converge, link, rejected_by_hash, target};

fn goodbye(messages: &[Message]) -> Option<String> {
    messages.iter().find_map(|m| match m {
        Message::Goodbye { reason } => Some(reason.clone()),
        _ => None,
    })
}

/// A sync envelope for `doc` carrying the genesis and one change by `key`, signed by
/// `signer` (the wrong key, for a forgery).
fn envelope_with_change(doc: &DocId, key: &NodeKey, signer: &NodeKey) -> (SyncEnvelope, String) {
    let mut am = genesis(doc);
    am.set_actor(actor_id(&key.node_id(), &[1; 8]));
    let mut tx = am.transaction();
    let pooled = match tx.get(ROOT, "pooled").unwrap() {
        Some((_, id)) => id,
        None => panic!("a pool's genesis has a pooled map"),
    };
    tx.put(&pooled, "forged", "yes").unwrap();
    let (hash, _) = tx.commit();
    let hash = hash.unwrap();
    let mut msg = Automerge::new()
        .generate_sync_message(&mut sync::State::new())
        .unwrap();
    let mut bytes = Vec::new();
    for c in am.get_changes(&[]) {
        bytes.extend_from_slice(c.raw_bytes());
    }
    msg.heads = vec![hash];
    msg.changes = sync::ChunkList::from(bytes);
    let sig = sign_change(signer, doc, &hash);
    (
        SyncEnvelope {
            doc: doc.clone(),
            message: msg.encode(),
            // One signature per change, in order; the genesis goes unsigned.
            signatures: am
                .get_changes(&[])
                .iter()
                .map(|c| {
                    if c.hash() == hash {
                        sig.to_vec()
                    } else {
                        Vec::new()
                    }
                })
                .collect(),
        },
        hash.to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_signature_does_not_verify_is_refused_and_recorded() {
    let homes = Homes::new();
    let victim = homes.body("victim", "XRB", BodyKind::Regional).await;
    let rogue = Rogue::new(66);
    let rogue_id = rogue.id();
    victim
        .with_node(|n| n.store.add_peer(&rogue_id, "rogue", None, None, 0))
        .unwrap();
    let doc: DocId = "pool/xanadu".parse().unwrap();
    // The change claims the rogue's actor but is signed by another key.
    let (env, hash) = envelope_with_change(&doc, &rogue.key, &NodeKey::from_seed(&[67; 32]));
    let frame = wire::encode_frame(&Message::Sync(env)).unwrap();
    let _ = rogue.send_raw(&victim, vec![frame]).await;

    rejected_by_hash(&victim, &hash).await;
    let row = victim.with_node(|n| {
        n.store
            .audit(0)
            .unwrap()
            .into_iter()
            .find(|r| r.event == "rejected")
            .unwrap()
    });
    assert!(row.detail.contains("signature does not verify"), "{row:?}");
    assert_eq!(row.peer.as_deref(), Some(rogue_id.to_string().as_str()));
    // Not applied: the document holds only its genesis, if anything.
    let forged = victim.with_node(|n| {
        n.document(&doc)
            .map(|d| poa_protocol::doc::document_json(&d, None)["pooled"]["forged"].clone())
            .unwrap_or(serde_json::Value::Null)
    });
    assert!(forged.is_null(), "the forged change was applied");
    let invalid = victim.with_node(|n| n.store.peers().unwrap()[0].invalid_changes);
    assert_eq!(invalid, 1);
}

async fn hostile_frames_disconnect_the_sender_only(frames: Vec<Vec<u8>>, expect: &str) {
    let homes = Homes::new();
    let victim = homes.state("victim", "XAA").await;
    let honest = homes.body("honest", "UNODA", BodyKind::Secretariat).await;
    link(&victim, &honest, Some("XAA"), None);
    let rogue = Rogue::new(70);
    let rogue_id = rogue.id();
    victim
        .with_node(|n| n.store.add_peer(&rogue_id, "rogue", None, None, 0))
        .unwrap();

    let (got, ended) = rogue.send_raw(&victim, frames).await;
    let reason = goodbye(&got).unwrap_or_default();
    assert!(
        reason.contains(expect) || ended.contains(expect),
        "expected '{expect}', got goodbye '{reason}', close '{ended}'"
    );

    // The victim keeps syncing with the honest peer.
    let honest_id = honest.id();
    victim
        .with_node(|n| {
            n.add_target(target("T1", Area::Marking, "Mark SALW", 40.0, 70.0))?;
            n.publish_target("T1")?;
            n.share(&DocId::State("XAA".parse().unwrap()), &[honest_id], false)
        })
        .unwrap();
    converge(&[&victim, &honest], &DocId::State("XAA".parse().unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_disconnects_the_sender_and_the_node_keeps_syncing() {
    let mut garbage = 5u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[250, 251, 252, 253, 254]);
    hostile_frames_disconnect_the_sender_only(vec![garbage], "malformed frame").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_disconnects_the_sender_and_the_node_keeps_syncing() {
    let huge = u32::MAX.to_be_bytes().to_vec();
    hostile_frames_disconnect_the_sender_only(vec![huge], "exceeds the maximum").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_hello_naming_another_key_is_refused() {
    let homes = Homes::new();
    let victim = homes.state("victim", "XAA").await;
    let rogue = Rogue::new(71);
    let rogue_id = rogue.id();
    victim
        .with_node(|n| n.store.add_peer(&rogue_id, "rogue", None, None, 0))
        .unwrap();
    // A second hello naming a node other than the one TLS proved.
    let lie = Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        node: NodeKey::from_seed(&[72; 32]).node_id(),
        name: "liar".into(),
        claims: Claim::State("XAA".parse().unwrap()),
        state_key: None,
    });
    let (got, ended) = rogue
        .send_raw(&victim, vec![wire::encode_frame(&lie).unwrap()])
        .await;
    let reason = goodbye(&got).unwrap_or_default();
    assert!(
        reason.contains("but TLS proved") || ended.contains("but TLS proved"),
        "goodbye '{reason}', close '{ended}'"
    );
}
