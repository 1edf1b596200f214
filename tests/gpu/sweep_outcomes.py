#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Each model type's latest outcome over benchmark (or test) sweeps.

  tests/gpu/sweep_outcomes.py SUMMARY.json... [--not-passed FILE]

The summaries (hfleet_sweep.py's summary.json, as tests/gpu/call-d.sh
returns it) are read in the order given; a type's row in a later one
replaces its earlier outcome, except a row the later sweep never finished
("not-finished": its deadline came first), which keeps the earlier one.
Prints the count of each outcome (skips split into "over one GPU" and the
rest, by their reason) with the types of the small groups, and with
--not-passed writes the types to run again: neither passed nor skipped.
Standard library only: it runs here on the evidence in
docs/gpu-evidence/issue14/bench-sweeps/.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys


def latest(paths):
    """model_type -> (row, the summary it came from)."""
    out = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            rows = json.load(f)
        if not isinstance(rows, list):
            raise SystemExit(f"{path}: not a sweep summary (a JSON list of rows)")
        for row in rows:
            mt, status = row.get("model_type"), row.get("status")
            if not isinstance(mt, str) or not isinstance(status, str):
                raise SystemExit(f"{path}: a row without model_type and status: {str(row)[:200]}")
            if status == "not-finished" and mt in out:
                continue
            out[mt] = (row, path)
    return out


def outcome(row):
    status = row["status"]
    if status == "skipped":
        return "skipped: over one GPU" if "over the benchmark limit" in str(row.get("reason")) else "skipped: other"
    return status


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("summaries", nargs="+")
    ap.add_argument("--not-passed", metavar="FILE", help="write the types neither passed nor skipped, one a line")
    args = ap.parse_args(argv)
    rows = latest(args.summaries)
    groups = collections.defaultdict(list)
    for mt, (row, _) in sorted(rows.items()):
        groups[outcome(row)].append(mt)
    print(f"{len(rows)} types, each's latest outcome over {len(args.summaries)} sweeps")
    for name, types in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        listed = ": " + ", ".join(types) if len(types) <= 12 else ""
        print(f"  {name:24s} {len(types):4d}{listed}")
    if args.not_passed:
        again = [mt for mt, (row, _) in sorted(rows.items()) if row["status"] not in ("passed", "skipped")]
        with open(args.not_passed, "w", encoding="utf-8") as f:
            f.write(f"# neither passed nor skipped in the latest of: {' '.join(args.summaries)}\n")
            f.write("".join(mt + "\n" for mt in again))
        print(f"{len(again)} types to run again -> {args.not_passed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
