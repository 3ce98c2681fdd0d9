//! Assistance: a State's requests (`need`), offers (`offer`), every request held (`needs`),
//! and matching requests with offers (`match`).

use std::path::PathBuf;

use clap::Subcommand;
use poa_protocol::assist::{Decision, Match, NeedRef, OfferRef};
use poa_protocol::model::{Area, AssistanceKind, Mosaic, Need, Offer, Priority};
use poa_protocol::{Date, StateCode};
use serde_json::json;

use super::{open, print_json};
use crate::format::{num, print_table};
use crate::views::NeedView;

/// Assistance request commands.
#[derive(Debug, Subcommand)]
pub enum NeedCmd {
    /// Add a request for assistance to the draft (`need publish` publishes it).
    #[command(after_help = "Example:\n  \
poa-node need add --id R1 --title \"Destruction equipment\" --target T2 --area destruction \\\n      \
--mosaic 05.50 --kind equipment --cost 250000 --currency USD --priority high")]
    Add {
        /// The State's id for it: R1.
        #[arg(long)]
        id: String,
        /// What is asked for.
        #[arg(long)]
        title: String,
        /// Target it serves (repeat).
        #[arg(long = "target", value_delimiter = ',')]
        targets: Vec<String>,
        /// Commitment area.
        #[arg(long)]
        area: Area,
        /// MOSAIC modules concerned.
        #[arg(long, value_delimiter = ',')]
        mosaic: Vec<Mosaic>,
        /// financial, technical, equipment or training.
        #[arg(long)]
        kind: AssistanceKind,
        /// Estimated cost.
        #[arg(long)]
        cost: Option<f64>,
        /// Currency of the cost (ISO 4217).
        #[arg(long)]
        currency: Option<String>,
        /// Needed from (YYYY-MM-DD).
        #[arg(long)]
        from: Option<Date>,
        /// Needed until (YYYY-MM-DD).
        #[arg(long)]
        until: Option<Date>,
        /// high, medium or low.
        #[arg(long, default_value = "medium")]
        priority: Priority,
    },
    /// Correct a request that was never published.
    #[command(after_help = "Example:\n  poa-node need edit R1 --cost 240000")]
    Edit {
        /// The request: R1.
        id: String,
        /// What is asked for.
        #[arg(long)]
        title: Option<String>,
        /// Target it serves (repeat); replaces the list.
        #[arg(long = "target", value_delimiter = ',')]
        targets: Vec<String>,
        /// Commitment area.
        #[arg(long)]
        area: Option<Area>,
        /// MOSAIC modules concerned; replaces the list.
        #[arg(long, value_delimiter = ',')]
        mosaic: Vec<Mosaic>,
        /// financial, technical, equipment or training.
        #[arg(long)]
        kind: Option<AssistanceKind>,
        /// Estimated cost.
        #[arg(long)]
        cost: Option<f64>,
        /// Currency of the cost (ISO 4217).
        #[arg(long)]
        currency: Option<String>,
        /// Needed from (YYYY-MM-DD).
        #[arg(long)]
        from: Option<Date>,
        /// Needed until (YYYY-MM-DD).
        #[arg(long)]
        until: Option<Date>,
        /// high, medium or low.
        #[arg(long)]
        priority: Option<Priority>,
    },
    /// Delete a request that was never published.
    Delete {
        /// The request: R1.
        id: String,
    },
    /// Publish a request (or its withdrawal) to the State's published document.
    Publish {
        /// The request: R1.
        id: String,
    },
    /// Withdraw a published request, with the reason (publish to send the withdrawal). It
    /// stays readable, marked withdrawn, and is no longer asked for anywhere.
    #[command(after_help = "Example:\n  poa-node need withdraw R1 --reason \"entered by mistake\"")]
    Withdraw {
        /// The request: R1.
        id: String,
        /// Why, for those who read it.
        #[arg(long)]
        reason: String,
    },
    /// List requests (this State's, or another's that this node holds).
    List {
        /// Another State.
        #[arg(long)]
        state: Option<StateCode>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Offer commands.
// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum OfferCmd {
    /// Add an offer of assistance to the body's draft (`offer publish` publishes it).
    #[command(after_help = "Example:\n  \
poa-node offer add --id O1 --title \"Marking training\" --area marking,record-keeping \\\n      \
--mosaic 05.30 --kind training --budget-max 150000 --currency USD")]
    Add {
        /// The provider's id for it: O1.
        #[arg(long)]
        id: String,
        /// What is offered.
        #[arg(long)]
        title: String,
        /// Areas covered.
        #[arg(long = "area", value_delimiter = ',', required = true)]
        areas: Vec<Area>,
        /// Kinds of help.
        #[arg(long = "kind", value_delimiter = ',', required = true)]
        kinds: Vec<AssistanceKind>,
        #[command(flatten)]
        more: OfferFields,
    },
    /// Correct an offer that was never published.
    #[command(after_help = "Example:\n  poa-node offer edit O1 --budget-max 120000")]
    Edit {
        /// The offer: O1.
        id: String,
        /// What is offered.
        #[arg(long)]
        title: Option<String>,
        /// Areas covered; replaces the list.
        #[arg(long = "area", value_delimiter = ',')]
        areas: Vec<Area>,
        /// Kinds of help; replaces the list.
        #[arg(long = "kind", value_delimiter = ',')]
        kinds: Vec<AssistanceKind>,
        #[command(flatten)]
        more: OfferFields,
    },
    /// Delete an offer that was never published.
    Delete {
        /// The offer: O1.
        id: String,
    },
    /// Publish the draft's offers and withdrawals (or one offer's) to the body's offers
    /// document, after showing what will go out.
    #[command(
        after_help = "Examples:\n  poa-node offer publish\n  poa-node offer publish O1 --yes"
    )]
    Publish {
        /// Only this offer (and its withdrawal).
        id: Option<String>,
        /// Publish without asking.
        #[arg(long)]
        yes: bool,
        /// Only show what would go out; publish nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON (needs --yes or --dry-run: no question is asked).
        #[arg(long)]
        json: bool,
    },
    /// Withdraw a published offer, with the reason (publish to send the withdrawal). It stays
    /// readable, marked withdrawn, and is matched no longer.
    #[command(after_help = "Example:\n  poa-node offer withdraw O1 --reason \"budget spent\"")]
    Withdraw {
        /// The offer: O1.
        id: String,
        /// Why, for those who read it.
        #[arg(long)]
        reason: String,
    },
    /// List every offer this node holds (on a body's node, its own drafts too, marked).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The optional fields of an offer, for `offer add` and `offer edit`.
#[derive(Debug, Default, clap::Args)]
pub struct OfferFields {
    /// MOSAIC modules covered (on edit, replaces the list).
    #[arg(long, value_delimiter = ',')]
    mosaic: Vec<Mosaic>,
    /// Eligible States or pools (empty: any; on edit, replaces the list).
    #[arg(long = "region", value_delimiter = ',')]
    regions: Vec<String>,
    /// Smallest grant.
    #[arg(long)]
    budget_min: Option<f64>,
    /// Largest grant.
    #[arg(long)]
    budget_max: Option<f64>,
    /// Currency of the budget (ISO 4217).
    #[arg(long)]
    currency: Option<String>,
    /// Available from (YYYY-MM-DD).
    #[arg(long)]
    from: Option<Date>,
    /// Available until (YYYY-MM-DD).
    #[arg(long)]
    until: Option<Date>,
}

impl OfferFields {
    /// Sets on `o` what was given.
    fn apply(self, o: &mut Offer) {
        if !self.mosaic.is_empty() {
            o.mosaic = self.mosaic;
        }
        if !self.regions.is_empty() {
            o.regions = self.regions;
        }
        macro_rules! set_opt {
            ($($field:ident),*) => {$(if self.$field.is_some() { o.$field = self.$field; })*};
        }
        set_opt!(budget_min, budget_max, currency, from, until);
    }
}

/// Match commands.
#[derive(Debug, Subcommand)]
pub enum MatchCmd {
    /// Rank offers for every open request this node holds, with the reasons.
    Suggest {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Propose a match (the requesting State or the provider).
    #[command(after_help = "Examples:\n  \
poa-node match propose XAC/R2 XZZ/O1 --note \"training in Q1 2027\"\n\n\
Each side records its own decision in its own document; a match is accepted once both sides\n\
said yes.")]
    Propose(MatchArgs),
    /// Accept a match the other side proposed.
    Accept(MatchArgs),
    /// Decline a match.
    Decline(MatchArgs),
    /// Every match this node knows of, with both sides' decisions.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The request and offer of a match decision.
#[derive(Debug, clap::Args)]
pub struct MatchArgs {
    /// The request: STATE/ID (XAC/R2).
    pub need: NeedRef,
    /// The offer: PROVIDER/ID (XZZ/O1).
    pub offer: OfferRef,
    /// Why, or conditions.
    #[arg(long)]
    pub note: Option<String>,
}

/// Runs a `need` command.
pub fn need(home: Option<PathBuf>, cmd: NeedCmd) -> anyhow::Result<()> {
    match cmd {
        NeedCmd::Add {
            id,
            title,
            targets,
            area,
            mosaic,
            kind,
            cost,
            currency,
            from,
            until,
            priority,
        } => {
            let mut node = open(home)?;
            let state = node.own_state()?;
            node.add_need(Need {
                id: id.clone(),
                state,
                title,
                targets,
                area,
                mosaic,
                kind,
                cost,
                currency,
                from,
                until,
                priority,
            })?;
            super::targets::print_warnings(&node);
            println!(
                "Added request {id} of {state} to the draft. Publish it with `poa-node need publish {id}` or `poa-node submission publish`."
            );
        }
        NeedCmd::Edit {
            id,
            title,
            targets,
            area,
            mosaic,
            kind,
            cost,
            currency,
            from,
            until,
            priority,
        } => {
            let mut node = open(home)?;
            node.edit_need(&id, |n| {
                macro_rules! set {
                    ($($field:ident),*) => {$(if let Some(v) = $field { n.$field = v; })*};
                }
                set!(title, area, kind, priority);
                macro_rules! set_opt {
                    ($($field:ident),*) => {$(if $field.is_some() { n.$field = $field; })*};
                }
                set_opt!(cost, currency, from, until);
                if !targets.is_empty() {
                    n.targets = targets;
                }
                if !mosaic.is_empty() {
                    n.mosaic = mosaic;
                }
                Ok(())
            })?;
            super::targets::print_warnings(&node);
            println!("Corrected request {id} in the draft.");
        }
        NeedCmd::Delete { id } => {
            open(home)?.delete_need(&id)?;
            println!("Deleted request {id} from the draft.");
        }
        NeedCmd::Publish { id } => {
            let p = open(home)?.publish_need(&id)?;
            if p.is_empty() {
                println!("{id} is already published as it stands.");
            } else {
                println!("Published {id}: {}.", poa_protocol::submission::summary(&p));
            }
        }
        NeedCmd::Withdraw { id, reason } => {
            let mut node = open(home)?;
            node.withdraw_need(&id, &reason)?;
            println!(
                "Withdrew request {id} in the draft. Publish the withdrawal with `poa-node need publish {id}`; it then stays in the published document, marked withdrawn, and peers leave it out once they sync."
            );
        }
        NeedCmd::List { state, json } => {
            let node = open(home)?;
            let needs = node.needs(state)?;
            // On the State's own node, what is only in the draft says so.
            let published = match state {
                None => Some(node.drafts()?.2),
                Some(_) => None,
            };
            let status = |id: &str| match &published {
                Some(p) if !p.needs.contains_key(id) => "draft",
                _ => "published",
            };
            if json {
                let list: Vec<serde_json::Value> = needs
                    .iter()
                    .map(|n| {
                        let mut v = serde_json::to_value(n).unwrap_or_default();
                        v["status"] = json!(status(&n.id));
                        v
                    })
                    .collect();
                print_json(&serde_json::Value::Array(list))?;
            } else if needs.is_empty() {
                println!("No requests. Add one with `poa-node need add --help`.");
            } else {
                let rows: Vec<Vec<String>> = needs
                    .iter()
                    .map(|n| {
                        vec![
                            n.id.clone(),
                            status(&n.id).to_string(),
                            n.area.to_string(),
                            n.kind.to_string(),
                            n.priority.to_string(),
                            n.targets.join(","),
                            n.cost
                                .map(|c| {
                                    format!("{} {}", num(c), n.currency.clone().unwrap_or_default())
                                })
                                .unwrap_or_else(|| "-".into()),
                            n.title.clone(),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "ID", "STATUS", "AREA", "KIND", "PRIORITY", "TARGETS", "COST", "TITLE",
                    ],
                    &rows,
                );
            }
        }
    }
    Ok(())
}

/// Runs an `offer` command.
pub fn offer(home: Option<PathBuf>, cmd: OfferCmd) -> anyhow::Result<()> {
    match cmd {
        OfferCmd::Add {
            id,
            title,
            areas,
            kinds,
            more,
        } => {
            let mut node = open(home)?;
            let mut offer = Offer {
                id: id.clone(),
                provider: String::new(),
                title,
                areas,
                mosaic: Vec::new(),
                kinds,
                regions: Vec::new(),
                budget_min: None,
                budget_max: None,
                currency: None,
                from: None,
                until: None,
            };
            more.apply(&mut offer);
            node.add_offer(offer)?;
            super::targets::print_warnings(&node);
            println!(
                "Added offer {id} to the draft ({}). Publish it with `poa-node offer publish {id}`.",
                node.offer_drafts()?.0
            );
        }
        OfferCmd::Edit {
            id,
            title,
            areas,
            kinds,
            more,
        } => {
            let mut node = open(home)?;
            node.edit_offer(&id, |o| {
                if let Some(t) = title {
                    o.title = t;
                }
                if !areas.is_empty() {
                    o.areas = areas;
                }
                if !kinds.is_empty() {
                    o.kinds = kinds;
                }
                more.apply(o);
                Ok(())
            })?;
            super::targets::print_warnings(&node);
            println!("Corrected offer {id} in the draft.");
        }
        OfferCmd::Delete { id } => {
            open(home)?.delete_offer(&id)?;
            println!("Deleted offer {id} from the draft.");
        }
        OfferCmd::Publish {
            id,
            yes,
            dry_run,
            json,
        } => {
            if json && !(yes || dry_run) {
                anyhow::bail!("--json asks no question: add --yes to publish, or --dry-run");
            }
            let mut node = open(home)?;
            let items = node.pending_offers(id.as_deref())?;
            if items.is_empty() {
                if json {
                    print_json(&json!({"published": [], "pending": []}))?;
                } else {
                    println!(
                        "Nothing to publish: the offers document holds everything in the draft."
                    );
                }
                return Ok(());
            }
            if !json {
                println!("Publishing would send out {} record(s):", items.len());
                for i in &items {
                    println!("  {i}");
                }
            }
            if dry_run {
                if json {
                    print_json(&json!({"published": [], "pending": items}))?;
                } else {
                    println!("Nothing published (--dry-run).");
                }
                return Ok(());
            }
            if !yes && !super::submission::confirm()? {
                println!("Nothing published.");
                return Ok(());
            }
            let done = node.publish_offers(id.as_deref())?;
            if json {
                print_json(&json!({"published": done, "pending": []}))?;
            } else {
                println!(
                    "Published {} record(s) in {}.",
                    done.len(),
                    node.offers_doc()
                );
            }
        }
        OfferCmd::Withdraw { id, reason } => {
            let mut node = open(home)?;
            node.withdraw_offer(&id, &reason)?;
            println!(
                "Withdrew offer {id} in the draft. Publish the withdrawal with `poa-node offer publish {id}`; it then stays in the offers document, marked withdrawn, and is matched no longer."
            );
        }
        OfferCmd::List { json } => {
            let node = open(home)?;
            let own = match node.home.config.participant.state() {
                None => node.own_offers()?,
                Some(_) => Vec::new(),
            };
            let me = node.home.config.participant.code();
            // Others' offers as held; the body's own, with where each stands.
            let mut list: Vec<(Offer, String)> = own
                .into_iter()
                .map(|o| (o.offer, o.status.to_string()))
                .collect();
            list.extend(
                node.offers()?
                    .into_iter()
                    .filter(|o| o.provider != me || node.home.config.participant.state().is_some())
                    .map(|o| (o, "published".to_string())),
            );
            if json {
                let rows: Vec<serde_json::Value> = list
                    .iter()
                    .map(|(o, status)| {
                        let mut v = serde_json::to_value(o).unwrap_or_default();
                        v["status"] = json!(status);
                        v
                    })
                    .collect();
                print_json(&serde_json::Value::Array(rows))?;
            } else if list.is_empty() {
                println!("No offers held. Add one with `poa-node offer add --help`.");
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|(o, status)| {
                        let join = |v: Vec<String>| v.join(",");
                        vec![
                            o.provider.clone(),
                            o.id.clone(),
                            status.clone(),
                            join(o.areas.iter().map(|a| a.to_string()).collect()),
                            join(o.kinds.iter().map(|k| k.to_string()).collect()),
                            o.title.clone(),
                        ]
                    })
                    .collect();
                print_table(
                    &["PROVIDER", "ID", "STATUS", "AREAS", "KINDS", "TITLE"],
                    &rows,
                );
            }
        }
    }
    Ok(())
}

fn decision_text(m: &Match) -> String {
    let side = |r: &Option<poa_protocol::assist::MatchRecord>| {
        r.as_ref()
            .map(|r| r.decision.slug().to_string())
            .unwrap_or_else(|| "-".into())
    };
    format!(
        "{} (State {}, provider {})",
        m.status().slug(),
        side(&m.state_side),
        side(&m.provider_side)
    )
}

/// Runs a `match` command.
pub fn matching(home: Option<PathBuf>, cmd: MatchCmd) -> anyhow::Result<()> {
    let decide = |args: MatchArgs, d: Decision| -> anyhow::Result<()> {
        let mut node = open(home.clone())?;
        node.match_decide(&args.need, &args.offer, d, args.note)?;
        let status = node
            .matches()?
            .into_iter()
            .find(|m| m.need == args.need && m.offer == args.offer)
            .map(|m| decision_text(&m))
            .unwrap_or_default();
        println!(
            "Recorded: {} {} {}. The match is now {status}.",
            node.home.config.participant.code(),
            d.slug(),
            format_args!("{} with {}", args.need, args.offer)
        );
        Ok(())
    };
    match cmd {
        MatchCmd::Suggest { json } => {
            let node = open(home)?;
            let s = node.match_suggest()?;
            let open_needs = node.unmet_needs()?;
            let without: Vec<String> = open_needs
                .iter()
                .map(|(n, _)| NeedRef::of(n))
                .filter(|r| s.iter().all(|x| x.need != *r))
                .map(|r| r.to_string())
                .collect();
            if json {
                return print_json(&json!({
                    "suggestions": s.iter().map(|s| s.to_json()).collect::<Vec<_>>(),
                    "needs_without_offer": without,
                }));
            }
            if s.is_empty() {
                println!("No offer fits an open request held here.");
            }
            for x in &s {
                println!(
                    "{} <- {}  score {}  ({} priority)",
                    x.need, x.offer, x.score, x.priority
                );
                println!("    fits: {}", x.fits.join("; "));
                if !x.gaps.is_empty() {
                    println!("    gaps: {}", x.gaps.join("; "));
                }
            }
            if !without.is_empty() {
                println!("No offer fits: {}", without.join(", "));
            }
        }
        MatchCmd::Propose(a) => decide(a, Decision::Proposed)?,
        MatchCmd::Accept(a) => decide(a, Decision::Accepted)?,
        MatchCmd::Decline(a) => decide(a, Decision::Declined)?,
        MatchCmd::List { json } => {
            let node = open(home)?;
            let m = node.matches()?;
            if json {
                return print_json(&serde_json::Value::Array(
                    m.iter().map(Match::to_json).collect(),
                ));
            }
            if m.is_empty() {
                println!("No matches yet. See `poa-node match suggest`.");
            }
            let rows: Vec<Vec<String>> = m
                .iter()
                .map(|m| vec![m.need.to_string(), m.offer.to_string(), decision_text(m)])
                .collect();
            print_table(&["REQUEST", "OFFER", "STATUS"], &rows);
        }
    }
    Ok(())
}

/// Runs `needs`: every request this node holds, or the unmet ones.
pub fn needs(
    home: Option<PathBuf>,
    state: Option<StateCode>,
    area: Option<Area>,
    unmet: bool,
    json: bool,
) -> anyhow::Result<()> {
    let node = open(home)?;
    let matches = node.matches()?;
    let mut rows = Vec::new();
    let all = if unmet {
        node.unmet_needs()?
    } else {
        node.all_needs()?
            .into_iter()
            .map(|n| {
                let r = NeedRef::of(&n);
                let m = matches.iter().filter(|m| m.need == r).cloned().collect();
                (n, m)
            })
            .collect()
    };
    let mut views = Vec::new();
    for (n, m) in all {
        if state.is_some_and(|s| s != n.state) || area.is_some_and(|a| a != n.area) {
            continue;
        }
        let v = NeedView::of(n, &m);
        rows.push(vec![
            v.reference.clone(),
            v.need.area.to_string(),
            v.need.kind.to_string(),
            v.need.priority.to_string(),
            v.status.to_string(),
            m.iter()
                .map(|m| format!("{} {}", m.offer, m.status().slug()))
                .collect::<Vec<_>>()
                .join(", "),
            v.need.title.clone(),
        ]);
        views.push(v);
    }
    if json {
        return print_json(&views);
    }
    if rows.is_empty() {
        println!(
            "{}",
            if unmet {
                "No unmet requests held here."
            } else {
                "No requests held here."
            }
        );
        return Ok(());
    }
    print_table(
        &[
            "REQUEST", "AREA", "KIND", "PRIORITY", "STATUS", "MATCHES", "TITLE",
        ],
        &rows,
    );
    Ok(())
}
