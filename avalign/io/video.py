"""Decoding video files with OpenCV, as the reference scorer does: the opened capture, its frames,
its rate and count.  The metric's conforming readers (:mod:`avalign.readers`) and the datasets build
on these; nothing here re-times, resizes or scores.

Errors are raised as :class:`~avalign.io.files.MediaError` with one line naming the file and the
reason.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from typing import Iterator

import cv2
import numpy as np

from .files import MediaError


@contextmanager
def open_capture(path: str | os.PathLike) -> Iterator[tuple[cv2.VideoCapture, float]]:
    """An opened ``cv2.VideoCapture`` and its frame rate, checked, released on exit."""
    path = str(path)
    if not os.path.isfile(path):
        raise MediaError(path, "file not found")
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise MediaError(path, "cannot open video (not a video file, or corrupt)")
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        if not math.isfinite(fps) or fps <= 0:
            raise MediaError(path, f"unreadable frame rate (CAP_PROP_FPS = {fps})")
        yield cap, fps
    finally:
        cap.release()


def decoded_frames(cap: cv2.VideoCapture, shape: list) -> Iterator[np.ndarray]:
    """Decoded BGR frames of an open capture, recording the first frame's shape into ``shape``."""
    while True:
        ok, frame = cap.read()
        if not ok:
            return
        if not shape:
            shape.extend(int(s) for s in frame.shape)
        yield frame


def probe_video(path: str | os.PathLike) -> tuple[float, int]:
    """Frame rate (frames/s, ``CAP_PROP_FPS``) and frame count of a video, without decoding it.

    The count is the container's (it can be off by a frame or two for some files)."""
    with open_capture(path) as (cap, fps):
        return fps, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))


def read_video_frames(path: str | os.PathLike, start: int = 0, count: int | None = None) -> tuple[np.ndarray, float]:
    """Decode ``count`` consecutive RGB frames from frame index ``start`` (all the rest if None).

    Frames before ``start`` are skipped without colour conversion.  Returns ``(T, H, W, 3)``
    uint8 RGB and the frame rate.  Raises :class:`MediaError` if fewer frames exist.
    """
    frames: list[np.ndarray] = []
    with open_capture(path) as (cap, fps):
        for _ in range(start):
            if not cap.grab():
                raise MediaError(path, f"has fewer than {start} frames")
        while count is None or len(frames) < count:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    if not frames or (count is not None and len(frames) < count):
        raise MediaError(path, f"has {start + len(frames)} frames, needs {start + (count or 1)}")
    return np.stack(frames), fps
