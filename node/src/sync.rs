//! The sync engine: the I/O around [`poa_protocol::session::Session`]. It owns the sockets,
//! tasks and timers; every decision about what to send and what to take is the session's, and
//! every change passes the gate in the store.
//!
//! Per connection, one task reads frames (growing a buffer only as bytes arrive, with a
//! deadline for each frame), one writes them, and the connection's loop feeds the session the
//! messages, the changes this node makes or receives from other peers (so they are pushed at
//! once), and its timer. Resources a peer can make this node hold are bounded per peer:
//! connections, bytes of a frame in progress, changes waiting for their dependencies.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use poa_protocol::NodeId;
use poa_protocol::doc::DocId;
use poa_protocol::session::{self, Event, Mode, Session, SessionConfig};
use poa_protocol::sign::NodeKey;
use poa_protocol::wire::{self, FrameBuffer, Hello, MAX_FRAME, Message};
use tokio::sync::{broadcast, mpsc, watch};

pub use poa_protocol::session::SyncReport;

use crate::host::{HostEvents, NodeHost, Parked};
pub use crate::host::{MAX_PARKED_BYTES_PER_PEER, MAX_PARKED_PER_PEER, can_read};
use crate::node::{Node, NodeError, now_secs};
use crate::store::{Peer, StoreError, Traffic};
use crate::transport::{self, Pins, TransportError};

/// Errors of a sync connection.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The node's data.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The transport.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// QUIC connection failure.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Dialling failed.
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The peer broke the protocol, or this node refused it.
    #[error("{0}")]
    Session(#[from] session::SessionError),
    /// The peer's bytes are not frames of this protocol.
    #[error("peer broke the protocol: {0}")]
    Protocol(String),
    /// The peer said goodbye with a reason before the round completed.
    #[error("peer closed: {0}")]
    Closed(String),
    /// Nothing happened for too long.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The peer's node refused this node's key in the handshake: it has not pinned it.
    #[error("{peer} does not know this node: ask its operator to run `poa-node peer add {us}`")]
    NotPinnedThere {
        /// The peer, as `peer_label` names it.
        peer: String,
        /// This node.
        us: NodeId,
    },
    /// The node that answered at the peer's address holds another key.
    #[error(
        "the node at {addr} is {presented}, not {peer} that you pinned: check the address with `poa-node peer list`, or ask {peer}'s operator for its current one"
    )]
    WrongNode {
        /// Where it was dialled.
        addr: String,
        /// What answered there.
        presented: String,
        /// The peer pinned.
        peer: String,
    },
    /// Nothing answered the handshake.
    #[error(
        "no answer from {addr} over UDP within {secs} s: is {peer} running, and is UDP port {port} open between the two machines?"
    )]
    Unreachable {
        /// Where it was dialled.
        addr: String,
        /// Its UDP port.
        port: u16,
        /// How long this node waited.
        secs: u64,
        /// The peer.
        peer: String,
    },
    /// The peer's host name has no address.
    #[error(
        "cannot find the address of {host} ({cause}): check the name with `poa-node peer list`, or pin the peer by IP address"
    )]
    Resolve {
        /// The name.
        host: String,
        /// What the resolver said.
        cause: String,
    },
    /// An established connection went silent.
    #[error("{peer} stopped answering for {secs} s, and the connection was given up")]
    Silent {
        /// The peer.
        peer: String,
        /// The idle timeout.
        secs: u64,
    },
    /// The peer restarted while connected (it answered with a stateless reset).
    #[error("{peer} restarted while connected; it is synced again on the next connection")]
    Restarted {
        /// The peer.
        peer: String,
    },
}

/// How often a connection writes that its peer is in contact, and the traffic since, to the
/// store.
const CONTACT_EVERY: Duration = Duration::from_secs(5);

/// How long a dial waits for the handshake to complete.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a peer is named in messages: its name and short id, or only the short id when it was
/// pinned without a name.
pub fn peer_label(p: &Peer) -> String {
    let short = p.node_id.short();
    if p.name == short {
        format!("node {short}")
    } else {
        format!("{} ({short})", p.name)
    }
}

fn is_crypto(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

impl SyncError {
    /// Turns what QUIC and TLS said into what happened and what to do, now that the peer,
    /// its address and the key that answered there are known.
    fn explain(self, peer: &Peer, addr: &str, presented: Option<NodeId>, us: NodeId) -> SyncError {
        use quinn::ConnectionError as C;
        let label = || peer_label(peer);
        let conn = match &self {
            SyncError::Connection(c) => c,
            _ => return self,
        };
        match conn {
            C::ConnectionClosed(close) if is_crypto(close.error_code) => {
                SyncError::NotPinnedThere { peer: label(), us }
            }
            C::TransportError(t) if is_crypto(t.code) => match presented {
                Some(p) if p == peer.node_id => self,
                Some(p) => SyncError::WrongNode {
                    addr: addr.to_string(),
                    presented: p.to_string(),
                    peer: label(),
                },
                None => SyncError::WrongNode {
                    addr: addr.to_string(),
                    presented: "not a poa-node (its certificate holds no ed25519 key)".into(),
                    peer: label(),
                },
            },
            C::TimedOut => SyncError::Silent {
                peer: label(),
                secs: transport::IDLE_TIMEOUT.as_secs(),
            },
            C::Reset => SyncError::Restarted { peer: label() },
            _ => self,
        }
    }

    /// Whether the error is only the peer ending the connection normally: it closed it with
    /// code 0 (`serve` stopping, a round done).
    fn is_normal_close(&self) -> bool {
        matches!(self, SyncError::Connection(quinn::ConnectionError::ApplicationClosed(c)) if u64::from(c.error_code) == 0)
    }
}

/// Settings of the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Time between anti-entropy summaries on an idle connection.
    pub anti_entropy: Duration,
    /// How often to look for writes made by other processes (the CLI while serving).
    pub poll: Duration,
    /// Longest wait for a peer during a one-shot round.
    pub round_timeout: Duration,
    /// Longest time one frame may take to arrive once it has begun.
    pub frame_deadline: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            anti_entropy: Duration::from_secs(60),
            poll: Duration::from_millis(250),
            round_timeout: Duration::from_secs(120),
            frame_deadline: Duration::from_secs(30),
        }
    }
}

/// The most connections one peer may have open at once.
pub const MAX_CONNECTIONS_PER_PEER: usize = 4;
/// What connection tasks are told about the node.
#[derive(Clone, Debug)]
enum Notice {
    /// A document changed here.
    Doc(DocId),
    /// The keys this node trusts changed.
    Trust,
}

/// The engine: a node, shared by every connection task.
pub struct Engine {
    node: Mutex<Node>,
    key: NodeKey,
    hello: Hello,
    pins: Pins,
    changed: broadcast::Sender<Notice>,
    versions: Mutex<HashMap<DocId, i64>>,
    trust: Mutex<poa_protocol::authority::Trust>,
    revealed: Mutex<HashMap<NodeId, BTreeSet<DocId>>>,
    connected: Mutex<HashMap<NodeId, usize>>,
    parked: Mutex<Parked>,
    config: EngineConfig,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("node", &self.hello.node)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock would be a bug; the data is still consistent because every
    // write is a committed SQLite transaction, so keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// Wraps a node.
    pub fn new(node: Node, config: EngineConfig) -> Result<Arc<Engine>, SyncError> {
        let key = NodeKey::from_seed(&node.home.key.seed());
        let hello = crate::host::hello(&node);
        let versions = node.store.versions()?.into_iter().collect();
        let trust = Mutex::new(node.store.trust());
        let (changed, _) = broadcast::channel(1024);
        let engine = Engine {
            node: Mutex::new(node),
            key,
            hello,
            pins: Pins::default(),
            changed,
            versions: Mutex::new(versions),
            trust,
            revealed: Mutex::new(HashMap::new()),
            connected: Mutex::new(HashMap::new()),
            parked: Mutex::new(Parked::default()),
            config,
        };
        engine.refresh_pins()?;
        Ok(Arc::new(engine))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.hello.node
    }

    /// Runs `f` on the node (the same code paths as the CLI), then pushes whatever it changed to
    /// connected peers.
    pub fn with_node<T>(&self, f: impl FnOnce(&mut Node) -> T) -> T {
        let mut node = lock(&self.node);
        let out = f(&mut node);
        if let Err(e) = self.notify_changes(&node) {
            tracing::warn!(cause = %e, "could not check for changed documents");
        }
        let _ = self.refresh_pins_with(&node);
        out
    }

    /// Reads through the node (the dashboard's path): no write, so nothing to push.
    pub fn read<T>(&self, f: impl FnOnce(&Node) -> T) -> T {
        f(&lock(&self.node))
    }

    /// The documents named to `peer` in anything this node sent it.
    pub fn revealed_to(&self, peer: &NodeId) -> BTreeSet<DocId> {
        lock(&self.revealed).get(peer).cloned().unwrap_or_default()
    }

    /// How many changes wait for dependencies, over all documents.
    pub fn parked(&self) -> usize {
        lock(&self.parked).len()
    }

    /// Peers with a live connection.
    pub fn connected(&self) -> BTreeSet<NodeId> {
        lock(&self.connected).keys().copied().collect()
    }

    fn refresh_pins(&self) -> Result<(), StoreError> {
        let node = lock(&self.node);
        self.refresh_pins_with(&node)
    }

    fn refresh_pins_with(&self, node: &Node) -> Result<(), StoreError> {
        let pinned: HashSet<NodeId> = node.store.peers()?.into_iter().map(|p| p.node_id).collect();
        if let Ok(mut pins) = self.pins.write() {
            *pins = pinned;
        }
        Ok(())
    }

    /// Broadcasts every document whose version moved since last looked at.
    fn notify_changes(&self, node: &Node) -> Result<(), StoreError> {
        // Keys learnt here, or by another process (the CLI's `trust` while serving).
        node.store.refresh_trust()?;
        let now_trusted = node.store.trust();
        {
            let mut t = lock(&self.trust);
            if *t != now_trusted {
                *t = now_trusted;
                let _ = self.changed.send(Notice::Trust);
            }
        }
        let now = node.store.versions()?;
        let mut known = lock(&self.versions);
        for (doc, v) in now {
            if known.get(&doc) != Some(&v) {
                known.insert(doc.clone(), v);
                let _ = self.changed.send(Notice::Doc(doc));
            }
        }
        Ok(())
    }

    /// Runs `f` with the session's view of the node, then passes on what it changed: keys
    /// trusted (every connection relists) and documents that took changes (already pushed by
    /// the session's events, so not announced again by the version poll).
    fn with_host<R>(&self, f: impl FnOnce(&mut NodeHost<'_>) -> R) -> R {
        let mut node = lock(&self.node);
        let mut parked = lock(&self.parked);
        let mut events = HostEvents::default();
        let out = f(&mut NodeHost {
            node: &mut node,
            parked: &mut parked,
            events: &mut events,
        });
        crate::metrics::metrics()
            .changes_parked
            .set(parked.len() as i64);
        drop(parked);
        if events.trust_changed {
            let _ = self.changed.send(Notice::Trust);
        }
        if !events.accepted.is_empty()
            && let Ok(versions) = node.store.versions()
        {
            let mut known = lock(&self.versions);
            for (d, v) in versions {
                if events.accepted.contains(&d) {
                    known.insert(d, v);
                }
            }
        }
        out
    }
}

/// Milliseconds on the engine's monotonic clock.
fn now_ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

fn session_config(config: &EngineConfig) -> SessionConfig {
    SessionConfig {
        anti_entropy_ms: config.anti_entropy.as_millis() as u64,
        ..SessionConfig::default()
    }
}

/// Reads frames from the stream into the channel: the buffer grows only with bytes that
/// arrived, and a frame that has begun must be complete within the deadline.
async fn read_frames(
    mut recv: quinn::RecvStream,
    tx: mpsc::Sender<Result<Message, SyncError>>,
    received: Arc<std::sync::atomic::AtomicU64>,
    deadline: Duration,
) {
    let mut buf = FrameBuffer::default();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut partial_since: Option<Instant> = None;
    loop {
        // Hand over every complete frame first.
        loop {
            match buf.next_message() {
                Ok(Some(m)) => {
                    crate::metrics::metrics()
                        .frames
                        .get_or_create(&crate::metrics::direction(true))
                        .inc();
                    if tx.send(Ok(m)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(SyncError::Protocol(e.to_string()))).await;
                    return;
                }
            }
        }
        if buf.buffered() > 4 + MAX_FRAME {
            let _ = tx
                .send(Err(SyncError::Protocol(
                    "frame larger than the maximum".into(),
                )))
                .await;
            return;
        }
        partial_since = match (buf.buffered(), partial_since) {
            (0, _) => None,
            (_, Some(t)) => Some(t),
            (_, None) => Some(Instant::now()),
        };
        let read = match partial_since {
            Some(t) => {
                let left = deadline.saturating_sub(t.elapsed());
                match tokio::time::timeout(left, recv.read(&mut chunk)).await {
                    Ok(r) => r,
                    Err(_) => {
                        let _ = tx
                            .send(Err(SyncError::Protocol(format!(
                                "a frame was not completed within {} s",
                                deadline.as_secs()
                            ))))
                            .await;
                        return;
                    }
                }
            }
            None => recv.read(&mut chunk).await,
        };
        match read {
            Ok(Some(n)) => {
                received.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                crate::metrics::metrics()
                    .bytes
                    .get_or_create(&crate::metrics::direction(true))
                    .inc_by(n as u64);
                buf.push(&chunk[..n]);
            }
            Ok(None) => {
                if buf.buffered() > 0 {
                    let _ = tx
                        .send(Err(SyncError::Protocol(
                            "stream ended inside a frame".into(),
                        )))
                        .await;
                }
                return;
            }
            Err(quinn::ReadError::ConnectionLost(e)) => {
                let _ = tx.send(Err(SyncError::Connection(e))).await;
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(SyncError::Closed(e.to_string()))).await;
                return;
            }
        }
    }
}

/// Counts a live connection of a peer while it lives; a serving connection also records the
/// link in the store, for `status`.
struct ConnSlot<'a> {
    engine: &'a Engine,
    peer: NodeId,
    link: bool,
}

impl Drop for ConnSlot<'_> {
    fn drop(&mut self) {
        let last = {
            let mut connected = lock(&self.engine.connected);
            match connected.get_mut(&self.peer) {
                Some(n) => {
                    *n -= 1;
                    let last = *n == 0;
                    if last {
                        connected.remove(&self.peer);
                    }
                    last
                }
                None => false,
            }
        };
        crate::metrics::metrics().connections_open.dec();
        if last && self.link {
            let node = lock(&self.engine.node);
            let _ = node.store.set_peer_link(&self.peer, None);
        }
    }
}

/// What a connection has exchanged, from its byte counters and its session's report.
fn traffic_of(
    report: &SyncReport,
    sent: &std::sync::atomic::AtomicU64,
    received: &std::sync::atomic::AtomicU64,
) -> Traffic {
    use std::sync::atomic::Ordering::Relaxed;
    Traffic {
        bytes_sent: sent.load(Relaxed),
        bytes_received: received.load(Relaxed),
        changes_sent: report.sent.values().sum::<usize>() as u64,
        changes_received: report.accepted.values().sum::<usize>() as u64,
    }
}

/// Runs one connection until the round completes (one-shot) or it closes (serving).
async fn drive(
    engine: Arc<Engine>,
    conn: quinn::Connection,
    initiator: bool,
    mode: Mode,
    mut shutdown: watch::Receiver<bool>,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let peer = transport::peer_id(&conn)
        .ok_or_else(|| SyncError::Protocol("peer presented no ed25519 certificate".into()))?;
    // Every line names the peer as a field (a span entered here would be wrong across awaits).
    let who = peer.short();
    let direction = if initiator { "out" } else { "in" };
    let first = {
        let mut connected = lock(&engine.connected);
        let n = connected.entry(peer).or_default();
        if *n >= MAX_CONNECTIONS_PER_PEER {
            drop(connected);
            let why = format!("more than {MAX_CONNECTIONS_PER_PEER} connections from one peer");
            conn.close(2u32.into(), why.as_bytes());
            return Err(SyncError::Protocol(why));
        }
        *n += 1;
        *n == 1
    };
    let link = mode == Mode::Stay;
    let m = crate::metrics::metrics();
    m.connections
        .get_or_create(&crate::metrics::direction(!initiator))
        .inc();
    m.connections_open.inc();
    let _slot = ConnSlot {
        engine: &engine,
        peer,
        link,
    };
    tracing::info!(peer = %who, direction, "connected");
    if link && first {
        let node = lock(&engine.node);
        node.store.set_peer_link(&peer, Some(now_secs()))?;
    }
    let (mut send, recv) = if initiator {
        conn.open_bi().await?
    } else {
        conn.accept_bi().await?
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sent_by_writer = sent.clone();
    let writer = tokio::spawn(async move {
        let mut written = 0u64;
        while let Some(msg) = rx.recv().await {
            let last = matches!(msg, Message::Goodbye { .. });
            let frame = match wire::encode_frame(&msg) {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(cause = %e, "could not encode a message");
                    continue;
                }
            };
            if send.write_all(&frame).await.is_err() {
                break;
            }
            written += frame.len() as u64;
            let m = crate::metrics::metrics();
            m.frames
                .get_or_create(&crate::metrics::direction(false))
                .inc();
            m.bytes
                .get_or_create(&crate::metrics::direction(false))
                .inc_by(frame.len() as u64);
            sent_by_writer.fetch_add(frame.len() as u64, std::sync::atomic::Ordering::Relaxed);
            if last {
                break;
            }
        }
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
        written
    });
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (in_tx, mut incoming) = mpsc::channel::<Result<Message, SyncError>>(16);
    let reader = tokio::spawn(read_frames(
        recv,
        in_tx,
        received.clone(),
        engine.config.frame_deadline,
    ));
    let clock = Instant::now();
    // Subscribe before the session states its first summary: a document another connection
    // takes after that summary was computed must reach this session as a notice, or the peer
    // would hear of it only at the next anti-entropy round (an hour by default).
    let mut changes = engine.changed.subscribe();
    let mut session = {
        let hello = crate::host::hello(&lock(&engine.node));
        let mut s = Session::new(peer, hello, mode, session_config(&engine.config));
        engine.with_host(|host| s.start(host, now_ms(clock)));
        s
    };
    let flush = |s: &mut Session, tx: &mpsc::UnboundedSender<Message>| {
        while let Some(m) = s.poll_transmit() {
            let _ = tx.send(m);
        }
    };
    flush(&mut session, &tx);
    // What has been added to the peer's totals in the store: each completed round adds what
    // went over the connection since, and says when the peer was last in contact.
    let mut counted = Traffic::default();
    let mut contact_announced = false;
    let mut heard = false;
    let mut contact_tick = tokio::time::interval(CONTACT_EVERY);
    contact_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let count = |session: &Session, counted: &mut Traffic| {
        let now = traffic_of(session.report(), &sent, &received);
        let node = lock(&engine.node);
        let _ = node.store.add_peer_traffic(&peer, &now.since(counted));
        *counted = now;
    };
    let deadline = tokio::time::sleep(engine.config.round_timeout);
    tokio::pin!(deadline);
    let outcome: Result<(), SyncError> = async {
        loop {
            let events: Vec<Event> = std::iter::from_fn(|| session.poll_event()).collect();
            for e in events {
                match e {
                    Event::Accepted { doc, count } => {
                        tracing::info!(peer = %who, doc = %doc, count, "took changes");
                        let _ = engine.changed.send(Notice::Doc(doc));
                    }
                    Event::Rejected { doc, count, reason } => {
                        tracing::warn!(peer = %who, doc = %doc, count, cause = %reason, "rejected changes from peer");
                    }
                    Event::Closed(reason) => {
                        tracing::debug!(peer = %who, reason, "peer said goodbye");
                        if mode == Mode::OneShot && initiator && !session.is_done() {
                            return Err(SyncError::Closed(reason));
                        }
                    }
                    Event::EgressRefused(doc) => {
                        tracing::error!(peer = %who, doc = %doc, "refused to name a document the peer may not read");
                    }
                    Event::RoundComplete => {
                        crate::metrics::metrics().sync_rounds.inc();
                        count(&session, &mut counted);
                        let node = lock(&engine.node);
                        let _ = node.store.peer_outcome(&peer, now_secs(), None);
                    }
                }
            }
            if session.is_closed() {
                return Ok(());
            }
            if mode == Mode::OneShot && initiator && session.is_done() {
                session.close("sync round complete");
                flush(&mut session, &tx);
                return Ok(());
            }
            let wake = session
                .poll_timeout()
                .map(|at| Duration::from_millis(at.saturating_sub(now_ms(clock))))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                msg = incoming.recv() => match msg {
                    Some(Ok(m)) => {
                        engine.with_host(|host| session.handle(host, m, now_ms(clock)))?;
                        // The peer is in contact: say so in the store at once the first
                        // time, then with the next tick, for `status`.
                        heard = true;
                        if !contact_announced {
                            contact_announced = true;
                            heard = false;
                            let node = lock(&engine.node);
                            let _ = node.store.peer_outcome(&peer, now_secs(), None);
                        }
                    }
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                },
                doc = changes.recv(), if mode == Mode::Stay => {
                    let closed = engine.with_host(|host| {
                        match doc {
                            Ok(Notice::Doc(doc)) => {
                                session.push(host, &doc);
                                // A pool's audience decides who reads its members' documents.
                                if matches!(doc, DocId::Pool(_)) {
                                    session.refresh(host);
                                }
                            }
                            Ok(Notice::Trust) => session.trust_changed(host),
                            Err(broadcast::error::RecvError::Lagged(_)) => session.refresh(host),
                            Err(broadcast::error::RecvError::Closed) => return true,
                        }
                        false
                    });
                    if closed {
                        return Ok(());
                    }
                }
                _ = tokio::time::sleep(wake) => {
                    engine.with_host(|host| session.handle_timeout(host, now_ms(clock)));
                }
                _ = contact_tick.tick() => {
                    count(&session, &mut counted);
                    if heard {
                        heard = false;
                        let node = lock(&engine.node);
                        let _ = node.store.peer_outcome(&peer, now_secs(), None);
                    }
                }
                _ = shutdown.changed() => {
                    session.close("node shutting down");
                    flush(&mut session, &tx);
                    return Ok(());
                }
                _ = &mut deadline, if mode == Mode::OneShot => {
                    return Err(SyncError::Timeout(engine.config.round_timeout));
                }
            }
            flush(&mut session, &tx);
        }
    }
    .await;
    // A serving peer that ends the connection normally (it is stopping) is no error.
    let outcome = match outcome {
        Err(e) if mode == Mode::Stay && e.is_normal_close() => Ok(()),
        other => other,
    };
    if let Err(e) = &outcome {
        // Tell the peer why, then close: a peer that breaks the protocol is disconnected with a
        // reason, and this node goes on serving the others.
        tracing::warn!(peer = %who, cause = %e, "closing connection");
        session.close(&e.to_string());
        flush(&mut session, &tx);
    }
    lock(&engine.revealed)
        .entry(peer)
        .or_default()
        .extend(session.revealed().iter().cloned());
    let mut report = session.report().clone();
    crate::metrics::metrics()
        .sync_round_trips
        .inc_by(report.round_trips);
    drop(tx);
    reader.abort();
    report.bytes_received = received.load(std::sync::atomic::Ordering::Relaxed);
    report.bytes_sent = writer.await.unwrap_or(0);
    report.millis = started.elapsed().as_millis() as u64;
    count(&session, &mut counted);
    let changes_sent: usize = report.sent.values().sum();
    let changes_received: usize = report.accepted.values().sum();
    let what = if mode == Mode::OneShot {
        "sync round ended"
    } else {
        "connection ended"
    };
    tracing::info!(
        peer = %who,
        direction,
        ok = outcome.is_ok(),
        changes_sent,
        changes_received,
        bytes_sent = report.bytes_sent,
        bytes_received = report.bytes_received,
        round_trips = report.round_trips,
        millis = report.millis,
        "{what}"
    );
    {
        let node = lock(&engine.node);
        let err = outcome.as_ref().err().map(|e| e.to_string());
        node.store.peer_outcome(&peer, now_secs(), err.as_deref())?;
    }
    match outcome {
        Ok(()) => {
            if initiator && mode == Mode::OneShot {
                conn.close(0u32.into(), b"done");
            }
            Ok(report)
        }
        Err(e) => {
            conn.close(1u32.into(), e.to_string().as_bytes());
            Err(e)
        }
    }
}

/// Finds the address of `addr` (HOST:PORT, HOST an IP address or a DNS name).
async fn resolve(addr: &str) -> Result<SocketAddr, SyncError> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_string();
    match tokio::net::lookup_host(addr).await {
        // Endpoints bind an IPv4 socket: prefer the name's IPv4 address (`localhost` gives
        // ::1 first on many systems).
        Ok(found) => {
            let found: Vec<SocketAddr> = found.collect();
            found
                .iter()
                .find(|a| a.is_ipv4())
                .or(found.first())
                .copied()
                .ok_or_else(|| SyncError::Resolve {
                    host,
                    cause: "no address".into(),
                })
        }
        Err(e) => Err(SyncError::Resolve {
            host,
            cause: e.to_string(),
        }),
    }
}

/// Dials one peer and runs one round with it.
pub async fn sync_with(
    engine: &Arc<Engine>,
    endpoint: &quinn::Endpoint,
    peer: &Peer,
) -> Result<SyncReport, SyncError> {
    let (_stop, never) = watch::channel(false);
    dial(
        engine.clone(),
        endpoint.clone(),
        peer.clone(),
        Mode::OneShot,
        never,
    )
    .await
}

/// One round with every known peer (or just `only`), for `poa-node sync`.
pub async fn sync_round(
    engine: &Arc<Engine>,
    only: Option<NodeId>,
) -> Result<Vec<(Peer, Result<SyncReport, SyncError>)>, SyncError> {
    let peers: Vec<Peer> = {
        let node = lock(&engine.node);
        node.store.peers()?
    };
    let endpoint = transport::endpoint(
        SocketAddr::from(([0, 0, 0, 0], 0)),
        &engine.key,
        engine.pins.clone(),
        transport::Role::OneShot,
    )?;
    // Every peer at once: a slow or vanished peer costs its own timeout, not everyone's.
    let mut rounds = tokio::task::JoinSet::new();
    for (i, peer) in peers
        .into_iter()
        .filter(|p| only.is_none_or(|id| id == p.node_id) && p.addr.is_some())
        .enumerate()
    {
        let engine = engine.clone();
        let endpoint = endpoint.clone();
        rounds.spawn(async move {
            let r = sync_with(&engine, &endpoint, &peer).await;
            (i, peer, r)
        });
    }
    let mut out = Vec::new();
    while let Some(done) = rounds.join_next().await {
        match done {
            Ok(r) => out.push(r),
            Err(e) => tracing::error!(cause = %e, "a sync task failed"),
        }
    }
    out.sort_by_key(|(i, _, _)| *i);
    endpoint.close(0u32.into(), b"done");
    endpoint.wait_idle().await;
    Ok(out.into_iter().map(|(_, p, r)| (p, r)).collect())
}

/// A running node: its engine, its address, and the handle that stops it.
#[derive(Debug)]
pub struct Server {
    engine: Arc<Engine>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops gracefully: says goodbye to every peer and waits for the tasks to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts serving: listens on `listen`, keeps connections to every peer with an address,
/// pushes changes, repairs periodically, and picks up writes made by other processes.
pub async fn serve(engine: Arc<Engine>, listen: SocketAddr) -> Result<Server, SyncError> {
    let endpoint = transport::endpoint(
        listen,
        &engine.key,
        engine.pins.clone(),
        transport::Role::Serve,
    )?;
    // No connection is live yet, whatever an earlier run that crashed left written.
    lock(&engine.node).store.clear_peer_links()?;
    let addr = endpoint
        .local_addr()
        .map_err(|source| TransportError::Bind {
            addr: listen,
            source,
        })?;
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run_server(engine.clone(), endpoint, stop_rx));
    tracing::info!(%addr, node = %engine.id(), "serving");
    Ok(Server {
        engine,
        addr,
        stop,
        task,
    })
}

async fn run_server(
    engine: Arc<Engine>,
    endpoint: quinn::Endpoint,
    mut stop: watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    let mut backoff: HashMap<NodeId, (Instant, Duration)> = HashMap::new();
    let mut poll = tokio::time::interval(engine.config.poll);
    let mut last_version = None;
    let mut lapse_checked: Option<Instant> = None;
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let engine = engine.clone();
                let stop = stop.clone();
                tasks.spawn(async move {
                    match incoming.await {
                        Ok(conn) => {
                            if let Err(e) = drive(engine, conn, false, Mode::Stay, stop).await {
                                tracing::debug!(cause = %e, "connection ended");
                            }
                        }
                        Err(e) => {
                            // This node's own refusals are counted by their cause already.
                            let ours = matches!(&e, quinn::ConnectionError::TransportError(t) if is_crypto(t.code));
                            if ours {
                                // Logged, with the key and the cause, by the verifier.
                                tracing::debug!(cause = %e, "refused a connection");
                            } else {
                                crate::metrics::metrics()
                                    .handshakes_refused
                                    .get_or_create(&crate::metrics::kind("cause", "failed"))
                                    .inc();
                                tracing::warn!(cause = %e, "a connection failed in its handshake");
                            }
                        }
                    }
                });
            }
            _ = poll.tick() => {
                // Writes by other processes (the CLI while serving), and pins added since.
                let version = {
                    let node = lock(&engine.node);
                    node.store.data_version().ok()
                };
                if version != last_version {
                    last_version = version;
                    let node = lock(&engine.node);
                    let _ = engine.notify_changes(&node);
                    let _ = engine.refresh_pins_with(&node);
                }
                // Expired delegations are revoked by the key holder, once a minute at most.
                if lapse_checked.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    lapse_checked = Some(Instant::now());
                    match engine.with_node(|n| n.lapse_expired()) {
                        Ok(lapsed) if !lapsed.is_empty() => {
                            tracing::info!(count = lapsed.len(), "revoked expired delegations");
                        }
                        Err(e) => tracing::warn!(cause = %e, "could not revoke expired delegations"),
                        _ => {}
                    }
                }
                let peers = {
                    let node = lock(&engine.node);
                    node.store.peers().unwrap_or_default()
                };
                let connected = engine.connected();
                for peer in peers {
                    if peer.addr.is_none() || connected.contains(&peer.node_id) {
                        continue;
                    }
                    let now = Instant::now();
                    let (next, wait) = backoff.get(&peer.node_id).copied().unwrap_or((now, Duration::from_millis(500)));
                    if now < next {
                        continue;
                    }
                    backoff.insert(peer.node_id, (now + wait, (wait * 2).min(Duration::from_secs(60))));
                    let engine = engine.clone();
                    let endpoint = endpoint.clone();
                    let stop = stop.clone();
                    tasks.spawn(async move {
                        if let Err(e) = dial(engine, endpoint, peer.clone(), Mode::Stay, stop).await {
                            tracing::info!(peer = %peer.node_id.short(), name = %peer.name, cause = %e, "could not sync with peer");
                        }
                    });
                }
                // A live connection resets its peer's backoff.
                for id in &connected {
                    backoff.remove(id);
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    // Every connection task saw the stop too and says goodbye; let them finish before the
    // endpoint closes under them.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    let _ = lock(&engine.node).store.clear_peer_links();
    endpoint.close(0u32.into(), b"shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
}

async fn dial(
    engine: Arc<Engine>,
    endpoint: quinn::Endpoint,
    peer: Peer,
    mode: Mode,
    stop: watch::Receiver<bool>,
) -> Result<SyncReport, SyncError> {
    let role = match mode {
        Mode::Stay => transport::Role::Serve,
        Mode::OneShot => transport::Role::OneShot,
    };
    let addr_text = peer.addr.clone().unwrap_or_default();
    let mut presented = None;
    let result = async {
        if peer.addr.is_none() {
            return Err(SyncError::Protocol(format!(
                "{} has no address: pin it with `poa-node peer add NODEID@HOST:PORT`",
                peer_label(&peer)
            )));
        }
        let addr = resolve(&addr_text).await?;
        let (cfg, seen) = transport::client_config(&engine.key, peer.node_id, role)?;
        let connecting = endpoint.connect_with(cfg, addr, "poa-node")?;
        let handshake = tokio::time::timeout(CONNECT_TIMEOUT, connecting).await;
        presented = seen.lock().ok().and_then(|p| *p);
        let conn = match handshake {
            Ok(Ok(c)) => c,
            // QUIC's own idle timeout may end the handshake first: the same silence.
            Ok(Err(e)) if !matches!(e, quinn::ConnectionError::TimedOut) => return Err(e.into()),
            _ => {
                return Err(SyncError::Unreachable {
                    addr: addr_text.clone(),
                    port: addr.port(),
                    secs: CONNECT_TIMEOUT.as_secs(),
                    peer: peer_label(&peer),
                });
            }
        };
        drive(engine.clone(), conn, true, mode, stop).await
    }
    .await
    .map_err(|e| e.explain(&peer, &addr_text, presented, engine.id()));
    if let Err(e) = &result {
        let node = lock(&engine.node);
        let _ = node
            .store
            .peer_outcome(&peer.node_id, now_secs(), Some(&e.to_string()));
    }
    result
}
