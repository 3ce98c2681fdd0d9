//! Signed bundles carried between two nodes with no network between them: State XAA and
//! regional body XRB, each a real home with its own SQLite file, never served, with no
//! address pinned. XRB pins XAA's node and trusts XAA's key; XAA pins XRB (and a third body,
//! XRC) and shares `state/XAA` with XRB. The commands are the real binary's; hand-crafted
//! bundles (a forged change, a smuggled draft, another signer, garbage) are made with the
//! library on the same homes.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::poa_node_at;
use poa_node::Node;
use poa_node::bundle::{self, BundleDoc, Contents};
use poa_protocol::NodeId;
use poa_protocol::automerge::ChangeHash;
use poa_protocol::change::FlatAction;
use poa_protocol::doc::DocId;
use serde_json::Value;

struct Fed {
    tmp: tempfile::TempDir,
    xaa: PathBuf,
    xrb: PathBuf,
    xrc: PathBuf,
    xaa_id: String,
    xrb_id: String,
    xrc_id: String,
}

fn run(home: &Path, args: &[&str]) -> Output {
    poa_node_at(home, args)
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = run(home, args);
    assert!(
        out.status.success(),
        "`poa-node {}` failed:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(home: &Path, args: &[&str]) -> Value {
    let text = ok(home, args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A command that must fail with one line on stderr containing `expect`.
fn fails(home: &Path, args: &[&str], expect: &str) -> String {
    let out = run(home, args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "`poa-node {}` succeeded:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(stderr.trim().lines().count(), 1, "not one line: {stderr}");
    assert!(stderr.contains(expect), "`{}`: {stderr}", args.join(" "));
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn target(id: &str) -> Vec<String> {
    [
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
        "share of State-held SALW marked",
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
        "--mosaic",
        "05.30",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Fed {
    fn new() -> Fed {
        let tmp = tempfile::tempdir().unwrap();
        let xaa = tmp.path().join("xaa");
        let xrb = tmp.path().join("xrb");
        let xrc = tmp.path().join("xrc");
        ok(
            &xaa,
            &[
                "init",
                "--state",
                "XAA",
                "--name",
                "XAA Ministry of Interior",
            ],
        );
        ok(
            &xrb,
            &[
                "init",
                "--body",
                "XRB",
                "--kind",
                "regional",
                "--name",
                "Xanadu Regional Bureau",
            ],
        );
        ok(
            &xrc,
            &[
                "init",
                "--body",
                "XRC",
                "--kind",
                "regional",
                "--name",
                "Other Bureau",
            ],
        );
        let id = |h: &Path| json(h, &["id", "--json"]);
        let a = id(&xaa);
        let (xaa_id, xaa_key) = (
            a["node_id"].as_str().unwrap().to_string(),
            a["principal_key"].as_str().unwrap().to_string(),
        );
        let xrb_id = id(&xrb)["node_id"].as_str().unwrap().to_string();
        let xrc_id = id(&xrc)["node_id"].as_str().unwrap().to_string();
        ok(
            &xaa,
            &["peer", "add", &xrb_id, "--body", "XRB", "--name", "XRB"],
        );
        ok(
            &xaa,
            &["peer", "add", &xrc_id, "--body", "XRC", "--name", "XRC"],
        );
        ok(&xaa, &["share", "state/XAA", "--with", &xrb_id]);
        ok(
            &xrb,
            &["peer", "add", &xaa_id, "--state", "XAA", "--name", "XAA"],
        );
        ok(&xrb, &["trust", "XAA", "--state-key", &xaa_key]);
        Fed {
            tmp,
            xaa,
            xrb,
            xrc,
            xaa_id,
            xrb_id,
            xrc_id,
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Adds and publishes targets on XAA.
    fn publish(&self, ids: &[&str]) {
        for id in ids {
            let args = target(id);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ok(&self.xaa, &args);
            ok(&self.xaa, &["target", "publish", id]);
        }
    }

    /// `bundle export` on XAA; its JSON.
    fn export(&self, extra: &[&str], out: &Path) -> Value {
        let mut args = vec!["bundle", "export", "--out", s(out), "--json"];
        args.extend_from_slice(extra);
        json(&self.xaa, &args)
    }

    /// `bundle import` on XRB; its JSON.
    fn import(&self, file: &Path, receipt: &Path) -> Value {
        json(
            &self.xrb,
            &[
                "bundle",
                "import",
                s(file),
                "--receipt",
                s(receipt),
                "--json",
            ],
        )
    }
}

/// The documents a home holds, with heads and change counts.
fn holdings(home: &Path) -> Vec<(String, Vec<ChangeHash>, usize)> {
    Node::open(home)
        .unwrap()
        .store
        .summaries()
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.heads, d.changes))
        .collect()
}

fn audit_rows(home: &Path) -> usize {
    json(home, &["audit", "--json"]).as_array().unwrap().len()
}

fn target_ids(home: &Path) -> Vec<String> {
    json(home, &["target", "list", "--state", "XAA", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

fn key_of(home: &Path) -> poa_protocol::sign::NodeKey {
    poa_node::Home::open(home).unwrap().key
}

fn doc(id: &str) -> DocId {
    id.parse().unwrap()
}

/// Seals `c` with `signer` and imports it on XRB with `--json`.
fn import_crafted(
    f: &Fed,
    c: &Contents,
    signer: &poa_protocol::sign::NodeKey,
    name: &str,
) -> Output {
    let p = f.file(name);
    std::fs::write(&p, bundle::seal(signer, c).unwrap()).unwrap();
    run(&f.xrb, &["bundle", "import", s(&p), "--json"])
}

#[test]
fn a_bundle_carries_published_targets_across_the_air_gap_once() {
    let f = Fed::new();
    f.publish(&["T1", "T2"]);
    let b1 = f.file("xrb-1.bundle");
    let out = f.export(&["--for", &f.xrb_id], &b1);
    assert_eq!(out["documents"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(out["documents"][0]["doc"], "state/XAA");
    assert_eq!(out["bytes"], std::fs::metadata(&b1).unwrap().len());

    let r1 = f.file("xrb-1.receipt");
    assert!(holdings(&f.xrb).is_empty());
    let got = f.import(&b1, &r1);
    assert!(got["new"].as_u64().unwrap() > 0, "{got}");
    assert_eq!(got["refused"], 0);
    assert_eq!(got["nothing_new"], false);
    assert!(r1.exists());
    assert_eq!(target_ids(&f.xrb), ["T1", "T2"]);
    // The stocktake on XRB reads them too.
    let st = ok(
        &f.xrb,
        &["stocktake", "--cycle", "BMS9", "--format", "json"],
    );
    assert!(st.contains("XAA"), "{st}");
    // XRB holds what XAA holds of state/XAA, at the same heads.
    let mine = holdings(&f.xaa);
    let theirs = holdings(&f.xrb);
    let pick = |h: &[(String, Vec<ChangeHash>, usize)]| {
        h.iter().find(|d| d.0 == "state/XAA").cloned().unwrap()
    };
    assert_eq!(pick(&mine), pick(&theirs));

    // Twice: nothing changes, and it says so.
    let (before, audit) = (holdings(&f.xrb), audit_rows(&f.xrb));
    let again = f.import(&b1, &f.file("again.receipt"));
    assert_eq!(again["new"], 0, "{again}");
    assert_eq!(again["known"], got["new"]);
    assert_eq!(again["nothing_new"], true);
    let text = ok(&f.xrb, &["bundle", "import", s(&b1), "--receipt", s(&r1)]);
    assert!(text.contains("Nothing new"), "{text}");
    assert_eq!(holdings(&f.xrb), before);
    assert_eq!(audit_rows(&f.xrb), audit);

    // FILE is never replaced without --force.
    let size = std::fs::metadata(&b1).unwrap().len();
    fails(
        &f.xaa,
        &["bundle", "export", "--for", "XRB", "--out", s(&b1)],
        "exists",
    );
    std::fs::write(&b1, b"keep").unwrap();
    fails(
        &f.xaa,
        &["bundle", "export", "--for", "XRB", "--out", s(&b1)],
        "--force",
    );
    assert_eq!(std::fs::read(&b1).unwrap(), b"keep");
    let forced = f.export(&["--for", "XRB", "--force"], &b1);
    assert_eq!(forced["bytes"], size, "--for CODE names the same node");

    // Recipients and documents that cannot be: one line each, nothing written.
    let nowhere = f.file("nowhere.bundle");
    for (args, expect) in [
        (vec!["--for", "XZZ"], "no node is pinned here as XZZ's"),
        (vec!["--for", "not-a-code!"], "neither a NodeId"),
        (vec!["--for", &f.xaa_id], "this node's own NodeId"),
        (
            vec!["--for", "XRB", "--docs", "state/XAB"],
            "holds no document state/XAB",
        ),
    ] {
        let mut full = vec!["bundle", "export", "--out", s(&nowhere)];
        full.extend(args);
        fails(&f.xaa, &full, expect);
    }
    assert!(!nowhere.exists());
}

#[test]
fn the_receipt_makes_the_next_bundle_smaller() {
    let f = Fed::new();
    f.publish(&["T1", "T2"]);
    let (b1, r1) = (f.file("1.bundle"), f.file("1.receipt"));
    f.export(&["--for", &f.xrb_id], &b1);
    f.import(&b1, &r1);
    f.publish(&["T3", "T4"]);

    let (full, since) = (f.file("full.bundle"), f.file("since.bundle"));
    let all = f.export(&["--for", &f.xrb_id], &full);
    let part = f.export(&["--for", &f.xrb_id, "--since", s(&r1)], &since);
    let (full_bytes, since_bytes) = (
        std::fs::metadata(&full).unwrap().len(),
        std::fs::metadata(&since).unwrap().len(),
    );
    eprintln!(
        "full bundle: {full_bytes} bytes, {} changes; --since: {since_bytes} bytes, {} changes",
        all["changes"], part["changes"]
    );
    assert!(since_bytes < full_bytes, "{since_bytes} >= {full_bytes}");
    assert!(part["changes"].as_u64().unwrap() < all["changes"].as_u64().unwrap());
    assert_eq!(part["since"], true);

    // XAA now knows what XRB holds, as a sync session would have recorded it.
    let receipt = bundle::open_receipt(&std::fs::read(&r1).unwrap(), None).unwrap();
    let xrb: NodeId = f.xrb_id.parse().unwrap();
    let xaa: NodeId = f.xaa_id.parse().unwrap();
    let shared = Node::open(&f.xaa)
        .unwrap()
        .store
        .shared_heads(&xrb, &doc("state/XAA"))
        .unwrap();
    let sorted = |mut v: Vec<ChangeHash>| {
        v.sort();
        v
    };
    assert_eq!(sorted(shared), sorted(receipt.docs[0].1.clone()));

    // The smaller bundle brings XRB up to date.
    let got = f.import(&since, &f.file("2.receipt"));
    assert_eq!(got["refused"], 0, "{got}");
    assert_eq!(got["waiting"], 0, "{got}");
    assert_eq!(target_ids(&f.xrb), ["T1", "T2", "T3", "T4"]);
    let heads = |h: &Path| {
        holdings(h)
            .into_iter()
            .find(|d| d.0 == "state/XAA")
            .unwrap()
            .1
    };
    assert_eq!(heads(&f.xrb), heads(&f.xaa));
    let shared_here = Node::open(&f.xrb)
        .unwrap()
        .store
        .shared_heads(&xaa, &doc("state/XAA"))
        .unwrap();
    assert_eq!(sorted(shared_here), sorted(heads(&f.xaa)));

    // An old bundle replayed changes nothing.
    let before = holdings(&f.xrb);
    let replay = f.import(&b1, &f.file("3.receipt"));
    assert_eq!(replay["nothing_new"], true, "{replay}");
    assert_eq!(holdings(&f.xrb), before);

    // Receipts that are not the recipient's own, for this exporter, are refused.
    fails(
        &f.xaa,
        &[
            "bundle",
            "export",
            "--for",
            &f.xrc_id,
            "--since",
            s(&r1),
            "--out",
            s(&f.file("x.bundle")),
        ],
        "not by the recipient",
    );
    let mut flipped = std::fs::read(&r1).unwrap();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    let bad = f.file("flipped.receipt");
    std::fs::write(&bad, &flipped).unwrap();
    fails(
        &f.xaa,
        &[
            "bundle",
            "export",
            "--for",
            "XRB",
            "--since",
            s(&bad),
            "--out",
            s(&f.file("y.bundle")),
        ],
        "does not match its content",
    );
    let mut other = receipt.clone();
    other.exporter = f.xrc_id.parse().unwrap();
    let forged = f.file("other-exporter.receipt");
    std::fs::write(
        &forged,
        bundle::seal_receipt(&key_of(&f.xrb), &other).unwrap(),
    )
    .unwrap();
    fails(
        &f.xaa,
        &[
            "bundle",
            "export",
            "--for",
            "XRB",
            "--since",
            s(&forged),
            "--out",
            s(&f.file("z.bundle")),
        ],
        "not from this node",
    );
    // Signed by XRC in XRB's name: the signature does not hold.
    let mut lie = bundle::seal_receipt(&key_of(&f.xrc), &receipt).unwrap();
    lie[13..45].copy_from_slice(&xrb.0);
    let lie_file = f.file("lie.receipt");
    std::fs::write(&lie_file, &lie).unwrap();
    fails(
        &f.xaa,
        &[
            "bundle",
            "export",
            "--for",
            "XRB",
            "--since",
            s(&lie_file),
            "--out",
            s(&f.file("w.bundle")),
        ],
        "does not match its content",
    );
    for name in ["x.bundle", "y.bundle", "z.bundle", "w.bundle"] {
        assert!(!f.file(name).exists());
    }
}

#[test]
fn tampered_misaddressed_and_garbage_bundles_are_refused_with_nothing_applied() {
    let f = Fed::new();
    ok(&f.xaa, &["share", "state/XAA", "--with", &f.xrc_id]);
    f.publish(&["T1"]);
    let (b1, for_xrc) = (f.file("xrb.bundle"), f.file("xrc.bundle"));
    f.export(&["--for", &f.xrb_id], &b1);
    f.export(&["--for", "XRC"], &for_xrc);

    fails(&f.xrb, &["bundle", "import", s(&for_xrc)], "is for node");
    assert!(holdings(&f.xrb).is_empty());
    assert!(!f.file("xrc.bundle.receipt").exists());

    // A flipped byte, through the command line, at a few places.
    let good = std::fs::read(&b1).unwrap();
    for at in [
        0,
        11,
        20,
        50,
        good.len() / 2,
        good.len() - 70,
        good.len() - 1,
    ] {
        let mut bad = good.clone();
        bad[at] ^= 0x20;
        let p = f.file(&format!("flipped-{at}.bundle"));
        std::fs::write(&p, &bad).unwrap();
        let out = run(&f.xrb, &["bundle", "import", s(&p)]);
        assert!(!out.status.success(), "a byte flipped at {at} was imported");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim().lines().count(),
            1
        );
    }
    assert!(holdings(&f.xrb).is_empty());

    // Property-style, through the library on XRB's real store: every position flipped (each
    // of two bit patterns), every truncation, garbage, and nothing ever applied.
    let mut node = Node::open(&f.xrb).unwrap();
    let nothing = |n: &Node| n.store.summaries().unwrap().is_empty();
    let quiet = |_: String| {};
    let step = (good.len() / 3000).max(1);
    for at in (0..good.len()).step_by(step) {
        for bit in [0x01u8, 0x80] {
            let mut bad = good.clone();
            bad[at] ^= bit;
            assert!(
                bundle::import(&mut node, &bad, &quiet).is_err(),
                "byte {at} ^ {bit:#x} was taken"
            );
        }
    }
    for len in (0..good.len()).step_by(step) {
        assert!(bundle::import(&mut node, &good[..len], &quiet).is_err());
    }
    let mut extended = good.clone();
    extended.push(0);
    assert!(bundle::import(&mut node, &extended, &quiet).is_err());
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for n in [0usize, 1, 12, 84, 150, 4096] {
        let mut garbage: Vec<u8> = (0..n).map(|_| rand() as u8).collect();
        assert!(bundle::import(&mut node, &garbage, &quiet).is_err());
        // With a bundle's own first 84 bytes: passes the fixed checks, fails the signature.
        if n > 84 {
            garbage[..84].copy_from_slice(&good[..84]);
            assert!(bundle::import(&mut node, &garbage, &quiet).is_err());
        }
    }
    assert!(nothing(&node));

    // Signed by XAA, but with lying lengths and garbage frames: refused before any parser
    // allocates what they announce, and nothing applied.
    let key = key_of(&f.xaa);
    let fixed = &good[..84];
    let signed = |tail: &[u8]| {
        let mut content = fixed.to_vec();
        content.extend_from_slice(tail);
        bundle::sign_raw(&key, content)
    };
    let mut huge_frame = u32::MAX.to_be_bytes().to_vec();
    huge_frame.extend_from_slice(&[0; 16]);
    let mut just_over = ((8u32 << 20) + 1).to_be_bytes().to_vec();
    just_over.extend_from_slice(&[0; 16]);
    let mut past_end = 1000u32.to_be_bytes().to_vec();
    past_end.extend_from_slice(&[0; 10]);
    // A header frame whose bincode claims a name of 2^60 bytes (version 2, a node, then the
    // name's length as a varint: 0xfd and a little-endian u64).
    let mut huge_vec = 42u32.to_be_bytes().to_vec();
    huge_vec.push(2);
    huge_vec.extend_from_slice(&[7; 32]);
    huge_vec.push(0xfd);
    huge_vec.extend_from_slice(&(1u64 << 60).to_le_bytes());
    let mut random = 4000u32.to_be_bytes().to_vec();
    random.extend((0..4000).map(|_| rand() as u8));
    for (what, tail) in [
        ("a frame of 4 GiB", huge_frame),
        ("a frame over the maximum", just_over),
        ("a frame past the end", past_end),
        ("a length of 2^60", huge_vec),
        ("random frames", random),
    ] {
        let bytes = signed(&tail);
        match bundle::import(&mut node, &bytes, &quiet) {
            Err(bundle::BundleError::Malformed(..)) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    assert!(bundle::import(&mut node, &signed(&[]), &quiet).is_err());
    // Another version, signed: refused by its version.
    let mut v2 = good[..good.len() - 64].to_vec();
    v2[11] = 2;
    let v2 = bundle::sign_raw(&key, v2);
    assert!(matches!(
        bundle::import(&mut node, &v2, &quiet),
        Err(bundle::BundleError::Version(..))
    ));
    assert!(nothing(&node));
    drop(node);

    // A file over the cap is refused before it is read (sparse: no disk used).
    let big = f.file("big.bundle");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(bundle::MAX_BUNDLE_BYTES + 1).unwrap();
    drop(file);
    fails(
        &f.xrb,
        &["bundle", "import", s(&big)],
        "more than a bundle may be",
    );

    // The untouched bundle still imports: the refusals left nothing behind.
    let got = f.import(&b1, &f.file("ok.receipt"));
    assert_eq!(got["refused"], 0, "{got}");
    assert_eq!(target_ids(&f.xrb), ["T1"]);
}

#[test]
fn what_the_recipient_may_not_take_never_arrives() {
    let f = Fed::new();
    f.publish(&["T1"]);
    // A draft target, never published.
    let args = target("T9");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&f.xaa, &args);

    // The exporter never includes the draft, nor anything not shared with XRB.
    let b1 = f.file("xrb.bundle");
    f.export(&["--for", "XRB"], &b1);
    let (signer, contents) = bundle::open(&std::fs::read(&b1).unwrap()).unwrap();
    assert_eq!(signer.to_string(), f.xaa_id);
    let docs: Vec<String> = contents.docs.iter().map(|d| d.doc.to_string()).collect();
    assert_eq!(docs, ["state/XAA"]);
    let keys: Vec<&str> = contents.docs[0]
        .changes
        .iter()
        .flat_map(|c| c.data.ops.iter().map(|o| o.key.as_str()))
        .collect();
    assert!(keys.iter().any(|k| k.starts_with("T1")), "{keys:?}");
    assert!(!keys.iter().any(|k| k.starts_with("T9")), "{keys:?}");
    fails(
        &f.xaa,
        &[
            "bundle",
            "export",
            "--for",
            "XRB",
            "--docs",
            "state/XAA/draft",
            "--out",
            s(&f.file("draft.bundle")),
        ],
        "may not read state/XAA/draft",
    );
    // XRC was never shared anything.
    fails(
        &f.xaa,
        &[
            "bundle",
            "export",
            "--for",
            "XRC",
            "--out",
            s(&f.file("xrc.bundle")),
        ],
        "may read no document",
    );

    let key = key_of(&f.xaa);
    let draft = doc("state/XAA/draft");
    let draft_changes = {
        let n = Node::open(&f.xaa).unwrap();
        n.store
            .with_ledger(&draft, |l| {
                l.exported_since(&[])
                    .iter()
                    .filter_map(|h| l.signed(h))
                    .collect::<Vec<_>>()
            })
            .unwrap()
            .unwrap()
    };

    // A hand-crafted bundle, signed by XAA, smuggling the draft: not taken.
    let mut smuggle = contents.clone();
    smuggle.docs.push(BundleDoc {
        doc: draft.clone(),
        heads: Vec::new(),
        changes: draft_changes,
    });
    let out = import_crafted(&f, &smuggle, &key, "smuggle.bundle");
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["documents"][1]["not_taken"]
            .as_str()
            .unwrap()
            .contains("draft"),
        "{report}"
    );
    let held: Vec<String> = holdings(&f.xrb).into_iter().map(|d| d.0).collect();
    assert_eq!(held, ["state/XAA"], "the draft reached XRB");
    // Start again from an empty XRB for the forged change.
    let f = {
        drop(f);
        let f = Fed::new();
        f.publish(&["T1"]);
        f
    };
    let b1 = f.file("xrb.bundle");
    f.export(&["--for", "XRB"], &b1);
    let (_, contents) = bundle::open(&std::fs::read(&b1).unwrap()).unwrap();
    let key = key_of(&f.xaa);

    // A forged change (a published value altered, the author's signature kept), in a bundle
    // XAA signed: refused at the gate, and nothing of the document is applied.
    let mut forged = contents.clone();
    let last = forged.docs[0].changes.last_mut().unwrap();
    let mut altered = 0;
    for op in &mut last.data.ops {
        if let FlatAction::Put { value, .. } = &mut op.action
            && value.contains("Mark State-held")
        {
            *value = value.replace("Mark State-held", "Sell State-held");
            altered += 1;
        }
    }
    assert!(
        altered > 0,
        "the last change holds no target: {:?}",
        last.data.ops
    );
    let out = import_crafted(&f, &forged, &key, "forged.bundle");
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let why = report["documents"][0]["not_taken"].as_str().unwrap();
    assert!(why.contains("signature does not verify"), "{why}");
    assert_eq!(report["new"], 0);
    assert!(
        holdings(&f.xrb).is_empty(),
        "part of the forged bundle was applied"
    );

    // XAA's bundle re-signed by XRC: from a node not pinned here, refused; once XRC is pinned
    // (as nothing), judged as from XRC, which may not read state/XAA here: nothing taken.
    let resigned = f.file("resigned.bundle");
    let mut as_xrc = contents.clone();
    as_xrc.hello.node = f.xrc_id.parse().unwrap();
    as_xrc.hello.claims =
        poa_protocol::wire::Claim::Body("XRC".parse().unwrap(), poa_protocol::BodyKind::Regional);
    as_xrc.hello.key = None;
    std::fs::write(&resigned, bundle::seal(&key_of(&f.xrc), &as_xrc).unwrap()).unwrap();
    fails(
        &f.xrb,
        &["bundle", "import", s(&resigned)],
        "not pinned here",
    );
    ok(&f.xrb, &["peer", "add", &f.xrc_id, "--name", "XRC"]);
    let out = run(&f.xrb, &["bundle", "import", s(&resigned), "--json"]);
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["documents"][0]["not_taken"]
            .as_str()
            .unwrap()
            .contains("may not read it"),
        "{report}"
    );
    assert!(holdings(&f.xrb).is_empty());

    // The real bundle is still taken whole.
    let got = f.import(&b1, &f.file("ok.receipt"));
    assert_eq!(got["refused"], 0, "{got}");
    assert_eq!(target_ids(&f.xrb), ["T1"]);
}
