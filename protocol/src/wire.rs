//! What goes over the wire between two nodes: a versioned message enum in length-prefixed
//! bincode frames with a hard maximum, and a frame decoder that grows only as bytes arrive.
//!
//! Variants of [`Message`] are never reordered or removed: bincode encodes the variant index, so
//! a new message is appended at the end, and an older node that meets it ends the stream with a
//! reason instead of misreading it. Every count a peer sends is checked against a bound
//! ([`check_message`]) before anything acts on it.

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::change::SignedChange;
use crate::doc::DocId;
use crate::id::{BodyCode, BodyKind, NodeId, Participant, StateCode};

/// The ALPN of this protocol version.
pub const ALPN: &[u8] = b"poa/4";
/// The protocol version carried in [`Hello`].
pub const PROTOCOL_VERSION: u16 = 4;
/// The largest frame either side accepts, in bytes.
pub const MAX_FRAME: usize = 8 << 20;
/// The largest number of documents a single offer list may carry.
pub const MAX_DOCS: usize = 100_000;
/// The most heads (or shared heads) one sync message may name.
pub const MAX_HEADS: usize = 1024;
/// The most hashes one sync message may ask for.
pub const MAX_NEED: usize = 4096;
/// The most changes one sync message may carry.
pub const MAX_SYNC_CHANGES: usize = 5_000;
/// The most entries a Bloom filter may cover.
pub const MAX_BLOOM_ENTRIES: u32 = 1 << 21;
/// The longest display name or goodbye reason, in bytes.
pub const MAX_TEXT: usize = 1024;
/// The most keys one introduction may vouch for.
pub const MAX_VOUCHES: usize = 1024;

/// The first message on a connection, from each side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's protocol version.
    pub version: u16,
    /// The sender's NodeId; must match the key its TLS certificate proved.
    pub node: NodeId,
    /// A display name.
    pub name: String,
    /// Whom the sender says it acts for (checked against pins, never trusted).
    pub claims: Claim,
    /// The key of the State or body it acts for, as far as it knows it. A node that pinned
    /// this peer as a node of that State or body learns the key from it.
    pub key: Option<NodeId>,
    /// That State's or body's recovery key, vouched for by `key`, if this node holds such a
    /// vouch: learnt by the same nodes, and only if the signature verifies.
    pub recovery: Option<RecoveryVouch>,
}

/// A principal's recovery key with the signature of the principal's key over it
/// ([`crate::sign::recovery_vouch_bytes`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryVouch {
    /// The recovery key.
    pub key: NodeId,
    /// The principal key's signature (64 bytes).
    pub signature: Vec<u8>,
}

impl RecoveryVouch {
    /// `principal`'s key `root` vouches for `recovery`.
    pub fn sign(
        root: &crate::sign::NodeKey,
        principal: &crate::id::Principal,
        recovery: &NodeId,
    ) -> RecoveryVouch {
        let msg = crate::sign::recovery_vouch_bytes(principal, &root.node_id(), recovery);
        RecoveryVouch {
            key: *recovery,
            signature: root.sign(&msg).to_vec(),
        }
    }

    /// Whether `root`, the key trusted for `principal`, signed this vouch.
    pub fn verify(&self, principal: &crate::id::Principal, root: &NodeId) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(self.signature.as_slice()) else {
            return false;
        };
        crate::sign::verify(
            root,
            &crate::sign::recovery_vouch_bytes(principal, root, &self.key),
            &sig,
        )
    }
}

/// Whom a node says it acts for, in a wire-friendly shape.
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

/// A key a node trusts first-hand (it holds it, the operator gave it, or a node pinned as the
/// principal's presented it), told to a peer that may have chosen it as an introducer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vouch {
    /// The State or body.
    pub principal: crate::id::Principal,
    /// Its key.
    pub key: NodeId,
    /// Its recovery key, vouched for by that key, if the vouching node holds such a vouch.
    pub recovery: Option<RecoveryVouch>,
}

/// A document's heads as one side holds them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocHeads {
    /// The document.
    pub doc: DocId,
    /// Its heads.
    pub heads: Vec<[u8; 32]>,
}

/// A Bloom filter over change hashes, with fixed parameters (10 bits per entry, 7 probes): a
/// peer chooses only how many entries it covers, and the size follows from that.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bloom {
    /// How many hashes it covers.
    pub entries: u32,
    /// The bits.
    pub bits: Vec<u8>,
}

const BITS_PER_ENTRY: u64 = 10;
const PROBES: u32 = 7;

impl Bloom {
    fn bytes_for(entries: u32) -> usize {
        (u64::from(entries) * BITS_PER_ENTRY).div_ceil(8) as usize
    }

    /// A filter over these hashes.
    pub fn new<'a>(hashes: impl ExactSizeIterator<Item = &'a ChangeHash>) -> Bloom {
        let entries = hashes.len().min(MAX_BLOOM_ENTRIES as usize) as u32;
        let mut b = Bloom {
            entries,
            bits: vec![0; Self::bytes_for(entries)],
        };
        for h in hashes.take(entries as usize) {
            for p in b.probes(h) {
                b.bits[(p / 8) as usize] |= 1 << (p % 8);
            }
        }
        b
    }

    fn probes(&self, h: &ChangeHash) -> [u32; PROBES as usize] {
        let m = (self.bits.len() as u64 * 8).max(1);
        let word = |i: usize| {
            u64::from(u32::from_le_bytes([
                h.0[i],
                h.0[i + 1],
                h.0[i + 2],
                h.0[i + 3],
            ]))
        };
        let (mut x, mut y, z) = (word(0) % m, word(4) % m, word(8) % m);
        let mut out = [0u32; PROBES as usize];
        for o in out.iter_mut() {
            *o = x as u32;
            x = (x + y) % m;
            y = (y + z) % m;
        }
        out
    }

    /// Whether the filter may contain `h` (false positives happen, false negatives do not).
    pub fn contains(&self, h: &ChangeHash) -> bool {
        if self.entries == 0 || self.bits.is_empty() {
            return false;
        }
        self.probes(h)
            .iter()
            .all(|p| self.bits[(p / 8) as usize] & (1 << (p % 8)) != 0)
    }

    /// Whether its size matches the entries it claims, within the bounds.
    pub fn is_well_formed(&self) -> bool {
        self.entries <= MAX_BLOOM_ENTRIES && self.bits.len() == Self::bytes_for(self.entries)
    }
}

/// One step of syncing one document: what the sender holds, what it knows the receiver holds,
/// what it lacks, and changes the receiver lacks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocSync {
    /// The document.
    pub doc: DocId,
    /// The sender's heads (of the changes it offers).
    pub heads: Vec<[u8; 32]>,
    /// Heads the sender knows both sides hold.
    pub shared: Vec<[u8; 32]>,
    /// The sender's changes since `shared`.
    pub have: Bloom,
    /// Changes the sender asks for by hash.
    pub need: Vec<[u8; 32]>,
    /// Changes for the receiver, in causal order, each with its signature.
    pub changes: Vec<SignedChange>,
    /// Whether this answers one of the receiver's `Sync`s. Each `Sync` gets exactly one answer,
    /// a `Sync` or a `SyncIdle`, in the order they came; a `Sync` that starts an exchange (a
    /// listing's difference, a push, an ask) answers nothing. Both sides may start on the
    /// same document at once, so a side knows it has heard the last of a document only by
    /// counting answers.
    pub answer: bool,
}

/// Every message of this protocol version. Append only.
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
    /// Your summary matches what I hold, or I have gone through your list: you have nothing
    /// new for me.
    SummaryOk {
        /// The root it answers.
        root: [u8; 32],
    },
    /// Your summary does not match: list what you offer me.
    ListRequest,
    /// What I offer you, document by document.
    Offers {
        /// The documents and their heads.
        docs: Vec<DocHeads>,
    },
    /// One step of syncing a document.
    Sync(DocSync),
    /// I have nothing more to say about this document now. Also the answer, the same whether
    /// or not I hold it, about a document you may not read here or that I did not ask for.
    SyncIdle {
        /// The document.
        doc: DocId,
    },
    /// I am closing this stream, and why.
    Goodbye {
        /// Why, for the log.
        reason: String,
    },
    /// The keys I trust first-hand. Taken only by a peer whose operator chose me as an
    /// introducer; never relayed further (what I learnt from introducers is not in it).
    Introduce {
        /// The keys.
        keys: Vec<Vouch>,
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
            Message::Introduce { .. } => "introduce",
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

/// Checks every count of a decoded message against its bound.
pub fn check_message(msg: &Message) -> Result<(), WireError> {
    let v = |what: String| Err(WireError::Violation(what));
    match msg {
        Message::Hello(h) if h.name.len() > MAX_TEXT => v("a name longer than 1 KiB".into()),
        Message::Hello(h) if h.recovery.as_ref().is_some_and(|r| r.signature.len() != 64) => {
            v("a recovery key vouch whose signature is not 64 bytes".into())
        }
        Message::Goodbye { reason } if reason.len() > MAX_TEXT => {
            v("a reason longer than 1 KiB".into())
        }
        Message::Introduce { keys } if keys.len() > MAX_VOUCHES => {
            v(format!("{} keys in one introduction", keys.len()))
        }
        Message::Introduce { keys }
            if keys
                .iter()
                .any(|k| k.recovery.as_ref().is_some_and(|r| r.signature.len() != 64)) =>
        {
            v("a recovery key vouch whose signature is not 64 bytes".into())
        }
        Message::Offers { docs } if docs.len() > MAX_DOCS => {
            v(format!("{} documents in one offer list", docs.len()))
        }
        Message::Offers { docs } if docs.iter().any(|d| d.heads.len() > MAX_HEADS) => {
            v("a document with too many heads".into())
        }
        Message::Sync(s) => {
            if s.heads.len() > MAX_HEADS || s.shared.len() > MAX_HEADS {
                return v(format!(
                    "{} heads in one sync message",
                    s.heads.len().max(s.shared.len())
                ));
            }
            if s.need.len() > MAX_NEED {
                return v(format!(
                    "{} hashes asked for in one sync message",
                    s.need.len()
                ));
            }
            if s.changes.len() > MAX_SYNC_CHANGES {
                return v(format!("{} changes in one sync message", s.changes.len()));
            }
            if !s.have.is_well_formed() {
                return v("a Bloom filter whose size does not match its entries".into());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Decodes a frame's payload and checks its bounds.
pub fn decode_payload(payload: &[u8]) -> Result<Message, WireError> {
    let (msg, used): (Message, usize) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    if used != payload.len() {
        return Err(WireError::Trailing(payload.len() - used));
    }
    check_message(&msg)?;
    Ok(msg)
}

/// Encodes any value with the frame codec (bincode, the limit of a frame's payload): what
/// other framed formats (bundle files) use, so they share the wire's encoding and bounds.
pub fn encode_bounded<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    let payload = bincode::serde::encode_to_vec(value, config())
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    if payload.len() > MAX_FRAME {
        return Err(WireError::TooLarge(payload.len()));
    }
    Ok(payload)
}

/// Decodes a value written by [`encode_bounded`]: at most [`MAX_FRAME`] bytes, bincode's
/// allocation limited to it, and no bytes left over.
pub fn decode_bounded<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, WireError> {
    if payload.len() > MAX_FRAME {
        return Err(WireError::TooLarge(payload.len()));
    }
    let (value, used): (T, usize) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    if used != payload.len() {
        return Err(WireError::Trailing(payload.len() - used));
    }
    Ok(value)
}

/// Splits a byte stream into frames as bytes arrive. It holds only the bytes received, never
/// the length a prefix announces, so a peer that announces a large frame and sends little
/// costs what it sent; the caller bounds how long a partial frame may take.
#[derive(Debug, Default)]
pub struct FrameBuffer {
    buf: Vec<u8>,
}

impl FrameBuffer {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// How many bytes are held for frames not yet complete.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The length the current frame's prefix announces, once the prefix has arrived: the
    /// caller may refuse it before the rest arrives.
    pub fn pending_len(&self) -> Result<Option<usize>, WireError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        frame_len([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]).map(Some)
    }

    /// The next complete message, if one has arrived.
    pub fn next_message(&mut self) -> Result<Option<Message>, WireError> {
        let Some(len) = self.pending_len()? else {
            return Ok(None);
        };
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let msg = decode_payload(&self.buf[4..4 + len]);
        self.buf.drain(..4 + len);
        msg.map(Some)
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
    hasher.update(b"poa/summary/v2\0");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::{ChangeData, FlatAction, FlatOp};
    use proptest::prelude::*;

    fn node(seed: u8) -> NodeId {
        crate::sign::NodeKey::from_seed(&[seed; 32]).node_id()
    }

    fn samples() -> Vec<Message> {
        let doc: DocId = "state/XAA".parse().unwrap();
        let change = SignedChange {
            data: ChangeData {
                actor: vec![1; 40],
                seq: 1,
                start_op: 14,
                time: 5,
                message: None,
                deps: vec![[3; 32]],
                ops: vec![FlatOp {
                    container: 0,
                    key: "T1/1".into(),
                    action: FlatAction::Put {
                        value: "{}".into(),
                        preds: vec![],
                    },
                }],
            },
            signature: vec![9; 64],
        };
        vec![
            Message::Hello(Hello {
                version: PROTOCOL_VERSION,
                node: node(1),
                name: "XAA Ministry of Interior".into(),
                claims: Claim::State("XAA".parse().unwrap()),
                key: Some(node(2)),
                recovery: Some(RecoveryVouch {
                    key: node(3),
                    signature: vec![8; 64],
                }),
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
            Message::Sync(DocSync {
                doc: doc.clone(),
                heads: vec![[1; 32]],
                shared: vec![],
                have: Bloom::new([ChangeHash([5; 32])].iter()),
                need: vec![[4; 32]],
                changes: vec![change],
                answer: false,
            }),
            Message::SyncIdle { doc },
            Message::Goodbye {
                reason: "bye".into(),
            },
            Message::Introduce {
                keys: vec![Vouch {
                    principal: "state:XAB".parse().unwrap(),
                    key: node(4),
                    recovery: None,
                }],
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
            assert_eq!(buf.buffered(), 0);
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
    fn a_bloom_filter_must_be_the_size_its_entries_say() {
        let doc: DocId = "state/XAA".parse().unwrap();
        let lying = Message::Sync(DocSync {
            doc,
            heads: vec![],
            shared: vec![],
            have: Bloom {
                entries: u32::MAX,
                bits: vec![0; 4],
            },
            need: vec![],
            changes: vec![],
            answer: false,
        });
        let frame = encode_frame(&lying).unwrap();
        assert!(matches!(
            decode_payload(&frame[4..]),
            Err(WireError::Violation(_))
        ));
    }

    #[test]
    fn bloom_filters_have_no_false_negatives() {
        let hashes: Vec<ChangeHash> = (0..500u32)
            .map(|i| ChangeHash(Sha256::digest(i.to_be_bytes()).into()))
            .collect();
        let b = Bloom::new(hashes.iter());
        assert!(b.is_well_formed());
        assert!(hashes.iter().all(|h| b.contains(h)));
        let others = (500..5500u32)
            .map(|i| ChangeHash(Sha256::digest(i.to_be_bytes()).into()))
            .filter(|h| b.contains(h))
            .count();
        assert!(others < 100, "{others} false positives in 5000");
        assert!(!Bloom::default().contains(&hashes[0]));
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

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buf = FrameBuffer::default();
            buf.push(&bytes);
            let _ = buf.next_message();
            let _ = decode_payload(&bytes);
        }

        #[test]
        fn offers_round_trip(n in 0usize..20, seed in any::<u8>()) {
            let pool = crate::doc::PoolId::new("p", &node(3));
            let docs: Vec<DocHeads> = (0..n)
                .map(|i| DocHeads {
                    doc: crate::doc::DocId::Pool(crate::doc::PoolId { name: format!("p{i}"), ..pool.clone() }),
                    heads: vec![[seed.wrapping_add(i as u8); 32]],
                })
                .collect();
            let msg = Message::Offers { docs };
            let frame = encode_frame(&msg).unwrap();
            prop_assert_eq!(decode_payload(&frame[4..]).unwrap(), msg);
        }
    }
}
