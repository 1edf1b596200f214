#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The runner processes of one hf-worker, seen from /proc (tests/gpu/run-multi-gpu.sh).

Owns two things the multi-GPU run needs from outside the worker:
  runner_procs.py list WORKER_PID
      one JSON line per descendant of WORKER_PID that the worker gave a
      device (HFLEET_DEVICE_INDICES in its environment: warm runners, task
      runners, health checks): pid, the device variables, and the multicast
      variables NCCL_NVLS_ENABLE, TORCH_SYMM_MEM_DISABLE_MULTICAST,
      NVSHMEM_DISABLE_NVLS as that process has them;
  runner_procs.py kill WORKER_PID INDEX SECONDS
      for SECONDS, every 0.3 s, SIGKILLs every such descendant whose
      HFLEET_DEVICE_INDICES includes INDEX and whose CUDA_VISIBLE_DEVICES is
      not empty (a GPU's runner, never the CPU's), one line per kill: the
      device made unusable.
Only descendants of WORKER_PID are ever looked at or signalled.
"""
import json
import os
import signal
import sys
import time

MULTICAST = ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS")
DEVICE_VARS = ("HFLEET_DEVICE_INDICES", "CUDA_VISIBLE_DEVICES", "HFLEET_DEVICE_UUID")


def parent_of(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name is in parentheses and may hold anything: split after it.
    rest = stat[stat.rfind(")") + 2:].split()
    return int(rest[1]) if len(rest) > 1 else None


def descendants(root):
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            ppid = parent_of(int(name))
            if ppid is not None:
                parents[int(name)] = ppid
    out = []
    for pid in parents:
        p, hops = pid, 0
        while p in parents and p != root and hops < 64:
            p, hops = parents[p], hops + 1
        if p == root and pid != root:
            out.append(pid)
    return sorted(out)


def environ(pid):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


def runners(root):
    for pid in descendants(root):
        env = environ(pid)
        if env is None or "HFLEET_DEVICE_INDICES" not in env:
            continue
        row = {"pid": pid}
        for var in DEVICE_VARS + MULTICAST:
            row[var] = env.get(var)
        yield row


def main(argv):
    if len(argv) == 3 and argv[1] == "list":
        for row in runners(int(argv[2])):
            print(json.dumps(row, sort_keys=True))
        return 0
    if len(argv) == 5 and argv[1] == "kill":
        root, index, seconds = int(argv[2]), argv[3], float(argv[4])
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for row in runners(root):
                if index in (row["HFLEET_DEVICE_INDICES"] or "").split(",") and row["CUDA_VISIBLE_DEVICES"]:
                    try:
                        os.kill(row["pid"], signal.SIGKILL)
                        print("%.1f killed pid %d (devices %s)" % (time.time(), row["pid"], row["HFLEET_DEVICE_INDICES"]),
                              flush=True)
                    except OSError:
                        pass
            time.sleep(0.3)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
