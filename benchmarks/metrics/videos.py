"""Clips in, per-clip feature vectors out: the part every video-quality metric shares.

A metric is an :class:`Extractor`: how many frames it takes from each clip and a function from a
batch of equal-size RGB clips to ``(B, D)`` features.  :func:`extract` reads the clips (conformed to
the evaluation protocol, :func:`avalign.readers.read_video_rgb`), batches clips of equal size, and
records a clip it cannot use (unreadable, too short) with its reason instead of stopping.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from avalign.io import VIDEO_EXTENSIONS, MediaError, is_partial

from avalign.readers import read_video_rgb
from avalign.protocol import NATIVE, Protocol


@dataclass(frozen=True)
class Extractor:
    """One metric's feature pass.

    Attributes
    ----------
    kind : str
        What the features are (e.g. ``"fvd-styleganv"``); features of different kinds never mix.
    num_frames : int or None
        Frames taken from the start of each clip (all of them when None); shorter clips are refused.
    weights : str
        The weight file (or folder) used, and ``sha256`` its digest.
    fn : callable
        ``fn(clips)`` with ``clips`` a list of ``(T, H, W, 3)`` uint8 RGB arrays of one shape →
        ``(B, D)`` float features.
    batch_size : int
        Clips per call of ``fn``.
    """

    kind: str
    num_frames: int | None
    weights: str
    sha256: str
    fn: Callable[[list[np.ndarray]], np.ndarray] = field(repr=False)
    batch_size: int = 8

    def describe(self) -> dict:
        return {"kind": self.kind, "frames_per_clip": self.num_frames, "weights": self.weights,
                "weights_sha256": self.sha256}


def list_videos(folder: str | os.PathLike) -> list[Path]:
    """The videos of a folder (sorted; partial files of an interrupted write left out).

    Raises
    ------
    MediaError
        If the folder does not exist or holds no video.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MediaError(folder, "not a folder")
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and not is_partial(p))
    if not videos:
        raise MediaError(folder, f"holds no video ({', '.join(VIDEO_EXTENSIONS)})")
    return videos


def read_clip(path: str | os.PathLike, num_frames: int | None, protocol: Protocol = NATIVE) -> np.ndarray:
    """The first ``num_frames`` frames (all when None) of a clip under ``protocol``, ``(T, H, W, 3)``
    uint8 RGB; raises :class:`MediaError` for a clip that has fewer."""
    frames, fps = read_video_rgb(path, protocol, max_frames=num_frames)
    if num_frames is not None and len(frames) < num_frames:
        raise MediaError(path, f"has {len(frames)} frames under the protocol ({fps:g} fps), the metric needs "
                               f"{num_frames}")
    return frames


def extract(paths: Sequence[str | os.PathLike], extractor: Extractor, protocol: Protocol = NATIVE,
            desc: str | None = None, on_batch: Callable[[dict[str, np.ndarray]], None] | None = None,
            frame_counts: dict[str, int] | None = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Features of every clip: ``({path: (D,) features}, {path: reason})`` for used and refused clips.

    Clips are read one by one and passed to the extractor in batches of equal frame shape;
    ``on_batch`` is called with each batch's features as they are made (to save them).  A refused
    clip prints one line on stderr.  ``frame_counts`` (optional) receives the frame count of each used clip.
    """
    features: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    pending: dict[tuple, list[tuple[str, np.ndarray]]] = {}

    def flush(shape: tuple) -> None:
        batch = pending.pop(shape)
        out = np.asarray(extractor.fn([clip for _, clip in batch]), dtype=np.float64)
        if out.shape[0] != len(batch) or out.ndim != 2:
            raise ValueError(f"{extractor.kind}: the detector returned shape {out.shape} for {len(batch)} clips")
        made = {p: f for (p, _), f in zip(batch, out)}
        features.update(made)
        if on_batch is not None:
            on_batch(made)

    for path in tqdm(list(map(str, paths)), desc=desc or extractor.kind, unit="clip", leave=False,
                     disable=not sys.stderr.isatty()):
        try:
            clip = read_clip(path, extractor.num_frames, protocol)
        except MediaError as exc:
            skipped[path] = exc.reason
            print(f"{extractor.kind}: skipped {exc}", file=sys.stderr)
            continue
        if frame_counts is not None:
            frame_counts[path] = len(clip)
        pending.setdefault(clip.shape, []).append((path, clip))
        if len(pending[clip.shape]) >= extractor.batch_size:
            flush(clip.shape)
    for shape in list(pending):
        flush(shape)
    return features, skipped


def stack(features: dict[str, np.ndarray], order: Iterable[str]) -> np.ndarray:
    """``(N, D)`` features in ``order`` (paths without features left out)."""
    rows = [features[p] for p in order if p in features]
    return np.stack(rows) if rows else np.zeros((0, 0))
