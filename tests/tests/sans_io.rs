//! The core must stay sans-IO: `poa-protocol` may not depend on tokio, quinn or rusqlite.

use std::process::Command;

#[test]
fn protocol_has_no_io_crates_in_its_tree() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "poa-protocol",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("automerge v"), "unexpected tree:\n{tree}");
    for banned in ["tokio v", "quinn v", "rusqlite v", "quinn-proto v"] {
        assert!(
            !tree.lines().any(|l| l.starts_with(banned)),
            "poa-protocol depends on {banned}:\n{tree}"
        );
    }
}
