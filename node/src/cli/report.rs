//! `stocktake`: the report of a cycle, in every format, and `stocktake verify`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use poa_protocol::Date;
use poa_protocol::model::Cycle;

use super::open;
use crate::node::today;
use crate::report::{self, Format, Verdict};

/// Arguments of `stocktake`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct StocktakeArgs {
    /// Check a report instead of writing one.
    #[command(subcommand)]
    pub verify: Option<StocktakeCmd>,
    /// The cycle (BMS9, BMS10...); the latest with targets when absent.
    #[arg(long)]
    pub cycle: Option<Cycle>,
    /// md, json, csv, sdg-csv (16.4.2 in the SDG data columns) or html.
    #[arg(long, default_value = "md")]
    pub format: Format,
    /// Write to FILE (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Judge statuses as of this date (YYYY-MM-DD); today when absent.
    #[arg(long)]
    pub as_of: Option<Date>,
}

/// `stocktake verify`.
#[derive(Debug, Subcommand)]
pub enum StocktakeCmd {
    /// Recompute a report from this node's copies of the documents it cites and compare.
    #[command(after_help = "Example:\n  poa-node stocktake verify bms9.json\n\n\
Reads JSON, Markdown and HTML reports. Exits 0 if the report is exactly what this node\n\
computes from the documents at the heads the report cites, 1 if not.")]
    Verify {
        /// The report file.
        file: PathBuf,
    },
}

/// Writes `text` to `path` through a temporary file in the same folder, so a reader never sees
/// half a report.
pub fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    write_bytes_atomically(path, text.as_bytes())
}

/// Writes `bytes` to `path` through a temporary file in the same folder.
pub fn write_bytes_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Runs `stocktake`.
pub fn stocktake(home: Option<PathBuf>, args: StocktakeArgs) -> anyhow::Result<()> {
    let node = open(home)?;
    if let Some(StocktakeCmd::Verify { file }) = args.verify {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        return match report::verify(&node, &text)? {
            Verdict::Matches { documents } => {
                println!(
                    "{} matches: this node computes the same report from the {documents} documents it cites, at the cited heads.",
                    file.display()
                );
                Ok(())
            }
            Verdict::Differs {
                line,
                report,
                computed,
            } => anyhow::bail!(
                "{} does not match at line {line}: the report says {:?}, this node computes {:?}",
                file.display(),
                report.trim(),
                computed.trim()
            ),
        };
    }
    let cycle = match args.cycle {
        Some(c) => c,
        None => report::default_cycle(&node)?,
    };
    let shown = crate::progress::Progress::start(
        format!("Computing the {cycle} stocktake from the documents held here..."),
        false,
    );
    let st = report::compute(&node, cycle, args.as_of.unwrap_or_else(today))?;
    shown.say(format!("Rendering the {cycle} stocktake..."));
    let text = report::render(&st, args.format);
    drop(shown);
    match args.out {
        Some(path) => {
            write_atomically(&path, &text)?;
            eprintln!(
                "Wrote the {} stocktake ({} targets, {} documents) to {}.",
                st.cycle,
                st.totals.targets,
                st.sources.len(),
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}
