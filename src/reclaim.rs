//! Safe memory reclamation for lock-free readers (epoch based, crossbeam-epoch).
//!
//! Why epochs: a reader pins by writing its *own* thread-local epoch slot, so reads write no
//! cache line that other readers touch (the DESIGN's bar), and a pinned reader can follow any
//! pointer it loaded from a table without a per-object reference count. Writers unlink a node
//! or a table first and then [`retire`] it; it is freed only after every thread pinned at the
//! time of retirement has unpinned. Garbage is bounded: it is freed as soon as the global epoch
//! advances, which it does whenever no reader stays pinned for long (readers pin per operation;
//! iterators pin for their own lifetime).
//!
//! Under `--cfg gilfree_loom` the same crate runs on loom's atomics through a per-model collector.

pub(crate) use crossbeam_epoch::Guard;

/// Pins the current thread: pointers loaded from a container stay valid until the guard drops.
#[cfg(not(gilfree_loom))]
#[inline]
pub(crate) fn pin() -> Guard {
    crossbeam_epoch::pin()
}

#[cfg(gilfree_loom)]
loom::lazy_static! {
    static ref COLLECTOR: crossbeam_epoch::Collector = crossbeam_epoch::Collector::new();
}
#[cfg(gilfree_loom)]
loom::thread_local! {
    static HANDLE: crossbeam_epoch::LocalHandle = COLLECTOR.register();
}

#[cfg(gilfree_loom)]
pub(crate) fn pin() -> Guard {
    HANDLE.with(|h| h.pin())
}

/// Frees `ptr` (a `Box::into_raw` pointer) once no thread pinned now can still see it.
///
/// # Safety
/// `ptr` came from `Box::into_raw`, is no longer reachable from any container (so no thread
/// pinning after this call can load it), and is retired exactly once. `T` must be safe to drop
/// on another thread (the containers require `K: Send, V: Send` for `Sync`).
pub(crate) unsafe fn retire<T>(guard: &Guard, ptr: *mut T) {
    let addr = ptr as usize;
    // SAFETY: the caller guarantees the pointer is unlinked and retired once; the epoch
    // scheme runs the closure only after every guard that could have loaded it is gone.
    unsafe {
        guard.defer_unchecked(move || drop(Box::from_raw(addr as *mut T)));
    }
}

/// Pushes this thread's retired garbage to the global queue so that it can be freed soon
/// (used after retiring a whole table, which may be large).
pub(crate) fn flush(guard: &Guard) {
    guard.flush();
}
