//! Several real nodes in one process: each with its own home folder, SQLite file and QUIC
//! endpoint on loopback. The demo, the examples and the multi-node tests build federations with
//! it in a few lines.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use poa_protocol::{NodeId, Principal, StateCode};

use crate::home::{Home, InitOptions};
use crate::node::{Node, now_secs};
use crate::sync::{Engine, EngineConfig, Server, SyncError, serve};

/// A running node of a federation.
#[derive(Debug)]
pub struct Member {
    /// A short label ("XAA", "Secretariat").
    pub label: String,
    /// Its home folder.
    pub dir: PathBuf,
    server: Server,
}

impl Member {
    /// Creates a node in `dir` and starts serving it on `127.0.0.1:0`.
    pub async fn start(
        label: &str,
        dir: &Path,
        opts: &InitOptions,
        config: EngineConfig,
    ) -> Result<Member, SyncError> {
        let home = Home::init(dir, opts).map_err(crate::node::NodeError::from)?;
        Self::start_existing(label, Node::from_home(home)?, config).await
    }

    /// Serves a node that already exists.
    pub async fn start_existing(
        label: &str,
        node: Node,
        config: EngineConfig,
    ) -> Result<Member, SyncError> {
        let dir = node.home.dir().to_path_buf();
        let engine = Engine::new(node, config)?;
        let server = serve(engine, ([127, 0, 0, 1], 0).into()).await?;
        Ok(Member {
            label: label.to_string(),
            dir,
            server,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        self.server.engine()
    }

    /// Its NodeId.
    pub fn id(&self) -> NodeId {
        self.engine().id()
    }

    /// Where it listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// Runs `f` on the node, through the same code paths as the CLI; changes are pushed at once.
    pub fn with_node<T>(&self, f: impl FnOnce(&mut Node) -> T) -> T {
        self.engine().with_node(f)
    }

    /// Pins `other` here, with its address so this node dials it. `state` marks it as a node of
    /// that State.
    pub fn pin(&self, other: &Member, state: Option<StateCode>) -> Result<(), SyncError> {
        self.pin_as(other, state.map(Principal::State))
    }

    /// Pins `other` here, with its address, as a node of `principal` (a State or a body).
    pub fn pin_as(&self, other: &Member, principal: Option<Principal>) -> Result<(), SyncError> {
        let addr = other.addr().to_string();
        let (id, label) = (other.id(), other.label.clone());
        self.with_node(|n| {
            n.store
                .add_peer(&id, &label, Some(&addr), principal.as_ref(), now_secs())
        })?;
        Ok(())
    }

    /// Pins `other` here without an address: it may connect, but is never dialled from here.
    pub fn accept_from(&self, other: &Member, state: Option<StateCode>) -> Result<(), SyncError> {
        self.accept_from_as(other, state.map(Principal::State))
    }

    /// Like [`Member::accept_from`], as a node of `principal` (a State or a body).
    pub fn accept_from_as(
        &self,
        other: &Member,
        principal: Option<Principal>,
    ) -> Result<(), SyncError> {
        let (id, label) = (other.id(), other.label.clone());
        self.with_node(|n| {
            n.store
                .add_peer(&id, &label, None, principal.as_ref(), now_secs())
        })?;
        Ok(())
    }

    /// Makes `other` (pinned here) an introducer: the keys it trusts first-hand are trusted
    /// here too.
    pub fn trust_introductions_from(&self, other: &Member) -> Result<(), SyncError> {
        let id = other.id();
        self.with_node(|n| n.store.set_introducer(&id, true))?;
        Ok(())
    }

    /// Stops the node gracefully and gives back its home folder.
    pub async fn stop(self) -> PathBuf {
        self.server.shutdown().await;
        self.dir
    }
}

/// Polls `condition` every few milliseconds until it holds or `limit` passes. Returns how long
/// it took, or `None` on timeout. This is how tests wait for convergence: never a fixed sleep.
pub async fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if condition() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
