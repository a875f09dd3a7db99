#!/usr/bin/env python3
"""The storage targets table of BENCHMARKS.md: runs `compare` three times (or reads earlier
runs' CSV files) and prints each target's ratio per run, its median and spread, and whether
the median meets the target.

    python3 scripts/targets.py                 # build, run 3 times, print the table
    python3 scripts/targets.py --runs 5 --out bench-results/targets
    python3 scripts/targets.py --reuse bench-results/targets   # recompute from saved runs

Each run is one invocation of the compare binary (dict, list and gil suites at 1 and 2
threads, 2^16 capacity; the list read target at 2^20 items in a second invocation), so
every ratio compares contenders measured in the same run. Within a run each cell is the best
of `--repeat` rounds (3 by default): the suites run that many times over, one measurement of
every cell per round on a fresh, prefilled container, so each contender's measurements are
spread over the run and get the same chance at the machine's better moments. Each 2-thread
figure comes with the cross-thread round trip probed before its kept measurement (about 30-70
ns when the two threads share a cache, about 300 ns when they do not; a ratio between cells in
different states says little). The memory suite is deterministic (an allocation count) and
runs once.
"""

import argparse
import csv
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "examples", "compare")


def run_compare(args, csv_path, text_path):
    cmd = [BIN] + args + ["--csv", csv_path]
    with open(text_path, "w") as out:
        subprocess.run(cmd, check=True, stdout=out, stderr=subprocess.DEVNULL)


def load(csv_path):
    rows = {}
    with open(csv_path) as f:
        for r in csv.DictReader(f):
            trip = r.get("round_trip_ns") or None  # absent in runs before the probe existed
            rows[(r["suite"], r["workload"], r["contender"], int(r["threads"]))] = (
                float(r["mops"]), trip and float(trip))
    return rows


def mops(rows, suite, workload, contender, threads):
    return rows[(suite, workload, contender, threads)][0]


def trips(rows, suite, workload, contenders, threads):
    """The cross-thread round trips probed before the kept measurements, as text."""
    got = [rows[(suite, workload, c, threads)][1] for c in contenders]
    if threads < 2 or any(t is None for t in got):
        return ""
    return " · round trip " + " / ".join(f"{t:.0f}" for t in got) + " ns"


def best(rows, suite, workload, contenders, threads):
    vals = [(mops(rows, suite, workload, c, threads), c) for c in contenders]
    return max(vals)


# (label, target, function(main_rows, list_rows) -> (ratio, detail))
def targets():
    out = []

    def ratio(suite, workload, ours, theirs, threads, big=False):
        def f(main, lst):
            rows = lst if big else main
            a = mops(rows, suite, workload, ours, threads)
            b = mops(rows, suite, workload, theirs, threads)
            return a / b, f"{a:.1f} / {b:.1f} Mops/s" + trips(rows, suite, workload, [ours, theirs], threads)
        return f

    def vs_best_peer(ours, threads):
        def f(main, lst):
            a = mops(main, "dict", "read-only", ours, threads)
            b, who = best(main, "dict", "read-only", ["papaya", "scc::HashIndex"], threads)
            return a / b, f"{a:.1f} / {b:.1f} ({who})" + trips(main, "dict", "read-only", [ours, who], threads)
        return f

    out.append(("GilFreeDict get, 1 thread, vs std HashMap (frozen, through &)", 0.67,
                ratio("dict", "read-only", "GilFreeDict", "std HashMap frozen", 1)))
    out.append(("GilFreeDict read, 2 threads, vs best of papaya / scc::HashIndex", 1.2,
                vs_best_peer("GilFreeDict", 2)))
    out.append(("… FrozenDict view, 2 threads, vs the same", 1.2, vs_best_peer("GilFreeDict frozen", 2)))
    for t in (1, 2):
        out.append((f"write-heavy (50/25/25), {t} thread{'s' if t > 1 else ''}, GilFreeDict vs Mutex<HashMap>", 1.0,
                    ratio("dict", "write-heavy", "GilFreeDict", "Mutex<HashMap>", t)))
    for t in (1, 2):
        out.append((f"grow from empty, {t} thread{'s' if t > 1 else ''}, GilFreeDict vs Mutex<HashMap>", 1.0,
                    ratio("dict", "grow", "GilFreeDict", "Mutex<HashMap>", t)))
    for w in ("read-only", "write-heavy"):
        for t in (1, 2):
            out.append((f"LockedDict vs RwLock<IndexMap>, {w}, {t} thread{'s' if t > 1 else ''}", 1.0,
                        ratio("dict", w, "LockedDict", "RwLock<IndexMap>", t)))
    out.append(("FrozenDict read, 1 thread, vs std HashMap (frozen)", 0.9,
                ratio("dict", "read-only", "GilFreeDict frozen", "std HashMap frozen", 1)))
    out.append(("GilFreeList append+pop (list write-heavy 50/25/25), 1 thread, vs Mutex<Vec>", 0.7,
                ratio("list", "write-heavy", "GilFreeList", "Mutex<Vec>", 1)))
    out.append(("GilFreeList get, 2^20 items, 1 thread, vs Mutex<Vec>", 1.0,
                ratio("list", "read-only", "GilFreeList", "Mutex<Vec>", 1, big=True)))
    gil100 = "GIL, held 100 operations at a time"
    for w in ("globals only", "own lists"):
        out.append((f"gil suite, 2 threads, {w}: GIL-free vs {gil100}", 1.0,
                    ratio("gil", w, "GIL-free containers (GilFree*)", gil100, 2)))
        out.append((f"… same, frozen globals + GilFreeList", 1.0,
                    ratio("gil", w, "frozen globals + GilFreeList", gil100, 2)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench-results", "targets"))
    ap.add_argument("--reuse", help="directory of earlier runs to recompute from")
    ap.add_argument("--duration-ms", default="300")
    ap.add_argument("--repeat", default="3", help="rounds: best of N measurements per cell, one per round")
    a = ap.parse_args()
    out_dir = a.reuse or a.out
    os.makedirs(out_dir, exist_ok=True)
    if not a.reuse:
        subprocess.run(["cargo", "build", "--release", "--example", "compare"], cwd=ROOT, check=True)
        for i in range(1, a.runs + 1):
            print(f"run {i}/{a.runs}", file=sys.stderr)
            run_compare(["--suite", "dict,list,gil", "--workload", "read-only,write-heavy,grow",
                         "--threads", "1,2", "--cap-log2", "16", "--duration-ms", a.duration_ms,
                          "--repeat", a.repeat],
                        os.path.join(out_dir, f"run{i}.csv"), os.path.join(out_dir, f"run{i}.txt"))
            run_compare(["--suite", "list", "--workload", "read-only", "--threads", "1",
                         "--cap-log2", "20", "--duration-ms", a.duration_ms, "--repeat", a.repeat],
                        os.path.join(out_dir, f"run{i}-list20.csv"), os.path.join(out_dir, f"run{i}-list20.txt"))
        with open(os.path.join(out_dir, "memory.txt"), "w") as f:
            subprocess.run([BIN, "--suite", "memory"], check=True, stdout=f, stderr=subprocess.DEVNULL)
    runs = sorted(n for n in os.listdir(out_dir) if n.startswith("run") and n.endswith(".csv") and "list20" not in n)
    data = [(load(os.path.join(out_dir, n)), load(os.path.join(out_dir, n.replace(".csv", "-list20.csv")))) for n in runs]
    print(f"| target | ≥ | median | min – max ({len(data)} runs) | met | one run's figures |")
    print("|---|---|---|---|---|---|")
    for label, goal, f in targets():
        results = [f(m, l) for m, l in data]
        ratios = [r for r, _ in results]
        med = statistics.median(ratios)
        print(f"| {label} | {goal:.2f} | **{med:.2f}** | {min(ratios):.2f} – {max(ratios):.2f} | "
              f"{'yes' if med >= goal else 'no'} | {results[len(results) // 2][1]} |")
    mem = os.path.join(out_dir, "memory.txt")
    if os.path.exists(mem):
        print()
        print("Memory (" + os.path.relpath(mem, ROOT) + "):")
        with open(mem) as f:
            for line in f:
                if "GilFreeDict" in line or "GilFreeList" in line or "std HashMap " in line or "std Vec " in line:
                    print("    " + line.rstrip())


if __name__ == "__main__":
    main()
