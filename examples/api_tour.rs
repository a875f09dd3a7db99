//! A short tour of the API a Rust user expects: borrowed lookups, the standard traits,
//! read-modify-write, serde-free formatting, republished frozen snapshots.
//!
//! Run: `cargo run --example api_tour`

use std::sync::Arc;

use gilfree::{Compute, Freeze, FrozenCell, GilFreeDict, GilFreeList, LockedDict, Shape};

#[derive(Clone, Debug)]
enum Value {
    Int(i64),
    Dict(Arc<GilFreeDict<String, Value>>),
}

impl gilfree::Storable for Value {
    type Storage = gilfree::storage::Boxed;
}

impl Freeze for Value {
    fn shape(&self) -> Shape<'_, Value> {
        match self {
            Value::Int(_) => Shape::Leaf,
            Value::Dict(d) => Shape::Container(&**d),
        }
    }
}

fn main() {
    // 1. Borrowed lookups: a `&str` for `String` keys, as with `HashMap`.
    let d: GilFreeDict<String, i64> = GilFreeDict::from([("x".to_string(), 1)]);
    assert_eq!(d.get("x"), Some(1));
    assert!(d.contains_key("x"));
    println!("1. d.get(\"x\") = {:?}", d.get("x"));

    // 2. Standard traits and the usual methods.
    let mut l: LockedDict<String, i64> = [("a".to_string(), 1)].into_iter().collect();
    Extend::extend(&mut l, [("b".to_string(), 2)]); // the `Extend` trait (inherent `extend` returns a Result)
    for (k, v) in &l {
        // `IntoIterator for &Dict`
        print!("{k}={v} ");
    }
    let hits = l.get_or_insert_with("hits".into(), || 0).unwrap();
    l.compute("hits".into(), |n| Compute::Set(n.copied().unwrap_or(0) + 1))
        .unwrap();
    l.compute("a".into(), |_| Compute::Remove).unwrap();
    l.upsert("b".into(), |v| v.unwrap() * 10).unwrap(); // read-modify-write
    println!("\n2. {l:?} (hits was {hits}); capacity {}", l.capacity());
    let list = GilFreeList::from([3, 1, 2]);
    list.sort().unwrap();
    println!("   {list:?}, Eq: {}", list == GilFreeList::from([1, 2, 3]));

    // 3. A frozen configuration, republished atomically while readers keep reading.
    let config = |level: i64| {
        let d = GilFreeDict::new();
        d.insert("level".to_string(), Value::Int(level)).unwrap();
        Value::Dict(Arc::new(d))
    };
    let cell = Arc::new(FrozenCell::new(config(1)).unwrap());
    let reader = {
        let cell = Arc::clone(&cell);
        std::thread::spawn(move || {
            let mut seen: Vec<i64> = Vec::new();
            while seen.last() != Some(&3) {
                let current = cell.load();
                let Value::Dict(d) = &*current else {
                    unreachable!()
                };
                if let Some(Value::Int(level)) = d.frozen().unwrap().get("level") {
                    if seen.last() != Some(level) {
                        seen.push(*level);
                    }
                }
            }
            seen
        })
    };
    for level in 2..=3 {
        std::thread::sleep(std::time::Duration::from_millis(5));
        cell.publish(config(level)).unwrap();
    }
    let seen = reader.join().unwrap();
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "versions only move forward"
    );
    println!(
        "3. a reader saw levels {seen:?}; current generation {}",
        cell.generation()
    );

    // 6. Frozen views iterate with no lock, no pin, no refcount.
    let Value::Dict(current) = &*cell.load() else {
        unreachable!()
    };
    let view = current.frozen().unwrap();
    for (k, v) in view {
        println!("6. frozen {k} = {v:?}");
    }
}
