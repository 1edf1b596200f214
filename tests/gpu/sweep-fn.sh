# Sourced by the tests/gpu/call-*.sh scripts: gpu_sweep KIND PRECISION BATCH
# NAME TYPES DEADLINE runs the runner's own sweep (hfleet_sweep.py, in
# process, three at once, cuda, seq 128, 10 iterations) over the
# comma-separated TYPES, as the system runs a task of that kind; its log and
# summary go to $OUT/NAME.log and $OUT/NAME-summary.json.
gpu_sweep() {
  "${py:-python3}" worker/runners/hfleet_sweep.py --registry coordinator/registry/models.tsv --backend cuda \
    --kind "$1" --precision "$2" --batch-size "$3" --seq-len 128 --iterations 10 --jobs 3 --in-process \
    --deadline "$6" --only "$5" --out "/tmp/$4" >"$OUT/$4.log" 2>&1
  tail -3 "$OUT/$4.log"; cp "/tmp/$4/summary.json" "$OUT/$4-summary.json" 2>/dev/null
  echo "$4 done: $SECONDS s"
}
