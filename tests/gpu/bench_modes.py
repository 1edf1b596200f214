#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The runner's benchmark modes against standalone measurements, in one
process on one GPU (issue 14, item 4).

For each model (bert-base, gpt2, vit: their default configs, random
weights, AutoModel) at fp16 and each batch size, on the same model object
and the same input tensors:

  standalone eager   plain torch: warm-up, then N forward passes back to
                     back between two synchronisations, mean per pass
  runner eager       hfleet_modes.measure_mode(..., "eager", ...): the
                     runner's step and hfleet_bench.measure (p50 and mean)
  standalone graph   plain torch: side-stream warm-up, torch.cuda.CUDAGraph
                     capture, N replays between two synchronisations
  runner graph       hfleet_modes.measure_mode(..., "cuda-graph", ...)

and prints a table with runner / standalone ratios (the target: within
10 %), also written as JSON.  No hfleet code is used by the standalone
measurements.

  tests/gpu/bench_modes.py [--out FILE.json] [--models bert,gpt2,vit]
                           [--batch-sizes 1,8] [--seq-len 128] [--iterations 200]
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "worker", "runners"))

WARMUP = 20
IMAGE_MODELS = ("vit",)


# ---- standalone: plain torch ----

def standalone_eager(torch, model, inputs, n):
    for _ in range(WARMUP):
        model(**inputs)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        model(**inputs)
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n * 1000.0


def standalone_graph(torch, model, inputs, n):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            model(**inputs)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = model(**inputs)
    for _ in range(WARMUP):
        g.replay()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        g.replay()
    torch.cuda.synchronize()
    ms = (time.perf_counter() - t0) / n * 1000.0
    del g, out
    return ms


# ---- the runner's measurement ----

def runner_measure(torch, model, inputs, mode, batch, n):
    import hfleet_bench as bench
    import hfleet_modes as modes
    device = torch.device("cuda")
    plan = bench.Plan(WARMUP, n, batch, time.perf_counter() + 300.0)
    m, _, skip = modes.measure_mode(torch, model, inputs, device, mode, plan, bench, torch.cuda.synchronize)
    if skip:
        return None, skip, m
    return m["latency_ms"], None, m


def build(torch, transformers, name, batch, seq):
    cfg = {"bert": transformers.BertConfig, "gpt2": transformers.GPT2Config,
           "vit": transformers.ViTConfig}[name]()
    torch.manual_seed(0)
    model = transformers.AutoModel.from_config(cfg).eval().to(device="cuda", dtype=torch.float16)
    if name in IMAGE_MODELS:
        inputs = {"pixel_values": torch.randn(batch, 3, cfg.image_size, cfg.image_size,
                                              device="cuda", dtype=torch.float16)}
    else:
        inputs = {"input_ids": torch.randint(0, cfg.vocab_size, (batch, seq), device="cuda"),
                  "attention_mask": torch.ones(batch, seq, dtype=torch.long, device="cuda")}
    return model, inputs


def ratio(a, b):
    return None if a is None or b is None or b <= 0 else a / b


def fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--models", default="bert,gpt2,vit")
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=200)
    args = ap.parse_args()
    import torch
    import transformers
    transformers.logging.set_verbosity_error()
    rows = []
    for name in args.models.split(","):
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            model, inputs = build(torch, transformers, name, batch, args.seq_len)
            row = {"model": name, "batch": batch, "precision": "fp16",
                   "seq_len": None if name in IMAGE_MODELS else args.seq_len,
                   "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                   "transformers": transformers.__version__}
            with torch.inference_mode():
                row["standalone_eager_ms"] = standalone_eager(torch, model, inputs, args.iterations)
                lat, skip, _ = runner_measure(torch, model, inputs, "eager", batch, args.iterations)
                row["runner_eager_p50_ms"] = lat and lat["p50"]
                row["runner_eager_mean_ms"] = lat and lat["mean"]
                row["runner_eager_skip"] = skip
                try:
                    row["standalone_graph_ms"] = standalone_graph(torch, model, inputs, args.iterations)
                except Exception as exc:  # noqa: BLE001 - reported in the table
                    row["standalone_graph_ms"] = None
                    row["standalone_graph_error"] = f"{type(exc).__name__}: {exc}"[:300]
                    torch.cuda.synchronize()
                lat, skip, m = runner_measure(torch, model, inputs, "cuda-graph", batch, args.iterations)
                row["runner_graph_p50_ms"] = lat and lat["p50"]
                row["runner_graph_mean_ms"] = lat and lat["mean"]
                row["runner_graph_capture_s"] = m.get("capture_time_s")
                row["runner_graph_skip"] = skip
            row["eager_ratio"] = ratio(row["runner_eager_p50_ms"], row["standalone_eager_ms"])
            row["graph_ratio"] = ratio(row["runner_graph_p50_ms"], row["standalone_graph_ms"])
            rows.append(row)
            del model, inputs
            torch.cuda.empty_cache()

    def within(r):
        return "-" if r is None else ("yes" if abs(r - 1.0) <= 0.10 else "NO")

    print("| model | batch | standalone eager ms | runner eager p50 (mean) ms | ratio | within 10 % "
          "| standalone graph ms | runner graph p50 (mean) ms | ratio | within 10 % | eager / graph |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: |")
    for r in rows:
        speedup = ratio(r["runner_eager_p50_ms"], r["runner_graph_p50_ms"])
        print(f"| {r['model']} | {r['batch']} | {fmt(r['standalone_eager_ms'])} | "
              f"{fmt(r['runner_eager_p50_ms'])} ({fmt(r['runner_eager_mean_ms'])}) | {fmt(r['eager_ratio'])} | "
              f"{within(r['eager_ratio'])} | {fmt(r['standalone_graph_ms'])} | "
              f"{fmt(r['runner_graph_p50_ms'])} ({fmt(r['runner_graph_mean_ms'])}) | {fmt(r['graph_ratio'])} | "
              f"{within(r['graph_ratio'])} | {fmt(speedup, '.2f')} |")
        for k in ("runner_eager_skip", "standalone_graph_error", "runner_graph_skip"):
            if r.get(k):
                print(f"  {r['model']} batch {r['batch']}: {k}: {r[k]}")
    if rows:
        ratios = [r[k] for r in rows for k in ("eager_ratio", "graph_ratio") if r[k] is not None]
        if ratios:
            print(f"ratios: median {statistics.median(ratios):.3f}, max |1 - ratio| "
                  f"{max(abs(1 - x) for x in ratios):.3f}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
