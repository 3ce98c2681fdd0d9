//! The CLI's `--json` and the dashboard's JSON API show a pool, and the unmet requests, as the
//! same view ([`poa_node::views`]): on the Secretariat's demo home, `/api/pools/xanadu` is
//! `pool show xanadu --json`, `/api/pools` is `pool list --json` and `/api/needs` is
//! `needs --unmet --json`, byte for byte.

#![allow(clippy::unwrap_used)]

mod common;
use common::{http_get, poa_node_at, serve_http};
use serde_json::Value;

fn demo_homes() -> &'static std::path::Path {
    common::demo_homes(concat!(env!("CARGO_TARGET_TMPDIR"), "/views-demo"))
}

fn cli(args: &[&str]) -> String {
    let out = poa_node_at(&demo_homes().join("secretariat"), args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_cli_and_the_dashboard_api_print_the_same_pool_and_needs() {
    let served = serve_http(&demo_homes().join("secretariat"));
    for (path, args) in [
        (
            "/api/pools/xanadu",
            &["pool", "show", "xanadu", "--json"][..],
        ),
        ("/api/pools", &["pool", "list", "--json"][..]),
        ("/api/needs", &["needs", "--unmet", "--json"][..]),
    ] {
        let (status, body) = http_get(&served.addr, path);
        assert!(status.contains("200"), "{path}: {status}");
        // The CLI ends its output with a newline; the API's body is the JSON alone.
        assert_eq!(format!("{body}\n"), cli(args), "{path}");
    }

    // Members are objects: the State's code, its nodes and what it contributed.
    let (_, body) = http_get(&served.addr, "/api/pools/xanadu");
    let pool: Value = serde_json::from_str(&body).unwrap();
    assert!(
        pool["id"].as_str().unwrap().starts_with("xanadu~"),
        "{pool}"
    );
    let members = pool["members"].as_array().unwrap();
    let codes: Vec<&str> = members
        .iter()
        .map(|m| m["state"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["XAA", "XAB", "XAC"]);
    for m in members {
        assert_eq!(m["nodes"].as_array().unwrap().len(), 1, "{m}");
    }
    assert_eq!(members[1]["contributed"], serde_json::json!(["T2"]));
    assert_eq!(pool["observers"][0]["name"], "UN Secretariat");

    // A request carries its reference, its fields, its status and the matches under way.
    let (_, body) = http_get(&served.addr, "/api/needs");
    let needs: Value = serde_json::from_str(&body).unwrap();
    let r1 = &needs[0];
    assert_eq!(r1["ref"], "XAB/R1");
    assert_eq!(r1["id"], "R1");
    assert_eq!(r1["state"], "XAB");
    assert_eq!(r1["area"], "destruction");
    assert_eq!(r1["status"], "open");
    assert_eq!(r1["cost"], 250000.0);
}
