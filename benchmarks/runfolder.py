"""A run folder's identity: the settings every record in it was made with, and their hash.

The first run into a folder writes ``settings.json`` (the settings and their hash) before any record;
every record then carries ``settings_hash``.  A later run with other settings is refused, before it
writes anything, with one line naming what differs, so a folder never mixes clips or scores made
different ways and ``env.json`` never describes settings its records were not made with.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

from avalign.io import read_jsonl, write_json_atomic

SETTINGS_FILE = "settings.json"


class RunFolderError(ValueError):
    """A run folder made with other settings (or by an older version): one line, exit status 2."""


def settings_hash(identity: dict[str, Any]) -> str:
    """12 hex digits of the SHA-1 of the settings' canonical JSON."""
    return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _show(key: str, value: Any) -> str:
    if key == "clips" and isinstance(value, list):
        return f"{len(value)} clips ({value[0]}..{value[-1]})" if value else "no clips"
    return json.dumps(value, default=str)


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``"key old -> new"`` for every setting that differs."""
    keys = sorted(set(old) | set(new))
    return [f"{k} {_show(k, old.get(k))} -> {_show(k, new.get(k))}" for k in keys if old.get(k) != new.get(k)]


def claim(run_dir: Path, identity: dict[str, Any], rank: int = 0) -> str:
    """Check that ``run_dir`` was made with ``identity`` (or is new) and return the settings hash.

    A new folder gets ``settings.json`` (written atomically; ranks write identical content).

    Raises
    ------
    RunFolderError
        The folder holds records made with other settings, or records without a settings file.
    """
    digest = settings_hash(identity)
    path = run_dir / SETTINGS_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("hash") != digest:
            diff = "; ".join(differences(old.get("settings", {}), identity)) or "settings hash differs"
            raise RunFolderError(f"{run_dir}: made with other settings ({diff}); use another --out")
        return digest
    if any(run_dir.glob("*.jsonl")):
        raise RunFolderError(f"{run_dir}: holds records without {SETTINGS_FILE} (an older run); use another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"hash": digest, "settings": identity}, default=str)
    return digest


def latest(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The last record of each (method, clip_id): a retried clip's newest attempt wins."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        out[(r["method"], r["clip_id"])] = r
    return out


def read_all(run_dir: Path, pattern: str) -> list[dict[str, Any]]:
    """Every record of the files matching ``pattern`` (e.g. ``generate-*.jsonl``), file by file."""
    return [r for f in sorted(run_dir.glob(pattern)) for r in read_jsonl(f)]
