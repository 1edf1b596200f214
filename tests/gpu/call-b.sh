#!/usr/bin/env bash
# Issue 14 on one GPU in one device call (600 s), after call-a.sh: what
# transformers' auto mappings look like on that machine (for the registry
# tool), the registry rebuilt, the core and all suites' test jobs and all's
# benchmark job through the system, then every benchmark mode (compile
# included) through the system and against plain torch.
export PYTHONUNBUFFERED=1
t=$(env -u LD_LIBRARY_PATH python3 -c 'import importlib.util as u; print(list(u.find_spec("transformers").submodule_search_locations)[0])')
{ ls "$t/models/auto"; grep -n "MAPPING_NAMES\b.*=" "$t"/models/auto/*.py | head -20
  for f in configuration_auto modeling_auto; do
    n=$(grep -n "MAPPING_NAMES" "$t/models/auto/$f.py" | head -1 | cut -d: -f1)
    [ -n "$n" ] && sed -n "$((n > 3 ? n - 3 : 1)),$((n + 8))p" "$t/models/auto/$f.py"
  done; } >/tmp/regdiag.txt 2>&1
head -40 /tmp/regdiag.txt
# The call's limit (HF_CALL_LIMIT, the device tool's timeout_s) less 20 s
# for packing: a suites step still running then is stopped and what it left
# under $OUT is packed here, since the tool brings back at most 8 files.
limit=${HF_CALL_LIMIT:-580}
HF_REGISTRY_REBUILD=1 HF_SLOTS=${HF_SLOTS:-auto} HF_SUITES="${HF_SUITES:-core all}" HF_BENCH_SUITES=${HF_BENCH_SUITES-all} \
  HF_WATCH_LIMIT=${HF_WATCH_LIMIT:-130} HF_BENCH_LIMIT=${HF_BENCH_LIMIT:-150} \
  timeout $((limit - 20 - SECONDS)) bash tests/gpu/run-on-gpu.sh suites >"$OUT/suites.log" 2>&1
if [ -f "$OUT/evidence.tgz" ]; then
  mv "$OUT/evidence.tgz" /tmp/suites-evidence.tgz
else
  echo "the suites step was stopped at the call's limit: packing what it left"
  tar -C "$OUT" -czf /tmp/suites-evidence.tgz . && find "$OUT" -mindepth 1 -delete
fi
echo "after suites: $SECONDS s"
# HF_BENCH_MODES=none: the suites alone.  HF_BENCH_SLICE=FROM:COUNT (with
# HF_SUITES=" " and HF_BENCH_LIMIT) runs the benchmark job of a slice of the
# registry instead: the 557 benchmarks take about 51 minutes on one H100,
# more than one call, so they go in slices (0:60, 60:60, ... with
# HF_BENCH_LIMIT=400 fit one call of 600 s).
[ "${HF_BENCH_MODES:-all}" = none ] ||
  HF_BENCH_MODES=${HF_BENCH_MODES:-all} HF_WATCH_LIMIT=${HF_MODES_LIMIT:-240} timeout $((limit - 10 - SECONDS)) \
    bash tests/gpu/run-on-gpu.sh modes >"$OUT/modes.log" 2>&1
mv "$OUT/evidence.tgz" "$OUT/modes-evidence.tgz" 2>/dev/null; mv /tmp/suites-evidence.tgz "$OUT/suites-evidence.tgz"
cp /tmp/regdiag.txt "$OUT/"
echo "done: $SECONDS s"; ls -la "$OUT"
