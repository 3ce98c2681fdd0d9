//! The dashboard and the HTML report in a real browser: headless Chromium loads the pages a
//! running node serves, and the report file, and the test checks that the charts and the key
//! figures are on the page as the browser parsed it. Chromium is installed (Debian's package)
//! when it is missing, once, however many tests or test processes ask for it at the same time.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;
use common::{bin as poa_node_bin, poa_node_at};

fn demo_homes() -> &'static Path {
    common::demo_homes(concat!(env!("CARGO_TARGET_TMPDIR"), "/browser-demo"))
}

/// Chromium, installed with apt-get if it is missing (see [`common::installed`]).
fn chromium() -> PathBuf {
    common::installed(&common::CHROMIUM, "chromium")
}

/// Loads `url` in headless Chromium and returns the DOM as the browser built it.
fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    // The DOM is complete when Chromium closes its output, that is when it exits.
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        let _ = tx.send(s);
    });
    match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(dom) => {
            let _ = child.wait();
            dom
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish loading {url} in 90 s");
        }
    }
}

/// `poa-node serve --http` on the Secretariat's demo home; killed when dropped.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_dashboard() -> Served {
    let mut child = Command::new(poa_node_bin())
        .env_remove("POA_HOME")
        .arg("--home")
        .arg(demo_homes().join("secretariat"))
        .args(["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("poa-node serve starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("Dashboard on ") {
                let _ = tx.send(url.trim_end_matches('/').to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the node prints the dashboard's address");
    Served { child, url }
}

/// A plain HTTP/1.1 GET: status line and body.
fn get(url: &str, path: &str) -> (String, String) {
    let host = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

fn has_chart(dom: &str, id: &str) -> bool {
    dom.find(&format!("<svg id=\"{id}\"")).is_some_and(|at| {
        dom[at..]
            .split("</svg>")
            .next()
            .is_some_and(|svg| svg.contains("<rect"))
    })
}

#[test]
fn chromium_shows_the_dashboard_with_its_charts_and_figures() {
    let served = serve_dashboard();
    let dom = dump_dom(&format!("{}/", served.url));
    assert!(dom.contains("Stocktake BMS9"), "{dom}");
    for chart in [
        "chart-areas",
        "chart-pooled",
        "chart-trends",
        "chart-regional",
    ] {
        assert!(has_chart(&dom, chart), "no {chart} with bars:\n{dom}");
    }
    assert!(dom.contains("1,800 of 8,000 weapons"), "{dom}");
    assert!(dom.contains("XAB/R1"), "{dom}");
    assert!(dom.contains("shortfall") && dom.contains("target lowered from 25 to 20 percent"));
    assert!(dom.contains("States reported progress"));

    let dom = dump_dom(&format!("{}/pools/xanadu", served.url));
    assert!(
        dom.contains("not counted: contributed no destruction target"),
        "{dom}"
    );
    let dom = dump_dom(&format!("{}/states/XAB", served.url));
    assert!(
        dom.contains("Raise the tracing rate of seized weapons (revised)"),
        "{dom}"
    );
    let dom = dump_dom(&format!("{}/needs", served.url));
    assert!(dom.contains("Destruction equipment"), "{dom}");

    // The JSON API behind the pages is the CLI's canonical report, byte for byte.
    let (status, body) = get(&served.url, "/api/stocktake?cycle=BMS9&as_of=2026-11-27");
    assert!(status.contains("200"), "{status}");
    let cli = poa_node_at(
        &demo_homes().join("secretariat"),
        &[
            "stocktake",
            "--cycle",
            "BMS9",
            "--as-of",
            "2026-11-27",
            "--format",
            "json",
        ],
    );
    assert_eq!(body.as_bytes(), cli.stdout.as_slice());
    let (status, _) = get(&served.url, "/api/states/QQQ");
    assert!(status.contains("404"), "{status}");
    let (status, _) = get(&served.url, "/?cycle=BMS99");
    assert!(status.contains("400"), "{status}");
}

#[test]
fn chromium_shows_the_html_report_file_with_its_charts_and_figures() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bms9.html");
    let out = poa_node_at(
        &demo_homes().join("secretariat"),
        &[
            "stocktake",
            "--cycle",
            "BMS9",
            "--format",
            "html",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let dom = dump_dom(&format!("file://{}", file.display()));
    for chart in ["chart-areas", "chart-pooled", "chart-trends"] {
        assert!(has_chart(&dom, chart), "no {chart} with bars:\n{dom}");
    }
    assert!(dom.contains("1,800 of 8,000 weapons"), "{dom}");
    assert!(dom.contains("XAB/R1"));
    assert!(dom.contains("Sources"));
    // Self-contained: nothing to fetch.
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("src=\"http") && !text.contains("href=\"http"),
        "the report links out"
    );
}
