//! Thirteenth red-team round: attacks on the gate as it stands after the twelfth round's
//! fixes (at 198eac6). Each test says what the attacker chooses and what broke; a test named
//! `redteam13_open_…` still asserts the bad outcome (not fixed), the others assert the
//! promise (they asserted the bad outcome before their fix, as the commits say).

use automerge::ChangeHash;
use serde_json::{Value as Json, json};

use crate::authority::{Cutoff, Grant, GrantKind, Scope, SignedGrant};
use crate::change::{ChangeData, FlatAction, FlatOp, SignedChange};
use crate::doc::{DocId, StateData};
use crate::id::{NodeId, Principal, StateCode};
use crate::ledger::{Admitted, Ledger, Verdict, actor_bytes};
use crate::model::Area;
use crate::sign::{NodeKey, sign_change};

const T0: i64 = 1_767_225_600;

fn key(seed: u8) -> NodeKey {
    NodeKey::from_seed(&[seed; 32])
}

fn xaa() -> StateCode {
    StateCode::from_static("XAA")
}

/// The State's key.
fn sk() -> NodeKey {
    key(40)
}

fn grant(
    kind: GrantKind,
    node: &NodeKey,
    scope: Option<Scope>,
    cutoff: Vec<Cutoff>,
) -> SignedGrant {
    SignedGrant::sign(
        &sk(),
        Grant {
            kind,
            principal: Principal::State(xaa()),
            node: node.node_id(),
            scope,
            expires: None,
            issued: crate::date::Date::from_unix_seconds(T0),
            key: sk().node_id(),
            cutoff,
            serial: 0,
            kept: Vec::new(),
            recovery: None,
        },
    )
}

fn actor(k: &NodeKey) -> Vec<u8> {
    actor_bytes(&k.node_id(), &[0; 8])
}

fn sign(doc: &DocId, k: &NodeKey, data: ChangeData) -> SignedChange {
    let h = data
        .to_automerge(doc)
        .map(|c| c.hash())
        .expect("a valid change");
    SignedChange {
        data,
        signature: sign_change(k, doc, &h).to_vec(),
    }
}

/// A document under test, with the State's key trusted.
struct Doc {
    doc: DocId,
    l: Ledger,
    k: NodeId,
}

impl Doc {
    fn new(doc: DocId) -> Doc {
        let mut l = Ledger::new(&doc);
        let k = sk().node_id();
        l.settle(Some(&k));
        Doc { doc, l, k }
    }

    fn op(&self, container: &str, key: &str, action: FlatAction) -> FlatOp {
        FlatOp {
            container: self.doc.kind().container(container).expect("a container"),
            key: key.to_string(),
            action,
        }
    }

    /// A put naming what is live at the key now (nothing, for a new record).
    fn put(&mut self, container: &str, key: &str, value: &Json) -> FlatOp {
        self.l.settle(Some(&self.k));
        let preds = self.l.live_refs(container, key);
        self.op(
            container,
            key,
            FlatAction::Put {
                value: value.to_string(),
                preds,
            },
        )
    }

    /// A delete of what is live at the key now.
    fn del(&mut self, container: &str, key: &str) -> FlatOp {
        self.l.settle(Some(&self.k));
        let preds = self.l.live_refs(container, key);
        assert!(!preds.is_empty(), "nothing to delete at {container}/{key}");
        self.op(container, key, FlatAction::Delete { preds })
    }

    fn grant_op(&self, g: &SignedGrant) -> FlatOp {
        self.op(
            g.grant.kind.container(),
            &g.storage_key(),
            FlatAction::Put {
                value: g.to_text(),
                preds: vec![],
            },
        )
    }

    /// A change by `who` on the heads (as an honest node builds), signed.
    fn next(&mut self, who: &NodeKey, ops: Vec<FlatOp>) -> SignedChange {
        self.l.settle(Some(&self.k));
        let data = self.l.next_change(&actor(who), T0, ops);
        sign(&self.doc, who, data)
    }

    fn admit(&mut self, c: &SignedChange) -> ChangeHash {
        let k = self.k;
        match self.l.admit(c, Some(&k)) {
            Admitted::New(h) => {
                self.l.settle(Some(&k));
                h
            }
            other => panic!("not admitted: {other:?}"),
        }
    }

    /// Writes on the heads and admits.
    fn write(&mut self, who: &NodeKey, ops: Vec<FlatOp>) -> ChangeHash {
        let c = self.next(who, ops);
        self.admit(&c)
    }

    fn verdict(&mut self, h: &ChangeHash) -> Verdict {
        self.l.settle(Some(&self.k));
        self.l.verdict(h).cloned().expect("held")
    }

    fn view(&mut self) -> Json {
        self.l.settle(Some(&self.k)).view.clone()
    }

    fn heads(&mut self) -> Vec<ChangeHash> {
        self.l.settle(Some(&self.k)).heads.clone()
    }

    /// N (scope all) delegates itself, then M (marking only) and S (stockpile only).
    fn with_ministries(doc: DocId) -> (Doc, Keys) {
        let keys = Keys::new();
        let mut d = Doc::new(doc);
        let own = grant(GrantKind::Delegation, &keys.n, Some(Scope::ALL), vec![]);
        let op = d.grant_op(&own);
        d.write(&keys.n, vec![op]);
        let m = grant(
            GrantKind::Delegation,
            &keys.m,
            Some(Scope::Areas(vec![Area::Marking])),
            vec![],
        );
        let s = grant(
            GrantKind::Delegation,
            &keys.s,
            Some(Scope::Areas(vec![Area::Stockpile])),
            vec![],
        );
        let ops = vec![d.grant_op(&m), d.grant_op(&s)];
        d.write(&keys.n, ops);
        (d, keys)
    }
}

struct Keys {
    /// The State's own node, scope all.
    n: NodeKey,
    /// A ministry delegated for marking only.
    m: NodeKey,
    /// A ministry delegated for stockpile management only.
    s: NodeKey,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            n: key(1),
            m: key(2),
            s: key(3),
        }
    }
}

fn target(id: &str, version: u32, area: &str) -> Json {
    json!({"id": id, "state": "XAA", "version": version, "area": area, "title": format!("{id} v{version}")})
}

fn progress(id: &str, target: &str) -> Json {
    json!({"id": id, "target": target, "target_version": 1, "as_of": "2025-12-31", "note": "figures"})
}

fn stands(d: &mut Doc, hs: &[ChangeHash]) {
    for h in hs {
        assert_eq!(d.verdict(h), Verdict::Stands, "{h}");
    }
}

fn void(d: &mut Doc, h: &ChangeHash) -> bool {
    matches!(d.verdict(h), Verdict::Void(_))
}

/// **Write (draft): a marking ministry, after the fact, voids a stockpile ministry's later
/// versions, reports and withdrawal of its own target.**
///
/// The stockpile ministry S writes target T1 (stockpile) in the draft, a second version, a
/// progress report on it, and withdraws it: every change stands. The marking ministry M,
/// having seen all of it (every one is in its past), chooses two writes, both void:
/// 1. a delete of S's first version `targets/T1/1` (out of M's scope: void);
/// 2. a put of its own first version `targets/T1/1` (area marking), naming no predecessor
///    (over S's value, live in its past: void, an edit in place).
///
/// `Ledger::speaks` counts, for every change about T1, the first versions written after it;
/// `Ledger::over_found` should say M's put was written over S's first version, which those
/// changes found. But it skips a found value "deleted or corrected in its own past, whatever
/// that operation's verdict": M's own void delete. So M's void put speaks for T1's areas,
/// `first_version_area` gives it marking (M's scope covers marking), and every later change
/// of S about T1 (version 2, the report, the withdrawal) is out of S's scope: void. The
/// draft shows T1 at version 1, not withdrawn, without its report; publishing sends none of
/// it, and S can write none of it again (its next try is void the same way).
///
/// The rule broken: "Whatever it writes after seeing the record, or after seeing the
/// withdrawal, ... changes nothing" (threat model), and a ministry writes only its areas.
///
/// This test asserted the bad outcome at 198eac6; it now asserts the attack fails. The fix
/// (`Ledger::over_found`): a found value deleted or corrected in the put's own past is out of
/// its way only if the author of that delete or correction could make it (its scope, as the
/// whole set says, covers the value's areas); a void delete by another area's ministry is not.
#[test]
fn redteam13_void_delete_lets_a_later_rival_first_version_void_another_areas_work() {
    let (mut d, k) = Doc::with_ministries(DocId::Draft(xaa()));
    let op = d.put("targets", "T1/1", &target("T1", 1, "stockpile"));
    let t1 = d.write(&k.s, vec![op]);
    let op = d.put("targets", "T1/2", &target("T1", 2, "stockpile"));
    let v2 = d.write(&k.s, vec![op]);
    let id = "T1/2025-12-31";
    let op = d.put("progress", id, &progress(id, "T1"));
    let report = d.write(&k.s, vec![op]);
    let op = d.put("withdrawn", "T1", &json!("2026-01-01"));
    let withdrawal = d.write(&k.s, vec![op]);
    stands(&mut d, &[t1, v2, report, withdrawal]);

    // M deletes S's first version (void: out of its scope)...
    let op = d.del("targets", "T1/1");
    let deletion = d.write(&k.m, vec![op]);
    assert!(
        void(&mut d, &deletion),
        "M cannot delete a stockpile target"
    );
    // ... and writes its own first version there, naming nothing (void too).
    let op = d.op(
        "targets",
        "T1/1",
        FlatAction::Put {
            value: target("T1", 1, "marking").to_string(),
            preds: vec![],
        },
    );
    let rival = d.write(&k.m, vec![op]);
    assert!(
        void(&mut d, &rival),
        "M cannot write over S's first version"
    );

    // S's work on its own target stands: M's void delete did not take S's first version out
    // of the way, so M's put is over what S's changes found, and speaks for nothing.
    stands(&mut d, &[t1, v2, report, withdrawal]);
    let data = StateData::from_json(&d.view());
    assert!(data.withdrawn.contains_key("T1"));
    assert!(d.view()["targets"].get("T1/2").is_some());
    assert!(data.progress.contains_key(id));

    // A delete its author could make still takes the value out of the way: S deletes its
    // own draft target U1 and M writes a marking U1 there; a withdrawal S wrote of U1 before
    // its delete is judged on M's record too (void), as the twelfth round's fix wants.
    let op = d.put("targets", "U1/1", &target("U1", 1, "stockpile"));
    d.write(&k.s, vec![op]);
    let op = d.put("withdrawn", "U1", &json!("2026-01-01"));
    let early = d.write(&k.s, vec![op]);
    let op = d.del("targets", "U1/1");
    let own_delete = d.write(&k.s, vec![op]);
    let op = d.put("targets", "U1/1", &target("U1", 1, "marking"));
    let fresh = d.write(&k.m, vec![op]);
    stands(&mut d, &[own_delete, fresh]);
    assert!(
        void(&mut d, &early),
        "S's withdrawal does not withdraw M's new target"
    );
}

/// **Write (draft): a marking ministry, after the fact, voids a stockpile ministry's
/// withdrawal of its report.**
///
/// S writes target T1 (stockpile) and a report on it, and withdraws the report
/// (`retracted/progress/ID`); M has a marking target T2. M, having seen the withdrawal,
/// deletes S's report (void: out of scope) and puts at `progress/ID` a report of its own on
/// T2, naming nothing (void: over S's live report). The withdrawal is judged on the values
/// at `progress/ID` written after it too, and `Ledger::over_found` lets M's put speak (the
/// found report is "deleted in its own past", by M's void delete): it speaks marking, out of
/// S's scope, so S's withdrawal is void and the report counts again.
///
/// Asserted the bad outcome at 198eac6; fixed with the test above (and tried with a void
/// correction in place of the delete).
#[test]
fn redteam13_void_delete_lets_a_later_rival_report_void_a_withdrawal() {
    let (mut d, k) = Doc::with_ministries(DocId::Draft(xaa()));
    let op = d.put("targets", "T1/1", &target("T1", 1, "stockpile"));
    let t1 = d.write(&k.s, vec![op]);
    let op = d.put("targets", "T2/1", &target("T2", 1, "marking"));
    let t2 = d.write(&k.m, vec![op]);
    let id = "T1/2025-12-31";
    let op = d.put("progress", id, &progress(id, "T1"));
    let report = d.write(&k.s, vec![op]);
    let op = d.put(
        "retracted",
        &format!("progress/{id}"),
        &json!({"date": "2026-01-01", "reason": "wrong figures"}),
    );
    let withdrawal = d.write(&k.s, vec![op]);
    stands(&mut d, &[t1, t2, report, withdrawal]);
    assert!(
        StateData::from_json(&d.view())
            .withdrawn_progress
            .contains_key(id)
    );

    let op = d.del("progress", id);
    let deletion = d.write(&k.m, vec![op]);
    assert!(void(&mut d, &deletion));
    let op = d.op(
        "progress",
        id,
        FlatAction::Put {
            value: progress(id, "T2").to_string(),
            preds: vec![],
        },
    );
    let rival = d.write(&k.m, vec![op]);
    assert!(void(&mut d, &rival));

    stands(&mut d, &[withdrawal]);
    let data = StateData::from_json(&d.view());
    assert!(
        data.withdrawn_progress.contains_key(id),
        "S's report stays withdrawn"
    );

    // The same with a correction in place of the delete: M corrects S's report (void: out of
    // its scope), then corrects its own correction. Still over what S's withdrawal found.
    let op = d.put("progress", id, &progress(id, "T2"));
    let correction = d.write(&k.m, vec![op]);
    assert!(void(&mut d, &correction));
    let ours = crate::change::OpRef {
        counter: d.l.signed(&correction).expect("held").data.start_op,
        actor: actor(&k.m),
    };
    let mut v = progress(id, "T2");
    v["note"] = json!("again");
    let op = d.op(
        "progress",
        id,
        FlatAction::Put {
            value: v.to_string(),
            preds: vec![ours],
        },
    );
    let again = d.write(&k.m, vec![op]);
    assert!(void(&mut d, &again));
    stands(&mut d, &[withdrawal]);
}

/// **Write/availability (published document, then the node's id chooser): a marking ministry
/// pre-writes a dispute at the published key the stockpile ministry's next report will take.**
///
/// Progress ids are predictable (`TARGET/AS-OF`). The marking ministry M, with two of its
/// actor ids (it may use up to eight), writes two different reports of its own (on its
/// marking target T2) at `progress/T1/2025-12-31` of the *published* document, on one past:
/// both stand (records written once, each on a past without the other, in M's scope), so
/// the key is a dispute and the view shows neither. The node's id chooser
/// (`node/src/records.rs`, `progress_id`) looks at the draft ledger's history and at the
/// views of the draft and the published document: it sees nothing at that id, and gives it
/// to S's new report. S's report is written to the draft; publishing it puts
/// `progress/T1/2025-12-31` in the published document over M's two standing values: an
/// edit in place, void, so `Node::write` refuses the publication, and since `publish` sends
/// everything pending in one change, nothing the State has pending can be published until
/// someone finds and deletes that report from the draft. (The same for a request id a user
/// picks, `add_need`, which reads the published view only.)
///
/// What the gate says is right (a record written once); the chooser must read the history
/// of the published document as well: `Ledger::ever_written` there is true for the id.
///
/// This test asserts what the gate does (unchanged); the attack was on the node's chooser,
/// fixed there: `Node::published_ids` (every id with an operation at its key or its
/// withdrawal's in the published document, whatever its verdict) is skipped by
/// `progress_id` and refused by `add_need`, `add_offer` and the sheet import
/// (`node/src/records.rs`, test `a_progress_id_disputed_in_the_published_document_is_not_reused`,
/// which failed before the fix: the chooser gave the disputed id).
#[test]
fn redteam13_disputed_published_key_blocks_the_next_report() {
    let (mut d, k) = Doc::with_ministries(DocId::State(xaa()));
    let op = d.put("targets", "T1/1", &target("T1", 1, "stockpile"));
    let t1 = d.write(&k.s, vec![op]);
    let op = d.put("targets", "T2/1", &target("T2", 1, "marking"));
    let t2 = d.write(&k.m, vec![op]);
    let id = "T1/2025-12-31";
    let base = d.heads();
    let mut rivals = Vec::new();
    for (suffix, note) in [(0u8, "a"), (1u8, "b")] {
        let mut v = progress(id, "T2");
        v["note"] = json!(note);
        let op = d.op(
            "progress",
            id,
            FlatAction::Put {
                value: v.to_string(),
                preds: vec![],
            },
        );
        let data = d.l.change_at(
            &base,
            &actor_bytes(&k.m.node_id(), &[suffix; 8]),
            T0,
            vec![op],
        );
        let c = sign(&d.doc, &k.m, data);
        rivals.push(d.admit(&c));
    }
    stands(&mut d, &[t1, t2, rivals[0], rivals[1]]);
    // The key is a dispute: the view shows nothing there.
    let data = StateData::from_json(&d.view());
    assert!(!data.progress.contains_key(id));
    assert!(!data.withdrawn_progress.contains_key(id));
    assert!(!data.retracted.contains_key(&format!("progress/{id}")));
    // S's report, published at that id (as the chooser gives it), is void.
    let op = d.op(
        "progress",
        id,
        FlatAction::Put {
            value: progress(id, "T1").to_string(),
            preds: vec![],
        },
    );
    let published = d.write(&k.s, vec![op]);
    assert!(
        void(&mut d, &published),
        "the publication is an edit in place"
    );
    // What a chooser must read: the published document's history at the id.
    assert!(d.l.ever_written("progress", id));
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One random run: S (stockpile) writes its target T1, a second version, two reports,
/// withdraws one report and the target, all in the draft, on its heads; then M (marking),
/// having seen all of it, writes `steps` random changes on its heads at S's keys and at M's
/// own: puts naming nothing, naming what is live, naming one of its own earlier operations,
/// and deletes. Returns S's changes that are void at the end, and S's keys whose shown value
/// changed (the promise: nothing M writes after seeing S's records changes them).
fn random_after(seed: u64, steps: usize) -> (usize, usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (mut d, k) = Doc::with_ministries(DocId::Draft(xaa()));
    let op = d.put("targets", "T2/1", &target("T2", 1, "marking"));
    d.write(&k.m, vec![op]);
    let s_ops: Vec<(&str, &str, Json)> = vec![
        ("targets", "T1/1", target("T1", 1, "stockpile")),
        ("targets", "T1/2", target("T1", 2, "stockpile")),
        ("progress", "P1", progress("P1", "T1")),
        ("progress", "P2", progress("P2", "T1")),
        (
            "retracted",
            "progress/P1",
            json!({"date": "2026-01-01", "reason": "x"}),
        ),
        ("withdrawn", "T1", json!("2026-01-02")),
    ];
    let mut s_changes = Vec::new();
    for (c, key, v) in &s_ops {
        let op = d.put(c, key, v);
        s_changes.push(d.write(&k.s, vec![op]));
    }
    stands(&mut d, &s_changes);
    let before = d.view();
    let keys: [(&str, &str); 7] = [
        ("targets", "T1/1"),
        ("targets", "T1/2"),
        ("progress", "P1"),
        ("progress", "P2"),
        ("retracted", "progress/P1"),
        ("retracted", "progress/P2"),
        ("withdrawn", "T1"),
    ];
    let mut mine: Vec<(usize, crate::change::OpRef)> = Vec::new();
    for step in 0..steps {
        let which = rng.below(keys.len());
        let (c, key) = keys[which];
        let value = match c {
            "targets" => {
                let (id, v) = key.split_once('/').unwrap_or((key, "1"));
                target(id, v.parse().unwrap_or(1), "marking")
            }
            "progress" => {
                let mut p = progress(key, ["T1", "T2"][rng.below(2)]);
                p["note"] = json!(format!("m{step}"));
                p
            }
            "withdrawn" => json!(format!("2026-02-{:02}", 1 + step % 28)),
            _ => json!({"date": "2026-01-01", "reason": format!("m{step}")}),
        };
        d.l.settle(Some(&d.k));
        let live = d.l.live_refs(c, key);
        let own: Vec<crate::change::OpRef> = mine
            .iter()
            .filter(|(w, _)| *w == which)
            .map(|(_, r)| r.clone())
            .collect();
        let preds = match rng.below(4) {
            0 => vec![],
            1 => live.clone(),
            _ if !own.is_empty() => vec![own[rng.below(own.len())].clone()],
            _ => live.clone(),
        };
        let action = if rng.below(3) == 0 && !preds.is_empty() {
            FlatAction::Delete { preds }
        } else {
            FlatAction::Put {
                value: value.to_string(),
                preds,
            }
        };
        let op = d.op(c, key, action);
        let ch = d.next(&k.m, vec![op]);
        let start = ch.data.start_op;
        match d.l.admit(&ch, Some(&d.k.clone())) {
            Admitted::New(_) => {
                mine.push((
                    which,
                    crate::change::OpRef {
                        counter: start,
                        actor: actor(&k.m),
                    },
                ));
            }
            _ => continue,
        }
    }
    let silenced = s_changes
        .iter()
        .filter(|h| !matches!(d.verdict(h), Verdict::Stands))
        .count();
    let after = d.view();
    let moved = keys
        .iter()
        .filter(|(c, key)| before[*c].get(*key) != after[*c].get(*key))
        .count();
    (silenced, moved)
}

/// **Search: what M writes after seeing S's records, at S's keys, changes nothing.** Random
/// runs of the attack above's shape (deletes, puts naming nothing, what is live, or M's own
/// earlier operations). Before the fix, most runs voided some of S's changes; now none.
#[test]
fn redteam13_random_writes_after_the_fact_change_nothing() {
    let mut hits = Vec::new();
    for seed in 0..150u64 {
        let (silenced, moved) = random_after(seed, 8);
        if silenced > 0 || moved > 0 {
            hits.push((seed, silenced, moved));
        }
    }
    assert!(
        hits.is_empty(),
        "seeds where M's later writes moved S's records: {hits:?}"
    );
}
