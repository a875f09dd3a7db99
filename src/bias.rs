//! [`BiasedMutex`]: a container's lock, biased toward the one thread that uses it.
//!
//! Most containers are touched by one thread only (a function's local list, an object's
//! attribute dict), and an uncontended mutex still costs two atomic read-modify-writes per
//! critical section. As CPython 3.13t biases reference counts toward the owning thread, this
//! lock lets the first thread that takes it own it: the owner enters and leaves with plain
//! stores to the lock's own cache line, no read-modify-write. The first time another thread
//! takes the lock, it *revokes* the bias for good, and from then on every thread uses the
//! underlying mutex.
//!
//! Protocol (an asymmetric Dekker handshake over `owner` and `busy`):
//! - The owner enters by storing `busy = 1`, issuing the light side of the asymmetric fence
//!   ([`crate::reclaim::barrier`]), and checking that `owner` is still itself; it leaves by
//!   storing `busy = 0` with Release. If it finds the bias revoked, it clears `busy` and takes
//!   the mutex like everyone else.
//! - Another thread takes the mutex, stores `owner = REVOKED`, issues the heavy side of the
//!   fence (membarrier, or a SeqCst fence when both sides use fences), and waits until it
//!   reads `busy == 0` (Acquire). The fence pairing guarantees that the owner either sees the
//!   revocation before it enters, or is seen inside; the Acquire read of `busy == 0`
//!   synchronizes with the owner's last Release, so everything the owner did is visible.
//! - Owners are identified by a per-thread number that is never reused, so a thread that
//!   exits while owning a lock cannot hand its bias to a later thread.
//! - A lock is claimed by its first taker with one compare-and-swap (`owner`: 0 → id); a
//!   failed claim (someone else claimed it) takes the revoking path.
//!
//! The slow paths (claim, revocation) run once per lock; the heavy fence costs microseconds,
//! once. Under loom the bias is off: every thread uses the mutex.

use std::time::Duration;

use crate::sync::{AtomicU32, AtomicU64, Mutex, MutexGuard, Ordering};

/// `owner` of a lock no thread has taken yet.
const UNCLAIMED: u64 = 0;
/// `owner` of a lock whose bias was revoked.
const REVOKED: u64 = 1;

/// This thread's owner number (never 0 or 1, never reused).
#[inline]
fn my_id() -> u64 {
    #[cfg(not(gilfree_loom))]
    {
        use std::cell::Cell;
        std::thread_local! {
            static ID: Cell<u64> = const { Cell::new(0) };
        }
        ID.with(|id| {
            let v = id.get();
            if v != 0 {
                return v;
            }
            let v = next_id();
            id.set(v);
            v
        })
    }
    #[cfg(gilfree_loom)]
    {
        // Owns nothing: locks start (and stay) revoked under loom.
        u64::MAX
    }
}

#[cold]
#[cfg(not(gilfree_loom))]
fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(2);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A mutex biased toward its first (and, usually, only) thread; see the module docs.
pub(crate) struct BiasedMutex {
    owner: AtomicU64,
    busy: AtomicU32,
    mutex: Mutex<()>,
}

/// A held [`BiasedMutex`]: released when dropped.
pub(crate) enum BiasGuard<'a> {
    /// The owner, inside its biased critical section.
    Biased(&'a BiasedMutex),
    /// Anyone, through the mutex.
    Locked(#[allow(dead_code)] MutexGuard<'a, ()>),
}

impl Drop for BiasGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if let BiasGuard::Biased(m) = self {
            // Release: the owner's writes happen-before a revoker that reads 0.
            m.busy.store(0, Ordering::Release);
        }
    }
}

impl BiasedMutex {
    /// Locks a container for a write: [`Error::Reentrant`] if this thread already holds it
    /// (inside one of its closures: waiting would deadlock), [`Error::Frozen`] if it is frozen
    /// (checked under the lock, so a write is linearizable with the freeze).
    ///
    /// [`Error::Reentrant`]: crate::Error::Reentrant
    /// [`Error::Frozen`]: crate::Error::Frozen
    #[inline]
    pub(crate) fn lock_for_write<E>(
        &self,
        container: crate::Container,
        addr: usize,
        frozen: &crate::sync::AtomicBool,
    ) -> Result<BiasGuard<'_>, crate::Error<E>> {
        if crate::reentry::held_by_me(addr) {
            return Err(crate::Error::Reentrant(container));
        }
        let lock = self.lock();
        if frozen.load(Ordering::Relaxed) {
            return Err(crate::Error::Frozen(container));
        }
        Ok(lock)
    }

    pub(crate) fn new() -> Self {
        BiasedMutex {
            owner: AtomicU64::new(if cfg!(gilfree_loom) {
                REVOKED
            } else {
                UNCLAIMED
            }),
            busy: AtomicU32::new(0),
            mutex: Mutex::new(()),
        }
    }

    /// Takes the lock.
    #[inline]
    pub(crate) fn lock(&self) -> BiasGuard<'_> {
        let owner = self.owner.load(Ordering::Relaxed);
        if owner == REVOKED {
            // Shared by threads: the mutex, with one load of overhead.
            return BiasGuard::Locked(self.mutex.lock());
        }
        let me = my_id();
        if owner == me {
            self.busy.store(1, Ordering::Relaxed);
            crate::reclaim::barrier::light();
            if self.owner.load(Ordering::Relaxed) == me {
                return BiasGuard::Biased(self);
            }
            self.busy.store(0, Ordering::Release);
        }
        self.lock_slow(me)
    }

    #[cold]
    fn lock_slow(&self, me: u64) -> BiasGuard<'_> {
        match self.owner.load(Ordering::Relaxed) {
            UNCLAIMED => {
                // First taker: claim the bias, then enter through the fast path. The claim's
                // Acquire pairs with nothing before it (no one has held the lock), and the
                // fast path's protocol covers every later revoker.
                if self
                    .owner
                    .compare_exchange(UNCLAIMED, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return self.lock();
                }
                self.lock_revoking()
            }
            REVOKED => BiasGuard::Locked(self.mutex.lock()),
            _ => self.lock_revoking(),
        }
    }

    /// Takes the mutex and revokes the bias of whoever owns it.
    #[cold]
    fn lock_revoking(&self) -> BiasGuard<'_> {
        let guard = self.mutex.lock();
        self.revoke();
        BiasGuard::Locked(guard)
    }

    /// With the mutex held: ends the bias for good and waits for the owner to leave.
    fn revoke(&self) {
        if self.owner.load(Ordering::Relaxed) == REVOKED {
            return;
        }
        self.owner.store(REVOKED, Ordering::SeqCst);
        crate::reclaim::barrier::heavy();
        while self.busy.load(Ordering::Acquire) != 0 {
            std::thread::yield_now();
        }
    }

    /// One attempt, then a timed one (tree-freeze's commit phase); revokes the bias.
    pub(crate) fn try_lock_for(&self, timeout: Duration) -> Option<MutexGuard<'_, ()>> {
        let guard = self
            .mutex
            .try_lock()
            .or_else(|| self.mutex.try_lock_for(timeout))?;
        self.revoke();
        Some(guard)
    }
}

#[cfg(all(test, not(gilfree_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64 as StdU64;
    use std::sync::Arc;

    #[test]
    fn the_owner_enters_without_the_mutex_until_another_thread_comes() {
        let m = Arc::new(BiasedMutex::new());
        assert!(
            matches!(m.lock(), BiasGuard::Biased(_)),
            "first taker owns it"
        );
        assert!(matches!(m.lock(), BiasGuard::Biased(_)));
        let m2 = Arc::clone(&m);
        std::thread::spawn(move || assert!(matches!(m2.lock(), BiasGuard::Locked(_))))
            .join()
            .unwrap();
        assert!(matches!(m.lock(), BiasGuard::Locked(_)), "revoked for good");
    }

    #[test]
    fn revocation_excludes_the_owner() {
        // The owner and another thread increment a plain counter under the lock; a broken
        // handshake loses increments.
        struct Shared {
            lock: BiasedMutex,
            plain: std::cell::UnsafeCell<u64>,
            done: StdU64,
        }
        // SAFETY: `plain` is only touched under `lock` (what the test checks).
        unsafe impl Sync for Shared {}
        let s = Arc::new(Shared {
            lock: BiasedMutex::new(),
            plain: std::cell::UnsafeCell::new(0),
            done: StdU64::new(0),
        });
        let n = 200_000;
        let bump = move |s: &Shared| {
            for _ in 0..n {
                let _g = s.lock.lock();
                // SAFETY: under the lock.
                unsafe { *s.plain.get() += 1 };
            }
            s.done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        };
        drop(s.lock.lock()); // this thread owns the bias
        let s2 = Arc::clone(&s);
        let other = std::thread::spawn(move || bump(&s2));
        bump(&s);
        other.join().unwrap();
        let _g = s.lock.lock();
        // SAFETY: under the lock.
        assert_eq!(unsafe { *s.plain.get() }, 2 * n);
    }
}
