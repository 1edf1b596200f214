"""Benchmark execution modes of the reference runner: eager, cuda-graph, compile.

What a benchmark task's "mode" means and how each mode's forward pass is
made into the step() that hfleet_bench.measure() times, so that every mode
is timed by the same loop, warm-up rule and statistics:

  * the names and the task field  -> MODES, task_mode (absent: eager)
  * skips decided before torch    -> precheck_skip_reason (cuda-graph needs a
                                     CUDA or ROCm device)
  * eager                         -> eager_step: a synchronised model(**inputs)
  * cuda-graph                    -> capture_graph: warm-up on a side stream,
                                     torch.cuda.CUDAGraph capture of the forward
                                     with the task's (static) input tensors;
                                     the step is a synchronised graph.replay()
  * compile                       -> compile_model: torch.compile (COMPILE_MODE
                                     or HFLEET_COMPILE_MODE), the first calls
                                     absorb compilation, timed as compile_time_s
  * a mode that cannot be set up  -> ModeSkip, whose text is the skip reason
                                     ("cuda-graph capture failed: <Type: message>")
  * one call for the runner       -> measure_mode

A mode that cannot be set up gives no figure at all: never an eager figure
under another mode's label.  Every figure's metrics carry "mode" (what was
measured; the coordinator stores what the runner says it measured) and
cuda-graph's carry capture_time_s, compile's compile_time_s.

Pure Python until a function is given torch: the names, the parsing and
the skip reasons are tested without torch (test_runner_modes.py).
"""

from __future__ import annotations

import time

from hfleet_runner_lib import BENCH_MODES as MODES

DEFAULT_MODE = "eager"
# Backends whose torch device is torch.cuda (ROCm's HIP graphs are
# torch.cuda.CUDAGraph too).
GRAPH_BACKENDS = ("cuda", "rocm")

# torch.compile's mode.  "default" (Inductor's fused kernels, no CUDA
# graphs): the compile figure is what kernel fusion gives on its own, apart
# from cuda-graph's figure (launch overhead removed), and it compiles in
# seconds to a minute, where max-autotune benchmarks every GEMM shape and
# can take many minutes of a task's timeout.  HFLEET_COMPILE_MODE picks
# another of COMPILE_MODES.
COMPILE_MODE = "default"
COMPILE_MODE_ENV = "HFLEET_COMPILE_MODE"
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# The calls that absorb compilation (the first compiles; the second catches
# a recompilation for a guard the first call set up).
COMPILE_WARM_CALLS = 2
# Passes run on a side stream before a capture (lazy initialisation, cuBLAS
# workspaces, autotuning caches) so that the capture records steady state.
GRAPH_WARM_PASSES = 3
REASON_MAX = 300


class ModeError(ValueError):
    """A task's mode field is not one this runner knows."""


class ModeSkip(Exception):
    """The mode cannot be measured for this model; str() is the skip reason."""


def task_mode(task: dict) -> str:
    """The task's mode: "eager" when absent (an older worker) or null."""
    m = task.get("mode")
    if m is None:
        return DEFAULT_MODE
    if not isinstance(m, str) or m not in MODES:
        raise ModeError(f"task field 'mode' must be one of {list(MODES)}, got {str(m)[:40]!r}")
    return m


def compile_mode(environ) -> str:
    """torch.compile's mode: HFLEET_COMPILE_MODE or COMPILE_MODE; ValueError on a bad name."""
    v = environ.get(COMPILE_MODE_ENV, "").strip()
    if not v:
        return COMPILE_MODE
    if v not in COMPILE_MODES:
        raise ValueError(f"{COMPILE_MODE_ENV}={v[:40]!r} is not one of {list(COMPILE_MODES)}")
    return v


def precheck_skip_reason(mode: str, backend: str, kind: str):
    """The skip reason of a mode this backend cannot run, decided before
    torch is imported; None when it may run.  Test tasks ignore the mode."""
    if kind != "benchmark":
        return None
    if mode == "cuda-graph" and backend not in GRAPH_BACKENDS:
        return f"cuda-graph needs a CUDA or ROCm device; this task runs on {backend}"
    return None


def failure_reason(what: str, exc: BaseException) -> str:
    """'<what> failed: <ExceptionType: message>', on one line and bounded."""
    msg = " ".join(str(exc).split())
    text = f"{what} failed: {type(exc).__name__}: {msg}" if msg else f"{what} failed: {type(exc).__name__}"
    return text if len(text) <= REASON_MAX else text[:REASON_MAX - 3] + "..."


def eager_step(torch, model, inputs, sync):
    """step() of eager: one synchronised forward pass, its wall time in seconds."""
    def step():
        sync()
        t0 = time.perf_counter()
        out = model(**inputs)
        sync()
        dt = time.perf_counter() - t0
        del out
        return dt
    return step


def capture_graph(torch, model, inputs, warm_passes: int = GRAPH_WARM_PASSES):
    """Captures model(**inputs) in a torch.cuda.CUDAGraph.

    Returns (graph, outputs, capture_time_s): the outputs are the graph's
    static outputs (kept alive as long as the graph is replayed).  Raises
    ModeSkip with the reason when a warm-up pass or the capture fails."""
    cuda = torch.cuda
    try:
        side = cuda.Stream()
        side.wait_stream(cuda.current_stream())
        with cuda.stream(side):
            for _ in range(warm_passes):
                out = model(**inputs)
                del out
        cuda.current_stream().wait_stream(side)
        cuda.synchronize()
        graph = cuda.CUDAGraph()
        t0 = time.perf_counter()
        with cuda.graph(graph):
            static_out = model(**inputs)
        cuda.synchronize()
        capture_s = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - any failure is the reason the mode has no figure
        try:
            cuda.synchronize()
        except Exception:  # noqa: BLE001 - the device check between tasks decides
            pass
        raise ModeSkip(failure_reason("cuda-graph capture", exc)) from exc
    return graph, static_out, capture_s


def graph_step(torch, graph, sync):
    """step() of cuda-graph: one synchronised replay."""
    def step():
        sync()
        t0 = time.perf_counter()
        graph.replay()
        sync()
        return time.perf_counter() - t0
    return step


def compile_model(torch, model, inputs, sync, deadline: float, mode: str = COMPILE_MODE,
                  clock=time.perf_counter):
    """torch.compile(model) and the calls that compile it.

    Returns (compiled model, compile_time_s).  Raises ModeSkip where
    compiling fails or ends past the deadline (torch cannot stop a
    compilation half way; the task's timeout bounds a compile that hangs)."""
    t0 = clock()
    try:
        compiled = torch.compile(model, mode=None if mode == "default" else mode, dynamic=False)
        for _ in range(COMPILE_WARM_CALLS):
            out = compiled(**inputs)
            del out
            sync()
            if clock() > deadline:
                raise ModeSkip(f"compile took {clock() - t0:.1f}s and ran past the task's deadline")
    except ModeSkip:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ModeSkip(failure_reason(f"torch.compile (mode {mode})", exc)) from exc
    return compiled, clock() - t0


def reset_compiled(torch):
    """Drops what torch.compile cached, so a warm runner's next task starts clean."""
    try:
        torch._dynamo.reset()
    except Exception:  # noqa: BLE001 - a torch without dynamo compiled nothing
        pass


def measure_mode(torch, model, inputs, device, mode, plan, bench, sync, energy=None, log=None,
                 environ=None):
    """Measures one benchmark in `mode` with bench.measure (hfleet_bench).

    Returns (metrics, notes, skip): metrics has the figures, "mode" and the
    mode's set-up time; skip is None, or the reason the mode has no figure
    (metrics then holds "mode" alone)."""
    metrics = {"mode": mode}
    if mode == "eager":
        figures, notes = bench.measure(eager_step(torch, model, inputs, sync), time.perf_counter, plan,
                                       energy=energy, log=log)
        metrics.update(figures)
        return metrics, notes, None
    if mode == "cuda-graph":
        if getattr(device, "type", device) != "cuda":
            return metrics, {}, f"cuda-graph needs a CUDA or ROCm device; this task runs on {getattr(device, 'type', device)}"
        try:
            graph, static_out, capture_s = capture_graph(torch, model, inputs)
        except ModeSkip as exc:
            return metrics, {}, str(exc)
        if log:
            log(f"cuda-graph: captured in {capture_s:.3f}s")
        try:
            figures, notes = bench.measure(graph_step(torch, graph, sync), time.perf_counter, plan,
                                           energy=energy, log=log)
        finally:
            del graph, static_out
            sync()
        metrics.update(figures)
        metrics["capture_time_s"] = capture_s
        return metrics, notes, None
    if mode == "compile":
        try:
            cmode = compile_mode(environ if environ is not None else {})
        except ValueError as exc:
            return metrics, {}, f"invalid setting: {exc}"
        try:
            compiled, compile_s = compile_model(torch, model, inputs, sync, plan.deadline, cmode)
        except ModeSkip as exc:
            reset_compiled(torch)
            return metrics, {}, str(exc)
        if log:
            log(f"compile ({cmode}): {compile_s:.1f}s")
        try:
            figures, notes = bench.measure(eager_step(torch, compiled, inputs, sync), time.perf_counter, plan,
                                           energy=energy, log=log)
        finally:
            del compiled
            reset_compiled(torch)
        metrics.update(figures)
        metrics["compile_time_s"] = compile_s
        notes["compile_mode"] = cmode
        return metrics, notes, None
    raise ModeError(f"unknown mode {mode!r}")
