"""Dataset readers for the reference's on-disk layouts, and the training/evaluation dataset.

Layout (VGGSound, Landscape, AudioSet-Drum and the synthetic set alike)::

    ROOT/video/<name>.mp4        ROOT/audio/<name>.wav       ROOT/<dataset>.csv

``<name>`` is the CSV's ``ytid`` or starts with ``<ytid>_`` (VGGSound's ``<ytid>_<start>_<end>``;
AudioSet-Drum's integer ids as ``578.mp4``).  A clip without ``audio/<name>.wav`` uses its mp4's own
audio track; a folder without ``video/`` is searched for mp4s directly.  The CSV has the columns
``ytid,start_time,class,set`` (a header row), or is VGGSound's official header-less
``ytid, start_seconds, label, split``.  A ``<name>.txt`` beside a video is its caption.

``avsync15`` and ``greatest_hits`` read ASVA's layouts of those benchmarks (:mod:`tempotokens.data.asva`:
``videos/`` and ``train.txt``/``test.txt``).  The ``folder`` dataset is any folder of clips: every
``*.mp4`` in it (or in its ``video/``) is a test clip, with ``<name>.wav`` beside it, or
``audio/<name>.wav``, or else its own audio track, and ``<name>.txt`` as an optional caption.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from avalign.io import MediaError, load_audio, probe_video, read_video_frames
from avalign.protocol import cover_crop, source_index

logger = logging.getLogger(__name__)

#: CSV file name per dataset (the reference's names).
CSV_NAMES = {"vggsound": "vggsound.csv", "landscape": "landscape.csv", "audioset_drum": "audioset-drum.csv",
             "synthetic": "synthetic.csv"}
#: Every dataset :func:`index_dataset` reads (``avsync15`` and ``greatest_hits``: ASVA's split files;
#: ``folder`` needs no table).
DATASETS = (*CSV_NAMES, "avsync15", "greatest_hits", "folder")


class DatasetError(ValueError):
    """A dataset that cannot be read at all (missing root or CSV): one line naming the path."""


@dataclass(frozen=True)
class ClipInfo:
    """One clip of a dataset: files, label and split."""

    clip_id: str
    video: str
    audio: str | None
    label: str
    split: str
    caption: str | None = None


def read_split_table(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows ``{ytid, start_time, class, set}`` of a split table (with or without a header row)."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        return []
    header = [c.strip().lower() for c in rows[0]]
    if {"ytid", "class", "set"} <= set(header):
        idx = {k: header.index(k) for k in ("ytid", "class", "set")}
        start = header.index("start_time") if "start_time" in header else None
        body = rows[1:]
    else:  # VGGSound's official header-less table
        idx, start, body = {"ytid": 0, "class": 2, "set": 3}, 1, rows
    return [{"ytid": r[idx["ytid"]].strip(), "start_time": r[start].strip() if start is not None else "0",
             "class": r[idx["class"]].strip(), "set": r[idx["set"]].strip()} for r in body]


class _IdsOnly(pickle.Unpickler):
    """Unpickle a plain list/set of strings and nothing else (the reference's filter lists)."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a filter list")


def read_id_list(path: str | os.PathLike) -> set[str]:
    """YouTube ids from a pickled list (``unmatch_videos.pkl``) or a text file (one per line)."""
    path = Path(path)
    if path.suffix == ".pkl":
        with open(path, "rb") as f:
            ids = _IdsOnly(f).load()
        return {str(i) for i in ids}
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def index_dataset(
    root: str | os.PathLike,
    dataset: str,
    split: str | None = "train",
    csv_path: str | os.PathLike | None = None,
    classes: Sequence[str] | None = None,
    exclude_ids: Iterable[str] = (),
) -> list[ClipInfo]:
    """The clips of one split that exist on disk, sorted by id (ASVA's layouts: in their split
    files' order).

    Parameters
    ----------
    root : folder of the layout above
    dataset : one of :data:`DATASETS` (selects the default CSV name; ``folder`` reads any folder)
    split : "train", "test", or None for both
    csv_path : the split table (default ``ROOT/<csv name>``)
    classes : keep only these labels (default: all; the reference kept one class by mistake); for
        AVSync15 a category folder name works too
    exclude_ids : ytids to drop (VGGSound's ``unmatch_videos.pkl``)

    Raises
    ------
    DatasetError
        When ``root`` or the CSV is missing.
    """
    root = Path(root)
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if not root.is_dir():
        raise DatasetError(f"{root}: data root not found")
    if dataset == "folder":  # a folder has no split: every split is the whole folder
        return index_folder(root)
    if dataset in ("avsync15", "greatest_hits"):
        from .asva import LayoutError, index_asva

        try:
            rows, categories = index_asva(root, dataset, split)  # the split file's order, not sorted by id
        except LayoutError as exc:
            raise DatasetError(str(exc)) from None
        clips = [ClipInfo(**r) for r in rows]
        return [c for c in clips if (classes is None or c.label in classes or categories[c.clip_id] in classes)
                and c.clip_id not in set(exclude_ids)]
    table_path = Path(csv_path or root / CSV_NAMES[dataset])
    if not table_path.is_file():
        raise DatasetError(f"{table_path}: split table (CSV) not found")
    table = read_split_table(table_path)
    exclude = set(exclude_ids)
    wanted = {r["ytid"]: r for r in table if (split is None or r["set"] == split)
              and (classes is None or r["class"] in classes) and r["ytid"] not in exclude}
    video_dir = root / "video" if (root / "video").is_dir() else root
    clips = []
    for video in sorted(video_dir.glob("*.mp4")):
        name = video.stem
        row = wanted.get(name) or wanted.get(name[:11]) or wanted.get(name.split("_")[0])
        if row is None:
            continue
        wav = root / "audio" / f"{name}.wav"
        caption = video.with_suffix(".txt")
        clips.append(ClipInfo(
            clip_id=name, video=str(video), audio=str(wav) if wav.is_file() else None, label=row["class"],
            split=row["set"], caption=caption.read_text().strip() if caption.is_file() else None,
        ))
    return clips


def index_folder(root: str | os.PathLike) -> list[ClipInfo]:
    """Every ``*.mp4`` of a folder (or of its ``video/``), sorted by name: the clips of every split
    (score them, or train or fit a VAE on them).

    The audio is ``<name>.wav`` beside the video, else ``ROOT/audio/<name>.wav``, else the video's own
    track (``audio=None``); ``<name>.txt`` is the caption, and also the label (the file name otherwise,
    with ``_`` as spaces), so text-conditioned methods get a prompt.
    """
    root = Path(root)
    video_dir = root / "video" if (root / "video").is_dir() else root
    clips = []
    for video in sorted(video_dir.glob("*.mp4")):
        wav = next((w for w in (video.with_suffix(".wav"), root / "audio" / f"{video.stem}.wav") if w.is_file()), None)
        txt = video.with_suffix(".txt")
        caption = txt.read_text().strip() if txt.is_file() else None
        clips.append(ClipInfo(clip_id=video.stem, video=str(video), audio=str(wav) if wav else None,
                              label=caption or video.stem.replace("_", " "), split="test", caption=caption))
    return clips


class AudioVideoClips(torch.utils.data.Dataset):
    """``num_frames`` frames and exactly the audio span they cover.

    With ``fps`` None (the authors' way) the frames are consecutive native frames; with ``fps`` they
    are sampled by timestamp with the AV-Align protocol's re-timing rule: frame ``k`` is source frame
    ``start + floor(k * src_fps / fps + 0.5)`` (:func:`avalign.protocol.source_index`), so training
    sees the time scale generation uses.  The audio span starts at ``start / src_fps`` and lasts
    ``num_frames / fps`` seconds (``num_frames / src_fps`` without ``fps``).

    An item is a dict: ``pixel_values`` ``(N, 3, H, W)`` float in [-1, 1], ``audio`` ``(S,)`` float32
    at ``sample_rate``, ``clip_id``, ``label``, ``prompt``, ``fps`` (of the frames), ``start_frame``.
    A clip with a media problem (unreadable, too short, no audio: :class:`~avalign.io.MediaError`)
    gives ``{"clip_id", "error"}`` instead; the collate function drops it and the trainer logs the
    reason — it is never replaced by another clip.  Any other exception (a missing dependency, a
    programming error) propagates and stops the run.

    ``prompt`` is a template (``{label}``: the clip's class) for clips without a caption; without one
    they get ``fallback_prompt``.

    ``random_start`` draws the first frame from ``(seed, epoch, index)`` (set :attr:`epoch` before
    each epoch), so a run is reproducible and resumable; otherwise clips start at frame 0.

    ``audio=False`` (text-only training) reads no audio: silent clips are usable and ``audio`` is
    an empty tensor.
    """

    def __init__(self, clips: Sequence[ClipInfo], num_frames: int, height: int, width: int,
                 sample_rate: int = 16000, random_start: bool = True, seed: int = 0,
                 fallback_prompt: str = "<temp> <local1> <local2> <local3> <local4> <class>",
                 fps: float | None = None, prompt: str | None = None, audio: bool = True):
        self.clips, self.num_frames, self.height, self.width = list(clips), num_frames, height, width
        self.audio = audio
        self.sample_rate, self.random_start, self.seed, self.epoch = sample_rate, random_start, seed, 0
        self.fallback_prompt, self.fps, self.prompt = fallback_prompt, fps, prompt

    def prompt_for(self, clip: ClipInfo) -> str:
        """The clip's caption, else the ``prompt`` template with its label, else ``fallback_prompt``."""
        if clip.caption:
            return clip.caption
        return self.prompt.format(label=clip.label) if self.prompt is not None else self.fallback_prompt

    def __len__(self) -> int:
        return len(self.clips)

    def offsets(self, src_fps: float) -> list[int]:
        """Source-frame offsets of the item's frames from its first frame."""
        if self.fps is None:
            return list(range(self.num_frames))
        return [source_index(k, src_fps, self.fps) for k in range(self.num_frames)]

    def start_frame(self, index: int, n_frames: int, span: int | None = None) -> int:
        """First source frame of item ``index``: 0, or drawn from ``(seed, epoch, index)`` among the
        starts that leave ``span`` source frames (default ``num_frames``)."""
        span = self.num_frames if span is None else span
        if not self.random_start or n_frames <= span:
            return 0
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return int(rng.integers(0, n_frames - span + 1))

    def __getitem__(self, index: int) -> dict:
        clip = self.clips[index]
        try:
            src_fps, n_frames = probe_video(clip.video)
            offsets = self.offsets(src_fps)
            fps = self.fps or src_fps
            # the source frames the item needs: its last frame, and the audio's whole duration
            span = max(offsets[-1] + 1, math.ceil(self.num_frames / fps * src_fps - 1e-6))
            if n_frames and n_frames < span:
                raise MediaError(clip.video, f"has {n_frames} frames, needs {span}")
            start = self.start_frame(index, n_frames, span)
            frames, src_fps = read_video_frames(clip.video, start, span)
            frames = frames[offsets]
            audio = np.zeros(0, np.float32) if not self.audio else load_audio(
                clip.audio or clip.video, self.sample_rate, start_s=start / src_fps, duration_s=self.num_frames / fps)[0]
        except MediaError as exc:  # recorded by the caller, never replaced by another clip
            return {"clip_id": clip.clip_id, "error": " ".join(str(exc).split())}
        pixels = cover_crop(frames, self.height, self.width)  # the AV-Align protocol's own resize
        pixels = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return {"pixel_values": pixels, "audio": torch.from_numpy(audio), "clip_id": clip.clip_id,
                "label": clip.label, "prompt": self.prompt_for(clip), "fps": fps, "start_frame": start}


def collate(items: list[dict]) -> dict:
    """Stack usable items; pad audio to the longest with ``audio_padding_mask`` (True = padding);
    list the others under ``skipped`` as ``(clip_id, reason)``."""
    good = [it for it in items if "error" not in it]
    batch: dict = {"skipped": [(it["clip_id"], it["error"]) for it in items if "error" in it]}
    if not good:
        return batch
    n = max(len(it["audio"]) for it in good)
    audio = torch.zeros(len(good), n)
    mask = torch.ones(len(good), n, dtype=torch.bool)
    for i, it in enumerate(good):
        audio[i, : len(it["audio"])] = it["audio"]
        mask[i, : len(it["audio"])] = False
    batch.update(pixel_values=torch.stack([it["pixel_values"] for it in good]), audio=audio,
                 audio_padding_mask=mask, **{k: [it[k] for it in good] for k in
                                             ("clip_id", "label", "prompt", "fps", "start_frame")})
    return batch
