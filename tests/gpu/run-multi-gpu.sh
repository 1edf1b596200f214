#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Issue 16 in one device call: hf-worker on a host of N >= 2 GPUs, through
# coordinator -> worker -> runner -> PostgreSQL (tests/gpu/cluster.sh starts
# them), from the repository root, with .carry/ made by tests/gpu/bundle.sh:
#   bash tests/gpu/run-multi-gpu.sh all      on nvidia-h200-x2, -x4 or -x8
#   bash tests/gpu/run-multi-gpu.sh standin  on one GPU: cuda:1 declared as a
#                                            second device on the same GPU
# Steps, each bounded in time, each with one PASS/FAIL/SKIP line in
# $OUT/summary.txt; everything else in $OUT/evidence.tgz:
#   probe      hf-worker --probe --json, hfctl devices: every GPU, UUID, memory,
#              NVLink peers (attribute nvlink_peers); nvidia-smi topo -m beside
#   multicast  every runner's /proc/PID/environ has multicast off although the
#              worker was started with NCCL_NVLS_ENABLE=1 and the others on
#   spread     the core suite's test job over every GPU; tasks whose torch saw
#              another device or more than one, tasks per GPU, wall time
#   split      benchmark jobs with --devices-per-task 2 (4, 8 where N allows):
#              devices held, device map, per-device memory
#   bench      a benchmark job of several models over the N GPUs
#   overlap    no two tasks shared a device while one of them was a benchmark
#   fault      a test job while every runner of cuda:N-1 is killed: the device
#              quarantined, its tasks moved, every task one deciding result
#   onegpu     the core suite on cuda:0 alone (only if time is left)
# Environment: HF_SLOTS (devices.slots for cuda, default auto),
#   HF_DEADLINE (seconds the whole run may take, default 540),
#   HF_SPLIT_MODELS (default llama), HF_BENCH_MODELS, HF_SUITE (default core),
#   HF_WORKER_ARGS (more hf-worker arguments), HF_RUNNER,
#   HF_LOCAL_BUILD / HF_PG_BIN (cluster.sh: this machine's binaries).
set -uo pipefail
mode=${1:-all}
repo=$(pwd)
out=${OUT:-/tmp/hfleet-out}
mkdir -p "$out"
deadline=${HF_DEADLINE:-540}
summary() { echo "$*" | tee -a "$out/summary.txt"; }
# Seconds a step may take: at most WANT, leaving RESERVE for what follows.
budget() { local b=$((deadline - SECONDS - $2)); [ "$b" -gt "$1" ] && b=$1; [ "$b" -lt 5 ] && b=5; echo "$b"; }
. "$repo/tests/gpu/cluster.sh"
cluster_start || { summary "setup: FAIL (PostgreSQL or tokens)"; exit 1; }
n=0 worker_pid='' coordinator_pid=''
# Whatever happens from here, the daemons stop and the evidence is packed.
finish() {
  trap - EXIT
  summary "end: $SECONDS s, N=$n, mode $mode"
  curl -s "http://127.0.0.1:$port_h/metrics" >"$out/metrics.txt" 2>/dev/null
  curl -s "http://127.0.0.1:$port_wm/metrics" >"$out/worker-metrics.txt" 2>/dev/null
  [ -n "$worker_pid" ] && stop_worker
  [ -n "$coordinator_pid" ] && kill "$coordinator_pid" 2>/dev/null
  wait
  cluster_stop
  # The device tool brings back at most 8 files: the evidence in one, the
  # summary beside it.
  cp "$out/summary.txt" /tmp/hfleet-summary.txt
  tar -C "$out" -czf /tmp/hfleet-evidence.tgz . && find "$out" -mindepth 1 -delete &&
    mv /tmp/hfleet-evidence.tgz "$out/evidence.tgz"
  mv /tmp/hfleet-summary.txt "$out/summary.txt"
  cat "$out/summary.txt"
}
trap finish EXIT

runner=${HF_RUNNER:-env -u LD_LIBRARY_PATH python3 $repo/worker/runners/hfleet_runner.py}
suite=${HF_SUITE:-core}
# shellcheck disable=SC2206  # HF_WORKER_ARGS is a list of words
extra=(${HF_WORKER_ARGS:-})
"$w/bin/hf-worker" --probe --json --runner "$runner" "${extra[@]}" >"$out/probe.json" 2>"$out/probe.err"
"$w/bin/hf-worker" --probe --runner "$runner" "${extra[@]}" >"$out/probe.txt" 2>&1
nvidia-smi -L >"$out/nvidia-smi-L.txt" 2>&1
nvidia-smi topo -m >"$out/nvidia-topo.txt" 2>&1
nvidia-smi nvlink --status >"$out/nvidia-nvlink.txt" 2>&1
if [ "$mode" = standin ]; then
  # One GPU shown as two devices: cuda:1 declared with cuda:0's UUID, so a
  # task on either sees the same H200 (docs/hardware.md, devices.declare).
  decl=$(python3 -c '
import json, sys
d = next(d for d in json.load(open(sys.argv[1]))["devices"] if d["backend"] == "cuda" and d["index"] == 0)
print("cuda:1:name=%s (stand-in of cuda 0):uuid=%s:memory=%d" % (d["name"].replace(":", " "), d["uuid"], d["memory_bytes"]))
' "$out/probe.json") || { summary "standin: FAIL (no cuda:0 in the probe)"; exit 1; }
  # Added to a devices.declare of HF_WORKER_ARGS if there is one (the last
  # --set of a setting wins).
  local_decl=0
  for i in "${!extra[@]}"; do
    case "${extra[$i]}" in devices.declare=*) extra[i]="${extra[$i]};$decl"; local_decl=1 ;; esac
  done
  [ "$local_decl" = 1 ] || extra+=(--set "devices.declare=$decl")
  "$w/bin/hf-worker" --probe --json --runner "$runner" "${extra[@]}" >"$out/probe-standin.json" 2>>"$out/probe.err"
  cp "$out/probe-standin.json" "$out/probe.json.used"
else
  cp "$out/probe.json" "$out/probe.json.used"
fi
n=$(python3 -c 'import json,sys; print(sum(d["backend"] == "cuda" for d in json.load(open(sys.argv[1]))["devices"]))' "$out/probe.json.used" 2>/dev/null || echo 0)
if [ "$n" -lt 2 ]; then
  summary "probe: FAIL ($n CUDA devices; this script needs 2 or more, or the standin mode on one GPU; $(tail -1 "$out/probe.err"))"
  exit 1
fi
victim=$((n - 1))

cluster_coordinator "$repo/coordinator/registry/models.tsv" || { summary "setup: FAIL (coordinator)"; exit 1; }
# The worker starts with multicast asked for: it must turn it off for every
# child (docs/hardware.md, "Multicast is always off").
start_worker() {
  NCCL_NVLS_ENABLE=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=0 NVSHMEM_DISABLE_NVLS=0 \
  "$w/bin/hf-worker" --id gpu-worker --coordinator-url "tcp://127.0.0.1:$port_w" --state-dir "$w/worker" \
    --set "worker.metrics_listen=http://127.0.0.1:$port_wm" --runner "$runner" \
    --set "devices.slots=cuda=${HF_SLOTS:-auto}" --set "devices.shared=cpu,cuda" "${extra[@]}" "$@" >>"$out/worker.log" 2>&1 &
  worker_pid=$!
  wait_worker gpu-worker "$worker_pid"
}
stop_worker() { kill -INT "$worker_pid" 2>/dev/null; kill -INT "$worker_pid" 2>/dev/null; wait "$worker_pid" 2>/dev/null; }
spread_wall='?' spread_job=0
if ! start_worker; then
  summary "setup: FAIL (the worker did not register: $(tail -1 "$out/worker.log"))"
  exit 1
fi
[ -z "${HF_RUNNER:-}" ] && prewarm_wait "$out/worker.log" "$(budget 75 425)" | tee "$out/prewarm.txt"

# Jobs: submit, follow for at most LIMIT s, cancel what is left.
submit() {
  local name=$1; shift
  hfctl --json submit --backends cuda --name "$name" "$@" >"$out/$name-submit.json" 2>"$out/$name-submit.err" &&
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["job_id"])' "$out/$name-submit.json"
}
follow() {  # JOB LIMIT NAME: prints the wall time from now
  local t0 t1; t0=$(date +%s.%N)
  timeout "$2" "$w/bin/hfctl" --control "tcp://127.0.0.1:$port_c" watch "$1" --interval 1s >"$out/$3-watch.txt" 2>&1
  t1=$(date +%s.%N)
  hfctl cancel "$1" >/dev/null 2>&1
  hfctl --json results "$1" >"$out/$3-results.json" 2>&1
  python3 -c "print(round($t1 - $t0, 1))"
}
q() { psql_q -Atc "$1" 2>>"$out/sql-errors.txt"; }
qt() { psql_q -c "$1" >"$out/$2" 2>&1; }
# Every cuda device a result held: one row per (result, device), with the
# result's times (the worker's clock: one host).
occ="SELECT r.id, r.task_id, t.job_id, t.kind, r.worker_id, d AS dev, r.started_at, r.finished_at
     FROM results r JOIN attempts a USING (task_id, attempt) JOIN tasks t ON t.id = r.task_id
     CROSS JOIN LATERAL unnest(coalesce(a.device_indices, ARRAY[a.device_index])) AS d
     WHERE t.backend = 'cuda' AND r.started_at IS NOT NULL AND r.finished_at IS NOT NULL"
terminal="('passed','failed','error','timeout','skipped','cancelled')"

step_probe() {
  hfctl devices >"$out/devices.txt" 2>&1; hfctl --json devices >"$out/devices.json" 2>&1
  python3 - "$out/probe.json.used" "$out/devices.json" >"$out/probe-gpus.txt" <<'EOF'
import json, sys
probe = [d for d in json.load(open(sys.argv[1]))["devices"] if d["backend"] == "cuda"]
try:
    listed = {d["index"]: d for d in json.load(open(sys.argv[2]))["devices"] if d["backend"] == "cuda"}
except Exception:
    listed = {}
for d in probe:
    c = listed.get(d["index"], {})
    print("cuda:%d %s %s %.1f GiB nvlink_peers=%s slots=%s coordinator=%s" % (d["index"], d.get("name"),
          d.get("uuid"), d.get("memory_bytes", 0) / 2**30, (d.get("attrs") or {}).get("nvlink_peers", "unknown"),
          c.get("slots", "?"), "listed" if c else "MISSING"))
EOF
  local uuids listed links
  uuids=$(grep -c ' GPU-' "$out/probe-gpus.txt"); listed=$(grep -c 'coordinator=listed' "$out/probe-gpus.txt")
  links=$(grep -c 'NV[0-9]' "$out/nvidia-topo.txt")
  if [ "$uuids" -eq "$n" ] && [ "$listed" -eq "$n" ]; then s=PASS; else s=FAIL; fi
  local peers; peers=$(grep -c 'nvlink_peers=[0-9]' "$out/probe-gpus.txt")
  summary "probe: $s: $n CUDA devices, $uuids with a UUID, $listed listed by hfctl devices, $peers with NVLink peers reported by hf-worker (nvlink_peers); nvidia-smi topo -m shows $links rows with NV# links (probe-gpus.txt, nvidia-topo.txt)"
}

step_multicast() {
  python3 tests/gpu/runner_procs.py list "$worker_pid" >"$out/multicast-runners.jsonl"
  local total bad
  total=$(wc -l <"$out/multicast-runners.jsonl")
  bad=$(python3 -c '
import json, sys
want = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
rows = [json.loads(l) for l in open(sys.argv[1])]
print(sum(any(r.get(k) != v for k, v in want.items()) for r in rows))' "$out/multicast-runners.jsonl")
  grep 'overriding' "$out/worker.log" >"$out/multicast-worker-log.txt"
  if [ "$total" -gt 0 ] && [ "$bad" -eq 0 ]; then s=PASS; else s=FAIL; fi
  summary "multicast: $s: $total runner processes read from /proc/PID/environ, $bad without NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 (worker started with NCCL_NVLS_ENABLE=1; $(wc -l <"$out/multicast-worker-log.txt") override warnings logged)"
}

# The test job of the suite; sets spread_wall.  NAME LIMIT
suite_job() {
  local job; job=$(submit "$1" --kind test --suite "$suite") || { echo "$1: not accepted" >&2; return 1; }
  spread_wall=$(follow "$job" "$2" "$1"); spread_job=$job
}

step_spread() {
  local lim; lim=$(budget 110 315)
  suite_job spread "$lim" || { summary "spread: FAIL (job not accepted)"; return; }
  local j=$spread_job
  qt "SELECT o.device_index, count(*) AS tasks, count(*) FILTER (WHERE o.status = 'passed') AS passed,
        round(sum(o.duration_s)::numeric, 1) AS busy_s
      FROM task_outcomes o WHERE o.job_id = $j GROUP BY 1 ORDER BY 1" spread-per-gpu.txt
  qt "SELECT o.task_id, o.model_type, o.status, o.device_index, d.uuid AS device_uuid,
        o.env->>'cuda_visible_devices' AS visible, o.env->>'hfleet_device_uuid' AS given,
        o.env->>'torch_device_uuid' AS torch_uuid, o.env->>'torch_device_count' AS torch_count
      FROM task_outcomes o LEFT JOIN devices d ON d.worker_id = o.worker_id AND d.backend = 'cuda' AND d.idx = o.device_index
      WHERE o.job_id = $j ORDER BY o.task_id" spread-tasks.txt
  local r; r=$(q "SELECT count(*), count(*) FILTER (WHERE status IN $terminal AND status <> 'cancelled'),
        count(*) FILTER (WHERE env ? 'torch_device_count'),
        count(*) FILTER (WHERE (env ? 'torch_device_uuid' AND env->>'torch_device_uuid' IS DISTINCT FROM env->>'hfleet_device_uuid')
                           OR (env ? 'torch_device_count' AND (env->>'torch_device_count')::int <> 1)
                           OR (env ? 'cuda_visible_devices' AND env->>'cuda_visible_devices' IS DISTINCT FROM
                               (SELECT d.uuid FROM devices d WHERE d.worker_id = o.worker_id AND d.backend = 'cuda' AND d.idx = o.device_index))),
        count(DISTINCT device_index)
      FROM task_outcomes o WHERE job_id = $j")
  local tasks done_ torch other gpus; IFS='|' read -r tasks done_ torch other gpus <<<"$r"
  local per; per=$(q "SELECT string_agg('cuda:' || device_index || '=' || c, ' ' ORDER BY device_index) FROM (SELECT device_index, count(*) c FROM task_outcomes WHERE job_id = $j AND device_index IS NOT NULL GROUP BY 1) x")
  if [ "${other:-1}" = 0 ] && [ "${gpus:-0}" = "$n" ] && [ "${torch:-0}" -gt 0 ] && [ "$done_" = "$tasks" ]; then s=PASS; else s=FAIL; fi
  summary "spread: $s: $tasks tasks ($done_ finished) over ${gpus:-0} of $n GPUs, $torch with what torch saw, ${other:-?} saw another device or more than one, wall ${spread_wall} s (one GPU: see onegpu, or docs/gpu-results.md: 105-120 s for the 308 models at 12 slots); per GPU: $per"
}

step_split() {
  local k jobs=() lim
  for k in 2 4 8; do
    [ "$k" -le "$n" ] || continue
    local j; j=$(submit "split-$k" --kind benchmark --models "${HF_SPLIT_MODELS:-llama}" --devices-per-task "$k" \
      --batch-sizes 1 --precision fp16 --iterations 10 --warmup 2 --task-timeout 200s) &&
      jobs+=("$j") || summary "split: FAIL (the job of $k devices per task was not accepted: $(tail -1 "$out/split-$k-submit.err"))"
  done
  [ "${#jobs[@]}" -gt 0 ] || return
  # The jobs run at once (they compete for idle devices); all of them
  # within one limit.
  local end=$((SECONDS + $(budget 130 185)))
  for j in "${jobs[@]}"; do lim=$((end - SECONDS)); [ "$lim" -lt 5 ] && lim=5; follow "$j" "$lim" "split-job-$j" >/dev/null; done
  split_jobs=$(IFS=,; echo "${jobs[*]}")
  qt "SELECT o.task_id, o.model_type, o.status, t.device_indices AS held, o.env->>'cuda_visible_devices' AS visible,
        o.env->>'torch_device_count' AS torch_count, o.env->'outputs'->'device_map' AS device_map,
        o.env->'outputs'->'per_device_peak_memory_bytes' AS per_device_peak, o.peak_memory_bytes, o.latency_p50_ms,
        o.started_at, o.finished_at, left(coalesce(o.reason, ''), 300) AS reason
      FROM task_outcomes o JOIN tasks t ON t.id = o.task_id WHERE o.job_id IN ($split_jobs) ORDER BY o.task_id" split-tasks.txt
  # gpus: the distinct GPUs (UUIDs) of the devices the task held.  On a
  # multi-GPU host that is the devices per task, and the model must be split
  # over all of them; in the standin mode the two declared devices are one
  # GPU, which the task sees once (CUDA_VISIBLE_DEVICES names it once), so
  # there is nothing to split: the task must hold both devices alone and
  # run on the one GPU.
  local r; r=$(q "SELECT count(*), count(*) FILTER (WHERE o.status = 'passed'),
        count(*) FILTER (WHERE o.status = 'passed'
          AND cardinality(t.device_indices) = j.dpt
          AND (o.env->>'torch_device_count')::int = g.gpus
          AND array_length(string_to_array(o.env->>'cuda_visible_devices', ','), 1) = g.gpus
          AND (g.gpus = 1 OR (jsonb_typeof(o.env->'outputs'->'device_map'->'devices') = 'object'
          AND (SELECT count(*) FROM jsonb_object_keys(o.env->'outputs'->'device_map'->'devices')) = g.gpus
          AND jsonb_typeof(o.env->'outputs'->'per_device_peak_memory_bytes') = 'array'
          AND jsonb_array_length(o.env->'outputs'->'per_device_peak_memory_bytes') = g.gpus)))
      FROM task_outcomes o JOIN tasks t ON t.id = o.task_id
      JOIN (SELECT id, coalesce((requirements->>'devices')::int, 1) AS dpt FROM jobs) j ON j.id = o.job_id
      CROSS JOIN LATERAL (SELECT count(DISTINCT d.uuid) AS gpus FROM devices d WHERE d.worker_id = o.worker_id
          AND d.backend = 'cuda' AND d.idx = ANY (t.device_indices)) g
      WHERE o.job_id IN ($split_jobs)")
  local tasks passed whole; IFS='|' read -r tasks passed whole <<<"$r"
  local shared; shared=$(q "WITH occ AS ($occ) SELECT count(*) FROM occ x JOIN occ y ON x.worker_id = y.worker_id
      AND x.dev = y.dev AND x.id <> y.id AND x.started_at < y.finished_at AND y.started_at < x.finished_at
      WHERE x.job_id IN ($split_jobs)")
  if [ "${tasks:-0}" -gt 0 ] && [ "$whole" = "$tasks" ] && [ "$shared" = 0 ]; then s=PASS; else s=FAIL; fi
  summary "split: $s: $tasks multi-device benchmark tasks (devices per task: $(echo 2 4 8 | tr ' ' '\n' | awk -v n="$n" '$1 <= n' | paste -sd,)), $passed passed, $whole held exactly their devices with torch seeing their distinct GPUs and, where those are several, a device map and per-device peak memory over all of them, $shared times another task ran on one of their devices meanwhile (split-tasks.txt)"
}

step_bench() {
  local lim j; lim=$(budget 70 115)
  j=$(submit bench --kind benchmark --models "${HF_BENCH_MODELS:-bert,gpt2,vit,resnet,roberta,distilbert,t5,bart,convnext,whisper}" \
    --batch-sizes 1,8 --precision fp16 --iterations 20 --warmup 3) || { summary "bench: FAIL (job not accepted)"; return; }
  local wall; wall=$(follow "$j" "$lim" bench)
  local r; r=$(q "SELECT count(*), count(*) FILTER (WHERE status = 'passed'), count(DISTINCT device_index) FROM task_outcomes WHERE job_id = $j")
  local most; most=$(q "WITH occ AS ($occ) SELECT coalesce(max(c), 0) FROM (SELECT x.id, count(DISTINCT y.dev) c FROM occ x JOIN occ y
      ON y.started_at < x.finished_at AND x.started_at < y.finished_at WHERE x.job_id = $j AND y.job_id = $j GROUP BY x.id) z")
  local tasks passed gpus; IFS='|' read -r tasks passed gpus <<<"$r"

  if [ "${tasks:-0}" -gt 0 ] && [ "${most:-0}" -ge 2 ]; then s=PASS; else s=FAIL; fi
  summary "bench: $s: $tasks benchmark tasks, $passed passed, on $gpus GPUs, up to $most GPUs running benchmarks of this job at one moment, wall $wall s"
}

step_overlap() {
  qt "WITH occ AS ($occ) SELECT x.dev AS device, x.task_id, x.kind, y.task_id AS other_task, y.kind AS other_kind,
        x.started_at, x.finished_at, y.started_at AS other_started, y.finished_at AS other_finished
      FROM occ x JOIN occ y ON x.worker_id = y.worker_id AND x.dev = y.dev AND x.id < y.id
        AND x.started_at < y.finished_at AND y.started_at < x.finished_at
      WHERE x.kind = 'benchmark' OR y.kind = 'benchmark' ORDER BY 1, 2" overlap-violations.txt
  qt "WITH occ AS ($occ) SELECT dev AS device, kind, count(*) AS results, min(started_at), max(finished_at)
      FROM occ GROUP BY 1, 2 ORDER BY 1, 2" overlap-per-device.txt
  local bad total; bad=$(q "WITH occ AS ($occ) SELECT count(*) FROM occ x JOIN occ y ON x.worker_id = y.worker_id AND x.dev = y.dev
      AND x.id < y.id AND x.started_at < y.finished_at AND y.started_at < x.finished_at WHERE x.kind = 'benchmark' OR y.kind = 'benchmark'")
  total=$(q "WITH occ AS ($occ) SELECT count(DISTINCT id) FROM occ WHERE kind = 'benchmark'")
  if [ "${total:-0}" -gt 0 ] && [ "$bad" = 0 ]; then s=PASS; else s=FAIL; fi
  summary "overlap: $s: $total benchmark results on cuda devices so far, $bad pairs of a benchmark and another task on one device at the same time (overlap-violations.txt)"
}

step_fault() {
  local lim j; lim=$(budget 100 15)
  [ "$lim" -ge 30 ] || { summary "fault: SKIP (no time left: $((deadline - SECONDS)) s)"; return; }
  j=$(submit fault --kind test --suite "$suite" --max-retries 3) ||
    { summary "fault: FAIL (job not accepted)"; return; }
  # Until a task runs on the victim (at most 20 s), then kill its runners
  # until the job ends: the recheck of the quarantined device fails too.
  for _ in $(seq 1 100); do
    python3 tests/gpu/runner_procs.py list "$worker_pid" | grep -q "\"HFLEET_DEVICE_INDICES\": \"$victim\"" && break; sleep 0.2
  done
  python3 tests/gpu/runner_procs.py kill "$worker_pid" "$victim" "$lim" >"$out/fault-kills.txt" 2>&1 &
  local killer=$!
  ( for _ in $(seq 1 $((lim * 2))); do
      st=$(hfctl --json devices 2>/dev/null | python3 -c 'import json,sys; print(next((d.get("state") or "" for d in json.load(sys.stdin)["devices"] if d["backend"] == "cuda" and d["index"] == '"$victim"'), ""))' 2>/dev/null)
      if [ "$st" = quarantined ]; then echo "quarantined at ${SECONDS} s of the run"; hfctl devices; break; fi
      sleep 0.5
    done ) >"$out/fault-quarantine.txt" 2>&1 &
  local watcher=$!
  local wall; wall=$(follow "$j" "$lim" fault)
  kill "$killer" "$watcher" 2>/dev/null; wait "$killer" "$watcher" 2>/dev/null
  hfctl devices >>"$out/fault-quarantine.txt" 2>&1
  qt "SELECT * FROM device_quarantine" fault-device-quarantine.txt
  qt "SELECT backend, idx, ok, trigger, checked_at, left(detail, 200) FROM device_health_checks WHERE backend = 'cuda' ORDER BY checked_at" fault-health-checks.txt
  qt "SELECT r.task_id, r.attempt, r.device_index, r.status, r.stale, r.id = t.result_id AS deciding, left(r.reason, 160) AS reason
      FROM results r JOIN tasks t ON t.id = r.task_id WHERE t.job_id = $j AND t.id IN
        (SELECT task_id FROM results x JOIN tasks y ON y.id = x.task_id WHERE y.job_id = $j AND x.device_index = $victim AND x.status = 'error')
      ORDER BY 1, 2" fault-moved.txt
  local r; r=$(q "SELECT count(*),
        count(*) FILTER (WHERE t.result_id IS NULL OR t.state NOT IN $terminal OR t.state = 'cancelled'
                         OR NOT EXISTS (SELECT 1 FROM results r WHERE r.id = t.result_id AND r.attempt = t.attempt AND NOT r.stale)),
        count(*) FILTER (WHERE EXISTS (SELECT 1 FROM results r WHERE r.task_id = t.id AND r.device_index = $victim AND r.status = 'error')
                         AND EXISTS (SELECT 1 FROM results r WHERE r.id = t.result_id AND r.device_index <> $victim))
      FROM tasks t WHERE t.job_id = $j")
  local tasks lost moved; IFS='|' read -r tasks lost moved <<<"$r"
  local kills; kills=$(grep -c killed "$out/fault-kills.txt")
  local quarantined=no
  grep -q quarantined "$out/fault-quarantine.txt" && quarantined=yes
  if [ "$quarantined" = yes ] && [ "${moved:-0}" -gt 0 ] && [ "$lost" = 0 ]; then s=PASS; else s=FAIL; fi
  summary "fault: $s: cuda:$victim's runners killed $kills times; quarantined: $quarantined ($(head -1 "$out/fault-quarantine.txt" | cut -c1-40)); $tasks tasks, $moved moved off cuda:$victim after an error there, $lost without exactly one deciding result of their last attempt (lost or cancelled), wall $wall s"
}

step_onegpu() {
  local lim; lim=$(budget 150 15)
  if [[ " ${extra[*]} " == *devices.declare* ]]; then
    summary "onegpu: SKIP (devices declared: hiding them is refused)"; return
  fi
  if [ "$lim" -lt 100 ]; then
    summary "onegpu: SKIP (time: $((deadline - SECONDS)) s left; one-GPU figure from docs/gpu-results.md)"; return
  fi
  stop_worker
  local hide; hide=$(seq 1 $((n - 1)) | sed 's/^/cuda:/' | paste -sd,)
  start_worker --set "devices.hide=$hide"
  [ -z "${HF_RUNNER:-}" ] && prewarm_wait "$out/worker.log" 40 >>"$out/prewarm.txt"
  local spread=$spread_wall
  suite_job onegpu "$(budget 150 15)" || { summary "onegpu: FAIL (job not accepted)"; return; }
  local r; r=$(q "SELECT count(*), count(*) FILTER (WHERE status = 'passed'), count(DISTINCT device_index) FROM task_outcomes WHERE job_id = $spread_job")
  summary "onegpu: INFO: $r (tasks|passed|GPUs) on cuda:0 alone in $spread_wall s, against $spread s on $n GPUs"
}

case "$mode" in
all|standin)
  step_probe
  step_multicast
  step_spread
  step_split
  step_bench
  step_overlap
  step_fault
  step_overlap
  [ "$mode" = all ] && step_onegpu
  ;;
*) summary "unknown mode $mode (all, standin)" ;;
esac
