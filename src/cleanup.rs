//! Dropping removed values: each exactly once, outside every lock, and a panicking destructor
//! never escapes into an unrelated operation.
//!
//! A container drops what it removed (a value replaced in a `LockedDict`, a list item, a
//! retired `GilFreeDict` entry freed by the epoch collector) after its operation is done and
//! its lock released, often on a thread and in a call that has nothing to do with the removal.
//! A destructor is script code (`__del__`), and it may panic. The policy, CPython's for
//! exceptions in `__del__` (`sys.unraisablehook`): the panic is caught, every other value of
//! the batch is still dropped, and the panic is *reported* to the drop-panic hook instead of
//! unwinding out of the container call. The default hook prints one line to standard error;
//! [`set_drop_panic_hook`] installs another (a test counting panics, an interpreter routing
//! them to its own unraisable hook).
//!
//! Because every destructor runs inside `catch_unwind`, a panicking destructor also cannot
//! abort the process by panicking while another panic unwinds.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use parking_lot::RwLock;

/// What the drop-panic hook receives: the payload of a destructor's panic.
pub struct DropPanic {
    payload: Box<dyn Any + Send>,
}

impl DropPanic {
    /// The panic message, if the payload is a string (as `panic!` makes it).
    pub fn message(&self) -> Option<&str> {
        if let Some(s) = self.payload.downcast_ref::<&'static str>() {
            Some(s)
        } else {
            self.payload.downcast_ref::<String>().map(String::as_str)
        }
    }

    /// The raw panic payload.
    pub fn payload(&self) -> &(dyn Any + Send) {
        &*self.payload
    }
}

impl std::fmt::Debug for DropPanic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DropPanic")
            .field("message", &self.message())
            .finish()
    }
}

/// A drop-panic hook, as [`set_drop_panic_hook`] takes it.
pub type DropPanicHook = Box<dyn Fn(&DropPanic) + Send + Sync>;

type Hook = Arc<dyn Fn(&DropPanic) + Send + Sync>;

static HOOK: RwLock<Option<Hook>> = RwLock::new(None);

/// Installs the hook that receives panics of destructors run by the containers; `None`
/// restores the default, which prints one line to standard error.
///
/// The policy (CPython's for exceptions in `__del__`, which go to `sys.unraisablehook`): a
/// container drops each value it removed exactly once, after its operation is done and its
/// lock released, often on another thread or in a later, unrelated call. A destructor that
/// panics there is caught, every other value of the batch is still dropped, and the panic is
/// reported to this hook instead of unwinding out of the container call; a second panic
/// during unwinding therefore cannot abort the process either.
///
/// The hook runs on whichever thread dropped the value, with no container lock held; a hook
/// that panics itself is ignored.
pub fn set_drop_panic_hook(hook: Option<DropPanicHook>) {
    *HOOK.write() = hook.map(Hook::from);
}

fn report(payload: Box<dyn Any + Send>) {
    let p = DropPanic { payload };
    let hook = HOOK.read().clone();
    let _ = panic::catch_unwind(AssertUnwindSafe(|| match hook {
        Some(h) => h(&p),
        None => eprintln!(
            "gilfree: a destructor panicked while a container dropped a removed value; \
             the panic was caught and the other values were still dropped: {}",
            p.message().unwrap_or("(non-string panic payload)")
        ),
    }));
}

/// Drops every item of `items`, each exactly once, under the policy above.
pub(crate) fn drop_all<T>(items: impl IntoIterator<Item = T>) {
    if !std::mem::needs_drop::<T>() {
        return;
    }
    let mut items = items.into_iter();
    // One `catch_unwind` for the whole run; after a panic, resume with the next item.
    loop {
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            for item in items.by_ref() {
                drop(item);
            }
        }));
        match outcome {
            Ok(()) => return,
            Err(payload) => report(payload),
        }
    }
}

/// Values dropped under the policy ([`drop_all`]) when the guard goes, also when a panic
/// unwinds past it.
pub(crate) struct DropAll<T>(pub(crate) Vec<T>);

impl<T> Drop for DropAll<T> {
    fn drop(&mut self) {
        drop_all(std::mem::take(&mut self.0));
    }
}

#[cfg(all(test, not(gilfree_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static DROPPED: AtomicUsize = AtomicUsize::new(0);

    struct Bomb(bool);
    impl Drop for Bomb {
        fn drop(&mut self) {
            DROPPED.fetch_add(1, Ordering::SeqCst);
            if self.0 {
                panic!("boom");
            }
        }
    }

    #[test]
    fn every_item_is_dropped_once_and_panics_are_reported() {
        let reported = Arc::new(AtomicUsize::new(0));
        let r = reported.clone();
        set_drop_panic_hook(Some(Box::new(move |p| {
            assert_eq!(p.message(), Some("boom"));
            r.fetch_add(1, Ordering::SeqCst);
        })));
        DROPPED.store(0, Ordering::SeqCst);
        drop_all((0..10).map(|i| Bomb(i % 3 == 0)));
        set_drop_panic_hook(None);
        assert_eq!(DROPPED.load(Ordering::SeqCst), 10);
        assert_eq!(reported.load(Ordering::SeqCst), 4);
    }
}
