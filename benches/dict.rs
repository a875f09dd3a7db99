//! Dict throughput: get / insert / remove / mixed at 1 and 2 threads, gilfree's dicts against
//! std `HashMap` (single-thread limit), parking_lot `RwLock<IndexMap>` and `Mutex<HashMap>`,
//! dashmap, papaya, scc `HashMap` and `HashIndex`. u64 keys and values, one hasher for all.
//!
//! Each measurement runs `threads` threads doing `iters` operations each and reports the wall
//! time; criterion's throughput line is then the aggregate operations per second.
//! `GILFREE_BENCH_KEYS` sets the table size (default 131072; `get_small` uses 1024).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gilfree::{GilFreeDict, LockedDict};
use indexmap::IndexMap;
use parking_lot::{Mutex, RwLock};

/// One fixed-seed foldhash for every contender.
type S = foldhash::fast::FixedState;

/// The operations every contender offers, with per-operation guards (no batching).
trait Map: Send + Sync {
    fn get(&self, k: u64) -> Option<u64>;
    fn insert(&self, k: u64, v: u64);
    fn remove(&self, k: u64);
}

impl Map for GilFreeDict<u64, u64, S> {
    fn get(&self, k: u64) -> Option<u64> {
        GilFreeDict::get(self, &k)
    }
    fn insert(&self, k: u64, v: u64) {
        GilFreeDict::insert(self, k, v).unwrap();
    }
    fn remove(&self, k: u64) {
        GilFreeDict::remove(self, &k).unwrap();
    }
}

impl Map for LockedDict<u64, u64, S> {
    fn get(&self, k: u64) -> Option<u64> {
        LockedDict::get(self, &k)
    }
    fn insert(&self, k: u64, v: u64) {
        LockedDict::insert(self, k, v).unwrap();
    }
    fn remove(&self, k: u64) {
        LockedDict::remove(self, &k).unwrap();
    }
}

impl Map for RwLock<IndexMap<u64, u64, S>> {
    fn get(&self, k: u64) -> Option<u64> {
        self.read().get(&k).copied()
    }
    fn insert(&self, k: u64, v: u64) {
        self.write().insert(k, v);
    }
    fn remove(&self, k: u64) {
        // Order-preserving removal, the dict semantics gilfree's dicts keep.
        self.write().shift_remove(&k);
    }
}

impl Map for Mutex<HashMap<u64, u64, S>> {
    fn get(&self, k: u64) -> Option<u64> {
        self.lock().get(&k).copied()
    }
    fn insert(&self, k: u64, v: u64) {
        self.lock().insert(k, v);
    }
    fn remove(&self, k: u64) {
        self.lock().remove(&k);
    }
}

impl Map for dashmap::DashMap<u64, u64, S> {
    fn get(&self, k: u64) -> Option<u64> {
        dashmap::DashMap::get(self, &k).map(|r| *r)
    }
    fn insert(&self, k: u64, v: u64) {
        dashmap::DashMap::insert(self, k, v);
    }
    fn remove(&self, k: u64) {
        dashmap::DashMap::remove(self, &k);
    }
}

impl Map for papaya::HashMap<u64, u64, S> {
    fn get(&self, k: u64) -> Option<u64> {
        self.pin().get(&k).copied()
    }
    fn insert(&self, k: u64, v: u64) {
        self.pin().insert(k, v);
    }
    fn remove(&self, k: u64) {
        self.pin().remove(&k);
    }
}

impl Map for scc::HashMap<u64, u64, S> {
    fn get(&self, k: u64) -> Option<u64> {
        self.read_sync(&k, |_, v| *v)
    }
    fn insert(&self, k: u64, v: u64) {
        self.upsert_sync(k, v);
    }
    fn remove(&self, k: u64) {
        self.remove_sync(&k);
    }
}

impl Map for scc::HashIndex<u64, u64, S> {
    fn get(&self, k: u64) -> Option<u64> {
        self.peek_with(&k, |_, v| *v)
    }
    fn insert(&self, k: u64, v: u64) {
        match self.entry_sync(k) {
            scc::hash_index::Entry::Occupied(mut o) => o.update(v),
            scc::hash_index::Entry::Vacant(e) => {
                e.insert_entry(v);
            }
        }
    }
    fn remove(&self, k: u64) {
        self.remove_sync(&k);
    }
}

/// std `HashMap` without any synchronization: the single-thread limit. Only ever used by one
/// thread (the bench driver runs it at 1 thread only).
struct Unsync(std::cell::UnsafeCell<HashMap<u64, u64, S>>);
// SAFETY: benchmarked at one thread only (see `contenders`).
unsafe impl Sync for Unsync {}

impl Map for Unsync {
    fn get(&self, k: u64) -> Option<u64> {
        // SAFETY: single-threaded use only.
        unsafe { (*self.0.get()).get(&k).copied() }
    }
    fn insert(&self, k: u64, v: u64) {
        // SAFETY: single-threaded use only.
        unsafe { (*self.0.get()).insert(k, v) };
    }
    fn remove(&self, k: u64) {
        // SAFETY: single-threaded use only.
        unsafe { (*self.0.get()).remove(&k) };
    }
}

fn hasher() -> S {
    S::with_seed(0x5eed)
}

/// Contender name, whether it may run on several threads, and a constructor.
type Make = fn() -> Box<dyn Map>;
fn contenders() -> Vec<(&'static str, bool, Make)> {
    vec![
        ("std_HashMap", false, || {
            Box::new(Unsync(HashMap::with_hasher(hasher()).into()))
        }),
        ("GilFreeDict", true, || {
            Box::new(GilFreeDict::with_hasher(hasher()))
        }),
        ("LockedDict", true, || {
            Box::new(LockedDict::with_hasher(hasher()))
        }),
        ("RwLock_IndexMap", true, || {
            Box::new(RwLock::new(IndexMap::with_hasher(hasher())))
        }),
        ("Mutex_HashMap", true, || {
            Box::new(Mutex::new(HashMap::with_hasher(hasher())))
        }),
        ("dashmap", true, || {
            Box::new(dashmap::DashMap::with_hasher(hasher()))
        }),
        ("papaya", true, || {
            Box::new(papaya::HashMap::with_hasher(hasher()))
        }),
        ("scc_HashMap", true, || {
            Box::new(scc::HashMap::with_hasher(hasher()))
        }),
        ("scc_HashIndex", true, || {
            Box::new(scc::HashIndex::with_hasher(hasher()))
        }),
    ]
}

/// Deterministic pseudo-random keys.
fn keys(n: usize, seed: u64) -> Vec<u64> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Workload {
    /// Lookups of present keys.
    Get,
    /// Overwrites of present keys.
    Insert,
    /// Insert a fresh key, then remove it (size stays constant).
    Remove,
    /// 90% get, 5% insert, 5% remove over a key space half present.
    Mixed,
}

fn run(
    map: &dyn Map,
    present: &[u64],
    absent: &[u64],
    w: Workload,
    threads: usize,
    iters: u64,
) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for t in 0..threads {
            let barrier = &barrier;
            s.spawn(move || {
                let n = present.len();
                let mut i = t * n / threads.max(1) + t * 7919;
                // Each thread churns its own slice of the absent keys.
                let own = &absent[t * absent.len() / threads..(t + 1) * absent.len() / threads];
                let mut j = 0;
                barrier.wait();
                for op in 0..iters {
                    i = if i + 1 >= n { 0 } else { i + 1 };
                    match w {
                        Workload::Get => {
                            black_box(map.get(present[i]));
                        }
                        Workload::Insert => map.insert(present[i], op),
                        Workload::Remove => {
                            j = if j + 1 >= own.len() { 0 } else { j + 1 };
                            map.insert(own[j], op);
                            map.remove(own[j]);
                        }
                        Workload::Mixed => match op % 20 {
                            0 => {
                                j = if j + 1 >= own.len() { 0 } else { j + 1 };
                                map.insert(own[j], op)
                            }
                            1 => map.remove(own[j]),
                            _ => {
                                black_box(map.get(if op % 2 == 0 {
                                    present[i]
                                } else {
                                    own[i % own.len()]
                                }));
                            }
                        },
                    }
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

fn bench_workload(c: &mut Criterion, name: &str, w: Workload, n: usize) {
    let present = keys(n, 1);
    let absent = keys(n, 2);
    let mut group = c.benchmark_group(name);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(20);
    for (label, multi, make) in contenders() {
        let map = make();
        for &k in &present {
            map.insert(k, k);
        }
        for threads in [1usize, 2] {
            if threads > 1 && !multi {
                continue;
            }
            group.throughput(Throughput::Elements(threads as u64));
            group.bench_with_input(BenchmarkId::new(label, threads), &threads, |b, &threads| {
                b.iter_custom(|iters| run(&*map, &present, &absent, w, threads, iters))
            });
        }
    }
    group.finish();
}

fn table_size() -> usize {
    std::env::var("GILFREE_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 17)
}

fn dict_benches(c: &mut Criterion) {
    let n = table_size();
    bench_workload(c, "dict_get", Workload::Get, n);
    bench_workload(c, "dict_get_small", Workload::Get, 1024);
    bench_workload(c, "dict_insert", Workload::Insert, n);
    bench_workload(c, "dict_remove", Workload::Remove, n);
    bench_workload(c, "dict_mixed", Workload::Mixed, n);
}

criterion_group!(benches, dict_benches);
criterion_main!(benches);
