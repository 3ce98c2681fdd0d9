//! Tests of the store: writes surviving a reopen, tampered rows, failed transactions, the
//! append-only audit log.

use super::schema::MIGRATIONS;
use super::*;
use poa_protocol::change::{FlatAction, FlatOp, SignedChange};
use poa_protocol::doc::PoolId;
use poa_protocol::ledger::actor_bytes;
use poa_protocol::sign::{NodeKey, sign_change};

fn write(store: &mut Store, key: &NodeKey, doc: &DocId, id: &str) -> Outcome {
    store
        .transact(|tx| {
            let data = tx.with_ledger(doc, |l| {
                l.next_change(
                    &actor_bytes(&key.node_id(), &[9; 8]),
                    1,
                    vec![FlatOp {
                        container: doc.kind().container("pooled").unwrap_or(0),
                        key: id.into(),
                        action: FlatAction::Put {
                            value: "{}".into(),
                            preds: vec![],
                        },
                    }],
                )
            })?;
            let hash = data.to_automerge(doc).expect("encodes").hash();
            let c = SignedChange {
                signature: sign_change(key, doc, &hash).to_vec(),
                data,
            };
            tx.apply(doc, vec![c], Source::Local, 1)
        })
        .expect("writes")
}

#[test]
fn writes_survive_reopen_and_are_verified_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("poa.db");
    let key = NodeKey::from_seed(&[5; 32]);
    let doc = DocId::Pool(PoolId::new("p1", &key.node_id()));
    let mut store = Store::open(&path).unwrap();
    for i in 0..70 {
        let out = write(&mut store, &key, &doc, &format!("R{i}"));
        assert_eq!(out.accepted.len(), 1, "{:?}", out.rejected);
    }
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.with_ledger(&doc, |l| l.len()).unwrap(), Some(71));
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the database is readable by others: {mode:o}"
        );
    }
}

#[test]
fn a_tampered_row_stops_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("poa.db");
    let key = NodeKey::from_seed(&[5; 32]);
    let doc = DocId::Pool(PoolId::new("p1", &key.node_id()));
    let mut store = Store::open(&path).unwrap();
    write(&mut store, &key, &doc, "R1");
    store
        .conn
        .execute("UPDATE doc_changes SET signature = zeroblob(64)", [])
        .unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert!(matches!(
        store.view(&doc),
        Err(StoreError::Unverified { .. })
    ));
}

#[test]
fn a_failed_transaction_leaves_no_trace_in_the_database_or_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let key = NodeKey::from_seed(&[5; 32]);
    let doc = DocId::Pool(PoolId::new("p1", &key.node_id()));
    let mut store = Store::open(&dir.path().join("poa.db")).unwrap();
    write(&mut store, &key, &doc, "R1");
    let r: Result<(), StoreError> = store.transact(|tx| {
        let data = tx.with_ledger(&doc, |l| {
            l.next_change(
                &actor_bytes(&key.node_id(), &[9; 8]),
                1,
                vec![FlatOp {
                    container: 5,
                    key: "R2".into(),
                    action: FlatAction::Put {
                        value: "{}".into(),
                        preds: vec![],
                    },
                }],
            )
        })?;
        let hash = data.to_automerge(&doc).unwrap().hash();
        let c = SignedChange {
            signature: sign_change(&key, &doc, &hash).to_vec(),
            data,
        };
        tx.apply(&doc, vec![c], Source::Local, 1)?;
        Err(StoreError::OldFormat)
    });
    assert!(r.is_err());
    assert_eq!(store.with_ledger(&doc, |l| l.len()).unwrap(), Some(2));
}

#[test]
fn the_audit_log_is_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("poa.db")).unwrap();
    store
        .conn
        .execute(
            "INSERT INTO audit (at, event, detail) VALUES (1, 'x', 'y')",
            [],
        )
        .unwrap();
    assert!(store.conn.execute("DELETE FROM audit", []).is_err());
    assert!(
        store
            .conn
            .execute("UPDATE audit SET detail = 'z'", [])
            .is_err()
    );
}

#[test]
fn signature_refusals_kept_before_are_forgotten_on_upgrade() {
    // Rows a node kept before a bad signature stopped counting as a property of the hash: the
    // upgrade drops them (and the refusals that followed from them), keeps the others.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("poa.db");
    // A database as the version before that upgrade left it: the first four migrations.
    const BEFORE: usize = 4;
    let store = rusqlite::Connection::open(&path).unwrap();
    for sql in &MIGRATIONS[..BEFORE] {
        store.execute_batch(sql).unwrap();
    }
    store
        .pragma_update(None, "user_version", BEFORE as i64)
        .unwrap();
    for (byte, reason) in [
        (1u8, "change aaaa has no signature"),
        (
            2,
            "change bbbb by node X rejected: its signature does not verify",
        ),
        (3, "change cccc depends on rejected change bbbb"),
        (4, "change dddd by node X is sequence number 3, not 2"),
    ] {
        store
            .execute(
                "INSERT INTO rejected (doc, hash, peer, reason, at) VALUES ('state/XAA', ?1, NULL, ?2, 0)",
                rusqlite::params![vec![byte; 32], reason],
            )
            .unwrap();
    }
    drop(store);
    let store = Store::open(&path).unwrap();
    let left: Vec<String> = store
        .conn
        .prepare("SELECT reason FROM rejected")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(left, ["change dddd by node X is sequence number 3, not 2"]);
}
