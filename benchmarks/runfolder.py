"""A run folder's identity: the settings every record in it was made with, and their hash.

The first run into a folder writes ``settings.json`` (the settings and their hash) before any record
(:func:`avalign.io.claim_folder`); every record then carries ``settings_hash``.  A later run with other settings is refused, before it
writes anything, with one line naming what differs, so a folder never mixes clips or scores made
different ways and ``env.json`` never describes settings its records were not made with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from avalign.io import FolderClaimError, claim_folder, read_jsonl, settings_hash

SETTINGS_FILE = "settings.json"

__all__ = ["RunFolderError", "SETTINGS_FILE", "claim", "latest", "read_all", "settings_hash"]


class RunFolderError(FolderClaimError):
    """A run folder made with other settings (or by an older version): one line, exit status 2."""


def claim(run_dir: Path, identity: dict[str, Any], rank: int = 0) -> str:
    """Check that ``run_dir`` was made with ``identity`` (or is new) and return the settings hash.

    A new folder gets ``settings.json`` (written atomically; ranks write identical content); see
    :func:`avalign.io.claim_folder`.

    Raises
    ------
    RunFolderError
        The folder holds records made with other settings, or records without a settings file.
    """
    return claim_folder(run_dir, identity, file=SETTINGS_FILE, records="*.jsonl", error=RunFolderError)


def latest(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The last record of each (method, clip_id): a retried clip's newest attempt wins."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        out[(r["method"], r["clip_id"])] = r
    return out


def read_all(run_dir: Path, pattern: str) -> list[dict[str, Any]]:
    """Every record of the files matching ``pattern`` (e.g. ``generate-*.jsonl``), file by file."""
    return [r for f in sorted(run_dir.glob(pattern)) for r in read_jsonl(f)]
