//! The two lists and what they share.
//!
//! Both [`LockedList`] and [`GilFreeList`] keep Python list semantics and offer the same API
//! in two layers, like the dicts:
//! - `*_in(&model, ...)` methods (`remove_in`, `index_in`, `count_in`, `contains_in`,
//!   `eq_in`, `compare_in`) take an [`EqModel`](crate::EqModel): the interpreter's context,
//!   whose `eq` may fail, run script code and re-enter the very list being searched;
//! - plain methods (`remove`, `index`, `count`, `contains`, `==`, `<`) for `T: PartialEq`,
//!   generated below from the `*_in` layer with a pure `PartialEq` model (like
//!   [`Plain`](crate::Plain), which needs `Eq`; lists of floats work too).
//!
//! The [`Sequence`] trait lets a VM be generic over the variant.
//!
//! The semantics both lists share (indices, slices, script `eq`, sort, comparisons,
//! re-entrancy, freeze) are documented on [`Sequence`].

/// The list operations written once over each list's private `search`, `snapshot`, `len` and
/// `from_vec` (scans under the object model, comparisons, copies). Defined before the modules
/// that invoke it, so it is in their textual scope.
macro_rules! derived_list_api {
    ($List:ident, $($bound:tt)*) => {
        impl<T: Clone $($bound)*> $List<T> {
            /// Whether some item equals `x` under `m` (Python's `x in list`).
            pub fn contains_in<M: crate::EqModel<T>>(&self, m: &M, x: &T) -> Result<bool, crate::Error<M::Error>> {
                let found = self.search(m, x, 0, usize::MAX, crate::list::search::Want::First)?;
                Ok(found.first.is_some())
            }

            /// Python's `index(x, start, stop)` under `m`; [`Error::ValueNotFound`](crate::Error::ValueNotFound) if absent.
            /// Use `0, isize::MAX` for the whole list.
            pub fn index_in<M: crate::EqModel<T>>(
                &self,
                m: &M,
                x: &T,
                start: isize,
                stop: isize,
            ) -> Result<usize, crate::Error<M::Error>> {
                let len = self.len();
                let (start, stop) = (crate::list::scan_bound(start, len), crate::list::scan_bound(stop, len));
                self.search(m, x, start, stop, crate::list::search::Want::First)?
                    .first
                    .ok_or(crate::Error::ValueNotFound)
            }

            /// Number of items equal to `x` under `m`.
            pub fn count_in<M: crate::EqModel<T>>(&self, m: &M, x: &T) -> Result<usize, crate::Error<M::Error>> {
                Ok(self.search(m, x, 0, usize::MAX, crate::list::search::Want::All)?.count)
            }

            /// Python's `list == other` under `m`, over atomic snapshots of both lists.
            pub fn eq_in<M: crate::EqModel<T>>(&self, m: &M, other: &Self) -> Result<bool, crate::Error<M::Error>> {
                let (a, b) = (self.snapshot(), other.snapshot());
                crate::list::seq_eq(m, &a, &b)
            }

            /// Python's lexicographic comparison under `m`, over atomic snapshots: the first pair
            /// that is not equal (identity, then `eq`) is ordered by `cmp`; otherwise the lengths.
            /// `None` means unordered (as `partial_cmp`).
            pub fn compare_in<M: crate::EqModel<T>>(
                &self,
                m: &M,
                other: &Self,
                cmp: impl FnMut(&T, &T) -> Result<Option<std::cmp::Ordering>, M::Error>,
            ) -> Result<Option<std::cmp::Ordering>, crate::Error<M::Error>> {
                let (a, b) = (self.snapshot(), other.snapshot());
                crate::list::seq_compare(m, &a, &b, cmp)
            }

            /// Python's `list.copy()`: a new, mutable list with the same items (atomic snapshot).
            pub fn copy(&self) -> Self {
                Self::from_vec(self.snapshot())
            }

            /// Python's `self + other`: a new list.
            pub fn concat(&self, other: &Self) -> Self {
                let mut items = self.snapshot();
                items.extend(other.snapshot());
                Self::from_vec(items)
            }

            /// Python's `self * n`: a new list holding the items `n` times; [`Error::TooLarge`](crate::Error::TooLarge) if
            /// the length cannot be addressed (Python's `MemoryError`).
            pub fn repeat(&self, n: usize) -> Result<Self, crate::Error> {
                Ok(Self::from_vec(crate::list::repeated(&self.snapshot(), n)?))
            }
        }
    };
}

mod frozen;
mod gilfree;
mod iter;
mod locked;
mod search;
mod sequence;
mod slice;
mod sort;

pub use frozen::{FrozenList, FrozenListIter};
pub use gilfree::{GilFreeList, GilFreeListView, ListPin};
pub use iter::ListIter;
pub use locked::{ListReadGuard, LockedList, LockedListView};
pub use sequence::Sequence;
pub use slice::{Slice, SliceIndices};

use std::cmp::Ordering as CmpOrdering;
use std::convert::Infallible;

use crate::lookup::{quick_compare, Quick};
use crate::model::EqModel;
use crate::Error;

/// The model of the plain methods (`contains`, `index`, `count`, `remove`, `==`, `<`):
/// `PartialEq`, pure and infallible. Like [`Plain`](crate::Plain), which needs `Eq`; this one
/// also serves lists of floats.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlainEq;

impl<T: PartialEq> EqModel<T> for PlainEq {
    type Error = Infallible;

    #[inline]
    fn eq(&self, stored: &T, probe: &T) -> Result<bool, Infallible> {
        Ok(stored == probe)
    }

    #[inline]
    fn eq_is_pure(&self, _: &T, _: &T) -> bool {
        true
    }
}

/// Smallest non-empty array a list allocates.
pub(crate) const MIN_CAP: usize = 4;

/// Python's item index: `i` if `0 <= i < len`, `len + i` if `-len <= i < 0`.
#[inline]
pub(crate) fn item_index(i: isize, len: usize) -> Option<usize> {
    if i >= 0 {
        let i = i as usize;
        (i < len).then_some(i)
    } else {
        len.checked_sub(i.unsigned_abs())
    }
}

/// Python's `insert` index: negative counts from the end, then clamped to `0..=len`.
#[inline]
pub(crate) fn insert_index(i: isize, len: usize) -> usize {
    if i >= 0 {
        (i as usize).min(len)
    } else {
        len.saturating_sub(i.unsigned_abs())
    }
}

/// A bound of `index(x, start, stop)`: negative counts from the end, floored at 0. A positive
/// bound is not clamped to the length: like CPython, the scan checks the *current* length at
/// every step.
#[inline]
pub(crate) fn scan_bound(i: isize, len: usize) -> usize {
    if i >= 0 {
        i as usize
    } else {
        len.saturating_sub(i.unsigned_abs())
    }
}

/// New capacity when `need` items do not fit in `cap`: doubling keeps appends O(1) amortized.
#[inline]
pub(crate) fn grown_cap(cap: usize, need: usize) -> usize {
    need.max(cap.saturating_mul(2)).max(MIN_CAP)
}

/// Whether an array of `cap` slots holding `len` items should be replaced by a smaller one.
/// Shrinking at a quarter and halving keeps push/pop churn O(1) amortized (hysteresis).
#[inline]
pub(crate) fn should_shrink(len: usize, cap: usize) -> bool {
    cap > MIN_CAP && len < cap / 4
}

/// The capacity after shrinking to hold `len` items.
#[inline]
pub(crate) fn shrunk_cap(len: usize) -> usize {
    (len * 2).max(MIN_CAP)
}

/// Whether `a == b` under `m`: identity first, then `eq` (callers only pass values they own or
/// that no user code can free meanwhile).
#[inline]
pub(crate) fn model_eq<T, M: EqModel<T>>(m: &M, a: &T, b: &T) -> Result<bool, Error<M::Error>> {
    match quick_compare(m, a, b)? {
        Quick::Equal => Ok(true),
        Quick::NotEqual => Ok(false),
        Quick::Script => m.eq(a, b).map_err(Error::Callback),
    }
}

/// Python's list `==` over two snapshots.
pub(crate) fn seq_eq<T, M: EqModel<T>>(m: &M, a: &[T], b: &[T]) -> Result<bool, Error<M::Error>> {
    if a.len() != b.len() {
        return Ok(false);
    }
    for (x, y) in a.iter().zip(b) {
        if !model_eq(m, x, y)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Python's lexicographic list comparison over two snapshots: the first pair that is not
/// `==` decides through `cmp`; if one list is a prefix of the other, the lengths decide.
pub(crate) fn seq_compare<T, M: EqModel<T>>(
    m: &M,
    a: &[T],
    b: &[T],
    mut cmp: impl FnMut(&T, &T) -> Result<Option<CmpOrdering>, M::Error>,
) -> Result<Option<CmpOrdering>, Error<M::Error>> {
    for (x, y) in a.iter().zip(b) {
        if !model_eq(m, x, y)? {
            return cmp(x, y).map_err(Error::Callback);
        }
    }
    Ok(Some(a.len().cmp(&b.len())))
}

/// Applies the permutation `order` (a sort result: `new[i] = old[order[i]]`) in place.
pub(crate) fn permute<T>(v: &mut [T], order: &[usize]) {
    let mut done = vec![false; v.len()];
    for i in 0..v.len() {
        if done[i] {
            continue;
        }
        let mut j = i;
        loop {
            done[j] = true;
            let k = order[j];
            if k == i {
                break;
            }
            v.swap(j, k);
            j = k;
        }
    }
}

/// The items `items` repeated `n` times; `TooLarge` if the length overflows (or exceeds what
/// a `Vec` of `T` can address).
pub(crate) fn repeated<T: Clone>(items: &[T], n: usize) -> Result<Vec<T>, Error> {
    let total = repeat_len(items.len(), n, std::mem::size_of::<T>())?;
    // A panicking `Clone` leaves the clones made so far to the guard (dropped under the
    // drop-panic policy).
    let mut out = crate::cleanup::DropAll(Vec::new());
    // Python's MemoryError when the allocator refuses, instead of an abort.
    out.0
        .try_reserve_exact(total)
        .map_err(|_| Error::TooLarge)?;
    for _ in 0..n {
        out.0.extend_from_slice(items);
    }
    Ok(std::mem::take(&mut out.0))
}

/// The length of `len` items repeated `n` times, if an allocation of items of `item_size`
/// bytes each can hold it.
pub(crate) fn repeat_len(len: usize, n: usize, item_size: usize) -> Result<usize, Error> {
    let total = len.checked_mul(n).ok_or(Error::TooLarge)?;
    let bytes = total.checked_mul(item_size.max(1));
    match bytes {
        Some(b) if b <= isize::MAX as usize => Ok(total),
        _ => Err(Error::TooLarge),
    }
}

/// The plain layer of a list type: every method forwards to its `*_in` twin with
/// `PlainEq`, whose `eq` is `PartialEq` (pure and infallible, so it runs in place and never
/// needs a restart).
macro_rules! plain_list_api {
    ($List:ident, $($bound:tt)*) => {
        impl<T> $List<T>
        where
            T: Clone + PartialEq $($bound)*,
        {
            /// Whether the list contains `x` (Python's `x in list`).
            pub fn contains(&self, x: &T) -> bool {
                crate::model::infallible(self.contains_in(&crate::list::PlainEq, x))
            }

            /// Index of the first item equal to `x`; [`Error::ValueNotFound`](crate::Error::ValueNotFound) if none.
            pub fn index(&self, x: &T) -> crate::Result<usize> {
                self.index_in(&crate::list::PlainEq, x, 0, isize::MAX)
            }

            /// Python's `index(x, start, stop)`: negative bounds count from the end.
            pub fn index_range(&self, x: &T, start: isize, stop: isize) -> crate::Result<usize> {
                self.index_in(&crate::list::PlainEq, x, start, stop)
            }

            /// Number of items equal to `x`.
            pub fn count(&self, x: &T) -> usize {
                crate::model::infallible(self.count_in(&crate::list::PlainEq, x))
            }

            /// Removes the first item equal to `x`; [`Error::ValueNotFound`](crate::Error::ValueNotFound) if none.
            pub fn remove(&self, x: &T) -> crate::Result<()> {
                self.remove_in(&crate::list::PlainEq, x)
            }
        }

        /// Python's list `==` (over atomic snapshots of both lists).
        impl<T> PartialEq for $List<T>
        where
            T: Clone + PartialEq $($bound)*,
        {
            fn eq(&self, other: &Self) -> bool {
                crate::model::infallible(self.eq_in(&crate::list::PlainEq, other))
            }
        }

        impl<T> Eq for $List<T> where T: Clone + Eq $($bound)* {}

        /// Python's lexicographic list comparison (over atomic snapshots of both lists).
        impl<T> PartialOrd for $List<T>
        where
            T: Clone + PartialOrd $($bound)*,
        {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                crate::model::infallible(self.compare_in(&crate::list::PlainEq, other, |a, b| {
                    Ok(a.partial_cmp(b))
                }))
            }
        }

        impl<T> Default for $List<T>
        where
            T: Clone $($bound)*,
        {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<T> From<Vec<T>> for $List<T>
        where
            T: Clone $($bound)*,
        {
            fn from(items: Vec<T>) -> Self {
                Self::from_vec(items)
            }
        }

        impl<T, const N: usize> From<[T; N]> for $List<T>
        where
            T: Clone $($bound)*,
        {
            fn from(items: [T; N]) -> Self {
                Self::from_vec(Vec::from(items))
            }
        }

        /// `Extend` takes `&mut self`, so no other thread can hold the list and no closure of
        /// it can be running: the only way it fails is a frozen list, where it panics. The
        /// inherent `extend` (`&self`) returns that error instead.
        impl<T> Extend<T> for $List<T>
        where
            T: Clone $($bound)*,
        {
            fn extend<I: IntoIterator<Item = T>>(&mut self, items: I) {
                if let Err(e) = $List::extend(self, items) {
                    panic!("Extend on a list: {e}");
                }
            }
        }

        impl<T> FromIterator<T> for $List<T>
        where
            T: Clone $($bound)*,
        {
            fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
                Self::from_vec(iter.into_iter().collect())
            }
        }

        impl<T> Clone for $List<T>
        where
            T: Clone $($bound)*,
        {
            /// Same as [`copy`](Self::copy).
            fn clone(&self) -> Self {
                self.copy()
            }
        }

        impl<T> std::fmt::Debug for $List<T>
        where
            T: Clone + std::fmt::Debug $($bound)*,
        {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_list().entries(self.snapshot()).finish()
            }
        }

        impl<'l, T> IntoIterator for &'l $List<T>
        where
            T: Clone $($bound)*,
        {
            type Item = T;
            type IntoIter = ListIter<'l, T, $List<T>>;

            fn into_iter(self) -> Self::IntoIter {
                self.iter()
            }
        }
    };
}

plain_list_api!(GilFreeList, + crate::Storable + Send + Sync + 'static);
plain_list_api!(LockedList,);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices() {
        assert_eq!(item_index(0, 0), None);
        assert_eq!(item_index(2, 3), Some(2));
        assert_eq!(item_index(3, 3), None);
        assert_eq!(item_index(-1, 3), Some(2));
        assert_eq!(item_index(-3, 3), Some(0));
        assert_eq!(item_index(-4, 3), None);
        assert_eq!(item_index(isize::MIN, 3), None);
        assert_eq!(insert_index(-100, 3), 0);
        assert_eq!(insert_index(100, 3), 3);
        assert_eq!(insert_index(-1, 3), 2);
        assert_eq!(scan_bound(-1, 3), 2);
        assert_eq!(scan_bound(isize::MIN, 3), 0);
        assert_eq!(scan_bound(10, 3), 10);
    }

    #[test]
    fn permutation() {
        let mut v = vec!['a', 'b', 'c', 'd', 'e'];
        permute(&mut v, &[1, 2, 0, 4, 3]);
        assert_eq!(v, vec!['b', 'c', 'a', 'e', 'd']);
    }
}
