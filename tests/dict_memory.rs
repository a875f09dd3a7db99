//! Reclamation memory stays bounded under resize churn (CPython gh-132519: retired tables
//! piled up to 6.7 GB). One test in its own binary, so that the process RSS is its own.
#![cfg(target_os = "linux")]

use gilfree::GilFreeDict;

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let resident: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    resident * 4096
}

#[test]
fn retired_tables_do_not_pile_up_under_resize_churn() {
    let live = 100_000u64;
    let d: GilFreeDict<u64, u64> = GilFreeDict::new();
    for k in 0..live {
        d.insert(k, k).unwrap();
    }
    let baseline = rss_bytes();
    // Sliding window: insert a new key, remove the oldest. Positions are never reused, so the
    // table is rebuilt every ~live/2 operations and the old one retired: 40 rebuilds of a
    // table of several MB (~200 MB if nothing were freed).
    let ops = 20 * live;
    let mut peak = baseline;
    for i in 0..ops {
        d.insert(live + i, i).unwrap();
        assert_eq!(
            d.remove(&i).unwrap(),
            Some(if i < live { i } else { i - live })
        );
        if i % 10_000 == 0 {
            peak = peak.max(rss_bytes());
        }
    }
    assert_eq!(d.len() as u64, live);
    let growth = peak.saturating_sub(baseline);
    assert!(
        growth < 64 << 20,
        "RSS grew by {} MB under churn (baseline {} MB)",
        growth >> 20,
        baseline >> 20
    );
}
