//! Who may speak for whom: the principal keys a node trusts, and the signed grants by which a
//! principal key lets nodes write its documents.
//!
//! A State's key (or a body's) never writes documents itself. It signs **delegations** that let
//! a node (one per ministry, say) write the principal's documents, within a scope and until an
//! expiry, and **revocations** that end them. Grants are stored in the principal's own documents,
//! one canonical JSON text per grant under a key derived from its content, so every node can
//! check them whoever relayed them, and no one can write a grant the key did not sign.
//!
//! A revocation carries a **cut-off**: for each document and each actor of the revoked node, the
//! last sequence number that stands. Everything else that node wrote in those documents is void
//! on every node, whatever its dependencies or timestamp say, including changes that arrived
//! before the revocation. A revoked node therefore cannot backdate a change into validity.
//!
//! Trust in a principal key comes only from a source the operator chose (see [`TrustSource`]):
//! never from a document's content.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::date::Date;
use crate::doc::DocId;
use crate::id::{NodeId, Principal};
use crate::model::Area;
use crate::sign::{NodeKey, Signature, verify};

/// How a node came to trust a principal key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustSource {
    /// This node holds the key.
    OwnKey,
    /// A node the operator pinned as a node of the principal presented it in its hello.
    PinnedNode(NodeId),
    /// The operator gave it (`poa-node trust`).
    Operator,
    /// A peer the operator chose as an introducer vouched for it.
    Introducer(NodeId),
}

impl std::fmt::Display for TrustSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrustSource::OwnKey => f.write_str("this node holds the key"),
            TrustSource::PinnedNode(n) => write!(f, "presented by pinned node {}", n.short()),
            TrustSource::Operator => f.write_str("given by the operator"),
            TrustSource::Introducer(n) => write!(f, "vouched for by introducer {}", n.short()),
        }
    }
}

/// Which principal keys this node trusts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trust {
    /// Principal → the key that speaks for it (the root of its key chain).
    pub keys: BTreeMap<Principal, NodeId>,
    /// Principal → its recovery key, where known: it signs the recoveries the chain follows.
    pub recovery: BTreeMap<Principal, NodeId>,
}

impl Trust {
    /// The recovery key of the principal a document is bound to, if this node knows it.
    pub fn recovery_for_doc(&self, doc: &DocId) -> Option<&NodeId> {
        doc.principal().and_then(|p| self.recovery.get(&p))
    }

    /// The key that speaks for `principal`, if known.
    pub fn key(&self, principal: &Principal) -> Option<&NodeId> {
        self.keys.get(principal)
    }

    /// The key a document is bound to, if this node trusts one (pools carry their own).
    pub fn key_for_doc(&self, doc: &DocId) -> Option<&NodeId> {
        doc.principal().and_then(|p| self.keys.get(&p))
    }

    /// A trust with one more key (tests and simple callers).
    pub fn with(mut self, principal: Principal, key: NodeId) -> Trust {
        self.keys.insert(principal, key);
        self
    }
}

/// What a delegation lets a node write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scope {
    /// Everything of the principal's documents (the word `all`).
    All(AllMarker),
    /// Only records of these commitment areas.
    Areas(Vec<Area>),
}

/// The literal `"all"` in a scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllMarker {
    /// All.
    All,
}

impl Scope {
    /// Everything.
    pub const ALL: Scope = Scope::All(AllMarker::All);

    /// Whether the scope covers an area.
    pub fn covers(&self, area: Area) -> bool {
        match self {
            Scope::All(_) => true,
            Scope::Areas(a) => a.contains(&area),
        }
    }

    /// Whether the scope covers everything.
    pub fn is_all(&self) -> bool {
        matches!(self, Scope::All(_))
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::All(_) => f.write_str("all"),
            Scope::Areas(a) => {
                f.write_str(&a.iter().map(|a| a.slug()).collect::<Vec<_>>().join(", "))
            }
        }
    }
}

/// The last change of one actor of a revoked node that stands, in one document.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cutoff {
    /// The document.
    pub doc: DocId,
    /// The actor, hex (NodeId and suffix).
    pub actor: String,
    /// Its last sequence number that stands.
    pub seq: u64,
    /// The hash (hex) of its last change that stands: with it, exactly that change and the
    /// actor's changes in its causal past stand, so a change signed at a kept position after
    /// the revocation (a twin) neither stands nor voids what was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
}

/// The signed part of a delegation or revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// `delegation` or `revocation`.
    pub kind: GrantKind,
    /// The State or body whose key signs it.
    pub principal: Principal,
    /// The node it is about.
    pub node: NodeId,
    /// What it may write (delegations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Last day it is valid (delegations). The principal's key-holding node revokes the
    /// delegation, with a cut-off, once that day has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Date>,
    /// When the principal key signed it.
    pub issued: Date,
    /// The principal key that signed it.
    pub key: NodeId,
    /// Revocations: the changes of the revoked node that stand, per document and actor;
    /// everything else it wrote there is void. Delegations that replace an earlier one: the
    /// changes still judged under the delegation they were written under.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cutoff: Vec<Cutoff>,
    /// Delegations: how many delegations of this node the key signed before this one. The
    /// highest serial decides (then the later issue date), so a delegation replaced on the
    /// day it was issued is replaced for certain.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub serial: u32,
    /// Rotations and recoveries: the grants (by storage key) of the keys they retire that
    /// still stand. Every other grant those keys signed, before or after, is void.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    /// Recoveries: the recovery key from this one on (the same one when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<NodeId>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Delegation, revocation, or a change of the principal's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantKind {
    /// Lets a node write for the principal.
    Delegation,
    /// Ends a node's delegation, keeping only what the cut-off names.
    Revocation,
    /// The principal's key hands over to a new key (`node`), signed by the key it retires;
    /// `serial` is the epoch it belongs to.
    Rotation,
    /// The recovery key replaces the principal's key (lost or leaked) by a new one (`node`),
    /// starting epoch `serial`.
    Recovery,
}

impl GrantKind {
    /// The container grants of this kind live in.
    pub fn container(&self) -> &'static str {
        match self {
            GrantKind::Delegation => "delegations",
            GrantKind::Revocation => "revocations",
            GrantKind::Rotation | GrantKind::Recovery => "rotations",
        }
    }
}

/// A grant with the principal key's signature. Stored as its canonical JSON text (the one
/// [`SignedGrant::to_text`] writes) under [`SignedGrant::storage_key`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedGrant {
    /// What is granted.
    #[serde(flatten)]
    pub grant: Grant,
    /// The principal key's signature over the grant, hex.
    pub signature: String,
}

/// The most cut-off entries one revocation may carry.
pub const MAX_CUTOFFS: usize = 256;

/// The most grants one rotation or recovery may keep.
pub const MAX_KEPT: usize = 512;

fn grant_bytes(grant: &Grant) -> Vec<u8> {
    let mut msg = b"poa/grant/v2\0".to_vec();
    // serde_json writes struct fields in declaration order: the bytes are canonical.
    msg.extend_from_slice(&serde_json::to_vec(grant).unwrap_or_default());
    msg
}

/// Why a grant text does not hold up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadGrant {
    /// Not JSON of a signed grant.
    #[error("it is not a signed grant: {0}")]
    Parse(String),
    /// Parses, but is not written the one canonical way.
    #[error("it is not in canonical form (a grant is stored exactly as it was signed)")]
    NotCanonical,
    /// Bad signature bytes, or a signature that does not verify.
    #[error("its signature does not verify")]
    Signature,
    /// Signed by another key than the one trusted.
    #[error("it is signed by {0}, not by {1}")]
    WrongKey(NodeId, String),
    /// About another principal, node or kind than where it is stored.
    #[error("it does not match where it is stored: {0}")]
    Misplaced(String),
    /// Too many cut-off or kept entries.
    #[error("it has more than {MAX_CUTOFFS} cut-off entries or {MAX_KEPT} kept grants")]
    TooLarge,
}

impl SignedGrant {
    /// Signs a grant with the principal key.
    pub fn sign(principal_key: &NodeKey, grant: Grant) -> SignedGrant {
        let sig = principal_key.sign(&grant_bytes(&grant));
        SignedGrant {
            grant,
            signature: data_encoding::HEXLOWER.encode(&sig),
        }
    }

    /// The canonical text form.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The key it is stored under: the node, then the first 8 bytes of sha256 over the text.
    /// One grant has one place, so it cannot be stored twice under different keys.
    pub fn storage_key(&self) -> String {
        let digest = <sha2::Sha256 as sha2::Digest>::digest(self.to_text().as_bytes());
        format!(
            "{}/{}",
            self.grant.node,
            data_encoding::HEXLOWER.encode(&digest[..8])
        )
    }

    /// Parses a stored text and checks that it is canonical and that its signature verifies
    /// against the key it names. Whether that key is the trusted one is the caller's check.
    ///
    /// The same grant is checked for many changes: texts whose signature verified are
    /// remembered (per thread, a bounded set of digests) and only parsed again.
    pub fn parse(text: &str) -> Result<SignedGrant, BadGrant> {
        thread_local! {
            static VERIFIED: std::cell::RefCell<std::collections::HashSet<[u8; 32]>> =
                std::cell::RefCell::new(std::collections::HashSet::new());
        }
        const REMEMBERED: usize = 4096;
        if text.len() > crate::change::MAX_VALUE {
            return Err(BadGrant::TooLarge);
        }
        let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()).into();
        let g: SignedGrant =
            serde_json::from_str(text).map_err(|e| BadGrant::Parse(e.to_string()))?;
        if g.grant.cutoff.len() > MAX_CUTOFFS || g.grant.kept.len() > MAX_KEPT {
            return Err(BadGrant::TooLarge);
        }
        if g.to_text() != text {
            return Err(BadGrant::NotCanonical);
        }
        if VERIFIED.with(|v| v.borrow().contains(&digest)) {
            return Ok(g);
        }
        let sig: Signature = data_encoding::HEXLOWER
            .decode(g.signature.as_bytes())
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
            .ok_or(BadGrant::Signature)?;
        if !verify(&g.grant.key, &grant_bytes(&g.grant), &sig) {
            return Err(BadGrant::Signature);
        }
        VERIFIED.with(|v| {
            let mut v = v.borrow_mut();
            if v.len() >= REMEMBERED {
                v.clear();
            }
            v.insert(digest);
        });
        Ok(g)
    }

    /// A grant read back from a document's view (parsed JSON), with its signature checked
    /// against the key it names. The text was checked canonical when its change was judged.
    pub fn from_value(v: &serde_json::Value) -> Result<SignedGrant, BadGrant> {
        let g: SignedGrant =
            serde_json::from_value(v.clone()).map_err(|e| BadGrant::Parse(e.to_string()))?;
        Self::parse(&g.to_text())
    }

    /// Parses a text stored at `key` of `kind`'s container of a document of `principal`
    /// bound to `trusted` (a key, or the chain of keys a document's rotations make of it), and
    /// checks it belongs there.
    pub fn parse_at(
        text: &str,
        key: &str,
        kind: GrantKind,
        principal: &Principal,
        trusted: &impl Signers,
    ) -> Result<SignedGrant, BadGrant> {
        let g = Self::parse(text)?;
        if g.grant.kind != kind {
            return Err(BadGrant::Misplaced(format!(
                "a {:?} in {}",
                g.grant.kind,
                kind.container()
            )));
        }
        if g.grant.principal != *principal {
            return Err(BadGrant::Misplaced(format!(
                "a grant of {}",
                g.grant.principal
            )));
        }
        if g.storage_key() != key {
            return Err(BadGrant::Misplaced(format!("stored at {key}")));
        }
        if !trusted.accepts(&g) {
            return Err(BadGrant::WrongKey(
                g.grant.key,
                format!(
                    "{}'s {} {}",
                    principal.code(),
                    principal.key_name(),
                    trusted.current()
                ),
            ));
        }
        Ok(g)
    }
}

/// Whose signature makes a grant valid in a document.
pub trait Signers {
    /// Whether `grant` is signed by a key that speaks for the document's principal.
    fn accepts(&self, grant: &SignedGrant) -> bool;
    /// The key that signs new grants.
    fn current(&self) -> &NodeId;
}

impl Signers for NodeId {
    fn accepts(&self, grant: &SignedGrant) -> bool {
        grant.grant.key == *self
    }
    fn current(&self) -> &NodeId {
        self
    }
}

/// The principal's keys as a document's rotations and recoveries make them, from the key this
/// node trusts for the principal (the *root*) and, if known, its recovery key.
///
/// Decided over the set of records held, never their order or dates:
/// - epochs: epoch 0 starts with the root. Epoch *n*+1 starts with the key of the one
///   recovery for *n*+1 signed by epoch *n*'s recovery key (the root's recovery key, or the one
///   the last recovery named). None, and the chain stays in epoch *n*. Two different ones
///   (the recovery key signed twice: it leaked, perhaps after it was retired) freeze the
///   chain: no key is in force and no rotation is followed, for good. Falling back to epoch
///   *n*'s key would hand the State back to the key the recovery was made to retire; a leaked
///   recovery key can stop the State, never speak for it, and the State's operators set a new
///   root on every node (`poa-node trust CODE --state-key KEY`);
/// - in the last epoch, rotations: from its first key, the one rotation of that epoch signed
///   by the key in force leads to the next key. Two different ones (a fork: the key signed
///   twice, perhaps a retired key that leaked) freeze the chain: no key is in force and none
///   of the forked key's grants stands, until a recovery (what a fork keeps is the signer's
///   word, and the signer is the one that cannot be told from a thief);
/// - at a fork, the chain reads the two records with the smallest storage keys: two prove the
///   fork, whichever two, so a node needs (and offers) no more, however many a thief signs;
/// - a grant stands if the key in force signed it, or a recovery, or a rotation of the last
///   epoch's chain, keeps it (names its storage key). Every other grant of a retired key is
///   void, whenever it was signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyChain {
    /// The key the node trusts for the principal.
    pub root: NodeId,
    /// The key in force: it signs new grants.
    pub current: NodeId,
    /// The epoch the key in force belongs to (0 until a recovery).
    pub epoch: u32,
    /// The grants of retired keys that stand, by storage key.
    pub kept: std::collections::BTreeSet<String>,
    /// The keys retired, oldest first, with how each was retired.
    pub retired: Vec<(NodeId, GrantKind)>,
    /// What a person should know: a fork, a recovery this node cannot check, a recovery key
    /// that signed twice.
    pub notes: Vec<String>,
    /// A key in force signed two different rotations, or a recovery key two recoveries for one
    /// epoch: no key is in force (nothing it signed stands), until a recovery (a rotation
    /// fork) or a new root (a recovery fork).
    pub frozen: bool,
    /// The keys of the last epoch, from its first to the one in force.
    pub epoch_keys: Vec<NodeId>,
    /// The recovery key in force: it signs the next epoch's recovery.
    pub recovery: Option<NodeId>,
    /// The recovery key that signed the recovery starting the last epoch, if any.
    pub entered_by: Option<NodeId>,
    /// The storage keys of the records the chain followed or stopped at (a fork's two
    /// smallest): every node must hold these to follow the same chain, and needs no others.
    pub read: std::collections::BTreeSet<String>,
    /// Of those, the records it stopped at (a fork's two smallest): they prove the fork and
    /// freeze the chain, and stand nowhere, so that which two a node read (a flood can make
    /// that differ) changes no verdict and no view.
    pub forks: std::collections::BTreeSet<String>,
}

/// A key chain's keys as the cheap screen of authors reads them: a grant counts if the chain
/// accepts it or a key of the last epoch signed it (its first key, the keys its rotations
/// retired, the one in force). Whether the grant stands is judged later; the screen only
/// keeps strangers out. Judged by the chain's acceptance alone, a node that took a thief's
/// rotation first would refuse the State node's own earlier changes, and with them the
/// recovery built on them (found by the red team in session 23). Keys of earlier epochs do
/// not count: once a recovery is held, what they signed passes only if the recovery kept it,
/// or if a writer's change needs it (see `Ledger::wanted_by_writer`); otherwise a leaked
/// key the State recovered from still let a thief's sock puppets in without end (red team,
/// session 25).
#[derive(Debug)]
pub struct EverHeld<'a>(pub &'a KeyChain);

impl Signers for EverHeld<'_> {
    fn accepts(&self, grant: &SignedGrant) -> bool {
        let c = self.0;
        c.accepts(grant) || c.epoch_keys.contains(&grant.grant.key)
    }
    fn current(&self) -> &NodeId {
        &self.0.current
    }
}

impl Signers for KeyChain {
    fn accepts(&self, grant: &SignedGrant) -> bool {
        (grant.grant.key == self.current && !self.frozen)
            || self.kept.contains(&grant.storage_key())
    }
    fn current(&self) -> &NodeId {
        &self.current
    }
}

/// The most rotations followed in one epoch.
pub const MAX_ROTATIONS: usize = 1024;

/// The most recoveries followed: an honest State recovers a handful of times in its life; a
/// thief holding a recovery key that names its own next one could otherwise add epochs
/// without end.
pub const MAX_EPOCHS: u32 = 256;

/// The most records one key signs at one step of the chain (one kind, one epoch) that a node
/// holds: a fork is proved by two, and the chain reads no more than the two smallest, so the
/// rest of a thief's flood is refused at the door.
pub const MAX_FORKS: usize = 16;

/// Where a record sits in the chain: its kind (0 rotation, 1 recovery), epoch and signer. The
/// records at one point are one step, or a fork.
pub fn chain_point(g: &SignedGrant) -> (u8, u32, NodeId) {
    (
        u8::from(g.grant.kind == GrantKind::Recovery),
        g.grant.serial,
        g.grant.key,
    )
}

impl KeyChain {
    /// A root key with no rotation.
    pub fn root(root: NodeId) -> KeyChain {
        KeyChain {
            root,
            current: root,
            epoch: 0,
            kept: Default::default(),
            retired: Vec::new(),
            notes: Vec::new(),
            frozen: false,
            epoch_keys: vec![root],
            recovery: None,
            entered_by: None,
            read: Default::default(),
            forks: Default::default(),
        }
    }

    /// Stops the chain at a fork among `records` (sorted by storage key): it reads the two
    /// smallest, which prove the fork whichever two a node holds, and no key is in force.
    fn freeze_at<'a>(&mut self, records: impl Iterator<Item = &'a SignedGrant>) {
        for g in records.take(2) {
            let k = g.storage_key();
            self.read.insert(k.clone());
            self.forks.insert(k);
        }
        self.frozen = true;
    }

    /// The chain `records` make from `root` and its recovery key. `records` are rotations and
    /// recoveries of the principal, each stored at its own storage key, signature checked;
    /// anything else is ignored, and so is a copy of one already given.
    pub fn resolve(
        root: NodeId,
        recovery: Option<NodeId>,
        records: impl IntoIterator<Item = SignedGrant>,
    ) -> KeyChain {
        let mut by_key: BTreeMap<String, SignedGrant> = BTreeMap::new();
        for g in records {
            if matches!(g.grant.kind, GrantKind::Rotation | GrantKind::Recovery) {
                // Two records at one storage key (a truncated digest) are told apart by their
                // text, never by which came first.
                match by_key.entry(g.storage_key()) {
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert(g);
                    }
                    std::collections::btree_map::Entry::Occupied(mut o) => {
                        if g.to_text() < o.get().to_text() {
                            o.insert(g);
                        }
                    }
                }
            }
        }
        // Indexed by (kind, epoch, signer): each step of the chain is a lookup, not a scan.
        let mut index: BTreeMap<(u8, u32, NodeId), Vec<&SignedGrant>> = BTreeMap::new();
        // In storage-key order (`by_key` is sorted), so a fork's first two are its smallest.
        for g in by_key.values() {
            index.entry(chain_point(g)).or_default().push(g);
        }
        let mut chain = KeyChain::root(root);
        let mut rec = recovery;
        while let Some(next) = chain.epoch.checked_add(1).filter(|n| *n <= MAX_EPOCHS) {
            let found = index
                .range((1, next, NodeId([0; 32]))..=(1, next, NodeId([0xff; 32])))
                .next()
                .is_some();
            let signed: Vec<&&SignedGrant> = rec
                .and_then(|r| index.get(&(1, next, r)))
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            match signed.as_slice() {
                [one] => {
                    chain.read.insert(one.storage_key());
                    chain.retired.push((chain.current, GrantKind::Recovery));
                    chain.kept.extend(one.grant.kept.iter().cloned());
                    chain.current = one.grant.node;
                    chain.epoch = next;
                    chain.epoch_keys = vec![one.grant.node];
                    chain.entered_by = Some(one.grant.key);
                    rec = one.grant.recovery.or(rec);
                }
                [] => {
                    if found {
                        chain.notes.push(if rec.is_none() {
                            format!(
                                "a key recovery (epoch {next}) is held that this node cannot check: it knows no recovery key for this principal"
                            )
                        } else {
                            format!(
                                "a key recovery (epoch {next}) is held that the recovery key this node knows did not sign"
                            )
                        });
                    }
                    break;
                }
                _ => {
                    chain.freeze_at(signed.iter().map(|g| **g));
                    chain.notes.push(format!(
                        "the recovery key signed {} different recoveries for epoch {next}: it has leaked, no key is in force, and the State's operators must set a new State key on every node (`poa-node trust CODE --state-key KEY`)",
                        signed.len()
                    ));
                    break;
                }
            }
        }
        // Rotations of the last epoch, from its first key on.
        let mut rotation_kept: Vec<String> = Vec::new();
        let mut seen = std::collections::BTreeSet::from([chain.current]);
        for _ in 0..MAX_ROTATIONS {
            if chain.frozen {
                break;
            }
            let from = chain.current;
            let next: Vec<&SignedGrant> = index
                .get(&(0, chain.epoch, from))
                .cloned()
                .unwrap_or_default();
            match next.as_slice() {
                [one] if !seen.contains(&one.grant.node) => {
                    seen.insert(one.grant.node);
                    chain.read.insert(one.storage_key());
                    chain.retired.push((from, GrantKind::Rotation));
                    rotation_kept.extend(one.grant.kept.iter().cloned());
                    chain.current = one.grant.node;
                    chain.epoch_keys.push(one.grant.node);
                }
                [] | [_] => break,
                forks => {
                    // The two smallest prove the fork; which two (and how many more a thief
                    // signed) changes no verdict, so no node needs the rest.
                    chain.freeze_at(forks.iter().copied());
                    // Whoever holds the key signed twice, a thief holding a retired key
                    // among them: no rotation is followed, and the key they fork from is not
                    // in force either, so that a leaked retired key never gets its power
                    // back. None of its grants stands either: what a fork keeps is the word of
                    // a signer that cannot be told from the thief (and a thief's fork that
                    // keeps everything would make "what every fork keeps" the honest fork's
                    // whole list). A recovery keeps what the State still wants.
                    chain.notes.push(format!(
                        "key {} signed {} different rotations: no key is in force until a recovery (`poa-node state-key recover`)",
                        from.short(),
                        forks.len()
                    ));
                    break;
                }
            }
        }
        chain.kept.extend(rotation_kept);
        chain.recovery = rec;
        chain
    }
}

/// Why a change does not stand. The text is for people: it says why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// No key is known for the document's principal.
    #[error(
        "no {key_name} is known here for {code}: pin one of its nodes (`poa-node peer add NODEID@HOST:PORT --{kind} {code}`) or give it (`poa-node trust {code} --{kind}-key KEY`)"
    )]
    NoKey {
        /// The principal's code.
        code: String,
        /// "State key" or "body key".
        key_name: &'static str,
        /// "state" or "body".
        kind: &'static str,
    },
    /// The author holds no delegation.
    #[error("not delegated by {0}'s key")]
    NotDelegated(String),
    /// Void by a revocation's cut-off.
    #[error("its author was revoked by {0}, and this change is past the revocation's cut-off")]
    Revoked(String),
    /// The delegation expired before the change's own date.
    #[error("its delegation from {principal} expired on {expires}")]
    Expired {
        /// The principal.
        principal: String,
        /// The last valid day.
        expires: Date,
    },
    /// The delegation's scope does not cover what the change touches.
    #[error("its delegation covers {scope}, not {touched}")]
    OutOfScope {
        /// The scope.
        scope: String,
        /// What it touched.
        touched: String,
    },
    /// A path nobody may write this way.
    #[error("it writes {path}: {why}")]
    Forbidden {
        /// The path.
        path: String,
        /// Why not.
        why: String,
    },
    /// A grant that does not hold up.
    #[error("it stores a bad grant at {path}: {why}")]
    BadGrant {
        /// The path.
        path: String,
        /// Why.
        why: BadGrant,
    },
    /// Only the pool's coordinator writes this.
    #[error("only the coordinator of {0} writes it")]
    NotCoordinator(String),
    /// A pool member writing another member's section.
    #[error("only {0}'s member nodes write its part of the pool")]
    NotMember(String),
    /// A State joining a pool it was not invited to.
    #[error("{0} was not invited to this pool: its coordinator runs `poa-node pool invite` first")]
    NotInvited(String),
    /// Two signed changes with one actor and sequence number: proof of misbehaviour.
    #[error("its author {0} signed two different changes at one position (equivocation)")]
    Equivocation(NodeId),
    /// An author using more actor ids in one document than any honest node does.
    #[error("its author {0} wrote with more actor ids than a node ever needs")]
    TooManyActors(NodeId),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(key: &NodeKey, node: &NodeKey) -> SignedGrant {
        SignedGrant::sign(
            key,
            Grant {
                kind: GrantKind::Delegation,
                principal: Principal::State("XAA".parse().unwrap()),
                node: node.node_id(),
                scope: Some(Scope::ALL),
                expires: None,
                issued: "2026-01-01".parse().unwrap(),
                key: key.node_id(),
                cutoff: vec![],
                serial: 0,
                kept: Vec::new(),
                recovery: None,
            },
        )
    }

    #[test]
    fn a_grant_is_canonical_signed_and_stored_in_one_place() {
        let key = NodeKey::from_seed(&[1; 32]);
        let node = NodeKey::from_seed(&[2; 32]);
        let g = grant(&key, &node);
        let text = g.to_text();
        let at = g.storage_key();
        let xaa = Principal::State("XAA".parse().unwrap());
        let ok = SignedGrant::parse_at(&text, &at, GrantKind::Delegation, &xaa, &key.node_id());
        assert_eq!(ok, Ok(g.clone()));
        // Any other serialisation of the same grant is refused: one grant, one text.
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        assert_eq!(SignedGrant::parse(&pretty), Err(BadGrant::NotCanonical));
        // The same fields in another order (serde_json's maps sort their keys).
        let sorted = serde_json::to_string(&v).unwrap();
        assert_ne!(sorted, text);
        assert_eq!(SignedGrant::parse(&sorted), Err(BadGrant::NotCanonical));
        // Elsewhere, by another key, or tampered: refused.
        assert!(matches!(
            SignedGrant::parse_at(&text, "x/y", GrantKind::Delegation, &xaa, &key.node_id()),
            Err(BadGrant::Misplaced(_))
        ));
        assert!(matches!(
            SignedGrant::parse_at(&text, &at, GrantKind::Revocation, &xaa, &key.node_id()),
            Err(BadGrant::Misplaced(_))
        ));
        assert!(matches!(
            SignedGrant::parse_at(&text, &at, GrantKind::Delegation, &xaa, &node.node_id()),
            Err(BadGrant::WrongKey(..))
        ));
        let tampered = text.replace("2026-01-01", "2025-01-01");
        assert_eq!(SignedGrant::parse(&tampered), Err(BadGrant::Signature));
    }
}
