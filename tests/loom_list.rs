//! Loom models of the GilFreeList protocol: lock-free index reads and iteration vs in-place
//! shifts (insert/pop at the front), growth and shrink (a new array published), `set`, and
//! `clear`, with the crate's epoch reclamation on loom's atomics.
//!
//! Run with: `RUSTFLAGS="--cfg gilfree_loom" CARGO_TARGET_DIR=target-loom
//! cargo test --release --test loom_list` (`LOOM_MAX_PREEMPTIONS` bounds the search; `.ci/run`
//! uses 3). Items are `u64`s inline in the array's atomic words: a reader that sees a value
//! never in the list at that index, or an array before it was filled, fails here. The models
//! are small and explore few interleavings; the stress tests carry most of the evidence.
#![cfg(gilfree_loom)]

use gilfree::{Error, GilFreeList};
use loom::sync::Arc;
use loom::thread;

fn list(items: &[u64], capacity: usize) -> GilFreeList<u64> {
    let l = GilFreeList::with_capacity(capacity);
    l.extend(items.iter().copied()).unwrap();
    l
}

/// A first read by the writer thread registers it with the reclamation before the write (so
/// that registration, which takes a lock, does not order the write for the model).
fn warm_up(l: &GilFreeList<u64>) {
    let _ = l.get(0);
}

fn one_of(got: Result<u64, Error>, allowed: &[Option<u64>]) {
    let got = got.ok();
    assert!(allowed.contains(&got), "read {got:?}, allowed {allowed:?}");
}

#[test]
fn read_vs_insert_front_in_place() {
    loom::model(|| {
        // Room for one more: the insert shifts in place with atomic stores.
        let l = Arc::new(list(&[10, 20], 4));
        let w = {
            let l = l.clone();
            thread::spawn(move || {
                warm_up(&l);
                l.with_lock(|v| v.insert(0, 5).unwrap()).unwrap()
            })
        };
        one_of(l.get(0), &[Some(10), Some(5)]);
        one_of(l.get(1), &[Some(20), Some(10)]);
        one_of(l.get(2), &[None, Some(20)]);
        w.join().unwrap();
        assert_eq!(l.snapshot(), vec![5, 10, 20]);
    });
}

#[test]
fn read_vs_pop_front_in_place() {
    loom::model(|| {
        let l = Arc::new(list(&[10, 20, 30], 4));
        let w = {
            let l = l.clone();
            thread::spawn(move || {
                warm_up(&l);
                assert_eq!(l.pop_at(0).unwrap(), 10)
            })
        };
        one_of(l.get(0), &[Some(10), Some(20)]);
        one_of(l.get(2), &[Some(30), None]);
        w.join().unwrap();
        assert_eq!(l.snapshot(), vec![20, 30]);
    });
}

#[test]
fn read_vs_pop_end_in_place() {
    loom::model(|| {
        // Four items in 8 slots: neither pop shrinks the array, so both take the in-place
        // path (the item moves out, nothing is retired).
        let l = Arc::new(list(&[10, 20, 30, 40], 8));
        let start = l.version();
        let w = {
            let l = l.clone();
            thread::spawn(move || {
                warm_up(&l);
                assert_eq!(l.pop().unwrap(), 40);
                assert_eq!(l.pop_at(-1).unwrap(), 30);
            })
        };
        one_of(l.get(3), &[Some(40), None]);
        one_of(l.get(-1), &[Some(40), Some(30), Some(20)]);
        one_of(l.get(1), &[Some(20)]);
        assert!(matches!(l.len(), 2..=4), "len {}", l.len());
        w.join().unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l.snapshot(), vec![10, 20]);
        // Two sections that changed the list: even again, advanced by 2 each.
        assert_eq!(l.version(), start + 4);
    });
}

#[test]
fn read_vs_growth() {
    loom::model(|| {
        // Full: the append publishes a new array and retires the old one.
        let l = Arc::new(list(&[1, 2, 3, 4], 4));
        let w = {
            let l = l.clone();
            thread::spawn(move || {
                warm_up(&l);
                l.with_lock(|v| v.append(5).unwrap()).unwrap()
            })
        };
        one_of(l.get(-1), &[Some(4), Some(5)]);
        one_of(l.get(4), &[None, Some(5)]);
        w.join().unwrap();
        assert_eq!(l.snapshot(), vec![1, 2, 3, 4, 5]);
    });
}

#[test]
fn read_vs_shrink() {
    loom::model(|| {
        // 2 items in 8 slots: the pop leaves 1 < 8 / 4 and publishes a smaller array.
        let l = Arc::new(list(&[1, 2], 8));
        let w = {
            let l = l.clone();
            thread::spawn(move || {
                warm_up(&l);
                assert_eq!(l.pop().unwrap(), 2)
            })
        };
        one_of(l.get(1), &[Some(2), None]);
        one_of(l.get(0), &[Some(1)]);
        w.join().unwrap();
        assert_eq!(l.snapshot(), vec![1]);
    });
}

#[test]
fn read_vs_set() {
    loom::model(|| {
        let l = Arc::new(list(&[1, 2], 4));
        let w = {
            let l = l.clone();
            thread::spawn(move || {
                warm_up(&l);
                l.with_lock(|v| v.set(1, 7).unwrap()).unwrap()
            })
        };
        one_of(l.get(1), &[Some(2), Some(7)]);
        w.join().unwrap();
        assert_eq!(l.get(1), Ok(7));
    });
}

#[test]
fn read_vs_direct_set() {
    loom::model(|| {
        // `set` outside `with_lock`: the in-place path (no write section is built).
        let l = Arc::new(list(&[1, 2, 3], 4));
        let start = l.version();
        let w = {
            let l = l.clone();
            thread::spawn(move || {
                warm_up(&l);
                l.set(-2, 7).unwrap();
                assert_eq!(l.set(3, 9), Err(Error::IndexOutOfRange));
            })
        };
        one_of(l.get(1), &[Some(2), Some(7)]);
        one_of(l.get(2), &[Some(3)]);
        let v = l.version();
        assert!(
            v == start || v == start + 1 || v == start + 2,
            "version {v}"
        );
        w.join().unwrap();
        assert_eq!(l.snapshot(), vec![1, 7, 3]);
        // One section changed the list; the failed one left the version as it was.
        assert_eq!(l.version(), start + 2);
    });
}

#[test]
fn pinned_iteration_vs_insert_front() {
    loom::model(|| {
        let l = Arc::new(list(&[10, 20], 4));
        let w = {
            let l = l.clone();
            thread::spawn(move || {
                warm_up(&l);
                l.insert(0, 5).unwrap()
            })
        };
        {
            let pin = l.pin();
            let seen: Vec<u64> = pin.iter().map(|r| *r).collect();
            // Each step sees an item that was at that index before or after the shift
            // (possibly one twice), never a torn or foreign one.
            assert!((2..=3).contains(&seen.len()), "{seen:?}");
            assert!(seen.iter().all(|x| [5, 10, 20].contains(x)), "{seen:?}");
        }
        w.join().unwrap();
    });
}

#[test]
fn read_vs_clear() {
    loom::model(|| {
        let l = Arc::new(list(&[1, 2], 4));
        let w = {
            let l = l.clone();
            thread::spawn(move || {
                warm_up(&l);
                l.clear().unwrap()
            })
        };
        let got = l.get_with(1, |x| *x);
        assert!(
            matches!(got, Ok(2) | Err(Error::IndexOutOfRange)),
            "{got:?}"
        );
        w.join().unwrap();
        assert!(l.is_empty());
    });
}

#[test]
fn two_writers_and_a_reader() {
    loom::model(|| {
        let l = Arc::new(list(&[0, 1, 2], 4));
        let w = {
            let l = l.clone();
            thread::spawn(move || {
                warm_up(&l);
                l.append(3).unwrap()
            })
        };
        l.append(4).unwrap(); // one of the two appends grows the array
        w.join().unwrap();
        let mut items = l.snapshot();
        items.sort();
        assert_eq!(items, vec![0, 1, 2, 3, 4]);
    });
}
