"""Audio tokens into a stock CLIP text encoder, and per-frame conditioning of a stock UNet3D.

**Token injection.** Six placeholder tokens are added to the tokenizer.  While the text encoder
runs, a forward hook on its input-embedding table overwrites every placeholder position with the
adaptor's token for that row's frame (before CLIP adds its position embeddings, as in the
reference).  Rows are laid out sample-major, frame-minor: row ``b * F + f`` is sample ``b``,
frame ``f``.

**Per-frame conditioning.** diffusers' ``UNet3DConditionModel`` repeats ``encoder_hidden_states``
``(B, L, D)`` over the F frames.  We pass the F per-frame sequences packed along the sequence axis,
``(B, F * L, D)``; after the UNet's repeat, an attention processor installed on the spatial
cross-attentions (``attn2`` of the ``attentions`` transformers; not the temporal ones) hands frame
``f`` its own slice ``[f * L, (f + 1) * L)``.  With ordinary ``(B, L, D)`` conditioning it does
nothing, so one UNet serves text-only and audio conditioning.  No diffusers file is copied.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from .adaptor import AdaptorOutput

#: Placeholders in the reference's order: the frame's temporal token, four local windows, the class token.
PLACEHOLDERS = ("<temp>", "<local1>", "<local2>", "<local3>", "<local4>", "<class>")
#: The reference's default prompt (training fallback and inference default).
DEFAULT_AUDIO_PROMPT = " ".join(PLACEHOLDERS)


def add_placeholder_tokens(tokenizer, text_encoder) -> list[int]:
    """Add the placeholders to the tokenizer (if missing) and grow the embedding table to match.

    Returns the placeholder ids in :data:`PLACEHOLDERS` order.  The new embedding rows are never
    used: injection overwrites them.
    """
    missing = [t for t in PLACEHOLDERS if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(missing)
    if text_encoder.get_input_embeddings().num_embeddings < len(tokenizer):
        text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return tokenizer.convert_tokens_to_ids(list(PLACEHOLDERS))


def has_placeholders(prompt: str) -> bool:
    return any(t in prompt for t in PLACEHOLDERS)


def with_placeholders(prompt: str | None) -> str:
    """An audio prompt: the placeholders alone (no prompt), the prompt as is (it has some), or the
    prompt followed by all six."""
    if prompt is None:
        return DEFAULT_AUDIO_PROMPT
    return prompt if has_placeholders(prompt) else f"{prompt} {DEFAULT_AUDIO_PROMPT}"


def tokenize(tokenizer, prompts: list[str]) -> torch.Tensor:
    """``(N, L)`` ids, padded and truncated to the tokenizer's maximum length (77 for CLIP)."""
    return tokenizer(
        prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


def audio_token_rows(tokens: AdaptorOutput) -> list[torch.Tensor]:
    """The six per-row replacement tensors ``(B * F, D)`` in :data:`PLACEHOLDERS` order."""
    B, F, D = tokens.temporal.shape
    per_frame = [tokens.temporal, *tokens.local, tokens.class_token[:, None].expand(B, F, D)]
    return [t.reshape(B * F, D) for t in per_frame]


@contextmanager
def inject_tokens(text_encoder, input_ids: torch.Tensor, placeholder_ids: list[int],
                  values: list[torch.Tensor]) -> Iterator[None]:
    """While active, the embedding lookup of ``input_ids`` returns ``values[k][row]`` at every
    position of ``placeholder_ids[k]`` in that row."""
    masks = [(input_ids == pid) for pid in placeholder_ids]

    def hook(module, inputs, output):
        output = output.clone()
        for mask, value in zip(masks, values):
            if mask.any():
                rows = mask.nonzero()[:, 0]
                output[mask.to(output.device)] = value.to(output.device, output.dtype)[rows.to(value.device)]
        return output

    handle = text_encoder.get_input_embeddings().register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def encode_text(text_encoder, input_ids: torch.Tensor) -> torch.Tensor:
    """``last_hidden_state`` ``(N, L, D)`` of the text encoder."""
    return text_encoder(input_ids.to(text_encoder.device))[0]


def encode_with_audio(
    tokenizer, text_encoder, prompts: list[str], tokens: AdaptorOutput, placeholder_ids: list[int]
) -> torch.Tensor:
    """Per-frame text-encoder states ``(B * F, L, D)`` for B prompts with their audio tokens.

    Row ``b * F + f`` is prompt ``b`` with the placeholders replaced by sample ``b``'s frame-``f``
    tokens.  A placeholder absent from a prompt is simply not injected.
    """
    B, F, _ = tokens.temporal.shape
    if len(prompts) != B:
        raise ValueError(f"{len(prompts)} prompts for {B} audio clips")
    ids = tokenize(tokenizer, prompts).repeat_interleave(F, dim=0)  # (B * F, L), sample-major
    with inject_tokens(text_encoder, ids, placeholder_ids, audio_token_rows(tokens)):
        return encode_text(text_encoder, ids)


def pack_frames(states: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``(B * F, L, D)`` per-frame states → ``(B, F * L, D)``, the UNet's packed conditioning."""
    BF, L, D = states.shape
    return states.reshape(BF // num_frames, num_frames * L, D)


class PerFrameCrossAttnProcessor:
    """Spatial cross-attention where frame ``f`` attends to its own ``seq_len``-token sequence.

    Hidden states arrive as ``(B * F, h * w, C)``; conditioning as ``(B * F, F * L, D)`` (packed,
    then repeated by the UNet) or ``(B * F, L, D)`` (ordinary, passed through unchanged).
    """

    def __init__(self, seq_len: int):
        self.seq_len = int(seq_len)
        self.inner = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        if encoder_hidden_states is not None and encoder_hidden_states.shape[1] > self.seq_len:
            rows, packed, dim = encoder_hidden_states.shape
            frames = packed // self.seq_len
            if frames * self.seq_len != packed:
                raise ValueError(f"packed conditioning of {packed} tokens is not a multiple of {self.seq_len}")
            index = torch.arange(rows, device=encoder_hidden_states.device) % frames
            encoder_hidden_states = encoder_hidden_states.view(rows, frames, self.seq_len, dim)[
                torch.arange(rows, device=encoder_hidden_states.device), index
            ]
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)


def spatial_cross_attention_keys(unet) -> list[str]:
    """Processor names of the UNet's spatial cross-attentions (not the temporal transformers)."""
    return [k for k in unet.attn_processors if ".attentions." in k and k.endswith("attn2.processor")]


def enable_per_frame_conditioning(unet, seq_len: int) -> None:
    """Install :class:`PerFrameCrossAttnProcessor` on every spatial cross-attention (idempotent)."""
    spatial = set(spatial_cross_attention_keys(unet))
    processors = {
        k: PerFrameCrossAttnProcessor(seq_len) if k in spatial else p for k, p in unet.attn_processors.items()
    }
    unet.set_attn_processor(processors)
