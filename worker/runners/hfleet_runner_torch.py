"""The parts of the hfleet reference runner that need torch and transformers.

Importing this module imports neither: torch, transformers and
huggingface_hub are imported inside the functions that use them, so the CLI
can answer 'skipped' (with the reason) on a Python that lacks them.

Entry points: probe() and run_task(task) -> result dict.  Building the
model is hfleet_build.py's, its inputs and outputs hfleet_inputs.py's, a
split across several devices hfleet_multidevice.py's, a model larger than
its one GPU with blocks in host memory hfleet_offload.py's.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import os
import platform
import sys
import time
import traceback

import hfleet_bench as bench_mod
import hfleet_modes as modes_mod
from hfleet_build import (Unsupported, adapt_mrope_sections, build_from_config, build_on_device,
                          calibrate_batchnorm, calibrates_batchnorm, default_and_shrunk_configs, free_memory,
                          load_pretrained, param_count, run_under_autocast, shallow_config)
import hfleet_multidevice as multi_mod
import hfleet_offload as offload_mod
from hfleet_inputs import (config_facts, fit_placeholder_tokens, forward_fitting_placeholders, materialize,
                           measure_generation, output_entries, position_id_offset)
from hfleet_multidevice import synchronize
import hfleet_nvml as nvml_mod
import hfleet_recipe_base as recipe_base
import hfleet_recipes as recipes
import hfleet_plan as plan_mod
import hfleet_runner_lib as lib
from hfleet_runner_lib import log


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
        params, takes_kwargs = plan_mod.forward_params(model.forward)
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
# one attempt: (build|load) -> device -> forward -> check [-> benchmark loop]

class Attempt:
    def __init__(self, source):
        self.source = source   # "pretrained" | "shrunk" | "default"
        self.metrics = {}
        self.outputs = {}
        self.status = None
        self.reason = ""


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
    elif ctx.get("offload"):
        gpu_budget, host_budget = ctx["offload"]
        try:
            model, att.outputs["offload"], att.metrics["offloaded_bytes"] = offload_mod.build(
                torch, make_model, device, dtype, gpu_budget, host_budget, log=log)
        except offload_mod.OffloadError as exc:
            raise Unsupported(f"too large for the device, and cannot be offloaded: {exc}") from exc
        att.outputs["built_on"] = "device, its last blocks in host memory"
    else:
        model, att.outputs["built_on"] = build_on_device(torch, device, make_model, dtype)
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
    elif not ctx.get("offload"):
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
    params, accepts_kwargs = plan_mod.forward_params(model.forward)
    if recipe is None or (recipe.inputs is None and not recipe.provides):
        # a type without inputs of its own (none, or a config fix only)
        # gets the ones its forward() signature calls for
        recipe = recipes.for_signature(params) or recipe
    provided = recipe.provides if recipe is not None else ()
    facts = config_facts(model.config)
    offset = position_id_offset(model)
    if offset and facts.get("max_positions"):
        facts["max_positions"] -= offset
    tower = getattr(model, "vision_tower", None) or getattr(getattr(model, "model", None), "vision_tower", None)
    if tower is not None and hasattr(tower, "forward"):
        try:
            facts["vision_takes_image_sizes"] = "image_sizes" in plan_mod.forward_params(tower.forward)[0]
        except (TypeError, ValueError):
            pass
    plan = plan_mod.plan_inputs(facts, params, task["modality"], batch, seq, accepts_kwargs, provided=provided)
    inputs = materialize(torch, plan, device, dtype)
    if recipe is not None and recipe.inputs is not None:
        rc = recipe_base.Ctx(torch, model, model.config, inputs, batch, seq, device, dtype, params=params)
        recipe.inputs(rc)
        inputs = rc.inputs
        att.outputs["recipe"] = recipe.name or task["model_type"]
    note = None
    if recipe is None or not recipe.own_tokens:
        try:
            note = fit_placeholder_tokens(torch, model, inputs, model.config)
        except Exception as exc:  # noqa: BLE001 - the forward below reports the real problem
            note = f"counting image/audio features failed: {type(exc).__name__}: {exc}"
    if note:
        log(note)
    if calibrates_batchnorm(task["model_type"], source):
        # Before anything is measured: one pass over these inputs sets the
        # random weights' BatchNorm statistics (hfleet_build says why); a
        # failure there is the forward's own, reported as the first one's.
        att.outputs["batchnorm_calibration"] = calibrate_batchnorm(
            torch, model, functools.partial(forward_fitting_placeholders, torch, model, inputs))
        log(f"{source}: {att.outputs['batchnorm_calibration']}")

    with torch.inference_mode():
        synchronize(torch, device)
        t1 = time.perf_counter()
        try:
            out = first_forward(torch, model, inputs, task["precision"])
        except RuntimeError as exc:
            if device.type not in ("cuda", "cpu") or not lib.half_precision_mix(str(exc), task["precision"]):
                raise
            why = lib.exception_reason(exc)
            model = run_under_autocast(torch, model, device, dtype)
            att.outputs["autocast"] = (f"ran under torch.autocast({task['precision']}): the model mixes float32 "
                                       f"into half-precision work ({why[:200]})")
            log(f"{source}: {why[:200]}; running under torch.autocast({task['precision']})")
            out = first_forward(torch, model, inputs, task["precision"])
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
            elif ctx.get("offload") and mode != "eager":
                figures, notes, skip = {"mode": mode}, {}, (
                    f"{mode} is not measured for a model whose blocks are offloaded to host memory "
                    f"(they are copied onto the device at every forward); eager is")
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
            elif ctx.get("offload"):
                att.outputs["generation"] = ("not timed with blocks offloaded to host memory (every token "
                                             "would copy them onto the device again)")
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
    free_memory(torch, device)
    return att


def first_forward(torch, model, inputs, precision):
    """A task's first forward pass (forward_fitting_placeholders); a model
    that cannot run at this precision at all is Unsupported, with why."""
    try:
        return forward_fitting_placeholders(torch, model, inputs)
    except RuntimeError as exc:
        why = lib.half_precision_fft_reason(str(exc), precision)
        if why:
            raise Unsupported(why) from exc
        raise


def environment_skip_reason(exc):
    """Reason to answer 'skipped' when an exception is the environment's doing, else None.

    A missing optional package (ImportError, e.g. detectron2 for layoutlmv2)
    or a file that only the Hub has (the runner is offline) is not the
    model's fault.
    """
    if isinstance(exc, ImportError):
        return lib.exception_reason(exc, "missing Python package in " + sys.executable)
    if lib.hub_file_missing(exc):
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


def empty_host_cache(torch) -> bool:
    """Gives the pinned host memory torch's caching host allocator keeps back
    to the system.  An offloaded model's blocks (hfleet_offload) are tens of
    GiB of pinned memory; freed, torch keeps them for its next pinned
    allocation, so without this a warm runner's next task, or the sweep's
    next model in the same process, finds that much less host memory
    available.  torch.accelerator.empty_host_cache where torch has it, else
    torch._C._host_emptyCache (torch 2.5 on).  -> whether either ran."""
    fn = getattr(getattr(torch, "accelerator", None), "empty_host_cache", None) \
        or getattr(getattr(torch, "_C", None), "_host_emptyCache", None)
    if fn is None:
        return False
    fn()
    return True


def release_memory() -> None:
    """Give back what the last task left: Python garbage, then the CUDA
    cache and the pinned host memory torch keeps."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()
            empty_host_cache(torch)
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


# A benchmark to be offloaded waits for another one on the host at most this
# share of its timeout (an offloaded benchmark takes 40 to 120 s on an H100).
OFFLOAD_LOCK_WAIT_SHARE = 0.5


def offload_choice(ctx, env, task, n_params, limit_source):
    """For a benchmark whose default config is over what its device holds:
    -> ((GPU weight budget, host budget) to build it with its last blocks in
    host memory (hfleet_offload), None), or (None, why it is not)."""
    torch, device = ctx["torch"], ctx["device"]
    if limit_source == "HFLEET_MAX_BENCHMARK_PARAMS":
        return None, "that limit is set by HFLEET_MAX_BENCHMARK_PARAMS"
    if device.type != "cuda" or ctx.get("n_devices", 1) > 1:
        return None, "only a model on one CUDA device is offloaded to host memory"
    if task["precision"] not in ("fp16", "bf16", "fp32"):
        return None, f"a model at {task['precision']} is not offloaded to host memory"
    # What an earlier task left for the collector counts against the host.
    free_memory(torch, device)
    try:
        host, host_source = offload_mod.environ_budget()
    except ValueError as exc:
        return None, f"offloading is not set up right: {exc}"
    gpu = int(env.get("device_memory_bytes", 0) * lib.BENCHMARK_WEIGHT_SHARE)
    need = n_params * torch.tensor([], dtype=ctx["dtype"]).element_size()
    if not offload_mod.fits(need, gpu, host):
        return None, (f"its {need / offload_mod.GIB:.1f} GiB of weights do not fit "
                      f"{gpu / offload_mod.GIB:.1f} GiB of the device and {host / offload_mod.GIB:.1f} GiB "
                      f"of host memory ({host_source}; {offload_mod.ENV_BUDGET} sets it)")
    return (gpu, host), None


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
        except plan_mod.PlanError as exc:
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
    if benchmark:
        device_bytes = env.get("device_memory_bytes", 0) * max(ctx["n_devices"], 1)
        param_limit, limit_source = lib.max_benchmark_params(device_bytes, torch.tensor([], dtype=dtype).element_size())
    else:
        param_limit = lib.MAX_DEFAULT_PARAMS
    if benchmark:
        small_cfg, shrink_exc = None, None

    def attempt(label, cfg):
        """One build + forward of cfg: -> (final result or None, error, traceback).
        A skip (the runner cannot build it, an input it cannot plan, the
        environment) is final: another config would not change it."""
        try:
            att = run_attempt(ctx, label, lambda: build_from_config(transformers, cfg, task.get("task"), head_first=benchmark))
            return att, None, None
        except Unsupported as exc:
            return lib.make_result("skipped", str(exc), weights=weights, env=env), None, None
        except plan_mod.PlanError as exc:
            return lib.make_result("skipped", f"inputs not supported by this runner version: {exc}",
                                   weights=weights, env=env), None, None
        except Exception as exc:  # noqa: BLE001
            skip = environment_skip_reason(exc)
            if skip:
                return lib.make_result("skipped", skip, weights=weights, env=env), None, None
            log(f"{label} config failed: {type(exc).__name__}: {exc}")
            tb = traceback.format_exc()
            # The frames hold the model: cleared, its memory is freed now,
            # not when a later collection finds the exception's cycle (a
            # warm runner's next task met the host memory of an offloaded
            # model that failed still taken).
            traceback.clear_frames(exc.__traceback__)
            return None, exc, tb

    def meta_params(cfg):
        try:
            meta_model = build_from_config(transformers, cfg, task.get("task"), meta=True, torch=torch)
            n = param_count(meta_model)
            del meta_model
            return n
        except Exception as exc:  # noqa: BLE001
            log(f"meta-device build failed ({type(exc).__name__}: {exc}); using a dict estimate")
            return plan_mod.estimate_params_from_dict(cfg.to_dict())

    errors = []   # (label, exception, traceback) of each config that failed, in order

    def failed_prefix():
        return "".join(f"{label} config failed ({lib.exception_reason(exc, '')[:300]}); " for label, exc, _ in errors)

    def failed_traceback():
        parts = [f"--- {label} config ---\n" + lib.tail_lines(t, 18) for label, _, t in errors if t]
        return "\n".join(parts) or None

    def settle(label, cfg, last=False, earlier=None):
        """Run cfg: -> the task's result when it is final (the model ran,
        whatever its status, with the earlier configs' failures before a
        reason; or a skip), else None with the failure added to errors.
        Unless it is the last try, a fatal device error ends the task here
        (not retried) and otherwise the device's memory is freed for the
        next.  earlier: outputs.earlier_configs_failed when it ran."""
        att, exc, tb = attempt(label, cfg)
        if isinstance(att, Attempt):
            if earlier is not None:
                att.outputs["earlier_configs_failed"] = earlier
            if att.status != "passed":
                att.reason = failed_prefix() + att.reason
            return finish(att, weights)
        if att is not None:
            return att
        errors.append((label, exc, tb))
        if last:
            return None
        if _is_fatal_device_error(exc):
            return lib.make_result("error", lib.exception_reason(exc, f"{label} config (fatal device error, not retried)"),
                                   weights=weights, env=env, traceback_text=tb)
        free_memory(torch, device)
        return None

    if small_cfg is not None:
        done = settle("shrunk", small_cfg)
        if done:
            return done
    elif shrink_exc is not None:
        errors.append(("shrunk", shrink_exc, "".join(traceback.format_exception(shrink_exc))))

    # Then the unshrunk default config (the real architecture), if it is
    # not huge.
    n_params = meta_params(default_cfg)
    too_big = None

    def default_benchmark():
        """The benchmark's one try: the default config, its error if it fails."""
        done = settle("default", default_cfg)
        if done:
            return done
        _, exc, tb = errors[-1]
        return lib.make_result("error", lib.exception_reason(exc, "default config"),
                               weights=weights, env=env, traceback_text=tb)

    if benchmark and n_params > param_limit:
        # One offloaded model at a time on the host (hfleet_offload.host_lock):
        # its host budget is counted after the lock is taken.
        wait = OFFLOAD_LOCK_WAIT_SHARE * float(task["timeout_s"])
        lock = (offload_mod.host_lock(offload_mod.lock_path(os.environ), wait, log=log)
                if device.type == "cuda" else contextlib.nullcontext(True))
        with lock as held:
            if held:
                ctx["offload"], why_not = offload_choice(ctx, env, task, n_params, limit_source)
            else:
                why_not = f"another model offloaded on this host held its host memory for {wait:.0f}s"
            if why_not is not None:
                return lib.make_result(
                    "skipped",
                    f"default config of {task['model_type']} has {n_params / 1e9:.2f}B parameters, over the "
                    f"benchmark limit of {param_limit / 1e9:.1f}B ({limit_source}), and {why_not}; split it "
                    f"across devices (hfctl submit --devices-per-task) or set HFLEET_MAX_BENCHMARK_PARAMS",
                    weights=weights, env=env)
            log(f"default config has {n_params / 1e9:.2f}B parameters, over the {param_limit / 1e9:.1f}B that "
                f"fit the device: its last blocks go to host memory")
            return default_benchmark()
    if n_params > param_limit:
        too_big = (f"default config of {task['model_type']} has {n_params / 1e9:.2f}B parameters "
                   f"(> {param_limit / 1e9:.1f}B limit), not tried")
    elif benchmark:
        return default_benchmark()
    else:
        done = settle("default", default_cfg)
        if done:
            return done

    # Last, for a test: the shallow config (depth and experts cut, widths
    # kept), when the narrow one broke a width the model derives and the
    # default is too big or failed as well.
    if errors:
        try:
            shallow_cfg, shallow_changes = shallow_config(task["model_type"], default_cfg, seq_for_config)
        except Exception as exc:  # noqa: BLE001
            shallow_cfg = None
            log(f"no shallow config ({type(exc).__name__}: {exc})")
        n_shallow = meta_params(shallow_cfg) if shallow_cfg is not None else 0
        if n_shallow > lib.MAX_SHALLOW_PARAMS:
            log(f"shallow config has {n_shallow / 1e9:.2f}B parameters (> {lib.MAX_SHALLOW_PARAMS / 1e9:.1f}B): not tried")
        elif shallow_cfg is not None:
            log(f"shallow config ({len(shallow_changes)} changes): " + ", ".join(shallow_changes[:40]))
            done = settle("shallow", shallow_cfg, last=True,
                          earlier=(failed_prefix() + (too_big or "")).rstrip("; "))
            if done:
                return done
    prefix = failed_prefix()
    if too_big:
        return lib.make_result("error", prefix + too_big, weights=weights, env=env,
                               traceback_text=failed_traceback())
    return lib.make_result("error", prefix.rstrip("; "), weights=weights, env=env,
                           traceback_text=failed_traceback())
