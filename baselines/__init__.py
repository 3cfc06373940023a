"""Methods compared by the benchmark: one file each, one small interface.

A method turns a dataset clip into files on disk, ``X.mp4`` (+ ``X.wav``), which the benchmark then
scores like every other method's.  ``load`` is called once per run (its time is the method's load
time); ``generate`` once per clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from avalign.media import load_audio, probe_video, read_video_frames, write_clip
from tempotokens.data.datasets import ClipInfo


@dataclass(frozen=True)
class GenerationSettings:
    """What every generating method shares (and the span every method's clip covers)."""

    num_frames: int = 24
    fps: float = 12.0
    height: int = 384
    width: int = 384
    steps: int = 25
    guidance: float = 25.0
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    model: str | None = None
    beats: str | None = None
    adaptor: str | None = None

    @property
    def duration_s(self) -> float:
        """Seconds of every clip: ``num_frames / fps``."""
        return self.num_frames / self.fps


@dataclass
class RunContext:
    """The run's clips and settings, and models shared between methods (loaded once)."""

    clips: list[ClipInfo]
    settings: GenerationSettings
    shared: dict[str, Any] = field(default_factory=dict)


class Method(Protocol):
    name: str
    #: True for methods that synthesise video (they report model load time and memory).
    generative: bool

    def load(self, ctx: RunContext) -> None: ...

    def generate(self, clip: ClipInfo, out_mp4: Path, ctx: RunContext) -> Path: ...


def real_span(clip: ClipInfo, duration_s: float) -> tuple[np.ndarray, float]:
    """The real video's frames in ``[0, duration_s)`` at its own fps (RGB uint8) and that fps."""
    fps, total = probe_video(clip.video)
    count = max(1, int(round(duration_s * fps)))
    if total:
        count = min(count, total)
    return read_video_frames(clip.video, 0, count)


def audio_span(clip: ClipInfo, duration_s: float) -> tuple[np.ndarray, int]:
    """The clip's audio in ``[0, duration_s)`` at its own rate (zero-padded past the end)."""
    return load_audio(clip.audio or clip.video, None, start_s=0.0, duration_s=duration_s, pad=True)


def write_real(out_mp4: Path, frames: np.ndarray, fps: float, audio: np.ndarray, sr: int) -> Path:
    """Write frames with an audio span; odd sizes are cropped by one pixel for H.264."""
    h, w = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    return write_clip(out_mp4, frames[:, :h, :w], fps, audio, sr)[0]


def get_method(name: str) -> Method:
    """A method by name: ``tempotokens``, ``tempotokens_text_audio``, ``text_to_video``,
    ``ground_truth``, ``shuffled_audio``, ``static_frame`` or ``external:DIR``."""
    from . import external, ground_truth, shuffled_audio, static_frame, tempotokens_audio, tempotokens_text_audio
    from . import text_to_video

    if name.startswith("external:"):
        return external.External(name.split(":", 1)[1])
    methods = {m.name: m for m in (tempotokens_audio.TempoTokens(), tempotokens_text_audio.TempoTokensTextAudio(),
                                   text_to_video.TextToVideo(), ground_truth.GroundTruth(),
                                   shuffled_audio.ShuffledAudio(), static_frame.StaticFrame())}
    if name not in methods:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(methods)} or external:DIR")
    return methods[name]


#: Every built-in method, in table order (``external:DIR`` is added by name).
ALL_METHODS = ("tempotokens", "tempotokens_text_audio", "text_to_video", "ground_truth", "shuffled_audio",
               "static_frame")
