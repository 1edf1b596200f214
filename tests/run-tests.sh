#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The test command: installs what is missing, builds with warnings as
# errors, and runs every test suite (unit, runner, integration, faults,
# hostile); then builds again with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs the suites once more.  Exits non-zero when any test fails.
#
#   tests/run-tests.sh            everything
#   HF_SANITIZE=0 tests/run-tests.sh   skip the sanitizer pass
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
"$root/deploy/install-deps.sh"

run_suites() {
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" -Dwerror=true "$@" >/dev/null
  fi
  ninja -C "$dir"
  meson test -C "$dir" --print-errorlogs --suite unit --suite runner --suite integration --suite faults --suite hostile
}

echo "== build and test =="
run_suites build-test

if [ "${HF_SANITIZE:-1}" != "0" ]; then
  echo "== build and test with ASan and UBSan =="
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_suites build-asan -Db_sanitize=address,undefined -Db_lundef=false
fi
