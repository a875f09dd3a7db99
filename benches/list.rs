//! List throughput: index read, append, insert(0), pop and iteration at 1 and 2 threads,
//! gilfree's lists against `Vec` (the single-thread limit; read-only workloads also at 2
//! threads), parking_lot `RwLock<Vec>` and `Mutex<Vec>`, and boxcar (append-only).
//!
//! Each measurement runs `threads` threads doing `iters` operations each and reports the wall
//! time; criterion's throughput line is the aggregate rate. Per-op times at 2 threads are per
//! operation *per thread*: the aggregate rate at 2 threads relative to 1 thread is
//! `2 * time(1 thread) / time(2 threads)`.
//!
//! Contenders:
//! - `GilFreeList`: the per-call API (`get` pins the epoch and clones, `iter()` is CPython's
//!   list iterator, pinning per step);
//! - `GilFreeList-pinned`: borrowed reads in a `ListPin` session (one pin per 1024 reads, or
//!   per iteration), the fast path an interpreter loop uses;
//! - `LockedList`: `get` under its read lock; iteration under one `read()` guard.
//!
//! Elements are `u64` in lists of 1024 (`insert0`: 1000 items, each op an `insert(0, x)` plus
//! a `pop()` that keeps the size).

use std::cell::UnsafeCell;
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gilfree::{GilFreeList, LockedList};
use parking_lot::{Mutex, RwLock};

const N: usize = 1024;

/// The operations every contender offers. `MULTI`: whether writes may run on 2 threads.
trait Seq: Send + Sync + Sized {
    const NAME: &'static str;
    const MULTI_WRITE: bool = true;
    const HAS_INSERT_POP: bool = true;
    fn make(items: &[u64]) -> Self;
    fn get(&self, i: usize) -> u64;
    fn append(&self, x: u64);
    fn insert0(&self, x: u64);
    fn pop(&self) -> Option<u64>;
    fn sum(&self) -> u64;
    /// `n` index reads starting at `i` (indices wrap at `N`).
    fn read_many(&self, mut i: usize, n: u64) -> u64 {
        let mut acc = 0;
        for _ in 0..n {
            i = (i + 1) & (N - 1);
            acc ^= black_box(self.get(i));
        }
        acc
    }
}

/// A plain `Vec`: reads from any number of threads, writes from one (the bench never runs
/// its writes on 2 threads).
struct Single(UnsafeCell<Vec<u64>>);
// SAFETY: shared only for read-only workloads at 2 threads; writes run on one thread.
unsafe impl Sync for Single {}

impl Single {
    #[allow(clippy::mut_from_ref)]
    fn vec(&self) -> &mut Vec<u64> {
        // SAFETY: see the `Sync` impl: writes are single-threaded.
        unsafe { &mut *self.0.get() }
    }
}

impl Seq for Single {
    const NAME: &'static str = "Vec";
    const MULTI_WRITE: bool = false;
    fn make(items: &[u64]) -> Self {
        Single(UnsafeCell::new(items.to_vec()))
    }
    #[inline]
    fn get(&self, i: usize) -> u64 {
        // SAFETY: read-only here.
        unsafe { (&*self.0.get())[i] }
    }
    fn append(&self, x: u64) {
        self.vec().push(x)
    }
    fn insert0(&self, x: u64) {
        let v = self.vec();
        v.insert(0, x);
        v.pop();
    }
    fn pop(&self) -> Option<u64> {
        self.vec().pop()
    }
    fn sum(&self) -> u64 {
        // SAFETY: read-only here.
        unsafe { (*self.0.get()).iter().sum() }
    }
}

impl Seq for GilFreeList<u64> {
    const NAME: &'static str = "GilFreeList";
    fn make(items: &[u64]) -> Self {
        GilFreeList::from_vec(items.to_vec())
    }
    #[inline]
    fn get(&self, i: usize) -> u64 {
        GilFreeList::get(self, i as isize).unwrap()
    }
    fn append(&self, x: u64) {
        GilFreeList::append(self, x).unwrap()
    }
    fn insert0(&self, x: u64) {
        GilFreeList::insert(self, 0, x).unwrap();
        GilFreeList::pop(self).unwrap();
    }
    fn pop(&self) -> Option<u64> {
        GilFreeList::pop(self).ok()
    }
    fn sum(&self) -> u64 {
        self.iter().sum()
    }
}

/// `GilFreeList` read through `ListPin` sessions.
struct Pinned(GilFreeList<u64>);

impl Seq for Pinned {
    const NAME: &'static str = "GilFreeList-pinned";
    fn make(items: &[u64]) -> Self {
        Pinned(GilFreeList::from_vec(items.to_vec()))
    }
    #[inline]
    fn get(&self, i: usize) -> u64 {
        *self.0.pin().get(i as isize).unwrap()
    }
    fn read_many(&self, mut i: usize, n: u64) -> u64 {
        let mut acc = 0;
        let mut left = n;
        while left > 0 {
            let batch = left.min(1024);
            let pin = self.0.pin();
            for _ in 0..batch {
                i = (i + 1) & (N - 1);
                acc ^= black_box(*pin.get(i as isize).unwrap());
            }
            left -= batch;
        }
        acc
    }
    fn append(&self, x: u64) {
        self.0.append(x).unwrap()
    }
    fn insert0(&self, x: u64) {
        self.0.insert(0, x).unwrap();
        self.0.pop().unwrap();
    }
    fn pop(&self) -> Option<u64> {
        self.0.pop().ok()
    }
    fn sum(&self) -> u64 {
        self.0.pin().iter().map(|x| *x).sum()
    }
}

impl Seq for LockedList<u64> {
    const NAME: &'static str = "LockedList";
    fn make(items: &[u64]) -> Self {
        LockedList::from_vec(items.to_vec())
    }
    #[inline]
    fn get(&self, i: usize) -> u64 {
        LockedList::get(self, i as isize).unwrap()
    }
    fn append(&self, x: u64) {
        LockedList::append(self, x).unwrap()
    }
    fn insert0(&self, x: u64) {
        LockedList::insert(self, 0, x).unwrap();
        LockedList::pop(self).unwrap();
    }
    fn pop(&self) -> Option<u64> {
        LockedList::pop(self).ok()
    }
    fn sum(&self) -> u64 {
        self.read().unwrap().iter().sum()
    }
}

impl Seq for RwLock<Vec<u64>> {
    const NAME: &'static str = "RwLock<Vec>";
    fn make(items: &[u64]) -> Self {
        RwLock::new(items.to_vec())
    }
    #[inline]
    fn get(&self, i: usize) -> u64 {
        self.read()[i]
    }
    fn append(&self, x: u64) {
        self.write().push(x)
    }
    fn insert0(&self, x: u64) {
        let mut v = self.write();
        v.insert(0, x);
        v.pop();
    }
    fn pop(&self) -> Option<u64> {
        self.write().pop()
    }
    fn sum(&self) -> u64 {
        self.read().iter().sum()
    }
}

impl Seq for Mutex<Vec<u64>> {
    const NAME: &'static str = "Mutex<Vec>";
    fn make(items: &[u64]) -> Self {
        Mutex::new(items.to_vec())
    }
    #[inline]
    fn get(&self, i: usize) -> u64 {
        self.lock()[i]
    }
    fn append(&self, x: u64) {
        self.lock().push(x)
    }
    fn insert0(&self, x: u64) {
        let mut v = self.lock();
        v.insert(0, x);
        v.pop();
    }
    fn pop(&self) -> Option<u64> {
        self.lock().pop()
    }
    fn sum(&self) -> u64 {
        self.lock().iter().sum()
    }
}

impl Seq for boxcar::Vec<u64> {
    const NAME: &'static str = "boxcar";
    const HAS_INSERT_POP: bool = false;
    fn make(items: &[u64]) -> Self {
        items.iter().copied().collect()
    }
    #[inline]
    fn get(&self, i: usize) -> u64 {
        self[i]
    }
    fn append(&self, x: u64) {
        self.push(x);
    }
    fn insert0(&self, _: u64) {
        unreachable!("append-only")
    }
    fn pop(&self) -> Option<u64> {
        unreachable!("append-only")
    }
    fn sum(&self) -> u64 {
        self.iter().map(|(_, x)| *x).sum()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Work {
    Index,
    Append,
    Insert0,
    Pop,
    Iterate,
}

/// Appends and pops run in rounds of at most this many operations per thread, each on a fresh
/// (or freshly filled) list built outside the timed section, so memory stays bounded.
const ROUND: u64 = 1 << 18;

/// Runs `work` on `threads` threads, `iters` operations each; returns the wall time of the
/// timed sections (setup and teardown excluded).
fn run<L: Seq>(work: Work, threads: usize, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = match work {
            Work::Append | Work::Pop => left.min(ROUND),
            _ => left,
        };
        total += round::<L>(work, threads, n);
        left -= n;
    }
    total
}

fn round<L: Seq>(work: Work, threads: usize, iters: u64) -> Duration {
    let items: Vec<u64> = (0..N as u64).collect();
    let l = match work {
        Work::Append => L::make(&[]),
        Work::Insert0 => L::make(&items[..1000]),
        // Every thread pops its `iters` items.
        Work::Pop => L::make(&vec![7; iters as usize * threads]),
        _ => L::make(&items),
    };
    let barrier = Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|s| {
        for t in 0..threads {
            let (l, barrier) = (&l, &barrier);
            s.spawn(move || {
                barrier.wait();
                match work {
                    Work::Index => {
                        black_box(l.read_many(t * 517, iters));
                    }
                    Work::Append => {
                        for k in 0..iters {
                            l.append(k);
                        }
                    }
                    Work::Insert0 => {
                        for k in 0..iters {
                            l.insert0(k);
                        }
                    }
                    Work::Pop => {
                        for _ in 0..iters {
                            black_box(l.pop());
                        }
                    }
                    Work::Iterate => {
                        for _ in 0..iters {
                            black_box(l.sum());
                        }
                    }
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    });
    // The list is dropped outside the timed section.
    drop(l);
    elapsed
}

fn contender<L: Seq>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    work: Work,
) {
    let writes = matches!(work, Work::Append | Work::Insert0 | Work::Pop);
    if matches!(work, Work::Insert0 | Work::Pop) && !L::HAS_INSERT_POP {
        return;
    }
    for threads in [1usize, 2] {
        if threads > 1 && writes && !L::MULTI_WRITE {
            continue;
        }
        let per_op = if work == Work::Iterate { N as u64 } else { 1 };
        c.throughput(Throughput::Elements(threads as u64 * per_op));
        c.bench_with_input(
            BenchmarkId::new(L::NAME, threads),
            &threads,
            |b, &threads| b.iter_custom(|iters| run::<L>(work, threads, iters)),
        );
    }
}

fn bench_work(c: &mut Criterion, name: &str, work: Work) {
    let mut group = c.benchmark_group(name);
    // Warm-up and measurement times come from the command line (`--warm-up-time 1
    // --measurement-time 2` keeps the whole bench near three minutes).
    group.sample_size(20);
    contender::<Single>(&mut group, work);
    contender::<GilFreeList<u64>>(&mut group, work);
    if matches!(work, Work::Index | Work::Iterate) {
        contender::<Pinned>(&mut group, work);
    }
    contender::<LockedList<u64>>(&mut group, work);
    contender::<RwLock<Vec<u64>>>(&mut group, work);
    contender::<Mutex<Vec<u64>>>(&mut group, work);
    if matches!(work, Work::Index | Work::Append | Work::Iterate) {
        contender::<boxcar::Vec<u64>>(&mut group, work);
    }
    group.finish();
}

fn list_benches(c: &mut Criterion) {
    bench_work(c, "list_index", Work::Index);
    bench_work(c, "list_append", Work::Append);
    bench_work(c, "list_insert0", Work::Insert0);
    bench_work(c, "list_pop", Work::Pop);
    bench_work(c, "list_iterate", Work::Iterate);
}

criterion_group!(benches, list_benches);
criterion_main!(benches);
