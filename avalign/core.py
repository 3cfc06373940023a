"""Pure functional core of AV-Align: numpy, OpenCV and librosa only (no torch, no I/O).

The metric (Yariv et al., arXiv 2309.16429) compares *when* things happen in the two streams:

1. audio peaks: librosa onset times of the waveform, in seconds;
2. video peaks: strict local maxima of the mean optical-flow magnitude per frame, in seconds;
3. a matching of audio to video peaks within one frame period, and the IoU of the two sets.

Every function here is deterministic and takes plain arrays, so it can be tested on synthetic
signals and called from worker processes, a training loop or the CLI alike.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

#: OpenCV Farneback parameters of the reference scorer (pyr_scale, levels, winsize,
#: iterations, poly_n, poly_sigma, flags).
FARNEBACK_PARAMS = (0.5, 3, 15, 3, 5, 1.2, 0)

#: Hop length of librosa's onset envelope, in samples (librosa's default).
ONSET_HOP = 512


# --------------------------------------------------------------------------------------------
# Audio side
# --------------------------------------------------------------------------------------------
def onset_envelope(y: np.ndarray, sr: float) -> np.ndarray:
    """Onset-strength envelope of a mono waveform (librosa defaults).

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform, float.
    sr : float
        Sample rate of ``y`` in Hz.

    Returns
    -------
    np.ndarray, shape (n_frames,)
        Spectral flux per hop of :data:`ONSET_HOP` samples (frame ``k`` is at ``k * 512 / sr`` s).
    """
    import librosa  # imported lazily: librosa's import compiles numba kernels

    return librosa.onset.onset_strength(y=y, sr=sr)


def audio_peaks_from_envelope(envelope: np.ndarray, sr: float) -> np.ndarray:
    """Onset times (s) picked from an onset envelope with librosa's default peak picking.

    The envelope is normalised to [0, 1] by ``librosa.onset.onset_detect``; an all-zero or
    non-finite envelope (digital silence) gives no onsets.

    Returns
    -------
    np.ndarray, shape (n_peaks,)
        Ascending onset times in seconds, ``frame * 512 / sr``.
    """
    import librosa

    frames = librosa.onset.onset_detect(onset_envelope=envelope, sr=sr)
    return np.asarray(frames, dtype=np.int64) * ONSET_HOP / float(sr)


def audio_peaks(y: np.ndarray, sr: float) -> np.ndarray:
    """Audio peak times (s) of a mono waveform: onset envelope, then peak picking."""
    return audio_peaks_from_envelope(onset_envelope(y, sr), sr)


# --------------------------------------------------------------------------------------------
# Video side
# --------------------------------------------------------------------------------------------
def to_gray(frame: np.ndarray, order: str = "bgr") -> np.ndarray:
    """Convert one ``(H, W, 3)`` uint8 frame to ``(H, W)`` uint8 gray (OpenCV's weights).

    ``order`` is the channel order of ``frame``: ``"bgr"`` (what OpenCV decodes) or ``"rgb"``.
    A ``(H, W)`` frame is returned unchanged.
    """
    if frame.ndim == 2:
        return frame
    code = cv2.COLOR_BGR2GRAY if order == "bgr" else cv2.COLOR_RGB2GRAY
    return cv2.cvtColor(np.ascontiguousarray(frame), code)


#: Flow modes: ``farneback`` is the reference (exact); the others trade exactness for speed.  Downscaled
#: modes resize the gray frames with ``cv2.INTER_AREA`` and multiply the magnitudes back to
#: full-resolution pixels/frame, so the 0.1 threshold keeps its meaning.
FLOW_MODES = ("farneback", "farneback-half", "farneback-quarter", "dis-ultrafast", "dis-fast")
DEFAULT_FLOW = "farneback"
_SCALES = {"farneback": 1.0, "farneback-half": 0.5, "farneback-quarter": 0.25}
_DIS_PRESETS = {"dis-ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "dis-fast": cv2.DISOPTICAL_FLOW_PRESET_FAST}


def check_flow_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`FLOW_MODES`, else a ValueError naming them."""
    if mode not in FLOW_MODES:
        raise ValueError(f"unknown flow mode {mode!r}; choose one of {', '.join(FLOW_MODES)}")
    return mode


def _mean_magnitude(flow: np.ndarray) -> float:
    magnitude, _ = cv2.cartToPolar(flow[..., 0], flow[..., 1])
    return float(np.mean(magnitude, dtype=np.float64))


def flow_magnitude(prev_gray: np.ndarray, next_gray: np.ndarray) -> float:
    """Mean Farneback optical-flow magnitude between two gray frames, in pixels per frame.

    Parameters
    ----------
    prev_gray, next_gray : np.ndarray, shape (H, W), uint8

    Returns
    -------
    float
        Mean over all pixels of ``sqrt(dx**2 + dy**2)`` (resolution dependent).
    """
    return _mean_magnitude(cv2.calcOpticalFlowFarneback(prev_gray, next_gray, None, *FARNEBACK_PARAMS))


def flow_scale(mode: str) -> float:
    """The factor a flow mode downscales the frames by (1.0: full resolution)."""
    return _SCALES.get(check_flow_mode(mode), 1.0)


def pair_magnitudes(gray: Sequence[np.ndarray], start: int = 0, stop: int | None = None,
                    mode: str = DEFAULT_FLOW, full_width: int | None = None) -> np.ndarray:
    """Flow magnitude of consecutive frame pairs ``(k, k+1)`` for ``k`` in ``[start, stop)``.

    ``stop`` defaults to ``len(gray) - 1`` (every pair).  Splitting the pair range lets
    several workers share one long clip; concatenating their outputs gives the full result.
    ``mode`` is one of :data:`FLOW_MODES`; every mode returns full-resolution pixels/frame.
    ``full_width`` (px) says the frames were already decoded at a downscaled mode's working size
    (:func:`avalign.readers.read_video_for_flow`) from frames that wide: they are used as they are, and
    the magnitudes are multiplied by ``full_width / width``.

    Returns
    -------
    np.ndarray, shape (stop - start,), float64
    """
    stop = len(gray) - 1 if stop is None else stop
    if mode == DEFAULT_FLOW:
        return np.array([flow_magnitude(gray[k], gray[k + 1]) for k in range(start, stop)], dtype=np.float64)
    check_flow_mode(mode)
    frames = [np.asarray(gray[k]) for k in range(start, stop + 1)] if stop > start else []
    if mode in _DIS_PRESETS:
        dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[mode])
        return np.array([_mean_magnitude(dis.calc(a, b, None)) for a, b in zip(frames, frames[1:])], np.float64)
    if full_width is not None and frames and frames[0].shape[1] != full_width:  # decoded at the working size
        small, back = frames, full_width / frames[0].shape[1]
    else:
        scale = _SCALES[mode]
        small = [cv2.resize(f, (max(1, round(f.shape[1] * scale)), max(1, round(f.shape[0] * scale))),
                            interpolation=cv2.INTER_AREA) for f in frames]
        back = frames[0].shape[1] / small[0].shape[1] if frames else 1.0  # to full-resolution pixels
    return np.array([flow_magnitude(a, b) * back for a, b in zip(small, small[1:])], dtype=np.float64)


def flow_trajectory(pair_mags: np.ndarray) -> np.ndarray:
    """Per-frame flow trajectory of the reference: the first pair's value is duplicated.

    Parameters
    ----------
    pair_mags : np.ndarray, shape (N - 1,)
        Magnitudes of the pairs ``(0,1), (1,2), ...``.

    Returns
    -------
    np.ndarray, shape (N,)
        ``m[0] = m[1] = flow(f0, f1)`` and ``m[i] = flow(f(i-1), f(i))``; the motion between
        frames ``i-1`` and ``i`` is stamped at frame ``i``.  Empty for fewer than 2 frames.
    """
    pair_mags = np.asarray(pair_mags, dtype=np.float64)
    if pair_mags.size == 0:
        return pair_mags
    return np.concatenate([pair_mags[:1], pair_mags])


def video_peaks(trajectory: np.ndarray, fps: float, threshold: float | None = 0.1) -> np.ndarray:
    """Video peak times (s): strict local maxima of the flow trajectory.

    Index ``i`` in ``[1, N-2]`` is a peak when ``m[i-1] < m[i] > m[i+1]`` and, unless
    ``threshold`` is None, ``m[i] >= threshold``.  Plateaus never peak, and because the first
    value is duplicated, index 1 never peaks either.

    Returns
    -------
    np.ndarray, shape (n_peaks,)
        Ascending times ``i / fps`` in seconds.
    """
    m = np.asarray(trajectory, dtype=np.float64)
    if m.size < 3:
        return np.zeros(0, dtype=np.float64)
    mid = m[1:-1]
    is_peak = (m[:-2] < mid) & (mid > m[2:])
    if threshold is not None:
        is_peak &= mid >= threshold
    return (np.flatnonzero(is_peak) + 1) / float(fps)


# --------------------------------------------------------------------------------------------
# Matching and score
# --------------------------------------------------------------------------------------------
def match_peaks(
    audio: Sequence[float], video: Sequence[float], fps: float, one_to_one: bool = True
) -> list[tuple[float, float]]:
    """Greedy matching of audio to video peaks within an open window of one frame period.

    For each audio peak ``a`` (ascending), the first video peak ``v`` (ascending) with
    ``v - 1/fps < a < v + 1/fps`` is taken.  With ``one_to_one`` (the reference since
    bf0b1e3), a video peak already taken is skipped; without it (the 2023 semantics) several
    audio peaks may take the same video peak, so the IoU can exceed 1.

    Returns
    -------
    list of (audio_time, video_time) pairs, in audio order.
    """
    window = 1.0 / float(fps)
    used = [False] * len(video)
    pairs: list[tuple[float, float]] = []
    for a in audio:
        for j, v in enumerate(video):
            if v - window < a < v + window and not (one_to_one and used[j]):
                used[j] = True
                pairs.append((float(a), float(v)))
                break
    return pairs


def iou(n_matches: int, n_audio: int, n_video: int, eps: float = 0.0) -> float | None:
    """AV-Align score ``M / (|A| + |V| - M + eps)``; None when both sets are empty and eps is 0."""
    denominator = n_audio + n_video - n_matches + eps
    if denominator == 0:
        return None
    return n_matches / denominator
