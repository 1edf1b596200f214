# SPDX-License-Identifier: MIT
"""What every recipe module builds on: the Recipe record, the Ctx an inputs()
recipe sees, and small config readers.

It sits below hfleet_recipes.py (the table the runner asks) and below the
recipe modules by family (hfleet_recipes_*.py), which all import it; it
imports none of them.  Torch is reached only through Ctx.torch, so the pure
tests can load every recipe module without torch.
"""

from __future__ import annotations


class Recipe:
    def __init__(self, fix_config=None, provides=(), inputs=None, own_tokens=False, prefer_default=False,
                 submodel=None, model_class=None, note="", name="", make_config=None, calibrate_batchnorm=False):
        self.name = name
        # calibrate_batchnorm: a random-init model's BatchNorm running
        # statistics are set from one pass over the task's own inputs before
        # its first forward (hfleet_build.calibrate_batchnorm), where the
        # identities transformers' initialisation leaves let activations
        # leave float16's range through the depth (align)
        self.calibrate_batchnorm = calibrate_batchnorm
        # make_config(transformers, model_type) -> the default config, for a
        # type whose AutoConfig.for_model cannot build one (it reads the Hub)
        self.make_config = make_config
        self.model_class = model_class
        self.fix_config = fix_config
        self.provides = tuple(provides)
        self.inputs = inputs
        self.own_tokens = own_tokens
        self.prefer_default = prefer_default
        self.submodel = submodel
        self.note = note


class Ctx:
    """What an inputs() recipe sees."""

    def __init__(self, torch, model, config, inputs, batch, seq, device, dtype, params=()):
        self.torch, self.model, self.config, self.inputs = torch, model, config, inputs
        self.params = set(params)
        self.batch, self.seq, self.device, self.dtype = batch, seq, device, dtype
        self.g = torch.Generator(device="cpu").manual_seed(1)

    def randn(self, *shape):
        return self.torch.randn(shape, generator=self.g).to(device=self.device, dtype=self.dtype)

    def rand(self, *shape):
        return self.torch.rand(shape, generator=self.g).to(device=self.device, dtype=self.dtype)

    def randint(self, high, *shape, low=0):
        return self.torch.randint(low, max(int(high), low + 1), shape, generator=self.g).to(self.device)

    def ones(self, *shape, dtype=None):
        return self.torch.ones(shape, dtype=dtype or self.torch.long, device=self.device)

    def zeros(self, *shape, dtype=None):
        return self.torch.zeros(shape, dtype=dtype or self.torch.long, device=self.device)

    def long(self, rows):
        return self.torch.tensor(rows, dtype=self.torch.long, device=self.device)

    def prepend_tokens(self, ids, per_sample, before=(), after=()):
        """Put [before..., id * n, after...] at the start of every row of input_ids."""
        torch = self.torch
        b = self.inputs["input_ids"].shape[0]
        row = list(before) + list(ids) * per_sample + list(after)
        head = torch.tensor([row] * b, dtype=torch.long, device=self.device)
        self.inputs["input_ids"] = torch.cat([head, self.inputs["input_ids"]], dim=1)
        am = self.inputs.get("attention_mask")
        if isinstance(am, torch.Tensor) and am.dim() == 2:
            self.inputs["attention_mask"] = torch.cat([torch.ones_like(head, dtype=am.dtype), am], dim=1)
        return len(row)


def _get(obj, *names, default=None):
    for n in names:
        v = getattr(obj, n, None) if obj is not None else None
        if v is not None:
            return v
    return default


def _sub(config, name):
    return getattr(config, name, None)


def _token(config, *names):
    for c in (config, _sub(config, "text_config")):
        v = _get(c, *names)
        if isinstance(v, int) and v >= 0:
            return v
    return None


def is_power_of_two(n):
    """An int (not a bool) that is a power of two: the sizes cuFFT takes at
    half precision (fnet's and autoformer's recipes)."""
    return isinstance(n, int) and not isinstance(n, bool) and n > 0 and n & (n - 1) == 0


def _text_vocab(config):
    return _get(_sub(config, "text_config"), "vocab_size") or _get(config, "vocab_size")


def fit_tower_to_text_width(config, sub, attr):
    """Set the output width of config's tower (sub-config sub, its attr) to
    the text model's hidden_size where both are known and differ: forward()
    puts the tower's features in place of the text embeddings of its
    placeholder tokens, so the two must be one width.  -> (the width set,
    the width it had), or None when nothing changed."""
    tower, tc = _sub(config, sub), _sub(config, "text_config") or config
    want = _get(tc, "hidden_size")
    if tower is None or not isinstance(want, int) or not hasattr(tower, attr) or getattr(tower, attr) == want:
        return None
    was = getattr(tower, attr)
    setattr(tower, attr, want)
    return want, was


def _vision_size(config):
    vc = _sub(config, "vision_config") or config
    s = _get(vc, "image_size", default=224)
    if isinstance(s, (list, tuple)):
        s = s[-1]
    return int(s)


def patch_sequence_inputs(r):
    """Pre-patched image sequences (siglip2's NaFlex): pixel_values (batch,
    patches, channels * patch * patch), an all-ones patch mask and each
    image's (h, w) grid, from the vision config or the config itself."""
    vc = _sub(r.config, "vision_config") or r.config
    p = _get(vc, "patch_size", default=16)
    p = p[-1] if isinstance(p, (list, tuple)) else p
    ch = _get(vc, "num_channels", default=3)
    n = _get(vc, "num_patches", default=256)
    side = int(n ** 0.5)
    r.inputs["pixel_values"] = r.randn(r.batch, side * side, ch * p * p)
    r.inputs["pixel_attention_mask"] = r.ones(r.batch, side * side)
    r.inputs["spatial_shapes"] = r.long([[side, side]] * r.batch)
