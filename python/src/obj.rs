//! Python objects inside gilfree containers: the value type, the key model, deferred release,
//! freezing, and the mapping of gilfree's errors to Python exceptions.
//!
//! ## Threads and the GIL
//!
//! gilfree spawns no threads: every callback (`hash`, `eq`, `Clone`) runs on the thread that
//! called into the container, and every such thread is a Python thread that holds the GIL for
//! the whole call (the binding never releases it). Python objects are therefore only touched
//! with the GIL held.
//!
//! ## Release outside every lock
//!
//! Dropping the last reference to a Python object runs `__del__`, which is arbitrary script
//! code: it may re-enter the container being modified, and while it runs bytecode the GIL may
//! switch to another thread that then waits for a container lock this thread holds. So an
//! [`Obj`] never releases its reference where gilfree drops it (a removed entry, a retired node
//! freed by the epoch collector, possibly inside a container's critical section): its `Drop`
//! only queues the reference on a thread-local list, and every binding method releases the
//! queue when it returns ([`Settle`]), with no gilfree lock held. The only Python code that
//! runs under a container lock is `eq` between exact `str`/`int` keys (`eq_is_pure`), which
//! runs no bytecode.
//!
//! `GilFreeDict` and `GilFreeList` retire removed entries to an epoch collector, which frees
//! them once no reader can still see them. In this module every access to a container happens
//! with the GIL held, and no read session (a pin) ever spans Python code that could release it:
//! lookups clone their candidates and unpin before a script `__eq__` runs, iterators pin only
//! inside each step, and the garbage collector's traversal calls C visitors only. So when a
//! binding method that wrote returns, no other thread can be inside a read, and the binding
//! frees what the write retired at once, with `gilfree::collect_garbage_exclusive`: no epoch
//! wait, no heavy fence (a `membarrier` system call per write, before), and a removed value's
//! `__del__` runs before the statement that removed it returns, as in CPython. Under the same
//! condition each thread runs inside one `gilfree::exclusive_access` section for its life
//! (opened at its first binding call: [`open_exclusive`]), so a `GilFreeDict` hands the value
//! it removes or overwrites straight back (moved: no incref of a clone, nothing retired). This
//! holds
//! because the module declares that it needs the GIL (`gil_used = true`: a free-threaded
//! CPython enables the GIL when it imports it); if the GIL is off anyway (`PYTHON_GIL=0` on a
//! free-threaded build, detected at import), the binding falls back to the epoch collector,
//! which then frees removed values a few operations later.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::sync::Mutex;

use gilfree::{Container, EqModel, Error, Freeze, KeyModel, Shape};
use pyo3::exceptions::{PyIndexError, PyKeyError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyComplex, PyFloat, PyFrozenSet, PyInt, PyRange, PyString, PyTuple,
};

use crate::dict::DictPy;
use crate::list::ListPy;

pyo3::create_exception!(
    gilfree,
    FrozenError,
    PyTypeError,
    "A frozen gilfree Dict or List was modified."
);

/// A strong reference to a Python object, as stored in a gilfree container: one pointer, kept
/// inline in the containers' words (no allocation per stored reference).
pub struct Obj(ManuallyDrop<Py<PyAny>>);

// SAFETY: `Py<PyAny>` is one non-null pointer (`#[repr(transparent)]` over `NonNull`), every
// byte initialized, no interior mutability inline (the refcount lives in the object), and it
// is `Send + Sync`; a bitwise copy read by a container is only used for shared access (`bind`,
// `clone_ref`), never dropped (the container drops the original once).
unsafe impl gilfree::InlineWord for Obj {}

impl Obj {
    /// A new reference to `obj`.
    pub fn new(obj: &Bound<'_, PyAny>) -> Obj {
        Obj(ManuallyDrop::new(obj.clone().unbind()))
    }

    /// Takes ownership of `obj`.
    pub fn from_owned(obj: Bound<'_, PyAny>) -> Obj {
        Obj(ManuallyDrop::new(obj.unbind()))
    }

    /// The object, bound to the GIL.
    pub fn bind<'a, 'py>(&'a self, py: Python<'py>) -> &'a Bound<'py, PyAny> {
        self.0.bind(py)
    }

    /// A new Python reference to the object (to return to Python).
    pub fn to_py(&self, py: Python<'_>) -> Py<PyAny> {
        self.0.clone_ref(py)
    }

    /// The reference itself, moved out (to return to Python a value removed from a
    /// container): no incref, and nothing queued for release.
    pub fn into_py(self) -> Py<PyAny> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped (`ManuallyDrop`), so the handle is taken once.
        unsafe { ManuallyDrop::take(&mut this.0) }
    }

    /// The address of the object (Python's `id`).
    pub fn addr(&self) -> usize {
        self.0.as_ptr() as usize
    }

    /// The reference itself (for the garbage collector's `visit`).
    pub fn py_ref(&self) -> &Py<PyAny> {
        &self.0
    }

    /// `obj` as an `Obj` for the length of a call, without taking a reference (no refcount
    /// traffic): a lookup probe.
    pub fn probe<'a>(obj: &'a Bound<'_, PyAny>) -> Probe<'a> {
        // SAFETY: the pointer comes from a live `Bound`, which the probe borrows, so the
        // object outlives it; the `Obj` is never dropped (`ManuallyDrop`), so the reference it
        // did not take is never released. Clones of it take their own reference.
        let obj = unsafe { Bound::from_owned_ptr(obj.py(), obj.as_ptr()) }.unbind();
        Probe(
            ManuallyDrop::new(Obj(ManuallyDrop::new(obj))),
            std::marker::PhantomData,
        )
    }

    /// Releases the reference now, instead of queueing it for the next [`settle`]: for a
    /// value a binding method got back from gilfree (no gilfree lock held), whose `__del__`
    /// may run here, as it would in CPython's own `dict`.
    pub fn release(self, py: Python<'_>) {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped (`ManuallyDrop`), so the handle is taken once.
        let handle = unsafe { ManuallyDrop::take(&mut this.0) };
        // With the GIL token in hand: a plain decref, no thread-local check.
        drop(handle.into_bound(py));
    }

    /// The reference as one of this module's classes, if the object is an instance of it.
    fn as_class<T: pyo3::PyTypeInfo>(&self) -> Option<&Py<T>> {
        let is = Python::attach(|py| self.0.bind(py).is_instance_of::<T>());
        // SAFETY: `Py<T>` is `#[repr(transparent)]` over the same object pointer for every
        // `T`, and the object was just checked to be an instance of `T`; the reference keeps
        // borrowing `self`, which keeps the object alive.
        is.then(|| unsafe { &*(&*self.0 as *const Py<PyAny>).cast::<Py<T>>() })
    }
}

/// A borrowed [`Obj`] (see [`Obj::probe`]).
pub struct Probe<'a>(ManuallyDrop<Obj>, std::marker::PhantomData<&'a ()>);

impl std::ops::Deref for Probe<'_> {
    type Target = Obj;

    fn deref(&self) -> &Obj {
        &self.0
    }
}

/// Identity (Python's `is`), not Python equality: only so that `LockedDict`'s borrowed
/// iteration inside `with_lock` (which asks for `K: Hash + Eq`) is available to the garbage
/// collector's traversal. The binding never looks keys up with gilfree's plain-key methods,
/// which would use this identity hash; every lookup goes through [`Model`].
impl PartialEq for Obj {
    fn eq(&self, other: &Obj) -> bool {
        self.addr() == other.addr()
    }
}

impl Eq for Obj {}

impl std::hash::Hash for Obj {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.addr().hash(state);
    }
}

impl Clone for Obj {
    fn clone(&self) -> Obj {
        // SAFETY: every gilfree callback runs on a thread that holds the GIL (module docs).
        // Not `Python::attach`: when PyO3's own count says the thread is not attached (inside
        // a hand-written entry point, `slots`), `attach` would count it attached and first
        // release PyO3's deferred references, whose `__del__` could then run here, under a
        // read session or a container lock. A plain incref runs no Python code.
        let py = unsafe { Python::assume_attached() };
        Obj(ManuallyDrop::new(self.0.clone_ref(py)))
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        // SAFETY: `self` is being dropped; the handle is taken once and never used again.
        let handle = unsafe { ManuallyDrop::take(&mut self.0) };
        defer_release(handle);
    }
}

impl std::fmt::Debug for Obj {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<object at {:#x}>", self.addr())
    }
}

/// This thread's release queue.
struct Queue {
    /// References dropped by gilfree on this thread, released at the next [`settle`].
    pending: RefCell<Vec<Py<PyAny>>>,
    /// Whether this thread is inside [`settle`] (nested calls leave the work to the outer one,
    /// so that releasing a deep tree is a loop, not a recursion).
    settling: Cell<bool>,
    /// Whether this thread has opened its exclusive-access section ([`open_exclusive`]).
    exclusive: Cell<bool>,
}

std::thread_local! {
    /// One thread-local for the queue and its flag: in an extension module every access to a
    /// thread-local is a call (`__tls_get_addr`), and `settle` makes one, not six.
    static QUEUE: Queue = const {
        Queue {
            pending: RefCell::new(Vec::new()),
            settling: Cell::new(false),
            exclusive: Cell::new(false),
        }
    };
}

fn defer_release(handle: Py<PyAny>) {
    let mut slot = Some(handle);
    let _ = QUEUE.try_with(|q| {
        if let Ok(mut p) = q.pending.try_borrow_mut() {
            p.extend(slot.take());
        }
    });
    // Thread-local storage already destroyed (thread exit): PyO3 queues the decref itself.
    drop(slot);
}

/// Releases every reference queued on this thread. Call with the GIL held and no gilfree lock
/// held; runs `__del__` methods.
pub fn settle() {
    let _ = QUEUE.try_with(|q| {
        ensure_exclusive(q);
        // Most calls queued nothing (a lookup that found a borrowed probe's key).
        if q.pending.try_borrow().is_ok_and(|p| p.is_empty()) || q.settling.replace(true) {
            return;
        }
        /// Clears the flag however the loop ends.
        struct Done<'a>(&'a Cell<bool>);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        let _done = Done(&q.settling);
        // The queue's buffer is reused (swapped with `batch`), so that a call that released a
        // reference does not allocate. No borrow of the queue is held while references are
        // released: `__del__` may run, and queue more (into the swapped-in buffer).
        let mut batch = Vec::new();
        loop {
            std::mem::swap(&mut *q.pending.borrow_mut(), &mut batch);
            if batch.is_empty() {
                break;
            }
            // SAFETY: `settle` is called with the GIL held (its contract). A `Py` dropped
            // while PyO3's count says the thread is not attached (in a hand-written entry
            // point, `slots`) would go to PyO3's deferred pool instead of being released here;
            // a `Bound` is released at once, with no thread-local check.
            let py = unsafe { Python::assume_attached() };
            for handle in batch.drain(..) {
                drop(handle.into_bound(py));
            }
        }
        let mut p = q.pending.borrow_mut();
        if p.capacity() == 0 {
            *p = batch;
        }
    });
}

/// Whether the GIL serializes every access to the containers (checked at import; see the
/// module docs). Without it, retired entries are left to the epoch collector.
static GIL_SERIALIZES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// [`open_exclusive`] unless this thread has (the flag test inline, the opener out of line).
#[inline(always)]
fn ensure_exclusive(q: &Queue) {
    if !q.exclusive.get() {
        open_exclusive(q);
    }
}

/// Opens a gilfree exclusive-access section on this thread for the rest of its life (the guard
/// is leaked), if the GIL serializes every access to the containers; marks the thread either
/// way. Called by the thread's first [`settle`] (the end of its first binding call) and, for
/// the importing thread, at import. Inside the section, a `GilFreeDict` write hands the value
/// it removes or overwrites straight back and a `GilFreeList` pop its item (moved: no incref
/// of a clone, nothing retired); before it, the same values are retired and freed by
/// [`collect_retired`] before the call returns, so only the cost differs.
///
/// One section for the thread's life instead of one per write call: opening and closing one
/// are two thread-local accesses, each a call to `__tls_get_addr` in an extension module.
#[cold]
fn open_exclusive(q: &Queue) {
    q.exclusive.set(true);
    if GIL_SERIALIZES.load(std::sync::atomic::Ordering::Relaxed) {
        // SAFETY: as in `collect_retired`, for every write of the thread's life: each write
        // this thread makes to a gilfree container runs inside a binding method, with the GIL
        // held for the whole method, and no read session spans a release of the GIL. So at
        // each such write no other thread is inside a read session, and every one that ran
        // ended before its thread released the GIL that this thread then acquired.
        std::mem::forget(unsafe { gilfree::exclusive_access() });
    }
}

/// Records at import whether the GIL is on (it is, unless a free-threaded build runs with
/// `PYTHON_GIL=0` despite the module's `gil_used = true`), and opens the importing thread's
/// exclusive-access section ([`open_exclusive`]).
pub fn note_gil(py: Python<'_>) -> PyResult<()> {
    let sys = py.import("sys")?;
    let on = match sys.getattr("_is_gil_enabled") {
        Ok(f) => f.call0()?.is_truthy()?,
        // Before 3.13 every build has the GIL.
        Err(_) => true,
    };
    GIL_SERIALIZES.store(on, std::sync::atomic::Ordering::Relaxed);
    let _ = QUEUE.try_with(ensure_exclusive);
    Ok(())
}

/// Frees (and queues for release) what a write retired, now rather than at some later
/// operation. Call with the GIL held, no gilfree lock held and no read session open.
pub fn collect_retired() {
    if GIL_SERIALIZES.load(std::sync::atomic::Ordering::Relaxed) {
        // SAFETY: the GIL is held by this thread and serializes every access to gilfree
        // containers in this process (they are only reached through this module, whose
        // methods all run with the GIL held); no read session spans a release of the GIL
        // (module docs). So no other thread is inside a read session, none can enter one
        // until this returns, and every one that ran ended before its thread released the
        // GIL that this thread then acquired.
        unsafe { gilfree::collect_garbage_exclusive() };
    } else {
        gilfree::collect_garbage();
    }
}

/// Declared first in every binding method: when the method returns (every gilfree call done,
/// no gilfree lock held), releases what the call dropped.
pub struct Settle {
    wrote: bool,
}

impl Settle {
    /// For a method that only reads.
    pub fn read() -> Settle {
        Settle { wrote: false }
    }

    /// For a method that may have removed or replaced entries (under the GIL, the thread's
    /// exclusive-access section hands them back moved: see [`open_exclusive`]).
    pub fn write() -> Settle {
        Settle { wrote: true }
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        if self.wrote {
            collect_retired();
        }
        settle();
    }
}

/// Releases queued references when a container object itself is deallocated (its entries are
/// queued by gilfree's `Drop`, after the containing struct's own `drop`: hence a field).
#[derive(Default)]
pub struct SettleOnDrop;

impl Drop for SettleOnDrop {
    fn drop(&mut self) {
        settle();
    }
}

/// The object model: Python's `hash()`, `==` and `is`, on the calling thread's GIL.
#[derive(Clone, Copy)]
pub struct Model<'py>(pub Python<'py>);

/// Exact `str` or exact `int`: comparing two of these runs no Python code.
fn is_plain_key(o: &Bound<'_, PyAny>) -> bool {
    o.is_exact_instance_of::<PyString>() || o.is_exact_instance_of::<PyInt>()
}

impl EqModel<Obj> for Model<'_> {
    type Error = PyErr;

    fn eq(&self, stored: &Obj, probe: &Obj) -> PyResult<bool> {
        let (s, p) = (stored.bind(self.0), probe.bind(self.0));
        if s.is_exact_instance_of::<PyString>() && p.is_exact_instance_of::<PyString>() {
            // Two exact `str`s: what `str.__eq__` decides, without building a `bool` to test
            // (CPython's own dict compares such keys directly too). `PyUnicode_Compare` cannot
            // fail for two `str` objects.
            // SAFETY: two live `str` objects, the GIL held (`self.0`).
            return Ok(unsafe { pyo3::ffi::PyUnicode_Compare(s.as_ptr(), p.as_ptr()) } == 0);
        }
        // CPython compares the stored item first: `stored == probe`, then its truth value.
        s.eq(p)
    }

    fn identical(&self, stored: &Obj, probe: &Obj) -> bool {
        stored.addr() == probe.addr()
    }

    fn eq_is_pure(&self, stored: &Obj, probe: &Obj) -> bool {
        is_plain_key(stored.bind(self.0)) && is_plain_key(probe.bind(self.0))
    }
}

impl KeyModel<Obj> for Model<'_> {
    fn hash(&self, key: &Obj) -> PyResult<u64> {
        key.bind(self.0).hash().map(|h| h as u64)
    }
}

/// A gilfree error as the Python exception CPython raises in the same situation.
pub fn to_py_err(e: Error<PyErr>) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Callback(e) => e,
        Error::Frozen(_) => FrozenError::new_err(msg),
        Error::IndexOutOfRange => PyIndexError::new_err(msg),
        Error::Empty(Container::List) => PyIndexError::new_err(msg),
        Error::Empty(_) => PyKeyError::new_err(msg),
        Error::ModifiedDuringSort
        | Error::ValueNotFound
        | Error::SliceLength { .. }
        | Error::ZeroStep => PyValueError::new_err(msg),
        Error::Unfreezable { .. } => PyTypeError::new_err(msg),
        Error::TooLarge => pyo3::exceptions::PyMemoryError::new_err(msg),
        // MutatedDuringLookup, ChangedSize, KeysChanged, Reentrant, NotOwner, StaleHandle,
        // MutatedDuringFreeze, and anything added later.
        _ => PyRuntimeError::new_err(msg),
    }
}

/// A plain-key gilfree error (no callback) as a Python exception.
pub fn plain_err(e: Error) -> PyErr {
    to_py_err(e.widen())
}

/// `Result` adapters.
pub trait IntoPy<T> {
    /// Maps the gilfree error to a Python exception.
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for Result<T, Error<PyErr>> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py_err)
    }
}

impl<T> IntoPy<T> for Result<T, Error> {
    fn py(self) -> PyResult<T> {
        self.map_err(plain_err)
    }
}

/// Type names of unfreezable values, leaked once per distinct type (`Shape::Unfreezable`
/// wants a `&'static str`).
fn type_name(name: String) -> &'static str {
    static NAMES: Mutex<Option<HashMap<String, &'static str>>> = Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    names
        .get_or_insert_with(HashMap::new)
        .entry(name)
        .or_insert_with_key(|n| Box::leak(n.clone().into_boxed_str()))
}

/// Immutable Python values: `None`, `bool`, `int`, `float`, `complex`, `str`, `bytes`, `range`,
/// and tuples/frozensets of these.
fn is_leaf(o: &Bound<'_, PyAny>, depth: usize) -> bool {
    if o.is_none()
        || o.is_exact_instance_of::<PyBool>()
        || o.is_exact_instance_of::<PyInt>()
        || o.is_exact_instance_of::<PyFloat>()
        || o.is_exact_instance_of::<PyComplex>()
        || o.is_exact_instance_of::<PyString>()
        || o.is_exact_instance_of::<PyBytes>()
        || o.is_exact_instance_of::<PyRange>()
    {
        return true;
    }
    if depth > 64 {
        return false;
    }
    if let Ok(t) = o.cast_exact::<PyTuple>() {
        return t.iter().all(|x| is_leaf(&x, depth + 1));
    }
    if let Ok(s) = o.cast_exact::<PyFrozenSet>() {
        return s.iter().all(|x| is_leaf(&x, depth + 1));
    }
    false
}

impl Freeze for Obj {
    fn shape(&self) -> Shape<'_, Obj> {
        if let Some(d) = self.as_class::<DictPy>() {
            return Shape::Container(d.get().freezable());
        }
        if let Some(l) = self.as_class::<ListPy>() {
            return l.get().shape();
        }
        Python::attach(|py| {
            let o = self.0.bind(py);
            if is_leaf(o, 0) {
                Shape::Leaf
            } else {
                let name = o
                    .get_type()
                    .name()
                    .map_or_else(|_| String::from("object"), |n| n.to_string());
                Shape::Unfreezable(type_name(name))
            }
        })
    }

    fn repr(&self) -> String {
        Python::attach(|py| {
            self.bind(py)
                .repr()
                .map_or_else(|_| String::from("<unrepresentable key>"), |s| s.to_string())
        })
    }

    fn shallow_copy(&self) -> Option<Obj> {
        Python::attach(|py| {
            if let Some(d) = self.as_class::<DictPy>() {
                d.get().shallow_copy(py).ok()
            } else if let Some(l) = self.as_class::<ListPy>() {
                l.get().shallow_copy(py).ok()
            } else {
                None
            }
        })
    }
}

/// `cls[item]` for type hints: `types.GenericAlias(cls, item)`, as the builtin containers'
/// `__class_getitem__` returns.
pub fn generic_alias<'py>(
    cls: &Bound<'py, pyo3::types::PyType>,
    item: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    cls.py()
        .import("types")?
        .getattr("GenericAlias")?
        .call1((cls, item))
}

/// `repr` of a container with CPython's guard against cycles (`{...}`, `[...]`).
pub fn repr_guarded(
    slf: &Bound<'_, PyAny>,
    cycle: &str,
    body: impl FnOnce() -> PyResult<String>,
) -> PyResult<String> {
    // SAFETY: called with the GIL held on a live object; every successful enter is paired
    // with a leave below.
    let entered = unsafe { pyo3::ffi::Py_ReprEnter(slf.as_ptr()) };
    if entered < 0 {
        return Err(PyErr::fetch(slf.py()));
    }
    if entered > 0 {
        return Ok(cycle.to_string());
    }
    let r = body();
    // SAFETY: paired with the successful enter above.
    unsafe { pyo3::ffi::Py_ReprLeave(slf.as_ptr()) };
    r
}

/// Python's `repr(o)` as a Rust string.
pub fn repr_of(o: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(o.repr()?.to_str()?.to_owned())
}

/// A Python integer (anything with `__index__`) as an `isize`, clamped to the `isize` range
/// (as CPython clamps slice bounds and `index()` bounds).
pub fn clamp_index(o: &Bound<'_, PyAny>) -> PyResult<isize> {
    let i = index_of(o)?;
    match i.extract::<isize>() {
        Ok(v) => Ok(v),
        Err(_) => Ok(if i.lt(0)? { isize::MIN } else { isize::MAX }),
    }
}

/// `operator.index(o)`.
pub fn index_of<'py>(o: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if o.is_instance_of::<PyInt>() {
        return Ok(o.clone());
    }
    if o.get_type().hasattr("__index__")? {
        return o.call_method0("__index__");
    }
    Err(PyTypeError::new_err(format!(
        "'{}' object cannot be interpreted as an integer",
        o.get_type().name()?
    )))
}

/// Whether `o` is an integer-like object (has `__index__`).
pub fn is_index(o: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(o.is_instance_of::<PyInt>() || o.get_type().hasattr("__index__")?)
}
