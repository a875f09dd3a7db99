//! Dict suite: the four workloads over this crate's dicts and their peers.
//!
//! Keys and values are `u64`; every contender hashes with the same fixed-seed foldhash. The
//! key schedule follows bustle (conc-map-bench): each thread owns a key sequence, inserts its
//! next fresh key, removes its oldest live key, and reads/updates keys picked by an LCG over
//! its key space (hits and misses, as bustle does).

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::AtomicBool;

use gilfree::{FrozenDict, GilFreeDict, LockedDict};
use indexmap::IndexMap;
use parking_lot::{Mutex, RwLock};

use crate::harness::{self, key, mix64, until_stopped};
use crate::report::Group;
use crate::workload::{Op, Settings, Workload, READ_ONLY};

/// One fixed-seed foldhash for every contender.
pub type S = foldhash::fast::FixedState;

pub fn hasher() -> S {
    S::with_seed(0x5eed)
}

/// Lookups: what a read-only contender offers.
pub trait Reader: Sync {
    fn get(&self, k: u64) -> Option<u64>;
}

/// The full operation set, one guard or lock acquisition per operation (no batching).
pub trait Map: Reader {
    fn insert(&self, k: u64, v: u64);
    fn remove(&self, k: u64);
    /// Overwrites `k` only if it is present (bustle's `update`).
    fn update(&self, k: u64, v: u64);
}

impl Reader for GilFreeDict<u64, u64, S> {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        GilFreeDict::get(self, &k)
    }
}
impl Map for GilFreeDict<u64, u64, S> {
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        GilFreeDict::insert(self, k, v).unwrap();
    }
    #[inline]
    fn remove(&self, k: u64) {
        GilFreeDict::remove(self, &k).unwrap();
    }
    #[inline]
    fn update(&self, k: u64, v: u64) {
        // No update-if-present primitive: a lock-free check, then the locked overwrite (keys
        // are private to one thread here, so the pair cannot race with a remove).
        if self.contains_key(&k) {
            GilFreeDict::insert(self, k, v).unwrap();
        }
    }
}

impl Reader for LockedDict<u64, u64, S> {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        LockedDict::get(self, &k)
    }
}
impl Map for LockedDict<u64, u64, S> {
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        LockedDict::insert(self, k, v).unwrap();
    }
    #[inline]
    fn remove(&self, k: u64) {
        LockedDict::remove(self, &k).unwrap();
    }
    #[inline]
    fn update(&self, k: u64, v: u64) {
        self.with_lock(|d| {
            if d.contains_key(&k) {
                d.insert(k, v).unwrap();
            }
        })
        .unwrap();
    }
}

impl<St: gilfree::DictStore<u64, u64> + Sync> Reader for FrozenDict<'_, u64, u64, S, St> {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        FrozenDict::get(self, &k).copied()
    }
}

/// A `HashMap` nobody writes, shared by reference: the read limit at any thread count.
impl Reader for HashMap<u64, u64, S> {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        HashMap::get(self, &k).copied()
    }
}

impl Reader for RwLock<HashMap<u64, u64, S>> {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.read().get(&k).copied()
    }
}
impl Map for RwLock<HashMap<u64, u64, S>> {
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        self.write().insert(k, v);
    }
    #[inline]
    fn remove(&self, k: u64) {
        self.write().remove(&k);
    }
    #[inline]
    fn update(&self, k: u64, v: u64) {
        if let Some(x) = self.write().get_mut(&k) {
            *x = v;
        }
    }
}

impl Reader for RwLock<IndexMap<u64, u64, S>> {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.read().get(&k).copied()
    }
}
impl Map for RwLock<IndexMap<u64, u64, S>> {
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        self.write().insert(k, v);
    }
    #[inline]
    fn remove(&self, k: u64) {
        // Order-preserving removal (Python dict semantics): O(n), as in benches/dict.rs.
        self.write().shift_remove(&k);
    }
    #[inline]
    fn update(&self, k: u64, v: u64) {
        if let Some(x) = self.write().get_mut(&k) {
            *x = v;
        }
    }
}

impl Reader for Mutex<HashMap<u64, u64, S>> {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.lock().get(&k).copied()
    }
}
impl Map for Mutex<HashMap<u64, u64, S>> {
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        self.lock().insert(k, v);
    }
    #[inline]
    fn remove(&self, k: u64) {
        self.lock().remove(&k);
    }
    #[inline]
    fn update(&self, k: u64, v: u64) {
        if let Some(x) = self.lock().get_mut(&k) {
            *x = v;
        }
    }
}

impl Reader for dashmap::DashMap<u64, u64, S> {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        dashmap::DashMap::get(self, &k).map(|r| *r)
    }
}
impl Map for dashmap::DashMap<u64, u64, S> {
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        dashmap::DashMap::insert(self, k, v);
    }
    #[inline]
    fn remove(&self, k: u64) {
        dashmap::DashMap::remove(self, &k);
    }
    #[inline]
    fn update(&self, k: u64, v: u64) {
        if let Some(mut r) = self.get_mut(&k) {
            *r = v;
        }
    }
}

impl Reader for papaya::HashMap<u64, u64, S> {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.pin().get(&k).copied()
    }
}
impl Map for papaya::HashMap<u64, u64, S> {
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        self.pin().insert(k, v);
    }
    #[inline]
    fn remove(&self, k: u64) {
        self.pin().remove(&k);
    }
    #[inline]
    fn update(&self, k: u64, v: u64) {
        self.pin().update(k, |_| v);
    }
}

impl Reader for scc::HashMap<u64, u64, S> {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.read_sync(&k, |_, v| *v)
    }
}
impl Map for scc::HashMap<u64, u64, S> {
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        self.upsert_sync(k, v);
    }
    #[inline]
    fn remove(&self, k: u64) {
        self.remove_sync(&k);
    }
    #[inline]
    fn update(&self, k: u64, v: u64) {
        self.update_sync(&k, |_, x| *x = v);
    }
}

impl Reader for scc::HashIndex<u64, u64, S> {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.peek_with(&k, |_, v| *v)
    }
}
impl Map for scc::HashIndex<u64, u64, S> {
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        match self.entry_sync(k) {
            scc::hash_index::Entry::Occupied(mut o) => o.update(v),
            scc::hash_index::Entry::Vacant(e) => {
                e.insert_entry(v);
            }
        }
    }
    #[inline]
    fn remove(&self, k: u64) {
        self.remove_sync(&k);
    }
    #[inline]
    fn update(&self, k: u64, v: u64) {
        if let Some(mut o) = self.get_sync(&k) {
            o.update(v);
        }
    }
}

/// std `HashMap` with no synchronization at all: the single-thread limit. Only ever run at one
/// thread (`multi = false` below).
pub struct Unsync(UnsafeCell<HashMap<u64, u64, S>>);

// SAFETY: the harness runs an `Unsync` contender on one thread only (see `mutating`), and the
// main thread touches it only before that thread starts and after it has been joined.
unsafe impl Sync for Unsync {}

impl Unsync {
    #[allow(clippy::mut_from_ref)]
    #[inline]
    fn map(&self) -> &mut HashMap<u64, u64, S> {
        // SAFETY: one thread at a time (see the `Sync` impl); no other reference is alive
        // while the returned one is used (each method uses it for one call).
        unsafe { &mut *self.0.get() }
    }
}

impl Reader for Unsync {
    #[inline]
    fn get(&self, k: u64) -> Option<u64> {
        self.map().get(&k).copied()
    }
}
impl Map for Unsync {
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        self.map().insert(k, v);
    }
    #[inline]
    fn remove(&self, k: u64) {
        self.map().remove(&k);
    }
    #[inline]
    fn update(&self, k: u64, v: u64) {
        if let Some(x) = self.map().get_mut(&k) {
            *x = v;
        }
    }
}

/// bustle's LCG over a power-of-two key space: `x -> (a x + c) mod space`.
#[derive(Clone, Copy)]
struct Lcg {
    x: u64,
    a: u64,
    c: u64,
    mask: u64,
}

impl Lcg {
    fn new(space: u64, seed: u64) -> Self {
        debug_assert!(space.is_power_of_two() && space >= 8);
        Lcg {
            x: mix64(seed) & (space - 1),
            a: space / 2 + 1,
            c: space / 4 - 1,
            mask: space - 1,
        }
    }

    #[inline]
    fn next(&mut self) -> u64 {
        let x = self.x;
        self.x = self.a.wrapping_mul(x).wrapping_add(self.c) & self.mask;
        x
    }
}

/// One thread's loop of a mutating workload (bustle's `mix`), until `stop`.
fn mix_loop<M: Map>(
    m: &M,
    ops: &[Op; 100],
    t: usize,
    prefilled: u64,
    space: u64,
    stop: &AtomicBool,
) -> u64 {
    let mut find = Lcg::new(space, t as u64 + 1);
    let (mut insert_seq, mut erase_seq) = (prefilled, 0u64);
    let mut i = 0;
    until_stopped(stop, || {
        match ops[i] {
            Op::Read => {
                black_box(m.get(key(t, find.next())));
            }
            Op::Insert => {
                m.insert(key(t, insert_seq), insert_seq);
                insert_seq += 1;
            }
            Op::Remove => {
                if erase_seq == insert_seq {
                    m.remove(key(t, find.next()));
                } else {
                    m.remove(key(t, erase_seq));
                    erase_seq += 1;
                }
            }
            Op::Update => {
                let f = find.next();
                m.update(key(t, f), f);
            }
        }
        i = if i == 99 { 0 } else { i + 1 };
    })
}

/// Runs a mutating workload over a fresh, prefilled contender at each thread count.
fn mutating<M: Map>(
    s: &Settings,
    g: &mut Group,
    w: &Workload,
    name: &str,
    ours: bool,
    multi: bool,
    make: impl Fn() -> M,
) {
    if !s.wants(name) {
        return;
    }
    let ops = w.ops();
    for &t in &s.threads {
        if t > 1 && !multi {
            continue;
        }
        let per_thread = (s.cap() as f64 * w.prefill) as u64 / t as u64;
        let space = (s.cap() / t as u64).next_power_of_two().max(8);
        let r = {
            let m = make();
            for th in 0..t {
                for i in 0..per_thread {
                    m.insert(key(th, i), i);
                }
            }
            harness::run(t, s.duration, |th, stop| {
                mix_loop(&m, &ops, th, per_thread, space, stop)
            })
        };
        g.push(name, ours, t, r);
    }
}

/// Runs the read-only workload over one prefilled contender at every thread count.
fn read_only<R: Reader>(s: &Settings, g: &mut Group, name: &str, ours: bool, r: &R) {
    let space = s.cap().max(8);
    for &t in &s.threads {
        let m = {
            harness::run(t, s.duration, |th, stop| {
                let mut find = Lcg::new(space, th as u64 + 1);
                until_stopped(stop, || {
                    black_box(r.get(key(0, find.next())));
                })
            })
        };
        g.push(name, ours, t, m);
    }
}

/// Readers beside a writer: `t` reader threads look up the read-only workload's keys while
/// one more thread inserts and removes keys of its own (a window of 1,024); only the reads
/// are counted.
fn beside_writer<M: Map>(s: &Settings, g: &mut Group, name: &str, ours: bool, m: &M) {
    let space = s.cap().max(8);
    for &t in &s.threads {
        let r = harness::run(t + 1, s.duration, |th, stop| {
            if th == t {
                let mut seq = 0u64;
                until_stopped(stop, || {
                    m.insert(key(1, seq), seq);
                    if seq >= 1024 {
                        m.remove(key(1, seq - 1024));
                    }
                    seq += 1;
                });
                return 0;
            }
            let mut find = Lcg::new(space, th as u64 + 1);
            until_stopped(stop, || {
                black_box(m.get(key(0, find.next())));
            })
        });
        g.push(name, ours, t, r);
    }
}

fn run_beside_writer(s: &Settings, g: &mut Group) {
    if s.wants("std HashMap frozen") {
        // The limit: the same reads with no writer (a std map cannot have one).
        let n = (s.cap() as f64 * READ_ONLY.prefill) as u64;
        let m: HashMap<u64, u64, S> = (0..n).map(|i| (key(0, i), i)).collect();
        read_only(s, g, "std HashMap frozen", false, &m);
    }
    macro_rules! contender {
        ($name:expr, $ours:expr, $make:expr) => {
            if s.wants($name) {
                let m = $make;
                fill(s, &m);
                beside_writer(s, g, $name, $ours, &m);
            }
        };
    }
    contender!("GilFreeDict", true, GilFreeDict::with_hasher(hasher()));
    contender!("LockedDict", true, LockedDict::with_hasher(hasher()));
    contender!(
        "RwLock<HashMap>",
        false,
        RwLock::new(HashMap::with_hasher(hasher()))
    );
    contender!(
        "Mutex<HashMap>",
        false,
        Mutex::new(HashMap::with_hasher(hasher()))
    );
    contender!("dashmap", false, dashmap::DashMap::with_hasher(hasher()));
    contender!("papaya", false, papaya::HashMap::with_hasher(hasher()));
    contender!("scc::HashMap", false, scc::HashMap::with_hasher(hasher()));
    contender!(
        "scc::HashIndex",
        false,
        scc::HashIndex::with_hasher(hasher())
    );
}

/// Fills `m` with the read-only workload's keys (thread 0's first `prefill x cap`).
fn fill<M: Map>(s: &Settings, m: &M) {
    for i in 0..(s.cap() as f64 * READ_ONLY.prefill) as u64 {
        m.insert(key(0, i), i);
    }
}

pub fn run(s: &Settings, workloads: &[Workload]) -> Vec<Group> {
    let mut groups = Vec::new();
    for w in workloads {
        let about = w.describe("dict", s.cap_log2, "get", "insert", "remove", "update");
        eprintln!("dict / {} ({about})", w.name);
        if w.writer {
            let mut g = Group::new("dict", w.name, about, "std HashMap frozen");
            run_beside_writer(s, &mut g);
            groups.push(g);
        } else if w.insert + w.remove + w.update == 0 {
            let mut g = Group::new("dict", w.name, about, "std HashMap frozen");
            run_read_only(s, &mut g);
            groups.push(g);
        } else {
            let mut g = Group::new("dict", w.name, about, "std HashMap");
            run_mutating(s, &mut g, w);
            groups.push(g);
        }
    }
    groups
}

fn run_read_only(s: &Settings, g: &mut Group) {
    if s.wants("std HashMap frozen") {
        let n = (s.cap() as f64 * READ_ONLY.prefill) as u64;
        let m: HashMap<u64, u64, S> = (0..n).map(|i| (key(0, i), i)).collect();
        read_only(s, g, "std HashMap frozen", false, &m);
    }
    // Each of our dicts is read while mutable, then frozen and read through `frozen()`.
    if s.wants("GilFreeDict") || s.wants("GilFreeDict frozen") {
        let d = GilFreeDict::with_hasher(hasher());
        fill(s, &d);
        if s.wants("GilFreeDict") {
            read_only(s, g, "GilFreeDict", true, &d);
        }
        if s.wants("GilFreeDict frozen") {
            d.freeze().unwrap();
            read_only(s, g, "GilFreeDict frozen", true, &d.frozen().unwrap());
        }
    }
    if s.wants("LockedDict") || s.wants("LockedDict frozen") {
        let d = LockedDict::with_hasher(hasher());
        fill(s, &d);
        if s.wants("LockedDict") {
            read_only(s, g, "LockedDict", true, &d);
        }
        if s.wants("LockedDict frozen") {
            d.freeze().unwrap();
            read_only(s, g, "LockedDict frozen", true, &d.frozen().unwrap());
        }
    }
    macro_rules! peer {
        ($name:expr, $make:expr) => {
            if s.wants($name) {
                let m = $make;
                fill(s, &m);
                read_only(s, g, $name, false, &m);
            }
        };
    }
    peer!(
        "RwLock<HashMap>",
        RwLock::new(HashMap::with_hasher(hasher()))
    );
    peer!(
        "RwLock<IndexMap>",
        RwLock::new(IndexMap::with_hasher(hasher()))
    );
    peer!("Mutex<HashMap>", Mutex::new(HashMap::with_hasher(hasher())));
    peer!("dashmap", dashmap::DashMap::with_hasher(hasher()));
    peer!("papaya", papaya::HashMap::with_hasher(hasher()));
    peer!("scc::HashMap", scc::HashMap::with_hasher(hasher()));
    peer!("scc::HashIndex", scc::HashIndex::with_hasher(hasher()));
}

fn run_mutating(s: &Settings, g: &mut Group, w: &Workload) {
    mutating(s, g, w, "std HashMap", false, false, || {
        Unsync(UnsafeCell::new(HashMap::with_hasher(hasher())))
    });
    mutating(s, g, w, "GilFreeDict", true, true, || {
        GilFreeDict::with_hasher(hasher())
    });
    mutating(s, g, w, "LockedDict", true, true, || {
        LockedDict::with_hasher(hasher())
    });
    mutating(s, g, w, "RwLock<HashMap>", false, true, || {
        RwLock::new(HashMap::with_hasher(hasher()))
    });
    mutating(s, g, w, "RwLock<IndexMap>", false, true, || {
        RwLock::new(IndexMap::with_hasher(hasher()))
    });
    mutating(s, g, w, "Mutex<HashMap>", false, true, || {
        Mutex::new(HashMap::with_hasher(hasher()))
    });
    mutating(s, g, w, "dashmap", false, true, || {
        dashmap::DashMap::with_hasher(hasher())
    });
    mutating(s, g, w, "papaya", false, true, || {
        papaya::HashMap::with_hasher(hasher())
    });
    mutating(s, g, w, "scc::HashMap", false, true, || {
        scc::HashMap::with_hasher(hasher())
    });
    mutating(s, g, w, "scc::HashIndex", false, true, || {
        scc::HashIndex::with_hasher(hasher())
    });
}
