//! Assistance: matching States' requests with providers' offers.
//!
//! A match pairs a request (`XAC/R2`) with an offer (`XZZ/O1`). Each side records its own
//! decision in its own document (the State in `matches` of its published document, the
//! provider in `matches` of `offers/<provider>`), so neither can speak for the other; the status
//! of the match is derived from both: declined if either side declined, accepted once both sides
//! said yes (by proposing or accepting), proposed while one side waits for the other.
//!
//! Suggestions rank offers for each open request by fit, and say why: a fit on the commitment
//! area or a MOSAIC module is required (a training offer on marking is no answer to a request
//! for destruction equipment, whatever its kind), then kind, budget and region add to the score.
//! An offer not open to the requesting State's region, or whose window does not meet the
//! request's, is not suggested.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::date::Date;
use crate::id::StateCode;
use crate::model::{ModelError, Need, Offer, Priority, check_id};

/// A request named across documents: `XAC/R2`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NeedRef {
    /// The requesting State.
    pub state: StateCode,
    /// The request's id.
    pub id: String,
}

/// An offer named across documents: `XZZ/O1`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OfferRef {
    /// The provider's code.
    pub provider: String,
    /// The offer's id.
    pub id: String,
}

fn split_ref(s: &str, what: &'static str) -> Result<(String, String), ModelError> {
    let bad = || ModelError::Unknown {
        what,
        value: s.to_string(),
        hint: "CODE/ID, such as XAC/R2 for a request or XZZ/O1 for an offer",
    };
    let (code, id) = s.trim().split_once('/').ok_or_else(bad)?;
    check_id(id).map_err(|_| bad())?;
    if code.is_empty() || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(bad());
    }
    Ok((code.to_ascii_uppercase(), id.to_string()))
}

impl FromStr for NeedRef {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (code, id) = split_ref(s, "request")?;
        let state = code.parse().map_err(|_| ModelError::Unknown {
            what: "request",
            value: s.to_string(),
            hint: "STATE/ID, such as XAC/R2",
        })?;
        Ok(NeedRef { state, id })
    }
}

impl FromStr for OfferRef {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (provider, id) = split_ref(s, "offer")?;
        Ok(OfferRef { provider, id })
    }
}

impl fmt::Display for NeedRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.state, self.id)
    }
}

impl fmt::Display for OfferRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.id)
    }
}

macro_rules! text_serde {
    ($t:ty) => {
        impl TryFrom<String> for $t {
            type Error = ModelError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
        impl From<$t> for String {
            fn from(r: $t) -> String {
                r.to_string()
            }
        }
    };
}
text_serde!(NeedRef);
text_serde!(OfferRef);

impl NeedRef {
    /// The reference of a request.
    pub fn of(need: &Need) -> NeedRef {
        NeedRef {
            state: need.state,
            id: need.id.clone(),
        }
    }
}

impl OfferRef {
    /// The reference of an offer.
    pub fn of(offer: &Offer) -> OfferRef {
        OfferRef {
            provider: offer.provider.clone(),
            id: offer.id.clone(),
        }
    }
}

/// The key under which each side stores its decision on a match.
pub fn match_key(need: &NeedRef, offer: &OfferRef) -> String {
    format!("{need}|{offer}")
}

/// One side's decision on a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// This side asks the other to agree.
    Proposed,
    /// This side agrees.
    Accepted,
    /// This side says no.
    Declined,
}

impl Decision {
    /// The word used in output.
    pub fn slug(&self) -> &'static str {
        match self {
            Decision::Proposed => "proposed",
            Decision::Accepted => "accepted",
            Decision::Declined => "declined",
        }
    }

    fn yes(&self) -> bool {
        !matches!(self, Decision::Declined)
    }
}

/// A decision as stored by one side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchRecord {
    /// The request.
    pub need: NeedRef,
    /// The offer.
    pub offer: OfferRef,
    /// The decision.
    pub decision: Decision,
    /// When.
    pub date: Date,
    /// Why, or conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The status of a match, derived from both sides' decisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchStatus {
    /// One side said yes; the other has not answered.
    Proposed,
    /// Both sides said yes.
    Accepted,
    /// One side said no.
    Declined,
}

impl MatchStatus {
    /// The word used in output.
    pub fn slug(&self) -> &'static str {
        match self {
            MatchStatus::Proposed => "proposed",
            MatchStatus::Accepted => "accepted",
            MatchStatus::Declined => "declined",
        }
    }
}

/// A match with both sides' decisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// The request.
    pub need: NeedRef,
    /// The offer.
    pub offer: OfferRef,
    /// The State's decision, from its document.
    pub state_side: Option<MatchRecord>,
    /// The provider's decision, from its document.
    pub provider_side: Option<MatchRecord>,
}

impl Match {
    /// The status both decisions give.
    pub fn status(&self) -> MatchStatus {
        let sides = [&self.state_side, &self.provider_side];
        let decisions: Vec<Decision> = sides
            .iter()
            .filter_map(|s| s.as_ref())
            .map(|r| r.decision)
            .collect();
        if decisions.iter().any(|d| !d.yes()) {
            MatchStatus::Declined
        } else if decisions.len() == 2 {
            MatchStatus::Accepted
        } else {
            MatchStatus::Proposed
        }
    }

    /// The JSON form used in listings.
    pub fn to_json(&self) -> Json {
        let side = |r: &Option<MatchRecord>| {
            r.as_ref().map(|r| {
                json!({"decision": r.decision.slug(), "date": r.date.to_string(), "note": r.note})
            })
        };
        json!({
            "need": self.need.to_string(),
            "offer": self.offer.to_string(),
            "status": self.status().slug(),
            "state": side(&self.state_side),
            "provider": side(&self.provider_side),
        })
    }
}

/// Puts together the decisions found in States' documents (`state_side`) and providers'
/// documents (`provider_side`). A record counts only in the document of the side it speaks
/// for: a State's document cannot hold a provider's decision, and the reverse.
pub fn matches(state_side: &[MatchRecord], provider_side: &[(String, MatchRecord)]) -> Vec<Match> {
    let mut all: BTreeMap<(NeedRef, OfferRef), Match> = BTreeMap::new();
    let entry = |all: &mut BTreeMap<(NeedRef, OfferRef), Match>, r: &MatchRecord| {
        all.entry((r.need.clone(), r.offer.clone()))
            .or_insert_with(|| Match {
                need: r.need.clone(),
                offer: r.offer.clone(),
                state_side: None,
                provider_side: None,
            })
            .clone()
    };
    for r in state_side {
        let mut m = entry(&mut all, r);
        m.state_side = Some(r.clone());
        all.insert((r.need.clone(), r.offer.clone()), m);
    }
    for (provider, r) in provider_side {
        if r.offer.provider != *provider {
            continue;
        }
        let mut m = entry(&mut all, r);
        m.provider_side = Some(r.clone());
        all.insert((r.need.clone(), r.offer.clone()), m);
    }
    all.into_values().collect()
}

/// Whether a request has an accepted match.
pub fn is_met(need: &NeedRef, matches: &[Match]) -> bool {
    matches
        .iter()
        .any(|m| m.need == *need && m.status() == MatchStatus::Accepted)
}

/// One offer suggested for one request, with the reasons.
#[derive(Clone, Debug, PartialEq)]
pub struct Suggestion {
    /// The request.
    pub need: NeedRef,
    /// The offer.
    pub offer: OfferRef,
    /// The request's priority.
    pub priority: Priority,
    /// Higher fits better.
    pub score: u32,
    /// What fits.
    pub fits: Vec<String>,
    /// What does not.
    pub gaps: Vec<String>,
}

impl Suggestion {
    /// The JSON form `match suggest --json` prints.
    pub fn to_json(&self) -> Json {
        json!({
            "need": self.need.to_string(),
            "offer": self.offer.to_string(),
            "priority": self.priority.slug(),
            "score": self.score,
            "fits": self.fits,
            "gaps": self.gaps,
        })
    }
}

fn overlaps(a: (Option<Date>, Option<Date>), b: (Option<Date>, Option<Date>)) -> bool {
    let starts_before_end = |start: Option<Date>, end: Option<Date>| match (start, end) {
        (Some(s), Some(e)) => s <= e,
        _ => true,
    };
    starts_before_end(a.0, b.1) && starts_before_end(b.0, a.1)
}

fn window(from: Option<Date>, until: Option<Date>) -> String {
    match (from, until) {
        (None, None) => "any time".into(),
        (Some(f), None) => format!("from {f}"),
        (None, Some(u)) => format!("until {u}"),
        (Some(f), Some(u)) => format!("{f} to {u}"),
    }
}

fn listing<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How well `offer` fits `need`, or `None` when it cannot serve it at all (no thematic fit,
/// not open to the State's region, window over or not meeting the request's).
///
/// `regions` are the names the requesting State goes by: its code, and the pools (and their
/// coordinators) it is a member of.
pub fn fit(
    need: &Need,
    offer: &Offer,
    regions: &BTreeSet<String>,
    today: Date,
) -> Option<Suggestion> {
    let mut score = 0;
    let mut fits = Vec::new();
    let mut gaps = Vec::new();
    let mut thematic = false;
    if offer.areas.contains(&need.area) {
        score += 4;
        thematic = true;
        fits.push(format!("area: {}", need.area.slug()));
    } else {
        gaps.push(format!(
            "area: asks {}, offers {}",
            need.area.slug(),
            listing(&offer.areas.iter().map(|a| a.slug()).collect::<Vec<_>>())
        ));
    }
    let shared: Vec<_> = need
        .mosaic
        .iter()
        .filter(|m| offer.mosaic.contains(m))
        .collect();
    if !shared.is_empty() {
        score += 3;
        thematic = true;
        fits.push(format!("MOSAIC {}", listing(&shared)));
    } else if !need.mosaic.is_empty() && !offer.mosaic.is_empty() {
        gaps.push(format!(
            "MOSAIC: asks {}, offers {}",
            listing(&need.mosaic),
            listing(&offer.mosaic)
        ));
    }
    if !thematic {
        return None;
    }
    if offer.kinds.contains(&need.kind) {
        score += 2;
        fits.push(format!("kind: {}", need.kind.slug()));
    } else {
        gaps.push(format!(
            "kind: asks {}, offers {}",
            need.kind.slug(),
            listing(&offer.kinds.iter().map(|k| k.slug()).collect::<Vec<_>>())
        ));
    }
    if offer.regions.is_empty() {
        fits.push("region: open to all".into());
    } else if let Some(r) = offer
        .regions
        .iter()
        .find(|r| regions.contains(&r.to_ascii_uppercase()) || regions.contains(*r))
    {
        score += 1;
        fits.push(format!("region: {r}"));
    } else {
        return None;
    }
    if offer.until.is_some_and(|u| u < today)
        || !overlaps((need.from, need.until), (offer.from, offer.until))
    {
        return None;
    }
    fits.push(format!("window: {}", window(offer.from, offer.until)));
    if let Some(cost) = need.cost {
        let same_currency =
            need.currency.is_none() || offer.currency.is_none() || need.currency == offer.currency;
        let cur = need.currency.clone().unwrap_or_default();
        if !same_currency {
            gaps.push(format!(
                "budget: asks {cost} {cur}, offers in {}",
                offer.currency.clone().unwrap_or_default()
            ));
        } else if offer.budget_max.is_some_and(|m| cost > m) {
            gaps.push(format!(
                "budget: asks {cost} {cur}, offers at most {}",
                offer.budget_max.unwrap_or_default()
            ));
        } else if offer.budget_min.is_some_and(|m| cost < m) {
            gaps.push(format!(
                "budget: asks {cost} {cur}, offers at least {}",
                offer.budget_min.unwrap_or_default()
            ));
        } else {
            score += 1;
            fits.push(format!("budget: {cost} {cur} within the offer"));
        }
    }
    Some(Suggestion {
        need: NeedRef::of(need),
        offer: OfferRef::of(offer),
        priority: need.priority,
        score,
        fits,
        gaps,
    })
}

/// Every suggestion for every open request (no accepted match), best first: by score, then
/// the request's priority. Pairs one side already declined are left out. `regions_of` gives the
/// names each State goes by (see [`fit`]).
pub fn suggest(
    needs: &[Need],
    offers: &[Offer],
    matches: &[Match],
    regions_of: impl Fn(StateCode) -> BTreeSet<String>,
    today: Date,
) -> Vec<Suggestion> {
    let mut out = Vec::new();
    for need in needs {
        let nref = NeedRef::of(need);
        if is_met(&nref, matches) {
            continue;
        }
        let regions = regions_of(need.state);
        for offer in offers {
            let oref = OfferRef::of(offer);
            let declined = matches
                .iter()
                .any(|m| m.need == nref && m.offer == oref && m.status() == MatchStatus::Declined);
            if declined {
                continue;
            }
            if let Some(s) = fit(need, offer, &regions, today) {
                out.push(s);
            }
        }
    }
    out.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then(a.priority.cmp(&b.priority))
            .then(a.need.cmp(&b.need))
            .then(a.offer.cmp(&b.offer))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Area, AssistanceKind};

    fn need(
        state: &str,
        id: &str,
        area: Area,
        mosaic: &str,
        kind: AssistanceKind,
        cost: Option<f64>,
    ) -> Need {
        Need {
            id: id.into(),
            state: state.parse().unwrap(),
            title: id.into(),
            targets: vec![],
            area,
            mosaic: vec![mosaic.parse().unwrap()],
            kind,
            cost,
            currency: cost.map(|_| "USD".into()),
            from: None,
            until: None,
            priority: Priority::High,
        }
    }

    fn offer(id: &str, areas: Vec<Area>, mosaic: &str, kinds: Vec<AssistanceKind>) -> Offer {
        Offer {
            id: id.into(),
            provider: "XZZ".into(),
            title: id.into(),
            areas,
            mosaic: vec![mosaic.parse().unwrap()],
            kinds,
            regions: vec![],
            budget_min: None,
            budget_max: None,
            currency: None,
            from: None,
            until: None,
        }
    }

    /// R1, R2, O1 and O2 of the illustrative data set.
    fn illustrative() -> (Vec<Need>, Vec<Offer>) {
        use AssistanceKind::*;
        (
            vec![
                need(
                    "XAB",
                    "R1",
                    Area::Destruction,
                    "05.50",
                    Equipment,
                    Some(250_000.0),
                ),
                Need {
                    priority: Priority::Medium,
                    ..need("XAC", "R2", Area::RecordKeeping, "05.30", Training, None)
                },
            ],
            vec![
                offer(
                    "O1",
                    vec![Area::Marking, Area::RecordKeeping],
                    "05.30",
                    vec![Training],
                ),
                offer(
                    "O2",
                    vec![Area::Stockpile],
                    "05.20",
                    vec![Equipment, Financial],
                ),
            ],
        )
    }

    fn today() -> Date {
        "2026-11-27".parse().unwrap()
    }

    #[test]
    fn o1_is_the_top_suggestion_for_r2_and_nothing_fits_r1() {
        let (needs, offers) = illustrative();
        let s = suggest(
            &needs,
            &offers,
            &[],
            |s| BTreeSet::from([s.to_string()]),
            today(),
        );
        assert_eq!(s[0].need.to_string(), "XAC/R2");
        assert_eq!(s[0].offer.to_string(), "XZZ/O1");
        assert!(
            s[0].fits.iter().any(|f| f == "area: record-keeping"),
            "{:?}",
            s[0].fits
        );
        assert!(s.iter().all(|s| s.need.to_string() != "XAB/R1"), "{s:?}");
    }

    fn record(need: &str, offer: &str, d: Decision) -> MatchRecord {
        MatchRecord {
            need: need.parse().unwrap(),
            offer: offer.parse().unwrap(),
            decision: d,
            date: today(),
            note: None,
        }
    }

    #[test]
    fn a_match_is_accepted_only_when_both_sides_say_yes_in_their_own_documents() {
        let ours = [record("XAC/R2", "XZZ/O1", Decision::Proposed)];
        let m = matches(&ours, &[]);
        assert_eq!(m[0].status(), MatchStatus::Proposed);
        assert!(!is_met(&"XAC/R2".parse().unwrap(), &m));
        // A record of XZZ's decision found in another provider's document does not count.
        let forged = [(
            "XYY".to_string(),
            record("XAC/R2", "XZZ/O1", Decision::Accepted),
        )];
        assert_eq!(matches(&ours, &forged)[0].status(), MatchStatus::Proposed);
        let theirs = [(
            "XZZ".to_string(),
            record("XAC/R2", "XZZ/O1", Decision::Accepted),
        )];
        let m = matches(&ours, &theirs);
        assert_eq!(m[0].status(), MatchStatus::Accepted);
        assert!(is_met(&"XAC/R2".parse().unwrap(), &m));
        // Met requests get no more suggestions.
        let (needs, offers) = illustrative();
        let s = suggest(
            &needs,
            &offers,
            &m,
            |s| BTreeSet::from([s.to_string()]),
            today(),
        );
        assert!(s.iter().all(|s| s.need.to_string() != "XAC/R2"));
        let declined = [(
            "XZZ".to_string(),
            record("XAC/R2", "XZZ/O1", Decision::Declined),
        )];
        assert_eq!(matches(&ours, &declined)[0].status(), MatchStatus::Declined);
    }

    #[test]
    fn region_and_window_exclude_and_budget_is_a_stated_gap() {
        let (needs, offers) = illustrative();
        let r2 = &needs[1];
        let mut o1 = offers[0].clone();
        o1.regions = vec!["xanadu".into()];
        let regions = BTreeSet::from(["XAC".to_string()]);
        assert!(fit(r2, &o1, &regions, today()).is_none());
        let in_pool = BTreeSet::from(["XAC".to_string(), "xanadu".to_string()]);
        assert!(fit(r2, &o1, &in_pool, today()).is_some());
        o1.until = Some("2025-12-31".parse().unwrap());
        assert!(
            fit(r2, &o1, &in_pool, today()).is_none(),
            "the offer has ended"
        );
        let mut r2 = r2.clone();
        r2.cost = Some(300_000.0);
        r2.currency = Some("USD".into());
        let mut o1 = offers[0].clone();
        o1.budget_max = Some(150_000.0);
        let s = fit(&r2, &o1, &regions, today()).unwrap();
        assert!(
            s.gaps.iter().any(|g| g.contains("offers at most 150000")),
            "{:?}",
            s.gaps
        );
        assert!("R2".parse::<NeedRef>().is_err());
        assert!("XAC/".parse::<NeedRef>().is_err());
    }
}
