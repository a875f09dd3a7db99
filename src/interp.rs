//! Interpreters and the hand-over of object trees between them.
//!
//! An [`Interpreter`] is an identity (and, optionally, its own GIL, one per interpreter as in
//! PEP 684). An [`Owned`] tree belongs to exactly one interpreter at a time; every access names
//! the interpreter making it and fails with [`Error::NotOwner`] from any other one. Handing the
//! tree over is one compare-and-swap on the tree's state word, whatever the size of the tree:
//! nothing is copied or serialized. Every handle taken before the hand-over becomes stale and
//! fails with [`Error::StaleHandle`]; the handle the hand-over consumes ends its borrows at
//! compile time. A frozen tree needs no owner: [`Owned::share`] freezes it
//! and returns a [`Shared`] handle that every interpreter may read at once.
//!
//! State word: owner id in the low 20 bits, a hand-over generation in the high 44. A handle
//! remembers the word it was issued under; an access compares one Acquire load against it. The
//! containers are `Sync`, so a racing access from a former owner is a logic error this module
//! reports, never undefined behaviour.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use crate::freeze::{freeze, Freeze};
use crate::Error;

const OWNER_BITS: u32 = 20;
const OWNER_MASK: u64 = (1 << OWNER_BITS) - 1;

/// The identity of an interpreter in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterpreterId(u64);

/// An interpreter: an identity plus its own GIL.
#[derive(Debug)]
pub struct Interpreter {
    id: InterpreterId,
    gil: Mutex<()>,
}

impl Interpreter {
    /// A new interpreter with a fresh identity.
    ///
    /// # Panics
    /// After 2^20 − 1 interpreters have been created in one process (the owner field width).
    pub fn new() -> Interpreter {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(id <= OWNER_MASK, "too many interpreters for one process");
        Interpreter {
            id: InterpreterId(id),
            gil: Mutex::new(()),
        }
    }

    /// This interpreter's identity.
    pub fn id(&self) -> InterpreterId {
        self.id
    }

    /// Takes this interpreter's own GIL (threads of other interpreters are not blocked).
    pub fn gil(&self) -> MutexGuard<'_, ()> {
        self.gil.lock()
    }
}

impl Default for Interpreter {
    fn default() -> Self {
        Interpreter::new()
    }
}

struct Tree<T> {
    /// Owner id (low bits) and hand-over generation (high bits).
    state: AtomicU64,
    value: T,
}

fn word(owner: InterpreterId, generation: u64) -> u64 {
    (generation << OWNER_BITS) | owner.0
}

/// A handle to a tree owned by one interpreter at a time. Cloning a handle is cheap (an `Arc`);
/// all clones go stale together at the next hand-over.
///
/// ```
/// use gilfree::{Error, Interpreter, LockedList, Owned};
///
/// let (a, b) = (Interpreter::new(), Interpreter::new());
/// let tree = Owned::new(&a, LockedList::from([1u64, 2, 3]));
/// tree.get(&a).unwrap().append(4).unwrap(); // A owns it: A mutates in place
/// assert_eq!(tree.get(&b).err(), Some(Error::NotOwner));
/// let cached_by_a = tree.clone();
///
/// let tree = tree.hand_over(&a, &b).unwrap(); // O(1): no copy, no serialization
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         let _gil = b.gil(); // B's own lock, if it has one
///         tree.get(&b).unwrap().append(5).unwrap();
///     });
/// });
/// assert_eq!(tree.get(&b).unwrap().snapshot(), vec![1, 2, 3, 4, 5]);
/// assert_eq!(cached_by_a.get(&a).err(), Some(Error::StaleHandle));
/// ```
pub struct Owned<T> {
    tree: Arc<Tree<T>>,
    issued: u64,
}

/// Shows the owner and whether this handle is still current (not the tree: reading it needs
/// the owner).
impl<T> std::fmt::Debug for Owned<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let now = self.tree.state.load(Ordering::Acquire);
        f.debug_struct("Owned")
            .field("owner", &InterpreterId(now & OWNER_MASK))
            .field("stale", &(now != self.issued))
            .finish_non_exhaustive()
    }
}

impl<T> Clone for Owned<T> {
    fn clone(&self) -> Self {
        Owned {
            tree: Arc::clone(&self.tree),
            issued: self.issued,
        }
    }
}

impl<T> Owned<T> {
    /// Puts `value` under the ownership of `owner`.
    pub fn new(owner: &Interpreter, value: T) -> Owned<T> {
        let issued = word(owner.id, 0);
        Owned {
            tree: Arc::new(Tree {
                state: AtomicU64::new(issued),
                value,
            }),
            issued,
        }
    }

    /// The interpreter that owns the tree now.
    pub fn owner(&self) -> InterpreterId {
        InterpreterId(self.tree.state.load(Ordering::Acquire) & OWNER_MASK)
    }

    fn check(&self, interp: &Interpreter) -> Result<(), Error> {
        let now = self.tree.state.load(Ordering::Acquire);
        if now == self.issued && now & OWNER_MASK == interp.id.0 {
            Ok(())
        } else if now != self.issued {
            Err(Error::StaleHandle)
        } else {
            Err(Error::NotOwner)
        }
    }

    /// The tree, for `interp`, which must own it through this (non-stale) handle.
    pub fn get(&self, interp: &Interpreter) -> Result<&T, Error> {
        self.check(interp)?;
        Ok(&self.tree.value)
    }

    /// Hands the tree from `from` to `to` in O(1): no copy, no serialization. Every existing
    /// handle goes stale; the returned handle is the new owner's.
    ///
    /// The handle is taken by value, so every reference the old owner obtained through it
    /// ([`get`](Self::get)) ends here, checked at compile time:
    ///
    /// ```compile_fail
    /// use gilfree::{Interpreter, LockedDict, Owned};
    /// let (a, b) = (Interpreter::new(), Interpreter::new());
    /// let tree = Owned::new(&a, LockedDict::<u64, u64>::new());
    /// let d = tree.get(&a).unwrap();
    /// let tree_b = tree.hand_over(&a, &b).unwrap();
    /// d.insert(1, 1).unwrap(); // error: `tree` was moved while `d` borrows it
    /// ```
    ///
    /// Clones of the handle are checked at run time: they fail with [`Error::StaleHandle`]
    /// from the hand-over on. On failure the handle comes back with the error.
    pub fn hand_over(
        self,
        from: &Interpreter,
        to: &Interpreter,
    ) -> Result<Owned<T>, HandOverError<T>> {
        if let Err(error) = self.check(from) {
            return Err(HandOverError {
                handle: self,
                error,
            });
        }
        let next = word(to.id, (self.issued >> OWNER_BITS) + 1);
        match self.tree.state.compare_exchange(
            self.issued,
            next,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(Owned {
                tree: self.tree,
                issued: next,
            }),
            // Someone else handed it over first (through a clone).
            Err(_) => Err(HandOverError {
                handle: self,
                error: Error::StaleHandle,
            }),
        }
    }

    /// Freezes the whole tree (see [`freeze`](crate::freeze())) and returns an owner-less
    /// handle that every interpreter may read at once. The owning handle goes stale.
    ///
    /// Like [`hand_over`](Self::hand_over) it takes the handle by value (the old owner's
    /// references end here); on failure the handle comes back with the error, and the tree is
    /// left as it was (freezing is all or nothing).
    pub fn share(self, owner: &Interpreter) -> Result<Shared<T>, HandOverError<T>>
    where
        T: Freeze,
    {
        if let Err(error) = self.check(owner) {
            return Err(HandOverError {
                handle: self,
                error,
            });
        }
        if let Err(error) = freeze(&self.tree.value) {
            return Err(HandOverError {
                handle: self,
                error,
            });
        }
        // Retire the ownership: owner 0 is no interpreter.
        let next = word(InterpreterId(0), (self.issued >> OWNER_BITS) + 1);
        match self.tree.state.compare_exchange(
            self.issued,
            next,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(Shared(self.tree)),
            Err(_) => Err(HandOverError {
                handle: self,
                error: Error::StaleHandle,
            }),
        }
    }
}

/// A failed [`Owned::hand_over`] or [`Owned::share`]: why, and the handle, given back.
pub struct HandOverError<T> {
    handle: Owned<T>,
    error: Error,
}

impl<T> HandOverError<T> {
    /// Why it failed: [`Error::NotOwner`] (`from` does not own the tree),
    /// [`Error::StaleHandle`] (the tree was handed over through another handle), or a freeze
    /// error for `share`.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The handle, as it was before the call.
    pub fn into_handle(self) -> Owned<T> {
        self.handle
    }
}

impl<T> std::fmt::Debug for HandOverError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandOverError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> std::fmt::Display for HandOverError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl<T> std::error::Error for HandOverError<T> {}

/// A frozen tree: no owner, readable by every interpreter at once.
pub struct Shared<T>(Arc<Tree<T>>);

impl<T> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<T> Shared<T> {
    /// The frozen tree (no owner check: frozen trees need none).
    pub fn get(&self) -> &T {
        &self.0.value
    }
}
