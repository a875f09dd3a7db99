//! `gilfree.List` (a `GilFreeList`) and `gilfree.LockedList` (a `LockedList`): Python lists
//! whose items compare through Python's `__eq__` ([`Model`]).

use std::cmp::Ordering;
use std::sync::atomic::{AtomicIsize, Ordering as AtomicOrdering};
use std::sync::{Mutex, MutexGuard};

use gilfree::{Error, GilFreeList, LockedList, Shape, Slice};
use pyo3::exceptions::{PyIndexError, PyMemoryError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::types::{PyDict, PyInt, PyList, PySlice, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};

use crate::obj::{
    clamp_index, index_of, is_index, plain_err, repr_guarded, repr_of, to_py_err, IntoPy, Model,
    Obj, Settle, SettleOnDrop,
};

/// The Rust list behind a `gilfree.List`.
pub enum ListInner {
    /// `gilfree.List`: lock-free index reads and iteration.
    GilFree(GilFreeList<Obj>),
    /// `gilfree.LockedList`: one lock per list.
    Locked(LockedList<Obj>),
}

/// Runs `$body` with `$l` bound to the concrete list (the body compiles for both variants).
macro_rules! on_list {
    ($inner:expr, $l:ident => $body:expr) => {
        match $inner {
            ListInner::GilFree($l) => $body,
            ListInner::Locked($l) => $body,
        }
    };
}

/// Runs `$body` with `$a` and `$b` bound to two lists of the same concrete type (a snapshot
/// copy of `$other` when the variants differ).
macro_rules! on_pair {
    ($this:expr, $other:expr, ($a:ident, $b:ident) => $body:expr) => {
        match ($this, $other) {
            (ListInner::GilFree($a), ListInner::GilFree($b)) => $body,
            (ListInner::Locked($a), ListInner::Locked($b)) => $body,
            (ListInner::GilFree($a), ListInner::Locked(o)) => {
                let tmp = GilFreeList::from_vec(o.snapshot());
                let $b = &tmp;
                $body
            }
            (ListInner::Locked($a), ListInner::GilFree(o)) => {
                let tmp = LockedList::from_vec(o.snapshot());
                let $b = &tmp;
                $body
            }
        }
    };
}

impl ListInner {
    /// A new list of the same variant holding `items`.
    fn like(&self, items: Vec<Obj>) -> ListInner {
        match self {
            ListInner::GilFree(_) => ListInner::GilFree(GilFreeList::from_vec(items)),
            ListInner::Locked(_) => ListInner::Locked(LockedList::from_vec(items)),
        }
    }
}

/// A list with Python semantics holding any Python objects, backed by gilfree's `GilFreeList`
/// (index reads and iteration take no lock).
#[pyclass(module = "gilfree", name = "List", subclass, frozen, sequence)]
pub struct ListPy {
    /// Boxed: the gilfree lists are 64-byte aligned (their readers' fields and their writers'
    /// sit on separate cache lines), and a Python object's memory is only 16-byte aligned.
    pub(crate) inner: Box<ListInner>,
    _settle: SettleOnDrop,
}

/// The same list backed by gilfree's `LockedList` (one lock per list).
#[pyclass(module = "gilfree", name = "LockedList", extends = ListPy, subclass, frozen)]
pub struct LockedListPy;

#[pymethods]
impl LockedListPy {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn __new__(
        _args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyClassInitializer<LockedListPy> {
        PyClassInitializer::from(ListPy::from_inner(ListInner::Locked(LockedList::new())))
            .add_subclass(LockedListPy)
    }
}

impl ListPy {
    /// The item at index `i` (negative counts from the end), a new reference: `l[i]`'s work,
    /// shared by `__getitem__` and the hand-written slot (`slots`).
    pub(crate) fn item<'py>(&self, py: Python<'py>, i: isize) -> Result<Bound<'py, PyAny>, Error> {
        on_list!(&*self.inner, l => l.get_with(i, |o| o.bind(py).clone()))
    }

    /// Whether writes to this list retire what they remove to the epoch collector (a
    /// `GilFreeList`; a `LockedList` drops it after its lock).
    pub(crate) fn retires(&self) -> bool {
        matches!(&*self.inner, ListInner::GilFree(_))
    }

    /// `append(x)`'s work, shared by the method and its hand-written entry point (`slots`).
    pub(crate) fn push(&self, x: Obj) -> Result<(), Error> {
        on_list!(&*self.inner, l => l.append(x))
    }

    /// `l[i] = x`'s work (`i` an index, not a slice).
    pub(crate) fn put(&self, i: isize, x: Obj) -> Result<(), Error> {
        on_list!(&*self.inner, l => l.set(i, x))
    }

    /// `pop(i)`'s work: the item removed, moved out of the list.
    pub(crate) fn pop_item(&self, i: isize) -> Result<Obj, Error> {
        on_list!(&*self.inner, l => l.pop_at(i))
    }

    fn from_inner(inner: ListInner) -> ListPy {
        ListPy {
            inner: Box::new(inner),
            _settle: SettleOnDrop,
        }
    }

    /// A new Python object of this list's variant (`List` or `LockedList`) around `inner`.
    pub(crate) fn wrap(py: Python<'_>, inner: ListInner) -> PyResult<Bound<'_, PyAny>> {
        Ok(match inner {
            ListInner::GilFree(_) => Bound::new(py, ListPy::from_inner(inner))?.into_any(),
            ListInner::Locked(_) => Bound::new(
                py,
                PyClassInitializer::from(ListPy::from_inner(inner)).add_subclass(LockedListPy),
            )?
            .into_any(),
        })
    }

    /// A new list of this list's variant holding `items`.
    fn new_like<'py>(&self, py: Python<'py>, items: Vec<Obj>) -> PyResult<Bound<'py, PyAny>> {
        ListPy::wrap(py, self.inner.like(items))
    }

    /// The list as a freeze walk sees it: a container whose items are walked.
    pub(crate) fn shape(&self) -> Shape<'_, Obj> {
        on_list!(&*self.inner, l => Shape::Container(l))
    }

    /// For `frozen_copy`: a new mutable list with the same items.
    pub(crate) fn shallow_copy(&self, py: Python<'_>) -> PyResult<Obj> {
        Ok(Obj::from_owned(self.new_like(py, self.snapshot())?))
    }

    pub(crate) fn len(&self) -> usize {
        on_list!(&*self.inner, l => l.len())
    }

    pub(crate) fn snapshot(&self) -> Vec<Obj> {
        on_list!(&*self.inner, l => l.snapshot())
    }

    fn get(&self, i: isize) -> Result<Obj, Error> {
        on_list!(&*self.inner, l => l.get(i))
    }

    fn extend_with(&self, items: Vec<Obj>) -> PyResult<()> {
        on_list!(&*self.inner, l => l.extend(items)).py()
    }

    /// `self == other` / ordering against another list; `None` for "not comparable".
    fn compare(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Option<bool>> {
        let m = Model(py);
        let tmp;
        let other: &ListInner = if let Ok(o) = other.cast::<ListPy>() {
            &o.get().inner
        } else if other.is_instance_of::<PyList>() {
            tmp = self.inner.like(items_of(other)?);
            &tmp
        } else {
            return Ok(None);
        };
        let r = match op {
            CompareOp::Eq => on_pair!(&*self.inner, other, (a, b) => a.eq_in(&m, b)).py()?,
            CompareOp::Ne => !on_pair!(&*self.inner, other, (a, b) => a.eq_in(&m, b)).py()?,
            op => {
                // The first unequal pair decides through `x op y`; reported as Less/Greater so
                // that the length comparison of equal prefixes reads the same way.
                let (yes, no) = match op {
                    CompareOp::Lt | CompareOp::Le => (Ordering::Less, Ordering::Greater),
                    _ => (Ordering::Greater, Ordering::Less),
                };
                let cmp = |x: &Obj, y: &Obj| -> PyResult<Option<Ordering>> {
                    let r = x.bind(py).rich_compare(y.bind(py), op)?.is_truthy()?;
                    Ok(Some(if r { yes } else { no }))
                };
                let ord = on_pair!(&*self.inner, other, (a, b) => a.compare_in(&m, b, cmp)).py()?;
                match ord {
                    Some(Ordering::Equal) => matches!(op, CompareOp::Le | CompareOp::Ge),
                    Some(o) => o == yes,
                    None => false,
                }
            }
        };
        Ok(Some(r))
    }
}

/// The items of any iterable (a snapshot for an exact gilfree list).
fn items_of(src: &Bound<'_, PyAny>) -> PyResult<Vec<Obj>> {
    if src.is_exact_instance_of::<ListPy>() || src.is_exact_instance_of::<LockedListPy>() {
        if let Ok(l) = src.cast::<ListPy>() {
            return Ok(l.get().snapshot());
        }
    }
    src.try_iter()?.map(|x| x.map(Obj::from_owned)).collect()
}

/// A Python slice object as a gilfree [`Slice`], bounds clamped as CPython clamps them.
fn to_slice(s: &Bound<'_, PySlice>) -> PyResult<Slice> {
    let part = |name: &str| -> PyResult<Option<isize>> {
        let v = s.getattr(name)?;
        if v.is_none() {
            return Ok(None);
        }
        if !is_index(&v)? {
            return Err(PyTypeError::new_err(
                "slice indices must be integers or None or have an __index__ method",
            ));
        }
        clamp_index(&v).map(Some)
    };
    let step = part("step")?.map(|s| s.max(-isize::MAX));
    Ok(Slice::new(part("start")?, part("stop")?, step))
}

/// An item index: an integer (too large: `IndexError`), or a `TypeError` naming the type.
fn item_index(index: &Bound<'_, PyAny>) -> PyResult<isize> {
    let too_big = |_| PyIndexError::new_err("cannot fit 'int' into an index-sized integer");
    if index.is_exact_instance_of::<PyInt>() {
        // The common case, converted directly: `extract::<isize>` goes through two more
        // layers of calls (about 45 instructions of a `l[i]`'s 600).
        // SAFETY: `index` is a live `int` bound to the GIL this thread holds.
        let i = unsafe { pyo3::ffi::PyLong_AsSsize_t(index.as_ptr()) };
        return match i {
            -1 => PyErr::take(index.py()).map_or(Ok(-1), |e| Err(too_big(e))),
            i => Ok(i),
        };
    }
    if !is_index(index)? {
        return Err(PyTypeError::new_err(format!(
            "list indices must be integers or slices, not {}",
            index.get_type().name()?
        )));
    }
    index_of(index)?.extract::<isize>().map_err(too_big)
}

/// `IndexError` with a specific message for an out-of-range index.
fn index_err(msg: &'static str) -> impl Fn(Error) -> PyErr {
    move |e| match e {
        Error::IndexOutOfRange => PyIndexError::new_err(msg),
        e => plain_err(e),
    }
}

/// A repetition count; `MemoryError` if the result could not be allocated.
fn repeat_count(len: usize, n: isize) -> PyResult<usize> {
    let n = n.max(0) as usize;
    match len.checked_mul(n) {
        Some(total) if total <= isize::MAX as usize / std::mem::size_of::<Obj>() => Ok(n),
        _ => Err(PyMemoryError::new_err("")),
    }
}

#[pymethods]
impl ListPy {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn __new__(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> ListPy {
        ListPy::from_inner(ListInner::GilFree(GilFreeList::new()))
    }

    /// `list.__init__`: clears the list, then extends it with `iterable`.
    #[pyo3(signature = (iterable=None, /))]
    fn __init__(&self, iterable: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let _s = Settle::write();
        on_list!(&*self.inner, l => l.clear()).py()?;
        if let Some(src) = iterable {
            self.extend_with(items_of(src)?)?;
        }
        Ok(())
    }

    fn __len__(&self) -> usize {
        self.len()
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        index: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Ok(s) = index.cast::<PySlice>() {
            let _s = Settle::read();
            let items = on_list!(&*self.inner, l => l.get_slice(to_slice(s)?)).py()?;
            return self.new_like(py, items);
        }
        // No `Settle`: an index read releases no reference of its own (it borrows the item and
        // takes a new reference to it). What its unpin may free (rare under the GIL) stays
        // queued until the thread's next settling call.
        self.item(py, item_index(index)?)
            .map_err(index_err("list index out of range"))
    }

    fn __setitem__(&self, index: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let _s = Settle::write();
        if let Ok(s) = index.cast::<PySlice>() {
            let slice = to_slice(s)?;
            let items = items_of(value).map_err(|e| {
                if e.is_instance_of::<PyTypeError>(value.py()) {
                    PyTypeError::new_err("can only assign an iterable")
                } else {
                    e
                }
            })?;
            return on_list!(&*self.inner, l => l.set_slice(slice, items)).py();
        }
        let i = item_index(index)?;
        self.put(i, Obj::new(value))
            .map_err(index_err("list assignment index out of range"))
    }

    fn __delitem__(&self, index: &Bound<'_, PyAny>) -> PyResult<()> {
        let _s = Settle::write();
        if let Ok(s) = index.cast::<PySlice>() {
            return on_list!(&*self.inner, l => l.del_slice(to_slice(s)?)).py();
        }
        let i = item_index(index)?;
        on_list!(&*self.inner, l => l.pop_at(i))
            .map(drop)
            .map_err(index_err("list assignment index out of range"))
    }

    fn __contains__(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<bool> {
        let _s = Settle::read();
        let m = Model(py);
        on_list!(&*self.inner, l => l.contains_in(&m, &Obj::probe(x))).py()
    }

    fn __iter__(slf: &Bound<'_, Self>) -> ListIterPy {
        ListIterPy {
            list: Mutex::new(Some(slf.clone().unbind())),
            next: AtomicIsize::new(0),
            step: 1,
        }
    }

    fn __reversed__(slf: &Bound<'_, Self>) -> ListIterPy {
        ListIterPy {
            list: Mutex::new(Some(slf.clone().unbind())),
            next: AtomicIsize::new(slf.get().len() as isize - 1),
            step: -1,
        }
    }

    fn __richcmp__(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        let _deeper = crate::stack::deeper("in comparison")?;
        let _s = Settle::read();
        Ok(match self.compare(py, other, op)? {
            Some(r) => r.into_pyobject(py)?.to_owned().into_any().unbind(),
            None => py.NotImplemented(),
        })
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let _deeper = crate::stack::deeper("while getting the repr of an object")?;
        let _s = Settle::read();
        let py = slf.py();
        repr_guarded(slf.as_any(), "[...]", || {
            let mut out = String::from("[");
            for (i, x) in slf.get().snapshot().iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&repr_of(x.bind(py))?);
            }
            out.push(']');
            Ok(out)
        })
    }

    fn __add__<'py>(
        &self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _s = Settle::read();
        if !(other.is_instance_of::<ListPy>() || other.is_instance_of::<PyList>()) {
            return Ok(py.NotImplemented().into_bound(py));
        }
        let mut items = self.snapshot();
        items.extend(items_of(other)?);
        self.new_like(py, items)
    }

    fn __radd__<'py>(
        &self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _s = Settle::read();
        if !other.is_instance_of::<PyList>() {
            return Ok(py.NotImplemented().into_bound(py));
        }
        let mut items = items_of(other)?;
        items.extend(self.snapshot());
        self.new_like(py, items)
    }

    fn __iadd__(&self, other: &Bound<'_, PyAny>) -> PyResult<()> {
        let _s = Settle::write();
        self.extend_with(items_of(other)?)
    }

    fn __mul__<'py>(&self, py: Python<'py>, n: isize) -> PyResult<Bound<'py, PyAny>> {
        let _s = Settle::read();
        let n = repeat_count(self.len(), n)?;
        let inner = match &*self.inner {
            ListInner::GilFree(l) => ListInner::GilFree(l.repeat(n).py()?),
            ListInner::Locked(l) => ListInner::Locked(l.repeat(n).py()?),
        };
        ListPy::wrap(py, inner)
    }

    fn __rmul__<'py>(&self, py: Python<'py>, n: isize) -> PyResult<Bound<'py, PyAny>> {
        self.__mul__(py, n)
    }

    fn __imul__(&self, n: isize) -> PyResult<()> {
        let _s = Settle::write();
        let n = repeat_count(self.len(), n)?;
        on_list!(&*self.inner, l => l.repeat_in_place(n)).py()
    }

    fn append(&self, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let _s = Settle::write();
        self.push(Obj::new(x)).py()
    }

    fn extend(&self, iterable: &Bound<'_, PyAny>) -> PyResult<()> {
        let _s = Settle::write();
        self.extend_with(items_of(iterable)?)
    }

    fn insert(&self, i: isize, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let _s = Settle::write();
        on_list!(&*self.inner, l => l.insert(i, Obj::new(x))).py()
    }

    #[pyo3(signature = (i=-1))]
    fn pop(&self, i: isize) -> PyResult<Py<PyAny>> {
        let _s = Settle::write();
        let item = self
            .pop_item(i)
            .map_err(index_err("pop index out of range"))?;
        Ok(item.into_py())
    }

    fn remove(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let _s = Settle::write();
        let m = Model(py);
        on_list!(&*self.inner, l => l.remove_in(&m, &Obj::probe(x))).py()
    }

    #[pyo3(signature = (x, start=None, stop=None))]
    fn index(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        start: Option<&Bound<'_, PyAny>>,
        stop: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let _s = Settle::read();
        let m = Model(py);
        let start = start.map_or(Ok(0), clamp_index)?;
        let stop = stop.map_or(Ok(isize::MAX), clamp_index)?;
        on_list!(&*self.inner, l => l.index_in(&m, &Obj::probe(x), start, stop)).map_err(
            |e| match e {
                Error::ValueNotFound => match repr_of(x) {
                    Ok(r) => PyValueError::new_err(format!("{r} is not in list")),
                    Err(e) => e,
                },
                e => to_py_err(e),
            },
        )
    }

    fn count(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<usize> {
        let _s = Settle::read();
        let m = Model(py);
        on_list!(&*self.inner, l => l.count_in(&m, &Obj::probe(x))).py()
    }

    fn reverse(&self) -> PyResult<()> {
        let _s = Settle::write();
        on_list!(&*self.inner, l => l.reverse()).py()
    }

    fn clear(&self) -> PyResult<()> {
        let _s = Settle::write();
        on_list!(&*self.inner, l => l.clear()).py()
    }

    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let _s = Settle::read();
        self.new_like(py, self.snapshot())
    }

    /// `sort(*, key=None, reverse=False)`: stable; key and `<` run outside the list's lock; a
    /// list modified meanwhile raises `ValueError: list modified during sort`.
    #[pyo3(signature = (*, key=None, reverse=false))]
    fn sort(&self, py: Python<'_>, key: Option<&Bound<'_, PyAny>>, reverse: bool) -> PyResult<()> {
        let _s = Settle::write();
        let less = |a: &Obj, b: &Obj| a.bind(py).lt(b.bind(py));
        match key.filter(|k| !k.is_none()) {
            None => on_list!(&*self.inner, l => l.sort_by(reverse, less)),
            Some(key) => {
                let key_of = |x: &Obj| key.call1((x.bind(py),)).map(Obj::from_owned);
                on_list!(&*self.inner, l => l.sort_by_key(reverse, key_of, less))
            }
        }
        .py()
    }

    /// Pickling: `type(self)(list(self))`.
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyType>, (Bound<'py, PyList>,))> {
        let _s = Settle::read();
        let py = slf.py();
        let items: Vec<Py<PyAny>> = slf.get().snapshot().iter().map(|x| x.to_py(py)).collect();
        Ok((slf.get_type(), (PyList::new(py, items)?,)))
    }

    /// `List[int]`-style subscription for type hints (`types.GenericAlias`).
    #[classmethod]
    fn __class_getitem__<'py>(
        cls: &Bound<'py, PyType>,
        item: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::obj::generic_alias(cls, item)
    }

    /// Freezes this list only (its items stay as they are).
    fn freeze(&self) -> PyResult<()> {
        on_list!(&*self.inner, l => l.freeze()).py()
    }

    /// Whether the list is frozen.
    #[getter]
    fn frozen(&self) -> bool {
        on_list!(&*self.inner, l => l.is_frozen())
    }

    /// A tag that changes on every mutation.
    #[getter]
    fn version(&self) -> u64 {
        on_list!(&*self.inner, l => l.version())
    }

    /// `"gilfree"` or `"locked"`: the Rust list behind this object.
    #[getter]
    fn variant(&self) -> &'static str {
        match &*self.inner {
            ListInner::GilFree(_) => "gilfree",
            ListInner::Locked(_) => "locked",
        }
    }

    #[classattr]
    fn __hash__(py: Python<'_>) -> Py<PyAny> {
        py.None()
    }

    /// Visits every item (the garbage collector's `tp_traverse`), taking no reference.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        match &*self.inner {
            ListInner::GilFree(l) => {
                let pinned = l.pin();
                for x in pinned.iter() {
                    visit.call(x.py_ref())?;
                }
            }
            ListInner::Locked(l) => {
                if let Ok(guard) = l.read() {
                    for x in guard.iter() {
                        visit.call(x.py_ref())?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Breaks reference cycles (a frozen list cannot be cleared: cycles through it stay).
    fn __clear__(&self) {
        let _s = Settle::write();
        let _ = on_list!(&*self.inner, l => l.clear());
    }
}

/// A list iterator (forward or reversed) with CPython's semantics: it keeps an index and
/// reads the list as it is at each step; once past the end it stays exhausted and releases
/// the list.
#[pyclass(module = "gilfree", name = "ListIterator", frozen)]
pub struct ListIterPy {
    list: Mutex<Option<Py<ListPy>>>,
    next: AtomicIsize,
    step: isize,
}

impl ListIterPy {
    fn lock(&self) -> MutexGuard<'_, Option<Py<ListPy>>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl ListIterPy {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        let _s = Settle::read();
        let mut finished = None;
        let item = {
            let mut list = self.lock();
            let i = self.next.load(AtomicOrdering::Relaxed);
            let item = match list.as_ref() {
                Some(l) if i >= 0 => l.get().get(i).ok(),
                _ => None,
            };
            match &item {
                Some(_) => self.next.store(i + self.step, AtomicOrdering::Relaxed),
                None => finished = list.take(),
            }
            item
        };
        // Released after the lock: the list's `__del__` may call `next` on this iterator.
        drop(finished);
        item.map(|x| x.to_py(py))
    }

    fn __length_hint__(&self) -> usize {
        let list = self.lock();
        let i = self.next.load(AtomicOrdering::Relaxed);
        match list.as_ref() {
            Some(l) if self.step > 0 => l.get().len().saturating_sub(i.max(0) as usize),
            Some(l) if i >= 0 && (i as usize) < l.get().len() => i as usize + 1,
            _ => 0,
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(list) = self.list.try_lock() {
            visit.call(list.as_ref())?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let finished = self.lock().take();
        drop(finished);
    }
}
