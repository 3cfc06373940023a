"""File names and file errors shared by every reader and writer.

:class:`MediaError` is a bad *input* (one item: batch jobs record it and go on);
:class:`DiskFullError` is a fatal *output* problem (no space or quota left: the run stops with one
line and exit status 2, keeping what it finished).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

#: Extensions treated as videos when a folder is given.
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi")

#: ``errno`` values that mean "the disk cannot take more": no space, no quota, read-only.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def is_partial(path: str | os.PathLike) -> bool:
    """True for files an interrupted write leaves (``X.partial.mp4``, ``X.mp4.tmp``, ``.X.mp4``)."""
    name = Path(path).name
    return name.startswith(".") or ".partial." in name or name.endswith((".tmp", ".part", ".partial"))


def sibling_wav(video: str | os.PathLike) -> Path | None:
    """The ``X.wav`` next to ``X.mp4`` (the authors' layout), or None when absent."""
    wav = Path(video).with_suffix(".wav")
    return wav if wav.is_file() else None


class MediaError(RuntimeError):
    """A file that cannot be used: the message names the file and the reason, on one line."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DiskFullError(OSError):
    """An output that cannot be written because the disk (or quota) is full: one line naming the
    file.  Command-line tools exit with status 2 on it; what was written before is kept whole."""

    def __init__(self, path: str | os.PathLike, errno_value: int = errno.ENOSPC):
        self.path = str(path)
        super().__init__(errno_value, f"{self.path}: cannot write ({os.strerror(errno_value)})")

    def __reduce__(self):  # crosses process boundaries (a worker's temporary file) intact
        return type(self), (self.path, self.errno)

    def __str__(self) -> str:
        return self.strerror


def is_disk_full(exc: BaseException) -> bool:
    """True for an ``OSError`` that means the disk cannot take more (see :data:`DISK_FULL_ERRNOS`)."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def disk_full(exc: OSError, path: str | os.PathLike) -> OSError:
    """``exc`` as a :class:`DiskFullError` naming ``path`` when the disk is full, else ``exc``."""
    if isinstance(exc, DiskFullError) or not is_disk_full(exc):
        return exc
    return DiskFullError(path, exc.errno)
