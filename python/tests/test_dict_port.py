"""CPython's Lib/test/test_dict.py (class DictTest), run against gilfree's dicts.

DictTest tests the builtin dict through dict displays (`{k: v}`), comprehensions and the name
`dict`, so it cannot simply be subclassed. Instead, every test method (and helper) is taken
from the installed Lib/test/test_dict.py *as source*, every dict display, dict comprehension
and use of the name `dict` in it is rewritten to build the gilfree type under test (a display
becomes `Dict([(k, v), ...])`, so keys are hashed only by the gilfree dict, which matters for
the tests that count `__hash__`/`__eq__` calls), and the method is compiled with its upstream
file name and line numbers and run. Nothing is copied by hand. The tests that do not apply
are in SKIPS, each with its reason (also in python/README.md).

The evil-key cases among them (EVIL below): keys whose `__eq__` mutates or clears the dict
during lookup, insert, merge and comparison; keys whose `__hash__`/`__eq__` raise; values
whose `__del__` mutates the dict when it is replaced; iteration over a dict and its views
that changes size or keys; `__hash__`/`__eq__` called once per `setdefault` and per insert
at a resize.
"""

import ast
import inspect
import textwrap
import unittest

from test import test_dict

import gilfree

# The evil-key cases (documentation: every DictTest method runs).
EVIL = [
    # __eq__ that mutates the dict while it is searched or updated
    "test_mutating_lookup",
    "test_resize2",
    "test_merge_and_mutate",
    "test_equal_operator_modifying_operand",
    "test_fromkeys_operator_modifying_dict_operand",
    "test_fromkeys_operator_modifying_set_operand",
    "test_dictitems_contains_use_after_free",
    "test_dict_contain_use_after_free",
    "test_init_use_after_free",
    # __hash__/__eq__ that raise
    "test_bad_key",
    "test_tuple_keyerror",
    # __del__ that mutates the dict
    "test_reentrant_insertion",
    "test_oob_indexing_dictiter_iternextitem",
    # iteration while the dict changes
    "test_mutating_iteration",
    "test_mutating_iteration_delete",
    "test_mutating_iteration_delete_over_values",
    "test_mutating_iteration_delete_over_items",
    # hash/eq called once per operation, resize
    "test_setdefault_atomic",
    "test_setitem_atomic_at_resize",
    "test_resize1",
    # subclass protocol and lifetime
    "test_missing",
    "test_free_after_iterating",
]

# DictTest methods that test the builtin dict's own implementation, not its behaviour.
SKIPS = {
    "test_track_literals": "gc.is_tracked() of dict literals: CPython's untracking of "
    "dicts holding only atomic values (a GC optimisation of the builtin dict)",
    "test_track_dynamic": "gc.is_tracked() as values change: the same CPython GC optimisation",
}

# Like SKIPS, for tests that only newer CPythons have.
SKIPS_IF_PRESENT = {
    "test_store_evilattr": "(3.13+) assigns a dict display to an instance's __dict__, which "
    "CPython requires to be a builtin dict (its attribute storage, not a mapping protocol)",
}
SKIPS.update({k: v for k, v in SKIPS_IF_PRESENT.items() if k in vars(test_dict.DictTest)})

_NAME = "_gilfree_dict_type"


class _ToGilfree(ast.NodeTransformer):
    """Rewrites dict displays, dict comprehensions and the name `dict`."""

    def _call(self, arg, node):
        call = ast.Call(func=ast.Name(id=_NAME, ctx=ast.Load()), args=[arg], keywords=[])
        return ast.copy_location(call, node)

    def visit_Dict(self, node):
        self.generic_visit(node)
        if any(k is None for k in node.keys):  # {**other}: let a builtin dict merge first
            return self._call(node, node)
        pairs = ast.List(
            elts=[ast.Tuple(elts=[k, v], ctx=ast.Load()) for k, v in zip(node.keys, node.values)],
            ctx=ast.Load(),
        )
        return self._call(pairs, node)

    def visit_DictComp(self, node):
        self.generic_visit(node)
        pair = ast.Tuple(elts=[node.key, node.value], ctx=ast.Load())
        return self._call(ast.GeneratorExp(elt=pair, generators=node.generators), node)

    def visit_Name(self, node):
        if node.id == "dict" and isinstance(node.ctx, ast.Load):
            return ast.copy_location(ast.Name(id=_NAME, ctx=ast.Load()), node)
        return node


def _port(name, dict_type):
    """DictTest.<name>, rewritten to use `dict_type`, as a function."""
    func = getattr(test_dict.DictTest, name)
    lines, first = inspect.getsourcelines(func)
    tree = ast.parse(textwrap.dedent("".join(lines)))
    tree = ast.fix_missing_locations(_ToGilfree().visit(tree))
    ast.increment_lineno(tree, first - 1)
    namespace = dict(vars(test_dict))
    namespace[_NAME] = dict_type
    exec(compile(tree, inspect.getsourcefile(func), "exec"), namespace)
    return namespace[name]


def _suite_for(dict_type):
    methods = {}
    for name, member in vars(test_dict.DictTest).items():
        if not inspect.isfunction(member) or name.startswith("__"):
            continue
        func = _port(name, dict_type)
        if name in SKIPS:
            func = unittest.skip(SKIPS[name])(func)
        methods[name] = func
    return type("DictTest_" + dict_type.__name__, (unittest.TestCase,), methods)


assert set(EVIL) | set(SKIPS) <= set(vars(test_dict.DictTest)), "test_dict.py changed upstream"

DictTest = _suite_for(gilfree.Dict)
LockedDictTest = _suite_for(gilfree.LockedDict)

if __name__ == "__main__":
    unittest.main()
