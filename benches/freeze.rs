//! Frozen reads, freeze cost and hand-over cost.
//!
//! - `frozen_read`: dict reads through `FrozenDict` and list index reads through `FrozenList`
//!   (no pin, no lock, no refcount) at 1 and 2 threads against `Arc<HashMap>`/`Arc<Vec>` (the
//!   limits) and the unfrozen containers' borrowed reads.
//! - `freeze`: freezing a tree of 10^3..10^6 nodes, against one plain traversal of the same
//!   tree (reading every value through borrowed reads).
//! - `handover`: `Owned::hand_over` against serialize + deserialize of the same tree with
//!   serde + bincode (what moving a tree between interpreters costs without shared memory).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use gilfree::{
    freeze, Freeze, FrozenCell, GilFreeDict, GilFreeList, Interpreter, LockedDict, LockedList,
    Owned, Shape,
};
use serde::{Deserialize, Serialize};

type S = foldhash::fast::FixedState;

fn hasher() -> S {
    S::with_seed(0x5eed)
}

/// An interpreter-like value: ints and dicts of them.
#[derive(Clone)]
enum Value {
    Int(i64),
    Dict(Arc<GilFreeDict<i64, Value, S>>),
}

impl gilfree::Storable for Value {
    type Storage = gilfree::storage::Boxed;
}

impl Freeze for Value {
    fn shape(&self) -> Shape<'_, Value> {
        match self {
            Value::Int(_) => Shape::Leaf,
            Value::Dict(d) => Shape::Container(&**d),
        }
    }
}

/// A tree of `nodes` values: a root dict of dicts of 10 ints (11 values per sub-dict).
fn tree(nodes: usize) -> Value {
    let root = GilFreeDict::with_hasher(hasher());
    for i in 0..(nodes / 11).max(1) as i64 {
        let d = GilFreeDict::with_capacity_and_hasher(10, hasher());
        for j in 0..10 {
            d.insert(j, Value::Int(i * j)).unwrap();
        }
        root.insert(i, Value::Dict(Arc::new(d))).unwrap();
    }
    Value::Dict(Arc::new(root))
}

/// One plain traversal: every value read once through borrowed reads.
fn traverse(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Dict(d) => {
            let pinned = d.pin();
            pinned.iter().map(|(_, v)| traverse(&v)).sum()
        }
    }
}

/// The serde mirror of a tree (what an interpreter would pickle).
#[derive(Serialize, Deserialize)]
enum Wire {
    Int(i64),
    Dict(Vec<(i64, Wire)>),
}

fn to_wire(v: &Value) -> Wire {
    match v {
        Value::Int(i) => Wire::Int(*i),
        Value::Dict(d) => Wire::Dict(d.pin().iter().map(|(k, v)| (*k, to_wire(&v))).collect()),
    }
}

fn from_wire(w: Wire) -> Value {
    match w {
        Wire::Int(i) => Value::Int(i),
        Wire::Dict(entries) => {
            let d = GilFreeDict::with_capacity_and_hasher(entries.len(), hasher());
            for (k, v) in entries {
                d.insert(k, from_wire(v)).unwrap();
            }
            Value::Dict(Arc::new(d))
        }
    }
}

const READ_KEYS: u64 = 1 << 16;

/// A borrowed read of one key, the same call shape for every contender.
type Read<'a> = dyn Fn(u64) -> Option<u64> + Sync + 'a;

/// Runs `op(thread, i)` `iters` times on each of `threads` threads; returns the wall time.
fn parallel(threads: usize, iters: u64, op: &(dyn Fn(usize, u64) + Sync)) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for t in 0..threads {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for i in 0..iters {
                    op(t, i);
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

fn key(t: usize, i: u64) -> u64 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ t as u64) % READ_KEYS
}

fn frozen_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("frozen_read");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    let std_map: Arc<HashMap<u64, u64, S>> = Arc::new((0..READ_KEYS).map(|k| (k, k)).collect());
    let gilfree: GilFreeDict<u64, u64, S> = (0..READ_KEYS).map(|k| (k, k)).collect();
    let locked: LockedDict<u64, u64, S> = (0..READ_KEYS).map(|k| (k, k)).collect();
    let frozen: GilFreeDict<u64, u64, S> = (0..READ_KEYS).map(|k| (k, k)).collect();
    frozen.freeze().unwrap();
    let view = frozen.frozen().unwrap();
    let contenders: [(&str, &Read<'_>); 4] = [
        ("Arc_HashMap", &|k| std_map.get(&k).copied()),
        ("FrozenDict", &|k| view.get(&k).copied()),
        ("GilFreeDict_get_with", &|k| gilfree.get_with(&k, |v| *v)),
        ("LockedDict_get_with", &|k| locked.get_with(&k, |v| *v)),
    ];
    // Lists: index reads against `Arc<Vec>` (the limit) and the unfrozen lists.
    let std_vec: Arc<Vec<u64>> = Arc::new((0..READ_KEYS).collect());
    let glist: GilFreeList<u64> = (0..READ_KEYS).collect();
    let llist: LockedList<u64> = (0..READ_KEYS).collect();
    let flist: GilFreeList<u64> = (0..READ_KEYS).collect();
    flist.freeze().unwrap();
    let lview = flist.frozen().unwrap();
    let list_contenders: [(&str, &Read<'_>); 4] = [
        ("Arc_Vec", &|i| std_vec.get(i as usize).copied()),
        ("FrozenList", &|i| lview.get(i as isize).ok().copied()),
        ("GilFreeList_get_with", &|i| {
            glist.get_with(i as isize, |v| *v).ok()
        }),
        ("LockedList_get_with", &|i| {
            llist.get_with(i as isize, |v| *v).ok()
        }),
    ];
    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        for (name, read) in contenders.into_iter().chain(list_contenders) {
            group.bench_function(BenchmarkId::new(name, threads), |b| {
                b.iter_custom(|n| {
                    parallel(threads, n, &|t, i| {
                        black_box(read(key(t, i)));
                    })
                })
            });
        }
    }
    group.finish();
}

fn freeze_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("freeze");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(200));
    group.measurement_time(Duration::from_secs(3));
    for nodes in [1_000usize, 10_000, 100_000, 1_000_000] {
        group.throughput(Throughput::Elements(nodes as u64));
        let shared = tree(nodes);
        group.bench_with_input(BenchmarkId::new("traverse", nodes), &shared, |b, t| {
            b.iter(|| black_box(traverse(t)))
        });
        group.bench_with_input(BenchmarkId::new("freeze", nodes), &nodes, |b, &n| {
            b.iter_batched(
                || tree(n),
                |t| {
                    freeze(&t).unwrap();
                    t // dropped outside the timing
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn handover(c: &mut Criterion) {
    let mut group = c.benchmark_group("handover");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(200));
    group.measurement_time(Duration::from_secs(2));
    let (a, b) = (Interpreter::new(), Interpreter::new());
    for nodes in [1_000usize, 10_000, 100_000, 1_000_000] {
        let t = tree(nodes);
        // `hand_over` consumes the handle; the slot holds the current owner's.
        let mut owned = Some(Owned::new(&a, t.clone()));
        let mut at_a = true;
        group.bench_function(BenchmarkId::new("hand_over", nodes), |bench| {
            bench.iter(|| {
                let (from, to) = if at_a { (&a, &b) } else { (&b, &a) };
                let handle = owned.take().expect("a handle");
                owned = Some(handle.hand_over(from, to).unwrap());
                at_a = !at_a;
            })
        });
        group.bench_function(
            BenchmarkId::new("serde_bincode_roundtrip", nodes),
            |bench| {
                bench.iter(|| {
                    let bytes = bincode::serialize(&to_wire(&t)).unwrap();
                    black_box(from_wire(bincode::deserialize(&bytes).unwrap()))
                })
            },
        );
    }
    group.finish();
}

/// `FrozenCell`: the read cost of going through the current version (one load, then a frozen
/// read) against reading a plain frozen dict directly, at 1 and 2 threads; and the cost of a
/// reload (freeze + publish of a new tree) against the tree's size.
fn frozen_cell(c: &mut Criterion) {
    let mut group = c.benchmark_group("frozen_cell");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    let plain = tree(READ_KEYS as usize * 11);
    freeze(&plain).unwrap();
    let cell = FrozenCell::new(tree(READ_KEYS as usize * 11)).unwrap();
    let read_plain = |v: &Value, k: u64| match v {
        Value::Dict(d) => match d.frozen().unwrap().get(&(k as i64)) {
            Some(Value::Dict(inner)) => match inner.frozen().unwrap().get(&3) {
                Some(Value::Int(x)) => *x,
                _ => 0,
            },
            _ => 0,
        },
        Value::Int(_) => 0,
    };
    let contenders: [(&str, &Read<'_>); 2] = [
        ("frozen_tree", &|k| Some(read_plain(&plain, k) as u64)),
        ("frozen_cell_load", &|k| {
            Some(read_plain(&cell.load(), k) as u64)
        }),
    ];
    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        for (name, read) in contenders {
            group.bench_function(BenchmarkId::new(name, threads), |b| {
                b.iter_custom(|n| {
                    parallel(threads, n, &|t, i| {
                        black_box(read(key(t, i) % (READ_KEYS / 11).max(1)));
                    })
                })
            });
        }
    }
    group.finish();
    let mut group = c.benchmark_group("frozen_cell_reload");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(200));
    group.measurement_time(Duration::from_secs(3));
    for nodes in [1_000usize, 10_000, 100_000] {
        group.throughput(Throughput::Elements(nodes as u64));
        let cell = FrozenCell::new(tree(nodes)).unwrap();
        group.bench_with_input(BenchmarkId::new("publish", nodes), &nodes, |b, &n| {
            b.iter_batched(
                || tree(n),
                |t| cell.publish(t).unwrap(), // the old version is dropped outside the timing
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, frozen_read, freeze_cost, handover, frozen_cell);
criterion_main!(benches);
