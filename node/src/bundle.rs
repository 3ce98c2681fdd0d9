//! Signed bundle files, for nodes with no network path between them (an air-gapped ministry):
//! the changes one node may send another, written to a file signed by the exporting node, and
//! the receipt the recipient signs on import and carries back, so the next bundle leaves out
//! what it holds.
//!
//! A bundle goes only to one pinned node and holds only what that node may read here (the read
//! rule of sync egress, [`crate::host::can_read`]). Its import is a sync session with the
//! exporter as the peer: the exporter must be pinned here, its hello is checked as a session
//! checks it, a document is taken only if the session would take it ([`Host::takeable`]: its
//! key trusted, drafts only from the principal's own nodes), and its changes go through
//! [`crate::store::StoreTx::apply`] (the gate) and are kept only if, with them, the exporter may
//! read the document (the ingress rule). Nothing is trusted because it came on a USB stick.
//!
//! The format (all integers big-endian):
//!
//! ```text
//! bundle:  "POA-BUNDLE" · version u16 · exporter (32) · recipient (32) · created i64
//!          · frames: u32 length · bincode payload (the wire's codec and limit, MAX_FRAME)
//!              the first frame: the exporter's hello and the counts of documents and changes
//!              then per document, one or more consecutive frames: id, heads, signed changes
//!          · ed25519 signature by the exporter over "poa/bundle/v1\0" · sha256(all before it)
//! receipt: "POA-RECEIPT" · version u16 · importer (32) · exporter (32) · sha256 of the bundle
//!          · created i64 · one frame: per document, the heads the importer holds
//!          · ed25519 signature by the importer over "poa/receipt/v1\0" · sha256(all before it)
//! ```
//!
//! Before the signature is verified, the importer reads only fixed-size fields: the size
//! (at most [`MAX_BUNDLE_BYTES`], checked before reading), the magic, the version and the
//! exporter's key, which must be pinned here. No parser sees a byte before the signature
//! holds; after, every frame is still bounded (a pinned exporter may be hostile): at most
//! [`MAX_FRAME`] bytes, [`MAX_SYNC_CHANGES`] changes and [`MAX_HEADS`] heads a frame,
//! [`MAX_BUNDLE_CHANGES`] changes and [`MAX_DOCS`] documents a bundle, and the whole structure
//! is checked before anything is applied. A document whose changes the gate refuses for a
//! fault of the sender (a bad signature, a malformed change...) is taken not at all: an honest
//! exporter never signs such a change into a bundle.

use std::collections::BTreeSet;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

use poa_protocol::NodeId;
use poa_protocol::automerge::ChangeHash;
use poa_protocol::change::SignedChange;
use poa_protocol::doc::DocId;
use poa_protocol::session::Host;
use poa_protocol::sign::{NodeKey, verify};
use poa_protocol::wire::{
    self, DocHeads, Hello, MAX_DOCS, MAX_FRAME, MAX_HEADS, MAX_SYNC_CHANGES, Message,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::host::{HostEvents, MAX_PARKED_PER_PEER, NodeHost, Parked, can_read, tx_can_read};
use crate::node::Node;
use crate::store::{Source, StoreError};

/// The first bytes of a bundle file.
pub const BUNDLE_MAGIC: &[u8] = b"POA-BUNDLE";
/// The first bytes of a receipt file.
pub const RECEIPT_MAGIC: &[u8] = b"POA-RECEIPT";
/// The format version this node writes and reads.
pub const VERSION: u16 = 1;
/// The largest bundle file read, in bytes.
pub const MAX_BUNDLE_BYTES: u64 = 1 << 30;
/// The largest receipt file read, in bytes.
pub const MAX_RECEIPT_BYTES: u64 = (MAX_FRAME + 1024) as u64;
/// The most changes one bundle may carry.
pub const MAX_BUNDLE_CHANGES: usize = 1_000_000;
/// The bytes of changes the exporter puts in one frame, at most (a change is at most 2 MiB
/// encoded, so a frame stays well under [`MAX_FRAME`]).
const FRAME_BUDGET: usize = 4 << 20;

const SIG: usize = 64;
const BUNDLE_FIXED: usize = BUNDLE_MAGIC.len() + 2 + 32 + 32 + 8;
const RECEIPT_FIXED: usize = RECEIPT_MAGIC.len() + 2 + 32 + 32 + 32 + 8;
const BUNDLE_DOMAIN: &[u8] = b"poa/bundle/v1\0";
const RECEIPT_DOMAIN: &[u8] = b"poa/receipt/v1\0";

/// Why a bundle or a receipt cannot be written or read; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Over the size any such file may have.
    #[error("it is {0} bytes, more than a {1} may be ({2} bytes): it is not one poa-node wrote")]
    TooLarge(u64, &'static str, u64),
    /// Not this kind of file.
    #[error("it is not a poa-node {0} (it does not start with {1} and is at least {2} bytes)")]
    NotOne(&'static str, &'static str, usize),
    /// Another format version.
    #[error(
        "it is a {0} of format version {1}; this poa-node reads version {VERSION}: use the same poa-node version on both nodes"
    )]
    Version(&'static str, u16),
    /// The exporter is not pinned here.
    #[error(
        "it was exported by node {0}, which is not pinned here: pin it with `poa-node peer add {0} --state CODE` (or --body CODE) if you expect bundles from it; nothing was imported"
    )]
    UnknownExporter(NodeId),
    /// This node's own bundle.
    #[error("it was exported by this node itself; import it on the node it is for")]
    OwnBundle,
    /// The signature does not hold.
    #[error(
        "its signature by node {1} does not match its content: the {0} was damaged or altered, and nothing in it was used"
    )]
    BadSignature(&'static str, NodeId),
    /// Addressed to another node.
    #[error("it is for node {recipient}, not this node ({me}); nothing was imported")]
    NotForMe {
        /// Whom it is for.
        recipient: NodeId,
        /// This node.
        me: NodeId,
    },
    /// Signed, but its structure breaks the format or a bound.
    #[error("it is signed by node {0} but malformed ({1}); nothing was imported")]
    Malformed(NodeId, String),
    /// The exporter's hello, as a session would check it, fails.
    #[error("node {0} cannot be taken from: {1}; nothing was imported")]
    Hello(NodeId, String),
    /// The recipient is not pinned.
    #[error(
        "node {0} is not pinned here, and bundles go only to pinned nodes: pin it with `poa-node peer add {0} --state CODE` (or --body CODE)"
    )]
    RecipientNotPinned(NodeId),
    /// A bundle for this node itself.
    #[error("that is this node's own NodeId: give the recipient's (run `poa-node id` there)")]
    ToSelf,
    /// No pinned node of that principal.
    #[error(
        "no node is pinned here as {0}'s: pin the recipient with `poa-node peer add NODEID --state {0}` (or --body {0}), or give --for NODEID"
    )]
    NoNodeOf(String),
    /// Several pinned nodes of that principal.
    #[error("{1} nodes are pinned here as {0}'s ({2}): give --for NODEID")]
    SeveralNodesOf(String, usize, String),
    /// Neither a NodeId nor a code.
    #[error("'{0}' is neither a NodeId nor a State or body code: give --for NODEID or --for CODE")]
    NotARecipient(String),
    /// The recipient may read nothing here.
    #[error(
        "node {0} may read no document held here, so there is nothing to export: share one with it (`poa-node share state/CODE --with {0}`)"
    )]
    NothingReadable(NodeId),
    /// A document named with --docs that is not held.
    #[error("this node holds no document {0}; see `poa-node doc list`")]
    NotHeld(DocId),
    /// A document named with --docs that the recipient may not read.
    #[error(
        "node {1} may not read {0} here, so it goes in no bundle for it: share it (`poa-node share {0} --with {1}`); drafts go only to their own State's or body's nodes"
    )]
    NotReadable(DocId, NodeId),
    /// A receipt from another node than the recipient.
    #[error(
        "the receipt was written by node {0}, not by the recipient {1}: give the receipt {1} wrote on its last import"
    )]
    ReceiptNotRecipient(NodeId, NodeId),
    /// A receipt of another exporter's bundle.
    #[error(
        "the receipt acknowledges a bundle from node {0}, not from this node: give the receipt of a bundle this node exported"
    )]
    ReceiptNotMine(NodeId),
    /// Too much for one bundle.
    #[error(
        "{0} changes are more than one bundle may carry ({MAX_BUNDLE_CHANGES}): export fewer documents at a time (--docs), or use --since"
    )]
    TooManyChanges(usize),
    /// Reading or writing a file.
    #[error("{0}")]
    Io(String),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The first frame of a bundle: who exports it, as its hello in a session, and what follows.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Header {
    hello: Hello,
    docs: u32,
    changes: u64,
}

/// One frame of a document's changes.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct DocFrame {
    doc: DocId,
    heads: Vec<[u8; 32]>,
    changes: Vec<SignedChange>,
}

/// What a bundle carries, for [`seal`] and from [`open`].
#[derive(Clone, Debug)]
pub struct Contents {
    /// The node it is for.
    pub recipient: NodeId,
    /// Unix seconds when it was made.
    pub created: i64,
    /// The exporter's hello: its id (the key that signs), name, whom it acts for and that
    /// principal's key, checked on import as a session checks a hello.
    pub hello: Hello,
    /// The documents.
    pub docs: Vec<BundleDoc>,
}

/// One document of a bundle.
#[derive(Clone, Debug)]
pub struct BundleDoc {
    /// The document.
    pub doc: DocId,
    /// Its heads on the exporter (what it offers: standing changes and evidence).
    pub heads: Vec<ChangeHash>,
    /// The changes, in causal order.
    pub changes: Vec<SignedChange>,
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn signing_bytes(domain: &[u8], content: &[u8]) -> Vec<u8> {
    let mut msg = domain.to_vec();
    msg.extend_from_slice(&digest(content));
    msg
}

fn node_at(bytes: &[u8], at: usize) -> NodeId {
    let mut k = [0u8; 32];
    k.copy_from_slice(&bytes[at..at + 32]);
    NodeId(k)
}

fn i64_at(bytes: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(b)
}

fn push_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, BundleError> {
    wire::encode_bounded(v).map_err(|e| BundleError::Io(format!("cannot encode the bundle: {e}")))
}

fn approx_bytes(c: &SignedChange) -> usize {
    c.data.to_bytes().len() + c.signature.len() + 8
}

/// Writes a bundle of `contents`, signed by `key` (whose id must be the hello's). Documents
/// whose changes exceed a frame's budget span several consecutive frames.
pub fn seal(key: &NodeKey, contents: &Contents) -> Result<Vec<u8>, BundleError> {
    let changes: usize = contents.docs.iter().map(|d| d.changes.len()).sum();
    if changes > MAX_BUNDLE_CHANGES {
        return Err(BundleError::TooManyChanges(changes));
    }
    let mut out = Vec::new();
    out.extend_from_slice(BUNDLE_MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&key.node_id().0);
    out.extend_from_slice(&contents.recipient.0);
    out.extend_from_slice(&contents.created.to_be_bytes());
    let header = Header {
        hello: contents.hello.clone(),
        docs: contents.docs.len() as u32,
        changes: changes as u64,
    };
    push_frame(&mut out, &encode(&header)?);
    for d in &contents.docs {
        let heads: Vec<[u8; 32]> = d.heads.iter().map(|h| h.0).take(MAX_HEADS).collect();
        let mut frame = DocFrame {
            doc: d.doc.clone(),
            heads: heads.clone(),
            changes: Vec::new(),
        };
        let mut bytes = 0;
        let mut wrote = false;
        for c in &d.changes {
            let size = approx_bytes(c);
            if !frame.changes.is_empty()
                && (bytes + size > FRAME_BUDGET || frame.changes.len() >= MAX_SYNC_CHANGES)
            {
                push_frame(&mut out, &encode(&frame)?);
                wrote = true;
                frame.changes.clear();
                bytes = 0;
            }
            bytes += size;
            frame.changes.push(c.clone());
        }
        if !frame.changes.is_empty() || !wrote {
            push_frame(&mut out, &encode(&frame)?);
        }
    }
    if out.len() as u64 + SIG as u64 > MAX_BUNDLE_BYTES {
        return Err(BundleError::Io(format!(
            "the bundle would be {} bytes, more than {MAX_BUNDLE_BYTES}: export fewer documents at a time (--docs), or use --since",
            out.len()
        )));
    }
    let sig = key.sign(&signing_bytes(BUNDLE_DOMAIN, &out));
    out.extend_from_slice(&sig);
    Ok(out)
}

/// Appends the exporter's signature to a bundle's content: for tests that hand-craft what a
/// hostile exporter could sign.
#[doc(hidden)]
pub fn sign_raw(key: &NodeKey, mut content: Vec<u8>) -> Vec<u8> {
    let sig = key.sign(&signing_bytes(BUNDLE_DOMAIN, &content));
    content.extend_from_slice(&sig);
    content
}

/// Reads a file of at most `max` bytes: the size is checked before reading, and no more than
/// `max + 1` bytes are ever read (a file that grows meanwhile is refused the same way).
pub fn read_bounded(path: &Path, max: u64, kind: &'static str) -> Result<Vec<u8>, BundleError> {
    let io = |e: std::io::Error| BundleError::Io(format!("cannot read {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len > max {
        return Err(BundleError::TooLarge(len, kind, max));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(BundleError::TooLarge(bytes.len() as u64, kind, max));
    }
    Ok(bytes)
}

/// A bundle whose signature holds, with its structure checked, frames not yet decoded for
/// applying.
#[derive(Debug)]
struct Verified<'a> {
    bytes: &'a [u8],
    created: i64,
    hello: Hello,
    docs: Vec<Group>,
    changes: usize,
}

/// A document's consecutive frames.
#[derive(Debug)]
struct Group {
    doc: DocId,
    heads: Vec<ChangeHash>,
    frames: Vec<Range<usize>>,
    changes: usize,
}

/// Checks the fixed fields and the size of a bundle: what may be read before its signature.
fn fixed(bytes: &[u8]) -> Result<(NodeId, NodeId, i64), BundleError> {
    if bytes.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge(
            bytes.len() as u64,
            "bundle",
            MAX_BUNDLE_BYTES,
        ));
    }
    let min = BUNDLE_FIXED + 4 + SIG;
    if bytes.len() < min || !bytes.starts_with(BUNDLE_MAGIC) {
        return Err(BundleError::NotOne("bundle", "POA-BUNDLE", min));
    }
    let at = BUNDLE_MAGIC.len();
    let version = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    if version != VERSION {
        return Err(BundleError::Version("bundle", version));
    }
    Ok((
        node_at(bytes, at + 2),
        node_at(bytes, at + 34),
        i64_at(bytes, at + 66),
    ))
}

/// Verifies the signature over the whole file by the key it names.
fn check_signature(
    bytes: &[u8],
    signer: &NodeId,
    domain: &[u8],
    kind: &'static str,
) -> Result<(), BundleError> {
    let (content, sig) = bytes.split_at(bytes.len() - SIG);
    let mut s = [0u8; SIG];
    s.copy_from_slice(sig);
    if verify(signer, &signing_bytes(domain, content), &s) {
        Ok(())
    } else {
        Err(BundleError::BadSignature(kind, *signer))
    }
}

/// Reads the frame at `*pos` of `body` (bounded), advancing `*pos`.
fn next_frame(body: &[u8], pos: &mut usize) -> Result<Range<usize>, String> {
    let rest = body.len() - *pos;
    if rest < 4 {
        return Err(format!("{rest} stray bytes where a frame should start"));
    }
    let len =
        u32::from_be_bytes([body[*pos], body[*pos + 1], body[*pos + 2], body[*pos + 3]]) as usize;
    if len > MAX_FRAME {
        return Err(format!(
            "a frame of {len} bytes, over the maximum of {MAX_FRAME}"
        ));
    }
    if len > rest - 4 {
        return Err(format!(
            "a frame of {len} bytes where only {} remain",
            rest - 4
        ));
    }
    let r = *pos + 4..*pos + 4 + len;
    *pos = r.end;
    Ok(r)
}

fn decode_frame(bytes: &[u8], r: &Range<usize>) -> Result<DocFrame, String> {
    let f: DocFrame = wire::decode_bounded(&bytes[r.clone()]).map_err(|e| e.to_string())?;
    if f.heads.len() > MAX_HEADS {
        return Err(format!("{} heads in one frame", f.heads.len()));
    }
    if f.changes.len() > MAX_SYNC_CHANGES {
        return Err(format!("{} changes in one frame", f.changes.len()));
    }
    Ok(f)
}

/// Checks the structure of a signed bundle, decoding each frame once within its bounds.
fn structure(bytes: &[u8], exporter: NodeId, created: i64) -> Result<Verified<'_>, String> {
    let body = &bytes[..bytes.len() - SIG];
    let mut pos = BUNDLE_FIXED;
    let r = next_frame(body, &mut pos)?;
    let header: Header = wire::decode_bounded(&body[r]).map_err(|e| e.to_string())?;
    wire::check_message(&Message::Hello(header.hello.clone())).map_err(|e| e.to_string())?;
    if header.hello.node != exporter {
        return Err(format!(
            "its hello names node {}, not the signer",
            header.hello.node
        ));
    }
    if header.docs as usize > MAX_DOCS || header.changes > MAX_BUNDLE_CHANGES as u64 {
        return Err(format!(
            "it announces {} documents and {} changes, over the bounds ({MAX_DOCS}, {MAX_BUNDLE_CHANGES})",
            header.docs, header.changes
        ));
    }
    let mut docs: Vec<Group> = Vec::new();
    let mut seen: BTreeSet<DocId> = BTreeSet::new();
    let mut changes = 0usize;
    while pos < body.len() {
        let r = next_frame(body, &mut pos)?;
        let f = decode_frame(body, &r)?;
        changes += f.changes.len();
        if changes > header.changes as usize {
            return Err(format!(
                "more changes than the {} it announces",
                header.changes
            ));
        }
        let heads: Vec<ChangeHash> = f.heads.iter().map(|h| ChangeHash(*h)).collect();
        match docs.last_mut() {
            Some(g) if g.doc == f.doc => {
                if g.heads != heads {
                    return Err(format!("two frames of {} with different heads", f.doc));
                }
                g.frames.push(r);
                g.changes += f.changes.len();
            }
            _ => {
                if !seen.insert(f.doc.clone()) {
                    return Err(format!("the frames of {} are not consecutive", f.doc));
                }
                if docs.len() >= header.docs as usize {
                    return Err(format!(
                        "more documents than the {} it announces",
                        header.docs
                    ));
                }
                docs.push(Group {
                    doc: f.doc,
                    heads,
                    frames: vec![r],
                    changes: f.changes.len(),
                });
            }
        }
    }
    if docs.len() != header.docs as usize || changes != header.changes as usize {
        return Err(format!(
            "it holds {} documents and {changes} changes, not the {} and {} it announces",
            docs.len(),
            header.docs,
            header.changes
        ));
    }
    Ok(Verified {
        bytes: body,
        created,
        hello: header.hello,
        docs,
        changes,
    })
}

/// Verifies a bundle by the key it names and decodes it whole, for inspection and tests.
/// [`import`] verifies more (that the exporter is pinned, the bundle is for this node) and
/// decodes frame by frame.
pub fn open(bytes: &[u8]) -> Result<(NodeId, Contents), BundleError> {
    let (exporter, recipient, created) = fixed(bytes)?;
    check_signature(bytes, &exporter, BUNDLE_DOMAIN, "bundle")?;
    let v =
        structure(bytes, exporter, created).map_err(|why| BundleError::Malformed(exporter, why))?;
    let mut docs = Vec::new();
    for g in &v.docs {
        let mut changes = Vec::new();
        for r in &g.frames {
            changes.extend(
                decode_frame(v.bytes, r)
                    .map_err(|why| BundleError::Malformed(exporter, why))?
                    .changes,
            );
        }
        docs.push(BundleDoc {
            doc: g.doc.clone(),
            heads: g.heads.clone(),
            changes,
        });
    }
    Ok((
        exporter,
        Contents {
            recipient,
            created,
            hello: v.hello,
            docs,
        },
    ))
}

/// A receipt whose signature holds.
#[derive(Clone, Debug)]
pub struct Receipt {
    /// The node that imported the bundle and signed this.
    pub importer: NodeId,
    /// The node that exported the bundle.
    pub exporter: NodeId,
    /// sha256 of the bundle file.
    pub bundle: [u8; 32],
    /// Unix seconds when it was written.
    pub created: i64,
    /// Per document, the heads the importer held after the import.
    pub docs: Vec<(DocId, Vec<ChangeHash>)>,
}

/// Writes `receipt`, signed by `key` (whose id must be its importer).
pub fn seal_receipt(key: &NodeKey, receipt: &Receipt) -> Result<Vec<u8>, BundleError> {
    let mut out = Vec::new();
    out.extend_from_slice(RECEIPT_MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&key.node_id().0);
    out.extend_from_slice(&receipt.exporter.0);
    out.extend_from_slice(&receipt.bundle);
    out.extend_from_slice(&receipt.created.to_be_bytes());
    let docs: Vec<DocHeads> = receipt
        .docs
        .iter()
        .take(MAX_DOCS)
        .map(|(doc, heads)| DocHeads {
            doc: doc.clone(),
            heads: heads.iter().map(|h| h.0).take(MAX_HEADS).collect(),
        })
        .collect();
    push_frame(&mut out, &encode(&docs)?);
    let sig = key.sign(&signing_bytes(RECEIPT_DOMAIN, &out));
    out.extend_from_slice(&sig);
    Ok(out)
}

/// Reads a receipt: its size, magic and version, then its signature by the importer it names
/// (which must be `expected_importer` when given), and only then its payload, within bounds.
pub fn open_receipt(
    bytes: &[u8],
    expected_importer: Option<&NodeId>,
) -> Result<Receipt, BundleError> {
    if bytes.len() as u64 > MAX_RECEIPT_BYTES {
        return Err(BundleError::TooLarge(
            bytes.len() as u64,
            "receipt",
            MAX_RECEIPT_BYTES,
        ));
    }
    let min = RECEIPT_FIXED + 4 + SIG;
    if bytes.len() < min || !bytes.starts_with(RECEIPT_MAGIC) {
        return Err(BundleError::NotOne("receipt", "POA-RECEIPT", min));
    }
    let at = RECEIPT_MAGIC.len();
    let version = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    if version != VERSION {
        return Err(BundleError::Version("receipt", version));
    }
    let importer = node_at(bytes, at + 2);
    let exporter = node_at(bytes, at + 34);
    if let Some(want) = expected_importer
        && *want != importer
    {
        return Err(BundleError::ReceiptNotRecipient(importer, *want));
    }
    check_signature(bytes, &importer, RECEIPT_DOMAIN, "receipt")?;
    let mut bundle = [0u8; 32];
    bundle.copy_from_slice(&bytes[at + 66..at + 98]);
    let created = i64_at(bytes, at + 98);
    let body = &bytes[..bytes.len() - SIG];
    let mut pos = RECEIPT_FIXED;
    let bad = |why: String| BundleError::Malformed(importer, why);
    let r = next_frame(body, &mut pos).map_err(bad)?;
    if pos != body.len() {
        return Err(bad(format!("{} bytes after its frame", body.len() - pos)));
    }
    let docs: Vec<DocHeads> = wire::decode_bounded(&body[r]).map_err(|e| bad(e.to_string()))?;
    if docs.len() > MAX_DOCS || docs.iter().any(|d| d.heads.len() > MAX_HEADS) {
        return Err(bad("more documents or heads than a receipt may name".into()));
    }
    Ok(Receipt {
        importer,
        exporter,
        bundle,
        created,
        docs: docs
            .into_iter()
            .map(|d| (d.doc, d.heads.into_iter().map(ChangeHash).collect()))
            .collect(),
    })
}

/// The node a bundle is for: a NodeId pinned here, or the one node pinned here as the node of
/// a State or body code.
pub fn resolve_recipient(node: &Node, text: &str) -> Result<NodeId, BundleError> {
    if let Ok(id) = text.parse::<NodeId>() {
        return Ok(id);
    }
    let code = text.trim().to_ascii_uppercase();
    let is_code = code.parse::<poa_protocol::StateCode>().is_ok()
        || code.parse::<poa_protocol::BodyCode>().is_ok();
    if !is_code {
        return Err(BundleError::NotARecipient(text.to_string()));
    }
    let of: Vec<_> = node
        .store
        .peers()?
        .into_iter()
        .filter(|p| p.pinned_as.as_ref().is_some_and(|pa| pa.code() == code))
        .collect();
    match of.as_slice() {
        [] => Err(BundleError::NoNodeOf(code)),
        [one] => Ok(one.node_id),
        many => Err(BundleError::SeveralNodesOf(
            code,
            many.len(),
            many.iter()
                .map(|p| format!("{} {}", p.name, p.node_id.short()))
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

/// What an export wrote.
#[derive(Clone, Debug, Serialize)]
pub struct Exported {
    /// The node it is for.
    pub recipient: NodeId,
    /// Per document, how many changes it carries.
    pub documents: Vec<(String, usize)>,
    /// Changes in all.
    pub changes: usize,
    /// Whether a receipt left out what the recipient holds.
    pub since: bool,
    /// The bundle's bytes.
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

/// Exports what `recipient` may read here (all of it, or the documents in `docs`), leaving out
/// what `since` (the recipient's receipt of a bundle from this node) says it holds; records
/// those heads as shared with the recipient, as a sync session would. `say` is told the
/// progress.
pub fn export(
    node: &mut Node,
    recipient: &NodeId,
    docs: &[DocId],
    since: Option<&Receipt>,
    say: &dyn Fn(String),
) -> Result<Exported, BundleError> {
    let me = node.id();
    if *recipient == me {
        return Err(BundleError::ToSelf);
    }
    if node.store.peer(recipient)?.is_none() {
        return Err(BundleError::RecipientNotPinned(*recipient));
    }
    if let Some(r) = since {
        if r.importer != *recipient {
            return Err(BundleError::ReceiptNotRecipient(r.importer, *recipient));
        }
        if r.exporter != me {
            return Err(BundleError::ReceiptNotMine(r.exporter));
        }
    }
    let chosen: Vec<DocId> = if docs.is_empty() {
        let all: Vec<DocId> = node
            .store
            .doc_ids()?
            .into_iter()
            .filter(|d| can_read(node, recipient, d))
            .collect();
        if all.is_empty() {
            return Err(BundleError::NothingReadable(*recipient));
        }
        all
    } else {
        let mut out = Vec::new();
        for d in docs {
            if node.store.heads(d)?.is_none() {
                return Err(BundleError::NotHeld(d.clone()));
            }
            if !can_read(node, recipient, d) {
                return Err(BundleError::NotReadable(d.clone(), *recipient));
            }
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    };
    let known_of = |doc: &DocId| -> Vec<ChangeHash> {
        since
            .and_then(|r| r.docs.iter().find(|(d, _)| d == doc))
            .map(|(_, h)| h.clone())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    let mut total = 0usize;
    for (i, doc) in chosen.iter().enumerate() {
        say(format!(
            "Exporting {doc} ({} of {}), {total} change(s) so far",
            i + 1,
            chosen.len()
        ));
        let known = known_of(doc);
        let Some((heads, changes)) = node.store.with_ledger(doc, |l| {
            let heads = l.settled().map(|s| s.offered.clone()).unwrap_or_default();
            let changes: Vec<SignedChange> = l
                .exported_since(&known)
                .iter()
                .filter_map(|h| l.signed(h))
                .collect();
            (heads, changes)
        })?
        else {
            continue;
        };
        total += changes.len();
        if total > MAX_BUNDLE_CHANGES {
            return Err(BundleError::TooManyChanges(total));
        }
        out.push(BundleDoc {
            doc: doc.clone(),
            heads,
            changes,
        });
    }
    let contents = Contents {
        recipient: *recipient,
        created: node.now(),
        hello: crate::host::hello(node),
        docs: out,
    };
    let bytes = seal(&node.home.key, &contents)?;
    if let Some(r) = since {
        // The recipient signed that it holds these heads: a later session with it starts from
        // them too.
        for (doc, heads) in &r.docs {
            if can_read(node, recipient, doc) {
                add_shared(node, recipient, doc, heads)?;
            }
        }
    }
    Ok(Exported {
        recipient: *recipient,
        documents: contents
            .docs
            .iter()
            .map(|d| (d.doc.to_string(), d.changes.len()))
            .collect(),
        changes: total,
        since: since.is_some(),
        bytes,
    })
}

/// Adds `heads` (held by the peer, by its own word or because it exported them) to what this
/// node knows it and the peer both hold of `doc`: the heads of both sets, as held here.
fn add_shared(
    node: &Node,
    peer: &NodeId,
    doc: &DocId,
    heads: &[ChangeHash],
) -> Result<(), StoreError> {
    let mut both = node.store.shared_heads(peer, doc)?;
    both.extend(heads.iter().copied());
    if let Some(shared) = node.store.with_ledger(doc, |l| l.held_heads_of(&both))? {
        node.store.set_shared_heads(peer, doc, &shared)?;
    }
    Ok(())
}

/// What an import did with one document.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DocImport {
    /// The document.
    pub doc: String,
    /// Changes the bundle carries for it.
    pub changes: usize,
    /// Newly held.
    pub new: usize,
    /// Held already.
    pub known: usize,
    /// Refused (by the gate, or with the whole document).
    pub refused: usize,
    /// Waiting for changes this node does not hold (not kept).
    pub waiting: usize,
    /// Why the document was not taken at all, if it was not.
    pub not_taken: Option<String>,
}

/// What an import did.
#[derive(Clone, Debug, Serialize)]
pub struct Imported {
    /// Who exported the bundle.
    pub exporter: NodeId,
    /// Its name, as its bundle says.
    pub exporter_name: String,
    /// sha256 of the bundle file, in hex.
    pub bundle: String,
    /// Unix seconds when it was made.
    pub created: i64,
    /// Its size.
    pub bytes: usize,
    /// Per document.
    pub documents: Vec<DocImport>,
    /// Newly held changes, in all.
    pub new: usize,
    /// Changes held already.
    pub known: usize,
    /// Changes refused.
    pub refused: usize,
    /// Changes waiting for what this node does not hold.
    pub waiting: usize,
    #[serde(skip)]
    digest: [u8; 32],
}

impl Imported {
    /// Whether the bundle changed nothing here: everything in it was held already.
    pub fn nothing_new(&self) -> bool {
        self.new == 0 && self.refused == 0 && self.waiting == 0
    }
}

/// Why a document of a bundle is not taken at all.
enum Refusal {
    Store(StoreError),
    Gate(usize, String),
    NotReader,
    Waiting(usize),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e)
    }
}

/// Verifies a bundle and takes its changes as from a session with its exporter (see the
/// module's documentation). Each document is taken in one transaction, or not at all.
pub fn import(
    node: &mut Node,
    bytes: &[u8],
    say: &dyn Fn(String),
) -> Result<Imported, BundleError> {
    let (exporter, recipient, created) = fixed(bytes)?;
    let me = node.id();
    if exporter == me {
        return Err(BundleError::OwnBundle);
    }
    let Some(peer) = node.store.peer(&exporter)? else {
        return Err(BundleError::UnknownExporter(exporter));
    };
    check_signature(bytes, &exporter, BUNDLE_DOMAIN, "bundle")?;
    if recipient != me {
        return Err(BundleError::NotForMe { recipient, me });
    }
    let v =
        structure(bytes, exporter, created).map_err(|why| BundleError::Malformed(exporter, why))?;
    let mut parked = Parked::default();
    let mut events = HostEvents::default();
    NodeHost {
        node: &mut *node,
        parked: &mut parked,
        events: &mut events,
    }
    .hello(&exporter, &v.hello)
    .map_err(|why| BundleError::Hello(exporter, why))?;
    // The hello may have taught this node the exporter's State or body key.
    let trust = node.store.trust();
    let pinned = node.store.peer(&exporter)?.and_then(|p| p.pinned_as);
    let now = node.now();
    let mut report = Imported {
        exporter,
        exporter_name: peer.name.clone(),
        bundle: crate::format::hex(&digest(bytes)),
        created: v.created,
        bytes: bytes.len(),
        documents: Vec::new(),
        new: 0,
        known: 0,
        refused: 0,
        waiting: 0,
        digest: digest(bytes),
    };
    let mut done = 0usize;
    for g in &v.docs {
        say(format!(
            "Importing {} ({done} of {} change(s) done)",
            g.doc, v.changes
        ));
        let mut d = DocImport {
            doc: g.doc.to_string(),
            changes: g.changes,
            ..DocImport::default()
        };
        let takeable = NodeHost {
            node: &mut *node,
            parked: &mut parked,
            events: &mut events,
        }
        .takeable(&exporter, &g.doc);
        if !takeable {
            d.refused = g.changes;
            d.not_taken = Some(if g.doc.is_draft() {
                "a draft, taken only from its own State's or body's nodes".into()
            } else {
                "no key of its owner is trusted here, so it cannot be checked: trust it (`poa-node trust CODE --state-key KEY`) and import again".into()
            });
        } else if g.changes > 0 {
            let outcome = node.store.transact(|tx| -> Result<DocImport, Refusal> {
                let mut d = d.clone();
                let mut waiting: Vec<SignedChange> = Vec::new();
                for r in &g.frames {
                    // Decoded once already, within the same bounds.
                    let f =
                        decode_frame(v.bytes, r).map_err(|why| Refusal::Gate(g.changes, why))?;
                    let mut batch = std::mem::take(&mut waiting);
                    batch.extend(f.changes);
                    let out = tx.apply(&g.doc, batch, Source::Peer(exporter), now)?;
                    d.new += out.accepted.len();
                    if let Some((_, r)) = out.rejected.iter().find(|(_, r)| r.counts_against_peer())
                    {
                        return Err(Refusal::Gate(out.rejected.len(), r.to_string()));
                    }
                    d.refused += out.rejected.len();
                    waiting = out.waiting.into_iter().map(|(_, c, _)| c).collect();
                    if waiting.len() > MAX_PARKED_PER_PEER {
                        return Err(Refusal::Waiting(waiting.len()));
                    }
                }
                let today = poa_protocol::date::Date::from_unix_seconds(now);
                if !tx_can_read(tx, &g.doc, &exporter, pinned.as_ref(), &trust, today)? {
                    return Err(Refusal::NotReader);
                }
                d.waiting = waiting.len();
                d.known = d.changes.saturating_sub(d.new + d.refused + d.waiting);
                Ok(d)
            });
            match outcome {
                Ok(taken) => {
                    d = taken;
                    if d.new > 0 {
                        flag_authors(node, &g.doc);
                    }
                }
                Err(Refusal::Store(e)) => return Err(e.into()),
                Err(refusal) => {
                    let why = match refusal {
                        Refusal::Gate(n, first) => {
                            format!("the gate refused {n} of its changes; the first: {first}")
                        }
                        Refusal::NotReader => format!(
                            "node {} may not read it here, so its changes are not taken from it",
                            exporter.short()
                        ),
                        Refusal::Waiting(n) => format!(
                            "{n} of its changes wait for changes neither this node nor the bundle holds"
                        ),
                        Refusal::Store(_) => String::new(),
                    };
                    let _ = node.store.audit_event(
                        now,
                        "bundle",
                        Some(&g.doc),
                        Some(&exporter),
                        &format!("{} change(s) of a bundle not taken: {why}", g.changes),
                    );
                    d = DocImport {
                        doc: g.doc.to_string(),
                        changes: g.changes,
                        refused: g.changes,
                        not_taken: Some(why),
                        ..DocImport::default()
                    };
                }
            }
        }
        if d.not_taken.is_none() {
            // What the exporter held when it exported, held here now, is held by both.
            add_shared(node, &exporter, &g.doc, &g.heads)?;
        }
        done += g.changes;
        report.new += d.new;
        report.known += d.known;
        report.refused += d.refused;
        report.waiting += d.waiting;
        report.documents.push(d);
    }
    if report.new > 0 {
        let _ = node.store.audit_event(
            now,
            "bundle",
            None,
            Some(&exporter),
            &format!(
                "imported a bundle of {} document(s) from {}: {} change(s) new, {} known, {} refused",
                v.docs.len(),
                peer.name,
                report.new,
                report.known,
                report.refused
            ),
        );
    }
    Ok(report)
}

/// Records what a document now proves about its authors, as a session does after taking
/// changes.
fn flag_authors(node: &Node, doc: &DocId) {
    let flagged = node
        .store
        .with_ledger(doc, |l| l.settled().map(|s| s.flagged.clone()))
        .ok()
        .flatten()
        .flatten()
        .unwrap_or_default();
    for (author, why) in flagged {
        let _ = node.store.flag_peer(&author, &why);
    }
}

/// The receipt of an import, signed by this node: per document of the bundle that this node
/// holds and the exporter may read here, the heads held now. Documents the exporter may not
/// read here are not named.
pub fn receipt(node: &Node, imported: &Imported) -> Result<Vec<u8>, BundleError> {
    let mut docs = Vec::new();
    for d in &imported.documents {
        let Ok(doc) = d.doc.parse::<DocId>() else {
            continue;
        };
        if !can_read(node, &imported.exporter, &doc) {
            continue;
        }
        if let Some(heads) = node.store.offered_heads(&doc)? {
            docs.push((doc, heads));
        }
    }
    seal_receipt(
        &node.home.key,
        &Receipt {
            importer: node.id(),
            exporter: imported.exporter,
            bundle: imported.digest,
            created: node.now(),
            docs,
        },
    )
}
