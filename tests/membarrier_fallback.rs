//! When `membarrier` starts failing after start-up (here: a seccomp filter installed while the
//! process runs, as a sandbox might), the reclamation switches to full fences on both sides
//! instead of silently losing the barrier that lock-free readers rely on, and readers racing
//! with writers through the switch never see a freed value.
//!
//! The filter cannot be removed, so the scenario runs in a child process (this test binary,
//! re-run with `GILFREE_SECCOMP_CHILD` set).
#![cfg(all(target_os = "linux", any(target_arch = "x86", target_arch = "x86_64")))]

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;

use gilfree::GilFreeDict;

const TEST: &str = "membarrier_failure_falls_back_to_fences";

#[test]
fn membarrier_failure_falls_back_to_fences() {
    if std::env::var_os("GILFREE_SECCOMP_CHILD").is_some() {
        child();
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env("GILFREE_SECCOMP_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    if stdout.contains("SKIP") {
        eprintln!("skipped: {stdout}");
        return;
    }
    assert!(
        stderr.contains("lock-free readers now use full fences"),
        "no fallback reported:\n{stderr}"
    );
    assert!(stdout.contains("CHILD OK"), "{stdout}");
}

/// A value that poisons itself when dropped, so a reader that sees a freed one notices.
#[derive(Clone)]
struct Tagged([u64; 4]);

const POISON: u64 = 0xDEAD_BEEF_DEAD_BEEF;

impl Tagged {
    fn new(t: u64) -> Tagged {
        Tagged([t, !t, t.rotate_left(9), t ^ 0x5555])
    }
    fn check(&self) {
        let t = self.0[0];
        assert_ne!(t, POISON, "a freed value was read");
        assert_eq!(self.0, Tagged::new(t).0, "a torn or freed value was read");
    }
}

impl Drop for Tagged {
    fn drop(&mut self) {
        for w in &mut self.0 {
            // SAFETY: a plain write to our own field, volatile so that it stays.
            unsafe { std::ptr::write_volatile(w, POISON) };
        }
    }
}

impl gilfree::Storable for Tagged {
    type Storage = gilfree::storage::Boxed;
}

/// Makes `membarrier` fail with `EPERM` for every thread of this process, from now on.
fn forbid_membarrier() -> bool {
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    const SECCOMP_FILTER_FLAG_TSYNC: libc::c_ulong = 1;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    let stmt = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let filter = [
        // Load the syscall number (`seccomp_data.nr`, offset 0).
        stmt((libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16, 0),
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_membarrier as u32,
        },
        stmt(
            (libc::BPF_RET | libc::BPF_K) as u16,
            SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
        stmt((libc::BPF_RET | libc::BPF_K) as u16, SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: plain system calls; `prog` and `filter` outlive them.
    unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                SECCOMP_FILTER_FLAG_TSYNC,
                &prog as *const libc::sock_fprog,
            ) == 0
    }
}

fn child() {
    let d = Arc::new(GilFreeDict::<u64, Tagged>::new());
    for k in 0..64 {
        d.insert(k, Tagged::new(k)).unwrap();
    }
    gilfree::collect_garbage();
    if gilfree::reader_barrier() != "membarrier" {
        println!("SKIP: this kernel offers no membarrier to lose");
        return;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (d, stop) = (Arc::clone(&d), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(SeqCst) {
                    for k in 0..64 {
                        d.get_with(&k, |v| v.check());
                        reads += 1;
                    }
                }
                // This thread's record predates the switch: its pins must have learnt it.
                (reads, gilfree::reader_barrier())
            })
        })
        .collect();
    let churn = |rounds: u64, base: u64| {
        for r in 0..rounds {
            for k in 0..64 {
                d.insert(k, Tagged::new(base + r * 64 + k)).unwrap();
            }
            gilfree::collect_garbage();
        }
    };
    churn(200, 1 << 20);
    if !forbid_membarrier() {
        stop.store(true, SeqCst);
        readers.into_iter().for_each(|r| drop(r.join()));
        println!("SKIP: seccomp filters are not available here");
        return;
    }
    // The next collection's membarrier fails: the switch happens under the readers' feet.
    churn(2_000, 1 << 40);
    assert_eq!(gilfree::reader_barrier(), "fences");
    stop.store(true, SeqCst);
    let mut reads = 0;
    for r in readers {
        let (n, barrier) = r.join().unwrap();
        assert_eq!(
            barrier, "fences",
            "a reader registered before the switch still pins without a fence"
        );
        reads += n;
    }
    assert!(reads > 0);
    println!("CHILD OK ({reads} reads)");
}
