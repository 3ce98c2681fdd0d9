//! `poa-node demo`: the illustrative Xanadu sub-region as six real nodes on this machine.
//!
//! Three States (XAA, XAB, XAC), the regional body XRB, the donor XZZ and the UN Secretariat each
//! get their own home folder, key, SQLite file and QUIC endpoint on loopback. The data set is
//! entered through the same [`Node`](crate::node::Node) methods the CLI calls, the nodes sync as
//! they would across the world, and the demo prints what reached whom and how long it took.
//!
//! There is no central server: a State's node talks only to the regional body, so what a State
//! publishes reaches the Secretariat because XRB relays it, and reaches nobody the State did not
//! list. The demo checks both, and fails (non-zero exit) if either does not hold.
//!
//! [`dataset`] is the data set itself (module `data`), kept apart so tests and reports can reuse
//! it; `script` starts the nodes and plays the demo on them, `nodes` holds the six running
//! nodes, `watch` follows documents as they travel and checks where they went, and `output`
//! writes the demo's account.

use std::path::PathBuf;
use std::time::Duration;

use crate::node::NodeError;
use crate::sync::SyncError;

mod data;
mod nodes;
mod output;
mod script;
mod watch;

pub use data::{Dataset, PoolRecords, ProviderRecords, StateRecords, dataset};
pub use script::run;

/// How long the demo waits for the federation to do something before it gives up.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Errors of the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A node operation failed.
    #[error(transparent)]
    Node(Box<NodeError>),
    /// Starting a node or syncing failed.
    #[error(transparent)]
    Sync(Box<SyncError>),
    /// A record of the built-in data set does not parse: a bug in this module.
    #[error("the demo's built-in data set is invalid: {0}")]
    Data(String),
    /// The folder for the homes could not be used.
    #[error("cannot use {path} for the nodes' homes")]
    Io {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `--keep` names something other than a new or empty folder.
    #[error("{dir} {why}: give --keep a new or empty folder")]
    Keep {
        /// What `--keep` named.
        dir: PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The federation did not converge in time.
    #[error("{0} within {secs} s", secs = DEADLINE.as_secs())]
    Timeout(String),
    /// Something reached a node it must not reach, or went missing.
    #[error("check failed: {0}")]
    Check(String),
}

// Boxed: the node's errors are large, and the demo passes its own through every step.
impl From<NodeError> for DemoError {
    fn from(e: NodeError) -> Self {
        DemoError::Node(Box::new(e))
    }
}

impl From<SyncError> for DemoError {
    fn from(e: SyncError) -> Self {
        DemoError::Sync(Box::new(e))
    }
}
