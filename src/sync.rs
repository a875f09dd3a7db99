//! Synchronization primitives, switched to loom's models under `--cfg gilfree_loom`.
//!
//! Every atomic and lock that takes part in a lock-free protocol is imported from here, so the
//! loom tests in `tests/loom_*.rs` check the very code that ships.

#[cfg(gilfree_loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(not(gilfree_loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

/// A zero-sized field that starts a new cache line in a `#[repr(C)]` struct: the fields after
/// it are kept off the line of the fields before it (readers' fields apart from writers').
#[repr(align(64))]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NewLine;

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

/// A cell written once by a writer before the cell is published to readers, then only read
/// until its owner takes the value back out or drops it (a dict entry's key).
///
/// Under loom every access is checked against the write (a loom `UnsafeCell`).
pub(crate) struct WriteOnce<T>(
    #[cfg(not(gilfree_loom))] std::cell::UnsafeCell<std::mem::MaybeUninit<T>>,
    #[cfg(gilfree_loom)] loom::cell::UnsafeCell<std::mem::MaybeUninit<T>>,
);

impl<T> WriteOnce<T> {
    /// An empty cell (tables allocate theirs zeroed; loom builds them one by one).
    #[cfg(gilfree_loom)]
    pub(crate) fn empty() -> Self {
        WriteOnce(loom::cell::UnsafeCell::new(std::mem::MaybeUninit::uninit()))
    }

    /// Writes the value.
    ///
    /// # Safety
    /// The cell is empty and not yet visible to any other thread.
    #[inline]
    pub(crate) unsafe fn write(&self, value: T) {
        #[cfg(not(gilfree_loom))]
        // SAFETY: no other access exists (caller).
        unsafe {
            (*self.0.get()).write(value);
        }
        #[cfg(gilfree_loom)]
        self.0.with_mut(|p| {
            // SAFETY: as above.
            unsafe { (*p).write(value) };
        });
    }

    /// The value.
    ///
    /// # Safety
    /// The cell was written, the write happens-before this read, and the value is neither
    /// taken nor dropped while the reference lives.
    #[inline]
    pub(crate) unsafe fn get(&self) -> &T {
        #[cfg(not(gilfree_loom))]
        // SAFETY: initialized and alive (caller).
        unsafe {
            (*self.0.get()).assume_init_ref()
        }
        #[cfg(gilfree_loom)]
        // SAFETY: as above; loom checks the ordering.
        self.0.with(|p| unsafe { (*p).assume_init_ref() })
    }

    /// Moves the value out (bitwise); the cell is empty afterwards as far as the owner is
    /// concerned (readers that still hold `&T` keep reading the old bytes, which stay put).
    ///
    /// # Safety
    /// Initialized; taken or dropped once.
    #[inline]
    pub(crate) unsafe fn take(&self) -> T {
        // SAFETY: initialized (caller); a bitwise read leaves the bytes in place.
        unsafe { std::ptr::read(self.get()) }
    }
}

/// A boxed slice of `n` values that are valid when all their bytes are zero (atomics, empty
/// cells), allocated zeroed: a large table's pages are then mapped lazily, not written.
///
/// # Safety
/// An all-zero bit pattern is a valid `T`.
#[cfg(not(gilfree_loom))]
pub(crate) unsafe fn zeroed_slice<T>(n: usize) -> Box<[T]> {
    use std::alloc::{alloc_zeroed, handle_alloc_error, Layout};
    if n == 0 || std::mem::size_of::<T>() == 0 {
        // SAFETY: zero-sized or empty: any zeroed value works and nothing is allocated.
        return (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
    }
    let layout = Layout::array::<T>(n).expect("table too large");
    // SAFETY: a non-zero-sized layout.
    let p = unsafe { alloc_zeroed(layout) }.cast::<T>();
    if p.is_null() {
        handle_alloc_error(layout);
    }
    // SAFETY: `n` zeroed `T`s (valid, caller), allocated with the global allocator and the
    // layout of `[T; n]`, as `Box<[T]>` frees them.
    unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n)) }
}

/// Loom's atomics are not zeroable memory: build them one by one.
#[cfg(gilfree_loom)]
pub(crate) unsafe fn zeroed_slice<T: Zeroed>(n: usize) -> Box<[T]> {
    (0..n).map(|_| T::zeroed()).collect()
}

/// Under loom, types that [`zeroed_slice`] builds say how to make their zero value.
#[cfg(gilfree_loom)]
pub(crate) trait Zeroed {
    fn zeroed() -> Self;
}

#[cfg(gilfree_loom)]
impl Zeroed for AtomicU64 {
    fn zeroed() -> Self {
        AtomicU64::new(0)
    }
}

/// Asks the CPU to start loading the cache line of `p` (a hint: it never faults, reads
/// nothing the program can observe, and is a no-op off x86-64). For walks whose next
/// addresses are known ahead, such as a table rebuild copying entries in insertion order.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(all(target_arch = "x86_64", not(gilfree_loom)))]
    // SAFETY: PREFETCHT0 is a hint: any address, mapped or not, is allowed, and it neither
    // faults nor changes memory (SSE, baseline on x86-64).
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(all(target_arch = "x86_64", not(gilfree_loom))))]
    let _ = p;
}
