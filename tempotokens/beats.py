"""BEATs audio encoder (Chen et al., arXiv 2212.09058), written for this project.

It loads the official checkpoint format ``{"cfg": {...}, "model": state_dict}`` (for example
``BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt``) and computes the same numbers as the
official code: a Kaldi fbank front end, 16x16 patch embedding, a post-LN ("deep norm")
transformer with a convolutional positional embedding and gated relative position bias, and an
optional fine-tuned AudioSet head.

Shapes: a waveform ``(B, S)`` at 16 kHz gives ``F = 1 + (S - 400) // 160`` fbank frames, a
``T' x 8`` patch grid with ``T' = (F - 16) // 16 + 1``, and ``N = 8 T'`` tokens ordered
time-major (token ``k`` is time patch ``k // 8``, frequency patch ``k % 8``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .quiet import install as _quiet_empty_fp32_notice

_quiet_empty_fp32_notice()

SAMPLE_RATE = 16000
FBANK_MEAN, FBANK_STD = 15.41663, 6.55582
N_MELS, WIN, HOP = 128, 400, 160


@dataclass
class BEATsOutput:
    """Outputs of :class:`BEATs`.

    Attributes
    ----------
    last_hidden_state : torch.Tensor, shape (B, N, D)
        The last transformer layer's output.
    layers : torch.Tensor, shape (B, N, L*D)
        Every layer's output concatenated on channels (channels ``[D(k-1), Dk)`` hold layer k);
        what the audio-token adaptor consumes.
    probs : torch.Tensor of shape (B, C), or None
        Sigmoid of the fine-tuned head's logits averaged over valid tokens; None without a head.
    padding_mask : torch.Tensor of shape (B, N), or None
        True at tokens that come from padding.
    """

    last_hidden_state: torch.Tensor
    layers: torch.Tensor
    probs: torch.Tensor | None
    padding_mask: torch.Tensor | None


def num_tokens(num_samples: int, patch: int = 16) -> int:
    """Number of BEATs tokens for ``num_samples`` of 16 kHz audio (0 if too short)."""
    frames = 1 + (num_samples - WIN) // HOP if num_samples >= WIN else 0
    return (N_MELS // patch) * ((frames - patch) // patch + 1) if frames >= patch else 0


def fbank(waveform: torch.Tensor) -> torch.Tensor:
    """BEATs' normalised Kaldi fbank: ``(B, S)`` in [-1, 1] at 16 kHz → ``(B, F, 128)``.

    Each row is scaled by 2**15, passed to ``torchaudio.compliance.kaldi.fbank`` (128 mel bins,
    25 ms windows every 10 ms, torchaudio's other defaults), then normalised as
    ``(x - 15.41663) / (2 * 6.55582)``.
    """
    import torchaudio.compliance.kaldi as kaldi

    rows = [
        kaldi.fbank(w.unsqueeze(0) * 2**15, num_mel_bins=N_MELS, sample_frequency=SAMPLE_RATE,
                    frame_length=25, frame_shift=10)
        for w in waveform.float()
    ]
    return (torch.stack(rows) - FBANK_MEAN) / (2 * FBANK_STD)


class _WeightNormConv1d(nn.Module):
    """Conv1d whose weight is ``g * v / ||v||`` (norm over all but the last axis), stored as the
    official checkpoint stores it (``weight_g``, ``weight_v``)."""

    def __init__(self, channels: int, kernel: int, groups: int):
        super().__init__()
        self.groups, self.padding = groups, kernel // 2
        std = math.sqrt(4 / (kernel * channels))
        self.weight_v = nn.Parameter(torch.randn(channels, channels // groups, kernel) * std)
        self.weight_g = nn.Parameter(self.weight_v.detach().norm(dim=(0, 1), keepdim=True))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight_g * self.weight_v / self.weight_v.norm(dim=(0, 1), keepdim=True)
        return F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


class _SamePad(nn.Module):
    def __init__(self, kernel: int):
        super().__init__()
        self.remove = 1 if kernel % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., : x.shape[-1] - self.remove]


class _Attention(nn.Module):
    """Multi-head self-attention with BEATs' bucketed relative position bias and its GRU-style gate."""

    def __init__(self, dim: int, heads: int, num_buckets: int, max_distance: int, gated: bool, has_table: bool):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.scaling = self.head_dim**-0.5
        self.num_buckets, self.max_distance, self.gated = num_buckets, max_distance, gated
        self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.q_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        if has_table:  # only the first layer holds it; the others reuse its bias
            self.relative_attention_bias = nn.Embedding(num_buckets, heads)
        if gated:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def _buckets(self, length: int, device: torch.device) -> torch.Tensor:
        pos = torch.arange(length, device=device)
        rel = pos[None, :] - pos[:, None]  # key - query
        half = self.num_buckets // 2
        buckets = (rel > 0).long() * half
        rel = rel.abs()
        exact = half // 2
        large = exact + (
            torch.log(rel.float() / exact) / math.log(self.max_distance / exact) * (half - exact)
        ).long()
        large = large.clamp(max=half - 1)
        return buckets + torch.where(rel < exact, rel, large)

    def position_bias(self, length: int) -> torch.Tensor:
        """(heads, L, L) bias from the bucket table."""
        table = self.relative_attention_bias
        return table(self._buckets(length, table.weight.device)).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        B, L, D = x.shape
        H, Dh = self.heads, self.head_dim
        alpha = 32.0  # the official code divides q by 32 and multiplies the logits back
        q = (self.q_proj(x) * self.scaling / alpha).view(B, L, H, Dh).transpose(1, 2)
        k = self.k_proj(x).view(B, L, H, Dh).transpose(1, 2)
        v = self.v_proj(x).view(B, L, H, Dh).transpose(1, 2)
        logits = q @ k.transpose(-1, -2)
        logits = (logits - logits.amax(dim=-1, keepdim=True)) * alpha
        if key_padding_mask is not None:
            logits = logits.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        if self.gated:
            query = q * alpha / self.scaling  # (B, H, L, Dh), the unscaled projection
            gate_a, gate_b = torch.sigmoid(self.grep_linear(query).view(B, H, L, 2, 4).sum(-1)).chunk(2, dim=-1)
            bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * bias
        attn = torch.softmax(logits + bias, dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(B, L, D)
        return self.out_proj(out)


class _Layer(nn.Module):
    def __init__(self, cfg: dict, has_table: bool):
        super().__init__()
        dim = cfg["encoder_embed_dim"]
        self.self_attn = _Attention(
            dim, cfg["encoder_attention_heads"], cfg["num_buckets"], cfg["max_distance"], cfg["gru_rel_pos"], has_table
        )
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, cfg["encoder_ffn_embed_dim"])
        self.fc2 = nn.Linear(cfg["encoder_ffn_embed_dim"], dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.alpha = math.pow(2 * cfg["encoder_layers"], 0.25) if cfg["deep_norm"] else 1.0

    def forward(self, x: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.self_attn_layer_norm(x * self.alpha + self.self_attn(x, bias, mask))
        return self.final_layer_norm(x * self.alpha + self.fc2(F.gelu(self.fc1(x))))


class _Encoder(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        dim = cfg["encoder_embed_dim"]
        self.pos_conv = nn.Sequential(
            _WeightNormConv1d(dim, cfg["conv_pos"], cfg["conv_pos_groups"]), _SamePad(cfg["conv_pos"]), nn.GELU()
        )
        self.layer_norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(_Layer(cfg, has_table=i == 0) for i in range(cfg["encoder_layers"]))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> list[torch.Tensor]:
        if mask is not None:
            x = x.masked_fill(mask[..., None], 0.0)
        x = self.layer_norm(x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2))
        bias = self.layers[0].self_attn.position_bias(x.shape[1])[None]  # (1, H, L, L)
        outputs = []
        for layer in self.layers:
            x = layer(x, bias, mask)
            outputs.append(x)
        return outputs


#: Configuration keys of the official checkpoints that change the computation.
_CONFIG_KEYS = (
    "input_patch_size", "embed_dim", "conv_bias", "encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim",
    "encoder_attention_heads", "deep_norm", "conv_pos", "conv_pos_groups", "num_buckets", "max_distance",
    "gru_rel_pos", "finetuned_model", "predictor_class",
)


class BEATs(ModelMixin, ConfigMixin):
    """BEATs audio encoder; sizes as constructor arguments (defaults: the released iter3+ model).

    Examples
    --------
    >>> beats = BEATs.from_checkpoint("BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt").eval()
    >>> out = beats(waveform)                  # (B, S) float at 16 kHz
    >>> out.layers.shape                       # (B, N, 12 * 768)
    """

    @register_to_config
    def __init__(
        self,
        input_patch_size: int = 16,
        embed_dim: int = 512,
        conv_bias: bool = False,
        encoder_layers: int = 12,
        encoder_embed_dim: int = 768,
        encoder_ffn_embed_dim: int = 3072,
        encoder_attention_heads: int = 12,
        deep_norm: bool = True,
        conv_pos: int = 128,
        conv_pos_groups: int = 16,
        num_buckets: int = 320,
        max_distance: int = 800,
        gru_rel_pos: bool = True,
        finetuned_model: bool = True,
        predictor_class: int = 527,
    ):
        super().__init__()
        cfg = dict(self.config)
        p = input_patch_size
        self.patch_embedding = nn.Conv2d(1, embed_dim, kernel_size=p, stride=p, bias=conv_bias)
        self.layer_norm = nn.LayerNorm(embed_dim)
        self.post_extract_proj = nn.Linear(embed_dim, encoder_embed_dim) if embed_dim != encoder_embed_dim else None
        self.encoder = _Encoder(cfg)
        self.predictor = nn.Linear(encoder_embed_dim, predictor_class) if finetuned_model else None

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, load_head: bool = True) -> "BEATs":
        """Load an official BEATs ``.pt`` file (``{"cfg", "model"}``; ``torch.load(weights_only=True)``).

        ``load_head=False`` drops the fine-tuned classifier (then ``probs`` is None).
        """
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(checkpoint, dict) or "cfg" not in checkpoint or "model" not in checkpoint:
            raise ValueError(f"{path}: not a BEATs checkpoint (expected a dict with 'cfg' and 'model')")
        if checkpoint["cfg"].get("layer_norm_first") or not checkpoint["cfg"].get("relative_position_embedding", True):
            raise ValueError(f"{path}: pre-LN or absolute-position BEATs variants are not supported")
        cfg = {k: checkpoint["cfg"][k] for k in _CONFIG_KEYS if k in checkpoint["cfg"]}
        cfg["finetuned_model"] = bool(cfg.get("finetuned_model")) and load_head
        model = cls(**cfg)
        state = {k: v for k, v in checkpoint["model"].items() if not (k.startswith("predictor.") and not load_head)}
        first = "encoder.layers.0.self_attn.relative_attention_bias.weight"
        for i in range(1, cfg.get("encoder_layers", 12)):  # copies of layer 0's table
            key = f"encoder.layers.{i}.self_attn.relative_attention_bias.weight"
            if key in state and first in state and not torch.equal(state.pop(key), state[first]):
                raise ValueError(f"{path}: layer {i} has its own relative-position table; not a BEATs checkpoint")
        model.load_state_dict(state, strict=True)
        return model.eval()

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write the official checkpoint format (``{"cfg", "model"}``), e.g. for a tiny test model.

        As in the official files, the relative-position table is stored under every layer."""
        cfg = dict(self.config)
        cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
        cfg.update(layer_norm_first=False, activation_fn="gelu", relative_position_embedding=True)
        state = self.state_dict()
        table = state["encoder.layers.0.self_attn.relative_attention_bias.weight"]
        for i in range(1, self.config.encoder_layers):
            state[f"encoder.layers.{i}.self_attn.relative_attention_bias.weight"] = table.clone()
        torch.save({"cfg": cfg, "model": state}, path)

    def token_padding_mask(self, padding_mask: torch.Tensor, n_tokens: int) -> torch.Tensor:
        """Map a sample-level mask (B, S), True at padding, to tokens (B, N): a token is padding
        when its time patch starts beyond the item's last whole patch."""
        patch = self.config.input_patch_size
        valid = (~padding_mask).sum(dim=1)
        frames = torch.where(valid >= WIN, 1 + (valid - WIN) // HOP, torch.zeros_like(valid))
        time_patches = torch.where(frames >= patch, (frames - patch) // patch + 1, torch.zeros_like(frames))
        token_time = torch.arange(n_tokens, device=padding_mask.device) // (N_MELS // patch)
        return token_time[None, :] >= time_patches[:, None]

    def forward(self, waveform: torch.Tensor, padding_mask: torch.Tensor | None = None) -> BEATsOutput:
        """Encode ``(B, S)`` 16 kHz audio; ``padding_mask`` ``(B, S)`` is True at padded samples."""
        if waveform.ndim == 1:
            waveform = waveform[None]
        if waveform.shape[1] < WIN + 15 * HOP:
            raise ValueError(f"BEATs needs at least {WIN + 15 * HOP} samples (0.16 s at 16 kHz), got {waveform.shape[1]}")
        x = fbank(waveform).to(self.patch_embedding.weight.dtype)
        x = self.patch_embedding(x[:, None])  # (B, C, T', 8)
        x = self.layer_norm(x.flatten(2).transpose(1, 2))  # (B, N, C), time-major
        mask = None
        if padding_mask is not None and padding_mask.any():
            mask = self.token_padding_mask(padding_mask.to(x.device), x.shape[1])
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        outputs = self.encoder(x, mask)
        last = outputs[-1]
        probs = None
        if self.predictor is not None:
            logits = self.predictor(last)
            if mask is not None:
                keep = (~mask)[..., None].to(logits.dtype)
                logits = (logits * keep).sum(1) / keep.sum(1).clamp(min=1)
            else:
                logits = logits.mean(dim=1)
            probs = torch.sigmoid(logits)
        return BEATsOutput(last_hidden_state=last, layers=torch.cat(outputs, dim=-1), probs=probs, padding_mask=mask)


def load_beats(source: "str | os.PathLike | BEATs") -> BEATs:
    """A BEATs model from an official ``.pt`` checkpoint (``{"cfg", "model"}``) or one of our
    ``save_pretrained`` folders (an instance is passed through)."""
    from pathlib import Path

    if isinstance(source, BEATs):
        return source
    return BEATs.from_pretrained(source).eval() if Path(source).is_dir() else BEATs.from_checkpoint(source)
