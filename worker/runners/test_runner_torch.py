"""End-to-end tests of hfleet_runner.py that need torch + transformers.

Skipped where torch or transformers is missing.  Each test runs the CLI as
a subprocess on a real task JSON, as the worker does, and checks the result.

  cd /work/main && python3 -m unittest discover -s worker/runners -p 'test_*.py' -v
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "hfleet_runner.py")
sys.path.insert(0, HERE)

import hfleet_runner_lib as lib  # noqa: E402

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_TRANSFORMERS = importlib.util.find_spec("transformers") is not None


def _cuda_available():
    if not HAVE_TORCH:
        return False
    import torch
    return bool(torch.cuda.is_available()) and not getattr(torch.version, "hip", None)


def make_task(**kw):
    t = {"task_id": 1, "attempt": 1, "job_id": 1, "model_type": "bert", "hf_id": None,
         "family": "encoder-only", "task": "fill-mask", "modality": "text", "kind": "test",
         "backend": "cpu", "device_index": 0, "batch_size": 2, "seq_len": 16, "precision": "fp32",
         "iterations": 5, "warmup": 1, "timeout_s": 300}
    t.update(kw)
    return t


def run_cli(task, env_extra=None, timeout=300):
    with tempfile.TemporaryDirectory() as d:
        tp, rp = os.path.join(d, "task.json"), os.path.join(d, "result.json")
        with open(tp, "w", encoding="utf-8") as f:
            json.dump(task, f)
        env = dict(os.environ)
        env.update(env_extra or {})
        p = subprocess.run([sys.executable, RUNNER, "--task", tp, "--result", rp],
                           capture_output=True, text=True, timeout=timeout, env=env)
        if p.returncode != 0:
            raise AssertionError(f"runner exited {p.returncode}: {p.stderr[-2000:]}")
        with open(rp, encoding="utf-8") as f:
            r = json.load(f)
        assert not os.path.exists(rp + ".tmp")
        return r, p.stderr


def run_inproc(task):
    """Run a task in this process (faster than a CLI process per model)."""
    import hfleet_runner_torch as rt
    r = rt.run_task(lib.parse_task(task))
    return r, ""


@unittest.skipUnless(HAVE_TORCH and HAVE_TRANSFORMERS, "torch not installed")
class TestRunnerWithTorch(unittest.TestCase):
    def assertPassed(self, r, stderr=""):
        self.assertEqual(lib.validate_result(r), [])
        self.assertEqual(r["status"], "passed", msg=f"{r['reason']}\n{r.get('traceback', '')}\n{stderr[-1500:]}")
        self.assertTrue(r["outputs"]["finite"])
        self.assertGreater(r["metrics"]["load_time_s"], 0)
        self.assertGreater(r["metrics"]["forward_time_s"], 0)

    def test_cli_text_model_cpu(self):
        r, err = run_cli(make_task(model_type="bert"))
        self.assertPassed(r, err)
        self.assertEqual(r["weights"], "random-init")
        self.assertEqual(r["outputs"]["config_source"], "shrunk")
        self.assertEqual(r["outputs"]["shapes"]["last_hidden_state"], [2, 16, 64])

    def test_text_models_cpu(self):
        cases = [
            ("gpt2", "decoder-only", "text-generation", "text"),
            ("llama", "decoder-only", "text-generation", "text"),
            ("t5", "encoder-decoder", "text2text-generation", "text"),
            ("mixtral", "mixture-of-experts", "text-generation", "text"),
            ("mamba", "state-space", "text-generation", "text"),
            ("funnel", "encoder-only", "fill-mask", "text"),
        ]
        for mt, fam, task, mod in cases:
            with self.subTest(model_type=mt):
                r, err = run_inproc(make_task(model_type=mt, family=fam, task=task, modality=mod))
                self.assertPassed(r, err)
                self.assertEqual(r["weights"], "random-init")
                self.assertEqual(r["outputs"]["config_source"], "shrunk")
                self.assertLess(r["metrics"]["param_count"], 50_000_000)

    def test_vision_audio_multimodal_cpu(self):
        cases = [
            ("vit", "vision", "image-classification", "image"),
            ("wav2vec2", "speech", "automatic-speech-recognition", "audio"),
            ("whisper", "speech", "automatic-speech-recognition", "audio"),
            ("clip", "vision-text", "zero-shot-image-classification", "image+text"),
            ("videomae", "vision", "video-classification", "video"),
            ("llava", "multimodal", "image-text-to-text", "image+text"),
            ("informer", "encoder-decoder", "time-series-forecasting", "time-series"),
        ]
        for mt, fam, task, mod in cases:
            with self.subTest(model_type=mt):
                r, err = run_inproc(make_task(model_type=mt, family=fam, task=task, modality=mod, batch_size=1))
                self.assertPassed(r, err)

    def test_rag_runs_against_the_synthetic_index(self):
        # RagModel's forward asks its retriever for documents: the recipe's
        # in-memory index answers, and the whole path runs (question
        # encoder, search on the host, generator over n_docs contexts).
        r, err = run_inproc(make_task(model_type="rag", family="rag", task="text2text-generation",
                                      modality="text"))
        self.assertPassed(r, err)
        self.assertEqual(r["outputs"]["model_class"], "RagModel")
        self.assertEqual(r["outputs"]["recipe"], "rag-synthetic-index")

    def test_synthetic_index_returns_the_nearest_documents(self):
        import torch
        import hfleet_recipes_rag as rag
        index = rag.SyntheticIndex(torch, docs=16, dim=8, doc_len=5, vocab=100)
        q = torch.randn(3, 8, generator=torch.Generator().manual_seed(7))
        got = index(None, q.numpy(), n_docs=4)
        want = (q @ index.embeds.T).argsort(dim=1, descending=True)[:, :4]
        self.assertTrue(torch.equal(got["doc_ids"], want))
        self.assertEqual(tuple(got["context_input_ids"].shape), (12, 5))
        self.assertTrue(bool((got["context_input_ids"] >= rag.FIRST_WORD_ID).all()))
        self.assertEqual(tuple(got["retrieved_doc_embeds"].shape), (3, 4, 8))
        self.assertTrue(torch.equal(got["context_input_ids"][4:8], index.tokens[want[1]]))
        with self.assertRaises(ValueError):
            index(None, torch.randn(3, 9).numpy(), n_docs=4)

    def test_unknown_model_type_is_skipped(self):
        r, _ = run_inproc(make_task(model_type="no-such-model-type-xyz"))
        self.assertEqual(r["status"], "skipped")
        self.assertIn("not known to transformers", r["reason"])

    def test_fp16_on_cpu_is_skipped(self):
        r, _ = run_inproc(make_task(precision="fp16"))
        self.assertEqual(r["status"], "skipped")
        self.assertIn("fp16", r["reason"])

    def test_benchmark_cpu_bf16(self):
        r, err = run_inproc(make_task(model_type="gpt2", kind="benchmark", precision="bf16", iterations=4, warmup=1))
        self.assertPassed(r, err)
        m = r["metrics"]
        self.assertEqual(m["iterations"], 4)
        lat = m["latency_ms"]
        self.assertLessEqual(lat["p50"], lat["p99"])
        self.assertAlmostEqual(m["throughput_items_s"], 2 / (lat["mean"] / 1000.0), places=3)
        self.assertIsNone(m["peak_memory_bytes"])
        self.assertEqual(lat["count"], 4)
        self.assertLessEqual(lat["p90"], lat["p95"])
        self.assertLessEqual(lat["p95"], lat["p99"])
        self.assertEqual(len(m["latency_samples_ms"]), 4)
        self.assertGreaterEqual(m["warmup"], 1)
        self.assertEqual(m["warmup_requested"], 1)
        self.assertIsInstance(m["warmup_stable"], bool)
        self.assertEqual(m["noisy"], lat["cv"] > m["noise_threshold"])
        self.assertNotIn("energy_j", m)                  # no counter on the CPU: absent, not null
        self.assertIn("not measured", r["outputs"]["energy"])
        self.assertEqual(r["env"]["runner_version"], lib.RUNNER_VERSION)

    @unittest.skipUnless(_cuda_available(), "no CUDA device")
    def test_benchmark_cuda_fp16(self):
        r, err = run_cli(make_task(model_type="llama", backend="cuda", kind="benchmark", precision="fp16",
                                   batch_size=4, seq_len=128, iterations=10, warmup=2))
        self.assertPassed(r, err)
        self.assertGreater(r["metrics"]["peak_memory_bytes"], 0)
        self.assertEqual(r["metrics"]["iterations"], 10)
        self.assertTrue(r["env"]["device_name"])
        self.assertTrue(r["env"]["torch_cuda"])
        env, m = r["env"], r["metrics"]
        self.assertEqual(env["cuda_version"], env["torch_cuda"])
        self.assertGreater(env["device_memory_bytes"], 0)
        self.assertTrue(env["device_uuid"].startswith(("GPU-", "MIG-")))
        if "energy_j" in m:    # a whole GPU of Volta or later, with NVML
            self.assertEqual(m["energy_source"], "nvml")
            self.assertGreater(m["avg_power_w"], 0)
            self.assertAlmostEqual(m["energy_j_per_item"], m["energy_j"] / (4 * m["energy_iterations"]))
            self.assertTrue(env["driver_version"])
        else:
            self.assertIn("not measured", r["outputs"]["energy"])

    def test_missing_backend_is_skipped(self):
        if _cuda_available():
            self.skipTest("CUDA is available here")
        r, _ = run_inproc(make_task(backend="cuda"))
        self.assertEqual(r["status"], "skipped")
        self.assertIn("backend cuda not available", r["reason"])

    def test_pretrained_from_local_cache(self):
        """A checkpoint saved into a fake HF cache is loaded and reported as pretrained."""
        import torch  # noqa: F401
        from transformers import AutoConfig, AutoModelForMaskedLM
        with tempfile.TemporaryDirectory() as cache:
            commit = "0123456789abcdef0123456789abcdef01234567"
            repo = os.path.join(cache, "models--hfleet-test--tiny-bert")
            snap = os.path.join(repo, "snapshots", commit)
            os.makedirs(os.path.join(repo, "refs"))
            with open(os.path.join(repo, "refs", "main"), "w", encoding="utf-8") as f:
                f.write(commit)
            cfg = AutoConfig.for_model("bert", hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                       intermediate_size=64, vocab_size=1000)
            AutoModelForMaskedLM.from_config(cfg).save_pretrained(snap)
            r, err = run_cli(make_task(hf_id="hfleet-test/tiny-bert"),
                             env_extra={"HF_HUB_CACHE": cache, "HF_HOME": cache})
        self.assertPassed(r, err)
        self.assertEqual(r["weights"], "pretrained")
        self.assertEqual(r["outputs"]["config_source"], "pretrained")
        self.assertEqual(r["outputs"]["weights_source"], "HuggingFace cache")
        # fill-mask has a known answer: the head is loaded to ask it, but
        # without tokenizer files next to the weights it cannot be asked
        # (transformers 5 then builds a tokenizer that knows no word).
        self.assertEqual(r["outputs"]["shapes"]["logits"], [2, 16, 1000])
        self.assertTrue(r["outputs"]["known_answer"].startswith("not checked: "), r["outputs"]["known_answer"])

    def test_probe_with_torch(self):
        p = subprocess.run([sys.executable, RUNNER, "--probe"], capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0)
        info = json.loads(p.stdout)
        self.assertTrue(info["torch"]["available"])
        self.assertTrue(info["transformers"]["available"])
        self.assertIn("cuda_available", info["torch"])


def _word_tokenizer(words, mask=False):
    """A whole-word tokenizer (lower-cased, punctuation split) for trained toy models."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    specials = ["[PAD]", "[UNK]"] + (["[MASK]"] if mask else [])
    vocab = {w: i for i, w in enumerate(specials + words)}
    t = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    t.normalizer = normalizers.Lowercase()
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    kw = {"mask_token": "[MASK]"} if mask else {}
    return PreTrainedTokenizerFast(tokenizer_object=t, unk_token="[UNK]", pad_token="[PAD]", **kw)


def _train(model, steps, batch):
    import torch
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return model


def save_counting_gpt2(path, steps):
    """A 2-layer GPT-2 taught (steps > 0) to continue '1, 2, 3, 4, 5,' with 6."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    tok = _word_tokenizer([str(i) for i in range(1, 41)] + [","])
    seqs = [", ".join(str(k) for k in range(a, a + 10)) + "," for a in range(1, 31)]
    ids = tok(seqs, return_tensors="pt")["input_ids"]
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=32, n_embd=64, n_layer=2, n_head=4,
                     pad_token_id=tok.pad_token_id, bos_token_id=None, eos_token_id=None)
    model = _train(GPT2LMHeadModel(cfg), steps, {"input_ids": ids, "labels": ids})
    model.save_pretrained(path)
    tok.save_pretrained(path)


def save_capitals_bert(path, steps):
    """A 2-layer BERT taught (steps > 0) which city fills 'The capital of X is [MASK].'."""
    import torch
    from transformers import BertConfig, BertForMaskedLM
    pairs = [("france", "paris"), ("germany", "berlin"), ("italy", "rome"), ("spain", "madrid"),
             ("japan", "tokyo"), ("egypt", "cairo")]
    fillers = [f"w{i}" for i in range(200)]   # a vocabulary where a random top-5 rarely holds paris
    tok = _word_tokenizer(["the", "capital", "of", "is", "."] + [w for p in pairs for w in p] + fillers, mask=True)
    enc = tok([f"the capital of {c} is {tok.mask_token} ." for c, _ in pairs], return_tensors="pt")
    labels = torch.full_like(enc["input_ids"], -100)
    labels[:, 5] = torch.tensor(tok.convert_tokens_to_ids([city for _, city in pairs]))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=32, pad_token_id=tok.pad_token_id)
    model = _train(BertForMaskedLM(cfg), steps, dict(enc, labels=labels))
    model.save_pretrained(path)
    tok.save_pretrained(path)


@unittest.skipUnless(HAVE_TORCH and HAVE_TRANSFORMERS, "torch not installed")
class TestKnownAnswer(unittest.TestCase):
    """Pretrained weights from a weights directory (HFLEET_WEIGHTS_DIR) and the
    known-answer check: toy models trained here answer right; the same
    architecture untrained is a test failure, not a pass."""

    def run_with_weights(self, save, steps, **task):
        with tempfile.TemporaryDirectory() as d:
            save(os.path.join(d, "hfleet-test", "toy"), steps)
            return run_cli(make_task(hf_id="hfleet-test/toy", **task), env_extra={"HFLEET_WEIGHTS_DIR": d})

    def check(self, r, err, status):
        self.assertEqual(lib.validate_result(r), [])
        self.assertEqual(r["status"], status, msg=f"{r['reason']}\n{r.get('traceback', '')}\n{err[-1500:]}")
        self.assertEqual(r["weights"], "pretrained")
        self.assertTrue(r["outputs"]["weights_source"].startswith("weights directory "), r["outputs"])

    def test_trained_counting_model_passes(self):
        r, err = self.run_with_weights(save_counting_gpt2, 300, model_type="gpt2", family="decoder-only",
                                       task="text-generation")
        self.check(r, err, "passed")
        self.assertTrue(r["outputs"]["known_answer"].startswith("passed"), r["outputs"]["known_answer"])

    def test_untrained_counting_model_fails(self):
        r, err = self.run_with_weights(save_counting_gpt2, 0, model_type="gpt2", family="decoder-only",
                                       task="text-generation")
        self.check(r, err, "failed")
        self.assertIn("known-answer check failed", r["reason"])

    def test_trained_capitals_model_passes(self):
        r, err = self.run_with_weights(save_capitals_bert, 300)
        self.check(r, err, "passed")
        self.assertTrue(r["outputs"]["known_answer"].startswith("passed"), r["outputs"]["known_answer"])

    def test_untrained_capitals_model_fails(self):
        r, err = self.run_with_weights(save_capitals_bert, 0)
        self.check(r, err, "failed")
        self.assertIn("expected 'paris'", r["reason"])


@unittest.skipUnless(HAVE_TORCH and HAVE_TRANSFORMERS, "torch not installed")
class TestOfflineTimmBackbone(unittest.TestCase):
    """EdgeTAM offline: transformers builds EdgeTamVisionConfig's default,
    whose RepViT backbone config it asks the Hub for, whenever it prints an
    EdgeTAM config (a strict dataclass config prints a sub-config assigned
    to a `dict | PreTrainedConfig | None` field); offline_timm_configs
    answers it with the architecture.  Then both EdgeTAM types through the
    CLI, as the worker runs them (offline, random weights)."""

    def test_edgetam_config_builds_and_prints_offline(self):
        import transformers
        import hfleet_build as build
        build.offline_timm_configs(transformers)
        cfg = transformers.AutoConfig.for_model("edgetam")
        backbone = cfg.vision_config.backbone_config
        self.assertEqual(backbone.model_type, "timm_wrapper")
        self.assertTrue(backbone.architecture.startswith("repvit_m1"), backbone.architecture)
        self.assertTrue(backbone.model_args["features_only"])
        self.assertTrue(repr(cfg).startswith("EdgeTamConfig "))   # a diff against EdgeTamConfig()
        again = type(cfg).from_dict(cfg.to_dict())                 # the shrunk config's round trip
        self.assertEqual(again.vision_config.backbone_config.architecture, backbone.architecture)

    @unittest.skipUnless(importlib.util.find_spec("timm") is not None, "timm not installed")
    def test_edgetam_types_run_offline(self):
        backend = "cuda" if _cuda_available() else "cpu"
        for mt, task, cls in (("edgetam", "mask-generation", "EdgeTamModel"),
                              ("edgetam_vision_model", "image-feature-extraction", "EdgeTamVisionModel")):
            with self.subTest(model_type=mt):
                r, err = run_cli(make_task(model_type=mt, family="vision", task=task, modality="image",
                                           backend=backend, batch_size=1), env_extra={"HF_HUB_OFFLINE": "1"})
                self.assertEqual(lib.validate_result(r), [])
                self.assertEqual(r["status"], "passed", msg=f"{mt}: {r['reason']}\n{r.get('traceback', '')}\n"
                                                            f"{err[-1500:]}")
                self.assertEqual(r["weights"], "random-init")
                self.assertEqual(r["outputs"]["config_source"], "default")
                self.assertEqual(r["outputs"]["model_class"], cls)
                self.assertEqual(r["outputs"]["inputs"]["pixel_values"], [1, 3, 1024, 1024])
                self.assertTrue(r["outputs"]["finite"])


@unittest.skipUnless(HAVE_TORCH and HAVE_TRANSFORMERS, "torch not installed")
class TestHalfPrecisionInit(unittest.TestCase):
    """The random initialisation that failed cpmant's fp16 benchmark
    (non-finite outputs) and the generic fix's rescaling, checked on the
    CPU in float32, where the magnitudes are measured: the cause is their
    range, past what float16 holds (max 65504)."""

    def test_cpmant_linears_follow_init_std(self):
        # transformers draws CpmAnt's nn.Linear weights at config.init_std
        # (1.0 by default: no initializer_range); the generic fix brings it to 0.02.
        import torch
        import transformers
        import hfleet_recipes_config as rc
        kw = dict(vocab_size=1000, hidden_size=256, num_attention_heads=2, dim_head=128, dim_ff=512,
                  num_hidden_layers=1, prompt_types=2, prompt_length=2, segment_types=2,
                  position_bias_num_buckets=32)
        for fix, want in ((False, 1.0), (True, 0.02)):
            cfg = transformers.CpmAntConfig(**kw)
            if fix:
                self.assertEqual(len(rc.tame_init_std(cfg, False)), 1)
            torch.manual_seed(0)
            model = transformers.AutoModel.from_config(cfg)
            q = model.encoder.layers[0].self_att.self_attention.project_q.weight
            self.assertAlmostEqual(float(q.float().std()), want, delta=0.1 * want)


@unittest.skipUnless(HAVE_TORCH and HAVE_TRANSFORMERS, "torch not installed")
class TestBatchNormCalibration(unittest.TestCase):
    """hfleet_build.calibrate_batchnorm, align's recipe: a deep stack of
    convolutions drawn at std 0.02 whose BatchNorms are identities fades
    below float16's smallest subnormal (6e-8); with its running statistics
    set from the input, each BatchNorm's output has RMS 1 per channel, its
    mean kept.  Then a small AlignModel at fp16 on CUDA, whose image embeds
    are 0 / 0 as built, and align's own fp16 benchmark through the CLI."""

    @staticmethod
    def _stack(torch, depth, std):
        """conv -> BatchNorm -> SiLU, depth + 1 times, the convolutions drawn
        at std (biases 0), in eval mode: transformers' init of a BN network."""
        layers, width = [], 3
        for _ in range(depth + 1):
            layers += [torch.nn.Conv2d(width, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.SiLU()]
            width = 16
        model = torch.nn.Sequential(*layers).eval()
        with torch.no_grad():
            for m in model:
                if isinstance(m, torch.nn.Conv2d):
                    m.weight.normal_(0.0, std)
                    m.bias.zero_()
        return model

    @staticmethod
    def _norm_outputs(torch, model, run):
        """Each BatchNorm's output in the forward pass run() makes, in order,
        and run()'s own output."""
        outs = []
        handles = [m.register_forward_hook(lambda mod, args, out: outs.append(out.detach().float()))
                   for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        try:
            with torch.inference_mode():
                return outs, run()
        finally:
            for h in handles:
                h.remove()

    def test_calibrated_batchnorms_give_unit_rms_outputs_cpu(self):
        import torch
        import hfleet_build as build
        torch.manual_seed(0)
        model = self._stack(torch, 20, 0.02)
        x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
        before, _ = self._norm_outputs(torch, model, lambda: model(x))
        # identities: each convolution multiplies the RMS by about 0.02 * sqrt(144)
        self.assertLess(float(before[-1].pow(2).mean().sqrt()), 6e-8)
        note = build.calibrate_batchnorm(torch, model, lambda: model(x))
        self.assertTrue(note.startswith("21 BatchNorm layers' running statistics set"), note)
        self.assertNotIn("keep theirs", note)
        for m in model.modules():
            self.assertEqual(len(m._forward_pre_hooks), 0)
            if isinstance(m, torch.nn.BatchNorm2d):
                self.assertEqual(float(m.running_mean.abs().max()), 0.0)
        after, _ = self._norm_outputs(torch, model, lambda: model(x))
        self.assertEqual(len(after), 21)
        for i, out in enumerate(after):
            rms = out.pow(2).mean(dim=(0, 2, 3)).sqrt()   # per channel
            self.assertLess(float((rms - 1).abs().max()), 1e-3, i)
        # the channels keep their means (only the scale is set): an image
        # pooled by its mean, as align's is, is not 0
        means = after[-1].mean(dim=(0, 2, 3))
        self.assertGreater(float(means.abs().max()), 0.05)

    @unittest.skipUnless(_cuda_available(), "no CUDA device")
    def test_small_align_float16_embeds_are_finite_once_calibrated_cuda(self):
        import torch
        import transformers
        import hfleet_build as build
        # 9 MBConv blocks (a residual pair in the second and the last
        # stage), EfficientNet-B0's widths, 64 px images; image_embeds is the
        # pooled last stage, 320 wide, so the projection is too.
        vision = dict(image_size=64, width_coefficient=1.0, depth_coefficient=1.0,
                      num_block_repeats=[1, 2, 1, 1, 1, 1, 2], hidden_dim=64)
        text = dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=128, max_position_embeddings=64)
        cfg = transformers.AlignConfig(text_config=text, vision_config=vision, projection_dim=320)
        device = torch.device("cuda")
        torch.manual_seed(0)
        # as the runner's benchmark builds it: on the device, in float16
        model, where = build.build_on_device(torch, device, lambda: transformers.AlignModel(cfg), torch.float16)
        model = model.to(device=device, dtype=torch.float16).eval()
        g = torch.Generator().manual_seed(1)
        inputs = {"input_ids": torch.randint(1, 1000, (1, 16), generator=g).to(device),
                  "attention_mask": torch.ones(1, 16, dtype=torch.long, device=device),
                  "pixel_values": torch.randn(1, 3, 64, 64, generator=g).to(device=device, dtype=torch.float16)}

        before = self._norm_outputs(torch, model, lambda: model(**inputs))[1]
        # transformers' initialisation: the features underflow to 0, and the
        # L2 normalisation is 0 / 0; the text tower is in range as built
        self.assertFalse(bool(torch.isfinite(before.image_embeds).all()), where)
        self.assertTrue(bool(torch.isfinite(before.text_embeds).all()))
        n_norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
        note = build.calibrate_batchnorm(torch, model, lambda: model(**inputs))
        self.assertTrue(note.startswith(f"{n_norms} BatchNorm layers' running statistics set"), note)
        self.assertNotIn("keep theirs", note)
        norm_outs, out = self._norm_outputs(torch, model, lambda: model(**inputs))
        # every BatchNorm's output at RMS 1, or under it where its input's
        # mean square is under eps (1e-3 here): never larger
        for i, o in enumerate(norm_outs):
            rms = float(o.pow(2).mean().sqrt())
            self.assertLess(rms, 1.02, i)
            self.assertGreater(rms, 0.1, i)
        for name in ("image_embeds", "text_embeds", "logits_per_image", "logits_per_text"):
            self.assertTrue(bool(torch.isfinite(getattr(out, name)).all()), name)
        self.assertLess(float((out.image_embeds.float().norm(dim=-1) - 1).abs().max()), 1e-2)
        pooled = out.vision_model_output.pooler_output.float()
        self.assertGreater(float(pooled.pow(2).mean().sqrt()), 1e-2)   # features, not rounding noise
        self.assertLess(float(out.vision_model_output.last_hidden_state.float().abs().max()), 1e4)

    @unittest.skipUnless(_cuda_available(), "no CUDA device")
    def test_align_benchmark_cuda_fp16(self):
        # The default config (EfficientNet-B7, 600 px), as the benchmark runs it.
        r, err = run_cli(make_task(model_type="align", family="vision-text", task="zero-shot-image-classification",
                                   modality="image+text", backend="cuda", kind="benchmark", precision="fp16",
                                   batch_size=1, seq_len=128, iterations=10, warmup=2))
        self.assertEqual(lib.validate_result(r), [])
        self.assertEqual(r["status"], "passed", msg=f"{r['reason']}\n{r.get('traceback', '')}\n{err[-1500:]}")
        out = r["outputs"]
        self.assertEqual(out["config_source"], "default")
        self.assertEqual(out["inputs"]["pixel_values"], [1, 3, 600, 600])
        self.assertRegex(out["batchnorm_calibration"], r"^\d{3} BatchNorm layers' running statistics set")
        self.assertNotIn("keep theirs", out["batchnorm_calibration"])
        self.assertNotIn("autocast", out)
        self.assertGreater(r["metrics"]["latency_ms"]["p50"], 0)


@unittest.skipUnless(HAVE_TORCH and HAVE_TRANSFORMERS, "torch not installed")
class TestHalfPrecisionFFT(unittest.TestCase):
    """FFTs cuFFT cannot take in half precision: fnet's mixing as DFT matrix
    products (hfleet_recipes_config), checked against FNet's own FFT on the
    CPU in float32; autoformer's default decoder a power of two long
    (hfleet_recipes_audio).  The fp16 benchmarks of both on CUDA, which
    failed before the recipes, where a GPU is."""

    def test_dft_matrix_is_the_fft_of_the_identity(self):
        import torch
        import hfleet_recipes_config as rc
        for n in (1, 12, 768):
            want = torch.fft.fft(torch.eye(n, dtype=torch.float64), dim=0)
            got = rc.dft_matrix(torch, n, torch.device("cpu"))
            self.assertEqual(got.dtype, torch.complex64)
            self.assertLess(float((got.to(torch.complex128) - want).abs().max()), 1e-5, n)

    def test_fnet_dft_matmuls_match_its_fft_cpu(self):
        import torch
        import transformers
        import hfleet_recipes_config as rc
        cfg = transformers.FNetConfig(vocab_size=100, hidden_size=24, num_hidden_layers=2, intermediate_size=48,
                                      max_position_embeddings=64)
        torch.manual_seed(0)
        model = transformers.FNetModel(cfg).eval()
        ids = torch.randint(4, 100, (2, 12))
        with torch.inference_mode():
            want = model(input_ids=ids).last_hidden_state
            self.assertEqual(rc.use_dft_matmuls(torch, model, 12, 24, torch.device("cpu")), 2)
            got = model(input_ids=ids).last_hidden_state
            self.assertEqual(got.dtype, torch.float32)
            self.assertLess(float((got - want).abs().max()), 1e-3)
            # another length: its own matrices
            self.assertEqual(model(input_ids=ids[:, :7]).last_hidden_state.shape, (2, 7, 24))

    @unittest.skipUnless(_cuda_available(), "no CUDA device")
    def test_fnet_benchmark_cuda_fp16(self):
        r, err = run_cli(make_task(model_type="fnet", family="encoder-only", task="fill-mask", backend="cuda",
                                   kind="benchmark", precision="fp16", batch_size=1, seq_len=128,
                                   iterations=10, warmup=2))
        self.assertEqual(lib.validate_result(r), [])
        self.assertEqual(r["status"], "passed", msg=f"{r['reason']}\n{r.get('traceback', '')}\n{err[-1500:]}")
        self.assertEqual(r["outputs"]["config_source"], "default")
        self.assertEqual(r["outputs"]["recipe"], "fnet")
        self.assertNotIn("autocast", r["outputs"])   # the mixing's real part is cast back: all fp16
        self.assertIn("fnet: the Fourier mixing of 12 layers as matrix products with the 128- and 768-point", err)
        self.assertEqual(r["metrics"]["seq_len"], 128)
        self.assertGreater(r["metrics"]["latency_ms"]["p50"], 0)

    @unittest.skipUnless(_cuda_available(), "no CUDA device")
    def test_autoformer_benchmark_cuda_fp16(self):
        r, err = run_cli(make_task(model_type="autoformer", family="encoder-decoder",
                                   task="time-series-forecasting", modality="time-series", backend="cuda",
                                   kind="benchmark", precision="fp16", batch_size=1, seq_len=128,
                                   iterations=10, warmup=2))
        self.assertEqual(lib.validate_result(r), [])
        self.assertEqual(r["status"], "passed", msg=f"{r['reason']}\n{r.get('traceback', '')}\n{err[-1500:]}")
        self.assertEqual(r["outputs"]["config_source"], "default")
        self.assertIn("label_length=32 (was 10)", err)
        inputs = r["outputs"]["inputs"]
        self.assertEqual(inputs["past_values"], [1, 32 + 7])   # context_length + the largest lag
        self.assertEqual(inputs["future_values"], [1, 32])
        self.assertGreater(r["metrics"]["latency_ms"]["p50"], 0)


@unittest.skipUnless(HAVE_TORCH and HAVE_TRANSFORMERS, "torch not installed")
class TestVideoTrackers(unittest.TestCase):
    """The four video trackers through the runner: the recipe's inference
    session (hfleet_recipes_video), frames tracked to fill the memory bank,
    then the runner's forward on the next frame.  Their default configs
    (prefer_default): on the CPU the two SAM3 ones (466 M and 860 M
    parameters, 1008 x 1008 frames) take a few minutes together."""

    SESSION_RECIPES = {"sam2_video": "video-tracker-session", "sam3_tracker_video": "video-tracker-session",
                       "edgetam_video": "video-tracker-session", "sam3_video": "video-detect-track-session"}

    def assertTracked(self, r, mt, objects, err=""):
        self.assertEqual(lib.validate_result(r), [])
        self.assertEqual(r["status"], "passed", msg=f"{mt}: {r['reason']}\n{r.get('traceback', '')}\n{err[-1500:]}")
        out = r["outputs"]
        self.assertEqual(out["recipe"], self.SESSION_RECIPES[mt])
        self.assertEqual(out["config_source"], "default")
        self.assertTrue(out["finite"])
        frame = out["inputs"]["frame"]   # the one tensor forward() took: the streamed frame
        self.assertEqual(len(frame), 3)
        self.assertEqual(frame[0], 3)
        shapes = out["shapes"]
        if mt == "sam3_video":   # a mask per tracked object, by object id
            self.assertEqual(len([k for k in shapes if k.startswith("obj_id_to_mask.")]), objects, shapes)
        else:                    # the objects' masks, one per object
            self.assertEqual(shapes["pred_masks"][0], objects, shapes)

    def test_video_trackers_track_a_frame_cpu(self):
        for mt in self.SESSION_RECIPES:
            with self.subTest(model_type=mt):
                r, err = run_inproc(make_task(model_type=mt, family="vision", task="mask-generation",
                                              modality="image", batch_size=2))
                self.assertTracked(r, mt, 2, err)
                self.assertGreater(r["metrics"]["forward_time_s"], 0)

    @unittest.skipUnless(_cuda_available(), "no CUDA device")
    def test_video_tracker_benchmark_cuda_fp16(self):
        r, err = run_cli(make_task(model_type="sam2_video", family="vision", task="mask-generation",
                                   modality="image", backend="cuda", kind="benchmark", precision="fp16",
                                   batch_size=1, seq_len=128, iterations=10, warmup=2))
        self.assertTracked(r, "sam2_video", 1, err)
        m = r["metrics"]
        self.assertEqual(m["iterations"], 10)
        self.assertIsNone(m["seq_len"])   # no tokens
        self.assertGreater(m["latency_ms"]["p50"], 0)
        self.assertGreater(m["peak_memory_bytes"], 0)


if __name__ == "__main__":
    unittest.main()


@unittest.skipUnless(HAVE_TORCH and HAVE_TRANSFORMERS, "torch not installed")
class TestOffload(unittest.TestCase):
    """hfleet_offload's build on a small Llama whose GPU budget holds two of
    its four decoder layers: the other two live in pinned host memory and
    are copied in for their forward.  The output must be the one the same
    weights give all on the GPU."""

    def _build(self, tie):
        import torch
        import transformers
        import hfleet_offload as off
        cfg = transformers.LlamaConfig(vocab_size=1000, hidden_size=256, intermediate_size=1024,
                                       num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                                       tie_word_embeddings=tie)
        make = lambda: transformers.AutoModelForCausalLM.from_config(cfg)  # noqa: E731
        with torch.device("meta"):
            meta = make()
        seen = set()
        blocks = [off._param_bytes(m.parameters(), seen, torch.float16) for _, m in off.find_blocks(meta)]
        rest = off._param_bytes(meta.parameters(), seen, torch.float16)
        budget = rest + 3 * max(blocks)   # the rest, two blocks kept, room for one copy
        torch.manual_seed(0)
        model, desc, n = off.build(torch, make, torch.device("cuda"), torch.float16, budget, 1 << 30,
                                   log=lambda _msg: None)
        return torch, model.eval(), desc, n, blocks

    @unittest.skipUnless(_cuda_available(), "no CUDA device")
    def test_pinned_memory_goes_back_to_the_system_between_tasks(self):
        # An offloaded model's blocks are pinned slabs; freed, torch's
        # caching host allocator keeps them unless release_memory empties
        # it (a sweep's next model in the same process found that much less
        # host memory).  4 GiB pinned, freed, released: MemAvailable back.
        import torch
        import hfleet_offload as off
        import hfleet_runner_torch as rt

        def available():
            with open("/proc/meminfo", encoding="ascii") as f:
                return off.meminfo(f.read())["MemAvailable"]
        torch.cuda.init()
        before = available()
        slabs = [torch.empty(1 << 30, dtype=torch.uint8, pin_memory=True) for _ in range(4)]
        for t in slabs:
            t.fill_(1)
        self.assertLess(available(), before - 3 * off.GIB)
        del slabs, t
        rt.release_memory()
        self.assertGreater(available(), before - off.GIB)

    @unittest.skipUnless(_cuda_available(), "no CUDA device")
    def test_offloaded_blocks_give_the_same_output(self):
        torch, model, desc, n, blocks = self._build(False)
        self.assertEqual((desc["blocks"], desc["blocks_offloaded"]), (4, 2))
        self.assertEqual(n, 2 * blocks[0])
        self.assertEqual(desc["first_offloaded"], "model.layers.2")
        layers = model.model.layers
        for i, layer in enumerate(layers):
            for p in layer.parameters():
                self.assertEqual(p.device.type, "cpu" if i >= 2 else "cuda")
                if i >= 2:
                    self.assertTrue(p.is_pinned())
        # initialised by the model's own _init_weights (normal at 0.02), not left empty
        q = layers[0].self_attn.q_proj.weight
        self.assertTrue(bool(torch.isfinite(q).all()))
        self.assertAlmostEqual(float(q.float().std()), 0.02, delta=0.004)
        ids = torch.randint(0, 1000, (2, 16), device="cuda")
        with torch.inference_mode():
            streamed = model(input_ids=ids).logits.float()
            # after the forward the offloaded blocks are back in host memory
            self.assertEqual(layers[3].mlp.up_proj.weight.device.type, "cpu")
            for layer in layers[2:]:
                layer._forward_pre_hooks.clear()
                layer._forward_hooks.clear()
                for p in layer.parameters():
                    p.data = p.data.to("cuda")
            resident = model(input_ids=ids).logits.float()
        self.assertTrue(bool(torch.isfinite(streamed).all()))
        self.assertTrue(torch.equal(streamed, resident))

    @unittest.skipUnless(_cuda_available(), "no CUDA device")
    def test_tied_weights_stay_tied(self):
        _torch, model, _desc, _n, _blocks = self._build(True)
        self.assertIs(model.lm_head.weight, model.model.embed_tokens.weight)
