"""hfleet device health check: a small real computation on one device.

  python3 hfleet_runner.py --health --backend BACKEND --result FILE

The worker runs this as a fresh process in the device's environment (the
same visibility variables a task of the device gets, so the device is
device 0 here) at registration, periodically and when the coordinator asks
about a quarantined device.  It writes one JSON object atomically to FILE:

  {"ok": bool, "detail": str, "duration_s": float, "backend": str,
   "device_name": str|null, "elapsed_ms": float|null}

With torch: a 512x512 fp32 matmul on the device compared with the same on
the CPU (relative tolerance), then a device synchronisation.  Without
torch: for the cpu backend a pure-Python computation checked against its
closed form (so the check means something where torch is absent); for an
accelerator the check fails, saying torch is not installed.
"""

from __future__ import annotations

import json
import os
import time

BACKENDS = ("cpu", "cuda", "rocm", "mps", "openvino", "qnn")
MATMUL_N = 512
RTOL = 1e-3


def python_check(n: int = 200_000) -> tuple[bool, str]:
    """Sum of squares and an integer matrix product, checked against closed forms."""
    acc = 0
    for i in range(n):
        acc += i * i
    if acc != (n - 1) * n * (2 * n - 1) // 6:
        return False, f"sum of squares of {n} numbers is wrong: {acc}"
    m = 48
    a = [[(i * m + j) % 7 for j in range(m)] for i in range(m)]
    ident = [[1 if i == j else 0 for j in range(m)] for i in range(m)]
    prod = [[sum(a[i][k] * ident[k][j] for k in range(m)) for j in range(m)] for i in range(m)]
    if prod != a:
        return False, f"a {m}x{m} integer matrix times the identity differs from itself"
    return True, f"pure-Python check: sum of squares of {n} numbers and a {m}x{m} matrix product are correct"


def _torch_device(torch, backend: str):
    if backend == "cpu":
        return torch.device("cpu"), "cpu"
    if backend in ("cuda", "rocm"):  # ROCm builds of torch use the cuda device type
        if not torch.cuda.is_available():
            raise RuntimeError(f"torch {torch.__version__} sees no {backend} device")
        return torch.device("cuda", 0), torch.cuda.get_device_name(0)
    if backend == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise RuntimeError(f"torch {torch.__version__} has no usable MPS device")
        return torch.device("mps"), "Apple MPS"
    raise RuntimeError(f"no torch health check for backend {backend!r}")


def _sync(torch, dev) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


def torch_check(torch, backend: str, n: int = MATMUL_N) -> dict:
    """A fp32 n x n matmul on the device compared with the CPU's."""
    dev, name = _torch_device(torch, backend)
    gen = torch.Generator().manual_seed(1234)
    a = torch.rand(n, n, generator=gen, dtype=torch.float32)
    b = torch.rand(n, n, generator=gen, dtype=torch.float32)
    expect = a @ b
    t0 = time.perf_counter()
    got = (a.to(dev) @ b.to(dev))
    _sync(torch, dev)
    got = got.to("cpu")
    elapsed_ms = (time.perf_counter() - t0) * 1000.0
    err = float(((got - expect).abs().max() / expect.abs().max()).item())
    ok = bool(torch.isfinite(got).all().item()) and err <= RTOL
    detail = (f"{n}x{n} fp32 matmul on {name}: max relative difference from the CPU {err:.2e}"
              f" ({'within' if ok else 'beyond'} {RTOL:g}), {elapsed_ms:.1f} ms")
    return {"ok": ok, "detail": detail, "device_name": name, "elapsed_ms": elapsed_ms}


def run_check(backend: str, import_torch=None) -> dict:
    """The health result for backend; never raises."""
    t0 = time.perf_counter()
    out = {"ok": False, "detail": "", "backend": backend, "device_name": None, "elapsed_ms": None}
    try:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r} (valid: {', '.join(BACKENDS)})")
        torch = None
        try:
            torch = import_torch() if import_torch else __import__("torch")
        except ImportError:
            torch = None
        if backend in ("openvino", "qnn"):
            # No torch path to these devices: the Python check proves the
            # runner's environment works, not the accelerator.
            ok, detail = python_check()
            out.update(ok=ok, detail=f"{detail} (no device computation for {backend} yet)")
        elif torch is None:
            if backend == "cpu":
                ok, detail = python_check()
                out.update(ok=ok, detail=detail + " (torch is not installed)")
            else:
                out["detail"] = f"torch is not installed: cannot run a computation on the {backend} device"
        else:
            out.update(torch_check(torch, backend))
    except Exception as exc:  # noqa: BLE001 - a failed check is a result, not a crash
        text = " ".join(str(exc).split()) or type(exc).__name__
        out.update(ok=False, detail=f"{type(exc).__name__}: {text}"[:500])
    out["duration_s"] = time.perf_counter() - t0
    return out


def write_result_atomic(path: str, result: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(backend: str, result_path: str) -> int:
    """What --health does: 0 when the result was written (whatever it says), 1 otherwise."""
    result = run_check(backend)
    try:
        write_result_atomic(result_path, result)
    except OSError as exc:
        print(f"hfleet-runner: cannot write the health result to {result_path}: {exc}", flush=True)
        return 1
    print(f"hfleet-runner: health check {'passed' if result['ok'] else 'failed'}: {result['detail']}",
          flush=True)
    return 0
