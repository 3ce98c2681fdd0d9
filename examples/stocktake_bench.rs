//! Stocktake benchmark: prints timings, asserts nothing about time.
//!
//! A synthetic federation of 193 States (codes XAA, XAB, ... of the user-assigned range), each
//! with 20 targets of cycle BMS9 (areas in turn, quantitative) and 4 progress reports per target,
//! 2 assistance requests each; 10 pools of about 19 members with every member contributing its
//! destruction targets and one pooled sum; 5 donors with 5 offers each. The documents are real
//! Automerge documents built from each kind's genesis, one signed change per target (with its
//! reports), request, join or offer. It measures, in this process:
//!
//! - reading the documents into records (`StateData::read` and friends), as a node does;
//! - the stocktake itself (`poa_protocol::stocktake::stocktake`), the pure function;
//! - rendering it to JSON, Markdown and HTML;
//! - the same on a Secretariat node that received every document through the gate into its
//!   SQLite file, from cold (loading each document and checking every change's signature) and
//!   warm: the `poa-node stocktake` path, process start aside.
//!
//! Goal (issue 6): the stocktake under 1 s in release.
//!
//! Run: `cargo run --release -p poa-examples --example stocktake_bench`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use poa_node::Node;
use poa_node::home::{Home, InitOptions};
use poa_node::report::{Format, compute, render};
use poa_node::store::{Source as StoreSource, StoreError};
use poa_protocol::authority::{Grant, GrantKind, Scope, SignedGrant};
use poa_protocol::automerge::transaction::Transaction;
use poa_protocol::automerge::{Automerge, ReadDoc};
use poa_protocol::date::Date;
use poa_protocol::doc::{DocId, OffersData, StateData, document_json, genesis, put_at, put_record};
use poa_protocol::model::{
    Area, AssistanceKind, Direction, Indicator, IndicatorKind, Need, Offer, Priority, Progress,
    Target,
};
use poa_protocol::pool::{Aggregate, PoolData, PooledTarget};
use poa_protocol::rules::Incoming;
use poa_protocol::sign::{NodeKey, actor_id, sign_change};
use poa_protocol::stocktake::{Input, Source, Stocktake, stocktake};
use poa_protocol::{BodyKind, StateCode};

const STATES: usize = 193;
const TARGETS: usize = 20;
const REPORTS: usize = 4;
const POOLS: usize = 10;
const DONORS: usize = 5;
const GOAL: Duration = Duration::from_secs(1);

/// A document built change by change, each change signed by its author: what a node would
/// receive from its peers.
struct Signed {
    id: DocId,
    doc: Automerge,
    changes: Vec<Incoming>,
}

impl Signed {
    fn new(id: DocId) -> Signed {
        Signed {
            doc: genesis(&id),
            id,
            changes: Vec::new(),
        }
    }

    fn change(
        &mut self,
        key: &NodeKey,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<()>,
    ) -> Result<()> {
        self.doc.set_actor(actor_id(&key.node_id(), &[7; 8]));
        let mut tx = self.doc.transaction();
        f(&mut tx)?;
        let (hash, _) = tx.commit();
        let hash = hash.ok_or_else(|| anyhow::anyhow!("an empty change"))?;
        let change = self
            .doc
            .get_change_by_hash(&hash)
            .ok_or_else(|| anyhow::anyhow!("a change just made is missing"))?;
        self.changes.push(Incoming {
            change,
            signature: Some(sign_change(key, &self.id, &hash)),
        });
        Ok(())
    }
}

/// A State's key and its node's key, derived from its index.
fn keys(i: usize) -> (NodeKey, NodeKey) {
    let seed = |k: u8| {
        let mut s = [k; 32];
        s[..8].copy_from_slice(&(i as u64).to_le_bytes());
        s
    };
    (NodeKey::from_seed(&seed(1)), NodeKey::from_seed(&seed(2)))
}

/// The delegation by which State `i`'s key lets its node write.
fn delegation(state: StateCode, i: usize) -> Result<String> {
    let (state_key, node) = keys(i);
    Ok(SignedGrant::sign(
        &state_key,
        Grant {
            kind: GrantKind::Delegation,
            state,
            node: node.node_id(),
            scope: Some(Scope::ALL),
            expires: None,
            issued: "2026-01-01".parse()?,
            state_key: state_key.node_id(),
        },
    )
    .to_text())
}

fn code(i: usize) -> Result<StateCode> {
    let a = (b'A' + (i / 26) as u8) as char;
    let b = (b'A' + (i % 26) as u8) as char;
    Ok(format!("X{a}{b}").parse()?)
}

/// A State's published document: its node's delegation, then one change per target (with its
/// reports), then one per request.
fn state_doc(state: StateCode, i: usize) -> Result<Signed> {
    let (_, node) = keys(i);
    let mut doc = Signed::new(DocId::State(state));
    let grant = delegation(state, i)?;
    doc.change(&node, |tx| {
        put_at(
            tx,
            "delegations",
            &[&node.node_id().to_string()],
            &serde_json::json!(grant),
        )?;
        Ok(())
    })?;
    for t in 0..TARGETS {
        let baseline = (i % 50) as f64;
        let target = Target {
            id: format!("T{t}"),
            state,
            version: 1,
            cycle: "BMS9".parse()?,
            area: Area::ALL[t % Area::ALL.len()],
            title: format!("Target {t} of {state}"),
            description: None,
            indicator: Indicator {
                kind: IndicatorKind::Quantitative,
                text: format!("indicator {t}"),
                unit: Some("units".into()),
                direction: Some(Direction::Increase),
            },
            baseline: Some(baseline),
            baseline_year: Some(2023),
            baseline_source: None,
            value: Some(baseline + 100.0),
            deadline: if t % 3 == 0 {
                "2026-06-30"
            } else {
                "2027-12-31"
            }
            .parse()?,
            mosaic: vec![],
            refs: vec![],
            sdg: (t == 2).then(|| "16.4.2".to_string()),
            conditional_on: vec![],
            supersedes: None,
            reason: None,
        };
        doc.change(&node, |tx| {
            put_record(tx, "targets", &format!("T{t}/1"), &target)?;
            for r in 0..REPORTS {
                let as_of: Date = format!("{}-12-31", 2023 + r).parse()?;
                let value = baseline + 30.0 * (r + 1) as f64 + ((i + t) % 7) as f64;
                let p = Progress {
                    note: Some("synthetic".into()),
                    ..Progress::bare(&format!("T{t}"), as_of, Some(value))
                };
                put_record(tx, "progress", &p.id, &p)?;
            }
            Ok(())
        })?;
    }
    for n in 0..2 {
        let need = Need {
            id: format!("R{n}"),
            state,
            title: format!("Request {n}"),
            targets: vec![format!("T{n}")],
            area: Area::ALL[(i + n) % Area::ALL.len()],
            mosaic: vec![],
            kind: AssistanceKind::ALL[(i + n) % AssistanceKind::ALL.len()],
            cost: Some(10_000.0 * (n + 1) as f64),
            currency: Some("USD".into()),
            from: None,
            until: None,
            priority: Priority::Medium,
        };
        doc.change(&node, |tx| Ok(put_record(tx, "needs", &need.id, &need)?))?;
    }
    Ok(doc)
}

/// A pool: its coordinator's charter, invitations and pooled target, then each member's join
/// (with its delegation) and contribution of its destruction targets.
fn pool_doc(p: usize, members: &[(usize, StateCode)]) -> Result<Signed> {
    let mut doc = Signed::new(DocId::Pool(format!("pool{p}")));
    let coordinator = NodeKey::from_seed(&[200 + p as u8; 32]);
    let pooled = PooledTarget {
        id: "P1".into(),
        title: "weapons destroyed".into(),
        aggregate: Aggregate::Sum,
        from: "destruction".parse()?,
        value: Some(5000.0),
        unit: Some("units".into()),
        direction: None,
        deadline: None,
    };
    doc.change(&coordinator, |tx| {
        put_at(tx, "owner", &[&coordinator.node_id().to_string()], &serde_json::json!(true))?;
        let charter = serde_json::json!({"name": format!("Pool {p}"), "coordinator": format!("XR{p}"), "created": "2026-01-01"});
        put_at(tx, "charter", &["charter"], &charter)?;
        for (i, s) in members {
            let (state_key, _) = keys(*i);
            let invite = serde_json::json!({"state": s.to_string(), "state_key": state_key.node_id().to_string(), "invited": "2026-01-01"});
            put_at(tx, "invites", &[s.as_str()], &invite)?;
        }
        put_record(tx, "pooled", "P1", &pooled)?;
        Ok(())
    })?;
    for (i, s) in members {
        let (_, node) = keys(*i);
        let grant = delegation(*s, *i)?;
        let me = node.node_id().to_string();
        doc.change(&node, |tx| {
            put_at(tx, "members", &[s.as_str(), &me], &serde_json::json!(grant))?;
            Ok(())
        })?;
        doc.change(&node, |tx| {
            for t in (0..TARGETS).filter(|t| Area::ALL[t % Area::ALL.len()] == Area::Destruction) {
                let c = serde_json::json!({"target": format!("T{t}"), "contributed": "2026-01-01"});
                put_at(tx, "sections", &[s.as_str(), &format!("T{t}")], &c)?;
            }
            Ok(())
        })?;
    }
    Ok(doc)
}

/// A donor's offers, one change each.
fn offers_doc(d: usize) -> Result<Signed> {
    let provider = format!("XD{d}");
    let mut doc = Signed::new(DocId::Offers(provider.clone()));
    let donor = NodeKey::from_seed(&[150 + d as u8; 32]);
    for o in 0..5 {
        let offer = Offer {
            id: format!("O{o}"),
            provider: provider.clone(),
            title: format!("Offer {o}"),
            areas: vec![Area::ALL[(d + o) % Area::ALL.len()]],
            mosaic: vec![],
            kinds: vec![AssistanceKind::ALL[o % AssistanceKind::ALL.len()]],
            regions: vec![],
            budget_min: None,
            budget_max: Some(100_000.0),
            currency: Some("USD".into()),
            from: None,
            until: None,
        };
        doc.change(&donor, |tx| {
            if o == 0 {
                put_at(
                    tx,
                    "owner",
                    &[&donor.node_id().to_string()],
                    &serde_json::json!(true),
                )?;
            }
            put_record(tx, "offers", &offer.id, &offer)?;
            Ok(())
        })?;
    }
    Ok(doc)
}

/// Puts every document into a fresh Secretariat node's database through the gate, as sync
/// would, then reopens the node so nothing is cached: the `poa-node stocktake` path.
fn stored_node(
    dir: &std::path::Path,
    docs: &[&Signed],
    states: &[(usize, StateCode)],
) -> Result<Node> {
    let home = Home::init(
        dir,
        &InitOptions::body("UNODA".parse()?, BodyKind::Secretariat, "bench Secretariat"),
    )?;
    let mut node = Node::from_home(home)?;
    let now = 1_795_000_000;
    for (i, s) in states {
        let (state_key, _) = keys(*i);
        node.store
            .learn_state_key(s, &state_key.node_id(), "bench", now)?;
    }
    let peer = NodeKey::from_seed(&[99; 32]).node_id();
    for d in docs {
        let refused = node.store.transact(|tx| -> Result<usize, StoreError> {
            let mut stored = tx.load_or_create(&d.id, now)?;
            let applied = tx.apply(
                &d.id,
                &mut stored,
                d.changes.clone(),
                StoreSource::Peer(peer),
                now,
            )?;
            Ok(applied.rejected.len() + applied.waiting.len())
        })?;
        ensure!(refused == 0, "{}: {refused} change(s) refused", d.id);
    }
    drop(node);
    Ok(Node::open(dir)?)
}

fn ms(d: Duration) -> String {
    format!("{:>8.1} ms", d.as_secs_f64() * 1e3)
}

fn main() -> Result<()> {
    println!(
        "Synthetic federation: {STATES} States x {TARGETS} targets x {REPORTS} progress reports, {POOLS} pools, {DONORS} donors."
    );
    let t0 = Instant::now();
    let mut states = Vec::new();
    for i in 0..STATES {
        let s = code(i)?;
        states.push((s, state_doc(s, i)?));
    }
    let indexed: Vec<(usize, StateCode)> = states
        .iter()
        .enumerate()
        .map(|(i, (s, _))| (i, *s))
        .collect();
    let pools: Vec<(String, Signed)> = indexed
        .chunks(STATES.div_ceil(POOLS))
        .enumerate()
        .map(|(p, members)| Ok((format!("pool{p}"), pool_doc(p, members)?)))
        .collect::<Result<_>>()?;
    let offers: Vec<(String, Signed)> = (0..DONORS)
        .map(|d| Ok((format!("XD{d}"), offers_doc(d)?)))
        .collect::<Result<_>>()?;
    let mut all: Vec<&Signed> = states.iter().map(|(_, d)| d).collect();
    all.extend(pools.iter().map(|(_, d)| d));
    all.extend(offers.iter().map(|(_, d)| d));
    let changes: usize = all.iter().map(|d| d.changes.len()).sum();
    println!(
        "Built {} documents ({changes} signed changes) in {:.2} s (not part of the stocktake).",
        all.len(),
        t0.elapsed().as_secs_f64()
    );

    let t1 = Instant::now();
    let mut input = Input::default();
    for (s, d) in &states {
        let data = StateData::read(&d.doc, None);
        input.states.insert(
            *s,
            Source {
                heads: d.doc.get_heads(),
                data,
            },
        );
    }
    for (id, d) in &pools {
        let data = PoolData::from_json(&document_json(&d.doc, None));
        input.pools.insert(
            id.clone(),
            Source {
                heads: d.doc.get_heads(),
                data,
            },
        );
    }
    for (p, d) in &offers {
        let data = OffersData::read(&d.doc);
        input.offers.insert(
            p.clone(),
            Source {
                heads: d.doc.get_heads(),
                data,
            },
        );
    }
    let read = t1.elapsed();

    let as_of: Date = "2026-11-27".parse()?;
    let mut best = Duration::MAX;
    let mut st = None;
    for _ in 0..5 {
        let t = Instant::now();
        let out = stocktake(&input, "BMS9".parse()?, as_of);
        best = best.min(t.elapsed());
        st = Some(out);
    }
    let st = st.ok_or_else(|| anyhow::anyhow!("no run"))?;
    ensure!(
        st.totals.targets as usize == STATES * TARGETS,
        "targets counted: {}",
        st.totals.targets
    );
    let mut renders = BTreeMap::new();
    for (name, f) in [
        ("json", Format::Json),
        ("md", Format::Md),
        ("html", Format::Html),
    ] {
        let t = Instant::now();
        let text = render(&st, f);
        renders.insert(name, (t.elapsed(), text.len()));
    }

    println!();
    println!("{:<48} {:>11}", "step", "time");
    println!(
        "{:<48} {}",
        format!("read {} documents into records", all.len()),
        ms(read)
    );
    println!(
        "{:<48} {}",
        "stocktake (pure function, best of 5)",
        ms(best)
    );
    for (name, (t, len)) in &renders {
        println!(
            "{:<48} {}",
            format!("render {name} ({} KiB)", len / 1024),
            ms(*t)
        );
    }

    // The same documents in a node's database: what `poa-node stocktake` does.
    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    let node = stored_node(dir.path(), &all, &indexed)?;
    let import = t.elapsed();
    // Cold runs in fresh threads, as in a fresh process: nothing cached, not even the set of
    // grants already verified.
    let path = dir.path().to_path_buf();
    let ids: Vec<DocId> = all.iter().map(|d| d.id.clone()).collect();
    let cold_run = {
        let path = path.clone();
        std::thread::spawn(move || -> Result<(Stocktake, Duration)> {
            let node = Node::open(&path)?;
            let t = Instant::now();
            let st = compute(&node, "BMS9".parse()?, as_of)?;
            Ok((st, t.elapsed()))
        })
    };
    let (cold, cold_time) = cold_run
        .join()
        .map_err(|_| anyhow::anyhow!("the cold run panicked"))??;
    // Where the cold time goes: another cold node, loading (and checking) only.
    let load_time = std::thread::spawn(move || -> Result<Duration> {
        let node = Node::open(&path)?;
        let t = Instant::now();
        for id in &ids {
            node.store.with_doc(id, |_| ())?;
        }
        Ok(t.elapsed())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the load run panicked"))??;
    let _ = compute(&node, "BMS9".parse()?, as_of)?;
    let t = Instant::now();
    let warm = compute(&node, "BMS9".parse()?, as_of)?;
    let warm_time = t.elapsed();
    ensure!(
        cold == warm && warm.totals == st.totals && warm.targets == st.targets,
        "the node computes other figures"
    );
    println!(
        "{:<48} {}",
        "node, cold: load, check signatures, compute",
        ms(cold_time)
    );
    println!(
        "{:<48} {}",
        "  of which: load and check every change",
        ms(load_time)
    );
    println!(
        "{:<48} {}",
        "node, warm (documents cached): compute",
        ms(warm_time)
    );
    println!(
        "{:<48} {}",
        "(setup: import through the gate into SQLite)",
        ms(import)
    );
    println!();
    println!(
        "{} targets, {} pools, {} unmet requests, {} sources cited.",
        st.totals.targets,
        st.pools.len(),
        st.unmet_needs.len(),
        st.sources.len()
    );
    let verdict = |d: Duration| if d < GOAL { "met" } else { "NOT met" };
    println!(
        "Goal: stocktake under {} s: {} for the pure function, {} for a node from cold.",
        GOAL.as_secs(),
        verdict(best),
        verdict(cold_time)
    );
    Ok(())
}
