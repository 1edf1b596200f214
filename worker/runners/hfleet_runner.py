#!/usr/bin/env python3
"""hfleet reference model runner (v1).

  python3 worker/runners/hfleet_runner.py --task TASK_JSON_PATH --result RESULT_JSON_PATH
  python3 worker/runners/hfleet_runner.py --probe

The worker spawns one runner per task.  The runner reads the task JSON,
tests or benchmarks the model with PyTorch + transformers, and writes the
result JSON atomically (RESULT.tmp, fsync, rename).  Exit status is 0
whenever a result was written (whatever its status), 1 when even writing
the result failed, 2 on bad usage.  See README.md beside this file.
"""

from __future__ import annotations

import os
import sys

# Never touch the network: set before anything can import huggingface_hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import traceback  # noqa: E402

import hfleet_runner_lib as lib  # noqa: E402


def _log(msg):
    print(f"hfleet-runner: {msg}", file=sys.stderr, flush=True)


def _minimal_env():
    import platform
    return {"python": platform.python_version(), "torch": None, "torch_cuda": None, "torch_hip": None,
            "transformers": None, "device_name": None, "platform": platform.platform()}


def compute_result(task_path: str) -> dict:
    try:
        with open(task_path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as exc:
        return lib.make_result("error", lib.exception_reason(exc, f"cannot read task {task_path}"),
                               env=_minimal_env(), traceback_text=traceback.format_exc())
    try:
        task = lib.parse_task(raw)
    except lib.TaskError as exc:
        return lib.make_result("error", f"invalid task: {exc}", env=_minimal_env(),
                               traceback_text=traceback.format_exc())
    _log(f"task {task['task_id']} attempt {task['attempt']}: {task['kind']} {task['model_type']} "
         f"({task.get('hf_id')}) on {task['backend']} {task['precision']}")
    import hfleet_runner_torch as rt
    return rt.run_task(task)


def write_or_fallback(result_path: str, result: dict) -> int:
    try:
        lib.write_result_atomic(result_path, result)
        return 0
    except ValueError as exc:
        # The runner produced an invalid result: report that instead (a runner bug).
        _log(f"runner produced an invalid result: {exc}")
        fallback = lib.make_result("error", lib.exception_reason(exc, "runner bug"), env=_minimal_env(),
                                   traceback_text=json.dumps(result, default=str)[:4000])
    except OSError as exc:
        _log(f"cannot write result to {result_path}: {exc}")
        return 1
    try:
        lib.write_result_atomic(result_path, fallback)
        return 0
    except Exception as exc:  # noqa: BLE001
        _log(f"cannot write fallback result to {result_path}: {exc}")
        return 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="hfleet_runner.py", description="hfleet reference model runner")
    ap.add_argument("--task", help="path of the task JSON written by the worker")
    ap.add_argument("--result", help="path of the result JSON to write")
    ap.add_argument("--probe", action="store_true", help="print installed frameworks as JSON and exit")
    args = ap.parse_args(argv)

    if args.probe:
        try:
            import hfleet_runner_torch as rt
            with contextlib.redirect_stdout(sys.stderr):
                info = rt.probe()
        except BaseException as exc:  # noqa: BLE001 - the probe never crashes
            if isinstance(exc, KeyboardInterrupt):
                raise
            import platform
            info = {"python": {"version": platform.python_version(), "executable": sys.executable},
                    "error": lib.one_line(f"{type(exc).__name__}: {exc}")}
        sys.stdout.write(json.dumps(info, default=str) + "\n")
        sys.stdout.flush()
        return 0

    if not args.task or not args.result:
        ap.error("--task and --result are required (or --probe)")

    try:
        result = compute_result(args.task)
    except BaseException as exc:  # noqa: BLE001 - always leave a result
        if isinstance(exc, SystemExit):
            exc = RuntimeError(f"SystemExit({exc.code}) raised while running the task")
        result = lib.make_result("error", lib.exception_reason(exc, "runner"), env=_minimal_env(),
                                 traceback_text=traceback.format_exc())
    rc = write_or_fallback(args.result, result)
    if rc == 0:
        _log(f"result: {result['status']}" + (f" ({result['reason']})" if result.get("reason") else ""))
    return rc


if __name__ == "__main__":
    sys.exit(main())
