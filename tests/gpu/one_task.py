#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs one task through the reference runner as the worker would (a task
file, a result file) and prints the result's status, reason, chosen metrics
and the end of its traceback: for looking into one model on the GPU machine.

  tests/gpu/one_task.py MODEL_TYPE [key=value ...]    e.g. roberta kind=benchmark seq_len=512
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "..", "..", "worker", "runners", "hfleet_runner.py")


def main(argv):
    task = {"task_id": 1, "attempt": 1, "job_id": 1, "model_type": argv[0], "hf_id": None,
            "family": None, "task": None, "modality": "text", "kind": "test", "backend": "cuda",
            "device_index": 0, "batch_size": 1, "seq_len": 128, "precision": "fp16",
            "iterations": 5, "warmup": 1, "timeout_s": 300}
    for kv in argv[1:]:
        k, v = kv.split("=", 1)
        task[k] = int(v) if v.isdigit() else v
    with tempfile.TemporaryDirectory() as d:
        tp, rp = os.path.join(d, "task.json"), os.path.join(d, "result.json")
        with open(tp, "w", encoding="utf-8") as f:
            json.dump(task, f)
        p = subprocess.run([sys.executable, RUNNER, "--task", tp, "--result", rp], capture_output=True, text=True)
        print(f"== {' '.join(argv)}: exit {p.returncode}")
        if not os.path.exists(rp):
            print(p.stderr[-3000:])
            return
        with open(rp, encoding="utf-8") as f:
            r = json.load(f)
    m = r.get("metrics") or {}
    print(f"status {r['status']}: {r['reason'][:300]}")
    print({k: m.get(k) for k in ("seq_len", "seq_len_requested", "ttft_ms", "tokens_per_s", "mode",
                                 "capture_time_s", "compile_time_s")},
          {"p50_ms": (m.get("latency_ms") or {}).get("p50")},
          {k: (r.get("outputs") or {}).get(k) for k in ("generation", "seq_len", "model_class", "compile_mode")})
    if r.get("traceback"):
        print("\n".join(r["traceback"].splitlines()[-25:]))


if __name__ == "__main__":
    main(sys.argv[1:])
