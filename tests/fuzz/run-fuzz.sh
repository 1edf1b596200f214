#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every libFuzzer target (tests/fuzz, docs/fuzzing.md) for a while each,
# under AddressSanitizer and UndefinedBehaviorSanitizer, and prints for each
# the executions and the coverage reached (libFuzzer's cov: and ft:).  Exits
# non-zero when any target finds a crash, a leak, undefined behaviour or an
# input slower than HF_FUZZ_TIMEOUT seconds; the input that did it is kept
# under build-fuzz/fuzz-artifacts/.
#
#   tests/fuzz/run-fuzz.sh [SECONDS [TARGET...]]   default 30 s, every target
#   HF_FUZZ_RUNS=1000000 tests/fuzz/run-fuzz.sh    a number of executions
#                                                  instead of a time
#
# Builds build-fuzz with clang first when needed (HF_FUZZ_BUILD names another
# directory, HF_FUZZ_CC another compiler).  Each target starts from its seeds
# in tests/fuzz/corpus/<target>, copied to a temporary directory: what the
# fuzzer adds is thrown away, so a run never changes the repository.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
seconds=${1:-30}
shift || true
build=${HF_FUZZ_BUILD:-build-fuzz}
cc=${HF_FUZZ_CC:-$(command -v clang || command -v clang-14 || echo clang)}

if ! command -v "$cc" >/dev/null; then
  echo "run-fuzz: $cc not found (deploy/install-deps.sh --test installs clang-14)" >&2
  exit 1
fi
if [ ! -f "$build/build.ninja" ]; then
  CC=$cc meson setup "$build" -Dwerror=true -Dfuzz=true -Db_sanitize=address,undefined \
    -Db_lundef=false >/dev/null
fi

# The fuzz targets this build has (fuzz_envelope only once
# common/hf_validate.h exists).
mapfile -t all < <(meson introspect "$build" --targets | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["type"] == "executable" and t["name"].startswith("fuzz_"):
        print(t["name"])' | sort)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
if ! out=$(ninja -C "$build" $(printf 'tests/fuzz/%s ' "${targets[@]}") 2>&1); then
  printf '%s\n' "$out" | tail -n 30 >&2
  echo "run-fuzz: building the fuzz targets failed" >&2
  exit 1
fi

export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
artifacts="$root/$build/fuzz-artifacts"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts"

failed=()
printf '%-18s %12s %7s %7s %6s  %s\n' target executions cov ft secs result
for t in "${targets[@]}"; do
  name=${t#fuzz_}
  corpus="$work/$name"
  mkdir -p "$corpus"
  if [ -d "tests/fuzz/corpus/$name" ]; then
    cp -r "tests/fuzz/corpus/$name/." "$corpus/"
  fi
  args=(-print_final_stats=1 -timeout="${HF_FUZZ_TIMEOUT:-25}" -rss_limit_mb=2048
        -artifact_prefix="$artifacts/$t-")
  if [ -n "${HF_FUZZ_RUNS:-}" ]; then
    args+=(-runs="$HF_FUZZ_RUNS")
  else
    args+=(-max_total_time="$seconds")
  fi
  if [ -f "tests/fuzz/dict/$name.dict" ]; then
    args+=(-dict="tests/fuzz/dict/$name.dict")
  fi
  log="$work/$t.log"
  rc=0
  start=$SECONDS
  "$build/tests/fuzz/$t" "${args[@]}" "$corpus" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  if [ "$rc" -eq 0 ]; then
    result=ok
  else
    result="FAILED (exit $rc)"
    failed+=("$t")
  fi
  printf '%-18s %12s %7s %7s %6s  %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
    "$((SECONDS - start))" "$result"
  if [ "$rc" -ne 0 ]; then
    echo "--- $t: the end of libFuzzer's output ---" >&2
    tail -n 60 "$log" >&2
    echo "--- reproduce: $build/tests/fuzz/$t <the file named above> ---" >&2
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "run-fuzz: failed: ${failed[*]} (inputs kept in $artifacts)" >&2
  exit 1
fi
