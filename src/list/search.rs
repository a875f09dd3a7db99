//! Searching a list for an item (`contains`, `index`, `count`, `remove`) when comparing may run
//! script code.
//!
//! A search compares in place, inside the list's critical section (`LockedList`: its lock;
//! `GilFreeList`: a pinned read that the list's version validates, or its writer lock), as
//! long as each comparison runs no script code (identity, a pure `eq`). At the first item that
//! needs script `eq` it clones the items still to be compared, in the same critical section,
//! leaves the section, and compares the clones with no lock or pin held ([`compare_rest`]).
//!
//! So every answer is the answer for the list as it was at one moment (linearizable): an item
//! that is in the list the whole time is never missed, however other threads (or the script
//! `eq` itself) shift the list meanwhile. CPython instead goes on at the next index of the list
//! as it is now, which skips an item whenever another thread removes one before it. The price
//! is one clone (a refcount increment for handles) per item after the first script comparison.
//! `remove` then re-checks its match under the lock (unchanged version, or the very object
//! still at that index) and starts over otherwise, at most
//! [`MAX_LOOKUP_RESTARTS`](crate::MAX_LOOKUP_RESTARTS) times.

use std::ops::Deref;

use crate::cleanup::DropAll;
use crate::lookup::{quick_compare, Quick};
use crate::model::EqModel;
use crate::Error;

/// What a search wants.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Want {
    /// The first match (`contains`, `index`, `remove`).
    First,
    /// Every match (`count`).
    All,
}

/// What a search found: the index of the first match, and how many matched (all of them for
/// [`Want::All`]; at most one for [`Want::First`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct Found {
    pub(crate) first: Option<usize>,
    pub(crate) count: usize,
}

impl Found {
    fn hit(&mut self, i: usize) {
        self.first.get_or_insert(i);
        self.count += 1;
    }
}

/// Outcome of the in-place part of a search.
pub(crate) enum InPlace<T> {
    /// Every item was compared in place.
    Done(Found),
    /// The item at `at` needs script `eq`: clones of the items from `at` on, to compare with
    /// [`compare_rest`] once the critical section is left, and what was found before `at`.
    Script {
        at: usize,
        rest: Vec<T>,
        found: Found,
    },
}

/// Compares `items` (the list's items from index `start` on, borrowed inside the critical
/// section) with `x` for as long as that runs no script code, then clones the rest.
pub(crate) fn in_place<T, R, M>(
    m: &M,
    x: &T,
    start: usize,
    items: impl IntoIterator<Item = R>,
    want: Want,
) -> Result<InPlace<T>, Error<M::Error>>
where
    T: Clone,
    R: Deref<Target = T>,
    M: EqModel<T>,
{
    let mut found = Found::default();
    let mut items = items.into_iter();
    let mut i = start;
    while let Some(item) = items.next() {
        match quick_compare(m, &*item, x)? {
            Quick::Equal => {
                found.hit(i);
                if want == Want::First {
                    return Ok(InPlace::Done(found));
                }
            }
            Quick::NotEqual => {}
            Quick::Script => {
                // Clones made one at a time into a guard: a panicking `Clone` drops the ones
                // made so far (under the drop-panic policy).
                let mut rest = DropAll(Vec::with_capacity(items.size_hint().0 + 1));
                rest.0.push((*item).clone());
                drop(item);
                for r in items {
                    rest.0.push((*r).clone());
                }
                return Ok(InPlace::Script {
                    at: i,
                    rest: std::mem::take(&mut rest.0),
                    found,
                });
            }
        }
        i += 1;
    }
    Ok(InPlace::Done(found))
}

/// The items that [`in_place`] cloned (starting at index `at`), compared with `x` outside
/// every lock and pin.
pub(crate) fn compare_rest<T, M>(
    m: &M,
    x: &T,
    at: usize,
    rest: Vec<T>,
    found: Found,
    want: Want,
) -> Result<Found, Error<M::Error>>
where
    M: EqModel<T>,
{
    // The clones are dropped under the drop-panic policy, also when `eq` fails.
    let rest = DropAll(rest);
    compare_clones(m, x, at, &rest.0, found, want)
}

fn compare_clones<T, M>(
    m: &M,
    x: &T,
    at: usize,
    rest: &[T],
    mut found: Found,
    want: Want,
) -> Result<Found, Error<M::Error>>
where
    M: EqModel<T>,
{
    for (k, item) in rest.iter().enumerate() {
        let equal = match quick_compare(m, item, x)? {
            Quick::Equal => true,
            Quick::NotEqual => false,
            Quick::Script => m.eq(item, x).map_err(Error::Callback)?,
        };
        if equal {
            found.hit(at + k);
            if want == Want::First {
                break;
            }
        }
    }
    Ok(found)
}

/// The first step of `remove`, taken under the list's writer lock.
pub(crate) enum RemoveScan<T> {
    /// A match found in place was removed.
    Removed,
    /// Nothing matches.
    NotFound,
    /// Script `eq` must decide: clones of the items from `at` on, and the list's version when
    /// they were taken.
    Script {
        at: usize,
        rest: Vec<T>,
        version: u64,
    },
}

impl<T> RemoveScan<T> {
    /// The outcome of an [`in_place`] search over the whole list for `remove`, whose match at
    /// an index (if any) the caller removes with `remove_at`.
    pub(crate) fn of(
        outcome: InPlace<T>,
        version: u64,
        remove_at: impl FnOnce(usize),
    ) -> RemoveScan<T> {
        match outcome {
            InPlace::Done(Found { first: Some(i), .. }) => {
                remove_at(i);
                RemoveScan::Removed
            }
            InPlace::Done(_) => RemoveScan::NotFound,
            InPlace::Script { at, rest, .. } => RemoveScan::Script { at, rest, version },
        }
    }
}

/// The rule of [`RemoveSteps::remove_confirmed`], under the writer lock: the item at the
/// matched index may be removed if the list is unchanged since the scan (`unchanged`: the
/// same items in the same places), or if the item now there (`now`, `None` if the index is
/// gone) is the very object that matched (the caller holds a clone of it: no ABA).
pub(crate) fn still_matched<T, M: EqModel<T>>(
    m: &M,
    unchanged: bool,
    now: Option<&T>,
    item: &T,
) -> bool {
    unchanged || now.is_some_and(|now| m.identical(now, item))
}

/// The list-specific steps that [`remove_in`] combines.
pub(crate) trait RemoveSteps<T> {
    /// Under the writer lock: searches the whole list in place, removing a match found there.
    fn remove_scan<M: EqModel<T>>(&self, m: &M, x: &T) -> Result<RemoveScan<T>, Error<M::Error>>;

    /// Under the writer lock: removes the item at `index` if the list is still as it was at
    /// `version`, or `item` (the very object that matched) is still at `index`; `false` if
    /// neither holds (or the index is gone).
    fn remove_confirmed<M: EqModel<T>>(
        &self,
        m: &M,
        index: usize,
        version: u64,
        item: &T,
    ) -> Result<bool, Error<M::Error>>;
}

/// Python's `remove(x)` over the two steps of a list (see the module docs).
pub(crate) fn remove_in<T, L, M>(list: &L, m: &M, x: &T) -> Result<(), Error<M::Error>>
where
    L: RemoveSteps<T>,
    M: EqModel<T>,
{
    let mut restarts = 0;
    loop {
        let (at, rest, version) = match list.remove_scan(m, x)? {
            RemoveScan::Removed => return Ok(()),
            RemoveScan::NotFound => return Err(Error::ValueNotFound),
            RemoveScan::Script { at, rest, version } => (at, rest, version),
        };
        let rest = DropAll(rest);
        let found = compare_clones(m, x, at, &rest.0, Found::default(), Want::First)?;
        // Nothing in the list as it was at `version` matches.
        let Some(index) = found.first else {
            return Err(Error::ValueNotFound);
        };
        if list.remove_confirmed(m, index, version, &rest.0[index - at])? {
            return Ok(());
        }
        crate::lookup::restart(&mut restarts)?;
    }
}
