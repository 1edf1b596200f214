"""The parts of the hfleet reference runner that need torch and transformers.

Importing this module imports neither: torch, transformers and
huggingface_hub are imported inside the functions that use them, so the CLI
can answer 'skipped' (with the reason) on a Python that lacks them.

Entry points: probe() and run_task(task) -> result dict.
"""

from __future__ import annotations

import gc
import importlib
import os
import platform
import re
import sys
import time
import traceback

import hfleet_bench as bench_mod
import hfleet_modes as modes_mod
import hfleet_multidevice as multi_mod
import hfleet_nvml as nvml_mod
import hfleet_recipes as recipes
import hfleet_runner_lib as lib


def log(msg: str) -> None:
    print(f"hfleet-runner: {msg}", file=sys.stderr, flush=True)


def set_offline_env() -> None:
    """Never touch the network (must run before huggingface_hub is imported)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# --------------------------------------------------------------------------
# probe

def _module_version(mod, dist_name):
    v = getattr(mod, "__version__", None)
    if v:
        return str(v)
    try:
        from importlib import metadata
        return metadata.version(dist_name)
    except Exception:  # noqa: BLE001
        return None


def _probe_import(name, dist_name):
    try:
        mod = importlib.import_module(name)
    except BaseException as exc:  # noqa: BLE001 - probe never crashes
        if isinstance(exc, KeyboardInterrupt):
            raise
        return None, {"available": False, "reason": lib.one_line(f"{type(exc).__name__}: {exc}" if not isinstance(exc, ImportError) else str(exc))}
    return mod, {"available": True, "version": _module_version(mod, dist_name)}


def probe() -> dict:
    set_offline_env()
    out = {"python": {"version": platform.python_version(), "executable": sys.executable},
           "runner": {"version": lib.RUNNER_VERSION}}
    torch, info = _probe_import("torch", "torch")
    if torch is not None:
        try:
            info["cuda"] = getattr(torch.version, "cuda", None)
            info["hip"] = getattr(torch.version, "hip", None)
        except Exception as exc:  # noqa: BLE001
            info["version_error"] = lib.one_line(exc)
        try:
            info["cuda_available"] = bool(torch.cuda.is_available())
            info["device_count"] = int(torch.cuda.device_count()) if info["cuda_available"] else 0
        except Exception as exc:  # noqa: BLE001
            info["cuda_available"] = False
            info["device_count"] = 0
            info["cuda_error"] = lib.one_line(exc)
        try:
            mps = getattr(torch.backends, "mps", None)
            info["mps_available"] = bool(mps is not None and mps.is_available())
        except Exception:  # noqa: BLE001
            info["mps_available"] = False
    out["torch"] = info
    for key, mod_name, dist in (("transformers", "transformers", "transformers"),
                                ("optimum", "optimum", "optimum"),
                                ("openvino", "openvino", "openvino")):
        _, info = _probe_import(mod_name, dist)
        out[key] = info
    return out


# --------------------------------------------------------------------------
# environment fingerprint

def base_env() -> dict:
    return {
        "python": platform.python_version(),
        "torch": None,
        "torch_cuda": None,
        "torch_hip": None,
        "transformers": None,
        "device_name": None,
        "platform": platform.platform(),
        "runner_version": lib.RUNNER_VERSION,
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


# --------------------------------------------------------------------------
# device / dtype

class Skip(Exception):
    """The task cannot be attempted here; not the model's fault."""


def resolve_device(torch, backend: str):
    hip = getattr(torch.version, "hip", None)
    cuda = getattr(torch.version, "cuda", None)
    if backend == "cpu":
        return torch.device("cpu"), _cpu_name()
    if backend in ("cuda", "rocm"):
        if backend == "cuda" and hip:
            raise Skip(f"backend cuda not available: torch {torch.__version__} is a ROCm build (torch.version.hip={hip})")
        if backend == "rocm" and not hip:
            raise Skip(f"backend rocm not available: torch {torch.__version__} is not a ROCm build (torch.version.hip is None)")
        if backend == "cuda" and not cuda:
            raise Skip(f"backend cuda not available: torch {torch.__version__} is a CPU-only build (torch.version.cuda is None)")
        if not torch.cuda.is_available():
            raise Skip(f"backend {backend} not available: torch.cuda.is_available() is False")
        return torch.device("cuda:0"), torch.cuda.get_device_name(0)
    if backend == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise Skip("backend mps not available: torch.backends.mps.is_available() is False")
        return torch.device("mps"), f"Apple MPS ({platform.machine()})"
    raise Skip(lib.companion_backend_reason(backend))


def resolve_dtype(torch, device, precision: str):
    if precision == "fp32":
        return torch.float32
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise Skip(f"precision bf16 not supported on {torch.cuda.get_device_name(0)}")
        return torch.bfloat16
    if precision == "int8":
        return torch.float32   # Linear weights are quantized after the build (precision_skip_reason: cpu only)
    raise Skip(f"precision {precision} not supported by this runner version")


def quantize_int8(torch, model, device):
    """PyTorch's dynamic int8 quantization: nn.Linear weights stored as int8,
    activations quantized on the fly (CPU kernels: fbgemm / qnnpack)."""
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError as exc:
        raise Skip(f"precision int8: torch.ao.quantization is not available in torch {torch.__version__}: {exc}")
    q = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    n = sum(1 for m in q.modules() if "quantized" in type(m).__module__)
    if n == 0:
        raise Skip("precision int8: the model has no nn.Linear layer that dynamic quantization can convert")
    return q, n


def synchronize(torch, device) -> None:
    if device.type == "cuda":
        n = torch.cuda.device_count()
        if n > 1:  # a model split across the task's devices
            multi_mod.synchronize_all(torch, n)
        else:
            torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


# --------------------------------------------------------------------------
# pretrained weights in the local cache

def pretrained_in_cache(hf_id):
    """True when config.json and complete weights of hf_id are in the local HF cache."""
    if not hf_id:
        return False
    try:
        from huggingface_hub import try_to_load_from_cache
    except Exception:  # noqa: BLE001
        return False
    def locate(name):
        path = try_to_load_from_cache(hf_id, name)
        return path if isinstance(path, str) else None
    try:
        return lib.complete_checkpoint(locate)
    except Exception as exc:  # noqa: BLE001 - a broken cache means: not available
        log(f"cache lookup for {hf_id} failed: {type(exc).__name__}: {exc}")
    return False


def pretrained_source(hf_id):
    """(what from_pretrained loads, where it was found) or None.

    The configured weights directories (HFLEET_WEIGHTS_DIR, the worker's
    runner.weights_dir) come first, then the local HuggingFace cache."""
    path = lib.weights_dir_path(hf_id, os.environ.get("HFLEET_WEIGHTS_DIR", ""))
    if path:
        return path, f"weights directory {path}"
    if pretrained_in_cache(hf_id):
        return hf_id, "HuggingFace cache"
    return None


def known_answer(torch, transformers, model, source, task_name, device):
    """Runs the task's known-answer prompt (lib.KNOWN_ANSWERS) through pretrained weights.

    Returns (ok, detail); ok is None when the check could not be made (no
    tokenizer next to the weights, no mask token, a prompt the model's
    inputs do not take): only a clean wrong answer fails the test."""
    spec = lib.known_answer_spec(task_name)
    try:
        tok = transformers.AutoTokenizer.from_pretrained(source, local_files_only=True)
    except Exception as exc:  # noqa: BLE001
        return None, lib.exception_reason(exc, "not checked: no tokenizer with the weights")
    try:
        params, takes_kwargs = lib.forward_params(model.forward)
        if task_name == "fill-mask":
            if not getattr(tok, "mask_token", None):
                return None, "not checked: the tokenizer has no mask token"
            enc = tok(spec["prompt"].format(mask=tok.mask_token), return_tensors="pt")
        else:
            enc = tok(spec["prompt"], return_tensors="pt")
        enc = {k: v.to(device) for k, v in enc.items() if takes_kwargs or k in params}
        ids = enc["input_ids"]
        special = set(getattr(tok, "all_special_ids", None) or [])
        if not any(i not in special and i != tok.unk_token_id for i in ids[0].tolist()):
            # transformers 5 builds an empty tokenizer when the weights come
            # without tokenizer files: it knows no word of the prompt.
            return None, "not checked: the tokenizer found with the weights knows no word of the prompt"
        with torch.inference_mode():
            if task_name == "fill-mask":
                where = (ids[0] == tok.mask_token_id).nonzero()
                if where.shape[0] != 1:
                    return None, f"not checked: the prompt holds {where.shape[0]} mask tokens after tokenizing"
                logits = model(**enc).logits[0, int(where[0, 0])].float()
                answers = [tok.decode([i]) for i in logits.topk(spec["top_k"]).indices.tolist()]
            else:
                pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
                out = model.generate(**enc, max_new_tokens=spec["new_tokens"], do_sample=False,
                                     pad_token_id=pad)
                answers = [tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)]
    except Exception as exc:  # noqa: BLE001 - the forward on planned inputs already ran
        return None, lib.exception_reason(exc, "not checked: the known-answer prompt could not be run")
    return lib.check_known_answer(task_name, answers)


# --------------------------------------------------------------------------
# building models

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
        with place():
            return getattr(transformers, recipe.model_class)._from_config(config)

    last = None
    for cls in auto_classes(transformers, task_name, head_first):
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
UNSUPPORTED_TYPES = {
    "rag": "rag models need a retriever and document index; not supported by this runner version",
}


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


def shrunk_config(transformers, config, seq_len):
    d, changes = lib.shrink_config_dict(config.to_dict(), seq_len)
    return _config_from_dict(type(config), d), changes


def default_and_shrunk_configs(transformers, model_type, seq_len):
    """-> (default_config, shrunk_config or None, changes, shrink_error)."""
    from transformers import AutoConfig, CONFIG_MAPPING
    if model_type in UNSUPPORTED_TYPES:
        raise Unsupported(UNSUPPORTED_TYPES[model_type])
    if model_type not in CONFIG_MAPPING:
        raise Unsupported(f"model_type {model_type!r} is not known to transformers {transformers.__version__}")
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
        default = AutoConfig.for_model(model_type)
        try:
            shrunk, changes = shrunk_config(transformers, default, seq_len)
            exc = None
        except Exception as e:  # noqa: BLE001 - fall back to the default config
            shrunk, changes, exc = None, [], e
    if recipe is not None and recipe.prefer_default:
        shrunk, exc = None, None
        changes = [recipe.note or "the shrunk config does not fit this architecture: the default config is used"]
    if recipe is not None and recipe.fix_config is not None:
        for cfg, is_shrunk in ((default, False), (shrunk, True)):
            if cfg is not None:
                notes = recipe.fix_config(cfg, is_shrunk) or []
                if is_shrunk:
                    changes = changes + notes
    return default, shrunk, changes, exc


# --------------------------------------------------------------------------
# inputs

SUBCONFIG_NAMES = ("text_config", "vision_config", "audio_config", "encoder", "decoder",
                   "speech_config", "backbone_config", "qformer_config")


def _subconfig_names(config):
    names = list(SUBCONFIG_NAMES)
    extra = getattr(config, "sub_configs", None)
    if isinstance(extra, dict):
        names += [n for n in extra if n not in names]
    try:
        names += [k for k in config.to_dict() if k.endswith("_config") and k not in names]
    except Exception:  # noqa: BLE001
        pass
    return names


def _subconfigs(config):
    subs = [config]
    for n in _subconfig_names(config):
        c = getattr(config, n, None)
        if c is not None and hasattr(c, "to_dict") and c not in subs:
            subs.append(c)
    return subs


def _first(configs, names):
    for c in configs:
        for n in names:
            v = getattr(c, n, None)
            if v is not None:
                return v
    return None


def config_facts(config) -> dict:
    subs = _subconfigs(config)
    text_first = [config] + [getattr(config, n) for n in ("text_config", "encoder", "decoder")
                             if getattr(config, n, None) is not None and hasattr(getattr(config, n), "to_dict")]
    vision_first = [getattr(config, n) for n in ("vision_config", "encoder", "backbone_config")
                    if getattr(config, n, None) is not None and hasattr(getattr(config, n), "to_dict")] + [config]
    audio_first = [getattr(config, n) for n in ("audio_config", "speech_config", "encoder", "encoder_config")
                   if getattr(config, n, None) is not None and hasattr(getattr(config, n), "to_dict")] + [config]
    audio_first += [c for c in subs if c not in audio_first]
    f = {}
    for n, key in (("text_config", "has_text_config"), ("vision_config", "has_vision_config"),
                   ("audio_config", "has_audio_config")):
        f[key] = getattr(config, n, None) is not None and hasattr(getattr(config, n), "to_dict")
    special = set()
    for c in subs:
        try:
            items = list(c.to_dict().items())
        except Exception:  # noqa: BLE001
            items = list(vars(c).items()) if hasattr(c, "__dict__") else []
        for k, v in items:
            if (k.endswith("_token_id") or k.endswith("_token_index")) and isinstance(v, int) and v >= 0:
                special.add(v)
            elif k.endswith("_token_ids") and isinstance(v, (list, tuple)):
                special.update(x for x in v if isinstance(x, int) and x >= 0)
    f["placeholder_token_ids"] = sorted(special)
    f["vocab_size"] = _first(text_first, ("vocab_size",))
    dec = getattr(config, "decoder", None)
    f["decoder_vocab_size"] = getattr(dec, "vocab_size", None) if dec is not None and hasattr(dec, "to_dict") else None
    if f["decoder_vocab_size"] is None:
        f["decoder_vocab_size"] = _first([config, getattr(config, "text_config", None) or config],
                                         ("decoder_vocab_size", "vocab_size"))
    f["is_encoder_decoder"] = bool(getattr(config, "is_encoder_decoder", False))
    mp = _first(text_first, ("max_position_embeddings", "n_positions", "max_sequence_length"))
    f["max_positions"] = mp if isinstance(mp, int) and mp > 0 else None
    f["image_size"] = _first(vision_first, ("image_size", "img_size", "input_size_image"))
    f["num_channels"] = _first(vision_first, ("num_channels", "in_channels", "num_image_channels"))
    f["num_frames"] = _first(vision_first, ("num_frames",))
    mel = _first(audio_first, ("num_mel_bins",))
    f["num_mel_bins"] = mel
    msp = _first(audio_first, ("max_source_positions",))
    max_length = _first(audio_first, ("max_length",))
    if mel and msp is None and isinstance(max_length, int) and max_length > 0:
        f["spectrogram"] = [max_length, mel]  # audio-spectrogram-transformer: (batch, frames, mel)
    if mel and isinstance(msp, int):
        f["audio_frames"] = 2 * msp  # whisper: conv strides 1 and 2 -> frames = 2 * positions
    ch = _first(audio_first, ("audio_channels",))
    if isinstance(ch, int) and ch > 0:
        f["audio_channels"] = ch
    elif _first(audio_first, ("codebook_size", "n_codebooks", "codebook_dim")) is not None:
        f["audio_channels"] = 1  # neural audio codecs take (batch, 1, samples)
    per_channel = _first(audio_first, ("input_feat_per_channel",))
    if per_channel:
        f["feature_size"] = per_channel * (_first(audio_first, ("input_channels",)) or 1)
    else:
        f["feature_size"] = _first(audio_first, ("feature_size",))
    # time series
    f["context_length"] = getattr(config, "context_length", None)
    f["prediction_length"] = getattr(config, "prediction_length", None)
    lags = getattr(config, "lags_sequence", None)
    f["lags_max"] = max(lags) if isinstance(lags, (list, tuple)) and lags else None
    f["num_time_features"] = getattr(config, "num_time_features", None)
    f["input_size"] = getattr(config, "input_size", None)
    f["num_input_channels"] = getattr(config, "num_input_channels", None)
    f["num_static_categorical_features"] = getattr(config, "num_static_categorical_features", None)
    card = getattr(config, "cardinality", None)
    f["min_cardinality"] = min(card) if isinstance(card, (list, tuple)) and card else None
    f["num_static_real_features"] = getattr(config, "num_static_real_features", None)
    return {k: v for k, v in f.items() if v is not None}


def materialize(torch, plan, device, float_dtype, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    out = {}
    for s in plan:
        shape = tuple(s["shape"])
        fill = s["fill"]
        if fill == "value":
            out[s["name"]] = s["value"]
            continue
        if s["dtype"] == "long":
            if fill == "randint":
                high = int(s["high"])
                t = torch.randint(0, high, shape, generator=g, dtype=torch.long)
                excl = [x for x in s.get("exclude") or [] if x < high]
                if excl:
                    # keep multimodal placeholder / special ids out of random text
                    safe = high // 2
                    while safe in excl and safe < high - 1:
                        safe += 1
                    t[torch.isin(t, torch.tensor(excl, dtype=torch.long))] = safe
            elif fill == "bbox":
                a = torch.randint(0, 500, shape[:-1] + (2,), generator=g)
                bb = torch.randint(0, 500, shape[:-1] + (2,), generator=g)
                lo, hi = torch.minimum(a, bb), torch.maximum(a, bb)
                t = torch.cat([lo, hi], dim=-1)[..., [0, 1, 2, 3]].long()
            elif fill == "ones":
                t = torch.ones(shape, dtype=torch.long)
            elif fill == "rows":
                t = torch.tensor(s["row"], dtype=torch.long).expand(shape).clone()
            else:
                t = torch.zeros(shape, dtype=torch.long)
        else:
            if fill == "randn":
                t = torch.randn(shape, generator=g, dtype=torch.float32)
            elif fill == "ones":
                t = torch.ones(shape, dtype=torch.float32)
            else:
                t = torch.zeros(shape, dtype=torch.float32)
            t = t.to(float_dtype)
        out[s["name"]] = t.to(device)
    return out


def _text_hidden_size(config):
    for c in (getattr(config, "text_config", None), config):
        v = getattr(c, "hidden_size", None) if c is not None else None
        if isinstance(v, int):
            return v
    return None


PLACEHOLDERS = (
    # (token id attributes, tower input, feature method)
    (("image_token_id", "image_token_index"), "pixel_values", "get_image_features"),
    (("audio_token_id", "audio_token_index"), "input_features", "get_audio_features"),
)


def fit_placeholder_tokens(torch, model, inputs, config):
    notes = []
    for tok_names, tower_input, method in PLACEHOLDERS:
        note = fit_tokens(torch, model, inputs, config, tok_names, tower_input, method)
        if note:
            notes.append(note)
    return "; ".join(notes)


def fit_tokens(torch, model, inputs, config, tok_names, tower_input, method):
    """Put as many placeholder tokens in input_ids as the image/audio tower yields features.

    Vision/audio-language models (llava style) replace each placeholder token
    of input_ids by one feature vector and check the counts match.  The count
    is measured with the model's own get_image_features()/get_audio_features().
    Returns a note (str) on what was done or why not, None when not relevant.
    """
    tok = None
    for c in (config, getattr(config, "text_config", None)):
        for n in tok_names:
            v = getattr(c, n, None) if c is not None else None
            if isinstance(v, int) and v >= 0:
                tok = v
                break
        if tok is not None:
            break
    if tok is None or tower_input not in inputs or not isinstance(inputs.get("input_ids"), torch.Tensor):
        return None
    fn = getattr(model, method, None)
    if fn is None:
        fn = getattr(getattr(model, "model", None), method, None)
    if fn is None:
        return f"no {method}(); placeholder tokens not inserted"
    import inspect
    try:
        names = set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        names = set()
    kw = {k: v for k, v in inputs.items() if k in names and k not in (tower_input, "input_ids")}
    if "return_dict" in names:
        kw["return_dict"] = True
    with torch.inference_mode():
        feats = fn(**{tower_input: inputs[tower_input]}, **kw)
    if hasattr(feats, "pooler_output") and getattr(feats, "pooler_output", None) is not None:
        feats = feats.pooler_output
    elif hasattr(feats, "last_hidden_state") and not isinstance(feats, torch.Tensor):
        return f"{method}() returned no pooler_output; placeholder tokens not inserted"
    tensors = [feats] if isinstance(feats, torch.Tensor) else [t for t in feats if isinstance(t, torch.Tensor)]
    total = sum(t.numel() for t in tensors)
    hidden = _text_hidden_size(config)
    ids = inputs["input_ids"]
    b = ids.shape[0]
    if not total or not hidden or total % (hidden * b):
        return f"cannot split {total} {method} values into {b} x hidden {hidden}"
    per = total // (hidden * b)
    img = torch.full((b, per), tok, dtype=ids.dtype, device=ids.device)
    inputs["input_ids"] = torch.cat([img, ids], dim=1)
    am = inputs.get("attention_mask")
    if isinstance(am, torch.Tensor) and am.shape == ids.shape:
        inputs["attention_mask"] = torch.cat([torch.ones_like(img, dtype=am.dtype), am], dim=1)
    return f"inserted {per} placeholder tokens (id {tok}) per sample for {tower_input}"


# "Image features and image tokens do not match: tokens: 0, features 1176"
# and its older spellings: the model says how many placeholders it needs.
MISMATCH = re.compile(r"(image|video|audio) features and \1 tokens do not match[^0-9]*tokens:?\s*(\d+),?\s*"
                      r"features:?\s*(\d+)", re.I)
MISMATCH_TOKENS = {"image": ("image_token_id", "image_token_index"),
                   "video": ("video_token_id", "video_token_index"),
                   "audio": ("audio_token_id", "audio_token_index")}


def forward_fitting_placeholders(torch, model, inputs, tries=3):
    """model(**inputs); when the model reports that its image/video/audio
    placeholder tokens do not match the features (llava-style models whose
    feature count depends on tiling or packing), put the count it names in
    input_ids and run again.  inputs is updated in place."""
    for attempt in range(tries):
        try:
            return model(**inputs)
        except ValueError as exc:
            m = MISMATCH.search(str(exc))
            ids = inputs.get("input_ids")
            if not m or attempt == tries - 1 or not isinstance(ids, torch.Tensor):
                raise
            kind, have, need = m.group(1).lower(), int(m.group(2)), int(m.group(3))
            tok = None
            for c in (model.config, getattr(model.config, "text_config", None)):
                for n in MISMATCH_TOKENS[kind]:
                    v = getattr(c, n, None) if c is not None else None
                    if isinstance(v, int) and v >= 0 and tok is None:
                        tok = v
            b = ids.shape[0]
            if tok is None or need % b:
                raise
            keep = ids[ids != tok].view(b, -1) if have % b == 0 else ids
            head = torch.full((b, need // b), tok, dtype=ids.dtype, device=ids.device)
            inputs["input_ids"] = torch.cat([head, keep], dim=1)
            am = inputs.get("attention_mask")
            if isinstance(am, torch.Tensor) and am.dim() == 2:
                inputs["attention_mask"] = torch.ones_like(inputs["input_ids"], dtype=am.dtype)
            log(f"the model asked for {need} {kind} placeholder tokens (had {have}); running again with them")


GEN_NEW_TOKENS = 32
GEN_REPEATS = 3
GEN_DROP = ("use_cache", "return_dict", "decoder_input_ids", "decoder_attention_mask", "labels")


POSITION_EMBEDDING_NAME = re.compile(r"(^|_)(wpe|pos|position|positions|positional)(_|$)|position_embed|embed_positions")


def position_id_offset(model):
    """How many of the learned positions a model keeps below its first token.

    RoBERTa-style embeddings number positions from padding_idx + 1 (the
    default RobertaConfig has 512 positions and pad 1: 510 tokens fit);
    indexing past the table trips a device-side assertion."""
    for _, m in model.named_modules():
        pad = getattr(m, "padding_idx", None)
        if hasattr(m, "create_position_ids_from_input_ids") and isinstance(pad, int) and pad >= 0:
            return pad + 1
    return 0


def learned_position_limit(torch, model):
    """The config's position limit when the model learns absolute position
    embeddings (an nn.Embedding named like GPT-2's wpe or BERT's
    position_embeddings), else None: rotary and relative positions have none."""
    learned = any(isinstance(m, torch.nn.Embedding) and POSITION_EMBEDDING_NAME.search(name.rsplit(".", 1)[-1])
                  for name, m in model.named_modules())
    if not learned:
        return None
    cfg = getattr(model, "config", None)
    for c in (getattr(cfg, "text_config", None), cfg):
        for key in ("max_position_embeddings", "n_positions"):
            v = getattr(c, key, None) if c is not None else None
            if isinstance(v, int) and v > 0:
                return v
    return None


def measure_generation(torch, model, inputs, device, batch, deadline):
    """Time to first token and tokens/s of greedy generation, or a reason (str) why not.

    TTFT is the time of generate(max_new_tokens=1) (prefill and one token);
    the full run makes exactly GEN_NEW_TOKENS tokens (min = max, so random
    weights cannot stop early at an end-of-sequence token).  Decode tokens/s
    counts the tokens after the first over the time after the first.  Each
    is the median of GEN_REPEATS runs, timed between device synchronisations.
    """
    can = getattr(model, "can_generate", None)
    try:
        if can is None or not can():
            return f"{type(model).__name__} does not generate"
    except Exception as exc:  # noqa: BLE001
        return f"can_generate() failed: {lib.exception_reason(exc)}"
    kw = {k: v for k, v in inputs.items() if k not in GEN_DROP}
    if "input_ids" not in kw and "input_features" not in kw and "pixel_values" not in kw:
        return "no prompt input to generate from"
    cfg = getattr(model, "config", None)
    ids = kw.get("input_ids")
    if isinstance(ids, torch.Tensor) and not getattr(cfg, "is_encoder_decoder", False):
        why = lib.generation_room_reason(int(ids.shape[-1]), learned_position_limit(torch, model), GEN_NEW_TOKENS)
        if why:
            return why
    gc_ = getattr(model, "generation_config", None)
    if gc_ is not None and getattr(gc_, "pad_token_id", None) is None:
        eos = getattr(gc_, "eos_token_id", None)
        gc_.pad_token_id = (eos[0] if isinstance(eos, (list, tuple)) and eos else eos) or 0
    if (gc_ is not None and getattr(cfg, "is_encoder_decoder", False)
            and getattr(gc_, "decoder_start_token_id", None) is None and getattr(gc_, "bos_token_id", None) is None):
        # T5-style defaults leave both unset (checkpoints set them); the decoder
        # starts from the pad token, as T5 was trained.
        start = getattr(cfg, "decoder_start_token_id", None)
        gc_.decoder_start_token_id = start if start is not None else (gc_.pad_token_id or 0)

    def run(n):
        synchronize(torch, device)
        t = time.perf_counter()
        out = model.generate(**kw, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        synchronize(torch, device)
        return time.perf_counter() - t, out

    try:
        run(2)   # warm-up: kernels, caches
        first = []
        full = []
        out = None
        for _ in range(GEN_REPEATS):
            if first and time.perf_counter() > deadline:
                break
            first.append(run(1)[0])
            dt, out = run(GEN_NEW_TOKENS)
            full.append(dt)
    except Exception as exc:  # noqa: BLE001 - the forward pass passed; generation is reported, not failed
        return f"generate() failed: {lib.exception_reason(exc)}"
    ttft = lib.percentile(first, 50)
    total = lib.percentile(full, 50)
    seqs = out.sequences if hasattr(out, "sequences") else out
    m = {"ttft_ms": ttft * 1000.0, "generate_ms": total * 1000.0, "gen_new_tokens": GEN_NEW_TOKENS,
         "gen_repeats": len(full),
         "tokens_per_s": batch * GEN_NEW_TOKENS / total if total > 0 else None,
         "decode_tokens_per_s": batch * (GEN_NEW_TOKENS - 1) / (total - ttft) if total > ttft else None}
    if isinstance(seqs, torch.Tensor):
        m["gen_output_len"] = int(seqs.shape[-1])
    return m


def describe_plan(plan):
    return {s["name"]: s["shape"] for s in plan if s["fill"] != "value"}


def output_entries(torch, output):
    entries = []
    for name, t in lib.walk_outputs(output, lambda x: isinstance(x, torch.Tensor)):
        is_float = bool(t.is_floating_point() or t.is_complex())
        finite = None
        kinds = []
        if is_float and t.numel():
            finite = bool(torch.isfinite(t).all().item())
            if not finite:
                if bool(torch.isnan(t).any().item()):
                    kinds.append("nan")
                if not t.is_complex():
                    if bool(torch.isposinf(t).any().item()):
                        kinds.append("+inf")
                    if bool(torch.isneginf(t).any().item()):
                        kinds.append("-inf")
        e = {"name": name, "shape": list(t.shape), "is_float": is_float, "finite": finite}
        if kinds:
            e["non_finite_kinds"] = kinds
            e["some_finite"] = bool(torch.isfinite(t).any().item())
        entries.append(e)
    return entries


# --------------------------------------------------------------------------
# one attempt: (build|load) -> device -> forward -> check [-> benchmark loop]

class Attempt:
    def __init__(self, source):
        self.source = source   # "pretrained" | "shrunk" | "default"
        self.metrics = {}
        self.outputs = {}
        self.status = None
        self.reason = ""


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


def build_on_device(torch, device, make_model):
    """A random-init model built directly on a CUDA device -> (model, where).

    Random initialisation is most of a model's construction, and on the CPU
    it is slow (a few seconds for 100 M parameters, while the GPU does it in
    milliseconds) and takes the cores other slots need.  A model whose
    construction cannot run on the device (it builds something with numpy,
    or a CPU-only operation) is built on the CPU instead, as before; the
    caller moves the model to the device either way.  HFLEET_BUILD_ON_CPU=1
    builds every model on the CPU (to compare)."""
    if device.type != "cuda" or os.environ.get("HFLEET_BUILD_ON_CPU", "") not in ("", "0"):
        return make_model(), "cpu"
    try:
        with torch.device(device):
            return make_model(), "device"
    except Exception as exc:  # noqa: BLE001 - the CPU build below says what fails for real
        if _is_fatal_device_error(exc):
            raise
        why = f"{type(exc).__name__}: {lib.one_line(exc, 200)}"
        log(f"building on {device} failed ({why}); building on the cpu")
        _free(torch, device)
        torch.manual_seed(0)
        return make_model(), "cpu (the build on the device failed: " + why + ")"


def _free(torch, device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_attempt(ctx, source, make_model):
    torch, device, dtype, task = ctx["torch"], ctx["device"], ctx["dtype"], ctx["task"]
    att = Attempt(source)
    bench = task["kind"] == "benchmark"
    n_dev = ctx.get("n_devices", 1)
    if device.type == "cuda":
        multi_mod.reset_peak_memory(torch, n_dev)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    if source == "pretrained":
        model = make_model()
    elif n_dev > 1:
        # Split below: built on the CPU, as device_map="auto" builds it.
        model, att.outputs["built_on"] = make_model(), "cpu"
    else:
        model, att.outputs["built_on"] = build_on_device(torch, device, make_model)
    if source == "shrunk":
        n = adapt_mrope_sections(torch, model)
        if n:
            log(f"fitted mrope_section of {n} rotary modules to the shrunk head size")
    model.eval()
    if n_dev > 1:
        model.to(dtype=dtype)
        try:
            device_map = multi_mod.dispatch(torch, model, n_dev, dtype, log=log)
        except multi_mod.SplitError as exc:
            raise Unsupported(str(exc)) from exc
        att.outputs["device_map"] = multi_mod.describe_device_map(device_map)
        att.metrics["devices"] = n_dev
    else:
        model.to(device=device, dtype=dtype)
    # Counted before quantization: int8 Linear weights are packed buffers, not parameters.
    att.metrics["param_count"] = param_count(model)
    if task["precision"] == "int8":
        model, n_int8 = quantize_int8(torch, model, device)
        # Only nn.Linear converts: GPT-2 style Conv1D projections stay fp32.
        att.metrics["int8_layers"] = n_int8
        att.outputs["quantization"] = (f"dynamic int8 (torch.ao.quantization.quantize_dynamic) of {n_int8} "
                                       f"nn.Linear layers; other layers fp32")
    synchronize(torch, device)
    att.metrics["load_time_s"] = time.perf_counter() - t0
    att.outputs["model_class"] = type(model).__name__
    att.outputs["config_source"] = source
    log(f"{source}: built {type(model).__name__} with {att.metrics['param_count']} parameters "
        f"in {att.metrics['load_time_s']:.2f}s on {device} ({task['precision']})")

    if bench:
        batch, seq = task["batch_size"], task["seq_len"]
    else:
        batch = min(task["batch_size"], lib.TEST_BATCH_CAP)
        seq = min(task["seq_len"], lib.TEST_SEQ_LEN_CAP)
    recipe = recipes.get(task["model_type"])
    if recipe is not None and recipe.submodel is not None:
        model, why = recipe.submodel(model)
        att.outputs["submodel"] = type(model).__name__
        log(why)
    provided = recipe.provides if recipe is not None else ()
    params, accepts_kwargs = lib.forward_params(model.forward)
    facts = config_facts(model.config)
    offset = position_id_offset(model)
    if offset and facts.get("max_positions"):
        facts["max_positions"] -= offset
    tower = getattr(model, "vision_tower", None) or getattr(getattr(model, "model", None), "vision_tower", None)
    if tower is not None and hasattr(tower, "forward"):
        try:
            facts["vision_takes_image_sizes"] = "image_sizes" in lib.forward_params(tower.forward)[0]
        except (TypeError, ValueError):
            pass
    plan = lib.plan_inputs(facts, params, task["modality"], batch, seq, accepts_kwargs, provided=provided)
    inputs = materialize(torch, plan, device, dtype)
    if recipe is not None and recipe.inputs is not None:
        rc = recipes.Ctx(torch, model, model.config, inputs, batch, seq, device, dtype, params=params)
        recipe.inputs(rc)
        inputs = rc.inputs
        att.outputs["recipe"] = task["model_type"]
    note = None
    if recipe is None or not recipe.own_tokens:
        try:
            note = fit_placeholder_tokens(torch, model, inputs, model.config)
        except Exception as exc:  # noqa: BLE001 - the forward below reports the real problem
            note = f"counting image/audio features failed: {type(exc).__name__}: {exc}"
    if note:
        log(note)

    with torch.inference_mode():
        synchronize(torch, device)
        t1 = time.perf_counter()
        out = forward_fitting_placeholders(torch, model, inputs)
        att.outputs["inputs"] = {k: list(v.shape) for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        synchronize(torch, device)
        att.metrics["forward_time_s"] = time.perf_counter() - t1
        entries = output_entries(torch, out)
        del out
        if bench:
            deadline = ctx["start"] + 0.85 * float(task["timeout_s"])

            plan = bench_mod.Plan(task["warmup"], task["iterations"], batch, deadline, ctx["noise"])
            mode = modes_mod.task_mode(task)
            if n_dev > 1 and mode == "cuda-graph":
                figures, notes, skip = {"mode": mode}, {}, (
                    f"cuda-graph is not measured for a model split across {n_dev} devices "
                    f"(its activations move between devices at every block)")
            else:
                figures, notes, skip = modes_mod.measure_mode(
                    torch, model, inputs, device, mode, plan, bench_mod, lambda: synchronize(torch, device),
                    energy=ctx.get("energy"), log=log, environ=os.environ)
            att.metrics.update(figures)
            if skip:
                att.status, att.reason = "skipped", skip
            if ctx.get("energy") is None and ctx.get("energy_absent"):
                notes.setdefault("energy", "not measured: " + ctx["energy_absent"])
            att.outputs.update(notes)
            att.metrics["batch_size"] = batch
            # The token sequence that ran: the planner caps it at the model's
            # positions, and inputs without tokens have none.
            ids = inputs.get("input_ids")
            ran = int(ids.shape[-1]) if isinstance(ids, torch.Tensor) and ids.dim() >= 2 else None
            att.metrics["seq_len"] = ran
            if ran is not None and ran != seq:
                att.metrics["seq_len_requested"] = seq
                why = ("capped at the model's position limit" if ran < seq
                       else "image or audio placeholder tokens included")
                att.outputs["seq_len"] = f"ran {ran} tokens for the {seq} asked ({why})"
            if mode != "eager":
                att.outputs["generation"] = f"not timed in mode {mode} (generation runs eager)"
            elif deadline - time.perf_counter() > 0:
                gen = measure_generation(torch, model, inputs, device, batch, deadline)
                if isinstance(gen, str):
                    att.outputs["generation"] = gen
                    log(f"generation not timed: {gen}")
                else:
                    att.metrics.update(gen)

    if device.type == "cuda" and n_dev > 1:
        per_device = multi_mod.peak_memory(torch, n_dev)
        att.metrics["peak_memory_bytes"] = sum(per_device)
        att.outputs["per_device_peak_memory_bytes"] = per_device
    elif device.type == "cuda":
        att.metrics["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated())
    elif bench:
        att.metrics["peak_memory_bytes"] = None

    ok, problems, shapes, finite = lib.check_outputs(entries, batch)
    att.outputs["shapes"] = shapes
    att.outputs["finite"] = finite
    if not ok:
        att.status, att.reason = "failed", "; ".join(problems)
    elif att.status != "skipped":   # a benchmark mode that could not be set up keeps its reason
        att.status, att.reason = "passed", ""
    if ok and source == "pretrained" and ctx.get("known_answer"):
        transformers, weights = ctx["known_answer"]
        answered, detail = known_answer(torch, transformers, model, weights, task.get("task"), device)
        att.outputs["known_answer"] = detail
        log(f"known answer: {detail}")
        if answered is False:
            att.status, att.reason = "failed", "known-answer check " + detail
    del model, inputs
    _free(torch, device)
    return att


def environment_skip_reason(exc):
    """Reason to answer 'skipped' when an exception is the environment's doing, else None.

    A missing optional package (ImportError, e.g. detectron2 for layoutlmv2)
    or a file that only the Hub has (the runner is offline) is not the
    model's fault.
    """
    msg = str(exc)
    if isinstance(exc, ImportError):
        return lib.exception_reason(exc, "missing Python package in " + sys.executable)
    offline_marks = ("couldn't connect to", "LocalEntryNotFound", "offline mode", "HF_HUB_OFFLINE",
                     "not cached locally", "outgoing traffic has been disabled")
    if isinstance(exc, OSError) or type(exc).__name__.endswith("EntryNotFoundError"):
        if any(m in msg for m in offline_marks) or "EntryNotFound" in type(exc).__name__:
            return lib.exception_reason(exc, "needs files from the Hugging Face Hub that are not in the local cache "
                                             "(the runner is offline)")
    return None


def _is_fatal_device_error(exc) -> bool:
    """Not worth a retry in this process: the device may be poisoned."""
    return lib.classify_device_error(str(exc)) is not None


# --------------------------------------------------------------------------
# serve mode: between tasks

def device_still_usable() -> bool:
    """Whether the CUDA/HIP context of this process still runs a tiny kernel.

    True when torch was never imported or never initialised CUDA (nothing
    can be poisoned then).  After a device-side assert or an illegal memory
    access every call fails, so this is the check of last resort.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return True
    try:
        if not torch.cuda.is_initialized():
            return True
    except Exception:  # noqa: BLE001 - a torch without cuda
        return True
    try:
        x = torch.ones(16, device="cuda")
        ok = float((x * 2).sum().item()) == 32.0
        torch.cuda.synchronize()
        return ok
    except Exception as exc:  # noqa: BLE001
        log(f"the device no longer runs a tiny operation: {type(exc).__name__}: {lib.one_line(exc, 200)}")
        return False


def release_memory() -> None:
    """Give back what the last task left: Python garbage, then the CUDA cache."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()
    except Exception as exc:  # noqa: BLE001 - the device check decides what that means
        log(f"could not empty the CUDA cache: {type(exc).__name__}: {lib.one_line(exc, 200)}")
    try:
        mps = getattr(torch, "mps", None)
        if mps is not None and torch.backends.mps.is_available():
            mps.empty_cache()
    except Exception:  # noqa: BLE001
        pass


def set_cpu_threads(torch, task) -> int:
    """Gives torch the CPU threads this task may use; returns the number.

    A CPU benchmark has the CPU to itself (a benchmark always has its device
    alone), so it gets every core this process may run on; any other task
    gets the share hf-worker gives each slot (OMP_NUM_THREADS), so that many
    slots do not oversubscribe the cores.  The number goes into the
    result's env: a CPU figure means little without it."""
    if task["backend"] == "cpu" and task["kind"] == "benchmark":
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    else:
        n = lib.threads_from_env(os.environ)
    if n and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return int(torch.get_num_threads())


def run_task(task: dict) -> dict:
    """Run one parsed task; always returns a result dict (never raises except BaseException)."""
    set_offline_env()
    env = base_env()
    start = time.perf_counter()

    reason = lib.backend_precheck(task["backend"])
    if reason:
        return lib.make_result("skipped", reason, env=env)
    reason = lib.precision_skip_reason(task["backend"], task["precision"])
    if reason:
        return lib.make_result("skipped", reason, env=env)
    try:
        reason = modes_mod.precheck_skip_reason(modes_mod.task_mode(task), task["backend"], task["kind"])
    except modes_mod.ModeError as exc:
        return lib.make_result("error", str(exc), env=env)
    if reason:
        return lib.make_result("skipped", reason, metrics={"mode": modes_mod.task_mode(task)}, env=env)

    try:
        import torch
    except ImportError as exc:
        return lib.make_result(
            "skipped",
            f"torch is not installed in {sys.executable} (install python3-torch or point runner_python "
            f"at a Python with torch): {exc}", env=env)
    except Exception as exc:  # noqa: BLE001 - a broken install is not the model's fault
        return lib.make_result("skipped", lib.exception_reason(exc, f"torch failed to import in {sys.executable}"), env=env)
    env["torch"] = str(torch.__version__)
    env["torch_cuda"] = getattr(torch.version, "cuda", None)
    env["torch_hip"] = getattr(torch.version, "hip", None)
    env["cuda_version"] = env["torch_cuda"]
    env["rocm_version"] = env["torch_hip"]
    try:
        import transformers
    except ImportError as exc:
        return lib.make_result(
            "skipped",
            f"transformers is not installed in {sys.executable} (install transformers or point runner_python "
            f"at a Python with it): {exc}", env=env)
    except Exception as exc:  # noqa: BLE001
        return lib.make_result("skipped", lib.exception_reason(exc, f"transformers failed to import in {sys.executable}"), env=env)
    env["transformers"] = str(transformers.__version__)
    try:
        transformers.logging.set_verbosity_error()
    except Exception:  # noqa: BLE001
        pass
    # A model type this transformers lacks (older than the registry, or one
    # that dropped it): skipped before anything is built, with the reason.
    try:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    except Exception:  # noqa: BLE001 - a layout without it: the build path says what fails
        CONFIG_MAPPING_NAMES = None
    if CONFIG_MAPPING_NAMES is not None:
        reason = lib.missing_model_type_reason(task["model_type"], transformers.__version__, CONFIG_MAPPING_NAMES)
        if reason:
            return lib.make_result("skipped", reason, env=env)

    try:
        device, env["device_name"] = resolve_device(torch, task["backend"])
        dtype = resolve_dtype(torch, device, task["precision"])
    except Skip as exc:
        return lib.make_result("skipped", str(exc), env=env)
    # What the worker made visible, and what torch sees through it: proof
    # that the task ran on exactly the device it was given.
    for var in ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HFLEET_DEVICE_UUID"):
        if os.environ.get(var) is not None:
            env[var.lower()] = os.environ[var]
    torch_uuid = None
    if task["backend"] in ("cuda", "rocm"):
        try:
            env["torch_device_count"] = int(torch.cuda.device_count())
            props = torch.cuda.get_device_properties(0)
            uuid = getattr(props, "uuid", None)
            if uuid is not None:
                torch_uuid = "GPU-" + str(uuid)
                env["torch_device_uuid"] = torch_uuid
            env["device_memory_bytes"] = int(props.total_memory)
        except Exception:  # noqa: BLE001 - informational only
            pass
        given = os.environ.get("HFLEET_DEVICE_UUID")
        if torch_uuid or given:
            env["device_uuid"] = torch_uuid or given.split(",")[0]

    env["cpu_threads"] = set_cpu_threads(torch, task)
    ctx = {"torch": torch, "device": device, "dtype": dtype, "task": task, "start": start,
           "n_devices": multi_mod.task_device_count(torch, task["backend"])}
    if task["backend"] == "cuda":
        nvml, why = nvml_mod.open_nvml()
        version = nvml_mod.driver_version(nvml)
        if version:
            env["driver_version"] = version
        if task["kind"] == "benchmark":
            uuid, why_uuid = bench_mod.task_device_uuid(os.environ.get("HFLEET_DEVICE_UUID"), torch_uuid)
            if ctx["n_devices"] > 1:
                ctx["energy_absent"] = (f"the task runs on {ctx['n_devices']} devices and the runner reads "
                                        f"one device's energy counter (a figure of one would undercount)")
            elif nvml is None:
                ctx["energy_absent"] = why
            elif uuid is None:
                ctx["energy_absent"] = why_uuid
            else:
                ctx["energy"], ctx["energy_absent"] = nvml_mod.energy_counter(nvml, uuid)
    elif task["kind"] == "benchmark":
        ctx["energy_absent"] = f"the {task['backend']} backend has no energy counter this runner reads"
    ctx["noise"] = bench_mod.DEFAULT_NOISE_THRESHOLD
    if task["kind"] == "benchmark":
        try:
            ctx["noise"] = bench_mod.noise_threshold(os.environ)
        except ValueError as exc:
            return lib.make_result("error", f"invalid setting: {exc}", env=env)
    seq_for_config = task["seq_len"] if task["kind"] == "benchmark" else min(task["seq_len"], lib.TEST_SEQ_LEN_CAP)

    def finish(att, weights):
        return lib.make_result(att.status, att.reason, weights=weights, metrics=att.metrics,
                               env=env, outputs=att.outputs)

    # 1. pretrained weights, when a weights directory or the local cache has them
    found = pretrained_source(task.get("hf_id"))
    if found:
        source, where = found
        log(f"pretrained weights of {task['hf_id']} found in the {where}")
        # A test whose task has a known answer loads the task's head to ask it.
        check = task["kind"] == "test" and lib.known_answer_spec(task.get("task")) is not None
        ctx["known_answer"] = (transformers, source) if check else None
        head_first = "always" if check else task["kind"] == "benchmark"
        try:
            att = run_attempt(ctx, "pretrained",
                              lambda: load_pretrained(transformers, torch, source, task.get("task"), dtype,
                                                      head_first=head_first))
            att.outputs["weights_source"] = where
            return finish(att, "pretrained")
        except Unsupported as exc:
            return lib.make_result("skipped", str(exc), weights="pretrained", env=env)
        except lib.PlanError as exc:
            return lib.make_result("skipped", f"inputs not supported by this runner version: {exc}",
                                   weights="pretrained", env=env)
        except Exception as exc:  # noqa: BLE001
            skip = environment_skip_reason(exc)
            if skip:
                return lib.make_result("skipped", skip, weights="pretrained", env=env)
            return lib.make_result("error", lib.exception_reason(exc, "pretrained model"), weights="pretrained",
                                   env=env, traceback_text=traceback.format_exc())

    # 2. random init from config: shrunk first, then the default if it is not huge
    weights = "random-init"
    try:
        default_cfg, small_cfg, changes, shrink_exc = default_and_shrunk_configs(transformers, task["model_type"], seq_for_config)
    except Unsupported as exc:
        return lib.make_result("skipped", str(exc), weights=weights, env=env)
    except Exception as exc:  # noqa: BLE001
        skip = environment_skip_reason(exc)
        if skip:
            return lib.make_result("skipped", skip, weights=weights, env=env)
        return lib.make_result("error", lib.exception_reason(exc, f"building the default config of {task['model_type']}"),
                               weights=weights, env=env, traceback_text=traceback.format_exc())
    if changes:
        log(f"shrunk config ({len(changes)} changes): " + ", ".join(changes[:40]))

    # A benchmark measures the real architecture: the default config at full
    # size (random weights), never the shrunk toy used for tests.
    benchmark = task["kind"] == "benchmark"
    param_limit = lib.max_benchmark_params() if benchmark else lib.MAX_DEFAULT_PARAMS
    if benchmark:
        small_cfg, shrink_exc = None, None

    first_error = None
    first_tb = None
    if small_cfg is not None:
        try:
            att = run_attempt(ctx, "shrunk", lambda: build_from_config(transformers, small_cfg, task.get("task"), head_first=benchmark))
            return finish(att, weights)
        except Unsupported as exc:
            return lib.make_result("skipped", str(exc), weights=weights, env=env)
        except lib.PlanError as exc:
            return lib.make_result("skipped", f"inputs not supported by this runner version: {exc}",
                                   weights=weights, env=env)
        except Exception as exc:  # noqa: BLE001
            skip = environment_skip_reason(exc)
            if skip:
                return lib.make_result("skipped", skip, weights=weights, env=env)
            first_error, first_tb = exc, traceback.format_exc()
            log(f"shrunk config failed: {type(exc).__name__}: {exc}")
            if _is_fatal_device_error(exc):
                return lib.make_result("error", lib.exception_reason(exc, "shrunk config (fatal device error, not retried)"),
                                       weights=weights, env=env, traceback_text=first_tb)
            _free(torch, device)
    else:
        first_error = shrink_exc
        first_tb = "".join(traceback.format_exception(shrink_exc)) if shrink_exc else None

    # retry with the unshrunk default config, if it is not huge
    try:
        meta_model = build_from_config(transformers, default_cfg, task.get("task"), meta=True, torch=torch)
        n_params = param_count(meta_model)
        del meta_model
    except Exception as exc:  # noqa: BLE001
        log(f"meta-device build of the default config failed ({type(exc).__name__}: {exc}); using a dict estimate")
        n_params = lib.estimate_params_from_dict(default_cfg.to_dict())
    prefix = f"shrunk config failed ({lib.exception_reason(first_error, '')[:300]}); " if first_error else ""
    if n_params > param_limit:
        if benchmark:
            return lib.make_result(
                "skipped",
                f"default config of {task['model_type']} has {n_params / 1e9:.2f}B parameters, over the "
                f"benchmark limit of {param_limit / 1e9:.1f}B (HFLEET_MAX_BENCHMARK_PARAMS); cache its "
                f"pretrained weights or raise the limit", weights=weights, env=env)
        return lib.make_result(
            "error",
            f"{prefix}default config of {task['model_type']} has {n_params / 1e9:.2f}B parameters "
            f"(> {param_limit / 1e9:.1f}B limit), not retried",
            weights=weights, env=env, traceback_text=first_tb)
    try:
        att = run_attempt(ctx, "default", lambda: build_from_config(transformers, default_cfg, task.get("task"), head_first=benchmark))
        if att.status == "passed":
            return finish(att, weights)
        att.reason = prefix + att.reason
        return finish(att, weights)
    except Unsupported as exc:
        return lib.make_result("skipped", str(exc), weights=weights, env=env)
    except lib.PlanError as exc:
        return lib.make_result("skipped", f"inputs not supported by this runner version: {exc}",
                               weights=weights, env=env)
    except Exception as exc:  # noqa: BLE001
        skip = environment_skip_reason(exc)
        if skip:
            return lib.make_result("skipped", skip, weights=weights, env=env)
        tb = traceback.format_exc()
        if first_tb:
            tb = lib.tail_lines(first_tb, 18) + "\n--- retry with the default config ---\n" + lib.tail_lines(tb, 20)
        return lib.make_result("error", prefix + lib.exception_reason(exc, "default config"),
                               weights=weights, env=env, traceback_text=tb)
