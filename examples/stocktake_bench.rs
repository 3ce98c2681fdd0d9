//! Stocktake benchmark: prints timings, asserts nothing about time.
//!
//! A synthetic federation of 193 States (codes XAA, XAB, ... of the user-assigned range), each
//! with 20 targets of cycle BMS9 (areas in turn, quantitative) and 4 progress reports per target,
//! 2 assistance requests each; 10 pools of about 19 members with every member contributing its
//! destruction targets and one pooled sum; 5 donors with 5 offers each. The documents are built
//! as a node builds them: each change a `ChangeData` signed by its author and admitted through
//! the gate (`Ledger::admit`, then `Ledger::settle`, every change checked to stand). A State's
//! (or donor's) node first places its own delegation, signed by the State (body) key, in a
//! change of its own; then one change per target (with its reports), request or offer. A pool
//! is coordinated by the node its id fingerprints: its charter, invitations and pooled target,
//! then each member's join (with its delegation) and contribution. It measures, in this process:
//!
//! - reading the documents' views into records (`StateData::from_json` and friends), as a node
//!   does;
//! - the stocktake itself (`poa_protocol::stocktake::stocktake`), the pure function;
//! - rendering it to JSON, Markdown and HTML;
//! - the same on a Secretariat node that trusts the State and donor keys and received every
//!   document through the gate into its SQLite file, from cold (loading each document and
//!   checking every change's signature again) and warm: the `poa-node stocktake` path, process
//!   start aside.
//!
//! Goal (issue 6): the stocktake under 1 s in release.
//!
//! Run: `cargo run --release -p poa-examples --example stocktake_bench`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use poa_node::Node;
use poa_node::home::{Home, InitOptions};
use poa_node::report::{Format, compute, render};
use poa_node::store::{Source as StoreSource, StoreError};
use poa_protocol::authority::{Grant, GrantKind, Scope, SignedGrant, Trust, TrustSource};
use poa_protocol::change::{FlatAction, FlatOp, SignedChange};
use poa_protocol::date::Date;
use poa_protocol::doc::{DocId, OffersData, PoolId, StateData};
use poa_protocol::ledger::{Admitted, Ledger, Verdict, actor_bytes};
use poa_protocol::model::{
    Area, AssistanceKind, Direction, Indicator, IndicatorKind, Need, Offer, Priority, Progress,
    Target,
};
use poa_protocol::pool::{
    Aggregate, Charter, Contribution, Invite, PoolData, PooledTarget, Source as PoolSource,
};
use poa_protocol::sign::{NodeKey, sign_change};
use poa_protocol::stocktake::{Input, Source, Stocktake, stocktake};
use poa_protocol::{BodyKind, NodeId, Principal, StateCode};

const STATES: usize = 193;
const TARGETS: usize = 20;
const REPORTS: usize = 4;
const POOLS: usize = 10;
const DONORS: usize = 5;
const GOAL: Duration = Duration::from_secs(1);
/// The time every change says it was made (2026-01-01).
const WRITTEN: i64 = 1_767_225_600;

/// A document built change by change, each change signed by its author and admitted through
/// the gate: what a node would receive from its peers.
struct Signed {
    id: DocId,
    /// The key the document is bound to (a State's or body's), `None` for a pool.
    key: Option<NodeId>,
    ledger: Ledger,
    changes: Vec<SignedChange>,
}

impl Signed {
    fn new(id: DocId, key: Option<NodeId>) -> Signed {
        Signed {
            ledger: Ledger::new(&id),
            id,
            key,
            changes: Vec::new(),
        }
    }

    /// A put of a JSON text (a record as `serde_json::to_string` writes it) under `key` of
    /// `container`.
    fn put_text(&self, container: &str, key: &str, value: String) -> Result<FlatOp> {
        let Some(c) = self.id.kind().container(container) else {
            bail!("{} has no container {container}", self.id);
        };
        Ok(FlatOp {
            container: c,
            key: key.into(),
            action: FlatAction::Put {
                value,
                preds: vec![],
            },
        })
    }

    /// One change by `author`: built on the heads, signed, admitted; it must stand.
    fn change(&mut self, author: &NodeKey, ops: Vec<FlatOp>) -> Result<()> {
        let actor = actor_bytes(&author.node_id(), &[7; 8]);
        let data = self.ledger.next_change(&actor, WRITTEN, ops);
        let hash = data.to_automerge(&self.id)?.hash();
        let signed = SignedChange {
            signature: sign_change(author, &self.id, &hash).to_vec(),
            data,
        };
        match self.ledger.admit(&signed, self.key.as_ref()) {
            Admitted::New(_) => {}
            other => bail!("{}: change not admitted: {other:?}", self.id),
        }
        self.ledger.settle(self.key.as_ref());
        match self.ledger.verdict(&hash) {
            Some(Verdict::Stands) => {}
            other => bail!("{}: change does not stand: {other:?}", self.id),
        }
        self.changes.push(signed);
        Ok(())
    }

    /// The view and heads, as settled.
    fn settled(&self) -> Result<(&serde_json::Value, Vec<poa_protocol::automerge::ChangeHash>)> {
        let Some(s) = self.ledger.settled() else {
            bail!("{} is not settled", self.id);
        };
        Ok((&s.view, s.heads.clone()))
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

/// A donor's body key and its node's key.
fn donor_keys(d: usize) -> (NodeKey, NodeKey) {
    (
        NodeKey::from_seed(&[150 + d as u8; 32]),
        NodeKey::from_seed(&[170 + d as u8; 32]),
    )
}

/// The delegation, of scope all, by which `principal_key` lets `node` write.
fn delegation(
    principal: Principal,
    principal_key: &NodeKey,
    node: &NodeKey,
) -> Result<SignedGrant> {
    Ok(SignedGrant::sign(
        principal_key,
        Grant {
            kind: GrantKind::Delegation,
            principal,
            node: node.node_id(),
            scope: Some(Scope::ALL),
            expires: None,
            issued: "2026-01-01".parse()?,
            key: principal_key.node_id(),
            cutoff: Vec::new(),
            serial: 0,
            kept: Vec::new(),
            recovery: None,
        },
    ))
}

/// The node places its own delegation, in a change holding only it.
fn delegate_self(doc: &mut Signed, grant: &SignedGrant, node: &NodeKey) -> Result<()> {
    let op = doc.put_text(
        GrantKind::Delegation.container(),
        &grant.storage_key(),
        grant.to_text(),
    )?;
    doc.change(node, vec![op])
}

fn code(i: usize) -> Result<StateCode> {
    let a = (b'A' + (i / 26) as u8) as char;
    let b = (b'A' + (i % 26) as u8) as char;
    Ok(format!("X{a}{b}").parse()?)
}

/// A State's published document: its node's delegation, then one change per target (with its
/// reports), then one per request.
fn state_doc(state: StateCode, i: usize) -> Result<Signed> {
    let (state_key, node) = keys(i);
    let mut doc = Signed::new(DocId::State(state), Some(state_key.node_id()));
    let grant = delegation(Principal::State(state), &state_key, &node)?;
    delegate_self(&mut doc, &grant, &node)?;
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
        let mut ops = vec![doc.put_text(
            "targets",
            &format!("T{t}/1"),
            serde_json::to_string(&target)?,
        )?];
        for r in 0..REPORTS {
            let as_of: Date = format!("{}-12-31", 2023 + r).parse()?;
            let value = baseline + 30.0 * (r + 1) as f64 + ((i + t) % 7) as f64;
            let p = Progress {
                note: Some("synthetic".into()),
                ..Progress::bare(&format!("T{t}"), as_of, Some(value))
            };
            ops.push(doc.put_text("progress", &p.id, serde_json::to_string(&p)?)?);
        }
        doc.change(&node, ops)?;
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
        let op = doc.put_text("needs", &need.id, serde_json::to_string(&need)?)?;
        doc.change(&node, vec![op])?;
    }
    Ok(doc)
}

/// A pool: its coordinator's charter, invitations and pooled target, then each member's join
/// (with its delegation) and contribution of its destruction targets.
fn pool_doc(p: usize, members: &[(usize, StateCode)]) -> Result<Signed> {
    let coordinator = NodeKey::from_seed(&[200 + p as u8; 32]);
    let id = PoolId::new(&format!("pool{p}"), &coordinator.node_id());
    let mut doc = Signed::new(DocId::Pool(id), None);
    let pooled = PooledTarget {
        id: "P1".into(),
        title: "weapons destroyed".into(),
        aggregate: Aggregate::Sum,
        from: "destruction".parse::<PoolSource>()?,
        value: Some(5000.0),
        unit: Some("units".into()),
        direction: None,
        deadline: None,
    };
    let charter = Charter {
        name: format!("Pool {p}"),
        node: coordinator.node_id(),
        framework: None,
        coordinator: format!("XR{p}"),
        created: "2026-01-01".parse()?,
    };
    let mut ops = vec![doc.put_text("charter", "charter", serde_json::to_string(&charter)?)?];
    for (i, s) in members {
        let (state_key, _) = keys(*i);
        let invite = Invite {
            state: *s,
            state_key: state_key.node_id(),
            node: None,
            invited: "2026-01-01".parse()?,
        };
        ops.push(doc.put_text("invites", s.as_str(), serde_json::to_string(&invite)?)?);
    }
    ops.push(doc.put_text("pooled", "P1", serde_json::to_string(&pooled)?)?);
    doc.change(&coordinator, ops)?;
    for (i, s) in members {
        let (state_key, node) = keys(*i);
        let grant = delegation(Principal::State(*s), &state_key, &node)?;
        let me = node.node_id();
        let op = doc.put_text("members", &format!("{s}/{me}"), grant.to_text())?;
        doc.change(&node, vec![op])?;
        let ops = (0..TARGETS)
            .filter(|t| Area::ALL[t % Area::ALL.len()] == Area::Destruction)
            .map(|t| {
                let c = Contribution {
                    target: format!("T{t}"),
                    contributed: "2026-01-01".parse()?,
                    by: Some(me),
                };
                doc.put_text("sections", &format!("{s}/T{t}"), serde_json::to_string(&c)?)
            })
            .collect::<Result<Vec<_>>>()?;
        doc.change(&node, ops)?;
    }
    Ok(doc)
}

/// A donor's offers: its node's delegation by the body key, then one change per offer.
fn offers_doc(d: usize) -> Result<Signed> {
    let provider = format!("XD{d}");
    let (body_key, donor) = donor_keys(d);
    let mut doc = Signed::new(DocId::Offers(provider.clone()), Some(body_key.node_id()));
    let grant = delegation(Principal::Body(provider.parse()?), &body_key, &donor)?;
    delegate_self(&mut doc, &grant, &donor)?;
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
        let op = doc.put_text("offers", &offer.id, serde_json::to_string(&offer)?)?;
        doc.change(&donor, vec![op])?;
    }
    Ok(doc)
}

/// Puts every document into a fresh Secretariat node's database through the gate (one store
/// transaction each, after trusting the State and donor keys as its operator would), then
/// reopens the node so nothing is cached: the `poa-node stocktake` path.
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
        node.store.learn_key(
            &Principal::State(*s),
            &state_key.node_id(),
            &TrustSource::Operator,
            now,
        )?;
    }
    for d in 0..DONORS {
        let (body_key, _) = donor_keys(d);
        node.store.learn_key(
            &Principal::Body(format!("XD{d}").parse()?),
            &body_key.node_id(),
            &TrustSource::Operator,
            now,
        )?;
    }
    for d in docs {
        let refused = node.store.transact(|tx| -> Result<usize, StoreError> {
            let out = tx.apply(&d.id, d.changes.clone(), StoreSource::Local, now)?;
            Ok(out.rejected.len() + out.waiting.len() + out.voided.len())
        })?;
        ensure!(refused == 0, "{}: {refused} change(s) refused", d.id);
        let (_, want) = d.settled()?;
        let got = node.store.heads(&d.id)?.unwrap_or_default();
        ensure!(got == want, "{}: the node holds other heads", d.id);
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
    let pools: Vec<(PoolId, Signed)> = indexed
        .chunks(STATES.div_ceil(POOLS))
        .enumerate()
        .map(|(p, members)| {
            let doc = pool_doc(p, members)?;
            let DocId::Pool(id) = &doc.id else {
                bail!("{} is not a pool", doc.id)
            };
            Ok((id.clone(), doc))
        })
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

    // What a node trusts: every State's key (pool members are checked against them).
    let trust = indexed.iter().fold(Trust::default(), |t, (i, s)| {
        t.with(Principal::State(*s), keys(*i).0.node_id())
    });
    let t1 = Instant::now();
    let mut input = Input::default();
    for (s, d) in &states {
        let (view, heads) = d.settled()?;
        let data = StateData::from_json(view);
        input.states.insert(*s, Source { heads, data });
    }
    for (id, d) in &pools {
        let (view, heads) = d.settled()?;
        let data = PoolData::from_json(view, id, &trust);
        input.pools.insert(id.to_string(), Source { heads, data });
    }
    for (p, d) in &offers {
        let (view, heads) = d.settled()?;
        let data = OffersData::from_json(view);
        input.offers.insert(p.clone(), Source { heads, data });
    }
    let read = t1.elapsed();
    ensure!(
        input
            .pools
            .values()
            .all(|p| p.data.unverified.is_empty() && !p.data.owner.is_empty()),
        "a pool has unverified members or no coordinator"
    );

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
        format!("read {} document views into records", all.len()),
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
            node.store.with_ledger(id, |_| ())?;
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
