"""The binding's own tests: what CPython's suites do not cover.

Threads sharing one dict and list while Python-level __eq__/__hash__ run (and the GIL switches
inside them), __del__ re-entering a dict, freezing, the mapping of gilfree's errors to Python
exceptions, and failing callbacks (an exception, never a panic).
"""

import gc
import pickle
import sys
import threading
import unittest
import weakref

import gilfree

DICTS = (gilfree.Dict, gilfree.LockedDict)
LISTS = (gilfree.List, gilfree.LockedList)


class Key:
    """A key whose hash and == are Python code (they run bytecode, so the GIL may switch)."""

    def __init__(self, n):
        self.n = n

    def __hash__(self):
        return hash(self.n % 7)  # many collisions: __eq__ runs on most lookups

    def __eq__(self, other):
        return isinstance(other, Key) and self.n == other.n

    def __repr__(self):
        return "Key(%d)" % self.n


def run_threads(target, n=4, timeout=60):
    errors = []

    def wrapped(i):
        try:
            target(i)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        if t.is_alive():
            raise AssertionError("thread still running after %ss (deadlock?)" % timeout)
    if errors:
        raise errors[0]


class ThreadTest(unittest.TestCase):
    def setUp(self):
        self.interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch the GIL as often as possible

    def tearDown(self):
        sys.setswitchinterval(self.interval)

    def test_shared_dict_with_python_keys(self):
        for cls in DICTS:
            d = cls()
            per_thread = 300

            def work(t):
                for i in range(per_thread):
                    k = Key(t * per_thread + i)
                    d[k] = i
                    self.assertEqual(d[k], i)
                    self.assertIn(k, d)
                    if i % 3 == 0:
                        del d[k]
                    d.setdefault(Key(-1), "shared")

            run_threads(work)
            expected = {Key(t * per_thread + i) for t in range(4) for i in range(per_thread) if i % 3}
            self.assertEqual(set(d.keys()), expected | {Key(-1)})
            self.assertEqual(len(d), len(expected) + 1)

    def test_shared_list(self):
        for cls in LISTS:
            lst = cls()

            def work(t):
                for i in range(500):
                    lst.append((t, i))
                    if i % 5 == 0:
                        lst.index((t, i))
                        self.assertGreater(lst.count((t, i)), 0)

            run_threads(work)
            self.assertEqual(len(lst), 2000)
            for t in range(4):  # each thread's appends are in order
                mine = [i for (u, i) in lst if u == t]
                self.assertEqual(mine, list(range(500)))

    def test_del_reenters_dict_from_threads(self):
        for cls in DICTS:
            d = cls()

            class Reenter:
                def __del__(self):
                    d[("del", id(self))] = 1  # a write to the same dict, from a destructor

            def work(t):
                for i in range(200):
                    d[(t, i % 10)] = Reenter()  # replaces (and releases) the previous one

            run_threads(work)
            gc.collect()
            self.assertGreaterEqual(len(d), 40)


class ReentrancyTest(unittest.TestCase):
    def test_del_during_resize(self):
        # Replacing values whose __del__ writes to the same dict, while inserts grow the table.
        for cls in DICTS:
            d = cls()

            class Grow:
                def __del__(self):
                    for i in range(20):
                        d[("grown", id(self), i)] = i

            for i in range(200):
                d[i % 7] = Grow()
                d[("x", i)] = i
            d.clear()  # the released values' __del__ run after the clear and refill it
            self.assertEqual(len(d), len(list(d)))
            self.assertTrue(all(k[0] == "grown" for k in d))

    def test_released_values_are_finalized_before_the_next_statement(self):
        # As with CPython's dict and list: a replaced, removed or popped value whose last
        # reference the container held is finalized by the statement that let it go.
        for cls in DICTS + LISTS:
            log = []

            class Noisy:
                def __init__(self, name):
                    self.name = name

                def __del__(self):
                    log.append(self.name)

            c = cls()
            if cls in DICTS:
                c["k"] = Noisy("replaced")
                c["k"] = 1
                self.assertEqual(log, ["replaced"])
                c["k"] = Noisy("removed")
                del c["k"]
                self.assertEqual(log, ["replaced", "removed"])
            else:
                c.append(Noisy("replaced"))
                c[0] = 1
                self.assertEqual(log, ["replaced"])
                c.append(Noisy("removed"))
                del c[1]
                self.assertEqual(log, ["replaced", "removed"])

    def test_every_removing_method_finalizes_before_it_returns(self):
        # The same for each method that lets a value go (a value held by a temporary past the
        # method's release of its queue would be finalized one write late).
        log = []

        class Noisy:
            def __del__(self):
                log.append("x")

        dict_ops = {
            "d[k] = v": lambda c: c.__setitem__("k", 1),
            "del d[k]": lambda c: c.__delitem__("k"),
            "d.pop(k)": lambda c: c.pop("k") and None,
            "d.pop(k, default)": lambda c: c.pop("k", None) and None,
            "d.popitem()": lambda c: c.popitem() and None,
            "d.clear()": lambda c: c.clear(),
            "d.update(mapping)": lambda c: c.update({"k": 1}),
            "d.update(k=v)": lambda c: c.update(k=1),
            "d |= mapping": lambda c: c.__ior__({"k": 1}) and None,
        }
        list_ops = {
            "l[i] = x": lambda c: c.__setitem__(1, 0),
            "del l[i]": lambda c: c.__delitem__(1),
            "l.pop()": lambda c: c.pop() and None,
            "l.pop(i)": lambda c: c.pop(1) and None,
            "l.remove(x)": lambda c: c.remove(c[1]),
            "l.clear()": lambda c: c.clear(),
            "l[i:] = []": lambda c: c.__setitem__(slice(1, None), []),
            "del l[i:]": lambda c: c.__delitem__(slice(1, None)),
            "l *= 0": lambda c: c.__imul__(0) and None,
            "l[::-1] = seq": lambda c: c.__setitem__(slice(None, None, -1), [0, 0]),
        }
        for classes, ops in ((DICTS, dict_ops), (LISTS, list_ops)):
            for cls in classes:
                for name, op in ops.items():
                    c = cls()
                    if cls in DICTS:
                        c["k"] = Noisy()
                    else:
                        c.extend([1, Noisy()])
                    log.clear()
                    op(c)
                    self.assertEqual(log, ["x"], f"{cls.__name__}: {name}")

    def test_overwrite_keeps_the_stored_key_and_takes_no_new_one(self):
        # As CPython's dict: `d[k] = v` on a present key keeps the key object stored first
        # and takes no reference to the equal key it was given.
        for cls in DICTS:
            first, second = "".join(["ke", "y"]), "".join(["k", "ey"])
            self.assertIsNot(first, second)
            d = cls()
            d[first] = 1
            refs = sys.getrefcount(second)
            d[second] = 2
            self.assertEqual(sys.getrefcount(second), refs, cls.__name__)
            (stored,) = d.keys()
            self.assertIs(stored, first, cls.__name__)
            self.assertEqual(d[first], 2)
            # Absent: the key given is the key stored.
            d[second + "2"] = 3
            self.assertEqual(list(d), [first, "key2"])

    def test_eq_that_keeps_mutating_gives_runtime_error(self):
        for cls in DICTS:
            d = cls()

            class Evil:
                def __hash__(self):
                    return 1

                def __eq__(self, other):
                    # Replaces the entry under the lookup (same hash) every time.
                    del d[stored]
                    d[stored] = "reassigned"
                    return False

            stored = Evil()
            d[stored] = "value"
            # A write re-checks what it found after each `__eq__`, restarts, and gives up.
            with self.assertRaisesRegex(RuntimeError, "dict mutated during lookup"):
                d[Evil()] = "new"
            # A read answers from what it saw (as CPython does when only values change).
            with self.assertRaises(KeyError):
                d[Evil()]
            self.assertEqual(d[stored], "reassigned")  # identity shortcut: no __eq__
            self.assertEqual(len(d), 1)

    def test_sort_comparator_mutating(self):
        for cls in LISTS:
            lst = cls([3, 1, 2])

            def key(x):
                lst.append(0)
                return x

            with self.assertRaisesRegex(ValueError, "list modified during sort"):
                lst.sort(key=key)

    def test_failing_callbacks(self):
        class Boom(Exception):
            pass

        class BadHash:
            def __hash__(self):
                raise Boom

        class BadEq:
            def __hash__(self):
                return 0

            def __eq__(self, other):
                raise Boom

        for cls in DICTS:
            d = cls()
            self.assertRaises(Boom, d.__setitem__, BadHash(), 1)
            d[BadEq()] = 1
            self.assertRaises(Boom, d.__getitem__, BadEq())
            self.assertRaises(Boom, d.__contains__, BadEq())
            self.assertEqual(len(d), 1)
        for cls in LISTS:
            lst = cls([BadEq(), 2])
            self.assertRaises(Boom, lst.remove, 1)
            self.assertRaises(TypeError, lst.sort)  # '<' not supported: the list is unchanged
            self.assertEqual(len(lst), 2)

            def bad_key(x):
                raise Boom

            before = list(lst)
            self.assertRaises(Boom, lst.sort, key=bad_key)
            self.assertEqual([id(x) for x in lst], [id(x) for x in before])


class DeepNestingTest(unittest.TestCase):
    """Deep trees raise RecursionError (or work) instead of overflowing the native stack."""

    DEPTH = 100_000

    def nested(self, cls, depth=DEPTH):
        x = cls()
        for _ in range(depth):
            y = cls()
            if isinstance(y, DICTS):
                y[1] = x
            else:
                y.append(x)
            x = y
        return x

    def test_repr_of_deep_trees(self):
        for cls in DICTS + LISTS:
            deep = self.nested(cls)
            with self.assertRaises(RecursionError):
                repr(deep)
            with self.assertRaises(RecursionError):
                str(deep)
            self.assertTrue(repr(self.nested(cls, 50)).count("{") + repr(self.nested(cls, 50)).count("[") >= 51)
            del deep  # releasing the tree is a loop, not a recursion

    def test_comparison_of_deep_trees(self):
        for cls in DICTS + LISTS:
            a, b = self.nested(cls), self.nested(cls)
            with self.assertRaises(RecursionError):
                a == b
            if cls in LISTS:
                with self.assertRaises(RecursionError):
                    a < b
                with self.assertRaises(RecursionError):
                    a in cls([b])
            self.assertEqual(self.nested(cls, 50), self.nested(cls, 50))

    def test_views_of_deep_trees(self):
        for cls in DICTS:
            deep = self.nested(cls)
            with self.assertRaises(RecursionError):
                repr(deep.values())
            with self.assertRaises(RecursionError):
                deep.items() == self.nested(cls).items()

    def test_freeze_of_deep_trees(self):
        for cls in DICTS + LISTS:
            deep = self.nested(cls)
            copy = gilfree.frozen_copy(deep)
            self.assertTrue(copy.frozen)
            self.assertFalse(deep.frozen)
            gilfree.freeze(deep)
            inner = deep
            for _ in range(self.DEPTH):
                self.assertTrue(inner.frozen)
                inner = inner[0 if cls in LISTS else 1]
            with self.assertRaises(gilfree.FrozenError):
                deep[0 if cls in LISTS else 1] = None

    def test_small_thread_stack(self):
        """A thread with a 512 KiB stack gets RecursionError too."""
        errors = []

        def run():
            try:
                for cls in DICTS + LISTS:
                    deep = self.nested(cls, 20_000)
                    try:
                        repr(deep)
                    except RecursionError:
                        pass
                    else:
                        errors.append(f"{cls.__name__}: no RecursionError")
            except BaseException as e:  # reported to the main thread
                errors.append(repr(e))

        old = threading.stack_size(512 * 1024)
        try:
            t = threading.Thread(target=run)
            t.start()
        finally:
            threading.stack_size(old)
        t.join()
        self.assertEqual(errors, [])


class TypingTest(unittest.TestCase):
    """Subscription for type hints, and type stubs that cover the runtime API."""

    def test_class_getitem(self):
        import types

        for cls in DICTS:
            alias = cls[str, int]
            self.assertIsInstance(alias, types.GenericAlias)
            self.assertIs(alias.__origin__, cls)
            self.assertEqual(alias.__args__, (str, int))
            self.assertEqual(alias({"a": 1}), cls({"a": 1}))
        for cls in LISTS:
            self.assertEqual(cls[int].__args__, (int,))
            self.assertEqual(cls[int]([1, 2]), cls([1, 2]))

    def test_stubs_cover_the_runtime(self):
        import ast
        import os
        import types

        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "..", "gilfree.pyi")) as f:
            tree = ast.parse(f.read())
        stubbed = {}
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                stubbed[node.name] = {
                    n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                }
            elif isinstance(node, ast.FunctionDef):
                stubbed[node.name] = set()
            elif isinstance(node, ast.AnnAssign):
                stubbed[node.target.id] = set()
        public = [
            n for n in dir(gilfree) if not n.startswith("_") and not isinstance(getattr(gilfree, n), types.ModuleType)
        ]
        for name in public:
            self.assertIn(name, stubbed, f"gilfree.{name} has no stub")
        for cls_name in ("Dict", "List", "DictView", "DictIterator", "ListIterator"):
            cls = getattr(gilfree, cls_name)
            own = {
                n
                for n in vars(cls)
                if not n.startswith("__") or n in ("__class_getitem__", "__next__", "__length_hint__")
            }
            missing = {n for n in own if n not in stubbed[cls_name]}
            self.assertEqual(missing, set(), f"{cls_name} methods without a stub")


class FreezeTest(unittest.TestCase):
    def test_freeze_tree(self):
        for cls in DICTS:
            inner = cls(a=1, b=(1, "x", None))
            root = cls(config=inner, name="n")
            gilfree.freeze(root)
            self.assertTrue(root.frozen)
            self.assertTrue(inner.frozen)
            self.assertEqual(root["config"]["a"], 1)
            with self.assertRaisesRegex(gilfree.FrozenError, "cannot modify frozen dict"):
                inner["c"] = 3
            self.assertRaises(TypeError, root.pop, "name")  # FrozenError is a TypeError
            thawed = root.copy()
            thawed["new"] = 1
            self.assertFalse(thawed.frozen)

    def test_all_or_nothing(self):
        d = gilfree.Dict(ok=gilfree.Dict(x=1), bad=gilfree.Dict(f=open))
        with self.assertRaisesRegex(TypeError, r"root\['bad'\]\['f'\]"):
            gilfree.freeze(d)
        self.assertFalse(d.frozen)
        self.assertFalse(d["ok"].frozen)

    def test_frozen_copy(self):
        d = gilfree.LockedDict(a=gilfree.Dict(b=2))
        c = gilfree.frozen_copy(d)
        self.assertTrue(c.frozen and c["a"].frozen)
        self.assertFalse(d.frozen or d["a"].frozen)
        self.assertEqual(c, d)
        self.assertIsNot(c["a"], d["a"])

    def test_cycle(self):
        d = gilfree.Dict()
        d["self"] = d
        gilfree.freeze(d)
        self.assertIs(d["self"], d)
        self.assertTrue(d.frozen)

    def test_frozen_reads_from_threads(self):
        cfg = gilfree.Dict((i, str(i)) for i in range(100))
        gilfree.freeze(cfg)

        def read(t):
            for _ in range(50):
                for i in range(100):
                    assert cfg[i] == str(i)

        run_threads(read)


class IndexSlotTest(unittest.TestCase):
    """`l[i]` goes through a hand-written slot for exact ints (python/src/slots.rs) and through
    PyO3's `__getitem__` for everything else (and for subclasses, which inherit PyO3's slot):
    both must behave as a builtin list does."""

    def outcome(self, c, i):
        try:
            return ("value", c[i])
        except Exception as e:  # noqa: BLE001 - the exception is the outcome compared
            return (type(e), str(e))

    def test_every_index_kind_as_the_builtin(self):
        class IntSub(int):
            pass

        class Index:
            def __index__(self):
                return 2

        keys = list(range(-13, 13)) + [2**31, -(2**31), 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**100,
                                       -(2**100), True, False, IntSub(3), IntSub(-1), Index(), slice(1, 4),
                                       slice(None, None, -2), "a", 1.5, None]
        items = [object() for _ in range(11)]

        class Sub(gilfree.List):
            pass

        class LockedSub(gilfree.LockedList):
            pass

        for cls in LISTS + (Sub, LockedSub):
            c = cls(items)
            for i in keys:
                with self.subTest(cls=cls.__name__, i=i):
                    got, want = self.outcome(c, i), self.outcome(items, i)
                    if got[0] == "value" and isinstance(got[1], (gilfree.List, gilfree.LockedList)):
                        got = ("value", list(got[1]))
                    self.assertEqual(got, want)
                    if not isinstance(i, slice):
                        # By name: PyO3's method, which the slot must agree with.
                        try:
                            by_name = ("value", type(c).__getitem__(c, i))
                        except Exception as e:  # noqa: BLE001
                            by_name = (type(e), str(e))
                        self.assertEqual(by_name, got)

    def test_a_subclass_that_defines_getitem_is_called(self):
        class Over(gilfree.List):
            def __getitem__(self, i):
                return ("over", i)

        self.assertEqual(Over([1, 2])[0], ("over", 0))

    def test_reads_take_one_reference_each(self):
        x = object()
        for cls in LISTS:
            c = cls([x, x])
            before = sys.getrefcount(x)
            held = [c[0] for _ in range(1000)] + [c[-1] for _ in range(1000)]
            self.assertEqual(sys.getrefcount(x), before + 2000)
            del held
            self.assertEqual(sys.getrefcount(x), before)


class ListMethodEntryTest(unittest.TestCase):
    """`append` and `pop` are hand-written `METH_O` / `METH_FASTCALL` methods
    (python/src/slots.rs) that hand every case but the common one to PyO3's: both must behave
    as a builtin list's do, on every list type and on subclasses."""

    def outcome(self, f):
        try:
            return ("value", f())
        except Exception as e:  # noqa: BLE001 - the exception is the outcome compared
            # Argument-count and index-conversion messages come from CPython's or PyO3's
            # conversion (which differ only in wording); the index errors are the builtin's.
            return (type(e), str(e) if isinstance(e, IndexError) else None)

    def test_pop_with_every_index_kind_as_the_builtin(self):
        class IntSub(int):
            pass

        class Index:
            def __index__(self):
                return 2

        indexes = list(range(-6, 6)) + [2**31, 2**63 - 1, -(2**63), 2**63, 2**100, True, False,
                                       IntSub(1), IntSub(-1), Index(), "a", 1.5, None]

        class Sub(gilfree.List):
            pass

        class LockedSub(gilfree.LockedList):
            pass

        for cls in LISTS + (Sub, LockedSub):
            for args in [()] + [(i,) for i in indexes] + [(0, 1)]:
                for n in (0, 1, 5):
                    with self.subTest(cls=cls.__name__, args=args, n=n):
                        model, c = list(range(n)), cls(range(n))
                        self.assertEqual(self.outcome(lambda: c.pop(*args)),
                                         self.outcome(lambda: model.pop(*args)))
                        self.assertEqual(list(c), model)
            with self.subTest(cls=cls.__name__, keyword=True):
                c = cls([1, 2])
                self.assertEqual(self.outcome(lambda: c.pop(i=0)), self.outcome(lambda: [1, 2].pop(i=0)))
                self.assertEqual(list(c), [1, 2])

    def test_append_as_the_builtin(self):
        for cls in LISTS:
            c, model = cls(), []
            for x in range(100):
                c.append(x)
                model.append(x)
                if x % 3 == 0:
                    self.assertEqual(c.pop(), model.pop())
            self.assertEqual(list(c), model)
            self.assertEqual(self.outcome(c.append), self.outcome(model.append))
            self.assertEqual(self.outcome(lambda: c.append(1, 2)), self.outcome(lambda: model.append(1, 2)))
            self.assertEqual(self.outcome(lambda: c.append(x=1)), self.outcome(lambda: model.append(x=1)))
            self.assertEqual(list(c), model)
            c.freeze()
            self.assertRaisesRegex(gilfree.FrozenError, "cannot modify frozen list", c.append, 1)
            self.assertRaisesRegex(gilfree.FrozenError, "cannot modify frozen list", c.pop)
            self.assertEqual(list(c), model)

    def test_item_assignment_with_every_index_kind_as_the_builtin(self):
        # `l[i] = x` goes through a hand-written `mp_ass_subscript` for exact ints, and
        # `del l[i]`, slices and other index types through PyO3's.
        class IntSub(int):
            pass

        class Index:
            def __index__(self):
                return 2

        keys = list(range(-6, 6)) + [2**63, -(2**63) - 1, 2**100, True, IntSub(1), Index(), slice(1, 3),
                                    slice(None, None, 2), "a", 1.5, None]

        class Sub(gilfree.List):
            pass

        for cls in LISTS + (Sub,):
            for k in keys:
                for value in ("x", ["y", "z"], None):
                    with self.subTest(cls=cls.__name__, k=k, value=value):
                        model, c = list(range(5)), cls(range(5))

                        def store(target):
                            if value is None:
                                del target[k]
                            else:
                                target[k] = value

                        self.assertEqual(self.outcome(lambda: store(c)), self.outcome(lambda: store(model)))
                        self.assertEqual(list(c), model)
            c = cls([1])
            c.freeze()
            with self.assertRaisesRegex(gilfree.FrozenError, "cannot modify frozen list"):
                c[0] = 2
            self.assertEqual(list(c), [1])

    def test_item_assignment_releases_the_replaced_item_at_once(self):
        class Item:
            pass

        for cls in LISTS:
            x = object()
            first = Item()
            r = weakref.ref(first)
            c = cls([first])
            del first
            before = sys.getrefcount(x)
            c[0] = x
            self.assertIsNone(r())
            self.assertEqual(sys.getrefcount(x), before + 1)
            for _ in range(1000):
                c[-1] = x
            self.assertEqual(sys.getrefcount(x), before + 1)
            c[0] = None
            self.assertEqual(sys.getrefcount(x), before)

    def test_methods_keep_their_names_and_signatures(self):
        for cls in LISTS:
            self.assertEqual(cls.append.__name__, "append")
            self.assertEqual(cls.pop.__name__, "pop")
            self.assertIsNotNone(cls.append.__text_signature__)
            self.assertIsNotNone(cls.pop.__text_signature__)
            self.assertIs(type(cls.append), type(list.append))

    def test_a_subclass_that_defines_append_is_called(self):
        class Over(gilfree.List):
            def append(self, x):
                super().append(("over", x))

        o = Over()
        o.append(1)
        self.assertEqual(o.pop(), ("over", 1))

    def test_references_are_taken_and_moved_exactly(self):
        x = object()
        for cls in LISTS:
            c = cls()
            before = sys.getrefcount(x)
            for _ in range(1000):
                c.append(x)
            self.assertEqual(sys.getrefcount(x), before + 1000)
            held = [c.pop() for _ in range(500)] + [c.pop(0) for _ in range(500)]
            self.assertEqual(sys.getrefcount(x), before + 1000)
            del held
            self.assertEqual(sys.getrefcount(x), before)

    def test_a_popped_item_is_freed_when_its_caller_drops_it(self):
        class Item:
            pass

        def pop_on_a_new_thread(c, out):
            # A thread's first binding call runs before its exclusive-access section is open,
            # so its pop hands back a copy and retires the item, which the call itself frees.
            r = weakref.ref(c.pop())
            out.append(r() is None)
            out.append(sys.getrefcount(c.pop()))

        for cls in LISTS:
            c = cls([Item(), Item(), Item()])
            r = weakref.ref(c.pop())
            self.assertIsNone(r())
            out = []
            t = threading.Thread(target=pop_on_a_new_thread, args=(c, out))
            t.start()
            t.join()
            self.assertTrue(out[0])
            self.assertEqual(out[1], sys.getrefcount(Item()))
            self.assertEqual(len(c), 0)


class ErrorMappingTest(unittest.TestCase):
    def test_errors(self):
        for cls in DICTS:
            d = cls()
            with self.assertRaises(KeyError) as c:
                d[(1,)]
            self.assertEqual(c.exception.args, ((1,),))
            self.assertRaisesRegex(KeyError, "dictionary is empty", d.popitem)
            d[1] = 1
            with self.assertRaisesRegex(RuntimeError, "changed size during iteration"):
                for k in d:
                    d[k + 1] = 1
        for cls in LISTS:
            lst = cls()
            self.assertRaisesRegex(IndexError, "pop from empty list", lst.pop)
            self.assertRaisesRegex(IndexError, "list index out of range", lst.__getitem__, 0)
            self.assertRaisesRegex(ValueError, "not in list", lst.remove, 1)
            self.assertRaisesRegex(ValueError, "1 is not in list", lst.index, 1)
            self.assertRaisesRegex(ValueError, "slice step cannot be zero", lst.__getitem__, slice(0, 1, 0))
            lst.extend([1, 2, 3])
            self.assertRaisesRegex(ValueError, "extended slice of size 2", lst.__setitem__, slice(0, 3, 2), [1])
            self.assertRaises(TypeError, lst.__getitem__, "a")
            lst.freeze()
            self.assertRaisesRegex(gilfree.FrozenError, "cannot modify frozen list", lst.append, 4)
            self.assertEqual(lst[-1], 3)

    def test_version_and_variant(self):
        d = gilfree.Dict()
        v = d.version
        d["x"] = 1
        self.assertNotEqual(d.version, v)
        self.assertEqual(d.variant, "gilfree")
        self.assertEqual(gilfree.LockedList().variant, "locked")

    def test_pickle(self):
        for cls in DICTS:
            d = cls({"a": [1, 2], 3: "b"})
            e = pickle.loads(pickle.dumps(d))
            self.assertEqual(d, e)
            self.assertIs(type(e), cls)


if __name__ == "__main__":
    unittest.main()
