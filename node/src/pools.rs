//! Pools and assistance matching, as node operations: each writes one signed change (or two,
//! in one SQLite transaction) through the same gate as every other write, and each read comes
//! from the documents this node holds.

use std::collections::{BTreeMap, BTreeSet};

use poa_protocol::assist::{
    self, Decision, Match, MatchRecord, NeedRef, OfferRef, Suggestion, match_key,
};
use poa_protocol::automerge::Automerge;
use poa_protocol::automerge::transaction::Transaction;
use poa_protocol::doc::{
    DocId, OffersData, StateData, delete_at, document_json, put_at, put_record, put_value,
};
use poa_protocol::model::{Need, Offer, check_id};
use poa_protocol::pool::{
    Charter, Contribution, Invite, Observer, PoolData, PooledTarget, Rollup, rollup,
};
use poa_protocol::{NodeId, StateCode};

use crate::node::{Node, NodeError, now_secs, self_delegation, today, write_in};

/// Whom `pool invite` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invitee {
    /// Any node of this State that holds a delegation of scope all.
    State(StateCode),
    /// This node only (its State is the one it is pinned as).
    Node(NodeId),
}

impl std::str::FromStr for Invitee {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() == 3 {
            return s.parse().map(Invitee::State).map_err(|e| e.to_string());
        }
        s.parse()
            .map(Invitee::Node)
            .map_err(|e| format!("{e} (or give a State code such as XAB)"))
    }
}

/// A pool as `pool show` presents it.
#[derive(Clone, Debug)]
pub struct PoolReport {
    /// `pool/<id>`.
    pub doc: DocId,
    /// The records.
    pub data: PoolData,
    /// The pooled targets computed.
    pub rollups: Vec<Rollup>,
}

fn pool_doc(id: &str) -> Result<DocId, NodeError> {
    check_id(id)?;
    Ok(DocId::Pool(id.to_string()))
}

/// One change of a multi-document write: the document, and what to write in it.
type Step<'a> = (
    DocId,
    Box<dyn FnOnce(&mut Transaction<'_>, &Automerge) -> Result<(), NodeError> + 'a>,
);

impl Node {
    /// Makes several changes, possibly to several documents, in one SQLite transaction: all are
    /// written, or none (joining a pool and sharing with it go together).
    fn write_steps(&mut self, steps: Vec<Step<'_>>) -> Result<(), NodeError> {
        let Node { home, store } = self;
        let now = now_secs();
        store.transact(|tx| {
            for (doc, f) in steps {
                write_in(tx, home, &doc, now, f)?;
            }
            Ok::<_, NodeError>(())
        })
    }

    /// The join of this node for `state`, and the share of the State's document with the pool.
    fn join_steps(&self, id: &str, state: StateCode) -> Result<Vec<Step<'static>>, NodeError> {
        let proof = serde_json::Value::String(self.own_delegation(state)?);
        let me = self.id().to_string();
        let doc = pool_doc(id)?;
        let reader = doc.to_string();
        Ok(vec![
            (
                doc,
                Box::new(move |t, _| {
                    put_at(t, "members", &[state.as_str(), &me], &proof)?;
                    Ok(())
                }),
            ),
            (
                DocId::State(state),
                Box::new(move |t, _| {
                    put_value(t, "readers", &reader, &serde_json::json!(true))?;
                    Ok(())
                }),
            ),
        ])
    }

    /// A pool this node holds.
    pub fn pool(&self, id: &str) -> Result<PoolData, NodeError> {
        let doc = pool_doc(id)?;
        self.store
            .with_doc(&doc, |d| PoolData::from_json(&document_json(d, None)))?
            .filter(|p| !p.owner.is_empty())
            .ok_or_else(|| NodeError::NoPool(id.to_string()))
    }

    /// Every pool this node holds.
    pub fn pools(&self) -> Result<Vec<(String, PoolData)>, NodeError> {
        let mut out = Vec::new();
        for doc in self.store.doc_ids()? {
            if let DocId::Pool(id) = &doc
                && let Ok(p) = self.pool(id)
            {
                out.push((id.clone(), p));
            }
        }
        Ok(out)
    }

    fn coordinating(&self, id: &str) -> Result<PoolData, NodeError> {
        let pool = self.pool(id)?;
        if !pool.owner.contains(&self.id()) {
            return Err(NodeError::NotCoordinator(id.to_string()));
        }
        Ok(pool)
    }

    /// Creates a pool that this node coordinates. A State's node also invites its own State and
    /// joins it, so the coordinator State is a member like the others.
    pub fn pool_create(
        &mut self,
        id: &str,
        name: &str,
        framework: Option<String>,
    ) -> Result<(), NodeError> {
        let doc = pool_doc(id)?;
        poa_protocol::model::check_text("the pool's --name", name)?;
        if let Ok(existing) = self.pool(id) {
            let by = existing
                .charter
                .map(|c| c.coordinator)
                .unwrap_or_else(|| "another node".into());
            return Err(NodeError::PoolExists(id.to_string(), by));
        }
        let charter = Charter {
            name: name.trim().to_string(),
            framework,
            coordinator: self.home.config.participant.code(),
            created: today(),
        };
        let state = self.home.config.participant.state();
        let invite = match state {
            Some(s) => Some(self.invite_record(Invitee::State(s))?),
            None => None,
        };
        let mut steps: Vec<Step<'_>> = vec![(
            doc,
            Box::new(move |tx, before| {
                let existing = PoolData::from_json(&document_json(before, None));
                if !existing.owner.is_empty() {
                    return Err(NodeError::PoolExists(id.to_string(), "another node".into()));
                }
                let charter =
                    serde_json::to_value(&charter).map_err(poa_protocol::doc::DocError::from)?;
                put_value(tx, "charter", "charter", &charter)?;
                if let Some(i) = &invite {
                    put_record(tx, "invites", i.state.as_str(), i)?;
                }
                Ok(())
            }),
        )];
        if let Some(s) = state {
            steps.extend(self.join_steps(id, s)?);
        }
        self.write_steps(steps)
    }

    fn invite_record(&self, who: Invitee) -> Result<Invite, NodeError> {
        let (state, node) = match who {
            Invitee::State(s) => (s, None),
            Invitee::Node(n) => {
                let s = self
                    .store
                    .peer_state(&n)?
                    .and_then(|s| s.parse().ok())
                    .or_else(|| {
                        (n == self.id())
                            .then(|| self.home.config.participant.state())
                            .flatten()
                    })
                    .ok_or(NodeError::NodeOfNoState(n))?;
                (s, Some(n))
            }
        };
        let state_key = *self
            .store
            .trust()
            .state_key(&state)
            .ok_or(NodeError::UnknownStateKey(state))?;
        Ok(Invite {
            state,
            state_key,
            node,
            invited: today(),
        })
    }

    /// Invites a State (or one of its nodes) to join a pool this node coordinates. The
    /// invitation names the State key the coordinator trusts for it; joining takes a
    /// delegation signed by that key.
    pub fn pool_invite(&mut self, id: &str, who: Invitee) -> Result<Invite, NodeError> {
        let pool = self.coordinating(id)?;
        let invite = self.invite_record(who)?;
        if pool.is_member(invite.state) {
            return Err(NodeError::AlreadyMember(id.to_string(), invite.state));
        }
        self.write(&pool_doc(id)?, |tx, _| {
            put_value(
                tx,
                "invites",
                invite.state.as_str(),
                &serde_json::to_value(&invite).map_err(poa_protocol::doc::DocError::from)?,
            )?;
            Ok(())
        })?;
        Ok(invite)
    }

    /// Admits an observer: a node that reads the pool and what members share with it, and
    /// writes nothing.
    pub fn pool_observe(&mut self, id: &str, node: NodeId, name: &str) -> Result<(), NodeError> {
        let pool = self.coordinating(id)?;
        if pool.observers.contains_key(&node) {
            return Err(NodeError::Exists(format!("observer {node} of pool {id}")));
        }
        let o = Observer {
            name: name.to_string(),
            added: today(),
        };
        self.write(&pool_doc(id)?, |tx, _| {
            put_record(tx, "observers", &node.to_string(), &o)?;
            Ok(())
        })?;
        Ok(())
    }

    /// This node's delegation from its State, as signed text: the one in the State's
    /// document, or, on the node holding the State key, a fresh self-delegation.
    fn own_delegation(&self, state: StateCode) -> Result<String, NodeError> {
        let me = self.id();
        let json = match self.store.load(&DocId::State(state))? {
            Some(d) => document_json(&d.doc, None),
            None => serde_json::Value::Null,
        };
        if let Some(text) = json["delegations"][me.to_string()].as_str() {
            return Ok(text.to_string());
        }
        let Some(key) = &self.home.state_key else {
            return Err(NodeError::NoStateKey(state));
        };
        Ok(self_delegation(key, state, me, today()).to_text())
    }

    /// Joins a pool this node's State was invited to, and shares the State's published
    /// document with the pool's audience (coordinator, members, observers), in one transaction.
    pub fn pool_join(&mut self, id: &str) -> Result<(), NodeError> {
        let state = self.own_state()?;
        let pool = self.pool(id)?;
        if !pool.invites.contains_key(&state) {
            return Err(NodeError::NotInvited(id.to_string(), state));
        }
        if pool.owner.len() > 1 {
            return Err(NodeError::DisputedPool(id.to_string(), pool.owner.len()));
        }
        if pool
            .members
            .get(&state)
            .is_some_and(|m| m.contains_key(&self.id()))
        {
            return Err(NodeError::AlreadyMember(id.to_string(), state));
        }
        let steps = self.join_steps(id, state)?;
        self.write_steps(steps)
    }

    /// Leaves a pool: the State's membership ends, and its published document stops being
    /// shared with the pool. What the others already received stays with them.
    pub fn pool_leave(&mut self, id: &str) -> Result<(), NodeError> {
        let state = self.own_state()?;
        let pool = self.pool(id)?;
        if !pool.is_member(state) {
            return Err(NodeError::NotMember(id.to_string(), state));
        }
        let doc = pool_doc(id)?;
        let reader = doc.to_string();
        self.write_steps(vec![
            (
                doc,
                Box::new(move |t, _| {
                    delete_at(t, "members", &[state.as_str()])?;
                    Ok(())
                }),
            ),
            (
                DocId::State(state),
                Box::new(move |t, _| {
                    delete_at(t, "readers", &[&reader])?;
                    Ok(())
                }),
            ),
        ])
    }

    /// Links one of the State's published targets into its section of the pool.
    pub fn pool_contribute(&mut self, id: &str, target: &str) -> Result<(), NodeError> {
        let state = self.own_state()?;
        let pool = self.pool(id)?;
        if !pool.is_member(state) {
            return Err(NodeError::NotMember(id.to_string(), state));
        }
        let published = self.state_data(&DocId::State(state))?;
        if published.latest(target).is_none() {
            if self
                .state_data(&DocId::Draft(state))?
                .latest(target)
                .is_some()
            {
                return Err(NodeError::NotPublished(target.to_string()));
            }
            return Err(NodeError::NoTarget {
                state,
                id: target.to_string(),
            });
        }
        if pool
            .contributions
            .get(&state)
            .is_some_and(|c| c.contains_key(target))
        {
            return Err(NodeError::Exists(format!("{state}/{target} in pool {id}")));
        }
        let c = Contribution {
            target: target.to_string(),
            contributed: today(),
        };
        let value = serde_json::to_value(&c).map_err(poa_protocol::doc::DocError::from)?;
        self.write(&pool_doc(id)?, |tx, _| {
            put_at(tx, "sections", &[state.as_str(), target], &value)?;
            Ok(())
        })?;
        Ok(())
    }

    /// Adds a pooled target to a pool this node coordinates.
    pub fn pool_target_add(&mut self, id: &str, target: PooledTarget) -> Result<(), NodeError> {
        target.validate()?;
        let pool = self.coordinating(id)?;
        if pool.pooled.contains_key(&target.id) {
            return Err(NodeError::Exists(format!(
                "pooled target {} in pool {id}",
                target.id
            )));
        }
        self.write(&pool_doc(id)?, |tx, _| {
            put_record(tx, "pooled", &target.id, &target)?;
            Ok(())
        })?;
        Ok(())
    }

    /// A pool with its pooled targets computed from the members' documents held here.
    pub fn pool_report(&self, id: &str) -> Result<PoolReport, NodeError> {
        let data = self.pool(id)?;
        let mut states = BTreeMap::new();
        for s in data.members.keys() {
            if let Some(d) = self.store.load(&DocId::State(*s))? {
                states.insert(*s, StateData::read(&d.doc, None));
            }
        }
        let rollups = rollup(&data, &states);
        Ok(PoolReport {
            doc: pool_doc(id)?,
            data,
            rollups,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Assistance
    // -----------------------------------------------------------------------------------------

    fn published_states(&self) -> Result<Vec<(StateCode, StateData)>, NodeError> {
        let mut out = Vec::new();
        for doc in self.store.doc_ids()? {
            if let DocId::State(s) = doc {
                out.push((s, self.state_data(&doc)?));
            }
        }
        Ok(out)
    }

    fn offers_docs(&self) -> Result<Vec<(String, OffersData)>, NodeError> {
        let mut out = Vec::new();
        for doc in self.store.doc_ids()? {
            if let DocId::Offers(p) = &doc
                && let Some(d) = self.store.with_doc(&doc, OffersData::read)?
            {
                out.push((p.clone(), d));
            }
        }
        Ok(out)
    }

    /// Every request this node holds, from every State's published document.
    pub fn all_needs(&self) -> Result<Vec<Need>, NodeError> {
        Ok(self
            .published_states()?
            .into_iter()
            .flat_map(|(_, d)| d.needs.into_values())
            .collect())
    }

    /// Every match this node knows of, each side's decision read from that side's document.
    pub fn matches(&self) -> Result<Vec<Match>, NodeError> {
        let mut state_side = Vec::new();
        for (s, d) in self.published_states()? {
            state_side.extend(d.matches.into_values().filter(|r| r.need.state == s));
        }
        let mut provider_side = Vec::new();
        for (p, d) in self.offers_docs()? {
            provider_side.extend(d.matches.into_values().map(|r| (p.clone(), r)));
        }
        Ok(assist::matches(&state_side, &provider_side))
    }

    /// The names a State goes by for offers' eligible regions: its code, and the pools it is a
    /// member of with their coordinators and frameworks.
    fn regions(&self) -> Result<BTreeMap<StateCode, BTreeSet<String>>, NodeError> {
        let mut out: BTreeMap<StateCode, BTreeSet<String>> = BTreeMap::new();
        for (id, p) in self.pools()? {
            for s in p.members.keys() {
                let names = out.entry(*s).or_default();
                names.insert(id.clone());
                if let Some(c) = &p.charter {
                    names.insert(c.coordinator.to_ascii_uppercase());
                    if let Some(f) = &c.framework {
                        names.insert(f.to_ascii_uppercase());
                    }
                }
            }
        }
        Ok(out)
    }

    /// Offers ranked for every open request this node holds, best first, with reasons.
    pub fn match_suggest(&self) -> Result<Vec<Suggestion>, NodeError> {
        let needs = self.all_needs()?;
        let offers = self.offers()?;
        let matches = self.matches()?;
        let regions = self.regions()?;
        Ok(assist::suggest(
            &needs,
            &offers,
            &matches,
            |s| {
                let mut r = regions.get(&s).cloned().unwrap_or_default();
                r.insert(s.to_string());
                r
            },
            today(),
        ))
    }

    /// Requests with no accepted match, each with the matches under way.
    pub fn unmet_needs(&self) -> Result<Vec<(Need, Vec<Match>)>, NodeError> {
        let matches = self.matches()?;
        let mut out = Vec::new();
        for need in self.all_needs()? {
            let r = NeedRef::of(&need);
            if !assist::is_met(&r, &matches) {
                let mine = matches.iter().filter(|m| m.need == r).cloned().collect();
                out.push((need, mine));
            }
        }
        Ok(out)
    }

    fn find_need(&self, r: &NeedRef) -> Result<Need, NodeError> {
        self.state_data(&DocId::State(r.state))?
            .needs
            .remove(&r.id)
            .ok_or_else(|| NodeError::NoNeed(r.to_string()))
    }

    fn find_offer(&self, r: &OfferRef) -> Result<(Offer, OffersData), NodeError> {
        let doc = DocId::Offers(r.provider.clone());
        let data = self
            .store
            .with_doc(&doc, OffersData::read)?
            .ok_or_else(|| NodeError::NoOffer(r.to_string()))?;
        let offer = data
            .offers
            .get(&r.id)
            .cloned()
            .ok_or_else(|| NodeError::NoOffer(r.to_string()))?;
        Ok((offer, data))
    }

    /// Records this node's side's decision on a match: the requesting State's in its published
    /// document, the provider's in its offers document. A State saying yes also shares its
    /// published document with the provider's nodes, which need to see the request.
    pub fn match_decide(
        &mut self,
        need: &NeedRef,
        offer: &OfferRef,
        decision: Decision,
        note: Option<String>,
    ) -> Result<MatchRecord, NodeError> {
        let me = self.home.config.participant.clone();
        let record = MatchRecord {
            need: need.clone(),
            offer: offer.clone(),
            decision,
            date: today(),
            note,
        };
        let key = match_key(need, offer);
        let value = serde_json::to_value(&record).map_err(poa_protocol::doc::DocError::from)?;
        let existing = self
            .matches()?
            .into_iter()
            .find(|m| m.need == *need && m.offer == *offer);
        let other_proposed =
            |theirs: Option<&MatchRecord>| theirs.is_some_and(|r| r.decision != Decision::Declined);
        if me.state() == Some(need.state) {
            self.find_need(need)?;
            let (_, offers) = self.find_offer(offer)?;
            if decision == Decision::Accepted
                && !other_proposed(existing.as_ref().and_then(|m| m.provider_side.as_ref()))
            {
                return Err(NodeError::NothingToAccept(offer.provider.clone()));
            }
            let providers: Vec<NodeId> =
                offers.owner.iter().filter_map(|o| o.parse().ok()).collect();
            self.write(&DocId::State(need.state), |tx, _| {
                put_value(tx, "matches", &key, &value)?;
                if decision != Decision::Declined {
                    for p in &providers {
                        put_value(tx, "readers", &p.to_string(), &serde_json::json!(true))?;
                    }
                }
                Ok(())
            })?;
        } else if me.code() == offer.provider {
            self.find_offer(offer)?;
            self.find_need(need)?;
            if decision == Decision::Accepted
                && !other_proposed(existing.as_ref().and_then(|m| m.state_side.as_ref()))
            {
                return Err(NodeError::NothingToAccept(need.state.to_string()));
            }
            self.write(&DocId::Offers(offer.provider.clone()), |tx, _| {
                put_value(tx, "matches", &key, &value)?;
                Ok(())
            })?;
        } else {
            return Err(NodeError::NotAParty(
                me.code(),
                need.state,
                offer.provider.clone(),
            ));
        }
        Ok(record)
    }
}
