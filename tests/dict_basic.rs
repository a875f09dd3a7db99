//! Basic behaviour of both dicts through the shared `Mapping` API.

mod common;

use common::Mapping;
use gilfree::{Error, GilFreeDict, LockedDict};

fn python_semantics<D: Mapping<u64, String> + Default>() {
    let d = D::default();
    let m = d.plain();
    assert_eq!(d.insert_in(&m, 3, "c".into()).unwrap(), None);
    assert_eq!(d.insert_in(&m, 1, "a".into()).unwrap(), None);
    assert_eq!(d.insert_in(&m, 2, "b".into()).unwrap(), None);
    let v0 = d.version();
    // Overwrite keeps the position and returns the old value.
    assert_eq!(d.insert_in(&m, 1, "A".into()).unwrap(), Some("a".into()));
    assert_ne!(d.version(), v0);
    assert_eq!(d.keys(), vec![3, 1, 2]);
    assert_eq!(d.values(), vec!["c", "A", "b"]);
    assert_eq!(d.remove_in(&m, &3).unwrap(), Some("c".into()));
    assert_eq!(d.remove_in(&m, &3).unwrap(), None);
    assert_eq!(d.setdefault_in(&m, 9, "z".into()).unwrap(), "z");
    assert_eq!(d.setdefault_in(&m, 9, "y".into()).unwrap(), "z");
    assert_eq!(d.popitem().unwrap(), Some((9, "z".into())));
    assert_eq!(d.len(), 2);
    d.retain(|k, _| *k != 1).unwrap();
    assert_eq!(d.snapshot(), vec![(2, "b".into())]);
    d.clear().unwrap();
    assert!(d.is_empty());
    assert_eq!(d.popitem().unwrap(), None);
    // Growth through many rebuilds keeps order.
    for i in 0..1000 {
        d.insert_in(&m, i, i.to_string()).unwrap();
    }
    for i in (0..1000).step_by(2) {
        d.remove_in(&m, &i).unwrap();
    }
    let keys: Vec<u64> = (0..1000).filter(|i| i % 2 == 1).collect();
    assert_eq!(d.keys(), keys);
    for i in 0..1000 {
        assert_eq!(
            d.get_in(&m, &i).unwrap(),
            (i % 2 == 1).then(|| i.to_string())
        );
    }
    d.freeze().unwrap();
    assert_eq!(
        d.insert_in(&m, 1, "x".into()),
        Err(Error::Frozen(gilfree::Container::Dict))
    );
    assert_eq!(d.get_in(&m, &1).unwrap(), Some("1".into()));
}

#[test]
fn gilfree_python_semantics() {
    python_semantics::<GilFreeDict<u64, String>>();
}

#[test]
fn locked_python_semantics() {
    python_semantics::<LockedDict<u64, String>>();
}

#[test]
fn checked_iteration_reports_size_change() {
    let d: GilFreeDict<u64, u64> = (0..4).map(|i| (i, i)).collect();
    let mut it = d.iter_checked();
    assert_eq!(it.next(), Some(Ok((0, 0))));
    d.insert(10, 10).unwrap();
    assert_eq!(it.next(), Some(Err(Error::ChangedSize)));
    assert_eq!(it.next(), None);
    assert_eq!(
        Error::<std::convert::Infallible>::ChangedSize.to_string(),
        "dictionary changed size during iteration"
    );
}

#[test]
fn reentrant_write_from_update_is_refused() {
    let d: LockedDict<u64, u64> = LockedDict::new();
    d.insert(1, 1).unwrap();
    let inner = std::cell::Cell::new(None);
    d.upsert(1, |v| {
        inner.set(Some((d.get(&1), d.insert(2, 2))));
        v.unwrap() + 1
    })
    .unwrap();
    let (read, write) = inner.take().unwrap();
    assert_eq!(read, Some(1));
    assert_eq!(write, Err(Error::Reentrant(gilfree::Container::Dict)));
    assert_eq!(d.get(&1), Some(2));
}

#[test]
fn frozen_view_reads_without_locks_and_copy_thaws() {
    let d: LockedDict<u64, String> = (0..10).map(|i| (i, i.to_string())).collect();
    assert!(d.frozen().is_none());
    d.freeze().unwrap();
    let view = d.frozen().unwrap();
    let three: &String = view.get(&3).unwrap();
    assert_eq!(three, "3");
    assert_eq!(
        view.keys().copied().collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(d.remove(&3), Err(Error::Frozen(gilfree::Container::Dict)));
    assert_eq!(d.clear(), Err(Error::Frozen(gilfree::Container::Dict)));
    assert_eq!(d.popitem(), Err(Error::Frozen(gilfree::Container::Dict)));
    assert_eq!(
        Error::<std::convert::Infallible>::Frozen(gilfree::Container::Dict).to_string(),
        "cannot modify frozen dict"
    );
    let thawed = d.copy();
    assert!(!thawed.is_frozen());
    thawed.insert(100, "x".into()).unwrap();
    assert_eq!(thawed.len(), 11);

    let g: GilFreeDict<u64, String> = (0..10).map(|i| (i, i.to_string())).collect();
    g.freeze().unwrap();
    let view = g.frozen().unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                (0..10).all(|i| view.get(&i).map(String::as_str) == Some(i.to_string().as_str()))
            });
        }
    });
    assert_eq!(view.iter().next_back(), Some((&9, &"9".to_string())));

    // A view and its iterator go to other threads as the dict's `&` would.
    fn send_sync<T: Send + Sync>(_: &T) {}
    send_sync(&view);
    send_sync(&view.iter());
    send_sync(&d.frozen().unwrap());
    let moved = std::thread::scope(|s| s.spawn(move || view.iter().count()).join().unwrap());
    assert_eq!(moved, 10);
}

/// The standard traits and the usual map methods, on both dicts.
fn std_api<D>()
where
    D: Default + std::fmt::Debug + Eq + Extend<(String, i64)> + From<[(String, i64); 2]>,
    for<'a> &'a D: IntoIterator<Item = (String, i64)>,
{
    let mut d = D::from([("a".to_string(), 1), ("b".to_string(), 2)]);
    d.extend([("c".to_string(), 3)]);
    let items: Vec<(String, i64)> = (&d).into_iter().collect();
    assert_eq!(items, [("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]);
    let mut other = D::from([("b".to_string(), 2), ("a".to_string(), 1)]);
    other.extend([("c".to_string(), 3)]);
    assert_eq!(d, other); // order-insensitive, like Python
    assert_eq!(format!("{d:?}"), r#"{"a": 1, "b": 2, "c": 3}"#);
}

#[test]
fn std_traits_on_both_dicts() {
    std_api::<GilFreeDict<String, i64>>();
    std_api::<LockedDict<String, i64>>();
}

macro_rules! usual_methods {
    ($name:ident, $D:ty) => {
        #[test]
        fn $name() {
            use gilfree::Compute;
            let d = <$D>::with_capacity(100);
            assert!(d.capacity() >= 100);
            d.reserve(1000).unwrap();
            assert!(d.capacity() >= 1000);
            // Borrowed lookups: &str for String keys.
            d.insert("x".to_string(), 1).unwrap();
            assert_eq!(d.get("x"), Some(1));
            assert!(d.contains_key("x"));
            assert_eq!(d.remove("x"), Ok(Some(1)));
            // get_or_insert_with: `f` runs only when absent.
            let mut calls = 0;
            assert_eq!(
                d.get_or_insert_with("k".into(), || {
                    calls += 1;
                    7
                }),
                Ok(7)
            );
            assert_eq!(
                d.get_or_insert_with("k".into(), || {
                    calls += 1;
                    8
                }),
                Ok(7)
            );
            assert_eq!(calls, 1);
            // compute: set, keep, remove.
            assert_eq!(
                d.compute("k".into(), |v| Compute::Set(v.unwrap() + 1)),
                Ok(Some(7))
            );
            assert_eq!(d.get("k"), Some(8));
            assert_eq!(d.compute("k".into(), |_| Compute::Keep), Ok(None));
            assert_eq!(
                d.compute("new".into(), |v| {
                    assert!(v.is_none());
                    Compute::Keep
                }),
                Ok(None)
            );
            assert!(!d.contains_key("new"));
            assert_eq!(d.compute("new".into(), |_| Compute::Set(1)), Ok(None));
            assert_eq!(d.compute("k".into(), |_| Compute::Remove), Ok(Some(8)));
            assert_eq!(d.compute("gone".into(), |_| Compute::Remove), Ok(None));
            assert_eq!(d.snapshot(), vec![("new".to_string(), 1)]);
            // The closures run under the writer lock: a write from inside is refused.
            let r = d.compute("new".into(), |_| {
                assert_eq!(
                    d.insert("y".into(), 0),
                    Err(Error::Reentrant(gilfree::Container::Dict))
                );
                assert_eq!(d.get("new"), Some(1)); // reads work
                Compute::Keep
            });
            assert_eq!(r, Ok(None));
            // upsert (the read-modify-write that used to be called `update`).
            d.upsert("new".into(), |v| v.unwrap() * 10).unwrap();
            assert_eq!(d.get("new"), Some(10));
            d.freeze().unwrap();
            assert_eq!(
                d.compute("new".into(), |_| Compute::Remove),
                Err(Error::Frozen(gilfree::Container::Dict))
            );
            assert_eq!(
                d.get_or_insert_with("z".into(), || 0),
                Err(Error::Frozen(gilfree::Container::Dict))
            );
        }
    };
}

usual_methods!(gilfree_usual_methods, GilFreeDict<String, i64>);
usual_methods!(locked_usual_methods, LockedDict<String, i64>);

/// A `reserve` that rebuilds the table (closing the holes of removed entries) during a checked
/// iteration moves order positions: the iteration reports it instead of skipping entries.
fn checked_iteration_sees_reserve<D>(
    d: D,
    reserve: impl Fn(&D),
    iter: impl Fn(&D) -> Vec<Result<u64, Error>>,
) {
    reserve(&d);
    let got = iter(&d);
    // Either every remaining key, in order, or an error after a prefix of them: never a gap.
    let keys: Vec<u64> = got
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(
        keys,
        (2..2 + keys.len() as u64).collect::<Vec<_>>(),
        "{got:?}"
    );
    assert!(
        keys.len() == 4 || got.last().is_some_and(|r| r.is_err()),
        "{got:?}"
    );
}

macro_rules! reserve_during_checked_iteration {
    ($name:ident, $D:ty) => {
        #[test]
        fn $name() {
            let d: $D = (0..6u64).map(|i| (i, i)).collect();
            d.remove(&0).unwrap();
            d.remove(&1).unwrap();
            checked_iteration_sees_reserve(
                d,
                |_| {},
                |d| {
                    let mut it = d.iter_checked();
                    let mut out = vec![it.next().unwrap().map(|(k, _)| k)];
                    d.reserve(100).unwrap();
                    out.extend(it.map(|r| r.map(|(k, _)| k)));
                    out
                },
            );
        }
    };
}

reserve_during_checked_iteration!(gilfree_reserve_during_checked_iteration, GilFreeDict<u64, u64>);
reserve_during_checked_iteration!(locked_reserve_during_checked_iteration, LockedDict<u64, u64>);

/// The frozen views iterate with named iterator types and `IntoIterator`.
#[test]
fn frozen_views_are_into_iterator() {
    let d: GilFreeDict<u32, u32> = GilFreeDict::from([(1, 10), (2, 20), (3, 30)]);
    d.remove(&2).unwrap();
    d.freeze().unwrap();
    let view = d.frozen().unwrap();
    let mut seen = Vec::new();
    for (k, v) in view {
        seen.push((*k, *v));
    }
    assert_eq!(seen, [(1, 10), (3, 30)]);
    assert_eq!(
        (&view)
            .into_iter()
            .rev()
            .map(|(k, _)| *k)
            .collect::<Vec<_>>(),
        [3, 1]
    );
    let l = gilfree::GilFreeList::from([1u8, 2, 3]);
    l.freeze().unwrap();
    let lv = l.frozen().unwrap();
    let it = lv.into_iter();
    assert_eq!(it.len(), 3);
    assert_eq!(it.rev().copied().collect::<Vec<_>>(), [3, 2, 1]);
}

/// A key whose clones are counted and can be made to panic: what `insert_ref` builds.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Minted(u64);

std::thread_local! {
    // Per thread: each test runs on its own, and `to_owned` runs on the caller's.
    static MINTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    static MINT_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Clone for Minted {
    fn clone(&self) -> Minted {
        if MINT_PANICS.get() {
            panic!("injected panic in the key's clone");
        }
        MINTED.set(MINTED.get() + 1);
        Minted(self.0)
    }
}

/// `insert_ref` makes a key only for an insert: an overwrite keeps the stored key and clones
/// nothing; a panicking `to_owned` inserts nothing and leaves the dict usable.
fn insert_ref_makes_a_key_only_when_absent<St: gilfree::DictStore<Minted, u64>>() {
    let d: gilfree::Dict<Minted, u64, gilfree::DefaultHashBuilder, St> = gilfree::Dict::new();
    let minted = || MINTED.get();
    let before = minted();
    assert_eq!(d.insert_ref(&Minted(1), 10), Ok(None));
    assert_eq!(minted(), before + 1, "an insert makes the key");
    assert_eq!(d.insert_ref(&Minted(1), 11), Ok(Some(10)));
    assert_eq!(minted(), before + 1, "an overwrite makes no key");
    assert_eq!(d.insert_ref(&Minted(2), 20), Ok(None));
    assert_eq!(d.insert_ref(&Minted(1), 12), Ok(Some(11)));
    assert_eq!(
        d.keys().iter().map(|k| k.0).collect::<Vec<_>>(),
        [1, 2],
        "an overwrite keeps the position"
    );

    MINT_PANICS.set(true);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        d.insert_ref(&Minted(3), 30)
    }));
    MINT_PANICS.set(false);
    assert!(r.is_err(), "the clone panicked");
    assert_eq!(d.len(), 2);
    assert_eq!(d.get(&Minted(3)), None, "nothing inserted");
    assert_eq!(
        d.insert_ref(&Minted(3), 31),
        Ok(None),
        "usable after the panic"
    );
    assert_eq!(d.get(&Minted(3)), Some(31));
    assert_eq!(d.get(&Minted(1)), Some(12));
    assert_eq!(d.len(), 3);
}

#[test]
fn insert_ref_makes_a_key_only_when_absent_locked() {
    insert_ref_makes_a_key_only_when_absent::<gilfree::LockedStore<Minted, u64>>();
}

#[test]
fn insert_ref_makes_a_key_only_when_absent_gilfree() {
    insert_ref_makes_a_key_only_when_absent::<gilfree::GilFreeStore<Minted, u64>>();
}

/// The dicts may cross `catch_unwind` without `AssertUnwindSafe` (a panicking closure leaves
/// them consistent), as std's collections may.
#[test]
fn dicts_are_unwind_safe_and_usable_after_a_panic() {
    fn unwind_safe<T: std::panic::RefUnwindSafe + std::panic::UnwindSafe>(_: &T) {}
    let g: GilFreeDict<u64, u64> = GilFreeDict::from([(1, 10)]);
    let l: LockedDict<u64, u64> = LockedDict::from([(1, 10)]);
    unwind_safe(&g);
    unwind_safe(&l);
    let r = std::panic::catch_unwind(|| g.upsert(1, |_| panic!("injected")));
    assert!(r.is_err());
    let r = std::panic::catch_unwind(|| l.upsert(1, |_| panic!("injected")));
    assert!(r.is_err());
    assert_eq!((g.get(&1), l.get(&1)), (Some(10), Some(10)), "unchanged");
    assert_eq!(g.insert(2, 20), Ok(None));
    assert_eq!(l.insert(2, 20), Ok(None));
}

/// An interpreter's hash that is the integer itself (Python's `hash(i)` is `i`), with a pure
/// `eq` that counts its calls.
struct IdentityHash {
    eq_calls: std::cell::Cell<usize>,
}

impl gilfree::EqModel<u64> for IdentityHash {
    type Error = std::convert::Infallible;

    fn eq(&self, stored: &u64, probe: &u64) -> Result<bool, Self::Error> {
        self.eq_calls.set(self.eq_calls.get() + 1);
        Ok(stored == probe)
    }

    fn eq_is_pure(&self, _: &u64, _: &u64) -> bool {
        true
    }
}

impl gilfree::KeyModel<u64> for IdentityHash {
    fn hash(&self, key: &u64) -> Result<u64, Self::Error> {
        Ok(*key)
    }
}

/// Consecutive integer keys under an identity hash: a table that took the start group from
/// the tag's high bits put them all in one chain, and each lookup compared hundreds of keys
/// (quadratic time); the table is rebuilt spread instead, and a lookup compares about one.
fn identity_hashes_stay_scattered<D: Mapping<u64, String> + Default>() {
    let d = D::default();
    let m = IdentityHash {
        eq_calls: std::cell::Cell::new(0),
    };
    let n = 20_000u64;
    for i in 0..n {
        assert_eq!(d.insert_in(&m, i, i.to_string()).unwrap(), None);
    }
    // Churn: remove every third key, put half of them back.
    for i in (0..n).step_by(3) {
        assert_eq!(d.remove_in(&m, &i).unwrap(), Some(i.to_string()));
    }
    for i in (0..n).step_by(6) {
        assert_eq!(d.insert_in(&m, i, format!("again {i}")).unwrap(), None);
    }
    m.eq_calls.set(0);
    for i in 0..n + 1000 {
        let want = match i {
            i if i >= n => None,
            i if i % 6 == 0 => Some(format!("again {i}")),
            i if i % 3 == 0 => None,
            i => Some(i.to_string()),
        };
        assert_eq!(d.get_in(&m, &i).unwrap(), want, "key {i}");
    }
    let calls = m.eq_calls.get();
    assert!(
        calls <= 2 * n as usize,
        "{calls} eq calls for {} lookups",
        n + 1000
    );
}

#[test]
fn gilfree_identity_hashes_stay_scattered() {
    identity_hashes_stay_scattered::<GilFreeDict<u64, String>>();
}

#[test]
fn locked_identity_hashes_stay_scattered() {
    identity_hashes_stay_scattered::<LockedDict<u64, String>>();
}

/// `reserve` past the most entries a dict holds is `TooLarge`, not a panic (it was one from an
/// empty dict) nor a silent no-op (an overflowing sum wrapped around on a non-empty one); the
/// dict is unchanged and usable. A reservation within the limit still works.
fn reserve_too_much_is_an_error<D: Mapping<u64, String> + Default>() {
    let d = D::default();
    let m = d.plain();
    assert_eq!(d.reserve(usize::MAX), Err(Error::TooLarge));
    for k in 0..10 {
        d.insert_in(&m, k, k.to_string()).unwrap();
    }
    for additional in [usize::MAX, usize::MAX - 5, (1 << 31) - 9] {
        assert_eq!(d.reserve(additional), Err(Error::TooLarge), "{additional}");
    }
    assert_eq!(d.keys(), (0..10).collect::<Vec<_>>());
    d.reserve(1_000).unwrap();
    d.insert_in(&m, 10, "10".into()).unwrap();
    assert_eq!(d.len(), 11);
    assert_eq!(
        Error::<std::convert::Infallible>::TooLarge.to_string(),
        "too large to allocate"
    );
}

#[test]
fn gilfree_reserve_too_much_is_an_error() {
    reserve_too_much_is_an_error::<GilFreeDict<u64, String>>();
}

#[test]
fn locked_reserve_too_much_is_an_error() {
    reserve_too_much_is_an_error::<LockedDict<u64, String>>();
}
