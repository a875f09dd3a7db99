//! gilfree inside [rhai](https://rhai.rs) (with its `sync` feature): `Dict` and `List` as rhai
//! custom types — indexers, `len`, `in`, iteration, methods — and scripts on several threads
//! sharing one dict and one frozen configuration tree.
//!
//! - Values stored in the containers are [`Val`]: a gilfree `Dict`/`List` handle, or any other
//!   rhai `Dynamic`. Keys hash and compare through [`RhaiKeys`], a `KeyModel<Val>` over rhai's
//!   values (ints, strings, chars, bools, floats, `()`); other keys are "unhashable" errors
//!   that scripts can catch.
//! - `d.freeze()` / `l.freeze()` deep-freeze the tree under `d` / `l` with `gilfree::freeze`
//!   (all or nothing, lists included). A frozen container is read without locks by every
//!   thread; writing to it is a script error ("cannot modify frozen dict").
//! - `d.incr(key, n)` is an atomic read-modify-write (`upsert_in`): no lost updates between
//!   threads.
//!
//! Run: `cargo run --release --example rhai`

use std::hash::BuildHasher;
use std::sync::Arc;

use gilfree::{EqModel, Error, Freeze, GilFreeDict, GilFreeList, KeyModel, Shape};
use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString, Scope, INT};

/// A rhai dict backed by a `GilFreeDict` (a shared handle: copies alias the same dict).
#[derive(Clone, Default)]
pub struct Dict(pub Arc<GilFreeDict<Val, Val>>);

/// A rhai list backed by a `GilFreeList`.
#[derive(Clone, Default)]
pub struct List(pub Arc<GilFreeList<Val>>);

/// A value inside a gilfree container.
#[derive(Clone)]
pub enum Val {
    Dict(Dict),
    List(List),
    Other(Dynamic),
}

impl gilfree::Storable for Val {
    type Storage = gilfree::storage::Boxed;
}

impl From<Dynamic> for Val {
    fn from(d: Dynamic) -> Val {
        if d.is::<Dict>() {
            Val::Dict(d.cast::<Dict>())
        } else if d.is::<List>() {
            Val::List(d.cast::<List>())
        } else {
            Val::Other(d)
        }
    }
}

impl Val {
    /// For display: containers shown by content.
    fn show(&self) -> String {
        match self {
            Val::Dict(d) => d.clone().describe(),
            Val::List(l) => l.clone().describe(),
            Val::Other(d) => format!("{d:?}"),
        }
    }

    /// Back to a rhai value (`Dynamic::from` would wrap the `Val` itself).
    fn dynamic(self) -> Dynamic {
        match self {
            Val::Dict(d) => Dynamic::from(d),
            Val::List(l) => Dynamic::from(l),
            Val::Other(d) => d,
        }
    }
}

/// Immutable rhai values: `()`, bool, int, float, char, string.
fn is_leaf(d: &Dynamic) -> bool {
    !d.is_shared()
        && (d.is_unit()
            || d.is_bool()
            || d.is_int()
            || d.is_float()
            || d.is_char()
            || d.is_string())
}

impl Freeze for Val {
    fn shape(&self) -> Shape<'_, Val> {
        match self {
            Val::Dict(d) => Shape::Container(&*d.0),
            Val::List(l) => Shape::Container(&*l.0),
            Val::Other(d) if is_leaf(d) => Shape::Leaf,
            Val::Other(d) => Shape::Unfreezable(d.type_name()),
        }
    }

    fn repr(&self) -> String {
        format!("{:?}", self.clone().dynamic())
    }
}

/// The string inside `d`, if it holds one.
fn string(d: &Dynamic) -> Option<ImmutableString> {
    d.clone().into_immutable_string().ok()
}

/// The key model: rhai values by type and value; containers and other types are unhashable.
/// No comparison runs script code, so every one is "pure" (done under the dict's lock).
pub struct RhaiKeys;

impl EqModel<Val> for RhaiKeys {
    type Error = String;

    fn eq(&self, a: &Val, b: &Val) -> Result<bool, String> {
        Ok(match (a, b) {
            (Val::Other(x), Val::Other(y)) => {
                if x.is_string() && y.is_string() {
                    string(x) == string(y)
                } else if let (Ok(x), Ok(y)) = (x.as_int(), y.as_int()) {
                    x == y
                } else if let (Ok(x), Ok(y)) = (x.as_bool(), y.as_bool()) {
                    x == y
                } else if let (Ok(x), Ok(y)) = (x.as_char(), y.as_char()) {
                    x == y
                } else if let (Ok(x), Ok(y)) = (x.as_float(), y.as_float()) {
                    x == y
                } else {
                    x.is_unit() && y.is_unit()
                }
            }
            (Val::Dict(x), Val::Dict(y)) => Arc::ptr_eq(&x.0, &y.0),
            (Val::List(x), Val::List(y)) => Arc::ptr_eq(&x.0, &y.0),
            _ => false,
        })
    }

    fn eq_is_pure(&self, _: &Val, _: &Val) -> bool {
        true
    }
}

impl KeyModel<Val> for RhaiKeys {
    fn hash(&self, v: &Val) -> Result<u64, String> {
        let h = foldhash::fast::FixedState::with_seed(0x7a1);
        match v {
            Val::Other(d) if d.is_string() => {
                Ok(h.hash_one(string(d).unwrap_or_default().as_str()))
            }
            Val::Other(d) if d.is_int() => Ok(h.hash_one(d.as_int().unwrap_or(0))),
            Val::Other(d) if d.is_bool() => Ok(h.hash_one(d.as_bool().unwrap_or(false))),
            Val::Other(d) if d.is_char() => Ok(h.hash_one(d.as_char().unwrap_or('\0'))),
            Val::Other(d) if d.is_float() => {
                let f = d.as_float().unwrap_or(0.0);
                Ok(h.hash_one(if f == 0.0 { 0.0f64 } else { f }.to_bits()))
            }
            Val::Other(d) if d.is_unit() => Ok(0),
            Val::Other(d) => Err(format!("unhashable type: {}", d.type_name())),
            Val::Dict(_) => Err("unhashable type: Dict".into()),
            Val::List(_) => Err("unhashable type: List".into()),
        }
    }
}

type RResult<T> = Result<T, Box<EvalAltResult>>;

/// gilfree's errors as rhai runtime errors (with gilfree's, CPython-style, messages).
fn rt<T, E: std::fmt::Display>(r: Result<T, Error<E>>) -> RResult<T> {
    r.map_err(|e| e.to_string().into())
}

/// A Python-style index (negative counts from the end).
fn index(i: INT) -> isize {
    i as isize
}

impl Dict {
    fn get(&mut self, key: Dynamic) -> RResult<Dynamic> {
        let key = Val::from(key);
        let found = match self.0.frozen() {
            // A frozen dict: borrowed, lock-free reads.
            Some(f) => rt(f.get_in(&RhaiKeys, &key))?.cloned(),
            None => rt(self.0.get_in(&RhaiKeys, &key))?,
        };
        match found {
            Some(v) => Ok(v.dynamic()),
            None => Err(format!("key not found: {:?}", key.dynamic()).into()),
        }
    }

    fn get_or(&mut self, key: Dynamic, default: Dynamic) -> RResult<Dynamic> {
        let found = rt(self.0.get_in(&RhaiKeys, &Val::from(key)))?;
        Ok(found.map_or(default, Val::dynamic))
    }

    fn set(&mut self, key: Dynamic, value: Dynamic) -> RResult<()> {
        rt(self.0.insert_in(&RhaiKeys, key.into(), value.into())).map(drop)
    }

    fn contains(&mut self, key: Dynamic) -> RResult<bool> {
        rt(self.0.contains_key_in(&RhaiKeys, &Val::from(key)))
    }

    fn remove(&mut self, key: Dynamic) -> RResult<Dynamic> {
        let old = rt(self.0.remove_in(&RhaiKeys, &Val::from(key)))?;
        Ok(old.map_or(Dynamic::UNIT, Val::dynamic))
    }

    /// `d.incr(key, n)`: atomic `d[key] += n` (starting from 0).
    fn incr(&mut self, key: Dynamic, n: INT) -> RResult<INT> {
        let mut now = n;
        rt(self.0.upsert_in(&RhaiKeys, key.into(), |old| {
            if let Some(Val::Other(d)) = old {
                now = d.as_int().unwrap_or(0) + n;
            }
            Val::Other(Dynamic::from(now))
        }))?;
        Ok(now)
    }

    fn keys(&mut self) -> Array {
        self.0.keys().into_iter().map(Val::dynamic).collect()
    }

    fn values(&mut self) -> Array {
        self.0.values().into_iter().map(Val::dynamic).collect()
    }

    /// Deep-freezes the tree under this dict (all or nothing).
    fn freeze(&mut self) -> RResult<()> {
        rt(gilfree::freeze(&Val::Dict(self.clone())))
    }

    fn describe(&mut self) -> String {
        let items: Vec<String> = self
            .0
            .snapshot()
            .into_iter()
            .map(|(k, v)| format!("{}: {}", k.show(), v.show()))
            .collect();
        format!("#{{{}}}", items.join(", "))
    }
}

/// `for k in d`: the keys (a weakly consistent snapshot of them).
impl IntoIterator for Dict {
    type Item = Dynamic;
    type IntoIter = std::vec::IntoIter<Dynamic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0
            .keys()
            .into_iter()
            .map(Val::dynamic)
            .collect::<Vec<_>>()
            .into_iter()
    }
}

/// `for x in list`: CPython's list iterator (index by index over the list as it is now).
pub struct ListIter {
    list: List,
    next: isize,
}

impl Iterator for ListIter {
    type Item = Dynamic;

    fn next(&mut self) -> Option<Dynamic> {
        let x = self.list.0.get(self.next).ok()?;
        self.next += 1;
        Some(x.dynamic())
    }
}

impl IntoIterator for List {
    type Item = Dynamic;
    type IntoIter = ListIter;

    fn into_iter(self) -> ListIter {
        ListIter {
            list: self,
            next: 0,
        }
    }
}

impl List {
    fn get(&mut self, i: INT) -> RResult<Dynamic> {
        rt(self.0.get(index(i))).map(Val::dynamic)
    }

    fn set(&mut self, i: INT, x: Dynamic) -> RResult<()> {
        rt(self.0.set(index(i), x.into()))
    }

    fn push(&mut self, x: Dynamic) -> RResult<()> {
        rt(self.0.append(x.into()))
    }

    fn pop(&mut self) -> RResult<Dynamic> {
        rt(self.0.pop()).map(Val::dynamic)
    }

    fn insert(&mut self, i: INT, x: Dynamic) -> RResult<()> {
        rt(self.0.insert(index(i), x.into()))
    }

    fn contains(&mut self, x: Dynamic) -> RResult<bool> {
        rt(self.0.contains_in(&RhaiKeys, &Val::from(x)))
    }

    fn index_of(&mut self, x: Dynamic) -> RResult<INT> {
        rt(self.0.index_in(&RhaiKeys, &Val::from(x), 0, isize::MAX)).map(|i| i as INT)
    }

    /// Sorts ints (or strings) ascending; anything else is an error and leaves the list as it was.
    fn sort(&mut self) -> RResult<()> {
        rt(self.0.sort_by(false, |a: &Val, b: &Val| match (a, b) {
            (Val::Other(x), Val::Other(y)) if x.is_int() && y.is_int() => {
                Ok(x.as_int().unwrap_or(0) < y.as_int().unwrap_or(0))
            }
            (Val::Other(x), Val::Other(y)) if x.is_string() && y.is_string() => {
                Ok(string(x) < string(y))
            }
            _ => Err(String::from("sort: only ints or strings")),
        }))
    }

    fn describe(&mut self) -> String {
        let items: Vec<String> = self.0.snapshot().into_iter().map(|x| x.show()).collect();
        format!("[{}]", items.join(", "))
    }
}

/// Registers `Dict` and `List` (types, constructors, indexers, methods, iteration).
pub fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<Dict>("Dict")
        .register_fn("dict", Dict::default)
        .register_indexer_get(Dict::get)
        .register_indexer_set(Dict::set)
        .register_fn("get", Dict::get_or)
        .register_fn("contains", Dict::contains)
        .register_fn("remove", Dict::remove)
        .register_fn("incr", Dict::incr)
        .register_fn("keys", Dict::keys)
        .register_fn("values", Dict::values)
        .register_fn("len", |d: &mut Dict| d.0.len() as INT)
        .register_get("len", |d: &mut Dict| d.0.len() as INT)
        .register_fn("freeze", Dict::freeze)
        .register_get("is_frozen", |d: &mut Dict| d.0.is_frozen())
        .register_get("version", |d: &mut Dict| d.0.version() as INT)
        .register_fn("to_string", Dict::describe)
        .register_fn("to_debug", Dict::describe)
        .register_iterator::<Dict>();
    engine
        .register_type_with_name::<List>("List")
        .register_fn("list", List::default)
        .register_indexer_get(List::get)
        .register_indexer_set(List::set)
        .register_fn("push", List::push)
        .register_fn("pop", List::pop)
        .register_fn("insert", List::insert)
        .register_fn("contains", List::contains)
        .register_fn("index_of", List::index_of)
        .register_fn("sort", List::sort)
        .register_fn("len", |l: &mut List| l.0.len() as INT)
        .register_get("len", |l: &mut List| l.0.len() as INT)
        .register_fn("freeze", |l: &mut List| {
            rt(gilfree::freeze(&Val::List(l.clone())))
        })
        .register_get("is_frozen", |l: &mut List| l.0.is_frozen())
        .register_fn("to_string", List::describe)
        .register_fn("to_debug", List::describe)
        .register_iterator::<List>();
}

/// A rhai engine with the gilfree types registered.
pub fn engine() -> Engine {
    let mut engine = Engine::new();
    register(&mut engine);
    engine
}

/// The configuration tree, built by a script and then frozen.
const CONFIG: &str = r#"
    let config = dict();
    config["name"] = "rhai-demo";
    config["rounds"] = 2000;
    let weights = dict();
    weights["a"] = 1;
    weights["b"] = 2;
    weights['c'] = 3;     // a char key
    config["weights"] = weights;
    config.freeze();
    config
"#;

/// What each thread runs (`me`, `globals` and `config` are in its scope; `shared` is a rhai
/// keyword).
const WORKER: &str = r#"
    let rounds = config["rounds"];
    let w = config["weights"];
    for i in 0..rounds {
        globals.incr("total", 1);
        let k = if i % 2 == 0 { "a" } else { "b" };
        globals.incr("weighted", w[k]);
        if i % 500 == 0 { globals["last_" + me] = i; }
    }
    let errors = 0;
    try { config["rounds"] = 1; } catch (e) { errors += 1; }
    try { w["d"] = 4; } catch (e) { errors += 1; }
    globals.incr("frozen_errors", errors);
    let seen = list();
    for k in globals { seen.push(k); }
    seen.len
"#;

fn main() {
    let engine = Arc::new(engine());
    let config: Dict = engine.eval(CONFIG).expect("config script");
    let shared = Dict::default();
    println!(
        "config {} (frozen: {})",
        config.clone().describe(),
        config.0.is_frozen()
    );

    let threads: INT = 4;
    std::thread::scope(|s| {
        for me in 0..threads {
            let (engine, shared, config) = (Arc::clone(&engine), shared.clone(), config.clone());
            s.spawn(move || {
                let mut scope = Scope::new();
                scope.push_constant("me", me);
                scope.push("globals", shared);
                scope.push("config", config);
                let seen: INT = engine
                    .eval_with_scope(&mut scope, WORKER)
                    .expect("worker script");
                println!("thread {me}: done, saw {seen} keys in the shared dict");
            });
        }
    });

    let mut scope = Scope::new();
    scope.push("globals", shared.clone());
    let report: ImmutableString = engine
        .eval_with_scope(
            &mut scope,
            r#"`total=${globals["total"]} weighted=${globals["weighted"]} frozen_errors=${globals["frozen_errors"]}`"#,
        )
        .expect("report");
    println!("{report}");
    let total = shared.0.get_in(&RhaiKeys, &Val::Other("total".into()));
    assert!(matches!(total, Ok(Some(Val::Other(d))) if d.as_int() == Ok(threads * 2000)));
    println!("shared: {}", shared.clone().describe());

    let unhashable: RResult<Dynamic> = engine.eval(
        r#"
        let d = dict();
        let r = "no error";
        try { d[[1, 2]] = 3; } catch (e) { r = `caught: ${e}`; }
        r
    "#,
    );
    println!("an array as a key: {}", unhashable.expect("script"));
}
