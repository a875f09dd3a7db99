//! Detection of a thread re-entering a container whose lock it already holds.
//!
//! User closures that run under a container's lock (`with_lock`, `upsert`, `compute`, `retain`, borrowed
//! reads of `LockedDict`) register the container here for their duration. A write from inside
//! such a closure to the same container would wait on a lock its own thread holds; it fails with
//! `Error::Reentrant` instead. Reads from inside are served without taking the lock again (the
//! thread's own lock already excludes every other writer).
//!
//! Nesting is shallow, so the registrations are a small vector; `freeze`, which holds the locks
//! of a whole tree at once, registers them as one set ([`HoldingMany`]).

use std::cell::{Cell, RefCell};
use std::collections::HashSet;

/// This thread's registrations, in one thread-local (in a shared library, such as a Python
/// extension, each access to a thread-local is a call: a borrowed read registers and
/// unregisters with one each).
struct Held {
    /// Registrations alive (`each` and `many`): the fast "none" check of every container call.
    any: Cell<usize>,
    /// Containers held by closures, innermost last.
    each: RefCell<Vec<usize>>,
    /// Containers held together by a freeze.
    many: RefCell<Option<HashSet<usize>>>,
}

#[cfg(not(gilfree_loom))]
std::thread_local! {
    static HELD: Held = const {
        Held {
            any: Cell::new(0),
            each: RefCell::new(Vec::new()),
            many: RefCell::new(None),
        }
    };
}

// Loom runs its model threads on one OS thread: their thread-locals must be loom's.
#[cfg(gilfree_loom)]
loom::thread_local! {
    static HELD: Held = Held {
        any: Cell::new(0),
        each: RefCell::new(Vec::new()),
        many: RefCell::new(None),
    };
}

/// Whether the current thread runs a closure under the lock of the container at `addr`.
#[inline]
pub(crate) fn held_by_me(addr: usize) -> bool {
    HELD.with(|h| h.any.get() != 0 && held_slow(h, addr))
}

#[cold]
fn held_slow(h: &Held, addr: usize) -> bool {
    h.each.borrow().contains(&addr) || h.many.borrow().as_ref().is_some_and(|m| m.contains(&addr))
}

/// Marks the container at `addr` as locked by this thread until dropped.
pub(crate) struct Holding(usize);

impl Holding {
    #[inline]
    pub(crate) fn new(addr: usize) -> Holding {
        HELD.with(|h| {
            h.each.borrow_mut().push(addr);
            h.any.set(h.any.get() + 1);
        });
        Holding(addr)
    }
}

impl Drop for Holding {
    #[inline]
    fn drop(&mut self) {
        HELD.with(|h| {
            let mut each = h.each.borrow_mut();
            // Registrations nest, so this one is the last, unless guards were dropped out of
            // order (`mem::drop` of an outer one).
            if each.last() == Some(&self.0) {
                each.pop();
            } else if let Some(i) = each.iter().rposition(|&a| a == self.0) {
                each.remove(i);
            }
            h.any.set(h.any.get() - 1);
        });
    }
}

/// Marks a set of containers as locked by this thread until dropped (one per thread at a time).
pub(crate) struct HoldingMany(());

impl HoldingMany {
    pub(crate) fn new(addrs: impl IntoIterator<Item = usize>) -> HoldingMany {
        let set = addrs.into_iter().collect();
        HELD.with(|h| {
            *h.many.borrow_mut() = Some(set);
            h.any.set(h.any.get() + 1);
        });
        HoldingMany(())
    }
}

impl Drop for HoldingMany {
    fn drop(&mut self) {
        HELD.with(|h| {
            *h.many.borrow_mut() = None;
            h.any.set(h.any.get() - 1);
        });
    }
}

#[cfg(all(test, not(gilfree_loom)))]
mod tests {
    use super::*;

    #[test]
    fn registrations_nest_and_may_end_out_of_order() {
        assert!(!held_by_me(1));
        let outer = Holding::new(1);
        let inner = Holding::new(2);
        let again = Holding::new(1);
        assert!(held_by_me(1) && held_by_me(2) && !held_by_me(3));
        drop(outer); // out of order: the innermost registration of 1 stays
        assert!(held_by_me(1) && held_by_me(2));
        drop(again);
        assert!(!held_by_me(1) && held_by_me(2));
        {
            let _tree = HoldingMany::new([3, 4]);
            assert!(held_by_me(3) && held_by_me(4) && held_by_me(2));
        }
        assert!(!held_by_me(3) && !held_by_me(4));
        drop(inner);
        assert!(!held_by_me(2));
        HELD.with(|h| assert_eq!((h.any.get(), h.each.borrow().len()), (0, 0)));
    }
}
