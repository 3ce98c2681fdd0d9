//! `poa-node demo`: the illustrative sub-region of DOMAIN.md as six real nodes on this machine.
//!
//! Three States (XAA, XAB, XAC), the regional body XRB, the donor XZZ and the UN Secretariat each
//! get their own home folder, key, SQLite file and QUIC endpoint on loopback. The data set is
//! entered through the same [`Node`](crate::node::Node) methods the CLI calls, the nodes sync as
//! they would across the world, and the demo prints what reached whom and how long it took.
//!
//! There is no central server: a State's node talks only to the regional body, so what a State
//! publishes reaches the Secretariat because XRB relays it, and reaches nobody the State did not
//! list. The demo checks both, and fails (non-zero exit) if either does not hold.
//!
//! [`dataset`] is the data set itself, kept apart so tests and reports can reuse it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use poa_protocol::assist::{Decision, NeedRef, OfferRef};
use poa_protocol::automerge::ChangeHash;
use poa_protocol::doc::DocId;
use poa_protocol::model::{
    Area, Assessment, AssistanceKind, Cycle, Direction, Indicator, IndicatorKind, Mosaic, Need,
    Offer, Priority, Progress, Target,
};
use poa_protocol::pool::{Aggregate, PooledTarget};
use poa_protocol::{BodyCode, BodyKind, Date, NodeId, StateCode};

use crate::federation::{Member, wait_until};
use crate::home::InitOptions;
use crate::node::{NodeError, Published};
use crate::pools::Invitee;
use crate::sync::{EngineConfig, SyncError, sync_round};

/// How long the demo waits for the federation to do something before it gives up.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Errors of the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A node operation failed.
    #[error(transparent)]
    Node(Box<NodeError>),
    /// Starting a node or syncing failed.
    #[error(transparent)]
    Sync(Box<SyncError>),
    /// A record of the built-in data set does not parse: a bug in this module.
    #[error("the demo's built-in data set is invalid: {0}")]
    Data(String),
    /// The folder for the homes could not be used.
    #[error("cannot use {path} for the nodes' homes")]
    Io {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `--keep` names something other than a new or empty folder.
    #[error("{dir} {why}: give --keep a new or empty folder")]
    Keep {
        /// What `--keep` named.
        dir: PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The federation did not converge in time.
    #[error("{0} within {secs} s", secs = DEADLINE.as_secs())]
    Timeout(String),
    /// Something reached a node it must not reach, or went missing.
    #[error("check failed: {0}")]
    Check(String),
}

// Boxed: the node's errors are large, and the demo passes its own through every step.
impl From<NodeError> for DemoError {
    fn from(e: NodeError) -> Self {
        DemoError::Node(Box::new(e))
    }
}

impl From<SyncError> for DemoError {
    fn from(e: SyncError) -> Self {
        DemoError::Sync(Box::new(e))
    }
}

// ---------------------------------------------------------------------------------------------
// The data set
// ---------------------------------------------------------------------------------------------

/// What one State of the data set enters on its node.
#[derive(Clone, Debug)]
pub struct StateRecords {
    /// The State.
    pub code: StateCode,
    /// Its node's display name.
    pub name: &'static str,
    /// Its targets, version 1, in the order they are entered.
    pub targets: Vec<Target>,
    /// Progress reports on those targets.
    pub progress: Vec<Progress>,
    /// Its assistance requests.
    pub needs: Vec<Need>,
    /// Later versions of its targets, entered with `supersede_target` after the first
    /// publication: each is the whole new version (the node sets its number).
    pub revisions: Vec<Target>,
}

/// What a provider of assistance enters on its node.
#[derive(Clone, Debug)]
pub struct ProviderRecords {
    /// The provider.
    pub code: BodyCode,
    /// Its node's display name.
    pub name: &'static str,
    /// Its offers.
    pub offers: Vec<Offer>,
}

/// The sub-regional pool of the data set, as its coordinator and members set it up.
#[derive(Clone, Debug)]
pub struct PoolRecords {
    /// Its id.
    pub id: &'static str,
    /// Its name.
    pub name: &'static str,
    /// The regional framework it serves.
    pub framework: &'static str,
    /// The targets each member links into it.
    pub contributions: Vec<(StateCode, &'static str)>,
    /// Its pooled targets.
    pub pooled: Vec<PooledTarget>,
}

/// The illustrative data set of DOMAIN.md: the "Xanadu sub-region", cycle BMS9.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The member States.
    pub states: Vec<StateRecords>,
    /// The regional body that coordinates them.
    pub region: BodyCode,
    /// The donor.
    pub donor: ProviderRecords,
    /// The UN Secretariat.
    pub secretariat: BodyCode,
    /// The pool XRB coordinates.
    pub pool: PoolRecords,
    /// The match both sides accept (R2 with O1); R1 stays unmet.
    pub accepted_match: (NeedRef, OfferRef),
}

fn parse<T>(s: &str) -> Result<T, DemoError>
where
    T: FromStr,
    T::Err: Display,
{
    s.parse()
        .map_err(|e| DemoError::Data(format!("'{s}': {e}")))
}

fn mosaic(codes: &[&str]) -> Result<Vec<Mosaic>, DemoError> {
    codes.iter().map(|c| parse(c)).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A quantitative target that should increase from `baseline` (in 2023) to `value`.
#[allow(clippy::too_many_arguments)]
fn increase(
    state: StateCode,
    id: &str,
    area: Area,
    title: &str,
    indicator: &str,
    unit: &str,
    (baseline, value): (f64, f64),
    deadline: &str,
) -> Result<Target, DemoError> {
    Ok(Target {
        indicator: Indicator {
            kind: IndicatorKind::Quantitative,
            text: indicator.into(),
            unit: Some(unit.into()),
            direction: Some(Direction::Increase),
        },
        baseline: Some(baseline),
        baseline_year: Some(2023),
        value: Some(value),
        ..milestone(state, id, area, title, indicator, deadline)?
    })
}

/// A milestone target: done or not by the deadline.
fn milestone(
    state: StateCode,
    id: &str,
    area: Area,
    title: &str,
    indicator: &str,
    deadline: &str,
) -> Result<Target, DemoError> {
    Ok(Target {
        id: id.into(),
        state,
        version: 1,
        cycle: parse::<Cycle>("BMS9")?,
        area,
        title: title.into(),
        description: None,
        indicator: Indicator {
            kind: IndicatorKind::Milestone,
            text: indicator.into(),
            unit: None,
            direction: None,
        },
        baseline: None,
        baseline_year: None,
        baseline_source: None,
        value: None,
        deadline: parse::<Date>(deadline)?,
        mosaic: Vec::new(),
        refs: Vec::new(),
        sdg: None,
        conditional_on: Vec::new(),
        supersedes: None,
        reason: None,
    })
}

fn progress(
    target: &str,
    as_of: &str,
    value: Option<f64>,
    assessment: Option<Assessment>,
    note: &str,
) -> Result<Progress, DemoError> {
    Ok(Progress {
        id: String::new(),
        target: target.into(),
        target_version: 0,
        as_of: parse(as_of)?,
        value,
        assessment,
        note: Some(note.into()),
        challenges: None,
        evidence: None,
        source: None,
        assistance_received: None,
    })
}

/// The illustrative data set of DOMAIN.md ("An illustrative data set"), as records ready to be
/// entered: XAA, XAB and XAC with their targets, progress reports and requests, and the offers
/// of the donor XZZ. Targets are for cycle BMS9; baselines are of 2023.
pub fn dataset() -> Result<Dataset, DemoError> {
    let xaa: StateCode = parse("XAA")?;
    let xab: StateCode = parse("XAB")?;
    let xac: StateCode = parse("XAC")?;

    let xaa_t1 = Target {
        mosaic: mosaic(&["05.30"])?,
        refs: strings(&["ITI 8"]),
        ..increase(
            xaa,
            "T1",
            Area::Marking,
            "Mark State-held SALW",
            "share of State-held SALW marked",
            "percent",
            (40.0, 70.0),
            "2026-06-30",
        )?
    };
    // XAA's target of the previous cycle (RevCon4), reached: T1 of BMS9 follows it.
    let xaa_m1 = Target {
        cycle: parse("RevCon4")?,
        baseline_year: Some(2021),
        mosaic: mosaic(&["05.30"])?,
        ..increase(
            xaa,
            "M1",
            Area::Marking,
            "Mark State-held SALW (first phase)",
            "share of State-held SALW marked",
            "percent",
            (20.0, 40.0),
            "2024-06-01",
        )?
    };
    let xaa_t2 = Target {
        mosaic: mosaic(&["03.40"])?,
        refs: strings(&["PoA II.4"]),
        ..milestone(
            xaa,
            "T2",
            Area::Coordination,
            "National coordination commission established",
            "commission established by decree and meeting",
            "2026-06-30",
        )?
    };
    let xab_t1 = Target {
        mosaic: mosaic(&["05.31"])?,
        sdg: Some("16.4.2".into()),
        ..increase(
            xab,
            "T1",
            Area::Tracing,
            "Raise the tracing rate of seized weapons",
            "SDG 16.4.2: share of seized, found or surrendered arms traced",
            "percent",
            (12.0, 25.0),
            "2027-12-31",
        )?
    };
    let xab_t1_v2 = Target {
        title: "Raise the tracing rate of seized weapons (revised)".into(),
        value: Some(20.0),
        reason: Some("revised after the 2024 survey".into()),
        ..xab_t1.clone()
    };
    let xab_t2 = Target {
        mosaic: mosaic(&["05.50"])?,
        conditional_on: strings(&["R1"]),
        ..increase(
            xab,
            "T2",
            Area::Destruction,
            "Destroy 5,000 surplus weapons",
            "surplus weapons destroyed",
            "weapons",
            (0.0, 5000.0),
            "2027-12-31",
        )?
    };
    let xac_t1 = Target {
        mosaic: mosaic(&["04.10"])?,
        ..milestone(
            xac,
            "T1",
            Area::Coordination,
            "National action plan adopted",
            "action plan adopted by the cabinet",
            "2026-12-31",
        )?
    };
    let xac_t2 = Target {
        description: Some("3 of 10 depots met the standards in 2023".into()),
        mosaic: mosaic(&["05.20"])?,
        ..increase(
            xac,
            "T2",
            Area::Stockpile,
            "Bring depots up to stockpile standards",
            "depots (of 10) meeting national stockpile standards",
            "depots",
            (3.0, 6.0),
            "2027-06-30",
        )?
    };
    let xac_t3 = Target {
        mosaic: mosaic(&["05.30"])?,
        conditional_on: strings(&["R2"]),
        ..milestone(
            xac,
            "T3",
            Area::RecordKeeping,
            "Electronic record-keeping",
            "electronic records of State-held weapons in every depot",
            "2027-12-31",
        )?
    };

    let states = vec![
        StateRecords {
            code: xaa,
            name: "XAA Ministry of Interior",
            targets: vec![xaa_m1, xaa_t1, xaa_t2],
            progress: vec![
                progress(
                    "M1",
                    "2024-05-31",
                    Some(42.0),
                    Some(Assessment::Achieved),
                    "first phase done in the capital's depots",
                )?,
                progress(
                    "T1",
                    "2025-12-31",
                    Some(55.0),
                    Some(Assessment::OnTrack),
                    "marking teams at work in five of eight provinces",
                )?,
                progress(
                    "T2",
                    "2025-12-31",
                    None,
                    Some(Assessment::Achieved),
                    "commission established by decree; first meeting held",
                )?,
            ],
            needs: Vec::new(),
            revisions: Vec::new(),
        },
        StateRecords {
            code: xab,
            name: "XAB National SALW Commission",
            targets: vec![xab_t1, xab_t2],
            progress: vec![
                progress(
                    "T1",
                    "2025-12-31",
                    Some(15.0),
                    Some(Assessment::OnTrack),
                    "tracing unit staffed; 15 % of seized weapons traced",
                )?,
                progress(
                    "T2",
                    "2025-12-31",
                    Some(1800.0),
                    Some(Assessment::OnTrack),
                    "1,800 surplus weapons destroyed in two public ceremonies",
                )?,
            ],
            needs: vec![Need {
                id: "R1".into(),
                state: xab,
                title: "Destruction equipment".into(),
                targets: strings(&["T2"]),
                area: Area::Destruction,
                mosaic: mosaic(&["05.50"])?,
                kind: AssistanceKind::Equipment,
                cost: Some(250_000.0),
                currency: Some("USD".into()),
                from: None,
                until: None,
                priority: Priority::High,
            }],
            revisions: vec![xab_t1_v2],
        },
        StateRecords {
            code: xac,
            name: "XAC Ministry of Defence",
            targets: vec![xac_t1, xac_t2, xac_t3],
            progress: vec![
                progress(
                    "T1",
                    "2026-03-31",
                    None,
                    Some(Assessment::Achieved),
                    "plan adopted by the cabinet",
                )?,
                progress(
                    "T2",
                    "2025-12-31",
                    Some(4.0),
                    Some(Assessment::OnTrack),
                    "one more depot upgraded",
                )?,
            ],
            needs: vec![Need {
                id: "R2".into(),
                state: xac,
                title: "Marking and record-keeping training".into(),
                targets: strings(&["T3"]),
                area: Area::RecordKeeping,
                mosaic: mosaic(&["05.30"])?,
                kind: AssistanceKind::Training,
                cost: None,
                currency: None,
                from: None,
                until: None,
                priority: Priority::Medium,
            }],
            revisions: Vec::new(),
        },
    ];

    let donor = ProviderRecords {
        code: parse("XZZ")?,
        name: "XZZ Development Agency",
        offers: vec![
            Offer {
                id: "O1".into(),
                provider: "XZZ".into(),
                title: "Marking and record-keeping training".into(),
                areas: vec![Area::Marking, Area::RecordKeeping],
                mosaic: mosaic(&["05.30"])?,
                kinds: vec![AssistanceKind::Training],
                regions: Vec::new(),
                budget_min: None,
                budget_max: Some(150_000.0),
                currency: Some("USD".into()),
                from: None,
                until: None,
            },
            Offer {
                id: "O2".into(),
                provider: "XZZ".into(),
                title: "Stockpile-security equipment fund".into(),
                areas: vec![Area::Stockpile],
                mosaic: mosaic(&["05.20"])?,
                kinds: vec![AssistanceKind::Equipment, AssistanceKind::Financial],
                regions: Vec::new(),
                budget_min: Some(50_000.0),
                budget_max: Some(500_000.0),
                currency: Some("USD".into()),
                from: None,
                until: None,
            },
        ],
    };

    let pool = PoolRecords {
        id: "xanadu",
        name: "Xanadu sub-region",
        framework: "Xanadu Regional Roadmap",
        contributions: vec![(xaa, "T1"), (xab, "T2"), (xac, "T2")],
        pooled: vec![PooledTarget {
            id: "P1".into(),
            title: "At least 8,000 weapons destroyed across the sub-region".into(),
            aggregate: Aggregate::Sum,
            from: parse("destruction")?,
            value: Some(8000.0),
            unit: Some("weapons".into()),
            direction: Some(Direction::Increase),
            deadline: Some(parse("2027-12-31")?),
        }],
    };

    Ok(Dataset {
        states,
        region: parse("XRB")?,
        donor,
        secretariat: parse("UNODA")?,
        pool,
        accepted_match: (parse("XAC/R2")?, parse("XZZ/O1")?),
    })
}

// ---------------------------------------------------------------------------------------------
// The federation
// ---------------------------------------------------------------------------------------------

/// Where the nodes' homes live: a temporary folder removed at the end, or the `--keep` folder.
#[derive(Debug)]
enum Homes {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Homes {
    fn new(keep: Option<PathBuf>) -> Result<Homes, DemoError> {
        let Some(dir) = keep else {
            let tmp = tempfile::Builder::new()
                .prefix("poa-demo-")
                .tempdir()
                .map_err(|source| DemoError::Io {
                    path: std::env::temp_dir(),
                    source,
                })?;
            return Ok(Homes::Temp(tmp));
        };
        let io = |source| DemoError::Io {
            path: dir.clone(),
            source,
        };
        if dir.is_file() {
            return Err(DemoError::Keep {
                dir,
                why: "is a file",
            });
        }
        if dir.exists() {
            if std::fs::read_dir(&dir).map_err(io)?.next().is_some() {
                return Err(DemoError::Keep {
                    dir,
                    why: "is not empty",
                });
            }
        } else {
            std::fs::create_dir_all(&dir).map_err(io)?;
        }
        Ok(Homes::Kept(dir))
    }

    fn path(&self) -> &Path {
        match self {
            Homes::Temp(t) => t.path(),
            Homes::Kept(p) => p,
        }
    }
}

/// The six running nodes.
struct Federation {
    /// One per State of the data set, in the same order.
    states: Vec<Member>,
    xrb: Member,
    un: Member,
    donor: Member,
}

impl Federation {
    fn all(&self) -> Vec<&Member> {
        let mut all: Vec<&Member> = self.states.iter().collect();
        all.extend([&self.xrb, &self.un, &self.donor]);
        all
    }

    /// The label of the node whose full NodeId is `id`.
    fn label_of(&self, id: &str) -> String {
        self.all()
            .into_iter()
            .find(|m| m.id().to_string() == id)
            .map(|m| m.label.clone())
            .unwrap_or_else(|| id.chars().take(7).collect())
    }

    /// Stops every node gracefully, each saying goodbye to its peers; all at once, as a
    /// federation that shuts down does not wait for one node after another.
    async fn stop(self) {
        let mut stopping = tokio::task::JoinSet::new();
        for m in self
            .states
            .into_iter()
            .chain([self.xrb, self.un, self.donor])
        {
            stopping.spawn(m.stop());
        }
        while stopping.join_next().await.is_some() {}
    }
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        // Look for work often: the demo is about how fast things travel.
        poll: Duration::from_millis(50),
        round_timeout: Duration::from_secs(30),
        ..EngineConfig::default()
    }
}

async fn start(homes: &Homes, label: &str, opts: InitOptions) -> Result<Member, DemoError> {
    let dir = homes.path().join(label.to_ascii_lowercase());
    let member = Member::start(label, &dir, &opts, engine_config()).await?;
    println!(
        "   {label:<12} {:<26} {}  {:<16} {}",
        opts.participant.to_string(),
        member.id().short(),
        member.addr(),
        dir.display()
    );
    Ok(member)
}

// ---------------------------------------------------------------------------------------------
// Watching documents travel
// ---------------------------------------------------------------------------------------------

/// The heads a member holds of `doc`, sorted; empty if it holds none.
fn heads(m: &Member, doc: &DocId) -> Result<Vec<ChangeHash>, DemoError> {
    let mut h = m
        .with_node(|n| n.store.heads(doc))
        .map_err(NodeError::from)?
        .unwrap_or_default();
    h.sort();
    Ok(h)
}

/// The peers a member accepted changes of `doc` from, by label, read from its audit log.
fn received_from(fed: &Federation, m: &Member, doc: &DocId) -> Result<String, DemoError> {
    let rows = m.with_node(|n| n.store.audit(0)).map_err(NodeError::from)?;
    let name = doc.to_string();
    let from: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.event == "accepted" && r.doc.as_deref() == Some(name.as_str()))
        .filter_map(|r| r.peer.as_deref())
        .map(|p| fed.label_of(p))
        .collect();
    Ok(from.into_iter().collect::<Vec<_>>().join(", "))
}

/// What a member's audit log says about `doc`: changes accepted and rejected, who wrote the
/// accepted ones (the genesis aside) and which peers they came from, by label.
fn audit_of(fed: &Federation, m: &Member, doc: &DocId) -> Result<String, DemoError> {
    let rows = m.with_node(|n| n.store.audit(0)).map_err(NodeError::from)?;
    let name = doc.to_string();
    let rows: Vec<_> = rows
        .iter()
        .filter(|r| r.doc.as_deref() == Some(name.as_str()))
        .collect();
    let rejected = rows.iter().filter(|r| r.event == "rejected").count();
    if rejected > 0 {
        return Err(DemoError::Check(format!(
            "{} rejected {rejected} change(s) of {doc}; see its audit log",
            m.label
        )));
    }
    let accepted: Vec<_> = rows.iter().filter(|r| r.event == "accepted").collect();
    let authors: BTreeSet<String> = accepted
        .iter()
        .filter(|r| r.detail != "genesis")
        .map(|r| {
            let short = r.detail.strip_prefix("by node ").unwrap_or(&r.detail);
            fed.all()
                .into_iter()
                .find(|o| o.id().short() == short)
                .map(|o| o.label.clone())
                .unwrap_or_else(|| short.to_string())
        })
        .collect();
    let peers: BTreeSet<String> = accepted
        .iter()
        .filter_map(|r| r.peer.as_deref())
        .map(|p| fed.label_of(p))
        .collect();
    let join = |set: BTreeSet<String>| set.into_iter().collect::<Vec<_>>().join(", ");
    Ok(format!(
        "{} change(s) accepted, written by {}, received from {}; 0 rejected",
        accepted.len(),
        join(authors),
        join(peers)
    ))
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Waits until every member of `to` holds `doc` exactly as `from` does now, and prints when each
/// got it (milliseconds since `since`) and from whom.
async fn track(
    fed: &Federation,
    doc: &DocId,
    from: &Member,
    to: &[&Member],
    since: Instant,
    deadline: Instant,
) -> Result<(), DemoError> {
    let goal = heads(from, doc)?;
    let mut arrived: BTreeMap<usize, Duration> = BTreeMap::new();
    let mut failure = None;
    let done = wait_until(remaining(deadline), || {
        for (i, m) in to.iter().enumerate() {
            if arrived.contains_key(&i) {
                continue;
            }
            match heads(m, doc) {
                Ok(h) if h == goal => {
                    arrived.insert(i, since.elapsed());
                }
                Ok(_) => {}
                Err(e) => {
                    failure = Some(e);
                    return true;
                }
            }
        }
        arrived.len() == to.len()
    })
    .await;
    if let Some(e) = failure {
        return Err(e);
    }
    if done.is_none() {
        let missing: Vec<&str> = to
            .iter()
            .enumerate()
            .filter(|(i, _)| !arrived.contains_key(i))
            .map(|(_, m)| m.label.as_str())
            .collect();
        return Err(DemoError::Timeout(format!(
            "{doc} did not reach {}",
            missing.join(", ")
        )));
    }
    let mut order: Vec<(usize, Duration)> = arrived.into_iter().collect();
    order.sort_by_key(|(_, d)| *d);
    for (i, d) in order {
        let m = to[i];
        println!(
            "     {:<12} {:>5} ms   received from {}",
            m.label,
            d.as_millis(),
            received_from(fed, m, doc)?
        );
    }
    Ok(())
}

/// Checks that none of `others` holds `doc` or was ever told its name, and says so.
fn check_kept_from(fed: &Federation, doc: &DocId, others: &[&Member]) -> Result<(), DemoError> {
    for m in others {
        if !heads(m, doc)?.is_empty() {
            return Err(DemoError::Check(format!(
                "{doc} reached {}, which is not on its share list",
                m.label
            )));
        }
        for sender in fed.all() {
            if sender.engine().revealed_to(&m.id()).contains(doc) {
                return Err(DemoError::Check(format!(
                    "{} named {doc} to {}, which is not on its share list",
                    sender.label, m.label
                )));
            }
        }
    }
    Ok(())
}

fn labels(members: &[&Member]) -> String {
    members
        .iter()
        .map(|m| m.label.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Output helpers
// ---------------------------------------------------------------------------------------------

fn heading(n: u32, title: &str) {
    println!();
    println!("{n}. {title}");
}

/// One data-entry step: who did it, the CLI command it stands for, what it was.
fn entered(who: &str, command: &str, what: &str) {
    println!("   {who:<5} {command:<22} {what}");
}

fn num(v: f64) -> String {
    v.to_string()
}

fn describe(t: &Target) -> String {
    match (t.baseline, t.value) {
        (Some(b), Some(v)) => format!(
            "{}: {} -> {} {} by {}",
            t.title,
            num(b),
            num(v),
            t.indicator.unit.as_deref().unwrap_or_default(),
            t.deadline
        ),
        _ => format!("{} ({} by {})", t.title, t.indicator.kind, t.deadline),
    }
}

fn published(p: &Published) -> String {
    let mut parts = Vec::new();
    if !p.versions.is_empty() {
        let v: Vec<String> = p.versions.iter().map(|v| v.to_string()).collect();
        parts.push(format!("version {}", v.join(", ")));
    }
    if !p.progress.is_empty() {
        parts.push(format!("{} progress report(s)", p.progress.len()));
    }
    if parts.is_empty() {
        "nothing new".into()
    } else {
        parts.join(", ")
    }
}

/// Prints rows as aligned columns, indented.
fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::from("   ");
        for (i, c) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            s.push_str(&format!("{c:<w$}  "));
        }
        println!("{}", s.trim_end());
    };
    line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for r in rows {
        line(r);
    }
}

// ---------------------------------------------------------------------------------------------
// The demo
// ---------------------------------------------------------------------------------------------

/// Runs the demo: starts the six nodes in `keep` (a new or empty folder, left behind) or in a
/// temporary folder, enters the data set, waits for it to travel, checks where it went, prints
/// every step, and stops the nodes.
pub async fn run(keep: Option<PathBuf>, serve: Option<SocketAddr>) -> Result<(), DemoError> {
    let began = Instant::now();
    let data = dataset()?;
    let homes = Homes::new(keep)?;

    println!("poa-node demo: the illustrative Xanadu sub-region of DOMAIN.md, cycle BMS9.");
    println!(
        "Six real nodes on this machine, each with its own key, SQLite file and QUIC endpoint"
    );
    println!(
        "on loopback. No central server: data reaches a node only through nodes it has pinned."
    );

    heading(1, "Starting the nodes");
    println!(
        "   {:<12} {:<26} {:<7}  {:<16} HOME",
        "NODE", "ACTS FOR", "NODEID", "LISTENS ON"
    );
    let mut states = Vec::new();
    for s in &data.states {
        let m = start(&homes, s.code.as_str(), InitOptions::state(s.code, s.name)).await?;
        states.push(m);
    }
    let fed = Federation {
        states,
        xrb: start(
            &homes,
            "XRB",
            InitOptions::body(
                data.region.clone(),
                BodyKind::Regional,
                "Xanadu Regional Bureau",
            ),
        )
        .await?,
        un: start(
            &homes,
            "Secretariat",
            InitOptions::body(
                data.secretariat.clone(),
                BodyKind::Secretariat,
                "UN Secretariat (UNODA)",
            ),
        )
        .await?,
        donor: start(
            &homes,
            data.donor.code.as_str(),
            InitOptions::body(data.donor.code.clone(), BodyKind::Donor, data.donor.name),
        )
        .await?,
    };

    let mut outcome = play(&fed, &data).await;
    if outcome.is_ok() {
        outcome = stocktake_and_serve(&fed, serve).await;
    }
    let stopping = Instant::now();
    fed.stop().await;
    outcome?;
    println!(
        "   Stopped the six nodes in {} ms. The demo took {:.1} s.",
        stopping.elapsed().as_millis(),
        began.elapsed().as_secs_f64()
    );

    match homes {
        Homes::Kept(dir) => {
            let d = dir.display();
            println!();
            println!("The nodes' homes are kept in {d}. Inspect them with the CLI, for example:");
            println!("   poa-node --home {d}/secretariat target list --state XAB");
            println!("   poa-node --home {d}/secretariat target show T1 --state XAB");
            println!("   poa-node --home {d}/secretariat audit");
            println!("   poa-node --home {d}/xab target list");
            println!("   poa-node --home {d}/xrb doc list");
            println!("   poa-node --home {d}/xzz doc list");
        }
        Homes::Temp(tmp) => {
            let path = tmp.path().to_path_buf();
            tmp.close()
                .map_err(|source| DemoError::Io { path, source })?;
            println!(
                "   The nodes' homes were removed; run `poa-node demo --keep DIR` to keep them."
            );
        }
    }
    Ok(())
}

/// Everything between starting the nodes and stopping them.
async fn play(fed: &Federation, data: &Dataset) -> Result<(), DemoError> {
    let deadline = Instant::now() + DEADLINE;
    let (xrb, un, donor) = (&fed.xrb, &fed.un, &fed.donor);

    heading(
        2,
        "Pinning keys: a node talks only to the nodes it has pinned",
    );
    // Every key first, then the addresses: a node that dialled a peer which had not pinned it
    // yet would be refused and back off, and the timings below would measure the back-off.
    let donor_body = Some(poa_protocol::Principal::Body(data.donor.code.clone()));
    for (s, m) in data.states.iter().zip(&fed.states) {
        m.accept_from(xrb, None)?;
        m.trust_introductions_from(xrb)?;
        xrb.accept_from(m, Some(s.code))?;
    }
    xrb.accept_from(un, None)?;
    un.accept_from(xrb, None)?;
    un.trust_introductions_from(xrb)?;
    // XRB and the Secretariat accept the donor's connections but never dial it.
    xrb.accept_from_as(donor, donor_body.clone())?;
    un.accept_from_as(donor, donor_body)?;
    for (s, m) in data.states.iter().zip(&fed.states) {
        m.pin(xrb, None)?;
        xrb.pin(m, Some(s.code))?;
        println!(
            "   {:<12} <-> XRB          (XRB pins it as a node of State {})",
            m.label, s.code
        );
    }
    xrb.pin(un, None)?;
    un.pin(xrb, None)?;
    println!("   {:<12} <-> Secretariat", "XRB");
    donor.pin(xrb, None)?;
    donor.trust_introductions_from(xrb)?;
    donor.pin(un, None)?;
    println!(
        "   {:<12}  -> XRB, Secretariat (they accept it and never dial it)",
        donor.label
    );
    println!(
        "   The States are not peers of the Secretariat: what they publish reaches it through XRB."
    );
    println!(
        "   Keys: XRB learns each State's key from the node it pinned for that State, and the"
    );
    println!(
        "   donor's body key likewise; the States, the donor and the Secretariat chose XRB as an"
    );
    println!(
        "   introducer. No node takes a key from a document's content, nor from an unchosen peer."
    );

    let mut pairs: Vec<(&Member, &Member)> = fed.states.iter().map(|m| (m, xrb)).collect();
    pairs.extend([(xrb, un), (donor, xrb), (donor, un)]);
    let up = wait_until(remaining(deadline), || {
        pairs.iter().all(|(a, b)| {
            a.engine().connected().contains(&b.id()) && b.engine().connected().contains(&a.id())
        })
    })
    .await
    .ok_or_else(|| DemoError::Timeout("the pinned nodes did not connect".into()))?;
    println!(
        "   {} QUIC connections up after {} ms (mutual TLS between pinned keys).",
        pairs.len(),
        up.as_millis()
    );

    heading(
        3,
        &format!(
            "Donor {} publishes its offers, readable by everyone it syncs with",
            donor.label
        ),
    );
    let offers_doc = donor.with_node(|n| n.offers_doc());
    for o in &data.donor.offers {
        donor.with_node(|n| n.add_offer(o.clone()))?;
        let kinds: Vec<String> = o.kinds.iter().map(|k| k.to_string()).collect();
        entered(
            &donor.label,
            &format!("offer add {}", o.id),
            &format!("{} ({})", o.title, kinds.join(", ")),
        );
    }
    let since = Instant::now();
    donor.with_node(|n| n.share(&offers_doc, &[], true))?;
    entered(&donor.label, &format!("share {offers_doc}"), "--public");
    println!("   {offers_doc} reached (ms after the share; nodes polled every 10 ms):");
    let mut readers: Vec<&Member> = vec![xrb, un];
    readers.extend(fed.states.iter());
    track(fed, &offers_doc, donor, &readers, since, deadline).await?;

    let mut step = 4;
    for (i, (s, m)) in data.states.iter().zip(&fed.states).enumerate() {
        heading(
            step,
            &format!(
                "{} enters its data: drafts first, then publish, then share with XRB and the Secretariat",
                s.code
            ),
        );
        step += 1;
        for t in &s.targets {
            m.with_node(|n| n.add_target(t.clone()))?;
            entered(&m.label, &format!("target add {}", t.id), &describe(t));
        }
        for p in &s.progress {
            let id = m.with_node(|n| n.add_progress(p.clone()))?;
            let mut what: Vec<String> = p
                .value
                .map(|v| format!("value {}", num(v)))
                .into_iter()
                .collect();
            what.extend(p.assessment.map(|a| a.to_string()));
            entered(
                &m.label,
                &format!("progress add {}", p.target),
                &format!("{id}: {}", what.join(", ")),
            );
        }
        for need in &s.needs {
            m.with_node(|n| n.add_need(need.clone()))?;
            entered(
                &m.label,
                &format!("need add {}", need.id),
                &format!(
                    "{} ({}, for {})",
                    need.title,
                    need.kind,
                    need.targets.join(", ")
                ),
            );
        }
        for t in &s.targets {
            let p = m.with_node(|n| n.publish_target(&t.id))?;
            entered(
                &m.label,
                &format!("target publish {}", t.id),
                &published(&p),
            );
        }
        let doc = DocId::State(s.code);
        let (xrb_id, un_id): (NodeId, NodeId) = (xrb.id(), un.id());
        // Until this change, nobody else may read the document: its travel starts here.
        let since = Instant::now();
        m.with_node(|n| n.share(&doc, &[xrb_id, un_id], false))?;
        entered(
            &m.label,
            &format!("share {doc}"),
            "--with XRB --with Secretariat",
        );
        println!("   {doc} reached (ms after the share):");
        track(fed, &doc, m, &[xrb, un], since, deadline).await?;
        let mut others: Vec<&Member> = vec![donor];
        others.extend(
            fed.states
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, o)| o),
        );
        check_kept_from(fed, &doc, &others)?;
        println!(
            "     not sent to {} (not on the share list); {} never left {}",
            labels(&others),
            DocId::Draft(s.code),
            s.code
        );
    }

    for (s, m) in data.states.iter().zip(&fed.states) {
        if s.revisions.is_empty() {
            continue;
        }
        heading(
            step,
            &format!(
                "{} revises a published target: a later change travels the same way",
                s.code
            ),
        );
        step += 1;
        let mut since = Instant::now();
        for rev in &s.revisions {
            let v = m.with_node(|n| {
                n.supersede_target(&rev.id, |t| {
                    *t = rev.clone();
                    Ok(())
                })
            })?;
            entered(
                &m.label,
                &format!("target supersede {}", rev.id),
                &format!(
                    "v{v}: {} ({})",
                    describe(rev),
                    rev.reason.as_deref().unwrap_or("no reason given")
                ),
            );
            since = Instant::now();
            let p = m.with_node(|n| n.publish_target(&rev.id))?;
            entered(
                &m.label,
                &format!("target publish {}", rev.id),
                &published(&p),
            );
        }
        let doc = DocId::State(s.code);
        println!("   {doc} reached (ms after the publish):");
        track(fed, &doc, m, &[xrb, un], since, deadline).await?;
    }

    heading(
        step,
        "Checking where the State documents went, after one more full sync round from the donor",
    );
    step += 1;
    let rounds = sync_round(donor.engine(), None).await?;
    for (peer, r) in &rounds {
        match r {
            Ok(rep) => println!(
                "   {} <-> {}: round complete, {} change(s) received, {} sent, {} round trip(s)",
                donor.label,
                peer.name,
                rep.accepted.values().sum::<usize>(),
                rep.sent.values().sum::<usize>(),
                rep.round_trips
            ),
            Err(e) => {
                return Err(DemoError::Check(format!(
                    "the donor's sync round with {} failed: {e}",
                    peer.name
                )));
            }
        }
    }
    for (i, s) in data.states.iter().enumerate() {
        let doc = DocId::State(s.code);
        let mut others: Vec<&Member> = vec![donor];
        others.extend(
            fed.states
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, o)| o),
        );
        check_kept_from(fed, &doc, &others)?;
        println!(
            "   {doc}: not held by {}, nor ever named to them by any node",
            labels(&others)
        );
        let draft = DocId::Draft(s.code);
        let not_own: Vec<&Member> = fed
            .all()
            .into_iter()
            .filter(|o| o.label != fed.states[i].label)
            .collect();
        check_kept_from(fed, &draft, &not_own)?;
        println!("   {draft}: held only by {}", s.code);
    }

    step = form_pool(fed, data, step, deadline).await?;
    step = match_assistance(fed, data, step, deadline).await?;

    heading(
        step,
        "What the Secretariat holds (read from its own database)",
    );
    let mut rows = Vec::new();
    let (mut versions, mut targets) = (0, 0);
    for (s, m) in data.states.iter().zip(&fed.states) {
        let doc = DocId::State(s.code);
        let at_state: BTreeSet<(String, u32)> = m
            .with_node(|n| n.state_data(&doc))?
            .targets
            .into_keys()
            .collect();
        let at_un: BTreeSet<(String, u32)> = un
            .with_node(|n| n.state_data(&doc))?
            .targets
            .into_keys()
            .collect();
        if at_state != at_un {
            return Err(DemoError::Check(format!(
                "{} published {at_state:?} but the Secretariat holds {at_un:?}",
                s.code
            )));
        }
        versions += at_un.len();
        for view in un.with_node(|n| n.target_views(Some(s.code)))? {
            targets += 1;
            for v in &view.versions {
                let t = &v.target;
                rows.push(vec![
                    format!("{} {}", s.code, t.id),
                    format!("v{}", t.version),
                    v.status.to_string(),
                    t.area.to_string(),
                    t.title.clone(),
                ]);
            }
        }
    }
    table(&["TARGET", "VER", "STATUS", "AREA", "TITLE"], &rows);
    let mut rows = Vec::new();
    for s in &data.states {
        for need in un.with_node(|n| n.needs(Some(s.code)))? {
            rows.push(vec![
                format!("{} {}", s.code, need.id),
                need.kind.to_string(),
                need.targets.join(","),
                need.title,
            ]);
        }
    }
    println!();
    table(&["REQUEST", "KIND", "FOR", "TITLE"], &rows);
    let rows: Vec<Vec<String>> = un
        .with_node(|n| n.offers())?
        .into_iter()
        .map(|o| {
            let kinds: Vec<String> = o.kinds.iter().map(|k| k.to_string()).collect();
            vec![format!("{} {}", o.provider, o.id), kinds.join(","), o.title]
        })
        .collect();
    println!();
    table(&["OFFER", "KINDS", "TITLE"], &rows);
    let codes: Vec<&str> = data.states.iter().map(|s| s.code.as_str()).collect();
    println!();
    println!(
        "   Every target {} published is at the Secretariat: {targets} targets, {versions} versions.",
        codes.join(", ")
    );
    secretariat_pool_and_needs(un, data)?;
    println!();
    println!(
        "   The Secretariat's audit log: every change checked against its author's signature."
    );
    for s in &data.states {
        let doc = DocId::State(s.code);
        println!("   {doc}: {}", audit_of(fed, un, &doc)?);
    }
    Ok(())
}

/// Prints the Secretariat's stocktake, then serves its dashboard until Ctrl-C (unless `serve`
/// is `None`).
async fn stocktake_and_serve(fed: &Federation, serve: Option<SocketAddr>) -> Result<(), DemoError> {
    let un = &fed.un;
    let st = un
        .engine()
        .read(|n| -> Result<_, crate::report::ReportError> {
            let cycle = crate::report::default_cycle(n)?;
            crate::report::compute(n, cycle, crate::node::today())
        })
        .map_err(|e| DemoError::Check(format!("the stocktake failed: {e}")))?;
    println!();
    println!(
        "The Secretariat's stocktake of {} (statuses as of {}; `poa-node stocktake` writes it in full):",
        st.cycle, st.as_of
    );
    let t = &st.totals;
    println!(
        "   {} targets: {} achieved, {} in progress, {} not achieved, {} with no data",
        t.targets, t.achieved, t.in_progress, t.not_achieved, t.no_data
    );
    println!(
        "   States that reported progress: {}",
        st.participation.reported.join(", ")
    );
    for p in &st.progression {
        println!(
            "   Progression: {} {} against {}: {} ({})",
            p.state, p.target, p.against, p.flag, p.detail
        );
    }
    for p in &st.pools {
        for r in &p.pooled {
            println!(
                "   Pool {} {}: {} of {} {}",
                p.id,
                r.id,
                r.current.map(num).unwrap_or_else(|| "-".into()),
                r.goal.map(num).unwrap_or_else(|| "-".into()),
                r.unit.clone().unwrap_or_default()
            );
        }
    }
    let unmet: Vec<&str> = st.unmet_needs.iter().map(|n| n.need.as_str()).collect();
    println!("   Unmet requests: {}", unmet.join(", "));
    println!(
        "   Computed from {} documents at cited heads.",
        st.sources.len()
    );
    let Some(addr) = serve else {
        return Ok(());
    };
    let engine = un.engine().clone();
    let board = match crate::dashboard::dashboard(engine.clone(), addr).await {
        Ok(b) => b,
        Err(e) => {
            println!("   {addr} is not free ({e}); taking another port.");
            let any = SocketAddr::new(addr.ip(), 0);
            crate::dashboard::dashboard(engine, any)
                .await
                .map_err(|e| DemoError::Check(format!("cannot serve the dashboard: {e}")))?
        }
    };
    println!();
    println!(
        "The Secretariat's dashboard: http://{}/  (read-only; Ctrl-C to stop the demo)",
        board.addr()
    );
    let _ = tokio::signal::ctrl_c().await;
    println!();
    board.shutdown().await;
    Ok(())
}

/// XRB creates the pool and invites the States, which join by consent; the Secretariat is
/// admitted as observer. Sharing then follows membership: each State's document reaches the
/// other members through XRB without naming them.
async fn form_pool(
    fed: &Federation,
    data: &Dataset,
    mut step: u32,
    deadline: Instant,
) -> Result<u32, DemoError> {
    let (xrb, un) = (&fed.xrb, &fed.un);
    let pool = &data.pool;
    heading(
        step,
        "XRB forms the Xanadu pool: States join by consent, the Secretariat observes",
    );
    step += 1;
    let since = Instant::now();
    let doc = xrb.with_node(|n| n.pool_create(pool.id, pool.name, Some(pool.framework.into())))?;
    entered(
        "XRB",
        &format!("pool create --id {}", pool.id),
        &format!("\"{}\", serving the {}", pool.name, pool.framework),
    );
    for s in &data.states {
        xrb.with_node(|n| n.pool_invite(pool.id, Invitee::State(s.code)))?;
        entered(
            "XRB",
            &format!("pool invite {} {}", pool.id, s.code),
            "names the State key XRB pinned for it",
        );
    }
    let un_id = un.id();
    xrb.with_node(|n| n.pool_observe(pool.id, un_id, "UN Secretariat"))?;
    entered(
        "XRB",
        &format!("pool observe {} <Secretariat>", pool.id),
        "reads the pool, writes nothing",
    );
    for p in &pool.pooled {
        xrb.with_node(|n| n.pool_target_add(pool.id, p.clone()))?;
        entered(
            "XRB",
            &format!("pool target add {} {}", pool.id, p.id),
            &format!(
                "{} ({} of {}, goal {})",
                p.title,
                p.aggregate,
                p.from,
                p.value.map(num).unwrap_or_else(|| "-".into())
            ),
        );
    }
    println!("   {doc} reached (ms after its creation; its id carries XRB's key fingerprint):");
    let mut audience: Vec<&Member> = fed.states.iter().collect();
    audience.push(un);
    track(fed, &doc, xrb, &audience, since, deadline).await?;
    let since = Instant::now();
    for (s, m) in data.states.iter().zip(&fed.states) {
        m.with_node(|n| n.pool_join(pool.id))?;
        entered(
            &m.label,
            &format!("pool join {}", pool.id),
            "presents its delegation from the State key; shares state/ with the pool",
        );
        for (_, t) in pool.contributions.iter().filter(|(c, _)| *c == s.code) {
            m.with_node(|n| n.pool_contribute(pool.id, t))?;
            let title = s
                .targets
                .iter()
                .find(|x| x.id == *t)
                .map(|x| x.title.as_str())
                .unwrap_or_default();
            entered(&m.label, &format!("pool contribute {} {t}", pool.id), title);
        }
    }
    let want = data.states.len();
    wait_until(remaining(deadline), || {
        xrb.with_node(|n| n.pool(pool.id))
            .map(|p| p.members.len() == want && p.contributions.len() == want)
            .unwrap_or(false)
    })
    .await
    .ok_or_else(|| DemoError::Timeout("the joins did not reach XRB".into()))?;
    println!("   {doc} with every join and contribution reached:");
    track(fed, &doc, xrb, &audience, since, deadline).await?;
    for (i, (s, m)) in data.states.iter().zip(&fed.states).enumerate() {
        let mut others: Vec<&Member> = fed
            .states
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, o)| o)
            .collect();
        others.extend([xrb, un]);
        let doc = DocId::State(s.code);
        println!(
            "   {doc} (now shared with the pool) reached the other members (sharing follows membership), XRB and the Secretariat:"
        );
        track(fed, &doc, m, &others, since, deadline).await?;
    }
    Ok(step)
}

/// The Secretariat's suggestions; XAC proposes O1 for R2 and the donor accepts, each in its own
/// document; R1 stays unmet.
async fn match_assistance(
    fed: &Federation,
    data: &Dataset,
    mut step: u32,
    deadline: Instant,
) -> Result<u32, DemoError> {
    let (xrb, un, donor) = (&fed.xrb, &fed.un, &fed.donor);
    heading(
        step,
        "Matching requests with offers: each side decides in its own document",
    );
    step += 1;
    let suggestions = un.with_node(|n| n.match_suggest())?;
    println!("   The Secretariat's `match suggest`, best first:");
    let rows: Vec<Vec<String>> = suggestions
        .iter()
        .map(|s| {
            vec![
                s.need.to_string(),
                s.offer.to_string(),
                s.score.to_string(),
                s.fits.join("; "),
            ]
        })
        .collect();
    table(&["REQUEST", "OFFER", "SCORE", "FITS"], &rows);
    let unfit: Vec<String> = un
        .with_node(|n| n.unmet_needs())?
        .iter()
        .map(|(n, _)| NeedRef::of(n))
        .filter(|r| suggestions.iter().all(|s| s.need != *r))
        .map(|r| r.to_string())
        .collect();
    println!("   No offer fits: {}", unfit.join(", "));
    let (need, offer) = &data.accepted_match;
    let state = fed
        .states
        .iter()
        .zip(&data.states)
        .find(|(_, s)| s.code == need.state)
        .map(|(m, _)| m)
        .ok_or_else(|| DemoError::Data(format!("no node for {}", need.state)))?;
    let since = Instant::now();
    state.with_node(|n| {
        n.match_decide(
            need,
            offer,
            Decision::Proposed,
            Some("training in 2027".into()),
        )
    })?;
    entered(
        &state.label,
        &format!("match propose {need} {offer}"),
        "recorded in its own document, now shared with the donor",
    );
    let doc = DocId::State(need.state);
    println!("   {doc} reached (ms after the proposal):");
    track(fed, &doc, state, &[xrb, donor, un], since, deadline).await?;
    let since = Instant::now();
    donor.with_node(|n| n.match_decide(need, offer, Decision::Accepted, None))?;
    entered(
        &donor.label,
        &format!("match accept {need} {offer}"),
        "recorded in offers/XZZ",
    );
    let doc = donor.with_node(|n| n.offers_doc());
    println!("   {doc} reached (ms after the acceptance):");
    track(fed, &doc, donor, &[xrb, un], since, deadline).await?;
    Ok(step)
}

/// The pool's roll-up and the unmet requests, as the Secretariat computes them.
fn secretariat_pool_and_needs(un: &Member, data: &Dataset) -> Result<(), DemoError> {
    let report = un.with_node(|n| n.pool_report(data.pool.id))?;
    for r in &report.rollups {
        let t = &r.target;
        println!();
        println!(
            "   Pool {}: {} ({} of {})",
            data.pool.id, t.title, t.aggregate, t.from
        );
        println!(
            "   baseline {}, goal {}, current {} {}",
            r.baseline.map(num).unwrap_or_else(|| "-".into()),
            r.goal.map(num).unwrap_or_else(|| "-".into()),
            r.current.map(num).unwrap_or_else(|| "-".into()),
            t.unit.clone().unwrap_or_default()
        );
        let mut rows: Vec<Vec<String>> = r
            .reporting
            .iter()
            .map(|f| {
                vec![
                    f.state.to_string(),
                    "reporting".into(),
                    f.value.map(num).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        rows.extend(
            r.missing
                .iter()
                .map(|m| vec![m.state.to_string(), "missing".into(), m.reason.clone()]),
        );
        table(&["MEMBER", "", "VALUE OR WHY NOT COUNTED"], &rows);
    }
    println!();
    let rows: Vec<Vec<String>> = un
        .with_node(|n| n.unmet_needs())?
        .into_iter()
        .map(|(n, m)| {
            vec![
                NeedRef::of(&n).to_string(),
                n.title,
                if m.is_empty() {
                    "no match proposed".into()
                } else {
                    m.iter()
                        .map(|m| format!("{} {}", m.offer, m.status().slug()))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ]
        })
        .collect();
    table(&["UNMET REQUEST", "TITLE", "MATCHES"], &rows);
    let matched: Vec<String> = un
        .with_node(|n| n.matches())?
        .iter()
        .filter(|m| m.status() == poa_protocol::assist::MatchStatus::Accepted)
        .map(|m| format!("{} <- {}", m.need, m.offer))
        .collect();
    println!("   Accepted matches: {}", matched.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_set_is_valid_and_consistent() -> Result<(), Box<dyn std::error::Error>> {
        let data = dataset()?;
        for s in &data.states {
            for t in s.targets.iter().chain(&s.revisions) {
                assert_eq!(t.state, s.code);
                t.validate()?;
                for r in &t.conditional_on {
                    assert!(
                        s.needs.iter().any(|n| &n.id == r),
                        "{} {} depends on a request {r} it does not make",
                        s.code,
                        t.id
                    );
                }
            }
            for r in &s.revisions {
                assert!(s.targets.iter().any(|t| t.id == r.id));
            }
            for p in &s.progress {
                let target = s.targets.iter().find(|t| t.id == p.target);
                assert!(
                    target.is_some(),
                    "{} reports on unknown {}",
                    s.code,
                    p.target
                );
                if let Some(t) = target {
                    p.validate(t)?;
                }
            }
            for n in &s.needs {
                n.validate()?;
            }
        }
        for o in &data.donor.offers {
            o.validate()?;
        }
        Ok(())
    }
}
