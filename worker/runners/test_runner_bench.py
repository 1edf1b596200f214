"""Unit tests of benchmark measurement (hfleet_bench.py), the statistics and
result validation it relies on (hfleet_runner_lib.py) and the NVML door
(hfleet_nvml.py), without torch or a GPU (stdlib unittest).

  python3 -m unittest discover -s worker/runners -p 'test_runner_bench.py' -v

The loop runs on a simulated clock: step() advances it by the pass's
duration, and the energy stand-in is a device of constant power whose
counter is the integral of that power over the simulated clock.  NVML
itself is stood in for by an object with Nvml's methods, passed in.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import hfleet_bench as bench  # noqa: E402
import hfleet_nvml as nvml  # noqa: E402
import hfleet_runner_lib as lib  # noqa: E402


class SimClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class SimDevice:
    """Passes of given durations on a simulated clock; a constant-power
    energy counter in millijoules (integer, like NVML's) that moves every
    tick_s (0: continuously), and reads of it that take read_s."""

    def __init__(self, durations, power_w=300.0, counter_start_mj=5_000_000, cycle=False, tick_s=0.0,
                 read_s=0.00005):
        self.cycle = cycle
        self.tick_s = tick_s
        self.read_s = read_s
        self.clock = SimClock()
        self.durations = list(durations)
        self.power_w = power_w
        self.counter_start_mj = counter_start_mj
        self.passes = 0

    def step(self):
        n = len(self.durations)
        d = self.durations[self.passes % n if self.cycle else min(self.passes, n - 1)]
        self.passes += 1
        self.clock.t += d
        return d

    def read_mj(self):
        self.clock.t += self.read_s
        t = self.clock.t
        if self.tick_s:
            t = math.floor(t / self.tick_s) * self.tick_s
        return self.counter_start_mj + int(t * self.power_w * 1000.0)


class StuckCounter:
    def read_mj(self):
        return 42


class BrokenCounter:
    def read_mj(self):
        raise nvml.NvmlError("nvmlDeviceGetTotalEnergyConsumption failed: GPU is lost")


class LatencySummaryTest(unittest.TestCase):
    def test_all_statistics_in_ms(self):
        s = lib.latency_summary([0.010, 0.020, 0.030, 0.040, 0.100])
        self.assertEqual(s["count"], 5)
        self.assertAlmostEqual(s["mean"], 40.0)
        self.assertAlmostEqual(s["stdev"], math.sqrt(1250.0))
        self.assertAlmostEqual(s["cv"], math.sqrt(1250.0) / 40.0)
        self.assertAlmostEqual(s["min"], 10.0)
        self.assertAlmostEqual(s["max"], 100.0)
        self.assertAlmostEqual(s["p50"], 30.0)
        self.assertAlmostEqual(s["p90"], 76.0)
        self.assertAlmostEqual(s["p95"], 88.0)
        self.assertAlmostEqual(s["p99"], 97.6)
        self.assertEqual(set(s), set(lib.LATENCY_KEYS))

    def test_stdev_is_the_sample_stdev(self):
        xs = [0.0011, 0.0013, 0.00105, 0.0012, 0.0019, 0.00111, 0.00108]
        s = lib.latency_summary(xs)
        self.assertAlmostEqual(s["stdev"], statistics.stdev(x * 1000 for x in xs))
        self.assertAlmostEqual(s["cv"], s["stdev"] / s["mean"])

    def test_one_sample(self):
        s = lib.latency_summary([0.002])
        self.assertEqual((s["count"], s["stdev"], s["cv"]), (1, 0.0, 0.0))
        self.assertEqual(s["p99"], 2.0)


class StridedSamplesTest(unittest.TestCase):
    def test_all_when_few(self):
        self.assertEqual(bench.strided_samples([3, 1, 2]), [3, 1, 2])
        self.assertEqual(len(bench.strided_samples(list(range(512)))), 512)

    def test_even_stride_when_many(self):
        xs = list(range(1024))
        self.assertEqual(bench.strided_samples(xs), list(range(0, 1024, 2)))
        ys = list(range(1000))
        sub = bench.strided_samples(ys)
        self.assertEqual(len(sub), 512)
        self.assertEqual(sub[0], 0)
        self.assertEqual(sub[-1], (511 * 1000) // 512)
        self.assertTrue(all(b > a for a, b in zip(sub, sub[1:])))   # in order, no repeats

    def test_bad_limit(self):
        with self.assertRaises(ValueError):
            bench.strided_samples([1], 0)


class StabilityRuleTest(unittest.TestCase):
    def test_needs_a_full_window(self):
        self.assertFalse(bench.window_stable([1.0] * (bench.WARMUP_WINDOW - 1)))
        self.assertTrue(bench.window_stable([1.0] * bench.WARMUP_WINDOW))

    def test_only_the_last_window_counts(self):
        self.assertTrue(bench.window_stable([9.0, 5.0, 3.0] + [1.0] * bench.WARMUP_WINDOW))
        self.assertFalse(bench.window_stable([1.0] * 20 + [9.0]))

    def test_spread_above_the_cv_limit(self):
        self.assertFalse(bench.window_stable([1.0, 1.2] * 4))     # cv about 0.1

    def test_still_falling_is_not_stable(self):
        falling = [1.10, 1.09, 1.08, 1.07, 1.06, 1.05, 1.04, 1.03]   # cv 2.4 %, 3.8 % down
        self.assertLess(statistics.stdev(falling) / statistics.mean(falling), bench.WARMUP_STABLE_CV)
        self.assertFalse(bench.window_stable(falling))
        # Getting slower is not warming up: no reason to keep warming.
        self.assertTrue(bench.window_stable(list(reversed(falling))))


class NoiseTest(unittest.TestCase):
    def test_threshold_from_the_environment(self):
        self.assertEqual(bench.noise_threshold({}), 0.05)
        self.assertEqual(bench.noise_threshold({"HFLEET_NOISE_THRESHOLD": " "}), 0.05)
        self.assertEqual(bench.noise_threshold({"HFLEET_NOISE_THRESHOLD": "0.1"}), 0.1)
        self.assertEqual(bench.noise_threshold({"HFLEET_NOISE_THRESHOLD": "1"}), 1.0)

    def test_bad_thresholds_name_the_variable(self):
        for bad in ("abc", "0", "-0.1", "1.5", "nan", "inf", "5%"):
            with self.assertRaises(ValueError) as cm:
                bench.noise_threshold({"HFLEET_NOISE_THRESHOLD": bad})
            self.assertIn("HFLEET_NOISE_THRESHOLD", str(cm.exception))

    def test_flag(self):
        self.assertFalse(bench.is_noisy(0.05, 0.05))
        self.assertTrue(bench.is_noisy(0.0501, 0.05))


class EnergyArithmeticTest(unittest.TestCase):
    def test_joules_per_item_and_power(self):
        m, why = bench.energy_metrics(1_000_000, 1_150_000, 2.0, 80)
        self.assertEqual(why, "")
        self.assertAlmostEqual(m["energy_j"], 150.0)
        self.assertAlmostEqual(m["energy_j_per_item"], 1.875)
        self.assertAlmostEqual(m["avg_power_w"], 75.0)
        self.assertEqual(m["energy_source"], "nvml")

    def test_meaningless_differences(self):
        for start, end, secs, items, word in ((5, 5, 1.0, 1, "did not move"), (9, 5, 1.0, 1, "did not move"),
                                              (1, 9, 0.0, 1, "no time"), (1, 9, 1.0, 0, "no items"),
                                              (1.5, 9, 1.0, 1, "no integer")):
            m, why = bench.energy_metrics(start, end, secs, items)
            self.assertIsNone(m)
            self.assertIn(word, why)


class DeviceUuidTest(unittest.TestCase):
    def test_which_gpu(self):
        self.assertEqual(bench.task_device_uuid("GPU-a", "GPU-A"), ("GPU-A", ""))
        self.assertEqual(bench.task_device_uuid("GPU-a,GPU-b", None), ("GPU-a", ""))
        self.assertEqual(bench.task_device_uuid(None, "GPU-t"), ("GPU-t", ""))
        uuid, why = bench.task_device_uuid("GPU-a", "GPU-b")
        self.assertIsNone(uuid)
        self.assertIn("not the one the worker gave", why)
        self.assertIsNone(bench.task_device_uuid("", None)[0])


class MeasureTest(unittest.TestCase):
    def run_plan(self, durations, warmup=3, iterations=20, batch=4, deadline=1e9, energy=True, power=300.0,
                 cycle=False, tick_s=0.0):
        dev = SimDevice(durations, power_w=power, cycle=cycle, tick_s=tick_s)
        plan = bench.Plan(warmup, iterations, batch, deadline)
        m, notes = bench.measure(dev.step, dev.clock, plan, energy=dev if energy is True else energy)
        return m, notes, dev

    def test_warms_until_stable_then_times(self):
        # 12 slow, falling passes, then steady 10 ms ones.
        durations = [0.1 - 0.007 * i for i in range(12)] + [0.010]
        m, notes, dev = self.run_plan(durations)
        self.assertTrue(m["warmup_stable"])
        self.assertEqual(m["warmup_requested"], 3)
        self.assertEqual(m["warmup"], 12 + bench.WARMUP_WINDOW)     # the window is all steady passes
        self.assertEqual(m["iterations"], 20)
        self.assertEqual(m["latency_ms"]["count"], 20)
        self.assertAlmostEqual(m["latency_ms"]["mean"], 10.0)
        self.assertEqual(m["latency_ms"]["cv"], 0.0)
        self.assertFalse(m["noisy"])
        self.assertEqual(m["noise_threshold"], 0.05)
        self.assertEqual(m["latency_samples_ms"], [10.0] * 20)
        self.assertAlmostEqual(m["throughput_items_s"], 400.0)
        self.assertNotIn("iterations_requested", m)
        self.assertEqual(notes, {})
        self.assertEqual(lib.validate_result(lib.make_result("passed", weights="random-init", metrics=m,
                                                             outputs={"finite": True})), [])

    def test_energy_window_reaches_a_second(self):
        m, notes, dev = self.run_plan([0.010], power=250.0)
        # 20 timed passes are 0.2 s: the window is extended to 1 s for the counter.
        self.assertGreaterEqual(m["energy_window_s"], bench.ENERGY_MIN_WINDOW_S)
        self.assertAlmostEqual(m["energy_iterations"], m["energy_window_s"] / 0.010, delta=2)
        self.assertEqual(m["iterations"], 20)
        self.assertAlmostEqual(m["avg_power_w"], 250.0, delta=0.5)
        self.assertAlmostEqual(m["energy_j"], m["avg_power_w"] * m["energy_window_s"])
        # 250 W for 10 ms a pass of 4 items: 0.625 J an item.
        self.assertAlmostEqual(m["energy_j_per_item"], 0.625, delta=0.002)
        self.assertEqual(m["energy_source"], "nvml")

    def test_window_aligned_on_the_counters_steps(self):
        # A counter that moves every 100 ms, as the H200's does: a window of
        # about 1 s read at arbitrary moments is off by up to a step at each
        # end; aligned on the steps it is off by at most a pass.
        def error(align_s):
            saved = bench.ENERGY_ALIGN_MAX_S
            bench.ENERGY_ALIGN_MAX_S = align_s
            try:
                worst = 0.0
                for offset in range(10):     # warm-up ending anywhere within a step
                    dev = SimDevice([0.0131 + 0.01 * offset, 0.0131], power_w=250.0, tick_s=0.1)
                    m, _ = bench.measure(dev.step, dev.clock, bench.Plan(1, 20, 4, 1e9), energy=dev)
                    worst = max(worst, abs(m["energy_j_per_item"] / (250.0 * 0.0131 / 4) - 1))
                return worst
            finally:
                bench.ENERGY_ALIGN_MAX_S = saved
        self.assertLess(error(bench.ENERGY_ALIGN_MAX_S), 0.02)
        self.assertGreater(error(0.0), 0.04)

    def test_energy_absent_not_null(self):
        for counter, word in ((StuckCounter(), "did not move"), (BrokenCounter(), "GPU is lost")):
            m, notes, _ = self.run_plan([0.010], energy=counter)
            for k in ("energy_j", "energy_j_per_item", "avg_power_w", "energy_source"):
                self.assertNotIn(k, m)
            self.assertIn(word, notes["energy"])
        m, notes, _ = self.run_plan([0.010], energy=None)
        self.assertNotIn("energy_j", m)
        self.assertEqual(notes, {})

    def test_never_stable_stops_at_the_cap(self):
        m, _, _ = self.run_plan([0.010, 0.013], warmup=5, iterations=10, cycle=True)
        self.assertFalse(m["warmup_stable"])
        self.assertEqual(m["warmup"], 5 + bench.WARMUP_EXTRA_MAX)
        self.assertTrue(m["noisy"])                     # cv about 0.14
        self.assertGreater(m["latency_ms"]["cv"], 0.1)

    def test_warmup_time_share_of_the_budget(self):
        # 1 s passes and a 100 s budget: at most 25 s of warming.
        m, _, dev = self.run_plan([1.0, 1.3], warmup=2, iterations=5, deadline=100.0, energy=None,
                                 cycle=True)
        self.assertFalse(m["warmup_stable"])
        self.assertLessEqual(m["warmup"], 2 + 25 + 1)   # not the 200-pass cap
        self.assertEqual(m["iterations"], 5)

    def test_cold_measurement_when_no_warmup_asked(self):
        m, _, dev = self.run_plan([0.010], warmup=0, iterations=4, energy=None)
        self.assertEqual((m["warmup"], m["warmup_stable"], m["iterations"]), (0, False, 4))
        self.assertEqual(dev.passes, 4)

    def test_deadline_cuts_the_timed_loop(self):
        m, _, _ = self.run_plan([0.5], warmup=1, iterations=100, deadline=10.0)
        self.assertLess(m["iterations"], 100)
        self.assertEqual(m["iterations_requested"], 100)
        self.assertEqual(m["latency_ms"]["count"], m["iterations"])

    def test_many_samples_are_strided(self):
        durations = [0.001 + 0.000001 * (i % 7) for i in range(3000)]
        m, _, _ = self.run_plan(durations, warmup=1, iterations=2000, energy=None)
        self.assertEqual(m["latency_ms"]["count"], 2000)
        self.assertEqual(len(m["latency_samples_ms"]), 512)
        # Worst case for the worker's 64 KiB limit: 512 unrounded samples.
        m["latency_samples_ms"] = [1.0 / 3.0 + i for i in range(512)]
        self.assertLess(len(json.dumps(m, separators=(",", ":"))), 16 * 1024)
        self.assertEqual(lib.validate_result(lib.make_result("passed", weights="random-init", metrics=m,
                                                             outputs={"finite": True})), [])


class ValidationTest(unittest.TestCase):
    def result(self, metrics=None, env=None, outputs=None):
        return lib.make_result("passed", weights="random-init", metrics=metrics or {}, env=env or {},
                               outputs={"finite": True, **(outputs or {})})

    def problems(self, **kw):
        return "; ".join(lib.validate_result(self.result(**kw)))

    def test_new_metric_kinds(self):
        self.assertEqual(self.problems(metrics={"noisy": False, "warmup_stable": True, "energy_source": "nvml",
                                                "latency_samples_ms": [1.5, 2], "energy_j": 3.0}), "")
        self.assertIn("513 samples", self.problems(metrics={"latency_samples_ms": [1.0] * 513}))
        self.assertIn("non-negative", self.problems(metrics={"latency_samples_ms": [1.0, -1.0]}))
        self.assertIn("non-negative", self.problems(metrics={"latency_samples_ms": ["1"]}))
        self.assertIn("must be a list", self.problems(metrics={"latency_samples_ms": {"a": 1}}))
        self.assertIn("true or false", self.problems(metrics={"noisy": 1}))
        self.assertIn("energy_source", self.problems(metrics={"energy_source": "rapl"}))
        self.assertIn("unknown key 'p42'", self.problems(
            metrics={"latency_ms": {"mean": 1, "p50": 1, "p90": 1, "p99": 1, "p42": 1}}))
        self.assertIn("latency_ms.stdev", self.problems(
            metrics={"latency_ms": {"mean": 1, "p50": 1, "p90": 1, "p99": 1, "stdev": -1}}))
        self.assertIn("metrics.warmup must be a number", self.problems(metrics={"warmup": True}))

    def test_env_fingerprint(self):
        good = {"runner_version": lib.RUNNER_VERSION, "driver_version": "580.159.04", "cuda_version": "13.0",
                "rocm_version": None, "device_uuid": "GPU-1", "device_memory_bytes": 150_000_000_000}
        self.assertEqual(self.problems(env=good), "")
        self.assertIn("env.driver_version", self.problems(env={"driver_version": "9" * 129}))
        self.assertIn("env.device_uuid", self.problems(env={"device_uuid": 7}))
        self.assertIn("device_memory_bytes", self.problems(env={"device_memory_bytes": -1}))
        self.assertIn("device_memory_bytes", self.problems(env={"device_memory_bytes": 1.5}))

    def test_the_workers_size_limits(self):
        self.assertIn("metrics is", self.problems(metrics={f"k{i:05d}": 1.0 for i in range(7000)}))
        # env and outputs travel together in the worker's env_json.
        self.assertEqual(self.problems(env={"platform": "x" * 30_000}, outputs={"note": "y" * 30_000}), "")
        self.assertIn("env with outputs", self.problems(env={"platform": "x" * 34_000},
                                                         outputs={"note": "y" * 34_000}))


class RunnerVersionTest(unittest.TestCase):
    def test_matches_the_project_version(self):
        path = os.path.join(HERE, "..", "..", "meson.build")
        if not os.path.exists(path):
            self.skipTest("not in the hfleet source tree")
        with open(path, encoding="utf-8") as f:
            found = re.search(r"project\([^)]*?version\s*:\s*'([^']+)'", f.read(), re.S)
        self.assertEqual(lib.RUNNER_VERSION, found.group(1))


class FakeNvml:
    """Nvml's methods over a table of devices: uuid -> (mig, energy_mj or None)."""

    def __init__(self, devices, driver="580.159.04"):
        self.devices = devices
        self.driver = driver

    def driver_version(self):
        if self.driver is None:
            raise nvml.NvmlError("nvmlSystemGetDriverVersion failed: Unknown Error")
        return self.driver

    def device_by_uuid(self, uuid):
        if uuid not in self.devices:
            raise nvml.NvmlError("nvmlDeviceGetHandleByUUID failed: Not Found")
        return uuid

    def mig_enabled(self, handle):
        return self.devices[handle][0]

    def total_energy_mj(self, handle):
        mj = self.devices[handle][1]
        if mj is None:
            raise nvml.NvmlError("nvmlDeviceGetTotalEnergyConsumption failed: Not Supported")
        return mj


class NvmlDoorTest(unittest.TestCase):
    def test_energy_counter_of_the_given_gpu_only(self):
        fake = FakeNvml({"GPU-a": (False, 1000), "GPU-b": (False, 2000), "GPU-old": (False, None),
                         "GPU-mig": (True, 3000)})
        counter, why = nvml.energy_counter(fake, "GPU-b")
        self.assertEqual((counter.read_mj(), counter.uuid, why), (2000, "GPU-b", ""))
        for uuid, word in ((None, "no known UUID"), ("GPU-zzz", "Not Found"), ("GPU-old", "Not Supported"),
                           ("GPU-mig", "MIG mode on"), ("MIG-1234", "MIG instance")):
            counter, why = nvml.energy_counter(fake, uuid)
            self.assertIsNone(counter)
            self.assertIn(word, why)
        self.assertEqual(nvml.energy_counter(None, "GPU-a"), (None, "NVML not available"))

    def test_driver_version(self):
        self.assertEqual(nvml.driver_version(FakeNvml({})), "580.159.04")
        self.assertIsNone(nvml.driver_version(FakeNvml({}, driver=None)))
        self.assertIsNone(nvml.driver_version(None))

    def test_open_falls_back_with_a_reason(self):
        def no_library(path):
            raise OSError(f"{path}: cannot open shared object file")
        lib_, why = nvml.open_nvml(loader=no_library)
        self.assertIsNone(lib_)
        self.assertIn("cannot load libnvidia-ml.so.1", why)

        class NotNvml:
            pass
        lib_, why = nvml.open_nvml(loader=lambda path: NotNvml())
        self.assertIsNone(lib_)
        self.assertIn("not NVML", why)

    def test_the_real_library_or_its_absence(self):
        # On a machine without NVIDIA's driver this is the fallback; with one,
        # a driver version.  Either way, no exception.
        real, why = nvml.open_nvml()
        if real is None:
            self.assertIn("NVML not available", why)
        else:
            self.assertTrue(nvml.driver_version(real))


if __name__ == "__main__":
    unittest.main()
