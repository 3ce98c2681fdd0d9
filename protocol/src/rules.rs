//! The one gate every change passes before it is applied, on every path: a local write, a change
//! from a peer, a relayed change, a document reloaded from disk.
//!
//! The verdict reads only the change, its signature and the document's own history before it, so
//! every honest node reaches the same verdict whatever order changes arrive in.

use std::collections::{HashMap, HashSet};

use automerge::{Automerge, Change, ChangeHash, ReadDoc};

use crate::authority::{Denied, Trust, authorize};
use crate::doc::{DocId, genesis_actor, genesis_hash};
use crate::id::NodeId;
use crate::sign::{Signature, change_signing_bytes, claimed_author, verify};

/// Who wrote an accepted change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Author {
    /// The deterministic genesis every node computes.
    Genesis,
    /// A node, proven by its signature.
    Node(NodeId),
}

/// Why a change was refused. The text is for people: it names the node and says why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The change came without a signature.
    #[error("change {hash} has no signature")]
    Unsigned {
        /// The change.
        hash: String,
    },
    /// The actor id is not a NodeId plus suffix.
    #[error("change {hash} has actor {actor}, which is not a poa node's actor id")]
    ForeignActor {
        /// The change.
        hash: String,
        /// Its actor, hex.
        actor: String,
    },
    /// The signature does not verify against the claimed author.
    #[error("change {hash} by node {author} rejected: its signature does not verify")]
    BadSignature {
        /// The change.
        hash: String,
        /// Who it claims to be from.
        author: NodeId,
    },
    /// A change claims to be the genesis but is not the one every node computes.
    #[error("change {hash} claims the genesis actor of {doc} but is not its genesis")]
    FalseGenesis {
        /// The change.
        hash: String,
        /// The document.
        doc: String,
    },
    /// The change was rejected before; it is refused again without a second look.
    #[error("change {hash} was rejected before")]
    AlreadyRejected {
        /// The change.
        hash: String,
    },
    /// The author may not write what the change touches.
    #[error("change {hash} by node {author} rejected: {denied}")]
    Denied {
        /// The change.
        hash: String,
        /// Its author.
        author: NodeId,
        /// Why.
        denied: Denied,
    },
    /// The change depends on one that was rejected.
    #[error("change {hash} depends on rejected change {dep}")]
    DependsOnRejected {
        /// The change.
        hash: String,
        /// The rejected ancestor.
        dep: String,
    },
}

fn short(hash: &ChangeHash) -> String {
    hash.to_string()[..12].to_string()
}

/// Decides whether `change` may be applied to `doc_id`. `before` must hold the change's
/// dependencies; it is read as of those dependencies, never later.
///
/// The genesis is recomputed; every other change must carry a signature by the NodeId its actor
/// id claims, and that author must be allowed to write every path the change touches, as of
/// the change's causal past ([`authorize`]).
pub fn check_change(
    trust: &Trust,
    doc_id: &DocId,
    before: &Automerge,
    change: &Change,
    signature: Option<&Signature>,
) -> Result<Author, Rejection> {
    let hash = change.hash();
    if change.actor_id() == &genesis_actor(doc_id) {
        return if hash == genesis_hash(doc_id) {
            Ok(Author::Genesis)
        } else {
            Err(Rejection::FalseGenesis {
                hash: short(&hash),
                doc: doc_id.to_string(),
            })
        };
    }
    let Some(author) = claimed_author(change.actor_id()) else {
        return Err(Rejection::ForeignActor {
            hash: short(&hash),
            actor: change.actor_id().to_hex_string(),
        });
    };
    let Some(signature) = signature else {
        return Err(Rejection::Unsigned { hash: short(&hash) });
    };
    if !verify(&author, &change_signing_bytes(doc_id, &hash), signature) {
        return Err(Rejection::BadSignature {
            hash: short(&hash),
            author,
        });
    }
    authorize(trust, doc_id, before, change, &author).map_err(|denied| Rejection::Denied {
        hash: short(&hash),
        author,
        denied,
    })?;
    Ok(Author::Node(author))
}

/// A change offered for application, with the signature that travelled with it.
#[derive(Clone, Debug)]
pub struct Incoming {
    /// The change.
    pub change: Change,
    /// Its signature, if any came.
    pub signature: Option<Signature>,
}

/// What [`apply_checked`] did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Applied, in the order they were applied.
    pub accepted: Vec<(ChangeHash, Author)>,
    /// Refused, with the reason.
    pub rejected: Vec<(ChangeHash, Rejection)>,
    /// Held back: a dependency is neither in the document nor in the batch.
    pub waiting: Vec<ChangeHash>,
    /// Already in the document.
    pub duplicate: usize,
}

/// Applies what passes [`check_change`] to `doc`, in causal order, one change at a time so each is
/// judged against exactly its causal past. Anything that depends on a rejected change is
/// rejected too. The rejected hashes in `known_bad` (from earlier batches) count as rejected.
pub fn apply_checked(
    trust: &Trust,
    doc_id: &DocId,
    doc: &mut Automerge,
    incoming: Vec<Incoming>,
    known_bad: &HashSet<ChangeHash>,
) -> Applied {
    let mut out = Applied::default();
    let mut pending: HashMap<ChangeHash, Incoming> = HashMap::new();
    for inc in incoming {
        let hash = inc.change.hash();
        if has_change(doc, &hash) {
            out.duplicate += 1;
        } else {
            pending.insert(hash, inc);
        }
    }
    let mut bad: HashSet<ChangeHash> = known_bad.clone();
    loop {
        let mut progressed = false;
        let mut hashes: Vec<ChangeHash> = pending.keys().copied().collect();
        // Sorted so the outcome does not depend on hash-map order.
        hashes.sort();
        for hash in hashes {
            let Some(inc) = pending.get(&hash) else {
                continue;
            };
            if bad.contains(&hash) {
                pending.remove(&hash);
                out.rejected
                    .push((hash, Rejection::AlreadyRejected { hash: short(&hash) }));
                progressed = true;
                continue;
            }
            if let Some(dep) = inc.change.deps().iter().find(|d| bad.contains(d)) {
                let dep = *dep;
                pending.remove(&hash);
                bad.insert(hash);
                out.rejected.push((
                    hash,
                    Rejection::DependsOnRejected {
                        hash: short(&hash),
                        dep: short(&dep),
                    },
                ));
                progressed = true;
                continue;
            }
            let ready = inc.change.deps().iter().all(|d| has_change(doc, d));
            if !ready {
                continue;
            }
            let Some(inc) = pending.remove(&hash) else {
                continue;
            };
            progressed = true;
            match check_change(trust, doc_id, doc, &inc.change, inc.signature.as_ref()) {
                Ok(author) => match doc.apply_changes([inc.change]) {
                    Ok(()) => out.accepted.push((hash, author)),
                    Err(e) => {
                        bad.insert(hash);
                        out.rejected.push((
                            hash,
                            Rejection::ForeignActor {
                                hash: short(&hash),
                                actor: format!("(automerge refused it: {e})"),
                            },
                        ));
                    }
                },
                Err(r) => {
                    bad.insert(hash);
                    out.rejected.push((hash, r));
                }
            }
        }
        if !progressed {
            break;
        }
    }
    let mut waiting: Vec<ChangeHash> = pending.into_keys().collect();
    waiting.sort();
    out.waiting = waiting;
    out
}

/// Whether `peer` may read `doc`: a State's own nodes read all its documents, drafts included;
/// anyone else reads a non-draft document only if its share list names them or is public. The
/// list lives in the document itself, signed, so relays enforce it exactly as the author would.
pub fn may_read(
    doc: &DocId,
    readers: &std::collections::BTreeSet<String>,
    peer: &NodeId,
    peer_state: Option<crate::id::StateCode>,
) -> bool {
    let own_states_node = doc.state().is_some() && doc.state() == peer_state;
    match doc {
        DocId::Draft(_) => own_states_node,
        _ => {
            own_states_node
                || readers.contains(crate::doc::PUBLIC)
                || readers.contains(&peer.to_string())
        }
    }
}

/// Whether `doc` holds the change `hash` (applied, not merely queued: we never queue).
pub fn has_change(doc: &Automerge, hash: &ChangeHash) -> bool {
    doc.get_missing_deps(&[*hash]).is_empty()
}

/// Re-verifies a document loaded from disk against the changes and signatures stored beside it.
/// Every stored change must pass [`check_change`], the stored set must be closed under
/// dependencies, and the document must hold exactly that set. A document with one unsigned or
/// wrongly signed change does not load.
pub fn verify_document(
    trust: &Trust,
    doc_id: &DocId,
    doc: &Automerge,
    stored: &[Incoming],
) -> Result<(), Rejection> {
    let hashes: HashSet<ChangeHash> = stored.iter().map(|i| i.change.hash()).collect();
    for inc in stored {
        check_change(trust, doc_id, doc, &inc.change, inc.signature.as_ref())?;
        if let Some(dep) = inc.change.deps().iter().find(|d| !hashes.contains(d)) {
            return Err(Rejection::Unsigned { hash: short(dep) });
        }
    }
    let heads = doc.get_heads();
    let unverified = heads.iter().find(|h| !hashes.contains(h));
    if let Some(h) = unverified {
        return Err(Rejection::Unsigned { hash: short(h) });
    }
    if doc.stats().num_changes != hashes.len() as u64 {
        return Err(Rejection::Unsigned {
            hash: "(a change of the snapshot)".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::{Grant, GrantKind, Scope, SignedGrant};
    use crate::doc::{genesis, put_record, target_key};
    use crate::sign::{NodeKey, actor_id, sign_change};

    fn write(
        doc_id: &DocId,
        doc: &mut Automerge,
        key: &NodeKey,
        title: &str,
    ) -> (Change, Signature) {
        doc.set_actor(actor_id(&key.node_id(), &[1; 8]));
        let mut tx = doc.transaction();
        let mut t = crate::model::tests::xaa_t1();
        t.title = title.into();
        t.id = title.into();
        put_record(&mut tx, "targets", &target_key(title, 1), &t).unwrap();
        let (hash, _) = tx.commit();
        let hash = hash.unwrap();
        let change = doc.get_change_by_hash(&hash).unwrap();
        (change, sign_change(key, doc_id, &hash))
    }

    /// A State document whose first change delegates `key` (scope all) under the State key
    /// that `trust` knows, with that change and its signature.
    fn delegated(key: &NodeKey) -> (DocId, Automerge, Trust, Incoming) {
        let id: DocId = "state/XAA".parse().unwrap();
        let state_key = NodeKey::from_seed(&[4; 32]);
        let mut trust = Trust::default();
        trust
            .state_keys
            .insert("XAA".parse().unwrap(), state_key.node_id());
        let grant = SignedGrant::sign(
            &state_key,
            Grant {
                kind: GrantKind::Delegation,
                state: "XAA".parse().unwrap(),
                node: key.node_id(),
                scope: Some(Scope::ALL),
                expires: None,
                issued: "2026-01-01".parse().unwrap(),
                state_key: state_key.node_id(),
            },
        );
        let mut doc = genesis(&id);
        doc.set_actor(actor_id(&key.node_id(), &[1; 8]));
        let mut tx = doc.transaction();
        crate::doc::put_value(
            &mut tx,
            "delegations",
            &key.node_id().to_string(),
            &serde_json::Value::String(grant.to_text()),
        )
        .unwrap();
        let hash = tx.commit().0.unwrap();
        let change = doc.get_change_by_hash(&hash).unwrap();
        let signature = Some(sign_change(key, &id, &hash));
        (id, doc, trust, Incoming { change, signature })
    }

    fn setup() -> (DocId, Automerge, NodeKey, Trust, Automerge) {
        let key = NodeKey::from_seed(&[3; 32]);
        let (id, doc, trust, _) = delegated(&key);
        let base = doc.clone();
        (id, doc, key, trust, base)
    }

    #[test]
    fn a_signed_change_is_accepted_by_a_fresh_node() {
        let (id, mut doc, key, trust, base) = setup();
        let (change, sig) = write(&id, &mut doc, &key, "T1");
        let mut other = base.clone();
        let out = apply_checked(
            &trust,
            &id,
            &mut other,
            vec![Incoming {
                change,
                signature: Some(sig),
            }],
            &HashSet::new(),
        );
        assert_eq!(out.accepted.len(), 1);
        assert_eq!(out.accepted[0].1, Author::Node(key.node_id()));
        assert_eq!(other.get_heads(), doc.get_heads());
    }

    #[test]
    fn a_flipped_bit_in_the_signature_is_rejected() {
        let (id, mut doc, key, trust, base) = setup();
        let (change, mut sig) = write(&id, &mut doc, &key, "T1");
        sig[10] ^= 1;
        let before = base.clone();
        assert!(matches!(
            check_change(&trust, &id, &before, &change, Some(&sig)),
            Err(Rejection::BadSignature { .. })
        ));
    }

    #[test]
    fn a_flipped_bit_in_the_change_is_rejected() {
        let (id, mut doc, key, trust, base) = setup();
        let (change, sig) = write(&id, &mut doc, &key, "T1");
        let mut raw = change.raw_bytes().to_vec();
        // Flip a bit in the change body (past the chunk header). Either the chunk checksum
        // catches it and the change does not parse, or it parses with another hash and the
        // signature no longer verifies.
        let at = raw.len() - 3;
        raw[at] ^= 0x01;
        match Change::from_bytes(raw) {
            Err(_) => {}
            Ok(altered) => {
                let before = base.clone();
                assert!(check_change(&trust, &id, &before, &altered, Some(&sig)).is_err());
            }
        }
    }

    #[test]
    fn a_signature_for_another_document_does_not_verify() {
        let (id, mut doc, key, trust, base) = setup();
        let (change, _) = write(&id, &mut doc, &key, "T1");
        let other: DocId = "state/XAA/draft".parse().unwrap();
        let sig = sign_change(&key, &other, &change.hash());
        assert!(check_change(&trust, &id, &base, &change, Some(&sig)).is_err());
    }

    #[test]
    fn unsigned_changes_and_their_descendants_are_rejected() {
        let (id, mut doc, key, trust, base) = setup();
        let (c1, _) = write(&id, &mut doc, &key, "T1");
        let (c2, s2) = write(&id, &mut doc, &key, "T2");
        let mut other = base.clone();
        let out = apply_checked(
            &trust,
            &id,
            &mut other,
            vec![
                Incoming {
                    change: c2,
                    signature: Some(s2),
                },
                Incoming {
                    change: c1,
                    signature: None,
                },
            ],
            &HashSet::new(),
        );
        assert!(out.accepted.is_empty());
        assert_eq!(out.rejected.len(), 2);
        assert!(matches!(out.rejected[0].1, Rejection::Unsigned { .. }));
        assert!(matches!(
            out.rejected[1].1,
            Rejection::DependsOnRejected { .. }
        ));
    }

    #[test]
    fn a_document_with_an_unsigned_change_does_not_verify() {
        let key = NodeKey::from_seed(&[3; 32]);
        let (id, mut doc, trust, deleg) = delegated(&key);
        let (c1, s1) = write(&id, &mut doc, &key, "T1");
        let (c2, s2) = write(&id, &mut doc, &key, "T2");
        let g = genesis(&id).get_changes(&[]).remove(0);
        let rows = |s1: Option<Signature>, s2: Option<Signature>| {
            vec![
                Incoming {
                    change: g.clone(),
                    signature: None,
                },
                deleg.clone(),
                Incoming {
                    change: c1.clone(),
                    signature: s1,
                },
                Incoming {
                    change: c2.clone(),
                    signature: s2,
                },
            ]
        };
        assert_eq!(
            verify_document(&trust, &id, &doc, &rows(Some(s1), Some(s2))),
            Ok(())
        );
        assert!(matches!(
            verify_document(&trust, &id, &doc, &rows(Some(s1), None)),
            Err(Rejection::Unsigned { .. })
        ));
        assert!(matches!(
            verify_document(&trust, &id, &doc, &rows(Some(s2), Some(s2))),
            Err(Rejection::BadSignature { .. })
        ));
        // A snapshot holding a change the stored rows do not vouch for does not verify.
        let mut partial = rows(Some(s1), Some(s2));
        partial.pop();
        assert!(verify_document(&trust, &id, &doc, &partial).is_err());
    }

    #[test]
    fn read_rules() {
        let xaa: crate::id::StateCode = "XAA".parse().unwrap();
        let xab: crate::id::StateCode = "XAB".parse().unwrap();
        let peer = NodeKey::from_seed(&[8; 32]).node_id();
        let none = std::collections::BTreeSet::new();
        let listed: std::collections::BTreeSet<String> = [peer.to_string()].into();
        let public: std::collections::BTreeSet<String> = ["*".to_string()].into();
        let draft = DocId::Draft(xaa);
        let published = DocId::State(xaa);
        assert!(may_read(&draft, &public, &peer, Some(xaa)));
        assert!(!may_read(&draft, &public, &peer, Some(xab)));
        assert!(!may_read(&draft, &listed, &peer, None));
        assert!(may_read(&published, &none, &peer, Some(xaa)));
        assert!(!may_read(&published, &none, &peer, Some(xab)));
        assert!(may_read(&published, &listed, &peer, None));
        assert!(may_read(&published, &public, &peer, None));
    }

    #[test]
    fn a_false_genesis_is_rejected() {
        let id: DocId = "state/XAA".parse().unwrap();
        let mut fake = Automerge::new().with_actor(genesis_actor(&id));
        let mut tx = fake.transaction();
        use automerge::transaction::Transactable;
        tx.put(automerge::ROOT, "schema", 99u64).unwrap();
        let (hash, _) = tx.commit();
        let change = fake.get_change_by_hash(&hash.unwrap()).unwrap();
        assert!(matches!(
            check_change(&Trust::default(), &id, &Automerge::new(), &change, None),
            Err(Rejection::FalseGenesis { .. })
        ));
    }
}
