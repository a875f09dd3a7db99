//! Tree-freeze: make every container reachable from a root immutable, all or nothing.
//!
//! The interpreter tells the walk what each value is through [`Freeze::shape`]: an immutable
//! leaf (str, int, None), a container of this crate to freeze (its dict or list), or a value
//! that cannot be frozen (a file object). [`freeze`] then works in two phases:
//!
//! 1. **Walk** (no container lock held across it; each container's children are read inside
//!    its own read section): breadth-first from the root with a memo of container identities
//!    (cycles and shared sub-trees are visited once: O(reachable objects)), recording each
//!    container's version tag. The first unfreezable value ends the walk with an error naming
//!    its path (`root["config"][3]["handler"]`); nothing has changed yet.
//! 2. **Commit**: take every container's lock in address order (with a timeout, so a writer
//!    that holds one container's lock while waiting for another cannot deadlock with the
//!    freezer: on timeout everything is released and the freeze retried). If no version moved
//!    since the walk, set every frozen flag. Otherwise walk again *under* the locks (reads of a
//!    locked container are served without locking it again): no locked container can change
//!    now, so that walk is authoritative — it fails with the path of an unfreezable value that
//!    a writer slipped in, retries if it reaches a container added meanwhile (not locked), and
//!    otherwise freezes exactly what it reached. Release. The freeze is linearizable with each
//!    container's writes: a writer lands before the commit (and was walked) or finds the flag
//!    and fails with `Frozen`; writers that keep mutating cannot starve it.
//!
//! A frozen container is `Send + Sync` and read through its `frozen()` view with no lock, no
//! atomic read-modify-write and no refcount traffic.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use crate::Error;

/// What a value is, for freezing.
pub enum Shape<'a, V> {
    /// An immutable value (str, int, None, a tuple of leaves): nothing to freeze.
    Leaf,
    /// A container of this crate; it is frozen and its children are walked.
    Container(&'a dyn Freezable<V>),
    /// A value that cannot be frozen; the name appears in the error.
    Unfreezable(&'static str),
}

impl<V> fmt::Debug for Shape<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Leaf => f.write_str("Leaf"),
            Shape::Container(_) => f.write_str("Container(..)"),
            Shape::Unfreezable(what) => f.debug_tuple("Unfreezable").field(what).finish(),
        }
    }
}

/// How an interpreter's value type takes part in tree-freeze. Opt-in per type: the default
/// `shape` says the value cannot be frozen.
pub trait Freeze: Clone {
    /// Leaf, container, or unfreezable.
    fn shape(&self) -> Shape<'_, Self> {
        Shape::Unfreezable(std::any::type_name::<Self>())
    }

    /// How the value appears in an error path when it is a dict key (Python's `repr`).
    fn repr(&self) -> String {
        String::from("<key>")
    }

    /// For [`frozen_copy`]: a new, mutable container of the same kind holding the same
    /// children (Python's `copy()`); `None` for values that are not copied (leaves are shared).
    fn shallow_copy(&self) -> Option<Self> {
        None
    }
}

/// One step of a path from the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A dict entry, by the `repr` of its key.
    Key(String),
    /// A list element, by index.
    Index(usize),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Key(k) => write!(f, "[{k}]"),
            Step::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A held container lock during the commit phase (opaque).
pub struct FreezeLock<'a>(#[allow(dead_code)] pub(crate) Held<'a>);

impl fmt::Debug for FreezeLock<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FreezeLock").finish_non_exhaustive()
    }
}

#[allow(dead_code)]
pub(crate) enum Held<'a> {
    Mutex(crate::sync::MutexGuard<'a, ()>),
}

impl<'a> FreezeLock<'a> {
    /// Takes a container's lock for the commit phase (one attempt, then a timed one);
    /// refuses a container whose lock this thread already holds.
    pub(crate) fn mutex(
        addr: usize,
        what: crate::Container,
        lock: &'a crate::bias::BiasedMutex,
        timeout: Duration,
    ) -> Result<Option<FreezeLock<'a>>, Error> {
        if crate::reentry::held_by_me(addr) {
            return Err(Error::Reentrant(what));
        }
        Ok(lock
            .try_lock_for(timeout)
            .map(|g| FreezeLock(Held::Mutex(g))))
    }
}

mod sealed {
    pub trait Sealed {}
}
pub(crate) use sealed::Sealed;

/// A container of this crate that [`freeze`] can freeze (sealed: the dicts and lists).
pub trait Freezable<V>: Sealed + Send + Sync {
    /// Whether the container is frozen.
    fn is_frozen(&self) -> bool;
    /// Calls `f` for every child value, in order, until it returns `false` (a consistent view
    /// is not needed: the commit phase re-checks versions).
    #[doc(hidden)]
    fn visit_children(&self, f: &mut dyn FnMut(&V) -> bool);
    /// The path step of the `index`-th child (in `visit_children` order), for error messages.
    #[doc(hidden)]
    fn child_step(&self, index: usize) -> Option<Step>;
    /// The container's version tag (changes on every mutation).
    #[doc(hidden)]
    fn version_tag(&self) -> u64;
    /// Takes the container's writer lock, giving up after `timeout`; refuses re-entry.
    #[doc(hidden)]
    fn lock_for_freeze(&self, timeout: Duration) -> Result<Option<FreezeLock<'_>>, Error>;
    /// Sets the frozen flag; `lock` is this container's lock.
    #[doc(hidden)]
    fn mark_frozen(&self, lock: &FreezeLock<'_>);
    /// Replaces each child for which `f` returns a new value, in place, keeping positions
    /// (used by `frozen_copy` on the fresh copies; no hashing, no user code but `f`).
    #[doc(hidden)]
    fn map_children(&self, f: &mut dyn FnMut(&V) -> Option<V>) -> Result<(), Error>;
}

/// How many times the commit phase is retried before `freeze` gives up.
const MAX_FREEZE_ATTEMPTS: usize = 64;

/// Freezes every container reachable from `root`, in place, all or nothing.
///
/// ```
/// use std::sync::Arc;
/// use gilfree::{freeze, Error, Freeze, GilFreeDict, GilFreeList, Shape};
///
/// #[derive(Clone)]
/// enum Value {
///     Int(i64),
///     List(Arc<GilFreeList<Value>>),
///     Dict(Arc<GilFreeDict<&'static str, Value>>),
/// }
/// impl gilfree::Storable for Value {
///     type Storage = gilfree::storage::Boxed;
/// }
/// impl Freeze for Value {
///     fn shape(&self) -> Shape<'_, Value> {
///         match self {
///             Value::Int(_) => Shape::Leaf,
///             Value::List(l) => Shape::Container(&**l),
///             Value::Dict(d) => Shape::Container(&**d),
///         }
///     }
/// }
///
/// let primes = Arc::new(GilFreeList::from([Value::Int(2), Value::Int(3), Value::Int(5)]));
/// let consts = Arc::new(GilFreeDict::from([("primes", Value::List(Arc::clone(&primes)))]));
/// freeze(&Value::Dict(Arc::clone(&consts))).unwrap();
///
/// // Every container reachable from the root is frozen...
/// assert!(consts.is_frozen() && primes.is_frozen());
/// assert_eq!(primes.append(Value::Int(7)), Err(Error::Frozen(gilfree::Container::List)));
/// // ...and its frozen views read with no lock, no pin and no refcount traffic.
/// let view = consts.frozen().unwrap();
/// let Some(Value::List(l)) = view.get("primes") else { unreachable!() };
/// let sum: i64 = l.frozen().unwrap().iter().map(|v| match v { Value::Int(i) => *i, _ => 0 }).sum();
/// assert_eq!(sum, 10);
/// ```
///
/// Errors: [`Error::Unfreezable`] with the path of the first value that cannot be frozen
/// (nothing was changed); [`Error::Reentrant`] when called from inside a closure that holds
/// one of the containers' locks; [`Error::MutatedDuringFreeze`] if writers kept changing the
/// tree through every retry.
pub fn freeze<V: Freeze>(root: &V) -> Result<(), Error> {
    for attempt in 0..MAX_FREEZE_ATTEMPTS {
        let first = walk(root)?;
        let Some(found) = first
            .containers
            .iter()
            .map(|(holder, version)| container_of(holder).map(|c| (c, *version)))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        // Lock in address order, each with a timeout (see the module docs).
        let mut order: Vec<usize> = (0..found.len()).collect();
        order.sort_unstable_by_key(|&i| identity(found[i].0));
        let timeout = Duration::from_millis(1 << attempt.min(6));
        let mut locks = Vec::with_capacity(order.len());
        for &i in &order {
            match found[i].0.lock_for_freeze(timeout)? {
                Some(lock) => locks.push((i, lock)),
                None => break,
            }
        }
        if locks.len() < found.len() {
            continue;
        }
        let stale = locks
            .iter()
            .any(|(i, _)| found[*i].0.version_tag() != found[*i].1);
        if !stale {
            for (i, lock) in &locks {
                found[*i].0.mark_frozen(lock);
            }
            return Ok(());
        }
        // Writers changed the tree between the walk and the locks. Walk again under the locks
        // (registered as held by this thread, so reads of a locked container are served
        // without locking it again): no locked container can change now, so this walk is
        // authoritative — unless it reaches a container that was added meanwhile and is not
        // locked, in which case we retry.
        let held =
            crate::reentry::HoldingMany::new(locks.iter().map(|(i, _)| identity(found[*i].0)));
        let again = walk(root);
        drop(held);
        let again = again?;
        let locked: HashMap<usize, usize> = locks
            .iter()
            .enumerate()
            .map(|(at, (i, _))| (identity(found[*i].0), at))
            .collect();
        let targets: Option<Vec<usize>> = again
            .containers
            .iter()
            .map(|(holder, _)| container_of(holder).and_then(|c| locked.get(&identity(c)).copied()))
            .collect();
        let Some(targets) = targets else {
            continue;
        };
        for at in targets {
            let (i, lock) = &locks[at];
            found[*i].0.mark_frozen(lock);
        }
        return Ok(());
    }
    Err(Error::MutatedDuringFreeze)
}

/// A frozen deep copy of the tree under `root`; the original stays mutable.
///
/// Every reachable container is copied once through [`Freeze::shallow_copy`] (so cycles and
/// shared sub-trees keep their shape in the copy), its children are pointed at the copies, and
/// the copy is frozen. Leaves are shared, not copied. Each container is copied atomically, the
/// tree as a whole is not (writers may run meanwhile). Fails like [`freeze`] on an unfreezable
/// value (nothing is copied), and with [`Error::Unfreezable`] naming a container whose
/// `shallow_copy` returned `None`.
pub fn frozen_copy<V: Freeze>(root: &V) -> Result<V, Error> {
    let walk = walk(root)?;
    let mut copies: std::collections::HashMap<usize, V> = std::collections::HashMap::new();
    for (original, _) in &walk.containers {
        let Some(c) = container_of(original) else {
            return Err(Error::MutatedDuringFreeze);
        };
        let copy = original.shallow_copy().ok_or(Error::Unfreezable {
            path: String::from("a container"),
            what: "a container whose Freeze::shallow_copy returns None",
        })?;
        copies.insert(identity(c), copy);
    }
    let redirect = |child: &V| match child.shape() {
        Shape::Container(c) => copies.get(&identity(c)).cloned(),
        _ => None,
    };
    for copy in copies.values() {
        if let Some(c) = container_of(copy) {
            c.map_children(&mut |child| redirect(child))?;
        }
    }
    let new_root = redirect(root).unwrap_or_else(|| root.clone());
    freeze(&new_root)?;
    Ok(new_root)
}

/// A container's identity: its address.
fn identity<V>(c: &dyn Freezable<V>) -> usize {
    c as *const dyn Freezable<V> as *const () as usize
}

/// The container inside a value recorded by the walk; `None` if its `shape` changed (then the
/// commit is retried with a fresh walk).
fn container_of<V: Freeze>(holder: &V) -> Option<&dyn Freezable<V>> {
    match holder.shape() {
        Shape::Container(c) => Some(c),
        _ => None,
    }
}

struct Walk<V> {
    /// A value holding each reachable container (kept alive), and the version seen before its
    /// children were visited.
    containers: Vec<(V, u64)>,
}

/// Phase 1: breadth-first walk over containers with a memo by identity; leaves are checked in
/// place (no clone, no allocation); fails at the first unfreezable value. Paths are rendered
/// only on failure, from (parent, child index) links.
fn walk<V: Freeze>(root: &V) -> Result<Walk<V>, Error> {
    let mut containers: Vec<(V, u64)> = Vec::new();
    // `origin[i]`: the container and child index through which `containers[i]` was found.
    let mut origin: Vec<Option<(usize, usize)>> = Vec::new();
    let mut seen: HashSet<usize> = HashSet::new();
    match root.shape() {
        Shape::Leaf => return Ok(Walk { containers }),
        Shape::Unfreezable(what) => {
            return Err(Error::Unfreezable {
                path: String::from("root"),
                what,
            })
        }
        Shape::Container(c) => {
            seen.insert(identity(c));
            containers.push((root.clone(), c.version_tag()));
            origin.push(None);
        }
    }
    let mut next = 0;
    while next < containers.len() {
        let Some(c) = container_of(&containers[next].0) else {
            return Err(Error::MutatedDuringFreeze);
        };
        let mut found = Vec::new();
        let mut failure = None;
        let mut index = 0;
        c.visit_children(&mut |child| {
            match child.shape() {
                Shape::Leaf => {}
                Shape::Unfreezable(what) => {
                    failure = Some((index, what));
                    return false;
                }
                Shape::Container(cc) => {
                    if seen.insert(identity(cc)) {
                        found.push((child.clone(), cc.version_tag(), index));
                    }
                }
            }
            index += 1;
            true
        });
        if let Some((index, what)) = failure {
            return Err(Error::Unfreezable {
                path: render_path(&containers, &origin, next, Some(index)),
                what,
            });
        }
        for (child, version, index) in found {
            containers.push((child, version));
            origin.push(Some((next, index)));
        }
        next += 1;
    }
    Ok(Walk { containers })
}

/// `root[..]..` down to container `at` (and its child `leaf`, if given).
fn render_path<V: Freeze>(
    containers: &[(V, u64)],
    origin: &[Option<(usize, usize)>],
    mut at: usize,
    leaf: Option<usize>,
) -> String {
    let step = |container: usize, index: usize| {
        container_of(&containers[container].0)
            .and_then(|c| c.child_step(index))
            .map_or_else(|| String::from("[?]"), |s| s.to_string())
    };
    let mut steps: Vec<String> = leaf.map(|i| step(at, i)).into_iter().collect();
    while let Some((parent, index)) = origin[at] {
        steps.push(step(parent, index));
        at = parent;
    }
    let mut out = String::from("root");
    for s in steps.iter().rev() {
        out.push_str(s);
    }
    out
}

/// Plain Rust values are immutable leaves (their `repr` is their `Debug` form).
macro_rules! leaf {
    ($($t:ty),*) => {$(
        impl Freeze for $t {
            fn shape(&self) -> Shape<'_, Self> {
                Shape::Leaf
            }

            fn repr(&self) -> String {
                format!("{self:?}")
            }
        }
    )*};
}

leaf!(
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    bool,
    char,
    f32,
    f64,
    ()
);
leaf!(String, &'static str, std::sync::Arc<str>, Box<str>);
