//! The flow completion listener's dispatch planner under arbitrary events,
//! and the settlement reference on arbitrary small DAGs. Logic in
//! `ff_fuzz::cascade` (replayed by `cargo test`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ff_fuzz::cascade(data));
