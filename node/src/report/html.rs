//! The stocktake as a self-contained HTML page: key figures, charts by area, pool and cycle,
//! and every table of the Markdown report, built with the [HTML kit](crate::html_kit).

use std::fmt::Write as _;

use poa_protocol::stocktake::{Counts, SDG_SERIES, Standing, Stocktake};

use super::Stamp;
use crate::format::{list, num, opt, pct};
use crate::html_kit::{chart_standings, colour, esc, html_table, legend, page};

/// One bar per pooled target: current against goal, baseline marked.
pub fn chart_pooled(st: &Stocktake) -> String {
    let rows: Vec<(String, &poa_protocol::stocktake::PooledRow)> = st
        .pools
        .iter()
        .flat_map(|p| {
            p.pooled
                .iter()
                .map(move |r| (format!("{} {}", p.id, r.id), r))
        })
        .collect();
    let (w, label_w, row_h) = (720.0, 210.0, 34.0);
    let h = row_h * rows.len().max(1) as f64 + 10.0;
    let mut o = format!(
        "<svg id=\"chart-pooled\" class=\"chart\" role=\"img\" aria-label=\"Progress of pooled targets\" viewBox=\"0 0 {w} {h}\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"12\"><title>Progress of pooled targets</title>"
    );
    if rows.is_empty() {
        let _ = write!(o, "<text x=\"10\" y=\"20\">No pooled targets.</text>");
    }
    let bar_w = w - label_w - 170.0;
    for (i, (label, r)) in rows.iter().enumerate() {
        let y = 5.0 + i as f64 * row_h;
        let top = r.goal.unwrap_or(0.0).max(r.current.unwrap_or(0.0)).max(1.0);
        let _ = write!(
            o,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{label_w}\" y=\"{y}\" width=\"{bar_w}\" height=\"22\" fill=\"#e8eef2\"/>",
            label_w - 8.0,
            y + 15.0,
            esc(label)
        );
        if let Some(c) = r.current {
            let cw = (c / top).clamp(0.0, 1.0) * bar_w;
            let _ = write!(
                o,
                "<rect x=\"{label_w}\" y=\"{y}\" width=\"{cw:.1}\" height=\"22\" fill=\"{}\"><title>current {}</title></rect>",
                colour(Standing::InProgress),
                num(c)
            );
        }
        if let Some(g) = r.goal {
            let gx = label_w + (g / top).clamp(0.0, 1.0) * bar_w;
            let _ = write!(
                o,
                "<line x1=\"{gx:.1}\" x2=\"{gx:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#1a1a1a\" stroke-width=\"2\"><title>goal {}</title></line>",
                y - 2.0,
                y + 24.0,
                num(g)
            );
        }
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{}\">{} of {}{}</text>",
            label_w + bar_w + 8.0,
            y + 15.0,
            opt(r.current),
            opt(r.goal),
            r.unit
                .as_ref()
                .map(|u| format!(" {}", esc(u)))
                .unwrap_or_default()
        );
    }
    o.push_str("</svg>");
    o
}

fn figures(st: &Stocktake) -> String {
    let t = &st.totals;
    let items = [
        (t.targets.to_string(), "targets for the cycle"),
        (
            st.participation.reported.len().to_string(),
            "States reported progress",
        ),
        (pct(t.share_achieved), "share achieved"),
        (t.no_data.to_string(), "targets with no data"),
        (st.unmet_needs.len().to_string(), "unmet requests"),
    ];
    let mut o = String::from("<div class=\"figures\">");
    for (n, label) in items {
        let _ = write!(
            o,
            "<div class=\"figure\"><b>{}</b><span>{}</span></div>",
            esc(&n),
            label
        );
    }
    o.push_str("</div>");
    o
}

/// The body of the stocktake page (the report and the dashboard's front page).
pub fn stocktake_body(st: &Stocktake) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<section id=\"key-figures\"><h2>Key figures</h2>{}<p class=\"muted\">States that reported: {}. Targets but no report yet: {}. Data held, no target for {}: {}. Pool members whose data is not held here: {}.</p></section>",
        figures(st),
        esc(&list(&st.participation.reported)),
        esc(&list(&st.participation.targets_only)),
        esc(&st.cycle),
        esc(&list(&st.participation.no_targets)),
        esc(&list(&st.participation.not_held))
    );
    let rows: Vec<(String, Counts)> = st
        .by_area
        .iter()
        .map(|a| (a.label.clone(), a.counts.clone()))
        .collect();
    let _ = write!(
        o,
        "<section id=\"by-area\"><h2>Status by commitment area</h2>{}{}</section>",
        legend(),
        chart_standings("chart-areas", "Status of targets by commitment area", &rows)
    );
    let _ = write!(
        o,
        "<section id=\"pooled\"><h2>Pooled targets</h2>{}",
        chart_pooled(st)
    );
    for p in &st.pools {
        for r in &p.pooled {
            let rows: Vec<Vec<String>> = r
                .members
                .iter()
                .map(|m| {
                    vec![
                        esc(&m.state),
                        opt(m.value),
                        esc(m.missing.as_deref().unwrap_or("counted")),
                    ]
                })
                .collect();
            let _ = write!(
                o,
                "<p><b>{} {}</b> ({} of {}): baseline {}, goal {}, current {}.</p>{}",
                esc(&p.id),
                esc(&r.title),
                esc(&r.aggregate),
                esc(&r.from),
                opt(r.baseline),
                opt(r.goal),
                opt(r.current),
                html_table(&["member", "figure", "note"], &[1], &rows)
            );
        }
    }
    o.push_str("</section>");
    let rows: Vec<(String, Counts)> = st
        .trends
        .iter()
        .map(|t| (t.cycle.clone(), t.counts.clone()))
        .collect();
    let _ = write!(
        o,
        "<section id=\"trends\"><h2>Trends across cycles</h2>{}{}</section>",
        legend(),
        chart_standings("chart-trends", "Targets by status, cycle by cycle", &rows)
    );
    let rows: Vec<(String, Counts)> = st
        .pools
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_else(|| p.id.clone()),
                p.counts.clone(),
            )
        })
        .collect();
    if !rows.is_empty() {
        let _ = write!(
            o,
            "<section id=\"regional\"><h2>Regional view by pool</h2>{}</section>",
            chart_standings(
                "chart-regional",
                "Members' targets by status, by pool",
                &rows
            )
        );
    }
    let rows: Vec<Vec<String>> = st
        .progression
        .iter()
        .map(|p| {
            vec![
                esc(&p.state),
                esc(&p.target),
                esc(&p.against),
                format!(
                    "<span class=\"flag-{}\">{}</span>",
                    esc(&p.flag),
                    esc(&p.flag)
                ),
                esc(&p.detail),
            ]
        })
        .collect();
    let _ = write!(
        o,
        "<section id=\"progression\"><h2>Progression</h2>{}</section>",
        if rows.is_empty() {
            "<p>No target follows an earlier one.</p>".into()
        } else {
            html_table(
                &["State", "target", "compared with", "flag", "detail"],
                &[],
                &rows,
            )
        }
    );
    let rows: Vec<Vec<String>> = st
        .unmet_needs
        .iter()
        .map(|n| {
            vec![
                esc(&n.need),
                esc(&n.area),
                esc(&n.kind),
                esc(&n.priority),
                esc(&n.title),
                esc(&list(&n.matches)),
            ]
        })
        .collect();
    let _ = write!(
        o,
        "<section id=\"unmet\"><h2>Unmet requests for assistance</h2>{}<p class=\"muted\">{} request(s) matched.</p></section>",
        if rows.is_empty() {
            "<p>None.</p>".into()
        } else {
            html_table(
                &["request", "area", "kind", "priority", "title", "matches"],
                &[],
                &rows,
            )
        },
        st.met_needs
    );
    let rows: Vec<Vec<String>> = st
        .sdg_16_4_2
        .iter()
        .map(|r| {
            vec![
                esc(&r.state),
                r.m49
                    .map(|m| format!("{m:03}"))
                    .unwrap_or_else(|| "-".into()),
                r.year.to_string(),
                num(r.value),
                esc(&r.target),
            ]
        })
        .collect();
    let _ = write!(
        o,
        "<section id=\"sdg\"><h2>SDG 16.4.2 ({SDG_SERIES})</h2>{}</section>",
        if rows.is_empty() {
            "<p>No figures reported.</p>".into()
        } else {
            html_table(
                &["State", "M49", "year", "percent", "target"],
                &[2, 3],
                &rows,
            )
        }
    );
    let rows: Vec<Vec<String>> = st
        .data_quality
        .iter()
        .map(|f| vec![esc(&f.state), esc(&f.record), esc(&f.flag), esc(&f.detail)])
        .collect();
    let _ = write!(
        o,
        "<section id=\"quality\"><h2>Data quality</h2>{}</section>",
        if rows.is_empty() {
            "<p>No flags.</p>".into()
        } else {
            html_table(&["State", "record", "flag", "detail"], &[], &rows)
        }
    );
    let rows: Vec<Vec<String>> = st
        .targets
        .iter()
        .map(|t| {
            vec![
                esc(&t.state),
                format!("{} v{}", esc(&t.id), t.version),
                esc(&t.area),
                esc(&t.title),
                opt(t.baseline),
                opt(t.value),
                opt(t.latest),
                t.deadline.to_string(),
                format!(
                    "<span style=\"color:{}\">{}</span>",
                    colour(t.standing),
                    t.standing.slug()
                ),
            ]
        })
        .collect();
    let _ = write!(
        o,
        "<section id=\"targets\"><h2>Targets</h2>{}</section>",
        html_table(
            &[
                "State", "target", "area", "title", "baseline", "goal", "latest", "deadline",
                "status"
            ],
            &[4, 5, 6],
            &rows
        )
    );
    let rows: Vec<Vec<String>> = st
        .sources
        .iter()
        .map(|s| {
            vec![
                esc(&s.doc),
                format!("<code>{}</code>", esc(&s.heads.join(" "))),
            ]
        })
        .collect();
    let _ = write!(
        o,
        "<section id=\"sources\"><h2>Sources</h2><p class=\"muted\">Statuses as of {}. Any node holding these documents at these heads computes this report byte for byte: <code>poa-node stocktake verify FILE</code>.</p>{}</section>",
        st.as_of,
        html_table(&["document", "heads"], &[], &rows)
    );
    o
}

/// The whole report as one page, with the stamp `verify` reads.
pub(super) fn html_report(st: &Stocktake) -> String {
    page(
        &format!("Stocktake {}", st.cycle),
        &format!("{}: statuses as of {}", st.meeting, st.as_of),
        "",
        &stocktake_body(st),
        Some(&Stamp::comment(st)),
    )
}
