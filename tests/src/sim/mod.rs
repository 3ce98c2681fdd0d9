//! A deterministic simulator of whole federations.
//!
//! One seed builds a federation of 3 to 40 real nodes (each its own SQLite file, keys derived
//! from the seed, a clock only the simulator moves) and runs the node's own sync sessions
//! ([`poa_protocol::session::Session`] over [`poa_node::host::NodeHost`], exactly as the QUIC
//! engine drives them) over an in-memory network the simulator controls: it delays frames,
//! reorders them across connections, resets connections, runs some connections chaotic
//! (frames dropped, duplicated, reordered), partitions and heals the federation, and crashes
//! nodes (everything in memory dropped, the store reopened). A workload of the things people
//! do (drafting, publishing, sharing, pools, delegations, revocations, days passing) runs on
//! top, and hostile members (a ministry whose key leaked, a rogue State, a rogue donor) send
//! what an attacker would: backdated changes, equivocations, forged keys, writes out of scope,
//! garbage and oversized frames, floods of changes whose dependencies never come.
//!
//! After a final heal and a quiet period the invariants in [`check`] must hold. A run uses no
//! wall clock, no OS randomness and no threads, so a seed replays exactly: a failure prints
//! the line that replays it and writes the run's trace (every frame, fault and action) to a
//! file.

mod check;
mod hostile;
pub mod rng;
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use poa_node::home::{Home, InitOptions};
use poa_node::host::{
    HostEvents, MAX_PARKED_BYTES_PER_PEER, MAX_PARKED_PER_PEER, NodeHost, Parked,
};
use poa_node::node::{Clock, Node};
use poa_protocol::authority::Scope;
use poa_protocol::automerge::ChangeHash;
use poa_protocol::doc::DocId;
use poa_protocol::session::{Event, Mode, Session, SessionConfig};
use poa_protocol::wire::{self, FrameBuffer, Message};
use poa_protocol::{BodyCode, BodyKind, Date, NodeId, Principal, StateCode};

use rng::Rng;

/// Milliseconds between anti-entropy summaries in the simulation (the node's default is a
/// minute; shorter here so repair happens many times in a run).
pub const ANTI_ENTROPY_MS: u64 = 4_000;
/// The longest simulated time after the final heal in which everything must converge.
pub const QUIET_MS: u64 = 60_000;
/// Where the simulated calendar starts: 2026-03-01T00:00:00Z.
pub const EPOCH_SECS: i64 = 1_772_323_200;

/// What a node is in the federation.
#[derive(Clone, Debug)]
pub enum Role {
    /// A State's node; `first` holds the State key.
    State {
        /// The State.
        code: StateCode,
        /// Whether it holds the State key.
        first: bool,
    },
    /// Another node of a State (a ministry), delegated by the State's first node.
    Ministry {
        /// The State.
        code: StateCode,
        /// What its delegation covers.
        scope: Scope,
        /// When its delegation ends.
        expires: Option<Date>,
    },
    /// A body's node (regional organisation, donor, Secretariat), holding the body key.
    Body {
        /// The body.
        code: BodyCode,
        /// Its kind.
        kind: BodyKind,
    },
}

impl Role {
    /// Whom it acts for.
    pub fn principal(&self) -> Principal {
        match self {
            Role::State { code, .. } | Role::Ministry { code, .. } => Principal::State(*code),
            Role::Body { code, .. } => Principal::Body(code.clone()),
        }
    }
}

/// One node of the simulated federation.
#[derive(Debug)]
pub struct SimNode {
    /// A short name for the trace (`n3:XAA-ministry`).
    pub label: String,
    /// Its home folder.
    pub dir: PathBuf,
    /// Its key.
    pub id: NodeId,
    /// What it is.
    pub role: Role,
    /// Whether it attacks.
    pub hostile: bool,
    /// The node, or `None` while crashed.
    pub node: Option<Node>,
    /// Changes it holds waiting for their dependencies (lost in a crash, as in the engine).
    pub parked: Parked,
    /// Every write it acknowledged: these must survive crashes.
    pub acked: Vec<(DocId, ChangeHash)>,
    /// Set once its delegation was revoked (ministries), with the simulated time.
    pub revoked_at: Option<u64>,
}

impl SimNode {
    /// Whom it acts for.
    pub fn principal(&self) -> Principal {
        self.role.principal()
    }
}

/// Two nodes that pinned each other, each as what the other is.
#[derive(Debug)]
struct Link {
    a: usize,
    b: usize,
    conn: Option<u64>,
    reconnect_pending: bool,
}

/// One end of a connection: a node's session with the peer, and the bytes received so far.
#[derive(Debug)]
struct End {
    node: usize,
    peer: usize,
    session: Session,
    buf: FrameBuffer,
    /// Documents the peer named on this connection (answering about one reveals nothing).
    named: BTreeSet<DocId>,
    /// When the last frame towards this end is due (frames keep their order on a clean link).
    last_due: u64,
    /// Frames this end sent, for a hostile end to replay.
    sent: Vec<Vec<u8>>,
}

#[derive(Debug)]
struct Conn {
    link: usize,
    ends: [End; 2],
    chaotic: bool,
}

#[derive(Debug)]
enum Ev {
    Frame {
        conn: u64,
        to: usize,
        bytes: Vec<u8>,
    },
    Reconnect {
        link: usize,
    },
    Step,
}

/// What a node is told happened, to pass on to its sessions.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Notice {
    Doc(DocId),
    Trust,
}

/// A change that must never stand on an honest node, and why.
#[derive(Clone, Debug)]
pub struct Poison {
    /// Its document.
    pub doc: DocId,
    /// Its hash.
    pub hash: ChangeHash,
    /// The attack it was.
    pub what: String,
}

/// What the workload did that decides who may read what, kept apart from the nodes' own
/// judgement: the egress check compares every transmitted document name against it.
#[derive(Debug, Default)]
struct Oracle {
    shared: BTreeMap<DocId, BTreeSet<NodeId>>,
    public: BTreeSet<DocId>,
    invited: BTreeMap<DocId, BTreeSet<StateCode>>,
    observers: BTreeMap<DocId, BTreeSet<NodeId>>,
    coordinator: BTreeMap<DocId, NodeId>,
    joined: BTreeMap<StateCode, BTreeSet<DocId>>,
}

/// Counts of a run, for the benchmark and the test's summary.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Nodes in the federation.
    pub nodes: usize,
    /// Hostile ones among them.
    pub hostile: usize,
    /// Frames delivered.
    pub frames: u64,
    /// Workload actions that succeeded.
    pub actions: u64,
    /// Attacks sent.
    pub attacks: u64,
    /// Faults injected (resets, partitions, crashes, chaotic links).
    pub faults: u64,
    /// Connections torn down by a peer's error (a session refusing what it got).
    pub refused: u64,
    /// Simulated milliseconds.
    pub sim_ms: u64,
}

impl Stats {
    /// Adds another run's counts.
    pub fn add(&mut self, o: &Stats) {
        self.nodes += o.nodes;
        self.hostile += o.hostile;
        self.frames += o.frames;
        self.actions += o.actions;
        self.attacks += o.attacks;
        self.faults += o.faults;
        self.refused += o.refused;
        self.sim_ms += o.sim_ms;
    }
}

/// A simulated federation in progress.
pub struct Sim {
    seed: u64,
    rng: Rng,
    now: u64,
    day_offset: i64,
    clock: Clock,
    // Keep the folder alive as long as the nodes.
    _dir: tempfile::TempDir,
    nodes: Vec<SimNode>,
    links: Vec<Link>,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    queue: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    cut: Option<BTreeSet<usize>>,
    workload_until: u64,
    trace: Vec<String>,
    poison: Vec<Poison>,
    twins: Vec<(DocId, ChangeHash, ChangeHash)>,
    oracle: Oracle,
    violations: Vec<String>,
    stats: Stats,
    pools: Vec<DocId>,
    hostility: BTreeMap<usize, hostile::Hostility>,
    /// Messages that moved changes or listings, to tell when the federation is quiet.
    moved: u64,
    /// See [`push_only`].
    push_only: bool,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.seed)
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

/// A failed run: what broke, and how to replay it.
#[derive(Debug)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// The invariants that do not hold.
    pub problems: Vec<String>,
    /// The full trace, written here.
    pub trace_file: PathBuf,
    /// The last lines of the trace.
    pub tail: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "simulated federation {:#018x} failed:", self.seed)?;
        for p in self.problems.iter().take(20) {
            writeln!(f, "  - {p}")?;
        }
        if self.problems.len() > 20 {
            writeln!(f, "  ... and {} more", self.problems.len() - 20)?;
        }
        writeln!(f, "last events of the run:")?;
        for l in &self.tail {
            writeln!(f, "  {l}")?;
        }
        writeln!(f, "full trace: {}", self.trace_file.display())?;
        write!(f, "{}", replay_line(self.seed))
    }
}

/// The command that replays a seed.
pub fn replay_line(seed: u64) -> String {
    format!(
        "replay with: POA_SIM_SEED={seed:#018x} cargo test -p poa-tests --test sim -- --nocapture"
    )
}

/// Runs the federation of `seed` to the end and checks every invariant. A panic inside the
/// run is caught and reported as a failure of its seed.
pub fn run(seed: u64) -> Result<Stats, Failure> {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let t = std::time::Instant::now();
        let mut sim = Sim::build(seed);
        let built = t.elapsed();
        sim.play();
        let played = t.elapsed();
        let problems = sim.check();
        if std::env::var_os("POA_SIM_TIMING").is_some() {
            eprintln!(
                "TIMING build {built:?} play {:?} check {:?}",
                played - built,
                t.elapsed() - played
            );
        }
        (sim, problems)
    }));
    match outcome {
        Ok((sim, problems)) if problems.is_empty() => {
            if std::env::var_os("POA_SIM_TRACE").is_some() {
                let f = sim.failure(Vec::new());
                eprintln!("trace of {seed:#018x}: {}", f.trace_file.display());
            }
            Ok(sim.stats.clone())
        }
        Ok((sim, problems)) => Err(sim.failure(problems)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            // The trace is gone with the unwound simulation; replaying the seed rebuilds it.
            Err(Failure {
                seed,
                problems: vec![format!("panicked: {what}")],
                trace_file: PathBuf::from("(lost in the panic; replay the seed)"),
                tail: Vec::new(),
            })
        }
    }
}

/// A digest of a run's whole trace, to show that a seed replays exactly.
pub fn trace_digest(seed: u64) -> (u64, usize) {
    let mut sim = Sim::build(seed);
    sim.play();
    let _ = sim.check();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for line in &sim.trace {
        for b in line.bytes().chain(std::iter::once(b'\n')) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    (h, sim.trace.len())
}

/// Whether the federation of `seed` runs push-only: one in four. Its sessions never run the
/// periodic repair, no connection is chaotic (a QUIC stream loses no frame), and the final
/// heal keeps the live connections: everything must arrive by pushes, listings at connect and
/// parking alone, so a change dropped on the way is not hidden by the next repair. (The
/// constant keeps the recorded regression seeds in the mode they were found in.)
fn push_only(seed: u64) -> bool {
    Rng::new(seed ^ 0x7075_7369).next_u64().is_multiple_of(4)
}

fn session_config(push_only: bool) -> SessionConfig {
    SessionConfig {
        anti_entropy_ms: if push_only { 1 << 40 } else { ANTI_ENTROPY_MS },
        ..SessionConfig::default()
    }
}

impl Sim {
    fn secs(&self) -> i64 {
        EPOCH_SECS + self.day_offset * 86_400 + (self.now / 1000) as i64
    }

    fn log(&mut self, line: impl AsRef<str>) {
        let line = format!("{:>8}ms {}", self.now, line.as_ref());
        self.trace.push(line);
    }

    fn violation(&mut self, what: String) {
        self.log(format!("VIOLATION {what}"));
        self.violations.push(what);
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    /// A new node in the federation's folder, its keys derived from the run's seed.
    fn add_node(&mut self, role: Role, hostile: bool) -> usize {
        let i = self.nodes.len();
        let principal = role.principal();
        let kind = match &role {
            Role::State { first: true, .. } => "state",
            Role::State { .. } => "state-node",
            Role::Ministry { .. } => "ministry",
            Role::Body { kind, .. } => match kind {
                BodyKind::Regional => "regional",
                BodyKind::Donor => "donor",
                BodyKind::Secretariat => "secretariat",
            },
        };
        let label = format!(
            "n{i}:{}-{kind}{}",
            principal.code(),
            if hostile { "(hostile)" } else { "" }
        );
        let dir = self._dir.path().join(format!("n{i}"));
        let opts = match &role {
            Role::State { code, first } => InitOptions {
                create_principal_key: *first,
                ..InitOptions::state(*code, &label)
            },
            Role::Ministry { code, .. } => InitOptions {
                create_principal_key: false,
                ..InitOptions::state(*code, &label)
            },
            Role::Body { code, kind } => InitOptions::body(code.clone(), *kind, &label),
        };
        let seed = self.rng.bytes32();
        let home = Home::init_seeded(&dir, &opts, seed).expect("a simulated node initialises");
        let node = Node::from_home(home)
            .expect("a simulated node opens")
            .with_clock(self.clock.clone());
        let id = node.id();
        self.nodes.push(SimNode {
            label,
            dir,
            id,
            role,
            hostile,
            node: Some(node),
            parked: Parked::default(),
            acked: Vec::new(),
            revoked_at: None,
        });
        i
    }

    /// Pins `a` and `b` to each other, each as what the other is.
    fn link(&mut self, a: usize, b: usize) {
        if a == b
            || self
                .links
                .iter()
                .any(|l| (l.a, l.b) == (a, b) || (l.a, l.b) == (b, a))
        {
            return;
        }
        for (x, y) in [(a, b), (b, a)] {
            let (id, label, principal) = (
                self.nodes[y].id,
                self.nodes[y].label.clone(),
                self.nodes[y].principal(),
            );
            let now = self.secs();
            if let Some(n) = self.nodes[x].node.as_ref() {
                n.store
                    .add_peer(&id, &label, None, Some(&principal), now)
                    .expect("pins");
            }
        }
        self.links.push(Link {
            a,
            b,
            conn: None,
            reconnect_pending: false,
        });
    }

    fn up(&self, i: usize) -> bool {
        self.nodes[i].node.is_some()
    }

    fn is_cut(&self, link: usize) -> bool {
        let l = &self.links[link];
        self.cut
            .as_ref()
            .is_some_and(|side| side.contains(&l.a) != side.contains(&l.b))
    }

    /// The memory a peer can make a node hold stays within the documented bounds.
    fn bounds(&mut self, i: usize) {
        let peers: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        for p in peers {
            let (bytes, count) = self.nodes[i].parked.held_by(&p);
            if bytes > MAX_PARKED_BYTES_PER_PEER || count > MAX_PARKED_PER_PEER {
                let what = format!(
                    "{} holds {bytes} B / {count} parked changes from {p}, over the bounds",
                    self.nodes[i].label
                );
                self.violation(what);
            }
        }
    }

    /// Runs `f` on end `e` of connection `c` with its node's host, then sends what the session
    /// queued and acts on its events. Tears the connection down if the session closed.
    fn with_end(
        &mut self,
        c: u64,
        e: usize,
        f: impl FnOnce(&mut Session, &mut NodeHost<'_>, u64) -> Result<(), String>,
    ) {
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        let end = &mut conn.ends[e];
        let i = end.node;
        let now = self.now;
        let n = &mut self.nodes[i];
        let Some(node) = n.node.as_mut() else {
            return;
        };
        let mut events = HostEvents::default();
        let result = f(
            &mut end.session,
            &mut NodeHost {
                node,
                parked: &mut n.parked,
                events: &mut events,
            },
            now,
        );
        if let Err(why) = &result {
            end.session.close(why);
        }
        let mut notices: BTreeSet<Notice> = events.accepted.into_iter().map(Notice::Doc).collect();
        if events.trust_changed {
            notices.insert(Notice::Trust);
        }
        let session_events: Vec<Event> = std::iter::from_fn(|| end.session.poll_event()).collect();
        for ev in session_events {
            match ev {
                Event::Accepted { doc, count } => {
                    self.log(format!("{} accepted {count} of {doc}", self.nodes[i].label));
                    notices.insert(Notice::Doc(doc));
                }
                Event::Rejected { doc, count, reason } => {
                    self.log(format!(
                        "{} refused {count} of {doc}: {reason}",
                        self.nodes[i].label
                    ));
                }
                Event::Closed(reason) => {
                    self.log(format!("{} got goodbye: {reason}", self.nodes[i].label));
                }
                Event::EgressRefused(doc) => {
                    self.log(format!(
                        "{} session refused to name {doc} (its own egress check)",
                        self.nodes[i].label
                    ));
                }
                Event::RoundComplete => {}
            }
        }
        self.flush(c, e);
        if let Err(why) = result {
            self.stats.refused += 1;
            self.teardown(c, &format!("{} closed it: {why}", self.nodes[i].label));
        } else if self
            .conns
            .get(&c)
            .is_some_and(|conn| conn.ends[e].session.is_closed())
        {
            self.teardown(c, "closed");
        }
        self.bounds(i);
        self.notify(i, notices);
    }

    /// Sends what end `e` of `c` queued, checking each message against the oracle first.
    fn flush(&mut self, c: u64, e: usize) {
        loop {
            let Some(conn) = self.conns.get_mut(&c) else {
                return;
            };
            let Some(msg) = conn.ends[e].session.poll_transmit() else {
                return;
            };
            let (i, j) = (conn.ends[e].node, conn.ends[e].peer);
            let named = conn.ends[e].named.clone();
            if !self.nodes[i].hostile {
                self.check_egress(i, j, &msg, &named);
            }
            let bytes = match wire::encode_frame(&msg) {
                Ok(b) => b,
                Err(err) => {
                    let what = format!(
                        "{} queued a {} it cannot encode: {err}",
                        self.nodes[i].label,
                        msg.kind()
                    );
                    self.violation(what);
                    continue;
                }
            };
            if matches!(&msg, Message::Sync(s) if !s.changes.is_empty())
                || matches!(msg, Message::ListRequest | Message::Offers { .. })
            {
                self.moved += 1;
            }
            let line = describe(&msg);
            self.log(format!(
                "{} -> {} c{c} {line}",
                self.nodes[i].label, self.nodes[j].label
            ));
            if self.nodes[i].hostile
                && let Some(conn) = self.conns.get_mut(&c)
                && conn.ends[e].sent.len() < 64
            {
                conn.ends[e].sent.push(bytes.clone());
            }
            self.send_bytes(c, 1 - e, bytes);
        }
    }

    /// Puts bytes on the wire towards end `to` of `c`, with the link's delays and, on a
    /// chaotic connection, drops, duplicates and reordering.
    fn send_bytes(&mut self, c: u64, to: usize, bytes: Vec<u8>) {
        let delay = self.rng.range(1, 40);
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        let chaotic = conn.chaotic;
        let now = self.now;
        if chaotic {
            let roll = self.rng.below(100);
            let at = now + self.rng.range(1, 60);
            match roll {
                0..=7 => {
                    self.trace
                        .push(format!("{now:>8}ms   chaos: dropped a frame on c{c}"));
                }
                8..=15 => {
                    let again = now + self.rng.range(1, 60);
                    self.schedule(
                        again,
                        Ev::Frame {
                            conn: c,
                            to,
                            bytes: bytes.clone(),
                        },
                    );
                    self.schedule(at, Ev::Frame { conn: c, to, bytes });
                }
                _ => self.schedule(at, Ev::Frame { conn: c, to, bytes }),
            }
            return;
        }
        let end = &mut conn.ends[to];
        let at = (now + delay).max(end.last_due);
        end.last_due = at;
        self.schedule(at, Ev::Frame { conn: c, to, bytes });
    }

    /// Delivers a frame: the receiving end reads whole frames off its buffer as the engine's
    /// reader does, and a frame that does not decode closes the connection with the reason.
    fn deliver(&mut self, c: u64, to: usize, bytes: Vec<u8>) {
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        self.stats.frames += 1;
        conn.ends[to].buf.push(&bytes);
        loop {
            let Some(conn) = self.conns.get_mut(&c) else {
                return;
            };
            let end = &mut conn.ends[to];
            match end.buf.next_message() {
                Ok(Some(msg)) => {
                    end.named.extend(msg.docs().into_iter().cloned());
                    self.with_end(c, to, |s, host, now| {
                        s.handle(host, msg, now).map_err(|e| e.to_string())
                    });
                }
                Ok(None) => {
                    if end.buf.buffered() > 4 + wire::MAX_FRAME {
                        self.with_end(c, to, |_, _, _| Err("frame larger than the maximum".into()));
                    }
                    return;
                }
                Err(err) => {
                    let why = format!("peer broke the protocol: {err}");
                    self.with_end(c, to, |_, _, _| Err(why));
                    return;
                }
            }
        }
    }

    /// Ends a connection: both sessions are dropped, frames in flight are lost, and the link
    /// is dialled again after a backoff.
    fn teardown(&mut self, c: u64, why: &str) {
        let Some(conn) = self.conns.remove(&c) else {
            return;
        };
        self.log(format!("c{c} torn down: {why}"));
        let link = conn.link;
        self.links[link].conn = None;
        let backoff = self.rng.range(200, 3_000);
        self.plan_reconnect(link, self.now + backoff);
    }

    fn plan_reconnect(&mut self, link: usize, at: u64) {
        if !self.links[link].reconnect_pending {
            self.links[link].reconnect_pending = true;
            self.schedule(at, Ev::Reconnect { link });
        }
    }

    /// Dials a link: two fresh sessions, started together.
    fn connect(&mut self, link: usize) {
        self.links[link].reconnect_pending = false;
        let (a, b) = (self.links[link].a, self.links[link].b);
        if self.links[link].conn.is_some() || self.is_cut(link) || !self.up(a) || !self.up(b) {
            return;
        }
        let c = self.next_conn;
        self.next_conn += 1;
        let end = |me: usize, peer: usize, sim: &Sim| End {
            node: me,
            peer,
            session: Session::new(
                sim.nodes[peer].id,
                poa_node::host::hello(sim.nodes[me].node.as_ref().expect("up")),
                Mode::Stay,
                session_config(sim.push_only),
            ),
            buf: FrameBuffer::default(),
            named: BTreeSet::new(),
            last_due: 0,
            sent: Vec::new(),
        };
        let ends = [end(a, b, self), end(b, a, self)];
        let chaotic = !self.push_only && self.rng.chance(0.12);
        if chaotic {
            self.stats.faults += 1;
        }
        self.conns.insert(
            c,
            Conn {
                link,
                ends,
                chaotic,
            },
        );
        self.links[link].conn = Some(c);
        self.log(format!(
            "c{c} open {} <-> {}{}",
            self.nodes[a].label,
            self.nodes[b].label,
            if chaotic { " (chaotic)" } else { "" }
        ));
        for e in 0..2 {
            self.with_end(c, e, |s, host, now| {
                s.start(host, now);
                Ok(())
            });
        }
    }

    /// Passes what changed at node `i` to every session it has, as the engine's broadcast does.
    fn notify(&mut self, i: usize, notices: BTreeSet<Notice>) {
        if notices.is_empty() {
            return;
        }
        let ends: Vec<(u64, usize)> = self
            .conns
            .iter()
            .flat_map(|(c, conn)| {
                (0..2)
                    .filter(move |e| conn.ends[*e].node == i)
                    .map(move |e| (*c, e))
            })
            .collect();
        for (c, e) in ends {
            for n in &notices {
                let n = n.clone();
                self.with_end(c, e, move |s, host, _| {
                    match &n {
                        Notice::Doc(doc) => {
                            s.push(host, doc);
                            if matches!(doc, DocId::Pool(_)) {
                                s.refresh(host);
                            }
                        }
                        Notice::Trust => s.trust_changed(host),
                    }
                    Ok(())
                });
            }
        }
    }

    /// Runs node `i`'s local action `f` (the CLI's code paths), records what it acknowledged,
    /// and pushes what it changed to its sessions. Returns the action's result.
    fn act<T>(
        &mut self,
        i: usize,
        what: &str,
        f: impl FnOnce(&mut Node) -> Result<T, poa_node::node::NodeError>,
    ) -> Option<T> {
        let node = self.nodes[i].node.as_mut()?;
        let before: BTreeMap<DocId, i64> = node
            .store
            .versions()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let trust_before = node.store.trust();
        let result = f(node);
        let _ = node.store.refresh_trust();
        let trust_changed = node.store.trust() != trust_before;
        let after: Vec<(DocId, i64)> = node.store.versions().unwrap_or_default();
        let changed: Vec<DocId> = after
            .into_iter()
            .filter(|(d, v)| before.get(d) != Some(v))
            .map(|(d, _)| d)
            .collect();
        let mut acked = Vec::new();
        for d in &changed {
            if let Ok(Some(h)) = node.store.heads(d) {
                acked.extend(h.into_iter().map(|h| (d.clone(), h)));
            }
        }
        let label = self.nodes[i].label.clone();
        let out = match result {
            Ok(v) => {
                self.stats.actions += 1;
                self.log(format!(
                    "{label} {what}: ok ({} docs changed)",
                    changed.len()
                ));
                self.nodes[i].acked.extend(acked);
                Some(v)
            }
            Err(e) => {
                self.log(format!("{label} {what}: refused: {e}"));
                if !changed.is_empty() {
                    let what = format!(
                        "{label} refused {what} ({e}) but changed {changed:?}: half-written"
                    );
                    self.violation(what);
                }
                None
            }
        };
        let mut notices: BTreeSet<Notice> = changed.into_iter().map(Notice::Doc).collect();
        if trust_changed {
            notices.insert(Notice::Trust);
        }
        self.notify(i, notices);
        out
    }

    /// Crashes node `i`: its sessions, parked changes and every cache are gone; its files stay.
    fn crash(&mut self, i: usize) {
        if !self.up(i) {
            return;
        }
        self.stats.faults += 1;
        let conns: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.ends.iter().any(|e| e.node == i))
            .map(|(id, _)| *id)
            .collect();
        for c in conns {
            self.teardown(c, "a node crashed");
        }
        self.nodes[i].node = None;
        self.nodes[i].parked = Parked::default();
        self.log(format!("{} CRASHED", self.nodes[i].label));
    }

    /// Restarts node `i` from its files, and checks that every write it acknowledged is there.
    fn restart(&mut self, i: usize) {
        if self.up(i) {
            return;
        }
        let node = Node::open(&self.nodes[i].dir)
            .expect("a crashed node reopens")
            .with_clock(self.clock.clone());
        self.nodes[i].node = Some(node);
        self.log(format!("{} restarted", self.nodes[i].label));
        self.check_acked(i);
        let links: Vec<usize> = (0..self.links.len())
            .filter(|l| self.links[*l].a == i || self.links[*l].b == i)
            .collect();
        for l in links {
            let at = self.now + self.rng.range(50, 1_000);
            self.plan_reconnect(l, at);
        }
    }

    /// Every write node `i` acknowledged is held by it.
    fn check_acked(&mut self, i: usize) {
        let Some(node) = self.nodes[i].node.as_ref() else {
            return;
        };
        let lost: Vec<String> = self.nodes[i]
            .acked
            .iter()
            .filter(|(d, h)| {
                !node
                    .store
                    .with_ledger(d, |l| l.has(h))
                    .ok()
                    .flatten()
                    .unwrap_or(false)
            })
            .map(|(d, h)| format!("{d} {h}"))
            .collect();
        if !lost.is_empty() {
            let what = format!(
                "{} lost writes it acknowledged: {}",
                self.nodes[i].label,
                lost.join(", ")
            );
            self.violation(what);
        }
    }

    /// The earliest time a session wants to be woken.
    fn next_timer(&self) -> Option<u64> {
        self.conns
            .values()
            .flat_map(|c| c.ends.iter().filter_map(|e| e.session.poll_timeout()))
            .min()
    }

    /// Advances the simulation until `until`.
    fn run_until(&mut self, until: u64) {
        loop {
            let next_ev = self.queue.first_key_value().map(|(k, _)| k.0);
            let next_timer = self.next_timer();
            let next = match (next_ev, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => until,
            };
            if next > until {
                self.now = until;
                self.clock.set(self.secs());
                return;
            }
            self.now = self.now.max(next);
            self.clock.set(self.secs());
            if next_ev == Some(next) {
                let Some((_, ev)) = self.queue.pop_first() else {
                    continue;
                };
                match ev {
                    Ev::Frame { conn, to, bytes } => self.deliver(conn, to, bytes),
                    Ev::Reconnect { link } => self.connect(link),
                    Ev::Step => {
                        if self.now < self.workload_until {
                            self.step();
                            let gap = self.rng.range(100, 1_500);
                            self.schedule(self.now + gap, Ev::Step);
                        }
                    }
                }
            } else {
                let due: Vec<(u64, usize)> = self
                    .conns
                    .iter()
                    .flat_map(|(c, conn)| {
                        (0..2)
                            .filter(|e| {
                                conn.ends[*e]
                                    .session
                                    .poll_timeout()
                                    .is_some_and(|t| t <= next)
                            })
                            .map(move |e| (*c, e))
                    })
                    .collect();
                for (c, e) in due {
                    self.with_end(c, e, |s, host, now| {
                        s.handle_timeout(host, now);
                        Ok(())
                    });
                }
            }
        }
    }

    /// The whole run: the workload with faults and attacks, then the final heal and quiet.
    fn play(&mut self) {
        for l in 0..self.links.len() {
            let at = self.rng.range(0, 200);
            self.plan_reconnect(l, at);
        }
        let first = self.rng.range(100, 500);
        self.schedule(first, Ev::Step);
        let until = self.workload_until;
        self.run_until(until);
        self.heal();
        // Quiet: at least a few anti-entropy rounds, and until a stretch of two rounds moves no
        // change and asks for no listing (or the limit passes: then the checks say what is
        // left unsynced).
        let start = self.now;
        loop {
            let moved = self.moved;
            let next = self.now + 2 * ANTI_ENTROPY_MS;
            self.run_until(next);
            let elapsed = self.now - start;
            if elapsed >= QUIET_MS || (elapsed >= 3 * ANTI_ENTROPY_MS && self.moved == moved) {
                break;
            }
        }
        self.stats.sim_ms = self.now;
    }

    /// The final heal: every crashed node restarts, the partition ends, and every connection is
    /// replaced by a clean one.
    fn heal(&mut self) {
        self.log("FINAL HEAL");
        self.cut = None;
        if !self.push_only {
            let conns: Vec<u64> = self.conns.keys().copied().collect();
            for c in conns {
                self.teardown(c, "final heal");
            }
        }
        for i in 0..self.nodes.len() {
            self.restart(i);
        }
        // Pending reconnects could open chaotic links again: open clean ones now instead.
        self.queue
            .retain(|_, ev| !matches!(ev, Ev::Reconnect { .. }));
        for l in 0..self.links.len() {
            self.links[l].reconnect_pending = false;
            self.connect(l);
            if let Some(c) = self.links[l].conn
                && let Some(conn) = self.conns.get_mut(&c)
            {
                conn.chaotic = false;
            }
        }
    }

    fn failure(&self, problems: Vec<String>) -> Failure {
        let trace_file = std::env::temp_dir().join(format!("poa-sim-{:016x}.trace", self.seed));
        let mut text = String::new();
        let _ = writeln!(text, "seed {:#018x}", self.seed);
        for n in &self.nodes {
            let _ = writeln!(text, "node {} = {}", n.label, n.id);
        }
        for l in &self.trace {
            let _ = writeln!(text, "{l}");
        }
        let _ = std::fs::write(&trace_file, text);
        Failure {
            seed: self.seed,
            problems,
            trace_file,
            tail: self.trace.iter().rev().take(40).rev().cloned().collect(),
        }
    }
}

/// A line of the trace for a message.
fn describe(msg: &Message) -> String {
    match msg {
        Message::Hello(h) => format!("hello key={:?}", h.key.map(|k| k.short())),
        Message::Summary { docs, .. } => format!("summary of {docs}"),
        Message::Offers { docs } => format!("offers {}", docs.len()),
        Message::Sync(s) => format!(
            "sync {} heads={} need={} changes={}",
            s.doc,
            s.heads.len(),
            s.need.len(),
            s.changes.len()
        ),
        Message::SyncIdle { doc } => format!("idle {doc}"),
        Message::Goodbye { reason } => format!("goodbye: {reason}"),
        Message::Introduce { keys } => format!("introduce {}", keys.len()),
        other => other.kind().to_string(),
    }
}
