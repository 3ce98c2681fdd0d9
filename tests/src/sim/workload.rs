//! The federation a seed builds, and what its people do while the simulation runs.

use std::collections::{BTreeMap, BTreeSet};

use poa_node::node::Clock;
use poa_node::pools::Invitee;
use poa_protocol::authority::{Scope, TrustSource};
use poa_protocol::doc::DocId;
use poa_protocol::model::{Area, AssistanceKind, Offer, Progress};
use poa_protocol::{BodyCode, BodyKind, Date, NodeId, StateCode};

use super::hostile::Hostility;
use super::rng::Rng;
use super::{EPOCH_SECS, Oracle, Role, Sim, Stats};

/// The simulated time during which the workload, faults and attacks run.
const WORKLOAD_MS: (u64, u64) = (10_000, 40_000);

fn state_code(i: usize) -> StateCode {
    let letters = b"ABCDEFGHIJKLMNOP";
    StateCode::from_static(&format!("XA{}", letters[i % letters.len()] as char))
}

fn date_in(days: i64) -> Date {
    Date::from_unix_seconds(EPOCH_SECS + days * 86_400)
}

fn target_record(id: &str, area: Area, value: f64) -> poa_protocol::model::Target {
    let mut t = crate::target(id, area, &format!("Target {id}"), 10.0, value);
    t.deadline = date_in(700);
    t
}

impl Sim {
    /// The federation of `seed`: its States with their ministries, bodies, hostile members,
    /// pins, trust, delegations, shares and pool.
    pub(super) fn build(seed: u64) -> Sim {
        let mut rng = Rng::new(seed);
        // tmpfs where there is one: the simulation's SQLite files need no disk.
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::Builder::new().prefix("poa-sim").tempdir_in(shm)
        } else {
            tempfile::Builder::new().prefix("poa-sim").tempdir()
        }
        .expect("a temp folder");
        let workload_until = rng.range(WORKLOAD_MS.0, WORKLOAD_MS.1);
        let mut sim = Sim {
            seed,
            rng: rng.fork(),
            now: 0,
            day_offset: 0,
            clock: Clock::manual(EPOCH_SECS),
            _dir: dir,
            nodes: Vec::new(),
            links: Vec::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            queue: BTreeMap::new(),
            seq: 0,
            cut: None,
            workload_until,
            trace: Vec::new(),
            poison: Vec::new(),
            twins: Vec::new(),
            oracle: Oracle::default(),
            violations: Vec::new(),
            stats: Stats::default(),
            pools: Vec::new(),
            hostility: BTreeMap::new(),
            moved: 0,
            push_only: super::push_only(seed),
        };
        let large = rng.chance(0.05);
        let states = if large {
            rng.range(8, 12)
        } else {
            rng.range(1, 4)
        } as usize;
        let mut firsts = Vec::new();
        for s in 0..states {
            let code = state_code(s);
            let first = sim.add_node(Role::State { code, first: true }, false);
            firsts.push(first);
            for _ in 0..rng.range(0, 2) {
                let scope = if rng.chance(0.5) {
                    Scope::ALL
                } else {
                    Scope::Areas(vec![*rng.pick(Area::ALL).unwrap_or(&Area::Marking)])
                };
                let expires = rng.chance(0.2).then(|| date_in(rng.range(5, 60) as i64));
                let m = sim.add_node(
                    Role::Ministry {
                        code,
                        scope,
                        expires,
                    },
                    false,
                );
                sim.link(m, first);
            }
        }
        let secretariat = sim.add_node(
            Role::Body {
                code: BodyCode::from_static("UNODA"),
                kind: BodyKind::Secretariat,
            },
            false,
        );
        let regional = (states >= 2 && rng.chance(0.8)).then(|| {
            sim.add_node(
                Role::Body {
                    code: BodyCode::from_static("XRB"),
                    kind: BodyKind::Regional,
                },
                false,
            )
        });
        let mut donors = Vec::new();
        for d in 0..rng.range(0, 2) {
            donors.push(sim.add_node(
                Role::Body {
                    code: BodyCode::from_static(&format!("XZ{}", ["Z", "Y"][d as usize % 2])),
                    kind: BodyKind::Donor,
                },
                false,
            ));
        }
        // Hostile members, in three out of four federations.
        let hostile_count = if rng.chance(0.75) { rng.range(1, 2) } else { 0 };
        for _ in 0..hostile_count {
            let kind = rng.below(3);
            let i = match kind {
                0 => {
                    let s = rng.index(states);
                    let code = state_code(s);
                    let scope = if rng.chance(0.5) {
                        Scope::ALL
                    } else {
                        Scope::Areas(vec![Area::Marking])
                    };
                    let i = sim.add_node(
                        Role::Ministry {
                            code,
                            scope,
                            expires: None,
                        },
                        true,
                    );
                    sim.link(i, firsts[s]);
                    sim.hostility.insert(i, Hostility::leaked_ministry());
                    i
                }
                1 => {
                    let i = sim.add_node(
                        Role::State {
                            code: StateCode::from_static("XQQ"),
                            first: true,
                        },
                        true,
                    );
                    sim.hostility.insert(i, Hostility::rogue());
                    i
                }
                _ => {
                    let i = sim.add_node(
                        Role::Body {
                            code: BodyCode::from_static("XQD"),
                            kind: BodyKind::Donor,
                        },
                        true,
                    );
                    sim.hostility.insert(i, Hostility::rogue());
                    i
                }
            };
            let _ = i;
        }
        while sim.nodes.len() < 3 {
            let d = sim.add_node(
                Role::Body {
                    code: BodyCode::from_static("XZX"),
                    kind: BodyKind::Donor,
                },
                false,
            );
            donors.push(d);
        }
        sim.stats.nodes = sim.nodes.len();
        sim.stats.hostile = sim.hostility.len();

        // Pins: a random spanning tree, some more links, and the usual ones (States to the
        // Secretariat and to their regional body).
        let n = sim.nodes.len();
        let mut order: Vec<usize> = (0..n).collect();
        for k in (1..n).rev() {
            order.swap(k, rng.index(k + 1));
        }
        for k in 1..n {
            let to = order[rng.index(k)];
            sim.link(order[k], to);
        }
        for _ in 0..(n / 2) {
            let (a, b) = (rng.index(n), rng.index(n));
            sim.link(a, b);
        }
        for &f in &firsts {
            if rng.chance(0.6) {
                sim.link(f, secretariat);
            }
            if let Some(r) = regional
                && rng.chance(0.7)
            {
                sim.link(f, r);
            }
        }

        // Trust: some operators give every key at set-up (`poa-node trust`); the others learn
        // keys from the nodes they pinned, or from an introducer they chose.
        let keys: Vec<(poa_protocol::Principal, NodeId)> = sim
            .nodes
            .iter()
            .filter(|n| !n.hostile || matches!(n.role, Role::State { .. } | Role::Body { .. }))
            .filter_map(|n| {
                let node = n.node.as_ref()?;
                Some((n.principal(), node.home.principal_key.as_ref()?.node_id()))
            })
            .collect();
        for i in 0..n {
            if sim.nodes[i].hostile {
                continue;
            }
            let all = rng.chance(0.5) || Some(i) == regional;
            let now = sim.secs();
            if let Some(node) = sim.nodes[i].node.as_ref() {
                for (p, k) in &keys {
                    let honest_key = !sim.nodes.iter().any(|x| x.hostile && x.principal() == *p);
                    if all && honest_key {
                        let _ = node.store.learn_key(p, k, &TrustSource::Operator, now);
                    }
                }
            }
            let intro: Vec<usize> = sim
                .links
                .iter()
                .filter_map(|l| match (l.a == i, l.b == i) {
                    (true, _) => Some(l.b),
                    (_, true) => Some(l.a),
                    _ => None,
                })
                .filter(|p| Some(*p) == regional || *p == secretariat)
                .collect();
            for p in intro {
                if rng.chance(0.4) {
                    let id = sim.nodes[p].id;
                    if let Some(node) = sim.nodes[i].node.as_ref() {
                        let _ = node.store.set_introducer(&id, true);
                    }
                }
            }
        }

        // Delegations, from each State's first node to its other nodes.
        for i in 0..n {
            if let Role::Ministry {
                code,
                scope,
                expires,
            } = sim.nodes[i].role.clone()
            {
                let id = sim.nodes[i].id;
                let Some(first) = firsts.iter().copied().find(
                    |f| matches!(sim.nodes[*f].role, Role::State { code: c, .. } if c == code),
                ) else {
                    continue;
                };
                sim.act(first, "delegate", |node| node.delegate(id, scope, expires));
            }
        }

        // Shares: most States share their published document with the Secretariat, some with
        // everyone, some with donors.
        let secretariat_id = sim.nodes[secretariat].id;
        for &f in &firsts {
            let code = match sim.nodes[f].role {
                Role::State { code, .. } => code,
                _ => continue,
            };
            let doc = DocId::State(code);
            let mut with = Vec::new();
            if rng.chance(0.8) {
                with.push(secretariat_id);
            }
            for &d in &donors {
                if rng.chance(0.3) {
                    with.push(sim.nodes[d].id);
                }
            }
            let public = rng.chance(0.15);
            sim.share(f, &doc, &with, public);
        }

        // The pool, when there is a regional body.
        if let Some(r) = regional {
            let pool = sim.act(r, "pool create", |node| {
                node.pool_create("region", "The sub-region", None)
            });
            if let Some(pool) = pool {
                sim.oracle.coordinator.insert(pool.clone(), sim.nodes[r].id);
                sim.pools.push(pool.clone());
                for &f in &firsts {
                    if rng.chance(0.7) {
                        sim.invite(r, &pool, f);
                    }
                }
                if rng.chance(0.7) {
                    sim.observe(r, &pool, secretariat);
                }
            }
        }
        sim.log(format!(
            "{}federation of {} nodes ({} hostile), {} links",
            if sim.push_only { "push-only " } else { "" },
            sim.nodes.len(),
            sim.hostility.len(),
            sim.links.len()
        ));
        sim
    }

    // The oracle is told before the write: a session may send the document the moment it is
    // written, and a superset of the audience is what the oracle is for.
    fn share(&mut self, i: usize, doc: &DocId, with: &[NodeId], public: bool) {
        self.oracle
            .shared
            .entry(doc.clone())
            .or_default()
            .extend(with.iter().copied());
        if public {
            self.oracle.public.insert(doc.clone());
        }
        self.act(i, "share", |node| node.share(doc, with, public));
    }

    fn invite(&mut self, r: usize, pool: &DocId, state_node: usize) {
        let Role::State { code, .. } = self.nodes[state_node].role else {
            return;
        };
        let name = pool_name(pool);
        self.oracle
            .invited
            .entry(pool.clone())
            .or_default()
            .insert(code);
        self.act(r, "pool invite", |node| {
            node.pool_invite(&name, Invitee::State(code))
        });
    }

    fn observe(&mut self, r: usize, pool: &DocId, who: usize) {
        let id = self.nodes[who].id;
        let name = pool_name(pool);
        // Recorded before the write: the observer may read from the moment it is written.
        self.oracle
            .observers
            .entry(pool.clone())
            .or_default()
            .insert(id);
        self.act(r, "pool observe", |node| {
            node.pool_observe(&name, id, "an observer")
        });
    }

    /// One step of the workload: a person acts, a fault strikes, or a hostile member attacks.
    pub(super) fn step(&mut self) {
        // Crashed nodes come back after a while.
        for i in 0..self.nodes.len() {
            if !self.up(i) && self.rng.chance(0.3) {
                self.restart(i);
            }
        }
        let roll = self.rng.below(100);
        match roll {
            0..=59 => self.person(),
            60..=74 => {
                let hostile: Vec<usize> = self.hostility.keys().copied().collect();
                if let Some(&h) = self.rng.pick(&hostile) {
                    self.mischief(h);
                } else {
                    self.person();
                }
            }
            75..=96 => self.fault(),
            _ => self.days_pass(),
        }
    }

    fn fault(&mut self) {
        match self.rng.below(4) {
            0 | 1 => {
                let conns: Vec<u64> = self.conns.keys().copied().collect();
                if let Some(&c) = self.rng.pick(&conns) {
                    self.stats.faults += 1;
                    self.teardown(c, "connection reset");
                }
            }
            2 => {
                let i = self.rng.index(self.nodes.len());
                self.crash(i);
            }
            _ => {
                if self.cut.is_some() {
                    self.log("partition healed");
                    self.cut = None;
                    for l in 0..self.links.len() {
                        if self.links[l].conn.is_none() {
                            let at = self.now + self.rng.range(10, 500);
                            self.plan_reconnect(l, at);
                        }
                    }
                } else {
                    self.stats.faults += 1;
                    let side: BTreeSet<usize> = (0..self.nodes.len())
                        .filter(|_| self.rng.chance(0.5))
                        .collect();
                    self.log(format!("PARTITION {side:?}"));
                    self.cut = Some(side);
                    let cut: Vec<u64> = (0..self.links.len())
                        .filter(|l| self.is_cut(*l))
                        .filter_map(|l| self.links[l].conn)
                        .collect();
                    for c in cut {
                        self.teardown(c, "partition");
                    }
                }
            }
        }
    }

    /// Days pass: delegations may expire, and the key holders revoke them.
    fn days_pass(&mut self) {
        let days = self.rng.range(1, 25) as i64;
        self.day_offset += days;
        self.clock.set(self.secs());
        self.log(format!("{days} days pass"));
        for i in 0..self.nodes.len() {
            if matches!(self.nodes[i].role, Role::State { first: true, .. })
                && !self.nodes[i].hostile
                && let Some(lapsed) = self.act(i, "lapse expired", |node| node.lapse_expired())
            {
                for id in lapsed {
                    self.mark_revoked(id);
                }
            }
        }
    }

    fn mark_revoked(&mut self, id: NodeId) {
        let now = self.now;
        if let Some(n) = self.nodes.iter_mut().find(|n| n.id == id) {
            n.revoked_at.get_or_insert(now);
        }
    }

    /// An honest person does something through their node.
    fn person(&mut self) {
        let honest: Vec<usize> = (0..self.nodes.len())
            .filter(|i| !self.nodes[*i].hostile && self.up(*i))
            .collect();
        let Some(&i) = self.rng.pick(&honest) else {
            return;
        };
        match self.nodes[i].role.clone() {
            Role::State { code, first } => {
                let roll = self.rng.below(100);
                match roll {
                    0..=49 => self.draft(i, code, None),
                    50..=59 if first => {
                        let others: Vec<NodeId> = self
                            .nodes
                            .iter()
                            .filter(|n| n.principal() != self.nodes[i].principal())
                            .map(|n| n.id)
                            .collect();
                        if let Some(&who) = self.rng.pick(&others) {
                            self.share(i, &DocId::State(code), &[who], false);
                        }
                    }
                    60..=64 if first => {
                        let doc = DocId::State(code);
                        let listed: Vec<String> = self.nodes[i]
                            .node
                            .as_ref()
                            .and_then(|n| n.readers(&doc).ok())
                            .unwrap_or_default()
                            .into_iter()
                            .collect();
                        if let Some(who) = self.rng.pick(&listed).cloned() {
                            self.act(i, "unshare", |node| {
                                node.write(&doc, |w, _| w.delete("readers", &who).map(|_| ()))
                            });
                        }
                    }
                    65..=74 if first => {
                        let delegated: Vec<NodeId> = self
                            .nodes
                            .iter()
                            .filter(|n| {
                                matches!(n.role, Role::Ministry { code: c, .. } if c == code)
                                    && n.revoked_at.is_none()
                            })
                            .map(|n| n.id)
                            .collect();
                        // Hostile ministries are revoked more often: their key leaked.
                        let leaked: Vec<NodeId> = self
                            .nodes
                            .iter()
                            .filter(|n| n.hostile && delegated.contains(&n.id))
                            .map(|n| n.id)
                            .collect();
                        let pick = if !leaked.is_empty() && self.rng.chance(0.8) {
                            self.rng.pick(&leaked).copied()
                        } else if self.rng.chance(0.3) {
                            self.rng.pick(&delegated).copied()
                        } else {
                            None
                        };
                        if let Some(id) = pick
                            && self.act(i, "revoke", |node| node.revoke(id)).is_some()
                        {
                            self.mark_revoked(id);
                        }
                    }
                    75..=89 if first => {
                        let pools = self.pools.clone();
                        if let Some(pool) = self.rng.pick(&pools).cloned() {
                            let name = pool_name(&pool);
                            if self.rng.chance(0.75) {
                                self.oracle.joined.entry(code).or_default().insert(pool);
                                self.act(i, "pool join", |node| node.pool_join(&name));
                            } else {
                                self.act(i, "pool leave", |node| node.pool_leave(&name));
                            }
                        }
                    }
                    _ => self.draft(i, code, None),
                }
            }
            Role::Ministry { code, scope, .. } => {
                let area = match &scope {
                    Scope::Areas(a) if self.rng.chance(0.9) => a.first().copied(),
                    _ => None,
                };
                self.draft(i, code, area);
            }
            Role::Body { kind, code } => match kind {
                BodyKind::Regional => {
                    let pools = self.pools.clone();
                    let Some(pool) = self.rng.pick(&pools).cloned() else {
                        return;
                    };
                    let states: Vec<usize> = (0..self.nodes.len())
                        .filter(|s| matches!(self.nodes[*s].role, Role::State { first: true, .. }))
                        .filter(|s| !self.nodes[*s].hostile)
                        .collect();
                    if self.rng.chance(0.6) {
                        if let Some(&s) = self.rng.pick(&states) {
                            self.invite(i, &pool, s);
                        }
                    } else {
                        let bodies: Vec<usize> = (0..self.nodes.len())
                            .filter(|b| matches!(self.nodes[*b].role, Role::Body { .. }) && *b != i)
                            .collect();
                        if let Some(&b) = self.rng.pick(&bodies) {
                            self.observe(i, &pool, b);
                        }
                    }
                }
                BodyKind::Donor => {
                    let k = self.rng.range(1, 50);
                    let offer = Offer {
                        id: format!("O{k}"),
                        provider: code.to_string(),
                        title: format!("Offer {k}"),
                        areas: vec![*self.rng.pick(Area::ALL).unwrap_or(&Area::Marking)],
                        mosaic: Vec::new(),
                        kinds: vec![AssistanceKind::Training],
                        regions: Vec::new(),
                        budget_min: None,
                        budget_max: Some(10_000.0),
                        currency: Some("USD".into()),
                        from: None,
                        until: None,
                    };
                    if self.rng.chance(0.7) {
                        self.act(i, "offer", |node| {
                            node.add_offer(offer)?;
                            node.publish_offers(None)
                        });
                    } else {
                        let doc = DocId::Offers(code.to_string());
                        let others: Vec<NodeId> = self
                            .nodes
                            .iter()
                            .filter(|n| n.principal() != self.nodes[i].principal())
                            .map(|n| n.id)
                            .collect();
                        if let Some(&who) = self.rng.pick(&others) {
                            self.share(i, &doc, &[who], false);
                        }
                    }
                }
                BodyKind::Secretariat => {}
            },
        }
    }

    /// A State's person drafts, corrects, reports or publishes a target.
    fn draft(&mut self, i: usize, code: StateCode, area: Option<Area>) {
        let existing: Vec<String> = self.nodes[i]
            .node
            .as_ref()
            .and_then(|n| n.state_data(&DocId::Draft(code)).ok())
            .map(|d| {
                let mut ids: Vec<String> = d.targets.keys().map(|(id, _)| id.clone()).collect();
                ids.dedup();
                ids
            })
            .unwrap_or_default();
        let adding = existing.is_empty() || self.rng.chance(0.3);
        let id = match self.rng.pick(&existing) {
            Some(id) if !adding => id.clone(),
            _ => format!("T{}", self.rng.range(1, 30)),
        };
        let area = area.unwrap_or_else(|| *self.rng.pick(Area::ALL).unwrap_or(&Area::Marking));
        let value = self.rng.range(20, 100) as f64;
        let today = self.clock.today();
        let what = if adding { 0 } else { self.rng.range(1, 3) };
        match what {
            0 => {
                self.act(i, &format!("add target {id}"), |node| {
                    node.add_target(target_record(&id, area, value))
                });
            }
            1 => {
                self.act(i, &format!("revise target {id}"), |node| {
                    node.supersede_target(&id, |t| {
                        t.value = Some(value);
                        Ok(())
                    })
                });
            }
            2 => {
                self.act(i, &format!("report on {id}"), |node| {
                    node.add_progress(Progress::bare(&id, today, Some(value / 2.0)))
                });
            }
            _ => {
                let pub_ok = self
                    .act(i, &format!("publish {id}"), |node| node.publish_target(&id))
                    .is_some();
                let _ = (pub_ok, code);
            }
        }
    }
}

/// The name `pool` commands take: the pool's full id.
pub(super) fn pool_name(pool: &DocId) -> String {
    match pool {
        DocId::Pool(p) => p.to_string(),
        other => other.to_string(),
    }
}
