//! The stocktake as Markdown: key figures, tables by area, pools, SDG 16.4.2, data quality,
//! trends, targets and sources, ending with the stamp `verify` reads.

use std::fmt::Write as _;

use poa_protocol::stocktake::{Counts, SDG_SERIES, Stocktake};

use super::Stamp;
use crate::format::{list, num, opt, pct};

fn md_table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} |",
            r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
        );
    }
    out.push('\n');
}

fn count_cells(c: &Counts) -> Vec<String> {
    vec![
        c.targets.to_string(),
        c.achieved.to_string(),
        c.in_progress.to_string(),
        c.not_achieved.to_string(),
        c.no_data.to_string(),
        c.withdrawn.to_string(),
        pct(c.share_achieved),
    ]
}

const COUNT_HEADER: [&str; 7] = [
    "targets",
    "achieved",
    "in progress",
    "not achieved",
    "no data",
    "withdrawn",
    "share achieved",
];

/// The whole report as Markdown.
pub(super) fn markdown(st: &Stocktake) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Stocktake {}: {}\n", st.cycle, st.meeting);
    let _ = writeln!(
        o,
        "Statuses as of {}. Computed from {} documents at the heads listed under Sources; any node holding them computes this report byte for byte (`poa-node stocktake verify FILE`). Aggregates only: States are listed by code, never ranked.\n",
        st.as_of,
        st.sources.len()
    );
    let t = &st.totals;
    let _ = writeln!(o, "## Key figures\n");
    let _ = writeln!(
        o,
        "- States that reported progress: {} ({})",
        st.participation.reported.len(),
        list(&st.participation.reported)
    );
    let _ = writeln!(
        o,
        "- States with targets but no progress report yet: {}",
        list(&st.participation.targets_only)
    );
    let _ = writeln!(
        o,
        "- States whose data is held, with no target for {}: {}",
        st.cycle,
        list(&st.participation.no_targets)
    );
    let _ = writeln!(
        o,
        "- Pool members whose data this node does not hold: {}",
        list(&st.participation.not_held)
    );
    let _ = writeln!(
        o,
        "- Targets: {}; achieved {}, in progress {}, not achieved {}, no data {}, withdrawn {}",
        t.targets, t.achieved, t.in_progress, t.not_achieved, t.no_data, t.withdrawn
    );
    let _ = writeln!(o, "- Share achieved: {}", pct(t.share_achieved));
    let _ = writeln!(
        o,
        "- Requests for assistance: {} unmet, {} matched\n",
        st.unmet_needs.len(),
        st.met_needs
    );

    let _ = writeln!(o, "## Targets by commitment area\n");
    let mut h = vec!["area"];
    h.extend(COUNT_HEADER);
    let rows: Vec<Vec<String>> = st
        .by_area
        .iter()
        .map(|a| {
            let mut r = vec![a.label.clone()];
            r.extend(count_cells(&a.counts));
            r
        })
        .collect();
    md_table(&mut o, &h, &rows);

    let _ = writeln!(o, "## Progression\n");
    if st.progression.is_empty() {
        let _ = writeln!(o, "No target follows an earlier one.\n");
    } else {
        let rows: Vec<Vec<String>> = st
            .progression
            .iter()
            .map(|p| {
                vec![
                    p.state.clone(),
                    p.target.clone(),
                    p.against.clone(),
                    p.flag.clone(),
                    p.detail.clone(),
                ]
            })
            .collect();
        md_table(
            &mut o,
            &["State", "target", "compared with", "flag", "detail"],
            &rows,
        );
    }

    let _ = writeln!(o, "## Unmet requests for assistance\n");
    if st.unmet_needs.is_empty() {
        let _ = writeln!(o, "None.\n");
    } else {
        let rows: Vec<Vec<String>> = st
            .unmet_needs
            .iter()
            .map(|n| {
                vec![
                    n.need.clone(),
                    n.area.clone(),
                    n.kind.clone(),
                    n.priority.clone(),
                    n.title.clone(),
                    list(&n.matches),
                ]
            })
            .collect();
        md_table(
            &mut o,
            &["request", "area", "kind", "priority", "title", "matches"],
            &rows,
        );
    }

    let _ = writeln!(o, "## Pools\n");
    if st.pools.is_empty() {
        let _ = writeln!(o, "No pools.\n");
    }
    for p in &st.pools {
        let _ = writeln!(
            o,
            "### {} ({})\n",
            p.name.clone().unwrap_or_else(|| p.id.clone()),
            p.id
        );
        let _ = writeln!(
            o,
            "Coordinator {}; members {}. Members' targets for {}: {} of {} achieved ({}).\n",
            p.coordinator.clone().unwrap_or_else(|| "-".into()),
            list(&p.members),
            st.cycle,
            p.counts.achieved,
            p.counts.targets,
            pct(p.counts.share_achieved)
        );
        for r in &p.pooled {
            let _ = writeln!(
                o,
                "- **{} {}** ({} of {}): baseline {}, goal {}, current {}{}; {}",
                r.id,
                r.title,
                r.aggregate,
                r.from,
                opt(r.baseline),
                opt(r.goal),
                opt(r.current),
                r.unit.as_ref().map(|u| format!(" {u}")).unwrap_or_default(),
                match r.reached {
                    Some(true) => "reached",
                    Some(false) => "not reached",
                    None => "cannot tell yet",
                }
            );
            for m in &r.members {
                let _ = match &m.missing {
                    None => writeln!(o, "  - {}: {}", m.state, opt(m.value)),
                    Some(why) => writeln!(o, "  - {}: not counted ({why})", m.state),
                };
            }
        }
        o.push('\n');
    }

    let _ = writeln!(o, "## SDG 16.4.2 ({SDG_SERIES})\n");
    if st.sdg_16_4_2.is_empty() {
        let _ = writeln!(o, "No figures reported.\n");
    } else {
        let rows: Vec<Vec<String>> = st
            .sdg_16_4_2
            .iter()
            .map(|r| {
                vec![
                    r.state.clone(),
                    r.m49
                        .map(|m| format!("{m:03}"))
                        .unwrap_or_else(|| "-".into()),
                    r.year.to_string(),
                    num(r.value),
                    r.target.clone(),
                ]
            })
            .collect();
        md_table(
            &mut o,
            &["State", "M49", "year", "percent", "target"],
            &rows,
        );
    }

    let _ = writeln!(o, "## Data quality\n");
    if st.data_quality.is_empty() {
        let _ = writeln!(o, "No flags.\n");
    } else {
        let rows: Vec<Vec<String>> = st
            .data_quality
            .iter()
            .map(|f| {
                vec![
                    f.state.clone(),
                    f.record.clone(),
                    f.flag.clone(),
                    f.detail.clone(),
                ]
            })
            .collect();
        md_table(&mut o, &["State", "record", "flag", "detail"], &rows);
    }

    let _ = writeln!(o, "## Trends across cycles\n");
    let mut h = vec!["cycle", "States"];
    h.extend(COUNT_HEADER);
    let rows: Vec<Vec<String>> = st
        .trends
        .iter()
        .map(|p| {
            let mut r = vec![p.cycle.clone(), p.states.to_string()];
            r.extend(count_cells(&p.counts));
            r
        })
        .collect();
    md_table(&mut o, &h, &rows);

    let _ = writeln!(o, "## Targets\n");
    let rows: Vec<Vec<String>> = st
        .targets
        .iter()
        .map(|t| {
            vec![
                t.state.clone(),
                format!("{} v{}", t.id, t.version),
                t.area.clone(),
                t.title.clone(),
                opt(t.baseline),
                opt(t.value),
                opt(t.latest),
                t.deadline.to_string(),
                t.standing.slug().into(),
            ]
        })
        .collect();
    md_table(
        &mut o,
        &[
            "State", "target", "area", "title", "baseline", "goal", "latest", "deadline", "status",
        ],
        &rows,
    );

    let _ = writeln!(o, "## Sources\n");
    let rows: Vec<Vec<String>> = st
        .sources
        .iter()
        .map(|s| vec![s.doc.clone(), s.heads.join(" ")])
        .collect();
    md_table(&mut o, &["document", "heads"], &rows);
    o.push_str(&Stamp::comment(st));
    o
}
