//! A node's own data: the write paths that the CLI, the demo and the tests share, and the reads
//! behind listings. Each write is one signed change in one document, passed through the same
//! gate as a change from a peer, and committed in one SQLite transaction; a write the gate
//! would not let stand is refused and nothing is written.

use poa_protocol::authority::{Denied, Grant, GrantKind, Scope, SignedGrant};
use poa_protocol::automerge::ChangeHash;
use poa_protocol::change::{FlatAction, FlatOp, SignedChange};
use poa_protocol::checks::{Finding, Severity, has_errors};
use poa_protocol::doc::{DocError, DocId, StateData, read_offers, record_text};
use poa_protocol::ledger::{Ledger, Rejection, Verdict, actor_bytes};
use poa_protocol::model::{ModelError, Need, Offer};
use poa_protocol::sign::sign_change;
use poa_protocol::view::{TargetView, target_view, target_views};
use poa_protocol::{Date, NodeId, Participant, Principal, StateCode};
use serde_json::Value as Json;

use crate::home::{Home, HomeError};
use crate::store::{Source, Store, StoreError, StoreTx};

/// Errors of a node operation, each worded for the person who asked for it.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The home folder.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record breaks a rule.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A document operation failed.
    #[error(transparent)]
    Doc(#[from] DocError),
    /// The node acts for a body, and the operation is a State's.
    #[error("this node acts for {0}; only a State's node keeps targets, progress and requests")]
    NotAState(Participant),
    /// The node acts for a State, and the operation is a body's.
    #[error(
        "this node acts for {0}; offers are made by a body's node (a donor agency, an organisation): init one with --body"
    )]
    NotABody(Participant),
    /// No such target.
    #[error("{state} has no target {id}; see `poa-node target list`")]
    NoTarget {
        /// The State.
        state: StateCode,
        /// The id asked for.
        id: String,
    },
    /// The target exists already.
    #[error("{state} already has a target {id}; use `poa-node target supersede {id}` to change it")]
    TargetExists {
        /// The State.
        state: StateCode,
        /// The id.
        id: String,
    },
    /// A record id is taken.
    #[error("{0} already exists; choose another --id")]
    Exists(String),
    /// A new version identical to the current one.
    #[error(
        "the new version of {0} would be the same as the current one: give the fields that change (--value, --deadline...)"
    )]
    NothingChanged(String),
    /// The checks before publishing found errors: nothing was written.
    #[error("{}", checks_line(.0))]
    Checks(Vec<Finding>),
    /// The target was withdrawn.
    #[error("target {0} is withdrawn; it can no longer change")]
    Withdrawn(String),
    /// The node holds no such document.
    #[error("this node holds no document {0}; see `poa-node doc list`")]
    NoDocument(DocId),
    /// Drafts are never shared.
    #[error(
        "{0} is a draft: drafts never leave their owner's nodes; share the published document (state/CODE or offers/CODE) instead"
    )]
    DraftNotShareable(DocId),
    /// Only a document's owner shares it.
    #[error("{0} is not this node's own document: only its owner decides who reads it")]
    NotOwn(DocId),
    /// Only the key's holder signs grants.
    #[error("this node does not hold {0}'s key ({1}): run this on the first node of {0}")]
    NoPrincipalKey(String, &'static str),
    /// A node already holds this kind of grant.
    #[error(
        "{node} already has a {kind:?} from this key; a revoked node key stays revoked (delegate a new node key)"
    )]
    AlreadyGranted {
        /// The node.
        node: NodeId,
        /// Delegation or revocation.
        kind: GrantKind,
    },
    /// Revoking a node that holds no delegation.
    #[error("{0} holds no delegation here; see `poa-node delegations`")]
    NotDelegated(NodeId),
    /// Only a pool's coordinator does this.
    #[error("only the coordinator of pool {0} does this; see `poa-node pool show {0}`")]
    NotCoordinator(String),
    /// The pool id is taken.
    #[error("this node already coordinates a pool named {0}; choose another --id")]
    PoolExists(String),
    /// The node holds no such pool.
    #[error(
        "this node holds no pool {0}: it arrives once its coordinator invites this State and the nodes sync; see `poa-node pool list`"
    )]
    NoPool(String),
    /// A pool name that several pools held here have.
    #[error("{1} pools held here are named {0}: give the full id, one of {2}")]
    AmbiguousPool(String, usize, String),
    /// Joining without an invitation.
    #[error(
        "{1} is not invited to pool {0}: ask its coordinator to run `poa-node pool invite {0} {1}`"
    )]
    NotInvited(String, StateCode),
    /// Not a member.
    #[error("{1} is not a member of pool {0}")]
    NotMember(String, StateCode),
    /// Already a member.
    #[error("{1} is already a member of pool {0}")]
    AlreadyMember(String, StateCode),
    /// Inviting a State whose key this node does not know.
    #[error(
        "no State key is known here for {0}: pin one of its nodes with `poa-node peer add NODEID@HOST:PORT --state {0}` or run `poa-node trust {0} --state-key KEY`, then invite"
    )]
    UnknownStateKey(StateCode),
    /// Inviting a node pinned as no State's.
    #[error(
        "{0} is not pinned as a node of any State: pin it with `poa-node peer add … --state CODE`, or invite by State code"
    )]
    NodeOfNoState(NodeId),
    /// A target not yet published.
    #[error("{0} is not published: run `poa-node target publish {0}` before contributing it")]
    NotPublished(String),
    /// A request this node does not hold.
    #[error("this node holds no request {0}; see `poa-node needs`")]
    NoNeed(String),
    /// An offer this node does not hold.
    #[error("this node holds no offer {0}; see `poa-node offer list`")]
    NoOffer(String),
    /// The node is neither side of a match.
    #[error(
        "this node acts for {0}: only the requesting State ({1}) and the provider ({2}) decide on this match"
    )]
    NotAParty(String, StateCode, String),
    /// Accepting what nobody proposed.
    #[error("nothing to accept: {0} has not proposed this match; use `poa-node match propose`")]
    NothingToAccept(String),
    /// A value the person gave that cannot be used (a file that cannot be read...).
    #[error("{0}")]
    Input(String),
    /// A published record is never edited in place.
    #[error("{what} is published and is never edited in place: {hint}")]
    IsPublished {
        /// The record.
        what: String,
        /// What to do instead.
        hint: String,
    },
    /// Withdrawing what was never published.
    #[error("{what} was never published, so there is nothing to withdraw: {hint}")]
    NeverPublished {
        /// The record.
        what: String,
        /// What to do instead.
        hint: String,
    },
    /// A record another one still names.
    #[error("{what} is named by {by}")]
    StillNamed {
        /// The record.
        what: String,
        /// What names it.
        by: String,
    },
    /// No such progress report.
    #[error("this State has no progress report {0}; see `poa-node target show TARGET`")]
    NoProgress(String),
    /// Withdrawn already.
    #[error("{0} is already withdrawn")]
    AlreadyWithdrawn(String),
    /// Removing a reader that is not on the share list.
    #[error("{reader} is not on the share list of {doc}; see `poa-node share {doc}`")]
    NotAReader {
        /// The document.
        doc: String,
        /// The entry asked for.
        reader: String,
    },
    /// The gate refused the node's own change outright.
    #[error("the change was refused: {0}")]
    Rejected(Box<Rejection>),
    /// The gate would not let the node's own change stand: this node may not write it.
    #[error("this node may not write that: {0}")]
    Denied(Box<Denied>),
    /// A key rotation or recovery cannot be made as asked.
    #[error("{0}")]
    Key(String),
}

/// A node: its home and its database.
#[derive(Debug)]
pub struct Node {
    /// Keys and configuration.
    pub home: Home,
    /// The database.
    pub store: Store,
    /// Where this node reads the time.
    pub clock: Clock,
    /// The checks' warnings on the record the last write added (the CLI shows them; the
    /// audit log keeps them as `check-warning`).
    pub warnings: Vec<Finding>,
    /// Documents offered here whose owner's key is not trusted, already said so in the audit
    /// log since the node opened (`trust-needed`, once each, at most
    /// [`crate::host::TRUST_NOTES`]): a peer listing the same or ever new made-up documents
    /// does not write a row for each, every listing.
    pub trust_noted: std::collections::HashSet<DocId>,
}

/// Where a node reads the time: the system clock, or (in the simulator) a clock that only the
/// caller moves, so that a run repeats exactly. Clones share the time.
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<std::sync::Arc<std::sync::atomic::AtomicI64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that stays at `secs` until [`Clock::set`] moves it.
    pub fn manual(secs: i64) -> Clock {
        Clock(Some(std::sync::Arc::new(secs.into())))
    }

    /// Moves a manual clock; the system clock cannot be moved.
    pub fn set(&self, secs: i64) {
        if let Some(t) = &self.0 {
            t.store(secs, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        match &self.0 {
            Some(t) => t.load(std::sync::atomic::Ordering::Relaxed),
            None => now_secs(),
        }
    }

    /// Today's date (UTC).
    pub fn today(&self) -> Date {
        Date::from_unix_seconds(self.now())
    }
}

/// The operations of one change being written, with the document as it stands to check them
/// against: records are added under keys not yet taken, replaced only where the document's
/// schema allows, and deleted by naming what they delete.
#[derive(Debug)]
pub struct Writer<'a> {
    doc: &'a DocId,
    ledger: &'a Ledger,
    ops: Vec<FlatOp>,
}

impl Writer<'_> {
    fn container(&self, name: &str) -> Result<u8, NodeError> {
        self.doc
            .kind()
            .container(name)
            .ok_or_else(|| DocError::NoContainer(name.into()).into())
    }

    /// Whether a record id has a history in this document: any operation held at
    /// `container/key`, or at its withdrawal `retracted/container/key`, whatever its verdict.
    /// A node never gives such an id to a new record: an author of another area may have
    /// written, withdrawn and deleted a record there, to have the withdrawal cover the next.
    pub fn id_used(&self, container: &str, key: &str) -> bool {
        self.ledger.ever_written(container, key) || self.withdrawal_written(container, key)
    }

    /// Whether a withdrawal of `container/key` was ever written in this document
    /// (`retracted/container/key`), whatever its verdict.
    pub fn withdrawal_written(&self, container: &str, key: &str) -> bool {
        self.ledger
            .ever_written("retracted", &format!("{container}/{key}"))
    }

    /// Adds a record under a key not yet taken.
    pub fn put<R: serde::Serialize>(
        &mut self,
        container: &str,
        key: &str,
        record: &R,
    ) -> Result<(), NodeError> {
        self.put_text(container, key, record_text(record)?)
    }

    /// Adds a JSON text under a key not yet taken.
    pub fn put_text(&mut self, container: &str, key: &str, value: String) -> Result<(), NodeError> {
        let c = self.container(container)?;
        if !self.ledger.live_refs(container, key).is_empty() {
            return Err(DocError::Exists(format!("{container}/{key}")).into());
        }
        self.ops.retain(|o| !(o.container == c && o.key == key));
        self.ops.push(FlatOp {
            container: c,
            key: key.to_string(),
            action: FlatAction::Put {
                value,
                preds: Vec::new(),
            },
        });
        Ok(())
    }

    /// Sets a value that replaces the one there (a decision that changes, an invitation).
    pub fn replace<R: serde::Serialize>(
        &mut self,
        container: &str,
        key: &str,
        record: &R,
    ) -> Result<(), NodeError> {
        let c = self.container(container)?;
        let preds = self.ledger.live_refs(container, key);
        self.ops.retain(|o| !(o.container == c && o.key == key));
        self.ops.push(FlatOp {
            container: c,
            key: key.to_string(),
            action: FlatAction::Put {
                value: record_text(record)?,
                preds,
            },
        });
        Ok(())
    }

    /// Deletes the entry at a key. Returns whether there was one.
    pub fn delete(&mut self, container: &str, key: &str) -> Result<bool, NodeError> {
        let c = self.container(container)?;
        let preds = self.ledger.live_refs(container, key);
        if preds.is_empty() {
            return Ok(false);
        }
        self.ops.retain(|o| !(o.container == c && o.key == key));
        self.ops.push(FlatOp {
            container: c,
            key: key.to_string(),
            action: FlatAction::Delete { preds },
        });
        Ok(true)
    }
}

/// The document as a change's author sees it before writing: its view.
fn view_of(l: &Ledger) -> Json {
    l.settled().map(|s| s.view.clone()).unwrap_or(Json::Null)
}

/// Makes one signed change to `doc_id` inside an open store transaction (see [`Node::write`]).
///
/// The holder of a State's or body's key delegates its own node before its first write to
/// that principal's documents: a change of its own, so the data change has the delegation in
/// its causal past.
pub(crate) fn write_in<T>(
    tx: &mut StoreTx<'_>,
    home: &Home,
    doc_id: &DocId,
    now: i64,
    f: impl FnOnce(&mut Writer<'_>, &Json) -> Result<T, NodeError>,
) -> Result<(T, Option<ChangeHash>), NodeError> {
    let me = home.key.node_id();
    let own = home.config.participant.principal();
    if let Some(key) = &home.principal_key
        && doc_id.principal().as_ref() == Some(&own)
    {
        let delegated =
            tx.with_ledger(doc_id, |l| own_delegation_in(&view_of(l), &me).is_some())?;
        if !delegated {
            let grant = self_delegation(key, own, me, Date::from_unix_seconds(now));
            commit_one(tx, home, doc_id, now, |w, _| {
                w.put_text(
                    GrantKind::Delegation.container(),
                    &grant.storage_key(),
                    grant.to_text(),
                )
            })?;
        }
    }
    commit_one(tx, home, doc_id, now, f)
}

/// This node's delegation text in a document's view, if it holds one.
pub(crate) fn own_delegation_in(view: &Json, me: &NodeId) -> Option<String> {
    let prefix = format!("{me}/");
    view.get("delegations")?
        .as_object()?
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .filter_map(|(_, v)| SignedGrant::from_value(v).ok())
        .max_by_key(|g| (g.grant.serial, g.grant.issued, g.storage_key()))
        .map(|g| g.to_text())
}

/// The delegation, of scope all, by which the holder of a principal key lets its own node
/// write.
pub(crate) fn self_delegation(
    key: &poa_protocol::sign::NodeKey,
    principal: Principal,
    node: NodeId,
    issued: Date,
) -> SignedGrant {
    SignedGrant::sign(
        key,
        Grant {
            kind: GrantKind::Delegation,
            principal,
            node,
            scope: Some(Scope::ALL),
            expires: None,
            issued,
            key: key.node_id(),
            cutoff: Vec::new(),
            serial: 0,
            kept: Vec::new(),
            recovery: None,
        },
    )
}

/// Makes one change on the document as the transaction sees it, signs it, and passes it
/// through the gate; refuses it (and so the whole transaction) unless it stands.
pub(crate) fn commit_one<T>(
    tx: &mut StoreTx<'_>,
    home: &Home,
    doc_id: &DocId,
    now: i64,
    f: impl FnOnce(&mut Writer<'_>, &Json) -> Result<T, NodeError>,
) -> Result<(T, Option<ChangeHash>), NodeError> {
    commit_with(tx, home, doc_id, now, &|_, _| false, f)
}

/// [`commit_one`], but a change that does not stand is also taken if `carried` says so of
/// the ledger holding it (a key recovery placed by a node no key delegates: it stands
/// nowhere, but moves every node's key chain).
pub(crate) fn commit_with<T>(
    tx: &mut StoreTx<'_>,
    home: &Home,
    doc_id: &DocId,
    now: i64,
    carried: &dyn Fn(&Ledger, &ChangeHash) -> bool,
    f: impl FnOnce(&mut Writer<'_>, &Json) -> Result<T, NodeError>,
) -> Result<(T, Option<ChangeHash>), NodeError> {
    let actor = actor_bytes(&home.key.node_id(), &home.actor_suffix);
    let (out, data) = tx.with_ledger(doc_id, |l| -> Result<_, NodeError> {
        let view = view_of(l);
        let mut w = Writer {
            doc: doc_id,
            ledger: l,
            ops: Vec::new(),
        };
        let out = f(&mut w, &view)?;
        let data = (!w.ops.is_empty()).then(|| l.next_change(&actor, now, w.ops));
        Ok((out, data))
    })??;
    let Some(data) = data else {
        return Ok((out, None));
    };
    data.check(doc_id.kind().container_policies().len())
        .map_err(|m| DocError::TooLarge(m.to_string()))?;
    let hash = data
        .to_automerge(doc_id)
        .map_err(|m| DocError::TooLarge(m.to_string()))?
        .hash();
    let signature = sign_change(&home.key, doc_id, &hash).to_vec();
    let outcome = tx.apply(
        doc_id,
        vec![SignedChange { data, signature }],
        Source::Local,
        now,
    )?;
    if let Some((_, r)) = outcome.rejected.into_iter().next() {
        return Err(NodeError::Rejected(Box::new(r)));
    }
    match tx.with_ledger(doc_id, |l| (l.verdict(&hash).cloned(), carried(l, &hash)))? {
        (Some(Verdict::Stands), _) | (Some(Verdict::Void(_)), true) => Ok((out, Some(hash))),
        (Some(Verdict::Void(d)), false) => Err(NodeError::Denied(Box::new(d))),
        _ => Err(NodeError::Rejected(Box::new(Rejection::NotAWriter {
            hash: hash.to_string(),
            author: home.key.node_id(),
            why: "the change did not reach the document".into(),
        }))),
    }
}

/// Seconds since the Unix epoch, from the system clock.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Today's date (UTC) from the system clock.
pub fn today() -> Date {
    Date::from_unix_seconds(now_secs())
}

/// The errors of a check, in one line, each with what to do.
fn checks_line(findings: &[Finding]) -> String {
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| format!("{} {}", f.field, f.message))
        .collect();
    format!("nothing written: {}", errors.join("; "))
}

/// Refuses a record the checks find errors in; returns its warnings.
pub(crate) fn refuse_errors(findings: Vec<Finding>) -> Result<Vec<Finding>, NodeError> {
    if has_errors(&findings) {
        Err(NodeError::Checks(findings))
    } else {
        Ok(findings)
    }
}

impl Node {
    /// Opens the node in `dir` (settling a key change a crash interrupted).
    pub fn open(dir: &std::path::Path) -> Result<Node, NodeError> {
        let home = Home::open(dir)?;
        let store = home.store()?;
        let mut node = Node {
            home,
            store,
            clock: Clock::system(),
            warnings: Vec::new(),
            trust_noted: Default::default(),
        };
        node.settle_staged_key()?;
        Ok(node)
    }

    /// Wraps an initialised home.
    pub fn from_home(home: Home) -> Result<Node, NodeError> {
        let store = home.store()?;
        let node = Node {
            home,
            store,
            clock: Clock::system(),
            warnings: Vec::new(),
            trust_noted: Default::default(),
        };
        node.vouch_recovery_key();
        Ok(node)
    }

    /// The same node reading the time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Node {
        self.clock = clock;
        self
    }

    /// Seconds since the Unix epoch, on this node's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.home.key.node_id()
    }

    /// The State this node acts for, or an error saying it is a body's node.
    pub fn own_state(&self) -> Result<StateCode, NodeError> {
        self.home
            .config
            .participant
            .state()
            .ok_or_else(|| NodeError::NotAState(self.home.config.participant.clone()))
    }

    /// The documents of this node's own State or body that grants are stored in.
    pub(crate) fn own_grant_docs(&self) -> Vec<DocId> {
        match &self.home.config.participant {
            Participant::State { code } => vec![DocId::State(*code), DocId::Draft(*code)],
            Participant::Body { code, .. } => vec![
                DocId::Offers(code.to_string()),
                DocId::OffersDraft(code.to_string()),
            ],
        }
    }

    /// Makes one signed change to `doc_id`: `f` adds operations through the writer after
    /// reading the document's view. The change passes the gate and is committed in one SQLite
    /// transaction; if `f` or anything after it fails, or the change would not stand, nothing
    /// is written.
    pub fn write<T>(
        &mut self,
        doc_id: &DocId,
        f: impl FnOnce(&mut Writer<'_>, &Json) -> Result<T, NodeError>,
    ) -> Result<(T, Option<ChangeHash>), NodeError> {
        let now = self.now();
        let Node { home, store, .. } = self;
        store.transact(|tx| write_in(tx, home, doc_id, now, f))
    }

    /// Signs a delegation with this node's State or body key, letting `node` write its
    /// documents within `scope` until `expires`. Stored in every document of the principal
    /// that holds grants, in one transaction.
    pub fn delegate(
        &mut self,
        node: NodeId,
        scope: Scope,
        expires: Option<Date>,
    ) -> Result<SignedGrant, NodeError> {
        self.grant(node, GrantKind::Delegation, Some(scope), expires)
    }

    /// Signs a revocation: `node`'s changes up to what this node holds of them now stand; any
    /// other change it made, or makes, in this principal's documents is void everywhere,
    /// whatever its dependencies or date say.
    pub fn revoke(&mut self, node: NodeId) -> Result<SignedGrant, NodeError> {
        let known = self
            .grants()?
            .iter()
            .any(|(g, _)| g.kind == GrantKind::Delegation && g.node == node);
        if !known {
            return Err(NodeError::NotDelegated(node));
        }
        self.grant(node, GrantKind::Revocation, None, None)
    }

    fn grant(
        &mut self,
        node: NodeId,
        kind: GrantKind,
        scope: Option<Scope>,
        expires: Option<Date>,
    ) -> Result<SignedGrant, NodeError> {
        let principal = self.home.config.participant.principal();
        let Some(key) = self.home.principal_key.as_ref() else {
            return Err(NodeError::NoPrincipalKey(
                principal.code(),
                principal.key_name(),
            ));
        };
        let docs = self.own_grant_docs();
        let mut cutoff = Vec::new();
        // A revocation keeps what the node wrote up to now; a delegation replacing an earlier
        // one (narrower, wider, renewed) leaves what it wrote up to now judged under the one
        // it was written under.
        let earlier = self
            .grants()?
            .iter()
            .filter(|(g, _)| g.kind == GrantKind::Delegation && g.node == node)
            .map(|(g, _)| g.serial + 1)
            .max();
        let replaces = kind == GrantKind::Delegation && earlier.is_some();
        // A revoked node of a State is also revoked in the pools where it is the State's
        // member and this node may write (a member of the State there, or the coordinator):
        // the revocation, with a cut-off for the pool, goes into the pool too.
        let pools = match (&principal, kind) {
            (Principal::State(code), GrantKind::Revocation) => {
                self.pools_with_member(*code, &node)?
            }
            _ => Vec::new(),
        };
        if kind == GrantKind::Revocation || replaces {
            for d in docs.iter().chain(&pools) {
                if let Some(c) = self.store.with_ledger(d, |l| l.cutoff_for(&node))? {
                    cutoff.extend(c);
                }
            }
        }
        if self
            .grants()?
            .iter()
            .any(|(g, _)| g.node == node && g.kind == kind && kind == GrantKind::Revocation)
        {
            return Err(NodeError::AlreadyGranted { node, kind });
        }
        let signed = SignedGrant::sign(
            key,
            Grant {
                kind,
                principal: principal.clone(),
                node,
                scope,
                expires,
                issued: self.clock.today(),
                key: key.node_id(),
                cutoff,
                serial: if kind == GrantKind::Delegation {
                    earlier.unwrap_or(0)
                } else {
                    0
                },
                kept: Vec::new(),
                recovery: None,
            },
        );
        let now = self.now();
        let Node { home, store, .. } = self;
        store.transact(|tx| {
            for doc in &docs {
                write_in(tx, home, doc, now, |w, _| {
                    w.put_text(kind.container(), &signed.storage_key(), signed.to_text())
                })?;
            }
            if let Principal::State(code) = &principal {
                let entry = format!("{code}/{node}/revoked");
                for doc in &pools {
                    write_in(tx, home, doc, now, |w, _| {
                        w.put_text("members", &entry, signed.to_text())
                    })?;
                }
            }
            Ok::<_, NodeError>(())
        })?;
        Ok(signed)
    }

    /// The pools held here where `node` is a member for `state` and this node may write: the
    /// coordinator's, or where this node is a member for `state` itself.
    fn pools_with_member(&self, state: StateCode, node: &NodeId) -> Result<Vec<DocId>, NodeError> {
        let me = self.id();
        Ok(self
            .pools()?
            .into_iter()
            .filter(|(_, p)| p.members.get(&state).is_some_and(|m| m.contains_key(node)))
            .filter_map(|(id, p)| {
                let doc = DocId::Pool(id.parse().ok()?);
                let coordinator = matches!(&doc, DocId::Pool(pid) if pid.is_creator(&me));
                let member = p.members.get(&state).is_some_and(|m| m.contains_key(&me));
                (coordinator || member).then_some(doc)
            })
            .collect())
    }

    /// On the node holding its State's or body's key: revokes, with a cut-off at what this
    /// node holds of them, every delegation whose expiry date has passed and that no
    /// revocation ends yet. A change's date is its author's claim, so expiry is made to stick
    /// by this revocation, not by dates. Returns the nodes revoked.
    pub fn lapse_expired(&mut self) -> Result<Vec<NodeId>, NodeError> {
        if self.home.principal_key.is_none() {
            return Ok(Vec::new());
        }
        let today = self.clock.today();
        let grants = self.grants()?;
        let revoked: Vec<NodeId> = grants
            .iter()
            .filter(|(g, _)| g.kind == GrantKind::Revocation)
            .map(|(g, _)| g.node)
            .collect();
        let mut lapsed: Vec<NodeId> = Vec::new();
        for (g, _) in &grants {
            if g.kind != GrantKind::Delegation || revoked.contains(&g.node) || g.node == self.id() {
                continue;
            }
            // The latest delegation of a node decides; an expired one replaced by a later,
            // unexpired one does not lapse.
            let latest = grants
                .iter()
                .filter(|(x, _)| x.kind == GrantKind::Delegation && x.node == g.node)
                .max_by_key(|(x, _)| (x.serial, x.issued));
            if let Some((l, _)) = latest
                && l == g
                && g.expires.is_some_and(|e| e < today)
                && !lapsed.contains(&g.node)
            {
                lapsed.push(g.node);
            }
        }
        for n in &lapsed {
            self.grant(*n, GrantKind::Revocation, None, None)?;
        }
        Ok(lapsed)
    }

    /// The grants (delegations and revocations) of this node's State or body, each with
    /// whether it is signed by the key this node trusts for it.
    pub fn grants(&self) -> Result<Vec<(Grant, bool)>, NodeError> {
        let doc = self.own_grant_docs().remove(0);
        self.grants_in(&doc)
    }

    /// The grants in a held document's view.
    pub fn grants_in(&self, doc: &DocId) -> Result<Vec<(Grant, bool)>, NodeError> {
        let chain = self.key_chain_of(doc)?;
        let Some(view) = self.store.view(doc)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for kind in [GrantKind::Delegation, GrantKind::Revocation] {
            if let Some(map) = view[kind.container()].as_object() {
                for v in map.values() {
                    if let Ok(g) = SignedGrant::from_value(v) {
                        let ok = chain
                            .as_ref()
                            .is_some_and(|c| poa_protocol::authority::Signers::accepts(c, &g));
                        out.push((g.grant, ok));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Reads a State document (draft or published); empty if the node holds none.
    pub fn state_data(&self, doc: &DocId) -> Result<StateData, NodeError> {
        Ok(match self.store.view(doc)? {
            Some(v) => StateData::from_json(&v),
            None => StateData::default(),
        })
    }

    /// Views of a State's targets. For this node's own State they come from the draft, marked
    /// with what is published; for another State, from what this node holds of its published
    /// document.
    pub fn target_views(&self, state: Option<StateCode>) -> Result<Vec<TargetView>, NodeError> {
        let (data, published) = self.views_source(state)?;
        Ok(target_views(&data, published.as_ref(), self.clock.today()))
    }

    /// The view of one target.
    pub fn target_view(&self, state: Option<StateCode>, id: &str) -> Result<TargetView, NodeError> {
        let (data, published) = self.views_source(state)?;
        let code = match state {
            Some(s) => s,
            None => self.own_state()?,
        };
        target_view(&data, published.as_ref(), id, self.clock.today()).ok_or_else(|| {
            NodeError::NoTarget {
                state: code,
                id: id.to_string(),
            }
        })
    }

    /// Views of a State's targets as published (never a draft, even on the State's own node).
    pub fn published_views(&self, state: StateCode) -> Result<Vec<TargetView>, NodeError> {
        let published = self.state_data(&DocId::State(state))?;
        Ok(target_views(&published, None, self.clock.today()))
    }

    fn views_source(
        &self,
        state: Option<StateCode>,
    ) -> Result<(StateData, Option<StateData>), NodeError> {
        let own = self.home.config.participant.state();
        match state {
            Some(s) if Some(s) != own => Ok((self.state_data(&DocId::State(s))?, None)),
            _ => {
                let s = self.own_state()?;
                Ok((
                    self.state_data(&DocId::Draft(s))?,
                    Some(self.state_data(&DocId::State(s))?),
                ))
            }
        }
    }

    /// The State's assistance requests (this node's State, or another it holds).
    /// For this node's own State (`None`), the draft's requests too: those not yet published.
    pub fn needs(&self, state: Option<StateCode>) -> Result<Vec<Need>, NodeError> {
        let own = match state {
            Some(s) => {
                return Ok(self
                    .state_data(&DocId::State(s))?
                    .needs
                    .into_values()
                    .collect());
            }
            None => self.own_state()?,
        };
        let draft = self.state_data(&DocId::Draft(own))?;
        let published = self.state_data(&DocId::State(own))?;
        let mut needs = draft.needs;
        for (id, n) in published.needs {
            // A withdrawal waiting in the draft counts here already.
            if !draft.retracted.contains_key(&format!("needs/{id}")) {
                needs.entry(id).or_insert(n);
            }
        }
        Ok(needs.into_values().collect())
    }

    /// The document that holds this node's offers: `offers/<code>`, for a body's node.
    pub fn offers_doc(&self) -> DocId {
        DocId::Offers(self.home.config.participant.code())
    }

    /// Every offer this node holds, its own and others'.
    pub fn offers(&self) -> Result<Vec<Offer>, NodeError> {
        let mut out = Vec::new();
        for id in self.store.doc_ids()? {
            if let DocId::Offers(_) = id
                && let Some(v) = self.store.view(&id)?
            {
                out.extend(read_offers(&v).0.into_values());
            }
        }
        Ok(out)
    }

    /// Adds readers to the share list of one of this node's own documents (its State's published
    /// document or its body's offers), or makes it public. The list lives in the document,
    /// signed, so every relay enforces it.
    pub fn share(&mut self, doc: &DocId, with: &[NodeId], public: bool) -> Result<(), NodeError> {
        self.check_own(doc)?;
        self.write(doc, |w, before| {
            let already = poa_protocol::doc::readers(before);
            for id in with {
                if !already.contains(&id.to_string()) {
                    w.put("readers", &id.to_string(), &true)?;
                }
            }
            if public && !already.contains(poa_protocol::doc::PUBLIC) {
                w.put("readers", poa_protocol::doc::PUBLIC, &true)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Refuses a document that is not this node's own to share: a draft, or another's.
    fn check_own(&self, doc: &DocId) -> Result<(), NodeError> {
        let own = match doc {
            DocId::State(s) => self.home.config.participant.state() == Some(*s),
            DocId::Offers(p) => {
                self.home.config.participant.state().is_none()
                    && *p == self.home.config.participant.code()
            }
            DocId::Draft(_) | DocId::OffersDraft(_) => {
                return Err(NodeError::DraftNotShareable(doc.clone()));
            }
            _ => false,
        };
        if !own {
            return Err(NodeError::NotOwn(doc.clone()));
        }
        Ok(())
    }

    /// Takes readers off the share list of one of this node's own documents: each entry is a
    /// NodeId (text), `pool/<id>` (or `pool/<name>` when one pool on the list has that name),
    /// or [`poa_protocol::doc::PUBLIC`]. The entries are deleted by naming them, in one
    /// change; later changes no longer reach the removed readers (what they already hold stays
    /// with them). Refuses, writing nothing, an entry that is not on the list. Returns the
    /// entries removed, as the list spelt them.
    pub fn unshare(&mut self, doc: &DocId, entries: &[String]) -> Result<Vec<String>, NodeError> {
        self.check_own(doc)?;
        let doc_text = doc.to_string();
        let (removed, _) = self.write(doc, |w, before| {
            let listed = poa_protocol::doc::readers(before);
            let mut removed = Vec::new();
            for entry in entries {
                let found = if listed.contains(entry) {
                    Some(entry.clone())
                } else if let Some(name) = entry.strip_prefix("pool/")
                    && !name.contains('~')
                {
                    let prefix = format!("pool/{name}~");
                    let named: Vec<&String> =
                        listed.iter().filter(|r| r.starts_with(&prefix)).collect();
                    match named.as_slice() {
                        [one] => Some((*one).clone()),
                        [] => None,
                        many => {
                            return Err(NodeError::AmbiguousPool(
                                name.to_string(),
                                many.len(),
                                many.iter()
                                    .map(|r| r.trim_start_matches("pool/"))
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            ));
                        }
                    }
                } else {
                    None
                };
                let Some(found) = found else {
                    return Err(NodeError::NotAReader {
                        doc: doc_text.clone(),
                        reader: entry.clone(),
                    });
                };
                if !removed.contains(&found) {
                    w.delete("readers", &found)?;
                    removed.push(found);
                }
            }
            Ok(removed)
        })?;
        Ok(removed)
    }

    /// The share list of a document this node holds.
    pub fn readers(&self, doc: &DocId) -> Result<std::collections::BTreeSet<String>, NodeError> {
        self.store
            .view(doc)?
            .map(|v| poa_protocol::doc::readers(&v))
            .ok_or_else(|| NodeError::NoDocument(doc.clone()))
    }

    /// The view of a document this node holds.
    pub fn view(&self, id: &DocId) -> Result<Json, NodeError> {
        self.store
            .view(id)?
            .ok_or_else(|| NodeError::NoDocument(id.clone()))
    }

    /// A held document as a standard saved Automerge file, with what stands and its causal
    /// past (of twins of an equivocation, only the first held: Automerge keeps one per actor and
    /// position).
    pub fn export_automerge(&self, id: &DocId) -> Result<Vec<u8>, NodeError> {
        let changes = self
            .store
            .with_ledger(id, |l| l.automerge_changes())?
            .ok_or_else(|| NodeError::NoDocument(id.clone()))?;
        let saved = poa_protocol::change::contain(move || {
            let mut am = poa_protocol::automerge::Automerge::new();
            am.apply_changes(changes).map(|()| am.save())
        })
        .map_err(DocError::TooLarge)?
        .map_err(|e| DocError::TooLarge(e.to_string()))?;
        Ok(saved)
    }
}
