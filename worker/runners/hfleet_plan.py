# SPDX-License-Identifier: MIT
"""What a task's model is built from and fed, decided on plain data (stdlib
only, pure: tested without torch in test_runner_pure.py).

What this module owns (moved out of hfleet_runner_lib.py):
  * a config shrunk for a test, on the dict of config.to_dict()
                                         -> shrink_config_dict
  * a model's size from its config dict  -> estimate_params_from_dict
  * the inputs a forward() takes, from the config's facts and the
    signature                            -> plan_inputs (PlanError when it
                                            cannot), forward_params
The torch side (hfleet_inputs.materialize) makes the plan into tensors.
"""

from __future__ import annotations

import inspect
import json
import re

import hfleet_runner_lib as lib

# --------------------------------------------------------------------------
# config shrinking on plain dicts (config.to_dict() output)

SMALL_HIDDEN = 64
SMALL_LAYERS = 2
SMALL_HEADS = 4
SMALL_KV_HEADS = 2
SMALL_FFN = 128
SMALL_MOE_FFN = 64
SMALL_EXPERTS = 4
SMALL_TOPK = 2
SMALL_LORA_RANK = 32
SMALL_ROPE_DIM = 16

HIDDEN_KEYS = ("hidden_size", "d_model", "n_embd", "embed_dim", "dim", "model_dim")
LAYER_KEYS = (
    "num_hidden_layers", "n_layer", "n_layers", "num_layers", "encoder_layers", "decoder_layers",
    "num_encoder_layers", "num_decoder_layers", "num_hidden_groups_layers",
)
HEAD_KEYS = (
    "num_attention_heads", "n_head", "n_heads", "num_heads", "encoder_attention_heads",
    "decoder_attention_heads",
)
KV_HEAD_KEYS = ("num_key_value_heads", "n_kv_heads", "num_kv_heads", "multi_query_group_num")
FFN_KEYS = (
    "intermediate_size", "ffn_dim", "encoder_ffn_dim", "decoder_ffn_dim", "d_ff", "n_inner",
    "ffn_hidden_size", "decoder_intermediate_size",
)
MOE_FFN_KEYS = ("moe_intermediate_size", "shared_expert_intermediate_size", "expert_intermediate_size")
EXPERT_KEYS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")
TOPK_KEYS = ("num_experts_per_tok", "num_experts_per_token", "moe_topk", "num_selected_experts", "top_k", "moe_k")
HEAD_DIM_KEYS = ("head_dim", "kv_channels")
# Widths that are the model width under another name: changed only when equal to it.
HIDDEN_ALIAS_KEYS = ("embedding_dim", "word_embed_proj_dim", "text_embed_dim")
MAMBA_HEAD_KEYS = ("mamba_n_heads", "n_mamba_heads", "mamba_num_heads")
MAMBA_HEAD_DIM_KEYS = ("mamba_d_head", "mamba_headdim", "mamba_head_dim")
# Keys whose value is a whole sub-config to shrink as well.
SUBCONFIG_HINT = re.compile(r"(_config|^encoder$|^decoder$|^generator$|^question_encoder$)")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _looks_like_config(d) -> bool:
    if not isinstance(d, dict):
        return False
    if "model_type" in d:
        return True
    return any(k in d for k in HIDDEN_KEYS + LAYER_KEYS + HEAD_KEYS)


def _set(d, key, value, changes, path):
    if d.get(key) != value:
        changes.append(f"{path}{key}: {lib.one_line(repr(d.get(key)), 60)} -> {lib.one_line(repr(value), 60)}")
        d[key] = value


def shrink_config_dict(cfg: dict, seq_len: int = 128, _path: str = "", keep_width: bool = False):
    """Return (shrunk_copy, changes) for a config dict.

    Only lowers sizes (never raises one, except position limits that must
    cover seq_len); keeps vocab sizes (special-token ids stay valid) and image
    sizes.  Keeps hidden % heads == 0 and derived head dims consistent.
    Recurses into nested sub-config dicts (text_config, vision_config,
    audio_config, encoder, decoder, ...).

    keep_width=True makes the *shallow* config: only depth and the number of
    experts are cut, every width (hidden, heads, head dims, FFN, latent
    ranks) stays the default's.  A test tries it last, when the narrow config
    broke a width that some module derives or hard-codes (a projector sized
    from another tower, a pixel-shuffle factor, a per-layer table) and the
    default config is too big or failed too.
    """
    d = json.loads(json.dumps(cfg, default=str))  # deep copy, JSON-safe
    changes = []
    p = _path

    # Width.  'hidden_dim' is a FFN size when 'dim' is the width (distilbert).
    hidden_keys = list(HIDDEN_KEYS)
    ffn_keys = list(FFN_KEYS)
    if _is_int(d.get("hidden_dim")):
        (ffn_keys if _is_int(d.get("dim")) else hidden_keys).append("hidden_dim")

    # Hierarchical backbones (swin, convnext, resnet, ...) have per-stage
    # widths and head lists tied to embed_dim: their width is left alone.
    hierarchical = any(isinstance(d.get(k), list) for k in ("depths", "hidden_sizes", "embed_dims"))
    old_hidden = None if hierarchical or keep_width else next((d[k] for k in hidden_keys if _is_int(d.get(k))), None)
    new_hidden = None
    if old_hidden is not None:
        new_hidden = min(old_hidden, SMALL_HIDDEN)
        for k in hidden_keys:
            if _is_int(d.get(k)) and d[k] == old_hidden:
                _set(d, k, new_hidden, changes, p)
            elif _is_int(d.get(k)) and d[k] > SMALL_HIDDEN:
                _set(d, k, SMALL_HIDDEN, changes, p)
        for k in HIDDEN_ALIAS_KEYS:
            if _is_int(d.get(k)) and d[k] == old_hidden:
                _set(d, k, new_hidden, changes, p)

    # Heads: keep hidden divisible by heads.
    old_heads = next((d[k] for k in HEAD_KEYS if _is_int(d.get(k))), None)
    new_heads = old_heads
    if old_heads is not None and new_hidden is not None:
        new_heads = min(old_heads, SMALL_HEADS)
        if new_hidden:
            while new_heads > 1 and new_hidden % new_heads:
                new_heads -= 1
        for k in HEAD_KEYS:
            if _is_int(d.get(k)) and d[k] > new_heads:
                _set(d, k, new_heads, changes, p)

    # Key/value heads (GQA / MQA): keep MQA (1), keep MHA (== heads), else 2.
    for k in KV_HEAD_KEYS:
        v = d.get(k)
        if k in d and v is None and old_heads and new_hidden is not None and k != "multi_query_group_num":
            _set(d, k, new_heads, changes, p)  # None means "same as heads"
        if _is_int(v) and old_heads and new_hidden is not None:
            if v >= old_heads:
                nv = new_heads
            elif v == 1:
                nv = 1
            else:
                nv = min(v, SMALL_KV_HEADS)
                while nv > 1 and new_heads % nv:
                    nv -= 1
            _set(d, k, nv, changes, p)

    # Per-head dims that must match the new width.
    if new_hidden and new_heads:
        hd = max(new_hidden // new_heads, 1)
        for k in HEAD_DIM_KEYS:
            if (_is_int(d.get(k)) and d[k] != hd) or (k == "head_dim" and k in d and d[k] is None):
                _set(d, k, hd, changes, p)
        if _is_int(d.get("rotary_dim")) and d["rotary_dim"] > hd:
            _set(d, "rotary_dim", hd, changes, p)
        if _is_int(d.get("d_kv")) and d["d_kv"] > hd:  # T5 family
            _set(d, "d_kv", hd, changes, p)

    # Depth.  Lists / dicts with one entry per layer follow the new depth.
    old_layers = next((d[k] for k in LAYER_KEYS if _is_int(d.get(k))), None)
    new_layers = SMALL_LAYERS
    lt = d.get("layer_types")
    if old_layers and old_layers > SMALL_LAYERS and isinstance(lt, list) and len(lt) == old_layers:
        # keep one layer of every kind (e.g. sliding + full attention), in order of first use
        kinds = []
        for x in lt:
            if x not in kinds:
                kinds.append(x)
        new_layers = max(SMALL_LAYERS, len(kinds))
        if new_layers >= old_layers:
            new_layers = old_layers
    # Backbones (dinov2 in depth_anything, ...) name the stages they output:
    # keep as many layers as they name and point them at the last ones.
    outs = d.get("out_features")
    n_out = len(outs) if isinstance(outs, list) and outs and all(
        isinstance(x, str) and x.startswith("stage") for x in outs) else 0
    if not n_out and isinstance(d.get("out_indices"), list) and d["out_indices"]:
        n_out = len(d["out_indices"])
    if old_layers and n_out and not hierarchical:
        new_layers = min(max(new_layers, n_out), old_layers)
    if not hierarchical:
        for k in LAYER_KEYS:
            v = d.get(k)
            if _is_int(v) and v > new_layers:
                _set(d, k, new_layers, changes, p)
    if old_layers and old_layers > new_layers and not hierarchical:
        for k, v in list(d.items()):
            if k == "layer_types" and isinstance(v, list) and len(v) == old_layers:
                kinds = []
                for x in v:
                    if x not in kinds:
                        kinds.append(x)
                _set(d, k, (kinds + [v[0]] * new_layers)[:new_layers], changes, p)
            elif isinstance(v, list) and len(v) == old_layers and k not in ("depths", "hidden_sizes"):
                _set(d, k, v[:new_layers], changes, p)
            elif isinstance(v, list) and v and all(_is_int(x) for x in v) and max(v) < old_layers \
                    and len(v) < old_layers and re.search(r"(layer|idx|indices|indexes)", k):
                # lists of layer indices (attention layer positions, ...)
                _set(d, k, [x for x in v if x < new_layers], changes, p)
            elif isinstance(v, dict) and v and all(str(x).isdigit() for x in v) \
                    and max(int(x) for x in v) < old_layers and re.search(r"layer", k):
                _set(d, k, {x: y for x, y in v.items() if int(x) < new_layers}, changes, p)
        if _is_int(d.get("first_k_dense_replace")) and d["first_k_dense_replace"] >= new_layers:
            _set(d, "first_k_dense_replace", 1, changes, p)
        if _is_int(d.get("num_kv_shared_layers")) and d["num_kv_shared_layers"] > 0:
            _set(d, "num_kv_shared_layers", 0, changes, p)
        if n_out:
            if isinstance(outs, list) and outs and all(isinstance(x, str) and x.startswith("stage") for x in outs):
                _set(d, "out_features", [f"stage{i}" for i in range(new_layers - n_out + 1, new_layers + 1)],
                     changes, p)
                if isinstance(d.get("out_indices"), list):
                    _set(d, "out_indices", list(range(new_layers - n_out + 1, new_layers + 1)), changes, p)
            elif isinstance(d.get("out_indices"), list):
                _set(d, "out_indices", list(range(new_layers - n_out + 1, new_layers + 1)), changes, p)
            if isinstance(d.get("stage_names"), list):
                _set(d, "stage_names", ["stem"] + [f"stage{i}" for i in range(1, new_layers + 1)], changes, p)

    # State-space (mamba2-style) heads: heads * head_dim == expand * hidden.
    if new_hidden:
        mh = next((k for k in MAMBA_HEAD_KEYS if _is_int(d.get(k))), None)
        mhd = next((k for k in MAMBA_HEAD_DIM_KEYS if _is_int(d.get(k))), None)
        if mh or mhd or _is_int(d.get("mamba_expand")):
            expand = d.get("mamba_expand") if _is_int(d.get("mamba_expand")) else (
                d.get("expand") if _is_int(d.get("expand")) else 2)
            heads = SMALL_HEADS
            if mh:
                _set(d, mh, heads, changes, p)
            if mhd:
                _set(d, mhd, expand * new_hidden // heads, changes, p)
            if _is_int(d.get("mamba_d_ssm")) and mhd:
                _set(d, "mamba_d_ssm", heads * d[mhd], changes, p)
            for k in ("mamba_n_groups", "mamba_ngroups"):
                if _is_int(d.get(k)) and d[k] > 1:
                    _set(d, k, 1, changes, p)
        elif _is_int(d.get("expand")) and _is_int(d.get("n_groups")) and _is_int(d.get("num_heads")) \
                and _is_int(d.get("head_dim")):
            _set(d, "head_dim", d["expand"] * new_hidden // d["num_heads"], changes, p)
            if d["n_groups"] > 1:
                _set(d, "n_groups", 1, changes, p)

    # Multimodal rotary sections must add up to head_dim / 2.
    if new_hidden and new_heads:
        hd = d.get("head_dim") if _is_int(d.get("head_dim")) else new_hidden // new_heads
        for k in ("rope_parameters", "rope_scaling"):
            if isinstance(d.get(k), dict):
                fixed = _fix_mrope(d[k], hd // 2)
                if fixed != d[k]:
                    _set(d, k, fixed, changes, p)

    # Time series configs ship prediction_length=None: the model needs one.
    if "prediction_length" in d and d["prediction_length"] is None:
        _set(d, "prediction_length", 8, changes, p)
        if "context_length" in d and d["context_length"] is None:
            _set(d, "context_length", 16, changes, p)

    # Feed-forward widths.
    for k in (() if keep_width else ffn_keys):
        v = d.get(k)
        if _is_int(v) and v > SMALL_FFN:
            _set(d, k, SMALL_FFN, changes, p)
        elif isinstance(v, list) and v and all(_is_int(x) for x in v) and max(v) > SMALL_FFN:
            _set(d, k, [min(x, SMALL_FFN) for x in v], changes, p)  # per-layer widths
    for k in (() if keep_width else MOE_FFN_KEYS):
        v = d.get(k)
        if (_is_int(v) and v > SMALL_MOE_FFN) or (k == "moe_intermediate_size" and k in d and v is None
                                                   and any(_is_int(d.get(e)) for e in EXPERT_KEYS)):
            _set(d, k, SMALL_MOE_FFN, changes, p)

    # Mixture of experts.
    for k in EXPERT_KEYS:
        v = d.get(k)
        if _is_int(v) and v > SMALL_EXPERTS:
            _set(d, k, SMALL_EXPERTS, changes, p)
    n_exp = next((d[k] for k in EXPERT_KEYS if _is_int(d.get(k))), None)
    for k in TOPK_KEYS:
        v = d.get(k)
        if n_exp is not None and ((_is_int(v) and v > min(SMALL_TOPK, n_exp)) or (k in d and v is None)):
            _set(d, k, min(SMALL_TOPK, n_exp), changes, p)
    if n_exp is not None:
        if _is_int(d.get("n_group")) and d["n_group"] > 1:
            _set(d, "n_group", 1, changes, p)
        if _is_int(d.get("topk_group")) and d["topk_group"] > 1:
            _set(d, "topk_group", 1, changes, p)

    # Multi-head latent attention (deepseek-style).
    for k in (() if keep_width else ("kv_lora_rank", "q_lora_rank")):
        if _is_int(d.get(k)) and d[k] > SMALL_LORA_RANK:
            _set(d, k, SMALL_LORA_RANK, changes, p)
    for k in (() if keep_width else ("qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim")):
        if _is_int(d.get(k)) and d[k] > SMALL_ROPE_DIM:
            _set(d, k, SMALL_ROPE_DIM, changes, p)
    if "qk_head_dim" in d and _is_int(d.get("qk_rope_head_dim")) and _is_int(d.get("qk_nope_head_dim")):
        _set(d, "qk_head_dim", d["qk_rope_head_dim"] + d["qk_nope_head_dim"], changes, p)

    # Hierarchical vision backbones: one block per stage.
    if isinstance(d.get("depths"), list) and all(_is_int(x) for x in d["depths"]):
        if any(x > 1 for x in d["depths"]):
            _set(d, "depths", [1] * len(d["depths"]), changes, p)

    # Position limits must cover the sequence we will feed.
    for k in ("max_position_embeddings", "n_positions"):
        if _is_int(d.get(k)) and 0 < d[k] < seq_len:
            _set(d, k, seq_len, changes, p)

    # Recurse into sub-configs.
    for k, v in list(d.items()):
        if isinstance(v, dict) and (_looks_like_config(v) and (SUBCONFIG_HINT.search(k) or "model_type" in v)):
            sub, sub_changes = shrink_config_dict(v, seq_len, _path=f"{p}{k}.", keep_width=keep_width)
            d[k] = sub
            changes.extend(sub_changes)

    # Placeholder token ids (image_token_index, ...) must be inside the text
    # vocabulary; some default configs (llava: id 32000, vocab 32000) are not.
    text = d.get("text_config") if isinstance(d.get("text_config"), dict) else d
    vocab = vocab_for_placeholders(d.items(), text.get("vocab_size"))
    if vocab is not None:
        _set(text, "vocab_size", vocab, changes, f"{p}text_config." if text is not d else p)
    return d, changes


# The placeholder tokens the runner puts in input_ids for image, video and
# audio features.
PLACEHOLDER_TOKEN = re.compile(r"^(image|video|audio)_token_(id|index)$")


def vocab_for_placeholders(items, vocab, placeholders_only=False):
    """The text vocabulary size that holds every special token id among a
    config's (key, value) items (*_token_index, *_token_id: image_token_id,
    pad_token_id, ...; with placeholders_only, only the image, video and
    audio placeholders the runner feeds), or None when vocab already does
    (or is not a size).  Default configs of llava (id 32000, vocab 32000),
    deepseek-vl (100015 against 32000), florence2 and modernvbert put their
    image token past the vocabulary: an embedding lookup out of range, a
    device-side assert."""
    ids = [v for k, v in items if _is_int(v) and isinstance(k, str)
           and (PLACEHOLDER_TOKEN.match(k) if placeholders_only else k.endswith(("_token_index", "_token_id")))]
    if ids and _is_int(vocab) and max(ids) >= vocab:
        return max(ids) + 1
    return None


def _fix_mrope(rope: dict, half: int) -> dict:
    """Scale any 'mrope_section' list (recursively) so it sums to `half`."""
    out = {}
    for k, v in rope.items():
        if k == "mrope_section" and isinstance(v, list) and v and all(_is_int(x) for x in v) and sum(v) != half:
            total = sum(v)
            new = [max(1, x * half // total) for x in v]
            new[-1] += half - sum(new)
            out[k] = new
        elif isinstance(v, dict):
            out[k] = _fix_mrope(v, half)
        else:
            out[k] = v
    return out


def estimate_params_from_dict(cfg: dict) -> int:
    """Very rough transformer parameter estimate from a config dict.

    12*L*H^2 (attention + 4x MLP) + vocab*H, summed over sub-configs.  Only
    used when the exact count (model built on the meta device) is unknown.
    """
    total = 0
    hidden = next((cfg[k] for k in HIDDEN_KEYS if _is_int(cfg.get(k))), 0)
    layers = 0
    for k in LAYER_KEYS:
        if _is_int(cfg.get(k)):
            if k in ("encoder_layers", "decoder_layers", "num_encoder_layers", "num_decoder_layers"):
                layers += cfg[k]
            else:
                layers = max(layers, cfg[k])
    ffn = next((cfg[k] for k in FFN_KEYS if _is_int(cfg.get(k))), 4 * hidden)
    n_exp = next((cfg[k] for k in EXPERT_KEYS if _is_int(cfg.get(k))), 1)
    vocab = cfg.get("vocab_size") if _is_int(cfg.get("vocab_size")) else 0
    total += layers * (4 * hidden * hidden + 2 * hidden * ffn * max(n_exp, 1)) + vocab * hidden
    for k, v in cfg.items():
        if isinstance(v, dict) and _looks_like_config(v):
            total += estimate_params_from_dict(v)
    return int(total)


# --------------------------------------------------------------------------
# input planning
#
# `facts` is a plain dict extracted from the model config (see
# hfleet_inputs.config_facts); `params` maps forward() parameter names to
# True when the parameter is required (no default).  The plan is a list of
# specs the torch side materialises:
#   {"name", "dtype": "long"|"float"|"bool", "shape": [...], "fill": "randint"|"randn"|"ones"|"zeros"|"value",
#    "high": int (randint), "value": python value (fill == "value")}

def _image_hw(facts):
    size = facts.get("image_size")
    if _is_int(size) and size > 0:
        return [size, size]
    if isinstance(size, (list, tuple)) and len(size) >= 2 and all(_is_int(x) for x in size[-2:]):
        return [int(size[-2]), int(size[-1])]
    if isinstance(size, dict):
        h = size.get("height") or size.get("shortest_edge")
        w = size.get("width") or size.get("shortest_edge")
        if _is_int(h) and _is_int(w):
            return [h, w]
    return [224, 224]


class PlanError(ValueError):
    """No way to build an input the model requires."""


def plan_inputs(facts: dict, params: dict, modality: str, batch_size: int, seq_len: int,
                accepts_kwargs: bool = False, provided=()) -> list:
    """Decide which forward() inputs to build, with shapes.

    A non-required input is built when the modality calls for it; a required
    one is built whenever we know how.  Raises PlanError for a required
    input we cannot build.  `provided` names inputs a model recipe builds
    (hfleet_recipes.py): they are left out of the plan, and a plan that is
    empty because of them is not an error.
    """
    provided = set(provided)
    if provided:
        params = {k: v for k, v in params.items() if k not in provided}
    plan = _plan_inputs(facts, params, modality, batch_size, seq_len)
    if provided:
        return plan
    if not any(s["fill"] != "value" for s in plan):
        # The modality names nothing this forward() takes (e.g. a vision tower
        # registered as 'text'): fall back to what the signature offers.
        for name, alt in (("pixel_values", "image"), ("input_values", "audio"), ("input_features", "audio"),
                          ("past_values", "time-series"), ("input_ids", "text")):
            if name in params:
                plan = _plan_inputs(facts, params, alt, batch_size, seq_len)
                break
    if not any(s["fill"] != "value" for s in plan):
        raise PlanError(
            f"no input could be planned for modality {modality!r} from forward() parameters "
            f"{sorted(params)[:12]}")
    return plan


# forward() parameters that mean dynamic-resolution / pre-patched vision
# inputs (qwen2-vl style grids); v1 does not build those.
UNSUPPORTED_VISION_PARAMS = ("image_grid_thw", "grid_thw", "pixel_position_ids", "image_position_ids")


def _plan_inputs(facts, params, modality, batch_size, seq_len):
    parts = lib.modality_parts(modality)
    # A dual encoder (text_config + vision_config / audio_config) needs both sides.
    if facts.get("has_text_config") and facts.get("has_vision_config") and "pixel_values" in params \
            and "input_ids" in params and ("image" in parts or "text" in parts):
        parts |= {"image", "text"}
    if facts.get("has_text_config") and facts.get("has_audio_config") and "input_ids" in params \
            and ("input_features" in params or "input_values" in params) and ("audio" in parts or "text" in parts):
        parts |= {"audio", "text"}
    want_text = "text" in parts
    want_image = "image" in parts
    want_video = "video" in parts
    want_audio = "audio" in parts
    want_ts = "time-series" in parts
    b = batch_size
    plan = []
    planned = set()

    def has(name):
        return name in params

    def required(name):
        return params.get(name) is True

    def add(spec):
        if spec["name"] not in planned:
            planned.add(spec["name"])
            plan.append(spec)

    max_pos = facts.get("max_positions")
    L = seq_len
    if _is_int(max_pos) and max_pos > 0:
        L = min(L, max_pos)
    vocab = facts.get("vocab_size")

    # Text
    if has("input_ids") and (want_text or required("input_ids") or not (want_image or want_video or want_audio or want_ts)):
        if not _is_int(vocab) or vocab <= 0:
            raise PlanError("input_ids needed but the config has no vocab_size")
        add({"name": "input_ids", "dtype": "long", "shape": [b, L], "fill": "randint", "high": vocab,
             "exclude": list(facts.get("placeholder_token_ids") or [])})
        if has("attention_mask"):
            add({"name": "attention_mask", "dtype": "long", "shape": [b, L], "fill": "ones"})
        if has("bbox"):
            add({"name": "bbox", "dtype": "long", "shape": [b, L, 4], "fill": "bbox"})

    # Encoder-decoder decoder side
    if has("decoder_input_ids") and (facts.get("is_encoder_decoder") or required("decoder_input_ids")):
        dvocab = facts.get("decoder_vocab_size") or vocab
        if not _is_int(dvocab) or dvocab <= 0:
            raise PlanError("decoder_input_ids needed but the config has no vocab_size")
        dl = min(L, lib.DECODER_SEQ_LEN_CAP)
        add({"name": "decoder_input_ids", "dtype": "long", "shape": [b, dl], "fill": "randint", "high": dvocab})

    # Images / video
    channels = facts.get("num_channels") if _is_int(facts.get("num_channels")) else 3
    h, w = _image_hw(facts)
    if has("pixel_values") and (want_image or want_video or required("pixel_values")):
        odd = [n for n in UNSUPPORTED_VISION_PARAMS if n in params]
        if odd:
            raise PlanError(f"dynamic-resolution vision inputs ({', '.join(odd)}) are not built by this runner version")
        if want_video or (facts.get("num_frames") and not want_image):
            frames = facts.get("num_frames") if _is_int(facts.get("num_frames")) else 8
            add({"name": "pixel_values", "dtype": "float", "shape": [b, frames, channels, h, w], "fill": "randn"})
        else:
            add({"name": "pixel_values", "dtype": "float", "shape": [b, channels, h, w], "fill": "randn"})
            if has("image_sizes") and (required("image_sizes") or facts.get("vision_takes_image_sizes")):
                add({"name": "image_sizes", "dtype": "long", "shape": [b, 2], "fill": "rows", "row": [h, w]})

    # Audio
    spec = facts.get("spectrogram")  # [frames, mel_bins]: AST-style input_values
    if has("input_values") and (want_audio or required("input_values")) and spec:
        add({"name": "input_values", "dtype": "float", "shape": [b, spec[0], spec[1]], "fill": "randn"})
    if has("input_values") and (want_audio or required("input_values")):
        samples = facts.get("audio_samples") if _is_int(facts.get("audio_samples")) else 16000
        ch = facts.get("audio_channels")
        shape = [b, ch, samples] if _is_int(ch) and ch > 0 else [b, samples]  # codecs: (batch, channels, samples)
        add({"name": "input_values", "dtype": "float", "shape": shape, "fill": "randn"})
        if has("attention_mask") and "attention_mask" not in planned and facts.get("audio_attention_mask"):
            add({"name": "attention_mask", "dtype": "long", "shape": [b, samples], "fill": "ones"})
    if has("input_features") and (want_audio or required("input_features")):
        mel = facts.get("num_mel_bins")
        feat = facts.get("feature_size")
        if _is_int(mel) and mel > 0:
            frames = facts.get("audio_frames") if _is_int(facts.get("audio_frames")) else 3000
            add({"name": "input_features", "dtype": "float", "shape": [b, mel, frames], "fill": "randn"})
        elif _is_int(feat) and feat > 0:
            frames = facts.get("audio_frames") if _is_int(facts.get("audio_frames")) else 4 * L
            add({"name": "input_features", "dtype": "float", "shape": [b, frames, feat], "fill": "randn"})
        elif required("input_features"):
            raise PlanError("input_features needed but the config has neither num_mel_bins nor a feature size")
        feats = next((sp for sp in plan if sp["name"] == "input_features"), None)
        if feats is not None:
            # A mask of the features' own is built; a plain attention_mask only
            # when required: an all-ones mask means no masking, and encoders
            # that take one (qwen2-audio, voxtral) pass it on as an attention
            # bias that a long tensor breaks.
            frames = feats["shape"][2] if _is_int(mel) and mel > 0 else feats["shape"][1]
            for mask in ("input_features_mask", "feature_attention_mask", "attention_mask"):
                if has(mask) and (mask != "attention_mask" or required(mask)):
                    add({"name": mask, "dtype": "long", "shape": [b, frames], "fill": "ones"})
                    break

    # Time series
    if has("past_values") and (want_ts or required("past_values")):
        ctx = facts.get("context_length")
        if not _is_int(ctx) or ctx <= 0:
            raise PlanError("past_values needed but the config has no context_length")
        pred = facts.get("prediction_length") if _is_int(facts.get("prediction_length")) else 1
        if has("past_time_features"):
            # time_series_transformer / informer / autoformer
            lags = facts.get("lags_max") if _is_int(facts.get("lags_max")) else 0
            past_len = ctx + lags
            inp = facts.get("input_size") if _is_int(facts.get("input_size")) else 1
            tail = [] if inp == 1 else [inp]
            ntf = facts.get("num_time_features") if _is_int(facts.get("num_time_features")) else 0
            add({"name": "past_values", "dtype": "float", "shape": [b, past_len] + tail, "fill": "randn"})
            add({"name": "past_time_features", "dtype": "float", "shape": [b, past_len, ntf], "fill": "randn"})
            if has("past_observed_mask"):
                add({"name": "past_observed_mask", "dtype": "float", "shape": [b, past_len] + tail, "fill": "ones"})
            if has("future_values"):
                add({"name": "future_values", "dtype": "float", "shape": [b, pred] + tail, "fill": "randn"})
            if has("future_time_features"):
                add({"name": "future_time_features", "dtype": "float", "shape": [b, pred, ntf], "fill": "randn"})
            nsc = facts.get("num_static_categorical_features")
            if has("static_categorical_features") and _is_int(nsc) and nsc > 0:
                card = facts.get("min_cardinality") if _is_int(facts.get("min_cardinality")) else 1
                add({"name": "static_categorical_features", "dtype": "long", "shape": [b, nsc],
                     "fill": "randint", "high": max(card, 1)})
            nsr = facts.get("num_static_real_features")
            if has("static_real_features") and _is_int(nsr) and nsr > 0:
                add({"name": "static_real_features", "dtype": "float", "shape": [b, nsr], "fill": "randn"})
        else:
            # patchtst / patchtsmixer style: (batch, context, channels)
            ch = facts.get("num_input_channels") if _is_int(facts.get("num_input_channels")) else 1
            add({"name": "past_values", "dtype": "float", "shape": [b, ctx, ch], "fill": "randn"})
            if has("past_observed_mask") and required("past_observed_mask"):
                add({"name": "past_observed_mask", "dtype": "float", "shape": [b, ctx, ch], "fill": "ones"})

    # Flags
    if has("use_cache"):
        add({"name": "use_cache", "dtype": "bool", "shape": [], "fill": "value", "value": False})
    if has("return_dict"):
        add({"name": "return_dict", "dtype": "bool", "shape": [], "fill": "value", "value": True})

    # Anything still required that we do not know how to make.
    missing = [n for n, req in params.items() if req and n not in planned]
    if missing:
        raise PlanError(f"forward() requires inputs this runner cannot build: {', '.join(sorted(missing))}")
    return plan


def forward_params(fn) -> tuple:
    """(params, accepts_kwargs) from a callable's signature: {name: required}."""
    sig = inspect.signature(fn)
    params = {}
    accepts_kwargs = False
    for name, prm in sig.parameters.items():
        if name == "self":
            continue
        if prm.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_kwargs = True
            continue
        if prm.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        params[name] = prm.default is inspect.Parameter.empty
    return params, accepts_kwargs
