//! The trusted keys: which key this node trusts for each State and body, and how it learnt
//! each.

use poa_protocol::authority::{Trust, TrustSource};
use poa_protocol::{NodeId, Principal};
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, node_of};

/// What learning a principal's key did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Learned {
    /// The key is now trusted for the principal.
    New,
    /// The same key was already trusted.
    Known,
    /// Another key is trusted for the principal: the new claim is refused.
    Conflict {
        /// The key already trusted.
        trusted: NodeId,
        /// How it was learnt.
        source: String,
    },
}

impl Store {
    pub(super) fn reload_trust(&self) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT principal, key FROM trusted_keys")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut trust = Trust::default();
        for (p, key) in rows {
            if let (Ok(p), Some(key)) = (p.parse::<Principal>(), node_of(&key)) {
                trust.keys.insert(p, key);
            }
        }
        let mut stmt = self
            .conn
            .prepare("SELECT principal, key FROM recovery_keys")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (p, key) in rows {
            if let (Ok(p), Some(key)) = (p.parse::<Principal>(), node_of(&key)) {
                trust.recovery.insert(p, key);
            }
        }
        *self.trust.borrow_mut() = trust;
        Ok(())
    }

    /// The principal keys this node trusts.
    pub fn trust(&self) -> Trust {
        self.trust.borrow().clone()
    }

    /// Every trusted key with how it was learnt.
    pub fn trusted_keys(&self) -> Result<Vec<(Principal, NodeId, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT principal, key, source FROM trusted_keys ORDER BY principal")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(p, k, src)| {
                let source = serde_json::from_str::<TrustSource>(&src)
                    .map(|s| s.to_string())
                    .unwrap_or(src);
                Some((p.parse().ok()?, node_of(&k)?, source))
            })
            .collect())
    }

    /// Trusts `key` for `principal`, unless another key is trusted for it already: the first
    /// key from a source the operator chose wins, and a different one later is a conflict.
    pub fn learn_key(
        &self,
        principal: &Principal,
        key: &NodeId,
        source: &TrustSource,
        now: i64,
    ) -> Result<Learned, StoreError> {
        let existing: Option<(Vec<u8>, String)> = self
            .conn
            .query_row(
                "SELECT key, source FROM trusted_keys WHERE principal = ?1",
                [principal.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match existing {
            Some((k, _)) if k == key.0 => Ok(Learned::Known),
            Some((k, source)) => Ok(Learned::Conflict {
                trusted: node_of(&k).unwrap_or(NodeId([0; 32])),
                source: serde_json::from_str::<TrustSource>(&source)
                    .map(|s| s.to_string())
                    .unwrap_or(source),
            }),
            None => {
                self.conn.execute(
                    "INSERT INTO trusted_keys (principal, key, source, learned) VALUES (?1, ?2, ?3, ?4)",
                    params![
                        principal.to_string(),
                        key.0.to_vec(),
                        serde_json::to_string(source).unwrap_or_default(),
                        now
                    ],
                )?;
                // What peers offered that could not be judged without this key may be
                // takeable now: forget their digests, so each peer's next summary differs and
                // its list is asked for again (whether or not a session is open now).
                self.conn.execute("DELETE FROM peer_unheld", [])?;
                self.reload_trust()?;
                Ok(Learned::New)
            }
        }
    }

    /// Trusts `key` as `principal`'s recovery key, unless another is trusted for it already
    /// (the first from a source the operator chose wins, as for principal keys).
    pub fn learn_recovery_key(
        &self,
        principal: &Principal,
        key: &NodeId,
        source: &TrustSource,
        now: i64,
    ) -> Result<Learned, StoreError> {
        let existing: Option<(Vec<u8>, String)> = self
            .conn
            .query_row(
                "SELECT key, source FROM recovery_keys WHERE principal = ?1",
                [principal.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match existing {
            Some((k, _)) if k == key.0 => Ok(Learned::Known),
            Some((k, source)) => Ok(Learned::Conflict {
                trusted: node_of(&k).unwrap_or(NodeId([0; 32])),
                source: serde_json::from_str::<TrustSource>(&source)
                    .map(|s| s.to_string())
                    .unwrap_or(source),
            }),
            None => {
                self.conn.execute(
                    "INSERT INTO recovery_keys (principal, key, source, learned) VALUES (?1, ?2, ?3, ?4)",
                    params![
                        principal.to_string(),
                        key.0.to_vec(),
                        serde_json::to_string(source).unwrap_or_default(),
                        now
                    ],
                )?;
                // Verdicts may change with it: what peers offered may be takeable now.
                self.conn.execute("DELETE FROM peer_unheld", [])?;
                self.reload_trust()?;
                Ok(Learned::New)
            }
        }
    }

    /// Every trusted recovery key with how it was learnt.
    pub fn recovery_keys(&self) -> Result<Vec<(Principal, NodeId, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT principal, key, source FROM recovery_keys ORDER BY principal")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(p, k, src)| {
                let source = serde_json::from_str::<TrustSource>(&src)
                    .map(|s| s.to_string())
                    .unwrap_or(src);
                Some((p.parse().ok()?, node_of(&k)?, source))
            })
            .collect())
    }

    /// The keys this node trusts first-hand (not through an introducer): what it may vouch
    /// for.
    pub fn first_hand_keys(&self) -> Result<Vec<(Principal, NodeId)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT principal, key, source FROM trusted_keys ORDER BY principal")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter(|(_, _, src)| {
                !matches!(
                    serde_json::from_str::<TrustSource>(src),
                    Ok(TrustSource::Introducer(_))
                )
            })
            .filter_map(|(p, k, _)| Some((p.parse().ok()?, node_of(&k)?)))
            .collect())
    }

    /// Reads the trusted keys again (another process may have added one).
    pub fn refresh_trust(&self) -> Result<bool, StoreError> {
        let before = self.trust.borrow().clone();
        self.reload_trust()?;
        Ok(*self.trust.borrow() != before)
    }
}
