//! The keyspace: strings, hashes, sets and sorted sets, each key with an
//! optional expiry (absolute ms). Ordered maps throughout, so every listing
//! is deterministic (a hash's fields in Redis's order, see [`Fields`]). Expired keys are removed when touched (and skipped by
//! listings), as Redis does from a client's point of view.

use super::zset::ZSet;
use std::collections::{BTreeMap, BTreeSet};

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// A hash's fields in the order Redis keeps a small (listpack-encoded) hash
/// in: insertion order, an update keeps the field's place, a delete closes
/// the gap. (Past `hash-max-listpack-entries` Redis turns a hash into a hash
/// table with no such order; nothing in ff relies on either order.)
pub type Fields = indexmap::IndexMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Vec<u8>),
    Hash(Fields),
    Set(BTreeSet<Vec<u8>>),
    ZSet(ZSet),
}

impl Value {
    /// What TYPE answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    fn is_empty_collection(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub value: Value,
    /// Absolute expiry in ms; the key is gone once `now > expires_at`.
    pub expires_at: Option<u64>,
}

/// A key holding the wrong type for the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongType;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Keyspace {
    map: BTreeMap<Vec<u8>, Entry>,
}

macro_rules! typed_access {
    ($get:ident, $variant:ident, $ty:ty) => {
        /// The value at `key` if it has this type; `Ok(None)` when missing.
        pub fn $get(&mut self, key: &[u8], now: u64) -> Result<Option<&$ty>, WrongType> {
            match self.get(key, now) {
                None => Ok(None),
                Some(Entry {
                    value: Value::$variant(v),
                    ..
                }) => Ok(Some(v)),
                Some(_) => Err(WrongType),
            }
        }
    };
    ($get:ident, $get_mut:ident, $variant:ident, $ty:ty) => {
        typed_access!($get, $variant, $ty);

        /// The value at `key` for writing, created empty when missing. Call
        /// [`Keyspace::drop_if_empty`] after removing elements.
        pub fn $get_mut(&mut self, key: &[u8], now: u64) -> Result<&mut $ty, WrongType> {
            self.expire_if_needed(key, now);
            let entry = self.map.entry(key.to_vec()).or_insert_with(|| Entry {
                value: Value::$variant(Default::default()),
                expires_at: None,
            });
            match &mut entry.value {
                Value::$variant(v) => Ok(v),
                _ => Err(WrongType),
            }
        }
    };
}

impl Keyspace {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remove `key` if its time is up. True when it was removed.
    pub fn expire_if_needed(&mut self, key: &[u8], now: u64) -> bool {
        let expired =
            matches!(self.map.get(key), Some(Entry { expires_at: Some(t), .. }) if now > *t);
        if expired {
            self.map.remove(key);
        }
        expired
    }

    pub fn get(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        self.expire_if_needed(key, now);
        self.map.get(key)
    }

    pub fn get_entry_mut(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        self.expire_if_needed(key, now);
        self.map.get_mut(key)
    }

    pub fn exists(&mut self, key: &[u8], now: u64) -> bool {
        self.get(key, now).is_some()
    }

    pub fn remove(&mut self, key: &[u8], now: u64) -> Option<Entry> {
        if self.expire_if_needed(key, now) {
            return None;
        }
        self.map.remove(key)
    }

    /// Set a key to a value, replacing whatever was there.
    pub fn put(&mut self, key: &[u8], value: Value, expires_at: Option<u64>) {
        self.map.insert(key.to_vec(), Entry { value, expires_at });
    }

    /// Delete `key` if it is a collection left empty (Redis deletes a hash,
    /// set or sorted set with its last element).
    pub fn drop_if_empty(&mut self, key: &[u8]) {
        if self
            .map
            .get(key)
            .is_some_and(|e| e.value.is_empty_collection())
        {
            self.map.remove(key);
        }
    }

    /// Live keys, in byte order.
    pub fn keys(&self, now: u64) -> impl Iterator<Item = &[u8]> + '_ {
        self.map
            .iter()
            .filter(move |(_, e)| e.expires_at.is_none_or(|t| now <= t))
            .map(|(k, _)| k.as_slice())
    }

    /// How many live keys.
    pub fn len(&self, now: u64) -> usize {
        self.keys(now).count()
    }

    #[cfg(test)]
    pub fn is_empty(&self, now: u64) -> bool {
        self.keys(now).next().is_none()
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }

    typed_access!(string, Str, Vec<u8>);
    typed_access!(hash, hash_mut, Hash, Fields);
    typed_access!(set, set_mut, Set, BTreeSet<Vec<u8>>);
    typed_access!(zset, zset_mut, ZSet, ZSet);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_on_access_with_a_manual_clock() {
        let mut ks = Keyspace::new();
        ks.put(b"k", Value::Str(b"v".to_vec()), Some(1_000));
        assert!(ks.exists(b"k", 999));
        assert!(
            ks.exists(b"k", 1_000),
            "alive up to and including its expiry ms"
        );
        assert_eq!(ks.keys(1_000).count(), 1);
        assert_eq!(ks.keys(1_001).count(), 0, "listings skip expired keys");
        assert!(!ks.exists(b"k", 1_001));
        assert!(ks.get(b"k", 0).is_none(), "an expired key is gone for good");
    }

    #[test]
    fn wrong_type_and_empty_collections() {
        let mut ks = Keyspace::new();
        ks.hash_mut(b"h", 0)
            .unwrap()
            .insert(b"f".to_vec(), b"v".to_vec());
        assert_eq!(ks.set_mut(b"h", 0).err(), Some(WrongType));
        assert_eq!(ks.zset(b"h", 0).err(), Some(WrongType));
        assert_eq!(ks.string(b"h", 0).err(), Some(WrongType));
        assert!(ks.set(b"missing", 0).unwrap().is_none());
        ks.hash_mut(b"h", 0).unwrap().shift_remove(&b"f"[..]);
        ks.drop_if_empty(b"h");
        assert!(!ks.exists(b"h", 0), "the last field took the key with it");
        // A typed write on a missing key creates it; dropping an empty one cleans up.
        ks.set_mut(b"s", 0).unwrap();
        ks.drop_if_empty(b"s");
        assert!(ks.is_empty(0));
    }

    #[test]
    fn an_expired_key_of_another_type_is_replaced() {
        let mut ks = Keyspace::new();
        ks.put(b"k", Value::Str(b"v".to_vec()), Some(10));
        assert_eq!(ks.hash_mut(b"k", 5).err(), Some(WrongType));
        assert!(ks.hash_mut(b"k", 11).is_ok());
        assert_eq!(ks.get(b"k", 11).map(|e| e.value.type_name()), Some("hash"));
    }
}
