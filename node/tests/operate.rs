//! Operating a node, with the real binary as an IT officer runs it: one `serve` per home, a
//! graceful stop on SIGTERM, errors said once, network failures explained in words a person
//! can act on, and `status` telling how each peer is doing.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{bin, poa_node_at};

/// A node's home in a temporary folder.
struct Home {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Home {
    fn init(args: &[&str]) -> Home {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("home");
        let h = Home { _tmp: tmp, dir };
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

    fn run(&self, args: &[&str]) -> Output {
        poa_node_at(&self.dir, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "`poa-node {}` failed:\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    fn id(&self) -> String {
        self.ok(&["id"]).trim().to_string()
    }

    /// `serve` on a free port, its stdout read line by line.
    fn serve(&self, extra: &[&str]) -> Serving {
        let mut child = Command::new(bin())
            .env_remove("POA_HOME")
            .env_remove("RUST_LOG")
            .arg("--home")
            .arg(&self.dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
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
        let mut s = Serving {
            child,
            lines,
            addr: String::new(),
        };
        let line = s.wait_for("Serving ");
        s.addr = line
            .split(" on ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .to_string();
        s
    }
}

/// A running `serve`, killed when dropped.
struct Serving {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Where it listens for peers (QUIC), `127.0.0.1:PORT`.
    addr: String,
}

impl Serving {
    /// The first line of stdout that starts with `prefix`.
    fn wait_for(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(e) => panic!("`serve` never printed a line starting {prefix:?}: {e}"),
            }
        }
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Waits for the process to end; its exit status and what it printed on stderr.
    fn wait(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    std::io::Read::read_to_string(&mut e, &mut err).unwrap();
                }
                return (status, err);
            }
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

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
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

fn target_add(h: &Home, id: &str) {
    h.ok(&[
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
    ]);
}

#[test]
fn a_second_serve_on_a_home_is_refused_and_sigterm_stops_the_first_gracefully() {
    let xaa = Home::state("XAA");
    let first = xaa.serve(&[]);
    let second = xaa.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert!(!second.status.success());
    let err = stderr(&second);
    assert!(
        err.contains("already runs on") && err.contains(&format!("pid {}", first.child.id())),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // A write acknowledged while serving, then SIGTERM: exit 0, and the write is there.
    target_add(&xaa, "T1");
    first.signal("TERM");
    let (status, err) = first.wait();
    assert!(status.success(), "serve ended with {status}: {err}");
    // Its log lines went to a pipe, not a terminal: no colour codes.
    assert!(err.contains("INFO") && !err.contains('\x1b'), "{err:?}");
    let listed = xaa.json(&["target", "list", "--json"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    // The lock went with the process: the home serves again, and SIGINT stops it too.
    let again = xaa.serve(&[]);
    again.signal("INT");
    let (status, err) = again.wait();
    assert!(status.success(), "serve ended with {status}: {err}");
}

#[test]
fn an_error_is_said_once() {
    let xaa = Home::state("XAA");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = xaa.run(&["serve", "--listen", "127.0.0.1:0", "--http", &addr]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(line.contains(&addr), "{line}");
    let cause = "Address already in use";
    assert_eq!(line.matches(cause).count(), 1, "{line}");
}

fn sync_error(h: &Home, peer: &str) -> String {
    let out = h.run(&["sync", "--peer", peer, "--json"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    v[0]["error"].as_str().unwrap().to_string()
}

#[test]
fn network_failures_say_what_happened_and_what_to_do() {
    let xaa = Home::state("XAA");
    let un = Home::secretariat();
    let un_node = un.serve(&[]);
    let un_id = un.id();
    let xaa_id = xaa.id();

    // UN has not pinned XAA.
    xaa.ok(&[
        "peer",
        "add",
        &format!("{un_id}@{}", un_node.addr),
        "--name",
        "UN Secretariat",
    ]);
    let e = sync_error(&xaa, &un_id);
    assert!(
        e.contains("UN Secretariat")
            && e.contains("does not know this node")
            && e.contains(&format!("poa-node peer add {xaa_id}")),
        "{e}"
    );
    // The same shows in `peer list`, in words.
    let peers = xaa.json(&["peer", "list", "--json"]);
    assert_eq!(peers[0]["last_error"].as_str(), Some(e.as_str()));

    // A pinned key, but another node answers at the address.
    let xab = Home::state("XAB");
    let xab_id = xab.id();
    xaa.ok(&[
        "peer",
        "add",
        &format!("{xab_id}@{}", un_node.addr),
        "--name",
        "XAB",
    ]);
    let e = sync_error(&xaa, &xab_id);
    assert!(
        e.contains(&format!("the node at {} is {un_id}", un_node.addr))
            && e.contains("not XAB")
            && e.contains("that you pinned"),
        "{e}"
    );

    // Nothing answers over UDP: a socket that takes the packets and never replies.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    xaa.ok(&[
        "peer",
        "add",
        &format!("{xab_id}@{silent_addr}"),
        "--name",
        "XAB",
    ]);
    let e = sync_error(&xaa, &xab_id);
    assert!(
        e.contains(&format!(
            "no answer from {silent_addr} over UDP within 10 s"
        )) && e.contains(&format!("UDP port {} open", silent_addr.port())),
        "{e}"
    );

    // A host name, as the help shows it, is accepted, and resolved when dialled.
    xaa.ok(&[
        "peer",
        "add",
        &format!("{un_id}@un.example.org:4433"),
        "--name",
        "UN Secretariat",
    ]);
    let port = un_node.addr.rsplit_once(':').unwrap().1;
    un.ok(&["peer", "add", &xaa_id, "--name", "XAA"]);
    xaa.ok(&[
        "peer",
        "add",
        &format!("{un_id}@localhost:{port}"),
        "--name",
        "UN Secretariat",
    ]);
    eventually("a sync through a host name", || {
        let out = xaa.run(&["sync", "--peer", &un_id]);
        out.status.success().then_some(())
    });
}

/// The Prometheus text of `/metrics`, parsed: each sample's name with its labels, and value.
/// Any line that is neither a comment nor `name{labels} value` fails the test.
fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "bad labels in {line:?}");
        }
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        out.insert(series.to_string(), v);
    }
    out
}

fn metric(m: &std::collections::BTreeMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

fn peer_status<'a>(st: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    st["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["node_id"] == id)
        .unwrap()
}

#[test]
fn status_and_metrics_show_how_each_peer_is_doing() {
    let xaa = Home::state("XAA");
    let un = Home::secretariat();
    let xab = Home::state("XAB");
    let (xaa_id, un_id, xab_id) = (xaa.id(), un.id(), xab.id());
    un.ok(&["peer", "add", &xaa_id, "--name", "XAA", "--state", "XAA"]);
    let un_node = un.serve(&[]);
    let xab_node = xab.serve(&[]);
    target_add(&xaa, "T1");
    xaa.ok(&["target", "publish", "T1"]);
    xaa.ok(&["share", "state/XAA", "--with", &un_id]);
    xaa.ok(&[
        "peer",
        "add",
        &format!("{un_id}@{}", un_node.addr),
        "--name",
        "UN Secretariat",
    ]);
    // XAB has not pinned XAA.
    xaa.ok(&[
        "peer",
        "add",
        &format!("{xab_id}@{}", xab_node.addr),
        "--name",
        "XAB",
    ]);
    let before = xaa.json(&["status", "--json"]);
    assert_eq!(before["node"]["serving"], false);
    assert_eq!(peer_status(&before, &un_id)["connected"], false);

    let mut served = xaa.serve(&["--http", "127.0.0.1:0"]);
    let http = served
        .wait_for("Dashboard on http://")
        .trim_start_matches("Dashboard on http://")
        .trim_end_matches('/')
        .to_string();

    // Connected and in sync with the Secretariat; XAB's refusal in words.
    let st = eventually("UN connected and in sync, XAB's refusal", || {
        let st = xaa.json(&["status", "--json"]);
        let u = peer_status(&st, &un_id);
        let b = peer_status(&st, &xab_id);
        let ok = u["connected"] == true
            && u["in_sync"] == true
            && u["last_contact"].is_i64()
            && u["traffic"]["changes_sent"].as_u64() >= Some(1)
            && u["documents"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["doc"] == "state/XAA" && d["in_sync"] == true)
            && b["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("does not know this node"));
        ok.then_some(st)
    });
    assert_eq!(st["node"]["serving"], true);
    let u = peer_status(&st, &un_id);
    assert!(u["last_contact"].as_i64().is_some(), "{u}");
    assert!(u["traffic"]["changes_sent"].as_u64().unwrap() >= 1, "{u}");
    assert!(u["traffic"]["bytes_sent"].as_u64().unwrap() > 0, "{u}");
    let b = peer_status(&st, &xab_id);
    assert_eq!(b["connected"], false);
    assert!(
        b["last_error"]
            .as_str()
            .unwrap()
            .contains(&format!("poa-node peer add {xaa_id}")),
        "{b}"
    );
    let doc = st["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["doc"] == "state/XAA")
        .unwrap();
    assert_eq!(doc["in_sync_with"], serde_json::json!(["UN Secretariat"]));
    // The human form says the same.
    let text = xaa.ok(&["status"]);
    assert!(
        text.contains("connected") && text.contains("UN Secretariat"),
        "{text}"
    );

    // /health answers; /metrics parses, and its counters move as a sync happens.
    let (line, body) = common::http_get(&http, "/health");
    assert!(line.contains("200"), "{line}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    let (line, body) = common::http_get(&http, "/metrics");
    assert!(line.contains("200"), "{line}");
    let m1 = parse_metrics(&body);
    assert!(
        metric(&m1, r#"poa_connections_total{direction="out"}"#) >= 1.0,
        "{body}"
    );
    assert!(metric(&m1, r#"poa_handshakes_refused_total{cause="wrong_key"}"#) == 0.0);
    assert!(metric(&m1, "poa_documents") >= 1.0, "{body}");
    let out1 = metric(&m1, r#"poa_bytes_total{direction="out"}"#);
    let commits1 = metric(&m1, "poa_sqlite_commit_seconds_count");
    assert!(out1 > 0.0, "{body}");
    target_add(&xaa, "T2");
    xaa.ok(&["target", "publish", "T2"]);
    let m2 = eventually("the counters to move", || {
        let (_, body) = common::http_get(&http, "/metrics");
        let m = parse_metrics(&body);
        (metric(&m, r#"poa_bytes_total{direction="out"}"#) > out1).then_some(m)
    });
    assert!(metric(&m2, r#"poa_frames_total{direction="out"}"#) > 0.0);
    assert!(metric(&m2, "poa_sqlite_commit_seconds_count") >= commits1);
    let (line, page) = common::http_get(&http, "/status");
    assert!(
        line.contains("200") && page.contains("UN Secretariat"),
        "{line}"
    );

    // The Secretariat stops: disconnected, with its last contact kept; still so after
    // XAA restarts.
    un_node.signal("TERM");
    let (status, err) = un_node.wait();
    assert!(status.success(), "{err}");
    eventually("UN shown disconnected", || {
        let st = xaa.json(&["status", "--json"]);
        let u = peer_status(&st, &un_id);
        (u["connected"] == false && u["last_contact"].as_i64().is_some()).then_some(())
    });
    served.signal("TERM");
    let (status, err) = served.wait();
    assert!(status.success(), "{err}");
    let st = xaa.json(&["status", "--json"]);
    let u = peer_status(&st, &un_id);
    assert_eq!(u["connected"], false);
    assert!(u["last_contact"].as_i64().is_some(), "{u}");
    assert!(u["traffic"]["bytes_sent"].as_u64().unwrap() > 0, "{u}");
}

#[test]
fn json_logs_give_one_line_per_connection_and_per_refusal_with_fields() {
    let un = Home::secretariat();
    let xaa = Home::state("XAA");
    let xab = Home::state("XAB");
    let (un_id, xaa_id, xab_id) = (un.id(), xaa.id(), xab.id());
    un.ok(&["peer", "add", &xaa_id, "--name", "XAA"]);
    let node = un.serve(&["--log-format", "json"]);
    for h in [&xaa, &xab] {
        h.ok(&[
            "peer",
            "add",
            &format!("{un_id}@{}", node.addr),
            "--name",
            "UN",
        ]);
    }
    target_add(&xaa, "T1");
    xaa.ok(&["sync"]);
    assert!(!xab.run(&["sync"]).status.success());
    // A moment for the last lines: the refusal is logged as the handshake fails, before the
    // client hears of it, and the connection's end as soon as the round closes.
    eventually("the serving node to have closed XAA's connection", || {
        let st = un.json(&["status", "--json"]);
        (peer_status(&st, &xaa_id)["connected"] == false).then_some(())
    });
    node.signal("TERM");
    let (status, err) = node.wait();
    assert!(status.success(), "{err}");
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    let find = |message: &str| {
        lines
            .iter()
            .find(|l| l["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line in:\n{err}"))
    };
    let short = |id: &str| id[..7].to_string();
    let connected = find("connected");
    assert_eq!(connected["fields"]["peer"], short(&xaa_id));
    assert_eq!(connected["fields"]["direction"], "in");
    let ended = find("connection ended");
    assert_eq!(ended["fields"]["peer"], short(&xaa_id));
    assert!(
        ended["fields"]["bytes_received"].as_u64() > Some(0),
        "{ended}"
    );
    assert_eq!(ended["level"], "INFO");
    let refused = find("refused a handshake");
    assert_eq!(refused["fields"]["key"], xab_id);
    assert_eq!(refused["fields"]["cause"], "client key is not pinned");
    assert_eq!(refused["level"], "WARN");
}

#[test]
fn long_work_shows_progress_on_a_terminal_and_nothing_when_piped() {
    let un = Home::secretariat();
    let xaa = Home::state("XAA");
    let (un_id, xaa_id) = (un.id(), xaa.id());
    un.ok(&["peer", "add", &xaa_id, "--name", "XAA"]);
    let node = un.serve(&[]);
    xaa.ok(&[
        "peer",
        "add",
        &format!("{un_id}@{}", node.addr),
        "--name",
        "UN",
    ]);
    // Piped: only the command's own output.
    let piped = xaa.run(&["sync"]);
    assert!(piped.status.success());
    assert_eq!(stderr(&piped), "");
    // On a terminal (a pseudo-terminal from `script`): the spinner says what it is doing.
    if common::on_path("script").is_none() {
        println!("`script` is not installed: the terminal case is not tried in this run");
        return;
    }
    let line = format!("{} --home {} sync", bin().display(), xaa.dir.display());
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let shown = stdout(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("Syncing with 1 peer(s)"), "{shown:?}");
    assert!(shown.contains("UN: received"), "{shown:?}");
}

#[test]
fn a_peer_that_restarts_is_given_up_within_the_idle_timeout_and_reconnected() {
    let un = Home::secretariat();
    let xaa = Home::state("XAA");
    let (un_id, xaa_id) = (un.id(), xaa.id());
    un.ok(&["peer", "add", &xaa_id, "--name", "XAA"]);
    let mut first = un.serve(&[]);
    let addr = first.addr.clone();
    xaa.ok(&["peer", "add", &format!("{un_id}@{addr}"), "--name", "UN"]);
    // XAA serving, its JSON log lines read as they come.
    let mut xaa_node = Command::new(bin())
        .env_remove("POA_HOME")
        .env_remove("RUST_LOG")
        .arg("--home")
        .arg(&xaa.dir)
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, logs) = mpsc::channel::<serde_json::Value>();
    let err = xaa_node.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line)
                && tx.send(v).is_err()
            {
                break;
            }
        }
    });
    let next = |message: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = logs
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no {message:?} line: {e}"));
            if line["fields"]["message"] == message {
                return line;
            }
        }
    };
    next("connected");
    // UN dies without a word and comes back on the same address.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let killed = Instant::now();
    let mut again = Command::new(bin())
        .env_remove("POA_HOME")
        .env_remove("RUST_LOG")
        .arg("--home")
        .arg(&un.dir)
        .args(["serve", "--listen", &addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = again.stdout.take().unwrap();
    let serving = std::io::BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("Serving "));
    assert!(serving, "UN did not serve again");
    let back_after = killed.elapsed();
    // XAA hears of the restart from the new process (a stateless reset, which only a node
    // holding UN's key can make), or at worst from 10 s of silence, and connects again. The
    // reset is what usually happens; on a loaded machine one run in five here fell back to the
    // idle timeout, for a reason not yet found, so the test asserts only the bound.
    let failed = next("could not sync with peer");
    let cause = failed["fields"]["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains("UN")
            && (cause.contains("restarted while connected")
                || cause.contains("stopped answering for 10 s")),
        "back after {back_after:?}: {failed}"
    );
    println!("UN back after {back_after:?}; XAA said: {cause}");
    next("connected");
    let _ = again.kill();
    let _ = again.wait();
    let _ = xaa_node.kill();
    let _ = xaa_node.wait();
}
