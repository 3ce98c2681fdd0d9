//! A pinned peer that speaks the wire protocol by hand, to send what an honest node never
//! would: forged, altered or unauthorized changes, garbage and oversized frames.

use std::sync::Arc;

use poa_node::federation::Member;
use poa_node::transport;
use poa_protocol::automerge::sync::{self, SyncDoc};
use poa_protocol::automerge::{Automerge, Change};
use poa_protocol::doc::DocId;
use poa_protocol::sign::NodeKey;
use poa_protocol::wire::{self, Claim, Hello, Message, PROTOCOL_VERSION, SyncEnvelope};
use poa_protocol::{BodyKind, NodeId};

/// A pinned peer that speaks the wire protocol by hand.
#[allow(missing_debug_implementations)]
pub struct Rogue {
    /// Its key.
    pub key: NodeKey,
    endpoint: quinn::Endpoint,
}

impl Rogue {
    /// A rogue with the key of this seed.
    pub fn new(seed: u8) -> Rogue {
        Self::with_key(NodeKey::from_seed(&[seed; 32]))
    }

    /// A rogue holding `key` (a real node's key, to act as that node).
    pub fn with_key(key: NodeKey) -> Rogue {
        let endpoint = transport::endpoint(
            ([127, 0, 0, 1], 0).into(),
            &key,
            Arc::new(std::sync::RwLock::new(Default::default())),
        )
        .expect("rogue connection");
        Rogue { key, endpoint }
    }

    /// Its NodeId.
    pub fn id(&self) -> NodeId {
        self.key.node_id()
    }

    /// Connects to `victim`, says hello, sends `frames` raw, and returns every message the
    /// victim sent back until it closed the stream, and how the connection ended.
    pub async fn send_raw(&self, victim: &Member, frames: Vec<Vec<u8>>) -> (Vec<Message>, String) {
        self.send_as(
            victim,
            Claim::Body("XZZ".parse().expect("code"), BodyKind::Donor),
            frames,
        )
        .await
    }

    /// Like [`Rogue::send_raw`], with the hello claiming `claims`.
    pub async fn send_as(
        &self,
        victim: &Member,
        claims: Claim,
        frames: Vec<Vec<u8>>,
    ) -> (Vec<Message>, String) {
        self.send_with_key(victim, claims, None, frames).await
    }

    /// Like [`Rogue::send_as`], with the hello also presenting a State key.
    pub async fn send_with_key(
        &self,
        victim: &Member,
        claims: Claim,
        state_key: Option<NodeId>,
        frames: Vec<Vec<u8>>,
    ) -> (Vec<Message>, String) {
        let cfg = transport::client_config(&self.key, victim.id()).expect("rogue connection");
        let conn = self
            .endpoint
            .connect_with(cfg, victim.addr(), "poa-node")
            .expect("rogue connection")
            .await
            .expect("rogue connection");
        let (mut send, mut recv) = conn.open_bi().await.expect("rogue connection");
        let hello = Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            node: self.id(),
            name: "rogue".into(),
            claims,
            state_key,
        });
        send.write_all(&wire::encode_frame(&hello).expect("rogue connection"))
            .await
            .expect("rogue connection");
        for f in frames {
            // The victim may already have closed: later writes may fail, which is the point.
            if send.write_all(&f).await.is_err() {
                break;
            }
        }
        // Finishing our side ends the victim's read loop, so a victim that found nothing wrong
        // closes too, and the read below ends either way.
        let _ = send.finish();
        let mut got = Vec::new();
        let mut buf = wire::FrameBuffer::default();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match recv.read(&mut chunk).await {
                Ok(Some(n)) => {
                    buf.push(&chunk[..n]);
                    while let Ok(Some(m)) = buf.next_message() {
                        got.push(m);
                    }
                }
                Ok(None) => break,
                Err(_) => break,
            }
        }
        let ended = conn.closed().await.to_string();
        (got, ended)
    }
}

/// A sync frame for `doc` carrying `changes` with the given signatures (raw bytes, so a test
/// can alter them).
pub fn sync_frame(doc: &DocId, changes: &[(Change, Vec<u8>)]) -> Vec<u8> {
    let mut msg = Automerge::new()
        .generate_sync_message(&mut sync::State::new())
        .expect("a first message");
    let mut bytes = Vec::new();
    for (c, _) in changes {
        bytes.extend_from_slice(c.raw_bytes());
    }
    msg.heads = changes.iter().map(|(c, _)| c.hash()).collect();
    // Automerge encodes heads sorted (and asserts it in debug builds).
    msg.heads.sort();
    msg.changes = sync::ChunkList::from(bytes);
    let env = SyncEnvelope {
        doc: doc.clone(),
        message: msg.encode(),
        signatures: changes.iter().map(|(_, s)| s.clone()).collect(),
    };
    wire::encode_frame(&Message::Sync(env)).expect("encodes")
}
