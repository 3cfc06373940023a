"""One live run per output: an advisory lock beside the ``--out`` file or inside the run folder.

The lock is an ``flock`` on ``NAME.lock`` holding the owner's pid.  The kernel releases it when the
owning process ends, however it ends (``kill -9`` included), so a dead run never leaves it stuck: the
file may stay, the lock does not.  A second run into the same output is refused with one line naming
the live run's pid.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .files import disk_full


class LockedError(RuntimeError):
    """The output is held by another live run (one line; command-line tools exit with status 2)."""


class RunLock:
    """Hold the lock ``path`` for the life of this object (or of a ``with`` block).

    Parameters
    ----------
    path : path
        The lock file, e.g. ``R.jsonl.lock`` or ``RUN/.lock``; parent folders are created.
    what : path, optional
        The output it guards, named in the refusal (default: ``path`` without ``.lock``).

    Raises
    ------
    LockedError
        Another live process holds it: ``"<what>: in use by another run (pid N)"``.
    """

    def __init__(self, path: str | os.PathLike, what: str | os.PathLike | None = None):
        self._fd = -1
        self.path = Path(path)
        what = what if what is not None else str(self.path).removesuffix(".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise disk_full(exc, self.path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = os.pread(fd, 32, 0).decode().strip() or "unknown"
            finally:
                os.close(fd)
            raise LockedError(f"{what}: in use by another run (pid {pid}); wait for it to end or use "
                              f"another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = -1

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def lock_output(out: str | os.PathLike, kind: str = "file") -> RunLock:
    """The lock of an output: a file ``out`` (``kind="file"``: ``out.lock`` beside it) or a folder
    (``kind="dir"``: ``out/.lock``).

    Raises
    ------
    LockedError
        Another live run holds it, or (``kind="file"``) ``out`` is a folder.
    """
    named_as_folder = os.fspath(out).endswith(("/", os.sep))  # Path() drops a trailing slash
    out = Path(out)
    if kind == "dir":
        return RunLock(out / ".lock", what=out)
    if out.is_dir() or named_as_folder:
        raise LockedError(f"{out}: is a folder; --out names a file (e.g. {out / 'records.jsonl'})")
    return RunLock(out.with_name(out.name + ".lock"), what=out)
