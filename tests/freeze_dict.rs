//! Tree-freeze over dicts: all or nothing, paths in errors, cycles, shared sub-trees, frozen
//! reads from many threads, and freeze racing with writers.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use gilfree::{freeze, Container, Error, Freeze, GilFreeDict, LockedDict, Shape};

/// A tiny interpreter value: leaves, two kinds of dict, and a file that cannot be frozen.
#[derive(Clone, Debug)]
enum Value {
    Int(i64),
    Str(Arc<str>),
    Dict(Arc<GilFreeDict<Value, Value>>),
    LDict(Arc<LockedDict<Value, Value>>),
    File(Arc<str>),
}

impl gilfree::Storable for Value {
    type Storage = gilfree::storage::Boxed;
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Dict(a), Value::Dict(b)) => Arc::ptr_eq(a, b),
            (Value::LDict(a), Value::LDict(b)) => Arc::ptr_eq(a, b),
            (Value::File(a), Value::File(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}
impl Eq for Value {}
impl Hash for Value {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            Value::Int(i) => i.hash(h),
            Value::Str(s) => s.hash(h),
            Value::Dict(d) => (Arc::as_ptr(d) as usize).hash(h),
            Value::LDict(d) => (Arc::as_ptr(d) as usize).hash(h),
            Value::File(f) => (Arc::as_ptr(f) as *const u8 as usize).hash(h),
        }
    }
}

impl Freeze for Value {
    fn shape(&self) -> Shape<'_, Value> {
        match self {
            Value::Int(_) | Value::Str(_) => Shape::Leaf,
            Value::Dict(d) => Shape::Container(&**d),
            Value::LDict(d) => Shape::Container(&**d),
            Value::File(_) => Shape::Unfreezable("file"),
        }
    }

    fn repr(&self) -> String {
        match self {
            Value::Int(i) => i.to_string(),
            Value::Str(s) => format!("{s:?}"),
            _ => "<object>".into(),
        }
    }

    fn shallow_copy(&self) -> Option<Value> {
        match self {
            Value::Dict(d) => Some(Value::Dict(Arc::new(d.copy()))),
            Value::LDict(d) => Some(Value::LDict(Arc::new(d.copy()))),
            _ => None,
        }
    }
}

fn s(x: &str) -> Value {
    Value::Str(x.into())
}

fn dict(pairs: Vec<(Value, Value)>) -> Value {
    Value::Dict(Arc::new(pairs.into_iter().collect()))
}

fn ldict(pairs: Vec<(Value, Value)>) -> Value {
    Value::LDict(Arc::new(pairs.into_iter().collect()))
}

/// Every container reachable from `v` (by walking, memo by address).
fn containers(v: &Value, out: &mut Vec<Value>) {
    let children = match v {
        Value::Dict(d) => d.values(),
        Value::LDict(d) => d.values(),
        _ => return,
    };
    if out.iter().any(|c| c == v) {
        return;
    }
    out.push(v.clone());
    for c in children {
        containers(&c, out);
    }
}

fn frozen(v: &Value) -> bool {
    match v {
        Value::Dict(d) => d.is_frozen(),
        Value::LDict(d) => d.is_frozen(),
        _ => true,
    }
}

fn config_tree(handler: Value) -> Value {
    let levels = dict(
        (0..5)
            .map(|i| {
                (
                    Value::Int(i),
                    if i == 3 {
                        ldict(vec![(s("handler"), handler.clone())])
                    } else {
                        dict(vec![(s("x"), Value::Int(i))])
                    },
                )
            })
            .collect(),
    );
    dict(vec![
        (s("name"), s("app")),
        (s("config"), levels),
        (s("debug"), ldict(vec![(s("level"), Value::Int(2))])),
    ])
}

#[test]
fn freezes_a_whole_tree() {
    let root = config_tree(s("stdout"));
    freeze(&root).unwrap();
    let mut all = Vec::new();
    containers(&root, &mut all);
    assert_eq!(all.len(), 8);
    assert!(all.iter().all(frozen));
    let Value::Dict(d) = &root else {
        unreachable!()
    };
    assert_eq!(
        d.insert(s("new"), Value::Int(1)),
        Err(Error::Frozen(Container::Dict))
    );
    let view = d.frozen().unwrap();
    assert_eq!(view.get(&s("name")), Some(&s("app")));
}

#[test]
fn unfreezable_leaf_deep_in_the_tree_changes_nothing() {
    let root = config_tree(Value::File("log.txt".into()));
    let err = freeze(&root).unwrap_err();
    assert_eq!(
        err,
        Error::Unfreezable {
            path: r#"root["config"][3]["handler"]"#.into(),
            what: "file"
        }
    );
    assert_eq!(
        err.to_string(),
        r#"cannot freeze root["config"][3]["handler"]: file cannot be frozen"#
    );
    let mut all = Vec::new();
    containers(&root, &mut all);
    assert_eq!(all.len(), 8);
    assert!(
        all.iter().all(|c| !frozen(c)),
        "a failed freeze must leave every container mutable"
    );
    let Value::Dict(d) = &root else {
        unreachable!()
    };
    d.insert(s("still"), s("mutable")).unwrap();
}

#[test]
fn unfreezable_leaf_in_a_large_tree() {
    // 1 000 dicts of 10 leaves; one file at the very end of the walk.
    let big: Vec<(Value, Value)> = (0..1000)
        .map(|i| {
            (
                Value::Int(i),
                dict(
                    (0..10)
                        .map(|j| (Value::Int(j), Value::Int(i * j)))
                        .collect(),
                ),
            )
        })
        .collect();
    let root = dict(big);
    let Value::Dict(d) = &root else {
        unreachable!()
    };
    let Some(Value::Dict(last)) = d.get(&Value::Int(999)) else {
        unreachable!()
    };
    last.insert(Value::Int(5), Value::File("sock".into()))
        .unwrap();
    assert_eq!(
        freeze(&root).unwrap_err(),
        Error::Unfreezable {
            path: "root[999][5]".into(),
            what: "file"
        }
    );
    let mut all = Vec::new();
    containers(&root, &mut all);
    assert_eq!(all.len(), 1001);
    assert!(all.iter().all(|c| !frozen(c)));
    last.remove(&Value::Int(5)).unwrap();
    freeze(&root).unwrap();
    let mut all = Vec::new();
    containers(&root, &mut all);
    assert!(all.iter().all(frozen));
}

#[test]
fn cycles_and_shared_subtrees_are_frozen_once() {
    let shared = dict(vec![(s("k"), Value::Int(1))]);
    let a = Arc::new(GilFreeDict::<Value, Value>::new());
    let root = Value::Dict(a.clone());
    a.insert(s("self"), root.clone()).unwrap();
    a.insert(s("one"), shared.clone()).unwrap();
    a.insert(
        s("two"),
        ldict(vec![(s("again"), shared.clone()), (s("up"), root.clone())]),
    )
    .unwrap();
    freeze(&root).unwrap();
    assert!(frozen(&root) && frozen(&shared));
    // Freezing again is a no-op.
    freeze(&root).unwrap();
    // (The Arc cycle, now frozen, can no longer be broken: it leaks, as a refcount cycle does.)
}

#[test]
fn freeze_from_inside_a_locked_closure_is_refused() {
    let inner = Arc::new(LockedDict::<Value, Value>::new());
    let root = dict(vec![(s("inner"), Value::LDict(inner.clone()))]);
    let r = inner.with_lock(|_| freeze(&root)).unwrap();
    assert_eq!(r, Err(Error::Reentrant(Container::Dict)));
    assert!(!frozen(&root));
    freeze(&root).unwrap();
}

#[test]
fn frozen_reads_from_many_threads() {
    let root = config_tree(s("stdout"));
    freeze(&root).unwrap();
    let Value::Dict(d) = &root else {
        unreachable!()
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let view = d.frozen().unwrap();
                    let Some(Value::Dict(cfg)) = view.get(&s("config")) else {
                        return false;
                    };
                    let cfg = cfg.frozen().unwrap();
                    (0..10_000).all(|i| cfg.get(&Value::Int(i % 5)).is_some())
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap());
        }
    });
}

/// Writers insert distinct keys into every container while another thread freezes the tree:
/// every insert that returned Ok is in the frozen tree, every other one got `Frozen`.
#[test]
fn freeze_racing_with_writers() {
    for round in 0..20 {
        let leaves: Vec<Value> = (0..4)
            .map(|i| {
                if i % 2 == 0 {
                    dict(vec![])
                } else {
                    ldict(vec![])
                }
            })
            .collect();
        let root = dict(
            leaves
                .iter()
                .enumerate()
                .map(|(i, l)| (Value::Int(i as i64), l.clone()))
                .collect(),
        );
        let start = Barrier::new(3);
        let stop = AtomicBool::new(false);
        let results: Vec<Vec<(usize, i64, bool)>> = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..2)
                .map(|t| {
                    let (leaves, start, stop) = (&leaves, &start, &stop);
                    scope.spawn(move || {
                        start.wait();
                        let mut log = Vec::new();
                        let mut n = 0i64;
                        while !stop.load(Ordering::Relaxed) || n < 50 {
                            let which = (n as usize + t) % leaves.len();
                            let key = Value::Int(n * 2 + t as i64);
                            let r = match &leaves[which] {
                                Value::Dict(d) => d.insert(key, Value::Int(n)),
                                Value::LDict(d) => d.insert(key, Value::Int(n)),
                                _ => unreachable!(),
                            };
                            match r {
                                Ok(_) => log.push((which, n * 2 + t as i64, true)),
                                Err(Error::Frozen(Container::Dict)) => {
                                    log.push((which, n * 2 + t as i64, false))
                                }
                                Err(e) => panic!("unexpected {e}"),
                            }
                            n += 1;
                            if n > 5000 {
                                break;
                            }
                        }
                        log
                    })
                })
                .collect();
            start.wait();
            for _ in 0..round {
                std::thread::yield_now();
            }
            freeze(&root).unwrap();
            stop.store(true, Ordering::Relaxed);
            writers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        for log in &results {
            // Once a container is frozen it stays frozen: after the first rejection in a
            // container, no later write to it succeeds.
            for (which, key, ok) in log {
                let present = match &leaves[*which] {
                    Value::Dict(d) => d.frozen().unwrap().get(&Value::Int(*key)).is_some(),
                    Value::LDict(d) => d.frozen().unwrap().get(&Value::Int(*key)).is_some(),
                    _ => unreachable!(),
                };
                assert_eq!(
                    present, *ok,
                    "round {round}: key {key} in container {which}"
                );
            }
        }
        let total_ok: usize = results.iter().flatten().filter(|r| r.2).count();
        let total_len: usize = leaves
            .iter()
            .map(|l| match l {
                Value::Dict(d) => d.len(),
                Value::LDict(d) => d.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(
            total_ok, total_len,
            "round {round}: frozen contents = successful writes"
        );
    }
}

#[test]
fn frozen_copy_leaves_the_original_mutable_and_keeps_the_shape() {
    let shared = dict(vec![(s("k"), Value::Int(1))]);
    let a = Arc::new(GilFreeDict::<Value, Value>::new());
    let root = Value::Dict(a.clone());
    a.insert(s("self"), root.clone()).unwrap();
    a.insert(s("one"), shared.clone()).unwrap();
    a.insert(s("two"), ldict(vec![(s("again"), shared.clone())]))
        .unwrap();
    let copy = gilfree::frozen_copy(&root).unwrap();
    let mut originals = Vec::new();
    containers(&root, &mut originals);
    assert!(
        originals.iter().all(|c| !frozen(c)),
        "the original stays mutable"
    );
    let mut copies = Vec::new();
    containers(&copy, &mut copies);
    assert_eq!(copies.len(), originals.len());
    assert!(copies.iter().all(frozen));
    assert!(
        copies.iter().all(|c| !originals.contains(c)),
        "every container is new"
    );
    let Value::Dict(c) = &copy else {
        unreachable!()
    };
    let view = c.frozen().unwrap();
    // The cycle points at the copy, and the shared sub-tree is shared in the copy too.
    assert_eq!(view.get(&s("self")), Some(&copy));
    let Some(Value::LDict(two)) = view.get(&s("two")) else {
        unreachable!()
    };
    assert_eq!(two.frozen().unwrap().get(&s("again")), view.get(&s("one")));
    assert_ne!(view.get(&s("one")), Some(&shared));
    // Order is kept.
    assert_eq!(
        view.keys().cloned().collect::<Vec<_>>(),
        vec![s("self"), s("one"), s("two")]
    );
    a.insert(s("after"), Value::Int(0)).unwrap();
    assert_eq!(c.len(), 3);
    // An unfreezable value: nothing is copied, the error names the path.
    a.insert(s("log"), Value::File("f".into())).unwrap();
    assert_eq!(
        gilfree::frozen_copy(&root).unwrap_err(),
        Error::Unfreezable {
            path: r#"root["log"]"#.into(),
            what: "file"
        }
    );
}
