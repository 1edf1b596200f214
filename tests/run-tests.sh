#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The test command: installs what is missing, builds with warnings as
# errors, and runs every test suite (unit, runner, integration, faults,
# hostile, install); builds, lints, installs and purges the Debian packages
# (tests/packaging/test_packages.py, about a minute; as root only) and runs
# docs/operations.md's runbook on them under systemd in a podman container
# (tests/packaging/test_runbook.py, about a minute and a half; as root, where
# podman is installed); then
# builds again with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs the suites once more; last, runs every
# fuzz target for a while (tests/fuzz/run-fuzz.sh, docs/fuzzing.md), and
# closes on "tests: N passed, 0 failed", the line CI reads.  Exits
# non-zero when any test fails or a fuzz target finds a crash.
#
#   tests/run-tests.sh            everything
#   HF_SANITIZE=0 tests/run-tests.sh   skip the sanitizer pass
#   HF_FUZZ_SECONDS=N tests/run-tests.sh   fuzz each target N s (default 15;
#                                          0 skips the fuzzing)
#   HF_PACKAGES=0 tests/run-tests.sh   skip the package and runbook tests
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
packages_test=${HF_PACKAGES:-1}
if [ "$packages_test" != "0" ] && [ "$(id -u)" -ne 0 ]; then
  echo "== the package test needs root (dpkg -i): skipped ==" >&2
  packages_test=0
fi
if [ "$packages_test" != "0" ]; then
  "$root/deploy/install-deps.sh" --packaging
else
  "$root/deploy/install-deps.sh" --test
fi

# Every check this script runs, for the closing line: a meson test counts
# from its build's testlog.json, the package, runbook and fuzz steps one
# each.  A failure stops the script (set -e) before the line is printed.
passed=0
count_meson() {
  local n
  n=$(python3 -c 'import json,sys
print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["result"] == "OK"))' "$1/meson-logs/testlog.json")
  passed=$((passed + n))
}

run_suites() {
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" -Dwerror=true "$@" >/dev/null
  fi
  ninja -C "$dir"
  meson test -C "$dir" --print-errorlogs --suite unit --suite runner --suite integration --suite faults --suite hostile --suite install
  count_meson "$dir"
}

echo "== build and test =="
run_suites build-test

if [ "$packages_test" != "0" ]; then
  echo "== Debian packages: build, lintian, install, a job, purge =="
  python3 "$root/tests/packaging/test_packages.py"
  if command -v podman >/dev/null && command -v mmdebstrap >/dev/null; then
    echo "== the runbook of docs/operations.md, under systemd in a container =="
    python3 "$root/tests/packaging/test_runbook.py"
    passed=$((passed + 1))
  else
    echo "== the runbook test needs podman, runc and mmdebstrap: skipped ==" >&2
  fi
fi

if [ "${HF_SANITIZE:-1}" != "0" ]; then
  echo "== build and test with ASan and UBSan =="
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_suites build-asan -Db_sanitize=address,undefined -Db_lundef=false
fi

fuzz_seconds=${HF_FUZZ_SECONDS:-15}
if [ "$fuzz_seconds" != "0" ]; then
  echo "== fuzz every target for ${fuzz_seconds} s =="
  "$root/tests/fuzz/run-fuzz.sh" "$fuzz_seconds"
  passed=$((passed + 1))
fi

# The closing line CI reads (its plain form: "N passed, N failed").
echo "tests: $passed passed, 0 failed"
