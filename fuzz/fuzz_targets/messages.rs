//! Arbitrary bytes into the wake-up and ready notification parsers. Logic in
//! `ff_fuzz::messages` (replayed by `cargo test`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ff_fuzz::messages(data));
