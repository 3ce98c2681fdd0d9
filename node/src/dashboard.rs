//! The read-only HTTP dashboard: the stocktake, each State's published targets and progress,
//! pools and unmet requests, as pages with charts, and the JSON API behind them.
//!
//! It only reads, through the engine's node, and binds to the address it is given (the CLI's
//! default is localhost). Pages are rendered on the server as plain HTML with inline SVG: no
//! script, nothing fetched from elsewhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use poa_protocol::doc::DocId;
use poa_protocol::model::Cycle;
use poa_protocol::stocktake::{Counts, Stocktake, standing};
use poa_protocol::{Date, StateCode};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use crate::format::{NONE, opt};
use crate::html_kit::{chart_standings, esc, html_table, legend, page};
use crate::node::{Node, today};
use crate::report::{self, Format, stocktake_body};
use crate::sync::Engine;
use crate::views::{NeedView, PoolView};

/// A running dashboard.
#[derive(Debug)]
pub struct Dashboard {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Dashboard {
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

/// Serves the dashboard for `engine`'s node on `addr`.
pub async fn dashboard(engine: Arc<Engine>, addr: SocketAddr) -> std::io::Result<Dashboard> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let allowed = Arc::new(allowed_hosts(addr));
    let app = router(engine).layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let allowed = allowed.clone();
            async move {
                match check_host(&req, &allowed) {
                    Ok(()) => next.run(req).await,
                    Err(why) => (StatusCode::MISDIRECTED_REQUEST, why).into_response(),
                }
            }
        },
    ));
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.changed().await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(cause = %e, "the dashboard stopped");
        }
    });
    tracing::info!(%addr, "dashboard");
    Ok(Dashboard { addr, stop, task })
}

/// The `Host` values a request may carry: the address the dashboard is bound to, and for a
/// loopback address, `localhost` and the other loopback spellings. A page elsewhere that
/// points a name it controls at this machine (DNS rebinding) sends its own name: refused.
pub(crate) fn allowed_hosts(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    let mut out = vec![addr.to_string()];
    if addr.ip().is_loopback() {
        for h in ["localhost", "127.0.0.1", "[::1]"] {
            out.push(format!("{h}:{port}"));
        }
    }
    if addr.ip().is_unspecified() {
        // Bound to every address: the operator chose to be reachable by any; accept any
        // literal IP with this port, never a name.
        out.push(format!("*:{port}"));
    }
    out
}

pub(crate) fn check_host(req: &axum::extract::Request, allowed: &[String]) -> Result<(), String> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let ok = allowed.contains(&host)
        || allowed.iter().any(|a| {
            a.strip_prefix("*:").is_some_and(|port| {
                host.rsplit_once(':').is_some_and(|(h, p)| {
                    p == port
                        && h.trim_matches(['[', ']'])
                            .parse::<std::net::IpAddr>()
                            .is_ok()
                })
            })
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "this dashboard answers to {} only, not to Host '{host}'",
            allowed.first().cloned().unwrap_or_default()
        ))
    }
}

fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/report.html", get(report_html))
        .route("/states", get(states))
        .route("/states/{code}", get(state))
        .route("/pools", get(pools))
        .route("/pools/{id}", get(pool))
        .route("/needs", get(needs))
        .route("/api/stocktake", get(api_stocktake))
        .route("/api/states", get(api_states))
        .route("/api/states/{code}", get(api_state))
        .route("/api/pools", get(api_pools))
        .route("/api/pools/{id}", get(api_pool))
        .route("/api/needs", get(api_needs))
        .route("/status", get(status_page))
        .route("/api/status", get(api_status))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(engine)
}

type Shared = State<Arc<Engine>>;

/// An error page (or JSON error) with its status.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = page(
            "poa-node dashboard",
            &self.0.to_string(),
            NAV,
            &format!(
                "<section><h2>{}</h2><p>{}</p></section>",
                self.0,
                esc(&self.1)
            ),
            None,
        );
        (self.0, Html(body)).into_response()
    }
}

fn internal(e: impl std::fmt::Display) -> Failure {
    Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn json_response(status: StatusCode, text: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// A JSON answer: the value, or the failure as `{"error": …}` with its status.
fn api(result: Result<impl serde::Serialize, Failure>) -> Response {
    match result {
        Ok(v) => json_response(
            StatusCode::OK,
            serde_json::to_string_pretty(&v).unwrap_or_default(),
        ),
        Err(Failure(s, m)) => api_error(s, m),
    }
}

fn api_error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    json_response(status, json!({"error": message.to_string()}).to_string())
}

const NAV: &str = "<nav><a href=\"/\">Stocktake</a><a href=\"/states\">States</a><a href=\"/pools\">Pools</a><a href=\"/needs\">Unmet needs</a><a href=\"/report.html\">Printable report</a><a href=\"/status\">Health</a><a href=\"/api/stocktake\">JSON</a></nav>\n";

/// A dashboard page: the common frame and navigation around `body`.
fn dash_page(title: &str, subtitle: &str, body: &str) -> Html<String> {
    Html(page(title, subtitle, NAV, body, None))
}

/// The text at `key` of a JSON record, escaped for HTML ("" when absent).
fn text(v: &serde_json::Value, key: &str) -> String {
    esc(v[key].as_str().unwrap_or_default())
}

/// The number at `key`, as people read it ([`NONE`](crate::format::NONE) when absent).
fn figure(v: &serde_json::Value, key: &str) -> String {
    opt(v[key].as_f64())
}

/// `?cycle=BMS9&as_of=2026-11-27`.
#[derive(Debug, Deserialize)]
struct ReportQuery {
    cycle: Option<String>,
    as_of: Option<String>,
}

fn compute(engine: &Engine, q: &ReportQuery) -> Result<Stocktake, (StatusCode, String)> {
    let bad = |e: String| (StatusCode::BAD_REQUEST, e);
    let as_of: Date = match &q.as_of {
        Some(d) => d
            .parse()
            .map_err(|e: poa_protocol::date::DateError| bad(e.to_string()))?,
        None => today(),
    };
    engine.read(|node| {
        let cycle: Cycle = match &q.cycle {
            Some(c) => c
                .parse()
                .map_err(|e: poa_protocol::model::ModelError| bad(e.to_string()))?,
            None => {
                report::default_cycle(node).map_err(|e| (StatusCode::NOT_FOUND, e.to_string()))?
            }
        };
        report::compute(node, cycle, as_of)
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    })
}

async fn home(
    State(engine): Shared,
    Query(q): Query<ReportQuery>,
) -> Result<Html<String>, Failure> {
    let st = compute(&engine, &q).map_err(|(s, m)| Failure(s, m))?;
    let mut cycles = String::from("<p class=\"muted\">Cycle: ");
    for c in Cycle::all() {
        let _ = write!(cycles, "<a href=\"/?cycle={c}\">{c}</a> ");
    }
    cycles.push_str("</p>");
    Ok(dash_page(
        &format!("Stocktake {}", st.cycle),
        &format!(
            "{}: statuses as of {} (read-only dashboard)",
            st.meeting, st.as_of
        ),
        &format!("{cycles}{}", stocktake_body(&st)),
    ))
}

async fn report_html(
    State(engine): Shared,
    Query(q): Query<ReportQuery>,
) -> Result<Html<String>, Failure> {
    let st = compute(&engine, &q).map_err(|(s, m)| Failure(s, m))?;
    Ok(Html(report::render(&st, Format::Html)))
}

async fn api_stocktake(State(engine): Shared, Query(q): Query<ReportQuery>) -> Response {
    match compute(&engine, &q) {
        Ok(st) => json_response(StatusCode::OK, st.to_json()),
        Err((s, m)) => api_error(s, m),
    }
}

/// Every State whose published document this node holds, with its current targets counted.
fn state_counts(node: &Node) -> Result<BTreeMap<String, Counts>, crate::node::NodeError> {
    let mut out = BTreeMap::new();
    let now = today();
    for doc in node.store.doc_ids()? {
        if let DocId::State(s) = doc {
            let data = node.state_data(&doc)?;
            let mut c = Counts::default();
            for id in data.target_ids() {
                if let Some(t) = data.latest(&id) {
                    c.add(standing(&data, t, now));
                }
            }
            out.insert(s.to_string(), c);
        }
    }
    Ok(out)
}

async fn states(State(engine): Shared) -> Result<Html<String>, Failure> {
    let counts = engine.read(state_counts).map_err(internal)?;
    let rows: Vec<(String, Counts)> = counts.into_iter().collect();
    let mut body = String::from("<section><h2>States whose published data this node holds</h2>");
    if rows.is_empty() {
        body.push_str("<p>None yet.</p>");
    } else {
        body.push_str("<p class=\"muted\">Listed by code; every target of every cycle, current versions. Select a State for its targets and progress.</p><ul>");
        for (s, c) in &rows {
            let _ = write!(
                body,
                "<li><a href=\"/states/{s}\">{s}</a>: {} targets</li>",
                c.targets
            );
        }
        body.push_str("</ul>");
        body.push_str(&legend());
        body.push_str(&chart_standings(
            "chart-states",
            "Targets by status, by State",
            &rows,
        ));
    }
    body.push_str("</section>");
    Ok(dash_page("States", "Published targets", &body))
}

fn state_json(node: &Node, code: &str) -> Result<Option<serde_json::Value>, Failure> {
    let Some(s) = code.parse::<StateCode>().ok() else {
        return Ok(None);
    };
    let doc = DocId::State(s);
    if node.store.heads(&doc).map_err(internal)?.is_none() {
        return Ok(None);
    }
    // Published data only, even on the State's own node: the dashboard never shows a draft.
    let views = node.published_views(s).map_err(internal)?;
    let needs = node.needs(Some(s)).map_err(internal)?;
    Ok(Some(json!({
        "state": s.to_string(),
        "name": s.name(),
        "targets": views.iter().map(|v| v.to_json()).collect::<Vec<_>>(),
        "needs": needs,
    })))
}

async fn state(State(engine): Shared, Path(code): Path<String>) -> Result<Html<String>, Failure> {
    let j = engine.read(|n| state_json(n, &code))?.ok_or_else(|| {
        Failure(
            StatusCode::NOT_FOUND,
            format!("this node holds no published document of {code}"),
        )
    })?;
    let mut body = String::new();
    let _ = write!(body, "<section><h2>Targets</h2>");
    for t in j["targets"].as_array().into_iter().flatten() {
        let s = |k: &str| t[k].as_str().map(esc).unwrap_or_else(|| "-".into());
        let n = |k: &str| opt(t[k].as_f64());
        let _ = write!(
            body,
            "<h3>{} v{}: {}</h3><p>{} · {} · baseline {} → goal {} by {} · <b>{}</b></p>",
            s("id"),
            t["version"],
            s("title"),
            s("cycle"),
            s("area"),
            n("baseline"),
            n("value"),
            s("deadline"),
            s("status")
        );
        let reports: Vec<&serde_json::Value> =
            t["progress"].as_array().into_iter().flatten().collect();
        if reports.is_empty() {
            body.push_str("<p class=\"muted\">No progress report: no data.</p>");
        } else {
            let rows: Vec<Vec<String>> = reports
                .iter()
                .map(|p| {
                    vec![
                        text(p, "as_of"),
                        figure(p, "value"),
                        text(p, "assessment"),
                        text(p, "note"),
                    ]
                })
                .collect();
            body.push_str(&html_table(
                &["as of", "value", "assessment", "note"],
                &[1],
                &rows,
            ));
        }
    }
    body.push_str("</section>");
    let code = code.to_ascii_uppercase();
    let title = match j["name"].as_str() {
        Some(name) if name != code => format!("{code} ({name})"),
        _ => code,
    };
    Ok(dash_page(&title, "Published targets and progress", &body))
}

async fn api_states(State(engine): Shared) -> Response {
    api(engine.read(state_counts).map_err(internal))
}

async fn api_state(State(engine): Shared, Path(code): Path<String>) -> Response {
    api(engine.read(|n| state_json(n, &code)).and_then(|j| {
        j.ok_or_else(|| {
            Failure(
                StatusCode::NOT_FOUND,
                format!("no published document of {code}"),
            )
        })
    }))
}

fn pool_views(node: &Node) -> Result<Vec<PoolView>, Failure> {
    let mut out = Vec::new();
    for (id, _) in node.pools().map_err(internal)? {
        out.push(pool_view(node, &id)?);
    }
    Ok(out)
}

fn pool_view(node: &Node, id: &str) -> Result<PoolView, Failure> {
    let r = node
        .pool_report(id)
        .map_err(|e| Failure(StatusCode::NOT_FOUND, e.to_string()))?;
    Ok(PoolView::of(&r))
}

async fn pools(State(engine): Shared) -> Result<Html<String>, Failure> {
    let all = engine.read(pool_views)?;
    let mut body = String::from("<section><h2>Pools</h2>");
    if all.is_empty() {
        body.push_str("<p>This node holds no pool.</p>");
    }
    body.push_str("<ul>");
    for p in &all {
        let _ = write!(
            body,
            "<li><a href=\"/pools/{}\">{}</a>: coordinator {}, members {}</li>",
            esc(&p.id),
            esc(p.name.as_deref().unwrap_or(&p.id)),
            esc(p.coordinator.as_deref().unwrap_or(NONE)),
            esc(&p.member_codes().join(", "))
        );
    }
    body.push_str("</ul></section>");
    Ok(dash_page("Pools", "Sub-regional pools", &body))
}

async fn pool(State(engine): Shared, Path(id): Path<String>) -> Result<Html<String>, Failure> {
    let p = engine.read(|n| pool_view(n, &id))?;
    let mut body = format!(
        "<section><h2>{}</h2><p>Coordinator {}; members {}; observers {}.</p></section>",
        esc(p.name.as_deref().unwrap_or(&id)),
        esc(p.coordinator.as_deref().unwrap_or(NONE)),
        esc(&p.member_codes().join(", ")),
        esc(&p.observer_names().join(", "))
    );
    for r in &p.pooled {
        let mut rows: Vec<Vec<String>> = r["members_reporting"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| vec![text(m, "state"), figure(m, "value"), "counted".into()])
            .collect();
        rows.extend(
            r["members_missing"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    vec![
                        text(m, "state"),
                        "-".into(),
                        format!("not counted: {}", text(m, "reason")),
                    ]
                }),
        );
        let _ = write!(
            body,
            "<section><h2>{} {}</h2><p>{} of {}: baseline {}, goal {}, current {} {}</p>{}</section>",
            text(r, "id"),
            text(r, "title"),
            text(r, "aggregate"),
            text(r, "from"),
            figure(r, "baseline"),
            figure(r, "target"),
            figure(r, "current"),
            text(r, "unit"),
            html_table(&["member", "figure", "note"], &[1], &rows)
        );
    }
    Ok(dash_page(
        &format!("Pool {id}"),
        "Pooled targets, computed from members' own data",
        &body,
    ))
}

async fn api_pools(State(engine): Shared) -> Response {
    api(engine.read(pool_views))
}

async fn api_pool(State(engine): Shared, Path(id): Path<String>) -> Response {
    api(engine.read(|n| pool_view(n, &id)))
}

fn need_views(node: &Node) -> Result<Vec<NeedView>, Failure> {
    let unmet = node.unmet_needs().map_err(internal)?;
    Ok(unmet
        .into_iter()
        .map(|(n, m)| NeedView::of(n, &m))
        .collect())
}

async fn needs(State(engine): Shared) -> Result<Html<String>, Failure> {
    let all = engine.read(need_views)?;
    let mut body = String::from("<section><h2>Requests for assistance with no accepted match</h2>");
    if all.is_empty() {
        body.push_str("<p>None.</p>");
    } else {
        let rows: Vec<Vec<String>> = all
            .iter()
            .map(|n| {
                let matches: Vec<String> = n
                    .matches
                    .iter()
                    .map(|m| format!("{} {}", text(m, "offer"), text(m, "status")))
                    .collect();
                vec![
                    esc(&n.reference),
                    esc(n.need.area.slug()),
                    esc(n.need.kind.slug()),
                    esc(n.need.priority.slug()),
                    esc(&n.need.title),
                    if matches.is_empty() {
                        "none".into()
                    } else {
                        matches.join(", ")
                    },
                ]
            })
            .collect();
        body.push_str(&html_table(
            &[
                "request",
                "area",
                "kind",
                "priority",
                "title",
                "matches under way",
            ],
            &[],
            &rows,
        ));
    }
    body.push_str("</section>");
    Ok(dash_page(
        "Unmet needs",
        "Open requests for assistance",
        &body,
    ))
}

async fn api_needs(State(engine): Shared) -> Response {
    api(engine.read(need_views))
}

async fn not_found() -> Failure {
    Failure(StatusCode::NOT_FOUND, "no such page".into())
}

/// The node's status as this process sees it: the dashboard runs inside the serving process.
fn read_status(engine: &Engine) -> Result<crate::status::Status, Failure> {
    engine
        .read(|node| {
            crate::status::status(
                node,
                Some(std::process::id().to_string()),
                crate::node::now_secs(),
            )
        })
        .map_err(internal)
}

async fn api_status(State(engine): Shared) -> Response {
    api(read_status(&engine))
}

/// The health page: each peer connected or not, last contact, last error, documents behind.
async fn status_page(State(engine): Shared) -> Result<Html<String>, Failure> {
    use crate::status::{ago, bytes, when};
    let st = read_status(&engine)?;
    let now = st.node.at;
    let rows: Vec<Vec<String>> = st
        .peers
        .iter()
        .map(|p| {
            let behind: Vec<String> = p
                .documents
                .iter()
                .filter(|d| !d.in_sync)
                .map(|d| format!("{} behind by {}", d.doc, d.behind))
                .collect();
            vec![
                esc(&p.name),
                if p.connected {
                    "connected".into()
                } else {
                    "<strong>disconnected</strong>".into()
                },
                p.last_contact
                    .map(|t| esc(&format!("{} ({})", when(t), ago(now, t))))
                    .unwrap_or_else(|| "never".into()),
                if behind.is_empty() {
                    format!("{} in sync", p.documents.len())
                } else {
                    esc(&behind.join("; "))
                },
                esc(&format!(
                    "{} out, {} in; {} / {} changes",
                    bytes(p.traffic.bytes_sent),
                    bytes(p.traffic.bytes_received),
                    p.traffic.changes_sent,
                    p.traffic.changes_received
                )),
                esc(p.last_error.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    let docs: Vec<Vec<String>> = st
        .documents
        .iter()
        .map(|d| {
            vec![
                esc(&d.doc),
                d.changes.to_string(),
                esc(&d.in_sync_with.join(", ")),
                esc(&d.behind.join(", ")),
            ]
        })
        .collect();
    let body = format!(
        "<section><h2>Peers</h2>{}</section><section><h2>Documents</h2>{}</section>\
<p class=\"muted\">Read at {}. Machine-readable: <a href=\"/api/status\">/api/status</a>, \
<a href=\"/health\">/health</a>, <a href=\"/metrics\">/metrics</a>.</p>",
        html_table(
            &[
                "Peer",
                "Link",
                "Last contact",
                "Documents",
                "Traffic",
                "Last error"
            ],
            &[],
            &rows
        ),
        html_table(
            &["Document", "Changes", "Held as here by", "Behind"],
            &[1],
            &docs
        ),
        esc(&when(now)),
    );
    Ok(dash_page(
        "Health",
        &format!("{} ({})", st.node.name, st.node.node_id),
        &body,
    ))
}

/// `/health`, for load balancers and watchdogs: 200 with a short JSON summary while the node
/// can read its database, 503 otherwise.
async fn health(State(engine): Shared) -> Response {
    match engine.read(|node| node.store.peers().map(|p| p.len())) {
        Ok(peers) => json_response(
            StatusCode::OK,
            json!({
                "status": "ok",
                "node": engine.id().to_string(),
                "peers": peers,
                "connected": engine.connected().len(),
            })
            .to_string(),
        ),
        Err(e) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "error": e.to_string()}).to_string(),
        ),
    }
}

/// `/metrics`: the counters in the Prometheus (OpenMetrics) text format.
async fn metrics(State(engine): Shared) -> Response {
    let m = crate::metrics::metrics();
    let held = engine.read(|node| -> Result<(usize, usize), crate::store::StoreError> {
        let docs = node.store.doc_ids()?;
        let mut changes = 0;
        for d in &docs {
            changes += node.store.with_ledger(d, |l| l.len())?.unwrap_or(0);
        }
        Ok((docs.len(), changes))
    });
    if let Ok((docs, changes)) = held {
        m.documents.set(docs as i64);
        m.changes_held.set(changes as i64);
    }
    m.changes_parked.set(engine.parked() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response()
}
