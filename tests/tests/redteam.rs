//! Attacks from the second review, over real QUIC and SQLite: each test shows the attack now
//! fails (each failed on the code before its fix).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use poa_node::federation::wait_until;
use poa_protocol::doc::DocId;
use poa_protocol::model::Area;
use poa_protocol::wire::{self, Bloom, DocHeads, DocSync, Message};
use poa_protocol::{BodyKind, Principal};
use poa_tests::rogue::{As, Rogue, frame};
use poa_tests::{CONVERGE, Homes, heads, principal_key, target, trust};

fn xaa() -> poa_protocol::StateCode {
    "XAA".parse().unwrap()
}

/// Reads messages from `recv` until `want` matches one (or `secs` pass); returns all read.
async fn read_until(
    recv: &mut quinn::RecvStream,
    buf: &mut wire::FrameBuffer,
    secs: u64,
    mut want: impl FnMut(&Message) -> bool,
) -> (Vec<Message>, bool) {
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        while let Ok(Some(m)) = buf.next_message() {
            let hit = want(&m);
            got.push(m);
            if hit {
                return (got, true);
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return (got, false);
        }
        match tokio::time::timeout(left, recv.read(&mut chunk)).await {
            Ok(Ok(Some(n))) => buf.push(&chunk[..n]),
            _ => return (got, false),
        }
    }
}

/// The stale-ask leak against a real node over QUIC. V is a regional body's node that trusts
/// XAA's key; a donor D (pinned at V, in no share list) lists `state/XAA` to V before V holds
/// it, so V asks D for it; D answers `SyncIdle`, and keeps the connection open. XAA then shares
/// its published document with V only, and V receives it from XAA. D sends an empty `Sync`
/// about `state/XAA`: V used to answer with the whole document; it answers `SyncIdle`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redteam_stale_asked_leaks_a_published_document_to_a_donor() {
    let homes = Homes::new();
    let state = homes.state("xaa", "XAA").await;
    let v = homes.body("v", "XRB", BodyKind::Regional).await;
    let donor = Rogue::new(77);
    let doc = DocId::State(xaa());
    // V pins the donor (no address: it only accepts it) and trusts XAA's key, as its operator
    // would with `poa-node trust`.
    let did = donor.id();
    v.with_node(|n| {
        n.store
            .add_peer(&did, "donor", None, None, poa_node::node::now_secs())
    })
    .unwrap();
    trust(&v, Principal::State(xaa()), principal_key(&state));
    // XAA writes and publishes a target; it is shared with V only (not yet: V is not linked).
    let vid = v.id();
    state
        .with_node(|n| {
            n.add_target(target("T1", Area::Marking, "Secret SALW plan", 40.0, 70.0))?;
            n.publish_target("T1")?;
            n.share(&doc, &[vid], false)
        })
        .unwrap();

    // The donor connects, gets V's listing request, lists state/XAA with made-up heads.
    let (_conn, mut send, mut recv) = donor.connect(&v, &As::donor()).await;
    let mut buf = wire::FrameBuffer::default();
    send.write_all(&frame(&Message::Summary {
        root: [0xAB; 32],
        docs: 1,
    }))
    .await
    .unwrap();
    let (_, ok) = read_until(&mut recv, &mut buf, 10, |m| {
        matches!(m, Message::ListRequest)
    })
    .await;
    assert!(ok, "V asks for the donor's listing");
    send.write_all(&frame(&Message::Offers {
        docs: vec![DocHeads {
            doc: doc.clone(),
            heads: vec![[0xEE; 32]],
        }],
    }))
    .await
    .unwrap();
    let (_, ok) = read_until(
        &mut recv,
        &mut buf,
        10,
        |m| matches!(m, Message::Sync(s) if s.doc == doc),
    )
    .await;
    assert!(ok, "V asks the donor for state/XAA");
    send.write_all(&frame(&Message::SyncIdle { doc: doc.clone() }))
        .await
        .unwrap();

    // Now XAA and V link, and V receives XAA's published document (shared with V).
    poa_tests::link(&state, &v, Some("XAA"), None);
    let got = wait_until(CONVERGE, || !heads(&v, &doc).is_empty()).await;
    assert!(got.is_some(), "V receives state/XAA");
    let may_read = v.with_node(|n| poa_node::host::can_read(n, &did, &doc));
    assert!(!may_read, "the donor may not read state/XAA at V");

    // The donor asks as a node holding nothing would.
    send.write_all(&frame(&Message::Sync(DocSync {
        doc: doc.clone(),
        heads: vec![],
        shared: vec![],
        have: Bloom::default(),
        need: vec![],
        changes: vec![],
        answer: false,
    })))
    .await
    .unwrap();
    let (msgs, ok) = read_until(
        &mut recv,
        &mut buf,
        10,
        |m| matches!(m, Message::SyncIdle { doc: d } if *d == doc),
    )
    .await;
    assert!(ok, "V answers the donor SyncIdle about state/XAA: {msgs:?}");
    let leaked: Vec<_> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Sync(s) if s.doc == doc => Some(s.changes.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(leaked.is_empty(), "state/XAA's changes reached the donor");
}

/// Revocation did not cut off reading: the State's key-holding node revoked ministry node M
/// (its key leaked), and kept sending M its *draft* on every sync, because the read rule
/// looked only at the pin. A node its State revoked is no longer one of its own: the draft
/// written after the revocation does not reach it, while a public record written after it
/// (which anyone may read) does, so the sync that could have carried the draft took place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redteam_revoked_ministry_keeps_receiving_drafts() {
    let homes = Homes::new();
    let moi = homes.state("moi", "XAA").await;
    let m = homes.ministry("m", "XAA").await;
    poa_tests::link(&moi, &m, Some("XAA"), Some("XAA"));
    poa_tests::delegate_all(&moi, &m).await;
    let mid = m.id();
    moi.with_node(|n| n.revoke(mid)).unwrap();
    let draft = DocId::Draft(xaa());
    // ... and after it, the State drafts a sensitive target, then publishes a public one.
    assert!(!moi.with_node(|n| poa_node::host::can_read(n, &mid, &draft)));
    let published = DocId::State(xaa());
    moi.with_node(|n| {
        n.add_target(target(
            "T2",
            Area::Stockpile,
            "Depot locations, after revocation",
            1.0,
            2.0,
        ))?;
        n.add_target(target("T3", Area::Marking, "Mark all SALW", 1.0, 2.0))?;
        n.publish_target("T3")?;
        n.share(&published, &[], true)
    })
    .unwrap();
    let got = wait_until(CONVERGE, || {
        m.with_node(|n| n.state_data(&published))
            .map(|d| d.latest("T3").is_some())
            .unwrap_or(false)
    })
    .await;
    assert!(got.is_some(), "the public target reached M");
    let leaked = m
        .with_node(|n| n.state_data(&draft))
        .map(|d| d.latest("T2").is_some())
        .unwrap_or(false);
    assert!(
        !leaked,
        "the revoked node received the post-revocation draft"
    );
}

/// CPU amplification that froze the whole node. A pinned donor (it may read the State's public
/// document) parks just under the bound of changes whose dependencies do not exist (each
/// validly signed by its own key). Then every tiny `Sync` with one change made the victim
/// unpark and re-apply all of them under its node lock. A parked change is now tried again
/// only when a dependency it waits for arrives: a frame with one change costs one change's
/// work (measured as what the apply tried, not as time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redteam_parked_changes_amplify_tiny_frames_into_node_wide_stalls() {
    use poa_node::host::{HostEvents, NodeHost, Parked};
    use poa_protocol::ledger::actor_bytes;
    use poa_protocol::session::Host;
    use poa_tests::{put_text, sign};
    let homes = Homes::new();
    let state = homes.state("xaa", "XAA").await;
    let donor = Rogue::new(78);
    let doc = DocId::State(xaa());
    let did = donor.id();
    state
        .with_node(|n| {
            n.add_target(target("T1", Area::Marking, "Mark SALW", 40.0, 70.0))?;
            n.publish_target("T1")?;
            n.share(&doc, &[], true)
        })
        .unwrap();
    state
        .with_node(|n| {
            n.store
                .add_peer(&did, "donor", None, None, poa_node::node::now_secs())
        })
        .unwrap();
    // Changes by the donor's own key, each waiting on a dependency nobody has.
    let n_parked = 2_000usize;
    let changes: Vec<_> = (0..n_parked)
        .map(|i| {
            let mut dep = [0u8; 32];
            dep[..8].copy_from_slice(&(i as u64).to_be_bytes());
            dep[31] = 0x5A;
            let data = poa_protocol::change::ChangeData {
                actor: actor_bytes(&did, &[1; 8]),
                seq: 2,
                start_op: 10,
                time: 1_767_225_600,
                message: None,
                deps: vec![dep],
                ops: vec![put_text(&doc, "needs", &format!("N{i}"), "1".into())],
            };
            sign(&doc, &donor.key, data)
        })
        .collect();
    let mut parked = Parked::default();
    let mut events = HostEvents::default();
    state.with_node(|n| {
        let mut host = NodeHost {
            node: n,
            parked: &mut parked,
            events: &mut events,
        };
        let first = host.apply(&did, &doc, changes.clone(), false);
        assert!(first.allowed && first.fatal.is_none(), "{first:?}");
        assert_eq!(first.waiting, n_parked);
        // Ten tiny frames, each a copy of one parked change: each tries that one change.
        for _ in 0..10 {
            let again = host.apply(&did, &doc, vec![changes[0].clone()], false);
            assert_eq!(again.waiting, 1, "one change sent, {} tried", again.waiting);
        }
    });
    assert_eq!(parked.len(), n_parked);
}
