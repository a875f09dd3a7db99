//! Detection of a thread re-entering a container whose lock it already holds.
//!
//! User closures that run under a container's lock (`with_lock`, `update`, `retain`, borrowed
//! reads of `LockedDict`) register the container here for their duration. A write from inside
//! such a closure to the same container would wait on a lock its own thread holds; it fails with
//! `Error::Reentrant` instead. Reads from inside are served without taking the lock again (the
//! thread's own lock already excludes every other writer).

use std::cell::RefCell;

std::thread_local! {
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Whether the current thread runs a closure under the lock of the container at `addr`.
#[inline]
pub(crate) fn held_by_me(addr: usize) -> bool {
    HELD.with(|h| {
        let h = h.borrow();
        !h.is_empty() && h.contains(&addr)
    })
}

/// Marks the container at `addr` as locked by this thread until dropped.
pub(crate) struct Holding(usize);

impl Holding {
    pub(crate) fn new(addr: usize) -> Holding {
        HELD.with(|h| h.borrow_mut().push(addr));
        Holding(addr)
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|&a| a == self.0) {
                h.remove(i);
            }
        });
    }
}
