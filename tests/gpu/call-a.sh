#!/usr/bin/env bash
# Issue 14 on the H200 in one device call (600 s): where start-up and
# construction go (startup_probe.py); the registry rebuilt from this
# machine's transformers, then the core and all suites' test jobs through
# the system (slots from the machine, runners started ahead of tasks); then
# benchmark modes through the system and against plain torch
# (HF_BENCH_MODES, default eager,cuda-graph: compile takes minutes).
export PYTHONUNBUFFERED=1
timeout 40 python3 tests/gpu/startup_probe.py >"$OUT/startup.jsonl" 2>&1; cat "$OUT/startup.jsonl"
HF_REGISTRY_REBUILD=1 HF_SLOTS=${HF_SLOTS:-auto} HF_SUITES="${HF_SUITES:-core all}" HF_WATCH_LIMIT=${HF_WATCH_LIMIT:-130} \
  bash tests/gpu/run-on-gpu.sh suites >"$OUT/suites.log" 2>&1
grep -E "registry|slots|prewarm|wall_s|gpu_busy|efficiency" "$OUT/suites.log" | head -20
mv "$OUT/evidence.tgz" /tmp/suites-evidence.tgz
echo "after suites: $SECONDS s"
HF_BENCH_MODES=${HF_BENCH_MODES:-eager,cuda-graph} HF_WATCH_LIMIT=150 timeout $((580 - SECONDS)) \
  bash tests/gpu/run-on-gpu.sh modes >"$OUT/modes.log" 2>&1
tail -40 "$OUT/modes.log"
mv "$OUT/evidence.tgz" "$OUT/modes-evidence.tgz" 2>/dev/null; mv /tmp/suites-evidence.tgz "$OUT/suites-evidence.tgz"
echo "done: $SECONDS s"; ls -la "$OUT"
