//! ff-sim: the deterministic simulator.
//!
//! One seed is one whole run: an engine, several workers (the real `Worker`
//! runtime) and a client creating executions with random policies, all on one
//! [`ff_engine::store::MemoryStore`] behind a [`faults::FaultyStore`] that
//! injects latency, errors, replies lost after the write applied, lost pub/sub
//! messages, store restarts that lose the function library, and clock jumps;
//! engine and worker nodes crash and restart. Invariants are checked after
//! every step (safety) and, once faults stop, every execution must reach a
//! terminal state within a bound (liveness).
//!
//! Runs only in the madsim build:
//! `RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim cargo run -p ff-sim -- --seeds 50`
//! (or `./scripts/sim 50`). A normal build compiles the pure parts only.

pub mod faults;
pub mod invariants;
pub mod trace;
pub mod workload;

#[cfg(madsim)]
pub mod run;

/// The command that replays one seed.
pub fn replay_command(seed: u64) -> String {
    format!("./scripts/sim --seed {seed}")
}
