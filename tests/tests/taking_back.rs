//! Taking back what was given, over real QUIC and SQLite: a reader taken off a share list gets
//! none of the document's later changes (from the owner or a relay), and a delegation given
//! again replaces the earlier one: renewed past its expiry, or widened to a new area.

#![allow(clippy::unwrap_used)]

use poa_node::cli::{DelegationStatus, delegation_statuses};
use poa_node::federation::{Member, wait_until};
use poa_node::sync::sync_round;
use poa_protocol::authority::Scope;
use poa_protocol::doc::DocId;
use poa_protocol::model::Area;
use poa_protocol::{BodyKind, Date, NodeId, StateCode};
use poa_tests::{CONVERGE, Homes, converge, heads, link, target, view, wait_delegated};

fn xaa() -> StateCode {
    "XAA".parse().unwrap()
}

fn published() -> DocId {
    DocId::State(xaa())
}

/// Changes `sent` counted for `doc` in the reports of a sync round.
fn sent(
    reports: &[(
        poa_node::store::Peer,
        Result<poa_protocol::session::SyncReport, poa_node::sync::SyncError>,
    )],
    doc: &DocId,
) -> usize {
    reports
        .iter()
        .map(|(p, r)| {
            let r = r
                .as_ref()
                .unwrap_or_else(|e| panic!("sync with {}: {e}", p.name));
            r.sent.get(&doc.to_string()).copied().unwrap_or(0)
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_taken_off_the_share_list_gets_no_later_change() {
    let homes = Homes::new();
    let xaa_node = homes.state("xaa", "XAA").await;
    let xrb = homes.body("xrb", "XRB", BodyKind::Regional).await;
    let un = homes.body("un", "UNODA", BodyKind::Secretariat).await;
    link(&xaa_node, &xrb, Some("XAA"), None);
    link(&xaa_node, &un, Some("XAA"), None);
    // The Secretariat could relay to XRB too.
    link(&xrb, &un, None, None);
    let readers = [xrb.id(), un.id()];
    xaa_node
        .with_node(|n| {
            n.add_target(target("T1", Area::Marking, "Mark SALW", 40.0, 70.0))?;
            n.publish_target("T1")?;
            n.share(&published(), &readers, false)
        })
        .unwrap();
    converge(&[&xaa_node, &xrb, &un], &published()).await;
    assert!(view(&xrb, &published())["targets"].get("T1/1").is_some());

    let xrb_text = xrb.id().to_string();
    let removed = xaa_node
        .with_node(|n| n.unshare(&published(), std::slice::from_ref(&xrb_text)))
        .unwrap();
    assert_eq!(removed, std::slice::from_ref(&xrb_text));
    assert!(
        !xaa_node
            .with_node(|n| n.readers(&published()))
            .unwrap()
            .contains(&xrb_text)
    );
    // Not on the list any more: refused, in one line, nothing written.
    let before = heads(&xaa_node, &published());
    let again = xaa_node
        .with_node(|n| n.unshare(&published(), std::slice::from_ref(&xrb_text)))
        .unwrap_err()
        .to_string();
    assert!(again.contains("is not on the share list"), "{again}");
    assert!(!again.contains('\n'));
    assert_eq!(heads(&xaa_node, &published()), before);

    // A later change reaches the Secretariat, still listed, and not XRB, from XAA or through
    // the Secretariat, after full sync rounds every way.
    xaa_node
        .with_node(|n| {
            n.add_target(target("T2", Area::Tracing, "Trace SALW", 10.0, 50.0))?;
            n.publish_target("T2")
        })
        .unwrap();
    converge(&[&xaa_node, &un], &published()).await;
    assert!(view(&un, &published())["targets"].get("T2/1").is_some());
    let from_xaa = sync_round(xaa_node.engine(), Some(xrb.id())).await.unwrap();
    let from_un = sync_round(un.engine(), Some(xrb.id())).await.unwrap();
    let by_xrb = sync_round(xrb.engine(), None).await.unwrap();
    assert_eq!(sent(&from_xaa, &published()), 0, "XAA sent XRB changes");
    assert_eq!(
        sent(&from_un, &published()),
        0,
        "the Secretariat relayed to XRB"
    );
    for (_, r) in &by_xrb {
        let r = r.as_ref().unwrap();
        assert_eq!(
            r.accepted
                .get(&published().to_string())
                .copied()
                .unwrap_or(0),
            0
        );
    }
    let held = view(&xrb, &published());
    assert!(
        held["targets"].get("T2/1").is_none(),
        "XRB holds the later target"
    );
    assert!(
        held["targets"].get("T1/1").is_some(),
        "what XRB had received stays with it"
    );
    assert_ne!(heads(&xrb, &published()), heads(&xaa_node, &published()));
    assert!(
        held["readers"].get(&xrb_text).is_some(),
        "XRB never saw its removal"
    );
}

/// Waits until `m` holds, in the published document and the draft, a verified delegation of
/// `node` with `serial`.
async fn wait_serial(m: &Member, node: NodeId, serial: u32) {
    let docs = [published(), DocId::Draft(xaa())];
    wait_until(CONVERGE, || {
        m.with_node(|n| {
            docs.iter().all(|d| {
                n.grants_in(d)
                    .map(|g| {
                        g.iter()
                            .any(|(g, ok)| g.node == node && g.serial == serial && *ok)
                    })
                    .unwrap_or(false)
            })
        })
    })
    .await
    .unwrap_or_else(|| panic!("{} never received delegation serial {serial}", m.label));
}

/// The status of each delegation of `node` held by `m`, on `day`.
fn statuses(m: &Member, node: NodeId, day: Date) -> Vec<(u32, DelegationStatus)> {
    let mut out = m.with_node(|n| {
        let grants = n.grants().unwrap();
        grants
            .iter()
            .zip(delegation_statuses(&grants, day))
            .filter(|((g, _), _)| g.node == node)
            .filter_map(|((g, _), s)| Some((g.serial, s?)))
            .collect::<Vec<_>>()
    });
    // By serial: the view lists grants by their content-derived keys.
    out.sort_by_key(|(serial, _)| *serial);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_delegation_lets_the_ministry_write_past_the_first_expiry() {
    use poa_node::node::Clock;
    let homes = Homes::new();
    let xaa_node = homes.state("xaa", "XAA").await;
    let defence = homes.ministry("defence", "XAA").await;
    let un = homes.body("un", "UNODA", BodyKind::Secretariat).await;
    link(&xaa_node, &defence, Some("XAA"), Some("XAA"));
    link(&xaa_node, &un, Some("XAA"), None);
    let un_id = un.id();
    xaa_node
        .with_node(|n| n.share(&published(), &[un_id], false))
        .unwrap();
    let id = defence.id();
    let now = poa_node::node::now_secs();
    let today = Date::from_unix_seconds(now);
    // Two days on: past the first delegation's last day (today).
    let later = now + 2 * 86_400;
    let later_day = Date::from_unix_seconds(later);
    let next_year = Date::from_unix_seconds(now + 365 * 86_400);
    xaa_node
        .with_node(|n| n.delegate(id, Scope::ALL, Some(today)))
        .unwrap();
    wait_delegated(&xaa_node, &defence).await;
    assert_eq!(
        statuses(&xaa_node, id, today),
        [(0, DelegationStatus::Active)]
    );
    assert_eq!(
        statuses(&xaa_node, id, later_day),
        [(0, DelegationStatus::Expired)]
    );
    // Written two days on, under the first delegation alone: refused.
    let refused = defence
        .with_node(|n| {
            n.clock = Clock::manual(later);
            let r = n.add_target(target("T5", Area::Stockpile, "Secure depots", 30.0, 60.0));
            n.clock = Clock::system();
            r
        })
        .unwrap_err()
        .to_string();
    assert!(refused.contains("may not write"), "{refused}");

    let renewed = xaa_node
        .with_node(|n| n.delegate(id, Scope::ALL, Some(next_year)))
        .unwrap();
    assert_eq!(renewed.grant.serial, 1);
    wait_serial(&defence, id, 1).await;
    assert_eq!(
        statuses(&xaa_node, id, later_day),
        [
            (0, DelegationStatus::Replaced),
            (1, DelegationStatus::Active)
        ]
    );
    let lapsed = xaa_node.with_node(|n| {
        n.clock = Clock::manual(later);
        let r = n.lapse_expired();
        n.clock = Clock::system();
        r
    });
    assert!(
        lapsed.unwrap().is_empty(),
        "a renewed delegation does not lapse"
    );
    // Two days on, under the renewed delegation: it stands, here and at the Secretariat.
    defence
        .with_node(|n| {
            n.clock = Clock::manual(later);
            let r = n
                .add_target(target("T5", Area::Stockpile, "Secure depots", 30.0, 60.0))
                .and_then(|_| n.publish_target("T5"));
            n.clock = Clock::system();
            r
        })
        .unwrap();
    converge(&[&xaa_node, &defence, &un], &published()).await;
    for m in [&xaa_node, &un] {
        assert!(
            view(m, &published())["targets"].get("T5/1").is_some(),
            "{} does not show the renewed ministry's target",
            m.label
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widened_delegation_lets_the_ministry_write_in_the_new_area() {
    let homes = Homes::new();
    let xaa_node = homes.state("xaa", "XAA").await;
    let defence = homes.ministry("defence", "XAA").await;
    let un = homes.body("un", "UNODA", BodyKind::Secretariat).await;
    link(&xaa_node, &defence, Some("XAA"), Some("XAA"));
    link(&xaa_node, &un, Some("XAA"), None);
    let un_id = un.id();
    xaa_node
        .with_node(|n| n.share(&published(), &[un_id], false))
        .unwrap();
    let id = defence.id();
    xaa_node
        .with_node(|n| n.delegate(id, Scope::Areas(vec![Area::Marking]), None))
        .unwrap();
    wait_delegated(&xaa_node, &defence).await;
    defence
        .with_node(|n| {
            n.add_target(target("T4", Area::Marking, "Mark more", 70.0, 90.0))?;
            n.publish_target("T4")
        })
        .unwrap();
    let refused = defence
        .with_node(|n| n.add_target(target("T6", Area::Stockpile, "Depots", 1.0, 2.0)))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("covers marking, not"), "{refused}");

    let widened = xaa_node
        .with_node(|n| n.delegate(id, Scope::Areas(vec![Area::Marking, Area::Stockpile]), None))
        .unwrap();
    assert_eq!(widened.grant.serial, 1);
    wait_serial(&defence, id, 1).await;
    defence
        .with_node(|n| {
            n.add_target(target("T6", Area::Stockpile, "Depots", 1.0, 2.0))?;
            n.publish_target("T6")
        })
        .unwrap();
    converge(&[&xaa_node, &defence, &un], &published()).await;
    for m in [&xaa_node, &defence, &un] {
        let v = view(m, &published());
        assert!(
            v["targets"].get("T6/1").is_some(),
            "{}: the new area's target",
            m.label
        );
        assert!(
            v["targets"].get("T4/1").is_some(),
            "{}: the earlier target",
            m.label
        );
    }
    let today = Date::from_unix_seconds(poa_node::node::now_secs());
    assert_eq!(
        statuses(&xaa_node, id, today),
        [
            (0, DelegationStatus::Replaced),
            (1, DelegationStatus::Active)
        ]
    );
}
