"""Unit tests of benchmark execution modes (hfleet_modes.py) without torch or
a GPU (stdlib unittest): the task field, the compile setting, the skips
decided before torch, the failure reasons, eager measured through
hfleet_bench with a plain Python stand-in for a model, and the CLI answering
a cuda-graph benchmark on the CPU with the reason (before torch is imported).

  python3 -m unittest discover -s worker/runners -p 'test_runner_modes.py' -v
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "hfleet_runner.py")
sys.path.insert(0, HERE)

import hfleet_bench as bench  # noqa: E402
import hfleet_modes as modes  # noqa: E402
import hfleet_runner_lib as lib  # noqa: E402


class TestTaskMode(unittest.TestCase):
    def test_absent_or_null_is_eager(self):
        self.assertEqual(modes.task_mode({}), "eager")
        self.assertEqual(modes.task_mode({"mode": None}), "eager")

    def test_known_modes(self):
        for m in ("eager", "cuda-graph", "compile"):
            self.assertEqual(modes.task_mode({"mode": m}), m)

    def test_bad_modes_name_the_value(self):
        for bad in ("graph", "", "EAGER", "all", 3, ["eager"], "x" * 500):
            with self.assertRaises(modes.ModeError) as cm:
                modes.task_mode({"mode": bad})
            self.assertIn("'mode'", str(cm.exception))
            self.assertLess(len(str(cm.exception)), 200)

    def test_parse_task_keeps_the_mode(self):
        t = lib.parse_task({"task_id": 1, "model_type": "bert", "backend": "cuda", "kind": "benchmark",
                            "mode": "cuda-graph"})
        self.assertEqual(modes.task_mode(t), "cuda-graph")


class TestResultValidation(unittest.TestCase):
    def test_metrics_mode_must_be_known(self):
        ok = lib.make_result("skipped", "why", metrics={"mode": "cuda-graph"})
        self.assertEqual(lib.validate_result(ok), [])
        for bad in ("graph", 1, None, ""):
            r = lib.make_result("skipped", "why", metrics={"mode": bad})
            self.assertTrue(any("metrics.mode" in e for e in lib.validate_result(r)), bad)


class TestCompileMode(unittest.TestCase):
    def test_default_and_override(self):
        self.assertEqual(modes.compile_mode({}), "default")
        self.assertEqual(modes.compile_mode({"HFLEET_COMPILE_MODE": " "}), "default")
        self.assertEqual(modes.compile_mode({"HFLEET_COMPILE_MODE": "max-autotune"}), "max-autotune")

    def test_bad_name(self):
        with self.assertRaises(ValueError) as cm:
            modes.compile_mode({"HFLEET_COMPILE_MODE": "fastest"})
        self.assertIn("fastest", str(cm.exception))


class TestSkipReasons(unittest.TestCase):
    def test_graph_needs_a_gpu(self):
        for backend in ("cpu", "mps", "xpu", "openvino"):
            why = modes.precheck_skip_reason("cuda-graph", backend, "benchmark")
            self.assertEqual(why, f"cuda-graph needs a CUDA or ROCm device; this task runs on {backend}")
        self.assertIsNone(modes.precheck_skip_reason("cuda-graph", "cuda", "benchmark"))
        self.assertIsNone(modes.precheck_skip_reason("cuda-graph", "rocm", "benchmark"))

    def test_other_modes_and_tests_are_not_skipped(self):
        self.assertIsNone(modes.precheck_skip_reason("eager", "cpu", "benchmark"))
        self.assertIsNone(modes.precheck_skip_reason("compile", "cpu", "benchmark"))
        # A test job ignores the mode.
        self.assertIsNone(modes.precheck_skip_reason("cuda-graph", "cpu", "test"))

    def test_failure_reason(self):
        r = modes.failure_reason("cuda-graph capture",
                                 RuntimeError("operation not permitted\nwhen stream is capturing"))
        self.assertEqual(r, "cuda-graph capture failed: RuntimeError: operation not permitted when stream is capturing")
        self.assertEqual(modes.failure_reason("x", KeyError()), "x failed: KeyError")
        long = modes.failure_reason("x", ValueError("y" * 2000))
        self.assertEqual(len(long), modes.REASON_MAX)
        self.assertTrue(long.endswith("..."))


class TestMeasureMode(unittest.TestCase):
    """measure_mode with a plain Python callable as the model: the figures
    come from hfleet_bench.measure and carry the mode they measured."""

    def plan(self):
        return bench.Plan(warmup=2, iterations=5, batch=4, deadline=time.perf_counter() + 30)

    def test_eager_figures_carry_the_mode(self):
        calls = []

        def model(**inputs):
            calls.append(inputs)
            return sum(range(100))

        syncs = []
        m, notes, skip = modes.measure_mode(None, model, {"x": 1}, "cpu", "eager", self.plan(), bench,
                                            lambda: syncs.append(1))
        self.assertIsNone(skip)
        self.assertEqual(m["mode"], "eager")
        self.assertEqual(m["iterations"], 5)
        self.assertEqual(m["latency_ms"]["count"], 5)
        self.assertGreaterEqual(len(calls), 7)        # warm-up and timed passes
        self.assertEqual(len(syncs), 2 * len(calls))  # each pass synchronised before and after
        self.assertNotIn("capture_time_s", m)
        self.assertEqual(notes, {})

    def test_graph_on_cpu_is_skipped_without_a_figure(self):
        def model(**inputs):
            raise AssertionError("a skipped mode must not run the model")

        m, notes, skip = modes.measure_mode(None, model, {}, "cpu", "cuda-graph", self.plan(), bench, lambda: None)
        self.assertEqual(skip, "cuda-graph needs a CUDA or ROCm device; this task runs on cpu")
        self.assertEqual(m, {"mode": "cuda-graph"})

    def test_compile_with_a_bad_setting_is_skipped(self):
        m, _, skip = modes.measure_mode(None, None, {}, "cpu", "compile", self.plan(), bench, lambda: None,
                                        environ={"HFLEET_COMPILE_MODE": "turbo"})
        self.assertIn("HFLEET_COMPILE_MODE='turbo'", skip)
        self.assertEqual(m, {"mode": "compile"})

    def test_unknown_mode_raises(self):
        with self.assertRaises(modes.ModeError):
            modes.measure_mode(None, None, {}, "cpu", "graph", self.plan(), bench, lambda: None)


def run_cli(task):
    with tempfile.TemporaryDirectory() as d:
        tp, rp = os.path.join(d, "task.json"), os.path.join(d, "result.json")
        with open(tp, "w", encoding="utf-8") as f:
            json.dump(task, f)
        p = subprocess.run([sys.executable, RUNNER, "--task", tp, "--result", rp],
                           capture_output=True, text=True, timeout=120)
        with open(rp, encoding="utf-8") as f:
            return p, json.load(f)


class TestCli(unittest.TestCase):
    """The runner answers before it imports torch, so these run anywhere."""

    def task(self, **kw):
        t = {"task_id": 5, "model_type": "bert", "backend": "cpu", "kind": "benchmark", "modality": "text",
             "precision": "fp32", "batch_size": 1, "seq_len": 8, "iterations": 2, "warmup": 1, "timeout_s": 60}
        t.update(kw)
        return t

    def test_graph_on_cpu_is_skipped_with_the_reason(self):
        p, r = run_cli(self.task(mode="cuda-graph"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(r["status"], "skipped")
        self.assertEqual(r["reason"], "cuda-graph needs a CUDA or ROCm device; this task runs on cpu")
        self.assertEqual(r["metrics"], {"mode": "cuda-graph"})
        self.assertNotIn("latency_ms", r["metrics"])

    def test_bad_mode_is_an_error_naming_it(self):
        p, r = run_cli(self.task(mode="warp-speed"))
        self.assertIn(r["status"], ("error",))
        self.assertIn("warp-speed", r["reason"])


if __name__ == "__main__":
    unittest.main()
