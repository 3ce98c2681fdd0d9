//! The web UI for the node's own records (`poa-node serve --ui`, `poa-node ui`): on a State's
//! node, forms to enter and correct targets, progress reports (with an evidence file whose
//! SHA-256 is computed here) and requests, and to withdraw published reports and requests; on a
//! body's node, its offers the same way; the checks' findings beside each field, the printable
//! submission, and the publish preview with its button. Every write goes through [`Node`] and
//! the gate like the CLI's.
//!
//! Only the node's operator gets in: a random token kept in the home folder (`ui.token`, 0600)
//! opens a session (a cookie, HttpOnly and SameSite=Strict); every form carries the session's
//! CSRF token; `Host` must be the address the UI is bound to and, on a write, `Origin` that
//! same address. Plain server-rendered HTML: no script.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Multipart, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use poa_protocol::checks::Finding;
use poa_protocol::model::{
    AssistanceKind, Evidence, Need, Offer, Priority, Progress, Target, check_text,
};
use poa_protocol::submission::summary;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::cli::TargetFields;
use crate::html_kit::{esc, html_table, page};
use crate::node::NodeError;
use crate::records::Selection;
use crate::sync::Engine;

/// A running UI.
#[derive(Debug)]
pub struct Ui {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Ui {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it and waits for it to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The token that opens the UI, kept in the home folder (created on first use, 0600).
pub fn token(home: &std::path::Path) -> std::io::Result<String> {
    let path = home.join("ui.token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(std::io::Error::other(format!(
                    "{} is readable by other users: run `chmod 600 {}`",
                    path.display(),
                    path.display()
                )));
            }
        }
        let t = t.trim().to_string();
        if t.len() >= 32 {
            return Ok(t);
        }
    }
    let t = random_hex()?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    let mut f = opts.open(&path)?;
    f.write_all(t.as_bytes())?;
    f.sync_all()?;
    Ok(t)
}

fn random_hex() -> std::io::Result<String> {
    let b: [u8; 32] = crate::home::random().map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(crate::format::hex(&b))
}

struct App {
    engine: Arc<Engine>,
    token: String,
    /// Session id → its CSRF token.
    sessions: Mutex<HashMap<String, String>>,
    allowed: Vec<String>,
}

type Shared = State<Arc<App>>;

/// Serves the UI for `engine`'s node on `addr`, opened by `token`.
pub async fn ui(engine: Arc<Engine>, addr: SocketAddr, token: String) -> std::io::Result<Ui> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let app = Arc::new(App {
        engine,
        token,
        sessions: Mutex::new(HashMap::new()),
        allowed: crate::dashboard::allowed_hosts(addr),
    });
    let router = Router::new()
        .route("/login", get(login))
        .route("/", get(home))
        .route("/targets/new", get(target_form).post(target_post))
        .route(
            "/targets/{id}/edit",
            get(target_edit_form).post(target_edit_post),
        )
        .route("/progress/new", get(progress_form).post(progress_post))
        .route(
            "/progress/edit",
            get(progress_edit_form).post(progress_edit_post),
        )
        .route("/needs/new", get(need_form).post(need_post))
        .route("/needs/{id}/edit", get(need_edit_form).post(need_edit_post))
        .route("/withdraw", get(withdraw_form).post(withdraw_post))
        .route("/offers/new", get(offer_form).post(offer_post))
        .route(
            "/offers/{id}/edit",
            get(offer_edit_form).post(offer_edit_post),
        )
        .route("/submission", get(submission))
        .route("/publish", get(publish_form).post(publish_post))
        .layer(axum::extract::DefaultBodyLimit::max(32 << 20))
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app);
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.changed().await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(cause = %e, "the UI stopped");
        }
    });
    Ok(Ui { addr, stop, task })
}

/// Every request: `Host` is the UI's own address; a write comes from a page of the UI
/// (`Origin`), within a session, with the session's CSRF token (checked by each form).
async fn guard(State(app): Shared, req: Request, next: Next) -> Response {
    if let Err(why) = crate::dashboard::check_host(&req, &app.allowed) {
        return (StatusCode::MISDIRECTED_REQUEST, why).into_response();
    }
    if req.method() != axum::http::Method::GET {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if origin != format!("http://{host}") {
            return refused(
                StatusCode::FORBIDDEN,
                "this form was not sent from a page of this UI (Origin): nothing written",
            );
        }
    }
    if req.uri().path() != "/login" && session(&app, req.headers()).is_none() {
        return refused(
            StatusCode::UNAUTHORIZED,
            "open the link `poa-node serve --ui` printed (it carries this node's token)",
        );
    }
    next.run(req).await
}

fn refused(status: StatusCode, why: &str) -> Response {
    let body = page(
        "poa-node",
        status.as_str(),
        "",
        &format!("<section><h2>{status}</h2><p>{}</p></section>", esc(why)),
        None,
    );
    (status, Html(body)).into_response()
}

/// The session of a request, and its CSRF token.
fn session(app: &App, headers: &HeaderMap) -> Option<(String, String)> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let sid = cookies
        .split(';')
        .filter_map(|c| c.trim().strip_prefix("poa_ui="))
        .next()?;
    let sessions = app.sessions.lock().ok()?;
    sessions
        .get(sid)
        .map(|csrf| (sid.to_string(), csrf.clone()))
}

fn same(a: &str, b: &str) -> bool {
    // Length and every byte compared, whatever differs first.
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    token: Option<String>,
}

async fn login(State(app): Shared, Query(q): Query<LoginQuery>) -> Response {
    if !q.token.as_deref().is_some_and(|t| same(t, &app.token)) {
        return refused(
            StatusCode::UNAUTHORIZED,
            "wrong or missing token: open the link `poa-node serve --ui` printed",
        );
    }
    let (Ok(sid), Ok(csrf)) = (random_hex(), random_hex()) else {
        return refused(StatusCode::INTERNAL_SERVER_ERROR, "no randomness");
    };
    if let Ok(mut s) = app.sessions.lock() {
        s.insert(sid.clone(), csrf);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (
                header::SET_COOKIE,
                format!("poa_ui={sid}; HttpOnly; SameSite=Strict; Path=/"),
            ),
        ],
    )
        .into_response()
}

const NAV: &str = "<nav><a href=\"/\">Records</a><a href=\"/targets/new\">Add target</a><a href=\"/needs/new\">Add request</a><a href=\"/offers/new\">Add offer</a><a href=\"/submission\">Printable submission</a><a href=\"/publish\">Publish</a></nav>\n";

fn ui_page(title: &str, body: &str) -> Html<String> {
    Html(page(
        title,
        "poa-node: this node's own records",
        NAV,
        body,
        None,
    ))
}

async fn home(State(app): Shared) -> Response {
    if app
        .engine
        .with_node(|n| n.home.config.participant.state().is_none())
    {
        return offers_home(&app);
    }
    let data = app.engine.with_node(|n| {
        let views = n.target_views(None)?;
        let needs = n.needs(None)?;
        let state = n.own_state()?;
        Ok::<_, NodeError>((views, needs, state))
    });
    let (views, needs, state) = match data {
        Ok(d) => d,
        Err(e) => return refused(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            let c = v.current();
            let t = &c.target;
            vec![
                esc(&t.id),
                esc(&t.title),
                format!("v{}", t.version),
                esc(c.status.slug()),
                if c.published { "published" } else { "draft" }.into(),
                format!(
                    "<a href=\"/targets/{}/edit\">correct</a> · <a href=\"/progress/new?target={}\">report progress</a>",
                    esc(&t.id),
                    esc(&t.id)
                ),
            ]
        })
        .collect();
    let (draft, public) = app
        .engine
        .with_node(|n| n.drafts().map(|(_, d, p)| (d, p)))
        .unwrap_or_default();
    let published = &public.needs;
    let report_rows: Vec<Vec<String>> = draft
        .progress
        .values()
        .filter(|p| !draft.retracted.contains_key(&format!("progress/{}", p.id)))
        .map(|p| {
            let is_published = public.progress.contains_key(&p.id);
            let id = url_part(&p.id);
            vec![
                esc(&p.id),
                p.value
                    .map(crate::format::num)
                    .unwrap_or_else(|| "-".into()),
                if is_published { "published" } else { "draft" }.into(),
                if is_published {
                    format!("<a href=\"/withdraw?kind=progress&amp;id={id}\">withdraw</a>")
                } else {
                    format!("<a href=\"/progress/edit?id={id}\">correct</a>")
                },
            ]
        })
        .collect();
    let need_rows: Vec<Vec<String>> = needs
        .iter()
        .map(|n| {
            let is_published = published.contains_key(&n.id);
            vec![
                esc(&n.id),
                esc(&n.title),
                esc(n.area.slug()),
                esc(&n.kind.to_string()),
                if is_published { "published" } else { "draft" }.into(),
                if is_published {
                    format!(
                        "<a href=\"/withdraw?kind=needs&amp;id={}\">withdraw</a>",
                        esc(&n.id)
                    )
                } else {
                    format!("<a href=\"/needs/{}/edit\">correct</a>", esc(&n.id))
                },
            ]
        })
        .collect();
    let body = format!(
        "<section><h2>Targets of {state}</h2>{}</section><section><h2>Progress reports</h2>{}</section><section><h2>Assistance requests</h2>{}</section>",
        if rows.is_empty() {
            "<p>No targets yet. <a href=\"/targets/new\">Add one</a>.</p>".into()
        } else {
            html_table(&["ID", "Title", "Version", "Status", "", ""], &[], &rows)
        },
        if report_rows.is_empty() {
            "<p>No progress reports.</p>".into()
        } else {
            html_table(&["ID", "Value", "", ""], &[1], &report_rows)
        },
        if need_rows.is_empty() {
            "<p>No requests.</p>".into()
        } else {
            html_table(&["ID", "Title", "Area", "Kind", "", ""], &[], &need_rows)
        },
    );
    ui_page("Records", &body).into_response()
}

// ---------------------------------------------------------------------------------------------
// Forms
// ---------------------------------------------------------------------------------------------

/// One field of a form: its name (as in the spreadsheet and the CLI, `baseline_year`), its
/// label, and what the person types.
struct Field {
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    hint: &'static str,
}

const fn f(
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    hint: &'static str,
) -> Field {
    Field {
        name,
        label,
        kind,
        hint,
    }
}

const TARGET_FIELDS: &[Field] = &[
    f("id", "Id", "text", "the State's own id: T1"),
    f("cycle", "Cycle", "text", "BMS9, BMS10, RevCon5…"),
    f(
        "area",
        "Commitment area",
        "text",
        "marking, record-keeping, tracing, stockpile…",
    ),
    f("title", "Title", "text", "one line, at most 200 characters"),
    f("description", "Description", "textarea", ""),
    f(
        "kind",
        "Indicator kind",
        "text",
        "quantitative, milestone or yes-no",
    ),
    f(
        "indicator",
        "Indicator",
        "text",
        "what is measured, in words",
    ),
    f("unit", "Unit", "text", "percent, weapons, depots"),
    f(
        "direction",
        "Direction",
        "text",
        "increase, decrease or reach",
    ),
    f("baseline", "Baseline", "number", ""),
    f("baseline_year", "Baseline year", "number", ""),
    f("baseline_source", "Baseline source", "text", ""),
    f("value", "Target value", "number", ""),
    f("deadline", "Deadline", "date", "YYYY-MM-DD"),
    f("mosaic", "MOSAIC modules", "text", "05.30, 05.31"),
    f("refs", "References", "text", "ITI 8; PoA II.4"),
    f("sdg", "SDG", "text", "16.4.2"),
    f("conditional_on", "Conditional on requests", "text", "R1"),
];

const PROGRESS_FIELDS: &[Field] = &[
    f("target", "Target", "text", "T1"),
    f("as_of", "As of", "date", "the date the figures describe"),
    f("value", "Value", "number", ""),
    f(
        "assessment",
        "Assessment",
        "text",
        "on-track, off-track, achieved, not-started, no-data",
    ),
    f("note", "Note", "textarea", ""),
    f("challenges", "Challenges", "textarea", ""),
    f(
        "evidence",
        "Evidence link",
        "text",
        "where readers find the file",
    ),
    f(
        "evidence_file",
        "Evidence file",
        "file",
        "its SHA-256 is computed here",
    ),
    f("source", "Source", "text", ""),
    f("assistance_received", "Assistance received", "text", ""),
];

const NEED_FIELDS: &[Field] = &[
    f("id", "Id", "text", "R1"),
    f("title", "Title", "text", "what is asked for"),
    f("targets", "Targets served", "text", "T1, T2"),
    f("area", "Commitment area", "text", ""),
    f(
        "kind",
        "Kind",
        "text",
        "financial, technical, equipment or training",
    ),
    f("cost", "Estimated cost", "number", ""),
    f("currency", "Currency", "text", "USD"),
    f("priority", "Priority", "text", "high, medium or low"),
];

/// Values typed, and what is wrong, by field; `general` for what belongs to no field.
#[derive(Default)]
struct Filled {
    values: HashMap<String, String>,
    errors: HashMap<String, Vec<String>>,
    general: Vec<String>,
    warnings: Vec<String>,
}

impl Filled {
    fn get(&self, k: &str) -> Option<&str> {
        self.values
            .get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn error(&mut self, k: &str, m: impl Into<String>) {
        self.errors.entry(k.to_string()).or_default().push(m.into());
    }

    fn parse<T: std::str::FromStr>(&mut self, k: &str) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        let v = self.get(k)?.to_string();
        match v.parse::<T>() {
            Ok(x) => Some(x),
            Err(e) => {
                self.error(k, format!("{v}: {e}"));
                None
            }
        }
    }

    fn list<T: std::str::FromStr>(&mut self, k: &str) -> Vec<T>
    where
        T::Err: std::fmt::Display,
    {
        let Some(v) = self.get(k).map(str::to_string) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for part in v.split([',', ';']).map(str::trim).filter(|p| !p.is_empty()) {
            match part.parse::<T>() {
                Ok(x) => out.push(x),
                Err(e) => self.error(k, format!("{part}: {e}")),
            }
        }
        out
    }

    fn text(&mut self, k: &str) -> Option<String> {
        self.get(k).map(str::to_string)
    }

    /// Places a node error: the checks' findings beside their fields, the rest on top.
    fn node_error(&mut self, e: NodeError) {
        match e {
            NodeError::Checks(findings) => {
                for f in findings {
                    self.finding(&f);
                }
            }
            other => self.general.push(other.to_string()),
        }
    }

    fn finding(&mut self, f: &Finding) {
        let field = f.field.trim_start_matches('-').replace('-', "_");
        match f.severity {
            poa_protocol::checks::Severity::Error => self.error(&field, f.message.clone()),
            poa_protocol::checks::Severity::Warning => {
                self.warnings.push(format!("{}: {}", field, f.message));
            }
        }
    }

    fn ok(&self) -> bool {
        self.errors.is_empty() && self.general.is_empty()
    }
}

fn form(title: &str, action: &str, fields: &[Field], filled: &Filled, csrf: &str) -> Html<String> {
    let multipart = fields.iter().any(|f| f.kind == "file");
    let mut b = format!("<section><h2>{}</h2>", esc(title));
    for g in &filled.general {
        b.push_str(&format!("<p class=\"error\" id=\"error\">{}</p>", esc(g)));
    }
    b.push_str(&format!(
        "<form method=\"post\" action=\"{}\"{}><input type=\"hidden\" name=\"csrf\" value=\"{}\"><table>",
        esc(action),
        if multipart {
            " enctype=\"multipart/form-data\""
        } else {
            ""
        },
        esc(csrf)
    ));
    for f in fields {
        let value = filled.values.get(f.name).cloned().unwrap_or_default();
        let input = match f.kind {
            "textarea" => format!(
                "<textarea name=\"{n}\" id=\"{n}\" rows=\"3\" cols=\"60\">{}</textarea>",
                esc(&value),
                n = f.name
            ),
            "file" => format!("<input type=\"file\" name=\"{n}\" id=\"{n}\">", n = f.name),
            kind => format!(
                "<input type=\"{}\" name=\"{n}\" id=\"{n}\" value=\"{}\" size=\"50\"{}>",
                // Dates and numbers as text: a browser's date picker types in the local
                // format, and the node reads YYYY-MM-DD.
                if matches!(kind, "number" | "date") {
                    "text"
                } else {
                    kind
                },
                esc(&value),
                if kind == "number" {
                    " inputmode=\"decimal\""
                } else {
                    ""
                },
                n = f.name
            ),
        };
        let errors = filled
            .errors
            .get(f.name)
            .map(|e| {
                format!(
                    "<div class=\"field-error\" id=\"error-{}\">{}</div>",
                    f.name,
                    esc(&e.join("; "))
                )
            })
            .unwrap_or_default();
        b.push_str(&format!(
            "<tr><th><label for=\"{n}\">{}</label></th><td>{input}<div class=\"muted\">{}</div>{errors}</td></tr>",
            esc(f.label),
            esc(f.hint),
            n = f.name
        ));
    }
    b.push_str("</table><p><button type=\"submit\" id=\"save\">Save to the draft</button></p></form></section>");
    b.push_str("<style>.error,.field-error{color:#b2182b;font-weight:600}</style>");
    ui_page(title, &b)
}

fn saved(what: &str, warnings: &[String]) -> Response {
    let mut b = format!("<section><h2>Saved</h2><p id=\"saved\">{}</p>", esc(what));
    for w in warnings {
        b.push_str(&format!("<p class=\"warning\">warning: {}</p>", esc(w)));
    }
    b.push_str(
        "<p><a href=\"/\">Back to the records</a> · <a href=\"/publish\">Publish</a></p></section>",
    );
    ui_page("Saved", &b).into_response()
}

/// Makes a write through the node: on success, the saved page with the checks' warnings; on
/// failure, the errors placed beside their fields in `filled` (the form is shown again).
fn write(
    app: &App,
    filled: &mut Filled,
    f: impl FnOnce(&mut crate::node::Node) -> Result<String, NodeError>,
) -> Option<Response> {
    let result = app.engine.with_node(|n| {
        let done = f(n)?;
        Ok::<_, NodeError>((done, n.warnings.clone()))
    });
    match result {
        Ok((done, warnings)) => {
            for w in &warnings {
                filled.finding(w);
            }
            Some(saved(&done, &filled.warnings))
        }
        Err(e) => {
            filled.node_error(e);
            None
        }
    }
}

fn csrf_of(app: &App, headers: &HeaderMap) -> String {
    session(app, headers).map(|(_, c)| c).unwrap_or_default()
}

/// The CSRF token a form carries must be its session's.
fn csrf_ok(app: &App, headers: &HeaderMap, values: &HashMap<String, String>) -> bool {
    let expected = csrf_of(app, headers);
    !expected.is_empty() && values.get("csrf").is_some_and(|c| same(c, &expected))
}

fn no_csrf() -> Response {
    refused(
        StatusCode::FORBIDDEN,
        "this form carries no valid CSRF token (open it again from the UI): nothing written",
    )
}

async fn target_form(State(app): Shared, headers: HeaderMap) -> Response {
    let mut filled = Filled::default();
    filled.values.insert("kind".into(), "quantitative".into());
    filled.values.insert("cycle".into(), "BMS9".into());
    form(
        "Add a target",
        "/targets/new",
        TARGET_FIELDS,
        &filled,
        &csrf_of(&app, &headers),
    )
    .into_response()
}

/// The target the form describes (every field typed), or what is wrong with it.
fn target_of(filled: &mut Filled) -> Option<Target> {
    for req in ["id", "cycle", "area", "title", "indicator", "deadline"] {
        if filled.get(req).is_none() {
            filled.error(req, "required");
        }
    }
    let fields = TargetFields {
        cycle: filled.parse("cycle"),
        area: filled.parse("area"),
        title: filled.text("title"),
        description: filled.text("description"),
        kind: filled.parse("kind"),
        indicator: filled.text("indicator"),
        unit: filled.text("unit"),
        direction: filled.parse("direction"),
        baseline: filled.parse("baseline"),
        baseline_year: filled.parse("baseline_year"),
        baseline_source: filled.text("baseline_source"),
        value: filled.parse("value"),
        deadline: filled.parse("deadline"),
        mosaic: filled.list("mosaic"),
        refs: filled
            .get("refs")
            .map(|r| {
                r.split(';')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        sdg: filled.text("sdg"),
        conditional_on: filled.list("conditional_on"),
    };
    let id = filled.text("id").unwrap_or_default();
    if !filled.ok() {
        return None;
    }
    match crate::cli::build_target(id, fields) {
        Ok(t) => Some(t),
        Err(e) => {
            filled.general.push(e.to_string());
            None
        }
    }
}

async fn target_post(
    State(app): Shared,
    headers: HeaderMap,
    axum::Form(values): axum::Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&app, &headers, &values) {
        return no_csrf();
    }
    let mut filled = Filled {
        values,
        ..Filled::default()
    };
    if let Some(t) = target_of(&mut filled) {
        let id = t.id.clone();
        if let Some(done) = write(&app, &mut filled, |n| {
            n.add_target(t)?;
            Ok(format!("Target {id} is in the draft."))
        }) {
            return done;
        }
    }
    form(
        "Add a target",
        "/targets/new",
        TARGET_FIELDS,
        &filled,
        &csrf_of(&app, &headers),
    )
    .into_response()
}

async fn target_edit_form(
    State(app): Shared,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let current = app.engine.with_node(|n| n.target_view(None, &id));
    let v = match current {
        Ok(v) => v,
        Err(e) => return refused(StatusCode::NOT_FOUND, &e.to_string()),
    };
    let t = &v.current().target;
    let mut filled = Filled::default();
    let num = |x: Option<f64>| x.map(crate::sheets::number_text).unwrap_or_default();
    for (k, val) in [
        ("id", t.id.clone()),
        ("cycle", t.cycle.to_string()),
        ("area", t.area.slug().to_string()),
        ("title", t.title.clone()),
        ("description", t.description.clone().unwrap_or_default()),
        ("kind", t.indicator.kind.to_string()),
        ("indicator", t.indicator.text.clone()),
        ("unit", t.indicator.unit.clone().unwrap_or_default()),
        (
            "direction",
            t.indicator
                .direction
                .map(|d| d.to_string())
                .unwrap_or_default(),
        ),
        ("baseline", num(t.baseline)),
        (
            "baseline_year",
            t.baseline_year.map(|y| y.to_string()).unwrap_or_default(),
        ),
        (
            "baseline_source",
            t.baseline_source.clone().unwrap_or_default(),
        ),
        ("value", num(t.value)),
        ("deadline", t.deadline.to_string()),
        (
            "mosaic",
            t.mosaic
                .iter()
                .map(|m| m.code().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("refs", t.refs.join("; ")),
        ("sdg", t.sdg.clone().unwrap_or_default()),
        ("conditional_on", t.conditional_on.join(", ")),
    ] {
        filled.values.insert(k.into(), val);
    }
    let action = format!("/targets/{id}/edit");
    form(
        &format!("Correct target {id}"),
        &action,
        TARGET_FIELDS,
        &filled,
        &csrf_of(&app, &headers),
    )
    .into_response()
}

async fn target_edit_post(
    State(app): Shared,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    axum::Form(values): axum::Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&app, &headers, &values) {
        return no_csrf();
    }
    let mut filled = Filled {
        values,
        ..Filled::default()
    };
    filled.values.insert("id".into(), id.clone());
    if let Some(t) = target_of(&mut filled)
        && let Some(done) = write(&app, &mut filled, |n| {
            n.edit_target(&id, |cur| {
                // The form carries every field but the reason a later version was written.
                let reason = cur.reason.take();
                *cur = t;
                cur.reason = reason;
                Ok(())
            })?;
            Ok(format!("Target {id} is corrected in the draft."))
        })
    {
        return done;
    }
    let action = format!("/targets/{id}/edit");
    form(
        &format!("Correct target {id}"),
        &action,
        TARGET_FIELDS,
        &filled,
        &csrf_of(&app, &headers),
    )
    .into_response()
}

#[derive(serde::Deserialize)]
struct ProgressQuery {
    target: Option<String>,
}

async fn progress_form(
    State(app): Shared,
    headers: HeaderMap,
    Query(q): Query<ProgressQuery>,
) -> Response {
    let mut filled = Filled::default();
    if let Some(t) = q.target {
        filled.values.insert("target".into(), t);
    }
    form(
        "Report progress",
        "/progress/new",
        PROGRESS_FIELDS,
        &filled,
        &csrf_of(&app, &headers),
    )
    .into_response()
}

/// The fields of a progress form, and the evidence file's name and SHA-256 if one was sent.
async fn read_progress_form(
    mut parts: Multipart,
) -> Result<(HashMap<String, String>, Option<(String, String)>), Response> {
    let mut values = HashMap::new();
    let mut file: Option<(String, String)> = None;
    loop {
        match parts.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_string();
                if name == "evidence_file" {
                    let file_name = field.file_name().unwrap_or_default().to_string();
                    match field.bytes().await {
                        Ok(bytes) if !bytes.is_empty() => {
                            file = Some((file_name, crate::format::hex(&Sha256::digest(&bytes))));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            return Err(refused(
                                StatusCode::BAD_REQUEST,
                                &format!("the upload broke off: {e}"),
                            ));
                        }
                    }
                } else {
                    let text = field.text().await.unwrap_or_default();
                    values.insert(name, text);
                }
            }
            Ok(None) => break,
            Err(e) => {
                return Err(refused(
                    StatusCode::BAD_REQUEST,
                    &format!("a form that cannot be read: {e}"),
                ));
            }
        }
    }
    Ok((values, file))
}

/// The progress report the form describes (`kept`: the evidence it had, kept when the link is
/// unchanged and no new file comes), or what is wrong with it.
fn progress_of(
    filled: &mut Filled,
    file: Option<&(String, String)>,
    kept: Option<&Evidence>,
) -> Option<Progress> {
    for req in ["target", "as_of"] {
        if filled.get(req).is_none() {
            filled.error(req, "required");
        }
    }
    let as_of = filled.parse("as_of");
    let evidence = match (file, filled.text("evidence")) {
        (Some((name, sha)), uri) => {
            Evidence::from_parts(uri.or(Some(name.clone())), Some(sha.clone()))
        }
        (None, None) => Ok(None),
        (None, Some(uri)) if kept.is_some_and(|k| k.uri == uri) => Ok(kept.cloned()),
        (None, Some(_)) => {
            filled.error(
                "evidence_file",
                "give the evidence file, so its SHA-256 is recorded",
            );
            Ok(None)
        }
    };
    let evidence = match evidence {
        Ok(e) => e,
        Err(e) => {
            filled.error("evidence", e.to_string());
            None
        }
    };
    let report = Progress {
        id: String::new(),
        target: filled.text("target").unwrap_or_default(),
        target_version: 0,
        as_of: as_of.unwrap_or_else(|| poa_protocol::Date::from_unix_seconds(0)),
        value: filled.parse("value"),
        assessment: filled.parse("assessment"),
        note: filled.text("note"),
        challenges: filled.text("challenges"),
        evidence,
        source: filled.text("source"),
        assistance_received: filled.text("assistance_received"),
    };
    filled.ok().then_some(report)
}

async fn progress_post(State(app): Shared, headers: HeaderMap, parts: Multipart) -> Response {
    let (values, file) = match read_progress_form(parts).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !csrf_ok(&app, &headers, &values) {
        return no_csrf();
    }
    let mut filled = Filled {
        values,
        ..Filled::default()
    };
    if let Some(report) = progress_of(&mut filled, file.as_ref(), None) {
        let sha = file
            .map(|(_, s)| format!(" Evidence SHA-256 {s}."))
            .unwrap_or_default();
        if let Some(done) = write(&app, &mut filled, |n| {
            let id = n.add_progress(report)?;
            Ok(format!("Progress {id} is in the draft.{sha}"))
        }) {
            return done;
        }
    }
    form(
        "Report progress",
        "/progress/new",
        PROGRESS_FIELDS,
        &filled,
        &csrf_of(&app, &headers),
    )
    .into_response()
}

#[derive(serde::Deserialize)]
struct ProgressId {
    id: String,
}

/// A progress report of the draft that was never published.
fn draft_progress(app: &App, id: &str) -> Result<Progress, NodeError> {
    app.engine.with_node(|n| {
        let (_, draft, public) = n.drafts()?;
        crate::records::unpublished_progress(&draft, &public, id).cloned()
    })
}

fn progress_edit_page(id: &str, filled: &Filled, csrf: &str) -> Response {
    let action = format!("/progress/edit?id={}", url_part(id));
    form(
        &format!("Correct progress report {id}"),
        &action,
        PROGRESS_FIELDS,
        filled,
        csrf,
    )
    .into_response()
}

/// `id` as one query value: what is not a letter, digit, `-`, `.` or `/` percent-encoded.
fn url_part(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn progress_edit_form(
    State(app): Shared,
    Query(q): Query<ProgressId>,
    headers: HeaderMap,
) -> Response {
    let values = draft_progress(&app, &q.id).map(|report| {
        // The evidence as the form shows it: its link (its digest is kept unless a new file
        // comes).
        let mut values = values_of(&report);
        values.remove("evidence");
        if let Some(e) = &report.evidence {
            values.insert("evidence".into(), e.uri.clone());
        }
        values
    });
    match values {
        Ok(values) => progress_edit_page(
            &q.id,
            &Filled {
                values,
                ..Filled::default()
            },
            &csrf_of(&app, &headers),
        ),
        Err(e) => refused(StatusCode::NOT_FOUND, &e.to_string()),
    }
}

async fn progress_edit_post(
    State(app): Shared,
    Query(q): Query<ProgressId>,
    headers: HeaderMap,
    parts: Multipart,
) -> Response {
    let (values, file) = match read_progress_form(parts).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !csrf_ok(&app, &headers, &values) {
        return no_csrf();
    }
    let current = match draft_progress(&app, &q.id) {
        Ok(c) => c,
        Err(e) => return refused(StatusCode::NOT_FOUND, &e.to_string()),
    };
    let mut filled = Filled {
        values,
        ..Filled::default()
    };
    filled
        .values
        .insert("target".into(), current.target.clone());
    let id = q.id.clone();
    if let Some(report) = progress_of(&mut filled, file.as_ref(), current.evidence.as_ref())
        && let Some(done) = write(&app, &mut filled, |n| {
            n.edit_progress(&id, |p| {
                *p = report;
                Ok(())
            })?;
            Ok(format!("Progress {id} is corrected in the draft."))
        })
    {
        return done;
    }
    progress_edit_page(&q.id, &filled, &csrf_of(&app, &headers))
}

async fn need_form(State(app): Shared, headers: HeaderMap) -> Response {
    let mut filled = Filled::default();
    filled.values.insert("priority".into(), "medium".into());
    form(
        "Add an assistance request",
        "/needs/new",
        NEED_FIELDS,
        &filled,
        &csrf_of(&app, &headers),
    )
    .into_response()
}

/// The request the form describes, or what is wrong with it.
fn need_of(filled: &mut Filled, state: poa_protocol::StateCode) -> Option<Need> {
    for req in ["id", "title", "area", "kind"] {
        if filled.get(req).is_none() {
            filled.error(req, "required");
        }
    }
    let area = filled.parse("area");
    let kind: Option<AssistanceKind> = filled.parse("kind");
    let need = Need {
        id: filled.text("id").unwrap_or_default(),
        state,
        title: filled.text("title").unwrap_or_default(),
        targets: filled.list("targets"),
        area: area.unwrap_or(poa_protocol::model::Area::Marking),
        mosaic: Vec::new(),
        kind: kind.unwrap_or(AssistanceKind::Technical),
        cost: filled.parse("cost"),
        currency: filled.text("currency"),
        from: None,
        until: None,
        priority: filled.parse("priority").unwrap_or(Priority::Medium),
    };
    if let Err(e) = check_text("the title", &need.title) {
        filled.error("title", e.to_string());
    }
    filled.ok().then_some(need)
}

async fn need_post(
    State(app): Shared,
    headers: HeaderMap,
    axum::Form(values): axum::Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&app, &headers, &values) {
        return no_csrf();
    }
    let mut filled = Filled {
        values,
        ..Filled::default()
    };
    let state = match app.engine.with_node(|n| n.own_state()) {
        Ok(s) => s,
        Err(e) => return refused(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if let Some(need) = need_of(&mut filled, state) {
        let id = need.id.clone();
        if let Some(done) = write(&app, &mut filled, |n| {
            n.add_need(need)?;
            Ok(format!("Request {id} is in the draft."))
        }) {
            return done;
        }
    }
    form(
        "Add an assistance request",
        "/needs/new",
        NEED_FIELDS,
        &filled,
        &csrf_of(&app, &headers),
    )
    .into_response()
}

/// The form's values for a record, as `serde_json` writes it: lists joined by commas.
fn values_of(record: &impl serde::Serialize) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(record) {
        for (k, v) in map {
            let text = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s,
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            out.insert(k, text);
        }
    }
    out
}

async fn need_edit_form(
    State(app): Shared,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let need = app.engine.with_node(|n| {
        let (_, draft, public) = n.drafts()?;
        crate::records::unpublished_need(&draft, &public, &id).cloned()
    });
    correction_form(
        &app,
        &headers,
        need.map(|n| values_of(&n)),
        &format!("Correct request {id}"),
        &format!("/needs/{id}/edit"),
        NEED_FIELDS,
    )
}

/// The form correcting a draft record, filled with its values; or why it cannot be corrected
/// (not in the draft, or published: the node's own refusal), as a 404.
fn correction_form(
    app: &App,
    headers: &HeaderMap,
    values: Result<HashMap<String, String>, NodeError>,
    title: &str,
    action: &str,
    fields: &[Field],
) -> Response {
    match values {
        Ok(values) => form(
            title,
            action,
            fields,
            &Filled {
                values,
                ..Filled::default()
            },
            &csrf_of(app, headers),
        )
        .into_response(),
        Err(e) => refused(StatusCode::NOT_FOUND, &e.to_string()),
    }
}

async fn need_edit_post(
    State(app): Shared,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    axum::Form(values): axum::Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&app, &headers, &values) {
        return no_csrf();
    }
    let mut filled = Filled {
        values,
        ..Filled::default()
    };
    filled.values.insert("id".into(), id.clone());
    let state = match app.engine.with_node(|n| n.own_state()) {
        Ok(s) => s,
        Err(e) => return refused(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if let Some(need) = need_of(&mut filled, state)
        && let Some(done) = write(&app, &mut filled, |n| {
            n.edit_need(&id, |x| {
                *x = need;
                Ok(())
            })?;
            Ok(format!("Request {id} is corrected in the draft."))
        })
    {
        return done;
    }
    form(
        &format!("Correct request {id}"),
        &format!("/needs/{id}/edit"),
        NEED_FIELDS,
        &filled,
        &csrf_of(&app, &headers),
    )
    .into_response()
}

const WITHDRAW_FIELDS: &[Field] = &[
    f(
        "kind",
        "What",
        "text",
        "needs (a request), progress (a report) or offers",
    ),
    f("id", "Id", "text", "R1, T1/2025-12-31, O1"),
    f(
        "reason",
        "Reason",
        "text",
        "one line, kept on record for readers",
    ),
];

#[derive(serde::Deserialize)]
struct Which {
    kind: Option<String>,
    id: Option<String>,
}

async fn withdraw_form(
    State(app): Shared,
    Query(which): Query<Which>,
    headers: HeaderMap,
) -> Response {
    let mut filled = Filled::default();
    for (k, v) in [("kind", which.kind), ("id", which.id)] {
        if let Some(v) = v {
            filled.values.insert(k.into(), v);
        }
    }
    form(
        "Withdraw a published record",
        "/withdraw",
        WITHDRAW_FIELDS,
        &filled,
        &csrf_of(&app, &headers),
    )
    .into_response()
}

async fn withdraw_post(
    State(app): Shared,
    headers: HeaderMap,
    axum::Form(values): axum::Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&app, &headers, &values) {
        return no_csrf();
    }
    let mut filled = Filled {
        values,
        ..Filled::default()
    };
    for req in ["kind", "id", "reason"] {
        if filled.get(req).is_none() {
            filled.error(req, "required");
        }
    }
    let kind = filled.text("kind").unwrap_or_default();
    if filled.get("kind").is_some() && !matches!(kind.as_str(), "needs" | "progress" | "offers") {
        filled.error("kind", format!("{kind}: use needs, progress or offers"));
    }
    if filled.ok() {
        let id = filled.text("id").unwrap_or_default();
        let reason = filled.text("reason").unwrap_or_default();
        if let Some(done) = write(&app, &mut filled, |n| {
            match kind.as_str() {
                "needs" => n.withdraw_need(&id, &reason)?,
                "progress" => n.withdraw_progress(&id, &reason)?,
                _ => n.withdraw_offer(&id, &reason)?,
            }
            Ok(format!(
                "The withdrawal of {id} is in the draft; publish to send it."
            ))
        }) {
            return done;
        }
    }
    form(
        "Withdraw a published record",
        "/withdraw",
        WITHDRAW_FIELDS,
        &filled,
        &csrf_of(&app, &headers),
    )
    .into_response()
}

const OFFER_FIELDS: &[Field] = &[
    f("id", "Id", "text", "O1"),
    f("title", "Title", "text", "what is offered, one line"),
    f("areas", "Commitment areas", "text", "marking, stockpile…"),
    f(
        "kinds",
        "Kinds of help",
        "text",
        "financial, technical, equipment, training",
    ),
    f("regions", "Eligible", "text", "States or pools; empty: any"),
    f("budget_min", "Smallest grant", "number", ""),
    f("budget_max", "Largest grant", "number", ""),
    f("currency", "Currency", "text", "USD"),
    f("from", "Available from", "date", "YYYY-MM-DD"),
    f("until", "Available until", "date", "YYYY-MM-DD"),
];

/// The offer the form describes, or what is wrong with it.
fn offer_of(filled: &mut Filled) -> Option<Offer> {
    for req in ["id", "title", "areas", "kinds"] {
        if filled.get(req).is_none() {
            filled.error(req, "required");
        }
    }
    let offer = Offer {
        id: filled.text("id").unwrap_or_default(),
        provider: String::new(),
        title: filled.text("title").unwrap_or_default(),
        areas: filled.list("areas"),
        mosaic: Vec::new(),
        kinds: filled.list("kinds"),
        regions: filled.list("regions"),
        budget_min: filled.parse("budget_min"),
        budget_max: filled.parse("budget_max"),
        currency: filled.text("currency"),
        from: filled.parse("from"),
        until: filled.parse("until"),
    };
    if let Err(e) = check_text("the title", &offer.title) {
        filled.error("title", e.to_string());
    }
    filled.ok().then_some(offer)
}

fn offers_home(app: &App) -> Response {
    let offers = match app.engine.with_node(|n| n.own_offers()) {
        Ok(o) => o,
        Err(e) => return refused(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let rows: Vec<Vec<String>> = offers
        .iter()
        .map(|o| {
            let id = esc(&o.offer.id);
            vec![
                id.clone(),
                esc(&o.offer.title),
                esc(&o.status.to_string()),
                match o.status {
                    crate::offers::OfferStatus::Draft => {
                        format!("<a href=\"/offers/{id}/edit\">correct</a>")
                    }
                    crate::offers::OfferStatus::Published => {
                        format!("<a href=\"/withdraw?kind=offers&amp;id={id}\">withdraw</a>")
                    }
                    _ => String::new(),
                },
            ]
        })
        .collect();
    let body = format!(
        "<section><h2>Offers</h2>{}</section>",
        if rows.is_empty() {
            "<p>No offers yet. <a href=\"/offers/new\">Add one</a>.</p>".into()
        } else {
            html_table(&["ID", "Title", "Status", ""], &[], &rows)
        }
    );
    ui_page("Offers", &body).into_response()
}

async fn offer_form(State(app): Shared, headers: HeaderMap) -> Response {
    form(
        "Add an offer of assistance",
        "/offers/new",
        OFFER_FIELDS,
        &Filled::default(),
        &csrf_of(&app, &headers),
    )
    .into_response()
}

async fn offer_post(
    State(app): Shared,
    headers: HeaderMap,
    axum::Form(values): axum::Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&app, &headers, &values) {
        return no_csrf();
    }
    let mut filled = Filled {
        values,
        ..Filled::default()
    };
    if let Some(offer) = offer_of(&mut filled) {
        let id = offer.id.clone();
        if let Some(done) = write(&app, &mut filled, |n| {
            n.add_offer(offer)?;
            Ok(format!("Offer {id} is in the draft."))
        }) {
            return done;
        }
    }
    form(
        "Add an offer of assistance",
        "/offers/new",
        OFFER_FIELDS,
        &filled,
        &csrf_of(&app, &headers),
    )
    .into_response()
}

async fn offer_edit_form(
    State(app): Shared,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let offer = app.engine.with_node(|n| {
        let (_, draft, public) = n.offer_drafts()?;
        crate::offers::unpublished(&draft, &public, &id).cloned()
    });
    correction_form(
        &app,
        &headers,
        offer.map(|o| values_of(&o)),
        &format!("Correct offer {id}"),
        &format!("/offers/{id}/edit"),
        OFFER_FIELDS,
    )
}

async fn offer_edit_post(
    State(app): Shared,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    axum::Form(values): axum::Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&app, &headers, &values) {
        return no_csrf();
    }
    let mut filled = Filled {
        values,
        ..Filled::default()
    };
    filled.values.insert("id".into(), id.clone());
    if let Some(offer) = offer_of(&mut filled)
        && let Some(done) = write(&app, &mut filled, |n| {
            n.edit_offer(&id, |o| {
                *o = offer;
                Ok(())
            })?;
            Ok(format!("Offer {id} is corrected in the draft."))
        })
    {
        return done;
    }
    form(
        &format!("Correct offer {id}"),
        &format!("/offers/{id}/edit"),
        OFFER_FIELDS,
        &filled,
        &csrf_of(&app, &headers),
    )
    .into_response()
}

async fn submission(State(app): Shared) -> Response {
    match app.engine.with_node(|n| n.submission(None)) {
        Ok(s) => Html(crate::submission::html(&s)).into_response(),
        Err(e) => refused(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// What publishing would send out, one line each: a State's draft, or a body's offers.
fn pending_lines(n: &crate::node::Node) -> Result<Vec<String>, NodeError> {
    Ok(if n.home.config.participant.state().is_some() {
        n.pending(&Selection::All)?
            .iter()
            .map(|p| p.line())
            .collect()
    } else {
        n.pending_offers(None)?
            .iter()
            .map(ToString::to_string)
            .collect()
    })
}

/// Publishes everything pending; what went out, in words.
fn publish_all(n: &mut crate::node::Node) -> Result<(usize, String), NodeError> {
    Ok(if n.home.config.participant.state().is_some() {
        let done = n.publish(&Selection::All)?;
        (done.len(), summary(&done))
    } else {
        let done = n.publish_offers(None)?;
        let words: Vec<String> = done.iter().map(ToString::to_string).collect();
        (done.len(), words.join(", "))
    })
}

async fn publish_form(State(app): Shared, headers: HeaderMap) -> Response {
    let items = match app.engine.with_node(|n| pending_lines(n)) {
        Ok(i) => i,
        Err(e) => return refused(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let mut b = String::from("<section><h2>Publish</h2>");
    if items.is_empty() {
        b.push_str("<p id=\"nothing\">Nothing to publish: the published document holds everything in the draft.</p>");
    } else {
        b.push_str(&format!(
            "<p>Publishing sends out these {} record(s), in one change:</p><ul id=\"pending\">",
            items.len()
        ));
        for i in &items {
            b.push_str(&format!("<li>{}</li>", esc(i)));
        }
        b.push_str(&format!(
            "</ul><form method=\"post\" action=\"/publish\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"count\" value=\"{}\"><button type=\"submit\" id=\"publish\">Publish these {} record(s)</button></form>",
            esc(&csrf_of(&app, &headers)),
            items.len(),
            items.len()
        ));
    }
    b.push_str("</section>");
    ui_page("Publish", &b).into_response()
}

async fn publish_post(
    State(app): Shared,
    headers: HeaderMap,
    axum::Form(values): axum::Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&app, &headers, &values) {
        return no_csrf();
    }
    // What the person saw is what goes out: if the draft changed since, show it again.
    let seen: usize = values
        .get("count")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let result = app.engine.with_node(|n| {
        let now = pending_lines(n)?;
        if now.len() != seen {
            return Ok(None);
        }
        publish_all(n).map(Some)
    });
    match result {
        Ok(Some((count, words))) => {
            let b = format!(
                "<section><h2>Published</h2><p id=\"published\">Published {count} record(s): {}.</p><p><a href=\"/\">Back to the records</a></p></section>",
                esc(&words)
            );
            ui_page("Published", &b).into_response()
        }
        Ok(None) => Redirect::to("/publish").into_response(),
        Err(e) => refused(StatusCode::BAD_REQUEST, &format!("nothing published: {e}")),
    }
}
