"""Pure helpers of the hfleet reference runner (stdlib only).

Nothing in this module imports torch, transformers or any other third-party
package, so everything here can be unit-tested on a machine without them
(see test_runner_pure.py).  The parts that need torch live in
hfleet_runner_torch.py and call into these helpers.

Contents:
  * task parsing / validation             -> parse_task
  * result building / validation / atomic write -> make_result, validate_result,
                                             write_result_atomic (bounds the benchmark keys
                                             and the worker's 64 KiB per object)
  * statistics                            -> percentile, latency_summary
  * config shrinking on plain dicts       -> shrink_config_dict
  * rough parameter estimate on dicts     -> estimate_params_from_dict
  * input planning                        -> plan_inputs
  * output checking                       -> walk_outputs, check_outputs
  * backend / precision gating            -> backend_precheck, precision_skip_reason
  * pretrained weights, known answers     -> weights_dir_path, check_known_answer
  * serve mode (warm runner protocol)     -> parse_serve_request, control_done_line,
                                             control_error_line, classify_device_error,
                                             parse_vmrss
"""

from __future__ import annotations

import json
import math
import os
import re
import sys

# hfleet's version (meson.build's project version, which hf-worker reports
# as its software version): a result's env.runner_version says which
# release's runner measured it.  test_runner_bench.py checks they agree.
RUNNER_VERSION = "0.1.0"

STATUSES = ("passed", "failed", "error", "skipped")
WEIGHTS = ("pretrained", "random-init", None)
KINDS = ("test", "benchmark")
BACKENDS = ("cpu", "cuda", "rocm", "mps", "openvino", "qnn")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
FAMILIES = (
    "encoder-only", "decoder-only", "encoder-decoder", "vision", "vision-text",
    "speech", "multimodal", "diffusion", "mixture-of-experts", "state-space", "rag",
)
MODALITIES = (
    "text", "image", "audio", "video", "image+text", "audio+text", "video+text",
    "time-series", "image+text+audio",
)

# The transformers version the registry (coordinator/registry/models.tsv, its
# "# transformers X.Y" line) was built from; test_runner_pure.py keeps the two
# equal.  A task whose model type the installed transformers lacks is skipped
# with the reason missing_model_type_reason() gives.
REGISTRY_TRANSFORMERS = "5.17"

# Backends this runner version can execute; the rest are answered 'skipped'.
SUPPORTED_BACKENDS = ("cpu", "cuda", "rocm", "mps")

# Test kind: small inputs.  (Benchmarks use the task's batch_size and seq_len.)
TEST_SEQ_LEN_CAP = 32
TEST_BATCH_CAP = 4
# Decoder length used for encoder-decoder models (decoder_input_ids).
DECODER_SEQ_LEN_CAP = 16

# Refuse to build an unshrunk default config above this many parameters.
MAX_DEFAULT_PARAMS = 1_500_000_000
# A test's shallow config (depth and experts cut, widths kept) may be larger
# than its narrow one: embeddings of a wide model stay.  fp32 on the device,
# 4 B parameters take 16 GB.
MAX_SHALLOW_PARAMS = 4_000_000_000

# Benchmarks build the default config at full size.  Without a limit in the
# environment (HFLEET_MAX_BENCHMARK_PARAMS) the limit is what fits the task's
# devices: weights may take this share of their memory, the rest is left to
# activations and the allocator.  A device of unknown memory (CPU) takes the
# fixed default.
DEFAULT_MAX_BENCHMARK_PARAMS = 8_000_000_000
BENCHMARK_WEIGHT_SHARE = 0.8


def threads_from_env(environ):
    """OMP_NUM_THREADS (hf-worker's share of the cores for each slot) as a
    positive int, or None (unset or not a number)."""
    try:
        n = int(environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return n if n > 0 else None


def max_benchmark_params(device_bytes=None, bytes_per_param=2):
    """-> (limit, where it comes from): the environment's, else what fits
    device_bytes (the memory of the task's devices together) at
    bytes_per_param, else the fixed default."""
    raw = os.environ.get("HFLEET_MAX_BENCHMARK_PARAMS", "")
    try:
        v = int(float(raw)) if raw else 0
    except ValueError:
        v = 0
    if v > 0:
        return v, "HFLEET_MAX_BENCHMARK_PARAMS"
    if device_bytes:
        return (int(device_bytes * BENCHMARK_WEIGHT_SHARE / max(bytes_per_param, 1)),
                f"{BENCHMARK_WEIGHT_SHARE:.0%} of the device memory, {device_bytes / 2**30:.1f} GiB, "
                f"at {bytes_per_param} bytes a parameter")
    return DEFAULT_MAX_BENCHMARK_PARAMS, "the default for a device of unknown memory"

TRACEBACK_LINES = 40
REASON_MAX_CHARS = 600
MAX_OUTPUT_ENTRIES = 64


class TaskError(ValueError):
    """The task JSON is not usable."""


# --------------------------------------------------------------------------
# small text helpers

def log(msg: str) -> None:
    """One line of the runner's log on stderr (hf-worker keeps it with the task's output)."""
    print(f"hfleet-runner: {msg}", file=sys.stderr, flush=True)


def one_line(text, max_chars: int = REASON_MAX_CHARS) -> str:
    """Collapse whitespace to make `text` one line, cut to max_chars."""
    s = " ".join(str(text).split())
    if len(s) > max_chars:
        s = s[: max_chars - 3] + "..."
    return s


def tail_lines(text: str, n: int = TRACEBACK_LINES) -> str:
    lines = str(text).rstrip("\n").splitlines()
    return "\n".join(lines[-n:])


# Errors of a model that mixes float32 into half-precision work (a float32
# buffer or input meeting half weights): the model's own, at fp16 or bf16,
# not the runner's.  torch.autocast casts each such operation to what it
# takes (on an H200 and an H100 it ran bros, dab-detr, fastspeech2-conformer,
# maskformer, mra, timesfm and tipsv2 at fp16).
HALF_MIX_PATTERNS = re.compile(
    r"same dtype|expected scalar type (Float|Half|BFloat16) but found (Float|Half|BFloat16)"
    r"|Input type \((float|c10::Half|c10::BFloat16)\) and (bias|weight) type")
# cuFFT computes half-precision FFTs only of power-of-two sizes, and autocast
# leaves FFTs at the input's precision (fnet's over 768 features and
# autoformer's over 42 steps failed the same under it; their recipes now
# avoid those FFTs: hfleet_recipes_config's fnet, hfleet_recipes_audio's
# autoformer_fft_lengths).  Any other model's such failure is a skip.
HALF_FFT_PATTERN = re.compile(r"cuFFT only supports dimensions whose sizes are powers of two when computing "
                              r"in half precision, but got a signal size of ?(\[[0-9, ]*\])")


def half_precision_mix(message: str, precision: str) -> bool:
    """Whether a failure with this message, at this task precision, is a
    model mixing float32 into half-precision work (HALF_MIX_PATTERNS), which
    the runner answers by running the model under torch.autocast."""
    return precision in ("fp16", "bf16") and bool(HALF_MIX_PATTERNS.search(message or ""))


def half_precision_fft_reason(message: str, precision: str):
    """The reason a model cannot run at this precision on CUDA when the
    failure is cuFFT refusing a half-precision FFT of a size other than a
    power of two, else None."""
    m = HALF_FFT_PATTERN.search(message or "") if precision in ("fp16", "bf16") else None
    if m is None:
        return None
    return (f"cannot run at {precision} on CUDA: the model takes an FFT of size {m.group(1)}, and cuFFT "
            f"computes half-precision FFTs only of powers of two (it runs at fp32)")


def exception_reason(exc: BaseException, prefix: str = "") -> str:
    """'prefix: ExcType: message' on one line."""
    msg = str(exc)
    body = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return one_line(f"{prefix}{body}" if not prefix else f"{prefix}: {body}")


# What huggingface_hub and transformers say when a file only the Hub has is
# not in the local cache and the runner, offline, cannot fetch it.
HUB_OFFLINE_MARKS = ("couldn't connect to", "LocalEntryNotFound", "offline mode", "HF_HUB_OFFLINE",
                     "not cached locally", "outgoing traffic has been disabled")


def hub_file_missing(exc: BaseException) -> bool:
    """Whether exc is a Hub file missing from the local cache of an offline
    runner (an OSError saying so, or huggingface_hub's *EntryNotFoundError)."""
    name = type(exc).__name__
    if not (isinstance(exc, OSError) or name.endswith("EntryNotFoundError")):
        return False
    return "EntryNotFound" in name or any(m in str(exc) for m in HUB_OFFLINE_MARKS)


# --------------------------------------------------------------------------
# task

_TASK_DEFAULTS = {
    "attempt": 1,
    "job_id": None,
    "hf_id": None,
    "family": None,
    "task": None,
    "modality": "text",
    "kind": "test",
    "device_index": 0,
    "batch_size": 1,
    "seq_len": 128,
    "precision": "fp32",
    "iterations": 20,
    "warmup": 3,
    "timeout_s": 600,
}


def _req_int(d, key, lo, hi=None):
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise TaskError(f"task field {key!r} must be an integer, got {v!r}")
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise TaskError(f"task field {key!r} must be {rng}, got {v}")
    return v


def parse_task(raw) -> dict:
    """Validate and normalise a task dict (as written by the worker).

    Unknown extra fields are kept (forward compatibility); missing optional
    fields get defaults; wrong types or values raise TaskError.
    """
    if not isinstance(raw, dict):
        raise TaskError("task JSON must be an object")
    t = dict(_TASK_DEFAULTS)
    t.update({k: v for k, v in raw.items() if v is not None or k not in _TASK_DEFAULTS})
    for key in ("model_type", "backend"):
        if not isinstance(t.get(key), str) or not t.get(key):
            raise TaskError(f"task field {key!r} is required and must be a non-empty string")
    if "task_id" not in raw:
        raise TaskError("task field 'task_id' is required")
    for key in ("hf_id", "family", "task"):
        if t[key] is not None and not isinstance(t[key], str):
            raise TaskError(f"task field {key!r} must be a string or null")
    if t["kind"] not in KINDS:
        raise TaskError(f"task field 'kind' must be one of {list(KINDS)}, got {t['kind']!r}")
    if t["backend"] not in BACKENDS:
        raise TaskError(f"task field 'backend' must be one of {list(BACKENDS)}, got {t['backend']!r}")
    if t["precision"] not in PRECISIONS:
        raise TaskError(f"task field 'precision' must be one of {list(PRECISIONS)}, got {t['precision']!r}")
    if not isinstance(t["modality"], str) or not t["modality"]:
        raise TaskError("task field 'modality' must be a non-empty string")
    _req_int(t, "batch_size", 1, 4096)
    _req_int(t, "seq_len", 1, 1 << 20)
    _req_int(t, "iterations", 1, 1_000_000)
    _req_int(t, "warmup", 0, 1_000_000)
    _req_int(t, "device_index", 0)
    if isinstance(t["timeout_s"], bool) or not isinstance(t["timeout_s"], (int, float)) or t["timeout_s"] <= 0:
        raise TaskError(f"task field 'timeout_s' must be a positive number, got {t['timeout_s']!r}")
    return t


def modality_parts(modality: str) -> set:
    """'image+text' -> {'image', 'text'}."""
    return {p.strip() for p in str(modality).split("+") if p.strip()}


# --------------------------------------------------------------------------
# backend / precision gating (decided before torch is imported)

def major_minor(version) -> str:
    """"5.12" of "5.12.0.dev0"; the text itself where it is not N.N..."""
    m = re.match(r"^(\d+)\.(\d+)", str(version or ""))
    return f"{m.group(1)}.{m.group(2)}" if m else str(version)


def missing_model_type_reason(model_type: str, version, known_types,
                              registry_version: str = REGISTRY_TRANSFORMERS):
    """The skip reason of a task whose model type the installed transformers does not
    know (known_types: transformers' CONFIG_MAPPING_NAMES), or None when it knows it."""
    if model_type in known_types:
        return None
    return (f"transformers {major_minor(version)} has no model type {model_type} "
            f"(registry built from {registry_version})")


def backend_precheck(backend: str):
    """Reason to skip for backends this runner version cannot run, else None."""
    if backend not in SUPPORTED_BACKENDS:
        return companion_backend_reason(backend)
    return None


def companion_backend_reason(backend: str, find_spec=None, environ=None) -> str:
    """Why this runner version does not run `backend` (openvino, qnn, or unknown) here.

    Names what is missing when the backend's companion stack is absent, and
    says plainly that the runner does not drive it yet when it is present.
    """
    import importlib.util
    find_spec = find_spec or importlib.util.find_spec
    environ = os.environ if environ is None else environ

    def have(mod):
        try:
            return find_spec(mod) is not None
        except (ImportError, ValueError):
            return False
    if backend == "openvino":
        missing = [m for m in ("openvino", "optimum.intel") if not have(m.split(".")[0]) or not have(m)]
        if missing:
            return (f"backend openvino needs {' and '.join(missing)} (optimum-intel) in {sys.executable}: "
                    f"not installed")
        return ("backend openvino: openvino and optimum-intel are installed, but this runner version "
                "does not export models to OpenVINO yet")
    if backend == "qnn":
        root = environ.get("QNN_SDK_ROOT", "")
        if not root:
            return "backend qnn needs the Qualcomm QNN SDK: QNN_SDK_ROOT is not set"
        return (f"backend qnn: the QNN SDK at {root} is present, but this runner version does not "
                f"compile models for it yet")
    return f"backend {backend} not supported by this runner version"


def precision_skip_reason(backend: str, precision: str):
    """fp16 on cpu is not attempted (slow or unsupported kernels); int8 runs on cpu only."""
    if backend == "cpu" and precision == "fp16":
        return "precision fp16 is not run on backend cpu by this runner version (use fp32 or bf16)"
    if precision == "int8" and backend != "cpu":
        return (f"precision int8 on {backend} needs a weight-quantization library (torchao or bitsandbytes); "
                f"this runner version runs PyTorch's own dynamic int8 quantization, whose kernels are CPU-only")
    return None


# --------------------------------------------------------------------------
# pretrained weights in a configured directory, and known answers

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json",
                "pytorch_model.bin", "pytorch_model.bin.index.json")
_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def complete_checkpoint(locate) -> bool:
    """True when config.json and a whole checkpoint are found: a weights file,
    or an index and every shard it names.  locate(name) is the path of that
    file of the checkpoint, or None when it is not there."""
    if not locate("config.json"):
        return False
    for fn in WEIGHT_FILES:
        path = locate(fn)
        if not path:
            continue
        if not fn.endswith(".index.json"):
            return True
        try:
            with open(path, encoding="utf-8") as f:
                shards = set(json.load(f).get("weight_map", {}).values())
        except (OSError, ValueError, AttributeError):
            continue
        if shards and all(isinstance(s, str) and locate(s) for s in shards):
            return True
    return False


def complete_weights(dirpath: str) -> bool:
    """True when dirpath holds config.json and a whole checkpoint (no shard outside it)."""
    def locate(name):
        path = os.path.join(dirpath, name)
        return path if "/" not in name and os.path.isfile(path) else None
    return complete_checkpoint(locate)


def weights_dir_path(hf_id, weights_dirs):
    """The directory <dir>/<hf_id> of the first configured weights directory that
    holds a whole checkpoint of hf_id (as save_pretrained or `hf download
    --local-dir` write it), else None.  weights_dirs is a list or an
    os.pathsep-separated string (HFLEET_WEIGHTS_DIR); hf_id must be NAME or
    ORG/NAME, so no id reaches outside the directory."""
    if not hf_id or not isinstance(hf_id, str) or not _HF_ID.match(hf_id) or ".." in hf_id:
        return None
    if isinstance(weights_dirs, str):
        weights_dirs = weights_dirs.split(os.pathsep)
    for d in weights_dirs or ():
        if d and complete_weights(os.path.join(d, hf_id)):
            return os.path.join(d, hf_id)
    return None


# Cheap checks that pretrained weights are the real ones: a prompt whose
# answer any trained model of the task gets right.  {mask} is the
# tokenizer's mask token.
KNOWN_ANSWERS = {
    "fill-mask": {"prompt": "The capital of France is {mask}.", "expect": "paris", "top_k": 5},
    "text-generation": {"prompt": "1, 2, 3, 4, 5,", "expect": "6", "new_tokens": 4},
}


def known_answer_spec(task_name):
    return KNOWN_ANSWERS.get(task_name or "")


def _answer_word(text) -> str:
    # Subword markers of GPT-2 (\u0120), SentencePiece (\u2581) and WordPiece (##).
    return str(text).replace("\u0120", " ").replace("\u2581", " ").replace("##", "").strip().lower()


def check_known_answer(task_name, answers):
    """(ok, detail) for a model's answers to known_answer_spec(task_name)['prompt'];
    ok is None when the answers cannot be judged.

    fill-mask: answers are the decoded top-k tokens at the mask; ok when one of
    them is the expected word.  text-generation: answers holds the greedy
    continuation; ok when the first number in it is the expected one.
    """
    spec = known_answer_spec(task_name)
    if spec is None:
        raise ValueError(f"no known answer for task {task_name!r}")
    shown = [str(a)[:40] for a in answers][:10]
    if task_name == "fill-mask":
        if not any(_answer_word(a) for a in answers):
            # A tokenizer without a vocabulary (transformers builds an empty
            # one when the weights come without tokenizer files).
            return None, f"not checked: the tokenizer decodes the top-{spec['top_k']} fillers to nothing"
        ok = any(_answer_word(a) == spec["expect"] for a in answers)
        what = f"top-{spec['top_k']} fillers {shown}"
    else:
        text = "".join(str(a) for a in answers)
        m = re.search(r"\d+", text)
        ok = m is not None and m.group(0) == spec["expect"]
        what = f"continuation {shown[0] if shown else ''!r}"
    verdict = "passed" if ok else "failed"
    return ok, f"{verdict}: {spec['prompt']!r} -> {what}, expected {spec['expect']!r}"


# --------------------------------------------------------------------------
# statistics

def percentile(values, p: float) -> float:
    """Percentile with linear interpolation between closest ranks.

    Same definition as numpy.percentile's default ('linear'):
    rank = p/100 * (n-1); interpolate between floor(rank) and ceil(rank).
    """
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile p must be in [0, 100], got {p}")
    xs = sorted(float(v) for v in values)
    if len(xs) == 1:
        return xs[0]
    rank = (p / 100.0) * (len(xs) - 1)
    lo = math.floor(rank)
    hi = math.ceil(rank)
    if lo == hi:
        return xs[lo]
    frac = rank - lo
    return xs[lo] + (xs[hi] - xs[lo]) * frac


def latency_summary(samples_s) -> dict:
    """Per-iteration wall times in seconds -> statistics in milliseconds.

    count, mean, stdev (sample standard deviation, n-1; 0 for one sample),
    cv (stdev / mean, a fraction), min, max, p50, p90, p95, p99."""
    if not samples_s:
        raise ValueError("no latency samples")
    ms = [float(s) * 1000.0 for s in samples_s]
    for v in ms:
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"invalid latency sample {v!r} ms")
    n = len(ms)
    mean = sum(ms) / n
    stdev = math.sqrt(sum((v - mean) ** 2 for v in ms) / (n - 1)) if n > 1 else 0.0
    return {
        "count": n,
        "mean": mean,
        "stdev": stdev,
        "cv": stdev / mean if mean > 0 else 0.0,
        "min": min(ms),
        "max": max(ms),
        "p50": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
    }


def throughput_items_s(batch_size: int, mean_latency_s: float):
    if mean_latency_s <= 0:
        return None
    return batch_size / mean_latency_s


# --------------------------------------------------------------------------
# result

ENV_KEYS = ("python", "torch", "torch_cuda", "torch_hip", "transformers", "device_name", "platform")


def make_result(status, reason="", weights=None, metrics=None, env=None, outputs=None, traceback_text=None) -> dict:
    r = {
        "status": status,
        "reason": one_line(reason) if reason else "",
        "weights": weights,
        "metrics": dict(metrics or {}),
        "env": dict(env or {}),
        "outputs": dict(outputs or {}),
    }
    if traceback_text and status in ("error", "failed"):
        r["traceback"] = tail_lines(traceback_text)
    return r


def _check_number_tree(obj, path, errors):
    if obj is None or isinstance(obj, str):
        return
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)):
        if isinstance(obj, float) and not math.isfinite(obj):
            errors.append(f"{path} is not a finite number ({obj!r})")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                errors.append(f"{path} has a non-string key {k!r}")
            _check_number_tree(v, f"{path}.{k}", errors)
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_number_tree(v, f"{path}[{i}]", errors)
        return
    errors.append(f"{path} has a non-JSON value of type {type(obj).__name__}")


# The worker refuses a result whose metrics, or env with outputs, is larger
# than this as compact JSON (worker/result.h RESULT_JSON_MAX).
JSON_OBJECT_MAX = 64 * 1024
LATENCY_SAMPLES_MAX = 512
LATENCY_KEYS = ("count", "mean", "stdev", "cv", "min", "max", "p50", "p90", "p95", "p99")
BOOL_METRICS = ("noisy", "warmup_stable")
ENERGY_SOURCES = ("nvml",)
# Benchmark execution modes (hfleet_modes.py): metrics.mode names the one measured.
BENCH_MODES = ("eager", "cuda-graph", "compile")
# env members that are strings (or null) of at most ENV_TEXT_MAX characters.
ENV_TEXT_KEYS = ("runner_version", "driver_version", "cuda_version", "rocm_version", "device_uuid")
ENV_TEXT_MAX = 128


def _json_size(obj) -> int:
    try:
        return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8"))
    except (TypeError, ValueError):
        return 0   # reported by _check_number_tree


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_metrics(m: dict, errors: list) -> None:
    for k, v in m.items():
        if k == "latency_ms":
            if not isinstance(v, dict):
                errors.append("metrics.latency_ms must be an object")
                continue
            for key in ("mean", "p50", "p90", "p99"):
                if not _is_number(v.get(key)):
                    errors.append(f"metrics.latency_ms.{key} must be a number")
            for key, x in v.items():
                if key not in LATENCY_KEYS:
                    errors.append(f"metrics.latency_ms has an unknown key {key!r}")
                elif not _is_number(x) or x < 0:
                    errors.append(f"metrics.latency_ms.{key} must be a non-negative number")
        elif k == "latency_samples_ms":
            if not isinstance(v, list):
                errors.append("metrics.latency_samples_ms must be a list")
            elif len(v) > LATENCY_SAMPLES_MAX:
                errors.append(f"metrics.latency_samples_ms has {len(v)} samples, over {LATENCY_SAMPLES_MAX}")
            elif not all(_is_number(x) and x >= 0 for x in v):
                errors.append("metrics.latency_samples_ms must hold non-negative numbers")
        elif k in BOOL_METRICS:
            if not isinstance(v, bool):
                errors.append(f"metrics.{k} must be true or false")
        elif k == "mode":
            if v not in BENCH_MODES:
                errors.append(f"metrics.mode must be one of {list(BENCH_MODES)}, got {str(v)[:40]!r}")
        elif k == "energy_source":
            if v not in ENERGY_SOURCES:
                errors.append(f"metrics.energy_source must be one of {list(ENERGY_SOURCES)}, got {v!r}")
        elif v is not None and not _is_number(v):
            errors.append(f"metrics.{k} must be a number or null")
        elif _is_number(v) and v < 0:
            errors.append(f"metrics.{k} must not be negative")


def _check_env(env: dict, errors: list) -> None:
    for k in ENV_TEXT_KEYS:
        v = env.get(k)
        if v is not None and (not isinstance(v, str) or len(v) > ENV_TEXT_MAX):
            errors.append(f"env.{k} must be a string of at most {ENV_TEXT_MAX} characters or null")
    v = env.get("device_memory_bytes")
    if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
        errors.append("env.device_memory_bytes must be a non-negative integer or null")


def validate_result(r) -> list:
    """Return a list of problems (empty list = valid result)."""
    errors = []
    if not isinstance(r, dict):
        return ["result must be a JSON object"]
    allowed = {"status", "reason", "weights", "metrics", "env", "outputs", "traceback"}
    extra = set(r) - allowed
    if extra:
        errors.append(f"unknown top-level keys: {sorted(extra)}")
    status = r.get("status")
    if status not in STATUSES:
        errors.append(f"status must be one of {list(STATUSES)}, got {status!r}")
    reason = r.get("reason")
    if not isinstance(reason, str):
        errors.append("reason must be a string")
    else:
        if "\n" in reason or "\r" in reason:
            errors.append("reason must be one line")
        if status == "passed" and reason:
            errors.append("reason must be empty when status is passed")
        if status in ("failed", "error", "skipped") and not reason.strip():
            errors.append(f"reason is required when status is {status}")
    if "weights" not in r or r.get("weights") not in WEIGHTS:
        errors.append(f"weights must be one of {list(WEIGHTS)}, got {r.get('weights')!r}")
    if status == "passed" and r.get("weights") is None:
        errors.append("weights must be known when status is passed")
    for key in ("metrics", "env", "outputs"):
        if not isinstance(r.get(key), dict):
            errors.append(f"{key} must be an object")
        else:
            _check_number_tree(r[key], key, errors)
    m = r.get("metrics") if isinstance(r.get("metrics"), dict) else {}
    _check_metrics(m, errors)
    env = r.get("env") if isinstance(r.get("env"), dict) else {}
    _check_env(env, errors)
    outputs = r.get("outputs") if isinstance(r.get("outputs"), dict) else {}
    # The worker passes metrics on as they are, and env with outputs merged
    # into it: each must fit its limit (worker/result.h RESULT_JSON_MAX).
    for what, obj in (("metrics", m), ("env with outputs", {**env, "outputs": outputs})):
        size = _json_size(obj)
        if size > JSON_OBJECT_MAX:
            errors.append(f"{what} is {size} bytes of JSON, over the worker's limit of {JSON_OBJECT_MAX}")
    if "traceback" in r:
        if status not in ("error", "failed"):
            errors.append("traceback is only allowed when status is error or failed")
        if not isinstance(r["traceback"], str):
            errors.append("traceback must be a string")
    if status == "passed":
        o = r.get("outputs") if isinstance(r.get("outputs"), dict) else {}
        if o.get("finite") is not True:
            errors.append("outputs.finite must be true when status is passed")
    return errors


def result_to_json(r) -> str:
    return json.dumps(r, allow_nan=False, sort_keys=False, indent=1) + "\n"


def write_result_atomic(path: str, r: dict) -> None:
    """Validate, then write `r` to path via path.tmp + fsync + rename.

    Raises ValueError for an invalid result (nothing is written then).
    """
    problems = validate_result(r)
    if problems:
        raise ValueError("invalid result: " + "; ".join(problems))
    data = result_to_json(r).encode("utf-8")
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dirname = os.path.dirname(os.path.abspath(path))
    try:
        dfd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# --------------------------------------------------------------------------
# output checking
#
# walk_outputs is duck-typed so it can be tested without torch: the caller
# passes `is_tensor`.  ModelOutput is an OrderedDict subclass (items());
# tuples/lists are indexed; a Cache object or anything else is ignored.

def walk_outputs(obj, is_tensor, prefix: str = "", _depth: int = 0):
    """Yield (name, tensor) for every tensor in a nested model output."""
    if _depth > 6:
        return
    if is_tensor(obj):
        yield (prefix or "output", obj)
        return
    if isinstance(obj, dict) or (hasattr(obj, "items") and hasattr(obj, "keys") and callable(obj.items)):
        try:
            items = list(obj.items())
        except Exception:  # noqa: BLE001 - not a mapping after all
            items = []
        for k, v in items:
            name = f"{prefix}.{k}" if prefix else str(k)
            yield from walk_outputs(v, is_tensor, name, _depth + 1)
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            name = f"{prefix}.{i}" if prefix else str(i)
            yield from walk_outputs(v, is_tensor, name, _depth + 1)


MASKED_OUTPUT = re.compile(r"(logits|class|scores)", re.I)
MASKED_POINTS = re.compile(r"(reference_points|anchors)", re.I)


def masked_logits(entry) -> bool:
    """An output whose infinities are masks by design, next to finite values.

    Detection heads (grounding-dino, omdet) fill the logits of padding text
    tokens and invalid proposals with -inf on purpose, so that softmax gives
    them zero, and mark invalid anchors / reference points with inf (the
    inverse sigmoid of 0 or 1).  NaN, +inf in logits, infinities in any
    other output, or an output with no finite value still fail.
    """
    kinds = entry.get("non_finite_kinds") or []
    if not kinds or "nan" in kinds or not entry.get("some_finite"):
        return False
    name = entry.get("name", "")
    if MASKED_POINTS.search(name):
        return True
    return kinds == ["-inf"] and bool(MASKED_OUTPUT.search(name))


def check_outputs(entries, batch_size: int):
    """entries: list of dicts {"name", "shape": [..], "is_float": bool, "finite": bool|None}.

    Returns (ok, problems, shapes, finite).
    """
    problems = []
    shapes = {}
    for e in entries[:MAX_OUTPUT_ENTRIES]:
        shapes[e["name"]] = list(e["shape"])
    if not entries:
        return False, ["the model returned no tensor output"], shapes, False
    bad = [e for e in entries if e.get("is_float") and e.get("finite") is False and not masked_logits(e)]
    finite = not bad
    if bad:
        def what(e):
            kinds = e.get("non_finite_kinds")
            return f"{e['name']} ({'/'.join(kinds)})" if kinds else e["name"]
        problems.append("non-finite values in " + ", ".join(what(e) for e in bad[:8])
                        + (f" and {len(bad) - 8} more" if len(bad) > 8 else ""))
    float_entries = [e for e in entries if e.get("is_float")]
    candidates = float_entries or entries
    # Some models pack the whole batch into one sequence (pixtral: [1, tokens, dim])
    # or return flattened tokens ([tokens, dim]); only a batch dimension that is
    # neither is a failure.  A model whose first output (its hidden states) is
    # flattened tokens packs: its other outputs are per patch (kimi-k2.5's tower).
    packed = all(len(e["shape"]) <= 2 or e["shape"][0] == 1 for e in candidates) \
        or len(candidates[0]["shape"]) == 2
    if not packed and not any(len(e["shape"]) >= 1 and e["shape"][0] == batch_size for e in candidates):
        first = candidates[0]
        problems.append(
            f"no output has batch dimension {batch_size} (first: {first['name']} {list(first['shape'])})")
    empty = [e["name"] for e in entries if any(d == 0 for d in e["shape"]) and e.get("is_float")]
    if empty and len(empty) == len(float_entries):
        problems.append("all float outputs are empty: " + ", ".join(empty[:8]))
    return not problems, problems, shapes, finite


# --------------------------------------------------------------------------
# serve mode: the warm runner protocol (README.md, "Serve mode")
#
# The worker writes one request per line on stdin; the runner answers each
# with one line on the control descriptor (HFLEET_CONTROL_FD), never stdout.

CONTROL_TEXT_MAX = 200


class RequestError(ValueError):
    """A request line the serve loop cannot take."""


def parse_serve_request(line) -> dict:
    """One stdin line (bytes or str) -> {"task": path or dict, "result": path,
    "result_inline": bool}.

    "task" is the task file's path, or the task object itself (a worker
    sends that once a done line said "task_inline": true).  "result_inline":
    true says the worker takes the result in the done line (control_done_line's
    result) when the line fits in CONTROL_LINE_MAX bytes; absent or anything
    but true: the result goes to the file.  Other members are ignored (forward
    compatibility).  Raises RequestError with a one-line reason for anything else.
    """
    if isinstance(line, (bytes, bytearray)):
        try:
            line = bytes(line).decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError("request line is not UTF-8") from None
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise RequestError(f"request line is not JSON: {one_line(exc, 120)}") from None
    if not isinstance(obj, dict):
        raise RequestError("request line is not a JSON object")
    for key in ("task", "result"):
        v = obj.get(key)
        if key == "task" and isinstance(v, dict):
            continue  # the task itself, as a task file would hold it
        if not isinstance(v, str) or not v or "\0" in v:
            raise RequestError(f"request member {key!r} must be a non-empty path"
                               + (" or the task object" if key == "task" else ""))
    return {"task": obj["task"], "result": obj["result"], "result_inline": obj.get("result_inline") is True}


# The longest control line the worker takes, newline excluded
# (worker/warm-proto.h WARM_CONTROL_LINE_MAX): a done line with its result
# inline must fit, or the result goes to the result file.
CONTROL_LINE_MAX = 65536


def control_done_line(task_id, fatal: bool, rss_bytes, reason=None, device_fault=None,
                      task_inline=False, result=None) -> str:
    """The control line that ends a task: {"done": id, "fatal": bool, "rss_bytes": int}.

    task_id is None when the task file could not be read; rss_bytes None when
    unknown.  A fatal line may say why ("reason") and whose fault it was:
    "device_fault" false when the model's own inputs tripped the device (a
    kernel assertion), so the task is not retried and the device not blamed
    (default: device_fault_of(reason)).  task_inline: the runner takes its
    next task in the request line ({"task": {...}}) as well as by path.
    result: the task's result (a valid one: validate_result), sent in the
    line instead of the result file; the caller checks the line's length
    against CONTROL_LINE_MAX.  Raises ValueError for a result JSON cannot
    hold (NaN).
    """
    d = {"done": task_id if isinstance(task_id, int) and not isinstance(task_id, bool) and task_id >= 0 else None,
         "fatal": bool(fatal),
         "rss_bytes": int(rss_bytes) if isinstance(rss_bytes, int) and rss_bytes >= 0 else None}
    if fatal and reason:
        d["reason"] = one_line(reason, CONTROL_TEXT_MAX)
    if fatal:
        d["device_fault"] = bool(device_fault_of(reason) if device_fault is None else device_fault)
    if task_inline:
        d["task_inline"] = True
    if result is not None:
        d["result"] = result
    return json.dumps(d, allow_nan=False) + "\n"


def control_error_line(message) -> str:
    """The control line that refuses a malformed request."""
    return json.dumps({"error": one_line(message, CONTROL_TEXT_MAX) or "malformed request"}) + "\n"


# Errors after which the CUDA (or HIP) context of the process is unusable:
# every later call fails, so the process must go.
FATAL_DEVICE_MARKS = (
    "device-side assert",
    "illegal memory access",
    "unspecified launch failure",
    "an illegal instruction was encountered",
    "misaligned address",
    "CUDA_ERROR_ILLEGAL_ADDRESS",
    "CUDA_ERROR_LAUNCH_FAILED",
)
# Fatal errors that are the model's doing, not the device's: a kernel's own
# assertion (an index out of range: positions past the model's limit, a
# token id past the vocabulary).  The process must still go, but the task is
# not retried and the device is not blamed.
MODEL_CAUSED_DEVICE_MARKS = (
    "device-side assert",
    "cudaErrorAssert",
)


def generation_room_reason(prompt_len, position_limit, new_tokens):
    """Why generation cannot be timed within a model's learned positions, or None.

    A model with learned absolute position embeddings (GPT-2's wpe) indexes
    them with every position: a prompt plus new tokens past the limit trips a
    device-side assertion that kills the process.  Rotary and relative
    positions have no such limit (position_limit None)."""
    if not isinstance(position_limit, int) or position_limit <= 0 or not isinstance(prompt_len, int):
        return None
    if prompt_len + new_tokens <= position_limit:
        return None
    return (f"the {prompt_len}-token prompt leaves no room for {new_tokens} new tokens within the "
            f"model's {position_limit} learned positions")


def device_fault_of(text) -> bool:
    """True unless a fatal device error's text says the model caused it."""
    return not any(m in str(text or "") for m in MODEL_CAUSED_DEVICE_MARKS)


# Errors that may or may not have poisoned it: check with a tiny operation.
SUSPECT_DEVICE_MARKS = (
    "CUDA error",
    "HIP error",
    "CUBLAS_STATUS_EXECUTION_FAILED",
    "CUDNN_STATUS_EXECUTION_FAILED",
    "NCCL error",
)


# Running out of device memory, under whichever library's name: a library
# that cannot allocate its workspace or handle says so as its own status
# inside a "CUDA error" (cublasCreate beside other tasks on one GPU).
OUT_OF_MEMORY_MARKS = (
    "out of memory",
    "OutOfMemoryError",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_ALLOC_FAILED",
    "CUFFT_ALLOC_FAILED",
)


def is_out_of_memory(text) -> bool:
    """True when an error's text says the device ran out of memory."""
    return any(m in str(text or "") for m in OUT_OF_MEMORY_MARKS)


def classify_device_error(text):
    """From an exception's text: 'fatal', 'suspect' (check the device), or None.

    Running out of memory (is_out_of_memory) is neither: the caching
    allocator recovers from it, and the process may try again.
    """
    if not text:
        return None
    s = str(text)
    if any(m in s for m in FATAL_DEVICE_MARKS):
        return "fatal"
    if is_out_of_memory(s):
        return None
    if any(m in s for m in SUSPECT_DEVICE_MARKS):
        return "suspect"
    return None


def device_error_line(text):
    """The first line of text that names a device error, for a done line's reason."""
    for line in str(text or "").splitlines():
        if classify_device_error(line):
            return one_line(line, CONTROL_TEXT_MAX)
    return one_line(text or "", CONTROL_TEXT_MAX)


def parse_vmrss(status_text):
    """Bytes of the 'VmRSS:' line of a /proc/PID/status text, or None."""
    for line in str(status_text).splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            if len(parts) >= 3 and parts[1].isdigit() and parts[2] == "kB":
                return int(parts[1]) * 1024
            return None
    return None


__all__ = [n for n in dir() if not n.startswith("_")]
