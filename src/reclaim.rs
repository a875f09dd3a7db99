//! Epoch-based memory reclamation for the GIL-free containers, with asymmetric fences.
//!
//! A reader *pins* (announces the global epoch in its own cache-line-sized record) for the
//! length of one operation; what it loads from a container stays allocated until it unpins.
//! The pin of a registered thread that is not pinned yet is one thread-local load and one
//! thread-local store (`ready`: its record's address, or a mark while pinned), one load of the
//! global epoch, one store to the thread's own record and one load of the record's barrier
//! flag — no shared cache line is written; the unpin is as short. First pins, nested pins and
//! the pins of an exiting thread take a slow path that keeps `depth`, `participant` and
//! `temporary` right (see `PinState`). The store-load ordering that a
//! classic epoch scheme buys with a full fence on every pin is bought on the *reclaiming* side
//! instead, with `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` (an IPI that serializes every
//! CPU running this process), as liburcu and folly do. Where that syscall is unavailable
//! (non-Linux, old kernels, seccomp filters), both sides use `SeqCst` fences (under loom the
//! reader side has none: see `barrier`). If it
//! starts failing after start-up (a seccomp filter installed later), the process switches to
//! fences for good, and the barrier that failed is replaced once by a TLB shootdown, which
//! serializes the readers that pinned before the switch (x86; elsewhere the process aborts
//! rather than risk a use-after-free: see `barrier::imp::degrade`).
//!
//! Protocol:
//! - A writer unlinks an object (a value word, a table, an array), then [`retire`]s it into a
//!   thread-local bag. A full bag is sealed with the global epoch read after a `SeqCst` fence,
//!   so the stamp is no older than the epoch of any reader that could still see the object.
//! - The global epoch moves from `e` to `e + 1` only when every pinned participant has
//!   announced `e` (checked after the heavy barrier). A reader pinned at `e` therefore keeps
//!   the epoch at most `e + 1`, and a bag stamped `s` is freed once the epoch reaches `s + 2`.
//! - Freeing runs destructors (script code), so it never happens inside a container's lock:
//!   only in [`collect_now`] and [`after_write`] (called by containers after unlocking) and when
//!   a thread drops its outermost guard with enough garbage pending. "Enough" is weighed: a
//!   retired table or array counts one per 4 KiB, so memory stays bounded under resize churn
//!   (CPython gh-132519) without a collection, and its heavy fence, after every small rebuild. Destructors run under the
//!   [`crate::cleanup`] policy: a panic is reported, never propagated, and the rest of the batch
//!   is still freed. Garbage of exited threads moves to a global list that any collection frees.
//! - Writers that hold a container's lock do not pin: nothing reachable from the container can
//!   be retired by anyone else while they hold it. User code (script `eq`, closures, loop
//!   bodies) never runs pinned, except inside an explicit `pin()` session or a `get_with`
//!   callback, which the containers document as short, and the interpreter's own
//!   `Freeze::shape`/`Clone` during a freeze walk (they are meant to be quick, non-script
//!   code).
//!
//! Memory stays bounded as long as no thread stays pinned indefinitely. A leaked guard
//! (`mem::forget` of a pin session) stops reclamation for the whole process.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::mem;

use crate::cleanup;
use crate::sync::{fence, AtomicBool, AtomicU64, Mutex, Ordering};

/// Retired objects per bag; a full bag is sealed.
const BAG: usize = 64;
/// Weight of sealed garbage a thread accumulates before its next collection (each costs a
/// `membarrier`, a few microseconds, so it is amortized over this much; what a collection
/// cannot free yet waits for the next one). An object weighs 1, a large one (a table, an
/// array) one per 4 KiB: a thread holds back at most about 4 MiB of large garbage, or 1024
/// small objects, plus what the last collection could not free yet.
const COLLECT_EVERY: usize = 16 * BAG;

/// The weight of a retired object of `bytes` bytes (see [`COLLECT_EVERY`]).
#[inline]
pub(crate) fn weight_of(bytes: usize) -> usize {
    (bytes / 4096).max(1)
}

/// One object waiting to be freed: a word (an address or an inline value) and its destructor.
struct Retired {
    word: u64,
    drop: unsafe fn(u64),
}

/// A bag stamped with the epoch it was sealed in.
struct Sealed {
    epoch: u64,
    items: Vec<Retired>,
    /// Its weight (see [`COLLECT_EVERY`]).
    weight: usize,
}

// SAFETY: retired objects are `Send` (the containers require it of what they store), and a
// sealed bag is only ever freed once.
unsafe impl Send for Sealed {}

impl Sealed {
    /// Runs every destructor, each once, under the cleanup policy.
    fn free(self) {
        cleanup::drop_all(self.items.into_iter().map(Freeing));
    }
}

/// A retired object whose destructor runs when this is dropped.
struct Freeing(Retired);

impl Drop for Freeing {
    fn drop(&mut self) {
        // SAFETY: retired once (contract of `retire`), and freed only after two epochs have
        // passed since it was unlinked (or under `collect_exclusive`'s contract), so no
        // pinned thread can still hold it.
        unsafe { (self.0.drop)(self.0.word) };
    }
}

/// A thread's announcement record; one cache line pair each (no false sharing).
#[repr(align(128))]
struct Participant {
    /// 0 when not pinned; otherwise the epoch announced at the outermost pin.
    active: AtomicU64,
    /// Whether a live thread owns this record.
    owned: AtomicBool,
    /// Whether a pin through this record needs a full fence after its announcement
    /// ([`barrier::reader_fences`]): the process-wide barrier mode, mirrored here so that the
    /// pin reads it from the line it has just written. Set before the switch's serializing
    /// barrier (see `barrier::imp::degrade`).
    fences: AtomicBool,
}

struct Global {
    epoch: AtomicU64,
    /// Every participant ever created (leaked, reused once free).
    participants: Mutex<Vec<&'static Participant>>,
    /// Garbage left by exited threads.
    orphans: Mutex<Vec<Sealed>>,
    /// Whether `orphans` may be non-empty (set under its lock; lets the exclusive collection
    /// skip the lock).
    has_orphans: AtomicBool,
}

impl Global {
    #[cfg(not(gilfree_loom))]
    const fn new() -> Global {
        Global {
            epoch: AtomicU64::new(1),
            participants: parking_lot::const_mutex(Vec::new()),
            orphans: parking_lot::const_mutex(Vec::new()),
            has_orphans: AtomicBool::new(false),
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
        has_orphans: AtomicBool::new(false),
    };
}

/// The per-thread state a pin touches. It has no destructor, so accessing it is a plain
/// thread-local address computation (no registration check).
///
/// The thread is pinned iff `depth > 0` or `ready` is [`PINNED_FAST`] (see
/// [`PinState::pinned`]). A pin through the fast path touches only `ready`; every other pin
/// counts in `depth`.
struct PinState {
    /// This thread's record, or null before the first pin (and after the thread's garbage
    /// state is destroyed).
    participant: Cell<*const Participant>,
    /// The record (`participant`) while this thread may pin by the fast path (registered, not
    /// temporary, not pinned); [`PINNED_FAST`] while the outermost pin is one taken by the
    /// fast path; [`NOT_READY`] otherwise. Records are 128-byte aligned and both marks are
    /// odd, so bit 0 tells the first case from the others with one test, in place of
    /// checking `depth`, `participant` and (at unpin) `temporary` one by one.
    ready: Cell<*const Participant>,
    /// Live guards besides the outermost one taken by the fast path (if it was).
    depth: Cell<u32>,
    /// The record was borrowed for this pin only (thread-exit path).
    temporary: Cell<bool>,
    /// Sealed objects of this thread waiting to be freed.
    pending: Cell<usize>,
    /// `pending` at which this thread's next outermost unpin (or write) collects.
    collect_at: Cell<usize>,
    /// Live [`ExclusiveGuard`]s of this thread.
    exclusive: Cell<u32>,
}

/// `PinState::ready` of a thread that cannot pin by the fast path.
const NOT_READY: *const Participant = std::ptr::without_provenance(1);
/// `PinState::ready` of a thread whose outermost pin was taken by the fast path.
const PINNED_FAST: *const Participant = std::ptr::without_provenance(3);

impl PinState {
    const fn new() -> PinState {
        PinState {
            participant: Cell::new(std::ptr::null()),
            ready: Cell::new(NOT_READY),
            depth: Cell::new(0),
            temporary: Cell::new(false),
            pending: Cell::new(0),
            collect_at: Cell::new(COLLECT_EVERY),
            exclusive: Cell::new(0),
        }
    }

    /// Whether the outermost live guard was taken by the fast path.
    #[inline]
    fn pinned_fast(&self) -> bool {
        self.ready.get() == PINNED_FAST
    }

    /// Live guards of this thread.
    #[inline]
    fn guards(&self) -> u64 {
        u64::from(self.depth.get()) + u64::from(self.pinned_fast())
    }

    /// Whether this thread is pinned (inside a read session).
    #[inline]
    fn pinned(&self) -> bool {
        self.depth.get() > 0 || self.pinned_fast()
    }
}

/// A thread's garbage (has a destructor that hands leftovers to the global list).
struct Local {
    participant: &'static Participant,
    bag: RefCell<Vec<Retired>>,
    /// The weight of `bag` (objects, large ones counting more).
    bag_weight: Cell<usize>,
    sealed: RefCell<Vec<Sealed>>,
}

#[cfg(not(gilfree_loom))]
std::thread_local! {
    static PIN: PinState = const { PinState::new() };
    static LOCAL: Local = Local::new();
}

#[cfg(gilfree_loom)]
loom::thread_local! {
    static PIN: PinState = PinState::new();
    static LOCAL: Local = Local::new();
}

impl Local {
    fn new() -> Local {
        let participant = acquire_participant();
        let _ = PIN.try_with(|s| {
            s.participant.set(participant);
            s.temporary.set(false);
            // A pin that is registering resets it once it has announced.
            if !s.pinned() {
                s.ready.set(participant);
            }
        });
        Local {
            participant,
            bag: RefCell::new(Vec::new()),
            bag_weight: Cell::new(0),
            sealed: RefCell::new(Vec::new()),
        }
    }

    fn seal(&self) {
        let items = mem::take(&mut *self.bag.borrow_mut());
        if items.is_empty() {
            return;
        }
        let n = items.len();
        let weight = self.bag_weight.replace(0);
        self.sealed.borrow_mut().push(Sealed {
            epoch: stamp(),
            items,
            weight,
        });
        debug_assert!(weight >= n);
        let _ = PIN.try_with(|s| s.pending.set(s.pending.get() + weight));
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        #[cfg(not(gilfree_loom))]
        {
            self.seal();
            let sealed = mem::take(&mut *self.sealed.borrow_mut());
            if !sealed.is_empty() {
                adopt(sealed);
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
        let still_pinned = PIN
            .try_with(|s| {
                s.pending.set(0);
                s.collect_at.set(COLLECT_EVERY);
                if s.pinned() {
                    // A guard alive in another thread-local's destructor keeps the record
                    // until its outermost unpin releases it. `collect_at` 0 sends a fast
                    // guard's unpin to its cold path, which sees `temporary`.
                    s.temporary.set(true);
                    s.collect_at.set(0);
                    true
                } else {
                    s.participant.set(std::ptr::null());
                    s.ready.set(NOT_READY);
                    false
                }
            })
            .unwrap_or(false);
        if !still_pinned {
            p.owned.store(false, Ordering::Release);
        }
    }
}

/// Hands garbage of an exiting thread to the global list.
fn adopt(bags: Vec<Sealed>) {
    let mut orphans = GLOBAL.orphans.lock();
    orphans.extend(bags);
    GLOBAL.has_orphans.store(true, Ordering::Release);
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
    // Under the participants lock: a switch to fences (which sets every record's flag under
    // it) either comes after this and sets the flag, or came before and is read here.
    let p: &'static Participant = Box::leak(Box::new(Participant {
        active: AtomicU64::new(0),
        owned: AtomicBool::new(true),
        fences: AtomicBool::new(barrier::reader_fences()),
    }));
    all.push(p);
    p
}

/// Sets every record's `fences` flag (the process switched to fences; see
/// `barrier::imp::degrade`). Records created later read the mode under the same lock.
#[cfg_attr(not(all(target_os = "linux", not(gilfree_loom))), allow(dead_code))]
fn flag_every_record_for_fences() {
    for p in GLOBAL.participants.lock().iter() {
        p.fences.store(true, Ordering::SeqCst);
    }
}

/// The global epoch, read after a full fence: the stamp of a bag sealed now.
fn stamp() -> u64 {
    fence(Ordering::SeqCst);
    GLOBAL.epoch.load(Ordering::Relaxed)
}

/// A pinned section: what is loaded from a GIL-free container stays allocated until the guard
/// drops. Not `Send`: it stands for the current thread's announcement.
pub(crate) struct Guard {
    _not_send: PhantomData<*mut ()>,
}

/// Pins the current thread.
#[inline]
pub(crate) fn pin() -> Guard {
    PIN.with(|s| {
        let p = s.ready.get();
        if p.addr() & 1 == 0 {
            // Registered and not pinned.
            s.ready.set(PINNED_FAST);
            // SAFETY: an even `ready` is the thread's record, a leaked `&'static Participant`.
            announce(unsafe { &*p });
        } else {
            pin_slow(s);
        }
    });
    Guard {
        _not_send: PhantomData,
    }
}

/// A nested pin, or the first pin of a thread (or one during thread exit).
#[cold]
#[inline(never)]
fn pin_slow(s: &PinState) {
    let depth = s.depth.get();
    if depth == 0 && !s.pinned_fast() {
        let mut p = s.participant.get();
        if p.is_null() {
            p = register(s);
        }
        // Registration may have set it (`Local::new`): this pin is not a fast one.
        s.ready.set(NOT_READY);
        // SAFETY: a non-null record pointer is a leaked `&'static Participant`.
        announce(unsafe { &*p });
    }
    s.depth.set(
        depth
            .checked_add(1)
            .expect("read sessions nested 2^32 deep"),
    );
}

/// First pin of a thread (or a pin during thread exit): finds this thread's record.
#[cold]
fn register(s: &PinState) -> *const Participant {
    match LOCAL.try_with(|l| l.participant) {
        Ok(p) => {
            s.participant.set(p);
            s.temporary.set(false);
            p
        }
        Err(_) => {
            // This thread's garbage state is already destroyed: borrow a record for this pin
            // (`collect_at` 0 sends the unpin to `unpin_due`, which gives it back).
            let p = acquire_participant();
            s.participant.set(p);
            s.temporary.set(true);
            s.collect_at.set(0);
            p
        }
    }
}

#[inline]
fn announce(p: &Participant) {
    p.active
        .store(GLOBAL.epoch.load(Ordering::Acquire), Ordering::Relaxed);
    // Orders the announcement before this thread's next loads of shared pointers (together
    // with the heavy barrier on the reclaiming side). The flag is loaded after the store.
    barrier::light_for(&p.fences);
}

impl Guard {
    /// Unpins and pins again (lets the epoch advance during a long pinned session). Any
    /// reference obtained under the guard must not be used afterwards.
    pub(crate) fn repin(&mut self) {
        PIN.with(|s| {
            // Only when this is the one live guard.
            if s.guards() == 1 {
                // SAFETY: pinned, so the record pointer is set.
                let p = unsafe { &*s.participant.get() };
                p.active.store(0, Ordering::Release);
                announce(p);
            }
        });
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        let collect_now = PIN.with(|s| {
            // Guards may drop in any order: the last one unpins. With `depth` 0 the last one
            // is the fast path's.
            if s.depth.get() != 0 {
                return unpin_slow(s);
            }
            // SAFETY: pinned, so the record pointer is set (a leaked `&'static Participant`).
            unpin(s, unsafe { &*s.participant.get() })
        });
        if collect_now {
            collect();
        }
    }
}

/// The outermost unpin, through record `p`: whether to collect now.
#[inline(always)]
fn unpin(s: &PinState, p: &'static Participant) -> bool {
    // Release: every read made under the guard happens-before a reclaimer that sees this
    // thread unpinned.
    p.active.store(0, Ordering::Release);
    if s.pending.get() >= s.collect_at.get() {
        unpin_due(s, p)
    } else {
        s.ready.set(p);
        false
    }
}

/// The drop of a guard counted in `depth`: a nested one, or the last of a pin taken by the
/// slow path.
#[cold]
#[inline(never)]
fn unpin_slow(s: &PinState) -> bool {
    let depth = s.depth.get();
    s.depth.set(depth - 1);
    if depth > 1 || s.pinned_fast() {
        return false;
    }
    // SAFETY: pinned, so the record pointer is set (a leaked `&'static Participant`).
    unpin(s, unsafe { &*s.participant.get() })
}

/// The end of an unpin when garbage is due, or when the record is borrowed (`temporary`: the
/// thread's garbage state was destroyed before or during the pin, and `collect_at` was set
/// to 0 to come here): whether to collect now.
#[cold]
#[inline(never)]
fn unpin_due(s: &PinState, p: &'static Participant) -> bool {
    if s.temporary.get() {
        s.participant.set(std::ptr::null());
        s.ready.set(NOT_READY);
        s.temporary.set(false);
        s.collect_at.set(COLLECT_EVERY);
        p.owned.store(false, Ordering::Release);
        false
    } else {
        s.ready.set(p);
        !cfg!(gilfree_loom)
    }
}

/// An exclusive-access section of this thread (see [`enter_exclusive`]). Not `Send`.
pub(crate) struct ExclusiveGuard {
    _not_send: PhantomData<*mut ()>,
}

/// Opens an exclusive-access section on this thread: until the guard drops, a value that
/// leaves a GIL-free dict (removed or overwritten) or list (popped, or replaced by `set`)
/// through a write of this thread, while the thread is not pinned, is handed to the writer at
/// once ([`exclusive_now`]) instead of being retired.
///
/// # Safety
/// While the guard lives, at every write to a GIL-free container on this thread, no other
/// thread is inside a read session of it, and every read session another thread ran on it
/// happens-before the write (as for [`collect_exclusive`]).
pub(crate) unsafe fn enter_exclusive() -> ExclusiveGuard {
    PIN.with(|s| {
        let n = s
            .exclusive
            .get()
            .checked_add(1)
            .expect("exclusive sections nested 2^32 deep");
        s.exclusive.set(n);
    });
    ExclusiveGuard {
        _not_send: PhantomData,
    }
}

impl Drop for ExclusiveGuard {
    fn drop(&mut self) {
        let _ = PIN.try_with(|s| s.exclusive.set(s.exclusive.get() - 1));
    }
}

/// Whether a value unlinked now by a writer on this thread may go straight to the writer
/// instead of being retired: inside an exclusive-access section (whose contract excludes
/// readers on other threads) and not pinned (no read session of this thread can hold it).
#[inline]
pub(crate) fn exclusive_now() -> bool {
    PIN.try_with(|s| s.exclusive.get() != 0 && !s.pinned())
        .unwrap_or(false)
}

/// The value of a word that a write section of this thread has just unlinked, moved out, if
/// no reader can still be looking at the word: its type owns nothing (a bitwise copy is the
/// value, and readers' copies stay valid without the original), or [`exclusive_now`]. `None`:
/// the caller keeps the word for retirement.
///
/// # Safety
/// `word` is a stored word of a `V` that the caller's section unlinked and has neither retired
/// nor taken back; on `Some` the word is consumed (the caller never uses it again).
#[inline]
pub(crate) unsafe fn take_back<V: crate::storage::Storable>(word: u64) -> Option<V> {
    use crate::storage::Storage;
    if may_take_back::<V>() {
        // SAFETY: the caller's word, taken back once (contract); no reader can hold it (above).
        Some(unsafe { V::Storage::from_word(word) })
    } else {
        None
    }
}

/// Whether [`take_back`] would move a word of a `V` out now (for a writer that decides
/// before it unlinks).
#[inline]
pub(crate) fn may_take_back<V: crate::storage::Storable>() -> bool {
    use crate::storage::Storage;
    !V::Storage::OWNS || exclusive_now()
}

/// Whether the current thread is pinned (it is inside a read session).
pub(crate) fn is_pinned() -> bool {
    PIN.try_with(PinState::pinned).unwrap_or(false)
}

/// Which barrier this thread's pins issue after their announcement: its record's flag once the
/// thread has registered, the process's mode before that.
pub(crate) fn pins_describe() -> &'static str {
    let flag = PIN
        .try_with(|s| {
            let p = s.participant.get();
            // SAFETY: a non-null record pointer is a leaked `&'static Participant`.
            (!p.is_null()).then(|| unsafe { &*p }.fences.load(Ordering::Relaxed))
        })
        .ok()
        .flatten();
    match flag {
        Some(true) if cfg!(not(gilfree_loom)) => "fences",
        Some(false) if cfg!(not(gilfree_loom)) => "membarrier",
        _ => barrier::describe(),
    }
}

/// Frees the object that `word` and `drop` describe once no thread pinned now can still see
/// it. Never frees anything itself, so it may be called while holding a container's lock.
///
/// # Safety
/// The object is no longer reachable from any container (so no thread pinning after this
/// call can load it) and is retired exactly once; `drop(word)` frees it, on any thread, and it
/// borrows nothing (it may outlive its container).
pub(crate) unsafe fn retire(word: u64, drop: unsafe fn(u64)) {
    // SAFETY: forwarded.
    unsafe { retire_weighted(word, drop, 1) }
}

/// [`retire`] for an object of weight `weight` (see [`weight_of`]): a heavy one seals its bag
/// at once, so that the next collection can free it.
///
/// # Safety
/// As [`retire`].
pub(crate) unsafe fn retire_weighted(word: u64, drop: unsafe fn(u64), weight: usize) {
    let mut item = Some(Retired { word, drop });
    let _ = LOCAL.try_with(|l| {
        let mut bag = l.bag.borrow_mut();
        bag.push(item.take().expect("retired once"));
        let full = bag.len() >= BAG;
        std::mem::drop(bag);
        l.bag_weight.set(l.bag_weight.get() + weight);
        if full || weight >= BAG {
            l.seal();
        }
    });
    if let Some(item) = item {
        // This thread's state is gone (thread exit): hand the object to the global list.
        let sealed = Sealed {
            epoch: stamp(),
            items: vec![item],
            weight,
        };
        adopt(vec![sealed]);
    }
}

/// Called by a writer after it released its container's lock: collects if this thread has
/// accumulated enough garbage (and is not inside a read session that could be holding it).
#[inline]
pub(crate) fn after_write() {
    // Under loom, only explicit quiescent points collect (see `barrier`).
    let due = !cfg!(gilfree_loom)
        && PIN
            .try_with(|s| s.pending.get() >= s.collect_at.get() && !s.pinned())
            .unwrap_or(false);
    if due {
        collect();
    }
}

/// Seals this thread's garbage, tries to advance the epoch, and frees every bag old enough.
pub(crate) fn collect_now() {
    let _ = LOCAL.try_with(Local::seal);
    collect();
}

/// Frees, without waiting for epochs, everything this thread and exited threads retired.
///
/// # Safety
/// No thread other than the caller is pinned, none can pin until this returns, and every pin
/// another thread made before happens-before this call (an external lock that every reader
/// holds while it reads, such as the CPython GIL when the containers are only reached with it
/// held and no read session spans a release of it). The caller itself must not be pinned
/// (checked: the call then does nothing).
pub(crate) unsafe fn collect_exclusive() {
    // The bag is drained in place (its capacity is kept for the next writes): this runs after
    // every write of a caller such as the CPython binding, so it must cost little more than
    // the destructors it runs — and next to nothing when the write retired nothing: then it
    // reads one thread-local (in an extension module each is a call to `__tls_get_addr`),
    // and asks whether the thread is pinned only when there is something to free.
    let taken = LOCAL.try_with(|l| {
        if l.bag.borrow().is_empty() && l.sealed.borrow().is_empty() || is_pinned() {
            return None;
        }
        let items = mem::take(&mut *l.bag.borrow_mut());
        l.bag_weight.set(0);
        let sealed = mem::take(&mut *l.sealed.borrow_mut());
        let _ = PIN.try_with(|s| {
            s.pending.set(0);
            s.collect_at.set(COLLECT_EVERY);
        });
        Some((items, sealed))
    });
    if let Ok(Some((mut items, sealed))) = taken {
        // No borrow is held while destructors run: they may use containers (and retire).
        cleanup::drop_all(items.drain(..).map(Freeing));
        for bag in sealed {
            bag.free();
        }
        let _ = LOCAL.try_with(|l| {
            let mut bag = l.bag.borrow_mut();
            if bag.capacity() == 0 {
                *bag = items;
            }
        });
    }
    if GLOBAL.has_orphans.load(Ordering::Acquire) && !is_pinned() {
        let orphans = {
            let mut orphans = GLOBAL.orphans.lock();
            GLOBAL.has_orphans.store(false, Ordering::Relaxed);
            mem::take(&mut *orphans)
        };
        for bag in orphans {
            bag.free();
        }
    }
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
            let freed: usize = ready.iter().map(|b| b.weight).sum();
            let _ = PIN.try_with(|s| {
                let pending = s.pending.get().saturating_sub(freed);
                s.pending.set(pending);
                // Back off: the next automatic collection waits for COLLECT_EVERY new objects.
                s.collect_at.set(pending + COLLECT_EVERY);
            });
            ready
        })
        .unwrap_or_default();
    {
        if GLOBAL.has_orphans.load(Ordering::Acquire) {
            let mut orphans = GLOBAL.orphans.lock();
            ready.extend(ripe(&mut orphans));
            GLOBAL
                .has_orphans
                .store(!orphans.is_empty(), Ordering::Relaxed);
        }
    }
    // No borrow or lock is held here: destructors may use containers (and retire).
    for bag in ready {
        bag.free();
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

/// The two sides of the asymmetric fence (also used by the biased locks, `crate::bias`).
pub(crate) mod barrier {
    #[cfg(all(target_os = "linux", not(gilfree_loom)))]
    mod imp {
        use std::sync::atomic::{compiler_fence, fence, AtomicBool, AtomicU8, Ordering};

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
            // One compare on the common path; the undecided and the fence modes out of line.
            if MODE.load(Ordering::Acquire) == 1 {
                compiler_fence(Ordering::SeqCst);
            } else {
                light_slow();
            }
        }

        /// [`light`] for a pin, with the mirror of the mode in the pinning thread's record
        /// (`fences`, loaded after the announcement was stored: see [`degrade`]).
        #[inline(always)]
        pub(crate) fn light_for(fences: &AtomicBool) {
            if fences.load(Ordering::Relaxed) {
                fence(Ordering::SeqCst);
            } else {
                compiler_fence(Ordering::SeqCst);
            }
        }

        /// Whether readers must issue full fences (the value a new record's `fences` starts
        /// with; decides the mode if it is not decided yet).
        pub(crate) fn reader_fences() -> bool {
            mode() != 1
        }

        #[cold]
        #[inline(never)]
        fn light_slow() {
            if mode() == 1 {
                compiler_fence(Ordering::SeqCst);
            } else {
                fence(Ordering::SeqCst);
            }
        }

        pub(crate) fn heavy() {
            if mode() == 1 && membarrier(CMD_PRIVATE_EXPEDITED) != 0 {
                degrade();
            }
            fence(Ordering::SeqCst);
        }

        /// `membarrier` failed after it was registered (a seccomp filter installed after
        /// start-up, say). From now on both sides use `SeqCst` fences. Readers that pinned
        /// before the switch used a compiler fence only, so this barrier — the one the caller
        /// needs now — must still serialize every CPU running the process: on x86 a TLB
        /// shootdown does (an IPI to each of those CPUs, which drains its store buffer; what
        /// `membarrier` itself does, and the fallback of .NET's `FlushProcessWriteBuffers`).
        /// A reader that pins after the shootdown loads the pointers it dereferences after
        /// its announcement is issued, so under x86's ordering it cannot see an object
        /// unlinked before the shootdown. Elsewhere there is no such fallback, and going on
        /// could free memory a reader still uses: the process aborts with a message.
        #[cold]
        #[inline(never)]
        fn degrade() {
            let errno = std::io::Error::last_os_error();
            let first = MODE.swap(2, Ordering::SeqCst) == 1;
            // Pins read the mode from their records: flag them all before the shootdown, so a
            // pin that read its flag clear had stored its announcement before it (and the
            // shootdown makes that store visible).
            super::super::flag_every_record_for_fences();
            if !serialize_by_tlb_shootdown() {
                eprintln!(
                    "gilfree: membarrier failed after registration ({errno}) and this platform \
                     has no other process-wide barrier; aborting rather than risking a \
                     use-after-free in lock-free readers"
                );
                std::process::abort();
            }
            if first {
                eprintln!(
                    "gilfree: membarrier failed after registration ({errno}); lock-free \
                     readers now use full fences"
                );
            }
        }

        /// A process-wide memory barrier through a TLB shootdown (x86 only; `false`
        /// elsewhere or if the kernel refuses the calls).
        fn serialize_by_tlb_shootdown() -> bool {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            {
                use std::sync::Mutex;
                /// A private page (its address), touched and then made inaccessible: the
                /// kernel must flush it from every CPU that may cache it, by IPI.
                static PAGE: Mutex<usize> = Mutex::new(0);
                let mut page = PAGE.lock().unwrap_or_else(|p| p.into_inner());
                let size = 4096;
                // SAFETY: plain system calls on a page this function owns: mapped once (and
                // kept), only ever touched here, under the lock.
                unsafe {
                    if *page == 0 {
                        let p = libc::mmap(
                            std::ptr::null_mut(),
                            size,
                            libc::PROT_READ | libc::PROT_WRITE,
                            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                            -1,
                            0,
                        );
                        if p == libc::MAP_FAILED {
                            return false;
                        }
                        *page = p as usize;
                    }
                    let p = *page as *mut libc::c_void;
                    if libc::mprotect(p, size, libc::PROT_READ | libc::PROT_WRITE) != 0 {
                        return false;
                    }
                    // Dirty the page so the downgrade cannot skip the flush.
                    std::ptr::write_volatile(
                        p as *mut u64,
                        std::ptr::read_volatile(p as *mut u64) + 1,
                    );
                    libc::mprotect(p, size, libc::PROT_NONE) == 0
                }
            }
            #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
            {
                false
            }
        }

        /// Which barrier the process uses now (for tests and diagnostics).
        pub(crate) fn describe() -> &'static str {
            match mode() {
                1 => "membarrier",
                _ => "fences",
            }
        }
    }

    #[cfg(all(not(target_os = "linux"), not(gilfree_loom)))]
    mod imp {
        use crate::sync::{fence, AtomicBool, Ordering};

        #[inline]
        pub(crate) fn light() {
            fence(Ordering::SeqCst);
        }

        #[inline]
        pub(crate) fn light_for(_fences: &AtomicBool) {
            fence(Ordering::SeqCst);
        }

        pub(crate) fn reader_fences() -> bool {
            true
        }

        pub(crate) fn heavy() {
            fence(Ordering::SeqCst);
        }

        pub(crate) fn describe() -> &'static str {
            "fences"
        }
    }

    /// Under loom: loom models a `SeqCst` fence as synchronizing with everything, so a fence on
    /// every pin would hide every missing Release/Acquire pair of the containers (the models
    /// then explore a handful of executions). The pin therefore has no fence under loom, and
    /// memory is reclaimed only where a model calls `collect_garbage` with its other threads
    /// joined (writers' automatic collections are skipped), which needs no reader ordering.
    #[cfg(gilfree_loom)]
    mod imp {
        use crate::sync::{fence, AtomicBool, Ordering};

        #[inline]
        pub(crate) fn light() {}

        #[inline]
        pub(crate) fn light_for(_fences: &AtomicBool) {}

        pub(crate) fn reader_fences() -> bool {
            false
        }

        pub(crate) fn heavy() {
            fence(Ordering::SeqCst);
        }

        pub(crate) fn describe() -> &'static str {
            "fences (loom)"
        }
    }

    pub(crate) use imp::{describe, heavy, light, light_for, reader_fences};
}

#[cfg(all(test, not(gilfree_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    fn state() -> (bool, bool, u64, bool) {
        PIN.with(|s| {
            (
                s.participant.get().is_null(),
                // Not ready for the fast path.
                s.ready.get().addr() & 1 == 1,
                s.guards(),
                s.temporary.get(),
            )
        })
    }

    fn active() -> u64 {
        // SAFETY: a registered thread's record (leaked).
        PIN.with(|s| unsafe { &*s.participant.get() }.active.load(SeqCst))
    }

    #[test]
    fn first_pin_registers_and_nested_pins_take_the_slow_path() {
        std::thread::spawn(|| {
            assert_eq!(state(), (true, true, 0, false), "a new thread");
            let outer = pin();
            assert_eq!(state(), (false, true, 1, false), "pinned: no fast path");
            let inner = pin();
            assert_eq!(state().2, 2);
            drop(inner);
            assert_ne!(active(), 0, "still pinned by the outer guard");
            drop(outer);
            assert_eq!(
                state(),
                (false, false, 0, false),
                "unpinned: fast path ready"
            );
            assert_eq!(active(), 0);
            let fast = pin();
            assert_eq!(state(), (false, true, 1, false), "pinned by the fast path");
            assert_ne!(active(), 0);
            drop(fast);
            assert_eq!(active(), 0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_thread_registered_by_retire_pins_by_the_fast_path() {
        unsafe fn nothing(_: u64) {}
        std::thread::spawn(|| {
            // SAFETY: a dummy word, retired once; `nothing` frees nothing.
            unsafe { retire(0, nothing) };
            assert_eq!(state(), (false, false, 0, false));
            let _guard = pin();
            assert_eq!(state(), (false, true, 1, false));
            assert_ne!(active(), 0);
        })
        .join()
        .unwrap();
    }

    /// A pin nested in one taken by the fast path keeps the outer announcement: announcing
    /// the newer epoch would let the epoch pass what the outer guard loaded.
    #[test]
    fn a_nested_pin_keeps_the_outer_announcement() {
        std::thread::spawn(|| {
            drop(pin()); // registers
            let outer = pin();
            assert_eq!(state(), (false, true, 1, false), "pinned by the fast path");
            let announced = active();
            // Move the epoch past the announcement (other tests' pins may hold it a moment).
            for _ in 0..10_000 {
                collect_now();
                if GLOBAL.epoch.load(SeqCst) > announced {
                    break;
                }
                std::thread::yield_now();
            }
            assert!(
                GLOBAL.epoch.load(SeqCst) > announced,
                "the epoch never moved"
            );
            let inner = pin();
            assert_eq!(state(), (false, true, 2, false));
            assert_eq!(active(), announced, "a nested pin announced again");
            drop(outer);
            assert_eq!(active(), announced, "unpinned under a live guard");
            drop(inner);
            assert_eq!(state(), (false, false, 0, false));
            assert_eq!(active(), 0);
        })
        .join()
        .unwrap();
    }

    /// Guards may drop in any order: the thread stays pinned until the last one goes, and
    /// nothing retired meanwhile is freed before that.
    #[test]
    fn guards_dropped_out_of_order_keep_the_thread_pinned() {
        static FREED: AtomicUsize = AtomicUsize::new(0);
        unsafe fn count(_: u64) {
            FREED.fetch_add(1, SeqCst);
        }
        std::thread::spawn(|| {
            drop(pin()); // registers
            let first = pin();
            let second = pin();
            assert_eq!(state(), (false, true, 2, false));
            drop(first);
            assert_eq!(state().2, 1);
            assert_ne!(active(), 0, "the second guard still pins");
            // SAFETY: a dummy word, retired once; `count` frees nothing.
            unsafe { retire(0, count) };
            for _ in 0..8 {
                collect_now();
            }
            assert_eq!(FREED.load(SeqCst), 0, "freed while a guard was alive");
            drop(second);
            assert_eq!(state(), (false, false, 0, false));
            assert_eq!(active(), 0);
            // Other tests' threads may hold the epoch back for a moment.
            for _ in 0..10_000 {
                collect_now();
                if FREED.load(SeqCst) == 1 {
                    break;
                }
                std::thread::yield_now();
            }
            assert_eq!(FREED.load(SeqCst), 1, "freed once every guard is gone");
        })
        .join()
        .unwrap();
    }

    /// A guard that outlives the thread's garbage state (held in a thread-local destroyed after
    /// it) gives its borrowed record back at unpin, and later pins of the exiting thread borrow
    /// one for themselves: nothing keeps using the record once it may belong to another thread.
    #[test]
    fn a_guard_alive_when_the_garbage_state_is_destroyed_gives_its_record_back() {
        type Seen = (
            bool,
            bool,
            (bool, bool, u64, bool),
            bool,
            bool,
            (bool, bool, u64, bool),
        );
        static SEEN: Mutex<Option<Seen>> = parking_lot::const_mutex(None);
        struct Holder(std::cell::RefCell<Option<Guard>>);
        impl Drop for Holder {
            fn drop(&mut self) {
                let local_gone = LOCAL.try_with(|_| ()).is_err();
                let temporary = state().3;
                drop(self.0.borrow_mut().take());
                let after = state();
                let again_fast = !state().1;
                let again = pin();
                let again_temporary = state().3;
                drop(again);
                *SEEN.lock() = Some((
                    local_gone,
                    temporary,
                    after,
                    again_fast,
                    again_temporary,
                    state(),
                ));
            }
        }
        std::thread_local! {
            static HOLDER: Holder = const { Holder(std::cell::RefCell::new(None)) };
        }
        std::thread::spawn(|| {
            // Registered before the garbage state (which the first pin creates), so destroyed
            // after it.
            HOLDER.with(|_| ());
            drop(pin());
            let g = pin();
            HOLDER.with(|h| *h.0.borrow_mut() = Some(g));
        })
        .join()
        .unwrap();
        let (local_gone, temporary, after, again_fast, again_temporary, end) =
            SEEN.lock().take().expect("the holder was dropped");
        assert!(local_gone, "precondition: the garbage state went first");
        assert!(temporary, "the record was marked borrowed");
        assert_eq!(after, (true, true, 0, false), "given back at unpin");
        assert!(!again_fast, "no fast path after the record was given back");
        assert!(again_temporary, "a later pin borrows a record");
        assert_eq!(end, (true, true, 0, false));
    }
}
