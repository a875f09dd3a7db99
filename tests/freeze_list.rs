//! Tree-freeze over dicts *and* lists: the path of the issue (`root["config"][3]["handler"]`),
//! frozen list views read from many threads, freeze racing with list writers, frozen_copy of
//! lists, and a proptest over random trees (all or nothing, paths, contents).

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Barrier};

use gilfree::{
    freeze, frozen_copy, Container, Error, Freeze, GilFreeDict, GilFreeList, LockedList, Shape,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Value {
    Int(i64),
    Str(Arc<str>),
    Dict(Arc<GilFreeDict<Value, Value>>),
    List(Arc<GilFreeList<Value>>),
    LList(Arc<LockedList<Value>>),
    File,
}

impl gilfree::Storable for Value {
    type Storage = gilfree::storage::Boxed;
}

fn addr<T>(a: &Arc<T>) -> usize {
    Arc::as_ptr(a) as usize
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Dict(a), Value::Dict(b)) => Arc::ptr_eq(a, b),
            (Value::List(a), Value::List(b)) => Arc::ptr_eq(a, b),
            (Value::LList(a), Value::LList(b)) => Arc::ptr_eq(a, b),
            (Value::File, Value::File) => true,
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
            Value::Dict(d) => addr(d).hash(h),
            Value::List(l) => addr(l).hash(h),
            Value::LList(l) => addr(l).hash(h),
            Value::File => 0.hash(h),
        }
    }
}

impl Freeze for Value {
    fn shape(&self) -> Shape<'_, Value> {
        match self {
            Value::Int(_) | Value::Str(_) => Shape::Leaf,
            Value::Dict(d) => Shape::Container(&**d),
            Value::List(l) => Shape::Container(&**l),
            Value::LList(l) => Shape::Container(&**l),
            Value::File => Shape::Unfreezable("file"),
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
            Value::List(l) => Some(Value::List(Arc::new(l.copy()))),
            Value::LList(l) => Some(Value::LList(Arc::new(l.copy()))),
            _ => None,
        }
    }
}

fn s(x: &str) -> Value {
    Value::Str(x.into())
}

fn frozen(v: &Value) -> Option<bool> {
    match v {
        Value::Dict(d) => Some(d.is_frozen()),
        Value::List(l) => Some(l.is_frozen()),
        Value::LList(l) => Some(l.is_frozen()),
        _ => None,
    }
}

/// The issue's example: `root["config"][3]["handler"]` through a list.
#[test]
fn path_through_a_list() {
    let handler = GilFreeDict::new();
    handler.insert(s("handler"), Value::File).unwrap();
    let handlers: Vec<Value> = (0..5)
        .map(|i| {
            if i == 3 {
                Value::Dict(Arc::new(GilFreeDict::from_iter([(
                    s("handler"),
                    Value::File,
                )])))
            } else {
                Value::Int(i)
            }
        })
        .collect();
    let config = Value::List(Arc::new(handlers.into_iter().collect()));
    let root = Value::Dict(Arc::new(
        [(s("config"), config.clone()), (s("name"), s("app"))]
            .into_iter()
            .collect(),
    ));
    assert_eq!(
        freeze(&root),
        Err(Error::Unfreezable {
            path: r#"root["config"][3]["handler"]"#.into(),
            what: "file"
        })
    );
    assert_eq!(frozen(&root), Some(false));
    assert_eq!(frozen(&config), Some(false));
    // Replace the file with a leaf: the whole tree freezes, the list included.
    let Value::List(list) = &config else {
        unreachable!()
    };
    list.set(3, s("stdout")).unwrap();
    freeze(&root).unwrap();
    assert_eq!(frozen(&config), Some(true));
    assert_eq!(
        list.append(Value::Int(9)),
        Err(Error::Frozen(Container::List))
    );
    assert_eq!(list.frozen().unwrap().get(3), Ok(&s("stdout")));
}

#[test]
fn frozen_lists_are_read_from_many_threads_without_locks() {
    let g: GilFreeList<i64> = (0..1000).collect();
    let l: LockedList<i64> = (0..1000).collect();
    freeze(&Value::Int(0)).unwrap(); // a leaf root: nothing to do
    g.freeze().unwrap();
    l.freeze().unwrap();
    let (gv, lv) = (g.frozen().unwrap(), l.frozen().unwrap());
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..4)
            .map(|t| {
                scope.spawn(move || {
                    (0..20_000).all(|i| {
                        let at = ((i * 7 + t) % 1000) as isize;
                        gv.get(at) == Ok(&(at as i64)) && lv.get(-1 - at) == Ok(&(999 - at as i64))
                    })
                })
            })
            .collect();
        for r in readers {
            assert!(r.join().unwrap());
        }
    });
    assert_eq!(gv.iter().next_back(), Some(&999));
    assert_eq!(lv.iter().sum::<i64>(), 999 * 1000 / 2);
    assert_eq!(gv.get(1000), Err(Error::IndexOutOfRange));
}

/// Writers append to lists while a freeze runs: every append that returned Ok is in the frozen
/// list, in order; every other one got `Frozen`.
#[test]
fn freeze_racing_with_list_writers() {
    for round in 0..20 {
        let lists = [
            Value::List(Arc::new(GilFreeList::new())),
            Value::LList(Arc::new(LockedList::new())),
        ];
        let root = Value::Dict(Arc::new(
            lists
                .iter()
                .enumerate()
                .map(|(i, l)| (Value::Int(i as i64), l.clone()))
                .collect(),
        ));
        let start = Barrier::new(3);
        let logs: Vec<Vec<(usize, i64, bool)>> = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..2)
                .map(|t| {
                    let (lists, start) = (&lists, &start);
                    scope.spawn(move || {
                        start.wait();
                        let mut log = Vec::new();
                        for n in 0..2000i64 {
                            let which = (n as usize + t) % 2;
                            let x = Value::Int(n * 2 + t as i64);
                            let r = match &lists[which] {
                                Value::List(l) => l.append(x),
                                Value::LList(l) => l.append(x),
                                _ => unreachable!(),
                            };
                            match r {
                                Ok(()) => log.push((which, n * 2 + t as i64, true)),
                                Err(Error::Frozen(Container::List)) => {
                                    log.push((which, n * 2 + t as i64, false))
                                }
                                Err(e) => panic!("unexpected {e}"),
                            }
                        }
                        log
                    })
                })
                .collect();
            start.wait();
            for _ in 0..round * 10 {
                std::hint::spin_loop();
            }
            freeze(&root).unwrap();
            writers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        for (which, l) in lists.iter().enumerate() {
            let items: Vec<i64> = match l {
                Value::List(l) => l
                    .frozen()
                    .unwrap()
                    .iter()
                    .map(|v| if let Value::Int(i) = v { *i } else { -1 })
                    .collect(),
                Value::LList(l) => l
                    .frozen()
                    .unwrap()
                    .iter()
                    .map(|v| if let Value::Int(i) = v { *i } else { -1 })
                    .collect(),
                _ => unreachable!(),
            };
            for log in &logs {
                let ok: Vec<i64> = log
                    .iter()
                    .filter(|e| e.0 == which && e.2)
                    .map(|e| e.1)
                    .collect();
                // Once rejected, always rejected; the accepted ones are in the list in order.
                let first_rejected = log.iter().position(|e| e.0 == which && !e.2);
                if let Some(p) = first_rejected {
                    assert!(
                        log[p..].iter().all(|e| e.0 != which || !e.2),
                        "round {round}: a write landed after a rejection"
                    );
                }
                let mine: Vec<i64> = items.iter().copied().filter(|x| ok.contains(x)).collect();
                assert_eq!(mine, ok, "round {round}, list {which}");
            }
            let total: usize = logs
                .iter()
                .flatten()
                .filter(|e| e.0 == which && e.2)
                .count();
            assert_eq!(
                items.len(),
                total,
                "round {round}: frozen contents = successful appends"
            );
        }
    }
}

#[test]
fn frozen_copy_of_lists() {
    let inner = Value::List(Arc::new(GilFreeList::from_vec(vec![
        Value::Int(1),
        Value::Int(2),
    ])));
    let root = Value::LList(Arc::new(LockedList::from_vec(vec![
        inner.clone(),
        inner.clone(),
        s("x"),
    ])));
    let copy = frozen_copy(&root).unwrap();
    assert_eq!(frozen(&root), Some(false));
    assert_eq!(frozen(&inner), Some(false));
    let Value::LList(c) = &copy else {
        unreachable!()
    };
    let view = c.frozen().unwrap();
    assert_eq!(view.len(), 3);
    // Sharing is kept: both slots point at the same (new, frozen) list.
    assert_eq!(view.get(0), view.get(1));
    assert_ne!(view.get(0), Ok(&inner));
    assert_eq!(frozen(view.get(0).unwrap()), Some(true));
}

/// A random tree description.
#[derive(Clone, Debug)]
enum Tree {
    Leaf(i64),
    File,
    Dict(Vec<(i64, Tree)>),
    List(Vec<Tree>),
    LList(Vec<Tree>),
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![10 => any::<i64>().prop_map(Tree::Leaf), 1 => Just(Tree::File)];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec((0i64..8, inner.clone()), 0..6).prop_map(|mut kv| {
                kv.sort_by_key(|e| e.0);
                kv.dedup_by_key(|e| e.0);
                Tree::Dict(kv)
            }),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Tree::List),
            proptest::collection::vec(inner, 0..6).prop_map(Tree::LList),
        ]
    })
}

fn build(t: &Tree) -> Value {
    match t {
        Tree::Leaf(i) => Value::Int(*i),
        Tree::File => Value::File,
        Tree::Dict(kv) => Value::Dict(Arc::new(
            kv.iter().map(|(k, v)| (Value::Int(*k), build(v))).collect(),
        )),
        Tree::List(items) => Value::List(Arc::new(items.iter().map(build).collect())),
        Tree::LList(items) => Value::LList(Arc::new(items.iter().map(build).collect())),
    }
}

fn has_file(t: &Tree) -> bool {
    match t {
        Tree::File => true,
        Tree::Leaf(_) => false,
        Tree::Dict(kv) => kv.iter().any(|(_, v)| has_file(v)),
        Tree::List(v) | Tree::LList(v) => v.iter().any(has_file),
    }
}

/// Follows `root[a][b]...` (all steps are integers here) through the description.
fn follow<'t>(t: &'t Tree, path: &str) -> Option<&'t Tree> {
    let steps = path.strip_prefix("root")?;
    let mut at = t;
    for step in steps.split('[').skip(1) {
        let n: i64 = step.strip_suffix(']')?.parse().ok()?;
        at = match at {
            Tree::Dict(kv) => &kv.iter().find(|(k, _)| *k == n)?.1,
            Tree::List(v) | Tree::LList(v) => v.get(usize::try_from(n).ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// Whether every container under `v` is frozen (`want`), and its contents equal `t`.
fn check(v: &Value, t: &Tree, want: bool) -> bool {
    match (v, t) {
        (Value::Int(a), Tree::Leaf(b)) => a == b,
        (Value::File, Tree::File) => true,
        (Value::Dict(d), Tree::Dict(kv)) => {
            d.is_frozen() == want
                && d.len() == kv.len()
                && kv
                    .iter()
                    .all(|(k, sub)| d.get(&Value::Int(*k)).is_some_and(|x| check(&x, sub, want)))
        }
        (Value::List(l), Tree::List(items)) => {
            l.is_frozen() == want
                && l.snapshot()
                    .iter()
                    .zip(items)
                    .all(|(x, sub)| check(x, sub, want))
                && l.len() == items.len()
        }
        (Value::LList(l), Tree::LList(items)) => {
            l.is_frozen() == want
                && l.snapshot()
                    .iter()
                    .zip(items)
                    .all(|(x, sub)| check(x, sub, want))
                && l.len() == items.len()
        }
        _ => false,
    }
}

fn cases() -> u32 {
    std::env::var("GILFREE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn freeze_random_trees(t in tree()) {
        let root = build(&t);
        match freeze(&root) {
            Ok(()) => {
                prop_assert!(!has_file(&t));
                prop_assert!(check(&root, &t, true) || frozen(&root).is_none());
            }
            Err(Error::Unfreezable { path, what }) => {
                prop_assert!(has_file(&t));
                prop_assert_eq!(what, "file");
                prop_assert!(matches!(follow(&t, &path), Some(Tree::File)), "path {} does not lead to a file", path);
                prop_assert!(check(&root, &t, false) || frozen(&root).is_none(), "a failed freeze changed something");
            }
            Err(e) => prop_assert!(false, "unexpected error {:?}", e),
        }
    }

    #[test]
    fn frozen_copy_random_trees(t in tree()) {
        let root = build(&t);
        match frozen_copy(&root) {
            Ok(copy) => {
                prop_assert!(!has_file(&t));
                prop_assert!(check(&copy, &t, true) || frozen(&copy).is_none());
                prop_assert!(check(&root, &t, false) || frozen(&root).is_none(), "the original must stay mutable");
            }
            Err(Error::Unfreezable { .. }) => prop_assert!(has_file(&t)),
            Err(e) => prop_assert!(false, "unexpected error {:?}", e),
        }
    }
}
