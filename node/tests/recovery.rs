//! Backups and recovery with the real binary: `backup` while `serve` writes, `restore` into a
//! new home (every acknowledged write there, and a sync that resends nothing the peer had),
//! `doctor` on a broken home, bad inputs refused in one line with nothing half-written, and
//! the CLI of `share --remove` and of a delegation given again.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::{bin, poa_node_at};

/// A node's home in a temporary folder.
struct Home {
    tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Home {
    fn init(args: &[&str]) -> Home {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("home");
        let h = Home { tmp, dir };
        let mut full = vec!["init"];
        full.extend_from_slice(args);
        h.ok(&full);
        h
    }

    fn state(code: &str) -> Home {
        Home::init(&["--state", code, "--name", &format!("{code} Ministry")])
    }

    fn secretariat() -> Home {
        Home::init(&[
            "--body",
            "UNODA",
            "--kind",
            "secretariat",
            "--name",
            "UN Secretariat",
        ])
    }

    /// A folder beside the home.
    fn side(&self) -> &Path {
        self.tmp.path()
    }

    fn run(&self, args: &[&str]) -> Output {
        poa_node_at(&self.dir, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        ok_at(&self.dir, args)
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    fn id(&self) -> String {
        self.ok(&["id"]).trim().to_string()
    }

    /// `serve` on a free port.
    fn serve(&self) -> Serving {
        let mut child = Command::new(bin())
            .env_remove("POA_HOME")
            .env_remove("RUST_LOG")
            .arg("--home")
            .arg(&self.dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .expect("`serve` prints its address");
            if line.starts_with("Serving ") {
                break line
                    .split(" on ")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .unwrap()
                    .to_string();
            }
        };
        Serving { child, addr }
    }
}

fn ok_at(home: &Path, args: &[&str]) -> String {
    let out = poa_node_at(home, args);
    assert!(
        out.status.success(),
        "`poa-node {}` failed:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A running `serve`, killed when dropped.
struct Serving {
    child: Child,
    addr: String,
}

impl Serving {
    /// SIGTERM, and waits for the graceful stop.
    fn stop(mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "`serve` did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A failed command: non-zero exit, one line on stderr; that line.
fn one_line_error(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "it succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = stderr(out);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    err
}

/// Polls `f` until it returns `Some`, for at most a minute.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn target_args(id: &str) -> Vec<String> {
    [
        "target",
        "add",
        "--id",
        id,
        "--cycle",
        "BMS9",
        "--area",
        "marking",
        "--title",
        "Mark State-held SALW",
        "--indicator",
        "share marked",
        "--unit",
        "percent",
        "--direction",
        "increase",
        "--baseline",
        "40",
        "--baseline-year",
        "2023",
        "--value",
        "70",
        "--deadline",
        "2026-06-30",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The ids of the targets a home lists as published.
fn published_ids(home: &Path) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(&ok_at(home, &["target", "list", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|t| t["published"] != false)
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect()
}

/// The heads a home holds of a document.
fn doc_heads(home: &Path, doc: &str) -> Option<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(&ok_at(home, &["doc", "list", "--json"])).unwrap();
    v.as_array()?
        .iter()
        .find(|d| d["id"] == doc)
        .map(|d| d["heads"].clone())
}

/// Files in `dir` whose names start with `prefix`.
fn leftovers(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_backup_while_serving_under_writes_restores_every_acknowledged_write_and_resends_nothing() {
    let un = Home::secretariat();
    let xaa = Home::state("XAA");
    let (un_id, xaa_id) = (un.id(), xaa.id());
    un.ok(&["peer", "add", &xaa_id, "--name", "XAA", "--state", "XAA"]);
    let un_node = un.serve();
    xaa.ok(&[
        "peer",
        "add",
        &format!("{un_id}@{}", un_node.addr),
        "--name",
        "UN",
    ]);
    xaa.ok(&["share", "state/XAA", "--with", &un_id]);
    let serving = xaa.serve();

    // A loop of writes from the CLI while `serve` runs; each target counts once its publish is
    // acknowledged (exit 0).
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, dir) = (acked.clone(), stop.clone(), xaa.dir.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let id = format!("T{i}");
                let args = target_args(&id);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                ok_at(&dir, &args);
                ok_at(&dir, &["target", "publish", &id]);
                acked.lock().unwrap().push(id);
            }
        })
    };
    eventually("three acknowledged writes", || {
        (acked.lock().unwrap().len() >= 3).then_some(())
    });
    let before: Vec<String> = acked.lock().unwrap().clone();
    let file = xaa.side().join("xaa.poabak");
    let started = Instant::now();
    let report: serde_json::Value = serde_json::from_str(&xaa.ok(&[
        "backup",
        "--out",
        file.to_str().unwrap(),
        "--with-keys",
        "--json",
    ]))
    .unwrap();
    let took = started.elapsed();
    let during: Vec<String> = acked.lock().unwrap().clone();
    eventually("two more writes after the backup", || {
        (acked.lock().unwrap().len() >= during.len() + 2).then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let all: Vec<String> = acked.lock().unwrap().clone();
    eprintln!(
        "backup: {} bytes, {} documents, {} changes, {} ms ({} ms wall, with the CLI start)",
        report["bytes"],
        report["documents"],
        report["changes"],
        report["millis"],
        took.as_millis()
    );
    assert_eq!(report["with_keys"], true);
    assert!(report["documents"].as_i64().unwrap() >= 2, "{report}");
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600);
    assert!(leftovers(xaa.side(), ".poa-backup-").is_empty());

    // The Secretariat holds all of XAA's published document; then XAA's old home stops for good.
    eventually("the Secretariat in sync with XAA", || {
        let mine = doc_heads(&xaa.dir, "state/XAA")?;
        (doc_heads(&un.dir, "state/XAA")? == mine).then_some(())
    });
    serving.stop();

    let restored = xaa.side().join("restored");
    let r: serde_json::Value = serde_json::from_str(&ok_at(
        &restored,
        &["restore", file.to_str().unwrap(), "--json"],
    ))
    .unwrap();
    assert_eq!(r["node_id"], xaa_id.as_str());
    assert_eq!(r["keys_from_backup"], true);
    assert_eq!(ok_at(&restored, &["id"]).trim(), xaa_id);
    #[cfg(unix)]
    {
        assert_eq!(mode(&restored), 0o700);
        assert_eq!(mode(&restored.join("node.key")), 0o600);
        assert_eq!(mode(&restored.join("poa.db")), 0o600);
    }
    let held = published_ids(&restored);
    for id in &before {
        assert!(
            held.contains(id),
            "{id}, acknowledged before the backup, is missing: {held:?}"
        );
    }
    for id in &held {
        assert!(all.contains(id), "{id} was never acknowledged");
    }
    ok_at(&restored, &["doctor"]);

    // The restored node syncs with the Secretariat: it takes what was written after the
    // backup, and sends nothing, since the Secretariat had it all.
    let rounds: serde_json::Value =
        serde_json::from_str(&ok_at(&restored, &["sync", "--json"])).unwrap();
    let round = &rounds.as_array().unwrap()[0];
    assert_eq!(round["ok"], true, "{rounds}");
    let sent: u64 = round["report"]["sent"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    // The Secretariat speaks with shared heads the restored node does not hold (it remembers
    // what the old node held after the backup); the session then sends only what is asked for,
    // and the Secretariat had everything.
    let backup_changes = report["changes"].as_u64().unwrap();
    eprintln!("restored node's first sync: sent {sent}, of {backup_changes} changes in the backup");
    assert_eq!(sent, 0, "nothing the Secretariat had is resent: {rounds}");
    let taken = round["report"]["accepted"]["state/XAA"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        taken >= 2,
        "the writes after the backup came back: {rounds}"
    );
    // Every acknowledged write is at the Secretariat, and the restored node holds what it holds
    // of the published document (the draft's later changes lived on the old home only).
    let at_un: serde_json::Value =
        serde_json::from_str(&un.ok(&["target", "list", "--state", "XAA", "--json"])).unwrap();
    let at_un: Vec<&str> = at_un
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    for id in &all {
        assert!(
            at_un.contains(&id.as_str()),
            "{id} is missing at the Secretariat: {at_un:?}"
        );
    }
    assert_eq!(
        doc_heads(&restored, "state/XAA"),
        doc_heads(&un.dir, "state/XAA")
    );
    let again: serde_json::Value =
        serde_json::from_str(&ok_at(&restored, &["sync", "--json"])).unwrap();
    let rep = &again[0]["report"];
    assert_eq!(again[0]["ok"], true, "{again}");
    assert!(
        rep["sent"].as_object().unwrap().values().all(|v| v == 0)
            && rep["accepted"]
                .as_object()
                .unwrap()
                .values()
                .all(|v| v == 0),
        "the second round moved changes: {again}"
    );
    // And it writes again, under a new actor id, with nothing void at the Secretariat.
    let args = target_args("T900");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok_at(&restored, &args);
    ok_at(&restored, &["target", "publish", "T900"]);
    let rounds: serde_json::Value =
        serde_json::from_str(&ok_at(&restored, &["sync", "--json"])).unwrap();
    assert_eq!(rounds[0]["ok"], true, "{rounds}");
    let docs: serde_json::Value = serde_json::from_str(&un.ok(&["doc", "list", "--json"])).unwrap();
    let d = docs
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "state/XAA")
        .unwrap()
        .clone();
    assert_eq!(d["void"], 0, "{d}");
    assert_eq!(doc_heads(&restored, "state/XAA"), Some(d["heads"].clone()));
}

#[test]
fn doctor_finds_a_deleted_key_a_world_readable_key_and_a_corrupted_page() {
    let xaa = Home::state("XAA");
    for i in 0..8 {
        let id = format!("T{i}");
        let args = target_args(&id);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        xaa.ok(&args);
    }
    let healthy = xaa.ok(&["doctor"]);
    assert!(healthy.contains("looks healthy"), "{healthy}");
    let j = xaa.json(&["doctor", "--json"]);
    assert_eq!(j["ok"], true, "{j}");

    // A key others can read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = xaa.dir.join("state.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = xaa.run(&["doctor"]);
        assert!(!out.status.success());
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            text.contains("state.key can be read by other users"),
            "{text}"
        );
        assert!(text.contains("chmod 600"), "{text}");
    }

    // The node key deleted: `id` and `init` point to `doctor`, and `doctor` says what to do.
    std::fs::remove_file(xaa.dir.join("node.key")).unwrap();
    let id = one_line_error(&xaa.run(&["id"]));
    assert!(
        id.contains("node.key is missing") && id.contains("doctor"),
        "{id}"
    );
    let init = one_line_error(&xaa.run(&["init", "--state", "XAA", "--name", "again"]));
    assert!(
        init.contains("doctor") && init.contains("restore"),
        "{init}"
    );
    let out = xaa.run(&["doctor"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("node.key is missing"), "{text}");
    assert!(text.contains("poa-node restore"), "{text}");

    // A database page overwritten in the middle of the file, nothing serving: a b-tree page
    // near the middle, at its boundary.
    let db = xaa.dir.join("poa.db");
    let wal = xaa.dir.join("poa.db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "the WAL was not checkpointed"
    );
    let mut bytes = std::fs::read(&db).unwrap();
    let page = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    let page = if page == 1 { 65_536 } else { page };
    let pages = bytes.len() / page;
    assert!(pages >= 8, "only {pages} pages");
    let is_btree = |p: usize| matches!(bytes[p * page], 0x02 | 0x05 | 0x0a | 0x0d);
    let middle = (1..pages)
        .filter(|p| is_btree(*p))
        .min_by_key(|p| p.abs_diff(pages / 2))
        .unwrap();
    for b in &mut bytes[middle * page..(middle + 1) * page] {
        *b = 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    let out = xaa.run(&["doctor", "--json"]);
    assert!(!out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["ok"], false);
    let findings = j["findings"].as_array().unwrap();
    let about = |s: &str| {
        findings
            .iter()
            .find(|f| f["subject"] == s && f["severity"] == "problem")
            .unwrap_or_else(|| panic!("no problem about {s}: {j}"))
            .clone()
    };
    assert!(
        about("node.key")["problem"]
            .as_str()
            .unwrap()
            .contains("missing")
    );
    #[cfg(unix)]
    assert!(
        about("state.key")["fix"]
            .as_str()
            .unwrap()
            .contains("chmod 600")
    );
    let db_finding = about("poa.db");
    let problem = db_finding["problem"].as_str().unwrap();
    assert!(
        problem.contains("integrity") || problem.contains("malformed"),
        "{db_finding}"
    );
    assert!(db_finding["fix"].as_str().unwrap().contains("restore"));
    let err = one_line_error(&out);
    assert!(err.contains("problem(s)"), "{err}");
}

#[test]
fn bad_inputs_are_refused_in_one_line_with_nothing_half_written() {
    let xaa = Home::state("XAA");
    let args = target_args("T1");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    xaa.ok(&args);
    let side = xaa.side().to_path_buf();

    // A garbage file is no backup; the new home is not created.
    let garbage = side.join("garbage.poabak");
    let junk: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&garbage, &junk).unwrap();
    let target = side.join("new-home");
    let err = one_line_error(&poa_node_at(
        &target,
        &["restore", garbage.to_str().unwrap()],
    ));
    assert!(err.contains("is not a poa-node backup"), "{err}");
    assert!(!target.exists());
    assert!(leftovers(&side, ".poa-restore-").is_empty());

    // Backing up onto an existing file: refused, the file untouched, no temporary file left.
    let existing = side.join("precious.txt");
    std::fs::write(&existing, b"precious").unwrap();
    let err = one_line_error(&xaa.run(&["backup", "--out", existing.to_str().unwrap()]));
    assert!(
        err.contains("exists already") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(&existing).unwrap(), b"precious");
    assert!(leftovers(&side, ".poa-backup-").is_empty());
    // With --force it is replaced, by a backup readable by its owner only.
    xaa.ok(&["backup", "--out", existing.to_str().unwrap(), "--force"]);
    #[cfg(unix)]
    assert_eq!(mode(&existing), 0o600);

    // A backup without keys holds none; one with keys holds them, and the restored database
    // keeps none of their bytes.
    let node_key = std::fs::read(xaa.dir.join("node.key")).unwrap();
    let state_key = std::fs::read(xaa.dir.join("state.key")).unwrap();
    let secret = |k: &[u8]| k.trim_ascii().to_vec();
    let plain = side.join("plain.poabak");
    let out = xaa.ok(&["backup", "--out", plain.to_str().unwrap()]);
    assert!(out.contains("documents") && out.contains("bytes"), "{out}");
    let plain_bytes = std::fs::read(&plain).unwrap();
    assert!(!contains(&plain_bytes, &secret(&node_key)));
    assert!(!contains(&plain_bytes, &secret(&state_key)));
    let keyed = side.join("keyed.poabak");
    xaa.ok(&["backup", "--out", keyed.to_str().unwrap(), "--with-keys"]);
    assert!(contains(
        &std::fs::read(&keyed).unwrap(),
        &secret(&node_key)
    ));
    let home2 = side.join("home2");
    ok_at(&home2, &["restore", keyed.to_str().unwrap()]);
    let db = std::fs::read(home2.join("poa.db")).unwrap();
    assert!(
        !contains(&db, &secret(&node_key)),
        "the key's bytes stayed in poa.db"
    );
    assert!(!contains(&db, &secret(&state_key)));
    // Not into a home that holds a node.
    let err = one_line_error(&poa_node_at(&home2, &["restore", keyed.to_str().unwrap()]));
    assert!(err.contains("already holds a poa-node"), "{err}");

    // A backup without keys: refused until the operator places them, then restored.
    let home3 = side.join("home3");
    std::fs::create_dir(&home3).unwrap();
    let err = one_line_error(&poa_node_at(&home3, &["restore", plain.to_str().unwrap()]));
    assert!(
        err.contains("holds no keys") && err.contains("node.key"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(&home3).unwrap().next().is_none(),
        "something was left"
    );
    for k in ["node.key", "state.key"] {
        std::fs::copy(xaa.dir.join(k), home3.join(k)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(home3.join(k), std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }
    }
    ok_at(&home3, &["restore", plain.to_str().unwrap()]);
    assert_eq!(ok_at(&home3, &["id"]).trim(), xaa.id());
    let list: serde_json::Value =
        serde_json::from_str(&ok_at(&home3, &["target", "list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

#[test]
fn share_remove_and_a_delegation_given_again_say_what_they_did() {
    let xaa = Home::state("XAA");
    let un = Home::secretariat();
    let un_id = un.id();
    xaa.ok(&["share", "state/XAA", "--with", &un_id, "--public"]);
    let out = xaa.ok(&["share", "state/XAA", "--remove", &un_id]);
    assert!(out.contains(&format!("Removed {un_id}")), "{out}");
    assert!(out.contains("stays with it"), "{out}");
    let err = one_line_error(&xaa.run(&["share", "state/XAA", "--remove", &un_id]));
    assert!(err.contains("is not on the share list"), "{err}");
    let j = xaa.json(&["share", "state/XAA", "--remove", "public", "--json"]);
    assert_eq!(j["removed"], serde_json::json!(["*"]));
    assert_eq!(j["readers"], serde_json::json!([]));
    let err = one_line_error(&xaa.run(&["share", "state/XAA", "--remove", "pool/xanadu"]));
    assert!(err.contains("is not on the share list"), "{err}");
    let help = xaa.ok(&["share", "--help"]);
    assert!(
        help.contains("--remove") && help.contains("not a recall"),
        "{help}"
    );

    let defence = Home::init(&["--state", "XAA", "--name", "XAA Defence", "--ministry"]);
    let id = defence.id();
    let first = xaa.ok(&[
        "delegate",
        &id,
        "--scope",
        "marking",
        "--expires",
        "2027-01-31",
    ]);
    assert!(!first.contains("replaces"), "{first}");
    let again = xaa.ok(&[
        "delegate",
        &id,
        "--scope",
        "marking",
        "stockpile",
        "--expires",
        "2028-01-31",
    ]);
    assert!(
        again.contains(&format!("replaces the delegation of {id} (serial 0)")),
        "{again}"
    );
    let j = xaa.json(&["delegations", "--json"]);
    let mine: Vec<(u64, String)> = j["grants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["node"] == id.as_str())
        .map(|g| {
            (
                g["serial"].as_u64().unwrap(),
                g["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        mine,
        [(0, "replaced".to_string()), (1, "active".to_string())],
        "{j}"
    );
    let table = xaa.ok(&["delegations"]);
    assert!(
        table.contains("STATUS") && table.contains("replaced"),
        "{table}"
    );
    xaa.ok(&["revoke", &id]);
    let j = xaa.json(&["delegations", "--json"]);
    let latest = j["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["node"] == id.as_str() && g["serial"] == 1 && g["kind"] == "delegation")
        .unwrap()
        .clone();
    assert_eq!(latest["status"], "revoked", "{j}");
}
