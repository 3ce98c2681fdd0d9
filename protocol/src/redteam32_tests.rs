//! Red-team round 32 (a helper, against cf5e93f): what a session keeps per connection for a
//! hostile pinned peer. One honest session is driven by hand; the test plays the peer. Both
//! tests failed before the fix (the third finding, an audit row per untrusted document per
//! listing, is tested on the node: `tests/tests/attacks.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::change::SignedChange;
use crate::doc::{DocId, PoolId};
use crate::id::NodeId;
use crate::ledger::{Ledger, actor_bytes};
use crate::session::{Host, Mode, Session, SessionConfig};
use crate::sign::{NodeKey, sign_change};
use crate::testing::host;
use crate::wire::{Bloom, Claim, DocHeads, DocSync, Hello, Message, PROTOCOL_VERSION};

const T0: i64 = 1_767_225_600;

fn key(i: u8) -> NodeKey {
    NodeKey::from_seed(&[i; 32])
}

fn hello_of(id: NodeId) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        node: id,
        name: "rt32".into(),
        claims: Claim::Body(
            crate::id::BodyCode::from_static("XZZ"),
            crate::id::BodyKind::Donor,
        ),
        key: None,
        recovery: None,
    }
}

/// A pool id whose creator is a key nobody here knows.
fn pool(i: u32) -> DocId {
    DocId::Pool(PoolId::new(&format!("p{i}"), &key(77).node_id()))
}

/// A made-up change hash, distinct for each (round, doc, index).
fn fake(round: u32, doc: u32, i: u32) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[..4].copy_from_slice(&round.to_be_bytes());
    h[4..8].copy_from_slice(&doc.to_be_bytes());
    h[8..12].copy_from_slice(&i.to_be_bytes());
    h[31] = 0xAB;
    h
}

/// A well-formed change of `doc` signed by the hostile key: refused (it is not a writer), and
/// the peer may not read the document with it, so nothing is applied and nothing counts.
fn junk(doc: &DocId, k: &NodeKey) -> SignedChange {
    let mut l = Ledger::new(doc);
    l.settle(None);
    let data = l.next_change(&actor_bytes(&k.node_id(), &[9; 8]), T0, Vec::new());
    let h = data.to_automerge(doc).unwrap().hash();
    SignedChange {
        data,
        signature: sign_change(k, doc, &h).to_vec(),
    }
}

fn drain(s: &mut Session) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(m) = s.poll_transmit() {
        out.push(m);
    }
    out
}

/// An honest node's Stay session with the hostile peer, past the hellos.
fn honest_session(h: &mut impl Host, me: NodeId, peer: NodeId) -> Session {
    let mut s = Session::new(peer, hello_of(me), Mode::Stay, SessionConfig::default());
    s.start(h, 0);
    s.handle(h, Message::Hello(hello_of(peer)), 0).unwrap();
    drain(&mut s);
    s
}

/// One listing from the hostile peer: a made-up summary, then `docs` pools with `heads`
/// made-up heads each (different every round); each ask answered with a junk change.
/// Returns how many asks the honest node sent.
fn hostile_listing(
    s: &mut Session,
    h: &mut impl Host,
    hostile: &NodeKey,
    round: u32,
    docs: u32,
    heads: u32,
) -> usize {
    let mut root = [0u8; 32];
    root[..4].copy_from_slice(&round.to_be_bytes());
    root[31] = 0x5A;
    s.handle(h, Message::Summary { root, docs }, 1).unwrap();
    let out = drain(s);
    assert!(
        out.iter().any(|m| matches!(m, Message::ListRequest)),
        "round {round}: {out:?}"
    );
    let offers: Vec<DocHeads> = (0..docs)
        .map(|d| DocHeads {
            doc: pool(d),
            heads: (0..heads).map(|i| fake(round, d, i)).collect(),
        })
        .collect();
    s.handle(h, Message::Offers { docs: offers }, 1).unwrap();
    let asks: Vec<DocId> = drain(s)
        .into_iter()
        .filter_map(|m| match m {
            Message::Sync(x) if !x.answer => Some(x.doc),
            _ => None,
        })
        .collect();
    for doc in &asks {
        let answer = DocSync {
            doc: doc.clone(),
            heads: Vec::new(),
            shared: Vec::new(),
            have: Bloom::default(),
            need: Vec::new(),
            changes: vec![junk(doc, hostile)],
            answer: true,
        };
        s.handle(h, Message::Sync(answer), 1).unwrap();
    }
    drain(s);
    asks.len()
}

/// **Unbounded state per connection.** Every ask the peer's answer does not justify is
/// remembered in `ask_refused` as (document, the heads the peer listed), for the rest of the
/// connection, with no bound: the peer lists the same few pools again and again, each time
/// under fresh made-up heads (up to 1,024 per document), and answers every ask with one
/// change it may not push (refused silently: nothing is applied, so nothing counts against
/// it). Each listing leaves its every head behind in the honest node's memory.
#[test]
fn rt32_a_refused_asks_are_remembered_without_bound() {
    let (me, hostile) = (key(1), key(2));
    let mut h = host(None, &[]);
    let mut s = honest_session(&mut h, me.node_id(), hostile.node_id());
    let (docs, heads) = (8u32, 1024u32);
    let size = |s: &Session| format!("{s:?}").len();
    for round in 0..5 {
        assert_eq!(
            hostile_listing(&mut s, &mut h, &hostile, round, docs, heads),
            8
        );
    }
    let early = size(&s);
    for round in 5..40 {
        assert_eq!(
            hostile_listing(&mut s, &mut h, &hostile, round, docs, heads),
            8
        );
    }
    let late = size(&s);
    // Every one of the 40 × 8 (document, 1,024 heads) pairs is still held: listed again at any
    // earlier round's heads, none is asked for.
    let mut still_refused = 0;
    for round in 0..40 {
        let mut root = [0u8; 32];
        root[..4].copy_from_slice(&(1000u32 + round).to_be_bytes());
        s.handle(&mut h, Message::Summary { root, docs }, 2)
            .unwrap();
        drain(&mut s);
        let offers: Vec<DocHeads> = (0..docs)
            .map(|d| DocHeads {
                doc: pool(d),
                heads: (0..heads).map(|i| fake(round, d, i)).collect(),
            })
            .collect();
        s.handle(&mut h, Message::Offers { docs: offers }, 2)
            .unwrap();
        let asked = drain(&mut s)
            .iter()
            .filter(|m| matches!(m, Message::Sync(_)))
            .count();
        still_refused += docs as usize - asked;
        // (nothing to answer: no ask went)
    }
    let retained = still_refused * heads as usize * 32;
    eprintln!(
        "session Debug size after 5 listings: {early} bytes, after 40: {late} bytes; \
         (document, heads) refusals still held: {still_refused} (≈{retained} bytes of heads)"
    );
    assert!(
        late < 2 * early,
        "the session's memory grows with every hostile listing: {early} bytes of state after 5 \
         listings, {late} after 40; {still_refused} refused (document, 1,024-heads) pairs are \
         kept for the connection (≈{} KiB of heads), and nothing bounds them",
        retained / 1024
    );
}

/// **Unbounded state per peer, for the process.** A `SyncIdle` about a document the peer
/// named and this node does not hold goes through the one send path, which records every
/// document a message names in `revealed`, the set the node's engine merges into its
/// per-peer record for good (`node/src/sync.rs`, `engine.revealed`). A peer that sends `Sync`s
/// about made-up pool ids grows that set by one id per 100-byte message, and the set claims
/// this node "named" documents to the peer that it has never held.
#[test]
fn rt32_b_made_up_documents_the_peer_names_are_recorded_as_revealed() {
    let (me, hostile) = (key(1), key(2));
    let mut h = host(None, &[]);
    let mut s = honest_session(&mut h, me.node_id(), hostile.node_id());
    for i in 0..5_000 {
        let sync = DocSync {
            doc: pool(i),
            heads: Vec::new(),
            shared: Vec::new(),
            have: Bloom::default(),
            need: Vec::new(),
            changes: Vec::new(),
            answer: false,
        };
        s.handle(&mut h, Message::Sync(sync), 1).unwrap();
        drain(&mut s);
    }
    assert!(h.ledgers.is_empty());
    assert!(
        s.revealed().len() <= h.ledgers.len(),
        "the session records {} documents as named to the peer, none of them held here (each \
         a made-up id the peer sent; the engine keeps them per peer until restart)",
        s.revealed().len()
    );
}
