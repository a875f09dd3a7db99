//! The refcount question with criterion's statistics (the same cases as
//! `cargo run --release --example compare -- --suite refcount`).
//!
//! `refcount_pair`: one increment + one decrement — a plain counter in memory, an atomic on its
//! own cache line, one atomic shared by all threads (None's refcount), atomics that are
//! neighbours on one line, `Arc` clone+drop of a per-thread / shared `Arc`.
//! `refcount_dict_read`: one dict read of a random key among 1024 whose values are `Arc`
//! handles: a clone (refcount traffic on one shared value, or on distinct values) vs a
//! borrowed read vs a frozen read.
//!
//! Each measurement runs `threads` threads doing `iters` operations each; the reported time is
//! wall time per operation as each thread sees it, the throughput line is the aggregate.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gilfree::{GilFreeDict, LockedDict};

type S = foldhash::fast::FixedState;

#[repr(align(128))]
struct Padded(AtomicU64);

#[repr(align(64))]
struct Line([AtomicU64; 8]);

const KEYS: usize = 1024;

/// Wall time of `threads` threads each running `body(thread, iters)`, released together.
fn timed(threads: usize, iters: u64, body: &(dyn Fn(usize, u64) + Sync)) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for t in 0..threads {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                body(t, iters);
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

#[inline]
fn pair(c: &AtomicU64) {
    let c = black_box(c);
    c.fetch_add(1, Ordering::Relaxed);
    c.fetch_sub(1, Ordering::Release);
}

fn thread_counts() -> Vec<usize> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n > 1 {
        vec![1, 2]
    } else {
        vec![1]
    }
}

/// A case's body: `body(thread, iters)`.
type Body<'a> = &'a (dyn Fn(usize, u64) + Sync);

fn group(c: &mut Criterion, name: &str, cases: &[(&str, Body<'_>)]) {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(1));
    g.sample_size(20);
    for (label, body) in cases {
        for threads in thread_counts() {
            g.throughput(Throughput::Elements(threads as u64));
            g.bench_with_input(BenchmarkId::new(*label, threads), &threads, |b, &t| {
                b.iter_custom(|iters| timed(t, iters, *body))
            });
        }
    }
    g.finish();
}

/// Xorshift index in `0..KEYS`.
#[inline]
fn next(x: &mut u64) -> usize {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    (*x as usize) & (KEYS - 1)
}

fn benches(c: &mut Criterion) {
    let own: Vec<Padded> = (0..64).map(|_| Padded(AtomicU64::new(1))).collect();
    let shared = Padded(AtomicU64::new(1));
    let line = Line(Default::default());
    let none = Arc::new(0u64);
    group(
        c,
        "refcount_pair",
        &[
            ("plain", &|_, n| {
                let mut x = 0u64;
                for _ in 0..n {
                    *black_box(&mut x) += 1;
                    *black_box(&mut x) -= 1;
                }
            }),
            ("atomic_own_line", &|t, n| {
                for _ in 0..n {
                    pair(&own[t % 64].0);
                }
            }),
            ("atomic_shared", &|_, n| {
                for _ in 0..n {
                    pair(&shared.0);
                }
            }),
            ("atomic_neighbours", &|t, n| {
                for _ in 0..n {
                    pair(&line.0[t % 8]);
                }
            }),
            ("arc_own", &|_, n| {
                let a = Arc::new(0u64);
                for _ in 0..n {
                    drop(black_box(Arc::clone(&a)));
                }
            }),
            ("arc_shared", &|_, n| {
                for _ in 0..n {
                    drop(black_box(Arc::clone(&none)));
                }
            }),
        ],
    );

    let keys: Vec<u64> = (0..KEYS as u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    let make = |shared: bool| {
        let d = GilFreeDict::<u64, Arc<u64>, S>::with_hasher(S::with_seed(0x5eed));
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
    let frozen = make(true);
    frozen.freeze().unwrap();
    let view = frozen.frozen().unwrap();
    let d = make(true);
    let distinct = make(false);
    let locked = LockedDict::<u64, Arc<u64>, S>::with_hasher(S::with_seed(0x5eed));
    for k in &keys {
        locked.insert(*k, Arc::clone(&none)).unwrap();
    }
    let keys = &keys;
    group(
        c,
        "refcount_dict_read",
        &[
            ("frozen_get_borrowed", &|t, n| {
                let mut x = t as u64 + 1;
                for _ in 0..n {
                    black_box(view.get(&keys[next(&mut x)]).map(|v| **v));
                }
            }),
            ("gilfree_get_with_borrowed", &|t, n| {
                let mut x = t as u64 + 1;
                for _ in 0..n {
                    black_box(d.get_with(&keys[next(&mut x)], |v| **v));
                }
            }),
            ("gilfree_get_clone_shared_value", &|t, n| {
                let mut x = t as u64 + 1;
                for _ in 0..n {
                    black_box(d.get(&keys[next(&mut x)]));
                }
            }),
            ("gilfree_get_clone_distinct_values", &|t, n| {
                let mut x = t as u64 + 1;
                for _ in 0..n {
                    black_box(distinct.get(&keys[next(&mut x)]));
                }
            }),
            ("locked_get_with_borrowed", &|t, n| {
                let mut x = t as u64 + 1;
                for _ in 0..n {
                    black_box(locked.get_with(&keys[next(&mut x)], |v| **v));
                }
            }),
            ("locked_get_clone_shared_value", &|t, n| {
                let mut x = t as u64 + 1;
                for _ in 0..n {
                    black_box(locked.get(&keys[next(&mut x)]));
                }
            }),
        ],
    );
}

criterion_group!(refcount, benches);
criterion_main!(refcount);
