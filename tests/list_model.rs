//! Model-based property tests: random operation sequences on both lists against a `Vec` with
//! an independent, brute-force implementation of Python's list semantics (slices included),
//! with failing and non-pure (script-path) `eq`, and failing sort comparators.
//!
//! Cases per property: 1 000 by default, `GILFREE_PROPTEST_CASES` for more.

use std::cmp::Ordering;

use gilfree::{EqModel, Error, GilFreeList, LockedList, Sequence, Slice};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("GILFREE_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

/// An interpreter-like `eq`: fails when it meets the stored value `fail_on`, and may claim to
/// run script code (`pure: false`), which sends the lists down the unlock-compare-validate path.
#[derive(Debug, Clone, Copy)]
struct Model {
    fail_on: Option<i8>,
    pure: bool,
}

impl EqModel<i8> for Model {
    type Error = String;

    fn eq(&self, stored: &i8, probe: &i8) -> Result<bool, String> {
        if Some(*stored) == self.fail_on {
            return Err(format!("eq({stored}) raised"));
        }
        Ok(stored == probe)
    }

    fn eq_is_pure(&self, _: &i8, _: &i8) -> bool {
        self.pure
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(i8),
    Extend(Vec<i8>),
    Insert(isize, i8),
    Pop,
    PopAt(isize),
    Get(isize),
    Set(isize, i8),
    Remove(Model, i8),
    Index(Model, i8, isize, isize),
    Count(Model, i8),
    Contains(Model, i8),
    GetSlice(Slice),
    SetSlice(Slice, Vec<i8>),
    DelSlice(Slice),
    Sort,
    SortByKey { reverse: bool, modulo: i8 },
    SortFailing { reverse: bool, fail_at: usize },
    Reverse,
    Clear,
    RepeatInPlace(usize),
    Repeat(usize),
    Concat(Vec<i8>),
    Copy,
    Compare(Vec<i8>),
}

/// What an operation returned, comparable across the list and the model.
#[derive(Debug, Clone, PartialEq)]
enum Out {
    Unit(Result<(), String>),
    Item(Result<i8, String>),
    Index(Result<usize, String>),
    Bool(Result<bool, String>),
    Items(Result<Vec<i8>, String>),
    Cmp(Option<Ordering>, bool),
}

fn err<E: std::fmt::Debug>(e: Error<E>) -> String {
    format!("{e:?}")
}

fn unit<E: std::fmt::Debug>(r: Result<(), Error<E>>) -> Out {
    Out::Unit(r.map_err(err))
}

fn small() -> impl Strategy<Value = i8> {
    0i8..8
}

fn index() -> impl Strategy<Value = isize> {
    -12isize..12
}

fn slice() -> impl Strategy<Value = Slice> {
    (
        proptest::option::of(index()),
        proptest::option::of(index()),
        proptest::option::weighted(0.7, -3isize..=3),
    )
        .prop_map(|(a, b, c)| Slice::new(a, b, c))
}

fn model() -> impl Strategy<Value = Model> {
    (proptest::option::weighted(0.2, small()), any::<bool>())
        .prop_map(|(fail_on, pure)| Model { fail_on, pure })
}

fn op() -> impl Strategy<Value = Op> {
    let items = || proptest::collection::vec(small(), 0..6);
    prop_oneof![
        4 => small().prop_map(Op::Append),
        1 => items().prop_map(Op::Extend),
        3 => (index(), small()).prop_map(|(i, x)| Op::Insert(i, x)),
        1 => Just(Op::Pop),
        2 => index().prop_map(Op::PopAt),
        2 => index().prop_map(Op::Get),
        2 => (index(), small()).prop_map(|(i, x)| Op::Set(i, x)),
        2 => (model(), small()).prop_map(|(m, x)| Op::Remove(m, x)),
        2 => (model(), small(), index(), index()).prop_map(|(m, x, a, b)| Op::Index(m, x, a, b)),
        1 => (model(), small()).prop_map(|(m, x)| Op::Count(m, x)),
        1 => (model(), small()).prop_map(|(m, x)| Op::Contains(m, x)),
        2 => slice().prop_map(Op::GetSlice),
        3 => (slice(), items()).prop_map(|(s, v)| Op::SetSlice(s, v)),
        2 => slice().prop_map(Op::DelSlice),
        1 => Just(Op::Sort),
        1 => (any::<bool>(), 1i8..4).prop_map(|(reverse, modulo)| Op::SortByKey { reverse, modulo }),
        1 => (any::<bool>(), 0usize..20).prop_map(|(reverse, fail_at)| Op::SortFailing { reverse, fail_at }),
        1 => Just(Op::Reverse),
        1 => Just(Op::Clear),
        1 => (0usize..3).prop_map(Op::RepeatInPlace),
        1 => (0usize..3).prop_map(Op::Repeat),
        1 => items().prop_map(Op::Concat),
        1 => Just(Op::Copy),
        1 => items().prop_map(Op::Compare),
    ]
}

// ---------------------------------------------------------------------------------------------
// The reference: a Vec with Python semantics written out by brute force.
// ---------------------------------------------------------------------------------------------

const OOR: &str = "IndexOutOfRange";

fn py_index(i: isize, len: usize) -> Option<usize> {
    let j = if i < 0 { i + len as isize } else { i };
    (0..len as isize).contains(&j).then_some(j as usize)
}

/// The indices a slice selects, by walking Python's rules literally.
fn py_slice(s: Slice, len: usize) -> Result<Vec<usize>, String> {
    let n = len as isize;
    let step = s.step.unwrap_or(1);
    if step == 0 {
        return Err("ZeroStep".into());
    }
    let norm = |i: isize| if i < 0 { i + n } else { i };
    let mut out = Vec::new();
    if step > 0 {
        let start = s.start.map_or(0, norm).clamp(0, n);
        let stop = s.stop.map_or(n, norm).clamp(0, n);
        let mut i = start;
        while i < stop {
            out.push(i as usize);
            i += step;
        }
    } else {
        let start = s.start.map_or(n - 1, norm).clamp(-1, n - 1);
        let stop = s.stop.map_or(-1, norm).clamp(-1, n - 1);
        let mut i = start;
        while i > stop {
            out.push(i as usize);
            i += step;
        }
    }
    Ok(out)
}

fn py_find(v: &[i8], m: &Model, x: i8, start: usize, stop: usize) -> Result<Option<usize>, String> {
    for (i, &y) in v.iter().enumerate().take(stop).skip(start) {
        if m.eq(&y, &x).map_err(|e| format!("Callback({e:?})"))? {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

fn py_bound(i: isize, len: usize) -> usize {
    if i < 0 {
        (i + len as isize).max(0) as usize
    } else {
        i as usize
    }
}

fn reference(v: &mut Vec<i8>, op: &Op) -> Out {
    match op {
        Op::Append(x) => {
            v.push(*x);
            Out::Unit(Ok(()))
        }
        Op::Extend(xs) => {
            v.extend(xs);
            Out::Unit(Ok(()))
        }
        Op::Insert(i, x) => {
            let j = if *i < 0 {
                (*i + v.len() as isize).max(0)
            } else {
                *i
            };
            v.insert((j as usize).min(v.len()), *x);
            Out::Unit(Ok(()))
        }
        Op::Pop => Out::Item(v.pop().ok_or_else(|| "Empty(List)".to_string())),
        Op::PopAt(i) => Out::Item(if v.is_empty() {
            Err("Empty(List)".into())
        } else {
            py_index(*i, v.len())
                .map(|j| v.remove(j))
                .ok_or_else(|| OOR.to_string())
        }),
        Op::Get(i) => Out::Item(
            py_index(*i, v.len())
                .map(|j| v[j])
                .ok_or_else(|| OOR.to_string()),
        ),
        Op::Set(i, x) => Out::Unit(match py_index(*i, v.len()) {
            Some(j) => {
                v[j] = *x;
                Ok(())
            }
            None => Err(OOR.into()),
        }),
        Op::Remove(m, x) => Out::Unit(match py_find(v, m, *x, 0, usize::MAX) {
            Ok(Some(i)) => {
                v.remove(i);
                Ok(())
            }
            Ok(None) => Err("ValueNotFound".into()),
            Err(e) => Err(e),
        }),
        Op::Index(m, x, a, b) => {
            let (a, b) = (py_bound(*a, v.len()), py_bound(*b, v.len()));
            Out::Index(
                py_find(v, m, *x, a, b).and_then(|r| r.ok_or_else(|| "ValueNotFound".into())),
            )
        }
        Op::Count(m, x) => {
            let mut n = 0;
            for y in v.iter() {
                match m.eq(y, x) {
                    Ok(true) => n += 1,
                    Ok(false) => {}
                    Err(e) => return Out::Index(Err(format!("Callback({e:?})"))),
                }
            }
            Out::Index(Ok(n))
        }
        Op::Contains(m, x) => Out::Bool(py_find(v, m, *x, 0, usize::MAX).map(|r| r.is_some())),
        Op::GetSlice(s) => {
            Out::Items(py_slice(*s, v.len()).map(|ix| ix.iter().map(|&i| v[i]).collect()))
        }
        Op::SetSlice(s, xs) => Out::Unit((|| {
            let ix = py_slice(*s, v.len())?;
            if s.step.unwrap_or(1) == 1 {
                let n = v.len() as isize;
                let norm = |i: isize| if i < 0 { i + n } else { i };
                let start = s.start.map_or(0, norm).clamp(0, n) as usize;
                let stop = (s.stop.map_or(n, norm).clamp(0, n) as usize).max(start);
                v.splice(start..stop, xs.iter().copied());
            } else {
                if ix.len() != xs.len() {
                    return Err(format!(
                        "SliceLength {{ slice: {}, given: {} }}",
                        ix.len(),
                        xs.len()
                    ));
                }
                for (&i, &x) in ix.iter().zip(xs) {
                    v[i] = x;
                }
            }
            Ok(())
        })()),
        Op::DelSlice(s) => Out::Unit(py_slice(*s, v.len()).map(|mut ix| {
            ix.sort_unstable();
            for &i in ix.iter().rev() {
                v.remove(i);
            }
        })),
        Op::Sort => {
            v.sort();
            Out::Unit(Ok(()))
        }
        Op::SortByKey { reverse, modulo } => {
            let key = |x: &i8| x % modulo;
            if *reverse {
                v.sort_by_key(|x| std::cmp::Reverse(key(x)));
            } else {
                v.sort_by_key(key);
            }
            Out::Unit(Ok(()))
        }
        Op::SortFailing { .. } => unreachable!("checked in `run`"),
        Op::Reverse => {
            v.reverse();
            Out::Unit(Ok(()))
        }
        Op::Clear => {
            v.clear();
            Out::Unit(Ok(()))
        }
        Op::RepeatInPlace(n) => {
            *v = v.repeat(*n);
            Out::Unit(Ok(()))
        }
        Op::Repeat(n) => Out::Items(Ok(v.repeat(*n))),
        Op::Concat(xs) => Out::Items(Ok([v.as_slice(), xs].concat())),
        Op::Copy => Out::Items(Ok(v.clone())),
        Op::Compare(xs) => Out::Cmp(v.as_slice().partial_cmp(xs.as_slice()), v == xs),
    }
}

// ---------------------------------------------------------------------------------------------
// The list under test.
// ---------------------------------------------------------------------------------------------

fn apply<L: Sequence<i8> + Default>(l: &L, op: &Op) -> Out {
    match op {
        Op::Append(x) => unit(l.append(*x)),
        Op::Extend(xs) => unit(l.extend(xs.iter().copied())),
        Op::Insert(i, x) => unit(l.insert(*i, *x)),
        Op::Pop => Out::Item(l.pop().map_err(err)),
        Op::PopAt(i) => Out::Item(l.pop_at(*i).map_err(err)),
        Op::Get(i) => Out::Item(l.get(*i).map_err(err)),
        Op::Set(i, x) => unit(l.set(*i, *x)),
        Op::Remove(m, x) => unit(l.remove_in(m, x)),
        Op::Index(m, x, a, b) => Out::Index(l.index_in(m, x, *a, *b).map_err(err)),
        Op::Count(m, x) => Out::Index(l.count_in(m, x).map_err(err)),
        Op::Contains(m, x) => Out::Bool(l.contains_in(m, x).map_err(err)),
        Op::GetSlice(s) => Out::Items(l.get_slice(*s).map_err(err)),
        Op::SetSlice(s, xs) => unit(l.set_slice(*s, xs.iter().copied())),
        Op::DelSlice(s) => unit(l.del_slice(*s)),
        Op::Sort => unit(l.sort()),
        Op::SortByKey { reverse, modulo } => {
            unit(l.sort_by_key(*reverse, |x| Ok::<_, ()>(x % modulo), |a, b| Ok(a < b)))
        }
        Op::SortFailing { .. } => unreachable!("checked in `run`"),
        Op::Reverse => unit(l.reverse()),
        Op::Clear => unit(l.clear()),
        Op::RepeatInPlace(n) => unit(l.repeat_in_place(*n)),
        Op::Repeat(n) => Out::Items(
            l.repeat(*n)
                .map(|r| r.snapshot())
                .map_err(|e| e.to_string()),
        ),
        Op::Concat(xs) => {
            let other = L::default();
            other.extend(xs.iter().copied()).unwrap();
            Out::Items(Ok(l.concat(&other).snapshot()))
        }
        Op::Copy => Out::Items(Ok(l.copy().snapshot())),
        Op::Compare(xs) => {
            let other = L::default();
            other.extend(xs.iter().copied()).unwrap();
            let p = gilfree::Plain(&());
            let ord = l
                .compare_in(&p, &other, |a, b| Ok(a.partial_cmp(b)))
                .unwrap();
            Out::Cmp(ord, l.eq_in(&p, &other).unwrap())
        }
    }
}

/// A sort whose `<` raises at its `fail_at`-th call (if the sort makes that many): either the
/// error, with the list untouched, or the sorted list, stable, `reverse` keeping stability.
fn sort_failing<L: Sequence<i8>>(
    l: &L,
    v: &mut [i8],
    reverse: bool,
    fail_at: usize,
) -> Result<(), TestCaseError> {
    let mut calls = 0;
    let r = l.sort_by(reverse, |a, b| {
        calls += 1;
        if calls > fail_at {
            Err("lt raised")
        } else {
            Ok(a < b)
        }
    });
    match r {
        Err(Error::Callback("lt raised")) => prop_assert_eq!(l.snapshot(), v.to_vec()),
        Ok(()) => {
            if reverse {
                v.sort_by(|a, b| b.cmp(a));
            } else {
                v.sort();
            }
            prop_assert_eq!(l.snapshot(), v.to_vec());
        }
        Err(e) => prop_assert!(false, "unexpected {:?}", e),
    }
    Ok(())
}

fn run<L: Sequence<i8> + Default>(ops: &[Op]) -> Result<(), TestCaseError> {
    let l = L::default();
    let mut v: Vec<i8> = Vec::new();
    for (k, op) in ops.iter().enumerate() {
        if let Op::SortFailing { reverse, fail_at } = op {
            sort_failing(&l, &mut v, *reverse, *fail_at)?;
        } else {
            let got = apply(&l, op);
            let want = reference(&mut v, op);
            prop_assert_eq!(&got, &want, "op #{} {:?}", k, op);
        }
        prop_assert_eq!(l.snapshot(), v.clone(), "state after op #{} {:?}", k, op);
        prop_assert_eq!(l.len(), v.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn gilfree_list_matches_vec(ops in proptest::collection::vec(op(), 1..60)) {
        run::<GilFreeList<i8>>(&ops)?;
    }

    #[test]
    fn locked_list_matches_vec(ops in proptest::collection::vec(op(), 1..60)) {
        run::<LockedList<i8>>(&ops)?;
    }

    /// Index reads of a list built by random front/back inserts and pops, across array
    /// growth and shrink (many more items than the other properties reach).
    #[test]
    fn gilfree_growth_and_shrink(script in proptest::collection::vec((0u8..4, 1usize..40), 1..30)) {
        let l: GilFreeList<u32> = GilFreeList::new();
        let mut v: Vec<u32> = Vec::new();
        let mut next = 0;
        for (kind, n) in script {
            for _ in 0..n {
                match kind {
                    0 => { l.append(next).unwrap(); v.push(next); next += 1; }
                    1 => { l.insert(0, next).unwrap(); v.insert(0, next); next += 1; }
                    2 => prop_assert_eq!(l.pop().ok(), v.pop()),
                    _ => prop_assert_eq!(l.pop_at(0).ok(), (!v.is_empty()).then(|| v.remove(0))),
                }
            }
            for (i, x) in v.iter().enumerate() {
                prop_assert_eq!(l.get(i as isize).unwrap(), *x);
            }
            prop_assert_eq!(l.get(v.len() as isize), Err(Error::IndexOutOfRange));
        }
    }
}
