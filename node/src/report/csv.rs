//! The stocktake as CSV for spreadsheets: one row per target, numbers as they are, and text a
//! spreadsheet would run as a formula neutralised.

use std::fmt::Write as _;

use poa_protocol::stocktake::Stocktake;

/// A CSV cell. Text that a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return) is prefixed with `'`, so a title written by a State cannot
/// become a formula on an analyst's machine; numbers are left as they are.
fn csv_field(s: &str) -> String {
    let s = neutralise(s);
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Text a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return), prefixed with `'`; numbers and other text as they are.
pub fn neutralise(s: &str) -> String {
    let formula = s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.parse::<f64>().is_err();
    if formula {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// Writes one line of CSV cells.
pub(super) fn csv_row(out: &mut String, cells: &[String]) {
    let _ = writeln!(
        out,
        "{}",
        cells
            .iter()
            .map(|c| csv_field(c))
            .collect::<Vec<_>>()
            .join(",")
    );
}

fn raw(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// One row per target of the cycle, with its progression flag.
pub(super) fn csv(st: &Stocktake) -> String {
    let mut o = String::new();
    csv_row(
        &mut o,
        &[
            "cycle",
            "as_of",
            "state",
            "target",
            "version",
            "area",
            "title",
            "kind",
            "unit",
            "baseline",
            "goal",
            "latest",
            "latest_as_of",
            "deadline",
            "status",
            "progression",
        ]
        .map(String::from),
    );
    for t in &st.targets {
        let flag = st
            .progression
            .iter()
            .find(|p| p.state == t.state && p.target == format!("{} v{}", t.id, t.version))
            .map(|p| p.flag.clone())
            .unwrap_or_default();
        csv_row(
            &mut o,
            &[
                st.cycle.clone(),
                st.as_of.to_string(),
                t.state.clone(),
                t.id.clone(),
                t.version.to_string(),
                t.area.clone(),
                t.title.clone(),
                t.kind.clone(),
                t.unit.clone().unwrap_or_default(),
                raw(t.baseline),
                raw(t.value),
                raw(t.latest),
                t.latest_as_of.map(|d| d.to_string()).unwrap_or_default(),
                t.deadline.to_string(),
                t.standing.slug().into(),
                flag,
            ],
        );
    }
    o
}

#[cfg(test)]
mod tests {
    #[test]
    fn formulas_are_neutralised_and_numbers_are_not() {
        assert_eq!(
            super::csv_field("=HYPERLINK(\"x\")"),
            "\"'=HYPERLINK(\"\"x\"\")\""
        );
        assert_eq!(super::csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(super::csv_field("-5"), "-5");
        assert_eq!(super::csv_field("+2.5"), "+2.5");
        assert_eq!(super::csv_field("Mark SALW"), "Mark SALW");
    }
}
