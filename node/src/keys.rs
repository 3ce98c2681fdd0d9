//! A State's (or body's) key through its life: the chain of keys every node follows from the
//! key it trusts, a planned rotation signed by the key in force, and a recovery signed by the
//! recovery key when the key is lost or leaked.
//!
//! Both are records in the principal's own documents (`rotations`), judged by the gate over
//! the whole set held (see `poa_protocol::authority::KeyChain`): a rotation keeps the grants of
//! the retired key this node holds, a recovery those this node placed itself; every other grant
//! the retired key signed, before or after, is void on every node that follows the chain.
//!
//! The new key is written beside the current one (`state.key.next`) before the record commits,
//! and takes its place after; a crash in between is settled when the node next opens: the
//! staged key is taken if the chain names it, dropped otherwise.

use poa_protocol::NodeId;
use poa_protocol::authority::{Grant, GrantKind, KeyChain, MAX_KEPT, SignedGrant, Signers};
use poa_protocol::doc::DocId;
use poa_protocol::sign::NodeKey;

use crate::node::{Node, NodeError, commit_with};

/// What a rotation or recovery did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KeyChange {
    /// `rotation` or `recovery`.
    pub kind: &'static str,
    /// The key retired.
    pub retired: String,
    /// The key in force now.
    pub current: String,
    /// The epoch the new key belongs to.
    pub epoch: u32,
    /// How many grants of the retired key(s) still stand.
    pub kept: usize,
    /// The nodes whose delegations the operator let lapse.
    pub lapsed: Vec<String>,
    /// The documents the record was written to.
    pub docs: Vec<String>,
}

impl KeyChange {
    fn lapsing(mut self, lapse: &[NodeId]) -> KeyChange {
        self.lapsed = lapse.iter().map(|n| n.to_string()).collect();
        self
    }
}

impl Node {
    /// The key chain of a held document's principal, from the key this node trusts for it;
    /// `None` if it trusts none.
    pub fn key_chain_of(&self, doc: &DocId) -> Result<Option<KeyChain>, NodeError> {
        let trust = self.store.trust();
        let Some(root) = trust.key_for_doc(doc).copied() else {
            return Ok(None);
        };
        let held = self
            .store
            .with_ledger(doc, |l| (*l.key_chain(&root)).clone())?;
        Ok(Some(held.unwrap_or_else(|| {
            KeyChain::resolve(root, trust.recovery_for_doc(doc).copied(), [])
        })))
    }

    /// The key chain of this node's own State or body.
    pub fn own_key_chain(&self) -> Result<Option<KeyChain>, NodeError> {
        let doc = self.own_grant_docs().remove(0);
        self.key_chain_of(&doc)
    }

    /// Hands this node's State or body key over to `new`: a rotation signed by the key in
    /// force, keeping every grant of it that stands here. Grants the old key signs after are
    /// void wherever the rotation is held.
    /// The delegations of the nodes in `lapse` are not kept: those nodes write nothing that
    /// stands until delegated again (`delegate`), by the new key.
    pub fn rotate_principal_key(
        &mut self,
        new: NodeKey,
        lapse: &[NodeId],
    ) -> Result<KeyChange, NodeError> {
        let chain = self.chain_for_change()?;
        let Some(key) = self.home.principal_key.as_ref() else {
            return Err(self.no_key());
        };
        if chain.frozen {
            return Err(NodeError::Key(
                "the key in force signed two different rotations (a fork): no key is in force until a recovery; run `poa-node state-key recover --recovery-key FILE`".into(),
            ));
        }
        if key.node_id() != chain.current {
            return Err(NodeError::Key(format!(
                "this node's key file holds {}, but the key in force is {}: it was rotated or recovered elsewhere; rotate on the node holding that key",
                key.node_id().short(),
                chain.current.short()
            )));
        }
        // Every grant that stands here now: signed by the key in force, or kept already.
        let mut grants = Vec::new();
        for doc in self.own_grant_docs() {
            if let Some(g) = self.store.with_ledger(&doc, |l| {
                l.grants_placed_by(None)
                    .into_iter()
                    .filter(|g| chain.accepts(g))
                    .collect::<Vec<_>>()
            })? {
                grants.extend(g);
            }
        }
        let kept = self.keep(grants, lapse)?;
        let signer = NodeKey::from_seed(&key.seed());
        let done = self.change_key(GrantKind::Rotation, &signer, new, kept, chain.epoch, &chain)?;
        Ok(done.lapsing(lapse))
    }

    /// Replaces this node's State or body key, lost or leaked, by `new`: a recovery signed by
    /// `recovery`, the recovery key. It keeps the grants this node placed itself in the
    /// published document (its delegations and revocations, whatever a thief's rotation did
    /// to them); every other grant of the replaced keys, the thief's among them, is void
    /// wherever it is held.
    /// The delegations of the nodes in `lapse` are not kept, as for a rotation. For each node
    /// in `keep`, the delegation of it in force here is kept too (see [`Node::held_delegation`]):
    /// on a new home, which placed no grant, that is how the State's ministries keep writing.
    pub fn recover_principal_key(
        &mut self,
        recovery: &NodeKey,
        new: NodeKey,
        lapse: &[NodeId],
        keep: &[NodeId],
    ) -> Result<KeyChange, NodeError> {
        let chain = self.chain_for_change()?;
        let principal = self.home.config.participant.principal();
        let trusted = self.store.trust().recovery.get(&principal).copied();
        if trusted != Some(recovery.node_id()) {
            return Err(NodeError::Key(match trusted {
                Some(t) => format!(
                    "that is not {}'s recovery key: the one this node knows is {}",
                    principal.code(),
                    t.short()
                ),
                None => format!(
                    "this node knows no recovery key for {}: only a home made by `init` since recovery keys exist has one",
                    principal.code()
                ),
            }));
        }
        // What this node placed in the published document, where `delegate` and `revoke`
        // write (and where a first node placed its own delegation). Nothing it placed only in
        // a draft: a body's node copies the published grants into its draft, a thief's among
        // them, and a copy says nothing of who issued the grant.
        let me = self.home.key.node_id();
        let published = self.own_grant_docs().swap_remove(0);
        let mut grants = self
            .store
            .with_ledger(&published, |l| l.grants_placed_by(Some(&me)))?
            .unwrap_or_default();
        for n in keep {
            grants.push(self.held_delegation(&published, &chain, n)?);
        }
        let kept = self.keep(grants, lapse)?;
        let epoch = chain
            .epoch
            .checked_add(1)
            .ok_or_else(|| NodeError::Key("no epoch is left".into()))?;
        let done = self.change_key(GrantKind::Recovery, recovery, new, kept, epoch, &chain)?;
        Ok(done.lapsing(lapse))
    }

    /// The delegation of `node` a recovery keeps when the operator names it: of those held in
    /// `doc` that `EverHeld` accepts (a key of the last epoch, or kept) and not expired, the
    /// latest (highest serial, then issue date), as `delegations` shows it. Refused if there
    /// is none.
    fn held_delegation(
        &self,
        doc: &DocId,
        chain: &KeyChain,
        node: &NodeId,
    ) -> Result<SignedGrant, NodeError> {
        let ever = poa_protocol::authority::EverHeld(chain);
        let today = self.clock.today();
        self.store
            .with_ledger(doc, |l| l.grants_placed_by(None))?
            .unwrap_or_default()
            .into_iter()
            .filter(|g| {
                g.grant.kind == GrantKind::Delegation
                    && g.grant.node == *node
                    && ever.accepts(g)
                    && g.grant.expires.is_none_or(|e| e >= today)
            })
            .max_by_key(|g| (g.grant.serial, g.grant.issued, g.storage_key()))
            .ok_or_else(|| {
                NodeError::Key(format!(
                    "no delegation of {node} by a key of {} is held here: check the node id (`poa-node delegations`)",
                    self.home.config.participant.principal().code()
                ))
            })
    }

    /// The storage keys of `grants` but the delegations of the nodes in `lapse`; each node
    /// in `lapse` must have one (a mistyped id is refused), and this node is never one.
    fn keep(
        &self,
        grants: Vec<SignedGrant>,
        lapse: &[NodeId],
    ) -> Result<std::collections::BTreeSet<String>, NodeError> {
        if lapse.contains(&self.id()) {
            return Err(NodeError::Key(
                "this node cannot let its own delegation lapse: it would sign nothing that stands"
                    .into(),
            ));
        }
        for n in lapse {
            if !grants
                .iter()
                .any(|g| g.grant.node == *n && g.grant.kind == GrantKind::Delegation)
            {
                return Err(NodeError::Key(format!(
                    "no delegation of {n} would be kept: check the node id (`poa-node delegations`)"
                )));
            }
        }
        Ok(grants
            .into_iter()
            .filter(|g| !(g.grant.kind == GrantKind::Delegation && lapse.contains(&g.grant.node)))
            .map(|g| g.storage_key())
            .collect())
    }

    fn no_key(&self) -> NodeError {
        let principal = self.home.config.participant.principal();
        NodeError::NoPrincipalKey(principal.code(), principal.key_name())
    }

    fn chain_for_change(&self) -> Result<KeyChain, NodeError> {
        self.own_key_chain()?
            .ok_or_else(|| NodeError::Key("this node trusts no key for its own principal".into()))
    }

    fn change_key(
        &mut self,
        kind: GrantKind,
        signer: &NodeKey,
        new: NodeKey,
        kept: std::collections::BTreeSet<String>,
        epoch: u32,
        chain: &KeyChain,
    ) -> Result<KeyChange, NodeError> {
        if kept.len() > MAX_KEPT {
            return Err(NodeError::Key(format!(
                "{} grants would be kept, more than one record holds ({MAX_KEPT})",
                kept.len()
            )));
        }
        let principal = self.home.config.participant.principal();
        let record = SignedGrant::sign(
            signer,
            Grant {
                kind,
                principal,
                node: new.node_id(),
                scope: None,
                expires: None,
                issued: self.clock.today(),
                key: signer.node_id(),
                cutoff: Vec::new(),
                serial: epoch,
                kept: kept.iter().cloned().collect(),
                recovery: None,
            },
        );
        self.home.stage_principal_key(&new)?;
        let docs = self.own_grant_docs();
        let now = self.now();
        let Node { home, store, .. } = self;
        let (root, next) = (chain.root, new.node_id());
        // A recovery from a node that no key delegates (a new home, after the State's nodes
        // were lost) stands nowhere, but every node's chain reads it: it is taken if, with
        // it, the chain here names the new key and the record is offered to peers.
        let carried = |l: &poa_protocol::ledger::Ledger,
                       h: &poa_protocol::automerge::ChangeHash| {
            kind == GrantKind::Recovery && l.is_exported(h) && l.key_chain(&root).current == next
        };
        let written = store.transact(|tx| {
            for doc in &docs {
                commit_with(tx, home, doc, now, &carried, |w, _| {
                    w.put_text(kind.container(), &record.storage_key(), record.to_text())
                })?;
            }
            Ok::<_, NodeError>(())
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(self.home.staged_key_path());
            return Err(e);
        }
        self.home.take_staged_key()?;
        Ok(KeyChange {
            kind: if kind == GrantKind::Rotation {
                "rotation"
            } else {
                "recovery"
            },
            retired: chain.current.to_string(),
            current: new.node_id().to_string(),
            epoch,
            kept: kept.len(),
            lapsed: Vec::new(),
            docs: docs.iter().map(|d| d.to_string()).collect(),
        })
    }

    /// Signs, with the principal key this node holds, its recovery key, once, if that key is
    /// still the trusted one (the chain's root): the vouch its hello carries, the same after
    /// any rotation. A failure to keep it is logged; the node works without it.
    pub(crate) fn vouch_recovery_key(&self) {
        let principal = self.home.config.participant.principal();
        let trust = self.store.trust();
        let (Some(key), Some(root), Some(recovery)) = (
            self.home.principal_key.as_ref(),
            trust.key(&principal),
            trust.recovery.get(&principal),
        ) else {
            return;
        };
        if key.node_id() != *root || matches!(self.store.recovery_vouch(&principal), Ok(Some(_))) {
            return;
        }
        let vouch = poa_protocol::wire::RecoveryVouch::sign(key, &principal, recovery);
        if let Err(e) = self.store.keep_recovery_vouch(&principal, &vouch) {
            tracing::warn!("could not keep the recovery key's vouch: {e}");
        }
    }

    /// Settles a key change a crash interrupted: the staged key becomes this node's key if
    /// the chain names it as the key in force, and is dropped otherwise.
    pub fn settle_staged_key(&mut self) -> Result<(), NodeError> {
        self.vouch_recovery_key();
        let staged = self.home.staged_key_path();
        if !staged.exists() {
            return Ok(());
        }
        let next = crate::home::read_key(&staged)?;
        let named = self
            .own_key_chain()?
            .is_some_and(|c| c.current == next.node_id());
        if named {
            self.home.take_staged_key()?;
        } else {
            std::fs::remove_file(&staged).map_err(|cause| crate::home::HomeError::Io {
                path: staged.clone(),
                cause,
            })?;
        }
        Ok(())
    }
}
