//! A State's targets and progress reports (`target`, `progress`), and the reference lists they
//! cite (`reference`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use poa_protocol::model::{
    Area, Assessment, CYCLES, Cycle, Direction, Evidence, Indicator, IndicatorKind, MOSAIC_MODULES,
    Mosaic, Progress, Target,
};
use poa_protocol::submission::summary;
use poa_protocol::view::TargetView;
use poa_protocol::{Date, StateCode};
use serde_json::json;

use super::{open, print_json};
use crate::format::{opt, print_table, safe};
use crate::node::today;

/// Fields of a target shared by `add` and `supersede`.
#[derive(Debug, Args, Default)]
pub struct TargetFields {
    /// Reporting cycle: BMS7, BMS8, RevCon4, BMS9, BMS10, RevCon5.
    #[arg(long)]
    pub cycle: Option<Cycle>,
    /// Commitment area (see `poa-node reference areas`).
    #[arg(long)]
    pub area: Option<Area>,
    /// One-line title.
    #[arg(long)]
    pub title: Option<String>,
    /// Longer description.
    #[arg(long)]
    pub description: Option<String>,
    /// Indicator kind: quantitative (default), milestone or yes-no.
    #[arg(long = "kind")]
    pub kind: Option<IndicatorKind>,
    /// What is measured, in words.
    #[arg(long)]
    pub indicator: Option<String>,
    /// Unit of a quantitative indicator (percent, weapons, depots).
    #[arg(long)]
    pub unit: Option<String>,
    /// increase, decrease or reach.
    #[arg(long)]
    pub direction: Option<Direction>,
    /// Baseline value.
    #[arg(long, allow_negative_numbers = true)]
    pub baseline: Option<f64>,
    /// Year of the baseline.
    #[arg(long)]
    pub baseline_year: Option<i32>,
    /// Where the baseline comes from.
    #[arg(long)]
    pub baseline_source: Option<String>,
    /// Target value.
    #[arg(long, allow_negative_numbers = true)]
    pub value: Option<f64>,
    /// Deadline (YYYY-MM-DD).
    #[arg(long)]
    pub deadline: Option<Date>,
    /// MOSAIC module cited (repeat, or separate with commas): 05.30.
    #[arg(long, value_delimiter = ',')]
    pub mosaic: Vec<Mosaic>,
    /// PoA/ITI paragraph reference (repeat): "ITI 8", "PoA II.4".
    #[arg(long = "ref")]
    pub refs: Vec<String>,
    /// SDG target or indicator served: 16.4.2.
    #[arg(long)]
    pub sdg: Option<String>,
    /// Assistance request the target depends on (repeat): R1.
    #[arg(long, value_delimiter = ',')]
    pub conditional_on: Vec<String>,
}

/// Target commands.
#[derive(Debug, Subcommand)]
pub enum TargetCmd {
    /// Add a target to this State's draft.
    #[command(after_help = "Examples:\n  \
poa-node target add --id T1 --cycle BMS9 --area marking --title \"Mark State-held SALW\" \\\n      \
--indicator \"share of State-held SALW marked\" --unit percent --direction increase \\\n      \
--baseline 40 --baseline-year 2023 --value 70 --deadline 2026-06-30 --mosaic 05.30 --ref \"ITI 8\"\n  \
poa-node target add --id T2 --cycle BMS9 --area coordination --kind milestone \\\n      \
--title \"National coordination commission established\" --indicator \"commission established\" \\\n      \
--deadline 2026-06-30 --mosaic 03.40 --ref \"PoA II.4\"")]
    Add {
        /// The State's own id for it: T1.
        #[arg(long)]
        id: String,
        /// The target's fields.
        #[command(flatten)]
        fields: TargetFields,
    },
    /// List targets (this State's, or another's that this node holds).
    List {
        /// Another State whose published targets this node holds.
        #[arg(long)]
        state: Option<StateCode>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a target with every version and its progress.
    Show {
        /// The target id.
        id: String,
        /// Another State whose published target this node holds.
        #[arg(long)]
        state: Option<StateCode>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a new version of a target; the old one stays readable, marked superseded.
    #[command(after_help = "Example:\n  \
poa-node target supersede T1 --value 75 --reason \"marking ahead of plan\"")]
    Supersede {
        /// The target id.
        id: String,
        /// Why it changes.
        #[arg(long)]
        reason: Option<String>,
        /// Fields to change; the rest are kept.
        #[command(flatten)]
        fields: TargetFields,
    },
    /// Correct a target that was never published (its latest version, in place in the draft).
    /// A published version is never edited: supersede or withdraw it.
    #[command(
        after_help = "Example:\n  poa-node target edit T1 --title \"Mark all State-held SALW\""
    )]
    Edit {
        /// The target id.
        id: String,
        /// Fields to change; the rest are kept.
        #[command(flatten)]
        fields: TargetFields,
    },
    /// Delete a target that was never published (its latest version, or the whole target if
    /// that is its first). A published one is withdrawn instead.
    Delete {
        /// The target id.
        id: String,
    },
    /// Publish a target: copy what the draft holds of it (versions, progress, withdrawal) to
    /// the State's published document.
    Publish {
        /// The target id.
        id: String,
    },
    /// Withdraw a target. Publish it again to publish the withdrawal.
    Withdraw {
        /// The target id.
        id: String,
    },
}

/// Fields of a progress report shared by `add` and `edit`.
#[derive(Debug, Args, Default)]
pub struct ProgressFields {
    /// Observed value.
    #[arg(long, allow_negative_numbers = true)]
    pub value: Option<f64>,
    /// on-track, off-track, achieved, not-started or no-data.
    #[arg(long)]
    pub assessment: Option<Assessment>,
    /// Narrative.
    #[arg(long)]
    pub note: Option<String>,
    /// Challenges met.
    #[arg(long)]
    pub challenges: Option<String>,
    /// Link to the evidence; needs --sha256 or --evidence-file.
    #[arg(long)]
    pub evidence: Option<String>,
    /// SHA-256 of the evidence (sha256sum FILE).
    #[arg(long)]
    pub sha256: Option<String>,
    /// The evidence file itself: its SHA-256 is computed (the file stays where it is; give
    /// --evidence with the address where readers find it).
    #[arg(long, value_name = "PATH")]
    pub evidence_file: Option<PathBuf>,
    /// Where the figures come from.
    #[arg(long)]
    pub source: Option<String>,
    /// Assistance received toward the target.
    #[arg(long)]
    pub assistance_received: Option<String>,
}

impl ProgressFields {
    /// The evidence these fields give, if any: the file's digest computed when a file is named.
    fn evidence(&self) -> anyhow::Result<Option<Evidence>> {
        let sha = match &self.evidence_file {
            Some(path) => {
                let digest = crate::evidence::sha256_file(path)?;
                if let Some(given) = &self.sha256
                    && !given.trim().eq_ignore_ascii_case(&digest)
                {
                    anyhow::bail!(
                        "--sha256 {given} is not the SHA-256 of {} ({digest}): give one or the other",
                        path.display()
                    );
                }
                Some(digest)
            }
            None => self.sha256.clone(),
        };
        let uri = match (&self.evidence, &self.evidence_file) {
            (Some(uri), _) => Some(uri.clone()),
            (None, Some(path)) => Some(path.display().to_string()),
            (None, None) => None,
        };
        Ok(Evidence::from_parts(uri, sha)?)
    }

    /// Writes the fields given over a report.
    fn apply(self, p: &mut Progress) -> anyhow::Result<()> {
        if let Some(e) = self.evidence()? {
            p.evidence = Some(e);
        }
        macro_rules! set_opt {
            ($($field:ident),*) => {$(if self.$field.is_some() { p.$field = self.$field; })*};
        }
        set_opt!(
            value,
            assessment,
            note,
            challenges,
            source,
            assistance_received
        );
        Ok(())
    }
}

/// Progress commands.
#[derive(Debug, Subcommand)]
pub enum ProgressCmd {
    /// Report progress on a target (goes to the draft; `target publish` publishes it).
    #[command(after_help = "Examples:\n  \
poa-node progress add T1 --as-of 2025-12-31 --value 55 --assessment on-track \\\n      \
--evidence https://example.org/xaa-marking-2025.pdf --evidence-file ./xaa-marking-2025.pdf\n  \
poa-node progress add T1 --as-of 2025-12-31 --value 55 \\\n      \
--evidence https://example.org/xaa-marking-2025.pdf --sha256 <64 hex characters>")]
    Add {
        /// The target id.
        target: String,
        /// The date the figures describe (YYYY-MM-DD).
        #[arg(long)]
        as_of: Date,
        /// The report's fields.
        #[command(flatten)]
        fields: ProgressFields,
    },
    /// Correct a progress report that was never published.
    #[command(after_help = "Example:\n  poa-node progress edit T1/2025-12-31 --value 56")]
    Edit {
        /// The report id: T1/2025-12-31.
        id: String,
        /// Fields to change; the rest are kept.
        #[command(flatten)]
        fields: ProgressFields,
    },
    /// Delete a progress report that was never published.
    Delete {
        /// The report id: T1/2025-12-31.
        id: String,
    },
    /// Withdraw a published progress report, with the reason (publish to send the withdrawal).
    /// It stays on record, marked withdrawn, and no longer counts anywhere.
    #[command(after_help = "Example:\n  \
poa-node progress withdraw T1/2025-12-31 --reason \"figures double-counted a depot\"")]
    Withdraw {
        /// The report id: T1/2025-12-31.
        id: String,
        /// Why, for those who read it.
        #[arg(long)]
        reason: String,
    },
}

/// Prints the checks' warnings on what was just written, one line each, on stderr.
pub(crate) fn print_warnings(node: &crate::node::Node) {
    for w in &node.warnings {
        eprintln!("{}", safe(&w.to_string()));
    }
}

/// Runs a `target` command.
pub fn target(home: Option<PathBuf>, cmd: TargetCmd) -> anyhow::Result<()> {
    let mut node = open(home)?;
    match cmd {
        TargetCmd::Add { id, fields } => {
            let t = build_target(id, fields)?;
            node.add_target(t.clone())?;
            print_warnings(&node);
            println!(
                "Added {} {} v1 to the draft. Publish it with `poa-node target publish {}`.",
                node.own_state()?,
                t.id,
                t.id
            );
        }
        TargetCmd::List { state, json } => print_targets(&node.target_views(state)?, json)?,
        TargetCmd::Show { id, state, json } => print_target(&node.target_view(state, &id)?, json)?,
        TargetCmd::Supersede { id, reason, fields } => {
            let v = node.supersede_target(&id, |t| {
                apply_fields(t, fields, reason);
                Ok(())
            })?;
            print_warnings(&node);
            println!(
                "Wrote {id} v{v}; v{} is kept, marked superseded. Publish with `poa-node target publish {id}`.",
                v - 1
            );
        }
        TargetCmd::Edit { id, fields } => {
            let v = node.edit_target(&id, |t| {
                let reason = t.reason.clone();
                apply_fields(t, fields, reason);
                Ok(())
            })?;
            print_warnings(&node);
            println!("Corrected {id} v{v} in the draft.");
        }
        TargetCmd::Delete { id } => {
            let v = node.delete_target(&id)?;
            if v == 1 {
                println!("Deleted {id} from the draft.");
            } else {
                println!(
                    "Deleted {id} v{v} from the draft; v{} is current again.",
                    v - 1
                );
            }
        }
        TargetCmd::Publish { id } => {
            let p = node.publish_target(&id)?;
            if p.is_empty() {
                println!("{id} is already published as it stands.");
            } else {
                println!("Published {id}: {}.", summary(&p));
            }
        }
        TargetCmd::Withdraw { id } => {
            node.withdraw_target(&id, today())?;
            println!(
                "Withdrew {id} in the draft. Publish the withdrawal with `poa-node target publish {id}`."
            );
        }
    }
    Ok(())
}

/// Runs a `progress` command.
pub fn progress(home: Option<PathBuf>, cmd: ProgressCmd) -> anyhow::Result<()> {
    match cmd {
        ProgressCmd::Add {
            target,
            as_of,
            fields,
        } => {
            let evidence = fields.evidence()?;
            let mut node = open(home)?;
            let id = node.add_progress(Progress {
                id: String::new(),
                target: target.clone(),
                target_version: 0,
                as_of,
                value: fields.value,
                assessment: fields.assessment,
                note: fields.note,
                challenges: fields.challenges,
                evidence,
                source: fields.source,
                assistance_received: fields.assistance_received,
            })?;
            print_warnings(&node);
            println!(
                "Recorded progress {id} in the draft. Publish it with `poa-node target publish {target}`."
            );
        }
        ProgressCmd::Edit { id, fields } => {
            // Read the evidence file before opening the node: a bad path writes nothing.
            fields.evidence()?;
            let mut node = open(home)?;
            node.edit_progress(&id, |p| {
                fields
                    .apply(p)
                    .map_err(|e| crate::node::NodeError::Input(e.to_string()))
            })?;
            print_warnings(&node);
            println!("Corrected progress {id} in the draft.");
        }
        ProgressCmd::Delete { id } => {
            open(home)?.delete_progress(&id)?;
            println!("Deleted progress {id} from the draft.");
        }
        ProgressCmd::Withdraw { id, reason } => {
            open(home)?.withdraw_progress(&id, &reason)?;
            println!(
                "Withdrew progress {id} in the draft. Publish the withdrawal with `poa-node submission publish`."
            );
        }
    }
    Ok(())
}

pub(crate) fn build_target(id: String, f: TargetFields) -> anyhow::Result<Target> {
    let missing =
        |what: &str| anyhow::anyhow!("target add needs --{what}; see `poa-node target add --help`");
    Ok(Target {
        id,
        // The node sets the State and version.
        state: "XAA".parse()?,
        version: 1,
        cycle: f.cycle.ok_or_else(|| missing("cycle"))?,
        area: f.area.ok_or_else(|| missing("area"))?,
        title: f.title.ok_or_else(|| missing("title"))?,
        description: f.description,
        indicator: Indicator {
            kind: f.kind.unwrap_or(IndicatorKind::Quantitative),
            text: f.indicator.ok_or_else(|| missing("indicator"))?,
            unit: f.unit,
            direction: f.direction,
        },
        baseline: f.baseline,
        baseline_year: f.baseline_year,
        baseline_source: f.baseline_source,
        value: f.value,
        deadline: f.deadline.ok_or_else(|| missing("deadline"))?,
        mosaic: f.mosaic,
        refs: f.refs,
        sdg: f.sdg,
        conditional_on: f.conditional_on,
        supersedes: None,
        reason: None,
    })
}

fn apply_fields(t: &mut Target, f: TargetFields, reason: Option<String>) {
    macro_rules! set {
        ($($field:ident => $target:expr),*) => {$(if let Some(v) = f.$field { $target = v.into(); })*};
    }
    set!(cycle => t.cycle, area => t.area, title => t.title, kind => t.indicator.kind,
         indicator => t.indicator.text, deadline => t.deadline);
    macro_rules! set_opt {
        ($($field:ident => $target:expr),*) => {$(if f.$field.is_some() { $target = f.$field; })*};
    }
    set_opt!(description => t.description, unit => t.indicator.unit,
             direction => t.indicator.direction, baseline => t.baseline,
             baseline_year => t.baseline_year, baseline_source => t.baseline_source,
             value => t.value, sdg => t.sdg);
    if !f.mosaic.is_empty() {
        t.mosaic = f.mosaic;
    }
    if !f.refs.is_empty() {
        t.refs = f.refs;
    }
    if !f.conditional_on.is_empty() {
        t.conditional_on = f.conditional_on;
    }
    t.reason = reason;
}

fn print_targets(views: &[TargetView], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&serde_json::Value::Array(
            views.iter().map(TargetView::to_json).collect(),
        ));
    }
    if views.is_empty() {
        println!("No targets. Add one with `poa-node target add --help`.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            let t = &v.current().target;
            let latest = v
                .progress
                .last()
                .map(|(p, _)| format!("{} @ {}", opt(p.value), p.as_of))
                .unwrap_or_else(|| "-".into());
            vec![
                t.id.clone(),
                format!("v{}", t.version),
                t.cycle.to_string(),
                t.area.to_string(),
                v.current().status.to_string(),
                format!(
                    "{} -> {} {}",
                    opt(t.baseline),
                    opt(t.value),
                    t.indicator.unit.clone().unwrap_or_default()
                )
                .trim_end()
                .to_string(),
                t.deadline.to_string(),
                latest,
                t.title.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "VER",
            "CYCLE",
            "AREA",
            "STATUS",
            "BASELINE -> TARGET",
            "DEADLINE",
            "LATEST",
            "TITLE",
        ],
        &rows,
    );
    Ok(())
}

fn print_target(v: &TargetView, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&v.to_json());
    }
    let t = &v.current().target;
    println!("{} {} — {}", t.state, t.id, safe(&t.title));
    println!(
        "  cycle {}  area {}  status {}  {}",
        t.cycle,
        t.area.label(),
        v.current().status,
        if v.current().published {
            "published"
        } else {
            "not published"
        }
    );
    println!(
        "  indicator: {} ({})",
        safe(&t.indicator.text),
        t.indicator.kind
    );
    for ver in &v.versions {
        let t = &ver.target;
        println!(
            "  v{}  {:<12} {}  baseline {} ({})  target {} {} by {}{}{}",
            t.version,
            ver.status,
            if ver.published {
                "published  "
            } else {
                "unpublished"
            },
            opt(t.baseline),
            t.baseline_year
                .map(|y| y.to_string())
                .unwrap_or_else(|| "-".into()),
            opt(t.value),
            safe(&t.indicator.unit.clone().unwrap_or_default()),
            t.deadline,
            if t.mosaic.is_empty() {
                String::new()
            } else {
                format!(
                    "  MOSAIC {}",
                    t.mosaic
                        .iter()
                        .map(|m| m.code())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            t.reason
                .as_ref()
                .map(|r| format!("  ({})", safe(r)))
                .unwrap_or_default(),
        );
    }
    if v.progress.is_empty() {
        println!("  no progress reported");
    }
    for (p, published) in &v.progress {
        println!(
            "  progress {}  value {}  {}  {}{}",
            p.as_of,
            opt(p.value),
            p.assessment
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
            if *published { "published" } else { "draft" },
            p.note
                .as_ref()
                .map(|n| format!("  {}", safe(n)))
                .unwrap_or_default(),
        );
        let details = [
            ("challenges", p.challenges.clone()),
            ("source", p.source.clone()),
            ("assistance received", p.assistance_received.clone()),
            (
                "evidence",
                p.evidence
                    .as_ref()
                    .map(|e| format!("{} (SHA-256 {})", e.uri, e.sha256)),
            ),
        ];
        for (label, text) in details {
            if let Some(text) = text {
                println!("      {label}: {}", safe(&text));
            }
        }
    }
    for t in v.versions.iter().map(|v| &v.target).rev().take(1) {
        for (label, text) in [
            ("description", t.description.clone()),
            ("baseline source", t.baseline_source.clone()),
            ("SDG", t.sdg.clone()),
            (
                "references",
                Some(t.refs.join("; ")).filter(|r| !r.is_empty()),
            ),
            (
                "conditional on",
                Some(t.conditional_on.join(", ")).filter(|r| !r.is_empty()),
            ),
        ] {
            if let Some(text) = text {
                println!("  {label}: {}", safe(&text));
            }
        }
    }
    if let Some(w) = &v.withdrawn {
        println!("  withdrawn on {w}");
    }
    Ok(())
}

/// Runs `reference`: one of the reference lists.
pub fn reference(list: &str, json: bool) -> anyhow::Result<()> {
    let rows: Vec<(String, String)> = match list {
        "areas" => Area::ALL
            .iter()
            .map(|a| (a.slug().to_string(), a.label().to_string()))
            .collect(),
        "mosaic" => MOSAIC_MODULES
            .iter()
            .map(|(c, t)| (c.to_string(), t.to_string()))
            .collect(),
        _ => CYCLES
            .iter()
            .map(|c| {
                let when = match c.dates {
                    Some((a, b)) => format!("{a} to {b}"),
                    None => format!("{} (dates to be set)", c.year),
                };
                (c.label.to_string(), format!("{}, {when}", c.name))
            })
            .collect(),
    };
    if json {
        print_json(&serde_json::Value::Array(
            rows.iter()
                .map(|(k, v)| json!({"code": k, "name": v}))
                .collect(),
        ))
    } else {
        print_table(
            &["CODE", "NAME"],
            &rows
                .into_iter()
                .map(|(a, b)| vec![a, b])
                .collect::<Vec<_>>(),
        );
        Ok(())
    }
}
