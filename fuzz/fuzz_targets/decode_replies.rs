//! An arbitrary `Reply` tree (decoded from the input bytes) into every contract
//! decoder; none may panic. Logic in `ff_fuzz::decode_replies` (replayed by
//! `cargo test`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ff_fuzz::decode_replies(data));
