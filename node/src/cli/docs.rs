//! The documents this node holds: `doc list` and `doc export`, who may read each (`share`),
//! and the audit log of what was accepted and rejected (`audit`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use poa_protocol::doc::DocId;
use poa_protocol::{Date, NodeId};
use serde_json::json;

use super::{open, print_json};
use crate::format::print_table;

/// Document commands.
#[derive(Debug, Subcommand)]
pub enum DocCmd {
    /// List documents held, with their heads.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a document as a standard saved Automerge file any Automerge implementation loads.
    Export {
        /// The document: state/XAA, state/XAA/draft, offers/XZZ...
        doc: DocId,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs a `doc` command.
pub fn doc(home: Option<PathBuf>, cmd: DocCmd) -> anyhow::Result<()> {
    match cmd {
        DocCmd::List { json } => {
            let node = open(home)?;
            let docs = node.store.summaries()?;
            if json {
                print_json(&serde_json::Value::Array(
                    docs.iter()
                        .map(|d| {
                            json!({
                                "id": d.id,
                                "heads": d.heads.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
                                "changes": d.changes,
                                "void": d.void,
                            })
                        })
                        .collect(),
                ))?;
            } else if docs.is_empty() {
                println!("No documents yet.");
            } else {
                let rows: Vec<Vec<String>> = docs
                    .iter()
                    .map(|d| {
                        vec![
                            d.id.clone(),
                            d.changes.to_string(),
                            d.heads
                                .iter()
                                .map(|h| h.to_string()[..12].to_string())
                                .collect::<Vec<_>>()
                                .join(","),
                        ]
                    })
                    .collect();
                print_table(&["DOCUMENT", "CHANGES", "HEADS"], &rows);
            }
        }
        DocCmd::Export { doc, out } => {
            let node = open(home)?;
            let bytes = node.export_automerge(&doc)?;
            // Write a temporary file beside the target and rename it, so a failure never leaves
            // half a file, nor touches any other file.
            let dir = match out.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let mut tmp = tempfile::NamedTempFile::new_in(&dir)
                .with_context(|| format!("cannot write in {}", dir.display()))?;
            std::io::Write::write_all(&mut tmp, &bytes)
                .with_context(|| format!("writing {}", out.display()))?;
            tmp.persist(&out)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {}", out.display(), e.error))?;
            println!("Wrote {doc} ({} bytes) to {}", bytes.len(), out.display());
        }
    }
    Ok(())
}

/// Runs `share`: lets nodes read a document, and lists who may.
pub fn share(
    home: Option<PathBuf>,
    doc: DocId,
    with: Vec<NodeId>,
    public: bool,
    remove: Vec<String>,
    json: bool,
) -> anyhow::Result<()> {
    let mut node = open(home)?;
    if !with.is_empty() || public {
        node.share(&doc, &with, public)?;
    }
    let mut removed = Vec::new();
    if !remove.is_empty() {
        let entries: Vec<String> = remove
            .iter()
            .map(|r| {
                let r = r.trim();
                if r.eq_ignore_ascii_case("public") || r == poa_protocol::doc::PUBLIC {
                    Ok(poa_protocol::doc::PUBLIC.to_string())
                } else if r.starts_with("pool/") {
                    Ok(r.to_string())
                } else {
                    super::parse_node_id(r)
                        .map(|id| id.to_string())
                        .map_err(|e| {
                            anyhow::anyhow!("--remove {r}: {e}; or give pool/<id> or public")
                        })
                }
            })
            .collect::<anyhow::Result<_>>()?;
        removed = node.unshare(&doc, &entries)?;
    }
    let readers = node.readers(&doc)?;
    if json {
        print_json(&json!({"doc": doc, "readers": readers, "removed": removed}))?;
        return Ok(());
    }
    for r in &removed {
        let who = if r == poa_protocol::doc::PUBLIC {
            "everyone (public)".to_string()
        } else {
            r.clone()
        };
        println!(
            "Removed {who} from the share list of {doc}: later changes no longer reach it; what it already received stays with it."
        );
    }
    if readers.is_empty() {
        println!("{doc} is read only by its own State's nodes.");
    } else {
        println!("{doc} may be read by:");
        let peers = node.store.peers()?;
        for r in readers {
            let name = peers
                .iter()
                .find(|p| p.node_id.to_string() == r)
                .map(|p| format!("  ({})", p.name))
                .unwrap_or_default();
            if r == poa_protocol::doc::PUBLIC {
                println!("  everyone (public)");
            } else {
                println!("  {r}{name}");
            }
        }
    }
    Ok(())
}

/// Runs `audit`.
pub fn audit(home: Option<PathBuf>, since: Option<Date>, json: bool) -> anyhow::Result<()> {
    let node = open(home)?;
    let since_secs = since
        .map(|d| Date::from_unix_seconds(0).days_until(d) * 86_400)
        .unwrap_or(0);
    let rows = node.store.audit(since_secs)?;
    if json {
        print_json(&serde_json::to_value(&rows)?)?;
    } else {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.seq.to_string(),
                    Date::from_unix_seconds(r.at).to_string(),
                    r.event.clone(),
                    r.doc.clone().unwrap_or_default(),
                    r.change
                        .as_deref()
                        .map(|c| c[..12].to_string())
                        .unwrap_or_default(),
                    r.detail.clone(),
                ]
            })
            .collect();
        print_table(
            &["SEQ", "DATE", "EVENT", "DOCUMENT", "CHANGE", "DETAIL"],
            &rows,
        );
    }
    Ok(())
}
