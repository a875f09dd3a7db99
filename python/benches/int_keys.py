"""Insert, look up and delete half of `n` consecutive `int` keys (Python's `hash(i)` is `i`:
a structured hash) in the builtin dict and in gilfree's dicts; prints microseconds per key.

    python python/benches/int_keys.py [n ...]
"""

import sys
import time

import gilfree


def per_key(factory, n):
    t = time.perf_counter()
    d = factory()
    for i in range(n):
        d[i] = i
    for i in range(n):
        d[i]
    for i in range(0, n, 2):
        del d[i]
    return (time.perf_counter() - t) / n * 1e6


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 100_000, 1_000_000]
    print(f"CPython {sys.version.split()[0]}, us per key")
    print()
    print("| n | dict | gilfree.Dict | gilfree.LockedDict |")
    print("|---|---|---|---|")
    for n in sizes:
        cells = [per_key(f, n) for f in (dict, gilfree.Dict, gilfree.LockedDict)]
        print(f"| {n:,} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
