//! No epoch announcement is held while user code runs, so a slow script callback on one
//! thread never stalls memory reclamation for the whole process (CPython gh-132519's QSBR
//! blow-up). Each scenario parks one thread inside user code — a script `eq` during a lookup,
//! a loop body between two iterator steps, an `update`/`retain` closure, a destructor — while
//! two other threads overwrite an *unrelated* container with 1 KiB values, about 256 MiB of
//! garbage in all. The live heap (a counting allocator) must stay far below that.
//!
//! Nothing here is timed: the parked thread waits for the writers to finish, however long
//! they take. A held `pin()` session is the documented exception: the last test checks that
//! it does hold reclamation back, which shows the measurement can see a stall.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};

use gilfree::{EqModel, GilFreeDict, GilFreeList, KeyModel};

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), SeqCst) + layout.size();
            PEAK.fetch_max(now, SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), SeqCst);
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Garbage the writers make: this many overwrites of 1 KiB values in all.
const OVERWRITES: usize = 256 * 1024;
/// The bound on the peak live heap above the scenario's start.
const BOUND: usize = 64 << 20;

/// Scenarios share the allocator's counters: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A 1 KiB value.
#[derive(Clone)]
struct Kib(#[allow(dead_code)] Box<[u8; 1024]>);

impl gilfree::Storable for Kib {
    type Storage = gilfree::storage::Boxed;
}

/// Runs `park` on a thread of its own; once it calls the `wait` it is given (from inside user
/// code), two writers overwrite an unrelated dict and list with 1 KiB values, and the peak
/// heap growth meanwhile is returned. `park` then returns.
fn heap_growth_while_parked(park: impl FnOnce(&(dyn Fn() + Sync)) + Send) -> usize {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let unrelated = GilFreeDict::<u64, Kib>::new();
    let unrelated_list = GilFreeList::<Kib>::new();
    for k in 0..64 {
        unrelated.insert(k, Kib(Box::new([0; 1024]))).unwrap();
        unrelated_list.append(Kib(Box::new([0; 1024]))).unwrap();
    }
    let parked = Barrier::new(4); // the parked thread, two writers, the measuring thread
    let done = Barrier::new(2);
    let growth = AtomicUsize::new(0);
    let writing = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            park(&|| {
                parked.wait(); // the writers start
                done.wait(); // the writers are done
            });
        });
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                let (unrelated, unrelated_list, parked) = (&unrelated, &unrelated_list, &parked);
                s.spawn(move || {
                    parked.wait();
                    for i in 0..OVERWRITES / 2 {
                        let k = (i as u64 * 2 + w) % 64;
                        if i % 2 == 0 {
                            unrelated.insert(k, Kib(Box::new([1; 1024]))).unwrap();
                        } else {
                            unrelated_list
                                .set(k as isize, Kib(Box::new([1; 1024])))
                                .unwrap();
                        }
                    }
                })
            })
            .collect();
        // Measure from when the writers start until they finish.
        parked.wait();
        writing.store(true, SeqCst);
        let start = LIVE.load(SeqCst);
        PEAK.store(start, SeqCst);
        for w in writers {
            w.join().unwrap();
        }
        growth.store(PEAK.load(SeqCst).saturating_sub(start), SeqCst);
        done.wait();
    });
    assert!(
        writing.load(SeqCst),
        "the parked thread never reached user code"
    );
    growth.load(SeqCst)
}

fn check(what: &str, growth: usize) {
    eprintln!("{what}: peak heap growth {} KiB", growth >> 10);
    assert!(
        growth < BOUND,
        "{what}: the heap grew by {} MiB while one thread ran user code",
        growth >> 20
    );
}

/// Script `eq` that parks inside the comparison.
struct ParkingEq<'a> {
    wait: &'a (dyn Fn() + Sync),
    parked: AtomicBool,
}

impl EqModel<u64> for ParkingEq<'_> {
    type Error = ();

    fn eq(&self, stored: &u64, probe: &u64) -> Result<bool, ()> {
        if !self.parked.swap(true, SeqCst) {
            (self.wait)();
        }
        Ok(stored == probe)
    }
}

impl KeyModel<u64> for ParkingEq<'_> {
    fn hash(&self, _: &u64) -> Result<u64, ()> {
        Ok(7) // every key collides: every lookup calls `eq`
    }
}

fn parking_eq(wait: &(dyn Fn() + Sync)) -> ParkingEq<'_> {
    ParkingEq {
        wait,
        parked: AtomicBool::new(false),
    }
}

#[test]
fn slow_eq_in_a_dict_lookup() {
    let growth = heap_growth_while_parked(|wait| {
        let d = GilFreeDict::<u64, u64>::new();
        let m = parking_eq(wait);
        d.insert_in(&m, 1, 1).unwrap(); // no eq: empty dict
        m.parked.store(false, SeqCst);
        assert_eq!(d.get_in(&m, &2), Ok(None));
    });
    check("GilFreeDict::get_in with a slow eq", growth);
}

#[test]
fn slow_eq_in_a_dict_write() {
    let growth = heap_growth_while_parked(|wait| {
        let d = GilFreeDict::<u64, u64>::new();
        let m = parking_eq(wait);
        d.insert_in(&m, 1, 1).unwrap();
        m.parked.store(false, SeqCst);
        assert_eq!(d.insert_in(&m, 2, 2), Ok(None));
    });
    check("GilFreeDict::insert_in with a slow eq", growth);
}

#[test]
fn slow_eq_in_a_list_search() {
    let growth = heap_growth_while_parked(|wait| {
        let l = GilFreeList::from_vec(vec![1u64, 2, 3]);
        let m = parking_eq(wait);
        assert_eq!(l.contains_in(&m, &3), Ok(true));
    });
    check("GilFreeList::contains_in with a slow eq", growth);
}

#[test]
fn slow_loop_body_between_dict_iterator_steps() {
    let growth = heap_growth_while_parked(|wait| {
        let d = GilFreeDict::<u64, u64>::new();
        for k in 0..10 {
            d.insert(k, k).unwrap();
        }
        let mut seen = 0;
        for (i, (_k, _v)) in d.iter().enumerate() {
            if i == 3 {
                wait();
            }
            seen += 1;
        }
        assert_eq!(seen, 10);
    });
    check("GilFreeDict iteration with a slow loop body", growth);
}

#[test]
fn slow_loop_body_between_list_iterator_steps() {
    let growth = heap_growth_while_parked(|wait| {
        let l = GilFreeList::from_vec((0..10u64).collect());
        let mut seen = 0;
        for (i, _x) in l.iter().enumerate() {
            if i == 3 {
                wait();
            }
            seen += 1;
        }
        assert_eq!(seen, 10);
    });
    check("GilFreeList iteration with a slow loop body", growth);
}

#[test]
fn slow_update_and_retain_closures() {
    let growth = heap_growth_while_parked(|wait| {
        let d = GilFreeDict::<u64, u64>::new();
        d.insert(1, 1).unwrap();
        d.upsert(1, |v| {
            wait();
            v.map_or(0, |v| v + 1)
        })
        .unwrap();
        assert_eq!(d.get(&1), Some(2));
    });
    check("GilFreeDict::update with a slow closure", growth);
    let growth = heap_growth_while_parked(|wait| {
        let l = GilFreeList::from_vec((0..10u64).collect());
        l.with_lock(|_| wait()).unwrap();
    });
    check("GilFreeList::with_lock with a slow closure", growth);
}

/// A value whose destructor parks (a slow `__del__`).
#[derive(Clone)]
struct SlowDrop(Option<Arc<dyn Fn() + Send + Sync>>);

impl Drop for SlowDrop {
    fn drop(&mut self) {
        if let Some(wait) = self.0.take() {
            wait();
        }
    }
}

impl gilfree::Storable for SlowDrop {
    type Storage = gilfree::storage::Boxed;
}

#[test]
fn slow_destructor_run_by_the_collector() {
    let growth = heap_growth_while_parked(|wait| {
        // The destructor tells a helper thread it runs and waits for its go; the helper parks
        // (`wait`) in between, so the destructor is running the whole time the writers write.
        let (running_tx, running_rx) = std::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (running_tx, go_rx) = (Mutex::new(running_tx), Mutex::new(go_rx));
        let started = Arc::new(AtomicBool::new(false));
        let signal: Arc<dyn Fn() + Send + Sync> = {
            let started = Arc::clone(&started);
            Arc::new(move || {
                started.store(true, SeqCst);
                running_tx.lock().unwrap().send(()).unwrap();
                go_rx.lock().unwrap().recv().unwrap();
            })
        };
        std::thread::scope(|s| {
            s.spawn(move || {
                running_rx.recv().unwrap();
                wait();
                go_tx.send(()).unwrap();
            });
            let d = GilFreeDict::<u64, SlowDrop>::new();
            d.insert(1, SlowDrop(Some(signal))).unwrap();
            d.insert(1, SlowDrop(None)).unwrap(); // retires the slow one
            for _ in 0..1000 {
                gilfree::collect_garbage();
                if started.load(SeqCst) {
                    return;
                }
            }
            panic!("the retired value was never freed");
        });
    });
    check("a slow destructor run by the collector", growth);
}

/// The control: an explicit read session held across the writers' work does stall
/// reclamation (the documented "keep it short" rule), and the measurement sees it.
#[test]
fn a_held_pin_session_does_stall_reclamation() {
    let growth = heap_growth_while_parked(|wait| {
        let l = GilFreeList::from_vec(vec![1u64]);
        let session = l.pin();
        wait();
        assert_eq!(*session.get(0).unwrap(), 1);
    });
    eprintln!("a held pin(): peak heap growth {} KiB", growth >> 10);
    assert!(
        growth > 128 << 20,
        "a held pin should keep the writers' garbage: grew by {} MiB only",
        growth >> 20
    );
}
