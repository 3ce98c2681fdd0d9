//! Running the node on the network: `serve` (listen, keep connections, push and repair, and the
//! dashboard) and `sync` (one round with every pinned peer).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use poa_protocol::NodeId;
use serde_json::json;

use super::{open, print_json, runtime};
use crate::sync::{Engine, EngineConfig, serve as listen_and_serve, sync_round};

/// Runs `serve` until Ctrl-C.
pub fn serve(
    home: Option<PathBuf>,
    listen: Option<SocketAddr>,
    http: Option<SocketAddr>,
    ui: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let node = open(home)?;
    let home_dir = node.home.dir().to_path_buf();
    let _lock = crate::home::lock_serve(&home_dir)?;
    let listen = match listen {
        Some(l) => l,
        None => node.home.config.network.listen.parse()?,
    };
    let anti_entropy = std::time::Duration::from_secs(node.home.config.network.anti_entropy_secs);
    runtime()?.block_on(async move {
        let engine = Engine::new(
            node,
            EngineConfig {
                anti_entropy,
                ..EngineConfig::default()
            },
        )?;
        // The handlers are in place before anything says the node serves: a signal sent as
        // soon as "Serving" is read stops it gracefully rather than killing it.
        let stop = StopSignals::new()?;
        let server = listen_and_serve(engine.clone(), listen).await?;
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
                let d = crate::dashboard::dashboard(engine.clone(), addr)
                    .await
                    .with_context(|| format!("cannot serve the dashboard on {addr}"))?;
                println!("Dashboard on http://{}/", d.addr());
                Some(d)
            }
            None => None,
        };
        let web = match ui {
            Some(addr) => {
                if !addr.ip().is_loopback() {
                    eprintln!(
                        "note: the UI on {addr} is reachable from other machines; only its link gets in, but the traffic is not encrypted"
                    );
                }
                let token = crate::ui::token(&home_dir)
                    .with_context(|| format!("cannot keep the UI token in {}", home_dir.display()))?;
                let u = crate::ui::ui(engine.clone(), addr, token.clone())
                    .await
                    .with_context(|| format!("cannot serve the UI on {addr}"))?;
                println!("UI on http://{}/login?token={token}", u.addr());
                Some(u)
            }
            None => None,
        };
        let signal = stop.recv().await;
        println!("Stopping ({signal})...");
        if let Some(u) = web {
            u.shutdown().await;
        }
        if let Some(d) = board {
            d.shutdown().await;
        }
        server.shutdown().await;
        println!("Stopped.");
        anyhow::Ok(())
    })?;
    Ok(())
}

/// Ctrl-C (SIGINT) and, on Unix, SIGTERM (what systemd and `docker stop` send), listened for
/// from the moment this is made.
struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> anyhow::Result<StopSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(StopSignals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignals {})
    }

    /// Waits for one, and names it.
    async fn recv(mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => "interrupted",
                _ = self.term.recv() => "terminated",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "interrupted"
        }
    }
}

/// Runs `sync`: one round with every pinned peer that has an address (or only `peer`).
pub fn sync(home: Option<PathBuf>, peer: Option<NodeId>, json: bool) -> anyhow::Result<()> {
    let mut node = open(home)?;
    for n in node.lapse_expired()? {
        eprintln!("Revoked {n}: its delegation expired.");
    }
    let peers = node
        .store
        .peers()?
        .iter()
        .filter(|p| p.addr.is_some() && peer.is_none_or(|id| id == p.node_id))
        .count();
    let results = runtime()?.block_on(async move {
        let engine = Engine::new(node, EngineConfig::default())?;
        let shown =
            crate::progress::Progress::start(format!("Syncing with {peers} peer(s)..."), json);
        let m = crate::metrics::metrics();
        let taken = m.changes_accepted.get();
        let bytes_in = m
            .bytes
            .get_or_create(&crate::metrics::direction(true))
            .get();
        let round = sync_round(&engine, peer);
        tokio::pin!(round);
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            tokio::select! {
                r = &mut round => break anyhow::Ok(r?),
                _ = tick.tick() => shown.say(format!(
                    "Syncing with {peers} peer(s): {} change(s) taken, {} received",
                    m.changes_accepted.get() - taken,
                    crate::status::bytes(
                        m.bytes.get_or_create(&crate::metrics::direction(true)).get() - bytes_in
                    ),
                )),
            }
        }
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
                        p.name, rep.round_trips, rep.bytes_sent, rep.bytes_received, rep.millis
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
    Ok(())
}

/// Runs `status`.
pub fn status(home: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    use crate::status::{ago, bytes, when};
    let node = open(home)?;
    let serving = crate::home::serving(node.home.dir());
    let st = crate::status::status(&node, serving, crate::node::now_secs())?;
    if json {
        return print_json(&st);
    }
    let n = &st.node;
    match &n.pid {
        Some(pid) => println!("{} ({}): serving, pid {pid}.", n.name, n.node_id),
        None => println!(
            "{} ({}): not serving; peers are synced only by `poa-node sync` until `poa-node serve` runs.",
            n.name, n.node_id
        ),
    }
    println!("{} document(s), {} change(s).", n.documents, n.changes);
    for k in &st.keys {
        let short = |key: &str| key.get(..7).unwrap_or_default().to_string();
        let state = if k.frozen {
            "frozen by a fork: no key is in force until a recovery".to_string()
        } else {
            format!("key in force {} (epoch {})", short(&k.current), k.epoch)
        };
        println!(
            "{}: {} key(s) retired since the trusted key {}; {state}.",
            k.principal,
            k.retired,
            short(&k.trusted)
        );
        for note in &k.notes {
            println!("{}: {note}", k.principal);
        }
    }
    if st.peers.is_empty() {
        println!("No peers. Pin one with `poa-node peer add NODEID@HOST:PORT --name ...`.");
        return Ok(());
    }
    println!();
    let rows: Vec<Vec<String>> = st
        .peers
        .iter()
        .map(|p| {
            let link = match (p.connected, p.connected_since) {
                (true, Some(t)) => format!("connected {}", ago(n.at, t).replace(" ago", "")),
                (true, None) => "connected".into(),
                (false, _) => "disconnected".into(),
            };
            let contact = p
                .last_contact
                .map(|t| format!("{} ({})", when(t), ago(n.at, t)))
                .unwrap_or_else(|| "never".into());
            let behind: Vec<String> = p
                .documents
                .iter()
                .filter(|d| !d.in_sync)
                .map(|d| format!("{} -{}", d.doc, d.behind))
                .collect();
            let docs = if behind.is_empty() {
                format!("{} in sync", p.documents.len())
            } else {
                format!("behind: {}", behind.join(", "))
            };
            let t = &p.traffic;
            vec![
                p.name.clone(),
                p.node_id.get(..7).unwrap_or_default().to_string(),
                link,
                contact,
                docs,
                format!("{} / {}", bytes(t.bytes_sent), bytes(t.bytes_received)),
                format!("{} / {}", t.changes_sent, t.changes_received),
            ]
        })
        .collect();
    crate::format::print_table(
        &[
            "PEER",
            "NODE",
            "LINK",
            "LAST CONTACT",
            "DOCUMENTS",
            "BYTES OUT / IN",
            "CHANGES OUT / IN",
        ],
        &rows,
    );
    for p in &st.peers {
        if let Some(e) = &p.last_error {
            let at = p
                .last_error_at
                .map(|t| format!(" ({})", ago(n.at, t)))
                .unwrap_or_default();
            println!("{}{at}: {e}", p.name);
        }
        if let Some(f) = &p.flagged {
            println!("{}: flagged: {f}", p.name);
        }
    }
    if !st.documents.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = st
            .documents
            .iter()
            .map(|d| {
                vec![
                    d.doc.clone(),
                    d.changes.to_string(),
                    if d.in_sync_with.is_empty() {
                        "-".into()
                    } else {
                        d.in_sync_with.join(", ")
                    },
                    if d.behind.is_empty() {
                        "-".into()
                    } else {
                        d.behind.join(", ")
                    },
                ]
            })
            .collect();
        crate::format::print_table(&["DOCUMENT", "CHANGES", "HELD AS HERE BY", "BEHIND"], &rows);
    }
    Ok(())
}
