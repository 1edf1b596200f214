# SPDX-License-Identifier: MIT
"""Building a model for a task: which transformers class, from which config.

What this module owns (the reference runner's construction, moved out of
hfleet_runner_torch.py, which runs the attempt):
  * the auto classes a task tries, in order      -> auto_classes, build_from_config
  * pretrained weights from a directory or cache -> load_pretrained
  * a timm backbone's Hub config, offline        -> offline_timm_configs
  * the default config and the shrunk one a test
    builds (and the recipes' fixes to both)      -> default_and_shrunk_configs
  * random initialisation on the GPU, in the
    task's half precision, not on the CPU        -> build_on_device
  * BatchNorm statistics of random weights set
    from the task's own input (a recipe asks)    -> calibrates_batchnorm, calibrate_batchnorm
  * shrunk rotary sections that fit               -> adapt_mrope_sections
  * a half-precision model that mixes in float32  -> run_under_autocast
  * freeing what a failed build left              -> free_memory

Like the rest of the runner it imports torch and transformers only inside
the functions that are given or use them.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import re
import traceback

import hfleet_recipes as recipes
import hfleet_plan as plan_mod
import hfleet_runner_lib as lib
from hfleet_runner_lib import log


TASK_AUTO_CLASSES = {
    "fill-mask": ["AutoModelForMaskedLM"],
    "text-generation": ["AutoModelForCausalLM"],
    "text2text-generation": ["AutoModelForSeq2SeqLM"],
    "translation": ["AutoModelForSeq2SeqLM"],
    "summarization": ["AutoModelForSeq2SeqLM"],
    "text-classification": ["AutoModelForSequenceClassification"],
    "token-classification": ["AutoModelForTokenClassification"],
    "question-answering": ["AutoModelForQuestionAnswering"],
    "feature-extraction": [],
    "image-classification": ["AutoModelForImageClassification"],
    "object-detection": ["AutoModelForObjectDetection"],
    "image-segmentation": ["AutoModelForImageSegmentation", "AutoModelForSemanticSegmentation",
                           "AutoModelForUniversalSegmentation", "AutoModelForInstanceSegmentation"],
    "depth-estimation": ["AutoModelForDepthEstimation"],
    "image-to-text": ["AutoModelForImageTextToText", "AutoModelForVision2Seq"],
    "image-text-to-text": ["AutoModelForImageTextToText", "AutoModelForVision2Seq"],
    "visual-question-answering": ["AutoModelForVisualQuestionAnswering", "AutoModelForImageTextToText"],
    "zero-shot-image-classification": ["AutoModelForZeroShotImageClassification"],
    "video-classification": ["AutoModelForVideoClassification"],
    "automatic-speech-recognition": ["AutoModelForSpeechSeq2Seq", "AutoModelForCTC"],
    "audio-classification": ["AutoModelForAudioClassification"],
    "text-to-audio": ["AutoModelForTextToWaveform", "AutoModelForTextToSpectrogram"],
    "text-to-speech": ["AutoModelForTextToWaveform", "AutoModelForTextToSpectrogram"],
    "time-series-forecasting": ["AutoModelForTimeSeriesPrediction"],
}
GENERIC_AUTO_CLASSES = [
    "AutoModelForCausalLM", "AutoModelForMaskedLM", "AutoModelForSeq2SeqLM",
    "AutoModelForImageClassification", "AutoModelForImageTextToText", "AutoModelForCTC",
    "AutoModelForSpeechSeq2Seq", "AutoModelForAudioClassification", "AutoModelForTextToWaveform",
    "AutoModelForVideoClassification", "AutoModelForTimeSeriesPrediction", "AutoBackbone",
]


# Tasks whose benchmark builds the task's generating class first (so that
# the forward pass includes the LM head, and generation can be timed).
GENERATIVE_TASKS = ("text-generation", "text2text-generation", "translation", "summarization",
                    "image-to-text", "image-text-to-text", "automatic-speech-recognition")


def auto_classes(transformers, task_name, head_first=False):
    """Auto classes to try, in order: the bare model first, except that
    generative benchmarks (head_first) and known-answer checks (head_first
    "always") want the task's head."""
    task_classes = TASK_AUTO_CLASSES.get(task_name or "", [])
    if head_first == "always" or (head_first and task_name in GENERATIVE_TASKS):
        names = task_classes + ["AutoModel"] + GENERIC_AUTO_CLASSES
    else:
        names = ["AutoModel"] + task_classes + GENERIC_AUTO_CLASSES
    seen, out = set(), []
    for n in names:
        cls = getattr(transformers, n, None) if n not in seen else None
        seen.add(n)
        if cls is not None:
            out.append(cls)
    return out


def _unmapped(exc: Exception) -> bool:
    msg = str(exc)
    return isinstance(exc, (ValueError, KeyError)) and (
        "Unrecognized configuration class" in msg or "Unrecognized model" in msg
        or "does not appear to have" in msg)


def _head_refuses_config(exc: Exception) -> bool:
    """A class's own check of its config (an assertion, a ValueError), not
    a device error or running out of memory."""
    return isinstance(exc, (AssertionError, ValueError)) and lib.classify_device_error(str(exc)) is None


def _mapped_class(auto_cls, config):
    """The model class an auto class maps this config to (first of a tuple), or None."""
    mapping = getattr(auto_cls, "_model_mapping", None)
    try:
        target = mapping[type(config)] if mapping is not None else None
    except Exception:  # noqa: BLE001
        return None
    if isinstance(target, (list, tuple)):
        target = target[0] if target else None
    return target


def build_from_config(transformers, config, task_name, meta=False, torch=None, head_first=False):
    """Instantiate a random-init model; AutoModel first, then task auto classes.

    A model recipe can name the class instead (musicgen: AutoModel builds
    only its decoder)."""
    import contextlib

    def place():
        return torch.device("meta") if meta else contextlib.nullcontext()

    recipe = recipes.get(getattr(config, "model_type", None))
    if recipe is not None and recipe.model_class:
        module, _, name = recipe.model_class.rpartition(".")
        owner = importlib.import_module("transformers." + module) if module else transformers
        with place():
            return getattr(owner, name)._from_config(config)

    last = None
    classes = auto_classes(transformers, task_name, head_first)
    for cls in classes:
        try:
            with place():
                return cls.from_config(config)
        except TypeError as exc:
            # AutoModel.from_config trips over configs whose auto mapping is a
            # tuple of classes and whose 'architectures' is None (funnel):
            # build the mapped class directly.
            tb = traceback.extract_tb(exc.__traceback__)
            target = _mapped_class(cls, config)
            if target is None or not tb or not tb[-1].filename.endswith("auto_factory.py"):
                raise
            with place():
                return target._from_config(config)
        except Exception as exc:  # noqa: BLE001
            if _unmapped(exc):
                last = exc
                continue
            if head_first and cls is not classes[-1] and _head_refuses_config(exc):
                # A head whose default config does not suit it (reformer's
                # LM head wants is_decoder, a CTC head a vocab_size): the
                # bare model next, as a test builds it.
                log(f"{cls.__name__} cannot build this config ({type(exc).__name__}: {lib.one_line(exc, 200)}); "
                    "the next class")
                last = exc
                continue
            raise
    # No auto class knows it (a model type newer than its auto mappings):
    # the model class named after the config class.
    stem = type(config).__name__[:-len("Config")] if type(config).__name__.endswith("Config") else None
    for suffix in ("Model", "ForConditionalGeneration", "ForCausalLM"):
        cls = getattr(transformers, stem + suffix, None) if stem else None
        if cls is not None:
            with place():
                return cls._from_config(config)
    raise Unsupported(f"no transformers auto class maps config {type(config).__name__}"
                      + (f" ({lib.one_line(last, 200)})" if last else ""))


def load_pretrained(transformers, torch, hf_id, task_name, dtype, head_first=False):
    offline_timm_configs(transformers)   # an EdgeTAM checkpoint's config prints its class default too
    last = None
    for cls in auto_classes(transformers, task_name, head_first):
        try:
            try:
                return cls.from_pretrained(hf_id, local_files_only=True, dtype=dtype)
            except TypeError as exc:
                if "dtype" not in str(exc):
                    raise
                return cls.from_pretrained(hf_id, local_files_only=True, torch_dtype=dtype)
        except Exception as exc:  # noqa: BLE001
            if _unmapped(exc):
                last = exc
                continue
            raise
    raise Unsupported(f"no transformers auto class loads {hf_id}" + (f" ({lib.one_line(last, 200)})" if last else ""))


class Unsupported(Exception):
    """This runner version cannot build this model (runner limitation)."""


def param_count(model) -> int:
    seen = set()
    n = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        n += p.numel()
    return int(n)


# --------------------------------------------------------------------------
# timm configs from the Hub, offline.  EdgeTamVisionConfig's default
# backbone (backbone_config None) is AutoConfig.from_pretrained(
# "timm/repvit_m1.dist_in1k", model_args=...), a file from the Hub, and
# transformers builds that default itself whatever config it is given:
# PreTrainedConfig.__repr__ diffs a config against its class's default
# (to_diff_dict: self.__class__(); from_dict logs the config it made), and
# the strict dataclass configs of later 5.x releases (5.2's were plain
# classes) repr every sub-config assigned to a field typed
# `dict | PreTrainedConfig | None` (huggingface_hub's union check tries dict
# first and writes repr(value) into that TypeError's message).  So
# EdgeTamConfig could not be built offline even from a vision_config with
# its backbone given, while EdgeTamVisionConfig could (the default of its
# own sub-config, a TimmWrapperConfig, needs no Hub).  A timm Hub config is
# the architecture's name plus what comes with the pretrained weights
# (labels, mean and std, input size); random weights need only the name,
# from which timm builds the model (TimmWrapperModel always creates it with
# pretrained=False).

# from_pretrained's own keywords, not the config's
HUB_LOADING_KWARGS = ("cache_dir", "force_download", "local_files_only", "proxies", "token", "revision",
                      "subfolder", "trust_remote_code", "code_revision", "_from_auto", "_from_pipeline",
                      "_commit_hash")


def timm_hub_architecture(name):
    """The timm architecture a Hub id timm/ARCH names ('timm/repvit_m1.dist_in1k'
    -> 'repvit_m1.dist_in1k': the name with its pretrained tag, which
    timm.create_model takes), else None."""
    if not isinstance(name, str) or not name.startswith("timm/"):
        return None
    arch = name[len("timm/"):]
    return arch if arch and "/" not in arch else None


def offline_timm_configs(transformers):
    """From now on in this process, AutoConfig.from_pretrained answers a
    timm Hub id whose config the offline runner does not have
    (lib.hub_file_missing) with a TimmWrapperConfig of that architecture
    and the caller's config keywords (EdgeTAM's model_args) instead of the
    OSError; any other id or error is raised as before.  Before any config
    is built or loaded (default_and_shrunk_configs, load_pretrained); once
    a process (a warm runner's later tasks find it done)."""
    auto = transformers.AutoConfig
    original = auto.from_pretrained
    if getattr(original, "offline_timm", False):
        return
    told = set()

    def from_pretrained(cls, name, **kwargs):
        try:
            return original(name, **kwargs)
        except Exception as exc:  # noqa: BLE001 - raised again unless it is the offline timm case
            arch = timm_hub_architecture(name)
            if arch is None or kwargs.get("return_unused_kwargs") or not lib.hub_file_missing(exc):
                raise
        if name not in told:
            told.add(name)
            log(f"{name} is not in the local cache (offline): a timm_wrapper config of architecture {arch}, "
                f"random weights")
        config = {k: v for k, v in kwargs.items() if k not in HUB_LOADING_KWARGS}
        return transformers.CONFIG_MAPPING["timm_wrapper"](architecture=arch, **config)

    from_pretrained.offline_timm = True
    auto.from_pretrained = classmethod(from_pretrained)


# Composite model types whose default config is empty: built from two
# small default sub-configs (a v1 choice of representative sub-models).
COMPOSITES = {
    "encoder-decoder": ("EncoderDecoderConfig", "from_encoder_decoder_configs", "bert", "bert"),
    "vision-encoder-decoder": ("VisionEncoderDecoderConfig", "from_encoder_decoder_configs", "vit", "gpt2"),
    "speech-encoder-decoder": ("SpeechEncoderDecoderConfig", "from_encoder_decoder_configs", "wav2vec2", "bert"),
    "vision-text-dual-encoder": ("VisionTextDualEncoderConfig", "from_vision_text_configs", "vit", "bert"),
}
# Composite configs built from keyword sub-configs (their default config is
# empty): {model_type: {keyword: sub-model type, or a config class name}}.
KWARG_COMPOSITES = {
    "musicgen": {"text_encoder": "t5", "audio_encoder": "encodec", "decoder": "MusicgenDecoderConfig"},
    "musicgen_melody": {"text_encoder": "t5", "audio_encoder": "encodec", "decoder": "MusicgenMelodyDecoderConfig"},
}
COMPOSITES["nougat"] = ("VisionEncoderDecoderConfig", "from_encoder_decoder_configs", "donut-swin", "mbart")
# RAG: a DPR question encoder and a BART generator, as facebook/rag-token-nq
# (its retriever is the recipe's synthetic index: hfleet_recipes_rag).
COMPOSITES["rag"] = ("RagConfig", "from_question_encoder_generator_configs", "dpr", "bart")


UNKNOWN_KWARGS = re.compile(r"Found unknown kwargs=\{(.*)\}")


def _config_from_dict(config_cls, d):
    d = dict(d)
    d.pop("transformers_version", None)
    try:
        return config_cls.from_dict(d)
    except ValueError as exc:
        # Plain sub-config classes (dbrx's attn_config) refuse the generic
        # keys that to_dict() wrote into them: drop those and build again.
        m = UNKNOWN_KWARGS.search(str(exc))
        if not m:
            raise
        unknown = set(re.findall(r"'(\w+)':", m.group(1)))
        for k, v in d.items():
            if isinstance(v, dict):
                d[k] = {kk: vv for kk, vv in v.items() if kk not in unknown}
        return config_cls.from_dict(d)


def _shrunk_dict_fix(config, d):
    """A recipe module's fix of the shrunk dict, before its class validates it."""
    fix = recipes.SHRUNK_DICT_FIXES.get(getattr(config, "model_type", None))
    return (fix(d) or []) if fix is not None else []


def shrunk_config(transformers, config, seq_len):
    d, changes = plan_mod.shrink_config_dict(config.to_dict(), seq_len)
    changes += _shrunk_dict_fix(config, d)
    return _config_from_dict(type(config), d), changes


def _apply_fixes(model_type, cfg, shrunk):
    """The recipe's config fix and the generic ones, each once; -> notes."""
    recipe = recipes.get(model_type)
    fixes = ((recipe.fix_config,) if recipe is not None and recipe.fix_config is not None else ()) \
        + recipes.GENERIC_CONFIG_FIXES
    notes = []
    for fix in dict.fromkeys(fixes):  # a recipe may name a generic fix as its own: once
        notes += fix(cfg, shrunk) or []
    return notes


def shallow_config(model_type, default, seq_len):
    """The default config with depth and expert counts cut and every width
    kept (plan.shrink_config_dict(keep_width=True)), fixed as a default is.
    -> (config, changes)."""
    d, changes = plan_mod.shrink_config_dict(default.to_dict(), seq_len, keep_width=True)
    changes += _shrunk_dict_fix(default, d)
    cfg = _config_from_dict(type(default), d)
    _apply_fixes(model_type, cfg, False)
    return cfg, changes


def default_and_shrunk_configs(transformers, model_type, seq_len):
    """-> (default_config, shrunk_config or None, changes, shrink_error)."""
    from transformers import AutoConfig, CONFIG_MAPPING
    if model_type not in CONFIG_MAPPING:
        raise Unsupported(f"model_type {model_type!r} is not known to transformers {transformers.__version__}")
    offline_timm_configs(transformers)
    recipe = recipes.get(model_type)
    if model_type in COMPOSITES:
        cfg_name, factory, a, b = COMPOSITES[model_type]
        cfg_cls = getattr(transformers, cfg_name)
        ca, cb = AutoConfig.for_model(a), AutoConfig.for_model(b)
        default = getattr(cfg_cls, factory)(ca, cb)
        sa, ch_a = shrunk_config(transformers, ca, seq_len)
        sb, ch_b = shrunk_config(transformers, cb, seq_len)
        shrunk, changes, exc = getattr(cfg_cls, factory)(sa, sb), ch_a + ch_b, None
    elif model_type in KWARG_COMPOSITES:
        cfg_cls = CONFIG_MAPPING[model_type]
        subs = {k: getattr(transformers, t)() if t[0].isupper() else AutoConfig.for_model(t)
                for k, t in KWARG_COMPOSITES[model_type].items()}
        default = cfg_cls(**{k: c.to_dict() for k, c in subs.items()})
        small, changes = {}, []
        for k, c in subs.items():
            sc, ch = shrunk_config(transformers, c, seq_len)
            small[k] = sc.to_dict()
            changes += [f"{k}.{x}" for x in ch]
        shrunk, exc = cfg_cls(**small), None
    else:
        if recipe is not None and recipe.make_config is not None:
            default = recipe.make_config(transformers, model_type)
        else:
            default = AutoConfig.for_model(model_type)
        try:
            shrunk, changes = shrunk_config(transformers, default, seq_len)
            exc = None
        except Exception as e:  # noqa: BLE001 - fall back to the default config
            shrunk, changes, exc = None, [], e
    if recipe is not None and recipe.prefer_default:
        shrunk, exc = None, None
        changes = [recipe.note or "the shrunk config does not fit this architecture: the default config is used"]
    fixed = _apply_fixes(model_type, default, False)
    if fixed:
        log(f"default config ({len(fixed)} fixes): " + ", ".join(fixed[:20]))
    if shrunk is not None:
        changes = changes + _apply_fixes(model_type, shrunk, True)
    return default, shrunk, changes, exc


def adapt_mrope_sections(torch, model):
    """Shrunk configs only: fit rotary 'mrope_section' splits to the shrunk rotary size.

    Many multimodal-rotary models read mrope_section with a hard-coded
    full-size default (config.rope_parameters.get("mrope_section", [16, 24, 24]))
    that cannot split the shrunk head.  Each such rotary module has its
    inv_freq buffer, whose length is what the sections must add up to.
    """
    fixed = 0
    for mod in model.modules():
        sec = getattr(mod, "mrope_section", None)
        inv = getattr(mod, "inv_freq", None)
        if isinstance(sec, (list, tuple)) and sec and all(isinstance(x, int) for x in sec) \
                and isinstance(inv, torch.Tensor) and inv.ndim == 1 and sum(sec) != inv.shape[0]:
            half, total = int(inv.shape[0]), sum(sec)
            new = [max(1, x * half // total) for x in sec]
            new[-1] += half - sum(new)
            mod.mrope_section = type(sec)(new) if isinstance(sec, tuple) else new
            fixed += 1
    return fixed


def build_on_device(torch, device, make_model, dtype=None):
    """A random-init model built directly on a CUDA device -> (model, where).

    Random initialisation is most of a model's construction, and on the CPU
    it is slow (a few seconds for 100 M parameters, while the GPU does it in
    milliseconds) and takes the cores other slots need.  A model whose
    construction cannot run on the device (it builds something with numpy,
    or a CPU-only operation) is built on the CPU instead, as before; the
    caller moves the model to the device either way.  HFLEET_BUILD_ON_CPU=1
    builds every model on the CPU (to compare).

    At a half precision (dtype float16 or bfloat16) the model is built in it
    (torch's default dtype, as from_pretrained(dtype=...) builds one), not in
    float32 and cast after: a float32 build holds 4 bytes a parameter on the
    device, twice what the task runs with, so a default config over 40 % of
    the GPU's memory ran out of memory while building though it fits to run
    (the benchmark limit is 80 % at 2 bytes a parameter).  One whose
    initialisation cannot run in half precision is built in float32."""
    if device.type != "cuda" or os.environ.get("HFLEET_BUILD_ON_CPU", "") not in ("", "0"):
        return make_model(), "cpu"
    whys = []
    for build_dtype in ((dtype,) if dtype in (torch.float16, torch.bfloat16) else ()) + (None,):
        in_dtype = f" in {str(build_dtype).replace('torch.', '')}" if build_dtype else ""
        try:
            with torch.device(device), default_dtype(torch, build_dtype):
                model = make_model()
            return model, "device" + in_dtype + (f" ({whys[0]})" if whys else "")
        except Exception as exc:  # noqa: BLE001 - the next build below says what fails for real
            if lib.classify_device_error(str(exc)) is not None or lib.is_out_of_memory(f"{type(exc).__name__}: {exc}"):
                raise   # the device's fault, or too large for it: the task must run on the device
            why = f"{type(exc).__name__}: {lib.one_line(exc, 200)}"
            log(f"building on {device}{in_dtype} failed ({why})")
            whys.append(f"the build{in_dtype or ' on the device'} failed: {why}")
            free_memory(torch, device)
            torch.manual_seed(0)
    log("building on the cpu")
    return make_model(), f"cpu ({whys[-1]})"


@contextlib.contextmanager
def default_dtype(torch, dtype):
    """torch's default floating dtype set to dtype (None: unchanged) for the block."""
    if dtype is None:
        yield
        return
    was = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(was)


# --------------------------------------------------------------------------
# BatchNorm statistics for random weights.  transformers' _init_weights
# leaves every BatchNorm at running mean 0, variance 1, weight 1, bias 0: in
# eval mode an identity, so nothing renormalises the signal between the
# convolutions, and each multiplies its RMS by about std * sqrt(fan-in).
# Through a deep network that product is a guess float16's range does not
# forgive: align's EfficientNet-B7 (55 MBConv blocks, every convolution at
# std 0.02) underflows to 0; re-drawn with He init (std sqrt(2 / fan-in))
# it gave NaN inside the tower at 600 px instead.  A trained network's
# running statistics are what its BatchNorms' inputs measure, so that each
# output has unit scale; calibrate_batchnorm sets them so for the random
# weights from one pass over the task's own inputs, each layer measured as
# its turn comes, on what the already-calibrated layers before it gave.
#
# running_mean stays 0 and running_var is the input's per-channel mean
# square less eps, so each output channel has RMS 1 and keeps its mean.
# Centring too (running_mean the input's mean) would make every output
# channel's mean over this very input exactly 0: align's last hidden state
# is a sum of BatchNorm outputs (the last stage's projections, residual)
# pooled by its spatial mean, so at batch 1 its image features would be 0
# again up to rounding, and AlignModel.forward's L2 normalisation 0 / 0.
# A channel whose mean square is under eps (a variance cannot go below 0)
# comes out at RMS sqrt(mean square / eps) < 1: smaller, never larger.
#
# Each output element of a calibrated layer is then at most
# sqrt(elements per channel) in size (their squares sum to that count: 300
# for one 300 x 300 map), far inside float16's 65504, and what lies
# between (activations, squeeze-excitation gates in (0, 1), residual sums
# of a few such outputs, convolutions of unit-scale inputs) keeps that
# scale.  The pass runs at the model's own precision (a half-precision
# benchmark builds the model in it, and a float32 copy would count in its
# peak memory): each layer is calibrated before it runs, so the pass stays
# in range wherever the convolutions between two BatchNorms do, and the
# statistics are reduced in float32.  Layers, shapes, dtypes and kernels
# stay, so what the benchmark times is the same.

def calibrates_batchnorm(model_type, source):
    """Whether an attempt's model gets calibrate_batchnorm: its type's own
    recipe asks for it (Recipe.calibrate_batchnorm, read before a recipe by
    forward()'s signature may stand in for the inputs), and its weights are
    random (pretrained running statistics are the trained ones)."""
    recipe = recipes.get(model_type)
    return source != "pretrained" and recipe is not None and bool(recipe.calibrate_batchnorm)


def batchnorm_scale_from_input(torch, norm, x):
    """Set one BatchNorm's running statistics from its input x (see above):
    running_mean 0, running_var the per-channel mean square of x (over every
    dimension but the channels', 1) less eps, at least 0.  A channel whose
    mean square is not finite keeps what it had (the model's own overflow,
    left for the output check to report).  -> the number of such channels."""
    dims = (0,) + tuple(range(2, x.dim()))
    count = max(1, x.numel() // max(1, x.shape[1]))
    # float32 sums without a float32 copy of the activation (the pass's
    # memory stays the forward's own)
    ms = torch.linalg.vector_norm(x.detach(), 2, dim=dims, dtype=torch.float32).square() / count
    ok = torch.isfinite(ms)
    var = torch.where(ok, (ms - norm.eps).clamp_min(0.0), norm.running_var.float())
    mean = torch.where(ok, torch.zeros_like(ms), norm.running_mean.float())
    norm.running_var.copy_(var)
    norm.running_mean.copy_(mean)
    return int((~ok).sum())


def calibrate_batchnorm(torch, model, run, scale_from_input=batchnorm_scale_from_input):
    """Run run() (the task's forward on its inputs) once with a forward
    pre-hook on every eval-mode BatchNorm of model that tracks running
    statistics, each setting its layer's from the input it gets
    (scale_from_input; a layer called twice, at its first call), then take
    the hooks off.  -> a note for outputs.batchnorm_calibration."""
    norms = [m for m in model.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and not m.training
             and m.track_running_stats and m.running_var is not None]
    if not norms:
        return "no eval-mode BatchNorm with running statistics: nothing calibrated"
    done, nonfinite = set(), [0]

    def pre_hook(module, args):
        if args and id(module) not in done:
            done.add(id(module))
            nonfinite[0] += scale_from_input(torch, module, args[0])

    handles = [m.register_forward_pre_hook(pre_hook) for m in norms]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    note = (f"{len(done)} BatchNorm layers' running statistics set from this task's input, one pass in forward "
            f"order (running_mean 0, running_var the input's per-channel mean square less eps: unit-RMS outputs; "
            f"random weights leave them at 0 / 1, identities that let activations leave float16's range)")
    if len(done) < len(norms):
        note += f"; {len(norms) - len(done)} not reached by the pass keep theirs"
    if nonfinite[0]:
        note += f"; {nonfinite[0]} channels with a non-finite input keep theirs"
    return note


def run_under_autocast(torch, model, device, dtype):
    """Make every later call of model (the forward passes, generate(), a
    captured graph, torch.compile) run under torch.autocast at dtype, for a
    model that mixes float32 into its half-precision work
    (lib.half_precision_mix).  Its weights stay at dtype; autocast runs each
    operation at the precision it takes (matrix products and convolutions
    in dtype, some reductions and normalisations in float32; FFTs stay at
    their input's precision).  The cast cache is off, as CUDA graph capture
    needs."""
    forward = model.forward

    def forward_under_autocast(*args, **kwargs):
        with torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=False):
            return forward(*args, **kwargs)

    model.forward = forward_under_autocast
    return model


def free_memory(torch, device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        # Pinned host memory freed (a model's blocks offloaded to the host:
        # hfleet_offload) stays in torch's cache until emptied.
        host_empty = getattr(getattr(torch, "_C", None), "_host_emptyCache", None)
        if host_empty is not None:
            host_empty()
