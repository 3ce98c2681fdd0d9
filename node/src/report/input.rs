//! What the stocktake reads: the documents this node holds (or exactly those a report cites,
//! at the heads it cites), fed to the pure computation of [`poa_protocol::stocktake`].

use poa_protocol::Date;
use poa_protocol::automerge::ChangeHash;
use poa_protocol::doc::{DocId, OffersData, StateData};
use poa_protocol::model::Cycle;
use poa_protocol::pool::PoolData;
use poa_protocol::stocktake::{Cited, Input, Source, Stocktake, stocktake};
use serde_json::Value as Json;

use super::ReportError;
use crate::node::{Node, NodeError};

/// Parses the heads a report cites for `doc`.
fn parse_heads(doc: &str, heads: &[String]) -> Result<Vec<ChangeHash>, ReportError> {
    heads
        .iter()
        .map(|h| {
            h.parse::<ChangeHash>()
                .map_err(|_| ReportError::NotAReport(format!("{doc}: '{h}' is not a change hash")))
        })
        .collect()
}

/// Reads a document's view at `heads` (as its changes in their causal past make it), or as it
/// stands now: `None` if the node lacks the document or any of the heads.
fn at_heads<T>(
    node: &Node,
    doc: &DocId,
    heads: Option<&[ChangeHash]>,
    read: impl FnOnce(&Json) -> T,
) -> Result<Option<(Vec<ChangeHash>, T)>, ReportError> {
    let key = node.store.trust().key_for_doc(doc).copied();
    let out = node
        .store
        .with_ledger(doc, |l| {
            let settled = match heads {
                Some(h) => l.view_at(h, key.as_ref())?,
                None => l.settled()?.clone(),
            };
            let data = read(&settled.view);
            Some((settled.heads, data))
        })
        .map_err(NodeError::from)?;
    Ok(out.flatten())
}

/// What this node holds, as the stocktake reads it: every State's published document, every
/// pool and every offers document, at their current heads, or, for `verify`, exactly the
/// documents a report cites at the heads it cites.
pub fn input(node: &Node, cited: Option<&[Cited]>) -> Result<Input, ReportError> {
    let wanted: Vec<(DocId, Option<Vec<ChangeHash>>)> = match cited {
        Some(list) => list
            .iter()
            .map(|c| {
                let doc: DocId = c.doc.parse().map_err(|e: poa_protocol::doc::DocIdError| {
                    ReportError::NotAReport(e.to_string())
                })?;
                Ok((doc, Some(parse_heads(&c.doc, &c.heads)?)))
            })
            .collect::<Result<_, ReportError>>()?,
        None => node
            .store
            .doc_ids()
            .map_err(NodeError::from)?
            .into_iter()
            .filter(|d| !d.is_draft())
            .map(|d| (d, None))
            .collect(),
    };
    let mut input = Input::default();
    for (doc, heads) in wanted {
        let missing = || ReportError::Missing(doc.to_string());
        let strict = heads.is_some();
        match &doc {
            DocId::State(s) => {
                match at_heads(node, &doc, heads.as_deref(), StateData::from_json)? {
                    Some((heads, data)) => {
                        input.states.insert(*s, Source { heads, data });
                    }
                    None if strict => return Err(missing()),
                    None => {}
                }
            }
            DocId::Pool(id) => {
                let trust = node.store.trust();
                match at_heads(node, &doc, heads.as_deref(), |v| {
                    PoolData::from_json(v, id, &trust)
                })? {
                    Some((heads, data)) if !data.owner.is_empty() || strict => {
                        input.pools.insert(id.to_string(), Source { heads, data });
                    }
                    Some(_) => {}
                    None if strict => return Err(missing()),
                    None => {}
                }
            }
            DocId::Offers(p) => {
                match at_heads(node, &doc, heads.as_deref(), OffersData::from_json)? {
                    Some((heads, data)) => {
                        input.offers.insert(p.clone(), Source { heads, data });
                    }
                    None if strict => return Err(missing()),
                    None => {}
                }
            }
            _ if strict => {
                return Err(ReportError::NotAReport(format!(
                    "a stocktake does not read {doc}"
                )));
            }
            _ => {}
        }
    }
    Ok(input)
}

/// The latest cycle any held target belongs to.
pub fn default_cycle(node: &Node) -> Result<Cycle, ReportError> {
    let input = input(node, None)?;
    input
        .states
        .values()
        .flat_map(|s| s.data.targets.values().map(|t| t.cycle))
        .max()
        .ok_or(ReportError::NoCycle)
}

/// Computes the stocktake of `cycle` on what this node holds now.
pub fn compute(node: &Node, cycle: Cycle, as_of: Date) -> Result<Stocktake, ReportError> {
    Ok(stocktake(&input(node, None)?, cycle, as_of))
}
