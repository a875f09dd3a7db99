//! The crate's error type: every failure is a value, never a panic.
//!
//! `Error<E>` carries the interpreter's own error type `E` for failing user callbacks (a script
//! `__hash__` or `__eq__` that raised). Plain Rust keys use `E = Infallible`, so the only
//! errors they can see are the container's own (frozen target, index out of range, ...).
//! Display strings mirror CPython's messages, since interpreters surface them to scripts.

use std::convert::Infallible;
use std::fmt;

/// Which kind of container an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    /// A dict (`LockedDict`, `GilFreeDict`).
    Dict,
    /// A list (`LockedList`, `GilFreeList`).
    List,
}

impl Container {
    fn name(self) -> &'static str {
        match self {
            Container::Dict => "dict",
            Container::List => "list",
        }
    }
}

/// An error from a container operation.
///
/// `E` is the error type of the interpreter's callbacks (hash, eq, key functions,
/// comparators); it is `Infallible` for plain Rust keys.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E = Infallible> {
    /// A user callback (hash, eq, key function, comparator) returned an error.
    Callback(E),
    /// The container is frozen: "cannot modify frozen dict" / "cannot modify frozen list".
    Frozen(Container),
    /// Script code kept mutating the dict while a lookup compared keys, and the lookup gave up
    /// after [`MAX_LOOKUP_RESTARTS`](crate::MAX_LOOKUP_RESTARTS) restarts.
    MutatedDuringLookup,
    /// An entry was added or removed while iterating: "dictionary changed size during iteration".
    ChangedSize,
    /// Keys were replaced (same size) while iterating: "dictionary keys changed during iteration".
    KeysChanged,
    /// A list was modified by a key function or comparator during `sort`.
    ModifiedDuringSort,
    /// An index was outside the container: "list index out of range".
    IndexOutOfRange,
    /// `pop` from an empty container: "pop from empty list", "popitem(): dictionary is empty".
    Empty(Container),
    /// `remove`/`index` of a value the list does not contain: "list.remove(x): x not in list".
    ValueNotFound,
    /// Extended-slice assignment of the wrong length.
    SliceLength {
        /// Length of the extended slice being assigned.
        slice: usize,
        /// Length of the sequence assigned to it.
        given: usize,
    },
    /// A slice step of zero: "slice step cannot be zero".
    ZeroStep,
    /// The calling thread already holds this container's lock (it is inside a `with_lock`,
    /// `upsert` or `compute` closure of the same container); waiting would deadlock.
    Reentrant(Container),
    /// The tree is owned by another interpreter.
    NotOwner,
    /// The handle is stale: the tree was handed over (or shared) since it was issued.
    StaleHandle,
    /// `freeze` met a value that cannot be frozen; nothing was frozen.
    Unfreezable {
        /// Where the value is, from the root: `root["config"][3]["handler"]`.
        path: String,
        /// The value's type, as its `Freeze::shape` named it.
        what: &'static str,
    },
    /// Writers kept changing the tree while `freeze` tried to commit; nothing was frozen.
    MutatedDuringFreeze,
    /// A size that cannot be allocated: a list repetition or reservation past memory's address
    /// space, or a dict reservation past 2^31 entries (Python's `MemoryError`).
    TooLarge,
}

impl<E> Error<E> {
    /// Converts the callback error with `f`, keeping every other variant.
    pub fn map_callback<F, G: FnOnce(E) -> F>(self, g: G) -> Error<F> {
        match self {
            Error::Callback(e) => Error::Callback(g(e)),
            Error::Frozen(c) => Error::Frozen(c),
            Error::MutatedDuringLookup => Error::MutatedDuringLookup,
            Error::ChangedSize => Error::ChangedSize,
            Error::KeysChanged => Error::KeysChanged,
            Error::ModifiedDuringSort => Error::ModifiedDuringSort,
            Error::IndexOutOfRange => Error::IndexOutOfRange,
            Error::Empty(c) => Error::Empty(c),
            Error::ValueNotFound => Error::ValueNotFound,
            Error::SliceLength { slice, given } => Error::SliceLength { slice, given },
            Error::ZeroStep => Error::ZeroStep,
            Error::Reentrant(c) => Error::Reentrant(c),
            Error::NotOwner => Error::NotOwner,
            Error::StaleHandle => Error::StaleHandle,
            Error::Unfreezable { path, what } => Error::Unfreezable { path, what },
            Error::MutatedDuringFreeze => Error::MutatedDuringFreeze,
            Error::TooLarge => Error::TooLarge,
        }
    }
}

impl Error<Infallible> {
    /// Widens an error of a plain-key operation to any callback error type.
    pub fn widen<E>(self) -> Error<E> {
        self.map_callback(|never| match never {})
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Callback(e) => e.fmt(f),
            Error::Frozen(c) => write!(f, "cannot modify frozen {}", c.name()),
            Error::MutatedDuringLookup => f.write_str("dict mutated during lookup"),
            Error::ChangedSize => f.write_str("dictionary changed size during iteration"),
            Error::KeysChanged => f.write_str("dictionary keys changed during iteration"),
            Error::ModifiedDuringSort => f.write_str("list modified during sort"),
            Error::IndexOutOfRange => f.write_str("list index out of range"),
            Error::Empty(Container::List) => f.write_str("pop from empty list"),
            Error::Empty(Container::Dict) => f.write_str("popitem(): dictionary is empty"),
            Error::ValueNotFound => f.write_str("list.remove(x): x not in list"),
            Error::SliceLength { slice, given } => write!(
                f,
                "attempt to assign sequence of size {given} to extended slice of size {slice}"
            ),
            Error::ZeroStep => f.write_str("slice step cannot be zero"),
            Error::Reentrant(c) => {
                write!(f, "{} accessed from inside its own locked update", c.name())
            }
            Error::NotOwner => f.write_str("object is owned by another interpreter"),
            Error::StaleHandle => {
                f.write_str("stale handle: the object was handed over to another interpreter")
            }
            Error::Unfreezable { path, what } => {
                write!(f, "cannot freeze {path}: {what} cannot be frozen")
            }
            Error::MutatedDuringFreeze => f.write_str("object tree mutated during freeze"),
            Error::TooLarge => f.write_str("too large to allocate"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for Error<E> {}

/// Result of a container operation with callback error type `E`.
pub type Result<T, E = Infallible> = std::result::Result<T, Error<E>>;
