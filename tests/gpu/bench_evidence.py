#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark statistics and energy on a real GPU, through the reference
runner's own code, in one process as a warm runner serves tasks
(hfleet_runner_torch.run_task on each parsed task; each result validated as
the CLI validates it before writing).  Runs the list of benchmarks twice,
so the spread between two runs can be set against each run's cv, and first
watches NVML's energy counter under load to see how often it moves.

  tests/gpu/bench_evidence.py OUT_DIR [MODEL:BATCH ...]

Writes OUT_DIR/bench-evidence.json ({"counter": ..., "runs": [[task, result], ...]})
and prints a table.  HFLEET_DEVICE_UUID is set to cuda:0's UUID as the
worker would set it.
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "worker", "runners"))

import hfleet_nvml as nvml  # noqa: E402
import hfleet_runner_lib as lib  # noqa: E402
import hfleet_runner_torch as rt  # noqa: E402

DEFAULT = ["bert:1", "bert:8", "gpt2:1", "gpt2:8", "vit:1", "vit:8"]
MODALITY = {"vit": "image", "resnet": "image", "convnext": "image"}


def counter_steps(torch, uuid, seconds=1.0):
    """How often the energy counter moves while the GPU is busy."""
    n, why = nvml.open_nvml()
    c, why = nvml.energy_counter(n, uuid) if n else (None, why)
    if c is None:
        return {"error": why}
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.float16)
    changes, last, reads = [], c.read_mj(), 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(4):
            a = (a @ a).clamp_(-1, 1)
        v = c.read_mj()
        reads += 1
        if v != last:
            changes.append((time.perf_counter() - t0, v - last))
            last = v
    torch.cuda.synchronize()
    gaps = [b[0] - a_[0] for a_, b in zip(changes, changes[1:])]
    return {"reads": reads, "changes": len(changes), "seconds": seconds,
            "median_gap_s": sorted(gaps)[len(gaps) // 2] if gaps else None,
            "median_step_mj": sorted(d for _, d in changes)[len(changes) // 2] if changes else None}


def main(argv):
    out = argv[0]
    specs = argv[1:] or DEFAULT
    import torch
    props = torch.cuda.get_device_properties(0)
    uuid = "GPU-" + str(props.uuid)
    os.environ["HFLEET_DEVICE_UUID"] = uuid
    evidence = {"counter": counter_steps(torch, uuid), "runs": []}
    print("counter:", evidence["counter"], flush=True)
    tid = 0
    for run in (1, 2):
        for spec in specs:
            model, batch = spec.split(":")
            tid += 1
            task = lib.parse_task({"task_id": tid, "model_type": model, "kind": "benchmark", "backend": "cuda",
                                   "modality": MODALITY.get(model, "text"), "batch_size": int(batch),
                                   "seq_len": 128, "precision": "fp16", "iterations": 100, "warmup": 3,
                                   "timeout_s": 300})
            t0 = time.perf_counter()
            r = rt.run_task(task)
            problems = lib.validate_result(r)
            r["_wall_s"] = time.perf_counter() - t0
            r["_run"] = run
            r["_problems"] = problems
            evidence["runs"].append([task, r])
            m = r["metrics"]
            lat = m.get("latency_ms") or {}
            print(f"run {run} {model:5s} b{batch}: {r['status']} {r['reason'][:120]} "
                  f"p50 {lat.get('p50', 0):.3f} ms cv {lat.get('cv', 0):.4f} warmup {m.get('warmup')}"
                  f"/{m.get('warmup_requested')} stable {m.get('warmup_stable')} noisy {m.get('noisy')} "
                  f"J/item {m.get('energy_j_per_item')} W {m.get('avg_power_w')} "
                  f"{r['outputs'].get('energy', '')} problems {problems}", flush=True)
            rt.release_memory()
    with open(os.path.join(out, "bench-evidence.json"), "w", encoding="utf-8") as f:
        json.dump(evidence, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
