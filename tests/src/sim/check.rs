//! The invariants every run must end with, each a function returning what it found wrong,
//! and the egress check made on every message as it is sent.

use std::collections::BTreeMap;

use poa_node::node::Node;
use poa_node::report;
use poa_protocol::Principal;
use poa_protocol::automerge::ChangeHash;
use poa_protocol::doc::DocId;
use poa_protocol::ledger::Verdict;
use poa_protocol::pool::PoolData;
use poa_protocol::rules::{Reader, may_read};
use poa_protocol::wire::Message;

use super::{Role, Sim};

fn heads(node: &Node, doc: &DocId) -> Option<Vec<ChangeHash>> {
    node.store.heads(doc).ok().flatten()
}

fn has(node: &Node, doc: &DocId, h: &ChangeHash) -> bool {
    node.store
        .with_ledger(doc, |l| l.has(h))
        .ok()
        .flatten()
        .unwrap_or(false)
}

fn verdict(node: &Node, doc: &DocId, h: &ChangeHash) -> Option<Verdict> {
    node.store
        .with_ledger(doc, |l| l.verdict(h).cloned())
        .ok()
        .flatten()
        .flatten()
}

impl Sim {
    /// Whether the workload ever let `reader` read `doc`: a superset of the audience at any
    /// moment, built from what the simulator did, not from what the nodes concluded.
    fn ever_audience(&self, doc: &DocId, reader: usize) -> Option<bool> {
        let r = &self.nodes[reader];
        let own = doc.principal().as_ref() == Some(&r.principal());
        let pool_audience = |pool: &DocId| {
            self.oracle.coordinator.get(pool) == Some(&r.id)
                || self
                    .oracle
                    .observers
                    .get(pool)
                    .is_some_and(|o| o.contains(&r.id))
                || matches!(r.principal(), Principal::State(s) if self.oracle.invited.get(pool).is_some_and(|i| i.contains(&s)))
        };
        Some(match doc {
            DocId::Draft(_) | DocId::OffersDraft(_) => own,
            DocId::State(s) => {
                own || self.oracle.public.contains(doc)
                    || self
                        .oracle
                        .shared
                        .get(doc)
                        .is_some_and(|w| w.contains(&r.id))
                    || self
                        .oracle
                        .joined
                        .get(s)
                        .is_some_and(|pools| pools.iter().any(pool_audience))
            }
            DocId::Offers(_) => {
                own || self.oracle.public.contains(doc)
                    || self
                        .oracle
                        .shared
                        .get(doc)
                        .is_some_and(|w| w.contains(&r.id))
            }
            // A pool the workload did not create (a hostile one): its audience is whatever
            // its own document says, which the oracle does not model.
            DocId::Pool(_) if !self.oracle.coordinator.contains_key(doc) => return None,
            DocId::Pool(_) => pool_audience(doc),
        })
    }

    /// Every document an honest node names to a peer must be one the peer was ever allowed to
    /// read, unless the peer named it first; changes of it go only to such a peer, always.
    pub(super) fn check_egress(
        &mut self,
        from: usize,
        to: usize,
        msg: &Message,
        named: &std::collections::BTreeSet<DocId>,
    ) {
        let carries = |doc: &DocId| match msg {
            Message::Sync(s) => &s.doc == doc && (!s.changes.is_empty() || !s.heads.is_empty()),
            Message::Offers { .. } => true,
            _ => false,
        };
        for doc in msg.docs() {
            if named.contains(doc) && !carries(doc) {
                continue;
            }
            if self.ever_audience(doc, to) == Some(false) {
                let what = format!(
                    "{} sent a {} naming {doc} to {}, who was never in its audience",
                    self.nodes[from].label,
                    msg.kind(),
                    self.nodes[to].label
                );
                self.violation(what);
            }
        }
    }

    fn honest_up(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| !self.nodes[*i].hostile && self.up(*i))
            .collect()
    }

    /// Every invariant, after the final heal and quiet period.
    pub(super) fn check(&mut self) -> Vec<String> {
        let mut problems = std::mem::take(&mut self.violations);
        for i in 0..self.nodes.len() {
            if !self.nodes[i].hostile {
                self.check_acked(i);
            }
        }
        problems.append(&mut self.violations);
        problems.extend(self.check_converged());
        problems.extend(self.check_poison());
        problems.extend(self.check_twins());
        problems.extend(self.check_stocktakes());
        problems
    }

    /// Pools as node `i` reads them, for the read rule.
    fn pool_data(&self, i: usize, doc: &DocId) -> Option<PoolData> {
        let DocId::Pool(id) = doc else { return None };
        let node = self.nodes[i].node.as_ref()?;
        let view = node.store.view(doc).ok()??;
        Some(PoolData::from_json(&view, id, &node.store.trust()))
    }

    /// Whether `b` can take `doc` from `a`: it can judge the document (it trusts the owner's
    /// key, or it is a pool, or a draft between nodes of its State), and it finds, on its copy
    /// with `a`'s changes (or `a`'s copy, if it holds none) and the pools it holds, that `a`
    /// may read it (the ingress rule).
    fn takes(&self, a: usize, b: usize, doc: &DocId) -> bool {
        let (Some(na), Some(nb)) = (self.nodes[a].node.as_ref(), self.nodes[b].node.as_ref())
        else {
            return false;
        };
        let judged = match doc {
            d if d.is_draft() => {
                doc.principal().as_ref() == Some(&self.nodes[b].principal())
                    && self.nodes[a].principal() == self.nodes[b].principal()
            }
            DocId::Pool(_) => true,
            _ => nb.store.trust().key_for_doc(doc).is_some(),
        };
        if !judged {
            return false;
        }
        let Some(theirs) = na.store.with_ledger(doc, Clone::clone).ok().flatten() else {
            return false;
        };
        let key = nb.store.trust().key_for_doc(doc).copied();
        let mut merged = nb
            .store
            .with_ledger(doc, Clone::clone)
            .ok()
            .flatten()
            .unwrap_or_else(|| poa_protocol::ledger::Ledger::new(doc));
        let changes: Vec<_> = theirs.signed_changes().map(|(_, c)| c).collect();
        for _ in 0..changes.len().min(64) {
            let before = merged.len();
            for c in &changes {
                let _ = merged.admit(c, key.as_ref());
            }
            if merged.len() == before {
                break;
            }
        }
        let view = merged.settle(key.as_ref()).view.clone();
        let pa = self.nodes[a].principal();
        may_read(
            doc,
            &view,
            Reader {
                node: &self.nodes[a].id,
                pinned_as: Some(&pa),
            },
            |d| {
                if d == doc {
                    // The pool itself, as it would be with a's changes.
                    let DocId::Pool(id) = d else { return None };
                    Some(PoolData::from_json(&view, id, &nb.store.trust()))
                } else {
                    self.pool_data(b, d)
                }
            },
        )
    }

    /// Linked honest nodes agree: what one holds and lets the other read, the other holds
    /// too, with every change, when it can take it; two that both hold a document and let
    /// each other read it have the same heads and the same content.
    fn check_converged(&self) -> Vec<String> {
        let mut out = Vec::new();
        for l in &self.links {
            let (a, b) = (l.a, l.b);
            if self.nodes[a].hostile || self.nodes[b].hostile || !self.up(a) || !self.up(b) {
                continue;
            }
            for (x, y) in [(a, b), (b, a)] {
                let (Some(nx), Some(ny)) =
                    (self.nodes[x].node.as_ref(), self.nodes[y].node.as_ref())
                else {
                    continue;
                };
                for doc in nx.store.doc_ids().unwrap_or_default() {
                    if !poa_node::host::can_read(nx, &self.nodes[y].id, &doc)
                        || !self.takes(x, y, &doc)
                    {
                        continue;
                    }
                    let hx = heads(nx, &doc).unwrap_or_default();
                    let missing: Vec<&ChangeHash> =
                        hx.iter().filter(|h| !has(ny, &doc, h)).collect();
                    if !missing.is_empty() {
                        out.push(format!(
                            "{} lets {} read {doc} and it can take it, but {} lacks {} of its heads ({})",
                            self.nodes[x].label,
                            self.nodes[y].label,
                            self.nodes[y].label,
                            missing.len(),
                            if heads(ny, &doc).is_some() { "holds the document" } else { "does not hold it" }
                        ));
                        continue;
                    }
                    if x < y
                        && poa_node::host::can_read(ny, &self.nodes[x].id, &doc)
                        && self.takes(y, x, &doc)
                    {
                        let hy = heads(ny, &doc).unwrap_or_default();
                        if hx != hy {
                            if std::env::var("POA_SIM_DEBUG").is_ok() {
                                let rows = |n: &Node| {
                                    n.store
                                        .with_ledger(&doc, |l| l.audit_rows())
                                        .ok()
                                        .flatten()
                                        .unwrap_or_default()
                                };
                                let (rx, ry) = (rows(nx), rows(ny));
                                for r in &rx {
                                    let other = ry.iter().find(|q| q.0 == r.0);
                                    if other.map(|q| &q.2) != Some(&r.2) {
                                        eprintln!(
                                            "DEBUG {} {:?} {:?} vs {:?}",
                                            r.0,
                                            r.1,
                                            r.2,
                                            other.map(|q| &q.2)
                                        );
                                    }
                                }
                                for r in &ry {
                                    if !rx.iter().any(|q| q.0 == r.0) {
                                        eprintln!("DEBUG only in y {} {:?} {:?}", r.0, r.1, r.2);
                                    }
                                }
                            }
                            out.push(format!(
                                "{} and {} read {doc} at different heads",
                                self.nodes[x].label, self.nodes[y].label
                            ));
                        } else if nx.store.view(&doc).ok() != ny.store.view(&doc).ok() {
                            out.push(format!(
                                "{} and {} hold {doc} at the same heads but show different content",
                                self.nodes[x].label, self.nodes[y].label
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    /// No honest node lets a change stand that its author was not allowed to make.
    fn check_poison(&self) -> Vec<String> {
        let mut out = Vec::new();
        for i in self.honest_up() {
            let Some(node) = self.nodes[i].node.as_ref() else {
                continue;
            };
            for p in &self.poison {
                // Only a node the State's own key holder reaches through honest nodes, each
                // letting the next read the document, gets the revocation: one cut off (its
                // own delegation lapsed or revoked, or reachable only through a hostile relay
                // that withholds) keeps a stale copy, and what it makes of a backdated change
                // there is not the gate's doing.
                if !self.kept_current(i, &p.doc) {
                    continue;
                }
                if verdict(node, &p.doc, &p.hash) == Some(Verdict::Stands) {
                    out.push(format!(
                        "{} lets {} of {} stand: {}",
                        self.nodes[i].label, p.hash, p.doc, p.what
                    ));
                }
            }
        }
        out
    }

    /// Whether honest node `i` is reached, for `doc`, from its State's key holder through honest
    /// up nodes and links, each node letting the next read it.
    fn kept_current(&self, i: usize, doc: &DocId) -> bool {
        let Some(state) = doc.state() else {
            return true;
        };
        let honest = self.honest_up();
        let mut reached: Vec<usize> = honest
            .iter()
            .copied()
            .filter(|&j| {
                matches!(self.nodes[j].role, Role::State { code, first: true } if code == state)
            })
            .collect();
        let mut k = 0;
        while k < reached.len() {
            let j = reached[k];
            k += 1;
            for l in &self.links {
                let next = if l.a == j {
                    l.b
                } else if l.b == j {
                    l.a
                } else {
                    continue;
                };
                if reached.contains(&next) || !honest.contains(&next) {
                    continue;
                }
                let lets = self.nodes[j]
                    .node
                    .as_ref()
                    .is_some_and(|nj| poa_node::host::can_read(nj, &self.nodes[next].id, doc));
                if lets {
                    reached.push(next);
                }
            }
        }
        reached.contains(&i)
    }

    /// Once an honest node holds both changes of an equivocation, neither stands anywhere it
    /// reached, and an honest node holding one (the proof offered is the smallest pair at the
    /// first position) does not let it stand.
    fn check_twins(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (doc, t1, t2) in &self.twins {
            let honest = self.honest_up();
            let proven = honest.iter().any(|&i| {
                self.nodes[i]
                    .node
                    .as_ref()
                    .is_some_and(|n| has(n, doc, t1) && has(n, doc, t2))
            });
            if !proven {
                continue;
            }
            for &i in &honest {
                let Some(n) = self.nodes[i].node.as_ref() else {
                    continue;
                };
                let (h1, h2) = (has(n, doc, t1), has(n, doc, t2));
                let linked_to_proof = self.links.iter().any(|l| {
                    let other = if l.a == i {
                        l.b
                    } else if l.b == i {
                        l.a
                    } else {
                        return false;
                    };
                    !self.nodes[other].hostile
                        && self.nodes[other].node.as_ref().is_some_and(|o| {
                            has(o, doc, t1)
                                && has(o, doc, t2)
                                && poa_node::host::can_read(o, &self.nodes[i].id, doc)
                                && self.takes(other, i, doc)
                        })
                });
                // The proof need not travel whole: each node offers, for each equivocating
                // actor, the smallest pair at its first position, and nothing of a revoked
                // node's (its cut-off decides). What must hold is that the one it holds does
                // not stand.
                let held = if h1 { t1 } else { t2 };
                if h1 != h2 && linked_to_proof && verdict(n, doc, held) == Some(Verdict::Stands) {
                    out.push(format!(
                        "{} holds only one change of an equivocation in {doc} and lets it stand, though a peer that lets it read the document holds both",
                        self.nodes[i].label
                    ));
                }
                for t in [t1, t2] {
                    if h1 && h2 && verdict(n, doc, t) == Some(Verdict::Stands) {
                        out.push(format!(
                            "{} holds both changes of an equivocation in {doc} and lets {t} stand",
                            self.nodes[i].label
                        ));
                    }
                }
            }
        }
        out
    }

    /// Honest nodes holding the same documents at the same heads, trusting the same keys,
    /// compute byte-identical stocktakes.
    fn check_stocktakes(&self) -> Vec<String> {
        let mut out = Vec::new();
        let cycle = "BMS9".parse().expect("a cycle");
        let as_of = self.clock.today();
        let principals: Vec<Principal> = self.nodes.iter().map(|n| n.principal()).collect();
        let mut groups: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
        for i in self.honest_up() {
            if !matches!(
                self.nodes[i].role,
                Role::Body { .. } | Role::State { first: true, .. }
            ) {
                continue;
            }
            let Some(node) = self.nodes[i].node.as_ref() else {
                continue;
            };
            let Ok(input) = report::input(node, None) else {
                out.push(format!(
                    "{} cannot read its documents for a stocktake",
                    self.nodes[i].label
                ));
                continue;
            };
            let trust = node.store.trust();
            let mut key = String::new();
            for (s, src) in &input.states {
                key.push_str(&format!("{s}={:?};", src.heads));
            }
            for (p, src) in &input.pools {
                key.push_str(&format!("{p}={:?};", src.heads));
            }
            for (o, src) in &input.offers {
                key.push_str(&format!("{o}={:?};", src.heads));
            }
            for p in &principals {
                key.push_str(&format!("{p:?}:{:?};", trust.key(p)));
            }
            let st = poa_protocol::stocktake::stocktake(&input, cycle, as_of);
            let text = format!(
                "{}\n{}",
                report::render(&st, report::Format::Json),
                report::render(&st, report::Format::Md)
            );
            groups.entry(key).or_default().push((i, text));
        }
        for members in groups.values() {
            let (first, text) = &members[0];
            for (i, other) in &members[1..] {
                if other != text {
                    out.push(format!(
                        "{} and {} hold the same documents at the same heads but compute different stocktakes",
                        self.nodes[*first].label, self.nodes[*i].label
                    ));
                }
            }
        }
        out
    }
}
