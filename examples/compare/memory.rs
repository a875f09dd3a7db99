//! Memory suite: bytes per entry (dicts) and per item (lists) at 10^6, counted by the global
//! allocator (bytes requested and not yet freed) while each container is built alone.
//!
//! Each container gets 10^6 `u64 -> u64` entries (or `u64` items) one insert/append at a time,
//! as a program would build it, from empty; retired GIL-free tables are collected before the
//! count is read.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

use gilfree::{GilFreeDict, GilFreeList, LockedDict, LockedList};
use indexmap::IndexMap;
use parking_lot::Mutex;

use crate::dicts::{hasher, S};
use crate::harness::key;

/// The global allocator of the comparison: the system allocator, counting live bytes while the
/// memory suite runs (and doing nothing more otherwise, so the other suites are unaffected).
pub struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; the bookkeeping touches no memory that
// the allocation owns.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        // SAFETY: forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Entries (items) per container.
pub const N: u64 = 1_000_000;

/// Bytes allocated by `build` and still held by what it returns (counted while it is alive).
fn measure<T>(build: impl FnOnce() -> T) -> f64 {
    // Frees garbage of earlier suites first, so that it is not counted as freed here.
    for _ in 0..3 {
        gilfree::collect_garbage();
    }
    COUNTING.store(true, Ordering::SeqCst);
    let before = LIVE.load(Ordering::SeqCst);
    let built = build();
    for _ in 0..3 {
        gilfree::collect_garbage();
    }
    let held = LIVE.load(Ordering::SeqCst) - before;
    drop(built);
    for _ in 0..3 {
        gilfree::collect_garbage();
    }
    COUNTING.store(false, Ordering::SeqCst);
    held as f64
}

fn dict_row(name: &str, bytes: f64, std: f64, out: &mut String) {
    let per = bytes / N as f64;
    let _ = writeln!(
        out,
        "{name:<16} | {:>10.1} | {per:>8.1} | {:>6.2}",
        bytes / 1048576.0,
        std / bytes
    );
}

/// The memory tables (dicts, then lists), as text.
pub fn run() -> String {
    let mut out = String::from(
        "## memory / dicts\n\
         10^6 u64 -> u64 entries inserted one by one from empty; bytes held (allocator count)\n\
         ratio = std HashMap's bytes / contender's bytes (higher is smaller)\n\
         contender        |        MiB |  B/entry | x std\n\
         ---------------------------------------------------\n",
    );
    eprintln!("memory / dicts (10^6 entries)");
    let std = measure(|| {
        let mut m: HashMap<u64, u64, S> = HashMap::with_hasher(hasher());
        for i in 0..N {
            m.insert(key(0, i), i);
        }
        m
    });
    dict_row("std HashMap", std, std, &mut out);
    type Row = (&'static str, Box<dyn Fn() -> f64>);
    let rows: [Row; 6] = [
        (
            "GilFreeDict",
            Box::new(|| {
                measure(|| {
                    let d: GilFreeDict<u64, u64, S> = GilFreeDict::with_hasher(hasher());
                    for i in 0..N {
                        d.insert(key(0, i), i).unwrap();
                    }
                    d
                })
            }),
        ),
        (
            "LockedDict",
            Box::new(|| {
                measure(|| {
                    let d: LockedDict<u64, u64, S> = LockedDict::with_hasher(hasher());
                    for i in 0..N {
                        d.insert(key(0, i), i).unwrap();
                    }
                    d
                })
            }),
        ),
        (
            "IndexMap",
            Box::new(|| {
                measure(|| {
                    let mut m: IndexMap<u64, u64, S> = IndexMap::with_hasher(hasher());
                    for i in 0..N {
                        m.insert(key(0, i), i);
                    }
                    m
                })
            }),
        ),
        (
            "dashmap",
            Box::new(|| {
                measure(|| {
                    let m = dashmap::DashMap::with_hasher(hasher());
                    for i in 0..N {
                        m.insert(key(0, i), i);
                    }
                    m
                })
            }),
        ),
        (
            "papaya",
            Box::new(|| {
                measure(|| {
                    let m = papaya::HashMap::with_hasher(hasher());
                    for i in 0..N {
                        m.pin().insert(key(0, i), i);
                    }
                    m
                })
            }),
        ),
        (
            "scc::HashMap",
            Box::new(|| {
                measure(|| {
                    let m = scc::HashMap::with_hasher(hasher());
                    for i in 0..N {
                        let _ = m.insert_sync(key(0, i), i);
                    }
                    m
                })
            }),
        ),
    ];
    for (name, f) in rows {
        dict_row(name, f(), std, &mut out);
    }
    out.push_str(
        "\n## memory / lists\n\
         10^6 u64 items appended one by one from empty; bytes held (allocator count)\n\
         ratio = Vec's bytes / contender's bytes (higher is smaller)\n\
         contender        |        MiB |   B/item | x Vec\n\
         ---------------------------------------------------\n",
    );
    eprintln!("memory / lists (10^6 items)");
    let vec = measure(|| {
        let mut v = Vec::new();
        for i in 0..N {
            v.push(i);
        }
        v
    });
    dict_row("std Vec", vec, vec, &mut out);
    dict_row(
        "GilFreeList",
        measure(|| {
            let l = GilFreeList::new();
            for i in 0..N {
                l.append(i).unwrap();
            }
            l
        }),
        vec,
        &mut out,
    );
    dict_row(
        "LockedList",
        measure(|| {
            let l = LockedList::new();
            for i in 0..N {
                l.append(i).unwrap();
            }
            l
        }),
        vec,
        &mut out,
    );
    dict_row(
        "Mutex<Vec>",
        measure(|| {
            let l = Mutex::new(Vec::new());
            for i in 0..N {
                l.lock().push(i);
            }
            l
        }),
        vec,
        &mut out,
    );
    out.push('\n');
    out
}
