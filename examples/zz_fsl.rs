use gilfree::GilFreeList;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
fn main() {
    let l: GilFreeList<u64> = GilFreeList::new();
    for i in 0..1000u64 {
        l.append(i).unwrap();
    }
    let stop = AtomicBool::new(false);
    let reads = std::thread::scope(|s| {
        s.spawn(|| {
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    l.set(((k * 13) % 1000) as isize, k).unwrap();
                    k += 1;
                }
            }
        });
        let h = s.spawn(|| {
            let t = Instant::now();
            let mut n = 0u64;
            let mut x = 0u64;
            while t.elapsed().as_millis() < 1000 {
                for i in 0..1000isize {
                    x = x.wrapping_add(l.get((i * 7) % 1000).unwrap_or(0));
                }
                n += 1000;
            }
            black_box(x);
            n
        });
        let n = h.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        n
    });
    println!(
        "list reads per second beside a writer: {:.1} M",
        reads as f64 / 1e6
    );
}
