//! A pinned peer that speaks the wire protocol by hand, to send what an honest node never
//! would: forged, altered or unauthorized changes, garbage, oversized or stalled frames.

use std::sync::Arc;
use std::time::Duration;

use poa_node::federation::Member;
use poa_node::transport;
use poa_protocol::change::SignedChange;
use poa_protocol::doc::DocId;
use poa_protocol::sign::NodeKey;
use poa_protocol::wire::{self, Bloom, Claim, DocSync, Hello, Message, PROTOCOL_VERSION};
use poa_protocol::{BodyKind, NodeId};

/// A pinned peer that speaks the wire protocol by hand.
#[allow(missing_debug_implementations)]
pub struct Rogue {
    /// Its key.
    pub key: NodeKey,
    endpoint: quinn::Endpoint,
}

/// How a rogue introduces itself.
#[derive(Clone, Debug)]
pub struct As {
    /// Whom it claims to act for.
    pub claims: Claim,
    /// The principal key it presents.
    pub key: Option<NodeId>,
    /// The recovery key vouch it presents.
    pub recovery: Option<poa_protocol::wire::RecoveryVouch>,
}

impl As {
    /// A donor body, presenting no key.
    pub fn donor() -> As {
        As {
            claims: Claim::Body("XZZ".parse().expect("code"), BodyKind::Donor),
            key: None,
            recovery: None,
        }
    }

    /// A node of a State, presenting a key.
    pub fn state(code: &str, key: Option<NodeId>) -> As {
        As {
            claims: Claim::State(code.parse().expect("code")),
            key,
            recovery: None,
        }
    }
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
            transport::Role::Serve,
        )
        .expect("rogue endpoint");
        Rogue { key, endpoint }
    }

    /// Its NodeId.
    pub fn id(&self) -> NodeId {
        self.key.node_id()
    }

    /// Like [`Rogue::connect`], but `None` when the victim refuses or closes first.
    pub async fn try_connect(
        &self,
        victim: &Member,
        who: &As,
    ) -> Option<(quinn::Connection, quinn::SendStream, quinn::RecvStream)> {
        let cfg = transport::client_config(&self.key, victim.id(), transport::Role::OneShot)
            .ok()?
            .0;
        let conn = self
            .endpoint
            .connect_with(cfg, victim.addr(), "poa-node")
            .ok()?
            .await
            .ok()?;
        let (mut send, recv) = conn.open_bi().await.ok()?;
        let hello = Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            node: self.id(),
            name: "rogue".into(),
            claims: who.claims.clone(),
            key: who.key,
            recovery: who.recovery.clone(),
        });
        send.write_all(&frame(&hello)).await.ok()?;
        Some((conn, send, recv))
    }

    /// Opens a connection to `victim` and its stream, and says hello.
    pub async fn connect(
        &self,
        victim: &Member,
        who: &As,
    ) -> (quinn::Connection, quinn::SendStream, quinn::RecvStream) {
        let cfg = transport::client_config(&self.key, victim.id(), transport::Role::OneShot)
            .expect("rogue connection")
            .0;
        let conn = self
            .endpoint
            .connect_with(cfg, victim.addr(), "poa-node")
            .expect("rogue connection")
            .await
            .expect("rogue connection");
        let (mut send, recv) = conn.open_bi().await.expect("rogue connection");
        let hello = Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            node: self.id(),
            name: "rogue".into(),
            claims: who.claims.clone(),
            key: who.key,
            recovery: who.recovery.clone(),
        });
        send.write_all(&frame(&hello))
            .await
            .expect("rogue connection");
        (conn, send, recv)
    }

    /// Connects to `victim` as a donor, sends `frames` raw, and returns every message the
    /// victim sent back until it closed the stream, and how the connection ended.
    pub async fn send_raw(&self, victim: &Member, frames: Vec<Vec<u8>>) -> (Vec<Message>, String) {
        self.send_as(victim, &As::donor(), frames).await
    }

    /// Like [`Rogue::send_raw`], introducing itself as `who`.
    pub async fn send_as(
        &self,
        victim: &Member,
        who: &As,
        frames: Vec<Vec<u8>>,
    ) -> (Vec<Message>, String) {
        let (conn, mut send, mut recv) = self.connect(victim, who).await;
        for f in frames {
            // The victim may already have closed: later writes may fail, which is the point.
            if send.write_all(&f).await.is_err() {
                break;
            }
        }
        // Finishing our side ends the victim's read loop, so a victim that found nothing wrong
        // closes too, and the read below ends either way.
        let _ = send.finish();
        let got = read_all(&mut recv).await;
        let ended = tokio::time::timeout(Duration::from_secs(30), conn.closed())
            .await
            .map(|e| e.to_string())
            .unwrap_or_else(|_| "still open".into());
        (got, ended)
    }
}

/// Every message read from `recv` until it ends.
pub async fn read_all(recv: &mut quinn::RecvStream) -> Vec<Message> {
    let mut got = Vec::new();
    let mut buf = wire::FrameBuffer::default();
    let mut chunk = vec![0u8; 64 * 1024];
    while let Ok(Ok(Some(n))) =
        tokio::time::timeout(Duration::from_secs(30), recv.read(&mut chunk)).await
    {
        buf.push(&chunk[..n]);
        while let Ok(Some(m)) = buf.next_message() {
            got.push(m);
        }
    }
    got
}

/// A message as a frame.
pub fn frame(msg: &Message) -> Vec<u8> {
    wire::encode_frame(msg).expect("encodes")
}

/// A sync frame for `doc` carrying `changes` (the heads it names are the changes' hashes).
pub fn sync_frame(doc: &DocId, changes: &[SignedChange]) -> Vec<u8> {
    let mut heads: Vec<[u8; 32]> = changes
        .iter()
        .filter_map(|c| c.data.to_automerge(doc).ok().map(|a| a.hash().0))
        .collect();
    heads.sort();
    frame(&Message::Sync(DocSync {
        doc: doc.clone(),
        heads,
        shared: vec![],
        have: Bloom::default(),
        need: vec![],
        changes: changes.to_vec(),
        answer: false,
    }))
}

/// The first goodbye among `messages`, if any.
pub fn goodbye(messages: &[Message]) -> Option<String> {
    messages.iter().find_map(|m| match m {
        Message::Goodbye { reason } => Some(reason.clone()),
        _ => None,
    })
}

impl Rogue {
    /// Offers `doc` to `victim` the way an honest peer would (summary, listing, the victim's
    /// request), then hands over `changes` when asked: how a first copy reaches a node that
    /// does not hold a document. Returns what the victim sent.
    pub async fn deliver(
        &self,
        victim: &Member,
        who: &As,
        doc: &DocId,
        changes: &[SignedChange],
    ) -> Vec<Message> {
        let (conn, mut send, mut recv) = self.connect(victim, who).await;
        let mut heads: Vec<[u8; 32]> = changes
            .iter()
            .filter_map(|c| c.data.to_automerge(doc).ok().map(|a| a.hash().0))
            .collect();
        heads.sort();
        let root = [0xAB; 32];
        let _ = send
            .write_all(&frame(&Message::Summary { root, docs: 1 }))
            .await;
        let mut got = Vec::new();
        let mut buf = wire::FrameBuffer::default();
        let mut chunk = vec![0u8; 64 * 1024];
        let mut handed = false;
        let _ = &mut handed;
        'outer: while let Ok(Ok(Some(n))) =
            tokio::time::timeout(Duration::from_secs(20), recv.read(&mut chunk)).await
        {
            buf.push(&chunk[..n]);
            while let Ok(Some(m)) = buf.next_message() {
                let reply = match &m {
                    Message::Summary { root, .. } => Some(Message::SummaryOk { root: *root }),
                    Message::ListRequest => Some(Message::Offers {
                        docs: vec![wire::DocHeads {
                            doc: doc.clone(),
                            heads: heads.clone(),
                        }],
                    }),
                    Message::Sync(s) if s.doc == *doc && !handed => {
                        handed = true;
                        Some(Message::Sync(DocSync {
                            doc: doc.clone(),
                            heads: heads.clone(),
                            shared: vec![],
                            have: Bloom::default(),
                            need: vec![],
                            changes: changes.to_vec(),
                            answer: true,
                        }))
                    }
                    Message::Sync(s) => Some(Message::SyncIdle { doc: s.doc.clone() }),
                    Message::SummaryOk { root: r } if *r == root => None,
                    Message::Goodbye { .. } => {
                        got.push(m);
                        break 'outer;
                    }
                    _ => None,
                };
                // The victim answers a listing once the documents it asked for are done.
                let done = matches!(&m, Message::SummaryOk { root: r } if *r == root);
                got.push(m);
                if let Some(r) = reply {
                    let _ = send.write_all(&frame(&r)).await;
                }
                if done {
                    break 'outer;
                }
            }
        }
        let _ = send
            .write_all(&frame(&Message::Goodbye {
                reason: "done".into(),
            }))
            .await;
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
        got
    }
}
