//! How the demo writes its account: step headings, data-entry lines, what each target and
//! publication was, and the closing account of what the Secretariat holds and computes.

use std::collections::BTreeSet;

use poa_protocol::assist::NeedRef;
use poa_protocol::doc::DocId;
use poa_protocol::model::Target;
use poa_protocol::stocktake::Stocktake;

use super::nodes::Federation;
use super::watch::audit_of;
use super::{Dataset, DemoError};
use crate::federation::Member;
use crate::format::{num, opt, table};

/// How far the demo indents its tables and lines under a step's heading.
pub(super) const INDENT: &str = "   ";

/// Starts step `n` of the account.
pub(super) fn heading(n: u32, title: &str) {
    println!();
    println!("{n}. {title}");
}

/// One data-entry step: who did it, the CLI command it stands for, what it was.
pub(super) fn entered(who: &str, command: &str, what: &str) {
    println!("   {who:<5} {command:<22} {what}");
}

/// A target in one line: its title and what it aims at.
pub(super) fn describe(t: &Target) -> String {
    match (t.baseline, t.value) {
        (Some(b), Some(v)) => format!(
            "{}: {} -> {} {} by {}",
            t.title,
            num(b),
            num(v),
            t.indicator.unit.as_deref().unwrap_or_default(),
            t.deadline
        ),
        _ => format!("{} ({} by {})", t.title, t.indicator.kind, t.deadline),
    }
}

/// What the Secretariat holds, read from its own database and checked against what each
/// State published: the targets, requests and offers, the pool's roll-up, the unmet requests,
/// and its audit log of the States' documents.
pub(super) fn secretariat_holdings(fed: &Federation, data: &Dataset) -> Result<(), DemoError> {
    let un = &fed.un;
    let mut rows = Vec::new();
    let (mut versions, mut targets) = (0, 0);
    for (s, m) in data.states.iter().zip(&fed.states) {
        let doc = DocId::State(s.code);
        let at_state: BTreeSet<(String, u32)> = m
            .with_node(|n| n.state_data(&doc))?
            .targets
            .into_keys()
            .collect();
        let at_un: BTreeSet<(String, u32)> = un
            .with_node(|n| n.state_data(&doc))?
            .targets
            .into_keys()
            .collect();
        if at_state != at_un {
            return Err(DemoError::Check(format!(
                "{} published {at_state:?} but the Secretariat holds {at_un:?}",
                s.code
            )));
        }
        versions += at_un.len();
        for view in un.with_node(|n| n.target_views(Some(s.code)))? {
            targets += 1;
            for v in &view.versions {
                let t = &v.target;
                rows.push(vec![
                    format!("{} {}", s.code, t.id),
                    format!("v{}", t.version),
                    v.status.to_string(),
                    t.area.to_string(),
                    t.title.clone(),
                ]);
            }
        }
    }
    print!(
        "{}",
        table(INDENT, &["TARGET", "VER", "STATUS", "AREA", "TITLE"], &rows)
    );
    let mut rows = Vec::new();
    for s in &data.states {
        for need in un.with_node(|n| n.needs(Some(s.code)))? {
            rows.push(vec![
                format!("{} {}", s.code, need.id),
                need.kind.to_string(),
                need.targets.join(","),
                need.title,
            ]);
        }
    }
    println!();
    print!(
        "{}",
        table(INDENT, &["REQUEST", "KIND", "FOR", "TITLE"], &rows)
    );
    let rows: Vec<Vec<String>> = un
        .with_node(|n| n.offers())?
        .into_iter()
        .map(|o| {
            let kinds: Vec<String> = o.kinds.iter().map(|k| k.to_string()).collect();
            vec![format!("{} {}", o.provider, o.id), kinds.join(","), o.title]
        })
        .collect();
    println!();
    print!("{}", table(INDENT, &["OFFER", "KINDS", "TITLE"], &rows));
    let codes: Vec<&str> = data.states.iter().map(|s| s.code.as_str()).collect();
    println!();
    println!(
        "   Every target {} published is at the Secretariat: {targets} targets, {versions} versions.",
        codes.join(", ")
    );
    secretariat_pool_and_needs(un, data)?;
    println!();
    println!(
        "   The Secretariat's audit log: every change checked against its author's signature."
    );
    for s in &data.states {
        let doc = DocId::State(s.code);
        println!("   {doc}: {}", audit_of(fed, un, &doc)?);
    }
    Ok(())
}

/// The pool's roll-up and the unmet requests, as the Secretariat computes them.
pub(super) fn secretariat_pool_and_needs(un: &Member, data: &Dataset) -> Result<(), DemoError> {
    let report = un.with_node(|n| n.pool_report(data.pool.id))?;
    for r in &report.rollups {
        let t = &r.target;
        println!();
        println!(
            "   Pool {}: {} ({} of {})",
            data.pool.id, t.title, t.aggregate, t.from
        );
        println!(
            "   baseline {}, goal {}, current {} {}",
            opt(r.baseline),
            opt(r.goal),
            opt(r.current),
            t.unit.clone().unwrap_or_default()
        );
        let mut rows: Vec<Vec<String>> = r
            .reporting
            .iter()
            .map(|f| vec![f.state.to_string(), "reporting".into(), opt(f.value)])
            .collect();
        rows.extend(
            r.missing
                .iter()
                .map(|m| vec![m.state.to_string(), "missing".into(), m.reason.clone()]),
        );
        print!(
            "{}",
            table(INDENT, &["MEMBER", "", "VALUE OR WHY NOT COUNTED"], &rows)
        );
    }
    println!();
    let rows: Vec<Vec<String>> = un
        .with_node(|n| n.unmet_needs())?
        .into_iter()
        .map(|(n, m)| {
            vec![
                NeedRef::of(&n).to_string(),
                n.title,
                if m.is_empty() {
                    "no match proposed".into()
                } else {
                    m.iter()
                        .map(|m| format!("{} {}", m.offer, m.status().slug()))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ]
        })
        .collect();
    print!(
        "{}",
        table(INDENT, &["UNMET REQUEST", "TITLE", "MATCHES"], &rows)
    );
    let matched: Vec<String> = un
        .with_node(|n| n.matches())?
        .iter()
        .filter(|m| m.status() == poa_protocol::assist::MatchStatus::Accepted)
        .map(|m| format!("{} <- {}", m.need, m.offer))
        .collect();
    println!("   Accepted matches: {}", matched.join(", "));
    Ok(())
}

/// The summary of the Secretariat's stocktake.
pub(super) fn stocktake_summary(st: &Stocktake) {
    println!();
    println!(
        "The Secretariat's stocktake of {} (statuses as of {}; `poa-node stocktake` writes it in full):",
        st.cycle, st.as_of
    );
    let t = &st.totals;
    println!(
        "   {} targets: {} achieved, {} in progress, {} not achieved, {} with no data",
        t.targets, t.achieved, t.in_progress, t.not_achieved, t.no_data
    );
    println!(
        "   States that reported progress: {}",
        st.participation.reported.join(", ")
    );
    for p in &st.progression {
        println!(
            "   Progression: {} {} against {}: {} ({})",
            p.state, p.target, p.against, p.flag, p.detail
        );
    }
    for p in &st.pools {
        for r in &p.pooled {
            println!(
                "   Pool {} {}: {} of {} {}",
                p.id,
                r.id,
                opt(r.current),
                opt(r.goal),
                r.unit.clone().unwrap_or_default()
            );
        }
    }
    let unmet: Vec<&str> = st.unmet_needs.iter().map(|n| n.need.as_str()).collect();
    println!("   Unmet requests: {}", unmet.join(", "));
    println!(
        "   Computed from {} documents at cited heads.",
        st.sources.len()
    );
}
