//! Who this node is and whom it trusts: `init`, `id`, `peer`, `trust`, `delegate`, `revoke`
//! and `delegations`.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};
use poa_protocol::authority::Scope;
use poa_protocol::doc::DocId;
use poa_protocol::model::Area;
use poa_protocol::{BodyCode, BodyKind, Date, NodeId, StateCode};
use serde_json::json;

use super::{open, parse_node_id, print_json};
use crate::format::print_table;
use crate::home::{self, Home, InitOptions};

/// Arguments of `init`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["state", "body"])))]
pub struct InitArgs {
    /// The State this node acts for: ISO 3166-1 alpha-3 (KEN, BRA) or XAA-XZZ for training.
    #[arg(long)]
    pub state: Option<StateCode>,
    /// The acronym of the regional body, donor or Secretariat this node acts for.
    #[arg(long, requires = "kind")]
    pub body: Option<BodyCode>,
    /// What kind of body: regional, donor or secretariat.
    #[arg(long, requires = "body")]
    pub kind: Option<BodyKind>,
    /// A display name, such as "XAA Ministry of Interior".
    #[arg(long)]
    pub name: String,
    /// This is not the first node of its State or body: do not create its key (a ministry
    /// node, or another node of a body, that the first node will delegate).
    #[arg(long, alias = "joining")]
    pub ministry: bool,
}

/// Peer commands.
#[derive(Debug, Subcommand)]
pub enum PeerCmd {
    /// Pin a peer's key, with the address where it listens.
    #[command(after_help = "Examples:\n  \
poa-node peer add ABCDEFG-HIJKLMN-...@192.0.2.10:4433 --name \"XRB\"\n  \
poa-node peer add ABCDEFG-HIJKLMN-...@xaa-defence.example:4433 --name \"XAA Defence\" --state XAA\n  \
poa-node peer add ABCDEFG-HIJKLMN-... --name \"XZZ Development Agency\" --body XZZ\n\n\
Without @HOST:PORT the peer may connect here but is never dialled. With --state or --body,\n\
this node trusts the key of that State or body that the peer presents, the first time.")]
    Add {
        /// NODEID@HOST:PORT, or just NODEID.
        peer: String,
        /// A display name.
        #[arg(long)]
        name: Option<String>,
        /// The State this peer is a node of: this node learns the State key from it, and
        /// shares that State's documents with it as with the State's own nodes.
        #[arg(long, conflicts_with = "body")]
        state: Option<StateCode>,
        /// The body this peer is a node of: this node learns the body key from it.
        #[arg(long)]
        body: Option<BodyCode>,
        /// Trust the State and body keys this peer trusts first-hand (a regional body for its
        /// member States, say). Choose introducers as carefully as the keys themselves.
        #[arg(long)]
        introducer: bool,
    },
    /// List pinned peers.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Unpin a peer.
    Remove {
        /// Its NodeId.
        #[arg(value_parser = parse_node_id)]
        peer: NodeId,
    },
}

/// Runs `init`.
pub fn init(home: Option<PathBuf>, args: InitArgs) -> anyhow::Result<()> {
    let dir = home::resolve(home)?;
    let opts = match (args.state, args.body, args.kind) {
        (Some(state), None, None) => InitOptions {
            create_principal_key: !args.ministry,
            ..InitOptions::state(state, &args.name)
        },
        (None, Some(body), Some(kind)) => InitOptions {
            create_principal_key: !args.ministry,
            ..InitOptions::body(body, kind, &args.name)
        },
        _ => bail!("give either --state CODE, or --body CODE with --kind"),
    };
    let home = Home::init(&dir, &opts)?;
    println!("Initialised {} in {}", opts.participant, dir.display());
    println!("NodeId: {}", home.key.node_id());
    if let Some(k) = &home.principal_key {
        let p = opts.participant.principal();
        let file = match p {
            poa_protocol::Principal::State(_) => "state.key",
            poa_protocol::Principal::Body(_) => "body.key",
        };
        println!(
            "{} for {}: {} (keep {} safe)",
            p.key_name(),
            p.code(),
            k.node_id(),
            dir.join(file).display()
        );
    }
    if home.principal_key.is_some() {
        super::keys::print_new_recovery_key(&dir)?;
    }
    println!("Give your NodeId to peers; they pin it with `poa-node peer add`.");
    Ok(())
}

/// Runs `id`.
pub fn id(home: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let dir = home::resolve(home)?;
    let home = Home::open(&dir)?;
    let id = home.key.node_id();
    if json {
        print_json(&json!({
            "node_id": id.to_string(),
            "name": home.config.name,
            "participant": home.config.participant,
            "principal_key": home.principal_key.as_ref().map(|k| k.node_id().to_string()),
        }))?;
    } else {
        println!("{id}");
    }
    Ok(())
}

/// Runs a `peer` command.
pub fn peer(home: Option<PathBuf>, cmd: PeerCmd) -> anyhow::Result<()> {
    let mut node = open(home)?;
    match cmd {
        PeerCmd::Add {
            peer,
            name,
            state,
            body,
            introducer,
        } => {
            let (id_text, addr) = match peer.split_once('@') {
                Some((id, addr)) => (id, Some(addr)),
                None => (peer.as_str(), None),
            };
            let id = parse_node_id(id_text).map_err(|e| anyhow::anyhow!(e))?;
            if id == node.id() {
                bail!(
                    "that is this node's own NodeId; pin the other node's (run `poa-node id` there)"
                );
            }
            if let Some(a) = addr {
                check_peer_addr(a).map_err(|why| {
                    anyhow::anyhow!(
                        "'{a}' is not an address ({why}): write HOST:PORT, such as 192.0.2.10:4433 or un.example.org:4433"
                    )
                })?;
            }
            let name = name.unwrap_or_else(|| id.short());
            let pinned_as = match (state, body) {
                (Some(s), _) => Some(poa_protocol::Principal::State(s)),
                (None, Some(b)) => Some(poa_protocol::Principal::Body(b)),
                (None, None) => None,
            };
            node.store.add_peer(
                &id,
                &name,
                addr,
                pinned_as.as_ref(),
                crate::node::now_secs(),
            )?;
            node.store.set_introducer(&id, introducer)?;
            println!(
                "Pinned {name} ({id}){}.",
                addr.map(|a| format!(" at {a}")).unwrap_or_default()
            );
        }
        PeerCmd::List { json } => {
            let peers = node.store.peers()?;
            if json {
                print_json(&serde_json::Value::Array(
                    peers
                        .iter()
                        .map(|p| {
                            json!({
                                "node_id": p.node_id.to_string(),
                                "name": p.name,
                                "addr": p.addr,
                                "pinned_as": p.pinned_as.as_ref().map(|x| x.to_string()),
                                "flagged": p.flagged,
                                "introducer": p.introducer,
                                "added": p.added,
                                "last_seen": p.last_seen,
                                "last_error": p.last_error,
                                "invalid_changes": p.invalid_changes,
                            })
                        })
                        .collect(),
                ))?;
            } else if peers.is_empty() {
                println!("No peers. Pin one with `poa-node peer add NODEID@HOST:PORT --name ...`.");
            } else {
                let rows: Vec<Vec<String>> = peers
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.node_id.short(),
                            p.addr.clone().unwrap_or_else(|| "-".into()),
                            p.pinned_as
                                .as_ref()
                                .map(|x| x.code())
                                .unwrap_or_else(|| "-".into()),
                            p.last_seen
                                .map(|t| Date::from_unix_seconds(t).to_string())
                                .unwrap_or_else(|| "never".into()),
                            p.invalid_changes.to_string(),
                            p.last_error.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "NAME",
                        "NODE",
                        "ADDRESS",
                        "NODE OF",
                        "LAST SEEN",
                        "INVALID",
                        "LAST ERROR",
                    ],
                    &rows,
                );
            }
        }
        PeerCmd::Remove { peer } => {
            if node.store.remove_peer(&peer)? {
                println!("Unpinned {peer}.");
            } else {
                bail!("{peer} is not pinned; see `poa-node peer list`");
            }
        }
    }
    Ok(())
}

/// Runs `delegate`.
pub fn delegate(
    home: Option<PathBuf>,
    id: NodeId,
    scope: Vec<String>,
    expires: Option<Date>,
) -> anyhow::Result<()> {
    let scope = parse_scope(&scope)?;
    let mut node = open(home)?;
    let grant = node.delegate(id, scope.clone(), expires)?;
    let docs = match &node.home.config.participant.principal() {
        poa_protocol::Principal::State(s) => format!("state/{s} and its draft"),
        poa_protocol::Principal::Body(b) => format!("offers/{b} and its draft"),
    };
    let until = expires.map(|e| format!(", until {e}")).unwrap_or_default();
    let serial = grant.grant.serial;
    let replaces = if serial > 0 {
        format!(
            " It replaces the delegation of {id} (serial {}) for what it writes from now on; what it wrote before stays judged under the one it was written under.",
            serial - 1
        )
    } else {
        String::new()
    };
    println!(
        "Delegated {id} (scope {scope}{until}, serial {serial}).{replaces} It is in {docs}; it reaches the delegate at the next sync."
    );
    Ok(())
}

/// Runs `revoke`.
pub fn revoke(home: Option<PathBuf>, id: NodeId) -> anyhow::Result<()> {
    let mut node = open(home)?;
    node.revoke(id)?;
    println!(
        "Revoked {id}. What it wrote past what this node holds of it is void on every node, whatever its dates, and it reads nothing more of this State's own documents. It is also placed in the pools where this node is a member or the coordinator, and only there."
    );
    Ok(())
}

/// What became of a delegation, as this node holds the grants and reads its clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DelegationStatus {
    /// The node's latest delegation, not revoked, not past its last day.
    Active,
    /// The node's latest delegation, past its last day by this node's clock (the key holder
    /// revokes it at its next `serve` minute or `sync`).
    Expired,
    /// The node is revoked: a revocation of it is held (final for that node key).
    Revoked,
    /// A later delegation of the same node (a higher serial) replaces it, for what the node
    /// writes after the later one's cut-off.
    Replaced,
}

impl DelegationStatus {
    /// The word shown.
    pub fn word(self) -> &'static str {
        match self {
            DelegationStatus::Active => "active",
            DelegationStatus::Expired => "expired",
            DelegationStatus::Revoked => "revoked",
            DelegationStatus::Replaced => "replaced",
        }
    }
}

/// The status of each delegation in `grants` on `today`, in the order given (`None` for a
/// revocation). A node's latest delegation is the one of the highest serial, then the latest
/// issue date: the one the gate judges its new changes under.
pub fn delegation_statuses(
    grants: &[(poa_protocol::authority::Grant, bool)],
    today: Date,
) -> Vec<Option<DelegationStatus>> {
    use poa_protocol::authority::GrantKind;
    grants
        .iter()
        .map(|(g, _)| {
            if g.kind != GrantKind::Delegation {
                return None;
            }
            let later = grants.iter().any(|(x, _)| {
                x.kind == GrantKind::Delegation
                    && x.node == g.node
                    && (x.serial, x.issued) > (g.serial, g.issued)
            });
            let revoked = grants
                .iter()
                .any(|(x, _)| x.kind == GrantKind::Revocation && x.node == g.node);
            Some(if later {
                DelegationStatus::Replaced
            } else if revoked {
                DelegationStatus::Revoked
            } else if g.expires.is_some_and(|e| e < today) {
                DelegationStatus::Expired
            } else {
                DelegationStatus::Active
            })
        })
        .collect()
}

/// Runs `delegations`.
pub fn delegations(
    home: Option<PathBuf>,
    state: Option<StateCode>,
    json: bool,
) -> anyhow::Result<()> {
    let node = open(home)?;
    let (who, mut grants) = match state {
        Some(s) => (s.to_string(), node.grants_in(&DocId::State(s))?),
        None => (node.home.config.participant.code(), node.grants()?),
    };
    // By node, then delegations by serial, then revocations.
    grants.sort_by(|(a, _), (b, _)| {
        (
            a.node.to_string(),
            a.kind != poa_protocol::authority::GrantKind::Delegation,
            a.serial,
            a.issued,
        )
            .cmp(&(
                b.node.to_string(),
                b.kind != poa_protocol::authority::GrantKind::Delegation,
                b.serial,
                b.issued,
            ))
    });
    let statuses = delegation_statuses(&grants, node.clock.today());
    let keys = node.store.trusted_keys()?;
    if json {
        print_json(&json!({
            "principal": who,
            "today": node.clock.today(),
            "grants": grants.iter().zip(&statuses).map(|((g, ok), st)| {
                let mut v = serde_json::to_value(g).unwrap_or_default();
                if let Some(m) = v.as_object_mut() {
                    m.insert("verified".into(), json!(ok));
                    m.insert("serial".into(), json!(g.serial));
                    m.insert("status".into(), json!(st.map(DelegationStatus::word)));
                }
                v
            }).collect::<Vec<_>>(),
            "trusted_keys": keys.iter().map(|(p, k, src)| json!({"principal": p.to_string(), "key": k.to_string(), "source": src})).collect::<Vec<_>>(),
        }))?;
    } else {
        let rows: Vec<Vec<String>> = grants
            .iter()
            .zip(&statuses)
            .map(|((g, ok), st)| {
                vec![
                    format!("{:?}", g.kind).to_lowercase(),
                    g.node.to_string(),
                    st.map(|s| s.word().to_string())
                        .unwrap_or_else(|| "-".into()),
                    g.scope
                        .as_ref()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                    g.expires
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "-".into()),
                    if st.is_some() {
                        g.serial.to_string()
                    } else {
                        "-".into()
                    },
                    g.issued.to_string(),
                    if *ok {
                        "yes"
                    } else {
                        "NO: not the trusted key"
                    }
                    .into(),
                ]
            })
            .collect();
        if rows.is_empty() {
            println!("{who} has no delegations in the documents this node holds.");
        } else {
            print_table(
                &[
                    "KIND", "NODE", "STATUS", "SCOPE", "EXPIRES", "SERIAL", "ISSUED", "VERIFIED",
                ],
                &rows,
            );
        }
        for (p, k, src) in keys {
            println!("Trusted {} of {}: {k} ({src})", p.key_name(), p.code());
        }
    }
    Ok(())
}

/// Runs `trust`: trusts a key, or lists the keys trusted.
pub fn trust(
    home: Option<PathBuf>,
    code: String,
    state_key: Option<NodeId>,
    body_key: Option<NodeId>,
    recovery_key: Option<NodeId>,
    json: bool,
) -> anyhow::Result<()> {
    let node = open(home)?;
    if code != "list"
        && let Some(r) = recovery_key
    {
        let principal = match (state_key, body_key) {
            (None, Some(_)) => poa_protocol::Principal::Body(code.parse()?),
            _ => poa_protocol::Principal::State(code.parse()?),
        };
        super::keys::trust_recovery(&node, &principal, &r)?;
        if state_key.is_none() && body_key.is_none() {
            return Ok(());
        }
    }
    if code != "list" {
        let (principal, key) = match (state_key, body_key) {
            (Some(k), None) => (poa_protocol::Principal::State(code.parse()?), k),
            (None, Some(k)) => (poa_protocol::Principal::Body(code.parse()?), k),
            _ => bail!("give the key: --state-key KEY for a State, --body-key KEY for a body"),
        };
        match node.store.learn_key(
            &principal,
            &key,
            &poa_protocol::authority::TrustSource::Operator,
            crate::node::now_secs(),
        )? {
            crate::store::Learned::New => {
                node.store.audit_event(
                    crate::node::now_secs(),
                    "trust",
                    None,
                    None,
                    &format!(
                        "the operator trusted {key} as {}'s {}",
                        principal.code(),
                        principal.key_name()
                    ),
                )?;
                println!(
                    "Trusting {key} as the {} of {}.",
                    principal.key_name(),
                    principal.code()
                );
            }
            crate::store::Learned::Known => {
                println!(
                    "{key} is already trusted as the {} of {}.",
                    principal.key_name(),
                    principal.code()
                );
            }
            crate::store::Learned::Conflict { trusted, source } => bail!(
                "{} already has a trusted {}: {trusted} ({source}); a different key is refused",
                principal.code(),
                principal.key_name()
            ),
        }
    }
    let keys = node.store.trusted_keys()?;
    if json {
        print_json(&serde_json::Value::Array(
            keys.iter()
                .map(|(p, k, src)| json!({"principal": p.to_string(), "key": k.to_string(), "source": src}))
                .collect(),
        ))?;
    } else if code == "list" {
        if keys.is_empty() {
            println!(
                "No keys trusted yet. Pin a node with `poa-node peer add … --state CODE`, or run `poa-node trust CODE --state-key KEY`."
            );
        }
        for (p, k, src) in keys {
            println!("{:<14} {k}  ({src})", p.to_string());
        }
    }
    Ok(())
}

fn parse_scope(words: &[String]) -> anyhow::Result<Scope> {
    if words.len() == 1 && words[0].eq_ignore_ascii_case("all") {
        return Ok(Scope::ALL);
    }
    let mut areas = Vec::new();
    for w in words.iter().flat_map(|w| w.split(',')) {
        if w.eq_ignore_ascii_case("all") {
            bail!("--scope all stands alone; or list areas such as --scope marking tracing");
        }
        areas.push(w.parse::<Area>()?);
    }
    Ok(Scope::Areas(areas))
}

/// Checks that `a` is HOST:PORT, HOST an IP address or a DNS name. The name is not looked up
/// here: it is resolved each time the peer is dialled, so a node whose address changes keeps
/// its name, and a name is accepted on a machine that cannot resolve it yet.
pub(crate) fn check_peer_addr(a: &str) -> Result<(), String> {
    if a.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = a.rsplit_once(':').ok_or_else(|| "no :PORT".to_string())?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(format!("'{port}' is not a port (1 to 65535)")),
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(());
    }
    if host.starts_with('[') || host.contains(':') {
        return Err("an IPv6 address goes in brackets, such as [2001:db8::1]:4433".into());
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!("'{host}' is not a host name"));
    }
    if name
        .split('.')
        .next_back()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("'{host}' is not an IP address"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_peer_addr;

    #[test]
    fn peer_addresses_are_ip_addresses_or_host_names_with_a_port() {
        for ok in [
            "192.0.2.10:4433",
            "[2001:db8::1]:4433",
            "un.example.org:4433",
            "localhost:1",
            "xaa-defence.example.:4433",
        ] {
            assert_eq!(check_peer_addr(ok), Ok(()), "{ok}");
        }
        for bad in [
            "un.example.org",
            "un.example.org:0",
            "un.example.org:99999",
            ":4433",
            "2001:db8::1:4433",
            "-bad.example:4433",
            "under_score.example:4433",
            "1.2.3.999:4433",
            "a..b:4433",
        ] {
            assert!(check_peer_addr(bad).is_err(), "{bad}");
        }
    }
}
