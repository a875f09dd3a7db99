//! Timing harness: run a body on N threads for a fixed wall-clock time, count operations.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Operations between two reads of the stop flag (one pass over a 100-entry operation mix).
pub const BATCH: u64 = 100;

/// What one cell measured: operations done by all threads together and the wall time.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    pub ops: u64,
    pub secs: f64,
    /// For a measurement on 2 or more threads: the cross-thread round trip
    /// ([`round_trip_ns`]) probed just before it.
    pub round_trip_ns: Option<f64>,
}

impl Measured {
    /// Aggregate throughput, millions of operations per second.
    pub fn mops(&self) -> f64 {
        self.ops as f64 / self.secs / 1e6
    }

    /// Wall time per operation as one of `threads` threads sees it: `secs * threads / ops`.
    pub fn ns_per_op(&self, threads: usize) -> f64 {
        self.secs * 1e9 * threads as f64 / self.ops.max(1) as f64
    }
}

/// Round trips of one timed attempt of the cross-thread probe.
const PROBE_TRIPS: u64 = 2_000;
/// Timed attempts; the probe reports the fastest.
const PROBE_ATTEMPTS: usize = 3;
/// How long the two threads hand the line back and forth before the clock starts: a core
/// the host had parked while the guest let it idle takes a while to run again.
const PROBE_WARM_UP: Duration = Duration::from_millis(2);
/// The longest one attempt runs (with fewer cores than threads, each trip waits for a
/// time slice).
const PROBE_LIMIT: Duration = Duration::from_millis(10);

/// The time for a cache line to go from one thread to another and back, in ns: two threads
/// hand a counter back and forth, [`PROBE_TRIPS`] times after a warm-up, and the fastest of
/// [`PROBE_ATTEMPTS`] such runs counts (a few milliseconds in all).
///
/// On a virtual machine this is not a constant: the host may move the guest's CPUs between
/// cores that share a cache and cores that do not, and every workload that shares written
/// lines between threads slows down with it (on the 2-vCPU EPYC guest the round trip moves
/// between about 60 and 330 ns every few seconds, and 2-thread write-heavy rows of every
/// contender drop by 2-4x when it is high). Each multi-thread cell records the probe, so a
/// ratio between cells measured in different states can be told apart.
pub fn round_trip_ns() -> f64 {
    const STOP: u64 = u64::MAX;
    let turn = AtomicU64::new(0);
    std::thread::scope(|s| {
        let turn = &turn;
        s.spawn(move || {
            // Answers each odd number with the next one, until STOP.
            turn.store(1, Ordering::Release);
            loop {
                match turn.load(Ordering::Acquire) {
                    STOP => return,
                    t if t % 2 == 0 => turn.store(t + 1, Ordering::Release),
                    _ => std::hint::spin_loop(),
                }
            }
        });
        let mut next = 1;
        // One round trip: hands the line over and waits for it to come back.
        let mut trip = || {
            next += 1;
            turn.store(next, Ordering::Release);
            next += 1;
            while turn.load(Ordering::Acquire) != next {
                std::hint::spin_loop();
            }
        };
        while turn.load(Ordering::Acquire) != 1 {
            std::hint::spin_loop();
        }
        let warm = Instant::now();
        while warm.elapsed() < PROBE_WARM_UP {
            trip();
        }
        let mut fastest = f64::INFINITY;
        for _ in 0..PROBE_ATTEMPTS {
            let start = Instant::now();
            let mut trips = 0;
            while trips < PROBE_TRIPS && (trips % 64 != 0 || start.elapsed() < PROBE_LIMIT) {
                trip();
                trips += 1;
            }
            fastest = fastest.min(start.elapsed().as_secs_f64() * 1e9 / trips as f64);
        }
        turn.store(STOP, Ordering::Release);
        fastest
    })
}

/// Runs `body(thread_index, stop)` on `threads` threads, all released together by a barrier,
/// stops them after `duration` and returns the operations they report. Each body checks
/// `stop` every [`BATCH`] operations and returns how many it did; the clock runs from the
/// release to the moment the last thread has stopped.
pub fn run<F>(threads: usize, duration: Duration, body: F) -> Measured
where
    F: Fn(usize, &AtomicBool) -> u64 + Sync,
{
    let before = (threads > 1).then(round_trip_ns);
    Measured {
        round_trip_ns: before,
        ..measure(threads, duration, body)
    }
}

fn measure<F>(threads: usize, duration: Duration, body: F) -> Measured
where
    F: Fn(usize, &AtomicBool) -> u64 + Sync,
{
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (stop, barrier, body) = (&stop, &barrier, &body);
                s.spawn(move || {
                    barrier.wait();
                    body(t, stop)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        let ops = handles.into_iter().map(|h| h.join().unwrap()).sum();
        Measured {
            ops,
            secs: start.elapsed().as_secs_f64(),
            round_trip_ns: None,
        }
    })
}

/// Calls `op` in batches of [`BATCH`] until `stop` is set; returns the number of calls.
#[inline]
pub fn until_stopped(stop: &AtomicBool, mut op: impl FnMut()) -> u64 {
    let mut done = 0;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..BATCH {
            op();
        }
        done += BATCH;
    }
    done
}

/// xorshift64*: a fast per-thread generator (never seeded with 0).
#[derive(Clone, Copy)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(mix64(seed) | 1)
    }

    #[inline]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (multiply-shift; `n > 0`).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next() as u128 * n as u128) >> 64) as usize
    }
}

/// SplitMix64's finalizer: a bijection on `u64`, so distinct inputs give distinct keys.
#[inline]
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `i`-th key of thread `t`'s private key sequence (distinct across threads and indices,
/// like bustle's per-thread key arrays, but computed instead of stored).
#[inline]
pub fn key(t: usize, i: u64) -> u64 {
    mix64(((t as u64) << 40) | i)
}
