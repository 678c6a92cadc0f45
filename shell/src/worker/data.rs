//! Application state handed to handlers by type (apalis's `Data<T>`): one
//! value per type, shared by every job of the worker. A map from `TypeId`
//! is all it takes, so no crate is pulled in for it.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;

/// Values by type.
#[derive(Default)]
pub struct Data(HashMap<TypeId, Box<dyn Any + Send + Sync>>);

impl Data {
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Box::new(value));
    }

    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref())
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Data({} values)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_type() {
        let mut d = Data::default();
        d.insert(3u32);
        d.insert(String::from("pool"));
        d.insert(4u32);
        assert_eq!(d.get::<u32>(), Some(&4));
        assert_eq!(d.get::<String>().map(String::as_str), Some("pool"));
        assert_eq!(d.get::<u64>(), None);
    }
}
