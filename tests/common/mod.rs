//! Shared test support for the dict test suites.
//!
//! - [`Obj`]: an interpreter-like object handle (an `Arc` with identity and a logical integer
//!   value), usable as a dict key or value.
//! - [`Vm`]: an interpreter context implementing [`EqModel`] + [`KeyModel`] for [`Obj`], whose
//!   hash and eq can be configured to fail after N calls, panic after N calls, count their calls,
//!   claim or deny purity and identity, and run an arbitrary hook inside `eq` (to re-enter and
//!   mutate the dict being searched).
//! - [`TestDict`] / [`PlainDict`]: one trait over `LockedDict` and `GilFreeDict`, so every test
//!   runs on both variants.
//! - [`Counted`] / [`Tracker`]: a value type that counts its live instances and detects double
//!   drops and reads of dropped values.
//! - helpers: a deadlock watchdog, env-configured proptest case counts and stress durations.
//!
//! Each test file includes this module separately and uses a different subset of it.
#![allow(dead_code)]

use std::cell::Cell;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use gilfree::{Dict, DictStore, EqModel, Error, GilFreeDict, KeyModel, LockedDict};
use indexmap::IndexMap;

// ---------------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------------

static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// An interpreter object handle: cloning is a refcount increment and keeps the identity;
/// `Obj::new` makes a fresh object (a new identity) even for an equal value.
#[derive(Clone)]
pub struct Obj(Arc<ObjData>);

// SAFETY: one `Arc` (a non-null pointer; the count lives on the heap).
unsafe impl gilfree::InlineWord for Obj {}

struct ObjData {
    val: u64,
    serial: u64,
}

impl Obj {
    /// A fresh object with logical value `val`.
    pub fn new(val: u64) -> Obj {
        Obj(Arc::new(ObjData {
            val,
            serial: NEXT_SERIAL.fetch_add(1, SeqCst),
        }))
    }

    /// The logical value (what `eq` and `hash` look at).
    pub fn val(&self) -> u64 {
        self.0.val
    }

    /// A number unique to this object (its identity, for assertions).
    pub fn serial(&self) -> u64 {
        self.0.serial
    }

    /// Python's `is`.
    pub fn is(&self, other: &Obj) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Value equality, like Python's `==` on ints (identity is [`Obj::is`]).
impl PartialEq for Obj {
    fn eq(&self, other: &Obj) -> bool {
        self.val() == other.val()
    }
}
impl Eq for Obj {}

impl Hash for Obj {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.val().hash(state)
    }
}

impl fmt::Debug for Obj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Obj({}#{})", self.val(), self.serial())
    }
}

// ---------------------------------------------------------------------------------------------
// The interpreter model
// ---------------------------------------------------------------------------------------------

/// A "script exception" raised by an injected hash/eq failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptError {
    /// `__hash__` raised on its `call`-th invocation (0-based, counted by the [`Vm`]).
    Hash { call: usize },
    /// `__eq__` raised on its `call`-th invocation.
    Eq { call: usize },
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScriptError::Hash { call } => write!(f, "injected __hash__ error (call {call})"),
            ScriptError::Eq { call } => write!(f, "injected __eq__ error (call {call})"),
        }
    }
}

/// How a [`Vm`] hashes an object's value.
#[derive(Debug, Clone, Copy)]
pub enum HashFn {
    /// `hash(v) == v`, like Python's small ints.
    Full,
    /// `hash(v) == v % m`: many collisions, long probe chains.
    Mod(u64),
    /// Every key has the same hash.
    Const(u64),
}

impl HashFn {
    pub fn apply(self, v: u64) -> u64 {
        match self {
            HashFn::Full => v,
            HashFn::Mod(m) => v % m,
            HashFn::Const(c) => c,
        }
    }
}

/// Code run inside `eq` (script `__eq__` re-entering the interpreter). It gets the model, the
/// stored key and the probe key.
pub type EqHook = Arc<dyn Fn(&Vm, &Obj, &Obj) + Send + Sync>;

const NEVER: usize = usize::MAX;

std::thread_local! {
    /// How deep this thread is inside eq hooks; hooks run only at depth 0, so the dict
    /// operations a hook performs (which call `eq` again) do not recurse into the hook.
    static HOOK_DEPTH: Cell<usize> = const { Cell::new(0) };
}

struct DepthGuard;

impl DepthGuard {
    fn enter() -> DepthGuard {
        HOOK_DEPTH.with(|d| d.set(d.get() + 1));
        DepthGuard
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        HOOK_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// An interpreter context: the [`KeyModel`] of [`Obj`] keys, with fault injection and counters.
///
/// Thresholds are absolute call indices: `fail_eq_after(n)` makes the next `n` eq calls
/// succeed and every later one fail.
pub struct Vm {
    hash_fn: HashFn,
    pure: AtomicBool,
    identity: AtomicBool,
    hash_calls: AtomicUsize,
    eq_calls: AtomicUsize,
    identical_calls: AtomicUsize,
    hash_fail_at: AtomicUsize,
    eq_fail_at: AtomicUsize,
    hash_panic_at: AtomicUsize,
    eq_panic_at: AtomicUsize,
    errors: AtomicUsize,
    hook: Mutex<Option<(EqHook, bool)>>,
}

impl Vm {
    /// A model hashing with `hash_fn`, impure eq (runs "script code"), identity shortcut on.
    pub fn new(hash_fn: HashFn) -> Vm {
        Vm {
            hash_fn,
            pure: AtomicBool::new(false),
            identity: AtomicBool::new(true),
            hash_calls: AtomicUsize::new(0),
            eq_calls: AtomicUsize::new(0),
            identical_calls: AtomicUsize::new(0),
            hash_fail_at: AtomicUsize::new(NEVER),
            eq_fail_at: AtomicUsize::new(NEVER),
            hash_panic_at: AtomicUsize::new(NEVER),
            eq_panic_at: AtomicUsize::new(NEVER),
            errors: AtomicUsize::new(0),
            hook: Mutex::new(None),
        }
    }

    /// Builder: whether `eq_is_pure` claims purity.
    pub fn with_pure(self, pure: bool) -> Vm {
        self.set_pure(pure);
        self
    }

    /// Builder: whether `identical` ever answers `true` (Python's `is`).
    pub fn with_identity(self, on: bool) -> Vm {
        self.identity.store(on, SeqCst);
        self
    }

    pub fn set_pure(&self, pure: bool) {
        self.pure.store(pure, SeqCst);
    }

    pub fn hash_fn(&self) -> HashFn {
        self.hash_fn
    }

    /// The next `n` hash calls succeed, every later one returns an error.
    pub fn fail_hash_after(&self, n: usize) {
        self.hash_fail_at
            .store(self.hash_calls.load(SeqCst).saturating_add(n), SeqCst);
    }

    /// The next `n` eq calls succeed, every later one returns an error.
    pub fn fail_eq_after(&self, n: usize) {
        self.eq_fail_at
            .store(self.eq_calls.load(SeqCst).saturating_add(n), SeqCst);
    }

    /// The next `n` hash calls succeed, every later one panics.
    pub fn panic_hash_after(&self, n: usize) {
        self.hash_panic_at
            .store(self.hash_calls.load(SeqCst).saturating_add(n), SeqCst);
    }

    /// The next `n` eq calls succeed, every later one panics.
    pub fn panic_eq_after(&self, n: usize) {
        self.eq_panic_at
            .store(self.eq_calls.load(SeqCst).saturating_add(n), SeqCst);
    }

    /// Removes every injected failure and panic.
    pub fn clear_faults(&self) {
        for t in [
            &self.hash_fail_at,
            &self.eq_fail_at,
            &self.hash_panic_at,
            &self.eq_panic_at,
        ] {
            t.store(NEVER, SeqCst);
        }
    }

    pub fn hash_calls(&self) -> usize {
        self.hash_calls.load(SeqCst)
    }

    pub fn eq_calls(&self) -> usize {
        self.eq_calls.load(SeqCst)
    }

    pub fn identical_calls(&self) -> usize {
        self.identical_calls.load(SeqCst)
    }

    /// How many injected errors were returned so far.
    pub fn errors(&self) -> usize {
        self.errors.load(SeqCst)
    }

    /// `(hash calls, eq calls)` so far, to diff around an operation.
    pub fn counts(&self) -> (usize, usize) {
        (self.hash_calls(), self.eq_calls())
    }

    /// Runs `hook` inside every top-level `eq` call (not inside the eq calls the hook's own
    /// dict operations make).
    pub fn set_hook(&self, hook: impl Fn(&Vm, &Obj, &Obj) + Send + Sync + 'static) {
        *self.hook.lock().unwrap_or_else(|e| e.into_inner()) = Some((Arc::new(hook), false));
    }

    /// Runs `hook` inside the next top-level `eq` call only.
    pub fn set_hook_once(&self, hook: impl Fn(&Vm, &Obj, &Obj) + Send + Sync + 'static) {
        *self.hook.lock().unwrap_or_else(|e| e.into_inner()) = Some((Arc::new(hook), true));
    }

    pub fn clear_hook(&self) {
        *self.hook.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Whether a hook is still installed (a one-shot hook is removed when it fires).
    pub fn hook_pending(&self) -> bool {
        self.hook
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    fn run_hook(&self, stored: &Obj, probe: &Obj) {
        if HOOK_DEPTH.with(|d| d.get()) > 0 {
            return;
        }
        let hook = {
            let mut slot = self.hook.lock().unwrap_or_else(|e| e.into_inner());
            match slot.as_ref() {
                None => None,
                Some((h, once)) => {
                    let h = Arc::clone(h);
                    if *once {
                        *slot = None;
                    }
                    Some(h)
                }
            }
        };
        if let Some(h) = hook {
            let _depth = DepthGuard::enter();
            h(self, stored, probe);
        }
    }
}

impl EqModel<Obj> for Vm {
    type Error = ScriptError;

    fn eq(&self, stored: &Obj, probe: &Obj) -> Result<bool, ScriptError> {
        let call = self.eq_calls.fetch_add(1, SeqCst);
        if call >= self.eq_panic_at.load(SeqCst) {
            panic!("injected panic in __eq__ (call {call})");
        }
        if call >= self.eq_fail_at.load(SeqCst) {
            self.errors.fetch_add(1, SeqCst);
            return Err(ScriptError::Eq { call });
        }
        self.run_hook(stored, probe);
        Ok(stored.val() == probe.val())
    }

    fn identical(&self, stored: &Obj, probe: &Obj) -> bool {
        self.identical_calls.fetch_add(1, SeqCst);
        self.identity.load(SeqCst) && stored.is(probe)
    }

    fn eq_is_pure(&self, _: &Obj, _: &Obj) -> bool {
        self.pure.load(SeqCst)
    }
}

impl KeyModel<Obj> for Vm {
    fn hash(&self, key: &Obj) -> Result<u64, ScriptError> {
        let call = self.hash_calls.fetch_add(1, SeqCst);
        if call >= self.hash_panic_at.load(SeqCst) {
            panic!("injected panic in __hash__ (call {call})");
        }
        if call >= self.hash_fail_at.load(SeqCst) {
            self.errors.fetch_add(1, SeqCst);
            return Err(ScriptError::Hash { call });
        }
        Ok(self.hash_fn.apply(key.val()))
    }
}

// ---------------------------------------------------------------------------------------------
// A colliding BuildHasher for plain keys
// ---------------------------------------------------------------------------------------------

/// `BuildHasher` whose hash of an integer key is `key % M` (long probe chains for plain keys).
#[derive(Debug, Clone, Copy, Default)]
pub struct ModBuild<const M: u64>;

/// The hasher of [`ModBuild`].
#[derive(Debug, Default)]
pub struct ModHasher<const M: u64>(u64);

impl<const M: u64> Hasher for ModHasher<M> {
    fn finish(&self) -> u64 {
        self.0 % M
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.wrapping_mul(31).wrapping_add(u64::from(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = self.0.wrapping_mul(31).wrapping_add(v);
    }
}

impl<const M: u64> BuildHasher for ModBuild<M> {
    type Hasher = ModHasher<M>;
    fn build_hasher(&self) -> ModHasher<M> {
        ModHasher(0)
    }
}

// ---------------------------------------------------------------------------------------------
// One trait over both dicts
// ---------------------------------------------------------------------------------------------

/// The dict API the tests drive generically, over `Dict<K, V, S, St>` for both stores (the
/// library itself is generic through the store parameter; this trait names the hasher too).
pub trait Mapping<K, V> {
    type Hasher: BuildHasher;
    fn plain(&self) -> gilfree::Plain<'_, Self::Hasher>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn version(&self) -> u64;
    fn is_frozen(&self) -> bool;
    fn freeze(&self) -> Result<(), Error>;
    fn reserve(&self, additional: usize) -> Result<(), Error>;
    fn get_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<Option<V>, Error<M::Error>>;
    fn get_with_in<M: KeyModel<K>, R>(
        &self,
        m: &M,
        key: &K,
        f: impl FnOnce(&V) -> R,
    ) -> Result<Option<R>, Error<M::Error>>;
    fn contains_key_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<bool, Error<M::Error>>;
    fn insert_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        value: V,
    ) -> Result<Option<V>, Error<M::Error>>;
    fn insert_ref_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: &K,
        value: V,
    ) -> Result<Option<V>, Error<M::Error>>;
    fn upsert_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        f: impl FnOnce(Option<&V>) -> V,
    ) -> Result<Option<V>, Error<M::Error>>;
    fn remove_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<Option<V>, Error<M::Error>>;
    fn setdefault_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        default: V,
    ) -> Result<V, Error<M::Error>>;
    fn popitem(&self) -> Result<Option<(K, V)>, Error>;
    fn clear(&self) -> Result<(), Error>;
    fn retain(&self, f: impl FnMut(&K, &V) -> bool) -> Result<(), Error>;
    fn snapshot(&self) -> Vec<(K, V)>;
    fn keys(&self) -> Vec<K>;
    fn values(&self) -> Vec<V>;
}

impl<K: Clone, V: Clone, S: BuildHasher, St: DictStore<K, V>> Mapping<K, V> for Dict<K, V, S, St> {
    type Hasher = S;
    fn plain(&self) -> gilfree::Plain<'_, S> {
        Dict::plain(self)
    }
    fn len(&self) -> usize {
        Dict::len(self)
    }
    fn version(&self) -> u64 {
        Dict::version(self)
    }
    fn reserve(&self, additional: usize) -> Result<(), Error> {
        Dict::reserve(self, additional)
    }
    fn is_frozen(&self) -> bool {
        Dict::is_frozen(self)
    }
    fn freeze(&self) -> Result<(), Error> {
        Dict::freeze(self)
    }
    fn get_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<Option<V>, Error<M::Error>> {
        Dict::get_in(self, m, key)
    }
    fn get_with_in<M: KeyModel<K>, R>(
        &self,
        m: &M,
        key: &K,
        f: impl FnOnce(&V) -> R,
    ) -> Result<Option<R>, Error<M::Error>> {
        Dict::get_with_in(self, m, key, f)
    }
    fn contains_key_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<bool, Error<M::Error>> {
        Dict::contains_key_in(self, m, key)
    }
    fn insert_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        value: V,
    ) -> Result<Option<V>, Error<M::Error>> {
        Dict::insert_in(self, m, key, value)
    }
    fn insert_ref_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: &K,
        value: V,
    ) -> Result<Option<V>, Error<M::Error>> {
        Dict::insert_ref_in(self, m, key, value)
    }
    fn upsert_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        f: impl FnOnce(Option<&V>) -> V,
    ) -> Result<Option<V>, Error<M::Error>> {
        Dict::upsert_in(self, m, key, f)
    }
    fn remove_in<M: KeyModel<K>>(&self, m: &M, key: &K) -> Result<Option<V>, Error<M::Error>> {
        Dict::remove_in(self, m, key)
    }
    fn setdefault_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: K,
        default: V,
    ) -> Result<V, Error<M::Error>> {
        Dict::setdefault_in(self, m, key, default)
    }
    fn popitem(&self) -> Result<Option<(K, V)>, Error> {
        Dict::popitem(self)
    }
    fn clear(&self) -> Result<(), Error> {
        Dict::clear(self)
    }
    fn retain(&self, f: impl FnMut(&K, &V) -> bool) -> Result<(), Error> {
        Dict::retain(self, f)
    }
    fn snapshot(&self) -> Vec<(K, V)> {
        Dict::snapshot(self)
    }
    fn keys(&self) -> Vec<K> {
        Dict::keys(self)
    }
    fn values(&self) -> Vec<V> {
        Dict::values(self)
    }
}

/// What differs between the two stores, for the tests.
pub trait Variant<K, V>: DictStore<K, V> + Send + Sync + Sized + 'static {
    /// "LockedDict" or "GilFreeDict", for assertion messages.
    const NAME: &'static str;
    /// Whether readers run without the dict's lock (`GilFreeDict`).
    const LOCK_FREE_READS: bool;
    /// See [`PlainDict::borrowed_reads`].
    fn borrowed_reads<S: BuildHasher>(
        d: &Dict<K, V, S, Self>,
        keys: &[K],
        on_get: &mut dyn FnMut(&K, Option<&V>),
        on_entry: &mut dyn FnMut(&K, &V),
    ) where
        K: Hash + Eq + Clone,
        V: Clone;
}

impl<K, V> Variant<K, V> for gilfree::LockedStore<K, V>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    const NAME: &'static str = "LockedDict";
    const LOCK_FREE_READS: bool = false;
    fn borrowed_reads<S: BuildHasher>(
        d: &Dict<K, V, S, Self>,
        keys: &[K],
        on_get: &mut dyn FnMut(&K, Option<&V>),
        on_entry: &mut dyn FnMut(&K, &V),
    ) where
        K: Hash + Eq + Clone,
        V: Clone,
    {
        for k in keys {
            if d.get_with(k, |v| on_get(k, Some(v))).is_none() {
                on_get(k, None);
            }
        }
        d.with_lock(|view| view.for_each(|k, v| on_entry(k, v)))
            .expect("with_lock on a dict that is not frozen");
    }
}

impl<K, V> Variant<K, V> for gilfree::GilFreeStore<K, V>
where
    K: Clone + Send + Sync + 'static,
    V: gilfree::Storable + Clone + Send + Sync + 'static,
{
    const NAME: &'static str = "GilFreeDict";
    const LOCK_FREE_READS: bool = true;
    fn borrowed_reads<S: BuildHasher>(
        d: &Dict<K, V, S, Self>,
        keys: &[K],
        on_get: &mut dyn FnMut(&K, Option<&V>),
        on_entry: &mut dyn FnMut(&K, &V),
    ) where
        K: Hash + Eq + Clone,
        V: Clone,
    {
        let pinned = d.pin();
        for k in keys {
            on_get(k, pinned.get(k).as_deref());
        }
        for (k, v) in pinned.iter() {
            on_entry(k, &v);
        }
    }
}

/// The dict API the tests need beyond [`Mapping`], implemented for both variants.
pub trait TestDict<K, V>: Mapping<K, V> + Send + Sync + Sized + 'static {
    /// "LockedDict" or "GilFreeDict", for assertion messages.
    const NAME: &'static str;
    /// Whether readers run without the dict's lock (`GilFreeDict`).
    const LOCK_FREE_READS: bool;

    fn make(hasher: Self::Hasher) -> Self;
    fn make_with_capacity(capacity: usize, hasher: Self::Hasher) -> Self;
    fn copy(&self) -> Self;
    fn iter(&self) -> Box<dyn DoubleEndedIterator<Item = (K, V)> + '_>;
    fn items(&self) -> Vec<(K, V)>;
    fn iter_checked(&self) -> Box<dyn Iterator<Item = gilfree::Result<(K, V)>> + '_>;
    fn remove_entry_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: &K,
    ) -> Result<Option<(K, V)>, Error<M::Error>>;
}

/// Plain-key methods (`K: Hash + Eq`) that are not part of [`Mapping`].
pub trait PlainDict<K, V>: TestDict<K, V> {
    fn get(&self, key: &K) -> Option<V>;
    fn get_with<R>(&self, key: &K, f: impl FnOnce(&V) -> R) -> Option<R>;
    fn contains_key(&self, key: &K) -> bool;
    fn insert(&self, key: K, value: V) -> gilfree::Result<Option<V>>;
    fn insert_ref(&self, key: &K, value: V) -> gilfree::Result<Option<V>>;
    fn remove(&self, key: &K) -> gilfree::Result<Option<V>>;
    fn remove_entry(&self, key: &K) -> gilfree::Result<Option<(K, V)>>;
    fn pop_or(&self, key: &K, default: V) -> gilfree::Result<V>;
    fn setdefault(&self, key: K, default: V) -> gilfree::Result<V>;
    fn upsert(&self, key: K, f: impl FnOnce(Option<&V>) -> V) -> gilfree::Result<()>;
    fn extend(&self, pairs: impl IntoIterator<Item = (K, V)>) -> gilfree::Result<()>;
    fn union(&self, other: &Self) -> Self;
    fn update_from(&self, other: &Self) -> gilfree::Result<()>;
    fn fromkeys(keys: impl IntoIterator<Item = K>, value: V) -> Self
    where
        Self::Hasher: Default;
    fn dict_eq(&self, other: &Self) -> bool
    where
        V: PartialEq;
    /// Borrowed reads without refcount traffic, in one read session: each of `keys` goes to
    /// `on_get`, then every entry (in order) to `on_entry`. `GilFreeDict`: one `pin()` for the
    /// whole batch (`Pinned::get`, `Pinned::iter`); `LockedDict`: `get_with`, then `with_lock`.
    fn borrowed_reads(
        &self,
        keys: &[K],
        on_get: &mut dyn FnMut(&K, Option<&V>),
        on_entry: &mut dyn FnMut(&K, &V),
    );
}

impl<K, V, S, St> TestDict<K, V> for Dict<K, V, S, St>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
    St: Variant<K, V>,
{
    const NAME: &'static str = St::NAME;
    const LOCK_FREE_READS: bool = St::LOCK_FREE_READS;

    fn make(hasher: S) -> Self {
        Dict::with_hasher(hasher)
    }
    fn make_with_capacity(capacity: usize, hasher: S) -> Self {
        Dict::with_capacity_and_hasher(capacity, hasher)
    }
    fn copy(&self) -> Self {
        Dict::copy(self)
    }
    fn iter(&self) -> Box<dyn DoubleEndedIterator<Item = (K, V)> + '_> {
        Box::new(Dict::iter(self))
    }
    fn items(&self) -> Vec<(K, V)> {
        Dict::items(self)
    }
    fn iter_checked(&self) -> Box<dyn Iterator<Item = gilfree::Result<(K, V)>> + '_> {
        Box::new(Dict::iter_checked(self))
    }
    fn remove_entry_in<M: KeyModel<K>>(
        &self,
        m: &M,
        key: &K,
    ) -> Result<Option<(K, V)>, Error<M::Error>> {
        Dict::remove_entry_in(self, m, key)
    }
}

impl<K, V, S, St> PlainDict<K, V> for Dict<K, V, S, St>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
    St: Variant<K, V>,
{
    fn get(&self, key: &K) -> Option<V> {
        Dict::get(self, key)
    }
    fn get_with<R>(&self, key: &K, f: impl FnOnce(&V) -> R) -> Option<R> {
        Dict::get_with(self, key, f)
    }
    fn contains_key(&self, key: &K) -> bool {
        Dict::contains_key(self, key)
    }
    fn insert(&self, key: K, value: V) -> gilfree::Result<Option<V>> {
        Dict::insert(self, key, value)
    }
    fn insert_ref(&self, key: &K, value: V) -> gilfree::Result<Option<V>> {
        Dict::insert_ref(self, key, value)
    }
    fn remove(&self, key: &K) -> gilfree::Result<Option<V>> {
        Dict::remove(self, key)
    }
    fn remove_entry(&self, key: &K) -> gilfree::Result<Option<(K, V)>> {
        Dict::remove_entry(self, key)
    }
    fn pop_or(&self, key: &K, default: V) -> gilfree::Result<V> {
        Dict::pop_or(self, key, default)
    }
    fn setdefault(&self, key: K, default: V) -> gilfree::Result<V> {
        Dict::setdefault(self, key, default)
    }
    fn upsert(&self, key: K, f: impl FnOnce(Option<&V>) -> V) -> gilfree::Result<()> {
        Dict::upsert(self, key, f)
    }
    fn extend(&self, pairs: impl IntoIterator<Item = (K, V)>) -> gilfree::Result<()> {
        Dict::extend(self, pairs)
    }
    fn union(&self, other: &Self) -> Self {
        Dict::union(self, other)
    }
    fn update_from(&self, other: &Self) -> gilfree::Result<()> {
        Dict::update_from(self, other)
    }
    fn fromkeys(keys: impl IntoIterator<Item = K>, value: V) -> Self
    where
        S: Default,
    {
        Dict::fromkeys(keys, value)
    }
    fn dict_eq(&self, other: &Self) -> bool
    where
        V: PartialEq,
    {
        self == other
    }
    fn borrowed_reads(
        &self,
        keys: &[K],
        on_get: &mut dyn FnMut(&K, Option<&V>),
        on_entry: &mut dyn FnMut(&K, &V),
    ) {
        St::borrowed_reads(self, keys, on_get, on_entry)
    }
}

/// The two variants with the default hasher.
pub type Locked<K, V> = LockedDict<K, V>;
/// See [`Locked`].
pub type GilFree<K, V> = GilFreeDict<K, V>;

/// A fresh dict of type `D` with a default-constructed hasher.
pub fn new_dict<K, V, D: TestDict<K, V>>() -> D
where
    D::Hasher: Default,
{
    D::make(Default::default())
}

// ---------------------------------------------------------------------------------------------
// The model of a dict of interpreter keys
// ---------------------------------------------------------------------------------------------

/// The model of a dict with [`Obj`] keys: key value -> (the stored key object, value).
/// `IndexMap::insert` on an existing key keeps the position, like the dicts; the stored key
/// object must be kept too, so overwrite through `get_mut`.
pub type ObjModel = IndexMap<u64, (Obj, u64)>;

/// A comparable view of an entry: (key value, key identity, value).
pub type Seen = (u64, u64, u64);

pub fn seen(k: &Obj, v: u64) -> Seen {
    (k.val(), k.serial(), v)
}

pub fn model_items(model: &ObjModel) -> Vec<Seen> {
    model.values().map(|(k, v)| seen(k, *v)).collect()
}

pub fn dict_items<D: TestDict<Obj, u64>>(d: &D) -> Vec<Seen> {
    d.items().iter().map(|(k, v)| seen(k, *v)).collect()
}

/// Asserts that `d` holds exactly the model's entries, key objects and order.
pub fn assert_obj_state<D: TestDict<Obj, u64>>(d: &D, model: &ObjModel, ctx: &str) {
    let want = model_items(model);
    assert_eq!(
        dict_items(d),
        want,
        "{ctx}: items (key, key identity, value)"
    );
    let snap: Vec<Seen> = d.snapshot().iter().map(|(k, v)| seen(k, *v)).collect();
    assert_eq!(snap, want, "{ctx}: snapshot");
    assert_eq!(d.len(), model.len(), "{ctx}: len");
}

/// Python's `model[k] = v` on the model (keeps the stored key object on overwrite).
pub fn model_insert(model: &mut ObjModel, key: &Obj, v: u64) -> Option<u64> {
    match model.get_mut(&key.val()) {
        Some(e) => Some(std::mem::replace(&mut e.1, v)),
        None => {
            model.insert(key.val(), (key.clone(), v));
            None
        }
    }
}

/// A dict of type `D` (default hasher) holding `entries` inserted through `vm`, and its model.
pub fn obj_dict<D: TestDict<Obj, u64>>(vm: &Vm, entries: &[(u64, u64)]) -> (D, ObjModel)
where
    D::Hasher: Default,
{
    let d = D::make(Default::default());
    let mut model = ObjModel::new();
    for &(k, v) in entries {
        let key = Obj::new(k);
        assert_eq!(
            d.insert_in(vm, key.clone(), v),
            Ok(model_insert(&mut model, &key, v))
        );
    }
    (d, model)
}

// ---------------------------------------------------------------------------------------------
// Values that count themselves
// ---------------------------------------------------------------------------------------------

const ALIVE: u64 = 0xA11C_E5A1_1CE5_A11C;
const DEAD: u64 = 0xDEAD_DEAD_DEAD_DEAD;
/// Multiplier of the self-check word of [`Counted`] (value == key * P + generation).
pub const MIX: u64 = 1_000_003;

/// Counts the live [`Counted`] values of one test.
#[derive(Debug, Default)]
pub struct Tracker {
    created: AtomicUsize,
    dropped: AtomicUsize,
    double_drops: AtomicUsize,
}

impl Tracker {
    pub fn new() -> Arc<Tracker> {
        Arc::new(Tracker::default())
    }
    pub fn created(&self) -> usize {
        self.created.load(SeqCst)
    }
    pub fn dropped(&self) -> usize {
        self.dropped.load(SeqCst)
    }
    /// Values created (including clones) minus values dropped.
    pub fn live(&self) -> isize {
        self.created() as isize - self.dropped() as isize
    }
    pub fn double_drops(&self) -> usize {
        self.double_drops.load(SeqCst)
    }
}

/// A value that encodes its key and a generation (`mix == key * MIX + gen`), carries a
/// heap-allocated copy, counts its instances in a [`Tracker`], and detects being dropped twice
/// or read after its drop (best effort: the magic word is overwritten on drop).
pub struct Counted {
    magic: u64,
    key: u64,
    gen: u64,
    mix: u64,
    boxed: Box<[u64; 2]>,
    tracker: Arc<Tracker>,
}

impl gilfree::Storable for Counted {
    type Storage = gilfree::storage::Boxed;
}

impl Counted {
    pub fn new(tracker: &Arc<Tracker>, key: u64, gen: u64) -> Counted {
        tracker.created.fetch_add(1, SeqCst);
        Counted {
            magic: ALIVE,
            key,
            gen,
            mix: key.wrapping_mul(MIX).wrapping_add(gen),
            boxed: Box::new([key, gen]),
            tracker: Arc::clone(tracker),
        }
    }

    pub fn key(&self) -> u64 {
        self.key
    }

    pub fn gen(&self) -> u64 {
        self.gen
    }

    /// Panics unless the value is alive, untorn, and encodes `key`.
    pub fn check(&self, key: u64) {
        assert_eq!(self.magic, ALIVE, "read a dropped value (key {key})");
        assert_eq!(
            self.key, key,
            "value of key {} found under key {key}",
            self.key
        );
        assert_eq!(
            self.mix,
            self.key.wrapping_mul(MIX).wrapping_add(self.gen),
            "torn value under key {key}"
        );
        assert_eq!(
            *self.boxed,
            [self.key, self.gen],
            "torn boxed value under key {key}"
        );
    }
}

impl Clone for Counted {
    fn clone(&self) -> Counted {
        assert_eq!(self.magic, ALIVE, "cloned a dropped value");
        self.tracker.created.fetch_add(1, SeqCst);
        Counted {
            magic: ALIVE,
            key: self.key,
            gen: self.gen,
            mix: self.mix,
            boxed: self.boxed.clone(),
            tracker: Arc::clone(&self.tracker),
        }
    }
}

impl PartialEq for Counted {
    fn eq(&self, other: &Counted) -> bool {
        (self.key, self.gen) == (other.key, other.gen)
    }
}

impl fmt::Debug for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counted({}, gen {})", self.key, self.gen)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if self.magic != ALIVE {
            self.tracker.double_drops.fetch_add(1, SeqCst);
            return;
        }
        self.magic = DEAD;
        self.tracker.dropped.fetch_add(1, SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// Harness helpers
// ---------------------------------------------------------------------------------------------

/// Runs `body` on its own thread and fails the test if it does not finish within `secs`
/// seconds (a deadlock fails instead of hanging). A panic in `body` is re-raised here.
pub fn watchdog<F: FnOnce() + Send + 'static>(name: &str, secs: u64, body: F) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(format!("watchdog:{name}"))
        .spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(body));
            let _ = tx.send(result);
        })
        .expect("spawn test thread");
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(())) => handle.join().expect("test thread"),
        Ok(Err(panic)) => resume_unwind(panic),
        Err(_) => panic!("{name}: did not finish within {secs} s (deadlock or livelock)"),
    }
}

/// Default watchdog timeout in seconds.
pub const WATCHDOG_SECS: u64 = 10;

/// Proptest case count: env `GILFREE_PROPTEST_CASES`, default `default`.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("GILFREE_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Stress duration: env `GILFREE_STRESS_MS`, default `default_ms`.
pub fn stress_duration(default_ms: u64) -> Duration {
    Duration::from_millis(
        std::env::var("GILFREE_STRESS_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default_ms),
    )
}

/// A deadline `d` from now.
pub fn deadline(d: Duration) -> Instant {
    Instant::now() + d
}

/// Drives epoch reclamation (pins and flushes on this thread) until `done()` holds; returns
/// whether it did before `max` elapsed. Garbage retired by `GilFreeDict` is freed only once the
/// global epoch has advanced past every guard pinned at retirement.
pub fn settle(done: impl Fn() -> bool, max: Duration) -> bool {
    let end = Instant::now() + max;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        for _ in 0..64 {
            gilfree::collect_garbage();
        }
        std::thread::yield_now();
    }
}

/// Runs `f`, expecting it to panic; returns the panic message.
pub fn expect_panic<R>(f: impl FnOnce() -> R) -> String {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic"),
        Err(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    }
}
