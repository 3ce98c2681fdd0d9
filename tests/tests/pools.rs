//! Sub-regional pools and assistance matching over real QUIC and SQLite: a pool forms by
//! invitation and consent, sharing follows membership, the write rules hold at every hop, and
//! the roll-up and the matching read what the nodes actually hold.

#![allow(clippy::unwrap_used)]

use poa_node::federation::{Member, wait_until};
use poa_node::pools::Invitee;
use poa_node::sync::sync_round;
use poa_protocol::assist::Decision;
use poa_protocol::authority::SignedGrant;
use poa_protocol::doc::DocId;
use poa_protocol::model::{Area, Progress};
use poa_protocol::pool::{Aggregate, PooledTarget};
use poa_protocol::{BodyKind, Principal, StateCode};
use poa_tests::rogue::{As, Rogue, goodbye, sync_frame};
use poa_tests::{
    CONVERGE, Homes, converge, craft, hash_of, heads, holds, key_of, link, put, put_text,
    refused_by, target,
};

fn code(s: &str) -> StateCode {
    s.parse().unwrap()
}

fn published(s: &str) -> DocId {
    DocId::State(code(s))
}

/// Three States and the Secretariat around the regional body XRB, which the States pin as
/// their only peer (the States are not peers of each other or of the Secretariat). XRB learns
/// the States' keys from the nodes it pinned; the States and the Secretariat chose XRB as an
/// introducer.
struct Region {
    xaa: Member,
    xab: Member,
    xac: Member,
    xrb: Member,
    un: Member,
}

async fn region(homes: &Homes) -> Region {
    let xaa = homes.state("xaa", "XAA").await;
    let xab = homes.state("xab", "XAB").await;
    let xac = homes.state("xac", "XAC").await;
    let xrb = homes.body("xrb", "XRB", BodyKind::Regional).await;
    let un = homes.body("un", "UNODA", BodyKind::Secretariat).await;
    for (m, s) in [(&xaa, "XAA"), (&xab, "XAB"), (&xac, "XAC")] {
        link(m, &xrb, Some(s), None);
        m.trust_introductions_from(&xrb).unwrap();
    }
    link(&xrb, &un, None, None);
    un.trust_introductions_from(&xrb).unwrap();
    for m in [&xaa, &xab, &xac] {
        m.with_node(|n| {
            n.add_target(target("T1", Area::Marking, "Mark SALW", 40.0, 70.0))?;
            n.publish_target("T1")
        })
        .unwrap();
    }
    let knows_all = |m: &Member| {
        m.with_node(|n| {
            ["XAA", "XAB", "XAC"]
                .iter()
                .all(|s| n.store.trust().key(&Principal::State(code(s))).is_some())
        })
    };
    wait_until(CONVERGE, || [&xrb, &un, &xaa].iter().all(|m| knows_all(m)))
        .await
        .expect("XRB learns the States' keys and introduces them");
    Region {
        xaa,
        xab,
        xac,
        xrb,
        un,
    }
}

/// A destruction target, published and contributed, with one progress report.
fn destruction(m: &Member, id: &str, value: f64, reported: Option<f64>) {
    m.with_node(|n| {
        let mut t = target(id, Area::Destruction, "Destroy surplus weapons", 0.0, value);
        t.indicator.unit = Some("weapons".into());
        n.add_target(t)?;
        if let Some(v) = reported {
            n.add_progress(report(id, "2025-12-31", v))?;
        }
        n.publish_target(id)?;
        n.pool_contribute("xanadu", id)
    })
    .unwrap();
}

fn report(target: &str, as_of: &str, value: f64) -> Progress {
    Progress::bare(target, as_of.parse().unwrap(), Some(value))
}

/// XRB creates the pool, invites XAA and XAB (not XAC), admits the Secretariat as observer, and
/// defines the pooled sum; XAA and XAB join once the pool reaches them. Returns the pool's id.
async fn form_pool(r: &Region) -> DocId {
    let un_id = r.un.id();
    let pool = r
        .xrb
        .with_node(|n| {
            let pool =
                n.pool_create("xanadu", "Xanadu sub-region", Some("Xanadu Roadmap".into()))?;
            n.pool_invite("xanadu", Invitee::State(code("XAA")))?;
            n.pool_invite("xanadu", Invitee::State(code("XAB")))?;
            n.pool_observe("xanadu", un_id, "UN Secretariat")?;
            n.pool_target_add(
                "xanadu",
                PooledTarget {
                    id: "P1".into(),
                    title: "8,000 weapons destroyed across the sub-region".into(),
                    aggregate: Aggregate::Sum,
                    from: "destruction".parse().unwrap(),
                    value: Some(8000.0),
                    unit: Some("weapons".into()),
                    direction: None,
                    deadline: None,
                },
            )?;
            Ok::<_, poa_node::NodeError>(pool)
        })
        .unwrap();
    converge(&[&r.xrb, &r.xaa, &r.xab, &r.un], &pool).await;
    for m in [&r.xaa, &r.xab] {
        m.with_node(|n| n.pool_join("xanadu")).unwrap();
    }
    wait_until(CONVERGE, || {
        [&r.xrb, &r.xaa, &r.xab, &r.un].iter().all(|m| {
            m.with_node(|n| {
                n.pool("xanadu")
                    .map(|p| p.members.len() == 2)
                    .unwrap_or(false)
            })
        })
    })
    .await
    .expect("both joins reach everyone in the pool");
    pool
}

/// A node's own delegation, as the signed text it would present to join a pool.
fn own_delegation(m: &Member, state: &str) -> String {
    let me = m.id().to_string();
    m.with_node(|n| {
        let v = n.view(&published(state)).unwrap();
        v["delegations"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.starts_with(&me))
            .map(|(_, v)| SignedGrant::from_value(v).unwrap().to_text())
            .unwrap()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_forms_by_invitation_and_consent_and_shares_with_its_audience_only() {
    let homes = Homes::new();
    let r = region(&homes).await;
    let pool = form_pool(&r).await;

    // XAC was not invited: the pool never reaches it, its own node refuses to join, and a
    // join made by hand and sent to the coordinator is not even taken (XAC may not read it).
    assert!(!r.xrb.engine().revealed_to(&r.xac.id()).contains(&pool));
    let local = r.xac.with_node(|n| n.pool_join("xanadu")).unwrap_err();
    assert!(
        local.to_string().contains("holds no pool xanadu"),
        "{local}"
    );
    let key = format!("XAC/{}", r.xac.id());
    let join = craft(
        &r.xrb,
        &pool,
        &key_of(&r.xac),
        None,
        vec![put_text(
            &pool,
            "members",
            &key,
            own_delegation(&r.xac, "XAC"),
        )],
    );
    let (answers, _) = Rogue::with_key(key_of(&r.xac))
        .send_as(
            &r.xrb,
            &As::state("XAC", None),
            vec![sync_frame(&pool, std::slice::from_ref(&join))],
        )
        .await;
    assert!(
        goodbye(&answers).is_none_or(|g| !g.contains("broke")),
        "{answers:?}"
    );
    assert!(!holds(&r.xrb, &pool, &hash_of(&pool, &join)));

    // The observer writes nothing: its own node refuses, and so does the coordinator.
    let local =
        r.un.with_node(|n| n.write(&pool, |w, _| w.put("pooled", "P9", &"x")))
            .unwrap_err();
    assert!(
        local.to_string().contains("neither the coordinator"),
        "{local}"
    );
    let bad = craft(
        &r.un,
        &pool,
        &key_of(&r.un),
        None,
        vec![put(&pool, "sections", "XAB/T9", &"forged")],
    );
    Rogue::with_key(key_of(&r.un))
        .send_as(
            &r.xrb,
            &As {
                claims: poa_protocol::wire::Claim::Body(
                    "UNODA".parse().unwrap(),
                    BodyKind::Secretariat,
                ),
                key: None,
                recovery: None,
            },
            vec![sync_frame(&pool, std::slice::from_ref(&bad))],
        )
        .await;
    let why = refused_by(&r.xrb, &hash_of(&pool, &bad)).await;
    assert!(why.contains("neither the coordinator"), "{why}");

    // A member writes its own section, never another's: refused locally, and at the relay.
    destruction(&r.xab, "T2", 5000.0, Some(1800.0));
    let local = r
        .xab
        .with_node(|n| n.write(&pool, |w, _| w.put("sections", "XAA/T1", &"x")))
        .unwrap_err();
    assert!(
        local.to_string().contains("only XAA's member nodes"),
        "{local}"
    );
    let bad = craft(
        &r.xab,
        &pool,
        &key_of(&r.xab),
        None,
        vec![put(&pool, "sections", "XAA/T1", &"forged")],
    );
    Rogue::with_key(key_of(&r.xab))
        .send_as(
            &r.xrb,
            &As::state("XAB", None),
            vec![sync_frame(&pool, std::slice::from_ref(&bad))],
        )
        .await;
    let why = refused_by(&r.xrb, &hash_of(&pool, &bad)).await;
    assert!(why.contains("only XAA's member nodes"), "{why}");

    // Sharing follows membership: XAB never shared state/XAB with anyone by name, yet the
    // coordinator, the other member and the observer hold it, through XRB; XAC does not.
    converge(&[&r.xab, &r.xrb, &r.xaa, &r.un], &published("XAB")).await;
    assert!(heads(&r.xac, &published("XAB")).is_empty());
    assert!(
        !r.xrb
            .engine()
            .revealed_to(&r.xac.id())
            .contains(&published("XAB"))
    );
    converge(&[&r.xrb, &r.xaa, &r.xab, &r.un], &pool).await;
    for m in [&r.xrb, &r.xaa, &r.xab, &r.un] {
        let p = m.with_node(|n| n.pool("xanadu")).unwrap();
        assert!(
            p.contributions[&code("XAB")].contains_key("T2"),
            "{}",
            m.label
        );
        assert!(!p.contributions.contains_key(&code("XAA")), "{}", m.label);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_leaves_gets_no_later_changes_and_drops_out_of_the_rollup() {
    let homes = Homes::new();
    let r = region(&homes).await;
    let pool = form_pool(&r).await;
    destruction(&r.xaa, "T2", 3000.0, Some(1000.0));
    destruction(&r.xab, "T2", 5000.0, Some(1800.0));
    for s in ["XAA", "XAB"] {
        converge(&[&r.xaa, &r.xab, &r.xrb, &r.un], &published(s)).await;
    }
    converge(&[&r.xaa, &r.xab, &r.xrb, &r.un], &pool).await;
    let p1 = |m: &Member| {
        m.with_node(|n| n.pool_report("xanadu"))
            .unwrap()
            .rollups
            .remove(0)
    };
    let before = p1(&r.un);
    assert_eq!(before.current, Some(2800.0));
    assert_eq!(before.reporting.len(), 2);
    assert_eq!(p1(&r.xaa), before, "every node computes the same roll-up");

    r.xaa.with_node(|n| n.pool_leave("xanadu")).unwrap();
    wait_until(CONVERGE, || {
        [&r.xrb, &r.xab, &r.un]
            .iter()
            .all(|m| m.with_node(|n| n.pool("xanadu").unwrap().members.len() == 1))
    })
    .await
    .expect("the departure reaches the pool");
    let after = p1(&r.un);
    assert_eq!(after.current, Some(1800.0));
    assert_eq!(after.reporting.len(), 1);
    assert!(
        after.missing.is_empty(),
        "a former member is neither counted nor missing"
    );

    // XAB reports again. The observer and the coordinator get it; XAA, gone, does not, even
    // after a full sync round with XRB.
    r.xab
        .with_node(|n| {
            n.add_progress(report("T2", "2026-06-30", 2600.0))?;
            n.publish_target("T2")
        })
        .unwrap();
    converge(&[&r.xab, &r.xrb, &r.un], &published("XAB")).await;
    sync_round(r.xaa.engine(), Some(r.xrb.id())).await.unwrap();
    assert_ne!(
        heads(&r.xaa, &published("XAB")),
        heads(&r.xab, &published("XAB"))
    );
    assert!(
        !heads(&r.xaa, &published("XAB")).is_empty(),
        "what it received before stays"
    );
    assert_eq!(p1(&r.un).current, Some(2600.0));
    // Nor does XAA's later data reach the pool: not XAB, not even the coordinator, which read
    // it only as the pool's.
    r.xaa
        .with_node(|n| {
            n.add_progress(report("T2", "2026-06-30", 2000.0))?;
            n.publish_target("T2")
        })
        .unwrap();
    sync_round(r.xaa.engine(), Some(r.xrb.id())).await.unwrap();
    sync_round(r.xab.engine(), Some(r.xrb.id())).await.unwrap();
    for m in [&r.xrb, &r.xab] {
        assert_ne!(
            heads(m, &published("XAA")),
            heads(&r.xaa, &published("XAA")),
            "{}",
            m.label
        );
        assert!(!heads(m, &published("XAA")).is_empty(), "{}", m.label);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_illustrative_requests_and_offers_match_o1_to_r2_and_leave_r1_unmet() {
    let homes = Homes::new();
    let data = poa_node::demo::dataset().unwrap();
    let xab = homes.state("xab", "XAB").await;
    let xac = homes.state("xac", "XAC").await;
    let xrb = homes.body("xrb", "XRB", BodyKind::Regional).await;
    let xzz = homes.body("xzz", "XZZ", BodyKind::Donor).await;
    let un = homes.body("un", "UNODA", BodyKind::Secretariat).await;
    link(&xab, &xrb, Some("XAB"), None);
    link(&xac, &xrb, Some("XAC"), None);
    xrb.pin_as(&xzz, Some(Principal::Body("XZZ".parse().unwrap())))
        .unwrap();
    xzz.pin(&xrb, None).unwrap();
    link(&xrb, &un, None, None);
    for m in [&un, &xzz, &xac, &xab] {
        m.trust_introductions_from(&xrb).unwrap();
    }
    let readers = [xrb.id(), un.id()];
    for (m, s) in [(&xab, "XAB"), (&xac, "XAC")] {
        let records = data.states.iter().find(|r| r.code == code(s)).unwrap();
        m.with_node(|n| {
            // A request names targets that exist (in the draft is enough).
            for t in &records.targets {
                n.add_target(t.clone())?;
            }
            for need in &records.needs {
                n.add_need(need.clone())?;
                n.publish_need(&need.id)?;
            }
            n.share(&published(s), &readers, false)
        })
        .unwrap();
    }
    xzz.with_node(|n| {
        for o in &data.donor.offers {
            n.add_offer(o.clone())?;
        }
        n.publish_offers(None)?;
        n.share(&n.offers_doc(), &[], true)
    })
    .unwrap();
    let offers: DocId = "offers/XZZ".parse().unwrap();
    for doc in [published("XAB"), published("XAC"), offers.clone()] {
        converge(&[&xrb, &un], &doc).await;
    }

    // The Secretariat's view: O1 -> R2 first, nothing fits R1.
    let s = un.with_node(|n| n.match_suggest()).unwrap();
    assert_eq!(
        (s[0].need.to_string(), s[0].offer.to_string()),
        ("XAC/R2".into(), "XZZ/O1".into()),
        "{s:?}"
    );
    assert!(s.iter().all(|x| x.need.to_string() != "XAB/R1"), "{s:?}");

    // Each side decides in its own document; nobody decides for another.
    let (r2, o1) = ("XAC/R2".parse().unwrap(), "XZZ/O1".parse().unwrap());
    let err = un
        .with_node(|n| n.match_decide(&r2, &o1, Decision::Proposed, None))
        .unwrap_err();
    assert!(
        err.to_string().contains("only the requesting State"),
        "{err}"
    );
    let err = xzz
        .with_node(|n| n.match_decide(&r2, &o1, Decision::Accepted, None))
        .unwrap_err();
    assert!(err.to_string().contains("holds no request XAC/R2"), "{err}");
    converge(&[&xac, &xrb, &xzz], &offers).await;
    xac.with_node(|n| n.match_decide(&r2, &o1, Decision::Proposed, Some("Q1 2027".into())))
        .unwrap();
    // Proposing shared XAC's document with the donor, through XRB.
    converge(&[&xac, &xrb, &xzz], &published("XAC")).await;
    xzz.with_node(|n| n.match_decide(&r2, &o1, Decision::Accepted, None))
        .unwrap();
    converge(&[&xzz, &xrb, &un], &offers).await;
    converge(&[&xac, &xrb, &un], &published("XAC")).await;

    let unmet: Vec<String> = un
        .with_node(|n| n.unmet_needs())
        .unwrap()
        .iter()
        .map(|(n, _)| format!("{}/{}", n.state, n.id))
        .collect();
    assert_eq!(unmet, ["XAB/R1"]);
    let m = un.with_node(|n| n.matches()).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].status(), poa_protocol::assist::MatchStatus::Accepted);
    // The met request gets no more suggestions.
    let s = un.with_node(|n| n.match_suggest()).unwrap();
    assert!(s.iter().all(|x| x.need.to_string() != "XAC/R2"), "{s:?}");

    // XAB withdraws R1 (entered by mistake): once the Secretariat has synced, it is no longer
    // in its unmet list, nor asked for anywhere; it stays in XAB's document, marked withdrawn.
    xab.with_node(|n| {
        n.withdraw_need("R1", "entered by mistake")?;
        n.publish_need("R1")
    })
    .unwrap();
    converge(&[&xab, &xrb, &un], &published("XAB")).await;
    let unmet = un.with_node(|n| n.unmet_needs()).unwrap();
    assert!(unmet.is_empty(), "{unmet:?}");
    let held = un.with_node(|n| n.state_data(&published("XAB"))).unwrap();
    assert!(held.needs.is_empty());
    assert!(held.retracted["needs/R1"]["reason"] == "entered by mistake");
    let again = xab.with_node(|n| n.withdraw_need("R1", "twice"));
    assert!(again.unwrap_err().to_string().contains("already withdrawn"));
}

/// A pool id carries its creator's key fingerprint: another node's pool of the same name is
/// another pool, a name two pools share must be given in full, and the first pool's
/// coordinator stays the only one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_name_two_nodes_chose_names_two_pools_each_with_one_coordinator() {
    let homes = Homes::new();
    let r = region(&homes).await;
    let first = form_pool(&r).await;
    r.xaa.with_node(|n| n.pool_leave("xanadu")).unwrap();
    // Another body creates its own "xanadu" and invites XAA (whose key it is given).
    let other = homes.body("other", "XRC", BodyKind::Regional).await;
    link(&other, &r.xaa, None, Some("XAA"));
    let xaa_key = r
        .xaa
        .with_node(|n| *n.store.trust().key(&Principal::State(code("XAA"))).unwrap());
    poa_tests::trust(&other, Principal::State(code("XAA")), xaa_key);
    let second = other
        .with_node(|n| {
            let p = n.pool_create("xanadu", "Another Xanadu", None)?;
            n.pool_invite("xanadu", Invitee::State(code("XAA")))?;
            Ok::<_, poa_node::NodeError>(p)
        })
        .unwrap();
    assert_ne!(first, second);
    converge(&[&other, &r.xaa], &second).await;
    let err = r.xaa.with_node(|n| n.pool_join("xanadu")).unwrap_err();
    assert!(
        err.to_string()
            .contains("2 pools held here are named xanadu"),
        "{err}"
    );
    let full = second.to_string().trim_start_matches("pool/").to_string();
    r.xaa.with_node(|n| n.pool_join(&full)).unwrap();
    for (doc, coordinator) in [(&first, r.xrb.id()), (&second, other.id())] {
        let full = doc.to_string().trim_start_matches("pool/").to_string();
        let owners = r.xaa.with_node(|n| n.pool(&full).unwrap().owner);
        assert_eq!(owners.into_iter().collect::<Vec<_>>(), [coordinator]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_a_pool_that_the_node_cannot_join_writes_nothing() {
    let homes = Homes::new();
    let xaa = homes.state("xaa", "XAA").await;
    // A second node of XAA that knows XAA's State key (from XAA's first node's hello) but holds
    // no delegation: it cannot create a pool and join it for XAA.
    let ministry = homes.ministry("ministry", "XAA").await;
    link(&xaa, &ministry, Some("XAA"), Some("XAA"));
    wait_until(CONVERGE, || {
        ministry.with_node(|n| {
            n.store
                .trust()
                .key(&Principal::State(code("XAA")))
                .is_some()
        })
    })
    .await
    .expect("the ministry learns XAA's key");
    let err = ministry
        .with_node(|n| n.pool_create("xanadu", "Xanadu sub-region", None))
        .unwrap_err();
    assert!(err.to_string().contains("State key"), "{err}");
    ministry.with_node(|n| {
        assert!(n.pool("xanadu").is_err());
        assert!(
            n.store
                .doc_ids()
                .unwrap()
                .iter()
                .all(|d| !matches!(d, DocId::Pool(_))),
            "a pool was half made"
        );
    });
}

/// A ministry of XAA, delegated until a day, joins the pool for XAA. Once that day has passed
/// by the coordinator's clock, the coordinator sends it neither the pool nor what members
/// share with the pool, even though no lapse revocation reached the pool (XAA's own node is
/// no member there, so it cannot place one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_member_whose_delegation_lapsed_is_sent_nothing_more() {
    use poa_node::node::Clock;
    use poa_protocol::authority::Scope;
    let homes = Homes::new();
    let r = region(&homes).await;
    let defence = homes.ministry("defence", "XAA").await;
    link(&r.xaa, &defence, Some("XAA"), Some("XAA"));
    link(&defence, &r.xrb, Some("XAA"), None);
    let last_day = poa_protocol::Date::from_unix_seconds(poa_node::node::now_secs() + 10 * 86_400);
    r.xaa
        .with_node(|n| n.delegate(defence.id(), Scope::ALL, Some(last_day)))
        .unwrap();
    poa_tests::wait_delegated(&r.xaa, &defence).await;
    let pool = r
        .xrb
        .with_node(|n| {
            let pool = n.pool_create("xanadu", "Xanadu sub-region", None)?;
            n.pool_invite("xanadu", Invitee::State(code("XAB")))?;
            n.pool_invite("xanadu", Invitee::State(code("XAA")))?;
            Ok::<_, poa_node::NodeError>(pool)
        })
        .unwrap();
    converge(&[&r.xrb, &defence, &r.xab], &pool).await;
    defence.with_node(|n| n.pool_join("xanadu")).unwrap();
    r.xab.with_node(|n| n.pool_join("xanadu")).unwrap();
    wait_until(CONVERGE, || {
        r.xrb.with_node(|n| {
            n.pool("xanadu")
                .map(|p| p.members.len() == 2)
                .unwrap_or(false)
        })
    })
    .await
    .expect("both joins reach the coordinator");
    // XAB's join shares its published document with the pool's audience.
    converge(&[&r.xab, &r.xrb], &published("XAB")).await;
    let reads = |doc: &DocId, days: i64| {
        r.xrb.with_node(|n| {
            n.clock = Clock::manual(poa_node::node::now_secs() + days * 86_400);
            let may = poa_node::host::can_read(n, &defence.id(), doc);
            n.clock = Clock::system();
            may
        })
    };
    for doc in [pool.clone(), published("XAB")] {
        assert!(reads(&doc, 0), "{doc}: a member reads until its last day");
        assert!(!reads(&doc, 11), "{doc}: not after it");
    }
}
