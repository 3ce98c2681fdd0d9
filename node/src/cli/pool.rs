//! `pool`: sub-regional pools, from their creation to the pooled targets computed from the
//! members' own data.

use std::path::PathBuf;

use clap::Subcommand;
use poa_protocol::model::Direction;
use poa_protocol::pool::{Aggregate, PooledTarget, Source};
use poa_protocol::{Date, NodeId};

use super::{open, parse_node_id, print_json};
use crate::format::{list, opt, print_table};
use crate::pools::{Invitee, PoolReport};
use crate::views::PoolView;

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
    println!("  members    {}", list(&members));
    let invited: Vec<String> = d
        .invites
        .keys()
        .filter(|s| !d.is_member(**s))
        .map(|s| s.to_string())
        .collect();
    println!("  invited    {}", list(&invited));
    let observers: Vec<String> = d.observers.values().map(|o| o.name.clone()).collect();
    println!("  observers  {}", list(&observers));
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
            opt(p.baseline),
            opt(p.goal),
            opt(p.current),
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
                .map(|(id, v)| format!("{id}={}", opt(*v)))
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
                let views: Vec<PoolView> = reports.iter().map(PoolView::of).collect();
                return print_json(&views);
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
            print_table(&["POOL", "NAME", "COORDINATOR", "MEMBERS", "POOLED"], &rows);
        }
        PoolCmd::Show { pool, json } => {
            let node = open(home)?;
            let r = node.pool_report(&pool)?;
            if json {
                return print_json(&PoolView::of(&r));
            }
            print_pool(&r);
        }
    }
    Ok(())
}
