//! Concurrent stress tests of both dicts, with checked histories.
//!
//! Each test runs for a bounded time (env `GILFREE_STRESS_MS`, default 1000 ms per test; raise
//! it to stress longer) under a watchdog, and checks what the threads observed, never how fast:
//! - no lost insert (disjoint writers; readers see every insert whose completion they saw);
//! - no torn or freed value is ever read (values encode their key, carry a heap copy and a
//!   magic word that their destructor overwrites);
//! - the final state equals a sequential replay wherever the workload makes that decidable
//!   (each writer owns its keys, so its keys' values *and relative order* are its own replay);
//! - iterations are consistent with a sequential history (insertion serials in order, no key
//!   twice, keys present throughout are seen);
//! - counters updated from several threads sum exactly;
//! - every value is dropped exactly once, and retired memory is reclaimed while the dict lives.

mod common;

use std::collections::HashSet;
use std::panic::resume_unwind;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Counted, HashFn, Obj, PlainDict, TestDict, Tracker, Vm, MIX};
use gilfree::{Error, LockedDict};
use indexmap::IndexMap;

/// How long each stress phase runs.
fn duration() -> Duration {
    common::stress_duration(1000)
}

/// A watchdog generous enough for the configured duration.
fn watchdog_secs() -> u64 {
    30 + 3 * duration().as_secs()
}

/// A small deterministic PRNG (xorshift64*), one per thread.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Joins every thread, re-raising the first panic with its original message.
fn join_all<T>(handles: Vec<JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    let mut panic = None;
    for h in handles {
        match h.join() {
            Ok(v) => out.push(v),
            Err(p) => {
                panic.get_or_insert(p);
            }
        }
    }
    if let Some(p) = panic {
        resume_unwind(p);
    }
    out
}

fn new_dict<K, V, D: TestDict<K, V>>() -> Arc<D>
where
    D::Hasher: Default,
{
    Arc::new(D::make(Default::default()))
}

// ---------------------------------------------------------------------------------------------
// Disjoint writers: no lost insert
// ---------------------------------------------------------------------------------------------

const WRITERS: u64 = 3;
/// Cap on inserts per writer (memory bound when the stress duration is raised).
const MAX_PER_WRITER: u64 = 300_000;

fn disjoint_key(w: u64, i: u64) -> u64 {
    w << 40 | i
}

fn disjoint_value(key: u64) -> u64 {
    key.wrapping_mul(MIX) ^ 0x5555
}

/// Writers insert disjoint key ranges while a reader checks that every insert whose completion
/// it has seen is visible. Afterwards every key is present exactly once, with its value, and
/// each writer's keys are in that writer's insertion order.
fn disjoint_writers_lose_nothing<D: PlainDict<u64, u64>>()
where
    D::Hasher: Default,
{
    let d: Arc<D> = new_dict();
    let end = Instant::now() + duration();
    let progress: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let (d, progress) = (Arc::clone(&d), Arc::clone(&progress));
        handles.push(std::thread::spawn(move || {
            let mut i = 0;
            while i < MAX_PER_WRITER && (i % 64 != 0 || Instant::now() < end) {
                let k = disjoint_key(w, i);
                assert_eq!(
                    d.insert(k, disjoint_value(k)),
                    Ok(None),
                    "{}: fresh key",
                    D::NAME
                );
                i += 1;
                progress[w as usize].store(i, SeqCst);
            }
        }));
    }
    let reader = {
        let (d, progress, done) = (Arc::clone(&d), Arc::clone(&progress), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut rng = Rng::new(7);
            let mut checks = 0u64;
            loop {
                // Read the flag first: the pass after the writers finished still runs.
                let stop = done.load(SeqCst);
                let before: u64 = progress.iter().map(|p| p.load(SeqCst)).sum();
                let len = d.len() as u64;
                assert!(
                    len >= before,
                    "{}: len {len} < {before} completed inserts",
                    D::NAME
                );
                for w in 0..WRITERS {
                    let p = progress[w as usize].load(SeqCst);
                    if p == 0 {
                        continue;
                    }
                    for i in [p - 1, rng.below(p)] {
                        let k = disjoint_key(w, i);
                        assert_eq!(
                            d.get(&k),
                            Some(disjoint_value(k)),
                            "{}: completed insert of writer {w} #{i} not visible",
                            D::NAME
                        );
                        checks += 1;
                    }
                }
                if stop {
                    break;
                }
            }
            checks
        })
    };
    join_all(handles);
    done.store(true, SeqCst);
    let checks = join_all(vec![reader])[0];
    assert!(checks > 0, "the reader checked nothing");

    let counts: Vec<u64> = progress.iter().map(|p| p.load(SeqCst)).collect();
    let total: u64 = counts.iter().sum();
    assert_eq!(d.len() as u64, total, "{}: len", D::NAME);
    let keys = d.keys();
    assert_eq!(keys.len() as u64, total, "{}: keys()", D::NAME);
    let distinct: HashSet<u64> = keys.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        keys.len(),
        "{}: a key appears twice",
        D::NAME
    );
    // Each writer's keys appear in its own insertion order.
    let mut next = vec![0u64; WRITERS as usize];
    for (k, v) in d.items() {
        let (w, i) = ((k >> 40) as usize, k & ((1 << 40) - 1));
        assert_eq!(i, next[w], "{}: writer {w}'s keys out of order", D::NAME);
        next[w] += 1;
        assert_eq!(v, disjoint_value(k), "{}: value of {k}", D::NAME);
    }
    assert_eq!(next, counts, "{}: every insert present", D::NAME);
}

// ---------------------------------------------------------------------------------------------
// Churn on a shared key space, with owned keys
// ---------------------------------------------------------------------------------------------

const CHURN_KEYS: u64 = 64;
const CHURN_WRITERS: u64 = 2;

/// Writers churn (insert, overwrite, update, setdefault, remove) on their own keys of a small
/// shared key space, checking every return value against their own replay; readers check that
/// every value they see (by clone, borrowed, or iteration, including `pin()` batches) is alive,
/// untorn and filed under its key. Finally each writer's keys hold its replay's values in its
/// replay's order, and every value is dropped exactly once.
fn churn_readers_see_well_formed_values<D: PlainDict<u64, Counted>>()
where
    D::Hasher: Default,
{
    let tracker = Tracker::new();
    let d: Arc<D> = new_dict();
    let end = Instant::now() + duration();
    let done = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..CHURN_WRITERS {
        let (d, tracker) = (Arc::clone(&d), Arc::clone(&tracker));
        writers.push(std::thread::spawn(move || {
            let mut rng = Rng::new(100 + w);
            let mut model: IndexMap<u64, u64> = IndexMap::new(); // key -> generation
            let mut gen = 0;
            let mut ops = 0u64;
            while ops % 128 != 0 || Instant::now() < end {
                ops += 1;
                let k = rng.below(CHURN_KEYS / CHURN_WRITERS) * CHURN_WRITERS + w;
                gen += 1;
                let ctx = format!("{} writer {w} op {ops} key {k}", D::NAME);
                let old = |v: Option<Counted>| v.map(|v| v.gen());
                match rng.below(10) {
                    0..=3 => {
                        let got = d.insert(k, Counted::new(&tracker, k, gen)).unwrap();
                        assert_eq!(old(got), model.insert(k, gen), "{ctx}: insert");
                    }
                    4..=5 => {
                        let got = d.remove(&k).unwrap();
                        assert_eq!(old(got), model.shift_remove(&k), "{ctx}: remove");
                    }
                    6 => {
                        let got = d.remove_entry(&k).unwrap();
                        let want = model.shift_remove(&k);
                        assert_eq!(got.as_ref().map(|e| e.0), want.map(|_| k), "{ctx}");
                        assert_eq!(old(got.map(|e| e.1)), want, "{ctx}: remove_entry");
                    }
                    7 => {
                        let got = d.setdefault(k, Counted::new(&tracker, k, gen)).unwrap();
                        let want = *model.entry(k).or_insert(gen);
                        assert_eq!(got.gen(), want, "{ctx}: setdefault");
                    }
                    _ => {
                        let want = model.get(&k).copied();
                        d.upsert(k, |v| {
                            assert_eq!(v.map(Counted::gen), want, "{ctx}: update saw");
                            Counted::new(&tracker, k, gen)
                        })
                        .unwrap();
                        model.insert(k, gen);
                    }
                }
            }
            model
        }));
    }
    let mut readers = Vec::new();
    for r in 0..2u64 {
        let (d, done) = (Arc::clone(&d), Arc::clone(&done));
        readers.push(std::thread::spawn(move || {
            let mut rng = Rng::new(200 + r);
            let keys: Vec<u64> = (0..CHURN_KEYS).collect();
            let mut seen = 0u64;
            loop {
                // Read the flag first: the pass after the writers finished still runs.
                let stop = done.load(SeqCst);
                match rng.below(4) {
                    0 => {
                        for k in 0..CHURN_KEYS {
                            if let Some(v) = d.get(&k) {
                                v.check(k);
                                seen += 1;
                            }
                            d.get_with(&k, |v| v.check(k));
                        }
                    }
                    1 => {
                        for (k, v) in d.iter() {
                            v.check(k);
                            seen += 1;
                        }
                        for (k, v) in d.iter().rev() {
                            v.check(k);
                        }
                    }
                    2 => d.borrowed_reads(
                        &keys,
                        &mut |k, v| {
                            if let Some(v) = v {
                                v.check(*k);
                                seen += 1;
                            }
                        },
                        &mut |k, v| v.check(*k),
                    ),
                    _ => {
                        for (k, v) in d.snapshot() {
                            v.check(k);
                        }
                        let n = d.len();
                        assert!(n as u64 <= CHURN_KEYS, "{}: len {n}", D::NAME);
                    }
                }
                if stop {
                    break;
                }
            }
            seen
        }));
    }
    let models = join_all(writers);
    done.store(true, SeqCst);
    let seen: u64 = join_all(readers).iter().sum();
    assert!(seen > 0, "readers saw nothing");

    // Final state: each writer's keys are its own sequential replay, values and order.
    let items = d.items();
    for (w, model) in models.iter().enumerate() {
        let mine: Vec<(u64, u64)> = items
            .iter()
            .filter(|(k, _)| k % CHURN_WRITERS == w as u64)
            .map(|(k, v)| {
                v.check(*k);
                (*k, v.gen())
            })
            .collect();
        let want: Vec<(u64, u64)> = model.iter().map(|(k, g)| (*k, *g)).collect();
        assert_eq!(mine, want, "{}: writer {w}'s keys vs its replay", D::NAME);
    }
    assert_eq!(d.len(), items.len(), "{}: len", D::NAME);
    drop(items);
    drop(d);
    assert_all_dropped(&tracker, D::NAME);
}

fn assert_all_dropped(tracker: &Tracker, name: &str) {
    let settled = common::settle(|| tracker.live() == 0, Duration::from_secs(20));
    assert!(
        settled,
        "{name}: {} values never dropped (created {}, dropped {})",
        tracker.live(),
        tracker.created(),
        tracker.dropped()
    );
    assert_eq!(tracker.double_drops(), 0, "{name}: values dropped twice");
    assert_eq!(
        tracker.created(),
        tracker.dropped(),
        "{name}: created vs dropped"
    );
}

// ---------------------------------------------------------------------------------------------
// Iteration against a single writer's known history
// ---------------------------------------------------------------------------------------------

/// Keys inserted first and never touched: every iteration must yield each exactly once.
const STABLE: std::ops::Range<u64> = 60_000..60_008;
const HISTORY_KEYS: u64 = 200;

/// The value of an entry: its insertion serial (kept by overwrites), an overwrite count, and
/// its key.
fn hist_value(serial: u64, overwrites: u64, key: u64) -> u64 {
    serial << 32 | (overwrites & 0xFFFF) << 16 | key
}

fn hist_serial(v: u64) -> u64 {
    v >> 32
}

fn hist_key(v: u64) -> u64 {
    v & 0xFFFF
}

/// The single writer: a known sequence of inserts, overwrites, LIFO pops with re-insertion,
/// removals and re-insertions, updates and retains; checked step by step against its replay.
struct HistoryWriter<'a, D> {
    d: &'a D,
    model: IndexMap<u64, u64>,
    issued: &'a AtomicU64,
}

impl<D: PlainDict<u64, u64>> HistoryWriter<'_, D> {
    fn put(&mut self, k: u64) {
        let v = match self.model.get(&k) {
            Some(&old) => hist_value(hist_serial(old), (old >> 16 & 0xFFFF) + 1, k),
            None => {
                let serial = self.issued.fetch_add(1, SeqCst) + 1;
                hist_value(serial, 0, k)
            }
        };
        assert_eq!(
            self.d.insert(k, v),
            Ok(self.model.insert(k, v)),
            "insert {k}"
        );
    }

    fn round(&mut self, r: u64) {
        for j in 0..6 {
            self.put((r * 5 + j * 7) % HISTORY_KEYS);
        }
        // Pop the last 16 entries and put them back in pop order: the tail is reversed, and
        // stays where concurrent iterators end.
        for _ in 0..2 {
            let mut popped = Vec::new();
            for _ in 0..16 {
                let e = self.d.popitem().unwrap();
                assert_eq!(e, self.model.pop(), "popitem");
                popped.push(e.unwrap().0);
            }
            for k in popped {
                self.put(k);
            }
        }
        // Move the oldest non-stable entry to the end.
        let first = *self.model.keys().find(|k| !STABLE.contains(k)).unwrap();
        assert_eq!(self.d.remove(&first), Ok(self.model.shift_remove(&first)));
        self.put(first);
        if r % 8 == 0 {
            let k = (r * 13) % HISTORY_KEYS;
            let want = self.model.get(&k).copied();
            if let Some(v) = want {
                let new = hist_value(hist_serial(v), (v >> 16 & 0xFFFF) + 1, k);
                self.d
                    .upsert(k, |old| {
                        assert_eq!(old, Some(&v));
                        new
                    })
                    .unwrap();
                self.model.insert(k, new);
            }
        }
        if r % 32 == 31 {
            let m = r % 3;
            self.d
                .retain(|k, _| STABLE.contains(k) || k % 3 != m)
                .unwrap();
            self.model.retain(|k, _| STABLE.contains(k) || k % 3 != m);
        }
    }
}

/// One observed iteration, checked against the history: keys match their values, no key twice,
/// every stable key present, insertion serials strictly monotonic in iteration order, and no
/// serial from the future.
fn check_iteration(
    name: &str,
    how: &str,
    entries: &[(u64, u64)],
    forward: bool,
    issued_after: u64,
) {
    let mut keys = HashSet::new();
    let mut last: Option<u64> = None;
    for &(k, v) in entries {
        assert_eq!(hist_key(v), k, "{name} {how}: value {v:#x} under key {k}");
        assert!(
            keys.insert(k),
            "{name} {how}: key {k} yielded twice in one iteration: {:?}",
            entries
                .iter()
                .map(|e| (e.0, hist_serial(e.1)))
                .collect::<Vec<_>>()
        );
        let s = hist_serial(v);
        assert!(s <= issued_after, "{name} {how}: serial {s} not issued yet");
        if let Some(prev) = last {
            let ordered = if forward { s > prev } else { s < prev };
            assert!(
                ordered,
                "{name} {how}: insertion serial {s} after {prev} (key {k}): no sequential state \
                 has this order"
            );
        }
        last = Some(s);
    }
    for k in STABLE {
        assert!(keys.contains(&k), "{name} {how}: stable key {k} missing");
    }
}

/// A single writer runs a known history while readers iterate (`iter()`, `iter().rev()`,
/// `keys()`, borrowed iteration); every iteration must be consistent with a sequential history,
/// and the final state must equal the writer's replay.
fn iterations_are_consistent_with_a_sequential_history<D: PlainDict<u64, u64>>()
where
    D::Hasher: Default,
{
    let d: Arc<D> = new_dict();
    let issued = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let end = Instant::now() + duration();
    let mut writer = HistoryWriter {
        d: &*d,
        model: IndexMap::new(),
        issued: &issued,
    };
    for k in STABLE {
        writer.put(k);
    }
    for k in 0..HISTORY_KEYS / 2 {
        writer.put(k);
    }
    let mut readers = Vec::new();
    for r in 0..2u64 {
        let (d, issued, done) = (Arc::clone(&d), Arc::clone(&issued), Arc::clone(&done));
        readers.push(std::thread::spawn(move || {
            let name = D::NAME;
            let mut n = 0u64;
            loop {
                // Read the flag first: the pass after the writers finished still runs.
                let stop = done.load(SeqCst);
                n += 1;
                match (n + r) % 4 {
                    0 => {
                        let e: Vec<_> = d.iter().collect();
                        check_iteration(name, "iter()", &e, true, issued.load(SeqCst));
                    }
                    1 => {
                        let e: Vec<_> = d.iter().rev().collect();
                        check_iteration(name, "iter().rev()", &e, false, issued.load(SeqCst));
                    }
                    2 => {
                        let keys = d.keys();
                        let distinct: HashSet<_> = keys.iter().collect();
                        assert_eq!(distinct.len(), keys.len(), "{name}: keys() repeats a key");
                    }
                    _ => {
                        let mut e = Vec::new();
                        d.borrowed_reads(&[], &mut |_, _| {}, &mut |k, v| e.push((*k, *v)));
                        check_iteration(name, "borrowed iter", &e, true, issued.load(SeqCst));
                    }
                }
                if stop {
                    break;
                }
            }
            n
        }));
    }
    let mut r = 0;
    while r % 16 != 0 || Instant::now() < end {
        writer.round(r);
        r += 1;
    }
    done.store(true, SeqCst);
    let iterations: u64 = join_all(readers).iter().sum();
    assert!(iterations > 0);
    let want: Vec<(u64, u64)> = writer.model.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(
        d.items(),
        want,
        "{}: final state vs the writer's replay",
        D::NAME
    );
}

/// The same history check, made deterministic: an iterator that has passed an entry, then the
/// tail is popped and re-inserted (LIFO order), must not yield an already-yielded key again.
fn iterator_never_repeats_a_key_after_tail_reinsert<D: PlainDict<u64, u64>>()
where
    D::Hasher: Default,
{
    // Room to spare, so that no insert below rebuilds the table.
    let d: D = D::make_with_capacity(16, Default::default());
    for k in 0..4 {
        d.insert(k, k).unwrap();
    }
    let mut it = d.iter();
    let mut got = vec![it.next().unwrap().0, it.next().unwrap().0]; // 0, 1
                                                                    // Pop 3, 2, 1 and put 2, then 1, back: the dict is now [0, 2, 1].
    let popped: Vec<u64> = (0..3).map(|_| d.popitem().unwrap().unwrap().0).collect();
    assert_eq!(popped, vec![3, 2, 1]);
    d.insert(2, 2).unwrap();
    d.insert(1, 1).unwrap();
    assert_eq!(d.keys(), vec![0, 2, 1]);
    got.extend(it.map(|e| e.0));
    let distinct: HashSet<_> = got.iter().collect();
    assert_eq!(
        distinct.len(),
        got.len(),
        "{}: one iteration yielded {got:?} (key repeated)",
        D::NAME
    );
}

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

const COUNTERS: u64 = 8;

/// Threads increment counters through `update` (plain) and `upsert_in` (Mapping) and count
/// their own increments; readers see each counter never decrease. The final counters equal the
/// sums exactly.
fn update_counters_sum_exactly<D: PlainDict<u64, u64>>()
where
    D::Hasher: Default,
{
    let d: Arc<D> = new_dict();
    let end = Instant::now() + duration();
    let done = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for t in 0..3u64 {
        let d = Arc::clone(&d);
        workers.push(std::thread::spawn(move || {
            let mut rng = Rng::new(300 + t);
            let mut mine = vec![0u64; COUNTERS as usize];
            // The previous values `upsert_in` returned, per key.
            let mut olds: Vec<Vec<u64>> = vec![Vec::new(); COUNTERS as usize];
            let mut n = 0u64;
            while n % 64 != 0 || Instant::now() < end {
                n += 1;
                let k = rng.below(COUNTERS);
                if n % 2 == 0 {
                    d.upsert(k, |v| v.map_or(1, |v| v + 1)).unwrap();
                } else {
                    let m = d.plain();
                    let old = d.upsert_in(&m, k, |v| v.map_or(1, |v| v + 1)).unwrap();
                    olds[k as usize].push(old.unwrap_or(0));
                }
                mine[k as usize] += 1;
            }
            (mine, olds)
        }));
    }
    let reader = {
        let (d, done) = (Arc::clone(&d), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut last = vec![0u64; COUNTERS as usize];
            loop {
                // Read the flag first: the pass after the writers finished still runs.
                let stop = done.load(SeqCst);
                for k in 0..COUNTERS {
                    let v = d.get(&k).unwrap_or(0);
                    assert!(v >= last[k as usize], "{}: counter {k} went back", D::NAME);
                    last[k as usize] = v;
                }
                if stop {
                    break;
                }
            }
        })
    };
    let results = join_all(workers);
    done.store(true, SeqCst);
    join_all(vec![reader]);
    for k in 0..COUNTERS {
        let want: u64 = results.iter().map(|(c, _)| c[k as usize]).sum();
        assert_eq!(d.get(&k).unwrap_or(0), want, "{}: counter {k}", D::NAME);
        // Every increment saw a different previous value (no two read-modify-writes
        // overlapped), all below the final count.
        let mut olds: Vec<u64> = results
            .iter()
            .flat_map(|(_, o)| o[k as usize].iter().copied())
            .collect();
        let n = olds.len();
        olds.sort_unstable();
        olds.dedup();
        assert_eq!(
            olds.len(),
            n,
            "{}: two upsert_in calls on {k} saw the same value",
            D::NAME
        );
        assert!(
            olds.iter().all(|&o| o < want),
            "{}: upsert_in saw the future",
            D::NAME
        );
    }
}

/// `LockedDict::with_lock` makes a two-key update atomic: readers never see `a != b`.
#[test]
fn locked_with_lock_pairs_stay_equal() {
    common::watchdog("with_lock pairs", watchdog_secs(), || {
        let d: Arc<LockedDict<u64, u64>> = Arc::new(LockedDict::new());
        d.insert(0, 0).unwrap();
        d.insert(1, 0).unwrap();
        let end = Instant::now() + duration();
        let done = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let d = Arc::clone(&d);
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while n % 64 != 0 || Instant::now() < end {
                        d.with_lock(|view| {
                            let a = *view.get(&0).unwrap();
                            view.insert(0, a + 1).unwrap();
                            let b = *view.get(&1).unwrap();
                            view.insert(1, b + 1).unwrap();
                        })
                        .unwrap();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let reader = {
            let (d, done) = (Arc::clone(&d), Arc::clone(&done));
            std::thread::spawn(move || {
                loop {
                    // Read the flag first: the pass after the writers finished still runs.
                    let stop = done.load(SeqCst);
                    let s = d.snapshot();
                    assert_eq!(s[0].1, s[1].1, "snapshot saw half of a with_lock update");
                    let (a, b) = d
                        .with_lock(|v| (*v.get(&0).unwrap(), *v.get(&1).unwrap()))
                        .unwrap();
                    assert_eq!(a, b);
                    if stop {
                        break;
                    }
                }
            })
        };
        let total: u64 = join_all(writers).iter().sum();
        done.store(true, SeqCst);
        join_all(vec![reader]);
        assert_eq!(d.items(), vec![(0, total), (1, total)]);
    });
}

// ---------------------------------------------------------------------------------------------
// Script eq racing with writers
// ---------------------------------------------------------------------------------------------

/// Lookups whose (impure) eq runs with the lock released race with writers on colliding keys:
/// readers see only well-formed values (or `MutatedDuringLookup`), writers' return values match
/// their own replay (an operation that gave up had no effect), and the final state is each
/// writer's replay.
fn script_eq_lookups_race_with_writers<D: TestDict<Obj, u64>>()
where
    D::Hasher: Default,
{
    const KEYS: u64 = 48;
    let vm = Arc::new(Vm::new(HashFn::Mod(6)));
    let d: Arc<D> = new_dict();
    let end = Instant::now() + duration();
    let done = Arc::new(AtomicBool::new(false));
    let gave_up = Arc::new(AtomicUsize::new(0));
    // The key in the top 16 bits, a generation (at most the writer's operation count, capped
    // below 2^40) in the low 48: no machine is fast enough to carry into the key.
    const GEN_BITS: u32 = 48;
    const MAX_OPS: u64 = 1 << 40;
    let encode = |k: u64, gen: u64| {
        assert!(gen < 1 << GEN_BITS);
        (k << GEN_BITS) | gen
    };
    let gen_of = |v: u64| v & ((1 << GEN_BITS) - 1);
    let mut writers = Vec::new();
    for w in 0..2u64 {
        let (d, vm, gave_up) = (Arc::clone(&d), Arc::clone(&vm), Arc::clone(&gave_up));
        writers.push(std::thread::spawn(move || {
            let mut rng = Rng::new(400 + w);
            let mut model: IndexMap<u64, u64> = IndexMap::new();
            let mut n = 0u64;
            while n < MAX_OPS && (n % 64 != 0 || Instant::now() < end) {
                n += 1;
                let k = rng.below(KEYS / 2) * 2 + w;
                let probe = Obj::new(k);
                let ctx = format!("{} writer {w} op {n} key {k}", D::NAME);
                let r = match rng.below(4) {
                    0 | 1 => d
                        .insert_in(&*vm, probe, encode(k, n))
                        .map(|old| assert_eq!(old, model.insert(k, encode(k, n)), "{ctx}")),
                    2 => d
                        .remove_in(&*vm, &probe)
                        .map(|old| assert_eq!(old, model.shift_remove(&k), "{ctx}")),
                    _ => d
                        .upsert_in(&*vm, probe, |v| encode(k, v.map_or(0, |v| gen_of(*v) + 1)))
                        .map(|old| {
                            assert_eq!(old, model.get(&k).copied(), "{ctx}");
                            model.insert(k, encode(k, old.map_or(0, |v| gen_of(v) + 1)));
                        }),
                };
                match r {
                    Ok(()) => {}
                    Err(Error::MutatedDuringLookup) => {
                        gave_up.fetch_add(1, SeqCst);
                    }
                    Err(e) => panic!("{ctx}: {e:?}"),
                }
            }
            model
        }));
    }
    let reader = {
        let (d, vm, done, gave_up) = (
            Arc::clone(&d),
            Arc::clone(&vm),
            Arc::clone(&done),
            Arc::clone(&gave_up),
        );
        std::thread::spawn(move || {
            let mut found = 0u64;
            loop {
                // Read the flag first: the pass after the writers finished still runs.
                let stop = done.load(SeqCst);
                for k in 0..KEYS {
                    match d.get_in(&*vm, &Obj::new(k)) {
                        Ok(Some(v)) => {
                            assert_eq!(v >> GEN_BITS, k, "{}: value {v} under key {k}", D::NAME);
                            found += 1;
                        }
                        Ok(None) => {}
                        Err(Error::MutatedDuringLookup) => {
                            gave_up.fetch_add(1, SeqCst);
                        }
                        Err(e) => panic!("{}: {e:?}", D::NAME),
                    }
                }
                if stop {
                    break;
                }
            }
            found
        })
    };
    let models = join_all(writers);
    done.store(true, SeqCst);
    assert!(join_all(vec![reader])[0] > 0, "the reader found nothing");
    let items: Vec<(u64, u64)> = d.items().iter().map(|(k, v)| (k.val(), *v)).collect();
    for (w, model) in models.iter().enumerate() {
        let mine: Vec<(u64, u64)> = items
            .iter()
            .copied()
            .filter(|(k, _)| k % 2 == w as u64)
            .collect();
        let want: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(mine, want, "{}: writer {w}'s keys vs its replay", D::NAME);
    }
}

// ---------------------------------------------------------------------------------------------
// Reclamation
// ---------------------------------------------------------------------------------------------

/// Writers churn through growth and shrink (many table rebuilds), overwrites and clears, while
/// readers hold `pin()` sessions (borrowed reads) and iterate. After each phase the number of
/// live values returns to the dict's length once epochs advance (retired memory is reclaimed
/// while the dict lives, so garbage stays bounded); after the dict is dropped every value has
/// been dropped exactly once.
fn reclamation_returns_to_live_entries<D: PlainDict<u64, Counted>>()
where
    D::Hasher: Default,
{
    const PHASES: u32 = 3;
    let tracker = Tracker::new();
    let d: Arc<D> = new_dict();
    for phase in 0..PHASES {
        let end = Instant::now() + duration() / PHASES;
        let done = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                let (d, tracker) = (Arc::clone(&d), Arc::clone(&tracker));
                std::thread::spawn(move || {
                    let mut rng = Rng::new(500 + w + 10 * u64::from(phase));
                    let mut round = 0u64;
                    while Instant::now() < end {
                        round += 1;
                        let base = w << 32 | round << 16;
                        let n = 1 + rng.below(1500);
                        for i in 0..n {
                            d.insert(base | i, Counted::new(&tracker, base | i, 0))
                                .unwrap();
                        }
                        for i in (0..n).step_by(3) {
                            d.insert(base | i, Counted::new(&tracker, base | i, 1))
                                .unwrap();
                        }
                        for i in 0..n {
                            if i % 5 != 0 {
                                // Absent if the other writer cleared the dict meanwhile.
                                if let Some(v) = d.remove(&(base | i)).unwrap() {
                                    v.check(base | i);
                                }
                            }
                        }
                        if rng.below(8) == 0 {
                            d.retain(|k, _| k >> 32 != w).unwrap();
                        }
                        if rng.below(16) == 0 {
                            d.clear().unwrap();
                        }
                    }
                })
            })
            .collect();
        let readers: Vec<_> = (0..2u64)
            .map(|r| {
                let (d, done) = (Arc::clone(&d), Arc::clone(&done));
                std::thread::spawn(move || {
                    let mut rng = Rng::new(600 + r);
                    loop {
                        // Read the flag first: the pass after the writers finished still runs.
                        let stop = done.load(SeqCst);
                        let probe: Vec<u64> = (0..32)
                            .map(|_| {
                                rng.below(2) << 32 | (1 + rng.below(64)) << 16 | rng.below(1500)
                            })
                            .collect();
                        d.borrowed_reads(
                            &probe,
                            &mut |k, v| {
                                if let Some(v) = v {
                                    v.check(*k)
                                }
                            },
                            &mut |k, v| v.check(*k),
                        );
                        for (k, v) in d.iter().take(256) {
                            v.check(k);
                        }
                        if stop {
                            break;
                        }
                    }
                })
            })
            .collect();
        join_all(writers);
        done.store(true, SeqCst);
        join_all(readers);
        let len = d.len() as isize;
        let settled = common::settle(|| tracker.live() == len, Duration::from_secs(20));
        assert!(
            settled,
            "{} phase {phase}: {} live values for {len} entries (created {}, dropped {})",
            D::NAME,
            tracker.live(),
            tracker.created(),
            tracker.dropped()
        );
        assert_eq!(
            tracker.double_drops(),
            0,
            "{}: values dropped twice",
            D::NAME
        );
        for (k, v) in d.items() {
            v.check(k);
        }
    }
    drop(d);
    assert_all_dropped(&tracker, "after drop");
}

// ---------------------------------------------------------------------------------------------
// Test instantiation for both variants
// ---------------------------------------------------------------------------------------------

macro_rules! tests_for {
    ($module:ident, $Dict:ident; $($(#[$attr:meta])* $name:ident: $K:ty => $V:ty;)*) => {
        mod $module {
            use super::*;
            $(
                $(#[$attr])*
                #[test]
                fn $name() {
                    common::watchdog(
                        concat!(stringify!($module), "::", stringify!($name)),
                        watchdog_secs(),
                        super::$name::<gilfree::$Dict<$K, $V>>,
                    );
                }
            )*
        }
    };
}

tests_for!(
    locked_dict, LockedDict;
    disjoint_writers_lose_nothing: u64 => u64;
    churn_readers_see_well_formed_values: u64 => Counted;
    iterations_are_consistent_with_a_sequential_history: u64 => u64;
    iterator_never_repeats_a_key_after_tail_reinsert: u64 => u64;
    update_counters_sum_exactly: u64 => u64;
    script_eq_lookups_race_with_writers: Obj => u64;
    reclamation_returns_to_live_entries: u64 => Counted;
);

tests_for!(
    gilfree_dict, GilFreeDict;
    disjoint_writers_lose_nothing: u64 => u64;
    churn_readers_see_well_formed_values: u64 => Counted;
    iterations_are_consistent_with_a_sequential_history: u64 => u64;
    iterator_never_repeats_a_key_after_tail_reinsert: u64 => u64;
    update_counters_sum_exactly: u64 => u64;
    script_eq_lookups_race_with_writers: Obj => u64;
    reclamation_returns_to_live_entries: u64 => Counted;
);

/// An identity hash (`hash(k) == k`, as Python's ints): the writers' consecutive keys pile up
/// in one chain until a writer's insert has the table rebuilt spread, while the reader looks
/// keys up and the other writers insert (every later table keeps the mode).
mod identity_hash {
    use super::*;

    type Identity = common::ModBuild<{ u64::MAX }>;

    #[test]
    fn gilfree_disjoint_writers_lose_nothing() {
        common::watchdog(
            "identity_hash::gilfree_disjoint_writers_lose_nothing",
            watchdog_secs(),
            super::disjoint_writers_lose_nothing::<gilfree::GilFreeDict<u64, u64, Identity>>,
        );
    }

    #[test]
    fn locked_disjoint_writers_lose_nothing() {
        common::watchdog(
            "identity_hash::locked_disjoint_writers_lose_nothing",
            watchdog_secs(),
            super::disjoint_writers_lose_nothing::<LockedDict<u64, u64, Identity>>,
        );
    }

    #[test]
    fn gilfree_iterations_are_consistent_with_a_sequential_history() {
        common::watchdog(
            "identity_hash::gilfree_iterations_are_consistent_with_a_sequential_history",
            watchdog_secs(),
            super::iterations_are_consistent_with_a_sequential_history::<
                gilfree::GilFreeDict<u64, u64, Identity>,
            >,
        );
    }
}
