#!/usr/bin/env bash
# Runs the unit tests (the lock and table protocols), the concurrency stress tests and the
# re-entrancy/freeze/hand-over suites under
# AddressSanitizer (needs a nightly toolchain: `rustc +nightly --version`). Not part of
# .ci/run, which must pass on stable alone. Longer runs: GILFREE_STRESS_MS=30000.
#
# Leak detection is off: some tests build reference cycles on purpose (frozen cyclic trees),
# and RSS-based tests (dict_memory) are skipped, since ASan's quarantine holds freed memory.
# `allocator_may_return_null`: the tests of `TooLarge` ask for impossible sizes, which must
# fail as allocation errors (as without ASan), not abort.
set -euo pipefail
cd "$(dirname "$0")/.."
tests=(--lib)
for f in tests/dict_stress.rs tests/exclusive_access.rs tests/dict_reentrancy.rs tests/dict_basic.rs tests/freeze_dict.rs \
         tests/handover.rs tests/list_stress.rs tests/list_reentrancy.rs tests/list_basic.rs tests/freeze_list.rs \
         tests/frozen_cell.rs tests/drop_panic.rs tests/membarrier_fallback.rs tests/serde.rs; do
  [ -f "$f" ] && tests+=(--test "$(basename "$f" .rs)")
done
ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 RUSTFLAGS="-Zsanitizer=address" CARGO_TARGET_DIR=target-asan \
  GILFREE_STRESS_MS="${GILFREE_STRESS_MS:-3000}" \
  cargo +nightly test --target "$(rustc +nightly -vV | sed -n 's/^host: //p')" "${tests[@]}"
