"""Inception-v1 I3D (Carreira & Zisserman, 2017) with the parameter names of the PyTorch port that
VideoGPT, TATS and MM-Diffusion load ``i3d_pretrained_400.pt`` into.

Written from the published architecture: a 7x7x7/2 stem, two 3D max-pools, nine Inception modules
(``Mixed_3b`` .. ``Mixed_5c``, each with branches ``b0``, ``b1a``/``b1b``, ``b2a``/``b2b`` and a
max-pool then ``b3b``), a ``[2, 7, 7]`` average pool and a 1x1x1 ``logits`` convolution.  Every
convolution and max-pool pads the TensorFlow "SAME" way (computed from the input size; extra padding
at the end), batch norms have ``eps=1e-3``.  Keys read ``Conv3d_1a_7x7.conv3d.weight``,
``Mixed_4b.b1b.bn.running_mean``, ``logits.conv3d.bias``, ...

The forward pass returns the pre-softmax logits averaged over time, ``(B, num_classes)``: the FVD
feature of the ``videogpt`` lineage.  Input: ``(B, 3, T, 224, 224)`` float in [-1, 1], ``T >= 9``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: (in_channels of the first module is derived) out channels of each Inception module:
#: b0, b1a, b1b, b2a, b2b, b3b.
INCEPTION = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
#: Max-pools (kernel, stride) placed before the named layer.
POOLS = {"MaxPool3d_2a_3x3": ((1, 3, 3), (1, 2, 2)), "MaxPool3d_3a_3x3": ((1, 3, 3), (1, 2, 2)),
         "MaxPool3d_4a_3x3": ((3, 3, 3), (2, 2, 2)), "MaxPool3d_5a_2x2": ((2, 2, 2), (2, 2, 2))}
ORDER = ("Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3", "Mixed_3b",
         "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f",
         "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c")


def same_padding(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
    """Pad ``(B, C, T, H, W)`` as TensorFlow's "SAME": total ``max(k - s, 0)`` where the size divides
    by the stride, else ``max(k - size % s, 0)``; half before, the rest after (zeros)."""
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """Conv3d (no bias unless ``use_bias``) with SAME padding, then BatchNorm3d(eps=1e-3) and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), use_batch_norm: bool = True, use_bias: bool = False,
                 activation: bool = True):
        super().__init__()
        self.kernel, self.stride, self.activation = tuple(kernel), tuple(stride), activation
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, stride=self.stride, padding=0, bias=use_bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01) if use_batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(same_padding(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class MaxPool3dSame(nn.Module):
    """3D max-pool with SAME (zero) padding."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(same_padding(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches concatenated on channels: 1x1; 1x1→3x3; 1x1→3x3; 3x3 max-pool→1x1."""

    def __init__(self, in_channels: int, out: tuple[int, ...]):
        super().__init__()
        self.b0 = Unit3D(in_channels, out[0])
        self.b1a, self.b1b = Unit3D(in_channels, out[1]), Unit3D(out[1], out[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(in_channels, out[3]), Unit3D(out[3], out[4], (3, 3, 3))
        self.b3a, self.b3b = MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(in_channels, out[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """I3D with the published key layout.

    Parameters
    ----------
    num_classes : int
        Logits (400 for Kinetics-400).
    in_channels : int
        Input channels (3: RGB).
    width : float
        Channel multiplier (1.0: the published network; smaller values build tiny test models with
        the same keys).
    """

    def __init__(self, num_classes: int = 400, in_channels: int = 3, width: float = 1.0):
        super().__init__()
        self.num_classes, self.width = num_classes, width

        def c(n: int) -> int:
            return max(1, int(math.ceil(n * width)))

        self.Conv3d_1a_7x7 = Unit3D(in_channels, c(64), (7, 7, 7), (2, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(c(64), c(64))
        self.Conv3d_2c_3x3 = Unit3D(c(64), c(192), (3, 3, 3))
        channels = c(192)
        for name, out in INCEPTION.items():
            out = tuple(c(n) for n in out)
            setattr(self, name, InceptionModule(channels, out))
            channels = out[0] + out[2] + out[4] + out[5]
        for name, (kernel, stride) in POOLS.items():
            setattr(self, name, MaxPool3dSame(kernel, stride))
        self.avg_pool = nn.AvgPool3d((2, 7, 7), stride=(1, 1, 1))
        self.dropout = nn.Dropout(0.5)
        self.logits = Unit3D(channels, num_classes, use_batch_norm=False, use_bias=True, activation=False)

    @classmethod
    def for_state_dict(cls, state: dict[str, torch.Tensor]) -> "InceptionI3d":
        """An untrained model shaped like the weights ``state`` holds (classes and width)."""
        stem = state["Conv3d_1a_7x7.conv3d.weight"]
        logits = state["logits.conv3d.weight"]
        return cls(num_classes=int(logits.shape[0]), in_channels=int(stem.shape[1]), width=stem.shape[0] / 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W)`` in [-1, 1] → logits averaged over time ``(B, num_classes)``."""
        for name in ORDER:
            x = getattr(self, name)(x)
        x = self.logits(self.dropout(self.avg_pool(x)))  # (B, classes, T', 1, 1)
        return x.squeeze(4).squeeze(3).mean(dim=2)
