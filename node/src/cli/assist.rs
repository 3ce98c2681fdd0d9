//! `pool`, `match` and `needs`: sub-regional pools and assistance matching.

use std::path::PathBuf;

use clap::Subcommand;
use poa_protocol::assist::{Decision, Match, NeedRef, OfferRef};
use poa_protocol::model::{Area, Direction};
use poa_protocol::pool::{Aggregate, PooledTarget, Source};
use poa_protocol::{Date, NodeId, StateCode};
use serde_json::json;

use super::{num, open, parse_node_id, print_json, table};
use crate::pools::{Invitee, PoolReport};

/// Pool commands.
#[derive(Debug, Subcommand)]
pub enum PoolCmd {
    /// Create a pool this node coordinates (a State's node also joins it).
    #[command(after_help = "Example:\n  \
poa-node pool create --id xanadu --name \"Xanadu sub-region\" --framework \"Xanadu Roadmap\"")]
    Create {
        /// Its id: letters, digits, '-' or '_' (xanadu).
        #[arg(long)]
        id: String,
        /// Its name.
        #[arg(long)]
        name: String,
        /// The regional framework it serves.
        #[arg(long)]
        framework: Option<String>,
    },
    /// Invite a State (or one node of it) to join (coordinator only).
    #[command(after_help = "Examples:\n  \
poa-node pool invite xanadu XAB\n  \
poa-node pool invite xanadu <NODEID of XAB's node>\n\n\
The invitation names the State key this node trusts for the State (learnt when one of its\n\
nodes was pinned with `peer add … --state`); the State joins with `pool join`.")]
    Invite {
        /// The pool.
        pool: String,
        /// A State code, or a NodeId pinned as a node of a State.
        who: Invitee,
    },
    /// Join a pool this State was invited to; its published document is shared with the pool.
    Join {
        /// The pool.
        pool: String,
    },
    /// Leave a pool: membership ends and the State's document is no longer shared with it.
    #[command(
        after_help = "What the other members and observers already received stays with them, as in any federation;\nonly later changes stop reaching them."
    )]
    Leave {
        /// The pool.
        pool: String,
    },
    /// Admit an observer that reads the pool and writes nothing (coordinator only).
    Observe {
        /// The pool.
        pool: String,
        /// The observer's NodeId.
        #[arg(value_parser = parse_node_id)]
        node: NodeId,
        /// Who it is (UN Secretariat, XZZ).
        #[arg(long)]
        name: String,
    },
    /// Link one of this State's published targets into its section of the pool.
    Contribute {
        /// The pool.
        pool: String,
        /// The target's id.
        target: String,
    },
    /// Pooled targets.
    #[command(subcommand)]
    Target(PoolTargetCmd),
    /// The pools this node holds.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A pool: members, contributions and the pooled targets computed from members' data.
    Show {
        /// The pool.
        pool: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Pooled target commands.
#[derive(Debug, Subcommand)]
pub enum PoolTargetCmd {
    /// Define a pooled target (coordinator only).
    #[command(after_help = "Examples:\n  \
poa-node pool target add xanadu --id P1 --title \"8,000 weapons destroyed across the sub-region\" \\\n      \
--aggregate sum --from destruction --value 8000 --unit weapons --deadline 2027-12-31\n  \
poa-node pool target add xanadu --id P2 --title \"Every member marks\" --aggregate all-reach --from XAA/T1,XAB/T3\n\n\
Aggregates: sum, mean and min of members' latest reported values; all-reach (every member\n\
reaches its own target); count-achieved (how many do). A member with no data is listed as\n\
missing and never counted as zero.")]
    Add {
        /// The pool.
        pool: String,
        /// Its id in the pool: P1.
        #[arg(long)]
        id: String,
        /// What it is.
        #[arg(long)]
        title: String,
        /// sum, mean, min, all-reach or count-achieved.
        #[arg(long)]
        aggregate: Aggregate,
        /// A commitment area (every contributed target of it), or STATE/ID,... targets.
        #[arg(long)]
        from: Source,
        /// The pool's goal (members' own goals combined when absent).
        #[arg(long)]
        value: Option<f64>,
        /// Unit of the figures.
        #[arg(long)]
        unit: Option<String>,
        /// increase (default), decrease or reach.
        #[arg(long)]
        direction: Option<Direction>,
        /// By when (YYYY-MM-DD).
        #[arg(long)]
        deadline: Option<Date>,
    },
}

/// Match commands.
#[derive(Debug, Subcommand)]
pub enum MatchCmd {
    /// Rank offers for every open request this node holds, with the reasons.
    Suggest {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Propose a match (the requesting State or the provider).
    #[command(after_help = "Examples:\n  \
poa-node match propose XAC/R2 XZZ/O1 --note \"training in Q1 2027\"\n\n\
Each side records its own decision in its own document; a match is accepted once both sides\n\
said yes.")]
    Propose(MatchArgs),
    /// Accept a match the other side proposed.
    Accept(MatchArgs),
    /// Decline a match.
    Decline(MatchArgs),
    /// Every match this node knows of, with both sides' decisions.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The request and offer of a match decision.
#[derive(Debug, clap::Args)]
pub struct MatchArgs {
    /// The request: STATE/ID (XAC/R2).
    pub need: NeedRef,
    /// The offer: PROVIDER/ID (XZZ/O1).
    pub offer: OfferRef,
    /// Why, or conditions.
    #[arg(long)]
    pub note: Option<String>,
}

fn pool_json(r: &PoolReport) -> serde_json::Value {
    let d = &r.data;
    json!({
        "id": r.doc.to_string().trim_start_matches("pool/"),
        "name": d.charter.as_ref().map(|c| c.name.clone()),
        "framework": d.charter.as_ref().and_then(|c| c.framework.clone()),
        "coordinator": d.charter.as_ref().map(|c| c.coordinator.clone()),
        "coordinator_nodes": d.owner.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "members": d.members.iter().map(|(s, nodes)| json!({
            "state": s.to_string(),
            "nodes": nodes.keys().map(|n| n.to_string()).collect::<Vec<_>>(),
            "contributed": d.contributions.get(s).map(|c| c.keys().cloned().collect::<Vec<_>>()).unwrap_or_default(),
        })).collect::<Vec<_>>(),
        "invited": d.invites.keys().filter(|s| !d.is_member(**s)).map(|s| s.to_string()).collect::<Vec<_>>(),
        "observers": d.observers.iter().map(|(n, o)| json!({"node": n.to_string(), "name": o.name})).collect::<Vec<_>>(),
        "pooled": r.rollups.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
    })
}

fn print_pool(r: &PoolReport) {
    let d = &r.data;
    let name = d.charter.as_ref().map(|c| c.name.as_str()).unwrap_or("-");
    println!("{} \"{name}\"", r.doc);
    if let Some(c) = &d.charter {
        println!(
            "  coordinator {}{}",
            c.coordinator,
            c.framework
                .as_ref()
                .map(|f| format!(", framework {f}"))
                .unwrap_or_default()
        );
    }
    let members: Vec<String> = d
        .members
        .keys()
        .map(|s| {
            let c = d
                .contributions
                .get(s)
                .map(|c| c.keys().cloned().collect::<Vec<_>>().join(","))
                .unwrap_or_default();
            if c.is_empty() {
                s.to_string()
            } else {
                format!("{s} ({c})")
            }
        })
        .collect();
    println!("  members    {}", or_none(&members.join(", ")));
    let invited: Vec<String> = d
        .invites
        .keys()
        .filter(|s| !d.is_member(**s))
        .map(|s| s.to_string())
        .collect();
    println!("  invited    {}", or_none(&invited.join(", ")));
    let observers: Vec<String> = d.observers.values().map(|o| o.name.clone()).collect();
    println!("  observers  {}", or_none(&observers.join(", ")));
    if r.rollups.is_empty() {
        println!("  no pooled targets yet (`poa-node pool target add --help`)");
    }
    for p in &r.rollups {
        let t = &p.target;
        println!();
        println!("  {} {} ({} of {})", t.id, t.title, t.aggregate, t.from);
        let unit = t.unit.clone().unwrap_or_default();
        println!(
            "    baseline {}  target {}  current {} {unit}  {}",
            num(p.baseline),
            num(p.goal),
            num(p.current),
            match p.reached {
                Some(true) => "reached",
                Some(false) => "not reached",
                None => "cannot tell yet",
            }
        );
        for f in &p.reporting {
            let targets: Vec<String> = f
                .targets
                .iter()
                .map(|(id, v)| format!("{id}={}", num(*v)))
                .collect();
            println!(
                "    {}  reporting  {}{}",
                f.state,
                targets.join(" "),
                if f.achieved { "  (achieved)" } else { "" }
            );
        }
        for m in &p.missing {
            println!("    {}  missing    {}", m.state, m.reason);
        }
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "none" } else { s }
}

/// Runs a `pool` command.
pub fn pool(home: Option<PathBuf>, cmd: PoolCmd) -> anyhow::Result<()> {
    match cmd {
        PoolCmd::Create {
            id,
            name,
            framework,
        } => {
            let mut node = open(home)?;
            node.pool_create(&id, &name, framework)?;
            let joined = node
                .home
                .config
                .participant
                .state()
                .map(|s| format!(" {s} is its first member."))
                .unwrap_or_default();
            println!(
                "Created pool/{id}, coordinated by this node.{joined} Invite States with `poa-node pool invite {id} STATE`."
            );
        }
        PoolCmd::Invite { pool, who } => {
            let mut node = open(home)?;
            let i = node.pool_invite(&pool, who)?;
            println!(
                "Invited {} to pool/{pool} (State key {}). It joins with `poa-node pool join {pool}` once the pool reaches it.",
                i.state, i.state_key
            );
        }
        PoolCmd::Join { pool } => {
            let mut node = open(home)?;
            node.pool_join(&pool)?;
            let state = node.own_state()?;
            println!(
                "{state} joined pool/{pool}; state/{state} is now shared with its coordinator, members and observers."
            );
        }
        PoolCmd::Leave { pool } => {
            let mut node = open(home)?;
            node.pool_leave(&pool)?;
            println!(
                "Left pool/{pool}. Later changes to this State's document no longer reach the pool; what it already received stays with its members."
            );
        }
        PoolCmd::Observe {
            pool,
            node: id,
            name,
        } => {
            let mut node = open(home)?;
            node.pool_observe(&pool, id, &name)?;
            println!("{name} ({}) now observes pool/{pool}.", id.short());
        }
        PoolCmd::Contribute { pool, target } => {
            let mut node = open(home)?;
            node.pool_contribute(&pool, &target)?;
            println!("Contributed {target} to pool/{pool}.");
        }
        PoolCmd::Target(PoolTargetCmd::Add {
            pool,
            id,
            title,
            aggregate,
            from,
            value,
            unit,
            direction,
            deadline,
        }) => {
            let mut node = open(home)?;
            node.pool_target_add(
                &pool,
                PooledTarget {
                    id: id.clone(),
                    title,
                    aggregate,
                    from,
                    value,
                    unit,
                    direction,
                    deadline,
                },
            )?;
            println!("Added pooled target {id} to pool/{pool}.");
        }
        PoolCmd::List { json } => {
            let node = open(home)?;
            let mut reports = Vec::new();
            for (id, _) in node.pools()? {
                reports.push(node.pool_report(&id)?);
            }
            if json {
                return print_json(&serde_json::Value::Array(
                    reports.iter().map(pool_json).collect(),
                ));
            }
            if reports.is_empty() {
                println!("No pools held. Create one with `poa-node pool create --help`.");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = reports
                .iter()
                .map(|r| {
                    let c = r.data.charter.as_ref();
                    vec![
                        r.doc.to_string(),
                        c.map(|c| c.name.clone()).unwrap_or_default(),
                        c.map(|c| c.coordinator.clone()).unwrap_or_default(),
                        r.data
                            .members
                            .keys()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                        r.rollups.len().to_string(),
                    ]
                })
                .collect();
            table(&["POOL", "NAME", "COORDINATOR", "MEMBERS", "POOLED"], &rows);
        }
        PoolCmd::Show { pool, json } => {
            let node = open(home)?;
            let r = node.pool_report(&pool)?;
            if json {
                return print_json(&pool_json(&r));
            }
            print_pool(&r);
        }
    }
    Ok(())
}

fn decision_text(m: &Match) -> String {
    let side = |r: &Option<poa_protocol::assist::MatchRecord>| {
        r.as_ref()
            .map(|r| r.decision.slug().to_string())
            .unwrap_or_else(|| "-".into())
    };
    format!(
        "{} (State {}, provider {})",
        m.status().slug(),
        side(&m.state_side),
        side(&m.provider_side)
    )
}

/// Runs a `match` command.
pub fn matching(home: Option<PathBuf>, cmd: MatchCmd) -> anyhow::Result<()> {
    let decide = |args: MatchArgs, d: Decision| -> anyhow::Result<()> {
        let mut node = open(home.clone())?;
        node.match_decide(&args.need, &args.offer, d, args.note)?;
        let status = node
            .matches()?
            .into_iter()
            .find(|m| m.need == args.need && m.offer == args.offer)
            .map(|m| decision_text(&m))
            .unwrap_or_default();
        println!(
            "Recorded: {} {} {}. The match is now {status}.",
            node.home.config.participant.code(),
            d.slug(),
            format_args!("{} with {}", args.need, args.offer)
        );
        Ok(())
    };
    match cmd {
        MatchCmd::Suggest { json } => {
            let node = open(home)?;
            let s = node.match_suggest()?;
            let open_needs = node.unmet_needs()?;
            let without: Vec<String> = open_needs
                .iter()
                .map(|(n, _)| NeedRef::of(n))
                .filter(|r| s.iter().all(|x| x.need != *r))
                .map(|r| r.to_string())
                .collect();
            if json {
                return print_json(&json!({
                    "suggestions": s.iter().map(|s| s.to_json()).collect::<Vec<_>>(),
                    "needs_without_offer": without,
                }));
            }
            if s.is_empty() {
                println!("No offer fits an open request held here.");
            }
            for x in &s {
                println!(
                    "{} <- {}  score {}  ({} priority)",
                    x.need, x.offer, x.score, x.priority
                );
                println!("    fits: {}", x.fits.join("; "));
                if !x.gaps.is_empty() {
                    println!("    gaps: {}", x.gaps.join("; "));
                }
            }
            if !without.is_empty() {
                println!("No offer fits: {}", without.join(", "));
            }
        }
        MatchCmd::Propose(a) => decide(a, Decision::Proposed)?,
        MatchCmd::Accept(a) => decide(a, Decision::Accepted)?,
        MatchCmd::Decline(a) => decide(a, Decision::Declined)?,
        MatchCmd::List { json } => {
            let node = open(home)?;
            let m = node.matches()?;
            if json {
                return print_json(&serde_json::Value::Array(
                    m.iter().map(Match::to_json).collect(),
                ));
            }
            if m.is_empty() {
                println!("No matches yet. See `poa-node match suggest`.");
            }
            let rows: Vec<Vec<String>> = m
                .iter()
                .map(|m| vec![m.need.to_string(), m.offer.to_string(), decision_text(m)])
                .collect();
            table(&["REQUEST", "OFFER", "STATUS"], &rows);
        }
    }
    Ok(())
}

/// Runs `needs`: every request this node holds, or the unmet ones.
pub fn needs(
    home: Option<PathBuf>,
    state: Option<StateCode>,
    area: Option<Area>,
    unmet: bool,
    json: bool,
) -> anyhow::Result<()> {
    let node = open(home)?;
    let matches = node.matches()?;
    let mut rows = Vec::new();
    let mut out = Vec::new();
    let all = if unmet {
        node.unmet_needs()?
    } else {
        node.all_needs()?
            .into_iter()
            .map(|n| {
                let r = NeedRef::of(&n);
                let m = matches.iter().filter(|m| m.need == r).cloned().collect();
                (n, m)
            })
            .collect()
    };
    for (n, m) in all {
        if state.is_some_and(|s| s != n.state) || area.is_some_and(|a| a != n.area) {
            continue;
        }
        let met = poa_protocol::assist::is_met(&NeedRef::of(&n), &m);
        let mut v = serde_json::to_value(&n)?;
        v["ref"] = json!(NeedRef::of(&n).to_string());
        v["status"] = json!(if met { "matched" } else { "open" });
        v["matches"] = json!(m.iter().map(Match::to_json).collect::<Vec<_>>());
        out.push(v);
        rows.push(vec![
            NeedRef::of(&n).to_string(),
            n.area.to_string(),
            n.kind.to_string(),
            n.priority.to_string(),
            if met { "matched" } else { "open" }.to_string(),
            m.iter()
                .map(|m| format!("{} {}", m.offer, m.status().slug()))
                .collect::<Vec<_>>()
                .join(", "),
            n.title.clone(),
        ]);
    }
    if json {
        return print_json(&serde_json::Value::Array(out));
    }
    if rows.is_empty() {
        println!(
            "{}",
            if unmet {
                "No unmet requests held here."
            } else {
                "No requests held here."
            }
        );
        return Ok(());
    }
    table(
        &[
            "REQUEST", "AREA", "KIND", "PRIORITY", "STATUS", "MATCHES", "TITLE",
        ],
        &rows,
    );
    Ok(())
}
