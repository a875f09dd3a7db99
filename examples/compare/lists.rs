//! List suite: the same four mixes, read as list operations — read = `get(i)` at a random
//! index below the length, insert = `append`, remove = `pop()`, update = `set(i, v)` — over
//! this crate's lists and `Vec` (unsynchronized, frozen, `RwLock`, `Mutex`).

use std::cell::UnsafeCell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};

use gilfree::{FrozenList, GilFreeList, LockedList};
use parking_lot::{Mutex, RwLock};

use crate::harness::{self, Rng, BATCH};
use crate::report::Group;
use crate::workload::{Op, Settings, Workload};

/// Index reads.
pub trait ListReader: Sync {
    fn get(&self, i: usize) -> Option<u64>;
    fn len(&self) -> usize;
}

/// The full operation set, one lock acquisition per operation.
pub trait List: ListReader {
    fn append(&self, v: u64);
    fn pop(&self);
    fn set(&self, i: usize, v: u64);
}

impl ListReader for GilFreeList<u64> {
    #[inline]
    fn get(&self, i: usize) -> Option<u64> {
        GilFreeList::get(self, i as isize).ok()
    }
    #[inline]
    fn len(&self) -> usize {
        GilFreeList::len(self)
    }
}
impl List for GilFreeList<u64> {
    #[inline]
    fn append(&self, v: u64) {
        GilFreeList::append(self, v).unwrap();
    }
    #[inline]
    fn pop(&self) {
        // Empty (another thread popped the last item): Python's IndexError, still one operation.
        let _ = GilFreeList::pop(self);
    }
    #[inline]
    fn set(&self, i: usize, v: u64) {
        let _ = GilFreeList::set(self, i as isize, v);
    }
}

impl ListReader for LockedList<u64> {
    #[inline]
    fn get(&self, i: usize) -> Option<u64> {
        LockedList::get(self, i as isize).ok()
    }
    #[inline]
    fn len(&self) -> usize {
        LockedList::len(self)
    }
}
impl List for LockedList<u64> {
    #[inline]
    fn append(&self, v: u64) {
        LockedList::append(self, v).unwrap();
    }
    #[inline]
    fn pop(&self) {
        let _ = LockedList::pop(self);
    }
    #[inline]
    fn set(&self, i: usize, v: u64) {
        let _ = LockedList::set(self, i as isize, v);
    }
}

/// The read-only view of a frozen list: borrowed reads, no pin, no lock.
impl ListReader for FrozenList<'_, u64> {
    #[inline]
    fn get(&self, i: usize) -> Option<u64> {
        FrozenList::get(self, i as isize).ok().copied()
    }
    #[inline]
    fn len(&self) -> usize {
        FrozenList::len(self)
    }
}

/// A `Vec` nobody writes, shared by reference: the read limit at any thread count.
impl ListReader for Vec<u64> {
    #[inline]
    fn get(&self, i: usize) -> Option<u64> {
        self.as_slice().get(i).copied()
    }
    #[inline]
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

impl ListReader for RwLock<Vec<u64>> {
    #[inline]
    fn get(&self, i: usize) -> Option<u64> {
        self.read().as_slice().get(i).copied()
    }
    #[inline]
    fn len(&self) -> usize {
        self.read().len()
    }
}
impl List for RwLock<Vec<u64>> {
    #[inline]
    fn append(&self, v: u64) {
        self.write().push(v);
    }
    #[inline]
    fn pop(&self) {
        self.write().pop();
    }
    #[inline]
    fn set(&self, i: usize, v: u64) {
        if let Some(x) = self.write().get_mut(i) {
            *x = v;
        }
    }
}

impl ListReader for Mutex<Vec<u64>> {
    #[inline]
    fn get(&self, i: usize) -> Option<u64> {
        self.lock().as_slice().get(i).copied()
    }
    #[inline]
    fn len(&self) -> usize {
        self.lock().len()
    }
}
impl List for Mutex<Vec<u64>> {
    #[inline]
    fn append(&self, v: u64) {
        self.lock().push(v);
    }
    #[inline]
    fn pop(&self) {
        self.lock().pop();
    }
    #[inline]
    fn set(&self, i: usize, v: u64) {
        if let Some(x) = self.lock().get_mut(i) {
            *x = v;
        }
    }
}

/// `Vec` with no synchronization: the single-thread limit, only ever run at one thread.
pub struct UnsyncVec(UnsafeCell<Vec<u64>>);

// SAFETY: run on one thread only (`multi = false` in `mutating`); the main thread touches it
// only before that thread starts and after it has been joined.
unsafe impl Sync for UnsyncVec {}

impl UnsyncVec {
    #[allow(clippy::mut_from_ref)]
    #[inline]
    fn vec(&self) -> &mut Vec<u64> {
        // SAFETY: one thread at a time (see the `Sync` impl); each method uses the reference
        // for one call, so no two are alive together.
        unsafe { &mut *self.0.get() }
    }
}

impl ListReader for UnsyncVec {
    #[inline]
    fn get(&self, i: usize) -> Option<u64> {
        self.vec().as_slice().get(i).copied()
    }
    #[inline]
    fn len(&self) -> usize {
        self.vec().len()
    }
}
impl List for UnsyncVec {
    #[inline]
    fn append(&self, v: u64) {
        self.vec().push(v);
    }
    #[inline]
    fn pop(&self) {
        self.vec().pop();
    }
    #[inline]
    fn set(&self, i: usize, v: u64) {
        if let Some(x) = self.vec().get_mut(i) {
            *x = v;
        }
    }
}

/// One thread's loop: the length is re-read once per batch of 100 operations, and indices
/// are drawn uniformly below it (a `get` past a concurrently shrunk end is an IndexError,
/// still one operation).
fn mix_loop<L: List>(l: &L, ops: &[Op; 100], t: usize, stop: &AtomicBool) -> u64 {
    let mut rng = Rng::new(t as u64 + 1);
    let mut done = 0;
    let mut v = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let len = l.len();
        for &op in ops.iter() {
            match op {
                Op::Read => {
                    black_box(l.get(if len == 0 { 0 } else { rng.below(len) }));
                }
                Op::Insert => l.append(v),
                Op::Remove => l.pop(),
                Op::Update => l.set(if len == 0 { 0 } else { rng.below(len) }, v),
            }
            v += 1;
        }
        done += BATCH;
    }
    done
}

fn mutating<L: List>(
    s: &Settings,
    g: &mut Group,
    w: &Workload,
    name: &str,
    ours: bool,
    multi: bool,
    make: impl Fn() -> L,
) {
    if !s.wants(name) {
        return;
    }
    let ops = w.ops();
    for &t in &s.threads {
        if t > 1 && !multi {
            continue;
        }
        let r = {
            let l = make();
            for i in 0..(s.cap() as f64 * w.prefill) as u64 {
                l.append(i);
            }
            harness::run(t, s.duration, |th, stop| mix_loop(&l, &ops, th, stop))
        };
        g.push(name, ours, t, r);
    }
}

fn read_only<R: ListReader>(s: &Settings, g: &mut Group, name: &str, ours: bool, l: &R) {
    let len = l.len().max(1);
    for &t in &s.threads {
        let m = {
            harness::run(t, s.duration, |th, stop| {
                let mut rng = Rng::new(th as u64 + 1);
                harness::until_stopped(stop, || {
                    black_box(l.get(rng.below(len)));
                })
            })
        };
        g.push(name, ours, t, m);
    }
}

/// Readers beside a writer: `t` reader threads read random items while one more thread
/// overwrites random items (`set`); only the reads are counted.
fn beside_writer<L: List>(s: &Settings, g: &mut Group, name: &str, ours: bool, l: &L) {
    let len = l.len().max(1);
    for &t in &s.threads {
        let m = harness::run(t + 1, s.duration, |th, stop| {
            let mut rng = Rng::new(th as u64 + 1);
            if th == t {
                let mut v = 0u64;
                harness::until_stopped(stop, || {
                    l.set(rng.below(len), v);
                    v += 1;
                });
                return 0;
            }
            harness::until_stopped(stop, || {
                black_box(l.get(rng.below(len)));
            })
        });
        g.push(name, ours, t, m);
    }
}

pub fn run(s: &Settings, workloads: &[Workload]) -> Vec<Group> {
    let mut groups = Vec::new();
    for w in workloads {
        let about = w.describe("list", s.cap_log2, "get(i)", "append", "pop()", "set(i)");
        eprintln!("list / {} ({about})", w.name);
        let n = (s.cap() as f64 * w.prefill) as u64;
        if w.writer {
            let mut g = Group::new("list", w.name, about, "std Vec frozen");
            if s.wants("std Vec frozen") {
                // The limit: the same reads with no writer.
                let v: Vec<u64> = (0..n).collect();
                read_only(s, &mut g, "std Vec frozen", false, &v);
            }
            macro_rules! contender {
                ($name:expr, $ours:expr, $list:expr) => {
                    if s.wants($name) {
                        beside_writer(s, &mut g, $name, $ours, &$list);
                    }
                };
            }
            contender!("GilFreeList", true, GilFreeList::from_vec((0..n).collect()));
            contender!("LockedList", true, LockedList::from_vec((0..n).collect()));
            contender!(
                "RwLock<Vec>",
                false,
                RwLock::new((0..n).collect::<Vec<u64>>())
            );
            contender!(
                "Mutex<Vec>",
                false,
                Mutex::new((0..n).collect::<Vec<u64>>())
            );
            groups.push(g);
        } else if w.insert + w.remove + w.update == 0 {
            let mut g = Group::new("list", w.name, about, "std Vec frozen");
            if s.wants("std Vec frozen") {
                let v: Vec<u64> = (0..n).collect();
                read_only(s, &mut g, "std Vec frozen", false, &v);
            }
            if s.wants("GilFreeList") {
                let l = GilFreeList::from_vec((0..n).collect());
                read_only(s, &mut g, "GilFreeList", true, &l);
                l.freeze().unwrap();
                read_only(s, &mut g, "GilFreeList frozen", true, &l.frozen().unwrap());
            }
            if s.wants("LockedList") {
                let l = LockedList::from_vec((0..n).collect());
                read_only(s, &mut g, "LockedList", true, &l);
                l.freeze().unwrap();
                read_only(s, &mut g, "LockedList frozen", true, &l.frozen().unwrap());
            }
            if s.wants("RwLock<Vec>") {
                read_only(
                    s,
                    &mut g,
                    "RwLock<Vec>",
                    false,
                    &RwLock::new((0..n).collect()),
                );
            }
            if s.wants("Mutex<Vec>") {
                read_only(
                    s,
                    &mut g,
                    "Mutex<Vec>",
                    false,
                    &Mutex::new((0..n).collect()),
                );
            }
            groups.push(g);
        } else {
            let mut g = Group::new("list", w.name, about, "std Vec");
            mutating(s, &mut g, w, "std Vec", false, false, || {
                UnsyncVec(UnsafeCell::new(Vec::new()))
            });
            mutating(s, &mut g, w, "GilFreeList", true, true, GilFreeList::new);
            mutating(s, &mut g, w, "LockedList", true, true, LockedList::new);
            mutating(s, &mut g, w, "RwLock<Vec>", false, true, || {
                RwLock::new(Vec::new())
            });
            mutating(s, &mut g, w, "Mutex<Vec>", false, true, || {
                Mutex::new(Vec::new())
            });
            groups.push(g);
        }
    }
    groups
}
