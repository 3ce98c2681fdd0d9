//! Node keys, actor ids and change signatures.
//!
//! An Automerge actor id is self-asserted: anyone can write a change claiming any actor. So each
//! change's actor id is the author's NodeId followed by a per-store suffix, and the author signs
//! the change hash (bound to the document id) with the node key. Signatures travel beside the
//! changes and are stored with them; any node can check any change, whoever relayed it.

use automerge::{ActorId, ChangeHash};
use ed25519_dalek::{Signer, SigningKey};

use crate::doc::DocId;
use crate::id::NodeId;

/// Bytes of the per-store suffix of an actor id.
pub const ACTOR_SUFFIX_LEN: usize = 8;
/// Bytes of an actor id written by a poa node.
pub const ACTOR_LEN: usize = 32 + ACTOR_SUFFIX_LEN;

/// An ed25519 signature.
pub type Signature = [u8; 64];

/// A node's (or a State's) signing key. Randomness comes from the caller: the core reads none.
pub struct NodeKey(SigningKey);

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKey({})", self.node_id().short())
    }
}

impl NodeKey {
    /// The key with this 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> NodeKey {
        NodeKey(SigningKey::from_bytes(seed))
    }

    /// The seed, for storing the key.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public identity.
    pub fn node_id(&self) -> NodeId {
        NodeId(self.0.verifying_key().to_bytes())
    }

    /// Signs raw bytes.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        self.0.sign(msg).to_bytes()
    }

    /// The underlying ed25519 key, for TLS certificates.
    pub fn signing_key(&self) -> &SigningKey {
        &self.0
    }
}

/// Verifies a signature by `signer` over `msg`.
pub fn verify(signer: &NodeId, msg: &[u8], signature: &Signature) -> bool {
    let Ok(key) = signer.verifying_key() else {
        return false;
    };
    key.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(signature))
        .is_ok()
}

/// The actor id a node writes with: its NodeId and the store's suffix.
pub fn actor_id(node: &NodeId, suffix: &[u8; ACTOR_SUFFIX_LEN]) -> ActorId {
    let mut bytes = [0u8; ACTOR_LEN];
    bytes[..32].copy_from_slice(&node.0);
    bytes[32..].copy_from_slice(suffix);
    ActorId::from(&bytes[..])
}

/// The author an actor id claims, if it has the poa shape.
pub fn claimed_author(actor: &ActorId) -> Option<NodeId> {
    let bytes = actor.to_bytes();
    if bytes.len() != ACTOR_LEN {
        return None;
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes[..32]);
    Some(NodeId(key))
}

/// What a change signature covers: a domain tag, the document id and the change hash. Binding the
/// document id means a signed change cannot be replayed as a change of another document.
pub fn change_signing_bytes(doc: &DocId, hash: &ChangeHash) -> Vec<u8> {
    let doc = doc.to_string();
    let mut msg = Vec::with_capacity(16 + doc.len() + 33);
    msg.extend_from_slice(b"poa/change/v1\0");
    msg.extend_from_slice(doc.as_bytes());
    msg.push(0);
    msg.extend_from_slice(&hash.0);
    msg
}

/// What a principal's key signs to vouch for its recovery key: a domain tag, the principal,
/// the signing key and the recovery key. A node that pinned one of the principal's nodes
/// learns the recovery key only with this signature, so a node whose own key leaked cannot
/// name a recovery key of its choosing.
pub fn recovery_vouch_bytes(
    principal: &crate::id::Principal,
    key: &NodeId,
    recovery: &NodeId,
) -> Vec<u8> {
    let principal = principal.to_string();
    let mut msg = Vec::with_capacity(24 + principal.len() + 64);
    msg.extend_from_slice(b"poa/recovery-key/v1\0");
    msg.extend_from_slice(principal.as_bytes());
    msg.push(0);
    msg.extend_from_slice(&key.0);
    msg.extend_from_slice(&recovery.0);
    msg
}

/// Signs a change of `doc`.
pub fn sign_change(key: &NodeKey, doc: &DocId, hash: &ChangeHash) -> Signature {
    key.sign(&change_signing_bytes(doc, hash))
}
