//! The failure tracker under arbitrary event sequences, against a model, and
//! `scan::plan` on arbitrary snapshots. Logic in `ff_fuzz::tracker` (replayed
//! by `cargo test`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ff_fuzz::tracker(data));
