//! ff-core's decisions given states that must and must not pass: the index
//! invariant, retry backoff, joins, the failure tracker, ownership, admission
//! and errors. Exact expected values, boundaries on both sides.
//! (One test binary, so a mutation run links it once.)

mod admission;
mod admission_cycle;
mod basics;
mod fire_cycle;
mod flow;
mod invariant;
mod ownership;
mod scan;
mod schedule;
mod tracker;
mod unblock;
