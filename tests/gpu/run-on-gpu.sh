#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs on the GPU machine (through the device tool), from the repository
# root, with .carry/ made by tests/gpu/bundle.sh.  Starts a private
# PostgreSQL, hf-coordinator and one hf-worker on the real GPU, then runs
# what is asked and leaves the evidence under $OUT:
#   tests/gpu/run-on-gpu.sh probe            hf-worker --probe, hfctl devices, two CUDA tasks
#   tests/gpu/run-on-gpu.sh suite [ARGS...]  the suite's test job on cuda (ARGS go to hfctl submit)
#   tests/gpu/run-on-gpu.sh bench [ARGS...]  a benchmark job on cuda
#   tests/gpu/run-on-gpu.sh test ARGS...     a test job on cuda (ARGS: --models ... and the like)
#   tests/gpu/run-on-gpu.sh probe+suite      both, one after the other
#   tests/gpu/run-on-gpu.sh bench+suite      a benchmark job (HF_BENCH_MODELS), then the suite
#   tests/gpu/run-on-gpu.sh health           the health checks the worker ran at registration
#   tests/gpu/run-on-gpu.sh seqlen           a benchmark at sequence lengths 128, 512, 1024
#   tests/gpu/run-on-gpu.sh weights          toy checkpoints in runner.weights_dir, known answers
#   tests/gpu/run-on-gpu.sh suite-warm       the whole suite on warm runners, health checks,
#                                            int8 against fp32 on the CPU
#   tests/gpu/run-on-gpu.sh suites [ARGS...] the core suite's test job, then all's (HF_SUITES), each
#                                            with its wall time, efficiency and the GPU's busy
#                                            fraction (HF_REGISTRY_REBUILD=1: registry rebuilt here)
#   tests/gpu/run-on-gpu.sh modes            a benchmark job with --mode all (bert, gpt2, vit, fp16,
#                                            batch 1 and 8) through the system, then
#                                            tests/gpu/bench_modes.py (modes against standalone loops)
#   tests/gpu/run-on-gpu.sh readers          two benchmark jobs, compare, history, report, the
#                                            views as the read-only role, then the suite
# Environment: HF_SLOTS (concurrent tasks on the GPU, default 1; auto: from the
#   machine's CPUs and the GPU's memory, docs/hardware.md),
#   HF_RUNNER (runner command, default the reference runner),
#   HF_WATCH_LIMIT (seconds to follow a suite or bench job, default 450),
#   HF_PREWARM_WAIT (1, the default: wait until the warm runners started
#   ahead of tasks have imported their frameworks, at most 180 s).
set -uo pipefail
mode=${1:-probe}; shift || true
repo=$(pwd)
out=${OUT:-/tmp/hfleet-out}
mkdir -p "$out"
. "$repo/tests/gpu/cluster.sh"
cluster_start || exit 1

slots=${HF_SLOTS:-1}
runner=${HF_RUNNER:-env -u LD_LIBRARY_PATH python3 $repo/worker/runners/hfleet_runner.py}
"$w/bin/hf-worker" --probe --runner "$runner" >"$out/probe.txt" 2>&1
"$w/bin/hf-worker" --probe --json --runner "$runner" >"$out/probe.json" 2>>"$out/probe.txt"
cat "$out/probe.txt"

# HF_REGISTRY_REBUILD=1: the registry made from this machine's transformers
# (coordinator/registry/README.md), checked, brought back and served.
registry=$repo/coordinator/registry/models.tsv
if [ "${HF_REGISTRY_REBUILD:-0}" = 1 ]; then
  env -u LD_LIBRARY_PATH python3 coordinator/registry/build_registry.py --out "$out/models.tsv" \
    --expect-types coordinator/registry/reference/transformers-5.17-model-types.tsv >"$out/registry-build.txt" 2>&1 &&
  env -u LD_LIBRARY_PATH python3 coordinator/registry/check_registry.py "$out/models.tsv" \
    coordinator/registry/reference/transformers-5.17-model-types.tsv >>"$out/registry-build.txt" 2>&1 &&
  registry=$out/models.tsv
  echo "registry: $registry"; tail -5 "$out/registry-build.txt"
fi
cluster_coordinator "$registry" || exit 1
"$w/bin/hf-worker" --id gpu-worker --coordinator-url tcp://127.0.0.1:$port_w --state-dir "$w/worker" --set worker.metrics_listen=http://127.0.0.1:$port_wm \
  --runner "$runner" --set "devices.slots=cuda=$slots" --set "devices.shared=cpu,cuda" \
  ${HF_WORKER_ARGS:-} >"$out/worker.log" 2>&1 &
worker_pid=$!
wait_worker gpu-worker
hfctl workers; hfctl devices | tee "$out/devices.txt"
# HF_SLOTS=auto (or devices.slots in HF_WORKER_ARGS): the slots the worker
# chose for cuda:0, for the efficiency figure.
slots=$(hfctl --json devices | python3 -c 'import json,sys; print(next((d["slots"] for d in json.load(sys.stdin)["devices"] if d["backend"] == "cuda" and d["index"] == 0), 1))' 2>/dev/null || echo 1)
echo "cuda:0 slots: $slots"
# Wait for the warm runners started ahead of tasks to import their
# frameworks (reference runner only; HF_PREWARM_WAIT=0: don't).
if [ "${HF_PREWARM_WAIT:-1}" = 1 ] && [ -z "${HF_RUNNER:-}" ]; then
  prewarm_wait "$out/worker.log" 180 | tee "$out/prewarm.txt"
  grep 'before its first task: hfleet-runner: ' "$out/worker.log" | head -3
fi

run_probe() {
  hfctl --json submit --models bert,gpt2 --backends cuda --name probe >"$out/submit.json"
  job=$(python3 -c 'import json;print(json.load(open("'"$out"'/submit.json"))["job_id"])')
  hfctl watch "$job"; hfctl results "$job" | tee "$out/results.txt"
  hfctl --json results "$job" >"$out/results.json"
  psql_q -c "SELECT model_type, status, env->>'device_name' AS device, env->>'cuda_visible_devices' AS visible, env->>'hfleet_device_uuid' AS given, env->>'torch_device_uuid' AS torch_uuid, env->'torch_device_count' AS torch_sees FROM task_outcomes WHERE job_id = $job" | tee -a "$out/results.txt"
}
run_job() {
  local name=$1; shift
  kind=test; case "$name" in bench*|int8*) kind=benchmark ;; esac
  start=$(date +%s.%N)
  hfctl --json submit --backends "${HF_BACKENDS:-cuda}" --kind "$kind" --name "$name" "$@" >"$out/$name-submit.json" ||
    { echo "run-on-gpu: the $name job was not accepted" >&2; return 1; }
  job=$(python3 -c 'import json;print(json.load(open("'"$out/$name"'-submit.json"))["job_id"])')
  # The GPU's busy fraction while the job runs (NVML's utilization.gpu, every
  # 200 ms) and the machine's CPU (vmstat, every second).
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 200 >"$out/$name-gpu.csv" 2>/dev/null &
  local smi=$!
  vmstat -n 1 >"$out/$name-vmstat.txt" 2>/dev/null &
  local vms=$!
  timeout "${HF_WATCH_LIMIT:-450}" "$w/bin/hfctl" --control tcp://127.0.0.1:$port_c watch "$job" --interval 1s >"$out/$name-watch.txt" 2>&1
  end=$(date +%s.%N)
  kill "$smi" "$vms" 2>/dev/null; wait "$smi" "$vms" 2>/dev/null
  local wall; wall=$(python3 -c "print(round($end-$start, 2))")
  echo "wall_s $wall" | tee "$out/$name-wall.txt"
  python3 -c '
import sys
rows = [l.split(",") for l in open(sys.argv[1]) if l.count(",") == 2]
u = [float(r[1]) for r in rows if r[1].strip().replace(".", "").isdigit()]
print("gpu_busy_fraction %.3f over %d samples" % (sum(u) / 100 / len(u), len(u)) if u else "gpu_busy_fraction unknown")
' "$out/$name-gpu.csv" | tee -a "$out/$name-wall.txt"
  # Efficiency: the sum of task times over (slots x wall).
  psql_q -Atc "SELECT 'task_time_sum_s ' || round(sum(duration_s)::numeric, 1) || ' efficiency ' || round((sum(duration_s) / ($slots * $wall))::numeric, 3) FROM task_outcomes WHERE job_id = $job" | tee -a "$out/$name-wall.txt"
  hfctl cancel "$job" >/dev/null 2>&1 || true   # whatever did not finish in time
  hfctl results "$job" >"$out/$name-results.txt"; tail -3 "$out/$name-results.txt"
  hfctl --json results "$job" >"$out/$name-results.json"
  psql_q -c "SELECT status, count(*) FROM task_outcomes WHERE job_id = $job GROUP BY 1" | tee "$out/$name-summary.txt"
  # What the runner said beyond the figures: the model class, and why a
  # generative model's generation was not timed.
  psql_q -c "SELECT model_type, batch_size, env->'outputs'->>'model_class' AS class, env->'outputs'->>'generation' AS generation, weights, env->'outputs'->>'weights_source' AS weights_source, env->'outputs'->>'known_answer' AS known_answer FROM task_outcomes WHERE job_id = $job ORDER BY task_id" >"$out/$name-outputs.txt"
}
# Restarts the worker with runner.warm on or off (and the options after it).
restart_worker() {
  kill -INT "$worker_pid" 2>/dev/null; kill -INT "$worker_pid" 2>/dev/null; wait "$worker_pid" 2>/dev/null
  local warm=false; [ "$1" = warm ] && warm=true; shift
  "$w/bin/hf-worker" --id gpu-worker --coordinator-url tcp://127.0.0.1:$port_w --state-dir "$w/worker" --set worker.metrics_listen=http://127.0.0.1:$port_wm \
    --runner "$runner" --set "devices.slots=cuda=$slots" --set "devices.shared=cpu,cuda" \
    --set "runner.warm=$warm" "$@" >>"$out/worker.log" 2>&1 &
  worker_pid=$!
  sleep 3
}
BENCH_MODELS=bert,roberta,distilbert,deberta-v2,electra,albert,gpt2,opt,bloom,bart,pegasus,t5,convnext,resnet,deit,vit,swin,clip,hubert,wav2vec2,whisper,mamba
COLDWARM_MODELS=bert,roberta,distilbert,albert,electra,gpt2,llama,mistral,qwen2,phi3,gemma,opt,bloom,bart,pegasus,convnext,resnet,deit,beit,dinov2,clip,hubert,mamba,mamba2
case "$mode" in
probe) run_probe ;;
suite) run_job suite --all "$@" ;;
test) run_job test "$@" ;;
bench) run_job bench "$@" ;;
probe+suite) run_probe; run_job suite --all "$@" ;;
bench+suite)
  # A benchmark job (--models from HF_BENCH_MODELS), then the whole suite's
  # test job on warm runners, in one cluster.
  HF_WATCH_LIMIT=${HF_BENCH_LIMIT:-200} run_job bench --models "${HF_BENCH_MODELS:-$BENCH_MODELS}" \
    --batch-sizes 1,8 --precision fp16 --iterations 20 --warmup 3
  HF_WATCH_LIMIT=${HF_WATCH_LIMIT:-330} run_job suite --all "$@"
  ;;
final)
  # Issue 3 and 4 evidence in one lease: the probe, a benchmark job of
  # two dozen models across the families at batch 1 and 8 in fp16, and the
  # same test job run cold (a process per task) and warm (warm runners).
  run_probe
  HF_WATCH_LIMIT=230 run_job bench --models "$BENCH_MODELS" --batch-sizes 1,8 --precision fp16 --iterations 20 --warmup 3
  restart_worker cold
  HF_WATCH_LIMIT=170 run_job cold --models "$COLDWARM_MODELS"
  restart_worker warm
  HF_WATCH_LIMIT=120 run_job warm --models "$COLDWARM_MODELS"
  ;;
health)
  # The health checks the worker ran through the runner when it registered.
  for _ in $(seq 1 60); do
    [ "$(psql_q -Atc 'SELECT count(*) FROM device_health_checks')" != 0 ] && break; sleep 1
  done
  psql_q -c "SELECT worker_id, backend, idx, ok, trigger, round(duration_s::numeric, 2) AS s, detail FROM device_health_checks ORDER BY checked_at" | tee "$out/health.txt"
  hfctl devices | tee -a "$out/health.txt"
  ;;
seqlen)
  # A benchmark over sequence lengths: text models get a task per length,
  # vit (no tokens) one; bert's 512 positions cap its 1024.
  HF_WATCH_LIMIT=${HF_WATCH_LIMIT:-400} run_job bench-seq --models "${HF_BENCH_MODELS:-bert,roberta,gpt2,t5,bart,vit}" \
    --seq-len 128,512,1024 --batch-sizes 1,8 --precision fp16 --iterations 20 --warmup 3
  python3 tests/gpu/bench_table.py "$out/bench-seq-results.json" | tee "$out/bench-seq.md"
  ;;
weights)
  # Pretrained weights from a weights directory and the known-answer check,
  # through the worker (toy checkpoints under registry ids: toy_weights.py).
  python3 tests/gpu/toy_weights.py "$w/weights" >"$out/toy-weights.txt" 2>&1 || cat "$out/toy-weights.txt"
  restart_worker warm --set "runner.weights_dir=$w/weights"
  grep "pretrained weights" "$out/worker.log" | tail -1
  run_job weights --models bert,gpt2,roberta,distilbert "$@"
  cat "$out/weights-outputs.txt"
  ;;
suite-warm)
  # Runner v2 (model recipes): the whole registry on warm runners, then the
  # health checks, then int8 against fp32 on the CPU side by side.
  HF_WATCH_LIMIT=${HF_WATCH_LIMIT:-330} run_job suite --all "$@"
  psql_q -c "SELECT worker_id, backend, idx, ok, trigger, round(duration_s::numeric, 2) AS s, detail FROM device_health_checks ORDER BY checked_at" | tee "$out/health.txt"
  hfctl devices | tee -a "$out/health.txt"
  HF_BACKENDS=cpu HF_WATCH_LIMIT=120 run_job int8 --models bert,distilbert,gpt2,vit --precision fp32,int8 --batch-sizes 1 --iterations 10 --warmup 2
  ;;
suites)
  # Issue 14: the core suite's test job, then all's, on warm runners, each
  # timed with its efficiency and the GPU's busy fraction; the failures
  # with their reasons.
  for suite in ${HF_SUITES:-core all}; do
    HF_WATCH_LIMIT=${HF_WATCH_LIMIT:-240} run_job "suite-$suite" --suite "$suite" "$@"
    psql_q -Atc "SELECT model_type, status, round(duration_s::numeric, 2), coalesce(metrics->>'load_time_s', ''), coalesce(metrics->>'forward_time_s', ''), left(coalesce(reason, ''), 400) FROM task_outcomes WHERE job_id = $job ORDER BY status, model_type" >"$out/suite-$suite-tasks.txt"
  done
  # HF_BENCH_SUITES: a benchmark job of each suite named (fp16, batch 1,
  # eager), so that every type has a benchmark as well as a test.
  # HF_BENCH_SLICE=FROM:COUNT instead: the benchmark job of COUNT registry
  # types from the FROM-th (0-based, registry order), so that the 557
  # benchmarks (about 5.5 s each on one GPU) can be split over device calls.
  benches=${HF_BENCH_SUITES:-}
  [ -n "${HF_BENCH_SLICE:-}" ] && benches=slice
  for suite in $benches; do
    if [ "$suite" = slice ]; then
      from=${HF_BENCH_SLICE%%:*} count=${HF_BENCH_SLICE##*:}
      models=$(grep -v '^#' "$registry" | tail -n +2 | cut -f1 |
               sed -n "$((from + 1)),$((from + count))p" | paste -sd, -)
      set -- --models "$models" "$@"
      name="bench-slice-$from-$count"
    else
      set -- --suite "$suite" "$@"
      name="bench-suite-$suite"
    fi
    HF_WATCH_LIMIT=${HF_BENCH_LIMIT:-240} run_job "$name" --precision fp16 \
      --batch-sizes 1 --iterations 10 --warmup 2 "$@"
    shift 2
    psql_q -Atc "SELECT model_type, status, round(duration_s::numeric, 2), coalesce(round(latency_p50_ms::numeric, 3)::text, ''), left(coalesce(reason, ''), 400) FROM task_outcomes WHERE job_id = $job ORDER BY status, model_type" >"$out/$name-tasks.txt"
  done
  ;;
modes)
  # Issue 14, item 4: every benchmark mode through the system (one task per
  # model, batch size and mode, each figure labelled with its mode; a mode
  # that cannot be set up is skipped with the reason), then the runner's
  # eager and cuda-graph measurement against plain torch in one process.
  HF_WATCH_LIMIT=${HF_WATCH_LIMIT:-420} run_job bench-modes --models "${HF_BENCH_MODELS:-bert,gpt2,vit}" \
    --batch-sizes 1,8 --precision fp16 --mode "${HF_BENCH_MODES:-all}" --iterations 100 --warmup 10 --task-timeout 300s "$@"
  psql_q -c "SELECT t.model_type, t.batch_size, t.mode, o.status, round(o.latency_p50_ms::numeric, 3) AS p50_ms, round(o.latency_cv::numeric, 3) AS cv, o.metrics->>'mode' AS measured, round((o.metrics->>'capture_time_s')::numeric, 3) AS capture_s, round((o.metrics->>'compile_time_s')::numeric, 1) AS compile_s, left(coalesce(o.reason, ''), 300) AS reason FROM task_outcomes o JOIN tasks t ON t.id = o.task_id WHERE o.job_id = $job ORDER BY 1, 2, 3" | tee "$out/bench-modes-table.txt"
  hfctl results "$job" --wide >"$out/bench-modes-hfctl.txt" 2>&1
  psql_q -c "SELECT * FROM benchmark_latest ORDER BY 1, 2, 3" >"$out/bench-modes-latest.txt" 2>&1
  env -u LD_LIBRARY_PATH python3 tests/gpu/bench_modes.py --out "$out/bench-modes-standalone.json" 2>"$out/bench-modes-standalone.log" |
    tee "$out/bench-modes-standalone.md"
  tail -5 "$out/bench-modes-standalone.log"
  ;;
readers)
  # Issue 12: two benchmark jobs as two nightly runs (cuda and cpu, fp32),
  # and a test job of the same models; then what a reader gets from them:
  # compare, history, the report page, and every view queried as a member
  # of the read-only role.  (suite-warm runs the whole suite.)
  models=${HF_BENCH_MODELS:-bert,gpt2,vit,resnet}; nightly=()
  for night in nightly-1 nightly-2; do
    HF_BACKENDS=cuda,cpu HF_WATCH_LIMIT=${HF_BENCH_LIMIT:-170} run_job "bench-$night" --models "$models" \
      --batch-sizes 1,8 --precision fp32 --iterations 50 --warmup 5
    nightly+=("$job")
  done
  HF_WATCH_LIMIT=60 run_job test --models "$models"
  hfctl compare "${nightly[0]}" "${nightly[1]}" --wide >"$out/compare.txt"; echo "compare exit status $?" >>"$out/compare.txt"
  hfctl --json compare --all "${nightly[0]}" "${nightly[1]}" >"$out/compare.json"
  hfctl report "${nightly[1]}" --html "$out/report.html"
  hfctl history bert --kind benchmark --wide >"$out/history-bert.txt"
  psql_q -qc "CREATE ROLE dashboard LOGIN IN ROLE hfleet_reader" 2>&1 | tee "$out/reader-role.txt"
  for v in compatibility_matrix benchmark_latest benchmark_regressions cross_backend fleet_utilisation device_health; do
    "$pgbin/psql" -X -h "$w/db" -p "$port_pg" -U dashboard -d hfleet -c "SELECT * FROM $v" >"$out/view-$v.txt" 2>&1
  done
  "$pgbin/psql" -X -h "$w/db" -p "$port_pg" -U dashboard -d hfleet -c "SELECT * FROM hfleet_compare_jobs(${nightly[0]}, ${nightly[1]})" >"$out/view-compare.txt" 2>&1
  "$pgbin/psql" -X -h "$w/db" -p "$port_pg" -U dashboard -d hfleet -c "SELECT count(*) FROM tokens" >"$out/reader-tokens.txt" 2>&1
  psql_q -c "SELECT model_type, backend, precision, batch_size, latency_p50_ms, latency_cv, noisy, energy_j_per_item, avg_power_w, device_name, driver_version, torch_version, runner_version, env_id FROM task_outcomes WHERE kind = 'benchmark' AND job_id = ${nightly[1]} ORDER BY 1, 2, 3, 4" >"$out/bench-columns.txt"
  ;;
esac
curl -s http://127.0.0.1:$port_h/metrics >"$out/metrics.txt" 2>/dev/null || true
curl -s http://127.0.0.1:$port_wm/metrics >"$out/worker-metrics.txt" 2>/dev/null || true
kill "$worker_pid" "$coordinator_pid" 2>/dev/null; wait
cluster_stop
# The device tool brings back at most 8 files: pack the evidence into one.
tar -C "$out" -czf /tmp/hfleet-evidence.tgz . && find "$out" -mindepth 1 -delete && mv /tmp/hfleet-evidence.tgz "$out/evidence.tgz"
