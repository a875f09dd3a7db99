"""CPython's own container test suites, run against gilfree's types.

Lib/test/mapping_tests.py (TestHashMappingProtocol) and Lib/test/list_tests.py (CommonTest,
which includes seq_tests.CommonTest) come from the `test` package of the Python running this
file; nothing is copied. Each suite runs twice: against the GIL-free variant (gilfree.Dict,
gilfree.List) and the locked one (gilfree.LockedDict, gilfree.LockedList).

Skipped upstream tests are listed in SKIPS below, each with its reason (also in
python/README.md).
"""

import unittest
from test import list_tests, mapping_tests

import gilfree

# Upstream tests that do not apply, with the reason. Keep this short.
SKIPS = {
    # (none for the mapping protocol)
    "mapping": {},
    "list": {},
}


def _with_skips(cls, skips):
    for name, reason in skips.items():
        setattr(cls, name, unittest.skip(reason)(getattr(cls, name)))
    return cls


class DictMappingTest(mapping_tests.TestHashMappingProtocol):
    type2test = gilfree.Dict


class LockedDictMappingTest(mapping_tests.TestHashMappingProtocol):
    type2test = gilfree.LockedDict


class ListTest(list_tests.CommonTest):
    type2test = gilfree.List


class LockedListTest(list_tests.CommonTest):
    type2test = gilfree.LockedList


for _cls in (DictMappingTest, LockedDictMappingTest):
    _with_skips(_cls, SKIPS["mapping"])
for _cls in (ListTest, LockedListTest):
    _with_skips(_cls, SKIPS["list"])
del _cls  # not a test class of its own

if __name__ == "__main__":
    unittest.main()
