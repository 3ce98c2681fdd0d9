//! A body's offers through their life, as a State's records go (see [`crate::records`]):
//! written to the body's draft (`offers/XZZ/draft`, which never leaves its own nodes),
//! corrected or deleted there while never published, published in one change, and once
//! published never edited in place: withdrawn with a reason, and replaced by a new offer.
//!
//! Every write goes through [`Node::write`], so through the gate, and runs
//! [`check_offer`] first: errors refuse with nothing written, warnings are kept.

use poa_protocol::authority::SignedGrant;
use poa_protocol::checks::check_offer;
use poa_protocol::doc::{DocId, OffersData};
use poa_protocol::model::{Offer, check_text};
use serde::Serialize;

use crate::node::{Node, NodeError, refuse_errors};

/// What publishing the body's draft would send out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PendingOffer {
    /// An offer never published.
    NewOffer {
        /// Its id.
        id: String,
    },
    /// The withdrawal of a published offer.
    OfferWithdrawal {
        /// The offer.
        id: String,
        /// Why.
        reason: String,
    },
}

impl PendingOffer {
    /// The offer it concerns.
    pub fn id(&self) -> &str {
        match self {
            PendingOffer::NewOffer { id } | PendingOffer::OfferWithdrawal { id, .. } => id,
        }
    }
}

impl std::fmt::Display for PendingOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PendingOffer::NewOffer { id } => write!(f, "new offer {id}"),
            PendingOffer::OfferWithdrawal { id, reason } => {
                write!(f, "withdrawal of offer {id} ({reason})")
            }
        }
    }
}

/// Where one of the body's own offers stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OfferStatus {
    /// Only in the draft.
    Draft,
    /// Published.
    Published,
    /// Published, and its withdrawal waits in the draft.
    WithdrawalPending,
    /// Withdrawn.
    Withdrawn,
}

impl std::fmt::Display for OfferStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OfferStatus::Draft => "draft",
            OfferStatus::Published => "published",
            OfferStatus::WithdrawalPending => "withdrawal pending",
            OfferStatus::Withdrawn => "withdrawn",
        })
    }
}

/// One of the body's own offers with where it stands.
#[derive(Clone, Debug, Serialize)]
pub struct OwnOffer {
    /// The offer.
    #[serde(flatten)]
    pub offer: Offer,
    /// Where it stands.
    pub status: OfferStatus,
}

/// What is pending in `draft` against `public`, in id order: new offers, then withdrawals.
pub fn pending_offers(draft: &OffersData, public: &OffersData) -> Vec<PendingOffer> {
    let published = |id: &str| public.offers.contains_key(id) || public.withdrawn.contains_key(id);
    let mut out: Vec<PendingOffer> = draft
        .offers
        .keys()
        .chain(draft.withdrawn.keys())
        .filter(|id| !published(id))
        .map(|id| PendingOffer::NewOffer { id: id.clone() })
        .collect();
    for (key, v) in &draft.retracted {
        if let Some(id) = key.strip_prefix("offers/")
            && !public.retracted.contains_key(key)
        {
            out.push(PendingOffer::OfferWithdrawal {
                id: id.to_string(),
                reason: v["reason"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    out
}

fn taken(data: &OffersData, id: &str) -> bool {
    data.offers.contains_key(id) || data.withdrawn.contains_key(id)
}

impl Node {
    /// The body's offers draft and published document, as held here.
    pub fn offer_drafts(&self) -> Result<(DocId, OffersData, OffersData), NodeError> {
        if self.home.config.participant.state().is_some() {
            return Err(NodeError::NotABody(self.home.config.participant.clone()));
        }
        let public = self.offers_doc();
        let draft = public.draft().unwrap_or_else(|| public.clone());
        let read = |doc: &DocId| -> Result<OffersData, NodeError> {
            Ok(self
                .store
                .view(doc)?
                .map(|v| OffersData::from_json(&v))
                .unwrap_or_default())
        };
        Ok((draft.clone(), read(&draft)?, read(&public)?))
    }

    /// Copies into the body's draft the grants its published document holds and the draft
    /// does not (a home made before drafts of offers existed has none there), so this node
    /// may write the draft.
    fn fill_offer_draft_grants(&mut self, draft: &DocId) -> Result<(), NodeError> {
        let public = self.offers_doc();
        let (Some(from), to) = (self.store.view(&public)?, self.store.view(draft)?) else {
            return Ok(());
        };
        for container in ["delegations", "revocations"] {
            let Some(map) = from[container].as_object() else {
                continue;
            };
            for (key, value) in map {
                let held = to.as_ref().is_some_and(|t| t[container].get(key).is_some());
                if held {
                    continue;
                }
                if let Ok(g) = SignedGrant::from_value(value) {
                    self.write(draft, |w, _| w.put_text(container, key, g.to_text()))?;
                }
            }
        }
        Ok(())
    }

    /// Adds an offer of assistance to the body's draft; it is published with
    /// [`Node::publish_offers`].
    pub fn add_offer(&mut self, mut offer: Offer) -> Result<(), NodeError> {
        let (draft, _, public) = self.offer_drafts()?;
        self.fill_offer_draft_grants(&draft)?;
        offer.provider = self.home.config.participant.code();
        offer.validate()?;
        let published = self.published_ids(&self.offers_doc(), "offers")?;
        let today = self.clock.today();
        let (warnings, _) = self.write(&draft, |w, before| {
            let data = OffersData::from_json(before);
            // Nor an id someone wrote a withdrawal for (it would cover the new offer).
            if taken(&data, &offer.id)
                || taken(&public, &offer.id)
                || published.contains(&offer.id)
                || public
                    .retracted
                    .contains_key(&format!("offers/{}", offer.id))
                || w.withdrawal_written("offers", &offer.id)
            {
                return Err(NodeError::Exists(format!("offer {}", offer.id)));
            }
            let mut held = data;
            held.offers.extend(public.offers.clone());
            held.withdrawn.extend(public.withdrawn.clone());
            let warnings = refuse_errors(check_offer(&offer, &held, today))?;
            w.put("offers", &offer.id, &offer)?;
            Ok(warnings)
        })?;
        self.record_warnings(&draft, &warnings);
        Ok(())
    }

    /// Corrects an offer that was never published.
    pub fn edit_offer(
        &mut self,
        id: &str,
        edit: impl FnOnce(&mut Offer) -> Result<(), NodeError>,
    ) -> Result<(), NodeError> {
        let (draft, _, public) = self.offer_drafts()?;
        let today = self.clock.today();
        let (warnings, _) = self.write(&draft, |w, before| {
            let data = OffersData::from_json(before);
            let current = unpublished(&data, &public, id)?;
            let mut next = current.clone();
            edit(&mut next)?;
            next.id = current.id.clone();
            next.provider = current.provider.clone();
            if next == *current {
                return Err(NodeError::NothingChanged(format!("offer {id}")));
            }
            next.validate()?;
            let mut held = data.clone();
            held.offers.remove(id);
            held.offers.extend(public.offers.clone());
            held.withdrawn.extend(public.withdrawn.clone());
            let warnings = refuse_errors(check_offer(&next, &held, today))?;
            w.replace("offers", id, &next)?;
            Ok(warnings)
        })?;
        self.record_warnings(&draft, &warnings);
        Ok(())
    }

    /// Deletes an offer that was never published.
    pub fn delete_offer(&mut self, id: &str) -> Result<(), NodeError> {
        let (draft, _, public) = self.offer_drafts()?;
        self.write(&draft, |w, before| {
            let data = OffersData::from_json(before);
            unpublished(&data, &public, id)?;
            w.delete("offers", id)
        })?;
        Ok(())
    }

    /// Withdraws a published offer, with the reason, in the draft; publishing sends the
    /// withdrawal, and every node then stops matching it. It stays on record, marked withdrawn.
    pub fn withdraw_offer(&mut self, id: &str, reason: &str) -> Result<(), NodeError> {
        check_text("the reason", reason)?;
        let (draft, held, public) = self.offer_drafts()?;
        let key = format!("offers/{id}");
        if public.withdrawn.contains_key(id) || held.retracted.contains_key(&key) {
            return Err(NodeError::AlreadyWithdrawn(format!("offer {id}")));
        }
        if !public.offers.contains_key(id) {
            if held.offers.contains_key(id) {
                return Err(NodeError::NeverPublished {
                    what: format!("offer {id}"),
                    hint: format!(
                        "delete it with `poa-node offer delete {id}`, or correct it with `poa-node offer edit {id} …`"
                    ),
                });
            }
            return Err(NodeError::NoOffer(id.to_string()));
        }
        let today = self.clock.today();
        self.write(&draft, |w, _| {
            w.put(
                "retracted",
                &key,
                &serde_json::json!({"date": today.to_string(), "reason": reason}),
            )
        })?;
        Ok(())
    }

    /// What publishing the body's draft would send out: every pending item, or one offer's.
    pub fn pending_offers(&self, only: Option<&str>) -> Result<Vec<PendingOffer>, NodeError> {
        let (_, draft, public) = self.offer_drafts()?;
        Ok(pending_offers(&draft, &public)
            .into_iter()
            .filter(|p| only.is_none_or(|id| p.id() == id))
            .collect())
    }

    /// Publishes what is pending in the body's draft (or one offer's part of it) in one change
    /// to its offers document: exactly what [`Node::pending_offers`] lists.
    pub fn publish_offers(&mut self, only: Option<&str>) -> Result<Vec<PendingOffer>, NodeError> {
        let (_, draft, _) = self.offer_drafts()?;
        if let Some(id) = only
            && !taken(&draft, id)
        {
            return Err(NodeError::NoOffer(id.to_string()));
        }
        let today = self.clock.today();
        let doc = self.offers_doc();
        let (items, _) = self.write(&doc, |w, before| {
            let public = OffersData::from_json(before);
            let items: Vec<PendingOffer> = pending_offers(&draft, &public)
                .into_iter()
                .filter(|p| only.is_none_or(|id| p.id() == id))
                .collect();
            for item in &items {
                match item {
                    PendingOffer::NewOffer { id } => {
                        let o = draft.offers.get(id).or_else(|| draft.withdrawn.get(id));
                        if let Some(o) = o {
                            let mut others = public.clone();
                            others.offers.extend(draft.offers.clone());
                            others.offers.remove(id);
                            refuse_errors(check_offer(o, &others, today))?;
                            w.put("offers", id, o)?;
                        }
                    }
                    PendingOffer::OfferWithdrawal { id, .. } => {
                        let key = format!("offers/{id}");
                        w.put("retracted", &key, &draft.retracted[&key])?;
                    }
                }
            }
            Ok(items)
        })?;
        Ok(items)
    }

    /// The body's own offers, draft and published, each with where it stands, in id order.
    pub fn own_offers(&self) -> Result<Vec<OwnOffer>, NodeError> {
        let (_, draft, public) = self.offer_drafts()?;
        let mut out: std::collections::BTreeMap<String, OwnOffer> = Default::default();
        for (id, o) in &draft.offers {
            out.insert(
                id.clone(),
                OwnOffer {
                    offer: o.clone(),
                    status: OfferStatus::Draft,
                },
            );
        }
        for (id, o) in &public.offers {
            let pending = draft.retracted.contains_key(&format!("offers/{id}"));
            out.insert(
                id.clone(),
                OwnOffer {
                    offer: o.clone(),
                    status: if pending {
                        OfferStatus::WithdrawalPending
                    } else {
                        OfferStatus::Published
                    },
                },
            );
        }
        for (id, o) in &public.withdrawn {
            out.insert(
                id.clone(),
                OwnOffer {
                    offer: o.clone(),
                    status: OfferStatus::Withdrawn,
                },
            );
        }
        Ok(out.into_values().collect())
    }
}

/// An offer of the draft that was never published, or why it cannot be changed.
pub(crate) fn unpublished<'a>(
    data: &'a OffersData,
    public: &OffersData,
    id: &str,
) -> Result<&'a Offer, NodeError> {
    if taken(public, id) {
        return Err(NodeError::IsPublished {
            what: format!("offer {id}"),
            hint: format!(
                "withdraw it with `poa-node offer withdraw {id} --reason …` and add a new one"
            ),
        });
    }
    data.offers
        .get(id)
        .ok_or_else(|| NodeError::NoOffer(id.to_string()))
}
