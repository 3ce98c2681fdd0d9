//! The node's home folder: its keys, its configuration and its database.
//!
//! ```text
//! HOME/           readable only by its owner (0700)
//!   node.key      the node's ed25519 seed (hex), readable only by its owner (0600)
//!   state.key     the State key, on a State's first node only (0600)
//!   body.key      the body key, on a body's first node only (0600)
//!   config.toml   who this node is and how it runs
//!   poa.db        the SQLite database (0600)
//! ```
//!
//! A key file that others can read is refused: whoever reads it can write as this node.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use poa_protocol::sign::{ACTOR_SUFFIX_LEN, NodeKey};
use poa_protocol::{BodyCode, BodyKind, Participant, StateCode};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

pub(crate) const NODE_KEY: &str = "node.key";
pub(crate) const STATE_KEY: &str = "state.key";
pub(crate) const BODY_KEY: &str = "body.key";
pub(crate) const CONFIG: &str = "config.toml";
pub(crate) const DATABASE: &str = "poa.db";
const SERVE_LOCK: &str = "serve.lock";
/// The recovery key a State's or body's first node creates: to be moved offline.
pub const RECOVERY_KEY: &str = "recovery.key";

/// Errors of the home folder.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// A file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why (in the message, not a separate source, so it is said once).
        cause: std::io::Error,
    },
    /// The folder holds no node.
    #[error(
        "no poa-node in {0}: run `poa-node init --state XAA --name \"...\"` first, or pass --home"
    )]
    NotInitialised(PathBuf),
    /// The folder holds a node's files but not its key.
    #[error(
        "{0} holds a poa-node but its node.key is missing: run `poa-node --home {0} doctor` to see what to do (put the key back, or `poa-node restore BACKUP --home NEWDIR`)"
    )]
    KeyMissing(PathBuf),
    /// The folder already holds a node.
    #[error(
        "{0} already holds a poa-node; choose another --home (if that node is broken, `poa-node --home {0} doctor` says what to do, and `poa-node restore BACKUP --home NEWDIR` restores a backup)"
    )]
    AlreadyInitialised(PathBuf),
    /// A key file is malformed.
    #[error("{0} is not a poa key file (64 hex characters)")]
    BadKey(PathBuf),
    /// A key file others can read.
    #[error(
        "{0} can be read by other users of this machine: whoever reads it can write as this node; run `chmod 600 {0}`"
    )]
    KeyPermissions(PathBuf),
    /// The configuration is malformed or invalid.
    #[error("{path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An argument of `init` is invalid.
    #[error("{0}")]
    Invalid(String),
    /// No per-user data folder and no --home.
    #[error("cannot find a per-user data folder: pass --home DIR or set POA_HOME")]
    NoDataDir,
    /// The operating system gave no randomness.
    #[error("the operating system gave no randomness: {0}")]
    Random(String),
    /// Another process serves this home.
    #[error(
        "another `poa-node serve` (pid {pid}) already runs on {dir}: stop it first (two nodes on one home would answer peers with one key from two places), or give another --home"
    )]
    Serving {
        /// The home.
        dir: PathBuf,
        /// The process that holds the lock, as it wrote.
        pid: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The lock a serving node holds on its home while it runs: one `serve` per home. The
/// operating system releases it when the process ends, however it ends, so a crash never
/// leaves a home locked.
#[derive(Debug)]
pub struct ServeLock {
    _file: fs::File,
}

/// Takes the serve lock of the home in `dir`, writing this process's id in it.
pub fn lock_serve(dir: &Path) -> Result<ServeLock, HomeError> {
    let path = dir.join(SERVE_LOCK);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(HomeError::Serving {
                dir: dir.to_path_buf(),
                pid: lock_holder(&path).unwrap_or_else(|| "unknown".into()),
            });
        }
        Err(fs::TryLockError::Error(cause)) => return Err(HomeError::Io { path, cause }),
    }
    file.set_len(0).map_err(io(&path))?;
    writeln!(file, "{}", std::process::id()).map_err(io(&path))?;
    Ok(ServeLock { _file: file })
}

/// The pid of the `serve` that holds the home's lock, or `None` when no `serve` runs there.
pub fn serving(dir: &Path) -> Option<String> {
    let path = dir.join(SERVE_LOCK);
    let file = fs::File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(_) => Some(lock_holder(&path).unwrap_or_else(|| "unknown".into())),
    }
}

fn lock_holder(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let pid = text.trim();
    (!pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then(|| pid.to_string())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HomeError + '_ {
    move |cause| HomeError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// The configuration file, as written by `init` and read at every start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A display name ("XAA Ministry of Interior").
    pub name: String,
    /// Whom this node acts for.
    pub participant: Participant,
    /// Network settings.
    #[serde(default)]
    pub network: NetworkConfig,
}

/// How the node listens and syncs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// The QUIC address `serve` listens on.
    pub listen: String,
    /// Seconds between anti-entropy rounds while serving.
    pub anti_entropy_secs: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            listen: "0.0.0.0:4433".into(),
            anti_entropy_secs: 60,
        }
    }
}

impl Config {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err(
                "the name must not be empty: give --name \"XAA Ministry of Interior\" or similar"
                    .into(),
            );
        }
        self.network
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|_| {
                format!(
                    "network.listen '{}' is not an address such as 0.0.0.0:4433",
                    self.network.listen
                )
            })?;
        if self.network.anti_entropy_secs == 0 {
            return Err("network.anti_entropy_secs must be at least 1".into());
        }
        Ok(())
    }
}

/// Who a new node is: the answers to `init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Display name.
    pub name: String,
    /// State or body.
    pub participant: Participant,
    /// Whether this node creates the key of its State or body (the first node does).
    pub create_principal_key: bool,
}

impl InitOptions {
    /// A State node that creates the State key.
    pub fn state(code: StateCode, name: &str) -> Self {
        InitOptions {
            name: name.into(),
            participant: Participant::State { code },
            create_principal_key: true,
        }
    }

    /// A body's first node, which creates the body key.
    pub fn body(code: BodyCode, kind: BodyKind, name: &str) -> Self {
        InitOptions {
            name: name.into(),
            participant: Participant::Body { code, kind },
            create_principal_key: true,
        }
    }
}

/// An opened home folder.
#[derive(Debug)]
pub struct Home {
    dir: PathBuf,
    /// The configuration.
    pub config: Config,
    /// The node key.
    pub key: NodeKey,
    /// The key of the State or body this node acts for, on its first node.
    pub principal_key: Option<NodeKey>,
    /// The suffix of this store's actor ids.
    pub actor_suffix: [u8; ACTOR_SUFFIX_LEN],
}

/// Where a new node's keys come from.
enum Entropy {
    /// The operating system's randomness.
    Os,
    /// Derived from a seed (the simulator's deterministic nodes).
    Seed([u8; 32]),
}

impl Entropy {
    fn bytes<const N: usize>(&self, what: &str) -> Result<[u8; N], HomeError> {
        match self {
            Entropy::Os => random::<N>(),
            Entropy::Seed(seed) => {
                use sha2::Digest;
                let digest = sha2::Sha256::new()
                    .chain_update(b"poa-node seeded home\0")
                    .chain_update(what.as_bytes())
                    .chain_update(seed)
                    .finalize();
                let mut out = [0u8; N];
                for (o, d) in out.iter_mut().zip(digest.iter().cycle()) {
                    *o = *d;
                }
                Ok(out)
            }
        }
    }
}

/// Fills a buffer from the operating system's randomness.
pub fn random<const N: usize>() -> Result<[u8; N], HomeError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| HomeError::Random(e.to_string()))?;
    Ok(buf)
}

/// The home folder to use: the flag, else `POA_HOME` (clap reads both), else the per-user data
/// folder.
pub fn resolve(dir: Option<PathBuf>) -> Result<PathBuf, HomeError> {
    match dir {
        Some(d) => Ok(d),
        None => dirs::data_dir()
            .map(|d| d.join("poa-node"))
            .ok_or(HomeError::NoDataDir),
    }
}

pub(crate) fn write_key(path: &Path, key: &NodeKey) -> Result<(), HomeError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io(path))?;
    let hex: String = key.seed().iter().map(|b| format!("{b:02x}")).collect();
    f.write_all(hex.as_bytes()).map_err(io(path))?;
    f.write_all(b"\n").map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

pub(crate) fn read_key(path: &Path) -> Result<NodeKey, HomeError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).map_err(io(path))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(HomeError::KeyPermissions(path.to_path_buf()));
        }
    }
    let text = fs::read_to_string(path).map_err(io(path))?;
    key_of_text(&text).ok_or_else(|| HomeError::BadKey(path.to_path_buf()))
}

/// A key from the text of a key file: its seed in 64 hex digits.
pub(crate) fn key_of_text(text: &str) -> Option<NodeKey> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(NodeKey::from_seed(&seed))
}

/// The file the key of a participant's State or body lives in.
pub(crate) fn principal_key_file(p: &Participant) -> &'static str {
    match p {
        Participant::State { .. } => STATE_KEY,
        Participant::Body { .. } => BODY_KEY,
    }
}

/// The holder of a State's or body's key trusts it for its own documents. Idempotent; a
/// conflict here means the key file was swapped under the database, and every write says so.
fn trust_own_key(
    store: &Store,
    key: Option<&NodeKey>,
    participant: &Participant,
) -> Result<(), HomeError> {
    if let Some(k) = key {
        store.learn_key(
            &participant.principal(),
            &k.node_id(),
            &poa_protocol::authority::TrustSource::OwnKey,
            crate::node::now_secs(),
        )?;
    }
    Ok(())
}

impl Home {
    /// The file this node's State or body key lives in.
    pub fn principal_key_path(&self) -> PathBuf {
        self.dir.join(principal_key_file(&self.config.participant))
    }

    /// Where the next principal key waits while the rotation naming it is committed.
    pub fn staged_key_path(&self) -> PathBuf {
        self.dir.join(format!(
            "{}.next",
            principal_key_file(&self.config.participant)
        ))
    }

    /// Writes the next principal key beside the current one, before the rotation that names
    /// it commits: a crash in between leaves it for [`Home::take_staged_key`] or to be dropped.
    pub fn stage_principal_key(&self, new: &NodeKey) -> Result<(), HomeError> {
        let next = self.staged_key_path();
        if next.exists() {
            fs::remove_file(&next).map_err(io(&next))?;
        }
        write_key(&next, new)
    }

    /// Makes the staged key this node's principal key; the one it replaces is kept beside it
    /// as `state.key.retired-<key>` (0600), never deleted by the node.
    pub fn take_staged_key(&mut self) -> Result<(), HomeError> {
        let next = self.staged_key_path();
        let new = read_key(&next)?;
        let current = self.principal_key_path();
        if current.exists() {
            let old = read_key(&current)?;
            let retired = self.dir.join(format!(
                "{}.retired-{}",
                principal_key_file(&self.config.participant),
                old.node_id().short()
            ));
            fs::rename(&current, &retired).map_err(io(&current))?;
        }
        fs::rename(&next, &current).map_err(io(&next))?;
        if let Ok(d) = fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.principal_key = Some(new);
        Ok(())
    }
    /// Creates a node in `dir`: keys, configuration and database. If anything fails, what was
    /// created is removed again, so a failed init leaves no half-made node behind.
    pub fn init(dir: &Path, opts: &InitOptions) -> Result<Home, HomeError> {
        Self::init_with(dir, opts, Entropy::Os)
    }

    /// [`Home::init`] with every key and id derived from `seed` instead of the operating
    /// system's randomness: the same seed makes the same node. For the simulator and tests,
    /// whose runs must repeat exactly; a real node's keys must never be derivable.
    pub fn init_seeded(dir: &Path, opts: &InitOptions, seed: [u8; 32]) -> Result<Home, HomeError> {
        Self::init_with(dir, opts, Entropy::Seed(seed))
    }

    fn init_with(dir: &Path, opts: &InitOptions, entropy: Entropy) -> Result<Home, HomeError> {
        let config = Config {
            name: opts.name.clone(),
            participant: opts.participant.clone(),
            network: NetworkConfig::default(),
        };
        // Nothing is written yet, so the problem is in the arguments, not in a file.
        config.validate().map_err(HomeError::Invalid)?;
        if dir.join(NODE_KEY).exists() || dir.join(CONFIG).exists() {
            return Err(HomeError::AlreadyInitialised(dir.to_path_buf()));
        }
        let existed = dir.exists();
        fs::create_dir_all(dir).map_err(io(dir))?;
        #[cfg(unix)]
        if !existed {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        }
        let result = Self::init_files(dir, opts, &config, &entropy);
        if result.is_err() {
            for f in [
                NODE_KEY,
                STATE_KEY,
                BODY_KEY,
                RECOVERY_KEY,
                CONFIG,
                DATABASE,
            ] {
                let _ = fs::remove_file(dir.join(f));
            }
            for f in ["poa.db-wal", "poa.db-shm"] {
                let _ = fs::remove_file(dir.join(f));
            }
            if !existed {
                let _ = fs::remove_dir(dir);
            }
        }
        result
    }

    fn init_files(
        dir: &Path,
        opts: &InitOptions,
        config: &Config,
        entropy: &Entropy,
    ) -> Result<Home, HomeError> {
        let key = NodeKey::from_seed(&entropy.bytes::<32>("node key")?);
        write_key(&dir.join(NODE_KEY), &key)?;
        let principal_key = if opts.create_principal_key {
            let k = NodeKey::from_seed(&entropy.bytes::<32>("principal key")?);
            write_key(&dir.join(principal_key_file(&opts.participant)), &k)?;
            Some(k)
        } else {
            None
        };
        let store = Store::open(&dir.join(DATABASE))?;
        let actor_suffix = entropy.bytes::<ACTOR_SUFFIX_LEN>("actor suffix")?;
        store.set_meta("actor_suffix", &actor_suffix)?;
        trust_own_key(&store, principal_key.as_ref(), &opts.participant)?;
        if principal_key.is_some() {
            // The recovery key: it signs nothing until the principal key is lost or leaked,
            // and then replaces it (`state-key recover`). The operator moves the file offline.
            let r = NodeKey::from_seed(&entropy.bytes::<32>("recovery key")?);
            write_key(&dir.join(RECOVERY_KEY), &r)?;
            store.learn_recovery_key(
                &opts.participant.principal(),
                &r.node_id(),
                &poa_protocol::authority::TrustSource::OwnKey,
                crate::node::now_secs(),
            )?;
        }
        let text = format!(
            "# poa-node configuration. See config.example.toml in the source for every setting.\n{}",
            toml::to_string_pretty(config).map_err(|e| HomeError::Config {
                path: dir.join(CONFIG),
                reason: e.to_string(),
            })?
        );
        let path = dir.join(CONFIG);
        fs::write(&path, text).map_err(io(&path))?;
        Ok(Home {
            dir: dir.to_path_buf(),
            config: config.clone(),
            key,
            principal_key,
            actor_suffix,
        })
    }

    /// Opens an existing node. Environment variables override the file: `POA_LISTEN`.
    pub fn open(dir: &Path) -> Result<Home, HomeError> {
        if !dir.join(NODE_KEY).exists() {
            if dir.join(CONFIG).exists() || dir.join(DATABASE).exists() {
                return Err(HomeError::KeyMissing(dir.to_path_buf()));
            }
            return Err(HomeError::NotInitialised(dir.to_path_buf()));
        }
        let path = dir.join(CONFIG);
        let text = fs::read_to_string(&path).map_err(io(&path))?;
        let mut config: Config = toml::from_str(&text).map_err(|e| HomeError::Config {
            path: path.clone(),
            reason: e.message().to_string(),
        })?;
        if let Ok(listen) = std::env::var("POA_LISTEN") {
            config.network.listen = listen;
        }
        config
            .validate()
            .map_err(|reason| HomeError::Config { path, reason })?;
        let key = read_key(&dir.join(NODE_KEY))?;
        let principal_path = dir.join(principal_key_file(&config.participant));
        let principal_key = if principal_path.exists() {
            Some(read_key(&principal_path)?)
        } else {
            None
        };
        let store = Store::open(&dir.join(DATABASE))?;
        trust_own_key(&store, principal_key.as_ref(), &config.participant)?;
        let actor_suffix = store
            .meta("actor_suffix")?
            .and_then(|v| <[u8; ACTOR_SUFFIX_LEN]>::try_from(v.as_slice()).ok())
            .ok_or_else(|| HomeError::Config {
                path: dir.join(DATABASE),
                reason: "the database has no actor suffix; it was not made by `poa-node init`"
                    .into(),
            })?;
        Ok(Home {
            dir: dir.to_path_buf(),
            config,
            key,
            principal_key,
            actor_suffix,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.join(DATABASE)
    }

    /// Opens the database.
    pub fn store(&self) -> Result<Store, StoreError> {
        Store::open(&self.dir.join(DATABASE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_open_gives_the_same_identity() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("xaa");
        let opts = InitOptions::state("XAA".parse().unwrap(), "XAA Ministry of Interior");
        let created = Home::init(&home, &opts).unwrap();
        let opened = Home::open(&home).unwrap();
        assert_eq!(created.key.node_id(), opened.key.node_id());
        assert_eq!(created.actor_suffix, opened.actor_suffix);
        assert!(opened.principal_key.is_some());
        assert_eq!(opened.config.participant, opts.participant);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(home.join(NODE_KEY))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            Home::init(&home, &opts),
            Err(HomeError::AlreadyInitialised(_))
        ));
    }

    #[test]
    fn one_serve_per_home() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(serving(dir.path()), None);
        let held = lock_serve(dir.path()).unwrap();
        let pid = std::process::id().to_string();
        assert_eq!(serving(dir.path()), Some(pid.clone()));
        match lock_serve(dir.path()) {
            Err(HomeError::Serving { pid: p, .. }) => assert_eq!(p, pid),
            other => panic!("a second serve was not refused: {other:?}"),
        }
        drop(held);
        assert_eq!(serving(dir.path()), None);
        let _again = lock_serve(dir.path()).unwrap();
    }

    #[test]
    fn a_bad_init_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("bad");
        let opts = InitOptions::state("XAA".parse().unwrap(), "  ");
        assert!(Home::init(&home, &opts).is_err());
        assert!(!home.exists());
        assert!(matches!(
            Home::open(&home),
            Err(HomeError::NotInitialised(_))
        ));
    }
}
