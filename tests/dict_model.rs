//! Model-based property tests of both dicts against `indexmap::IndexMap` (shift semantics).
//!
//! Every property runs random operation sequences over a small key space (0..32), so
//! overwrites, removals and re-insertions are frequent, with the default hasher and with a
//! colliding hasher (`hash = key % 4`) that makes long probe chains. After every operation the
//! dict must match the model exactly: contents, order (`keys`, `values`, `items`, `snapshot`,
//! `iter`, `iter().rev()`, mixed double-ended iteration), `len`, and the version tag (changes on
//! every mutation, not on reads).
//!
//! The fallible property drives the `*_in` methods with a [`Vm`] whose hash/eq fail at random
//! points: an operation that got a callback error must return `Error::Callback`, leave the dict
//! unchanged, and leave it matching the model.
//!
//! Cases per property: env `GILFREE_PROPTEST_CASES` (default 1000).

mod common;

use common::{seen, HashFn, ModBuild, Obj, ObjModel, PlainDict, ScriptError, Seen, TestDict, Vm};
use gilfree::{DefaultHashBuilder, Error, GilFreeDict, LockedDict};
use indexmap::IndexMap;
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Keys are drawn from `0..KEYS`.
const KEYS: u64 = 32;

fn config() -> Config {
    Config {
        cases: common::proptest_cases(1000),
        // Do not write regression files into the source tree; a failure prints its seed and
        // the shrunk input.
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Plain keys
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// `true`: through `insert_ref`.
    Insert(u64, u64, bool),
    Get(u64),
    GetWith(u64),
    Contains(u64),
    Remove(u64),
    RemoveEntry(u64),
    PopOr(u64, u64),
    PopItem,
    SetDefault(u64, u64),
    /// `Mapping::upsert_in`: read-modify-write, returns the previous value.
    UpdateIn(u64, u64),
    /// Plain `update`.
    Update(u64, u64),
    /// Python's `d.upsert(pairs)`.
    Extend(Vec<(u64, u64)>),
    /// Keep the entries with `(k + v) % m != r`.
    Retain(u64, u64),
    Clear,
    /// Copy, compare, then mutate the copy with an insert of (k, v) and check independence.
    Copy(u64, u64),
    /// `d | other` (d unchanged).
    Union(Vec<(u64, u64)>),
    /// `d |= other`.
    UpdateFrom(Vec<(u64, u64)>),
    FromKeys(Vec<u64>, u64),
    /// Every iteration form, including mixed front/back steps given by the bits.
    Iterate(u64),
    /// `iter_checked` without mutation: every entry, all `Ok`.
    Checked,
}

fn key() -> impl Strategy<Value = u64> {
    0..KEYS
}

fn val() -> impl Strategy<Value = u64> {
    0..1000u64
}

fn pairs() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((key(), val()), 0..8)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (key(), val(), any::<bool>()).prop_map(|(k, v, r)| Op::Insert(k, v, r)),
        4 => key().prop_map(Op::Get),
        2 => key().prop_map(Op::GetWith),
        3 => key().prop_map(Op::Contains),
        6 => key().prop_map(Op::Remove),
        2 => key().prop_map(Op::RemoveEntry),
        2 => (key(), val()).prop_map(|(k, v)| Op::PopOr(k, v)),
        3 => Just(Op::PopItem),
        3 => (key(), val()).prop_map(|(k, v)| Op::SetDefault(k, v)),
        2 => (key(), val()).prop_map(|(k, v)| Op::UpdateIn(k, v)),
        2 => (key(), val()).prop_map(|(k, v)| Op::Update(k, v)),
        2 => pairs().prop_map(Op::Extend),
        1 => (2..5u64).prop_flat_map(|m| (Just(m), 0..m)).prop_map(|(m, r)| Op::Retain(m, r)),
        1 => Just(Op::Clear),
        1 => (key(), val()).prop_map(|(k, v)| Op::Copy(k, v)),
        1 => pairs().prop_map(Op::Union),
        1 => pairs().prop_map(Op::UpdateFrom),
        1 => (prop::collection::vec(key(), 0..8), val()).prop_map(|(ks, v)| Op::FromKeys(ks, v)),
        2 => any::<u64>().prop_map(Op::Iterate),
        1 => Just(Op::Checked),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..64)
}

type Model = IndexMap<u64, u64>;

/// What an operation did to the version tag's obligations.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Effect {
    /// A pure read: the version must not change.
    Read,
    /// A mutation: the version must change.
    Mutated,
    /// A write that changed nothing (remove of an absent key, ...): no obligation.
    NoOp,
}

fn new_of<D: PlainDict<u64, u64>>() -> D
where
    D::Hasher: Default,
{
    D::make(Default::default())
}

fn from_pairs<D: PlainDict<u64, u64>>(pairs: &[(u64, u64)]) -> D
where
    D::Hasher: Default,
{
    let d: D = new_of();
    d.extend(pairs.iter().copied()).unwrap();
    d
}

/// Asserts that `d` matches `model` in every observable way.
fn check_state<D: PlainDict<u64, u64>>(d: &D, model: &Model, ctx: &str) {
    let want: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    let want_keys: Vec<u64> = model.keys().copied().collect();
    let want_values: Vec<u64> = model.values().copied().collect();
    let want_rev: Vec<(u64, u64)> = want.iter().rev().copied().collect();
    assert_eq!(d.len(), model.len(), "{ctx}: len");
    assert_eq!(d.is_empty(), model.is_empty(), "{ctx}: is_empty");
    assert_eq!(d.keys(), want_keys, "{ctx}: keys()");
    assert_eq!(d.values(), want_values, "{ctx}: values()");
    assert_eq!(d.items(), want, "{ctx}: items()");
    assert_eq!(d.snapshot(), want, "{ctx}: snapshot()");
    assert_eq!(d.iter().collect::<Vec<_>>(), want, "{ctx}: iter()");
    assert_eq!(
        d.iter().rev().collect::<Vec<_>>(),
        want_rev,
        "{ctx}: iter().rev()"
    );
    // Borrowed reads (`pin()` / `get_with` + `with_lock`).
    let probe: Vec<u64> = (0..KEYS).collect();
    let (mut got, mut entries) = (Vec::new(), Vec::new());
    d.borrowed_reads(
        &probe,
        &mut |k, v| got.push((*k, v.copied())),
        &mut |k, v| entries.push((*k, *v)),
    );
    let want_got: Vec<(u64, Option<u64>)> =
        probe.iter().map(|k| (*k, model.get(k).copied())).collect();
    assert_eq!(got, want_got, "{ctx}: borrowed gets");
    assert_eq!(entries, want, "{ctx}: borrowed iteration");
}

/// Applies `op` to the dict and the model, checking the operation's result; returns what it
/// must have done to the version.
fn apply<D: PlainDict<u64, u64>>(d: &D, model: &mut Model, op: &Op) -> Effect
where
    D::Hasher: Default,
{
    let m = d.plain();
    match *op {
        Op::Insert(k, v, by_ref) => {
            let got = if by_ref {
                d.insert_ref(&k, v)
            } else {
                d.insert(k, v)
            };
            assert_eq!(got.unwrap(), model.insert(k, v), "insert result");
            Effect::Mutated
        }
        Op::Get(k) => {
            assert_eq!(d.get(&k), model.get(&k).copied(), "get");
            assert_eq!(d.get_in(&m, &k).unwrap(), model.get(&k).copied(), "get_in");
            Effect::Read
        }
        Op::GetWith(k) => {
            let got = d.get_with(&k, |v| *v * 2 + 1);
            assert_eq!(got, model.get(&k).map(|v| v * 2 + 1), "get_with");
            let got = d.get_with_in(&m, &k, |v| *v).unwrap();
            assert_eq!(got, model.get(&k).copied(), "get_with_in");
            Effect::Read
        }
        Op::Contains(k) => {
            assert_eq!(d.contains_key(&k), model.contains_key(&k), "contains_key");
            assert_eq!(
                d.contains_key_in(&m, &k).unwrap(),
                model.contains_key(&k),
                "contains_key_in"
            );
            Effect::Read
        }
        Op::Remove(k) => {
            let want = model.shift_remove(&k);
            assert_eq!(d.remove(&k).unwrap(), want, "remove");
            if want.is_some() {
                Effect::Mutated
            } else {
                Effect::NoOp
            }
        }
        Op::RemoveEntry(k) => {
            let want = model.shift_remove_entry(&k);
            assert_eq!(d.remove_entry(&k).unwrap(), want, "remove_entry");
            if want.is_some() {
                Effect::Mutated
            } else {
                Effect::NoOp
            }
        }
        Op::PopOr(k, default) => {
            let want = model.shift_remove(&k);
            assert_eq!(
                d.pop_or(&k, default).unwrap(),
                want.unwrap_or(default),
                "pop_or"
            );
            if want.is_some() {
                Effect::Mutated
            } else {
                Effect::NoOp
            }
        }
        Op::PopItem => {
            let want = model.pop();
            assert_eq!(d.popitem().unwrap(), want, "popitem");
            if want.is_some() {
                Effect::Mutated
            } else {
                Effect::NoOp
            }
        }
        Op::SetDefault(k, v) => {
            let present = model.contains_key(&k);
            let want = *model.entry(k).or_insert(v);
            assert_eq!(d.setdefault(k, v).unwrap(), want, "setdefault");
            if present {
                Effect::NoOp
            } else {
                Effect::Mutated
            }
        }
        Op::UpdateIn(k, delta) => {
            let prev = model.get(&k).copied();
            let mut seen = None;
            let got = d
                .upsert_in(&m, k, |old| {
                    seen = Some(old.copied());
                    old.map_or(delta, |o| o.wrapping_add(delta) % 1000)
                })
                .unwrap();
            assert_eq!(
                seen,
                Some(prev),
                "upsert_in: closure saw the current value, once"
            );
            assert_eq!(got, prev, "upsert_in: previous value");
            model.insert(k, prev.map_or(delta, |o| o.wrapping_add(delta) % 1000));
            Effect::Mutated
        }
        Op::Update(k, delta) => {
            let prev = model.get(&k).copied();
            let mut calls = 0;
            d.upsert(k, |old| {
                calls += 1;
                assert_eq!(old.copied(), prev, "update: closure saw the current value");
                old.map_or(delta, |o| o * 3 % 1000)
            })
            .unwrap();
            assert_eq!(calls, 1, "update: closure called once");
            model.insert(k, prev.map_or(delta, |o| o * 3 % 1000));
            Effect::Mutated
        }
        Op::Extend(ref pairs) => {
            d.extend(pairs.iter().copied()).unwrap();
            model.extend(pairs.iter().copied());
            if pairs.is_empty() {
                Effect::NoOp
            } else {
                Effect::Mutated
            }
        }
        Op::Retain(md, r) => {
            let before = model.len();
            let mut visited = Vec::new();
            d.retain(|k, v| {
                visited.push((*k, *v));
                (k + v) % md != r
            })
            .unwrap();
            let want_visited: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
            assert_eq!(
                visited, want_visited,
                "retain visits every entry once, in order"
            );
            model.retain(|k, v| (*k + *v) % md != r);
            if model.len() != before {
                Effect::Mutated
            } else {
                Effect::NoOp
            }
        }
        Op::Clear => {
            d.clear().unwrap();
            let was_empty = model.is_empty();
            model.clear();
            if was_empty {
                Effect::NoOp
            } else {
                Effect::Mutated
            }
        }
        Op::Copy(k, v) => {
            let c = d.copy();
            check_state(&c, model, "copy");
            assert!(c.dict_eq(d) && d.dict_eq(&c), "copy == original");
            // Equality is order-insensitive.
            let pairs: Vec<(u64, u64)> = model.iter().rev().map(|(k, v)| (*k, *v)).collect();
            let reversed: D = from_pairs(&pairs);
            assert!(
                reversed.dict_eq(d) && d.dict_eq(&reversed),
                "order-insensitive =="
            );
            // The copy is independent of the original.
            let cv = c.version();
            let mut cm = model.clone();
            assert_eq!(c.insert(k, v + 1000).unwrap(), cm.insert(k, v + 1000));
            assert_ne!(c.version(), cv, "copy: version changes on insert");
            check_state(&c, &cm, "mutated copy");
            assert!(!c.dict_eq(d) && !d.dict_eq(&c), "mutated copy != original");
            Effect::Read
        }
        Op::Union(ref pairs) => {
            let other: D = from_pairs(pairs);
            let u = d.union(&other);
            let mut want = model.clone();
            want.extend(pairs.iter().copied());
            check_state(&u, &want, "union");
            Effect::Read
        }
        Op::UpdateFrom(ref pairs) => {
            let other: D = from_pairs(pairs);
            d.update_from(&other).unwrap();
            // `other` is a dict: duplicates in `pairs` collapse first, keeping the first position
            // and the last value.
            let mut om = Model::new();
            om.extend(pairs.iter().copied());
            model.extend(om);
            if pairs.is_empty() {
                Effect::NoOp
            } else {
                Effect::Mutated
            }
        }
        Op::FromKeys(ref keys, v) => {
            let f: D = D::fromkeys(keys.iter().copied(), v);
            let mut want = Model::new();
            want.extend(keys.iter().map(|k| (*k, v)));
            check_state(&f, &want, "fromkeys");
            Effect::Read
        }
        Op::Iterate(bits) => {
            // Mixed double-ended iteration: bit i says whether step i takes from the back.
            let want: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
            let (mut lo, mut hi) = (0, want.len());
            let mut it = d.iter();
            for step in 0.. {
                let back = step < 64 && bits >> step & 1 == 1;
                let got = if back { it.next_back() } else { it.next() };
                if lo == hi {
                    assert_eq!(got, None, "mixed iteration: exhausted");
                    break;
                }
                let want_item = if back {
                    hi -= 1;
                    want[hi]
                } else {
                    lo += 1;
                    want[lo - 1]
                };
                assert_eq!(got, Some(want_item), "mixed iteration step {step}");
            }
            assert_eq!(it.next(), None, "fused after exhaustion");
            assert_eq!(it.next_back(), None, "fused after exhaustion (back)");
            Effect::Read
        }
        Op::Checked => {
            let got: Vec<(u64, u64)> = d.iter_checked().map(|r| r.unwrap()).collect();
            let want: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
            assert_eq!(got, want, "iter_checked");
            Effect::Read
        }
    }
}

fn run_plain<D: PlainDict<u64, u64>>(ops: &[Op]) -> Result<(), TestCaseError>
where
    D::Hasher: Default,
{
    let d: D = new_of();
    let mut model = Model::new();
    for (i, op) in ops.iter().enumerate() {
        let v0 = d.version();
        let effect = apply(&d, &mut model, op);
        let v1 = d.version();
        let ctx = format!("{} op #{i} {op:?}", D::NAME);
        match effect {
            Effect::Read => prop_assert_eq!(v0, v1, "{}: a read changed the version", ctx),
            Effect::Mutated => prop_assert_ne!(v0, v1, "{}: a mutation kept the version", ctx),
            Effect::NoOp => {}
        }
        check_state(&d, &model, &ctx);
    }
    Ok(())
}

/// A dict with a colliding hasher: every key hashes to `key % 4`.
type Collide = ModBuild<4>;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn locked_matches_indexmap(ops in ops()) {
        run_plain::<LockedDict<u64, u64, DefaultHashBuilder>>(&ops)?;
    }

    #[test]
    fn gilfree_matches_indexmap(ops in ops()) {
        run_plain::<GilFreeDict<u64, u64, DefaultHashBuilder>>(&ops)?;
    }

    #[test]
    fn locked_colliding_hash_matches_indexmap(ops in ops()) {
        run_plain::<LockedDict<u64, u64, Collide>>(&ops)?;
    }

    #[test]
    fn gilfree_colliding_hash_matches_indexmap(ops in ops()) {
        run_plain::<GilFreeDict<u64, u64, Collide>>(&ops)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Interpreter keys with failing hash/eq
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum FOp {
    /// `true`: through `insert_ref_in` (the key made only if absent).
    Insert(u64, u64, bool),
    Get(u64),
    GetWith(u64),
    Contains(u64),
    Remove(u64),
    RemoveEntry(u64),
    SetDefault(u64, u64),
    UpdateIn(u64, u64),
    PopItem,
    Clear,
}

impl FOp {
    fn keyed(&self) -> bool {
        !matches!(self, FOp::PopItem | FOp::Clear)
    }
}

#[derive(Debug, Clone)]
struct Step {
    op: FOp,
    /// `Some(0)`: this operation's hash fails; `Some(1)`: it may not (one hash per operation).
    hash_fault: Option<usize>,
    /// `Some(n)`: the eq calls after the first `n` fail.
    eq_fault: Option<usize>,
    pure: bool,
    /// Look up with the stored key object itself (identity shortcut) when present.
    same_object: bool,
}

fn fop() -> impl Strategy<Value = FOp> {
    prop_oneof![
        8 => (key(), val(), any::<bool>()).prop_map(|(k, v, r)| FOp::Insert(k, v, r)),
        3 => key().prop_map(FOp::Get),
        1 => key().prop_map(FOp::GetWith),
        2 => key().prop_map(FOp::Contains),
        4 => key().prop_map(FOp::Remove),
        1 => key().prop_map(FOp::RemoveEntry),
        2 => (key(), val()).prop_map(|(k, v)| FOp::SetDefault(k, v)),
        2 => (key(), val()).prop_map(|(k, v)| FOp::UpdateIn(k, v)),
        1 => Just(FOp::PopItem),
        1 => Just(FOp::Clear),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (
        fop(),
        prop::option::weighted(0.2, 0..2usize),
        prop::option::weighted(0.35, 0..3usize),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(op, hash_fault, eq_fault, pure, same_object)| Step {
            op,
            hash_fault,
            eq_fault,
            pure,
            same_object,
        })
}

fn check_obj_state<D: TestDict<Obj, u64>>(d: &D, model: &ObjModel, ctx: &str) {
    common::assert_obj_state(d, model, ctx)
}

#[derive(Debug, PartialEq)]
enum Out {
    Value(Option<u64>),
    Flag(bool),
    Entry(Option<Seen>),
    Plain(u64),
    Unit,
}

fn run_fallible<D: TestDict<Obj, u64>>(hash_fn: HashFn, steps: &[Step]) -> Result<(), TestCaseError>
where
    D::Hasher: Default,
{
    let vm = Vm::new(hash_fn);
    let d: D = D::make(Default::default());
    let mut model = ObjModel::new();
    for (i, s) in steps.iter().enumerate() {
        let ctx = format!("{} {hash_fn:?} step #{i} {s:?}", D::NAME);
        let k = match s.op {
            FOp::Insert(k, ..)
            | FOp::Get(k)
            | FOp::GetWith(k)
            | FOp::Contains(k)
            | FOp::Remove(k)
            | FOp::RemoveEntry(k)
            | FOp::SetDefault(k, _)
            | FOp::UpdateIn(k, _) => k,
            FOp::PopItem | FOp::Clear => 0,
        };
        let probe = match model.get(&k) {
            Some((stored, _)) if s.same_object => stored.clone(),
            _ => Obj::new(k),
        };
        vm.clear_faults();
        vm.set_pure(s.pure);
        if let Some(n) = s.hash_fault {
            vm.fail_hash_after(n);
        }
        if let Some(n) = s.eq_fault {
            vm.fail_eq_after(n);
        }
        let len_before = model.len();
        let (errors0, (h0, e0), v0) = (vm.errors(), vm.counts(), d.version());
        let result: Result<Out, Error<ScriptError>> = match s.op {
            FOp::Insert(_, v, false) => d.insert_in(&vm, probe.clone(), v).map(Out::Value),
            FOp::Insert(_, v, true) => d.insert_ref_in(&vm, &probe, v).map(Out::Value),
            FOp::Get(_) => d.get_in(&vm, &probe).map(Out::Value),
            FOp::GetWith(_) => d.get_with_in(&vm, &probe, |v| *v).map(Out::Value),
            FOp::Contains(_) => d.contains_key_in(&vm, &probe).map(Out::Flag),
            FOp::Remove(_) => d.remove_in(&vm, &probe).map(Out::Value),
            FOp::RemoveEntry(_) => d
                .remove_entry_in(&vm, &probe)
                .map(|e| Out::Entry(e.map(|(k, v)| seen(&k, v)))),
            FOp::SetDefault(_, v) => d.setdefault_in(&vm, probe.clone(), v).map(Out::Plain),
            FOp::UpdateIn(_, v) => d
                .upsert_in(&vm, probe.clone(), |old| old.map_or(v, |o| (o + v) % 1000))
                .map(Out::Value),
            FOp::PopItem => d
                .popitem()
                .map(|e| Out::Entry(e.map(|(k, v)| seen(&k, v))))
                .map_err(|e| e.widen()),
            FOp::Clear => d.clear().map(|()| Out::Unit).map_err(|e| e.widen()),
        };
        let (errors1, (h1, e1), v1) = (vm.errors(), vm.counts(), d.version());
        vm.clear_faults();

        if s.op.keyed() {
            prop_assert_eq!(h1 - h0, 1, "{}: hash is called exactly once", ctx);
        }
        if errors1 > errors0 {
            // A callback failed: the operation reports it and has no effect.
            prop_assert_eq!(
                errors1 - errors0,
                1,
                "{}: the first error ends the operation",
                ctx
            );
            let hash_failed = s.hash_fault == Some(0);
            match &result {
                Err(Error::Callback(ScriptError::Hash { call })) => {
                    prop_assert!(hash_failed, "{}: unexpected hash error", ctx);
                    prop_assert_eq!(*call, h0, "{}", ctx);
                    prop_assert_eq!(e1, e0, "{}: eq called after hash failed", ctx);
                }
                Err(Error::Callback(ScriptError::Eq { .. })) => {
                    prop_assert!(!hash_failed, "{}: eq error after a failed hash", ctx)
                }
                other => prop_assert!(false, "{}: callback error not reported: {:?}", ctx, other),
            }
            prop_assert_eq!(v0, v1, "{}: failed operation changed the version", ctx);
        } else {
            let got = match result {
                Ok(out) => out,
                Err(e) => return Err(TestCaseError::fail(format!("{ctx}: unexpected {e:?}"))),
            };
            let (want, effect) = match s.op {
                FOp::Insert(k, v, _) => {
                    let old = match model.get_mut(&k) {
                        // Overwrite keeps the stored key object and the position.
                        Some(e) => Some(std::mem::replace(&mut e.1, v)),
                        None => {
                            model.insert(k, (probe.clone(), v));
                            None
                        }
                    };
                    (Out::Value(old), Effect::Mutated)
                }
                FOp::Get(k) | FOp::GetWith(k) => {
                    (Out::Value(model.get(&k).map(|e| e.1)), Effect::Read)
                }
                FOp::Contains(k) => (Out::Flag(model.contains_key(&k)), Effect::Read),
                FOp::Remove(k) => {
                    let old = model.shift_remove(&k).map(|e| e.1);
                    let eff = if old.is_some() {
                        Effect::Mutated
                    } else {
                        Effect::NoOp
                    };
                    (Out::Value(old), eff)
                }
                FOp::RemoveEntry(k) => {
                    let old = model.shift_remove(&k).map(|(o, v)| seen(&o, v));
                    let eff = if old.is_some() {
                        Effect::Mutated
                    } else {
                        Effect::NoOp
                    };
                    (Out::Entry(old), eff)
                }
                FOp::SetDefault(k, v) => match model.get(&k) {
                    Some(e) => (Out::Plain(e.1), Effect::NoOp),
                    None => {
                        model.insert(k, (probe.clone(), v));
                        (Out::Plain(v), Effect::Mutated)
                    }
                },
                FOp::UpdateIn(k, v) => {
                    let old = match model.get_mut(&k) {
                        Some(e) => {
                            let new = (e.1 + v) % 1000;
                            Some(std::mem::replace(&mut e.1, new))
                        }
                        None => {
                            model.insert(k, (probe.clone(), v));
                            None
                        }
                    };
                    (Out::Value(old), Effect::Mutated)
                }
                FOp::PopItem => {
                    let e = model.pop().map(|(_, (o, v))| seen(&o, v));
                    let eff = if e.is_some() {
                        Effect::Mutated
                    } else {
                        Effect::NoOp
                    };
                    (Out::Entry(e), eff)
                }
                FOp::Clear => {
                    let eff = if model.is_empty() {
                        Effect::NoOp
                    } else {
                        Effect::Mutated
                    };
                    model.clear();
                    (Out::Unit, eff)
                }
            };
            prop_assert_eq!(&got, &want, "{}: result", ctx);
            match effect {
                Effect::Read => prop_assert_eq!(v0, v1, "{}: a read changed the version", ctx),
                Effect::Mutated => prop_assert_ne!(v0, v1, "{}: mutation kept the version", ctx),
                Effect::NoOp => {}
            }
            // Without re-entrant mutation there is no restart: every candidate with an equal
            // hash is compared at most once.
            prop_assert!(
                e1 - e0 <= len_before,
                "{}: {} eq calls for {} entries",
                ctx,
                e1 - e0,
                len_before
            );
        }
        check_obj_state(&d, &model, &ctx);
    }
    Ok(())
}

fn hash_fn() -> impl Strategy<Value = HashFn> {
    prop_oneof![
        Just(HashFn::Full),
        Just(HashFn::Mod(4)),
        Just(HashFn::Const(7))
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn locked_failing_callbacks_have_no_effect(
        h in hash_fn(),
        steps in prop::collection::vec(step(), 1..64),
    ) {
        run_fallible::<LockedDict<Obj, u64>>(h, &steps)?;
    }

    #[test]
    fn gilfree_failing_callbacks_have_no_effect(
        h in hash_fn(),
        steps in prop::collection::vec(step(), 1..64),
    ) {
        run_fallible::<GilFreeDict<Obj, u64>>(h, &steps)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Interpreter keys whose eq re-enters and mutates the dict
// ---------------------------------------------------------------------------------------------

/// What the script `eq` does to the dict (once, on the operation's first eq call).
#[derive(Debug, Clone)]
enum HookOp {
    /// `d[k] = v` with a fresh key object.
    Insert(u64, u64),
    /// `del d[stored]` (the key being compared).
    RemoveStored,
    /// `d.pop(k)`.
    Remove(u64),
    /// `d[stored] = v`.
    OverwriteStored(u64),
    /// `d.clear()`.
    Clear,
    /// `d.popitem()`.
    PopItem,
    /// `d.get(stored)` and `len(d)`: no mutation.
    Read,
}

/// What a hook did, recorded for the model: applied before the write it interrupted, which
/// validates after `eq` and acts on the dict as the hook left it. A read answers from the
/// candidates it cloned before calling `eq`: it linearizes before the hook's mutation.
#[derive(Debug, Clone)]
enum HookEffect {
    Inserted(Obj, u64, Option<u64>),
    Removed(u64, Option<u64>),
    Overwrote(Obj, u64, Option<u64>),
    Cleared,
    Popped(Option<Seen>),
    Read(u64, Option<u64>, usize),
}

fn hook_op() -> impl Strategy<Value = HookOp> {
    prop_oneof![
        3 => (key(), val()).prop_map(|(k, v)| HookOp::Insert(k, v)),
        2 => Just(HookOp::RemoveStored),
        2 => key().prop_map(HookOp::Remove),
        2 => val().prop_map(HookOp::OverwriteStored),
        1 => Just(HookOp::Clear),
        1 => Just(HookOp::PopItem),
        2 => Just(HookOp::Read),
    ]
}

fn keyed_fop() -> impl Strategy<Value = FOp> {
    prop_oneof![
        4 => (key(), val(), any::<bool>()).prop_map(|(k, v, r)| FOp::Insert(k, v, r)),
        3 => key().prop_map(FOp::Get),
        1 => key().prop_map(FOp::GetWith),
        1 => key().prop_map(FOp::Contains),
        3 => key().prop_map(FOp::Remove),
        1 => key().prop_map(FOp::RemoveEntry),
        2 => (key(), val()).prop_map(|(k, v)| FOp::SetDefault(k, v)),
        2 => (key(), val()).prop_map(|(k, v)| FOp::UpdateIn(k, v)),
    ]
}

/// Applies a recorded hook effect to the model, checking the results the hook got.
fn apply_hook_effect(model: &mut ObjModel, effect: &HookEffect, ctx: &str) {
    match effect {
        HookEffect::Inserted(key, v, got) => {
            assert_eq!(
                *got,
                common::model_insert(model, key, *v),
                "{ctx}: hook insert"
            );
        }
        HookEffect::Removed(k, got) => {
            assert_eq!(
                *got,
                model.shift_remove(k).map(|e| e.1),
                "{ctx}: hook remove"
            );
        }
        HookEffect::Overwrote(key, v, got) => {
            assert_eq!(
                *got,
                common::model_insert(model, key, *v),
                "{ctx}: hook overwrite"
            );
        }
        HookEffect::Cleared => model.clear(),
        HookEffect::Popped(got) => {
            let want = model.pop().map(|(_, (k, v))| seen(&k, v));
            assert_eq!(*got, want, "{ctx}: hook popitem");
        }
        HookEffect::Read(k, got, len) => {
            assert_eq!(*got, model.get(k).map(|e| e.1), "{ctx}: hook read");
            assert_eq!(*len, model.len(), "{ctx}: hook len");
        }
    }
}

/// Random keyed operations whose script eq (impure, so called with no lock held) re-enters the
/// dict once and mutates it. The outcome must equal the model with the hook's mutation applied
/// first and the operation after it (the lookup validates or restarts), and nothing may fail.
fn run_reentrant<D: TestDict<Obj, u64>>(
    hash_fn: HashFn,
    steps: &[(FOp, HookOp)],
) -> Result<(), TestCaseError>
where
    D::Hasher: Default,
{
    use std::sync::{Arc, Mutex};
    let vm = Vm::new(hash_fn);
    let d: Arc<D> = Arc::new(D::make(Default::default()));
    let mut model = ObjModel::new();
    // The hook's effect, and how many hash calls the hook's own operations made.
    let record: Arc<Mutex<Option<(HookEffect, usize)>>> = Arc::default();
    for (i, (op, hook)) in steps.iter().enumerate() {
        let ctx = format!(
            "{} {hash_fn:?} step #{i} {op:?} with eq hook {hook:?}",
            D::NAME
        );
        {
            let (d, record, hook) = (Arc::clone(&d), Arc::clone(&record), hook.clone());
            vm.set_hook_once(move |vm, stored, _probe| {
                let h0 = vm.hash_calls();
                let effect = match hook {
                    HookOp::Insert(k, v) => {
                        let key = Obj::new(k);
                        HookEffect::Inserted(key.clone(), v, d.insert_in(vm, key, v).unwrap())
                    }
                    HookOp::RemoveStored => {
                        HookEffect::Removed(stored.val(), d.remove_in(vm, stored).unwrap())
                    }
                    HookOp::Remove(k) => {
                        HookEffect::Removed(k, d.remove_in(vm, &Obj::new(k)).unwrap())
                    }
                    HookOp::OverwriteStored(v) => HookEffect::Overwrote(
                        stored.clone(),
                        v,
                        d.insert_in(vm, stored.clone(), v).unwrap(),
                    ),
                    HookOp::Clear => {
                        d.clear().unwrap();
                        HookEffect::Cleared
                    }
                    HookOp::PopItem => {
                        HookEffect::Popped(d.popitem().unwrap().map(|(k, v)| seen(&k, v)))
                    }
                    HookOp::Read => {
                        HookEffect::Read(stored.val(), d.get_in(vm, stored).unwrap(), d.len())
                    }
                };
                *record.lock().unwrap() = Some((effect, vm.hash_calls() - h0));
            });
        }
        let k = match *op {
            FOp::Insert(k, ..)
            | FOp::Get(k)
            | FOp::GetWith(k)
            | FOp::Contains(k)
            | FOp::Remove(k)
            | FOp::RemoveEntry(k)
            | FOp::SetDefault(k, _)
            | FOp::UpdateIn(k, _) => k,
            FOp::PopItem | FOp::Clear => unreachable!("keyed operations only"),
        };
        let probe = Obj::new(k);
        let (h0, v0) = (vm.hash_calls(), d.version());
        let got: Result<Out, Error<ScriptError>> = match *op {
            FOp::Insert(_, v, false) => d.insert_in(&vm, probe.clone(), v).map(Out::Value),
            FOp::Insert(_, v, true) => d.insert_ref_in(&vm, &probe, v).map(Out::Value),
            FOp::Get(_) => d.get_in(&vm, &probe).map(Out::Value),
            FOp::GetWith(_) => d.get_with_in(&vm, &probe, |v| *v).map(Out::Value),
            FOp::Contains(_) => d.contains_key_in(&vm, &probe).map(Out::Flag),
            FOp::Remove(_) => d.remove_in(&vm, &probe).map(Out::Value),
            FOp::RemoveEntry(_) => d
                .remove_entry_in(&vm, &probe)
                .map(|e| Out::Entry(e.map(|(k, v)| seen(&k, v)))),
            FOp::SetDefault(_, v) => d.setdefault_in(&vm, probe.clone(), v).map(Out::Plain),
            FOp::UpdateIn(_, v) => d
                .upsert_in(&vm, probe.clone(), |old| old.map_or(v, |o| (o + v) % 1000))
                .map(Out::Value),
            FOp::PopItem | FOp::Clear => unreachable!(),
        };
        vm.clear_hook();
        let (effect, hook_hashes) = match record.lock().unwrap().take() {
            Some((e, n)) => (Some(e), n),
            None => (None, 0),
        };
        prop_assert_eq!(vm.hash_calls() - h0 - hook_hashes, 1, "{}: hash once", ctx);
        let mutated_by_hook = matches!(
            effect,
            Some(
                HookEffect::Inserted(..)
                    | HookEffect::Overwrote(..)
                    | HookEffect::Cleared
                    | HookEffect::Popped(Some(_))
                    | HookEffect::Removed(_, Some(_))
            )
        );
        // Reads answer from what they saw before `eq` ran (see `HookEffect`).
        let read_want = match *op {
            FOp::Get(k) | FOp::GetWith(k) => Some(Out::Value(model.get(&k).map(|e| e.1))),
            FOp::Contains(k) => Some(Out::Flag(model.contains_key(&k))),
            _ => None,
        };
        if let Some(e) = &effect {
            apply_hook_effect(&mut model, e, &ctx);
        }
        let got = match got {
            Ok(out) => out,
            Err(e) => return Err(TestCaseError::fail(format!("{ctx}: unexpected {e:?}"))),
        };
        let (want, effect) = match *op {
            FOp::Insert(_, v, _) => (
                Out::Value(common::model_insert(&mut model, &probe, v)),
                Effect::Mutated,
            ),
            FOp::Get(_) | FOp::GetWith(_) | FOp::Contains(_) => {
                (read_want.expect("a read"), Effect::Read)
            }
            FOp::Remove(k) => {
                let old = model.shift_remove(&k).map(|e| e.1);
                let eff = if old.is_some() {
                    Effect::Mutated
                } else {
                    Effect::NoOp
                };
                (Out::Value(old), eff)
            }
            FOp::RemoveEntry(k) => {
                let old = model.shift_remove(&k).map(|(o, v)| seen(&o, v));
                let eff = if old.is_some() {
                    Effect::Mutated
                } else {
                    Effect::NoOp
                };
                (Out::Entry(old), eff)
            }
            FOp::SetDefault(k, v) => match model.get(&k) {
                Some(e) => (Out::Plain(e.1), Effect::NoOp),
                None => {
                    common::model_insert(&mut model, &probe, v);
                    (Out::Plain(v), Effect::Mutated)
                }
            },
            FOp::UpdateIn(k, v) => {
                let old = model.get(&k).map(|e| e.1);
                let new = old.map_or(v, |o| (o + v) % 1000);
                common::model_insert(&mut model, &probe, new);
                (Out::Value(old), Effect::Mutated)
            }
            FOp::PopItem | FOp::Clear => unreachable!(),
        };
        prop_assert_eq!(&got, &want, "{}: result", ctx);
        let v1 = d.version();
        match effect {
            Effect::Read if !mutated_by_hook => {
                prop_assert_eq!(v0, v1, "{}: a read changed the version", ctx)
            }
            Effect::Mutated => prop_assert_ne!(v0, v1, "{}: mutation kept the version", ctx),
            _ => {}
        }
        check_obj_state(&*d, &model, &ctx);
    }
    Ok(())
}

fn reentrant_steps() -> impl Strategy<Value = Vec<(FOp, HookOp)>> {
    prop::collection::vec((keyed_fop(), hook_op()), 1..48)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn locked_reentrant_eq_matches_model(h in hash_fn(), steps in reentrant_steps()) {
        run_reentrant::<LockedDict<Obj, u64>>(h, &steps)?;
    }

    #[test]
    fn gilfree_reentrant_eq_matches_model(h in hash_fn(), steps in reentrant_steps()) {
        run_reentrant::<GilFreeDict<Obj, u64>>(h, &steps)?;
    }
}
