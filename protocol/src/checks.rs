//! Checks before publishing: what is wrong with a record (an **error**, which refuses it) and
//! what looks wrong (a **warning**, shown and recorded, which does not). One function per kind of
//! record, against what the State already holds, so the CLI, an import, the web form and the
//! stocktake's data-quality section all say the same thing about the same record.
//!
//! The messages are for the person at the desk: each names the field and says what to do.

use serde::Serialize;

use crate::date::Date;
use crate::doc::{OffersData, StateData};
use crate::model::{IndicatorKind, Need, Offer, Progress, Target};

/// Whether a finding refuses the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The record is refused.
    Error,
    /// Shown and recorded; the record is kept.
    Warning,
}

/// One thing a check found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// The record (`targets/T1/1`, `progress/T1/2025-12-31`, `needs/R1`).
    pub record: String,
    /// The field, as the CLI names it (`--value`, `--as-of`).
    pub field: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{what}: {} {}: {}",
            self.record, self.field, self.message
        )
    }
}

/// When a check runs: a draft may name a request it is conditional on before the request is
/// written (a target and its request often name each other); what is published may not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Writing to the draft.
    Draft,
    /// Publishing.
    Publish,
}

/// Whether any finding is an error.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// The longest one-line title, in characters.
pub const MAX_TITLE: usize = 200;
/// How far back a date may lie before it looks like a typing mistake, in years.
const OLD_YEARS: i32 = 15;
/// How far ahead a deadline may lie before it looks like a typing mistake, in years.
const FAR_YEARS: i32 = 15;

struct Out {
    record: String,
    findings: Vec<Finding>,
}

impl Out {
    fn new(record: String) -> Out {
        Out {
            record,
            findings: Vec::new(),
        }
    }

    fn push(&mut self, severity: Severity, field: &'static str, message: String) {
        self.findings.push(Finding {
            severity,
            record: self.record.clone(),
            field,
            message,
        });
    }

    fn error(&mut self, field: &'static str, message: impl Into<String>) {
        self.push(Severity::Error, field, message.into());
    }

    fn warn(&mut self, field: &'static str, message: impl Into<String>) {
        self.push(Severity::Warning, field, message.into());
    }

    /// A field that must stay on one line (it is printed in tables and titles).
    fn one_line(&mut self, field: &'static str, text: &str) {
        if text.chars().any(|c| c == '\n' || c == '\r') {
            self.error(field, "must be one line: remove the line breaks");
        }
    }
}

/// Units whose values are counts: never negative.
fn is_count(unit: &str) -> bool {
    let u = unit.trim().to_ascii_lowercase();
    [
        "weapons", "weapon", "firearms", "items", "depots", "sites", "cases", "people", "staff",
        "officers", "laws", "units", "rounds", "tonnes", "kg",
    ]
    .iter()
    .any(|c| u == *c || u.starts_with(&format!("{c} ")))
}

fn is_percent(unit: &str) -> bool {
    let u = unit.trim().to_ascii_lowercase();
    u == "percent" || u == "%" || u == "per cent"
}

/// Checks a value against its unit: a share between 0 and 100, a count not negative.
fn check_value(out: &mut Out, field: &'static str, unit: Option<&str>, value: Option<f64>) {
    let (Some(unit), Some(v)) = (unit, value) else {
        return;
    };
    if is_percent(unit) && !(0.0..=100.0).contains(&v) {
        out.error(
            field,
            format!("{v} is not a percentage: use a value from 0 to 100"),
        );
    } else if is_count(unit) && v < 0.0 {
        out.error(field, format!("{v} {unit} cannot be negative"));
    }
}

/// A target id that is another's but for case (`t1` beside `T1`): refused, since people and
/// spreadsheets do not tell them apart.
fn case_twin<'a>(id: &str, mut ids: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    ids.find(|other| *other != id && other.eq_ignore_ascii_case(id))
}

/// Checks a target version against what the State already holds (`held`: its draft, which
/// holds every record it wrote) on `today`.
pub fn check_target(t: &Target, held: &StateData, today: Date, stage: Stage) -> Vec<Finding> {
    let mut out = Out::new(format!("targets/{}/{}", t.id, t.version));
    if let Err(e) = t.validate() {
        out.error("target", e.to_string());
    }
    if let Some(other) = case_twin(&t.id, held.targets.keys().map(|(id, _)| id.as_str())) {
        out.error(
            "--id",
            format!("{other} exists already: ids that differ only by case are refused; use {other} or another id"),
        );
    }
    out.one_line("--title", &t.title);
    if t.title.chars().count() > MAX_TITLE {
        out.error(
            "--title",
            format!(
                "is {} characters long: keep it to {MAX_TITLE} and put the rest in --description",
                t.title.chars().count()
            ),
        );
    }
    out.one_line("--indicator", &t.indicator.text);
    if let Some(u) = &t.indicator.unit {
        out.one_line("--unit", u);
    }
    if let Some(s) = &t.baseline_source {
        out.one_line("--baseline-source", s);
    }
    if let Some(s) = &t.sdg {
        out.one_line("--sdg", s);
    }
    for r in &t.refs {
        out.one_line("--ref", r);
    }
    for r in &t.conditional_on {
        if !held.needs.contains_key(r) {
            let severity = match stage {
                Stage::Draft => Severity::Warning,
                Stage::Publish => Severity::Error,
            };
            out.push(
                severity,
                "--conditional-on",
                format!("no request {r} exists: add it (`need add --id {r} …`) before publishing, or drop it"),
            );
        }
    }
    if t.indicator.kind == IndicatorKind::Quantitative {
        let unit = t.indicator.unit.as_deref();
        check_value(&mut out, "--baseline", unit, t.baseline);
        check_value(&mut out, "--value", unit, t.value);
    }
    if t.deadline.year() > today.year() + FAR_YEARS {
        out.warn(
            "--deadline",
            format!(
                "{} is more than {FAR_YEARS} years away: check the year",
                t.deadline
            ),
        );
    }
    if let Some(y) = t.baseline_year
        && y < today.year() - OLD_YEARS
    {
        out.warn(
            "--baseline-year",
            format!("{y} is more than {OLD_YEARS} years ago: check the year"),
        );
    }
    out.findings
}

/// Checks a progress report against its target and the State's other reports on it.
pub fn check_progress(p: &Progress, held: &StateData, today: Date) -> Vec<Finding> {
    let mut out = Out::new(format!("progress/{}", p.id));
    let Some(target) = held.latest(&p.target) else {
        out.error(
            "target",
            format!(
                "no target {} exists: add it first (`target add --id {} …`)",
                p.target, p.target
            ),
        );
        return out.findings;
    };
    if let Err(e) = p.validate(target) {
        out.error("report", e.to_string());
    }
    if target.indicator.kind == IndicatorKind::Quantitative {
        check_value(
            &mut out,
            "--value",
            target.indicator.unit.as_deref(),
            p.value,
        );
    }
    if p.as_of > today {
        out.warn(
            "--as-of",
            format!(
                "{} is in the future: a report describes what has happened",
                p.as_of
            ),
        );
    }
    if p.as_of.year() < today.year() - OLD_YEARS {
        out.warn(
            "--as-of",
            format!(
                "{} is more than {OLD_YEARS} years ago: check the year",
                p.as_of
            ),
        );
    }
    if let (Some(v), Some(b), Some(goal)) = (p.value, target.baseline, target.value) {
        let span = (goal - b).abs().max(1.0);
        if (v - b).abs() > 10.0 * span {
            out.warn(
                "--value",
                format!("{v} is far from the baseline {b} and the target {goal}: check the figure"),
            );
        }
    }
    if let Some(s) = &p.source {
        out.one_line("--source", s);
    }
    if let Some(e) = &p.evidence {
        let uri = e.uri.trim();
        let local = uri.starts_with('/')
            || uri.starts_with("file:")
            || uri.starts_with("~")
            || uri.get(1..3) == Some(":\\");
        if local {
            out.warn(
                "--evidence",
                format!("{uri} is a path on this computer, which no one else can open: give a link others can reach, or the document's reference"),
            );
        }
    }
    if let Some(last) = held
        .progress_of(&p.target)
        .into_iter()
        .filter(|q| q.id != p.id)
        .map(|q| q.as_of)
        .max()
        && p.as_of < last
    {
        out.warn(
            "--as-of",
            format!(
                "{} is older than the latest report on {} ({last})",
                p.as_of, p.target
            ),
        );
    }
    out.findings
}

/// Checks a request for assistance against the State's targets.
pub fn check_need(n: &Need, held: &StateData) -> Vec<Finding> {
    let mut out = Out::new(format!("needs/{}", n.id));
    if let Err(e) = n.validate() {
        out.error("request", e.to_string());
    }
    out.one_line("--title", &n.title);
    if n.title.chars().count() > MAX_TITLE {
        out.error(
            "--title",
            format!("is longer than {MAX_TITLE} characters: shorten it"),
        );
    }
    if let Some(other) = case_twin(&n.id, held.needs.keys().map(String::as_str)) {
        out.error(
            "--id",
            format!("{other} exists already: ids that differ only by case are refused"),
        );
    }
    for t in &n.targets {
        if held.latest(t).is_none() {
            out.error(
                "--target",
                format!("no target {t} exists: add it first, or drop it"),
            );
        }
    }
    out.findings
}

/// Checks an offer of assistance against the provider's other offers (`held`: its draft,
/// which holds every offer it wrote) on `today`.
pub fn check_offer(o: &Offer, held: &OffersData, today: Date) -> Vec<Finding> {
    let mut out = Out::new(format!("offers/{}", o.id));
    if let Err(e) = o.validate() {
        out.error("offer", e.to_string());
    }
    out.one_line("--title", &o.title);
    if o.title.chars().count() > MAX_TITLE {
        out.error(
            "--title",
            format!("is longer than {MAX_TITLE} characters: shorten it"),
        );
    }
    let ids = held.offers.keys().chain(held.withdrawn.keys());
    if let Some(other) = case_twin(&o.id, ids.map(String::as_str)) {
        out.error(
            "--id",
            format!("{other} exists already: ids that differ only by case are refused"),
        );
    }
    if o.budget_max.is_some() && o.currency.is_none() {
        out.warn(
            "--currency",
            "a budget without a currency cannot be compared: add --currency (USD, EUR...)",
        );
    }
    if let Some(until) = o.until
        && until < today
    {
        out.warn(
            "--until",
            format!("{until} has passed: the offer has ended and will not be matched"),
        );
    }
    out.findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::xaa_t1;

    fn today() -> Date {
        "2026-06-01".parse().unwrap()
    }

    fn held_with(t: &Target) -> StateData {
        let mut d = StateData::default();
        d.targets.insert((t.id.clone(), t.version), t.clone());
        d
    }

    fn fields(f: &[Finding], severity: Severity) -> Vec<&'static str> {
        f.iter()
            .filter(|x| x.severity == severity)
            .map(|x| x.field)
            .collect()
    }

    #[test]
    fn a_good_target_has_no_findings() {
        let t = xaa_t1();
        assert_eq!(
            check_target(&t, &StateData::default(), today(), Stage::Publish),
            vec![]
        );
    }

    #[test]
    fn target_errors_refuse_and_say_what_to_do() {
        let held = held_with(&xaa_t1());
        let mut t = xaa_t1();
        t.id = "t1".into();
        t.title = format!("{}\nsecond line {}", "x", "y".repeat(MAX_TITLE));
        t.conditional_on = vec!["R99".into()];
        t.value = Some(180.0);
        let f = check_target(&t, &held, today(), Stage::Publish);
        assert!(has_errors(&f));
        let errors = fields(&f, Severity::Error);
        for want in ["--id", "--title", "--conditional-on", "--value"] {
            assert!(errors.contains(&want), "{want} not in {f:#?}");
        }
        assert!(f.iter().any(|x| x.message.contains("need add --id R99")));
        // In the draft, a request still to be written is a warning.
        let f = check_target(&t, &held, today(), Stage::Draft);
        assert_eq!(fields(&f, Severity::Warning), vec!["--conditional-on"]);
    }

    #[test]
    fn progress_checks_values_dates_and_references() {
        let t = xaa_t1();
        let held = held_with(&t);
        let mut p = Progress::bare("T1", "2030-01-01".parse().unwrap(), Some(180.0));
        let f = check_progress(&p, &held, today());
        assert!(fields(&f, Severity::Error).contains(&"--value"), "{f:#?}");
        assert!(fields(&f, Severity::Warning).contains(&"--as-of"), "{f:#?}");
        p.value = Some(50.0);
        p.as_of = "2026-01-01".parse().unwrap();
        assert_eq!(check_progress(&p, &held, today()), vec![]);
        let nothing = Progress::bare("T99", today(), None);
        let f = check_progress(&nothing, &held, today());
        assert!(
            has_errors(&f) && f[0].message.contains("target add --id T99"),
            "{f:#?}"
        );
    }

    #[test]
    fn an_older_report_and_local_evidence_are_warnings() {
        let t = xaa_t1();
        let mut held = held_with(&t);
        let newer = Progress::bare("T1", "2026-03-01".parse().unwrap(), Some(50.0));
        held.progress.insert(newer.id.clone(), newer);
        let mut p = Progress::bare("T1", "2026-01-01".parse().unwrap(), Some(45.0));
        p.evidence = Some(crate::model::Evidence {
            uri: "/home/desk/report.pdf".into(),
            sha256: "ab".repeat(32),
        });
        let f = check_progress(&p, &held, today());
        assert!(!has_errors(&f), "{f:#?}");
        assert_eq!(fields(&f, Severity::Warning), vec!["--evidence", "--as-of"]);
    }

    #[test]
    fn a_request_names_existing_targets() {
        let held = held_with(&xaa_t1());
        let n = Need {
            id: "R1".into(),
            state: "XAA".parse().unwrap(),
            title: "Marking machines".into(),
            targets: vec!["T1".into(), "T99".into()],
            area: crate::model::Area::Marking,
            mosaic: vec![],
            kind: crate::model::AssistanceKind::Equipment,
            cost: None,
            currency: None,
            from: None,
            until: None,
            priority: crate::model::Priority::High,
        };
        let f = check_need(&n, &held);
        assert_eq!(fields(&f, Severity::Error), vec!["--target"], "{f:#?}");
    }
}
