"""Tests of the runner's serve mode (a warm runner), stdlib only.

  cd /work/main && python3 -m unittest discover -s worker/runners -p 'test_*.py' -v

The protocol's pure parts (request parsing, control lines, classifying
device errors, VmRSS) are tested directly; the serve loop in-process with a
stand-in for the task runner (so a fatal device error can be simulated
without a GPU); and `hfleet_runner.py --serve` end to end as a subprocess,
with tasks for the openvino backend, which this runner version answers
'skipped' before it imports torch: the same outcome with or without torch.
"""

from __future__ import annotations

import io
import json
import os
import select
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "hfleet_runner.py")
sys.path.insert(0, HERE)

import hfleet_runner as cli  # noqa: E402
import hfleet_runner_lib as lib  # noqa: E402


def read_line(fd, timeout=60.0):
    """One line from a raw descriptor, or None at end of file; fails after timeout."""
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no control line within {timeout} s (got {buf!r})")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 1)
        if not chunk:
            return None if not buf else buf.decode()
        buf += chunk
    return buf.decode()


class TestRequests(unittest.TestCase):
    def test_good_request_as_bytes_or_text(self):
        want = {"task": "/s/tasks/1-1/task.json", "result": "/s/tasks/1-1/result.json"}
        parsed = dict(want, result_inline=False)
        self.assertEqual(lib.parse_serve_request(json.dumps(want).encode() + b"\n"), parsed)
        line = json.dumps(dict(want, later="ignored")) + "\n"
        self.assertEqual(lib.parse_serve_request(line), parsed)

    def test_task_itself_in_the_request(self):
        want = {"task": {"task_id": 3, "model_type": "bert"}, "result": "/s/tasks/3-1.result.json"}
        self.assertEqual(lib.parse_serve_request(json.dumps(want) + "\n"), dict(want, result_inline=False))

    def test_result_inline_only_when_the_worker_says_true(self):
        base = {"task": "/t.json", "result": "/r.json"}
        for value, want in ((True, True), (False, False), (1, False), ("true", False), (None, False)):
            with self.subTest(value=value):
                req = lib.parse_serve_request(json.dumps(dict(base, result_inline=value)))
                self.assertIs(req["result_inline"], want)

    def test_bad_requests_say_what_is_wrong(self):
        cases = [
            (b"not json\n", "not JSON"),
            (b"[1, 2]\n", "not a JSON object"),
            (b'{"task": "/t.json"}\n', "'result'"),
            (b'{"task": "", "result": "/r.json"}\n', "'task'"),
            (b'{"task": 7, "result": "/r.json"}\n', "'task'"),
            (b'{"task": [1], "result": "/r.json"}\n', "or the task object"),
            (b'{"task": {}, "result": {}}\n', "'result'"),
            (b'{"task": "/t\\u0000.json", "result": "/r.json"}\n', "'task'"),
            (b'\xff\xfe{}\n', "not UTF-8"),
        ]
        for line, what in cases:
            with self.subTest(line=line):
                with self.assertRaises(lib.RequestError) as cm:
                    lib.parse_serve_request(line)
                self.assertIn(what, str(cm.exception))
                self.assertNotIn("\n", str(cm.exception))


class TestControlLines(unittest.TestCase):
    def test_done_line(self):
        line = lib.control_done_line(12, False, 1 << 20)
        self.assertTrue(line.endswith("\n"))
        self.assertEqual(line.count("\n"), 1)
        self.assertEqual(json.loads(line), {"done": 12, "fatal": False, "rss_bytes": 1 << 20})
        d = json.loads(lib.control_done_line(12, False, 1, task_inline=True))
        self.assertIs(d["task_inline"], True)

    def test_done_line_unknowns_are_null_and_fatal_says_why_in_one_line(self):
        d = json.loads(lib.control_done_line(None, True, None, "CUDA error:\n device-side assert " + "x" * 500))
        self.assertIsNone(d["done"])
        self.assertIsNone(d["rss_bytes"])
        self.assertTrue(d["fatal"])
        self.assertTrue(d["reason"].startswith("CUDA error: device-side assert"))
        self.assertLessEqual(len(d["reason"]), lib.CONTROL_TEXT_MAX)
        # A kernel assertion is the model's doing (an index out of range); other
        # fatal errors are the device's, and so is one nobody explained.
        self.assertFalse(d["device_fault"])
        d = json.loads(lib.control_done_line(4, True, 1, "CUDA error: an illegal memory access was encountered"))
        self.assertTrue(d["device_fault"])
        d = json.loads(lib.control_done_line(4, True, 1, None))
        self.assertTrue(d["device_fault"])
        d = json.loads(lib.control_done_line(4, True, 1, "CUDA error: device-side assert", device_fault=True))
        self.assertTrue(d["device_fault"])
        # A bool is no task id, and a reason goes only with fatal.
        d = json.loads(lib.control_done_line(True, False, -1, "not fatal"))
        self.assertEqual(d, {"done": None, "fatal": False, "rss_bytes": None})

    def test_error_line(self):
        d = json.loads(lib.control_error_line("request line is not JSON:\nat 1"))
        self.assertEqual(d, {"error": "request line is not JSON: at 1"})


class TestDeviceErrors(unittest.TestCase):
    def test_fatal_suspect_or_not(self):
        self.assertEqual(lib.classify_device_error("RuntimeError: CUDA error: device-side assert triggered"), "fatal")
        self.assertEqual(lib.classify_device_error("CUDA error: an illegal memory access was encountered"), "fatal")
        self.assertEqual(lib.classify_device_error("CUDA error: unspecified launch failure"), "fatal")
        # Out of memory under any library's name is not an error of the
        # device: the process may try again (and the worker's check after a
        # failed task still runs a tiny operation).
        self.assertIsNone(lib.classify_device_error("RuntimeError: CUDA error: out of memory"))
        self.assertIsNone(lib.classify_device_error(
            "RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"))
        self.assertTrue(lib.is_out_of_memory("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"))
        self.assertFalse(lib.is_out_of_memory("CUDA error: CUBLAS_STATUS_EXECUTION_FAILED"))
        self.assertEqual(lib.classify_device_error("RuntimeError: CUDA error: CUBLAS_STATUS_EXECUTION_FAILED"), "suspect")
        # A fatal mark wins over an allocation failure in the same text.
        self.assertEqual(lib.classify_device_error("out of memory\nCUDA error: an illegal memory access was encountered"),
                         "fatal")
        self.assertEqual(lib.classify_device_error("RuntimeError: HIP error: invalid argument"), "suspect")
        self.assertIsNone(lib.classify_device_error("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB"))
        self.assertIsNone(lib.classify_device_error("ValueError: shapes do not match"))
        self.assertIsNone(lib.classify_device_error(""))
        self.assertIsNone(lib.classify_device_error(None))

    def test_device_error_line_picks_the_line_that_names_it(self):
        text = "shrunk config: RuntimeError\nTraceback ...\nRuntimeError: CUDA error: device-side assert triggered\nmore"
        self.assertEqual(lib.device_error_line(text), "RuntimeError: CUDA error: device-side assert triggered")

    def test_vmrss(self):
        self.assertEqual(lib.parse_vmrss("Name:\tpython3\nVmRSS:\t  20480 kB\n"), 20480 * 1024)
        self.assertIsNone(lib.parse_vmrss("Name:\tx\nState:\tZ (zombie)\n"))
        self.assertIsNone(lib.parse_vmrss("VmRSS:\t lots\n"))
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            self.assertGreater(lib.parse_vmrss(f.read()), 1 << 20)


class TestFatalVerdict(unittest.TestCase):
    def verdict(self, result, usable):
        calls = []

        def device_usable():
            calls.append(1)
            return usable
        fatal, why = cli.fatal_verdict(result, device_usable)
        return fatal, why, len(calls)

    def test_a_good_result_is_never_fatal_and_costs_no_device_check(self):
        self.assertEqual(self.verdict({"status": "passed", "reason": ""}, False), (False, None, 0))
        self.assertEqual(self.verdict({"status": "skipped", "reason": "CUDA error"}, False), (False, None, 0))

    def test_a_known_fatal_error_is_fatal_without_a_check(self):
        fatal, why, checks = self.verdict(
            {"status": "error", "reason": "shrunk config (fatal device error, not retried): RuntimeError: x",
             "traceback": "...\nRuntimeError: CUDA error: device-side assert triggered\n"}, True)
        self.assertTrue(fatal)
        self.assertEqual(checks, 0)
        self.assertEqual(why, "RuntimeError: CUDA error: device-side assert triggered")

    def test_other_errors_are_fatal_only_when_the_device_fails_a_tiny_operation(self):
        oom = {"status": "error", "reason": "RuntimeError: CUDA error: out of memory"}
        self.assertEqual(self.verdict(oom, True)[:2], (False, None))
        fatal, why, checks = self.verdict(oom, False)
        self.assertTrue(fatal)
        self.assertEqual(checks, 1)
        self.assertIn("CUDA error: out of memory", why)
        plain = {"status": "failed", "reason": "non-finite values in logits"}
        self.assertEqual(self.verdict(plain, True), (False, None, 1))
        fatal, why, _ = self.verdict(plain, False)
        self.assertTrue(fatal)
        self.assertIn("no longer runs a tiny operation", why)


class TestPreimport(unittest.TestCase):
    """preimport_frameworks with stand-in torch and transformers modules (the
    real ones are tested by the runner on the GPU machine)."""

    def fakes(self):
        import types
        torch = types.ModuleType("torch")
        torch.__version__ = "9.9"
        torch.threads = []
        torch.set_num_threads = torch.threads.append
        transformers = types.ModuleType("transformers")
        transformers.__version__ = "8.8"
        transformers.AutoConfig = transformers.AutoModel = object
        return torch, transformers

    def run_preimport(self, modules, omp):
        from unittest import mock
        logged = []
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
        if omp is not None:
            env["OMP_NUM_THREADS"] = omp
        with mock.patch.dict(sys.modules, modules), mock.patch.dict(os.environ, env, clear=True):
            ok = cli.preimport_frameworks(log=logged.append)
        return ok, logged

    def test_imports_both_logs_the_versions_and_gives_torch_the_omp_threads(self):
        torch, transformers = self.fakes()
        ok, logged = self.run_preimport({"torch": torch, "transformers": transformers}, "3")
        self.assertTrue(ok)
        self.assertEqual(torch.threads, [3])
        self.assertEqual(len(logged), 1)
        self.assertRegex(logged[0], r"^imported torch 9\.9 and transformers 8\.8 in \d+\.\d s \(torch threads: 3\)$")

    def test_no_or_bad_omp_value_leaves_torch_threads_alone(self):
        for omp in (None, "", "0", "many"):
            torch, transformers = self.fakes()
            ok, _ = self.run_preimport({"torch": torch, "transformers": transformers}, omp)
            self.assertTrue(ok)
            self.assertEqual(torch.threads, [], omp)

    def test_a_framework_that_fails_to_import_is_logged_not_raised(self):
        torch, _ = self.fakes()
        ok, logged = self.run_preimport({"torch": torch, "transformers": None}, "2")
        self.assertFalse(ok)
        self.assertEqual(len(logged), 1)
        self.assertRegex(logged[0], r"^could not import the frameworks ahead of tasks \((ModuleNotFound|Import)Error: .*transformers")

    def test_serve_runs_it_before_reading_the_first_request(self):
        events = []

        class Stdin:
            def readline(self):
                events.append("read")
                return b""
        r, w = os.pipe()
        try:
            rc = cli.serve(w, stdin=Stdin(), run=None, device_usable=lambda: True, release=lambda: None,
                           preimport=lambda: events.append("preimport"))
        finally:
            os.close(w)
            os.close(r)
        self.assertEqual(rc, 0)
        self.assertEqual(events, ["preimport", "read"])


class TestServeLoop(unittest.TestCase):
    """serve() in this process, with a stand-in for running a task."""

    def serve(self, lines, outcomes):
        r, w = os.pipe()
        ran, released = [], []

        def run(task_path, result_path, info):
            ran.append((task_path, result_path))
            info["task_id"] = len(ran)
            return 0, outcomes[len(ran) - 1]
        stdin = io.BytesIO(b"".join(lines))
        try:
            rc = cli.serve(w, stdin=stdin, run=run, device_usable=lambda: True,
                           release=lambda: released.append(len(ran)))
        finally:
            os.close(w)
        with os.fdopen(r, "rb") as f:
            replies = [json.loads(line) for line in f.read().splitlines()]
        return rc, ran, released, replies, stdin

    def req(self, n):
        return json.dumps({"task": f"/t{n}.json", "result": f"/r{n}.json"}).encode() + b"\n"

    def test_serves_every_request_in_order_and_exits_0_at_end_of_input(self):
        ok = {"status": "passed", "reason": ""}
        rc, ran, released, replies, _ = self.serve([self.req(1), b"\n", self.req(2), self.req(3)], [ok] * 3)
        self.assertEqual(rc, 0)
        self.assertEqual(ran, [("/t1.json", "/r1.json"), ("/t2.json", "/r2.json"), ("/t3.json", "/r3.json")])
        self.assertEqual([d["done"] for d in replies], [1, 2, 3])
        self.assertTrue(all(d["fatal"] is False for d in replies))
        self.assertEqual(released, [1, 2, 3])  # memory given back after every task

    def test_result_in_the_done_line_when_the_worker_takes_it(self):
        ok = {"status": "passed", "reason": "", "weights": "random", "metrics": {"n": 1}, "env": {}}
        inline = json.dumps({"task": "/t1.json", "result": "/r1.json", "result_inline": True}).encode() + b"\n"
        rc, ran, _, replies, _ = self.serve([inline, self.req(2)], [ok, ok])
        self.assertEqual(rc, 0)
        self.assertEqual(ran, [("/t1.json", None), ("/t2.json", "/r2.json")])  # None: not written
        self.assertEqual(replies[0]["result"], ok)
        self.assertNotIn("result", replies[1])  # an older worker: the file, as before

    def test_a_result_too_long_for_the_line_goes_to_the_file(self):
        with tempfile.TemporaryDirectory() as d:
            rp = os.path.join(d, "r1.json")
            big = {"status": "failed", "reason": "too long", "weights": "random-init", "metrics": {}, "outputs": {},
                   "env": {}, "traceback": "x" * (lib.CONTROL_LINE_MAX + 1)}
            inline = json.dumps({"task": "/t1.json", "result": rp, "result_inline": True}).encode() + b"\n"
            rc, _, _, replies, _ = self.serve([inline], [big])
            self.assertEqual(rc, 0)
            self.assertEqual(replies[0]["done"], 1)
            self.assertNotIn("result", replies[0])
            with open(rp, encoding="utf-8") as f:
                self.assertEqual(json.load(f)["traceback"], big["traceback"])

    def test_malformed_request_is_answered_and_the_loop_goes_on(self):
        ok = {"status": "passed", "reason": ""}
        rc, ran, _, replies, _ = self.serve([b"{oops\n", self.req(1)], [ok])
        self.assertEqual(rc, 0)
        self.assertEqual(len(ran), 1)
        self.assertIn("error", replies[0])
        self.assertIn("not JSON", replies[0]["error"])
        self.assertEqual(replies[1]["done"], 1)

    def test_fatal_error_answers_then_exits_3_without_reading_more(self):
        ok = {"status": "passed", "reason": ""}
        bad = {"status": "error", "reason": "RuntimeError: CUDA error: device-side assert triggered"}
        rc, ran, released, replies, stdin = self.serve([self.req(1), self.req(2), self.req(3)], [ok, bad, ok])
        self.assertEqual(rc, 3)
        self.assertEqual(len(ran), 2)
        self.assertEqual(released, [1])  # no point cleaning a poisoned process
        self.assertEqual(replies[1]["done"], 2)
        self.assertTrue(replies[1]["fatal"])
        self.assertIn("device-side assert", replies[1]["reason"])
        self.assertEqual(stdin.read(), self.req(3))  # left unread

    def test_closed_control_descriptor_ends_the_loop(self):
        r, w = os.pipe()
        os.close(r)
        ok = {"status": "passed", "reason": ""}
        try:
            rc = cli.serve(w, stdin=io.BytesIO(self.req(1) + self.req(2)),
                           run=lambda t, res, info: (0, ok), device_usable=lambda: True, release=lambda: None)
        finally:
            os.close(w)
        self.assertEqual(rc, 1)


class TestServeProcess(unittest.TestCase):
    """hfleet_runner.py --serve as the worker runs it."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.d = self.dir.name
        self.log = open(os.path.join(self.d, "output.log"), "w+b")

    def tearDown(self):
        proc = getattr(self, "proc", None)
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        self.log.close()
        self.dir.cleanup()

    def start(self, extra_env=None, args=("--serve",)):
        r, w = os.pipe()
        env = dict(os.environ, HFLEET_CONTROL_FD=str(w), **(extra_env or {}))
        self.proc = subprocess.Popen([sys.executable, RUNNER, *args], stdin=subprocess.PIPE,
                                     stdout=self.log, stderr=subprocess.STDOUT, pass_fds=(w,), env=env)
        os.close(w)
        self.ctl = r
        self.addCleanup(os.close, r)

    def task(self, n, **kw):
        t = {"task_id": n, "attempt": 1, "model_type": "bert", "backend": "openvino", "kind": "test"}
        t.update(kw)
        path = os.path.join(self.d, f"task-{n}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(t, f)
        return path

    def send(self, task_path, result_path):
        self.proc.stdin.write(json.dumps({"task": task_path, "result": result_path}).encode() + b"\n")
        self.proc.stdin.flush()

    def test_one_process_serves_several_tasks_and_answers_on_the_control_descriptor(self):
        self.start()
        for n in (1, 2, 3):
            rp = os.path.join(self.d, f"result-{n}.json")
            self.send(self.task(n), rp)
            done = json.loads(read_line(self.ctl))
            self.assertEqual(done["done"], n)
            self.assertIs(done["fatal"], False)
            self.assertIsInstance(done["rss_bytes"], int)
            self.assertGreater(done["rss_bytes"], 1 << 20)
            with open(rp, encoding="utf-8") as f:
                result = json.load(f)
            self.assertEqual(result["status"], "skipped")
            self.assertEqual(lib.validate_result(result), [])
            self.assertFalse(os.path.exists(rp + ".tmp"))  # written atomically, as one-shot
            self.assertIsNone(self.proc.poll())  # still there for the next
        self.proc.stdin.close()
        self.assertEqual(self.proc.wait(60), 0)
        self.assertIsNone(read_line(self.ctl))
        self.log.seek(0)
        out = self.log.read().decode()
        self.assertIn("serving tasks from stdin", out)
        self.assertIn("task 3 attempt 1", out)
        self.assertNotIn('"done"', out)  # control lines never on stdout

    def test_task_given_in_the_request_line_runs_as_from_a_file(self):
        self.start()
        t = {"task_id": 5, "attempt": 1, "model_type": "bert", "backend": "openvino", "kind": "test"}
        rp = os.path.join(self.d, "result-5.json")
        self.proc.stdin.write(json.dumps({"task": t, "result": rp}).encode() + b"\n")
        self.proc.stdin.flush()
        done = json.loads(read_line(self.ctl))
        self.assertEqual(done["done"], 5)
        self.assertIs(done["task_inline"], True)  # the worker may send it so again
        with open(rp, encoding="utf-8") as f:
            result = json.load(f)
        self.assertEqual(result["status"], "skipped")
        self.assertEqual(lib.validate_result(result), [])

    def test_result_inline_from_the_real_serve_loop(self):
        self.start()
        rp = os.path.join(self.d, "result-6.json")
        self.proc.stdin.write(json.dumps({"task": self.task(6), "result": rp, "result_inline": True}).encode()
                              + b"\n")
        self.proc.stdin.flush()
        done = json.loads(read_line(self.ctl))
        self.assertEqual(done["done"], 6)
        self.assertEqual(done["result"]["status"], "skipped")
        self.assertEqual(lib.validate_result(done["result"]), [])
        self.assertFalse(os.path.exists(rp))  # nothing written
        self.assertFalse(os.path.exists(rp + ".tmp"))

    def test_malformed_line_and_unreadable_task_do_not_end_the_runner(self):
        self.start()
        self.proc.stdin.write(b"this is not a request\n")
        self.proc.stdin.flush()
        self.assertIn("not JSON", json.loads(read_line(self.ctl))["error"])
        rp = os.path.join(self.d, "result-missing.json")
        self.send(os.path.join(self.d, "no-such-task.json"), rp)
        done = json.loads(read_line(self.ctl))
        self.assertIsNone(done["done"])  # its id is unknown
        with open(rp, encoding="utf-8") as f:
            self.assertEqual(json.load(f)["status"], "error")
        rp = os.path.join(self.d, "result-4.json")
        self.send(self.task(4), rp)
        self.assertEqual(json.loads(read_line(self.ctl))["done"], 4)
        self.proc.stdin.close()
        self.assertEqual(self.proc.wait(60), 0)

    def test_usage_errors(self):
        for env, args in (({"HFLEET_CONTROL_FD": "x"}, ("--serve",)),
                          ({"HFLEET_CONTROL_FD": "99"}, ("--serve",)),
                          ({}, ("--serve", "--task", "t.json")),
                          ({"HFLEET_CONTROL_FD": "1"}, ("--serve",))):
            with self.subTest(env=env, args=args):
                p = subprocess.run([sys.executable, RUNNER, *args], capture_output=True, text=True, timeout=60,
                                   env={**os.environ, "HFLEET_CONTROL_FD": "", **env}, stdin=subprocess.DEVNULL)
                self.assertEqual(p.returncode, 2, p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
