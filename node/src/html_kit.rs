//! The small HTML kit the report's page and the dashboard share: escaping, the page shell and
//! its stylesheet, tables, the standings' colours, their legend and the stacked-bar chart.
//!
//! Pages are plain HTML with inline SVG: no script, nothing fetched from elsewhere.

use std::fmt::Write as _;

use poa_protocol::stocktake::{Counts, Standing};

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The colour of each standing in charts (distinguishable in grey when printed, with labels).
pub fn colour(s: Standing) -> &'static str {
    match s {
        Standing::Achieved => "#1b7837",
        Standing::InProgress => "#2166ac",
        Standing::NotAchieved => "#b2182b",
        Standing::NoData => "#969696",
        Standing::Withdrawn => "#d9d9d9",
    }
}

/// The page's stylesheet: readable on screen, clean on paper.
pub const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1a1a1a;background:#fafafa}
header{background:#0b3d5c;color:#fff;padding:1rem 2rem}header h1{margin:0;font-size:1.5rem}header p{margin:.25rem 0 0;opacity:.85}
nav{background:#e8eef2;padding:.5rem 2rem}nav a{margin-right:1.2rem;color:#0b3d5c;text-decoration:none;font-weight:600}
main{padding:1rem 2rem;max-width:72rem}
section{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:1rem 1.25rem;margin:1rem 0;break-inside:avoid}
h2{font-size:1.15rem;margin:.2rem 0 .8rem;color:#0b3d5c}
.figures{display:flex;flex-wrap:wrap;gap:1rem}.figure{flex:1 1 9rem;border-left:4px solid #0b3d5c;padding:.3rem .8rem;background:#f4f7f9}
.figure b{display:block;font-size:1.6rem}.figure span{font-size:.85rem;color:#444}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f4f7f9}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.flag-shortfall{color:#b2182b;font-weight:600}.flag-progresses{color:#1b7837}
.legend span{display:inline-block;margin-right:1rem;font-size:.85rem}.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
.muted{color:#666;font-size:.85rem}code{font-size:.8rem;word-break:break-all}
@media print{body{background:#fff}nav{display:none}header{background:#fff;color:#000;border-bottom:2px solid #000}section{border:none;padding:0}main{max-width:none}}
";

/// A whole page: `title` and `subtitle` in its header, then `nav` and `body` (HTML), then
/// `trailer` (HTML, such as the report's stamp) before the end of the body.
pub fn page(title: &str, subtitle: &str, nav: &str, body: &str, trailer: Option<&str>) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<header><h1>{}</h1><p>{}</p></header>\n{nav}<main>\n{body}</main>\n",
        esc(title),
        esc(title),
        esc(subtitle)
    );
    if let Some(t) = trailer {
        o.push_str(t);
    }
    o.push_str("</body>\n</html>\n");
    o
}

/// The key to the standings' colours.
pub fn legend() -> String {
    let mut o = String::from("<p class=\"legend\">");
    for s in Standing::ALL {
        let _ = write!(
            o,
            "<span><i style=\"background:{}\"></i>{}</span>",
            colour(s),
            s.slug()
        );
    }
    o.push_str("</p>");
    o
}

/// Horizontal stacked bars: one row per label, segments by standing.
pub fn chart_standings(id: &str, title: &str, rows: &[(String, Counts)]) -> String {
    let (w, label_w, row_h) = (720.0, 210.0, 26.0);
    let h = row_h * rows.len() as f64 + 10.0;
    let max = rows
        .iter()
        .map(|(_, c)| c.targets)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let scale = (w - label_w - 60.0) / max;
    let mut o = format!(
        "<svg id=\"{id}\" class=\"chart\" role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {w} {h}\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"12\">",
        esc(title)
    );
    let _ = write!(o, "<title>{}</title>", esc(title));
    for (i, (label, c)) in rows.iter().enumerate() {
        let y = 5.0 + i as f64 * row_h;
        let _ = write!(
            o,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            label_w - 8.0,
            y + 15.0,
            esc(label)
        );
        let mut x = label_w;
        for s in Standing::ALL {
            let n = c.of(s);
            if n == 0 {
                continue;
            }
            let bw = f64::from(n) * scale;
            let _ = write!(
                o,
                "<rect x=\"{x:.1}\" y=\"{y}\" width=\"{bw:.1}\" height=\"{}\" fill=\"{}\"><title>{}: {n} {}</title></rect>",
                row_h - 6.0,
                colour(s),
                esc(label),
                s.slug()
            );
            if bw >= 16.0 {
                let _ = write!(
                    o,
                    "<text x=\"{:.1}\" y=\"{}\" fill=\"#fff\" text-anchor=\"middle\">{n}</text>",
                    x + bw / 2.0,
                    y + 15.0
                );
            }
            x += bw;
        }
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{}\">{}</text>",
            x + 6.0,
            y + 15.0,
            c.targets
        );
    }
    o.push_str("</svg>");
    o
}

/// An HTML table: `rows` are cells of HTML (escape text first); `numeric` columns align right.
pub fn html_table(header: &[&str], numeric: &[usize], rows: &[Vec<String>]) -> String {
    let mut o = String::from("<table><thead><tr>");
    for (i, h) in header.iter().enumerate() {
        let class = if numeric.contains(&i) {
            " class=\"n\""
        } else {
            ""
        };
        let _ = write!(o, "<th{class}>{}</th>", esc(h));
    }
    o.push_str("</tr></thead><tbody>");
    for r in rows {
        o.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let class = if numeric.contains(&i) {
                " class=\"n\""
            } else {
                ""
            };
            let _ = write!(o, "<td{class}>{c}</td>");
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table>");
    o
}
