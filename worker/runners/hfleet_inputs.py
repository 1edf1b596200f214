# SPDX-License-Identifier: MIT
"""A model's inputs and outputs, for the forward pass a task runs.

What this module owns (moved out of hfleet_runner_torch.py, which runs the
attempt): the facts of a config the planner needs (config_facts; the plan
itself is pure, in hfleet_runner_lib.plan_inputs), the plan made into
tensors on the device (materialize), image/audio placeholder tokens fitted
to what the model counts (fit_placeholder_tokens,
forward_fitting_placeholders), position limits, the timing of generation
in benchmarks (measure_generation) and the outputs walked for the checks
(output_entries).  torch comes as an argument; nothing here imports it.
"""

from __future__ import annotations

import re
import time

import hfleet_runner_lib as lib
from hfleet_multidevice import synchronize
from hfleet_runner_lib import log


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


# What a model says when its audio features came in the other layout: the
# planner builds (batch, mel, frames), as whisper-style encoders take them;
# conformer-style encoders (parakeet, canary, lasr, ...) take (batch, frames,
# mel) and fail in their first matrix product or broadcast.
LAYOUT_MISMATCH = re.compile(r"shapes cannot be multiplied|must match the size of tensor")


def time_major_features(torch, inputs):
    """Turns a (batch, mel, frames) input_features into (batch, frames, mel); the
    frame count is unchanged, so a per-frame mask beside it still fits.  False
    when there is no such input."""
    feats = inputs.get("input_features")
    if not isinstance(feats, torch.Tensor) or feats.dim() != 3:
        return False
    inputs["input_features"] = feats.transpose(1, 2).contiguous()
    return True


def forward_fitting_placeholders(torch, model, inputs, tries=3):
    """model(**inputs); when the model reports that its image/video/audio
    placeholder tokens do not match the features (llava-style models whose
    feature count depends on tiling or packing), put the count it names in
    input_ids and run again; when it fails on the shape of (batch, mel, frames)
    audio features, run again once with them time-major.  inputs is updated
    in place."""
    turned = None  # the error of (batch, mel, frames), once turned
    for attempt in range(tries):
        try:
            return model(**inputs)
        except RuntimeError as exc:
            if turned is not None:
                raise RuntimeError(f"{turned} (and time-major: {exc})") from exc
            if attempt == tries - 1 or not LAYOUT_MISMATCH.search(str(exc)) or not time_major_features(torch, inputs):
                raise
            turned = exc
            log(f"the model refused (batch, mel, frames) audio features ({str(exc)[:120]}); "
                f"running again with them time-major {list(inputs['input_features'].shape)}")
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
    # A composite encoder-decoder (musicgen: a text encoder, a decoder of
    # audio codes) keeps its special tokens in its decoder's config, outside
    # the vocabulary of the codes: the pad there is the token generate()
    # strips from the codes before it decodes them (musicgen's 2048, its
    # delay pattern's filler), so the generation config's pad must be it.
    dec = getattr(cfg, "decoder", None)
    dec_pad, dec_start = (None, None) if dec is None else (
        getattr(dec, "pad_token_id", None),
        next((v for v in (getattr(dec, "decoder_start_token_id", None), getattr(dec, "bos_token_id", None))
              if isinstance(v, int)), None))
    if gc_ is not None and getattr(gc_, "pad_token_id", None) is None:
        eos = getattr(gc_, "eos_token_id", None)
        gc_.pad_token_id = dec_pad if isinstance(dec_pad, int) else (
            (eos[0] if isinstance(eos, (list, tuple)) and eos else eos) or 0)
    if (gc_ is not None and getattr(cfg, "is_encoder_decoder", False)
            and getattr(gc_, "decoder_start_token_id", None) is None and getattr(gc_, "bos_token_id", None) is None):
        # T5-style defaults leave both unset (checkpoints set them); the decoder
        # starts from its own start token where its config has one, else from
        # the pad token, as T5 was trained.
        start = getattr(cfg, "decoder_start_token_id", None)
        start = start if start is not None else dec_start
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
