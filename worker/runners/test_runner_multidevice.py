"""Unit tests of a model split across a task's devices (hfleet_multidevice.py)
without torch, accelerate or a GPU (stdlib unittest): the device count a task
sees, the bounded description of a device map that goes into the result, and
the refusal of a split that accelerate cannot import.

  python3 -m unittest discover -s worker/runners -p 'test_runner_multidevice.py' -v
"""

from __future__ import annotations

import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import hfleet_multidevice as multi  # noqa: E402
import hfleet_runner_lib as lib  # noqa: E402


class _Cuda:
    def __init__(self, n, broken=False):
        self.n, self.broken = n, broken

    def device_count(self):
        if self.broken:
            raise RuntimeError("CUDA driver initialization failed")
        return self.n


class _Torch:
    def __init__(self, n, broken=False):
        self.cuda = _Cuda(n, broken)


class TestDeviceCount(unittest.TestCase):
    def test_cuda_and_rocm_count_what_torch_sees(self):
        self.assertEqual(multi.task_device_count(_Torch(4), "cuda"), 4)
        self.assertEqual(multi.task_device_count(_Torch(2), "rocm"), 2)

    def test_other_backends_and_failures_are_one_device(self):
        self.assertEqual(multi.task_device_count(_Torch(8), "cpu"), 1)
        self.assertEqual(multi.task_device_count(_Torch(0), "cuda"), 1)
        self.assertEqual(multi.task_device_count(_Torch(2, broken=True), "cuda"), 1)


class TestDescribeDeviceMap(unittest.TestCase):
    def test_spans_in_model_order(self):
        dm = {"embed_tokens": 0, "layers.0": 0, "layers.1": 0, "layers.2": 1, "layers.3": 1, "norm": 1, "lm_head": 1}
        d = multi.describe_device_map(dm)["devices"]
        self.assertEqual(d["cuda:0"], {"modules": 3, "spans": ["embed_tokens .. layers.1"]})
        self.assertEqual(d["cuda:1"], {"modules": 4, "spans": ["layers.2 .. lm_head"]})

    def test_a_device_used_twice_has_two_spans(self):
        # Tied embeddings: the head goes back to the first device.
        dm = {"embed": 0, "layers.0": 1, "head": 0}
        d = multi.describe_device_map(dm)["devices"]
        self.assertEqual(d["cuda:0"]["spans"], ["embed", "head"])
        self.assertEqual(d["cuda:1"]["spans"], ["layers.0"])

    def test_the_whole_model_and_other_places(self):
        d = multi.describe_device_map({"": 0})["devices"]
        self.assertEqual(d, {"cuda:0": {"modules": 1, "spans": ["(the whole model)"]}})
        d = multi.describe_device_map({"a": "cpu", "b": "disk"})["devices"]
        self.assertEqual(sorted(d), ["cpu", "disk"])

    def test_bounded_whatever_the_model(self):
        # 10,000 modules alternating over 8 devices, with long names: the
        # description stays small and valid inside a result.
        dm = {("block." * 40) + str(i): i % 8 for i in range(10000)}
        desc = multi.describe_device_map(dm)
        self.assertLess(len(json.dumps(desc)), 16 * 1024)
        for entry in desc["devices"].values():
            self.assertLessEqual(len(entry["spans"]), multi.SPANS_MAX)
            self.assertEqual(entry["modules"], 1250)
            self.assertEqual(entry["more_spans"], 1250 - multi.SPANS_MAX)
        r = lib.make_result("passed", weights="random-init", outputs={"device_map": desc, "finite": True},
                            metrics={"devices": 8})
        self.assertEqual(lib.validate_result(r), [])


class TestDispatchWithoutAccelerate(unittest.TestCase):
    def test_refused_with_the_reason(self):
        saved = sys.modules.get("accelerate", None)
        sys.modules["accelerate"] = None  # makes the import fail
        try:
            with self.assertRaises(multi.SplitError) as cm:
                multi.dispatch(_Torch(2), object(), 2, None)
            self.assertIn("needs accelerate", str(cm.exception))
            self.assertIn("2 devices", str(cm.exception))
        finally:
            if saved is None:
                del sys.modules["accelerate"]
            else:
                sys.modules["accelerate"] = saved


if __name__ == "__main__":
    unittest.main()
