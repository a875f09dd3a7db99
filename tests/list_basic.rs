//! Python list semantics of both lists through the shared `Sequence` API, the error values
//! of bad input, and the variant-specific extras (views, borrowed reads, freeze).

use std::cmp::Ordering;

use gilfree::{Container, Error, GilFreeList, LockedList, Sequence, Slice};

fn python_semantics<L: Sequence<i64> + Default>() {
    let l = L::default();
    assert!(l.is_empty());
    l.append(1).unwrap();
    l.extend([2, 3, 4]).unwrap();
    l.insert(0, 0).unwrap();
    l.insert(-1, 35).unwrap(); // before the last item, like Python
    l.insert(100, 5).unwrap(); // clamped to the end
    l.insert(-100, -1).unwrap(); // clamped to the start
    assert_eq!(l.snapshot(), vec![-1, 0, 1, 2, 3, 35, 4, 5]);
    assert_eq!(l.len(), 8);
    assert_eq!(l.get(0).unwrap(), -1);
    assert_eq!(l.get(-1).unwrap(), 5);
    assert_eq!(l.get(-8).unwrap(), -1);
    assert_eq!(l.get(8), Err(Error::IndexOutOfRange));
    assert_eq!(l.get(-9), Err(Error::IndexOutOfRange));
    assert_eq!(l.get(isize::MIN), Err(Error::IndexOutOfRange));
    assert_eq!(l.get_with(2, |x| x * 100).unwrap(), 100);
    let v0 = l.version();
    l.set(-3, 30).unwrap();
    assert_ne!(l.version(), v0);
    assert_eq!(l.set(8, 0), Err(Error::IndexOutOfRange));
    assert_eq!(l.pop().unwrap(), 5);
    assert_eq!(l.pop_at(0).unwrap(), -1);
    assert_eq!(l.pop_at(-2).unwrap(), 30);
    assert_eq!(l.pop_at(10), Err(Error::IndexOutOfRange));
    assert_eq!(l.snapshot(), vec![0, 1, 2, 3, 4]);
    assert!(l.contains(&3));
    assert!(!l.contains(&9));
    assert_eq!(l.index(&3).unwrap(), 3);
    assert_eq!(l.index(&9), Err(Error::ValueNotFound));
    assert_eq!(l.index_in(&gilfree::Plain(&()), &1, -4, -2).unwrap(), 1);
    assert_eq!(
        l.index_in(&gilfree::Plain(&()), &1, 2, isize::MAX),
        Err(Error::ValueNotFound)
    );
    l.extend([3, 3]).unwrap();
    assert_eq!(l.count(&3), 3);
    l.remove(&3).unwrap();
    assert_eq!(l.snapshot(), vec![0, 1, 2, 4, 3, 3]);
    assert_eq!(l.remove(&9), Err(Error::ValueNotFound));
    // Slices.
    assert_eq!(l.get_slice(Slice::range(1, 3)).unwrap(), vec![1, 2]);
    assert_eq!(
        l.get_slice(Slice::new(None, None, Some(-2))).unwrap(),
        vec![3, 4, 1]
    );
    assert_eq!(
        l.get_slice(Slice::new(None, None, Some(0))),
        Err(Error::ZeroStep)
    );
    l.set_slice(Slice::range(1, 3), [10, 11, 12]).unwrap();
    assert_eq!(l.snapshot(), vec![0, 10, 11, 12, 4, 3, 3]);
    l.set_slice(Slice::range(5, 2), [7]).unwrap(); // empty slice: an insertion at 5
    assert_eq!(l.snapshot(), vec![0, 10, 11, 12, 4, 7, 3, 3]);
    assert_eq!(
        l.set_slice(Slice::new(None, None, Some(2)), [1, 2]),
        Err(Error::SliceLength { slice: 4, given: 2 })
    );
    assert_eq!(
        l.set_slice(Slice::new(None, None, Some(-1)), [1]),
        Err(Error::SliceLength { slice: 8, given: 1 })
    );
    l.set_slice(Slice::new(None, None, Some(2)), [1, 2, 3, 4])
        .unwrap();
    assert_eq!(l.snapshot(), vec![1, 10, 2, 12, 3, 7, 4, 3]);
    l.del_slice(Slice::new(Some(1), None, Some(2))).unwrap();
    assert_eq!(l.snapshot(), vec![1, 2, 3, 4]);
    l.del_slice(Slice::new(None, None, Some(-3))).unwrap(); // indices 3, 0
    assert_eq!(l.snapshot(), vec![2, 3]);
    l.del_slice(Slice::full()).unwrap();
    assert!(l.is_empty());
    assert_eq!(l.pop(), Err(Error::Empty(Container::List)));
    assert_eq!(l.pop_at(0), Err(Error::Empty(Container::List)));
    // Sort, reverse, repetition, concatenation, comparison.
    l.extend([3, 1, 2, 1]).unwrap();
    l.sort().unwrap();
    assert_eq!(l.snapshot(), vec![1, 1, 2, 3]);
    l.sort_by(true, |a, b| Ok::<_, ()>(a < b)).unwrap();
    assert_eq!(l.snapshot(), vec![3, 2, 1, 1]);
    l.sort_by_key(false, |x| Ok::<_, ()>(-x), |a, b| Ok(a < b))
        .unwrap();
    assert_eq!(l.snapshot(), vec![3, 2, 1, 1]);
    l.reverse().unwrap();
    assert_eq!(l.snapshot(), vec![1, 1, 2, 3]);
    let twice = l.repeat(2).unwrap();
    assert_eq!(twice.snapshot(), vec![1, 1, 2, 3, 1, 1, 2, 3]);
    assert!(l.repeat(0).unwrap().is_empty());
    // Python's MemoryError, as a value.
    assert_eq!(l.repeat(usize::MAX).err(), Some(Error::TooLarge));
    assert_eq!(l.repeat_in_place(usize::MAX), Err(Error::TooLarge));
    let both = l.concat(&twice);
    assert_eq!(both.len(), 12);
    l.repeat_in_place(2).unwrap();
    assert_eq!(l.snapshot(), twice.snapshot());
    let m = gilfree::Plain(&());
    assert!(l.eq_in(&m, &twice).unwrap());
    assert!(!l.eq_in(&m, &both).unwrap());
    let c = l.copy();
    c.set(0, 0).unwrap();
    let cmp = |a: &i64, b: &i64| Ok::<_, std::convert::Infallible>(a.partial_cmp(b));
    assert_eq!(c.compare_in(&m, &l, cmp).unwrap(), Some(Ordering::Less));
    assert_eq!(l.compare_in(&m, &both, cmp).unwrap(), Some(Ordering::Less)); // prefix
    l.repeat_in_place(0).unwrap();
    assert!(l.is_empty());
    l.append(1).unwrap();
    l.clear().unwrap();
    assert!(l.is_empty());
    // Freeze.
    l.append(7).unwrap();
    l.freeze().unwrap();
    assert!(l.is_frozen());
    let frozen = Err(Error::Frozen(Container::List));
    assert_eq!(l.append(1), frozen);
    assert_eq!(l.extend([1]), frozen);
    assert_eq!(l.insert(0, 1), frozen);
    assert_eq!(l.pop().map(drop), frozen);
    assert_eq!(l.set(0, 1), frozen);
    assert_eq!(l.remove(&7), frozen);
    assert_eq!(l.del_slice(Slice::full()), frozen);
    assert_eq!(l.clear(), frozen);
    assert_eq!(l.sort(), frozen);
    assert_eq!(
        l.sort_by(false, |a, b| Ok::<_, ()>(a < b)),
        Err(Error::Frozen(Container::List))
    );
    assert_eq!(l.get(0).unwrap(), 7);
    assert!(!l.copy().is_frozen());
}

#[test]
fn gilfree_python_semantics() {
    python_semantics::<GilFreeList<i64>>();
}

#[test]
fn locked_python_semantics() {
    python_semantics::<LockedList<i64>>();
}

#[test]
fn error_messages_mirror_cpython() {
    let l: GilFreeList<i32> = GilFreeList::new();
    assert_eq!(l.get(0).unwrap_err().to_string(), "list index out of range");
    assert_eq!(l.pop().unwrap_err().to_string(), "pop from empty list");
    assert_eq!(
        l.remove(&1).unwrap_err().to_string(),
        "list.remove(x): x not in list"
    );
    l.extend([1, 2, 3]).unwrap();
    assert_eq!(
        l.set_slice(Slice::new(None, None, Some(2)), [9])
            .unwrap_err()
            .to_string(),
        "attempt to assign sequence of size 1 to extended slice of size 2"
    );
    assert_eq!(
        l.del_slice(Slice::new(None, None, Some(0)))
            .unwrap_err()
            .to_string(),
        "slice step cannot be zero"
    );
    l.freeze().unwrap();
    assert_eq!(
        l.append(1).unwrap_err().to_string(),
        "cannot modify frozen list"
    );
}

#[test]
fn plain_traits() {
    let a: GilFreeList<f64> = vec![1.0, f64::NAN].into();
    let b: GilFreeList<f64> = a.copy();
    // NaN != NaN: no identity shortcut for plain values, as for Rust's Vec.
    assert!(a != b);
    assert_eq!(a.partial_cmp(&b), None);
    let x: LockedList<i32> = (0..3).collect();
    let y: LockedList<i32> = vec![0, 1, 3].into();
    assert!(x < y);
    assert_eq!(x, x.clone());
    assert_eq!(format!("{x:?}"), "[0, 1, 2]");
    assert_eq!(x.iter().collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!((&x).into_iter().sum::<i32>(), 3);
    let g: GilFreeList<i32> = (0..3).collect();
    assert_eq!(format!("{g:?}"), "[0, 1, 2]");
    assert_eq!(g.iter().collect::<Vec<_>>(), vec![0, 1, 2]);
}

#[test]
fn iterator_follows_the_current_list() {
    // CPython's list iterator: an index into the list as it is at each step.
    let l: GilFreeList<i32> = (0..4).collect();
    let mut it = l.iter();
    assert_eq!(it.next(), Some(0));
    l.pop_at(0).unwrap(); // [1, 2, 3]: index 1 is now 2
    assert_eq!(it.next(), Some(2));
    l.append(4).unwrap();
    assert_eq!(it.collect::<Vec<_>>(), vec![3, 4]);
    let mut it = l.iter();
    l.clear().unwrap();
    assert_eq!(it.next(), None);
    l.append(1).unwrap();
    assert_eq!(it.next(), None, "an exhausted iterator stays exhausted");
}

#[test]
fn gilfree_borrowed_reads() {
    let l: GilFreeList<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let pin = l.pin();
    let b = pin.get(1).unwrap();
    // A writer may remove the item: the borrow stays valid while pinned.
    l.pop_at(1).unwrap();
    l.clear().unwrap();
    assert_eq!(*b, "b");
    assert_eq!(pin.len(), 0);
    assert_eq!(pin.get(0).unwrap_err(), Error::IndexOutOfRange);
    drop(pin);
    l.extend(["x".to_string(), "y".to_string()]).unwrap();
    let mut pin = l.pin();
    assert_eq!(
        pin.iter().map(|r| r.cloned()).collect::<Vec<_>>(),
        vec!["x", "y"]
    );
    pin.repin();
    assert_eq!(*pin.get(-1).unwrap(), "y");
    // get_with may write to the list: it holds no lock.
    let n = l.get_with(0, |s| {
        l.append(s.clone() + "!").unwrap();
        s.len()
    });
    assert_eq!(n, Ok(1));
    assert_eq!(l.snapshot(), vec!["x", "y", "x!"]);
}

#[test]
fn locked_read_guard_and_reentrancy() {
    let l: LockedList<i32> = (0..3).collect();
    {
        let g = l.read().unwrap();
        assert_eq!(&*g, &[0, 1, 2]);
        // Reads from the same thread are served; writes are refused instead of deadlocking.
        assert_eq!(l.get(1), Ok(1));
        assert_eq!(l.snapshot(), vec![0, 1, 2]);
        assert_eq!(l.append(3), Err(Error::Reentrant(Container::List)));
        assert!(matches!(l.read(), Err(Error::Reentrant(Container::List))));
    }
    l.append(3).unwrap();
    let r = l.get_with(0, |_| (l.get(3), l.pop()));
    assert_eq!(r, Ok((Ok(3), Err(Error::Reentrant(Container::List)))));
}

#[test]
fn locked_with_lock() {
    let l: LockedList<i32> = (0..3).collect();
    let out = l
        .with_lock(|v| {
            assert_eq!(v.len(), 3);
            v.append(3).unwrap();
            v.insert(0, -1).unwrap();
            assert_eq!(v.pop_at(1).unwrap(), 0);
            v.set(-1, 30).unwrap();
            assert_eq!(v.as_slice(), &[-1, 1, 2, 30]);
            // Reading the list directly is served (clones); writing directly is refused.
            assert_eq!(l.get(0), Ok(-1));
            assert_eq!(l.snapshot(), vec![-1, 1, 2, 30]);
            assert!(l.contains(&30));
            assert_eq!(l.get_with(1, |x| *x), Ok(1));
            assert_eq!(l.append(9), Err(Error::Reentrant(Container::List)));
            assert!(matches!(l.with_lock(|_| ()), Err(Error::Reentrant(_))));
            v.reverse().unwrap();
            v.extend(l.iter()).unwrap(); // reads the list through the re-entrant path
            v.iter().sum::<i32>()
        })
        .unwrap();
    assert_eq!(out, 64);
    assert_eq!(l.len(), 8);
    // Freezing from inside is refused (the enclosing writes would land after it), as for the
    // dicts; after the closure, it works.
    l.with_lock(|v| {
        assert_eq!(l.freeze(), Err(Error::Reentrant(Container::List)));
        v.append(1).unwrap();
    })
    .unwrap();
    l.freeze().unwrap();
    assert_eq!(l.append(2), Err(Error::Frozen(Container::List)));
    assert_eq!(l.frozen().unwrap().get(-1), Ok(&1));
}

#[test]
fn gilfree_with_lock() {
    let l: GilFreeList<i32> = (0..3).collect();
    let out = l
        .with_lock(|v| {
            v.append(3).unwrap();
            v.insert(0, -1).unwrap();
            assert_eq!(v.pop_at(1).unwrap(), 0);
            assert_eq!(v.pop().unwrap(), 3);
            v.set(-1, 20).unwrap();
            // Lock-free readers (this thread included) see each step as it happens.
            assert_eq!(l.snapshot(), vec![-1, 1, 20]);
            assert_eq!(l.get(-1), Ok(20));
            assert_eq!(l.insert(0, 9), Err(Error::Reentrant(Container::List)));
            v.extend([7, 8]).unwrap();
            v.reverse().unwrap();
            let sum = v.iter().map(|x| *x).sum::<i32>();
            v.clear().unwrap();
            v.append(sum).unwrap();
            sum
        })
        .unwrap();
    assert_eq!(out, 35);
    assert_eq!(l.snapshot(), vec![35]);
}

#[test]
fn growth_and_shrink_keep_order() {
    let g: GilFreeList<usize> = GilFreeList::new();
    let l: LockedList<usize> = LockedList::new();
    let mut v = Vec::new();
    for i in 0..2000 {
        g.append(i).unwrap();
        l.append(i).unwrap();
        v.push(i);
        if i % 3 == 0 {
            g.insert(0, i).unwrap();
            l.insert(0, i).unwrap();
            v.insert(0, i);
        }
    }
    assert_eq!(g.snapshot(), v);
    assert_eq!(l.snapshot(), v);
    while v.len() > 3 {
        let first = v.remove(0);
        assert_eq!(g.pop_at(0).unwrap(), first);
        assert_eq!(l.pop_at(0).unwrap(), first);
        let last = v.pop().unwrap();
        assert_eq!(g.pop().unwrap(), last);
        assert_eq!(l.pop().unwrap(), last);
    }
    assert_eq!(g.snapshot(), v);
    assert_eq!(l.snapshot(), v);
}

#[test]
fn values_are_dropped_exactly_once() {
    use std::sync::atomic::{AtomicIsize, Ordering::SeqCst};
    use std::sync::Arc;
    static LIVE: AtomicIsize = AtomicIsize::new(0);
    #[derive(Debug)]
    struct D(Arc<()>);
    // SAFETY: one `Arc`: a non-null pointer, the count on the heap.
    unsafe impl gilfree::InlineWord for D {}
    impl Clone for D {
        fn clone(&self) -> D {
            LIVE.fetch_add(1, SeqCst);
            D(self.0.clone())
        }
    }
    impl Drop for D {
        fn drop(&mut self) {
            LIVE.fetch_sub(1, SeqCst);
        }
    }
    fn d() -> D {
        LIVE.fetch_add(1, SeqCst);
        D(Arc::new(()))
    }
    {
        let g: GilFreeList<D> = GilFreeList::new();
        for _ in 0..100 {
            g.append(d()).unwrap();
        }
        g.insert(0, d()).unwrap();
        drop(g.pop_at(3).unwrap());
        g.set(0, d()).unwrap();
        g.set_slice(Slice::range(0, 10), [d(), d()]).unwrap();
        g.del_slice(Slice::new(None, None, Some(3))).unwrap();
        g.repeat_in_place(2).unwrap();
        g.sort_by(false, |_, _| Ok::<_, ()>(false)).unwrap();
        drop(g.copy());
        g.clear().unwrap();
        g.append(d()).unwrap();
        let l: LockedList<D> = LockedList::new();
        for _ in 0..10 {
            l.append(d()).unwrap();
        }
        l.set_slice(Slice::range(0, 5), [d()]).unwrap();
        l.del_slice(Slice::new(None, None, Some(2))).unwrap();
        l.with_lock(|v| {
            v.pop().unwrap();
            v.clear().unwrap();
        })
        .unwrap();
        l.append(d()).unwrap();
    }
    // Retired items are freed by the epoch collector: push this thread's garbage through.
    for _ in 0..64 {
        let g: GilFreeList<u8> = GilFreeList::new();
        g.append(0).unwrap();
        for _ in 0..256 {
            drop(g.get(0));
        }
        g.clear().unwrap();
    }
    let live = LIVE.load(SeqCst);
    assert!(live >= 0, "a value was dropped twice ({live})");
}

/// `repeat` checks the size in bytes of the items it would allocate, not their count
/// (`LockedList<[u64; 4]>` items are 32 bytes): `Error::TooLarge`, never a capacity panic.
#[test]
fn repeat_of_large_items_is_too_large() {
    let l = LockedList::from_vec(vec![[7u64; 4]]);
    let n = isize::MAX as usize / 16;
    assert_eq!(l.repeat(n).err(), Some(Error::TooLarge));
    assert_eq!(l.repeat_in_place(n), Err(Error::TooLarge));
    assert_eq!(l.snapshot(), vec![[7u64; 4]]);
    let g = GilFreeList::from_vec(vec![gilfree::BoxedValue([7u64; 4])]);
    assert!(matches!(g.repeat(n), Err(Error::TooLarge)));
    assert_eq!(g.repeat_in_place(n), Err(Error::TooLarge));
}

mod clone_panics {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;

    use gilfree::{GilFreeList, LockedList, Sequence};

    /// Counts live values; the clone budget runs out (and `clone` panics) at zero.
    #[derive(Default)]
    struct Live {
        live: AtomicUsize,
        clones_left: AtomicIsize,
    }

    struct Fragile(Arc<Live>);

    impl Fragile {
        fn new(live: &Arc<Live>) -> Fragile {
            live.live.fetch_add(1, SeqCst);
            Fragile(live.clone())
        }
    }

    impl Clone for Fragile {
        fn clone(&self) -> Fragile {
            if self.0.clones_left.fetch_sub(1, SeqCst) <= 0 {
                panic!("clone budget exhausted");
            }
            Fragile::new(&self.0)
        }
    }

    impl Drop for Fragile {
        fn drop(&mut self) {
            self.0.live.fetch_sub(1, SeqCst);
        }
    }

    impl gilfree::Storable for Fragile {
        type Storage = gilfree::storage::Boxed;
    }

    /// A `Clone` that panics part-way through `repeat`/`repeat_in_place` leaves the list as it
    /// was and usable, and every clone made before the panic is dropped.
    fn no_leak<L: Sequence<Fragile> + Default>() {
        let live = Arc::new(Live::default());
        let l = L::default();
        for _ in 0..10 {
            l.append(Fragile::new(&live)).unwrap();
        }
        for attempt in 0..2 {
            live.clones_left.store(15, SeqCst);
            let r = catch_unwind(AssertUnwindSafe(|| {
                if attempt == 0 {
                    let _ = l.repeat_in_place(3);
                } else {
                    let _ = l.repeat(3);
                }
            }));
            assert!(r.is_err(), "the 16th clone panics");
            gilfree::collect_garbage();
            gilfree::collect_garbage();
            assert_eq!(l.len(), 10);
            assert_eq!(
                live.live.load(SeqCst),
                10,
                "attempt {attempt}: clones leaked"
            );
        }
        // The lock was released: the list still works.
        live.clones_left.store(1000, SeqCst);
        l.repeat_in_place(2).unwrap();
        assert_eq!(l.len(), 20);
        drop(l);
        gilfree::collect_garbage();
        assert_eq!(live.live.load(SeqCst), 0);
    }

    #[test]
    fn gilfree_repeat_clone_panic_leaks_nothing() {
        no_leak::<GilFreeList<Fragile>>();
    }

    #[test]
    fn locked_repeat_clone_panic_leaks_nothing() {
        no_leak::<LockedList<Fragile>>();
    }
}

/// The standard traits and the usual methods, on both lists.
fn std_list_api<L>()
where
    L: Sequence<i64> + Default + std::fmt::Debug + Eq + Extend<i64> + From<[i64; 3]>,
    for<'a> &'a L: IntoIterator<Item = i64>,
{
    let mut l = L::from([1, 2, 3]);
    Extend::extend(&mut l, [4, 5]);
    assert_eq!((&l).into_iter().collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    let mut m = L::from([1, 2, 3]);
    Extend::extend(&mut m, [4, 5]);
    assert_eq!(l, m);
    assert_eq!(format!("{l:?}"), "[1, 2, 3, 4, 5]");
}

#[test]
fn std_traits_on_both_lists() {
    std_list_api::<GilFreeList<i64>>();
    std_list_api::<LockedList<i64>>();
}

#[test]
fn capacity_and_reserve() {
    let g = GilFreeList::<u64>::with_capacity(10);
    assert!(g.capacity() >= 10);
    g.reserve(1000).unwrap();
    assert!(g.capacity() >= 1000);
    let v0 = g.version();
    g.extend(0..1000).unwrap();
    assert!(g.capacity() >= 1000 && g.version() != v0);
    assert_eq!(g.reserve(usize::MAX), Err(Error::TooLarge));
    let l = LockedList::<u64>::with_capacity(10);
    assert!(l.capacity() >= 10);
    l.reserve(1000).unwrap();
    assert!(l.capacity() >= 1000);
    assert_eq!(l.reserve(usize::MAX), Err(Error::TooLarge));
    l.freeze().unwrap();
    assert_eq!(l.reserve(1), Err(Error::Frozen(Container::List)));
}

/// The lists may cross `catch_unwind` without `AssertUnwindSafe` (a panicking comparator
/// leaves them consistent), as std's `Vec` may.
#[test]
fn lists_are_unwind_safe_and_usable_after_a_panic() {
    fn unwind_safe<T: std::panic::RefUnwindSafe + std::panic::UnwindSafe>(_: &T) {}
    let g = GilFreeList::from_iter([3u64, 1, 2]);
    let l = LockedList::from_iter([3u64, 1, 2]);
    unwind_safe(&g);
    unwind_safe(&l);
    let r = std::panic::catch_unwind(|| {
        g.sort_by(false, |_, _| -> Result<bool, ()> { panic!("injected") })
    });
    assert!(r.is_err());
    let r = std::panic::catch_unwind(|| {
        l.sort_by(false, |_, _| -> Result<bool, ()> { panic!("injected") })
    });
    assert!(r.is_err());
    for items in [g.snapshot(), l.snapshot()] {
        let mut sorted = items.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [1, 2, 3], "the same items after the panic");
    }
    assert_eq!(g.append(4), Ok(()));
    assert_eq!(l.append(4), Ok(()));
    assert_eq!((g.len(), l.len()), (4, 4));
}
