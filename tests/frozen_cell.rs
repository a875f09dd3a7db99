//! `FrozenCell` under concurrent republishing: readers always see one whole version (every
//! entry of the tree carries the same generation), generations never go backwards for a
//! reader, and every version ever published is dropped exactly once, after its last reader.
//! Runs for `GILFREE_STRESS_MS` (default 500 ms); `scripts/asan.sh` runs it under
//! AddressSanitizer (arc-swap has an open report of a guard observing a freed value).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gilfree::{Freeze, FrozenCell, GilFreeDict, GilFreeList, Shape};

fn stress_time() -> Duration {
    let ms = std::env::var("GILFREE_STRESS_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    Duration::from_millis(ms)
}

static CREATED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// A leaf that knows its generation, poisons itself when dropped, and counts drops.
struct Marker {
    generation: u64,
    check: u64,
}

const POISON: u64 = 0xDEAD_BEEF_DEAD_BEEF;

impl Marker {
    fn new(generation: u64) -> Arc<Marker> {
        CREATED.fetch_add(1, SeqCst);
        Arc::new(Marker {
            generation,
            check: !generation,
        })
    }

    fn generation(&self) -> u64 {
        assert_ne!(self.generation, POISON, "read a freed marker");
        assert_eq!(self.check, !self.generation, "torn or freed marker");
        self.generation
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, SeqCst);
        // SAFETY: plain writes to our own fields, volatile so that they stay.
        unsafe {
            std::ptr::write_volatile(&mut self.generation, POISON);
            std::ptr::write_volatile(&mut self.check, POISON);
        }
    }
}

#[derive(Clone)]
enum Val {
    Gen(Arc<Marker>),
    Dict(Arc<GilFreeDict<u64, Val>>),
    List(Arc<GilFreeList<Val>>),
}

impl gilfree::Storable for Val {
    type Storage = gilfree::storage::Boxed;
}

impl Freeze for Val {
    fn shape(&self) -> Shape<'_, Val> {
        match self {
            Val::Gen(_) => Shape::Leaf,
            Val::Dict(d) => Shape::Container(&**d),
            Val::List(l) => Shape::Container(&**l),
        }
    }

    fn shallow_copy(&self) -> Option<Val> {
        match self {
            Val::Gen(_) => None,
            Val::Dict(d) => Some(Val::Dict(Arc::new(d.copy()))),
            Val::List(l) => Some(Val::List(Arc::new(l.copy()))),
        }
    }
}

const KEYS: u64 = 32;

/// Version `g`: a dict of KEYS markers of generation `g` and a list of 8 more.
fn version(g: u64) -> Val {
    let d = GilFreeDict::new();
    for k in 0..KEYS {
        d.insert(k, Val::Gen(Marker::new(g))).unwrap();
    }
    let l = GilFreeList::new();
    for _ in 0..8 {
        l.append(Val::Gen(Marker::new(g))).unwrap();
    }
    d.insert(KEYS, Val::List(Arc::new(l))).unwrap();
    Val::Dict(Arc::new(d))
}

/// The generation of a loaded version, checking that every entry agrees.
fn read_whole(v: &Val) -> u64 {
    let Val::Dict(d) = v else {
        panic!("not a dict")
    };
    let f = d.frozen().expect("a published version is frozen");
    let mut g = None;
    let mut seen = |m: &Marker| {
        let mg = m.generation();
        assert_eq!(*g.get_or_insert(mg), mg, "two versions mixed in one tree");
    };
    for k in 0..KEYS {
        match f.get(&k) {
            Some(Val::Gen(m)) => seen(m),
            _ => panic!("entry {k} missing"),
        }
    }
    let Some(Val::List(l)) = f.get(&KEYS) else {
        panic!("no list")
    };
    for x in l.frozen().expect("frozen list").iter() {
        let Val::Gen(m) = x else {
            panic!("not a marker")
        };
        seen(m);
    }
    g.unwrap()
}

#[test]
fn readers_see_whole_versions_and_every_version_is_freed() {
    let before = (CREATED.load(SeqCst), DROPPED.load(SeqCst));
    let cell = Arc::new(FrozenCell::new(version(0)).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (cell, stop) = (Arc::clone(&cell), Arc::clone(&stop));
            std::thread::spawn(move || {
                let (mut last, mut reads, mut kept) = (0, 0u64, Vec::new());
                while !stop.load(SeqCst) {
                    let now = read_whole(&cell.load());
                    assert!(now >= last, "generation went back from {last} to {now}");
                    last = now;
                    reads += 1;
                    // Now and then keep a version past later publications.
                    if reads % 97 == 0 {
                        kept.push(cell.load_full());
                    }
                    if kept.len() > 4 {
                        let old = kept.remove(0);
                        assert!(read_whole(&old) <= last);
                    }
                }
                reads
            })
        })
        .collect();
    let deadline = Instant::now() + stress_time();
    let mut g = 0;
    while Instant::now() < deadline || g < 50 {
        g += 1;
        if g % 2 == 0 {
            cell.publish(version(g)).unwrap();
        } else {
            // Copy the current version (it stays frozen for its readers), change the copy.
            let next = g;
            cell.publish_with(|cur| {
                // A mutable copy of the current version (`copy` of a frozen dict thaws it;
                // the current version stays frozen for its readers), then changed.
                let Val::Dict(d) = cur else { unreachable!() };
                let copy = d.copy();
                assert!(!copy.is_frozen());
                for k in 0..KEYS {
                    copy.insert(k, Val::Gen(Marker::new(next))).unwrap();
                }
                let l = GilFreeList::new();
                for _ in 0..8 {
                    l.append(Val::Gen(Marker::new(next))).unwrap();
                }
                copy.insert(KEYS, Val::List(Arc::new(l))).unwrap();
                Val::Dict(Arc::new(copy))
            })
            .unwrap();
        }
    }
    stop.store(true, SeqCst);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0);
    assert_eq!(cell.generation(), g);
    assert_eq!(read_whole(&cell.load()), g);
    drop(cell);
    for _ in 0..4 {
        gilfree::collect_garbage();
    }
    let (created, dropped) = (
        CREATED.load(SeqCst) - before.0,
        DROPPED.load(SeqCst) - before.1,
    );
    assert_eq!(
        created, dropped,
        "versions leaked: {created} markers made, {dropped} dropped"
    );
}

#[test]
fn publishing_an_unfreezable_tree_changes_nothing() {
    // A tree with a value that cannot be frozen (its shape says so).
    #[derive(Clone)]
    enum V {
        Ok(Arc<GilFreeDict<u64, V>>),
        File,
    }
    impl gilfree::Storable for V {
        type Storage = gilfree::storage::Boxed;
    }
    impl Freeze for V {
        fn shape(&self) -> Shape<'_, V> {
            match self {
                V::Ok(d) => Shape::Container(&**d),
                V::File => Shape::Unfreezable("file"),
            }
        }
    }
    let good = Arc::new(GilFreeDict::new());
    good.insert(1, V::File).unwrap();
    assert!(FrozenCell::new(V::Ok(Arc::clone(&good))).is_err());
    assert!(!good.is_frozen(), "all or nothing");
    let cell = FrozenCell::new(V::Ok(Arc::new(GilFreeDict::new()))).unwrap();
    let bad = Arc::new(GilFreeDict::new());
    bad.insert(1, V::File).unwrap();
    assert!(cell.publish(V::Ok(Arc::clone(&bad))).is_err());
    assert!(!bad.is_frozen());
    assert_eq!(cell.generation(), 0);
    let V::Ok(d) = &*cell.load() else {
        unreachable!()
    };
    assert!(d.is_empty() && d.is_frozen());
}
