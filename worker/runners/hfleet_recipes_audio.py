# SPDX-License-Identifier: MIT
"""Recipes for audio, speech, codec, time-series and other non-text,
non-vision models: the inputs and configs they need.

Part of the recipe table (hfleet_recipes.py joins RECIPES into its own);
built on hfleet_recipe_base.  Torch only through Ctx.torch.

What the generic planner gets wrong for these models, by cause:
  - waveform codecs and audio towers built on a DAC-style encoder take
    input_values as (batch, channels, samples); the planner makes
    (batch, samples) unless the config names a codebook (_waveform);
  - conformer / SAN-M encoders take time-major features whose width is not
    num_mel_bins but a stacked or delta-expanded multiple of it;
  - speech-language models whose audio placeholder count must equal what
    the audio tower yields (a fixed number per window or per hop);
  - tokenizer parts (encoder or decoder alone) that take hidden_states;
  - time series whose length must be a whole number of patches;
  - forecasters whose default config leaves the horizon unset, and
    autoformer, whose FFTs over time must be of powers of two at half
    precision on CUDA (cuFFT).
"""

from __future__ import annotations

import math

from hfleet_recipe_base import Recipe, _get, _sub, _text_vocab, _token, is_power_of_two


# --------------------------------------------------------------------------
# shared helpers

def _prod(values, default=1):
    try:
        return int(math.prod(int(v) for v in values))
    except (TypeError, ValueError):
        return default


def _hop(config, default=320):
    """Samples per frame of a waveform encoder: its hop_length, else the
    product of its downsampling ratios."""
    h = _get(config, "hop_length")
    if isinstance(h, int) and h > 0:
        return h
    ratios = _get(config, "downsampling_ratios", "strides")
    return _prod(ratios, default) if ratios else default


def _ensure_text(r, avoid=None, length=None):
    """Random text ids (and an all-ones attention_mask when forward() takes
    one) when the planner built none: speech-language models registered
    under an audio task get no text from it.  Ids are drawn below the
    placeholder id so none is taken for audio."""
    if "input_ids" in r.inputs:
        return
    vocab = _text_vocab(r.config) or 1000
    high = min(int(vocab), 32000)
    if isinstance(avoid, int) and avoid > 1:
        high = min(high, avoid)
    L = length or r.seq
    r.inputs["input_ids"] = r.randint(high, r.batch, L, low=1)
    if "attention_mask" in r.params:
        r.inputs["attention_mask"] = r.ones(r.batch, L)


def _waveform(r, channels=1, samples=None):
    """input_values as (batch, channels, samples), keeping the planner's
    sample count when it built a 2-D waveform."""
    t = r.inputs.get("input_values")
    if samples is None:
        samples = int(t.shape[-1]) if t is not None and t.dim() >= 2 else 16000
    r.inputs["input_values"] = r.randn(r.batch, channels, samples)
    return samples


# --------------------------------------------------------------------------
# waveform models whose forward() takes input_values with a padding_mask
# (pe_audio and the like): a DAC-style encoder whose first Conv1d wants
# (batch, 1, samples).  Chosen by signature (for_signature below).

def _waveform_inputs(r):
    t = r.inputs.get("input_values")
    if t is not None and t.dim() == 3:
        return
    ch = _get(r.config, "audio_channels", "channels")
    _waveform(r, ch if isinstance(ch, int) and 0 < ch <= 8 else 1)


WAVEFORM = Recipe(inputs=_waveform_inputs, name="waveform-codec",
                  note="input_values as (batch, 1, samples): the encoder's first Conv1d has one input channel")


# --------------------------------------------------------------------------
# pe_audio_video: the waveform above plus video frames for the timm PE tower

def _timm_image_size(vc, default=224):
    for key in ("image_size", "img_size"):
        v = _get(vc, key)
        if isinstance(v, int) and v > 0:
            return v
    for key in ("pretrained_cfg", "model_args"):
        d = _get(vc, key)
        if isinstance(d, dict):
            v = d.get("input_size") or d.get("img_size")
            if isinstance(v, (list, tuple)) and v:
                return int(v[-1])
            if isinstance(v, int) and v > 0:
                return v
    arch = _get(vc, "architecture", default="") or ""
    tail = str(arch).rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() and 32 <= int(tail) <= 1024 else default


def _pe_audio_video_inputs(r):
    c = r.config
    avc = _sub(c, "audio_video_config") or c
    _waveform(r, 1)
    r.inputs.pop("padding_mask", None)
    vid = _sub(avc, "video_config")
    vc = _sub(vid, "vision_config") if vid is not None else None
    s = _timm_image_size(vc, default=336)
    r.inputs["pixel_values_videos"] = r.randn(r.batch, 4, 3, s, s)
    r.inputs.pop("padding_mask_videos", None)


PE_AUDIO_VIDEO = Recipe(provides=("input_values", "padding_mask", "pixel_values_videos", "padding_mask_videos"),
                        inputs=_pe_audio_video_inputs,
                        note="input_values (batch, 1, 16000) and 4 video frames at the timm tower's image size")


# --------------------------------------------------------------------------
# neural codecs with a semantic (wav2vec2-bert) branch: xcodec2, neucodec.
# input_values (batch, 1, samples) for the acoustic encoder and time-major
# w2v-bert features (batch, samples / hop, 160) for the semantic one; both
# branches must yield the same frame count (xcodec2 concatenates them).

def _semantic_codec_inputs(r):
    c = r.config
    hop = _get(c, "encoder_hop_length") or _hop(c)
    frames = 50
    samples = frames * int(hop)
    _waveform(r, 1, samples)
    sc = _sub(c, "semantic_model_config")
    dim = _get(sc, "feature_projection_input_dim", default=160)
    r.inputs["input_features"] = r.randn(r.batch, frames, int(dim))
    for name in ("padding_mask", "input_features_mask"):
        r.inputs.pop(name, None)


SEMANTIC_CODEC = Recipe(provides=("input_values", "input_features", "padding_mask", "input_features_mask"),
                        inputs=_semantic_codec_inputs,
                        note="50 frames: input_values (batch, 1, 50 * hop) and w2v-bert features (batch, 50, 160)")


# --------------------------------------------------------------------------
# higgs_audio_v2_tokenizer

def _higgs_config(config, shrunk):
    """The default config pairs a 320-sample acoustic hop at 24 kHz (75 Hz)
    with HuBERT's 50 Hz at 16 kHz: the two branches never line up.  The
    released tokenizer runs at 25 fps (hop 960 at 24 kHz, HuBERT frames
    taken every second one); give the DAC encoder and decoder that fifth
    stride of 3."""
    ac = _sub(config, "acoustic_model_config")
    ratios = list(_get(ac, "downsampling_ratios", default=[]) or [])
    sr = _get(config, "sample_rate", default=24000)
    ssr = _get(config, "semantic_sample_rate", default=16000)
    df = _get(config, "downsample_factor", default=320)
    if ac is None or not ratios:
        return []
    hop = _prod(ratios)
    sem_factor = int(hop / (sr / ssr) / df)
    if sem_factor >= 1 and abs(sr / hop - ssr / df / sem_factor) < 1e-6:
        return []   # already consistent
    if ratios == [8, 5, 4, 2]:
        ac.downsampling_ratios = [8, 5, 4, 2, 3]
        ups = list(_get(ac, "upsampling_ratios", default=[]) or [])
        if ups == [8, 5, 4, 2]:
            ac.upsampling_ratios = [8, 5, 4, 2, 3]
        return ["acoustic downsampling/upsampling_ratios=[8, 5, 4, 2, 3] (hop 960: 25 fps at 24 kHz, "
                "as the semantic branch; the default's hop 320 gives 75 fps against 50)"]
    return []


def _higgs_inputs(r):
    sr = _get(r.config, "sample_rate", default=24000)
    _waveform(r, 1, int(sr))   # one second: 25 frames on both branches


# --------------------------------------------------------------------------
# fun_asr_nano_encoder: low-frame-rate features, num_stacked_frames mel
# frames stacked into one row (input_size = 80 * 7 = 560), time-major.

def _fun_asr_encoder_inputs(r):
    c = r.config
    width = _get(c, "input_size")
    if not isinstance(width, int):
        width = _get(c, "num_mel_bins", default=80) * _get(c, "num_stacked_frames", default=7)
    frames = 200
    r.inputs["input_features"] = r.randn(r.batch, frames, int(width))
    r.inputs["input_features_mask"] = r.ones(r.batch, frames)


# --------------------------------------------------------------------------
# gemma3n_audio / gemma4_audio: USM conformers over time-major mel frames

def _gemma3n_audio_inputs(r):
    mel = _get(r.config, "input_feat_size", default=128)
    frames = 256
    r.inputs["audio_mel"] = r.randn(r.batch, frames, int(mel))
    # True marks padding (the encoder keeps ~mask as the valid frames)
    r.inputs["audio_mel_mask"] = r.zeros(r.batch, frames, dtype=r.torch.bool)


def _gemma4_audio_inputs(r):
    # The subsampler flattens (channels[1], mel / 4) into a Linear sized
    # (channels[0] // 4) * channels[1]: the mel count is channels[0] (128).
    ch = _get(r.config, "subsampling_conv_channels", default=(128, 32))
    mel = 4 * (int(ch[0]) // 4)
    frames = 200   # two stride-2 convs: 50 frames
    r.inputs["input_features"] = r.randn(r.batch, frames, mel)
    r.inputs["attention_mask"] = r.ones(r.batch, frames, dtype=r.torch.bool)


# --------------------------------------------------------------------------
# granite_speech5 (encoder, CTC): mel frames delta-expanded (x2) and stacked
# in pairs (x2): input_linear takes num_mel_bins * 4, time-major.

def _granite_speech5_inputs(r):
    ec = _sub(r.config, "encoder_config") or r.config
    mel = _get(ec, "num_mel_bins", default=80)
    frames = 512
    r.inputs["input_features"] = r.randn(r.batch, frames, int(mel) * 4)
    r.inputs.pop("attention_mask", None)


# --------------------------------------------------------------------------
# granite_speech_plus: a Q-Former projector over windows of encoder frames

def _granite_plus_config(config, shrunk):
    pc, ec = _sub(config, "projector_config"), _sub(config, "encoder_config")
    width = _get(ec, "hidden_dim", "hidden_size")
    if pc is None or not isinstance(width, int) or not hasattr(pc, "encoder_hidden_size"):
        return []
    want = width * (len(_get(ec, "cat_hidden_layers", default=None) or []) + 1)
    if pc.encoder_hidden_size == want:
        return []
    pc.encoder_hidden_size = want
    return [f"projector encoder_hidden_size={want} (= the encoder's output width)"]


def _granite_plus_inputs(r):
    c = r.config
    ec = _sub(c, "encoder_config")
    dim = _get(ec, "input_dim", default=160)
    window = _get(c, "window_size", default=15)
    rate = _get(c, "downsample_rate", default=5)
    frames = 10 * window
    tok = _token(c, "audio_token_id", "audio_token_index")
    _ensure_text(r, avoid=tok)
    r.inputs["input_features"] = r.randn(r.batch, frames, int(dim))
    # input_features_mask indexes the projected features (boolean, optional)
    r.inputs.pop("input_features_mask", None)
    if tok is not None:
        r.prepend_tokens([tok], math.ceil(frames / window) * window // rate)


# --------------------------------------------------------------------------
# musicflamingo

def _musicflamingo_config(config, shrunk):
    """The rotary time embedding sizes itself from config.head_dim, which
    __post_init__ copies from audio_config.hidden_size: a narrowed audio
    tower leaves it at the default width."""
    ac = _sub(config, "audio_config")
    width = _get(ac, "hidden_size")
    if isinstance(width, int) and getattr(config, "head_dim", None) != width:
        config.head_dim = width
        return [f"head_dim={width} (= audio_config.hidden_size, which the rotary time embedding spans)"]
    return []


def _musicflamingo_inputs(r):
    feats = r.inputs.get("input_features")
    if feats is None or "input_ids" not in r.inputs:
        return
    frames = int(feats.shape[-1])
    if "input_features_mask" in r.params:
        r.inputs["input_features_mask"] = r.ones(r.batch, frames)
    after_conv = (frames - 1) // 2 + 1        # conv stride 2, then an average pool of 2
    tok = _token(r.config, "audio_token_id", "audio_token_index")
    if tok is not None:
        r.prepend_tokens([tok], (after_conv - 2) // 2 + 1)


# --------------------------------------------------------------------------
# voxtral_realtime: audio embeddings are added to the text embeddings
# position by position: mel frames = tokens * 2 (conv stride) * downsample_factor

def _voxtral_realtime_inputs(r):
    c = r.config
    ac = _sub(c, "audio_config") or c
    mel = _get(ac, "num_mel_bins", default=128)
    ds = _get(c, "downsample_factor", default=4)
    tok = _token(c, "audio_token_id", "audio_token_index")
    _ensure_text(r, avoid=tok)
    L = int(r.inputs["input_ids"].shape[1])
    r.inputs["input_features"] = r.randn(r.batch, int(mel), L * 2 * int(ds))


# --------------------------------------------------------------------------
# vibevoice family: causal conv tokenizers over (batch, channels, samples)

def _vv_tokenizer_inputs(r):
    c = r.config
    _waveform(r, int(_get(c, "channels", default=1)), 4 * _hop(c, 3200))


def _vv_encoder_inputs(r):
    c = r.config
    r.inputs["hidden_states"] = r.randn(r.batch, int(_get(c, "channels", default=1)), 4 * _hop(c, 3200))


def _vv_decoder_inputs(r):
    r.inputs["hidden_states"] = r.randn(r.batch, int(_get(r.config, "hidden_size", default=64)), 8)


def _vv_speech_lm_inputs(tower_names):
    """input_values (batch, 1, 4 hops), an all-valid padding_mask and one
    audio placeholder per hop (the tokenizer's causal convs give exactly
    samples / hop latents)."""
    def f(r):
        c = r.config
        tower = None
        for name in tower_names:
            tower = _sub(c, name)
            if tower is not None:
                break
        hop = _hop(tower, 3200)
        n = 4
        tok = _token(c, "audio_token_id", "audio_token_index")
        _ensure_text(r, avoid=tok)
        _waveform(r, 1, n * hop)
        r.inputs["padding_mask"] = r.ones(r.batch, n * hop, dtype=r.torch.bool)
        if tok is not None:
            r.prepend_tokens([tok], n)
    return f


# --------------------------------------------------------------------------
# timesfm2_5: (batch, length) with the length a whole number of patches

def _timesfm2_5_inputs(r):
    c = r.config
    patch = int(_get(c, "patch_length", default=32))
    ctx = int(_get(c, "context_length", default=512))
    n = max(1, min(ctx, 512) // patch) * patch
    r.inputs["past_values"] = r.randn(r.batch, n)
    r.inputs["past_values_padding"] = r.zeros(r.batch, n)   # 1 marks padding


# --------------------------------------------------------------------------
# muse_glimmer_assistant (a DFlash drafter): the config gives both sizes,
# noise_embeds (batch, block_size, hidden) and context_hidden_states
# (batch, context, hidden * len(target_layer_ids)).

def _muse_assistant_inputs(r):
    c = r.config
    h = int(_get(c, "hidden_size", default=64))
    block = int(_get(c, "block_size", default=16))
    layers = len(_get(c, "target_layer_ids", default=[0]) or [0])
    r.inputs["noise_embeds"] = r.randn(r.batch, block, h)
    r.inputs["context_hidden_states"] = r.randn(r.batch, 32, h * layers)
    r.inputs.pop("attention_mask", None)
    r.inputs.pop("position_ids", None)


# --------------------------------------------------------------------------

def fill_prediction_length(config, shrunk):
    """Time-series forecasters (autoformer, informer, time_series_transformer)
    ship prediction_length=None and refuse to build without one.  The shrunk
    config has the shrinker's 8; a default config gets 32, context_length
    following it: a power of two, because autoformer's auto-correlation runs
    cuFFT, which at half precision takes only powers of two (24, the horizon
    of transformers' forecasting examples, failed its fp16 benchmark; its
    decoder's length is fitted by autoformer_fft_lengths)."""
    if getattr(config, "prediction_length", 0) is not None:
        return []
    config.prediction_length = 32
    notes = ["prediction_length=32 (None in the default config)"]
    if hasattr(config, "context_length") and config.context_length is None:
        config.context_length = 32
        notes.append("context_length=32")
    return notes


GENERIC_CONFIG_FIXES = (fill_prediction_length,)


def power_of_two_label_length(context, prediction, label):
    """The label_length nearest to label (the smaller of two as near) that
    makes label + prediction a power of two while the label still fits in
    the context (1 <= label <= context: the decoder starts from the last
    label_length steps of the context); None when no length does."""
    best, total = None, 1
    while total <= prediction:
        total *= 2
    while total - prediction <= context:
        cand = total - prediction
        if best is None or abs(cand - label) < abs(best - label):
            best = cand
        total *= 2
    return best


def autoformer_fft_lengths(config, shrunk):
    """Autoformer's auto-correlation (AutoformerAttention) takes
    torch.fft.rfft / irfft over time with n = the query's length: the
    encoder's series is context_length steps, the decoder's (self- and
    cross-attention alike, the encoder's keys cut or zero-filled to it)
    label_length + prediction_length.  cuFFT computes half-precision FFTs
    only of powers of two, and the default config's label_length 10 with
    the horizon of 32 (fill_prediction_length, run first here) makes the
    decoder 42 steps: its fp16 benchmark failed "over 42 steps".  A default
    config gets the label_length that makes the decoder a power of two (32:
    64 steps) and still fits in the 32-step context; the horizon, the
    context and every width stay.  The shrunk config (tests, at fp32) is
    left as it is."""
    notes = fill_prediction_length(config, shrunk)
    if shrunk:
        return notes
    context, prediction = getattr(config, "context_length", None), getattr(config, "prediction_length", None)
    label = getattr(config, "label_length", None)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (context, prediction, label)):
        return notes
    if is_power_of_two(label + prediction):
        return notes
    want = power_of_two_label_length(context, prediction, label)
    if want is None:
        return notes + [f"label_length={label} kept: no label_length up to context_length {context} makes the "
                        f"decoder's {label} + {prediction} steps a power of two (cuFFT's half-precision FFTs)"]
    config.label_length = want
    notes.append(f"label_length={want} (was {label}): the decoder's auto-correlation FFTs run over label_length + "
                 f"prediction_length = {want + prediction} steps, a power of two as cuFFT needs at half "
                 f"precision ({label + prediction} is not); the encoder's run over context_length {context}")
    return notes


def for_signature(params):
    """A waveform model whose forward() takes input_values with a
    padding_mask (a codec or a DAC-fronted audio encoder) gets
    (batch, 1, samples) when the planner made a 2-D waveform."""
    if "input_values" in params and "padding_mask" in params:
        return WAVEFORM
    return None


RECIPES = {
    "autoformer": Recipe(fix_config=autoformer_fft_lengths,
                         note="label_length + prediction_length a power of two (the decoder's FFTs at fp16)"),
    "fun_asr_nano_encoder": Recipe(provides=("input_features", "input_features_mask"),
                                   inputs=_fun_asr_encoder_inputs,
                                   note="time-major features of num_stacked_frames stacked mel frames (80 * 7)"),
    "gemma3n_audio": Recipe(provides=("audio_mel", "audio_mel_mask"), inputs=_gemma3n_audio_inputs,
                            note="audio_mel (batch, frames, input_feat_size), audio_mel_mask True for padding"),
    "gemma4_audio": Recipe(provides=("input_features", "attention_mask"), inputs=_gemma4_audio_inputs,
                           note="time-major mel frames, mel = subsampling_conv_channels[0]"),
    "granite_speech5_ctc": Recipe(provides=("input_features",), inputs=_granite_speech5_inputs,
                                  note="time-major features of width num_mel_bins * 4 (deltas, frame pairs)"),
    "granite_speech5_encoder": Recipe(provides=("input_features",), inputs=_granite_speech5_inputs,
                                      note="time-major features of width num_mel_bins * 4 (deltas, frame pairs)"),
    "granite_speech_plus": Recipe(fix_config=_granite_plus_config,
                                  provides=("input_ids", "attention_mask", "input_features", "input_features_mask"),
                                  inputs=_granite_plus_inputs, own_tokens=True,
                                  note="text with one placeholder per Q-Former query of each window"),
    "higgs_audio_v2_tokenizer": Recipe(fix_config=_higgs_config, provides=("input_values",), inputs=_higgs_inputs,
                                       note="one second of 24 kHz audio as (batch, 1, samples)"),
    "musicflamingo": Recipe(fix_config=_musicflamingo_config, inputs=_musicflamingo_inputs, own_tokens=True),
    "neucodec": SEMANTIC_CODEC,
    "xcodec2": SEMANTIC_CODEC,
    "pe_audio_video": PE_AUDIO_VIDEO,
    "pe_audio_video_encoder": PE_AUDIO_VIDEO,
    "timesfm2_5": Recipe(provides=("past_values", "past_values_padding"), inputs=_timesfm2_5_inputs,
                         note="past_values (batch, 512): a whole number of patches"),
    "vibevoice": Recipe(provides=("input_ids", "attention_mask", "input_values", "padding_mask"),
                        inputs=_vv_speech_lm_inputs(("audio_config",)), own_tokens=True,
                        note="4 hops of (batch, 1, samples) audio, one placeholder per hop"),
    "vibevoice_asr": Recipe(provides=("input_ids", "attention_mask", "input_values", "padding_mask"),
                            inputs=_vv_speech_lm_inputs(("acoustic_tokenizer_encoder_config",)), own_tokens=True,
                            note="4 hops of (batch, 1, samples) audio, one placeholder per hop"),
    "vibevoice_acoustic_tokenizer": Recipe(provides=("input_values",), inputs=_vv_tokenizer_inputs,
                                           note="(batch, channels, 4 hops) waveform"),
    "vibevoice_acoustic_tokenizer_encoder": Recipe(provides=("hidden_states",), inputs=_vv_encoder_inputs,
                                                   note="hidden_states: the (batch, channels, 4 hops) waveform"),
    "vibevoice_acoustic_tokenizer_decoder": Recipe(provides=("hidden_states",), inputs=_vv_decoder_inputs,
                                                   note="hidden_states: 8 latents (batch, hidden_size, 8)"),
    "voxtral_realtime": Recipe(provides=("input_features",), inputs=_voxtral_realtime_inputs, own_tokens=True,
                               note="mel frames = text tokens * 2 * downsample_factor (embeddings are added)"),
    "muse_glimmer_assistant": Recipe(provides=("noise_embeds", "context_hidden_states"),
                                     inputs=_muse_assistant_inputs,
                                     note="noise_embeds (batch, block_size, hidden), context_hidden_states "
                                          "(batch, 32, hidden * len(target_layer_ids)), sizes from the config"),
}
