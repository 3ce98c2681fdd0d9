//! Backups and recovery: `backup` (a consistent copy of a home's database while `serve` may be
//! writing it, with the keys only if asked), `restore` (into a new or empty home, every stored
//! change read back through the gate before the node can start), and `doctor` (what is wrong
//! with a home, and how to fix it).
//!
//! **The backup file** is a SQLite database: `VACUUM INTO` of `poa.db` (one read transaction,
//! so a consistent snapshot however the serving node writes, in WAL mode), plus two tables:
//!
//! ```text
//! poa_backup        key TEXT, value TEXT   format ("1"), created, node_id, principal_key,
//!                                          participant, with_keys, schema
//! poa_backup_files  name, mode, data       config.toml always; node.key and state.key or
//!                                          body.key only with --with-keys
//! ```
//!
//! A backup without `--with-keys` holds no secret: no key file, and the database holds none.
//! Every backup file is created 0600 (before a byte is written: it holds the drafts), as a
//! temporary file in the folder of `--out`, renamed into place once complete, so a crash leaves
//! no half-written backup under that name; an existing file is replaced only with `--force`.
//!
//! **Restore** stages everything in a temporary folder beside the home, drops the backup's own
//! tables (with `secure_delete`, then `VACUUM`: no key bytes stay in free pages of `poa.db`),
//! migrates the schema, reads every document back through the ledger (`admit_stored`, every
//! check a stored row gets), and only then moves the files into the home. A change that fails
//! fails the restore: nothing is left in the home. Peers, pins, trust, what each peer listed
//! and the heads each peer is known to hold are kept. The restored node gets a new actor suffix,
//! so its next writes can never collide (an equivocation, voiding both) with changes the
//! original node made after the backup; each restore so uses one of the 8 actor ids a node may
//! have per document.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;

use crate::home::{self, BODY_KEY, CONFIG, Config, DATABASE, Home, HomeError, NODE_KEY, STATE_KEY};
use crate::store::{Store, StoreError, known_schema_version};

/// The format of backup files this binary writes and reads.
pub const FORMAT: &str = "1";

/// Errors of backup and restore, each one line saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Refused, with what to do.
    #[error("{0}")]
    Refused(String),
    /// A file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The home folder.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// SQLite failed.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |cause| BackupError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// What `backup` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct BackupReport {
    /// The file.
    pub out: PathBuf,
    /// Documents in it.
    pub documents: i64,
    /// Signed changes in it.
    pub changes: i64,
    /// Its size.
    pub bytes: u64,
    /// Whether it carries the key files.
    pub with_keys: bool,
    /// How long it took.
    pub millis: u128,
}

/// The folder a file is written in.
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn utf8(path: &Path) -> Result<&str, BackupError> {
    path.to_str().ok_or_else(|| {
        BackupError::Refused(format!(
            "{} is not a UTF-8 path: choose a path without such characters",
            path.display()
        ))
    })
}

/// Writes a backup of the home in `dir` to `out`. Safe while `serve` runs on the home.
pub fn backup(
    dir: &Path,
    out: &Path,
    with_keys: bool,
    force: bool,
    progress: &dyn Fn(&str),
) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    if out.exists() && !force {
        return Err(BackupError::Refused(format!(
            "{} exists already: give another --out, or add --force to replace it",
            out.display()
        )));
    }
    if out.is_dir() {
        return Err(BackupError::Refused(format!(
            "{} is a folder: give --out a file name",
            out.display()
        )));
    }
    let home = Home::open(dir)?;
    let folder = folder_of(out);
    // Created 0600 and empty (what VACUUM INTO asks of an existing file), beside `out`.
    let tmp = tempfile::Builder::new()
        .prefix(".poa-backup-")
        .suffix(".tmp")
        .tempfile_in(&folder)
        .map_err(|e| BackupError::Refused(format!("cannot write in {}: {e}", folder.display())))?;
    progress("copying the database");
    {
        let src = Connection::open_with_flags(
            home.db_path(),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        src.busy_timeout(std::time::Duration::from_secs(30))?;
        src.execute("VACUUM INTO ?1", [utf8(tmp.path())?])?;
    }
    progress("adding what the backup carries");
    let (documents, changes) = {
        let copy = Connection::open(tmp.path())?;
        // A rollback-journal file, so that it opens read-only anywhere (a WAL file needs its
        // -shm beside it).
        copy.pragma_update(None, "journal_mode", "DELETE")?;
        copy.execute_batch(
            "CREATE TABLE poa_backup (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
             CREATE TABLE poa_backup_files (
                 name TEXT PRIMARY KEY, mode INTEGER NOT NULL, data BLOB NOT NULL) STRICT;",
        )?;
        let schema: i64 = copy.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let participant = serde_json::to_string(&home.config.participant).unwrap_or_default();
        let info = [
            ("format", FORMAT.to_string()),
            ("created", crate::node::now_secs().to_string()),
            ("node_id", home.key.node_id().to_string()),
            (
                "principal_key",
                home.principal_key
                    .as_ref()
                    .map(|k| k.node_id().to_string())
                    .unwrap_or_default(),
            ),
            ("participant", participant),
            ("name", home.config.name.clone()),
            ("with_keys", with_keys.to_string()),
            ("schema", schema.to_string()),
        ];
        for (k, v) in info {
            copy.execute(
                "INSERT INTO poa_backup (key, value) VALUES (?1, ?2)",
                params![k, v],
            )?;
        }
        let mut files = vec![CONFIG];
        if with_keys {
            files.push(NODE_KEY);
            if home.principal_key.is_some() {
                files.push(home::principal_key_file(&home.config.participant));
            }
        }
        for name in files {
            let path = dir.join(name);
            let data = fs::read(&path).map_err(io(&path))?;
            let mode = if name == CONFIG { 0o644 } else { 0o600 };
            copy.execute(
                "INSERT INTO poa_backup_files (name, mode, data) VALUES (?1, ?2, ?3)",
                params![name, mode, data],
            )?;
        }
        let documents: i64 = copy.query_row("SELECT COUNT(*) FROM documents", [], |r| r.get(0))?;
        let changes: i64 = copy.query_row("SELECT COUNT(*) FROM doc_changes", [], |r| r.get(0))?;
        let check: String = copy.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(BackupError::Refused(format!(
                "the copy fails SQLite's check ({check}): nothing written; run `poa-node doctor`"
            )));
        }
        (documents, changes)
    };
    tmp.as_file().sync_all().map_err(io(tmp.path()))?;
    let kept = if force {
        tmp.persist(out)
    } else {
        tmp.persist_noclobber(out)
    };
    kept.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            BackupError::Refused(format!(
                "{} exists already: give another --out, or add --force to replace it",
                out.display()
            ))
        } else {
            BackupError::Io {
                path: out.to_path_buf(),
                cause: e.error,
            }
        }
    })?;
    if let Ok(d) = fs::File::open(&folder) {
        let _ = d.sync_all();
    }
    let bytes = fs::metadata(out).map_err(io(out))?.len();
    Ok(BackupReport {
        out: out.to_path_buf(),
        documents,
        changes,
        bytes,
        with_keys,
        millis: started.elapsed().as_millis(),
    })
}

/// What `restore` did.
#[derive(Clone, Debug, Serialize)]
pub struct RestoreReport {
    /// The home restored.
    pub home: PathBuf,
    /// The node.
    pub node_id: String,
    /// Documents restored, each read back through the gate.
    pub documents: usize,
    /// Changes in them, every one checked.
    pub changes: usize,
    /// Whether the keys came from the backup (else the operator placed them).
    pub keys_from_backup: bool,
    /// When the backup was made (Unix seconds).
    pub backup_created: i64,
}

/// A backup file, read.
struct Backup {
    info: std::collections::BTreeMap<String, String>,
    files: Vec<(String, u32, Vec<u8>)>,
}

fn read_backup(file: &Path) -> Result<(Connection, Backup), BackupError> {
    let not_backup = |why: String| {
        BackupError::Refused(format!(
            "{} is not a poa-node backup ({why}): give a file written by `poa-node backup`",
            file.display()
        ))
    };
    if !file.is_file() {
        return Err(BackupError::Refused(format!(
            "there is no backup file {}",
            file.display()
        )));
    }
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| not_backup(e.to_string()))?;
    let info = (|| -> rusqlite::Result<_> {
        let mut stmt = conn.prepare("SELECT key, value FROM poa_backup")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        rows.collect::<rusqlite::Result<std::collections::BTreeMap<_, _>>>()
    })()
    .map_err(|e| not_backup(e.to_string()))?;
    match info.get("format").map(String::as_str) {
        Some(FORMAT) => {}
        Some(other) => {
            return Err(BackupError::Refused(format!(
                "{} is a backup of format {other}, which this poa-node does not read: restore it with the poa-node that wrote it",
                file.display()
            )));
        }
        None => return Err(not_backup("it says no format".into())),
    }
    let files = (|| -> rusqlite::Result<_> {
        let mut stmt = conn.prepare("SELECT name, mode, data FROM poa_backup_files")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
    })()
    .map_err(|e| not_backup(e.to_string()))?;
    Ok((conn, Backup { info, files }))
}

fn key_id(path: &Path) -> Result<String, BackupError> {
    Ok(home::read_key(path)?.node_id().to_string())
}

/// Writes `data` to a new file `path` with `mode`, created with that mode before a byte is
/// written.
fn write_new(path: &Path, mode: u32, data: &[u8]) -> Result<(), BackupError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(io(path))?;
    f.write_all(data).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Restores the backup `file` into the home `dir`, which must be new or empty (or hold only the
/// key files the operator placed, for a backup made without keys).
pub fn restore(
    file: &Path,
    dir: &Path,
    progress: &dyn Fn(&str),
) -> Result<RestoreReport, BackupError> {
    let (src, backup) = read_backup(file)?;
    let node_id = backup.info.get("node_id").cloned().unwrap_or_default();
    let principal_key = backup
        .info
        .get("principal_key")
        .cloned()
        .filter(|k| !k.is_empty());
    let participant: poa_protocol::Participant = backup
        .info
        .get("participant")
        .and_then(|p| serde_json::from_str(p).ok())
        .ok_or_else(|| {
            BackupError::Refused(format!(
                "{} names no participant: it is not a complete poa-node backup",
                file.display()
            ))
        })?;
    let principal_file = home::principal_key_file(&participant);
    let key_files: Vec<&(String, u32, Vec<u8>)> = backup
        .files
        .iter()
        .filter(|(n, _, _)| n != CONFIG)
        .collect();
    let with_keys = !key_files.is_empty();

    // The home: new, empty, or holding only the keys the operator placed.
    let existed = dir.exists();
    let mut placed: Vec<&str> = Vec::new();
    if existed {
        if !dir.is_dir() {
            return Err(BackupError::Refused(format!(
                "{} is a file: give --home a new or empty folder",
                dir.display()
            )));
        }
        let mut other = Vec::new();
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let name = entry.map_err(io(dir))?.file_name();
            let name = name.to_string_lossy().to_string();
            match name.as_str() {
                NODE_KEY => placed.push(NODE_KEY),
                STATE_KEY => placed.push(STATE_KEY),
                BODY_KEY => placed.push(BODY_KEY),
                _ => other.push(name),
            }
        }
        if other.iter().any(|n| n == CONFIG || n == DATABASE) {
            return Err(BackupError::Refused(format!(
                "{} already holds a poa-node: restore into a new or empty folder (`poa-node --home {} doctor` says what is wrong with that one)",
                dir.display(),
                dir.display()
            )));
        }
        if !other.is_empty() {
            other.sort();
            return Err(BackupError::Refused(format!(
                "{} is not empty (it holds {}): restore into a new or empty folder",
                dir.display(),
                other.join(", ")
            )));
        }
    }
    if with_keys {
        // Keys already there must be the backup's own.
        for name in &placed {
            let theirs = key_files.iter().find(|(n, _, _)| n == name);
            let same = theirs.is_some_and(|(_, _, data)| {
                fs::read(dir.join(name)).is_ok_and(|mine| mine == *data)
            });
            if !same {
                return Err(BackupError::Refused(format!(
                    "{} holds a {name} that is not the backup's: restore into a new or empty folder",
                    dir.display()
                )));
            }
        }
    } else {
        let what = match &principal_key {
            Some(_) => format!("{NODE_KEY} and {principal_file}"),
            None => NODE_KEY.to_string(),
        };
        let missing = |why: String| {
            BackupError::Refused(format!(
                "this backup holds no keys (made without --with-keys){why}: put the node's {what} (NodeId {node_id}) into {}, mode 0600, and restore again",
                dir.display()
            ))
        };
        if !placed.contains(&NODE_KEY) {
            return Err(missing(String::new()));
        }
        if key_id(&dir.join(NODE_KEY))? != node_id {
            return Err(missing(format!(
                " and the {NODE_KEY} in {} is another node's",
                dir.display()
            )));
        }
        if let Some(k) = &principal_key {
            if !placed.contains(&principal_file) {
                return Err(missing(format!(" and {principal_file} is missing")));
            }
            if &key_id(&dir.join(principal_file))? != k {
                return Err(missing(format!(
                    " and the {principal_file} in {} is not this node's",
                    dir.display()
                )));
            }
        }
    }

    // Stage everything beside the home.
    let parent = folder_of(dir);
    fs::create_dir_all(&parent).map_err(io(&parent))?;
    let staging = tempfile::Builder::new()
        .prefix(".poa-restore-")
        .tempdir_in(&parent)
        .map_err(|e| BackupError::Refused(format!("cannot write in {}: {e}", parent.display())))?;
    let staged_db = staging.path().join(DATABASE);
    progress("copying the database");
    write_new(&staged_db, 0o600, &[])?;
    src.execute("VACUUM INTO ?1", [utf8(&staged_db)?])?;
    drop(src);
    {
        let conn = Connection::open(&staged_db)?;
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.execute_batch("DROP TABLE poa_backup; DROP TABLE poa_backup_files;")?;
        // A new actor suffix: writes after the restore never collide with what the original
        // node wrote after the backup.
        let suffix = home::random::<{ poa_protocol::sign::ACTOR_SUFFIX_LEN }>()?;
        let had: Option<i64> = conn
            .query_row(
                "UPDATE meta SET value = ?1 WHERE key = 'actor_suffix' RETURNING 1",
                [suffix.to_vec()],
                |r| r.get(0),
            )
            .optional()?;
        if had.is_none() {
            return Err(BackupError::Refused(format!(
                "{} holds no node's database (no actor suffix): give a file written by `poa-node backup`",
                file.display()
            )));
        }
        conn.execute_batch("VACUUM;")?;
    }
    progress("checking every change through the gate");
    let (documents, changes) = {
        let store = Store::open(&staged_db)?;
        let mut changes = 0;
        let mut failed = Vec::new();
        let docs = store.doc_ids()?;
        for (i, doc) in docs.iter().enumerate() {
            progress(&format!(
                "checking every change through the gate: document {} of {}",
                i + 1,
                docs.len()
            ));
            match store.with_ledger(doc, |l| l.len()) {
                Ok(n) => changes += n.unwrap_or(0),
                Err(e) => failed.push(e.to_string()),
            }
        }
        if let Some(first) = failed.first() {
            return Err(BackupError::Refused(format!(
                "restore refused, nothing written in {}: {} document(s) of the backup fail the gate; the first: {first}",
                dir.display(),
                failed.len()
            )));
        }
        drop(store);
        let conn = Connection::open(&staged_db)?;
        // No link is live in a home just restored.
        conn.execute("UPDATE peers SET connected_since = NULL", [])?;
        (docs.len(), changes)
    };
    // The files.
    for (name, mode, data) in &backup.files {
        if placed.contains(&name.as_str()) {
            continue;
        }
        if ![CONFIG, NODE_KEY, STATE_KEY, BODY_KEY].contains(&name.as_str()) {
            return Err(BackupError::Refused(format!(
                "{} carries an unknown file {name:?}: give a file written by `poa-node backup`",
                file.display()
            )));
        }
        let mode = if name == CONFIG { *mode & 0o644 } else { 0o600 };
        write_new(&staging.path().join(name), mode, data)?;
    }
    let config_ok = backup.files.iter().any(|(n, _, _)| n == CONFIG);
    if !config_ok {
        return Err(BackupError::Refused(format!(
            "{} carries no config.toml: give a file written by `poa-node backup`",
            file.display()
        )));
    }
    // Into place: the whole folder when it is new, else file by file (the database last), and
    // what was moved removed again if anything fails.
    if !existed {
        let staged = staging.keep();
        if let Err(e) = fs::rename(&staged, dir) {
            let _ = fs::remove_dir_all(&staged);
            return Err(io(dir)(e));
        }
    } else {
        let mut moved: Vec<PathBuf> = Vec::new();
        let mut names: Vec<String> = fs::read_dir(staging.path())
            .map_err(io(staging.path()))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
            .collect();
        names.sort_by_key(|n| n == DATABASE);
        for name in names {
            let to = dir.join(&name);
            if let Err(e) = fs::rename(staging.path().join(&name), &to) {
                for m in &moved {
                    let _ = fs::remove_file(m);
                }
                return Err(io(&to)(e));
            }
            moved.push(to);
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    // The home opens as a node (keys, configuration, database).
    let home = match Home::open(dir) {
        Ok(h) => h,
        Err(e) => {
            for f in [CONFIG, DATABASE, "poa.db-wal", "poa.db-shm"] {
                let _ = fs::remove_file(dir.join(f));
            }
            if with_keys {
                for f in [NODE_KEY, STATE_KEY, BODY_KEY] {
                    if !placed.contains(&f) {
                        let _ = fs::remove_file(dir.join(f));
                    }
                }
            }
            if !existed {
                let _ = fs::remove_dir(dir);
            }
            return Err(e.into());
        }
    };
    Ok(RestoreReport {
        home: dir.to_path_buf(),
        node_id: home.key.node_id().to_string(),
        documents,
        changes,
        keys_from_backup: with_keys,
        backup_created: backup
            .info
            .get("created")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
    })
}

/// How bad a finding of `doctor` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something is wrong: `doctor` exits non-zero.
    Problem,
    /// Worth knowing, nothing wrong.
    Note,
}

/// One thing `doctor` found, with how to fix it.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// Problem or note.
    pub severity: Severity,
    /// What it is about (`node.key`, `poa.db`, the folder...).
    pub subject: String,
    /// What is wrong.
    pub problem: String,
    /// What to do.
    pub fix: String,
}

fn finding(severity: Severity, subject: &str, problem: String, fix: String) -> Finding {
    Finding {
        severity,
        subject: subject.to_string(),
        problem,
        fix,
    }
}

#[cfg(unix)]
fn mode_of(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
fn mode_of(_path: &Path) -> Option<u32> {
    None
}

/// What is wrong with the home in `dir`, each with a fix. Reads only: it never writes the
/// home (the database is opened read-only, and not migrated).
pub fn doctor(dir: &Path) -> Vec<Finding> {
    use Severity::{Note, Problem};
    let mut out = Vec::new();
    let d = dir.display();
    if !dir.is_dir() {
        out.push(finding(
            Problem,
            "home",
            format!("there is no home folder {d}"),
            format!(
                "run `poa-node --home {d} init …` for a new node, or `poa-node restore BACKUP --home {d}`"
            ),
        ));
        return out;
    }
    if let Some(m) = mode_of(dir)
        && m & 0o077 != 0
    {
        out.push(finding(
            Problem,
            "home",
            format!("{d} can be opened by other users of this machine (mode {m:o})"),
            format!("run `chmod 700 {d}`"),
        ));
    }
    // The configuration.
    let config_path = dir.join(CONFIG);
    let config: Option<Config> = if !config_path.exists() {
        out.push(finding(
            Problem,
            CONFIG,
            format!("{} is missing", config_path.display()),
            "restore it from a backup (`poa-node restore BACKUP --home NEWDIR`), or write it again from config.example.toml with this node's name and participant".into(),
        ));
        None
    } else {
        match fs::read_to_string(&config_path)
            .map_err(|e| e.to_string())
            .and_then(|t| toml::from_str::<Config>(&t).map_err(|e| e.message().to_string()))
            .and_then(|c| c.validate().map(|()| c))
        {
            Ok(c) => Some(c),
            Err(why) => {
                out.push(finding(
                    Problem,
                    CONFIG,
                    format!("{} cannot be used: {why}", config_path.display()),
                    "correct it (see config.example.toml for every setting)".into(),
                ));
                None
            }
        }
    };
    // The recovery key belongs offline: on the node, a thief who takes the State key takes
    // the way back too.
    if dir.join(home::RECOVERY_KEY).exists() {
        out.push(finding(
            Note,
            home::RECOVERY_KEY,
            format!(
                "the recovery key is still in {d}: whoever takes this machine's State key also takes the way to replace it"
            ),
            format!(
                "move {} to offline storage (and keep the text `init` printed on paper); `state-key recover --recovery-key FILE` reads it from there",
                dir.join(home::RECOVERY_KEY).display()
            ),
        ));
    }
    // The keys.
    let db_path = dir.join(DATABASE);
    let mut key_files = vec![NODE_KEY];
    if let Some(c) = &config {
        key_files.push(home::principal_key_file(&c.participant));
    }
    for name in key_files {
        let path = dir.join(name);
        let p = path.display();
        if !path.exists() {
            if name == NODE_KEY {
                out.push(finding(
                    Problem,
                    name,
                    format!("{p} is missing: this home cannot act as its node"),
                    format!(
                        "put the node's {NODE_KEY} back (mode 0600) from where you keep it, or restore a backup made with --with-keys into a new folder (`poa-node restore BACKUP --home NEWDIR`); if no copy exists, the node's identity is lost: make a new node with `init` and have its State or body delegate it"
                    ),
                ));
            } else if own_principal_trusted(&db_path) {
                out.push(finding(
                    Problem,
                    name,
                    format!("{p} is missing, but this node held it (its database trusts it as its own key)"),
                    format!("put {name} back (mode 0600) from where you keep it; without it this node can no longer delegate or revoke"),
                ));
            }
            continue;
        }
        if let Some(m) = mode_of(&path)
            && m & 0o077 != 0
        {
            out.push(finding(
                Problem,
                name,
                format!(
                    "{p} can be read by other users of this machine (mode {m:o}): whoever reads it can write as this node"
                ),
                format!("run `chmod 600 {p}`; if others may have read it, treat the key as leaked"),
            ));
            continue;
        }
        if let Err(e) = home::read_key(&path) {
            out.push(finding(
                Problem,
                name,
                format!("{p} cannot be used: {e}"),
                format!("put the good copy of {name} back from where you keep it, or restore a backup made with --with-keys"),
            ));
        }
    }
    // The database.
    if !db_path.exists() {
        out.push(finding(
            Problem,
            DATABASE,
            format!("{} is missing", db_path.display()),
            "restore a backup into a new folder (`poa-node restore BACKUP --home NEWDIR`), or move the node's key files into a new folder and restore there".into(),
        ));
    } else {
        if let Some(m) = mode_of(&db_path)
            && m & 0o077 != 0
        {
            out.push(finding(
                Problem,
                DATABASE,
                format!(
                    "{} can be read by other users of this machine (mode {m:o})",
                    db_path.display()
                ),
                format!("run `chmod 600 {}`", db_path.display()),
            ));
        }
        out.extend(check_database(&db_path));
    }
    if let Some(pid) = home::serving(dir) {
        out.push(finding(
            Note,
            "serve",
            format!("a `poa-node serve` (pid {pid}) runs on this home now"),
            "nothing to do; stop it before moving or restoring files in this folder".into(),
        ));
    }
    out
}

/// Whether the database at `db` trusts a key of this node's own principal as its own key.
fn own_principal_trusted(db: &Path) -> bool {
    let Ok(conn) = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return false;
    };
    conn.query_row(
        "SELECT COUNT(*) FROM trusted_keys WHERE source = ?1",
        [
            serde_json::to_string(&poa_protocol::authority::TrustSource::OwnKey)
                .unwrap_or_default(),
        ],
        |r| r.get::<_, i64>(0),
    )
    .is_ok_and(|n| n > 0)
}

fn check_database(db: &Path) -> Vec<Finding> {
    use Severity::{Note, Problem};
    let mut out = Vec::new();
    let p = db.display().to_string();
    let restore_fix = "restore the last good backup into a new folder (`poa-node restore BACKUP --home NEWDIR`); peers send back what they hold of this node's shared documents at the next sync".to_string();
    let conn = match Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY) {
        Ok(c) => c,
        Err(e) => {
            out.push(finding(
                Problem,
                DATABASE,
                format!("{p} cannot be opened: {e}"),
                restore_fix,
            ));
            return out;
        }
    };
    let _ = conn.busy_timeout(std::time::Duration::from_secs(10));
    let checked = (|| -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare("PRAGMA integrity_check")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    })();
    match checked {
        Ok(lines) if lines == ["ok"] => {}
        Ok(lines) => {
            out.push(finding(
                Problem,
                DATABASE,
                format!(
                    "{p} fails SQLite's integrity check ({} problem(s); the first: {})",
                    lines.len(),
                    lines.first().cloned().unwrap_or_default()
                ),
                restore_fix.clone(),
            ));
            return out;
        }
        Err(e) => {
            out.push(finding(
                Problem,
                DATABASE,
                format!("{p} fails SQLite's integrity check: {e}"),
                restore_fix.clone(),
            ));
            return out;
        }
    }
    let known = known_schema_version();
    match conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)) {
        Ok(v) if v > known => out.push(finding(
            Problem,
            DATABASE,
            format!("{p} has schema version {v}, newer than this poa-node knows ({known})"),
            "run the newer poa-node that wrote it (upgrade this one)".into(),
        )),
        Ok(v) if v < known => out.push(finding(
            Note,
            DATABASE,
            format!("{p} has schema version {v}, older than this poa-node's ({known})"),
            "the next command that opens the node upgrades it; make a backup first (`poa-node backup --out FILE`)".into(),
        )),
        Ok(_) => {
            // Every document read back through the gate, as the node reads it.
            drop(conn);
            match Store::open_read_only(db) {
                Ok(store) => {
                    for doc in store.doc_ids().unwrap_or_default() {
                        if let Err(e) = store.with_ledger(&doc, |_| ()) {
                            out.push(finding(
                                Problem,
                                DATABASE,
                                e.to_string(),
                                restore_fix.clone(),
                            ));
                        }
                    }
                }
                Err(e) => out.push(finding(
                    Problem,
                    DATABASE,
                    format!("{p} cannot be read: {e}"),
                    restore_fix,
                )),
            }
        }
        Err(e) => out.push(finding(
            Problem,
            DATABASE,
            format!("{p} has no readable schema version: {e}"),
            restore_fix,
        )),
    }
    out
}
