//! `gilfree.Dict` (a `GilFreeDict`) and `gilfree.LockedDict` (a `LockedDict`): Python dicts
//! whose keys hash and compare through Python's `__hash__`/`__eq__` ([`Model`]).

use std::sync::{Arc, Mutex, MutexGuard};

use gilfree::freeze::Freezable;
use gilfree::{Error, GilFreeDict, IterChecked, LockedDict};
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::types::{PyDict, PyFrozenSet, PyList, PySet, PyString, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};

use crate::obj::{plain_err, repr_guarded, repr_of, IntoPy, Model, Obj, Settle, SettleOnDrop};

/// The Rust dict behind a `gilfree.Dict`.
pub enum DictInner {
    /// `gilfree.Dict`: lock-free readers, epoch reclamation.
    GilFree(GilFreeDict<Obj, Obj>),
    /// `gilfree.LockedDict`: one lock per dict.
    Locked(LockedDict<Obj, Obj>),
}

/// Runs `$body` with `$d` bound to the concrete dict (the body compiles for both variants).
macro_rules! on_dict {
    ($inner:expr, $d:ident => $body:expr) => {
        match $inner {
            DictInner::GilFree($d) => $body,
            DictInner::Locked($d) => $body,
        }
    };
}

impl DictInner {
    fn empty_like(&self) -> DictInner {
        match self {
            DictInner::GilFree(_) => DictInner::GilFree(GilFreeDict::new()),
            DictInner::Locked(_) => DictInner::Locked(LockedDict::new()),
        }
    }

    fn copy(&self) -> DictInner {
        match self {
            DictInner::GilFree(d) => DictInner::GilFree(d.copy()),
            DictInner::Locked(d) => DictInner::Locked(d.copy()),
        }
    }
}

/// A dict with Python semantics and any Python objects as keys and values, backed by
/// gilfree's `GilFreeDict` (readers take no lock).
#[pyclass(module = "gilfree", name = "Dict", subclass, frozen, mapping)]
pub struct DictPy {
    pub(crate) inner: Arc<DictInner>,
    _settle: SettleOnDrop,
}

/// The same dict backed by gilfree's `LockedDict` (one lock per dict).
#[pyclass(module = "gilfree", name = "LockedDict", extends = DictPy, subclass, frozen)]
pub struct LockedDictPy;

#[pymethods]
impl LockedDictPy {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn __new__(
        _args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyClassInitializer<LockedDictPy> {
        PyClassInitializer::from(DictPy::from_inner(DictInner::Locked(LockedDict::new())))
            .add_subclass(LockedDictPy)
    }
}

/// Which view or iterator: keys, values or items.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ViewKind {
    Keys,
    Values,
    Items,
}

impl DictPy {
    fn from_inner(inner: DictInner) -> DictPy {
        DictPy {
            inner: Arc::new(inner),
            _settle: SettleOnDrop,
        }
    }

    /// A new Python object of this dict's variant (`Dict` or `LockedDict`) around `inner`.
    pub(crate) fn wrap(py: Python<'_>, inner: DictInner) -> PyResult<Bound<'_, PyAny>> {
        Ok(match inner {
            DictInner::GilFree(_) => Bound::new(py, DictPy::from_inner(inner))?.into_any(),
            DictInner::Locked(_) => Bound::new(
                py,
                PyClassInitializer::from(DictPy::from_inner(inner)).add_subclass(LockedDictPy),
            )?
            .into_any(),
        })
    }

    /// The dict as a freeze walk sees it.
    pub(crate) fn freezable(&self) -> &dyn Freezable<Obj> {
        on_dict!(&*self.inner, d => d)
    }

    /// For `frozen_copy`: a new mutable dict with the same entries.
    pub(crate) fn shallow_copy(&self, py: Python<'_>) -> PyResult<Obj> {
        Ok(Obj::from_owned(DictPy::wrap(py, self.inner.copy())?))
    }

    pub(crate) fn len(&self) -> usize {
        on_dict!(&*self.inner, d => d.len())
    }

    /// The value for `key`. A frozen dict is read through its lock-free `frozen()` view.
    pub(crate) fn lookup(&self, py: Python<'_>, key: &Obj) -> PyResult<Option<Py<PyAny>>> {
        let m = Model(py);
        on_dict!(&*self.inner, d => match d.frozen() {
            Some(f) => f.get_in(&m, key).map(|v| v.map(|v| v.to_py(py))),
            None => d.get_with_in(&m, key, |v| v.to_py(py)),
        })
        .py()
    }

    pub(crate) fn insert(&self, py: Python<'_>, key: Obj, value: Obj) -> PyResult<()> {
        let m = Model(py);
        // A replaced value is released here rather than queued for `settle`.
        if let Some(old) = on_dict!(&*self.inner, d => d.insert_in(&m, key, value)).py()? {
            old.release(py);
        }
        Ok(())
    }

    pub(crate) fn snapshot(&self) -> Vec<(Obj, Obj)> {
        on_dict!(&*self.inner, d => d.snapshot())
    }

    /// `self.update(arg)`: another gilfree dict (iterated with CPython's mutation checks), a
    /// mapping (anything with `keys()`), or an iterable of pairs.
    fn update_from(&self, py: Python<'_>, arg: &Bound<'_, PyAny>) -> PyResult<()> {
        let own_iter = match arg.cast::<DictPy>() {
            Ok(other) => Some(other).filter(|_| iter_not_overridden(arg)),
            Err(_) => None,
        };
        if let Some(other) = own_iter {
            let src = Arc::clone(&other.get().inner);
            on_dict!(&*src, s => {
                for entry in s.iter_checked() {
                    let (k, v) = entry.map_err(mutated_during_update)?;
                    self.insert(py, k, v)?;
                }
            });
            return Ok(());
        }
        if arg.hasattr("keys")? {
            for k in arg.call_method0("keys")?.try_iter()? {
                let k = k?;
                let v = arg.get_item(&k)?;
                self.insert(py, Obj::from_owned(k), Obj::from_owned(v))?;
            }
            return Ok(());
        }
        for (i, item) in arg.try_iter()?.enumerate() {
            let item = item?;
            let pair: Vec<Bound<'_, PyAny>> = match item.try_iter() {
                Ok(it) => it.collect::<PyResult<_>>()?,
                Err(e) if e.is_instance_of::<PyTypeError>(py) => {
                    return Err(PyTypeError::new_err(format!(
                        "cannot convert dictionary update sequence element #{i} to a sequence"
                    )))
                }
                Err(e) => return Err(e),
            };
            if pair.len() != 2 {
                return Err(PyValueError::new_err(format!(
                    "dictionary update sequence element #{i} has length {}; 2 is required",
                    pair.len()
                )));
            }
            let mut pair = pair.into_iter();
            let (k, v) = (pair.next(), pair.next());
            if let (Some(k), Some(v)) = (k, v) {
                self.insert(py, Obj::from_owned(k), Obj::from_owned(v))?;
            }
        }
        Ok(())
    }

    fn update_impl(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
        name: &str,
    ) -> PyResult<()> {
        if args.len() > 1 {
            return Err(PyTypeError::new_err(format!(
                "{name} expected at most 1 argument, got {}",
                args.len()
            )));
        }
        if let Ok(arg) = args.get_item(0) {
            self.update_from(py, &arg)?;
        }
        if let Some(kw) = kwargs {
            for (k, v) in kw.iter() {
                if !k.is_instance_of::<PyString>() {
                    return Err(PyTypeError::new_err("keywords must be strings"));
                }
                self.insert(py, Obj::from_owned(k), Obj::from_owned(v))?;
            }
        }
        Ok(())
    }

    /// `self == other` for a dict or mapping `other`; `None` for "not comparable".
    fn equals(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Option<bool>> {
        let m = Model(py);
        let value_eq = |v: &Obj, w: &Obj| -> PyResult<bool> {
            Ok(v.addr() == w.addr() || v.bind(py).eq(w.bind(py))?)
        };
        if let Ok(o) = other.cast::<DictPy>() {
            let same = match (&*self.inner, &*o.get().inner) {
                (DictInner::GilFree(a), DictInner::GilFree(b)) => Some(a.eq_in(&m, b, value_eq)),
                (DictInner::Locked(a), DictInner::Locked(b)) => Some(a.eq_in(&m, b, value_eq)),
                _ => None,
            };
            if let Some(r) = same {
                return r.py().map(Some);
            }
        } else if !other.is_instance_of::<PyDict>() {
            return Ok(None);
        }
        // A builtin dict, or the other variant: look each of our entries up in it.
        let mine = self.snapshot();
        if mine.len() != other.len()? {
            return Ok(Some(false));
        }
        for (k, v) in &mine {
            let w = match other.get_item(k.bind(py)) {
                Ok(w) => Obj::from_owned(w),
                Err(e) if e.is_instance_of::<PyKeyError>(py) => return Ok(Some(false)),
                Err(e) => return Err(e),
            };
            if !value_eq(v, &w)? {
                return Ok(Some(false));
            }
        }
        Ok(Some(true))
    }
}

/// Whether `d` (a gilfree dict) iterates as gilfree dicts do: then `update`/`dict(d)` read its
/// entries directly, as CPython does for dict subclasses that keep `dict.__iter__`.
fn iter_not_overridden(d: &Bound<'_, PyAny>) -> bool {
    let py = d.py();
    match (
        d.get_type().getattr("__iter__"),
        py.get_type::<DictPy>().getattr("__iter__"),
    ) {
        (Ok(mine), Ok(base)) => mine.is(&base),
        _ => false,
    }
}

/// Visits every key and value (the garbage collector's `tp_traverse`). Takes no Python
/// reference; a `LockedDict` locked by this thread (never the case while the GIL can run the
/// collector) is skipped.
fn traverse_dict(inner: &DictInner, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
    match inner {
        DictInner::GilFree(d) => {
            let pinned = d.pin();
            for (k, v) in pinned.iter() {
                visit.call(k.py_ref())?;
                visit.call(v.py_ref())?;
            }
            Ok(())
        }
        DictInner::Locked(d) => {
            if let Some(f) = d.frozen() {
                for (k, v) in f.iter() {
                    visit.call(k.py_ref())?;
                    visit.call(v.py_ref())?;
                }
                return Ok(());
            }
            d.with_lock(|view| {
                for (k, v) in view.iter() {
                    visit.call(k.py_ref())?;
                    visit.call(v.py_ref())?;
                }
                Ok(())
            })
            .unwrap_or(Ok(()))
        }
    }
}

/// CPython's error for a dict that changes while it is merged into another.
fn mutated_during_update(e: Error) -> PyErr {
    match e {
        Error::ChangedSize | Error::KeysChanged => {
            PyRuntimeError::new_err("dict mutated during update")
        }
        e => plain_err(e),
    }
}

/// `key` as the argument tuple of a `KeyError` (a tuple key stays one argument).
fn key_error(key: &Bound<'_, PyAny>) -> PyErr {
    PyKeyError::new_err((key.clone().unbind(),))
}

#[pymethods]
impl DictPy {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn __new__(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> DictPy {
        DictPy::from_inner(DictInner::GilFree(GilFreeDict::new()))
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __init__(
        slf: &Bound<'_, Self>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let _s = Settle::write();
        let name = slf.get_type().name()?.to_string();
        slf.get().update_impl(slf.py(), args, kwargs, &name)
    }

    fn __len__(&self) -> usize {
        self.len()
    }

    fn __getitem__(slf: &Bound<'_, Self>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let _s = Settle::read();
        let py = slf.py();
        if let Some(v) = slf.get().lookup(py, &Obj::probe(key))? {
            return Ok(v);
        }
        // Subclasses may define `__missing__`, as for `dict`.
        if !slf.is_exact_instance_of::<DictPy>() && !slf.is_exact_instance_of::<LockedDictPy>() {
            if let Ok(missing) = slf.get_type().getattr("__missing__") {
                return Ok(missing.call1((slf, key))?.unbind());
            }
        }
        Err(key_error(key))
    }

    fn __setitem__(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let _s = Settle::write();
        let m = Model(py);
        // The key object is taken (an incref) only if absent: an overwrite keeps the stored
        // key, as CPython's dict does, and has no key to release. The replaced value is
        // released here rather than queued for `settle`.
        let old =
            on_dict!(&*self.inner, d => d.insert_ref_in(&m, &*Obj::probe(key), Obj::new(value)))
                .py()?;
        if let Some(old) = old {
            old.release(py);
        }
        Ok(())
    }

    fn __delitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let _s = Settle::write();
        let m = Model(py);
        // The removed value is released here. (Matched as `Some(_)`, it was a temporary of
        // the method's last expression, dropped after `_s`: queued past this call's `settle`,
        // so its `__del__` waited for the next write.)
        match on_dict!(&*self.inner, d => d.remove_in(&m, &Obj::probe(key))).py()? {
            Some(old) => {
                old.release(py);
                Ok(())
            }
            None => Err(key_error(key)),
        }
    }

    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let _s = Settle::read();
        let m = Model(py);
        on_dict!(&*self.inner, d => d.contains_key_in(&m, &Obj::probe(key))).py()
    }

    fn __iter__(slf: &Bound<'_, Self>) -> DictIterPy {
        DictIterPy::new(slf, ViewKind::Keys)
    }

    fn __reversed__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let _s = Settle::read();
        let keys: Vec<Py<PyAny>> = self
            .snapshot()
            .iter()
            .rev()
            .map(|(k, _)| k.to_py(py))
            .collect();
        Ok(PyList::new(py, keys)?.try_iter()?.into_any().unbind())
    }

    fn __richcmp__(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        let _deeper = crate::stack::deeper("in comparison")?;
        let _s = Settle::read();
        let eq = match op {
            CompareOp::Eq | CompareOp::Ne => self.equals(py, other)?,
            _ => None,
        };
        Ok(match eq {
            Some(eq) => (eq == matches!(op, CompareOp::Eq))
                .into_pyobject(py)?
                .to_owned()
                .into_any()
                .unbind(),
            None => py.NotImplemented(),
        })
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let _deeper = crate::stack::deeper("while getting the repr of an object")?;
        let _s = Settle::read();
        let py = slf.py();
        repr_guarded(slf.as_any(), "{...}", || {
            let mut out = String::from("{");
            for (i, (k, v)) in slf.get().snapshot().iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&repr_of(k.bind(py))?);
                out.push_str(": ");
                out.push_str(&repr_of(v.bind(py))?);
            }
            out.push('}');
            Ok(out)
        })
    }

    fn keys(slf: &Bound<'_, Self>) -> DictViewPy {
        DictViewPy::new(slf, ViewKind::Keys)
    }

    fn values(slf: &Bound<'_, Self>) -> DictViewPy {
        DictViewPy::new(slf, ViewKind::Values)
    }

    fn items(slf: &Bound<'_, Self>) -> DictViewPy {
        DictViewPy::new(slf, ViewKind::Items)
    }

    #[pyo3(signature = (key, default=None))]
    fn get(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let _s = Settle::read();
        Ok(match self.lookup(py, &Obj::probe(key))? {
            Some(v) => v,
            None => default.unwrap_or_else(|| py.None()),
        })
    }

    #[pyo3(signature = (key, default=None))]
    fn setdefault(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let _s = Settle::write();
        let m = Model(py);
        let default = default.map_or_else(|| Obj::from_owned(py.None().into_bound(py)), Obj::new);
        let v = on_dict!(&*self.inner, d => d.setdefault_in(&m, Obj::new(key), default)).py()?;
        Ok(v.to_py(py))
    }

    /// `pop(key[, default])`.
    #[pyo3(signature = (key, *default))]
    fn pop(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        let _s = Settle::write();
        if default.len() > 1 {
            return Err(PyTypeError::new_err(format!(
                "pop expected at most 2 arguments, got {}",
                default.len() + 1
            )));
        }
        let m = Model(py);
        match on_dict!(&*self.inner, d => d.remove_in(&m, &Obj::probe(key))).py()? {
            Some(v) => Ok(v.into_py()),
            None => match default.get_item(0) {
                Ok(d) => Ok(d.unbind()),
                Err(_) => Err(key_error(key)),
            },
        }
    }

    fn popitem(&self) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        let _s = Settle::write();
        match on_dict!(&*self.inner, d => d.popitem()).py()? {
            Some((k, v)) => Ok((k.into_py(), v.into_py())),
            None => Err(PyKeyError::new_err("popitem(): dictionary is empty")),
        }
    }

    fn clear(&self) -> PyResult<()> {
        let _s = Settle::write();
        on_dict!(&*self.inner, d => d.clear()).py()
    }

    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let _s = Settle::read();
        DictPy::wrap(py, self.inner.copy())
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn update(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let _s = Settle::write();
        self.update_impl(py, args, kwargs, "update")
    }

    /// `cls.fromkeys(iterable, value=None)`: `cls()` then `d[key] = value` for each key (a
    /// subclass's `__init__`/`__setitem__` run, as for `dict`).
    #[classmethod]
    #[pyo3(signature = (iterable, value=None))]
    fn fromkeys<'py>(
        cls: &Bound<'py, PyType>,
        iterable: &Bound<'py, PyAny>,
        value: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _s = Settle::write();
        let py = cls.py();
        let value = value.cloned().unwrap_or_else(|| py.None().into_bound(py));
        let d = cls.call0()?;
        let exact = d.is_exact_instance_of::<DictPy>() || d.is_exact_instance_of::<LockedDictPy>();
        for key in iterable.try_iter()? {
            let key = key?;
            match d.cast::<DictPy>() {
                Ok(ours) if exact => {
                    ours.get()
                        .insert(py, Obj::from_owned(key), Obj::new(&value))?
                }
                _ => d.set_item(key, &value)?,
            }
        }
        Ok(d)
    }

    fn __or__<'py>(
        &self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _s = Settle::write();
        if !(other.is_instance_of::<DictPy>() || other.is_instance_of::<PyDict>()) {
            return Ok(py.NotImplemented().into_bound(py));
        }
        let new = DictPy::wrap(py, self.inner.copy())?;
        new.cast::<DictPy>()?.get().update_from(py, other)?;
        Ok(new)
    }

    fn __ror__<'py>(
        &self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _s = Settle::write();
        if !(other.is_instance_of::<DictPy>() || other.is_instance_of::<PyDict>()) {
            return Ok(py.NotImplemented().into_bound(py));
        }
        let new = DictPy::wrap(py, self.inner.empty_like())?;
        let d = new.cast::<DictPy>()?.get();
        d.update_from(py, other)?;
        for (k, v) in self.snapshot() {
            d.insert(py, k, v)?;
        }
        Ok(new)
    }

    fn __ior__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<()> {
        let _s = Settle::write();
        self.update_from(py, other)
    }

    /// Pickling: `type(self)(list(self.items()))`.
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyType>, (Bound<'py, PyList>,))> {
        let _s = Settle::read();
        let py = slf.py();
        let items: Vec<Bound<'py, PyTuple>> = slf
            .get()
            .snapshot()
            .iter()
            .map(|(k, v)| PyTuple::new(py, [k.to_py(py), v.to_py(py)]))
            .collect::<PyResult<_>>()?;
        Ok((slf.get_type(), (PyList::new(py, items)?,)))
    }

    /// `Dict[str, int]`-style subscription for type hints (`types.GenericAlias`).
    #[classmethod]
    fn __class_getitem__<'py>(
        cls: &Bound<'py, PyType>,
        item: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::obj::generic_alias(cls, item)
    }

    /// Freezes this dict only (its values stay as they are; `gilfree.freeze` freezes a tree).
    fn freeze(&self) -> PyResult<()> {
        on_dict!(&*self.inner, d => d.freeze()).py()
    }

    /// Whether the dict is frozen.
    #[getter]
    fn frozen(&self) -> bool {
        on_dict!(&*self.inner, d => d.is_frozen())
    }

    /// A tag that changes on every mutation (for inline caches).
    #[getter]
    fn version(&self) -> u64 {
        on_dict!(&*self.inner, d => d.version())
    }

    /// `"gilfree"` or `"locked"`: the Rust dict behind this object.
    #[getter]
    fn variant(&self) -> &'static str {
        match &*self.inner {
            DictInner::GilFree(_) => "gilfree",
            DictInner::Locked(_) => "locked",
        }
    }

    #[classattr]
    fn __hash__(py: Python<'_>) -> Py<PyAny> {
        py.None()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        traverse_dict(&self.inner, &visit)
    }

    /// Breaks reference cycles (a frozen dict cannot be cleared: cycles through it stay).
    fn __clear__(&self) {
        let _s = Settle::write();
        let _ = on_dict!(&*self.inner, d => d.clear());
    }
}

/// `keys()`, `values()`, `items()`: live views of a dict.
#[pyclass(module = "gilfree", name = "DictView", frozen)]
pub struct DictViewPy {
    dict: Py<DictPy>,
    kind: ViewKind,
}

impl DictViewPy {
    fn new(dict: &Bound<'_, DictPy>, kind: ViewKind) -> DictViewPy {
        DictViewPy {
            dict: dict.clone().unbind(),
            kind,
        }
    }
}

#[pymethods]
impl DictViewPy {
    fn __len__(&self) -> usize {
        self.dict.get().len()
    }

    fn __iter__(&self, py: Python<'_>) -> DictIterPy {
        DictIterPy::new(self.dict.bind(py), self.kind)
    }

    fn __reversed__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let _s = Settle::read();
        let items = self.materialize(py)?;
        items.reverse()?;
        Ok(items.try_iter()?.into_any().unbind())
    }

    fn __contains__(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<bool> {
        let _s = Settle::read();
        let d = self.dict.get();
        match self.kind {
            ViewKind::Keys => {
                let m = Model(py);
                on_dict!(&*d.inner, d => d.contains_key_in(&m, &Obj::probe(x))).py()
            }
            ViewKind::Items => {
                let Ok(pair) = x.cast::<PyTuple>() else {
                    return Ok(false);
                };
                if pair.len() != 2 {
                    return Ok(false);
                }
                let (k, v) = (pair.get_item(0)?, pair.get_item(1)?);
                match d.lookup(py, &Obj::probe(&k))? {
                    Some(w) => Ok(w.as_ptr() == v.as_ptr() || w.bind(py).eq(&v)?),
                    None => Ok(false),
                }
            }
            ViewKind::Values => {
                for (_, v) in d.snapshot() {
                    if v.addr() == x.as_ptr() as usize || v.bind(py).eq(x)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }

    /// Set comparisons of keys and items views (values views compare by identity), as
    /// CPython's `dictview_richcompare`: sizes first, then containment of every element.
    fn __richcmp__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        let _deeper = crate::stack::deeper("in comparison")?;
        let _s = Settle::read();
        let py = slf.py();
        let this = slf.get();
        if this.kind == ViewKind::Values || !is_set_like(other)? {
            return Ok(py.NotImplemented());
        }
        let (a, b) = (this.__len__(), other.len()?);
        let me = slf.as_any();
        let r = match op {
            CompareOp::Eq => a == b && all_contained_in(me, other)?,
            CompareOp::Ne => !(a == b && all_contained_in(me, other)?),
            CompareOp::Lt => a < b && all_contained_in(me, other)?,
            CompareOp::Le => a <= b && all_contained_in(me, other)?,
            CompareOp::Gt => a > b && all_contained_in(other, me)?,
            CompareOp::Ge => a >= b && all_contained_in(other, me)?,
        };
        Ok(r.into_pyobject(py)?.to_owned().into_any().unbind())
    }

    fn __and__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        set_op(slf, other, "__and__", false)
    }

    fn __rand__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        set_op(slf, other, "__and__", true)
    }

    fn __or__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        set_op(slf, other, "__or__", false)
    }

    fn __ror__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        set_op(slf, other, "__or__", true)
    }

    fn __xor__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        set_op(slf, other, "__xor__", false)
    }

    fn __rxor__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        set_op(slf, other, "__xor__", true)
    }

    fn __sub__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        set_op(slf, other, "__sub__", false)
    }

    fn __rsub__<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        set_op(slf, other, "__sub__", true)
    }

    /// Whether the view and `other` have no element in common.
    fn isdisjoint(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let _s = Settle::read();
        for x in other.try_iter()? {
            if slf.as_any().contains(x?)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A read-only proxy of the dict the view belongs to.
    #[getter]
    fn mapping<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("types")?
            .getattr("MappingProxyType")?
            .call1((self.dict.bind(py),))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.dict)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let _deeper = crate::stack::deeper("while getting the repr of an object")?;
        let _s = Settle::read();
        let name = match self.kind {
            ViewKind::Keys => "dict_keys",
            ViewKind::Values => "dict_values",
            ViewKind::Items => "dict_items",
        };
        Ok(format!(
            "{name}({})",
            repr_of(self.materialize(py)?.as_any())?
        ))
    }
}

/// A set, a frozenset, a keys/items view, or any `collections.abc.Set`.
fn is_set_like(o: &Bound<'_, PyAny>) -> PyResult<bool> {
    if o.is_instance_of::<PySet>() || o.is_instance_of::<PyFrozenSet>() {
        return Ok(true);
    }
    if let Ok(v) = o.cast::<DictViewPy>() {
        return Ok(v.get().kind != ViewKind::Values);
    }
    let abc_set = o.py().import("collections.abc")?.getattr("Set")?;
    o.is_instance(&abc_set)
}

/// Whether every element of `a` is in `b`.
fn all_contained_in(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<bool> {
    for x in a.try_iter()? {
        if !b.contains(x?)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `view op other` (or `other op view`) as CPython computes it: on a `set` of the view.
fn set_op<'py>(
    slf: &Bound<'py, DictViewPy>,
    other: &Bound<'py, PyAny>,
    op: &str,
    reflected: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let _s = Settle::read();
    let py = slf.py();
    if slf.get().kind == ViewKind::Values || other.try_iter().is_err() {
        return Ok(py.NotImplemented().into_bound(py));
    }
    let mine = PySet::new(py, slf.get().materialize(py)?.iter())?;
    let theirs = PySet::empty(py)?;
    for x in other.try_iter()? {
        theirs.add(x?)?;
    }
    if reflected {
        theirs.call_method1(op, (mine,))
    } else {
        mine.call_method1(op, (theirs,))
    }
}

impl DictViewPy {
    fn materialize<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self.dict.get().snapshot();
        let out = PyList::empty(py);
        for (k, v) in &items {
            match self.kind {
                ViewKind::Keys => out.append(k.bind(py))?,
                ViewKind::Values => out.append(v.bind(py))?,
                ViewKind::Items => out.append(PyTuple::new(py, [k.to_py(py), v.to_py(py)])?)?,
            }
        }
        Ok(out)
    }
}

/// A checked iterator over one of the two dicts.
enum CheckedIter {
    GilFree(IterChecked<'static, Obj, Obj, GilFreeDict<Obj, Obj>>),
    Locked(IterChecked<'static, Obj, Obj, LockedDict<Obj, Obj>>),
}

/// What a live dict iterator holds.
struct IterState {
    /// Borrows `*dict`: declared first, so it is dropped before the `Arc`.
    it: CheckedIter,
    _dict: Arc<DictInner>,
    /// Keeps the Python object alive while the iteration runs, as CPython's iterators do.
    owner: Py<DictPy>,
    /// Entries yielded so far (a checked iteration yields them in order, without holes).
    yielded: usize,
}

/// The iterator of a dict or of one of its views: CPython's `dictiterator` semantics
/// ("dictionary changed size during iteration"), from gilfree's `iter_checked`. It holds no
/// lock and no epoch pin between steps. It releases the dict once exhausted.
#[pyclass(module = "gilfree", name = "DictIterator", frozen)]
pub struct DictIterPy {
    state: Mutex<Option<IterState>>,
    kind: ViewKind,
}

impl DictIterPy {
    fn new(dict: &Bound<'_, DictPy>, kind: ViewKind) -> DictIterPy {
        let arc = Arc::clone(&dict.get().inner);
        // SAFETY: the reference points into the allocation of `arc`, whose contents never
        // move; `IterState` keeps `arc` alive and drops the iterator (its first field) before
        // it, so the reference never outlives the dict.
        let inner: &'static DictInner = unsafe { &*Arc::as_ptr(&arc) };
        let it = match inner {
            DictInner::GilFree(d) => CheckedIter::GilFree(d.iter_checked()),
            DictInner::Locked(d) => CheckedIter::Locked(d.iter_checked()),
        };
        DictIterPy {
            state: Mutex::new(Some(IterState {
                it,
                _dict: arc,
                owner: dict.clone().unbind(),
                yielded: 0,
            })),
            kind,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<IterState>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl DictIterPy {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let _s = Settle::read();
        // The dict is released (possibly running `__del__`, which may call `next` on this
        // iterator again) only after the state lock is dropped.
        let mut finished = None;
        let step = {
            let mut state = self.lock();
            let step = match state.as_mut() {
                None => None,
                Some(s) => match &mut s.it {
                    CheckedIter::GilFree(it) => it.next(),
                    CheckedIter::Locked(it) => it.next(),
                },
            };
            match (&step, state.as_mut()) {
                (Some(Ok(_)), Some(s)) => s.yielded += 1,
                _ => finished = state.take(),
            }
            step
        };
        drop(finished);
        match step {
            None => Ok(None),
            Some(Err(e)) => Err(plain_err(e)),
            Some(Ok((k, v))) => Ok(Some(match self.kind {
                ViewKind::Keys => k.to_py(py),
                ViewKind::Values => v.to_py(py),
                ViewKind::Items => PyTuple::new(py, [k.to_py(py), v.to_py(py)])?
                    .into_any()
                    .unbind(),
            })),
        }
    }

    /// Pickling, as CPython pickles a dict iterator: `iter(list_of_what_is_left)`.
    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyList>,))> {
        let _s = Settle::read();
        let left = PyList::empty(py);
        if let Some(s) = self.lock().as_ref() {
            for (k, v) in s.owner.get().snapshot().iter().skip(s.yielded) {
                match self.kind {
                    ViewKind::Keys => left.append(k.bind(py))?,
                    ViewKind::Values => left.append(v.bind(py))?,
                    ViewKind::Items => {
                        left.append(PyTuple::new(py, [k.to_py(py), v.to_py(py)])?)?
                    }
                }
            }
        }
        Ok((py.import("builtins")?.getattr("iter")?, (left,)))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(state) = self.state.try_lock() {
            if let Some(s) = state.as_ref() {
                visit.call(&s.owner)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let finished = self.lock().take();
        drop(finished);
    }
}
