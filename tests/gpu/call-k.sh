#!/usr/bin/env bash
# Issue 14: benchmarks of default configs larger than the one GPU (their last
# blocks in host memory), one runner process per type, in HF_ONLY's order.
# Call J ran them in one warm pool process: solar_open passed in 102 s, and
# the next type had not finished 418 s later, with nothing to say why.  Here
# each type has its own process and at most HF_PER seconds (the call's
# HF_DEADLINE bounds the whole); a runner past its time is sent SIGABRT, so
# its kept stderr ends with its Python stacks; and a monitor writes the
# host's and the GPU's memory every 5 s (monitor.log).  First the offload
# build's torch tests, as call J.  No hfleet binaries.
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
py=$(command -v python3)
per=${HF_PER:-150} deadline=${HF_DEADLINE:-540}
{ free -g; nvidia-smi --query-gpu=name,memory.total --format=csv; } >"$OUT/machine.txt" 2>&1
(cd worker/runners && timeout 150 $py -m unittest -v test_runner_torch.TestOffload test_runner_offload) \
  >"$OUT/unittest.log" 2>&1
tail -4 "$OUT/unittest.log"; echo "unit tests done: $SECONDS s"
( while :; do
    echo "$SECONDS $(free -m | awk '/^Mem:/ {print "host used", $3, "MiB, available", $7, "MiB"}') \
gpu $(nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader | tr -d '\n')"
    sleep 5
  done ) >"$OUT/monitor.log" 2>&1 &
monitor=$!
IFS=, read -ra types <<<"$HF_ONLY"
for t in "${types[@]}"; do
  left=$(( deadline - SECONDS ))
  [ "$left" -lt 60 ] && { echo "$t: not started, $left s left"; continue; }
  limit=$(( left < per ? left : per ))
  echo "$SECONDS $t starts (at most $limit s)" >>"$OUT/monitor.log"
  $py worker/runners/hfleet_sweep.py --registry coordinator/registry/models.tsv --backend cuda \
    --kind benchmark --precision fp16 --iterations 10 --batch-size 1 --seq-len 128 --jobs 1 \
    --timeout "$limit" --only "$t" --out "/tmp/sweep-$t" >"$OUT/$t.log" 2>&1
  cp "/tmp/sweep-$t/summary.json" "$OUT/$t.summary.json" 2>/dev/null
  cp "/tmp/sweep-$t/tasks/$t.stderr" "$OUT/$t.stderr" 2>/dev/null
  tail -1 "$OUT/$t.log"; echo "$t done: $SECONDS s"
done
kill "$monitor"
cat "$OUT/machine.txt"
