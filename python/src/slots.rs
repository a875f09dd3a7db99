//! A hand-written type slot for the binding's hottest read, `l[i]` with an exact `int` index.
//!
//! CPython calls a type's `mp_subscript` slot directly. The slot PyO3 makes for `__getitem__`
//! goes through its trampoline first: an attach guard (two calls to `__tls_get_addr` in an
//! extension module, which cannot use the initial-exec thread-local model), a panic boundary
//! and the argument conversion, about a quarter of a 30 ns `l[i]`. The slot here does the
//! common case itself: an exact `int` that fits an `isize`, in range. Everything else (a
//! slice, another index type, an index out of range or too large, a panic) goes to the slot
//! PyO3 made, saved when this one is installed, so every error and every other case behaves
//! exactly as through `__getitem__`.
//!
//! The slot is installed on `gilfree.List` and `gilfree.LockedList` at module init. A Python
//! subclass does not get it: CPython fills a new class's slot from the `__getitem__` wrapper
//! it finds on the MRO, which wraps PyO3's function, so subclasses take PyO3's path (same
//! behaviour, without the saving). `List.__getitem__(l, i)` called by name runs PyO3's too.
//!
//! Only this read is done so. It calls nothing that needs PyO3 to know the thread is attached:
//! it takes a new reference to the item (an incref), and what its unpin may free are `Obj`s,
//! which only queue their reference (`obj`), released at the thread's next settling call.
//! (One path would: `LockedList::get_with` on a list this thread has locked clones the `Obj`,
//! whose `Python::attach` then drains PyO3's pool; the binding never runs Python code under a
//! list lock, so it is not reached today.) A write would not be safe here: it releases
//! references, and a `Py` dropped, or a `Python::attach` entered, while PyO3's count says the
//! thread is not attached goes through PyO3's deferred pool, whose processing runs `__del__`
//! wherever the next attach happens (possibly under a container lock).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::PyTypeInfo;

use crate::list::{ListPy, LockedListPy};

/// The `mp_subscript` PyO3 made for `ListPy` (`LockedListPy` inherits it).
static PYO3_SUBSCRIPT: OnceLock<ffi::binaryfunc> = OnceLock::new();

/// Installs [`subscript`] on the list types (at module init, before any list exists).
pub fn install(py: Python<'_>) {
    for ty in [ListPy::type_object(py), LockedListPy::type_object(py)] {
        let tp = ty.as_type_ptr();
        // SAFETY: `tp` is a live heap type (PyO3 made it, and `ty` holds a reference); its
        // mapping methods are its own `PyHeapTypeObject::as_mapping`, which the type owns
        // and CPython reads without caching until `PyType_Modified` says it changed. The
        // GIL is held (`py`).
        unsafe {
            let mapping = (*tp).tp_as_mapping;
            if mapping.is_null() {
                continue;
            }
            let Some(current) = (*mapping).mp_subscript else {
                continue;
            };
            let pyo3s = *PYO3_SUBSCRIPT.get_or_init(|| current);
            if current as usize == pyo3s as usize {
                (*mapping).mp_subscript = Some(subscript);
                ffi::PyType_Modified(tp);
            }
        }
    }
}

/// `l[i]`: an exact `int` index read here, everything else by PyO3's slot.
unsafe extern "C" fn subscript(
    slf: *mut ffi::PyObject,
    key: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a type's `mp_subscript` with the GIL held, with `slf` an instance
    // of that type, and the slot is installed only on `ListPy` and types derived from it (a
    // Python subclass's instance starts with the `ListPy` layout), so `slf` is a live `ListPy`
    // and `key` a live object, both borrowed for the call.
    unsafe {
        if ffi::PyLong_CheckExact(key) != 0 {
            let i = ffi::PyLong_AsSsize_t(key);
            if i == -1 && !ffi::PyErr_Occurred().is_null() {
                // Too large for an `isize`: PyO3's slot raises CPython's own error for it.
                ffi::PyErr_Clear();
            } else {
                let py = Python::assume_attached();
                let list = Bound::ref_from_ptr(py, &slf)
                    .cast_unchecked::<ListPy>()
                    .get();
                // A panic must not unwind into CPython: PyO3's slot then does the same read,
                // under its own panic boundary, which raises it as `PanicException`.
                let read = catch_unwind(AssertUnwindSafe(|| list.item(py, i)));
                if let Ok(Ok(item)) = read {
                    return item.into_ptr();
                }
            }
        }
        // Installed only after saving PyO3's slot, so it is there.
        match PYO3_SUBSCRIPT.get() {
            Some(pyo3s) => pyo3s(slf, key),
            None => {
                ffi::PyErr_SetString(
                    ffi::PyExc_SystemError,
                    c"gilfree: l[i] slot not set up".as_ptr(),
                );
                std::ptr::null_mut()
            }
        }
    }
}
