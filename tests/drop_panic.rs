//! The drop-panic policy: every value a container removes is dropped exactly once even when
//! some destructors panic; a destructor's panic is reported to the drop-panic hook, never
//! unwinds out of a container operation (least of all an unrelated, successful one), and never
//! aborts the process by panicking during unwinding.
//!
//! Each scenario stores values whose destructors count themselves in a per-scenario log and
//! panic for every third value, removes them through every path (overwrite, remove, pop, set,
//! clear, slice deletion, dropping the container), and checks the log against the model:
//! each stored value dropped once, each armed one reported once, and no operation panicked.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gilfree::{collect_garbage, set_drop_panic_hook, GilFreeDict, GilFreeList, LockedDict};
use gilfree::{LockedList, Slice, Storable};

/// Drop counts of one scenario's values, by id.
struct Log {
    drops: Vec<AtomicUsize>,
}

impl Log {
    fn new(n: usize) -> Arc<Log> {
        Arc::new(Log {
            drops: (0..n).map(|_| AtomicUsize::new(0)).collect(),
        })
    }

    /// Asserts every value was dropped exactly once.
    fn assert_each_dropped_once(&self, ctx: &str) {
        let wrong: Vec<(usize, usize)> = self
            .drops
            .iter()
            .enumerate()
            .map(|(i, d)| (i, d.load(Ordering::SeqCst)))
            .filter(|&(_, d)| d != 1)
            .collect();
        assert!(
            wrong.is_empty(),
            "{ctx}: values not dropped exactly once (id, drops): {:?}",
            &wrong[..wrong.len().min(10)]
        );
    }
}

/// A value that counts its drop and panics in it when armed. Clones (the copies containers
/// return from `pop`, or make in `snapshot`) are untracked and harmless.
struct Bomb {
    id: usize,
    armed: bool,
    log: Option<Arc<Log>>,
}

impl Bomb {
    fn new(log: &Arc<Log>, id: usize) -> Bomb {
        Bomb {
            id,
            armed: id % 3 == 0,
            log: Some(log.clone()),
        }
    }
}

impl Clone for Bomb {
    fn clone(&self) -> Bomb {
        Bomb {
            id: self.id,
            armed: false,
            log: None,
        }
    }
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if let Some(log) = &self.log {
            log.drops[self.id].fetch_add(1, Ordering::SeqCst);
            if self.armed {
                panic!("bomb {} went off", self.id);
            }
        }
    }
}

impl Storable for Bomb {
    type Storage = gilfree::storage::Boxed;
}

/// The hook is process-wide: scenarios run one at a time and count what it reports.
static SERIAL: Mutex<()> = Mutex::new(());
static REPORTED: AtomicUsize = AtomicUsize::new(0);

fn scenario(n: usize, body: impl FnOnce(&Arc<Log>)) {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    REPORTED.store(0, Ordering::SeqCst);
    set_drop_panic_hook(Some(Box::new(|p| {
        assert!(p.message().is_some_and(|m| m.contains("went off")));
        REPORTED.fetch_add(1, Ordering::SeqCst);
    })));
    // The bombs' own panic messages are expected: keep them off the test output.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload().downcast_ref::<String>();
        if !msg.is_some_and(|m| m.contains("went off")) {
            default(info);
        }
    }));
    let log = Log::new(n);
    body(&log);
    let _ = std::panic::take_hook();
    collect_garbage();
    collect_garbage();
    collect_garbage();
    log.assert_each_dropped_once("after the scenario");
    let armed = (0..n).filter(|i| i % 3 == 0).count();
    assert_eq!(
        REPORTED.load(Ordering::SeqCst),
        armed,
        "each armed destructor reported once"
    );
    set_drop_panic_hook(None);
}

/// Runs one container operation; it must not panic.
fn op<R>(what: &str, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => panic!("a destructor's panic came out of `{what}`"),
    }
}

/// Drops a value an operation handed back to the caller (the item itself for the `Locked*`
/// containers, a clone for the GIL-free ones): its panic is the caller's own, counted as if
/// reported.
fn drop_returned<T>(value: T) {
    if catch_unwind(AssertUnwindSafe(move || drop(value))).is_err() {
        REPORTED.fetch_add(1, Ordering::SeqCst);
    }
}

macro_rules! dict_scenario {
    ($name:ident, $dict:ty) => {
        #[test]
        fn $name() {
            const N: usize = 602;
            scenario(N, |log| {
                let d = <$dict>::new();
                // 0..300 inserted, 300..600 overwrite half of them, the rest removed or
                // cleared; 600 and 601 stay until the dict is dropped.
                for i in 0..300 {
                    op("insert", || d.insert(i as u64, Bomb::new(log, i)).unwrap());
                }
                for i in 300..450 {
                    drop_returned(op("overwrite", || {
                        d.insert((i - 300) as u64, Bomb::new(log, i)).unwrap()
                    }));
                }
                for k in 150..250u64 {
                    drop_returned(op("remove", || d.remove(&k)));
                }
                for i in 450..600 {
                    op("insert", || d.insert(i as u64, Bomb::new(log, i)).unwrap());
                }
                op("retain", || d.retain(|k, _| k % 2 == 0).unwrap());
                op("clear", || d.clear().unwrap());
                op("insert", || d.insert(1, Bomb::new(log, 600)).unwrap());
                op("insert", || d.insert(2, Bomb::new(log, 601)).unwrap());
                op("collect", collect_garbage);
                // Writes after the collection still work and the dict is consistent.
                assert_eq!(d.len(), 2);
                assert_eq!(d.get(&1).map(|b| b.id), Some(600));
                op("drop", || drop(d));
            });
        }
    };
}

dict_scenario!(gilfree_dict_drops_every_value_once, GilFreeDict<u64, Bomb>);
dict_scenario!(locked_dict_drops_every_value_once, LockedDict<u64, Bomb>);

macro_rules! list_scenario {
    ($name:ident, $list:ty) => {
        #[test]
        fn $name() {
            const N: usize = 221;
            scenario(N, |log| {
                let l = <$list>::new();
                for i in 0..100 {
                    op("append", || l.append(Bomb::new(log, i)).unwrap());
                }
                for i in 100..150 {
                    op("set", || {
                        l.set((i - 100) as isize, Bomb::new(log, i)).unwrap()
                    });
                }
                for _ in 0..20 {
                    drop_returned(op("pop", || l.pop().unwrap()));
                }
                for _ in 0..10 {
                    drop_returned(op("pop(0)", || l.pop_at(0).unwrap()));
                }
                op("del slice", || {
                    l.del_slice(Slice::new(Some(0), Some(10), None)).unwrap()
                });
                for i in 150..200 {
                    op("insert", || l.insert(0, Bomb::new(log, i)).unwrap());
                }
                op("clear", || l.clear().unwrap());
                for i in 200..N {
                    op("append", || l.append(Bomb::new(log, i)).unwrap());
                }
                op("collect", collect_garbage);
                assert_eq!(l.len(), N - 200);
                assert_eq!(l.get(0).unwrap().id, 200);
                op("drop", || drop(l));
            });
        }
    };
}

list_scenario!(gilfree_list_drops_every_item_once, GilFreeList<Bomb>);
list_scenario!(locked_list_drops_every_item_once, LockedList<Bomb>);

/// Values inline as words (`Arc`): the destructor runs where the last reference goes.
#[test]
fn inline_values_drop_once_too() {
    const N: usize = 300;
    scenario(N, |log| {
        let d = GilFreeDict::<u64, Arc<Bomb>>::new();
        let l = GilFreeList::<Arc<Bomb>>::new();
        for i in 0..N {
            let b = Arc::new(Bomb::new(log, i));
            if i % 2 == 0 {
                op("insert", || d.insert(i as u64, b).unwrap());
            } else {
                op("append", || l.append(b).unwrap());
            }
        }
        op("clear", || d.clear().unwrap());
        op("clear", || l.clear().unwrap());
    });
}

/// Two panicking destructors in one batch, dropped while another panic unwinds: caught, no
/// abort (the test process would die otherwise).
#[test]
fn panics_while_unwinding_do_not_abort() {
    const N: usize = 12;
    scenario(N, |log| {
        let l = LockedList::<Bomb>::new();
        let d = LockedDict::<u64, Bomb>::new();
        for i in 0..N / 2 {
            l.append(Bomb::new(log, i)).unwrap();
            d.insert(i as u64, Bomb::new(log, N / 2 + i)).unwrap();
        }
        let unwound = catch_unwind(AssertUnwindSafe(move || {
            let _l = l;
            let _d = d;
            panic!("the caller's own panic");
        }));
        assert!(unwound.is_err());
    });
}
