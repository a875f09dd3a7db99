//! Safe memory reclamation for lock-free readers: epochs with asymmetric fences.
//!
//! Readers (`pin`) announce the global epoch in their *own* participant record (one cache line
//! per thread) and go; unpinning stores 0 there. No read-modify-write, no shared cache line
//! written, and no hardware fence: the store-load ordering a reader would otherwise need is
//! supplied by the *writer* side, which calls `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`
//! before it inspects the announcements (a full barrier on every CPU running this process), as
//! liburcu and folly's hazard pointers do. Where that syscall is unavailable (non-Linux, old
//! kernels, loom), both sides use `SeqCst` fences instead.
//!
//! Protocol:
//! - A writer unlinks an object, then [`retire`]s it into a thread-local bag. A full bag is
//!   sealed with the global epoch read after a `SeqCst` fence (so the stamp is no older than
//!   the epoch of any reader that could still see the object).
//! - The global epoch moves from `e` to `e + 1` only when every pinned participant has
//!   announced `e` (checked after the heavy barrier). A reader pinned at `e` therefore keeps
//!   the epoch at most `e + 1`, and a bag stamped `s` is freed once the epoch reaches `s + 2`.
//! - Freeing runs destructors (script code), so it never happens inside a container's lock:
//!   only in [`flush`] (called by containers after unlocking) and when a thread drops its
//!   outermost guard with enough garbage pending (guards are taken before locks and dropped
//!   after them). Garbage of exited threads moves to a global list that any collection frees.
//!
//! Memory stays bounded as long as no reader stays pinned indefinitely (containers pin per
//! operation; iterators for their lifetime).

use std::cell::RefCell;
use std::marker::PhantomData;
use std::mem;

use crate::sync::{fence, AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering};

/// Retired objects per bag; a full bag is sealed.
const BAG: usize = 64;
/// New sealed objects a thread accumulates before its next outermost unpin collects (each
/// collection costs a `membarrier`, a few microseconds, so it is amortized over this many
/// retirements; what a collection cannot free yet waits for the next one).
const COLLECT_EVERY: usize = 16 * BAG;

/// One object waiting to be freed.
struct Retired {
    ptr: *mut (),
    drop: unsafe fn(*mut ()),
}

unsafe fn drop_box<T>(ptr: *mut ()) {
    // SAFETY: `ptr` came from `Box::<T>::into_raw` (see `retire`) and is dropped once.
    drop(unsafe { Box::from_raw(ptr.cast::<T>()) });
}

/// A bag stamped with the epoch it was sealed in.
struct Sealed {
    epoch: u64,
    items: Vec<Retired>,
}

// SAFETY: retired objects are `Send` (the containers require it of what they store), and a
// sealed bag is only ever freed once.
unsafe impl Send for Sealed {}

/// A thread's announcement record; one cache line each (no false sharing between readers).
#[repr(align(128))]
struct Participant {
    /// 0 when not pinned; otherwise the epoch announced at the outermost pin.
    active: AtomicU64,
    /// Pin nesting depth (owner thread only).
    depth: AtomicUsize,
    /// Sealed objects of the owner waiting to be freed (owner thread only).
    pending: AtomicUsize,
    /// `pending` at which the owner's next outermost unpin collects (owner thread only).
    collect_at: AtomicUsize,
    /// Whether a live thread owns this record.
    owned: AtomicBool,
}

struct Global {
    epoch: AtomicU64,
    /// Every participant ever created (leaked, reused once free).
    participants: Mutex<Vec<&'static Participant>>,
    /// Garbage left by exited threads.
    orphans: Mutex<Vec<Sealed>>,
}

impl Global {
    #[cfg(not(gilfree_loom))]
    const fn new() -> Global {
        Global {
            epoch: AtomicU64::new(1),
            participants: parking_lot::const_mutex(Vec::new()),
            orphans: parking_lot::const_mutex(Vec::new()),
        }
    }
}

#[cfg(not(gilfree_loom))]
static GLOBAL: Global = Global::new();

#[cfg(gilfree_loom)]
loom::lazy_static! {
    static ref GLOBAL: Global = Global {
        epoch: AtomicU64::new(1),
        participants: Mutex::new(Vec::new()),
        orphans: Mutex::new(Vec::new()),
    };
}

/// A thread's reclamation state.
struct Local {
    participant: &'static Participant,
    bag: RefCell<Vec<Retired>>,
    sealed: RefCell<Vec<Sealed>>,
}

#[cfg(not(gilfree_loom))]
std::thread_local! {
    static LOCAL: Local = Local::new();
}

#[cfg(gilfree_loom)]
loom::thread_local! {
    static LOCAL: Local = Local::new();
}

impl Local {
    fn new() -> Local {
        Local {
            participant: acquire_participant(),
            bag: RefCell::new(Vec::new()),
            sealed: RefCell::new(Vec::new()),
        }
    }

    fn seal(&self) {
        let items = mem::take(&mut *self.bag.borrow_mut());
        if items.is_empty() {
            return;
        }
        let n = items.len();
        let sealed = Sealed {
            epoch: stamp(),
            items,
        };
        self.sealed.borrow_mut().push(sealed);
        let p = self.participant;
        p.pending
            .store(p.pending.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        #[cfg(not(gilfree_loom))]
        {
            self.seal();
            let sealed = mem::take(&mut *self.sealed.borrow_mut());
            if !sealed.is_empty() {
                GLOBAL.orphans.lock().extend(sealed);
            }
        }
        // Loom tears its statics down before the main thread's thread-locals, so a model
        // thread's leftover garbage is leaked rather than handed to the global list.
        #[cfg(gilfree_loom)]
        {
            mem::forget(mem::take(&mut *self.bag.borrow_mut()));
            mem::forget(mem::take(&mut *self.sealed.borrow_mut()));
        }
        let p = self.participant;
        p.pending.store(0, Ordering::Relaxed);
        p.collect_at.store(COLLECT_EVERY, Ordering::Relaxed);
        // A guard still alive (in another thread-local's destructor) keeps the record.
        if p.depth.load(Ordering::Relaxed) == 0 {
            p.owned.store(false, Ordering::Release);
        }
    }
}

fn acquire_participant() -> &'static Participant {
    let mut all = GLOBAL.participants.lock();
    for p in all.iter() {
        if p.owned
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return p;
        }
    }
    let p: &'static Participant = Box::leak(Box::new(Participant {
        active: AtomicU64::new(0),
        depth: AtomicUsize::new(0),
        pending: AtomicUsize::new(0),
        collect_at: AtomicUsize::new(COLLECT_EVERY),
        owned: AtomicBool::new(true),
    }));
    all.push(p);
    p
}

/// The global epoch, read after a full fence: the stamp of a bag sealed now.
fn stamp() -> u64 {
    fence(Ordering::SeqCst);
    GLOBAL.epoch.load(Ordering::Relaxed)
}

/// A pinned section: pointers loaded from a container stay valid until the guard drops.
/// Not `Send`: it stands for the current thread's announcement.
pub(crate) struct Guard {
    participant: &'static Participant,
    /// A record borrowed because the thread's own state was already destroyed.
    temporary: bool,
    _not_send: PhantomData<*mut ()>,
}

/// Pins the current thread.
#[inline]
pub(crate) fn pin() -> Guard {
    match LOCAL.try_with(|l| l.participant) {
        Ok(p) => enter(p, false),
        Err(_) => enter(acquire_participant(), true),
    }
}

#[inline]
fn enter(p: &'static Participant, temporary: bool) -> Guard {
    let depth = p.depth.load(Ordering::Relaxed);
    if depth == 0 {
        announce(p);
    }
    p.depth.store(depth + 1, Ordering::Relaxed);
    Guard {
        participant: p,
        temporary,
        _not_send: PhantomData,
    }
}

#[inline]
fn announce(p: &Participant) {
    p.active
        .store(GLOBAL.epoch.load(Ordering::Acquire), Ordering::Relaxed);
    // Orders the announcement before this thread's next loads of shared pointers (together
    // with the heavy barrier on the reclaiming side).
    barrier::light();
}

impl Guard {
    /// Unpins and pins again (lets the epoch advance during a long pinned session). Any
    /// reference obtained under the guard must not be used afterwards.
    pub(crate) fn repin(&mut self) {
        let p = self.participant;
        if p.depth.load(Ordering::Relaxed) == 1 {
            p.active.store(0, Ordering::Release);
            announce(p);
        }
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        let p = self.participant;
        let depth = p.depth.load(Ordering::Relaxed) - 1;
        p.depth.store(depth, Ordering::Relaxed);
        if depth == 0 {
            // Release: every read made under the guard happens-before a reclaimer that sees
            // this thread unpinned.
            p.active.store(0, Ordering::Release);
            if self.temporary {
                p.owned.store(false, Ordering::Release);
            } else if p.pending.load(Ordering::Relaxed) >= p.collect_at.load(Ordering::Relaxed) {
                collect();
            }
        }
    }
}

/// Frees `ptr` (a `Box::into_raw` pointer) once no thread pinned now can still see it.
///
/// Never frees anything itself, so it may be called while holding a container's lock.
///
/// # Safety
/// `ptr` came from `Box::into_raw`, is no longer reachable from any container (so no thread
/// pinning after this call can load it), and is retired exactly once. `T` must be safe to drop
/// on another thread, and must not borrow anything (it may outlive its container).
pub(crate) unsafe fn retire<T>(_guard: &Guard, ptr: *mut T) {
    let mut item = Some(Retired {
        ptr: ptr.cast(),
        drop: drop_box::<T>,
    });
    let _ = LOCAL.try_with(|l| {
        let mut bag = l.bag.borrow_mut();
        bag.push(item.take().expect("retired once"));
        let full = bag.len() >= BAG;
        drop(bag);
        if full {
            l.seal();
        }
    });
    if let Some(item) = item {
        // This thread's state is gone (thread exit): hand the object to the global list.
        let sealed = Sealed {
            epoch: stamp(),
            items: vec![item],
        };
        GLOBAL.orphans.lock().push(sealed);
    }
}

/// Seals this thread's garbage and frees whatever is old enough. Runs destructors: call it
/// only with no container lock held.
pub(crate) fn flush(_guard: &Guard) {
    collect_now();
}

/// Seals this thread's garbage, tries to advance the epoch, and frees every bag old enough.
pub(crate) fn collect_now() {
    let _ = LOCAL.try_with(Local::seal);
    collect();
}

/// Tries to advance the epoch, then frees every bag (this thread's and orphans) two epochs old.
fn collect() {
    try_advance();
    let now = GLOBAL.epoch.load(Ordering::Acquire);
    let ripe = |bags: &mut Vec<Sealed>| -> Vec<Sealed> {
        let (ready, wait): (Vec<Sealed>, Vec<Sealed>) = mem::take(bags)
            .into_iter()
            .partition(|b| b.epoch + 2 <= now);
        *bags = wait;
        ready
    };
    let mut ready = LOCAL
        .try_with(|l| {
            let ready = ripe(&mut l.sealed.borrow_mut());
            let freed: usize = ready.iter().map(|b| b.items.len()).sum();
            let p = l.participant;
            let pending = p.pending.load(Ordering::Relaxed).saturating_sub(freed);
            p.pending.store(pending, Ordering::Relaxed);
            // Back off: the next automatic collection waits for COLLECT_EVERY new objects.
            p.collect_at
                .store(pending + COLLECT_EVERY, Ordering::Relaxed);
            ready
        })
        .unwrap_or_default();
    {
        let mut orphans = GLOBAL.orphans.lock();
        if !orphans.is_empty() {
            ready.extend(ripe(&mut orphans));
        }
    }
    // No borrow or lock is held here: destructors may use containers (and retire).
    for bag in ready {
        for item in bag.items {
            // SAFETY: retired once (contract of `retire`); two epochs have passed since it was
            // unlinked, so no pinned thread can still hold it (module docs).
            unsafe { (item.drop)(item.ptr) };
        }
    }
}

/// Moves the global epoch forward by one if every pinned thread has announced it.
fn try_advance() {
    let epoch = GLOBAL.epoch.load(Ordering::Acquire);
    barrier::heavy();
    {
        let all = GLOBAL.participants.lock();
        for p in all.iter() {
            let active = p.active.load(Ordering::Acquire);
            if active != 0 && active != epoch {
                return;
            }
        }
    }
    let _ = GLOBAL
        .epoch
        .compare_exchange(epoch, epoch + 1, Ordering::SeqCst, Ordering::Relaxed);
}

/// The two sides of the asymmetric fence.
mod barrier {
    #[cfg(all(target_os = "linux", not(gilfree_loom)))]
    mod imp {
        use std::sync::atomic::{compiler_fence, fence, AtomicU8, Ordering};

        const CMD_QUERY: libc::c_int = 0;
        const CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
        const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

        /// 0: not decided yet; 1: membarrier; 2: fences on both sides.
        static MODE: AtomicU8 = AtomicU8::new(0);

        fn membarrier(cmd: libc::c_int) -> libc::c_long {
            // SAFETY: the membarrier syscall takes (cmd, flags, cpu_id) and touches no memory.
            unsafe {
                libc::syscall(
                    libc::SYS_membarrier,
                    cmd,
                    0 as libc::c_uint,
                    0 as libc::c_int,
                )
            }
        }

        #[cold]
        fn decide() -> u8 {
            let wanted = (CMD_PRIVATE_EXPEDITED | CMD_REGISTER_PRIVATE_EXPEDITED) as libc::c_long;
            let supported = membarrier(CMD_QUERY);
            let mode = if supported >= 0
                && supported & wanted == wanted
                && membarrier(CMD_REGISTER_PRIVATE_EXPEDITED) == 0
            {
                1
            } else {
                2
            };
            // The first decision wins; every thread then uses the same one.
            match MODE.compare_exchange(0, mode, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => mode,
                Err(decided) => decided,
            }
        }

        #[inline]
        fn mode() -> u8 {
            match MODE.load(Ordering::Acquire) {
                0 => decide(),
                m => m,
            }
        }

        #[inline]
        pub(crate) fn light() {
            if mode() == 1 {
                compiler_fence(Ordering::SeqCst);
            } else {
                fence(Ordering::SeqCst);
            }
        }

        pub(crate) fn heavy() {
            if mode() == 1 {
                // Cannot fail once registered; a failure would be a kernel bug, and the fence
                // below keeps this thread's own ordering in any case.
                let _ = membarrier(CMD_PRIVATE_EXPEDITED);
            }
            fence(Ordering::SeqCst);
        }
    }

    #[cfg(not(all(target_os = "linux", not(gilfree_loom))))]
    mod imp {
        use crate::sync::{fence, Ordering};

        #[inline]
        pub(crate) fn light() {
            fence(Ordering::SeqCst);
        }

        pub(crate) fn heavy() {
            fence(Ordering::SeqCst);
        }
    }

    pub(crate) use imp::{heavy, light};
}
