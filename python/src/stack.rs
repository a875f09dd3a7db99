//! Native stack protection for the binding's recursive entry points.
//!
//! `repr`, `==` and ordering of nested containers recurse through Rust: `repr(d)` calls
//! `repr` of each value, which may be another `gilfree.Dict`, whose `__repr__` runs in a new
//! Rust frame, and so on. CPython bounds such recursion by a count (`sys.getrecursionlimit()`
//! up to 3.11; from 3.12 a separate C recursion limit of several thousand levels), sized for
//! its own small C frames. Through the binding each level costs more native stack (PyO3's
//! trampoline, the method, formatting), so a deep tree that CPython's count allows can
//! overflow the thread's stack and crash the process (seen on CPython 3.13: 10,000 levels of
//! `repr` on an 8 MiB stack).
//!
//! So every such entry point first checks how much of the thread's stack is left, and raises
//! `RecursionError` (as CPython does at its own limit) when less than [`MARGIN`] remains. The
//! stack's bounds are read once per thread (`pthread_getattr_np`); where they cannot be read
//! (other platforms, or the call fails) the check falls back to a depth count.

use std::cell::Cell;

use pyo3::exceptions::PyRecursionError;
use pyo3::PyResult;

/// Stack that must remain when a recursive entry point starts: room for one more level of
/// the binding and CPython (a few KiB) many times over, and for a Python `__repr__`/`__eq__`
/// called from it.
const MARGIN: usize = 256 * 1024;

std::thread_local! {
    /// The lowest usable address of this thread's stack plus [`MARGIN`]; 0 before the first
    /// check; `usize::MAX` when the bounds are unknown.
    static LIMIT: Cell<usize> = const { Cell::new(0) };
}

/// The lowest address of the current thread's stack, if the platform tells it.
#[cfg(target_os = "linux")]
fn stack_low() -> Option<usize> {
    // SAFETY: `pthread_getattr_np` fills the attribute object for the calling thread, which
    // is destroyed below; `pthread_attr_getstack` only reads it.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        (ok && !addr.is_null() && size > MARGIN).then_some(addr as usize)
    }
}

#[cfg(not(target_os = "linux"))]
fn stack_low() -> Option<usize> {
    None
}

/// Where the bounds are unknown: the most nested binding entry points allowed.
const MAX_DEPTH: usize = 2_000;

std::thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Declared first in a recursive entry point (`let _deeper = stack::deeper("...")?;`):
/// `RecursionError` when the thread's stack is nearly used up.
pub fn deeper(what: &'static str) -> PyResult<Deeper> {
    let limit = LIMIT.with(|l| {
        if l.get() == 0 {
            l.set(stack_low().map_or(usize::MAX, |low| low + MARGIN));
        }
        l.get()
    });
    let counted = limit == usize::MAX;
    if counted {
        let depth = DEPTH.with(|d| d.get());
        if depth >= MAX_DEPTH {
            return Err(exceeded(what));
        }
        DEPTH.with(|d| d.set(depth + 1));
    } else {
        let here = 0u8;
        if (std::ptr::addr_of!(here) as usize) < limit {
            return Err(exceeded(what));
        }
    }
    Ok(Deeper { counted })
}

fn exceeded(what: &'static str) -> pyo3::PyErr {
    PyRecursionError::new_err(format!("maximum recursion depth exceeded {what}"))
}

/// Ends a level counted by [`deeper`] (only where the stack bounds are unknown).
pub struct Deeper {
    counted: bool,
}

impl Drop for Deeper {
    fn drop(&mut self) {
        if self.counted {
            DEPTH.with(|d| d.set(d.get() - 1));
        }
    }
}
