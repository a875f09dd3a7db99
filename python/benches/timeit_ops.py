"""Per-operation cost of gilfree.Dict/List and LockedDict/LockedList against the builtin
dict/list, with timeit (64 string keys, 1,000-item lists). Prints a Markdown table of
nanoseconds per operation (best of `--repeat` timeit repeats, each of `--number` loops)
and each type's ratio to the builtin.

    python python/benches/timeit_ops.py [--number N] [--repeat R]
"""

import argparse
import sys
import timeit

import gilfree

OPS = [
    # (label, setup building `c` from `factory`, statement)
    ("d[k]", "c = factory({f'key{i}': i for i in range(64)}); k = 'key17'", "c[k]"),
    ("d[k] = v (overwrite)", "c = factory({f'key{i}': i for i in range(64)}); k = 'key17'; v = 5", "c[k] = v"),
    ("d[k] = v; del d[k]", "c = factory({f'key{i}': i for i in range(64)}); k = 'new'; v = 5", "c[k] = v; del c[k]"),
    ("k in d", "c = factory({f'key{i}': i for i in range(64)}); k = 'key17'", "k in c"),
    ("len(l) (call floor)", "c = factory(list(range(1000)))", "len(c)"),
    ("l[i]", "c = factory(list(range(1000))); i = 500", "c[i]"),
    ("l[i] = x", "c = factory(list(range(1000))); i = 500; x = 7", "c[i] = x"),
    ("l.append(x); l.pop()", "c = factory(list(range(1000))); x = 7", "c.append(x); c.pop()"),
]

DICTS = [("builtin", dict), ("gilfree.Dict", gilfree.Dict), ("gilfree.LockedDict", gilfree.LockedDict)]
LISTS = [("builtin", list), ("gilfree.List", gilfree.List), ("gilfree.LockedList", gilfree.LockedList)]


def ns_per_op(factory, setup, stmt, number, repeat):
    timer = timeit.Timer(stmt, setup, globals={"factory": factory})
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--number", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"CPython {sys.version.split()[0]}, ns per operation (best of {args.repeat} x {args.number})")
    print()
    print("| operation | builtin | gilfree | ratio | Locked* | ratio |")
    print("|---|---|---|---|---|---|")
    for label, setup, stmt in OPS:
        kinds = DICTS if label.startswith(("d[", "k in")) else LISTS
        base, free, locked = (ns_per_op(f, setup, stmt, args.number, args.repeat) for _, f in kinds)
        print(f"| `{label}` | {base:.0f} | {free:.0f} | {free / base:.2f} | {locked:.0f} | {locked / base:.2f} |")


if __name__ == "__main__":
    main()
