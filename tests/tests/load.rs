//! Hostile load over real QUIC, measured on this process's memory (the victim runs in it):
//! many connections from one pinned peer, each holding a frame it never finishes; many
//! clients killed in the middle of a sync. One test, so nothing else runs beside it while it
//! measures.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use poa_node::federation::wait_until;
use poa_node::home::InitOptions;
use poa_node::sync::{EngineConfig, MAX_CONNECTIONS_PER_PEER};
use poa_protocol::BodyKind;
use poa_protocol::doc::DocId;
use poa_protocol::model::Area;
use poa_protocol::wire::{MAX_FRAME, Message};
use poa_tests::rogue::{As, Rogue, frame};
use poa_tests::{Homes, converge, link, rss_kib, target};

/// The memory a victim may grow by under each attack, in KiB: what the documented bounds
/// allow (4 connections of one peer, each with at most a frame in progress) and more, for the
/// allocator's slack.
const BOUND_KIB: u64 = 96 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_frames_and_killed_clients_cost_a_bounded_amount_of_memory() {
    let homes = Homes::new();
    let config = EngineConfig {
        frame_deadline: Duration::from_secs(3),
        ..poa_tests::config()
    };
    let victim = homes
        .start(
            "victim",
            &InitOptions::state("XAA".parse().unwrap(), "victim"),
            config,
        )
        .await;
    let witness = homes.body("witness", "UNODA", BodyKind::Secretariat).await;
    link(&victim, &witness, Some("XAA"), None);
    let doc = DocId::State("XAA".parse().unwrap());
    let witness_id = witness.id();
    victim
        .with_node(|n| {
            n.add_target(target("T1", Area::Marking, "Mark SALW", 40.0, 70.0))?;
            n.publish_target("T1")?;
            n.share(&doc, &[witness_id], false)
        })
        .unwrap();
    converge(&[&victim, &witness], &doc).await;
    let rogue = std::sync::Arc::new(Rogue::new(90));
    let id = rogue.id();
    victim
        .with_node(|n| n.store.add_peer(&id, "rogue", None, None, 0))
        .unwrap();

    // 1. A hundred connections from one peer, each announcing a full-size frame and sending
    // 64 KiB of it, then holding the rest back.
    let before = rss_kib();
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..100 {
        let Some((conn, mut send, recv)) = rogue.try_connect(&victim, &As::donor()).await else {
            refused += 1;
            continue;
        };
        let mut f = (MAX_FRAME as u32).to_be_bytes().to_vec();
        f.extend(std::iter::repeat_n(0u8, 64 * 1024));
        if send.write_all(&f).await.is_err() {
            refused += 1;
        }
        held.push((conn, send, recv));
    }
    // Only a few are served; the others are closed with the reason.
    let closed = wait_until(Duration::from_secs(30), || {
        refused
            + held
                .iter()
                .filter(|(c, _, _)| c.close_reason().is_some())
                .count()
            >= 100 - MAX_CONNECTIONS_PER_PEER
    })
    .await;
    assert!(
        closed.is_some(),
        "more than {MAX_CONNECTIONS_PER_PEER} connections were kept"
    );
    let during = rss_kib().saturating_sub(before);
    println!(
        "stalled frames: 100 connections, {refused} refused at once, memory +{} KiB while held",
        during
    );
    assert!(
        during < BOUND_KIB,
        "memory grew by {during} KiB while frames were held"
    );
    // The frames are never completed: past the deadline, the node closes those it served.
    let dropped = wait_until(Duration::from_secs(30), || {
        !victim.engine().connected().contains(&id)
    })
    .await;
    assert!(
        dropped.is_some(),
        "stalled connections were kept past the frame deadline"
    );
    let reasons: Vec<String> = held
        .iter()
        .filter_map(|(c, _, _)| c.close_reason().map(|r| r.to_string()))
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("not completed within")),
        "{reasons:?}"
    );
    assert!(
        refused > 0
            || reasons
                .iter()
                .any(|r| r.contains("connections from one peer")),
        "{reasons:?}"
    );
    drop(held);

    // 2. Two hundred clients killed in the middle of a sync: each says hello and asks for a
    // listing, and vanishes.
    let before = rss_kib();
    for _ in 0..200 {
        let Some((conn, mut send, _recv)) = rogue.try_connect(&victim, &As::donor()).await else {
            continue;
        };
        let _ = send
            .write_all(&frame(&Message::Summary {
                root: [3; 32],
                docs: 1,
            }))
            .await;
        conn.close(0u32.into(), b"");
    }
    let gone = wait_until(Duration::from_secs(30), || {
        !victim.engine().connected().contains(&id)
    })
    .await;
    assert!(gone.is_some(), "killed clients' connections were kept");
    let after = rss_kib().saturating_sub(before);
    println!(
        "killed clients: 200 connections, memory +{after} KiB afterwards ({} B each)",
        after * 1024 / 200
    );
    assert!(
        after < BOUND_KIB,
        "memory grew by {after} KiB after 200 killed clients"
    );

    // The victim keeps syncing with the honest peer.
    victim
        .with_node(|n| {
            n.add_target(target("T2", Area::Marking, "Later", 1.0, 2.0))?;
            n.publish_target("T2")
        })
        .unwrap();
    converge(&[&victim, &witness], &doc).await;
}
