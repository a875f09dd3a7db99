//! Hand-written entry points for the binding's hottest list operations: the `l[i]` and
//! `l[i] = x` slots (an exact `int` index) and the `append` and `pop` methods.
//!
//! CPython calls a type's mapping slots, and a method descriptor's C function, directly. What
//! PyO3 makes for them goes through its trampoline first: an attach guard (two calls to
//! `__tls_get_addr` in an extension module, which cannot use the initial-exec thread-local
//! model), a panic boundary and the argument conversion, about a quarter of a 30 ns `l[i]`.
//! PyO3's methods also take keywords (`METH_FASTCALL | METH_KEYWORDS`), for which CPython's
//! specializing interpreter has a slower call path than for the builtin list's `METH_O`
//! `append` and `METH_FASTCALL` `pop`.
//!
//! ## What they do themselves, and what they hand to PyO3
//!
//! Each entry point does the common case itself: `l[i]` and `l[i] = x` with an exact `int`
//! that fits an `isize`, in range; `append(x)` on a list that is not frozen; `pop()` or
//! `pop(i)` with an exact `int`, on a list that is not empty (`i` in range). Everything else
//! (`del l[i]`, a slice, another index type, an error) goes to the function PyO3 made, saved
//! when this one is installed, which raises the same errors as before. An error leaves the
//! list unchanged (gilfree's contract), and a failed write does not settle (no `__del__` runs
//! between the two attempts), so PyO3's function sees the list the failed attempt saw. A panic
//! (none is expected: these paths run no user code) is raised as PyO3's `PanicException` for
//! the writes, whose effect cannot be undone, and handed to PyO3's slot for the read, which
//! repeats it under its own panic boundary.
//!
//! Argument handling is now CPython's, as for the builtin list: `append` and `pop` take no
//! keywords (`l.append(x=1)` and `l.pop(i=0)` raise `TypeError`, which PyO3's methods
//! accepted), and a wrong argument count raises CPython's message.
//!
//! The slots are installed on `gilfree.List` and `gilfree.LockedList`; the methods replace
//! PyO3's on `List`, and `LockedList` gets descriptors of its own (CPython's specialized call
//! of a method descriptor needs `self`'s exact type). A Python subclass inherits the methods
//! but not the slots: CPython fills a new class's slot from the `__getitem__`/`__setitem__`
//! wrapper it finds on the MRO, which wraps PyO3's function, so subclasses take PyO3's path
//! for `l[i]` and `l[i] = x` (same behaviour, without the saving). `List.__getitem__(l, i)`
//! called by name runs PyO3's too.
//!
//! ## Why they may skip PyO3's attach count
//!
//! Inside these functions PyO3's count says the thread is not attached, although it holds the
//! GIL. A `Py` dropped, or a `Python::attach` entered, in that state goes through PyO3's
//! deferred pool, whose processing runs `__del__` wherever the next attach happens (possibly
//! under a container lock). So nothing reached from here may do either: the read takes a new
//! reference (an incref); `pop` moves the item's reference out; `append` and `l[i] = x` take
//! one. What an unpin or a collection frees, and the item `l[i] = x` replaces, are `Obj`s,
//! which only queue their reference; `settle` releases the queue with direct decrefs,
//! `Obj::clone` increfs directly (`obj`), and a panic is raised from a C string. The writes
//! end as every binding write does: `collect_retired`, then `settle`, with no gilfree lock
//! held, so a removed or replaced value's `__del__` still runs before the call returns. An
//! index read does not settle: what its unpin frees stays queued until the thread's next
//! settling call.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::PyTypeInfo;

use crate::list::{ListPy, LockedListPy};
use crate::obj::{Obj, Settle};

/// The `mp_subscript` and `mp_ass_subscript` PyO3 made for `ListPy` (`LockedListPy` inherits
/// them).
static PYO3_SUBSCRIPT: OnceLock<ffi::binaryfunc> = OnceLock::new();
static PYO3_ASS_SUBSCRIPT: OnceLock<ffi::objobjargproc> = OnceLock::new();

/// The `append` and `pop` PyO3 made for `ListPy`, saved at install.
static PYO3_APPEND: OnceLock<ffi::PyCFunctionFastWithKeywords> = OnceLock::new();
static PYO3_POP: OnceLock<ffi::PyCFunctionFastWithKeywords> = OnceLock::new();

/// Installs the hand-written entry points on the list types (at module init, before any list
/// exists).
pub fn install(py: Python<'_>) -> PyResult<()> {
    PANIC_TYPE.get_or_init(|| {
        PanicType(pyo3::panic::PanicException::type_object_raw(py).cast::<ffi::PyObject>())
    });
    install_subscript(py);
    let tp = ListPy::type_object(py).as_type_ptr();
    let locked = LockedListPy::type_object(py).as_type_ptr();
    let append_meth = ffi::PyMethodDefPointer {
        PyCFunction: append,
    };
    let pop_meth = ffi::PyMethodDefPointer {
        PyCFunctionFast: pop,
    };
    // SAFETY: `tp` is `ListPy`'s live type object (held by PyO3's type cell), the GIL is held,
    // and module init runs before any list exists.
    unsafe {
        for (name, meth, flags, doc, saved) in [
            (
                c"append",
                append_meth,
                ffi::METH_O,
                APPEND_DOC,
                &PYO3_APPEND,
            ),
            (c"pop", pop_meth, ffi::METH_FASTCALL, POP_DOC, &PYO3_POP),
        ] {
            if let Some(def) = install_method(py, tp, name, meth, flags, doc, saved)? {
                // `LockedList` gets a descriptor of its own: CPython's specialized call of a
                // method descriptor requires `self`'s type to be exactly the descriptor's.
                add_method(py, locked, name, def)?;
            }
        }
    }
    Ok(())
}

/// The methods' docstrings, with the builtin list's positional-only signatures.
const APPEND_DOC: &std::ffi::CStr =
    c"append($self, object, /)\n--\n\nAppend object to the end of the list.";
const POP_DOC: &std::ffi::CStr = c"pop($self, index=-1, /)\n--\n\nRemove and return item at index (default last).\n\nRaises IndexError if list is empty or index is out of range.";

/// Replaces the method `name` PyO3 made on `tp` with `meth` (of calling convention `flags`)
/// and docstring `doc` (whose first lines give its signature), saves PyO3's function in `saved`,
/// and returns the new method's definition. Leaves PyO3's method in place (and returns
/// `None`) if it is not the `METH_FASTCALL | METH_KEYWORDS` method descriptor expected.
///
/// # Safety
///
/// `tp` is a live heap type, the GIL is held, and no instance of `tp` exists yet; `meth`
/// follows the calling convention `flags` names.
unsafe fn install_method(
    py: Python<'_>,
    tp: *mut ffi::PyTypeObject,
    name: &std::ffi::CStr,
    meth: ffi::PyMethodDefPointer,
    flags: std::ffi::c_int,
    doc: &'static std::ffi::CStr,
    saved: &OnceLock<ffi::PyCFunctionFastWithKeywords>,
) -> PyResult<Option<*mut ffi::PyMethodDef>> {
    // SAFETY: the caller's contract; `tp_dict` of a ready heap type is a dict it owns, and the
    // method definitions a descriptor points to live as long as the descriptor (PyO3's are
    // static; ours is leaked, for the life of the process, as a type's methods are).
    unsafe {
        let dict = (*tp).tp_dict;
        if dict.is_null() {
            return Ok(None);
        }
        let descr = ffi::PyDict_GetItemString(dict, name.as_ptr());
        if descr.is_null() || ffi::Py_TYPE(descr) != &raw mut ffi::PyMethodDescr_Type {
            return Ok(None);
        }
        let def = (*descr.cast::<ffi::PyMethodDescrObject>()).d_method;
        if (*def).ml_flags != ffi::METH_FASTCALL | ffi::METH_KEYWORDS {
            return Ok(None);
        }
        saved.get_or_init(|| (*def).ml_meth.PyCFunctionFastWithKeywords);
        let ours = Box::leak(Box::new(ffi::PyMethodDef {
            ml_name: (*def).ml_name,
            ml_meth: meth,
            ml_flags: flags,
            ml_doc: doc.as_ptr(),
        }));
        add_method(py, tp, name, ours)?;
        Ok(Some(ours))
    }
}

/// Sets a method descriptor for `def` as `tp`'s attribute `name`.
///
/// # Safety
///
/// As for [`install_method`]; `def` lives for the rest of the process, and its function
/// accepts every instance of `tp` as `self`.
unsafe fn add_method(
    py: Python<'_>,
    tp: *mut ffi::PyTypeObject,
    name: &std::ffi::CStr,
    def: *mut ffi::PyMethodDef,
) -> PyResult<()> {
    // SAFETY: the caller's contract.
    unsafe {
        let dict = (*tp).tp_dict;
        if dict.is_null() {
            return Ok(());
        }
        let new = Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(tp, def))?;
        if ffi::PyDict_SetItemString(dict, name.as_ptr(), new.as_ptr()) != 0 {
            return Err(PyErr::fetch(py));
        }
        ffi::PyType_Modified(tp);
    }
    Ok(())
}

/// Installs [`subscript`] and [`ass_subscript`] on the list types.
fn install_subscript(py: Python<'_>) {
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
            // Each slot: PyO3's function is saved (the first type's: `LockedList` inherits
            // it), and replaced where the type still has it.
            macro_rules! swap_slot {
                ($slot:ident, $saved:expr, $ours:expr) => {
                    if let Some(current) = (*mapping).$slot {
                        let pyo3s = *$saved.get_or_init(|| current);
                        if current as usize == pyo3s as usize {
                            (*mapping).$slot = Some($ours);
                            ffi::PyType_Modified(tp);
                        }
                    }
                };
            }
            swap_slot!(mp_subscript, PYO3_SUBSCRIPT, subscript);
            swap_slot!(mp_ass_subscript, PYO3_ASS_SUBSCRIPT, ass_subscript);
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
        if let Some(i) = exact_index(key) {
            let py = Python::assume_attached();
            let list = list_of(py, &slf);
            // A panic must not unwind into CPython: PyO3's slot then does the same read, under
            // its own panic boundary, which raises it as `PanicException`.
            let read = catch_unwind(AssertUnwindSafe(|| list.item(py, i)));
            if let Ok(Ok(item)) = read {
                return item.into_ptr();
            }
        }
        // Installed only after saving PyO3's slot, so it is there.
        match PYO3_SUBSCRIPT.get() {
            Some(pyo3s) => pyo3s(slf, key),
            None => not_set_up(),
        }
    }
}

/// `l[i] = x`: an exact `int` index stored here; everything else (`del l[i]`, a slice, another
/// index type, an error) by PyO3's slot.
unsafe extern "C" fn ass_subscript(
    slf: *mut ffi::PyObject,
    key: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
) -> std::ffi::c_int {
    // SAFETY: as in `subscript`; `value` is a live object, or NULL for `del l[i]`.
    unsafe {
        if let Some(i) = exact_index(key).filter(|_| !value.is_null()) {
            let py = Python::assume_attached();
            let list = list_of(py, &slf);
            let done = catch_unwind(AssertUnwindSafe(|| {
                let stored = list.put(i, Obj::new(Bound::ref_from_ptr(py, &value)));
                // The replaced item's reference is released here, before the statement
                // returns (on an error, by PyO3's slot, which then sees the same list).
                stored.is_ok() && finish_write(list)
            }));
            match done {
                Ok(true) => return 0,
                // The list is unchanged: PyO3's slot raises the error.
                Ok(false) => {}
                Err(payload) => {
                    raise_panic(payload);
                    return -1;
                }
            }
        }
        match PYO3_ASS_SUBSCRIPT.get() {
            Some(pyo3s) => pyo3s(slf, key, value),
            None => {
                not_set_up();
                -1
            }
        }
    }
}

/// `key` as an index, if it is an exact `int` that fits an `isize`; `None` otherwise (for
/// PyO3's function, which raises CPython's own error for a too-large `int`).
///
/// # Safety
///
/// The GIL is held and `key` is a live object.
unsafe fn exact_index(key: *mut ffi::PyObject) -> Option<isize> {
    // SAFETY: the caller's contract.
    unsafe {
        if ffi::PyLong_CheckExact(key) == 0 {
            return None;
        }
        let i = ffi::PyLong_AsSsize_t(key);
        if i == -1 && !ffi::PyErr_Occurred().is_null() {
            // Too large for an `isize`: the error is PyO3's function's to raise.
            ffi::PyErr_Clear();
            return None;
        }
        Some(i)
    }
}

/// `ListPy` behind a method's `self`.
///
/// # Safety
///
/// The GIL is held and `slf` is a live instance of `ListPy` or a subtype, borrowed for `'a`.
unsafe fn list_of<'a>(py: Python<'a>, slf: &'a *mut ffi::PyObject) -> &'a ListPy {
    // SAFETY: the caller's contract; `ListPy` is a frozen class, so `get` needs no borrow.
    unsafe {
        Bound::ref_from_ptr(py, slf)
            .cast_unchecked::<ListPy>()
            .get()
    }
}

/// What `Settle::write` does at the end of every binding write: frees what the write retired
/// and releases the thread's queue (running `__del__` methods), with no gilfree lock held.
/// Only after a write that succeeded: after an error, PyO3's function runs next, with the
/// list as the failed write left it, and settles itself. Returns `true`.
fn finish_write(list: &ListPy) -> bool {
    // A `LockedList` write retires nothing (it has no lock-free readers): no collection.
    drop(if list.retires() {
        Settle::write()
    } else {
        Settle::read()
    });
    true
}

/// Raises a panic caught in a write as PyO3's `PanicException`, and returns NULL. The error is
/// set from a C string on the exception type (made at install): PyO3's `PyErr::restore`
/// would drop `Py`s, which without PyO3's attach count go through its deferred pool.
fn raise_panic(payload: Box<dyn std::any::Any + Send>) -> *mut ffi::PyObject {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| String::from("panic in a gilfree list method"));
    let msg = std::ffi::CString::new(msg.replace('\0', " ")).unwrap_or_default();
    match PANIC_TYPE.get() {
        // SAFETY: called from an entry point, with the GIL held; the type object lives for
        // the process (PyO3 keeps it).
        Some(ty) => unsafe { ffi::PyErr_SetString(ty.0, msg.as_ptr()) },
        None => return not_set_up(),
    }
    std::ptr::null_mut()
}

/// PyO3's `PanicException` type, made at install (with PyO3's attach count up).
struct PanicType(*mut ffi::PyObject);

// SAFETY: a type object that lives for the process, only used with the GIL held.
unsafe impl Send for PanicType {}
// SAFETY: as above.
unsafe impl Sync for PanicType {}

static PANIC_TYPE: OnceLock<PanicType> = OnceLock::new();

/// `l.append(x)` (`METH_O`).
unsafe extern "C" fn append(slf: *mut ffi::PyObject, x: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a method descriptor's function with the GIL held, `slf` an instance
    // of the descriptor's type (`ListPy`) or a subtype, checked by the descriptor, and `x` a
    // live object; both are borrowed for the call.
    unsafe {
        let py = Python::assume_attached();
        let list = list_of(py, &slf);
        let done = catch_unwind(AssertUnwindSafe(|| {
            list.push(Obj::new(Bound::ref_from_ptr(py, &x))).is_ok() && finish_write(list)
        }));
        match done {
            Ok(true) => py.None().into_ptr(),
            // The list is unchanged: PyO3's method raises the error.
            Ok(false) => match PYO3_APPEND.get() {
                Some(pyo3s) => pyo3s(slf, &x, 1, std::ptr::null_mut()),
                None => not_set_up(),
            },
            Err(payload) => raise_panic(payload),
        }
    }
}

/// `l.pop()` and `l.pop(i)` (`METH_FASTCALL`).
unsafe extern "C" fn pop(
    slf: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    // SAFETY: as in `append`; `args` holds `nargs` live objects, borrowed for the call.
    unsafe {
        let py = Python::assume_attached();
        let index = match nargs {
            0 => Some(-1),
            1 => exact_index(*args),
            _ => None,
        };
        if let Some(i) = index {
            let list = list_of(py, &slf);
            let done = catch_unwind(AssertUnwindSafe(|| {
                let item = list.pop_item(i).ok();
                item.filter(|_| finish_write(list))
            }));
            match done {
                Ok(Some(item)) => return item.into_py().into_ptr(),
                // The list is unchanged: PyO3's method raises the error.
                Ok(None) => {}
                Err(payload) => return raise_panic(payload),
            }
        }
        match PYO3_POP.get() {
            Some(pyo3s) => pyo3s(slf, args, nargs, std::ptr::null_mut()),
            None => not_set_up(),
        }
    }
}

/// Raises `SystemError` for an entry point whose PyO3 function was not saved (unreachable:
/// each is installed only after saving it).
fn not_set_up() -> *mut ffi::PyObject {
    // SAFETY: called from an entry point, with the GIL held.
    unsafe {
        ffi::PyErr_SetString(
            ffi::PyExc_SystemError,
            c"gilfree: list entry point not set up".as_ptr(),
        );
    }
    std::ptr::null_mut()
}
