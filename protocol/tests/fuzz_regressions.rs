//! Replays every input the fuzzers found worth keeping (`fuzz/regressions/<target>/`), on the
//! stable toolchain: each must run through its target without a panic. A crash input found by
//! `cargo fuzz` is copied there, fixed, and stays as a regression test.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("the regressions folder exists") {
        let path = entry.expect("a readable entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("a readable input");
        f(&bytes);
        n += 1;
    }
    // Every target has at least its seed inputs.
    assert!(n > 0, "no inputs in {}", dir.display());
}

#[test]
fn frame_decoder_inputs() {
    replay("frame_decoder", poa_protocol::fuzzing::frame_decoder);
}

#[test]
fn change_decoder_inputs() {
    replay("change_decoder", poa_protocol::fuzzing::change_decoder);
}

#[test]
fn gate_inputs() {
    replay("gate", poa_protocol::fuzzing::gate);
}

#[test]
fn document_load_inputs() {
    replay("document_load", poa_protocol::fuzzing::document_load);
}

#[test]
fn sync_message_inputs() {
    replay("sync_message", poa_protocol::fuzzing::sync_message);
}
