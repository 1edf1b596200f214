"""Benchmark measurement of the reference runner (stdlib only, pure).

What a benchmark's figures mean, decided here so that it can be tested
without torch or a GPU (test_runner_bench.py):

  * the loop                 -> measure(): warm-up until the timings are
                                stable, the timed loop, the energy window
  * the warm-up rule         -> window_stable, WARMUP_* limits
  * statistics               -> hfleet_runner_lib.latency_summary (count,
                                mean, stdev, cv, min, max, p50/p90/p95/p99),
                                strided_samples
  * the noise flag           -> noise_threshold (HFLEET_NOISE_THRESHOLD), is_noisy
  * energy arithmetic        -> energy_metrics
  * which GPU is measured    -> task_device_uuid

measure() is given the work as callables: step() runs one synchronised
forward pass and returns its wall time in seconds; clock() is the
monotonic clock the deadline is on; an energy counter (hfleet_nvml's, or a
stand-in) has read_mj().  hfleet_runner_torch.py builds them from the model.
"""

from __future__ import annotations

import math

import hfleet_runner_lib as lib

# Raw samples kept in the result: at most this many, an evenly strided
# subset when more were measured (the statistics use all of them).
SAMPLES_MAX = 512
# Samples are rounded to this many decimals of a millisecond (0.1 us): far
# below what a timer around a synchronised forward pass resolves.
SAMPLE_DECIMALS = 4

# A figure whose cv (stdev / mean) is above this is flagged noisy.
DEFAULT_NOISE_THRESHOLD = 0.05
NOISE_ENV = "HFLEET_NOISE_THRESHOLD"

# Warm-up: after the requested passes, keep warming until the last
# WARMUP_WINDOW timings have a cv of at most WARMUP_STABLE_CV and are not
# still falling (first half's mean above the second half's by more than
# WARMUP_TREND_MAX of the window's mean), at most WARMUP_EXTRA_MAX passes
# beyond those asked for and at most WARMUP_TIME_SHARE of the time left
# before the deadline.
WARMUP_WINDOW = 8
WARMUP_STABLE_CV = 0.05
WARMUP_TREND_MAX = 0.02
WARMUP_EXTRA_MAX = 200
WARMUP_TIME_SHARE = 0.25

# NVML's energy counter moves in steps: on the H200 every 100 ms, by the
# energy of those 100 ms (docs/gpu-results.md).  So the window starts and
# ends on a step: before the timed loop the runner polls the counter until
# it moves (at most ENERGY_ALIGN_MAX_S), and after it keeps running passes
# until the counter moves again.  A timed loop shorter than
# ENERGY_MIN_WINDOW_S is extended, for the energy only, by more passes of
# the same model until the window is that long (or the deadline).
ENERGY_MIN_WINDOW_S = 1.0
ENERGY_EXTRA_MAX = 100_000
ENERGY_ALIGN_MAX_S = 0.5
ENERGY_ALIGN_MAX_READS = 20_000
ENERGY_SOURCE = "nvml"


def strided_samples(values, limit: int = SAMPLES_MAX) -> list:
    """At most limit values, in order: all of them, or an evenly strided
    subset (index floor(i * n / limit)) that starts with the first."""
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    n = len(values)
    if n <= limit:
        return list(values)
    return [values[(i * n) // limit] for i in range(limit)]


def noise_threshold(environ) -> float:
    """The cv above which a figure is noisy: HFLEET_NOISE_THRESHOLD, or 0.05.

    Raises ValueError naming the variable for a value that is not a number
    in (0, 1]."""
    raw = environ.get(NOISE_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_NOISE_THRESHOLD
    try:
        v = float(raw)
    except ValueError:
        v = float("nan")
    if not math.isfinite(v) or v <= 0 or v > 1:
        raise ValueError(f"{NOISE_ENV}={lib.one_line(raw, 60)!r} is not a fraction in (0, 1] "
                         f"(e.g. 0.05 flags a cv above 5% as noisy)")
    return v


def is_noisy(cv: float, threshold: float) -> bool:
    return cv > threshold


def window_stable(times, window: int = WARMUP_WINDOW, cv_max: float = WARMUP_STABLE_CV,
                  trend_max: float = WARMUP_TREND_MAX) -> bool:
    """Whether the last `window` timings have settled: cv at most cv_max and
    no downward trend (the first half of the window slower than the second
    by more than trend_max of the window's mean).  False with fewer timings."""
    if window < 2 or len(times) < window:
        return False
    w = [float(t) for t in times[-window:]]
    mean = sum(w) / window
    if mean <= 0:
        return False
    stdev = math.sqrt(sum((x - mean) ** 2 for x in w) / (window - 1))
    if stdev / mean > cv_max:
        return False
    half = window // 2
    first = sum(w[:half]) / half
    second = sum(w[window - half:]) / half
    return (first - second) / mean <= trend_max


def energy_metrics(start_mj: int, end_mj: int, seconds: float, items: int):
    """(metrics, "") from two readings of a total-energy counter around a
    window of `seconds` that processed `items` batch items, or (None, why)
    when the difference means nothing (the counter did not move or ran
    backwards: a reset, or a device that does not keep it)."""
    if not isinstance(start_mj, int) or not isinstance(end_mj, int):
        return None, "the energy counter gave no integer reading"
    if end_mj <= start_mj:
        return None, (f"the energy counter did not move ({start_mj} mJ before, {end_mj} mJ after "
                      f"{seconds:.3f} s)")
    if not (seconds > 0) or items <= 0:
        return None, "no time or no items in the energy window"
    joules = (end_mj - start_mj) / 1000.0
    return {
        "energy_j": joules,
        "energy_j_per_item": joules / items,
        "avg_power_w": joules / seconds,
        "energy_window_s": seconds,
        "energy_source": ENERGY_SOURCE,
    }, ""


def task_device_uuid(given, torch_uuid):
    """(uuid, "") of the GPU a task runs on (cuda:0), or (None, why).

    given is HFLEET_DEVICE_UUID (comma-separated when the task has several
    devices; cuda:0 is the first), torch_uuid what torch reports for cuda:0
    ("GPU-..." form).  Both known and different: None, never a guess."""
    first = (given or "").split(",")[0].strip() or None
    torch_uuid = (torch_uuid or "").strip() or None
    if first and torch_uuid and first.lower() != torch_uuid.lower():
        return None, (f"the device torch runs on ({torch_uuid}) is not the one the worker gave "
                      f"({first}); no energy is read")
    uuid = torch_uuid or first
    if not uuid:
        return None, "the task's device has no known UUID"
    return uuid, ""


class Plan:
    """What one benchmark asks: passes, items per pass, time limit."""

    def __init__(self, warmup: int, iterations: int, batch: int, deadline: float,
                 noise: float = DEFAULT_NOISE_THRESHOLD):
        self.warmup = warmup
        self.iterations = iterations
        self.batch = batch
        self.deadline = deadline
        self.noise = noise


def _warm_up(step, clock, plan: Plan):
    """Runs the requested passes, then more until stable or a cap.

    Returns (passes run, stable).  A request of 0 is a cold measurement,
    honoured: nothing runs and stable is False."""
    if plan.warmup == 0:
        return 0, False
    times = []
    start = clock()
    for _ in range(plan.warmup):
        times.append(step())
    if window_stable(times):
        return len(times), True
    stop_at = start + max(0.0, plan.deadline - start) * WARMUP_TIME_SHARE
    cap = plan.warmup + WARMUP_EXTRA_MAX
    while len(times) < cap and clock() < stop_at:
        times.append(step())
        if window_stable(times):
            return len(times), True
    return len(times), False


def _await_step(energy, clock, last: int, step=None, deadline: float = math.inf):
    """Reads the counter until it differs from last, running step() between
    reads when given; at most ENERGY_ALIGN_MAX_S (and ENERGY_ALIGN_MAX_READS
    reads).  Returns (the last reading, passes run)."""
    t = clock()
    passes = 0
    for _ in range(ENERGY_ALIGN_MAX_READS):
        v = energy.read_mj()
        now = clock()
        if v != last or now - t >= ENERGY_ALIGN_MAX_S or now >= deadline:
            return v, passes
        if step is not None:
            step()
            passes += 1
    return v, passes


def measure(step, clock, plan: Plan, energy=None, log=None):
    """Runs one benchmark; returns (metrics, notes).

    metrics holds latency_ms, latency_samples_ms, throughput_items_s,
    iterations (iterations_requested when the deadline cut the loop short),
    warmup, warmup_requested, warmup_stable, noise_threshold, noisy and,
    where energy was measured, the energy_* keys.  notes (for outputs) says
    why energy is absent, when it is."""
    notes = {}
    warmup, stable = _warm_up(step, clock, plan)
    if log and warmup > plan.warmup:
        log(f"warm-up: {warmup} passes ({plan.warmup} asked), "
            f"{'stable' if stable else 'not stable at the cap'}")

    start_mj = None
    if energy is not None:
        try:
            start_mj, _ = _await_step(energy, clock, energy.read_mj())
        except Exception as exc:  # noqa: BLE001 - energy is optional, never fatal
            notes["energy"] = f"not measured: reading the energy counter failed: {lib.one_line(exc, 200)}"
    t0 = clock()
    samples = []
    for _ in range(plan.iterations):
        if samples and clock() > plan.deadline:
            break
        samples.append(step())
    passes = len(samples)
    energy_m = None
    if start_mj is not None:
        while clock() - t0 < ENERGY_MIN_WINDOW_S and passes - len(samples) < ENERGY_EXTRA_MAX \
                and clock() < plan.deadline:
            step()
            passes += 1
        try:
            end_mj, more = _await_step(energy, clock, energy.read_mj(), step, plan.deadline)
            passes += more
        except Exception as exc:  # noqa: BLE001
            end_mj = None
            notes["energy"] = f"not measured: reading the energy counter failed: {lib.one_line(exc, 200)}"
        if end_mj is not None:
            energy_m, why = energy_metrics(start_mj, end_mj, clock() - t0, passes * plan.batch)
            if energy_m is None:
                notes["energy"] = "not measured: " + why
            else:
                energy_m["energy_iterations"] = passes

    stats = lib.latency_summary(samples)
    m = {
        "latency_ms": stats,
        "latency_samples_ms": [round(s * 1000.0, SAMPLE_DECIMALS) for s in strided_samples(samples)],
        "throughput_items_s": lib.throughput_items_s(plan.batch, stats["mean"] / 1000.0),
        "iterations": len(samples),
        "warmup": warmup,
        "warmup_requested": plan.warmup,
        "warmup_stable": stable,
        "noise_threshold": plan.noise,
        "noisy": is_noisy(stats["cv"], plan.noise),
    }
    if len(samples) < plan.iterations:
        m["iterations_requested"] = plan.iterations
    if energy_m is not None:
        m.update(energy_m)
    return m, notes
