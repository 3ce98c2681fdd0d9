//! What a State's draft holds that its published document does not: the pending part of its
//! national submission. `submission publish` shows exactly this list before it publishes, and
//! publishes exactly this list.

use serde::Serialize;

use crate::doc::StateData;
use crate::model::Cycle;

/// One record that publishing would send out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Pending {
    /// The first version of a target.
    NewTarget {
        /// The target id.
        id: String,
    },
    /// A new version of a target already published.
    NewVersion {
        /// The target id.
        id: String,
        /// The new version.
        version: u32,
        /// Why it changed, as the State wrote it.
        reason: Option<String>,
    },
    /// A target's withdrawal.
    TargetWithdrawal {
        /// The target id.
        id: String,
    },
    /// A progress report.
    NewProgress {
        /// The report id: `T1/2025-12-31`.
        id: String,
        /// The target it reports on.
        target: String,
    },
    /// A published progress report's withdrawal.
    ProgressWithdrawal {
        /// The report id.
        id: String,
        /// Why.
        reason: String,
    },
    /// An assistance request.
    NewNeed {
        /// The request id.
        id: String,
    },
    /// A published request's withdrawal.
    NeedWithdrawal {
        /// The request id.
        id: String,
        /// Why.
        reason: String,
    },
}

impl Pending {
    /// The target this item is about, if any (for publishing one target's part).
    pub fn target(&self) -> Option<&str> {
        match self {
            Pending::NewTarget { id }
            | Pending::NewVersion { id, .. }
            | Pending::TargetWithdrawal { id } => Some(id),
            Pending::NewProgress { target, .. } => Some(target),
            Pending::ProgressWithdrawal { id, .. } => id.split('/').next(),
            Pending::NewNeed { .. } | Pending::NeedWithdrawal { .. } => None,
        }
    }

    /// The request this item is about, if any.
    pub fn need(&self) -> Option<&str> {
        match self {
            Pending::NewNeed { id } | Pending::NeedWithdrawal { id, .. } => Some(id),
            _ => None,
        }
    }

    /// One line for a person: what goes out.
    pub fn line(&self) -> String {
        match self {
            Pending::NewTarget { id } => format!("new target {id}"),
            Pending::NewVersion {
                id,
                version,
                reason,
            } => match reason {
                Some(r) => format!("target {id} changes: version {version} ({r})"),
                None => format!("target {id} changes: version {version}"),
            },
            Pending::TargetWithdrawal { id } => format!("target {id} is withdrawn"),
            Pending::NewProgress { id, .. } => format!("new progress report {id}"),
            Pending::ProgressWithdrawal { id, reason } => {
                format!("progress report {id} is withdrawn ({reason})")
            }
            Pending::NewNeed { id } => format!("new assistance request {id}"),
            Pending::NeedWithdrawal { id, reason } => {
                format!("assistance request {id} is withdrawn ({reason})")
            }
        }
    }
}

/// What a list of pending items sends out, in one line: `new target T1, new progress report
/// T1/2025-12-31`; `nothing new` for none.
pub fn summary(items: &[Pending]) -> String {
    if items.is_empty() {
        return "nothing new".into();
    }
    items
        .iter()
        .map(Pending::line)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The reason written with a withdrawal (`retracted/…`).
pub fn reason_of(withdrawal: &serde_json::Value) -> String {
    withdrawal
        .get("reason")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Everything the draft holds that the published document does not, in a fixed order
/// (targets by id and version, their withdrawals, progress by id, requests by id, then the
/// withdrawals of reports and requests). `cycle` keeps only the targets of that cycle and what
/// concerns them (requests are kept whatever the cycle: they are not tied to one).
pub fn pending(draft: &StateData, public: &StateData, cycle: Option<Cycle>) -> Vec<Pending> {
    let in_cycle = |target: &str| {
        cycle.is_none_or(|c| {
            draft
                .latest(target)
                .or_else(|| public.latest(target))
                .is_none_or(|t| t.cycle == c)
        })
    };
    let mut out = Vec::new();
    for ((id, version), t) in &draft.targets {
        if public.targets.contains_key(&(id.clone(), *version)) || !in_cycle(id) {
            continue;
        }
        out.push(if *version == 1 {
            Pending::NewTarget { id: id.clone() }
        } else {
            Pending::NewVersion {
                id: id.clone(),
                version: *version,
                reason: t.reason.clone(),
            }
        });
    }
    for id in draft.withdrawn.keys() {
        if !public.withdrawn.contains_key(id) && in_cycle(id) {
            out.push(Pending::TargetWithdrawal { id: id.clone() });
        }
    }
    let published_progress =
        |id: &str| public.progress.contains_key(id) || public.withdrawn_progress.contains_key(id);
    for (id, p) in draft.progress.iter().chain(&draft.withdrawn_progress) {
        if !published_progress(id) && in_cycle(&p.target) {
            out.push(Pending::NewProgress {
                id: id.clone(),
                target: p.target.clone(),
            });
        }
    }
    let published_need =
        |id: &str| public.needs.contains_key(id) || public.withdrawn_needs.contains_key(id);
    for id in draft.needs.keys().chain(draft.withdrawn_needs.keys()) {
        if !published_need(id) {
            out.push(Pending::NewNeed { id: id.clone() });
        }
    }
    for (key, w) in &draft.retracted {
        if public.retracted.contains_key(key) {
            continue;
        }
        let reason = reason_of(w);
        match key.split_once('/') {
            Some(("progress", id)) => {
                let target = id.split('/').next().unwrap_or_default();
                if in_cycle(target) {
                    out.push(Pending::ProgressWithdrawal {
                        id: id.to_string(),
                        reason,
                    });
                }
            }
            Some(("needs", id)) => out.push(Pending::NeedWithdrawal {
                id: id.to_string(),
                reason,
            }),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::xaa_t1;
    use crate::model::{Need, Progress};
    use serde_json::json;

    fn sample_target(id: &str, version: u32) -> crate::model::Target {
        let mut t = xaa_t1();
        t.id = id.into();
        t.version = version;
        t
    }

    fn sample_progress(target: &str, as_of: &str) -> Progress {
        serde_json::from_value(json!({
            "id": format!("{target}/{as_of}"), "target": target, "target_version": 1,
            "as_of": as_of, "value": 55.0,
        }))
        .unwrap()
    }

    fn sample_need(id: &str) -> Need {
        serde_json::from_value(json!({
            "id": id, "state": "XAA", "title": "Marking machines", "area": "marking",
            "kind": "equipment", "priority": "high",
        }))
        .unwrap()
    }

    #[test]
    fn pending_lists_exactly_what_the_draft_adds() {
        let t1 = sample_target("T1", 1);
        let mut t1v2 = sample_target("T1", 2);
        t1v2.reason = Some("ahead of plan".into());
        let t2 = sample_target("T2", 1);
        let p = sample_progress("T1", "2025-12-31");
        let r1 = sample_need("R1");
        let mut public = StateData::default();
        public.targets.insert(("T1".into(), 1), t1.clone());
        public.progress.insert(p.id.clone(), p.clone());
        let mut draft = public.clone();
        draft.targets.insert(("T1".into(), 2), t1v2);
        draft.targets.insert(("T2".into(), 1), t2);
        draft.needs.insert("R1".into(), r1);
        draft.retracted.insert(
            format!("progress/{}", p.id),
            json!({"date": "2026-01-02", "reason": "figures wrong"}),
        );
        draft.withdrawn.insert("T2".into(), json!("2026-01-02"));
        let lines: Vec<String> = pending(&draft, &public, None)
            .iter()
            .map(Pending::line)
            .collect();
        assert_eq!(
            lines,
            [
                "target T1 changes: version 2 (ahead of plan)",
                "new target T2",
                "target T2 is withdrawn",
                "new assistance request R1",
                "progress report T1/2025-12-31 is withdrawn (figures wrong)",
            ]
        );
        assert!(pending(&public, &public, None).is_empty());
        let other = Some("BMS10".parse().unwrap());
        assert_eq!(
            pending(&draft, &public, other),
            [Pending::NewNeed { id: "R1".into() }]
        );
    }
}
