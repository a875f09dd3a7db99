//! Synchronization primitives, switched to loom's models under `--cfg gilfree_loom`.
//!
//! Every atomic and lock that takes part in a lock-free protocol is imported from here, so the
//! loom tests in `tests/loom_*.rs` check the very code that ships.

#[cfg(gilfree_loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(not(gilfree_loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

/// A mutex without poisoning: parking_lot in normal builds, loom's model under loom.
#[cfg(not(gilfree_loom))]
pub(crate) type Mutex<T> = parking_lot::Mutex<T>;
#[cfg(not(gilfree_loom))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

#[cfg(gilfree_loom)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);
#[cfg(gilfree_loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
#[cfg(gilfree_loom)]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex(loom::sync::Mutex::new(value))
    }
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        // A loom mutex is poisoned only if a model thread panicked, which already fails the model.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One attempt.
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.0.try_lock().ok()
    }

    /// Loom has no timed locks: one attempt.
    pub(crate) fn try_lock_for(&self, _timeout: std::time::Duration) -> Option<MutexGuard<'_, T>> {
        self.0.try_lock().ok()
    }
}

/// A value written once before it is published to other threads, then only read.
///
/// In normal builds this is a transparent wrapper. Under loom every read is checked to
/// happen-after the write, so a publication with too weak an ordering fails the loom models
/// (plain memory is invisible to loom otherwise).
#[cfg(not(gilfree_loom))]
#[repr(transparent)]
pub(crate) struct Published<T>(T);

#[cfg(not(gilfree_loom))]
impl<T> Published<T> {
    #[inline]
    pub(crate) fn new(value: T) -> Self {
        Published(value)
    }

    #[inline]
    pub(crate) fn get(&self) -> &T {
        &self.0
    }

    /// Mutable access for an owner that has excluded every reader (`LockedDict` under its
    /// exclusive lock).
    #[inline]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        &mut self.0
    }

    #[inline]
    pub(crate) fn into_inner(self) -> T {
        self.0
    }
}

#[cfg(gilfree_loom)]
pub(crate) struct Published<T>(loom::cell::UnsafeCell<T>);

#[cfg(gilfree_loom)]
impl<T> Published<T> {
    pub(crate) fn new(value: T) -> Self {
        let cell = loom::cell::UnsafeCell::new(value);
        // Record the initialisation as a write, so that reads are checked against it.
        cell.with_mut(|_| ());
        Published(cell)
    }

    pub(crate) fn get(&self) -> &T {
        // SAFETY: written only by `new` (or through `get_mut` with every reader excluded);
        // loom checks that this read happens-after the write.
        self.0.with(|p| unsafe { &*p })
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self` excludes every other access.
        self.0.with_mut(|p| unsafe { &mut *p })
    }

    pub(crate) fn into_inner(self) -> T {
        self.0.into_inner()
    }
}
