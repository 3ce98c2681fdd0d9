//! The demo's script: start the six nodes, pin them, enter the data set step by step, form
//! the pool, match assistance, then print the Secretariat's stocktake and serve its dashboard.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use poa_protocol::assist::{Decision, NeedRef};
use poa_protocol::doc::DocId;
use poa_protocol::submission::summary;
use poa_protocol::{BodyKind, NodeId};

use super::nodes::{Federation, Homes, start};
use super::output::{INDENT, describe, entered, heading, secretariat_holdings, stocktake_summary};
use super::watch::{check_kept_from, labels, remaining, track};
use super::{DEADLINE, Dataset, DemoError, dataset};
use crate::federation::{Member, wait_until};
use crate::format::{num, opt, table};
use crate::home::InitOptions;
use crate::pools::Invitee;
use crate::records::Selection;
use crate::sync::sync_round;

// ---------------------------------------------------------------------------------------------
// The demo
// ---------------------------------------------------------------------------------------------

/// Runs the demo: starts the six nodes in `keep` (a new or empty folder, left behind) or in a
/// temporary folder, enters the data set, waits for it to travel, checks where it went, prints
/// every step, and stops the nodes.
pub async fn run(keep: Option<PathBuf>, serve: Option<SocketAddr>) -> Result<(), DemoError> {
    let began = Instant::now();
    let data = dataset()?;
    let homes = Homes::new(keep)?;

    println!("poa-node demo: the illustrative Xanadu sub-region, cycle BMS9.");
    println!(
        "Six real nodes on this machine, each with its own key, SQLite file and QUIC endpoint"
    );
    println!(
        "on loopback. No central server: data reaches a node only through nodes it has pinned."
    );

    heading(1, "Starting the nodes");
    println!(
        "   {:<12} {:<26} {:<7}  {:<16} HOME",
        "NODE", "ACTS FOR", "NODEID", "LISTENS ON"
    );
    let mut states = Vec::new();
    for s in &data.states {
        let m = start(&homes, s.code.as_str(), InitOptions::state(s.code, s.name)).await?;
        states.push(m);
    }
    let fed = Federation {
        states,
        xrb: start(
            &homes,
            "XRB",
            InitOptions::body(
                data.region.clone(),
                BodyKind::Regional,
                "Xanadu Regional Bureau",
            ),
        )
        .await?,
        un: start(
            &homes,
            "Secretariat",
            InitOptions::body(
                data.secretariat.clone(),
                BodyKind::Secretariat,
                "UN Secretariat (UNODA)",
            ),
        )
        .await?,
        donor: start(
            &homes,
            data.donor.code.as_str(),
            InitOptions::body(data.donor.code.clone(), BodyKind::Donor, data.donor.name),
        )
        .await?,
    };

    let mut outcome = play(&fed, &data).await;
    if outcome.is_ok() {
        outcome = stocktake_and_serve(&fed, serve).await;
    }
    let stopping = Instant::now();
    fed.stop().await;
    outcome?;
    println!(
        "   Stopped the six nodes in {} ms. The demo took {:.1} s.",
        stopping.elapsed().as_millis(),
        began.elapsed().as_secs_f64()
    );

    match homes {
        Homes::Kept(dir) => {
            let d = dir.display();
            println!();
            println!("The nodes' homes are kept in {d}. Inspect them with the CLI, for example:");
            println!("   poa-node --home {d}/secretariat target list --state XAB");
            println!("   poa-node --home {d}/secretariat target show T1 --state XAB");
            println!("   poa-node --home {d}/secretariat audit");
            println!("   poa-node --home {d}/xab target list");
            println!("   poa-node --home {d}/xrb doc list");
            println!("   poa-node --home {d}/xzz doc list");
        }
        Homes::Temp(tmp) => {
            let path = tmp.path().to_path_buf();
            tmp.close()
                .map_err(|source| DemoError::Io { path, source })?;
            println!(
                "   The nodes' homes were removed; run `poa-node demo --keep DIR` to keep them."
            );
        }
    }
    Ok(())
}

/// Everything between starting the nodes and stopping them.
async fn play(fed: &Federation, data: &Dataset) -> Result<(), DemoError> {
    let deadline = Instant::now() + DEADLINE;
    let (xrb, un, donor) = (&fed.xrb, &fed.un, &fed.donor);

    heading(
        2,
        "Pinning keys: a node talks only to the nodes it has pinned",
    );
    // Every key first, then the addresses: a node that dialled a peer which had not pinned it
    // yet would be refused and back off, and the timings below would measure the back-off.
    let donor_body = Some(poa_protocol::Principal::Body(data.donor.code.clone()));
    for (s, m) in data.states.iter().zip(&fed.states) {
        m.accept_from(xrb, None)?;
        m.trust_introductions_from(xrb)?;
        xrb.accept_from(m, Some(s.code))?;
    }
    xrb.accept_from(un, None)?;
    un.accept_from(xrb, None)?;
    un.trust_introductions_from(xrb)?;
    // XRB and the Secretariat accept the donor's connections but never dial it.
    xrb.accept_from_as(donor, donor_body.clone())?;
    un.accept_from_as(donor, donor_body)?;
    for (s, m) in data.states.iter().zip(&fed.states) {
        m.pin(xrb, None)?;
        xrb.pin(m, Some(s.code))?;
        println!(
            "   {:<12} <-> XRB          (XRB pins it as a node of State {})",
            m.label, s.code
        );
    }
    xrb.pin(un, None)?;
    un.pin(xrb, None)?;
    println!("   {:<12} <-> Secretariat", "XRB");
    donor.pin(xrb, None)?;
    donor.trust_introductions_from(xrb)?;
    donor.pin(un, None)?;
    println!(
        "   {:<12}  -> XRB, Secretariat (they accept it and never dial it)",
        donor.label
    );
    println!(
        "   The States are not peers of the Secretariat: what they publish reaches it through XRB."
    );
    println!(
        "   Keys: XRB learns each State's key from the node it pinned for that State, and the"
    );
    println!(
        "   donor's body key likewise; the States, the donor and the Secretariat chose XRB as an"
    );
    println!(
        "   introducer. No node takes a key from a document's content, nor from an unchosen peer."
    );

    let mut pairs: Vec<(&Member, &Member)> = fed.states.iter().map(|m| (m, xrb)).collect();
    pairs.extend([(xrb, un), (donor, xrb), (donor, un)]);
    let up = wait_until(remaining(deadline), || {
        pairs.iter().all(|(a, b)| {
            a.engine().connected().contains(&b.id()) && b.engine().connected().contains(&a.id())
        })
    })
    .await
    .ok_or_else(|| DemoError::Timeout("the pinned nodes did not connect".into()))?;
    println!(
        "   {} QUIC connections up after {} ms (mutual TLS between pinned keys).",
        pairs.len(),
        up.as_millis()
    );

    heading(
        3,
        &format!(
            "Donor {} publishes its offers, readable by everyone it syncs with",
            donor.label
        ),
    );
    let offers_doc = donor.with_node(|n| n.offers_doc());
    for o in &data.donor.offers {
        donor.with_node(|n| n.add_offer(o.clone()))?;
        let kinds: Vec<String> = o.kinds.iter().map(|k| k.to_string()).collect();
        entered(
            &donor.label,
            &format!("offer add {}", o.id),
            &format!("{} ({})", o.title, kinds.join(", ")),
        );
    }
    let published = donor.with_node(|n| n.publish_offers(None))?;
    entered(
        &donor.label,
        "offer publish --yes",
        &format!("{} offer(s) out of the draft", published.len()),
    );
    let since = Instant::now();
    donor.with_node(|n| n.share(&offers_doc, &[], true))?;
    entered(&donor.label, &format!("share {offers_doc}"), "--public");
    println!("   {offers_doc} reached (ms after the share; nodes polled every 10 ms):");
    let mut readers: Vec<&Member> = vec![xrb, un];
    readers.extend(fed.states.iter());
    track(fed, &offers_doc, donor, &readers, since, deadline).await?;

    let mut step = 4;
    for (i, (s, m)) in data.states.iter().zip(&fed.states).enumerate() {
        heading(
            step,
            &format!(
                "{} enters its data: drafts first, then publish, then share with XRB and the Secretariat",
                s.code
            ),
        );
        step += 1;
        for t in &s.targets {
            m.with_node(|n| n.add_target(t.clone()))?;
            entered(&m.label, &format!("target add {}", t.id), &describe(t));
        }
        for p in &s.progress {
            let id = m.with_node(|n| n.add_progress(p.clone()))?;
            let mut what: Vec<String> = p
                .value
                .map(|v| format!("value {}", num(v)))
                .into_iter()
                .collect();
            what.extend(p.assessment.map(|a| a.to_string()));
            entered(
                &m.label,
                &format!("progress add {}", p.target),
                &format!("{id}: {}", what.join(", ")),
            );
        }
        for need in &s.needs {
            m.with_node(|n| n.add_need(need.clone()))?;
            entered(
                &m.label,
                &format!("need add {}", need.id),
                &format!(
                    "{} ({}, for {})",
                    need.title,
                    need.kind,
                    need.targets.join(", ")
                ),
            );
        }
        // The whole national submission goes out at once, requests with the targets that
        // depend on them.
        let p = m.with_node(|n| n.publish(&Selection::All))?;
        entered(&m.label, "submission publish --yes", &summary(&p));
        let doc = DocId::State(s.code);
        let (xrb_id, un_id): (NodeId, NodeId) = (xrb.id(), un.id());
        // Until this change, nobody else may read the document: its travel starts here.
        let since = Instant::now();
        m.with_node(|n| n.share(&doc, &[xrb_id, un_id], false))?;
        entered(
            &m.label,
            &format!("share {doc}"),
            "--with XRB --with Secretariat",
        );
        println!("   {doc} reached (ms after the share):");
        track(fed, &doc, m, &[xrb, un], since, deadline).await?;
        let mut others: Vec<&Member> = vec![donor];
        others.extend(
            fed.states
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, o)| o),
        );
        check_kept_from(fed, &doc, &others)?;
        println!(
            "     not sent to {} (not on the share list); {} never left {}",
            labels(&others),
            DocId::Draft(s.code),
            s.code
        );
    }

    for (s, m) in data.states.iter().zip(&fed.states) {
        if s.revisions.is_empty() {
            continue;
        }
        heading(
            step,
            &format!(
                "{} revises a published target: a later change travels the same way",
                s.code
            ),
        );
        step += 1;
        let mut since = Instant::now();
        for rev in &s.revisions {
            let v = m.with_node(|n| {
                n.supersede_target(&rev.id, |t| {
                    *t = rev.clone();
                    Ok(())
                })
            })?;
            entered(
                &m.label,
                &format!("target supersede {}", rev.id),
                &format!(
                    "v{v}: {} ({})",
                    describe(rev),
                    rev.reason.as_deref().unwrap_or("no reason given")
                ),
            );
            since = Instant::now();
            let p = m.with_node(|n| n.publish_target(&rev.id))?;
            entered(
                &m.label,
                &format!("target publish {}", rev.id),
                &summary(&p),
            );
        }
        let doc = DocId::State(s.code);
        println!("   {doc} reached (ms after the publish):");
        track(fed, &doc, m, &[xrb, un], since, deadline).await?;
    }

    heading(
        step,
        "Checking where the State documents went, after one more full sync round from the donor",
    );
    step += 1;
    let rounds = sync_round(donor.engine(), None).await?;
    for (peer, r) in &rounds {
        match r {
            Ok(rep) => println!(
                "   {} <-> {}: round complete, {} change(s) received, {} sent, {} round trip(s)",
                donor.label,
                peer.name,
                rep.accepted.values().sum::<usize>(),
                rep.sent.values().sum::<usize>(),
                rep.round_trips
            ),
            Err(e) => {
                return Err(DemoError::Check(format!(
                    "the donor's sync round with {} failed: {e}",
                    peer.name
                )));
            }
        }
    }
    for (i, s) in data.states.iter().enumerate() {
        let doc = DocId::State(s.code);
        let mut others: Vec<&Member> = vec![donor];
        others.extend(
            fed.states
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, o)| o),
        );
        check_kept_from(fed, &doc, &others)?;
        println!(
            "   {doc}: not held by {}, nor ever named to them by any node",
            labels(&others)
        );
        let draft = DocId::Draft(s.code);
        let not_own: Vec<&Member> = fed
            .all()
            .into_iter()
            .filter(|o| o.label != fed.states[i].label)
            .collect();
        check_kept_from(fed, &draft, &not_own)?;
        println!("   {draft}: held only by {}", s.code);
    }

    step = form_pool(fed, data, step, deadline).await?;
    step = match_assistance(fed, data, step, deadline).await?;

    heading(
        step,
        "What the Secretariat holds (read from its own database)",
    );
    secretariat_holdings(fed, data)
}

/// Prints the Secretariat's stocktake, then serves its dashboard until Ctrl-C (unless `serve`
/// is `None`).
async fn stocktake_and_serve(fed: &Federation, serve: Option<SocketAddr>) -> Result<(), DemoError> {
    let un = &fed.un;
    let st = un
        .engine()
        .read(|n| -> Result<_, crate::report::ReportError> {
            let cycle = crate::report::default_cycle(n)?;
            crate::report::compute(n, cycle, crate::node::today())
        })
        .map_err(|e| DemoError::Check(format!("the stocktake failed: {e}")))?;
    stocktake_summary(&st);
    let Some(addr) = serve else {
        return Ok(());
    };
    let engine = un.engine().clone();
    let board = match crate::dashboard::dashboard(engine.clone(), addr).await {
        Ok(b) => b,
        Err(e) => {
            println!("   {addr} is not free ({e}); taking another port.");
            let any = SocketAddr::new(addr.ip(), 0);
            crate::dashboard::dashboard(engine, any)
                .await
                .map_err(|e| DemoError::Check(format!("cannot serve the dashboard: {e}")))?
        }
    };
    println!();
    println!(
        "The Secretariat's dashboard: http://{}/  (read-only; Ctrl-C to stop the demo)",
        board.addr()
    );
    let _ = tokio::signal::ctrl_c().await;
    println!();
    board.shutdown().await;
    Ok(())
}

/// XRB creates the pool and invites the States, which join by consent; the Secretariat is
/// admitted as observer. Sharing then follows membership: each State's document reaches the
/// other members through XRB without naming them.
async fn form_pool(
    fed: &Federation,
    data: &Dataset,
    mut step: u32,
    deadline: Instant,
) -> Result<u32, DemoError> {
    let (xrb, un) = (&fed.xrb, &fed.un);
    let pool = &data.pool;
    heading(
        step,
        "XRB forms the Xanadu pool: States join by consent, the Secretariat observes",
    );
    step += 1;
    let since = Instant::now();
    let doc = xrb.with_node(|n| n.pool_create(pool.id, pool.name, Some(pool.framework.into())))?;
    entered(
        "XRB",
        &format!("pool create --id {}", pool.id),
        &format!("\"{}\", serving the {}", pool.name, pool.framework),
    );
    for s in &data.states {
        xrb.with_node(|n| n.pool_invite(pool.id, Invitee::State(s.code)))?;
        entered(
            "XRB",
            &format!("pool invite {} {}", pool.id, s.code),
            "names the State key XRB pinned for it",
        );
    }
    let un_id = un.id();
    xrb.with_node(|n| n.pool_observe(pool.id, un_id, "UN Secretariat"))?;
    entered(
        "XRB",
        &format!("pool observe {} <Secretariat>", pool.id),
        "reads the pool, writes nothing",
    );
    for p in &pool.pooled {
        xrb.with_node(|n| n.pool_target_add(pool.id, p.clone()))?;
        entered(
            "XRB",
            &format!("pool target add {} {}", pool.id, p.id),
            &format!(
                "{} ({} of {}, goal {})",
                p.title,
                p.aggregate,
                p.from,
                opt(p.value)
            ),
        );
    }
    println!("   {doc} reached (ms after its creation; its id carries XRB's key fingerprint):");
    let mut audience: Vec<&Member> = fed.states.iter().collect();
    audience.push(un);
    track(fed, &doc, xrb, &audience, since, deadline).await?;
    let since = Instant::now();
    for (s, m) in data.states.iter().zip(&fed.states) {
        m.with_node(|n| n.pool_join(pool.id))?;
        entered(
            &m.label,
            &format!("pool join {}", pool.id),
            "presents its delegation from the State key; shares state/ with the pool",
        );
        for (_, t) in pool.contributions.iter().filter(|(c, _)| *c == s.code) {
            m.with_node(|n| n.pool_contribute(pool.id, t))?;
            let title = s
                .targets
                .iter()
                .find(|x| x.id == *t)
                .map(|x| x.title.as_str())
                .unwrap_or_default();
            entered(&m.label, &format!("pool contribute {} {t}", pool.id), title);
        }
    }
    let want = data.states.len();
    wait_until(remaining(deadline), || {
        xrb.with_node(|n| n.pool(pool.id))
            .map(|p| p.members.len() == want && p.contributions.len() == want)
            .unwrap_or(false)
    })
    .await
    .ok_or_else(|| DemoError::Timeout("the joins did not reach XRB".into()))?;
    println!("   {doc} with every join and contribution reached:");
    track(fed, &doc, xrb, &audience, since, deadline).await?;
    for (i, (s, m)) in data.states.iter().zip(&fed.states).enumerate() {
        let mut others: Vec<&Member> = fed
            .states
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, o)| o)
            .collect();
        others.extend([xrb, un]);
        let doc = DocId::State(s.code);
        println!(
            "   {doc} (now shared with the pool) reached the other members (sharing follows membership), XRB and the Secretariat:"
        );
        track(fed, &doc, m, &others, since, deadline).await?;
    }
    Ok(step)
}

/// The Secretariat's suggestions; XAC proposes O1 for R2 and the donor accepts, each in its own
/// document; R1 stays unmet.
async fn match_assistance(
    fed: &Federation,
    data: &Dataset,
    mut step: u32,
    deadline: Instant,
) -> Result<u32, DemoError> {
    let (xrb, un, donor) = (&fed.xrb, &fed.un, &fed.donor);
    heading(
        step,
        "Matching requests with offers: each side decides in its own document",
    );
    step += 1;
    let suggestions = un.with_node(|n| n.match_suggest())?;
    println!("   The Secretariat's `match suggest`, best first:");
    let rows: Vec<Vec<String>> = suggestions
        .iter()
        .map(|s| {
            vec![
                s.need.to_string(),
                s.offer.to_string(),
                s.score.to_string(),
                s.fits.join("; "),
            ]
        })
        .collect();
    print!(
        "{}",
        table(INDENT, &["REQUEST", "OFFER", "SCORE", "FITS"], &rows)
    );
    let unfit: Vec<String> = un
        .with_node(|n| n.unmet_needs())?
        .iter()
        .map(|(n, _)| NeedRef::of(n))
        .filter(|r| suggestions.iter().all(|s| s.need != *r))
        .map(|r| r.to_string())
        .collect();
    println!("   No offer fits: {}", unfit.join(", "));
    let (need, offer) = &data.accepted_match;
    let state = fed
        .states
        .iter()
        .zip(&data.states)
        .find(|(_, s)| s.code == need.state)
        .map(|(m, _)| m)
        .ok_or_else(|| DemoError::Data(format!("no node for {}", need.state)))?;
    let since = Instant::now();
    state.with_node(|n| {
        n.match_decide(
            need,
            offer,
            Decision::Proposed,
            Some("training in 2027".into()),
        )
    })?;
    entered(
        &state.label,
        &format!("match propose {need} {offer}"),
        "recorded in its own document, now shared with the donor",
    );
    let doc = DocId::State(need.state);
    println!("   {doc} reached (ms after the proposal):");
    track(fed, &doc, state, &[xrb, donor, un], since, deadline).await?;
    let since = Instant::now();
    donor.with_node(|n| n.match_decide(need, offer, Decision::Accepted, None))?;
    entered(
        &donor.label,
        &format!("match accept {need} {offer}"),
        "recorded in offers/XZZ",
    );
    let doc = donor.with_node(|n| n.offers_doc());
    println!("   {doc} reached (ms after the acceptance):");
    track(fed, &doc, donor, &[xrb, un], since, deadline).await?;
    Ok(step)
}
