//! Spreadsheets at the command line: the template, the export, and the all-or-nothing import,
//! including a workbook made by a spreadsheet program.

#![allow(clippy::unwrap_used)]

mod common;

use common::Desk;

use std::path::Path;

use serde_json::Value;

fn draft(d: &Desk) -> Value {
    let mut s = d.json(&["submission", "show", "--format", "json"]);
    s["produced"] = Value::Null;
    s["node"] = Value::Null;
    s["node_name"] = Value::Null;
    s
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A State's draft with targets of both kinds, progress with evidence, and a request.
fn filled() -> Desk {
    let d = Desk::new();
    d.ok(&[
        "target",
        "add",
        "--id",
        "T1",
        "--cycle",
        "BMS9",
        "--area",
        "marking",
        "--title",
        "Mark State-held SALW, all of them",
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
        "05.30,05.31",
        "--ref",
        "ITI 8",
        "--sdg",
        "16.4.2",
        "--description",
        "=HYPERLINK(\"http://example.org\")",
    ]);
    d.ok(&[
        "target",
        "add",
        "--id",
        "T2",
        "--cycle",
        "BMS9",
        "--area",
        "coordination",
        "--kind",
        "milestone",
        "--title",
        "National commission established",
        "--indicator",
        "commission established",
        "--deadline",
        "2026-06-30",
        "--conditional-on",
        "R1",
    ]);
    d.run(&[
        "need",
        "add",
        "--id",
        "R1",
        "--title",
        "Marking machines",
        "--target",
        "T1",
        "--area",
        "marking",
        "--kind",
        "equipment",
        "--cost",
        "120000.5",
        "--currency",
        "USD",
        "--priority",
        "high",
    ]);
    d.ok(&[
        "progress",
        "add",
        "T1",
        "--as-of",
        "2025-12-31",
        "--value",
        "55",
        "--assessment",
        "on-track",
        "--note",
        "five of eight provinces; teams at work",
        "--evidence",
        "https://example.org/m.pdf",
        "--sha256",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    ]);
    d
}

#[test]
fn an_export_imported_into_a_fresh_node_exports_the_same() {
    let a = filled();
    for (format, name) in [("csv", "sheets"), ("xlsx", "book.xlsx")] {
        let first = a.dir().join(format!("first-{name}"));
        a.ok(&[
            "submission",
            "export",
            "--format",
            format,
            "--out",
            p(&first),
        ]);
        let b = Desk::new();
        let out = b.ok(&["submission", "import", p(&first)]);
        assert!(
            out.contains("Imported 2 target(s), 1 progress report(s) and 1 request(s)"),
            "{out}"
        );
        let second = b.dir().join(format!("second-{name}"));
        b.ok(&[
            "submission",
            "export",
            "--format",
            format,
            "--out",
            p(&second),
        ]);
        // The same records, field for field.
        assert_eq!(draft(&a)["targets"], draft(&b)["targets"], "{format}");
        assert_eq!(draft(&a)["needs"], draft(&b)["needs"], "{format}");
        assert_eq!(
            poa_node::sheets::read(&first).unwrap(),
            poa_node::sheets::read(&second).unwrap(),
            "{format}"
        );
        if format == "csv" {
            for f in ["targets.csv", "progress.csv", "requests.csv", "README.txt"] {
                assert_eq!(
                    std::fs::read(first.join(f)).unwrap(),
                    std::fs::read(second.join(f)).unwrap(),
                    "{f}"
                );
            }
            // A cell a spreadsheet would run as a formula is neutralised in the file.
            let t = std::fs::read_to_string(first.join("targets.csv")).unwrap();
            assert!(t.contains("'=HYPERLINK"), "{t}");
        }
    }
}

#[test]
fn a_template_is_documented_and_imports_to_nothing() {
    let d = Desk::new();
    let book = d.dir().join("template.xlsx");
    d.ok(&["submission", "template", "--out", p(&book)]);
    let folder = d.dir().join("template");
    d.ok(&[
        "submission",
        "template",
        "--format",
        "csv",
        "--out",
        p(&folder),
    ]);
    let readme = std::fs::read_to_string(folder.join("README.txt")).unwrap();
    assert!(readme.contains("* deadline: YYYY-MM-DD"), "{readme}");
    let header = std::fs::read_to_string(folder.join("targets.csv")).unwrap();
    assert!(header.starts_with("id,cycle,area,title"), "{header}");
    for t in [&book, &folder] {
        let out = d.ok(&["submission", "import", p(t)]);
        assert!(out.contains("Imported 0 target(s)"), "{out}");
    }
}

#[test]
fn one_bad_row_writes_nothing_and_says_where() {
    let d = Desk::new();
    let folder = d.dir().join("sheets");
    d.ok(&[
        "submission",
        "template",
        "--format",
        "csv",
        "--out",
        p(&folder),
    ]);
    std::fs::write(
        folder.join("targets.csv"),
        "id,cycle,area,title,indicator,kind,deadline\n\
T1,BMS9,marking,Mark SALW,share marked,milestone,2026-06-30\n\
T2,BMS9,marking,Second,commission,milestone,2026-13-45\n",
    )
    .unwrap();
    std::fs::write(
        folder.join("progress.csv"),
        "target,as_of,value\nT1,2025-12-31,180\n",
    )
    .unwrap();
    let before = draft(&d);
    let out = d.run(&["submission", "import", p(&folder)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("sheet Targets, row 3, deadline: 2026-13-45 is not a date"),
        "{err}"
    );
    assert_eq!(draft(&d), before, "nothing written");
    // Fixed, the checks still see the rest: a milestone takes no value reported.
    std::fs::write(
        folder.join("targets.csv"),
        "id,cycle,area,title,indicator,kind,deadline\n\
T1,BMS9,marking,Mark SALW,share marked,milestone,2026-06-30\n",
    )
    .unwrap();
    let out = d.run(&["submission", "import", p(&folder)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sheet Progress, row 2"), "{err}");
    assert_eq!(draft(&d), before, "nothing written");
    // An unknown column is named too.
    std::fs::write(
        folder.join("progress.csv"),
        "target,as_of,colour\nT1,2025-12-31,red\n",
    )
    .unwrap();
    let out = d.run(&["submission", "import", p(&folder)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sheet Progress, row 1, colour: unknown column"),
        "{err}"
    );
    assert_eq!(draft(&d), before, "nothing written");
}

#[test]
fn a_workbook_made_by_a_spreadsheet_program_imports() {
    let d = Desk::new();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/made-by-gnumeric.xlsx");
    let out = d.ok(&["submission", "import", p(&fixture)]);
    assert!(
        out.contains("Imported 2 target(s), 1 progress report(s) and 1 request(s)"),
        "{out}"
    );
    let t1 = d.json(&["target", "show", "T1", "--json"]);
    // Dates typed into the spreadsheet are date cells; MOSAIC codes became numbers.
    assert_eq!(t1["deadline"], "2026-06-30");
    assert_eq!(t1["mosaic"], serde_json::json!(["05.30"]));
    assert_eq!(t1["baseline"], 40.0);
    let t2 = d.json(&["target", "show", "T2", "--json"]);
    assert_eq!(t2["mosaic"], serde_json::json!(["03.40"]));
    assert_eq!(t1["progress"][0]["as_of"], "2025-12-31");
    let needs = d.json(&["need", "list", "--json"]);
    assert_eq!(needs[0]["cost"], 120000.0);
}
