//! The stocktake of the illustrative data set, computed by the real binary on the homes of a
//! demo federation: the figures the illustrative data set implies, byte-identical reports on two nodes that
//! synced the same documents, and `stocktake verify` catching one altered figure.

#![allow(clippy::unwrap_used)]

mod common;
use common::poa_node_at;
use serde_json::{Value, json};

fn demo_homes() -> &'static std::path::Path {
    common::demo_homes(concat!(env!("CARGO_TARGET_TMPDIR"), "/stocktake-demo"))
}

/// Statuses are judged at a fixed date so the figures do not move with the calendar.
const AS_OF: &str = "2026-11-27";

fn report(node: &str, format: &str) -> String {
    let out = poa_node_at(
        &demo_homes().join(node),
        &[
            "stocktake",
            "--cycle",
            "BMS9",
            "--as-of",
            AS_OF,
            "--format",
            format,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_illustrative_data_set_gives_the_figures_domain_md_implies() {
    let st: Value = serde_json::from_str(&report("secretariat", "json")).unwrap();
    assert_eq!(st["format"], "poa-stocktake/1");
    assert_eq!(st["as_of"], AS_OF);
    assert_eq!(
        st["totals"],
        json!({"targets": 7, "achieved": 2, "in_progress": 3, "not_achieved": 1,
               "no_data": 1, "withdrawn": 0, "share_achieved": 2.0 / 7.0})
    );
    assert_eq!(
        st["participation"]["reported"],
        json!(["XAA", "XAB", "XAC"])
    );
    let standing = |state: &str, id: &str| {
        st["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["state"] == state && t["id"] == id)
            .map(|t| {
                (
                    t["version"].as_u64().unwrap(),
                    t["standing"].as_str().unwrap().to_string(),
                )
            })
            .unwrap()
    };
    // Past its deadline (2026-06-30) at 55 of 70: not achieved.
    assert_eq!(standing("XAA", "T1"), (1, "not-achieved".into()));
    // No progress report: no data, never zero.
    assert_eq!(standing("XAC", "T3"), (1, "no-data".into()));
    // Version 2 supersedes version 1 and is the one counted.
    assert_eq!(standing("XAB", "T1"), (2, "in-progress".into()));
    assert_eq!(
        st["progression"],
        json!([
            {"state": "XAA", "target": "T1 v1", "against": "M1 (RevCon4)", "flag": "progresses",
             "detail": "target raised from 40 to 70 percent"},
            {"state": "XAB", "target": "T1 v2", "against": "T1 v1", "flag": "shortfall",
             "detail": "target lowered from 25 to 20 percent"},
        ])
    );
    let unmet: Vec<&str> = st["unmet_needs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["need"].as_str().unwrap())
        .collect();
    assert_eq!(unmet, ["XAB/R1"]);
    assert_eq!(st["met_needs"], 1);
    let p1 = &st["pools"][0]["pooled"][0];
    assert_eq!(p1["aggregate"], "sum");
    assert_eq!(
        (
            p1["current"].clone(),
            p1["goal"].clone(),
            p1["baseline"].clone()
        ),
        (json!(1800.0), json!(8000.0), json!(0.0))
    );
    assert_eq!(p1["reached"], false);
    let missing: Vec<&str> = p1["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| !m["missing"].is_null())
        .map(|m| m["state"].as_str().unwrap())
        .collect();
    assert_eq!(missing, ["XAA", "XAC"]);
    assert_eq!(
        st["sdg_16_4_2"],
        json!([{"state": "XAB", "m49": null, "year": 2025, "value": 15.0, "target": "T1"}])
    );
    let trends: Vec<(String, u64)> = st["trends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["cycle"].as_str().unwrap().into(),
                t["counts"]["targets"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(trends, [("RevCon4".into(), 1), ("BMS9".into(), 7)]);
    assert_eq!(st["data_quality"], json!([]));
    let docs: Vec<&str> = st["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["doc"].as_str().unwrap())
        // The pool's id ends with a fingerprint of its coordinator's key, new every run.
        .map(|d| d.split('~').next().unwrap())
        .collect();
    assert_eq!(
        docs,
        [
            "offers/XZZ",
            "pool/xanadu",
            "state/XAA",
            "state/XAB",
            "state/XAC"
        ]
    );

    // The SDG file carries the series and the figure.
    let sdg = report("secretariat", "sdg-csv");
    assert_eq!(
        sdg,
        "Indicator,SeriesCode,GeoAreaCode,GeoAreaName,TimePeriod,Value,Units,Source\n\
         16.4.2,VC_ARM_SZTRACE,,XAB,2025,15,PERCENT,state/XAB target T1\n"
    );
}

#[test]
fn two_nodes_with_the_same_documents_write_the_same_bytes_and_verify_catches_an_altered_figure() {
    // XRB and the Secretariat each received the documents by sync, by different routes.
    for format in ["json", "md", "html", "csv"] {
        let (un, xrb) = (report("secretariat", format), report("xrb", format));
        assert!(un == xrb, "{format} reports differ:\n{un}\n---\n{xrb}");
    }
    let dir = tempfile::tempdir().unwrap();
    for format in ["json", "md", "html"] {
        let file = dir.path().join(format!("bms9.{format}"));
        std::fs::write(&file, report("secretariat", format)).unwrap();
        let out = poa_node_at(
            &demo_homes().join("xrb"),
            &["stocktake", "verify", file.to_str().unwrap()],
        );
        assert!(out.status.success(), "{format}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("matches"),
            "{out:?}"
        );
    }
    // One figure altered: the pooled sum, 1800 -> 1900.
    let file = dir.path().join("bms9.json");
    let altered = std::fs::read_to_string(&file).unwrap().replacen(
        "\"current\": 1800.0",
        "\"current\": 1900.0",
        1,
    );
    assert!(altered.contains("1900.0"));
    std::fs::write(&file, altered).unwrap();
    let out = poa_node_at(
        &demo_homes().join("xrb"),
        &["stocktake", "verify", file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("does not match") && stderr.contains("1900"),
        "{stderr}"
    );
    // In Markdown too.
    let file = dir.path().join("bms9.md");
    let altered = std::fs::read_to_string(&file).unwrap().replacen(
        "- Targets: 7; achieved 2",
        "- Targets: 7; achieved 3",
        1,
    );
    std::fs::write(&file, altered).unwrap();
    let out = poa_node_at(
        &demo_homes().join("xrb"),
        &["stocktake", "verify", file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    // A node that lacks a cited document says so rather than guessing.
    let file = dir.path().join("bms9.html");
    let out = poa_node_at(
        &demo_homes().join("xzz"),
        &["stocktake", "verify", file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("does not hold"), "{stderr}");
}

#[test]
fn bad_stocktake_input_gets_one_line() {
    let un = demo_homes().join("secretariat");
    for (args, says) in [
        (vec!["stocktake", "--cycle", "BMS99"], "unknown cycle"),
        (vec!["stocktake", "--format", "pdf"], "unknown format 'pdf'"),
        (vec!["stocktake", "--as-of", "2026-13-01"], "2026-13-01"),
        (
            vec!["stocktake", "verify", "/nonexistent/report.json"],
            "cannot read",
        ),
    ] {
        let out = poa_node_at(&un, &args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.md");
    std::fs::write(&junk, "# not a report\n").unwrap();
    let out = poa_node_at(&un, &["stocktake", "verify", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no stocktake stamp"));
}
