"""Tests of the device health check (hfleet_health.py and hfleet_runner.py --health).

The pure-Python path and the result file are tested everywhere; the torch
path with a real torch where it is installed (on the CPU device, the same
code that runs on an accelerator), and skipped with the reason where not.
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hfleet_health as health  # noqa: E402

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hfleet_runner.py")


def no_torch():
    raise ImportError("No module named 'torch'")


class PythonCheckTest(unittest.TestCase):
    def test_cpu_without_torch_runs_a_real_computation(self):
        r = health.run_check("cpu", import_torch=no_torch)
        self.assertTrue(r["ok"], r)
        self.assertIn("sum of squares", r["detail"])
        self.assertIn("torch is not installed", r["detail"])
        self.assertGreaterEqual(r["duration_s"], 0.0)

    def test_accelerator_without_torch_fails_saying_why(self):
        for backend in ("cuda", "rocm", "mps"):
            r = health.run_check(backend, import_torch=no_torch)
            self.assertFalse(r["ok"])
            self.assertIn("torch is not installed", r["detail"])
            self.assertIn(backend, r["detail"])

    def test_unknown_backend_fails_naming_the_valid_ones(self):
        r = health.run_check("tpu", import_torch=no_torch)
        self.assertFalse(r["ok"])
        self.assertIn("'tpu'", r["detail"])
        self.assertIn("cuda", r["detail"])

    def test_python_check_detects_a_wrong_answer(self):
        ok, _ = health.python_check(1000)
        self.assertTrue(ok)
        real_range = range

        def broken_range(*args):  # one number is skipped: the sum is wrong
            return [i for i in real_range(*args) if i != 7]
        health.range = broken_range
        try:
            ok, detail = health.python_check(1000)
        finally:
            del health.range
        self.assertFalse(ok)
        self.assertIn("wrong", detail)

    def test_an_exception_in_the_check_is_a_failed_result(self):
        def broken_torch():
            raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore")
        r = health.run_check("cuda", import_torch=broken_torch)
        self.assertFalse(r["ok"])
        self.assertEqual(r["detail"], "RuntimeError: CUDA error: an illegal memory access was encountered more")


class FakeTensorTorch:
    """Just enough of torch for torch_check's bookkeeping: a device that is
    not available must fail the check, not crash it."""

    __version__ = "0.0-fake"

    class cuda:  # noqa: N801 - torch's name
        @staticmethod
        def is_available():
            return False


class TorchCheckTest(unittest.TestCase):
    def test_missing_device_fails_the_check(self):
        r = health.run_check("cuda", import_torch=lambda: FakeTensorTorch)
        self.assertFalse(r["ok"])
        self.assertIn("sees no cuda device", r["detail"])

    def test_real_torch_matmul_on_the_cpu_matches(self):
        try:
            import torch
        except ImportError:
            self.skipTest("torch is not installed")
        r = health.torch_check(torch, "cpu", n=64)
        self.assertTrue(r["ok"], r)
        self.assertIn("64x64 fp32 matmul", r["detail"])
        self.assertIsNotNone(r["elapsed_ms"])


class CommandLineTest(unittest.TestCase):
    def run_runner(self, *args):
        return subprocess.run([sys.executable, RUNNER, *args], capture_output=True, text=True, timeout=120)

    def test_health_writes_the_result_file_atomically(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "health.json")
            p = self.run_runner("--health", "--backend", "cpu", "--result", path)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            with open(path) as f:
                r = json.load(f)
            self.assertIs(r["ok"], True)
            self.assertEqual(r["backend"], "cpu")
            self.assertIsInstance(r["duration_s"], float)
            self.assertFalse(os.path.exists(path + ".tmp"))
            self.assertIn("health check passed", p.stdout)

    def test_health_without_backend_or_result_is_a_usage_error(self):
        p = self.run_runner("--health", "--result", "/nonexistent/x.json")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--health needs --backend and --result", p.stderr)
        p = self.run_runner("--health", "--backend", "cpu", "--probe", "--result", "x")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--health takes no", p.stderr)

    def test_unwritable_result_is_exit_status_1(self):
        p = self.run_runner("--health", "--backend", "cpu", "--result", "/nonexistent/dir/x.json")
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot write the health result", p.stdout)


if __name__ == "__main__":
    unittest.main()
