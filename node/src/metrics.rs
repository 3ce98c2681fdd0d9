//! The node's counters, served as Prometheus text on the dashboard's `/metrics`.
//!
//! One set per process (a production node is one process), kept by the `prometheus-client`
//! crate. Labels only ever take a few fixed values (a direction, a refusal's kind), never text a
//! peer chose, so a peer cannot grow the set of series.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A label with one fixed value.
type Label = [(&'static str, &'static str); 1];

/// The counters.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Connections established, by direction (`in`, `out`).
    pub connections: Family<Label, Counter>,
    /// Connections open now.
    pub connections_open: Gauge,
    /// Handshakes refused, by cause (`not_pinned`: a client whose key is not pinned here;
    /// `wrong_key`: a server that is not the node dialled; `failed`: any other failure).
    pub handshakes_refused: Family<Label, Counter>,
    /// Frames, by direction.
    pub frames: Family<Label, Counter>,
    /// Bytes of frames, by direction.
    pub bytes: Family<Label, Counter>,
    /// Changes taken from peers.
    pub changes_accepted: Counter,
    /// Changes refused, by the refusal's kind.
    pub changes_rejected: Family<Label, Counter>,
    /// Changes waiting for their dependencies now.
    pub changes_parked: Gauge,
    /// Sync rounds completed.
    pub sync_rounds: Counter,
    /// Round trips waited for in sync rounds.
    pub sync_round_trips: Counter,
    /// Time spent judging changes from peers (the gate and what it stores).
    pub gate_seconds: Histogram,
    /// Time SQLite took to commit a write transaction.
    pub sqlite_commit_seconds: Histogram,
    /// Documents held (set when scraped).
    pub documents: Gauge,
    /// Changes held over all documents (set when scraped).
    pub changes_held: Gauge,
}

fn seconds() -> Histogram {
    // 50 µs to about 13 s.
    Histogram::new(exponential_buckets(0.000_05, 4.0, 10))
}

impl Metrics {
    fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("poa"),
            connections: Family::default(),
            connections_open: Gauge::default(),
            handshakes_refused: Family::default(),
            frames: Family::default(),
            bytes: Family::default(),
            changes_accepted: Counter::default(),
            changes_rejected: Family::default(),
            changes_parked: Gauge::default(),
            sync_rounds: Counter::default(),
            sync_round_trips: Counter::default(),
            gate_seconds: seconds(),
            sqlite_commit_seconds: seconds(),
            documents: Gauge::default(),
            changes_held: Gauge::default(),
        };
        let r = &mut m.registry;
        r.register(
            "connections",
            "Connections established with peers, by direction",
            m.connections.clone(),
        );
        r.register(
            "connections_open",
            "Connections open now",
            m.connections_open.clone(),
        );
        r.register(
            "handshakes_refused",
            "Handshakes refused, by cause",
            m.handshakes_refused.clone(),
        );
        r.register("frames", "Protocol frames, by direction", m.frames.clone());
        r.register(
            "bytes",
            "Bytes of protocol frames, by direction",
            m.bytes.clone(),
        );
        r.register(
            "changes_accepted",
            "Changes taken from peers",
            m.changes_accepted.clone(),
        );
        r.register(
            "changes_rejected",
            "Changes refused, by the kind of refusal",
            m.changes_rejected.clone(),
        );
        r.register(
            "changes_parked",
            "Changes waiting for their dependencies",
            m.changes_parked.clone(),
        );
        r.register(
            "sync_rounds",
            "Sync rounds completed",
            m.sync_rounds.clone(),
        );
        r.register(
            "sync_round_trips",
            "Round trips waited for in sync rounds",
            m.sync_round_trips.clone(),
        );
        r.register(
            "gate_seconds",
            "Time spent judging and storing changes from peers",
            m.gate_seconds.clone(),
        );
        r.register(
            "sqlite_commit_seconds",
            "Time SQLite took to commit a write transaction",
            m.sqlite_commit_seconds.clone(),
        );
        r.register("documents", "Documents held", m.documents.clone());
        r.register(
            "changes_held",
            "Changes held over all documents",
            m.changes_held.clone(),
        );
        m
    }

    /// The text exposition (OpenMetrics, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The process's counters.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// `[("direction", "in")]` or `out`.
pub fn direction(incoming: bool) -> Label {
    [("direction", if incoming { "in" } else { "out" })]
}

/// A label of one kind.
pub fn kind(name: &'static str, value: &'static str) -> Label {
    [(name, value)]
}

/// Records a duration in a histogram.
pub fn observe(h: &Histogram, d: Duration) {
    h.observe(d.as_secs_f64());
}
