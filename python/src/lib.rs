//! The CPython binding of gilfree: `gilfree.Dict`, `gilfree.List` (and their `Locked*`
//! variants) holding arbitrary Python objects, and `gilfree.freeze`.
//!
//! Keys hash and compare through Python's `__hash__`/`__eq__` by way of gilfree's object-model
//! traits ([`obj::Model`] implements `KeyModel<Obj>`); exceptions raised there propagate as
//! Python exceptions, and gilfree's own errors become the exceptions CPython raises in the
//! same situation ([`obj::to_py_err`]). See `obj` for how the binding keeps `__del__` and the
//! GIL away from gilfree's locks.

mod dict;
mod list;
mod obj;
mod slots;
mod stack;

use pyo3::prelude::*;

use crate::obj::{IntoPy, Obj, Settle};

/// Freezes every gilfree container reachable from `obj`, in place, all or nothing. Values
/// must be immutable (None, bool, int, float, complex, str, bytes, range, tuples and
/// frozensets of these) or gilfree dicts and lists; anything else makes it fail with `TypeError`
/// naming the path to the offending value, and then nothing is frozen.
#[pyfunction]
fn freeze(obj: &Bound<'_, PyAny>) -> PyResult<()> {
    let _s = Settle::read();
    gilfree::freeze(&Obj::new(obj)).py()
}

/// A frozen deep copy of the tree under `obj`; the original stays mutable.
#[pyfunction]
fn frozen_copy(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let _s = Settle::read();
    let copy = gilfree::frozen_copy(&Obj::new(obj)).py()?;
    Ok(copy.to_py(py))
}

/// The Python module `gilfree`. It needs the GIL (`gil_used = true`): the binding relies on it
/// to free removed values promptly (see `obj`), and a free-threaded CPython therefore enables
/// the GIL when it imports the module.
#[pymodule(name = "gilfree", gil_used = true)]
mod gilfree_module {
    #[pymodule_export]
    use super::dict::{DictIterPy, DictPy, DictViewPy, LockedDictPy};
    #[pymodule_export]
    use super::list::{ListIterPy, ListPy, LockedListPy};
    #[pymodule_export]
    use super::obj::FrozenError;
    #[pymodule_export]
    use super::{freeze, frozen_copy};

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::{PyAnyMethods, PyModuleMethods};
        m.add("MAX_LOOKUP_RESTARTS", gilfree::MAX_LOOKUP_RESTARTS)?;
        super::obj::note_gil(m.py())?;
        super::slots::install(m.py())?;
        // `isinstance(d, collections.abc.Mapping)` etc., as for dict and list (UserDict and
        // friends compare with registered mappings).
        let abc = m.py().import("collections.abc")?;
        abc.getattr("MutableMapping")?
            .call_method1("register", (m.getattr("Dict")?,))?;
        abc.getattr("MutableSequence")?
            .call_method1("register", (m.getattr("List")?,))?;
        Ok(())
    }
}
