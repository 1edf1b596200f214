#!/usr/bin/env python3
"""hfleet reference model runner (v1).

  python3 worker/runners/hfleet_runner.py --task TASK_JSON_PATH --result RESULT_JSON_PATH
  python3 worker/runners/hfleet_runner.py --probe
  python3 worker/runners/hfleet_runner.py --health --backend BACKEND --result RESULT_JSON_PATH
  HFLEET_CONTROL_FD=3 python3 worker/runners/hfleet_runner.py --serve

One-shot: the runner reads the task JSON, tests or benchmarks the model
with PyTorch + transformers, and writes the result JSON atomically
(RESULT.tmp, fsync, rename).  Exit status is 0 whenever a result was
written (whatever its status), 1 when even writing the result failed, 2 on
bad usage.

Serve (a warm runner): one request per stdin line, {"task": PATH or the
task object itself, "result": PATH, "result_inline": true}, each run exactly
as the one-shot CLI runs it, answered by one line on the control descriptor:
{"done": TASK_ID, "fatal": BOOL, "rss_bytes": N, "task_inline": true,
"result": {...}} (task_inline: the worker may send the task object instead of
a path; "result": the result itself, when the request said "result_inline":
true and the line fits in lib.CONTROL_LINE_MAX bytes; otherwise the result is
written to the file as the one-shot CLI writes it).  torch and transformers are imported once, when the
runner starts, before it reads the first request (preimport_frameworks: a warm runner pays for them
while it is idle, not on a task's clock; CUDA is not initialised), and torch gets OMP_NUM_THREADS
threads (the worker shares the CPUs among its slots).  Exit status 0 at the end of stdin, 3 after a fatal device error, 1
when the control descriptor is closed, 2 on bad usage.  See README.md
beside this file.
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


_log = lib.log


def _minimal_env():
    import platform
    return {"python": platform.python_version(), "torch": None, "torch_cuda": None, "torch_hip": None,
            "transformers": None, "device_name": None, "platform": platform.platform(),
            "runner_version": lib.RUNNER_VERSION}


def compute_result(task_path, info=None) -> dict:
    """The result of the task at task_path (or the task itself, a dict: a warm
    runner's task given in its request line); info (a dict) gets its task_id
    once known."""
    if isinstance(task_path, dict):
        raw = task_path
    else:
        try:
            with open(task_path, encoding="utf-8") as f:
                raw = json.load(f)
        except (OSError, ValueError) as exc:
            return lib.make_result("error", lib.exception_reason(exc, f"cannot read task {task_path}"),
                                   env=_minimal_env(), traceback_text=traceback.format_exc())
    if info is not None and isinstance(raw, dict) and isinstance(raw.get("task_id"), int):
        info["task_id"] = raw["task_id"]
    try:
        task = lib.parse_task(raw)
    except lib.TaskError as exc:
        return lib.make_result("error", f"invalid task: {exc}", env=_minimal_env(),
                               traceback_text=traceback.format_exc())
    _log(f"task {task['task_id']} attempt {task['attempt']}: {task['kind']} {task['model_type']} "
         f"({task.get('hf_id')}) on {task['backend']} {task['precision']}")
    import hfleet_runner_torch as rt
    return rt.run_task(task)


def _fallback_result(result: dict, exc) -> dict:
    """The error result that reports a runner that produced an invalid one."""
    return lib.make_result("error", lib.exception_reason(exc, "runner bug"), env=_minimal_env(),
                           traceback_text=json.dumps(result, default=str)[:4000])


def checked_result(result: dict) -> dict:
    """result when it is valid, else the error result that reports the runner bug."""
    problems = lib.validate_result(result)
    if not problems:
        return result
    exc = ValueError("invalid result: " + "; ".join(problems))
    _log(f"runner produced an invalid result: {exc}")
    return _fallback_result(result, exc)


def write_or_fallback(result_path: str, result: dict) -> int:
    try:
        lib.write_result_atomic(result_path, result)
        return 0
    except ValueError as exc:
        # The runner produced an invalid result: report that instead (a runner bug).
        _log(f"runner produced an invalid result: {exc}")
        fallback = _fallback_result(result, exc)
    except OSError as exc:
        _log(f"cannot write result to {result_path}: {exc}")
        return 1
    try:
        lib.write_result_atomic(result_path, fallback)
        return 0
    except Exception as exc:  # noqa: BLE001
        _log(f"cannot write fallback result to {result_path}: {exc}")
        return 1


def run_one(task_path: str, result_path, info=None):
    """What the CLI does for one task: -> (exit status, result).  Never raises.

    result_path None: the result is not written but returned checked (a
    warm runner sends it in its done line)."""
    try:
        result = compute_result(task_path, info)
    except BaseException as exc:  # noqa: BLE001 - always leave a result
        if isinstance(exc, SystemExit):
            exc = RuntimeError(f"SystemExit({exc.code}) raised while running the task")
        result = lib.make_result("error", lib.exception_reason(exc, "runner"), env=_minimal_env(),
                                 traceback_text=traceback.format_exc())
    if result_path is None:
        result = checked_result(result)
        _log(f"result: {result['status']}" + (f" ({result['reason']})" if result.get("reason") else ""))
        return 0, result
    rc = write_or_fallback(result_path, result)
    if rc == 0:
        _log(f"result: {result['status']}" + (f" ({result['reason']})" if result.get("reason") else ""))
    return rc, result


# --------------------------------------------------------------------------
# serve mode

def _rss_bytes():
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            return lib.parse_vmrss(f.read())
    except OSError:
        return None


def _control_write(fd: int, line: str) -> None:
    view = memoryview(line.encode("utf-8"))
    while view:
        n = os.write(fd, view)
        view = view[n:]


def fatal_verdict(result: dict, device_usable):
    """(fatal, why) after a task: a device error that leaves the process unusable.

    A known fatal error is fatal; after any other error or failure,
    device_usable() (a tiny operation on the device) decides.
    """
    if result.get("status") not in ("error", "failed"):
        return False, None
    text = f"{result.get('reason') or ''}\n{result.get('traceback') or ''}"
    verdict = lib.classify_device_error(text)
    if verdict == "fatal":
        return True, lib.device_error_line(text)
    if not device_usable():
        return True, (lib.device_error_line(text) if verdict else
                      "the device no longer runs a tiny operation after: " + (result.get("reason") or "an error"))
    return False, None


def _done_line(req: dict, task_id, fatal: bool, why, result: dict) -> str:
    """The done line of a task: its result inline when the worker asked for
    that and the line fits, else the result written to the request's file."""
    rss = _rss_bytes()
    if req["result_inline"]:
        try:
            line = lib.control_done_line(task_id, fatal, rss, why, task_inline=True, result=result)
        except ValueError:
            line = None  # NaN slipped through: the file path reports it
        if line is not None and len(line.encode("utf-8")) - 1 <= lib.CONTROL_LINE_MAX:
            return line
        write_or_fallback(req["result"], result)
    # task_inline: the worker may give the next task in its request line
    # instead of a file (parse_serve_request takes both).
    return lib.control_done_line(task_id, fatal, rss, why, task_inline=True)


def preimport_frameworks(log=_log) -> bool:
    """Imports torch and transformers (and transformers' Auto classes, the
    bulk of its import) without initialising CUDA, logs how long it took, and
    gives torch OMP_NUM_THREADS threads.  Never raises: a framework that
    fails to import is logged, and the task's own import reports it as
    before.  Returns whether both imported."""
    import time
    start = time.perf_counter()
    try:
        import torch
        threads = lib.threads_from_env(os.environ)
        if threads is not None:
            torch.set_num_threads(threads)
        import transformers
        transformers.AutoConfig  # noqa: B018 - the lazy module imports them on access
        transformers.AutoModel  # noqa: B018
    except Exception as exc:  # noqa: BLE001 - not fatal here
        log(f"could not import the frameworks ahead of tasks ({lib.one_line(f'{type(exc).__name__}: {exc}')}); "
            f"each task reports it")
        return False
    log(f"imported torch {getattr(torch, '__version__', '?')} and transformers "
        f"{getattr(transformers, '__version__', '?')} in {time.perf_counter() - start:.1f} s"
        + (f" (torch threads: {threads})" if threads is not None else ""))
    return True


def serve(control_fd: int, stdin=None, run=run_one, device_usable=None, release=None,
          preimport=None) -> int:
    """The warm runner loop (see the module docstring); returns the exit status.
    preimport (main's: preimport_frameworks) runs before the first request is read."""
    if preimport is not None:
        preimport()
    if stdin is None:
        stdin = sys.stdin.buffer
    if device_usable is None or release is None:
        import hfleet_runner_torch as rt  # imports no framework by itself
        device_usable = device_usable or rt.device_still_usable
        release = release or rt.release_memory
    # What a task prints on stdout reaches the worker while the task runs (it
    # is also flushed before each done line: output after it is no task's).
    try:
        sys.stdout.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):
        pass
    _log(f"serving tasks from stdin (pid {os.getpid()}, control descriptor {control_fd})")
    served = 0
    while True:
        line = stdin.readline()
        if not line:
            _log(f"end of input after {served} tasks, exiting")
            return 0
        if not line.strip():
            continue
        fatal = False
        try:
            req = lib.parse_serve_request(line)
        except lib.RequestError as exc:
            _log(f"refused a request: {exc}")
            reply = lib.control_error_line(str(exc))
        else:
            info = {}
            # The result in the done line when the worker takes it there:
            # no file to create, rename, read and remove for each task.
            _, result = run(req["task"], None if req["result_inline"] else req["result"], info)
            served += 1
            fatal, why = fatal_verdict(result, device_usable)
            if fatal:
                _log(f"fatal device error ({why}): exiting after this task so the next gets a fresh process")
            else:
                release()
            reply = _done_line(req, info.get("task_id"), fatal, why, result)
        # Everything logged for the task goes out before its done line.
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            _control_write(control_fd, reply)
        except OSError as exc:
            _log(f"cannot write to control descriptor {control_fd} ({exc}): the worker is gone, exiting")
            return 1
        if fatal:
            return 3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="hfleet_runner.py", description="hfleet reference model runner")
    ap.add_argument("--task", help="path of the task JSON written by the worker")
    ap.add_argument("--result", help="path of the result JSON to write")
    ap.add_argument("--probe", action="store_true", help="print installed frameworks as JSON and exit")
    ap.add_argument("--serve", action="store_true",
                    help="serve tasks named on stdin, one JSON line each, answering on the descriptor "
                         "HFLEET_CONTROL_FD names (a warm runner; see README.md)")
    ap.add_argument("--health", action="store_true",
                    help="run a small real computation on the device of --backend and write "
                         "{\"ok\", \"detail\", \"duration_s\"} to --result (see hfleet_health.py)")
    ap.add_argument("--backend", help="with --health: cpu, cuda, rocm, mps, openvino or qnn")
    args = ap.parse_args(argv)

    if args.health:
        if args.task or args.probe or args.serve:
            ap.error("--health takes no --task, --probe or --serve")
        if not args.backend or not args.result:
            ap.error("--health needs --backend and --result")
        import hfleet_health
        return hfleet_health.main(args.backend, args.result)

    if args.serve:
        if args.task or args.result or args.probe:
            ap.error("--serve takes no --task, --result or --probe")
        fd_text = os.environ.get("HFLEET_CONTROL_FD", "")
        try:
            fd = int(fd_text)
            os.fstat(fd)
        except (ValueError, OSError):
            ap.error(f"--serve needs HFLEET_CONTROL_FD, an open descriptor to answer on (got {fd_text!r})")
        if fd <= 2:
            ap.error(f"HFLEET_CONTROL_FD must not be stdin, stdout or stderr (got {fd})")
        os.set_inheritable(fd, False)  # not for the processes a model may start
        return serve(fd, preimport=preimport_frameworks)

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

    rc, _ = run_one(args.task, args.result)
    return rc


if __name__ == "__main__":
    sys.exit(main())
