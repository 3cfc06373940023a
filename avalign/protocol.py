"""The evaluation protocol: the frame rate, frame size and span every clip is scored at.

AV-Align depends on how a clip is sampled: the match window is one frame period (±1/fps) and the
0.1 pixels/frame flow threshold depends on the resolution.  Rows of one table are only comparable
when every clip is *conformed* to the same protocol first.  :func:`conform` is the one function
that does it (the CLI, the library, the benchmark and the training data all call it or its
pieces):

* **re-timing** to ``fps``: frame ``k`` of the conformed clip is source frame
  ``floor(k * src_fps / fps + 0.5)``, for ``k = 0, 1, ...`` while that index is below the source
  frame count; its time is ``k / fps``;
* **resizing** to ``width x height``: gray first, then ``cv2.INTER_AREA`` to the smallest size that
  covers the target with the aspect ratio kept, then a center crop (:func:`cover_crop`);
* **span**: only frames with ``k / fps < duration_s`` are kept, and the audio is cut to the same
  ``duration_s`` seconds (its sample rate stays the variant's).

Frames are selected before any flow is computed, so a 30 fps clip scored at 12 fps computes the
flow of 40% of its frame pairs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable

import cv2
import numpy as np


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"WxH"`` -> ``(W, H)`` in pixels (None stays None): the one parser of every ``--size``.
    The range is the caller's to check (a model's minimum, a protocol's positive size).

    Raises
    ------
    ValueError
        ``text`` is not two integers joined by ``x``.
    """
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"--size must be WIDTHxHEIGHT (WxH) in pixels, e.g. 256x256, got {text!r}")
    return int(m.group(1)), int(m.group(2))


@dataclass(frozen=True)
class Protocol:
    """How clips are sampled before scoring; ``None`` keeps a clip's own (native) value.

    Attributes
    ----------
    fps : float or None
        Frame rate the clip is re-timed to, in frames per second.
    width, height : int or None
        Frame size after cover-and-crop, in pixels (both or neither).
    duration_s : float or None
        Span scored from the start of the clip, in seconds (video and audio alike).
    flow : str
        Optical-flow mode (:data:`avalign.core.FLOW_MODES`): ``farneback`` (the reference, exact) or
        a faster approximation.
    """

    fps: float | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    flow: str = "farneback"

    def __post_init__(self) -> None:
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"protocol fps must be positive, got {self.fps}")
        if (self.width is None) != (self.height is None):
            raise ValueError("protocol width and height go together")
        if self.width is not None and (self.width < 1 or self.height < 1):
            raise ValueError(f"protocol size must be positive, got {self.width}x{self.height}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ValueError(f"protocol span must be positive, got {self.duration_s}")
        from .core import check_flow_mode

        check_flow_mode(self.flow)

    @classmethod
    def parse(cls, fps: float | None = None, size: str | None = None,
              duration_s: float | None = None, flow: str = "farneback") -> "Protocol":
        """A protocol from command-line values: ``fps`` and ``size`` as ``"WxH"`` (e.g. ``"384x256"``)."""
        width, height = parse_size(size) or (None, None)
        return cls(fps=None if fps is None else float(fps), width=width, height=height, duration_s=duration_s,
                   flow=flow)

    @property
    def is_native(self) -> bool:
        """True when nothing is changed (the authors' scorer)."""
        return self.fps is None and self.width is None and self.duration_s is None and self.flow == "farneback"

    def to_record(self) -> dict[str, Any]:
        """``{fps, width, height, duration_s, flow}``, None where a value is native."""
        return {"fps": self.fps, "width": self.width, "height": self.height, "duration_s": self.duration_s,
                "flow": self.flow}

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> "Protocol":
        record = record or {}
        return cls(**{k: record.get(k) for k in ("fps", "width", "height", "duration_s")},
                   flow=record.get("flow") or "farneback")

    @property
    def label(self) -> str:
        """One short human-readable line, e.g. ``"12 fps, 384x384 px, 2 s"`` or ``"native fps, native size"``."""
        parts = [f"{self.fps:g} fps" if self.fps else "native fps",
                 f"{self.width}x{self.height} px" if self.width else "native size"]
        if self.duration_s is not None:
            parts.append(f"{self.duration_s:g} s")
        if self.flow != "farneback":
            parts.append(f"flow {self.flow}")
        return ", ".join(parts)


NATIVE = Protocol()


def source_index(k: int, src_fps: float, fps: float) -> int:
    """Source frame shown as frame ``k`` of a clip re-timed from ``src_fps`` to ``fps``:
    ``floor(k * src_fps / fps + 0.5)``."""
    return int(math.floor(k * src_fps / fps + 0.5))


def retime_indices(n_src: int, src_fps: float, fps: float | None) -> np.ndarray:
    """Source frame indices of every frame of the re-timed clip (all of them when ``fps`` is None).

    Frame ``k`` is source frame :func:`source_index`, for ``k = 0, 1, ...`` while that index is
    below ``n_src``.  Up-sampling repeats frames.
    """
    if fps is None:
        return np.arange(n_src)
    out = []
    k = 0
    while (i := source_index(k, src_fps, fps)) < n_src:
        out.append(i)
        k += 1
    return np.asarray(out, dtype=np.int64)


def cover_crop(frames: np.ndarray, height: int, width: int, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """Resize frames to cover ``height x width`` with the aspect ratio kept, then center-crop.

    Parameters
    ----------
    frames : np.ndarray, shape (T, H, W) or (T, H, W, C)
        uint8 frames (gray or colour).
    height, width : int
        Target size in pixels.
    interpolation : int
        OpenCV interpolation (``cv2.INTER_AREA``, the protocol's, by default).

    Returns
    -------
    np.ndarray
        The same layout with ``H, W = height, width``.  Frames already that size are returned as is.
    """
    frames = np.asarray(frames)
    h, w = frames.shape[1:3]
    if (h, w) == (height, width):
        return frames
    scale = max(height / h, width / w)
    nh, nw = max(height, int(round(h * scale))), max(width, int(round(w * scale)))
    top, left = (nh - height) // 2, (nw - width) // 2
    return np.stack([cv2.resize(np.ascontiguousarray(f), (nw, nh), interpolation=interpolation)
                     [top: top + height, left: left + width] for f in frames])


@dataclass(frozen=True)
class Conformed:
    """A clip after :func:`conform`: gray frames ``(N, H, W)`` uint8 at ``fps`` (frames/s), and the
    source frame index of each."""

    frames: np.ndarray
    fps: float
    source_indices: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


def conform(frames: Iterable[np.ndarray], src_fps: float, protocol: Protocol = NATIVE, *,
            order: str = "bgr", color: bool = False) -> Conformed:
    """Conform a clip to a protocol: re-time, convert to gray (or RGB), resize (cover and crop), cut the span.

    Parameters
    ----------
    frames : iterable of np.ndarray, each (H, W, 3) or (H, W) uint8
        The source frames in order; a lazy iterator (a decoder) is consumed only as far as needed,
        and frames that are not selected are never converted.
    src_fps : float
        Frame rate of the source, in frames per second.
    protocol : Protocol
        Target frame rate, size and span (None values keep the source's).
    order : {"bgr", "rgb"}
        Channel order of colour frames (OpenCV decodes BGR).
    color : bool
        Keep colour: frames come out ``(H, W, 3)`` RGB instead of gray (the video-quality metrics'
        input; the re-timing, resizing and span are the same).

    Returns
    -------
    Conformed
    """
    from .core import to_gray

    fps = float(protocol.fps or src_fps)
    limit = math.inf if protocol.duration_s is None else protocol.duration_s * fps
    out: list[np.ndarray] = []
    indices: list[int] = []
    want = 0  # the source index of the next conformed frame
    for i, frame in enumerate(frames):
        if len(out) >= limit - 1e-9:
            break
        if i < want:
            continue
        gray = _to_rgb(frame, order) if color else to_gray(frame, order)
        if protocol.width is not None:
            gray = cover_crop(gray[None], protocol.height, protocol.width)[0]
        while want == i and len(out) < limit - 1e-9:
            out.append(gray)
            indices.append(i)
            want = source_index(len(out), src_fps, fps) if protocol.fps else len(out)
    empty = (0, protocol.height or 0, protocol.width or 0) + ((3,) if color else ())
    frames_out = np.stack(out) if out else np.zeros(empty, np.uint8)
    return Conformed(frames=frames_out, fps=fps, source_indices=np.asarray(indices, dtype=np.int64))


def _to_rgb(frame: np.ndarray, order: str) -> np.ndarray:
    """One ``(H, W, 3)`` (``order``) or ``(H, W)`` uint8 frame as ``(H, W, 3)`` RGB."""
    if frame.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGR2RGB) if order == "bgr" else frame


def cut_audio(y: np.ndarray, sr: int, protocol: Protocol) -> np.ndarray:
    """The first ``protocol.duration_s`` seconds of ``(n,)`` or ``(channels, n)`` samples at ``sr`` Hz
    (all of them without a span; never padded)."""
    if protocol.duration_s is None:
        return y
    return y[..., : int(round(protocol.duration_s * sr))]
