#!/usr/bin/env bash
# Issue 14 on the H200 in one device call: where start-up and construction
# go (startup_probe.py); the registry rebuilt from this machine's
# transformers and the core and all suites' test jobs through the system
# with slots from the machine and runners started ahead of tasks
# (run-on-gpu.sh suites, packed into evidence.tgz); then, in the time left,
# the runner over the registry as benchmarks in warm processes
# (hfleet_sweep.py --in-process), with every failure's reason.
export PYTHONUNBUFFERED=1
budget=${HF_CALL_BUDGET:-585}
timeout 45 python3 tests/gpu/startup_probe.py >"$OUT/startup.jsonl" 2>&1; cat "$OUT/startup.jsonl"
HF_REGISTRY_REBUILD=1 HF_SLOTS=${HF_SLOTS:-auto} HF_WATCH_LIMIT=${HF_WATCH_LIMIT:-150} \
  bash tests/gpu/run-on-gpu.sh suites >"$OUT/suites.log" 2>&1
grep -E "registry|slots|prewarm|wall_s|gpu_busy|efficiency" "$OUT/suites.log" | head -20
left=$((budget - SECONDS))
echo "benchmark sweep: $left s left"
if [ "$left" -gt 40 ]; then
  reg=coordinator/registry/models.tsv
  tar -xzf "$OUT/evidence.tgz" -C /tmp ./models.tsv 2>/dev/null && reg=/tmp/models.tsv
  timeout "$left" python3 worker/runners/hfleet_sweep.py --backend cuda --in-process --jobs 6 \
    --registry "$reg" --out /tmp/bsweep --deadline $((left - 12)) --kind benchmark --precision fp16 \
    --batch-size 1 --seq-len 128 --iterations 3 --warmup 1 >/tmp/bsweep.log 2>&1
  tail -2 /tmp/bsweep.log
  cp /tmp/bsweep/summary.json "$OUT/bsweep-summary.json" 2>/dev/null || cp /tmp/bsweep/rows.jsonl "$OUT/bsweep-rows.jsonl"
  cp /tmp/bsweep.log "$OUT/"
fi
ls -la "$OUT"
