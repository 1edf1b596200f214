# SPDX-License-Identifier: MIT
"""Tests of coordinator/registry/build_registry.py and of the committed registry.

The tool reads transformers' auto mappings from the package's source files; here it
reads a recorded stand-in (tests/unit/fixtures/transformers-stub/transformers) with
a handful of real entries in the real files' shape.  The stand-in's __init__.py
imports torch, which is not installed here: the tool must parse, never import.
Standard library only; run by meson's unit suite.
"""

import io
import os
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REGDIR = os.path.join(ROOT, "coordinator", "registry")
STUB = os.path.join(HERE, "fixtures", "transformers-stub", "transformers")
TOOL = os.path.join(REGDIR, "build_registry.py")
REFERENCE = os.path.join(REGDIR, "reference", "transformers-5.17-model-types.tsv")
MODELS = os.path.join(REGDIR, "models.tsv")
FACTS = os.path.join(REGDIR, "facts.tsv")
sys.path.insert(0, REGDIR)

import build_registry as br  # noqa: E402


def run_tool(*args):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = br.main(list(args))
    return rc, out.getvalue(), err.getvalue()


def rows_of(text):
    lines = [line for line in text.split("\n") if line and not line.startswith("#")]
    header = lines[0].split("\t")
    return {f[0]: dict(zip(header, f)) for f in (line.split("\t") for line in lines[1:])}


class FromTheLibrary(unittest.TestCase):
    def test_types_are_what_automodel_builds(self):
        version, rows = br.library_rows(STUB)
        self.assertEqual(version, "5.17.0")
        # MODEL_MAPPING_NAMES keys that CONFIG_MAPPING_NAMES also has: not the
        # sub-config blip_text_model (no AutoModel class), not no_config_here.
        self.assertEqual(sorted(rows), ["bert", "clip", "clip_text_model", "funnel", "gpt2", "llava",
                                        "mamba", "mixtral", "t5", "vit", "whisper"])

    def test_task_modality_and_family_come_from_the_mappings(self):
        _, rows = br.library_rows(STUB)
        want = {
            # bert is in CAUSAL_LM too: masked LM comes first, and the family follows the task
            "bert": ("encoder-only", "fill-mask", "text"),
            "clip": ("vision-text", "zero-shot-image-classification", "image+text"),
            "clip_text_model": ("vision-text", "feature-extraction", "text"),
            "funnel": ("encoder-only", "fill-mask", "text"),  # a tuple of base classes
            "gpt2": ("decoder-only", "text-generation", "text"),
            "llava": ("multimodal", "image-text-to-text", "image+text"),
            "mamba": ("state-space", "text-generation", "text"),
            "mixtral": ("mixture-of-experts", "text-generation", "text"),
            "t5": ("encoder-decoder", "text2text-generation", "text"),
            "vit": ("vision", "image-classification", "image"),
            "whisper": ("speech", "automatic-speech-recognition", "audio"),
        }
        for t, (family, task, modality) in want.items():
            r = rows[t]
            self.assertEqual((r["family"], r["task"], r["modality"]), (family, task, modality), t)
            self.assertEqual(r["source"], "transformers")

    def test_default_checkpoint_is_what_transformers_records(self):
        _, rows = br.library_rows(STUB)
        self.assertEqual(rows["bert"]["hf_id"], "google-bert/bert-base-uncased")  # docstring link
        self.assertEqual(rows["gpt2"]["hf_id"], "openai-community/gpt2")          # @auto_docstring
        self.assertEqual(rows["t5"]["hf_id"], "google-t5/t5-small")               # _CHECKPOINT_FOR_DOC
        # through SPECIAL_MODEL_TYPE_TO_MODULE_NAME, past a /docs/ link
        self.assertEqual(rows["clip_text_model"]["hf_id"], "openai/clip-vit-base-patch32")
        self.assertEqual(rows["vit"]["hf_id"], "")
        self.assertIn("no default Hub id: transformers records no checkpoint", rows["vit"]["notes"])
        self.assertEqual(rows["bert"]["notes"], "")

    def test_facts_override_and_a_fact_of_a_missing_type_is_reported(self):
        with tempfile.TemporaryDirectory() as d:
            facts = os.path.join(d, "facts.tsv")
            with open(facts, "w") as f:
                f.write("\t".join(br.FACTS_HEADER) + "\n")
                f.write("vit\tgoogle/vit-base-patch16-224\t\t\t\tsmall\thand-checked\t\tcore\n")
                f.write("bert\t\t\tfill-mask\t\t\t\t*: needs x\tcore,nightly\n")
                f.write("deta\tx/deta\tvision\tobject-detection\timage\tsmall\t\t\tcore\n")
            out = os.path.join(d, "models.tsv")
            rc, _, err = run_tool("--transformers-dir", STUB, "--facts", facts, "--out", out)
            self.assertEqual(rc, 0, err)
            self.assertIn("facts for deta left out: the transformers read has no such model type", err)
            with open(out) as f:
                text = f.read()
        self.assertTrue(text.startswith("\t".join(br.HEADER) + "\n# transformers 5.17.0\n"))
        rows = rows_of(text)
        self.assertNotIn("deta", rows)
        self.assertEqual(rows["vit"]["hf_id"], "google/vit-base-patch16-224")
        self.assertEqual(rows["vit"]["notes"], "hand-checked")
        self.assertEqual(rows["vit"]["family"], "vision")  # empty fact: the derived value stays
        self.assertEqual(rows["bert"]["limits"], "*: needs x")
        self.assertEqual(rows["bert"]["suites"], "core,nightly")
        self.assertEqual(rows["gpt2"]["suites"], "")

    def test_the_package_is_parsed_never_imported(self):
        # Importing the stand-in raises ImportError.
        p = subprocess.run([sys.executable, TOOL, "--transformers-dir", STUB, "--facts", ""],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("\ngpt2\topenai-community/gpt2\t", p.stdout)

    def test_expect_types_names_what_differs(self):
        with tempfile.TemporaryDirectory() as d:
            want = os.path.join(d, "types.tsv")
            with open(want, "w") as f:
                f.write("model_type\tautomodel_class_seen\nbert\tBertModel\ngpt2\t\nqwen9\t\n")
            rc, _, err = run_tool("--transformers-dir", STUB, "--facts", "", "--expect-types", want)
        self.assertEqual(rc, 1)
        self.assertIn("missing qwen9; extra clip, clip_text_model, funnel, llava, mamba, mixtral, t5, vit, whisper",
                      err)

    def test_a_computed_entry_or_a_moved_mapping_does_not_hide_the_rest(self):
        # One entry computed at import time beside literal ones, and MODEL_MAPPING_NAMES
        # in a module of its own: the literal entries are read, from wherever they are.
        with tempfile.TemporaryDirectory() as d:
            auto = os.path.join(d, "models", "auto")
            os.makedirs(auto)
            with open(os.path.join(d, "__init__.py"), "w") as f:
                f.write('__version__ = "9.0.0"\n')
            # As transformers 5.17 keeps it: generated in a module of its own, imported,
            # amended with .update() and a ** merge.
            with open(os.path.join(auto, "auto_mappings.py"), "w") as f:
                f.write('CONFIG_MAPPING_NAMES = OrderedDict[str, str]([("bert", "BertConfig"), '
                        '("gpt2", "GPT2Config"), ("odd", _pick("OddConfig"))])\n')
            with open(os.path.join(auto, "configuration_auto.py"), "w") as f:
                f.write("from .auto_mappings import CONFIG_MAPPING_NAMES\n"
                        'CONFIG_MAPPING_NAMES.update({"mlcd": "MLCDVisionConfig", "odd2": pick()})\n'
                        'CONFIG_MAPPING_NAMES = OrderedDict(**{"gpt-sw3": "GPT2Config"}, **CONFIG_MAPPING_NAMES)\n'
                        "def unrelated():\n    CONFIG_MAPPING_NAMES.update({'nope': 'NopeConfig'})\n")
            with open(os.path.join(auto, "modeling_auto.py"), "w") as f:
                f.write("from .model_mappings import MODEL_MAPPING_NAMES\n")
            with open(os.path.join(auto, "model_mappings.py"), "w") as f:
                f.write('MODEL_MAPPING_NAMES = {"bert": "BertModel", "gpt2": "GPT2Model", "gpt-sw3": "GPT2Model", '
                        '"mlcd": "MLCDVisionModel", "nope": "NopeModel", "odd": "OddModel", "later": make()}\n')
            version, rows = br.library_rows(d)
            pkg = br.AutoPackage(auto)
            conf = pkg.module("configuration_auto")["CONFIG_MAPPING_NAMES"]
        self.assertEqual(version, "9.0.0")
        self.assertEqual(sorted(rows), ["bert", "gpt-sw3", "gpt2", "mlcd"])
        self.assertEqual(list(conf)[0], "gpt-sw3")   # the ** merge put it first, as Python does

    def test_unreadable_tree_is_an_error_not_a_trace(self):
        with tempfile.TemporaryDirectory() as d:
            rc, _, err = run_tool("--transformers-dir", d, "--facts", "")
        self.assertEqual(rc, 1)
        self.assertIn("cannot parse", err)


class TheCommittedRegistry(unittest.TestCase):
    def test_the_tool_reproduces_it(self):
        # Made from the reference list (this commit's rows), the tool reproduces it
        # anywhere; made from the library, only where that transformers is installed.
        with open(MODELS, encoding="utf-8") as f:
            committed = f.read()
        comments = [line for line in committed.split("\n") if line.startswith("#")]
        built_from = comments[0].split()[2]
        if any("source reference-list were derived from" in c for c in comments):
            args = ["--reference-list", REFERENCE, "--reference-version", built_from]
        else:
            try:
                tdir = br.find_transformers_dir()
                here = br.read_version(tdir)
            except br.BuildError as e:
                self.skipTest("models.tsv was built from transformers %s; here: %s" % (built_from, e))
            if here != built_from:
                self.skipTest("models.tsv was built from transformers %s; here is %s" % (built_from, here))
            args = ["--transformers-dir", tdir]
        rc, text, err = run_tool(*args, "--facts", FACTS, "--expect-types", REFERENCE)
        self.assertEqual(rc, 0, err)
        self.assertEqual(text, committed, "models.tsv is not what build_registry.py makes: rerun it")

    def test_it_holds_exactly_the_557_types_and_passes_the_check(self):
        # 557: the 556 of the first reading of transformers 5.17 and evolla, which
        # MODEL_MAPPING_NAMES holds and that reading missed (coordinator/registry/README.md).
        p = subprocess.run([sys.executable, os.path.join(REGDIR, "check_registry.py"), MODELS, REFERENCE],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("total                 557", p.stdout)
        self.assertIn("suite core            308", p.stdout)
        with open(MODELS, encoding="utf-8") as f:
            rows = rows_of(f.read())
        self.assertEqual(len(rows), 557)
        self.assertEqual(set(rows), set(br.read_types_list(REFERENCE)))
        # The rows not yet read from the library say so.
        for t, r in rows.items():
            self.assertIn(r["source"], ("transformers", "reference-list"), t)
            if r["source"] == "reference-list" and not r["hf_id"]:
                self.assertIn("rerun build_registry.py", r["notes"], t)

    def test_the_core_facts_are_the_seed_projects(self):
        facts = br.read_tsv(FACTS, br.FACTS_HEADER)
        core = [t for t, r in facts.items() if "core" in r["suites"].split(",")]
        self.assertEqual(len(core), 308)
        self.assertTrue(set(facts) <= set(br.read_types_list(REFERENCE)))


class FromTheReferenceList(unittest.TestCase):
    def test_derivation_from_names(self):
        types = {"qwen3_5": "", "qwen3_5_vision": "", "qwen3_5_text": "", "deepseek_v4": "",
                 "parakeet_tdt": "", "sam3_vision_model": "", "olmo3": ""}
        self.assertEqual(br.derive_from_reference("qwen3_5", "Qwen3_5Model", types),
                         ("multimodal", "image-text-to-text", "image+text"))
        self.assertEqual(br.derive_from_reference("qwen3_5_vision", "Qwen3_5VisionModel", types),
                         ("vision", "image-feature-extraction", "image"))
        self.assertEqual(br.derive_from_reference("qwen3_5_text", "Qwen3_5TextModel", types),
                         ("decoder-only", "text-generation", "text"))
        self.assertEqual(br.derive_from_reference("deepseek_v4", "DeepseekV4Model", types),
                         ("mixture-of-experts", "text-generation", "text"))
        self.assertEqual(br.derive_from_reference("parakeet_tdt", "ParakeetForTDT", types),
                         ("speech", "automatic-speech-recognition", "audio"))
        self.assertEqual(br.derive_from_reference("olmo3", "Olmo3Model", types),
                         ("decoder-only", "text-generation", "text"))


if __name__ == "__main__":
    unittest.main()
