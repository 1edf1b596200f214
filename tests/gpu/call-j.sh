#!/usr/bin/env bash
# Issue 14: benchmarks of default configs larger than the one GPU, their
# last blocks in host memory (worker/runners/hfleet_offload.py), in one
# device call with no hfleet binaries: the offload build's torch tests
# (the output of streamed blocks against the same weights all on the GPU),
# then the runner's benchmark sweep of HF_ONLY's types one at a time
# (call-d.sh with HF_KIND=benchmark HF_JOBS=1; HF_DEADLINE bounds it).
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
py=$(command -v python3)
{ free -g; nvidia-smi --query-gpu=name,memory.total --format=csv; } >"$OUT/machine.txt" 2>&1
(cd worker/runners && timeout 150 $py -m unittest -v test_runner_torch.TestOffload test_runner_offload) \
  >"$OUT/unittest.log" 2>&1
tail -4 "$OUT/unittest.log"; echo "unit tests done: $SECONDS s"
mkdir -p "$OUT/sweep"
OUT="$OUT/sweep" HF_KIND=benchmark HF_JOBS=1 HF_CENSUS=0 bash tests/gpu/call-d.sh
cat "$OUT/machine.txt"
