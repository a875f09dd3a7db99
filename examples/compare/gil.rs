//! GIL suite: one interpreter-like script run by every thread — reads of module globals
//! (`LOAD_GLOBAL`) and appends to a list — with its containers protected by
//! - nothing (a race-free program needs no lock: the limit),
//! - one global lock taken per operation (a GIL),
//! - one global lock held for 100 operations at a time (a GIL with a switch interval),
//! - per-container locks (`LockedDict` + `LockedList`: the "locking types as the common case"),
//! - GIL-free containers (`GilFreeDict` + `GilFreeList`),
//! - frozen globals (`FrozenDict`) + `GilFreeList`.
//!
//! Two variants: each thread appends to its own list, or all append to one shared list.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};

use gilfree::{FrozenDict, GilFreeDict, GilFreeList, LockedDict, LockedList};
use parking_lot::{Mutex, MutexGuard};

use crate::dicts::{hasher, S};
use crate::harness::{self, key, Rng, BATCH};
use crate::report::Group;
use crate::workload::Settings;

/// Module globals read by the script.
const NAMES: usize = 64;
/// Global reads per append.
const READS_PER_APPEND: u64 = 4;
/// A thread clears its list (or, shared, the list) after this many of its own appends.
const CLEAR_EVERY: u64 = 1024;

/// The operations of the script, through whatever protects the containers.
trait Ops {
    fn load_global(&mut self, k: u64) -> u64;
    fn append(&mut self, v: u64);
    fn clear(&mut self);
}

/// Runs 100 operations: 20 steps of 4 global reads and one append (plus, every
/// `CLEAR_EVERY` appends, a `clear`, not counted); with `appends == false`, 100 reads.
#[inline]
fn batch<O: Ops>(
    o: &mut O,
    rng: &mut Rng,
    names: &[u64; NAMES],
    appended: &mut u64,
    appends: bool,
) {
    if !appends {
        let mut acc = 0u64;
        for _ in 0..BATCH {
            acc = acc.wrapping_add(o.load_global(names[rng.below(NAMES)]));
        }
        black_box(acc);
        return;
    }
    for _ in 0..BATCH / (READS_PER_APPEND + 1) {
        let mut acc = 0u64;
        for _ in 0..READS_PER_APPEND {
            acc = acc.wrapping_add(o.load_global(names[rng.below(NAMES)]));
        }
        o.append(black_box(acc));
        *appended += 1;
        if *appended % CLEAR_EVERY == 0 {
            o.clear();
        }
    }
}

/// A per-thread loop over one `Ops` that lives as long as the thread.
fn script<O: Ops>(
    stop: &AtomicBool,
    t: usize,
    names: &[u64; NAMES],
    appends: bool,
    mut o: O,
) -> u64 {
    let mut rng = Rng::new(t as u64 + 1);
    let (mut done, mut appended) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        batch(&mut o, &mut rng, names, &mut appended, appends);
        done += BATCH;
    }
    done
}

/// Everything a GIL protects.
struct World {
    globals: HashMap<u64, u64, S>,
    lists: Vec<Vec<u64>>,
}

struct Unsync<'a> {
    globals: &'a HashMap<u64, u64, S>,
    list: Vec<u64>,
}
impl Ops for Unsync<'_> {
    #[inline]
    fn load_global(&mut self, k: u64) -> u64 {
        self.globals[&k]
    }
    #[inline]
    fn append(&mut self, v: u64) {
        self.list.push(v);
    }
    fn clear(&mut self) {
        self.list.clear();
    }
}

/// The GIL taken and released around every operation.
struct GilPerOp<'a> {
    world: &'a Mutex<World>,
    list: usize,
}
impl Ops for GilPerOp<'_> {
    #[inline]
    fn load_global(&mut self, k: u64) -> u64 {
        self.world.lock().globals[&k]
    }
    #[inline]
    fn append(&mut self, v: u64) {
        self.world.lock().lists[self.list].push(v);
    }
    fn clear(&mut self) {
        self.world.lock().lists[self.list].clear();
    }
}

/// Inside one GIL holding (a batch of 100 operations).
struct GilHeld<'a, 'w> {
    world: &'a mut MutexGuard<'w, World>,
    list: usize,
}
impl Ops for GilHeld<'_, '_> {
    #[inline]
    fn load_global(&mut self, k: u64) -> u64 {
        self.world.globals[&k]
    }
    #[inline]
    fn append(&mut self, v: u64) {
        self.world.lists[self.list].push(v);
    }
    fn clear(&mut self) {
        self.world.lists[self.list].clear();
    }
}

struct Locked<'a> {
    globals: &'a LockedDict<u64, u64, S>,
    list: &'a LockedList<u64>,
}
impl Ops for Locked<'_> {
    #[inline]
    fn load_global(&mut self, k: u64) -> u64 {
        self.globals.get(&k).unwrap()
    }
    #[inline]
    fn append(&mut self, v: u64) {
        self.list.append(v).unwrap();
    }
    fn clear(&mut self) {
        self.list.clear().unwrap();
    }
}

struct Free<'a> {
    globals: &'a GilFreeDict<u64, u64, S>,
    list: &'a GilFreeList<u64>,
}
impl Ops for Free<'_> {
    #[inline]
    fn load_global(&mut self, k: u64) -> u64 {
        self.globals.get(&k).unwrap()
    }
    #[inline]
    fn append(&mut self, v: u64) {
        self.list.append(v).unwrap();
    }
    fn clear(&mut self) {
        self.list.clear().unwrap();
    }
}

struct Frozen<'a> {
    globals: FrozenDict<'a, u64, u64, S>,
    list: &'a GilFreeList<u64>,
}
impl Ops for Frozen<'_> {
    #[inline]
    fn load_global(&mut self, k: u64) -> u64 {
        *self.globals.get(&k).unwrap()
    }
    #[inline]
    fn append(&mut self, v: u64) {
        self.list.append(v).unwrap();
    }
    fn clear(&mut self) {
        self.list.clear().unwrap();
    }
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

/// Which lists the script appends to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lists {
    /// No appends: reads of globals only.
    None,
    /// Each thread appends to its own list.
    Own,
    /// All threads append to one list.
    Shared,
}

pub fn run(s: &Settings) -> Vec<Group> {
    vec![
        variant(s, Lists::None),
        variant(s, Lists::Own),
        variant(s, Lists::Shared),
    ]
}

fn variant(s: &Settings, lists: Lists) -> Group {
    let shared = lists == Lists::Shared;
    let appends = lists != Lists::None;
    let (workload, about) = match lists {
        Lists::None => (
            "globals only",
            format!(
                "gil: every thread reads {NAMES} module globals at random (LOAD_GLOBAL); \
                 one operation = one read"
            ),
        ),
        _ => (
            if shared { "shared list" } else { "own lists" },
            format!(
                "gil: every thread runs the same script: {READS_PER_APPEND} reads of {NAMES} \
                 module globals, then one append to {}; one operation = one read or one append",
                if shared {
                    "one list shared by all threads"
                } else {
                    "its own list"
                }
            ),
        ),
    };
    eprintln!("gil / {workload}");
    let mut g = Group::new("gil", workload, about, "unsynchronized");
    let max = s.threads.iter().copied().max().unwrap_or(1);
    let names: [u64; NAMES] = std::array::from_fn(|i| key(0, i as u64));
    let list_of = |t: usize| if shared { 0 } else { t };
    let globals: HashMap<u64, u64, S> = names.iter().map(|&k| (k, k >> 32)).collect();

    // Unsynchronized: globals are only read, each list has one owner; a shared list cannot
    // be written without synchronization, so that variant runs at one thread.
    each(s, &mut g, "unsynchronized", false, !shared, |t, stop| {
        let o = Unsync {
            globals: &globals,
            list: Vec::new(),
        };
        script(stop, t, &names, appends, o)
    });

    let world = Mutex::new(World {
        globals: globals.clone(),
        lists: vec![Vec::new(); max],
    });
    each(
        s,
        &mut g,
        "GIL, taken per operation",
        false,
        true,
        |t, stop| {
            let o = GilPerOp {
                world: &world,
                list: list_of(t),
            };
            script(stop, t, &names, appends, o)
        },
    );
    each(
        s,
        &mut g,
        "GIL, held 100 operations at a time",
        false,
        true,
        |t, stop| {
            let mut rng = Rng::new(t as u64 + 1);
            let (mut done, mut appended) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                let mut guard = world.lock();
                let mut o = GilHeld {
                    world: &mut guard,
                    list: list_of(t),
                };
                batch(&mut o, &mut rng, &names, &mut appended, appends);
                drop(guard);
                done += BATCH;
            }
            done
        },
    );

    let locked_globals = LockedDict::with_hasher(hasher());
    let free_globals = GilFreeDict::with_hasher(hasher());
    let frozen_globals = GilFreeDict::with_hasher(hasher());
    for (&k, &v) in &globals {
        locked_globals.insert(k, v).unwrap();
        free_globals.insert(k, v).unwrap();
        frozen_globals.insert(k, v).unwrap();
    }
    frozen_globals.freeze().unwrap();
    // The one list all threads share; with `Own`, each thread makes its own list (a separate
    // heap object, as an interpreter's list is: lists side by side in one array would share
    // cache lines between threads).
    let locked_shared: LockedList<u64> = LockedList::new();
    let free_shared: GilFreeList<u64> = GilFreeList::new();

    each(
        s,
        &mut g,
        "per-container locks (Locked*)",
        true,
        true,
        |t, stop| {
            let own = Box::new(LockedList::new());
            let o = Locked {
                globals: &locked_globals,
                list: if shared { &locked_shared } else { &own },
            };
            script(stop, t, &names, appends, o)
        },
    );
    each(
        s,
        &mut g,
        "GIL-free containers (GilFree*)",
        true,
        true,
        |t, stop| {
            let own = Box::new(GilFreeList::new());
            let o = Free {
                globals: &free_globals,
                list: if shared { &free_shared } else { &own },
            };
            script(stop, t, &names, appends, o)
        },
    );
    each(
        s,
        &mut g,
        "frozen globals + GilFreeList",
        true,
        true,
        |t, stop| {
            let own = Box::new(GilFreeList::new());
            let o = Frozen {
                globals: frozen_globals.frozen().unwrap(),
                list: if shared { &free_shared } else { &own },
            };
            script(stop, t, &names, appends, o)
        },
    );
    g
}
