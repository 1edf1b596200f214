#!/usr/bin/env python3
"""Run hfleet_runner.py over many model types and summarise (developer tool).

Needs torch + transformers.  For each model type (default: every key of
transformers' CONFIG_MAPPING) it guesses modality and task from the
transformers auto mappings, writes a task JSON, runs the runner CLI as a
subprocess (the real path the worker uses) and collects the results.

  python3 worker/runners/hfleet_sweep.py --backend cuda --kind test --jobs 12 --out /tmp/sweep
  python3 worker/runners/hfleet_sweep.py --only bert,gpt2,vit --backend cpu

Writes OUT/summary.json (one row per model type) and prints a count by status.
This is not a benchmark and asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import json
import os
import signal
import subprocess
import sys
import time

import hfleet_runner_lib as lib

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "hfleet_runner.py")

# (mapping name in transformers.models.auto.modeling_auto, modality, task), first match wins.
GUESSES = [
    ("MODEL_FOR_TIME_SERIES_PREDICTION_MAPPING_NAMES", "time-series", "time-series-forecasting"),
    ("MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES", "audio", "automatic-speech-recognition"),
    ("MODEL_FOR_CTC_MAPPING_NAMES", "audio", "automatic-speech-recognition"),
    ("MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES", "audio", "audio-classification"),
    ("MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES", "video", "video-classification"),
    ("MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES", "image+text", "image-text-to-text"),
    ("MODEL_FOR_VISION_2_SEQ_MAPPING_NAMES", "image+text", "image-to-text"),
    ("MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES", "image+text", "zero-shot-image-classification"),
    ("MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES", "image", "image-classification"),
    ("MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES", "image", "object-detection"),
    ("MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES", "image", "depth-estimation"),
    ("MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES", "image", "image-segmentation"),
    ("MODEL_FOR_BACKBONE_MAPPING_NAMES", "image", "image-classification"),
    ("MODEL_FOR_IMAGE_MAPPING_NAMES", "image", "image-classification"),
    ("MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES", "text", "text2text-generation"),
    ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "text", "text-generation"),
    ("MODEL_FOR_MASKED_LM_MAPPING_NAMES", "text", "fill-mask"),
    ("MODEL_FOR_TEXT_TO_WAVEFORM_MAPPING_NAMES", "text", "text-to-audio"),
]


def guess(model_type):
    from transformers.models.auto import modeling_auto as ma
    for name, modality, task in GUESSES:
        if model_type in getattr(ma, name, {}):
            return modality, task
    return "text", None


def run_one(args, model_type, idx):
    task = make_task(args, model_type, idx)
    modality, task_name = task["modality"], task["task"]
    tdir = os.path.join(args.out, "tasks")
    tp = os.path.join(tdir, f"{model_type}.task.json")
    rp = os.path.join(tdir, f"{model_type}.result.json")
    with open(tp, "w", encoding="utf-8") as f:
        json.dump(task, f)
    t0 = time.time()
    rc, stderr = cli_run(tp, rp, args.timeout, os.path.join(tdir, f"{model_type}.stderr"))
    wall = time.time() - t0
    if rc == 0 and os.path.exists(rp):
        with open(rp, encoding="utf-8") as f:
            r = json.load(f)
        r["_log"] = stderr
        return dict(row_of(task, r, wall), rc=rc)
    return {"model_type": model_type, "modality": modality, "task": task_name, "rc": rc,
            "wall_s": round(wall, 2), "status": "runner-" + str(rc), "reason": stderr[-800:]}


def _pool_init():
    sys.path.insert(0, HERE)
    os.environ["HF_HUB_OFFLINE"] = "1"


_POISONED = False


def _cli_result(task):
    """Run one task through the CLI in a fresh process; return its result dict."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        tp, rp = os.path.join(d, "task.json"), os.path.join(d, "result.json")
        with open(tp, "w", encoding="utf-8") as f:
            json.dump(task, f)
        rc, stderr = cli_run(tp, rp, task["timeout_s"], os.path.join(d, "stderr"))
        if rc == "timeout":
            raise TimeoutError(f"the runner ran past {task['timeout_s']}s: {stderr[-400:]}")
        with open(rp, encoding="utf-8") as f:
            return json.load(f)


def run_in_process(task):
    """Run one task in this (pool) process: no interpreter start-up per task.

    After a fatal device error (a CUDA device-side assert poisons the
    process's context) this process runs its remaining tasks through the CLI,
    one fresh process each, as the worker would.
    """
    global _POISONED
    import hfleet_runner_torch as rt
    import traceback
    t0 = time.time()
    if not _POISONED and task["backend"] in ("cuda", "rocm"):
        try:
            import torch
            if torch.cuda.is_initialized():
                torch.cuda.synchronize()
        except Exception:  # noqa: BLE001
            _POISONED = True
    import contextlib
    import io
    log = io.StringIO()
    try:
        if _POISONED:
            r = _cli_result(task)
        else:
            with contextlib.redirect_stderr(log):
                r = rt.run_task(lib.parse_task(task))
                # What the task left in the CUDA cache goes back, as a warm
                # runner's serve loop gives it back between tasks: an idle
                # pool process must not hold memory the census gave others.
                rt.release_memory()
            if "fatal device error" in r.get("reason", "") or lib.classify_device_error(r.get("reason")):
                _POISONED = True
        problems = lib.validate_result(r)
        if problems:
            r = {"status": "runner-invalid", "reason": "; ".join(problems), "outputs": {}, "metrics": {}}
    except BaseException as exc:  # noqa: BLE001
        r = {"status": "runner-crash", "reason": f"{type(exc).__name__}: {exc}", "outputs": {}, "metrics": {},
             "traceback": traceback.format_exc()}
    r["_log"] = log.getvalue()
    return task, r, time.time() - t0


REGISTRY = {}


def load_registry(path):
    """model_type -> (hf_id, family, task, modality) from coordinator/registry/models.tsv."""
    import csv
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader((line for line in f if not line.startswith("#") or line.startswith("#model")),
                                  delimiter="\t"):
            REGISTRY[row["model_type"]] = (row["hf_id"] or None, row["family"], row["task"], row["modality"])
    return sorted(REGISTRY)


def cli_run(task_path, result_path, timeout, stderr_path):
    """Runs the runner CLI on one task, its stderr kept in stderr_path.
    -> (exit status, or "timeout"; the stderr's text).  On timeout the
    runner is sent SIGABRT first, with faulthandler on, so that the file
    ends with every thread's Python stack (where a hang was), then killed."""
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    with open(stderr_path, "w+", encoding="utf-8", errors="replace") as err:
        p = subprocess.Popen([sys.executable, RUNNER, "--task", task_path, "--result", result_path],
                             stdout=subprocess.DEVNULL, stderr=err, env=env)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = "timeout"
            p.send_signal(signal.SIGABRT)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        err.seek(0)
        return rc, err.read()


def make_task(args, model_type, idx):
    if model_type in REGISTRY:
        hf_id, family, task_name, modality = REGISTRY[model_type]
    else:
        (modality, task_name), hf_id, family = guess(model_type), None, None
    return {"task_id": idx, "attempt": 1, "job_id": 0, "model_type": model_type, "hf_id": hf_id,
            "family": family, "task": task_name, "modality": modality, "kind": args.kind,
            "backend": args.backend, "device_index": 0, "batch_size": args.batch_size,
            "seq_len": args.seq_len, "precision": args.precision, "iterations": args.iterations,
            "warmup": args.warmup, "timeout_s": args.timeout}


def row_of(task, r, wall):
    row = {"model_type": task["model_type"], "modality": task["modality"], "task": task["task"],
           "wall_s": round(wall, 2), "status": r["status"], "reason": r.get("reason"),
           "weights": r.get("weights"), "config_source": r["outputs"].get("config_source"),
           "model_class": r["outputs"].get("model_class"), "built_on": r["outputs"].get("built_on"),
           "params": r["metrics"].get("param_count"),
           "inputs": r["outputs"].get("inputs"), "latency_ms": r["metrics"].get("latency_ms")}
    if r["outputs"].get("offload"):
        row["offload"] = r["outputs"]["offload"]
        row["peak_memory_bytes"] = r["metrics"].get("peak_memory_bytes")
    if r["status"] not in ("passed", "skipped"):
        row["traceback_tail"] = "\n".join((r.get("traceback") or "").splitlines()[-40:])
        row["log_tail"] = "\n".join((r.get("_log") or "").splitlines()[-12:])
    return row


def load_params(path):
    """model_type -> parameter count of its default config, from a census
    TSV (tests/gpu/param_census.py: model_type, params, ...); rows without a
    count are left out."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) >= 2 and cols[1].isdigit():
                out[cols[0]] = int(cols[1])
    return out


# A task whose default config was not counted is assumed to need this much.
UNCOUNTED_GIB = 16.0
CONTEXT_GIB = 1.0


def memory_need_gib(args, params):
    """GiB a benchmark task of a default config of `params` parameters is
    taken to hold on the GPU while it runs: its weights at the task's
    precision and a sixth more for activations and the allocator (each pool
    process's CUDA context is counted off the budget: main_in_process).
    0 for a test (shrunk configs are small) and for weights over
    the whole budget: the runner skips a model over 80 % of the device's
    memory without building it (the budget is 85 % in call-d.sh)."""
    if args.kind != "benchmark":
        return 0.0
    if params is None:
        return UNCOUNTED_GIB
    per = {"fp32": 4, "tf32": 4}.get(args.precision, 2)
    gib = params * per / 2**30
    if gib > args.memory_budget_gib:
        return 0.0
    return gib * 7 / 6


def main_in_process(args, types):
    """Run the tasks in a pool of args.jobs warm processes.  With
    --memory-budget-gib, a task starts only while the tasks running, with
    it, are taken to need no more than the budget (memory_need_gib), in
    order of need, the smallest first and none overtaken (so a large task
    is not starved); one task alone always starts.  Smallest first: on an
    H200, largest first, hy_v4's default config (58 B parameters) ran alone
    and no task at all finished in the 500 s of a call.  A
    task that ran out of memory beside others (7 of 209 on an H100: the
    census counts weights, not activations) runs once more, alone, after
    the rest."""
    import multiprocessing as mp
    import queue
    rows = []
    t0 = time.time()
    tasks = [make_task(args, mt, i) for i, mt in enumerate(types)]
    counts = load_params(args.params) if args.params else {}
    need = {t["model_type"]: memory_need_gib(args, counts.get(t["model_type"])) for t in tasks}
    # Every pool process keeps its CUDA context (about 0.5 GiB, and what
    # the allocator holds between tasks) whether it runs a task or not:
    # counted off the budget once per process, not per running task.  In
    # sweep 4 (14 processes on an H100) nine 7 to 8 B types ran out of
    # memory beside others with only the running tasks' contexts counted.
    budget = max(args.memory_budget_gib - args.jobs * CONTEXT_GIB, CONTEXT_GIB) \
        if args.memory_budget_gib else float("inf")
    if args.memory_budget_gib:
        tasks.sort(key=lambda t: need[t["model_type"]])
    ctx = mp.get_context("spawn")
    done_q = queue.Queue()
    jl = open(os.path.join(args.out, "rows.jsonl"), "w", encoding="utf-8")
    pool = ctx.Pool(args.jobs, initializer=_pool_init, maxtasksperchild=30)
    running = {}   # model_type -> GiB taken
    shared = set()  # started while others ran
    retried = set()

    def start_what_fits():
        for t in list(tasks):
            if len(running) >= args.jobs:
                return
            n = need[t["model_type"]]
            if running and sum(running.values()) + n > budget:
                return   # in order: a large task is not overtaken, or it would wait forever
            tasks.remove(t)
            if running:
                shared.add(t["model_type"])
            running[t["model_type"]] = n
            pool.apply_async(run_in_process, (t,), callback=done_q.put,
                             error_callback=lambda e, t=t: done_q.put(
                                 (t, {"status": "runner-crash", "reason": f"{type(e).__name__}: {e}",
                                      "outputs": {}, "metrics": {}}, 0.0)))

    try:
        start_what_fits()
        while running:
            remaining = args.deadline - (time.time() - t0)
            if remaining <= 0:
                break
            try:
                task, r, wall = done_q.get(timeout=remaining)
            except queue.Empty:
                break
            mt = task["model_type"]
            running.pop(mt, None)
            if mt in shared and mt not in retried and lib.is_out_of_memory(r.get("reason")):
                # the tasks beside it took the memory: once more, alone, at the end
                retried.add(mt)
                shared.discard(mt)
                need[mt] = budget
                tasks.append(task)
                print(f"{'retry':10s} {mt:40s} {wall:7.1f}s  out of memory beside other tasks: again alone",
                      flush=True)
                start_what_fits()
                continue
            start_what_fits()
            row = row_of(task, r, wall)
            rows.append(row)
            jl.write(json.dumps(row) + "\n")
            jl.flush()
            print(f"{row['status']:10s} {row['model_type']:40s} {row['wall_s']:7.1f}s  {str(row.get('reason'))[:200]}",
                  flush=True)
    finally:
        pool.terminate()
        jl.close()
    done = {r["model_type"] for r in rows}
    for mt in types:
        if mt not in done:
            rows.append({"model_type": mt, "status": "not-finished", "reason": "sweep deadline"})
    return rows, t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--kind", default="test")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=32)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--only", default="", help="comma-separated model types")
    ap.add_argument("--only-file", help="the model types to run, from a file (comma- or line-separated, "
                    "'#' starts a comment)")
    ap.add_argument("--out", default="/tmp/hfleet-sweep")
    ap.add_argument("--registry", help="take the model types, tasks and modalities from this models.tsv")
    ap.add_argument("--skip", default="", help="comma-separated model types to leave out")
    ap.add_argument("--in-process", action="store_true",
                    help="run tasks in a pool of warm Python processes instead of one CLI process per task")
    ap.add_argument("--deadline", type=float, default=3600, help="stop collecting after this many seconds")
    ap.add_argument("--params", help="census TSV (model_type, params) of the default configs: with "
                    "--memory-budget-gib, how much GPU memory each benchmark task is taken to need")
    ap.add_argument("--memory-budget-gib", type=float, default=0.0,
                    help="with --in-process: start a task only while the running ones fit this much GPU memory")
    args = ap.parse_args()
    os.makedirs(os.path.join(args.out, "tasks"), exist_ok=True)
    from transformers import CONFIG_MAPPING
    reg = load_registry(args.registry) if args.registry else []
    only = args.only
    if args.only_file:
        with open(args.only_file, encoding="utf-8") as f:   # '#' lines are comments
            only = ",".join(line.split("#")[0] for line in f)
    types = [t.strip() for t in only.split(",") if t.strip()] or reg or sorted(CONFIG_MAPPING.keys())
    skip = set(args.skip.split(","))
    types = [t for t in types if t not in skip]
    if args.in_process:
        rows, t0 = main_in_process(args, types)
        _finish(args, rows, t0)
        return
    rows = []
    t0 = time.time()
    with cf.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        futs = {ex.submit(run_one, args, mt, i): mt for i, mt in enumerate(types)}
        for fut in cf.as_completed(futs):
            row = fut.result()
            rows.append(row)
            print(f"{row['status']:10s} {row['model_type']:40s} {row['wall_s']:7.1f}s  {str(row.get('reason'))[:160]}",
                  flush=True)
    _finish(args, rows, t0)


def _finish(args, rows, t0):
    rows.sort(key=lambda r: r["model_type"])
    with open(os.path.join(args.out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1)
    counts = collections.Counter(r["status"] for r in rows)
    print(f"sweep of {len(rows)} model types in {time.time() - t0:.0f}s: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
