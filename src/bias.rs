//! [`BiasedMutex`]: a container's lock, biased toward the one thread that uses it.
//!
//! Most containers are touched by one thread only (a function's local list, an object's
//! attribute dict), and an uncontended mutex still costs two atomic read-modify-writes per
//! critical section. As CPython 3.13t biases reference counts toward the owning thread, this
//! lock lets the first thread that takes it own it: the owner enters and leaves with plain
//! stores to the lock's own cache line, no read-modify-write. The first time another thread
//! takes the lock, it *revokes* the bias, and from then on every thread uses the underlying
//! mutex, until one thread alone takes it long enough to be given the bias (a re-bias,
//! below).
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
//! - A revoked lock is *re-biased* toward a thread that then takes it alone: every shared
//!   acquisition, under the mutex, counts how many times in a row the same thread took it, and
//!   at a threshold stores `owner = that thread` (still under the mutex). A thread that reads
//!   such an owner revokes as above; one that read `REVOKED` before the re-bias and then
//!   takes the mutex sees the new owner there (the mutex orders it) and revokes too. This is
//!   the common hand-off: a dict built by the main thread (module import) and then used by one
//!   worker. The threshold starts at [`REBIAS_AFTER`] takes and doubles at each re-bias (up to
//!   2^20), so locks that keep changing hands stop paying for revocations.
//! - Each bias is an *episode* with a `busy` flag of its own: `owner` holds the episode number
//!   beside the thread's (`episode << 56 | id`), the owner raises and clears `busy[episode]`,
//!   and a revoker waits on the flag of the episode it ended. A former owner whose fast path
//!   read its old `owner` word just before a revocation (and was then preempted) may still
//!   store to its old flag afterwards; with one flag for every episode, that store could clear
//!   the flag of a newer owner inside its critical section and let a revoker in beside it.
//!   Episodes are never reused, so such a late store only touches a flag nobody waits on any
//!   more. A lock has [`EPISODES`] of them: after its last re-bias it stays revoked.
//!
//! - A thread that takes a lock it already holds (a stored value's `Clone` that uses its own
//!   container, against the documented contract) panics instead of entering twice: on the
//!   biased path its own episode flag is still raised, on the shared path `holder` (written
//!   by each mutex holder) names it, and if a revoker is waiting for it to leave its biased
//!   section, `revoking` (the owner word the revoker published before its compare-and-swap)
//!   does. Entering twice would alias the container's storage; a
//!   plain mutex would deadlock.
//! - Tree-freeze's timed lock (`try_lock_for`) revokes with a deadline: an owner that is
//!   inside its biased section and waits on a lock the freezer already holds would otherwise
//!   deadlock with it. On timeout the freezer puts the owner word back, still under the mutex:
//!   a thread that read `REVOKED` meanwhile is queued on the mutex and re-checks the word
//!   there.
//!
//! The slow paths (claim, revocation) are rare; the heavy fence of a revocation costs
//! microseconds, at most once per re-bias. Under loom the bias is off: every thread uses the
//! mutex.

use std::cell::UnsafeCell;
use std::time::{Duration, Instant};

use crate::sync::{fence, AtomicU64, AtomicU8, Mutex, MutexGuard, Ordering};

/// `owner` of a lock no thread has taken yet.
const UNCLAIMED: u64 = 0;
/// `owner` of a lock whose bias was revoked.
const REVOKED: u64 = 1;

/// Bias episodes of one lock (the first claim and the re-biases after it).
pub(crate) const EPISODES: usize = 8;

/// Where an `owner` word keeps its episode; the thread number is below.
const EPISODE_SHIFT: u32 = 56;

/// The thread number part of an `owner` word.
const ID_MASK: u64 = (1 << EPISODE_SHIFT) - 1;

/// The episode of an `owner` word (0 for `UNCLAIMED` and `REVOKED`).
#[inline(always)]
fn episode_of(owner: u64) -> usize {
    // Masked: always a valid index (episodes are stored below `EPISODES`).
    (owner >> EPISODE_SHIFT) as usize & (EPISODES - 1)
}

/// Consecutive shared acquisitions by one thread that re-bias a revoked lock toward it (the
/// first time; the threshold doubles with each re-bias). Tiny in unit tests, so that they
/// re-bias and revoke constantly.
pub(crate) const REBIAS_AFTER: u32 = if cfg!(test) { 4 } else { 1024 };

/// The largest re-bias threshold.
const REBIAS_MAX: u32 = if cfg!(test) { 16 } else { 1 << 20 };

/// Who took a revoked lock lately (touched only with the mutex held).
struct Streak {
    /// The owner number of the last thread that took the mutex.
    last: u64,
    /// How many times in a row it did.
    count: u32,
    /// The threshold: [`REBIAS_AFTER`] doubled at each re-bias, at most [`REBIAS_MAX`].
    threshold: u32,
    /// The episode of the latest bias (0: the first claim).
    episode: u8,
}

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
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // 2^56 threads would take millennia to start; stop rather than share a number.
    assert!(id < ID_MASK, "gilfree: thread numbers exhausted");
    id
}

/// A mutex biased toward its first (and, usually, only) thread; see the module docs.
pub(crate) struct BiasedMutex {
    owner: AtomicU64,
    /// `busy[e]`: the owner of episode `e` is inside.
    busy: [AtomicU8; EPISODES],
    /// The owner number of the thread holding `mutex` through [`lock`](Self::lock), or 0
    /// (written only by that thread: its own nested `lock` reads it exactly). A holder by
    /// [`try_lock_for`](Self::try_lock_for) (tree-freeze) leaves it 0: freeze registers the
    /// containers it holds in `reentry` instead.
    holder: AtomicU64,
    /// The owner word a revoker is waiting on (0 when none), published before the revoking
    /// compare-and-swap: an owner that finds `REVOKED` from inside its biased section (a
    /// nested lock) learns here that the mutex will not come.
    revoking: AtomicU64,
    mutex: Mutex<()>,
    /// Only with `mutex` held.
    streak: UnsafeCell<Streak>,
}

// SAFETY: `streak` is only touched with `mutex` held (`note_taker`); everything else is atomic
// or the mutex itself.
unsafe impl Sync for BiasedMutex {}
// SAFETY: as above; no field is tied to a thread.
unsafe impl Send for BiasedMutex {}

/// `BiasGuard::episode` of a guard that holds the mutex.
const SHARED: usize = usize::MAX;

/// A held [`BiasedMutex`]: released when dropped.
///
/// Two words, no enum: the guard is moved into every write section, and as an enum (biased,
/// or holding the mutex's guard) those moves went through the stack as two 8-byte stores
/// read back by one 16-byte load, which cannot be forwarded (`GilFreeList::append` 12 ns
/// instead of 6 ns). The mutex's own guard is forgotten when taken and the mutex unlocked
/// by `drop` (under loom, whose mutex has no such unlock, the guard is kept).
pub(crate) struct BiasGuard<'a> {
    lock: &'a BiasedMutex,
    /// The owner's episode on the biased path, or [`SHARED`].
    episode: usize,
    /// Held for its drop, which unlocks loom's mutex.
    #[cfg(gilfree_loom)]
    #[allow(dead_code)]
    guard: Option<MutexGuard<'a, ()>>,
    /// Released on the thread that took it (as the mutex's guard is).
    _not_send: std::marker::PhantomData<*const ()>,
}

impl<'a> BiasGuard<'a> {
    /// The guard of a biased section of `episode`.
    #[inline(always)]
    fn biased(lock: &'a BiasedMutex, episode: usize) -> Self {
        BiasGuard {
            lock,
            episode,
            #[cfg(gilfree_loom)]
            guard: None,
            _not_send: std::marker::PhantomData,
        }
    }

    /// The guard of the mutex, whose own guard it takes over.
    #[inline(always)]
    fn shared(lock: &'a BiasedMutex, guard: MutexGuard<'a, ()>) -> Self {
        #[cfg(not(gilfree_loom))]
        std::mem::forget(guard);
        BiasGuard {
            lock,
            episode: SHARED,
            #[cfg(gilfree_loom)]
            guard: Some(guard),
            _not_send: std::marker::PhantomData,
        }
    }

    /// Whether this is the owner's biased section (not the mutex).
    #[cfg(all(test, not(gilfree_loom)))]
    fn is_biased(&self) -> bool {
        self.episode != SHARED
    }
}

impl Drop for BiasGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.episode != SHARED {
            // Release: the owner's writes happen-before a revoker that reads 0.
            self.lock.busy[self.episode].store(0, Ordering::Release);
        } else {
            // Before the mutex unlocks.
            self.lock.holder.store(0, Ordering::Relaxed);
            // SAFETY: this guard took over the mutex's guard, forgotten in `shared`: the mutex
            // is locked, by this thread, and unlocked once, here. (Under loom the kept guard
            // unlocks it when the field drops.)
            #[cfg(not(gilfree_loom))]
            unsafe {
                self.lock.mutex.force_unlock()
            };
        }
    }
}

/// A thread took a lock it holds (see the module docs).
#[cold]
#[inline(never)]
fn nested_lock() -> ! {
    panic!(
        "gilfree: a container's lock was taken again by the thread that holds it (a stored \
         value's Clone used its own container, which the containers do not allow)"
    )
}

impl BiasedMutex {
    /// Locks a container for a write: [`Error::Reentrant`] if this thread already holds it
    /// (inside one of its closures: waiting would deadlock), [`Error::Frozen`] if it is frozen
    /// (checked under the lock, so a write is linearizable with the freeze).
    ///
    /// [`Error::Reentrant`]: crate::Error::Reentrant
    /// [`Error::Frozen`]: crate::Error::Frozen
    #[inline(always)]
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
            busy: std::array::from_fn(|_| AtomicU8::new(0)),
            holder: AtomicU64::new(0),
            revoking: AtomicU64::new(0),
            mutex: Mutex::new(()),
            streak: UnsafeCell::new(Streak {
                last: 0,
                count: 0,
                threshold: REBIAS_AFTER,
                episode: 0,
            }),
        }
    }

    /// Takes the lock.
    #[inline]
    pub(crate) fn lock(&self) -> BiasGuard<'_> {
        let owner = self.owner.load(Ordering::Relaxed);
        if owner == REVOKED {
            // Shared by threads: the mutex, with a few plain accesses of overhead.
            return self.lock_shared();
        }
        let me = my_id();
        if owner & ID_MASK == me {
            if let Some(guard) = self.enter_biased(owner) {
                return guard;
            }
        }
        self.lock_slow(me)
    }

    /// The owner's way in, for the `owner` word it read: marks its episode busy and enters if
    /// the word is unchanged. The word may be stale (read before a revocation, and the thread
    /// preempted since); then only that old episode's flag is touched.
    #[inline(always)]
    fn enter_biased(&self, owner: u64) -> Option<BiasGuard<'_>> {
        let episode = episode_of(owner);
        let busy = &self.busy[episode];
        // Only this thread raises its episode's flag, and only it can be `holder` with its
        // number: either one set means it is inside already.
        if busy.load(Ordering::Relaxed) != 0
            || self.holder.load(Ordering::Relaxed) == owner & ID_MASK
        {
            nested_lock();
        }
        busy.store(1, Ordering::Relaxed);
        crate::reclaim::barrier::light();
        // The same word: the same owner *and* the same episode.
        if self.owner.load(Ordering::Relaxed) == owner {
            return Some(BiasGuard::biased(self, episode));
        }
        busy.store(0, Ordering::Release);
        None
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
            REVOKED => self.lock_shared(),
            _ => self.lock_revoking(),
        }
    }

    /// Takes the mutex of a lock found revoked; counts the taker toward a re-bias.
    #[inline]
    fn lock_shared(&self) -> BiasGuard<'_> {
        let guard = self.lock_mutex();
        // The mutex orders this load after any re-bias (made under it): a lock re-biased since
        // `owner` was read is revoked again here.
        if self.owner.load(Ordering::Relaxed) != REVOKED {
            self.revoke();
        } else if !cfg!(gilfree_loom) {
            self.note_taker();
        }
        guard
    }

    /// Takes the mutex, after checking that this thread does not hold it, and records the
    /// holder.
    #[inline]
    fn lock_mutex(&self) -> BiasGuard<'_> {
        // Loom gives every model thread the same number: no nesting check there.
        let me = if cfg!(gilfree_loom) { 0 } else { my_id() };
        if me != 0 && self.holder.load(Ordering::Relaxed) == me {
            nested_lock();
        }
        let guard = match self.mutex.try_lock() {
            Some(guard) => guard,
            None => {
                if me != 0 {
                    // This thread may have found `REVOKED` from inside its own biased section;
                    // then the mutex's holder is a revoker waiting for it. The Acquire fence
                    // pairs with the revoking compare-and-swap this thread's `owner` load
                    // read, so the word published before it is visible.
                    fence(Ordering::Acquire);
                    let waited_on = self.revoking.load(Ordering::Relaxed);
                    if waited_on != 0
                        && waited_on & ID_MASK == me
                        && self.busy[episode_of(waited_on)].load(Ordering::Relaxed) != 0
                    {
                        nested_lock();
                    }
                }
                self.mutex.lock()
            }
        };
        self.holder.store(me, Ordering::Relaxed);
        BiasGuard::shared(self, guard)
    }

    /// With the mutex held, on a revoked lock: counts this thread's takes in a row and re-biases
    /// the lock toward it at the threshold (see the module docs).
    #[inline]
    fn note_taker(&self) {
        let me = my_id();
        // SAFETY: the mutex is held (the only place `streak` is touched).
        let streak = unsafe { &mut *self.streak.get() };
        if usize::from(streak.episode) + 1 >= EPISODES {
            // No episode left: the lock stays revoked, nothing to count.
            return;
        }
        if streak.last != me {
            streak.last = me;
            streak.count = 1;
            return;
        }
        streak.count += 1;
        let episode = usize::from(streak.episode) + 1;
        if streak.count >= streak.threshold {
            streak.count = 0;
            streak.threshold = streak.threshold.saturating_mul(2).min(REBIAS_MAX);
            streak.episode = episode as u8;
            // Relaxed: this thread's own fast path reads it in program order; any other thread
            // either reads it and revokes, or reads it under the mutex (`lock_shared`).
            self.owner
                .store(((episode as u64) << EPISODE_SHIFT) | me, Ordering::Relaxed);
        }
    }

    /// Takes the mutex and revokes the bias of whoever owns it.
    #[cold]
    fn lock_revoking(&self) -> BiasGuard<'_> {
        let guard = self.lock_mutex();
        self.revoke();
        guard
    }

    /// With the mutex held: ends the current bias and waits for its owner to leave.
    fn revoke(&self) {
        let done = self.revoke_until(None);
        debug_assert!(done);
    }

    /// With the mutex held: ends the current bias and waits for its owner to leave, until
    /// `deadline` if there is one. Returns `false` if the deadline came first; the owner word
    /// is then put back, the bias stands, and nothing was entered.
    fn revoke_until(&self, deadline: Option<Instant>) -> bool {
        // A compare-and-swap, not a store: a claim (from `UNCLAIMED`) is the one change made
        // without the mutex, and the word replaced must be known exactly (its episode is the
        // flag to wait on, and it is what a timed-out revocation puts back).
        let mut owner = self.owner.load(Ordering::Relaxed);
        loop {
            if owner == REVOKED {
                return true;
            }
            // Published first (see `revoking`); a stale value after a lost race with a claim
            // names no thread that is inside, so it matches nobody's check.
            self.revoking.store(owner, Ordering::Relaxed);
            match self
                .owner
                .compare_exchange(owner, REVOKED, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => owner = now,
            }
        }
        let busy = &self.busy[episode_of(owner)];
        if !cfg!(gilfree_loom) && owner & ID_MASK == my_id() && busy.load(Ordering::Relaxed) != 0 {
            // Revoking this thread's own bias from inside its biased section (a nested lock
            // that found `REVOKED`, then the restored word, under the mutex): it would wait
            // for itself. The bias stays revoked; the outer section leaves as usual.
            self.revoking.store(0, Ordering::Relaxed);
            nested_lock();
        }
        crate::reclaim::barrier::heavy();
        let done = loop {
            if busy.load(Ordering::Acquire) == 0 {
                break true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // Still under the mutex: whoever read `REVOKED` since is queued on it and
                // re-checks the word once it gets it (`lock_shared`).
                self.owner.store(owner, Ordering::Relaxed);
                break false;
            }
            std::thread::yield_now();
        };
        self.revoking.store(0, Ordering::Relaxed);
        done
    }

    /// One attempt, then a timed one (tree-freeze's commit phase); revokes the bias, within
    /// the same time. `None` if either did not succeed in time.
    pub(crate) fn try_lock_for(&self, timeout: Duration) -> Option<MutexGuard<'_, ()>> {
        // A timeout too large for an `Instant` means no deadline.
        let deadline = Instant::now().checked_add(timeout);
        let guard = self
            .mutex
            .try_lock()
            .or_else(|| self.mutex.try_lock_for(timeout))?;
        self.revoke_until(deadline).then_some(guard)
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
        assert!(m.lock().is_biased(), "first taker owns it");
        assert!(m.lock().is_biased());
        let m2 = Arc::clone(&m);
        std::thread::spawn(move || assert!(!m2.lock().is_biased()))
            .join()
            .unwrap();
        assert!(!m.lock().is_biased(), "revoked");
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

    #[test]
    fn a_revoked_lock_is_rebiased_toward_a_thread_that_takes_it_alone() {
        let m = Arc::new(BiasedMutex::new());
        drop(m.lock()); // the main thread owns it
        let m2 = Arc::clone(&m);
        std::thread::spawn(move || {
            // The first take revokes; the REBIAS_AFTER takes in a row after it re-bias toward us.
            for i in 0..=REBIAS_AFTER {
                assert!(!m2.lock().is_biased(), "take {i}");
            }
            assert!(m2.lock().is_biased(), "re-biased");
            assert!(m2.lock().is_biased());
        })
        .join()
        .unwrap();
        // The main thread comes back: it revokes again, and the next re-bias needs twice as
        // many takes in a row.
        for _ in 0..=2 * REBIAS_AFTER {
            assert!(!m.lock().is_biased());
        }
        assert!(m.lock().is_biased());
    }

    #[test]
    fn rebias_and_revocation_keep_exclusion_while_the_lock_changes_hands() {
        // Two threads take the lock in bursts of random length with random pauses between
        // them, so that (with the unit tests' tiny threshold) each fresh lock goes through all
        // its re-bias episodes and revocations, including while the other thread waits on the
        // mutex; a plain counter under the lock must lose no increment.
        struct Shared {
            lock: BiasedMutex,
            plain: std::cell::UnsafeCell<u64>,
        }
        // SAFETY: `plain` is only touched under `lock` (what the test checks).
        unsafe impl Sync for Shared {}
        let takes = 5_000u64;
        for round in 0..60u64 {
            let s = Arc::new(Shared {
                lock: BiasedMutex::new(),
                plain: std::cell::UnsafeCell::new(0),
            });
            let handles: Vec<_> = (0..2u64)
                .map(|t| {
                    let s = Arc::clone(&s);
                    std::thread::spawn(move || {
                        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (round << 8) ^ t;
                        let mut done = 0;
                        while done < takes {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            let burst = (x % 64).min(takes - done);
                            for _ in 0..burst {
                                let _g = s.lock.lock();
                                // SAFETY: under the lock.
                                unsafe { *s.plain.get() += 1 };
                            }
                            done += burst;
                            for _ in 0..(x >> 58) * 8 {
                                std::hint::spin_loop();
                            }
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            let _g = s.lock.lock();
            // SAFETY: under the lock.
            assert_eq!(unsafe { *s.plain.get() }, 2 * takes, "round {round}");
        }
    }

    #[test]
    fn a_lock_stays_revoked_after_its_last_episode() {
        // Two threads take turns taking the lock alone: each turn re-biases it, until the
        // episodes run out; from then on everyone uses the mutex.
        let m = Arc::new(BiasedMutex::new());
        drop(m.lock());
        let mut biased_turns = 0;
        for turn in 0..2 * EPISODES {
            let m2 = Arc::clone(&m);
            let rebiased = std::thread::spawn(move || {
                for _ in 0..=REBIAS_MAX {
                    drop(m2.lock());
                }
                m2.lock().is_biased()
            })
            .join()
            .unwrap();
            if rebiased {
                biased_turns += 1;
            }
            assert_eq!(rebiased, turn < EPISODES - 1, "turn {turn}");
        }
        assert_eq!(biased_turns, EPISODES - 1);
    }

    #[test]
    fn a_stale_former_owner_cannot_clear_the_new_owners_mark() {
        // The main thread owns the lock and read its `owner` word; before it uses the word,
        // another thread revokes the bias, takes the lock alone until it is re-biased toward
        // itself, and stays inside. The main thread's fast path then runs on the stale word:
        // it must fail, and must leave the new owner marked inside (with one flag shared by
        // all owners it would clear it, and a revoker would enter beside the new owner).
        let m = Arc::new(BiasedMutex::new());
        drop(m.lock());
        let stale = m.owner.load(Ordering::Relaxed);
        let (inside_tx, inside_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let m2 = Arc::clone(&m);
        let owner = std::thread::spawn(move || {
            for _ in 0..=REBIAS_AFTER {
                drop(m2.lock());
            }
            let guard = m2.lock();
            assert!(guard.is_biased(), "re-biased");
            inside_tx.send(m2.owner.load(Ordering::Relaxed)).unwrap();
            go_rx.recv().unwrap();
            drop(guard);
        });
        let current = inside_rx.recv().unwrap();
        assert!(
            m.enter_biased(stale).is_none(),
            "a stale word does not enter"
        );
        assert_eq!(
            m.busy[episode_of(current)].load(Ordering::Relaxed),
            1,
            "the new owner is still marked inside"
        );
        go_tx.send(()).unwrap();
        owner.join().unwrap();
    }

    #[test]
    fn a_thread_that_takes_a_lock_it_holds_panics_instead_of_entering_twice() {
        // Biased: the owner's episode flag is raised.
        let m = BiasedMutex::new();
        let outer = m.lock();
        assert!(outer.is_biased());
        let nested = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(m.lock())));
        assert!(nested.is_err(), "nested biased entry");
        drop(outer);
        assert!(m.lock().is_biased(), "usable afterwards");
        // Shared: `holder` names the thread.
        let m = Arc::new(BiasedMutex::new());
        drop(m.lock());
        let m2 = Arc::clone(&m);
        std::thread::spawn(move || {
            let outer = m2.lock();
            assert!(!outer.is_biased());
            let nested = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(m2.lock())));
            assert!(nested.is_err(), "nested shared entry");
        })
        .join()
        .unwrap();
        assert!(!m.lock().is_biased(), "released by the unwinding");
    }

    #[test]
    fn a_timed_lock_gives_up_on_an_owner_inside_and_leaves_the_bias_standing() {
        // Tree-freeze's timed lock must not wait forever for a biased owner inside its
        // section (it may be waiting for a lock the freezer holds): it gives up, the owner
        // keeps its bias, and a later timed lock, once the owner is out, succeeds.
        let m = Arc::new(BiasedMutex::new());
        let (inside_tx, inside_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let m2 = Arc::clone(&m);
        let owner = std::thread::spawn(move || {
            let guard = m2.lock();
            assert!(guard.is_biased());
            inside_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            drop(guard);
            // Still biased toward this thread: the timed lock put the owner word back.
            assert!(m2.lock().is_biased());
        });
        inside_rx.recv().unwrap();
        assert!(m.try_lock_for(Duration::from_millis(20)).is_none());
        go_tx.send(()).unwrap();
        owner.join().unwrap();
        let guard = m.try_lock_for(Duration::from_secs(60));
        assert!(guard.is_some(), "the owner is out: the bias is revoked");
        drop(guard);
        assert!(!m.lock().is_biased());
    }

    #[test]
    fn a_nested_lock_from_inside_a_biased_section_panics_while_a_revoker_waits() {
        // The owner is inside its biased section; another thread revokes and waits for it.
        // The owner's nested lock finds `REVOKED` and would queue on the mutex the revoker
        // holds, forever: it must panic instead, and the revoker then gets in.
        let m = Arc::new(BiasedMutex::new());
        let outer = m.lock();
        assert!(outer.is_biased());
        let m2 = Arc::clone(&m);
        let revoker = std::thread::spawn(move || drop(m2.lock()));
        while m.owner.load(Ordering::SeqCst) != REVOKED {
            std::hint::spin_loop();
        }
        let nested = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(m.lock())));
        assert!(nested.is_err(), "nested lock while revoked from inside");
        drop(outer);
        revoker.join().unwrap();
        assert!(!m.lock().is_biased());
    }

    #[test]
    fn a_nested_lock_after_a_timed_revocation_gave_up_panics() {
        // Tree-freeze's timed revocation gives up on the owner inside and puts its word back;
        // a nested lock by the owner meanwhile must panic, whichever state it finds.
        for _ in 0..20 {
            let m = Arc::new(BiasedMutex::new());
            let outer = m.lock();
            let m2 = Arc::clone(&m);
            // It may also succeed, if the owner leaves before its deadline.
            let freezer =
                std::thread::spawn(move || drop(m2.try_lock_for(Duration::from_millis(2))));
            while m.owner.load(Ordering::SeqCst) != REVOKED && !freezer.is_finished() {
                std::hint::spin_loop();
            }
            let nested = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(m.lock())));
            assert!(nested.is_err(), "nested lock around a timed revocation");
            drop(outer);
            freezer.join().unwrap();
            drop(m.lock());
        }
    }
}
