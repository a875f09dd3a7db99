//! Synchronization primitives, switched to loom's models under `--cfg gilfree_loom`.
//!
//! Every atomic and lock that takes part in a lock-free protocol is imported from here, so the
//! loom tests in `tests/loom_*.rs` check the very code that ships.

#[cfg(gilfree_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(gilfree_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

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
}
