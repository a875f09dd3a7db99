//! A tiny Lisp whose object model is gilfree's traits.
//!
//! - **Values** are handles: `Int`, `Str`, `Sym`, `Nil`, `Bool` are immutable leaves; lists are
//!   `Arc<GilFreeList<Value>>`, dicts `Arc<GilFreeDict<Value, Value>>`, instances of script
//!   classes `Arc<Instance>`. Identity (`is`) is pointer identity of the handle.
//! - **The object model** is [`Vm`]: it implements `KeyModel<Value>`. Hashing and equality are
//!   fallible (`unhashable type: list`, or whatever a script raises) and a class defined in the
//!   script may give its own `:eq` and `:hash` functions, which run script code, may fail, and
//!   may re-enter the very dict being searched. Ints, strings and symbols compare without script
//!   code (`eq_is_pure`), so global lookups stay on gilfree's fast path.
//! - **Module globals** live in one `GilFreeDict` shared by every thread; `(incr! d k n)` is an
//!   atomic read-modify-write (`upsert_in`).
//! - **Constants** (`(const NAME expr)`) are deep-frozen with `gilfree::freeze` before they are
//!   bound: every thread reads them without locks, and any write fails with "cannot modify
//!   frozen dict" (or list). An instance inside a constant makes the freeze fail, and nothing
//!   is frozen.
//!
//! Special forms: `quote` (`'x`), `if`, `define`, `set!`, `let`, `lambda`, `begin`, `while`,
//! `and`, `or`, `try`, `const`, `defclass`. Builtins: see [`Vm::builtin`].

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use gilfree::{EqModel, Error, Freeze, GilFreeDict, GilFreeList, KeyModel, Shape, Slice};

/// A script value (a cheap, clonable handle).
#[derive(Clone)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Str(Arc<str>),
    Sym(Arc<str>),
    List(Arc<GilFreeList<Value>>),
    Dict(Arc<GilFreeDict<Value, Value>>),
    Lambda(Arc<Lambda>),
    Builtin(&'static str),
    Class(Arc<Class>),
    Obj(Arc<Instance>),
}

impl gilfree::Storable for Value {
    type Storage = gilfree::storage::Boxed;
}

/// A user function: parameters, body, and the (immutable) frame it closes over.
pub struct Lambda {
    params: Vec<Arc<str>>,
    body: Vec<Value>,
    env: Env,
}

/// A class defined by `(defclass Name :eq f :hash g)`.
pub struct Class {
    name: Arc<str>,
    eq: Option<Value>,
    hash: Option<Value>,
}

/// An instance: its class and its fields (fixed at `make`).
pub struct Instance {
    class: Arc<Class>,
    fields: Vec<Value>,
}

/// A local scope: immutable bindings and the enclosing scope.
#[derive(Clone, Default)]
pub struct Env(Option<Arc<Frame>>);

struct Frame {
    names: Vec<Arc<str>>,
    values: Vec<Value>,
    parent: Env,
}

impl Env {
    fn lookup(&self, name: &str) -> Option<Value> {
        let mut at = self.0.as_ref();
        while let Some(f) = at {
            if let Some(i) = f.names.iter().rposition(|n| &**n == name) {
                return Some(f.values[i].clone());
            }
            at = f.parent.0.as_ref();
        }
        None
    }

    fn extend(&self, names: Vec<Arc<str>>, values: Vec<Value>) -> Env {
        Env(Some(Arc::new(Frame {
            names,
            values,
            parent: self.clone(),
        })))
    }
}

/// A script exception (its message).
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptError(pub String);

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

type R<T = Value> = Result<T, ScriptError>;

fn err<T>(msg: impl Into<String>) -> R<T> {
    Err(ScriptError(msg.into()))
}

/// gilfree's errors surface to scripts with their (CPython-style) messages.
fn lib<T, E: fmt::Display>(r: Result<T, Error<E>>) -> R<T> {
    r.map_err(|e| ScriptError(e.to_string()))
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(s.into())
    }

    fn sym(s: &str) -> Value {
        Value::Sym(s.into())
    }

    fn truthy(&self) -> bool {
        !matches!(self, Value::Nil | Value::Bool(false))
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Str(_) => "str",
            Value::Sym(_) => "symbol",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Lambda(_) | Value::Builtin(_) => "function",
            Value::Class(_) => "class",
            Value::Obj(_) => "instance",
        }
    }

    /// Whether comparing two such values runs no script code.
    fn is_plain(&self) -> bool {
        matches!(
            self,
            Value::Nil | Value::Bool(_) | Value::Int(_) | Value::Str(_) | Value::Sym(_)
        )
    }

    fn addr(&self) -> Option<usize> {
        Some(match self {
            Value::Str(s) => Arc::as_ptr(s) as *const u8 as usize,
            Value::List(l) => Arc::as_ptr(l) as usize,
            Value::Dict(d) => Arc::as_ptr(d) as usize,
            Value::Lambda(l) => Arc::as_ptr(l) as usize,
            Value::Class(c) => Arc::as_ptr(c) as usize,
            Value::Obj(o) => Arc::as_ptr(o) as usize,
            _ => return None,
        })
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Sym(s) => f.write_str(s),
            Value::List(l) => {
                f.write_str("(")?;
                for (i, x) in l.snapshot().iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str(")")
            }
            Value::Dict(d) => {
                f.write_str("{")?;
                for (i, (k, v)) in d.snapshot().iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
            Value::Lambda(_) => f.write_str("<lambda>"),
            Value::Builtin(name) => write!(f, "<builtin {name}>"),
            Value::Class(c) => write!(f, "<class {}>", c.name),
            Value::Obj(o) => {
                write!(f, "<{}", o.class.name)?;
                for x in &o.fields {
                    write!(f, " {x}")?;
                }
                f.write_str(">")
            }
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Tree-freeze: leaves are immutable values; dicts and lists are containers; instances
/// cannot be frozen.
impl Freeze for Value {
    fn shape(&self) -> Shape<'_, Value> {
        match self {
            Value::Dict(d) => Shape::Container(&**d),
            Value::List(l) => Shape::Container(&**l),
            Value::Obj(_) => Shape::Unfreezable("instance"),
            _ => Shape::Leaf,
        }
    }

    fn repr(&self) -> String {
        self.to_string()
    }
}

/// The interpreter of one thread: the shared globals and a recursion budget.
pub struct Vm {
    pub globals: Arc<GilFreeDict<Value, Value>>,
    depth: std::cell::Cell<usize>,
}

/// Deepest nesting of calls (script `:eq` calling into dicts included).
const MAX_DEPTH: usize = 2_000;

impl EqModel<Value> for Vm {
    type Error = ScriptError;

    fn eq(&self, a: &Value, b: &Value) -> R<bool> {
        self.equal(a, b)
    }

    fn identical(&self, a: &Value, b: &Value) -> bool {
        matches!((a.addr(), b.addr()), (Some(x), Some(y)) if x == y)
    }

    fn eq_is_pure(&self, a: &Value, b: &Value) -> bool {
        a.is_plain() && b.is_plain()
    }
}

impl KeyModel<Value> for Vm {
    fn hash(&self, v: &Value) -> R<u64> {
        let h = foldhash::fast::FixedState::with_seed(0x5eed);
        Ok(match v {
            Value::Nil => 0,
            Value::Bool(b) => *b as u64 + 1,
            Value::Int(n) => *n as u64,
            Value::Str(s) | Value::Sym(s) => h.hash_one(&**s),
            Value::Obj(o) => match &o.class.hash {
                Some(f) => match self.apply(f, vec![v.clone()])? {
                    Value::Int(n) => n as u64,
                    other => return err(format!("__hash__ returned {}", other.type_name())),
                },
                None if o.class.eq.is_some() => {
                    return err(format!("unhashable type: {}", o.class.name))
                }
                None => Arc::as_ptr(o) as usize as u64,
            },
            Value::List(_) | Value::Dict(_) => {
                return err(format!("unhashable type: {}", v.type_name()))
            }
            other => other.addr().unwrap_or(0) as u64,
        })
    }
}

impl Vm {
    /// A thread's interpreter over the shared `globals`, with the builtins bound in them.
    pub fn new(globals: Arc<GilFreeDict<Value, Value>>) -> Vm {
        let vm = Vm {
            globals,
            depth: std::cell::Cell::new(0),
        };
        for name in BUILTINS {
            // Builtins are plain symbols: the insert cannot fail but if the globals are frozen.
            let _ = vm
                .globals
                .setdefault_in(&vm, Value::sym(name), Value::Builtin(name));
        }
        vm
    }

    /// `a == b` in the script's sense: by value for plain values, elementwise for lists and
    /// dicts, through the class's `:eq` for instances (script code), identity otherwise.
    pub fn equal(&self, a: &Value, b: &Value) -> R<bool> {
        if self.identical(a, b) {
            return Ok(true);
        }
        Ok(match (a, b) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Str(x), Value::Str(y)) | (Value::Sym(x), Value::Sym(y)) => x == y,
            (Value::List(x), Value::List(y)) => lib(x.eq_in(self, y))?,
            (Value::Dict(x), Value::Dict(y)) => lib(x.eq_in(self, y, |v, w| self.equal(v, w)))?,
            (Value::Obj(x), _) if x.class.eq.is_some() => {
                let f = x.class.eq.clone().unwrap_or(Value::Nil);
                self.apply(&f, vec![a.clone(), b.clone()])?.truthy()
            }
            _ => false,
        })
    }

    /// Parses and runs `src` at top level; returns the last value.
    pub fn run(&self, src: &str) -> R {
        let mut last = Value::Nil;
        for form in parse(src)? {
            last = self.eval(&form, &Env::default())?;
        }
        Ok(last)
    }

    fn global(&self, name: &Arc<str>) -> R {
        let key = Value::Sym(name.clone());
        match lib(self.globals.get_in(self, &key))? {
            Some(v) => Ok(v),
            None => err(format!("name '{name}' is not defined")),
        }
    }

    pub fn eval(&self, x: &Value, env: &Env) -> R {
        match x {
            Value::Sym(name) => match &**name {
                "nil" => Ok(Value::Nil),
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => env.lookup(name).map_or_else(|| self.global(name), Ok),
            },
            Value::List(form) => {
                let items = form.snapshot();
                let Some(head) = items.first() else {
                    return Ok(x.clone());
                };
                if let Value::Sym(s) = head {
                    if let Some(r) = self.special(s, &items[1..], env) {
                        return r;
                    }
                }
                let f = self.eval(head, env)?;
                let args = items[1..]
                    .iter()
                    .map(|a| self.eval(a, env))
                    .collect::<R<Vec<_>>>()?;
                self.apply(&f, args)
            }
            other => Ok(other.clone()),
        }
    }

    fn body(&self, forms: &[Value], env: &Env) -> R {
        let mut last = Value::Nil;
        for f in forms {
            last = self.eval(f, env)?;
        }
        Ok(last)
    }

    /// Special forms; `None` if `name` is not one.
    fn special(&self, name: &str, args: &[Value], env: &Env) -> Option<R> {
        let sym = |i: usize| -> R<Arc<str>> {
            match args.get(i) {
                Some(Value::Sym(s)) => Ok(s.clone()),
                _ => err(format!("{name}: expected a name")),
            }
        };
        let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::Nil);
        Some(match name {
            "quote" => Ok(arg(0)),
            "if" => self
                .eval(&arg(0), env)
                .and_then(|c| self.eval(&if c.truthy() { arg(1) } else { arg(2) }, env)),
            "begin" => self.body(args, env),
            "and" => {
                let mut last = Value::Bool(true);
                for a in args {
                    match self.eval(a, env) {
                        Ok(v) if !v.truthy() => return Some(Ok(v)),
                        Ok(v) => last = v,
                        Err(e) => return Some(Err(e)),
                    }
                }
                Ok(last)
            }
            "or" => {
                for a in args {
                    match self.eval(a, env) {
                        Ok(v) if v.truthy() => return Some(Ok(v)),
                        Ok(_) => {}
                        Err(e) => return Some(Err(e)),
                    }
                }
                Ok(Value::Bool(false))
            }
            "while" => (|| {
                while self.eval(&arg(0), env)?.truthy() {
                    self.body(&args[1..], env)?;
                }
                Ok(Value::Nil)
            })(),
            // `(define name expr)`, `(set! name expr)`: module globals, shared by all threads.
            "define" | "set!" => (|| {
                let v = self.eval(&arg(1), env)?;
                lib(self.globals.insert_in(self, Value::Sym(sym(0)?), v.clone()))?;
                Ok(v)
            })(),
            // `(const NAME expr)`: deep-frozen, then bound.
            "const" => (|| {
                let v = self.eval(&arg(1), env)?;
                lib(gilfree::freeze(&v))?;
                lib(self.globals.insert_in(self, Value::Sym(sym(0)?), v.clone()))?;
                Ok(v)
            })(),
            "let" => (|| {
                let Value::List(bindings) = arg(0) else {
                    return err("let: expected ((name value) ...)");
                };
                let (mut names, mut values) = (Vec::new(), Vec::new());
                for b in bindings.snapshot() {
                    let pair = match b {
                        Value::List(p) if p.len() == 2 => p.snapshot(),
                        _ => return err("let: expected (name value)"),
                    };
                    let Value::Sym(n) = &pair[0] else {
                        return err("let: expected a name");
                    };
                    names.push(n.clone());
                    values.push(self.eval(&pair[1], env)?);
                }
                self.body(&args[1..], &env.extend(names, values))
            })(),
            "lambda" => (|| {
                let Value::List(ps) = arg(0) else {
                    return err("lambda: expected (params)");
                };
                let params = ps
                    .snapshot()
                    .into_iter()
                    .map(|p| match p {
                        Value::Sym(s) => Ok(s),
                        _ => err("lambda: parameters must be names"),
                    })
                    .collect::<R<Vec<_>>>()?;
                Ok(Value::Lambda(Arc::new(Lambda {
                    params,
                    body: args[1..].to_vec(),
                    env: env.clone(),
                })))
            })(),
            // `(try expr handler)`: runs `(handler message)` if `expr` raises.
            "try" => match self.eval(&arg(0), env) {
                Ok(v) => Ok(v),
                Err(ScriptError(msg)) => self
                    .eval(&arg(1), env)
                    .and_then(|h| self.apply(&h, vec![Value::str(&msg)])),
            },
            // `(defclass Name :eq f :hash g)`
            "defclass" => (|| {
                let name = sym(0)?;
                let (mut eq, mut hash) = (None, None);
                for pair in args[1..].chunks(2) {
                    let v = self.eval(pair.get(1).unwrap_or(&Value::Nil), env)?;
                    match &pair[0] {
                        Value::Sym(k) if &**k == ":eq" => eq = Some(v),
                        Value::Sym(k) if &**k == ":hash" => hash = Some(v),
                        other => return err(format!("defclass: unknown option {other}")),
                    }
                }
                let class = Value::Class(Arc::new(Class {
                    name: name.clone(),
                    eq,
                    hash,
                }));
                lib(self
                    .globals
                    .insert_in(self, Value::Sym(name), class.clone()))?;
                Ok(class)
            })(),
            _ => return None,
        })
    }

    /// Calls a function value.
    pub fn apply(&self, f: &Value, args: Vec<Value>) -> R {
        let depth = self.depth.get();
        if depth >= MAX_DEPTH {
            return err("maximum recursion depth exceeded");
        }
        self.depth.set(depth + 1);
        let r = match f {
            Value::Lambda(l) => {
                if l.params.len() != args.len() {
                    err(format!(
                        "expected {} arguments, got {}",
                        l.params.len(),
                        args.len()
                    ))
                } else {
                    self.body(&l.body, &l.env.extend(l.params.clone(), args))
                }
            }
            Value::Builtin(name) => self.builtin(name, args),
            other => err(format!("'{}' object is not callable", other.type_name())),
        };
        self.depth.set(depth);
        r
    }

    fn builtin(&self, name: &str, a: Vec<Value>) -> R {
        let int = |i: usize| -> R<i64> {
            match a.get(i) {
                Some(Value::Int(n)) => Ok(*n),
                Some(v) => err(format!("{name}: expected int, got {}", v.type_name())),
                None => err(format!("{name}: missing argument")),
            }
        };
        let arg = |i: usize| -> R<&Value> {
            a.get(i)
                .ok_or_else(|| ScriptError(format!("{name}: missing argument")))
        };
        let list = |i: usize| -> R<Arc<GilFreeList<Value>>> {
            match arg(i)? {
                Value::List(l) => Ok(l.clone()),
                v => err(format!("{name}: expected list, got {}", v.type_name())),
            }
        };
        let dict = |i: usize| -> R<Arc<GilFreeDict<Value, Value>>> {
            match arg(i)? {
                Value::Dict(d) => Ok(d.clone()),
                v => err(format!("{name}: expected dict, got {}", v.type_name())),
            }
        };
        let fold = |f: fn(i64, i64) -> Option<i64>| -> R {
            let mut acc = int(0)?;
            for i in 1..a.len() {
                acc = f(acc, int(i)?).ok_or_else(|| ScriptError(format!("{name}: overflow")))?;
            }
            Ok(Value::Int(acc))
        };
        match name {
            "+" => fold(i64::checked_add),
            "-" if a.len() == 1 => Ok(Value::Int(-int(0)?)),
            "-" => fold(i64::checked_sub),
            "*" => fold(i64::checked_mul),
            "/" | "%" => {
                let (x, y) = (int(0)?, int(1)?);
                if y == 0 {
                    return err("division by zero");
                }
                Ok(Value::Int(if name == "/" {
                    x.div_euclid(y)
                } else {
                    x.rem_euclid(y)
                }))
            }
            "<" => Ok(Value::Bool(int(0)? < int(1)?)),
            ">" => Ok(Value::Bool(int(0)? > int(1)?)),
            "=" => Ok(Value::Bool(self.equal(arg(0)?, arg(1)?)?)),
            "not" => Ok(Value::Bool(!arg(0)?.truthy())),
            "list" => Ok(Value::List(Arc::new(GilFreeList::from_vec(a)))),
            "dict" => {
                let d = GilFreeDict::new();
                for kv in a.chunks(2) {
                    let v = kv.get(1).cloned().unwrap_or(Value::Nil);
                    lib(d.insert_in(self, kv[0].clone(), v))?;
                }
                Ok(Value::Dict(Arc::new(d)))
            }
            "len" => Ok(Value::Int(match arg(0)? {
                Value::List(l) => l.len(),
                Value::Dict(d) => d.len(),
                Value::Str(s) => s.chars().count(),
                v => return err(format!("len: {} has no length", v.type_name())),
            } as i64)),
            // `(get container key [default])`
            "get" => match arg(0)? {
                Value::Dict(d) => Ok(lib(d.get_in(self, arg(1)?))?
                    .unwrap_or_else(|| a.get(2).cloned().unwrap_or(Value::Nil))),
                Value::List(l) => lib(l.get(int(1)? as isize)),
                v => err(format!("get: {} is not subscriptable", v.type_name())),
            },
            "has?" => Ok(Value::Bool(lib(dict(0)?.contains_key_in(self, arg(1)?))?)),
            // `(put! container key value)`
            "put!" => match arg(0)? {
                Value::Dict(d) => {
                    lib(d.insert_in(self, arg(1)?.clone(), arg(2)?.clone())).map(|_| Value::Nil)
                }
                Value::List(l) => lib(l.set(int(1)? as isize, arg(2)?.clone())).map(|_| Value::Nil),
                v => err(format!(
                    "put!: {} does not support item assignment",
                    v.type_name()
                )),
            },
            "del!" => lib(dict(0)?.remove_in(self, arg(1)?)).map(|v| v.unwrap_or(Value::Nil)),
            // `(incr! dict key n)`: atomic `dict[key] += n` (0 when missing).
            "incr!" => {
                let n = int(2)?;
                let mut bad = None;
                lib(dict(0)?.upsert_in(self, arg(1)?.clone(), |old| match old {
                    None => Value::Int(n),
                    Some(Value::Int(x)) => Value::Int(x.wrapping_add(n)),
                    Some(other) => {
                        bad = Some(other.type_name());
                        other.clone()
                    }
                }))?;
                match bad {
                    Some(t) => err(format!("incr!: value is {t}, not int")),
                    None => Ok(Value::Nil),
                }
            }
            "keys" => Ok(Value::List(Arc::new(GilFreeList::from_vec(
                dict(0)?.keys(),
            )))),
            "append!" => lib(list(0)?.append(arg(1)?.clone())).map(|_| Value::Nil),
            "pop!" => lib(list(0)?.pop()),
            "slice" => {
                let items =
                    lib(list(0)?.get_slice(Slice::range(int(1)? as isize, int(2)? as isize)))?;
                Ok(Value::List(Arc::new(GilFreeList::from_vec(items))))
            }
            "index" => {
                lib(list(0)?.index_in(self, arg(1)?, 0, isize::MAX)).map(|i| Value::Int(i as i64))
            }
            "remove!" => lib(list(0)?.remove_in(self, arg(1)?)).map(|_| Value::Nil),
            // `(sort! list [less])`: a script `<`, or ints.
            "sort!" => {
                let l = list(0)?;
                match a.get(1) {
                    Some(less) => lib(l.sort_by(false, |x, y| {
                        Ok::<bool, ScriptError>(
                            self.apply(less, vec![x.clone(), y.clone()])?.truthy(),
                        )
                    })),
                    None => lib(l.sort_by(false, |x, y| match (x, y) {
                        (Value::Int(x), Value::Int(y)) => Ok(x < y),
                        _ => err("sort!: cannot compare non-ints without a function"),
                    })),
                }
                .map(|_| Value::Nil)
            }
            "make" => match arg(0)? {
                Value::Class(c) => Ok(Value::Obj(Arc::new(Instance {
                    class: c.clone(),
                    fields: a[1..].to_vec(),
                }))),
                v => err(format!("make: {} is not a class", v.type_name())),
            },
            "field" => match arg(0)? {
                Value::Obj(o) => o
                    .fields
                    .get(int(1)? as usize)
                    .cloned()
                    .ok_or_else(|| ScriptError("field index out of range".into())),
                v => err(format!("field: {} has no fields", v.type_name())),
            },
            "is" => Ok(Value::Bool(self.identical(arg(0)?, arg(1)?))),
            "freeze" => {
                lib(gilfree::freeze(arg(0)?)).map(|_| arg(0).cloned().unwrap_or(Value::Nil))
            }
            "frozen?" => Ok(Value::Bool(match arg(0)? {
                Value::Dict(d) => d.is_frozen(),
                Value::List(l) => l.is_frozen(),
                _ => true,
            })),
            "str" => Ok(Value::str(
                &a.iter()
                    .map(|v| match v {
                        Value::Str(s) => s.to_string(),
                        v => v.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(""),
            )),
            "error" => err(match arg(0)? {
                Value::Str(s) => s.to_string(),
                v => v.to_string(),
            }),
            "print" => {
                let line: Vec<String> = a
                    .iter()
                    .map(|v| match v {
                        Value::Str(s) => s.to_string(),
                        v => v.to_string(),
                    })
                    .collect();
                println!("{}", line.join(" "));
                Ok(Value::Nil)
            }
            _ => err(format!("unknown builtin {name}")),
        }
    }
}

/// Every builtin function's name.
const BUILTINS: &[&str] = &[
    "+", "-", "*", "/", "%", "<", ">", "=", "not", "list", "dict", "len", "get", "has?", "put!",
    "del!", "incr!", "keys", "append!", "pop!", "slice", "index", "remove!", "sort!", "make",
    "field", "is", "freeze", "frozen?", "str", "error", "print",
];

/// Reads every form of `src`. Lists become `GilFreeList`s: code is data.
pub fn parse(src: &str) -> R<Vec<Value>> {
    let mut tokens = Vec::new();
    let mut chars = src.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            ';' => while chars.next().is_some_and(|c| c != '\n') {},
            '(' | ')' | '\'' => {
                chars.next();
                tokens.push(c.to_string());
            }
            '"' => {
                chars.next();
                let mut s = String::from("\"");
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => {
                            s.extend(chars.next().map(|c| if c == 'n' { '\n' } else { c }))
                        }
                        Some(c) => s.push(c),
                        None => return err("unterminated string"),
                    }
                }
                tokens.push(s);
            }
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "()'\";".contains(c) {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                tokens.push(s);
            }
        }
    }
    let mut pos = 0;
    let mut forms = Vec::new();
    while pos < tokens.len() {
        forms.push(read(&tokens, &mut pos)?);
    }
    Ok(forms)
}

fn read(tokens: &[String], pos: &mut usize) -> R {
    let Some(tok) = tokens.get(*pos) else {
        return err("unexpected end of input");
    };
    *pos += 1;
    match tok.as_str() {
        "(" => {
            let mut items = Vec::new();
            loop {
                match tokens.get(*pos).map(String::as_str) {
                    Some(")") => {
                        *pos += 1;
                        return Ok(Value::List(Arc::new(GilFreeList::from_vec(items))));
                    }
                    Some(_) => items.push(read(tokens, pos)?),
                    None => return err("missing )"),
                }
            }
        }
        ")" => err("unexpected )"),
        "'" => Ok(Value::List(Arc::new(GilFreeList::from_vec(vec![
            Value::sym("quote"),
            read(tokens, pos)?,
        ])))),
        t if t.starts_with('"') => Ok(Value::str(&t[1..])),
        t => Ok(t.parse::<i64>().map_or_else(|_| Value::sym(t), Value::Int)),
    }
}
