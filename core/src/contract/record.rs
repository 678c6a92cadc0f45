//! Fields of an execution record a creation leaves out when they hold their
//! common value: an absent one reads as that value. Most executions use the
//! defaults, and each field left out is memory per execution and a shorter
//! record for every transition to search (docs/data-layout.md).
//!
//! Part of the stored format: a value here never changes, or records
//! written without the field would change meaning. ff-engine's
//! `ExecutionSpec` defaults to these values, so its executions leave the
//! fields out; a spec with other values stores them.

/// The namespace an execution is in when its record has no `ns`.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Lease reclaims allowed when the record has no `max_reclaims`.
pub const DEFAULT_MAX_RECLAIMS: u32 = 3;
/// How long an ended execution is kept when the record has no `retention`.
pub const DEFAULT_RETENTION_MS: u64 = 24 * 3_600_000;

/// Each field left out when equal to its value, and that value as stored.
/// Spelled out rather than derived from the defaults above or from
/// `RetryPolicy::default()`: changing a default must not change what an
/// absent field means (the test below holds them equal).
pub const ABSENT_FIELDS: [(&str, &str); 6] = [
    ("ns", "default"),
    ("pri", "0"),
    ("att_timeout", "0"),
    ("retry", "3:e:1000:60000:equal"),
    ("retention", "86400000"),
    ("max_reclaims", "3"),
];

/// What an absent `field` of a record reads as, if it is one left out.
pub fn absent_value(field: &str) -> Option<&'static str> {
    ABSENT_FIELDS
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_read_as_the_spec_defaults() {
        assert_eq!(absent_value("ns"), Some("default"));
        assert_eq!(absent_value("pri"), Some("0"));
        assert_eq!(absent_value("att_timeout"), Some("0"));
        assert_eq!(absent_value("retry"), Some("3:e:1000:60000:equal"));
        assert_eq!(absent_value("retention"), Some("86400000"));
        assert_eq!(absent_value("max_reclaims"), Some("3"));
        assert_eq!(absent_value("lane"), None);
        assert_eq!(absent_value("phase"), None);
        // (the defaults ExecutionSpec takes are these, so its records leave
        // the fields out)
        let spec_defaults = [
            DEFAULT_NAMESPACE.to_owned(),
            DEFAULT_RETENTION_MS.to_string(),
            DEFAULT_MAX_RECLAIMS.to_string(),
            crate::retry::RetryPolicy::default().encode(),
        ];
        let stored = ["ns", "retention", "max_reclaims", "retry"].map(absent_value);
        assert_eq!(stored.map(|v| v.unwrap().to_owned()), spec_defaults);
    }
}
