//! Script code in callbacks: `eq`, sort keys and comparators that fail, panic, read the list or
//! mutate it (append, clear, pop, sort) while `remove`/`index`/`count`/`contains`/`sort`/
//! comparison run. Every case runs on both lists under a watchdog, so a deadlock fails the test
//! instead of hanging it; the outcomes asserted are the defined results documented in
//! `gilfree::list`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use gilfree::{Container, EqModel, Error, GilFreeList, LockedList, Sequence};

/// An interpreter object handle: clone = refcount increment, identity = the allocation.
#[derive(Clone)]
struct Obj(Arc<u64>);

// SAFETY: one `Arc` (a non-null pointer; the count lives on the heap).
unsafe impl gilfree::InlineWord for Obj {}

impl Obj {
    fn new(v: u64) -> Obj {
        Obj(Arc::new(v))
    }
    fn val(&self) -> u64 {
        *self.0
    }
    fn is(&self, other: &Obj) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl PartialEq for Obj {
    fn eq(&self, other: &Obj) -> bool {
        self.val() == other.val()
    }
}

impl fmt::Debug for Obj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.val())
    }
}

fn objs(vals: &[u64]) -> Vec<Obj> {
    vals.iter().map(|&v| Obj::new(v)).collect()
}

fn vals<L: Sequence<Obj>>(l: &L) -> Vec<u64> {
    l.snapshot().iter().map(Obj::val).collect()
}

type Hook<'a> = Box<dyn FnMut(&Obj, &Obj) + 'a>;

/// A script-level `__eq__`: never pure, identity first, runs `hook` on every call, and
/// raises (or panics) when it meets a stored value of `fail_on` (`panic_on`).
struct Vm<'a> {
    hook: RefCell<Hook<'a>>,
    fail_on: Option<u64>,
    panic_on: Option<u64>,
    calls: Cell<usize>,
}

impl<'a> Vm<'a> {
    fn new(hook: impl FnMut(&Obj, &Obj) + 'a) -> Vm<'a> {
        Vm {
            hook: RefCell::new(Box::new(hook)),
            fail_on: None,
            panic_on: None,
            calls: Cell::new(0),
        }
    }
    fn quiet() -> Vm<'a> {
        Vm::new(|_, _| {})
    }
}

impl EqModel<Obj> for Vm<'_> {
    type Error = String;

    fn eq(&self, stored: &Obj, probe: &Obj) -> Result<bool, String> {
        self.calls.set(self.calls.get() + 1);
        (self.hook.borrow_mut())(stored, probe);
        if Some(stored.val()) == self.fail_on {
            return Err(format!("{} raised", stored.val()));
        }
        if Some(stored.val()) == self.panic_on {
            panic!("{} panicked", stored.val());
        }
        Ok(stored.val() == probe.val())
    }

    fn identical(&self, stored: &Obj, probe: &Obj) -> bool {
        stored.is(probe)
    }
}

/// Runs `f` on another thread and fails if it does not finish in time (a deadlock).
fn watchdog(name: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(()) => handle.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = handle.join() {
                std::panic::resume_unwind(p)
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{name}: deadlock (no result in 20 s)"),
    }
}

trait List: Sequence<Obj> + Default + Send + Sync + 'static {}
impl List for GilFreeList<Obj> {}
impl List for LockedList<Obj> {}

fn both(name: &'static str, case: fn(&'static str, bool)) {
    watchdog(name, move || case(name, true));
    watchdog(name, move || case(name, false));
}

/// Dispatches a generic case to the variant.
macro_rules! variants {
    ($($name:ident => $case:ident;)*) => {
        $(
            #[test]
            fn $name() {
                both(stringify!($name), |_, gilfree| {
                    if gilfree {
                        $case::<GilFreeList<Obj>>()
                    } else {
                        $case::<LockedList<Obj>>()
                    }
                });
            }
        )*
    };
}

variants! {
    remove_with_eq_that_appends => remove_eq_appends;
    remove_with_eq_that_clears => remove_eq_clears;
    remove_with_eq_that_pops_front => remove_eq_pops_front;
    remove_restarts_are_capped => remove_restarts_capped;
    scans_with_eq_that_mutates => scans_eq_mutates;
    scans_with_eq_that_reads_the_list => scans_eq_reads;
    failing_eq_is_returned => failing_eq;
    panicking_eq_leaves_list_usable => panicking_eq;
    sort_key_that_appends => sort_key_appends;
    sort_comparator_that_clears => sort_less_clears;
    sort_comparator_that_sorts => sort_less_sorts;
    sort_callbacks_that_read => sort_callbacks_read;
    failing_and_panicking_sort => sort_failing;
    comparison_with_mutating_eq => comparison_eq_mutates;
}

fn remove_eq_appends<L: List>() {
    let l = L::default();
    l.extend(objs(&[1, 2, 3])).unwrap();
    let vm = Vm::new(|_, _| l.append(Obj::new(9)).unwrap());
    // Every `eq` appends: the match at index 1 is validated by identity and removed.
    assert_eq!(l.remove_in(&vm, &Obj::new(2)), Ok(()));
    assert_eq!(vm.calls.get(), 2);
    assert_eq!(vals(&l), vec![1, 3, 9, 9]);
}

fn remove_eq_clears<L: List>() {
    let l = L::default();
    l.extend(objs(&[1, 2, 3])).unwrap();
    let vm = Vm::new(|_, _| l.clear().unwrap());
    // The first `eq` empties the list: the match no longer holds, the rescan finds nothing.
    assert_eq!(l.remove_in(&vm, &Obj::new(1)), Err(Error::ValueNotFound));
    assert!(l.is_empty());
    // Index/count/contains answer for the list as it was when the scan began: the clear by
    // the first `eq` does not hide the items after it.
    l.extend(objs(&[1, 2, 3])).unwrap();
    assert_eq!(l.index_in(&vm, &Obj::new(3), 0, isize::MAX), Ok(2));
    assert_eq!(vm.calls.get(), 1 + 3);
    assert!(l.is_empty());
    l.extend(objs(&[3, 1, 3])).unwrap();
    assert_eq!(l.count_in(&vm, &Obj::new(3)), Ok(2));
    assert!(l.is_empty());
    l.extend(objs(&[1])).unwrap();
    assert_eq!(l.contains_in(&vm, &Obj::new(2)), Ok(false));
    assert!(l.is_empty());
}

fn remove_eq_pops_front<L: List>() {
    let l = L::default();
    l.extend(objs(&[1, 2, 3, 4, 5])).unwrap();
    let vm = Vm::new(|_, _| drop(l.pop_at(0)));
    let r = l.remove_in(&vm, &Obj::new(5));
    // Defined, terminating outcome: every item left is one of the originals, none twice.
    assert!(matches!(r, Ok(()) | Err(Error::ValueNotFound)), "{r:?}");
    let left = vals(&l);
    assert!(left.windows(2).all(|w| w[0] < w[1]), "{left:?}");
    assert!(left.iter().all(|v| (1..=5).contains(v)));
}

fn remove_restarts_capped<L: List>() {
    let l = L::default();
    l.extend(objs(&[7])).unwrap();
    let probe = Obj::new(7);
    // Every `eq` replaces the item with a fresh, equal object: the match never validates.
    let vm = Vm::new(|_, _| l.set(0, Obj::new(7)).unwrap());
    assert_eq!(l.remove_in(&vm, &probe), Err(Error::MutatedDuringLookup));
    assert_eq!(vm.calls.get(), gilfree::MAX_LOOKUP_RESTARTS + 1);
    assert_eq!(vals(&l), vec![7]);
}

fn scans_eq_mutates<L: List>() {
    // Scans compare the list as it was when they began: an `eq` that appends does not extend
    // the scan (CPython's would), one that shrinks the list does not cut it short.
    let l = L::default();
    l.extend(objs(&[1, 2])).unwrap();
    let left = Cell::new(3);
    let vm = Vm::new(|_, _| {
        if left.get() > 0 {
            left.set(left.get() - 1);
            l.append(Obj::new(5)).unwrap();
        }
    });
    assert_eq!(l.count_in(&vm, &Obj::new(5)), Ok(0));
    assert_eq!(vm.calls.get(), 2);
    assert_eq!(vals(&l), vec![1, 2, 5, 5]);
    // An `eq` that pops the last item: every item of the scan's list is still compared.
    let vm = Vm::new(|_, _| drop(l.pop()));
    assert_eq!(l.count_in(&vm, &Obj::new(5)), Ok(2));
    assert_eq!(vm.calls.get(), 4);
    assert!(l.is_empty());
    // An `eq` that inserts at the front: the indices are those of the scan's list.
    let l = L::default();
    l.extend(objs(&[1, 2, 3])).unwrap();
    let vm = Vm::new(|_, _| l.insert(0, Obj::new(0)).unwrap());
    assert_eq!(l.index_in(&vm, &Obj::new(3), 0, 3), Ok(2));
    assert_eq!(vm.calls.get(), 3);
    assert_eq!(vals(&l), vec![0, 0, 0, 1, 2, 3]);
    // Out of the window `0..2` of the scan's list: not found, whatever the list became.
    let vm = Vm::new(|_, _| l.insert(0, Obj::new(3)).unwrap());
    assert_eq!(
        l.index_in(&vm, &Obj::new(3), 0, 2),
        Err(Error::ValueNotFound)
    );
    assert_eq!(vm.calls.get(), 2);
}

fn scans_eq_reads<L: List>() {
    let l = L::default();
    l.extend(objs(&[1, 2, 3])).unwrap();
    let seen = RefCell::new(Vec::new());
    let vm = Vm::new(|stored, _| {
        let quiet = Vm::quiet();
        let inner = (
            l.len(),
            l.get(-1).unwrap().val(),
            l.contains_in(&quiet, stored).unwrap(),
            l.snapshot().len(),
        );
        seen.borrow_mut().push(inner);
    });
    assert_eq!(l.index_in(&vm, &Obj::new(3), 0, isize::MAX), Ok(2));
    assert_eq!(l.remove_in(&vm, &Obj::new(2)), Ok(()));
    assert!(seen.borrow().iter().all(|s| s.2));
    assert_eq!(vals(&l), vec![1, 3]);
}

fn failing_eq<L: List>() {
    let l = L::default();
    l.extend(objs(&[1, 2, 3])).unwrap();
    let mut vm = Vm::quiet();
    vm.fail_on = Some(2);
    let raised = Err(Error::Callback("2 raised".to_string()));
    assert_eq!(l.remove_in(&vm, &Obj::new(3)), raised);
    assert_eq!(
        l.index_in(&vm, &Obj::new(3), 0, isize::MAX),
        raised.clone().map(|()| 0)
    );
    assert_eq!(l.count_in(&vm, &Obj::new(3)), raised.clone().map(|()| 0));
    assert_eq!(
        l.contains_in(&vm, &Obj::new(3)),
        raised.clone().map(|()| false)
    );
    // Items before the failing one still match; identity needs no `eq`.
    assert_eq!(l.index_in(&vm, &Obj::new(1), 0, isize::MAX), Ok(0));
    let two = l.get(1).unwrap();
    assert_eq!(l.remove_in(&vm, &two), Ok(()));
    assert_eq!(vals(&l), vec![1, 3]);
}

fn panicking_eq<L: List>() {
    let l = L::default();
    l.extend(objs(&[1, 2, 3])).unwrap();
    let mut vm = Vm::quiet();
    vm.panic_on = Some(2);
    for op in 0..4 {
        let r = catch_unwind(AssertUnwindSafe(|| match op {
            0 => drop(l.remove_in(&vm, &Obj::new(3))),
            1 => drop(l.index_in(&vm, &Obj::new(3), 0, isize::MAX)),
            2 => drop(l.count_in(&vm, &Obj::new(3))),
            _ => drop(l.contains_in(&vm, &Obj::new(3))),
        }));
        assert!(r.is_err());
        // No lock is left held, nothing is poisoned.
        l.append(Obj::new(4)).unwrap();
        l.pop().unwrap();
    }
    assert_eq!(vals(&l), vec![1, 2, 3]);
}

fn sort_key_appends<L: List>() {
    let l = L::default();
    l.extend(objs(&[3, 1, 2])).unwrap();
    let r = l.sort_by_key(
        false,
        |x| {
            if x.val() == 1 {
                l.append(Obj::new(0)).unwrap();
            }
            Ok::<_, String>(x.val())
        },
        |a, b| Ok(a < b),
    );
    assert_eq!(r, Err(Error::ModifiedDuringSort));
    assert_eq!(
        Error::<String>::ModifiedDuringSort.to_string(),
        "list modified during sort"
    );
    // Not installed: the list is as the callback left it.
    assert_eq!(vals(&l), vec![3, 1, 2, 0]);
}

fn sort_less_clears<L: List>() {
    let l = L::default();
    l.extend(objs(&[3, 1, 2])).unwrap();
    let r = l.sort_by(false, |a, b| {
        l.clear().unwrap();
        Ok::<_, String>(a.val() < b.val())
    });
    assert_eq!(r, Err(Error::ModifiedDuringSort));
    assert!(l.is_empty());
}

fn sort_less_sorts<L: List>() {
    let l = L::default();
    l.extend(objs(&[3, 1, 2])).unwrap();
    let nested: RefCell<Option<Result<(), Error<String>>>> = RefCell::new(None);
    let r = l.sort_by(true, |a, b| {
        if nested.borrow().is_none() {
            let inner = l.sort_by(false, |x, y| Ok::<_, String>(x.val() < y.val()));
            *nested.borrow_mut() = Some(inner);
        }
        Ok::<_, String>(a.val() < b.val())
    });
    assert_eq!(nested.take(), Some(Ok(())));
    // The nested sort changed the list: the outer one is not installed.
    assert_eq!(r, Err(Error::ModifiedDuringSort));
    assert_eq!(vals(&l), vec![1, 2, 3]);
}

fn sort_callbacks_read<L: List>() {
    let l = L::default();
    l.extend(objs(&[3, 1, 2, 1])).unwrap();
    let ones = l.get(1).unwrap();
    let r = l.sort_by_key(
        false,
        |x| Ok::<_, String>((x.val(), l.len())),
        |a, b| Ok(a.0 < b.0 && l.get(0).is_ok()),
    );
    assert_eq!(r, Ok(()));
    assert_eq!(vals(&l), vec![1, 1, 2, 3]);
    // Stable: the first 1 is still the first.
    assert!(l.get(0).unwrap().is(&ones));
}

fn sort_failing<L: List>() {
    let l = L::default();
    l.extend(objs(&(0..50).rev().collect::<Vec<_>>())).unwrap();
    let before: Vec<Obj> = l.snapshot();
    let calls = Cell::new(0);
    let r = l.sort_by(false, |a, b| {
        calls.set(calls.get() + 1);
        if calls.get() == 30 {
            Err("lt raised".to_string())
        } else {
            Ok(a.val() < b.val())
        }
    });
    assert_eq!(r, Err(Error::Callback("lt raised".to_string())));
    assert_eq!(calls.get(), 30);
    let after = l.snapshot();
    assert!(
        after.iter().zip(&before).all(|(a, b)| a.is(b)),
        "left untouched"
    );
    let r = catch_unwind(AssertUnwindSafe(|| {
        l.sort_by_key(
            false,
            |x| {
                if x.val() == 7 {
                    panic!("key")
                } else {
                    Ok::<_, ()>(x.val())
                }
            },
            |a, b| Ok(a < b),
        )
    }));
    assert!(r.is_err());
    l.append(Obj::new(99)).unwrap();
    assert_eq!(l.len(), 51);
}

fn comparison_eq_mutates<L: List>() {
    let a = L::default();
    let b = L::default();
    a.extend(objs(&[1, 2, 3])).unwrap();
    b.extend(objs(&[1, 2, 4])).unwrap();
    let vm = Vm::new(|_, _| {
        a.append(Obj::new(7)).unwrap();
        drop(b.pop());
    });
    // Snapshots are compared: the callbacks' mutations do not change the answer.
    assert_eq!(a.eq_in(&vm, &b), Ok(false));
    a.clear().unwrap();
    b.clear().unwrap();
    a.extend(objs(&[1, 2, 3])).unwrap();
    b.extend(objs(&[1, 2, 4])).unwrap();
    let ord = a.compare_in(&vm, &b, |x, y| Ok(x.val().partial_cmp(&y.val())));
    assert_eq!(ord, Ok(Some(std::cmp::Ordering::Less)));
    assert!(a.len() > 3);
    assert!(b.len() < 3);
}

#[test]
fn closures_under_the_lock_refuse_reentrant_writes() {
    watchdog("locked", || {
        let l: LockedList<Obj> = objs(&[1, 2]).into();
        l.with_lock(|v| {
            assert_eq!(
                l.append(Obj::new(3)),
                Err(Error::Reentrant(Container::List))
            );
            assert_eq!(
                l.sort_by(false, |_, _| Ok::<_, ()>(false)),
                Err(Error::Reentrant(Container::List))
            );
            assert_eq!(
                l.remove_in(&Vm::quiet(), &Obj::new(1)),
                Err(Error::Reentrant(Container::List))
            );
            // Re-entrant scans run script `eq` on clones, with the outer lock still held.
            let vm = Vm::new(|_, _| {
                assert_eq!(l.pop().map(drop), Err(Error::Reentrant(Container::List)))
            });
            assert_eq!(l.index_in(&vm, &Obj::new(2), 0, isize::MAX), Ok(1));
            v.append(Obj::new(3)).unwrap();
        })
        .unwrap();
        assert_eq!(vals(&l), vec![1, 2, 3]);
    });
    watchdog("gilfree", || {
        let l: GilFreeList<Obj> = objs(&[1, 2]).into();
        l.with_lock(|v| {
            assert_eq!(
                l.append(Obj::new(3)),
                Err(Error::Reentrant(Container::List))
            );
            assert_eq!(
                l.remove_in(&Vm::quiet(), &Obj::new(1)),
                Err(Error::Reentrant(Container::List))
            );
            let vm = Vm::new(|_, _| assert_eq!(l.clear(), Err(Error::Reentrant(Container::List))));
            assert_eq!(l.count_in(&vm, &Obj::new(2)), Ok(1));
            v.append(Obj::new(3)).unwrap();
        })
        .unwrap();
        assert_eq!(vals(&l), vec![1, 2, 3]);
    });
}
