//! ff-engine: the I/O shell of ff.
//!
//! [`store::Store`] is the seam to Valkey: [`store::RedisStore`] talks to a real
//! server (standalone or cluster). [`Client`] is the typed API over the data
//! plane (the Valkey Functions library in `lua/`).

#![warn(missing_docs)]

pub mod client;
pub mod engine;
pub mod error;
pub mod failure;
pub mod inspect;
pub mod job_type;
pub mod store;
pub mod worker;

pub use client::spec::ExecutionSpec;
pub use client::{Client, Counts, JobHandle, ListQuery, Outcome, Page, Requeued, Series};
pub use engine::{Engine, EngineConfig};
pub use error::Error;
pub use failure::Failure;
pub use ff_core as core;
pub use job_type::{Codec, CodecError, JobType};
pub use prometheus_client;

/// The README's example, compiled as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct Readme;
