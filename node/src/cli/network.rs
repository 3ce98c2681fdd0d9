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
        tokio::signal::ctrl_c().await?;
        println!("Stopping...");
        if let Some(u) = web {
            u.shutdown().await;
        }
        if let Some(d) = board {
            d.shutdown().await;
        }
        server.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(())
}

/// Runs `sync`: one round with every pinned peer that has an address (or only `peer`).
pub fn sync(home: Option<PathBuf>, peer: Option<NodeId>, json: bool) -> anyhow::Result<()> {
    let mut node = open(home)?;
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
