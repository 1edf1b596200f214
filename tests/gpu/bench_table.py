#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Print a benchmark job's figures as a Markdown table.

  python3 tests/gpu/bench_table.py bench-results.json   (from hfctl --json results JOB)

One row per (model, sequence length, batch size): parameters, latency p50/p90/p99/mean,
throughput, peak device memory, and for generative models the time to first
token and tokens per second (32 new tokens, greedy, median of the repeats).
Only figures the runner measured are printed; a missing one is "-".
"""
import json
import sys


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def params(n):
    if n is None:
        return "-"
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def main(path):
    with open(path, encoding="utf-8") as f:
        rows = json.load(f)
    print("| model | family | params | seq | batch | p50 ms | p90 ms | p99 ms | mean ms | items/s | peak MiB "
          "| TTFT ms | tokens/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    others = []
    for r in sorted(rows, key=lambda r: (r["family"], r["model_type"], r.get("seq_len") or 0, r["batch_size"])):
        if r["status"] != "passed":
            others.append(f"{r['model_type']} batch {r['batch_size']}: {r['status']} {r.get('reason', '')}")
            continue
        m = r.get("metrics_json") or {}
        lat = m.get("latency_ms") or {}
        peak = m.get("peak_memory_bytes")
        # The sequence that ran (the runner's), else the one asked; "-" without tokens.
        seq = m["seq_len"] if "seq_len" in m else r.get("seq_len")
        print(f"| {r['model_type']} | {r['family']} | {params(m.get('param_count'))} | {fmt(seq, 'd')} "
              f"| {r['batch_size']} "
              f"| {fmt(lat.get('p50'), '.2f')} | {fmt(lat.get('p90'), '.2f')} | {fmt(lat.get('p99'), '.2f')} "
              f"| {fmt(lat.get('mean'), '.2f')} | {fmt(m.get('throughput_items_s'), '.0f')} "
              f"| {fmt(peak / 2**20 if peak else None, '.0f')} | {fmt(m.get('ttft_ms'), '.1f')} "
              f"| {fmt(m.get('tokens_per_s'), '.0f')} |")
    for line in others:
        print(f"\n{line}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: bench_table.py RESULTS_JSON")
    main(sys.argv[1])
