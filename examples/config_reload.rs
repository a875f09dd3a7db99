//! A configuration that four interpreter threads read while a fifth reloads it.
//!
//! The configuration is a frozen tree (a dict of settings with a nested dict of limits) held
//! in a `FrozenCell`. Each reader loads the current version once per request and reads a
//! handful of settings through the frozen views: no lock, no pin, no refcount traffic per
//! setting. The reloader builds each new version from a thawed copy of the current one and
//! publishes it atomically; readers pick it up at their next request, and each old version
//! is freed when its last reader is done with it.
//!
//! Run: `cargo run --release --example config_reload`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gilfree::{Freeze, FrozenCell, GilFreeDict, Shape};

/// The interpreter's value type (a tiny one).
#[derive(Clone)]
enum Value {
    Int(i64),
    #[allow(dead_code)] // read by the interpreter; this example only reads the ints
    Str(Arc<str>),
    Dict(Arc<GilFreeDict<Arc<str>, Value>>),
}

impl gilfree::Storable for Value {
    type Storage = gilfree::storage::Boxed;
}

impl Freeze for Value {
    fn shape(&self) -> Shape<'_, Value> {
        match self {
            Value::Int(_) | Value::Str(_) => Shape::Leaf,
            Value::Dict(d) => Shape::Container(&**d),
        }
    }
}

fn key(s: &str) -> Arc<str> {
    Arc::from(s)
}

fn initial() -> Value {
    let limits = GilFreeDict::new();
    limits
        .insert(key("max_connections"), Value::Int(100))
        .unwrap();
    limits.insert(key("timeout_ms"), Value::Int(5_000)).unwrap();
    let config = GilFreeDict::new();
    config.insert(key("version"), Value::Int(0)).unwrap();
    config
        .insert(key("log_level"), Value::Str(key("info")))
        .unwrap();
    config
        .insert(key("limits"), Value::Dict(Arc::new(limits)))
        .unwrap();
    Value::Dict(Arc::new(config))
}

/// One request's worth of reads: the version, and a sum over a few settings.
fn handle_request(cell: &FrozenCell<Value>) -> (i64, i64) {
    let current = cell.load();
    let Value::Dict(config) = &*current else {
        unreachable!()
    };
    let config = config.frozen().expect("published versions are frozen");
    let Some(Value::Int(version)) = config.get("version") else {
        unreachable!()
    };
    let Some(Value::Dict(limits)) = config.get("limits") else {
        unreachable!()
    };
    let limits = limits.frozen().expect("frozen with its parent");
    let mut sum = 0;
    for name in ["max_connections", "timeout_ms"] {
        if let Some(Value::Int(v)) = limits.get(name) {
            sum += v;
        }
    }
    (*version, sum)
}

fn main() {
    let cell = Arc::new(FrozenCell::new(initial()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (cell, stop) = (Arc::clone(&cell), Arc::clone(&stop));
            std::thread::spawn(move || {
                let (mut requests, mut versions, mut last) = (0u64, 0u64, -1);
                while !stop.load(Ordering::Relaxed) {
                    let (version, sum) = handle_request(&cell);
                    // Every version's settings are consistent: timeout = 5000 + 10 * version.
                    assert_eq!(sum, 100 + 5_000 + 10 * version + version);
                    assert!(version >= last, "a reader never goes back");
                    if version != last {
                        versions += 1;
                        last = version;
                    }
                    requests += 1;
                }
                (requests, versions)
            })
        })
        .collect();

    // The reloader: 20 reloads, 10 ms apart.
    let t0 = Instant::now();
    let mut reload_times = Vec::new();
    for v in 1..=20i64 {
        std::thread::sleep(Duration::from_millis(10));
        let t = Instant::now();
        cell.publish_with(|current| {
            let Value::Dict(config) = current else {
                unreachable!()
            };
            // `copy()` of a frozen dict is a mutable (thawed) shallow copy.
            let next = config.copy();
            let Some(Value::Dict(limits)) = next.get("limits") else {
                unreachable!()
            };
            let limits = limits.copy();
            limits
                .insert(key("max_connections"), Value::Int(100 + v))
                .unwrap();
            limits
                .insert(key("timeout_ms"), Value::Int(5_000 + 10 * v))
                .unwrap();
            next.insert(key("limits"), Value::Dict(Arc::new(limits)))
                .unwrap();
            next.insert(key("version"), Value::Int(v)).unwrap();
            Value::Dict(Arc::new(next))
        })
        .unwrap();
        reload_times.push(t.elapsed());
    }
    let elapsed = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let stats: Vec<(u64, u64)> = readers.into_iter().map(|r| r.join().unwrap()).collect();

    println!(
        "config reload: 4 readers, 1 reloader, {} reloads in {elapsed:.2?}",
        cell.generation()
    );
    for (i, (requests, versions)) in stats.iter().enumerate() {
        println!(
            "  reader {i}: {requests} requests ({:.1} M/s), saw {versions} versions",
            *requests as f64 / elapsed.as_secs_f64() / 1e6
        );
    }
    reload_times.sort();
    println!(
        "  reload (copy + change + freeze + publish): median {:?}, max {:?}",
        reload_times[reload_times.len() / 2],
        reload_times[reload_times.len() - 1]
    );
    let (version, _) = handle_request(&cell);
    assert_eq!(version, 20);
    println!("  current version: {version}");
}
