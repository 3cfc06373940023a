"""The audio-to-token adaptor ("mapper", ``TempEmbedder`` in the reference), written for this project.

BEATs' layer outputs ``(B, N, L*D)`` become, per video frame ``f`` of ``F``:

* a temporal token ``T[:, f]`` (a per-token MLP, pooling of the N tokens into F groups, then
  GELU and a last linear layer),
* four local tokens: means of ``T`` over the asymmetric windows ``[f - r, f + r)`` (clipped at the
  edges) for r = 1, 2, 4, 8,
* one class token: an attention-pooled convex combination of the ``T[:, f]`` (factor-graph
  attention with a unary and a self potential).

The parameter names equal the reference's, so its released ``learned_embeds.pth`` loads as is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .quiet import install as _quiet_empty_fp32_notice

_quiet_empty_fp32_notice()

LOCAL_RADII = (1, 2, 4, 8)


@dataclass
class AdaptorOutput:
    """Outputs of :class:`AudioTokenAdaptor`; ``D`` is the text encoder's width.

    Attributes
    ----------
    temporal : torch.Tensor, shape (B, F, D)
    local : tuple of four torch.Tensor, each (B, F, D)
        Windows of radius 1, 2, 4, 8.
    class_token : torch.Tensor, shape (B, D)
    """

    temporal: torch.Tensor
    local: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
    class_token: torch.Tensor


def pooling_matrix(lengths: torch.Tensor, n_in: int, n_out: int) -> torch.Tensor:
    """Averaging weights ``(B, n_out, n_in)`` that split each item's first ``lengths[b]`` inputs into
    ``n_out`` contiguous groups (PyTorch's adaptive average pooling: group ``i`` spans
    ``[floor(i n / n_out), ceil((i + 1) n / n_out))``).  With ``n`` divisible by ``n_out`` the groups
    are the reference's ``reshape(n_out, n / n_out).mean``."""
    n = lengths.to(torch.long)[:, None, None]
    i = torch.arange(n_out, device=lengths.device)[None, :, None]
    k = torch.arange(n_in, device=lengths.device)[None, None, :]
    start = (i * n) // n_out
    end = -((-(i + 1) * n) // n_out)  # ceil
    inside = (k >= start) & (k < end)
    return inside / inside.sum(-1, keepdim=True).clamp(min=1)


def local_window_matrix(n_frames: int, radius: int, device=None) -> torch.Tensor:
    """``(F, F)`` weights of the reference's window mean ``T[max(f - r, 0) : min(f + r, F)]``."""
    f = torch.arange(n_frames, device=device)[:, None]
    j = torch.arange(n_frames, device=device)[None, :]
    inside = (j >= f - radius) & (j < f + radius)
    return inside / inside.sum(-1, keepdim=True)


class _Unary(nn.Module):
    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.embed = nn.Conv1d(dim, dim, 1)
        self.feature_reduce = nn.Conv1d(dim, 1, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F, D) -> (B, F)
        return self.feature_reduce(self.dropout(F.relu(self.embed(x.transpose(1, 2))))).squeeze(1)


class _SelfPotential(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.embed_X = nn.Conv1d(dim, dim, 1)
        self.embed_Y = nn.Conv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F, D) -> (B, F)
        a = F.normalize(self.embed_X(x.transpose(1, 2)), dim=1)
        b = F.normalize(self.embed_Y(x.transpose(1, 2)), dim=1)
        return (a.transpose(1, 2) @ b).mean(dim=2)


class _FactorGraphAttention(nn.Module):
    """Attention pooling with a unary and a self (pairwise) potential, mixed by a 1x1 conv."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.un_models = nn.ModuleList([_Unary(dim, dropout)])
        self.pp_models = nn.ModuleDict({"0": _SelfPotential(dim)})
        self.reduce_potentials = nn.ModuleList([nn.Conv1d(2, 1, 1, bias=False)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F, D) -> (B, D)
        potentials = torch.stack([self.un_models[0](x), self.pp_models["0"](x)], dim=1)  # (B, 2, F)
        weights = torch.softmax(self.reduce_potentials[0](potentials).squeeze(1), dim=1)
        return (x * weights[..., None]).sum(1)


class AudioTokenAdaptor(ModelMixin, ConfigMixin):
    """Audio-to-token adaptor: BEATs layers ``(B, N, input_size)`` → per-frame tokens.

    Parameters
    ----------
    input_size : int
        Channels of BEATs' concatenated layers (12 x 768 = 9216 for the released BEATs).
    hidden_size : int
        Width of the per-token MLP.
    output_size : int
        Token width: the text encoder's embedding width (1024 for ModelScope/zeroscope).
    num_frames : int
        Default number of video frames F (the reference's ``seq_target_length``, 24).
    token_pooling : {"reference", "temporal"}
        ``"reference"`` (required by the released weights) splits BEATs' time-major token sequence
        into F contiguous groups, so with 2 s of audio each "frame" is a time step x half of the
        frequency patches.  ``"temporal"`` (our option) first averages the ``freq_patches``
        frequency patches of each time step, then pools time to F.
    freq_patches : int
        BEATs frequency patches per time step (128 mel bins / 16 = 8).
    fga_dropout : float
        Dropout on the class-token attention's unary branch, active in training only (the
        reference leaves it on at inference).
    """

    @register_to_config
    def __init__(
        self,
        input_size: int = 9216,
        hidden_size: int = 2304,
        output_size: int = 1024,
        num_frames: int = 24,
        token_pooling: Literal["reference", "temporal"] = "reference",
        freq_patches: int = 8,
        fga_dropout: float = 0.5,
    ):
        super().__init__()
        if token_pooling not in ("reference", "temporal"):
            raise ValueError(f"token_pooling must be 'reference' or 'temporal', got {token_pooling!r}")
        self.fc1 = nn.Linear(input_size, hidden_size)
        self.fc2 = nn.Linear(hidden_size, hidden_size)
        self.fc3 = nn.Linear(hidden_size, output_size)
        self.fc4 = nn.Linear(output_size, output_size)
        self.fga = _FactorGraphAttention(output_size, fga_dropout)
        #: per-channel standardization of BEATs' layers (identity until set_input_stats; saved with the weights)
        self.register_buffer("input_mean", torch.zeros(input_size))
        self.register_buffer("input_std", torch.ones(input_size))

    #: our buffers that the authors' state dict does not have
    INPUT_STATS = ("input_mean", "input_std")

    def reference_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights in the authors' ``learned_embeds.pth`` layout (their keys only)."""
        return {k: v for k, v in self.state_dict().items() if k not in self.INPUT_STATS}

    def set_input_stats(self, layers: torch.Tensor) -> None:
        """Standardize inputs with the per-channel mean/std of ``layers`` (..., input_size), e.g. the
        training clips' BEATs layers; keeps BEATs' frame-to-frame variation through the MLP."""
        flat = layers.reshape(-1, layers.shape[-1])
        self.input_mean.copy_(flat.mean(0))
        self.input_std.copy_(flat.std(0).clamp_min(1e-6))

    def zero_biases(self) -> None:
        """Zero fc1..fc4's biases: fc4's random bias alone flattens the token variation ~3x."""
        for m in (self.fc1, self.fc2, self.fc3, self.fc4):
            nn.init.zeros_(m.bias)

    @classmethod
    def from_reference_checkpoint(cls, path: str | os.PathLike, **overrides) -> "AudioTokenAdaptor":
        """Load the authors' state-dict format (``learned_embeds.pth``, ``at_embedder_<step>.pth``).

        Sizes are inferred from the tensor shapes; a ``module.`` prefix (a DDP save) is removed.
        ``overrides`` set other constructor arguments (e.g. ``num_frames``).
        """
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or "fc1.weight" not in {k.removeprefix("module.") for k in state}:
            raise ValueError(f"{path}: not an adaptor state dict (no fc1.weight)")
        state = {k.removeprefix("module."): v for k, v in state.items()}
        hidden, input_size = state["fc1.weight"].shape
        model = cls(input_size=input_size, hidden_size=hidden, output_size=state["fc3.weight"].shape[0], **overrides)
        # the reference has no INPUT_STATS: identity (a missing weight still fails the strict load)
        state = {**{k: model.state_dict()[k] for k in cls.INPUT_STATS}, **state}
        model.load_state_dict(state, strict=True)
        return model.eval()

    def forward(
        self, layers: torch.Tensor, num_frames: int | None = None, padding_mask: torch.Tensor | None = None
    ) -> AdaptorOutput:
        """Tokens for ``num_frames`` frames (default: the configured ``num_frames``).

        Parameters
        ----------
        layers : torch.Tensor, shape (B, N, input_size)
            BEATs' concatenated layer outputs (``BEATsOutput.layers``).
        num_frames : int, optional
            Any F >= 1; N need not divide by it.
        padding_mask : torch.Tensor, shape (B, N), optional
            True at padding tokens (``BEATsOutput.padding_mask``); they are left out of the pooling.
        """
        F_ = int(num_frames or self.config.num_frames)
        B, N, _ = layers.shape
        layers = (layers - self.input_mean) / self.input_std
        h = self.fc3(F.gelu(self.fc2(F.gelu(self.fc1(layers)))))  # (B, N, D)
        valid = (~padding_mask).sum(1) if padding_mask is not None else torch.full((B,), N, device=h.device)
        if self.config.token_pooling == "temporal":
            fp = self.config.freq_patches
            if N % fp:
                raise ValueError(f"temporal pooling needs a token count divisible by {fp}, got {N}")
            h = h.view(B, N // fp, fp, -1).mean(2)  # (B, T', D)
            valid = valid // fp
        pooled = pooling_matrix(valid, h.shape[1], F_).to(h.dtype) @ h  # (B, F, D)
        temporal = self.fc4(F.gelu(pooled))
        local = tuple(local_window_matrix(F_, r, temporal.device).to(temporal.dtype) @ temporal for r in LOCAL_RADII)
        return AdaptorOutput(temporal=temporal, local=local, class_token=self.fga(temporal))


def load_adaptor(source: "str | os.PathLike | AudioTokenAdaptor") -> AudioTokenAdaptor:
    """An adaptor from the authors' ``learned_embeds.pth`` state dict or one of our ``save_pretrained``
    folders (an instance is passed through)."""
    from pathlib import Path

    if isinstance(source, AudioTokenAdaptor):
        return source
    if Path(source).is_dir():
        return AudioTokenAdaptor.from_pretrained(source).eval()
    return AudioTokenAdaptor.from_reference_checkpoint(source)
