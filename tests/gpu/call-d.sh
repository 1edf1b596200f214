#!/usr/bin/env bash
# Issue 14 diagnosis in one device call, with no hfleet binaries: the
# runner's own sweep over every registry type (test kind, as the system runs
# it: cuda, batch 1, seq 128, fp32) with each failure's traceback and runner
# log; the parameter count of every default config (what a benchmark builds);
# and the transformers source of every type that did not pass, to read here.
#
# HF_KIND=benchmark sweeps benchmarks instead (fp16, 10 iterations, as the
# system's benchmark job): several at once on the one GPU while the census's
# parameter counts say they fit 85 % of its memory, the smallest first (the
# largest, 35 to 58 B parameters, take minutes each: set HF_DEADLINE).
# Their figures are not measurements (they share the GPU): the sweep says
# which types build, run and time at full size.  HF_ONLY (comma-separated)
# or HF_ONLY_FILE (a file in the working tree, for lists longer than the
# device tool's command line) names the types.
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
py=$(command -v python3)
kind=${HF_KIND:-test}
if [ "$kind" = benchmark ]; then
  mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
  extra=(--precision "${HF_PRECISION:-fp16}" --iterations 10 --params docs/gpu-evidence/issue14/h100-sweeps/param-census.tsv
         --memory-budget-gib "$(( mib * 85 / 100 / 1024 ))")
else
  extra=(--precision "${HF_PRECISION:-fp32}")
fi
$py worker/runners/hfleet_sweep.py --registry coordinator/registry/models.tsv --backend cuda --kind "$kind" \
  --batch-size 1 --seq-len 128 --jobs "${HF_JOBS:-12}" --in-process --deadline "${HF_DEADLINE:-240}" \
  "${extra[@]}" --out /tmp/sweep ${HF_ONLY:+--only "$HF_ONLY"} ${HF_ONLY_FILE:+--only-file "$HF_ONLY_FILE"} \
  >"$OUT/sweep.log" 2>&1
tail -3 "$OUT/sweep.log"; echo "sweep done: $SECONDS s"
cp /tmp/sweep/summary.json "$OUT/sweep-summary.json"
[ -n "${HF_CENSUS:-1}" ] && [ "${HF_CENSUS:-1}" != 0 ] &&
  timeout 150 $py tests/gpu/param_census.py coordinator/registry/models.tsv --jobs 14 >"$OUT/census.tsv" 2>"$OUT/census.err"
echo "census done: $SECONDS s"
$py - <<'PY' >"$OUT/sources.txt" 2>&1
import inspect, json, os, tarfile
from transformers import CONFIG_MAPPING
rows = json.load(open("/tmp/sweep/summary.json"))
bad = [r["model_type"] for r in rows if r["status"] != "passed"]
dirs = set()
for mt in bad:
    try:
        dirs.add(os.path.dirname(inspect.getfile(CONFIG_MAPPING[mt])))
    except Exception as exc:
        print(mt, "no source:", exc)
out = os.environ["OUT"]
with tarfile.open(os.path.join(out, "sources.tgz"), "w:gz") as t:
    for d in sorted(dirs):
        for f in os.listdir(d):
            if f.endswith(".py") and (f.startswith("modeling_") or f.startswith("configuration_") or f.startswith("modular_")):
                t.add(os.path.join(d, f), arcname=os.path.join(os.path.basename(d), f))
print(len(bad), "types not passed,", len(dirs), "source folders")
PY
cat "$OUT/sources.txt"; echo "done: $SECONDS s"; ls -la "$OUT"
