//! Where an [`EngineConfig`] comes from when ff runs as a process: a TOML
//! file, then `FF_<FIELD>` environment variables, then `--<field>` flags, each
//! overriding the one before, over [`EngineConfig::default`].
//!
//! Every field is one row of [`FIELDS`]: its file key, environment name and
//! flag all derive from that row, so a new `EngineConfig` field is one line
//! here. Keys are flat (`flow_partitions`, not `partitions.flow_partitions`).
//! Values are text in one format whatever the source:
//!
//! * durations: an integer with a unit, `ms`, `s`, `m` or `h` (`"1500ms"`,
//!   `"2s"`); a bare number is refused, so no one guesses the unit;
//! * counts: a decimal integer (a TOML integer or a string);
//! * `namespace`: a name, empty for none; `instance_tag`: `tag=value`, empty
//!   for none.
//!
//! ```
//! use ff_cli::config_source::{load, Sources};
//! use std::time::Duration;
//!
//! let file = "batch_size = 100\nlease_expiry_interval = \"2s\"\n";
//! let env = |name: &str| (name == "FF_BATCH_SIZE").then(|| "150".to_owned());
//! let flags = [("lease_expiry_interval", "500ms".to_owned())];
//! let config = load(Sources { file: Some(("ff.toml", file)), env: &env, flags: &flags }).unwrap();
//! assert_eq!(config.batch_size, 150);
//! assert_eq!(config.lease_expiry_interval, Duration::from_millis(500));
//! ```

use ff_core::{Namespace, TagName};
use ff_engine::EngineConfig;
use std::time::Duration;

/// Why a configuration could not be loaded. Every variant names where the
/// bad value came from and the field or key it was for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML.
    #[error("{origin}: {reason}")]
    Syntax {
        /// The file's name.
        origin: String,
        /// The parser's message (with line and column).
        reason: String,
    },
    /// The file has a key that is no field.
    #[error("{origin}: unknown key `{key}` (known keys: {})", known_keys())]
    UnknownKey {
        /// The file's name.
        origin: String,
        /// The key.
        key: String,
    },
    /// A value that does not parse for its field.
    #[error("{origin}: {field}: {reason}")]
    Value {
        /// The file, the environment variable or the flag.
        origin: String,
        /// The field.
        field: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// Every value parsed but the whole is invalid ([`EngineConfig::validate`]).
    #[error("invalid engine configuration: {0}")]
    Invalid(String),
}

/// One settable field of [`EngineConfig`].
#[derive(Clone, Copy)]
pub struct Field {
    /// The file key; `FF_` + upper case for the environment; `--` + dashes
    /// for the flag.
    pub name: &'static str,
    /// What the value means.
    pub help: &'static str,
    /// Parse a value into the config.
    pub set: fn(&mut EngineConfig, &str) -> Result<(), String>,
    /// The field's value in this module's format.
    pub get: fn(&EngineConfig) -> String,
}

impl std::fmt::Debug for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl Field {
    /// The environment variable: `FF_` and the name in upper case.
    pub fn env_name(&self) -> String {
        format!("FF_{}", self.name.to_ascii_uppercase())
    }

    /// The flag without its dashes: the name with `-` for `_`.
    pub fn flag_name(&self) -> String {
        self.name.replace('_', "-")
    }
}

macro_rules! duration {
    ($($path:ident).+, $help:expr) => {
        Field {
            name: last!($($path)+),
            help: $help,
            set: |c, v| {
                c.$($path).+ = parse_duration(v)?;
                Ok(())
            },
            get: |c| format_duration(c.$($path).+),
        }
    };
}

macro_rules! number {
    ($($path:ident).+, $help:expr) => {
        Field {
            name: last!($($path)+),
            help: $help,
            set: |c, v| {
                c.$($path).+ = v
                    .trim()
                    .parse()
                    .map_err(|e| format!("expected an integer, got {v:?} ({e})"))?;
                Ok(())
            },
            get: |c| c.$($path).+.to_string(),
        }
    };
}

/// A partition count: setting one sets the counts (the others at their
/// defaults unless set too); unset (empty), the recorded counts are used.
macro_rules! partitions {
    ($field:ident, $help:expr) => {
        Field {
            name: stringify!($field),
            help: $help,
            set: |c, v| {
                if v.trim().is_empty() {
                    return Ok(());
                }
                c.partitions.get_or_insert_with(Default::default).$field = v
                    .trim()
                    .parse()
                    .map_err(|e| format!("expected an integer, got {v:?} ({e})"))?;
                Ok(())
            },
            get: |c| {
                c.partitions
                    .map_or_else(String::new, |p| p.$field.to_string())
            },
        }
    };
}

macro_rules! last {
    ($first:ident) => { stringify!($first) };
    ($first:ident $($rest:ident)+) => { last!($($rest)+) };
}

/// Every field, in the order of [`EngineConfig`].
pub const FIELDS: &[Field] = &[
    partitions!(
        flow_partitions,
        "Flow partitions of a new deployment (default: those recorded in Valkey; 256 on first start)."
    ),
    partitions!(
        budget_partitions,
        "Budget partitions of a new deployment (default: those recorded in Valkey; 32 on first start)."
    ),
    partitions!(
        quota_partitions,
        "Quota partitions of a new deployment (default: those recorded in Valkey; 32 on first start)."
    ),
    duration!(
        lease_expiry_interval,
        "Longest sleep of the lease expiry scanner."
    ),
    duration!(
        delayed_promoter_interval,
        "Longest sleep of the delayed promoter."
    ),
    duration!(
        attempt_timeout_interval,
        "Longest sleep of the attempt timeout scanner."
    ),
    duration!(
        execution_deadline_interval,
        "Longest sleep of the execution deadline scanner."
    ),
    duration!(
        retention_trimmer_interval,
        "Longest sleep of the retention trimmer."
    ),
    duration!(
        index_reconciler_interval,
        "The index reconciler walks every execution once per interval."
    ),
    duration!(
        flow_reconciler_interval,
        "Longest sleep of the flow reconciler (queued flow work nobody drained)."
    ),
    duration!(
        dependency_reconciler_interval,
        "Longest sleep of the dependency reconciler (waiting children re-checked)."
    ),
    duration!(
        flow_projector_interval,
        "Longest sleep of the flow projector (changed flows recounted)."
    ),
    duration!(
        budget_reset_interval,
        "Longest sleep of the budget reset scanner (due periodic resets)."
    ),
    duration!(
        budget_reconciler_interval,
        "The budget reconciler walks every budget once per interval."
    ),
    duration!(
        quota_reconciler_interval,
        "The quota reconciler walks every quota once per interval (dead holders' slots given back)."
    ),
    duration!(
        unblock_interval,
        "Partitions holding blocked executions are re-checked at least this often (announced changes re-check at once)."
    ),
    number!(
        dispatch_concurrency,
        "Partitions the completion listener drains at once."
    ),
    duration!(
        suspension_timeout_interval,
        "Longest sleep of the suspension timeout scanner (suspensions past their timeout)."
    ),
    duration!(
        pending_waitpoint_interval,
        "Longest sleep of the pending waitpoint scanner (pending waitpoints past their TTL expire)."
    ),
    duration!(
        schedule_interval,
        "Longest sleep of the schedule scanner (due schedules fired)."
    ),
    duration!(
        rescan_interval,
        "Every partition's index is re-read at least this often."
    ),
    number!(batch_size, "Most members one batch call acts on."),
    number!(
        sweep_batch_size,
        "Most members one call of a sweep (the reconcilers) checks."
    ),
    duration!(
        shutdown_timeout,
        "Shutdown waits at most this long for the scanners to stop."
    ),
    duration!(
        restart_backoff,
        "A scanner that panicked is restarted after this pause."
    ),
    Field {
        name: "namespace",
        help: "Act only on executions of this namespace (empty: all).",
        set: |c, v| {
            c.filter.namespace = match v {
                "" => None,
                v => Some(Namespace::new(v).map_err(|e| e.to_string())?),
            };
            Ok(())
        },
        get: |c| {
            c.filter
                .namespace
                .as_ref()
                .map(|n| n.to_string())
                .unwrap_or_default()
        },
    },
    Field {
        name: "instance_tag",
        help: "Act only on executions carrying this tag, as tag=value (empty: all).",
        set: |c, v| {
            c.filter.instance_tag = match v {
                "" => None,
                v => {
                    let (tag, value) = v
                        .split_once('=')
                        .ok_or_else(|| format!("expected tag=value, got {v:?}"))?;
                    Some((
                        TagName::new(tag).map_err(|e| e.to_string())?,
                        value.to_owned(),
                    ))
                }
            };
            Ok(())
        },
        get: |c| {
            c.filter
                .instance_tag
                .as_ref()
                .map(|(t, v)| format!("{t}={v}"))
                .unwrap_or_default()
        },
    },
    number!(
        ownership,
        "Replicas share the partitions through leases in Valkey (false: scan every partition)."
    ),
    duration!(
        ownership_lease_ttl,
        "A partition lease lasts this long without renewal."
    ),
    duration!(
        ownership_heartbeat,
        "How often a replica renews its leases and rebalances."
    ),
];

fn known_keys() -> String {
    FIELDS.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

/// The field of this name.
pub fn field(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.name == name)
}

/// Parse `<integer><unit>` with unit `ms`, `s`, `m` or `h`.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let bad =
        || format!("expected a duration like \"1500ms\" or \"2s\" (units ms, s, m, h), got {v:?}");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(bad()),
    };
    ms.map(Duration::from_millis)
        .ok_or_else(|| format!("duration {v:?} is too long"))
}

/// The largest unit that states `d` exactly (whole milliseconds).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0ms".to_owned(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

/// The three sources, each optional.
pub struct Sources<'a> {
    /// A file's name (for messages) and its TOML text.
    pub file: Option<(&'a str, &'a str)>,
    /// Reads an environment variable (`|n| std::env::var(n).ok()` for the real one).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Flags given, as (field name, value).
    pub flags: &'a [(&'static str, String)],
}

/// Defaults, overridden by the file, then the environment, then the flags;
/// then [`EngineConfig::validate`].
pub fn load(sources: Sources<'_>) -> Result<EngineConfig, ConfigError> {
    let mut config = EngineConfig::default();
    if let Some((origin, text)) = sources.file {
        apply_toml(&mut config, origin, text)?;
    }
    for f in FIELDS {
        let name = f.env_name();
        if let Some(v) = (sources.env)(&name) {
            set(&mut config, f, &v, name)?;
        }
    }
    for (name, v) in sources.flags {
        let f = field(name).ok_or_else(|| ConfigError::UnknownKey {
            origin: "flags".into(),
            key: (*name).to_owned(),
        })?;
        set(&mut config, f, v, format!("--{}", f.flag_name()))?;
    }
    config.validate().map_err(ConfigError::Invalid)?;
    Ok(config)
}

fn set(config: &mut EngineConfig, f: &Field, v: &str, origin: String) -> Result<(), ConfigError> {
    (f.set)(config, v).map_err(|reason| ConfigError::Value {
        origin,
        field: f.name,
        reason,
    })
}

/// Apply a TOML document's keys to `config`; unknown keys are refused.
pub fn apply_toml(config: &mut EngineConfig, origin: &str, text: &str) -> Result<(), ConfigError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        origin: origin.to_owned(),
        reason: e.to_string().trim_end().to_owned(),
    })?;
    for (key, value) in &table {
        let f = field(key).ok_or_else(|| ConfigError::UnknownKey {
            origin: origin.to_owned(),
            key: key.clone(),
        })?;
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            other => {
                return Err(ConfigError::Value {
                    origin: origin.to_owned(),
                    field: f.name,
                    reason: format!(
                        "expected a string or an integer, got a {}",
                        other.type_str()
                    ),
                })
            }
        };
        set(config, f, &text, origin.to_owned())?;
    }
    Ok(())
}

/// The defaults as a TOML document, one commented key per field (what
/// `ff engine --print-config` shows, and a starting point for a file).
pub fn to_toml(config: &EngineConfig) -> String {
    let mut out = String::new();
    for f in FIELDS {
        out.push_str(&format!(
            "# {}\n{} = {}\n",
            f.help,
            f.name,
            toml_value(f, config)
        ));
    }
    out
}

/// The field's value as a TOML value: counts bare, the rest quoted.
fn toml_value(f: &Field, config: &EngineConfig) -> String {
    let v = (f.get)(config);
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        v
    } else {
        format!("{v:?}")
    }
}

/// The `--<field>` flags of every [`FIELDS`] row, for a clap command
/// (`#[command(flatten)]`). Each takes the same text as the file and the
/// environment; a flag not given leaves the lower sources in force.
#[derive(Debug, Clone, Default)]
pub struct ConfigFlags(pub Vec<(&'static str, String)>);

impl clap::FromArgMatches for ConfigFlags {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Self::default();
        flags.update_from_arg_matches(m)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        for f in FIELDS {
            if let Some(v) = m.get_one::<String>(f.name) {
                self.0.retain(|(n, _)| *n != f.name);
                self.0.push((f.name, v.clone()));
            }
        }
        Ok(())
    }
}

impl clap::Args for ConfigFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let default = EngineConfig::default();
        cmd.args(FIELDS.iter().map(|f| {
            let shown = match (f.get)(&default) {
                d if d.is_empty() => "none".to_owned(),
                d => d,
            };
            clap::Arg::new(f.name)
                .long(f.flag_name())
                .value_name("VALUE")
                .help_heading("Engine configuration (file < FF_<FIELD> < flag)")
                .help(format!("{} [{}; default {shown}]", f.help, f.env_name()))
        }))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn durations_take_a_unit_and_print_the_largest_exact_one() {
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "15", "1.5s", "s", "-1s", "2 s", "2sec"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration(&format!("{}h", u64::MAX)).is_err());
        for d in ["750ms", "1500ms", "2s", "45s", "1m", "2h"] {
            assert_eq!(format_duration(parse_duration(d).unwrap()), d);
        }
    }

    #[test]
    fn every_field_round_trips_its_default() {
        let default = EngineConfig::default();
        let mut names = std::collections::HashSet::new();
        for f in FIELDS {
            assert!(names.insert(f.name), "duplicate {}", f.name);
            let mut c = EngineConfig::default();
            (f.set)(&mut c, &(f.get)(&default)).unwrap();
            assert_eq!(format!("{c:?}"), format!("{default:?}"), "{}", f.name);
        }
        let text = to_toml(&default);
        let c = load(Sources {
            file: Some(("d.toml", &text)),
            env: &no_env,
            flags: &[],
        })
        .unwrap();
        assert_eq!(format!("{c:?}"), format!("{default:?}"));
    }

    /// Top-level field names of a `Debug` rendering `Name { a: .., b: Inner { .. } }`.
    fn debug_fields(debug: &str) -> Vec<String> {
        let body = &debug[debug.find('{').unwrap() + 1..];
        let (mut depth, mut names, mut current) = (0i32, Vec::new(), String::new());
        let mut at_name = true;
        for c in body.chars() {
            match c {
                '{' | '(' | '[' => depth += 1,
                '}' | ')' | ']' => depth -= 1,
                ':' if depth == 0 && at_name => {
                    names.push(current.trim().to_owned());
                    at_name = false;
                }
                ',' if depth == 0 => {
                    current.clear();
                    at_name = true;
                }
                _ if depth == 0 && at_name => current.push(c),
                _ => {}
            }
        }
        names
    }

    #[test]
    fn every_engine_config_field_has_a_row() {
        // Fields whose parts are flattened into rows of their own.
        let flattened: &[(&str, &[&str])] = &[
            (
                "partitions",
                &["flow_partitions", "budget_partitions", "quota_partitions"],
            ),
            ("filter", &["namespace", "instance_tag"]),
        ];
        let names = debug_fields(&format!("{:?}", EngineConfig::default()));
        assert!(names.len() >= 10, "{names:?}");
        assert!(names.iter().any(|n| n == "filter") && names.iter().any(|n| n == "batch_size"));
        for name in names {
            let rows = flattened
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(vec![name.as_str()], |(_, rows)| rows.to_vec());
            for row in rows {
                assert!(
                    field(row).is_some(),
                    "EngineConfig::{name} has no row in config_source::FIELDS ({row}): add one so files, FF_ variables and flags can set it"
                );
            }
        }
    }

    #[test]
    fn the_readme_lists_every_field_with_its_default() {
        let readme = include_str!("../../../docs/configuration.md");
        let default = EngineConfig::default();
        for f in FIELDS {
            let v = toml_value(f, &default);
            let v = if v.starts_with('"') {
                format!("`{v}`")
            } else {
                v
            };
            let row = format!("| `{}` | {v} ", f.name);
            assert!(
                readme.contains(&row),
                "docs/configuration.md's configuration table lacks {row:?}"
            );
        }
    }

    #[test]
    fn filter_fields_parse_and_clear() {
        let flags = [
            ("namespace", "billing".to_owned()),
            ("instance_tag", "region=eu".to_owned()),
        ];
        let c = load(Sources {
            file: None,
            env: &no_env,
            flags: &flags,
        })
        .unwrap();
        assert_eq!(c.filter.namespace.unwrap().to_string(), "billing");
        let (t, v) = c.filter.instance_tag.unwrap();
        assert_eq!((t.to_string().as_str(), v.as_str()), ("region", "eu"));
        let env = |n: &str| (n == "FF_NAMESPACE").then(String::new);
        let c = load(Sources {
            file: Some(("f", "namespace = \"x\"")),
            env: &env,
            flags: &[],
        })
        .unwrap();
        assert_eq!(c.filter.namespace, None);
        let err = load(Sources {
            file: None,
            env: &no_env,
            flags: &[("instance_tag", "region".into())],
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("--instance-tag: instance_tag: expected tag=value"),
            "{err}"
        );
    }
}
