//! Arbitrary operation sequences (read with `arbitrary`) against the Lua data
//! plane on a fresh MemoryStore. Logic in `ff_fuzz::data_plane` (replayed by
//! `cargo test`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ff_fuzz::data_plane(data));
