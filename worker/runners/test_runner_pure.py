"""Unit tests of the parts of the hfleet runner that need no torch (stdlib unittest).

  cd /work/main && python3 -m unittest discover -s worker/runners -p 'test_*.py' -v

The CLI tests run hfleet_runner.py as a subprocess on a real task JSON.  Where
torch is missing they check the 'skipped' result; where torch is present they
check only what holds either way (test_runner_torch.py covers the rest).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "hfleet_runner.py")
sys.path.insert(0, HERE)

import hfleet_plan as plan_mod  # noqa: E402
import hfleet_runner_lib as lib  # noqa: E402

HAVE_TORCH = importlib.util.find_spec("torch") is not None


def task_dict(**kw):
    t = {"task_id": 12, "attempt": 1, "job_id": 3, "model_type": "bert",
         "hf_id": "google-bert/bert-base-uncased", "family": "encoder-only", "task": "fill-mask",
         "modality": "text", "kind": "test", "backend": "cpu", "device_index": 0, "batch_size": 1,
         "seq_len": 128, "precision": "fp32", "iterations": 20, "warmup": 3, "timeout_s": 600}
    t.update(kw)
    return t


def run_cli(task, *extra_args, result_name="result.json", env=None):
    """Run the CLI on `task` (dict, or raw str written as-is); return (proc, result or None)."""
    with tempfile.TemporaryDirectory() as d:
        tp = os.path.join(d, "task.json")
        rp = os.path.join(d, result_name)
        with open(tp, "w", encoding="utf-8") as f:
            f.write(task if isinstance(task, str) else json.dumps(task))
        p = subprocess.run([sys.executable, RUNNER, "--task", tp, "--result", rp, *extra_args],
                           capture_output=True, text=True, timeout=300, env=env)
        result = None
        if os.path.exists(rp):
            with open(rp, encoding="utf-8") as f:
                result = json.load(f)
        leftovers = sorted(os.listdir(d))
    return p, result, leftovers


class TestPercentiles(unittest.TestCase):
    def test_hand_computed(self):
        xs = [15, 20, 35, 40, 50]
        # rank = p/100*(n-1): p50 -> 2 -> 35; p90 -> 3.6 -> 40 + 0.6*10 = 46; p99 -> 3.96 -> 49.6
        self.assertEqual(lib.percentile(xs, 50), 35)
        self.assertAlmostEqual(lib.percentile(xs, 90), 46.0)
        self.assertAlmostEqual(lib.percentile(xs, 99), 49.6)
        self.assertEqual(lib.percentile(xs, 0), 15)
        self.assertEqual(lib.percentile(xs, 100), 50)
        # p25 -> rank 1 -> 20; p40 -> rank 1.6 -> 20 + 0.6*15 = 29
        self.assertEqual(lib.percentile(xs, 25), 20)
        self.assertAlmostEqual(lib.percentile(xs, 40), 29.0)

    def test_unsorted_and_even_count(self):
        xs = [4.0, 1.0, 3.0, 2.0]
        # sorted 1,2,3,4: p50 -> rank 1.5 -> 2.5; p90 -> rank 2.7 -> 3.7
        self.assertAlmostEqual(lib.percentile(xs, 50), 2.5)
        self.assertAlmostEqual(lib.percentile(xs, 90), 3.7)

    def test_single_and_errors(self):
        self.assertEqual(lib.percentile([7.5], 99), 7.5)
        with self.assertRaises(ValueError):
            lib.percentile([], 50)
        with self.assertRaises(ValueError):
            lib.percentile([1, 2], 101)

    def test_latency_summary_in_ms(self):
        s = lib.latency_summary([0.010, 0.020, 0.030, 0.040, 0.100])
        self.assertAlmostEqual(s["mean"], 40.0)
        self.assertAlmostEqual(s["p50"], 30.0)
        self.assertAlmostEqual(s["p90"], 76.0)   # rank 3.6: 40 + 0.6*60
        self.assertAlmostEqual(s["p99"], 97.6)   # rank 3.96: 40 + 0.96*60
        self.assertAlmostEqual(s["min"], 10.0)
        self.assertAlmostEqual(s["max"], 100.0)
        with self.assertRaises(ValueError):
            lib.latency_summary([])
        with self.assertRaises(ValueError):
            lib.latency_summary([0.01, float("nan")])

    def test_throughput(self):
        self.assertAlmostEqual(lib.throughput_items_s(8, 0.004), 2000.0)
        self.assertIsNone(lib.throughput_items_s(8, 0.0))


def good_result(**kw):
    r = lib.make_result("passed", "", weights="random-init",
                        metrics={"load_time_s": 1.2, "forward_time_s": 0.01},
                        env={"python": "3.11.7", "torch": "2.11.0", "torch_cuda": None, "torch_hip": None,
                             "transformers": "5.17.0", "device_name": "cpu", "platform": "Linux"},
                        outputs={"shapes": {"last_hidden_state": [1, 16, 32]}, "finite": True})
    r.update(kw)
    return r


class TestResultValidation(unittest.TestCase):
    def test_good_results(self):
        self.assertEqual(lib.validate_result(good_result()), [])
        sk = lib.make_result("skipped", "backend qnn not supported by this runner version")
        self.assertEqual(lib.validate_result(sk), [])
        err = lib.make_result("error", "RuntimeError: boom", weights="random-init", traceback_text="Traceback\n  x\nRuntimeError: boom")
        self.assertEqual(lib.validate_result(err), [])
        self.assertIn("traceback", err)
        bench = good_result(metrics={"load_time_s": 1.0, "latency_ms": {"mean": 1.0, "p50": 1.0, "p90": 1.2, "p99": 1.5},
                                     "throughput_items_s": 1000.0, "peak_memory_bytes": None, "iterations": 20})
        self.assertEqual(lib.validate_result(bench), [])

    def test_rejects_bad_status(self):
        for status in ("ok", "PASSED", "timeout", None, 1):
            self.assertTrue(lib.validate_result(good_result(status=status)), status)

    def test_rejects_missing_or_bad_reason(self):
        self.assertTrue(lib.validate_result(lib.make_result("skipped", "")))
        self.assertTrue(lib.validate_result(dict(lib.make_result("error", "x"), reason="")))
        self.assertTrue(lib.validate_result(good_result(reason="should be empty")))
        self.assertTrue(lib.validate_result(dict(lib.make_result("failed", "x", weights="pretrained"), reason="a\nb")))

    def test_rejects_bad_weights_metrics_and_keys(self):
        self.assertTrue(lib.validate_result(good_result(weights="random")))
        self.assertTrue(lib.validate_result(good_result(weights=None)))  # passed must say which
        self.assertTrue(lib.validate_result(good_result(metrics={"load_time_s": float("nan")})))
        self.assertTrue(lib.validate_result(good_result(metrics={"load_time_s": -1.0})))
        self.assertTrue(lib.validate_result(good_result(metrics={"load_time_s": "fast"})))
        self.assertTrue(lib.validate_result(good_result(metrics={"latency_ms": {"mean": 1.0}})))
        self.assertTrue(lib.validate_result(good_result(extra=1)))
        self.assertTrue(lib.validate_result(good_result(traceback="only for error/failed")))
        self.assertTrue(lib.validate_result(good_result(outputs={"shapes": {}, "finite": False})))
        self.assertTrue(lib.validate_result(good_result(env="linux")))
        self.assertTrue(lib.validate_result([]))

    def test_make_result_is_one_line_and_bounded(self):
        r = lib.make_result("error", "line one\nline two\t" + "x" * 5000, weights=None, traceback_text="\n".join(
            f"line {i}" for i in range(100)))
        self.assertNotIn("\n", r["reason"])
        self.assertLessEqual(len(r["reason"]), lib.REASON_MAX_CHARS)
        self.assertEqual(len(r["traceback"].splitlines()), lib.TRACEBACK_LINES)
        self.assertTrue(r["traceback"].endswith("line 99"))
        self.assertNotIn("traceback", lib.make_result("passed", "", traceback_text="x"))

    def test_exception_reason(self):
        self.assertEqual(lib.exception_reason(ValueError("bad\nthing"), "build"), "build: ValueError: bad thing")
        self.assertEqual(lib.exception_reason(KeyError("k")), "KeyError: 'k'")


class TestAtomicWrite(unittest.TestCase):
    def test_writes_valid_json_via_tmp_and_rename(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "result.json")
            calls = []
            real_replace = os.replace

            def spy_replace(src, dst):
                calls.append((src, dst, os.path.exists(src), os.path.exists(dst)))
                return real_replace(src, dst)

            with mock.patch.object(lib.os, "replace", side_effect=spy_replace), \
                    mock.patch.object(lib.os, "fsync", wraps=os.fsync) as fsync:
                lib.write_result_atomic(path, good_result())
            self.assertEqual(calls, [(path + ".tmp", path, True, False)])
            self.assertGreaterEqual(fsync.call_count, 1)
            self.assertEqual(os.listdir(d), ["result.json"])
            with open(path, encoding="utf-8") as f:
                self.assertEqual(json.load(f), good_result())

    def test_overwrites_and_refuses_invalid(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "result.json")
            lib.write_result_atomic(path, good_result())
            with self.assertRaises(ValueError):
                lib.write_result_atomic(path, good_result(status="bogus"))
            with open(path, encoding="utf-8") as f:
                self.assertEqual(json.load(f)["status"], "passed")  # old file intact
            self.assertFalse(os.path.exists(path + ".tmp"))
            lib.write_result_atomic(path, lib.make_result("skipped", "no torch"))
            with open(path, encoding="utf-8") as f:
                self.assertEqual(json.load(f)["status"], "skipped")

    def test_no_nan_in_json(self):
        with self.assertRaises(ValueError):
            lib.result_to_json({"x": math.inf})


class TestTaskParsing(unittest.TestCase):
    def test_full_task(self):
        t = lib.parse_task(task_dict())
        self.assertEqual(t["model_type"], "bert")
        self.assertEqual(t["iterations"], 20)

    def test_defaults(self):
        t = lib.parse_task({"task_id": 1, "model_type": "gpt2", "backend": "cpu"})
        self.assertEqual((t["kind"], t["precision"], t["batch_size"], t["modality"]), ("test", "fp32", 1, "text"))

    def test_rejects(self):
        bad = [
            [], {"model_type": "bert", "backend": "cpu"},
            task_dict(kind="train"), task_dict(backend="tpu"), task_dict(precision="int4"),
            task_dict(batch_size=0), task_dict(batch_size="8"), task_dict(seq_len=True),
            task_dict(model_type=""), task_dict(timeout_s=0), task_dict(warmup=-1),
        ]
        for raw in bad:
            with self.assertRaises(lib.TaskError, msg=repr(raw)):
                lib.parse_task(raw)


class TestGating(unittest.TestCase):
    def test_backends(self):
        for b in ("cpu", "cuda", "rocm", "mps"):
            self.assertIsNone(lib.backend_precheck(b))
        self.assertTrue(lib.backend_precheck("openvino").startswith("backend openvino"))
        self.assertTrue(lib.backend_precheck("qnn").startswith("backend qnn"))
        self.assertEqual(lib.backend_precheck("tpu"), "backend tpu not supported by this runner version")

    def test_companion_backends_name_what_is_missing(self):
        none = lambda mod: None                      # noqa: E731 - nothing installed
        some = lambda mod: None if mod.startswith("optimum") else object()   # noqa: E731
        every = lambda mod: object()                 # noqa: E731
        r = lib.companion_backend_reason("openvino", find_spec=none, environ={})
        self.assertIn("needs openvino and optimum.intel (optimum-intel)", r)
        self.assertIn(sys.executable, r)
        r = lib.companion_backend_reason("openvino", find_spec=some, environ={})
        self.assertIn("needs optimum.intel", r)
        self.assertNotIn("openvino and", r)
        r = lib.companion_backend_reason("openvino", find_spec=every, environ={})
        self.assertIn("installed, but this runner version does not export", r)
        self.assertEqual(lib.companion_backend_reason("qnn", environ={}),
                         "backend qnn needs the Qualcomm QNN SDK: QNN_SDK_ROOT is not set")
        self.assertIn("/opt/qcom/qnn is present, but", lib.companion_backend_reason("qnn", environ={"QNN_SDK_ROOT": "/opt/qcom/qnn"}))

    def test_precision(self):
        self.assertIn("fp16", lib.precision_skip_reason("cpu", "fp16"))
        self.assertIsNone(lib.precision_skip_reason("cpu", "bf16"))
        self.assertIsNone(lib.precision_skip_reason("cuda", "fp16"))
        # int8: PyTorch's dynamic quantization has CPU kernels only
        self.assertIsNone(lib.precision_skip_reason("cpu", "int8"))
        for backend in ("cuda", "rocm", "mps"):
            self.assertIn("int8", lib.precision_skip_reason(backend, "int8"))


class TestPretrainedWeights(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def put(self, rel, text="{}"):
        path = os.path.join(self.tmp.name, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)

    def test_weights_dir_finds_whole_checkpoints_only(self):
        d = self.tmp.name
        self.put("w/acme/bert/config.json")
        self.put("w/acme/bert/model.safetensors", "x")
        self.put("w/gpt2/config.json")
        self.put("w/gpt2/pytorch_model.bin", "x")
        self.put("w/acme/no-weights/config.json")
        self.put("w/acme/no-config/model.safetensors", "x")
        self.assertEqual(lib.weights_dir_path("acme/bert", [os.path.join(d, "w")]), os.path.join(d, "w", "acme/bert"))
        self.assertEqual(lib.weights_dir_path("gpt2", os.path.join(d, "w")), os.path.join(d, "w", "gpt2"))
        self.assertIsNone(lib.weights_dir_path("acme/no-weights", os.path.join(d, "w")))
        self.assertIsNone(lib.weights_dir_path("acme/no-config", os.path.join(d, "w")))
        self.assertIsNone(lib.weights_dir_path("acme/bert", ""))
        self.assertIsNone(lib.weights_dir_path(None, os.path.join(d, "w")))
        # a list: the first directory that has it
        self.put("v/acme/bert/config.json")
        self.put("v/acme/bert/model.safetensors", "x")
        both = os.pathsep.join(["/nonexistent", os.path.join(d, "v"), os.path.join(d, "w")])
        self.assertEqual(lib.weights_dir_path("acme/bert", both), os.path.join(d, "v", "acme/bert"))

    def test_weights_dir_refuses_ids_that_leave_the_directory(self):
        d = self.tmp.name
        self.put("secret/config.json")
        self.put("secret/model.safetensors", "x")
        inner = os.path.join(d, "w", "x")
        os.makedirs(inner)
        for hf_id in ("../secret", "x/../../secret", "/etc", "a/b/c", "..", "x/..", ""):
            self.assertIsNone(lib.weights_dir_path(hf_id, os.path.join(d, "w")), hf_id)

    def test_sharded_checkpoint_needs_every_shard(self):
        d = os.path.join(self.tmp.name, "w")
        index = json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors",
                                           "b": "model-00002-of-00002.safetensors"}})
        self.put("w/m/config.json")
        self.put("w/m/model.safetensors.index.json", index)
        self.put("w/m/model-00001-of-00002.safetensors", "x")
        self.assertIsNone(lib.weights_dir_path("m", d))
        self.put("w/m/model-00002-of-00002.safetensors", "x")
        self.assertEqual(lib.weights_dir_path("m", d), os.path.join(d, "m"))
        self.put("w/bad/config.json")
        self.put("w/bad/model.safetensors.index.json", "not json")
        self.assertIsNone(lib.weights_dir_path("bad", d))
        self.put("w/esc/config.json")
        self.put("w/esc/model.safetensors.index.json", json.dumps({"weight_map": {"a": "../m/config.json"}}))
        self.assertIsNone(lib.weights_dir_path("esc", d))

    def test_known_answers(self):
        self.assertIsNone(lib.known_answer_spec("image-classification"))
        self.assertIn("{mask}", lib.known_answer_spec("fill-mask")["prompt"])
        # WordPiece, byte-level BPE (Ġ) and SentencePiece (▁) spellings of the word
        for answers in (["the", "paris", "lyon"], ["\u0120Paris"], [" Paris"], ["\u2581paris", "x"]):
            ok, detail = lib.check_known_answer("fill-mask", answers)
            self.assertTrue(ok, answers)
            self.assertTrue(detail.startswith("passed"), detail)
        ok, detail = lib.check_known_answer("fill-mask", ["", " ", "##"])
        self.assertIsNone(ok)
        self.assertTrue(detail.startswith("not checked"), detail)
        ok, detail = lib.check_known_answer("fill-mask", ["london", "parish", "berlin"])
        self.assertFalse(ok)
        self.assertIn("expected 'paris'", detail)
        self.assertIn("parish", detail)
        self.assertTrue(lib.check_known_answer("text-generation", [" 6, 7, 8"])[0])
        self.assertTrue(lib.check_known_answer("text-generation", ["6"])[0])
        for wrong in (" 16, 17", " 7, 8", " five", ""):
            ok, detail = lib.check_known_answer("text-generation", [wrong])
            self.assertFalse(ok, wrong)
            self.assertTrue(detail.startswith("failed"), detail)
        with self.assertRaises(ValueError):
            lib.check_known_answer("depth-estimation", ["x"])


class TestGenerationRoom(unittest.TestCase):
    def test_learned_positions_bound_prompt_plus_new_tokens(self):
        self.assertIsNone(lib.generation_room_reason(992, 1024, 32))      # exactly fits
        why = lib.generation_room_reason(1024, 1024, 32)
        self.assertIn("1024-token prompt leaves no room for 32 new tokens", why)
        self.assertIn("1024 learned positions", why)
        self.assertIsNone(lib.generation_room_reason(4096, None, 32))     # rotary: no limit
        self.assertIsNone(lib.generation_room_reason(10, 0, 32))


class TestShrink(unittest.TestCase):
    LLAMA = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 8, "intermediate_size": 11008, "head_dim": 128, "vocab_size": 32000,
             "max_position_embeddings": 2048, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}

    def test_llama(self):
        d, changes = plan_mod.shrink_config_dict(self.LLAMA, seq_len=32)
        self.assertEqual(d["hidden_size"], 64)
        self.assertEqual(d["num_hidden_layers"], 2)
        self.assertEqual(d["num_attention_heads"], 4)
        self.assertEqual(d["num_key_value_heads"], 2)
        self.assertEqual(d["head_dim"], 16)
        self.assertEqual(d["intermediate_size"], 128)
        self.assertEqual(d["vocab_size"], 32000)          # kept
        self.assertEqual(d["max_position_embeddings"], 2048)
        self.assertEqual(self.LLAMA["hidden_size"], 4096)  # input not modified
        self.assertTrue(any(c.startswith("hidden_size: 4096 -> 64") for c in changes))

    def test_shallow_keeps_every_width(self):
        moe = dict(self.LLAMA, num_local_experts=64, num_experts_per_tok=8, moe_intermediate_size=1408,
                   layer_types=["sliding_attention", "full_attention"] * 16, kv_lora_rank=512,
                   vision_config={"model_type": "siglip_vision_model", "hidden_size": 1152, "num_hidden_layers": 27,
                                  "num_attention_heads": 16, "intermediate_size": 4304})
        d, changes = plan_mod.shrink_config_dict(moe, seq_len=32, keep_width=True)
        for k in ("hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "intermediate_size",
                  "moe_intermediate_size", "kv_lora_rank"):
            self.assertEqual(d[k], moe[k], k)
        self.assertEqual(d["vision_config"]["hidden_size"], 1152)
        self.assertEqual(d["vision_config"]["intermediate_size"], 4304)
        self.assertEqual(d["num_hidden_layers"], 2)
        self.assertEqual(d["vision_config"]["num_hidden_layers"], 2)
        self.assertEqual(d["layer_types"], ["sliding_attention", "full_attention"])
        self.assertEqual((d["num_local_experts"], d["num_experts_per_tok"]), (4, 2))
        self.assertTrue(any(c.startswith("vision_config.num_hidden_layers: 27 -> 2") for c in changes))
        # the narrow config of the same dict does narrow them
        self.assertEqual(plan_mod.shrink_config_dict(moe, seq_len=32)[0]["vision_config"]["hidden_size"], 64)

    def test_never_grows_and_mqa_mha(self):
        small = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                 "intermediate_size": 37}
        d, changes = plan_mod.shrink_config_dict(small)
        self.assertEqual(d, small)
        self.assertEqual(changes, [])
        mha = dict(self.LLAMA, num_key_value_heads=32)
        self.assertEqual(plan_mod.shrink_config_dict(mha)[0]["num_key_value_heads"], 4)
        mqa = dict(self.LLAMA, num_key_value_heads=1)
        self.assertEqual(plan_mod.shrink_config_dict(mqa)[0]["num_key_value_heads"], 1)

    def test_positions_cover_seq_len(self):
        d, _ = plan_mod.shrink_config_dict({"n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 64}, seq_len=128)
        self.assertEqual((d["n_embd"], d["n_layer"], d["n_head"], d["n_positions"]), (64, 2, 4, 128))

    def test_heads_divide_hidden(self):
        d, _ = plan_mod.shrink_config_dict({"hidden_size": 48, "num_attention_heads": 12})
        self.assertEqual(d["hidden_size"] % d["num_attention_heads"], 0)
        self.assertEqual(d["num_attention_heads"], 4)
        d, _ = plan_mod.shrink_config_dict({"hidden_size": 60, "num_attention_heads": 12})
        self.assertEqual(60 % d["num_attention_heads"], 0)

    def test_distilbert_dim_and_hidden_dim(self):
        d, _ = plan_mod.shrink_config_dict({"dim": 768, "hidden_dim": 3072, "n_layers": 6, "n_heads": 12})
        self.assertEqual((d["dim"], d["hidden_dim"], d["n_layers"], d["n_heads"]), (64, 128, 2, 4))

    def test_nested_subconfigs(self):
        cfg = {"model_type": "llava", "text_config": dict(self.LLAMA),
               "vision_config": {"model_type": "clip_vision_model", "hidden_size": 1024, "num_hidden_layers": 24,
                                 "num_attention_heads": 16, "intermediate_size": 4096, "image_size": 336,
                                 "patch_size": 14},
               "image_token_index": 32000}
        d, changes = plan_mod.shrink_config_dict(cfg)
        self.assertEqual(d["text_config"]["hidden_size"], 64)
        self.assertEqual(d["vision_config"]["hidden_size"], 64)
        self.assertEqual(d["vision_config"]["image_size"], 336)  # kept: placeholders/positions depend on it
        self.assertEqual(d["image_token_index"], 32000)
        self.assertTrue(any(c.startswith("vision_config.") for c in changes))

    def test_placeholder_ids_inside_text_vocab(self):
        d, _ = plan_mod.shrink_config_dict({"model_type": "llava", "image_token_index": 32000,
                                       "text_config": dict(self.LLAMA)})
        self.assertEqual(d["text_config"]["vocab_size"], 32001)

    def test_per_layer_lists_keep_each_kind(self):
        lt = (["sliding_attention"] * 5 + ["full_attention"]) * 4
        d, _ = plan_mod.shrink_config_dict(dict(self.LLAMA, num_hidden_layers=24, layer_types=lt,
                                           intermediate_size=[9216] * 24,
                                           per_layer_config={"5": {"a": 1}, "11": {"a": 2}},
                                           attn_layer_indices=[1, 9, 17]))
        self.assertEqual(d["num_hidden_layers"], 2)
        self.assertEqual(d["layer_types"], ["sliding_attention", "full_attention"])
        self.assertEqual(d["intermediate_size"], [128, 128])  # per-layer list: truncated and narrowed
        self.assertEqual(d["per_layer_config"], {})
        self.assertEqual(d["attn_layer_indices"], [1])

    def test_moe_and_mla(self):
        cfg = {"hidden_size": 7168, "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128,
               "n_routed_experts": 256, "num_experts_per_tok": 8, "n_group": 8, "topk_group": 4,
               "moe_intermediate_size": 2048, "intermediate_size": 18432, "first_k_dense_replace": 3,
               "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128,
               "v_head_dim": 128, "qk_head_dim": 192}
        d, _ = plan_mod.shrink_config_dict(cfg)
        self.assertEqual((d["n_routed_experts"], d["num_experts_per_tok"], d["n_group"], d["topk_group"]), (4, 2, 1, 1))
        self.assertEqual(d["first_k_dense_replace"], 1)
        self.assertEqual((d["kv_lora_rank"], d["q_lora_rank"]), (32, 32))
        self.assertEqual(d["qk_head_dim"], d["qk_rope_head_dim"] + d["qk_nope_head_dim"])
        self.assertEqual(d["moe_intermediate_size"], 64)

    def test_mamba2_and_hybrid(self):
        d, _ = plan_mod.shrink_config_dict({"model_type": "mamba2", "hidden_size": 4096, "num_hidden_layers": 64,
                                       "num_heads": 128, "head_dim": 64, "expand": 2, "n_groups": 8,
                                       "state_size": 128})
        self.assertEqual(d["num_heads"] * d["head_dim"], d["expand"] * d["hidden_size"])
        self.assertEqual(d["n_groups"], 1)
        d, _ = plan_mod.shrink_config_dict({"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                                       "mamba_n_heads": 128, "mamba_d_head": 64, "mamba_expand": 2,
                                       "mamba_n_groups": 1})
        self.assertEqual(d["mamba_n_heads"] * d["mamba_d_head"], d["mamba_expand"] * d["hidden_size"])

    def test_mrope_sections_follow_head_dim(self):
        d, _ = plan_mod.shrink_config_dict(dict(self.LLAMA, rope_parameters={"rope_type": "default",
                                                                          "mrope_section": [16, 24, 24]}))
        self.assertEqual(sum(d["rope_parameters"]["mrope_section"]), d["head_dim"] // 2)

    def test_hierarchical_vision_left_wide(self):
        swin = {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24], "num_layers": 4,
                "image_size": 224}
        d, _ = plan_mod.shrink_config_dict(swin)
        self.assertEqual(d["depths"], [1, 1, 1, 1])
        self.assertEqual((d["embed_dim"], d["num_heads"], d["num_layers"]), (96, [3, 6, 12, 24], 4))

    def test_time_series_gets_prediction_length(self):
        d, _ = plan_mod.shrink_config_dict({"model_type": "informer", "prediction_length": None, "context_length": None,
                                       "d_model": 64, "encoder_layers": 2})
        self.assertEqual((d["prediction_length"], d["context_length"]), (8, 16))

    def test_none_derived_fields_filled(self):
        d, _ = plan_mod.shrink_config_dict(dict(self.LLAMA, head_dim=None, num_key_value_heads=None))
        self.assertEqual((d["head_dim"], d["num_key_value_heads"]), (16, 4))
        d, _ = plan_mod.shrink_config_dict({"hidden_size": 2048, "num_attention_heads": 16, "num_hidden_layers": 4,
                                       "num_experts": 64, "num_experts_per_tok": None, "moe_intermediate_size": None})
        self.assertEqual((d["num_experts"], d["num_experts_per_tok"], d["moe_intermediate_size"]), (4, 2, 64))

    def test_backbone_out_features(self):
        d, _ = plan_mod.shrink_config_dict({"model_type": "dinov2", "hidden_size": 384, "num_hidden_layers": 12,
                                       "num_attention_heads": 6, "out_features": ["stage9", "stage10", "stage11",
                                                                                  "stage12"],
                                       "out_indices": [9, 10, 11, 12],
                                       "stage_names": ["stem"] + [f"stage{i}" for i in range(1, 13)]})
        self.assertEqual(d["num_hidden_layers"], 4)
        self.assertEqual(d["out_features"], ["stage1", "stage2", "stage3", "stage4"])
        self.assertEqual(d["out_indices"], [1, 2, 3, 4])
        self.assertEqual(d["stage_names"], ["stem", "stage1", "stage2", "stage3", "stage4"])
        d, _ = plan_mod.shrink_config_dict({"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6,
                                       "out_features": ["stage12"]})
        self.assertEqual((d["num_hidden_layers"], d["out_features"]), (2, ["stage2"]))

    def test_zamba_style_mamba_keys(self):
        d, _ = plan_mod.shrink_config_dict({"hidden_size": 2560, "num_hidden_layers": 54, "num_attention_heads": 32,
                                       "n_mamba_heads": 80, "mamba_headdim": 64, "mamba_expand": 2,
                                       "mamba_ngroups": 1})
        self.assertEqual(d["n_mamba_heads"] * d["mamba_headdim"], d["mamba_expand"] * d["hidden_size"])
        d, _ = plan_mod.shrink_config_dict({"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                                       "mamba_n_heads": 128, "mamba_d_head": 64, "mamba_expand": 2,
                                       "mamba_d_ssm": 8192})
        self.assertEqual(d["mamba_d_ssm"], d["mamba_n_heads"] * d["mamba_d_head"])

    def test_estimate(self):
        n = plan_mod.estimate_params_from_dict(TestShrink.LLAMA)
        self.assertGreater(n, 5e9)
        self.assertLess(n, 9e9)
        small, _ = plan_mod.shrink_config_dict(TestShrink.LLAMA)
        self.assertLess(plan_mod.estimate_params_from_dict(small), 5e6)


class TestPlanInputs(unittest.TestCase):
    @staticmethod
    def names(plan):
        return {s["name"]: s["shape"] for s in plan if s["fill"] != "value"}

    def test_text_encoder(self):
        plan = plan_mod.plan_inputs({"vocab_size": 1000, "max_positions": 512},
                               {"input_ids": False, "attention_mask": False, "token_type_ids": False,
                                "return_dict": False}, "text", 2, 16)
        self.assertEqual(self.names(plan), {"input_ids": [2, 16], "attention_mask": [2, 16]})
        ids = next(s for s in plan if s["name"] == "input_ids")
        self.assertEqual((ids["fill"], ids["high"]), ("randint", 1000))
        self.assertIn({"name": "return_dict", "dtype": "bool", "shape": [], "fill": "value", "value": True}, plan)

    def test_seq_len_capped_by_positions(self):
        plan = plan_mod.plan_inputs({"vocab_size": 10, "max_positions": 8}, {"input_ids": False}, "text", 1, 32)
        self.assertEqual(self.names(plan)["input_ids"], [1, 8])

    def test_encoder_decoder(self):
        plan = plan_mod.plan_inputs({"vocab_size": 500, "is_encoder_decoder": True},
                               {"input_ids": False, "attention_mask": False, "decoder_input_ids": False,
                                "use_cache": False}, "text", 2, 32)
        self.assertEqual(self.names(plan)["decoder_input_ids"], [2, lib.DECODER_SEQ_LEN_CAP])
        self.assertIn("use_cache", {s["name"] for s in plan})

    def test_image_and_video(self):
        self.assertEqual(self.names(plan_mod.plan_inputs({"image_size": 32, "num_channels": 1}, {"pixel_values": False},
                                                    "image", 2, 8)), {"pixel_values": [2, 1, 32, 32]})
        self.assertEqual(self.names(plan_mod.plan_inputs({"image_size": [30, 40]}, {"pixel_values": False}, "image", 1, 8)),
                         {"pixel_values": [1, 3, 30, 40]})
        self.assertEqual(self.names(plan_mod.plan_inputs({"image_size": 64, "num_frames": 4}, {"pixel_values": False},
                                                    "video", 1, 8)), {"pixel_values": [1, 4, 3, 64, 64]})

    def test_image_sizes_rows(self):
        params = {"input_ids": False, "pixel_values": False, "image_sizes": False}
        # only for vision towers that take image_sizes (pixtral); a CLIP tower breaks with it
        plan = plan_mod.plan_inputs({"vocab_size": 9, "image_size": [28, 56]}, params, "image+text", 2, 4)
        self.assertNotIn("image_sizes", {s["name"] for s in plan})
        plan = plan_mod.plan_inputs({"vocab_size": 9, "image_size": [28, 56], "vision_takes_image_sizes": True},
                               params, "image+text", 2, 4)
        sizes = next(s for s in plan if s["name"] == "image_sizes")
        self.assertEqual((sizes["shape"], sizes["fill"], sizes["row"]), ([2, 2], "rows", [28, 56]))

    def test_image_text(self):
        plan = plan_mod.plan_inputs({"vocab_size": 99, "image_size": 32}, {"input_ids": False, "pixel_values": False},
                               "image+text", 2, 8)
        self.assertEqual(self.names(plan), {"input_ids": [2, 8], "pixel_values": [2, 3, 32, 32]})
        # a dual encoder registered as 'image' still gets its text side
        plan = plan_mod.plan_inputs({"vocab_size": 99, "image_size": 32, "has_text_config": True,
                                "has_vision_config": True}, {"input_ids": False, "pixel_values": False}, "image", 2, 8)
        self.assertEqual(set(self.names(plan)), {"input_ids", "pixel_values"})

    def test_dynamic_resolution_vlm_is_a_plan_error(self):
        with self.assertRaises(plan_mod.PlanError):
            plan_mod.plan_inputs({"vocab_size": 99}, {"input_ids": False, "pixel_values": False,
                                                 "image_grid_thw": False}, "image+text", 1, 8)

    def test_audio(self):
        plan = plan_mod.plan_inputs({}, {"input_values": False, "attention_mask": False}, "audio", 2, 8)
        self.assertEqual(self.names(plan), {"input_values": [2, 16000]})
        whisper = plan_mod.plan_inputs({"num_mel_bins": 80, "audio_frames": 3000, "vocab_size": 51865,
                                   "is_encoder_decoder": True},
                                  {"input_features": False, "decoder_input_ids": False, "attention_mask": False},
                                  "audio", 1, 32)
        self.assertEqual(self.names(whisper), {"input_features": [1, 80, 3000],
                                               "decoder_input_ids": [1, lib.DECODER_SEQ_LEN_CAP]})
        # A mask of the features' own is built; a plain attention_mask only when required.
        own = plan_mod.plan_inputs({"num_mel_bins": 128, "audio_frames": 3000},
                                   {"input_features": True, "feature_attention_mask": False,
                                    "attention_mask": False}, "audio", 1, 32)
        self.assertEqual(self.names(own), {"input_features": [1, 128, 3000], "feature_attention_mask": [1, 3000]})
        needed = plan_mod.plan_inputs({"num_mel_bins": 128, "audio_frames": 3000},
                                      {"input_features": True, "attention_mask": True}, "audio", 1, 32)
        self.assertEqual(self.names(needed), {"input_features": [1, 128, 3000], "attention_mask": [1, 3000]})
        s2t = plan_mod.plan_inputs({"feature_size": 80}, {"input_features": False}, "audio", 1, 32)
        self.assertEqual(self.names(s2t), {"input_features": [1, 128, 80]})
        codec = plan_mod.plan_inputs({"audio_channels": 1}, {"input_values": False}, "audio", 2, 32)
        self.assertEqual(self.names(codec), {"input_values": [2, 1, 16000]})
        ast = plan_mod.plan_inputs({"spectrogram": [1024, 128]}, {"input_values": False}, "audio", 1, 32)
        self.assertEqual(self.names(ast), {"input_values": [1, 1024, 128]})

    def test_time_series(self):
        tst = plan_mod.plan_inputs({"context_length": 16, "prediction_length": 8, "lags_max": 7, "num_time_features": 2},
                              {"past_values": True, "past_time_features": True, "past_observed_mask": True,
                               "future_values": False, "future_time_features": False}, "time-series", 2, 8)
        self.assertEqual(self.names(tst), {"past_values": [2, 23], "past_time_features": [2, 23, 2],
                                           "past_observed_mask": [2, 23], "future_values": [2, 8],
                                           "future_time_features": [2, 8, 2]})
        patch = plan_mod.plan_inputs({"context_length": 32, "num_input_channels": 3}, {"past_values": True},
                                "time-series", 2, 8)
        self.assertEqual(self.names(patch), {"past_values": [2, 32, 3]})

    def test_modality_fallback_and_errors(self):
        # a vision tower tested as 'text' still gets pixel_values
        self.assertEqual(set(self.names(plan_mod.plan_inputs({"image_size": 32}, {"pixel_values": False}, "text", 1, 8))),
                         {"pixel_values"})
        with self.assertRaises(plan_mod.PlanError):
            plan_mod.plan_inputs({}, {"input_ids": False}, "text", 1, 8)  # no vocab
        with self.assertRaises(plan_mod.PlanError):
            plan_mod.plan_inputs({"vocab_size": 9}, {"input_ids": False, "qformer_input_ids": True}, "text", 1, 8)
        with self.assertRaises(plan_mod.PlanError):
            plan_mod.plan_inputs({}, {"use_cache": False}, "text", 1, 8)

    def test_forward_params(self):
        def fwd(self, input_ids, attention_mask=None, *args, **kwargs):
            pass
        params, kw = plan_mod.forward_params(fwd)
        self.assertEqual(params, {"input_ids": True, "attention_mask": False})
        self.assertTrue(kw)


class FakeTensor:
    def __init__(self, shape):
        self.shape = shape


class TestOutputs(unittest.TestCase):
    def test_walk(self):
        out = {"last_hidden_state": FakeTensor([2, 4, 8]), "past_key_values": object(),
               "hidden_states": (FakeTensor([2, 4, 8]), FakeTensor([2, 4, 8])), "loss": None}
        got = [(n, t.shape) for n, t in lib.walk_outputs(out, lambda x: isinstance(x, FakeTensor))]
        self.assertEqual(got, [("last_hidden_state", [2, 4, 8]), ("hidden_states.0", [2, 4, 8]),
                               ("hidden_states.1", [2, 4, 8])])
        self.assertEqual([n for n, _ in lib.walk_outputs(FakeTensor([1]), lambda x: isinstance(x, FakeTensor))],
                         ["output"])

    def test_check(self):
        ok, problems, shapes, finite = lib.check_outputs(
            [{"name": "logits", "shape": [2, 5, 10], "is_float": True, "finite": True}], 2)
        self.assertTrue(ok and finite)
        self.assertEqual(problems, [])
        self.assertEqual(shapes, {"logits": [2, 5, 10]})
        ok, problems, _, finite = lib.check_outputs(
            [{"name": "logits", "shape": [2, 5], "is_float": True, "finite": False}], 2)
        self.assertFalse(ok or finite)
        self.assertIn("non-finite", problems[0])
        ok, problems, _, _ = lib.check_outputs([{"name": "x", "shape": [3, 5, 7], "is_float": True, "finite": True}], 2)
        self.assertFalse(ok)
        self.assertIn("batch dimension 2", problems[0])
        self.assertFalse(lib.check_outputs([], 1)[0])
        # packed batches (pixtral: [1, tokens, dim]) and flattened tokens ([tokens, dim]) are not failures
        self.assertTrue(lib.check_outputs([{"name": "h", "shape": [1, 80, 8], "is_float": True, "finite": True}], 2)[0])
        self.assertTrue(lib.check_outputs([{"name": "h", "shape": [780, 64], "is_float": True, "finite": True}], 2)[0])
        per_patch = {"name": "hidden_states.0", "shape": [16, 4, 64], "is_float": True, "finite": True}
        self.assertTrue(lib.check_outputs([{"name": "h", "shape": [16, 64], "is_float": True, "finite": True},
                                           per_patch], 1)[0])
        self.assertFalse(lib.check_outputs([dict(per_patch, name="h"), per_patch], 1)[0])
        ok, problems, _, _ = lib.check_outputs(
            [{"name": "enc_logits", "shape": [2, 9], "is_float": True, "finite": False, "non_finite_kinds": ["-inf"]}], 2)
        self.assertEqual(problems, ["non-finite values in enc_logits (-inf)"])
        # -inf next to finite values in a logits output is a mask (detection heads), not a failure
        masked = {"name": "enc_outputs_class", "shape": [2, 9], "is_float": True, "finite": False,
                  "non_finite_kinds": ["-inf"], "some_finite": True}
        self.assertTrue(lib.check_outputs([masked], 2)[0])
        # ... but not in a hidden state, not with NaN, and not when every value is -inf
        for bad in (dict(masked, name="last_hidden_state"), dict(masked, non_finite_kinds=["nan", "-inf"]),
                    dict(masked, some_finite=False)):
            self.assertFalse(lib.check_outputs([bad], 2)[0], bad)


class TestTransformersVersion(unittest.TestCase):
    """A task of a model type the worker's transformers lacks is skipped, saying why."""

    def test_missing_type_reason(self):
        known = {"bert": "BertConfig", "gpt2": "GPT2Config"}
        self.assertIsNone(lib.missing_model_type_reason("bert", "5.12.0", known))
        self.assertEqual(lib.missing_model_type_reason("qwen3_5", "5.12.0.dev0", known),
                         "transformers 5.12 has no model type qwen3_5 (registry built from 5.17)")
        self.assertEqual(lib.missing_model_type_reason("x", "weird", known, "6.0"),
                         "transformers weird has no model type x (registry built from 6.0)")
        r = lib.make_result("skipped", lib.missing_model_type_reason("qwen3_5", "5.12.0", known))
        self.assertEqual(lib.validate_result(r), [])

    def test_runner_skips_before_building(self):
        # The torch runner's own path, with stand-ins for torch and an older
        # transformers that lacks the type: skipped with the reason, nothing built.
        import types
        import hfleet_runner_torch as rt
        torch = types.ModuleType("torch")
        torch.__version__ = "2.11.0"
        torch.version = types.SimpleNamespace(cuda=None, hip=None)
        tf = types.ModuleType("transformers")
        tf.__version__ = "5.12.0"
        tf.logging = types.SimpleNamespace(set_verbosity_error=lambda: None)
        models = types.ModuleType("transformers.models")
        auto = types.ModuleType("transformers.models.auto")
        conf = types.ModuleType("transformers.models.auto.configuration_auto")
        conf.CONFIG_MAPPING_NAMES = {"bert": "BertConfig"}
        tf.models, models.auto, auto.configuration_auto = models, auto, conf
        stand_ins = {"torch": torch, "transformers": tf, "transformers.models": models,
                     "transformers.models.auto": auto, "transformers.models.auto.configuration_auto": conf}
        with mock.patch.dict(sys.modules, stand_ins):
            r = rt.run_task(lib.parse_task(task_dict(model_type="qwen3_5", hf_id=None)))
        self.assertEqual(r["status"], "skipped")
        self.assertEqual(r["reason"], "transformers 5.12 has no model type qwen3_5 (registry built from 5.17)")
        self.assertEqual(r["env"]["transformers"], "5.12.0")

    def test_registry_version_is_the_registry_files(self):
        reg = os.path.join(HERE, "..", "..", "coordinator", "registry", "models.tsv")
        with open(reg, encoding="utf-8") as f:
            said = [line.split()[2] for line in f if line.startswith("# transformers ")]
        self.assertTrue(said, "models.tsv does not say which transformers it was built from")
        self.assertEqual(lib.major_minor(said[0]), lib.REGISTRY_TRANSFORMERS,
                         "hfleet_runner_lib.REGISTRY_TRANSFORMERS differs from models.tsv's")


class TestHalfPrecision(unittest.TestCase):
    """Which failures at fp16/bf16 the runner answers with torch.autocast,
    and which it reports as a precision the model cannot run at."""

    def test_half_precision_mix_is_told_from_other_errors(self):
        mix = [
            "mat1 and mat2 must have the same dtype, but got Float and Half",
            "expected mat1 and mat2 to have the same dtype, but got: float != c10::Half",
            "expected scalar type Float but found Half",
            "Input type (float) and bias type (c10::Half) should be the same",
        ]
        for m in mix:
            self.assertTrue(lib.half_precision_mix(m, "fp16"), m)
            self.assertTrue(lib.half_precision_mix(m, "bf16"), m)
            self.assertFalse(lib.half_precision_mix(m, "fp32"), m)   # not a half-precision task
            self.assertFalse(lib.half_precision_mix(m, "int8"), m)
        fft = ("cuFFT only supports dimensions whose sizes are powers of two when computing in half precision, "
               "but got a signal size of[128, 768]")
        for m in ("CUDA out of memory", "shape '[1, 128]' is invalid for input of size 64",
                  "index out of range in self", "", None, fft):
            self.assertFalse(lib.half_precision_mix(m, "fp16"), m)
        # autocast leaves FFTs at the input's precision: a reason to skip instead
        why = lib.half_precision_fft_reason(fft, "fp16")
        self.assertIn("[128, 768]", why)
        self.assertIn("fp16", why)
        self.assertIsNone(lib.half_precision_fft_reason(fft, "fp32"))
        self.assertIsNone(lib.half_precision_fft_reason(mix[0], "fp16"))


class FakeBuildTorch:
    """Just what hfleet_build.build_on_device uses of torch: dtypes, the
    default dtype, a device context and the allocator's cache."""
    float32, float16, bfloat16 = "torch.float32", "torch.float16", "torch.bfloat16"

    def __init__(self):
        import contextlib
        import types
        self.default = self.float32
        self.cuda = types.SimpleNamespace(empty_cache=lambda: None)
        self.device = lambda d: contextlib.nullcontext()

    def get_default_dtype(self):
        return self.default

    def set_default_dtype(self, d):
        self.default = d

    def manual_seed(self, _):
        pass


class TestBuildOnDevice(unittest.TestCase):
    """A half-precision task's model is built in that precision on the GPU,
    in float32 when its initialisation cannot run in it."""

    def setUp(self):
        import types
        import hfleet_build
        self.build = hfleet_build
        self.torch = FakeBuildTorch()
        self.gpu = types.SimpleNamespace(type="cuda")

    def test_built_in_the_half_precision(self):
        seen = []
        model, where = self.build.build_on_device(self.torch, self.gpu, lambda: seen.append(self.torch.default) or "m",
                                                  self.torch.float16)
        self.assertEqual((model, where, seen), ("m", "device in float16", ["torch.float16"]))
        self.assertEqual(self.torch.default, "torch.float32")   # restored
        # fp32 and int8 tasks build as before
        seen.clear()
        self.assertEqual(self.build.build_on_device(self.torch, self.gpu, lambda: seen.append(self.torch.default) or "m",
                                                    self.torch.float32), ("m", "device"))
        self.assertEqual(seen, ["torch.float32"])

    def test_an_init_that_cannot_run_in_half_is_built_in_float32(self):
        seen = []

        def make():
            seen.append(self.torch.default)
            if self.torch.default == self.torch.bfloat16:
                raise RuntimeError('"orgqr" not implemented for \'BFloat16\'')
            return "m"
        model, where = self.build.build_on_device(self.torch, self.gpu, make, self.torch.bfloat16)
        self.assertEqual(model, "m")
        self.assertEqual(seen, ["torch.bfloat16", "torch.float32"])
        self.assertTrue(where.startswith("device (the build in bfloat16 failed: RuntimeError"), where)
        self.assertEqual(self.torch.default, "torch.float32")

    def test_a_device_error_or_running_out_of_memory_is_not_retried(self):
        class OutOfMemoryError(RuntimeError):
            pass
        for err in (RuntimeError("CUDA error: an illegal memory access was encountered"),
                    OutOfMemoryError("CUDA out of memory. Tried to allocate 172.00 MiB")):
            calls = []

            def make():
                calls.append(1)
                raise err
            with self.assertRaises(RuntimeError):
                self.build.build_on_device(self.torch, self.gpu, make, self.torch.float16)
            self.assertEqual(len(calls), 1)   # neither in float32 nor on the CPU
            self.assertEqual(self.torch.default, "torch.float32")


class TestCli(unittest.TestCase):
    def test_probe_prints_json(self):
        p = subprocess.run([sys.executable, RUNNER, "--probe"], capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        info = json.loads(p.stdout)
        self.assertEqual(info["python"]["executable"], sys.executable)
        for key in ("torch", "transformers", "optimum", "openvino"):
            self.assertIn("available", info[key])
            self.assertIn("reason" if not info[key]["available"] else "version", info[key])
        if not HAVE_TORCH:
            self.assertFalse(info["torch"]["available"])
            self.assertIn("torch", info["torch"]["reason"])

    @unittest.skipIf(HAVE_TORCH, "torch is installed here")
    def test_skipped_when_torch_missing(self):
        p, r, leftovers = run_cli(task_dict())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(leftovers, ["result.json", "task.json"])  # no .tmp left behind
        self.assertEqual(lib.validate_result(r), [])
        self.assertEqual(r["status"], "skipped")
        self.assertIn("torch is not installed", r["reason"])
        self.assertIn(sys.executable, r["reason"])
        self.assertEqual(r["metrics"], {})
        self.assertIsNone(r["env"]["torch"])
        self.assertEqual(r["env"]["python"].split(".")[:2], [str(sys.version_info[0]), str(sys.version_info[1])])

    def test_unsupported_backends_skipped(self):
        for backend in ("openvino", "qnn"):
            p, r, _ = run_cli(task_dict(backend=backend))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(r["status"], "skipped")
            self.assertEqual(r["reason"], lib.companion_backend_reason(backend))

    def test_fp16_on_cpu_skipped(self):
        p, r, _ = run_cli(task_dict(precision="fp16"))
        self.assertEqual(r["status"], "skipped")
        self.assertIn("fp16", r["reason"])

    def test_invalid_task_is_error_result(self):
        p, r, _ = run_cli(task_dict(kind="train"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(r["status"], "error")
        self.assertIn("invalid task", r["reason"])
        self.assertEqual(lib.validate_result(r), [])

    def test_unreadable_task_is_error_result(self):
        p, r, _ = run_cli("{not json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(r["status"], "error")
        self.assertIn("cannot read task", r["reason"])

    def test_unwritable_result_exits_nonzero(self):
        with tempfile.TemporaryDirectory() as d:
            tp = os.path.join(d, "task.json")
            with open(tp, "w", encoding="utf-8") as f:
                json.dump(task_dict(backend="qnn"), f)
            p = subprocess.run([sys.executable, RUNNER, "--task", tp, "--result", os.path.join(d, "nodir", "r.json")],
                               capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)

    def test_usage_error(self):
        p = subprocess.run([sys.executable, RUNNER, "--task", "x.json"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2)


if __name__ == "__main__":
    unittest.main()


class BenchmarkLimitTest(unittest.TestCase):
    def test_benchmark_parameter_limit_defaults_and_env_override(self):
        import hfleet_runner_lib as lib
        old = os.environ.pop("HFLEET_MAX_BENCHMARK_PARAMS", None)
        try:
            self.assertEqual(lib.max_benchmark_params()[0], lib.DEFAULT_MAX_BENCHMARK_PARAMS)
            # what fits the device: 80 % of 141 GiB at fp16 is about 60 B parameters, at fp32 half that
            h200 = 141 * 2**30
            fp16, why = lib.max_benchmark_params(h200, 2)
            self.assertEqual(fp16, int(h200 * 0.8 / 2))
            self.assertIn("141.0 GiB", why)
            self.assertEqual(lib.max_benchmark_params(h200, 4)[0], int(h200 * 0.8 / 4))
            os.environ["HFLEET_MAX_BENCHMARK_PARAMS"] = "2e10"
            self.assertEqual(lib.max_benchmark_params(h200, 2), (20_000_000_000, "HFLEET_MAX_BENCHMARK_PARAMS"))
            for bad in ("lots", "-5", "0"):
                os.environ["HFLEET_MAX_BENCHMARK_PARAMS"] = bad
                self.assertEqual(lib.max_benchmark_params()[0], lib.DEFAULT_MAX_BENCHMARK_PARAMS)
                self.assertEqual(lib.max_benchmark_params(h200, 2)[0], fp16)
        finally:
            os.environ.pop("HFLEET_MAX_BENCHMARK_PARAMS", None)
            if old is not None:
                os.environ["HFLEET_MAX_BENCHMARK_PARAMS"] = old
