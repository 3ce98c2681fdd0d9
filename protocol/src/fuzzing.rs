//! The bodies of the fuzz targets (`fuzz/`, run with `cargo fuzz` on nightly), kept here so
//! that a normal stable test replays every input the fuzzer ever found (`fuzz/regressions/`).
//! Each takes arbitrary bytes and must never panic; where it can, it also checks a property.

use crate::authority::{Cutoff, Grant, GrantKind, Scope, SignedGrant};
use crate::change::{ChangeData, FlatAction, FlatOp, OpRef, SignedChange};
use crate::doc::{DocId, PoolId};
use crate::id::{NodeId, Principal, StateCode};
use crate::ledger::{Admitted, Ledger, actor_bytes};
use crate::session::{Mode, Session, SessionConfig};
use crate::sign::{NodeKey, sign_change};
use crate::testing::{MemHost, Pin, host};
use crate::wire::{self, FrameBuffer, Message};

/// The frame decoder: bytes arriving in arbitrary pieces. A decoded message re-encodes to a
/// frame that decodes to the same message.
pub fn frame_decoder(data: &[u8]) {
    let mut buf = FrameBuffer::default();
    let split = data.first().map_or(1, |b| usize::from(*b % 16) + 1);
    for piece in data.chunks(split) {
        buf.push(piece);
        match buf.next_message() {
            Ok(Some(m)) => {
                if let Ok(f) = wire::encode_frame(&m) {
                    let again = wire::decode_payload(&f[4..]);
                    assert_eq!(
                        again.as_ref().ok(),
                        Some(&m),
                        "a message did not round-trip"
                    );
                }
            }
            Ok(None) => {}
            Err(_) => return,
        }
    }
    let _ = wire::decode_payload(data);
}

/// The change decoder and checks (what replaced the chunk splitter): a stored or sent change
/// decodes, is checked, and is derived into an Automerge change, all bounded.
pub fn change_decoder(data: &[u8]) {
    let Ok(c) = ChangeData::from_bytes(data) else {
        return;
    };
    for containers in [7, 11] {
        if c.check(containers).is_ok() {
            for doc in ["state/XAA", "offers/XZZ"] {
                if let Ok(doc) = doc.parse::<DocId>() {
                    let _ = c.to_automerge(&doc);
                }
            }
        }
    }
}

/// A cursor over the fuzzer's bytes.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
}

fn key(seed: u8) -> NodeKey {
    NodeKey::from_seed(&[seed; 32])
}

fn xaa() -> StateCode {
    StateCode::from_static("XAA")
}

fn grant(
    kind: GrantKind,
    node: &NodeKey,
    scope: Option<Scope>,
    cutoff: Vec<Cutoff>,
) -> SignedGrant {
    SignedGrant::sign(
        &key(40),
        Grant {
            kind,
            principal: Principal::State(xaa()),
            node: node.node_id(),
            scope,
            expires: None,
            issued: crate::date::Date::from_unix_seconds(1_767_225_600),
            key: key(40).node_id(),
            cutoff,
            serial: 0,
            kept: Vec::new(),
            recovery: None,
        },
    )
}

/// The gate on changes an authorised but hostile author could send: the fuzzer's bytes choose
/// authors (a node delegated for all, one for marking, one revoked later, a stranger), what each
/// change builds on (any held change, so backdating and equivocation come for free), and its
/// operations (records of any area, grants, deletes and replacements naming live or invented
/// operations). Every change is signed for real. Then: settling twice gives the same result,
/// and a second ledger fed the same changes in another causal order reaches the same view,
/// heads and verdicts.
pub fn gate(data: &[u8]) {
    let doc = DocId::State(xaa());
    let trusted = key(40).node_id();
    let authors = [key(1), key(2), key(3), key(4)];
    let mut l = Ledger::new(&doc);
    let mut all: Vec<SignedChange> = Vec::new();
    let admit = |l: &mut Ledger, c: SignedChange, all: &mut Vec<SignedChange>| {
        if matches!(l.admit(&c, Some(&trusted)), Admitted::New(_)) {
            all.push(c);
        }
        l.settle(Some(&trusted));
    };
    // Delegations: 1 for all, 2 for marking, 3 for all (revoked when the bytes say so).
    let delegations: Vec<FlatOp> = [
        (0usize, Some(Scope::ALL)),
        (1, Some(Scope::Areas(vec![crate::model::Area::Marking]))),
        (2, Some(Scope::ALL)),
    ]
    .iter()
    .map(|(i, s)| {
        grant_op(
            &doc,
            &grant(GrantKind::Delegation, &authors[*i], s.clone(), vec![]),
        )
    })
    .collect();
    l.settle(Some(&trusted));
    let first = l.next_change(
        &actor_bytes(&authors[0].node_id(), &[0; 8]),
        1_767_225_600,
        delegations,
    );
    admit(&mut l, signed(&doc, &authors[0], first), &mut all);

    let mut b = Bytes(data);
    let keys = ["T1/1", "T1/2", "T2/1", "*", "x", "T1"];
    let containers = [
        "targets",
        "progress",
        "withdrawn",
        "readers",
        "matches",
        "revocations",
    ];
    while let (Some(who), Some(shape)) = (b.byte(), b.byte()) {
        let w = usize::from(who % 4);
        let author = &authors[w];
        let actor = actor_bytes(&author.node_id(), &[who >> 6; 8]);
        // What it builds on: the heads, or one held change (an old state).
        let held: Vec<_> = l.signed_changes().map(|(h, _)| h).collect();
        let deps = if shape & 1 == 0 || held.is_empty() {
            l.settled().map(|s| s.heads.clone()).unwrap_or_default()
        } else {
            vec![held[usize::from(shape >> 1) % held.len()]]
        };
        let n = usize::from(b.byte().unwrap_or(0) % 3) + 1;
        let mut ops = Vec::new();
        for _ in 0..n {
            let (Some(c), Some(k), Some(v)) = (b.byte(), b.byte(), b.byte()) else {
                break;
            };
            let container = containers[usize::from(c) % containers.len()];
            let key_text = keys[usize::from(k) % keys.len()];
            let Some(ci) = doc.kind().container(container) else {
                continue;
            };
            if container == "revocations" {
                let cut = l.cutoff_for(&authors[2].node_id());
                let g = grant(
                    GrantKind::Revocation,
                    &authors[2],
                    None,
                    if v & 1 == 0 { cut } else { vec![] },
                );
                ops.push(grant_op(&doc, &g));
                continue;
            }
            let area = ["marking", "stockpile", "tracing"][usize::from(v) % 3];
            let value = serde_json::json!({"id": key_text.split('/').next(), "area": area, "target": "T1", "v": v}).to_string();
            let live = l.live_refs(container, key_text);
            let preds = match (v >> 4) % 4 {
                0 => Vec::new(),
                1 => live,
                _ => vec![OpRef {
                    counter: u64::from(v),
                    actor: actor.clone(),
                }],
            };
            let action = if v & 8 == 0 {
                FlatAction::Put { value, preds }
            } else {
                FlatAction::Delete { preds }
            };
            if ops
                .iter()
                .any(|o: &FlatOp| o.container == ci && o.key == key_text)
            {
                continue;
            }
            ops.push(FlatOp {
                container: ci,
                key: key_text.into(),
                action,
            });
        }
        if ops.is_empty() {
            continue;
        }
        let change = l.change_at(&deps, &actor, 1_767_225_600 + i64::from(shape), ops);
        admit(&mut l, signed(&doc, author, change), &mut all);
    }
    let settled = l.settle(Some(&trusted)).clone();
    // Settling is a function of the set: again, and from scratch in another order.
    let again = l.settle(Some(&trusted)).clone();
    assert_eq!(settled.view, again.view);
    let mut other = Ledger::new(&doc);
    let mut pending: Vec<SignedChange> = all.iter().rev().cloned().collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|c| matches!(other.admit(c, Some(&trusted)), Admitted::Waiting(..)));
        if pending.len() == before {
            break;
        }
    }
    let theirs = other.settle(Some(&trusted)).clone();
    assert_eq!(settled.view, theirs.view, "two arrival orders, two views");
    assert_eq!(
        settled.heads, theirs.heads,
        "two arrival orders, two sets of heads"
    );
    let mut v1: Vec<_> = l
        .audit_rows()
        .into_iter()
        .map(|(h, _, v)| (h, format!("{v:?}")))
        .collect();
    let mut v2: Vec<_> = other
        .audit_rows()
        .into_iter()
        .map(|(h, _, v)| (h, format!("{v:?}")))
        .collect();
    v1.sort();
    v2.sort();
    assert_eq!(v1, v2, "two arrival orders, two verdicts");
    if let Some(at) = l.view_at(&settled.heads, Some(&trusted)) {
        assert_eq!(
            at.view, settled.view,
            "the view at the current heads is the view"
        );
    }
}

fn grant_op(doc: &DocId, g: &SignedGrant) -> FlatOp {
    FlatOp {
        container: doc
            .kind()
            .container(g.grant.kind.container())
            .unwrap_or(u8::MAX),
        key: g.storage_key(),
        action: FlatAction::Put {
            value: g.to_text(),
            preds: vec![],
        },
    }
}

fn signed(doc: &DocId, k: &NodeKey, data: ChangeData) -> SignedChange {
    let h = data
        .to_automerge(doc)
        .map(|c| c.hash())
        .unwrap_or(automerge::ChangeHash([0; 32]));
    SignedChange {
        data,
        signature: sign_change(k, doc, &h).to_vec(),
    }
}

/// Document load and verify: rows as a store would hold them (any bytes), read back through
/// the gate without the screen, as a node does on start.
pub fn document_load(data: &[u8]) {
    let rows: Vec<(Vec<u8>, Vec<u8>)> = match bincode::serde::decode_from_slice(
        data,
        bincode::config::standard().with_limit::<{ 1 << 20 }>(),
    ) {
        Ok((rows, _)) => rows,
        Err(_) => return,
    };
    for doc in [
        DocId::State(xaa()),
        DocId::Pool(PoolId::new("p", &key(1).node_id())),
    ] {
        let mut l = Ledger::new(&doc);
        for (bytes, signature) in &rows {
            if let Ok(data) = ChangeData::from_bytes(bytes) {
                let _ = l.admit_stored(
                    &SignedChange {
                        data,
                        signature: signature.clone(),
                    },
                    Some(&key(40).node_id()),
                );
            }
        }
        let _ = l.settle(Some(&key(40).node_id()));
        let _ = l.automerge_changes();
    }
}

/// A peer's messages to a session: the bytes are frames from a peer pinned as a donor, to a
/// node holding a State document it shares publicly and a draft it never shares. Nothing may
/// panic, and the draft is never named.
pub fn sync_message(data: &[u8]) {
    let doc = DocId::State(xaa());
    let draft = DocId::Draft(xaa());
    let me = key(1);
    let peer = key(9).node_id();
    let mut h: MemHost = host(
        Some(Principal::State(xaa())),
        &[(Principal::State(xaa()), key(40).node_id())],
    );
    h.pins.insert(peer, Pin::default());
    for d in [&doc, &draft] {
        let g = grant(GrantKind::Delegation, &me, Some(Scope::ALL), vec![]);
        h.ledgers.insert(d.clone(), Ledger::new(d));
        let l = h.ledgers.get_mut(d).map(|l| {
            l.settle(Some(&key(40).node_id()));
            l.next_change(
                &actor_bytes(&me.node_id(), &[0; 8]),
                1_767_225_600,
                vec![grant_op(d, &g)],
            )
        });
        if let Some(c) = l {
            h.admit(d, &[signed(d, &me, c)]);
        }
    }
    let readers = doc.kind().container("readers").unwrap_or(0);
    if let Some(c) = h.ledgers.get(&doc).map(|l| {
        l.next_change(
            &actor_bytes(&me.node_id(), &[0; 8]),
            1_767_225_600,
            vec![FlatOp {
                container: readers,
                key: "*".into(),
                action: FlatAction::Put {
                    value: "true".into(),
                    preds: vec![],
                },
            }],
        )
    }) {
        h.admit(&doc, &[signed(&doc, &me, c)]);
    }
    let hello = wire::Hello {
        version: wire::PROTOCOL_VERSION,
        node: me.node_id(),
        name: "fuzz".into(),
        claims: wire::Claim::State(xaa()),
        key: None,
        recovery: None,
    };
    let mut s = Session::new(peer, hello, Mode::Stay, SessionConfig::default());
    s.start(&mut h, 0);
    let peer_hello = Message::Hello(wire::Hello {
        version: wire::PROTOCOL_VERSION,
        node: peer,
        name: "peer".into(),
        claims: wire::Claim::Body(
            crate::id::BodyCode::from_static("XZZ"),
            crate::id::BodyKind::Donor,
        ),
        key: None,
        recovery: None,
    });
    let _ = s.handle(&mut h, peer_hello, 1);
    let mut buf = FrameBuffer::default();
    buf.push(data);
    let mut t = 2;
    while let Ok(Some(m)) = buf.next_message() {
        if s.handle(&mut h, m, t).is_err() {
            break;
        }
        t += 1;
        s.handle_timeout(&mut h, t * 1000);
    }
    while let Some(m) = s.poll_transmit() {
        assert!(
            !m.docs().contains(&&draft),
            "the draft was named to a donor"
        );
    }
    let _: Option<NodeId> = None;
}
