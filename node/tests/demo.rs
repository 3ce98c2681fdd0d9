//! `poa-node demo`, run as a user runs it: the real binary starts six nodes, enters the
//! illustrative data set, and must show every published target at the Secretariat and no State
//! document at the donor. With `--keep DIR` the homes stay behind for the CLI to read.
//!
//! The binary is the one Cargo builds for this package's tests (`CARGO_BIN_EXE_poa-node`).

#![allow(clippy::unwrap_used)]

mod common;
use common::bin as poa_node_bin;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn poa_node(args: &[&str]) -> Output {
    Command::new(poa_node_bin())
        .args(args)
        // The demo must not depend on, or touch, a home of the user running the tests.
        .env_remove("POA_HOME")
        .output()
        .expect("poa-node runs")
}

/// Runs `poa-node demo` with `extra` arguments, asserts it succeeded, and returns its stdout.
fn demo(extra: &[&str]) -> String {
    let mut args = vec!["demo", "--no-serve"];
    args.extend_from_slice(extra);
    let out = poa_node(&args);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "poa-node demo failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

/// Every target version the data set publishes: (State, target, version). Each target is
/// published at version 1, and each revision publishes the next version.
fn published() -> Vec<(String, String, u32)> {
    let data = poa_node::demo::dataset().unwrap();
    let mut out = Vec::new();
    for s in &data.states {
        for t in &s.targets {
            let revisions = s.revisions.iter().filter(|r| r.id == t.id).count() as u32;
            for version in 1..=1 + revisions {
                out.push((s.code.to_string(), t.id.clone(), version));
            }
        }
    }
    out
}

/// The lines of the demo's account of what the Secretariat holds.
fn secretariat_section(stdout: &str) -> Vec<&str> {
    let (_, after) = stdout
        .split_once("What the Secretariat holds")
        .unwrap_or_else(|| panic!("no Secretariat section in:\n{stdout}"));
    after.lines().collect()
}

#[test]
fn the_demo_shows_every_published_target_at_the_secretariat_and_none_at_the_donor() {
    let stdout = demo(&[]);

    let published = published();
    assert_eq!(published.len(), 9, "{published:?}");
    assert!(published.contains(&("XAB".into(), "T1".into(), 2)));
    let held = secretariat_section(&stdout);
    for (state, id, version) in &published {
        let name = format!("{state} {id}");
        let ver = format!("v{version}");
        assert!(
            held.iter().any(|l| {
                let cells: Vec<&str> = l.split_whitespace().collect();
                cells.len() > 2 && format!("{} {}", cells[0], cells[1]) == name && cells[2] == ver
            }),
            "the Secretariat's table lacks {name} {ver}:\n{stdout}"
        );
    }
    // The superseded version is kept and marked so; the new one is in force.
    assert!(
        held.iter()
            .any(|l| l.starts_with("   XAB T1  v1") && l.contains("superseded")),
        "{stdout}"
    );
    assert!(
        held.iter()
            .any(|l| l.starts_with("   XAB T1  v2") && !l.contains("superseded")),
        "{stdout}"
    );

    // Each State document reached XRB from the State and the Secretariat from XRB.
    for state in ["XAA", "XAB", "XAC"] {
        let doc = format!("state/{state} reached");
        let (_, after) = stdout
            .split_once(&doc)
            .unwrap_or_else(|| panic!("no account of {doc}:\n{stdout}"));
        let lines: Vec<&str> = after.lines().skip(1).take(2).collect();
        assert!(
            lines
                .iter()
                .any(|l| l.trim_start().starts_with("XRB") && l.ends_with(&format!("from {state}"))),
            "{doc}: {lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.trim_start().starts_with("Secretariat") && l.ends_with("from XRB")),
            "{doc}: {lines:?}"
        );
    }

    // The pool: formed by consent, its sum counting only the member with data, and the
    // members without data listed as missing.
    // The pool's id carries the fingerprint of its coordinator's key.
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("pool/xanadu~")
                && l.ends_with(" with every join and contribution reached:")),
        "{stdout}"
    );
    for state in ["XAA", "XAB", "XAC"] {
        assert!(
            stdout.contains(&format!(
                "state/{state} (now shared with the pool) reached the other members"
            )),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("baseline 0, goal 8,000, current 1,800 weapons"),
        "{stdout}"
    );
    assert!(
        held.iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["XAB", "reporting", "1,800"]),
        "{stdout}"
    );
    assert!(
        held.iter().any(|l| l
            .trim_start()
            .starts_with("XAA     missing    contributed no destruction target")),
        "{stdout}"
    );
    // Matching: O1 for R2 first, nothing fits R1, which stays unmet once R2 is matched.
    let (_, suggested) = stdout.split_once("`match suggest`, best first:").unwrap();
    let first = suggested.lines().nth(2).unwrap();
    assert!(first.trim_start().starts_with("XAC/R2   XZZ/O1"), "{first}");
    assert!(stdout.contains("No offer fits: XAB/R1"), "{stdout}");
    let unmet: Vec<&str> = held
        .iter()
        .skip_while(|l| !l.contains("UNMET REQUEST"))
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("XA"))
        .copied()
        .collect();
    assert_eq!(unmet.len(), 1, "{unmet:?}");
    assert!(unmet[0].trim_start().starts_with("XAB/R1"), "{unmet:?}");
    assert!(
        stdout.contains("Accepted matches: XAC/R2 <- XZZ/O1"),
        "{stdout}"
    );

    // The donor is on no State's share list: the demo checks it holds none of their documents
    // and was never told their names, and exits non-zero if it did.
    for state in ["XAA", "XAB", "XAC"] {
        let line = format!("state/{state}: not held by XZZ");
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with(&line) && l.contains("nor ever named to them")),
            "no check that the donor lacks state/{state}:\n{stdout}"
        );
        assert!(
            stdout.contains(&format!("state/{state}/draft: held only by {state}")),
            "{stdout}"
        );
    }
}

#[test]
fn keep_leaves_homes_the_cli_can_read_and_refuses_a_folder_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("homes");
    let dir_text = dir.to_str().unwrap();
    let stdout = demo(&["--keep", dir_text]);

    let secretariat = dir.join("secretariat");
    assert!(secretariat.join("poa.db").is_file(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "poa-node --home {}/secretariat target list --state XAB",
            dir.display()
        )),
        "{stdout}"
    );

    let out = poa_node(&[
        "--home",
        secretariat.to_str().unwrap(),
        "target",
        "list",
        "--state",
        "XAB",
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let current: Vec<(String, u64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                t["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(current, [("T1".to_string(), 2), ("T2".to_string(), 1)]);
    let t1 = &list[0];
    assert_eq!(t1["value"], 20.0);
    assert_eq!(t1["versions"].as_array().unwrap().len(), 2);
    assert_eq!(t1["versions"][0]["status"], "superseded");

    // The donor's home holds its offers (published and draft) and, of the States' documents,
    // only XAC's: XAC shared it with the donor when it proposed the match.
    let out = poa_node(&[
        "--home",
        dir.join("xzz").to_str().unwrap(),
        "doc",
        "list",
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let docs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = docs
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["offers/XZZ", "offers/XZZ/draft", "state/XAC"]);

    // The pool and the unmet requests, read back by the CLI at the Secretariat.
    let un = dir.join("secretariat");
    let out = poa_node(&[
        "--home",
        un.to_str().unwrap(),
        "pool",
        "show",
        "xanadu",
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let pool: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pool["coordinator"], "XRB");
    assert_eq!(pool["members"].as_array().unwrap().len(), 3);
    assert_eq!(pool["observers"][0]["name"], "UN Secretariat");
    assert_eq!(pool["pooled"][0]["current"], 1800.0);
    assert_eq!(pool["pooled"][0]["target"], 8000.0);
    let missing: Vec<&str> = pool["pooled"][0]["members_missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["state"].as_str().unwrap())
        .collect();
    assert_eq!(missing, ["XAA", "XAC"]);
    let out = poa_node(&["--home", un.to_str().unwrap(), "needs", "--unmet", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let unmet: Value = serde_json::from_slice(&out.stdout).unwrap();
    let refs: Vec<&str> = unmet
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["ref"].as_str().unwrap())
        .collect();
    assert_eq!(refs, ["XAB/R1"]);

    // A second run must not mix its nodes into the kept ones: it refuses, says why on one
    // line, and leaves the folder as it was.
    let listing = |d: &Path| {
        let mut names: Vec<PathBuf> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        names
    };
    let before = listing(&dir);
    let out = poa_node(&["demo", "--no-serve", "--keep", dir_text]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert!(out.stdout.is_empty());
    let after = listing(&dir);
    assert_eq!(before, after);
}
