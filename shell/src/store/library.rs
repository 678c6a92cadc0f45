//! The Valkey Functions library: the facts core shares with the Lua
//! ([`ff_core::lua_facts`], as the module `F`), then the files of `lua/`, joined
//! in a fixed order, named `ff` and versioned by a hash of the whole text (any
//! change to the Lua or to the facts changes the version, so a running server
//! with older code is reloaded).
//!
//! Each file is a module: its text runs in a function of its own, so its
//! locals count against that function's limit of 200 and not the library's.
//! A file imports what it uses from earlier modules at its top
//! (`local exec_key = K.exec_key`: a call then reads an upvalue, as it would
//! a library-wide local) and names what later files may import in
//! `--- @export a, b` lines, which become the module's table.

use std::sync::OnceLock;

/// The files of `lua/`, in load order (a file imports from earlier modules
/// only), each with the name of its module table (`None`: it only registers
/// functions, or fills in hooks of earlier modules).
const PARTS: &[(&str, Option<&str>, &str)] = &[
    (
        "prelude.lua",
        Some("P"),
        include_str!("../../../lua/prelude.lua"),
    ),
    ("keys.lua", Some("K"), include_str!("../../../lua/keys.lua")),
    (
        "hmac.lua",
        Some("HMAC"),
        include_str!("../../../lua/hmac.lua"),
    ),
    (
        "waitpoint.lua",
        Some("WP"),
        include_str!("../../../lua/waitpoint.lua"),
    ),
    (
        "moves.lua",
        Some("MV"),
        include_str!("../../../lua/moves.lua"),
    ),
    (
        "execution.lua",
        Some("EXEC"),
        include_str!("../../../lua/execution.lua"),
    ),
    (
        "create.lua",
        Some("CREATE"),
        include_str!("../../../lua/create.lua"),
    ),
    (
        "claim.lua",
        Some("CLAIM"),
        include_str!("../../../lua/claim.lua"),
    ),
    (
        "lease.lua",
        Some("LEASE"),
        include_str!("../../../lua/lease.lua"),
    ),
    ("watch.lua", None, include_str!("../../../lua/watch.lua")),
    (
        "scanners.lua",
        Some("SCAN"),
        include_str!("../../../lua/scanners.lua"),
    ),
    (
        "operator.lua",
        None,
        include_str!("../../../lua/operator.lua"),
    ),
    (
        "flows.lua",
        Some("FLOW"),
        include_str!("../../../lua/flows.lua"),
    ),
    (
        "flow_calls.lua",
        Some("FLOW_CALLS"),
        include_str!("../../../lua/flow_calls.lua"),
    ),
    (
        "flow_scanners.lua",
        None,
        include_str!("../../../lua/flow_scanners.lua"),
    ),
    (
        "suspension.lua",
        None,
        include_str!("../../../lua/suspension.lua"),
    ),
    (
        "ownership.lua",
        None,
        include_str!("../../../lua/ownership.lua"),
    ),
    (
        "admission.lua",
        Some("ADM"),
        include_str!("../../../lua/admission.lua"),
    ),
    (
        "budgets.lua",
        Some("BUDGETS"),
        include_str!("../../../lua/budgets.lua"),
    ),
    ("quotas.lua", None, include_str!("../../../lua/quotas.lua")),
    (
        "blocking.lua",
        None,
        include_str!("../../../lua/blocking.lua"),
    ),
    ("heads.lua", None, include_str!("../../../lua/heads.lua")),
    (
        "schedules.lua",
        None,
        include_str!("../../../lua/schedules.lua"),
    ),
];

/// The library's name (`#!lua name=ff`).
pub const LIBRARY_NAME: &str = "ff";

/// The function library, assembled from `lua/`.
pub struct Library {
    /// The text sent with FUNCTION LOAD.
    pub source: String,
    /// What `ff_version` answers.
    pub version: String,
}

fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The names a file's `--- @export` lines list, in order.
fn exports(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("--- @export "))
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect()
}

/// One module of the library: `local NAME = (function() <text> return {…} end)();`,
/// or `(function() <text> end)();` when it exports nothing (the `;` keeps Lua
/// 5.1 from reading the next module's opening parenthesis as a call).
fn module(name: &str, module: Option<&str>, text: &str) -> String {
    match module {
        Some(m) => {
            let table: Vec<String> = exports(text).iter().map(|n| format!("{n} = {n}")).collect();
            format!(
                "-- ==== {name} ====\nlocal {m} = (function()\n{text}\nreturn {{{}}}\nend)();\n",
                table.join(", ")
            )
        }
        None => format!("-- ==== {name} ====\n(function()\n{text}\nend)();\n"),
    }
}

/// The library of this build.
pub fn library() -> &'static Library {
    static LIB: OnceLock<Library> = OnceLock::new();
    LIB.get_or_init(|| {
        // (the facts are a chunk that returns its table)
        let mut body = format!(
            "-- ==== facts (ff_core::lua_facts) ====\nlocal F = (function()\n{}end)();\n",
            ff_core::lua_facts::lua_facts()
        );
        for (name, m, text) in PARTS {
            body.push_str(&module(name, *m, text));
        }
        let version = format!("{:016x}", fnv1a64(body.as_bytes()));
        let source = format!("#!lua name={LIBRARY_NAME}\nlocal FF_VERSION = '{version}'\n{body}");
        Library { source, version }
    })
}

#[cfg(test)]
mod tests {
    use super::PARTS;
    use ff_core::keys::{self, FlowKeys, PartitionKeys};
    use ff_core::{BudgetId, ExecutionId, FlowId, Lane, Namespace, PartitionConfig, QuotaId};

    #[test]
    fn header_names_the_library_and_version() {
        let lib = super::library();
        assert!(lib.source.starts_with("#!lua name=ff\n"));
        assert!(lib.source.contains(&lib.version));
        assert_eq!(lib.version.len(), 16);
    }

    /// Lua allows 200 active locals in a function; one more than fits makes
    /// FUNCTION LOAD fail outright. Every file (a module: a function of its
    /// own) keeps room for 100 more, and the library's main chunk (the
    /// module tables) for 150 more.
    #[test]
    fn the_library_leaves_room_for_more_locals() {
        let padding =
            |n: usize| -> String { (0..n).map(|i| format!("local room_{i} = {i}\n")).collect() };
        let lua = mlua::Lua::new();
        let lib = super::library();
        let body = lib.source.split_once('\n').expect("a header line").1;
        let compiled = lua.load(format!("{}{body}", padding(150))).into_function();
        assert!(compiled.is_ok(), "{:?}", compiled.err());
        for (name, _, text) in PARTS {
            let compiled = lua.load(format!("{}{text}", padding(100))).into_function();
            assert!(compiled.is_ok(), "{name}: {:?}", compiled.err());
        }
    }

    /// Redis runs a library's load with no globals but `redis` (not even
    /// `string` or `tostring`, which MemoryStore would give it): a file may
    /// call library functions only inside the functions it registers.
    #[test]
    fn the_library_loads_with_redis_alone() {
        let lua = mlua::Lua::new();
        let env: mlua::Table = lua
            .load(
                "local redis = {register_function = function() end}
                 return setmetatable({redis = redis}, {__index = function(_, name)
                   error('the library reads the global ' .. name .. ' as it loads')
                 end})",
            )
            .eval()
            .unwrap();
        let lib = super::library();
        let body = lib.source.split_once('\n').expect("a header line").1;
        let loaded = lua.load(body).set_environment(env).exec();
        assert!(loaded.is_ok(), "{:?}", loaded.err());
    }

    /// The Lua key builders (lua/keys.lua, over the prefixes of
    /// ff_core::lua_facts) spell every key as core/src/keys.rs does.
    #[test]
    fn lua_keys_are_cores_keys() {
        let lua = mlua::Lua::new();
        lua.load(
            "redis = {register_function = function() end}
             bit = {}",
        )
        .exec()
        .unwrap();
        let lib = super::library();
        let body = lib.source.split_once('\n').expect("a header line").1;
        let k: mlua::Table = lua
            .load(format!("{body}\nreturn K"))
            .eval()
            .expect("the library runs");
        let call = |f: &str, args: Vec<&str>| -> String {
            let f: mlua::Function = k.get(f).unwrap_or_else(|_| panic!("K.{f}"));
            f.call(mlua::Variadic::from_iter(
                args.into_iter().map(String::from),
            ))
            .unwrap_or_else(|e| panic!("K.{f:?}: {e}"))
        };
        let config = PartitionConfig::default();
        let eid = ExecutionId::new(17, 0xabcdef);
        let pk = PartitionKeys::of(&eid);
        let tag = pk.tag().to_owned();
        let lane = Lane::new("emails").unwrap();
        assert_eq!(call("exec_key", vec![eid.as_str()]), keys::exec(&eid));
        assert_eq!(call("tag_of", vec![&keys::exec(&eid)]), tag);
        assert_eq!(call("idx_key", vec![&tag, "delayed"]), pk.delayed());
        assert_eq!(call("idx_key", vec![&tag, "all"]), pk.all());
        assert_eq!(
            call("eligible_key", vec![&tag, "emails"]),
            pk.eligible(&lane)
        );
        let flow = FlowId::from_u128(0x1234);
        let fk = FlowKeys::new(&flow, &config);
        let ftag = ff_core::keys::flow_partition(&flow, &config).hash_tag();
        assert_eq!(call("flow_key", vec![&ftag, flow.as_str()]), fk.flow());
        assert_eq!(
            call("flow_members_key", vec![&ftag, flow.as_str()]),
            fk.members()
        );
        assert_eq!(call("deps_key", vec![eid.as_str()]), keys::deps(&eid));
        assert_eq!(call("out_key", vec![eid.as_str()]), keys::out(&eid));
        assert_eq!(call("passed_key", vec![eid.as_str()]), keys::passed(&eid));
        let wp = ff_core::WaitpointId::from_u128(0x99);
        assert_eq!(call("wp_key", vec![&tag, wp.as_str()]), pk.waitpoint(&wp));
        assert_eq!(call("secret_key", vec![&tag]), pk.secret());
        let ns = Namespace::new("ns").unwrap();
        let idem = keys::IdempotencyKey::new("k-1").unwrap();
        assert!(pk
            .idempotency(&ns, &idem)
            .starts_with(&call("idem_prefix", vec![&tag])));
        let b = BudgetId::parse("monthly").unwrap();
        let btag = ff_core::admission::budget_partition(&config, &b).hash_tag();
        assert_eq!(
            call("admission_key", vec!["budget", &btag, "monthly"]),
            ff_core::admission::budget_key(&config, &b)
        );
        let bp = ff_core::admission::budget_partition(&config, &b);
        assert_eq!(
            call("idx_key", vec![&btag, "budgets"]),
            ff_core::admission::budgets_index(bp)
        );
        assert_eq!(
            call("idx_key", vec![&btag, "resets"]),
            ff_core::admission::resets_index(bp)
        );
        let sname = ff_core::schedule::ScheduleName::new("nightly").unwrap();
        let sp = sname.partition(&config);
        let stag = sp.hash_tag();
        assert_eq!(
            call("sched_key", vec![&stag, "nightly"]),
            ff_core::schedule::record_key(sp, &sname)
        );
        assert_eq!(
            call("idx_key", vec![&stag, "schedules"]),
            ff_core::schedule::due_index(sp)
        );
        assert_eq!(
            call("idx_key", vec![&stag, "schedule_names"]),
            ff_core::schedule::names_index(sp)
        );
        let q = QuotaId::parse("api").unwrap();
        let qtag = ff_core::admission::quota_partition(&config, &q).hash_tag();
        assert_eq!(
            call("admission_key", vec!["quota", &qtag, "api"]),
            ff_core::admission::quota_key(&config, &q)
        );
        let qp = ff_core::admission::quota_partition(&config, &q);
        assert_eq!(
            call("idx_key", vec![&qtag, "quotas"]),
            ff_core::admission::quotas_index(qp)
        );
        // The eligible index of a lane reads back as its tag and lane.
        let eligible_of: mlua::Function = k.get("eligible_of").unwrap();
        let (t, l): (String, String) = eligible_of.call(pk.eligible(&lane)).unwrap();
        assert_eq!((t.as_str(), l.as_str()), (tag.as_str(), "emails"));
        let none: Option<String> = eligible_of.call(pk.delayed()).unwrap();
        assert_eq!(none, None);
    }
}
