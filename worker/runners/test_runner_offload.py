"""Unit tests of a benchmark's model offloaded partly to host memory
(hfleet_offload.py) without torch or a GPU (stdlib unittest): the host
memory offloading may take, which blocks stay on the GPU, and when the
runner offloads a benchmark (offload_choice).  The build
and its hooks are tested with torch on a GPU (test_runner_torch.TestOffload).

  python3 -m unittest discover -s worker/runners -p 'test_runner_offload.py' -v
"""

from __future__ import annotations

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import hfleet_offload as off  # noqa: E402

GIB = off.GIB
MEMINFO_128 = """MemTotal:       131072000 kB
MemFree:         2000000 kB
MemAvailable:   125829120 kB
Buffers:          100 kB
HugePages_Total:       0
"""


class TestHostBudget(unittest.TestCase):
    def test_meminfo_reads_kilobyte_fields_only(self):
        info = off.meminfo(MEMINFO_128)
        self.assertEqual(info["MemTotal"], 131072000 * 1024)
        self.assertEqual(info["MemAvailable"], 125829120 * 1024)
        self.assertNotIn("HugePages_Total", info)

    def test_default_is_available_memory_less_a_reserve(self):
        budget, why = off.host_budget({}, MEMINFO_128)
        total, avail = 131072000 * 1024, 125829120 * 1024
        self.assertEqual(budget, avail - int(total * off.HOST_RESERVE_SHARE))
        self.assertIn("available memory", why)

    def test_small_host_keeps_the_minimum_reserve(self):
        text = "MemTotal: 8388608 kB\nMemAvailable: 7340032 kB\n"   # 8 GiB, 7 available
        self.assertEqual(off.host_budget({}, text)[0], 0)

    def test_setting_wins_and_zero_turns_it_off(self):
        self.assertEqual(off.host_budget({off.ENV_BUDGET: "40"}, MEMINFO_128), (40 * GIB, off.ENV_BUDGET))
        self.assertEqual(off.host_budget({off.ENV_BUDGET: "0"}, MEMINFO_128)[0], 0)
        self.assertEqual(off.host_budget({off.ENV_BUDGET: "0.5"}, "")[0], GIB // 2)

    def test_bad_settings_are_refused_with_the_name(self):
        for bad in ("lots", "-1", "nan", "1e30", "inf"):
            with self.assertRaises(ValueError) as cm:
                off.host_budget({off.ENV_BUDGET: bad}, MEMINFO_128)
            self.assertIn(off.ENV_BUDGET, str(cm.exception))

    def test_unknown_memory_offloads_nothing(self):
        budget, why = off.host_budget({}, "garbage\n")
        self.assertEqual(budget, 0)
        self.assertIn("unknown", why)


class TestPlan(unittest.TestCase):
    BLOCKS = [(f"model.layers.{i}", 4 * GIB) for i in range(10)]

    def test_first_blocks_stay_and_room_is_left_for_one_copy(self):
        # 40 GiB of blocks + 6 of the rest on a 30 GiB budget: the rest (6)
        # and a block's copy (4) leave 20, five blocks.
        kept, offloaded, n = off.plan(self.BLOCKS, 6 * GIB, 30 * GIB, 100 * GIB)
        self.assertEqual(kept, [f"model.layers.{i}" for i in range(5)])
        self.assertEqual(offloaded, [f"model.layers.{i}" for i in range(5, 10)])
        self.assertEqual(n, 20 * GIB)

    def test_everything_fitting_offloads_nothing(self):
        kept, offloaded, n = off.plan(self.BLOCKS, GIB, 100 * GIB, 0)
        self.assertEqual((len(kept), offloaded, n), (10, [], 0))

    def test_host_too_small(self):
        with self.assertRaises(off.OffloadError) as cm:
            off.plan(self.BLOCKS, 6 * GIB, 30 * GIB, 19 * GIB)
        self.assertIn("20.0 GiB of its 46.0 GiB", str(cm.exception))

    def test_rest_too_large_for_the_gpu(self):
        with self.assertRaises(off.OffloadError) as cm:
            off.plan(self.BLOCKS, 28 * GIB, 30 * GIB, 1000 * GIB)
        self.assertIn("outside its blocks", str(cm.exception))

    def test_no_blocks(self):
        with self.assertRaises(off.OffloadError) as cm:
            off.plan([], GIB, 30 * GIB, 100 * GIB)
        self.assertIn("_no_split_modules", str(cm.exception))

    def test_uneven_blocks_stop_at_the_first_that_does_not_fit(self):
        blocks = [("a", GIB), ("b", 8 * GIB), ("c", GIB)]
        kept, offloaded, n = off.plan(blocks, 0, 10 * GIB, 100 * GIB)
        # room = 10 - 8 (the largest) = 2: a fits, b does not; c follows b out
        self.assertEqual((kept, offloaded, n), (["a"], ["b", "c"], 9 * GIB))

    def test_fits(self):
        self.assertTrue(off.fits(100 * GIB, 60 * GIB, 40 * GIB))
        self.assertFalse(off.fits(101 * GIB, 60 * GIB, 40 * GIB))
        self.assertFalse(off.fits(GIB, 60 * GIB, 0))


class TestHostLock(unittest.TestCase):
    """One offloaded model at a time on a host: a second waits, then gives up."""

    def setUp(self):
        import tempfile
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, off.LOCK_NAME)

    def tearDown(self):
        self.dir.cleanup()

    def test_a_second_holder_waits_then_gives_up(self):
        logs, now = [], [0.0]

        def sleep(s):
            now[0] += s

        with off.host_lock(self.path, 10, log=logs.append) as first:
            self.assertTrue(first)
            with off.host_lock(self.path, 3, log=logs.append, clock=lambda: now[0], sleep=sleep) as second:
                self.assertFalse(second)
            self.assertGreaterEqual(now[0], 3.0)
            self.assertIn("waiting up to 3s", logs[0])
        # released with the first: the next takes it at once
        with off.host_lock(self.path, 0) as again:
            self.assertTrue(again)

    def test_an_unopenable_lock_is_not_held(self):
        logs = []
        with off.host_lock(os.path.join(self.path, "no", "such"), 0, log=logs.append) as held:
            self.assertTrue(held)
        self.assertIn("cannot be opened", logs[0])

    def test_where_the_lock_is(self):
        self.assertEqual(off.lock_path({off.ENV_LOCK: "/run/x.lock"}), "/run/x.lock")
        self.assertTrue(off.lock_path({}).endswith("/" + off.LOCK_NAME))


class _Elem:
    def __init__(self, size):
        self.size = size

    def element_size(self):
        return self.size


class _FakeTorch:
    """What offload_choice asks of torch: an element's size at the task's
    dtype (here the dtype is the size), and memory to free."""
    def __init__(self):
        import types
        self.cuda = types.SimpleNamespace(empty_cache=lambda: None)

    def tensor(self, _values, dtype):
        return _Elem(dtype)


class TestOffloadChoice(unittest.TestCase):
    """hfleet_runner_torch.offload_choice: when a benchmark over its device's
    limit is built with blocks in host memory, and the reason when not."""

    def setUp(self):
        import types
        import hfleet_runner_torch as rt
        self.rt = rt
        self.ctx = {"torch": _FakeTorch(), "device": types.SimpleNamespace(type="cuda"), "dtype": 2,
                    "n_devices": 1}
        self.env = {"device_memory_bytes": 80 * GIB}   # 64 GiB of weights on the GPU
        self.task = {"precision": "fp16"}
        self.saved = os.environ.get(off.ENV_BUDGET)
        os.environ[off.ENV_BUDGET] = "100"

    def tearDown(self):
        if self.saved is None:
            os.environ.pop(off.ENV_BUDGET, None)
        else:
            os.environ[off.ENV_BUDGET] = self.saved

    def choice(self, n_params, source="80% of the device memory"):
        return self.rt.offload_choice(self.ctx, self.env, self.task, n_params, source)

    def test_a_model_that_fits_gpu_and_host_is_offloaded(self):
        budgets, why = self.choice(80_000_000_000)   # 149 GiB at fp16: 64 + 100 hold it
        self.assertIsNone(why)
        self.assertEqual(budgets, (int(80 * GIB * 0.8), 100 * GIB))

    def test_too_large_for_both(self):
        budgets, why = self.choice(90_000_000_000)   # 167.6 GiB
        self.assertIsNone(budgets)
        self.assertIn("167.6 GiB of weights do not fit 64.0 GiB of the device and 100.0 GiB of host memory", why)
        self.assertIn(off.ENV_BUDGET, why)

    def test_what_is_never_offloaded(self):
        import types
        self.assertIn("HFLEET_MAX_BENCHMARK_PARAMS", self.choice(1, "HFLEET_MAX_BENCHMARK_PARAMS")[1])
        self.task["precision"] = "int8"
        self.assertIn("int8 is not offloaded", self.choice(1)[1])
        self.task["precision"] = "fp16"
        self.ctx["n_devices"] = 2
        self.assertIn("one CUDA device", self.choice(1)[1])
        self.ctx["n_devices"], self.ctx["device"] = 1, types.SimpleNamespace(type="mps")
        self.assertIn("one CUDA device", self.choice(1)[1])

    def test_a_bad_budget_is_the_reason(self):
        os.environ[off.ENV_BUDGET] = "lots"
        budgets, why = self.choice(1)
        self.assertIsNone(budgets)
        self.assertIn(f"{off.ENV_BUDGET}='lots' is not a number of GiB", why)
        os.environ[off.ENV_BUDGET] = "0"
        self.assertIsNone(self.choice(1)[0])



class TestHostCacheEmptied(unittest.TestCase):
    """hfleet_runner_torch.empty_host_cache: the pinned memory of an
    offloaded model goes back to the system between tasks, through the API
    the installed torch has."""

    def test_the_accelerator_api_first(self):
        import types
        import hfleet_runner_torch as rt
        calls = []
        torch = types.SimpleNamespace(accelerator=types.SimpleNamespace(empty_host_cache=lambda: calls.append("acc")),
                                      _C=types.SimpleNamespace(_host_emptyCache=lambda: calls.append("c")))
        self.assertTrue(rt.empty_host_cache(torch))
        self.assertEqual(calls, ["acc"])

    def test_the_older_binding_else(self):
        import types
        import hfleet_runner_torch as rt
        calls = []
        torch = types.SimpleNamespace(accelerator=types.SimpleNamespace(),
                                      _C=types.SimpleNamespace(_host_emptyCache=lambda: calls.append("c")))
        self.assertTrue(rt.empty_host_cache(torch))
        self.assertEqual(calls, ["c"])

    def test_a_torch_without_either(self):
        import types
        import hfleet_runner_torch as rt
        self.assertFalse(rt.empty_host_cache(types.SimpleNamespace(_C=types.SimpleNamespace())))

if __name__ == "__main__":
    unittest.main()
