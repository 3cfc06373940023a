"""Audio tokens into a stock CLIP text encoder: placeholder tokens and their injection.

Six placeholder tokens are added to the tokenizer.  While the text encoder runs, a forward hook on
its input-embedding table overwrites every placeholder position with the adaptor's token for that
row's frame (before CLIP adds its position embeddings, as in the reference).  Rows are laid out
sample-major, frame-minor: row ``b * F + f`` is sample ``b``, frame ``f``.  A prompt too long for
the tokenizer loses words from the end of its text, never a placeholder.

How the per-frame rows reach the UNet is :mod:`tempotokens.frame_attention`.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch

from .adaptor import AdaptorOutput

logger = logging.getLogger(__name__)

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


def tokenize(tokenizer, prompts: list[str], keep_ids: Sequence[int] = ()) -> torch.Tensor:
    """``(N, L)`` ids, padded to the tokenizer's maximum length (77 for CLIP).

    A longer prompt is cut: by default at the end (the tokenizer's truncation); with ``keep_ids``
    (the placeholders), text tokens are dropped from the end instead, so no id in ``keep_ids`` is
    ever lost, and a warning says so.
    """
    max_len = tokenizer.model_max_length
    plain = tokenizer(prompts, padding="max_length", max_length=max_len, truncation=True, return_tensors="pt").input_ids
    if not keep_ids:
        return plain
    keep = set(keep_ids)
    for row, prompt in enumerate(prompts):
        ids = tokenizer(prompt, truncation=False).input_ids
        if len(ids) <= max_len:
            continue
        body, excess = list(ids[1:-1]), len(ids) - max_len
        text_positions = [i for i, t in enumerate(body) if t not in keep]
        if len(text_positions) < excess:
            raise ValueError(f"a prompt has more placeholder tokens than fit in {max_len} tokens: {prompt!r}")
        drop = set(text_positions[-excess:])
        kept = [ids[0], *(t for i, t in enumerate(body) if i not in drop), ids[-1]]
        logger.warning("prompt longer than %d tokens: %d words' tokens cut from the end of its text, the audio "
                       "placeholders kept: %r", max_len, excess, prompt[:80])
        plain[row] = torch.tensor(kept, dtype=plain.dtype)
    return plain


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
    ids = tokenize(tokenizer, prompts, placeholder_ids).repeat_interleave(F, dim=0)  # (B * F, L), sample-major
    with inject_tokens(text_encoder, ids, placeholder_ids, audio_token_rows(tokens)):
        return encode_text(text_encoder, ids)
