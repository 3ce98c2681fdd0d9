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

/// The table of trusted principal keys, and the one of their recovery keys: the same shape,
/// learnt by the same rule.
const PRINCIPAL_KEYS: &str = "trusted_keys";
const RECOVERY_KEYS: &str = "recovery_keys";

/// Whether a stored trust source is an introducer: what such a source taught is not vouched
/// for further.
fn from_introducer(source: &str) -> bool {
    matches!(
        serde_json::from_str::<TrustSource>(source),
        Ok(TrustSource::Introducer(_))
    )
}

impl Store {
    pub(super) fn reload_trust(&self) -> Result<(), StoreError> {
        let trust = Trust {
            keys: self.keys_in(PRINCIPAL_KEYS)?,
            recovery: self.keys_in(RECOVERY_KEYS)?,
        };
        *self.trust.borrow_mut() = trust;
        Ok(())
    }

    fn keys_in(
        &self,
        table: &'static str,
    ) -> Result<std::collections::BTreeMap<Principal, NodeId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT principal, key FROM {table}"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(p, key)| Some((p.parse::<Principal>().ok()?, node_of(&key)?)))
            .collect())
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
        self.learn_in(PRINCIPAL_KEYS, principal, key, source, now)
    }

    /// Trusts `key` as `principal`'s recovery key, by the same rule as [`Store::learn_key`].
    pub fn learn_recovery_key(
        &self,
        principal: &Principal,
        key: &NodeId,
        source: &TrustSource,
        now: i64,
    ) -> Result<Learned, StoreError> {
        self.learn_in(RECOVERY_KEYS, principal, key, source, now)
    }

    /// Keeps the principal key's signature over `principal`'s recovery key, if that key is
    /// the one trusted (and no vouch is held yet).
    pub fn keep_recovery_vouch(
        &self,
        principal: &Principal,
        vouch: &poa_protocol::wire::RecoveryVouch,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE recovery_keys SET vouch = ?3 WHERE principal = ?1 AND key = ?2 AND vouch IS NULL",
            params![principal.to_string(), vouch.key.0.to_vec(), vouch.signature],
        )?;
        Ok(())
    }

    /// `principal`'s recovery key with the principal key's signature over it, if this node
    /// holds both and learnt the key first-hand (a key learnt from an introducer is not
    /// vouched for further).
    pub fn recovery_vouch(
        &self,
        principal: &Principal,
    ) -> Result<Option<poa_protocol::wire::RecoveryVouch>, StoreError> {
        let row: Option<(Vec<u8>, String, Option<Vec<u8>>)> = self
            .conn
            .query_row(
                "SELECT key, source, vouch FROM recovery_keys WHERE principal = ?1",
                [principal.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        Ok(row.and_then(|(k, source, vouch)| {
            if from_introducer(&source) {
                return None;
            }
            Some(poa_protocol::wire::RecoveryVouch {
                key: node_of(&k)?,
                signature: vouch?,
            })
        }))
    }

    fn learn_in(
        &self,
        table: &'static str,
        principal: &Principal,
        key: &NodeId,
        source: &TrustSource,
        now: i64,
    ) -> Result<Learned, StoreError> {
        let existing: Option<(Vec<u8>, String)> = self
            .conn
            .query_row(
                &format!("SELECT key, source FROM {table} WHERE principal = ?1"),
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
                    &format!(
                        "INSERT INTO {table} (principal, key, source, learned) VALUES (?1, ?2, ?3, ?4)"
                    ),
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
            .filter(|(_, _, src)| !from_introducer(src))
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
