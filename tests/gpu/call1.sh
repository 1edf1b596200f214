#!/usr/bin/env bash
# Issue 14's first look on the H200 (one device call): where start-up and
# construction go (startup_probe.py), the registry rebuilt from this
# machine's transformers, and the runner over all of the registry's model
# types in warm processes (hfleet_sweep.py --in-process), as a test and as
# a benchmark, with every failure's reason.  Evidence under $OUT.
export PYTHONUNBUFFERED=1
timeout 60 python3 tests/gpu/startup_probe.py >"$OUT/startup.jsonl" 2>&1; cat "$OUT/startup.jsonl"
nproc; free -g | head -2
python3 coordinator/registry/build_registry.py --out "$OUT/models.tsv" \
  --expect-types coordinator/registry/reference/transformers-5.17-model-types.tsv >"$OUT/registry-build.txt" 2>&1
python3 coordinator/registry/check_registry.py "$OUT/models.tsv" \
  coordinator/registry/reference/transformers-5.17-model-types.tsv >>"$OUT/registry-build.txt" 2>&1
tail -4 "$OUT/registry-build.txt"
reg=$OUT/models.tsv; [ -s "$reg" ] || reg=coordinator/registry/models.tsv
sweep() {  # NAME LIMIT JOBS ARGS...
  local name=$1 limit=$2 jobs=$3; shift 3
  timeout "$limit" python3 worker/runners/hfleet_sweep.py --backend cuda --in-process --jobs "$jobs" \
    --registry "$reg" --out /tmp/$name --deadline $((limit - 15)) "$@" >/tmp/$name.log 2>&1
  tail -2 /tmp/$name.log
  cp /tmp/$name/summary.json "$OUT/$name-summary.json" 2>/dev/null || cp /tmp/$name/rows.jsonl "$OUT/$name-rows.jsonl" 2>/dev/null || cp /tmp/$name.log "$OUT/"
}
sweep tsweep ${HF_TSWEEP_LIMIT:-200} 16 --kind test --precision fp32 --batch-size 1 --seq-len 128
sweep bsweep ${HF_BSWEEP_LIMIT:-240} 6 --kind benchmark --precision fp16 --batch-size 1 --seq-len 128 --iterations 3 --warmup 1
ls -la "$OUT"
