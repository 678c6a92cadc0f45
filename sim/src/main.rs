//! `ff-sim`: run simulator seeds (madsim build only; see `./scripts/sim`).
//!
//! ```text
//! ff-sim --seeds N [--start S]   run seeds S..S+N, one JSON summary line at the end
//! ff-sim --seed N [--verbose]    run one seed and print its report
//! ```

#[cfg(madsim)]
fn main() {
    use ff_sim::run::{run_seed, SimConfig};
    ff_sim::prepare_process();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let started = std::time::Instant::now();
    let (seeds, single): (Vec<u64>, bool) = match (flag("--seed"), flag("--seeds")) {
        (Some(s), _) => (vec![s], true),
        (None, Some(n)) => {
            let start = flag("--start").unwrap_or(1);
            ((start..start + n).collect(), false)
        }
        (None, None) => {
            eprintln!("usage: ff-sim --seeds N [--start S] | --seed N");
            std::process::exit(2);
        }
    };
    let mut failing = Vec::new();
    let mut simulated_ms = 0u64;
    for seed in &seeds {
        let report = run_seed(SimConfig::new(*seed));
        simulated_ms += report.simulated_ms;
        let status = if report.passed() { "ok" } else { "FAILED" };
        eprintln!(
            "seed {seed}: {status} — {} created, outcomes {:?}, faults {:?}, {} engines (ownership {}), crashes e{}/w{}, engine cuts {}, store restarts {}, clock jumps {}, zombies {}, resumes {} ({} by signal), waiters {}/{}, operator requeued {} deleted {} paused {}, trace {:016x} ({} events), {} s simulated",
            report.created,
            report.outcomes.iter().map(|(s, n)| format!("{s}={n}")).collect::<Vec<_>>(),
            report.faults,
            report.engines,
            if report.ownership { "on" } else { "off" },
            report.engine_crashes,
            report.worker_crashes,
            report.engine_cuts,
            report.store_restarts,
            report.clock_jumps,
            report.zombie_attempts,
            report.resumes,
            report.resumed_by_signal,
            report.waited,
            report.waiters,
            report.requeued,
            report.deleted,
            report.pauses,
            report.trace_hash,
            report.trace_events,
            report.simulated_ms / 1000
        );
        if !report.passed() {
            for v in &report.violations {
                eprintln!("  violation: {v}");
            }
            eprintln!("  replay: {}", ff_sim::replay_command(*seed));
            failing.push(*seed);
        }
        if single && args.iter().any(|a| a == "--verbose") {
            eprintln!("{report:#?}");
        }
    }
    println!(
        "{{\"seeds\":{},\"failed\":{},\"failing_seeds\":{:?},\"simulated_seconds\":{},\"wall_seconds\":{:.1}}}",
        seeds.len(),
        failing.len(),
        failing,
        simulated_ms / 1000,
        started.elapsed().as_secs_f64()
    );
    if !failing.is_empty() {
        std::process::exit(1);
    }
}

#[cfg(not(madsim))]
fn main() {
    eprintln!("ff-sim runs only in the simulation build: ./scripts/sim N");
    std::process::exit(2);
}
