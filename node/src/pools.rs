//! Pools and assistance matching, as node operations: each writes one signed change (or two,
//! in one SQLite transaction) through the same gate as every other write, and each read comes
//! from the documents this node holds.

use std::collections::{BTreeMap, BTreeSet};

use poa_protocol::assist::{
    self, Decision, Match, MatchRecord, NeedRef, OfferRef, Suggestion, match_key,
};
use poa_protocol::doc::{DocId, OffersData, PoolId, StateData};
use poa_protocol::model::{Need, Offer, check_id};
use poa_protocol::pool::{
    Charter, Contribution, Invite, Observer, PoolData, PooledTarget, Rollup, rollup,
};
use poa_protocol::{NodeId, StateCode};

use crate::node::{Node, NodeError, Writer, own_delegation_in, self_delegation, write_in};

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
    /// `pool/<name>~<fingerprint>`.
    pub doc: DocId,
    /// The records.
    pub data: PoolData,
    /// The pooled targets computed.
    pub rollups: Vec<Rollup>,
}

/// One change of a multi-document write: the document, and what to write in it.
type Step<'a> = (
    DocId,
    Box<dyn FnOnce(&mut Writer<'_>, &serde_json::Value) -> Result<(), NodeError> + 'a>,
);

impl Node {
    /// Makes several changes, possibly to several documents, in one SQLite transaction: all are
    /// written, or none (joining a pool and sharing with it go together).
    fn write_steps(&mut self, steps: Vec<Step<'_>>) -> Result<(), NodeError> {
        let now = self.now();
        let Node { home, store, .. } = self;
        store.transact(|tx| {
            for (doc, f) in steps {
                write_in(tx, home, &doc, now, f)?;
            }
            Ok::<_, NodeError>(())
        })
    }

    /// The pool a user names: its full id (`name~fingerprint`), or a name that exactly one
    /// pool held here has.
    pub fn pool_doc(&self, name: &str) -> Result<DocId, NodeError> {
        if name.contains('~') {
            return name
                .parse::<PoolId>()
                .map(DocId::Pool)
                .map_err(|_| NodeError::NoPool(name.to_string()));
        }
        check_id(name)?;
        let found: Vec<DocId> = self
            .store
            .doc_ids()?
            .into_iter()
            .filter(|d| matches!(d, DocId::Pool(p) if p.name == name))
            .collect();
        match found.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(NodeError::NoPool(name.to_string())),
            many => Err(NodeError::AmbiguousPool(
                name.to_string(),
                many.len(),
                many.iter()
                    .map(|d| d.to_string().trim_start_matches("pool/").to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    /// The join of this node for `state`, and the share of the State's document with the pool.
    fn join_steps(&self, doc: &DocId, state: StateCode) -> Result<Vec<Step<'static>>, NodeError> {
        let proof = self.own_delegation(state)?;
        let key = format!("{state}/{}", self.id());
        let reader = doc.to_string();
        Ok(vec![
            (
                doc.clone(),
                Box::new(move |w, _| w.put_text("members", &key, proof)),
            ),
            (
                DocId::State(state),
                Box::new(move |w, before| {
                    if !poa_protocol::doc::readers(before).contains(&reader) {
                        w.put("readers", &reader, &true)?;
                    }
                    Ok(())
                }),
            ),
        ])
    }

    fn pool_data(&self, doc: &DocId) -> Result<Option<PoolData>, NodeError> {
        let DocId::Pool(id) = doc else {
            return Ok(None);
        };
        Ok(self
            .store
            .view(doc)?
            .map(|v| PoolData::from_json(&v, id, &self.store.trust())))
    }

    /// A pool this node holds, by name or full id.
    pub fn pool(&self, name: &str) -> Result<PoolData, NodeError> {
        let doc = self.pool_doc(name)?;
        self.pool_data(&doc)?
            .filter(|p| p.charter.is_some())
            .ok_or_else(|| NodeError::NoPool(name.to_string()))
    }

    /// Every pool this node holds, by full id.
    pub fn pools(&self) -> Result<Vec<(String, PoolData)>, NodeError> {
        let mut out = Vec::new();
        for doc in self.store.doc_ids()? {
            if let DocId::Pool(id) = &doc
                && let Some(p) = self.pool_data(&doc)?
                && p.charter.is_some()
            {
                out.push((id.to_string(), p));
            }
        }
        Ok(out)
    }

    fn coordinating(&self, name: &str) -> Result<(DocId, PoolData), NodeError> {
        let doc = self.pool_doc(name)?;
        let pool = self.pool(name)?;
        if !matches!(&doc, DocId::Pool(id) if id.is_creator(&self.id())) {
            return Err(NodeError::NotCoordinator(name.to_string()));
        }
        Ok((doc, pool))
    }

    /// Creates a pool that this node coordinates: its id carries a fingerprint of this node's
    /// key, so no other node can create, claim or coordinate it. A State's node also invites
    /// its own State and joins it, so the coordinator State is a member like the others.
    /// Returns the pool's id.
    pub fn pool_create(
        &mut self,
        name: &str,
        title: &str,
        framework: Option<String>,
    ) -> Result<DocId, NodeError> {
        check_id(name)?;
        poa_protocol::model::check_text("the pool's --name", title)?;
        let doc = DocId::Pool(PoolId::new(name, &self.id()));
        if self.pool_data(&doc)?.is_some_and(|p| p.charter.is_some()) {
            return Err(NodeError::PoolExists(name.to_string()));
        }
        let charter = Charter {
            name: title.trim().to_string(),
            node: self.id(),
            framework,
            coordinator: self.home.config.participant.code(),
            created: self.clock.today(),
        };
        let state = self.home.config.participant.state();
        let invite = match state {
            Some(s) => Some(self.invite_record(Invitee::State(s))?),
            None => None,
        };
        let mut steps: Vec<Step<'_>> = vec![(
            doc.clone(),
            Box::new(move |w, _| {
                w.put("charter", "charter", &charter)?;
                if let Some(i) = &invite {
                    w.put("invites", i.state.as_str(), i)?;
                }
                Ok(())
            }),
        )];
        if let Some(s) = state {
            steps.extend(self.join_steps(&doc, s)?);
        }
        self.write_steps(steps)?;
        Ok(doc)
    }

    fn invite_record(&self, who: Invitee) -> Result<Invite, NodeError> {
        let (state, node) = match who {
            Invitee::State(s) => (s, None),
            Invitee::Node(n) => {
                let s = self
                    .store
                    .peer(&n)?
                    .and_then(|p| match p.pinned_as {
                        Some(poa_protocol::Principal::State(s)) => Some(s),
                        _ => None,
                    })
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
            .key(&poa_protocol::Principal::State(state))
            .ok_or(NodeError::UnknownStateKey(state))?;
        Ok(Invite {
            state,
            state_key,
            node,
            invited: self.clock.today(),
        })
    }

    /// Invites a State (or one of its nodes) to join a pool this node coordinates. The
    /// invitation names the State key the coordinator trusts for it; joining takes a
    /// delegation signed by that key.
    pub fn pool_invite(&mut self, id: &str, who: Invitee) -> Result<Invite, NodeError> {
        let (doc, pool) = self.coordinating(id)?;
        let invite = self.invite_record(who)?;
        if pool.is_member(invite.state) {
            return Err(NodeError::AlreadyMember(id.to_string(), invite.state));
        }
        self.write(&doc, |w, _| {
            w.replace("invites", invite.state.as_str(), &invite)
        })?;
        Ok(invite)
    }

    /// Admits an observer: a node that reads the pool and what members share with it, and
    /// writes nothing.
    pub fn pool_observe(&mut self, id: &str, node: NodeId, name: &str) -> Result<(), NodeError> {
        let (doc, pool) = self.coordinating(id)?;
        if pool.observers.contains_key(&node) {
            return Err(NodeError::Exists(format!("observer {node} of pool {id}")));
        }
        let o = Observer {
            name: name.to_string(),
            added: self.clock.today(),
        };
        self.write(&doc, |w, _| w.put("observers", &node.to_string(), &o))?;
        Ok(())
    }

    /// This node's delegation from its State, as its signed text: the one in the State's
    /// document, or, on the node holding the State key, a fresh self-delegation.
    fn own_delegation(&self, state: StateCode) -> Result<String, NodeError> {
        let me = self.id();
        if let Some(v) = self.store.view(&DocId::State(state))?
            && let Some(text) = own_delegation_in(&v, &me)
        {
            return Ok(text);
        }
        let Some(key) = &self.home.principal_key else {
            return Err(NodeError::NoPrincipalKey(state.to_string(), "State key"));
        };
        Ok(self_delegation(
            key,
            poa_protocol::Principal::State(state),
            me,
            self.clock.today(),
        )
        .to_text())
    }

    /// Joins a pool this node's State was invited to, and shares the State's published
    /// document with the pool's audience (coordinator, members, observers), in one transaction.
    pub fn pool_join(&mut self, id: &str) -> Result<(), NodeError> {
        let state = self.own_state()?;
        let doc = self.pool_doc(id)?;
        let pool = self.pool(id)?;
        if !pool.invites.contains_key(&state) {
            return Err(NodeError::NotInvited(id.to_string(), state));
        }
        if pool
            .members
            .get(&state)
            .is_some_and(|m| m.contains_key(&self.id()))
        {
            return Err(NodeError::AlreadyMember(id.to_string(), state));
        }
        let steps = self.join_steps(&doc, state)?;
        self.write_steps(steps)
    }

    /// Leaves a pool: the State's membership ends, and its published document stops being
    /// shared with the pool. What the others already received stays with them.
    pub fn pool_leave(&mut self, id: &str) -> Result<(), NodeError> {
        let state = self.own_state()?;
        let doc = self.pool_doc(id)?;
        let pool = self.pool(id)?;
        if !pool.is_member(state) {
            return Err(NodeError::NotMember(id.to_string(), state));
        }
        let keys: Vec<String> = pool
            .members
            .get(&state)
            .map(|m| m.keys().map(|n| format!("{state}/{n}")).collect())
            .unwrap_or_default();
        let reader = doc.to_string();
        self.write_steps(vec![
            (
                doc,
                Box::new(move |w, _| {
                    for k in &keys {
                        w.delete("members", k)?;
                    }
                    Ok(())
                }),
            ),
            (
                DocId::State(state),
                Box::new(move |w, _| {
                    w.delete("readers", &reader)?;
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
            contributed: self.clock.today(),
            by: Some(self.id()),
        };
        let doc = self.pool_doc(id)?;
        self.write(&doc, |w, _| {
            w.put("sections", &format!("{state}/{target}"), &c)
        })?;
        Ok(())
    }

    /// Adds a pooled target to a pool this node coordinates.
    pub fn pool_target_add(&mut self, id: &str, target: PooledTarget) -> Result<(), NodeError> {
        target.validate()?;
        let (doc, pool) = self.coordinating(id)?;
        if pool.pooled.contains_key(&target.id) {
            return Err(NodeError::Exists(format!(
                "pooled target {} in pool {id}",
                target.id
            )));
        }
        self.write(&doc, |w, _| w.put("pooled", &target.id, &target))?;
        Ok(())
    }

    /// A pool with its pooled targets computed from the members' documents held here.
    pub fn pool_report(&self, id: &str) -> Result<PoolReport, NodeError> {
        let data = self.pool(id)?;
        let mut states = BTreeMap::new();
        for s in data.members.keys() {
            if let Some(v) = self.store.view(&DocId::State(*s))? {
                states.insert(*s, StateData::from_json(&v));
            }
        }
        let rollups = rollup(&data, &states);
        Ok(PoolReport {
            doc: self.pool_doc(id)?,
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
                && let Some(v) = self.store.view(&doc)?
            {
                out.push((p.clone(), OffersData::from_json(&v)));
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
            self.clock.today(),
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
            .view(&doc)?
            .map(|v| OffersData::from_json(&v))
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
            date: self.clock.today(),
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
            self.write(&DocId::State(need.state), |w, before| {
                w.replace("matches", &key, &value)?;
                if decision != Decision::Declined {
                    let already = poa_protocol::doc::readers(before);
                    for p in &providers {
                        if !already.contains(&p.to_string()) {
                            w.put("readers", &p.to_string(), &true)?;
                        }
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
            self.write(&DocId::Offers(offer.provider.clone()), |w, _| {
                w.replace("matches", &key, &value)
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
