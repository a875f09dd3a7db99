#!/usr/bin/env bash
# The CPython integration: builds the extension module in python/ (PyO3) with maturin into a
# virtualenv under target/, then runs CPython's own test suites against gilfree.Dict/List
# (Lib/test/mapping_tests.py TestHashMappingProtocol, Lib/test/list_tests.py CommonTest, the
# evil-key cases of Lib/test/test_dict.py) plus the binding's own tests, from the Python
# installed on the machine (its `test` package). Ends with "N passed, M failed, K skipped";
# exits non-zero if any test failed.
#
# Needs: python3 (3.9+, with venv, pip and the `test` package), cargo. Network once, for
# maturin from PyPI. Env: PYTHON (interpreter, default python3), GILFREE_PY_VENV (virtualenv
# directory, default target/python-venv). Extra arguments go to python/tests/run.py (-v).
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
venv="${GILFREE_PY_VENV:-target/python-venv}"

if [ ! -x "$venv/bin/python" ]; then
  echo "== creating $venv"
  "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import maturin' 2>/dev/null; then
  echo "== pip install maturin"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'maturin>=1.5,<2'
fi
if ! "$venv/bin/python" -c 'import test.mapping_tests, test.list_tests, test.test_dict' 2>/dev/null; then
  echo "error: this Python lacks CPython's test package (Debian/Ubuntu: apt install libpython3-testsuite)" >&2
  exit 1
fi

echo "== maturin develop --release (python/)"
VIRTUAL_ENV="$PWD/$venv" PATH="$PWD/$venv/bin:$PATH" \
  "$venv/bin/maturin" develop --release --manifest-path python/Cargo.toml --quiet

echo "== CPython test suites against gilfree"
"$venv/bin/python" python/tests/run.py "$@"
