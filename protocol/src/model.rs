//! The domain: reporting cycles, commitment areas, MOSAIC modules, targets, progress reports,
//! assistance requests and offers, and the rules that make a record valid.
//!
//! Records derive `Serialize`/`Deserialize` because they are the document format: each is stored
//! as an Automerge map of its fields (see [`crate::doc`]). Validation lives here, next to the
//! types, so the CLI, sync and reports share one notion of what a valid target is.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::date::Date;
use crate::id::StateCode;

/// A reporting cycle: a Biennial Meeting of States or a Review Conference.
///
/// The label is the identity; the dates are facts about the meeting that may move (BMS7 was
/// planned for 2020 and held in 2021), so they live in [`CycleInfo`], not in the label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cycle(u8);

/// What is known of a cycle's meeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CycleInfo {
    /// `BMS9`, `RevCon4`...
    pub label: &'static str,
    /// The meeting's full name.
    pub name: &'static str,
    /// First and last day, where fixed.
    pub dates: Option<(&'static str, &'static str)>,
    /// The year it is planned for.
    pub year: i32,
}

/// The PoA calendar, in meeting order. Appending is safe; reordering would renumber cycles.
pub const CYCLES: &[CycleInfo] = &[
    CycleInfo {
        label: "BMS7",
        name: "Seventh Biennial Meeting of States",
        dates: Some(("2021-07-26", "2021-07-30")),
        year: 2021,
    },
    CycleInfo {
        label: "BMS8",
        name: "Eighth Biennial Meeting of States",
        dates: Some(("2022-06-27", "2022-07-01")),
        year: 2022,
    },
    CycleInfo {
        label: "RevCon4",
        name: "Fourth Review Conference",
        dates: Some(("2024-06-18", "2024-06-28")),
        year: 2024,
    },
    CycleInfo {
        label: "BMS9",
        name: "Ninth Biennial Meeting of States",
        dates: Some(("2026-06-01", "2026-06-05")),
        year: 2026,
    },
    CycleInfo {
        label: "BMS10",
        name: "Tenth Biennial Meeting of States",
        dates: None,
        year: 2028,
    },
    CycleInfo {
        label: "RevCon5",
        name: "Fifth Review Conference",
        dates: None,
        year: 2030,
    },
];

impl Cycle {
    /// What is known of this cycle.
    pub fn info(&self) -> &'static CycleInfo {
        &CYCLES[usize::from(self.0)]
    }

    /// The cycle before this one, if any.
    pub fn previous(&self) -> Option<Cycle> {
        self.0.checked_sub(1).map(Cycle)
    }

    /// Every known cycle, in order.
    pub fn all() -> impl Iterator<Item = Cycle> {
        (0..CYCLES.len() as u8).map(Cycle)
    }
}

impl FromStr for Cycle {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CYCLES
            .iter()
            .position(|c| c.label.eq_ignore_ascii_case(s.trim()))
            .map(|i| Cycle(i as u8))
            .ok_or_else(|| ModelError::UnknownCycle(s.to_string()))
    }
}

impl TryFrom<String> for Cycle {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Cycle> for String {
    fn from(c: Cycle) -> String {
        c.info().label.to_string()
    }
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.info().label)
    }
}

macro_rules! slug_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, $hint:literal { $($(#[$vmeta:meta])* $variant:ident = $slug:literal / $label:literal $(| $alias:literal)*,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $slug)] $variant,)*
        }

        impl $name {
            /// Every value, in display order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The short name used on the command line and in documents.
            pub fn slug(&self) -> &'static str {
                match self { $($name::$variant => $slug,)* }
            }

            /// The name people read.
            pub fn label(&self) -> &'static str {
                match self { $($name::$variant => $label,)* }
            }
        }

        impl FromStr for $name {
            type Err = ModelError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.trim().to_ascii_lowercase().replace(['_', ' '], "-");
                match s.as_str() {
                    $($slug $(| $alias)* => Ok($name::$variant),)*
                    _ => Err(ModelError::Unknown {
                        what: $what,
                        value: s,
                        hint: $hint,
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.slug())
            }
        }
    };
}

slug_enum! {
    /// A commitment area: a theme of the PoA/ITI national report.
    Area, "commitment area",
    "coordination, legislation, manufacture, marking, record-keeping, tracing, transfers, brokering, stockpile, destruction, collection, ddr, border-control, diversion, gender, awareness, cooperation" {
        /// National coordination.
        Coordination = "coordination" / "National coordination" | "national-coordination",
        /// Legislation and regulation.
        Legislation = "legislation" / "Legislation",
        /// Manufacture.
        Manufacture = "manufacture" / "Manufacture",
        /// Marking.
        Marking = "marking" / "Marking",
        /// Record-keeping.
        RecordKeeping = "record-keeping" / "Record-keeping" | "recordkeeping" | "records",
        /// Tracing.
        Tracing = "tracing" / "Tracing",
        /// Transfers: export, import, transit.
        Transfers = "transfers" / "Transfers (export, import, transit)" | "transfer",
        /// Brokering.
        Brokering = "brokering" / "Brokering",
        /// Stockpile management.
        Stockpile = "stockpile" / "Stockpile management" | "stockpile-management",
        /// Surplus and destruction.
        Destruction = "destruction" / "Surplus and destruction" | "surplus" | "surplus-destruction",
        /// Collection.
        Collection = "collection" / "Collection",
        /// Disarmament, demobilization and reintegration.
        Ddr = "ddr" / "DDR",
        /// Border control.
        BorderControl = "border-control" / "Border control" | "border",
        /// Diversion.
        Diversion = "diversion" / "Diversion",
        /// Gender.
        Gender = "gender" / "Gender",
        /// Awareness-raising.
        Awareness = "awareness" / "Awareness-raising" | "awareness-raising",
        /// International cooperation and assistance.
        Cooperation = "cooperation" / "International cooperation and assistance" | "international-cooperation" | "assistance",
    }
}

slug_enum! {
    /// Which way a quantitative indicator should move.
    Direction, "direction", "increase, decrease or reach" {
        /// Higher is better.
        Increase = "increase" / "increase",
        /// Lower is better.
        Decrease = "decrease" / "decrease",
        /// Reach the value, from either side.
        Reach = "reach" / "reach",
    }
}

slug_enum! {
    /// What kind of indicator a target is measured by.
    IndicatorKind, "indicator kind", "quantitative, milestone or yes-no" {
        /// A number with a unit.
        Quantitative = "quantitative" / "quantitative" | "number",
        /// A step that is done or not (a law adopted, a commission established).
        Milestone = "milestone" / "milestone",
        /// A yes/no question of the national report.
        YesNo = "yes-no" / "yes/no" | "yesno" | "yes/no",
    }
}

slug_enum! {
    /// How a progress report judges its target.
    Assessment, "assessment", "on-track, off-track, achieved, not-started or no-data" {
        /// On track.
        OnTrack = "on-track" / "on track",
        /// Off track.
        OffTrack = "off-track" / "off track",
        /// Achieved.
        Achieved = "achieved" / "achieved",
        /// Not started.
        NotStarted = "not-started" / "not started",
        /// No data.
        NoData = "no-data" / "no data",
    }
}

slug_enum! {
    /// What kind of help is asked for or offered.
    AssistanceKind, "kind of assistance", "financial, technical, equipment or training" {
        /// Money.
        Financial = "financial" / "financial",
        /// Technical advice.
        Technical = "technical" / "technical",
        /// Equipment.
        Equipment = "equipment" / "equipment",
        /// Training.
        Training = "training" / "training",
    }
}

slug_enum! {
    /// How urgent a request is.
    Priority, "priority", "high, medium or low" {
        /// High.
        High = "high" / "high",
        /// Medium.
        Medium = "medium" / "medium",
        /// Low.
        Low = "low" / "low",
    }
}

/// The MOSAIC modules a target may cite: code and title.
pub const MOSAIC_MODULES: &[(&str, &str)] = &[
    ("01.10", "Guide to the application of MOSAIC"),
    ("01.20", "Glossary of terms, definitions and abbreviations"),
    (
        "02.10",
        "Small arms and light weapons control in the context of preventing armed violence",
    ),
    (
        "02.20",
        "Small arms and light weapons control in the context of security sector reform",
    ),
    (
        "02.30",
        "Small arms and light weapons control in the context of DDR",
    ),
    ("03.10", "Manufacture"),
    ("03.20", "International transfer"),
    ("03.21", "End-user and end-use control"),
    ("03.30", "National controls over the access of civilians"),
    ("03.40", "National coordinating mechanisms"),
    ("03.50", "Criminal justice responses"),
    ("03.60", "Gun-free zones"),
    ("04.10", "Designing and implementing national action plans"),
    ("04.30", "Awareness-raising"),
    ("05.10", "Conducting small arms and light weapons surveys"),
    ("05.20", "Stockpile management: weapons"),
    ("05.30", "Marking and record-keeping"),
    ("05.31", "Tracing illicit small arms and light weapons"),
    (
        "05.40",
        "Collection of illicit and unwanted small arms and light weapons",
    ),
    ("05.50", "Destruction: weapons"),
    ("05.55", "Permanent deactivation"),
    ("05.60", "Border controls and law enforcement cooperation"),
    (
        "06.10",
        "Women, men and the gendered nature of small arms and light weapons",
    ),
    (
        "06.20",
        "Children, adolescents, youth and small arms and light weapons",
    ),
];

/// A MOSAIC module code such as `05.30`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mosaic(u8);

impl Mosaic {
    /// The code.
    pub fn code(&self) -> &'static str {
        MOSAIC_MODULES[usize::from(self.0)].0
    }

    /// The module's title.
    pub fn title(&self) -> &'static str {
        MOSAIC_MODULES[usize::from(self.0)].1
    }
}

impl FromStr for Mosaic {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        MOSAIC_MODULES
            .iter()
            .position(|(code, _)| *code == s)
            .map(|i| Mosaic(i as u8))
            .ok_or_else(|| ModelError::UnknownMosaic(s.to_string()))
    }
}

impl TryFrom<String> for Mosaic {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Mosaic> for String {
    fn from(m: Mosaic) -> String {
        m.code().to_string()
    }
}

impl fmt::Display for Mosaic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Everything that can make a record invalid, in words a user can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A value outside a fixed list.
    #[error("unknown {what} '{value}': use one of {hint}")]
    Unknown {
        /// What was being parsed.
        what: &'static str,
        /// What was given.
        value: String,
        /// The accepted values.
        hint: &'static str,
    },
    /// A cycle label not in the calendar.
    #[error("unknown cycle '{0}': use one of BMS7, BMS8, RevCon4, BMS9, BMS10, RevCon5")]
    UnknownCycle(String),
    /// A MOSAIC code not in the list.
    #[error(
        "unknown MOSAIC module '{0}': use a code such as 05.30 (see `poa-node reference mosaic`)"
    )]
    UnknownMosaic(String),
    /// An identifier with characters we do not allow.
    #[error(
        "'{0}' is not a valid id: use 1 to 32 letters, digits, '-' or '_', starting with a letter (T1, R2, marking-2026)"
    )]
    BadId(String),
    /// A required text is empty.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// The deadline falls before the baseline year.
    #[error("deadline {deadline} is before the baseline year {baseline_year}")]
    DeadlineBeforeBaseline {
        /// The deadline.
        deadline: Date,
        /// The baseline year.
        baseline_year: i32,
    },
    /// A quantitative target lacks its unit.
    #[error("a quantitative target needs a --unit (percent, weapons, depots...)")]
    MissingUnit,
    /// A quantitative target lacks its target value.
    #[error("a quantitative target needs a target --value")]
    MissingValue,
    /// A milestone or yes/no target was given numbers.
    #[error("a {0} target has no {1}: drop it, or use --kind quantitative")]
    NotQuantitative(&'static str, &'static str),
    /// Baseline and target contradict the direction.
    #[error("direction '{direction}' contradicts baseline {baseline} and target {value}")]
    DirectionContradiction {
        /// The stated direction.
        direction: Direction,
        /// The baseline value.
        baseline: f64,
        /// The target value.
        value: f64,
    },
    /// A baseline value without its year, or the reverse.
    #[error("a baseline needs both --baseline and --baseline-year")]
    HalfBaseline,
    /// A year outside a plausible range.
    #[error("year {0} is out of range (1990-2100)")]
    Year(i32),
    /// A number that is not finite.
    #[error("{0} must be a finite number")]
    NotFinite(&'static str),
    /// Evidence given without its SHA-256.
    #[error(
        "evidence needs its SHA-256: add --sha256 with the file's 64-character hex digest (sha256sum FILE)"
    )]
    EvidenceWithoutHash,
    /// A SHA-256 given without evidence.
    #[error("--sha256 goes with --evidence: say which document the digest is of")]
    HashWithoutEvidence,
    /// A malformed digest.
    #[error("'{0}' is not a SHA-256: it must be 64 hexadecimal characters")]
    BadSha256(String),
    /// An assistance window that ends before it starts.
    #[error("the window ends ({end}) before it starts ({start})")]
    BadWindow {
        /// Start.
        start: Date,
        /// End.
        end: Date,
    },
    /// A budget range upside down.
    #[error("the budget minimum {0} is above the maximum {1}")]
    BadBudget(f64, f64),
    /// A negative amount.
    #[error("{0} must not be negative")]
    Negative(&'static str),
    /// A currency that is not a three-letter code.
    #[error("'{0}' is not a currency: use an ISO 4217 code such as USD or EUR")]
    BadCurrency(String),
    /// A pooled target's `--from` that names nothing.
    #[error(
        "'{0}' is not a source of a pooled target: give an area (destruction) or targets as STATE/ID separated by commas (XAB/T2,XAC/T4)"
    )]
    BadSource(String),
    /// A value that makes no sense for an aggregate.
    #[error("{0}")]
    Aggregate(&'static str),
}

/// Checks an identifier for targets, requests, offers and pools.
pub fn check_id(id: &str) -> Result<(), ModelError> {
    let ok = !id.is_empty()
        && id.len() <= 32
        && id.as_bytes()[0].is_ascii_alphabetic()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ModelError::BadId(id.to_string()))
    }
}

pub(crate) fn check_finite(what: &'static str, v: Option<f64>) -> Result<(), ModelError> {
    match v {
        Some(v) if !v.is_finite() => Err(ModelError::NotFinite(what)),
        _ => Ok(()),
    }
}

/// Checks that a required text is not empty.
pub fn check_text(what: &'static str, s: &str) -> Result<(), ModelError> {
    if s.trim().is_empty() {
        Err(ModelError::Empty(what))
    } else {
        Ok(())
    }
}

/// How a target is measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Indicator {
    /// Quantitative, milestone or yes/no.
    pub kind: IndicatorKind,
    /// What is measured, in words.
    pub text: String,
    /// The unit of a quantitative indicator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Which way is progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
}

/// One version of a nationally determined target. Versions are never edited: a new one
/// supersedes the old, and both stay readable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The State's own id for the target (`T1`).
    pub id: String,
    /// The State that set it.
    pub state: StateCode,
    /// 1 for the first version.
    pub version: u32,
    /// The cycle it is set for.
    pub cycle: Cycle,
    /// The commitment area.
    pub area: Area,
    /// A one-line title.
    pub title: String,
    /// Longer description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How it is measured.
    pub indicator: Indicator,
    /// Baseline value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// Year of the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_year: Option<i32>,
    /// Where the baseline comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_source: Option<String>,
    /// Target value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// When it should be reached.
    pub deadline: Date,
    /// MOSAIC modules it cites.
    #[serde(default)]
    pub mosaic: Vec<Mosaic>,
    /// PoA/ITI paragraph references ("ITI 8", "PoA II.4").
    #[serde(default)]
    pub refs: Vec<String>,
    /// SDG target or indicator it serves ("16.4.2").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdg: Option<String>,
    /// Assistance requests it depends on.
    #[serde(default)]
    pub conditional_on: Vec<String>,
    /// The version this one replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<u32>,
    /// Why it changed, for versions after the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Target {
    /// Checks every rule of a well-formed target.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_id(&self.id)?;
        check_text("the title", &self.title)?;
        check_text("the indicator", &self.indicator.text)?;
        for r in &self.conditional_on {
            check_id(r)?;
        }
        check_finite("the baseline", self.baseline)?;
        check_finite("the target value", self.value)?;
        if let Some(y) = self.baseline_year {
            if !(1990..=2100).contains(&y) {
                return Err(ModelError::Year(y));
            }
            if self.deadline.year() < y {
                return Err(ModelError::DeadlineBeforeBaseline {
                    deadline: self.deadline,
                    baseline_year: y,
                });
            }
        }
        let kind = self.indicator.kind;
        match kind {
            IndicatorKind::Quantitative => {
                if self
                    .indicator
                    .unit
                    .as_deref()
                    .is_none_or(|u| u.trim().is_empty())
                {
                    return Err(ModelError::MissingUnit);
                }
                let Some(value) = self.value else {
                    return Err(ModelError::MissingValue);
                };
                if self.baseline.is_some() != self.baseline_year.is_some() {
                    return Err(ModelError::HalfBaseline);
                }
                if let (Some(baseline), Some(direction)) = (self.baseline, self.indicator.direction)
                {
                    let contradicts = match direction {
                        Direction::Increase => value <= baseline,
                        Direction::Decrease => value >= baseline,
                        Direction::Reach => false,
                    };
                    if contradicts {
                        return Err(ModelError::DirectionContradiction {
                            direction,
                            baseline,
                            value,
                        });
                    }
                }
            }
            IndicatorKind::Milestone | IndicatorKind::YesNo => {
                let name = if kind == IndicatorKind::Milestone {
                    "milestone"
                } else {
                    "yes/no"
                };
                if self.value.is_some() {
                    return Err(ModelError::NotQuantitative(name, "--value"));
                }
                if self.baseline.is_some() {
                    return Err(ModelError::NotQuantitative(name, "--baseline"));
                }
                if self.indicator.unit.is_some() {
                    return Err(ModelError::NotQuantitative(name, "--unit"));
                }
            }
        }
        Ok(())
    }
}

/// A document or file offered as proof, with its digest so anyone can check it was not altered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Where it is.
    pub uri: String,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

impl Evidence {
    /// Builds evidence from optional command-line parts, checking that both are there.
    pub fn from_parts(
        uri: Option<String>,
        sha256: Option<String>,
    ) -> Result<Option<Evidence>, ModelError> {
        match (uri, sha256) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(ModelError::EvidenceWithoutHash),
            (None, Some(_)) => Err(ModelError::HashWithoutEvidence),
            (Some(uri), Some(sha)) => {
                let sha = sha.trim().to_ascii_lowercase();
                if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ModelError::BadSha256(sha));
                }
                check_text("the evidence URI", &uri)?;
                Ok(Some(Evidence { uri, sha256: sha }))
            }
        }
    }
}

/// A progress report on a target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The report's id within the State's documents (`T1/2025-12-31`).
    pub id: String,
    /// The target it reports on.
    pub target: String,
    /// The version of the target current when it was written.
    pub target_version: u32,
    /// The date the figures describe.
    pub as_of: Date,
    /// The observed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The State's own assessment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessment: Option<Assessment>,
    /// Narrative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Challenges met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenges: Option<String>,
    /// Proof.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// Where the figures come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Assistance received toward it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assistance_received: Option<String>,
}

impl Progress {
    /// A report of `value` (if any) on `target` as of a date, saying nothing else. Its id and
    /// target version are set by the node that records it.
    pub fn bare(target: &str, as_of: Date, value: Option<f64>) -> Progress {
        Progress {
            id: format!("{target}/{as_of}"),
            target: target.into(),
            target_version: 1,
            as_of,
            value,
            assessment: None,
            note: None,
            challenges: None,
            evidence: None,
            source: None,
            assistance_received: None,
        }
    }

    /// Checks the report against the target version it reports on.
    pub fn validate(&self, target: &Target) -> Result<(), ModelError> {
        check_finite("the observed value", self.value)?;
        if self.value.is_some() && target.indicator.kind != IndicatorKind::Quantitative {
            return Err(ModelError::NotQuantitative(
                if target.indicator.kind == IndicatorKind::Milestone {
                    "milestone"
                } else {
                    "yes/no"
                },
                "--value (report it with --assessment achieved)",
            ));
        }
        if let Some(e) = &self.evidence {
            Evidence::from_parts(Some(e.uri.clone()), Some(e.sha256.clone()))?;
        }
        Ok(())
    }
}

/// A request for assistance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Need {
    /// The State's id for it (`R1`).
    pub id: String,
    /// The requesting State.
    pub state: StateCode,
    /// What is asked for, in one line.
    pub title: String,
    /// Targets it serves.
    #[serde(default)]
    pub targets: Vec<String>,
    /// The area.
    pub area: Area,
    /// MOSAIC modules concerned.
    #[serde(default)]
    pub mosaic: Vec<Mosaic>,
    /// Kind of help.
    pub kind: AssistanceKind,
    /// Estimated cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// Currency of the cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// When it is needed: from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Date>,
    /// When it is needed: until.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Date>,
    /// How urgent.
    pub priority: Priority,
}

fn check_currency(c: &Option<String>) -> Result<(), ModelError> {
    match c {
        Some(c) if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) => {
            Err(ModelError::BadCurrency(c.clone()))
        }
        _ => Ok(()),
    }
}

fn check_window(from: Option<Date>, until: Option<Date>) -> Result<(), ModelError> {
    match (from, until) {
        (Some(start), Some(end)) if end < start => Err(ModelError::BadWindow { start, end }),
        _ => Ok(()),
    }
}

impl Need {
    /// Checks the request.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_id(&self.id)?;
        check_text("the title", &self.title)?;
        for t in &self.targets {
            check_id(t)?;
        }
        check_finite("the cost", self.cost)?;
        if self.cost.is_some_and(|c| c < 0.0) {
            return Err(ModelError::Negative("the cost"));
        }
        check_currency(&self.currency)?;
        check_window(self.from, self.until)
    }
}

/// An offer of assistance by a donor, organisation or State.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    /// The provider's id for it (`O1`).
    pub id: String,
    /// Who offers: a State code or a body acronym.
    pub provider: String,
    /// What is offered, in one line.
    pub title: String,
    /// Areas it covers.
    pub areas: Vec<Area>,
    /// MOSAIC modules it covers.
    #[serde(default)]
    pub mosaic: Vec<Mosaic>,
    /// Kinds of help.
    pub kinds: Vec<AssistanceKind>,
    /// Eligible States, pools or regions; empty means any.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Smallest grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_min: Option<f64>,
    /// Largest grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_max: Option<f64>,
    /// Currency of the budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Available from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Date>,
    /// Available until.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Date>,
}

impl Offer {
    /// Checks the offer.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_id(&self.id)?;
        check_text("the title", &self.title)?;
        if self.areas.is_empty() {
            return Err(ModelError::Empty("the list of areas (--area)"));
        }
        if self.kinds.is_empty() {
            return Err(ModelError::Empty("the list of kinds (--kind)"));
        }
        check_finite("the budget minimum", self.budget_min)?;
        check_finite("the budget maximum", self.budget_max)?;
        for (what, v) in [
            ("the budget minimum", self.budget_min),
            ("the budget maximum", self.budget_max),
        ] {
            if v.is_some_and(|v| v < 0.0) {
                return Err(ModelError::Negative(what));
            }
        }
        if let (Some(lo), Some(hi)) = (self.budget_min, self.budget_max)
            && lo > hi
        {
            return Err(ModelError::BadBudget(lo, hi));
        }
        check_currency(&self.currency)?;
        check_window(self.from, self.until)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn xaa_t1() -> Target {
        Target {
            id: "T1".into(),
            state: "XAA".parse().unwrap(),
            version: 1,
            cycle: "BMS9".parse().unwrap(),
            area: Area::Marking,
            title: "Share of State-held SALW marked".into(),
            description: None,
            indicator: Indicator {
                kind: IndicatorKind::Quantitative,
                text: "share of State-held SALW marked".into(),
                unit: Some("percent".into()),
                direction: Some(Direction::Increase),
            },
            baseline: Some(40.0),
            baseline_year: Some(2023),
            baseline_source: None,
            value: Some(70.0),
            deadline: "2026-06-30".parse().unwrap(),
            mosaic: vec!["05.30".parse().unwrap()],
            refs: vec!["ITI 8".into()],
            sdg: None,
            conditional_on: vec![],
            supersedes: None,
            reason: None,
        }
    }

    #[test]
    fn the_illustrative_target_is_valid() {
        assert_eq!(xaa_t1().validate(), Ok(()));
    }

    #[test]
    fn unknown_area_mosaic_and_cycle() {
        assert!(matches!(
            "shooting".parse::<Area>(),
            Err(ModelError::Unknown {
                what: "commitment area",
                ..
            })
        ));
        assert_eq!("stockpile-management".parse::<Area>(), Ok(Area::Stockpile));
        assert_eq!(
            "05.99".parse::<Mosaic>(),
            Err(ModelError::UnknownMosaic("05.99".into()))
        );
        assert_eq!(
            "05.31".parse::<Mosaic>().unwrap().title(),
            "Tracing illicit small arms and light weapons"
        );
        assert!(matches!(
            "BMS12".parse::<Cycle>(),
            Err(ModelError::UnknownCycle(_))
        ));
        let bms9: Cycle = "bms9".parse().unwrap();
        assert_eq!(bms9.previous().unwrap().to_string(), "RevCon4");
        assert_eq!(bms9.info().dates, Some(("2026-06-01", "2026-06-05")));
    }

    #[test]
    fn deadline_before_baseline_year() {
        let mut t = xaa_t1();
        t.deadline = "2022-12-31".parse().unwrap();
        assert!(matches!(
            t.validate(),
            Err(ModelError::DeadlineBeforeBaseline {
                baseline_year: 2023,
                ..
            })
        ));
    }

    #[test]
    fn quantitative_needs_unit_and_value() {
        let mut t = xaa_t1();
        t.indicator.unit = None;
        assert_eq!(t.validate(), Err(ModelError::MissingUnit));
        let mut t = xaa_t1();
        t.value = None;
        assert_eq!(t.validate(), Err(ModelError::MissingValue));
    }

    #[test]
    fn direction_must_agree_with_baseline_and_target() {
        let mut t = xaa_t1();
        t.value = Some(30.0);
        assert!(matches!(
            t.validate(),
            Err(ModelError::DirectionContradiction { .. })
        ));
        t.indicator.direction = Some(Direction::Decrease);
        assert_eq!(t.validate(), Ok(()));
        t.value = Some(50.0);
        assert!(matches!(
            t.validate(),
            Err(ModelError::DirectionContradiction { .. })
        ));
        t.indicator.direction = Some(Direction::Reach);
        assert_eq!(t.validate(), Ok(()));
    }

    #[test]
    fn milestones_take_no_numbers() {
        let mut t = xaa_t1();
        t.indicator.kind = IndicatorKind::Milestone;
        assert!(matches!(
            t.validate(),
            Err(ModelError::NotQuantitative("milestone", "--value"))
        ));
        t.value = None;
        t.baseline = None;
        t.baseline_year = None;
        t.indicator.unit = None;
        assert_eq!(t.validate(), Ok(()));
    }

    #[test]
    fn ids_titles_and_numbers() {
        let mut t = xaa_t1();
        t.id = "T 1".into();
        assert!(matches!(t.validate(), Err(ModelError::BadId(_))));
        let mut t = xaa_t1();
        t.title = "  ".into();
        assert_eq!(t.validate(), Err(ModelError::Empty("the title")));
        let mut t = xaa_t1();
        t.value = Some(f64::NAN);
        assert_eq!(t.validate(), Err(ModelError::NotFinite("the target value")));
        let mut t = xaa_t1();
        t.baseline_year = None;
        assert_eq!(t.validate(), Err(ModelError::HalfBaseline));
        let mut t = xaa_t1();
        t.baseline_year = Some(1800);
        assert_eq!(t.validate(), Err(ModelError::Year(1800)));
    }

    #[test]
    fn evidence_needs_a_sha256() {
        assert_eq!(
            Evidence::from_parts(Some("https://x/report.pdf".into()), None),
            Err(ModelError::EvidenceWithoutHash)
        );
        assert_eq!(
            Evidence::from_parts(None, Some("ab".into())),
            Err(ModelError::HashWithoutEvidence)
        );
        assert!(matches!(
            Evidence::from_parts(Some("u".into()), Some("xyz".into())),
            Err(ModelError::BadSha256(_))
        ));
        let ok = Evidence::from_parts(Some("u".into()), Some("A".repeat(64))).unwrap();
        assert_eq!(ok.unwrap().sha256, "a".repeat(64));
    }

    #[test]
    fn progress_value_on_a_milestone_is_refused() {
        let mut t = xaa_t1();
        t.indicator.kind = IndicatorKind::Milestone;
        let p = Progress::bare("T1", "2025-12-31".parse().unwrap(), Some(1.0));
        assert!(p.validate(&t).is_err());
        assert!(p.validate(&xaa_t1()).is_ok());
    }

    #[test]
    fn needs_and_offers() {
        let need = Need {
            id: "R1".into(),
            state: "XAB".parse().unwrap(),
            title: "Destruction equipment".into(),
            targets: vec!["T2".into()],
            area: Area::Destruction,
            mosaic: vec![],
            kind: AssistanceKind::Equipment,
            cost: Some(-1.0),
            currency: Some("usd".into()),
            from: None,
            until: None,
            priority: Priority::High,
        };
        assert_eq!(need.validate(), Err(ModelError::Negative("the cost")));
        let need = Need {
            cost: Some(1.0),
            ..need
        };
        assert!(matches!(need.validate(), Err(ModelError::BadCurrency(_))));
        let offer = Offer {
            id: "O1".into(),
            provider: "XZZ".into(),
            title: "Marking training".into(),
            areas: vec![Area::Marking],
            mosaic: vec![],
            kinds: vec![AssistanceKind::Training],
            regions: vec![],
            budget_min: Some(10.0),
            budget_max: Some(5.0),
            currency: None,
            from: None,
            until: None,
        };
        assert_eq!(offer.validate(), Err(ModelError::BadBudget(10.0, 5.0)));
        let offer = Offer {
            budget_min: None,
            from: Some("2026-01-01".parse().unwrap()),
            until: Some("2025-01-01".parse().unwrap()),
            ..offer
        };
        assert!(matches!(
            offer.validate(),
            Err(ModelError::BadWindow { .. })
        ));
    }
}
