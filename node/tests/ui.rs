//! The web UI in real headless Chromium, driven like a person through WebDriver (Debian's
//! chromium-driver, installed if missing): open the token link, add a target, meet a
//! validation error beside its field, fix it, report progress with an uploaded evidence file,
//! open the printable submission, publish, and find the target at the Secretariat's node after
//! a sync. Then, without the browser: every write without the session, from a forged `Host` or
//! `Origin`, or without the CSRF token is refused and writes nothing.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Desk;
use serde_json::{Value, json};

/// `poa-node serve --ui` on a home; killed when dropped.
struct Serving {
    child: Child,
    /// The QUIC address.
    quic: String,
    /// The token link the command printed.
    link: String,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_ui(home: &Path) -> Serving {
    let mut child = Command::new(common::bin())
        .env_remove("POA_HOME")
        .env_remove("RUST_LOG")
        .arg("--home")
        .arg(home)
        .args(["serve", "--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut quic, mut link) = (None, None);
    while quic.is_none() || link.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("serve prints its addresses");
        if let Some(rest) = line.strip_prefix("Serving ") {
            quic = rest
                .split(" on ")
                .nth(1)
                .map(|a| a.split(' ').next().unwrap().to_string());
        }
        if let Some(url) = line.strip_prefix("UI on ") {
            link = Some(url.trim().to_string());
        }
    }
    Serving {
        child,
        quic: quic.unwrap(),
        link: link.unwrap(),
    }
}

// ---------------------------------------------------------------------------------------------
// A small WebDriver client: JSON over HTTP/1.1 to chromedriver on loopback.
// ---------------------------------------------------------------------------------------------

struct Driver {
    child: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open: read the head, then Content-Length bytes.
    let mut r = BufReader::new(s);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).map_err(|e| e.to_string())?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().map_err(|e| format!("{e}"))?;
        }
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&body)))
}

impl Driver {
    fn start() -> Driver {
        let chromium = common::installed(&common::CHROMIUM, "chromium");
        let driver = common::installed(&["chromedriver"], "chromium-driver");
        let port = {
            // A free port for chromedriver, which takes one only as a number.
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let up = (0..600).any(|_| {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
            false
        });
        assert!(up, "chromedriver did not start");
        let profile = tempfile::tempdir().unwrap();
        // Finding an element waits for it up to 20 s (a click that submits a form returns
        // before the next page is there): a deadline, not a sleep.
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "timeouts": {"implicit": 20000},
            "goog:chromeOptions": {
                "binary": chromium.to_str().unwrap(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--disable-component-update",
                         "--no-first-run", format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let v = http(port, "POST", "/session", Some(&caps)).unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Driver {
            child,
            port,
            session,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let v = http(self.port, method, path, body).unwrap();
        assert!(
            v["value"].get("error").is_none(),
            "{method} {path}: {}",
            v["value"]
        );
        v["value"].clone()
    }

    fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    fn go(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(&json!({"url": url})));
    }

    fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            &self.s("/element"),
            Some(&json!({"using": "css selector", "value": css})),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.call(
            "POST",
            &self.s(&format!("/element/{e}/clear")),
            Some(&json!({})),
        );
        self.call(
            "POST",
            &self.s(&format!("/element/{e}/value")),
            Some(&json!({"text": text})),
        );
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.call(
            "POST",
            &self.s(&format!("/element/{e}/click")),
            Some(&json!({})),
        );
    }

    fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.call("GET", &self.s(&format!("/element/{e}/text")), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn source(&self) -> String {
        self.call("GET", &self.s("/source"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// A raw HTTP request to the UI, headers as given; the status code and the body.
fn raw(addr: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

fn post(addr: &str, host: &str, origin: Option<&str>, cookie: Option<&str>, body: &str) -> u16 {
    let mut req = format!(
        "POST /targets/new HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(o) = origin {
        req.push_str(&format!("Origin: {o}\r\n"));
    }
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    raw(addr, &req).0
}

fn target_ids(d: &Desk) -> Vec<String> {
    d.json(&["target", "list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_point_of_contact_enters_corrects_and_publishes_in_a_browser() {
    let xaa = Desk::new();
    let un_tmp = tempfile::tempdir().unwrap();
    let un_home = un_tmp.path().join("un");
    let un = |args: &[&str]| {
        let out = common::poa_node_at(&un_home, args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    un(&[
        "init",
        "--body",
        "UNODA",
        "--kind",
        "secretariat",
        "--name",
        "UN Secretariat",
    ]);
    let id_of = |v: Value| v["node_id"].as_str().unwrap().to_string();
    let un_id = id_of(serde_json::from_str(&un(&["id", "--json"])).unwrap());
    let xaa_id = id_of(xaa.json(&["id", "--json"]));
    xaa.ok(&["peer", "add", &un_id, "--name", "Secretariat"]);
    xaa.ok(&["share", "state/XAA", "--with", &un_id]);
    let served = serve_ui(&xaa.home);
    un(&[
        "peer",
        "add",
        &format!("{xaa_id}@{}", served.quic),
        "--state",
        "XAA",
        "--name",
        "XAA",
    ]);
    let base = served.link.split("/login").next().unwrap().to_string();

    let evidence = xaa.dir().join("marking-register-2025.pdf");
    std::fs::write(&evidence, b"%PDF-1.4 the national marking register, 2025").unwrap();
    let digest = poa_node::evidence::sha256_file(&evidence).unwrap();

    let b = Driver::start();
    b.go(&served.link);
    assert!(b.source().contains("No targets yet"), "{}", b.source());
    b.go(&format!("{base}/targets/new"));
    for (field, value) in [
        ("#id", "T1"),
        ("#area", "marking"),
        ("#title", "Mark State-held SALW"),
        ("#indicator", "share of State-held SALW marked"),
        ("#unit", "percent"),
        ("#direction", "increase"),
        ("#baseline", "40"),
        ("#baseline_year", "2023"),
        ("#value", "180"),
        ("#deadline", "2026-06-30"),
        ("#mosaic", "05.30"),
    ] {
        b.type_into(field, value);
    }
    b.click("#save");
    // The error is beside the field, and nothing was written.
    assert!(
        b.text("#error-value").contains("0 to 100"),
        "{}",
        b.source()
    );
    assert!(target_ids(&xaa).is_empty());
    b.type_into("#value", "70");
    b.click("#save");
    assert!(b.text("#saved").contains("T1"), "{}", b.source());

    b.go(&format!("{base}/progress/new?target=T1"));
    b.type_into("#as_of", "2025-12-31");
    b.type_into("#value", "55");
    b.type_into("#evidence", "https://example.org/marking-register-2025.pdf");
    b.type_into("#evidence_file", evidence.to_str().unwrap());
    b.click("#save");
    assert!(b.text("#saved").contains(&digest), "{}", b.source());

    // The report is corrected while a draft, its evidence kept.
    b.go(&format!("{base}/"));
    b.click("a[href='/progress/edit?id=T1/2025-12-31']");
    b.type_into("#value", "56");
    b.click("#save");
    assert!(b.text("#saved").contains("corrected"), "{}", b.source());
    let report = xaa.json(&["submission", "show", "--format", "json"]);
    assert!(report.to_string().contains(&digest), "the evidence is kept");
    assert!(report.to_string().contains("56"), "{report}");

    b.go(&format!("{base}/submission"));
    let page = b.source();
    assert!(
        page.contains("DRAFT") && page.contains("Mark State-held SALW"),
        "{page}"
    );
    assert!(
        page.contains(&digest),
        "the evidence's digest is in the submission"
    );

    b.go(&format!("{base}/publish"));
    let pending = b.text("#pending");
    assert!(pending.contains("new target T1"), "{pending}");
    assert!(
        pending.contains("new progress report T1/2025-12-31"),
        "{pending}"
    );
    b.click("#publish");
    assert!(
        b.text("#published").contains("Published 2 record(s)"),
        "{}",
        b.source()
    );

    // The Secretariat's node syncs and holds the target.
    un(&["sync"]);
    let held: Value =
        serde_json::from_str(&un(&["target", "list", "--state", "XAA", "--json"])).unwrap();
    assert_eq!(held[0]["id"], "T1", "{held}");
    assert_eq!(held[0]["value"], 70.0);

    // Without the browser: every way in but the operator's is refused, and writes nothing.
    let addr = base.trim_start_matches("http://").to_string();
    let (code, login) = raw(
        &addr,
        &format!(
            "GET {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
            served.link.trim_start_matches(&base)
        ),
    );
    assert_eq!(code, 303);
    let cookie = login
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    assert!(
        login
            .to_ascii_lowercase()
            .contains("httponly; samesite=strict"),
        "{login}"
    );
    let (_, form) = raw(
        &addr,
        &format!(
            "GET /targets/new HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        ),
    );
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let body = |csrf: &str| {
        format!(
            "csrf={csrf}&id=T9&cycle=BMS9&area=marking&title=Forged&kind=milestone&indicator=x&deadline=2026-06-30"
        )
    };
    let origin = format!("http://{addr}");
    let cases = [
        (
            "no session",
            post(&addr, &addr, Some(&origin), None, &body(&csrf)),
            401,
        ),
        (
            "a wrong token",
            raw(
                &addr,
                &format!(
                    "GET /login?token=0000 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
                ),
            )
            .0,
            401,
        ),
        (
            "a forged Host",
            post(
                &addr,
                "evil.example:80",
                Some(&origin),
                Some(&cookie),
                &body(&csrf),
            ),
            421,
        ),
        (
            "a forged Origin",
            post(
                &addr,
                &addr,
                Some("http://evil.example"),
                Some(&cookie),
                &body(&csrf),
            ),
            403,
        ),
        (
            "no Origin",
            post(&addr, &addr, None, Some(&cookie), &body(&csrf)),
            403,
        ),
        (
            "no CSRF token",
            post(&addr, &addr, Some(&origin), Some(&cookie), &body("")),
            403,
        ),
        (
            "a wrong CSRF token",
            post(
                &addr,
                &addr,
                Some(&origin),
                Some(&cookie),
                &body(&"0".repeat(64)),
            ),
            403,
        ),
    ];
    for (what, got, want) in cases {
        assert_eq!(got, want, "{what}");
    }
    assert_eq!(target_ids(&xaa), ["T1"], "nothing was written");
    // The same request with everything in order is taken: the refusals above were the guard's.
    assert_eq!(
        post(&addr, &addr, Some(&origin), Some(&cookie), &body(&csrf)),
        200
    );
    assert_eq!(target_ids(&xaa), ["T1", "T9"]);
    // The token file is the operator's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(xaa.home.join("ui.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// A form sent to the UI as the operator's page would: the session's cookie, the UI's own
/// `Host` and `Origin`; the status and the body.
fn post_form(addr: &str, path: &str, cookie: &str, body: &str) -> (u16, String) {
    raw(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nCookie: {cookie}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn get_page(addr: &str, path: &str, cookie: &str) -> (u16, String) {
    raw(
        addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        ),
    )
}

fn offers_of(d: &Desk) -> Vec<(String, String, String)> {
    d.json(&["offer", "list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let s = |k: &str| o[k].as_str().unwrap().to_string();
            (s("id"), s("title"), s("status"))
        })
        .collect()
}

/// The operator's session on a served UI: its address, cookie and CSRF token.
fn operator(served: &Serving) -> (String, String, String) {
    let base = served.link.split("/login").next().unwrap().to_string();
    let addr = base.trim_start_matches("http://").to_string();
    let (code, login) = raw(
        &addr,
        &format!(
            "GET {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
            served.link.trim_start_matches(&base)
        ),
    );
    assert_eq!(code, 303);
    let cookie = login
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    let (_, form) = get_page(&addr, "/withdraw", &cookie);
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    (addr, cookie, csrf)
}

#[test]
fn a_donor_enters_corrects_publishes_and_withdraws_an_offer_in_the_ui() {
    let xzz = Desk::body();
    let served = serve_ui(&xzz.home);
    let (addr, cookie, csrf) = operator(&served);
    let offer = |extra: &str| {
        format!("csrf={csrf}&id=O1&title=Marking+training&areas=marking&kinds=training{extra}")
    };
    // A bad value: the message beside its field, nothing written.
    let (code, page) = post_form(&addr, "/offers/new", &cookie, &offer("&budget_max=lots"));
    assert_eq!(code, 200);
    assert!(page.contains("id=\"error-budget_max\""), "{page}");
    assert!(offers_of(&xzz).is_empty());
    // Fixed, it is saved to the draft, with the check's warning (no currency) shown.
    let (_, page) = post_form(&addr, "/offers/new", &cookie, &offer("&budget_max=150000"));
    assert!(page.contains("id=\"saved\""), "{page}");
    assert!(page.contains("currency"), "{page}");
    assert_eq!(
        offers_of(&xzz),
        [("O1".into(), "Marking training".into(), "draft".into())]
    );
    // Corrected while a draft.
    let (code, page) = get_page(&addr, "/offers/O1/edit", &cookie);
    assert_eq!(code, 200);
    assert!(page.contains("value=\"Marking training\""), "{page}");
    let (_, page) = post_form(
        &addr,
        "/offers/O1/edit",
        &cookie,
        &format!(
            "csrf={csrf}&title=Marking+kits&areas=marking&kinds=training&budget_max=150000&currency=USD"
        ),
    );
    assert!(page.contains("id=\"saved\""), "{page}");
    assert_eq!(offers_of(&xzz)[0].1, "Marking kits");
    // Published after the preview, from the page's button.
    let (_, page) = get_page(&addr, "/publish", &cookie);
    assert!(page.contains("new offer O1"), "{page}");
    let (_, page) = post_form(&addr, "/publish", &cookie, &format!("csrf={csrf}&count=1"));
    assert!(page.contains("id=\"published\""), "{page}");
    assert_eq!(offers_of(&xzz)[0].2, "published");
    // Published: no correction any more, a withdrawal with its reason instead.
    let (_, page) = get_page(&addr, "/", &cookie);
    assert!(page.contains("/withdraw?kind=offers&amp;id=O1"), "{page}");
    let (code, _) = get_page(&addr, "/offers/O1/edit", &cookie);
    assert_eq!(code, 404);
    let (_, page) = post_form(
        &addr,
        "/withdraw",
        &cookie,
        &format!("csrf={csrf}&kind=offers&id=O1&reason=budget+spent"),
    );
    assert!(page.contains("id=\"saved\""), "{page}");
    assert_eq!(offers_of(&xzz)[0].2, "withdrawal pending");
    // Without the CSRF token, nothing is written.
    let (code, _) = post_form(
        &addr,
        "/offers/new",
        &cookie,
        "id=O2&title=x&areas=marking&kinds=training",
    );
    assert_eq!(code, 403);
    assert_eq!(offers_of(&xzz).len(), 1);
}

#[test]
fn a_request_is_corrected_while_a_draft_and_withdrawn_once_published_in_the_ui() {
    let xaa = Desk::new();
    let served = serve_ui(&xaa.home);
    let (addr, cookie, csrf) = operator(&served);
    let need = |extra: &str| {
        format!("csrf={csrf}&id=R1&title=Marking+kits&area=marking&kind=equipment{extra}")
    };
    let (_, page) = post_form(&addr, "/needs/new", &cookie, &need(""));
    assert!(page.contains("id=\"saved\""), "{page}");
    let (code, page) = get_page(&addr, "/needs/R1/edit", &cookie);
    assert_eq!(code, 200);
    assert!(page.contains("value=\"Marking kits\""), "{page}");
    let (_, page) = post_form(&addr, "/needs/R1/edit", &cookie, &need("&cost=bad"));
    assert!(page.contains("id=\"error-cost\""), "{page}");
    let (_, page) = post_form(
        &addr,
        "/needs/R1/edit",
        &cookie,
        &need("&cost=25000&currency=USD"),
    );
    assert!(page.contains("id=\"saved\""), "{page}");
    let cost = |d: &Desk| d.json(&["need", "list", "--json"])[0]["cost"].clone();
    assert_eq!(cost(&xaa), 25000.0);
    xaa.ok(&["need", "publish", "R1"]);
    let (code, _) = get_page(&addr, "/needs/R1/edit", &cookie);
    assert_eq!(code, 404, "a published request is not corrected");
    let (_, page) = get_page(&addr, "/", &cookie);
    assert!(page.contains("/withdraw?kind=needs&amp;id=R1"), "{page}");
    let (_, page) = post_form(
        &addr,
        "/withdraw",
        &cookie,
        &format!("csrf={csrf}&kind=needs&id=R1&reason=met+by+the+budget"),
    );
    assert!(page.contains("id=\"saved\""), "{page}");
    let preview = xaa.json(&["submission", "publish", "--dry-run", "--json"]);
    assert_eq!(
        preview["pending"][0]["kind"], "need-withdrawal",
        "{preview}"
    );
}
