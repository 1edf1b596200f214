#!/usr/bin/env python3
"""How large each model type's default config is (developer tool, GPU machine).

For every model type of a models.tsv, builds the default config the way a
benchmark does (the task's head first) on the meta device and counts its
parameters.  A benchmark builds the default config at full size, so this says
which types fit one device at fp16 and which need several.  Prints one TSV
row per type: model_type, parameters, fp16 GiB, or the error.  Asserts nothing.

  python3 tests/gpu/param_census.py coordinator/registry/models.tsv --jobs 12 > census.tsv
"""

import argparse
import concurrent.futures as cf
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "worker", "runners"))


def census(row):
    model_type, task = row
    try:
        import torch
        import transformers
        import hfleet_build as build
        cfg, _, _, _ = build.default_and_shrunk_configs(transformers, model_type, 128)
        model = build.build_from_config(transformers, cfg, task, meta=True, torch=torch, head_first=True)
        n = build.param_count(model)
        return f"{model_type}\t{n}\t{n * 2 / 2**30:.1f}\t"
    except Exception as exc:  # noqa: BLE001
        return f"{model_type}\t\t\t{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("registry")
    ap.add_argument("--jobs", type=int, default=8)
    args = ap.parse_args()
    rows = []
    with open(args.registry, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or line.startswith("model_type\t"):
                continue
            cols = line.rstrip("\n").split("\t")
            rows.append((cols[0], cols[3] or None))
    os.environ["HF_HUB_OFFLINE"] = "1"
    print("model_type\tparams\tfp16_gib\terror")
    with cf.ProcessPoolExecutor(args.jobs) as ex:
        for out in ex.map(census, rows, chunksize=4):
            print(out, flush=True)


if __name__ == "__main__":
    main()
