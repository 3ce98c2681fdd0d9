//! The sans-IO core of poa-node.
//!
//! Identities and keys, the domain model, the document schema and the explicit change format,
//! change signatures, the gate every change passes (the ledger), the read rules, wire messages,
//! the sans-IO sync session, and the stocktake.
//!
//! **Architecture invariant:** this crate does no I/O. It opens no sockets or files, reads no
//! clock and draws no randomness: time, randomness and bytes are arguments, decisions and bytes
//! are results. A test of this crate needs no runtime and no ports.

pub mod assist;
pub mod authority;
pub mod change;
pub mod checks;
pub mod date;
pub mod doc;
#[doc(hidden)]
pub mod fuzzing;
pub mod id;
pub mod ledger;
pub mod model;
pub mod pool;
pub mod rules;
pub mod session;
pub mod sign;
pub mod stocktake;
pub mod submission;
#[doc(hidden)]
pub mod testing;
pub mod view;
pub mod wire;

pub use automerge;
pub use date::Date;
pub use doc::DocId;
pub use id::{BodyCode, BodyKind, NodeId, Participant, Principal, StateCode};
#[cfg(test)]
mod redteam10_tests;
#[cfg(test)]
mod redteam11_tests;
#[cfg(test)]
mod redteam12_tests;
#[cfg(test)]
mod redteam13_tests;
#[cfg(test)]
mod redteam14_tests;
#[cfg(test)]
mod redteam15_tests;
#[cfg(test)]
mod redteam16_tests;
#[cfg(test)]
mod redteam23_tests;
#[cfg(test)]
mod redteam25_tests;
#[cfg(test)]
mod redteam26_tests;
#[cfg(test)]
mod redteam27_tests;
#[cfg(test)]
mod redteam28_tests;
#[cfg(test)]
mod redteam29_tests;
#[cfg(test)]
mod redteam2_tests;
#[cfg(test)]
mod redteam30_tests;
#[cfg(test)]
mod redteam31_tests;
#[cfg(test)]
mod redteam32_tests;
#[cfg(test)]
mod redteam3_tests;
#[cfg(test)]
mod redteam4_tests;
#[cfg(test)]
mod redteam5_tests;
#[cfg(test)]
mod redteam6_tests;
#[cfg(test)]
mod redteam7_tests;
#[cfg(test)]
mod redteam8_tests;
#[cfg(test)]
mod redteam9_tests;
#[cfg(test)]
mod redteam_tests;
#[cfg(test)]
mod rotation_tests;
