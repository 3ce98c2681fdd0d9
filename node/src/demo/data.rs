//! The illustrative data set, the "Xanadu sub-region" in cycle BMS9: what each
//! State, the donor and the pool's coordinator enter, as records ready for the node's methods.

use std::fmt::Display;
use std::str::FromStr;

use poa_protocol::assist::{NeedRef, OfferRef};
use poa_protocol::model::{
    Area, Assessment, AssistanceKind, Cycle, Direction, Indicator, IndicatorKind, Mosaic, Need,
    Offer, Priority, Progress, Target,
};
use poa_protocol::pool::{Aggregate, PooledTarget};
use poa_protocol::{BodyCode, Date, StateCode};

use super::DemoError;

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

/// The illustrative data set: the "Xanadu sub-region", cycle BMS9.
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

/// The illustrative data set, as records ready to be
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
