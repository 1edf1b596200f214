# SPDX-License-Identifier: MIT
"""Video trackers (SAM2-style) without a processor: an inference session of
random frames and prompts, made from the model's own session class.

The four video trackers (sam2_video, sam3_tracker_video, edgetam_video,
sam3_video) take no tensors in forward(): they take an inference session
(Sam2VideoInferenceSession, ...) holding the video's frames, the prompts
and every frame's outputs so far, and a frame index; one call segments the
tracked objects in one frame, attending to the memories of earlier frames.
The session is normally made by the model's processor from a video and
prompts, and the processor reads its image and video processors (and, for
sam3_video, a CLIP tokenizer) from the Hub.  Here the session is built
directly from its class, found beside the model (the annotation of
forward()'s inference_session, else <Model name>InferenceSession), with
what the processor would put in it:

  * the point trackers (sam2_video, sam3_tracker_video, edgetam_video): one
    random positive point per object on frame 0, as
    Sam2VideoProcessor.add_inputs_to_inference_session stores it (pixel
    coordinates of the prompt encoder's image_size, which the processor's
    target size is; label 1);
  * sam3_video, which finds its objects itself from a text prompt: random
    token ids for the prompt (as add_text_prompt stores them, 32 tokens),
    and, because a detector with random weights finds a chance number of
    objects, the first frame's detections replaced by one object per
    sample (disjoint rectangles, score 1), which the model itself then
    starts tracking.  After that frame no new object is born from a
    detection (the model's new_det_thresh is set above any score): the
    detector still runs on every frame and its detections are still
    matched against the tracks, but every pass tracks the same objects.

One object per sample: the batch of a tracker is the objects it follows
in a frame (a benchmark's batch of 1 is one object, its throughput frames
per second).  Frames are random, (3, image_size, image_size), streamed
one by one (forward(frame=..., frame_idx=...)), as a live video is: the
session starts without a video.  Before the runner's forward the recipe
tracks frames 0 to num_maskmem - 1 (frame 0 with the prompts), so the
measured frame, num_maskmem, attends to a full memory bank (the prompted
frame and the num_maskmem - 1 frames before it), the steady state of a
tracker.  The runner's forward passes (the test's one, a benchmark's
many) all track that same frame again; its outputs overwrite themselves
in the session, so the session does not grow with the passes.

A point tracker keeps the last frame's image features in the session's
cache and reuses them when asked for the same frame again: without care
every pass after the first would skip the image encoder, most of a
frame's work.  A forward pre-hook on the model empties the cache before
each pass, so each pass encodes its frame, as each new frame of a video
is encoded.  sam3_video encodes the frame on every pass itself.

The default config is used for tests too (prefer_default): the shrunk
configs of these families do not hold together (the shrinker narrows the
prompt encoder and mask decoder but not the vision neck's fpn width, and
the Hiera backbone's hidden size but not its per-stage widths); sam2,
sam3 and sam3_tracker ran on their default configs in the GPU sweeps for
the same reason.  edgetam_video's default vision config is SAM2's Hiera
(the released EdgeTAM has a RepViT backbone from timm): it is what
transformers builds, and it builds offline.

Written against the transformers source of 5.2.0.dev0 (main of
13 February 2026, commit c9ea365: models/sam2_video, sam3_tracker_video,
edgetam_video, sam3_video); the GPU machine runs 5.17.  Older releases
(4.57) append every streamed frame (add_new_frame without frame_idx),
which would grow the session on every pass: every attribute the recipe
uses is looked up first, and a missing one skips the task with what was
missing ("inputs not supported by this runner version: ...") rather than
guessing.

Part of the recipe table (hfleet_recipes.py joins RECIPES into its own);
built on hfleet_recipe_base.  Torch only through the Ctx.
"""

from __future__ import annotations

import inspect
import random
import sys

import hfleet_plan as plan_mod
import hfleet_runner_lib as lib
from hfleet_recipe_base import Recipe, _get, _sub

# forward() inputs the recipes build (the planner leaves them out).
SESSION_INPUTS = ("inference_session", "frame_idx", "frame")
# The frame the prompts are on.
PROMPT_FRAME = 0
# RGB frames, as the video processors make them.
FRAME_CHANNELS = 3
# SAM2's released memory bank (config num_maskmem), when neither the model
# nor its config says.
DEFAULT_MEMORY_FRAMES = 7
# Seed for the point prompts' places (the frames come from the Ctx's generator).
PROMPT_SEED = 1
# sam3_video: the text prompt (only a key in the session: its token ids
# are random), its length (the processor pads to 32), the mask logits of a
# seeded object inside and outside its rectangle, and a detection score no
# detection reaches (scores are products of sigmoids, at most 1).
PROMPT_TEXT = "hfleet random prompt"
PROMPT_TOKENS = 32
SEED_MASK_LOGIT = 8.0
NO_NEW_OBJECTS = 2.0


class SessionApiError(plan_mod.PlanError):
    """The installed transformers' video-tracker API is not the one the
    recipe was written against (the runner skips the task with why)."""


# --------------------------------------------------------------------------
# pure parts: sizes, prompts, the session's class and arguments

def frame_size(config):
    """The side of the square frames the model takes: config.image_size
    (sam3_video's is its detector's), else its vision config's."""
    for c in (config, _sub(config, "vision_config"), _sub(config, "detector_config")):
        s = _get(c, "image_size")
        if isinstance(s, (list, tuple)) and s:
            s = s[-1]
        if isinstance(s, int) and s > 0:
            return s
    raise SessionApiError(f"{type(config).__name__} names no image_size: the frames' size is unknown")


def prompt_space(config):
    """The side of the square the prompt encoder's point coordinates are
    in (its image_size; the processor normalises points to it)."""
    s = _get(_sub(config, "prompt_encoder_config"), "image_size")
    return s if isinstance(s, int) and s > 0 else frame_size(config)


def memory_frames(model, config):
    """How many frames the tracker keeps in its memory bank (num_maskmem:
    the prompted frame and the frames before the current one)."""
    n = _get(model, "num_maskmem")
    if not isinstance(n, int):
        n = _get(config, "num_maskmem", default=DEFAULT_MEMORY_FRAMES)
    return int(n)


def measured_frame(n_memory):
    """The index of the frame the runner's passes track: after the prompted
    frame 0 and the frames that fill the memory bank, at least frame 1."""
    return max(int(n_memory), 1)


def point_prompts(n_objects, space, seed=PROMPT_SEED):
    """One (x, y) point per object, uniform in [0, space), the same for
    the same arguments."""
    g = random.Random(seed)
    return [[g.uniform(0, space), g.uniform(0, space)] for _ in range(n_objects)]


def seed_rectangles(n_objects, height, width):
    """Disjoint rectangles (y0, y1, x0, x1), one per object: vertical
    stripes of equal width across the middle half of the rows, a column
    of margin on each side of each."""
    n = max(int(n_objects), 1)
    step = width // n
    if step < 3 or height < 4:
        raise SessionApiError(f"{n} seeded objects do not fit detection masks of {height} x {width}")
    y0, y1 = height // 4, height - height // 4
    return [(y0, y1, i * step + 1, (i + 1) * step - 1) for i in range(n)]


def session_class_name(model_class_name):
    """Sam2VideoModel -> Sam2VideoInferenceSession (the name transformers gives it)."""
    stem = model_class_name[:-len("Model")] if model_class_name.endswith("Model") else model_class_name
    return stem + "InferenceSession"


def session_class(model):
    """The inference session class forward() takes: the annotation of its
    inference_session parameter when that is a class, else the class of
    that name, or of the model's name, in the model's module."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError) as exc:
        raise SessionApiError(f"forward() of {type(model).__name__} has no readable signature: {exc}") from exc
    if "inference_session" not in params:
        raise SessionApiError(f"forward() of {type(model).__name__} takes no inference_session")
    annotation = params["inference_session"].annotation
    if isinstance(annotation, type):
        return annotation
    module = sys.modules.get(type(model).__module__)
    names = [annotation] if isinstance(annotation, str) and annotation.isidentifier() else []
    names.append(session_class_name(type(model).__name__))
    for name in names:
        cls = getattr(module, name, None)
        if isinstance(cls, type):
            return cls
    raise SessionApiError(f"no inference session class for {type(model).__name__} "
                          f"(looked for {', '.join(names)} in {type(model).__module__})")


def session_kwargs(cls, **offered):
    """The offered constructor arguments cls takes (all of them when it takes
    **kwargs); a parameter without a default that is not offered fails."""
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError) as exc:
        raise SessionApiError(f"{cls.__name__}() has no readable signature: {exc}") from exc
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {n: p for n, p in params.items() if n != "self"
             and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)}
    missing = [n for n, p in named.items() if p.default is inspect.Parameter.empty and n not in offered]
    if missing:
        raise SessionApiError(f"{cls.__name__}() requires {', '.join(missing)}, which the recipe does not know")
    return dict(offered) if takes_any else {k: v for k, v in offered.items() if k in named}


def require(obj, what, names):
    """Fail, naming them, when obj lacks any of these attributes."""
    missing = [n for n in names if not hasattr(obj, n)]
    if missing:
        raise SessionApiError(f"{what} has no {', '.join(missing)} (the recipe reads transformers 5.2's API)")


def require_params(fn, what, names):
    """Fail, naming them, when the callable fn takes none of these names."""
    params, takes_any = plan_mod.forward_params(fn)
    missing = [n for n in names if n not in params and not takes_any]
    if missing:
        raise SessionApiError(f"{what} takes no {', '.join(missing)} (the recipe reads transformers 5.2's API)")


# --------------------------------------------------------------------------
# the session and the frames before the measured one (torch through the Ctx)

def new_session(r, size):
    """An empty streaming session on the task's device and precision: no
    video yet (frames come with each forward), its size already known (the
    processor sets it from the first frame's original size)."""
    cls = session_class(r.model)
    kwargs = session_kwargs(cls, video=None, video_height=size, video_width=size, inference_device=r.device,
                            inference_state_device=r.device, video_storage_device=r.device, dtype=r.dtype,
                            max_vision_features_cache_size=1)
    session = cls(**kwargs)
    require(session, cls.__name__, ("add_new_frame", "obj_id_to_idx", "obj_ids", "cache"))
    # A streamed frame is stored at the index it is given; without the
    # parameter (transformers 4.57) each pass would append a frame.
    require_params(session.add_new_frame, f"{cls.__name__}.add_new_frame", ("frame_idx",))
    return session


def add_point_prompts(r, session, points):
    """One positive point per object on the prompt frame, object ids 1..n,
    stored as Sam2VideoProcessor.process_new_points_or_boxes_for_video_frame
    stores them: (image, object, point, xy) float32 coordinates and
    (image, object, point) labels per object."""
    require(session, type(session).__name__, ("add_point_inputs", "obj_with_new_inputs"))
    torch = r.torch
    obj_ids = list(range(1, len(points) + 1))
    for obj_id, (x, y) in zip(obj_ids, points):
        obj_idx = session.obj_id_to_idx(obj_id)
        session.add_point_inputs(obj_idx, PROMPT_FRAME, {
            "point_coords": torch.tensor([[[[x, y]]]], dtype=torch.float32),
            "point_labels": torch.tensor([[[1]]], dtype=torch.long),
        })
    session.obj_with_new_inputs = list(obj_ids)
    return obj_ids


def track(r, session, frames, upto):
    """forward() on frames 0 .. upto - 1, streamed one by one."""
    for k in range(upto):
        r.model(inference_session=session, frame_idx=k, frame=frames[k])


def encode_every_pass(model, session):
    """Empty the session's image-feature cache before each of the model's
    passes: the measured frame is tracked again and again, and a cached
    frame would skip the image encoder (see the module's docstring)."""
    cache = session.cache
    require(cache, type(cache).__name__, ("clear_all",))

    def clear(module, args):
        cache.clear_all()

    return model.register_forward_pre_hook(clear)


def set_up(r, build):
    """build() (the session and the frames before the measured one); at a
    half precision, a model that mixes float32 into its work is run under
    torch.autocast from then on and built again, as the runner does for
    its own forward (hfleet_build.run_under_autocast)."""
    try:
        return build()
    except RuntimeError as exc:
        torch = r.torch
        precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(r.dtype)
        if precision is None or not lib.half_precision_mix(str(exc), precision):
            raise
        import hfleet_build   # here: it imports the recipe table, which imports this module
        hfleet_build.run_under_autocast(torch, r.model, r.device, r.dtype)
        lib.log(f"video session: {lib.one_line(exc, 200)}; tracking under torch.autocast({precision})")
        return build()


def _point_tracker_inputs(r):
    """sam2_video, sam3_tracker_video, edgetam_video: a session with one
    point per object on frame 0, frames 0 .. num_maskmem - 1 tracked; the
    runner's passes track frame num_maskmem."""
    model, config = r.model, r.config
    require_params(model.forward, f"{type(model).__name__}.forward", SESSION_INPUTS)
    size = frame_size(config)
    n_objects = max(int(r.batch), 1)
    measured = measured_frame(memory_frames(model, config))
    frames = r.randn(measured + 1, FRAME_CHANNELS, size, size)
    points = point_prompts(n_objects, prompt_space(config))

    def build():
        session = new_session(r, size)
        add_point_prompts(r, session, points)
        track(r, session, frames, measured)
        return session

    session = set_up(r, build)
    encode_every_pass(model, session)
    r.inputs.update(inference_session=session, frame_idx=measured, frame=frames[measured])
    lib.log(f"video session: {n_objects} objects prompted by a point on frame {PROMPT_FRAME}, frames "
            f"0-{measured - 1} tracked, the passes track frame {measured} ({size} x {size})")


# --------------------------------------------------------------------------
# sam3_video: detection by a text prompt, then tracking

def prompt_tokens(r, config):
    """Random token ids of the text prompt (the detector's text vocabulary,
    at most its positions long) and an all-ones mask, (1, length) each."""
    tc = _sub(_sub(config, "detector_config"), "text_config")
    vocab = _get(tc, "vocab_size")
    if not isinstance(vocab, int) or vocab <= 0:
        raise SessionApiError(f"{type(config).__name__} has no detector_config.text_config.vocab_size")
    length = min(PROMPT_TOKENS, _get(tc, "max_position_embeddings", default=PROMPT_TOKENS))
    return r.randint(vocab, 1, length), r.ones(1, length)


def seeded_detections(r, found, n_objects):
    """run_detection's answer for one prompt, {prompt_id: {"bbox", "mask",
    "scores"}}, with its detections replaced by n_objects disjoint
    rectangles of score 1 (masks of the detector's mask size; boxes
    normalised x0, y0, x1, y1)."""
    torch = r.torch
    if not isinstance(found, dict) or len(found) != 1:
        raise SessionApiError(f"run_detection returned {type(found).__name__} "
                              f"{sorted(found) if isinstance(found, dict) else ''}: expected one prompt's detections")
    prompt_id, det = next(iter(found.items()))
    mask, boxes, scores = (det.get(k) if isinstance(det, dict) else None for k in ("mask", "bbox", "scores"))
    if not all(isinstance(t, torch.Tensor) for t in (mask, boxes, scores)) or mask.dim() != 3:
        raise SessionApiError("run_detection's detections are not {'bbox', 'mask' (n, h, w), 'scores'} tensors")
    h, w = int(mask.shape[-2]), int(mask.shape[-1])
    masks = torch.full((n_objects, h, w), -SEED_MASK_LOGIT, dtype=mask.dtype, device=mask.device)
    rects = seed_rectangles(n_objects, h, w)
    for i, (y0, y1, x0, x1) in enumerate(rects):
        masks[i, y0:y1, x0:x1] = SEED_MASK_LOGIT
    box_rows = [[x0 / w, y0 / h, x1 / w, y1 / h] for y0, y1, x0, x1 in rects]
    return {prompt_id: {"bbox": torch.tensor(box_rows, dtype=boxes.dtype, device=boxes.device),
                        "mask": masks,
                        "scores": torch.ones(n_objects, dtype=scores.dtype, device=scores.device)}}


def seed_objects(r, session, frame, n_objects):
    """forward() on the prompt frame with the detector's answer replaced by
    n_objects detections (the real detector runs first): the model itself
    starts a track for each, as for any new detection."""
    model = r.model
    real = model.run_detection

    def run_detection(*args, **kwargs):
        return seeded_detections(r, real(*args, **kwargs), n_objects)

    model.run_detection = run_detection
    try:
        model(inference_session=session, frame_idx=PROMPT_FRAME, frame=frame)
    finally:
        del model.run_detection
    tracked = len(session.obj_ids)
    if tracked != n_objects:
        raise SessionApiError(f"the prompt frame's {n_objects} seeded detections made {tracked} tracked objects")


def _detect_track_inputs(r):
    """sam3_video: a session with a random text prompt, n objects started
    from seeded detections on frame 0, frames 1 .. num_maskmem - 1
    detected and tracked; the runner's passes detect and track frame
    num_maskmem."""
    model, config = r.model, r.config
    require(model, type(model).__name__, ("run_detection", "new_det_thresh", "tracker_model"))
    require_params(model.forward, f"{type(model).__name__}.forward", SESSION_INPUTS)
    size = frame_size(config)
    n_objects = max(int(r.batch), 1)
    measured = measured_frame(memory_frames(model.tracker_model, _sub(config, "tracker_config")))
    frames = r.randn(measured + 1, FRAME_CHANNELS, size, size)
    ids, mask = prompt_tokens(r, config)
    births = model.new_det_thresh

    def build():
        model.new_det_thresh = births
        session = new_session(r, size)
        require(session, type(session).__name__, ("add_prompt", "prompt_input_ids", "prompt_attention_masks"))
        prompt_id = session.add_prompt(PROMPT_TEXT)
        session.prompt_input_ids[prompt_id] = ids
        session.prompt_attention_masks[prompt_id] = mask
        seed_objects(r, session, frames[PROMPT_FRAME], n_objects)
        model.new_det_thresh = NO_NEW_OBJECTS
        for k in range(PROMPT_FRAME + 1, measured):
            model(inference_session=session, frame_idx=k, frame=frames[k])
        return session

    session = set_up(r, build)
    r.inputs.update(inference_session=session, frame_idx=measured, frame=frames[measured])
    lib.log(f"video session: a random {ids.shape[-1]}-token text prompt, {n_objects} objects seeded on frame "
            f"{PROMPT_FRAME}, frames 1-{measured - 1} detected and tracked, the passes detect and track frame "
            f"{measured} ({size} x {size}); no new object is born from a detection after frame {PROMPT_FRAME}")


# --------------------------------------------------------------------------

NOTE = "the default config (the shrunk configs of SAM2-style trackers do not hold together)"
POINT_TRACKER = Recipe(provides=SESSION_INPUTS, inputs=_point_tracker_inputs, prefer_default=True,
                       name="video-tracker-session", note=NOTE)

# Named so that every result says its inputs were a recipe-built session
# (outputs.recipe).
RECIPES = {
    "sam2_video": POINT_TRACKER,
    "sam3_tracker_video": POINT_TRACKER,
    "edgetam_video": POINT_TRACKER,
    "sam3_video": Recipe(provides=SESSION_INPUTS, inputs=_detect_track_inputs, prefer_default=True,
                         name="video-detect-track-session", note=NOTE),
}
