# SPDX-License-Identifier: MIT
"""Recipes for vision-language models (image or video with text): the pixel
layouts, grids and placeholder tokens they need.

Part of the recipe table (hfleet_recipes.py joins RECIPES into its own);
built on hfleet_recipe_base.  Torch only through Ctx.torch.

What is here, by layout:
  * pre-patched pixels with a (t, h, w) grid, in the layouts the generic
    grid recipe (hfleet_recipes.GRID_VLM, 2-D patch rows) does not build:
    patches as small (channels, p, p) images (kimi_k25, paddleocr_vl), a
    temporal patch named patch_temporal (muse_glimmer), per-image merge
    sizes (video_llama_3), merger tokens with row separators and begin/end
    (hunyuan_vl), source + target grids (glm_image);
  * Gemma 4's dynamic-resolution patches with (x, y) positions
    (image_position_ids / pixel_position_ids), chosen by signature;
  * NaFlex patches with spatial_shapes and a patch mask (lfm2_vl), chosen
    by signature;
  * 5-D images (modernvbert), one patch per token 5-D patches (inkling),
    a second high-resolution image (deepseek_vl_hybrid), image sizes for
    a Pixtral tower (lighton_ocr), the learned queries of a bare Q-Former;
  * config fixes: images that must split into whole pixel-shuffle blocks
    and projector widths that must follow the shrunk tower or text width
    (glm_image's default rotary: hfleet_recipes_config.glm_half_rotary).
"""

from __future__ import annotations

from hfleet_recipe_base import Recipe, _get, _sub, _token, _vision_size
from hfleet_recipes_config import glm_half_rotary


def _vc(config):
    return _sub(config, "vision_config") or config


def _int(v, default):
    if isinstance(v, (list, tuple)) and v:
        v = v[0]
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else default


# --------------------------------------------------------------------------
# pre-patched pixels with a (t, h, w) grid

def _merge(vc):
    """Spatial merge factor of a grid tower, whatever the config calls it."""
    return _int(_get(vc, "spatial_merge_size", "merge_size", "merge_kernel_size"), 2)


def _grid_pixels(r, vc, name, grid_name, layout="flat", frames=1, merge=None, per_sample=1):
    """per_sample images (or one clip of `frames` temporal patches) of
    (2 merge) x (2 merge) patches per sample into r.inputs[name], the grid of
    each into r.inputs[grid_name].  layout "flat": one row of
    C * temporal_patch * p * p values per patch (qwen2-vl); "chw": each patch
    a (C, p, p) image (towers that run a Conv2d on the patches themselves).
    Returns (gh, gw)."""
    p = _int(_get(vc, "patch_size"), 14)
    tp = _int(_get(vc, "temporal_patch_size", "patch_temporal"), 1)
    ch = _int(_get(vc, "num_channels", "in_channels", "in_chans"), 3)
    m = merge if merge is not None else _merge(vc)
    gh = gw = 2 * m
    n = r.batch * per_sample * frames * gh * gw
    if layout == "chw":
        r.inputs[name] = r.randn(n, ch, p, p)
    else:
        r.inputs[name] = r.randn(n, ch * tp * p * p)
    r.inputs[grid_name] = r.long([[frames, gh, gw]] * (r.batch * per_sample))
    return gh, gw


def _place_image_tokens(r, n, start_names=("vision_start_token_id", "image_start_token_id"),
                        end_names=("vision_end_token_id", "image_end_token_id"), tok=None):
    c = r.config
    if tok is None:
        tok = _token(c, "image_token_id", "image_token_index")
    if tok is None:
        return None
    start = _token(c, *start_names) if start_names else None
    end = _token(c, *end_names) if end_names else None
    r.prepend_tokens([tok], n, before=[start] if start is not None else [], after=[end] if end is not None else [])
    if "mm_token_type_ids" in r.params:
        r.inputs["mm_token_type_ids"] = (r.inputs["input_ids"] == tok).long()   # 1: image
    return tok


def _grid_vlm(layout="flat", tokens=None, start_end=True):
    """inputs() for a grid vision-language model: one image per sample, its
    placeholder tokens (tokens(gh, gw, m) of them; default the merged patch
    count) at the start of every row."""
    def f(r):
        vc = _vc(r.config)
        m = _merge(vc)
        gh, gw = _grid_pixels(r, vc, "pixel_values", "image_grid_thw", layout=layout)
        n = tokens(gh, gw, m) if tokens is not None else gh * gw // (m * m)
        if start_end:
            _place_image_tokens(r, n)
        else:
            _place_image_tokens(r, n, start_names=(), end_names=())
    return f


def _grid_tower(layout="flat", merge_sizes=None):
    """inputs() for a grid vision tower; merge_sizes: the merge size given
    for each image (video_llama_3's towers take one per image)."""
    def f(r):
        vc = _vc(r.config)
        name = "hidden_states" if "hidden_states" in r.params else "pixel_values"
        _grid_pixels(r, vc, name, "grid_thw", layout=layout)
        if merge_sizes is not None:
            r.inputs["merge_sizes"] = r.long([merge_sizes] * r.batch)
    return f


GRID_PROVIDES = ("pixel_values", "image_grid_thw", "mm_token_type_ids")
TOWER_PROVIDES = ("hidden_states", "pixel_values", "grid_thw")


# kimi_k25: patches as (3, p, p) images, merge_kernel_size, and a projector
# LayerNorm over projection_hidden_size (the vision width).
def _kimi_config(config, shrunk):
    vc = _sub(config, "vision_config")
    w = _get(vc, "hidden_size")
    if vc is not None and hasattr(config, "projection_hidden_size") and isinstance(w, int) \
            and config.projection_hidden_size != w:
        config.projection_hidden_size = w
        return [f"projection_hidden_size={w} (= the vision width it normalizes)"]
    return []


# hunyuan_vl: the merger adds a separator column per row of merged patches
# and a begin and an end token per image; every one of them takes a
# placeholder.  Its default config leaves text head_dim None (attention
# computes None ** -0.5) and its rotary embedding needs an mrope_section
# (the checkpoints have 4 axes: position, width, height, image index).
def _hunyuan_tokens(gh, gw, m):
    return (gh // m) * (gw // m + 1) + 2


def _hunyuan_config(config, shrunk):
    """hunyuan_vl and hunyuan_vl_text: the text model's head_dim and its
    four-axis mrope_section (HunyuanOCR: [16, 16, 16, 16] of a 128-wide head)."""
    notes = []
    for tc in (config, _sub(config, "text_config")):
        if tc is None or getattr(tc, "model_type", None) != "hunyuan_vl_text":
            continue
        if getattr(tc, "head_dim", 0) is None:
            tc.head_dim = tc.hidden_size // tc.num_attention_heads
            notes.append(f"text head_dim={tc.head_dim} (None in the default config)")
        hd = tc.head_dim
        rp = dict(getattr(tc, "rope_parameters", None) or {})
        sec = rp.get("mrope_section")
        if not isinstance(sec, (list, tuple)) or sum(sec) != hd // 2 or len(sec) < 3:
            half = hd // 2
            new = [half // 4] * 4
            new[-1] += half - sum(new)
            rp["mrope_section"] = new
            rp.setdefault("rope_type", "default")
            rp.setdefault("rope_theta", 10000.0)
            tc.rope_parameters = rp
            notes.append(f"text rope mrope_section={new} (4 axes as the HunyuanOCR checkpoint; "
                         f"none in the default config)")
        break
    return notes


# muse_glimmer: the adapter takes out_hidden_size = vision width * merge^2
# (the pixel-shuffled tower output); its text config's NoPE layers (rope
# theta 0) are the full-attention ones.
def _muse_config(config, shrunk):
    notes = []
    vc = _sub(config, "vision_config")
    m = _merge(vc) if vc is not None else 2
    w = _get(vc, "hidden_size")
    if hasattr(config, "out_hidden_size") and isinstance(w, int) and config.out_hidden_size != w * m * m:
        config.out_hidden_size = w * m * m
        notes.append(f"out_hidden_size={w * m * m} (= vision width {w} x merge {m}^2)")
    tc = _sub(config, "text_config")
    lt, th = getattr(tc, "layer_types", None), getattr(tc, "layer_rope_theta", None)
    if shrunk and isinstance(lt, list) and isinstance(th, list) and len(lt) == len(th):
        theta = next((x for x in th if x), None) or 10000.0
        want = [0 if t == "full_attention" else theta for t in lt]
        if want != th:
            tc.layer_rope_theta = want
            notes.append(f"text layer_rope_theta={want} (NoPE on the full-attention layers, as the default config)")
    return notes


# --------------------------------------------------------------------------
# glm_image: source images (pixel_values) plus the grid of the image to
# generate: image_grid_thw holds both per sample, images_per_sample says so.
# The vision tower's patches go through a VQ model whose latent_channels is
# the vision width.

def _glm_image_config(config, shrunk):
    notes = glm_half_rotary(config, shrunk)
    vc, qc = _sub(config, "vision_config"), _sub(config, "vq_config")
    w = _get(vc, "hidden_size")
    if qc is not None and isinstance(w, int) and getattr(qc, "latent_channels", w) != w:
        qc.latent_channels = w
        notes.append(f"vq_config.latent_channels={w} (= the vision width it quantizes)")
    if shrunk and vc is not None and isinstance(getattr(vc, "depth", None), int) and vc.depth > 2:
        vc.depth = 2
        notes.append("vision depth=2 (the shrinker does not know this name for the layer count)")
    return notes


def _glm_image_inputs(r):
    c = r.config
    vc = _vc(c)
    m = _int(_get(vc, "spatial_merge_size"), 1)
    p = _int(_get(vc, "patch_size"), 16)
    ch = _int(_get(vc, "in_channels", "num_channels"), 3)
    gh = gw = 4 * m
    b = r.batch
    r.inputs["pixel_values"] = r.randn(b * gh * gw, ch * p * p)
    r.inputs["image_grid_thw"] = r.long([[1, gh, gw], [1, gh, gw]] * b)   # source, then target
    if "images_per_sample" in r.params:
        r.inputs["images_per_sample"] = r.long([2] * b)
    # one VQ token per source patch, between image start and end
    _place_image_tokens(r, gh * gw, start_names=("image_start_token_id",), end_names=("image_end_token_id",))


# --------------------------------------------------------------------------
# video_llama_3: per-image merge sizes (1 for images, 2 for video frames)

def _video_llama3_inputs(r):
    c = r.config
    vc = _vc(c)
    if "pixel_values_videos" in r.params and _token(c, "video_token_id", "video_token_index") is not None:
        m, frames = 2, 2
        gh, gw = _grid_pixels(r, vc, "pixel_values_videos", "video_grid_thw", frames=frames, merge=m)
        r.inputs["video_merge_sizes"] = r.long([m] * r.batch)
        _place_image_tokens(r, frames * gh * gw // (m * m), start_names=(), end_names=(),
                            tok=_token(c, "video_token_id", "video_token_index"))
    else:
        m = 1
        gh, gw = _grid_pixels(r, vc, "pixel_values", "image_grid_thw", merge=2)
        r.inputs["image_merge_sizes"] = r.long([m] * r.batch)
        _place_image_tokens(r, gh * gw, start_names=(), end_names=())


# --------------------------------------------------------------------------
# Gemma 4: patch rows with (x, y) positions.  The tower pools k x k patches
# (pooling_kernel_size) into one soft token; gemma4_unified instead embeds
# one model patch (patch_size * k pixels a side) per token.

def _gemma4_patches(r, vc, pix_name, pos_name):
    p = _int(_get(vc, "patch_size"), 16)
    k = _int(_get(vc, "pooling_kernel_size"), 3)
    mps = getattr(vc, "model_patch_size", None)
    if isinstance(mps, int) and hasattr(vc, "mm_embed_dim"):
        dim, side, tokens = 3 * mps * mps, 3, 9
    else:
        dim, side = 3 * p * p, 2 * k
        tokens = (side // k) ** 2
    pos = [[x, y] for y in range(side) for x in range(side)]
    r.inputs[pix_name] = r.rand(r.batch, side * side, dim)     # the tower rescales [0, 1] pixels itself
    r.inputs[pos_name] = r.long([pos] * r.batch)
    return tokens


def _gemma4_vlm_inputs(r):
    c = r.config
    n = _gemma4_patches(r, _vc(c), "pixel_values", "image_position_ids")
    _place_image_tokens(r, n, start_names=("boi_token_id",), end_names=("eoi_token_id",))


def _gemma4_tower_inputs(r):
    _gemma4_patches(r, _vc(r.config), "pixel_values", "pixel_position_ids")


GEMMA4_VLM = Recipe(provides=("pixel_values", "image_position_ids", "mm_token_type_ids"), inputs=_gemma4_vlm_inputs,
                    own_tokens=True, name="gemma4-dynamic-resolution",
                    note="patch rows with (x, y) image_position_ids, 2k x 2k patches per image (k = pooling kernel)")
GEMMA4_TOWER = Recipe(provides=("pixel_values", "pixel_position_ids"), inputs=_gemma4_tower_inputs,
                      name="gemma4-vision-tower", note="patch rows with (x, y) pixel_position_ids")


# --------------------------------------------------------------------------
# NaFlex (siglip2-style towers): patch rows, a patch mask and the (h, w)
# patch grid of each image.  Placeholder tokens are counted by the generic
# fitting (get_image_features takes the same three inputs).

def _naflex_inputs(r):
    c = r.config
    vc = _vc(c)
    p = _int(_get(vc, "patch_size"), 16)
    ch = _int(_get(vc, "num_channels"), 3)
    n = _int(_get(vc, "num_patches"), 256)
    f = _int(_get(c, "downsample_factor", "pixel_shuffle_factor", "scale_factor"), 1)
    side = max(int(n ** 0.5) // f * f, f)
    r.inputs["pixel_values"] = r.randn(r.batch, side * side, ch * p * p)
    r.inputs["pixel_attention_mask"] = r.ones(r.batch, side * side)
    r.inputs["spatial_shapes"] = r.long([[side, side]] * r.batch)


NAFLEX = Recipe(provides=("pixel_values", "pixel_attention_mask", "spatial_shapes"), inputs=_naflex_inputs,
                name="naflex-patches", note="NaFlex patch rows with spatial_shapes and a patch mask")


# --------------------------------------------------------------------------
# images that must split into whole pixel-shuffle blocks

def _fit_image_to_shuffle(config, shrunk):
    """image_size // patch_size patches a side must divide by the pixel
    shuffle factor (aya_vision's 384 / 14 = 27 does not): the largest image
    size below the configured one that does."""
    vc = _sub(config, "vision_config")
    f = _int(_get(config, "downsample_factor", "pixel_shuffle_factor", "scale_factor"), 1)
    p = _int(_get(vc, "patch_size"), 14)
    s = _get(vc, "image_size")
    if vc is None or not isinstance(s, int) or f <= 1 or (s // p) % f == 0:
        return []
    block = p * f
    vc.image_size = max(s // block, 1) * block
    return [f"vision image_size={vc.image_size} ({vc.image_size // p} patches a side, whole blocks of "
            f"the pixel shuffle factor {f}; {s} gave {s // p})"]


def _aya_vision_config(config, shrunk):
    """The pixel shuffle's image size, and, in the default config, the
    vision tower's heads: 14 does not divide its 1152 width (the tower
    refuses to build); the released Aya Vision's SigLIP2 so400m tower has 16."""
    notes = _fit_image_to_shuffle(config, shrunk)
    vc = _sub(config, "vision_config")
    width, heads = _get(vc, "hidden_size"), _get(vc, "num_attention_heads")
    if isinstance(width, int) and isinstance(heads, int) and heads and width % heads and width % 16 == 0:
        vc.num_attention_heads = 16
        notes.append(f"vision num_attention_heads=16 ({heads} does not divide the width {width}; "
                     f"the released SigLIP2 so400m tower has 16)")
    return notes


def _modernvbert_inputs(r):
    c = r.config
    vc = _vc(c)
    s = _vision_size(c)
    p = _int(_get(vc, "patch_size"), 16)
    f = _int(_get(c, "pixel_shuffle_factor", "scale_factor"), 1)
    r.inputs["pixel_values"] = r.randn(r.batch, 1, 3, s, s)
    r.inputs["pixel_attention_mask"] = r.ones(r.batch, 1, s, s, dtype=r.torch.bool)
    _place_image_tokens(r, ((s // p) // f) ** 2, start_names=(), end_names=())


# --------------------------------------------------------------------------
# the rest, one model each

def _inkling_inputs(r):
    """Each patch is a (temporal_patch, p, p, C) block that the tower folds
    down to one token."""
    vc = _vc(r.config)
    p = _int(_get(vc, "patch_size"), 40)
    tp = _int(_get(vc, "temporal_patch_size"), 2)
    ch = _int(_get(vc, "num_channels"), 3)
    n = 4
    r.inputs["pixel_values"] = r.randn(r.batch * n, tp, p, p, ch)
    _place_image_tokens(r, n, start_names=("image_bos_token_id",), end_names=())


def _deepseek_hybrid_config(config, shrunk):
    """The model reads the SAM tower's hidden state after its first global
    attention layer (global_attn_indexes[0]); the shrinker leaves the
    indexes of the 12-layer tower."""
    hc = _sub(config, "high_res_vision_config")
    idx = getattr(hc, "global_attn_indexes", None)
    n = _get(hc, "num_hidden_layers")
    if not isinstance(idx, list) or not isinstance(n, int) or (idx and all(i < n for i in idx)):
        return []
    keep = [i for i in idx if i < n] or [n - 1]
    hc.global_attn_indexes = keep
    return [f"high_res_vision_config.global_attn_indexes={keep} (the tower has {n} layers)"]


def _deepseek_hybrid_inputs(r):
    hc = _sub(r.config, "high_res_vision_config")
    s = _int(_get(hc, "image_size"), 1024)
    ch = _int(_get(hc, "num_channels"), 3)
    r.inputs["high_res_pixel_values"] = r.randn(r.batch, ch, s, s)


def _lighton_inputs(r):
    c = r.config
    vc = _vc(c)
    p = _int(_get(vc, "patch_size"), 14)
    m = _int(_get(c, "spatial_merge_size"), 2)
    s = p * m * 8
    r.inputs["pixel_values"] = r.randn(r.batch, 3, s, s)
    r.inputs["image_sizes"] = r.long([[s, s]] * r.batch)
    _place_image_tokens(r, (s // (p * m)) ** 2, start_names=(), end_names=())


# timm towers keep their real width: the shrinker narrows the number in the
# config but cannot reach the timm model, whose features the projector takes.
TIMM_WIDTHS = {"fastvit_mci3": 3072}


def _timm_width_config(config, shrunk):
    vc = _sub(config, "vision_config")
    arch = getattr(vc, "architecture", None)
    w = TIMM_WIDTHS.get(arch)
    if vc is None or w is None or getattr(vc, "hidden_size", w) == w:
        return []
    vc.hidden_size = w
    return [f"vision hidden_size={w} (the timm {arch} tower's real width)"]


def _bare_qformer_inputs(r):
    """A bare Q-Former: its learned query tokens (batch, num_query_tokens,
    hidden) cross-attending to image features (batch, 257, encoder width:
    a ViT-g/14's 16 x 16 patches and CLS).  The Q-Former config does not
    hold the query count; 32 is BLIP-2's (Blip2Config.num_query_tokens)."""
    c = r.config
    q = _int(_get(c, "num_query_tokens"), 32)
    h = _int(_get(c, "hidden_size"), 768)
    r.inputs["query_embeds"] = r.randn(r.batch, q, h)
    r.inputs["encoder_hidden_states"] = r.randn(r.batch, 257, _int(_get(c, "encoder_hidden_size"), 1408))


# --------------------------------------------------------------------------
# config fixes that hold for any type

def fit_merged_width(config, shrunk):
    """A projector that fuses spatial_merge_size^2 projected patches reads
    merged_hidden_size = text width * merge^2 (minimax_m3_vl); the config
    computes it at construction, and the shrunk dict carries the default's."""
    tc, vc = _sub(config, "text_config"), _sub(config, "vision_config")
    w, m = _get(tc, "hidden_size"), _get(vc, "spatial_merge_size")
    if not shrunk or not hasattr(config, "merged_hidden_size") or not isinstance(w, int) or not isinstance(m, int):
        return []
    if config.merged_hidden_size == w * m * m:
        return []
    config.merged_hidden_size = w * m * m
    return [f"merged_hidden_size={w * m * m} (= text width {w} x merge {m}^2)"]


GENERIC_CONFIG_FIXES = (fit_merged_width,)


def for_signature(params):
    """Layouts chosen by forward()'s inputs, for types without a recipe."""
    if "pixel_values" in params and "image_position_ids" in params and "input_ids" in params:
        return GEMMA4_VLM
    if "pixel_values" in params and "pixel_position_ids" in params:
        return GEMMA4_TOWER
    if "pixel_values" in params and "spatial_shapes" in params and "pixel_attention_mask" in params:
        return NAFLEX
    if "merge_sizes" in params and "grid_thw" in params and "pixel_values" in params:
        return Recipe(provides=TOWER_PROVIDES + ("merge_sizes",), inputs=_grid_tower(merge_sizes=1),
                      name="grid-vision-tower-merge-sizes",
                      note="pre-patched pixels with grid_thw and a merge size per image")
    return None


def _with_vision_tower(transformers, model_type):
    """Gemma 4's default config leaves vision_config None, and the model then
    has no vision tower (its forward() still takes pixels): the default
    config with the vision sub-config's own default, as the released models
    have.  The audio tower stays out (the default leaves it out too)."""
    cls = transformers.CONFIG_MAPPING[model_type]
    return cls(vision_config=cls.sub_configs["vision_config"]().to_dict())


RECIPES = {
    # a make_config recipe builds no inputs: forward()'s signature gives them (GEMMA4_VLM)
    "gemma4": Recipe(make_config=_with_vision_tower, note="the default config with its vision tower"),
    "gemma4_unified": Recipe(make_config=_with_vision_tower, note="the default config with its vision tower"),
    "aya_vision": Recipe(fix_config=_aya_vision_config),
    "modernvbert": Recipe(fix_config=_fit_image_to_shuffle, provides=("pixel_values", "pixel_attention_mask"),
                          inputs=_modernvbert_inputs, own_tokens=True),
    "deepseek_vl_hybrid": Recipe(fix_config=_deepseek_hybrid_config, provides=("high_res_pixel_values",),
                                 inputs=_deepseek_hybrid_inputs),
    "glm_image": Recipe(fix_config=_glm_image_config,
                        provides=("pixel_values", "image_grid_thw", "images_per_sample"),
                        inputs=_glm_image_inputs, own_tokens=True,
                        note="source image grid + target grid per sample, VQ tokens between image start/end"),
    "hunyuan_vl_text": Recipe(fix_config=_hunyuan_config),
    "hunyuan_vl": Recipe(fix_config=_hunyuan_config, provides=GRID_PROVIDES,
                         inputs=_grid_vlm(tokens=_hunyuan_tokens, start_end=False), own_tokens=True,
                         note="grid pixels; (h/m)(w/m + 1) + 2 placeholders per image"),
    "inkling_mm_model": Recipe(provides=("pixel_values",), inputs=_inkling_inputs, own_tokens=True,
                               note="4 patches of (temporal_patch, p, p, C) per sample, one token each"),
    "kimi_k25": Recipe(fix_config=_kimi_config, provides=GRID_PROVIDES, inputs=_grid_vlm(layout="chw"),
                       own_tokens=True, note="grid patches as (3, p, p) images"),
    "kimi_k25_vision": Recipe(provides=TOWER_PROVIDES, inputs=_grid_tower(layout="chw"),
                              note="grid patches as (3, p, p) images"),
    "paddleocr_vl": Recipe(provides=GRID_PROVIDES, inputs=_grid_vlm(layout="chw"),
                           own_tokens=True, note="grid patches as (3, p, p) images"),
    "muse_glimmer": Recipe(fix_config=_muse_config, provides=GRID_PROVIDES, inputs=_grid_vlm(), own_tokens=True,
                           note="grid pixels with the patch_temporal frames per patch row"),
    "muse_glimmer_vision": Recipe(provides=TOWER_PROVIDES, inputs=_grid_tower(),
                                  note="grid pixels with the patch_temporal frames per patch row"),
    "video_llama_3": Recipe(provides=("pixel_values", "image_grid_thw", "image_merge_sizes", "pixel_values_videos",
                                      "video_grid_thw", "video_merge_sizes"),
                            inputs=_video_llama3_inputs, own_tokens=True,
                            note="one 2-frame clip per sample: grid pixels, video_grid_thw, video_merge_sizes=2"),
    "video_llama_3_vision": Recipe(provides=TOWER_PROVIDES + ("merge_sizes",), inputs=_grid_tower(merge_sizes=1),
                                   note="grid pixels with merge_sizes=1 (images)"),
    "lighton_ocr": Recipe(provides=("pixel_values", "image_sizes"), inputs=_lighton_inputs, own_tokens=True,
                          note="a 224 px image (whole merge blocks) with its image_sizes"),
    "fast_vlm": Recipe(fix_config=_timm_width_config),
    "blip_2_qformer": Recipe(provides=("query_embeds", "encoder_hidden_states"), inputs=_bare_qformer_inputs,
                             note="learned-query-shaped query_embeds over ViT-g image features"),
}
