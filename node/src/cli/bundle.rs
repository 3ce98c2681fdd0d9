//! `bundle export` and `bundle import`: signed bundle files for nodes with no network path
//! between them (see [`crate::bundle`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use poa_protocol::doc::DocId;
use serde_json::json;

use super::{open, print_json};
use crate::bundle::{self, MAX_BUNDLE_BYTES, MAX_RECEIPT_BYTES};
use crate::progress::Progress;
use crate::status::bytes as show_bytes;

/// Bundle commands.
#[derive(Debug, Subcommand)]
pub enum BundleCmd {
    /// Write the changes a pinned node may read here to a file signed by this node, to carry to
    /// it by hand (a node with no network path to this one).
    #[command(after_help = "Examples:\n  \
poa-node bundle export --for <NODEID of XRB> --out xrb.bundle\n  \
poa-node bundle export --for XRB --docs state/XAA --out xrb.bundle\n  \
poa-node bundle export --for XRB --since xrb.receipt --out xrb-2.bundle\n\n\
The bundle holds only what the recipient may read here, as sync would send it. --for CODE\n\
names the one node pinned here as that State's or body's. With --since, the changes the\n\
recipient's receipt says it holds are left out.")]
    Export {
        /// The recipient: its NodeId, or the code of the State or body it is pinned as.
        #[arg(long = "for", value_name = "NODEID|CODE")]
        recipient: String,
        /// Only these documents (each must be one the recipient may read).
        #[arg(long, num_args = 1.., value_name = "DOC")]
        docs: Vec<DocId>,
        /// The receipt the recipient wrote on its last import of a bundle from this node.
        #[arg(long, value_name = "RECEIPT")]
        since: Option<PathBuf>,
        /// The bundle file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take a bundle's changes through the same checks as a sync with its exporter, and write
    /// the receipt to carry back.
    #[command(after_help = "Examples:\n  \
poa-node bundle import xrb.bundle\n  \
poa-node bundle import /media/usb/xrb.bundle --receipt /media/usb/xrb.receipt\n\n\
The exporter must be pinned here. Its signature over the whole file is checked before\n\
anything is read; every change then passes the gate. Importing a bundle twice changes\n\
nothing. The receipt (FILE.receipt unless --receipt says where) names the bundle and the\n\
heads now held: give it to the exporter's `bundle export --since`.")]
    Import {
        /// The bundle file.
        file: PathBuf,
        /// Where to write the receipt (replaced if it exists).
        #[arg(long, value_name = "OUT")]
        receipt: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `bundle` command.
pub fn bundle(home: Option<PathBuf>, cmd: BundleCmd) -> anyhow::Result<()> {
    match cmd {
        BundleCmd::Export {
            recipient,
            docs,
            since,
            out,
            force,
            json,
        } => export(home, &recipient, &docs, since.as_deref(), &out, force, json),
        BundleCmd::Import {
            file,
            receipt,
            json,
        } => import(home, &file, receipt, json),
    }
}

fn export(
    home: Option<PathBuf>,
    recipient: &str,
    docs: &[DocId],
    since: Option<&Path>,
    out: &Path,
    force: bool,
    json: bool,
) -> anyhow::Result<()> {
    let mut node = open(home)?;
    if out.exists() && !force {
        bail!(
            "{} exists: choose another --out, or add --force to replace it",
            out.display()
        );
    }
    let to = bundle::resolve_recipient(&node, recipient)?;
    let receipt = match since {
        Some(path) => {
            let bytes = bundle::read_bounded(path, MAX_RECEIPT_BYTES, "receipt")
                .with_context(|| format!("{} cannot be used", path.display()))?;
            Some(
                bundle::open_receipt(&bytes, Some(&to))
                    .with_context(|| format!("{} cannot be used", path.display()))?,
            )
        }
        None => None,
    };
    let shown = Progress::start("Exporting...", json);
    let exported = bundle::export(&mut node, &to, docs, receipt.as_ref(), &|m| shown.say(m))?;
    drop(shown);
    write_new(out, &exported.bytes, force)?;
    let name = node
        .store
        .peer(&to)?
        .map(|p| p.name)
        .unwrap_or_else(|| to.short());
    if json {
        return print_json(&json!({
            "file": out.display().to_string(),
            "recipient": to.to_string(),
            "recipient_name": name,
            "since": exported.since,
            "documents": exported.documents.iter().map(|(d, n)| json!({"doc": d, "changes": n})).collect::<Vec<_>>(),
            "changes": exported.changes,
            "bytes": exported.bytes.len(),
        }));
    }
    println!(
        "Wrote {} for {} ({}): {} document(s), {} change(s){}, {}.",
        out.display(),
        super::safe(&name),
        to.short(),
        exported.documents.len(),
        exported.changes,
        if exported.since {
            " not yet acknowledged"
        } else {
            ""
        },
        show_bytes(exported.bytes.len() as u64)
    );
    for (d, n) in &exported.documents {
        println!("  {d}: {n} change(s)");
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same folder (0600, as the
/// bundle may hold drafts), never replacing an existing file unless `force`.
fn write_new(path: &Path, bytes: &[u8], force: bool) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    if force {
        tmp.persist(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    } else if let Err(e) = tmp.persist_noclobber(path) {
        if path.exists() {
            bail!(
                "{} exists: choose another --out, or add --force to replace it",
                path.display()
            );
        }
        return Err(e.error).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

fn import(
    home: Option<PathBuf>,
    file: &Path,
    receipt: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    let mut node = open(home)?;
    let cannot = || format!("{} cannot be imported", file.display());
    let bytes = bundle::read_bounded(file, MAX_BUNDLE_BYTES, "bundle").with_context(cannot)?;
    let shown = Progress::start("Importing...", json);
    let imported = bundle::import(&mut node, &bytes, &|m| shown.say(m)).with_context(cannot)?;
    drop(shown);
    let receipt_path = receipt.unwrap_or_else(|| {
        let mut name = file.as_os_str().to_owned();
        name.push(".receipt");
        PathBuf::from(name)
    });
    let signed = bundle::receipt(&node, &imported)?;
    super::write_bytes_atomically(&receipt_path, &signed)?;
    let not_taken: Vec<&bundle::DocImport> = imported
        .documents
        .iter()
        .filter(|d| d.not_taken.is_some())
        .collect();
    if json {
        print_json(&json!({
            "file": file.display().to_string(),
            "exporter": imported.exporter.to_string(),
            "exporter_name": imported.exporter_name,
            "bundle": imported.bundle,
            "bytes": imported.bytes,
            "documents": imported.documents,
            "new": imported.new,
            "known": imported.known,
            "refused": imported.refused,
            "waiting": imported.waiting,
            "nothing_new": imported.nothing_new(),
            "receipt": receipt_path.display().to_string(),
        }))?;
    } else {
        println!(
            "Imported {} from {} ({}): {} document(s), {} change(s) new, {} known, {} refused, {}.",
            file.display(),
            super::safe(&imported.exporter_name),
            imported.exporter.short(),
            imported.documents.len(),
            imported.new,
            imported.known,
            imported.refused,
            show_bytes(imported.bytes as u64)
        );
        for d in &imported.documents {
            match &d.not_taken {
                Some(why) => println!("  {}: not taken: {why}", d.doc),
                None => println!(
                    "  {}: {} new, {} known{}{}",
                    d.doc,
                    d.new,
                    d.known,
                    if d.refused > 0 {
                        format!(", {} refused", d.refused)
                    } else {
                        String::new()
                    },
                    if d.waiting > 0 {
                        format!(
                            ", {} waiting for changes this node lacks (import a full bundle, without --since)",
                            d.waiting
                        )
                    } else {
                        String::new()
                    }
                ),
            }
        }
        if imported.nothing_new() {
            println!("Nothing new: this node already held every change in the bundle.");
        }
        println!(
            "Receipt written to {}: carry it back for `bundle export --since`.",
            receipt_path.display()
        );
    }
    if !not_taken.is_empty() {
        bail!(
            "{} of the bundle's {} document(s) were not taken (see above, and `poa-node audit`)",
            not_taken.len(),
            imported.documents.len()
        );
    }
    Ok(())
}
