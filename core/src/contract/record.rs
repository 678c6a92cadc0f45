//! Fields of an execution record a creation leaves out when they hold their
//! common value: an absent one reads as that value. Most executions use the
//! defaults, and each field left out is memory per execution and a shorter
//! record for every transition to search (docs/data-layout.md).
//!
//! Part of the stored format: a value here never changes, or records
//! written without the field would change meaning. ff-engine's
//! `ExecutionSpec` defaults to these values, so its executions leave the
//! fields out; a spec with other values stores them.

use crate::retry::RetryPolicy;

/// The namespace an execution is in when its record has no `ns`.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Lease reclaims allowed when the record has no `max_reclaims`.
pub const DEFAULT_MAX_RECLAIMS: u32 = 3;
/// How long an ended execution is kept when the record has no `retention`.
pub const DEFAULT_RETENTION_MS: u64 = 24 * 3_600_000;

/// Each field left out when equal to its value, and that value as stored.
/// (The retry policy's is [`RetryPolicy::default`] encoded.)
pub fn absent_fields() -> [(&'static str, String); 6] {
    [
        ("ns", DEFAULT_NAMESPACE.to_owned()),
        ("pri", "0".to_owned()),
        ("att_timeout", "0".to_owned()),
        ("retry", RetryPolicy::default().encode()),
        ("retention", DEFAULT_RETENTION_MS.to_string()),
        ("max_reclaims", DEFAULT_MAX_RECLAIMS.to_string()),
    ]
}

/// What an absent `field` of a record reads as, if it is one left out.
pub fn absent_value(field: &str) -> Option<String> {
    absent_fields()
        .into_iter()
        .find(|(f, _)| *f == field)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_read_as_the_spec_defaults() {
        assert_eq!(absent_value("ns").as_deref(), Some("default"));
        assert_eq!(absent_value("pri").as_deref(), Some("0"));
        assert_eq!(absent_value("att_timeout").as_deref(), Some("0"));
        assert_eq!(
            absent_value("retry").as_deref(),
            Some("3:e:1000:60000:equal")
        );
        assert_eq!(absent_value("retention").as_deref(), Some("86400000"));
        assert_eq!(absent_value("max_reclaims").as_deref(), Some("3"));
        assert_eq!(absent_value("lane"), None);
        assert_eq!(absent_value("phase"), None);
    }
}
