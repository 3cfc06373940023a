"""Methods compared by the benchmark: one file each, one small interface.

A method turns a dataset clip into files on disk, ``X.mp4`` (+ ``X.wav``), which the benchmark then
scores like every other method's.  ``load`` is called once per run (in the method's own process when
it is ``generative``, so its time and memory are its own); ``generate`` once per clip.

Each method declares its ``role`` in a table: ``"compared"`` (a system under test), ``"ceiling"``
(the real clip: what the metric gives to perfect alignment), ``"chance"`` (real video with another
clip's audio) or ``"floor"`` (no motion at all).  Reports read the role from the results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

import numpy as np

from avalign.io import load_audio, probe_video, read_video_frames, write_clip
from tempotokens.defaults import AUTHORS
from tempotokens.data.datasets import ClipInfo


@dataclass(frozen=True)
class GenerationSettings:
    """What every generating method shares (and the span every method's clip covers)."""

    num_frames: int = AUTHORS.num_frames
    fps: float = AUTHORS.fps
    height: int = AUTHORS.height
    width: int = AUTHORS.width
    steps: int = AUTHORS.steps
    guidance: float = AUTHORS.guidance
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


Role = Literal["compared", "ceiling", "chance", "floor"]
ROLES: tuple[Role, ...] = ("compared", "ceiling", "chance", "floor")


@dataclass
class RunContext:
    """The run's clips and settings, one method's loaded models (``shared``), and the profiler of the
    clip being generated (set by the runner; None when not profiling)."""

    clips: list[ClipInfo]
    settings: GenerationSettings
    shared: dict[str, Any] = field(default_factory=dict)
    profiler: Any = None

    def seed_for(self, clip: ClipInfo) -> int:
        """Clip ``i`` of the run (in dataset order, whatever the shard) is generated with ``seed + i``."""
        return self.settings.seed + [c.clip_id for c in self.clips].index(clip.clip_id)


class Output(NamedTuple):
    """What a method made for one clip: the video, and the audio to score it against (None: the
    video's sibling ``X.wav``, else its own audio track)."""

    video: Path
    audio: Path | None = None


class Method(Protocol):
    """``needs`` (optional): names of methods whose clips of the same run this one reads; the runner
    runs it after them."""

    name: str
    #: How the method's row reads in a table (see the module docstring).
    role: Role
    #: True for methods that synthesise video (they report model load time and memory).
    generative: bool
    #: True for the method the paired deltas are taken against by default (the audio-free baseline);
    #: optional, False when absent.
    reference: bool

    def load(self, ctx: RunContext) -> None: ...

    def generate(self, clip: ClipInfo, out_mp4: Path, ctx: RunContext) -> Output: ...


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


def write_real(out_mp4: Path, frames: np.ndarray, fps: float, audio: np.ndarray, sr: int) -> Output:
    """Write frames with an audio span; odd sizes are cropped by one pixel for H.264."""
    h, w = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    return Output(*write_clip(out_mp4, frames[:, :h, :w], fps, audio, sr))


def _registry() -> dict[str, Method]:
    """The one registry of the built-in methods, in table order (``external:DIR`` is made by name)."""
    from . import ground_truth, shuffled_audio, static_frame, tempotokens_audio, tempotokens_other_audio
    from . import tempotokens_text_audio, text_to_video

    methods = (tempotokens_audio.TempoTokens(), tempotokens_text_audio.TempoTokensTextAudio(),
               text_to_video.TextToVideo(), ground_truth.GroundTruth(), shuffled_audio.ShuffledAudio(),
               tempotokens_other_audio.TempoTokensOtherAudio(), static_frame.StaticFrame())
    return {m.name: m for m in methods}


def get_method(name: str) -> Method:
    """A method by name: one of :data:`ALL_METHODS`, ``external:DIR`` or ``external:DIR:own-audio``."""
    from . import external

    if name.startswith("external:"):
        folder = name.split(":", 1)[1]
        own = folder.endswith(external.OWN_AUDIO)
        folder = folder[: -len(external.OWN_AUDIO)] if own else folder
        if not folder:
            raise ValueError(f"{name!r}: external needs a folder, external:DIR")
        return external.External(folder, own_audio=own)
    methods = _registry()
    if name not in methods:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(methods)}, external:DIR "
                         "or external:DIR:own-audio")
    return methods[name]


def default_reference(names) -> str | None:
    """The method among ``names`` that declares itself the default reference of the paired deltas."""
    return next((n for n in names if getattr(_method_or_none(n), "reference", False)), None)


def _method_or_none(name: str):
    try:
        return get_method(name)
    except ValueError:  # a name found in an older run folder, or external:DIR's row name
        return None


#: Every built-in method, in table order (``external:DIR`` is added by name).
ALL_METHODS = tuple(_registry())
