//! The Valkey Functions library: the files of `lua/`, joined in a fixed order,
//! named `ff` and versioned by a hash of the text (any change to the Lua
//! changes the version, so a running server with older code is reloaded).

use std::sync::OnceLock;

/// How a file of `lua/` joins the library.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Its locals are helpers later files use.
    Shared,
    /// Only registers functions (and sets hooks earlier files declared): it
    /// is wrapped in `do … end`, so its locals do not count against Lua's
    /// limit of 200 active locals in the library's main chunk.
    Own,
}

/// The files of `lua/`, in load order (later files use earlier helpers).
const PARTS: &[(&str, Scope, &str)] = &[
    (
        "prelude.lua",
        Scope::Shared,
        include_str!("../../../lua/prelude.lua"),
    ),
    (
        "limits.lua",
        Scope::Shared,
        include_str!("../../../lua/limits.lua"),
    ),
    (
        "keys.lua",
        Scope::Shared,
        include_str!("../../../lua/keys.lua"),
    ),
    (
        "hmac.lua",
        Scope::Shared,
        include_str!("../../../lua/hmac.lua"),
    ),
    (
        "waitpoint.lua",
        Scope::Shared,
        include_str!("../../../lua/waitpoint.lua"),
    ),
    (
        "moves.lua",
        Scope::Shared,
        include_str!("../../../lua/moves.lua"),
    ),
    (
        "execution.lua",
        Scope::Shared,
        include_str!("../../../lua/execution.lua"),
    ),
    (
        "scanners.lua",
        Scope::Shared,
        include_str!("../../../lua/scanners.lua"),
    ),
    (
        "flows.lua",
        Scope::Own,
        include_str!("../../../lua/flows.lua"),
    ),
    (
        "suspension.lua",
        Scope::Own,
        include_str!("../../../lua/suspension.lua"),
    ),
    (
        "ownership.lua",
        Scope::Own,
        include_str!("../../../lua/ownership.lua"),
    ),
    (
        "admission.lua",
        Scope::Own,
        include_str!("../../../lua/admission.lua"),
    ),
    (
        "heads.lua",
        Scope::Own,
        include_str!("../../../lua/heads.lua"),
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

/// The library of this build.
pub fn library() -> &'static Library {
    static LIB: OnceLock<Library> = OnceLock::new();
    LIB.get_or_init(|| {
        let body: String = PARTS
            .iter()
            .map(|(name, scope, text)| match scope {
                Scope::Shared => format!("-- ==== {name} ====\n{text}\n"),
                Scope::Own => format!("-- ==== {name} ====\ndo\n{text}\nend\n"),
            })
            .collect();
        let version = format!("{:016x}", fnv1a64(body.as_bytes()));
        let source = format!("#!lua name={LIBRARY_NAME}\nlocal FF_VERSION = '{version}'\n{body}");
        Library { source, version }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_names_the_library_and_version() {
        let lib = super::library();
        assert!(lib.source.starts_with("#!lua name=ff\n"));
        assert!(lib.source.contains(&lib.version));
        assert_eq!(lib.version.len(), 16);
    }

    /// Lua allows 200 active locals in a chunk; the shared parts' locals are
    /// active in every later part. One more than fits makes FUNCTION LOAD
    /// fail outright, so keep room: a part that needs more moves its own
    /// helpers or bounds into itself (limits.lua says how).
    #[test]
    fn the_library_leaves_room_for_more_locals() {
        const ROOM: usize = 4;
        let lib = super::library();
        let body = lib.source.split_once('\n').expect("a header line").1;
        let padding: String = (0..ROOM)
            .map(|i| format!("local room_{i} = {i}\n"))
            .collect();
        let lua = mlua::Lua::new();
        let compiled = lua.load(format!("{padding}{body}")).into_function();
        assert!(compiled.is_ok(), "{:?}", compiled.err());
    }
}
