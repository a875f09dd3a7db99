//! Hand-over of trees between interpreters: owner checks, stale handles, frozen sharing.

use std::sync::Arc;

use gilfree::{Error, Freeze, GilFreeDict, Interpreter, Owned, Shape};

#[derive(Clone, Debug)]
enum Value {
    Int(i64),
    Dict(Arc<GilFreeDict<i64, Value>>),
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

fn tree(n: i64) -> Value {
    let d = GilFreeDict::new();
    for i in 0..n {
        let inner = GilFreeDict::new();
        inner.insert(0, Value::Int(i)).unwrap();
        d.insert(i, Value::Dict(Arc::new(inner))).unwrap();
    }
    Value::Dict(Arc::new(d))
}

fn root_ptr(v: &Value) -> *const GilFreeDict<i64, Value> {
    match v {
        Value::Dict(d) => Arc::as_ptr(d),
        Value::Int(_) => std::ptr::null(),
    }
}

fn len(v: &Value) -> usize {
    match v {
        Value::Dict(d) => d.len(),
        Value::Int(i) => usize::from(*i != 0),
    }
}

#[test]
fn only_the_owner_gets_access() {
    let (a, b) = (Interpreter::new(), Interpreter::new());
    assert_ne!(a.id(), b.id());
    let t = Owned::new(&a, tree(10));
    assert_eq!(t.owner(), a.id());
    assert_eq!(len(t.get(&a).unwrap()), 10);
    assert_eq!(t.get(&b).err(), Some(Error::NotOwner));
    // A refused hand-over gives the handle back, still valid.
    let refused = t.hand_over(&b, &a).unwrap_err();
    assert_eq!(refused.error(), &Error::NotOwner);
    assert_eq!(
        refused.to_string(),
        Error::<std::convert::Infallible>::NotOwner.to_string()
    );
    let t = refused.into_handle();
    assert_eq!(len(t.get(&a).unwrap()), 10);
}

#[test]
fn hand_over_moves_ownership_and_stales_old_handles() {
    let (a, b, c) = (Interpreter::new(), Interpreter::new(), Interpreter::new());
    let t = Owned::new(&a, tree(1000));
    let alias = t.clone();
    let kept = t.clone();
    let before = root_ptr(t.get(&a).unwrap());
    let tb = t.hand_over(&a, &b).unwrap();
    assert_eq!(tb.owner(), b.id());
    // The same tree, not a copy.
    assert_eq!(root_ptr(tb.get(&b).unwrap()), before);
    assert_eq!(len(tb.get(&b).unwrap()), 1000);
    // Every handle issued before the hand-over is stale, for everyone.
    assert_eq!(alias.get(&a).err(), Some(Error::StaleHandle));
    assert_eq!(alias.get(&b).err(), Some(Error::StaleHandle));
    let refused = kept.hand_over(&a, &c).unwrap_err();
    assert_eq!(refused.error(), &Error::StaleHandle);
    assert_eq!(
        Error::<std::convert::Infallible>::StaleHandle.to_string(),
        "stale handle: the object was handed over to another interpreter"
    );
    // A non-owner holding a fresh handle is refused too.
    assert_eq!(tb.get(&c).err(), Some(Error::NotOwner));
    // And it can travel on.
    let tb_kept = tb.clone();
    let tc = tb.hand_over(&b, &c).unwrap();
    assert_eq!(len(tc.get(&c).unwrap()), 1000);
    assert_eq!(tb_kept.get(&b).err(), Some(Error::StaleHandle));
}

#[test]
fn concurrent_hand_overs_have_one_winner() {
    let a = Interpreter::new();
    let targets: Vec<Interpreter> = (0..4).map(|_| Interpreter::new()).collect();
    let t = Owned::new(&a, tree(10));
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = targets
            .iter()
            .map(|to| {
                let t = t.clone();
                let a = &a;
                s.spawn(move || t.hand_over(a, to).is_ok())
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|&&ok| ok).count(), 1);
}

#[test]
fn the_new_owner_mutates_in_place_on_its_own_thread() {
    let (a, b) = (Interpreter::new(), Interpreter::new());
    let t = Owned::new(&a, tree(100));
    let tb = t.hand_over(&a, &b).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let _gil = b.gil();
            let Value::Dict(d) = tb.get(&b).unwrap() else {
                unreachable!()
            };
            d.insert(1000, Value::Int(1)).unwrap();
        });
    });
    assert_eq!(len(tb.get(&b).unwrap()), 101);
}

#[test]
fn shared_frozen_trees_are_readable_by_every_interpreter() {
    let a = Interpreter::new();
    let t = Owned::new(&a, tree(50));
    let kept = t.clone();
    let shared = t.share(&a).unwrap();
    assert_eq!(kept.get(&a).err(), Some(Error::StaleHandle));
    let readers: Vec<Interpreter> = (0..4).map(|_| Interpreter::new()).collect();
    std::thread::scope(|s| {
        for _r in &readers {
            let shared = shared.clone();
            s.spawn(move || {
                let Value::Dict(d) = shared.get() else {
                    unreachable!()
                };
                let view = d.frozen().expect("shared trees are frozen");
                for i in 0..50 {
                    let Some(Value::Dict(inner)) = view.get(&i) else {
                        panic!("missing {i}")
                    };
                    assert!(inner.is_frozen());
                }
                assert_eq!(
                    d.insert(7, Value::Int(0)).err(),
                    Some(Error::Frozen(gilfree::Container::Dict))
                );
            });
        }
    });
}
