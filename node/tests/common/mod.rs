//! Helpers shared by the tests that run the real `poa-node` binary. Cargo builds the binary for
//! this package's integration tests and names it in `CARGO_BIN_EXE_poa-node`, so no test builds
//! anything itself.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `poa-node` binary Cargo built for these tests.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_poa-node"))
}

/// Runs `poa-node --home HOME ARGS...` with a clean environment and returns its output.
pub fn poa_node_at(home: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .env_remove("POA_HOME")
        .env_remove("POA_LISTEN")
        .env_remove("RUST_LOG")
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("poa-node runs")
}

/// The homes of a finished demo federation (`poa-node demo --no-serve --keep`) in `dir`, made
/// once per test binary (after removing what a previous run left there) and shared by its
/// tests, which only read them. Give each test binary its own `dir` under
/// `CARGO_TARGET_TMPDIR`.
pub fn demo_homes(dir: &'static str) -> &'static Path {
    static HOMES: OnceLock<PathBuf> = OnceLock::new();
    HOMES.get_or_init(|| {
        let dir = PathBuf::from(dir);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("the previous run's demo homes can be removed");
        }
        let out = Command::new(bin())
            .env_remove("POA_HOME")
            .env_remove("RUST_LOG")
            .args(["demo", "--no-serve", "--keep"])
            .arg(&dir)
            .output()
            .expect("poa-node runs");
        assert!(
            out.status.success(),
            "the demo failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// `poa-node serve --http` on a home, on free ports; killed when dropped.
pub struct Served {
    child: std::process::Child,
    /// Where the dashboard listens: `127.0.0.1:PORT`.
    pub addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `poa-node --home HOME serve` with the dashboard, and waits for its address.
pub fn serve_http(home: &Path) -> Served {
    use std::io::BufRead;
    let mut child = Command::new(bin())
        .env_remove("POA_HOME")
        .env_remove("RUST_LOG")
        .arg("--home")
        .arg(home)
        .args(["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("poa-node serve starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(url) = line.strip_prefix("Dashboard on http://") {
                let _ = tx.send(url.trim_end_matches('/').to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the node prints the dashboard's address");
    Served { child, addr }
}

/// A plain HTTP/1.1 GET of `path` from `addr`: the status line and the body.
pub fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("the dashboard accepts");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("the request is sent");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("the answer is read");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// A State's first node in a temporary home, and the commands run against it: the desk of a
/// national point of contact.
pub struct Desk {
    tmp: tempfile::TempDir,
    /// The home folder.
    pub home: PathBuf,
}

impl Desk {
    /// `init --state XAA` in a fresh temporary folder.
    pub fn new() -> Desk {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let home = tmp.path().join("home");
        let d = Desk { tmp, home };
        d.ok(&[
            "init",
            "--state",
            "XAA",
            "--name",
            "XAA Ministry of Interior",
        ]);
        d
    }

    /// `init --body XZZ --kind donor` in a fresh temporary folder: a donor's desk.
    pub fn body() -> Desk {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let home = tmp.path().join("home");
        let d = Desk { tmp, home };
        d.ok(&[
            "init", "--body", "XZZ", "--kind", "donor", "--name", "XZZ Fund",
        ]);
        d
    }

    /// A folder beside the home for the test's files.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Runs `poa-node --home HOME ARGS...`.
    pub fn run(&self, args: &[&str]) -> Output {
        poa_node_at(&self.home, args)
    }

    /// A command that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "`poa-node {}` failed:\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    /// A command that must succeed and print JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).expect("JSON output")
    }
}

/// The names Chromium goes by on `PATH`.
pub const CHROMIUM: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// Where `name` is on `PATH`, if anywhere.
pub fn on_path(name: &str) -> Option<PathBuf> {
    find_on_path(&[name])
}

fn find_on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// A program (one of `names` on `PATH`), installed with apt-get (as root, or through
/// `sudo -n`) from Debian's `package` if it is missing.
///
/// Tests run in parallel, and a test runner may start one process per test: the install happens
/// once per process and package, and processes take turns on a file lock, so a second test
/// waits for the first install instead of racing it for dpkg's lock.
pub fn installed(names: &[&str], package: &str) -> PathBuf {
    static DONE: std::sync::Mutex<Vec<(String, Result<PathBuf, String>)>> =
        std::sync::Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, r)) = done.iter().find(|(p, _)| p == package) {
        return r.clone().unwrap_or_else(|why| panic!("{why}"));
    }
    let r = install(names, package);
    done.push((package.to_string(), r.clone()));
    r.unwrap_or_else(|why| panic!("{why}"))
}

fn install(names: &[&str], package: &str) -> Result<PathBuf, String> {
    if let Some(p) = find_on_path(names) {
        return Ok(p);
    }
    let lock_path = std::env::temp_dir().join("poa-node-tests-apt-install.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    // Blocks while another test process installs; released when `lock` is dropped.
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    // Another process may have installed it while this one waited.
    if let Some(p) = find_on_path(names) {
        return Ok(p);
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let apt = |args: &[&str]| -> Result<(), String> {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        let out = cmd
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map_err(|e| format!("apt-get {}: {e}", args.join(" ")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "apt-get {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    if !Path::new("/usr/bin/apt-get").exists() {
        return Err(format!(
            "{package} is missing and this is not a Debian-like system: install it"
        ));
    }
    apt(&["update", "-qq"])
        .and_then(|()| apt(&["install", "-y", "-qq", package]))
        .map_err(|e| {
            format!("{package} is missing and could not be installed ({e}): install it (Debian: apt-get install {package})")
        })?;
    find_on_path(names).ok_or_else(|| format!("apt-get installed {package}, but it is not on PATH"))
}
