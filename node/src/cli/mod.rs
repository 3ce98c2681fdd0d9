//! The command line: the clap definitions of the top-level commands, the helpers every command
//! shares, and [`run`], which hands each command to the module of its group.
//!
//! Every listing takes `--json`; every error is one line on stderr with a non-zero exit, and a
//! failed command writes nothing.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use poa_protocol::doc::DocId;
use poa_protocol::model::Area;
use poa_protocol::{Date, NodeId, StateCode};

mod assist;
mod backup;
mod bundle;
mod docs;
mod identity;
mod keys;
mod network;
mod pool;
mod report;
mod submission;
mod targets;

pub use assist::{MatchArgs, MatchCmd, NeedCmd, OfferCmd};
pub use bundle::BundleCmd;
pub use docs::DocCmd;
pub use identity::{DelegationStatus, InitArgs, PeerCmd, delegation_statuses};
pub use pool::{PoolCmd, PoolTargetCmd};
pub use report::{StocktakeArgs, StocktakeCmd, write_bytes_atomically};
pub use submission::{EvidenceCmd, SubmissionCmd, SubmissionFormat};
pub(crate) use targets::build_target;
pub use targets::{ProgressCmd, TargetCmd, TargetFields};

pub use crate::format::safe;

use crate::home;
use crate::node::Node;

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

    /// How log lines on stderr look: `text` for people (colours only on a terminal) or `json`,
    /// one object per line for log collectors. What is logged is chosen by RUST_LOG (by
    /// default warnings, and for `serve` also one line per connection and per batch of changes
    /// taken).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "POA_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line.
    Json,
}

impl Cli {
    /// The log filter when RUST_LOG does not set one: warnings, and for a serving node also
    /// what it does with its peers.
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            Command::Serve { .. } | Command::Ui { .. } => "warn,poa_node=info",
            _ => "warn",
        }
    }
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
    /// Targets: add, edit, delete, list, show, supersede, publish, withdraw.
    #[command(subcommand)]
    Target(TargetCmd),
    /// Progress reports on targets.
    #[command(subcommand)]
    Progress(ProgressCmd),
    /// Assistance requests of this State.
    #[command(subcommand)]
    Need(NeedCmd),
    /// The State's national submission: show or print it with the checks' findings, and
    /// publish what is pending after a preview.
    #[command(subcommand)]
    Submission(SubmissionCmd),
    /// Evidence files: which progress reports cite a file.
    #[command(subcommand)]
    Evidence(EvidenceCmd),
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
    /// Decide who may read one of this node's documents: add readers, take them off, or list
    /// them.
    #[command(after_help = "Examples:\n  \
poa-node share state/XAA --with <NODEID of the Secretariat> --with <NODEID of XRB>\n  \
poa-node share offers/XZZ --public\n  \
poa-node share state/XAA --remove <NODEID of XRB>\n  \
poa-node share state/XAA --remove pool/xanadu\n  \
poa-node share offers/XZZ --remove public\n  \
poa-node share state/XAA            # list who may read it\n\n\
A reader taken off the list gets none of the document's later changes, from this node or any\n\
relay. What it already received stays with it: removing a reader is not a recall.")]
    Share {
        /// The document: state/XAA or offers/XZZ.
        doc: DocId,
        /// A NodeId that may read it (repeat).
        #[arg(long = "with", value_parser = parse_node_id)]
        with: Vec<NodeId>,
        /// Everyone this node syncs with may read it.
        #[arg(long)]
        public: bool,
        /// Take a reader off the list (repeat): a NodeId, pool/<id> (or pool/<name>), or
        /// `public` to end --public. Later changes no longer reach it; what it already has
        /// stays with it.
        #[arg(long, value_name = "NODEID|pool/ID|public", conflicts_with_all = ["with", "public"])]
        remove: Vec<String>,
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
        /// Also serve the web UI for this State's own node (forms, the printable submission,
        /// publish) on ADDR; 127.0.0.1:8081 when given without a value. Prints the link that
        /// opens it, with this node's token; only that link gets in.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8081")]
        ui: Option<std::net::SocketAddr>,
    },
    /// Open the web UI for this node (the same as `serve --ui`): runs the node, serves the
    /// forms, the printable submission and publishing on ADDR (127.0.0.1:8081 unless given),
    /// and prints the link that opens it.
    #[command(after_help = "Examples:\n  poa-node ui\n  poa-node ui --addr 127.0.0.1:9000")]
    Ui {
        /// Address of the web UI.
        #[arg(long, default_value = "127.0.0.1:8081")]
        addr: std::net::SocketAddr,
    },
    /// How the node is doing: each peer connected or not, last contact, last error and what
    /// to do, documents in sync or behind, traffic; each document and who holds it as here.
    #[command(
        after_help = "Examples:\n  poa-node status\n  poa-node status --json\n\n\
Connections are those of the `serve` running on this home; without one, no peer is connected."
    )]
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent copy of this node's database to a file, safe while `serve` runs;
    /// with --with-keys, also its key files (then whoever reads the file can write as this
    /// node).
    #[command(after_help = "Examples:\n  \
poa-node backup --out /backups/xaa-2026-12-01.poabak\n  \
poa-node backup --out /media/offline/xaa-keys.poabak --with-keys\n  \
poa-node backup --out xaa.poabak --force --json\n\n\
The file is a SQLite database (VACUUM INTO: one consistent snapshot however the serving node\n\
writes), created readable by you only (0600), written beside --out and renamed into place,\n\
so a crash never leaves half a backup under that name. Without --with-keys it holds no\n\
secret: no key file (config.toml is in it; the drafts are too, so keep it as private as the\n\
home). An existing file is replaced only with --force.")]
    Backup {
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Also put node.key and state.key or body.key in the backup.
        #[arg(long)]
        with_keys: bool,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup into a new or empty home (--home DIR), checking every stored change
    /// through the gate before the node can start.
    #[command(after_help = "Examples:\n  \
poa-node restore /backups/xaa-keys.poabak --home /var/lib/poa-node-restored\n  \
cp node.key state.key /srv/xaa/ && chmod 600 /srv/xaa/*.key && poa-node restore xaa.poabak --home /srv/xaa\n\n\
The home must be new or empty. A backup made without --with-keys restores only into a home\n\
that already holds the node's node.key (and state.key or body.key, on the first node of a\n\
State or body), placed by you. Every document is read back through the gate; if any change\n\
fails, the restore fails and nothing is left in the home. The restored node keeps its peers,\n\
pins, trust and what each peer is known to hold, and writes under a new actor id (so its\n\
next writes never collide with what the old node wrote after the backup). Stop the old node\n\
for good before running the restored one.")]
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Say what is wrong with this home and how to fix it: missing or unreadable keys,
    /// permissions, the database's integrity and schema, a `serve` running.
    #[command(after_help = "Examples:\n  \
poa-node doctor\n  \
poa-node --home /var/lib/poa-node doctor --json\n\n\
Only reads: the database is opened read-only and every document read back through the gate.\n\
Exits non-zero when it finds a problem.")]
    Doctor {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Signed bundle files for a node with no network path to this one: export what it may
    /// read, import what it sent (with the receipt to carry back).
    #[command(subcommand)]
    Bundle(BundleCmd),
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
    /// The State's (or body's) key: show the chain of keys in force, rotate it, or recover it
    /// with the recovery key when it is lost or leaked.
    #[command(subcommand)]
    StateKey(keys::StateKeyCmd),
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
        /// The recovery key of the State or body (printed by its first node's `init`): with it
        /// this node follows the key recoveries it signs. With --state-key or --body-key, or
        /// alone for a key already trusted.
        #[arg(long, value_parser = parse_node_id)]
        recovery_key: Option<NodeId>,
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Examples:\n  \
poa-node completions bash > /etc/bash_completion.d/poa-node\n  \
poa-node completions zsh > \"${fpath[1]}/_poa-node\"\n  \
poa-node completions fish > ~/.config/fish/completions/poa-node.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), generated from this command line's own help.
    #[command(after_help = "Examples:\n  \
poa-node manpage > /usr/local/share/man/man1/poa-node.1\n  \
poa-node manpage | man -l -")]
    Manpage,
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

/// Runs a parsed command line: hands each command to its group's module.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let home = cli.home;
    match cli.command {
        Command::Init(args) => identity::init(home, args),
        Command::Id { json } => identity::id(home, json),
        Command::Peer(cmd) => identity::peer(home, cmd),
        Command::Trust {
            code,
            state_key,
            body_key,
            recovery_key,
            json,
        } => identity::trust(home, code, state_key, body_key, recovery_key, json),
        Command::Delegate {
            node,
            scope,
            expires,
        } => identity::delegate(home, node, scope, expires),
        Command::Revoke { node } => identity::revoke(home, node),
        Command::Delegations { state, json } => identity::delegations(home, state, json),
        Command::StateKey(cmd) => keys::state_key(home, cmd),
        Command::Target(cmd) => targets::target(home, cmd),
        Command::Progress(cmd) => targets::progress(home, cmd),
        Command::Reference { list, json } => targets::reference(&list, json),
        Command::Need(cmd) => assist::need(home, cmd),
        Command::Submission(cmd) => submission::submission(home, cmd),
        Command::Evidence(cmd) => submission::evidence(home, cmd),
        Command::Offer(cmd) => assist::offer(home, cmd),
        Command::Needs {
            unmet,
            state,
            area,
            json,
        } => assist::needs(home, state, area, unmet, json),
        Command::Match(cmd) => assist::matching(home, cmd),
        Command::Pool(cmd) => pool::pool(home, cmd),
        Command::Stocktake(args) => report::stocktake(home, args),
        Command::Doc(cmd) => docs::doc(home, cmd),
        Command::Share {
            doc,
            with,
            public,
            remove,
            json,
        } => docs::share(home, doc, with, public, remove, json),
        Command::Audit { since, json } => docs::audit(home, since, json),
        Command::Serve { listen, http, ui } => network::serve(home, listen, http, ui),
        Command::Ui { addr } => network::serve(home, None, None, Some(addr)),
        Command::Sync { peer, json } => network::sync(home, peer, json),
        Command::Status { json } => network::status(home, json),
        Command::Backup {
            out,
            with_keys,
            force,
            json,
        } => backup::backup(home, out, with_keys, force, json),
        Command::Restore { file, json } => backup::restore(home, file, json),
        Command::Doctor { json } => backup::doctor(home, json),
        Command::Bundle(cmd) => bundle::bundle(home, cmd),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "poa-node", &mut std::io::stdout());
            Ok(())
        }
        Command::Manpage => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            std::io::Write::write_all(&mut std::io::stdout(), &out)?;
            Ok(())
        }
        Command::Demo {
            keep,
            no_serve,
            http,
        } => Ok(runtime()?.block_on(crate::demo::run(keep, (!no_serve).then_some(http)))?),
    }
}

/// Prints `v` as pretty JSON: a view of [`crate::views`], or a value.
fn print_json<T: serde::Serialize + ?Sized>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Opens the node in `home` (`--home`, `POA_HOME`, or the per-user data folder).
fn open(home: Option<PathBuf>) -> anyhow::Result<Node> {
    let dir = home::resolve(home)?;
    Ok(Node::open(&dir)?)
}

/// The async runtime of the commands that talk to the network.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Parses a NodeId argument; kept here so every command reports a mistyped id the same way.
pub fn parse_node_id(s: &str) -> Result<NodeId, String> {
    s.parse::<NodeId>().map_err(|e| e.to_string())
}
