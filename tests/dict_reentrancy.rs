//! Re-entrancy, failing and panicking callbacks, call counts, and checked iteration, for both
//! dicts.
//!
//! Every test body runs under a watchdog (a deadlock fails the test after
//! [`WATCHDOG_SECS`](common::WATCHDOG_SECS) instead of hanging the suite). The interpreter model
//! is [`common::Vm`]: keys are [`Obj`] handles, most tests use a constant hash so that every
//! lookup has to call the script `eq` on every stored key.

mod common;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    assert_obj_state, dict_items, expect_panic, model_insert, obj_dict, Counted, HashFn, Obj,
    ObjModel, PlainDict, ScriptError, TestDict, Tracker, Vm,
};
use gilfree::{Container, Dict, DictStore, Error, LockedDict, MAX_LOOKUP_RESTARTS};
use indexmap::IndexMap;

type Log = Arc<Mutex<Vec<String>>>;
type R<T> = Result<T, Error<ScriptError>>;

const REENTRANT: Error = Error::Reentrant(Container::Dict);

/// A model whose every key collides: each lookup calls `eq` on each stored key in turn.
fn colliding() -> Vm {
    Vm::new(HashFn::Const(7))
}

// ---------------------------------------------------------------------------------------------
// Keyed operations, run on a dict and on its model
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum KOp {
    Get,
    GetWith,
    Contains,
    Insert,
    Remove,
    RemoveEntry,
    SetDefault,
    UpdateIn,
}

/// The four operations the re-entrancy matrix runs.
const CORE_OPS: [KOp; 4] = [KOp::Get, KOp::Insert, KOp::Remove, KOp::SetDefault];
/// Every keyed operation.
const ALL_OPS: [KOp; 8] = [
    KOp::Get,
    KOp::GetWith,
    KOp::Contains,
    KOp::Insert,
    KOp::Remove,
    KOp::RemoveEntry,
    KOp::SetDefault,
    KOp::UpdateIn,
];

/// Runs `op` with `probe` on the dict; the outcome as a comparable string.
fn run_op<D: TestDict<Obj, u64>>(d: &D, vm: &Vm, op: KOp, probe: &Obj) -> R<String> {
    Ok(match op {
        KOp::Get => format!("{:?}", d.get_in(vm, probe)?),
        KOp::GetWith => format!("{:?}", d.get_with_in(vm, probe, |v| *v)?),
        KOp::Contains => format!("{:?}", d.contains_key_in(vm, probe)?.then_some(())),
        KOp::Insert => format!("{:?}", d.insert_in(vm, probe.clone(), 77)?),
        KOp::Remove => format!("{:?}", d.remove_in(vm, probe)?),
        KOp::RemoveEntry => format!(
            "{:?}",
            d.remove_entry_in(vm, probe)?.map(|(k, v)| (k.val(), v))
        ),
        KOp::SetDefault => format!("{:?}", Some(d.setdefault_in(vm, probe.clone(), 77)?)),
        KOp::UpdateIn => format!(
            "{:?}",
            d.upsert_in(vm, probe.clone(), |old| old.map_or(77, |v| v + 1))?
        ),
    })
}

/// Runs `op` with `probe` on the model; the outcome `run_op` must return.
fn model_op(model: &mut ObjModel, op: KOp, probe: &Obj) -> String {
    let k = probe.val();
    match op {
        KOp::Get | KOp::GetWith => format!("{:?}", model.get(&k).map(|e| e.1)),
        KOp::Contains => format!("{:?}", model.contains_key(&k).then_some(())),
        KOp::Insert => format!("{:?}", model_insert(model, probe, 77)),
        KOp::Remove => format!("{:?}", model.shift_remove(&k).map(|e| e.1)),
        KOp::RemoveEntry => format!("{:?}", model.shift_remove(&k).map(|e| (k, e.1))),
        KOp::SetDefault => {
            let v = model.get(&k).map_or(77, |e| e.1);
            if !model.contains_key(&k) {
                model_insert(model, probe, 77);
            }
            format!("{:?}", Some(v))
        }
        KOp::UpdateIn => {
            let old = model.get(&k).map(|e| e.1);
            format!(
                "{:?}",
                model_insert(model, probe, old.map_or(77, |v| v + 1))
            )
        }
    }
}

/// The dict still works for every operation, from this thread and from another one (no lock
/// left held, nothing poisoned), and still matches the model.
fn assert_usable<D: TestDict<Obj, u64>>(d: &Arc<D>, vm: &Vm, model: &mut ObjModel, ctx: &str) {
    assert_obj_state(&**d, model, ctx);
    for (k, op) in [
        (40, KOp::Insert),
        (40, KOp::Get),
        (41, KOp::SetDefault),
        (40, KOp::UpdateIn),
        (41, KOp::Remove),
    ] {
        let probe = Obj::new(k);
        let want = model_op(model, op, &probe);
        assert_eq!(
            run_op(&**d, vm, op, &probe),
            Ok(want),
            "{ctx}: afterwards, {op:?}({k})"
        );
    }
    let other = Arc::clone(d);
    let snapshot = model.clone();
    let ctx2 = ctx.to_string();
    std::thread::spawn(move || {
        let vm = colliding();
        let mut model = snapshot;
        for (k, op) in [(42, KOp::Insert), (42, KOp::Get), (42, KOp::Remove)] {
            let probe = Obj::new(k);
            let want = model_op(&mut model, op, &probe);
            assert_eq!(
                run_op(&*other, &vm, op, &probe),
                Ok(want),
                "{ctx2}: afterwards, from another thread, {op:?}({k})"
            );
        }
        assert_obj_state(&*other, &model, &ctx2);
    })
    .join()
    .expect("the dict is usable from another thread");
    assert_obj_state(&**d, model, ctx);
}

// ---------------------------------------------------------------------------------------------
// Script eq that re-enters the dict being searched
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Hook {
    Insert,
    Delete,
    Clear,
    Read,
}

/// `eq` (impure) runs `hook` once, re-entering the same dict, during each core operation, with
/// a probe equal to the first stored key and with a probe equal to none. A write must act as
/// if the hook's mutation happened first (it validates after `eq`, restarting if needed); a
/// read answers from the candidates it cloned before `eq` ran, as if it happened just before
/// the hook. No deadlock, and the dict stays usable.
fn eq_hook_matrix<D: TestDict<Obj, u64>>(hook: Hook)
where
    D::Hasher: Default,
{
    for op in CORE_OPS {
        for equal in [true, false] {
            let ctx = format!(
                "{}: eq {hook:?}s during {op:?} (probe equal: {equal})",
                D::NAME
            );
            let vm = colliding();
            let (d, mut model) = obj_dict::<D>(&vm, &[(1, 10), (5, 50)]);
            let d = Arc::new(d);
            let log: Log = Log::default();
            let x = Obj::new(9);
            {
                let (d, log, x) = (Arc::clone(&d), Arc::clone(&log), x.clone());
                vm.set_hook_once(move |vm, stored, _probe| {
                    let entry = match hook {
                        Hook::Insert => format!("{:?}", d.insert_in(vm, x.clone(), 90)),
                        Hook::Delete => format!("{:?}", d.remove_in(vm, stored)),
                        Hook::Clear => format!("{:?}", d.clear()),
                        Hook::Read => format!(
                            "{:?} {} {:?} {}",
                            d.get_in(vm, stored),
                            d.len(),
                            d.keys().iter().map(Obj::val).collect::<Vec<_>>(),
                            d.snapshot().len(),
                        ),
                    };
                    log.lock().unwrap().push(entry);
                });
            }
            let probe = Obj::new(if equal { 1 } else { 2 });
            let e0 = vm.eq_calls();
            let got = run_op(&*d, &vm, op, &probe);
            assert!(!vm.hook_pending(), "{ctx}: eq was never called");
            let want_log = match hook {
                Hook::Insert => "Ok(None)",
                Hook::Delete => "Ok(Some(10))",
                Hook::Clear => "Ok(())",
                Hook::Read => "Ok(Some(10)) 2 [1, 5] 2",
            };
            assert_eq!(
                *log.lock().unwrap(),
                vec![want_log.to_string()],
                "{ctx}: the hook ran"
            );
            let is_read = matches!(op, KOp::Get | KOp::GetWith | KOp::Contains);
            let read_want = is_read.then(|| model_op(&mut model, op, &probe));
            match hook {
                Hook::Insert => {
                    model_insert(&mut model, &x, 90);
                }
                Hook::Delete => {
                    model.shift_remove(&1);
                }
                Hook::Clear => model.clear(),
                Hook::Read => {}
            }
            let want = read_want.unwrap_or_else(|| model_op(&mut model, op, &probe));
            assert_eq!(got, Ok(want), "{ctx}: result");
            assert_obj_state(&*d, &model, &ctx);
            if hook == Hook::Read {
                // Nothing changed, so nothing restarted: each candidate compared once.
                let want_eq = if equal { 1 } else { 2 };
                assert_eq!(vm.eq_calls() - e0, want_eq, "{ctx}: eq calls");
            }
            assert_usable(&d, &vm, &mut model, &ctx);
        }
    }
}

fn eq_inserts_into_dict_during_lookup<D: TestDict<Obj, u64>>()
where
    D::Hasher: Default,
{
    eq_hook_matrix::<D>(Hook::Insert)
}

fn eq_deletes_from_dict_during_lookup<D: TestDict<Obj, u64>>()
where
    D::Hasher: Default,
{
    eq_hook_matrix::<D>(Hook::Delete)
}

fn eq_clears_dict_during_lookup<D: TestDict<Obj, u64>>()
where
    D::Hasher: Default,
{
    eq_hook_matrix::<D>(Hook::Clear)
}

fn eq_reads_dict_during_lookup<D: TestDict<Obj, u64>>()
where
    D::Hasher: Default,
{
    eq_hook_matrix::<D>(Hook::Read)
}

/// An eq that removes and re-inserts the candidate on every call (a new entry with the same
/// hash each time) makes every write's validation fail: a write gives up with
/// `MutatedDuringLookup` after `MAX_LOOKUP_RESTARTS` restarts (one eq per attempt) and has no
/// effect of its own. A read never restarts: it answers from the candidate it cloned, after one
/// eq. Either way the dict stays usable.
fn eq_mutating_on_every_call_gives_up<D: TestDict<Obj, u64>>()
where
    D::Hasher: Default,
{
    for op in ALL_OPS {
        let ctx = format!("{}: eq re-inserts on every call during {op:?}", D::NAME);
        let vm = colliding();
        let (d, mut model) = obj_dict::<D>(&vm, &[(1, 10)]);
        let d = Arc::new(d);
        let counter = Arc::new(AtomicU64::new(100));
        {
            let (d, counter) = (Arc::clone(&d), Arc::clone(&counter));
            vm.set_hook(move |vm, stored, _| {
                let n = counter.fetch_add(1, SeqCst);
                // `stored` is identical to the stored key (no eq); once it is removed the dict
                // is empty, so the re-insert compares nothing either: no recursion.
                d.remove_in(vm, stored).unwrap();
                d.insert_in(vm, stored.clone(), n).unwrap();
            });
        }
        let e0 = vm.eq_calls();
        let got = run_op(&*d, &vm, op, &Obj::new(2));
        vm.clear_hook();
        let is_read = matches!(op, KOp::Get | KOp::GetWith | KOp::Contains);
        if is_read {
            assert_eq!(got, Ok(String::from("None")), "{ctx}");
            assert_eq!(vm.eq_calls() - e0, 1, "{ctx}: a read compares once");
        } else {
            assert_eq!(got, Err(Error::MutatedDuringLookup), "{ctx}");
            assert_eq!(
                vm.eq_calls() - e0,
                MAX_LOOKUP_RESTARTS + 1,
                "{ctx}: one eq per attempt (the first and {MAX_LOOKUP_RESTARTS} restarts)"
            );
        }
        assert_eq!(
            Error::<ScriptError>::MutatedDuringLookup.to_string(),
            "dict mutated during lookup"
        );
        // The hook's overwrites landed; the failed operation did nothing.
        model.get_mut(&1).unwrap().1 = counter.load(SeqCst) - 1;
        assert_usable(&d, &vm, &mut model, &ctx);
    }
}

/// An eq hook that writes to the dict from inside a closure that runs under the dict's lock
/// gets `Reentrant`; the lookup itself completes.
fn script_eq_inside_locked_closure<D: TestDict<Obj, u64>>()
where
    D::Hasher: Default,
{
    let ctx = format!("{}: script eq inside upsert_in closure", D::NAME);
    let vm = colliding();
    let (d, mut model) = obj_dict::<D>(&vm, &[(1, 10), (5, 50)]);
    let d = Arc::new(d);
    let log: Log = Log::default();
    {
        let (d, log) = (Arc::clone(&d), Arc::clone(&log));
        vm.set_hook_once(move |vm, _, _| {
            let r = d.insert_in(vm, Obj::new(9), 90);
            log.lock().unwrap().push(format!("{r:?}"));
        });
    }
    let s = model[&1].0.clone();
    let mut inner = None;
    let old = d
        .upsert_in(&vm, s, |old| {
            // Colliding, non-identical probe: eq runs (and its hook tries to write).
            inner = Some(d.get_in(&vm, &Obj::new(5)));
            old.unwrap() + 1
        })
        .unwrap();
    assert_eq!(old, Some(10), "{ctx}");
    assert_eq!(
        inner,
        Some(Ok(Some(50))),
        "{ctx}: the read inside the closure"
    );
    assert_eq!(
        *log.lock().unwrap(),
        vec![format!(
            "{:?}",
            Err::<(), _>(Error::<ScriptError>::Reentrant(Container::Dict))
        )],
        "{ctx}: the eq hook's write was refused"
    );
    model.get_mut(&1).unwrap().1 = 11;
    assert_usable(&d, &vm, &mut model, &ctx);
}

// ---------------------------------------------------------------------------------------------
// Failing and panicking callbacks
// ---------------------------------------------------------------------------------------------

/// A hash that raises: the error comes back, eq is never called, nothing changes.
fn failing_hash_has_no_effect<D: TestDict<Obj, u64>>()
where
    D::Hasher: Default,
{
    for op in ALL_OPS {
        for k in [1, 5, 9] {
            let ctx = format!("{}: failing hash in {op:?}({k})", D::NAME);
            let vm = colliding();
            let (d, mut model) = obj_dict::<D>(&vm, &[(1, 10), (5, 50)]);
            let d = Arc::new(d);
            let (v0, (h0, e0)) = (d.version(), vm.counts());
            vm.fail_hash_after(0);
            let got = run_op(&*d, &vm, op, &Obj::new(k));
            vm.clear_faults();
            assert_eq!(
                got,
                Err(Error::Callback(ScriptError::Hash { call: h0 })),
                "{ctx}"
            );
            assert_eq!(vm.counts(), (h0 + 1, e0), "{ctx}: hash once, no eq");
            assert_eq!(d.version(), v0, "{ctx}: version");
            assert_usable(&d, &vm, &mut model, &ctx);
        }
    }
}

/// An eq that raises (on the first or the second candidate, pure or not): the error comes back
/// and nothing changes.
fn failing_eq_has_no_effect<D: TestDict<Obj, u64>>()
where
    D::Hasher: Default,
{
    for pure in [false, true] {
        for after in [0, 1] {
            for op in ALL_OPS {
                let ctx = format!(
                    "{}: eq fails after {after} (pure {pure}) in {op:?}",
                    D::NAME
                );
                let vm = colliding().with_pure(pure);
                let (d, mut model) = obj_dict::<D>(&vm, &[(1, 10), (5, 50)]);
                let d = Arc::new(d);
                let (v0, e0) = (d.version(), vm.eq_calls());
                vm.fail_eq_after(after);
                // Equal to the second stored key: eq runs on the first, then the second.
                let got = run_op(&*d, &vm, op, &Obj::new(5));
                vm.clear_faults();
                assert_eq!(
                    got,
                    Err(Error::Callback(ScriptError::Eq { call: e0 + after })),
                    "{ctx}"
                );
                assert_eq!(
                    vm.eq_calls(),
                    e0 + after + 1,
                    "{ctx}: eq stops at the error"
                );
                assert_eq!(d.version(), v0, "{ctx}: version");
                assert_usable(&d, &vm, &mut model, &ctx);
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum PanicIn {
    Hash,
    ImpureEq,
    /// A pure eq runs under the dict's lock: the unwind must release it.
    PureEq,
}

/// A panicking hash or eq unwinds out of the operation; the dict is unchanged, consistent, and
/// usable from this and other threads (no lock left held, no poisoning).
fn panicking_callbacks_leave_dict_usable<D: TestDict<Obj, u64>>()
where
    D::Hasher: Default,
{
    for kind in [PanicIn::Hash, PanicIn::ImpureEq, PanicIn::PureEq] {
        for op in ALL_OPS {
            let ctx = format!("{}: panic in {kind:?} during {op:?}", D::NAME);
            let vm = colliding();
            let (d, mut model) = obj_dict::<D>(&vm, &[(1, 10), (5, 50)]);
            let d = Arc::new(d);
            let v0 = d.version();
            match kind {
                PanicIn::Hash => vm.panic_hash_after(0),
                PanicIn::ImpureEq => vm.panic_eq_after(1),
                PanicIn::PureEq => {
                    vm.set_pure(true);
                    vm.panic_eq_after(1)
                }
            }
            let msg = expect_panic(|| run_op(&*d, &vm, op, &Obj::new(5)));
            vm.clear_faults();
            vm.set_pure(false);
            assert!(msg.contains("injected panic"), "{ctx}: {msg}");
            assert_eq!(d.version(), v0, "{ctx}: version");
            assert_usable(&d, &vm, &mut model, &ctx);
        }
    }
}

/// A panicking `upsert_in` closure has no effect.
fn panicking_update_closure_has_no_effect<D: TestDict<Obj, u64>>()
where
    D::Hasher: Default,
{
    for k in [1, 9] {
        let ctx = format!("{}: upsert_in({k}) closure panics", D::NAME);
        let vm = colliding();
        let (d, mut model) = obj_dict::<D>(&vm, &[(1, 10), (5, 50)]);
        let d = Arc::new(d);
        let v0 = d.version();
        expect_panic(|| d.upsert_in(&vm, Obj::new(k), |_| panic!("injected panic in closure")));
        assert_eq!(d.version(), v0, "{ctx}: version");
        assert_usable(&d, &vm, &mut model, &ctx);
    }
}

/// A panicking `get_with_in` closure releases whatever the read held.
fn panicking_get_with_closure_releases_the_dict<D: TestDict<Obj, u64>>()
where
    D::Hasher: Default,
{
    let ctx = format!("{}: get_with_in closure panics", D::NAME);
    let vm = colliding();
    let (d, mut model) = obj_dict::<D>(&vm, &[(1, 10), (5, 50)]);
    let d = Arc::new(d);
    expect_panic(|| d.get_with_in(&vm, &Obj::new(5), |_| -> u64 { panic!("injected panic") }));
    assert_usable(&d, &vm, &mut model, &ctx);
}

/// A `retain` predicate that panics midway leaves the dict consistent: `len` agrees with the
/// entries, the version moved iff entries were removed, and every value is dropped exactly
/// once (nothing leaked, nothing freed twice) once the dict is gone.
fn panicking_retain_closure_leaves_dict_consistent<D: PlainDict<u64, Counted>>()
where
    D::Hasher: Default,
{
    let tracker = Tracker::new();
    let mut problems = Vec::new();
    {
        let d: D = D::make(Default::default());
        for k in 0..6 {
            d.insert(k, Counted::new(&tracker, k, 0)).unwrap();
        }
        let v0 = d.version();
        expect_panic(|| {
            d.retain(|k, _| {
                if *k == 2 {
                    panic!("injected panic in retain predicate");
                }
                false // removes 0 and 1, then panics on 2
            })
        });
        let keys = d.keys();
        if keys != [0, 1, 2, 3, 4, 5] && keys != [2, 3, 4, 5] {
            problems.push(format!("keys after the panic: {keys:?}"));
        }
        if d.len() != keys.len() {
            problems.push(format!(
                "len() is {} but {} entries remain",
                d.len(),
                keys.len()
            ));
        }
        if keys.len() != 6 && d.version() == v0 {
            problems.push("entries were removed but the version did not change".into());
        }
        // Still usable.
        d.insert(9, Counted::new(&tracker, 9, 0)).unwrap();
        d.retain(|k, _| *k != 9).unwrap();
        if d.keys() != keys {
            problems.push(format!("keys after insert+retain: {:?}", d.keys()));
        }
    }
    if !common::settle(|| tracker.live() == 0, Duration::from_secs(5)) {
        problems.push(format!(
            "{} values never dropped after the dict was dropped (created {}, dropped {})",
            tracker.live(),
            tracker.created(),
            tracker.dropped()
        ));
    }
    if tracker.double_drops() != 0 {
        problems.push(format!("{} values dropped twice", tracker.double_drops()));
    }
    assert!(problems.is_empty(), "{}: {problems:#?}", D::NAME);
}

// ---------------------------------------------------------------------------------------------
// Call counts, identity, pure eq
// ---------------------------------------------------------------------------------------------

/// CPython's test_setdefault_atomic: `setdefault` calls hash exactly once and eq at most once
/// per colliding key; `get`, `insert`, `remove`, ... call hash exactly once.
fn hash_once_eq_at_most_once_per_colliding_key<D: TestDict<Obj, u64>>()
where
    D::Hasher: Default,
{
    for pure in [false, true] {
        let ctx = format!("{} (pure eq: {pure})", D::NAME);
        let vm = colliding().with_pure(pure);
        let entries: Vec<(u64, u64)> = (0..5).map(|k| (k, k * 10)).collect();
        let (d, mut model) = obj_dict::<D>(&vm, &entries);
        // A miss compares every colliding key exactly once.
        let c0 = vm.counts();
        let probe = Obj::new(100);
        assert_eq!(d.setdefault_in(&vm, probe.clone(), 1), Ok(1), "{ctx}");
        model_insert(&mut model, &probe, 1);
        assert_eq!(
            vm.counts(),
            (c0.0 + 1, c0.1 + 5),
            "{ctx}: setdefault miss (hash, eq)"
        );
        // A hit on the third key (a fresh, equal object) stops at it.
        let c0 = vm.counts();
        assert_eq!(d.setdefault_in(&vm, Obj::new(2), 1), Ok(20), "{ctx}");
        assert_eq!(
            vm.counts(),
            (c0.0 + 1, c0.1 + 3),
            "{ctx}: setdefault hit (hash, eq)"
        );
        // Every keyed operation hashes once and compares each candidate at most once.
        for op in ALL_OPS {
            for k in [3, 200] {
                let len = model.len();
                let probe = Obj::new(k);
                let want = model_op(&mut model, op, &probe);
                let c0 = vm.counts();
                assert_eq!(run_op(&d, &vm, op, &probe), Ok(want), "{ctx}: {op:?}({k})");
                let (h, e) = (vm.hash_calls() - c0.0, vm.eq_calls() - c0.1);
                assert_eq!(h, 1, "{ctx}: {op:?}({k}) hash calls");
                assert!(
                    e <= len,
                    "{ctx}: {op:?}({k}) made {e} eq calls for {len} keys"
                );
            }
        }
        assert_obj_state(&d, &model, &ctx);
    }
    // Without collisions a hit on a fresh equal object costs one eq, a miss none.
    let vm = Vm::new(HashFn::Full);
    let (d, _) = obj_dict::<D>(&vm, &[(1, 10), (2, 20), (3, 30)]);
    let c0 = vm.counts();
    assert_eq!(d.get_in(&vm, &Obj::new(2)), Ok(Some(20)));
    assert_eq!(vm.counts(), (c0.0 + 1, c0.1 + 1), "{}: get hit", D::NAME);
    let c0 = vm.counts();
    assert_eq!(d.setdefault_in(&vm, Obj::new(4), 40), Ok(40));
    assert_eq!(
        vm.counts(),
        (c0.0 + 1, c0.1),
        "{}: setdefault miss",
        D::NAME
    );
}

/// `identical` answering true settles a comparison: eq is never called (it would panic here).
fn identical_key_never_calls_eq<D: TestDict<Obj, u64>>()
where
    D::Hasher: Default,
{
    for hash in [HashFn::Full, HashFn::Const(7)] {
        let vm = Vm::new(hash);
        // With a constant hash the stored key is the only candidate (another key ahead of it
        // in the chain would legitimately need eq).
        let entries: &[(u64, u64)] = match hash {
            HashFn::Const(_) => &[(1, 10)],
            _ => &[(1, 10), (5, 50)],
        };
        let (d, mut model) = obj_dict::<D>(&vm, entries);
        let s = model[&1].0.clone();
        vm.panic_eq_after(0);
        let (e0, i0) = (vm.eq_calls(), vm.identical_calls());
        for op in ALL_OPS {
            let ctx = format!("{}: {hash:?} {op:?} with the stored key object", D::NAME);
            if !model.contains_key(&1) {
                assert_eq!(d.insert_in(&vm, s.clone(), 10), Ok(None), "{ctx}");
                model_insert(&mut model, &s, 10);
            }
            let want = model_op(&mut model, op, &s);
            assert_eq!(run_op(&d, &vm, op, &s), Ok(want), "{ctx}");
            assert_eq!(vm.eq_calls(), e0, "{ctx}: eq called");
            assert_obj_state(&d, &model, &ctx);
        }
        assert!(
            vm.identical_calls() > i0,
            "{}: identity never asked",
            D::NAME
        );
    }
    // Control: with the identity shortcut off, the same lookup does call eq.
    let vm = colliding().with_identity(false);
    let (d, model) = obj_dict::<D>(&vm, &[(1, 10)]);
    let e0 = vm.eq_calls();
    assert_eq!(d.get_in(&vm, &model[&1].0), Ok(Some(10)));
    assert_eq!(vm.eq_calls(), e0 + 1, "{}: control", D::NAME);
}

/// The pure-eq fast path (eq under the lock) gives the same results, with each candidate
/// compared at most once.
fn pure_eq_path_matches_model<D: TestDict<Obj, u64>>()
where
    D::Hasher: Default,
{
    for hash in [HashFn::Const(3), HashFn::Mod(4)] {
        let vm = Vm::new(hash).with_pure(true);
        let (d, mut model) = obj_dict::<D>(&vm, &[]);
        for i in 0..400u64 {
            let k = i * 7 % 23;
            let op = ALL_OPS[(i % 8) as usize];
            let probe = Obj::new(k);
            let ctx = format!("{}: pure {hash:?} step {i} {op:?}({k})", D::NAME);
            let len = model.len();
            let want = model_op(&mut model, op, &probe);
            let e0 = vm.eq_calls();
            assert_eq!(run_op(&d, &vm, op, &probe), Ok(want), "{ctx}");
            assert!(vm.eq_calls() - e0 <= len, "{ctx}: eq calls");
            assert_eq!(dict_items(&d), common::model_items(&model), "{ctx}");
        }
    }
}

/// A frozen dict runs script `eq` only on candidates whose full hash tag is the key's, as a
/// live one does (CPython compares the stored hash before calling `__eq__`). Under
/// `HashFn::Full`, keys 1 and 129 share their control byte (the tag's low seven bits) and,
/// in a small table, their first group, but not their tag.
fn frozen_lookup_calls_eq_only_on_the_same_hash<St: DictStore<Obj, u64>>() {
    let vm = Vm::new(HashFn::Full);
    let d: Dict<Obj, u64, gilfree::DefaultHashBuilder, St> = Dict::new();
    assert_eq!(d.insert_in(&vm, Obj::new(1), 10), Ok(None));
    let e0 = vm.eq_calls();
    assert_eq!(d.get_in(&vm, &Obj::new(129)), Ok(None));
    assert_eq!(vm.eq_calls(), e0, "live: eq on a key of another hash");
    d.freeze().unwrap();
    let f = d.frozen().unwrap();
    assert_eq!(f.get_in(&vm, &Obj::new(129)).map(|v| v.copied()), Ok(None));
    assert_eq!(vm.eq_calls(), e0, "frozen: eq on a key of another hash");
    assert_eq!(
        f.get_in(&vm, &Obj::new(1)).map(|v| v.copied()),
        Ok(Some(10))
    );
    assert_eq!(vm.eq_calls(), e0 + 1, "frozen: one eq for the key itself");
}

#[test]
fn frozen_lookup_calls_eq_only_on_the_same_hash_locked() {
    frozen_lookup_calls_eq_only_on_the_same_hash::<gilfree::LockedStore<Obj, u64>>();
}

#[test]
fn frozen_lookup_calls_eq_only_on_the_same_hash_gilfree() {
    frozen_lookup_calls_eq_only_on_the_same_hash::<gilfree::GilFreeStore<Obj, u64>>();
}

// ---------------------------------------------------------------------------------------------
// Closures that run under the dict's lock
// ---------------------------------------------------------------------------------------------

type Model = IndexMap<u64, u64>;

fn plain_dict<D: PlainDict<u64, u64>>(n: u64) -> (D, Model)
where
    D::Hasher: Default,
{
    let d = D::make(Default::default());
    let mut model = Model::new();
    for k in 0..n {
        d.insert(k, k * 10).unwrap();
        model.insert(k, k * 10);
    }
    (d, model)
}

fn assert_plain_state<D: PlainDict<u64, u64>>(d: &D, model: &Model, ctx: &str) {
    let want: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(d.items(), want, "{ctx}: items");
    assert_eq!(d.len(), model.len(), "{ctx}: len");
}

/// Every write to `d`; each must fail with `Reentrant` when called under `d`'s own lock.
fn attempt_writes<D: PlainDict<u64, u64>>(d: &D) -> Vec<(&'static str, gilfree::Result<()>)>
where
    D::Hasher: Default,
{
    let other: D = D::make(Default::default());
    other.insert(500, 1).unwrap();
    let m = d.plain();
    vec![
        ("insert", d.insert(100, 1).map(drop)),
        ("insert existing", d.insert(1, 1).map(drop)),
        ("insert_in", d.insert_in(&m, 101, 1).map(drop)),
        ("remove", d.remove(&2).map(drop)),
        ("remove_entry", d.remove_entry(&2).map(drop)),
        ("pop_or", d.pop_or(&2, 0).map(drop)),
        ("setdefault", d.setdefault(102, 1).map(drop)),
        ("upsert", d.upsert(1, |_| 1)),
        ("upsert_in", d.upsert_in(&m, 1, |_| 1).map(drop)),
        ("extend", d.extend([(103, 1)])),
        ("update_from", d.update_from(&other)),
        ("popitem", d.popitem().map(drop)),
        ("retain", d.retain(|_, _| false)),
        ("clear", d.clear()),
    ]
}

fn assert_all_refused(results: &[(&str, gilfree::Result<()>)], ctx: &str) {
    for (name, r) in results {
        assert_eq!(r, &Err(REENTRANT), "{ctx}: {name} from inside");
    }
    assert_eq!(
        REENTRANT.to_string(),
        "dict accessed from inside its own locked update"
    );
}

/// Every lock-free-or-reentrant read of `d`; returns what it saw (compared with the model).
fn reads<D: PlainDict<u64, u64>>(d: &D, model: &Model, ctx: &str) {
    let want: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    let m = d.plain();
    assert_eq!(d.get(&1), model.get(&1).copied(), "{ctx}: get");
    assert_eq!(
        d.get_in(&m, &3),
        Ok(model.get(&3).copied()),
        "{ctx}: get_in"
    );
    assert_eq!(
        d.get_with(&3, |v| *v),
        model.get(&3).copied(),
        "{ctx}: get_with"
    );
    assert_eq!(
        d.get_with(&1, |_| d.get(&3)),
        Some(model.get(&3).copied()),
        "{ctx}: nested get_with"
    );
    assert_eq!(
        d.contains_key(&2),
        model.contains_key(&2),
        "{ctx}: contains_key"
    );
    assert_eq!(d.len(), model.len(), "{ctx}: len");
    assert_eq!(
        d.keys(),
        model.keys().copied().collect::<Vec<_>>(),
        "{ctx}: keys"
    );
    assert_eq!(
        d.values(),
        model.values().copied().collect::<Vec<_>>(),
        "{ctx}: values"
    );
    assert_eq!(d.items(), want, "{ctx}: items");
    assert_eq!(d.iter().collect::<Vec<_>>(), want, "{ctx}: iter");
    assert_eq!(
        d.iter().rev().collect::<Vec<_>>(),
        want.iter().rev().copied().collect::<Vec<_>>(),
        "{ctx}: iter().rev()"
    );
    let checked: Vec<_> = d.iter_checked().collect();
    assert_eq!(
        checked,
        want.iter().map(|e| Ok(*e)).collect::<Vec<_>>(),
        "{ctx}: iter_checked"
    );
}

/// Reads that take the whole dict at once: `snapshot`, `copy`, `==`, `|`.
fn whole_dict_reads<D: PlainDict<u64, u64>>(d: &D, model: &Model, ctx: &str)
where
    D::Hasher: Default,
{
    let want: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(d.snapshot(), want, "{ctx}: snapshot");
    let c = d.copy();
    assert_eq!(c.items(), want, "{ctx}: copy");
    assert!(d.dict_eq(&c), "{ctx}: ==");
    let other: D = D::make(Default::default());
    assert_eq!(d.union(&other).items(), want, "{ctx}: |");
}

/// Inside `update`/`upsert_in`/`retain` closures, writes to the same dict fail with
/// `Reentrant` (no deadlock) and reads see the state before the closure's own write.
fn writes_refused_reads_work_inside_update_and_retain<D: PlainDict<u64, u64>>()
where
    D::Hasher: Default,
{
    // update
    let (d, mut model) = plain_dict::<D>(4);
    let ctx = format!("{}: inside update", D::NAME);
    d.upsert(1, |old| {
        assert_all_refused(&attempt_writes(&d), &ctx);
        reads(&d, &model, &ctx);
        old.unwrap() + 1
    })
    .unwrap();
    model.insert(1, 11);
    assert_plain_state(&d, &model, &ctx);

    // upsert_in on a new key
    let ctx = format!("{}: inside upsert_in", D::NAME);
    let m = d.plain();
    d.upsert_in(&m, 7, |old| {
        assert_eq!(old, None);
        assert_all_refused(&attempt_writes(&d), &ctx);
        reads(&d, &model, &ctx);
        70
    })
    .unwrap();
    model.insert(7, 70);
    assert_plain_state(&d, &model, &ctx);

    // retain
    let ctx = format!("{}: inside retain", D::NAME);
    let mut first = true;
    d.retain(|k, _| {
        if first {
            first = false;
            assert_all_refused(&attempt_writes(&d), &ctx);
            reads(&d, &model, &ctx);
        }
        *k != 2
    })
    .unwrap();
    model.shift_remove(&2);
    assert_plain_state(&d, &model, &ctx);
}

/// Inside `update` and `retain` closures, `snapshot`, `copy`, `==` and `|` (reads) work.
fn whole_dict_reads_inside_update_and_retain<D: PlainDict<u64, u64>>()
where
    D::Hasher: Default,
{
    let (d, mut model) = plain_dict::<D>(4);
    let ctx = format!("{}: inside update", D::NAME);
    d.upsert(1, |old| {
        whole_dict_reads(&d, &model, &ctx);
        old.unwrap() + 1
    })
    .unwrap();
    model.insert(1, 11);
    let ctx = format!("{}: inside retain", D::NAME);
    let mut first = true;
    d.retain(|_, _| {
        if first {
            first = false;
            whole_dict_reads(&d, &model, &ctx);
        }
        true
    })
    .unwrap();
    assert_plain_state(&d, &model, &ctx);
}

/// `freeze` called from inside an `update` closure must not deadlock; afterwards the dict is
/// either frozen (writes fail with `Frozen`) or not (writes work).
fn freeze_inside_update_closure_does_not_deadlock<D: PlainDict<u64, u64>>()
where
    D::Hasher: Default,
{
    let (d, _) = plain_dict::<D>(2);
    d.upsert(1, |old| {
        // The enclosing update would land after the freeze: refused, not deadlocked.
        assert_eq!(d.freeze(), Err(Error::Reentrant(Container::Dict)));
        old.unwrap() + 1
    })
    .unwrap();
    assert!(!d.is_frozen());
    assert_eq!(d.insert(5, 5), Ok(None));
    d.retain(|_, _| {
        assert_eq!(d.freeze(), Err(Error::Reentrant(Container::Dict)));
        true
    })
    .unwrap();
    d.freeze().unwrap();
    assert_eq!(d.insert(5, 6), Err(Error::Frozen(Container::Dict)));
}

/// `get_with`'s closure: `LockedDict` runs it under the read lock (writes from inside are
/// refused with `Reentrant`); `GilFreeDict` runs it with no lock (writes from inside work).
/// Reads work in both, and nothing deadlocks.
fn writes_inside_get_with<D: PlainDict<u64, u64>>()
where
    D::Hasher: Default,
{
    let (d, mut model) = plain_dict::<D>(4);
    let ctx = format!("{}: inside get_with", D::NAME);
    if D::LOCK_FREE_READS {
        let r = d.get_with(&1, |v| {
            reads(&d, &model, &ctx);
            (
                d.insert(100, *v),
                d.remove(&2),
                d.upsert(3, |o| o.unwrap() + 1),
            )
        });
        assert_eq!(r, Some((Ok(None), Ok(Some(20)), Ok(()))), "{ctx}");
        model.insert(100, 10);
        model.shift_remove(&2);
        model.insert(3, 31);
    } else {
        d.get_with(&1, |_| {
            assert_all_refused(&attempt_writes(&d), &ctx);
            reads(&d, &model, &ctx);
            whole_dict_reads(&d, &model, &ctx);
        })
        .unwrap();
    }
    assert_plain_state(&d, &model, &ctx);
}

/// `LockedDict::with_lock`: a compound update through the view; direct writes from inside are
/// refused, direct reads see the view's changes; a panic inside releases the lock.
#[test]
fn locked_with_lock_compound_update() {
    common::watchdog("with_lock", common::WATCHDOG_SECS, || {
        let (d, mut model) = plain_dict::<LockedDict<u64, u64>>(4);
        let ctx = "LockedDict::with_lock";
        let out = d
            .with_lock(|view| {
                assert_eq!(view.len(), 4);
                assert_eq!(view.get(&1).as_deref(), Some(&10));
                assert_eq!(view.insert(1, 11), Ok(Some(10)));
                assert_eq!(view.insert(9, 90), Ok(None));
                assert_eq!(view.remove(&2), Ok(Some(20)));
                assert_eq!(view.remove(&2), Ok(None));
                assert!(view.contains_key(&9) && !view.contains_key(&2));
                let seen: Vec<(u64, u64)> = view.iter().map(|(k, v)| (*k, *v)).collect();
                assert_eq!(seen, vec![(0, 0), (1, 11), (3, 30), (9, 90)]);
                model.insert(1, 11);
                model.insert(9, 90);
                model.shift_remove(&2);
                assert_all_refused(&attempt_writes(&d), ctx);
                reads(&d, &model, ctx);
                whole_dict_reads(&d, &model, ctx);
                "done"
            })
            .unwrap();
        assert_eq!(out, "done");
        assert_plain_state(&d, &model, ctx);
        // Nested with_lock on the same dict is refused, not deadlocked.
        let nested = d.with_lock(|_| d.with_lock(|_| ()).map(drop)).unwrap();
        assert_eq!(nested, Err(REENTRANT));
        // A panic inside: the changes made so far stay, consistently; the lock is released.
        let d = Arc::new(d);
        expect_panic(|| {
            d.with_lock(|view| {
                view.insert(20, 200).unwrap();
                panic!("injected panic in with_lock");
            })
        });
        model.insert(20, 200);
        assert_plain_state(&*d, &model, ctx);
        let d2 = Arc::clone(&d);
        std::thread::spawn(move || d2.insert(21, 210).unwrap())
            .join()
            .unwrap();
        model.insert(21, 210);
        assert_plain_state(&*d, &model, ctx);
        d.freeze().unwrap();
        let frozen = d.with_lock(|view| view.insert(1, 1)).map(drop);
        assert_eq!(frozen, Err(Error::Frozen(Container::Dict)));
        assert_plain_state(&*d, &model, ctx);
    });
}

// ---------------------------------------------------------------------------------------------
// Checked iteration
// ---------------------------------------------------------------------------------------------

const CHANGED_SIZE: &str = "dictionary changed size during iteration";
const KEYS_CHANGED: &str = "dictionary keys changed during iteration";

/// Steps one entry, mutates with `mutate`, and expects `want` on the next step, then the end.
fn checked_case<D: PlainDict<u64, u64>>(name: &str, mutate: impl FnOnce(&D), want: Error)
where
    D::Hasher: Default,
{
    let ctx = format!("{}: iter_checked, {name}", D::NAME);
    let (d, _) = plain_dict::<D>(6);
    let mut it = d.iter_checked();
    assert_eq!(it.next(), Some(Ok((0, 0))), "{ctx}");
    assert_eq!(it.next(), Some(Ok((1, 10))), "{ctx}");
    mutate(&d);
    let e = it.next().expect("an error, not the end").unwrap_err();
    assert_eq!(e, want, "{ctx}");
    let msg = e.to_string();
    match want {
        Error::ChangedSize => assert_eq!(msg, CHANGED_SIZE, "{ctx}"),
        Error::KeysChanged => assert_eq!(msg, KEYS_CHANGED, "{ctx}"),
        _ => unreachable!(),
    }
    assert_eq!(it.next(), None, "{ctx}: the iterator ends after the error");
    assert_eq!(it.next(), None, "{ctx}: and stays ended");
}

fn checked_iteration_detects_mutation<D: PlainDict<u64, u64>>()
where
    D::Hasher: Default,
{
    use Error::{ChangedSize, KeysChanged};
    checked_case::<D>("insert", |d| drop(d.insert(100, 1)), ChangedSize);
    checked_case::<D>(
        "setdefault miss",
        |d| drop(d.setdefault(100, 1)),
        ChangedSize,
    );
    checked_case::<D>("remove", |d| drop(d.remove(&4)), ChangedSize);
    checked_case::<D>("remove a visited key", |d| drop(d.remove(&0)), ChangedSize);
    checked_case::<D>("popitem", |d| drop(d.popitem()), ChangedSize);
    checked_case::<D>("clear", |d| drop(d.clear()), ChangedSize);
    checked_case::<D>("retain", |d| drop(d.retain(|k, _| *k != 3)), ChangedSize);
    checked_case::<D>(
        "remove one key, add another",
        |d| {
            d.remove(&3).unwrap();
            d.insert(100, 1).unwrap();
        },
        KeysChanged,
    );
    checked_case::<D>(
        "remove and re-insert the same key",
        |d| {
            d.remove(&3).unwrap();
            d.insert(3, 30).unwrap();
        },
        KeysChanged,
    );
    checked_case::<D>(
        "popitem and re-insert it",
        |d| {
            let (k, v) = d.popitem().unwrap().unwrap();
            d.insert(k, v).unwrap();
        },
        KeysChanged,
    );

    // A mutation after the last entry was yielded is still reported by the next step.
    let (d, _) = plain_dict::<D>(2);
    let mut it = d.iter_checked();
    assert_eq!(it.next(), Some(Ok((0, 0))));
    assert_eq!(it.next(), Some(Ok((1, 10))));
    d.insert(2, 20).unwrap();
    assert_eq!(
        it.next(),
        Some(Err(ChangedSize)),
        "{}: after the last entry",
        D::NAME
    );
    assert_eq!(it.next(), None);
}

/// Overwriting values (insert on an existing key, `update`, a `setdefault` hit) during checked
/// iteration is allowed: every key comes once, in order, with the values current when reached.
fn checked_iteration_allows_value_overwrites<D: PlainDict<u64, u64>>()
where
    D::Hasher: Default,
{
    let (d, _) = plain_dict::<D>(6);
    let mut got = Vec::new();
    for (i, r) in d.iter_checked().enumerate() {
        let (k, v) = r.expect("overwrites are allowed");
        got.push((k, v));
        let i = i as u64;
        if i + 1 < 6 {
            // Overwrite the next entry before it is reached.
            match i % 3 {
                0 => assert_eq!(d.insert(i + 1, 1000 + i + 1).unwrap(), Some((i + 1) * 10)),
                1 => d.upsert(i + 1, |_| 1000 + i + 1).unwrap(),
                _ => {
                    assert_eq!(d.setdefault(i, 5).unwrap(), v, "setdefault hit");
                    assert_eq!(d.insert(i + 1, 1000 + i + 1).unwrap(), Some((i + 1) * 10));
                }
            }
        }
        d.insert(k, 7).unwrap(); // the current entry, already yielded
    }
    let want: Vec<(u64, u64)> = (0..6)
        .map(|k| (k, if k == 0 { 0 } else { 1000 + k }))
        .collect();
    assert_eq!(got, want, "{}", D::NAME);
    assert_eq!(
        d.items(),
        (0..6).map(|k| (k, 7)).collect::<Vec<_>>(),
        "{}",
        D::NAME
    );
}

// ---------------------------------------------------------------------------------------------
// Test instantiation for both variants
// ---------------------------------------------------------------------------------------------

macro_rules! tests_for {
    ($module:ident, $Obj:ty, $Plain:ty, $Counted:ty; $($(#[$attr:meta])* $kind:ident $name:ident;)*) => {
        mod $module {
            use super::*;
            $(
                $(#[$attr])*
                #[test]
                fn $name() {
                    common::watchdog(
                        concat!(stringify!($module), "::", stringify!($name)),
                        common::WATCHDOG_SECS,
                        tests_for!(@body $kind $name, $Obj, $Plain, $Counted),
                    );
                }
            )*
        }
    };
    (@body obj $name:ident, $Obj:ty, $Plain:ty, $Counted:ty) => { super::$name::<$Obj> };
    (@body plain $name:ident, $Obj:ty, $Plain:ty, $Counted:ty) => { super::$name::<$Plain> };
    (@body counted $name:ident, $Obj:ty, $Plain:ty, $Counted:ty) => { super::$name::<$Counted> };
}

tests_for!(
    locked_dict, common::Locked<Obj, u64>, common::Locked<u64, u64>, common::Locked<u64, Counted>;
    obj eq_inserts_into_dict_during_lookup;
    obj eq_deletes_from_dict_during_lookup;
    obj eq_clears_dict_during_lookup;
    obj eq_reads_dict_during_lookup;
    obj eq_mutating_on_every_call_gives_up;
    obj script_eq_inside_locked_closure;
    obj failing_hash_has_no_effect;
    obj failing_eq_has_no_effect;
    obj panicking_callbacks_leave_dict_usable;
    obj panicking_update_closure_has_no_effect;
    obj panicking_get_with_closure_releases_the_dict;
    counted panicking_retain_closure_leaves_dict_consistent;
    obj hash_once_eq_at_most_once_per_colliding_key;
    obj identical_key_never_calls_eq;
    obj pure_eq_path_matches_model;
    plain writes_refused_reads_work_inside_update_and_retain;
    plain whole_dict_reads_inside_update_and_retain;
    plain freeze_inside_update_closure_does_not_deadlock;
    plain writes_inside_get_with;
    plain checked_iteration_detects_mutation;
    plain checked_iteration_allows_value_overwrites;
);

tests_for!(
    gilfree_dict, common::GilFree<Obj, u64>, common::GilFree<u64, u64>, common::GilFree<u64, Counted>;
    obj eq_inserts_into_dict_during_lookup;
    obj eq_deletes_from_dict_during_lookup;
    obj eq_clears_dict_during_lookup;
    obj eq_reads_dict_during_lookup;
    obj eq_mutating_on_every_call_gives_up;
    obj script_eq_inside_locked_closure;
    obj failing_hash_has_no_effect;
    obj failing_eq_has_no_effect;
    obj panicking_callbacks_leave_dict_usable;
    obj panicking_update_closure_has_no_effect;
    obj panicking_get_with_closure_releases_the_dict;
    counted panicking_retain_closure_leaves_dict_consistent;
    obj hash_once_eq_at_most_once_per_colliding_key;
    obj identical_key_never_calls_eq;
    obj pure_eq_path_matches_model;
    plain writes_refused_reads_work_inside_update_and_retain;
    plain whole_dict_reads_inside_update_and_retain;
    plain freeze_inside_update_closure_does_not_deadlock;
    plain writes_inside_get_with;
    plain checked_iteration_detects_mutation;
    plain checked_iteration_allows_value_overwrites;
);

/// A stored value whose `Clone` uses its own dict (against the documented contract: `V::clone`
/// must not use the container it is read from). `LockedDict::get` clones under the lock, so
/// the nested insert must not enter the lock a second time (that would alias the table, or
/// deadlock): it panics, and the dict stays consistent and usable.
#[test]
fn a_value_clone_that_uses_its_own_locked_dict_panics_and_leaves_it_usable() {
    use std::sync::OnceLock;

    #[derive(Debug)]
    struct Evil {
        value: u64,
        armed: bool,
    }
    static DICT: OnceLock<LockedDict<u64, Evil>> = OnceLock::new();
    impl Clone for Evil {
        fn clone(&self) -> Self {
            if self.armed {
                let d = DICT.get().unwrap();
                for k in 1_000..2_000 {
                    let _ = d.insert(
                        k,
                        Evil {
                            value: k,
                            armed: false,
                        },
                    );
                }
            }
            Evil {
                value: self.value,
                armed: false,
            }
        }
    }

    let d = DICT.get_or_init(LockedDict::new);
    d.insert(
        1,
        Evil {
            value: 10,
            armed: true,
        },
    )
    .unwrap();
    d.insert(
        2,
        Evil {
            value: 20,
            armed: false,
        },
    )
    .unwrap();
    // On the biased path (this thread owns the lock) and, from another thread, on the
    // shared one.
    for round in 0..2 {
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| d.get(&1).map(|e| e.value)));
        assert!(outcome.is_err(), "round {round}: the nested insert panics");
        assert_eq!(d.len(), 2, "round {round}: nothing was inserted");
        assert_eq!(d.get(&2).map(|e| e.value), Some(20));
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                d.get(&1).map(|e| e.value)
            }));
            assert!(outcome.is_err(), "another thread: the nested insert panics");
            assert_eq!(d.get(&2).map(|e| e.value), Some(20));
        })
        .join()
        .unwrap();
    }
    // Disarmed, the same entry reads and writes normally.
    assert_eq!(d.remove(&1).unwrap().map(|e| e.value), Some(10));
    d.insert(
        1,
        Evil {
            value: 11,
            armed: false,
        },
    )
    .unwrap();
    assert_eq!(d.get(&1).map(|e| e.value), Some(11));
    assert_eq!(d.keys(), vec![2, 1]);
}
