"""Append-only JSONL result files that survive ``kill -9`` and resume without duplicates.

Each record is one line written with a single ``write`` on a file opened in append mode and
flushed to disk, so a killed run leaves whole lines and at most one torn last line, which
:func:`read_jsonl` drops (and :class:`JsonlWriter` truncates before appending).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from .atomic import atomic_path
from .files import disk_full


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All complete records of a JSONL file ([] when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # the torn last line of a killed run
            continue
    return records


def _complete_length(path: Path) -> int:
    """Byte length of the file up to and including its last newline."""
    data = path.read_bytes()
    return data.rfind(b"\n") + 1


class JsonlWriter:
    """Append records to a JSONL file, one durable line each.

    Parameters
    ----------
    path : path
        The file; parent folders are created.  A torn last line is truncated first.
    fsync : bool
        Flush each line to disk (survives a power loss too, not only a killed process).
    """

    def __init__(self, path: str | os.PathLike, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            keep = _complete_length(self.path)
            if keep != self.path.stat().st_size:
                os.truncate(self.path, keep)
        self.fsync = fsync
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line.  A full disk raises :class:`~avalign.io.files.DiskFullError`
        naming the file, after cutting off whatever part of the line was written."""
        line = (json.dumps(record, allow_nan=False) + "\n").encode()
        end = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(28, "short write")  # ENOSPC: the kernel took only part of the line
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            try:
                os.truncate(self.path, end)
            except OSError:
                pass
            raise disk_full(exc, self.path) from None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def rewrite_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> None:
    """Replace a JSONL file atomically (write a temporary file, then rename it over)."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        for record in records:
            f.write(json.dumps(record, allow_nan=False) + "\n")

