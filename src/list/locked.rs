//! `LockedList`: one lock per list (a biased mutex); every operation is linearizable.
//!
//! The items are a plain `Vec<T>` in an `UnsafeCell`, guarded by `lock` (a mutex biased toward
//! the thread that uses the list, [`crate::bias`]; no poisoning: a panicking callback never
//! wedges the list). Reads and writes both take it: for the short critical sections of a list
//! a mutex beats a reader-writer lock even with two readers (two read-modify-writes of one
//! line either way, and no reader-writer bookkeeping). `len` and `version` are mirrored in
//! atomics so that they read without it.
//!
//! ## Invariants and protocol
//!
//! - **L1** A `&mut Vec<T>` exists only inside a [`Writer`] method, with the exclusive lock
//!   held, and never while user code runs: no closure, model callback or iterator of the
//!   caller is called while it is alive (user iterators are collected before the lock is
//!   taken). Code that runs under the lock and is not ours is limited to `T::clone`,
//!   `T::cmp` (plain `sort`) and pure model `eq`/`identical` of a non-reentrant scan; none of
//!   them can reach a view of this list, and if they use the list itself they wait for the
//!   lock (a deadlock, never undefined behaviour). `T`'s own `Clone`/`Ord` must therefore not
//!   use the list.
//! - **L2** A thread that holds the lock while running *user* code (`with_lock`, `get_with`,
//!   [`ListReadGuard`]) registers the list in `crate::reentry`. Its writes to the same list
//!   fail with [`Error::Reentrant`]; its reads are served without taking the lock again (the
//!   lock is already held, so no other thread writes) through a short shared borrow that
//!   only clones: a re-entrant read never hands a reference into the `Vec` to user code,
//!   because the outer user code may hold a [`LockedListView`] whose next write would move
//!   the items.
//! - **L3** Values leave the lock before they die: every value removed or overwritten under
//!   the lock goes to the writer's graveyard and is dropped after the lock is released.
//!
//! Script `eq` never runs under the lock: at the first item that needs it, a scan clones the
//! items still to be compared, releases the lock and compares the clones (the list as it was
//! at one moment, see `list::search`); `remove` validates before it deletes (see
//! [`Sequence`](crate::Sequence)).

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::mem;
use std::ops::Deref;

use crate::bias::{BiasGuard, BiasedMutex};

use crate::list::iter::ListIter;
use crate::list::search::{self, Found, InPlace, RemoveScan, RemoveSteps, Want};
use crate::list::slice::Slice;
use crate::list::sort::sort_indices;
use crate::list::FrozenList;
use crate::list::{insert_index, item_index, permute, repeat_len};
use crate::model::EqModel;
use crate::reentry::{self, Holding};
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::{Container, Error};

/// A concurrent list with Python semantics guarded by one lock of its own.
///
/// Every operation is atomic; [`with_lock`](Self::with_lock) runs compound updates as one
/// critical section. See [`Sequence`](crate::Sequence) for the semantics both lists share.
///
/// ```
/// use gilfree::LockedList;
///
/// let l: LockedList<i64> = (1..=3).collect();
/// // An atomic read-modify-write of two items.
/// l.with_lock(|v| {
///     let first = *v.get(0)?;
///     v.set(-1, first * 10)
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(l.snapshot(), vec![1, 2, 10]);
/// assert_eq!(l.index(&10).unwrap(), 2);
/// ```
pub struct LockedList<T> {
    lock: BiasedMutex,
    items: UnsafeCell<Vec<T>>,
    len: AtomicUsize,
    version: AtomicU64,
    frozen: AtomicBool,
}

// SAFETY: the list owns its items; moving it moves them.
unsafe impl<T: Send> Send for LockedList<T> {}
// SAFETY: the lock serializes writers against readers (L1, L2); readers on any thread get
// `&T` (Sync) and items pushed on one thread are popped and dropped on another (Send).
unsafe impl<T: Send + Sync> Sync for LockedList<T> {}

// A panic in user code leaves the list consistent and usable (a write is applied whole or not
// at all, and the lock is released on unwind), so a `&LockedList` may cross `catch_unwind`.
impl<T: std::panic::RefUnwindSafe> std::panic::RefUnwindSafe for LockedList<T> {}
impl<T: std::panic::UnwindSafe> std::panic::UnwindSafe for LockedList<T> {}

/// How the current thread reads the list.
enum Read<'a> {
    Locked(#[allow(dead_code)] BiasGuard<'a>),
    /// An outer frame of this thread holds the lock (L2): clone, never lend.
    Reentrant,
}

impl<T> LockedList<T> {
    /// An empty list.
    pub fn new() -> Self {
        Self::from_vec(Vec::new())
    }

    /// An empty list with room for `capacity` items before it grows.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::from_vec(Vec::with_capacity(capacity))
    }

    /// A list holding `items`, in order.
    pub fn from_vec(items: Vec<T>) -> Self {
        LockedList {
            lock: BiasedMutex::new(),
            len: AtomicUsize::new(items.len()),
            items: UnsafeCell::new(items),
            version: AtomicU64::new(0),
            frozen: AtomicBool::new(false),
        }
    }

    /// Number of items (one atomic load, no lock).
    #[inline]
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether the list is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A tag that changes on every mutation; read without the lock.
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
        let _lock = self.lock.lock();
        self.frozen.store(true, Ordering::Release);
        Ok(())
    }

    /// The read-only view of this list if it is frozen: borrowed reads with no lock and no
    /// refcount traffic, valid for as long as the list.
    pub fn frozen(&self) -> Option<FrozenList<'_, T>> {
        if !self.frozen.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: frozen (Acquire pairs with the Release in `freeze`, made under the exclusive
        // lock): every later `write()` fails before creating a `&mut` to the items (L1), so a
        // shared borrow is valid for as long as `&self`.
        Some(unsafe { FrozenList::inline(&*self.items.get()) })
    }

    fn addr(&self) -> usize {
        self as *const Self as usize
    }

    fn read_access(&self) -> Read<'_> {
        if reentry::held_by_me(self.addr()) {
            Read::Reentrant
        } else {
            Read::Locked(self.lock.lock())
        }
    }

    /// The items.
    ///
    /// # Safety
    /// The caller holds a [`Read`] (the lock, or re-entrant: no `&mut` alive, L1) and drops
    /// the reference before releasing it; in the re-entrant case it only clones (L2).
    #[inline]
    unsafe fn items(&self) -> &Vec<T> {
        // SAFETY: forwarded to the caller.
        unsafe { &*self.items.get() }
    }

    #[inline]
    fn write<E>(&self) -> Result<Writer<'_, T>, Error<E>> {
        let lock = self
            .lock
            .lock_for_write(Container::List, self.addr(), &self.frozen)?;
        Ok(Writer {
            list: self,
            lock: Some(lock),
            grave: Vec::new(),
        })
    }

    /// Runs `f` on the items under a read access; `f` must only clone (L2).
    fn read_cloning<R>(&self, f: impl FnOnce(&Vec<T>) -> R) -> R {
        let access = self.read_access();
        // SAFETY: `access` is held until `f` returns; `f` only clones (callers' contract).
        let out = f(unsafe { self.items() });
        drop(access);
        out
    }
}

derived_list_api!(LockedList,);

impl<T: Clone> LockedList<T> {
    /// A clone of the item at `i` (negative counts from the end).
    pub fn get(&self, i: isize) -> Result<T, Error> {
        self.read_cloning(|items| {
            let idx = item_index(i, items.len()).ok_or(Error::IndexOutOfRange)?;
            Ok(items[idx].clone())
        })
    }

    /// Calls `f` with a borrowed reference to the item at `i`, under the lock (no
    /// refcount traffic). `f` may read this list; writing to it from inside fails with
    /// [`Error::Reentrant`]. Called re-entrantly (from inside `with_lock`), `f` gets a clone.
    pub fn get_with<R>(&self, i: isize, f: impl FnOnce(&T) -> R) -> Result<R, Error> {
        match self.read_access() {
            Read::Locked(lock) => {
                // SAFETY: the lock is held until the end of this arm; no `&mut` exists (L1).
                let items = unsafe { self.items() };
                let idx = item_index(i, items.len()).ok_or(Error::IndexOutOfRange)?;
                let _held = Holding::new(self.addr());
                let out = f(&items[idx]);
                drop(lock);
                Ok(out)
            }
            Read::Reentrant => {
                let item = self.get(i)?;
                Ok(f(&item))
            }
        }
    }

    /// Borrowed access to all items under the lock, for as long as the guard lives.
    /// While it lives, this thread's writes to the list fail with [`Error::Reentrant`]. Fails
    /// with `Reentrant` if this thread already holds the list's lock.
    pub fn read(&self) -> Result<ListReadGuard<'_, T>, Error> {
        if reentry::held_by_me(self.addr()) {
            return Err(Error::Reentrant(Container::List));
        }
        let lock = self.lock.lock();
        Ok(ListReadGuard {
            list: self,
            _held: Holding::new(self.addr()),
            _lock: lock,
            _not_send: PhantomData,
        })
    }

    /// An iterator over clones of the items with CPython's list-iterator semantics (see
    /// [`ListIter`]); each step takes the lock briefly.
    pub fn iter(&self) -> ListIter<'_, T, Self> {
        ListIter::new(self)
    }

    /// An atomic snapshot of the items.
    pub fn snapshot(&self) -> Vec<T> {
        self.read_cloning(|items| items.clone())
    }

    /// Same as [`snapshot`](Self::snapshot).
    pub fn to_vec(&self) -> Vec<T> {
        self.snapshot()
    }

    /// Python's `list[slice]`: clones of the selected items, taken atomically.
    pub fn get_slice(&self, s: Slice) -> Result<Vec<T>, Error> {
        self.read_cloning(|items| {
            let ind = s.indices(items.len())?;
            Ok(ind.iter().map(|i| items[i].clone()).collect())
        })
    }

    /// The search behind `contains`, `index` and `count` over `start..stop` (see
    /// `crate::list::search`): in place under the lock, the rest cloned at the first item that
    /// needs script `eq` and compared with the lock released.
    fn search<M: EqModel<T>>(
        &self,
        m: &M,
        x: &T,
        start: usize,
        stop: usize,
        want: Want,
    ) -> Result<Found, Error<M::Error>> {
        let access = self.read_access();
        let outcome = {
            // SAFETY: `access` is held, and the reference is dropped at the end of this block,
            // before it is released; in the re-entrant case it is only cloned (L2).
            let items = unsafe { self.items() };
            let end = stop.min(items.len());
            let start = start.min(end);
            match access {
                Read::Reentrant => InPlace::Script {
                    at: start,
                    rest: items[start..end].to_vec(),
                    found: Found::default(),
                },
                Read::Locked(_) => search::in_place(m, x, start, &items[start..end], want)?,
            }
        };
        drop(access);
        match outcome {
            InPlace::Done(found) => Ok(found),
            InPlace::Script { at, rest, found } => {
                search::compare_rest(m, x, at, rest, found, want)
            }
        }
    }

    /// How many items the list holds before it reallocates.
    pub fn capacity(&self) -> usize {
        let _access = self.read_access();
        // SAFETY: `_access` is held while the reference lives; only the capacity is read.
        unsafe { self.items() }.capacity()
    }

    /// Makes room for at least `additional` more items; [`Error::TooLarge`] if the allocator
    /// refuses.
    pub fn reserve(&self, additional: usize) -> Result<(), Error> {
        let mut w = self.write()?;
        w.vec().try_reserve(additional).map_err(|_| Error::TooLarge)
    }

    /// Python's `append(x)`.
    pub fn append(&self, x: T) -> Result<(), Error> {
        let mut w = self.write()?;
        w.vec().push(x);
        w.bump();
        Ok(())
    }

    /// Python's `extend(iterable)`: the items are collected first (with no lock held), then
    /// appended in one critical section.
    pub fn extend(&self, items: impl IntoIterator<Item = T>) -> Result<(), Error> {
        let mut items: Vec<T> = items.into_iter().collect();
        let mut w = self.write()?;
        w.vec().append(&mut items);
        w.bump();
        Ok(())
    }

    /// Python's `insert(i, x)`: `i` is clamped into `0..=len` (negative counts from the end).
    pub fn insert(&self, i: isize, x: T) -> Result<(), Error> {
        let mut w = self.write()?;
        w.insert(i, x);
        Ok(())
    }

    /// Python's `pop()`: removes and returns the last item.
    pub fn pop(&self) -> Result<T, Error> {
        self.pop_at(-1)
    }

    /// Python's `pop(i)`: removes and returns the item at `i`.
    /// [`Error::Empty`] on an empty list, [`Error::IndexOutOfRange`] for a bad index.
    pub fn pop_at(&self, i: isize) -> Result<T, Error> {
        let mut w = self.write()?;
        let idx = w.pop_index(i)?;
        let item = w.vec().remove(idx);
        w.bump();
        drop(w);
        Ok(item)
    }

    /// Python's `list[i] = x`; the old item is dropped after the lock is released.
    pub fn set(&self, i: isize, x: T) -> Result<(), Error> {
        let mut w = self.write()?;
        let old = w.replace(i, x)?;
        drop(w);
        // Not through the writer's graveyard, a `Vec` that one item would allocate.
        crate::cleanup::drop_all(Some(old));
        Ok(())
    }

    /// Python's `list[slice] = items`. A step-1 slice is replaced by any number of items; an
    /// extended slice needs exactly as many items as it selects ([`Error::SliceLength`]).
    pub fn set_slice(&self, s: Slice, items: impl IntoIterator<Item = T>) -> Result<(), Error> {
        let items: Vec<T> = items.into_iter().collect();
        let mut w = self.write()?;
        let ind = s.indices(w.items().len())?;
        if ind.step == 1 {
            let (start, stop) = ind.contiguous();
            let removed: Vec<T> = w.vec().splice(start..stop, items).collect();
            w.grave.extend(removed);
        } else {
            if items.len() != ind.len {
                return Err(Error::SliceLength {
                    slice: ind.len,
                    given: items.len(),
                });
            }
            for (idx, item) in ind.iter().zip(items) {
                let old = mem::replace(&mut w.vec()[idx], item);
                w.grave.push(old);
            }
        }
        w.bump();
        Ok(())
    }

    /// Python's `del list[slice]`.
    pub fn del_slice(&self, s: Slice) -> Result<(), Error> {
        let mut w = self.write()?;
        let ind = s.indices(w.items().len())?;
        if ind.len == 0 {
            return Ok(());
        }
        let removed: Vec<T> = if ind.step == 1 {
            let (start, _) = ind.contiguous();
            w.vec().drain(start..start + ind.len).collect()
        } else {
            let (first, step) = ind.ascending();
            let n = ind.len;
            let old = mem::take(w.vec());
            let mut removed = Vec::with_capacity(n);
            let kept: Vec<T> = old
                .into_iter()
                .enumerate()
                .filter_map(|(j, item)| {
                    if j >= first && (j - first) % step == 0 && (j - first) / step < n {
                        removed.push(item);
                        None
                    } else {
                        Some(item)
                    }
                })
                .collect();
            *w.vec() = kept;
            removed
        };
        w.grave.extend(removed);
        w.bump();
        Ok(())
    }

    /// Python's `remove(x)` under `m`: removes the first item equal to `x`;
    /// [`Error::ValueNotFound`] if none. Script `eq` runs with the lock released; see
    /// [`Sequence`](crate::Sequence) for the validation and restart rules.
    pub fn remove_in<M: EqModel<T>>(&self, m: &M, x: &T) -> Result<(), Error<M::Error>> {
        search::remove_in(self, m, x)
    }

    /// Copies the items out, computes the permutation with `order` outside the lock, and
    /// installs it if the list did not change meanwhile.
    fn sort_with<E>(
        &self,
        order: impl FnOnce(&[T]) -> Result<Vec<usize>, E>,
    ) -> Result<(), Error<E>> {
        let (version, items) = {
            let w = self.write::<E>()?;
            (w.version(), w.items().clone())
        };
        let order = order(&items).map_err(Error::Callback)?;
        let mut w = self.write()?;
        if w.version() != version {
            return Err(Error::ModifiedDuringSort);
        }
        permute(w.vec(), &order);
        w.bump();
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

    /// Stable sort by `T: Ord`, under the lock (no script code runs).
    pub fn sort(&self) -> Result<(), Error>
    where
        T: Ord,
    {
        let mut w = self.write()?;
        w.vec().sort();
        w.bump();
        Ok(())
    }

    /// Python's `reverse()`.
    pub fn reverse(&self) -> Result<(), Error> {
        let mut w = self.write()?;
        w.vec().reverse();
        w.bump();
        Ok(())
    }

    /// Python's `clear()`; the items are dropped after the lock is released.
    pub fn clear(&self) -> Result<(), Error> {
        self.write()?.clear();
        Ok(())
    }

    /// Python's `self *= n`, atomically (the clones are made under the lock);
    /// [`Error::TooLarge`] if the length cannot be addressed (Python's `MemoryError`).
    pub fn repeat_in_place(&self, n: usize) -> Result<(), Error> {
        // Declared before the writer, so that if a `Clone` panics the lock is released before
        // the clones made so far are dropped (a destructor may use this list).
        let mut extra = crate::cleanup::DropAll(Vec::new());
        let mut w = self.write()?;
        if n == 0 {
            w.clear();
            return Ok(());
        }
        let len = w.items().len();
        let total = repeat_len(len, n, std::mem::size_of::<T>())?;
        // Python's MemoryError when the allocator refuses, instead of an abort.
        extra
            .0
            .try_reserve_exact(total - len)
            .map_err(|_| Error::TooLarge)?;
        for _ in 1..n {
            extra.0.extend_from_slice(w.items());
        }
        w.vec().append(&mut extra.0);
        w.bump();
        Ok(())
    }

    /// Runs `f` with the list locked exclusively: a compound update as one critical section
    /// (like a CPython per-object critical section). From inside `f`, reading the list
    /// directly works (clones), writing to it directly fails with [`Error::Reentrant`].
    /// Items removed inside are dropped after the lock is released.
    pub fn with_lock<R>(
        &self,
        f: impl FnOnce(&mut LockedListView<'_, T>) -> R,
    ) -> Result<R, Error> {
        let w = self.write()?;
        let mut view = LockedListView { w };
        let out = {
            let _held = Holding::new(self.addr());
            f(&mut view)
        };
        drop(view);
        Ok(out)
    }
}

/// A writer inside its critical section: the exclusive lock and the graveyard of values to
/// drop once it is released (L3).
struct Writer<'l, T> {
    list: &'l LockedList<T>,
    lock: Option<BiasGuard<'l>>,
    grave: Vec<T>,
}

impl<T> Writer<'_, T> {
    /// The items, mutably. Only our own code runs while the borrow lives (L1).
    #[inline]
    fn vec(&mut self) -> &mut Vec<T> {
        // SAFETY: exclusive lock held; `&mut self` rules out another borrow through this
        // writer, and re-entrant readers of this thread run only inside user code, which
        // does not run while this borrow lives (L1).
        unsafe { &mut *self.list.items.get() }
    }

    #[inline]
    fn items(&self) -> &Vec<T> {
        // SAFETY: exclusive lock held; no `&mut` alive while `&self` is borrowed (see `vec`).
        unsafe { &*self.list.items.get() }
    }

    fn version(&self) -> u64 {
        self.list.version.load(Ordering::Relaxed)
    }

    fn check_frozen(&self) -> Result<(), Error> {
        if self.list.frozen.load(Ordering::Relaxed) {
            Err(Error::Frozen(Container::List))
        } else {
            Ok(())
        }
    }

    /// Records a mutation.
    fn bump(&self) {
        self.list.len.store(self.items().len(), Ordering::Release);
        let v = self.list.version.load(Ordering::Relaxed);
        self.list.version.store(v + 1, Ordering::Release);
    }

    fn insert(&mut self, i: isize, x: T) {
        let at = insert_index(i, self.items().len());
        self.vec().insert(at, x);
        self.bump();
    }

    fn pop_index(&self, i: isize) -> Result<usize, Error> {
        let len = self.items().len();
        if len == 0 {
            return Err(Error::Empty(Container::List));
        }
        item_index(i, len).ok_or(Error::IndexOutOfRange)
    }

    /// Removes the item at `i < len` into the graveyard.
    fn take(&mut self, i: usize) {
        let item = self.vec().remove(i);
        self.grave.push(item);
        self.bump();
    }

    /// Replaces the item at `i` and returns the old one (still to be dropped after the lock).
    fn replace(&mut self, i: isize, x: T) -> Result<T, Error> {
        let idx = item_index(i, self.items().len()).ok_or(Error::IndexOutOfRange)?;
        let old = mem::replace(&mut self.vec()[idx], x);
        self.bump();
        Ok(old)
    }

    fn set(&mut self, i: isize, x: T) -> Result<(), Error> {
        let old = self.replace(i, x)?;
        self.grave.push(old);
        Ok(())
    }

    fn clear(&mut self) {
        let old = mem::take(self.vec());
        self.grave.extend(old);
        self.bump();
    }
}

impl<T> Drop for Writer<'_, T> {
    #[inline]
    fn drop(&mut self) {
        drop(self.lock.take());
        if !self.grave.is_empty() {
            crate::cleanup::drop_all(mem::take(&mut self.grave));
        }
    }
}

impl<T> Drop for LockedList<T> {
    fn drop(&mut self) {
        // Under the drop-panic policy: every item dropped, a panicking destructor reported.
        crate::cleanup::drop_all(mem::take(self.items.get_mut()));
    }
}

/// Borrowed access to a [`LockedList`]'s items under its lock (see
/// [`LockedList::read`]). Dereferences to `[T]`.
pub struct ListReadGuard<'l, T> {
    list: &'l LockedList<T>,
    _held: Holding,
    _lock: BiasGuard<'l>,
    /// The re-entry registration is per thread.
    _not_send: PhantomData<*const ()>,
}

impl<T: std::fmt::Debug> std::fmt::Debug for ListReadGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T> Deref for ListReadGuard<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: the lock is held while the guard lives, and this thread's writes are
        // refused meanwhile (it is registered), so no `&mut` to the items can exist (L1, L2).
        unsafe { &*self.list.items.get() }
    }
}

/// Write access to a [`LockedList`] inside [`LockedList::with_lock`]. Values removed are
/// returned as clones; the originals are dropped after the lock is released.
pub struct LockedListView<'l, T> {
    w: Writer<'l, T>,
}

impl<T> std::fmt::Debug for LockedListView<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockedListView").finish_non_exhaustive()
    }
}

impl<T: Clone> LockedListView<'_, T> {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.w.items().len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A borrowed reference to the item at `i` (negative counts from the end).
    pub fn get(&self, i: isize) -> Result<&T, Error> {
        let items = self.w.items();
        let idx = item_index(i, items.len()).ok_or(Error::IndexOutOfRange)?;
        Ok(&items[idx])
    }

    /// The items as a slice.
    pub fn as_slice(&self) -> &[T] {
        self.w.items()
    }

    /// Borrowed items, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.w.items().iter()
    }

    /// Python's `append(x)`.
    pub fn append(&mut self, x: T) -> Result<(), Error> {
        self.w.check_frozen()?;
        self.w.vec().push(x);
        self.w.bump();
        Ok(())
    }

    /// Python's `extend(iterable)` (the iterator runs before anything changes).
    pub fn extend(&mut self, items: impl IntoIterator<Item = T>) -> Result<(), Error> {
        let mut items: Vec<T> = items.into_iter().collect();
        self.w.check_frozen()?;
        self.w.vec().append(&mut items);
        self.w.bump();
        Ok(())
    }

    /// Python's `insert(i, x)`.
    pub fn insert(&mut self, i: isize, x: T) -> Result<(), Error> {
        self.w.check_frozen()?;
        self.w.insert(i, x);
        Ok(())
    }

    /// Python's `pop()`: a clone of the removed last item.
    pub fn pop(&mut self) -> Result<T, Error> {
        self.pop_at(-1)
    }

    /// Python's `pop(i)`: a clone of the removed item.
    pub fn pop_at(&mut self, i: isize) -> Result<T, Error> {
        self.w.check_frozen()?;
        let idx = self.w.pop_index(i)?;
        let item = self.w.vec().remove(idx);
        self.w.bump();
        // The clone runs with no borrow of the items alive (L1).
        let out = item.clone();
        self.w.grave.push(item);
        Ok(out)
    }

    /// Python's `list[i] = x`.
    pub fn set(&mut self, i: isize, x: T) -> Result<(), Error> {
        self.w.check_frozen()?;
        self.w.set(i, x)
    }

    /// Python's `reverse()`.
    pub fn reverse(&mut self) -> Result<(), Error> {
        self.w.check_frozen()?;
        self.w.vec().reverse();
        self.w.bump();
        Ok(())
    }

    /// Python's `clear()`.
    pub fn clear(&mut self) -> Result<(), Error> {
        self.w.check_frozen()?;
        self.w.clear();
        Ok(())
    }
}

impl<T> crate::freeze::Sealed for LockedList<T> {}

impl<T> crate::freeze::Freezable<T> for LockedList<T>
where
    T: crate::Freeze + Send + Sync,
{
    fn is_frozen(&self) -> bool {
        LockedList::is_frozen(self)
    }

    fn visit_children(&self, f: &mut dyn FnMut(&T) -> bool) {
        match self.read() {
            Ok(items) => {
                for item in items.iter() {
                    if !f(item) {
                        return;
                    }
                }
            }
            // This thread holds the lock already (freeze's walk under its own locks): clones.
            Err(_) => {
                for item in self.snapshot() {
                    if !f(&item) {
                        return;
                    }
                }
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
        crate::freeze::FreezeLock::mutex(self.addr(), Container::List, &self.lock, timeout)
    }

    fn mark_frozen(&self, _lock: &crate::freeze::FreezeLock<'_>) {
        self.frozen.store(true, Ordering::Release);
    }

    fn map_children(&self, f: &mut dyn FnMut(&T) -> Option<T>) -> Result<(), Error> {
        self.with_lock(|view| {
            for i in 0..view.len() as isize {
                if let Some(new) = f(view.get(i)?) {
                    view.set(i, new)?;
                }
            }
            Ok(())
        })?
    }
}

impl<T: Clone> RemoveSteps<T> for LockedList<T> {
    fn remove_scan<M: EqModel<T>>(&self, m: &M, x: &T) -> Result<RemoveScan<T>, Error<M::Error>> {
        let mut w = self.write()?;
        let version = w.version();
        let outcome = search::in_place(m, x, 0, w.items(), Want::First)?;
        Ok(RemoveScan::of(outcome, version, |i| {
            w.take(i);
        }))
    }

    fn remove_confirmed<M: EqModel<T>>(
        &self,
        m: &M,
        index: usize,
        version: u64,
        item: &T,
    ) -> Result<bool, Error<M::Error>> {
        let mut w = self.write()?;
        let same = search::still_matched(m, w.version() == version, w.items().get(index), item);
        if same {
            w.take(index);
        }
        Ok(same)
    }
}
