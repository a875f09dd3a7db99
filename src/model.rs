//! The object-model traits: how a container hashes and compares the keys it holds.
//!
//! A container never calls `Hash`/`Eq` directly. Every keyed operation goes through a
//! [`KeyModel`], passed per call (`get_in(&vm, &key)`), so an interpreter can hand in its own
//! context (`&Vm`) and run script `__hash__`/`__eq__` that may fail with the interpreter's error
//! type, or re-enter the very container being searched.
//!
//! Plain Rust keys need no interpreter: the containers' plain methods (`get`, `insert`, ...)
//! use [`Plain`], which hashes with the container's `BuildHasher` and compares with `Eq`.
//!
//! Protocol obligations the containers keep (see the dict modules for how):
//! - `hash` is called once per operation, before any lock is taken;
//! - `identical` (Python's `is`) is tried before `eq`;
//! - `eq` runs under the container's lock only when `eq_is_pure` says it runs no script code;
//!   otherwise the lock is released around it and the lookup is validated afterwards.

use std::borrow::Borrow;
use std::convert::Infallible;
use std::hash::{BuildHasher, Hash};

/// The default hasher builder: foldhash's fast, randomly seeded hasher.
pub type DefaultHashBuilder = foldhash::fast::RandomState;

/// How a container compares values of type `K` (list `remove`/`index`/`count`, dict keys)
/// with a probe of type `Q` (by default `K` itself), on behalf of an interpreter.
///
/// Implement it on your interpreter's context (for example `impl EqModel<Value> for Vm`, and
/// `impl EqModel<Value, str> for Vm` to look keys up by a `&str` without building a `Value`).
/// The containers guarantee that a failing or panicking callback leaves them consistent and
/// usable, and that re-entrant calls from `eq` into the same container never deadlock.
pub trait EqModel<K: ?Sized, Q: ?Sized = K> {
    /// The interpreter's error type (a script exception).
    type Error;

    /// Compares a key stored in the container with the key being looked up
    /// (Python's `stored == probe`). May run script code unless [`eq_is_pure`](Self::eq_is_pure).
    fn eq(&self, stored: &K, probe: &Q) -> Result<bool, Self::Error>;

    /// Identity shortcut (Python's `is`): `true` means "the same object", hence equal, and
    /// `eq` is not called. The default never claims identity.
    fn identical(&self, stored: &K, probe: &Q) -> bool {
        let _ = (stored, probe);
        false
    }

    /// `true` when comparing these two keys runs no script code: no re-entry into any
    /// container, no unbounded work (str, int keys). The container may then call `eq` while
    /// holding its lock, which keeps the fast path fast. The default is `false` (safe).
    fn eq_is_pure(&self, stored: &K, probe: &Q) -> bool {
        let _ = (stored, probe);
        false
    }
}

/// How a container hashes and compares keys of type `K`, probed with a `Q` (by default `K`):
/// [`EqModel`] plus a fallible hash. A model that takes other probe types must hash a probe
/// exactly as it hashes the stored key it equals.
///
/// A tiny VM: its values are ints, strings and script objects whose `__eq__` runs script code
/// (and may raise); int and string keys compare purely, in place.
///
/// ```
/// use std::cell::Cell;
/// use std::hash::{BuildHasher, Hash, Hasher};
/// use std::sync::Arc;
/// use gilfree::{EqModel, Error, GilFreeDict, KeyModel};
///
/// #[derive(Clone, Debug, PartialEq)]
/// enum Value {
///     Int(i64),
///     Str(Arc<str>),
///     Object(Arc<i64>), // a script object; its __hash__ and __eq__ use its field
/// }
///
/// impl gilfree::Storable for Value {
///     type Storage = gilfree::storage::Boxed; // two words: boxed (see `storage`)
/// }
///
/// struct Vm {
///     hasher: foldhash::fast::FixedState,
///     raise_in_eq: Cell<bool>, // the script's __eq__ raises
/// }
///
/// impl EqModel<Value> for Vm {
///     type Error = String; // the script's exception
///
///     fn eq(&self, stored: &Value, probe: &Value) -> Result<bool, String> {
///         if self.raise_in_eq.get() {
///             return Err("ValueError in __eq__".to_string());
///         }
///         Ok(stored == probe) // for objects: the VM would run the script's __eq__ here
///     }
///
///     fn identical(&self, stored: &Value, probe: &Value) -> bool {
///         matches!((stored, probe), (Value::Object(a), Value::Object(b)) if Arc::ptr_eq(a, b))
///     }
///
///     fn eq_is_pure(&self, stored: &Value, probe: &Value) -> bool {
///         !matches!(stored, Value::Object(_)) && !matches!(probe, Value::Object(_))
///     }
/// }
///
/// impl KeyModel<Value> for Vm {
///     fn hash(&self, key: &Value) -> Result<u64, String> {
///         let mut h = self.hasher.build_hasher();
///         match key {
///             Value::Int(i) => i.hash(&mut h),
///             Value::Object(o) => o.hash(&mut h),
///             Value::Str(s) => s.hash(&mut h),
///         }
///         Ok(h.finish())
///     }
/// }
///
/// let vm = Vm { hasher: foldhash::fast::FixedState::with_seed(1), raise_in_eq: Cell::new(false) };
/// let d: GilFreeDict<Value, Value> = GilFreeDict::new();
/// d.insert_in(&vm, Value::Str("x".into()), Value::Int(1)).unwrap();
/// let obj = Value::Object(Arc::new(7));
/// d.insert_in(&vm, obj.clone(), Value::Int(2)).unwrap();
/// // An equal object: script `eq` runs, outside the dict's lock.
/// assert_eq!(d.get_in(&vm, &Value::Object(Arc::new(7))), Ok(Some(Value::Int(2))));
/// // A raising `__eq__` comes back as a value; the same object is found by identity.
/// vm.raise_in_eq.set(true);
/// let err = d.get_in(&vm, &Value::Object(Arc::new(7)));
/// assert_eq!(err, Err(Error::Callback("ValueError in __eq__".to_string())));
/// assert_eq!(d.get_in(&vm, &obj), Ok(Some(Value::Int(2))));
/// ```
pub trait KeyModel<K: ?Sized, Q: ?Sized = K>: EqModel<K, Q> {
    /// Hashes `key` (Python's `hash(key)`). Equal keys must hash equally.
    fn hash(&self, key: &Q) -> Result<u64, Self::Error>;
}

/// The model of plain Rust values: `BuildHasher` + `Eq`, infallible and pure. Like std's
/// `HashMap`, it looks a `K` up by any `Q` the key borrows as (`String` keys by `&str`).
///
/// For lists, which only compare, any `S` works (`Plain(&())`).
#[derive(Debug, Clone, Copy)]
pub struct Plain<'s, S>(pub &'s S);

impl<K, Q, S> KeyModel<K, Q> for Plain<'_, S>
where
    K: Borrow<Q> + ?Sized,
    Q: Hash + Eq + ?Sized,
    S: BuildHasher,
{
    #[inline]
    fn hash(&self, key: &Q) -> Result<u64, Infallible> {
        Ok(self.0.hash_one(key))
    }
}

impl<K, Q, S> EqModel<K, Q> for Plain<'_, S>
where
    K: Borrow<Q> + ?Sized,
    Q: Eq + ?Sized,
{
    type Error = Infallible;

    #[inline]
    fn eq(&self, stored: &K, probe: &Q) -> Result<bool, Infallible> {
        Ok(stored.borrow() == probe)
    }

    #[inline]
    fn eq_is_pure(&self, _: &K, _: &Q) -> bool {
        true
    }
}

/// Unwraps the result of an operation whose key model cannot fail.
///
/// Only called on operations that, with a pure infallible model, have no error path left (no
/// callback error, no restart because pure `eq` runs under the lock, no frozen check).
#[inline]
pub(crate) fn infallible<T>(r: crate::Result<T, Infallible>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => unreachable_plain(e),
    }
}

#[cold]
#[inline(never)]
fn unreachable_plain(e: crate::Error) -> ! {
    // Reaching this is a bug in this crate, not bad input: reads with a pure, infallible model
    // have no error path.
    unreachable!("plain-key read failed: {e}")
}
