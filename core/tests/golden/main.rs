//! Golden tests of ff-core's surface the data plane depends on: every FCALL
//! contract's arguments and reply decoding, spelled out byte for byte, and
//! every key builder against docs/data-layout.md. The Lua in `lua/` reads
//! these exact shapes, so a change here is a change of the wire contract.
//! (One test binary, so a mutation run links it once.)

mod admission;
mod execution;
mod flow;
mod keys;
mod misc;
mod scan;
mod schedule;
mod support;
mod suspension;
