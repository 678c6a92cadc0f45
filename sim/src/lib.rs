//! ff-sim: the deterministic simulator. It will run the engine, workers and
//! clients on the in-process store under madsim time with injected faults
//! (issue 5). Built with `RUSTFLAGS="--cfg madsim"` in `target/sim`.
