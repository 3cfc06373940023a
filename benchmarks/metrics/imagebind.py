"""ImageBind's vision and audio branches (Girdhar et al., 2023) with the parameter names of the
published ``imagebind_huge.pth``; the other modalities are not built (their keys are ignored).

Written from the published architecture (facts: ``shared/reference/SYNC_METRICS.md``):

* vision: a bias-free Conv3d stem (2x14x14, stride = kernel) on a 2-frame clip -> 256 patches, a
  CLS, a position table (257), a LayerNorm before the trunk (eps 1e-6), pre-LN blocks with
  ``nn.MultiheadAttention``, a head (LayerNorm, token 0, bias-free Linear), L2 normalisation:
  ``(N, 3, 2, 224, 224)`` -> ``(N, out)`` unit vectors.
* audio: a bias-free Conv2d stem (16x16, stride 10) on a 128 x 204 fbank -> 12 x 19 patches and a
  LayerNorm (eps 1e-5), CLS and position (229), no LayerNorm before the trunk, blocks whose
  attention adds learned key/value biases, the head, L2 normalisation times
  ``min(exp(log_logit_scale), 100)`` (= 20): ``(N, 1, 128, 204)`` -> ``(N, out)``.

Sizes are constructor arguments; the defaults are ImageBind-huge's.  Inference only (drop-path
is an identity in eval mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Mlp, Named


class Block(nn.Module):
    """``x += attn(norm_1(x))``; ``x += mlp(norm_2(x))``; sequence-first ``(L, N, D)``."""

    def __init__(self, dim: int, heads: int, bias_kv: bool, mlp_ratio: int = 4):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, bias=True, add_bias_kv=bias_kv)
        self.norm_1, self.norm_2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_ratio * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm_2(x))


class Trunk(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, bias_kv: bool, pre_ln: bool):
        super().__init__()
        if pre_ln:
            self.pre_transformer_layer = nn.Sequential(nn.LayerNorm(dim, eps=1e-6))
        self.blocks = nn.ModuleList(Block(dim, heads, bias_kv) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, L, D)
        if hasattr(self, "pre_transformer_layer"):
            x = self.pre_transformer_layer(x)
        x = x.transpose(0, 1)
        for block in self.blocks:
            x = block(x)
        return x.transpose(0, 1)


class _SelectFirst(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


def _head(dim: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim, eps=1e-6), _SelectFirst(), nn.Linear(dim, out, bias=False))


class _PositionTable(nn.Module):
    def __init__(self, length: int, dim: int):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, length, dim))


class VisionPreprocessor(nn.Module):
    def __init__(self, dim: int, kernel: tuple[int, int, int] = (2, 14, 14), img_size: int = 224):
        super().__init__()
        n = (img_size // kernel[1]) * (img_size // kernel[2])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        # proj.0 is ImageBind's PadIm2Video (no weights; a 2-frame clip passes unchanged)
        self.rgbt_stem = Named(proj=nn.Sequential(nn.Identity(), nn.Conv3d(3, dim, kernel, kernel, bias=False)))
        self.pos_embedding_helper = _PositionTable(1 + n, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.rgbt_stem.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)
        return x + self.pos_embedding_helper.pos_embed


class AudioPreprocessor(nn.Module):
    def __init__(self, dim: int, kernel: int = 16, stride: int = 10, mel_bins: int = 128, target_len: int = 204):
        super().__init__()
        n = ((mel_bins - kernel) // stride + 1) * ((target_len - kernel) // stride + 1)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.rgbt_stem = Named(proj=nn.Conv2d(1, dim, kernel, stride, bias=False), norm_layer=nn.LayerNorm(dim))
        self.pos_embedding_helper = _PositionTable(1 + n, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.rgbt_stem.norm_layer(self.rgbt_stem.proj(x).flatten(2).transpose(1, 2))
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)
        return x + self.pos_embedding_helper.pos_embed


class LogitScale(nn.Module):
    """ImageBind's frozen ``LearnableLogitScaling``: ``x * min(exp(log_logit_scale), max)``."""

    def __init__(self, init: float = 20.0, max_scale: float = 100.0):
        super().__init__()
        self.max_scale = max_scale
        self.register_buffer("log_logit_scale", torch.tensor(float(init)).log())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clip(self.log_logit_scale.exp(), max=self.max_scale) * x


class _Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1, p=2)


@dataclass(frozen=True)
class ImageBindSizes:
    """The constructor arguments of ImageBind's model the two branches use (the fixture's
    ``config.json`` names them ``ImageBindModel_kwargs``)."""

    out_embed_dim: int = 1024
    vision_embed_dim: int = 1280
    vision_num_blocks: int = 32
    vision_num_heads: int = 16
    audio_embed_dim: int = 768
    audio_num_blocks: int = 12
    audio_num_heads: int = 12

    @classmethod
    def from_config(cls, kwargs: dict) -> "ImageBindSizes":
        return cls(**{k: int(kwargs[k]) for k in cls.__dataclass_fields__ if k in kwargs})


class ImageBind(nn.Module):
    """:meth:`embed_video` and :meth:`embed_audio`, with the published key layout."""

    def __init__(self, sizes: ImageBindSizes = ImageBindSizes()):
        super().__init__()
        s = sizes
        self.modality_preprocessors = Named(vision=VisionPreprocessor(s.vision_embed_dim),
                                             audio=AudioPreprocessor(s.audio_embed_dim))
        self.modality_trunks = Named(
            vision=Trunk(s.vision_embed_dim, s.vision_num_blocks, s.vision_num_heads, bias_kv=False, pre_ln=True),
            audio=Trunk(s.audio_embed_dim, s.audio_num_blocks, s.audio_num_heads, bias_kv=True, pre_ln=False))
        self.modality_heads = Named(vision=_head(s.vision_embed_dim, s.out_embed_dim),
                                     audio=_head(s.audio_embed_dim, s.out_embed_dim))
        self.modality_postprocessors = Named(vision=_Normalize(), audio=nn.Sequential(_Normalize(), LogitScale()))

    def _embed(self, name: str, x: torch.Tensor) -> torch.Tensor:
        for part in ("modality_preprocessors", "modality_trunks", "modality_heads", "modality_postprocessors"):
            x = getattr(getattr(self, part), name)(x)
        return x

    def embed_video(self, views: torch.Tensor) -> torch.Tensor:
        """``(V, 3, 2, 224, 224)`` normalised 2-frame views -> ``(V, out)`` unit vectors."""
        return self._embed("vision", views)

    def embed_audio(self, fbank: torch.Tensor) -> torch.Tensor:
        """``(C, 1, 128, 204)`` normalised fbank clips -> ``(C, out)`` (unit vectors x 20)."""
        return self._embed("audio", fbank)
