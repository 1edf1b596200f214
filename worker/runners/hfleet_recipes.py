# SPDX-License-Identifier: MIT
"""Model-specific knowledge the generic input planner cannot infer.

The generic path (hfleet_runner_lib.plan_inputs + config_facts) builds
inputs from a model's forward() signature and its config.  Some models need
more: pre-patched dynamic-resolution images with a grid (qwen2-vl), tiled
images with aspect-ratio ids (mllama), a second tokenizer's ids (the
Q-Former of instructblip), time-major audio features, or a config value
that the default config leaves empty.  Each recipe here says what, for one
model type, and nothing else: the model, its forward pass and the output
checks stay the generic ones.

A recipe has these parts, all optional:
  fix_config(config, shrunk) -> [notes]   mutate the config before building
  provides                                 forward() inputs the recipe builds
  inputs(r) -> None                        build/alter r.inputs (a dict of tensors)
  own_tokens                               the recipe places the image/audio
                                           placeholder tokens itself
  prefer_default                           skip the shrunk config: it is
                                           known not to fit this architecture
  submodel(model) -> (module, note)        run this part of the model
                                           (a generate-only wrapper)
  model_class                              the transformers class to build
                                           (when AutoModel picks a part); a
                                           dotted name is a path under
                                           transformers (models.dia.modeling_dia.DiaDecoder)
  make_config(transformers, model_type)    the default config, where
                                           AutoConfig.for_model cannot build it
  calibrate_batchnorm                      random weights' BatchNorm running
                                           statistics set from the task's
                                           inputs before the first forward
                                           (hfleet_build.calibrate_batchnorm;
                                           outputs.batchnorm_calibration)

A type without a recipe of its own may still get one chosen by its
forward() signature (for_signature: dynamic-resolution grids), and every
type's config gets the generic fixes of GENERIC_CONFIG_FIXES.

Everything here imports torch lazily (through r.torch) so the pure tests
can load the table without torch.
"""

from __future__ import annotations


import hfleet_plan as plan_mod
import hfleet_recipes_audio
import hfleet_recipes_config
import hfleet_recipes_rag
import hfleet_recipes_video
import hfleet_recipes_vision
import hfleet_recipes_vlm
from hfleet_recipe_base import (Recipe, _get, _sub, _text_vocab, _token, _vision_size, fit_tower_to_text_width,
                                patch_sequence_inputs)

# Recipes by family, each module one subject: configs that transformers'
# defaults leave unbuildable, vision-language models, vision and video
# models, audio and the rest, RAG models and their synthetic index, video
# trackers and their inference sessions.  Each exports RECIPES and may
# export for_signature(params) and GENERIC_CONFIG_FIXES.
FAMILY_MODULES = (hfleet_recipes_config, hfleet_recipes_vlm, hfleet_recipes_vision, hfleet_recipes_audio,
                  hfleet_recipes_rag, hfleet_recipes_video)


# --------------------------------------------------------------------------
# dynamic-resolution vision (qwen2-vl and the many models built like it):
# pre-patched pixels, one row of C * temporal_patch * patch * patch values
# per patch, with the grid (t, h, w) of each image.  Chosen by forward()'s
# signature, not by model type (for_signature below).

def _grid_pixels(r, vc, name, grid_name):
    """One image of (2 * merge) x (2 * merge) patches per sample into
    r.inputs[name], its grid into r.inputs[grid_name]; returns the merged
    tokens per image.  A vision config without temporal_patch_size patches
    2-D images (a temporal patch of 1)."""
    p = _get(vc, "patch_size", default=14)
    tp = _get(vc, "temporal_patch_size", default=1)
    m = _get(vc, "spatial_merge_size", default=2)
    ch = _get(vc, "in_channels", "in_chans", "num_channels", default=3)
    gh = gw = 2 * m
    b = r.batch
    r.inputs[name] = r.randn(b * gh * gw, ch * tp * p * p)
    r.inputs[grid_name] = r.long([[1, gh, gw]] * b)
    return gh * gw // (m * m)


def _grid_vlm_inputs(r):
    c = r.config
    n = _grid_pixels(r, _sub(c, "vision_config") or c, "pixel_values", "image_grid_thw")
    tok = _token(c, "image_token_id", "image_token_index")
    if tok is None:
        return  # no placeholder to put: the model says what it wanted
    start = _token(c, "vision_start_token_id", "image_start_token_id")
    end = _token(c, "vision_end_token_id", "image_end_token_id")
    r.prepend_tokens([tok], n, before=[start] if start is not None else [], after=[end] if end is not None else [])
    if "mm_token_type_ids" in r.params:
        r.inputs["mm_token_type_ids"] = (r.inputs["input_ids"] == tok).long()   # 1: image, 2: video


def _grid_tower_inputs(r):
    name = "hidden_states" if "hidden_states" in r.params else "pixel_values"
    _grid_pixels(r, _sub(r.config, "vision_config") or r.config, name, "grid_thw")


def fit_vision_out_width(config, shrunk):
    """A vision tower whose output (out_hidden_size) feeds the text model must
    follow the text model's width when the shrinker narrows it.  A default
    config is left as transformers made it."""
    if not shrunk:
        return []
    fitted = fit_tower_to_text_width(config, "vision_config", "out_hidden_size")
    return [f"vision out_hidden_size={fitted[0]} (= the text width)"] if fitted else []


def fit_vocab_to_placeholders(config, shrunk):
    """A default config whose image, video or audio placeholder token (the
    ids the runner puts in input_ids) lies past its text vocabulary gets the
    vocabulary that holds it, as the shrunk config does
    (hfleet_plan.vocab_for_placeholders, applied there to every special
    token of every sub-config).  Here only those placeholders, at the top
    level, against the text model's vocabulary: a benchmark measures the
    default architecture, so an id the runner never feeds (an audio-code
    pad of another vocabulary) must not grow its embedding."""
    if shrunk:
        return []
    tc = _sub(config, "text_config") or config
    as_dict = getattr(config, "to_dict", None)
    items = list((as_dict() if callable(as_dict) else vars(config)).items())
    vocab = plan_mod.vocab_for_placeholders(items, getattr(tc, "vocab_size", None), placeholders_only=True)
    if vocab is None:
        return []
    was, tc.vocab_size = tc.vocab_size, vocab
    where = "text_config.vocab_size" if tc is not config else "vocab_size"
    return [f"{where}={vocab} (the default config has {was}, below its image, video or audio placeholder id)"]


GRID_VLM = Recipe(fix_config=fit_vision_out_width,
                  provides=("pixel_values", "image_grid_thw", "mm_token_type_ids"),
                  inputs=_grid_vlm_inputs, own_tokens=True, name="grid-vision-language",
                  note="pre-patched pixels with image_grid_thw, one (2 merge)^2-patch image per sample")
GRID_TOWER = Recipe(provides=("hidden_states", "pixel_values", "grid_thw"), inputs=_grid_tower_inputs,
                    name="grid-vision-tower",
                    note="pre-patched pixels with grid_thw, one (2 merge)^2-patch image per sample")


def for_signature(params):
    """The recipe forward()'s own inputs call for, for a type without a recipe
    of its own, whatever the model is called: each family module's rules
    first (hfleet_recipes_*.for_signature: video clips, gemma4's patches,
    NaFlex patches, codec waveforms, ...), then dynamic-resolution grids."""
    for module in FAMILY_MODULES:
        rule = getattr(module, "for_signature", None)
        recipe = rule(params) if rule is not None else None
        if recipe is not None:
            return recipe
    if "image_grid_thw" in params and "pixel_values" in params and "input_ids" in params:
        return GRID_VLM
    if "grid_thw" in params and ("hidden_states" in params or "pixel_values" in params):
        return GRID_TOWER
    return None


# --------------------------------------------------------------------------
# images as (batch, images, channels, h, w)

def _idefics23_inputs(r):
    s = _vision_size(r.config)
    r.inputs["pixel_values"] = r.randn(r.batch, 1, 3, s, s)
    r.inputs["pixel_attention_mask"] = r.ones(r.batch, 1, s, s, dtype=r.torch.bool)


def _idefics_inputs(r):
    s = _vision_size(r.config)
    r.inputs["pixel_values"] = r.randn(r.batch, 1, 3, s, s)
    L = r.inputs["input_ids"].shape[1]
    r.inputs["image_attention_mask"] = r.ones(r.batch, L, 1)


def _llava_next_config(config, shrunk):
    s = _vision_size(config)
    config.image_grid_pinpoints = [[s, s]]
    return [f"image_grid_pinpoints=[[{s}, {s}]] (one tile at the vision tower's size)"]


def _llava_next_inputs(r):
    s = _vision_size(r.config)
    r.inputs["pixel_values"] = r.randn(r.batch, 2, 3, s, s)   # base image + one tile
    r.inputs["image_sizes"] = r.long([[s, s]] * r.batch)


def _mllama_inputs(r):
    c = r.config
    vc = c.vision_config
    s = _vision_size(c)
    tiles = _get(vc, "max_num_tiles", default=4)
    b = r.batch
    r.inputs["pixel_values"] = r.randn(b, 1, tiles, 3, s, s)
    r.inputs["aspect_ratio_ids"] = r.long([[1]] * b)                 # ratio (1, 1): one tile used
    mask = [[[1] + [0] * (tiles - 1)]] * b
    r.inputs["aspect_ratio_mask"] = r.long(mask)
    L = r.inputs["input_ids"].shape[1]
    cam = r.zeros(b, L, 1, tiles)
    cam[:, :, :, 0] = 1
    r.inputs["cross_attention_mask"] = cam


def _kosmos2_inputs(r):
    n = _get(r.config, "latent_query_num", default=64)
    b = r.batch
    vocab = _text_vocab(r.config)
    ids = r.randint(min(vocab, 1000), b, n + 8, low=4)
    r.inputs["input_ids"] = ids
    r.inputs["attention_mask"] = r.ones(b, n + 8)
    mask = r.zeros(b, n + 8, dtype=r.torch.bool)
    mask[:, 1:n + 1] = True
    r.inputs["image_embeds_position_mask"] = mask


def _qformer_inputs(r):
    qc = r.config.qformer_config
    L = min(r.seq, 16)
    r.inputs["qformer_input_ids"] = r.randint(qc.vocab_size, r.batch, L, low=1)
    r.inputs["qformer_attention_mask"] = r.ones(r.batch, L)


def _blip_placeholder_config(config, shrunk):
    notes = []
    vocab = _text_vocab(config)
    for name in ("image_token_index", "image_token_id", "video_token_index", "video_token_id"):
        if hasattr(config, name) and getattr(config, name) is None and vocab:
            setattr(config, name, int(vocab) - 1)
            notes.append(f"{name}={int(vocab) - 1} (unset in the default config)")
    return notes


def _lxmert_inputs(r):
    c = r.config
    boxes = 10
    r.inputs["visual_feats"] = r.randn(r.batch, boxes, _get(c, "visual_feat_dim", default=2048))
    r.inputs["visual_pos"] = r.rand(r.batch, boxes, _get(c, "visual_pos_dim", default=4))


def _seggpt_inputs(r):
    s = _get(r.config, "image_size", default=[896, 448])
    h, w = (s, s) if isinstance(s, int) else (s[0], s[1])
    h //= 2   # the model stacks the prompt above the input: each is half the configured height
    for name in ("pixel_values", "prompt_pixel_values", "prompt_masks"):
        r.inputs[name] = r.randn(r.batch, 3, h, w)


def _oneformer_inputs(r):
    c = r.config
    L = _get(c, "task_seq_len", default=77)
    vocab = _get(c, "text_encoder_vocab_size", default=49408)
    r.inputs["task_inputs"] = r.randint(vocab, r.batch, L)


def _omdet_inputs(r):
    c = r.config
    tc = _sub(c, "text_config")
    vocab = _get(tc, "vocab_size", default=49408)
    L = 16
    classes = 3
    b = r.batch
    r.inputs["classes_input_ids"] = r.randint(vocab, b * classes, L)
    r.inputs["classes_attention_mask"] = r.ones(b * classes, L)
    r.inputs["classes_structure"] = r.long([classes] * b)
    r.inputs["tasks_input_ids"] = r.randint(vocab, b, L)
    r.inputs["tasks_attention_mask"] = r.ones(b, L)


def _vjepa2_inputs(r):
    c = r.config
    s = _get(c, "crop_size", "image_size", default=256)
    frames = _get(c, "frames_per_clip", "num_frames", default=16)
    r.inputs["pixel_values_videos"] = r.randn(r.batch, frames, 3, s, s)


def _tvp_inputs(r):
    c = r.config
    s = _get(c, "max_img_size", default=448)
    frames = _get(c, "num_frames", default=8) if isinstance(_get(c, "num_frames"), int) else 8
    r.inputs["pixel_values"] = r.randn(r.batch, frames, 3, s, s)


def _aria_config(config, shrunk):
    vc = config.vision_config
    n = (_vision_size(config) // _get(vc, "patch_size", default=14)) ** 2
    q = 16
    config.projector_patch_to_query_dict = {n: q, str(n): q}
    return [f"projector_patch_to_query_dict={{{n}: {q}}} (the shrunk tower's patch count)"]


def _gemma3_config(config, shrunk):
    vc = config.vision_config
    side = _vision_size(config) // _get(vc, "patch_size", default=14)
    per_side = side // 2 if side % 2 == 0 else side
    config.mm_tokens_per_image = per_side * per_side
    return [f"mm_tokens_per_image={per_side * per_side} (pool to the shrunk tower's patch grid)"]


def _vipllava_config(config, shrunk):
    layers = _get(config.vision_config, "num_hidden_layers", default=2)
    config.vision_feature_layers = [-1] if layers < 2 else [-2, -1]
    return [f"vision_feature_layers={config.vision_feature_layers} (the shrunk tower has {layers} layers)"]


def _llama4_config(config, shrunk):
    vc = config.vision_config
    ratio = _get(vc, "pixel_shuffle_ratio", default=0.5)
    hidden = vc.hidden_size
    vc.intermediate_size = int(hidden / (ratio * ratio))
    th = config.text_config.hidden_size
    vc.projector_input_dim = vc.projector_output_dim = vc.vision_output_dim = th
    return [f"vision intermediate_size={vc.intermediate_size}, projector dims={th} (tied to the shrunk widths)"]


def _chameleon_config(config, shrunk):
    vocab = config.vocab_size
    vq = _get(_sub(config, "vq_config"), "num_embeddings", default=8192)
    image = _get(config, "image_token_id", default=vocab - 1)
    start = max(4, vocab - vq - 8)
    if start + vq >= vocab:
        return ["vocabulary_map not set: the vocabulary is smaller than the VQ codebook"]
    m = {"<image>": image}
    m.update({f"IMGIMG{i}Z": start + i for i in range(vq)})
    config.vocabulary_map = m
    config.image_token_id = image
    return [f"vocabulary_map with <image> and {vq} image tokens (unset in the default config)"]


def _lfm2_moe_config(config, shrunk):
    n = config.num_hidden_layers
    if getattr(config, "layer_types", None) is None:
        config.layer_types = ["conv" if i % 2 == 0 else "full_attention" for i in range(n)]
        return ["layer_types alternating conv/full_attention (unset in the default config)"]
    return []


def _dbrx_config(config, shrunk):
    ac = config.attn_config
    notes = []
    if getattr(ac, "rope_theta", None) is None:
        ac.rope_theta = 10000.0
        notes.append("attn_config.rope_theta=10000 (missing from the default config)")
    if getattr(ac, "clip_qkv", None) is None:
        ac.clip_qkv = 8.0   # dbrx-base's value; forward() clamps with it and fails on None (transformers 5.17)
        notes.append("attn_config.clip_qkv=8 (None makes forward() fail)")
    return notes


def _esm_config(config, shrunk):
    if config.vocab_size is None:
        # the ESM-2 alphabet: <cls>=0 <pad>=1 <eos>=2 ... <mask>=32
        config.vocab_size, config.pad_token_id, config.mask_token_id = 33, 1, 32
        return ["vocab_size=33, pad 1, mask 32 (the ESM-2 alphabet; unset in the default config)"]
    return []


def _diffusion_gemma_config(config, shrunk):
    notes = []
    if getattr(config, "vision_config", 0) is None:
        # The encoder always builds a vision tower, but the default config has
        # none: give it Gemma 4's (shrunk like the rest when the rest is).
        from transformers import AutoConfig
        import hfleet_plan as plan_mod
        vc = AutoConfig.for_model("gemma4_vision")
        if shrunk:
            d, _ = plan_mod.shrink_config_dict(vc.to_dict(), 32)
            vc = type(vc).from_dict(d)
        config.vision_config = vc
        notes.append("vision_config=gemma4_vision" + (" (shrunk)" if shrunk else "")
                     + " (none in the default config; the encoder needs one)")
    for c in (config, _sub(config, "text_config")):
        if c is not None and hasattr(c, "num_experts") and c.num_experts is None:
            c.num_experts = 4
            if getattr(c, "top_k_experts", 1) is None:
                c.top_k_experts = 2
            notes.append("num_experts=4 (unset in the default config)")
        for k in ("moe_intermediate_size", "expert_intermediate_size"):
            if c is not None and hasattr(c, k) and getattr(c, k) is None:
                setattr(c, k, 64)
                notes.append(f"{k}=64 (unset in the default config)")
    return notes


def _csm_config(config, shrunk):
    cc = _sub(config, "codec_config")
    if cc is not None and hasattr(cc, "upsample_groups"):
        cc.upsample_groups = cc.hidden_size
        return [f"codec_config.upsample_groups={cc.hidden_size} (= the shrunk codec width)"]
    return []


def _depth_pro_inputs(r):
    c = r.config
    pc = _sub(c, "patch_model_config") or c
    p = _get(pc, "image_size", default=384)
    ratios = _get(c, "scaled_images_ratios", default=[0.25, 0.5, 1])
    s = int(round(p / min(ratios)))
    r.inputs["pixel_values"] = r.randn(r.batch, 3, s, s)


def _sam2_inputs(r):
    c = r.config
    vc = _sub(c, "vision_config")
    s = _get(vc, "image_size", default=1024)
    if isinstance(s, (list, tuple)):
        s = s[-1]
    r.inputs["pixel_values"] = r.randn(r.batch, 3, int(s), int(s))


def _idefics3_config(config, shrunk):
    vc = config.vision_config
    scale = _get(config, "scale_factor", default=2)
    vc.image_size = vc.patch_size * scale * 4
    return [f"vision image_size={vc.image_size} (patches per side divisible by scale_factor {scale})"]


def _mllama_config(config, shrunk):
    vc = config.vision_config
    layers = vc.num_hidden_layers
    vc.intermediate_layers_indices = [max(0, layers - 1)]
    vc.vision_output_dim = vc.hidden_size * 2
    return [f"vision intermediate_layers_indices={vc.intermediate_layers_indices}, "
            f"vision_output_dim={vc.vision_output_dim} (the shrunk tower has {layers} layers)"]


def _dia_config(config, shrunk):
    enc, dec = config.encoder_config, config.decoder_config
    notes = []
    for k, v in (("cross_hidden_size", enc.hidden_size), ("cross_num_attention_heads", dec.num_attention_heads),
                 ("cross_num_key_value_heads", _get(dec, "num_key_value_heads", default=dec.num_attention_heads)),
                 ("cross_head_dim", _get(dec, "head_dim"))):
        if hasattr(dec, k) and v is not None and getattr(dec, k) != v:
            setattr(dec, k, v)
            notes.append(f"decoder {k}={v}")
    return notes


def _granite_speech_config(config, shrunk):
    pc, ec = config.projector_config, config.encoder_config
    width = _get(ec, "hidden_dim", "hidden_size")
    if hasattr(pc, "encoder_hidden_size") and width:
        pc.encoder_hidden_size = width
        return [f"projector encoder_hidden_size={width} (= the shrunk encoder width)"]
    return []


def _gemma3n_config(config, shrunk):
    vc = config.vision_config
    if shrunk:
        vc.hidden_size = 2048   # the timm MobileNetV5 tower keeps its width: the shrinker cannot reach it
        return ["vision hidden_size=2048 (the timm tower's real width)"]
    return []


def _voxtral_config(config, shrunk):
    vocab = _text_vocab(config)
    if getattr(config, "audio_token_id", 0) is None and vocab:
        config.audio_token_id = int(vocab) - 1
        return [f"audio_token_id={int(vocab) - 1} (unset in the default config)"]
    return []


def _musicgen_config(config, shrunk):
    """musicgen is built from default sub-configs (hfleet_build's
    KWARG_COMPOSITES): a decoder of 2048 codes a codebook, and an EnCodec of
    1024, which generate() hands the decoder's codes to (an embedding lookup
    out of range, a device-side assert in the benchmark sweep).  The
    released musicgen's EnCodec (32 kHz) has the decoder's 2048."""
    dec, codec = _sub(config, "decoder"), _sub(config, "audio_encoder")
    want = _get(dec, "vocab_size")
    if codec is not None and isinstance(want, int) and isinstance(getattr(codec, "codebook_size", None), int) \
            and codec.codebook_size < want:
        was, codec.codebook_size = codec.codebook_size, want
        return [f"audio_encoder.codebook_size={want} (= the decoder's codes; the default EnCodec has {was})"]
    return []


def _musicgen_inputs(r):
    dec = r.config.decoder
    k = _get(dec, "num_codebooks", default=4)
    r.inputs["decoder_input_ids"] = r.randint(dec.vocab_size, r.batch * k, 16)


# --------------------------------------------------------------------------
# audio layouts

def _time_major(name="input_features", frames=400):
    def f(r):
        t = r.inputs.get(name)
        if t is None or t.dim() != 3:
            return
        mel = t.shape[1]
        r.inputs[name] = r.randn(t.shape[0], frames, mel)
        for mask in ("attention_mask", "input_features_mask"):
            if mask in r.inputs and r.inputs[mask].shape[-1] != frames:
                r.inputs[mask] = r.ones(t.shape[0], frames)
    return f


def _clap_inputs(r):
    ac = r.config.audio_config
    mel = _get(ac, "num_mel_bins", default=64)
    r.inputs["input_features"] = r.randn(r.batch, 1, 1001, mel)


def _clvp_config(config, shrunk):
    # The decoder's speech tokens (argmax over its vocabulary) feed the speech
    # encoder, whose default vocabulary is the text encoder's 256.
    sc, dc = _sub(config, "speech_config"), _sub(config, "decoder_config")
    if sc is not None and dc is not None and sc.vocab_size < dc.vocab_size:
        sc.vocab_size = dc.vocab_size
        return [f"speech_config.vocab_size={dc.vocab_size} (= the decoder's, whose tokens it reads)"]
    return []


def _clvp_inputs(r):
    c = r.config
    mel = _get(_sub(c, "decoder_config"), "feature_size", default=80)
    r.inputs["input_features"] = r.randn(r.batch, mel, 64)


def _granite_speech_inputs(r):
    text_mask = r.inputs.get("attention_mask")   # over input_ids, not over the audio frames
    _time_major()(r)
    if text_mask is not None:
        r.inputs["attention_mask"] = text_mask
    # input_features_mask is a boolean mask over the projected audio tokens
    # (optional); a 0/1 frame mask would be taken as indices.
    r.inputs.pop("input_features_mask", None)


def _univnet_inputs(r):
    mel = _get(r.config, "num_mel_bins", default=100)
    r.inputs["input_features"] = r.randn(r.batch, 64, mel)
    r.inputs.pop("noise_sequence", None)


def _audio_tokens(r, audio_lengths):
    """Insert as many audio placeholder tokens as the encoder yields frames."""
    tok = _token(r.config, "audio_token_id", "audio_token_index")
    if tok is None or "input_ids" not in r.inputs:
        return
    r.prepend_tokens([tok], int(audio_lengths))


def _qwen2_audio_inputs(r):
    feats = r.inputs["input_features"]
    frames = feats.shape[-1]
    r.inputs["feature_attention_mask"] = r.ones(feats.shape[0], frames)
    # conv stride 2, then an average pool of 2
    after_conv = (frames - 1) // 2 + 1
    _audio_tokens(r, (after_conv - 2) // 2 + 1)


def _wav2vec2_bert_inputs(r):
    dim = _get(r.config, "feature_projection_input_dim", default=160)
    r.inputs["input_features"] = r.randn(r.batch, 200, dim)
    if "attention_mask" in r.inputs:
        r.inputs["attention_mask"] = r.ones(r.batch, 200)


def _speecht5_inputs(r):
    h = r.config.hidden_size
    L = r.seq
    # the base model has no pre-nets: both sides take hidden states
    r.inputs["input_values"] = r.randn(r.batch, L, h)
    r.inputs["decoder_input_values"] = r.randn(r.batch, 16, h)
    r.inputs.pop("input_ids", None)


def _kyutai_inputs(r):
    offsets = None
    for name, buf in r.model.named_buffers():
        if name.endswith("audio_tokens_offsets"):
            offsets = buf
            break
    n = int(offsets.numel()) if offsets is not None else 1
    c = r.config
    high = min(_get(c, "vocab_size", default=1000), _get(c, "codebook_vocab_size", default=1000))
    r.inputs["input_ids"] = r.randint(high, r.batch, r.seq, n, low=1)
    if "attention_mask" in r.inputs:
        r.inputs["attention_mask"] = r.ones(r.batch, r.seq)


def _dia_inputs(r):
    c = r.config
    ev = _get(_sub(c, "encoder_config"), "vocab_size", default=256)
    dc = _sub(c, "decoder_config")
    dv = _get(dc, "vocab_size", default=1028)
    ch = _get(dc, "num_channels", default=9)
    r.inputs["input_ids"] = r.randint(ev, r.batch, r.seq)
    r.inputs["attention_mask"] = r.ones(r.batch, r.seq)
    r.inputs["decoder_input_ids"] = r.randint(min(dv, 1024), r.batch, 16, ch)


def _fastspeech_inputs(r):
    mc = _sub(r.config, "model_config")
    r.inputs["input_ids"] = r.randint(_get(mc, "vocab_size", default=78), r.batch, r.seq, low=1)


def _canine_inputs(r):
    r.inputs["input_ids"] = r.randint(0x3000, r.batch, r.seq, low=0x20)   # Unicode code points
    if "attention_mask" in r.params:
        r.inputs["attention_mask"] = r.ones(r.batch, r.seq)


def _perceiver_inputs(r):
    d = _get(r.config, "d_model", default=768)
    r.inputs["inputs"] = r.randn(r.batch, r.seq, d)


def _timesfm_inputs(r):
    c = r.config
    ctx = _get(c, "context_length", default=512)
    r.inputs["past_values"] = r.randn(r.batch, ctx)
    r.inputs["past_values_padding"] = r.zeros(r.batch, ctx)
    r.inputs["freq"] = r.zeros(r.batch, 1)


def _bark_submodel(model):
    return model.semantic, "BarkModel has no forward(); its first stage (semantic, a causal LM) is tested"


def _xmod_after(r):
    langs = _get(r.config, "languages", default=None)
    if langs:
        r.model.set_default_language(langs[0])


# --------------------------------------------------------------------------

RECIPES = {
    "idefics": Recipe(provides=("pixel_values", "image_attention_mask"), inputs=_idefics_inputs),
    "idefics2": Recipe(provides=("pixel_values", "pixel_attention_mask"), inputs=_idefics23_inputs),
    "idefics3": Recipe(fix_config=_idefics3_config, provides=("pixel_values", "pixel_attention_mask"),
                       inputs=_idefics23_inputs),
    "smolvlm": Recipe(fix_config=_idefics3_config, provides=("pixel_values", "pixel_attention_mask"),
                      inputs=_idefics23_inputs),
    "llava_next": Recipe(fix_config=_llava_next_config, provides=("pixel_values", "image_sizes"),
                         inputs=_llava_next_inputs),
    "llava_next_video": Recipe(fix_config=_llava_next_config, provides=("pixel_values", "image_sizes"),
                               inputs=_llava_next_inputs),
    "llava_onevision": Recipe(fix_config=_llava_next_config, provides=("pixel_values", "image_sizes"),
                              inputs=_llava_next_inputs),
    "mllama": Recipe(fix_config=_mllama_config, provides=("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask", "cross_attention_mask"),
                     inputs=_mllama_inputs),
    "kosmos-2": Recipe(provides=("image_embeds_position_mask",), inputs=_kosmos2_inputs, own_tokens=True),
    "instructblip": Recipe(fix_config=_blip_placeholder_config, provides=("qformer_input_ids", "qformer_attention_mask"),
                           inputs=_qformer_inputs),
    "instructblipvideo": Recipe(fix_config=_blip_placeholder_config,
                                provides=("qformer_input_ids", "qformer_attention_mask"), inputs=_qformer_inputs),
    "blip-2": Recipe(fix_config=_blip_placeholder_config),
    "lxmert": Recipe(provides=("visual_feats", "visual_pos"), inputs=_lxmert_inputs),
    "siglip2": Recipe(provides=("pixel_values", "pixel_attention_mask", "spatial_shapes"), inputs=patch_sequence_inputs),
    "seggpt": Recipe(provides=("pixel_values", "prompt_pixel_values", "prompt_masks"), inputs=_seggpt_inputs,
                     prefer_default=True, note="the shrinker empties a layer-index list of seggpt: the default config is used"),
    "oneformer": Recipe(provides=("task_inputs",), inputs=_oneformer_inputs),
    "omdet-turbo": Recipe(provides=("classes_input_ids", "classes_attention_mask", "classes_structure",
                                    "tasks_input_ids", "tasks_attention_mask"), inputs=_omdet_inputs),
    "vjepa2": Recipe(provides=("pixel_values_videos",), inputs=_vjepa2_inputs),
    "tvp": Recipe(provides=("pixel_values",), inputs=_tvp_inputs),
    "aria": Recipe(fix_config=_aria_config),
    "gemma3": Recipe(fix_config=_gemma3_config),
    "vipllava": Recipe(fix_config=_vipllava_config),
    "llama4": Recipe(fix_config=_llama4_config),
    "chameleon": Recipe(fix_config=_chameleon_config),
    "lfm2_moe": Recipe(fix_config=_lfm2_moe_config),
    "dbrx": Recipe(fix_config=_dbrx_config),
    "esm": Recipe(fix_config=_esm_config),
    "diffusion_gemma": Recipe(fix_config=_diffusion_gemma_config),
    "csm": Recipe(fix_config=_csm_config),
    "depth_pro": Recipe(provides=("pixel_values",), inputs=_depth_pro_inputs),
    "sam2": Recipe(provides=("pixel_values",), inputs=_sam2_inputs, prefer_default=True,
                   note="the shrunk Hiera backbone does not fit its neck; the default config is tested"),
    "clap": Recipe(inputs=_clap_inputs),
    "clvp": Recipe(fix_config=_clvp_config, inputs=_clvp_inputs),
    "univnet": Recipe(provides=("input_features", "noise_sequence"), inputs=_univnet_inputs),
    "parakeet_ctc": Recipe(inputs=_time_major()),
    "granite_speech": Recipe(fix_config=_granite_speech_config, inputs=_granite_speech_inputs),
    "gemma3n": Recipe(fix_config=_gemma3n_config),
    "voxtral": Recipe(fix_config=_voxtral_config),
    "musicgen": Recipe(fix_config=_musicgen_config, model_class="MusicgenForConditionalGeneration",
                       inputs=_musicgen_inputs),
    "musicgen_melody": Recipe(fix_config=_musicgen_config, model_class="MusicgenMelodyForConditionalGeneration",
                              inputs=_musicgen_inputs),
    "qwen2_audio": Recipe(inputs=_qwen2_audio_inputs, own_tokens=True),
    "wav2vec2-bert": Recipe(provides=("input_features",), inputs=_wav2vec2_bert_inputs),
    "speecht5": Recipe(provides=("input_values", "decoder_input_values"), inputs=_speecht5_inputs),
    "kyutai_speech_to_text": Recipe(inputs=_kyutai_inputs),
    "dia": Recipe(fix_config=_dia_config, provides=("input_ids", "decoder_input_ids"), inputs=_dia_inputs),
    "fastspeech2_conformer_with_hifigan": Recipe(provides=("input_ids",), inputs=_fastspeech_inputs),
    "canine": Recipe(provides=("input_ids",), inputs=_canine_inputs),
    "perceiver": Recipe(provides=("inputs",), inputs=_perceiver_inputs),
    "timesfm": Recipe(provides=("past_values", "past_values_padding", "freq"), inputs=_timesfm_inputs),
    "bark": Recipe(submodel=_bark_submodel),
    "xmod": Recipe(inputs=_xmod_after),
}


# The recipes of each family's module join the table; a type named twice is
# a mistake caught when the table loads (the pure tests load it).
for _module in FAMILY_MODULES:
    _twice = set(_module.RECIPES) & set(RECIPES)
    if _twice:
        raise ImportError(f"{_module.__name__} names model types that already have a recipe: {sorted(_twice)}")
    RECIPES.update(_module.RECIPES)

# Fixes of a shrunk config's dict, by model type, for configs whose class
# validates on construction (the shrinker can trip the validator).
SHRUNK_DICT_FIXES = {}
for _module in FAMILY_MODULES:
    SHRUNK_DICT_FIXES.update(getattr(_module, "SHRUNK_DICT_FIXES", {}))

# Config fixes that hold for any type (applied after a recipe's own).
GENERIC_CONFIG_FIXES = (fit_vision_out_width, fit_vocab_to_placeholders) + tuple(
    fix for _module in FAMILY_MODULES for fix in getattr(_module, "GENERIC_CONFIG_FIXES", ()))


def get(model_type):
    return RECIPES.get(model_type)
