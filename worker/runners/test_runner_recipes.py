"""Unit tests of the reference runner's model recipes (stdlib unittest, no torch).

  cd /work/main && python3 -m unittest discover -s worker/runners -p 'test_*.py' -v

The recipes table (hfleet_recipes.py and its family modules), the config
fixes they make to default and shrunk configs, and the input builders run
on stand-in configs and tensors; test_runner_torch.py and the GPU sweeps
(tests/gpu/call-d.sh) run them on real models.  Split from
test_runner_pure.py, which keeps the runner's other pure parts.
"""

from __future__ import annotations

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import hfleet_plan as plan_mod  # noqa: E402
import hfleet_recipe_base as rb  # noqa: E402


class TestRecipes(unittest.TestCase):
    """The model recipes table: loads without torch, names real forward() inputs."""

    def test_table(self):
        import hfleet_recipes as recipes
        reg = os.path.join(HERE, "..", "..", "coordinator", "registry", "models.tsv")
        with open(reg, encoding="utf-8") as f:
            suite = {line.split("\t")[0] for line in f if line.strip() and not line.startswith(("#", "model_type"))}
        for mt, r in recipes.RECIPES.items():
            self.assertIn(mt, suite, f"recipe for {mt}, which is not in the registry")
            self.assertTrue(r.fix_config or r.inputs or r.submodel or r.model_class or r.prefer_default or r.make_config
                            or r.calibrate_batchnorm, mt)
            if r.provides:
                self.assertIsNotNone(r.inputs, f"{mt} provides {r.provides} but builds nothing")
        self.assertIsNone(recipes.get("bert"))

    def test_plan_leaves_provided_inputs_to_the_recipe(self):
        facts = {"vocab_size": 100}
        params = {"input_ids": True, "qformer_input_ids": True, "pixel_values": False}
        with self.assertRaises(plan_mod.PlanError):
            plan_mod.plan_inputs(facts, params, "image+text", 1, 8)
        plan = plan_mod.plan_inputs(facts, params, "image+text", 1, 8, provided=("qformer_input_ids",))
        self.assertNotIn("qformer_input_ids", [s["name"] for s in plan])
        self.assertIn("input_ids", [s["name"] for s in plan])
        # a recipe that builds everything leaves an empty plan, which is not an error
        self.assertEqual(plan_mod.plan_inputs({}, {"inputs": True}, "text", 1, 8, provided=("inputs",)), [])

    def test_clvp_speech_vocabulary_follows_the_decoder(self):
        import hfleet_recipes as recipes
        from types import SimpleNamespace as NS
        cfg = NS(speech_config=NS(vocab_size=256), decoder_config=NS(vocab_size=8194), text_config=NS(vocab_size=256))
        notes = recipes.get("clvp").fix_config(cfg, True)
        self.assertEqual(cfg.speech_config.vocab_size, 8194)
        self.assertEqual(cfg.text_config.vocab_size, 256)
        self.assertEqual(len(notes), 1)
        self.assertEqual(recipes.get("clvp").fix_config(cfg, True), [])   # already consistent: nothing to say

    def test_grid_inputs_are_chosen_by_signature(self):
        import hfleet_recipes as recipes
        vlm = {"input_ids": False, "pixel_values": False, "image_grid_thw": False, "attention_mask": False}
        self.assertIs(recipes.for_signature(vlm), recipes.GRID_VLM)
        self.assertIs(recipes.for_signature({"hidden_states": True, "grid_thw": True}), recipes.GRID_TOWER)
        self.assertIs(recipes.for_signature({"pixel_values": True, "grid_thw": True}), recipes.GRID_TOWER)
        self.assertIsNone(recipes.for_signature({"input_ids": True, "attention_mask": False}))
        self.assertIsNone(recipes.for_signature({"pixel_values": True}))
        for r in (recipes.GRID_VLM, recipes.GRID_TOWER):
            self.assertTrue(r.name and r.inputs)

    def test_default_vocab_grows_to_hold_its_placeholder_tokens(self):
        import hfleet_plan as plan
        import hfleet_recipes as recipes
        from types import SimpleNamespace as NS
        self.assertEqual(plan.vocab_for_placeholders([("image_token_id", 100015)], 32000), 100016)
        self.assertIsNone(plan.vocab_for_placeholders([("image_token_id", 31999)], 32000))
        self.assertIsNone(plan.vocab_for_placeholders([("image_token_id", 5)], None))
        self.assertIsNone(plan.vocab_for_placeholders([("hidden_size", 100015)], 32000))   # not a token id
        pad = [("audio_pad_token_id", 69569)]   # another vocabulary's pad: grown only in the shrunk dict
        self.assertEqual(plan.vocab_for_placeholders(pad, 4001), 69570)
        self.assertIsNone(plan.vocab_for_placeholders(pad, 4001, placeholders_only=True))
        self.assertEqual(plan.vocab_for_placeholders([("video_token_index", 4001)], 4001, True), 4002)
        cfg = NS(image_token_id=100015, text_config=NS(vocab_size=32000))   # deepseek-vl's default
        self.assertEqual(recipes.fit_vocab_to_placeholders(cfg, True), [])   # shrunk: the dict rule did it
        notes = recipes.fit_vocab_to_placeholders(cfg, False)
        self.assertEqual(cfg.text_config.vocab_size, 100016)
        self.assertIn("32000", notes[0])
        self.assertEqual(recipes.fit_vocab_to_placeholders(cfg, False), [])
        self.assertEqual(recipes.fit_vocab_to_placeholders(NS(pad_token_id=70000, vocab_size=4001), False), [])
        flat = NS(image_token_index=32000, vocab_size=32000)   # no text_config: its own vocabulary
        self.assertEqual(len(recipes.fit_vocab_to_placeholders(flat, False)), 1)
        self.assertEqual(flat.vocab_size, 32001)
        self.assertIn(recipes.fit_vocab_to_placeholders, recipes.GENERIC_CONFIG_FIXES)
        d, changes = plan.shrink_config_dict({"image_token_index": 32000, "text_config": {"vocab_size": 32000}})
        self.assertEqual(d["text_config"]["vocab_size"], 32001)

    def test_musicgen_codec_holds_the_decoders_codes(self):
        import hfleet_recipes as recipes
        from types import SimpleNamespace as NS
        cfg = NS(decoder=NS(vocab_size=2048), audio_encoder=NS(codebook_size=1024))
        for mt in ("musicgen", "musicgen_melody"):
            cfg.audio_encoder.codebook_size = 1024
            notes = recipes.get(mt).fix_config(cfg, False)
            self.assertEqual(cfg.audio_encoder.codebook_size, 2048)
            self.assertIn("1024", notes[0])
            self.assertEqual(recipes.get(mt).fix_config(cfg, False), [])

    def test_tower_width_of_the_default_config_is_the_text_width(self):
        import hfleet_recipes as recipes
        from types import SimpleNamespace as NS
        fix = recipes.get("glm_ocr").fix_config
        cfg = NS(vision_config=NS(out_hidden_size=1536), text_config=NS(hidden_size=1024))
        self.assertEqual(fix(cfg, True), [])   # the shrunk config: the generic fix
        notes = fix(cfg, False)
        self.assertEqual(cfg.vision_config.out_hidden_size, 1024)
        self.assertIn("1536", notes[0])
        self.assertEqual(fix(cfg, False), [])
        asr = recipes.get("qwen3_asr").fix_config
        cfg = NS(audio_config=NS(output_dim=3584), text_config=NS(hidden_size=2048))
        self.assertEqual(len(asr(cfg, False)), 1)
        self.assertEqual(cfg.audio_config.output_dim, 2048)
        self.assertEqual(asr(NS(text_config=NS(hidden_size=8)), False), [])   # no audio tower: nothing

    def test_vision_out_width_follows_the_text_width(self):
        import hfleet_recipes as recipes
        from types import SimpleNamespace as NS
        cfg = NS(vision_config=NS(out_hidden_size=3584), text_config=NS(hidden_size=64))
        self.assertEqual(recipes.fit_vision_out_width(cfg, False), [])   # a default config is left alone
        self.assertEqual(cfg.vision_config.out_hidden_size, 3584)
        self.assertEqual(len(recipes.fit_vision_out_width(cfg, True)), 1)
        self.assertEqual(cfg.vision_config.out_hidden_size, 64)
        self.assertEqual(recipes.fit_vision_out_width(cfg, True), [])
        self.assertEqual(recipes.fit_vision_out_width(NS(hidden_size=8), True), [])   # no vision tower
        self.assertIn(recipes.fit_vision_out_width, recipes.GENERIC_CONFIG_FIXES)
        # qwen3_vl's default config (3584 against 4096) cannot run: its
        # recipe fits the default as well, and leaves a shrunk one to the
        # generic fix.
        fix = recipes.get('qwen3_vl').fix_config
        cfg = NS(vision_config=NS(out_hidden_size=3584), text_config=NS(hidden_size=4096))
        self.assertEqual(fix(cfg, True), [])
        notes = fix(cfg, False)
        self.assertEqual(cfg.vision_config.out_hidden_size, 4096)
        self.assertIn('the default config has 3584', notes[0])
        self.assertEqual(fix(cfg, False), [])
        # Qwen2-VL names its merger's width hidden_size, Qwen2.5-VL out_hidden_size.
        for t, attr in (('qwen2_vl', 'hidden_size'), ('qwen2_5_vl', 'out_hidden_size')):
            cfg = NS(vision_config=NS(**{attr: 3584}), text_config=NS(hidden_size=8192))
            self.assertEqual(recipes.get(t).fix_config(cfg, True), [])
            self.assertIn('the default config has 3584', recipes.get(t).fix_config(cfg, False)[0])
            self.assertEqual(getattr(cfg.vision_config, attr), 8192)

    def test_glm_default_config_rotates_half_of_each_head(self):
        import hfleet_recipes as recipes
        from types import SimpleNamespace as NS
        fix = recipes.get('glm4v').fix_config
        rope = {'rope_type': 'default', 'rope_theta': 10000.0}
        cfg = NS(text_config=NS(hidden_size=4096, num_attention_heads=32, rope_parameters=rope))
        self.assertEqual(fix(cfg, True), [])   # shrunk: its sections are fitted after the build
        notes = fix(cfg, False)
        self.assertEqual(rope['partial_rotary_factor'], 0.5)   # [8, 12, 12]: 64 of 128
        self.assertIn('partial_rotary_factor=0.5', notes[0])
        self.assertEqual(fix(cfg, False), [])   # a config that says its factor keeps it
        flat = NS(hidden_size=4096, num_attention_heads=32, head_dim=256,
                  rope_parameters={'mrope_section': [16, 24, 24]})
        fix(flat, False)   # glm4v_text: the text config is the config
        self.assertEqual(flat.rope_parameters['partial_rotary_factor'], 0.5)
        self.assertIn(fix, [recipes.get(t).fix_config for t in ('glm46v', 'glmga', 'glm_image_text')])

    def test_audio_features_turned_time_major_once_on_a_shape_error(self):
        import hfleet_inputs as inputs_mod

        class T:
            """A stand-in tensor: a shape, transposed as torch's would be."""
            def __init__(self, *shape):
                self.shape = tuple(shape)

            def dim(self):
                return len(self.shape)

            def transpose(self, a, b):
                s = list(self.shape)
                s[a], s[b] = s[b], s[a]
                return T(*s)

            def contiguous(self):
                return self

        from types import SimpleNamespace as NS
        fake_torch = NS(Tensor=T)
        calls = []

        def conformer(**kw):   # takes (batch, frames, mel) only
            calls.append(kw["input_features"].shape)
            if kw["input_features"].shape[1] != 3000:
                raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (16x96000 and 4096x64)")
            return "out"

        inputs = {"input_features": T(1, 128, 3000), "attention_mask": T(1, 3000)}
        self.assertEqual(inputs_mod.forward_fitting_placeholders(fake_torch, conformer, inputs), "out")
        self.assertEqual(calls, [(1, 128, 3000), (1, 3000, 128)])
        self.assertEqual(inputs["input_features"].shape, (1, 3000, 128))   # kept for the benchmark
        self.assertEqual(inputs["attention_mask"].shape, (1, 3000))

        def broken(**kw):   # fails either way: both errors in the one raised
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (%dx1)" % kw["input_features"].shape[1])

        with self.assertRaises(RuntimeError) as cm:
            inputs_mod.forward_fitting_placeholders(fake_torch, broken, {"input_features": T(1, 80, 3000)})
        self.assertIn("(80x1)", str(cm.exception))
        self.assertIn("time-major", str(cm.exception))

        def other(**kw):   # another error, or no audio features: raised as it is, not retried
            calls.append("other")
            raise RuntimeError("CUDA out of memory")

        calls.clear()
        with self.assertRaises(RuntimeError):
            inputs_mod.forward_fitting_placeholders(fake_torch, other, {"input_features": T(1, 80, 3000)})
        self.assertEqual(calls, ["other"])

    def test_placeholder_mismatch_message(self):
        import hfleet_inputs as inputs_mod
        for msg, want in (("Image features and image tokens do not match, tokens: 0, features: 196", ("image", 0, 196)),
                          ("Image features and image tokens do not match: tokens: 4, features 1176", ("image", 4, 1176)),
                          ("Video features and video tokens do not match, tokens: 2, features: 8", ("video", 2, 8))):
            m = inputs_mod.MISMATCH.search(msg)
            self.assertIsNotNone(m, msg)
            self.assertEqual((m.group(1).lower(), int(m.group(2)), int(m.group(3))), want)
        self.assertIsNone(inputs_mod.MISMATCH.search("Image features and video tokens do not match, tokens: 1, features: 2"))


class TestDefaultConfigFixes(unittest.TestCase):
    """Generic fixes that make a transformers default config build."""

    def test_attention_shape_left_none_is_filled(self):
        from types import SimpleNamespace as NS
        import hfleet_recipes_config as rc
        cfg = NS(model_type="ministral", head_dim=None, hidden_size=4096, num_attention_heads=32)
        notes = rc.fill_attention_shape(cfg, False)
        self.assertEqual(cfg.head_dim, 128)
        self.assertEqual(len(notes), 1)
        cfg = NS(model_type="nemotron", hidden_size=6144, num_attention_heads=48, num_key_value_heads=None)
        rc.fill_attention_shape(cfg, False)
        self.assertEqual(cfg.num_key_value_heads, 48)
        # In a text_config too; one already set, or one without the attribute, is left alone.
        vlm = NS(text_config=NS(head_dim=None, hidden_size=2048, num_attention_heads=16))
        rc.fill_attention_shape(vlm, False)
        self.assertEqual(vlm.text_config.head_dim, 128)
        for c in (NS(head_dim=64, hidden_size=4096, num_attention_heads=32, num_key_value_heads=8),
                  NS(hidden_size=4096, num_attention_heads=32), NS(head_dim=None, hidden_size=100, num_attention_heads=3)):
            before = dict(vars(c))
            self.assertEqual(rc.fill_attention_shape(c, False), [])
            self.assertEqual(vars(c), before)

    def test_a_per_layer_attribute_that_raises_is_left_alone(self):
        import hfleet_recipes_config as rc

        class PerLayer:
            hidden_size, num_attention_heads, num_key_value_heads = 1024, 8, 8

            @property
            def head_dim(self):
                raise KeyError("'head_dim' is a per-layer attribute and may vary across layers")
        self.assertEqual(rc.fill_attention_shape(PerLayer(), False), [])

    def test_generic_fix_is_applied_to_every_type(self):
        import hfleet_recipes as recipes
        import hfleet_recipes_config as rc
        self.assertIn(rc.fill_attention_shape, recipes.GENERIC_CONFIG_FIXES)
        self.assertIn(rc.tame_init_std, recipes.GENERIC_CONFIG_FIXES)


class TestSweepSevenDefaults(unittest.TestCase):
    """Default configs that failed at full size on the H200 (call G,
    sweep 7), made as their released checkpoints are."""

    def test_vision_merger_at_the_text_width(self):
        from types import SimpleNamespace as NS
        import hfleet_recipes_config as rc
        for mt, text in (("qwen3_5_moe", 2048), ("cohere_compass", 8192)):
            cfg = NS(model_type=mt, vision_config=NS(out_hidden_size=3584),
                     text_config=NS(model_type=mt + "_text", hidden_size=text, layer_types=None,
                                    rope_parameters={}, head_dim=128))
            notes = rc.CONFIG_FIXES[mt](cfg, False)
            self.assertEqual(cfg.vision_config.out_hidden_size, text, mt)
            self.assertTrue(any("out_hidden_size=%d" % text in n for n in notes), notes)
        # The shrunk config is fitted by the generic fix; this one leaves it.
        cfg = NS(vision_config=NS(out_hidden_size=64), text_config=NS(hidden_size=32))
        self.assertEqual(rc.CONFIG_FIXES["qwen3_5_moe"](cfg, True), [])
        self.assertEqual(cfg.vision_config.out_hidden_size, 64)

    def test_cohere_compass_keeps_its_rope_fix(self):
        from types import SimpleNamespace as NS
        import hfleet_recipes_config as rc
        tc = NS(model_type="cohere_compass_text", hidden_size=8192, num_attention_heads=64, head_dim=128,
                layer_types=["sliding_attention", "full_attention"], rope_parameters={})
        cfg = NS(model_type="cohere_compass", vision_config=NS(out_hidden_size=3584), text_config=tc)
        notes = rc.CONFIG_FIXES["cohere_compass"](cfg, False)
        self.assertIn("sliding_attention", tc.rope_parameters)
        self.assertEqual(len(notes), 2, notes)

    def test_deepseek_v2_routes_each_token_to_six_experts(self):
        from types import SimpleNamespace as NS
        import hfleet_recipes_config as rc
        cfg = NS(model_type="deepseek_v2", n_routed_experts=64, num_experts_per_tok=None)
        self.assertEqual(len(rc.CONFIG_FIXES["deepseek_v2"](cfg, False)), 1)
        self.assertEqual(cfg.num_experts_per_tok, 6)
        cfg = NS(model_type="deepseek_v2", n_routed_experts=4, num_experts_per_tok=3)
        self.assertEqual(rc.CONFIG_FIXES["deepseek_v2"](cfg, True), [])
        self.assertEqual(cfg.num_experts_per_tok, 3)

    def test_expert_widths_aligned_for_grouped_mm(self):
        from types import SimpleNamespace as NS
        import hfleet_recipes as recipes
        import hfleet_recipes_config as rc
        self.assertIn(rc.align_expert_widths, recipes.GENERIC_CONFIG_FIXES)
        cfg = NS(model_type="deepseek_v2", moe_intermediate_size=1407, intermediate_size=10944)
        notes = rc.align_expert_widths(cfg, False)
        self.assertEqual(cfg.moe_intermediate_size, 1408)
        self.assertEqual(cfg.intermediate_size, 10944, "a dense width is not an expert's")
        self.assertEqual(len(notes), 1, notes)
        self.assertIn("was 1407", notes[0])
        outer = NS(model_type="deepseek_ocr2", text_config=NS(moe_intermediate_size=1407))
        self.assertEqual(len(rc.align_expert_widths(outer, False)), 1)
        self.assertEqual(outer.text_config.moe_intermediate_size, 1408)
        for v in (1408, 64, None, True):
            cfg = NS(moe_intermediate_size=v)
            self.assertEqual(rc.align_expert_widths(cfg, True), [], v)
            self.assertEqual(cfg.moe_intermediate_size, v)

    def test_granitemoehybrid_gets_attention_layers(self):
        from types import SimpleNamespace as NS
        import hfleet_recipes_config as rc
        cfg = NS(model_type="granitemoehybrid", num_hidden_layers=40, layer_types=None)
        self.assertEqual(len(rc.CONFIG_FIXES["granitemoehybrid"](cfg, False)), 1)
        self.assertEqual([i for i, t in enumerate(cfg.layer_types) if t == "attention"], [5, 15, 25, 35])
        self.assertEqual(cfg.layer_types.count("mamba"), 36)
        # transformers 5.17 names every layer of the default
        # "linear_attention" (the H100's error, 2026-12-07).
        cfg = NS(model_type="granitemoehybrid", num_hidden_layers=40, layer_types=["linear_attention"] * 40)
        self.assertEqual(len(rc.CONFIG_FIXES["granitemoehybrid"](cfg, False)), 1)
        self.assertEqual([i for i, t in enumerate(cfg.layer_types) if t == "full_attention"], [5, 15, 25, 35])
        self.assertEqual(cfg.layer_types.count("linear_attention"), 36)
        # A config that has attention layers, or a short shrunk one, is left alone.
        for given in (["mamba", "attention"], ["linear_attention", "full_attention"] * 4):
            cfg = NS(model_type="granitemoehybrid", num_hidden_layers=len(given), layer_types=list(given))
            self.assertEqual(rc.CONFIG_FIXES["granitemoehybrid"](cfg, True), [])
            self.assertEqual(cfg.layer_types, given)
        cfg = NS(model_type="granitemoehybrid", num_hidden_layers=2, layer_types=["linear_attention"] * 2)
        self.assertEqual(rc.CONFIG_FIXES["granitemoehybrid"](cfg, True), [])


class TestHalfPrecisionInit(unittest.TestCase):
    """Random initialisations float16 cannot hold, rescaled without changing
    a layer, a width or a dtype (the fp16 benchmark of cpmant)."""

    def test_an_init_std_that_overflows_is_brought_to_the_library_default(self):
        from types import SimpleNamespace as NS
        import hfleet_recipes_config as rc
        # CpmAntConfig's defaults: no initializer_range, init_std 1.0, 4096 wide.
        cfg = NS(model_type="cpmant", hidden_size=4096, init_std=1.0, num_hidden_layers=48, dim_ff=10240)
        notes = rc.tame_init_std(cfg, False)
        self.assertEqual(cfg.init_std, 0.02)
        self.assertEqual(len(notes), 1)
        self.assertIn("init_std=0.02 (was 1", notes[0])
        self.assertIn("64", notes[0])   # the gain: 1.0 * sqrt(4096)
        # widths, depth and everything else stay
        self.assertEqual((cfg.hidden_size, cfg.num_hidden_layers, cfg.dim_ff), (4096, 48, 10240))
        self.assertEqual(rc.tame_init_std(cfg, False), [])   # once fixed, nothing more to say
        # the shrunk config too (64 wide: a gain of 8)
        small = NS(hidden_size=64, init_std=1.0)
        self.assertEqual(len(rc.tame_init_std(small, True)), 1)
        self.assertEqual(small.init_std, 0.02)
        # in a text_config, and with d_model as the width
        vlm = NS(text_config=NS(d_model=1024, init_std=0.5))
        self.assertEqual(len(rc.tame_init_std(vlm, False)), 1)
        self.assertEqual(vlm.text_config.init_std, 0.02)

    def test_ordinary_init_stds_are_left_alone(self):
        from types import SimpleNamespace as NS
        import hfleet_recipes_config as rc
        for c in (NS(d_model=1024, init_std=0.02),                          # bart, mbart, ...
                  NS(hidden_size=16384, init_std=0.02),                     # gain 2.56: fine
                  NS(hidden_size=4096, init_std=1.0, initializer_range=0.02),  # the base reads initializer_range
                  NS(hidden_size=4096, initializer_factor=1.0),             # t5's factor is not a std
                  NS(hidden_size=4096, init_std=None), NS(hidden_size=4096, init_std=True),
                  NS(init_std=1.0), NS(hidden_size=None, init_std=1.0)):
            before = dict(vars(c))
            self.assertEqual(rc.tame_init_std(c, False), [])
            self.assertEqual(vars(c), before)


class TestBatchNormCalibration(unittest.TestCase):
    """A recipe's calibrate_batchnorm (align): which attempts get it, and
    hfleet_build.calibrate_batchnorm's hooks on a stand-in torch (the
    statistics themselves: test_runner_torch.TestBatchNormCalibration)."""

    def test_align_asks_for_it_with_random_weights_only(self):
        import hfleet_build as build
        import hfleet_recipes as recipes
        r = recipes.get("align")
        self.assertTrue(r.calibrate_batchnorm)
        # the default config, so the architecture, and the planner's inputs stay
        self.assertIsNone(r.fix_config)
        self.assertIsNone(r.inputs)
        self.assertEqual(r.provides, ())
        for source in ("shrunk", "default", "shallow"):
            self.assertTrue(build.calibrates_batchnorm("align", source), source)
        self.assertFalse(build.calibrates_batchnorm("align", "pretrained"))   # trained statistics stay
        self.assertFalse(build.calibrates_batchnorm("bert", "default"))       # no recipe
        self.assertFalse(build.calibrates_batchnorm("fnet", "default"))       # a recipe without the flag
        self.assertFalse(rb.Recipe().calibrate_batchnorm)

    def _stand_in(self):
        """torch.nn's _BatchNorm, no_grad that records its use, and modules
        whose call runs their forward pre-hooks, then their children."""
        from types import SimpleNamespace as NS
        calls = {"no_grad": 0}

        class NoGrad:
            def __enter__(self):
                calls["no_grad"] += 1

            def __exit__(self, *exc):
                return False

        class Module:
            def __init__(self, *children):
                self.children_, self.hooks, self.training = list(children), {}, False

            def modules(self, memo=None):   # each once, as torch's
                memo = set() if memo is None else memo
                if id(self) not in memo:
                    memo.add(id(self))
                    yield self
                    for c in self.children_:
                        yield from c.modules(memo)

            def register_forward_pre_hook(self, fn):
                key = object()
                self.hooks[key] = fn
                return NS(remove=lambda: self.hooks.pop(key))

            def __call__(self, x):
                for fn in list(self.hooks.values()):
                    fn(self, (x,))
                for c in self.children_:
                    c(x + 1)

        class _BatchNorm(Module):
            def __init__(self, name, training=False, track=True):
                super().__init__()
                self.name, self.training, self.track_running_stats = name, training, track
                self.running_var = object() if track else None

        torch = NS(nn=NS(modules=NS(batchnorm=NS(_BatchNorm=_BatchNorm))), no_grad=NoGrad)
        return torch, Module, _BatchNorm, calls

    def test_each_eval_batchnorm_is_set_once_in_forward_order_and_the_hooks_go(self):
        import hfleet_build as build
        torch, Module, BN, calls = self._stand_in()
        a, b, c = BN("a"), BN("b"), BN("c")
        training, untracked, unreached = BN("training", training=True), BN("untracked", track=False), BN("unreached")
        shared = BN("shared")
        model = Module(a, Module(b, training, untracked), shared, c, Module(shared))   # shared: inputs 1, then 2
        seen = []

        def scale_from_input(t, norm, x):
            self.assertIs(t, torch)
            seen.append((norm.name, x))
            return 2 if norm is c else 0   # c: two channels with a non-finite input

        def forward():
            self.assertEqual(calls["no_grad"], 1)   # the pass runs without autograd
            model(0)

        note = build.calibrate_batchnorm(torch, Module(model, unreached), forward, scale_from_input=scale_from_input)
        # forward order, each once (the shared layer at its first call), only
        # eval-mode layers with running statistics
        self.assertEqual(seen, [("a", 1), ("b", 2), ("shared", 1), ("c", 1)])
        self.assertTrue(note.startswith("4 BatchNorm layers' running statistics set from this task's input"), note)
        self.assertIn("1 not reached by the pass keep theirs", note)
        self.assertIn("2 channels with a non-finite input keep theirs", note)
        for m in (a, b, c, shared, training, untracked, unreached):
            self.assertEqual(m.hooks, {}, m.name)

    def test_hooks_go_when_the_pass_fails_and_nothing_is_run_without_batchnorm(self):
        import hfleet_build as build
        torch, Module, BN, _ = self._stand_in()
        a = BN("a")

        def failing():
            raise RuntimeError("the forward's own failure")

        with self.assertRaisesRegex(RuntimeError, "own failure"):
            build.calibrate_batchnorm(torch, Module(a), failing, scale_from_input=lambda *args: 0)
        self.assertEqual(a.hooks, {})
        note = build.calibrate_batchnorm(torch, Module(Module()), lambda: self.fail("no pass without BatchNorm"))
        self.assertIn("nothing calibrated", note)


class TestHalfPrecisionFFT(unittest.TestCase):
    """cuFFT takes half-precision FFTs only of powers of two (and torch has no
    bf16 FFT on CUDA): autoformer's default config gets a decoder length that
    is one; fnet's Fourier mixing becomes DFT matrix products at a half
    precision on CUDA (its 768 features)."""

    def test_autoformer_default_decoder_is_a_power_of_two(self):
        from types import SimpleNamespace as NS
        import hfleet_build as build
        import hfleet_recipes as recipes
        import hfleet_recipes_audio as ra
        self.assertIs(recipes.get("autoformer").fix_config, ra.autoformer_fft_lengths)
        # AutoformerConfig's defaults (transformers 5.x): no horizon, label_length 10
        cfg = NS(model_type="autoformer", prediction_length=None, context_length=None, label_length=10,
                 lags_sequence=[1, 2, 3, 4, 5, 6, 7], d_model=64)
        notes = build._apply_fixes("autoformer", cfg, False)
        self.assertEqual((cfg.context_length, cfg.prediction_length, cfg.label_length), (32, 32, 32))
        self.assertEqual(notes[:2], ["prediction_length=32 (None in the default config)", "context_length=32"])
        self.assertEqual(len(notes), 3)   # the generic horizon fix, run again after the recipe, adds nothing
        self.assertTrue(notes[2].startswith("label_length=32 (was 10)"), notes[2])
        self.assertIn("64 steps", notes[2])
        self.assertIn("42 is not", notes[2])
        # every FFT length: the encoder's context, the decoder's label + horizon
        self.assertTrue(rb.is_power_of_two(cfg.context_length))
        self.assertTrue(rb.is_power_of_two(cfg.label_length + cfg.prediction_length))
        self.assertLessEqual(cfg.label_length, cfg.context_length)   # the decoder starts inside the context
        self.assertEqual((cfg.lags_sequence, cfg.d_model), ([1, 2, 3, 4, 5, 6, 7], 64))
        self.assertEqual(ra.autoformer_fft_lengths(cfg, False), [])   # once fixed, nothing more to say

    def test_autoformer_shrunk_and_consistent_configs_are_left_alone(self):
        from types import SimpleNamespace as NS
        import hfleet_build as build
        import hfleet_recipes_audio as ra
        # the shrunk config (tests, fp32): the shrinker's 8 and 16, label 10 kept
        small = NS(model_type="autoformer", prediction_length=8, context_length=16, label_length=10)
        self.assertEqual(build._apply_fixes("autoformer", small, True), [])
        self.assertEqual((small.prediction_length, small.context_length, small.label_length), (8, 16, 10))
        # a default whose decoder is already a power of two
        ok = NS(prediction_length=24, context_length=48, label_length=8)
        self.assertEqual(ra.autoformer_fft_lengths(ok, False), [])
        self.assertEqual(ok.label_length, 8)
        # no label fits the context: kept, and the note says why
        tight = NS(prediction_length=32, context_length=16, label_length=10)
        notes = ra.autoformer_fft_lengths(tight, False)
        self.assertEqual(tight.label_length, 10)
        self.assertEqual(len(notes), 1)
        self.assertIn("label_length=10 kept", notes[0])
        # the other forecasters have no label_length: only the horizon is set
        informer = NS(model_type="informer", prediction_length=None, context_length=None)
        build._apply_fixes("informer", informer, False)
        self.assertEqual((informer.prediction_length, informer.context_length), (32, 32))
        self.assertFalse(hasattr(informer, "label_length"))

    def test_power_of_two_label_length(self):
        import hfleet_recipes_audio as ra
        self.assertEqual(ra.power_of_two_label_length(32, 32, 10), 32)   # 64 steps
        self.assertEqual(ra.power_of_two_label_length(48, 24, 10), 8)    # 32 (40 + 24 = 64 is further from 10)
        self.assertEqual(ra.power_of_two_label_length(48, 24, 30), 40)   # 64
        self.assertEqual(ra.power_of_two_label_length(16, 16, 10), 16)   # 32
        self.assertIsNone(ra.power_of_two_label_length(16, 32, 10))      # 32 more steps than the context holds
        for args in ((32, 32, 10), (48, 24, 10), (100, 7, 3), (5, 3, 1)):
            got = ra.power_of_two_label_length(*args)
            self.assertTrue(rb.is_power_of_two(got + args[1]) and 1 <= got <= args[0], (args, got))

    # fnet: stand-ins for the model, its mixing modules and the modeling module
    # that holds transformers' two_dim_matmul

    def _fnet(self, with_two_dim=True):
        import types
        from types import SimpleNamespace as NS
        name = "fake_transformers_models_fnet_modeling_fnet"
        modeling = types.ModuleType(name)
        calls = []
        if with_two_dim:
            def two_dim_matmul(x, matrix_dim_one, matrix_dim_two):
                calls.append((x, matrix_dim_one, matrix_dim_two))
                return NS(real=NS(to=lambda dtype: ("real part", dtype)))
            modeling.two_dim_matmul = two_dim_matmul

        class FNetBasicFourierTransform:
            def __init__(self):
                self.fourier_transform = "torch.fft.fftn"
        FNetBasicFourierTransform.__module__ = name
        sys.modules[name] = modeling
        self.addCleanup(sys.modules.pop, name, None)
        layers = [FNetBasicFourierTransform() for _ in range(3)]
        others = [NS(fourier_transform="not FNet's"), NS()]
        model = NS(modules=lambda: [others[0]] + layers + [others[1]])
        return model, layers, others, calls

    def _fnet_ctx(self, model, dtype, device_type="cuda", seq=128, hidden=768):
        from types import SimpleNamespace as NS

        class Device:   # torch.device("cuda:0"): its type, and its name as str() gives it
            type = device_type

            def __str__(self):
                return f"{device_type}:0"
        return NS(torch=_fake_torch(), model=model, config=NS(model_type="fnet", hidden_size=hidden),
                  inputs={"input_ids": FakeTensor((1, seq), dtype="i64"), "token_type_ids": FakeTensor((1, seq))},
                  batch=1, seq=seq, device=Device(), dtype=dtype)

    def _run_fnet(self, r):
        import contextlib
        import io
        from unittest import mock
        import hfleet_recipes as recipes
        import hfleet_recipes_config as rc
        made = []

        def fake_dft(torch, n, device):
            made.append(n)
            return ("dft", n)
        err = io.StringIO()
        with mock.patch.object(rc, "dft_matrix", fake_dft), contextlib.redirect_stderr(err):
            recipes.get("fnet").inputs(r)
        return made, err.getvalue()

    def test_fnet_mixing_becomes_dft_matmuls_at_fp16_on_cuda(self):
        import hfleet_recipes as recipes
        import hfleet_recipes_config as rc
        self.assertIs(recipes.get("fnet").inputs, rc._fnet_inputs)
        self.assertIsNone(recipes.get("fnet").fix_config)   # the config (and fp32 runs) stay as transformers has them
        model, layers, others, calls = self._fnet()
        r = self._fnet_ctx(model, "f16")
        made, log = self._run_fnet(r)
        self.assertEqual(made, [128, 768])   # the input's sequence and the features, made before any forward
        mixing = layers[0].fourier_transform
        self.assertTrue(callable(mixing))
        self.assertTrue(all(m.fourier_transform is mixing for m in layers))
        self.assertEqual([o.__dict__.get("fourier_transform") for o in others], ["not FNet's", None])
        self.assertIn("fnet: the Fourier mixing of 3 layers", log)
        self.assertIn("128- and 768-point DFT matrices", log)
        self.assertIn("tpu_short_seq_length = the input's 128", log)
        self.assertIn("cuFFT has no fp16 FFT of 768", log)
        self.assertEqual(set(r.inputs), {"input_ids", "token_type_ids"})   # the inputs are the planner's
        # a pass: transformers' two_dim_matmul with the L x L and H x H matrices,
        # the real part in the input's dtype
        x = FakeTensor((1, 128, 768), dtype="f16", device="cuda:0")
        self.assertEqual(mixing(x), ("real part", "f16"))
        self.assertEqual(calls, [(x, ("dft", 128), ("dft", 768))])
        # another length gets its own matrices
        from unittest import mock
        with mock.patch.object(rc, "dft_matrix", lambda torch, n, device: ("dft", n)):
            mixing(FakeTensor((1, 64, 768), dtype="f16", device="cuda:0"))
        self.assertEqual(calls[-1][1:], (("dft", 64), ("dft", 768)))

    def test_fnet_keeps_its_fft_where_cufft_takes_it(self):
        for dtype, device, seq, hidden in (("f32", "cuda", 128, 768),     # fp32: cuFFT takes any size
                                           ("f16", "cpu", 128, 768),      # not CUDA
                                           ("f16", "cuda", 128, 1024),    # powers of two at fp16
                                           ("f16", "cuda", 64, 64)):      # the shrunk config
            with self.subTest(dtype=dtype, device=device, seq=seq, hidden=hidden):
                model, layers, _, calls = self._fnet()
                made, log = self._run_fnet(self._fnet_ctx(model, dtype, device, seq, hidden))
                self.assertEqual(made, [])
                self.assertEqual(log, "")
                self.assertTrue(all(m.fourier_transform == "torch.fft.fftn" for m in layers))

    def test_fnet_at_bf16_and_odd_sequences(self):
        # torch has no bf16 FFT on CUDA at all: powers of two too
        model, layers, _, _ = self._fnet()
        made, log = self._run_fnet(self._fnet_ctx(model, "bf16", "cuda", 128, 1024))
        self.assertEqual(made, [128, 1024])
        self.assertIn("torch has no bf16 FFT on CUDA", log)
        self.assertTrue(callable(layers[0].fourier_transform))
        # a sequence that is not a power of two, at fp16
        model, layers, _, _ = self._fnet()
        made, log = self._run_fnet(self._fnet_ctx(model, "f16", "cuda", 100, 1024))
        self.assertEqual(made, [100, 1024])
        self.assertIn("cuFFT has no fp16 FFT of 100", log)

    def test_fnet_without_mixing_modules_or_two_dim_matmul(self):
        from types import SimpleNamespace as NS
        import hfleet_recipes_config as rc
        # no FNet mixing module (another transformers): nothing changed, and the log says so
        made, log = self._run_fnet(self._fnet_ctx(NS(modules=lambda: [NS(), NS()]), "f16"))
        self.assertEqual(made, [])
        self.assertIn("no FNetBasicFourierTransform module found", log)
        # a modeling module without two_dim_matmul: the same einsum, here
        model, layers, _, _ = self._fnet(with_two_dim=False)
        self._run_fnet(self._fnet_ctx(model, "f16"))
        self.assertTrue(callable(layers[0].fourier_transform))
        seen = []

        class X:
            shape, dtype, device = (2, 128, 768), "f16", "cuda:0"

            def to(self, dtype):
                seen.append(("to", dtype))
                return "x as complex64"
        class SeqMatrix:
            def __getitem__(self, key):
                return ("cut to", key)
        torch = NS(complex64="c64", einsum=lambda eq, *ops: seen.append((eq,) + ops) or NS(real=NS(to=lambda d: d)))
        two_dim = rc._local_two_dim_matmul(torch)
        out = two_dim(X(), matrix_dim_one=SeqMatrix(), matrix_dim_two="H")
        self.assertEqual(seen[0], ("to", "c64"))
        self.assertEqual(seen[1], ("bij,jk,ni->bnk", "x as complex64", "H", ("cut to", (slice(None, 128), slice(None, 128)))))
        self.assertEqual(out.real.to("f16"), "f16")

    def test_power_of_two(self):
        self.assertEqual([n for n in range(70) if rb.is_power_of_two(n)], [1, 2, 4, 8, 16, 32, 64])
        for n in (768, 42, 0, -4, None, True, 64.0):
            self.assertFalse(rb.is_power_of_two(n), n)


class TestHeadFirstFallback(unittest.TestCase):
    """A generative benchmark builds the task's head first; a head that
    refuses the default config falls back to the bare model."""

    def _transformers(self, head_error):
        from types import SimpleNamespace as NS

        class Head:
            @staticmethod
            def from_config(config):
                raise head_error

        class Bare:
            @staticmethod
            def from_config(config):
                return "bare model"
        return NS(AutoModelForCausalLM=Head, AutoModel=Bare, __version__="5.17.0")

    def test_head_refusing_config_falls_back(self):
        from types import SimpleNamespace as NS
        import hfleet_build as build
        tf = self._transformers(AssertionError("If you want to use `ReformerModelWithLMHead` make sure that `is_decoder=True`."))
        cfg = NS(model_type="not-a-recipe-type")
        self.assertEqual(build.build_from_config(tf, cfg, "text-generation", head_first=True), "bare model")
        # Without head_first the bare model is first anyway.
        self.assertEqual(build.build_from_config(tf, cfg, "text-generation"), "bare model")

    def test_device_errors_and_memory_are_not_swallowed(self):
        from types import SimpleNamespace as NS
        import hfleet_build as build
        cfg = NS(model_type="not-a-recipe-type")
        for err in (RuntimeError("CUDA out of memory"), ValueError("CUDA error: device-side assert triggered"),
                    TypeError("unsupported operand")):
            with self.assertRaises(type(err)):
                build.build_from_config(self._transformers(err), cfg, "text-generation", head_first=True)


class TestOfflineTimmConfigs(unittest.TestCase):
    """hfleet_build.offline_timm_configs on a stand-in transformers: a timm
    Hub config the offline runner lacks is its architecture's TimmWrapper
    config, so a config class whose default asks the Hub for one (EdgeTAM's
    vision config) can be built, and printed, offline
    (test_runner_torch.TestOfflineTimmBackbone: the real classes)."""

    OFFLINE = ("We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the "
               "cached files. Check your internet connection or see how to run the library in offline mode at "
               "'https://huggingface.co/docs/transformers/installation#offline-mode'.")
    MODEL_ARGS = {"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]}

    def _transformers(self, error=None, cached=()):
        """AutoConfig.from_pretrained gives the ids in cached and raises
        error (default: transformers' offline OSError) for the others."""
        from types import SimpleNamespace as NS
        calls = []

        class TimmWrapperConfig:
            model_type = "timm_wrapper"

            def __init__(self, architecture="resnet50", model_args=None, **kwargs):
                self.architecture, self.model_args, self.kwargs = architecture, model_args, kwargs

        class AutoConfig:
            @classmethod
            def from_pretrained(cls, name, **kwargs):
                calls.append(name)
                if name in cached:
                    return f"cached {name}"
                raise error if error is not None else OSError(self.OFFLINE)

        return NS(AutoConfig=AutoConfig, CONFIG_MAPPING={"timm_wrapper": TimmWrapperConfig}), calls

    def test_timm_hub_ids_name_their_architecture(self):
        import hfleet_build as build
        self.assertEqual(build.timm_hub_architecture("timm/repvit_m1.dist_in1k"), "repvit_m1.dist_in1k")
        self.assertEqual(build.timm_hub_architecture("timm/resnet50.a1_in1k"), "resnet50.a1_in1k")
        for name in ("facebook/sam2.1-hiera-tiny", "timm/", "timm/a/b", "repvit_m1", "", None, 3):
            self.assertIsNone(build.timm_hub_architecture(name), name)

    def test_hub_files_missing_offline(self):
        import hfleet_runner_lib as lib

        class LocalEntryNotFoundError(Exception):
            pass
        self.assertTrue(lib.hub_file_missing(OSError(self.OFFLINE)))
        self.assertTrue(lib.hub_file_missing(LocalEntryNotFoundError("no file")))
        self.assertFalse(lib.hub_file_missing(OSError("[Errno 13] Permission denied: '/cache/x'")))
        self.assertFalse(lib.hub_file_missing(ValueError(self.OFFLINE)))   # not a file that is missing
        self.assertFalse(lib.hub_file_missing(ImportError("timm")))

    def test_an_uncached_timm_config_is_its_architecture(self):
        import hfleet_build as build
        tf, calls = self._transformers()
        build.offline_timm_configs(tf)
        cfg = tf.AutoConfig.from_pretrained("timm/repvit_m1.dist_in1k", model_args=dict(self.MODEL_ARGS),
                                            cache_dir="/x", revision="main", local_files_only=True)
        self.assertEqual(calls, ["timm/repvit_m1.dist_in1k"])   # the Hub (the cache) first
        self.assertEqual(type(cfg).model_type, "timm_wrapper")
        self.assertEqual(cfg.architecture, "repvit_m1.dist_in1k")
        self.assertEqual(cfg.model_args, self.MODEL_ARGS)
        self.assertEqual(cfg.kwargs, {})   # from_pretrained's own keywords are not the config's

    def test_other_ids_errors_and_cached_configs_are_left_alone(self):
        import hfleet_build as build
        tf, _ = self._transformers(cached=("timm/resnet50.a1_in1k",))
        build.offline_timm_configs(tf)
        self.assertEqual(tf.AutoConfig.from_pretrained("timm/resnet50.a1_in1k"), "cached timm/resnet50.a1_in1k")
        with self.assertRaises(OSError):   # not a timm id
            tf.AutoConfig.from_pretrained("facebook/sam2.1-hiera-tiny")
        with self.assertRaises(OSError):   # the caller wants (config, unused kwargs)
            tf.AutoConfig.from_pretrained("timm/repvit_m1.dist_in1k", return_unused_kwargs=True)
        for err in (OSError("[Errno 13] Permission denied"), ValueError("Unrecognized model in timm/x")):
            tf, _ = self._transformers(error=err)
            build.offline_timm_configs(tf)
            with self.assertRaises(type(err)):
                tf.AutoConfig.from_pretrained("timm/repvit_m1.dist_in1k")

    def test_installed_once_a_process(self):
        import hfleet_build as build
        tf, calls = self._transformers()
        build.offline_timm_configs(tf)
        wrapped = tf.AutoConfig.from_pretrained.__func__
        build.offline_timm_configs(tf)   # a warm runner's next task
        self.assertIs(tf.AutoConfig.from_pretrained.__func__, wrapped)
        tf.AutoConfig.from_pretrained("timm/repvit_m1.dist_in1k")
        self.assertEqual(calls, ["timm/repvit_m1.dist_in1k"])

    def test_a_config_printed_against_its_hub_default_builds_offline(self):
        """The failure edgetam had: a config whose class default asks the Hub
        for its timm backbone, printed (transformers' repr diffs a config
        against its class's default; a strict dataclass config prints a
        sub-config assigned to a `dict | PreTrainedConfig | None` field)."""
        import hfleet_build as build
        tf, _ = self._transformers()
        model_args = self.MODEL_ARGS

        class VisionConfig:
            def __init__(self, backbone_config=None):
                self.backbone_config = backbone_config if backbone_config is not None else \
                    tf.AutoConfig.from_pretrained("timm/repvit_m1.dist_in1k", model_args=dict(model_args))

            def __repr__(self):
                default = type(self)()
                return f"VisionConfig {vars(self) == vars(default)}"

        given = VisionConfig(tf.CONFIG_MAPPING["timm_wrapper"](architecture="repvit_m1.dist_in1k"))
        with self.assertRaises(OSError):
            repr(given)
        build.offline_timm_configs(tf)
        self.assertTrue(repr(given).startswith("VisionConfig "))
        self.assertEqual(VisionConfig().backbone_config.architecture, "repvit_m1.dist_in1k")

    def test_edgetam_recipes_leave_the_config_to_transformers(self):
        import hfleet_recipes as recipes
        for mt in ("edgetam", "edgetam_vision_model"):
            r = recipes.get(mt)
            self.assertIsNone(r.make_config, mt)   # AutoConfig.for_model, offline_timm_configs answering the Hub
            self.assertTrue(r.prefer_default, mt)
            self.assertEqual(r.provides, ("pixel_values",))


# --------------------------------------------------------------------------
# Stand-ins for the video trackers' recipes (hfleet_recipes_video): a model,
# its inference session class (found by name in this module, as the recipe
# finds transformers' beside the model), a few tensors and the Ctx.

class FakeTensor:
    """A tensor stand-in: a shape and, for 3-D ones, cells that slices set."""

    def __init__(self, shape, fill=0.0, rows=None, dtype="f32", device="cpu"):
        self.shape, self.dtype, self.device, self.rows = tuple(shape), dtype, device, rows
        if rows is None and len(self.shape) == 3:
            n, h, w = self.shape
            self.rows = [[[fill] * w for _ in range(h)] for _ in range(n)]

    def dim(self):
        return len(self.shape)

    def __setitem__(self, key, value):
        i, ys, xs = key
        for y in range(*ys.indices(self.shape[1])):
            for x in range(*xs.indices(self.shape[2])):
                self.rows[i][y][x] = value


def _fake_torch():
    from types import SimpleNamespace as NS

    def tensor(rows, dtype=None, device="cpu"):
        def shape(v):
            return (len(v),) + shape(v[0]) if isinstance(v, list) and v else ((0,) if isinstance(v, list) else ())
        return FakeTensor(shape(rows), rows=rows, dtype=dtype, device=device)

    return NS(Tensor=FakeTensor, float32="f32", long="i64", float16="f16", bfloat16="bf16", tensor=tensor,
              full=lambda shape, v, dtype=None, device=None: FakeTensor(shape, fill=v, dtype=dtype, device=device),
              ones=lambda n, dtype=None, device=None: FakeTensor((n,), rows=[1.0] * n, dtype=dtype, device=device))


def _fake_ctx(model, config, batch):
    from types import SimpleNamespace as NS
    return NS(torch=_fake_torch(), model=model, config=config, inputs={}, batch=batch, device="cpu", dtype="f32",
              randn=lambda *shape: [f"frame{i}" for i in range(shape[0])],
              randint=lambda high, *shape, low=0: FakeTensor(shape, dtype="i64"),
              ones=lambda *shape, dtype=None: FakeTensor(shape, dtype="i64"))


class FakeCache:
    def __init__(self):
        self.cleared = 0

    def clear_all(self):
        self.cleared += 1


class FakeTrackerInferenceSession:
    """Sam2VideoInferenceSession's constructor and the methods the recipe calls."""

    def __init__(self, video=None, video_height=None, video_width=None, inference_device="cpu",
                 inference_state_device="cpu", video_storage_device="cpu", dtype="float32",
                 max_vision_features_cache_size=1):
        self.made_with = dict(video=video, video_height=video_height, video_width=video_width,
                              inference_device=inference_device, dtype=dtype,
                              max_vision_features_cache_size=max_vision_features_cache_size)
        self.obj_ids, self.points, self.obj_with_new_inputs, self.cache = [], {}, [], FakeCache()
        self.frames = {}

    def obj_id_to_idx(self, obj_id):
        if obj_id not in self.obj_ids:
            self.obj_ids.append(obj_id)
        return self.obj_ids.index(obj_id)

    def add_point_inputs(self, obj_idx, frame_idx, inputs):
        self.points[(obj_idx, frame_idx)] = inputs

    def add_new_frame(self, pixel_values, frame_idx=None):
        self.frames[frame_idx] = pixel_values
        return frame_idx


class FakeModule:
    """nn.Module's call: forward pre-hooks, then forward."""

    def __init__(self):
        self.hooks, self.calls = [], []

    def register_forward_pre_hook(self, hook):
        self.hooks.append(hook)

    def __call__(self, **kwargs):
        for hook in self.hooks:
            hook(self, ())
        return self.forward(**kwargs)


class FakeTrackerModel(FakeModule):
    num_maskmem = 3

    def forward(self, inference_session: FakeTrackerInferenceSession, frame_idx=None, frame=None, reverse=False,
                **kwargs):
        inference_session.add_new_frame(frame, frame_idx)
        self.calls.append((frame_idx, frame, inference_session.cache.cleared))
        return "masks"


class FakeAppendingInferenceSession(FakeTrackerInferenceSession):
    """transformers 4.57's session: a streamed frame is always appended."""

    def add_new_frame(self, pixel_values):
        return 0


class FakeAppendingModel(FakeTrackerModel):
    def forward(self, inference_session: FakeAppendingInferenceSession, frame_idx=None, frame=None):
        return "masks"


class FakeDetectTrackInferenceSession(FakeTrackerInferenceSession):
    """Sam3VideoInferenceSession's prompts on top of the tracker's session."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.prompts, self.prompt_input_ids, self.prompt_attention_masks = {}, {}, {}

    def add_prompt(self, text):
        self.prompts.setdefault(text, len(self.prompts))
        return self.prompts[text]


class FakeDetectTrackModel(FakeModule):
    """Sam3VideoModel's shape: every frame is detected (run_detection) and
    detections at or above new_det_thresh that are not tracked yet start a
    track; the detector with random weights finds one object per frame."""

    def __init__(self):
        super().__init__()
        from types import SimpleNamespace as NS
        self.tracker_model = NS(num_maskmem=3)
        self.new_det_thresh = 0.7

    def run_detection(self, inference_session, vision_embeds):
        return {0: {"mask": FakeTensor((1, 12, 16)), "bbox": FakeTensor((1, 4)),
                    "scores": FakeTensor((1,), rows=[0.9])}}

    def forward(self, inference_session: FakeDetectTrackInferenceSession, frame_idx=None, frame=None,
                reverse=False, **kwargs):
        inference_session.add_new_frame(frame, frame_idx)
        found = self.run_detection(inference_session, None)[0]
        born = [s for s in found["scores"].rows if s >= self.new_det_thresh]
        for _ in born:
            inference_session.obj_id_to_idx(len(inference_session.obj_ids))
        self.calls.append((frame_idx, frame, len(born), found["mask"].shape))
        return "masks"


class TestVideoTrackerRecipes(unittest.TestCase):
    """The video trackers' inference sessions (hfleet_recipes_video) on
    stand-ins: what goes in the session, which frames are tracked before
    the runner's passes, and that every pass encodes its frame."""

    def test_the_four_trackers_build_a_session(self):
        import hfleet_recipes as recipes
        import hfleet_recipes_video as video
        for mt in ("sam2_video", "sam3_tracker_video", "edgetam_video", "sam3_video"):
            r = recipes.get(mt)
            self.assertEqual(set(r.provides), {"inference_session", "frame_idx", "frame"}, mt)
            self.assertTrue(r.prefer_default and r.note, mt)
        self.assertIs(recipes.get("sam2_video").inputs, recipes.get("edgetam_video").inputs)
        self.assertEqual(recipes.get("sam2_video").name, "video-tracker-session")
        self.assertEqual(recipes.get("sam3_video").name, "video-detect-track-session")
        self.assertTrue(issubclass(video.SessionApiError, plan_mod.PlanError))   # the runner skips, with why
        # the planner leaves the session to the recipe: nothing else is required
        params = {"inference_session": True, "frame_idx": False, "frame": False, "reverse": False}
        with self.assertRaises(plan_mod.PlanError):
            plan_mod.plan_inputs({}, params, "image", 1, 8)
        self.assertEqual(plan_mod.plan_inputs({}, params, "image", 1, 8, provided=recipes.get("sam2_video").provides), [])

    def test_sizes_prompts_and_frames(self):
        from types import SimpleNamespace as NS
        import hfleet_recipes_video as video
        self.assertEqual(video.frame_size(NS(image_size=1024)), 1024)
        self.assertEqual(video.frame_size(NS(image_size=[1008, 1008])), 1008)
        self.assertEqual(video.frame_size(NS(image_size=None, vision_config=NS(image_size=512))), 512)
        with self.assertRaises(video.SessionApiError):
            video.frame_size(NS())
        self.assertEqual(video.prompt_space(NS(image_size=1024, prompt_encoder_config=NS(image_size=1008))), 1008)
        self.assertEqual(video.prompt_space(NS(image_size=1024)), 1024)
        self.assertEqual(video.memory_frames(NS(num_maskmem=5), NS(num_maskmem=7)), 5)
        self.assertEqual(video.memory_frames(NS(), NS(num_maskmem=6)), 6)
        self.assertEqual(video.memory_frames(NS(), NS()), 7)
        self.assertEqual(video.measured_frame(7), 7)
        self.assertEqual(video.measured_frame(0), 1)   # no memory bank: the frame after the prompted one
        pts = video.point_prompts(4, 1024)
        self.assertEqual(pts, video.point_prompts(4, 1024))
        self.assertEqual(len(pts), 4)
        self.assertTrue(all(0 <= c < 1024 for p in pts for c in p))
        self.assertEqual(video.session_class_name("Sam2VideoModel"), "Sam2VideoInferenceSession")
        self.assertEqual(video.session_class_name("EdgeTamVideoModel"), "EdgeTamVideoInferenceSession")

    def test_seed_rectangles_are_disjoint_and_inside(self):
        import hfleet_recipes_video as video
        for n, h, w in ((1, 288, 288), (4, 288, 288), (3, 12, 16)):
            rects = video.seed_rectangles(n, h, w)
            self.assertEqual(len(rects), n)
            cells = set()
            for y0, y1, x0, x1 in rects:
                self.assertTrue(0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w)
                mine = {(y, x) for y in range(y0, y1) for x in range(x0, x1)}
                self.assertFalse(cells & mine)
                cells |= mine
        with self.assertRaises(video.SessionApiError):
            video.seed_rectangles(10, 12, 16)

    def test_session_arguments_follow_the_constructor(self):
        import hfleet_recipes_video as video

        class Strict:
            def __init__(self, video_height, inference_device="cpu"):
                pass

        class Open:
            def __init__(self, **kwargs):
                pass

        self.assertEqual(video.session_kwargs(Strict, video_height=8, dtype="f32"), {"video_height": 8})
        self.assertEqual(video.session_kwargs(Open, video_height=8, dtype="f32"), {"video_height": 8, "dtype": "f32"})
        with self.assertRaises(video.SessionApiError) as cm:
            video.session_kwargs(Strict, dtype="f32")
        self.assertIn("video_height", str(cm.exception))

    def test_point_tracker_session(self):
        from types import SimpleNamespace as NS
        import hfleet_recipes as recipes
        model = FakeTrackerModel()
        cfg = NS(image_size=64, prompt_encoder_config=NS(image_size=64), num_maskmem=3)
        r = _fake_ctx(model, cfg, batch=2)
        recipes.get("sam2_video").inputs(r)
        session = r.inputs["inference_session"]
        self.assertIsInstance(session, FakeTrackerInferenceSession)
        self.assertEqual(session.made_with, dict(video=None, video_height=64, video_width=64, inference_device="cpu",
                                                 dtype="f32", max_vision_features_cache_size=1))
        # one positive point per object on frame 0, laid out as the processor lays it out
        self.assertEqual(session.obj_ids, [1, 2])
        self.assertEqual(session.obj_with_new_inputs, [1, 2])
        for obj_idx in (0, 1):
            p = session.points[(obj_idx, 0)]
            self.assertEqual(p["point_coords"].shape, (1, 1, 1, 2))
            self.assertEqual(p["point_coords"].dtype, "f32")
            self.assertTrue(all(0 <= c < 64 for c in p["point_coords"].rows[0][0][0]))
            self.assertEqual(p["point_labels"].rows, [[[1]]])
            self.assertEqual(p["point_labels"].dtype, "i64")
        # frames 0..num_maskmem-1 tracked, streamed, before the runner's passes
        self.assertEqual(model.calls, [(0, "frame0", 0), (1, "frame1", 0), (2, "frame2", 0)])
        self.assertEqual({k: v for k, v in r.inputs.items() if k != "inference_session"},
                         {"frame_idx": 3, "frame": "frame3"})
        # every pass of the runner's encodes its frame: the cache is emptied first
        for n in (1, 2):
            model(**r.inputs)
            self.assertEqual(model.calls[-1], (3, "frame3", n))
        self.assertEqual(set(session.frames), {0, 1, 2, 3})   # the measured frame overwrites itself

    def test_a_session_that_appends_streamed_frames_is_refused(self):
        from types import SimpleNamespace as NS
        import hfleet_recipes as recipes
        import hfleet_recipes_video as video
        model = FakeAppendingModel()
        r = _fake_ctx(model, NS(image_size=64, num_maskmem=3), batch=1)
        with self.assertRaises(video.SessionApiError) as cm:
            recipes.get("sam2_video").inputs(r)
        self.assertIn("frame_idx", str(cm.exception))
        self.assertEqual(model.calls, [])

    def test_seeded_detections_replace_the_detectors(self):
        import hfleet_recipes_video as video
        r = _fake_ctx(None, None, batch=2)
        found = {0: {"mask": FakeTensor((0, 12, 16), dtype="f16"), "bbox": FakeTensor((0, 4), dtype="f16"),
                     "scores": FakeTensor((0,), dtype="f32")}}
        got = video.seeded_detections(r, found, 2)[0]
        self.assertEqual(got["mask"].shape, (2, 12, 16))
        self.assertEqual(got["mask"].dtype, "f16")
        self.assertEqual(got["scores"].rows, [1.0, 1.0])
        self.assertEqual(got["bbox"].shape, (2, 4))
        for i, (y0, y1, x0, x1) in enumerate(video.seed_rectangles(2, 12, 16)):
            inside = [got["mask"].rows[i][y][x] for y in range(y0, y1) for x in range(x0, x1)]
            self.assertEqual(set(inside), {video.SEED_MASK_LOGIT})
            self.assertEqual(sum(v > 0 for row in got["mask"].rows[i] for v in row), len(inside))
            self.assertEqual(got["bbox"].rows[i], [x0 / 16, y0 / 12, x1 / 16, y1 / 12])
        for bad in ({}, {0: {}, 1: {}}, {0: {"mask": FakeTensor((0, 4))}}):
            with self.assertRaises(video.SessionApiError):
                video.seeded_detections(r, bad, 2)

    def test_detect_track_session(self):
        from types import SimpleNamespace as NS
        import hfleet_recipes as recipes
        model = FakeDetectTrackModel()
        cfg = NS(image_size=48, detector_config=NS(text_config=NS(vocab_size=100, max_position_embeddings=32)),
                 tracker_config=NS(num_maskmem=3))
        r = _fake_ctx(model, cfg, batch=2)
        recipes.get("sam3_video").inputs(r)
        session = r.inputs["inference_session"]
        self.assertIsInstance(session, FakeDetectTrackInferenceSession)
        self.assertEqual(session.prompt_input_ids[0].shape, (1, 32))
        self.assertEqual(session.prompt_attention_masks[0].shape, (1, 32))
        # frame 0: the seeded detections (two objects) start the tracks; then
        # no detection starts one: every pass tracks the same objects
        self.assertEqual(model.calls, [(0, "frame0", 2, (2, 12, 16)), (1, "frame1", 0, (1, 12, 16)),
                                       (2, "frame2", 0, (1, 12, 16))])
        self.assertEqual(len(session.obj_ids), 2)
        self.assertEqual(model.new_det_thresh, 2.0)
        self.assertNotIn("run_detection", vars(model))   # the model's own detection is back
        self.assertEqual({k: v for k, v in r.inputs.items() if k != "inference_session"},
                         {"frame_idx": 3, "frame": "frame3"})
        model(**r.inputs)
        self.assertEqual(model.calls[-1][:3], (3, "frame3", 0))
        self.assertEqual(model.hooks, [])   # sam3_video encodes every frame itself


if __name__ == "__main__":
    unittest.main()
