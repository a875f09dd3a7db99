//! A tour of gilfree from an interpreter's point of view.
//!
//! A toy VM shares its module globals between threads in a `GilFreeDict`. Its values hash and
//! compare through the VM (`KeyModel`), including a user class whose `__eq__` runs "script
//! code" that mutates the very dict being searched. The demo then measures global-variable
//! reads on both dict variants at 1 and 2 threads.
//!
//! Run: `cargo run --release --example demo`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gilfree::{
    DefaultHashBuilder, Dict, DictStore, EqModel, Error, GilFreeDict, KeyModel, LockedDict,
};

/// An interpreter value: a refcounted handle.
#[derive(Clone, Debug)]
enum Value {
    Int(i64),
    Str(Arc<str>),
    /// An instance of a user class with a script-level `__eq__`.
    Obj(Arc<Obj>),
}

impl gilfree::Storable for Value {
    type Storage = gilfree::storage::Boxed;
}

#[derive(Debug)]
struct Obj {
    id: i64,
}

/// A script exception.
#[derive(Debug)]
struct ScriptError(String);

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The interpreter context passed to every keyed dict operation.
struct Vm {
    /// Called from `Obj.__eq__`: stands for arbitrary script code.
    on_eq: Box<dyn Fn() + Sync>,
    eq_calls: AtomicUsize,
}

impl EqModel<Value> for Vm {
    type Error = ScriptError;

    fn eq(&self, a: &Value, b: &Value) -> Result<bool, ScriptError> {
        match (a, b) {
            (Value::Int(x), Value::Int(y)) => Ok(x == y),
            (Value::Str(x), Value::Str(y)) => Ok(x == y),
            (Value::Obj(x), Value::Obj(y)) => {
                self.eq_calls.fetch_add(1, Ordering::Relaxed);
                (self.on_eq)();
                Ok(x.id == y.id)
            }
            _ => Ok(false),
        }
    }

    fn identical(&self, a: &Value, b: &Value) -> bool {
        matches!((a, b), (Value::Obj(x), Value::Obj(y)) if Arc::ptr_eq(x, y))
    }

    fn eq_is_pure(&self, a: &Value, b: &Value) -> bool {
        // str and int equality run no script code: they are compared under the dict's lock.
        !matches!((a, b), (Value::Obj(_), Value::Obj(_)))
    }
}

impl KeyModel<Value> for Vm {
    fn hash(&self, v: &Value) -> Result<u64, ScriptError> {
        use std::hash::BuildHasher;
        let h = foldhash::fast::FixedState::with_seed(7);
        match v {
            Value::Int(i) => Ok(*i as u64),
            Value::Str(s) => Ok(h.hash_one(&**s)),
            Value::Obj(o) if o.id < 0 => Err(ScriptError("TypeError: unhashable type".into())),
            Value::Obj(o) => Ok(o.id as u64),
        }
    }
}

fn s(text: &str) -> Value {
    Value::Str(text.into())
}

fn main() {
    let quiet = Vm {
        on_eq: Box::new(|| {}),
        eq_calls: AtomicUsize::new(0),
    };
    let globals: Arc<GilFreeDict<Value, Value>> = Arc::new(GilFreeDict::new());
    for (i, name) in ["print", "len", "range", "x", "y"].into_iter().enumerate() {
        globals
            .insert_in(&quiet, s(name), Value::Int(i as i64))
            .unwrap();
    }

    // 1. Threads share the globals: `counter += 1` as an atomic read-modify-write.
    println!("== shared globals ==");
    globals
        .insert_in(&quiet, s("counter"), Value::Int(0))
        .unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..10_000 {
                    globals
                        .upsert_in(&quiet, s("counter"), |v| match v {
                            Some(Value::Int(n)) => Value::Int(n + 1),
                            _ => Value::Int(1),
                        })
                        .unwrap();
                }
            });
        }
    });
    println!(
        "counter after 4 threads x 10000 increments: {:?}",
        globals.get_in(&quiet, &s("counter")).unwrap()
    );

    // 2. An inline cache for a global lookup, keyed by the dict's version tag.
    let mut cache = (globals.version(), globals.get_in(&quiet, &s("x")).unwrap());
    globals.insert_in(&quiet, s("x"), Value::Int(42)).unwrap();
    if globals.version() != cache.0 {
        cache = (globals.version(), globals.get_in(&quiet, &s("x")).unwrap());
    }
    println!("inline cache refreshed after a store to x: {:?}", cache.1);

    // 3. Script __eq__ that mutates the dict being searched.
    println!("\n== re-entrant __eq__ ==");
    let d: Arc<GilFreeDict<Value, Value>> = Arc::new(GilFreeDict::new());
    let stored = Value::Obj(Arc::new(Obj { id: 1 }));
    let probe = Value::Obj(Arc::new(Obj { id: 1 }));
    let evil = {
        let d = Arc::clone(&d);
        let stored = stored.clone();
        Vm {
            on_eq: Box::new(move || {
                // Every comparison re-assigns the key being compared: the entry under the
                // lookup changes each time, so the lookup restarts until it gives up.
                let plain = Vm {
                    on_eq: Box::new(|| {}),
                    eq_calls: AtomicUsize::new(0),
                };
                d.insert_in(&plain, stored.clone(), s("reassigned"))
                    .unwrap();
            }),
            eq_calls: AtomicUsize::new(0),
        }
    };
    d.insert_in(&quiet, stored.clone(), s("value")).unwrap();
    match d.get_in(&evil, &probe) {
        Err(e @ Error::MutatedDuringLookup) => println!(
            "lookup with a mutating __eq__: error \"{e}\" after {} eq calls",
            evil.eq_calls.load(Ordering::Relaxed)
        ),
        other => println!("lookup with a mutating __eq__: {other:?}"),
    }
    println!(
        "identity shortcut (`is`): {:?}",
        d.get_in(&evil, &stored).unwrap()
    );
    let unhashable = Value::Obj(Arc::new(Obj { id: -1 }));
    println!(
        "unhashable key: {}",
        d.get_in(&quiet, &unhashable).unwrap_err()
    );
    println!("dict still usable: len = {}", d.len());

    // 4. What do locking and lock-free reads cost? Global-variable reads, 1 and 2 threads.
    println!("\n== global reads (Mops/s, aggregate) ==");
    let names: Vec<Value> = (0..64).map(|i| s(&format!("name{i}"))).collect();
    let gf: GilFreeDict<Value, Value> = GilFreeDict::new();
    let lk: LockedDict<Value, Value> = LockedDict::new();
    for (i, n) in names.iter().enumerate() {
        gf.insert_in(&quiet, n.clone(), Value::Int(i as i64))
            .unwrap();
        lk.insert_in(&quiet, n.clone(), Value::Int(i as i64))
            .unwrap();
    }
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(2);
    for t in 1..=threads {
        let g = reads(&gf, &quiet, &names, t);
        let l = reads(&lk, &quiet, &names, t);
        println!(
            "{t} thread(s): GilFreeDict {g:7.1}   LockedDict {l:7.1}   ratio {:.2}x",
            g / l
        );
    }
}

/// Aggregate millions of borrowed global reads per second over `threads` threads.
fn reads<St: DictStore<Value, Value> + Sync>(
    d: &Dict<Value, Value, DefaultHashBuilder, St>,
    vm: &Vm,
    names: &[Value],
    threads: usize,
) -> f64 {
    let run = Duration::from_millis(300);
    let total = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let total = &total;
            scope.spawn(move || {
                let mut n = 0usize;
                let mut i = t;
                while start.elapsed() < run {
                    for _ in 0..1000 {
                        i = (i + 1) % names.len();
                        let hit = d.get_with_in(vm, &names[i], |_| ()).unwrap();
                        std::hint::black_box(hit);
                    }
                    n += 1000;
                }
                total.fetch_add(n, Ordering::Relaxed);
            });
        }
    });
    total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64() / 1e6
}
