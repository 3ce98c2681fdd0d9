#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poa_protocol::fuzzing::sync_message(data));
