//! Loom models of the GilFreeDict protocol: lock-free read vs write vs resize vs reclaim.
//!
//! Run with: `RUSTFLAGS="--cfg gilfree_loom" CARGO_TARGET_DIR=target-loom cargo test --release --test loom_dict`
//! (`LOOM_MAX_PREEMPTIONS` bounds the search; .ci/run uses 3). The atomics of the table (control
//! bytes, value words, order arrays), the writer mutex and the epoch reclamation
//! (`src/reclaim.rs`; under loom its reader side has no fence and memory is reclaimed only at
//! the models' explicit quiescent points) run on loom's model, and keys live in loom-checked
//! write-once cells, so a reader that could see an unwritten key, a freed table or a torn
//! entry fails here. The models are small (two or three threads, a few keys); they explore
//! few interleavings, and the stress tests carry most of the evidence for the protocol.
#![cfg(gilfree_loom)]

use gilfree::GilFreeDict;
use loom::sync::Arc;
use loom::thread;

/// Frees the main model thread's garbage before the model ends: loom tears down its statics
/// before the main thread's thread-locals, so garbage left there could not be handed over.
fn quiesce() {
    for _ in 0..3 {
        gilfree::collect_garbage();
    }
}

/// A fixed-seed hasher: loom replays executions, so probe paths must be deterministic.
type Dict = GilFreeDict<u64, u64, foldhash::fast::FixedState>;

fn dict(capacity: usize) -> Dict {
    Dict::with_capacity_and_hasher(capacity, foldhash::fast::FixedState::with_seed(1))
}

/// The order positions of the smallest table (a dict built with capacity 0).
const SMALLEST: u64 = 8;

/// A dict whose table is full, so the next insert of a new key rebuilds and publishes a new
/// table and retires the old one.
fn full_dict() -> Dict {
    let d = dict(0);
    for k in 0..SMALLEST {
        d.insert(k, k * 10).unwrap();
    }
    assert_eq!(d.capacity(), SMALLEST as usize, "the table is full");
    d
}

#[test]
fn read_vs_overwrite() {
    loom::model(|| {
        let d = Arc::new(dict(0));
        d.insert(1, 10).unwrap();
        // The reader runs on the spawned thread and the writer on the model's own: loom
        // explores one schedule only of a model whose spawned thread is a GIL-free writer and
        // whose main thread only reads (see ARCHITECTURE.md, testing).
        let r = {
            let d = d.clone();
            thread::spawn(move || {
                let seen = d.get(&1);
                assert!(seen == Some(10) || seen == Some(11), "{seen:?}");
            })
        };
        assert_eq!(d.insert(1, 11).unwrap(), Some(10));
        r.join().unwrap();
        assert_eq!(d.get(&1), Some(11));
        quiesce();
    });
}

#[test]
fn read_vs_insert_and_remove() {
    loom::model(|| {
        let d = Arc::new(dict(0));
        d.insert(1, 10).unwrap();
        // Reader spawned, writer on the model's thread (see `read_vs_overwrite`).
        let r = {
            let d = d.clone();
            thread::spawn(move || {
                let two = d.get(&2);
                let one = d.get(&1);
                assert!(two.is_none() || two == Some(20));
                assert!(one.is_none() || one == Some(10));
                // Linearizability for one reader: once 1 is gone, 2 (inserted before) is
                // visible.
                if one.is_none() {
                    assert_eq!(d.get(&2), Some(20));
                }
            })
        };
        d.insert(2, 20).unwrap();
        d.remove(&1).unwrap();
        r.join().unwrap();
        assert_eq!(d.snapshot(), vec![(2, 20)]);
        quiesce();
    });
}

#[test]
fn read_vs_resize_and_reclaim() {
    loom::model(|| {
        let d = Arc::new(full_dict());
        // Reader spawned, writer on the model's thread (see `read_vs_overwrite`).
        let r = {
            let d = d.clone();
            thread::spawn(move || {
                // Keys present throughout stay visible across the rebuild.
                for k in [1, SMALLEST - 1] {
                    assert_eq!(d.get(&k), Some(k * 10));
                }
                let zero = d.get(&0);
                assert!(zero == Some(0) || zero == Some(1));
            })
        };
        // Rebuilds the table (retiring the old one), then overwrites.
        d.insert(SMALLEST, 1).unwrap();
        d.insert(0, 1).unwrap();
        r.join().unwrap();
        assert_eq!(d.len(), SMALLEST as usize + 1);
        quiesce();
    });
}

#[test]
fn iterate_vs_clear() {
    loom::model(|| {
        let d = Arc::new(dict(0));
        d.insert(1, 10).unwrap();
        d.insert(2, 20).unwrap();
        let w = {
            let d = d.clone();
            thread::spawn(move || d.clear().unwrap())
        };
        // The iterator keeps its table alive: entries are yielded in order, never twice, and
        // are never freed while it runs.
        let seen: Vec<(u64, u64)> = d.iter().collect();
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
        assert!(seen.iter().all(|&(k, v)| v == k * 10));
        w.join().unwrap();
        assert!(d.is_empty());
        quiesce();
    });
}

#[test]
fn two_writers_resize() {
    loom::model(|| {
        let d = Arc::new(dict(0));
        // One position left: whichever writer comes second rebuilds.
        for k in 0..SMALLEST - 1 {
            d.insert(k, k).unwrap();
        }
        let w = {
            let d = d.clone();
            thread::spawn(move || {
                d.insert(10, 10).unwrap();
            })
        };
        d.insert(11, 11).unwrap();
        w.join().unwrap();
        assert_eq!(d.len(), SMALLEST as usize + 1);
        assert_eq!(d.get(&10), Some(10));
        assert_eq!(d.get(&11), Some(11));
        quiesce();
    });
}

/// A key model whose `eq` counts as script code: the dicts run it outside any lock and
/// validate the table afterwards.
struct ScriptEq;

impl gilfree::EqModel<u64> for ScriptEq {
    type Error = ();
    fn eq(&self, a: &u64, b: &u64) -> Result<bool, ()> {
        Ok(a == b)
    }
}

impl gilfree::KeyModel<u64> for ScriptEq {
    fn hash(&self, k: &u64) -> Result<u64, ()> {
        // Every key collides: each lookup compares through `eq`.
        Ok(*k % 2)
    }
}

#[test]
fn script_eq_lookup_vs_overwrite_and_remove() {
    loom::model(|| {
        let d = Arc::new(dict(4));
        d.insert_in(&ScriptEq, 1, 10).unwrap();
        d.insert_in(&ScriptEq, 3, 30).unwrap();
        // Reader spawned, writer on the model's thread (see `read_vs_overwrite`).
        let r = {
            let d = d.clone();
            thread::spawn(move || {
                let three = d.get_in(&ScriptEq, &3).unwrap();
                assert!(three == Some(30) || three == Some(31), "{three:?}");
                let one = d.get_in(&ScriptEq, &1).unwrap();
                assert!(one.is_none() || one == Some(10));
            })
        };
        d.insert_in(&ScriptEq, 3, 31).unwrap();
        d.remove_in(&ScriptEq, &1).unwrap();
        r.join().unwrap();
        assert_eq!(d.snapshot(), vec![(3, 31)]);
        quiesce();
    });
}

#[test]
fn script_eq_writers_race() {
    loom::model(|| {
        let d = Arc::new(dict(4));
        d.insert_in(&ScriptEq, 1, 10).unwrap();
        let w = {
            let d = d.clone();
            thread::spawn(move || d.remove_in(&ScriptEq, &1).unwrap())
        };
        // Inserting 3 compares against 1 (same hash) with the lock released.
        d.insert_in(&ScriptEq, 3, 30).unwrap();
        assert_eq!(w.join().unwrap(), Some(10));
        assert_eq!(d.snapshot(), vec![(3, 30)]);
        quiesce();
    });
}
