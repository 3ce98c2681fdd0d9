//! The national submission over a real federation: the report marks what is not published,
//! the preview lists exactly what publishing sends, and the Secretariat then holds exactly
//! that; withdrawals travel the same way.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use poa_node::records::Selection;
use poa_node::submission::{html, markdown};
use poa_protocol::doc::{DocId, StateData};
use poa_protocol::model::Progress;
use poa_protocol::view::Status;
use poa_protocol::{BodyKind, StateCode};
use poa_tests::{Homes, converge, link};

fn xaa() -> StateCode {
    "XAA".parse().unwrap()
}

/// The keys of what a State document holds: target versions, progress reports, requests,
/// withdrawals.
fn holdings(d: &StateData) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    out.extend(d.targets.keys().map(|(id, v)| format!("targets/{id}/{v}")));
    out.extend(d.progress.keys().map(|id| format!("progress/{id}")));
    out.extend(
        d.withdrawn_progress
            .keys()
            .map(|id| format!("progress/{id}")),
    );
    out.extend(d.needs.keys().map(|id| format!("needs/{id}")));
    out.extend(d.withdrawn_needs.keys().map(|id| format!("needs/{id}")));
    out.extend(d.withdrawn.keys().map(|id| format!("withdrawn/{id}")));
    out.extend(d.retracted.keys().map(|k| format!("retracted/{k}")));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_lists_exactly_what_goes_out_and_the_secretariat_then_holds_exactly_that() {
    let homes = Homes::new();
    let state = homes.state("xaa", "XAA").await;
    let un = homes.body("un", "UNODA", BodyKind::Secretariat).await;
    link(&state, &un, Some("XAA"), None);
    let data = poa_node::demo::dataset().unwrap();
    let records = data.states.iter().find(|s| s.code == xaa()).unwrap();
    let un_id = un.id();
    let published = DocId::State(xaa());

    // The illustrative data set, with only M1 published at first, plus a progress report
    // dated in the future (a warning the report must show).
    state
        .with_node(|n| {
            for t in &records.targets {
                n.add_target(t.clone())?;
            }
            for p in &records.progress {
                n.add_progress(p.clone())?;
            }
            n.publish_target("M1")?;
            let mut future: Progress = records.progress[1].clone();
            future.as_of = "2031-01-01".parse().unwrap();
            n.add_progress(future)?;
            n.share(&published, &[un_id], false)
        })
        .unwrap();

    let s = state.with_node(|n| n.submission(None)).unwrap();
    let md = markdown(&s);
    let page = html(&s);
    for t in &records.targets {
        let heading = md
            .lines()
            .find(|l| l.starts_with(&format!("### {} — ", t.id)))
            .unwrap_or_else(|| panic!("no heading for {} in:\n{md}", t.id));
        assert_eq!(heading.contains("DRAFT"), t.id != "M1", "{heading}");
    }
    assert!(md.contains("2031-01-01"), "{md}");
    assert!(
        md.contains("warning: progress/T1/2031-01-01"),
        "the future report's warning is missing:\n{md}"
    );
    assert!(page.contains("<span class=\"draft\">DRAFT</span>"));
    assert!(page.contains("counter(pages)") && page.contains("size:A4"));
    assert!(page.contains("finding-warning"));
    assert!(page.contains(&un_id.to_string()) || page.contains(&state.id().to_string()));

    // The preview is exactly the difference between the draft and the published document.
    let pending = state.with_node(|n| n.pending(&Selection::All)).unwrap();
    let (draft, before) = state
        .with_node(|n| {
            Ok::<_, poa_node::NodeError>((
                n.state_data(&DocId::Draft(xaa()))?,
                n.state_data(&published)?,
            ))
        })
        .unwrap();
    let expected: BTreeSet<String> = holdings(&draft)
        .difference(&holdings(&before))
        .cloned()
        .collect();
    assert_eq!(pending.len(), expected.len(), "{pending:?} vs {expected:?}");
    let done = state.with_node(|n| n.publish(&Selection::All)).unwrap();
    assert_eq!(done, pending);
    assert!(
        state
            .with_node(|n| n.pending(&Selection::All))
            .unwrap()
            .is_empty()
    );

    converge(&[&state, &un], &published).await;
    let at_un = un.with_node(|n| n.state_data(&published)).unwrap();
    assert_eq!(holdings(&at_un), holdings(&draft));
    let after = state.with_node(|n| n.submission(None)).unwrap();
    assert!(
        !markdown(&after).contains("— DRAFT"),
        "{}",
        markdown(&after)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_progress_report_stops_counting_at_the_secretariat() {
    let homes = Homes::new();
    let state = homes.state("xaa", "XAA").await;
    let un = homes.body("un", "UNODA", BodyKind::Secretariat).await;
    link(&state, &un, Some("XAA"), None);
    let data = poa_node::demo::dataset().unwrap();
    let records = data.states.iter().find(|s| s.code == xaa()).unwrap();
    let m1 = records
        .targets
        .iter()
        .find(|t| t.id == "M1")
        .unwrap()
        .clone();
    let report = records
        .progress
        .iter()
        .find(|p| p.target == "M1")
        .unwrap()
        .clone();
    let un_id = un.id();
    let published = DocId::State(xaa());
    let id = state
        .with_node(|n| {
            n.add_target(m1)?;
            let id = n.add_progress(report)?;
            n.publish_target("M1")?;
            n.share(&published, &[un_id], false)?;
            Ok::<_, poa_node::NodeError>(id)
        })
        .unwrap();
    converge(&[&state, &un], &published).await;
    let status = |m: &poa_node::federation::Member| {
        m.with_node(|n| n.target_view(Some(xaa()), "M1"))
            .unwrap()
            .current()
            .status
    };
    assert_eq!(status(&un), Status::Achieved);

    // A published report is not edited or deleted: it is withdrawn, with a reason.
    let refused = state
        .with_node(|n| {
            n.edit_progress(&id, |p| {
                p.value = Some(41.0);
                Ok(())
            })
        })
        .unwrap_err()
        .to_string();
    assert!(refused.contains("progress withdraw"), "{refused}");
    state
        .with_node(|n| {
            n.withdraw_progress(&id, "figures counted one depot twice")?;
            n.publish_target("M1")
        })
        .unwrap();
    converge(&[&state, &un], &published).await;
    let held = un.with_node(|n| n.state_data(&published)).unwrap();
    assert!(held.progress.is_empty(), "{:?}", held.progress);
    assert!(held.withdrawn_progress.contains_key(&id));
    assert_eq!(
        held.retracted[&format!("progress/{id}")]["reason"],
        "figures counted one depot twice"
    );
    assert_eq!(status(&un), Status::NoData);
}
