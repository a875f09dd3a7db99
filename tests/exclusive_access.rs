//! `exclusive_access`: under an external lock that serializes every access (the CPython GIL),
//! a `GilFreeDict` write hands the value it removes or replaces straight to the caller, a
//! `GilFreeList` pop the item it removes, and a `GilFreeList::set` drops the item it replaces
//! at once.
//!
//! - the value comes back moved, not cloned, and nothing stays retired (reference counts are
//!   exact right after the write);
//! - a write made while the thread is inside a read session still retires, so what the session
//!   borrowed stays alive;
//! - outside a section nothing changes;
//! - a stress run of threads that take one "GIL" around every operation (the contract) reads
//!   only live values, against a model, and drops every value exactly once (run it under
//!   AddressSanitizer with `scripts/asan.sh`).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Instant;

use gilfree::{exclusive_access, GilFreeDict, GilFreeList};
use parking_lot::Mutex;

const MAGIC: u64 = 0x600d_f00d_600d_f00d;

/// A value that knows whether it is alive (its destructor overwrites the magic word).
struct Canary {
    magic: u64,
    key: u64,
    drops: Arc<AtomicUsize>,
}

impl Canary {
    fn new(key: u64, drops: &Arc<AtomicUsize>) -> Arc<Canary> {
        Arc::new(Canary {
            magic: MAGIC,
            key,
            drops: drops.clone(),
        })
    }

    fn check(&self, key: u64) {
        assert_eq!(self.magic, MAGIC, "a dropped value was read");
        assert_eq!(self.key, key, "a value under the wrong key");
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        assert_eq!(self.magic, MAGIC, "a value dropped twice");
        self.magic = 0;
        self.drops.fetch_add(1, SeqCst);
    }
}

/// Collects until `drops` reaches `n` (other tests' threads may hold the epoch back for a
/// moment; each collection advances it at most once).
fn collect_until(drops: &AtomicUsize, n: usize) -> usize {
    for _ in 0..100_000 {
        if drops.load(SeqCst) >= n {
            break;
        }
        gilfree::collect_garbage();
        std::thread::yield_now();
    }
    drops.load(SeqCst)
}

/// Runs `f` on a fresh thread: its garbage state is empty, so no automatic collection
/// interferes with the reference counts a test checks.
fn on_fresh_thread(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(f).join().unwrap();
}

#[test]
fn replaced_and_removed_values_come_back_moved() {
    on_fresh_thread(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let d: GilFreeDict<u64, Arc<Canary>> = GilFreeDict::new();
        let first = Canary::new(1, &drops);
        d.insert(1, first.clone()).unwrap();
        assert_eq!(Arc::strong_count(&first), 2, "ours and the dict's");

        // Outside a section an overwrite returns a clone and retires the stored reference.
        let old = d.insert(1, Canary::new(1, &drops)).unwrap().unwrap();
        assert!(Arc::ptr_eq(&old, &first));
        assert_eq!(
            Arc::strong_count(&first),
            3,
            "ours, the clone, the retired word"
        );
        drop(old);
        gilfree::collect_garbage();

        // SAFETY: no other thread touches this dict.
        let section = unsafe { exclusive_access() };
        let second = d.get(&1).unwrap();
        assert_eq!(Arc::strong_count(&second), 2);
        let old = d.insert(1, Canary::new(1, &drops)).unwrap().unwrap();
        assert!(Arc::ptr_eq(&old, &second));
        assert_eq!(
            Arc::strong_count(&second),
            2,
            "ours and the moved-out one: no clone left"
        );
        drop(old);
        assert_eq!(Arc::strong_count(&second), 1, "released at once");

        let third = d.get(&1).unwrap();
        let removed = d.remove(&1).unwrap().unwrap();
        assert!(Arc::ptr_eq(&removed, &third));
        assert_eq!(Arc::strong_count(&third), 2);
        drop(removed);
        assert_eq!(Arc::strong_count(&third), 1);
        drop(section);

        // Closed again: clones and retirement.
        d.insert(2, third.clone()).unwrap();
        let old = d.insert(2, Canary::new(2, &drops)).unwrap().unwrap();
        assert_eq!(Arc::strong_count(&third), 3);
        drop(old);
        drop((first, second, third));
        drop(d);
        assert_eq!(collect_until(&drops, 4), 4, "every value dropped once");
    });
}

#[test]
fn a_write_inside_a_read_session_still_retires() {
    on_fresh_thread(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let d: GilFreeDict<u64, Arc<Canary>> = GilFreeDict::new();
        d.insert(7, Canary::new(7, &drops)).unwrap();
        // SAFETY: no other thread touches this dict.
        let _section = unsafe { exclusive_access() };
        let pinned = d.pin();
        let borrowed = pinned.get(&7).unwrap();
        let old = d.insert(7, Canary::new(7, &drops)).unwrap().unwrap();
        drop(old);
        // The session still borrows the old value: it was retired, not handed over.
        borrowed.check(7);
        assert_eq!(
            Arc::strong_count(&borrowed),
            1,
            "held by the retired word only"
        );
        assert_eq!(drops.load(SeqCst), 0);
        drop(pinned);
        assert_eq!(collect_until(&drops, 1), 1, "freed once the session ended");
    });
}

#[test]
fn popped_items_come_back_moved() {
    on_fresh_thread(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let l: GilFreeList<Arc<Canary>> = GilFreeList::new();
        let a = Canary::new(0, &drops);
        l.append(a.clone()).unwrap();
        l.append(a.clone()).unwrap();
        // Outside a section: a clone, and the stored reference retired.
        let popped = l.pop().unwrap();
        assert_eq!(
            Arc::strong_count(&a),
            4,
            "ours, the list's other item, the clone, the retired word"
        );
        drop(popped);
        {
            // SAFETY: no other thread touches this list.
            let _section = unsafe { exclusive_access() };
            let popped = l.pop_at(0).unwrap();
            assert!(Arc::ptr_eq(&popped, &a));
            assert_eq!(
                Arc::strong_count(&a),
                3,
                "ours, the moved item, the earlier retired word"
            );
            drop(popped);
            assert_eq!(Arc::strong_count(&a), 2, "released at once");
            // Inside a read session a pop still retires.
            l.append(a.clone()).unwrap();
            let pinned = l.pin();
            let seen = pinned.get(0).unwrap();
            drop(l.pop().unwrap());
            seen.check(0);
            assert_eq!(
                Arc::strong_count(&a),
                3,
                "the retired word keeps the session's item"
            );
            drop(pinned);
        }
        drop(l);
        assert_eq!(collect_until_count(&a, 1), 1);
        drop(a);
        assert_eq!(drops.load(SeqCst), 1);
    });
}

#[test]
fn items_replaced_by_set_are_released_at_once() {
    on_fresh_thread(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let l: GilFreeList<Arc<Canary>> = GilFreeList::new();
        let (a, b) = (Canary::new(0, &drops), Canary::new(1, &drops));
        l.append(a.clone()).unwrap();
        // Outside a section: the replaced reference is retired, not released.
        l.set(0, b.clone()).unwrap();
        assert_eq!(Arc::strong_count(&a), 2, "ours, the retired word");
        {
            // SAFETY: no other thread touches this list.
            let _section = unsafe { exclusive_access() };
            l.set(0, a.clone()).unwrap();
            assert_eq!(
                Arc::strong_count(&b),
                1,
                "the replaced item released at once"
            );
            assert_eq!(
                Arc::strong_count(&a),
                3,
                "ours, the list's, the earlier retired word"
            );
            // A bad index hands the new item back to its destructor, changes nothing.
            assert_eq!(l.set(5, b.clone()), Err(gilfree::Error::IndexOutOfRange));
            assert_eq!(Arc::strong_count(&b), 1);
            // Inside a read session a replacement still retires.
            let pinned = l.pin();
            let seen = pinned.get(0).unwrap();
            l.set(0, b.clone()).unwrap();
            seen.check(0);
            assert_eq!(
                Arc::strong_count(&a),
                3,
                "the retired word keeps the session's item"
            );
            drop(pinned);
        }
        assert_eq!(l.get(0).unwrap().key, 1);
        drop(l);
        assert_eq!(collect_until_count(&a, 1), 1);
        assert_eq!(collect_until_count(&b, 1), 1);
        drop((a, b));
        assert_eq!(drops.load(SeqCst), 2);
    });
}

/// Collects until `a` has `n` owners left.
fn collect_until_count(a: &Arc<Canary>, n: usize) -> usize {
    for _ in 0..100_000 {
        if Arc::strong_count(a) <= n {
            break;
        }
        gilfree::collect_garbage();
        std::thread::yield_now();
    }
    Arc::strong_count(a)
}

/// Threads that serialize every operation on one lock (a GIL) and keep a section open while
/// they hold it: reads see only live values of the right key, the dict matches a model, and
/// every value is dropped exactly once.
#[test]
fn threads_under_one_gil_read_only_live_values() {
    const KEYS: u64 = 64;
    const THREADS: u64 = 2;
    let gil = Arc::new(Mutex::new(std::collections::HashMap::<u64, u64>::new()));
    let drops = Arc::new(AtomicUsize::new(0));
    let made = Arc::new(AtomicUsize::new(0));
    let d: Arc<GilFreeDict<u64, Arc<Canary>>> = Arc::new(GilFreeDict::new());
    let l: Arc<GilFreeList<Arc<Canary>>> = Arc::new(GilFreeList::new());
    let until = Instant::now() + common::stress_duration(500);
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (gil, drops, made, d, l) = (
                gil.clone(),
                drops.clone(),
                made.clone(),
                d.clone(),
                l.clone(),
            );
            std::thread::spawn(move || {
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ t;
                let mut ops = 0u64;
                while Instant::now() < until || ops < 1000 {
                    ops += 1;
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = x % KEYS;
                    let mut model = gil.lock();
                    // The list holds canaries keyed by their position from the bottom.
                    match (x >> 20) % 3 {
                        0 => {
                            let len = l.len() as u64;
                            made.fetch_add(1, SeqCst);
                            l.append(Canary::new(len, &drops)).unwrap();
                        }
                        1 => {
                            let len = l.len() as u64;
                            if len > 0 {
                                // SAFETY: under the "GIL", as below.
                                let _section = unsafe { exclusive_access() };
                                let item = l.pop().unwrap();
                                item.check(len - 1);
                                assert_eq!(Arc::strong_count(&item), 1, "moved, not cloned");
                            }
                        }
                        _ => {
                            let len = l.len() as u64;
                            if len > 0 {
                                let i = (x >> 32) % len;
                                l.get_with(i as isize, |v| v.check(i)).unwrap();
                            }
                        }
                    }
                    // SAFETY: every access to `d` happens with `gil` held, and no read session
                    // outlives it.
                    let _section = unsafe { exclusive_access() };
                    match (x >> 8) % 4 {
                        0 | 1 => {
                            let got = d.get_with(&key, |v| {
                                v.check(key);
                                Arc::strong_count(v)
                            });
                            assert_eq!(got.is_some(), model.contains_key(&key));
                            if let Some(count) = got {
                                assert_eq!(count, 1, "no clone or retired copy left behind");
                            }
                        }
                        2 => {
                            made.fetch_add(1, SeqCst);
                            let old = d.insert(key, Canary::new(key, &drops)).unwrap();
                            assert_eq!(old.is_some(), model.insert(key, ops).is_some());
                            if let Some(old) = old {
                                old.check(key);
                                assert_eq!(Arc::strong_count(&old), 1, "moved, not cloned");
                            }
                        }
                        _ => {
                            let old = d.remove(&key).unwrap();
                            assert_eq!(old.is_some(), model.remove(&key).is_some());
                            if let Some(old) = old {
                                old.check(key);
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let live = d.len();
    assert_eq!(live, gil.lock().len());
    drop(d);
    drop(l);
    let made = made.load(SeqCst);
    assert_eq!(
        collect_until(&drops, made),
        made,
        "every value dropped once"
    );
}
