//! `state-key`: the chain of the State's (or body's) keys, rotation, and recovery; and the
//! recovery key at `init` and in `trust`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use poa_protocol::sign::NodeKey;
use poa_protocol::{NodeId, Principal};
use serde_json::json;

use super::{open, print_json};
use crate::home::RECOVERY_KEY;
use crate::node::Node;

/// `state-key` subcommands.
#[derive(Debug, Subcommand)]
pub enum StateKeyCmd {
    /// The key this node trusts for its State (the root), the key in force now, the keys
    /// retired and how, and anything a person should know (a fork, a recovery this node
    /// cannot check).
    Show {
        /// Another State or body held here.
        #[arg(long)]
        of: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Hand the State key over to a new key, signed by the key in force (run on the node
    /// holding it). Every grant of the old key that stands is kept; what the old key signs
    /// after is void on every node that holds the rotation. The old key file is kept beside
    /// the new one as `state.key.retired-…`.
    Rotate {
        /// A node whose delegation is not carried over (repeat for several): what it wrote
        /// stops standing, and it writes nothing that stands until delegated again by the new
        /// key (`delegate`). To keep what a node wrote, revoke it instead.
        #[arg(long, value_name = "NODEID", value_parser = super::parse_node_id)]
        lapse: Vec<NodeId>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace a lost or leaked State key by a new one, signed by the recovery key. Keeps the
    /// delegations and revocations this node placed itself; every other grant of the replaced
    /// key, whoever holds it now, is void on every node that knows the recovery key.
    Recover {
        /// The recovery key: the file `init` wrote, or the text it printed.
        #[arg(long, value_name = "FILE")]
        recovery_key: PathBuf,
        /// A node whose delegation is not kept (repeat for several), as for `rotate`.
        #[arg(long, value_name = "NODEID", value_parser = super::parse_node_id)]
        lapse: Vec<NodeId>,
        /// A node whose delegation in force here is kept too (repeat for several): on a new
        /// home, which placed no delegation itself, name the ministries that keep writing.
        #[arg(long, value_name = "NODEID", value_parser = super::parse_node_id)]
        keep: Vec<NodeId>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `state-key` command.
pub fn state_key(home: Option<PathBuf>, cmd: StateKeyCmd) -> anyhow::Result<()> {
    let mut node = open(home)?;
    match cmd {
        StateKeyCmd::Show { of, json } => show(&node, of, json),
        StateKeyCmd::Rotate { lapse, json } => {
            let new = NodeKey::from_seed(&crate::home::random::<32>()?);
            let done = node.rotate_principal_key(new, &lapse)?;
            report(&done, json)
        }
        StateKeyCmd::Recover {
            recovery_key,
            lapse,
            keep,
            json,
        } => {
            let recovery = read_recovery_key(&recovery_key)?;
            let new = NodeKey::from_seed(&crate::home::random::<32>()?);
            let done = node.recover_principal_key(&recovery, new, &lapse, &keep)?;
            report(&done, json)
        }
    }
}

fn report(done: &crate::keys::KeyChange, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&serde_json::to_value(done)?);
    }
    println!(
        "{} written to {}: key {} replaces {} (epoch {}), {} grants of the old key kept.",
        if done.kind == "rotation" {
            "Rotation"
        } else {
            "Recovery"
        },
        done.docs.join(" and "),
        done.current,
        done.retired,
        done.epoch,
        done.kept
    );
    for n in &done.lapsed {
        println!("Delegation of {n} not carried over: delegate it again to let it write.");
    }
    if done.kept == 0 && done.kind == "recovery" {
        println!(
            "No grant of the old key was kept: every node it delegated writes nothing that stands until delegated again (`poa-node delegate`), or recover again with --keep NODEID."
        );
    }
    println!(
        "Peers follow it when they next sync; grants the old key signs from now on are void there."
    );
    Ok(())
}

fn show(node: &Node, of: Option<String>, json: bool) -> anyhow::Result<()> {
    let doc = match &of {
        None => node.own_grant_docs().remove(0),
        Some(code) => {
            let p: Principal = match code.parse() {
                Ok(state) => Principal::State(state),
                Err(_) => Principal::Body(code.parse()?),
            };
            match p {
                Principal::State(s) => poa_protocol::doc::DocId::State(s),
                Principal::Body(b) => poa_protocol::doc::DocId::Offers(b.to_string()),
            }
        }
    };
    let Some(chain) = node.key_chain_of(&doc)? else {
        bail!(
            "no key is trusted here for {doc}: trust it first (`poa-node trust CODE --state-key KEY`)"
        );
    };
    let recovery = node.store.trust().recovery_for_doc(&doc).copied();
    if json {
        return print_json(&json!({
            "doc": doc.to_string(),
            "root": chain.root.to_string(),
            "current": chain.current.to_string(),
            "epoch": chain.epoch,
            "recovery_key": recovery.map(|r| r.to_string()),
            "retired": chain.retired.iter().map(|(k, how)| json!({
                "key": k.to_string(),
                "by": format!("{how:?}").to_lowercase(),
            })).collect::<Vec<_>>(),
            "kept": chain.kept.len(),
            "notes": chain.notes,
        }));
    }
    println!("Trusted key (root): {}", chain.root);
    println!(
        "Key in force:       {} (epoch {})",
        chain.current, chain.epoch
    );
    match recovery {
        Some(r) => println!("Recovery key:       {r}"),
        None => println!(
            "Recovery key:       none known here (recoveries cannot be followed; `poa-node trust CODE --recovery-key KEY`)"
        ),
    }
    for (k, how) in &chain.retired {
        println!("Retired:            {k} (by {how:?})");
    }
    for n in &chain.notes {
        println!("Note: {n}");
    }
    Ok(())
}

/// Reads a recovery key from its file (hex, as `init` wrote it) or its paper text (the
/// checksummed groups `init` printed).
fn read_recovery_key(path: &Path) -> anyhow::Result<NodeKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the recovery key {}", path.display()))?;
    if let Some(key) = crate::home::key_of_text(&text) {
        return Ok(key);
    }
    match text.trim().parse::<NodeId>() {
        Ok(id) => Ok(NodeKey::from_seed(&id.0)),
        Err(e) => bail!(
            "{} is not a recovery key ({e}): give the file `init` wrote, or a file holding the text it printed",
            path.display()
        ),
    }
}

/// At `init` of a principal's first node: says where the recovery key is, prints it as text
/// to keep on paper, and what to do with both.
pub fn print_new_recovery_key(dir: &Path) -> anyhow::Result<()> {
    let path = dir.join(RECOVERY_KEY);
    let key = crate::home::read_key(&path)?;
    println!(
        "Recovery key: {} (public part; give it to peers with the key above: `poa-node trust CODE --recovery-key ...`)",
        key.node_id()
    );
    println!(
        "The secret recovery key is in {}. Move that file OFFLINE now (a USB stick in a safe), and keep this text on paper:",
        path.display()
    );
    println!("  {}", NodeId(key.seed()));
    println!(
        "It replaces the State key if that is ever lost or leaked (`poa-node state-key recover --recovery-key FILE`)."
    );
    Ok(())
}

/// `trust CODE --recovery-key KEY`.
pub fn trust_recovery(node: &Node, principal: &Principal, key: &NodeId) -> anyhow::Result<()> {
    let now = crate::node::now_secs();
    match node.store.learn_recovery_key(
        principal,
        key,
        &poa_protocol::authority::TrustSource::Operator,
        now,
    )? {
        crate::store::Learned::New => {
            node.store.audit_event(
                now,
                "trust",
                None,
                None,
                &format!(
                    "the operator trusted {key} as {}'s recovery key",
                    principal.code()
                ),
            )?;
            println!(
                "Trusting {key} as the recovery key of {}.",
                principal.code()
            );
        }
        crate::store::Learned::Known => {
            println!(
                "{key} is already trusted as the recovery key of {}.",
                principal.code()
            );
        }
        crate::store::Learned::Conflict { trusted, source } => bail!(
            "{} already has a trusted recovery key: {trusted} ({source}); a different key is refused",
            principal.code()
        ),
    }
    Ok(())
}
