//! [`FrozenCell`]: the current version of a frozen tree, republished atomically (RCU).
//!
//! Frozen trees are the cheapest thing to read, but constants do change now and then: a
//! configuration reload, a module re-import, a class redefinition. A `FrozenCell` holds the
//! *current* frozen tree. A writer builds the next version (a tree built from scratch, or a
//! mutable copy of the current one — `copy()` of a frozen container thaws it — that it then
//! changes; [`publish_with`] hands it the current version), and [`publish`] freezes it
//! (all or nothing) and swaps it in with one atomic pointer swap. Readers never wait:
//! [`load`] returns the version that was current when they looked, which stays alive (and
//! unchanged: it is frozen) for as long as they hold it; the last reader of a replaced version
//! frees it.
//!
//! The swap and the reclamation of replaced versions are `arc-swap`'s: a load is one atomic
//! load plus a write to a slot of the calling thread's own (no lock, no write to a line other
//! readers share in the common case). It is kept off the per-element path: load once, then
//! read as many elements as needed through the tree's frozen views, which take no lock, no pin
//! and no refcount. Writers serialize among themselves (a lock around `publish`), never against
//! readers.
//!
//! [`publish`]: FrozenCell::publish
//! [`publish_with`]: FrozenCell::publish_with
//! [`load`]: FrozenCell::load

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::freeze::{freeze, Freeze};
use crate::Error;

/// The current version of a frozen tree, readable lock-free by any thread and republished
/// atomically by writers (RCU: a reader gets the version that was current when it looked,
/// unchanged while it holds it; the last reader of a replaced version frees it).
///
/// ```
/// use std::sync::Arc;
/// use gilfree::{Freeze, FrozenCell, GilFreeDict, Shape};
///
/// // An interpreter's value: here, strings and dicts of them.
/// #[derive(Clone)]
/// enum Value {
///     Str(Arc<str>),
///     Dict(Arc<GilFreeDict<Arc<str>, Value>>),
/// }
/// impl gilfree::Storable for Value {
///     type Storage = gilfree::storage::Boxed;
/// }
/// impl Freeze for Value {
///     fn shape(&self) -> Shape<'_, Value> {
///         match self {
///             Value::Str(_) => Shape::Leaf,
///             Value::Dict(d) => Shape::Container(&**d),
///         }
///     }
/// }
///
/// let config = |level: &str| {
///     let d = GilFreeDict::new();
///     d.insert(Arc::from("log_level"), Value::Str(Arc::from(level))).unwrap();
///     Value::Dict(Arc::new(d))
/// };
/// let cell = FrozenCell::new(config("info")).unwrap();
/// let read = |cell: &FrozenCell<Value>| {
///     let current = cell.load(); // one load; then frozen reads: no lock, no pin
///     let Value::Dict(d) = &*current else { unreachable!() };
///     let Some(Value::Str(s)) = d.frozen().unwrap().get("log_level") else { unreachable!() };
///     s.to_string()
/// };
/// assert_eq!(read(&cell), "info");
/// let old = cell.publish(config("debug")).unwrap(); // readers of `old` keep it
/// assert_eq!(read(&cell), "debug");
/// assert_eq!(cell.generation(), 1);
/// # drop(old);
/// ```
pub struct FrozenCell<T> {
    current: ArcSwap<T>,
    /// Serializes writers, so that `publish_with` reads the version it replaces.
    writers: Mutex<u64>,
}

impl<T: Freeze> FrozenCell<T> {
    /// A cell holding `tree`, frozen first (all or nothing: on error nothing is frozen).
    pub fn new(tree: T) -> Result<Self, Error> {
        freeze(&tree)?;
        Ok(FrozenCell {
            current: ArcSwap::from_pointee(tree),
            writers: Mutex::new(0),
        })
    }

    /// The version current now. It stays alive, and the same, while the guard lives; a
    /// version published meanwhile is seen by the next `load`. Lock-free; hold the guard for a
    /// batch of reads, not for long (many long-held guards slow `arc-swap`'s loads down; use
    /// [`load_full`](Self::load_full) to keep a version).
    #[inline]
    pub fn load(&self) -> Snapshot<T> {
        Snapshot(self.current.load())
    }

    /// The version current now, as an `Arc` of its own (a refcount increment on the version's
    /// shared count: fine to keep, costlier than [`load`](Self::load) when many threads do it).
    pub fn load_full(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// Freezes `tree` and makes it the current version; returns the version it replaced
    /// (dropped when its last reader is done). On error (`tree` cannot be frozen) nothing
    /// changes.
    pub fn publish(&self, tree: T) -> Result<Arc<T>, Error> {
        let mut generation = self.writers.lock();
        freeze(&tree)?;
        let old = self.current.swap(Arc::new(tree));
        *generation += 1;
        Ok(old)
    }

    /// Builds the next version from the current one with `f` (which runs with the writer
    /// lock held, so no other writer publishes in between), freezes it and publishes it;
    /// returns the version it replaced. Readers keep reading the current version meanwhile.
    pub fn publish_with(&self, f: impl FnOnce(&T) -> T) -> Result<Arc<T>, Error> {
        let mut generation = self.writers.lock();
        let current = self.current.load_full();
        let next = f(&current);
        freeze(&next)?;
        self.current.store(Arc::new(next));
        *generation += 1;
        Ok(current)
    }

    /// How many versions were published after the first.
    pub fn generation(&self) -> u64 {
        *self.writers.lock()
    }
}

impl<T> fmt::Debug for FrozenCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrozenCell")
            .field("generation", &*self.writers.lock())
            .finish_non_exhaustive()
    }
}

/// A loaded version of a [`FrozenCell`]'s tree: dereferences to it.
pub struct Snapshot<T>(arc_swap::Guard<Arc<T>>);

impl<T> Deref for Snapshot<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Snapshot<T> {
    /// This version as an `Arc` of its own (to keep it beyond a short batch of reads).
    pub fn to_arc(&self) -> Arc<T> {
        Arc::clone(&self.0)
    }
}

impl<T> fmt::Debug for Snapshot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot").finish_non_exhaustive()
    }
}
