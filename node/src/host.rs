//! The node as the sync session sees it: [`NodeHost`] implements the session's
//! [`Host`] over the store, for the length of one message, and
//! holds the rules of the node's side of sync: what a peer may read (egress), what may be taken
//! from it and kept only if it may read the result (ingress), keys learnt from pinned nodes and
//! introducers, and changes parked until their dependencies arrive. It does no I/O beyond the
//! store and reads the time only from the node's clock, so the QUIC engine and the simulator
//! drive it alike.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use poa_protocol::authority::TrustSource;
use poa_protocol::automerge::ChangeHash;
use poa_protocol::change::SignedChange;
use poa_protocol::doc::DocId;
use poa_protocol::ledger::Ledger;
use poa_protocol::pool::PoolData;
use poa_protocol::rules::{Reader, may_read};
use poa_protocol::session::{Applied, Host};
use poa_protocol::wire::{Claim, Hello, PROTOCOL_VERSION, RecoveryVouch, Vouch};
use poa_protocol::{NodeId, Participant, Principal};

use crate::node::Node;
use crate::store::{Learned, Source, StoreError};

/// The most bytes of changes one peer may have waiting here for their dependencies.
pub const MAX_PARKED_BYTES_PER_PEER: usize = 16 << 20;
/// The most changes one peer may have waiting here for their dependencies.
pub const MAX_PARKED_PER_PEER: usize = 20_000;

/// Changes that arrived before their dependencies, by document, with who sent each, within
/// bounds per sender. A sender that goes over loses everything it parked and is disconnected;
/// what it sent comes again with its next session. A parked change is tried again only when
/// one of the dependencies it waits for arrives: what a peer sends costs work in proportion
/// to what it sends and what it completes, never to what waits.
#[derive(Debug, Default)]
pub struct Parked {
    by_doc: BTreeMap<DocId, DocParked>,
    bytes: HashMap<NodeId, usize>,
    count: HashMap<NodeId, usize>,
}

#[derive(Debug, Default)]
struct DocParked {
    /// Parked change → who sent it, the change, and the dependencies it waits for.
    changes: BTreeMap<ChangeHash, (NodeId, SignedChange, Vec<ChangeHash>)>,
    /// Dependency → the parked changes waiting for it.
    waiting_on: BTreeMap<ChangeHash, BTreeSet<ChangeHash>>,
    /// Sender → the parked changes it sent.
    by_sender: BTreeMap<NodeId, BTreeSet<ChangeHash>>,
}

impl DocParked {
    fn take(&mut self, hash: &ChangeHash) -> Option<(NodeId, SignedChange)> {
        let (from, c, missing) = self.changes.remove(hash)?;
        if let Some(mine) = self.by_sender.get_mut(&from) {
            mine.remove(hash);
            if mine.is_empty() {
                self.by_sender.remove(&from);
            }
        }
        for m in &missing {
            if let Some(w) = self.waiting_on.get_mut(m) {
                w.remove(hash);
                if w.is_empty() {
                    self.waiting_on.remove(m);
                }
            }
        }
        Some((from, c))
    }
}

fn change_bytes(c: &SignedChange) -> usize {
    64 + c.data.actor.len()
        + c.data.deps.len() * 32
        + c.data
            .ops
            .iter()
            .map(|o| o.key.len() + o.value().map_or(0, str::len) + 16)
            .sum::<usize>()
}

impl Parked {
    /// Parks changes (hash, change, missing dependencies) that wait for their dependencies,
    /// within the peer's bounds. Their signatures were checked before they got here. Returns
    /// an error when the peer would exceed them: it is disconnected.
    pub fn park(
        &mut self,
        doc: &DocId,
        from: NodeId,
        changes: Vec<(ChangeHash, SignedChange, Vec<ChangeHash>)>,
    ) -> Result<(), String> {
        if changes.is_empty() {
            return Ok(());
        }
        let p = self;
        let list = p.by_doc.entry(doc.clone()).or_default();
        let mut added_bytes = 0;
        let mut added = 0;
        for (h, c, missing) in changes {
            if list.changes.contains_key(&h) {
                continue;
            }
            added_bytes += change_bytes(&c);
            added += 1;
            for m in &missing {
                list.waiting_on.entry(*m).or_default().insert(h);
            }
            list.by_sender.entry(from).or_default().insert(h);
            list.changes.insert(h, (from, c, missing));
        }
        let bytes = p.bytes.entry(from).or_default();
        *bytes += added_bytes;
        let over_bytes = *bytes > MAX_PARKED_BYTES_PER_PEER;
        let count = p.count.entry(from).or_default();
        *count += added;
        if over_bytes || *count > MAX_PARKED_PER_PEER {
            // Let go of everything this peer parked: what it sent comes again on a later
            // connection, whose sessions start afresh.
            for l in p.by_doc.values_mut() {
                let theirs: Vec<ChangeHash> = l
                    .by_sender
                    .get(&from)
                    .map(|hs| hs.iter().copied().collect())
                    .unwrap_or_default();
                for h in theirs {
                    l.take(&h);
                }
            }
            p.by_doc.retain(|_, l| !l.changes.is_empty());
            p.bytes.remove(&from);
            p.count.remove(&from);
            return Err(format!(
                "more than {} MiB or {MAX_PARKED_PER_PEER} changes waiting for dependencies it never sent",
                MAX_PARKED_BYTES_PER_PEER >> 20
            ));
        }
        Ok(())
    }

    /// Takes out the changes parked for `doc` that wait for any of `arrived` (now held), to be
    /// tried again.
    pub fn release(&mut self, doc: &DocId, arrived: &[ChangeHash]) -> Vec<(NodeId, SignedChange)> {
        let Some(list) = self.by_doc.get_mut(doc) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for a in arrived {
            let Some(waiting) = list.waiting_on.remove(a) else {
                continue;
            };
            for h in waiting {
                if let Some((from, c)) = list.take(&h) {
                    if let Some(b) = self.bytes.get_mut(&from) {
                        *b = b.saturating_sub(change_bytes(&c));
                    }
                    if let Some(n) = self.count.get_mut(&from) {
                        *n = n.saturating_sub(1);
                    }
                    out.push((from, c));
                }
            }
        }
        if list.changes.is_empty() {
            self.by_doc.remove(doc);
        }
        out
    }

    /// The dependencies the changes parked for `doc` wait for that are not parked themselves,
    /// at most `limit` of them: those of the changes `peer` sent first, then a share of each
    /// other sender's ([`poa_protocol::session::fair_share`]). Lazy: the work is in proportion
    /// to what is returned and the parked chains passed over, not to all that waits.
    pub fn lacking(&self, doc: &DocId, peer: &NodeId, limit: usize) -> Vec<ChangeHash> {
        let Some(list) = self.by_doc.get(doc) else {
            return Vec::new();
        };
        let by_sender = list.by_sender.iter().map(|(from, hashes)| {
            let lacks = hashes
                .iter()
                .filter_map(|h| list.changes.get(h))
                .flat_map(|(_, _, missing)| missing.iter().copied())
                .filter(|m| !list.changes.contains_key(m));
            (*from, lacks)
        });
        poa_protocol::session::fair_share(peer, by_sender, limit)
    }

    /// How many changes wait, over all documents.
    pub fn len(&self) -> usize {
        self.by_doc.values().map(|d| d.changes.len()).sum()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.by_doc.is_empty()
    }

    /// Bytes and changes `peer` has waiting here.
    pub fn held_by(&self, peer: &NodeId) -> (usize, usize) {
        (
            self.bytes.get(peer).copied().unwrap_or(0),
            self.count.get(peer).copied().unwrap_or(0),
        )
    }
}

/// The hello this node sends now: who it is, whom it acts for, and the key of its State or
/// body as it trusts it.
pub fn hello(node: &Node) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        node: node.id(),
        name: node.home.config.name.clone(),
        claims: Claim::from(&node.home.config.participant),
        key: node
            .store
            .trust()
            .key(&node.home.config.participant.principal())
            .copied(),
        recovery: node
            .store
            .recovery_vouch(&node.home.config.participant.principal())
            .ok()
            .flatten(),
    }
}

/// What a node knows of a peer, to judge what it may read.
fn pinned_as(node: &Node, peer: &NodeId) -> Option<Principal> {
    node.store
        .peer(peer)
        .ok()
        .flatten()
        .and_then(|p| p.pinned_as)
}

/// A pool as this node reads it to decide what it sends: members whose delegation lapsed by
/// the node's clock read no more ([`PoolData::lapsed_on`]).
fn pool_data(node: &Node, doc: &DocId) -> Option<PoolData> {
    let DocId::Pool(id) = doc else { return None };
    let view = node.store.view(doc).ok()??;
    Some(PoolData::from_json(&view, id, &node.store.trust()).lapsed_on(node.clock.today()))
}

/// Whether `peer` may read `doc` as this node holds it (false if not held).
pub fn can_read(node: &Node, peer: &NodeId, doc: &DocId) -> bool {
    let own = node.home.config.participant.principal();
    // A draft never leaves its own State's nodes, and only this State's nodes hold one.
    if doc.is_draft() && doc.principal().as_ref() != Some(&own) {
        return false;
    }
    let Ok(Some(view)) = node.store.view(doc) else {
        return false;
    };
    let pinned = pinned_as(node, peer);
    may_read(
        doc,
        &view,
        Reader {
            node: peer,
            pinned_as: pinned.as_ref(),
        },
        |d| pool_data(node, d),
    )
}

/// The session's view of the node, for the length of one message: the node's store, its
/// clock, and the changes parked here.
#[derive(Debug)]
pub struct NodeHost<'a> {
    /// The node.
    pub node: &'a mut Node,
    /// Changes waiting for their dependencies.
    pub parked: &'a mut Parked,
    /// What the caller must pass on once the message is handled.
    pub events: &'a mut HostEvents,
}

/// How many documents offered without a trusted key the audit log names one by one while the
/// node runs.
pub const TRUST_NOTES: usize = 1000;

/// What handling a message changed that the I/O around the session must pass on.
#[derive(Debug, Default)]
pub struct HostEvents {
    /// The keys this node trusts changed.
    pub trust_changed: bool,
    /// Documents that took changes.
    pub accepted: BTreeSet<DocId>,
}

enum ApplyError {
    Store(StoreError),
    NotReader,
}

impl From<StoreError> for ApplyError {
    fn from(e: StoreError) -> Self {
        ApplyError::Store(e)
    }
}

impl NodeHost<'_> {
    /// Learns `principal`'s recovery key from `vouch` if `key`, the key trusted here for
    /// `principal`, signed it; from `peer`, a node pinned as one of the principal's, or an
    /// introducer. Returns whether a recovery key was learnt. A vouch that does not verify,
    /// or names another key than the one trusted, changes nothing and is written in the audit.
    fn learn_vouched_recovery(
        &mut self,
        principal: &Principal,
        key: &NodeId,
        vouch: Option<&RecoveryVouch>,
        peer: NodeId,
        introducer: bool,
    ) -> bool {
        let Some(v) = vouch else { return false };
        let store = &self.node.store;
        if store.trust().key(principal) != Some(key) {
            return false;
        }
        let now = self.node.now();
        let from = if introducer {
            format!("introducer {}", peer.short())
        } else {
            format!("pinned node {}", peer.short())
        };
        if !v.verify(principal, key) {
            let _ = store.audit_event(
                now,
                "conflict",
                None,
                Some(&peer),
                &format!(
                    "{from} presents {} as {}'s recovery key without a valid signature of {key}; ignored",
                    v.key,
                    principal.code()
                ),
            );
            return false;
        }
        let source = if introducer {
            TrustSource::Introducer(peer)
        } else {
            TrustSource::PinnedNode(peer)
        };
        match store.learn_recovery_key(principal, &v.key, &source, now) {
            Ok(Learned::New) => {
                let _ = store.keep_recovery_vouch(principal, v);
                let _ = store.audit_event(
                    now,
                    "trust",
                    None,
                    Some(&peer),
                    &format!(
                        "learnt {}'s recovery key {} from {from}, vouched for by {key}",
                        principal.code(),
                        v.key
                    ),
                );
                self.events.trust_changed = true;
                true
            }
            Ok(Learned::Known) => {
                let _ = store.keep_recovery_vouch(principal, v);
                false
            }
            Ok(Learned::Conflict { trusted, source }) => {
                let _ = store.audit_event(
                    now,
                    "conflict",
                    None,
                    Some(&peer),
                    &format!(
                        "{from} presents {} as {}'s recovery key, but {trusted} is trusted here ({source}); ignored",
                        v.key,
                        principal.code()
                    ),
                );
                false
            }
            Err(e) => {
                tracing::warn!(cause = %e, "could not record a recovery key");
                false
            }
        }
    }
}

impl Host for NodeHost<'_> {
    fn hello(&mut self, peer: &NodeId, h: &Hello) -> Result<(), String> {
        let now = self.node.now();
        let row = self.node.store.peer(peer).map_err(|e| e.to_string())?;
        let name = row
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_else(|| peer.short());
        let claimed = Participant::from(&h.claims).principal();
        let pinned = row.and_then(|p| p.pinned_as);
        if let Some(p) = &pinned
            && *p != claimed
        {
            return Err(format!(
                "pinned as a node of {}, but it says it acts for {}",
                p.code(),
                Participant::from(&h.claims)
            ));
        }
        // A key is learnt only from a node the operator pinned as a node of that State or
        // body; whatever anyone else says about keys is ignored.
        let (Some(p), Some(key)) = (pinned, h.key) else {
            return Ok(());
        };
        let learned = self
            .node
            .store
            .learn_key(&p, &key, &TrustSource::PinnedNode(*peer), now)
            .map_err(|e| e.to_string())?;
        match learned {
            Learned::New => {
                let _ = self.node.store.audit_event(
                    now,
                    "trust",
                    None,
                    Some(peer),
                    &format!(
                        "learnt {}'s {} {key} from pinned node {name}",
                        p.code(),
                        p.key_name()
                    ),
                );
                self.events.trust_changed = true;
                self.learn_vouched_recovery(&p, &key, h.recovery.as_ref(), *peer, false);
                Ok(())
            }
            Learned::Known => {
                self.learn_vouched_recovery(&p, &key, h.recovery.as_ref(), *peer, false);
                Ok(())
            }
            Learned::Conflict { trusted, source } => {
                let why = format!(
                    "node {peer} presents {key} as {}'s {}, but the key trusted here is {trusted} ({source}); refusing it",
                    p.code(),
                    p.key_name()
                );
                tracing::error!(peer = %peer.short(), "{why}");
                let _ = self
                    .node
                    .store
                    .audit_event(now, "conflict", None, Some(peer), &why);
                Err(why)
            }
        }
    }

    fn vouches(&mut self) -> Vec<Vouch> {
        self.node
            .store
            .first_hand_keys()
            .unwrap_or_default()
            .into_iter()
            .map(|(principal, key)| Vouch {
                recovery: self.node.store.recovery_vouch(&principal).ok().flatten(),
                principal,
                key,
            })
            .collect()
    }

    fn introduced(&mut self, peer: &NodeId, keys: Vec<Vouch>) -> bool {
        let is_introducer = self
            .node
            .store
            .peer(peer)
            .ok()
            .flatten()
            .is_some_and(|p| p.introducer);
        if !is_introducer {
            return false;
        }
        let now = self.node.now();
        let mut learnt = false;
        for v in keys {
            match self.node.store.learn_key(
                &v.principal,
                &v.key,
                &TrustSource::Introducer(*peer),
                now,
            ) {
                Ok(Learned::New) => {
                    learnt = true;
                    let _ = self.node.store.audit_event(
                        now,
                        "trust",
                        None,
                        Some(peer),
                        &format!(
                            "learnt {}'s {} {} from introducer {}",
                            v.principal.code(),
                            v.principal.key_name(),
                            v.key,
                            peer.short()
                        ),
                    );
                }
                Ok(Learned::Conflict { trusted, source }) => {
                    let _ = self.node.store.audit_event(
                        now,
                        "conflict",
                        None,
                        Some(peer),
                        &format!(
                            "introducer {} vouches for {} as {}'s {}, but {trusted} is trusted here ({source}); ignored",
                            peer.short(),
                            v.key,
                            v.principal.code(),
                            v.principal.key_name()
                        ),
                    );
                }
                _ => {}
            }
            learnt |=
                self.learn_vouched_recovery(&v.principal, &v.key, v.recovery.as_ref(), *peer, true);
        }
        if learnt {
            self.events.trust_changed = true;
        }
        learnt
    }

    fn offered(&mut self, peer: &NodeId) -> Vec<(DocId, Vec<ChangeHash>)> {
        let mut out = Vec::new();
        for doc in self.node.store.doc_ids().unwrap_or_default() {
            if can_read(self.node, peer, &doc)
                && let Ok(Some(h)) = self.node.store.offered_heads(&doc)
            {
                out.push((doc, h));
            }
        }
        out
    }

    fn expected(&mut self, peer: &NodeId) -> (Vec<DocId>, ([u8; 32], u32)) {
        self.node
            .store
            .peer_offers(peer)
            .unwrap_or_else(|_| (Vec::new(), ([0; 32], 0)))
    }

    fn set_expected(&mut self, peer: &NodeId, held: &[DocId], unheld: ([u8; 32], u32)) {
        if let Err(e) = self.node.store.set_peer_offers(peer, held, unheld) {
            tracing::warn!(cause = %e, "could not record a peer's listing");
        }
    }

    fn may_read(&mut self, peer: &NodeId, doc: &DocId) -> bool {
        can_read(self.node, peer, doc)
    }

    fn takeable(&mut self, peer: &NodeId, doc: &DocId) -> bool {
        let own = self.node.home.config.participant.principal();
        match doc {
            // Drafts come only from the principal's own nodes, to its own nodes.
            d if d.is_draft() => {
                doc.principal().as_ref() == Some(&own)
                    && pinned_as(self.node, peer).as_ref() == Some(&own)
            }
            // A pool is bound to its creator's key: anyone may bring it, the gate judges.
            DocId::Pool(_) => true,
            // A State's or body's document can be judged only with its key trusted.
            _ => {
                let trusted = self.node.store.trust().key_for_doc(doc).is_some();
                if !trusted {
                    self.note_trust_needed(peer, doc);
                }
                trusted
            }
        }
    }

    fn with_ledger<R>(&mut self, doc: &DocId, f: impl FnOnce(&Ledger) -> R) -> Option<R> {
        self.node.store.with_ledger(doc, f).ok().flatten()
    }

    fn shared(&mut self, peer: &NodeId, doc: &DocId) -> Vec<ChangeHash> {
        self.node.store.shared_heads(peer, doc).unwrap_or_default()
    }

    fn set_shared(&mut self, peer: &NodeId, doc: &DocId, shared: &[ChangeHash]) {
        if let Err(e) = self.node.store.set_shared_heads(peer, doc, shared) {
            tracing::warn!(cause = %e, "could not record shared heads");
        }
    }

    fn lacking(&mut self, peer: &NodeId, doc: &DocId) -> Vec<ChangeHash> {
        self.parked.lacking(doc, peer, poa_protocol::wire::MAX_NEED)
    }

    fn apply(
        &mut self,
        peer: &NodeId,
        doc: &DocId,
        changes: Vec<SignedChange>,
        _asked: bool,
    ) -> Applied {
        let mut out = Applied::default();
        let m = crate::metrics::metrics();
        let started = std::time::Instant::now();
        let applied = apply_from(self.node, peer, doc, changes);
        crate::metrics::observe(&m.gate_seconds, started.elapsed());
        match applied {
            Ok(outcome) => {
                out.allowed = true;
                m.changes_accepted.inc_by(outcome.accepted.len() as u64);
                for (_, r) in &outcome.rejected {
                    m.changes_rejected
                        .get_or_create(&crate::metrics::kind("reason", r.kind()))
                        .inc();
                }
                out.accepted = outcome.accepted.len();
                out.rejected = outcome
                    .rejected
                    .iter()
                    .map(|(_, r)| r.to_string())
                    .collect();
                out.counted = outcome
                    .rejected
                    .iter()
                    .filter(|(_, r)| r.counts_against_peer())
                    .count();
                out.waiting = outcome.waiting.len();
                if out.counted > 0 {
                    let _ = self.node.store.add_invalid(peer, out.counted);
                }
                if let Err(why) = self.parked.park(doc, *peer, outcome.waiting) {
                    out.fatal = Some(why);
                }
                if out.accepted > 0 {
                    // What the changes released from waiting is newly held too: counted, so
                    // a report says how much a round took (a change the peer's filter claimed
                    // by chance arrives last and releases everything after it).
                    let released = self.release_parked(doc, outcome.accepted);
                    m.changes_accepted.inc_by(released as u64);
                    out.accepted += released;
                    self.after_accept(doc);
                }
            }
            Err(ApplyError::NotReader) => out.allowed = false,
            Err(ApplyError::Store(e)) => {
                tracing::error!(cause = %e, doc = %doc, "could not store changes");
                out.fatal = Some(format!("this node could not store the changes: {e}"));
            }
        }
        out
    }
}

impl NodeHost<'_> {
    /// Says in the audit log that `doc` was offered with no key of its owner trusted: once
    /// per document while the node runs, and for at most [`TRUST_NOTES`] documents, then one
    /// row saying the rest go unnoted (red team, round 32: a peer listing 20,000 made-up
    /// bodies wrote 20,000 rows, every listing).
    fn note_trust_needed(&mut self, peer: &NodeId, doc: &DocId) {
        let noted = &mut self.node.trust_noted;
        if noted.len() > TRUST_NOTES || noted.contains(doc) {
            return;
        }
        let (what, detail) = if noted.len() == TRUST_NOTES {
            (
                None,
                format!(
                    "more documents were offered whose owners' keys are not trusted here; after {TRUST_NOTES} the rest are not noted one by one until the node restarts"
                ),
            )
        } else {
            (
                Some(doc),
                "offered, but no key of its owner is trusted here, so it cannot be checked: pin one of its nodes or run `poa-node trust`".to_string(),
            )
        };
        noted.insert(doc.clone());
        let now = self.node.now();
        let _ = self
            .node
            .store
            .audit_event(now, "trust-needed", what, Some(peer), &detail);
    }

    /// Tries again what waited for the changes that just arrived, each batch as from its own
    /// sender (so the audit names who sent what, and the read rule is applied to it), and
    /// then what waited for those, until nothing more applies. Returns how many it took.
    fn release_parked(&mut self, doc: &DocId, arrived: Vec<ChangeHash>) -> usize {
        let mut taken = 0;
        let mut arrived = arrived;
        while !arrived.is_empty() {
            let released = self.parked.release(doc, &arrived);
            arrived = Vec::new();
            let mut by_sender: BTreeMap<NodeId, Vec<SignedChange>> = BTreeMap::new();
            for (from, c) in released {
                by_sender.entry(from).or_default().push(c);
            }
            for (from, batch) in by_sender {
                // If the sender may no longer read it, or the store failed, let them go: they
                // come again with the sender's next session.
                if let Ok(outcome) = apply_from(self.node, &from, doc, batch) {
                    taken += outcome.accepted.len();
                    arrived.extend(outcome.accepted);
                    let _ = self.parked.park(doc, from, outcome.waiting);
                }
            }
        }
        taken
    }

    /// Records what a document now proves about its authors, and that it changed.
    fn after_accept(&mut self, doc: &DocId) {
        let flagged = self
            .node
            .store
            .with_ledger(doc, |l| l.settled().map(|s| s.flagged.clone()))
            .ok()
            .flatten()
            .flatten()
            .unwrap_or_default();
        for (author, why) in flagged {
            let _ = self.node.store.flag_peer(&author, &why);
        }
        self.events.accepted.insert(doc.clone());
    }
}

/// Passes a peer's changes through the gate into `doc` in one transaction, keeping them only if
/// the peer may read the document with them (the read rule for ingress).
fn apply_from(
    node: &mut Node,
    peer: &NodeId,
    doc: &DocId,
    batch: Vec<SignedChange>,
) -> Result<crate::store::Outcome, ApplyError> {
    let now = node.now();
    let trust = node.store.trust();
    let pinned = pinned_as(node, peer);
    node.store.transact(|tx| -> Result<_, ApplyError> {
        let outcome = tx.apply(doc, batch, Source::Peer(*peer), now)?;
        let today = poa_protocol::date::Date::from_unix_seconds(now);
        if !tx_can_read(tx, doc, peer, pinned.as_ref(), &trust, today)? {
            return Err(ApplyError::NotReader);
        }
        Ok(outcome)
    })
}

/// [`can_read`] inside a transaction, on the documents as the transaction sees them.
pub(crate) fn tx_can_read(
    tx: &mut crate::store::StoreTx<'_>,
    doc: &DocId,
    peer: &NodeId,
    pinned: Option<&Principal>,
    trust: &poa_protocol::authority::Trust,
    today: poa_protocol::date::Date,
) -> Result<bool, StoreError> {
    if !tx.holds(doc)? {
        return Ok(false);
    }
    let view = tx
        .with_ledger(doc, |l| l.settled().map(|s| s.view.clone()))?
        .unwrap_or_default();
    let mut ids: Vec<DocId> = poa_protocol::doc::readers(&view)
        .iter()
        .filter_map(|r| r.parse::<DocId>().ok())
        .filter(|d| matches!(d, DocId::Pool(_)))
        .collect();
    if matches!(doc, DocId::Pool(_)) {
        ids.push(doc.clone());
    }
    let mut pools: HashMap<DocId, PoolData> = HashMap::new();
    for id in ids {
        if let DocId::Pool(pid) = &id
            && tx.holds(&id)?
        {
            let v = tx
                .with_ledger(&id, |l| l.settled().map(|s| s.view.clone()))?
                .unwrap_or_default();
            pools.insert(
                id.clone(),
                PoolData::from_json(&v, pid, trust).lapsed_on(today),
            );
        }
    }
    Ok(may_read(
        doc,
        &view,
        Reader {
            node: peer,
            pinned_as: pinned,
        },
        |d| pools.get(d).cloned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use poa_protocol::change::ChangeData;
    use poa_protocol::id::StateCode;
    use poa_protocol::sign::NodeKey;

    fn change(i: u8) -> SignedChange {
        SignedChange {
            data: ChangeData {
                actor: vec![i; 40],
                seq: 1,
                start_op: 1,
                time: 0,
                message: None,
                deps: Vec::new(),
                ops: Vec::new(),
            },
            signature: Vec::new(),
        }
    }

    fn h(a: u8, b: u8) -> ChangeHash {
        let mut x = [a; 32];
        x[31] = b;
        ChangeHash(x)
    }

    #[test]
    fn what_the_peer_sent_lacks_is_named_first_and_no_sender_crowds_out_another() {
        let doc = DocId::State("XAA".parse::<StateCode>().unwrap());
        let [peer, loud, quiet] = [1u8, 2, 3].map(|i| NodeKey::from_seed(&[i; 32]).node_id());
        let mut p = Parked::default();
        // The loud sender's changes wait for many hashes that sort first; the peer's one
        // change waits for a hash that sorts last, and for another parked change.
        let made_up: Vec<ChangeHash> = (0..50).map(|b| h(0, b)).collect();
        p.park(&doc, loud, vec![(h(10, 0), change(10), made_up)])
            .unwrap();
        p.park(&doc, quiet, vec![(h(11, 0), change(11), vec![h(200, 1)])])
            .unwrap();
        p.park(
            &doc,
            peer,
            vec![(h(12, 0), change(12), vec![h(255, 0), h(11, 0)])],
        )
        .unwrap();
        let asked = p.lacking(&doc, &peer, 4);
        assert_eq!(asked, vec![h(255, 0), h(0, 0), h(200, 1), h(0, 1)]);
        // Once what the peer's change waits for arrives, it is out to be tried again, and
        // what the others lack is all there is to ask.
        assert_eq!(p.release(&doc, &[h(255, 0)]).len(), 1);
        assert_eq!(p.lacking(&doc, &peer, 100).len(), 51);
        p.release(&doc, &[h(200, 1)]);
        assert!(!p.lacking(&doc, &peer, 100).contains(&h(200, 1)));
    }
}
