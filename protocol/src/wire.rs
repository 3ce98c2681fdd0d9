//! What goes over the wire between two nodes: a versioned message enum, length-prefixed bincode
//! frames with a hard maximum, and the helpers that take Automerge sync messages apart so every
//! change they carry can be matched with its signature before it is applied.
//!
//! Variants of [`Message`] are never reordered or removed: bincode encodes the variant index, so
//! a new message is appended at the end, and an older node that meets it ends the stream with a
//! reason instead of misreading it.

use automerge::{Automerge, Change, ChangeHash};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::doc::DocId;
use crate::id::{BodyCode, BodyKind, NodeId, Participant, StateCode};
use crate::sign::Signature;

/// The ALPN of this protocol version.
pub const ALPN: &[u8] = b"poa/1";
/// The protocol version carried in [`Hello`].
pub const PROTOCOL_VERSION: u16 = 1;
/// The largest frame either side accepts, in bytes.
pub const MAX_FRAME: usize = 8 << 20;
/// The largest number of documents a single offer list may carry.
pub const MAX_DOCS: usize = 100_000;

/// The first message on a connection, from each side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's protocol version.
    pub version: u16,
    /// The sender's NodeId; must match the key its TLS certificate proved.
    pub node: NodeId,
    /// A display name.
    pub name: String,
    /// Whom the sender says it acts for (checked against pins and delegations, never trusted).
    pub claims: Claim,
    /// For a State's node: the State key it acts under. A node that pinned this peer as a node
    /// of that State learns the key from its first hello, and refuses a different one later.
    pub state_key: Option<NodeId>,
}

/// Whom a node says it acts for, in a wire-friendly shape (bincode cannot decode the
/// internally tagged form the configuration file uses).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Claim {
    /// A State's node.
    State(StateCode),
    /// A body's node.
    Body(BodyCode, BodyKind),
}

impl From<&Participant> for Claim {
    fn from(p: &Participant) -> Claim {
        match p {
            Participant::State { code } => Claim::State(*code),
            Participant::Body { code, kind } => Claim::Body(code.clone(), *kind),
        }
    }
}

impl From<&Claim> for Participant {
    fn from(c: &Claim) -> Participant {
        match c {
            Claim::State(code) => Participant::State { code: *code },
            Claim::Body(code, kind) => Participant::Body {
                code: code.clone(),
                kind: *kind,
            },
        }
    }
}

/// A document's heads as one side holds them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocHeads {
    /// The document.
    pub doc: DocId,
    /// Its heads.
    pub heads: Vec<[u8; 32]>,
}

/// An Automerge sync message for one document, with the signatures of the changes it carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncEnvelope {
    /// The document.
    pub doc: DocId,
    /// `automerge::sync::Message::encode()` output.
    pub message: Vec<u8>,
    /// The author's ed25519 signature of each change in `message`, in the order the changes
    /// appear there (empty for the genesis, which every node recomputes). The hashes are not
    /// repeated: the receiver computes them from the changes.
    pub signatures: Vec<Vec<u8>>,
}

/// Every message of protocol version 1. Append only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Message {
    /// Who I am.
    Hello(Hello),
    /// A digest over the documents I offer you and their heads.
    Summary {
        /// sha256 over the sorted (document, heads) pairs.
        root: [u8; 32],
        /// How many documents it covers.
        docs: u32,
    },
    /// Your summary matches what I hold: you have nothing new for me.
    SummaryOk {
        /// The root that matched.
        root: [u8; 32],
    },
    /// Your summary does not match: list what you offer me.
    ListRequest,
    /// What I offer you, document by document.
    Offers {
        /// The documents and their heads.
        docs: Vec<DocHeads>,
    },
    /// One step of an Automerge sync session.
    Sync(SyncEnvelope),
    /// I have nothing more to say about this document right now.
    SyncIdle {
        /// The document.
        doc: DocId,
    },
    /// I am closing this stream, and why.
    Goodbye {
        /// Why, for the log.
        reason: String,
    },
}

impl Message {
    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Summary { .. } => "summary",
            Message::SummaryOk { .. } => "summary-ok",
            Message::ListRequest => "list-request",
            Message::Offers { .. } => "offers",
            Message::Sync(_) => "sync",
            Message::SyncIdle { .. } => "sync-idle",
            Message::Goodbye { .. } => "goodbye",
        }
    }

    /// The documents this message names: what it reveals to its receiver.
    pub fn docs(&self) -> Vec<&DocId> {
        match self {
            Message::Offers { docs } => docs.iter().map(|d| &d.doc).collect(),
            Message::Sync(env) => vec![&env.doc],
            Message::SyncIdle { doc } => vec![doc],
            _ => Vec::new(),
        }
    }
}

/// Why bytes from a peer are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The length prefix exceeds [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the maximum of {MAX_FRAME}")]
    TooLarge(usize),
    /// The payload does not decode as a message of this version.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The payload decodes but has bytes left over.
    #[error("malformed frame: {0} trailing bytes")]
    Trailing(usize),
    /// The peer speaks another protocol version.
    #[error("peer speaks protocol version {0}, this node speaks {PROTOCOL_VERSION}")]
    Version(u16),
    /// A field breaks a limit.
    #[error("protocol violation: {0}")]
    Violation(String),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME>()
}

/// Encodes a message as a frame: a 4-byte big-endian length, then the bincode payload.
pub fn encode_frame(msg: &Message) -> Result<Vec<u8>, WireError> {
    let payload = bincode::serde::encode_to_vec(msg, config())
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    if payload.len() > MAX_FRAME {
        return Err(WireError::TooLarge(payload.len()));
    }
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Reads a frame's length prefix, refusing lengths over [`MAX_FRAME`] before any allocation.
pub fn frame_len(prefix: [u8; 4]) -> Result<usize, WireError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    Ok(len)
}

/// Decodes a frame's payload.
pub fn decode_payload(payload: &[u8]) -> Result<Message, WireError> {
    let (msg, used): (Message, usize) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    if used != payload.len() {
        return Err(WireError::Trailing(payload.len() - used));
    }
    if let Message::Offers { docs } = &msg
        && docs.len() > MAX_DOCS
    {
        return Err(WireError::Violation(format!(
            "{} documents in one offer list",
            docs.len()
        )));
    }
    Ok(msg)
}

/// Splits a buffer into frames as bytes arrive: a sans-IO decoder for tests and for any
/// transport that delivers bytes in pieces.
#[derive(Debug, Default)]
pub struct FrameBuffer {
    buf: Vec<u8>,
}

impl FrameBuffer {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, if one has arrived.
    pub fn next_message(&mut self) -> Result<Option<Message>, WireError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = frame_len([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])?;
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let msg = decode_payload(&self.buf[4..4 + len])?;
        self.buf.drain(..4 + len);
        Ok(Some(msg))
    }
}

/// The summary root: sha256 over the sorted (document, heads) pairs offered to one peer.
pub fn summary_root<'a>(
    entries: impl IntoIterator<Item = (&'a DocId, &'a [ChangeHash])>,
) -> [u8; 32] {
    let mut sorted: Vec<(String, Vec<ChangeHash>)> = entries
        .into_iter()
        .map(|(d, h)| {
            let mut h = h.to_vec();
            h.sort();
            (d.to_string(), h)
        })
        .collect();
    sorted.sort();
    let mut hasher = Sha256::new();
    hasher.update(b"poa/summary/v1\0");
    for (doc, heads) in sorted {
        hasher.update((doc.len() as u32).to_be_bytes());
        hasher.update(doc.as_bytes());
        hasher.update((heads.len() as u32).to_be_bytes());
        for h in heads {
            hasher.update(h.0);
        }
    }
    hasher.finalize().into()
}

const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

fn read_uleb(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Takes apart the change blobs of an Automerge sync message: each blob is either a whole saved
/// document (sent to a fresh peer) or change chunks back to back. Returns every change.
pub fn split_changes(blob: &[u8]) -> Result<Vec<Change>, WireError> {
    let bad = |what: &str| WireError::Malformed(format!("automerge changes: {what}"));
    let mut out = Vec::new();
    let mut rest = blob;
    while !rest.is_empty() {
        if rest.len() < 9 || rest[..4] != CHUNK_MAGIC {
            return Err(bad("no chunk header"));
        }
        let chunk_type = rest[8];
        let (len, n) = read_uleb(&rest[9..]).ok_or_else(|| bad("bad length"))?;
        let total = 9usize
            .checked_add(n)
            .and_then(|h| h.checked_add(usize::try_from(len).ok()?))
            .ok_or_else(|| bad("length overflows"))?;
        if total > rest.len() {
            return Err(bad("chunk longer than the message"));
        }
        let chunk = &rest[..total];
        match chunk_type {
            0 => {
                let doc = Automerge::load(chunk).map_err(|e| bad(&e.to_string()))?;
                out.extend(doc.get_changes(&[]));
            }
            1 | 2 => {
                out.push(Change::from_bytes(chunk.to_vec()).map_err(|e| bad(&e.to_string()))?);
            }
            t => return Err(bad(&format!("unknown chunk type {t}"))),
        }
        rest = &rest[total..];
    }
    Ok(out)
}

/// The changes carried by an Automerge sync message.
pub fn message_changes(msg: &automerge::sync::Message) -> Result<Vec<Change>, WireError> {
    let mut out = Vec::new();
    for blob in msg.changes.iter() {
        out.extend(split_changes(blob)?);
    }
    Ok(out)
}

/// Reads a signature from the wire.
pub fn signature_from_wire(bytes: &[u8]) -> Option<Signature> {
    <[u8; 64]>::try_from(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(seed: u8) -> NodeId {
        crate::sign::NodeKey::from_seed(&[seed; 32]).node_id()
    }

    fn samples() -> Vec<Message> {
        let doc: DocId = "state/XAA".parse().unwrap();
        vec![
            Message::Hello(Hello {
                version: PROTOCOL_VERSION,
                node: node(1),
                name: "XAA Ministry of Interior".into(),
                claims: Claim::State("XAA".parse().unwrap()),
                state_key: Some(node(2)),
            }),
            Message::Summary {
                root: [7; 32],
                docs: 3,
            },
            Message::SummaryOk { root: [7; 32] },
            Message::ListRequest,
            Message::Offers {
                docs: vec![DocHeads {
                    doc: doc.clone(),
                    heads: vec![[1; 32], [2; 32]],
                }],
            },
            Message::Sync(SyncEnvelope {
                doc: doc.clone(),
                message: vec![1, 2, 3],
                signatures: vec![vec![5; 64], Vec::new()],
            }),
            Message::SyncIdle { doc },
            Message::Goodbye {
                reason: "bye".into(),
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for msg in samples() {
            let frame = encode_frame(&msg).unwrap();
            let mut buf = FrameBuffer::default();
            // Byte by byte, as a slow network would deliver it.
            let mut got = None;
            for b in &frame {
                assert!(got.is_none());
                buf.push(&[*b]);
                got = buf.next_message().unwrap();
            }
            assert_eq!(got, Some(msg));
        }
    }

    #[test]
    fn oversized_and_malformed_frames_are_refused() {
        let mut buf = FrameBuffer::default();
        buf.push(&((MAX_FRAME as u32) + 1).to_be_bytes());
        assert!(matches!(buf.next_message(), Err(WireError::TooLarge(_))));

        let mut buf = FrameBuffer::default();
        buf.push(&3u32.to_be_bytes());
        buf.push(&[200, 1, 2]);
        assert!(matches!(buf.next_message(), Err(WireError::Malformed(_))));

        let mut frame = encode_frame(&Message::ListRequest).unwrap();
        frame.push(0);
        let len = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            decode_payload(&frame[4..]),
            Err(WireError::Trailing(1))
        ));
    }

    #[test]
    fn summary_root_ignores_order_but_not_content() {
        let a: DocId = "state/XAA".parse().unwrap();
        let b: DocId = "state/XAB".parse().unwrap();
        let h1 = [ChangeHash([1; 32])];
        let h2 = [ChangeHash([2; 32])];
        let r1 = summary_root([(&a, &h1[..]), (&b, &h2[..])]);
        let r2 = summary_root([(&b, &h2[..]), (&a, &h1[..])]);
        let r3 = summary_root([(&a, &h2[..]), (&b, &h1[..])]);
        assert_eq!(r1, r2);
        assert_ne!(r1, r3);
    }

    #[test]
    fn split_changes_refuses_garbage() {
        assert!(split_changes(&[1, 2, 3]).is_err());
        let mut fake = CHUNK_MAGIC.to_vec();
        fake.extend_from_slice(&[0, 0, 0, 0, 1, 100]);
        assert!(split_changes(&fake).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buf = FrameBuffer::default();
            buf.push(&bytes);
            let _ = buf.next_message();
            let _ = decode_payload(&bytes);
            let _ = split_changes(&bytes);
        }

        #[test]
        fn offers_round_trip(n in 0usize..20, seed in any::<u8>()) {
            let docs: Vec<DocHeads> = (0..n)
                .map(|i| DocHeads {
                    doc: format!("pool/p{i}").parse().unwrap(),
                    heads: vec![[seed.wrapping_add(i as u8); 32]],
                })
                .collect();
            let msg = Message::Offers { docs };
            let frame = encode_frame(&msg).unwrap();
            prop_assert_eq!(decode_payload(&frame[4..]).unwrap(), msg);
        }
    }
}
