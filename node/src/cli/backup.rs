//! Backups and recovery: `backup`, `restore` and `doctor` (see [`crate::backup`]).

use std::path::PathBuf;

use anyhow::bail;

use super::print_json;
use crate::backup::{self, Severity};
use crate::home;
use crate::progress::Progress;

/// Runs `backup`.
pub fn backup(
    home: Option<PathBuf>,
    out: PathBuf,
    with_keys: bool,
    force: bool,
    json: bool,
) -> anyhow::Result<()> {
    let dir = home::resolve(home)?;
    let shown = Progress::start("Backing up...", json);
    let report = backup::backup(&dir, &out, with_keys, force, &|what| {
        shown.say(format!("Backing up: {what}..."))
    })?;
    drop(shown);
    if json {
        return print_json(&report);
    }
    println!(
        "Wrote {} documents, {} changes, {} bytes to {} in {} ms.",
        report.documents,
        report.changes,
        report.bytes,
        report.out.display(),
        report.millis
    );
    if with_keys {
        println!(
            "It holds this node's keys: whoever reads it can write as this node. Keep it offline (it is readable by you only)."
        );
    } else {
        println!(
            "It holds no key: to restore it, put this node's key files into the new home first (`poa-node restore FILE --home DIR` says which)."
        );
    }
    Ok(())
}

/// Runs `restore`.
pub fn restore(home: Option<PathBuf>, file: PathBuf, json: bool) -> anyhow::Result<()> {
    let dir = home::resolve(home)?;
    let shown = Progress::start("Restoring...", json);
    let report = backup::restore(&file, &dir, &|what| {
        shown.say(format!("Restoring: {what}..."))
    })?;
    drop(shown);
    if json {
        return print_json(&report);
    }
    println!(
        "Restored {} ({} documents, {} changes, every one checked through the gate) into {}{}.",
        report.node_id,
        report.documents,
        report.changes,
        report.home.display(),
        if report.keys_from_backup {
            ", with the keys from the backup"
        } else {
            ", with the keys you placed"
        }
    );
    println!(
        "Peers, pins, trust and what each peer holds are as at the backup; run `poa-node sync` (or `serve`) to take back from peers what was written since. Do not run the old home and this one at once."
    );
    Ok(())
}

/// Runs `doctor`.
pub fn doctor(home: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let dir = home::resolve(home)?;
    let findings = backup::doctor(&dir);
    let problems = findings
        .iter()
        .filter(|f| f.severity == Severity::Problem)
        .count();
    if json {
        print_json(&serde_json::json!({
            "home": dir,
            "ok": problems == 0,
            "findings": findings,
        }))?;
    } else {
        for f in &findings {
            let tag = match f.severity {
                Severity::Problem => "problem",
                Severity::Note => "note",
            };
            println!("{tag}: {}; fix: {}", f.problem, f.fix);
        }
        if problems == 0 {
            println!("{} looks healthy.", dir.display());
        }
    }
    if problems > 0 {
        bail!(
            "{problems} problem(s) in {}: see the fixes above",
            dir.display()
        );
    }
    Ok(())
}
