"""Readers for the two A2V benchmarks of ASVA (Zhang et al., ECCV 2024): AVSync15 and The Greatest Hits.

The layouts are ASVA's (its README and ``avgen/data``; facts only)::

    AVSync15/videos/<category>/<name>.mp4       AVSync15/train.txt   AVSync15/test.txt
    AVSync15/class_mapping.json                 (optional: category -> conditioning text)
    TheGreatestHits/videos/<name>.mp4           TheGreatestHits/train.txt   TheGreatestHits/test.txt

A split file lists one video per line, relative to ``videos/`` (AVSync15: ``<category>/<name>.mp4``,
the category being the first path component; The Greatest Hits: ``<name>.mp4``).  The audio is the
mp4's own track, or ``<name>.wav`` beside it.  AVSync15's label is ``class_mapping.json``'s text for
the category, else the category with ``_`` as spaces; every Greatest Hits clip is "hitting with a
stick", the one text ASVA conditions on.  A listed video that is not on disk is left out (and
counted in a log line), as :func:`~tempotokens.data.datasets.index_dataset` leaves out clips the
table names but the folder lacks.

ASVA evaluates 3 uniformly spaced 2 s clips (12 frames at 6 fps) per test video; a benchmark run
here takes each video's first span (docs: Run a benchmark, Datasets).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

GREATEST_HITS_LABEL = "hitting with a stick"
LAYOUTS = {"avsync15": "AVSync15", "greatest_hits": "TheGreatestHits"}


def _split_lines(root: Path, split: str | None, error) -> list[tuple[str, str]]:
    """``[(split, line)]`` of ``train.txt`` and/or ``test.txt``; raises ``error`` when one is missing."""
    out = []
    for name in ("train", "test") if split is None else (split,):
        path = root / f"{name}.txt"
        if not path.is_file():
            raise error(f"{path}: split file not found (one video per line, relative to videos/)")
        out += [(name, line.strip()) for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    return out


class LayoutError(ValueError):
    """A folder that is not in the layout (one line naming the file); ``index_dataset`` raises it as
    :class:`~tempotokens.data.datasets.DatasetError`."""


def index_asva(root: str | os.PathLike, layout: str, split: str | None = "test") -> tuple[list[dict], dict[str, str]]:
    """The clips of ``split`` ("train", "test", or None for both) of an AVSync15 (``layout="avsync15"``)
    or The Greatest Hits (``"greatest_hits"``) folder, in the split file's order (train first), and
    ``{clip_id: category}`` (AVSync15's folder name; The Greatest Hits' one label).  A clip is the
    fields of a :class:`~tempotokens.data.datasets.ClipInfo`.

    Raises :class:`LayoutError` for a missing folder or split file, a malformed or repeated line
    (naming the file), or an unreadable ``class_mapping.json``."""
    root = Path(root)
    videos = root / "videos"
    if not videos.is_dir():
        raise LayoutError(f"{videos}: not found ({LAYOUTS[layout]} keeps its mp4s in videos/)")
    mapping: dict[str, str] = {}
    if layout == "avsync15" and (root / "class_mapping.json").is_file():
        try:
            mapping = {str(k): str(v) for k, v in json.loads((root / "class_mapping.json").read_text()).items()}
        except (ValueError, AttributeError) as exc:
            raise LayoutError(f"{root / 'class_mapping.json'}: not a JSON object of category -> text ({exc})") from None
    clips, missing, seen, categories = [], 0, {}, {}
    for n, (name, line) in enumerate(_split_lines(root, split, LayoutError), 1):
        rel = Path(line)
        if rel.suffix.lower() != ".mp4" or rel.is_absolute() or ".." in rel.parts:
            raise LayoutError(f"{root / (name + '.txt')}: line {line!r}: expected a relative path to an .mp4 "
                               "under videos/")
        if layout == "avsync15":
            if len(rel.parts) != 2:
                raise LayoutError(f"{root / (name + '.txt')}: line {line!r}: expected <category>/<name>.mp4")
            category = rel.parts[0]
            label = mapping.get(category, category.replace("_", " "))
            clip_id = f"{category}__{rel.stem}"  # one flat name per clip (a run writes clips/<method>/<id>.mp4)
        else:
            label, clip_id = GREATEST_HITS_LABEL, rel.stem
        if clip_id in seen:  # within a split file, or in both
            raise LayoutError(f"{root / (name + '.txt')}: {line} is listed twice"
                               + (" (also in another split file)" if seen[clip_id] != name else ""))
        seen[clip_id] = name
        video = videos / rel
        if not video.is_file():
            missing += 1
            continue
        wav = video.with_suffix(".wav")
        clips.append(dict(clip_id=clip_id, video=str(video), audio=str(wav) if wav.is_file() else None,
                          label=label, split=name, caption=None))
        categories[clip_id] = rel.parts[0] if layout == "avsync15" else label
    if missing:
        logger.warning("%s: %d listed videos are not in %s (left out)", root, missing, videos)
    return clips, categories
