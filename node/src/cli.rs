//! The command line: argument definitions (clap) and what each command prints.
//!
//! Every listing takes `--json`; every error is one line on stderr with a non-zero exit, and a
//! failed command writes nothing.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use poa_protocol::authority::Scope;
use poa_protocol::doc::DocId;
use poa_protocol::model::{
    Area, Assessment, AssistanceKind, CYCLES, Cycle, Direction, Evidence, Indicator, IndicatorKind,
    MOSAIC_MODULES, Mosaic, Need, Offer, Priority, Progress, Target,
};
use poa_protocol::view::TargetView;
use poa_protocol::{BodyCode, BodyKind, Date, NodeId, StateCode};
use serde_json::json;

mod assist;
mod report;

pub use assist::{MatchArgs, MatchCmd, PoolCmd, PoolTargetCmd};
pub use report::{StocktakeArgs, StocktakeCmd};

use crate::home::{self, Home, InitOptions};
use crate::node::{Node, today};
use crate::sync::{Engine, EngineConfig, serve, sync_round};

/// A federated sync node for nationally determined small-arms control targets.
#[derive(Debug, Parser)]
#[command(
    name = "poa-node",
    version,
    about,
    long_about = "A federated sync node for nationally determined small-arms control targets.\n\n\
Each State's ministry, regional body, donor and the UN Secretariat runs its own node: its own \
database, its own key. A State's data is written only by that State and shared only where it says.",
    after_help = "Start here:\n  \
poa-node --home ./xaa init --state XAA --name \"XAA Ministry of Interior\"\n  \
poa-node --home ./xaa target add --id T1 --cycle BMS9 --area marking \\\n      \
--title \"Mark State-held SALW\" --indicator \"share of State-held SALW marked\" \\\n      \
--unit percent --direction increase --baseline 40 --baseline-year 2023 --value 70 \\\n      \
--deadline 2026-06-30 --mosaic 05.30 --ref \"ITI 8\"\n  \
poa-node --home ./xaa target publish T1\n  \
poa-node --home ./xaa target list\n\n\
POA_HOME may stand for --home."
)]
pub struct Cli {
    /// The node's home folder (keys, config, database). Defaults to the per-user data folder.
    #[arg(long, global = true, env = "POA_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a node: its key, database and configuration.
    #[command(after_help = "Examples:\n  \
poa-node --home ./xaa init --state XAA --name \"XAA Ministry of Interior\"\n  \
poa-node --home ./xaa-def init --state XAA --name \"XAA Ministry of Defence\" --ministry\n  \
poa-node --home ./xrb init --body XRB --kind regional --name \"Xanadu Regional Bureau\"\n  \
poa-node --home ./un init --body UNODA --kind secretariat --name \"UN Secretariat\"")]
    Init(InitArgs),
    /// Print this node's NodeId, for peers to pin.
    Id {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Targets: add, list, show, supersede, publish, withdraw.
    #[command(subcommand)]
    Target(TargetCmd),
    /// Progress reports on targets.
    #[command(subcommand)]
    Progress(ProgressCmd),
    /// Assistance requests of this State.
    #[command(subcommand)]
    Need(NeedCmd),
    /// Offers of assistance.
    #[command(subcommand)]
    Offer(OfferCmd),
    /// Every assistance request this node holds (all States), or only the unmet ones.
    #[command(after_help = "Examples:\n  \
poa-node needs --unmet\n  \
poa-node needs --state XAB --json\n\n\
A request is unmet until a match with it is accepted by both the State and the provider.")]
    Needs {
        /// Only requests with no accepted match.
        #[arg(long)]
        unmet: bool,
        /// Only this State's.
        #[arg(long)]
        state: Option<StateCode>,
        /// Only this area's.
        #[arg(long)]
        area: Option<Area>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sub-regional pools: create, invite, join, leave, contribute, pooled targets.
    #[command(subcommand)]
    Pool(PoolCmd),
    /// Matching requests with offers: suggest, propose, accept, decline.
    #[command(subcommand)]
    Match(MatchCmd),
    /// The stocktake of a cycle, from the published data this node holds.
    #[command(after_help = "Examples:\n  \
poa-node stocktake --cycle BMS9\n  \
poa-node stocktake --cycle BMS9 --format html --out bms9.html\n  \
poa-node stocktake --cycle BMS9 --format json --out bms9.json\n  \
poa-node stocktake --cycle BMS9 --format sdg-csv --out sdg-16-4-2.csv\n  \
poa-node stocktake verify bms9.json\n\n\
The report cites the heads of every document it read: any node holding them computes the\n\
same bytes. Aggregates only: States are listed by code, never ranked.")]
    Stocktake(StocktakeArgs),
    /// Documents held by this node.
    #[command(subcommand)]
    Doc(DocCmd),
    /// Pinned peers: the only nodes this node talks to.
    #[command(subcommand)]
    Peer(PeerCmd),
    /// Decide who may read one of this node's documents.
    #[command(after_help = "Examples:\n  \
poa-node share state/XAA --with <NODEID of the Secretariat> --with <NODEID of XRB>\n  \
poa-node share offers/XZZ --public\n  \
poa-node share state/XAA            # list who may read it")]
    Share {
        /// The document: state/XAA or offers/XZZ.
        doc: DocId,
        /// A NodeId that may read it (repeat).
        #[arg(long = "with", value_parser = parse_node_id)]
        with: Vec<NodeId>,
        /// Everyone this node syncs with may read it.
        #[arg(long)]
        public: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the node: listen for pinned peers, keep connections to them, push and repair.
    #[command(
        after_help = "Examples:\n  poa-node serve --listen 0.0.0.0:4433\n  poa-node serve --http            # dashboard on http://127.0.0.1:8080\n\nStops gracefully on Ctrl-C. The dashboard only reads; it binds to localhost unless given\nanother address."
    )]
    Serve {
        /// Address to listen on (default from config.toml, network.listen).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Also serve the read-only dashboard (stocktake, States, pools, unmet needs, JSON API
        /// under /api) on ADDR; 127.0.0.1:8080 when given without a value.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8080")]
        http: Option<std::net::SocketAddr>,
    },
    /// One sync round with every pinned peer that has an address, then exit.
    Sync {
        /// Only this peer.
        #[arg(long, value_parser = parse_node_id)]
        peer: Option<NodeId>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Let another node of this State write for it (run on the node holding the State key).
    #[command(after_help = "Examples:\n  \
poa-node delegate <NODEID of the Ministry of Defence> --scope stockpile destruction --expires 2027-12-31\n  \
poa-node delegate <NODEID> --scope all\n\n\
The delegation is signed with state.key and stored in the State's documents, so every node\n\
checks it, whoever relays the delegate's changes.")]
    Delegate {
        /// The node to delegate.
        #[arg(value_parser = parse_node_id)]
        node: NodeId,
        /// `all`, or the commitment areas it may write (see `poa-node reference areas`).
        #[arg(long, num_args = 1.., required = true)]
        scope: Vec<String>,
        /// Last day the delegation is valid (YYYY-MM-DD).
        #[arg(long)]
        expires: Option<Date>,
    },
    /// End a node's delegation. Its changes made after it learns of the revocation are refused
    /// everywhere; its earlier changes stand.
    Revoke {
        /// The node.
        #[arg(value_parser = parse_node_id)]
        node: NodeId,
    },
    /// The delegations and revocations of this State (or another this node holds), and the
    /// State keys this node trusts.
    Delegations {
        /// Another State.
        #[arg(long)]
        state: Option<StateCode>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Trust the key of a State or body (given over a channel you trust: read it back in its
    /// checksummed groups), or list the keys this node trusts and how it learnt each.
    #[command(after_help = "Examples:\n  \
poa-node trust XAB --state-key ABCDEFG-HIJKLMN-...\n  \
poa-node trust XZZ --body-key ABCDEFG-HIJKLMN-...\n  \
poa-node trust list\n\n\
A key is trusted only from a source you chose: this command, or a node you pinned as a node\n\
of that State or body. Documents of a State or body whose key is not trusted here are not\n\
taken from peers, and are fetched again once the key is trusted.")]
    Trust {
        /// `list`, or the code of the State or body.
        code: String,
        /// The State key.
        #[arg(long, value_parser = parse_node_id, conflicts_with = "body_key")]
        state_key: Option<NodeId>,
        /// The body key.
        #[arg(long, value_parser = parse_node_id)]
        body_key: Option<NodeId>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// What was accepted and rejected, oldest first. The log is append-only.
    Audit {
        /// Only entries on or after this date (YYYY-MM-DD).
        #[arg(long)]
        since: Option<Date>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reference lists: commitment areas, MOSAIC modules, cycles.
    Reference {
        /// Which list.
        #[arg(value_parser = ["areas", "mosaic", "cycles"])]
        list: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a demo federation on this machine and show what reaches whom.
    ///
    /// Six real nodes, each with its own key, SQLite file and QUIC endpoint on loopback: States
    /// XAA, XAB and XAC, regional body XRB, donor XZZ and the UN Secretariat. The States enter
    /// the illustrative data set and share it with XRB and the Secretariat; the demo prints when
    /// each document reached each node and checks that nothing reached a node it was not shared
    /// with. Then XRB forms the Xanadu pool (the States join, the Secretariat observes), XAC and
    /// the donor match a request with an offer, and the demo shows what the Secretariat holds:
    /// targets, the pooled destruction target, and the request still unmet.
    #[command(after_help = "Examples:\n  \
poa-node demo\n  \
poa-node demo --no-serve\n  \
poa-node demo --keep ./demo\n  \
poa-node --home ./demo/secretariat target list --state XAB")]
    Demo {
        /// Keep the nodes' homes in DIR (new or empty) to inspect them with the CLI afterwards.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
        /// Exit after printing the stocktake instead of serving the dashboard.
        #[arg(long)]
        no_serve: bool,
        /// Where the Secretariat's dashboard listens (another free port if taken).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        http: std::net::SocketAddr,
    },
}

/// Arguments of `init`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["state", "body"])))]
pub struct InitArgs {
    /// The State this node acts for: ISO 3166-1 alpha-3 (KEN, BRA) or XAA-XZZ for training.
    #[arg(long)]
    pub state: Option<StateCode>,
    /// The acronym of the regional body, donor or Secretariat this node acts for.
    #[arg(long, requires = "kind")]
    pub body: Option<BodyCode>,
    /// What kind of body: regional, donor or secretariat.
    #[arg(long, requires = "body")]
    pub kind: Option<BodyKind>,
    /// A display name, such as "XAA Ministry of Interior".
    #[arg(long)]
    pub name: String,
    /// This is not the first node of its State or body: do not create its key (a ministry
    /// node, or another node of a body, that the first node will delegate).
    #[arg(long, alias = "joining")]
    pub ministry: bool,
}

/// Fields of a target shared by `add` and `supersede`.
#[derive(Debug, Args, Default)]
pub struct TargetFields {
    /// Reporting cycle: BMS7, BMS8, RevCon4, BMS9, BMS10, RevCon5.
    #[arg(long)]
    pub cycle: Option<Cycle>,
    /// Commitment area (see `poa-node reference areas`).
    #[arg(long)]
    pub area: Option<Area>,
    /// One-line title.
    #[arg(long)]
    pub title: Option<String>,
    /// Longer description.
    #[arg(long)]
    pub description: Option<String>,
    /// Indicator kind: quantitative (default), milestone or yes-no.
    #[arg(long = "kind")]
    pub kind: Option<IndicatorKind>,
    /// What is measured, in words.
    #[arg(long)]
    pub indicator: Option<String>,
    /// Unit of a quantitative indicator (percent, weapons, depots).
    #[arg(long)]
    pub unit: Option<String>,
    /// increase, decrease or reach.
    #[arg(long)]
    pub direction: Option<Direction>,
    /// Baseline value.
    #[arg(long, allow_negative_numbers = true)]
    pub baseline: Option<f64>,
    /// Year of the baseline.
    #[arg(long)]
    pub baseline_year: Option<i32>,
    /// Where the baseline comes from.
    #[arg(long)]
    pub baseline_source: Option<String>,
    /// Target value.
    #[arg(long, allow_negative_numbers = true)]
    pub value: Option<f64>,
    /// Deadline (YYYY-MM-DD).
    #[arg(long)]
    pub deadline: Option<Date>,
    /// MOSAIC module cited (repeat, or separate with commas): 05.30.
    #[arg(long, value_delimiter = ',')]
    pub mosaic: Vec<Mosaic>,
    /// PoA/ITI paragraph reference (repeat): "ITI 8", "PoA II.4".
    #[arg(long = "ref")]
    pub refs: Vec<String>,
    /// SDG target or indicator served: 16.4.2.
    #[arg(long)]
    pub sdg: Option<String>,
    /// Assistance request the target depends on (repeat): R1.
    #[arg(long, value_delimiter = ',')]
    pub conditional_on: Vec<String>,
}

/// Target commands.
#[derive(Debug, Subcommand)]
pub enum TargetCmd {
    /// Add a target to this State's draft.
    #[command(after_help = "Examples:\n  \
poa-node target add --id T1 --cycle BMS9 --area marking --title \"Mark State-held SALW\" \\\n      \
--indicator \"share of State-held SALW marked\" --unit percent --direction increase \\\n      \
--baseline 40 --baseline-year 2023 --value 70 --deadline 2026-06-30 --mosaic 05.30 --ref \"ITI 8\"\n  \
poa-node target add --id T2 --cycle BMS9 --area coordination --kind milestone \\\n      \
--title \"National coordination commission established\" --indicator \"commission established\" \\\n      \
--deadline 2026-06-30 --mosaic 03.40 --ref \"PoA II.4\"")]
    Add {
        /// The State's own id for it: T1.
        #[arg(long)]
        id: String,
        /// The target's fields.
        #[command(flatten)]
        fields: TargetFields,
    },
    /// List targets (this State's, or another's that this node holds).
    List {
        /// Another State whose published targets this node holds.
        #[arg(long)]
        state: Option<StateCode>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a target with every version and its progress.
    Show {
        /// The target id.
        id: String,
        /// Another State whose published target this node holds.
        #[arg(long)]
        state: Option<StateCode>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a new version of a target; the old one stays readable, marked superseded.
    #[command(after_help = "Example:\n  \
poa-node target supersede T1 --value 75 --reason \"marking ahead of plan\"")]
    Supersede {
        /// The target id.
        id: String,
        /// Why it changes.
        #[arg(long)]
        reason: Option<String>,
        /// Fields to change; the rest are kept.
        #[command(flatten)]
        fields: TargetFields,
    },
    /// Publish a target: copy what the draft holds of it (versions, progress, withdrawal) to
    /// the State's published document.
    Publish {
        /// The target id.
        id: String,
    },
    /// Withdraw a target. Publish it again to publish the withdrawal.
    Withdraw {
        /// The target id.
        id: String,
    },
}

/// Progress commands.
#[derive(Debug, Subcommand)]
pub enum ProgressCmd {
    /// Report progress on a target (goes to the draft; `target publish` publishes it).
    #[command(after_help = "Example:\n  \
poa-node progress add T1 --as-of 2025-12-31 --value 55 --assessment on-track \\\n      \
--evidence https://example.org/xaa-marking-2025.pdf --sha256 <64 hex characters>")]
    Add {
        /// The target id.
        target: String,
        /// The date the figures describe (YYYY-MM-DD).
        #[arg(long)]
        as_of: Date,
        /// Observed value.
        #[arg(long, allow_negative_numbers = true)]
        value: Option<f64>,
        /// on-track, off-track, achieved, not-started or no-data.
        #[arg(long)]
        assessment: Option<Assessment>,
        /// Narrative.
        #[arg(long)]
        note: Option<String>,
        /// Challenges met.
        #[arg(long)]
        challenges: Option<String>,
        /// Link to the evidence; needs --sha256.
        #[arg(long)]
        evidence: Option<String>,
        /// SHA-256 of the evidence (sha256sum FILE).
        #[arg(long)]
        sha256: Option<String>,
        /// Where the figures come from.
        #[arg(long)]
        source: Option<String>,
        /// Assistance received toward the target.
        #[arg(long)]
        assistance_received: Option<String>,
    },
}

/// Assistance request commands.
#[derive(Debug, Subcommand)]
pub enum NeedCmd {
    /// Publish a request for assistance.
    #[command(after_help = "Example:\n  \
poa-node need add --id R1 --title \"Destruction equipment\" --target T2 --area destruction \\\n      \
--mosaic 05.50 --kind equipment --cost 250000 --currency USD --priority high")]
    Add {
        /// The State's id for it: R1.
        #[arg(long)]
        id: String,
        /// What is asked for.
        #[arg(long)]
        title: String,
        /// Target it serves (repeat).
        #[arg(long = "target", value_delimiter = ',')]
        targets: Vec<String>,
        /// Commitment area.
        #[arg(long)]
        area: Area,
        /// MOSAIC modules concerned.
        #[arg(long, value_delimiter = ',')]
        mosaic: Vec<Mosaic>,
        /// financial, technical, equipment or training.
        #[arg(long)]
        kind: AssistanceKind,
        /// Estimated cost.
        #[arg(long)]
        cost: Option<f64>,
        /// Currency of the cost (ISO 4217).
        #[arg(long)]
        currency: Option<String>,
        /// Needed from (YYYY-MM-DD).
        #[arg(long)]
        from: Option<Date>,
        /// Needed until (YYYY-MM-DD).
        #[arg(long)]
        until: Option<Date>,
        /// high, medium or low.
        #[arg(long, default_value = "medium")]
        priority: Priority,
    },
    /// List requests (this State's, or another's that this node holds).
    List {
        /// Another State.
        #[arg(long)]
        state: Option<StateCode>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Offer commands.
// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum OfferCmd {
    /// Publish an offer of assistance.
    #[command(after_help = "Example:\n  \
poa-node offer add --id O1 --title \"Marking training\" --area marking,record-keeping \\\n      \
--mosaic 05.30 --kind training --budget-max 150000 --currency USD")]
    Add {
        /// The provider's id for it: O1.
        #[arg(long)]
        id: String,
        /// What is offered.
        #[arg(long)]
        title: String,
        /// Areas covered.
        #[arg(long = "area", value_delimiter = ',', required = true)]
        areas: Vec<Area>,
        /// MOSAIC modules covered.
        #[arg(long, value_delimiter = ',')]
        mosaic: Vec<Mosaic>,
        /// Kinds of help.
        #[arg(long = "kind", value_delimiter = ',', required = true)]
        kinds: Vec<AssistanceKind>,
        /// Eligible States or pools (empty: any).
        #[arg(long = "region", value_delimiter = ',')]
        regions: Vec<String>,
        /// Smallest grant.
        #[arg(long)]
        budget_min: Option<f64>,
        /// Largest grant.
        #[arg(long)]
        budget_max: Option<f64>,
        /// Currency of the budget.
        #[arg(long)]
        currency: Option<String>,
        /// Available from.
        #[arg(long)]
        from: Option<Date>,
        /// Available until.
        #[arg(long)]
        until: Option<Date>,
    },
    /// List every offer this node holds.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Peer commands.
#[derive(Debug, Subcommand)]
pub enum PeerCmd {
    /// Pin a peer's key, with the address where it listens.
    #[command(after_help = "Examples:\n  \
poa-node peer add ABCDEFG-HIJKLMN-...@192.0.2.10:4433 --name \"XRB\"\n  \
poa-node peer add ABCDEFG-HIJKLMN-...@xaa-defence.example:4433 --name \"XAA Defence\" --state XAA\n  \
poa-node peer add ABCDEFG-HIJKLMN-... --name \"XZZ Development Agency\" --body XZZ\n\n\
Without @HOST:PORT the peer may connect here but is never dialled. With --state or --body,\n\
this node trusts the key of that State or body that the peer presents, the first time.")]
    Add {
        /// NODEID@HOST:PORT, or just NODEID.
        peer: String,
        /// A display name.
        #[arg(long)]
        name: Option<String>,
        /// The State this peer is a node of: this node learns the State key from it, and
        /// shares that State's documents with it as with the State's own nodes.
        #[arg(long, conflicts_with = "body")]
        state: Option<StateCode>,
        /// The body this peer is a node of: this node learns the body key from it.
        #[arg(long)]
        body: Option<BodyCode>,
        /// Trust the State and body keys this peer trusts first-hand (a regional body for its
        /// member States, say). Choose introducers as carefully as the keys themselves.
        #[arg(long)]
        introducer: bool,
    },
    /// List pinned peers.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Unpin a peer.
    Remove {
        /// Its NodeId.
        #[arg(value_parser = parse_node_id)]
        peer: NodeId,
    },
}

/// Document commands.
#[derive(Debug, Subcommand)]
pub enum DocCmd {
    /// List documents held, with their heads.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a document as a standard saved Automerge file any Automerge implementation loads.
    Export {
        /// The document: state/XAA, state/XAA/draft, offers/XZZ...
        doc: DocId,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn num(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// Text from a document or a peer, made safe for a terminal: control characters (which could
/// move the cursor, rewrite earlier lines or change colours) are shown escaped.
pub fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Prints rows as aligned columns.
fn table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| safe(c)).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

fn open(home: Option<PathBuf>) -> anyhow::Result<Node> {
    let dir = home::resolve(home)?;
    Ok(Node::open(&dir)?)
}

fn build_target(id: String, f: TargetFields) -> anyhow::Result<Target> {
    let missing =
        |what: &str| anyhow::anyhow!("target add needs --{what}; see `poa-node target add --help`");
    Ok(Target {
        id,
        // The node sets the State and version.
        state: "XAA".parse()?,
        version: 1,
        cycle: f.cycle.ok_or_else(|| missing("cycle"))?,
        area: f.area.ok_or_else(|| missing("area"))?,
        title: f.title.ok_or_else(|| missing("title"))?,
        description: f.description,
        indicator: Indicator {
            kind: f.kind.unwrap_or(IndicatorKind::Quantitative),
            text: f.indicator.ok_or_else(|| missing("indicator"))?,
            unit: f.unit,
            direction: f.direction,
        },
        baseline: f.baseline,
        baseline_year: f.baseline_year,
        baseline_source: f.baseline_source,
        value: f.value,
        deadline: f.deadline.ok_or_else(|| missing("deadline"))?,
        mosaic: f.mosaic,
        refs: f.refs,
        sdg: f.sdg,
        conditional_on: f.conditional_on,
        supersedes: None,
        reason: None,
    })
}

fn apply_fields(t: &mut Target, f: TargetFields, reason: Option<String>) {
    macro_rules! set {
        ($($field:ident => $target:expr),*) => {$(if let Some(v) = f.$field { $target = v.into(); })*};
    }
    set!(cycle => t.cycle, area => t.area, title => t.title, kind => t.indicator.kind,
         indicator => t.indicator.text, deadline => t.deadline);
    macro_rules! set_opt {
        ($($field:ident => $target:expr),*) => {$(if f.$field.is_some() { $target = f.$field; })*};
    }
    set_opt!(description => t.description, unit => t.indicator.unit,
             direction => t.indicator.direction, baseline => t.baseline,
             baseline_year => t.baseline_year, baseline_source => t.baseline_source,
             value => t.value, sdg => t.sdg);
    if !f.mosaic.is_empty() {
        t.mosaic = f.mosaic;
    }
    if !f.refs.is_empty() {
        t.refs = f.refs;
    }
    if !f.conditional_on.is_empty() {
        t.conditional_on = f.conditional_on;
    }
    t.reason = reason;
}

fn print_targets(views: &[TargetView], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&serde_json::Value::Array(
            views.iter().map(TargetView::to_json).collect(),
        ));
    }
    if views.is_empty() {
        println!("No targets. Add one with `poa-node target add --help`.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            let t = &v.current().target;
            let latest = v
                .progress
                .last()
                .map(|(p, _)| format!("{} @ {}", num(p.value), p.as_of))
                .unwrap_or_else(|| "-".into());
            vec![
                t.id.clone(),
                format!("v{}", t.version),
                t.cycle.to_string(),
                t.area.to_string(),
                v.current().status.to_string(),
                format!(
                    "{} -> {} {}",
                    num(t.baseline),
                    num(t.value),
                    t.indicator.unit.clone().unwrap_or_default()
                )
                .trim_end()
                .to_string(),
                t.deadline.to_string(),
                latest,
                t.title.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "VER",
            "CYCLE",
            "AREA",
            "STATUS",
            "BASELINE -> TARGET",
            "DEADLINE",
            "LATEST",
            "TITLE",
        ],
        &rows,
    );
    Ok(())
}

fn print_target(v: &TargetView, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&v.to_json());
    }
    let t = &v.current().target;
    println!("{} {} — {}", t.state, t.id, safe(&t.title));
    println!(
        "  cycle {}  area {}  status {}  {}",
        t.cycle,
        t.area.label(),
        v.current().status,
        if v.current().published {
            "published"
        } else {
            "not published"
        }
    );
    println!(
        "  indicator: {} ({})",
        safe(&t.indicator.text),
        t.indicator.kind
    );
    for ver in &v.versions {
        let t = &ver.target;
        println!(
            "  v{}  {:<12} {}  baseline {} ({})  target {} {} by {}{}{}",
            t.version,
            ver.status,
            if ver.published {
                "published  "
            } else {
                "unpublished"
            },
            num(t.baseline),
            t.baseline_year
                .map(|y| y.to_string())
                .unwrap_or_else(|| "-".into()),
            num(t.value),
            safe(&t.indicator.unit.clone().unwrap_or_default()),
            t.deadline,
            if t.mosaic.is_empty() {
                String::new()
            } else {
                format!(
                    "  MOSAIC {}",
                    t.mosaic
                        .iter()
                        .map(|m| m.code())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            t.reason
                .as_ref()
                .map(|r| format!("  ({})", safe(r)))
                .unwrap_or_default(),
        );
    }
    if v.progress.is_empty() {
        println!("  no progress reported");
    }
    for (p, published) in &v.progress {
        println!(
            "  progress {}  value {}  {}  {}{}",
            p.as_of,
            num(p.value),
            p.assessment
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
            if *published { "published" } else { "draft" },
            p.note
                .as_ref()
                .map(|n| format!("  {}", safe(n)))
                .unwrap_or_default(),
        );
    }
    if let Some(w) = &v.withdrawn {
        println!("  withdrawn on {w}");
    }
    Ok(())
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init(args) => {
            let dir = home::resolve(cli.home)?;
            let opts = match (args.state, args.body, args.kind) {
                (Some(state), None, None) => InitOptions {
                    create_principal_key: !args.ministry,
                    ..InitOptions::state(state, &args.name)
                },
                (None, Some(body), Some(kind)) => InitOptions {
                    create_principal_key: !args.ministry,
                    ..InitOptions::body(body, kind, &args.name)
                },
                _ => bail!("give either --state CODE, or --body CODE with --kind"),
            };
            let home = Home::init(&dir, &opts)?;
            println!("Initialised {} in {}", opts.participant, dir.display());
            println!("NodeId: {}", home.key.node_id());
            if let Some(k) = &home.principal_key {
                let p = opts.participant.principal();
                let file = match p {
                    poa_protocol::Principal::State(_) => "state.key",
                    poa_protocol::Principal::Body(_) => "body.key",
                };
                println!(
                    "{} for {}: {} (keep {} safe)",
                    p.key_name(),
                    p.code(),
                    k.node_id(),
                    dir.join(file).display()
                );
            }
            println!("Give your NodeId to peers; they pin it with `poa-node peer add`.");
        }
        Command::Id { json } => {
            let dir = home::resolve(cli.home)?;
            let home = Home::open(&dir)?;
            let id = home.key.node_id();
            if json {
                print_json(&json!({
                    "node_id": id.to_string(),
                    "name": home.config.name,
                    "participant": home.config.participant,
                    "principal_key": home.principal_key.as_ref().map(|k| k.node_id().to_string()),
                }))?;
            } else {
                println!("{id}");
            }
        }
        Command::Target(cmd) => target(cli.home, cmd)?,
        Command::Progress(ProgressCmd::Add {
            target,
            as_of,
            value,
            assessment,
            note,
            challenges,
            evidence,
            sha256,
            source,
            assistance_received,
        }) => {
            let evidence = Evidence::from_parts(evidence, sha256)?;
            let mut node = open(cli.home)?;
            let id = node.add_progress(Progress {
                id: String::new(),
                target: target.clone(),
                target_version: 0,
                as_of,
                value,
                assessment,
                note,
                challenges,
                evidence,
                source,
                assistance_received,
            })?;
            println!(
                "Recorded progress {id} in the draft. Publish it with `poa-node target publish {target}`."
            );
        }
        Command::Need(NeedCmd::Add {
            id,
            title,
            targets,
            area,
            mosaic,
            kind,
            cost,
            currency,
            from,
            until,
            priority,
        }) => {
            let mut node = open(cli.home)?;
            let state = node.own_state()?;
            node.add_need(Need {
                id: id.clone(),
                state,
                title,
                targets,
                area,
                mosaic,
                kind,
                cost,
                currency,
                from,
                until,
                priority,
            })?;
            println!("Published request {id} of {state}.");
        }
        Command::Need(NeedCmd::List { state, json }) => {
            let node = open(cli.home)?;
            let needs = node.needs(state)?;
            if json {
                print_json(&serde_json::to_value(&needs)?)?;
            } else if needs.is_empty() {
                println!("No requests. Add one with `poa-node need add --help`.");
            } else {
                let rows: Vec<Vec<String>> = needs
                    .iter()
                    .map(|n| {
                        vec![
                            n.id.clone(),
                            n.area.to_string(),
                            n.kind.to_string(),
                            n.priority.to_string(),
                            n.targets.join(","),
                            n.cost
                                .map(|c| format!("{c} {}", n.currency.clone().unwrap_or_default()))
                                .unwrap_or_else(|| "-".into()),
                            n.title.clone(),
                        ]
                    })
                    .collect();
                table(
                    &["ID", "AREA", "KIND", "PRIORITY", "TARGETS", "COST", "TITLE"],
                    &rows,
                );
            }
        }
        Command::Offer(OfferCmd::Add {
            id,
            title,
            areas,
            mosaic,
            kinds,
            regions,
            budget_min,
            budget_max,
            currency,
            from,
            until,
        }) => {
            let mut node = open(cli.home)?;
            node.add_offer(Offer {
                id: id.clone(),
                provider: String::new(),
                title,
                areas,
                mosaic,
                kinds,
                regions,
                budget_min,
                budget_max,
                currency,
                from,
                until,
            })?;
            println!("Published offer {id} in {}.", node.offers_doc());
        }
        Command::Offer(OfferCmd::List { json }) => {
            let node = open(cli.home)?;
            let offers = node.offers()?;
            if json {
                print_json(&serde_json::to_value(&offers)?)?;
            } else if offers.is_empty() {
                println!("No offers held. Add one with `poa-node offer add --help`.");
            } else {
                let rows: Vec<Vec<String>> = offers
                    .iter()
                    .map(|o| {
                        let join = |v: Vec<String>| v.join(",");
                        vec![
                            o.provider.clone(),
                            o.id.clone(),
                            join(o.areas.iter().map(|a| a.to_string()).collect()),
                            join(o.kinds.iter().map(|k| k.to_string()).collect()),
                            o.title.clone(),
                        ]
                    })
                    .collect();
                table(&["PROVIDER", "ID", "AREAS", "KINDS", "TITLE"], &rows);
            }
        }
        Command::Needs {
            unmet,
            state,
            area,
            json,
        } => assist::needs(cli.home, state, area, unmet, json)?,
        Command::Pool(cmd) => assist::pool(cli.home, cmd)?,
        Command::Stocktake(args) => report::stocktake(cli.home, args)?,
        Command::Match(cmd) => assist::matching(cli.home, cmd)?,
        Command::Doc(DocCmd::List { json }) => {
            let node = open(cli.home)?;
            let docs = node.store.summaries()?;
            if json {
                print_json(&serde_json::Value::Array(
                    docs.iter()
                        .map(|d| {
                            json!({
                                "id": d.id,
                                "heads": d.heads.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
                                "changes": d.changes,
                                "void": d.void,
                            })
                        })
                        .collect(),
                ))?;
            } else if docs.is_empty() {
                println!("No documents yet.");
            } else {
                let rows: Vec<Vec<String>> = docs
                    .iter()
                    .map(|d| {
                        vec![
                            d.id.clone(),
                            d.changes.to_string(),
                            d.heads
                                .iter()
                                .map(|h| h.to_string()[..12].to_string())
                                .collect::<Vec<_>>()
                                .join(","),
                        ]
                    })
                    .collect();
                table(&["DOCUMENT", "CHANGES", "HEADS"], &rows);
            }
        }
        Command::Doc(DocCmd::Export { doc, out }) => {
            let node = open(cli.home)?;
            let bytes = node.export_automerge(&doc)?;
            // Write a temporary file beside the target and rename it, so a failure never leaves
            // half a file, nor touches any other file.
            let dir = match out.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let mut tmp = tempfile::NamedTempFile::new_in(&dir)
                .with_context(|| format!("cannot write in {}", dir.display()))?;
            std::io::Write::write_all(&mut tmp, &bytes)
                .with_context(|| format!("writing {}", out.display()))?;
            tmp.persist(&out)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {}", out.display(), e.error))?;
            println!("Wrote {doc} ({} bytes) to {}", bytes.len(), out.display());
        }
        Command::Audit { since, json } => {
            let node = open(cli.home)?;
            let since_secs = since
                .map(|d| Date::from_unix_seconds(0).days_until(d) * 86_400)
                .unwrap_or(0);
            let rows = node.store.audit(since_secs)?;
            if json {
                print_json(&serde_json::to_value(&rows)?)?;
            } else {
                let rows: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.seq.to_string(),
                            Date::from_unix_seconds(r.at).to_string(),
                            r.event.clone(),
                            r.doc.clone().unwrap_or_default(),
                            r.change
                                .as_deref()
                                .map(|c| c[..12].to_string())
                                .unwrap_or_default(),
                            r.detail.clone(),
                        ]
                    })
                    .collect();
                table(
                    &["SEQ", "DATE", "EVENT", "DOCUMENT", "CHANGE", "DETAIL"],
                    &rows,
                );
            }
        }
        Command::Reference { list, json } => reference(&list, json)?,
        Command::Demo {
            keep,
            no_serve,
            http,
        } => runtime()?.block_on(crate::demo::run(keep, (!no_serve).then_some(http)))?,
        Command::Peer(cmd) => peer(cli.home, cmd)?,
        Command::Delegate {
            node: id,
            scope,
            expires,
        } => {
            let scope = parse_scope(&scope)?;
            let mut node = open(cli.home)?;
            node.delegate(id, scope.clone(), expires)?;
            let state = node.own_state()?;
            let until = expires.map(|e| format!(", until {e}")).unwrap_or_default();
            println!(
                "Delegated {id} (scope {scope}{until}). It is in state/{state} and its draft; it reaches the delegate at the next sync."
            );
        }
        Command::Revoke { node: id } => {
            let mut node = open(cli.home)?;
            node.revoke(id)?;
            println!(
                "Revoked {id}. Its changes made after it learns of this are refused everywhere."
            );
        }
        Command::Delegations { state, json } => {
            let node = open(cli.home)?;
            let (who, grants) = match state {
                Some(s) => (s.to_string(), node.grants_in(&DocId::State(s))?),
                None => (node.home.config.participant.code(), node.grants()?),
            };
            let keys = node.store.trusted_keys()?;
            if json {
                print_json(&json!({
                    "principal": who,
                    "grants": grants.iter().map(|(g, ok)| {
                        let mut v = serde_json::to_value(g).unwrap_or_default();
                        if let Some(m) = v.as_object_mut() {
                            m.insert("verified".into(), json!(ok));
                        }
                        v
                    }).collect::<Vec<_>>(),
                    "trusted_keys": keys.iter().map(|(p, k, src)| json!({"principal": p.to_string(), "key": k.to_string(), "source": src})).collect::<Vec<_>>(),
                }))?;
            } else {
                let rows: Vec<Vec<String>> = grants
                    .iter()
                    .map(|(g, ok)| {
                        vec![
                            format!("{:?}", g.kind).to_lowercase(),
                            g.node.to_string(),
                            g.scope
                                .as_ref()
                                .map(|s| s.to_string())
                                .unwrap_or_else(|| "-".into()),
                            g.expires
                                .map(|d| d.to_string())
                                .unwrap_or_else(|| "-".into()),
                            g.issued.to_string(),
                            if *ok {
                                "yes"
                            } else {
                                "NO: not the trusted key"
                            }
                            .into(),
                        ]
                    })
                    .collect();
                if rows.is_empty() {
                    println!("{who} has no delegations in the documents this node holds.");
                } else {
                    table(
                        &["KIND", "NODE", "SCOPE", "EXPIRES", "ISSUED", "VERIFIED"],
                        &rows,
                    );
                }
                for (p, k, src) in keys {
                    println!("Trusted {} of {}: {k} ({src})", p.key_name(), p.code());
                }
            }
        }
        Command::Trust {
            code,
            state_key,
            body_key,
            json,
        } => {
            let node = open(cli.home)?;
            if code != "list" {
                let (principal, key) = match (state_key, body_key) {
                    (Some(k), None) => (poa_protocol::Principal::State(code.parse()?), k),
                    (None, Some(k)) => (poa_protocol::Principal::Body(code.parse()?), k),
                    _ => bail!(
                        "give the key: --state-key KEY for a State, --body-key KEY for a body"
                    ),
                };
                match node.store.learn_key(
                    &principal,
                    &key,
                    &poa_protocol::authority::TrustSource::Operator,
                    crate::node::now_secs(),
                )? {
                    crate::store::Learned::New => {
                        node.store.audit_event(
                            crate::node::now_secs(),
                            "trust",
                            None,
                            None,
                            &format!(
                                "the operator trusted {key} as {}'s {}",
                                principal.code(),
                                principal.key_name()
                            ),
                        )?;
                        println!(
                            "Trusting {key} as the {} of {}.",
                            principal.key_name(),
                            principal.code()
                        );
                    }
                    crate::store::Learned::Known => {
                        println!(
                            "{key} is already trusted as the {} of {}.",
                            principal.key_name(),
                            principal.code()
                        );
                    }
                    crate::store::Learned::Conflict { trusted, source } => bail!(
                        "{} already has a trusted {}: {trusted} ({source}); a different key is refused",
                        principal.code(),
                        principal.key_name()
                    ),
                }
            }
            let keys = node.store.trusted_keys()?;
            if json {
                print_json(&serde_json::Value::Array(
                    keys.iter()
                        .map(|(p, k, src)| json!({"principal": p.to_string(), "key": k.to_string(), "source": src}))
                        .collect(),
                ))?;
            } else if code == "list" {
                if keys.is_empty() {
                    println!(
                        "No keys trusted yet. Pin a node with `poa-node peer add … --state CODE`, or run `poa-node trust CODE --state-key KEY`."
                    );
                }
                for (p, k, src) in keys {
                    println!("{:<14} {k}  ({src})", p.to_string());
                }
            }
        }
        Command::Share {
            doc,
            with,
            public,
            json,
        } => {
            let mut node = open(cli.home)?;
            if !with.is_empty() || public {
                node.share(&doc, &with, public)?;
            }
            let readers = node.readers(&doc)?;
            if json {
                print_json(&json!({"doc": doc, "readers": readers}))?;
            } else if readers.is_empty() {
                println!("{doc} is read only by its own State's nodes.");
            } else {
                println!("{doc} may be read by:");
                let peers = node.store.peers()?;
                for r in readers {
                    let name = peers
                        .iter()
                        .find(|p| p.node_id.to_string() == r)
                        .map(|p| format!("  ({})", p.name))
                        .unwrap_or_default();
                    if r == poa_protocol::doc::PUBLIC {
                        println!("  everyone (public)");
                    } else {
                        println!("  {r}{name}");
                    }
                }
            }
        }
        Command::Serve { listen, http } => {
            let node = open(cli.home)?;
            let listen = match listen {
                Some(l) => l,
                None => node.home.config.network.listen.parse()?,
            };
            let anti_entropy =
                std::time::Duration::from_secs(node.home.config.network.anti_entropy_secs);
            runtime()?.block_on(async move {
                let engine = Engine::new(
                    node,
                    EngineConfig {
                        anti_entropy,
                        ..EngineConfig::default()
                    },
                )?;
                let server = serve(engine.clone(), listen).await?;
                println!(
                    "Serving {} on {} (Ctrl-C to stop)",
                    server.engine().id(),
                    server.addr()
                );
                let board = match http {
                    Some(addr) => {
                        if !addr.ip().is_loopback() {
                            eprintln!(
                                "note: the dashboard on {addr} is readable by anyone who can reach that address"
                            );
                        }
                        let d = crate::dashboard::dashboard(engine, addr)
                            .await
                            .with_context(|| format!("cannot serve the dashboard on {addr}"))?;
                        println!("Dashboard on http://{}/", d.addr());
                        Some(d)
                    }
                    None => None,
                };
                tokio::signal::ctrl_c().await?;
                println!("Stopping...");
                if let Some(d) = board {
                    d.shutdown().await;
                }
                server.shutdown().await;
                anyhow::Ok(())
            })?;
        }
        Command::Sync { peer, json } => {
            let mut node = open(cli.home)?;
            for n in node.lapse_expired()? {
                eprintln!("Revoked {n}: its delegation expired.");
            }
            let results = runtime()?.block_on(async move {
                let engine = Engine::new(node, EngineConfig::default())?;
                anyhow::Ok(sync_round(&engine, peer).await?)
            })?;
            let failed = results.iter().filter(|(_, r)| r.is_err()).count();
            if json {
                print_json(&serde_json::Value::Array(
                    results
                        .iter()
                        .map(|(p, r)| match r {
                            Ok(rep) => json!({"peer": p.node_id.to_string(), "name": p.name, "ok": true, "report": rep}),
                            Err(e) => json!({"peer": p.node_id.to_string(), "name": p.name, "ok": false, "error": e.to_string()}),
                        })
                        .collect(),
                ))?;
            } else if results.is_empty() {
                println!(
                    "No peer with an address to sync with. Pin one with `poa-node peer add NODEID@HOST:PORT`."
                );
            } else {
                for (p, r) in &results {
                    match r {
                        Ok(rep) => {
                            let got: usize = rep.accepted.values().sum();
                            let sent: usize = rep.sent.values().sum();
                            println!(
                                "{}: received {got} change(s), sent {sent}, {} round trip(s), {} B out / {} B in, {} ms",
                                p.name,
                                rep.round_trips,
                                rep.bytes_sent,
                                rep.bytes_received,
                                rep.millis
                            );
                            for (doc, n) in &rep.accepted {
                                println!("  {doc}: +{n}");
                            }
                            for (doc, (n, why)) in &rep.rejected {
                                println!("  {doc}: {n} rejected ({why})");
                            }
                        }
                        Err(e) => println!("{}: failed: {e}", p.name),
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} of {} peer(s) could not be synced", results.len());
            }
        }
    }
    Ok(())
}

fn target(home: Option<PathBuf>, cmd: TargetCmd) -> anyhow::Result<()> {
    let mut node = open(home)?;
    match cmd {
        TargetCmd::Add { id, fields } => {
            let t = build_target(id, fields)?;
            node.add_target(t.clone())?;
            println!(
                "Added {} {} v1 to the draft. Publish it with `poa-node target publish {}`.",
                node.own_state()?,
                t.id,
                t.id
            );
        }
        TargetCmd::List { state, json } => print_targets(&node.target_views(state)?, json)?,
        TargetCmd::Show { id, state, json } => print_target(&node.target_view(state, &id)?, json)?,
        TargetCmd::Supersede { id, reason, fields } => {
            let v = node.supersede_target(&id, |t| {
                apply_fields(t, fields, reason);
                Ok(())
            })?;
            println!(
                "Wrote {id} v{v}; v{} is kept, marked superseded. Publish with `poa-node target publish {id}`.",
                v - 1
            );
        }
        TargetCmd::Publish { id } => {
            let p = node.publish_target(&id)?;
            if p.versions.is_empty() && p.progress.is_empty() && !p.withdrawal {
                println!("{id} is already published as it stands.");
            } else {
                let mut parts = Vec::new();
                if !p.versions.is_empty() {
                    let list: Vec<String> = p.versions.iter().map(|v| v.to_string()).collect();
                    parts.push(match list.as_slice() {
                        [one] => format!("version {one}"),
                        [init @ .., last] => format!("versions {} and {last}", init.join(", ")),
                        [] => String::new(),
                    });
                }
                if !p.progress.is_empty() {
                    parts.push(format!("{} progress report(s)", p.progress.len()));
                }
                if p.withdrawal {
                    parts.push("the withdrawal".into());
                }
                println!("Published {id}: {}.", parts.join(", "));
            }
        }
        TargetCmd::Withdraw { id } => {
            node.withdraw_target(&id, today())?;
            println!(
                "Withdrew {id} in the draft. Publish the withdrawal with `poa-node target publish {id}`."
            );
        }
    }
    Ok(())
}

fn parse_scope(words: &[String]) -> anyhow::Result<Scope> {
    if words.len() == 1 && words[0].eq_ignore_ascii_case("all") {
        return Ok(Scope::ALL);
    }
    let mut areas = Vec::new();
    for w in words.iter().flat_map(|w| w.split(',')) {
        if w.eq_ignore_ascii_case("all") {
            bail!("--scope all stands alone; or list areas such as --scope marking tracing");
        }
        areas.push(w.parse::<Area>()?);
    }
    Ok(Scope::Areas(areas))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn peer(home: Option<PathBuf>, cmd: PeerCmd) -> anyhow::Result<()> {
    let mut node = open(home)?;
    match cmd {
        PeerCmd::Add {
            peer,
            name,
            state,
            body,
            introducer,
        } => {
            let (id_text, addr) = match peer.split_once('@') {
                Some((id, addr)) => (id, Some(addr)),
                None => (peer.as_str(), None),
            };
            let id = parse_node_id(id_text).map_err(|e| anyhow::anyhow!(e))?;
            if id == node.id() {
                bail!(
                    "that is this node's own NodeId; pin the other node's (run `poa-node id` there)"
                );
            }
            if let Some(a) = addr {
                use std::net::ToSocketAddrs;
                let ok = a
                    .to_socket_addrs()
                    .map(|mut i| i.next().is_some())
                    .unwrap_or(false);
                if !ok {
                    bail!("'{a}' is not an address: write HOST:PORT, such as 192.0.2.10:4433");
                }
            }
            let name = name.unwrap_or_else(|| id.short());
            let pinned_as = match (state, body) {
                (Some(s), _) => Some(poa_protocol::Principal::State(s)),
                (None, Some(b)) => Some(poa_protocol::Principal::Body(b)),
                (None, None) => None,
            };
            node.store.add_peer(
                &id,
                &name,
                addr,
                pinned_as.as_ref(),
                crate::node::now_secs(),
            )?;
            node.store.set_introducer(&id, introducer)?;
            println!(
                "Pinned {name} ({id}){}.",
                addr.map(|a| format!(" at {a}")).unwrap_or_default()
            );
        }
        PeerCmd::List { json } => {
            let peers = node.store.peers()?;
            if json {
                print_json(&serde_json::Value::Array(
                    peers
                        .iter()
                        .map(|p| {
                            json!({
                                "node_id": p.node_id.to_string(),
                                "name": p.name,
                                "addr": p.addr,
                                "pinned_as": p.pinned_as.as_ref().map(|x| x.to_string()),
                                "flagged": p.flagged,
                                "introducer": p.introducer,
                                "added": p.added,
                                "last_seen": p.last_seen,
                                "last_error": p.last_error,
                                "invalid_changes": p.invalid_changes,
                            })
                        })
                        .collect(),
                ))?;
            } else if peers.is_empty() {
                println!("No peers. Pin one with `poa-node peer add NODEID@HOST:PORT --name ...`.");
            } else {
                let rows: Vec<Vec<String>> = peers
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.node_id.short(),
                            p.addr.clone().unwrap_or_else(|| "-".into()),
                            p.pinned_as
                                .as_ref()
                                .map(|x| x.code())
                                .unwrap_or_else(|| "-".into()),
                            p.last_seen
                                .map(|t| Date::from_unix_seconds(t).to_string())
                                .unwrap_or_else(|| "never".into()),
                            p.invalid_changes.to_string(),
                            p.last_error.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "NAME",
                        "NODE",
                        "ADDRESS",
                        "NODE OF",
                        "LAST SEEN",
                        "INVALID",
                        "LAST ERROR",
                    ],
                    &rows,
                );
            }
        }
        PeerCmd::Remove { peer } => {
            if node.store.remove_peer(&peer)? {
                println!("Unpinned {peer}.");
            } else {
                bail!("{peer} is not pinned; see `poa-node peer list`");
            }
        }
    }
    Ok(())
}

fn reference(list: &str, json: bool) -> anyhow::Result<()> {
    let rows: Vec<(String, String)> = match list {
        "areas" => Area::ALL
            .iter()
            .map(|a| (a.slug().to_string(), a.label().to_string()))
            .collect(),
        "mosaic" => MOSAIC_MODULES
            .iter()
            .map(|(c, t)| (c.to_string(), t.to_string()))
            .collect(),
        _ => CYCLES
            .iter()
            .map(|c| {
                let when = match c.dates {
                    Some((a, b)) => format!("{a} to {b}"),
                    None => format!("{} (dates to be set)", c.year),
                };
                (c.label.to_string(), format!("{}, {when}", c.name))
            })
            .collect(),
    };
    if json {
        print_json(&serde_json::Value::Array(
            rows.iter()
                .map(|(k, v)| json!({"code": k, "name": v}))
                .collect(),
        ))
    } else {
        table(
            &["CODE", "NAME"],
            &rows
                .into_iter()
                .map(|(a, b)| vec![a, b])
                .collect::<Vec<_>>(),
        );
        Ok(())
    }
}

/// Parses a NodeId argument; kept here so every command reports a mistyped id the same way.
pub fn parse_node_id(s: &str) -> Result<NodeId, String> {
    s.parse::<NodeId>().map_err(|e| e.to_string())
}
