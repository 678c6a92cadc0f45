//! ff-cli: the `ff` command's code, kept out of the library (`ff-engine`) so
//! that embedding ff pulls neither clap, indicatif, toml, tracing-subscriber
//! nor mimalloc.
//!
//! [`serve`] is `ff engine`'s process loop (engine + metrics endpoint),
//! [`config_source`] loads its configuration from a file, `FF_` variables and
//! flags, [`demo`] and [`bench`](mod@bench) are `ff demo` and `ff bench`,
//! [`tls`] the certificate flags of `ff engine` and `ff inspect`,
//! [`dashboard`] the web dashboard (`ff dashboard`, or a router to mount).

#![warn(missing_docs)]

pub mod bench;
pub mod config_source;
pub mod dashboard;
pub mod demo;
pub mod ops;
mod progress;
pub mod schedule;
pub mod serve;
pub mod tls;
