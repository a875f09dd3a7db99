//! `serde` support (the `serde` feature): a dict serializes as a map in insertion order, a
//! list as a sequence; both deserialize into a new, mutable container. The frozen views
//! serialize like the containers. Serializing reads an atomic snapshot (`LockedDict`,
//! `LockedList`) or a weakly consistent pass (`GilFreeDict` iteration), like iterating.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::dict::{Dict, DictStore, FrozenDict};
use crate::list::FrozenList;
use crate::{GilFreeList, LockedList, Storable};

impl<K, V, S, St> Serialize for Dict<K, V, S, St>
where
    K: Clone + Serialize,
    V: Clone + Serialize,
    St: DictStore<K, V>,
{
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        let entries: Vec<(K, V)> = self.iter().collect();
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (k, v) in &entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, K, V, S, St> Deserialize<'de> for Dict<K, V, S, St>
where
    K: Hash + Eq + Clone + Deserialize<'de>,
    V: Clone + Deserialize<'de>,
    S: BuildHasher + Default,
    St: DictStore<K, V>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// What the visitor builds (only its type matters).
        type Built<K, V, S, St> = fn() -> Dict<K, V, S, St>;
        struct Pairs<K, V, S, St>(PhantomData<Built<K, V, S, St>>);

        impl<'de, K, V, S, St> Visitor<'de> for Pairs<K, V, S, St>
        where
            K: Hash + Eq + Clone + Deserialize<'de>,
            V: Clone + Deserialize<'de>,
            S: BuildHasher + Default,
            St: DictStore<K, V>,
        {
            type Value = Dict<K, V, S, St>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let dict = Dict::with_capacity_and_hasher(
                    access.size_hint().unwrap_or(0).min(1 << 16),
                    S::default(),
                );
                while let Some((k, v)) = access.next_entry()? {
                    // A fresh dict, not frozen, not locked by this thread: cannot fail.
                    crate::model::infallible(dict.insert(k, v).map(drop));
                }
                Ok(dict)
            }
        }

        deserializer.deserialize_map(Pairs(PhantomData))
    }
}

impl<K, V, S, St> Serialize for FrozenDict<'_, K, V, S, St>
where
    K: Serialize,
    V: Serialize,
    St: DictStore<K, V>,
{
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

fn serialize_items<T: Serialize, Ser: Serializer>(
    items: &[T],
    serializer: Ser,
) -> Result<Ser::Ok, Ser::Error> {
    let mut seq = serializer.serialize_seq(Some(items.len()))?;
    for x in items {
        seq.serialize_element(x)?;
    }
    seq.end()
}

impl<T: Clone + Serialize> Serialize for LockedList<T> {
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        serialize_items(&self.snapshot(), serializer)
    }
}

impl<T> Serialize for GilFreeList<T>
where
    T: Storable + Clone + Send + Sync + 'static + Serialize,
{
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        serialize_items(&self.snapshot(), serializer)
    }
}

impl<T: Serialize> Serialize for FrozenList<'_, T> {
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for x in self.iter() {
            seq.serialize_element(x)?;
        }
        seq.end()
    }
}

/// Deserializes a sequence into a `Vec`, then builds the list from it.
struct Items<T>(PhantomData<fn() -> T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for Items<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::with_capacity(access.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(x) = access.next_element()? {
            items.push(x);
        }
        Ok(items)
    }
}

impl<'de, T: Clone + Deserialize<'de>> Deserialize<'de> for LockedList<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(LockedList::from_vec(
            deserializer.deserialize_seq(Items(PhantomData))?,
        ))
    }
}

impl<'de, T> Deserialize<'de> for GilFreeList<T>
where
    T: Storable + Clone + Send + Sync + 'static + Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(GilFreeList::from_vec(
            deserializer.deserialize_seq(Items(PhantomData))?,
        ))
    }
}
