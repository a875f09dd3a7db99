//! Concurrent stress of both lists, with checked histories:
//!
//! - appends from several threads: every item present exactly once, each thread's items in
//!   the order it appended them;
//! - readers racing with insert/pop at the front and the back, `set`, slice deletion, `clear`,
//!   `reverse` and `sort` (growth, shrink and in-place shifts): every item a reader sees is
//!   whole (not torn), one that was inserted, and not freed (items poison themselves on drop).
//!
//! Each test runs for `GILFREE_STRESS_MS` milliseconds (default 500), so the suite stays near
//! a second or two on a 2-core machine. No timing is asserted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gilfree::{Error, GilFreeList, LockedList, Sequence, Slice};

fn stress_time() -> Duration {
    let ms = std::env::var("GILFREE_STRESS_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    Duration::from_millis(ms)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An item that a torn or freed read would give away: four words that must agree, wiped
/// with a poison pattern when the item is dropped.
#[derive(Debug, PartialEq, PartialOrd)]
struct Tagged([u64; 4]);

impl gilfree::Storable for Tagged {
    type Storage = gilfree::storage::Boxed;
}

const POISON: u64 = 0xDEAD_BEEF_DEAD_BEEF;

impl Tagged {
    fn new(tag: u64) -> Tagged {
        Tagged([tag, !tag, tag.rotate_left(17), tag ^ 0x5555])
    }
    fn tag(&self) -> u64 {
        self.0[0]
    }
    fn check(&self, issued: u64) {
        let t = self.0[0];
        assert_ne!(t, POISON, "read a freed item: {self:?}");
        assert_eq!(self.0, Tagged::new(t).0, "torn or freed item: {self:?}");
        assert!(
            t < issued,
            "an item that was never inserted: {t} >= {issued}"
        );
    }
}

impl Clone for Tagged {
    fn clone(&self) -> Tagged {
        Tagged(self.0)
    }
}

impl Drop for Tagged {
    fn drop(&mut self) {
        for w in &mut self.0 {
            // SAFETY: a plain write to our own field; volatile so that it is not optimised out.
            unsafe { std::ptr::write_volatile(w, POISON) };
        }
    }
}

trait List<T>: Sequence<T> + Default + Send + Sync + 'static {}
impl<T: gilfree::Storable + Clone + Send + Sync + 'static> List<T> for GilFreeList<T> {}
impl<T: Clone + Send + Sync + 'static> List<T> for LockedList<T> {}

fn appends_from_many_threads<L: List<u64>>() {
    const WRITERS: u64 = 4;
    let l = Arc::new(L::default());
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + stress_time();
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let l = Arc::clone(&l);
            std::thread::spawn(move || {
                let mut k = 0u64;
                while Instant::now() < deadline {
                    for _ in 0..64 {
                        l.append((t << 32) | k).unwrap();
                        k += 1;
                    }
                }
                k
            })
        })
        .collect();
    let reader = {
        let (l, stop) = (Arc::clone(&l), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut rng = Rng(7);
            let mut reads = 0u64;
            while !stop.load(SeqCst) {
                let n = l.len() as u64;
                let i = rng.below(n + 4) as isize;
                match l.get(i) {
                    Ok(x) => assert!(x >> 32 < WRITERS),
                    Err(e) => assert_eq!(e, Error::IndexOutOfRange),
                }
                if let Ok(x) = l.get(-1) {
                    assert!(x >> 32 < WRITERS);
                }
                reads += 1;
            }
            reads
        })
    };
    let counts: Vec<u64> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    stop.store(true, SeqCst);
    reader.join().unwrap();
    let items = l.snapshot();
    assert_eq!(items.len() as u64, counts.iter().sum::<u64>());
    let mut next = vec![0u64; WRITERS as usize];
    for x in items {
        let (t, k) = ((x >> 32) as usize, x & 0xFFFF_FFFF);
        assert_eq!(
            k, next[t],
            "thread {t}'s items out of order, lost or duplicated"
        );
        next[t] += 1;
    }
    assert_eq!(next, counts);
}

#[test]
fn gilfree_appends_from_many_threads() {
    appends_from_many_threads::<GilFreeList<u64>>();
}

#[test]
fn locked_appends_from_many_threads() {
    appends_from_many_threads::<LockedList<u64>>();
}

/// Writers churn the list through every shifting and publishing path while readers check
/// every item they can see.
fn readers_during_shifts<L: List<Tagged>>(
    read_pinned: impl Fn(&L, &mut Rng, &AtomicU64) + Send + Sync + 'static,
) {
    let l = Arc::new(L::default());
    let issued = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let read_pinned = Arc::new(read_pinned);
    let fresh = |issued: &AtomicU64| Tagged::new(issued.fetch_add(1, SeqCst));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (l, issued, stop, read_pinned) = (
                Arc::clone(&l),
                Arc::clone(&issued),
                Arc::clone(&stop),
                Arc::clone(&read_pinned),
            );
            std::thread::spawn(move || {
                let mut rng = Rng(11 + r);
                let mut seen = 0u64;
                while !stop.load(SeqCst) {
                    let i = rng.below(80) as isize - 8;
                    match l.get(i) {
                        Ok(x) => {
                            x.check(issued.load(SeqCst));
                            seen += 1;
                        }
                        Err(e) => assert_eq!(e, Error::IndexOutOfRange),
                    }
                    let _ = l.get_with(0, |x| x.check(issued.load(SeqCst)));
                    if rng.below(16) == 0 {
                        read_pinned(&l, &mut rng, &issued);
                        let probe = Tagged::new(rng.below(issued.load(SeqCst) + 1));
                        let _ = l.contains(&probe);
                    }
                }
                seen
            })
        })
        .collect();
    let deadline = Instant::now() + stress_time();
    let mut rng = Rng(3);
    let mut ops = 0u64;
    while Instant::now() < deadline {
        for _ in 0..32 {
            match rng.below(20) {
                0..=4 => l.insert(0, fresh(&issued)).unwrap(),
                5..=8 => drop(l.pop_at(0)),
                9..=11 => l.append(fresh(&issued)).unwrap(),
                12..=13 => drop(l.pop()),
                14 => {
                    let i = rng.below(8) as isize;
                    let _ = l.set(i, fresh(&issued));
                }
                15 => {
                    let i = rng.below(16) as isize;
                    let _ = l.insert(i, fresh(&issued));
                }
                16 => {
                    let a = rng.below(12) as isize;
                    let s = Slice::with_step(a, a + 6, 1 + rng.below(3) as isize);
                    l.del_slice(s).unwrap();
                }
                17 => {
                    let items: Vec<Tagged> = (0..rng.below(6)).map(|_| fresh(&issued)).collect();
                    let a = rng.below(10) as isize;
                    l.set_slice(Slice::range(a, a + 2), items).unwrap();
                }
                18 => {
                    if rng.below(4) == 0 {
                        l.reverse().unwrap();
                    } else {
                        let _ = l.sort_by(rng.below(2) == 0, |a, b| Ok::<_, ()>(a.tag() < b.tag()));
                    }
                }
                _ => {
                    if l.len() > 60 || rng.below(8) == 0 {
                        l.clear().unwrap();
                    }
                }
            }
            ops += 1;
        }
    }
    stop.store(true, SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    let issued = issued.load(SeqCst);
    for x in l.snapshot() {
        x.check(issued);
    }
    assert!(ops > 0);
}

#[test]
fn gilfree_readers_during_shifts() {
    readers_during_shifts::<GilFreeList<Tagged>>(|l, rng, issued| {
        // Borrowed reads under one pin; items stay valid even if removed meanwhile.
        let pin = l.pin();
        let held: Vec<gilfree::Ref<'_, Tagged>> = pin.iter().take(16).collect();
        for _ in 0..8 {
            if let Ok(x) = pin.get(rng.below(40) as isize) {
                x.check(issued.load(SeqCst));
            }
        }
        std::thread::yield_now();
        for x in held {
            x.check(issued.load(SeqCst));
        }
        for x in l.iter().take(40) {
            x.check(issued.load(SeqCst));
        }
    });
}

#[test]
fn locked_readers_during_shifts() {
    readers_during_shifts::<LockedList<Tagged>>(|l, _, issued| {
        if let Ok(g) = l.read() {
            for x in g.iter() {
                x.check(issued.load(SeqCst));
            }
        }
        for x in l.iter().take(40) {
            x.check(issued.load(SeqCst));
        }
    });
}

/// Index reads racing with front inserts and pops see, at each index, an item from the list's
/// recent history: with items inserted in increasing order at the front, a reader never sees
/// an item *newer* than the newest published when its read completed.
#[test]
fn gilfree_front_inserts_publish_before_reads() {
    let l: Arc<GilFreeList<u64>> = Arc::new(GilFreeList::new());
    let newest = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    l.append(0).unwrap();
    let reader = {
        let (l, newest, stop) = (Arc::clone(&l), Arc::clone(&newest), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut rng = Rng(5);
            while !stop.load(SeqCst) {
                let i = rng.below(40) as isize;
                if let Ok(x) = l.get(i) {
                    assert!(
                        x <= newest.load(SeqCst),
                        "item {x} seen before it was inserted"
                    );
                }
            }
        })
    };
    let deadline = Instant::now() + stress_time();
    let mut next = 1;
    while Instant::now() < deadline {
        for _ in 0..32 {
            newest.store(next, SeqCst);
            l.insert(0, next).unwrap();
            next += 1;
            if l.len() > 32 {
                l.pop().unwrap();
                l.pop_at(0).unwrap();
            }
        }
    }
    stop.store(true, SeqCst);
    reader.join().unwrap();
}

/// `u64` compared as a script `__eq__` would be (never pure, no identity), or purely.
struct Model {
    pure: bool,
}

impl gilfree::EqModel<u64> for Model {
    type Error = ();

    fn eq(&self, stored: &u64, probe: &u64) -> Result<bool, ()> {
        Ok(stored == probe)
    }

    fn identical(&self, _: &u64, _: &u64) -> bool {
        false
    }

    fn eq_is_pure(&self, _: &u64, _: &u64) -> bool {
        self.pure
    }
}

/// Until `stop`: bursts of front inserts (of items other than `present`), then as many front
/// pops. The 8 items the list starts with in front of `present` stay in front of it, so it is
/// never popped, while every index shifts and the array grows and shrinks. Returns the number
/// of bursts.
fn shift_front<L: List<u64>>(
    l: &Arc<L>,
    stop: &Arc<AtomicBool>,
    present: u64,
) -> std::thread::JoinHandle<u64> {
    let (l, stop) = (Arc::clone(l), Arc::clone(stop));
    std::thread::spawn(move || {
        let mut rng = Rng(11);
        let mut n = 0u64;
        while !stop.load(SeqCst) {
            let burst = 1 + rng.below(48);
            for _ in 0..burst {
                l.insert(0, rng.below(present)).unwrap();
            }
            for _ in 0..burst {
                assert_ne!(l.pop_at(0), Ok(present));
            }
            n += 1;
        }
        n
    })
}

/// Searches never miss an item that is in the list the whole time, while another thread
/// shifts the list under them (`insert(0)`/`pop(0)` of other items, growth and shrink): with
/// script `eq` (compared on clones, the lock released) and with pure `eq` (in place).
/// `contains`, `index` and `count` answer for the list at one moment, so the item is always
/// found, exactly once; `remove` of it (put back by the same thread) always finds it.
fn searches_never_miss<L: List<u64>>() {
    const PRESENT: u64 = 1_000_000;
    let l = Arc::new(L::default());
    l.extend((0..8).chain([PRESENT]).chain(8..16)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let shifter = shift_front(&l, &stop, PRESENT);
    let deadline = Instant::now() + stress_time();
    let mut rounds = 0u64;
    while Instant::now() < deadline || rounds < 100 {
        for pure in [false, true] {
            let m = Model { pure };
            assert_eq!(
                l.contains_in(&m, &PRESENT),
                Ok(true),
                "round {rounds} pure {pure}"
            );
            assert!(
                l.index_in(&m, &PRESENT, 0, isize::MAX).is_ok(),
                "round {rounds}"
            );
            assert_eq!(
                l.count_in(&m, &PRESENT),
                Ok(1),
                "round {rounds} pure {pure}"
            );
        }
        rounds += 1;
    }
    stop.store(true, SeqCst);
    assert!(shifter.join().unwrap() > 0);
}

/// `remove` with script `eq` of an item present the whole time (only this thread removes it,
/// and puts it back) while another thread shifts the list: never `ValueNotFound`.
fn remove_never_misses<L: List<u64>>() {
    const PRESENT: u64 = 1_000_000;
    let l = Arc::new(L::default());
    l.extend((0..8).chain([PRESENT])).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let shifter = shift_front(&l, &stop, PRESENT);
    let deadline = Instant::now() + stress_time();
    let mut rounds = 0u64;
    let m = Model { pure: false };
    while Instant::now() < deadline || rounds < 100 {
        match l.remove_in(&m, &PRESENT) {
            Ok(()) => l.append(PRESENT).unwrap(),
            Err(Error::MutatedDuringLookup) => {} // bounded restarts under heavy contention
            Err(e) => panic!("round {rounds}: {e:?}"),
        }
        rounds += 1;
    }
    stop.store(true, SeqCst);
    assert!(shifter.join().unwrap() > 0);
    assert_eq!(l.count_in(&m, &PRESENT), Ok(1));
}

#[test]
fn gilfree_searches_never_miss() {
    searches_never_miss::<GilFreeList<u64>>();
}

#[test]
fn locked_searches_never_miss() {
    searches_never_miss::<LockedList<u64>>();
}

#[test]
fn gilfree_remove_never_misses() {
    remove_never_misses::<GilFreeList<u64>>();
}

#[test]
fn locked_remove_never_misses() {
    remove_never_misses::<LockedList<u64>>();
}
