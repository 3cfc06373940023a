"""The per-clip work and bookkeeping that every executor shares: one clip-assembly path.

A clip is scored in three kinds of pieces, wherever they run (this process, a local worker pool,
Ray tasks):

* :func:`prepare_clip` decodes and conforms the video and computes the flow of its first
  ``chunk_pairs`` frame pairs (a worker's task);
* :func:`chunk_magnitudes` computes the flow of a further range of pairs of a long clip;
* :class:`ClipState` collects the pieces in the parent (the audio analysis, the prepared clip, the
  chunks, the seconds spent) and, once nothing is missing, assembles peaks, matching and score with
  :func:`avalign.score.assemble`, the serial path's own code, so every executor gives the same
  records to the last bit.

:mod:`avalign.local_executor` and :mod:`avalign.ray_executor` import from here, never from each other.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import core
from .protocol import Protocol
from .readers import read_video_for_flow
from .score import (AudioAnalysis, AVAlignResult, analyze_audio_file, assemble, audio_error, error_reason,
                    error_result, resolve_audio)
from .variants import Variant


@dataclass(frozen=True)
class Job:
    """One clip to score: a video and, optionally, an explicit audio file."""

    video: str
    audio: str | None = None


class ExecutorError(RuntimeError):
    """The executor cannot run at all (Ray missing or unreachable, a bad option): one line."""


@dataclass
class PreparedClip:
    """What a prepare task returns: the decoded clip's description and its first flow magnitudes.

    ``frames_ref`` is where an executor keeps the gray frames for the chunk tasks (a ``.npy`` path
    for the local pool; unused by Ray, which passes an object reference).
    """

    seconds: float
    error: str | None = None
    fps: float = 0.0
    n_frames: int = 0
    frame_shape: tuple[int, ...] = ()
    first_mags: np.ndarray | None = None
    frames_ref: str | None = None
    full_width: int | None = None  #: the frames are at a fast flow mode's working size (GrayVideo.full_width)


def prepare_clip(job: Job, chunk_pairs: int, protocol: Protocol) -> tuple[PreparedClip, np.ndarray | None]:
    """Decode and conform a clip and compute the flow of its first ``chunk_pairs`` pairs; returns the
    description and the gray frames ``(N, H, W)`` uint8 (None on error).  A bad clip is described,
    never raised: the batch goes on."""
    start = time.perf_counter()
    crash = os.environ.get("_AVALIGN_CRASH_ON")  # fault injection for the tests: kill this worker
    if crash and crash in job.video:
        os._exit(1)
    slow = os.environ.get("_AVALIGN_SLOW_ON")  # fault injection: a task that outlasts any stop bound
    if slow and slow in job.video:
        time.sleep(120)
    try:
        clip = read_video_for_flow(job.video, protocol)  # conformed: frames are selected before any flow
        first = min(max(clip.n_frames - 1, 0), chunk_pairs)
        mags = core.pair_magnitudes(clip.frames, 0, first, mode=protocol.flow, full_width=clip.full_width)
    except Exception as exc:  # the batch goes on; the reason is recorded
        return PreparedClip(time.perf_counter() - start, error=error_reason(job.video, exc)), None
    return PreparedClip(time.perf_counter() - start, fps=clip.fps, n_frames=clip.n_frames,
                        frame_shape=clip.frame_shape, first_mags=mags, full_width=clip.full_width), clip.frames


def chunk_magnitudes(frames: np.ndarray, start: int, stop: int, flow: str = core.DEFAULT_FLOW,
                     full_width: int | None = None) -> tuple[np.ndarray, float]:
    """Flow magnitudes of pairs ``[start, stop)`` of ``frames`` and the seconds they took."""
    t0 = time.perf_counter()
    return core.pair_magnitudes(frames, start, stop, mode=flow, full_width=full_width), time.perf_counter() - t0


def chunk_ranges(prepared: PreparedClip, chunk_pairs: int) -> list[tuple[int, int]]:
    """The ``(start, stop)`` pair ranges still to compute after a prepare task."""
    n_pairs, first = prepared.n_frames - 1, len(prepared.first_mags)
    return [(s, min(s + chunk_pairs, n_pairs)) for s in range(first, n_pairs, chunk_pairs)]


class ExecutorRun:
    """What both executors' batch runs share: ``clips`` (index -> :class:`ClipState`), and the
    parent's audio step; each executor supplies ``_fail`` and ``_try_finish``."""

    clips: Any
    variant: Variant
    protocol: Protocol

    def _analyze_audio(self, idx: int):
        """Analyse clip ``idx``'s audio in this process; yields its result if it is now complete."""
        clip = self.clips[idx]
        if clip.done:
            return
        error = clip.analyze_audio(self.variant, self.protocol)
        if error is not None:
            yield self._fail(idx, error)
            return
        yield from self._try_finish(idx)


@dataclass
class ClipState:
    """The parent's view of one clip while its pieces are in flight."""

    job: Job
    audio_path: str | None
    audio: AudioAnalysis | None = None
    prepared: PreparedClip | None = None
    frames: Any = None  #: where the executor keeps the gray frames for chunk tasks
    chunks: dict[int, np.ndarray] = field(default_factory=dict)
    missing: int = 0
    seconds: float = 0.0
    done: bool = False

    @classmethod
    def for_job(cls, job: Job) -> "ClipState":
        return cls(job, resolve_audio(job.video, job.audio))

    def analyze_audio(self, variant: Variant, protocol: Protocol) -> str | None:
        """Analyse the clip's audio (in the parent); returns the error reason, None when it worked."""
        start = time.perf_counter()
        try:
            self.audio = analyze_audio_file(self.audio_path or self.job.video, variant, protocol)
        except Exception as exc:
            return audio_error(self.job.video, self.audio_path, exc)
        self.seconds += time.perf_counter() - start
        return None

    def add_prepared(self, prepared: PreparedClip, chunk_pairs: int) -> list[tuple[int, int]]:
        """Record a prepare task's outcome; returns the chunk ranges to submit (none on error)."""
        self.prepared = prepared
        self.seconds += prepared.seconds
        if prepared.error is not None:
            return []
        self.chunks[0] = prepared.first_mags
        ranges = chunk_ranges(prepared, chunk_pairs)
        self.missing = len(ranges)
        return ranges

    def add_chunk(self, start: int, mags: np.ndarray, seconds: float) -> None:
        self.chunks[start] = mags
        self.missing -= 1
        self.seconds += seconds

    @property
    def ready(self) -> bool:
        """Every piece is in: the clip can be assembled."""
        return (not self.done and self.prepared is not None and self.prepared.error is None
                and self.audio is not None and self.missing == 0)

    def reset(self) -> None:
        """Forget the pieces in flight (a worker died): the clip is prepared again."""
        self.prepared, self.frames, self.chunks, self.missing = None, None, {}, 0

    def finish(self, variant: Variant, protocol: Protocol, empty_score: float | None) -> AVAlignResult:
        """The clip's result from its pieces (call when :attr:`ready`); marks it done."""
        p = self.prepared
        mags = np.concatenate([self.chunks[s] for s in sorted(self.chunks)])
        self.done, self.chunks, self.frames = True, {}, None
        return assemble(self.job.video, self.audio_path, variant, p.fps, p.n_frames, mags, self.audio,
                        protocol=protocol, frame_shape=p.frame_shape, empty_score=empty_score,
                        seconds=self.seconds)

    def fail(self, variant: Variant, protocol: Protocol, reason: str) -> AVAlignResult:
        """An error result naming ``reason``; marks the clip done."""
        self.done, self.chunks, self.frames = True, {}, None
        return error_result(self.job.video, self.audio_path, variant, reason, protocol)
