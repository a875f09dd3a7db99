//! `GilFreeList`: lock-free readers, writers serialized on the list's own lock.
//!
//! ## Layout
//!
//! The list points (`array: AtomicPtr`) to its current [`Array`]: a capacity-sized slice of
//! atomic *words*, one per item, plus the array's own `len`. A word holds the item itself when
//! its type is a one-word handle, or a pointer to a box written once before it was published
//! ([`crate::storage`]): either way a reader loads a whole item with one atomic load, never a
//! torn one. Append and pop allocate nothing (for inline items) and retire nothing (for items
//! that own nothing to drop). The list also mirrors the length in `len` (for a lock-free
//! `len()` that needs no pin) and counts mutations in `version`.
//!
//! ## Invariants (lock released)
//!
//! - **I1** `array` points to a live array, the *current* one. Only a writer holding `writer`
//!   replaces it, by a Release store of a fully built array; the replaced array is never
//!   written again and is retired to the epoch collector right after the critical section.
//! - **I2** In the current array, `len <= capacity`, and the words `0..len` are the items,
//!   each owned once. Words at `len..` are stale copies the array does not own.
//! - **I3** A word is retired (if its type owns anything) only once no word `0..len` of the
//!   current array holds it any more, and it is never stored again. Older arrays and stale
//!   slots may still hold copies: a reader that loaded one was pinned before the retirement.
//! - **I4** `version` is even when no writer is inside. A writer makes it odd (a Relaxed store
//!   right after taking the lock, ordered before its Release stores to the array) and even
//!   again before it unlocks: advanced by 2 if it changed the list, else restored. So a reader
//!   that loads an even `version` (Acquire), reads the array, and after an Acquire fence loads
//!   the same `version` again saw the list as it was at one moment (a sequence lock): a
//!   writer whose store it read has made the version odd before that store.
//!
//! ## Synchronization protocol
//!
//! Readers (`get`, `get_with`, `pin`, `iter`, `index`/`count`/`contains`) pin an epoch (a
//! store to their own thread-local slot: no shared cache line written), load `array`
//! (Acquire), load that array's `len` (Acquire), check the index against it, load the word
//! (Acquire) and clone or borrow the item. Writers take `writer` and:
//!
//! - store every word with Release (readers Acquire), so the item a word designates is visible
//!   with it, even to a reader that loaded an older `len`;
//! - when the list grows in place, fill the new slots *before* the Release store of the larger
//!   `len`, so any index below a `len` a reader loads has been written;
//! - when it shrinks in place, store the smaller `len`; a reader that loaded the larger one may
//!   still read a removed item (it was at that index during the read, and I3 keeps it alive);
//! - shift items (insert, pop, delete, slice assignment) with **word-wise atomic stores**,
//!   never a memmove (CPython gh-129069: memmove let readers see torn pointers). Insertion
//!   moves the tail up starting from the end, deletion moves it down starting from the gap;
//! - when the array is full (growth, doubling) or under a quarter full (shrink, halving), or
//!   when the whole order changes (`sort`, `clear`), build a new array privately and publish
//!   it with one Release store: a reader sees the old array or the new one, both complete.
//!
//! ## What a racing reader may observe
//!
//! A reader racing with an in-place shift sees, at each index, an item that was at that index
//! or at a neighbour's index during the writer's operation: `get(i)` during `insert(0, x)`
//! may return the item that was at `i` or the one at `i - 1`; an iteration racing with
//! `insert(0)`/`pop(0)` may see an item twice or skip one (as CPython's list iterator does).
//! It never sees a torn item, a freed item, an item that was never in the list, or an index
//! past the array. Operations that must be atomic as a whole (`snapshot`, `copy`, slices,
//! comparisons, `sort`'s copy) take the writer lock instead. Searches (`contains`, `index`,
//! `count`) read optimistically and validate with `version` (I4), retrying a few times before
//! they fall back to the writer lock, so they never miss an item that was in the list the
//! whole time (see `crate::list::search`).
//!
//! ## Reclamation
//!
//! Replaced arrays and removed items are retired (epoch reclamation, see `crate::reclaim`) after
//! the lock is released, and freed only when every reader pinned before the retirement has
//! unpinned. Memory stays bounded: arrays grow and shrink geometrically, garbage is weighed
//! (an array counts one per 4 KiB, so a thread collects after about 4 MiB of retired arrays
//! or 1024 objects), and readers pin per operation. Writers do not pin: under the lock nothing they read can be retired by anyone
//! else. Scans that call script `eq` clone the candidate and *unpin* around the call, so a long
//! callback never holds back reclamation; `ListPin` sessions and `get_with` callbacks do pin for
//! their duration, so keep them short (or call [`ListPin::repin`]).
//!
//! Items are never dropped under the lock (a destructor is script code): they are dropped by
//! the collector, and removing methods return clones.

use std::cell::Cell;
use std::marker::PhantomData;
use std::mem;
use std::ptr;

use crate::bias::{BiasGuard, BiasedMutex};
use crate::list::iter::ListIter;
use crate::list::search::{self, Found, InPlace, RemoveScan, RemoveSteps, Want};
use crate::list::slice::Slice;
use crate::list::sort::sort_indices;
use crate::list::FrozenList;
use crate::list::{
    grown_cap, insert_index, item_index, repeat_len, should_shrink, shrunk_cap, MIN_CAP,
};
use crate::model::EqModel;
use crate::reclaim::{self, Guard};
use crate::reentry::{self, Holding};
use crate::storage::{Ref, Storable, Storage};
use crate::sync::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, NewLine, Ordering};
use crate::{Container, Error};

/// One generation of the list's storage; see the module docs.
struct Array {
    /// Items in this array; `len <= slots.len()`.
    len: AtomicUsize,
    slots: Box<[AtomicU64]>,
}

impl Array {
    /// An empty array of `cap` slots.
    fn boxed(cap: usize) -> Box<Array> {
        Box::new(Array {
            len: AtomicUsize::new(0),
            // SAFETY: zero atomics.
            slots: unsafe { crate::sync::zeroed_slice(cap) },
        })
    }

    #[inline]
    fn cap(&self) -> usize {
        self.slots.len()
    }

    /// The word at `i` if `i` is below this array's length.
    #[inline(always)]
    fn load(&self, i: usize) -> Option<u64> {
        (i < self.len.load(Ordering::Acquire)).then(|| self.slots[i].load(Ordering::Acquire))
    }
}

/// A concurrent list with Python semantics whose readers take no lock.
///
/// Index reads, `len`, iteration and `index`/`count`/`contains` take no lock and write no
/// shared cache line; writers serialize on the list's own lock. Items are stored inline when
/// their type is a one-word handle ([`Storable`]), boxed otherwise. See the module docs of
/// `list::gilfree` (in the source) for the protocol, and the semantics shared with
/// [`LockedList`](crate::LockedList) on [`Sequence`](crate::Sequence).
///
/// ```
/// use gilfree::{GilFreeList, Slice};
///
/// let l: GilFreeList<i64> = GilFreeList::new();
/// l.extend([3, 1, 2]).unwrap();
/// l.insert(0, 9).unwrap();
/// assert_eq!(l.get(-1).unwrap(), 2);
/// assert_eq!(l.pop_at(0).unwrap(), 9);
/// l.sort().unwrap();
/// assert_eq!(l.snapshot(), vec![1, 2, 3]);
/// l.set_slice(Slice::new(None, None, Some(2)), [10, 30]).unwrap();
/// assert_eq!(l.snapshot(), vec![10, 2, 30]);
/// assert_eq!(l.get(5).unwrap_err().to_string(), "list index out of range");
/// ```
///
/// The list is 64-byte aligned (its readers' and its writers' fields are on separate cache
/// lines). Memory that a C allocator hands out is often less aligned (a Python object's, 16
/// bytes): to embed a list in such an object, box it.
#[repr(C)]
pub struct GilFreeList<T> {
    // What an index read loads (the array pointer) is kept off the cache line of what every
    // write writes (the lock, the length, the version): on one line, each write would take the
    // line from the readers' cores, and their next reads would miss on it.
    array: AtomicPtr<Array>,
    frozen: AtomicBool,
    /// Drops the items of an array (made where `T: Storable` is known).
    doom: unsafe fn(u64),
    _owns: PhantomData<T>,
    _writers: NewLine,
    writer: BiasedMutex,
    len: AtomicUsize,
    version: AtomicU64,
}

// SAFETY: the list owns its items: readers on any thread get `&T` (needs Sync), and any
// thread may drop a removed item through the collector (needs Send).
unsafe impl<T: Send + Sync> Send for GilFreeList<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for GilFreeList<T> {}

// A panic in user code (an item's `Clone` or `Drop`, a closure) leaves the list consistent and
// usable (every write is published whole, or not at all), so a `&GilFreeList` may cross
// `catch_unwind` as a std collection of the same items could.
impl<T: std::panic::RefUnwindSafe> std::panic::RefUnwindSafe for GilFreeList<T> {}
impl<T: std::panic::UnwindSafe> std::panic::UnwindSafe for GilFreeList<T> {}

/// A retired array that owns its items `0..len` (after `clear`, or when the list is dropped).
struct Doomed<T: Storable>(*mut Array, PhantomData<T>);

impl<T: Storable> Drop for Doomed<T> {
    fn drop(&mut self) {
        // SAFETY: a `Doomed` holds an unlinked array whose words `0..len` are owned by no one
        // else, dropped once after every reader that could see them unpinned (or by the list's
        // own `Drop`, with no reader left).
        let array = unsafe { Box::from_raw(self.0) };
        if T::Storage::OWNS {
            let len = array.len.load(Ordering::Relaxed);
            crate::cleanup::drop_all(
                array.slots[..len]
                    .iter()
                    .map(|s| Word::<T>(s.load(Ordering::Relaxed), PhantomData)),
            );
        }
    }
}

/// A word owned by the code holding it: dropping it drops the item.
struct Word<T: Storable>(u64, PhantomData<T>);

impl<T: Storable> Word<T> {
    /// The word of a fresh item, made before a critical section; dropped (with its item)
    /// unless the section takes it.
    #[inline]
    fn new(x: T) -> Self {
        Word(T::Storage::into_word(x), PhantomData)
    }

    /// The word, now owned by the caller (the list).
    #[inline]
    fn into_inner(self) -> u64 {
        let word = self.0;
        mem::forget(self);
        word
    }
}

impl<T: Storable> Drop for Word<T> {
    fn drop(&mut self) {
        // SAFETY: a word that left the list (or its doomed array), dropped once.
        unsafe { T::Storage::drop_word(self.0) };
    }
}

unsafe fn drop_doomed<T: Storable>(word: u64) {
    // SAFETY: `word` is the exposed address of an unlinked array owning its items.
    drop(Doomed::<T>(
        ptr::with_exposed_provenance_mut(word as usize),
        PhantomData,
    ));
}

unsafe fn drop_array(word: u64) {
    // SAFETY: `word` is the exposed address of a replaced array whose items live on in the
    // newer array (a plain `Array` frees its slots, not the items).
    drop(unsafe { Box::from_raw(ptr::with_exposed_provenance_mut::<Array>(word as usize)) });
}

/// Items retired together; dropped together.
struct Batch<T: Storable>(Vec<u64>, PhantomData<T>);

impl<T: Storable> Drop for Batch<T> {
    fn drop(&mut self) {
        crate::cleanup::drop_all(self.0.drain(..).map(|w| Word::<T>(w, PhantomData)));
    }
}

unsafe fn drop_batch<T: Storable>(word: u64) {
    // SAFETY: `word` is the exposed address of a boxed batch of unlinked words (I3).
    drop(unsafe { Box::from_raw(ptr::with_exposed_provenance_mut::<Batch<T>>(word as usize)) });
}

impl<T: Storable> GilFreeList<T> {
    /// An empty list.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty list with room for `capacity` items before it grows.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::from_array(Array::boxed(capacity))
    }

    /// A list holding `items`, in order.
    pub fn from_vec(items: Vec<T>) -> Self {
        let array = Array::boxed(items.len().max(MIN_CAP));
        let n = items.len();
        for (slot, item) in array.slots.iter().zip(items) {
            slot.store(T::Storage::into_word(item), Ordering::Relaxed);
        }
        array.len.store(n, Ordering::Relaxed);
        Self::from_array(array)
    }

    fn from_array(array: Box<Array>) -> Self {
        GilFreeList {
            len: AtomicUsize::new(array.len.load(Ordering::Relaxed)),
            array: AtomicPtr::new(Box::into_raw(array)),
            frozen: AtomicBool::new(false),
            doom: drop_doomed::<T>,
            _owns: PhantomData,
            _writers: NewLine,
            writer: BiasedMutex::new(),
            version: AtomicU64::new(0),
        }
    }
}

impl<T> GilFreeList<T> {
    /// Number of items: one atomic load, no lock, no pin. Exact when no writer is running.
    #[inline]
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether the list is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many items the current array holds before the list grows (one pin, no lock).
    pub fn capacity(&self) -> usize {
        let guard = reclaim::pin();
        self.current(&guard).cap()
    }

    /// A tag that changes on every mutation; one load, no lock. It is even when no writer is
    /// inside the list and odd while one is: the same *even* value read twice means no writer
    /// changed the list in between (odd values can repeat: a writer that changes nothing
    /// restores the even value, and the next one makes it odd again).
    #[inline]
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Whether the list is frozen (every mutator then fails with [`Error::Frozen`]).
    pub fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::Acquire)
    }

    /// Makes the list immutable (one-way), linearizably with its writers: a concurrent write
    /// either lands before the freeze or fails with [`Error::Frozen`].
    ///
    /// This list only: items that are containers stay as they are; to freeze a whole object
    /// tree, use [`freeze`](crate::freeze()). Fails with [`Error::Reentrant`] from inside a
    /// closure that runs under this list's lock (the enclosing write would land after it).
    pub fn freeze(&self) -> Result<(), Error> {
        if reentry::held_by_me(self.addr()) {
            return Err(Error::Reentrant(Container::List));
        }
        let _lock = self.writer.lock();
        self.frozen.store(true, Ordering::Release);
        Ok(())
    }

    /// The read-only view of this list if it is frozen: borrowed reads with no lock, no epoch
    /// pin and no refcount traffic, valid for as long as the list.
    pub fn frozen(&self) -> Option<FrozenList<'_, T>>
    where
        T: Storable,
    {
        if !self.frozen.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: frozen (Acquire pairs with the Release in `freeze`, made under the writer
        // lock after every earlier write): the current array is never replaced again and its
        // words `0..len` are never overwritten or retired while `&self` lives.
        let array = unsafe { &*self.array.load(Ordering::Acquire) };
        let len = array.len.load(Ordering::Acquire);
        // SAFETY: as above; words `0..len` are items (I2).
        Some(unsafe { FrozenList::words(&array.slots[..len]) })
    }

    fn addr(&self) -> usize {
        self as *const Self as usize
    }

    /// The current array, valid while `guard` is pinned (or the writer lock is held).
    #[inline(always)]
    fn current<'g>(&'g self, _guard: &'g Guard) -> &'g Array {
        // SAFETY: `array` always points to a live array (I1); a replaced one is retired only
        // after the new one is published, so it outlives every guard pinned before that.
        unsafe { &*self.array.load(Ordering::Acquire) }
    }
}

impl<T: Storable> GilFreeList<T> {
    /// Lock-free read of the item at Python index `i`, borrowed for the guard's lifetime.
    #[inline(always)]
    fn load<'g>(&'g self, guard: &'g Guard, i: isize) -> Option<Ref<'g, T>> {
        let array = self.current(guard);
        let idx = item_index(i, array.len.load(Ordering::Acquire))?;
        let word = array.slots[idx].load(Ordering::Acquire);
        // SAFETY: a word loaded while pinned designates an item that stays alive until
        // `guard` unpins (I3).
        Some(unsafe { T::Storage::borrow(word) })
    }

    /// Lock-free read of the item at `i`; `None` past the current end.
    #[inline]
    fn load_at<'g>(&'g self, guard: &'g Guard, i: usize) -> Option<Ref<'g, T>> {
        let word = self.current(guard).load(i)?;
        // SAFETY: as in `load`.
        Some(unsafe { T::Storage::borrow(word) })
    }
}

derived_list_api!(GilFreeList, + Storable + Send + Sync + 'static);

impl<T: Storable + Clone + Send + Sync + 'static> GilFreeList<T> {
    /// Takes the writer lock for a mutation: refuses re-entry and frozen targets.
    #[inline(always)]
    fn lock<E>(&self) -> Result<BiasGuard<'_>, Error<E>> {
        self.writer
            .lock_for_write(Container::List, self.addr(), &self.frozen)
    }

    /// A write section (the writer lock, see [`lock`](Self::lock)).
    #[inline]
    fn write<E>(&self) -> Result<Writer<'_, T>, Error<E>> {
        Ok(self.writer_holding(self.lock()?))
    }

    /// The current array, for as long as `lock` (this list's writer lock) is borrowed.
    #[inline(always)]
    fn locked_array<'g>(&'g self, _lock: &'g BiasGuard<'_>) -> &'g Array {
        // SAFETY: the writer lock is held while the borrow lasts: only lock holders replace
        // or retire arrays (I1).
        unsafe { &*self.array.load(Ordering::Acquire) }
    }

    /// Runs `stores` (a mutation made in place, without a `Writer`) with the version odd, and
    /// makes it even again before returning, with `lock` (this list's writer lock) held
    /// throughout (I4). `stores` must publish through Release stores, which order the odd
    /// store before them.
    #[inline(always)]
    fn in_place<R>(&self, _lock: &BiasGuard<'_>, stores: impl FnOnce() -> R) -> R {
        let version = self.version.load(Ordering::Relaxed);
        self.version.store(version + 1, Ordering::Relaxed);
        let out = stores();
        self.version.store(version + 2, Ordering::Release);
        out
    }

    /// The write section of a lock just taken with `lock_for_write`.
    #[inline(always)]
    fn writer_holding<'g>(&'g self, lock: BiasGuard<'g>) -> Writer<'g, T> {
        // Odd while the section runs (I4). Relaxed suffices: every store the section makes
        // to the array is a Release store, which orders this one before it.
        let start_version = self.version.load(Ordering::Relaxed);
        self.version.store(start_version + 1, Ordering::Relaxed);
        Writer {
            list: self,
            lock: Some(lock),
            start_version,
            mutated: Cell::new(false),
            dead: Buried::default(),
            arrays: Vec::new(),
        }
    }

    /// Runs `f` on the current array with no writer running: under the writer lock, or
    /// directly if this thread's outer frame holds it.
    fn read_locked<R>(&self, f: impl FnOnce(&Array) -> R) -> R {
        let guard = reclaim::pin();
        let lock = (!reentry::held_by_me(self.addr())).then(|| self.writer.lock());
        let out = f(self.current(&guard));
        drop(lock);
        out
    }

    /// A clone of the item at `i` (negative counts from the end): a refcount increment for
    /// handles. Lock-free.
    #[inline]
    pub fn get(&self, i: isize) -> Result<T, Error> {
        let guard = reclaim::pin();
        match self.load(&guard, i) {
            Some(item) => Ok((*item).clone()),
            None => Err(Error::IndexOutOfRange),
        }
    }

    /// Calls `f` with a borrowed reference to the item at `i` (no refcount traffic), lock-free.
    /// `f` runs pinned but holds no lock: it may use the list, including writing to it. Keep
    /// it short: a pin holds back memory reclamation.
    pub fn get_with<R>(&self, i: isize, f: impl FnOnce(&T) -> R) -> Result<R, Error> {
        let guard = reclaim::pin();
        match self.load(&guard, i) {
            Some(item) => Ok(f(&item)),
            None => Err(Error::IndexOutOfRange),
        }
    }

    /// Pins the current thread for a batch of borrowed reads: no pin, no lock and no refcount
    /// per read. Reclamation waits for the session to end, for every GIL-free container of the
    /// process, so keep it short; a leaked session (`mem::forget`) stops reclamation for good.
    pub fn pin(&self) -> ListPin<'_, T> {
        ListPin {
            list: self,
            guard: reclaim::pin(),
        }
    }

    /// An iterator over clones of the items with CPython's list-iterator semantics (see
    /// [`ListIter`]): lock-free, pins only inside each step.
    pub fn iter(&self) -> ListIter<'_, T, Self> {
        ListIter::new(self)
    }

    /// An atomic snapshot of the items (taken under the writer lock).
    pub fn snapshot(&self) -> Vec<T> {
        self.read_locked(|array| {
            let n = array.len.load(Ordering::Acquire);
            array.slots[..n]
                .iter()
                // SAFETY: no writer runs (lock held): words `0..len` are live items (I2).
                .map(|s| (*unsafe { T::Storage::borrow(s.load(Ordering::Acquire)) }).clone())
                .collect()
        })
    }

    /// Same as [`snapshot`](Self::snapshot).
    pub fn to_vec(&self) -> Vec<T> {
        self.snapshot()
    }

    /// Python's `list[slice]`: clones of the selected items, taken atomically.
    pub fn get_slice(&self, s: Slice) -> Result<Vec<T>, Error> {
        self.read_locked(|array| {
            let ind = s.indices(array.len.load(Ordering::Acquire))?;
            Ok(ind
                .iter()
                .map(|i| {
                    let word = array.slots[i].load(Ordering::Acquire);
                    // SAFETY: no writer runs; every selected index is below `len` (I2).
                    (*unsafe { T::Storage::borrow(word) }).clone()
                })
                .collect())
        })
    }

    /// The search behind `contains`, `index` and `count` over `start..stop` (see
    /// `crate::list::search`): an optimistic pinned read validated by the version (I4), a few
    /// times, then a read under the writer lock if writers kept interfering.
    fn search<M: EqModel<T>>(
        &self,
        m: &M,
        x: &T,
        start: usize,
        stop: usize,
        want: Want,
    ) -> Result<Found, Error<M::Error>> {
        /// Optimistic reads before the search waits for the writers (takes their lock).
        const OPTIMISTIC: usize = 4;
        let scan = |array: &Array| {
            let len = array.len.load(Ordering::Acquire);
            let end = stop.min(len);
            let start = start.min(end);
            let items = (start..end).map(|i| {
                let word = array.slots[i].load(Ordering::Acquire);
                // SAFETY: `i < len` of an array the caller keeps alive (pinned or locked): a
                // live item or one retired after this pin began (I2, I3).
                unsafe { T::Storage::borrow(word) }
            });
            search::in_place(m, x, start, items, want)
        };
        let mut outcome = None;
        for _ in 0..OPTIMISTIC {
            let guard = reclaim::pin();
            let before = self.version.load(Ordering::Acquire);
            if before % 2 == 0 {
                let seen = scan(self.current(&guard))?;
                fence(Ordering::Acquire);
                let valid = self.version.load(Ordering::Relaxed) == before;
                // Unpinned before the clones of a failed attempt are dropped.
                drop(guard);
                if valid {
                    outcome = Some(seen);
                    break;
                }
            }
            std::hint::spin_loop();
        }
        let outcome = match outcome {
            Some(o) => o,
            None => self.read_locked(scan)?,
        };
        match outcome {
            InPlace::Done(found) => Ok(found),
            InPlace::Script { at, rest, found } => {
                search::compare_rest(m, x, at, rest, found, want)
            }
        }
    }

    /// Python's `append(x)`.
    #[inline]
    pub fn append(&self, x: T) -> Result<(), Error> {
        let lock = self.lock()?;
        let array = self.locked_array(&lock);
        let len = array.len.load(Ordering::Relaxed);
        if len < array.cap() {
            // `Writer::push` without building a `Writer` (7.9 -> 5.8 ns an append): there is
            // room in the current array, so nothing is unlinked or retired. The same stores,
            // in the same order (I2, I4).
            self.in_place(&lock, || {
                array.slots[len].store(T::Storage::into_word(x), Ordering::Release);
                array.len.store(len + 1, Ordering::Release);
                self.len.store(len + 1, Ordering::Release);
            });
            drop(lock);
            reclaim::after_write();
            return Ok(());
        }
        let mut w = self.writer_holding(lock);
        w.push(T::Storage::into_word(x));
        Ok(())
    }

    /// Makes room for at least `additional` more items, so that appending them publishes no
    /// new array; [`Error::TooLarge`] if the size cannot be addressed. (A list that later
    /// shrinks below a quarter of its capacity gives the room back.)
    pub fn reserve(&self, additional: usize) -> Result<(), Error> {
        let mut w = self.write()?;
        let len = w.len();
        let need = len.checked_add(additional).ok_or(Error::TooLarge)?;
        repeat_len(need, 1, std::mem::size_of::<u64>())?;
        if need > w.array().cap() {
            let words: Vec<u64> = (0..len).map(|i| w.word(i)).collect();
            // The same items in a larger array: not a change of the list (its version stays).
            w.rebuild(need, words.into_iter());
        }
        Ok(())
    }

    /// Python's `extend(iterable)`: the items are collected first (the iterator runs with no
    /// lock held, so it may read this list), then appended in one critical section.
    pub fn extend(&self, items: impl IntoIterator<Item = T>) -> Result<(), Error> {
        let words = Words::<T>::new(items);
        let mut w = self.write()?;
        let len = w.len();
        w.splice(len, 0, &words.into_inner());
        Ok(())
    }

    /// Python's `insert(i, x)`: `i` is clamped into `0..=len` (negative counts from the end).
    pub fn insert(&self, i: isize, x: T) -> Result<(), Error> {
        let word = Word::new(x);
        let mut w = self.write()?;
        let at = insert_index(i, w.len());
        w.splice(at, 0, &[word.into_inner()]);
        Ok(())
    }

    /// Python's `pop()`: removes and returns (a clone of) the last item.
    #[inline]
    pub fn pop(&self) -> Result<T, Error> {
        self.pop_at(-1)
    }

    /// Python's `pop(i)`: removes and returns (a clone of) the item at `i`.
    /// [`Error::Empty`] on an empty list, [`Error::IndexOutOfRange`] for a bad index.
    pub fn pop_at(&self, i: isize) -> Result<T, Error> {
        let lock = self.lock()?;
        let array = self.locked_array(&lock);
        let len = array.len.load(Ordering::Relaxed);
        if len > 0
            && item_index(i, len) == Some(len - 1)
            && !should_shrink(len - 1, array.cap())
            && reclaim::may_take_back::<T>()
        {
            // `Writer::take` and `release` of the last item without building a `Writer`
            // (as `append` does): nothing shifts, nothing is retired, and the item goes back
            // to the caller. The same stores, in the same order (I2, I4).
            let word = self.in_place(&lock, || {
                let word = array.slots[len - 1].load(Ordering::Relaxed);
                array.len.store(len - 1, Ordering::Release);
                self.len.store(len - 1, Ordering::Release);
                word
            });
            drop(lock);
            reclaim::after_write();
            // SAFETY: the word is unlinked (no slot below `len - 1` names it, I2) and moved out
            // once, here; `may_take_back` (checked with the lock held, on this thread's own
            // state) says no reader can still hold it.
            return Ok(unsafe { T::Storage::from_word(word) });
        }
        let mut w = self.writer_holding(lock);
        let word = w.take_at(i)?;
        Ok(w.release(word))
    }

    /// Python's `list[i] = x`.
    pub fn set(&self, i: isize, x: T) -> Result<(), Error> {
        // Declared before the lock, so that on an error the item drops after the lock does.
        let word = Word::new(x);
        let lock = self.lock()?;
        let array = self.locked_array(&lock);
        let idx = item_index(i, array.len.load(Ordering::Relaxed)).ok_or(Error::IndexOutOfRange)?;
        // `Writer::replace` without building a `Writer` (as `append` does): the version odd
        // while the slot changes (I4); the length does not change. Only lock holders store
        // slots, so a load and a store suffice.
        let slot = &array.slots[idx];
        let old = self.in_place(&lock, || {
            let old = slot.load(Ordering::Relaxed);
            slot.store(word.into_inner(), Ordering::Release);
            old
        });
        drop(lock);
        // SAFETY: `old` is unlinked (its slot holds the new word, I2) and either moved out
        // here, once, or retired once below.
        match unsafe { reclaim::take_back::<T>(old) } {
            // No reader can hold it: dropped here, after the lock.
            Some(item) => drop(item),
            // SAFETY: unlinked above and retired once, here (I3).
            None => unsafe { reclaim::retire(old, T::Storage::drop_word) },
        }
        reclaim::after_write();
        Ok(())
    }

    /// Python's `list[slice] = items`. A step-1 slice is replaced by any number of items; an
    /// extended slice needs exactly as many items as it selects ([`Error::SliceLength`]).
    pub fn set_slice(&self, s: Slice, items: impl IntoIterator<Item = T>) -> Result<(), Error> {
        let words = Words::<T>::new(items);
        let mut w = self.write()?;
        let ind = s.indices(w.len())?;
        if ind.step == 1 {
            let (start, stop) = ind.contiguous();
            w.splice(start, stop - start, &words.into_inner());
        } else {
            if words.0.len() != ind.len {
                return Err(Error::SliceLength {
                    slice: ind.len,
                    given: words.0.len(),
                });
            }
            for (idx, word) in ind.iter().zip(words.into_inner()) {
                w.set(idx, word);
            }
        }
        Ok(())
    }

    /// Python's `del list[slice]`.
    pub fn del_slice(&self, s: Slice) -> Result<(), Error> {
        let mut w = self.write()?;
        let ind = s.indices(w.len())?;
        if ind.len == 0 {
            return Ok(());
        }
        if ind.step == 1 {
            let (start, _) = ind.contiguous();
            w.splice(start, ind.len, &[]);
        } else {
            let (first, step) = ind.ascending();
            let n = ind.len;
            w.compact(|j| !(j >= first && (j - first) % step == 0 && (j - first) / step < n));
        }
        Ok(())
    }

    /// Python's `remove(x)` under `m`: removes the first item equal to `x`;
    /// [`Error::ValueNotFound`] if none. Script `eq` runs with the lock released; see
    /// [`Sequence`](crate::Sequence) for the validation and restart rules.
    pub fn remove_in<M: EqModel<T>>(&self, m: &M, x: &T) -> Result<(), Error<M::Error>> {
        search::remove_in(self, m, x)
    }

    /// Copies the items out, computes the sorting permutation with `order` outside the lock,
    /// and installs it if the list did not change meanwhile.
    fn sort_with<E>(
        &self,
        order: impl FnOnce(&[T]) -> Result<Vec<usize>, E>,
    ) -> Result<(), Error<E>> {
        let (version, words, items) = {
            let w = self.write::<E>()?;
            let n = w.len();
            let words: Vec<u64> = (0..n).map(|i| w.word(i)).collect();
            let items: Vec<T> = (0..n).map(|i| (*w.elem(i)).clone()).collect();
            (w.version(), words, items)
        };
        let order = order(&items).map_err(Error::Callback)?;
        let mut w = self.write()?;
        if w.version() != version {
            return Err(Error::ModifiedDuringSort);
        }
        // Unchanged version: the current array holds exactly `words`, in that order.
        w.install(order.iter().map(|&k| words[k]));
        Ok(())
    }

    /// Python's `sort(key=key, reverse=reverse)` with a fallible key function and a fallible
    /// `<` on keys (`less(a, b)` is `a < b`). Stable; `key` is called once per item. Both run
    /// with no lock held and may use the list; if the list changed meanwhile, the sort is not
    /// installed and [`Error::ModifiedDuringSort`] is returned. The first callback error is
    /// returned and leaves the list untouched.
    pub fn sort_by_key<K, E>(
        &self,
        reverse: bool,
        mut key: impl FnMut(&T) -> Result<K, E>,
        mut less: impl FnMut(&K, &K) -> Result<bool, E>,
    ) -> Result<(), Error<E>> {
        self.sort_with(|items| {
            let keys = items.iter().map(&mut key).collect::<Result<Vec<K>, E>>()?;
            sort_indices(keys.len(), reverse, |a, b| less(&keys[a], &keys[b]))
        })
    }

    /// Python's `sort(reverse=reverse)` with a fallible `<` (`less(a, b)` is `a < b`); see
    /// [`sort_by_key`](Self::sort_by_key).
    pub fn sort_by<E>(
        &self,
        reverse: bool,
        mut less: impl FnMut(&T, &T) -> Result<bool, E>,
    ) -> Result<(), Error<E>> {
        self.sort_with(|items| {
            sort_indices(items.len(), reverse, |a, b| less(&items[a], &items[b]))
        })
    }

    /// Stable sort by `T: Ord`. Runs no script code, so it sorts under the lock and never
    /// fails with [`Error::ModifiedDuringSort`].
    pub fn sort(&self) -> Result<(), Error>
    where
        T: Ord,
    {
        let mut w = self.write()?;
        let n = w.len();
        if n < 2 {
            return Ok(());
        }
        let mut words: Vec<u64> = (0..n).map(|i| w.word(i)).collect();
        // SAFETY: live items (I2, lock held) stay alive while the lock is held.
        words.sort_by(|a, b| unsafe { (*T::Storage::borrow(*a)).cmp(&T::Storage::borrow(*b)) });
        w.install(words.into_iter());
        Ok(())
    }

    /// Python's `reverse()`, in place (a racing reader may see an item at both ends).
    pub fn reverse(&self) -> Result<(), Error> {
        self.write()?.reverse();
        Ok(())
    }

    /// Python's `clear()`. The items are dropped by the collector, after the lock is released.
    pub fn clear(&self) -> Result<(), Error> {
        self.write()?.clear();
        Ok(())
    }

    /// Python's `self *= n`, atomically (the clones are made under the lock);
    /// [`Error::TooLarge`] if the length cannot be addressed (Python's `MemoryError`).
    pub fn repeat_in_place(&self, n: usize) -> Result<(), Error> {
        // Declared before the writer, so that if a `Clone` panics the lock is released before
        // the clones made so far are dropped (a destructor may use this list).
        let mut words = Words::<T>::new([]);
        let mut w = self.write()?;
        if n == 0 {
            w.clear();
            return Ok(());
        }
        let len = w.len();
        // The array holds one word per item.
        repeat_len(len, n, std::mem::size_of::<u64>())?;
        let extra = len * (n - 1);
        // Python's MemoryError when the allocator refuses, instead of an abort.
        words
            .0
            .try_reserve_exact(extra)
            .map_err(|_| Error::TooLarge)?;
        words.extend((0..extra).map(|k| (*w.elem(k % len)).clone()));
        w.splice(len, 0, &words.into_inner());
        Ok(())
    }

    /// Runs `f` with the writer lock held: a compound update as one critical section (like a
    /// CPython per-object critical section). Lock-free readers keep running and see each of
    /// the view's steps as it happens. From inside `f`, reading the list directly works and
    /// writing to it directly fails with [`Error::Reentrant`].
    pub fn with_lock<R>(
        &self,
        f: impl FnOnce(&mut GilFreeListView<'_, T>) -> R,
    ) -> Result<R, Error> {
        let w = self.write()?;
        let mut view = GilFreeListView { w };
        let out = {
            let _held = Holding::new(self.addr());
            f(&mut view)
        };
        drop(view);
        Ok(out)
    }
}

/// Words a section unlinked, retired when it ends; the first one is kept inline, so that a
/// one-item write allocates nothing.
#[derive(Default)]
struct Buried {
    /// The first word buried (`None`: none yet; then `more` is empty).
    one: Option<u64>,
    /// The others, in order.
    more: Vec<u64>,
}

impl Buried {
    #[inline]
    fn push(&mut self, word: u64) {
        if self.one.is_none() {
            self.one = Some(word);
        } else {
            self.more.push(word);
        }
    }

    #[inline]
    fn len(&self) -> usize {
        usize::from(self.one.is_some()) + self.more.len()
    }

    /// Keeps the first `n` words buried.
    #[inline]
    fn truncate(&mut self, n: usize) {
        if n == 0 {
            self.one = None;
            self.more.clear();
        } else {
            self.more.truncate(n - 1);
        }
    }
}

/// Words of fresh items, made before a critical section; dropped (with their items) unless
/// the section takes them.
struct Words<T: Storable>(Vec<u64>, PhantomData<T>);

impl<T: Storable> Words<T> {
    fn new(items: impl IntoIterator<Item = T>) -> Self {
        let mut words = Words(Vec::new(), PhantomData);
        words.extend(items);
        words
    }

    /// Adds items one word at a time, so that a panicking iterator (a `Clone` that panics)
    /// leaves the items made so far in the guard, which drops them.
    fn extend(&mut self, items: impl IntoIterator<Item = T>) {
        let items = items.into_iter();
        self.0.reserve(items.size_hint().0);
        for x in items {
            self.0.push(T::Storage::into_word(x));
        }
    }

    /// The words, now owned by the caller (the list).
    fn into_inner(mut self) -> Vec<u64> {
        mem::take(&mut self.0)
    }
}

impl<T: Storable> Drop for Words<T> {
    fn drop(&mut self) {
        crate::cleanup::drop_all(self.0.drain(..).map(|w| Word::<T>(w, PhantomData)));
    }
}

/// A writer inside its critical section. Dropping it releases the lock, then retires what the
/// section unlinked (never freeing anything under the lock).
struct Writer<'g, T: Storable> {
    list: &'g GilFreeList<T>,
    lock: Option<BiasGuard<'g>>,
    /// The list's (even) version when the section started; it is odd until the section ends.
    start_version: u64,
    /// Whether the section changed the list (its version then advances by 2).
    mutated: Cell<bool>,
    /// Words unlinked by this section (only for items that own something).
    dead: Buried,
    /// Arrays this section unlinked, with whether they own their items (`clear`: the items
    /// went with the array) or not (a replaced array: its items live on in the newer one).
    arrays: Vec<(*mut Array, bool)>,
}

impl<'g, T: Storable> Writer<'g, T> {
    #[inline(always)]
    fn array(&self) -> &'g Array {
        // SAFETY: the writer lock is held: only lock holders replace or retire arrays (I1),
        // so the current one outlives this section.
        unsafe { &*self.list.array.load(Ordering::Acquire) }
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.array().len.load(Ordering::Relaxed)
    }

    #[inline(always)]
    fn word(&self, i: usize) -> u64 {
        self.array().slots[i].load(Ordering::Relaxed)
    }

    /// The item at `i < len`, borrowed while the section holds the lock.
    #[inline]
    fn elem(&self, i: usize) -> Ref<'_, T> {
        // SAFETY: lock held and `i < len`: a live item (I2) that only this section could
        // unlink, which needs `&mut self`.
        unsafe { T::Storage::borrow(self.word(i)) }
    }

    /// The version of the list as this section found it (equal in two sections exactly when
    /// no section in between changed the list).
    fn version(&self) -> u64 {
        self.start_version
    }

    fn check_frozen(&self) -> Result<(), Error> {
        if self.list.frozen.load(Ordering::Relaxed) {
            Err(Error::Frozen(Container::List))
        } else {
            Ok(())
        }
    }

    /// Records an unlinked word, to be retired when the section ends (I3).
    #[inline]
    fn bury(&mut self, word: u64) {
        if T::Storage::OWNS {
            self.dead.push(word);
        }
    }

    /// Gives up a word that left the list: returns the item, keeping the stored word for
    /// retirement if readers may still be looking at it.
    #[inline]
    fn release(&mut self, word: u64) -> T
    where
        T: Clone,
    {
        // SAFETY: unlinked by this section (no slot `0..len` names it any more); used again
        // only if not taken back.
        if let Some(item) = unsafe { reclaim::take_back(word) } {
            return item;
        }
        // SAFETY: unlinked by this section, not retired before it ends: alive.
        let item = (*unsafe { T::Storage::borrow(word) }).clone();
        self.dead.push(word);
        item
    }

    /// Records a mutation.
    #[inline]
    fn bump(&self) {
        self.list.len.store(self.len(), Ordering::Release);
        self.mutated.set(true);
    }

    /// Publishes `fresh` as the current array (Release: readers see it complete).
    fn publish(&mut self, fresh: Box<Array>) -> *mut Array {
        let old = self.list.array.load(Ordering::Relaxed);
        self.list
            .array
            .store(Box::into_raw(fresh), Ordering::Release);
        old
    }

    /// Publishes a new array of `cap` slots holding `words`; the old one is retired later.
    fn rebuild(&mut self, cap: usize, words: impl Iterator<Item = u64>) {
        let fresh = Array::boxed(cap);
        let mut n = 0;
        for w in words {
            // Private until published: Relaxed is enough.
            fresh.slots[n].store(w, Ordering::Relaxed);
            n += 1;
        }
        fresh.len.store(n, Ordering::Relaxed);
        let old = self.publish(fresh);
        self.arrays.push((old, false));
    }

    /// Replaces the whole order with `words`, a permutation of the current items.
    fn install(&mut self, words: impl ExactSizeIterator<Item = u64>) {
        let cap = self.array().cap().max(words.len());
        self.rebuild(cap, words);
        self.bump();
    }

    /// Appends `word` (a fresh item).
    #[inline]
    fn push(&mut self, word: u64) {
        let array = self.array();
        let len = array.len.load(Ordering::Relaxed);
        if len < array.cap() {
            array.slots[len].store(word, Ordering::Release);
            array.len.store(len + 1, Ordering::Release);
        } else {
            let cap = grown_cap(array.cap(), len + 1);
            let words = (0..len).map(|i| array.slots[i].load(Ordering::Relaxed));
            self.rebuild(cap, words.chain(std::iter::once(word)));
        }
        self.bump();
    }

    /// Replaces the `del` items at `start` with `items` (fresh words): the primitive behind
    /// insert, delete and slice assignment. Shifts in place with word-wise atomic stores, or
    /// publishes a new array when the result does not fit (or should shrink).
    fn splice(&mut self, start: usize, del: usize, items: &[u64]) {
        let array = self.array();
        let len = array.len.load(Ordering::Relaxed);
        let cap = array.cap();
        let end = start + del;
        let m = items.len();
        let new_len = len - del + m;
        let load = |i: usize| array.slots[i].load(Ordering::Relaxed);
        for i in start..end {
            self.bury(load(i));
        }
        if new_len > cap || should_shrink(new_len, cap) {
            let new_cap = if new_len > cap {
                grown_cap(cap, new_len)
            } else {
                shrunk_cap(new_len)
            };
            let words = (0..start)
                .map(load)
                .chain(items.iter().copied())
                .chain((end..len).map(load));
            self.rebuild(new_cap, words);
        } else if m >= del {
            let d = m - del;
            if d > 0 {
                // Move the tail up, from the end, into slots a reader cannot reach before the
                // larger `len` is published.
                for j in (end..len).rev() {
                    array.slots[j + d].store(load(j), Ordering::Release);
                }
            }
            for (k, &w) in items.iter().enumerate() {
                array.slots[start + k].store(w, Ordering::Release);
            }
            if d > 0 {
                array.len.store(new_len, Ordering::Release);
            }
        } else {
            let d = del - m;
            for (k, &w) in items.iter().enumerate() {
                array.slots[start + k].store(w, Ordering::Release);
            }
            // Move the tail down, from the gap.
            for j in end..len {
                array.slots[j - d].store(load(j), Ordering::Release);
            }
            array.len.store(new_len, Ordering::Release);
        }
        self.bump();
    }

    /// Unlinks the item at `i < len` and returns its word (the caller releases or buries it).
    fn take(&mut self, i: usize) -> u64 {
        let word = self.word(i);
        let array = self.array();
        let len = array.len.load(Ordering::Relaxed);
        if i + 1 == len && !should_shrink(len - 1, array.cap()) {
            // Pop at the end: one store, nothing shifted.
            array.len.store(len - 1, Ordering::Release);
            self.bump();
        } else {
            // `splice` buries what it removes; this word goes back to the caller instead.
            let dead = self.dead.len();
            self.splice(i, 1, &[]);
            self.dead.truncate(dead);
        }
        word
    }

    /// Unlinks and buries the item at `i < len`.
    fn discard(&mut self, i: usize) {
        let word = self.take(i);
        self.bury(word);
    }

    /// Python's `pop(i)` checks, then [`take`](Self::take).
    fn take_at(&mut self, i: isize) -> Result<u64, Error> {
        let len = self.len();
        if len == 0 {
            return Err(Error::Empty(Container::List));
        }
        let idx = item_index(i, len).ok_or(Error::IndexOutOfRange)?;
        Ok(self.take(idx))
    }

    /// Stores `word` (a fresh item) at `i < len`; the old item is retired later.
    fn set(&mut self, i: usize, word: u64) {
        let old = self.store_slot(i, word);
        self.bury(old);
    }

    /// Stores `word` in slot `i < len` and returns the word it replaced (now unlinked, I3).
    #[inline]
    fn store_slot(&mut self, i: usize, word: u64) -> u64 {
        // Only lock holders store slots, so a load and a store (no locked exchange) suffice.
        let slot = &self.array().slots[i];
        let old = slot.load(Ordering::Relaxed);
        slot.store(word, Ordering::Release);
        self.bump();
        old
    }

    fn reverse(&mut self) {
        let array = self.array();
        let len = array.len.load(Ordering::Relaxed);
        for k in 0..len / 2 {
            let (a, b) = (&array.slots[k], &array.slots[len - 1 - k]);
            let (wa, wb) = (a.load(Ordering::Relaxed), b.load(Ordering::Relaxed));
            a.store(wb, Ordering::Release);
            b.store(wa, Ordering::Release);
        }
        self.bump();
    }

    /// Keeps the items whose index satisfies `keep`, in order, compacting in place.
    fn compact(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let array = self.array();
        let len = array.len.load(Ordering::Relaxed);
        let mut kept = 0;
        for j in 0..len {
            let w = array.slots[j].load(Ordering::Relaxed);
            if keep(j) {
                if kept != j {
                    array.slots[kept].store(w, Ordering::Release);
                }
                kept += 1;
            } else {
                self.bury(w);
            }
        }
        array.len.store(kept, Ordering::Release);
        if should_shrink(kept, array.cap()) {
            let words = (0..kept).map(|i| array.slots[i].load(Ordering::Relaxed));
            self.rebuild(shrunk_cap(kept), words);
        }
        self.bump();
    }

    fn clear(&mut self) {
        let old = self.publish(Array::boxed(0));
        self.arrays.push((old, true));
        self.bump();
    }
}

impl<T: Storable> Drop for Writer<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Even again, before the lock is released (I4): advanced by 2 if the section changed
        // the list, else back to where it was.
        let end = self.start_version + if self.mutated.get() { 2 } else { 0 };
        self.list.version.store(end, Ordering::Release);
        drop(self.lock.take());
        if !self.arrays.is_empty() {
            self.retire_arrays();
        }
        if let Some(word) = self.dead.one.take() {
            if self.dead.more.is_empty() {
                // SAFETY: unlinked from the current array (I3) and retired once, here.
                unsafe { reclaim::retire(word, T::Storage::drop_word) };
            } else {
                self.retire_batch(word);
            }
        }
        reclaim::after_write();
    }
}

impl<T: Storable> Writer<'_, T> {
    /// Retires the arrays this section unlinked (the lock is released already).
    #[cold]
    fn retire_arrays(&mut self) {
        for (a, owns_items) in mem::take(&mut self.arrays) {
            // SAFETY: unlinked but not freed yet (retired below): a live array.
            let weight = reclaim::weight_of(unsafe { (&*a).cap() } * 8);
            let word = a.expose_provenance() as u64;
            if owns_items {
                // SAFETY: unlinked by `clear` (an empty array is current) and retired once;
                // its items `0..len` are in no other live array and retired by no one else.
                unsafe { reclaim::retire_weighted(word, drop_doomed::<T>, weight) };
            } else {
                // SAFETY: replaced by a newer published array (I1) and retired once, here.
                // Dropping an `Array` frees its slots, not the items, which live on in the
                // newer array.
                unsafe { reclaim::retire_weighted(word, drop_array, weight) };
            }
        }
    }

    /// Retires the words buried after `first`, with it, as one batch.
    #[cold]
    fn retire_batch(&mut self, first: u64) {
        let mut more = mem::take(&mut self.dead.more);
        more.push(first);
        let n = more.len();
        let batch = Box::new(Batch::<T>(more, PhantomData));
        let word = Box::into_raw(batch).expose_provenance() as u64;
        // SAFETY: each word was unlinked (I3) and is in this batch only.
        unsafe { reclaim::retire_weighted(word, drop_batch::<T>, n) };
    }
}

impl<T> Drop for GilFreeList<T> {
    fn drop(&mut self) {
        // `&mut self`: no reader or writer is left. Arrays and items retired earlier belong to
        // the collector; the current array and its items are ours.
        let word = self.array.load(Ordering::Relaxed).expose_provenance() as u64;
        // SAFETY: the current array, owned, dropped once, by the destructor made for `T`.
        unsafe { (self.doom)(word) };
    }
}

/// A pinned read session on a [`GilFreeList`]: borrowed reads (no refcount traffic) with no
/// per-read pin, lock or shared write. Items read stay valid while the session lives, even if
/// a writer removes them meanwhile.
pub struct ListPin<'l, T> {
    list: &'l GilFreeList<T>,
    guard: Guard,
}

impl<T: Storable> ListPin<'_, T> {
    /// Number of items in the current array.
    #[inline]
    pub fn len(&self) -> usize {
        self.list.current(&self.guard).len.load(Ordering::Acquire)
    }

    /// Whether the list is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A borrowed reference to the item at `i` (negative counts from the end).
    #[inline]
    pub fn get(&self, i: isize) -> Result<Ref<'_, T>, Error> {
        self.list.load(&self.guard, i).ok_or(Error::IndexOutOfRange)
    }

    /// Borrowed items, index by index over the current list (the [`ListIter`] semantics).
    pub fn iter(&self) -> impl Iterator<Item = Ref<'_, T>> + '_ {
        let mut i = 0;
        std::iter::from_fn(move || {
            let item = self.list.load_at(&self.guard, i)?;
            i += 1;
            Some(item)
        })
    }

    /// Unpins and pins again, letting reclamation advance during a long session; borrows
    /// from before are gone (`&mut self`).
    pub fn repin(&mut self) {
        self.guard.repin();
    }
}

impl<T> std::fmt::Debug for ListPin<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListPin").finish_non_exhaustive()
    }
}

/// Write access to a [`GilFreeList`] inside [`GilFreeList::with_lock`]. Each step is visible
/// to lock-free readers as it happens; removed items are retired when the section ends.
pub struct GilFreeListView<'g, T: Storable> {
    w: Writer<'g, T>,
}

impl<T: Storable + Clone + Send + Sync + 'static> GilFreeListView<'_, T> {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.w.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A borrowed reference to the item at `i` (negative counts from the end).
    pub fn get(&self, i: isize) -> Result<Ref<'_, T>, Error> {
        let idx = item_index(i, self.w.len()).ok_or(Error::IndexOutOfRange)?;
        Ok(self.w.elem(idx))
    }

    /// Borrowed items, in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Ref<'_, T>> + '_ {
        (0..self.w.len()).map(|i| self.w.elem(i))
    }

    /// Python's `append(x)`.
    pub fn append(&mut self, x: T) -> Result<(), Error> {
        self.w.check_frozen()?;
        self.w.push(T::Storage::into_word(x));
        Ok(())
    }

    /// Python's `extend(iterable)` (the iterator runs before anything changes).
    pub fn extend(&mut self, items: impl IntoIterator<Item = T>) -> Result<(), Error> {
        let words = Words::<T>::new(items);
        self.w.check_frozen()?;
        let len = self.w.len();
        self.w.splice(len, 0, &words.into_inner());
        Ok(())
    }

    /// Python's `insert(i, x)`.
    pub fn insert(&mut self, i: isize, x: T) -> Result<(), Error> {
        let word = Word::new(x);
        self.w.check_frozen()?;
        let at = insert_index(i, self.w.len());
        self.w.splice(at, 0, &[word.into_inner()]);
        Ok(())
    }

    /// Python's `pop()`: a clone of the removed last item.
    pub fn pop(&mut self) -> Result<T, Error> {
        self.pop_at(-1)
    }

    /// Python's `pop(i)`: a clone of the removed item.
    pub fn pop_at(&mut self, i: isize) -> Result<T, Error> {
        self.w.check_frozen()?;
        let word = self.w.take_at(i)?;
        Ok(self.w.release(word))
    }

    /// Python's `list[i] = x`.
    pub fn set(&mut self, i: isize, x: T) -> Result<(), Error> {
        let word = Word::new(x);
        self.w.check_frozen()?;
        let idx = item_index(i, self.w.len()).ok_or(Error::IndexOutOfRange)?;
        self.w.set(idx, word.into_inner());
        Ok(())
    }

    /// Python's `reverse()`.
    pub fn reverse(&mut self) -> Result<(), Error> {
        self.w.check_frozen()?;
        self.w.reverse();
        Ok(())
    }

    /// Python's `clear()`.
    pub fn clear(&mut self) -> Result<(), Error> {
        self.w.check_frozen()?;
        self.w.clear();
        Ok(())
    }
}

impl<T: Storable> std::fmt::Debug for GilFreeListView<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GilFreeListView").finish_non_exhaustive()
    }
}

impl<T> crate::freeze::Sealed for GilFreeList<T> {}

impl<T> crate::freeze::Freezable<T> for GilFreeList<T>
where
    T: crate::Freeze + Storable + Send + Sync + 'static,
{
    fn is_frozen(&self) -> bool {
        GilFreeList::is_frozen(self)
    }

    fn visit_children(&self, f: &mut dyn FnMut(&T) -> bool) {
        let pinned = self.pin();
        for item in pinned.iter() {
            if !f(&item) {
                return;
            }
        }
    }

    fn child_step(&self, index: usize) -> Option<crate::freeze::Step> {
        Some(crate::freeze::Step::Index(index))
    }

    fn version_tag(&self) -> u64 {
        self.version()
    }

    fn lock_for_freeze(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Option<crate::freeze::FreezeLock<'_>>, Error> {
        crate::freeze::FreezeLock::mutex(self.addr(), Container::List, &self.writer, timeout)
    }

    fn mark_frozen(&self, _lock: &crate::freeze::FreezeLock<'_>) {
        self.frozen.store(true, Ordering::Release);
    }

    fn map_children(&self, f: &mut dyn FnMut(&T) -> Option<T>) -> Result<(), Error> {
        self.with_lock(|view| {
            for i in 0..view.len() as isize {
                let new = f(&*view.get(i)?);
                if let Some(new) = new {
                    view.set(i, new)?;
                }
            }
            Ok(())
        })?
    }
}

impl<T: Storable + Clone + Send + Sync + 'static> RemoveSteps<T> for GilFreeList<T> {
    fn remove_scan<M: EqModel<T>>(&self, m: &M, x: &T) -> Result<RemoveScan<T>, Error<M::Error>> {
        let mut w = self.write()?;
        let version = w.version();
        let outcome = search::in_place(m, x, 0, (0..w.len()).map(|i| w.elem(i)), Want::First)?;
        Ok(RemoveScan::of(outcome, version, |i| w.discard(i)))
    }

    fn remove_confirmed<M: EqModel<T>>(
        &self,
        m: &M,
        index: usize,
        version: u64,
        item: &T,
    ) -> Result<bool, Error<M::Error>> {
        let mut w = self.write()?;
        let same = {
            let now = (index < w.len()).then(|| w.elem(index));
            search::still_matched(m, w.version() == version, now.as_deref(), item)
        };
        if same {
            w.discard(index);
        }
        Ok(same)
    }
}

#[cfg(all(test, not(gilfree_loom)))]
mod layout_tests {
    use super::*;
    use std::mem::{align_of, offset_of};

    /// The array pointer that index reads load and the fields every write writes sit on
    /// different cache lines (see `GilFreeList`).
    #[test]
    fn read_pointer_and_write_fields_are_on_separate_lines() {
        assert!(align_of::<GilFreeList<u64>>() >= 64);
        let array = offset_of!(GilFreeList<u64>, array) / 64;
        for written in [
            offset_of!(GilFreeList<u64>, writer),
            offset_of!(GilFreeList<u64>, len),
            offset_of!(GilFreeList<u64>, version),
        ] {
            assert_ne!(array, written / 64, "array and the field at {written}");
        }
    }
}
