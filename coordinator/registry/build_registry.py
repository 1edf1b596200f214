#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Build the hfleet model registry (models.tsv) from the installed transformers.

Usage:
    python3 build_registry.py [--transformers-dir DIR] [--facts FACTS_TSV] [--out MODELS_TSV]
                              [--expect-types TYPES_TSV]
    python3 build_registry.py --reference-list TYPES_TSV [--facts ...] [--out ...]

The registry lists every model type AutoModel can build: the keys of
transformers' MODEL_MAPPING_NAMES that CONFIG_MAPPING_NAMES also has.  For each
type the tool derives

  task, modality   from the first per-task mapping that holds the type
                   (MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES -> image-text-to-text,
                   MODEL_FOR_CAUSAL_LM_MAPPING_NAMES -> text-generation, ...; TASK_MAPPINGS
                   below, in order); a type in no task mapping gets a feature-extraction
                   task of the modality its class names suggest;
  family           from the architecture (MoE and state-space names first), then the task
                   and the mappings (seq2seq -> encoder-decoder, causal LM -> decoder-only);
  hf_id            the checkpoint transformers records for the type: the checkpoint= of
                   the config class's @auto_docstring, a https://huggingface.co/ID link in
                   the config class's docstring, or _CHECKPOINT_FOR_DOC of its modeling
                   module; else empty, and the notes say so;

then applies the hand-made facts (FACTS_TSV, default facts.tsv beside this file):
every non-empty field of a type's facts row replaces the derived one (hf_id, family,
task, modality, size_class, notes, limits, suites).  A facts row of a type the
installed transformers lacks is reported on stderr and left out.

How transformers is read: the two source files transformers/models/auto/
configuration_auto.py and modeling_auto.py (and the config and modeling modules, for the
default checkpoint) are PARSED with the ast module, never imported.  Importing
transformers needs torch and a dozen dependencies and runs their import-time code; the
mapping dicts are literals in those files, so parsing reads exactly what AutoModel uses,
on any machine that has the package files (even without torch), and cannot execute
anything.  __version__ comes from transformers/__init__.py the same way.

--reference-list builds the same format from a list of model types (a TSV: model_type,
automodel_class_seen) instead of the library, deriving family, task and modality from
the type and class names only; each such row's source column says
"reference-list", and the file's comment says the rows wait for a rerun against the
library.  Output is deterministic (sorted, no dates): rerunning the tool on the same
inputs reproduces the file byte for byte.

--expect-types TYPES_TSV: fail (exit 1) unless the registry's types are exactly the
list's.  Standard library only.
"""

import argparse
import ast
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

HEADER = ["model_type", "hf_id", "family", "task", "modality", "size_class", "notes", "limits",
          "suites", "source"]
FACT_FIELDS = ["hf_id", "family", "task", "modality", "size_class", "notes", "limits", "suites"]
FACTS_HEADER = ["model_type"] + FACT_FIELDS

SOURCE_LIBRARY = "transformers"
SOURCE_REFERENCE = "reference-list"

# Per-task mappings of modeling_auto.py, in the order they are tried: the first that
# holds a model type gives its task and modality.  Multimodal and audio heads come
# before the text heads they also have (a VLM is in CAUSAL_LM too), masked LM before
# causal LM (an encoder such as BERT has a causal-LM head as well).
TASK_MAPPINGS = [
    ("MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES", "image-text-to-text", "image+text"),
    ("MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES", "image-text-to-text", "image+text"),
    ("MODEL_FOR_VISION_2_SEQ_MAPPING_NAMES", "image-to-text", "image+text"),
    ("MODEL_FOR_DOCUMENT_QUESTION_ANSWERING_MAPPING_NAMES", "document-question-answering", "image+text"),
    ("MODEL_FOR_VISUAL_QUESTION_ANSWERING_MAPPING_NAMES", "visual-question-answering", "image+text"),
    ("MODEL_FOR_ZERO_SHOT_OBJECT_DETECTION_MAPPING_NAMES", "zero-shot-object-detection", "image+text"),
    ("MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES", "zero-shot-image-classification", "image+text"),
    ("MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES", "automatic-speech-recognition", "audio"),
    ("MODEL_FOR_CTC_MAPPING_NAMES", "automatic-speech-recognition", "audio"),
    ("MODEL_FOR_TEXT_TO_WAVEFORM_MAPPING_NAMES", "text-to-audio", "text"),
    ("MODEL_FOR_TEXT_TO_SPECTROGRAM_MAPPING_NAMES", "text-to-speech", "text"),
    ("MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES", "audio-classification", "audio"),
    ("MODEL_FOR_AUDIO_FRAME_CLASSIFICATION_MAPPING_NAMES", "audio-classification", "audio"),
    ("MODEL_FOR_AUDIO_XVECTOR_MAPPING_NAMES", "audio-classification", "audio"),
    ("MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES", "video-classification", "video"),
    ("MODEL_FOR_MASK_GENERATION_MAPPING_NAMES", "mask-generation", "image"),
    ("MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES", "object-detection", "image"),
    ("MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES", "image-segmentation", "image"),
    ("MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES", "image-segmentation", "image"),
    ("MODEL_FOR_INSTANCE_SEGMENTATION_MAPPING_NAMES", "image-segmentation", "image"),
    ("MODEL_FOR_IMAGE_SEGMENTATION_MAPPING_NAMES", "image-segmentation", "image"),
    ("MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES", "depth-estimation", "image"),
    ("MODEL_FOR_IMAGE_TO_IMAGE_MAPPING_NAMES", "image-to-image", "image"),
    ("MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES", "image-classification", "image"),
    ("MODEL_FOR_TIME_SERIES_PREDICTION_MAPPING_NAMES", "time-series-forecasting", "time-series"),
    ("MODEL_FOR_TABLE_QUESTION_ANSWERING_MAPPING_NAMES", "table-question-answering", "text"),
    ("MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES", "text2text-generation", "text"),
    ("MODEL_FOR_MASKED_LM_MAPPING_NAMES", "fill-mask", "text"),
    ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "text-generation", "text"),
    ("MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES", "text-classification", "text"),
    ("MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES", "token-classification", "text"),
    ("MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES", "question-answering", "text"),
]

# Names that mark an architecture whatever its task (checked on the model type and the
# class names, lower-cased).
MOE_MARKS = ("moe", "mixtral", "switch_transformers", "deepseek_v2", "deepseek_v3", "deepseek_v32",
             "deepseek_v4", "dots1", "longcat_flash", "minimax", "mimo_v2_flash", "gpt_oss", "dbrx",
             "jetmoe", "olmoe", "glm_moe")
SSM_MARKS = ("mamba", "rwkv", "xlstm", "jamba", "zamba", "bamba", "falcon_h1", "nemotron_h",
             "recurrent_gemma", "hybrid", "kimi_linear")
AUDIO_MARKS = ("audio", "speech", "asr", "wav2vec", "whisper", "hubert", "wavlm", "sew", "unispeech",
               "parakeet", "canary", "voxtral", "moonshine", "codec", "encodec", "vibevoice",
               "musicgen", "bark", "clap", "seamless", "speecht5", "lasr", "flamingo", "mimi", "dac",
               "pe_audio", "fastspeech", "vits", "univnet", "clvp", "pop2piano", "csm", "dia")
VIDEO_MARKS = ("video", "vivit", "timesformer", "videomae", "vjepa", "videoprism")
VISION_MARKS = ("vision", "vit", "image", "detr", "sam", "edgetam", "convnext", "resnet", "swin",
                "dino", "beit", "deit", "segformer", "mobilenet", "efficientnet", "regnet", "levit",
                "poolformer", "hiera", "hgnet", "textnet", "pixio", "sapiens", "loftr", "lightglue",
                "doclayout", "uvdoc", "ocrv", "det", "depth", "glpn", "dpt", "focalnet", "pvt",
                "bit", "cvt", "dinat", "yolos", "mask2former", "maskformer", "oneformer", "radio",
                "mlcd", "ijepa", "aimv2", "siglip", "clip", "tips", "keypoint", "vqmodel", "vqvae",
                "superglue", "zoedepth", "swiftformer", "rt_detr", "conditional_detr", "table")
VLM_MARKS = ("_vl", "vl_", "vlm", "vision_text", "llava", "idefics", "blip", "paligemma", "kosmos",
             "_ocr", "ocr2", "qianfan_ocr", "omni", "multimodal", "minicpmv", "ovis", "perception_lm",
             "aya_vision", "cohere2_vision", "emu3", "neomme", "inkling_mm", "glm4v", "glm46v",
             "glmga", "glm_image", "kimi_k25", "pi0", "fuyu", "chameleon", "florence", "janus",
             "internvl", "smolvlm", "mllama", "gemma3", "gemma4", "mistral3", "pixtral", "got_ocr",
             "deepseek_vl", "lfm2_vl", "fast_vlm", "minimax_m3_vl", "cosmos3", "granite4_vision",
             "qwen4_exp", "hunyuan_vl", "paddleocr", "lighton_ocr", "deepseek_ocr", "modernvbert")
CONTRASTIVE_MARKS = ("clip", "siglip", "align", "aimv2", "tipsv2", "metaclip", "owl", "grounding",
                     "videoprism", "x_clip", "chinese_clip", "altclip", "flava", "vision-text-dual")
ENCODER_MARKS = ("bert", "roberta", "electra", "deberta", "xlm", "esm", "albert", "funnel", "mpnet",
                 "nomic", "jina_embeddings", "privacy_filter", "longformer", "big_bird", "canine")
SEQ2SEQ_MARKS = ("t5", "bart", "pegasus", "marian", "m2m", "nllb", "prophetnet", "led", "fsmt")
TIME_SERIES_MARKS = ("timesfm", "patchts", "time_series", "autoformer", "informer")

NO_CHECKPOINT = ("no default Hub id: transformers records no checkpoint for this type "
                 "(no checkpoint= in the config's @auto_docstring, no huggingface.co link in "
                 "its docstring, no _CHECKPOINT_FOR_DOC)")
NO_CHECKPOINT_REF = ("no default Hub id yet: derived from the reference list, not yet from "
                     "transformers 5.17's mappings; rerun build_registry.py on a machine with "
                     "transformers 5.17")


class BuildError(Exception):
    pass


# ---------------------------------------------------------------------------
# reading transformers' source without importing it

def find_transformers_dir():
    """The installed transformers package directory, found without importing it
    (importlib.util.find_spec of a top-level name runs no package code)."""
    import importlib.util
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("transformers is not installed in %s (give --transformers-dir)" % sys.executable)
    return list(spec.submodule_search_locations)[0]


def _parse(path):
    try:
        with open(path, encoding="utf-8") as f:
            return ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError, UnicodeDecodeError) as e:
        raise BuildError("cannot parse %s: %s" % (path, e))


def _literal(node):
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _entry(key, value):
    """(key, (value, ...)) for a str key and a str or list of str value, else None."""
    if not isinstance(key, str):
        return None
    if isinstance(value, str):
        return key, (value,)
    if isinstance(value, (tuple, list)) and value and all(isinstance(x, str) for x in value):
        return key, tuple(value)
    return None


_DICT_TYPES = ("OrderedDict", "dict")


class AutoPackage:
    """The mapping values of transformers' models/auto modules, as the modules leave
    them, worked out from their syntax trees without running them.  A module's
    top-level statements are followed in order: NAME = mapping (plain or annotated),
    NAME.update(mapping) and `from .module import NAME` of another module of the
    package.  A mapping is an OrderedDict(...) / OrderedDict[...](...) / dict(...) call,
    a {...} display, a list of pairs, a name bound earlier, or a | b; `**name` and
    `**{...}` inside them merge.  Keys are strings, values strings or lists of
    strings; an entry computed at run time is left out and does not hide the
    literal ones beside it.  Anything else leaves the name unbound."""

    def __init__(self, auto):
        self.auto = auto
        self.modules = {}
        self.reading = set()

    def module(self, name):
        if name in self.modules:
            return self.modules[name]
        if name in self.reading:
            return {}  # an import cycle: nothing of it is needed to read mappings
        self.reading.add(name)
        ns = {}
        for node in _parse(os.path.join(self.auto, name + ".py")).body:
            self._statement(node, ns)
        self.reading.discard(name)
        self.modules[name] = ns
        return ns

    def _statement(self, node, ns):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module \
                and os.path.isfile(os.path.join(self.auto, node.module + ".py")):
            other = self.module(node.module)
            for alias in node.names:
                if alias.name in other:
                    ns[alias.asname or alias.name] = dict(other[alias.name])
            return
        target = value = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        if isinstance(target, ast.Name):
            mapping = self._mapping(value, ns)
            if mapping is not None:
                ns[target.id] = mapping
            else:
                ns.pop(target.id, None)
            return
        call = node.value if isinstance(node, ast.Expr) else None
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "update"
                and isinstance(call.func.value, ast.Name) and call.func.value.id in ns and len(call.args) == 1):
            more = self._mapping(call.args[0], ns)
            if more is not None:
                ns[call.func.value.id].update(more)

    def _mapping(self, node, ns):
        if isinstance(node, ast.Name):
            return dict(ns[node.id]) if node.id in ns else None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            left, right = self._mapping(node.left, ns), self._mapping(node.right, ns)
            return None if left is None or right is None else {**left, **right}
        if isinstance(node, ast.Dict):
            out = {}
            for k, v in zip(node.keys, node.values):
                if k is None:  # {**other}
                    out.update(self._mapping(v, ns) or {})
                    continue
                (gk, kv), (gv, vv) = _literal(k), _literal(v)
                e = _entry(kv, vv) if gk and gv else None
                if e:
                    out[e[0]] = e[1]
            return out
        if isinstance(node, (ast.List, ast.Tuple)):
            out = {}
            for elt in node.elts:
                good, pair = _literal(elt)
                e = _entry(*pair) if good and isinstance(pair, (tuple, list)) and len(pair) == 2 else None
                if e:
                    out[e[0]] = e[1]
            return out
        if isinstance(node, ast.Call):
            func = node.func.value if isinstance(node.func, ast.Subscript) else node.func
            if not (isinstance(func, ast.Name) and func.id in _DICT_TYPES) or len(node.args) > 1:
                return None
            out = {}
            if node.args:
                first = self._mapping(node.args[0], ns)
                if first is None:
                    return None
                out.update(first)
            for kw in node.keywords:
                if kw.arg is None:  # **other
                    out.update(self._mapping(kw.value, ns) or {})
                else:
                    good, v = _literal(kw.value)
                    e = _entry(kw.arg, v) if good else None
                    if e:
                        out[e[0]] = e[1]
            return out
        return None


def read_version(tdir):
    for node in _parse(os.path.join(tdir, "__init__.py")).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "__version__" and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)):
            return node.value.value
    raise BuildError("no __version__ = \"...\" in %s" % os.path.join(tdir, "__init__.py"))


_HUB_LINK = re.compile(r"https://huggingface\.co/([A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)?)")
_HF_ID = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?/)?"
                    r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_NOT_REPOS = ("docs", "transformers", "models", "datasets", "spaces", "papers", "blog", "settings")


def _checkpoint_of_class(tree, class_name):
    """The checkpoint recorded on class class_name of a parsed module: checkpoint="ID" of
    an @auto_docstring decorator, else the first huggingface.co/ID link of its docstring."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef) or node.name != class_name:
            continue
        for dec in node.decorator_list:
            if isinstance(dec, ast.Call):
                for kw in dec.keywords:
                    if (kw.arg == "checkpoint" and isinstance(kw.value, ast.Constant)
                            and isinstance(kw.value.value, str) and _HF_ID.match(kw.value.value)):
                        return kw.value.value
        doc = ast.get_docstring(node) or ""
        for m in _HUB_LINK.finditer(doc):
            ident = m.group(1).rstrip(".")
            if ident.split("/")[0] not in _NOT_REPOS and _HF_ID.match(ident):
                return ident
    return None


def _module_checkpoint(tree):
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "_CHECKPOINT_FOR_DOC" and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str) and _HF_ID.match(node.value.value)):
            return node.value.value
    return None


def default_checkpoint(tdir, model_type, config_class, special_modules):
    """The Hub id transformers records for model_type, or None."""
    module = special_modules.get(model_type, model_type.replace("-", "_"))
    mdir = os.path.join(tdir, "models", module)
    if not os.path.isdir(mdir):
        return None
    names = sorted(os.listdir(mdir))
    for name in names:
        if name.startswith("configuration_") and name.endswith(".py"):
            found = _checkpoint_of_class(_parse(os.path.join(mdir, name)), config_class)
            if found:
                return found
    for name in names:
        if name.startswith("modeling_") and name.endswith(".py") and "_tf_" not in name and "_flax_" not in name:
            found = _module_checkpoint(_parse(os.path.join(mdir, name)))
            if found:
                return found
    return None


# ---------------------------------------------------------------------------
# deriving family, task and modality

def _has(text, marks):
    return any(m in text for m in marks)


def family_of(model_type, classes, task, modality, seq2seq=False, causal=False):
    """The registry family of a type from its names, task and modality."""
    names = " ".join([model_type] + [c.lower() for c in classes])
    if model_type == "rag":
        return "rag"
    if "diffusion" in model_type:
        return "diffusion"
    if _has(names, MOE_MARKS):
        return "mixture-of-experts"
    if _has(names, SSM_MARKS) and "audio" not in modality and "image" not in modality:
        return "state-space"
    if "audio" in modality or task in ("text-to-audio", "text-to-speech", "automatic-speech-recognition"):
        return "speech"
    if task in ("image-text-to-text", "video-text-to-text", "document-question-answering", "image-to-text") \
            and "+" in modality:
        return "multimodal"
    if task in ("zero-shot-image-classification", "zero-shot-object-detection", "visual-question-answering") \
            or ("+" in modality and "text" in modality):
        return "vision-text"
    if modality in ("image", "video"):
        return "vision"
    if task in ("text2text-generation", "summarization", "translation"):
        return "encoder-decoder"
    if task == "text-generation":
        return "decoder-only"
    if task in ("fill-mask", "text-classification", "token-classification", "question-answering",
                "table-question-answering"):
        return "encoder-only"
    if task == "feature-extraction" and _has(model_type, CONTRASTIVE_MARKS):
        return "vision-text"
    if seq2seq:
        return "encoder-decoder"
    if causal:
        return "decoder-only"
    return "encoder-only"


def derive_from_mappings(model_type, base_classes, mappings, all_types=()):
    """(family, task, modality) of a type from modeling_auto's mappings; a type no task
    mapping holds (a vision or audio tower, a backbone) is derived from its names as
    derive_from_reference does."""
    classes = list(base_classes)
    task = modality = None
    for name, t, mod in TASK_MAPPINGS:
        m = mappings.get(name, {})
        if model_type in m:
            classes += list(m[model_type])
            if task is None:
                task, modality = t, mod
    if task is None:
        return derive_from_reference(model_type, base_classes[0] if base_classes else "", all_types)
    names = " ".join([model_type] + [c.lower() for c in classes])
    if task == "image-text-to-text" and _has(model_type, VIDEO_MARKS):
        task, modality = "video-text-to-text", "video+text"
    elif (task == "image-text-to-text" and model_type not in mappings.get("MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES", {})
          and _has(names, AUDIO_MARKS) and not _has(names, VLM_MARKS)):
        # MULTIMODAL_LM holds every "anything to text" model: an audio one is a
        # speech recogniser when it says so, else it takes audio and text.
        task, modality = (("automatic-speech-recognition", "audio") if _has(names, ("asr", "speech"))
                          else ("audio-text-to-text", "audio+text"))
    elif task in ("automatic-speech-recognition",) and model_type in mappings.get(
            "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES", {}):
        modality = "audio+text"
    seq2seq = model_type in mappings.get("MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES", {})
    causal = model_type in mappings.get("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", {})
    return family_of(model_type, classes, task, modality, seq2seq, causal), task, modality


def derive_from_reference(model_type, class_seen, all_types=()):
    """(family, task, modality) of a type from its name, the class AutoModel built and
    the other types of the list (a type with a "<type>_vision" sibling is a VLM)."""
    classes = [class_seen] if class_seen else []
    names = " ".join([model_type] + [c.lower() for c in classes])
    t = model_type
    sub_tower = (t.endswith(("_vision", "_vision_model", "_vit_model", "_encoder", "_audio", "_qformer"))
                 or _has(names, ("visionmodel", "visiontransformer", "encoder")))
    text_tower = t.endswith(("_text", "_text_model")) or "textmodel" in names
    vlm_sibling = any(t + s in all_types for s in ("_vision", "_vision_model"))
    if t == "decision_transformer":
        return "decoder-only", "feature-extraction", "time-series"
    if t in ("vision-text-dual-encoder",):
        return "vision-text", "zero-shot-image-classification", "image+text"
    if _has(t, TIME_SERIES_MARKS):
        return "decoder-only", "time-series-forecasting", "time-series"
    if text_tower:
        if _has(t, ("sam", "tips", "clip", "siglip")):
            return "vision-text", "feature-extraction", "text"
        task = "text-generation"
        return family_of(t, classes, task, "text", causal=True), task, "text"
    if _has(names, AUDIO_MARKS) and not vlm_sibling:
        if _has(names, ("asr", "ctc", "rnnt", "tdt", "canary", "parakeet", "moonshine", "granite_speech")) \
                and not sub_tower:
            task, modality = "automatic-speech-recognition", "audio"
        elif "vibevoice" in names and not _has(names, ("tokenizer", "asr")):
            task, modality = "text-to-speech", "text"
        elif t == "higgs_audio_v2":
            task, modality = "text-to-audio", "text"
        elif _has(names, ("flamingo", "voxtral")) and not sub_tower:
            task, modality = "audio-text-to-text", "audio+text"
        elif "pe_audio_video" in names:
            task, modality = "feature-extraction", "video+text"
        else:
            task, modality = "audio-feature-extraction", "audio"
        return family_of(t, classes, task, modality), task, modality
    if _has(t, ("sam", "edgetam")):
        if sub_tower or t.endswith("_model"):
            return "vision", "image-feature-extraction", "image"
        return "vision", "mask-generation", "image"
    if "grounding" in t:
        return "vision-text", "zero-shot-object-detection", "image+text"
    if _has(t, ("detr", "doclayout", "_det", "deim")) and not sub_tower:
        return "vision", "object-detection", "image"
    if _has(t, ("ocrv5", "ocrv6")) and "_rec" in t:
        return "vision", "image-to-text", "image"
    if _has(t, ("vqmodel", "timm", "backbone", "-swin", "vitdet")):
        return "vision", "image-feature-extraction", "image"
    if _has(t, CONTRASTIVE_MARKS) and not _has(t, VLM_MARKS) and not sub_tower:
        if _has(t, VIDEO_MARKS):
            return "vision-text", "feature-extraction", "video+text"
        return "vision-text", "zero-shot-image-classification", "image+text"
    if t in ("aya_vision", "cohere2_vision", "granite4_vision") or \
            ((vlm_sibling or _has(names, VLM_MARKS)) and not sub_tower):
        fam = "mixture-of-experts" if _has(names, MOE_MARKS) else "multimodal"
        if _has(t, VIDEO_MARKS):
            return fam, "video-text-to-text", "video+text"
        return fam, "image-text-to-text", "image+text"
    if _has(names, CONTRASTIVE_MARKS):
        if sub_tower or "vision" in names:
            return "vision", "image-feature-extraction", "image"
        if _has(names, VIDEO_MARKS):
            return "vision-text", "feature-extraction", "video+text"
        return "vision-text", "zero-shot-image-classification", "image+text"
    if _has(names, VIDEO_MARKS):
        if sub_tower:
            return "vision", "image-feature-extraction", "image"
        return "vision", "video-classification", "video"
    if sub_tower and _has(names, ("vision", "vit", "hiera")):
        return "vision", "image-feature-extraction", "image"
    if _has(t, VISION_MARKS) and not _has(t, ENCODER_MARKS):
        if sub_tower or _has(names, ("loftr", "lightglue", "keypoint", "convnext", "hgnet", "textnet",
                                     "pixio", "sapiens", "radio", "mlcd", "uvdoc")):
            return "vision", "image-feature-extraction", "image"
        return "vision", "image-classification", "image"
    if _has(names, ENCODER_MARKS) and "decoder" not in names:
        if "privacy_filter" in names:
            return "encoder-only", "token-classification", "text"
        if sub_tower:
            return "encoder-only", "feature-extraction", "text"
        return "encoder-only", "fill-mask", "text"
    if _has(t, SEQ2SEQ_MARKS) and not _has(t, MOE_MARKS):
        if sub_tower:
            return "encoder-decoder", "feature-extraction", "text"
        return "encoder-decoder", "text2text-generation", "text"
    if _has(t, ("qformer",)):
        return "vision-text", "feature-extraction", "image+text"
    task = "text-generation"
    return family_of(t, classes, task, "text", causal=True), task, "text"


# ---------------------------------------------------------------------------
# facts, rows, output

def read_tsv(path, header):
    """Rows of a TSV with exactly header (comment lines '#...' skipped) as dicts."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise BuildError("cannot read %s: %s" % (path, e))
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0].split("\t") != header:
        raise BuildError("%s:1: the header must be %s" % (path, "<TAB>".join(header)))
    rows = {}
    for n, line in enumerate(lines[1:], start=2):
        if not line or line.startswith("#"):
            continue
        f = line.split("\t")
        if len(f) != len(header):
            raise BuildError("%s:%d: %d fields, %d expected" % (path, n, len(f), len(header)))
        if f[0] in rows:
            raise BuildError("%s:%d: %s is listed twice" % (path, n, f[0]))
        rows[f[0]] = dict(zip(header, f))
    return rows


def read_types_list(path):
    """model_type -> class seen, from a reference list (header, then model_type<TAB>class)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BuildError("cannot read %s: %s" % (path, e))
    out = {}
    for line in lines[1:]:
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split("\t")
        out[f[0].strip()] = f[1].strip() if len(f) > 1 else ""
    if not out:
        raise BuildError("%s: no model types" % path)
    return out


def library_rows(tdir, keep=()):
    """(version, {model_type: row}) from the transformers source tree at tdir: every
    type of MODEL_MAPPING_NAMES that CONFIG_MAPPING_NAMES also has, and every type of
    `keep` (the hand-made facts' types) that CONFIG_MAPPING_NAMES has although
    AutoModel has no class for it (the seed's composites: encoder-decoder, rag, ...)."""
    auto = os.path.join(tdir, "models", "auto")
    pkg = AutoPackage(auto)
    conf = pkg.module("configuration_auto")
    special = {k: v[0] for name, m in conf.items() if name.endswith("MODULE_NAME") for k, v in m.items()}
    mappings = {k: v for k, v in pkg.module("modeling_auto").items() if k.endswith("MAPPING_NAMES")}
    config_names = conf.get("CONFIG_MAPPING_NAMES")
    model_names = mappings.get("MODEL_MAPPING_NAMES")
    if not config_names or not model_names:
        found = sorted(set(conf) | set(mappings))[:8]
        raise BuildError("%s: no CONFIG_MAPPING_NAMES or MODEL_MAPPING_NAMES found in configuration_auto.py "
                         "and modeling_auto.py (mappings read: %s)" % (auto, ", ".join(found) or "none"))
    version = read_version(tdir)
    rows = {}
    kept = [t for t in sorted(keep) if t in config_names and t not in model_names]
    for model_type in list(model_names) + kept:
        if model_type not in config_names:
            continue  # AutoModel cannot build a type AutoConfig does not know
        family, task, modality = derive_from_mappings(model_type, model_names.get(model_type, ()), mappings,
                                                      model_names)
        hf_id = default_checkpoint(tdir, model_type, config_names[model_type][0], special) or ""
        rows[model_type] = {"model_type": model_type, "hf_id": hf_id, "family": family, "task": task,
                            "modality": modality, "size_class": "", "notes": "" if hf_id else NO_CHECKPOINT,
                            "limits": "", "suites": "", "source": SOURCE_LIBRARY}
    return version, rows


def reference_rows(path):
    rows = {}
    types = read_types_list(path)
    for model_type, cls in types.items():
        family, task, modality = derive_from_reference(model_type, cls, types)
        rows[model_type] = {"model_type": model_type, "hf_id": "", "family": family, "task": task,
                            "modality": modality, "size_class": "", "notes": NO_CHECKPOINT_REF,
                            "limits": "", "suites": "", "source": SOURCE_REFERENCE}
    return rows


def merge_facts(rows, facts, warn):
    """Applies each facts row's non-empty fields to the derived row of its type."""
    for model_type in sorted(facts):
        if model_type not in rows:
            warn("facts for %s left out: the transformers read has no such model type" % model_type)
            continue
        for field in FACT_FIELDS:
            if facts[model_type][field]:
                rows[model_type][field] = facts[model_type][field]
    return rows


def render(rows, version, source_note):
    out = ["\t".join(HEADER), "# transformers %s" % version]
    if source_note:
        out.append("# " + source_note)
    for model_type in sorted(rows, key=lambda s: s.encode("utf-8")):
        r = rows[model_type]
        for field in HEADER:
            if "\t" in r[field] or "\n" in r[field]:
                raise BuildError("%s: field %s holds a tab or newline" % (model_type, field))
        out.append("\t".join(r[field] for field in HEADER))
    return "\n".join(out) + "\n"


def build(args, warn):
    facts = read_tsv(args.facts, FACTS_HEADER) if args.facts else {}
    if args.reference_list:
        rows = reference_rows(args.reference_list)
        version = args.reference_version
        note = ("rows with source reference-list were derived from %s, not yet from transformers %s's "
                "mappings; rerun build_registry.py on a machine with transformers %s"
                % (os.path.basename(args.reference_list), version, version))
    else:
        tdir = args.transformers_dir or find_transformers_dir()
        version, rows = library_rows(tdir, keep=facts)
        note = None
    rows = merge_facts(rows, facts, warn)
    return rows, render(rows, version, note)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--transformers-dir", help="the transformers package directory (default: the installed one)")
    ap.add_argument("--reference-list", help="derive from this list of model types instead of the library")
    ap.add_argument("--reference-version", default="5.17",
                    help="the transformers version the reference list was read from (default 5.17)")
    ap.add_argument("--facts", default=os.path.join(HERE, "facts.tsv"),
                    help="the hand-made facts (default: facts.tsv beside this tool; '' for none)")
    ap.add_argument("--out", default="-", help="where to write the registry (default: stdout)")
    ap.add_argument("--expect-types", help="fail unless the registry's types are exactly this list's")
    args = ap.parse_args(argv)

    def warn(msg):
        print("build_registry: " + msg, file=sys.stderr)

    try:
        rows, text = build(args, warn)
        if args.expect_types:
            want = set(read_types_list(args.expect_types))
            missing, extra = sorted(want - set(rows)), sorted(set(rows) - want)
            if missing or extra:
                raise BuildError("the registry's types differ from %s: missing %s; extra %s"
                                 % (args.expect_types, ", ".join(missing) or "none", ", ".join(extra) or "none"))
    except BuildError as e:
        warn("error: %s" % e)
        return 1
    if args.out == "-":
        sys.stdout.write(text)
    else:
        tmp = args.out + ".tmp"
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, args.out)
        warn("wrote %d model types to %s" % (len(rows), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
