//! The stocktake as files and pages: what a node feeds the pure computation
//! ([`poa_protocol::stocktake`]), and the renderings of its result (Markdown, JSON, CSV, the
//! SDG 16.4.2 CSV, and a self-contained HTML page with inline SVG charts), and `verify`.
//!
//! Every rendering of a stocktake is a function of the [`Stocktake`] alone, so a report
//! recomputed from the same documents at the same heads renders to the same bytes.

use std::fmt::Write as _;
use std::str::FromStr;

use poa_protocol::automerge::ChangeHash;
use poa_protocol::doc::{DocId, OffersData, StateData};
use poa_protocol::model::{Cycle, ModelError};
use poa_protocol::pool::PoolData;
use poa_protocol::stocktake::{
    Cited, Counts, FORMAT, Input, SDG_SERIES, Source, Standing, Stocktake, stocktake,
};
use poa_protocol::{Date, StateCode};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::node::{Node, NodeError};

/// The formats `stocktake --format` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Markdown.
    Md,
    /// The canonical JSON.
    Json,
    /// One row per target, for spreadsheets.
    Csv,
    /// SDG 16.4.2 in the SDG data format's columns.
    SdgCsv,
    /// A self-contained page with charts.
    Html,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "md" | "markdown" => Ok(Format::Md),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "sdg-csv" | "sdg" => Ok(Format::SdgCsv),
            "html" => Ok(Format::Html),
            other => Err(format!(
                "unknown format '{other}': use md, json, csv, sdg-csv or html"
            )),
        }
    }
}

/// Errors of the stocktake.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A node operation failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The report cites a document or change this node does not hold.
    #[error(
        "cannot verify: this node does not hold {0} as the report cites it; sync with the node that made the report, then verify again"
    )]
    Missing(String),
    /// The file is not a report this version reads.
    #[error("{0}")]
    NotAReport(String),
    /// No cycle given and none found.
    #[error("this node holds no targets yet: give --cycle (BMS9, BMS10...)")]
    NoCycle,
    /// A bad value.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// What a report says it was computed from: enough to compute it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// [`FORMAT`].
    pub format: String,
    /// The cycle.
    pub cycle: String,
    /// The date statuses were judged at.
    pub as_of: Date,
    /// The documents and heads read.
    pub sources: Vec<Cited>,
}

impl Stamp {
    fn of(st: &Stocktake) -> Stamp {
        Stamp {
            format: st.format.clone(),
            cycle: st.cycle.clone(),
            as_of: st.as_of,
            sources: st.sources.clone(),
        }
    }

    fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn parse_heads(doc: &str, heads: &[String]) -> Result<Vec<ChangeHash>, ReportError> {
    heads
        .iter()
        .map(|h| {
            h.parse::<ChangeHash>()
                .map_err(|_| ReportError::NotAReport(format!("{doc}: '{h}' is not a change hash")))
        })
        .collect()
}

/// Reads a document's view at `heads` (as its changes in their causal past make it), or as it
/// stands now: `None` if the node lacks the document or any of the heads.
fn at_heads<T>(
    node: &Node,
    doc: &DocId,
    heads: Option<&[ChangeHash]>,
    read: impl FnOnce(&Json) -> T,
) -> Result<Option<(Vec<ChangeHash>, T)>, ReportError> {
    let key = node.store.trust().key_for_doc(doc).copied();
    let out = node
        .store
        .with_ledger(doc, |l| {
            let settled = match heads {
                Some(h) => l.view_at(h, key.as_ref())?,
                None => l.settled()?.clone(),
            };
            let data = read(&settled.view);
            Some((settled.heads, data))
        })
        .map_err(NodeError::from)?;
    Ok(out.flatten())
}

/// What this node holds, as the stocktake reads it: every State's published document, every
/// pool and every offers document, at their current heads, or, for `verify`, exactly the
/// documents a report cites at the heads it cites.
pub fn input(node: &Node, cited: Option<&[Cited]>) -> Result<Input, ReportError> {
    let wanted: Vec<(DocId, Option<Vec<ChangeHash>>)> = match cited {
        Some(list) => list
            .iter()
            .map(|c| {
                let doc: DocId = c.doc.parse().map_err(|e: poa_protocol::doc::DocIdError| {
                    ReportError::NotAReport(e.to_string())
                })?;
                Ok((doc, Some(parse_heads(&c.doc, &c.heads)?)))
            })
            .collect::<Result<_, ReportError>>()?,
        None => node
            .store
            .doc_ids()
            .map_err(NodeError::from)?
            .into_iter()
            .filter(|d| !d.is_draft())
            .map(|d| (d, None))
            .collect(),
    };
    let mut input = Input::default();
    for (doc, heads) in wanted {
        let missing = || ReportError::Missing(doc.to_string());
        let strict = heads.is_some();
        match &doc {
            DocId::State(s) => {
                match at_heads(node, &doc, heads.as_deref(), StateData::from_json)? {
                    Some((heads, data)) => {
                        input.states.insert(*s, Source { heads, data });
                    }
                    None if strict => return Err(missing()),
                    None => {}
                }
            }
            DocId::Pool(id) => {
                let trust = node.store.trust();
                match at_heads(node, &doc, heads.as_deref(), |v| {
                    PoolData::from_json(v, id, &trust)
                })? {
                    Some((heads, data)) if !data.owner.is_empty() || strict => {
                        input.pools.insert(id.to_string(), Source { heads, data });
                    }
                    Some(_) => {}
                    None if strict => return Err(missing()),
                    None => {}
                }
            }
            DocId::Offers(p) => {
                match at_heads(node, &doc, heads.as_deref(), OffersData::from_json)? {
                    Some((heads, data)) => {
                        input.offers.insert(p.clone(), Source { heads, data });
                    }
                    None if strict => return Err(missing()),
                    None => {}
                }
            }
            _ if strict => {
                return Err(ReportError::NotAReport(format!(
                    "a stocktake does not read {doc}"
                )));
            }
            _ => {}
        }
    }
    Ok(input)
}

/// The latest cycle any held target belongs to.
pub fn default_cycle(node: &Node) -> Result<Cycle, ReportError> {
    let input = input(node, None)?;
    input
        .states
        .values()
        .flat_map(|s| s.data.targets.values().map(|t| t.cycle))
        .max()
        .ok_or(ReportError::NoCycle)
}

/// Computes the stocktake of `cycle` on what this node holds now.
pub fn compute(node: &Node, cycle: Cycle, as_of: Date) -> Result<Stocktake, ReportError> {
    Ok(stocktake(&input(node, None)?, cycle, as_of))
}

/// Renders a stocktake.
pub fn render(st: &Stocktake, format: Format) -> String {
    match format {
        Format::Json => st.to_json(),
        Format::Md => markdown(st),
        Format::Csv => csv(st),
        Format::SdgCsv => sdg_csv(st),
        Format::Html => html_report(st),
    }
}

/// What `verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The report is what this node computes from the documents it cites.
    Matches {
        /// Documents read.
        documents: usize,
    },
    /// It is not: the first line that differs.
    Differs {
        /// Line number, from 1.
        line: usize,
        /// What the report says.
        report: String,
        /// What this node computes.
        computed: String,
    },
}

/// Recomputes a report (JSON, Markdown or HTML) from this node's copies of the documents it
/// cites, at the heads it cites, and compares the two byte for byte.
pub fn verify(node: &Node, text: &str) -> Result<Verdict, ReportError> {
    let (format, stamp) = if text.trim_start().starts_with('{') {
        let st: Stocktake = serde_json::from_str(text)
            .map_err(|e| ReportError::NotAReport(format!("not a stocktake JSON report: {e}")))?;
        (Format::Json, Stamp::of(&st))
    } else {
        let format = if text.trim_start().starts_with("<!DOCTYPE html>") {
            Format::Html
        } else {
            Format::Md
        };
        let start = text.rfind(STAMP_OPEN).ok_or_else(|| {
            ReportError::NotAReport(
                "no stocktake stamp found: verify reads the JSON, Markdown or HTML reports `poa-node stocktake` writes".into(),
            )
        })? + STAMP_OPEN.len();
        let end = text[start..]
            .find(STAMP_CLOSE)
            .ok_or_else(|| ReportError::NotAReport("the stocktake stamp is cut short".into()))?;
        let stamp: Stamp = serde_json::from_str(&text[start..start + end])
            .map_err(|e| ReportError::NotAReport(format!("the stocktake stamp is damaged: {e}")))?;
        (format, stamp)
    };
    if stamp.format != FORMAT {
        return Err(ReportError::NotAReport(format!(
            "the report is in format {}, this node reads {FORMAT}",
            stamp.format
        )));
    }
    let cycle: Cycle = stamp.cycle.parse()?;
    let input = input(node, Some(&stamp.sources))?;
    let again = render(&stocktake(&input, cycle, stamp.as_of), format);
    if again == text {
        return Ok(Verdict::Matches {
            documents: stamp.sources.len(),
        });
    }
    let (mut a, mut b) = (text.lines(), again.lines());
    let mut line = 1;
    loop {
        match (a.next(), b.next()) {
            (Some(x), Some(y)) if x == y => line += 1,
            (x, y) => {
                return Ok(Verdict::Differs {
                    line,
                    report: x.unwrap_or("(end of file)").to_string(),
                    computed: y.unwrap_or("(end of file)").to_string(),
                });
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Text renderings
// ---------------------------------------------------------------------------------------------

const STAMP_OPEN: &str = "<!-- poa-stocktake ";
const STAMP_CLOSE: &str = " -->";

/// A number as people write it: no trailing `.0`, thousands grouped.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let (int, frac) = if v.fract() == 0.0 && v.abs() < 1e15 {
        (format!("{}", v.abs() as i64), String::new())
    } else {
        let s = format!("{:.2}", v.abs());
        let (i, f) = s.split_once('.').unwrap_or((&s, ""));
        let f = f.trim_end_matches('0');
        (
            i.to_string(),
            if f.is_empty() {
                String::new()
            } else {
                format!(".{f}")
            },
        )
    };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{}{grouped}{frac}", if v < 0.0 { "-" } else { "" })
}

fn opt(v: Option<f64>) -> String {
    v.map(num).unwrap_or_else(|| "-".into())
}

fn pct(v: Option<f64>) -> String {
    v.map(|s| format!("{:.0} %", s * 100.0))
        .unwrap_or_else(|| "-".into())
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn md_table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} |",
            r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
        );
    }
    out.push('\n');
}

fn count_cells(c: &Counts) -> Vec<String> {
    vec![
        c.targets.to_string(),
        c.achieved.to_string(),
        c.in_progress.to_string(),
        c.not_achieved.to_string(),
        c.no_data.to_string(),
        c.withdrawn.to_string(),
        pct(c.share_achieved),
    ]
}

const COUNT_HEADER: [&str; 7] = [
    "targets",
    "achieved",
    "in progress",
    "not achieved",
    "no data",
    "withdrawn",
    "share achieved",
];

fn markdown(st: &Stocktake) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Stocktake {}: {}\n", st.cycle, st.meeting);
    let _ = writeln!(
        o,
        "Statuses as of {}. Computed from {} documents at the heads listed under Sources; any node holding them computes this report byte for byte (`poa-node stocktake verify FILE`). Aggregates only: States are listed by code, never ranked.\n",
        st.as_of,
        st.sources.len()
    );
    let t = &st.totals;
    let _ = writeln!(o, "## Key figures\n");
    let _ = writeln!(
        o,
        "- States that reported progress: {} ({})",
        st.participation.reported.len(),
        list(&st.participation.reported)
    );
    let _ = writeln!(
        o,
        "- States with targets but no progress report yet: {}",
        list(&st.participation.targets_only)
    );
    let _ = writeln!(
        o,
        "- States whose data is held, with no target for {}: {}",
        st.cycle,
        list(&st.participation.no_targets)
    );
    let _ = writeln!(
        o,
        "- Pool members whose data this node does not hold: {}",
        list(&st.participation.not_held)
    );
    let _ = writeln!(
        o,
        "- Targets: {}; achieved {}, in progress {}, not achieved {}, no data {}, withdrawn {}",
        t.targets, t.achieved, t.in_progress, t.not_achieved, t.no_data, t.withdrawn
    );
    let _ = writeln!(o, "- Share achieved: {}", pct(t.share_achieved));
    let _ = writeln!(
        o,
        "- Requests for assistance: {} unmet, {} matched\n",
        st.unmet_needs.len(),
        st.met_needs
    );

    let _ = writeln!(o, "## Targets by commitment area\n");
    let mut h = vec!["area"];
    h.extend(COUNT_HEADER);
    let rows: Vec<Vec<String>> = st
        .by_area
        .iter()
        .map(|a| {
            let mut r = vec![a.label.clone()];
            r.extend(count_cells(&a.counts));
            r
        })
        .collect();
    md_table(&mut o, &h, &rows);

    let _ = writeln!(o, "## Progression\n");
    if st.progression.is_empty() {
        let _ = writeln!(o, "No target follows an earlier one.\n");
    } else {
        let rows: Vec<Vec<String>> = st
            .progression
            .iter()
            .map(|p| {
                vec![
                    p.state.clone(),
                    p.target.clone(),
                    p.against.clone(),
                    p.flag.clone(),
                    p.detail.clone(),
                ]
            })
            .collect();
        md_table(
            &mut o,
            &["State", "target", "compared with", "flag", "detail"],
            &rows,
        );
    }

    let _ = writeln!(o, "## Unmet requests for assistance\n");
    if st.unmet_needs.is_empty() {
        let _ = writeln!(o, "None.\n");
    } else {
        let rows: Vec<Vec<String>> = st
            .unmet_needs
            .iter()
            .map(|n| {
                vec![
                    n.need.clone(),
                    n.area.clone(),
                    n.kind.clone(),
                    n.priority.clone(),
                    n.title.clone(),
                    list(&n.matches),
                ]
            })
            .collect();
        md_table(
            &mut o,
            &["request", "area", "kind", "priority", "title", "matches"],
            &rows,
        );
    }

    let _ = writeln!(o, "## Pools\n");
    if st.pools.is_empty() {
        let _ = writeln!(o, "No pools.\n");
    }
    for p in &st.pools {
        let _ = writeln!(
            o,
            "### {} ({})\n",
            p.name.clone().unwrap_or_else(|| p.id.clone()),
            p.id
        );
        let _ = writeln!(
            o,
            "Coordinator {}; members {}. Members' targets for {}: {} of {} achieved ({}).\n",
            p.coordinator.clone().unwrap_or_else(|| "-".into()),
            list(&p.members),
            st.cycle,
            p.counts.achieved,
            p.counts.targets,
            pct(p.counts.share_achieved)
        );
        for r in &p.pooled {
            let _ = writeln!(
                o,
                "- **{} {}** ({} of {}): baseline {}, goal {}, current {}{}; {}",
                r.id,
                r.title,
                r.aggregate,
                r.from,
                opt(r.baseline),
                opt(r.goal),
                opt(r.current),
                r.unit.as_ref().map(|u| format!(" {u}")).unwrap_or_default(),
                match r.reached {
                    Some(true) => "reached",
                    Some(false) => "not reached",
                    None => "cannot tell yet",
                }
            );
            for m in &r.members {
                let _ = match &m.missing {
                    None => writeln!(o, "  - {}: {}", m.state, opt(m.value)),
                    Some(why) => writeln!(o, "  - {}: not counted ({why})", m.state),
                };
            }
        }
        o.push('\n');
    }

    let _ = writeln!(o, "## SDG 16.4.2 ({SDG_SERIES})\n");
    if st.sdg_16_4_2.is_empty() {
        let _ = writeln!(o, "No figures reported.\n");
    } else {
        let rows: Vec<Vec<String>> = st
            .sdg_16_4_2
            .iter()
            .map(|r| {
                vec![
                    r.state.clone(),
                    r.m49
                        .map(|m| format!("{m:03}"))
                        .unwrap_or_else(|| "-".into()),
                    r.year.to_string(),
                    num(r.value),
                    r.target.clone(),
                ]
            })
            .collect();
        md_table(
            &mut o,
            &["State", "M49", "year", "percent", "target"],
            &rows,
        );
    }

    let _ = writeln!(o, "## Data quality\n");
    if st.data_quality.is_empty() {
        let _ = writeln!(o, "No flags.\n");
    } else {
        let rows: Vec<Vec<String>> = st
            .data_quality
            .iter()
            .map(|f| {
                vec![
                    f.state.clone(),
                    f.record.clone(),
                    f.flag.clone(),
                    f.detail.clone(),
                ]
            })
            .collect();
        md_table(&mut o, &["State", "record", "flag", "detail"], &rows);
    }

    let _ = writeln!(o, "## Trends across cycles\n");
    let mut h = vec!["cycle", "States"];
    h.extend(COUNT_HEADER);
    let rows: Vec<Vec<String>> = st
        .trends
        .iter()
        .map(|p| {
            let mut r = vec![p.cycle.clone(), p.states.to_string()];
            r.extend(count_cells(&p.counts));
            r
        })
        .collect();
    md_table(&mut o, &h, &rows);

    let _ = writeln!(o, "## Targets\n");
    let rows: Vec<Vec<String>> = st
        .targets
        .iter()
        .map(|t| {
            vec![
                t.state.clone(),
                format!("{} v{}", t.id, t.version),
                t.area.clone(),
                t.title.clone(),
                opt(t.baseline),
                opt(t.value),
                opt(t.latest),
                t.deadline.to_string(),
                t.standing.slug().into(),
            ]
        })
        .collect();
    md_table(
        &mut o,
        &[
            "State", "target", "area", "title", "baseline", "goal", "latest", "deadline", "status",
        ],
        &rows,
    );

    let _ = writeln!(o, "## Sources\n");
    let rows: Vec<Vec<String>> = st
        .sources
        .iter()
        .map(|s| vec![s.doc.clone(), s.heads.join(" ")])
        .collect();
    md_table(&mut o, &["document", "heads"], &rows);
    let _ = writeln!(o, "{STAMP_OPEN}{}{STAMP_CLOSE}", Stamp::of(st).text());
    o
}

/// A CSV cell. Text that a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return) is prefixed with `'`, so a title written by a State cannot
/// become a formula on an analyst's machine; numbers are left as they are.
fn csv_field(s: &str) -> String {
    let formula = s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.parse::<f64>().is_err();
    let s = if formula {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn csv_row(out: &mut String, cells: &[String]) {
    let _ = writeln!(
        out,
        "{}",
        cells
            .iter()
            .map(|c| csv_field(c))
            .collect::<Vec<_>>()
            .join(",")
    );
}

fn raw(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn csv(st: &Stocktake) -> String {
    let mut o = String::new();
    csv_row(
        &mut o,
        &[
            "cycle",
            "as_of",
            "state",
            "target",
            "version",
            "area",
            "title",
            "kind",
            "unit",
            "baseline",
            "goal",
            "latest",
            "latest_as_of",
            "deadline",
            "status",
            "progression",
        ]
        .map(String::from),
    );
    for t in &st.targets {
        let flag = st
            .progression
            .iter()
            .find(|p| p.state == t.state && p.target == format!("{} v{}", t.id, t.version))
            .map(|p| p.flag.clone())
            .unwrap_or_default();
        csv_row(
            &mut o,
            &[
                st.cycle.clone(),
                st.as_of.to_string(),
                t.state.clone(),
                t.id.clone(),
                t.version.to_string(),
                t.area.clone(),
                t.title.clone(),
                t.kind.clone(),
                t.unit.clone().unwrap_or_default(),
                raw(t.baseline),
                raw(t.value),
                raw(t.latest),
                t.latest_as_of.map(|d| d.to_string()).unwrap_or_default(),
                t.deadline.to_string(),
                t.standing.slug().into(),
                flag,
            ],
        );
    }
    o
}

fn sdg_csv(st: &Stocktake) -> String {
    let mut o = String::new();
    csv_row(
        &mut o,
        &[
            "Indicator",
            "SeriesCode",
            "GeoAreaCode",
            "GeoAreaName",
            "TimePeriod",
            "Value",
            "Units",
            "Source",
        ]
        .map(String::from),
    );
    for r in &st.sdg_16_4_2 {
        csv_row(
            &mut o,
            &[
                "16.4.2".into(),
                SDG_SERIES.into(),
                r.m49.map(|m| format!("{m:03}")).unwrap_or_default(),
                r.state.clone(),
                r.year.to_string(),
                r.value.to_string(),
                "PERCENT".into(),
                format!("state/{} target {}", r.state, r.target),
            ],
        );
    }
    o
}

// ---------------------------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------------------------

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The colour of each standing in charts (distinguishable in grey when printed, with labels).
pub fn colour(s: Standing) -> &'static str {
    match s {
        Standing::Achieved => "#1b7837",
        Standing::InProgress => "#2166ac",
        Standing::NotAchieved => "#b2182b",
        Standing::NoData => "#969696",
        Standing::Withdrawn => "#d9d9d9",
    }
}

/// The page's stylesheet: readable on screen, clean on paper.
pub const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1a1a1a;background:#fafafa}
header{background:#0b3d5c;color:#fff;padding:1rem 2rem}header h1{margin:0;font-size:1.5rem}header p{margin:.25rem 0 0;opacity:.85}
nav{background:#e8eef2;padding:.5rem 2rem}nav a{margin-right:1.2rem;color:#0b3d5c;text-decoration:none;font-weight:600}
main{padding:1rem 2rem;max-width:72rem}
section{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:1rem 1.25rem;margin:1rem 0;break-inside:avoid}
h2{font-size:1.15rem;margin:.2rem 0 .8rem;color:#0b3d5c}
.figures{display:flex;flex-wrap:wrap;gap:1rem}.figure{flex:1 1 9rem;border-left:4px solid #0b3d5c;padding:.3rem .8rem;background:#f4f7f9}
.figure b{display:block;font-size:1.6rem}.figure span{font-size:.85rem;color:#444}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f4f7f9}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.flag-shortfall{color:#b2182b;font-weight:600}.flag-progresses{color:#1b7837}
.legend span{display:inline-block;margin-right:1rem;font-size:.85rem}.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
.muted{color:#666;font-size:.85rem}code{font-size:.8rem;word-break:break-all}
@media print{body{background:#fff}nav{display:none}header{background:#fff;color:#000;border-bottom:2px solid #000}section{border:none;padding:0}main{max-width:none}}
";

/// A whole page around `body`.
pub fn page(title: &str, subtitle: &str, nav: &str, body: &str, stamp: Option<&str>) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<header><h1>{}</h1><p>{}</p></header>\n{nav}<main>\n{body}</main>\n",
        esc(title),
        esc(title),
        esc(subtitle)
    );
    if let Some(s) = stamp {
        let _ = writeln!(o, "{STAMP_OPEN}{s}{STAMP_CLOSE}");
    }
    o.push_str("</body>\n</html>\n");
    o
}

/// The key to the standings' colours.
pub fn legend() -> String {
    let mut o = String::from("<p class=\"legend\">");
    for s in Standing::ALL {
        let _ = write!(
            o,
            "<span><i style=\"background:{}\"></i>{}</span>",
            colour(s),
            s.slug()
        );
    }
    o.push_str("</p>");
    o
}

/// Horizontal stacked bars: one row per label, segments by standing.
pub fn chart_standings(id: &str, title: &str, rows: &[(String, Counts)]) -> String {
    let (w, label_w, row_h) = (720.0, 210.0, 26.0);
    let h = row_h * rows.len() as f64 + 10.0;
    let max = rows
        .iter()
        .map(|(_, c)| c.targets)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let scale = (w - label_w - 60.0) / max;
    let mut o = format!(
        "<svg id=\"{id}\" class=\"chart\" role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {w} {h}\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"12\">",
        esc(title)
    );
    let _ = write!(o, "<title>{}</title>", esc(title));
    for (i, (label, c)) in rows.iter().enumerate() {
        let y = 5.0 + i as f64 * row_h;
        let _ = write!(
            o,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            label_w - 8.0,
            y + 15.0,
            esc(label)
        );
        let mut x = label_w;
        for s in Standing::ALL {
            let n = c.of(s);
            if n == 0 {
                continue;
            }
            let bw = f64::from(n) * scale;
            let _ = write!(
                o,
                "<rect x=\"{x:.1}\" y=\"{y}\" width=\"{bw:.1}\" height=\"{}\" fill=\"{}\"><title>{}: {n} {}</title></rect>",
                row_h - 6.0,
                colour(s),
                esc(label),
                s.slug()
            );
            if bw >= 16.0 {
                let _ = write!(
                    o,
                    "<text x=\"{:.1}\" y=\"{}\" fill=\"#fff\" text-anchor=\"middle\">{n}</text>",
                    x + bw / 2.0,
                    y + 15.0
                );
            }
            x += bw;
        }
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{}\">{}</text>",
            x + 6.0,
            y + 15.0,
            c.targets
        );
    }
    o.push_str("</svg>");
    o
}

/// One bar per pooled target: current against goal, baseline marked.
pub fn chart_pooled(st: &Stocktake) -> String {
    let rows: Vec<(String, &poa_protocol::stocktake::PooledRow)> = st
        .pools
        .iter()
        .flat_map(|p| {
            p.pooled
                .iter()
                .map(move |r| (format!("{} {}", p.id, r.id), r))
        })
        .collect();
    let (w, label_w, row_h) = (720.0, 210.0, 34.0);
    let h = row_h * rows.len().max(1) as f64 + 10.0;
    let mut o = format!(
        "<svg id=\"chart-pooled\" class=\"chart\" role=\"img\" aria-label=\"Progress of pooled targets\" viewBox=\"0 0 {w} {h}\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"12\"><title>Progress of pooled targets</title>"
    );
    if rows.is_empty() {
        let _ = write!(o, "<text x=\"10\" y=\"20\">No pooled targets.</text>");
    }
    let bar_w = w - label_w - 170.0;
    for (i, (label, r)) in rows.iter().enumerate() {
        let y = 5.0 + i as f64 * row_h;
        let top = r.goal.unwrap_or(0.0).max(r.current.unwrap_or(0.0)).max(1.0);
        let _ = write!(
            o,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{label_w}\" y=\"{y}\" width=\"{bar_w}\" height=\"22\" fill=\"#e8eef2\"/>",
            label_w - 8.0,
            y + 15.0,
            esc(label)
        );
        if let Some(c) = r.current {
            let cw = (c / top).clamp(0.0, 1.0) * bar_w;
            let _ = write!(
                o,
                "<rect x=\"{label_w}\" y=\"{y}\" width=\"{cw:.1}\" height=\"22\" fill=\"{}\"><title>current {}</title></rect>",
                colour(Standing::InProgress),
                num(c)
            );
        }
        if let Some(g) = r.goal {
            let gx = label_w + (g / top).clamp(0.0, 1.0) * bar_w;
            let _ = write!(
                o,
                "<line x1=\"{gx:.1}\" x2=\"{gx:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#1a1a1a\" stroke-width=\"2\"><title>goal {}</title></line>",
                y - 2.0,
                y + 24.0,
                num(g)
            );
        }
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{}\">{} of {}{}</text>",
            label_w + bar_w + 8.0,
            y + 15.0,
            opt(r.current),
            opt(r.goal),
            r.unit
                .as_ref()
                .map(|u| format!(" {}", esc(u)))
                .unwrap_or_default()
        );
    }
    o.push_str("</svg>");
    o
}

fn figures(st: &Stocktake) -> String {
    let t = &st.totals;
    let items = [
        (t.targets.to_string(), "targets for the cycle"),
        (
            st.participation.reported.len().to_string(),
            "States reported progress",
        ),
        (pct(t.share_achieved), "share achieved"),
        (t.no_data.to_string(), "targets with no data"),
        (st.unmet_needs.len().to_string(), "unmet requests"),
    ];
    let mut o = String::from("<div class=\"figures\">");
    for (n, label) in items {
        let _ = write!(
            o,
            "<div class=\"figure\"><b>{}</b><span>{}</span></div>",
            esc(&n),
            label
        );
    }
    o.push_str("</div>");
    o
}

/// An HTML table: `rows` are cells of HTML (escape text first); `numeric` columns align right.
pub fn html_table(header: &[&str], numeric: &[usize], rows: &[Vec<String>]) -> String {
    let mut o = String::from("<table><thead><tr>");
    for (i, h) in header.iter().enumerate() {
        let class = if numeric.contains(&i) {
            " class=\"n\""
        } else {
            ""
        };
        let _ = write!(o, "<th{class}>{}</th>", esc(h));
    }
    o.push_str("</tr></thead><tbody>");
    for r in rows {
        o.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let class = if numeric.contains(&i) {
                " class=\"n\""
            } else {
                ""
            };
            let _ = write!(o, "<td{class}>{c}</td>");
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table>");
    o
}

/// The body of the stocktake page (the report and the dashboard's front page).
pub fn stocktake_body(st: &Stocktake) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<section id=\"key-figures\"><h2>Key figures</h2>{}<p class=\"muted\">States that reported: {}. Targets but no report yet: {}. Data held, no target for {}: {}. Pool members whose data is not held here: {}.</p></section>",
        figures(st),
        esc(&list(&st.participation.reported)),
        esc(&list(&st.participation.targets_only)),
        esc(&st.cycle),
        esc(&list(&st.participation.no_targets)),
        esc(&list(&st.participation.not_held))
    );
    let rows: Vec<(String, Counts)> = st
        .by_area
        .iter()
        .map(|a| (a.label.clone(), a.counts.clone()))
        .collect();
    let _ = write!(
        o,
        "<section id=\"by-area\"><h2>Status by commitment area</h2>{}{}</section>",
        legend(),
        chart_standings("chart-areas", "Status of targets by commitment area", &rows)
    );
    let _ = write!(
        o,
        "<section id=\"pooled\"><h2>Pooled targets</h2>{}",
        chart_pooled(st)
    );
    for p in &st.pools {
        for r in &p.pooled {
            let rows: Vec<Vec<String>> = r
                .members
                .iter()
                .map(|m| {
                    vec![
                        esc(&m.state),
                        opt(m.value),
                        esc(m.missing.as_deref().unwrap_or("counted")),
                    ]
                })
                .collect();
            let _ = write!(
                o,
                "<p><b>{} {}</b> ({} of {}): baseline {}, goal {}, current {}.</p>{}",
                esc(&p.id),
                esc(&r.title),
                esc(&r.aggregate),
                esc(&r.from),
                opt(r.baseline),
                opt(r.goal),
                opt(r.current),
                html_table(&["member", "figure", "note"], &[1], &rows)
            );
        }
    }
    o.push_str("</section>");
    let rows: Vec<(String, Counts)> = st
        .trends
        .iter()
        .map(|t| (t.cycle.clone(), t.counts.clone()))
        .collect();
    let _ = write!(
        o,
        "<section id=\"trends\"><h2>Trends across cycles</h2>{}{}</section>",
        legend(),
        chart_standings("chart-trends", "Targets by status, cycle by cycle", &rows)
    );
    let rows: Vec<(String, Counts)> = st
        .pools
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_else(|| p.id.clone()),
                p.counts.clone(),
            )
        })
        .collect();
    if !rows.is_empty() {
        let _ = write!(
            o,
            "<section id=\"regional\"><h2>Regional view by pool</h2>{}</section>",
            chart_standings(
                "chart-regional",
                "Members' targets by status, by pool",
                &rows
            )
        );
    }
    let rows: Vec<Vec<String>> = st
        .progression
        .iter()
        .map(|p| {
            vec![
                esc(&p.state),
                esc(&p.target),
                esc(&p.against),
                format!(
                    "<span class=\"flag-{}\">{}</span>",
                    esc(&p.flag),
                    esc(&p.flag)
                ),
                esc(&p.detail),
            ]
        })
        .collect();
    let _ = write!(
        o,
        "<section id=\"progression\"><h2>Progression</h2>{}</section>",
        if rows.is_empty() {
            "<p>No target follows an earlier one.</p>".into()
        } else {
            html_table(
                &["State", "target", "compared with", "flag", "detail"],
                &[],
                &rows,
            )
        }
    );
    let rows: Vec<Vec<String>> = st
        .unmet_needs
        .iter()
        .map(|n| {
            vec![
                esc(&n.need),
                esc(&n.area),
                esc(&n.kind),
                esc(&n.priority),
                esc(&n.title),
                esc(&list(&n.matches)),
            ]
        })
        .collect();
    let _ = write!(
        o,
        "<section id=\"unmet\"><h2>Unmet requests for assistance</h2>{}<p class=\"muted\">{} request(s) matched.</p></section>",
        if rows.is_empty() {
            "<p>None.</p>".into()
        } else {
            html_table(
                &["request", "area", "kind", "priority", "title", "matches"],
                &[],
                &rows,
            )
        },
        st.met_needs
    );
    let rows: Vec<Vec<String>> = st
        .sdg_16_4_2
        .iter()
        .map(|r| {
            vec![
                esc(&r.state),
                r.m49
                    .map(|m| format!("{m:03}"))
                    .unwrap_or_else(|| "-".into()),
                r.year.to_string(),
                num(r.value),
                esc(&r.target),
            ]
        })
        .collect();
    let _ = write!(
        o,
        "<section id=\"sdg\"><h2>SDG 16.4.2 ({SDG_SERIES})</h2>{}</section>",
        if rows.is_empty() {
            "<p>No figures reported.</p>".into()
        } else {
            html_table(
                &["State", "M49", "year", "percent", "target"],
                &[2, 3],
                &rows,
            )
        }
    );
    let rows: Vec<Vec<String>> = st
        .data_quality
        .iter()
        .map(|f| vec![esc(&f.state), esc(&f.record), esc(&f.flag), esc(&f.detail)])
        .collect();
    let _ = write!(
        o,
        "<section id=\"quality\"><h2>Data quality</h2>{}</section>",
        if rows.is_empty() {
            "<p>No flags.</p>".into()
        } else {
            html_table(&["State", "record", "flag", "detail"], &[], &rows)
        }
    );
    let rows: Vec<Vec<String>> = st
        .targets
        .iter()
        .map(|t| {
            vec![
                esc(&t.state),
                format!("{} v{}", esc(&t.id), t.version),
                esc(&t.area),
                esc(&t.title),
                opt(t.baseline),
                opt(t.value),
                opt(t.latest),
                t.deadline.to_string(),
                format!(
                    "<span style=\"color:{}\">{}</span>",
                    colour(t.standing),
                    t.standing.slug()
                ),
            ]
        })
        .collect();
    let _ = write!(
        o,
        "<section id=\"targets\"><h2>Targets</h2>{}</section>",
        html_table(
            &[
                "State", "target", "area", "title", "baseline", "goal", "latest", "deadline",
                "status"
            ],
            &[4, 5, 6],
            &rows
        )
    );
    let rows: Vec<Vec<String>> = st
        .sources
        .iter()
        .map(|s| {
            vec![
                esc(&s.doc),
                format!("<code>{}</code>", esc(&s.heads.join(" "))),
            ]
        })
        .collect();
    let _ = write!(
        o,
        "<section id=\"sources\"><h2>Sources</h2><p class=\"muted\">Statuses as of {}. Any node holding these documents at these heads computes this report byte for byte: <code>poa-node stocktake verify FILE</code>.</p>{}</section>",
        st.as_of,
        html_table(&["document", "heads"], &[], &rows)
    );
    o
}

fn html_report(st: &Stocktake) -> String {
    page(
        &format!("Stocktake {}", st.cycle),
        &format!("{}: statuses as of {}", st.meeting, st.as_of),
        "",
        &stocktake_body(st),
        Some(&Stamp::of(st).text()),
    )
}

/// Parses a State code for the dashboard's paths.
pub fn state_code(s: &str) -> Option<StateCode> {
    s.parse().ok()
}

#[cfg(test)]
mod csv_tests {
    #[test]
    fn formulas_are_neutralised_and_numbers_are_not() {
        assert_eq!(
            super::csv_field("=HYPERLINK(\"x\")"),
            "\"'=HYPERLINK(\"\"x\"\")\""
        );
        assert_eq!(super::csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(super::csv_field("-5"), "-5");
        assert_eq!(super::csv_field("+2.5"), "+2.5");
        assert_eq!(super::csv_field("Mark SALW"), "Mark SALW");
    }
}
