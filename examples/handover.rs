//! The original idea, played out: two interpreters in one process, each with its own GIL.
//!
//! 1. Interpreter A builds a large object tree (dicts of lists) and computes on it.
//! 2. A hands the tree over to interpreter B in O(1) — no pickling, no copy — and its own
//!    handles go stale. B walks and mutates the tree directly; A's access now fails loudly.
//! 3. A frozen configuration tree is read by four interpreters at once, with no lock, no atomic
//!    read-modify-write and no refcount traffic.
//!
//! For scale, the example also times a serialize + deserialize of the same tree, which is
//! what moving it between processes (or GIL-isolated interpreters without shared objects)
//! would cost.
//!
//! Run: `cargo run --release --example handover`

use std::sync::Arc;
use std::time::Instant;

use gilfree::{Freeze, GilFreeDict, GilFreeList, Interpreter, Owned, Shape};

/// An interpreter value: refcounted handles to immutable leaves and shared containers.
#[derive(Clone, Debug)]
enum Value {
    Int(i64),
    Str(Arc<str>),
    List(Arc<GilFreeList<Value>>),
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
            Value::List(l) => Shape::Container(&**l),
        }
    }
}

fn key(s: &str) -> Arc<str> {
    s.into()
}

/// `records` dicts of the form {"id": i, "name": "...", "scores": [..10 ints..]}.
fn build(records: i64) -> Value {
    let table = GilFreeList::new();
    for i in 0..records {
        let rec = GilFreeDict::new();
        rec.insert(key("id"), Value::Int(i)).unwrap();
        rec.insert(key("name"), Value::Str(format!("user{i}").into()))
            .unwrap();
        let scores = GilFreeList::new();
        scores
            .extend((0..10).map(|j| Value::Int((i * 7 + j * 13) % 101)))
            .unwrap();
        rec.insert(key("scores"), Value::List(Arc::new(scores)))
            .unwrap();
        table.append(Value::Dict(Arc::new(rec))).unwrap();
    }
    Value::List(Arc::new(table))
}

/// Sum of every score: a full walk through borrowed reads (no refcount traffic).
fn total(tree: &Value) -> i64 {
    let Value::List(table) = tree else { return 0 };
    let pinned = table.pin();
    pinned
        .iter()
        .map(|rec| {
            let Value::Dict(rec) = &*rec else { return 0 };
            rec.get_with(&key("scores"), |scores| match scores {
                Value::List(s) => s
                    .pin()
                    .iter()
                    .map(|v| if let Value::Int(n) = *v { n } else { 0 })
                    .sum(),
                _ => 0,
            })
            .unwrap_or(0)
        })
        .sum()
}

fn main() {
    let (a, b) = (Interpreter::new(), Interpreter::new());
    let records = 200_000;

    // 1. Interpreter A builds and computes.
    let t0 = Instant::now();
    let tree = {
        let _gil = a.gil();
        Owned::new(&a, build(records))
    };
    println!(
        "A built {records} records ({} values) in {:?}",
        records * 13 + 1,
        t0.elapsed()
    );
    let sum_a = total(tree.get(&a).unwrap());
    println!("A computes: total score = {sum_a}");

    // 2. Hand-over to B: O(1).
    // A kept a second handle (say, in a cache): the hand-over consumes the first one, so
    // the borrow checker ends A's references, and the clone goes stale at run time.
    let kept_by_a = tree.clone();
    let t1 = Instant::now();
    let tree_b = tree.hand_over(&a, &b).unwrap();
    let handover = t1.elapsed();
    println!("hand-over A -> B took {handover:?} (whatever the tree size)");
    match kept_by_a.get(&a) {
        Err(e) => println!("A touching the tree afterwards: error \"{e}\""),
        Ok(_) => unreachable!("a stale handle must fail"),
    }
    let worker = std::thread::scope(|s| {
        s.spawn(|| {
            let _gil = b.gil();
            let root = tree_b.get(&b).unwrap();
            let before = total(root);
            if let Value::List(table) = root {
                table.append(Value::Int(0)).unwrap(); // B mutates in place: it owns the tree now
            }
            before
        })
        .join()
        .unwrap()
    });
    println!("B walks the same objects on its own thread: total score = {worker}");
    assert_eq!(worker, sum_a);

    // For scale: what a copy through serialization costs (a compact binary encoding, then
    // rebuilding every object).
    let t2 = Instant::now();
    let bytes = encode(tree_b.get(&b).unwrap());
    let rebuilt = decode(&mut &bytes[..]);
    let copy = t2.elapsed();
    assert_eq!(total(&rebuilt), sum_a);
    println!(
        "serialize + deserialize the same tree: {copy:?} ({} bytes) = {:.0}x the hand-over",
        bytes.len(),
        copy.as_secs_f64() / handover.as_secs_f64().max(1e-9)
    );

    // 3. A frozen configuration tree read by four interpreters at once.
    let config = GilFreeDict::new();
    for section in ["db", "cache", "http"] {
        let s = GilFreeDict::new();
        s.insert(key("host"), Value::Str(format!("{section}.local").into()))
            .unwrap();
        s.insert(key("port"), Value::Int(5000 + section.len() as i64))
            .unwrap();
        config
            .insert(key(section), Value::Dict(Arc::new(s)))
            .unwrap();
    }
    let shared = Owned::new(&a, Value::Dict(Arc::new(config)))
        .share(&a)
        .unwrap();
    let readers: Vec<Interpreter> = (0..4).map(|_| Interpreter::new()).collect();
    let t3 = Instant::now();
    let reads: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = readers
            .iter()
            .map(|interp| {
                let shared = shared.clone();
                s.spawn(move || {
                    let _gil = interp.gil(); // each interpreter holds only its own GIL
                    let Value::Dict(cfg) = shared.get() else {
                        return 0;
                    };
                    let cfg = cfg.frozen().expect("shared trees are frozen");
                    let mut n = 0u64;
                    for i in 0..1_000_000 {
                        let section = ["db", "cache", "http"][i % 3];
                        if let Some(Value::Dict(sec)) = cfg.get(&key(section)) {
                            let port = sec.frozen().unwrap().get(&key("port"));
                            n += matches!(port, Some(Value::Int(_))) as u64;
                        }
                    }
                    n
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    println!(
        "4 interpreters read the frozen config {} times in {:?} with no lock and no refcount traffic",
        reads.iter().sum::<u64>() * 2,
        t3.elapsed()
    );
}

/// A compact binary encoding of a tree (the "pickle" baseline).
fn encode(v: &Value) -> Vec<u8> {
    fn go(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Int(n) => {
                out.push(0);
                out.extend_from_slice(&n.to_le_bytes());
            }
            Value::Str(s) => {
                out.push(1);
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Value::List(l) => {
                let items = l.snapshot();
                out.push(2);
                out.extend_from_slice(&(items.len() as u32).to_le_bytes());
                for item in &items {
                    go(item, out);
                }
            }
            Value::Dict(d) => {
                let items = d.snapshot();
                out.push(3);
                out.extend_from_slice(&(items.len() as u32).to_le_bytes());
                for (k, item) in &items {
                    go(&Value::Str(k.clone()), out);
                    go(item, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    go(v, &mut out);
    out
}

fn decode(input: &mut &[u8]) -> Value {
    fn take<'a>(input: &mut &'a [u8], n: usize) -> &'a [u8] {
        let (head, tail) = input.split_at(n);
        *input = tail;
        head
    }
    let len = |input: &mut &[u8]| u32::from_le_bytes(take(input, 4).try_into().unwrap()) as usize;
    match take(input, 1)[0] {
        0 => Value::Int(i64::from_le_bytes(take(input, 8).try_into().unwrap())),
        1 => {
            let n = len(input);
            Value::Str(std::str::from_utf8(take(input, n)).unwrap().into())
        }
        2 => {
            let n = len(input);
            let l = GilFreeList::with_capacity(n);
            for _ in 0..n {
                l.append(decode(input)).unwrap();
            }
            Value::List(Arc::new(l))
        }
        _ => {
            let n = len(input);
            let d = GilFreeDict::with_capacity(n);
            for _ in 0..n {
                let Value::Str(k) = decode(input) else {
                    unreachable!()
                };
                d.insert(k, decode(input)).unwrap();
            }
            Value::Dict(Arc::new(d))
        }
    }
}
