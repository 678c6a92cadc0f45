//! The scanners, pure: what to act on in one snapshot ([`plan`]), the
//! schedule of every scanner as a plain value ([`Schedule`]: events in, reads
//! and calls out, time passed in), the admission decisions ([`unblock`]), and
//! the announcements the engine follows ([`WakeMessage`], [`ReadyMessage`]).

mod admission;
mod batch;
mod fire;
mod messages;
mod plan;
mod schedule;
pub mod unblock;

pub use admission::AdmissionScan;
pub use batch::{parse_members, parse_page, read_heads, read_page};
pub use messages::{ReadyMessage, WakeMessage};
pub use plan::{next_wake, plan, read_limit, record_results, ItemResult, Member, Plan, Snapshot};
pub use schedule::{CycleReport, Notice, ScanWork, Schedule, Settings, Slot, Wake};
