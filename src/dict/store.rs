//! [`DictStore`]: what a dict's storage provides to the generic [`Dict`](crate::Dict) core.
//!
//! Like `lock_api`, which separates a raw lock from the safe `Mutex` built on it, a dict is
//! the generic core [`Dict<K, V, S, St>`](crate::Dict) — every public operation, written once,
//! with the object-model protocol (hash first, identity, pure `eq` in place, script `eq`
//! outside every critical section) — over a *store* `St` that owns the table and its
//! synchronization:
//!
//! - [`GilFreeStore`](crate::dict::GilFreeStore): lock-free readers (epoch reclamation),
//!   writers serialized on the dict's lock;
//! - [`LockedStore`](crate::dict::LockedStore): one lock for readers and writers, an in-place
//!   compact table.
//!
//! A store hands out *sections*: a read section (a pin, or the lock) and a write section (the
//! lock). Inside one, the core probes candidate *buckets* (entries whose hash tag matches) and
//! reads or changes entries by bucket; ordered walks go through the *order positions* of the
//! table, append-only within one table *generation*. A [`Stamp`] taken in one section lets the
//! core check, in a later one, that what it compared still holds (the table was not rebuilt,
//! the key it found was not removed, and no entry with the same hash tag was inserted).
//!
//! The trait is sealed: its methods are this crate's plumbing, hidden from the docs. Use it as
//! a bound to be generic over the variant (`fn f<St: DictStore<K, V>>(d: &Dict<K, V, S, St>)`).

use crate::dict::index::{Cursor, Found, Verdict};
use crate::storage::Ref;
use crate::sync::{AtomicU64, AtomicUsize, Ordering};
use crate::Error;

/// What both stores publish beside their table for lock-free reads: the length, and the
/// version tags (`version` moves on every mutation, `keys_version` when the set or order of
/// keys changes, for the checked iterators). Written only under the store's lock.
pub(crate) struct Counters {
    len: AtomicUsize,
    version: AtomicU64,
    keys_version: AtomicU64,
}

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters {
            len: AtomicUsize::new(0),
            version: AtomicU64::new(0),
            keys_version: AtomicU64::new(0),
        }
    }

    /// Records a mutation that left `live` entries (under the lock). Release: a reader that
    /// sees the new tag or length sees the mutation.
    #[inline]
    pub(crate) fn bump(&self, live: usize, keys_changed: bool) {
        self.len.store(live, Ordering::Release);
        if keys_changed {
            let k = self.keys_version.load(Ordering::Relaxed);
            self.keys_version.store(k + 1, Ordering::Release);
        }
        let v = self.version.load(Ordering::Relaxed);
        self.version.store(v + 1, Ordering::Release);
    }

    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    #[inline(always)]
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn keys_version(&self) -> u64 {
        self.keys_version.load(Ordering::Acquire)
    }
}

pub(crate) mod sealed {
    pub trait Sealed {}
}

#[doc(hidden)]
/// Where a table stood when a section looked at it: its generation and how many positions it
/// had handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub(crate) generation: u64,
    pub(crate) used: usize,
}

#[doc(hidden)]
/// What both kinds of section offer: probing and reading entries by position.
pub trait Section<K, V> {
    /// The fast path of a lookup: probes the chain of `hash`, asking `judge` about each
    /// candidate's key, until it says `Match` or `Unsure` or the chain ends; `At` names a
    /// bucket.
    #[doc(hidden)]
    fn find<E>(&self, hash: u64, judge: impl FnMut(&K) -> Result<Verdict, E>) -> Result<Found, E>;
    /// A step-by-step probe for `hash` from the start of its chain (the slow path).
    #[doc(hidden)]
    fn cursor(&self, hash: u64) -> Cursor;
    /// The next bucket on the chain whose entry is live and whose hash tag matches, if any.
    #[doc(hidden)]
    fn next(&self, hash: u64, cursor: &mut Cursor) -> Option<usize>;
    /// The key in live bucket `b`.
    #[doc(hidden)]
    fn key(&self, b: usize) -> &K;
    /// Calls user code `f` with the value in bucket `b` (a store whose lock this thread holds
    /// re-entrantly lends a clone, never its storage).
    #[doc(hidden)]
    fn with_value<R>(&self, b: usize, f: impl FnOnce(&V) -> R) -> R;
    /// Calls `f` with the value in bucket `b`, where `f` is the crate's own code that runs no
    /// user code but `V::clone` (a `get`'s clone, a `contains_key`'s nothing): the value is
    /// lent as a clone would read it, with no re-entry registration.
    #[doc(hidden)]
    #[inline(always)]
    fn peek_value<R>(&self, b: usize, f: impl FnOnce(&V) -> R) -> R {
        self.with_value(b, f)
    }
    /// A clone of the value in bucket `b`.
    #[doc(hidden)]
    fn clone_value(&self, b: usize) -> V
    where
        V: Clone;
    /// A hash with the same tag as the key in bucket `b` (for copying an entry into another
    /// table without hashing its key again).
    #[doc(hidden)]
    fn hash(&self, b: usize) -> u64;
    /// Order positions handed out in this table (the bound of an ordered walk).
    #[doc(hidden)]
    fn used(&self) -> usize;
    /// The bucket of the entry at order position `p < used()`, if it is live.
    #[doc(hidden)]
    fn at(&self, p: usize) -> Option<usize>;
}

#[doc(hidden)]
/// A writer's section: the dict's lock, held until the section is dropped. Dropping it
/// releases the lock first, then drops or retires what the section removed.
pub trait WriteSection<K, V>: Section<K, V> {
    /// The value in live bucket `b`, borrowed for as long as the section (no user code can
    /// change it meanwhile: writes go through `&mut self`).
    #[doc(hidden)]
    fn value_ref(&self, b: usize) -> Ref<'_, V>;
    /// Where the table stands now.
    #[doc(hidden)]
    fn stamp(&self) -> Stamp;
    /// Whether what a probe for `hash` saw under `stamp` still holds: same table, `found` (a
    /// bucket) still holding the entry that was compared, and no entry with `hash`'s tag
    /// inserted since.
    #[doc(hidden)]
    fn still_valid(&self, stamp: Stamp, hash: u64, found: Option<usize>) -> bool;
    /// Appends a new entry for a key known to be absent.
    #[doc(hidden)]
    fn insert(&mut self, hash: u64, key: K, value: V);
    /// Replaces the value in live bucket `b`, keeping the position and the key; returns the
    /// old value (moved out, or a clone if lock-free readers may still see it).
    #[doc(hidden)]
    fn replace(&mut self, b: usize, value: V) -> V
    where
        V: Clone;
    /// Removes the live entry in bucket `b`; returns its key and value (moved out, or clones).
    #[doc(hidden)]
    fn remove(&mut self, b: usize) -> (K, V)
    where
        K: Clone,
        V: Clone;
    /// Removes the live entry in bucket `b` and drops it once the section ends.
    #[doc(hidden)]
    fn discard(&mut self, b: usize);
    /// The bucket of the last live entry in order (for `popitem`).
    #[doc(hidden)]
    fn last(&mut self) -> Option<usize>;
    /// Removes every entry (dropped or retired once the section ends).
    #[doc(hidden)]
    fn clear(&mut self);
    /// Makes room for `additional` more entries without a further rebuild;
    /// [`Error::TooLarge`](crate::Error::TooLarge) past the most entries a table holds
    /// (2^31), with nothing changed.
    #[doc(hidden)]
    fn reserve(&mut self, additional: usize) -> Result<(), crate::Error>;
}

/// A dict's storage and synchronization (sealed); see the module docs of `dict::store` (the storage contract).
pub trait DictStore<K, V>: sealed::Sealed + Sized {
    /// A read section.
    #[doc(hidden)]
    type Read<'a>: Section<K, V>
    where
        Self: 'a;
    /// A write section.
    #[doc(hidden)]
    type Write<'a>: WriteSection<K, V>
    where
        Self: 'a;
    /// The iterator `Dict::iter` returns.
    #[doc(hidden)]
    type Iter<'a>: DoubleEndedIterator<Item = (K, V)>
    where
        Self: 'a;

    /// An empty store with room for `capacity` entries.
    #[doc(hidden)]
    fn with_capacity(capacity: usize) -> Self;
    /// Live entries (one atomic load).
    #[doc(hidden)]
    fn len(&self) -> usize;
    /// Whether there is no live entry.
    #[doc(hidden)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Entries the current table holds before it must grow.
    #[doc(hidden)]
    fn capacity(&self) -> usize;
    /// Bumped by every mutation.
    #[doc(hidden)]
    fn version(&self) -> u64;
    /// Bumped by every change of the key set.
    #[doc(hidden)]
    fn keys_version(&self) -> u64;
    /// Whether frozen.
    #[doc(hidden)]
    fn is_frozen(&self) -> bool;
    /// The identity used for re-entry detection.
    #[doc(hidden)]
    fn addr(&self) -> usize {
        self as *const Self as usize
    }
    /// Opens a read section.
    #[doc(hidden)]
    fn read(&self) -> Self::Read<'_>;
    /// Opens a write section: fails with `Reentrant` if this thread holds the lock already
    /// (inside a closure running under it), `Frozen` if frozen.
    #[doc(hidden)]
    fn write<E>(&self) -> Result<Self::Write<'_>, Error<E>>;
    /// Opens a write section for a read-only walk that must be atomic (copy, snapshot), or
    /// `None` if this thread holds the lock already (it then reads in place).
    #[doc(hidden)]
    fn exclusive(&self) -> Option<Self::Write<'_>>;
    /// The iterator over clones of the entries.
    #[doc(hidden)]
    fn iter(&self) -> Self::Iter<'_>
    where
        K: Clone,
        V: Clone;
    /// Sets the frozen flag under the lock (refuses re-entry).
    #[doc(hidden)]
    fn freeze(&self) -> Result<(), Error>;
    /// Takes the lock for tree-freeze's commit phase, giving up after `timeout`.
    #[doc(hidden)]
    fn lock_for_freeze(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Option<crate::freeze::FreezeLock<'_>>, Error>;
    /// Sets the frozen flag (the lock is held through a `FreezeLock`).
    #[doc(hidden)]
    fn mark_frozen(&self);

    /// The table of a frozen store, read in place.
    #[doc(hidden)]
    type Frozen<'a>: FrozenTable<'a, K, V>
    where
        Self: 'a;

    /// The current table of a frozen store, with what a lookup needs copied out of it (the
    /// control words and the bucket array), so that a view's lookup starts at them.
    ///
    /// # Safety
    /// The store is frozen (observed with Acquire): no writer changes it again.
    #[doc(hidden)]
    unsafe fn frozen(&self) -> Self::Frozen<'_>;
}

/// A frozen store's table, read in place for `'a` (what [`DictStore::frozen`] returns; its
/// contract makes these reads sound, so they are safe to call).
pub trait FrozenTable<'a, K, V>: Copy {
    /// The value for a key. `quick` judges each candidate without script code (identity, a
    /// pure `eq`); a candidate it leaves [`Verdict::Unsure`] goes to `script` only if its
    /// full hash tag is the key's, so script `eq` never runs on a key of another hash.
    #[doc(hidden)]
    fn find<E>(
        self,
        hash: u64,
        quick: impl FnMut(&K) -> Result<Verdict, E>,
        script: impl FnMut(&K) -> Result<bool, E>,
    ) -> Result<Option<&'a V>, E>;
    /// The entry at order position `pos`, if live.
    #[doc(hidden)]
    fn entry(self, pos: usize) -> Option<(&'a K, &'a V)>;
    /// Order positions handed out.
    #[doc(hidden)]
    fn used(self) -> usize;
}
