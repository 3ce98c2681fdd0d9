//! How figures, lists and tables are written for people, by the CLI, the demo, the reports and
//! the dashboard.
//!
//! Every figure a person reads goes through [`num`]: no trailing `.0`, at most two decimals,
//! thousands grouped (`5,000`, `1,234.5`, `-2,500`); an absent figure is written [`NONE`]
//! (`-`), through [`opt`]. Machine-readable outputs (JSON, CSV) keep numbers as they are, and
//! counts (changes, bytes, versions) are written as plain integers. Plain-text tables are
//! written by [`table`], their cells made [`safe`] for a terminal.

use std::fmt::Write as _;

/// What an absent figure is written as.
pub const NONE: &str = "-";

/// A figure as people write it: no trailing `.0`, at most two decimals, thousands grouped
/// (`5,000`); [`NONE`] if it is not a finite number.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return NONE.into();
    }
    let (int, frac) = if v.fract() == 0.0 && v.abs() < 1e15 {
        (format!("{}", v.abs() as i64), String::new())
    } else {
        let s = format!("{:.2}", v.abs());
        let (i, f) = s.split_once('.').unwrap_or((&s, ""));
        let f = f.trim_end_matches('0');
        (
            i.to_string(),
            if f.is_empty() {
                String::new()
            } else {
                format!(".{f}")
            },
        )
    };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{}{grouped}{frac}", if v < 0.0 { "-" } else { "" })
}

/// A figure that may be absent: [`num`], or [`NONE`].
pub fn opt(v: Option<f64>) -> String {
    v.map(num).unwrap_or_else(|| NONE.into())
}

/// A share (0.25) as a whole percentage (`25 %`), or [`NONE`].
pub fn pct(v: Option<f64>) -> String {
    v.map(|s| format!("{:.0} %", s * 100.0))
        .unwrap_or_else(|| NONE.into())
}

/// Items joined with commas, or `none`.
pub fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Text from a document or a peer, made safe for a terminal: control characters (which could
/// move the cursor, rewrite earlier lines or change colours) are shown escaped.
pub fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Rows as aligned text columns under `header`, one line each (ending in a newline) starting
/// with `indent`: cells made [`safe`], columns as wide as their widest cell and two spaces
/// apart, no trailing spaces.
pub fn table(indent: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| safe(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            let w = c.chars().count();
            match widths.get_mut(i) {
                Some(old) => *old = (*old).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut s = String::from(indent);
        for (i, c) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            let _ = write!(s, "{c:<w$}  ");
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for r in &rows {
        line(r);
    }
    out
}

/// Prints [`table`] without indent: the CLI's listings.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    print!("{}", table("", header, rows));
}

/// Bytes as lowercase hexadecimal.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_grouped_and_trimmed() {
        assert_eq!(num(5000.0), "5,000");
        assert_eq!(num(1_234_567.0), "1,234,567");
        assert_eq!(num(1234.5), "1,234.5");
        assert_eq!(num(-2500.0), "-2,500");
        assert_eq!(num(40.0), "40");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(12.25), "12.25");
        assert_eq!(num(f64::NAN), NONE);
        assert_eq!(opt(Some(8000.0)), "8,000");
        assert_eq!(opt(None), "-");
        assert_eq!(pct(Some(0.25)), "25 %");
        assert_eq!(list(&[]), "none");
    }

    #[test]
    fn tables_align_columns_and_escape_control_characters() {
        let rows = vec![
            vec!["T1".to_string(), "5,000".to_string(), "Mark".to_string()],
            vec![
                "T10".to_string(),
                "-".to_string(),
                "a\u{1b}[2Jb".to_string(),
            ],
        ];
        assert_eq!(
            table("  ", &["ID", "VALUE", "TITLE"], &rows),
            "  ID   VALUE  TITLE\n  T1   5,000  Mark\n  T10  -      a\\u{1b}[2Jb\n"
        );
    }
}
