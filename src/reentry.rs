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

#[derive(Default)]
struct Held {
    /// Containers held by closures, innermost last.
    each: Vec<usize>,
    /// Containers held together by a freeze.
    many: Option<HashSet<usize>>,
}

#[cfg(not(gilfree_loom))]
std::thread_local! {
    static HELD: RefCell<Held> = const {
        RefCell::new(Held {
            each: Vec::new(),
            many: None,
        })
    };
    /// Registrations alive on this thread (a fast "none" check for every container call).
    static ANY: Cell<usize> = const { Cell::new(0) };
}

// Loom runs its model threads on one OS thread: their thread-locals must be loom's.
#[cfg(gilfree_loom)]
loom::thread_local! {
    static HELD: RefCell<Held> = RefCell::new(Held {
        each: Vec::new(),
        many: None,
    });
    static ANY: Cell<usize> = Cell::new(0);
}

/// Whether the current thread runs a closure under the lock of the container at `addr`.
#[inline]
pub(crate) fn held_by_me(addr: usize) -> bool {
    ANY.with(Cell::get) != 0 && held_slow(addr)
}

#[cold]
fn held_slow(addr: usize) -> bool {
    HELD.with(|h| {
        let h = h.borrow();
        h.each.contains(&addr) || h.many.as_ref().is_some_and(|m| m.contains(&addr))
    })
}

/// Marks the container at `addr` as locked by this thread until dropped.
pub(crate) struct Holding(usize);

impl Holding {
    pub(crate) fn new(addr: usize) -> Holding {
        HELD.with(|h| h.borrow_mut().each.push(addr));
        ANY.with(|n| n.set(n.get() + 1));
        Holding(addr)
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.each.iter().rposition(|&a| a == self.0) {
                h.each.remove(i);
            }
        });
        ANY.with(|n| n.set(n.get() - 1));
    }
}

/// Marks a set of containers as locked by this thread until dropped (one per thread at a time).
pub(crate) struct HoldingMany(());

impl HoldingMany {
    pub(crate) fn new(addrs: impl IntoIterator<Item = usize>) -> HoldingMany {
        HELD.with(|h| h.borrow_mut().many = Some(addrs.into_iter().collect()));
        ANY.with(|n| n.set(n.get() + 1));
        HoldingMany(())
    }
}

impl Drop for HoldingMany {
    fn drop(&mut self) {
        HELD.with(|h| h.borrow_mut().many = None);
        ANY.with(|n| n.set(n.get() - 1));
    }
}
