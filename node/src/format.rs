//! How numbers, lists and tables are written for people, in the CLI, the demo and the reports.
//!
//! Machine-readable outputs (JSON, CSV) keep numbers as they are; everything a person reads
//! goes through [`num`]: no trailing `.0`, at most two decimals, thousands grouped (`5,000`,
//! `1,234.5`). A figure that is absent is written [`NONE`] (`-`).

/// What an absent figure is written as.
pub const NONE: &str = "-";

/// A number as people write it: no trailing `.0`, thousands grouped.
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
