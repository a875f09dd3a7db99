//! # gilfree
//!
//! Concurrent dict and list containers for language interpreters that run without a global
//! interpreter lock, with Python semantics and an object-model layer for script-level
//! `__hash__`/`__eq__`.
//!
//! ## Map of the crate
//!
//! | type | what it is |
//! |---|---|
//! | [`LockedDict`] | one lock per dict (biased: no atomic read-modify-write while one thread uses it); every operation linearizable; [`Dict::with_lock`] for compound updates |
//! | [`GilFreeDict`] | readers take no lock and write no shared cache line (epoch reclamation); writers take the dict's lock |
//! | [`Dict`] | the dict API, written once over a storage: `GilFreeDict` and `LockedDict` are `Dict` over [`GilFreeStore`] and [`LockedStore`] ([`DictStore`]), so a VM can be generic over the variant |
//! | [`LockedList`] | one lock per list (biased); every operation linearizable; [`LockedList::with_lock`] for compound updates |
//! | [`GilFreeList`] | index reads, `len`, searches and iteration take no lock and write no shared cache line; writers take the list's lock and shift with atomic stores |
//! | [`Sequence`] | the API both lists share (Python list semantics), so a VM can be generic over the variant |
//! | [`Slice`], [`SliceIndices`] | Python slices with CPython's index arithmetic |
//! | [`ListIter`], [`ListPin`], [`ListReadGuard`], [`LockedListView`], [`GilFreeListView`], [`Pinned`], [`DictView`], [`IterChecked`] | iteration, borrowed read sessions, and write access inside `with_lock` |
//! | [`Storable`], [`InlineWord`], [`Ref`], [`BoxedValue`] | how values are stored in the GIL-free containers: one-word handles (`Arc`, integers, interpreter pointers) inline in an atomic word, anything else boxed; [`Ref`] is a borrowed value |
//! | [`EqModel`], [`KeyModel`] | how an interpreter compares (and hashes) keys and values: fallible, context-passing, identity first, "pure" fast path |
//! | [`Plain`] | the key model of ordinary `Hash + Eq` keys, used by the plain methods (`get`, `insert`, ...) |
//! | [`Error`] | every failure as a value, with CPython's messages |
//! | [`freeze()`], [`frozen_copy`], [`Freeze`], [`Shape`] | tree-freeze: make every container reachable from a root immutable, all or nothing |
//! | [`FrozenDict`], [`FrozenList`] | read-only views of frozen containers: no lock, no pin, no refcount traffic |
//! | [`FrozenCell`], [`Snapshot`] | the current version of a frozen tree, republished atomically while readers keep reading (RCU, with arc-swap) |
//! | [`Interpreter`], [`Owned`], [`Shared`], [`HandOverError`] | interpreter identities (with their own GIL), O(1) hand-over of a tree, frozen trees shared by all |
//! | [`collect_garbage`], [`collect_garbage_exclusive`], [`reader_barrier`] | reclamation at an interpreter's safe point; prompt freeing under an external lock (the CPython GIL); which barrier the readers use |
//! | [`set_drop_panic_hook`], [`DropPanic`] | where panics of destructors that the containers run are reported (they never unwind out of a container call) |
//!
//! Internals, one concept per module: `dict::index` (SWAR control bytes: which bucket holds
//! a hash), `dict::gilfree` / `dict::locked` (the two tables: buckets with key and value
//! inline, insertion order in a separate array), `list::gilfree` / `list::locked` (the
//! arrays), `list::search` (searches that never miss an item while script `eq` runs),
//! `reclaim` (epoch reclamation with asymmetric fences: readers store to their own cache
//! line, writers issue `membarrier`), `bias` (the biased container lock), `cleanup` (the
//! drop-panic policy), `reentry` (a thread re-entering a container whose lock it holds),
//! `storage` (inline or boxed values). `ARCHITECTURE.md` has the whole picture.
//!
//! ## Example
//!
//! ```
//! use gilfree::GilFreeDict;
//! use std::sync::Arc;
//!
//! let globals: Arc<GilFreeDict<String, i64>> = Arc::new(GilFreeDict::new());
//! globals.insert("x".to_string(), 1).unwrap();
//! let readers: Vec<_> = (0..2)
//!     .map(|_| {
//!         let g = Arc::clone(&globals);
//!         std::thread::spawn(move || g.get(&"x".to_string()))
//!     })
//!     .collect();
//! for r in readers {
//!     assert_eq!(r.join().unwrap(), Some(1));
//! }
//! ```
//!
//! ## Interpreter keys
//!
//! Keyed methods come in two forms: `get(&key)` for plain keys (any `Q` the key type
//! borrows as, like `HashMap`), and `get_in(&model, &key)` where `model: &impl KeyModel<K>`
//! is the interpreter's context. A model's `eq` may run script code that re-enters the same
//! dict; it never runs under the dict's lock or pinned. A read compares clones of its
//! candidates after leaving the dict and answers for the dict as it was when it looked; a
//! write re-checks what it found and starts over if the dict changed, failing with
//! [`Error::MutatedDuringLookup`] after [`MAX_LOOKUP_RESTARTS`] restarts. Values are the
//! interpreter's handles: `get` returns a clone (a refcount increment),
//! `get_with`/[`GilFreeDict::pin`] borrow without one.
//!
//! ## Decisions
//!
//! - Values removed or replaced are returned as clones and the stored copy is dropped outside
//!   any lock (after an epoch for `GilFreeDict`), since a destructor may run script code.
//! - A closure that runs under a dict's lock (`upsert`, `compute`, `retain`, `with_lock`, `get_with` on
//!   `LockedDict`) may read that dict; writing to it from inside returns
//!   [`Error::Reentrant`] instead of deadlocking.
//! - Iteration: `iter()` is weakly consistent (never fails, never blocks writers);
//!   `iter_checked()` has CPython's "changed size during iteration" checks.

#![warn(missing_docs, missing_debug_implementations)]

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

mod bias;
mod cleanup;
pub mod dict;
mod error;
pub mod freeze;
mod frozen_cell;
mod interp;
mod list;
mod lookup;
mod model;
mod reclaim;
mod reentry;
#[cfg(feature = "serde")]
mod serde_impls;
pub mod storage;
mod sync;

pub use cleanup::{set_drop_panic_hook, DropPanic, DropPanicHook};
pub use dict::{
    Compute, Dict, DictStore, DictView, FrozenDict, FrozenDictIter, GilFreeDict, GilFreeStore,
    IterChecked, LockedDict, LockedStore, Pinned,
};
pub use error::{Container, Error, Result};
pub use freeze::{freeze, frozen_copy, Freeze, Shape};
pub use frozen_cell::{FrozenCell, Snapshot};
pub use interp::{HandOverError, Interpreter, InterpreterId, Owned, Shared};
pub use list::{
    FrozenList, FrozenListIter, GilFreeList, GilFreeListView, ListIter, ListPin, ListReadGuard,
    LockedList, LockedListView, Sequence, Slice, SliceIndices,
};
pub use lookup::MAX_LOOKUP_RESTARTS;
pub use model::{DefaultHashBuilder, EqModel, KeyModel, Plain};
pub use storage::{BoxedValue, InlineWord, Ref, Storable};

/// Frees, on the calling thread, the removed entries and replaced tables/arrays that no reader
/// can see any more (their destructors run here).
///
/// The GIL-free containers reclaim memory by themselves (after writes, outside their locks);
/// an interpreter may also call this at a safe point, for example before measuring memory or
/// when a thread goes idle. Call it with no container lock held: destructors are script code.
pub fn collect_garbage() {
    reclaim::collect_now();
}

/// How the lock-free readers are ordered against memory reclamation in this process:
/// `"membarrier"` (readers pay only a compiler fence; reclaimers issue the
/// `membarrier(PRIVATE_EXPEDITED)` system call) or `"fences"` (a full fence on both sides: no
/// `membarrier`, or it started failing after start-up, for instance under a seccomp filter
/// installed later; the switch is safe for readers already inside, see `reclaim`). Answered
/// for the calling thread's pins: a thread that has pinned reports what its own pins issue.
pub fn reader_barrier() -> &'static str {
    reclaim::pins_describe()
}

/// Frees at once, without waiting for other threads, everything this thread (and exited
/// threads) retired: the destructors of removed values run here. Returns without doing anything
/// if the calling thread is itself inside a read session (a `pin()`, a `get_with` callback).
///
/// This is for an embedding where one lock already serializes every access to the GIL-free
/// containers — the CPython GIL, when every container access happens with it held and no read
/// session spans a release of it. There, no other thread can be reading, so removed values can
/// be dropped promptly (a `__del__` runs before the next statement), with no heavy fence.
///
/// # Safety
/// No other thread is inside a read session of any GIL-free container of this process, none
/// enters one until this returns, and every read session another thread ran before
/// happens-before this call (it ended before that thread released the shared lock that the
/// caller now holds).
pub unsafe fn collect_garbage_exclusive() {
    // SAFETY: forwarded.
    unsafe { reclaim::collect_exclusive() }
}

/// An exclusive-access section of the calling thread, opened by [`exclusive_access`] and
/// closed when dropped. Not `Send`: it describes the thread that opened it.
pub struct ExclusiveAccess {
    _guard: reclaim::ExclusiveGuard,
}

impl std::fmt::Debug for ExclusiveAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExclusiveAccess").finish_non_exhaustive()
    }
}

/// Opens an exclusive-access section on the calling thread. While the returned guard lives,
/// a value that a write of this thread removes from a [`GilFreeDict`] or overwrites in it, and
/// an item it pops from a [`GilFreeList`] or replaces with `set`, is moved out to the caller
/// (returned, or dropped by `set` after the container's lock is released) instead of being
/// cloned and retired for epoch reclamation: no refcount traffic and no collection. A write
/// made while this thread is itself inside a read session (a `pin()`, a `get_with` callback)
/// still retires, and so do list items replaced by slice assignments, sorts and writes
/// inside a locked closure. [`LockedDict`] and
/// [`LockedList`] move removed values out in any case.
///
/// # Safety
/// For as long as the guard lives, at every write to a GIL-free container on this thread: no
/// other thread is inside a read session of that container, and every read session another
/// thread ran on it happens-before the write. This is the condition of
/// [`collect_garbage_exclusive`], which holds under the CPython GIL when the containers are
/// only reached with it held and no read session spans a release of it.
pub unsafe fn exclusive_access() -> ExclusiveAccess {
    ExclusiveAccess {
        // SAFETY: forwarded.
        _guard: unsafe { reclaim::enter_exclusive() },
    }
}
