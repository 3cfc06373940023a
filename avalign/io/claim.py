"""An output folder's identity: the settings every record in it was made with, and their hash.

The first run into a folder writes an identity file (``{"hash": ..., "settings": ...}``) before any
record.  A later run with other settings is refused, before it writes anything, with one line naming
what differs, so a folder never mixes records made different ways.  The benchmark's run folders
(``settings.json``) and ``avalign study`` folders (``study.json``) both claim their folder here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .atomic import write_json_atomic


class FolderClaimError(ValueError):
    """A folder made with other settings (or by an older version): one line, exit status 2."""


def settings_hash(identity: Any) -> str:
    """12 hex digits of the SHA-1 of the settings' canonical JSON."""
    return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _show(key: str, value: Any) -> str:
    if key == "clips" and isinstance(value, list):
        return f"{len(value)} clips ({value[0]}..{value[-1]})" if value else "no clips"
    return json.dumps(value, default=str)


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in settings.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``"key old -> new"`` for every setting that differs (nested settings as ``outer.inner``)."""
    old, new = _flat(old), _flat(new)
    keys = sorted(set(old) | set(new))
    return [f"{k} {_show(k, old.get(k))} -> {_show(k, new.get(k))}" for k in keys if old.get(k) != new.get(k)]


def claim_folder(folder: str | Path, identity: dict[str, Any], *, file: str, records: str,
                 error: type[FolderClaimError] = FolderClaimError) -> str:
    """Check that ``folder`` was made with ``identity`` (or is new) and return the settings hash.

    Parameters
    ----------
    folder : path
        The output folder; created if missing.
    identity : dict
        The settings (JSON-able) every record in the folder is made with.
    file : str
        The identity file's name inside ``folder`` (e.g. ``settings.json``).
    records : str
        A glob of the folder's record files (e.g. ``*.jsonl``): a folder holding records but no
        identity file was made by an older version and is refused.
    error : type
        The :class:`FolderClaimError` subclass raised (so each tool names its own).

    Raises
    ------
    FolderClaimError
        The folder holds records made with other settings, or records without an identity file.
    """
    folder = Path(folder)
    digest = settings_hash(identity)
    path = folder / file
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("hash") != digest:
            diff = "; ".join(differences(old.get("settings", {}), identity)) or "settings hash differs"
            raise error(f"{folder}: made with other settings ({diff}); use another --out")
        return digest
    if any(folder.glob(records)):
        raise error(f"{folder}: holds records without {file} (an older version); use another --out")
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"hash": digest, "settings": identity}, default=str)
    return digest
