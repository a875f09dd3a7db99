use gilfree::GilFreeDict;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
fn main() {
    let d: GilFreeDict<u64, u64> = GilFreeDict::new();
    for i in 0..1000u64 {
        d.insert(i, i).unwrap();
    }
    let stop = AtomicBool::new(false);
    let reads = std::thread::scope(|s| {
        s.spawn(|| {
            let mut k = 1_000_000u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    d.insert(k, k).unwrap();
                    d.remove(&k).unwrap();
                    k += 1;
                }
            }
        });
        let h = s.spawn(|| {
            let t = Instant::now();
            let mut n = 0u64;
            let mut x = 0u64;
            while t.elapsed().as_millis() < 1000 {
                for i in 0..1000u64 {
                    x = x.wrapping_add(d.get(&((i * 7) % 1000)).unwrap_or(0));
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
        "reads per second beside a writer: {:.1} M",
        reads as f64 / 1e6
    );
}
