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


class TestRecipes(unittest.TestCase):
    """The model recipes table: loads without torch, names real forward() inputs."""

    def test_table(self):
        import hfleet_recipes as recipes
        reg = os.path.join(HERE, "..", "..", "coordinator", "registry", "models.tsv")
        with open(reg, encoding="utf-8") as f:
            suite = {line.split("\t")[0] for line in f if line.strip() and not line.startswith(("#", "model_type"))}
        for mt, r in recipes.RECIPES.items():
            self.assertIn(mt, suite, f"recipe for {mt}, which is not in the registry")
            self.assertTrue(r.fix_config or r.inputs or r.submodel or r.model_class or r.prefer_default or r.make_config, mt)
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


if __name__ == "__main__":
    unittest.main()
