//! Hostile members: real nodes (they sync like anyone) that also send, on their connections,
//! what an attacker holding their key would. Every change an attack makes that its author
//! was not allowed to make is recorded as poison: no honest node may ever let it stand.

use std::collections::BTreeMap;

use poa_protocol::authority::{Grant, GrantKind, Scope, SignedGrant};
use poa_protocol::automerge::ChangeHash;
use poa_protocol::change::{ChangeData, FlatOp, SignedChange};
use poa_protocol::doc::{DocId, target_key};
use poa_protocol::ledger::{Ledger, actor_bytes};
use poa_protocol::model::Area;
use poa_protocol::sign::NodeKey;
use poa_protocol::wire::{self, Bloom, DocSync, Message};
use poa_protocol::{Principal, StateCode};

use super::workload::pool_name;
use super::{EPOCH_SECS, Poison, Role, Sim};

/// What a hostile member is, and what it remembers for its attacks.
#[derive(Debug, Default)]
pub struct Hostility {
    /// A ministry whose key leaked: it keeps writing after its revocation, on old heads.
    leaked: bool,
    /// Heads of its State's documents from while it was still delegated.
    snapshot: BTreeMap<DocId, Vec<ChangeHash>>,
    /// Fresh actor suffixes used so far.
    actors: u8,
}

impl Hostility {
    /// A delegated ministry whose key an attacker holds.
    pub fn leaked_ministry() -> Hostility {
        Hostility {
            leaked: true,
            ..Hostility::default()
        }
    }

    /// A member acting for itself (a rogue State or donor).
    pub fn rogue() -> Hostility {
        Hostility::default()
    }
}

fn put_json(doc: &DocId, container: &str, key: &str, value: String) -> Option<FlatOp> {
    Some(FlatOp {
        container: doc.kind().container(container)?,
        key: key.into(),
        action: poa_protocol::change::FlatAction::Put {
            value,
            preds: vec![],
        },
    })
}

fn target_op(doc: &DocId, id: &str, area: Area, title_len: usize) -> Option<FlatOp> {
    let mut t = crate::target(id, area, "x", 1.0, 2.0);
    t.title = "x".repeat(title_len.max(1));
    if let Some(s) = doc.principal().and_then(|p| match p {
        Principal::State(s) => Some(s),
        _ => None,
    }) {
        t.state = s;
    }
    put_json(
        doc,
        "targets",
        &target_key(id, 1),
        serde_json::to_string(&t).ok()?,
    )
}

fn sync_message(doc: &DocId, changes: Vec<SignedChange>) -> Message {
    let mut heads: Vec<[u8; 32]> = changes
        .iter()
        .filter_map(|c| c.data.to_automerge(doc).ok().map(|a| a.hash().0))
        .collect();
    heads.sort();
    Message::Sync(DocSync {
        doc: doc.clone(),
        heads,
        shared: vec![],
        have: Bloom::default(),
        need: vec![],
        changes,
        answer: false,
    })
}

impl Sim {
    fn key_of(&self, h: usize) -> Option<NodeKey> {
        let node = self.nodes[h].node.as_ref()?;
        Some(NodeKey::from_seed(&node.home.key.seed()))
    }

    /// The actor a hostile node signs with: its store's own, or a fresh one.
    fn actor_of(&mut self, h: usize, fresh: bool) -> Vec<u8> {
        let id = self.nodes[h].id;
        if fresh && let Some(x) = self.hostility.get_mut(&h) {
            x.actors = x.actors.wrapping_add(1);
            return actor_bytes(&id, &[0xa0u8.wrapping_add(x.actors); 8]);
        }
        let suffix = self.nodes[h]
            .node
            .as_ref()
            .map(|n| n.home.actor_suffix)
            .unwrap_or([0; 8]);
        actor_bytes(&id, &suffix)
    }

    /// Builds and signs a change as node `h`, on its own copy of `doc` (or on `deps`).
    fn craft(
        &self,
        h: usize,
        doc: &DocId,
        deps: Option<&[ChangeHash]>,
        actor: &[u8],
        time: i64,
        ops: Vec<FlatOp>,
    ) -> Option<SignedChange> {
        let node = self.nodes[h].node.as_ref()?;
        let data: ChangeData = node
            .store
            .with_ledger(doc, |l| match deps {
                Some(d) => l.change_at(d, actor, time, ops.clone()),
                None => l.next_change(actor, time, ops.clone()),
            })
            .ok()
            .flatten()
            .unwrap_or_else(|| Ledger::new(doc).next_change(actor, time, ops));
        self.sign_as(h, doc, data)
    }

    fn sign_as(&self, h: usize, doc: &DocId, data: ChangeData) -> Option<SignedChange> {
        let key = self.key_of(h)?;
        // A change whose operations Automerge cannot even encode is sent unsigned-looking:
        // the receiver must refuse it before anything else.
        match data.to_automerge(doc) {
            Ok(_) => Some(crate::sign(doc, &key, data)),
            Err(_) => Some(SignedChange {
                data,
                signature: vec![0; 64],
            }),
        }
    }

    fn poison(&mut self, doc: &DocId, c: &SignedChange, what: &str) {
        if let Ok(a) = c.data.to_automerge(doc) {
            self.poison.push(Poison {
                doc: doc.clone(),
                hash: a.hash(),
                what: what.into(),
            });
        }
    }

    /// Sends bytes from hostile node `h` on connection `c`, bypassing its session.
    fn inject(&mut self, c: u64, from_end: usize, what: &str, bytes: Vec<u8>) {
        self.stats.attacks += 1;
        let label = self.conns.get(&c).map(|conn| {
            (
                self.nodes[conn.ends[from_end].node].label.clone(),
                self.nodes[conn.ends[1 - from_end].node].label.clone(),
            )
        });
        if let Some((a, b)) = label {
            self.log(format!("ATTACK {a} -> {b} c{c}: {what}"));
        }
        self.send_bytes(c, 1 - from_end, bytes);
    }

    fn inject_msg(&mut self, c: u64, from_end: usize, what: &str, msg: &Message) {
        match wire::encode_frame(msg) {
            Ok(bytes) => self.inject(c, from_end, what, bytes),
            Err(e) => {
                // Too big to frame: send the length prefix and some of it, as a peer could.
                self.log(format!(
                    "attack {what} does not frame ({e}); sending a lying prefix"
                ));
                let mut bytes = ((wire::MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
                bytes.extend_from_slice(&[0u8; 64]);
                self.inject(c, from_end, what, bytes);
            }
        }
    }

    /// Hostile node `h` attacks one of its honest peers.
    pub(super) fn mischief(&mut self, h: usize) {
        if !self.up(h) {
            return;
        }
        let conns: Vec<(u64, usize)> = self
            .conns
            .iter()
            .filter_map(|(c, conn)| {
                let e = (0..2).find(|e| conn.ends[*e].node == h)?;
                (!self.nodes[conn.ends[1 - e].node].hostile).then_some((*c, e))
            })
            .collect();
        let Some(&(c, e)) = self.rng.pick(&conns) else {
            return;
        };
        let own_state: Option<StateCode> = match self.nodes[h].role {
            Role::State { code, .. } | Role::Ministry { code, .. } => Some(code),
            Role::Body { .. } => None,
        };
        let revoked = self.nodes[h].revoked_at.is_some();
        let leaked = self.hostility.get(&h).is_some_and(|x| x.leaked);
        // While still delegated, remember where its State's documents stood.
        if leaked
            && !revoked
            && let Some(s) = own_state
        {
            for doc in [DocId::State(s), DocId::Draft(s)] {
                let heads = self.nodes[h]
                    .node
                    .as_ref()
                    .and_then(|n| n.store.heads(&doc).ok().flatten());
                if let (Some(heads), Some(x)) = (heads, self.hostility.get_mut(&h)) {
                    x.snapshot.insert(doc, heads);
                }
            }
        }
        let time = EPOCH_SECS + (self.now / 1000) as i64;
        let k = self.rng.range(100, 999);
        match self.rng.below(11) {
            // Backdating: after its revocation, a change on the heads it saw while delegated,
            // dated then.
            0 | 1 if leaked && revoked => {
                let snapshot: Vec<(DocId, Vec<ChangeHash>)> = self
                    .hostility
                    .get(&h)
                    .map(|x| x.snapshot.clone().into_iter().collect())
                    .unwrap_or_default();
                let Some((doc, deps)) = self.rng.pick(&snapshot).cloned() else {
                    return;
                };
                let fresh = self.rng.chance(0.5);
                let actor = self.actor_of(h, fresh);
                let Some(op) = target_op(&doc, &format!("B{k}"), Area::Marking, 8) else {
                    return;
                };
                if let Some(ch) = self.craft(h, &doc, Some(&deps), &actor, EPOCH_SECS, vec![op]) {
                    self.poison(&doc, &ch, "backdated after revocation");
                    self.inject_msg(c, e, "backdated change", &sync_message(&doc, vec![ch]));
                }
            }
            // Equivocation: two changes at one position, one to each of two peers.
            2 | 3 => {
                let doc = match (&self.nodes[h].role, own_state) {
                    (Role::Ministry { .. }, Some(s)) if !revoked => {
                        if self.rng.chance(0.5) {
                            DocId::State(s)
                        } else {
                            DocId::Draft(s)
                        }
                    }
                    (Role::State { .. }, Some(s)) => DocId::State(s),
                    (Role::Body { code, .. }, _) => DocId::Offers(code.to_string()),
                    _ => return,
                };
                let actor = self.actor_of(h, false);
                let (Some(op1), Some(op2)) = (
                    target_op(&doc, &format!("E{k}"), Area::Marking, 5),
                    target_op(&doc, &format!("E{k}"), Area::Marking, 6),
                ) else {
                    return;
                };
                let (Some(c1), Some(c2)) = (
                    self.craft(h, &doc, None, &actor, time, vec![op1]),
                    self.craft(h, &doc, None, &actor, time, vec![op2]),
                ) else {
                    return;
                };
                if let (Ok(a), Ok(b)) = (c1.data.to_automerge(&doc), c2.data.to_automerge(&doc)) {
                    self.twins.push((doc.clone(), a.hash(), b.hash()));
                }
                let other = conns
                    .iter()
                    .copied()
                    .find(|x| *x != (c, e))
                    .unwrap_or((c, e));
                self.inject_msg(
                    c,
                    e,
                    "equivocation, first twin",
                    &sync_message(&doc, vec![c1]),
                );
                self.inject_msg(
                    other.0,
                    other.1,
                    "equivocation, second twin",
                    &sync_message(&doc, vec![c2]),
                );
            }
            // A forged State key: a delegation to itself signed by a key it made up, and a
            // target written under it, in another State's document.
            4 => {
                let states: Vec<StateCode> = self
                    .nodes
                    .iter()
                    .filter(|n| !n.hostile)
                    .filter_map(|n| match n.role {
                        Role::State { code, .. } => Some(code),
                        _ => None,
                    })
                    .filter(|s| Some(*s) != own_state)
                    .collect();
                let Some(&victim) = self.rng.pick(&states) else {
                    return;
                };
                let doc = if self.rng.chance(0.7) {
                    DocId::State(victim)
                } else {
                    DocId::Draft(victim)
                };
                let fake = NodeKey::from_seed(&self.rng.bytes32());
                let grant = SignedGrant::sign(
                    &fake,
                    Grant {
                        kind: GrantKind::Delegation,
                        principal: Principal::State(victim),
                        node: self.nodes[h].id,
                        scope: Some(Scope::ALL),
                        expires: None,
                        issued: self.clock.today(),
                        key: fake.node_id(),
                        cutoff: Vec::new(),
                        serial: 0,
                        kept: Vec::new(),
                        recovery: None,
                    },
                );
                let actor = self.actor_of(h, false);
                let ops: Vec<FlatOp> = [
                    put_json(&doc, "delegations", &grant.storage_key(), grant.to_text()),
                    target_op(&doc, &format!("F{k}"), Area::Marking, 5),
                ]
                .into_iter()
                .flatten()
                .collect();
                if let Some(ch) = self.craft(h, &doc, None, &actor, time, ops) {
                    self.poison(&doc, &ch, "written under a forged State key");
                    self.inject_msg(c, e, "forged key", &sync_message(&doc, vec![ch]));
                }
            }
            // Squatting a pool it does not coordinate.
            5 => {
                let pools = self.pools.clone();
                let Some(pool) = self.rng.pick(&pools).cloned() else {
                    return;
                };
                let charter = serde_json::json!({
                    "name": "Taken over", "node": self.nodes[h].id.to_string(),
                    "coordinator": "XQQ", "created": "2026-03-01"
                });
                let actor = self.actor_of(h, false);
                let Some(op) = put_json(&pool, "charter", "charter", charter.to_string()) else {
                    return;
                };
                if let Some(ch) = self.craft(h, &pool, None, &actor, time, vec![op]) {
                    self.poison(&pool, &ch, "pool squatted");
                    let what = format!("squat {}", pool_name(&pool));
                    self.inject_msg(c, e, &what, &sync_message(&pool, vec![ch]));
                }
            }
            // Out of its scope: a ministry for marking writes a destruction target.
            6 if leaked && !revoked => {
                let Some(s) = own_state else { return };
                let scoped = matches!(&self.nodes[h].role, Role::Ministry { scope: Scope::Areas(a), .. } if !a.contains(&Area::Destruction));
                if !scoped {
                    return;
                }
                let doc = DocId::Draft(s);
                let actor = self.actor_of(h, false);
                let Some(op) = target_op(&doc, &format!("S{k}"), Area::Destruction, 5) else {
                    return;
                };
                if let Some(ch) = self.craft(h, &doc, None, &actor, time, vec![op]) {
                    self.poison(&doc, &ch, "out of its delegation's scope");
                    self.inject_msg(c, e, "out of scope", &sync_message(&doc, vec![ch]));
                }
            }
            // A flood of signed changes whose dependencies never come.
            7 => {
                let Some(s) = own_state.or_else(|| {
                    self.nodes.iter().find_map(|n| match n.role {
                        Role::State { code, .. } => Some(code),
                        _ => None,
                    })
                }) else {
                    return;
                };
                let doc = DocId::State(s);
                let n = self.rng.range(20, 300);
                let mut changes = Vec::new();
                for j in 0..n {
                    let actor = self.actor_of(h, false);
                    let Some(op) = target_op(&doc, &format!("W{k}x{j}"), Area::Marking, 5) else {
                        return;
                    };
                    let mut data = Ledger::new(&doc).next_change(&actor, time, vec![op]);
                    data.deps = vec![self.rng.bytes32()];
                    data.seq = 2 + j;
                    if let Some(ch) = self.sign_as(h, &doc, data) {
                        changes.push(ch);
                    }
                }
                let what = format!("{n} changes with missing dependencies");
                self.inject_msg(c, e, &what, &sync_message(&doc, changes));
            }
            // Garbage, a lying length prefix, or a change breaking the bounds.
            8 => match self.rng.below(4) {
                0 => {
                    let len = self.rng.range(1, 300) as usize;
                    let mut bytes = (len as u32).to_be_bytes().to_vec();
                    bytes.extend((0..len).map(|_| self.rng.below(256) as u8));
                    self.inject(c, e, "garbage frame", bytes);
                }
                1 => {
                    let mut bytes = ((wire::MAX_FRAME as u32) + 1).to_be_bytes().to_vec();
                    bytes.extend_from_slice(&[7u8; 32]);
                    self.inject(c, e, "frame announcing more than the maximum", bytes);
                }
                2 => {
                    let Some(doc) = own_state
                        .map(DocId::State)
                        .or_else(|| self.pools.first().cloned())
                    else {
                        return;
                    };
                    let actor = self.actor_of(h, false);
                    let Some(op) = target_op(&doc, &format!("L{k}"), Area::Marking, 70_000) else {
                        return;
                    };
                    if let Some(ch) = self.craft(h, &doc, None, &actor, time, vec![op]) {
                        self.poison(&doc, &ch, "a value over the size bound");
                        self.inject_msg(c, e, "oversized value", &sync_message(&doc, vec![ch]));
                    }
                }
                _ => {
                    let Some(doc) = own_state.map(DocId::State) else {
                        return;
                    };
                    let actor = self.actor_of(h, true);
                    let Some(op) = target_op(&doc, &format!("C{k}"), Area::Marking, 5) else {
                        return;
                    };
                    let Some(node) = self.nodes[h].node.as_ref() else {
                        return;
                    };
                    let data = node
                        .store
                        .with_ledger(&doc, |l| l.next_change(&actor, time, vec![op.clone()]))
                        .ok()
                        .flatten();
                    let Some(mut data) = data else { return };
                    data.start_op = u32::MAX as u64;
                    if let Some(ch) = self.sign_as(h, &doc, data) {
                        self.poison(&doc, &ch, "an operation counter at the top of its range");
                        self.inject_msg(c, e, "counter at the top", &sync_message(&doc, vec![ch]));
                    }
                }
            },
            // Replaying a frame it sent before.
            9 => {
                let sent = self
                    .conns
                    .get(&c)
                    .map(|conn| conn.ends[e].sent.clone())
                    .unwrap_or_default();
                if let Some(bytes) = self.rng.pick(&sent).cloned() {
                    self.inject(c, e, "replayed frame", bytes);
                }
            }
            // A second hello, naming another key.
            _ => {
                let Some(node) = self.nodes[h].node.as_ref() else {
                    return;
                };
                let mut hello = poa_node::host::hello(node);
                hello.key = Some(NodeKey::from_seed(&self.rng.bytes32()).node_id());
                self.inject_msg(c, e, "second hello", &Message::Hello(hello));
            }
        }
    }
}
