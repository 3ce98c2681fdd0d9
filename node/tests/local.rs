//! Local hardening, with the real binary: the dashboard answers only to its own name (no DNS
//! rebinding) and never serves a draft, a key file others can read is refused, and the home and
//! the database are the owner's only.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{bin, poa_node_at};

struct Served(Child, String);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(home: &Path) -> Served {
    let mut child = Command::new(bin())
        .env_remove("POA_HOME")
        .arg("--home")
        .arg(home)
        .args(["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("Dashboard on http://") {
                let _ = tx.send(url.trim_end_matches('/').to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    Served(child, addr)
}

fn get(addr: &str, host: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

fn ok(home: &Path, args: &[&str]) {
    let out = poa_node_at(home, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn l3_the_dashboard_answers_only_to_its_own_name_and_never_shows_a_draft() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("xaa");
    ok(&home, &["init", "--state", "XAA", "--name", "XAA Ministry"]);
    for id in ["T1", "T2"] {
        ok(
            &home,
            &[
                "target",
                "add",
                "--id",
                id,
                "--cycle",
                "BMS9",
                "--area",
                "marking",
                "--title",
                "Mark",
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
            ],
        );
    }
    ok(&home, &["target", "publish", "T2"]);
    let served = serve(&home);
    let addr = &served.1;
    let (status, body) = get(addr, addr, "/api/states/XAA");
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("\"T2\""), "{body}");
    assert!(!body.contains("\"T1\""), "the draft T1 was served: {body}");
    let port = addr.rsplit_once(':').unwrap().1;
    let (status, _) = get(addr, &format!("localhost:{port}"), "/");
    assert!(status.contains("200"), "{status}");
    for forged in [
        format!("evil.example:{port}"),
        "evil.example".into(),
        String::new(),
    ] {
        let (status, body) = get(addr, &forged, "/api/states/XAA");
        assert!(status.contains("421"), "Host '{forged}': {status}");
        assert!(!body.contains("T2"), "{body}");
    }
}

#[cfg(unix)]
#[test]
fn l4_keys_others_can_read_are_refused_and_the_home_is_the_owners() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("xaa");
    ok(&home, &["init", "--state", "XAA", "--name", "XAA Ministry"]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&home.join("poa.db")), 0o600);
    assert_eq!(mode(&home.join("node.key")), 0o600);
    std::fs::set_permissions(
        home.join("state.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = poa_node_at(&home, &["id"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("can be read by other users") && err.contains("chmod 600"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn l4_text_from_documents_reaches_the_terminal_without_its_control_characters() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("xaa");
    ok(&home, &["init", "--state", "XAA", "--name", "XAA Ministry"]);
    ok(
        &home,
        &[
            "need",
            "add",
            "--id",
            "R1",
            "--title",
            "Equipment\u{1b}[2J",
            "--area",
            "marking",
            "--kind",
            "training",
        ],
    );
    let out = poa_node_at(&home, &["need", "list"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("\\u{1b}"), "{text:?}");
}
