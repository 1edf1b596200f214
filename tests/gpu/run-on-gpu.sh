#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs on the GPU machine (through the device tool), from the repository
# root, with .carry/ made by tests/gpu/bundle.sh.  Starts a private
# PostgreSQL, hf-coordinator and one hf-worker on the real GPU, then runs
# what is asked and leaves the evidence under $OUT:
#   tests/gpu/run-on-gpu.sh probe            hf-worker --probe, hfctl devices, two CUDA tasks
#   tests/gpu/run-on-gpu.sh suite [ARGS...]  the suite's test job on cuda (ARGS go to hfctl submit)
#   tests/gpu/run-on-gpu.sh bench [ARGS...]  a benchmark job on cuda
#   tests/gpu/run-on-gpu.sh probe+suite      both, one after the other
# Environment: HF_SLOTS (concurrent tasks on the GPU, default 1),
#   HF_RUNNER (runner command, default the reference runner),
#   HF_WATCH_LIMIT (seconds to follow a suite or bench job, default 450).
set -uo pipefail
mode=${1:-probe}; shift || true
repo=$(pwd)
out=${OUT:-/tmp/hfleet-out}
mkdir -p "$out"
w=/tmp/hfleet; rm -rf "$w"; mkdir -p "$w"; chmod 755 "$w"
tar -C "$w" -xJf .carry/bundle.tar.xz
chmod -R a+rX "$w"
# Our binaries and PostgreSQL find their Debian libraries here; the runner
# (Python, torch) must not, so its command drops the variable.
export LD_LIBRARY_PATH=$w/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
pgbin=$w/pg/usr/lib/postgresql/15/bin
id hfpg >/dev/null 2>&1 || useradd -M -d "$w" hfpg
mkdir -p "$w/db"; chown hfpg "$w/db"
as_pg() { runuser -u hfpg -- env LD_LIBRARY_PATH="$LD_LIBRARY_PATH" "$@"; }
as_pg "$pgbin/initdb" -D "$w/db/data" --auth=trust -U postgres -E UTF8 >"$out/initdb.log" 2>&1 || { cat "$out/initdb.log"; exit 1; }
as_pg "$pgbin/pg_ctl" -D "$w/db/data" -l "$w/db/log" -w -o "-k $w/db -p 55432 -c listen_addresses=''" start >/dev/null || { cat "$w/db/log"; exit 1; }
"$pgbin/psql" -X -h "$w/db" -p 55432 -U postgres -d postgres -qc "CREATE DATABASE hfleet"
conninfo="host=$w/db port=55432 user=postgres dbname=hfleet"
psql_q() { "$pgbin/psql" -X -h "$w/db" -p 55432 -U postgres -d hfleet "$@"; }

slots=${HF_SLOTS:-1}
runner=${HF_RUNNER:-env -u LD_LIBRARY_PATH python3 $repo/worker/runners/hfleet_runner.py}
"$w/bin/hf-worker" --probe --runner "$runner" >"$out/probe.txt" 2>&1
"$w/bin/hf-worker" --probe --json --runner "$runner" >"$out/probe.json" 2>>"$out/probe.txt"
cat "$out/probe.txt"

"$w/bin/hf-coordinator" --database "$conninfo" --registry "$repo/coordinator/registry/models.tsv" \
  --worker-listen tcp://127.0.0.1:17100 --control-listen tcp://127.0.0.1:17101 \
  --http-listen http://127.0.0.1:17102 >"$out/coordinator.log" 2>&1 &
"$w/bin/hf-worker" --id gpu-worker --coordinator tcp://127.0.0.1:17100 --state-dir "$w/worker" \
  --runner "$runner" --set "devices.slots=cuda=$slots" --set "devices.shared=cpu,cuda" \
  >"$out/worker.log" 2>&1 &
hfctl() { "$w/bin/hfctl" --coordinator tcp://127.0.0.1:17101 "$@"; }
for _ in $(seq 1 300); do hfctl --json workers 2>/dev/null | grep -q gpu-worker && break; sleep 0.2; done
hfctl workers; hfctl devices | tee "$out/devices.txt"

run_probe() {
  hfctl --json submit --models bert,gpt2 --backends cuda --name probe >"$out/submit.json"
  job=$(python3 -c 'import json;print(json.load(open("'"$out"'/submit.json"))["job_id"])')
  hfctl watch "$job"; hfctl results "$job" | tee "$out/results.txt"
  hfctl --json results "$job" >"$out/results.json"
  psql_q -c "SELECT model_type, status, env->>'device_name' AS device, env->>'cuda_visible_devices' AS visible, env->>'hfleet_device_uuid' AS given, env->>'torch_device_uuid' AS torch_uuid, env->'torch_device_count' AS torch_sees FROM task_outcomes WHERE job_id = $job" | tee -a "$out/results.txt"
}
run_job() {
  local name=$1; shift
  kind=test; [ "$name" = bench ] && kind=benchmark
  start=$(date +%s.%N)
  hfctl --json submit --backends cuda --kind "$kind" --name "$name" "$@" >"$out/$name-submit.json"
  job=$(python3 -c 'import json;print(json.load(open("'"$out/$name"'-submit.json"))["job_id"])')
  timeout "${HF_WATCH_LIMIT:-450}" "$w/bin/hfctl" --coordinator tcp://127.0.0.1:17101 watch "$job" --interval 5s
  end=$(date +%s.%N)
  echo "wall_s $(python3 -c "print($end-$start)")" | tee "$out/$name-wall.txt"
  hfctl results "$job" >"$out/$name-results.txt"; tail -3 "$out/$name-results.txt"
  hfctl --json results "$job" >"$out/$name-results.json"
  psql_q -c "SELECT status, count(*) FROM task_outcomes WHERE job_id = $job GROUP BY 1" | tee "$out/$name-summary.txt"
}
case "$mode" in
probe) run_probe ;;
suite) run_job suite --all "$@" ;;
bench) run_job bench "$@" ;;
probe+suite) run_probe; run_job suite --all "$@" ;;
esac
curl -s http://127.0.0.1:17102/metrics >"$out/metrics.txt" 2>/dev/null || true
kill %2 %1 2>/dev/null; wait
as_pg "$pgbin/pg_ctl" -D "$w/db/data" -m fast -w stop >/dev/null
# The device tool brings back at most 8 files: pack the evidence into one.
tar -C "$out" -czf /tmp/hfleet-evidence.tgz . && find "$out" -mindepth 1 -delete && mv /tmp/hfleet-evidence.tgz "$out/evidence.tgz"
