//! A node's own data: the write paths that the CLI, the demo and the tests share, and the reads
//! behind listings. Each write is one signed Automerge change in one document, passed through
//! the same gate as a change from a peer, and committed in one SQLite transaction.

use poa_protocol::authority::{Grant, GrantKind, Scope, SignedGrant};
use poa_protocol::automerge::transaction::{CommitOptions, Transaction};
use poa_protocol::automerge::{Automerge, ChangeHash, ReadDoc};
use poa_protocol::doc::{
    DocError, DocId, StateData, put_record, put_value, read_offers, target_key,
};
use poa_protocol::model::{ModelError, Need, Offer, Progress, Target};
use poa_protocol::rules::{Incoming, Rejection};
use poa_protocol::sign::{actor_id, sign_change};
use poa_protocol::view::{TargetView, target_view, target_views};
use poa_protocol::{Date, NodeId, Participant, StateCode};

use crate::home::{Home, HomeError};
use crate::store::{Source, Store, StoreError, StoreTx, StoredDoc};

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
    /// The target was withdrawn.
    #[error("target {0} is withdrawn; it can no longer change")]
    Withdrawn(String),
    /// The node holds no such document.
    #[error("this node holds no document {0}; see `poa-node doc list`")]
    NoDocument(DocId),
    /// Drafts are never shared.
    #[error("{0} is a draft: drafts never leave the State's own nodes; share state/CODE instead")]
    DraftNotShareable(DocId),
    /// Only a document's owner shares it.
    #[error("{0} is not this node's own document: only its owner decides who reads it")]
    NotOwn(DocId),
    /// Only the State key's holder signs grants.
    #[error(
        "this node does not hold {0}'s State key (state.key): run this on the State's first node"
    )]
    NoStateKey(StateCode),
    /// A node already holds this kind of grant: grants are never edited.
    #[error(
        "{node} already has a {kind:?} from this State; grants are never edited (revoke it, and delegate a new node key for a new scope)"
    )]
    AlreadyGranted {
        /// The node.
        node: NodeId,
        /// Delegation or revocation.
        kind: GrantKind,
    },
    /// Revoking a node that holds no delegation.
    #[error("{0} holds no delegation from this State; see `poa-node delegations`")]
    NotDelegated(NodeId),
    /// Only a pool's coordinator does this.
    #[error("only the coordinator of pool {0} does this; see `poa-node pool show {0}`")]
    NotCoordinator(String),
    /// The pool id is taken.
    #[error("pool {0} already exists (coordinated by {1}); choose another --id")]
    PoolExists(String, String),
    /// The node holds no such pool.
    #[error(
        "this node holds no pool {0}: it arrives once its coordinator invites this State and the nodes sync; see `poa-node pool list`"
    )]
    NoPool(String),
    /// A pool that two nodes created under one id.
    #[error(
        "pool {0} has {1} coordinator nodes: two nodes created it under one id, and joining would share this State's data with both; ask its coordinator (see `poa-node pool show {0} --json`)"
    )]
    DisputedPool(String, usize),
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
        "no State key is known here for {0}: pin one of its nodes with `poa-node peer add NODEID@HOST:PORT --state {0}`, then invite"
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
    /// The node's own gate refused its own change: a bug or a misconfigured key.
    #[error("the change was refused: {0}")]
    Rejected(Box<Rejection>),
}

/// What `publish` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// Versions newly published.
    pub versions: Vec<u32>,
    /// Progress reports newly published.
    pub progress: Vec<String>,
    /// Whether the withdrawal was published.
    pub withdrawal: bool,
}

/// A node: its home and its database.
#[derive(Debug)]
pub struct Node {
    /// Keys and configuration.
    pub home: Home,
    /// The database.
    pub store: Store,
}

/// Makes one signed change to `doc_id` inside an open store transaction (see [`Node::write`]).
///
/// Two bootstrapping steps happen here, each as its own earlier change so the data change can
/// rely on it in its causal past: the holder of the State key delegates itself before its first
/// write to a State document, and the first writer of any other document claims it.
pub(crate) fn write_in<T>(
    tx: &mut StoreTx<'_>,
    home: &Home,
    doc_id: &DocId,
    now: i64,
    f: impl FnOnce(&mut Transaction<'_>, &Automerge) -> Result<T, NodeError>,
) -> Result<(T, Option<ChangeHash>), NodeError> {
    let me = home.key.node_id();
    let mut stored = tx.load_or_create(doc_id, now)?;
    let before = poa_protocol::doc::document_json(&stored.doc, None);
    let own_state = home.config.participant.state();
    if let (Some(state_key), Some(state)) = (&home.state_key, doc_id.state())
        && Some(state) == own_state
        && before["delegations"].get(me.to_string()).is_none()
    {
        let grant = self_delegation(state_key, state, me, Date::from_unix_seconds(now));
        let text = serde_json::Value::String(grant.to_text());
        commit_one(tx, home, doc_id, &mut stored, now, |t, _| {
            put_value(t, "delegations", &me.to_string(), &text)?;
            Ok(())
        })?;
    }
    let claim =
        doc_id.state().is_none() && before["owner"].as_object().is_none_or(|o| o.is_empty());
    commit_one(tx, home, doc_id, &mut stored, now, |t, before| {
        if claim {
            put_value(t, "owner", &me.to_string(), &serde_json::json!(true))?;
        }
        f(t, before)
    })
}

/// The delegation, of scope all, by which the holder of a State key lets its own node write.
pub(crate) fn self_delegation(
    state_key: &poa_protocol::sign::NodeKey,
    state: StateCode,
    node: NodeId,
    issued: Date,
) -> SignedGrant {
    SignedGrant::sign(
        state_key,
        Grant {
            kind: GrantKind::Delegation,
            state,
            node,
            scope: Some(Scope::ALL),
            expires: None,
            issued,
            state_key: state_key.node_id(),
        },
    )
}

/// Makes one change on `stored`, signs it and passes it through the gate.
fn commit_one<T>(
    tx: &mut StoreTx<'_>,
    home: &Home,
    doc_id: &DocId,
    stored: &mut StoredDoc,
    now: i64,
    f: impl FnOnce(&mut Transaction<'_>, &Automerge) -> Result<T, NodeError>,
) -> Result<(T, Option<ChangeHash>), NodeError> {
    let mut scratch = stored.doc.clone();
    scratch.set_actor(actor_id(&home.key.node_id(), &home.actor_suffix));
    let mut am_tx = scratch.transaction();
    let out = f(&mut am_tx, &stored.doc)?;
    let (hash, _) = am_tx.commit_with(CommitOptions::default().with_time(now));
    let Some(hash) = hash else {
        return Ok((out, None));
    };
    let change = scratch
        .get_change_by_hash(&hash)
        .ok_or_else(|| StoreError::Corrupt {
            doc: doc_id.to_string(),
            reason: "a change just made is missing".into(),
        })?;
    let signature = Some(sign_change(&home.key, doc_id, &hash));
    let applied = tx.apply(
        doc_id,
        stored,
        vec![Incoming { change, signature }],
        Source::Local,
        now,
    )?;
    if let Some((_, r)) = applied.rejected.into_iter().next() {
        return Err(NodeError::Rejected(Box::new(r)));
    }
    Ok((out, Some(hash)))
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

impl Node {
    /// Opens the node in `dir`.
    pub fn open(dir: &std::path::Path) -> Result<Node, NodeError> {
        let home = Home::open(dir)?;
        let store = home.store()?;
        Ok(Node { home, store })
    }

    /// Wraps an initialised home.
    pub fn from_home(home: Home) -> Result<Node, NodeError> {
        let store = home.store()?;
        Ok(Node { home, store })
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

    /// Makes one signed change to `doc_id`: `f` writes through the Automerge transaction after
    /// reading the document as it was. The change passes the gate and is committed in one SQLite
    /// transaction; if `f` or anything after it fails, nothing is written.
    pub fn write<T>(
        &mut self,
        doc_id: &DocId,
        f: impl FnOnce(&mut Transaction<'_>, &Automerge) -> Result<T, NodeError>,
    ) -> Result<(T, Option<ChangeHash>), NodeError> {
        let Node { home, store } = self;
        store.transact(|tx| write_in(tx, home, doc_id, now_secs(), f))
    }

    /// Signs a delegation with the State key, letting `node` write this State's documents
    /// within `scope` until `expires`. Stored in the published document and the draft, in one
    /// transaction.
    pub fn delegate(
        &mut self,
        node: NodeId,
        scope: Scope,
        expires: Option<Date>,
    ) -> Result<SignedGrant, NodeError> {
        self.grant(node, GrantKind::Delegation, Some(scope), expires)
    }

    /// Signs a revocation with the State key: `node`'s changes made after it saw the revocation
    /// are refused everywhere; its earlier changes stand.
    pub fn revoke(&mut self, node: NodeId) -> Result<SignedGrant, NodeError> {
        let state = self.own_state()?;
        let known = self
            .grants(state)?
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
        let state = self.own_state()?;
        let Some(state_key) = self.home.state_key.as_ref() else {
            return Err(NodeError::NoStateKey(state));
        };
        let signed = SignedGrant::sign(
            state_key,
            Grant {
                kind,
                state,
                node,
                scope,
                expires,
                issued: today(),
                state_key: state_key.node_id(),
            },
        );
        let container = match kind {
            GrantKind::Delegation => "delegations",
            GrantKind::Revocation => "revocations",
        };
        let text = serde_json::Value::String(signed.to_text());
        let Node { home, store } = self;
        let now = now_secs();
        store.transact(|tx| {
            for doc in [DocId::State(state), DocId::Draft(state)] {
                write_in(tx, home, &doc, now, |t, before| {
                    if poa_protocol::doc::document_json(before, None)[container]
                        .get(node.to_string())
                        .is_some()
                    {
                        return Err(NodeError::AlreadyGranted { node, kind });
                    }
                    put_value(t, container, &node.to_string(), &text)?;
                    Ok(())
                })?;
            }
            Ok::<_, NodeError>(())
        })?;
        Ok(signed)
    }

    /// The grants (delegations and revocations) in a State's published document, each with
    /// whether it verifies against the trusted State key.
    pub fn grants(&self, state: StateCode) -> Result<Vec<(Grant, bool)>, NodeError> {
        let trusted = self.store.trust().state_key(&state).copied();
        let json = match self.store.load(&DocId::State(state))? {
            Some(d) => poa_protocol::doc::document_json(&d.doc, None),
            None => return Ok(Vec::new()),
        };
        let mut out = Vec::new();
        for container in ["delegations", "revocations"] {
            if let Some(map) = json[container].as_object() {
                for v in map.values() {
                    if let Some(g) = v.as_str().and_then(|t| SignedGrant::parse(t).ok()) {
                        let ok = Some(g.grant.state_key) == trusted;
                        out.push((g.grant, ok));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Reads a State document (draft or published); empty if the node holds none.
    pub fn state_data(&self, doc: &DocId) -> Result<StateData, NodeError> {
        Ok(match self.store.load(doc)? {
            Some(d) => StateData::read(&d.doc, None),
            None => StateData::default(),
        })
    }

    /// Views of a State's targets. For this node's own State they come from the draft, marked
    /// with what is published; for another State, from what this node holds of its published
    /// document.
    pub fn target_views(&self, state: Option<StateCode>) -> Result<Vec<TargetView>, NodeError> {
        let (data, published) = self.views_source(state)?;
        Ok(target_views(&data, published.as_ref(), today()))
    }

    /// The view of one target.
    pub fn target_view(&self, state: Option<StateCode>, id: &str) -> Result<TargetView, NodeError> {
        let (data, published) = self.views_source(state)?;
        let code = match state {
            Some(s) => s,
            None => self.own_state()?,
        };
        target_view(&data, published.as_ref(), id, today()).ok_or_else(|| NodeError::NoTarget {
            state: code,
            id: id.to_string(),
        })
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

    /// Adds a new target (version 1) to the State's draft.
    pub fn add_target(&mut self, mut target: Target) -> Result<ChangeHash, NodeError> {
        let state = self.own_state()?;
        target.state = state;
        target.version = 1;
        target.supersedes = None;
        target.validate()?;
        let (_, hash) = self.write(&DocId::Draft(state), |tx, before| {
            let data = StateData::read(before, None);
            if data.latest(&target.id).is_some() {
                return Err(NodeError::TargetExists {
                    state,
                    id: target.id.clone(),
                });
            }
            put_record(tx, "targets", &target_key(&target.id, 1), &target)?;
            Ok(())
        })?;
        hash.ok_or_else(|| NodeError::Exists(target.id.clone()))
    }

    /// Writes a new version of a target. `edit` changes a copy of the current version; the old
    /// one stays readable, marked superseded.
    pub fn supersede_target(
        &mut self,
        id: &str,
        edit: impl FnOnce(&mut Target) -> Result<(), NodeError>,
    ) -> Result<u32, NodeError> {
        let state = self.own_state()?;
        let (version, _) = self.write(&DocId::Draft(state), |tx, before| {
            let data = StateData::read(before, None);
            let current = data.latest(id).ok_or_else(|| NodeError::NoTarget {
                state,
                id: id.to_string(),
            })?;
            if data.withdrawn.contains_key(id) {
                return Err(NodeError::Withdrawn(id.to_string()));
            }
            let mut next = current.clone();
            edit(&mut next)?;
            let mut unchanged = next.clone();
            unchanged.reason = current.reason.clone();
            if unchanged == *current {
                return Err(NodeError::NothingChanged(id.to_string()));
            }
            next.id = current.id.clone();
            next.state = state;
            next.version = current.version + 1;
            next.supersedes = Some(current.version);
            next.validate()?;
            put_record(tx, "targets", &target_key(id, next.version), &next)?;
            Ok(next.version)
        })?;
        Ok(version)
    }

    /// Marks a target withdrawn in the draft.
    pub fn withdraw_target(&mut self, id: &str, on: Date) -> Result<(), NodeError> {
        let state = self.own_state()?;
        self.write(&DocId::Draft(state), |tx, before| {
            let data = StateData::read(before, None);
            if data.latest(id).is_none() {
                return Err(NodeError::NoTarget {
                    state,
                    id: id.to_string(),
                });
            }
            if data.withdrawn.contains_key(id) {
                return Err(NodeError::Withdrawn(id.to_string()));
            }
            put_value(tx, "withdrawn", id, &serde_json::json!(on.to_string()))?;
            Ok(())
        })?;
        Ok(())
    }

    /// Adds a progress report on a target to the draft. Its id is `TARGET/AS-OF`, with `-2`,
    /// `-3`... if the State reports twice for the same date.
    pub fn add_progress(&mut self, mut report: Progress) -> Result<String, NodeError> {
        let state = self.own_state()?;
        let (id, _) = self.write(&DocId::Draft(state), |tx, before| {
            let data = StateData::read(before, None);
            let target = data
                .latest(&report.target)
                .ok_or_else(|| NodeError::NoTarget {
                    state,
                    id: report.target.clone(),
                })?;
            if data.withdrawn.contains_key(&report.target) {
                return Err(NodeError::Withdrawn(report.target.clone()));
            }
            report.target_version = target.version;
            let base = format!("{}/{}", report.target, report.as_of);
            let mut id = base.clone();
            let mut n = 1;
            while data.progress.contains_key(&id) {
                n += 1;
                id = format!("{base}-{n}");
            }
            report.id = id.clone();
            report.validate(target)?;
            put_record(tx, "progress", &id, &report)?;
            Ok(id)
        })?;
        Ok(id)
    }

    /// Copies what the draft holds of a target and is not yet published into the published
    /// document: new versions, new progress reports, a withdrawal.
    pub fn publish_target(&mut self, id: &str) -> Result<Published, NodeError> {
        let state = self.own_state()?;
        let draft = self.state_data(&DocId::Draft(state))?;
        if draft.latest(id).is_none() {
            return Err(NodeError::NoTarget {
                state,
                id: id.to_string(),
            });
        }
        let (published, _) = self.write(&DocId::State(state), |tx, before| {
            let public = StateData::read(before, None);
            let mut out = Published {
                versions: Vec::new(),
                progress: Vec::new(),
                withdrawal: false,
            };
            for t in draft.versions(id) {
                if !public.targets.contains_key(&(t.id.clone(), t.version)) {
                    put_record(tx, "targets", &target_key(id, t.version), t)?;
                    out.versions.push(t.version);
                }
            }
            for p in draft.progress_of(id) {
                if !public.progress.contains_key(&p.id) {
                    put_record(tx, "progress", &p.id, p)?;
                    out.progress.push(p.id.clone());
                }
            }
            if let Some(w) = draft.withdrawn.get(id)
                && !public.withdrawn.contains_key(id)
            {
                put_value(tx, "withdrawn", id, w)?;
                out.withdrawal = true;
            }
            Ok(out)
        })?;
        Ok(published)
    }

    /// Adds an assistance request to the published document: requests exist to be seen by
    /// those who can help.
    pub fn add_need(&mut self, mut need: Need) -> Result<(), NodeError> {
        let state = self.own_state()?;
        need.state = state;
        need.validate()?;
        self.write(&DocId::State(state), |tx, before| {
            let data = StateData::read(before, None);
            if data.needs.contains_key(&need.id) {
                return Err(NodeError::Exists(format!("request {}", need.id)));
            }
            put_record(tx, "needs", &need.id, &need)?;
            Ok(())
        })?;
        Ok(())
    }

    /// The State's assistance requests (this node's State, or another it holds).
    pub fn needs(&self, state: Option<StateCode>) -> Result<Vec<Need>, NodeError> {
        let state = match state {
            Some(s) => s,
            None => self.own_state()?,
        };
        Ok(self
            .state_data(&DocId::State(state))?
            .needs
            .into_values()
            .collect())
    }

    /// The document that holds this node's offers: `offers/<code>`.
    pub fn offers_doc(&self) -> DocId {
        DocId::Offers(self.home.config.participant.code())
    }

    /// Adds an offer of assistance to this node's offers document.
    pub fn add_offer(&mut self, mut offer: Offer) -> Result<(), NodeError> {
        offer.provider = self.home.config.participant.code();
        offer.validate()?;
        let doc = self.offers_doc();
        self.write(&doc, |tx, before| {
            let (offers, _) = read_offers(before);
            if offers.contains_key(&offer.id) {
                return Err(NodeError::Exists(format!("offer {}", offer.id)));
            }
            put_record(tx, "offers", &offer.id, &offer)?;
            Ok(())
        })?;
        Ok(())
    }

    /// Every offer this node holds, its own and others'.
    pub fn offers(&self) -> Result<Vec<Offer>, NodeError> {
        let mut out = Vec::new();
        for id in self.store.doc_ids()? {
            if let DocId::Offers(_) = id
                && let Some(d) = self.store.load(&id)?
            {
                out.extend(read_offers(&d.doc).0.into_values());
            }
        }
        Ok(out)
    }

    /// Adds readers to the share list of one of this node's own documents (its State's published
    /// document or its offers), or makes it public. The list lives in the document, signed, so
    /// every relay enforces it.
    pub fn share(&mut self, doc: &DocId, with: &[NodeId], public: bool) -> Result<(), NodeError> {
        let own = match doc {
            DocId::State(s) => self.home.config.participant.state() == Some(*s),
            DocId::Offers(p) => *p == self.home.config.participant.code(),
            DocId::Draft(_) => return Err(NodeError::DraftNotShareable(doc.clone())),
            _ => false,
        };
        if !own {
            return Err(NodeError::NotOwn(doc.clone()));
        }
        self.write(doc, |tx, _| {
            for id in with {
                put_value(tx, "readers", &id.to_string(), &serde_json::json!(true))?;
            }
            if public {
                put_value(
                    tx,
                    "readers",
                    poa_protocol::doc::PUBLIC,
                    &serde_json::json!(true),
                )?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// The share list of a document this node holds.
    pub fn readers(&self, doc: &DocId) -> Result<std::collections::BTreeSet<String>, NodeError> {
        self.store
            .with_doc(doc, poa_protocol::doc::readers)?
            .ok_or_else(|| NodeError::NoDocument(doc.clone()))
    }

    /// Loads a document this node holds.
    pub fn document(&self, id: &DocId) -> Result<Automerge, NodeError> {
        self.store
            .load(id)?
            .map(|d| d.doc)
            .ok_or_else(|| NodeError::NoDocument(id.clone()))
    }
}
