# SPDX-License-Identifier: MIT
"""Recipes for vision and video models without text (detection, OCR, towers,
video encoders): the inputs they need.

Part of the recipe table (hfleet_recipes.py joins RECIPES into its own);
built on hfleet_recipe_base.  Torch only through Ctx.torch.

Chosen by forward()'s signature (for_signature), for any model type:
  * video clips, pixel_values_videos as (batch, frames, channels, h, w), for
    video encoders and video-text dual encoders (videoprism, pe_video);
  * pre-patched image sequences with pixel_attention_mask and spatial_shapes
    (a siglip2 vision tower on its own).
By model type (RECIPES): detection backbones whose default config does not
fit its own head (lw_detr, rf_detr, pp_ocrv6_small_det, uvdoc), an image
pair (lightglue), trajectories (decision_transformer), a vision-language-
action model (pi0), a VQ quantizer without forward() (glm_image_vqmodel),
and widths the shrinker narrows on one side only (mistral4, blt).
"""

from __future__ import annotations

from hfleet_recipe_base import Recipe, _get, _sub, patch_sequence_inputs


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _first(configs, *names):
    for c in configs:
        v = _get(c, *names)
        if v is not None:
            return v
    return None


def _hw(size):
    """(h, w) from an int or an [h, w] list, else None."""
    if _is_int(size) and size > 0:
        return int(size), int(size)
    if isinstance(size, (list, tuple)) and len(size) >= 2 and all(_is_int(x) for x in size[-2:]):
        return int(size[-2]), int(size[-1])
    return None


# --------------------------------------------------------------------------
# video clips: pixel_values_videos (batch, frames, channels, h, w)

def _timm_image_hw(model):
    """The input size a timm image tower inside the model was built for (its
    patch embedding's img_size, or its pretrained_cfg input_size)."""
    for m in model.modules():
        hw = _hw(getattr(getattr(m, "patch_embed", None), "img_size", None))
        if hw:
            return hw
    for m in model.modules():
        cfg = getattr(m, "pretrained_cfg", None)
        if isinstance(cfg, dict):
            hw = _hw(cfg.get("input_size"))
            if hw:
                return hw
    return None


def _video_configs(config):
    vc = _sub(config, "video_config")
    out = [_sub(config, "vision_config"), vc, _sub(vc, "vision_config"), config]
    return [c for c in out if c is not None]


def _video_inputs(r):
    cfgs = _video_configs(r.config)
    hw = _hw(_first(cfgs, "image_size", "crop_size", "img_size")) or _timm_image_hw(r.model) or (224, 224)
    frames = _first(cfgs, "num_frames", "frames_per_clip")
    frames = frames if _is_int(frames) and frames > 0 else 8
    ch = _first(cfgs, "num_channels", "in_channels")
    ch = ch if _is_int(ch) and ch > 0 else 3
    r.inputs["pixel_values_videos"] = r.randn(r.batch, frames, ch, hw[0], hw[1])


VIDEO = Recipe(provides=("pixel_values_videos",), inputs=_video_inputs, name="video-clip",
               note="pixel_values_videos (batch, frames, channels, h, w) at the config's frames and image size")


# --------------------------------------------------------------------------
# pre-patched image sequences (siglip2's NaFlex): pixel_values (batch,
# patches, channels * patch * patch), a patch mask and each image's grid.

PATCH_SEQUENCE = Recipe(provides=("pixel_values", "pixel_attention_mask", "spatial_shapes"),
                        inputs=patch_sequence_inputs, name="patch-sequence-vision",
                        note="a square grid of num_patches pre-patched pixels with its mask and spatial_shapes")


def for_signature(params):
    """Video clips for a video encoder (pixel_values_videos, no image input,
    and either required or without text ids: a video LLM with placeholder
    tokens is not one), and pre-patched patch sequences for a vision tower
    taking pixel_attention_mask and spatial_shapes without text ids."""
    names = set(params)
    required = params.get if isinstance(params, dict) else (lambda name: None)
    if "pixel_values_videos" in names \
            and not names & {"pixel_values", "pixel_values_images", "video_grid_thw", "image_grid_thw", "grid_thw"} \
            and (required("pixel_values_videos") is True or "input_ids" not in names):
        return VIDEO
    if {"pixel_values", "pixel_attention_mask", "spatial_shapes"} <= names and "input_ids" not in names:
        return PATCH_SEQUENCE
    return None


# --------------------------------------------------------------------------
# detection / document backbones

def _set_out_features(bc, names):
    if hasattr(bc, "set_output_features_output_indices"):
        bc.set_output_features_output_indices(out_features=list(names), out_indices=None)
    else:
        bc.out_features = list(names)


def _lw_detr_config(config, shrunk):
    # The default config has no projector scale, so the projector yields no
    # feature map; LW-DETR's released checkpoints use one level at scale 1.
    if getattr(config, "projector_scale_factors", None):
        return []
    config.projector_scale_factors = [1.0]
    config.projector_in_channels = [config.d_model]
    config.projector_out_channels = config.d_model
    config.num_feature_levels = 1
    return ["projector_scale_factors=[1.0], num_feature_levels=1 (empty in the default config: no feature map)"]


def _rf_detr_inputs(r):
    # The DINOv2 backbone splits the patch grid into num_windows x num_windows
    # windows: the image side must be a multiple of patch * num_windows (518,
    # the default, is not: 560 is the next).
    bc = _sub(r.config, "backbone_config") or r.config
    p = _get(bc, "patch_size", default=14)
    p = p[-1] if isinstance(p, (list, tuple)) else p
    nw = _get(bc, "num_windows", default=1)
    hw = _hw(_get(bc, "image_size", default=518)) or (518, 518)
    unit = int(p) * max(int(nw), 1)
    h, w = (-(-x // unit) * unit for x in hw)
    ch = _get(bc, "num_channels", default=3)
    r.inputs["pixel_values"] = r.randn(r.batch, ch, h, w)


def _pp_ocr_det_config(config, shrunk):
    # transformers' default backbone (pp_lcnet_v4) is the text-recognition
    # one: [2, 1] strides that keep the width, and only the last stage out.
    # The detection neck fuses four stages, each half the size of the one
    # before (as in transformers' own tests of this model): stage strides
    # 1, 2, 2, 2, all four stages out, and the neck's input widths read from
    # the blocks.
    bc = _sub(config, "backbone_config")
    blocks = _get(bc, "block_configs")
    if bc is None or getattr(bc, "model_type", None) != "pp_lcnet_v4" or not isinstance(blocks, (list, tuple)):
        return []
    rec_strides = any(isinstance(b[3], (list, tuple)) for stage in blocks for b in stage)
    outs = list(getattr(bc, "out_features", None) or [])
    names = [f"stage{i}" for i in range(1, len(blocks) + 1)]
    if not rec_strides and outs == names:
        return []
    new = []
    for i, stage in enumerate(blocks):
        stage = [list(b) for b in stage]
        stage[0][3] = 1 if i == 0 else 2
        for b in stage[1:]:
            b[3] = 1 if isinstance(b[3], (list, tuple)) else b[3]
        new.append(stage)
    bc.block_configs = new
    bc.depths = [len(s) for s in new]
    bc.stage_out_channels = [s[-1][2] for s in new]
    _set_out_features(bc, names)
    widths = [int(s[-1][2] * _get(bc, "scale", default=1.0)) for s in new]
    if hasattr(config, "layer_list_out_channels"):   # the small model's neck (the medium one reads the backbone's)
        config.layer_list_out_channels = widths
    return [f"backbone: detection strides (1, 2, 2, 2) and all {len(new)} stages out; neck input widths {widths} "
            f"(the default backbone is the recognition one)"]


def _pp_ocrv6_medium_det_config(config, shrunk):
    """The neck's intra-class blocks read intraclass_block_config, and the
    neck and head read scale_factor_list / kernel_list, all None in the
    default config: PaddleOCR's IntraCLBlock (1x1 reduce/return, 7/5/3
    square, vertical and horizontal convolutions), the four refined maps
    upsampled to 1/4 resolution, the DB head's [3, 2, 2]."""
    notes = []
    if config.intraclass_block_config is None:
        config.intraclass_block_config = {
            "reduce_channel": [1, 1, 0], "return_channel": [1, 1, 0],
            "vertical_long_to_small_conv_longratio": [[7, 1], 1, [3, 0]],
            "vertical_long_to_small_conv_midratio": [[5, 1], 1, [2, 0]],
            "vertical_long_to_small_conv_shortratio": [[3, 1], 1, [1, 0]],
            "horizontal_small_to_long_conv_longratio": [[1, 7], 1, [0, 3]],
            "horizontal_small_to_long_conv_midratio": [[1, 5], 1, [0, 2]],
            "horizontal_small_to_long_conv_shortratio": [[1, 3], 1, [0, 1]],
            "symmetric_conv_long_longratio": [7, 1, 3],
            "symmetric_conv_long_midratio": [5, 1, 2],
            "symmetric_conv_long_shortratio": [3, 1, 1],
        }
        notes.append("intraclass_block_config = PaddleOCR's IntraCLBlock kernels (None in the default config)")
    for name, value in (("scale_factor_list", [1, 2, 4, 8]), ("kernel_list", [3, 2, 2])):
        if getattr(config, name, None) is None:
            setattr(config, name, value)
            notes.append(f"{name}={value} (unset in the default config)")
    # its backbone is the same recognition pp_lcnet_v4 as the small model's
    return notes + _pp_ocr_det_config(config, shrunk)


def _uvdoc_config(config, shrunk):
    # The head fuses every bridge stage (bridge_connector[0] * stages
    # channels); the default backbone config outputs only the last one.
    bc = _sub(config, "backbone_config")
    stages = _get(bc, "stage_configs")
    if bc is None or not isinstance(stages, (list, tuple)):
        return []
    names = [f"stage{i}" for i in range(1, len(stages) + 1)]
    if list(getattr(bc, "out_features", None) or []) == names:
        return []
    _set_out_features(bc, names)
    return [f"backbone out_features=stage1..stage{len(stages)} (the head fuses every bridge stage)"]


# --------------------------------------------------------------------------
# other inputs

def _lightglue_inputs(r):
    # An image pair per sample; SuperPoint reads one channel of three.
    r.inputs["pixel_values"] = r.rand(r.batch, 2, 3, 256, 256)


def _decision_transformer_inputs(r):
    c = r.config
    b = r.batch
    state, act = _get(c, "state_dim", default=17), _get(c, "act_dim", default=4)
    ep = _get(c, "max_ep_len", default=4096)
    pos = _get(c, "n_positions", "max_position_embeddings")
    L = min(r.seq, ep, pos // 3 if _is_int(pos) and pos >= 3 else r.seq)   # 3 tokens (R, s, a) per step
    L = max(int(L), 1)
    r.inputs["states"] = r.randn(b, L, state)
    r.inputs["actions"] = r.randn(b, L, act)
    r.inputs["rewards"] = r.randn(b, L, 1)
    r.inputs["returns_to_go"] = r.randn(b, L, 1)
    r.inputs["timesteps"] = r.long([list(range(L))] * b)
    # forward() builds a missing mask on the CPU: give one on the device
    r.inputs["attention_mask"] = r.ones(b, L)


def _pi0_config(config, shrunk):
    # PaliGemma projects vision features to vision_config.projection_dim and
    # scatters them into the text embeddings: it must be the text width.
    vlm = _sub(config, "vlm_config")
    tc = _sub(vlm, "text_config")
    want = _get(tc, "hidden_size")
    if vlm is None or not _is_int(want):
        return []
    notes = []
    if getattr(vlm, "projection_dim", want) != want:
        vlm.projection_dim = want
        notes.append(f"vlm_config.projection_dim={want}")
    vc = _sub(vlm, "vision_config")
    if vc is not None and getattr(vc, "projection_dim", want) != want:
        vc.projection_dim = want
        notes.append(f"vlm_config.vision_config.projection_dim={want}")
    return [", ".join(notes) + " (= the text width)"] if notes else []


def _pi0_inputs(r):
    c = r.config
    vlm = _sub(c, "vlm_config")
    vc, tc = _sub(vlm, "vision_config"), _sub(vlm, "text_config")
    s = _get(vc, "image_size", default=224)
    s = s[-1] if isinstance(s, (list, tuple)) else s
    p = _get(vc, "patch_size", default=14)
    n_img = (int(s) // int(p)) ** 2
    image_tok = _get(vlm, "image_token_id", "image_token_index")
    vocab = _get(tc, "vocab_size", default=1000)
    b, L = r.batch, r.seq
    high = min(int(vocab), int(image_tok)) if _is_int(image_tok) else int(vocab)
    text = r.randint(min(high, 32000), b, L, low=1)
    if _is_int(image_tok):
        head = r.long([[image_tok] * n_img] * b)
        r.inputs["input_ids"] = r.torch.cat([head, text], dim=1)
    else:
        r.inputs["input_ids"] = text
    total = r.inputs["input_ids"].shape[1]
    r.inputs["attention_mask"] = r.ones(b, total)
    r.inputs["pixel_values"] = r.randn(b, 1, _get(vc, "num_channels", default=3), int(s), int(s))   # one camera
    r.inputs["pixel_attention_mask"] = r.ones(b, 1, dtype=r.torch.bool)
    r.inputs["state"] = r.randn(b, _get(c, "max_state_dim", default=32))
    r.inputs["noise"] = r.randn(b, _get(c, "chunk_size", default=50), _get(c, "max_action_dim", default=32))
    r.inputs["timestep"] = r.rand(b)


def _vq_encode_submodel(model):
    # GlmImageVQVAE defines encode() only (GlmImage calls it on its vision
    # tower's features): forward() is made that entry point.
    model.forward = model.encode
    return model, "GlmImageVQVAE has no forward(); its encode() (quantizing vision features) is run"


def _vq_inputs(r):
    ch = _get(r.config, "latent_channels", default=1536)
    r.inputs["hidden_states"] = r.randn(r.batch, ch, 16, 16)


# --------------------------------------------------------------------------
# widths the shrinker narrows on one side only

def _mistral4_config(config, shrunk):
    # Multi-head latent attention: the rotary embedding is built from
    # head_dim * partial_rotary_factor, which must be qk_rope_head_dim; the
    # shrinker sets head_dim to hidden / heads, not to nope + rope.
    notes = []
    for c in (config, _sub(config, "text_config")):
        if c is None or getattr(c, "model_type", None) != "mistral4":
            continue
        nope, rope = _get(c, "qk_nope_head_dim"), _get(c, "qk_rope_head_dim")
        if not (_is_int(nope) and _is_int(rope)):
            continue
        hd = nope + rope
        if getattr(c, "head_dim", None) != hd:
            c.head_dim = hd
            notes.append(f"head_dim={hd} (= qk_nope_head_dim + qk_rope_head_dim)")
        if getattr(c, "qk_head_dim", hd) != hd:
            c.qk_head_dim = hd
        rp = getattr(c, "rope_parameters", None)
        if isinstance(rp, dict) and rp.get("partial_rotary_factor") != rope / hd:
            rp["partial_rotary_factor"] = rope / hd
            notes.append(f"rope partial_rotary_factor={rope / hd:g}")
    return notes


def _blt_config(config, shrunk):
    # The local decoder projects the global transformer's states from
    # hidden_size_global, which the sub-configs keep at 2048.
    want = _get(_sub(config, "global_config"), "hidden_size")
    notes = []
    for name in ("encoder_config", "decoder_config"):
        c = _sub(config, name)
        if c is not None and _is_int(want) and hasattr(c, "hidden_size_global") and c.hidden_size_global != want:
            c.hidden_size_global = want
            notes.append(f"{name}.hidden_size_global={want} (= global_config.hidden_size)")
    return notes


# --------------------------------------------------------------------------
# EdgeTAM: the default vision config reads the RepViT backbone's config
# from the Hub (AutoConfig.from_pretrained("timm/repvit_m1.dist_in1k")), and
# transformers builds that default even from a config that names its
# backbone; offline, the runner answers it with the same architecture,
# random-init (hfleet_build.offline_timm_configs, for any timm Hub config).
# The recipes give the image at the prompt encoder's size.

def _edgetam_inputs(r):
    c = r.config
    s = _get(_sub(c, "prompt_encoder_config"), "image_size")
    if not _is_int(s):
        sizes = _get(_sub(c, "vision_config") or c, "backbone_feature_sizes")
        s = 4 * sizes[0][0] if isinstance(sizes, (list, tuple)) and sizes and _hw(sizes[0]) else 1024
    r.inputs["pixel_values"] = r.randn(r.batch, 3, int(s), int(s))


# --------------------------------------------------------------------------

RECIPES = {
    "lw_detr": Recipe(fix_config=_lw_detr_config),
    "rf_detr": Recipe(provides=("pixel_values",), inputs=_rf_detr_inputs),
    "pp_ocrv6_small_det": Recipe(fix_config=_pp_ocr_det_config),
    "pp_ocrv6_medium_det": Recipe(fix_config=_pp_ocrv6_medium_det_config),
    "uvdoc": Recipe(fix_config=_uvdoc_config),
    "lightglue": Recipe(provides=("pixel_values",), inputs=_lightglue_inputs),
    "decision_transformer": Recipe(provides=("states", "actions", "rewards", "returns_to_go", "timesteps",
                                             "attention_mask"), inputs=_decision_transformer_inputs),
    "pi0": Recipe(fix_config=_pi0_config, model_class="PI0ForConditionalGeneration",
                  provides=("input_ids", "attention_mask", "pixel_values", "pixel_attention_mask", "state",
                            "noise", "timestep"),
                  inputs=_pi0_inputs, own_tokens=True),
    "glm_image_vqmodel": Recipe(submodel=_vq_encode_submodel, provides=("hidden_states",), inputs=_vq_inputs),
    "mistral4": Recipe(fix_config=_mistral4_config),
    "blt": Recipe(fix_config=_blt_config),
    # The shrinker narrows EdgeTAM's prompt encoder and mask decoder but not
    # the vision neck whose features they take (fpn_hidden_size), nor the
    # RepViT backbone, whose widths its timm architecture fixes; the default
    # (about 5 M parameters for the tower) is small: it is used.
    "edgetam": Recipe(provides=("pixel_values",), inputs=_edgetam_inputs, prefer_default=True,
                      note="the default config (a shrunk one narrows the mask decoder, not the vision neck)"),
    "edgetam_vision_model": Recipe(provides=("pixel_values",), inputs=_edgetam_inputs, prefer_default=True,
                                   note="the default config (a timm backbone's widths are its architecture's)"),
}
