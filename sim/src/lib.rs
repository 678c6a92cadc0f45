//! ff-sim: the deterministic simulator.
//!
//! One seed is one whole run: 1–5 engine replicas, several workers (the real `Worker`
//! runtime) and a client creating executions with random policies, all on one
//! [`ff_engine::store::MemoryStore`] behind a [`faults::FaultyStore`] that
//! injects latency, errors, replies lost after the write applied, lost pub/sub
//! messages, store restarts that lose the function library, and clock jumps;
//! engine and worker nodes crash and restart, and a replica may be cut off from
//! the store ([`faults::CutStore`]). Invariants are checked after every step
//! (safety) and, once faults stop, every execution must reach a terminal state
//! and every partition must have exactly one owner within a bound (liveness).
//!
//! Runs only in the madsim build:
//! `RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim cargo run -p ff-sim -- --seeds 50`
//! (or `./scripts/sim 50`). A normal build compiles the pure parts only.

pub mod admission;
pub mod faults;
pub mod flows;
pub mod invariants;
pub mod schedules;
pub mod trace;
pub mod workload;

#[cfg(madsim)]
pub mod run;

/// The command that replays one seed.
pub fn replay_command(seed: u64) -> String {
    format!("./scripts/sim --seed {seed}")
}

/// Call once per process before the first run (simulation build).
///
/// std's HashMap draws its per-thread hash keys from the random source the
/// first time one is made. Inside a run that draw would come from the run's
/// simulated randomness and shift every later draw, so the first seed of a
/// process would not replay like the same seed run later. Making the keys here,
/// inside a throw-away simulation with a fixed seed, keeps every run of a seed
/// identical in any process and in any position.
#[cfg(madsim)]
pub fn prepare_process() {
    madsim::runtime::Runtime::with_seed_and_config(0, madsim::Config::default()).block_on(async {
        let _ = std::collections::HashMap::<u8, u8>::new();
    });
}
