//! Watching documents travel: when each node got a document and from whom, and the checks
//! that a document reached nobody it was not shared with.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use poa_protocol::automerge::ChangeHash;
use poa_protocol::doc::DocId;

use super::DemoError;
use super::nodes::Federation;
use crate::federation::{Member, wait_until};
use crate::node::NodeError;

/// The heads a member holds of `doc`, sorted; empty if it holds none.
fn heads(m: &Member, doc: &DocId) -> Result<Vec<ChangeHash>, DemoError> {
    let mut h = m
        .with_node(|n| n.store.heads(doc))
        .map_err(NodeError::from)?
        .unwrap_or_default();
    h.sort();
    Ok(h)
}

/// The peers a member accepted changes of `doc` from, by label, read from its audit log.
fn received_from(fed: &Federation, m: &Member, doc: &DocId) -> Result<String, DemoError> {
    let rows = m.with_node(|n| n.store.audit(0)).map_err(NodeError::from)?;
    let name = doc.to_string();
    let from: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.event == "accepted" && r.doc.as_deref() == Some(name.as_str()))
        .filter_map(|r| r.peer.as_deref())
        .map(|p| fed.label_of(p))
        .collect();
    Ok(from.into_iter().collect::<Vec<_>>().join(", "))
}

/// What a member's audit log says about `doc`: changes accepted and rejected, who wrote the
/// accepted ones (the genesis aside) and which peers they came from, by label.
pub(super) fn audit_of(fed: &Federation, m: &Member, doc: &DocId) -> Result<String, DemoError> {
    let rows = m.with_node(|n| n.store.audit(0)).map_err(NodeError::from)?;
    let name = doc.to_string();
    let rows: Vec<_> = rows
        .iter()
        .filter(|r| r.doc.as_deref() == Some(name.as_str()))
        .collect();
    let rejected = rows.iter().filter(|r| r.event == "rejected").count();
    if rejected > 0 {
        return Err(DemoError::Check(format!(
            "{} rejected {rejected} change(s) of {doc}; see its audit log",
            m.label
        )));
    }
    let accepted: Vec<_> = rows.iter().filter(|r| r.event == "accepted").collect();
    let authors: BTreeSet<String> = accepted
        .iter()
        .filter(|r| r.detail != "genesis")
        .map(|r| {
            let short = r.detail.strip_prefix("by node ").unwrap_or(&r.detail);
            fed.all()
                .into_iter()
                .find(|o| o.id().short() == short)
                .map(|o| o.label.clone())
                .unwrap_or_else(|| short.to_string())
        })
        .collect();
    let peers: BTreeSet<String> = accepted
        .iter()
        .filter_map(|r| r.peer.as_deref())
        .map(|p| fed.label_of(p))
        .collect();
    let join = |set: BTreeSet<String>| set.into_iter().collect::<Vec<_>>().join(", ");
    Ok(format!(
        "{} change(s) accepted, written by {}, received from {}; 0 rejected",
        accepted.len(),
        join(authors),
        join(peers)
    ))
}

/// The time left until `deadline`.
pub(super) fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Waits until every member of `to` holds `doc` exactly as `from` does now, and prints when each
/// got it (milliseconds since `since`) and from whom.
pub(super) async fn track(
    fed: &Federation,
    doc: &DocId,
    from: &Member,
    to: &[&Member],
    since: Instant,
    deadline: Instant,
) -> Result<(), DemoError> {
    let goal = heads(from, doc)?;
    let mut arrived: BTreeMap<usize, Duration> = BTreeMap::new();
    let mut failure = None;
    let done = wait_until(remaining(deadline), || {
        for (i, m) in to.iter().enumerate() {
            if arrived.contains_key(&i) {
                continue;
            }
            match heads(m, doc) {
                Ok(h) if h == goal => {
                    arrived.insert(i, since.elapsed());
                }
                Ok(_) => {}
                Err(e) => {
                    failure = Some(e);
                    return true;
                }
            }
        }
        arrived.len() == to.len()
    })
    .await;
    if let Some(e) = failure {
        return Err(e);
    }
    if done.is_none() {
        let missing: Vec<&str> = to
            .iter()
            .enumerate()
            .filter(|(i, _)| !arrived.contains_key(i))
            .map(|(_, m)| m.label.as_str())
            .collect();
        return Err(DemoError::Timeout(format!(
            "{doc} did not reach {}",
            missing.join(", ")
        )));
    }
    let mut order: Vec<(usize, Duration)> = arrived.into_iter().collect();
    order.sort_by_key(|(_, d)| *d);
    for (i, d) in order {
        let m = to[i];
        println!(
            "     {:<12} {:>5} ms   received from {}",
            m.label,
            d.as_millis(),
            received_from(fed, m, doc)?
        );
    }
    Ok(())
}

/// Checks that none of `others` holds `doc` or was ever told its name, and says so.
pub(super) fn check_kept_from(
    fed: &Federation,
    doc: &DocId,
    others: &[&Member],
) -> Result<(), DemoError> {
    for m in others {
        if !heads(m, doc)?.is_empty() {
            return Err(DemoError::Check(format!(
                "{doc} reached {}, which is not on its share list",
                m.label
            )));
        }
        for sender in fed.all() {
            if sender.engine().revealed_to(&m.id()).contains(doc) {
                return Err(DemoError::Check(format!(
                    "{} named {doc} to {}, which is not on its share list",
                    sender.label, m.label
                )));
            }
        }
    }
    Ok(())
}

/// The members' labels, joined.
pub(super) fn labels(members: &[&Member]) -> String {
    members
        .iter()
        .map(|m| m.label.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
