"""Per-frame conditioning of a stock ``UNet3DConditionModel``: frame ``f`` attends to its own tokens.

diffusers' UNet3D folds the frames into the batch (``(B * F, h * w, C)`` rows, sample-major) and
repeats ``encoder_hidden_states`` ``(B, L, D)`` over them, so every frame sees the same text.  We
pass the per-frame sequences ``(B * F, L, D)`` (row ``b * F + f``) as
``cross_attention_kwargs={"frame_states": ...}``; :class:`FrameCrossAttnProcessor`, installed on
the spatial cross-attentions (``attn2`` of the ``attentions`` transformers, not the temporal ones),
uses row ``r``'s own sequence for row ``r``.  Conditioning memory is O(F): ``B * F * L * D``, not the
``B * F * F * L * D`` of packing every frame's tokens into one sequence that the UNet then repeats
per frame (24x the needed size at 24 frames, and a gradient that size per layer in training).

Every other attention gets :class:`IgnoreFrameStates`, which accepts and drops ``frame_states``, so
diffusers passes the argument on without a warning.  Both wrap whatever processor was there (another
attention backend keeps working); :func:`ensure_frame_attention` re-installs them after a
``set_attn_processor`` replaced them, so the conditioning can never silently vanish.

The packed layout ``(B, F * L, D)`` of earlier versions is still understood (:func:`pack_frames`);
it is kept for comparisons, e.g. the memory benchmark.
"""

from __future__ import annotations

import logging

import torch
from diffusers.models.attention_processor import AttnProcessor2_0

logger = logging.getLogger(__name__)

FRAME_STATES = "frame_states"


def _call(inner, attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs):
    if temb is not None:
        kwargs["temb"] = temb
    return inner(attn, hidden_states, encoder_hidden_states=encoder_hidden_states, attention_mask=attention_mask,
                 **kwargs)


class FrameCrossAttnProcessor:
    """Spatial cross-attention where row ``r`` (sample ``r // F``, frame ``r % F``) attends to
    ``frame_states[r]``.

    Without ``frame_states`` it is the wrapped processor; a packed ``(B * F, F * L, D)`` conditioning
    (every frame's sequence side by side, repeated per frame by the UNet) is unpacked the old way.
    """

    def __init__(self, seq_len: int, inner=None):
        self.seq_len = int(seq_len)
        self.inner = inner if inner is not None else AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 frame_states=None, **kwargs):
        if frame_states is not None:
            if frame_states.shape[0] != hidden_states.shape[0]:
                raise ValueError(f"frame_states has {frame_states.shape[0]} rows for {hidden_states.shape[0]} "
                                 "frames (batch x frames, sample-major)")
            encoder_hidden_states = frame_states
        elif encoder_hidden_states is not None and encoder_hidden_states.shape[1] > self.seq_len:
            rows, packed, dim = encoder_hidden_states.shape
            frames = packed // self.seq_len
            if frames * self.seq_len != packed:
                raise ValueError(f"packed conditioning of {packed} tokens is not a multiple of {self.seq_len}")
            index = torch.arange(rows, device=encoder_hidden_states.device)
            encoder_hidden_states = encoder_hidden_states.view(rows, frames, self.seq_len, dim)[index, index % frames]
        return _call(self.inner, attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)


class IgnoreFrameStates:
    """Any other attention: the wrapped processor, taking and dropping ``frame_states``."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 frame_states=None, **kwargs):
        return _call(self.inner, attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)


def _unwrap(unet):
    """The UNet itself when it is wrapped (DistributedDataParallel, accelerate)."""
    return getattr(unet, "module", unet)


def spatial_cross_attention_keys(unet) -> list[str]:
    """Processor names of the UNet's spatial cross-attentions (not the temporal transformers)."""
    return [k for k in unet.attn_processors if ".attentions." in k and k.endswith("attn2.processor")]


def frame_attention_installed(unet) -> bool:
    """True when every spatial cross-attention has :class:`FrameCrossAttnProcessor` and every other
    attention :class:`IgnoreFrameStates`."""
    unet = _unwrap(unet)
    spatial = set(spatial_cross_attention_keys(unet))
    return bool(spatial) and all(
        isinstance(p, FrameCrossAttnProcessor if k in spatial else IgnoreFrameStates)
        for k, p in unet.attn_processors.items())


def enable_frame_attention(unet, seq_len: int) -> None:
    """Install the processors (idempotent), each wrapping the processor found there."""
    unet = _unwrap(unet)
    spatial = set(spatial_cross_attention_keys(unet))
    if not spatial:
        raise ValueError(f"{type(unet).__name__} has no spatial cross-attention to condition per frame")

    def inner(p):
        return p.inner if isinstance(p, (FrameCrossAttnProcessor, IgnoreFrameStates)) else p

    unet.set_attn_processor({k: FrameCrossAttnProcessor(seq_len, inner(p)) if k in spatial else
                             IgnoreFrameStates(inner(p)) for k, p in unet.attn_processors.items()})


def ensure_frame_attention(unet, seq_len: int) -> None:
    """Re-install the processors if something replaced them since (``set_attn_processor``, another
    attention backend): per-frame conditioning never silently turns into every frame seeing one text."""
    if not frame_attention_installed(unet):
        ours = any(isinstance(p, (FrameCrossAttnProcessor, IgnoreFrameStates))
                   for p in _unwrap(unet).attn_processors.values())
        if ours:  # some were ours: something replaced the others since
            logger.warning("attention processors were replaced; re-installing per-frame conditioning around them")
        enable_frame_attention(unet, seq_len)


def pack_frames(states: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``(B * F, L, D)`` per-frame states → ``(B, F * L, D)``: the earlier packed layout."""
    BF, L, D = states.shape
    return states.reshape(BF // num_frames, num_frames * L, D)
