"""Scoring one clip: from files or in-memory arrays to an :class:`AVAlignResult`.

The work is split into three steps that worker processes can run separately:
:func:`analyze_audio` (onset peaks), the flow of frame pairs (:func:`avalign.core.pair_magnitudes`)
and :func:`assemble` (peaks, matching and score), so that serial and parallel scoring run the
very same code.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from . import core
from .io import MediaError, read_audio, sibling_wav, to_mono_resampled
from .readers import read_video_for_flow
from .protocol import NATIVE, Protocol, conform, cut_audio
from .variants import DEFAULT_VARIANT, Variant, get_variant

Status = Literal["ok", "undefined", "error"]


@dataclass(frozen=True)
class AudioAnalysis:
    """Audio side of one clip: onset envelope and peaks at the analysis rate ``sr`` (Hz)."""

    sr: int
    envelope: np.ndarray
    peaks: np.ndarray


@dataclass(frozen=True)
class AVAlignResult:
    """AV-Align of one clip.

    ``score`` is the IoU of matched peaks (None when undefined and not mapped by
    ``empty_score``, or on error).  Times are in seconds.  ``protocol`` is how the clip was
    conformed before scoring, and ``fps``, ``n_frames`` and ``frame_shape`` describe the frames
    actually scored.  ``onset_envelope`` is kept for plotting and left out of :meth:`to_record`
    unless asked for.
    """

    video: str
    audio: str | None
    variant: str
    status: Status
    protocol: Protocol = NATIVE
    score: float | None = None
    error: str | None = None
    fps: float | None = None
    n_frames: int | None = None
    frame_shape: tuple[int, ...] | None = None
    audio_sr: int | None = None
    audio_peaks: tuple[float, ...] = ()
    video_peaks: tuple[float, ...] = ()
    matches: tuple[tuple[float, float], ...] = ()
    flow_trajectory: tuple[float, ...] = ()
    seconds: float | None = None
    onset_envelope: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def n_matches(self) -> int:
        return len(self.matches)

    def to_record(self, envelope: bool = False) -> dict[str, Any]:
        """JSON-serialisable record (one line of the CLI's ``--out`` JSONL); with ``envelope``,
        the onset envelope too (``onset_envelope``, one value per 512-sample hop), for plots."""
        record = asdict(self)
        record.pop("onset_envelope")
        record["protocol"] = self.protocol.to_record()
        if envelope and self.onset_envelope is not None:
            record["onset_envelope"] = [float(x) for x in self.onset_envelope]
        for key in ("audio_peaks", "video_peaks", "flow_trajectory", "frame_shape"):
            record[key] = list(record[key]) if record[key] is not None else None
        record["matches"] = [list(m) for m in self.matches]
        record["n_matches"] = self.n_matches
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "AVAlignResult":
        """Inverse of :meth:`to_record` (the onset envelope when it was stored)."""
        kwargs = {k: record.get(k) for k in cls.__dataclass_fields__}
        kwargs["protocol"] = Protocol.from_record(record.get("protocol"))
        if kwargs["onset_envelope"] is not None:
            kwargs["onset_envelope"] = np.asarray(kwargs["onset_envelope"], dtype=np.float64)
        for key in ("audio_peaks", "video_peaks", "flow_trajectory"):
            kwargs[key] = tuple(kwargs[key] or ())
        kwargs["matches"] = tuple(tuple(m) for m in kwargs["matches"] or ())
        if kwargs["frame_shape"] is not None:
            kwargs["frame_shape"] = tuple(kwargs["frame_shape"])
        return cls(**kwargs)


def error_result(video: str, audio: str | None, variant: Variant, reason: str,
                 protocol: Protocol = NATIVE) -> AVAlignResult:
    """A result with ``status="error"`` and a one-line reason."""
    return AVAlignResult(video=str(video), audio=audio, variant=variant.name, status="error", protocol=protocol,
                         error=" ".join(reason.split()))


def analyze_audio(y: np.ndarray, sr: int, variant: Variant, protocol: Protocol = NATIVE) -> AudioAnalysis:
    """Onset envelope and peaks of a waveform cut to the protocol's span, after the variant's mono
    mix and resampling.

    Parameters
    ----------
    y : np.ndarray
        ``(n,)`` or ``(channels, n)`` float samples in [-1, 1].
    sr : int
        Sample rate of ``y`` in Hz.
    """
    y = cut_audio(np.asarray(y, dtype=np.float32), int(sr), protocol)
    y, sr = to_mono_resampled(y, int(sr), variant.audio_sr)
    envelope = core.onset_envelope(y, sr)
    return AudioAnalysis(sr=sr, envelope=envelope, peaks=core.audio_peaks_from_envelope(envelope, sr))


def analyze_audio_file(path: str | os.PathLike, variant: Variant, protocol: Protocol = NATIVE) -> AudioAnalysis:
    """:func:`analyze_audio` of an audio file or of a container's audio track."""
    y, sr = read_audio(path)
    return analyze_audio(y, sr, variant, protocol)


def error_reason(path: str | os.PathLike, exc: BaseException) -> str:
    """One line naming the file and the reason, for any exception."""
    if isinstance(exc, MediaError):
        return str(exc)
    return f"{path}: {type(exc).__name__}: {exc}"


def audio_error(video: str, audio_path: str | None, exc: BaseException) -> str:
    """One line naming the clip and, when it is another file, its audio file, and the reason."""
    reason = error_reason(audio_path or video, exc)
    return reason if audio_path is None else f"{video}: its audio {reason}"


def resolve_audio(video: str | os.PathLike, audio: str | os.PathLike | None = None) -> str | None:
    """The audio source for a video: ``audio`` if given, else the sibling ``X.wav``, else None
    (meaning the video container's own audio track)."""
    if audio is not None:
        return str(audio)
    wav = sibling_wav(video)
    return str(wav) if wav is not None else None


def assemble(
    video: str,
    audio: str | None,
    variant: Variant,
    fps: float,
    n_frames: int,
    pair_mags: np.ndarray,
    audio_analysis: AudioAnalysis,
    *,
    protocol: Protocol = NATIVE,
    frame_shape: tuple[int, ...] | None = None,
    empty_score: float | None = None,
    seconds: float | None = None,
) -> AVAlignResult:
    """Peaks, matching and score from the per-pair flow magnitudes and the audio analysis.

    ``fps`` is the rate of the frames the flow was computed on (the protocol's, when it sets one).
    ``empty_score`` replaces the score of a clip with no peak in either stream (whose status
    stays ``"undefined"``); by default such a score is None.
    """
    trajectory = core.flow_trajectory(pair_mags)
    v_peaks = core.video_peaks(trajectory, fps, variant.flow_threshold)
    a_peaks = audio_analysis.peaks
    matches = core.match_peaks(a_peaks, v_peaks, fps, one_to_one=variant.one_to_one)
    if len(a_peaks) == 0 and len(v_peaks) == 0:
        status: Status = "undefined"
        score = empty_score
    else:
        status = "ok"
        score = core.iou(len(matches), len(a_peaks), len(v_peaks), variant.iou_eps)
    return AVAlignResult(
        video=str(video),
        audio=audio,
        variant=variant.name,
        status=status,
        protocol=protocol,
        score=score,
        fps=float(fps),
        n_frames=int(n_frames),
        frame_shape=tuple(frame_shape) if frame_shape is not None else None,
        audio_sr=audio_analysis.sr,
        audio_peaks=tuple(float(t) for t in a_peaks),
        video_peaks=tuple(float(t) for t in v_peaks),
        matches=tuple(matches),
        flow_trajectory=tuple(float(m) for m in trajectory),
        seconds=seconds,
        onset_envelope=audio_analysis.envelope,
    )


def score_arrays(
    frames: np.ndarray,
    fps: float,
    waveform: np.ndarray,
    sample_rate: int,
    variant: str | Variant = DEFAULT_VARIANT,
    *,
    protocol: Protocol = NATIVE,
    channel_order: Literal["rgb", "bgr"] = "rgb",
    empty_score: float | None = None,
    name: str = "<array>",
) -> AVAlignResult:
    """AV-Align of in-memory frames and waveform (e.g. a generated clip before it is written).

    Parameters
    ----------
    frames : np.ndarray, shape (N, H, W, 3) or (N, H, W), uint8
        Video frames; colour frames are converted to gray with OpenCV's weights.
    fps : float
        Frame rate of ``frames`` in frames per second.
    waveform : np.ndarray, shape (n,) or (channels, n)
        Audio samples in [-1, 1].
    sample_rate : int
        Sample rate of ``waveform`` in Hz.
    protocol : Protocol
        Frame rate, size and span to conform the clip to first (:func:`avalign.protocol.conform`);
        by default the frames are scored as given.
    channel_order : {"rgb", "bgr"}
        Channel order of colour ``frames``.

    Notes
    -----
    Frames written to an mp4 are compressed, so the score of the written file can differ
    slightly from the score of the frames it was made from.
    """
    start = time.perf_counter()
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if not fps or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    variant = get_variant(variant)
    clip = conform(frames, fps, protocol, order=channel_order)
    mags = core.pair_magnitudes(clip.frames, mode=protocol.flow)
    audio_analysis = analyze_audio(waveform, sample_rate, variant, protocol)
    shape = (*clip.frames.shape[1:3], *frames.shape[3:])
    return assemble(
        name, None, variant, clip.fps, clip.n_frames, mags, audio_analysis, protocol=protocol,
        frame_shape=shape, empty_score=empty_score, seconds=time.perf_counter() - start,
    )


def score_file(
    video: str | os.PathLike,
    audio: str | os.PathLike | None = None,
    variant: str | Variant = DEFAULT_VARIANT,
    *,
    protocol: Protocol = NATIVE,
    empty_score: float | None = None,
) -> AVAlignResult:
    """AV-Align of one video file, never raising for a bad file.

    The audio is ``audio`` if given, else the sibling ``X.wav`` of ``X.mp4`` when present (the
    authors' layout), else the video container's own audio track.  The clip is conformed to
    ``protocol`` first (by default it is scored as decoded, like the authors' scorer).  A file that
    cannot be used gives ``status="error"`` with a one-line reason.
    """
    start = time.perf_counter()
    video = str(video)
    variant = get_variant(variant)
    audio_path = resolve_audio(video, audio)
    try:
        clip = read_video_for_flow(video, protocol)
        mags = core.pair_magnitudes(clip.frames, mode=protocol.flow, full_width=clip.full_width)
    except Exception as exc:  # a batch never dies on one clip
        return error_result(video, audio_path, variant, error_reason(video, exc), protocol)
    try:
        audio_analysis = analyze_audio_file(audio_path or video, variant, protocol)
    except Exception as exc:
        return error_result(video, audio_path, variant, audio_error(video, audio_path, exc), protocol)
    return assemble(
        video, audio_path, variant, clip.fps, clip.n_frames, mags, audio_analysis, protocol=protocol,
        frame_shape=clip.frame_shape, empty_score=empty_score, seconds=time.perf_counter() - start,
    )
