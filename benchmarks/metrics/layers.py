"""Small building blocks shared by the metric models (Synchformer, ImageBind)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Named(nn.Module):
    """A container that only gives its children their published names (``a.b.c`` key paths)."""

    def __init__(self, **children: nn.Module):
        super().__init__()
        for name, child in children.items():
            self.add_module(name, child)


class Mlp(nn.Module):
    """``fc2(gelu(fc1(x)))`` with exact GELU (timm's ``Mlp`` key names)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))
