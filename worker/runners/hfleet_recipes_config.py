# SPDX-License-Identifier: MIT
"""Recipes for model types whose transformers default config does not build
as it is (a missing or None attribute, a per-layer-type rope table without
the layer type used): the fix_config recipes that complete it.

Part of the recipe table (hfleet_recipes.py joins RECIPES into its own);
built on hfleet_recipe_base.  Torch only through Ctx.torch.

Each fix completes the config the way the model's own code (or its released
checkpoint) expects, and works on the default config and on the shrunk one
alike (`shrunk` says whether the widths were narrowed).  Values that the
released checkpoint fixes and the default config leaves None are taken from
that checkpoint where it is known; the notes say which.

Fixes that need nothing but the config (CONFIG_FIXES) become recipes with
no inputs of their own, so the recipe forward()'s signature calls for
(hfleet_recipes.for_signature) still applies to them; the other RECIPES
also build inputs or name a model class.

SHRUNK_DICT_FIXES holds fixes for configs whose validator the shrinker
trips: they must run on the shrunk dict, before the config class is built
from it (hfleet_build.shrunk_config).

Some default configs build, but their random initialisation gives
activations float16 cannot hold (the fp16 benchmark of the full-size
config then fails with non-finite outputs while fp32 passes):
tame_init_std (generic: an init_std that overflows, cpmant) changes only
the random weights' scale, never a layer, a width or a dtype.  Where no
one scale suits every layer, BatchNorm networks get their running
statistics from the task's own input instead (calibrate_batchnorm, a
recipe's flag: align, whose EfficientNet tower underflows float16).

One builds and holds its values but takes an FFT cuFFT cannot compute in
half precision (fnet: 768 features): its recipe is no config fix but an
inputs() one that, at fp16 or bf16 on CUDA only, computes the same 2-D DFT
as matrix products (the path transformers' FNet has for TPUs), at the
input's own sizes.
"""

from __future__ import annotations

import math
import sys

import hfleet_runner_lib as lib
from hfleet_recipe_base import Recipe, _get, _sub, _token, fit_tower_to_text_width, is_power_of_two


# --------------------------------------------------------------------------
# helpers

def _has(obj, name):
    """hasattr that survives configs whose __getattribute__ raises on unknown keys."""
    try:
        getattr(obj, name)
        return True
    except AttributeError:
        return False


def _fill(cfg, notes, prefix="", **values):
    """Set each attribute that is None (or missing) on cfg; note what was set."""
    for k, v in values.items():
        if cfg is None:
            return
        if not _has(cfg, k) or getattr(cfg, k) is None:
            setattr(cfg, k, v)
            notes.append(f"{prefix}{k}={v!r} (unset in the default config)")


def _text_configs(config, model_types):
    """config itself and its text_config, whichever has one of model_types."""
    out = []
    for c in (config, _sub(config, "text_config")):
        if c is not None and getattr(c, "model_type", None) in model_types and c not in out:
            out.append(c)
    return out


def _config_and_text(config):
    """(prefix for a note, config) for config and its text_config where it
    has one: the generic fixes look at both."""
    return [(prefix, c) for prefix, c in (("", config), ("text_config.", _sub(config, "text_config")))
            if c is not None]


def _head_dim(c):
    hd = _get(c, "head_dim")
    if isinstance(hd, int) and hd > 0:
        return hd
    return c.hidden_size // c.num_attention_heads


def _hw_t_sections(half, ratio=(22, 22, 20)):
    """[h, w, t] rotary sections in the 22:22:20 proportion of ernie-4.5-vl /
    cohere-compass (their code's default for a 128-wide head), summing to
    `half`, with h == w (the two spatial axes are pre-rotated together)."""
    t = max(1, half * ratio[2] // sum(ratio))
    rest = half - t
    if rest % 2:
        t += 1
        rest -= 1
    return [rest // 2, rest // 2, t]


def _config_module_class(config, name):
    """A class of the module that defined config's class (transformers'
    configuration_<model>.py), without importing transformers here."""
    mod = sys.modules.get(type(config).__module__)
    return getattr(mod, name, None) if mod is not None else None


# --------------------------------------------------------------------------
# per-layer-type rope tables

def _cohere_compass_config(config, shrunk):
    """CohereCompassTextConfig replaces the inherited rope conversion with its
    own, which never adds rope_theta: the default config keeps an empty
    rope_parameters, and the rotary embedding reads
    rope_parameters[layer_type] for every layer type used."""
    notes = []
    for c in _text_configs(config, ("cohere_compass_text",)):
        rp = c.rope_parameters if isinstance(c.rope_parameters, dict) else {}
        half = _head_dim(c) // 2
        sections = [22, 22, 20] if half == 64 else _hw_t_sections(half)
        added = []
        for lt in dict.fromkeys(c.layer_types or ["full_attention"]):
            if not isinstance(rp.get(lt), dict):
                rp[lt] = {"rope_type": "default", "rope_theta": float(rp.get("rope_theta", 10000.0)),
                          "mrope_section": list(sections)}
                added.append(lt)
            elif sum(rp[lt].get("mrope_section", [22, 22, 20])) != half:
                rp[lt]["mrope_section"] = list(sections)
                added.append(lt)
        for k in ("rope_theta", "rope_type"):   # dangling global keys (the modeling code pops them too)
            if added and k in rp and not isinstance(rp[k], dict):
                rp.pop(k)
        c.rope_parameters = rp
        if added:
            notes.append(f"rope_parameters[{', '.join(added)}] = default rope, theta 10000, "
                         f"mrope_section {sections} (empty in the default config)")
    return notes


def _ernie4_5_vl_moe_config(config, shrunk):
    """The text rotary embedding pre-rotates [h, w, t] sections read from
    rope_parameters with a default of [22, 22, 20] (a 128-wide head): a
    narrower head needs sections that add up to its half."""
    notes = []
    for c in _text_configs(config, ("ernie4_5_vl_moe_text",)) or [_sub(config, "text_config") or config]:
        rp = c.rope_parameters if isinstance(c.rope_parameters, dict) else None
        if rp is None:
            continue
        half = _head_dim(c) // 2
        if sum(rp.get("mrope_section", [22, 22, 20])) != half:
            rp["mrope_section"] = _hw_t_sections(half)
            notes.append(f"text rope mrope_section={rp['mrope_section']} (sums to the head's half {half})")
    return notes


# --------------------------------------------------------------------------
# None attributes the model code reads

def _deepseek_ocr2_config(config, shrunk):
    """mlp_layer_types is None in the default config; DeepSeek-OCR-2's
    language model (first_k_dense_replace=1) is one dense layer then MoE."""
    notes = []
    tc = _sub(config, "text_config") or config
    if getattr(tc, "mlp_layer_types", 0) is None:
        n = tc.num_hidden_layers
        tc.mlp_layer_types = ["dense"] + ["sparse"] * (n - 1)
        notes.append(f"text mlp_layer_types=['dense'] + ['sparse'] * {n - 1} (None in the default config)")
    _fill(tc, notes, "text ", num_experts_per_tok=2 if shrunk else 6)
    # The SAM neck's last width feeds the vision encoder's sequence next to
    # its learned queries (torch.cat): it must be the encoder's width (896 in
    # the released model, whose encoder is 896 wide; the default config's
    # encoder is 4096 wide).
    vc = _sub(config, "vision_config")
    sam, enc = _sub(vc, "sam_config"), _sub(vc, "encoder_config")
    chans = getattr(sam, "downsample_channels", None)
    width = getattr(enc, "hidden_size", None)
    if isinstance(chans, list) and chans and isinstance(width, int) and chans[-1] != width:
        sam.downsample_channels = chans[:-1] + [width]
        notes.append(f"vision sam_config.downsample_channels[-1]={width} (= the vision encoder's width)")
    return notes


def _dots1_config(config, shrunk):
    """dots.llm1 leaves its MoE sizes None (the released checkpoint: 128
    routed experts, 6 per token, 2 shared, first layer dense)."""
    notes = []
    if shrunk:
        _fill(config, notes, n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1)
    else:
        _fill(config, notes, n_routed_experts=128, num_experts_per_tok=6, n_shared_experts=2)
    return notes


def _tower_width_of_text(sub, attr, released):
    """A default config fix for a model whose tower's output width (its
    sub-config's attr) differs from the text model's hidden_size although
    forward() puts the tower's features in place of the text embeddings of
    its placeholder tokens, so the two must be one width (transformers
    compares their sizes and refuses).  The default is made to the text
    width (hfleet_recipe_base.fit_tower_to_text_width, which the shrunk
    config's generic fit_vision_out_width uses too)."""
    def fix(config, shrunk):
        fitted = None if shrunk else fit_tower_to_text_width(config, sub, attr)
        if fitted is None:
            return []
        want, was = fitted
        return [f"{sub}.{attr}={want} (= the text width; the default config has {was}, {released})"]
    return fix


def _emu3_config(config, shrunk):
    """Emu3's model maps VQ codes to BPE tokens through vocabulary_map (the
    tokenizer's), None in the default config.  The released vocabulary ends
    with the VQ codebook ('<|visual token 000000|>' ..., 184622 = 151854 +
    32768); '<|extra_200|>' (end of line) and '<image>' sit below it."""
    if getattr(config, "vocabulary_map", None):
        return []
    vocab = config.text_config.vocab_size
    cb = _get(_sub(config, "vq_config"), "codebook_size", default=32768)
    base = vocab - cb
    if base < 16:
        return ["vocabulary_map not set: the text vocabulary is smaller than the VQ codebook"]
    m = {f"<|visual token {i:06d}|>": base + i for i in range(cb)}
    m["<|extra_200|>"] = base - 8
    m["<image>"] = base - 7
    config.vocabulary_map = m
    config.image_token_id = base - 7
    return [f"vocabulary_map: {cb} visual tokens from id {base}, <image>={base - 7}, "
            f"<|extra_200|>={base - 8} (None in the default config)"]


def _granite4_vision_config(config, shrunk):
    """The default config gives granite4_vision a LlamaConfig text model,
    while its language model is Granite4VisionTextModel (attention_multiplier,
    ...); downsample_rate and deepstack_layer_map are None, and the layer
    indices name a 32-layer LLM."""
    notes = []
    tc = config.text_config
    text_cls = _config_module_class(config, "Granite4VisionTextConfig")
    if text_cls is not None and not isinstance(tc, text_cls):
        keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "hidden_act", "max_position_embeddings", "initializer_range",
                "rms_norm_eps", "pad_token_id", "bos_token_id", "eos_token_id", "tie_word_embeddings",
                "attention_bias", "attention_dropout", "mlp_bias")
        kw = {k: getattr(tc, k) for k in keys if _has(tc, k)}
        config.text_config = tc = text_cls(**kw)
        notes.append(f"text_config={text_cls.__name__} with the Llama default's sizes "
                     "(the default config builds a LlamaConfig the Granite text model cannot read)")
    vc = config.vision_config
    side = vc.image_size // vc.patch_size
    if config.downsample_rate is None:
        # query windows of q x q over windows of 2q x 2q (a rate of 1/2), the
        # largest q <= 4 whose window tiles the patch grid
        q = next((q for q in (4, 3, 2, 1) if side % (2 * q) == 0), None)
        if q is not None:
            config.downsample_rate = f"{q}/{2 * q}"
            notes.append(f"downsample_rate={config.downsample_rate} (None in the default config; "
                         f"windows tile the {side}x{side} patch grid)")
    n_text = tc.num_hidden_layers
    if config.deepstack_layer_map is None:
        config.deepstack_layer_map = [(-1, 0)]
        notes.append("deepstack_layer_map=[(-1, 0)] (None in the default config)")
    if any(x >= n_text for x in config.spatial_target_layers):
        config.spatial_target_layers = [min(i, n_text - 1) for i in range(len(config.spatial_target_layers))]
        notes.append(f"spatial_target_layers={config.spatial_target_layers} (the text model has {n_text} layers)")
    if str(getattr(vc, "model_type", "")).startswith("siglip") and config.vision_feature_select_strategy == "default":
        # "default" drops a CLS token SigLIP does not have: the window
        # downsamplers then see side^2 - 1 tokens and refuse them
        config.vision_feature_select_strategy = "full"
        notes.append("vision_feature_select_strategy='full' (the default SigLIP tower has no CLS token)")
    s = vc.image_size
    if config.image_grid_pinpoints != [[s, s]]:
        config.image_grid_pinpoints = [[s, s]]
        notes.append(f"image_grid_pinpoints=[[{s}, {s}]] (one tile at the vision tower's size)")
    qc = _sub(config, "qformer_config")
    if qc is not None and _has(qc, "encoder_hidden_size") and qc.encoder_hidden_size != vc.hidden_size:
        qc.encoder_hidden_size = vc.hidden_size
        notes.append(f"qformer encoder_hidden_size={vc.hidden_size} (= the vision width it reads)")
    return notes


def _moonshine_streaming_config(config, shrunk):
    """The decoder reads num_key_value_heads and mlp_bias, which
    MoonshineStreamingConfig does not define (the released checkpoints use
    full multi-head attention and MLPs without bias)."""
    notes = []
    _fill(config, notes, num_key_value_heads=config.num_attention_heads, mlp_bias=False)
    return notes


def _perception_lm_config(config, shrunk):
    """PerceptionLM's vision tower is timm's Perception Encoder
    (vit_pe_core_large_patch14_336 in the released 1B/3B), whose model_args
    the projector reads (embed_dim); the default TimmWrapperConfig has none.
    The shrunk tower follows transformers' own test (embed 64, depth 2); it
    takes 224 x 224 tiles (16 x 16 patches of 14)."""
    vc = config.vision_config
    if getattr(vc, "model_args", None):
        return []
    s = 224 if shrunk else 448
    vc.architecture = "vit_pe_core_large_patch14_336"
    vc.model_args = {"embed_dim": 64 if shrunk else 1024, "depth": 2 if shrunk else 23,
                     "img_size": [s, s], "global_pool": "", "use_post_transformer_norm": False,
                     "init_values": 0.1, "ref_feat_shape": [s // 14, s // 14]}
    return [f"vision tower vit_pe_core_large_patch14_336, model_args {vc.model_args} "
            "(the default TimmWrapperConfig has none)"]


def _qwen4_exp_config(config, shrunk):
    """Qwen4-Exp's sparse-attention layers always build the QSA token
    indexer, whose sizes are all None in the default config (its validator
    wants one key head, budget divisible by the block size, index heads at
    least as wide as the rotary part)."""
    notes = []
    for c in _text_configs(config, ("qwen4_exp_text",)):
        if c.indexer_budget is not None:
            continue
        c.indexer_n_heads = c.num_attention_heads
        c.indexer_kv_heads = 1
        c.indexer_head_dim = c.head_dim
        c.indexer_compress_ratio = 4
        c.indexer_budget = 64 if shrunk else 2048    # shrunk: 16 of the 32 blocks of a 128-token test
        notes.append(f"QSA indexer: {c.indexer_n_heads} heads x {c.indexer_head_dim}, 1 key head, "
                     f"budget {c.indexer_budget} tokens in blocks of 4 (None in the default config)")
    return notes


def _t5gemma2_config(config, shrunk):
    """The encoder's text config never gets dropout_rate unless the
    T5Gemma2Config wrapper copies it in (a bare T5Gemma2EncoderConfig does
    not), and the multimodal projector pools the vision patch grid to
    mm_tokens_per_image (256 = 16 x 16, more than the default 224 / 16 = 14
    patches a side of SigLIP): pool to half the grid, as for gemma3."""
    notes = []
    enc = _sub(config, "encoder") if getattr(config, "model_type", "") == "t5gemma2" else config
    dec = _sub(config, "decoder") if enc is not config else None
    for name, c in (("text", _sub(enc, "text_config")), ("decoder", dec)):
        if c is not None:
            _fill(c, notes, f"{name} ", dropout_rate=0.0, attention_dropout=0.0)
    vc = _sub(enc, "vision_config")
    if vc is not None and _has(enc, "mm_tokens_per_image"):
        side = vc.image_size // vc.patch_size
        per_side = side // 2 if side % 2 == 0 else side
        want = per_side * per_side
        if int(math.isqrt(enc.mm_tokens_per_image or 0)) == 0 or side % math.isqrt(enc.mm_tokens_per_image):
            enc.mm_tokens_per_image = want
            notes.append(f"mm_tokens_per_image={want} (pool the {side}x{side} patch grid by 2)")
    return notes


def _timm_backbone_config(config, shrunk):
    """TimmBackboneConfig names no timm model by default.  TimmBackbone calls
    timm.create_model(backbone, pretrained=False): a random-init model from
    timm's own architecture table, no Hub files.  resnet50 is the model its
    docstring names."""
    if config.backbone is None:
        config.backbone = "resnet50"
        return ["backbone='resnet50' (timm, random init: pretrained=False needs no Hub files)"]
    return []


def _step3p7_config(config, shrunk):
    """The text model builds the sliding-window mask whatever layer_types
    says, and the default config's sliding_window is None (Step 3.5/3.7
    checkpoints: 512)."""
    notes = []
    tc = _sub(config, "text_config") or config
    _fill(tc, notes, "text ", sliding_window=512)
    return notes


def _diffusion_gemma_text_config(config, shrunk):
    """Every DiffusionGemma text layer has a router and experts, and the
    default text config leaves their sizes None (diffusiongemma-26B-A4B:
    128 experts, 8 per token, 704 wide)."""
    notes = []
    if shrunk:
        _fill(config, notes, num_experts=4, top_k_experts=2, moe_intermediate_size=64)
    else:
        _fill(config, notes, num_experts=128, top_k_experts=8, moe_intermediate_size=704)
    return notes


def _dia_decoder_config(config, shrunk):
    """The decoder's cross-attention keeps the default 16 x 128 heads over a
    1024-wide encoder when the rest is shrunk: narrow it with the model (the
    encoder side is the recipe's own encoder_hidden_states)."""
    if not shrunk:
        return []
    notes = []
    for k, v in (("cross_num_attention_heads", config.num_attention_heads),
                 ("cross_num_key_value_heads", config.num_attention_heads),
                 ("cross_head_dim", config.head_dim), ("cross_hidden_size", config.hidden_size)):
        if getattr(config, k) != v:
            setattr(config, k, v)
            notes.append(f"{k}={v}")
    return notes


# --------------------------------------------------------------------------
# validators the shrinker trips (run on the shrunk dict, before the build)

def _efficientloftr_dict(d):
    """validate_architecture: hidden_size == out_features[-1]."""
    outs, h = d.get("out_features"), d.get("hidden_size")
    if isinstance(outs, list) and outs and isinstance(h, int) and outs[-1] != h:
        d["out_features"] = [min(x, h) for x in outs]
        return [f"out_features: {outs} -> {d['out_features']} (the last must equal hidden_size {h})"]
    return []


def _fun_asr_nano_dict(d):
    """validate_architecture: adaptor hidden == text hidden, adaptor
    intermediate == text hidden // 4; and the encoder's last
    num_timestamp_prediction_layers (20) must leave transcription layers."""
    notes = []
    tc, ac, enc = d.get("text_config") or {}, d.get("adaptor_config") or {}, d.get("audio_config") or {}
    th = tc.get("hidden_size")
    if isinstance(th, int):
        for k, v in (("hidden_size", th), ("intermediate_size", th // 4)):
            if ac.get(k) != v:
                ac[k] = v
                notes.append(f"adaptor_config.{k}={v} (tied to text hidden {th})")
    n, ts = enc.get("num_hidden_layers"), enc.get("num_timestamp_prediction_layers")
    if isinstance(n, int) and isinstance(ts, int) and ts >= n:
        enc["num_timestamp_prediction_layers"] = max(1, n // 2)
        notes.append(f"audio_config.num_timestamp_prediction_layers={enc['num_timestamp_prediction_layers']} "
                     f"(of {n} layers)")
    return notes


def _efficientloftr_config(config, shrunk):
    if shrunk and config.hidden_size != config.out_features[-1]:
        return ["efficientloftr: hidden_size != out_features[-1] (the shrunk dict fix did not run)"]
    return []


def _fun_asr_nano_config(config, shrunk):
    notes = []
    enc = config.audio_config
    if shrunk and enc.num_timestamp_prediction_layers >= enc.num_hidden_layers:
        enc.num_timestamp_prediction_layers = max(1, enc.num_hidden_layers // 2)
        notes.append(f"audio num_timestamp_prediction_layers={enc.num_timestamp_prediction_layers}")
    return notes


SHRUNK_DICT_FIXES = {
    "efficientloftr": _efficientloftr_dict,
    "fun_asr_nano": _fun_asr_nano_dict,
}


# --------------------------------------------------------------------------
# inputs the generic planner cannot make for these types

def _efficientloftr_inputs(r):
    """A pair of images per sample, (batch, 2, 3, H, W), channels equal (the
    model reads the first); 256 x 256 is a multiple of the coarse stride (8)
    times the aggregation stride (4)."""
    s = 256
    gray = r.randn(r.batch, 2, 1, s, s)
    r.inputs["pixel_values"] = gray.expand(r.batch, 2, 3, s, s).contiguous()


def _fun_asr_nano_inputs(r):
    """Low-frame-rate features, time-major (batch, frames, mel * stacked
    frames = 560), with their frame mask; the encoder and adaptor keep the
    frame count, so one audio token per frame."""
    c = r.config
    ac = c.audio_config
    dim = _get(ac, "num_mel_bins", default=80) * _get(ac, "num_stacked_frames", default=7)
    frames = 64
    r.inputs["input_features"] = r.randn(r.batch, frames, dim)
    r.inputs["input_features_mask"] = r.ones(r.batch, frames)
    tok = _token(c, "audio_token_id")
    if "input_ids" not in r.inputs:
        high = min(_get(c.text_config, "vocab_size", default=1000), tok if tok else 1000)
        r.inputs["input_ids"] = r.randint(high, r.batch, 16, low=1)
        r.inputs["attention_mask"] = r.ones(r.batch, 16)
    if tok is not None:
        r.prepend_tokens([tok], frames)


def _voxtral_realtime_text_inputs(r):
    """Every decoder layer scales by an ada-norm of the delay-time
    embedding t_cond, which the full model computes (sinusoidal, of
    default_num_delay_tokens) and passes down: the same here, for 6 delay
    tokens (passed through forward's **kwargs to the layers)."""
    torch = r.torch
    dim = r.config.hidden_size
    half = dim // 2
    inv = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    emb = 6.0 * inv
    t = torch.cat((emb.cos(), emb.sin()))[None, ...]
    r.inputs["t_cond"] = t.to(device=r.device, dtype=r.dtype)


def _emu3_inputs(r):
    """Images with their sizes (get_image_features reads image_sizes to cut
    the VQ token grid); 128 x 128 is 16 x 16 codes at the VQ's spatial
    factor 8."""
    s = 128
    r.inputs["pixel_values"] = r.randn(r.batch, 3, s, s)
    r.inputs["image_sizes"] = r.long([[s, s]] * r.batch)


def _granite4_vision_inputs(r):
    """LLaVA-NeXT layout (a base image and one tile, with image_sizes), and
    as many image tokens as the first deepstack projector yields per image
    (get_image_features returns no pooler_output to count with)."""
    torch, c = r.torch, r.config
    s = c.vision_config.image_size
    r.inputs["pixel_values"] = r.randn(r.batch, 2, 3, s, s)
    r.inputs["image_sizes"] = r.long([[s, s]] * r.batch)
    tok = _token(c, "image_token_id", "image_token_index")
    fn = getattr(r.model, "get_image_features", None) or getattr(getattr(r.model, "model", None),
                                                                  "get_image_features", None)
    if tok is None or fn is None or "input_ids" not in r.inputs:
        return
    with torch.inference_mode():
        out = fn(pixel_values=r.inputs["pixel_values"], image_sizes=r.inputs["image_sizes"],
                 vision_feature_layer=c.vision_feature_layer,
                 vision_feature_select_strategy=c.vision_feature_select_strategy)
    packed = out.deepstack_features[0][1]
    r.prepend_tokens([tok], int(packed[0].shape[0]))


def _perception_lm_inputs(r):
    """One tile per sample, (batch, tiles, 3, H, W): the model flattens the
    tiles into the tower's batch; H = W = the tower's img_size."""
    args = getattr(r.config.vision_config, "model_args", None) or {}
    size = args.get("img_size", [224, 224])
    s = size[-1] if isinstance(size, (list, tuple)) else int(size)
    r.inputs["pixel_values"] = r.randn(r.batch, 1, 3, s, s)


def _dia_decoder_inputs(r):
    """The decoder alone: audio codes (batch, frames, channels) below the
    codebook's 1024 specials, and the encoder states it cross-attends to."""
    c = r.config
    ch = _get(c, "num_channels", default=9)
    L = min(r.seq, 64)
    r.inputs["input_ids"] = r.randint(min(c.vocab_size, 1024), r.batch, L, ch)
    r.inputs.pop("attention_mask", None)
    r.inputs["encoder_hidden_states"] = r.randn(r.batch, 32, c.cross_hidden_size)


# --------------------------------------------------------------------------
# Default configs that cannot run as transformers 5.17 ships them (found by
# the benchmark sweeps, which build the default config at full size), fixed
# the way the released checkpoints have them.

def glm_half_rotary(config, shrunk):
    """GLM-4.1V's family splits its multimodal rotary into mrope_section
    [8, 12, 12] (32 frequencies: a 64-wide rotary), but the default config
    leaves partial_rotary_factor at 1, a rotary as wide as its 128-wide
    heads, which those sections cannot split.  GLM-4 rotates half of each
    head: partial_rotary_factor 0.5, as the released checkpoints have it.
    A shrunk config's sections are fitted after the build instead
    (hfleet_build.adapt_mrope_sections)."""
    if shrunk:
        return []
    tc = _sub(config, "text_config") or config
    rope = getattr(tc, "rope_parameters", None)
    if not isinstance(rope, dict) or "partial_rotary_factor" in rope:
        return []
    head_dim = _head_dim(tc)
    sections = rope.get("mrope_section") or [8, 12, 12]
    factor = 2 * sum(sections) / head_dim
    if not 0 < factor < 1:
        return []
    rope["partial_rotary_factor"] = factor
    return [f"text rope_parameters.partial_rotary_factor={factor:g} (mrope_section {list(sections)} covers "
            f"{2 * sum(sections)} of each {head_dim}-wide head, as GLM-4 rotates half of it)"]


# Qwen3-VL's family: a vision merger 3584 wide against a 4096-wide text model
# (Qwen3.5-MoE's: against 2048; Cohere Compass's vision config is Qwen3-VL's,
# against Command A's 8192).
_QWEN3_VL_MERGER = _tower_width_of_text("vision_config", "out_hidden_size",
                                        "against its text model; Qwen3-VL's checkpoints have them equal")


def _cohere_compass_vl_config(config, shrunk):
    """Cohere Compass's vision-language default: its text config's rope
    (_cohere_compass_config) and the vision merger at the text width."""
    return _cohere_compass_config(config, shrunk) + _QWEN3_VL_MERGER(config, shrunk)


def _deepseek_v2_config(config, shrunk):
    """DeepseekV2Config leaves num_experts_per_tok None, and its router's
    torch.topk takes it as k.  Its default (64 routed experts, greedy
    routing) is DeepSeek-V2-Lite's, whose checkpoint routes each token to 6."""
    notes = []
    _fill(config, notes, num_experts_per_tok=2 if shrunk else 6)
    return notes


# A layer type's name for Mamba and for attention, by naming scheme:
# transformers 4's ("mamba", "attention") and 5's ("linear_attention",
# "full_attention": remap_legacy_layer_types).
_HYBRID_LAYER_NAMES = {"mamba": "attention", "linear_attention": "full_attention"}


def _granitemoehybrid_config(config, shrunk):
    """GraniteMoeHybridConfig's default makes every layer Mamba (layer_types
    None in transformers 4, ["linear_attention"] * n in 5.17), which no
    released Granite 4.0-H checkpoint is (IBM's: one attention layer to
    nine Mamba-2 layers), and transformers' hybrid cache then cannot say its
    sequence length: "get_seq_length can only be called on Attention
    layers" at the first forward (an H100, 2026-12-07).  Such a config gets
    an attention layer at indices 5, 15, 25, ...: one in ten, named as its
    own layers are."""
    n = getattr(config, "num_hidden_layers", None)
    types = getattr(config, "layer_types", 0)
    if types is None:
        mamba = "mamba"
    elif isinstance(types, (list, tuple)) and len(types) == n and types and \
            all(t == types[0] for t in types) and types[0] in _HYBRID_LAYER_NAMES:
        mamba = types[0]
    else:
        return []
    if not isinstance(n, int) or n < 6:
        return []
    attention = _HYBRID_LAYER_NAMES[mamba]
    config.layer_types = [attention if i % 10 == 5 else mamba for i in range(n)]
    k = config.layer_types.count(attention)
    return [f"layer_types: {k} {attention} layers of {n} (indices 5, 15, ...; every layer {mamba} "
            "in the default config)"]


# Config-only fixes, by model type.  A recipe with no inputs of its own still
# gets the one forward()'s signature calls for (the dynamic-resolution grid
# of qwen4-exp, ernie-4.5-vl, cohere-compass, ...): hfleet_runner_torch asks
# for_signature when a type's recipe builds no inputs.
CONFIG_FIXES = {
    "cohere_compass": _cohere_compass_vl_config,
    "cohere_compass_text": _cohere_compass_config,
    "deepseek_v2": _deepseek_v2_config,
    "granitemoehybrid": _granitemoehybrid_config,
    "ernie4_5_vl_moe": _ernie4_5_vl_moe_config,
    "deepseek_ocr2": _deepseek_ocr2_config,
    "dots1": _dots1_config,
    # Qwen2-VL and Qwen2.5-VL: a vision merger 3584 wide (the 7 B's) against
    # the 72 B's 8192-wide text model.
    "qwen2_vl": _tower_width_of_text("vision_config", "hidden_size",
                                     "against its text model; Qwen2-VL-72B's checkpoint has them equal"),
    "qwen2_5_vl": _tower_width_of_text("vision_config", "out_hidden_size",
                                       "against its text model; Qwen2.5-VL-72B's checkpoint has them equal"),
    # GLM-OCR: a vision merger 1536 wide against a 1024-wide text model.
    "glm_ocr": _tower_width_of_text("vision_config", "out_hidden_size", "against its 1024-wide text model"),
    # Qwen3-ASR: an audio encoder projecting to 3584 against a 2048-wide text model.
    "qwen3_asr": _tower_width_of_text("audio_config", "output_dim", "against its 2048-wide text model"),
    "moonshine_streaming": _moonshine_streaming_config,
    "qwen4_exp": _qwen4_exp_config,
    "qwen4_exp_text": _qwen4_exp_config,
    "t5gemma2": _t5gemma2_config,
    "t5gemma2_encoder": _t5gemma2_config,
    "timm_backbone": _timm_backbone_config,
    "step3p7": _step3p7_config,
    **{t: _QWEN3_VL_MERGER for t in ("qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe", "cosmos3_omni",
                                     "exaone4_5")},
    **{t: glm_half_rotary for t in ("glm4v", "glm4v_text", "glm46v", "glmga", "glm_image_text")},
}


def fill_attention_shape(config, shrunk):
    """A config (or its text_config) that leaves its attention's shape None
    gets what its released checkpoints and llama's config default to:
    head_dim the width over the heads (ministral and hunyuan_v1_dense leave
    it None and compute head_dim ** -0.5 from it) and num_key_value_heads
    the heads, plain multi-head attention (nemotron divides by it).  The
    shrunk config always set both (hfleet_plan.shrink_config_dict)."""
    def read(c, name):
        try:   # a per-layer attribute raises on global access (diffusion_gemma_text's head_dim)
            return True, getattr(c, name)
        except Exception:  # noqa: BLE001
            return False, None

    notes = []
    for prefix, c in _config_and_text(config):
        width, heads = _get(c, "hidden_size"), _get(c, "num_attention_heads")
        if not (isinstance(width, int) and isinstance(heads, int) and heads > 0):
            continue
        has_hd, hd = read(c, "head_dim")
        if has_hd and hd is None and width % heads == 0:
            _fill(c, notes, prefix, head_dim=width // heads)
        has_kv, kv = read(c, "num_key_value_heads")
        if has_kv and kv is None:
            _fill(c, notes, prefix, num_key_value_heads=heads)
    return notes


# The experts' widths of a routed MoE, which transformers' default experts
# implementation on CUDA ("grouped_mm": torch._grouped_mm over every
# expert's weights at once) can only take at strides of a multiple of 16
# bytes.
EXPERT_WIDTH_KEYS = ("moe_intermediate_size", "expert_intermediate_size")
EXPERT_WIDTH_ALIGN = 8   # elements: 16 bytes at fp16 and bf16 (and twice that at fp32)


def align_expert_widths(config, shrunk):
    """An expert width that is not a multiple of EXPERT_WIDTH_ALIGN is
    rounded up to the next one.  DeepseekV2Config defaults to
    moe_intermediate_size 1407 (deepseek_v2, and deepseek_ocr2 whose text
    model is one): torch._grouped_mm refuses it ("strides should be multiple
    of 16 bytes", the H200's sweep 7), where DeepSeek-V2-Lite's checkpoint
    has 1408.  No released checkpoint we know of has an odd expert width;
    the shrunk config's (hfleet_plan) are multiples already."""
    notes = []
    for prefix, c in _config_and_text(config):
        for key in EXPERT_WIDTH_KEYS:
            v = getattr(c, key, None)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0 or v % EXPERT_WIDTH_ALIGN == 0:
                continue
            aligned = -(-v // EXPERT_WIDTH_ALIGN) * EXPERT_WIDTH_ALIGN
            setattr(c, key, aligned)
            notes.append(f"{prefix}{key}={aligned} (was {v}: the experts' grouped matrix products need "
                         f"strides of a multiple of 16 bytes)")
    return notes


# --------------------------------------------------------------------------
# Random initialisation that float16 cannot hold.  The benchmark builds the
# default config on the GPU in float16 and initialises it there with
# transformers' _init_weights (hfleet_build.build_on_device); these change
# the scale of the random weights only, so the computation timed is the same.

# The std PreTrainedModel._init_weights falls back to ("initializer_range or
# 0.02"), and the largest factor by which a hidden_size-wide projection
# drawn at the config's std may multiply a unit-RMS input's RMS.
TYPICAL_INIT_STD = 0.02
INIT_GAIN_LIMIT = 4.0


def tame_init_std(config, shrunk):
    """A config without initializer_range whose init_std would make every
    projection multiply activations by more than INIT_GAIN_LIMIT gets
    init_std 0.02, the library's default std.

    PreTrainedModel._init_weights draws every nn.Linear and nn.Embedding
    with std config.initializer_range, or, where the config has none,
    config.init_std.  CpmAntConfig has no initializer_range and init_std 1.0
    (so N(0, 1) weights in a 4096-wide model): a projection of the
    RMS-normalised hidden state has RMS 64, the attention's query-key
    products before the 1/sqrt(dim_head) scaling RMS 4096 * sqrt(128) =
    46,000 and the 10240-wide feed-forward output about 3e5, past float16's
    65504: inf, then NaN in the softmax and the RMS norms (fp32 holds them).
    At 0.02 a projection's gain is 0.02 * sqrt(width) (1.3 at 4096), as in
    BERT or GPT-2.  Only the random weights' scale changes."""
    notes = []
    for prefix, c in _config_and_text(config):
        if _has(c, "initializer_range") or not _has(c, "init_std"):
            continue
        std, width = getattr(c, "init_std"), _get(c, "hidden_size", "d_model")
        if isinstance(std, bool) or not isinstance(std, (int, float)) or not isinstance(width, int) or width <= 0:
            continue
        gain = std * math.sqrt(width)
        if gain <= INIT_GAIN_LIMIT:
            continue
        c.init_std = TYPICAL_INIT_STD
        notes.append(f"{prefix}init_std={TYPICAL_INIT_STD} (was {std:g}: every nn.Linear and nn.Embedding is "
                     f"drawn at init_std, and a {width}-wide projection at {std:g} multiplies activations by "
                     f"{gain:.0f}, past float16's range; the random weights' scale only, the computation "
                     f"is unchanged)")
    return notes


# --------------------------------------------------------------------------
# FFTs cuFFT cannot compute in half precision.  cuFFT takes float16 FFTs only
# of powers of two, torch has no bfloat16 FFT on CUDA at all, and autocast
# leaves an FFT at its input's precision (hfleet_runner_lib.HALF_FFT_PATTERN:
# such a failure is a skip).  FNet's token mixing is a 2-D FFT over the
# sequence and the 768 features of its default config: its fp16 benchmark
# failed "over [128, 768]".  transformers' FNet has a second way to compute
# the same transform, for TPUs (config.use_tpu_fourier_optimizations): two
# matrix products with precomputed DFT matrices (two_dim_matmul), which runs
# at any size and precision.  The config option itself does not suit here
# (FNetBasicFourierTransform._init_fourier_transform, as read in transformers'
# source up to 4.5x):
#   - it is taken only when max_position_embeddings <= 4096, and builds the
#     matrices with scipy.linalg.dft; without scipy it logs a warning and
#     falls back to torch.fft.fft along each axis, which cuFFT refuses the
#     same way;
#   - the sequence's matrix is tpu_short_seq_length square (512) and cut to
#     the input's length L ([:L, :L]), which is the L-point DFT only when L
#     equals it (else a different transform of the same cost), and a config
#     fix does not know the task's sequence length;
#   - the matrices are complex64 buffers, bound into the mixing function
#     (functools.partial) when the model is built: a model built on the CPU
#     and moved keeps them on the CPU, and model.to(dtype=float16) casts the
#     buffers themselves to real float16, their imaginary parts dropped;
#   - a config fix cannot tell the task's precision: it would change fp32
#     benchmarks, which cuFFT runs, too.
# So the recipe leaves the config alone and, once the model is on its device
# (an inputs() recipe sees the precision, the device and the inputs), gives
# each FNetBasicFourierTransform module that mixing at the input's exact
# sizes: transformers' own two_dim_matmul with the L- and the hidden-size-
# point DFT matrices, complex64 as that path computes, the real part cast
# back to the model's precision (FNet's next operation, a LayerNorm of the
# residual, takes one dtype).  Only at a half precision on CUDA, and at fp16
# only when a size is not a power of two; elsewhere FNet's own FFT runs.

FNET_MIXING_CLASS = "FNetBasicFourierTransform"


def dft_matrix(torch, n, device):
    """The n-point DFT matrix, complex64: m[j, k] = exp(-2 pi i j k / n),
    what scipy.linalg.dft(n) gives (transformers' FNet builds its matrices
    with it).  j k is reduced mod n in integers first, so the angles stay
    exact in float64."""
    k = torch.arange(n, device=device, dtype=torch.int64)
    angle = (torch.outer(k, k) % n).to(torch.float64) * (-2.0 * math.pi / n)
    return torch.polar(torch.ones_like(angle), angle).to(torch.complex64)


def _local_two_dim_matmul(torch):
    """transformers' FNet two_dim_matmul, for a version that no longer has it."""
    def two_dim_matmul(x, matrix_dim_one, matrix_dim_two):
        seq = x.shape[1]
        return torch.einsum("bij,jk,ni->bnk", x.to(torch.complex64), matrix_dim_two, matrix_dim_one[:seq, :seq])
    return two_dim_matmul


def fnet_mixing_modules(model):
    """The model's FNet Fourier-mixing modules (found by class name)."""
    return [m for m in model.modules() if type(m).__name__ == FNET_MIXING_CLASS and hasattr(m, "fourier_transform")]


def use_dft_matmuls(torch, model, seq, hidden, device):
    """Make every FNet mixing module of model compute its 2-D DFT (over the
    sequence and the features) as matrix products with DFT matrices of the
    input's own sizes, the real part in the input's dtype (see above).  The
    matrices for (seq, hidden) are made now on device (a captured CUDA graph
    then allocates none); other sizes when first met.  -> the number of
    modules changed (0: none found, nothing changed)."""
    mods = fnet_mixing_modules(model)
    if not mods:
        return 0
    modeling = sys.modules.get(type(mods[0]).__module__)
    two_dim = getattr(modeling, "two_dim_matmul", None) or _local_two_dim_matmul(torch)
    cache = {}

    def matrices(n, d, dev):
        key = (int(n), int(d), str(dev))
        if key not in cache:
            cache[key] = (dft_matrix(torch, int(n), dev), dft_matrix(torch, int(d), dev))
        return cache[key]

    matrices(seq, hidden, device)

    def dft_by_matmul(x):
        seq_mat, hidden_mat = matrices(x.shape[1], x.shape[2], x.device)
        return two_dim(x, matrix_dim_one=seq_mat, matrix_dim_two=hidden_mat).real.to(x.dtype)

    for m in mods:
        m.fourier_transform = dft_by_matmul
    return len(mods)


def _fnet_inputs(r):
    """At fp16 or bf16 on CUDA, FNet's mixing as DFT matrix products when
    cuFFT cannot take its FFT (see above); the inputs stay the planner's."""
    torch = r.torch
    precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(r.dtype)
    if precision is None or getattr(r.device, "type", r.device) != "cuda":
        return
    ids = r.inputs.get("input_ids")
    if ids is None:
        ids = r.inputs.get("inputs_embeds")
    seq = int(ids.shape[1]) if ids is not None and ids.dim() >= 2 else int(r.seq)
    hidden = _get(r.config, "hidden_size")
    if not isinstance(hidden, int):
        return
    odd = [n for n in (seq, hidden) if not is_power_of_two(n)]
    if precision == "fp16" and not odd:
        return   # cuFFT takes these at fp16: FNet's own FFT runs
    why = (f"cuFFT has no fp16 FFT of {' or '.join(str(n) for n in odd)}" if precision == "fp16"
           else "torch has no bf16 FFT on CUDA")
    n = use_dft_matmuls(torch, r.model, seq, hidden, r.device)
    if n == 0:
        lib.log(f"fnet: no {FNET_MIXING_CLASS} module found; the FFT is left as it is ({why})")
        return
    lib.log(f"fnet: the Fourier mixing of {n} layers as matrix products with the {seq}- and {hidden}-point DFT "
            f"matrices (transformers' use_tpu_fourier_optimizations path, two_dim_matmul in complex64, with "
            f"tpu_short_seq_length = the input's {seq}), the real part cast to {precision}: {why}")


# Config fixes that hold for any type (hfleet_recipes.GENERIC_CONFIG_FIXES).
GENERIC_CONFIG_FIXES = (fill_attention_shape, align_expert_widths, tame_init_std)


RECIPES = {
    "emu3": Recipe(fix_config=_emu3_config, provides=("pixel_values", "image_sizes"), inputs=_emu3_inputs,
                   note="128 x 128 images with image_sizes"),
    "granite4_vision": Recipe(fix_config=_granite4_vision_config, provides=("pixel_values", "image_sizes"),
                              inputs=_granite4_vision_inputs, own_tokens=True,
                              note="base image + one tile with image_sizes; tokens counted by the deepstack projector"),
    "perception_lm": Recipe(fix_config=_perception_lm_config, provides=("pixel_values",),
                            inputs=_perception_lm_inputs, note="one tile per sample, (batch, 1, 3, H, W)"),
    "efficientloftr": Recipe(fix_config=_efficientloftr_config, provides=("pixel_values",),
                             inputs=_efficientloftr_inputs,
                             note="image pairs (batch, 2, 3, 256, 256)"),
    "fun_asr_nano": Recipe(fix_config=_fun_asr_nano_config, provides=("input_features", "input_features_mask"),
                           inputs=_fun_asr_nano_inputs, own_tokens=True,
                           note="time-major low-frame-rate features (batch, 64, 560), one audio token per frame"),
    # No auto class maps these sub-configs: the class their parent model
    # builds from them.  Not exported at transformers' top level: named by
    # module path under transformers.
    "voxtral_realtime_text": Recipe(model_class="models.voxtral_realtime.modeling_voxtral_realtime.VoxtralRealtimeTextModel",
                                    inputs=_voxtral_realtime_text_inputs,
                                    note="the text decoder alone, with the delay-time conditioning t_cond"),
    "dia_decoder": Recipe(fix_config=_dia_decoder_config, model_class="models.dia.modeling_dia.DiaDecoder",
                          provides=("input_ids", "encoder_hidden_states"), inputs=_dia_decoder_inputs,
                          note="the decoder alone: audio codes and random encoder states"),
    "diffusion_gemma_text": Recipe(fix_config=_diffusion_gemma_text_config,
                                   model_class="DiffusionGemmaEncoderTextModel"),
    # Not a config fix: at a half precision on CUDA the model's Fourier
    # mixing is given DFT matrix products once it is on the device.
    "fnet": Recipe(inputs=_fnet_inputs,
                   note="at fp16/bf16 on CUDA, the Fourier mixing as DFT matmuls (use_tpu_fourier_optimizations' "
                        "two_dim_matmul at the input's sizes): cuFFT has no fp16 FFT of 768"),
    # Not a config fix either: align's EfficientNet-B7 tower draws every
    # convolution at std 0.02 and leaves its BatchNorms identities, so its
    # image features underflow float16 to 0 and AlignModel.forward's
    # image_embeds / image_embeds.norm() is 0 / 0 (hfleet_build says why one
    # std cannot fix it).  Its text tower (BERT, LayerNorms), text
    # projection (xavier) and temperature (1.0) stay in range as built.
    "align": Recipe(calibrate_batchnorm=True,
                    note="random weights' BatchNorm statistics from the task's input (float16 holds the "
                         "image features)"),
}
RECIPES.update({model_type: Recipe(fix_config=fix) for model_type, fix in CONFIG_FIXES.items()})
