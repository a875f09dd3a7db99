//! Timing harness: run a body on N threads for a fixed wall-clock time, count operations.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Operations between two reads of the stop flag (one pass over a 100-entry operation mix).
pub const BATCH: u64 = 100;

/// What one cell measured: operations done by all threads together and the wall time.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    pub ops: u64,
    pub secs: f64,
}

/// Runs `body(thread_index, stop)` on `threads` threads, all released together by a barrier,
/// stops them after `duration` and returns the operations they report. Each body checks
/// `stop` every [`BATCH`] operations and returns how many it did; the clock runs from the
/// release to the moment the last thread has stopped.
pub fn run<F>(threads: usize, duration: Duration, body: F) -> Measured
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
        }
    })
}

/// The best (highest throughput) of `n` measurements; `f` builds what it needs each time.
pub fn best(n: usize, mut f: impl FnMut() -> Measured) -> Measured {
    let mut best = f();
    for _ in 1..n {
        let m = f();
        if m.ops as f64 / m.secs > best.ops as f64 / best.secs {
            best = m;
        }
    }
    best
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
