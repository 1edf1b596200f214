# SPDX-License-Identifier: MIT
"""A benchmark's model larger than its one GPU, its weights partly in host memory.

A default config whose weights do not fit the task's GPU (more than
BENCHMARK_WEIGHT_SHARE of its memory) is otherwise skipped.  When the host
has the memory, it runs instead as transformers' device_map="auto" runs
such a model on one GPU: the blocks that do not fit stay in host memory and
are copied onto the GPU for their forward, every time, then dropped.  Every
operation still runs on the GPU; what the figures measure includes the
copies over PCIe, which for these models are most of the time.  The result
says so (metrics `offloaded_bytes`, outputs `offload`), the other modes than
eager are not measured, and generation is not timed (each token would copy
the offloaded blocks again).

Why not accelerate's dispatch_model: it places weights a checkpoint already
holds.  Here the weights are random, and initialising the offloaded ones on
the CPU would take minutes (torch's CPU initialisers are single-threaded),
so the model is built with every parameter on the meta device and each
block is materialised and initialised by the model's own _init_weights on
the GPU, then moved to (pinned) host memory if it is to be offloaded.  The
streaming itself is two hooks a block.

What this module owns:
  * how much host memory offloading may take -> host_budget (pure)
  * one offloaded model at a time on a host  -> host_lock
  * which blocks stay on the GPU             -> plan (pure)
  * the build and the hooks                  -> build (torch)

Runs in the runner process only; torch is given, never imported here, so
the pure parts are tested without it (test_runner_offload.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

GIB = 1 << 30
# Host memory left to everything else when the budget is not set: the larger
# of this and HOST_RESERVE_SHARE of the machine.
HOST_RESERVE_MIN = 16 * GIB
HOST_RESERVE_SHARE = 0.2
ENV_BUDGET = "HFLEET_BENCHMARK_OFFLOAD_GIB"
# One offloaded model at a time on a host: its budget is what the host has
# available when it starts, so two at once (benchmarks on two GPUs of one
# host) would each count the same memory.  A lock file in /dev/shm (shared
# by the runners of every service on the host), else the temporary folder.
ENV_LOCK = "HFLEET_OFFLOAD_LOCK"
LOCK_NAME = "hfleet-offload.lock"


class OffloadError(Exception):
    """The model cannot be offloaded here; str() says why."""


def meminfo(text: str) -> dict:
    """/proc/meminfo's fields in bytes (only the "kB" ones)."""
    out = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            out[name.strip()] = int(parts[0]) * 1024
    return out


def host_budget(environ, meminfo_text: str):
    """-> (bytes of host memory offloaded weights may take, where that comes
    from).  HFLEET_BENCHMARK_OFFLOAD_GIB sets it (0 turns offloading off);
    else what the host has available now less a reserve.  Raises
    ValueError on a setting that is not a number of GiB."""
    raw = environ.get(ENV_BUDGET, "")
    if raw.strip():
        try:
            gib = float(raw)
        except ValueError:
            raise ValueError(f"{ENV_BUDGET}={raw[:40]!r} is not a number of GiB") from None
        if not (0 <= gib <= 1 << 20):
            raise ValueError(f"{ENV_BUDGET}={raw[:40]!r} is out of range (0 to 1048576 GiB)")
        return int(gib * GIB), ENV_BUDGET
    info = meminfo(meminfo_text)
    avail, total = info.get("MemAvailable"), info.get("MemTotal")
    if not avail or not total:
        return 0, "the host's available memory is unknown (/proc/meminfo)"
    reserve = max(HOST_RESERVE_MIN, int(total * HOST_RESERVE_SHARE))
    return max(0, avail - reserve), (f"the host's available memory, {avail / GIB:.1f} GiB, less "
                                     f"{reserve / GIB:.1f} GiB kept for the rest")


def plan(blocks, rest_bytes: int, gpu_budget: int, host_budget_bytes: int):
    """Which blocks stay on the GPU.

    blocks: [(name, bytes)] in the model's order; rest_bytes: the weights
    outside them, which stay on the GPU.  The GPU keeps the rest and the
    first blocks that fit beside room for the largest offloaded block (it
    is copied in for its forward); the others go to host memory.
    -> (names kept, names offloaded, bytes offloaded); raises OffloadError
    when the GPU cannot hold the rest or the host the offloaded blocks."""
    if not blocks:
        raise OffloadError("the model names no blocks (transformers' _no_split_modules) that could be "
                           "offloaded one at a time")
    total = rest_bytes + sum(b for _, b in blocks)
    largest = max(b for _, b in blocks)
    room = gpu_budget - rest_bytes - largest
    if room < 0:
        raise OffloadError(f"the weights outside its blocks ({rest_bytes / GIB:.1f} GiB) and one block "
                           f"({largest / GIB:.1f} GiB) do not fit the GPU's {gpu_budget / GIB:.1f} GiB")
    kept, used = [], 0
    for name, b in blocks:
        if used + b > room:
            break
        kept.append(name)
        used += b
    offloaded = [name for name, _ in blocks[len(kept):]]
    off_bytes = total - rest_bytes - used
    if off_bytes > host_budget_bytes:
        raise OffloadError(f"{off_bytes / GIB:.1f} GiB of its {total / GIB:.1f} GiB would go to host memory, "
                           f"over the {host_budget_bytes / GIB:.1f} GiB offloading may take")
    return kept, offloaded, off_bytes


def fits(n_bytes: int, gpu_budget: int, host_budget_bytes: int) -> bool:
    """Whether a model of n_bytes of weights can be tried offloaded (the
    plan, once its blocks are known, decides)."""
    return host_budget_bytes > 0 and n_bytes <= gpu_budget + host_budget_bytes


def lock_path(environ) -> str:
    """Where the host's offload lock is: HFLEET_OFFLOAD_LOCK, else /dev/shm's
    or the temporary folder's hfleet-offload.lock."""
    if environ.get(ENV_LOCK):
        return environ[ENV_LOCK]
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else (environ.get("TMPDIR") or "/tmp")
    return os.path.join(folder, LOCK_NAME)


@contextlib.contextmanager
def host_lock(path: str, wait_s: float, log=print, clock=time.monotonic, sleep=time.sleep):
    """Holds the host's offload lock for the block; yields True, or False
    when another process held it for all of wait_s (the block then must not
    offload).  A lock file that cannot be opened is reported and not held
    (yields True): offloading then runs unguarded, as before the lock."""
    try:
        # Opened as it is first, created only when missing: an O_CREAT open
        # of a file another user made in a sticky folder such as /dev/shm is
        # refused where fs.protected_regular is set, though reading it is not.
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError as exc:
        log(f"the offload lock {path} cannot be opened ({exc}): not held")
        yield True
        return
    try:
        end = clock() + max(0.0, wait_s)
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if clock() >= end:
                    yield False
                    return
                if not waited:
                    log(f"waiting up to {wait_s:.0f}s for another model offloaded on this host ({path})")
                    waited = True
                sleep(0.5)
        yield True
    finally:
        os.close(fd)   # releases the lock with it


# --------------------------------------------------------------------------
# torch parts

@contextlib.contextmanager
def parameters_on_meta(torch):
    """Every parameter registered in the block is put on the meta device
    (its buffers are built where they are: a rotary table is computed, not
    initialised, so it must be real)."""
    nn = torch.nn
    original = nn.Module.register_parameter

    def register(self, name, param):
        original(self, name, param)
        p = self._parameters.get(name)
        if p is not None and p.device.type != "meta":
            kwargs = dict(p.__dict__)
            self._parameters[name] = type(p)(p.to("meta"), requires_grad=p.requires_grad)
            self._parameters[name].__dict__.update(kwargs)

    nn.Module.register_parameter = register
    try:
        yield
    finally:
        nn.Module.register_parameter = original


def find_blocks(model):
    """[(name, module)]: the outermost modules of a class the model names as
    not to be split (a decoder layer, a vision block), in its order."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    out = []
    inside = None
    for name, m in model.named_modules():
        if inside is not None and (name == inside or name.startswith(inside + ".")):
            continue
        if type(m).__name__ in names:
            out.append((name, m))
            inside = name
    return out


def _bytes_at(p, dtype):
    """A parameter's bytes once materialised: a floating one at dtype (the
    task's precision, which it is cast to), any other as it is."""
    return p.numel() * (dtype.itemsize if p.dtype.is_floating_point else p.element_size())


def _param_bytes(params, seen, dtype):
    """_bytes_at of the parameters not yet in seen, together."""
    n = 0
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            n += _bytes_at(p, dtype)
    return n


def build(torch, make_model, device, dtype, gpu_budget, host_budget_bytes, log=print):
    """The model built with its weights on device, but for the blocks that do
    not fit, which are in host memory and copied in for their forward.
    -> (model, description for the result's outputs, bytes offloaded)."""
    from hfleet_build import default_dtype

    with parameters_on_meta(torch), torch.device(device), default_dtype(torch, dtype):
        model = make_model()
    blocks = find_blocks(model)
    seen = set()
    sized = [(name, _param_bytes(m.parameters(), seen, dtype)) for name, m in blocks]
    rest = _param_bytes(model.parameters(), seen, dtype)
    kept, offloaded, _ = plan(sized, rest, gpu_budget, host_budget_bytes)
    by_name = dict(blocks)
    block_ids = {id(m) for _, m in blocks}
    std = float(getattr(getattr(model, "config", None), "initializer_range", 0.02) or 0.02)
    init = getattr(model, "_init_weights", None)
    done = {}   # id(meta parameter) -> its materialised parameter (tied weights stay tied)

    def materialise(modules):
        """Real parameters on device for what modules own themselves, then
        the model's initialiser over them."""
        modules = list(modules)
        for m in modules:
            for pname, p in list(m._parameters.items()):
                if p is None or p.device.type != "meta":
                    continue
                real = done.get(id(p))
                if real is None:
                    t = torch.empty(p.shape, dtype=dtype if p.dtype.is_floating_point else p.dtype, device=device)
                    # A safe value for anything _init_weights leaves alone.
                    if not t.dtype.is_floating_point or pname.endswith("bias"):
                        t.zero_()
                    elif t.dim() >= 2:
                        t.normal_(0.0, std)
                    else:
                        t.fill_(1.0)
                    real = done[id(p)] = torch.nn.Parameter(t, requires_grad=False)
                m._parameters[pname] = real
            for bname, b in list(m._buffers.items()):
                if b is not None and b.device.type not in ("meta", device.type):
                    m._buffers[bname] = b.to(device)
        if init is not None:
            with torch.no_grad():
                for m in modules:
                    init(m)

    # The weights outside the blocks first (embeddings, heads, norms), then
    # each block in turn: at most one block more than is kept is on the GPU
    # at any time.
    outside, stack = [], [model]
    while stack:
        m = stack.pop()
        if id(m) not in block_ids:
            outside.append(m)
            stack.extend(m.children())
    materialise(outside)
    for name in kept:
        materialise(by_name[name].modules())
    largest = max((_bytes_at(p, dtype) for name in offloaded for p in by_name[name].parameters()), default=0)
    arena = HostArena(torch, slab_bytes(largest))
    host_bytes = 0
    for name in offloaded:
        block = by_name[name]
        materialise(block.modules())
        _to_host(arena, block)
        host_bytes += _attach_streaming(torch, block, device)
    all_pinned = arena.pinned
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    desc = {"blocks": len(blocks), "blocks_offloaded": len(offloaded),
            "first_offloaded": offloaded[0] if offloaded else None,
            "host_bytes": host_bytes, "pinned": all_pinned,
            "gpu_weight_budget_bytes": int(gpu_budget), "host_budget_bytes": int(host_budget_bytes)}
    log(f"offloaded {len(offloaded)} of {len(blocks)} blocks ({host_bytes / GIB:.1f} GiB) to host memory"
        f"{'' if all_pinned else ' (some not pinned)'}; {len(kept)} blocks and the rest on {device}")
    return model, desc, host_bytes


class HostArena:
    """Host memory for offloaded weights, in pinned slabs the weights are
    packed into.  torch's pinned allocator rounds every allocation up to a
    power of two, so a tensor pinned by itself (a 1.1 GiB expert weight
    takes 2 GiB) could nearly double what offloading costs the host; slabs
    of a power of two waste only their tails.  Where the driver refuses to
    pin, a slab is ordinary memory (copies from it are slower and
    synchronous): .pinned says whether every slab was pinned."""

    ALIGN = 256

    def __init__(self, torch, slab_bytes):
        self.torch, self.slab_bytes = torch, slab_bytes
        self.slab, self.used, self.pinned = None, 0, True

    def put(self, tensor):
        """A host copy of tensor (on the device), in a slab."""
        torch = self.torch
        n = tensor.numel() * tensor.element_size()
        span = -(-n // self.ALIGN) * self.ALIGN
        if self.slab is None or self.used + span > self.slab.numel():
            size = max(self.slab_bytes, span)
            try:
                self.slab = torch.empty(size, dtype=torch.uint8, pin_memory=True)
            except RuntimeError:
                self.slab = torch.empty(size, dtype=torch.uint8)
                self.pinned = False
            self.used = 0
        host = self.slab[self.used:self.used + n].view(tensor.dtype).view(tensor.shape)
        self.used += span
        host.copy_(tensor)
        return host


def slab_bytes(largest: int) -> int:
    """The slab size for offloaded weights whose largest tensor has largest
    bytes: a power of two, at least 1 GiB."""
    size = GIB
    while size < largest:
        size *= 2
    return size


def _to_host(arena, block) -> None:
    """Moves block's parameters into the arena's host memory."""
    for p in block.parameters():
        if p.device.type != "cpu":
            p.data = arena.put(p.data)


def _attach_streaming(torch, block, device) -> int:
    """Hooks that copy block's parameters onto device before its forward and
    drop the copies after it.  -> the bytes each forward copies."""
    params = list({id(p): p for p in block.parameters()}.values())
    hosts = [p.data for p in params]

    def load(_module, _args):
        for p, h in zip(params, hosts):
            p.data = h.to(device, non_blocking=True)

    def drop(_module, _args, _output):
        for p, h in zip(params, hosts):
            p.data = h

    block.register_forward_pre_hook(load)
    block.register_forward_hook(drop)
    return sum(h.numel() * h.element_size() for h in hosts)


def environ_budget():
    """host_budget() of this process (the runner's environment, /proc/meminfo)."""
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as f:
            text = f.read(65536)
    except OSError:
        text = ""
    return host_budget(os.environ, text)
