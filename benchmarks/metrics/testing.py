"""Random-weight stand-ins for the published metric weights, in exactly their file formats.

For tests and ``make bench`` only: numbers made with them mean nothing.  :func:`make_tiny_weights`
writes a folder ``--weights`` accepts (tiny detectors that also record how they were called);
:func:`full_size_detectors` builds full-size random I3D, C3D and CLIP ViT-B/32 for timing.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from .i3d import InceptionI3d
from .weights import WEIGHTS


class RecordingI3D(nn.Module):
    """StyleGAN-V's detector signature; appends ``[rescale, resize, return_features, is_uint8, *x.shape]``
    to ``calls`` and returns ``(B, dim)`` features of the (rescaled, resized) clip."""

    def __init__(self, dim: int = 16, seed: int = 0):
        super().__init__()
        self.calls = torch.jit.Attribute([], List[List[int]])
        self.proj = nn.Linear(3 * 2 * 2 * 2, dim)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(dim, 24, generator=torch.Generator().manual_seed(seed)))

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        self.calls.append([int(rescale), int(resize), int(return_features), int(x.dtype == torch.uint8)] + list(x.shape))
        v = x.float()
        if rescale:
            v = v / 255.0 * 2 - 1
        if resize:
            v = F.interpolate(v, size=(v.shape[2], 32, 32), mode="trilinear", align_corners=False)
        return self.proj(F.adaptive_avg_pool3d(v, (2, 2, 2)).flatten(1))


class RecordingC3D(nn.Module):
    """``c3d_ucf101.pt``'s signature; appends ``[is_uint8, *x.shape]`` to ``calls``; returns
    ``(B, classes)`` probabilities."""

    def __init__(self, classes: int = 101, seed: int = 0):
        super().__init__()
        self.calls = torch.jit.Attribute([], List[List[int]])
        self.proj = nn.Linear(3 * 2 * 4 * 4, classes)
        with torch.no_grad():
            self.proj.weight.copy_(2 * torch.randn(classes, 96, generator=torch.Generator().manual_seed(seed)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append([int(x.dtype == torch.uint8)] + list(x.shape))
        v = F.adaptive_avg_pool3d(x.float() / 255.0, (2, 4, 4)).flatten(1)
        v = (v - v.mean(dim=1, keepdim=True)) / (v.std(dim=1, keepdim=True) + 1e-3)
        return torch.softmax(self.proj(v), dim=1)


def tiny_i3d(seed: int = 0, width: float = 1 / 16) -> InceptionI3d:
    """A narrow InceptionI3d (the published keys and classes) with random weights and batch-norm stats."""
    g = torch.Generator().manual_seed(seed)
    model = InceptionI3d(width=width)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif name.endswith(("running_mean", "bias")):
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
            elif t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) / max(1, t[0].numel()) ** 0.5)
    return model.eval()


def tiny_clip(out: Path, seed: int = 0) -> Path:
    """A tiny random CLIP folder (``CLIPModel`` + ``CLIPProcessor``, 32x32 images)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from tempotokens.tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=16)
    CLIPModel(config).eval().save_pretrained(out)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(out)
    return out


def _script(module: nn.Module, path: Path) -> None:
    with warnings.catch_warnings():  # torch.jit is deprecated in torch 2.10+, and is the published format
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(module).save(str(path))


def make_tiny_weights(out_dir: str | os.PathLike, seed: int = 0, feature_dim: int = 16) -> Path:
    """A ``--weights`` folder of tiny random stand-ins, one per published file (see ``WEIGHTS``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _script(RecordingI3D(feature_dim, seed), out / WEIGHTS["styleganv"].name)
    state = {k: v for k, v in tiny_i3d(seed).state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, out / WEIGHTS["videogpt"].name)
    _script(RecordingC3D(seed=seed), out / WEIGHTS["c3d"].name)
    tiny_clip(out / WEIGHTS["clip"].name, seed)
    return out


# ------------------------------------------------------------------------------------------
# Full-size random stand-ins (timing only)
# ------------------------------------------------------------------------------------------
class ScriptedI3D(nn.Module):
    """InceptionI3d behind StyleGAN-V's signature: rescale to [-1, 1], resize to 224x224, logits.

    The network inside is traced for ``frames`` frames at 224x224 (the wrapper is scripted)."""

    def __init__(self, frames: int = 16):
        super().__init__()
        with warnings.catch_warnings():  # the padding sizes become constants of the traced shape, as intended
            warnings.simplefilter("ignore")
            self.net = torch.jit.trace(InceptionI3d().eval(), torch.zeros(1, 3, frames, 224, 224))

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        v = x.float()
        if rescale:
            v = v / 255.0 * 2 - 1
        if resize:
            v = F.interpolate(v, size=(v.shape[2], 224, 224), mode="trilinear", align_corners=False)
        logits = self.net(v)
        return logits if return_features else torch.softmax(logits, dim=1)


class C3D(nn.Module):
    """C3D (Tran et al., 2015) at full size: 8 convolutions, 5 pools, fc6/fc7 of 4096, 101 classes;
    input resized to 112x112; returns probabilities."""

    def __init__(self, classes: int = 101):
        super().__init__()
        chans = [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512), (512, 512)]
        self.convs = nn.ModuleList(nn.Conv3d(a, b, 3, padding=1) for a, b in chans)
        self.fc6, self.fc7, self.fc8 = nn.Linear(8192, 4096), nn.Linear(4096, 4096), nn.Linear(4096, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = F.interpolate(x.float(), size=(x.shape[2], 112, 112), mode="trilinear", align_corners=False)
        v = v / 255.0
        pool_after = [0, 1, 3, 5, 7]
        for i, conv in enumerate(self.convs):
            v = F.relu(conv(v))
            if i == 0:
                v = F.max_pool3d(v, (1, 2, 2), (1, 2, 2))
            elif i == 7:
                v = F.max_pool3d(v, 2, 2, padding=(0, 1, 1))
            elif i in pool_after:
                v = F.max_pool3d(v, 2, 2)
        v = F.relu(self.fc7(F.relu(self.fc6(v.flatten(1)))))
        return torch.softmax(self.fc8(v), dim=1)


def make_full_size_weights(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """A ``--weights`` folder of full-size random stand-ins (I3D twice, C3D, CLIP ViT-B/32)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from tempotokens.tiny import tiny_tokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    _script(ScriptedI3D().eval(), out / WEIGHTS["styleganv"].name)
    torch.save(InceptionI3d().state_dict(), out / WEIGHTS["videogpt"].name)
    _script(C3D().eval(), out / WEIGHTS["c3d"].name)
    tokenizer = tiny_tokenizer()  # the tokenizer's vocabulary does not change the image pass
    config = CLIPConfig(text_config=dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    CLIPModel(config).eval().save_pretrained(out / WEIGHTS["clip"].name)  # defaults: ViT-B/32, 224x224
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(out / WEIGHTS["clip"].name)
    return out
