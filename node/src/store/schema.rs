//! The schema: numbered migrations applied in order, and the refusal of databases that hold
//! documents in the format of poa-node 0.1.

use super::{Store, StoreError};

/// Append-only migrations, applied in order by `PRAGMA user_version`. Never edit one that has
/// landed: add another.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: documents, signed changes, quarantine, audit.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value BLOB NOT NULL
    ) STRICT;
    CREATE TABLE docs (
        id       TEXT PRIMARY KEY,
        snapshot BLOB,
        heads    BLOB NOT NULL,
        updated  INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE changes (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        doc         TEXT NOT NULL REFERENCES docs(id),
        hash        BLOB NOT NULL,
        author      BLOB,
        signature   BLOB,
        bytes       BLOB NOT NULL,
        source      BLOB,
        received    INTEGER NOT NULL,
        in_snapshot INTEGER NOT NULL DEFAULT 0,
        UNIQUE (doc, hash)
    ) STRICT;
    CREATE INDEX changes_pending ON changes (doc, in_snapshot, seq);
    CREATE TABLE quarantine (
        doc       TEXT NOT NULL,
        hash      BLOB NOT NULL,
        author    BLOB,
        signature BLOB,
        bytes     BLOB NOT NULL,
        peer      BLOB,
        reason    TEXT NOT NULL,
        at        INTEGER NOT NULL,
        PRIMARY KEY (doc, hash)
    ) STRICT;
    CREATE TABLE audit (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        at     INTEGER NOT NULL,
        event  TEXT NOT NULL,
        doc    TEXT,
        change BLOB,
        peer   BLOB,
        detail TEXT NOT NULL
    ) STRICT;
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    "#,
    // 2: pinned peers, per-peer per-document sync states, what each peer last offered.
    r#"
    CREATE TABLE peers (
        node_id         BLOB PRIMARY KEY,
        name            TEXT NOT NULL,
        addr            TEXT,
        state           TEXT,
        added           INTEGER NOT NULL,
        last_seen       INTEGER,
        last_error      TEXT,
        invalid_changes INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE sync_states (
        peer  BLOB NOT NULL,
        doc   TEXT NOT NULL,
        state BLOB NOT NULL,
        PRIMARY KEY (peer, doc)
    ) STRICT;
    CREATE TABLE peer_offers (
        peer BLOB NOT NULL,
        doc  TEXT NOT NULL,
        PRIMARY KEY (peer, doc)
    ) STRICT;
    "#,
    // 3: the State keys this node trusts, and how it learnt each.
    r#"
    CREATE TABLE state_keys (
        state   TEXT PRIMARY KEY,
        key     BLOB NOT NULL,
        source  TEXT NOT NULL,
        learned INTEGER NOT NULL
    ) STRICT;
    "#,
    // 4: documents as explicit signed changes judged by the ledger; trust in State and body
    // keys with its source; the heads each peer is known to hold; peers pinned as a body's.
    // (Format 1 documents cannot be converted: `migrate` refuses a database that holds any.)
    r#"
    DROP INDEX changes_pending;
    DROP TABLE changes;
    DROP TABLE docs;
    DROP TABLE quarantine;
    DROP TABLE sync_states;
    CREATE TABLE documents (
        id      TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        created INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE doc_changes (
        pos       INTEGER PRIMARY KEY AUTOINCREMENT,
        doc       TEXT NOT NULL REFERENCES documents(id),
        hash      BLOB NOT NULL,
        data      BLOB NOT NULL,
        signature BLOB NOT NULL,
        source    BLOB,
        received  INTEGER NOT NULL,
        UNIQUE (doc, hash)
    ) STRICT;
    CREATE INDEX doc_changes_by_doc ON doc_changes (doc, pos);
    CREATE TABLE rejected (
        doc    TEXT NOT NULL,
        hash   BLOB NOT NULL,
        peer   BLOB,
        reason TEXT NOT NULL,
        at     INTEGER NOT NULL,
        PRIMARY KEY (doc, hash)
    ) STRICT;
    CREATE TABLE shared_heads (
        peer  BLOB NOT NULL,
        doc   TEXT NOT NULL,
        heads BLOB NOT NULL,
        PRIMARY KEY (peer, doc)
    ) STRICT;
    CREATE TABLE peer_unheld (
        peer   BLOB PRIMARY KEY,
        digest BLOB NOT NULL,
        count  INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE trusted_keys (
        principal TEXT PRIMARY KEY,
        key       BLOB NOT NULL,
        source    TEXT NOT NULL,
        learned   INTEGER NOT NULL
    ) STRICT;
    INSERT INTO trusted_keys (principal, key, source, learned)
        SELECT 'state:' || state, key, '"operator"', learned FROM state_keys;
    DROP TABLE state_keys;
    DELETE FROM peer_offers;
    ALTER TABLE peers ADD COLUMN body TEXT;
    ALTER TABLE peers ADD COLUMN flagged TEXT;
    ALTER TABLE peers ADD COLUMN introducer INTEGER NOT NULL DEFAULT 0;
    "#,
    // A missing or bad signature belongs to the copy, not to the change its hash names: such
    // rows (and the refusals of changes that depended on them) no longer stand for the hash.
    r#"
    DELETE FROM rejected
        WHERE reason LIKE '%has no signature'
           OR reason LIKE '%its signature does not verify'
           OR reason LIKE '%depends on rejected change%';
    "#,
    // 6: what `status` shows per peer: when the last error happened, the live link of the
    // serving node, and the traffic exchanged over all connections.
    r#"
    ALTER TABLE peers ADD COLUMN last_error_at INTEGER;
    ALTER TABLE peers ADD COLUMN connected_since INTEGER;
    ALTER TABLE peers ADD COLUMN bytes_sent INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE peers ADD COLUMN bytes_received INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE peers ADD COLUMN changes_sent INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE peers ADD COLUMN changes_received INTEGER NOT NULL DEFAULT 0;
    "#,
    // 7: the recovery keys this node trusts (they sign a State's or body's key recoveries),
    // and how it learnt each.
    r#"
    CREATE TABLE recovery_keys (
        principal TEXT PRIMARY KEY,
        key BLOB NOT NULL,
        source TEXT NOT NULL,
        learned INTEGER NOT NULL
    );
    "#,
    // 8: the principal key's signature over each recovery key, where this node holds one: it
    // is what the hello carries, so that a peer learns the recovery key only as the
    // principal's key vouched for it.
    r#"
    ALTER TABLE recovery_keys ADD COLUMN vouch BLOB;
    "#,
];

impl Store {
    pub(super) fn migrate(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                found: version,
                known,
            });
        }
        if (1..4).contains(&version) {
            let docs: i64 = tx.query_row("SELECT COUNT(*) FROM docs", [], |r| r.get(0))?;
            if docs > 0 {
                return Err(StoreError::OldFormat);
            }
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The schema version.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }
}
