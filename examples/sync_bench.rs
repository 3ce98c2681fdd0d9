//! Sync benchmark: prints a table, asserts nothing about time.
//!
//! For N shared documents (1, 100, 1000 by default; pass other counts as arguments) it measures,
//! between real nodes (own SQLite file, QUIC with mutual TLS on loopback, every change signed):
//!
//! - a fresh peer brought up to date in one one-shot round: bytes both ways and time;
//! - a second round right after, between peers already in sync: round trips and bytes;
//!
//! and, for the same documents, plain Automerge sync (`automerge::sync`, taking turns) into empty
//! documents over a plain TCP stream on loopback with 8-byte frames, no TLS and no signatures:
//! first into empty documents, then again with the sync states both sides kept. The baseline's
//! documents are real Automerge documents made from the very changes the source holds (the
//! Automerge changes its ledgers derive, genesis included), so both sides sync the same content.
//!
//! Bytes are what the sync protocol writes on its stream (frames with their length prefixes),
//! both ways, counted by the side that dials. QUIC packet headers, TLS records, the handshake and
//! ACKs are not counted, nor TCP/IP headers for the baseline.
//!
//! Run: `cargo run --release -p poa-examples --example sync_bench`

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use poa_node::federation::Member;
use poa_node::home::{Home, InitOptions};
use poa_node::node::{now_secs, today};
use poa_node::sync::{Engine, EngineConfig, SyncReport, sync_round};
use poa_node::{Node, NodeError};
use poa_protocol::automerge::sync::{self, SyncDoc};
use poa_protocol::automerge::{Automerge, ChangeHash};
use poa_protocol::change::SignedChange;
use poa_protocol::doc::{DocId, PoolId};
use poa_protocol::model::{Area, Direction, Indicator, IndicatorKind, Target};
use poa_protocol::pool::{Charter, Observer};
use poa_protocol::wire::{self, Bloom, DocHeads, DocSync, Message};
use poa_protocol::{BodyKind, NodeId, Principal, StateCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Document counts measured when no arguments are given.
const SIZES: [usize; 3] = [1, 100, 1000];
/// Signed changes per document (each adds one pooled target record), besides the genesis.
const CHANGES_PER_DOC: usize = 3;
/// Goal: a no-op sync of 1000 documents stays under this many bytes...
const NOOP_GOAL_BYTES: u64 = 4096;
/// ...in this many round trips.
const NOOP_GOAL_RTS: u64 = 1;
/// Goal: a fresh peer costs at most this multiple of the plain baseline's bytes.
const FRESH_GOAL_RATIO: f64 = 1.5;

/// One size's figures.
#[derive(Debug)]
struct Row {
    n: usize,
    changes: usize,
    ours_fresh: SyncReport,
    ours_fresh_wall: Duration,
    /// CPU time of the whole process (both nodes) during our fresh round, if known.
    ours_fresh_cpu: Option<Duration>,
    ours_noop: SyncReport,
    plain_fresh: PlainReport,
    plain_noop: PlainReport,
    breakdown: Breakdown,
}

/// Sizes of the parts of our protocol's messages, computed with the real wire encoding.
///
/// Protocol 2 no longer wraps Automerge sync messages: a `Sync` frame is a `DocSync` carrying
/// the document's heads, shared heads, a Bloom filter, hashes asked for and whole signed
/// changes. So the old "envelope around an empty Automerge message" becomes a `DocSync` with
/// the document's heads and nothing else, and a new figure gives one document's changes sent
/// whole in one `DocSync` frame.
#[derive(Debug)]
struct Breakdown {
    /// One `Offers` frame listing all N documents with their heads.
    offers_frame: u64,
    /// What the signatures of one document's changes add to a `DocSync` carrying them.
    signatures_per_doc: u64,
    /// A `DocSync` frame with the document's heads only (empty shared heads, Bloom, need and
    /// changes): frame, tag, document name, heads, lengths.
    envelope_frame: u64,
    /// A `DocSync` frame carrying all of one document's signed changes (heads, no Bloom).
    changes_frame: u64,
    /// One `SyncIdle` frame.
    idle_frame: u64,
}

/// What one plain sync connection exchanged, counted by the side that dials.
#[derive(Debug, Default)]
struct PlainReport {
    bytes_sent: u64,
    bytes_received: u64,
    /// Automerge sync message bytes alone, both ways, without the 8-byte frames.
    payload: u64,
    round_trips: u64,
    millis: f64,
    /// CPU time of the whole process (both sides) during the connection, if known.
    cpu: Option<Duration>,
}

impl PlainReport {
    fn bytes(&self) -> u64 {
        self.bytes_sent + self.bytes_received
    }
}

fn total(r: &SyncReport) -> u64 {
    r.bytes_sent + r.bytes_received
}

fn bench_config() -> EngineConfig {
    EngineConfig {
        // No repair summaries during a measured round.
        anti_entropy: Duration::from_secs(3600),
        poll: Duration::from_millis(250),
        round_timeout: Duration::from_secs(600),
        ..EngineConfig::default()
    }
}

/// A target-like record, as a State would pool it.
fn record(doc: usize, k: usize) -> Result<Target> {
    let areas = [Area::Marking, Area::Stockpile, Area::RecordKeeping];
    Ok(Target {
        id: format!("T{}", k + 1),
        state: "XAA".parse()?,
        version: 1,
        cycle: "BMS9".parse()?,
        area: areas[k % areas.len()],
        title: format!("Mark and register State-held SALW, batch {doc}-{k}"),
        description: Some(
            "Mark all small arms and light weapons held by the armed forces and police at import \
             and in State stockpiles, and enter them in the national register."
                .into(),
        ),
        indicator: Indicator {
            kind: IndicatorKind::Quantitative,
            text: "share of State-held SALW marked and recorded".into(),
            unit: Some("percent".into()),
            direction: Some(Direction::Increase),
        },
        baseline: Some(40.0 + k as f64),
        baseline_year: Some(2023),
        baseline_source: Some("National report 2024".into()),
        value: Some(70.0 + k as f64),
        deadline: "2026-06-30".parse()?,
        mosaic: vec!["05.30".parse()?],
        refs: vec!["ITI 8".into(), "PoA II.7".into()],
        sdg: Some("16.4.2".into()),
        conditional_on: vec![],
        supersedes: None,
        reason: None,
    })
}

/// Creates the source node with `n` pool documents of [`CHANGES_PER_DOC`] signed changes, which
/// it coordinates (the pool ids carry its key). A pool is read by its coordinator, members and
/// observers only (a share list `*` does not open a pool), so the first change of each, besides
/// its first record, writes the charter naming the source's node and makes `reader` an
/// observer.
fn source_node(dir: &Path, n: usize, reader: &NodeId) -> Result<(Node, Vec<DocId>)> {
    let code: StateCode = "XAA".parse()?;
    let home = Home::init(dir, &InitOptions::state(code, "bench source"))?;
    let mut node = Node::from_home(home)?;
    let me = node.id();
    let mut docs = Vec::with_capacity(n);
    for i in 0..n {
        let doc = DocId::Pool(PoolId::new(&format!("bench{i}"), &me));
        for k in 0..CHANGES_PER_DOC {
            let rec = record(i, k)?;
            node.write(&doc, |w, _before| {
                if k == 0 {
                    let charter = Charter {
                        name: format!("Bench pool {i}"),
                        node: me,
                        framework: None,
                        coordinator: code.to_string(),
                        created: today(),
                    };
                    w.put("charter", "charter", &charter)?;
                    let observer = Observer {
                        name: "bench fresh peer".into(),
                        added: today(),
                    };
                    w.put("observers", &reader.to_string(), &observer)?;
                }
                w.put("pooled", &format!("t{}", k + 1), &rec)?;
                Ok::<(), NodeError>(())
            })?;
        }
        docs.push(doc);
    }
    Ok((node, docs))
}

/// A held document as a real Automerge document, built from the Automerge changes its ledger
/// derives (genesis included), and its signed changes as they travel.
fn plain_doc(node: &Node, doc: &DocId) -> Result<(Automerge, Vec<SignedChange>)> {
    let (changes, signed) = node
        .store
        .with_ledger(doc, |l| {
            (
                l.automerge_changes(),
                l.signed_changes().map(|(_, c)| c).collect::<Vec<_>>(),
            )
        })?
        .with_context(|| format!("{doc} is not held"))?;
    let mut am = Automerge::new();
    am.apply_changes(changes)?;
    Ok((am, signed))
}

fn heads_of(engine: &Engine) -> Result<Vec<(DocId, Vec<ChangeHash>)>> {
    Ok(engine.with_node(|n| n.store.all_heads())?)
}

/// One one-shot round from `engine` to `peer`.
async fn round(engine: &std::sync::Arc<Engine>, peer: poa_protocol::NodeId) -> Result<SyncReport> {
    let mut rounds = sync_round(engine, Some(peer)).await?;
    ensure!(
        rounds.len() == 1,
        "expected one round, got {}",
        rounds.len()
    );
    let (_, report) = rounds.remove(0);
    Ok(report?)
}

async fn measure(n: usize) -> Result<Row> {
    let tmp = tempfile::tempdir()?;
    let fresh_home = Home::init(
        &tmp.path().join("fresh"),
        &InitOptions::body("XZZ".parse()?, BodyKind::Donor, "bench fresh peer"),
    )?;
    let fresh_node = Node::from_home(fresh_home)?;
    let (source_node, docs) = source_node(&tmp.path().join("source"), n, &fresh_node.id())?;
    // The baseline syncs the very same documents, as the source holds them.
    let (plain_docs, signed): (Vec<Automerge>, Vec<Vec<SignedChange>>) = docs
        .iter()
        .map(|d| plain_doc(&source_node, d))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .unzip();
    let changes: usize = plain_docs.iter().map(|d| d.get_changes(&[]).len()).sum();
    let breakdown = breakdown(&docs, &plain_docs, signed.last().context("no documents")?)?;

    let source = Member::start_existing("source", source_node, bench_config()).await?;
    fresh_node.store.add_peer(
        &source.id(),
        "source",
        Some(&source.addr().to_string()),
        Some(&Principal::State("XAA".parse()?)),
        now_secs(),
    )?;
    // A one-shot client: it dials, runs a round and leaves; it does not serve.
    let fresh = Engine::new(fresh_node, bench_config())?;
    let fresh_id = fresh.id();
    source.with_node(|n| n.store.add_peer(&fresh_id, "fresh", None, None, now_secs()))?;

    let started = Instant::now();
    let cpu_before = cpu_time();
    let ours_fresh = round(&fresh, source.id()).await?;
    let ours_fresh_cpu = cpu_since(cpu_before);
    let ours_fresh_wall = started.elapsed();
    let want = heads_of(source.engine())?;
    let got = heads_of(&fresh)?;
    ensure!(
        want == got,
        "the fresh peer did not converge: {} of {} documents",
        got.len(),
        want.len()
    );
    let ours_noop = round(&fresh, source.id()).await?;
    ensure!(
        ours_noop.accepted.is_empty() && ours_noop.sent.is_empty(),
        "the no-op round moved changes: {ours_noop:?}"
    );
    source.stop().await;

    let (plain_fresh, state) = plain_sync(&plain_docs, None).await?;
    let (plain_noop, _) = plain_sync(&plain_docs, Some(state)).await?;
    Ok(Row {
        n,
        changes,
        ours_fresh,
        ours_fresh_wall,
        ours_fresh_cpu,
        ours_noop,
        plain_fresh,
        plain_noop,
        breakdown,
    })
}

/// Computes the size of each kind of overhead our protocol adds, with the real wire encoding.
/// `last` is the last document's signed changes.
fn breakdown(docs: &[DocId], plain: &[Automerge], last: &[SignedChange]) -> Result<Breakdown> {
    let heads = |am: &Automerge| am.get_heads().iter().map(|h| h.0).collect::<Vec<_>>();
    let offers = Message::Offers {
        docs: docs
            .iter()
            .zip(plain)
            .map(|(doc, am)| DocHeads {
                doc: doc.clone(),
                heads: heads(am),
            })
            .collect(),
    };
    let doc = docs.last().context("no documents")?.clone();
    let doc_heads = heads(plain.last().context("no documents")?);
    let sync_frame = |changes: Vec<SignedChange>| -> Result<u64> {
        let msg = Message::Sync(DocSync {
            doc: doc.clone(),
            heads: doc_heads.clone(),
            shared: Vec::new(),
            have: Bloom::default(),
            need: Vec::new(),
            changes,
            answer: false,
        });
        Ok(wire::encode_frame(&msg)?.len() as u64)
    };
    let unsigned: Vec<SignedChange> = last
        .iter()
        .map(|c| SignedChange {
            data: c.data.clone(),
            signature: Vec::new(),
        })
        .collect();
    let with_changes = sync_frame(last.to_vec())?;
    Ok(Breakdown {
        offers_frame: wire::encode_frame(&offers)?.len() as u64,
        signatures_per_doc: with_changes - sync_frame(unsigned)?,
        envelope_frame: sync_frame(Vec::new())?,
        changes_frame: with_changes,
        idle_frame: wire::encode_frame(&Message::SyncIdle { doc })?.len() as u64,
    })
}

/// Sync states kept from one plain connection for the next, per document: (dialler, listener).
type PlainStates = Vec<(Vec<u8>, Vec<u8>)>;

/// Plain Automerge sync of `docs` (held by a listener) into empty documents (held by the side
/// that dials), over TCP on loopback. Frames: u32 document index, u32 length, the encoded sync
/// message; length 0 means "nothing to say" (idle). With `states`, both sides start from the
/// sync states they persisted after an earlier connection, and the dialler from the documents
/// that connection gave it.
async fn plain_sync(
    docs: &[Automerge],
    states: Option<(Vec<Automerge>, PlainStates)>,
) -> Result<(PlainReport, (Vec<Automerge>, PlainStates))> {
    let n = docs.len();
    let (mut mine, persisted) = match states {
        Some((mine, persisted)) => (mine, Some(persisted)),
        None => ((0..n).map(|_| Automerge::new()).collect(), None),
    };
    let decode = |b: &[u8]| sync::State::decode(b).context("sync state");
    let (mut my_states, their_states): (Vec<sync::State>, Vec<sync::State>) = match &persisted {
        Some(p) => (
            p.iter().map(|(a, _)| decode(a)).collect::<Result<_>>()?,
            p.iter().map(|(_, b)| decode(b)).collect::<Result<_>>()?,
        ),
        None => (
            (0..n).map(|_| sync::State::new()).collect(),
            (0..n).map(|_| sync::State::new()).collect(),
        ),
    };

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server_docs = docs.to_vec();
    let server = tokio::spawn(plain_serve(listener, server_docs, their_states));

    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let started = Instant::now();
    let cpu_before = cpu_time();
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(plain_writer(wr, rx));

    let mut report = PlainReport::default();
    // Documents are synced side by side, so round trips are counted per document (a message
    // sent for it, then one received for it) and the slowest document's count is the round's.
    let mut awaiting = vec![false; n];
    let mut trips = vec![0u64; n];
    let mut open = vec![false; n];
    let mut open_count = 0usize;
    for i in 0..n {
        if let Some(msg) = mine[i].generate_sync_message(&mut my_states[i]) {
            let payload = msg.encode();
            report.payload += payload.len() as u64;
            tx.send(frame(i, &payload)?)?;
            awaiting[i] = true;
            open[i] = true;
            open_count += 1;
        }
    }
    while open_count > 0 {
        let Some((i, payload)) = read_frame(&mut rd, &mut report.bytes_received).await? else {
            bail!("the plain listener closed early");
        };
        ensure!(i < n, "document index {i} out of range");
        if awaiting[i] {
            trips[i] += 1;
            awaiting[i] = false;
        }
        report.payload += payload.len() as u64;
        if !payload.is_empty() {
            let msg = sync::Message::decode(&payload)?;
            mine[i].receive_sync_message(&mut my_states[i], msg)?;
        }
        match mine[i].generate_sync_message(&mut my_states[i]) {
            Some(msg) => {
                let payload = msg.encode();
                report.payload += payload.len() as u64;
                tx.send(frame(i, &payload)?)?;
                awaiting[i] = true;
            }
            None => {
                if open[i] {
                    open[i] = false;
                    open_count -= 1;
                }
            }
        }
    }
    drop(tx);
    report.round_trips = trips.iter().copied().max().unwrap_or(0);
    report.bytes_sent = writer.await??;
    report.millis = started.elapsed().as_secs_f64() * 1000.0;
    let their_states = server.await??;
    report.cpu = cpu_since(cpu_before);

    for (i, (a, b)) in mine.iter().zip(docs).enumerate() {
        let (mut ha, mut hb) = (a.get_heads(), b.get_heads());
        ha.sort();
        hb.sort();
        ensure!(ha == hb, "plain sync left document {i} behind");
    }
    let persisted = my_states
        .iter()
        .zip(&their_states)
        .map(|(a, b)| (a.encode(), b.encode()))
        .collect();
    Ok((report, (mine, persisted)))
}

/// The listening side of the plain baseline: answers every message with a message or an idle
/// frame, until the dialler closes. Gives back its sync states.
async fn plain_serve(
    listener: TcpListener,
    mut docs: Vec<Automerge>,
    mut states: Vec<sync::State>,
) -> Result<Vec<sync::State>> {
    let (stream, _) = listener.accept().await?;
    stream.set_nodelay(true)?;
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut received = 0u64;
    while let Some((i, payload)) = read_frame(&mut rd, &mut received).await? {
        ensure!(i < docs.len(), "document index {i} out of range");
        if !payload.is_empty() {
            let msg = sync::Message::decode(&payload)?;
            docs[i].receive_sync_message(&mut states[i], msg)?;
        }
        let reply = docs[i]
            .generate_sync_message(&mut states[i])
            .map(|m| m.encode())
            .unwrap_or_default();
        wr.write_all(&frame(i, &reply)?).await?;
    }
    wr.shutdown().await?;
    Ok(states)
}

async fn plain_writer(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) -> Result<u64> {
    let mut written = 0u64;
    while let Some(f) = rx.recv().await {
        wr.write_all(&f).await?;
        written += f.len() as u64;
    }
    wr.shutdown().await?;
    Ok(written)
}

fn frame(doc: usize, payload: &[u8]) -> Result<Vec<u8>> {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&u32::try_from(doc)?.to_be_bytes());
    f.extend_from_slice(&u32::try_from(payload.len())?.to_be_bytes());
    f.extend_from_slice(payload);
    Ok(f)
}

async fn read_frame(
    rd: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    bytes: &mut u64,
) -> Result<Option<(usize, Vec<u8>)>> {
    let mut head = [0u8; 8];
    match rd.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let [a, b, c, d, e, f, g, h] = head;
    let doc = u32::from_be_bytes([a, b, c, d]) as usize;
    let len = u32::from_be_bytes([e, f, g, h]) as usize;
    ensure!(len <= wire::MAX_FRAME, "plain frame of {len} bytes");
    let mut payload = vec![0u8; len];
    rd.read_exact(&mut payload).await?;
    *bytes += 8 + len as u64;
    Ok(Some((doc, payload)))
}

/// CPU time (user + system) this process has used so far, from `/proc/self/stat` (Linux; 10 ms
/// resolution). Both nodes run in this process, so it is the CPU cost of both sides; unlike wall
/// time it does not grow when other programs compete for the cores.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command name: field 3 (state) is index 0; utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Clock ticks are 1/100 s on Linux (USER_HZ).
    Some(Duration::from_millis((utime + stime) * 10))
}

fn cpu_since(before: Option<Duration>) -> Option<Duration> {
    Some(cpu_time()?.saturating_sub(before?))
}

/// The 1, 5 and 15 minute load averages: other work on the machine stretches wall times.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "n/a".into())
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "n/a".into(), |d| d.as_millis().to_string())
}

fn kib(b: u64) -> String {
    if b < 10 * 1024 {
        format!("{b} B")
    } else {
        format!("{:.1} KiB", b as f64 / 1024.0)
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| N docs | changes | ours fresh | ours fresh ms (CPU) | plain fresh | plain fresh ms (CPU) | bytes ours/plain | ours no-op RT | ours no-op | plain no-op RT | plain no-op |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} ({}) | {} | {:.1} ({}) | {:.2} | {} | {} | {} | {} |",
            r.n,
            r.changes,
            kib(total(&r.ours_fresh)),
            r.ours_fresh.millis,
            ms(r.ours_fresh_cpu),
            kib(r.plain_fresh.bytes()),
            r.plain_fresh.millis,
            ms(r.plain_fresh.cpu),
            total(&r.ours_fresh) as f64 / r.plain_fresh.bytes() as f64,
            r.ours_noop.round_trips,
            kib(total(&r.ours_noop)),
            r.plain_noop.round_trips,
            kib(r.plain_noop.bytes()),
        );
    }
    println!();
    println!("Details (bytes exact; sent/received as seen by the fresh peer, which dials):");
    for r in rows {
        let b = &r.breakdown;
        let f = &r.ours_fresh;
        let n = r.n as u64;
        println!(
            "  N={}: ours fresh sent {} / received {} in {} messages out, {} in, {} round trips, \
             {} ms on the connection, {} ms wall clock with QUIC handshake and close, {} ms CPU \
             (both nodes)",
            r.n,
            f.bytes_sent,
            f.bytes_received,
            f.messages_sent,
            f.messages_received,
            f.round_trips,
            f.millis,
            r.ours_fresh_wall.as_millis(),
            ms(r.ours_fresh_cpu),
        );
        println!(
            "         plain fresh sent {} / received {}, {} round trips, {} ms CPU (both sides), \
             Automerge payload {} B (+{} B of 8-byte frames)",
            r.plain_fresh.bytes_sent,
            r.plain_fresh.bytes_received,
            r.plain_fresh.round_trips,
            ms(r.plain_fresh.cpu),
            r.plain_fresh.payload,
            r.plain_fresh.bytes() - r.plain_fresh.payload,
        );
        println!(
            "         ours no-op sent {} / received {} in {} messages out, {} in; plain no-op \
             sent {} / received {}",
            r.ours_noop.bytes_sent,
            r.ours_noop.bytes_received,
            r.ours_noop.messages_sent,
            r.ours_noop.messages_received,
            r.plain_noop.bytes_sent,
            r.plain_noop.bytes_received,
        );
        println!(
            "         parts of our protocol: Offers frame listing all {} docs {} B; signatures \
             {} B per doc ({} B for all); DocSync with heads only {} B; DocSync carrying one \
             doc's {} signed changes {} B; SyncIdle {} B",
            r.n,
            b.offers_frame,
            b.signatures_per_doc,
            b.signatures_per_doc * n,
            b.envelope_frame,
            CHANGES_PER_DOC,
            b.changes_frame,
            b.idle_frame,
        );
    }
}

fn print_goals(rows: &[Row]) {
    println!();
    println!("Goals:");
    match rows.iter().find(|r| r.n == 1000) {
        Some(r) => {
            let met =
                r.ours_noop.round_trips <= NOOP_GOAL_RTS && total(&r.ours_noop) < NOOP_GOAL_BYTES;
            println!(
                "  no-op sync of 1000 documents in {NOOP_GOAL_RTS} round trip and under {NOOP_GOAL_BYTES} B: {} ({} round trip(s), {} B)",
                if met { "MET" } else { "NOT MET" },
                r.ours_noop.round_trips,
                total(&r.ours_noop),
            );
        }
        None => println!("  no-op goal: not measured (N=1000 not in this run)"),
    }
    for r in rows {
        let ratio = total(&r.ours_fresh) as f64 / r.plain_fresh.bytes() as f64;
        println!(
            "  fresh peer within {FRESH_GOAL_RATIO}x the plain baseline's bytes, N={}: {} ({ratio:.2}x)",
            r.n,
            if ratio <= FRESH_GOAL_RATIO {
                "MET"
            } else {
                "NOT MET"
            },
        );
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let sizes: Vec<usize> = if std::env::args().len() > 1 {
        std::env::args()
            .skip(1)
            .map(|a| a.parse().with_context(|| format!("'{a}' is not a count")))
            .collect::<Result<_>>()?
    } else {
        SIZES.to_vec()
    };
    ensure!(
        sizes.iter().all(|&n| n > 0),
        "document counts must be positive"
    );
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "sync_bench: {} build, {} {}, {} cores, tokio multi-thread runtime; every node in this \
         process on loopback",
        if cfg!(debug_assertions) {
            "DEBUG"
        } else {
            "release"
        },
        std::env::consts::OS,
        std::env::consts::ARCH,
        cores,
    );
    println!("load average before: {}", load_average());
    if cfg!(debug_assertions) {
        println!(
            "WARNING: debug build; times are not representative. Run with --release:\n  \
             cargo run --release -p poa-examples --example sync_bench"
        );
    }
    println!(
        "Each document: pool/benchN~<fingerprint> coordinated by the source, the fresh peer an \
         observer, genesis + {CHANGES_PER_DOC} signed changes, each adding one target record \
         (the first also the charter and the observer)."
    );
    println!(
        "Bytes: our sync stream (length-prefixed bincode frames) both ways, without QUIC/TLS \
         overhead; plain: Automerge sync messages in 8-byte frames over TCP."
    );
    let mut rows = Vec::new();
    for n in sizes {
        eprintln!("measuring N={n} ...");
        rows.push(measure(n).await?);
    }
    print_table(&rows);
    println!();
    println!(
        "ms: wall clock on the dialling side, from the established connection to the end of the \
         round (ours) or from TCP connect to the last answer (plain); (CPU): CPU time of the \
         whole process, both sides, 10 ms resolution. Load average after: {}",
        load_average()
    );
    print_goals(&rows);
    Ok(())
}
