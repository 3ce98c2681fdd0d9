//! Who may read what. The share list lives in the document itself, written by the document's
//! own writers and judged like every other entry, so every relay enforces it exactly as the
//! author would.
//!
//! The same rule decides both directions: a node names a document, or sends its changes, only to
//! a peer that may read it, and takes a document's changes only from a peer that may read it.

use serde_json::Value as Json;

use crate::doc::{DocId, PUBLIC, readers};
use crate::id::{NodeId, Principal};
use crate::pool::PoolData;

/// A peer as this node knows it: its key, and the State or body the operator pinned it as a
/// node of, if any.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    /// Its key.
    pub node: &'a NodeId,
    /// What it was pinned as (`peer add … --state XAA` or `--body XRB`).
    pub pinned_as: Option<&'a Principal>,
}

/// Whether `reader` may read `doc`, whose view (as this node holds it) is `view`. `pool`
/// gives the view of a pool this node holds, read with its trust; a State's published
/// document shared with `pool/<id>` is read by that pool's audience while the State is one of
/// its verified members.
///
/// - a draft (a State's or a body's): only nodes pinned as its principal's own (a node it
///   revoked is not);
/// - a State's published document: its own nodes, those its share list names (or everyone if
///   it says `*`), and the audience of a pool it shares with and is a member of;
/// - a body's offers: its own nodes, and those its share list names;
/// - a pool: its coordinator, members and observers, and nodes of the States it invites.
pub fn may_read(
    doc: &DocId,
    view: &Json,
    reader: Reader<'_>,
    pool: impl Fn(&DocId) -> Option<PoolData>,
) -> bool {
    // A node pinned as the principal's own reads as its own unless the principal revoked it
    // (a revocation in the document: a thief holding a revoked key reads nothing new).
    let own = doc.principal().is_some()
        && doc.principal().as_ref() == reader.pinned_as
        && !revoked(view, reader.node);
    match doc {
        DocId::Draft(_) | DocId::OffersDraft(_) => own,
        DocId::Pool(_) => {
            let state = match reader.pinned_as {
                Some(Principal::State(s)) => Some(*s),
                _ => None,
            };
            pool(doc).is_some_and(|p| p.may_read(reader.node, state))
        }
        DocId::State(state) => {
            if own {
                return true;
            }
            let list = readers(view);
            if list.contains(PUBLIC) || list.contains(&reader.node.to_string()) {
                return true;
            }
            list.iter()
                .filter(|r| r.starts_with("pool/"))
                .filter_map(|r| r.parse::<DocId>().ok())
                .filter_map(|id| pool(&id))
                .any(|p| p.is_member(*state) && p.audience().contains(reader.node))
        }
        DocId::Offers(_) => {
            if own {
                return true;
            }
            let list = readers(view);
            list.contains(PUBLIC) || list.contains(&reader.node.to_string())
        }
    }
}

/// Whether the document's revocations name `node`.
fn revoked(view: &Json, node: &NodeId) -> bool {
    let prefix = format!("{node}/");
    view.get("revocations")
        .and_then(Json::as_object)
        .is_some_and(|m| m.keys().any(|k| k.starts_with(&prefix)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn read_rules() {
        let xaa: Principal = "state:XAA".parse().unwrap();
        let xab: Principal = "state:XAB".parse().unwrap();
        let peer = crate::sign::NodeKey::from_seed(&[8; 32]).node_id();
        let none = json!({"readers": {}});
        let listed = json!({"readers": {peer.to_string(): true}});
        let public = json!({"readers": {"*": true}});
        let draft: DocId = "state/XAA/draft".parse().unwrap();
        let published: DocId = "state/XAA".parse().unwrap();
        let no_pools = |_: &DocId| None;
        fn reader<'a>(node: &'a NodeId, pinned_as: Option<&'a Principal>) -> Reader<'a> {
            Reader { node, pinned_as }
        }
        let r = |p| reader(&peer, p);
        assert!(may_read(&draft, &public, r(Some(&xaa)), no_pools));
        assert!(!may_read(&draft, &public, r(Some(&xab)), no_pools));
        assert!(!may_read(&draft, &listed, r(None), no_pools));
        assert!(may_read(&published, &none, r(Some(&xaa)), no_pools));
        assert!(!may_read(&published, &none, r(Some(&xab)), no_pools));
        assert!(may_read(&published, &listed, r(None), no_pools));
        assert!(may_read(&published, &public, r(None), no_pools));
    }
}
