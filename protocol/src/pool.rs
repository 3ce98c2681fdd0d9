//! Sub-regional pools: who is in them, what each member contributes, and the pooled targets
//! computed from members' own targets and progress.
//!
//! A pool document (`pool/<name>~<fingerprint>`) is written by three kinds of author, each on
//! its own keys (enforced by [`crate::ledger`]):
//! - its coordinator, the node whose key the id fingerprints: `charter`, `invites`, `observers`,
//!   `pooled`;
//! - an invited State's node, joining for itself: `members/<STATE>/<NODEID>`, holding the
//!   delegation by which the key the invitation names lets the node act for the State; the
//!   State's member nodes leave by deleting their State's entries;
//! - a member: its own section, `sections/<STATE>/<TARGET>`, linking its targets to the pool.
//!
//! Whether the key an invitation names is really the State's is for each reader to say: a
//! member whose delegation is not signed by the State key this node trusts is listed apart
//! ([`PoolData::unverified`]) and counts for nothing, not in roll-ups, not in the audience.
//!
//! Values are never copied into the pool: a roll-up reads the members' own published documents,
//! so a member's figure is always the one it signed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::authority::{GrantKind, SignedGrant, Trust};
use crate::date::Date;
use crate::doc::{PoolId, StateData, Unreadable};
use crate::id::{NodeId, Principal, StateCode};
use crate::model::{Area, Direction, ModelError, check_finite, check_id, check_text};
use crate::view::is_achieved;

/// The charter of a pool, written once by its coordinator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charter {
    /// Its name ("Xanadu sub-region").
    pub name: String,
    /// The coordinator's node (the one the pool id fingerprints).
    pub node: NodeId,
    /// The regional framework it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<String>,
    /// The coordinator: a State code or a body acronym.
    pub coordinator: String,
    /// When it was created.
    pub created: Date,
}

/// An invitation, by the coordinator, for a State to join.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The State invited.
    pub state: StateCode,
    /// The State key the coordinator trusts for it: a joining node must hold a delegation
    /// signed by this key.
    pub state_key: NodeId,
    /// The one node invited, when the invitation named a node rather than a State.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
    /// When.
    pub invited: Date,
}

/// A node admitted to read the pool without writing it (the Secretariat, a donor).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observer {
    /// Who it is, as the coordinator named it.
    pub name: String,
    /// When.
    pub added: Date,
}

/// A member's target linked into the pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// The target's id in the member's document.
    pub target: String,
    /// When it was linked.
    pub contributed: Date,
    /// The member node that linked it (the gate takes a section only from the node it
    /// names): a reader counts it only if that node is a verified member of the State, so a
    /// node joined under a key the coordinator made up links nothing in the State's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<NodeId>,
}

/// How a pooled target combines members' figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Aggregate {
    /// The total of the members' latest values.
    Sum,
    /// Their mean.
    Mean,
    /// The lowest.
    Min,
    /// Whether every member reached its own target.
    AllReach,
    /// How many members reached their own targets.
    CountAchieved,
}

impl Aggregate {
    /// Every kind.
    pub const ALL: [Aggregate; 5] = [
        Aggregate::Sum,
        Aggregate::Mean,
        Aggregate::Min,
        Aggregate::AllReach,
        Aggregate::CountAchieved,
    ];

    /// The name used on the command line and in documents.
    pub fn slug(&self) -> &'static str {
        match self {
            Aggregate::Sum => "sum",
            Aggregate::Mean => "mean",
            Aggregate::Min => "min",
            Aggregate::AllReach => "all-reach",
            Aggregate::CountAchieved => "count-achieved",
        }
    }

    fn numeric(&self) -> bool {
        matches!(self, Aggregate::Sum | Aggregate::Mean | Aggregate::Min)
    }

    fn combine(&self, values: &[f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        Some(match self {
            Aggregate::Mean => values.iter().sum::<f64>() / values.len() as f64,
            Aggregate::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
            _ => values.iter().sum(),
        })
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

impl FromStr for Aggregate {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        Aggregate::ALL
            .into_iter()
            .find(|a| a.slug() == s)
            .ok_or(ModelError::Unknown {
                what: "aggregate",
                value: s,
                hint: "sum, mean, min, all-reach or count-achieved",
            })
    }
}

/// A member's target named across documents: `XAB/T2`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetRef {
    /// The State.
    pub state: StateCode,
    /// The target's id.
    pub id: String,
}

impl fmt::Display for TargetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.state, self.id)
    }
}

/// Which members' targets a pooled target draws on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Source {
    /// Every contributed target of this area.
    Area(Area),
    /// These contributed targets.
    Targets(Vec<TargetRef>),
}

impl FromStr for Source {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ModelError::BadSource(s.to_string());
        if !s.contains('/') {
            return s.parse().map(Source::Area).map_err(|_| bad());
        }
        let mut refs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (state, id) = part.split_once('/').ok_or_else(bad)?;
            let state: StateCode = state.parse().map_err(|_| bad())?;
            check_id(id).map_err(|_| bad())?;
            let r = TargetRef {
                state,
                id: id.to_string(),
            };
            if !refs.contains(&r) {
                refs.push(r);
            }
        }
        if refs.is_empty() {
            return Err(bad());
        }
        Ok(Source::Targets(refs))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Area(a) => f.write_str(a.slug()),
            Source::Targets(t) => f.write_str(
                &t.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        }
    }
}

impl TryFrom<String> for Source {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Source> for String {
    fn from(s: Source) -> String {
        s.to_string()
    }
}

/// A target the pool sets for the sub-region, computed from members' targets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PooledTarget {
    /// Its id in the pool (`P1`).
    pub id: String,
    /// What it is, in one line.
    pub title: String,
    /// How members' figures combine.
    pub aggregate: Aggregate,
    /// Which contributed targets it draws on.
    pub from: Source,
    /// The pool's goal. Without it, the goal is the same aggregate of the members' own goals
    /// (for `all-reach`, every member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The unit of the figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Which way is better; increase when not said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// By when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Date>,
}

impl PooledTarget {
    /// Checks the definition.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_id(&self.id)?;
        check_text("the title", &self.title)?;
        check_finite("the pooled value", self.value)?;
        match (self.aggregate, self.value) {
            (Aggregate::AllReach, Some(_)) => Err(ModelError::Aggregate(
                "all-reach has no --value: its goal is every member reaching its own target",
            )),
            (Aggregate::CountAchieved, Some(v)) if v < 0.0 || v.fract() != 0.0 => Err(
                ModelError::Aggregate("count-achieved takes a whole number of members as --value"),
            ),
            (Aggregate::AllReach | Aggregate::CountAchieved, _) if self.unit.is_some() => Err(
                ModelError::Aggregate("all-reach and count-achieved count members: drop --unit"),
            ),
            _ => Ok(()),
        }
    }
}

/// A pool document, read into typed records.
#[derive(Clone, Debug, Default)]
pub struct PoolData {
    /// The coordinator's node, once the charter names it.
    pub owner: BTreeSet<NodeId>,
    /// Members whose delegation is not signed by the State key this node trusts (or whose
    /// State's key it does not know): by State, with the reason. They count for nothing.
    pub unverified: BTreeMap<StateCode, String>,
    /// The charter, once written.
    pub charter: Option<Charter>,
    /// Invitations by State.
    pub invites: BTreeMap<StateCode, Invite>,
    /// Members: each State's joined nodes, with the delegation each presented.
    pub members: BTreeMap<StateCode, BTreeMap<NodeId, String>>,
    /// Observers by node.
    pub observers: BTreeMap<NodeId, Observer>,
    /// Each member's contributed targets, by target id.
    pub contributions: BTreeMap<StateCode, BTreeMap<String, Contribution>>,
    /// Pooled targets by id.
    pub pooled: BTreeMap<String, PooledTarget>,
    /// Members' nodes their State revoked (a revocation signed by the State key trusted here
    /// is in the pool): neither members nor readers.
    pub revoked: BTreeSet<NodeId>,
    /// Records that did not parse.
    pub unreadable: Vec<Unreadable>,
}

fn map_of<'a>(root: &'a Json, name: &str) -> impl Iterator<Item = (&'a String, &'a Json)> {
    root.get(name)
        .and_then(Json::as_object)
        .into_iter()
        .flat_map(|m| m.iter())
}

fn parse<T: serde::de::DeserializeOwned>(
    path: String,
    v: &Json,
    unreadable: &mut Vec<Unreadable>,
) -> Option<T> {
    match serde_json::from_value(v.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            unreadable.push(Unreadable {
                path,
                reason: e.to_string(),
            });
            None
        }
    }
}

impl PoolData {
    /// Reads a pool document from its view. `id` is the pool's id (which binds its
    /// coordinator); `trust` says which State keys this node trusts, against which every
    /// member's delegation is checked.
    pub fn from_json(root: &Json, id: &PoolId, trust: &Trust) -> PoolData {
        let mut p = PoolData::default();
        let u = &mut p.unreadable;
        if let Some(c) = root.get("charter").and_then(|c| c.get("charter"))
            && let Some(c) = parse::<Charter>("charter/charter".into(), c, u)
        {
            if id.is_creator(&c.node) {
                p.owner.insert(c.node);
            }
            p.charter = Some(c);
        }
        for (k, v) in map_of(root, "invites") {
            if let Some(i) = parse::<Invite>(format!("invites/{k}"), v, u)
                && i.state.as_str() == k
            {
                p.invites.insert(i.state, i);
            }
        }
        // Revoked members (`STATE/NODE/revoked`, a revocation signed by the State key trusted
        // here) are not members, whatever their membership entry says.
        let revoked: BTreeSet<(StateCode, NodeId)> = map_of(root, "members")
            .filter_map(|(k, v)| {
                let (state, node) = k.strip_suffix("/revoked")?.split_once('/')?;
                let (state, node) = (
                    state.parse::<StateCode>().ok()?,
                    node.parse::<NodeId>().ok()?,
                );
                let g = SignedGrant::from_value(v).ok()?;
                let trusted = trust.key(&Principal::State(state))?;
                (g.grant.kind == GrantKind::Revocation
                    && g.grant.node == node
                    && g.grant.principal == Principal::State(state)
                    && g.grant.key == *trusted)
                    .then_some((state, node))
            })
            .collect();
        for (k, v) in map_of(root, "members") {
            let Some((state, node)) = k.split_once('/') else {
                continue;
            };
            let (Ok(state), Ok(node)) = (state.parse::<StateCode>(), node.parse::<NodeId>()) else {
                continue;
            };
            if revoked.contains(&(state, node)) {
                p.revoked.insert(node);
                continue;
            }
            let grant = SignedGrant::from_value(v).ok();
            let key = grant.as_ref().map(|g| g.grant.key);
            match (trust.key(&Principal::State(state)), key) {
                (Some(trusted), Some(k)) if *trusted == k => {
                    let proof = grant.map(|g| g.to_text()).unwrap_or_default();
                    p.members.entry(state).or_default().insert(node, proof);
                }
                (Some(_), _) => {
                    p.unverified.insert(
                        state,
                        format!("its delegation is not signed by the State key this node trusts for {state}"),
                    );
                }
                (None, _) => {
                    p.unverified.insert(
                        state,
                        format!("no State key of {state} is known here: pin one of its nodes or run `poa-node trust {state} --state-key KEY`"),
                    );
                }
            }
        }
        for (k, v) in map_of(root, "observers") {
            if let (Ok(node), Some(o)) = (k.parse(), parse(format!("observers/{k}"), v, u)) {
                p.observers.insert(node, o);
            }
        }
        for (k, v) in map_of(root, "sections") {
            let Some((state, t)) = k.split_once('/') else {
                continue;
            };
            let Ok(state) = state.parse::<StateCode>() else {
                continue;
            };
            // Several values when nodes placed different ones at once (see the ledger's
            // view): the first, in text order, placed by a verified member counts.
            let values: Vec<&Json> = match v {
                Json::Array(all) => all.iter().collect(),
                one => vec![one],
            };
            let counted = values.into_iter().find_map(|v| {
                parse::<Contribution>(format!("sections/{k}"), v, u).filter(|c| {
                    c.target == t
                        && c.by.is_some_and(|n| {
                            p.members.get(&state).is_some_and(|m| m.contains_key(&n))
                        })
                })
            });
            if let Some(c) = counted {
                p.contributions
                    .entry(state)
                    .or_default()
                    .insert(t.to_string(), c);
            }
        }
        for (k, v) in map_of(root, "pooled") {
            if let Some(t) = parse::<PooledTarget>(format!("pooled/{k}"), v, u)
                && t.id == *k
            {
                p.pooled.insert(k.clone(), t);
            }
        }
        // A State's part counts only while it is a verified member.
        p.contributions.retain(|s, _| p.members.contains_key(s));
        p
    }

    /// As read by a node whose clock says `today`, to decide what it sends: a member node
    /// whose delegation's last day has passed reads no more, as if revoked. The lapse
    /// revocation its State's key issues reaches only the pools that key's node may write in;
    /// elsewhere the member stayed in the audience for good (a known limit of issue 11). The
    /// view and every verdict stay as the set says: only what this node sends changes.
    pub fn lapsed_on(mut self, today: Date) -> PoolData {
        for nodes in self.members.values_mut() {
            nodes.retain(|node, proof| {
                let lapsed = SignedGrant::parse(proof)
                    .ok()
                    .and_then(|g| g.grant.expires)
                    .is_some_and(|last| last < today);
                if lapsed {
                    self.revoked.insert(*node);
                }
                !lapsed
            });
        }
        self.members.retain(|_, nodes| !nodes.is_empty());
        self
    }

    /// Whether `state` is a member now.
    pub fn is_member(&self, state: StateCode) -> bool {
        self.members.contains_key(&state)
    }

    /// The State a node is a member for, if any.
    pub fn member_state_of(&self, node: &NodeId) -> Option<StateCode> {
        self.members
            .iter()
            .find(|(_, nodes)| nodes.contains_key(node))
            .map(|(s, _)| *s)
    }

    /// The nodes that read what members share with the pool: the coordinator, every member
    /// node and every observer.
    pub fn audience(&self) -> BTreeSet<NodeId> {
        let mut all = self.owner.clone();
        all.extend(self.members.values().flat_map(|n| n.keys().copied()));
        all.extend(self.observers.keys().copied());
        all
    }

    /// Whether `peer` (pinned here as a node of `peer_state`) may read the pool document: its
    /// audience, and the nodes of invited States (they need it to join).
    pub fn may_read(&self, peer: &NodeId, peer_state: Option<StateCode>) -> bool {
        if self.revoked.contains(peer) {
            return false;
        }
        self.audience().contains(peer)
            || self.invites.values().any(|i| {
                i.node.as_ref() == Some(peer) || (i.node.is_none() && Some(i.state) == peer_state)
            })
            || peer_state.is_some_and(|s| self.is_member(s))
    }
}

/// A member counted in a pooled target.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// The member.
    pub state: StateCode,
    /// Its targets drawn on, with their latest values (for numeric aggregates).
    pub targets: Vec<(String, Option<f64>)>,
    /// Its figure: the sum of its targets' latest values (numeric aggregates).
    pub value: Option<f64>,
    /// Whether it reached its own target(s).
    pub achieved: bool,
}

/// A member left out of a pooled target, and why: never counted as zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// The member.
    pub state: StateCode,
    /// Why.
    pub reason: String,
}

/// A pooled target computed from the members' documents.
#[derive(Clone, Debug, PartialEq)]
pub struct Rollup {
    /// The definition.
    pub target: PooledTarget,
    /// The aggregate of the baselines of the targets counted.
    pub baseline: Option<f64>,
    /// The goal: the pool's own value, or the aggregate of the members' goals.
    pub goal: Option<f64>,
    /// The aggregate of the latest values (numeric), or the number of members that reached
    /// their targets (`all-reach`, `count-achieved`).
    pub current: Option<f64>,
    /// Whether the goal is reached; `None` when it cannot be told from the data.
    pub reached: Option<bool>,
    /// Members counted.
    pub reporting: Vec<Figure>,
    /// Members not counted.
    pub missing: Vec<Missing>,
}

impl Rollup {
    /// The JSON form `pool show --json` prints.
    pub fn to_json(&self) -> Json {
        let t = &self.target;
        json!({
            "id": t.id,
            "title": t.title,
            "aggregate": t.aggregate.slug(),
            "from": t.from.to_string(),
            "unit": t.unit,
            "deadline": t.deadline.map(|d| d.to_string()),
            "baseline": self.baseline,
            "target": self.goal,
            "current": self.current,
            "reached": self.reached,
            "members_reporting": self.reporting.iter().map(|f| json!({
                "state": f.state.to_string(),
                "value": f.value,
                "achieved": f.achieved,
                "targets": f.targets.iter().map(|(id, v)| json!({"id": id, "value": v})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "members_missing": self.missing.iter().map(|m| json!({
                "state": m.state.to_string(),
                "reason": m.reason,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Computes every pooled target of `pool` from the members' published documents held here.
/// A member whose document is not here, who contributed no matching target, or who reported
/// nothing on it is listed as missing, and its figure is left out, never taken as zero.
pub fn rollup(pool: &PoolData, states: &BTreeMap<StateCode, StateData>) -> Vec<Rollup> {
    pool.pooled
        .values()
        .map(|t| rollup_one(pool, t, states))
        .collect()
}

fn rollup_one(
    pool: &PoolData,
    pooled: &PooledTarget,
    states: &BTreeMap<StateCode, StateData>,
) -> Rollup {
    let agg = pooled.aggregate;
    let mut reporting = Vec::new();
    let mut missing = Vec::new();
    // The targets counted, for baselines and members' goals.
    let mut counted = Vec::new();
    for state in pool.members.keys().copied() {
        let miss = |reason: String| Missing { state, reason };
        let Some(data) = states.get(&state) else {
            missing.push(miss(format!(
                "no published document of {state} has reached this node"
            )));
            continue;
        };
        let contributed = pool.contributions.get(&state);
        let is_contributed = |id: &str| contributed.is_some_and(|c| c.contains_key(id));
        let wanted: Vec<String> = match &pooled.from {
            Source::Area(area) => contributed
                .into_iter()
                .flat_map(|c| c.keys())
                .filter(|id| data.latest(id).is_some_and(|t| t.area == *area))
                .cloned()
                .collect(),
            Source::Targets(refs) => refs
                .iter()
                .filter(|r| r.state == state)
                .map(|r| r.id.clone())
                .collect(),
        };
        if wanted.is_empty() {
            missing.push(miss(match &pooled.from {
                Source::Area(a) => format!("contributed no {} target", a.slug()),
                Source::Targets(_) => "none of the listed targets is its".into(),
            }));
            continue;
        }
        let mut targets = Vec::new();
        let mut mine = Vec::new();
        let mut gaps = Vec::new();
        let mut achieved = true;
        for id in &wanted {
            let Some(t) = data.latest(id) else {
                gaps.push(format!("{id} is not in its published document"));
                continue;
            };
            if !is_contributed(id) {
                gaps.push(format!("{id} is not contributed to the pool"));
                continue;
            }
            if data.withdrawn.contains_key(id) {
                gaps.push(format!("{id} was withdrawn"));
                continue;
            }
            let progress = data.progress_of(id);
            let latest = progress.iter().rev().find_map(|p| p.value);
            achieved &= is_achieved(t, &progress);
            if agg.numeric() && latest.is_none() {
                gaps.push(format!("no value reported on {id}"));
                continue;
            }
            if !agg.numeric() && progress.is_empty() {
                gaps.push(format!("no progress reported on {id}"));
                continue;
            }
            targets.push((id.clone(), latest));
            mine.push(t);
        }
        // A member is counted whole or not at all: a figure made of some of its targets
        // would read as its figure.
        if !gaps.is_empty() {
            missing.push(miss(gaps.join("; ")));
            continue;
        }
        counted.extend(mine);
        let value = agg
            .numeric()
            .then(|| targets.iter().filter_map(|(_, v)| *v).sum());
        reporting.push(Figure {
            state,
            targets,
            value,
            achieved,
        });
    }
    let direction = pooled.direction.unwrap_or(Direction::Increase);
    let (baseline, goal, current, reached) = if agg.numeric() {
        let values: Vec<f64> = reporting
            .iter()
            .flat_map(|f| f.targets.iter().filter_map(|(_, v)| *v))
            .collect();
        let current = agg.combine(&values);
        let baselines: Vec<f64> = counted.iter().filter_map(|t| t.baseline).collect();
        let baseline = if baselines.len() == counted.len() {
            agg.combine(&baselines)
        } else {
            None
        };
        let goal = pooled.value.or_else(|| {
            let goals: Vec<f64> = counted.iter().filter_map(|t| t.value).collect();
            (goals.len() == counted.len())
                .then(|| agg.combine(&goals))
                .flatten()
        });
        let reached = match (current, goal) {
            (Some(c), Some(g)) => Some(match direction {
                Direction::Increase => c >= g,
                Direction::Decrease => c <= g,
                Direction::Reach => (c - g).abs() <= f64::EPSILON * g.abs().max(1.0),
            }),
            _ => None,
        };
        (baseline, goal, current, reached)
    } else {
        let done = reporting.iter().filter(|f| f.achieved).count() as f64;
        let goal = match agg {
            Aggregate::AllReach => Some(pool.members.len() as f64),
            _ => pooled.value,
        };
        let reached = match agg {
            Aggregate::AllReach => {
                if reporting.iter().any(|f| !f.achieved) {
                    Some(false)
                } else if missing.is_empty() {
                    Some(true)
                } else {
                    None
                }
            }
            _ => goal.map(|g| done >= g),
        };
        (None, goal, Some(done), reached)
    };
    Rollup {
        target: pooled.clone(),
        baseline,
        goal,
        current,
        reached,
        reporting,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::xaa_t1;
    use crate::model::{Assessment, Indicator, IndicatorKind, Progress, Target};

    fn code(s: &str) -> StateCode {
        s.parse().unwrap()
    }

    fn destroy(state: &str, id: &str, baseline: f64, value: f64) -> Target {
        Target {
            id: id.into(),
            state: code(state),
            area: Area::Destruction,
            baseline: Some(baseline),
            value: Some(value),
            indicator: Indicator {
                kind: IndicatorKind::Quantitative,
                text: "weapons destroyed".into(),
                unit: Some("weapons".into()),
                direction: Some(Direction::Increase),
            },
            ..xaa_t1()
        }
    }

    fn report(target: &str, as_of: &str, value: Option<f64>, a: Option<Assessment>) -> Progress {
        Progress {
            assessment: a,
            ..Progress::bare(target, as_of.parse().unwrap(), value)
        }
    }

    fn data(targets: Vec<Target>, progress: Vec<Progress>) -> StateData {
        let mut d = StateData::default();
        for t in targets {
            d.targets.insert((t.id.clone(), t.version), t);
        }
        for p in progress {
            d.progress.insert(p.id.clone(), p);
        }
        d
    }

    /// Four members: XAA reports 1,000 then 1,500 of 3,000 (baseline 100); XAB 2,500 of 2,000
    /// (baseline 0); XAC contributed a destruction target but reported nothing; XAD
    /// contributed nothing of the area. XAE is a member whose document never arrived.
    fn fixture(agg: Aggregate, value: Option<f64>) -> (PoolData, BTreeMap<StateCode, StateData>) {
        let mut pool = PoolData::default();
        let today: Date = "2026-01-01".parse().unwrap();
        for s in ["XAA", "XAB", "XAC", "XAD", "XAE"] {
            pool.members.insert(
                code(s),
                BTreeMap::from([(
                    crate::sign::NodeKey::from_seed(&[s.as_bytes()[2]; 32]).node_id(),
                    String::new(),
                )]),
            );
        }
        let contribute = |pool: &mut PoolData, s: &str, t: &str| {
            pool.contributions.entry(code(s)).or_default().insert(
                t.into(),
                Contribution {
                    target: t.into(),
                    contributed: today,
                    by: None,
                },
            );
        };
        contribute(&mut pool, "XAA", "T5");
        contribute(&mut pool, "XAB", "T2");
        contribute(&mut pool, "XAC", "T9");
        contribute(&mut pool, "XAD", "T1");
        pool.pooled.insert(
            "P1".into(),
            PooledTarget {
                id: "P1".into(),
                title: "weapons destroyed across the sub-region".into(),
                aggregate: agg,
                from: Source::Area(Area::Destruction),
                value,
                unit: None,
                direction: None,
                deadline: None,
            },
        );
        let states = BTreeMap::from([
            (
                code("XAA"),
                data(
                    vec![destroy("XAA", "T5", 100.0, 3000.0)],
                    vec![
                        report("T5", "2025-06-30", Some(1000.0), None),
                        report("T5", "2025-12-31", Some(1500.0), None),
                    ],
                ),
            ),
            (
                code("XAB"),
                data(
                    vec![destroy("XAB", "T2", 0.0, 2000.0)],
                    vec![report(
                        "T2",
                        "2025-12-31",
                        Some(2500.0),
                        Some(Assessment::Achieved),
                    )],
                ),
            ),
            (
                code("XAC"),
                data(vec![destroy("XAC", "T9", 0.0, 500.0)], vec![]),
            ),
            (
                code("XAD"),
                data(
                    vec![Target {
                        state: code("XAD"),
                        ..xaa_t1()
                    }],
                    vec![report("T1", "2025-12-31", Some(60.0), None)],
                ),
            ),
        ]);
        (pool, states)
    }

    fn one(agg: Aggregate, value: Option<f64>) -> Rollup {
        let (pool, states) = fixture(agg, value);
        rollup(&pool, &states).remove(0)
    }

    fn missing(r: &Rollup) -> Vec<String> {
        r.missing.iter().map(|m| m.state.to_string()).collect()
    }

    #[test]
    fn sum_adds_latest_values_and_leaves_out_members_without_data() {
        let r = one(Aggregate::Sum, Some(8000.0));
        assert_eq!(r.current, Some(4000.0));
        assert_eq!(r.baseline, Some(100.0));
        assert_eq!(r.goal, Some(8000.0));
        assert_eq!(r.reached, Some(false));
        let reporting: Vec<_> = r.reporting.iter().map(|f| f.state.to_string()).collect();
        assert_eq!(reporting, ["XAA", "XAB"]);
        assert_eq!(missing(&r), ["XAC", "XAD", "XAE"]);
        assert!(r.missing[0].reason.contains("no value reported on T9"));
        assert!(
            r.missing[1]
                .reason
                .contains("contributed no destruction target")
        );
        assert!(r.missing[2].reason.contains("no published document"));
    }

    #[test]
    fn without_a_pool_value_the_goal_aggregates_members_goals() {
        let r = one(Aggregate::Sum, None);
        assert_eq!(r.goal, Some(5000.0));
        assert_eq!(r.reached, Some(false));
    }

    #[test]
    fn mean_and_min_count_only_members_with_values() {
        let mean = one(Aggregate::Mean, None);
        assert_eq!(
            mean.current,
            Some(2000.0),
            "mean of 1,500 and 2,500, not of 4 values"
        );
        assert_eq!(mean.baseline, Some(50.0));
        assert_eq!(mean.goal, Some(2500.0));
        assert_eq!(mean.reached, Some(false));
        let min = one(Aggregate::Min, Some(1000.0));
        assert_eq!(min.current, Some(1500.0), "a missing member is not a zero");
        assert_eq!(min.baseline, Some(0.0));
        assert_eq!(min.reached, Some(true));
    }

    #[test]
    fn count_achieved_counts_members_that_reached_their_own_targets() {
        let r = one(Aggregate::CountAchieved, Some(2.0));
        assert_eq!(
            r.current,
            Some(1.0),
            "XAB reached 2,000; XAA is at 1,500 of 3,000"
        );
        assert_eq!(r.goal, Some(2.0));
        assert_eq!(r.reached, Some(false));
        assert_eq!(missing(&r), ["XAC", "XAD", "XAE"]);
        assert_eq!(r.baseline, None);
    }

    #[test]
    fn all_reach_is_false_when_one_reporting_member_has_not_and_unknown_when_data_is_missing() {
        let r = one(Aggregate::AllReach, None);
        assert_eq!(r.goal, Some(5.0));
        assert_eq!(r.current, Some(1.0));
        assert_eq!(r.reached, Some(false));
        // With XAA's target lowered to what it reached, every reporting member has reached its
        // target, but three members gave nothing to judge by: unknown, not true.
        let (pool, mut states) = fixture(Aggregate::AllReach, None);
        let xaa = states.get_mut(&code("XAA")).unwrap();
        xaa.targets
            .insert(("T5".into(), 1), destroy("XAA", "T5", 100.0, 1200.0));
        let r = rollup(&pool, &states).remove(0);
        assert_eq!(r.current, Some(2.0));
        assert_eq!(r.reached, None);
    }

    #[test]
    fn an_explicit_list_counts_only_listed_and_contributed_targets() {
        let (mut pool, states) = fixture(Aggregate::Sum, None);
        let p = pool.pooled.get_mut("P1").unwrap();
        p.from = "XAB/T2,XAC/T4".parse().unwrap();
        let r = rollup(&pool, &states).remove(0);
        assert_eq!(r.current, Some(2500.0));
        assert_eq!(missing(&r), ["XAA", "XAC", "XAD", "XAE"]);
        let xac = &r.missing[1].reason;
        assert!(xac.contains("T4 is not in its published document"), "{xac}");
    }

    #[test]
    fn a_member_that_left_is_not_counted() {
        let (mut pool, states) = fixture(Aggregate::Sum, None);
        pool.members.remove(&code("XAB"));
        let r = rollup(&pool, &states).remove(0);
        assert_eq!(r.current, Some(1500.0));
        assert!(!missing(&r).contains(&"XAB".to_string()));
    }

    #[test]
    fn pooled_target_definitions_are_checked() {
        let (pool, _) = fixture(Aggregate::AllReach, Some(3.0));
        assert!(pool.pooled["P1"].validate().is_err());
        let (pool, _) = fixture(Aggregate::CountAchieved, Some(1.5));
        assert!(pool.pooled["P1"].validate().is_err());
        let (pool, _) = fixture(Aggregate::Sum, Some(8000.0));
        assert_eq!(pool.pooled["P1"].validate(), Ok(()));
        assert!("XAB".parse::<Source>().is_err());
        assert!("XAB/".parse::<Source>().is_err());
        assert_eq!(
            "destruction".parse::<Source>().unwrap(),
            Source::Area(Area::Destruction)
        );
        assert!("median".parse::<Aggregate>().is_err());
    }

    #[test]
    fn a_member_whose_delegation_lapsed_reads_no_more() {
        let state_key = crate::sign::NodeKey::from_seed(&[50; 32]);
        let coordinator = crate::sign::NodeKey::from_seed(&[51; 32]).node_id();
        let id = PoolId::new("pool", &coordinator);
        let (lasting, lapsing) = (
            crate::sign::NodeKey::from_seed(&[52; 32]),
            crate::sign::NodeKey::from_seed(&[53; 32]),
        );
        let proof = |n: &crate::sign::NodeKey, expires: Option<&str>| {
            SignedGrant::sign(
                &state_key,
                crate::authority::Grant {
                    kind: GrantKind::Delegation,
                    principal: Principal::State(code("XAB")),
                    node: n.node_id(),
                    scope: Some(crate::authority::Scope::ALL),
                    expires: expires.map(|e| e.parse().unwrap()),
                    issued: "2026-01-01".parse().unwrap(),
                    key: state_key.node_id(),
                    cutoff: vec![],
                    serial: 0,
                    kept: vec![],
                    recovery: None,
                },
            )
            .to_text()
        };
        let value = |t: String| serde_json::from_str::<Json>(&t).unwrap();
        let view = json!({"members": {
            format!("XAB/{}", lasting.node_id()): value(proof(&lasting, None)),
            format!("XAB/{}", lapsing.node_id()): value(proof(&lapsing, Some("2026-06-30"))),
        }});
        let trust = Trust::default().with(Principal::State(code("XAB")), state_key.node_id());
        let read = PoolData::from_json(&view, &id, &trust);
        assert!(
            read.may_read(&lapsing.node_id(), None),
            "a member until its last day"
        );
        let on = |d: &str| read.clone().lapsed_on(d.parse().unwrap());
        assert!(on("2026-06-30").may_read(&lapsing.node_id(), None));
        let after = on("2026-07-01");
        assert!(!after.may_read(&lapsing.node_id(), None));
        assert!(
            !after.may_read(&lapsing.node_id(), Some(code("XAB"))),
            "nor as its State's node"
        );
        assert!(after.may_read(&lasting.node_id(), None));
        assert!(after.is_member(code("XAB")));
    }
}
