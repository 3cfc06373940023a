"""Synchformer (Iashin et al., 2024), the audio-visual offset classifier behind DeSync, with the
parameter names of the published ``synchformer_state_dict.pth``.

Written from the published architecture (facts: ``shared/reference/SYNC_METRICS.md``):

* :class:`MotionFormer`: a divided space-time ViT on 16-frame segments (tubelet 2x16x16, so 8 x 14
  x 14 tokens, t-major), a CLS token, a spatial position table tiled over time plus a temporal
  table; each block attends over time, then over space, then an MLP; then a final LayerNorm, and a
  per-frame spatial aggregation by one norm-first ``nn.TransformerEncoderLayer`` with its own CLS:
  ``(N, 3, 16, 224, 224)`` in [-1, 1] -> ``(N, 8, D)``.
* :class:`ASTFeatures`: the AST (sized by transformers' ``ASTConfig``) on 66 x 128 log-mel segments (12 x 6 patches,
  f-major), then per time step an aggregation over the 12 frequency tokens: ``(N, 128, 66)`` ->
  ``(N, 6, D)``.
* :class:`SyncTransformer`: ``[OFF, 112 video tokens, MOD, 84 audio tokens]`` plus a learned
  198-position embedding, minGPT blocks, and a 21-way offset head on the OFF token.

Sizes are constructor arguments; the defaults are the published sizes.  Inference only (dropouts
are omitted: they are identities in eval mode).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .layers import Mlp, Named

#: The offset classes in seconds: numpy's float64 ``linspace(-2, 2, 21)`` cast to float32, as the
#: reference's ``make_class_grid`` makes them (0.2 is float32(0.2) = 0.20000000298..., which torch's
#: float32 linspace misses by one ulp).
OFFSETS_S = torch.from_numpy(np.linspace(-2.0, 2.0, 21)).float()
#: Segments per window the sync transformer takes (its position table is 1 + 14*8 + 1 + 14*6 = 198).
WINDOW_SEGMENTS = 14


def _agg_layer(dim: int, heads: int, ffn: int) -> nn.TransformerEncoderLayer:
    """Synchformer's aggregation layer: norm first, exact GELU, eps 1e-6, batch first; plus a CLS."""
    layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=ffn, dropout=0.0, activation=F.gelu,
                                       layer_norm_eps=1e-6, batch_first=True, norm_first=True)
    layer.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
    return layer


def _aggregate(layer: nn.TransformerEncoderLayer, tokens: torch.Tensor) -> torch.Tensor:
    """``(G, L, D)`` -> ``(G, D)``: prepend the layer's CLS, run the layer, keep the CLS output."""
    x = torch.cat([layer.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
    return layer(x)[:, 0]


class PatchEmbed(nn.Module):
    """A convolution whose kernel equals its stride, flattened to tokens (``proj``: the key name)."""

    def __init__(self, conv: nn.Module):
        super().__init__()
        self.proj = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DividedAttention(nn.Module):
    """Attention within groups (frames or positions); the CLS query attends to every token and
    the CLS key and value join every group (MotionFormer's ``DividedAttention``)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, frames: int, over: str) -> torch.Tensor:
        """``x``: ``(B, 1 + F*P, D)``, t-major; ``over``: ``"time"`` or ``"space"``."""
        b, n, d = x.shape
        h, hd, p = self.heads, d // self.heads, (n - 1) // frames
        q, k, v = (t.reshape(b, n, h, hd).transpose(1, 2).reshape(b * h, n, hd) for t in self.qkv(x).chunk(3, -1))
        q = q * self.scale
        cls_out = torch.softmax(q[:, :1] @ k.transpose(1, 2), -1) @ v  # (bh, 1, hd)

        def group(t):  # (bh, F*P, hd) -> (bh*G, L, hd)
            t = t.reshape(b * h, frames, p, hd)
            if over == "time":
                t = t.transpose(1, 2)  # groups: positions, sequence: frames
            return t.reshape(-1, t.shape[2], hd)

        qg, kg, vg = group(q[:, 1:]), group(k[:, 1:]), group(v[:, 1:])
        r = qg.shape[0] // (b * h)
        kg = torch.cat([k[:, :1].repeat_interleave(r, 0), kg], 1)
        vg = torch.cat([v[:, :1].repeat_interleave(r, 0), vg], 1)
        out = torch.softmax(qg @ kg.transpose(1, 2), -1) @ vg  # (bh*G, L, hd)
        if over == "time":
            out = out.reshape(b * h, p, frames, hd).transpose(1, 2)
        out = torch.cat([cls_out, out.reshape(b * h, frames * p, hd)], 1)
        return self.proj(out.reshape(b, h, n, hd).transpose(1, 2).reshape(b, n, d))


class DividedBlock(nn.Module):
    """``x += timeattn(norm3(x))``; ``x += attn(norm1(x))``; ``x += mlp(norm2(x))`` (eps 1e-6)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(dim, eps=1e-6) for _ in range(3))
        self.attn, self.timeattn = DividedAttention(dim, heads), DividedAttention(dim, heads)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        x = x + self.timeattn(self.norm3(x), frames, "time")
        x = x + self.attn(self.norm1(x), frames, "space")
        return x + self.mlp(self.norm2(x))


class MotionFormer(nn.Module):
    """The video branch: ``(N, 3, 16, H, W)`` normalised frames -> ``(N, 8, D)`` per-step features.

    Parameters
    ----------
    dim, depth, heads, mlp_ratio : int, int, int, float
        ViT sizes (published: 768, 12, 12, 4).
    img_size, patch, tubelet, frames : int
        Input 224 px, 16 px patches, 2-frame tubelets, 8 token steps (16 frames).
    """

    def __init__(self, dim: int = 768, depth: int = 12, heads: int = 12, mlp_ratio: float = 4.0,
                 img_size: int = 224, patch: int = 16, tubelet: int = 2, frames: int = 8):
        super().__init__()
        self.frames, grid = frames, img_size // patch
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        self.temp_embed = nn.Parameter(torch.zeros(1, frames, dim))
        self.patch_embed = PatchEmbed(nn.Conv2d(3, dim, patch, patch))  # in the published file, unused
        self.patch_embed_3d = PatchEmbed(nn.Conv3d(3, dim, (tubelet, patch, patch), (tubelet, patch, patch)))
        self.blocks = nn.ModuleList(DividedBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.spatial_attn_agg = _agg_layer(dim, heads, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed_3d(x)  # (N, F*P, D), t-major
        n, d = x.shape[0], x.shape[2]
        p = self.pos_embed.shape[1] - 1
        pos = self.pos_embed[:, 1:].repeat(1, self.frames, 1) + self.temp_embed.repeat_interleave(p, 1)
        x = torch.cat([self.cls_token.expand(n, -1, -1), x], 1) + torch.cat([self.pos_embed[:, :1], pos], 1)
        for block in self.blocks:
            x = block(x, self.frames)
        x = self.norm(x)[:, 1:].reshape(n * self.frames, p, d)
        return _aggregate(self.spatial_attn_agg, x).reshape(n, self.frames, d)


class ASTLayer(nn.Module):
    """One pre-LN layer of the Audio Spectrogram Transformer, with the key names of transformers 4's
    ``ASTLayer`` (the published file's): ``attention.attention.{query,key,value}``,
    ``attention.output.dense``, ``intermediate.dense``, ``output.dense``, ``layernorm_before/after``."""

    def __init__(self, dim: int, heads: int, ffn: int, eps: float):
        super().__init__()
        self.heads = heads
        self.attention = Named(attention=Named(query=nn.Linear(dim, dim), key=nn.Linear(dim, dim),
                                                 value=nn.Linear(dim, dim)),
                                output=Named(dense=nn.Linear(dim, dim)))
        self.intermediate = Named(dense=nn.Linear(dim, ffn))
        self.output = Named(dense=nn.Linear(ffn, dim))
        self.layernorm_before, self.layernorm_after = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        att = self.attention.attention
        h = self.layernorm_before(x)
        q, k, v = (f(h).view(b, n, self.heads, d // self.heads).transpose(1, 2) for f in (att.query, att.key, att.value))
        w = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads), -1)
        x = x + self.attention.output.dense((w @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.output.dense(F.gelu(self.intermediate.dense(self.layernorm_after(x))))


class AST(nn.Module):
    """The Audio Spectrogram Transformer (Gong et al., 2021) sized by transformers' ``ASTConfig``:
    16x16 patches at stride 10 over (frequency, time), f-major, ``[CLS, DISTILL, patches]`` plus
    position, pre-LN layers, a final LayerNorm.  ``(N, T, F)`` -> ``(N, 2 + P, D)``."""

    def __init__(self, config):
        super().__init__()
        d, eps = config.hidden_size, config.layer_norm_eps
        self.freq_tokens = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
        self.time_tokens = (config.max_length - config.patch_size) // config.time_stride + 1
        self.embeddings = Named(patch_embeddings=Named(projection=nn.Conv2d(
            1, d, config.patch_size, stride=(config.frequency_stride, config.time_stride))))
        self.embeddings.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.embeddings.distillation_token = nn.Parameter(torch.zeros(1, 1, d))
        self.embeddings.position_embeddings = nn.Parameter(torch.zeros(1, 2 + self.freq_tokens * self.time_tokens, d))
        self.encoder = Named(layer=nn.ModuleList(
            ASTLayer(d, config.num_attention_heads, config.intermediate_size, eps)
            for _ in range(config.num_hidden_layers)))
        self.layernorm = nn.LayerNorm(d, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embeddings
        x = e.patch_embeddings.projection(x.unsqueeze(1).transpose(2, 3)).flatten(2).transpose(1, 2)
        n = x.shape[0]
        x = torch.cat([e.cls_token.expand(n, -1, -1), e.distillation_token.expand(n, -1, -1), x], 1)
        x = x + e.position_embeddings
        for layer in self.encoder.layer:
            x = layer(x)
        return self.layernorm(x)


class ASTFeatures(nn.Module):
    """The audio branch: :class:`AST` at ``max_length`` 66 and a per-time-step aggregation over
    frequency: ``(N, 128, 66)`` normalised log-mel -> ``(N, 6, D)``.  Sizes are ``ASTConfig``'s
    fields (its other fields at transformers' defaults: patch 16, strides 10, eps 1e-12, GELU)."""

    def __init__(self, hidden_size: int = 768, num_hidden_layers: int = 12, num_attention_heads: int = 12,
                 intermediate_size: int = 3072, max_length: int = 66, num_mel_bins: int = 128):
        super().__init__()
        from transformers import ASTConfig

        config = ASTConfig(hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                           num_attention_heads=num_attention_heads, intermediate_size=intermediate_size,
                           max_length=max_length, num_mel_bins=num_mel_bins)
        self.ast = AST(config)
        self.freq_attn_agg = _agg_layer(hidden_size, num_attention_heads, intermediate_size)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.ast(mel.transpose(1, 2))[:, 2:]  # (N, F*T, D), f-major
        n, d = x.shape[0], x.shape[2]
        f, t = self.ast.freq_tokens, self.ast.time_tokens
        x = x.reshape(n, f, t, d).transpose(1, 2).reshape(-1, f, d)
        return _aggregate(self.freq_attn_agg, x).reshape(n, t, d)


class SelfAttention(nn.Module):
    """minGPT's attention (no mask): ``key``, ``query``, ``value``, ``proj``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.key, self.query, self.value, self.proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        k, q, v = (f(x).view(b, n, self.heads, d // self.heads).transpose(1, 2)
                   for f in (self.key, self.query, self.value))
        att = torch.softmax((q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1))), -1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, n, d))


class GPTBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class PositionTable(nn.Module):
    def __init__(self, length: int, dim: int):
        super().__init__()
        self.pos_emb = nn.Parameter(torch.zeros(1, length, dim))


class SyncTransformer(nn.Module):
    """``(B, 112, D)`` video and ``(B, 84, D)`` audio tokens -> ``(B, 21)`` offset logits."""

    def __init__(self, dim: int = 768, layers: int = 3, heads: int = 8, positions: int = 198, classes: int = 21):
        super().__init__()
        self.OFF_tok = nn.Parameter(torch.zeros(1, 1, dim))
        self.MOD_tok = nn.Parameter(torch.zeros(1, 1, dim))
        self.vis_in_lnorm, self.aud_in_lnorm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.pos_emb_cfg = PositionTable(positions, dim)
        self.blocks = nn.Sequential(*(GPTBlock(dim, heads) for _ in range(layers)))
        self.ln_f = nn.LayerNorm(dim)
        self.off_head = nn.Linear(dim, classes)

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        b = v.shape[0]
        x = torch.cat([self.OFF_tok.expand(b, -1, -1), self.vis_in_lnorm(v), self.MOD_tok.expand(b, -1, -1),
                       self.aud_in_lnorm(a)], 1)
        x = self.ln_f(self.blocks(x + self.pos_emb_cfg.pos_emb))
        return self.off_head(x[:, 0])


@dataclass(frozen=True)
class SynchformerSizes:
    """The sizes a ``config.json`` beside the weights may give (the reference constructors' names)."""

    video: dict = field(default_factory=lambda: {"VIT.EMBED_DIM": 768, "VIT.DEPTH": 12, "VIT.NUM_HEADS": 12,
                                                 "VIT.MLP_RATIO": 4})
    audio: dict = field(default_factory=lambda: {"hidden_size": 768, "num_hidden_layers": 12,
                                                 "num_attention_heads": 12, "intermediate_size": 3072})
    transformer: dict = field(default_factory=lambda: {"n_layer": 3, "n_head": 8, "n_embd": 768})

    @classmethod
    def from_config(cls, sizes: dict) -> "SynchformerSizes":
        """From the ``sizes`` block of the fixture's ``config.json`` (``vfeat_extractor``,
        ``afeat_extractor.ASTConfig``, ``transformer``)."""
        return cls(video=dict(sizes["vfeat_extractor"]), audio=dict(sizes["afeat_extractor"]["ASTConfig"]),
                   transformer=dict(sizes["transformer"]))


class Synchformer(nn.Module):
    """The whole model: :meth:`video_features`, :meth:`audio_features`, and :meth:`logits` of a
    14-segment window (``vproj``/``aproj`` then the sync transformer)."""

    def __init__(self, sizes: SynchformerSizes = SynchformerSizes()):
        super().__init__()
        v, a, t = sizes.video, sizes.audio, sizes.transformer
        self.sizes = asdict(sizes)
        self.vfeat_extractor = MotionFormer(v["VIT.EMBED_DIM"], v["VIT.DEPTH"], v["VIT.NUM_HEADS"], v["VIT.MLP_RATIO"])
        self.afeat_extractor = ASTFeatures(a["hidden_size"], a["num_hidden_layers"], a["num_attention_heads"],
                                           a["intermediate_size"])
        self.vproj = nn.Linear(v["VIT.EMBED_DIM"], t["n_embd"])
        self.aproj = nn.Linear(a["hidden_size"], t["n_embd"])
        self.transformer = SyncTransformer(t["n_embd"], t["n_layer"], t["n_head"])

    def video_features(self, segments: torch.Tensor) -> torch.Tensor:
        """``(S, 3, 16, 224, 224)`` -> ``(S, 8, D)``."""
        return self.vfeat_extractor(segments)

    def audio_features(self, mel: torch.Tensor) -> torch.Tensor:
        """``(S, 128, 66)`` -> ``(S, 6, D)``."""
        return self.afeat_extractor(mel)

    def logits(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """``(B, 14, 8, Dv)`` and ``(B, 14, 6, Da)`` window features -> ``(B, 21)`` offset logits."""
        b = video.shape[0]
        return self.transformer(self.vproj(video).reshape(b, -1, self.vproj.out_features),
                                self.aproj(audio).reshape(b, -1, self.aproj.out_features))
