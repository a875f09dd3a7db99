//! Refcount suite: what an increment/decrement pair costs (the "LOCK INC" question), on a
//! private counter, an uncontended atomic, one atomic shared by all threads (None's refcount),
//! atomics that are neighbours on one cache line, and `Arc` clone+drop; then the same dict
//! read returning a clone (refcount traffic) vs a borrowed read vs a frozen read.

use std::collections::HashMap;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use gilfree::{GilFreeDict, LockedDict};

use crate::dicts::{hasher, S};
use crate::harness::{self, key, until_stopped, Rng, BATCH};
use crate::report::Group;
use crate::workload::Settings;

/// An atomic counter alone on its cache lines (128 bytes: adjacent-line prefetch included).
#[repr(align(128))]
struct Padded(AtomicU64);

/// Eight counters on one 64-byte line.
#[repr(align(64))]
struct Line([AtomicU64; 8]);

/// Keys of the dict-read rows.
const KEYS: usize = 1024;

/// One increment/decrement pair as `Arc` does it (Relaxed increment, Release decrement).
#[inline]
fn pair(c: &AtomicU64) {
    let c = black_box(c);
    c.fetch_add(1, Ordering::Relaxed);
    c.fetch_sub(1, Ordering::Release);
}

fn each<F>(s: &Settings, g: &mut Group, name: &str, ours: bool, multi: bool, body: F)
where
    F: Fn(usize, &AtomicBool) -> u64 + Sync,
{
    if !s.wants(name) {
        return;
    }
    for &t in &s.threads {
        if t > 1 && !multi {
            continue;
        }
        let m = harness::run(t, s.duration, &body);
        g.push(name, ours, t, m);
    }
}

pub fn run(s: &Settings) -> Vec<Group> {
    vec![pairs(s), dict_reads(s)]
}

fn pairs(s: &Settings) -> Group {
    let about = "refcount: one operation = one increment + one decrement of a counter \
                 (ns/op = ns per pair as each thread sees it)"
        .to_string();
    eprintln!("refcount / inc+dec pairs");
    let mut g = Group::new("refcount", "inc+dec pairs", about, "plain counter");
    let max = s.threads.iter().copied().max().unwrap_or(1);

    each(s, &mut g, "plain counter", false, true, |_, stop| {
        // A non-atomic counter in memory (the GIL build's Py_INCREF/Py_DECREF).
        let mut c = 0u64;
        until_stopped(stop, || {
            *black_box(&mut c) += 1;
            *black_box(&mut c) -= 1;
        })
    });
    let own: Vec<Padded> = (0..max).map(|_| Padded(AtomicU64::new(1))).collect();
    each(
        s,
        &mut g,
        "atomic, own cache line",
        false,
        true,
        |t, stop| {
            let c = &own[t].0;
            until_stopped(stop, || pair(c))
        },
    );
    let shared = Padded(AtomicU64::new(1));
    each(
        s,
        &mut g,
        "atomic, one shared by all (None)",
        false,
        true,
        |_, stop| until_stopped(stop, || pair(&shared.0)),
    );
    let line = Line(Default::default());
    each(
        s,
        &mut g,
        "atomics, neighbours on one line",
        false,
        true,
        |t, stop| {
            let c = &line.0[t % 8];
            until_stopped(stop, || pair(c))
        },
    );
    each(
        s,
        &mut g,
        "Arc clone+drop, per-thread Arc",
        false,
        true,
        |_, stop| {
            let a = Arc::new(0u64);
            until_stopped(stop, || drop(black_box(Arc::clone(&a))))
        },
    );
    let none = Arc::new(0u64);
    each(
        s,
        &mut g,
        "Arc clone+drop, one shared Arc",
        false,
        true,
        |_, stop| until_stopped(stop, || drop(black_box(Arc::clone(&none)))),
    );
    g
}

/// Reads of random keys among [`KEYS`]; `read` runs one read.
fn reads(stop: &AtomicBool, t: usize, keys: &[u64], mut read: impl FnMut(&u64)) -> u64 {
    let mut rng = Rng::new(t as u64 + 1);
    until_stopped(stop, || read(&keys[rng.below(KEYS)]))
}

fn dict_reads(s: &Settings) -> Group {
    let about = format!(
        "refcount: one operation = one dict read of a random key among {KEYS} (values are \
         Arc<u64> handles; a clone is a refcount increment, its drop a decrement)"
    );
    eprintln!("refcount / dict read + refcount");
    let limit = "FrozenDict.get (borrowed)";
    let mut g = Group::new("refcount", "dict read + refcount", about, limit);
    let keys: Vec<u64> = (0..KEYS as u64).map(|i| key(0, i)).collect();
    let none = Arc::new(0u64);
    let make_gilfree = |shared: bool| {
        let d = GilFreeDict::<u64, Arc<u64>, S>::with_hasher(hasher());
        for (i, k) in keys.iter().enumerate() {
            let v = if shared {
                Arc::clone(&none)
            } else {
                Arc::new(i as u64)
            };
            d.insert(*k, v).unwrap();
        }
        d
    };

    let frozen = make_gilfree(true);
    frozen.freeze().unwrap();
    let view = frozen.frozen().unwrap();
    each(s, &mut g, limit, true, true, |t, stop| {
        reads(stop, t, &keys, |k| {
            black_box(view.get(k).map(|v| **v));
        })
    });

    let d = make_gilfree(true);
    each(
        s,
        &mut g,
        "GilFreeDict.get_with (borrowed)",
        true,
        true,
        |t, stop| {
            reads(stop, t, &keys, |k| {
                black_box(d.get_with(k, |v| **v));
            })
        },
    );
    each(
        s,
        &mut g,
        "GilFreeDict.pin().get (borrowed, 1 pin/100 reads)",
        true,
        true,
        |t, stop| {
            let mut rng = Rng::new(t as u64 + 1);
            let mut done = 0;
            while !stop.load(Ordering::Relaxed) {
                let p = d.pin();
                for _ in 0..BATCH {
                    black_box(p.get(&keys[rng.below(KEYS)]).map(|v| **v));
                }
                done += BATCH;
            }
            done
        },
    );
    each(
        s,
        &mut g,
        "GilFreeDict.get -> clone, one shared value (None)",
        true,
        true,
        |t, stop| {
            reads(stop, t, &keys, |k| {
                black_box(d.get(k));
            })
        },
    );
    let distinct = make_gilfree(false);
    each(
        s,
        &mut g,
        "GilFreeDict.get -> clone, distinct values",
        true,
        true,
        |t, stop| {
            reads(stop, t, &keys, |k| {
                black_box(distinct.get(k));
            })
        },
    );

    let locked = LockedDict::<u64, Arc<u64>, S>::with_hasher(hasher());
    for k in &keys {
        locked.insert(*k, Arc::clone(&none)).unwrap();
    }
    each(
        s,
        &mut g,
        "LockedDict.get_with (borrowed)",
        true,
        true,
        |t, stop| {
            reads(stop, t, &keys, |k| {
                black_box(locked.get_with(k, |v| **v));
            })
        },
    );
    each(
        s,
        &mut g,
        "LockedDict.get -> clone, one shared value (None)",
        true,
        true,
        |t, stop| {
            reads(stop, t, &keys, |k| {
                black_box(locked.get(k));
            })
        },
    );

    each(
        s,
        &mut g,
        "std HashMap<_, Rc>.get -> clone (no atomics, 1 thread)",
        false,
        false,
        |t, stop| {
            // The GIL build: non-atomic refcounts, no locks (built inside the thread: Rc).
            let none = Rc::new(0u64);
            let m: HashMap<u64, Rc<u64>, S> = keys.iter().map(|k| (*k, Rc::clone(&none))).collect();
            reads(stop, t, &keys, |k| {
                black_box(m.get(k).cloned());
            })
        },
    );
    g
}
