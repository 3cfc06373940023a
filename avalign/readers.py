"""The metric's readers: decode a video and conform it to an evaluation protocol
(:func:`avalign.protocol.conform`), exactly as the reference scorer sees it.

* :func:`read_video_gray` is the reference-exact path (OpenCV decoding, its BGR->gray weights).
* :func:`read_video_for_flow` is the same for the exact flow mode, and a cheaper decoder for the
  fast modes, where exactness is not claimed.
* :func:`read_video_rgb` gives the conformed colour frames (the video-quality metrics, the plots).

Errors are raised as :class:`~avalign.io.MediaError` with one line naming the file and the reason.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from .io import MediaError, decoded_frames, open_capture, probe_video
from .protocol import NATIVE, Protocol, conform


@dataclass(frozen=True)
class GrayVideo:
    """Decoded video reduced to what AV-Align needs.

    Attributes
    ----------
    frames : np.ndarray, shape (N, H, W), uint8
        Gray frames (OpenCV's BGR→gray weights), in decoding order.
    fps : float
        Frame rate in frames per second, from the container (``CAP_PROP_FPS``).
    frame_shape : tuple of int
        ``(H, W, C)`` of the decoded colour frames.
    full_width : int or None
        Set by :func:`read_video_for_flow` when the frames are at a flow mode's downscaled working
        size: the width (px) of the conformed frames they stand for (pass it to
        :func:`avalign.core.pair_magnitudes`).
    """

    frames: np.ndarray
    fps: float
    frame_shape: tuple[int, int, int]
    full_width: int | None = None

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


def read_video_gray(path: str | os.PathLike, protocol: Protocol | None = None) -> GrayVideo:
    """Decode a video with OpenCV and conform it (:func:`avalign.protocol.conform`): gray frames,
    re-timed, resized and cut as ``protocol`` says (every frame, as decoded, by default).

    ``fps`` and ``frame_shape`` of the result describe the frames returned: the protocol's rate and
    size where it sets them, ``(H, W, C)`` with the decoded channel count ``C``.

    Raises
    ------
    MediaError
        If the file is missing or cannot be opened, its frame rate is 0 or not finite, or no
        frame can be decoded.
    """
    shape: list[int] = []
    with open_capture(path) as (cap, src_fps):
        clip = conform(decoded_frames(cap, shape), src_fps, protocol or NATIVE)
    if not shape or clip.n_frames == 0:
        raise MediaError(path, "no frame could be decoded")
    frame_shape = (*clip.frames.shape[1:3], shape[2] if len(shape) > 2 else 1)
    return GrayVideo(frames=clip.frames, fps=clip.fps, frame_shape=frame_shape)


def read_video_for_flow(path: str | os.PathLike, protocol: Protocol | None = None) -> GrayVideo:
    """The gray frames a protocol's flow mode needs: :func:`read_video_gray` for the exact mode
    (bit-identical to the reference); for a fast mode, where exactness is not claimed, a cheaper path:

    * PyAV decoding with FFmpeg's frame/slice threads;
    * gray straight from the decoder's luma plane (swscale, one context per clip; no colour frame is
      made);
    * for ``farneback-half``/``-quarter`` at the native size (no protocol width), the frames are
      scaled to the mode's working size inside the decoder (swscale's area filter), and
      ``full_width`` says so;
    * a video with a display rotation is read by :func:`read_video_gray` (OpenCV rotates it; the
      frames then match the exact mode's).

    Raises :class:`MediaError` like :func:`read_video_gray`.
    """
    from . import core
    protocol = protocol or NATIVE
    if protocol.flow == core.DEFAULT_FLOW:
        return read_video_gray(path, protocol)
    import av

    path = str(path)
    if not os.path.isfile(path):
        raise MediaError(path, "file not found")
    try:
        container = av.open(path)
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError(path, f"cannot open video (not a video file, or corrupt: {exc})") from None
    with container:
        if not container.streams.video:
            raise MediaError(path, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        src_fps = float(rate) if rate else 0.0
        if not math.isfinite(src_fps) or src_fps <= 0:
            raise MediaError(path, f"unreadable frame rate ({rate})")
        decoded = container.decode(stream)
        try:
            first = next(decoded)
        except (StopIteration, av.error.FFmpegError):
            raise MediaError(path, "no frame could be decoded") from None
        if getattr(first, "rotation", 0):  # OpenCV applies the display rotation; stay on its exact path
            return read_video_gray(path, protocol)
        width, height = first.width, first.height  # the decoded frames' size, not the header's
        scale = core.flow_scale(protocol.flow) if protocol.width is None else 1.0
        w, h = max(1, round(width * scale)), max(1, round(height * scale))

        from av.video.reformatter import VideoReformatter

        reformatter = VideoReformatter()  # one swscale context for the clip (frame.reformat makes one a frame)

        def luma():
            frame = first
            try:
                while frame is not None:
                    if (frame.width, frame.height) != (width, height):
                        raise MediaError(path, f"frame size changes mid-stream ({width}x{height} to "
                                               f"{frame.width}x{frame.height})")
                    yield reformatter.reformat(frame, width=w, height=h, format="gray",
                                               interpolation="AREA").to_ndarray()
                    frame = next(decoded, None)
            except av.error.FFmpegError:  # a truncated file: the frames decoded so far, as OpenCV does
                return

        clip = conform(luma(), src_fps, protocol)
    if clip.n_frames == 0:
        raise MediaError(path, "no frame could be decoded")
    full = width if scale != 1.0 else None
    shape = (*clip.frames.shape[1:3], 3) if full is None else (height, width, 3)
    return GrayVideo(frames=clip.frames, fps=clip.fps, frame_shape=shape, full_width=full)


def read_video_rgb(path: str | os.PathLike, protocol: Protocol | None = None,
                   max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a video and conform it to ``protocol`` in colour: ``(T, H, W, 3)`` uint8 RGB frames and
    their frame rate (frames/s).  The same re-timing, cover-and-crop and span as
    :func:`read_video_gray`; decoding stops after ``max_frames`` conformed frames.

    Raises
    ------
    MediaError
        As :func:`read_video_gray`.
    """
    protocol = protocol or NATIVE
    if max_frames is not None:  # stop decoding early: a span of max_frames frames at the protocol's rate
        fps, _ = probe_video(path) if protocol.fps is None else (protocol.fps, None)
        span = (max_frames - 0.5) / fps
        if protocol.duration_s is None or span < protocol.duration_s:
            protocol = Protocol(fps=protocol.fps, width=protocol.width, height=protocol.height, duration_s=span,
                                flow=protocol.flow)
    with open_capture(path) as (cap, src_fps):
        clip = conform(decoded_frames(cap, []), src_fps, protocol, color=True)
    if clip.n_frames == 0:
        raise MediaError(path, "no frame could be decoded")
    return clip.frames, clip.fps
