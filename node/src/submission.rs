//! The national submission: everything a State holds for a cycle (its targets with every
//! field, their progress with evidence, its requests), each marked DRAFT where it is not yet
//! published, with what the checks find, rendered for printing and internal clearance (HTML for
//! A4 with page numbers, Markdown, JSON). Built from this node's draft and published document.

use std::fmt::Write as _;

use poa_protocol::checks::{Finding, Stage, check_need, check_progress, check_target};
use poa_protocol::doc::StateData;
use poa_protocol::model::{Cycle, Need, Progress, Target};
use poa_protocol::submission::{Pending, pending, reason_of};
use poa_protocol::view::{Status, target_views};
use poa_protocol::{Date, NodeId, StateCode};
use serde::Serialize;

use crate::html_kit::{esc, html_table};
use crate::node::{Node, NodeError};

/// One target in the submission.
#[derive(Clone, Debug, Serialize)]
pub struct TargetEntry {
    /// The current version.
    pub target: Target,
    /// Its status, by the one status rule.
    pub status: Status,
    /// Whether the current version is published.
    pub published: bool,
    /// The versions before it.
    pub earlier: Vec<u32>,
    /// When it was withdrawn, if it was.
    pub withdrawn: Option<String>,
    /// Its progress reports, oldest first.
    pub progress: Vec<ProgressEntry>,
    /// What the checks find in the current version.
    pub findings: Vec<Finding>,
}

/// One progress report in the submission.
#[derive(Clone, Debug, Serialize)]
pub struct ProgressEntry {
    /// The report.
    pub report: Progress,
    /// Whether it is published.
    pub published: bool,
    /// Why it was withdrawn, if it was.
    pub withdrawn: Option<String>,
    /// What the checks find.
    pub findings: Vec<Finding>,
}

/// One request in the submission.
#[derive(Clone, Debug, Serialize)]
pub struct NeedEntry {
    /// The request.
    pub need: Need,
    /// Whether it is published.
    pub published: bool,
    /// Why it was withdrawn, if it was.
    pub withdrawn: Option<String>,
    /// What the checks find.
    pub findings: Vec<Finding>,
}

/// The submission of a State for a cycle, as this node holds it.
#[derive(Clone, Debug, Serialize)]
pub struct Submission {
    /// The State.
    pub state: StateCode,
    /// The cycle, or every cycle.
    pub cycle: Option<Cycle>,
    /// The day it was produced.
    pub produced: Date,
    /// The node that produced it.
    pub node: NodeId,
    /// That node's name.
    pub node_name: String,
    /// The targets, by id.
    pub targets: Vec<TargetEntry>,
    /// The requests, by id.
    pub needs: Vec<NeedEntry>,
    /// What publishing would send out.
    pub pending: Vec<Pending>,
}

impl Submission {
    /// How many errors and warnings the checks found.
    pub fn counts(&self) -> (usize, usize) {
        let all = self
            .targets
            .iter()
            .flat_map(|t| {
                t.findings
                    .iter()
                    .chain(t.progress.iter().flat_map(|p| &p.findings))
            })
            .chain(self.needs.iter().flat_map(|n| &n.findings));
        all.fold((0, 0), |(e, w), f| match f.severity {
            poa_protocol::checks::Severity::Error => (e + 1, w),
            poa_protocol::checks::Severity::Warning => (e, w + 1),
        })
    }
}

impl Node {
    /// The State's submission for `cycle` (every cycle if `None`).
    pub fn submission(&self, cycle: Option<Cycle>) -> Result<Submission, NodeError> {
        let (state, draft, public) = self.drafts()?;
        let today = self.clock.today();
        Ok(build(
            state,
            cycle,
            &draft,
            &public,
            today,
            self.id(),
            self.home.config.name.clone(),
        ))
    }
}

/// The submission from a State's draft and published document.
pub fn build(
    state: StateCode,
    cycle: Option<Cycle>,
    draft: &StateData,
    public: &StateData,
    today: Date,
    node: NodeId,
    node_name: String,
) -> Submission {
    // The checks see the State as it would stand once published: the draft, with the
    // requests published or about to be.
    let mut held = draft.clone();
    for (id, n) in &public.needs {
        held.needs.entry(id.clone()).or_insert_with(|| n.clone());
    }
    let reason = |key: String| {
        draft
            .retracted
            .get(&key)
            .or_else(|| public.retracted.get(&key))
            .map(reason_of)
    };
    let mut targets = Vec::new();
    for v in target_views(draft, Some(public), today) {
        let cur = v.current();
        if cycle.is_some_and(|c| cur.target.cycle != c) {
            continue;
        }
        let t = &cur.target;
        let mut others = held.clone();
        others.targets.remove(&(t.id.clone(), t.version));
        let findings = check_target(t, &others, today, Stage::Publish);
        let mut progress: Vec<ProgressEntry> = v
            .progress
            .iter()
            .map(|(p, published)| {
                let mut others = held.clone();
                others.progress.remove(&p.id);
                ProgressEntry {
                    findings: check_progress(p, &others, today),
                    report: p.clone(),
                    published: *published,
                    withdrawn: None,
                }
            })
            .collect();
        for p in draft
            .withdrawn_progress
            .values()
            .filter(|p| p.target == t.id)
        {
            progress.push(ProgressEntry {
                report: p.clone(),
                published: public.progress.contains_key(&p.id)
                    || public.withdrawn_progress.contains_key(&p.id),
                withdrawn: reason(format!("progress/{}", p.id)),
                findings: Vec::new(),
            });
        }
        progress
            .sort_by(|a, b| (a.report.as_of, &a.report.id).cmp(&(b.report.as_of, &b.report.id)));
        targets.push(TargetEntry {
            target: t.clone(),
            status: cur.status,
            published: cur.published,
            earlier: v.versions[..v.versions.len() - 1]
                .iter()
                .map(|v| v.target.version)
                .collect(),
            withdrawn: v.withdrawn.clone(),
            progress,
            findings,
        });
    }
    let mut needs = Vec::new();
    let all_needs = held
        .needs
        .iter()
        .chain(&draft.withdrawn_needs)
        .chain(&public.withdrawn_needs);
    let mut seen = std::collections::BTreeSet::new();
    for (id, n) in all_needs {
        if !seen.insert(id.clone()) {
            continue;
        }
        let withdrawn = reason(format!("needs/{id}"));
        let mut others = held.clone();
        others.needs.remove(id);
        needs.push(NeedEntry {
            findings: if withdrawn.is_some() {
                Vec::new()
            } else {
                check_need(n, &others)
            },
            need: n.clone(),
            published: public.needs.contains_key(id) || public.withdrawn_needs.contains_key(id),
            withdrawn,
        });
    }
    needs.sort_by(|a, b| a.need.id.cmp(&b.need.id));
    Submission {
        state,
        cycle,
        produced: today,
        node,
        node_name,
        targets,
        needs,
        pending: pending(draft, public, cycle),
    }
}

/// The submission as Markdown.
pub fn markdown(s: &Submission) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# National submission of {}{}\n",
        s.state,
        cycle_label(s)
    );
    let _ = writeln!(
        o,
        "Produced on {} by {} ({}). Records marked **DRAFT** are not published.\n",
        s.produced,
        md(&s.node_name),
        s.node
    );
    let (errors, warnings) = s.counts();
    let _ = writeln!(
        o,
        "Checks: {errors} error(s), {warnings} warning(s). Pending publication: {}.\n",
        if s.pending.is_empty() {
            "nothing".to_string()
        } else {
            s.pending.len().to_string()
        }
    );
    for p in &s.pending {
        let _ = writeln!(o, "- {}", md(&p.line()));
    }
    let _ = writeln!(o, "\n## Targets\n");
    if s.targets.is_empty() {
        let _ = writeln!(o, "No targets.\n");
    }
    for t in &s.targets {
        let x = &t.target;
        let _ = writeln!(
            o,
            "### {} — {}{}\n",
            x.id,
            md(&x.title),
            mark(t.published, t.withdrawn.as_deref())
        );
        for (label, value) in target_fields(t) {
            let _ = writeln!(o, "- **{label}:** {}", md(&value));
        }
        findings_md(&mut o, &t.findings);
        if t.progress.is_empty() {
            let _ = writeln!(o, "\nNo progress reported.\n");
        }
        for p in &t.progress {
            let r = &p.report;
            let _ = writeln!(
                o,
                "\n#### Progress {}{}\n",
                r.as_of,
                mark(p.published, p.withdrawn.as_deref())
            );
            for (label, value) in progress_fields(r) {
                let _ = writeln!(o, "- **{label}:** {}", md(&value));
            }
            findings_md(&mut o, &p.findings);
        }
        o.push('\n');
    }
    let _ = writeln!(o, "## Assistance requests\n");
    if s.needs.is_empty() {
        let _ = writeln!(o, "No requests.\n");
    }
    for n in &s.needs {
        let _ = writeln!(
            o,
            "### {} — {}{}\n",
            n.need.id,
            md(&n.need.title),
            mark(n.published, n.withdrawn.as_deref())
        );
        for (label, value) in need_fields(&n.need) {
            let _ = writeln!(o, "- **{label}:** {}", md(&value));
        }
        findings_md(&mut o, &n.findings);
        o.push('\n');
    }
    o
}

/// The submission as a printable page: A4, a page per target, page numbers, the date and the
/// node in every page's footer.
pub fn html(s: &Submission) -> String {
    let mut b = String::new();
    let (errors, warnings) = s.counts();
    let _ = write!(
        b,
        "<section><h2>Summary</h2><p>Checks: <b>{errors}</b> error(s), <b>{warnings}</b> warning(s). Records marked <span class=\"draft\">DRAFT</span> are not published.</p>"
    );
    if s.pending.is_empty() {
        b.push_str("<p>Nothing pending: everything here is published.</p>");
    } else {
        b.push_str("<p>Publishing would send out:</p><ul>");
        for p in &s.pending {
            let _ = write!(b, "<li>{}</li>", esc(&p.line()));
        }
        b.push_str("</ul>");
    }
    b.push_str("</section>");
    for t in &s.targets {
        let x = &t.target;
        let _ = write!(
            b,
            "<section class=\"record\" id=\"target-{}\"><h2>Target {} — {}{}</h2>",
            esc(&x.id),
            esc(&x.id),
            esc(&x.title),
            mark_html(t.published, t.withdrawn.as_deref())
        );
        fields_html(&mut b, &target_fields(t));
        findings_html(&mut b, &t.findings);
        if t.progress.is_empty() {
            b.push_str("<p class=\"muted\">No progress reported.</p>");
        }
        for p in &t.progress {
            let _ = write!(
                b,
                "<h3>Progress {}{}</h3>",
                p.report.as_of,
                mark_html(p.published, p.withdrawn.as_deref())
            );
            fields_html(&mut b, &progress_fields(&p.report));
            findings_html(&mut b, &p.findings);
        }
        b.push_str("</section>");
    }
    b.push_str("<section class=\"record\"><h2>Assistance requests</h2>");
    if s.needs.is_empty() {
        b.push_str("<p class=\"muted\">No requests.</p>");
    }
    for n in &s.needs {
        let _ = write!(
            b,
            "<h3>{} — {}{}</h3>",
            esc(&n.need.id),
            esc(&n.need.title),
            mark_html(n.published, n.withdrawn.as_deref())
        );
        fields_html(&mut b, &need_fields(&n.need));
        findings_html(&mut b, &n.findings);
    }
    b.push_str("</section>");
    let footer = format!(
        "{} submission{} · produced {} by {} ({})",
        s.state,
        cycle_label(s),
        s.produced,
        s.node_name,
        s.node
    );
    let print = format!(
        "<style>{PRINT}@page{{@bottom-left{{content:\"{}\";font-size:8pt;color:#555}}}}</style>",
        css_string(&footer)
    );
    let title = format!("National submission of {}{}", s.state, cycle_label(s));
    let subtitle = format!("Produced on {} by {} ({})", s.produced, s.node_name, s.node);
    crate::html_kit::page(&title, &subtitle, &print, &b, None)
}

/// A4, one target per page, page numbers at the foot.
const PRINT: &str = "@page{size:A4;margin:18mm 16mm 20mm;@bottom-right{content:\"page \" counter(page) \" of \" counter(pages);font-size:8pt;color:#555}}\
.draft{display:inline-block;border:2px solid #b2182b;color:#b2182b;font-weight:700;padding:0 .3rem;margin-left:.5rem;font-size:.8rem}\
.withdrawn{display:inline-block;border:2px solid #555;color:#555;font-weight:700;padding:0 .3rem;margin-left:.5rem;font-size:.8rem}\
.finding-error{color:#b2182b}.finding-warning{color:#8a5a00}dl{display:grid;grid-template-columns:12rem 1fr;gap:.2rem 1rem;margin:.5rem 0}dt{font-weight:600}dd{margin:0}\
@media print{section.record{break-before:page}}";

fn css_string(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .map(|c| match c {
            '"' | '\\' | '<' | '>' => ' ',
            c => c,
        })
        .collect()
}

fn cycle_label(s: &Submission) -> String {
    s.cycle.map(|c| format!(" for {c}")).unwrap_or_default()
}

fn mark(published: bool, withdrawn: Option<&str>) -> String {
    let mut o = String::new();
    if !published {
        o.push_str(" — DRAFT");
    }
    if let Some(r) = withdrawn {
        o.push_str(&format!(" — WITHDRAWN ({})", md(r)));
    }
    o
}

fn mark_html(published: bool, withdrawn: Option<&str>) -> String {
    let mut o = String::new();
    if !published {
        o.push_str("<span class=\"draft\">DRAFT</span>");
    }
    if let Some(r) = withdrawn {
        let _ = write!(o, "<span class=\"withdrawn\">WITHDRAWN: {}</span>", esc(r));
    }
    o
}

fn target_fields(t: &TargetEntry) -> Vec<(&'static str, String)> {
    let x = &t.target;
    let mut f = vec![
        ("Version", version_line(t)),
        ("Status", t.status.to_string()),
        ("Cycle", x.cycle.to_string()),
        ("Area", x.area.label().to_string()),
        (
            "Indicator",
            format!(
                "{} ({}{})",
                x.indicator.text,
                x.indicator.kind,
                x.indicator
                    .direction
                    .map(|d| format!(", {d}"))
                    .unwrap_or_default()
            ),
        ),
    ];
    let unit = x.indicator.unit.clone().unwrap_or_default();
    if let Some(b) = x.baseline {
        let year = x
            .baseline_year
            .map(|y| format!(" in {y}"))
            .unwrap_or_default();
        f.push((
            "Baseline",
            format!("{} {unit}{year}", crate::format::num(b)),
        ));
    }
    push_opt(&mut f, "Baseline source", &x.baseline_source);
    if let Some(v) = x.value {
        f.push(("Target value", format!("{} {unit}", crate::format::num(v))));
    }
    f.push(("Deadline", x.deadline.to_string()));
    push_opt(&mut f, "Description", &x.description);
    if !x.mosaic.is_empty() {
        let m: Vec<String> = x
            .mosaic
            .iter()
            .map(|m| format!("{} {}", m.code(), m.title()))
            .collect();
        f.push(("MOSAIC", m.join("; ")));
    }
    if !x.refs.is_empty() {
        f.push(("References", x.refs.join("; ")));
    }
    push_opt(&mut f, "SDG", &x.sdg);
    if !x.conditional_on.is_empty() {
        f.push(("Conditional on", x.conditional_on.join(", ")));
    }
    push_opt(&mut f, "Reason for this version", &x.reason);
    if let Some(w) = &t.withdrawn {
        f.push(("Withdrawn", w.clone()));
    }
    f
}

fn version_line(t: &TargetEntry) -> String {
    let v = t.target.version;
    if t.earlier.is_empty() {
        v.to_string()
    } else {
        let e: Vec<String> = t.earlier.iter().map(u32::to_string).collect();
        format!("{v} (supersedes {})", e.join(", "))
    }
}

fn progress_fields(r: &Progress) -> Vec<(&'static str, String)> {
    let mut f = vec![("Report", r.id.clone()), ("As of", r.as_of.to_string())];
    if let Some(v) = r.value {
        f.push(("Value", crate::format::num(v)));
    }
    if let Some(a) = r.assessment {
        f.push(("Assessment", a.to_string()));
    }
    push_opt(&mut f, "Note", &r.note);
    push_opt(&mut f, "Challenges", &r.challenges);
    push_opt(&mut f, "Source", &r.source);
    push_opt(&mut f, "Assistance received", &r.assistance_received);
    match &r.evidence {
        Some(e) => f.push(("Evidence", format!("{} (SHA-256 {})", e.uri, e.sha256))),
        None => f.push(("Evidence", "none given".into())),
    }
    f
}

fn need_fields(n: &Need) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("Area", n.area.label().to_string()),
        ("Kind", n.kind.to_string()),
        ("Priority", n.priority.to_string()),
    ];
    if !n.targets.is_empty() {
        f.push(("Targets", n.targets.join(", ")));
    }
    if let Some(c) = n.cost {
        f.push((
            "Estimated cost",
            format!(
                "{} {}",
                crate::format::num(c),
                n.currency.clone().unwrap_or_default()
            ),
        ));
    }
    if n.from.is_some() || n.until.is_some() {
        let d = |d: Option<Date>| d.map(|d| d.to_string()).unwrap_or_else(|| "…".into());
        f.push(("Needed", format!("{} to {}", d(n.from), d(n.until))));
    }
    if !n.mosaic.is_empty() {
        let m: Vec<String> = n.mosaic.iter().map(|m| m.code().to_string()).collect();
        f.push(("MOSAIC", m.join(", ")));
    }
    f
}

fn push_opt(f: &mut Vec<(&'static str, String)>, label: &'static str, v: &Option<String>) {
    if let Some(v) = v {
        f.push((label, v.clone()));
    }
}

/// Markdown text: one line, with the characters Markdown reads as markup escaped.
fn md(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in crate::format::safe(s).chars() {
        match c {
            '\n' | '\r' => o.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' => {
                o.push('\\');
                o.push(c);
            }
            c => o.push(c),
        }
    }
    o
}

fn findings_md(o: &mut String, findings: &[Finding]) {
    for f in findings {
        let _ = writeln!(o, "- ⚠ {}", md(&f.to_string()));
    }
}

fn fields_html(b: &mut String, fields: &[(&'static str, String)]) {
    b.push_str("<dl>");
    for (label, value) in fields {
        let _ = write!(b, "<dt>{}</dt><dd>{}</dd>", esc(label), esc(value));
    }
    b.push_str("</dl>");
}

fn findings_html(b: &mut String, findings: &[Finding]) {
    if findings.is_empty() {
        return;
    }
    let rows: Vec<Vec<String>> = findings
        .iter()
        .map(|f| {
            let class = match f.severity {
                poa_protocol::checks::Severity::Error => "finding-error",
                poa_protocol::checks::Severity::Warning => "finding-warning",
            };
            vec![
                format!("<span class=\"{class}\">{:?}</span>", f.severity).to_lowercase(),
                esc(f.field),
                esc(&f.message),
            ]
        })
        .collect();
    b.push_str(&html_table(&["Check", "Field", "Finding"], &[], &rows));
}
