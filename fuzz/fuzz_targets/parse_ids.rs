//! Arbitrary text into every id and name parser; what parses must re-display
//! as the same text. Logic in `ff_fuzz::parse_ids` (replayed by `cargo test`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ff_fuzz::parse_ids(data));
