//! poa-node: a federated sync node for nationally determined small-arms control targets.
//!
//! This crate is the part of the system that touches the world: the SQLite store, the home
//! folder with its keys, the command line, and (in later modules) the QUIC transport, the sync
//! engine and the HTTP dashboard. Decisions live in `poa-protocol`; this crate carries them out.
//!
//! **Architecture invariant:** this is the only crate that opens sockets or files or reads clocks.

pub mod backup;
pub mod bundle;
pub mod cli;
pub mod dashboard;
pub mod demo;
pub mod evidence;
pub mod federation;
pub mod format;
pub mod home;
pub mod host;
pub mod html_kit;
pub mod keys;
pub mod metrics;
pub mod node;
pub mod offers;
pub mod pools;
pub mod progress;
pub mod records;
#[cfg(test)]
mod redteam15_tests;
pub mod report;
pub mod sheets;
pub mod status;
pub mod store;
pub mod submission;
pub mod sync;
pub mod transport;
pub mod ui;
pub mod views;

pub use home::{Home, InitOptions};
pub use node::{Node, NodeError};
