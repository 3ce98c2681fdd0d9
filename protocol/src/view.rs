//! Targets as people read them: every version with its status, progress reports, and whether
//! each piece has been published. Status is derived, never stored, from the records and a date
//! the caller supplies, so it cannot drift from the data.

use serde_json::{Value as Json, json};

use crate::date::Date;
use crate::doc::StateData;
use crate::model::{Assessment, Direction, IndicatorKind, Progress, Target};
use crate::stocktake::Standing;

/// The status of a target version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Written but not published.
    Draft,
    /// Published, reported on, not reached, deadline not passed.
    InProgress,
    /// Reached, by the State's assessment or by its latest reported value.
    Achieved,
    /// Reported on, past its deadline and not reached.
    NotAchieved,
    /// Published with no progress report by the date: unknown, never counted as zero.
    NoData,
    /// Withdrawn by the State.
    Withdrawn,
    /// Replaced by a newer version.
    Superseded,
}

impl Status {
    /// The short name used in output.
    pub fn slug(&self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::InProgress => "in-progress",
            Status::Achieved => "achieved",
            Status::NotAchieved => "not-achieved",
            Status::NoData => "no-data",
            Status::Withdrawn => "withdrawn",
            Status::Superseded => "superseded",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.slug())
    }
}

/// Whether `observed` reaches the target value in the target's direction.
pub fn reaches(target: &Target, observed: f64) -> bool {
    let Some(goal) = target.value else {
        return false;
    };
    match target.indicator.direction.unwrap_or(Direction::Reach) {
        Direction::Increase => observed >= goal,
        Direction::Decrease => observed <= goal,
        Direction::Reach => (observed - goal).abs() <= f64::EPSILON * goal.abs().max(1.0),
    }
}

/// Whether the reports show the target reached: the latest assessment says achieved, or the
/// latest reported value reaches the target value.
pub fn is_achieved(target: &Target, progress: &[&Progress]) -> bool {
    let latest_assessed = progress.iter().rev().find_map(|p| p.assessment);
    if latest_assessed == Some(Assessment::Achieved) {
        return true;
    }
    if target.indicator.kind == IndicatorKind::Quantitative
        && let Some(v) = progress.iter().rev().find_map(|p| p.value)
    {
        return reaches(target, v);
    }
    false
}

/// One version of a target, as shown.
#[derive(Clone, Debug)]
pub struct VersionView {
    /// The version.
    pub target: Target,
    /// Its status.
    pub status: Status,
    /// Whether this version is in the published document.
    pub published: bool,
}

/// A target with its history, as shown by `target show` and the dashboard.
#[derive(Clone, Debug)]
pub struct TargetView {
    /// Every version, oldest first; the last is current.
    pub versions: Vec<VersionView>,
    /// Progress reports, oldest first, with whether each is published.
    pub progress: Vec<(Progress, bool)>,
    /// When it was withdrawn, if it was.
    pub withdrawn: Option<String>,
}

impl TargetView {
    /// The current version.
    pub fn current(&self) -> &VersionView {
        // A view is only built for targets with at least one version.
        &self.versions[self.versions.len() - 1]
    }

    /// The JSON form: the current version's fields at the top, then its history.
    pub fn to_json(&self) -> Json {
        let cur = self.current();
        let t = &cur.target;
        let versions: Vec<Json> = self
            .versions
            .iter()
            .map(|v| {
                let mut j = serde_json::to_value(&v.target).unwrap_or(Json::Null);
                if let Json::Object(m) = &mut j {
                    m.insert("status".into(), json!(v.status.slug()));
                    m.insert("published".into(), json!(v.published));
                }
                j
            })
            .collect();
        let progress: Vec<Json> = self
            .progress
            .iter()
            .map(|(p, published)| {
                let mut j = serde_json::to_value(p).unwrap_or(Json::Null);
                if let Json::Object(m) = &mut j {
                    m.insert("published".into(), json!(published));
                }
                j
            })
            .collect();
        json!({
            "id": t.id,
            "state": t.state,
            "cycle": t.cycle,
            "area": t.area,
            "version": t.version,
            "status": cur.status.slug(),
            "published": cur.published,
            "title": t.title,
            "indicator": t.indicator,
            "baseline": t.baseline,
            "baseline_year": t.baseline_year,
            "value": t.value,
            "deadline": t.deadline,
            "mosaic": t.mosaic,
            "refs": t.refs,
            "conditional_on": t.conditional_on,
            "description": t.description,
            "baseline_source": t.baseline_source,
            "sdg": t.sdg,
            "supersedes": t.supersedes,
            "reason": t.reason,
            "withdrawn": self.withdrawn,
            "latest_progress": self.progress.last().map(|(p, _)| serde_json::to_value(p).unwrap_or(Json::Null)),
            "versions": versions,
            "progress": progress,
        })
    }
}

/// Builds the views of every target in `data`. `published` is the State's published document
/// (for a State's own node reading its draft) or `None` when `data` is itself the published
/// document. `today` decides which deadlines have passed.
pub fn target_views(
    data: &StateData,
    published: Option<&StateData>,
    today: Date,
) -> Vec<TargetView> {
    data.target_ids()
        .into_iter()
        .filter_map(|id| target_view(data, published, &id, today))
        .collect()
}

/// The view of one target, if `data` holds it.
pub fn target_view(
    data: &StateData,
    published: Option<&StateData>,
    id: &str,
    today: Date,
) -> Option<TargetView> {
    let versions = data.versions(id);
    let latest = *versions.last()?;
    let is_pub_version = |t: &Target| match published {
        None => true,
        Some(p) => p.targets.contains_key(&(t.id.clone(), t.version)),
    };
    let is_pub_progress = |p: &Progress| match published {
        None => true,
        Some(pd) => pd.progress.contains_key(&p.id),
    };
    let progress = data.progress_of(id);
    let withdrawn = data
        .withdrawn
        .get(id)
        .map(|v| v.as_str().unwrap_or("yes").to_string());
    // One rule for the status everywhere (lists, the dashboard, the stocktake): the
    // stocktake's, on what is published.
    let current_status = if withdrawn.is_some() {
        Status::Withdrawn
    } else if !is_pub_version(latest) {
        Status::Draft
    } else {
        match crate::stocktake::standing(published.unwrap_or(data), latest, today) {
            Standing::Achieved => Status::Achieved,
            Standing::InProgress => Status::InProgress,
            Standing::NotAchieved => Status::NotAchieved,
            Standing::NoData => Status::NoData,
            Standing::Withdrawn => Status::Withdrawn,
        }
    };
    let versions = versions
        .iter()
        .map(|t| VersionView {
            target: (*t).clone(),
            status: if t.version == latest.version {
                current_status
            } else {
                Status::Superseded
            },
            published: is_pub_version(t),
        })
        .collect();
    Some(TargetView {
        versions,
        progress: progress
            .into_iter()
            .map(|p| (p.clone(), is_pub_progress(p)))
            .collect(),
        withdrawn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::xaa_t1;

    fn report(value: Option<f64>, assessment: Option<Assessment>) -> Progress {
        Progress {
            id: "T1/2025-12-31".into(),
            target: "T1".into(),
            target_version: 1,
            as_of: "2025-12-31".parse().unwrap(),
            value,
            assessment,
            note: None,
            challenges: None,
            evidence: None,
            source: None,
            assistance_received: None,
        }
    }

    fn data_with(progress: Option<Progress>) -> StateData {
        let mut d = StateData::default();
        d.targets.insert(("T1".into(), 1), xaa_t1());
        if let Some(p) = progress {
            d.progress.insert(p.id.clone(), p);
        }
        d
    }

    #[test]
    fn past_deadline_and_below_value_is_not_achieved() {
        let d = data_with(Some(report(Some(55.0), None)));
        let before = target_view(&d, None, "T1", "2026-01-01".parse().unwrap()).unwrap();
        assert_eq!(before.current().status, Status::InProgress);
        let after = target_view(&d, None, "T1", "2026-07-01".parse().unwrap()).unwrap();
        assert_eq!(after.current().status, Status::NotAchieved);
    }

    /// The status a list shows is the stocktake's: a published target with no report is
    /// no-data, not not-achieved, past its deadline; a report dated after the day does not
    /// count yet, in both.
    #[test]
    fn the_status_is_the_stocktakes_standing() {
        let t = xaa_t1();
        let after_deadline: Date = "2026-07-01".parse().unwrap();
        for (progress, want) in [
            (None, Status::NoData),
            (Some(report(Some(55.0), None)), Status::NotAchieved),
        ] {
            let d = data_with(progress);
            let v = target_view(&d, Some(&d), "T1", after_deadline).unwrap();
            assert_eq!(v.current().status, want);
            let s = crate::stocktake::standing(&d, &t, after_deadline);
            assert_eq!(v.current().status.slug(), s.slug());
        }
        let mut future = report(Some(75.0), None);
        future.as_of = "2030-01-01".parse().unwrap();
        let d = data_with(Some(future));
        let v = target_view(&d, Some(&d), "T1", after_deadline).unwrap();
        assert_eq!(v.current().status, Status::NoData);
    }

    #[test]
    fn reaching_the_value_or_saying_so_is_achieved() {
        let today = "2026-07-01".parse().unwrap();
        let d = data_with(Some(report(Some(71.0), None)));
        assert_eq!(
            target_view(&d, None, "T1", today).unwrap().current().status,
            Status::Achieved
        );
        let d = data_with(Some(report(None, Some(Assessment::Achieved))));
        assert_eq!(
            target_view(&d, None, "T1", today).unwrap().current().status,
            Status::Achieved
        );
    }

    #[test]
    fn unpublished_is_draft_and_old_versions_are_superseded() {
        let mut d = data_with(None);
        let mut v2 = xaa_t1();
        v2.version = 2;
        v2.supersedes = Some(1);
        d.targets.insert(("T1".into(), 2), v2);
        let mut published = StateData::default();
        published.targets.insert(("T1".into(), 1), xaa_t1());
        let v = target_view(&d, Some(&published), "T1", "2026-01-01".parse().unwrap()).unwrap();
        assert_eq!(v.versions[0].status, Status::Superseded);
        assert!(v.versions[0].published);
        assert_eq!(v.current().status, Status::Draft);
        assert!(!v.current().published);
        let j = v.to_json();
        assert_eq!(j["version"], 2);
        assert_eq!(j["status"], "draft");
        assert_eq!(j["versions"][0]["status"], "superseded");
    }
}
