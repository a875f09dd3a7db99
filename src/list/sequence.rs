//! [`Sequence`]: the list API shared by every variant, so a VM can be generic over it.

use std::cmp::Ordering as CmpOrdering;

use crate::list::{PlainEq, Slice};
use crate::model::{infallible, EqModel};
use crate::{Error, GilFreeList, LockedList};

/// The list operations common to [`LockedList`] and [`GilFreeList`], with Python list
/// semantics (below).
///
/// Switching a VM from one variant to the other is a type change:
///
/// ```
/// use gilfree::{GilFreeList, LockedList, Sequence, Slice};
///
/// fn run<L: Sequence<i64> + Default>() -> Vec<i64> {
///     let l = L::default();
///     l.extend([5, 3, 8, 1]).unwrap();
///     l.sort_by(true, |a, b| Ok::<_, ()>(a < b)).unwrap(); // sort(reverse=True)
///     l.del_slice(Slice::range(0, 1)).unwrap(); // del l[0:1]
///     l.append(l.get(-1).unwrap() * 10).unwrap();
///     l.snapshot()
/// }
///
/// assert_eq!(run::<LockedList<i64>>(), vec![5, 3, 1, 10]);
/// assert_eq!(run::<GilFreeList<i64>>(), run::<LockedList<i64>>());
/// ```
///
/// # Semantics shared by both lists
///
/// - **Indices** are `isize`, negative ones count from the end (`get(-1)` is the last item);
///   out of range is [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange), never a panic.
///   `insert` clamps its index like Python.
/// - **Slices** ([`Slice`]) follow CPython's `PySlice_AdjustIndices` exactly; assignment to
///   a step-1 slice may change the length, assignment to an extended slice (any other step,
///   `-1` included) must give exactly as many items
///   ([`Error::SliceLength`](crate::Error::SliceLength)).
/// - **Script `eq` never runs under a list's lock** (nor, for `GilFreeList`, pinned, so a
///   long callback never delays reclamation). `index`/`count`/`contains`/`remove` compare in
///   place while comparisons run no script code (identity, a pure `eq`); at the first item
///   that needs script `eq` they clone the items still to be compared, in the same critical
///   section, and compare the clones with the lock released. Every answer is therefore the
///   answer for the list as it was at one moment: an item that is in the list the whole time
///   is never reported missing, however other threads or the callback itself change the list
///   meanwhile (CPython instead resumes at the next index of the list as it is now). The
///   price is one clone per item after the first script comparison. `GilFreeList` reads
///   lock-free and validates with its version (a sequence lock), falling back to its writer
///   lock when writers keep interfering. `remove` validates before acting: it deletes the
///   matched item only if the list's version is unchanged since the clones were taken, or if
///   the item at that index is still the same object (the model's `identical`, checked on
///   the clone it holds, so no ABA); otherwise it starts over, at most
///   [`MAX_LOOKUP_RESTARTS`](crate::MAX_LOOKUP_RESTARTS) times, then fails with
///   [`Error::MutatedDuringLookup`](crate::Error::MutatedDuringLookup).
/// - **Sort** copies the items out (clones), computes keys and runs a stable merge sort
///   outside the lock with the fallible key function and `<`, then installs the permutation
///   only if the list's version did not move; otherwise it returns
///   [`Error::ModifiedDuringSort`](crate::Error::ModifiedDuringSort) and leaves the list as
///   the callbacks (or other threads) left it: valid elements, none lost or duplicated by the
///   sort. A failing callback leaves the list untouched (its original order). The plain
///   `sort()` for `T: Ord` runs no script code and sorts under the lock.
/// - **Comparisons** (`eq_in`, `compare_in`, `PartialEq`, `PartialOrd`) compare atomic
///   snapshots of both lists, lexicographically as CPython does (identity, then `==` to find
///   the first difference, then the caller's ordering on that pair).
/// - **Values leave the lock before they die**, since a destructor is script code: a
///   `LockedList` moves removed values out and drops overwritten ones after the lock is
///   released; a `GilFreeList` returns clones of removed values (a racing reader may still
///   be looking at the stored one) and retires the stored box to the epoch collector, which
///   drops it later on whichever thread collects, holding no list lock.
/// - **Re-entrancy**: a closure that runs under a list's lock (`with_lock`,
///   `LockedList::get_with`, a `LockedList` read guard) may read the same list (a
///   `LockedList` then serves clones, never references into its storage); writing to it
///   from inside fails with
///   [`Error::Reentrant`](crate::Error::Reentrant) instead of deadlocking. `T`'s own `Clone`
///   (a refcount increment for handles) may run under the lock and must not use the list.
/// - **Freeze**: after `freeze()`, every mutator fails with
///   [`Error::Frozen`](crate::Error::Frozen)`(List)`; reads keep working.
pub trait Sequence<T> {
    /// Number of items.
    fn len(&self) -> usize;
    /// Whether the list is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A tag that changes on every mutation.
    fn version(&self) -> u64;
    /// Whether the list is frozen.
    fn is_frozen(&self) -> bool;
    /// Makes the list immutable (one-way).
    fn freeze(&self) -> Result<(), Error>;

    /// A clone of the item at `i` (negative counts from the end).
    fn get(&self, i: isize) -> Result<T, Error>;
    /// Calls `f` with a borrowed reference to the item at `i` (no refcount traffic).
    fn get_with<R>(&self, i: isize, f: impl FnOnce(&T) -> R) -> Result<R, Error>;
    /// An atomic snapshot of the items.
    fn snapshot(&self) -> Vec<T>;
    /// Python's `list[slice]`.
    fn get_slice(&self, s: Slice) -> Result<Vec<T>, Error>;
    /// Python's `x in list` under `m`.
    fn contains_in<M: EqModel<T>>(&self, m: &M, x: &T) -> Result<bool, Error<M::Error>>;
    /// Python's `index(x, start, stop)` under `m`.
    fn index_in<M: EqModel<T>>(
        &self,
        m: &M,
        x: &T,
        start: isize,
        stop: isize,
    ) -> Result<usize, Error<M::Error>>;
    /// Python's `count(x)` under `m`.
    fn count_in<M: EqModel<T>>(&self, m: &M, x: &T) -> Result<usize, Error<M::Error>>;
    /// Python's `list == other` under `m`.
    fn eq_in<M: EqModel<T>>(&self, m: &M, other: &Self) -> Result<bool, Error<M::Error>>;
    /// Python's lexicographic comparison under `m`, ordering the first unequal pair by `cmp`.
    fn compare_in<M: EqModel<T>>(
        &self,
        m: &M,
        other: &Self,
        cmp: impl FnMut(&T, &T) -> Result<Option<CmpOrdering>, M::Error>,
    ) -> Result<Option<CmpOrdering>, Error<M::Error>>;
    /// Python's `list.copy()`.
    fn copy(&self) -> Self
    where
        Self: Sized;
    /// Python's `self + other`.
    fn concat(&self, other: &Self) -> Self
    where
        Self: Sized;
    /// Python's `self * n` ([`Error::TooLarge`] where Python raises `MemoryError`).
    fn repeat(&self, n: usize) -> Result<Self, Error>
    where
        Self: Sized;

    /// Python's `append(x)`.
    fn append(&self, x: T) -> Result<(), Error>;
    /// Python's `extend(iterable)`.
    fn extend<I: IntoIterator<Item = T>>(&self, items: I) -> Result<(), Error>;
    /// Python's `insert(i, x)`.
    fn insert(&self, i: isize, x: T) -> Result<(), Error>;
    /// Python's `pop()`.
    fn pop(&self) -> Result<T, Error>;
    /// Python's `pop(i)`.
    fn pop_at(&self, i: isize) -> Result<T, Error>;
    /// Python's `list[i] = x`.
    fn set(&self, i: isize, x: T) -> Result<(), Error>;
    /// Python's `list[slice] = items`.
    fn set_slice<I: IntoIterator<Item = T>>(&self, s: Slice, items: I) -> Result<(), Error>;
    /// Python's `del list[slice]`.
    fn del_slice(&self, s: Slice) -> Result<(), Error>;
    /// Python's `remove(x)` under `m`.
    fn remove_in<M: EqModel<T>>(&self, m: &M, x: &T) -> Result<(), Error<M::Error>>;
    /// Python's `sort(key=key, reverse=reverse)` with fallible callbacks (`less` is `<`).
    fn sort_by_key<K, E>(
        &self,
        reverse: bool,
        key: impl FnMut(&T) -> Result<K, E>,
        less: impl FnMut(&K, &K) -> Result<bool, E>,
    ) -> Result<(), Error<E>>;
    /// Python's `sort(reverse=reverse)` with a fallible `<`.
    fn sort_by<E>(
        &self,
        reverse: bool,
        less: impl FnMut(&T, &T) -> Result<bool, E>,
    ) -> Result<(), Error<E>>;
    /// Stable sort by `T: Ord` (no script code; never `ModifiedDuringSort`).
    fn sort(&self) -> Result<(), Error>
    where
        T: Ord;
    /// Python's `reverse()`.
    fn reverse(&self) -> Result<(), Error>;
    /// Python's `clear()`.
    fn clear(&self) -> Result<(), Error>;
    /// Python's `self *= n`.
    fn repeat_in_place(&self, n: usize) -> Result<(), Error>;

    /// Python's `x in list` for `T: PartialEq`.
    fn contains(&self, x: &T) -> bool
    where
        T: PartialEq,
    {
        infallible(self.contains_in(&PlainEq, x))
    }
    /// Python's `index(x)` for `T: PartialEq`.
    fn index(&self, x: &T) -> Result<usize, Error>
    where
        T: PartialEq,
    {
        self.index_in(&PlainEq, x, 0, isize::MAX)
    }
    /// Python's `count(x)` for `T: PartialEq`.
    fn count(&self, x: &T) -> usize
    where
        T: PartialEq,
    {
        infallible(self.count_in(&PlainEq, x))
    }
    /// Python's `remove(x)` for `T: PartialEq`.
    fn remove(&self, x: &T) -> Result<(), Error>
    where
        T: PartialEq,
    {
        self.remove_in(&PlainEq, x)
    }
}

macro_rules! forward_sequence {
    ($List:ident, $($bound:tt)*) => {
        impl<T> Sequence<T> for $List<T>
        where
            T: Clone $($bound)*,
        {
            fn len(&self) -> usize {
                $List::len(self)
            }
            fn version(&self) -> u64 {
                $List::version(self)
            }
            fn is_frozen(&self) -> bool {
                $List::is_frozen(self)
            }
            fn freeze(&self) -> Result<(), Error> {
                $List::freeze(self)
            }
            fn get(&self, i: isize) -> Result<T, Error> {
                $List::get(self, i)
            }
            fn get_with<R>(&self, i: isize, f: impl FnOnce(&T) -> R) -> Result<R, Error> {
                $List::get_with(self, i, f)
            }
            fn snapshot(&self) -> Vec<T> {
                $List::snapshot(self)
            }
            fn get_slice(&self, s: Slice) -> Result<Vec<T>, Error> {
                $List::get_slice(self, s)
            }
            fn contains_in<M: EqModel<T>>(&self, m: &M, x: &T) -> Result<bool, Error<M::Error>> {
                $List::contains_in(self, m, x)
            }
            fn index_in<M: EqModel<T>>(
                &self,
                m: &M,
                x: &T,
                start: isize,
                stop: isize,
            ) -> Result<usize, Error<M::Error>> {
                $List::index_in(self, m, x, start, stop)
            }
            fn count_in<M: EqModel<T>>(&self, m: &M, x: &T) -> Result<usize, Error<M::Error>> {
                $List::count_in(self, m, x)
            }
            fn eq_in<M: EqModel<T>>(&self, m: &M, other: &Self) -> Result<bool, Error<M::Error>> {
                $List::eq_in(self, m, other)
            }
            fn compare_in<M: EqModel<T>>(
                &self,
                m: &M,
                other: &Self,
                cmp: impl FnMut(&T, &T) -> Result<Option<CmpOrdering>, M::Error>,
            ) -> Result<Option<CmpOrdering>, Error<M::Error>> {
                $List::compare_in(self, m, other, cmp)
            }
            fn copy(&self) -> Self {
                $List::copy(self)
            }
            fn concat(&self, other: &Self) -> Self {
                $List::concat(self, other)
            }
            fn repeat(&self, n: usize) -> Result<Self, Error> {
                $List::repeat(self, n)
            }
            fn append(&self, x: T) -> Result<(), Error> {
                $List::append(self, x)
            }
            fn extend<I: IntoIterator<Item = T>>(&self, items: I) -> Result<(), Error> {
                $List::extend(self, items)
            }
            fn insert(&self, i: isize, x: T) -> Result<(), Error> {
                $List::insert(self, i, x)
            }
            fn pop(&self) -> Result<T, Error> {
                $List::pop(self)
            }
            fn pop_at(&self, i: isize) -> Result<T, Error> {
                $List::pop_at(self, i)
            }
            fn set(&self, i: isize, x: T) -> Result<(), Error> {
                $List::set(self, i, x)
            }
            fn set_slice<I: IntoIterator<Item = T>>(&self, s: Slice, items: I) -> Result<(), Error> {
                $List::set_slice(self, s, items)
            }
            fn del_slice(&self, s: Slice) -> Result<(), Error> {
                $List::del_slice(self, s)
            }
            fn remove_in<M: EqModel<T>>(&self, m: &M, x: &T) -> Result<(), Error<M::Error>> {
                $List::remove_in(self, m, x)
            }
            fn sort_by_key<K, E>(
                &self,
                reverse: bool,
                key: impl FnMut(&T) -> Result<K, E>,
                less: impl FnMut(&K, &K) -> Result<bool, E>,
            ) -> Result<(), Error<E>> {
                $List::sort_by_key(self, reverse, key, less)
            }
            fn sort_by<E>(
                &self,
                reverse: bool,
                less: impl FnMut(&T, &T) -> Result<bool, E>,
            ) -> Result<(), Error<E>> {
                $List::sort_by(self, reverse, less)
            }
            fn sort(&self) -> Result<(), Error>
            where
                T: Ord,
            {
                $List::sort(self)
            }
            fn reverse(&self) -> Result<(), Error> {
                $List::reverse(self)
            }
            fn clear(&self) -> Result<(), Error> {
                $List::clear(self)
            }
            fn repeat_in_place(&self, n: usize) -> Result<(), Error> {
                $List::repeat_in_place(self, n)
            }
        }
    };
}

forward_sequence!(GilFreeList, + crate::Storable + Send + Sync + 'static);
forward_sequence!(LockedList,);
