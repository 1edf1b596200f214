# SPDX-License-Identifier: MIT
"""A model split across the several GPUs one task was given (issue 16).

A task of `hfctl submit --devices-per-task N` sees exactly its N devices:
hf-worker sets CUDA_VISIBLE_DEVICES (HIP_VISIBLE_DEVICES on ROCm) to them,
so torch numbers them 0 .. N-1.  Such a task builds its model on the CPU,
casts it to the task's precision there, and spreads it over the N devices
with accelerate's balanced device map: every device gets about the same
share of the weights, a block that transformers marks as not to be cut
(`_no_split_modules`: a decoder layer, say) stays whole on one device, and
hooks move each activation to the device of the next block.  That is
pipeline-style model parallelism, one device busy at a time, as
`device_map="auto"` does for a model too big for one GPU: the benchmark of
such a task measures what a user of device_map gets.

What this module owns:
  * how many devices the task has           -> task_device_count
  * the split                               -> dispatch (imports accelerate)
  * synchronising and reading every device  -> synchronize (one device or
                                               all), reset_peak_memory,
                                               peak_memory
  * what the result says about the split    -> describe_device_map (pure:
                                               bounded, whatever the model)

torch and accelerate are given or imported lazily, so the pure parts are
tested without them (test_runner_multidevice.py).
"""

from __future__ import annotations

# describe_device_map names at most this many spans of consecutive modules
# per device: the result stays small for a model of thousands of modules.
SPANS_MAX = 4
NAME_MAX = 120


class SplitError(Exception):
    """The model cannot be split across the task's devices; str() says why."""


def task_device_count(torch, backend: str) -> int:
    """The devices torch sees for a CUDA or ROCm task (1 for any other)."""
    if backend not in ("cuda", "rocm"):
        return 1
    try:
        return max(1, int(torch.cuda.device_count()))
    except Exception:  # noqa: BLE001 - resolve_device already said whether CUDA works
        return 1


def _device_key(d) -> str:
    """accelerate's device map values: an int (a GPU index), "cpu" or "disk"."""
    if isinstance(d, bool):
        return str(d)
    if isinstance(d, int):
        return f"cuda:{d}"
    return str(d)[:NAME_MAX]


def describe_device_map(device_map: dict) -> dict:
    """{"devices": {device: {"modules": n, "spans": ["first..last", ...]}}}:
    which modules went where, in the model's order, bounded in size."""
    out: dict = {}
    prev_key = None
    for name, dev in device_map.items():
        key = _device_key(dev)
        entry = out.setdefault(key, {"modules": 0, "spans": [], "more_spans": 0})
        entry["modules"] += 1
        label = (str(name) or "(the whole model)")[:NAME_MAX]
        if key != prev_key:
            if len(entry["spans"]) < SPANS_MAX:
                entry["spans"].append([label, label])
            else:
                entry["more_spans"] += 1
        elif entry["more_spans"] == 0 and entry["spans"]:
            entry["spans"][-1][1] = label
        prev_key = key
    for entry in out.values():
        entry["spans"] = [a if a == b else f"{a} .. {b}" for a, b in entry["spans"]]
        if not entry["more_spans"]:
            del entry["more_spans"]
    return {"devices": out}


def dispatch(torch, model, n_devices: int, dtype, log=print) -> dict:
    """Spreads model (on the CPU, already in dtype) over cuda:0 .. n-1.

    Returns accelerate's device map.  Raises SplitError where accelerate is
    missing, or where the map would leave a module on the CPU or disk (the
    devices cannot hold the model: a figure with part of the model on the
    CPU would not be a GPU figure)."""
    try:
        from accelerate import dispatch_model, infer_auto_device_map
        from accelerate.utils import get_balanced_memory
    except ImportError as exc:
        raise SplitError(f"splitting a model across {n_devices} devices needs accelerate, "
                         f"which does not import here: {exc}") from exc
    no_split = list(getattr(model, "_no_split_modules", None) or [])
    max_memory = get_balanced_memory(model, dtype=dtype, no_split_module_classes=no_split,
                                     max_memory={i: torch.cuda.mem_get_info(i)[0] for i in range(n_devices)})
    device_map = infer_auto_device_map(model, max_memory=max_memory, no_split_module_classes=no_split,
                                       dtype=dtype)
    off = sorted({str(d) for d in device_map.values() if not isinstance(d, int) or isinstance(d, bool)})
    if off:
        raise SplitError(f"the model does not fit the task's {n_devices} devices: accelerate's device map "
                         f"puts part of it on {', '.join(off)}")
    used = sorted(set(device_map.values()))
    if len(used) < n_devices:
        log(f"the model went to {len(used)} of the task's {n_devices} devices "
            f"(its blocks are fewer, or one device holds it)")
    dispatch_model(model, device_map=device_map)
    return device_map


def synchronize_all(torch, n_devices: int) -> None:
    for i in range(n_devices):
        torch.cuda.synchronize(i)


def synchronize(torch, device) -> None:
    """Waits for the work queued on the task's device, or on every one of
    its devices when its model is split across several."""
    if device.type == "cuda":
        n = torch.cuda.device_count()
        if n > 1:
            synchronize_all(torch, n)
        else:
            torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


def reset_peak_memory(torch, n_devices: int) -> None:
    for i in range(n_devices):
        torch.cuda.reset_peak_memory_stats(i)


def peak_memory(torch, n_devices: int) -> list:
    """Each device's peak of allocated memory since the reset, in bytes."""
    return [int(torch.cuda.max_memory_allocated(i)) for i in range(n_devices)]
