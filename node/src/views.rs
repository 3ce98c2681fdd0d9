//! The JSON shown to people for things the CLI and the dashboard both show: one serialisable
//! struct each, so `--json` and the dashboard's `/api` give the same shape.
//!
//! [`PoolView`] is `pool show --json`, each item of `pool list --json`, `/api/pools/{id}` and
//! each item of `/api/pools`. [`NeedView`] is each item of `needs --json` (and `--unmet`) and
//! of `/api/needs`. Records the protocol already renders (a pooled target's roll-up, a match)
//! are embedded in their canonical JSON form, so there is one definition of each.

use poa_protocol::assist::{Match, NeedRef, is_met};
use poa_protocol::model::Need;
use serde::Serialize;
use serde_json::Value as Json;

use crate::pools::PoolReport;

/// A pool: its charter, members, invitations, observers and pooled targets.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoolView {
    /// Its id without `pool/`: `name~fingerprint` (the fingerprint is its coordinator's key).
    pub id: String,
    /// Its name (absent until the charter is held).
    pub name: Option<String>,
    /// The regional framework it serves.
    pub framework: Option<String>,
    /// The code of the State or body that coordinates it.
    pub coordinator: Option<String>,
    /// The coordinator's nodes that write the pool.
    pub coordinator_nodes: Vec<String>,
    /// The member States, by code, with their nodes and contributions.
    pub members: Vec<MemberView>,
    /// States invited that have not joined.
    pub invited: Vec<String>,
    /// Those who read the pool and write nothing.
    pub observers: Vec<ObserverView>,
    /// The pooled targets computed from members' data: each is the protocol's JSON of a
    /// roll-up ([`Rollup::to_json`](poa_protocol::pool::Rollup::to_json)).
    pub pooled: Vec<Json>,
}

/// A member State of a pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberView {
    /// Its code: `XAA`.
    pub state: String,
    /// The NodeIds of its nodes that joined.
    pub nodes: Vec<String>,
    /// The ids of the targets it linked into the pool.
    pub contributed: Vec<String>,
}

/// An observer of a pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObserverView {
    /// Its NodeId.
    pub node: String,
    /// Who it is.
    pub name: String,
}

impl PoolView {
    /// The view of a pool as this node computes it.
    pub fn of(r: &PoolReport) -> PoolView {
        let d = &r.data;
        let charter = d.charter.as_ref();
        PoolView {
            id: r.doc.to_string().trim_start_matches("pool/").to_string(),
            name: charter.map(|c| c.name.clone()),
            framework: charter.and_then(|c| c.framework.clone()),
            coordinator: charter.map(|c| c.coordinator.clone()),
            coordinator_nodes: d.owner.iter().map(|n| n.to_string()).collect(),
            members: d
                .members
                .iter()
                .map(|(s, nodes)| MemberView {
                    state: s.to_string(),
                    nodes: nodes.keys().map(|n| n.to_string()).collect(),
                    contributed: d
                        .contributions
                        .get(s)
                        .map(|c| c.keys().cloned().collect())
                        .unwrap_or_default(),
                })
                .collect(),
            invited: d
                .invites
                .keys()
                .filter(|s| !d.is_member(**s))
                .map(|s| s.to_string())
                .collect(),
            observers: d
                .observers
                .iter()
                .map(|(n, o)| ObserverView {
                    node: n.to_string(),
                    name: o.name.clone(),
                })
                .collect(),
            pooled: r.rollups.iter().map(|r| r.to_json()).collect(),
        }
    }

    /// The members' codes.
    pub fn member_codes(&self) -> Vec<String> {
        self.members.iter().map(|m| m.state.clone()).collect()
    }

    /// The observers' names.
    pub fn observer_names(&self) -> Vec<String> {
        self.observers.iter().map(|o| o.name.clone()).collect()
    }
}

/// A request for assistance with where it stands: the request's own fields, its reference,
/// whether a match with it was accepted, and the matches under way.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NeedView {
    /// `STATE/ID`: `XAB/R1`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The request as its State published it.
    #[serde(flatten)]
    pub need: Need,
    /// `matched` once both sides accepted a match with it, `open` until then.
    pub status: &'static str,
    /// The matches with it this node knows of, as the protocol renders a match
    /// ([`Match::to_json`]).
    pub matches: Vec<Json>,
}

impl NeedView {
    /// The view of `need`, given the matches with it.
    pub fn of(need: Need, matches: &[Match]) -> NeedView {
        let reference = NeedRef::of(&need);
        NeedView {
            status: if is_met(&reference, matches) {
                "matched"
            } else {
                "open"
            },
            reference: reference.to_string(),
            matches: matches.iter().map(Match::to_json).collect(),
            need,
        }
    }

    /// Whether a match with it was accepted by both sides.
    pub fn is_met(&self) -> bool {
        self.status == "matched"
    }
}
