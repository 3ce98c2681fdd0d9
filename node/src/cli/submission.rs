//! The national submission (`submission show|report|publish`) and evidence files
//! (`evidence verify`).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use poa_protocol::model::Cycle;
use poa_protocol::submission::Pending;

use super::report::write_atomically;
use super::{open, print_json};
use crate::format::safe;
use crate::records::Selection;

/// How the submission is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SubmissionFormat {
    /// A printable page (A4, page numbers).
    Html,
    /// Markdown.
    Md,
    /// JSON, for scripts.
    Json,
}

/// Submission commands.
#[derive(Debug, Subcommand)]
pub enum SubmissionCmd {
    /// Show everything the State has for a cycle, DRAFT where not published, with the checks'
    /// findings (Markdown on the terminal).
    #[command(after_help = "Example:\n  poa-node submission show --cycle BMS9")]
    Show {
        /// Only this cycle's targets (requests are shown whatever the cycle).
        #[arg(long)]
        cycle: Option<Cycle>,
        /// html, md or json.
        #[arg(long, value_enum, default_value = "md")]
        format: SubmissionFormat,
    },
    /// Write the submission for printing and internal clearance.
    #[command(after_help = "Examples:\n  \
poa-node submission report --cycle BMS9 --out xaa-bms9.html\n  \
poa-node submission report --cycle BMS9 --format md --out xaa-bms9.md")]
    Report {
        /// Only this cycle's targets (requests are shown whatever the cycle).
        #[arg(long)]
        cycle: Option<Cycle>,
        /// html, md or json.
        #[arg(long, value_enum, default_value = "html")]
        format: SubmissionFormat,
        /// Write to FILE (atomically) instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Show exactly what would go out (new, changed, withdrawn, against what is published),
    /// then publish it in one transaction once confirmed.
    #[command(after_help = "Examples:\n  \
poa-node submission publish --cycle BMS9\n  \
poa-node submission publish --yes          # for scripts: no question asked")]
    Publish {
        /// Only what concerns this cycle's targets (and every request).
        #[arg(long)]
        cycle: Option<Cycle>,
        /// Publish without asking.
        #[arg(long)]
        yes: bool,
        /// Only show what would go out; publish nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON (needs --yes or --dry-run: no question is asked).
        #[arg(long)]
        json: bool,
    },
    /// Write a blank, documented template: a workbook with one sheet per kind of record
    /// (Targets, Progress, Requests, and About, which explains every column), or a folder of
    /// CSV files with a README.
    #[command(after_help = "Examples:\n  \
poa-node submission template --out xaa.xlsx\n  \
poa-node submission template --format csv --out xaa-sheets")]
    Template {
        /// xlsx or csv.
        #[arg(long, value_enum, default_value = "xlsx")]
        format: SheetFormat,
        /// The workbook file, or the folder for CSV files.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
    /// Read a filled-in workbook (or CSV folder) into the draft: all or nothing. Every row is
    /// checked like a record typed at the command line; any error writes nothing and names the
    /// sheet, row and column.
    #[command(after_help = "Example:\n  poa-node submission import xaa.xlsx")]
    Import {
        /// The .xlsx/.ods file, or the folder of CSV files.
        path: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the draft in the template's shape (each target's current version, every report
    /// and request not withdrawn).
    #[command(after_help = "Example:\n  poa-node submission export --out xaa.xlsx")]
    Export {
        /// xlsx or csv.
        #[arg(long, value_enum, default_value = "xlsx")]
        format: SheetFormat,
        /// The workbook file, or the folder for CSV files.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
}

/// The spreadsheet formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SheetFormat {
    /// One .xlsx workbook.
    Xlsx,
    /// A folder of CSV files.
    Csv,
}

impl From<SheetFormat> for crate::sheets::Format {
    fn from(f: SheetFormat) -> Self {
        match f {
            SheetFormat::Xlsx => crate::sheets::Format::Xlsx,
            SheetFormat::Csv => crate::sheets::Format::Csv,
        }
    }
}

/// Runs a `submission` command.
pub fn submission(home: Option<PathBuf>, cmd: SubmissionCmd) -> anyhow::Result<()> {
    match cmd {
        SubmissionCmd::Show { cycle, format } => {
            let node = open(home)?;
            print!("{}", render(&node.submission(cycle)?, format)?);
        }
        SubmissionCmd::Report { cycle, format, out } => {
            let node = open(home)?;
            let text = render(&node.submission(cycle)?, format)?;
            match out {
                Some(path) => {
                    write_atomically(&path, &text)?;
                    eprintln!("Wrote {}.", path.display());
                }
                None => print!("{text}"),
            }
        }
        SubmissionCmd::Publish {
            cycle,
            yes,
            dry_run,
            json,
        } => {
            let mut node = open(home)?;
            let selection = cycle.map_or(Selection::All, Selection::Cycle);
            let items = node.pending(&selection)?;
            if json && !(yes || dry_run) {
                anyhow::bail!("--json asks no question: add --yes to publish, or --dry-run");
            }
            if items.is_empty() {
                if json {
                    print_json(&serde_json::json!({"published": [], "pending": []}))?;
                } else {
                    println!(
                        "Nothing to publish: the published document holds everything in the draft."
                    );
                }
                return Ok(());
            }
            if !json {
                println!("Publishing would send out {} record(s):", items.len());
                print_items(&items);
            }
            if dry_run {
                if json {
                    print_json(&serde_json::json!({"published": [], "pending": items}))?;
                } else {
                    println!("Nothing published (--dry-run).");
                }
                return Ok(());
            }
            if !yes && !confirm()? {
                println!("Nothing published.");
                return Ok(());
            }
            let done = node.publish(&selection)?;
            if json {
                print_json(&serde_json::json!({"published": done, "pending": []}))?;
            } else {
                println!(
                    "Published {} record(s) in {}.",
                    done.len(),
                    poa_protocol::DocId::State(node.own_state()?)
                );
            }
        }
        SubmissionCmd::Template { format, out } => {
            crate::sheets::write(&crate::sheets::Book::default(), format.into(), &out)?;
            println!(
                "Wrote the template to {}. Fill it in, then run `poa-node submission import {}`.",
                out.display(),
                out.display()
            );
        }
        SubmissionCmd::Export { format, out } => {
            let node = open(home)?;
            let book = node.export_book()?;
            crate::sheets::write(&book, format.into(), &out)?;
            println!(
                "Wrote {} target(s), {} progress report(s) and {} request(s) to {}.",
                book.targets.0.len(),
                book.progress.0.len(),
                book.requests.0.len(),
                out.display()
            );
        }
        SubmissionCmd::Import { path, json } => {
            let shown =
                crate::progress::Progress::start(format!("Reading {}...", path.display()), json);
            let book = crate::sheets::read(&path)?;
            shown.say(format!(
                "Checking and importing {}: every row, then one change to the draft...",
                path.display()
            ));
            let mut node = open(home)?;
            let done = node.import_book(&book)?;
            drop(shown);
            if json {
                print_json(&done)?;
            } else {
                for w in &done.warnings {
                    eprintln!("warning: {}", safe(&w.to_string()));
                }
                println!(
                    "Imported {} target(s), {} progress report(s) and {} request(s) into the draft. See them with `poa-node submission show`.",
                    done.targets.len(),
                    done.progress.len(),
                    done.requests.len()
                );
            }
        }
    }
    Ok(())
}

fn print_items(items: &[Pending]) {
    for p in items {
        println!("  {}", safe(&p.line()));
    }
}

/// Asks on the terminal; refuses to guess when nobody is there to answer.
pub(super) fn confirm() -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "nothing published: confirm with --yes (standard input is not a terminal, so nobody can be asked)"
        );
    }
    print!("Publish these now? [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

fn render(s: &crate::submission::Submission, format: SubmissionFormat) -> anyhow::Result<String> {
    Ok(match format {
        SubmissionFormat::Html => crate::submission::html(s),
        SubmissionFormat::Md => crate::submission::markdown(s),
        SubmissionFormat::Json => format!("{}\n", serde_json::to_string_pretty(s)?),
    })
}

/// Evidence commands.
#[derive(Debug, Subcommand)]
pub enum EvidenceCmd {
    /// Say which progress reports held here cite this file as their evidence (by its SHA-256).
    #[command(after_help = "Example:\n  poa-node evidence verify ./xaa-marking-2025.pdf")]
    Verify {
        /// The file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an `evidence` command. `verify` exits 1 when no report cites the file.
pub fn evidence(home: Option<PathBuf>, cmd: EvidenceCmd) -> anyhow::Result<()> {
    match cmd {
        EvidenceCmd::Verify { file, json } => {
            let digest = crate::evidence::sha256_file(&file)?;
            let node = open(home)?;
            let cited = node.cited_by(&digest)?;
            if json {
                print_json(&serde_json::json!({"sha256": digest, "cited_by": cited}))?;
            } else if cited.is_empty() {
                println!(
                    "No progress report held here cites {} (SHA-256 {digest}).",
                    file.display()
                );
            } else {
                println!("{} (SHA-256 {digest}) is the evidence of:", file.display());
                for c in &cited {
                    println!("  {} in {} ({})", c.report, c.doc, safe(&c.uri));
                }
            }
            if cited.is_empty() {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
