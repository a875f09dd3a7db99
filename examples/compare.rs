//! The comparison: standard workloads over every dict and list of this crate and their peers,
//! plus the refcount and GIL questions, at 1..N threads.
//!
//! ```sh
//! cargo run --release --example compare                      # everything, default settings
//! cargo run --release --example compare -- --help            # flags
//! cargo run --release --example compare -- --suite dict --threads 1,2,4,8 \
//!     --duration-ms 1000 --csv out.csv --json out.json --plot out.png
//! ```
//!
//! Suites (see BENCHMARKS.md for the reading of the results):
//! - `dict`: read-only (100% get), read-heavy (98% get, 1% insert, 1% remove), write-heavy
//!   (50% get, 25% insert, 25% remove), exchange (10/40/40/10 get/insert/remove/update),
//!   rapid-grow from empty (5/80/5/10), grow (100% insert from empty), with
//!   conc-map-bench's (bustle's) key schedule, over `GilFreeDict`, `LockedDict` (and their
//!   frozen views on read-only), std `HashMap` unsynchronized (the single-thread limit) and
//!   frozen (the read limit), parking_lot `RwLock<HashMap>`, `RwLock<IndexMap>`,
//!   `Mutex<HashMap>`, dashmap, papaya, scc `HashMap` and `HashIndex`; one fixed-seed foldhash
//!   for all.
//! - `list`: the same mixes as get(i)/append/pop()/set(i) over `GilFreeList`, `LockedList`,
//!   `Vec` (unsynchronized, frozen), `RwLock<Vec>`, `Mutex<Vec>`.
//! - `refcount`: increment+decrement pairs (plain, atomic, shared atomic, false sharing, Arc)
//!   and dict reads that clone a handle vs borrow it vs read a frozen dict.
//! - `gil`: one interpreter-like script (global reads, list appends) under a GIL taken per
//!   operation or per 100 operations, per-container locks, GIL-free containers, frozen globals.
//! - `memory`: bytes per entry (10^6 `u64 -> u64`) and per item (10^6 `u64`), counted by the
//!   global allocator, for the dicts and lists and their peers.
//!
//! Each cell runs for a fixed wall time (`--duration-ms`, default 250) on a fresh container
//! (read-only: one container shared by the thread counts); throughput is all threads'
//! operations over the wall time, ns/op is the wall time per operation as one thread sees it.

#[path = "compare/dicts.rs"]
mod dicts;
#[path = "compare/gil.rs"]
mod gil;
#[path = "compare/harness.rs"]
mod harness;
#[path = "compare/lists.rs"]
mod lists;
#[path = "compare/memory.rs"]
mod memory;
#[path = "compare/plot.rs"]
mod plot;
#[path = "compare/refcount.rs"]
mod refcount;
#[path = "compare/report.rs"]
mod report;
#[path = "compare/workload.rs"]
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use report::Group;
use workload::Settings;

const SUITES: [&str; 5] = ["dict", "list", "refcount", "gil", "memory"];

/// Counts live bytes for the memory suite (and only forwards to the system allocator otherwise).
#[global_allocator]
static ALLOC: memory::Counting = memory::Counting;

const HELP: &str = "\
compare: throughput of gilfree's dicts and lists against their peers, at 1..N threads

USAGE: cargo run --release --example compare -- [FLAGS]

  --suite LIST        suites to run, comma-separated: dict,list,refcount,gil,memory (default: all)
  --workload LIST     dict/list workloads: read-only,read-heavy,write-heavy,exchange,rapid-grow,
                      grow,beside-writer (default: all)
  --threads LIST      thread counts, e.g. 1,2,4,8,16 (default: 1, 2, 4, ... up to the cores, and
                      the number of cores)
  --max-threads N     the default list, up to N instead of the number of cores
  --duration-ms MS    wall time of each measurement (default 250; use 1000+ for steadier numbers)
  --repeat N          run the suites N times over (rounds) and report each cell's best
                      (default 1); each multi-thread cell also records the cross-thread
                      round trip around its kept measurement (marked * when slow)
  --cap-log2 K        dict/list capacity 2^K; prefill is 75% of it (default 20)
  --only LIST         only contenders whose name contains one of these (the limits always run)
  --csv FILE          write every measurement as CSV
  --json FILE         write every measurement, the machine and the settings as JSON
  --plot FILE.png     write a chart of throughput vs threads (one panel per suite/workload);
                      with {suite} in FILE, one chart per suite (e.g. --plot 'out-{suite}.png')
  -h, --help          this text

Progress goes to stderr, the tables to stdout.";

struct Args {
    settings: Settings,
    suites: Vec<String>,
    csv: Option<PathBuf>,
    json: Option<PathBuf>,
    plot: Option<PathBuf>,
}

fn default_threads(max: usize) -> Vec<usize> {
    let mut t: Vec<usize> = std::iter::successors(Some(1usize), |x| Some(x * 2))
        .take_while(|x| *x <= max)
        .collect();
    if !t.contains(&max) {
        t.push(max);
    }
    t
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse() -> Result<Option<Args>, String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut a = Args {
        settings: Settings {
            threads: default_threads(cores),
            duration: Duration::from_millis(250),
            repeat: 1,
            cap_log2: 20,
            only: Vec::new(),
            workloads: Vec::new(),
        },
        suites: SUITES.iter().map(|s| s.to_string()).collect(),
        csv: None,
        json: None,
        plot: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{HELP}");
            return Ok(None);
        }
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--suite" => a.suites = list(&value()?),
            "--workload" => a.settings.workloads = list(&value()?),
            "--threads" => {
                a.settings.threads = list(&value()?)
                    .into_iter()
                    .map(number)
                    .collect::<Result<_, _>>()?
            }
            "--max-threads" => a.settings.threads = default_threads(number(value()?)?),
            "--duration-ms" => {
                a.settings.duration = Duration::from_millis(number(value()?)? as u64)
            }
            "--repeat" => a.settings.repeat = number(value()?)?.max(1),
            "--cap-log2" => a.settings.cap_log2 = number(value()?)? as u32,
            "--only" => a.settings.only = list(&value()?),
            "--csv" => a.csv = Some(value()?.into()),
            "--json" => a.json = Some(value()?.into()),
            "--plot" => a.plot = Some(value()?.into()),
            other => return Err(format!("unknown flag {other} (see --help)")),
        }
    }
    if let Some(s) = a.suites.iter().find(|s| !SUITES.contains(&s.as_str())) {
        return Err(format!("unknown suite {s}"));
    }
    if let Some(w) = a
        .settings
        .workloads
        .iter()
        .find(|w| !workload::ALL.iter().any(|x| x.name == w.as_str()))
    {
        return Err(format!("unknown workload {w}"));
    }
    if a.settings.threads.is_empty() || a.settings.threads.contains(&0) {
        return Err("thread counts must be at least 1".into());
    }
    if !(4..=30).contains(&a.settings.cap_log2) {
        return Err("--cap-log2 must be in 4..=30".into());
    }
    a.settings.threads.sort_unstable();
    a.settings.threads.dedup();
    Ok(Some(a))
}

/// CPU model, cores and memory, from /proc where there is one.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or("unknown memory".into(), |kb| {
            format!("{:.1} GiB", kb / 1024.0 / 1024.0)
        });
    format!(
        "{cpu}, {cores} cores available, {mem}, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: {e}");
            return ExitCode::from(2);
        }
    };
    let s = &args.settings;
    if cfg!(debug_assertions) {
        eprintln!("compare: WARNING: debug build; use `cargo run --release --example compare`");
    }
    let machine = machine();
    let settings = format!(
        "suites {}; threads {:?}; {} ms per measurement, best of {} rounds; capacity 2^{}{}{}",
        args.suites.join(","),
        s.threads,
        s.duration.as_millis(),
        s.repeat,
        s.cap_log2,
        if s.only.is_empty() {
            String::new()
        } else {
            format!("; only {}", s.only.join(","))
        },
        if s.workloads.is_empty() {
            String::new()
        } else {
            format!("; workloads {}", s.workloads.join(","))
        },
    );
    println!("# gilfree compare");
    println!("machine: {machine}");
    println!("settings: {settings}");
    let start = Instant::now();
    let workloads: Vec<workload::Workload> = workload::ALL
        .into_iter()
        .filter(|w| s.wants_workload(w.name))
        .collect();
    let mut groups: Vec<Group> = Vec::new();
    for suite in SUITES {
        if !args.suites.iter().any(|x| x == suite) {
            continue;
        }
        if suite == "memory" {
            // An allocation count: the same in every round.
            print!("{}", memory::run());
            continue;
        }
        let mut done: Vec<Group> = Vec::new();
        for round in 1..=s.repeat {
            if s.repeat > 1 {
                eprintln!("{suite}: round {round} of {}", s.repeat);
            }
            let measured = match suite {
                "dict" => dicts::run(s, &workloads),
                "list" => lists::run(s, &workloads),
                "refcount" => refcount::run(s),
                _ => gil::run(s),
            };
            for g in measured {
                match done
                    .iter_mut()
                    .find(|d| d.suite == g.suite && d.workload == g.workload)
                {
                    Some(d) => d.merge(g),
                    None => done.push(g),
                }
            }
        }
        for g in &mut done {
            g.settle();
        }
        for g in &done {
            print!("{}", g.table());
        }
        groups.extend(done);
    }
    eprintln!("compare: done in {:.1} s", start.elapsed().as_secs_f64());

    let mut ok = true;
    let mut write = |path: &Option<PathBuf>, what: &str, data: String| {
        if let Some(p) = path {
            match std::fs::write(p, data) {
                Ok(()) => eprintln!("compare: wrote {what} {}", p.display()),
                Err(e) => {
                    eprintln!("compare: cannot write {}: {e}", p.display());
                    ok = false;
                }
            }
        }
    };
    write(&args.csv, "CSV", report::csv(&groups));
    write(
        &args.json,
        "JSON",
        report::json(&groups, &machine, &settings),
    );
    if let Some(p) = &args.plot {
        // `{suite}` in the path: one chart per suite; otherwise one chart of everything.
        let pattern = p.to_string_lossy().into_owned();
        let charts: Vec<(PathBuf, Vec<&Group>)> = if pattern.contains("{suite}") {
            SUITES
                .iter()
                .map(|suite| {
                    let of: Vec<&Group> = groups.iter().filter(|g| g.suite == *suite).collect();
                    (pattern.replace("{suite}", suite).into(), of)
                })
                .filter(|(_, of)| !of.is_empty())
                .collect()
        } else {
            vec![(p.clone(), groups.iter().collect())]
        };
        for (path, of) in charts {
            let title = format!(
                "gilfree compare: {machine}; {} ms per point, best of {} rounds",
                s.duration.as_millis(),
                s.repeat
            );
            match plot::plot(&path, &of, &title) {
                Ok(()) => eprintln!("compare: wrote plot {}", path.display()),
                Err(e) => {
                    eprintln!("compare: cannot plot {}: {e}", path.display());
                    ok = false;
                }
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
