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
