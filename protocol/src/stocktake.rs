//! The stocktake of a cycle: a pure function of documents at given heads.
//!
//! Anyone holding the same documents at the same heads computes the same [`Stocktake`], and its
//! JSON form byte for byte: every list is sorted by a key that does not depend on arrival
//! order, the output cites the heads it read, and the only other input is the `as_of` date,
//! which the output states too. It publishes aggregates and lists of records; it never ranks
//! States.

use std::collections::{BTreeMap, BTreeSet};

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};

use crate::assist::{self, MatchRecord, NeedRef};
use crate::date::Date;
use crate::doc::{DocId, OffersData, StateData};
use crate::id::StateCode;
use crate::model::{Area, Cycle, Direction, IndicatorKind, Target};
use crate::pool::{Aggregate, PoolData, Rollup, rollup};
use crate::view::is_achieved;

/// The version of the report format; a verifier refuses others.
pub const FORMAT: &str = "poa-stocktake/1";

/// The SDG series of indicator 16.4.2.
pub const SDG_SERIES: &str = "VC_ARM_SZTRACE";

/// A progress report older than this, on a target not yet achieved, is flagged stale.
pub const STALE_DAYS: i64 = 365;

/// One document as read: its heads and its records.
#[derive(Clone, Debug)]
pub struct Source<T> {
    /// The heads it was read at.
    pub heads: Vec<ChangeHash>,
    /// The records.
    pub data: T,
}

/// Everything a stocktake reads.
#[derive(Clone, Debug, Default)]
pub struct Input {
    /// States' published documents.
    pub states: BTreeMap<StateCode, Source<StateData>>,
    /// Pools, by id.
    pub pools: BTreeMap<String, Source<PoolData>>,
    /// Providers' offers documents, by provider code.
    pub offers: BTreeMap<String, Source<OffersData>>,
}

/// A document and the heads it was read at, as cited by a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cited {
    /// `state/XAA`.
    pub doc: String,
    /// Heads, hex, sorted.
    pub heads: Vec<String>,
}

/// Where a current target stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standing {
    /// Reached, by assessment or reported value.
    Achieved,
    /// Reported on, not reached, deadline not passed.
    InProgress,
    /// Past its deadline and not reached.
    NotAchieved,
    /// No progress report: unknown, never zero.
    NoData,
    /// Withdrawn by the State.
    Withdrawn,
}

impl Standing {
    /// Every standing, in display order.
    pub const ALL: [Standing; 5] = [
        Standing::Achieved,
        Standing::InProgress,
        Standing::NotAchieved,
        Standing::NoData,
        Standing::Withdrawn,
    ];

    /// The word used in reports.
    pub fn slug(&self) -> &'static str {
        match self {
            Standing::Achieved => "achieved",
            Standing::InProgress => "in-progress",
            Standing::NotAchieved => "not-achieved",
            Standing::NoData => "no-data",
            Standing::Withdrawn => "withdrawn",
        }
    }
}

/// Targets counted by standing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// All current targets, withdrawn included.
    pub targets: u32,
    /// Achieved.
    pub achieved: u32,
    /// In progress.
    pub in_progress: u32,
    /// Not achieved.
    pub not_achieved: u32,
    /// No data.
    pub no_data: u32,
    /// Withdrawn.
    pub withdrawn: u32,
    /// Achieved over targets not withdrawn; `None` when there are none.
    pub share_achieved: Option<f64>,
}

impl Counts {
    /// Counts one more target of this standing.
    pub fn add(&mut self, s: Standing) {
        self.targets += 1;
        match s {
            Standing::Achieved => self.achieved += 1,
            Standing::InProgress => self.in_progress += 1,
            Standing::NotAchieved => self.not_achieved += 1,
            Standing::NoData => self.no_data += 1,
            Standing::Withdrawn => self.withdrawn += 1,
        }
        let live = self.targets - self.withdrawn;
        self.share_achieved = (live > 0).then(|| f64::from(self.achieved) / f64::from(live));
    }

    /// The count of one standing.
    pub fn of(&self, s: Standing) -> u32 {
        match s {
            Standing::Achieved => self.achieved,
            Standing::InProgress => self.in_progress,
            Standing::NotAchieved => self.not_achieved,
            Standing::NoData => self.no_data,
            Standing::Withdrawn => self.withdrawn,
        }
    }
}

/// Which States took part in the cycle.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Participation {
    /// States with targets for the cycle and at least one progress report on them.
    pub reported: Vec<String>,
    /// States with targets for the cycle and no progress report yet.
    pub targets_only: Vec<String>,
    /// States whose published documents are held, with no target for the cycle.
    pub no_targets: Vec<String>,
    /// Members of a pool whose published document this node does not hold: nothing is known of
    /// them, which is not the same as nothing to report.
    pub not_held: Vec<String>,
}

/// One area's counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AreaRow {
    /// The area slug.
    pub area: String,
    /// Its name.
    pub label: String,
    /// The counts.
    pub counts: Counts,
}

/// A current target, as the report lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetRow {
    /// The State.
    pub state: String,
    /// The target's id.
    pub id: String,
    /// Its current version.
    pub version: u32,
    /// Area slug.
    pub area: String,
    /// Title.
    pub title: String,
    /// Indicator kind.
    pub kind: String,
    /// Unit.
    pub unit: Option<String>,
    /// Baseline.
    pub baseline: Option<f64>,
    /// Target value.
    pub value: Option<f64>,
    /// Deadline.
    pub deadline: Date,
    /// Latest reported value.
    pub latest: Option<f64>,
    /// Date of the latest report.
    pub latest_as_of: Option<Date>,
    /// Where it stands.
    pub standing: Standing,
    /// SDG link.
    pub sdg: Option<String>,
}

/// A target compared with the one it follows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progression {
    /// The State.
    pub state: String,
    /// The target and version compared (`T1 v2`).
    pub target: String,
    /// What it is compared with (`T1 v1`, or `RC4-T1 (RevCon4)`).
    pub against: String,
    /// `shortfall`, `progresses` or `same`.
    pub flag: String,
    /// In words.
    pub detail: String,
}

/// An open request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnmetNeed {
    /// `XAB/R1`.
    pub need: String,
    /// Area slug.
    pub area: String,
    /// Kind.
    pub kind: String,
    /// Priority.
    pub priority: String,
    /// Title.
    pub title: String,
    /// Targets it serves.
    pub targets: Vec<String>,
    /// Matches under way: `XZZ/O1 proposed`.
    pub matches: Vec<String>,
}

/// A member's figure in a pooled target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PooledMember {
    /// The member.
    pub state: String,
    /// Its figure, or why it is not counted.
    pub value: Option<f64>,
    /// Why it is not counted, if it is not.
    pub missing: Option<String>,
}

/// A pooled target's roll-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PooledRow {
    /// Id in the pool.
    pub id: String,
    /// Title.
    pub title: String,
    /// Aggregate.
    pub aggregate: String,
    /// Source.
    pub from: String,
    /// Unit.
    pub unit: Option<String>,
    /// Baseline.
    pub baseline: Option<f64>,
    /// Goal.
    pub goal: Option<f64>,
    /// Current value.
    pub current: Option<f64>,
    /// Reached, or `None` if it cannot be told.
    pub reached: Option<bool>,
    /// Members, counted or not.
    pub members: Vec<PooledMember>,
}

/// A pool in the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolRow {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: Option<String>,
    /// Its coordinator.
    pub coordinator: Option<String>,
    /// Its members.
    pub members: Vec<String>,
    /// Members' targets for the cycle, counted (the regional view).
    pub counts: Counts,
    /// Its pooled targets.
    pub pooled: Vec<PooledRow>,
}

/// One SDG 16.4.2 figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SdgRow {
    /// The State.
    pub state: String,
    /// Its M49 code, when it has one (the XAA–XZZ test range has none).
    pub m49: Option<u32>,
    /// The year.
    pub year: i32,
    /// The value, percent: the latest reported in that year.
    pub value: f64,
    /// The target it was reported on.
    pub target: String,
}

/// Something a reader of the figures should know about the data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// The State.
    pub state: String,
    /// The record (`T1`, `T1/2025-12-31`, `targets/T9/1`).
    pub record: String,
    /// `missing-baseline`, `evidence-without-hash`, `stale-report`, `unreadable-record`, and
    /// the checks' own findings: `check-error`, `check-warning` (see `crate::checks`).
    pub flag: String,
    /// In words.
    pub detail: String,
}

/// A cycle's figures, for trends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    /// Cycle label.
    pub cycle: String,
    /// States with targets for it.
    pub states: u32,
    /// The counts.
    pub counts: Counts,
}

/// The stocktake of a cycle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stocktake {
    /// [`FORMAT`].
    pub format: String,
    /// The cycle.
    pub cycle: String,
    /// The meeting's name.
    pub meeting: String,
    /// The date statuses are judged at.
    pub as_of: Date,
    /// Every document read, at its heads.
    pub sources: Vec<Cited>,
    /// Who took part.
    pub participation: Participation,
    /// All current targets of the cycle, counted.
    pub totals: Counts,
    /// By commitment area (areas with targets only).
    pub by_area: Vec<AreaRow>,
    /// Every current target of the cycle, by State and id.
    pub targets: Vec<TargetRow>,
    /// Targets against those they follow.
    pub progression: Vec<Progression>,
    /// Requests with no accepted match.
    pub unmet_needs: Vec<UnmetNeed>,
    /// Requests with an accepted match.
    pub met_needs: u32,
    /// Pools: the regional view and pooled targets.
    pub pools: Vec<PoolRow>,
    /// SDG 16.4.2 figures reported on targets linked to it.
    pub sdg_16_4_2: Vec<SdgRow>,
    /// Data-quality flags.
    pub data_quality: Vec<Flag>,
    /// Every cycle up to this one that has targets, and this one.
    pub trends: Vec<TrendPoint>,
}

impl Stocktake {
    /// The canonical JSON: what two nodes compare byte for byte.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

fn hex_heads(heads: &[ChangeHash]) -> Vec<String> {
    let mut h: Vec<String> = heads.iter().map(|h| h.to_string()).collect();
    h.sort();
    h
}

/// Where a target stands at `as_of`, from the reports made by then.
pub fn standing(data: &StateData, t: &Target, as_of: Date) -> Standing {
    if data.withdrawn.contains_key(&t.id) {
        return Standing::Withdrawn;
    }
    let reports: Vec<_> = data
        .progress_of(&t.id)
        .into_iter()
        .filter(|p| p.as_of <= as_of)
        .collect();
    if is_achieved(t, &reports) {
        Standing::Achieved
    } else if reports.is_empty() {
        Standing::NoData
    } else if t.deadline < as_of {
        Standing::NotAchieved
    } else {
        Standing::InProgress
    }
}

/// The current targets of a cycle in a State's document, by id.
fn current_of(data: &StateData, cycle: Cycle) -> Vec<&Target> {
    data.target_ids()
        .iter()
        .filter_map(|id| data.latest(id))
        .filter(|t| t.cycle == cycle)
        .collect()
}

fn ambition(
    new: &Target,
    old: &Target,
    against: String,
    state: StateCode,
    label: String,
) -> Option<Progression> {
    if new.indicator.kind != IndicatorKind::Quantitative
        || old.indicator.kind != IndicatorKind::Quantitative
        || new.indicator.unit != old.indicator.unit
    {
        return None;
    }
    let (Some(v_new), Some(v_old)) = (new.value, old.value) else {
        return None;
    };
    let unit = new.indicator.unit.clone().unwrap_or_default();
    let direction = new.indicator.direction.unwrap_or(Direction::Reach);
    let (flag, detail) = if v_new == v_old {
        if new.deadline > old.deadline {
            (
                "shortfall",
                format!(
                    "same value {} {unit}, deadline moved from {} to {}",
                    num(v_old),
                    old.deadline,
                    new.deadline
                ),
            )
        } else {
            ("same", format!("same value {} {unit}", num(v_old)))
        }
    } else {
        let further = match direction {
            Direction::Increase => v_new > v_old,
            Direction::Decrease => v_new < v_old,
            Direction::Reach => return None,
        };
        let verb = if v_new > v_old { "raised" } else { "lowered" };
        let text = format!("target {verb} from {} to {} {unit}", num(v_old), num(v_new));
        if further {
            ("progresses", text)
        } else {
            ("shortfall", text)
        }
    };
    Some(Progression {
        state: state.to_string(),
        target: label,
        against,
        flag: flag.into(),
        detail,
    })
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn progression_of(state: StateCode, data: &StateData, cycle: Cycle, out: &mut Vec<Progression>) {
    let previous = cycle.previous();
    for t in current_of(data, cycle) {
        let label = format!("{} v{}", t.id, t.version);
        if let Some(old_version) = t.supersedes
            && let Some(old) = data.targets.get(&(t.id.clone(), old_version))
        {
            out.extend(ambition(
                t,
                old,
                format!("{} v{}", old.id, old.version),
                state,
                label.clone(),
            ));
            continue;
        }
        let Some(prev) = previous else { continue };
        let earlier = data
            .target_ids()
            .iter()
            .filter_map(|id| data.latest(id))
            .find(|o| {
                o.cycle == prev
                    && o.area == t.area
                    && o.indicator
                        .text
                        .trim()
                        .eq_ignore_ascii_case(t.indicator.text.trim())
            });
        if let Some(o) = earlier {
            out.extend(ambition(
                t,
                o,
                format!("{} ({prev})", o.id),
                state,
                label.clone(),
            ));
        }
    }
}

fn flags_of(state: StateCode, data: &StateData, cycle: Cycle, as_of: Date, out: &mut Vec<Flag>) {
    let flag = |record: String, flag: &str, detail: String| Flag {
        state: state.to_string(),
        record,
        flag: flag.into(),
        detail,
    };
    for t in current_of(data, cycle) {
        if t.indicator.kind == IndicatorKind::Quantitative && t.baseline.is_none() {
            out.push(flag(
                t.id.clone(),
                "missing-baseline",
                "a quantitative target with no baseline: progress cannot be measured from a start"
                    .into(),
            ));
        }
        let reports = data.progress_of(&t.id);
        for p in &reports {
            if let Some(e) = &p.evidence
                && (e.sha256.len() != 64 || !e.sha256.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                out.push(flag(
                    p.id.clone(),
                    "evidence-without-hash",
                    format!("evidence {} has no valid SHA-256", e.uri),
                ));
            }
        }
        let standing = standing(data, t, as_of);
        if let Some(last) = reports.iter().rev().find(|p| p.as_of <= as_of)
            && matches!(standing, Standing::InProgress | Standing::NotAchieved)
            && last.as_of.days_until(as_of) > STALE_DAYS
        {
            out.push(flag(
                t.id.clone(),
                "stale-report",
                format!(
                    "latest report is of {}, more than {STALE_DAYS} days before {as_of}",
                    last.as_of
                ),
            ));
        }
    }
    // The checks before publishing, on what was published: what a State's own node warns of
    // when it is written is said here too, in the same words.
    for t in current_of(data, cycle) {
        let mut others = data.clone();
        others.targets.remove(&(t.id.clone(), t.version));
        let mut findings =
            crate::checks::check_target(t, &others, as_of, crate::checks::Stage::Publish);
        for p in data.progress_of(&t.id) {
            let mut others = data.clone();
            others.progress.remove(&p.id);
            findings.extend(crate::checks::check_progress(p, &others, as_of));
        }
        for f in findings {
            let kind = match f.severity {
                crate::checks::Severity::Error => "check-error",
                crate::checks::Severity::Warning => "check-warning",
            };
            out.push(flag(
                f.record.clone(),
                kind,
                format!("{} {}", f.field, f.message),
            ));
        }
    }
    for u in &data.unreadable {
        out.push(flag(u.path.clone(), "unreadable-record", u.reason.clone()));
    }
}

fn pooled_row(r: &Rollup) -> PooledRow {
    let t = &r.target;
    let mut members: Vec<PooledMember> = r
        .reporting
        .iter()
        .map(|f| PooledMember {
            state: f.state.to_string(),
            value: if matches!(t.aggregate, Aggregate::AllReach | Aggregate::CountAchieved) {
                Some(if f.achieved { 1.0 } else { 0.0 })
            } else {
                f.value
            },
            missing: None,
        })
        .collect();
    members.extend(r.missing.iter().map(|m| PooledMember {
        state: m.state.to_string(),
        value: None,
        missing: Some(m.reason.clone()),
    }));
    members.sort_by(|a, b| a.state.cmp(&b.state));
    PooledRow {
        id: t.id.clone(),
        title: t.title.clone(),
        aggregate: t.aggregate.slug().into(),
        from: t.from.to_string(),
        unit: t.unit.clone(),
        baseline: r.baseline,
        goal: r.goal,
        current: r.current,
        reached: r.reached,
        members,
    }
}

/// Computes the stocktake of `cycle` from `input`, judging statuses at `as_of`.
pub fn stocktake(input: &Input, cycle: Cycle, as_of: Date) -> Stocktake {
    let mut sources = Vec::new();
    for (s, src) in &input.states {
        sources.push(Cited {
            doc: DocId::State(*s).to_string(),
            heads: hex_heads(&src.heads),
        });
    }
    for (p, src) in &input.pools {
        sources.push(Cited {
            doc: format!("pool/{p}"),
            heads: hex_heads(&src.heads),
        });
    }
    for (p, src) in &input.offers {
        sources.push(Cited {
            doc: DocId::Offers(p.clone()).to_string(),
            heads: hex_heads(&src.heads),
        });
    }
    sources.sort_by(|a, b| a.doc.cmp(&b.doc));

    // Every State known: documents held and pool members.
    let mut known: BTreeSet<StateCode> = input.states.keys().copied().collect();
    for p in input.pools.values() {
        known.extend(p.data.members.keys().copied());
    }

    let mut participation = Participation::default();
    let mut totals = Counts::default();
    let mut areas: BTreeMap<Area, Counts> = BTreeMap::new();
    let mut targets = Vec::new();
    let mut progression = Vec::new();
    let mut data_quality = Vec::new();
    let mut sdg = BTreeMap::new();
    for s in &known {
        let Some(src) = input.states.get(s) else {
            participation.not_held.push(s.to_string());
            continue;
        };
        let data = &src.data;
        let current = current_of(data, cycle);
        if current.is_empty() {
            participation.no_targets.push(s.to_string());
        } else if current
            .iter()
            .any(|t| data.progress_of(&t.id).iter().any(|p| p.as_of <= as_of))
        {
            participation.reported.push(s.to_string());
        } else {
            participation.targets_only.push(s.to_string());
        }
        for t in &current {
            let st = standing(data, t, as_of);
            totals.add(st);
            areas.entry(t.area).or_default().add(st);
            let latest = data
                .progress_of(&t.id)
                .into_iter()
                .rfind(|p| p.as_of <= as_of && p.value.is_some());
            targets.push(TargetRow {
                state: s.to_string(),
                id: t.id.clone(),
                version: t.version,
                area: t.area.slug().into(),
                title: t.title.clone(),
                kind: t.indicator.kind.slug().into(),
                unit: t.indicator.unit.clone(),
                baseline: t.baseline,
                value: t.value,
                deadline: t.deadline,
                latest: latest.and_then(|p| p.value),
                latest_as_of: latest.map(|p| p.as_of),
                standing: st,
                sdg: t.sdg.clone(),
            });
            if t.sdg.as_deref().is_some_and(|x| x.contains("16.4.2")) {
                for p in data.progress_of(&t.id) {
                    if let Some(v) = p.value
                        && p.as_of <= as_of
                    {
                        // The latest report of each year stands for the year.
                        sdg.insert(
                            (s.to_string(), p.as_of.year()),
                            SdgRow {
                                state: s.to_string(),
                                m49: s.m49(),
                                year: p.as_of.year(),
                                value: v,
                                target: t.id.clone(),
                            },
                        );
                    }
                }
            }
        }
        progression_of(*s, data, cycle, &mut progression);
        flags_of(*s, data, cycle, as_of, &mut data_quality);
    }

    // Assistance.
    let mut state_side: Vec<MatchRecord> = Vec::new();
    let mut needs = Vec::new();
    for (s, src) in &input.states {
        state_side.extend(
            src.data
                .matches
                .values()
                .filter(|r| r.need.state == *s)
                .cloned(),
        );
        needs.extend(src.data.needs.values().cloned());
    }
    let provider_side: Vec<(String, MatchRecord)> = input
        .offers
        .iter()
        .flat_map(|(p, src)| {
            src.data
                .matches
                .values()
                .map(move |r| (p.clone(), r.clone()))
        })
        .collect();
    let matches = assist::matches(&state_side, &provider_side);
    let mut unmet_needs = Vec::new();
    let mut met_needs = 0;
    for n in &needs {
        let r = NeedRef::of(n);
        if assist::is_met(&r, &matches) {
            met_needs += 1;
            continue;
        }
        unmet_needs.push(UnmetNeed {
            need: r.to_string(),
            area: n.area.slug().into(),
            kind: n.kind.slug().into(),
            priority: n.priority.slug().into(),
            title: n.title.clone(),
            targets: n.targets.clone(),
            matches: matches
                .iter()
                .filter(|m| m.need == r)
                .map(|m| format!("{} {}", m.offer, m.status().slug()))
                .collect(),
        });
    }
    unmet_needs.sort_by(|a, b| a.need.cmp(&b.need));

    // Pools.
    let states_data: BTreeMap<StateCode, StateData> = input
        .states
        .iter()
        .map(|(s, src)| (*s, src.data.clone()))
        .collect();
    let pools = input
        .pools
        .iter()
        .map(|(id, src)| {
            let p = &src.data;
            let mut counts = Counts::default();
            for m in p.members.keys() {
                if let Some(src) = input.states.get(m) {
                    for t in current_of(&src.data, cycle) {
                        counts.add(standing(&src.data, t, as_of));
                    }
                }
            }
            PoolRow {
                id: id.clone(),
                name: p.charter.as_ref().map(|c| c.name.clone()),
                coordinator: p.charter.as_ref().map(|c| c.coordinator.clone()),
                members: p.members.keys().map(|s| s.to_string()).collect(),
                counts,
                pooled: rollup(p, &states_data).iter().map(pooled_row).collect(),
            }
        })
        .collect();

    // Trends: every cycle up to this one with targets, and this one.
    let mut trends = Vec::new();
    for c in Cycle::all().filter(|c| *c <= cycle) {
        let mut counts = Counts::default();
        let mut states = 0;
        for src in input.states.values() {
            let current = current_of(&src.data, c);
            if !current.is_empty() {
                states += 1;
            }
            for t in current {
                counts.add(standing(&src.data, t, as_of));
            }
        }
        if counts.targets > 0 || c == cycle {
            trends.push(TrendPoint {
                cycle: c.to_string(),
                states,
                counts,
            });
        }
    }

    data_quality
        .sort_by(|a, b| (&a.state, &a.record, &a.flag).cmp(&(&b.state, &b.record, &b.flag)));
    Stocktake {
        format: FORMAT.into(),
        cycle: cycle.to_string(),
        meeting: cycle.info().name.into(),
        as_of,
        sources,
        participation,
        totals,
        by_area: areas
            .into_iter()
            .map(|(a, counts)| AreaRow {
                area: a.slug().into(),
                label: a.label().into(),
                counts,
            })
            .collect(),
        targets,
        progression,
        unmet_needs,
        met_needs,
        pools,
        sdg_16_4_2: sdg.into_values().collect(),
        data_quality,
        trends,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::xaa_t1;
    use crate::model::{Indicator, Progress};

    fn report(target: &str, as_of: &str, value: Option<f64>) -> Progress {
        Progress::bare(target, as_of.parse().unwrap(), value)
    }

    fn input(targets: Vec<Target>, progress: Vec<Progress>) -> Input {
        let mut data = StateData::default();
        for t in targets {
            data.targets.insert((t.id.clone(), t.version), t);
        }
        for p in progress {
            data.progress.insert(p.id.clone(), p);
        }
        let mut i = Input::default();
        i.states.insert(
            "XAA".parse().unwrap(),
            Source {
                heads: vec![],
                data,
            },
        );
        i
    }

    fn bms9() -> Cycle {
        "BMS9".parse().unwrap()
    }

    #[test]
    fn no_report_is_no_data_and_a_passed_deadline_below_the_value_is_not_achieved() {
        let t2 = Target {
            id: "T2".into(),
            ..xaa_t1()
        };
        let t3 = Target {
            id: "T3".into(),
            deadline: "2027-06-30".parse().unwrap(),
            ..xaa_t1()
        };
        let i = input(
            vec![xaa_t1(), t2, t3],
            vec![
                report("T1", "2025-12-31", Some(55.0)),
                report("T3", "2025-12-31", Some(50.0)),
            ],
        );
        let st = stocktake(&i, bms9(), "2026-11-27".parse().unwrap());
        let by: BTreeMap<&str, Standing> = st
            .targets
            .iter()
            .map(|t| (t.id.as_str(), t.standing))
            .collect();
        assert_eq!(by["T1"], Standing::NotAchieved);
        assert_eq!(by["T2"], Standing::NoData);
        assert_eq!(by["T3"], Standing::InProgress);
        assert_eq!(st.totals.share_achieved, Some(0.0));
        assert_eq!(st.participation.reported, ["XAA"]);
        // A report dated after the as-of date does not count yet.
        let st = stocktake(&i, bms9(), "2025-06-30".parse().unwrap());
        assert!(st.targets.iter().all(|t| t.standing == Standing::NoData));
        assert_eq!(st.participation.targets_only, ["XAA"]);
    }

    #[test]
    fn progression_flags_less_ambition_in_either_direction_and_a_later_deadline() {
        let down = |id: &str, baseline: f64, value: f64| Target {
            id: id.into(),
            indicator: Indicator {
                direction: Some(Direction::Decrease),
                ..xaa_t1().indicator
            },
            baseline: Some(baseline),
            value: Some(value),
            ..xaa_t1()
        };
        let v1 = down("T5", 30.0, 10.0);
        let v2 = Target {
            version: 2,
            supersedes: Some(1),
            value: Some(15.0),
            ..v1.clone()
        };
        let later = Target {
            version: 2,
            supersedes: Some(1),
            deadline: "2027-06-30".parse().unwrap(),
            ..xaa_t1()
        };
        let st = stocktake(
            &input(vec![v1, v2, xaa_t1(), later], vec![]),
            bms9(),
            "2026-01-01".parse().unwrap(),
        );
        let flags: Vec<(&str, &str)> = st
            .progression
            .iter()
            .map(|p| (p.target.as_str(), p.flag.as_str()))
            .collect();
        assert_eq!(flags, [("T1 v2", "shortfall"), ("T5 v2", "shortfall")]);
        assert!(st.progression[0].detail.contains("deadline moved"));
        assert!(st.progression[1].detail.contains("raised from 10 to 15"));
    }

    #[test]
    fn stale_reports_and_missing_baselines_are_flagged() {
        let no_baseline = Target {
            id: "T2".into(),
            baseline: None,
            baseline_year: None,
            deadline: "2028-01-01".parse().unwrap(),
            ..xaa_t1()
        };
        let st = stocktake(
            &input(
                vec![no_baseline],
                vec![report("T2", "2024-01-31", Some(45.0))],
            ),
            bms9(),
            "2026-11-27".parse().unwrap(),
        );
        let flags: Vec<&str> = st.data_quality.iter().map(|f| f.flag.as_str()).collect();
        assert_eq!(flags, ["missing-baseline", "stale-report"]);
    }

    #[test]
    fn the_checks_findings_on_published_records_are_in_the_data_quality_section() {
        let mut local = report("T1", "2025-12-31", Some(55.0));
        local.evidence = Some(crate::model::Evidence {
            uri: "/home/desk/marking.pdf".into(),
            sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        });
        let st = stocktake(
            &input(vec![xaa_t1()], vec![local]),
            bms9(),
            "2026-01-01".parse().unwrap(),
        );
        let warning = st
            .data_quality
            .iter()
            .find(|f| f.flag == "check-warning")
            .unwrap_or_else(|| panic!("{:?}", st.data_quality));
        assert_eq!(warning.state, "XAA");
        assert!(warning.record.contains("T1/2025-12-31"), "{warning:?}");
        assert!(
            warning.detail.contains("a path on this computer"),
            "{warning:?}"
        );
    }
}
