//! A State's records through their life: written to the draft, corrected or deleted there
//! while never published, published (all pending at once, or one target's part), and once
//! published never edited in place: a target is superseded or withdrawn, a progress report or a
//! request withdrawn with a reason.
//!
//! Every write goes through [`Node::write`], so through the gate, in one transaction, and runs
//! the checks of `poa_protocol::checks` first: errors refuse with nothing written, warnings are
//! kept in [`Node::warnings`] and in the audit.

use std::collections::BTreeSet;

use poa_protocol::automerge::ChangeHash;
use poa_protocol::checks::{Finding, Stage, check_need, check_progress, check_target};
use poa_protocol::doc::{DocId, StateData, target_key};
use poa_protocol::model::{Cycle, Need, Progress, Target, check_text};
use poa_protocol::submission::{Pending, pending};
use poa_protocol::{Date, StateCode};

use crate::node::{Node, NodeError, Writer, refuse_errors};

/// What to publish: everything pending, one cycle's part, one target's part, or one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Everything the draft holds that is not published.
    All,
    /// What concerns the targets of one cycle (and every request).
    Cycle(Cycle),
    /// One target's versions, progress reports and withdrawals.
    Target(String),
    /// One request, or its withdrawal.
    Need(String),
}

impl Selection {
    fn keeps(&self, p: &Pending) -> bool {
        match self {
            Selection::All | Selection::Cycle(_) => true,
            Selection::Target(id) => p.target() == Some(id.as_str()),
            Selection::Need(id) => p.need() == Some(id.as_str()),
        }
    }

    fn cycle(&self) -> Option<Cycle> {
        match self {
            Selection::Cycle(c) => Some(*c),
            _ => None,
        }
    }
}

impl Node {
    /// The State's draft and published document, as held here.
    pub fn drafts(&self) -> Result<(StateCode, StateData, StateData), NodeError> {
        let state = self.own_state()?;
        Ok((
            state,
            self.state_data(&DocId::Draft(state))?,
            self.state_data(&DocId::State(state))?,
        ))
    }

    /// What publishing `selection` would send out, against what is published.
    pub fn pending(&self, selection: &Selection) -> Result<Vec<Pending>, NodeError> {
        let (_, draft, public) = self.drafts()?;
        Ok(pending(&draft, &public, selection.cycle())
            .into_iter()
            .filter(|p| selection.keeps(p))
            .collect())
    }

    /// Adds a new target (version 1) to the State's draft.
    pub fn add_target(&mut self, mut target: Target) -> Result<ChangeHash, NodeError> {
        let state = self.own_state()?;
        target.state = state;
        target.version = 1;
        target.supersedes = None;
        target.validate()?;
        let today = self.clock.today();
        let requests = self.state_data(&DocId::State(state))?.needs;
        // Nor an id with any history in the published document (a dispute written there
        // ahead, shown by no view, would make the publication of its first version void).
        let prefix = format!("{}/", target.id);
        let published = self
            .published_ids(&DocId::State(state), "targets")?
            .iter()
            .any(|k| k.starts_with(&prefix));
        let (warnings, hash) = self.write(&DocId::Draft(state), |w, before| {
            let data = StateData::from_json(before);
            if published || data.latest(&target.id).is_some() {
                return Err(NodeError::TargetExists {
                    state,
                    id: target.id.clone(),
                });
            }
            let mut held = data;
            held.needs.extend(requests);
            let warnings = refuse_errors(check_target(&target, &held, today, Stage::Draft))?;
            w.put("targets", &target_key(&target.id, 1), &target)?;
            Ok(warnings)
        })?;
        self.record_warnings(&DocId::Draft(state), &warnings);
        hash.ok_or_else(|| NodeError::Exists(target.id.clone()))
    }

    /// The ids of `kind` (`progress`, `needs`, `offers`) with any history in the published
    /// document `doc`: an operation held at `kind/ID` or at its withdrawal
    /// `retracted/kind/ID`, whatever its verdict. A key that is a dispute is shown by no
    /// view, yet a new record published there is an edit in place, void: a ministry of
    /// another area may have written one at the id the next record takes, to block the
    /// publication of everything pending. A node gives no new record such an id.
    pub(crate) fn published_ids(
        &self,
        doc: &DocId,
        kind: &str,
    ) -> Result<BTreeSet<String>, NodeError> {
        let prefix = format!("{kind}/");
        Ok(self
            .store
            .with_ledger(doc, |l| {
                let mut ids: BTreeSet<String> = l.written_keys(kind).into_iter().collect();
                ids.extend(
                    l.written_keys("retracted")
                        .into_iter()
                        .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string)),
                );
                ids
            })?
            .unwrap_or_default())
    }

    /// Records the checks' warnings on a record just written (the audit's `check-warning`).
    pub(crate) fn record_warnings(&mut self, doc: &DocId, warnings: &[Finding]) {
        let now = self.now();
        self.warnings = warnings.to_vec();
        for f in warnings {
            let _ = self
                .store
                .audit_event(now, "check-warning", Some(doc), None, &f.to_string());
        }
    }

    /// Writes a new version of a target. `edit` changes a copy of the current version; the old
    /// one stays readable, marked superseded.
    pub fn supersede_target(
        &mut self,
        id: &str,
        edit: impl FnOnce(&mut Target) -> Result<(), NodeError>,
    ) -> Result<u32, NodeError> {
        let state = self.own_state()?;
        let today = self.clock.today();
        let requests = self.state_data(&DocId::State(state))?.needs;
        let ((version, warnings), _) = self.write(&DocId::Draft(state), |w, before| {
            let data = StateData::from_json(before);
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
            let mut held = data.clone();
            held.needs.extend(requests);
            let warnings = refuse_errors(check_target(&next, &held, today, Stage::Draft))?;
            w.put("targets", &target_key(id, next.version), &next)?;
            Ok((next.version, warnings))
        })?;
        self.record_warnings(&DocId::Draft(state), &warnings);
        Ok(version)
    }

    /// Corrects the latest version of a target while it is not published: the draft's copy
    /// is replaced, no version is added. A published version is never edited: the error says
    /// to supersede or withdraw.
    pub fn edit_target(
        &mut self,
        id: &str,
        edit: impl FnOnce(&mut Target) -> Result<(), NodeError>,
    ) -> Result<u32, NodeError> {
        let (state, _, public) = self.drafts()?;
        let today = self.clock.today();
        let ((version, warnings), _) = self.write(&DocId::Draft(state), |w, before| {
            let data = StateData::from_json(before);
            let current = data.latest(id).ok_or_else(|| NodeError::NoTarget {
                state,
                id: id.to_string(),
            })?;
            if public.targets.contains_key(&(id.to_string(), current.version)) {
                return Err(NodeError::IsPublished {
                    what: format!("target {id} version {}", current.version),
                    hint: format!(
                        "write a new version with `poa-node target supersede {id} …`, or withdraw it with `poa-node target withdraw {id}`"
                    ),
                });
            }
            let mut next = current.clone();
            edit(&mut next)?;
            next.id = current.id.clone();
            next.state = state;
            next.version = current.version;
            next.supersedes = current.supersedes;
            if next == *current {
                return Err(NodeError::NothingChanged(id.to_string()));
            }
            next.validate()?;
            if let Some(p) = data
                .progress_of(id)
                .into_iter()
                .find(|p| p.target_version == next.version)
            {
                p.validate(&next)?;
            }
            let mut held = data.clone();
            held.targets.remove(&(id.to_string(), next.version));
            held.needs.extend(public.needs.clone());
            let warnings = refuse_errors(check_target(&next, &held, today, Stage::Draft))?;
            w.replace("targets", &target_key(id, next.version), &next)?;
            Ok((next.version, warnings))
        })?;
        self.record_warnings(&DocId::Draft(state), &warnings);
        Ok(version)
    }

    /// Deletes the latest version of a target while it is not published (the whole target,
    /// if that is its first version). Refused while a progress report or request names it.
    pub fn delete_target(&mut self, id: &str) -> Result<u32, NodeError> {
        let (state, _, public) = self.drafts()?;
        let (version, _) = self.write(&DocId::Draft(state), |w, before| {
            let data = StateData::from_json(before);
            let current = data.latest(id).ok_or_else(|| NodeError::NoTarget {
                state,
                id: id.to_string(),
            })?;
            let version = current.version;
            if public.targets.contains_key(&(id.to_string(), version)) {
                return Err(NodeError::IsPublished {
                    what: format!("target {id} version {version}"),
                    hint: format!(
                        "withdraw it with `poa-node target withdraw {id}`; it stays on record, marked withdrawn"
                    ),
                });
            }
            if let Some(p) = data
                .progress
                .values()
                .chain(data.withdrawn_progress.values())
                .find(|p| p.target == id && p.target_version == version)
            {
                return Err(NodeError::StillNamed {
                    what: format!("target {id} version {version}"),
                    by: format!(
                        "progress report {} (delete it first: `poa-node progress delete {}`)",
                        p.id, p.id
                    ),
                });
            }
            if version == 1
                && let Some(n) = data
                    .needs
                    .values()
                    .chain(public.needs.values())
                    .find(|n| n.targets.iter().any(|t| t == id))
            {
                return Err(NodeError::StillNamed {
                    what: format!("target {id}"),
                    by: format!("request {} (change or delete it first)", n.id),
                });
            }
            w.delete("targets", &target_key(id, version))?;
            if version == 1 {
                w.delete("withdrawn", id)?;
            }
            Ok(version)
        })?;
        Ok(version)
    }

    /// Marks a target withdrawn in the draft.
    pub fn withdraw_target(&mut self, id: &str, on: Date) -> Result<(), NodeError> {
        let state = self.own_state()?;
        self.write(&DocId::Draft(state), |w, before| {
            let data = StateData::from_json(before);
            if data.latest(id).is_none() {
                return Err(NodeError::NoTarget {
                    state,
                    id: id.to_string(),
                });
            }
            if data.withdrawn.contains_key(id) {
                return Err(NodeError::Withdrawn(id.to_string()));
            }
            w.put("withdrawn", id, &on.to_string())
        })?;
        Ok(())
    }

    /// Adds a progress report on a target to the draft. Its id is `TARGET/AS-OF`, with `-2`,
    /// `-3`... if the State reports twice for the same date, or that id has any history (see
    /// [`progress_id`]).
    pub fn add_progress(&mut self, mut report: Progress) -> Result<String, NodeError> {
        let (state, _, public) = self.drafts()?;
        let published = self.published_ids(&DocId::State(state), "progress")?;
        let today = self.clock.today();
        let ((id, warnings), _) = self.write(&DocId::Draft(state), |w, before| {
            let data = StateData::from_json(before);
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
            let id = progress_id(&report, w, &[&data, &public], &published);
            report.id = id.clone();
            report.validate(target)?;
            let warnings = refuse_errors(check_progress(&report, &data, today))?;
            w.put("progress", &id, &report)?;
            Ok((id, warnings))
        })?;
        self.record_warnings(&DocId::Draft(state), &warnings);
        Ok(id)
    }

    /// Corrects a progress report that was never published.
    pub fn edit_progress(
        &mut self,
        id: &str,
        edit: impl FnOnce(&mut Progress) -> Result<(), NodeError>,
    ) -> Result<(), NodeError> {
        let (state, _, public) = self.drafts()?;
        let today = self.clock.today();
        let (warnings, _) = self.write(&DocId::Draft(state), |w, before| {
            let data = StateData::from_json(before);
            let current = unpublished_progress(&data, &public, id)?;
            let mut next = current.clone();
            edit(&mut next)?;
            next.id = current.id.clone();
            next.target = current.target.clone();
            next.target_version = current.target_version;
            if next == *current {
                return Err(NodeError::NothingChanged(id.to_string()));
            }
            let target = data
                .targets
                .get(&(next.target.clone(), next.target_version))
                .ok_or_else(|| NodeError::NoTarget {
                    state,
                    id: next.target.clone(),
                })?;
            next.validate(target)?;
            let mut held = data.clone();
            held.progress.remove(id);
            let warnings = refuse_errors(check_progress(&next, &held, today))?;
            w.replace("progress", id, &next)?;
            Ok(warnings)
        })?;
        self.record_warnings(&DocId::Draft(state), &warnings);
        Ok(())
    }

    /// Deletes a progress report that was never published.
    pub fn delete_progress(&mut self, id: &str) -> Result<(), NodeError> {
        let (state, _, public) = self.drafts()?;
        self.write(&DocId::Draft(state), |w, before| {
            let data = StateData::from_json(before);
            unpublished_progress(&data, &public, id)?;
            w.delete("progress", id)
        })?;
        Ok(())
    }

    /// Withdraws a published progress report, with the reason, in the draft; publishing
    /// sends the withdrawal. The report stays on record, marked withdrawn, and no reader
    /// counts it.
    pub fn withdraw_progress(&mut self, id: &str, reason: &str) -> Result<(), NodeError> {
        self.retract("progress", id, reason, |data, public| {
            if public.withdrawn_progress.contains_key(id) || data.withdrawn_progress.contains_key(id)
            {
                return Err(NodeError::AlreadyWithdrawn(format!("progress report {id}")));
            }
            if public.progress.contains_key(id) {
                return Ok(());
            }
            if data.progress.contains_key(id) {
                return Err(NodeError::NeverPublished {
                    what: format!("progress report {id}"),
                    hint: format!(
                        "delete it with `poa-node progress delete {id}`, or correct it with `poa-node progress edit {id} …`"
                    ),
                });
            }
            Err(NodeError::NoProgress(id.to_string()))
        })
    }

    /// Writes the withdrawal of `kind/id` (`progress/T1/2025-12-31`, `needs/R1`) with its
    /// reason to the draft, once `check` (given the draft and the published document) agrees.
    fn retract(
        &mut self,
        kind: &str,
        id: &str,
        reason: &str,
        check: impl FnOnce(&StateData, &StateData) -> Result<(), NodeError>,
    ) -> Result<(), NodeError> {
        check_text("the reason", reason)?;
        let (state, _, public) = self.drafts()?;
        let today = self.clock.today();
        self.write(&DocId::Draft(state), |w, before| {
            let data = StateData::from_json(before);
            let key = format!("{kind}/{id}");
            if data.retracted.contains_key(&key) || public.retracted.contains_key(&key) {
                let what = if kind == "needs" {
                    "request"
                } else {
                    "progress report"
                };
                return Err(NodeError::AlreadyWithdrawn(format!("{what} {id}")));
            }
            check(&data, &public)?;
            w.put(
                "retracted",
                &key,
                &serde_json::json!({"date": today.to_string(), "reason": reason}),
            )
        })?;
        Ok(())
    }

    /// Adds an assistance request to the draft; it is published like a target.
    pub fn add_need(&mut self, mut need: Need) -> Result<(), NodeError> {
        let (state, _, public) = self.drafts()?;
        need.state = state;
        need.validate()?;
        let published = self.published_ids(&DocId::State(state), "needs")?;
        let (warnings, _) = self.write(&DocId::Draft(state), |w, before| {
            let data = StateData::from_json(before);
            // Nor an id someone wrote a withdrawal for (it would cover the new request), nor
            // one with any history in the published document (a dispute there, shown by no
            // view, would make its publication void).
            if need_taken(&data, &need.id)
                || published.contains(&need.id)
                || need_taken(&public, &need.id)
                || public.retracted.contains_key(&format!("needs/{}", need.id))
                || w.withdrawal_written("needs", &need.id)
            {
                return Err(NodeError::Exists(format!("request {}", need.id)));
            }
            let mut held = data;
            held.needs.extend(public.needs.clone());
            let warnings = refuse_errors(check_need(&need, &held))?;
            w.put("needs", &need.id, &need)?;
            Ok(warnings)
        })?;
        self.record_warnings(&DocId::Draft(state), &warnings);
        Ok(())
    }

    /// Corrects a request that was never published.
    pub fn edit_need(
        &mut self,
        id: &str,
        edit: impl FnOnce(&mut Need) -> Result<(), NodeError>,
    ) -> Result<(), NodeError> {
        let (state, _, public) = self.drafts()?;
        let (warnings, _) = self.write(&DocId::Draft(state), |w, before| {
            let data = StateData::from_json(before);
            let current = unpublished_need(&data, &public, id)?;
            let mut next = current.clone();
            edit(&mut next)?;
            next.id = current.id.clone();
            next.state = state;
            if next == *current {
                return Err(NodeError::NothingChanged(format!("request {id}")));
            }
            next.validate()?;
            let mut held = data.clone();
            held.needs.remove(id);
            held.needs.extend(public.needs.clone());
            let warnings = refuse_errors(check_need(&next, &held))?;
            w.replace("needs", id, &next)?;
            Ok(warnings)
        })?;
        self.record_warnings(&DocId::Draft(state), &warnings);
        Ok(())
    }

    /// Deletes a request that was never published. Refused while a target is conditional on it.
    pub fn delete_need(&mut self, id: &str) -> Result<(), NodeError> {
        let (state, _, public) = self.drafts()?;
        self.write(&DocId::Draft(state), |w, before| {
            let data = StateData::from_json(before);
            unpublished_need(&data, &public, id)?;
            if let Some(t) = data
                .targets
                .values()
                .find(|t| t.conditional_on.iter().any(|r| r == id))
            {
                return Err(NodeError::StillNamed {
                    what: format!("request {id}"),
                    by: format!(
                        "target {} version {}, conditional on it (change that first)",
                        t.id, t.version
                    ),
                });
            }
            w.delete("needs", id)
        })?;
        Ok(())
    }

    /// Withdraws a published request, with the reason, in the draft; publishing sends the
    /// withdrawal, and every node then leaves it out of what is asked for.
    pub fn withdraw_need(&mut self, id: &str, reason: &str) -> Result<(), NodeError> {
        self.retract("needs", id, reason, |data, public| {
            if public.needs.contains_key(id) {
                return Ok(());
            }
            if public.withdrawn_needs.contains_key(id) {
                return Err(NodeError::AlreadyWithdrawn(format!("request {id}")));
            }
            if data.needs.contains_key(id) {
                return Err(NodeError::NeverPublished {
                    what: format!("request {id}"),
                    hint: format!(
                        "delete it with `poa-node need delete {id}`, or correct it with `poa-node need edit {id} …`"
                    ),
                });
            }
            Err(NodeError::NoNeed(id.to_string()))
        })
    }

    /// Publishes what `selection` names of the draft, in one change to the State's published
    /// document (so in one transaction): exactly what [`Node::pending`] lists for it.
    /// Refused, with nothing written, if a target to publish fails the publication checks.
    pub fn publish(&mut self, selection: &Selection) -> Result<Vec<Pending>, NodeError> {
        let (state, draft, _) = self.drafts()?;
        if let Selection::Target(id) = selection
            && draft.latest(id).is_none()
        {
            return Err(NodeError::NoTarget {
                state,
                id: id.clone(),
            });
        }
        if let Selection::Need(id) = selection
            && !draft.needs.contains_key(id)
            && !draft.retracted.contains_key(&format!("needs/{id}"))
        {
            return Err(NodeError::NoNeed(id.clone()));
        }
        let today = self.clock.today();
        let (items, _) = self.write(&DocId::State(state), |w, before| {
            let public = StateData::from_json(before);
            let items: Vec<Pending> = pending(&draft, &public, selection.cycle())
                .into_iter()
                .filter(|p| selection.keeps(p))
                .collect();
            // What goes out names only what exists once it is out: the published requests
            // and those going out with it.
            let mut held = draft.clone();
            held.needs = public.needs.clone();
            for item in &items {
                if let Pending::NewNeed { id } = item
                    && let Some(n) = draft.needs.get(id)
                {
                    held.needs.insert(id.clone(), n.clone());
                }
            }
            for item in &items {
                match item {
                    Pending::NewTarget { id } | Pending::NewVersion { id, .. } => {
                        let version = match item {
                            Pending::NewVersion { version, .. } => *version,
                            _ => 1,
                        };
                        let t = &draft.targets[&(id.clone(), version)];
                        let mut others = held.clone();
                        others.targets.remove(&(id.clone(), version));
                        refuse_errors(check_target(t, &others, today, Stage::Publish))?;
                        w.put("targets", &target_key(id, version), t)?;
                    }
                    Pending::TargetWithdrawal { id } => {
                        w.put("withdrawn", id, &draft.withdrawn[id])?;
                    }
                    Pending::NewProgress { id, .. } => {
                        let p = draft
                            .progress
                            .get(id)
                            .or_else(|| draft.withdrawn_progress.get(id));
                        if let Some(p) = p {
                            w.put("progress", id, p)?;
                        }
                    }
                    Pending::NewNeed { id } => {
                        let n = draft
                            .needs
                            .get(id)
                            .or_else(|| draft.withdrawn_needs.get(id));
                        if let Some(n) = n {
                            w.put("needs", id, n)?;
                        }
                    }
                    Pending::ProgressWithdrawal { id, .. } => {
                        let key = format!("progress/{id}");
                        w.put("retracted", &key, &draft.retracted[&key])?;
                    }
                    Pending::NeedWithdrawal { id, .. } => {
                        let key = format!("needs/{id}");
                        w.put("retracted", &key, &draft.retracted[&key])?;
                    }
                }
            }
            Ok(items)
        })?;
        Ok(items)
    }

    /// Publishes one target's part of the draft: its new versions, progress reports and
    /// withdrawals.
    pub fn publish_target(&mut self, id: &str) -> Result<Vec<Pending>, NodeError> {
        self.publish(&Selection::Target(id.to_string()))
    }

    /// Publishes one request (or its withdrawal).
    pub fn publish_need(&mut self, id: &str) -> Result<Vec<Pending>, NodeError> {
        self.publish(&Selection::Need(id.to_string()))
    }
}

/// Whether a request id is taken in a State document (withdrawn ones included: an id is
/// never reused).
fn need_taken(data: &StateData, id: &str) -> bool {
    data.needs.contains_key(id) || data.withdrawn_needs.contains_key(id)
}

/// The id of a new progress report: `TARGET/AS-OF`, with `-2`, `-3`... past every id that is
/// shown in `held` (as a report, withdrawn or not, or a withdrawal entry) or has any history in
/// the draft being written or in the published document (`published`, see
/// [`Node::published_ids`]): an operation at the report's key or at its withdrawal's, whatever
/// its verdict. Ids are predictable, and a ministry of another area may have prepared one.
pub(crate) fn progress_id(
    report: &Progress,
    w: &Writer<'_>,
    held: &[&StateData],
    published: &BTreeSet<String>,
) -> String {
    let base = format!("{}/{}", report.target, report.as_of);
    let taken = |id: &str| {
        w.id_used("progress", id)
            || published.contains(id)
            || held.iter().any(|d| {
                d.progress.contains_key(id)
                    || d.withdrawn_progress.contains_key(id)
                    || d.retracted.contains_key(&format!("progress/{id}"))
            })
    };
    let mut id = base.clone();
    let mut n = 1;
    while taken(&id) {
        n += 1;
        id = format!("{base}-{n}");
    }
    id
}

/// A progress report of the draft that was never published, or why it cannot be changed.
pub(crate) fn unpublished_progress<'a>(
    data: &'a StateData,
    public: &StateData,
    id: &str,
) -> Result<&'a Progress, NodeError> {
    if public.progress.contains_key(id) || public.withdrawn_progress.contains_key(id) {
        return Err(NodeError::IsPublished {
            what: format!("progress report {id}"),
            hint: format!(
                "withdraw it with `poa-node progress withdraw {id} --reason …` and report again"
            ),
        });
    }
    data.progress
        .get(id)
        .ok_or_else(|| NodeError::NoProgress(id.to_string()))
}

/// A request of the draft that was never published, or why it cannot be changed.
pub(crate) fn unpublished_need<'a>(
    data: &'a StateData,
    public: &StateData,
    id: &str,
) -> Result<&'a Need, NodeError> {
    if need_taken(public, id) {
        return Err(NodeError::IsPublished {
            what: format!("request {id}"),
            hint: format!(
                "withdraw it with `poa-node need withdraw {id} --reason …` and add a new one"
            ),
        });
    }
    data.needs
        .get(id)
        .ok_or_else(|| NodeError::NoNeed(id.to_string()))
}

#[cfg(test)]
mod tests {
    use poa_protocol::change::{FlatAction, FlatOp, SignedChange};
    use poa_protocol::doc::{DocId, StateData, record_text};
    use poa_protocol::ledger::actor_bytes;
    use poa_protocol::sign::{NodeKey, sign_change};

    use super::Selection;
    use crate::home::{Home, InitOptions};
    use crate::node::Node;
    use crate::store::Source;

    /// A report id is never one with a history in the draft: not one a withdrawal was written
    /// for with no report (another area's ministry may have prepared it, so that its
    /// withdrawal covers the next report there), nor one whose report was deleted.
    #[test]
    fn a_progress_id_with_a_history_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("xaa");
        let opts = InitOptions::state("XAA".parse().unwrap(), "XAA Ministry of Interior");
        Home::init(&home, &opts).unwrap();
        let mut n = Node::open(&home).unwrap();
        let data = crate::demo::dataset().unwrap();
        let records = data
            .states
            .iter()
            .find(|s| s.code.to_string() == "XAA")
            .unwrap();
        let m1 = records.targets.iter().find(|t| t.id == "M1").unwrap();
        let report = records
            .progress
            .iter()
            .find(|p| p.target == "M1")
            .unwrap()
            .clone();
        n.add_target(m1.clone()).unwrap();
        let base = format!("{}/{}", report.target, report.as_of);
        let draft = DocId::Draft("XAA".parse().unwrap());
        // A withdrawal written ahead, at the key the next report would take.
        n.write(&draft, |w, _| {
            w.put_text(
                "retracted",
                &format!("progress/{base}"),
                r#"{"date":"2026-01-01","reason":"prepared"}"#.to_string(),
            )
        })
        .unwrap();
        let first = n.add_progress(report.clone()).unwrap();
        assert_eq!(first, format!("{base}-2"), "the prepared id is skipped");
        // A report deleted from the draft leaves its id taken too.
        n.write(&draft, |w, _| w.delete("progress", &first).map(|_| ()))
            .unwrap();
        let second = n.add_progress(report).unwrap();
        assert_eq!(
            second,
            format!("{base}-3"),
            "a deleted report's id is skipped"
        );
    }

    /// Nor an id at which the published document holds a dispute (red team 13): a ministry
    /// of the target's area wrote, with two of its actor ids, two reports at the id the next
    /// report takes, on one past; the view shows neither, and a report published there would
    /// be an edit in place, void, refusing the whole publication.
    #[test]
    fn a_progress_id_disputed_in_the_published_document_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("xaa");
        let opts = InitOptions::state("XAA".parse().unwrap(), "XAA Ministry of Interior");
        Home::init(&home, &opts).unwrap();
        let mut n = Node::open(&home).unwrap();
        let data = crate::demo::dataset().unwrap();
        let records = data
            .states
            .iter()
            .find(|s| s.code.to_string() == "XAA")
            .unwrap();
        let m1 = records.targets.iter().find(|t| t.id == "M1").unwrap();
        let report = records
            .progress
            .iter()
            .find(|p| p.target == "M1")
            .unwrap()
            .clone();
        n.add_target(m1.clone()).unwrap();
        n.publish(&Selection::All).unwrap();
        let ministry = NodeKey::from_seed(&[9; 32]);
        n.delegate(
            ministry.node_id(),
            poa_protocol::authority::Scope::Areas(vec![m1.area]),
            None,
        )
        .unwrap();
        let doc = DocId::State("XAA".parse().unwrap());
        let base = format!("{}/{}", report.target, report.as_of);
        let heads = n
            .store
            .with_ledger(&doc, |l| l.settled().unwrap().heads.clone())
            .unwrap()
            .unwrap();
        let now = n.now();
        let mut changes = Vec::new();
        for (suffix, note) in [(1u8, "a"), (2u8, "b")] {
            let mut rival = report.clone();
            rival.id = base.clone();
            rival.target_version = 1;
            rival.note = Some(note.into());
            let op = FlatOp {
                container: doc.kind().container("progress").unwrap(),
                key: base.clone(),
                action: FlatAction::Put {
                    value: record_text(&rival).unwrap(),
                    preds: vec![],
                },
            };
            let actor = actor_bytes(&ministry.node_id(), &[suffix; 8]);
            let data = n
                .store
                .with_ledger(&doc, |l| l.change_at(&heads, &actor, now, vec![op]))
                .unwrap()
                .unwrap();
            let hash = data.to_automerge(&doc).unwrap().hash();
            changes.push(SignedChange {
                signature: sign_change(&ministry, &doc, &hash).to_vec(),
                data,
            });
        }
        let outcome = n
            .store
            .transact(|tx| tx.apply(&doc, changes, Source::Peer(ministry.node_id()), now))
            .unwrap();
        assert_eq!(outcome.accepted.len(), 2);
        let public = StateData::from_json(&n.view(&doc).unwrap());
        assert!(!public.progress.contains_key(&base), "the key is a dispute");
        let id = n.add_progress(report).unwrap();
        assert_eq!(id, format!("{base}-2"), "the disputed id is skipped");
        n.publish(&Selection::All).unwrap();
        let public = StateData::from_json(&n.view(&doc).unwrap());
        assert!(public.progress.contains_key(&id), "the report is published");
    }

    /// Writes `values` at `container/key` of `doc`, each at its own actor id of `ministry`,
    /// all on the heads held now: a dispute, if they differ. Returns how many were taken.
    fn dispute(
        n: &mut Node,
        ministry: &NodeKey,
        doc: &DocId,
        container: &str,
        key: &str,
        values: Vec<String>,
    ) -> usize {
        let heads = n
            .store
            .with_ledger(doc, |l| l.settled().unwrap().heads.clone())
            .unwrap()
            .unwrap();
        let now = n.now();
        let mut changes = Vec::new();
        for (i, value) in values.into_iter().enumerate() {
            let op = FlatOp {
                container: doc.kind().container(container).unwrap(),
                key: key.to_string(),
                action: FlatAction::Put {
                    value,
                    preds: vec![],
                },
            };
            let actor = actor_bytes(&ministry.node_id(), &[i as u8 + 1; 8]);
            let data = n
                .store
                .with_ledger(doc, |l| l.change_at(&heads, &actor, now, vec![op]))
                .unwrap()
                .unwrap();
            let hash = data.to_automerge(doc).unwrap().hash();
            changes.push(SignedChange {
                signature: sign_change(ministry, doc, &hash).to_vec(),
                data,
            });
        }
        n.store
            .transact(|tx| tx.apply(doc, changes, Source::Peer(ministry.node_id()), now))
            .unwrap()
            .accepted
            .len()
    }

    /// Nor a target id whose first version is a dispute in the published document (red team
    /// 13): the new target would be refused at publication, and everything pending with it.
    #[test]
    fn a_target_id_disputed_in_the_published_document_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("xaa");
        let opts = InitOptions::state("XAA".parse().unwrap(), "XAA Ministry of Interior");
        Home::init(&home, &opts).unwrap();
        let mut n = Node::open(&home).unwrap();
        let data = crate::demo::dataset().unwrap();
        let records = data
            .states
            .iter()
            .find(|s| s.code.to_string() == "XAA")
            .unwrap();
        let first = records
            .targets
            .iter()
            .find(|t| t.id == "M1")
            .unwrap()
            .clone();
        let second = records
            .targets
            .iter()
            .find(|t| t.version == 1 && t.id != "M1" && t.conditional_on.is_empty())
            .unwrap()
            .clone();
        n.add_target(first).unwrap();
        n.publish(&Selection::All).unwrap();
        let ministry = NodeKey::from_seed(&[9; 32]);
        n.delegate(
            ministry.node_id(),
            poa_protocol::authority::Scope::Areas(vec![second.area]),
            None,
        )
        .unwrap();
        let doc = DocId::State("XAA".parse().unwrap());
        let key = poa_protocol::doc::target_key(&second.id, 1);
        let values = ["a", "b"]
            .iter()
            .map(|t| {
                let mut v = second.clone();
                v.title = format!("{} {t}", v.title);
                record_text(&v).unwrap()
            })
            .collect();
        assert_eq!(dispute(&mut n, &ministry, &doc, "targets", &key, values), 2);
        let public = StateData::from_json(&n.view(&doc).unwrap());
        assert!(public.latest(&second.id).is_none(), "the key is a dispute");
        assert!(
            matches!(
                n.add_target(second),
                Err(crate::node::NodeError::TargetExists { .. })
            ),
            "an id disputed where it would be published is refused"
        );
    }
}
