//! A seed is a whole reproducible run: the same seed gives the same trace.
//! Simulation build only: `RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim cargo test -p ff-sim`.
#![cfg(madsim)]

use ff_sim::run::{run_seed, SimConfig};

#[test]
fn the_same_seed_gives_the_same_trace() {
    ff_sim::prepare_process();
    for seed in [7, 42] {
        let a = run_seed(SimConfig::new(seed));
        let b = run_seed(SimConfig::new(seed));
        assert!(
            a.passed(),
            "seed {seed}: {:?}\nreplay: {}",
            a.violations,
            ff_sim::replay_command(seed)
        );
        assert!(
            a.trace_events > 100,
            "seed {seed} did too little to compare"
        );
        if (a.trace_hash, a.trace_events) != (b.trace_hash, b.trace_events) {
            let at = a.log.iter().zip(&b.log).position(|(x, y)| x != y);
            let show = |l: &Vec<String>, i: usize| {
                l[i.saturating_sub(3)..(i + 2).min(l.len())].join("\n  ")
            };
            panic!("seed {seed} did not replay exactly ({} vs {} logged); first difference at event {at:?}:\n  {}\nvs\n  {}", a.log.len(), b.log.len(), at.map_or(String::new(), |i| show(&a.log, i)), at.map_or(String::new(), |i| show(&b.log, i)));
        }
    }
}

#[test]
fn different_seeds_give_different_runs() {
    ff_sim::prepare_process();
    let a = run_seed(SimConfig::new(1));
    let b = run_seed(SimConfig::new(2));
    assert_ne!(a.trace_hash, b.trace_hash);
}
