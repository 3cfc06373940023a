"""Write a file so that it is either absent, the old version, or complete: the project's one
write-to-a-temporary-name-then-rename helper.

The temporary file is a hidden sibling (``.NAME.PID.partial.EXT``, which
:func:`~avalign.io.files.is_partial` recognises and every folder scan skips), keeps the final
extension (so encoders that pick the container from it work), is ``fsync``-ed before the rename,
and the folder is ``fsync``-ed after it, so a power loss too leaves whole files.  A full disk is
raised as :class:`~avalign.io.files.DiskFullError` naming the final file.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .files import disk_full


def partial_path(path: str | os.PathLike) -> Path:
    """The temporary sibling :func:`atomic_path` writes ``path`` under."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")


def fsync_path(path: str | os.PathLike) -> None:
    """``fsync`` a file, or a folder (its entries)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            fsync_path(Path(root) / name)
        fsync_path(root)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; on a clean exit it is fsynced and
    renamed over ``path``; on an error it is removed and ``path`` is left as it was.

    >>> with atomic_path("out/table.csv") as tmp:      # doctest: +SKIP
    ...     frame.to_csv(tmp)
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise disk_full(exc, path) from None
    tmp = partial_path(path)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise disk_full(exc, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """``data`` at ``path``, atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """``text`` (UTF-8) at ``path``, atomically."""
    return write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | os.PathLike, value: Any, *, indent: int | None = 1, **dumps: Any) -> Path:
    """``value`` as JSON at ``path``, atomically (``dumps`` go to :func:`json.dumps`)."""
    return write_text_atomic(path, json.dumps(value, indent=indent, **dumps))


def publish_dir(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Make the finished folder ``tmp`` appear as ``final``: every file in it is fsynced, a folder
    already at ``final`` is removed, then ``tmp`` is renamed (a checkpoint is whole or absent)."""
    tmp, final = Path(tmp), Path(final)
    try:
        _fsync_tree(tmp)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        fsync_path(final.parent)
    except OSError as exc:
        raise disk_full(exc, final) from None
    return final


def build_once(final: str | os.PathLike, build, wait_s: float = 900.0) -> Path:
    """Make the folder ``final`` with ``build(tmp)`` unless it exists: ``build`` writes into a hidden
    temporary sibling, which is then published whole (:func:`publish_dir`), so an interrupted build
    leaves no half folder and the next run builds again.  Runs that need the same folder at once
    take turns: one builds it, the others wait (at most ``wait_s`` seconds, then
    :class:`~avalign.io.lock.LockedError`) and use it."""
    import time

    from .lock import LockedError, RunLock

    final = Path(final)
    deadline = time.monotonic() + wait_s
    while not final.exists():
        try:
            lock = RunLock(final.with_name(f".{final.name}.build.lock"), what=final)
        except LockedError:
            if time.monotonic() > deadline:
                raise LockedError(f"{final}: another run has been building it for over {wait_s:.0f} s; "
                                  "wait for it or remove the folder's .build.lock owner") from None
            time.sleep(0.5)
            continue
        with lock:
            if final.exists():  # built by the run we waited for
                break
            for left in final.parent.glob(f".{final.name}.*.partial"):  # a killed builder's (we hold the lock)
                shutil.rmtree(left, ignore_errors=True)
            tmp = final.with_name(f".{final.name}.{os.getpid()}.partial")
            tmp.mkdir(parents=True)
            try:
                build(tmp)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            publish_dir(tmp, final)
    return final


def save_figure(fig, path: str | os.PathLike, **savefig) -> Path:
    """A matplotlib figure saved atomically (the format from ``path``'s extension)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **savefig)
    return Path(path)
