//! An in-memory host for the sync session, and a pair of sessions wired back to back with a
//! simulated clock: the first tier of tests (in the style of quinn-proto's `Pair`), and the
//! host of the fuzz targets. No I/O: every store is a map, every clock a number.
//!
//! The node implements [`Host`] over SQLite; this implementation keeps the same rules (the
//! gate, the read rule on egress and ingress, what is kept for whom) over maps, so a session
//! can be driven through thousands of steps in milliseconds.

use std::collections::{BTreeMap, HashSet, VecDeque};

use automerge::ChangeHash;

use crate::authority::Trust;
use crate::change::SignedChange;
use crate::doc::DocId;
use crate::id::{NodeId, Principal};
use crate::ledger::{Admitted, Ledger};
use crate::pool::PoolData;
use crate::rules::{Reader, may_read};
use crate::session::{Applied, Event, Host, Mode, Session, SessionConfig};
use crate::wire::{Hello, Message, Vouch};

/// What a peer listed last: the documents held here, and a digest of the others.
pub type Listing = (Vec<DocId>, ([u8; 32], u32));

/// A peer as a [`MemHost`] knows it.
#[derive(Clone, Debug, Default)]
pub struct Pin {
    /// What it was pinned as.
    pub pinned_as: Option<Principal>,
    /// Whether its introductions are taken.
    pub introducer: bool,
}

/// A node's state in memory: its documents, whom it trusts and pins, and what it knows of
/// each peer.
#[derive(Clone, Debug, Default)]
pub struct MemHost {
    /// Whom this node acts for.
    pub principal: Option<Principal>,
    /// Trusted keys, with whether each was learnt first-hand.
    pub trust: Trust,
    /// Keys learnt from introducers (not vouched for further).
    pub introduced: HashSet<Principal>,
    /// Held documents.
    pub ledgers: BTreeMap<DocId, Ledger>,
    /// Pinned peers.
    pub pins: BTreeMap<NodeId, Pin>,
    /// Heads known to be held by each peer, per document.
    pub shared: BTreeMap<(NodeId, DocId), Vec<ChangeHash>>,
    /// Each peer's last listing.
    pub expected: BTreeMap<NodeId, Listing>,
    /// Changes waiting for dependencies, with their sender.
    pub parked: Vec<(NodeId, DocId, SignedChange)>,
    /// The most changes that may wait, in all.
    pub max_parked: usize,
    /// Documents changed by applied changes, for the driver to push.
    pub changed: Vec<DocId>,
}

impl MemHost {
    fn key_for(&self, doc: &DocId) -> Option<NodeId> {
        self.trust.key_for_doc(doc).copied()
    }

    fn pool_data(&self, doc: &DocId) -> Option<PoolData> {
        let DocId::Pool(id) = doc else { return None };
        let l = self.ledgers.get(doc)?;
        Some(PoolData::from_json(&l.settled()?.view, id, &self.trust))
    }

    /// Whether `peer` may read `doc` as held here.
    pub fn can_read(&self, peer: &NodeId, doc: &DocId) -> bool {
        if doc.is_draft() && doc.principal() != self.principal {
            return false;
        }
        let Some(view) = self
            .ledgers
            .get(doc)
            .and_then(|l| l.settled().map(|s| s.view.clone()))
        else {
            return false;
        };
        let pinned = self.pins.get(peer).and_then(|p| p.pinned_as.clone());
        may_read(
            doc,
            &view,
            Reader {
                node: peer,
                pinned_as: pinned.as_ref(),
            },
            |d| self.pool_data(d),
        )
    }

    /// Passes changes through the gate into a document (a local write, or a test's), settles
    /// it, and returns what was admitted.
    pub fn admit(&mut self, doc: &DocId, changes: &[SignedChange]) -> Vec<Admitted> {
        let key = self.key_for(doc);
        let l = self
            .ledgers
            .entry(doc.clone())
            .or_insert_with(|| Ledger::new(doc));
        let out = changes.iter().map(|c| l.admit(c, key.as_ref())).collect();
        l.settle(key.as_ref());
        out
    }

    fn apply_batch(&mut self, peer: &NodeId, doc: &DocId, changes: Vec<SignedChange>) -> Applied {
        let key = self.key_for(doc);
        let held = self.ledgers.contains_key(doc);
        let l = self
            .ledgers
            .entry(doc.clone())
            .or_insert_with(|| Ledger::new(doc));
        let before = l.len();
        let batch = l
            .admit_batch(changes, key.as_ref(), Some(*peer), |_| {
                Ok::<_, std::convert::Infallible>(false)
            })
            .unwrap_or_else(|e| match e {});
        let mut out = Applied {
            accepted: batch.held.len(),
            ..Applied::default()
        };
        for (_, r) in batch.refused {
            out.counted += usize::from(r.counts_against_peer());
            out.rejected.push(r.to_string());
        }
        let pending: Vec<SignedChange> = batch.waiting.into_iter().map(|(_, c, _)| c).collect();
        l.settle(key.as_ref());
        if !self.can_read(peer, doc) {
            if let Some(l) = self.ledgers.get_mut(doc) {
                l.truncate(before);
                l.settle(key.as_ref());
            }
            if !held {
                self.ledgers.remove(doc);
            }
            return Applied::default();
        }
        if out.accepted == 0 && !held {
            self.ledgers.remove(doc);
        }
        out.allowed = true;
        out.waiting = pending.len();
        let room = self.max_parked.saturating_sub(self.parked.len());
        if pending.len() > room {
            out.fatal = Some("too many changes waiting for dependencies".into());
        }
        for c in pending.into_iter().take(room) {
            self.parked.push((*peer, doc.clone(), c));
        }
        if out.accepted > 0 {
            self.changed.push(doc.clone());
        }
        out
    }
}

impl Host for MemHost {
    fn hello(&mut self, peer: &NodeId, hello: &Hello) -> Result<(), String> {
        let claimed = crate::id::Participant::from(&hello.claims).principal();
        let pinned = self.pins.get(peer).and_then(|p| p.pinned_as.clone());
        if let Some(p) = &pinned
            && *p != claimed
        {
            return Err(format!(
                "pinned as a node of {}, but it says it acts for {claimed}",
                p.code()
            ));
        }
        if let (Some(p), Some(k)) = (pinned, hello.key) {
            match self.trust.key(&p) {
                Some(t) if *t != k => return Err(format!("{k} is not {}'s trusted key", p.code())),
                Some(_) => {}
                None => {
                    self.trust.keys.insert(p, k);
                }
            }
        }
        Ok(())
    }

    fn vouches(&mut self) -> Vec<Vouch> {
        self.trust
            .keys
            .iter()
            .filter(|(p, _)| !self.introduced.contains(*p))
            .map(|(p, k)| Vouch {
                principal: p.clone(),
                key: *k,
                recovery: None,
            })
            .collect()
    }

    fn introduced(&mut self, peer: &NodeId, keys: Vec<Vouch>) -> bool {
        if !self.pins.get(peer).is_some_and(|p| p.introducer) {
            return false;
        }
        let mut learnt = false;
        for v in keys {
            if !self.trust.keys.contains_key(&v.principal) {
                self.introduced.insert(v.principal.clone());
                self.trust.keys.insert(v.principal, v.key);
                learnt = true;
            }
        }
        if learnt {
            let keys: Vec<(DocId, Option<NodeId>)> = self
                .ledgers
                .keys()
                .map(|d| (d.clone(), self.key_for(d)))
                .collect();
            for (d, k) in keys {
                if let Some(l) = self.ledgers.get_mut(&d) {
                    l.settle(k.as_ref());
                }
            }
        }
        learnt
    }

    fn offered(&mut self, peer: &NodeId) -> Vec<(DocId, Vec<ChangeHash>)> {
        let docs: Vec<DocId> = self.ledgers.keys().cloned().collect();
        docs.into_iter()
            .filter(|d| self.can_read(peer, d))
            .filter_map(|d| {
                let h = self.ledgers.get(&d)?.settled()?.offered.clone();
                Some((d, h))
            })
            .collect()
    }

    fn expected(&mut self, peer: &NodeId) -> (Vec<DocId>, ([u8; 32], u32)) {
        self.expected
            .get(peer)
            .cloned()
            .unwrap_or((Vec::new(), ([0; 32], 0)))
    }

    fn set_expected(&mut self, peer: &NodeId, held: &[DocId], unheld: ([u8; 32], u32)) {
        let held: Vec<DocId> = held
            .iter()
            .filter(|d| self.ledgers.contains_key(*d))
            .cloned()
            .collect();
        self.expected.insert(*peer, (held, unheld));
    }

    fn may_read(&mut self, peer: &NodeId, doc: &DocId) -> bool {
        self.can_read(peer, doc)
    }

    fn takeable(&mut self, peer: &NodeId, doc: &DocId) -> bool {
        match doc {
            d if d.is_draft() => {
                doc.principal() == self.principal
                    && self.pins.get(peer).and_then(|p| p.pinned_as.clone()) == self.principal
            }
            DocId::Pool(_) => true,
            _ => self.key_for(doc).is_some(),
        }
    }

    fn with_ledger<R>(&mut self, doc: &DocId, f: impl FnOnce(&Ledger) -> R) -> Option<R> {
        self.ledgers.get(doc).map(f)
    }

    fn shared(&mut self, peer: &NodeId, doc: &DocId) -> Vec<ChangeHash> {
        self.shared
            .get(&(*peer, doc.clone()))
            .cloned()
            .unwrap_or_default()
    }

    fn set_shared(&mut self, peer: &NodeId, doc: &DocId, shared: &[ChangeHash]) {
        if self.ledgers.contains_key(doc) {
            self.shared.insert((*peer, doc.clone()), shared.to_vec());
        }
    }

    fn lacking(&mut self, peer: &NodeId, doc: &DocId) -> Vec<ChangeHash> {
        let Some(l) = self.ledgers.get(doc) else {
            return Vec::new();
        };
        let waiting: Vec<(NodeId, &SignedChange)> = self
            .parked
            .iter()
            .filter(|(_, d, _)| d == doc)
            .map(|(f, _, c)| (*f, c))
            .collect();
        let parked: HashSet<ChangeHash> = waiting
            .iter()
            .filter_map(|(_, c)| c.data.to_automerge(doc).ok().map(|a| a.hash()))
            .collect();
        let mut by_sender: BTreeMap<NodeId, Vec<ChangeHash>> = BTreeMap::new();
        for (from, c) in waiting {
            by_sender.entry(from).or_default().extend(
                c.data
                    .deps
                    .iter()
                    .map(|d| ChangeHash(*d))
                    .filter(|h| !l.has(h) && !parked.contains(h)),
            );
        }
        let by_sender = by_sender.into_iter().map(|(f, mut list)| {
            list.sort();
            (f, list.into_iter())
        });
        crate::session::fair_share(peer, by_sender, crate::wire::MAX_NEED)
    }

    fn apply(
        &mut self,
        peer: &NodeId,
        doc: &DocId,
        changes: Vec<SignedChange>,
        _asked: bool,
    ) -> Applied {
        let mut batch = changes;
        let mut keep = Vec::new();
        for (from, d, c) in std::mem::take(&mut self.parked) {
            if from == *peer && d == *doc {
                batch.push(c);
            } else {
                keep.push((from, d, c));
            }
        }
        self.parked = keep;
        let out = self.apply_batch(peer, doc, batch);
        if out.accepted > 0 {
            // What others left waiting for this document may apply now.
            loop {
                let mine: Vec<(NodeId, DocId, SignedChange)> = {
                    let (take, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.parked)
                        .into_iter()
                        .partition(|(_, d, _)| d == doc);
                    self.parked = keep;
                    take
                };
                if mine.is_empty() {
                    break;
                }
                let mut progressed = false;
                let mut by: BTreeMap<NodeId, Vec<SignedChange>> = BTreeMap::new();
                for (f, _, c) in mine {
                    by.entry(f).or_default().push(c);
                }
                for (f, b) in by {
                    progressed |= self.apply_batch(&f, doc, b).accepted > 0;
                }
                if !progressed {
                    break;
                }
            }
        }
        out
    }
}

/// One side of a [`Pair`].
#[derive(Debug)]
pub struct Side {
    /// Its store.
    pub host: MemHost,
    /// Its session with the other side.
    pub session: Session,
    /// Its node id.
    pub id: NodeId,
    /// Messages in flight to the other side, with the time they arrive.
    pub inbox: VecDeque<(u64, Message)>,
    /// Every message it sent.
    pub sent: Vec<Message>,
    /// Events it reported.
    pub events: Vec<Event>,
}

/// Two sessions connected back to back through in-memory queues with a fixed latency, driven
/// by a simulated clock until both are idle.
#[derive(Debug)]
pub struct Pair {
    /// The side that dialled.
    pub a: Side,
    /// The side that accepted.
    pub b: Side,
    /// The simulated time, in milliseconds.
    pub now: u64,
    /// One-way latency, in milliseconds.
    pub latency: u64,
    /// Messages delivered.
    pub delivered: u64,
}

fn hello(id: NodeId, principal: &Option<Principal>) -> Hello {
    let claims = match principal {
        Some(Principal::State(s)) => crate::wire::Claim::State(*s),
        Some(Principal::Body(b)) => {
            crate::wire::Claim::Body(b.clone(), crate::id::BodyKind::Regional)
        }
        None => crate::wire::Claim::Body(
            crate::id::BodyCode::from_static("XZZ"),
            crate::id::BodyKind::Donor,
        ),
    };
    Hello {
        version: crate::wire::PROTOCOL_VERSION,
        node: id,
        name: "test".into(),
        claims,
        key: None,
        recovery: None,
    }
}

impl Pair {
    /// Two sides with these stores and ids; both start their sessions at time 0.
    pub fn new(
        a: (NodeId, MemHost),
        b: (NodeId, MemHost),
        mode: Mode,
        config: SessionConfig,
    ) -> Pair {
        let mk = |(id, host): (NodeId, MemHost), peer: NodeId| {
            let session = Session::new(peer, hello(id, &host.principal), mode, config.clone());
            Side {
                host,
                session,
                id,
                inbox: VecDeque::new(),
                sent: Vec::new(),
                events: Vec::new(),
            }
        };
        let (a_id, b_id) = (a.0, b.0);
        let mut pair = Pair {
            a: mk(a, b_id),
            b: mk(b, a_id),
            now: 0,
            latency: 10,
            delivered: 0,
        };
        pair.a.session.start(&mut pair.a.host, 0);
        pair.b.session.start(&mut pair.b.host, 0);
        pair.flush();
        pair
    }

    /// Moves what both sessions want to send into flight, and collects their events.
    pub fn flush(&mut self) {
        let at = self.now + self.latency;
        while let Some(m) = self.a.session.poll_transmit() {
            self.a.sent.push(m.clone());
            self.b.inbox.push_back((at, m));
        }
        while let Some(m) = self.b.session.poll_transmit() {
            self.b.sent.push(m.clone());
            self.a.inbox.push_back((at, m));
        }
        while let Some(e) = self.a.session.poll_event() {
            self.a.events.push(e);
        }
        while let Some(e) = self.b.session.poll_event() {
            self.b.events.push(e);
        }
    }

    /// Delivers the next message (advancing time to its arrival); false if none is in flight.
    pub fn step(&mut self) -> bool {
        let next_a = self.a.inbox.front().map(|(t, _)| *t);
        let next_b = self.b.inbox.front().map(|(t, _)| *t);
        let to_a = match (next_a, next_b) {
            (Some(x), Some(y)) => x <= y,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return false,
        };
        let side = if to_a { &mut self.a } else { &mut self.b };
        let Some((t, m)) = side.inbox.pop_front() else {
            return false;
        };
        self.now = self.now.max(t);
        let _ = side.session.handle(&mut side.host, m, self.now);
        self.delivered += 1;
        // As the node's driver does: the side that dialled a one-shot round says goodbye once
        // the round is done, and takes nothing that arrives after.
        let a = &mut self.a.session;
        if a.mode() == Mode::OneShot && a.is_done() && !a.is_closed() {
            a.close("sync round complete");
        }
        self.flush();
        true
    }

    /// Delivers messages until none is in flight (or `limit` were delivered).
    pub fn drive(&mut self, limit: u64) {
        let start = self.delivered;
        while self.delivered - start < limit && self.step() {}
    }

    /// Advances the clock to `t` and fires both sessions' timers.
    pub fn advance_to(&mut self, t: u64) {
        self.now = self.now.max(t);
        self.a.session.handle_timeout(&mut self.a.host, self.now);
        self.b.session.handle_timeout(&mut self.b.host, self.now);
        self.flush();
    }

    /// Tells side A that a document changed there (after a local write).
    pub fn push_a(&mut self, doc: &DocId) {
        self.a.session.push(&mut self.a.host, doc);
        self.flush();
    }

    /// Tells side B that a document changed there (after a local write).
    pub fn push_b(&mut self, doc: &DocId) {
        self.b.session.push(&mut self.b.host, doc);
        self.flush();
    }

    /// Drops every message in flight to A (a connection lost under them).
    pub fn drop_to_a(&mut self) -> usize {
        let n = self.a.inbox.len();
        self.a.inbox.clear();
        n
    }

    /// Drops every message in flight to B (a lost push).
    pub fn drop_to_b(&mut self) -> usize {
        let n = self.b.inbox.len();
        self.b.inbox.clear();
        n
    }
}

/// A host trusting `key` for `principal`, acting for `me`.
pub fn host(me: Option<Principal>, trusted: &[(Principal, NodeId)]) -> MemHost {
    let mut h = MemHost {
        principal: me,
        max_parked: 10_000,
        ..MemHost::default()
    };
    for (p, k) in trusted {
        h.trust.keys.insert(p.clone(), *k);
    }
    h
}
