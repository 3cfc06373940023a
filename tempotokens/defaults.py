"""The one home of the generation defaults: frames, rate, size, steps and guidance.

* :data:`AUTHORS`: the published inference settings (24 frames at 12 fps, 384x384, 25 DPM-Solver++
  steps, guidance 25), for a real-size model;
* :data:`TOY`: the shipped toy model's (and the random tiny model's) settings, fixed before the toy
  was trained: 24 frames at 12 fps, 32x32, 10 steps, guidance 5.

:func:`for_model` picks between them by the model folder, so ``python -m tempotokens generate`` and
``python -m benchmarks.run`` give a model the same settings.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class GenerationDefaults:
    """Generation settings: ``num_frames`` frames at ``fps`` frames/s (so ``num_frames / fps``
    seconds of audio), ``width`` x ``height`` pixels, ``steps`` denoising steps, classifier-free
    guidance ``guidance``."""

    num_frames: int
    fps: float
    height: int
    width: int
    steps: int
    guidance: float

    def as_dict(self) -> dict:
        return asdict(self)

    def given(self, size: tuple[int, int] | None = None, **values) -> "GenerationDefaults":
        """These settings with what a command line gave: every value that is not None, and ``size``
        as ``(width, height)`` pixels."""
        if size is not None:
            values.update(width=size[0], height=size[1])
        return replace(self, **{k: v for k, v in values.items() if v is not None})


AUTHORS = GenerationDefaults(num_frames=24, fps=12.0, height=384, width=384, steps=25, guidance=25.0)
TOY = GenerationDefaults(num_frames=24, fps=12.0, height=32, width=32, steps=10, guidance=5.0)
#: The ``default_size`` a toy-sized model folder declares in ``model_index.json``.
TOY_SIZE = [TOY.height, TOY.width]


def is_toy_sized(model: str | os.PathLike) -> bool:
    """True for a model folder made at the toy's size (``default_size`` 32x32 in ``model_index.json``:
    the tiny model, a toy build)."""
    try:
        return json.loads((Path(model) / "model_index.json").read_text()).get("default_size") == TOY_SIZE
    except (OSError, ValueError):
        return False


def for_model(model: str | os.PathLike | None) -> GenerationDefaults:
    """:data:`TOY` for a toy-sized model folder, else :data:`AUTHORS`; either way at the folder's own
    ``default_size`` (``model_index.json``, height x width) when it declares one."""
    base = TOY if model is not None and is_toy_sized(model) else AUTHORS
    try:
        size = json.loads((Path(model) / "model_index.json").read_text()).get("default_size") if model else None
    except (OSError, ValueError):
        size = None
    if size:
        base = replace(base, height=int(size[0]), width=int(size[1]))
    return base
