//! The national point of contact's workflow at the command line: records are corrected and
//! deleted while they are drafts, published ones are superseded or withdrawn instead, the
//! submission is printed with its DRAFT marks and findings, and publishing shows exactly what
//! goes out before it does.

#![allow(clippy::unwrap_used)]

mod common;

use common::Desk;

use std::path::{Path, PathBuf};

use serde_json::Value;

trait Checks {
    fn refused(&self, args: &[&str], expect: &str) -> String;
    fn holdings(&self) -> Value;
}

impl Checks for Desk {
    /// A command that must fail with one line on stderr containing `expect`, and change
    /// nothing the State holds.
    fn refused(&self, args: &[&str], expect: &str) -> String {
        let before = self.holdings();
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success(),
            "`poa-node {}` succeeded",
            args.join(" ")
        );
        assert!(stderr.contains(expect), "`{}`: {stderr}", args.join(" "));
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert_eq!(
            self.holdings(),
            before,
            "`{}` changed something",
            args.join(" ")
        );
        stderr
    }

    /// What the State holds, draft and published, as the submission's JSON says.
    fn holdings(&self) -> Value {
        let mut s = self.json(&["submission", "show", "--format", "json"]);
        s["produced"] = Value::Null;
        s
    }
}

const T1: &[&str] = &[
    "target",
    "add",
    "--id",
    "T1",
    "--cycle",
    "BMS9",
    "--area",
    "marking",
    "--title",
    "Mark State-held SALW",
    "--indicator",
    "share of State-held SALW marked",
    "--unit",
    "percent",
    "--direction",
    "increase",
    "--baseline",
    "40",
    "--baseline-year",
    "2023",
    "--value",
    "70",
    "--deadline",
    "2026-06-30",
    "--mosaic",
    "05.30",
    "--ref",
    "ITI 8",
];

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn drafts_are_corrected_and_deleted_and_published_records_are_not() {
    let d = Desk::new();
    d.ok(T1);
    // A typo corrected in place: still version 1, nothing left of the typo.
    let out = d.ok(&[
        "target",
        "edit",
        "T1",
        "--title",
        "Mark all State-held SALW",
    ]);
    assert!(out.contains("Corrected T1 v1"), "{out}");
    let t1 = d.json(&["target", "show", "T1", "--json"]);
    assert_eq!(t1["title"], "Mark all State-held SALW");
    assert_eq!(t1["versions"].as_array().unwrap().len(), 1);
    // The edit is checked like a new record.
    d.refused(&["target", "edit", "T1", "--value", "180"], "--value");
    // A draft deleted leaves nothing.
    d.ok(&[
        "target",
        "add",
        "--id",
        "T9",
        "--cycle",
        "BMS9",
        "--area",
        "marking",
        "--title",
        "test",
        "--kind",
        "milestone",
        "--indicator",
        "test",
        "--deadline",
        "2026-06-30",
    ]);
    d.ok(&["target", "delete", "T9"]);
    assert!(
        d.json(&["target", "list", "--json"])
            .as_array()
            .unwrap()
            .len()
            == 1
    );

    // Progress: corrected and deleted while a draft.
    d.ok(&[
        "progress",
        "add",
        "T1",
        "--as-of",
        "2025-12-31",
        "--value",
        "55",
    ]);
    d.ok(&[
        "progress",
        "edit",
        "T1/2025-12-31",
        "--value",
        "56",
        "--challenges",
        "rains",
    ]);
    let t1 = d.json(&["target", "show", "T1", "--json"]);
    assert_eq!(t1["progress"][0]["value"], 56.0, "{t1}");
    d.ok(&[
        "progress",
        "add",
        "T1",
        "--as-of",
        "2025-06-30",
        "--value",
        "50",
    ]);
    d.ok(&["progress", "delete", "T1/2025-06-30"]);
    // A target that a report names is not deleted under it.
    d.refused(&["target", "delete", "T1"], "progress delete T1/2025-12-31");

    // Requests start as drafts, name only what exists, and are corrected and deleted too.
    d.refused(
        &[
            "need",
            "add",
            "--id",
            "R1",
            "--title",
            "Scanners",
            "--area",
            "marking",
            "--kind",
            "equipment",
            "--target",
            "T99",
        ],
        "T99",
    );
    d.ok(&[
        "need",
        "add",
        "--id",
        "R1",
        "--title",
        "Scanners",
        "--area",
        "marking",
        "--kind",
        "equipment",
        "--target",
        "T1",
    ]);
    d.ok(&["need", "edit", "R1", "--cost", "1000", "--currency", "USD"]);
    d.ok(&[
        "need", "add", "--id", "R2", "--title", "Test", "--area", "marking", "--kind", "training",
    ]);
    d.ok(&["need", "delete", "R2"]);
    let needs = d.json(&["need", "list", "--json"]);
    assert_eq!(needs.as_array().unwrap().len(), 1, "{needs}");
    assert_eq!(needs[0]["cost"], 1000.0);
    assert_eq!(needs[0]["status"], "draft");

    // Published, nothing is edited in place; each refusal says what to do instead.
    d.ok(&["submission", "publish", "--yes"]);
    d.refused(
        &["target", "edit", "T1", "--title", "x"],
        "target supersede T1",
    );
    d.refused(&["target", "delete", "T1"], "target withdraw T1");
    d.refused(
        &["progress", "edit", "T1/2025-12-31", "--value", "1"],
        "progress withdraw",
    );
    d.refused(
        &["progress", "delete", "T1/2025-12-31"],
        "progress withdraw",
    );
    d.refused(&["need", "edit", "R1", "--cost", "5"], "need withdraw R1");
    d.refused(&["need", "delete", "R1"], "need withdraw R1");
    // A new version is a draft again, and that one can be corrected.
    d.ok(&[
        "target",
        "supersede",
        "T1",
        "--value",
        "75",
        "--reason",
        "ahead of plan",
    ]);
    d.ok(&["target", "edit", "T1", "--value", "76"]);
    let t1 = d.json(&["target", "show", "T1", "--json"]);
    assert_eq!(t1["value"], 76.0);
    assert_eq!(t1["versions"].as_array().unwrap().len(), 2);

    // Withdrawing a published report and request: pending until published.
    d.ok(&[
        "progress",
        "withdraw",
        "T1/2025-12-31",
        "--reason",
        "double-counted a depot",
    ]);
    d.ok(&["need", "withdraw", "R1", "--reason", "entered by mistake"]);
    d.refused(
        &["progress", "withdraw", "T1/2025-12-31", "--reason", "again"],
        "already withdrawn",
    );
    let preview = d.ok(&["submission", "publish", "--dry-run"]);
    assert!(
        preview.contains("target T1 changes: version 2 (ahead of plan)"),
        "{preview}"
    );
    assert!(
        preview.contains("progress report T1/2025-12-31 is withdrawn (double-counted a depot)"),
        "{preview}"
    );
    assert!(
        preview.contains("assistance request R1 is withdrawn (entered by mistake)"),
        "{preview}"
    );
    assert!(preview.contains("Nothing published"), "{preview}");
}

#[test]
fn publishing_shows_what_goes_out_and_asks_first() {
    let d = Desk::new();
    d.ok(T1);
    d.ok(&[
        "progress",
        "add",
        "T1",
        "--as-of",
        "2025-12-31",
        "--value",
        "55",
    ]);
    // Nobody at a terminal to confirm: refused, nothing published.
    let out = d.run(&["submission", "publish"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("new target T1") && stdout.contains("new progress report T1/2025-12-31"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    let dry = d.json(&["submission", "publish", "--dry-run", "--json"]);
    assert_eq!(dry["pending"].as_array().unwrap().len(), 2, "{dry}");
    assert_eq!(
        d.json(&["submission", "show", "--format", "json"])["pending"],
        dry["pending"]
    );
    let done = d.json(&["submission", "publish", "--yes", "--json"]);
    assert_eq!(done["published"], dry["pending"]);
    let again = d.ok(&["submission", "publish", "--yes"]);
    assert!(again.contains("Nothing to publish"), "{again}");
}

#[test]
fn the_printed_submission_marks_drafts_and_shows_evidence_and_findings() {
    let d = Desk::new();
    let dir = d.dir();
    d.ok(T1);
    let evidence = write_file(dir, "marking-2025.pdf", b"%PDF-1.4 marking records");
    let path = evidence.to_str().unwrap();
    d.ok(&[
        "progress",
        "add",
        "T1",
        "--as-of",
        "2025-12-31",
        "--value",
        "55",
        "--evidence",
        "https://example.org/marking-2025.pdf",
        "--evidence-file",
        path,
        "--source",
        "national marking register",
    ]);
    d.ok(&["target", "publish", "T1"]);
    // A second report with a local path as evidence and a date in the future: warnings.
    let out = d.run(&[
        "progress",
        "add",
        "T1",
        "--as-of",
        "2031-01-01",
        "--value",
        "60",
        "--evidence-file",
        path,
    ]);
    assert!(out.status.success());
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(warned.contains("warning"), "{warned}");

    let md_path = dir.join("xaa.md");
    let html_path = dir.join("xaa.html");
    d.ok(&[
        "submission",
        "report",
        "--cycle",
        "BMS9",
        "--format",
        "md",
        "--out",
        md_path.to_str().unwrap(),
    ]);
    d.ok(&[
        "submission",
        "report",
        "--cycle",
        "BMS9",
        "--out",
        html_path.to_str().unwrap(),
    ]);
    let md = std::fs::read_to_string(&md_path).unwrap();
    let page = std::fs::read_to_string(&html_path).unwrap();
    let digest = d.json(&["evidence", "verify", path, "--json"])["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(digest.len(), 64);
    for text in [&md, &page] {
        assert!(text.contains(&digest), "the evidence's digest is missing");
        assert!(text.contains("national marking register"));
        assert!(text.contains("2031-01-01"));
        assert!(text.contains("DRAFT"));
        assert!(text.to_lowercase().contains("warning"));
    }
    // The published report is not marked DRAFT; the new one is.
    assert!(md.contains("#### Progress 2025-12-31\n"), "{md}");
    assert!(md.contains("#### Progress 2031-01-01 — DRAFT"), "{md}");
    assert!(page.contains("@page") && page.contains("counter(page)"));

    // evidence verify names both reports, and fails for a file nobody cites.
    let cited = d.ok(&["evidence", "verify", path]);
    assert!(
        cited.contains("T1/2025-12-31") && cited.contains("T1/2031-01-01"),
        "{cited}"
    );
    let other = write_file(dir, "other.pdf", b"something else");
    let out = d.run(&["evidence", "verify", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    // A missing evidence file is one line, nothing written.
    d.refused(
        &[
            "progress",
            "add",
            "T1",
            "--as-of",
            "2025-06-30",
            "--value",
            "50",
            "--evidence-file",
            "/nonexistent/x.pdf",
        ],
        "cannot read the evidence file",
    );
}

/// A command that must fail with one line on stderr containing `expect`, and leave the body's
/// offers as they were.
fn offer_refused(d: &Desk, args: &[&str], expect: &str) {
    let before = d.json(&["offer", "list", "--json"]);
    let out = d.run(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "`{}` succeeded", args.join(" "));
    assert!(stderr.contains(expect), "`{}`: {stderr}", args.join(" "));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_eq!(
        d.json(&["offer", "list", "--json"]),
        before,
        "`{}`",
        args.join(" ")
    );
}

fn offer_statuses(d: &Desk) -> Vec<(String, String)> {
    d.json(&["offer", "list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap().to_string(),
                o["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const O1: &[&str] = &[
    "offer",
    "add",
    "--id",
    "O1",
    "--title",
    "Marking training",
    "--area",
    "marking",
    "--kind",
    "training",
    "--budget-max",
    "150000",
    "--currency",
    "USD",
];

#[test]
fn offers_are_drafts_until_published_and_then_withdrawn_not_edited() {
    let d = Desk::body();
    let out = d.ok(O1);
    assert!(out.contains("draft"), "{out}");
    assert_eq!(offer_statuses(&d), [("O1".into(), "draft".into())]);
    // A draft is corrected and deleted.
    d.ok(&[
        "offer",
        "edit",
        "O1",
        "--title",
        "Marking kits and training",
    ]);
    assert_eq!(
        d.json(&["offer", "list", "--json"])[0]["title"],
        "Marking kits and training"
    );
    offer_refused(&d, &["offer", "edit", "O9", "--title", "x"], "no offer O9");
    offer_refused(&d, &["offer", "edit", "O1"], "O1");
    d.ok(&["offer", "delete", "O1"]);
    assert!(offer_statuses(&d).is_empty());
    d.ok(O1);
    // The checks: ids equal but for case refused, a budget without a currency warned of.
    offer_refused(
        &d,
        &[
            "offer", "add", "--id", "o1", "--title", "t", "--area", "marking", "--kind", "training",
        ],
        "differ only by case",
    );
    let out = d.run(&[
        "offer",
        "add",
        "--id",
        "O2",
        "--title",
        "Stockpile grants",
        "--area",
        "stockpile",
        "--kind",
        "financial",
        "--budget-max",
        "50000",
    ]);
    assert!(out.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("--currency"), "{said}");
    // Publishing shows what goes out, and asks unless told.
    let preview = d.json(&["offer", "publish", "--dry-run", "--json"]);
    let ids: Vec<&str> = preview["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["O1", "O2"]);
    offer_refused(&d, &["offer", "publish", "--json"], "--yes");
    let out = d.ok(&["offer", "publish", "O1", "--yes"]);
    assert!(out.contains("offers/XZZ"), "{out}");
    assert_eq!(
        offer_statuses(&d),
        [
            ("O1".into(), "published".into()),
            ("O2".into(), "draft".into())
        ]
    );
    // Published: never edited in place, withdrawn instead.
    offer_refused(
        &d,
        &["offer", "edit", "O1", "--title", "x"],
        "never edited in place",
    );
    offer_refused(&d, &["offer", "delete", "O1"], "offer withdraw O1");
    offer_refused(
        &d,
        &["offer", "withdraw", "O2", "--reason", "x"],
        "never published",
    );
    d.ok(&["offer", "withdraw", "O1", "--reason", "budget spent"]);
    assert_eq!(offer_statuses(&d)[0].1, "withdrawal pending");
    offer_refused(
        &d,
        &["offer", "withdraw", "O1", "--reason", "again"],
        "already withdrawn",
    );
    d.ok(&["offer", "publish", "--yes"]);
    assert_eq!(
        offer_statuses(&d),
        [
            ("O1".into(), "withdrawn".into()),
            ("O2".into(), "published".into())
        ]
    );
    let out = d.ok(&["offer", "publish", "--yes"]);
    assert!(out.contains("Nothing to publish"), "{out}");
    // The draft never leaves the body's nodes.
    offer_refused(&d, &["share", "offers/XZZ/draft", "--public"], "is a draft");
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_as_unix_tools_do() {
    // `poa-node target list | head` once the reader has gone: no panic, nothing on stderr,
    // the status of a process ended by SIGPIPE.
    let d = Desk::new();
    d.ok(T1);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(common::bin())
        .env_remove("RUST_LOG")
        .arg("--home")
        .arg(&d.home)
        .args(["target", "list"])
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(141), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
