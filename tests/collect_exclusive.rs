//! `collect_garbage_exclusive` frees nothing while the calling thread is inside a read session:
//! what the session borrows stays alive until it ends, and is freed by the next call after.
//!
//! The call's contract is process-wide (no other thread inside a read session of any GIL-free
//! container), so this test has a binary of its own: no other test's threads run beside it.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use gilfree::GilFreeDict;

/// A value that counts its drops and knows whether it is alive.
struct Canary {
    alive: u64,
    drops: Arc<AtomicUsize>,
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.alive = 0;
        self.drops.fetch_add(1, SeqCst);
    }
}

#[test]
fn exclusive_collection_frees_nothing_while_the_thread_is_pinned() {
    // A fresh thread: its garbage state is empty, so nothing collects behind the test's back.
    std::thread::spawn(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let canary = |drops: &Arc<AtomicUsize>| {
            Arc::new(Canary {
                alive: 0xA11E,
                drops: Arc::clone(drops),
            })
        };
        let d: GilFreeDict<u64, Arc<Canary>> = GilFreeDict::new();
        d.insert(7, canary(&drops)).unwrap();
        let pinned = d.pin();
        let borrowed = pinned.get(&7).unwrap();
        // Outside an exclusive section the overwrite retires the old value (and hands back a
        // clone, dropped here: the retired word still holds it).
        drop(d.insert(7, canary(&drops)).unwrap().unwrap());
        // SAFETY: this is the only thread with a read session (the test's binary runs nothing
        // else), and its own session must keep what it borrows alive.
        unsafe { gilfree::collect_garbage_exclusive() };
        assert_eq!(
            borrowed.alive, 0xA11E,
            "freed under the session that borrows it"
        );
        assert_eq!(drops.load(SeqCst), 0);
        drop(pinned);
        // SAFETY: as above; no session is left.
        unsafe { gilfree::collect_garbage_exclusive() };
        assert_eq!(drops.load(SeqCst), 1, "freed once the session ended");
    })
    .join()
    .unwrap();
}
