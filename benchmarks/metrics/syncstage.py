"""The benchmark's learned sync metrics: DeSync and IB-score of every generated clip, beside AV-Align.

``python -m benchmarks.run --metrics av_align,desync,ib --weights DIR`` scores every clip of every
method (ceiling, chance and floor rows included) with Synchformer's DeSync and ImageBind's IB-score
(:mod:`benchmarks.metrics.desync`, :mod:`benchmarks.metrics.ib`), at the clip length L of the run's
span, and appends one :class:`~benchmarks.records.SyncRecord` per (clip, metric) to
``RUN_DIR/sync.jsonl`` as it is made; a rerun scores only what is missing (or, with
``--retry-errors``, what failed).

* Each clip is decoded once per decoding rule (25 fps for DeSync, 0.5 fps for IB-score), shared by
  both metrics (:class:`~benchmarks.metrics.avdecode.DecodeCache`); each model is loaded once per
  process (:func:`benchmarks.metrics.perclip.load`).
* A clip shorter than its lineage needs (DeSync: 4.8 s; IB-score ``avbench``: 4 s) is
  ``not_applicable`` under ``short="error"``: no number, a "—" cell with a footnote naming the
  reason, and not a failure.  ``short="pad"`` scores it padded (JavisBench's rule), and says so.
* A clip that cannot be decoded or scored is an ``error`` record with its reason; the run goes on.

:func:`sync_columns` turns the records into the summary's ``desync*`` and ``ib*`` columns.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Sequence

import numpy as np

from avalign.io import JsonlWriter, read_jsonl
from avalign.stats import bootstrap_ci

from ..records import SyncRecord
from ..syncprotocol import SyncProtocol
from .desync import set_desync

SYNC_METRICS = ("desync", "ib")
FILE = "sync.jsonl"


def settings_of(metric: str, lineage: str, short: str, duration_s: float | None, weights_sha256: str) -> dict:
    """What decides a sync record's value besides the clip (a record made otherwise is redone)."""
    return {"metric": metric, "lineage": lineage, **SyncProtocol(duration_s, short).to_record(),
            "weights_sha256": weights_sha256}


def stage_sync(run_dir, generated: dict, metrics: Sequence[str], weights: str | None, *, duration_s: float | None,
               lineages: dict[str, str], short: str = "error", device: str = "cpu", batch_size: int | None = None,
               retry_errors: bool = False) -> None:
    """Score every ok clip of ``generated`` (the latest generation record per ``(method, clip_id)``)
    with each metric of ``metrics`` (of :data:`SYNC_METRICS`) into ``RUN_DIR/sync.jsonl``.

    Raises :class:`~benchmarks.metrics.weights.WeightsError` before any clip when a weight file is
    missing or wrong."""
    from tqdm import tqdm

    from . import desync, ib
    from .avdecode import DecodeCache, DecodeError
    from .perclip import one_line
    from .weights import load_sync_model

    wanted = [m for m in metrics if m in SYNC_METRICS]
    if not wanted:
        return
    models = {m: load_sync_model(m, weights) for m in wanted}
    settings = {m: settings_of(m, lineages[m], short, duration_s, models[m][2]) for m in wanted}
    done = latest_sync(run_dir)
    todo: dict[tuple[str, str], list[str]] = {}
    for (method, clip_id), g in sorted(generated.items()):
        if g.get("status") != "ok":
            continue
        for m in wanted:
            r = done.get((method, clip_id, m, settings_key(settings[m])))
            fresh = r is not None and r.get("attempt") == g.get("attempt")
            if not fresh or (retry_errors and r["status"] == "error"):
                todo.setdefault((method, clip_id), []).append(m)
    if not todo:
        return
    scorers = {"desync": desync.score_clip, "ib": ib.score_clip}
    failed = 0
    with JsonlWriter(run_dir / FILE) as out:
        for (method, clip_id), names in tqdm(todo.items(), unit="clip", desc="desync/ib", disable=None,
                                             file=sys.stderr):
            g = generated[(method, clip_id)]
            cache = DecodeCache(g["video"], g.get("audio"))  # one decoding per rule, shared by both metrics
            for m in names:
                model = models[m][0]
                base = {"method": method, "clip_id": clip_id, "attempt": g.get("attempt"),
                        "role": g.get("role", "compared"), **settings[m]}
                try:
                    r = scorers[m](model, cache, duration_s, lineages[m], short, batch_size, device)
                except desync.TooShort as exc:
                    record = {**base, "status": "not_applicable", "error": one_line(exc, g["video"])}
                except (DecodeError, ValueError, RuntimeError, OSError) as exc:  # one clip's failure, with its reason
                    record = {**base, "status": "error", "error": one_line(exc, g["video"])}
                    failed += 1
                    tqdm.write(f"benchmarks.run: {m} of {method} {clip_id}: {record['error']}", file=sys.stderr)
                else:
                    keep = {k: r[k] for k in ("offsets_s", "expected_offsets_s", "logits", "n_views", "padded", "dtype")
                            if k in r}
                    record = {**base, "status": "ok", "value": float(r["desync" if m == "desync" else "ib_score"]),
                              **keep}
                out.write(SyncRecord.from_record(record, strict=True).to_record())
    if failed:
        print(f"benchmarks.run: {failed} DeSync/IB scores failed (recorded; rerun with --retry-errors)", file=sys.stderr)


SETTINGS = ("lineage", "short", "duration_s", "weights_sha256")


def settings_key(record: dict) -> tuple:
    """What makes a record's value besides the clip: lineage, short-clip policy, L, weights."""
    return tuple(record.get(k) for k in SETTINGS)


def latest_sync(run_dir) -> dict[tuple, dict]:
    """The newest record per ``(method, clip_id, metric, settings_key)`` of ``RUN_DIR/sync.jsonl``
    (records of other settings are kept apart, never mixed into one value)."""
    return {(r["method"], r["clip_id"], r["metric"], settings_key(r)): r
            for r in read_jsonl(os.path.join(run_dir, FILE))}


def newest_settings(run_dir) -> dict[str, dict]:
    """``{metric: settings}`` of the newest record of each metric in ``RUN_DIR/sync.jsonl``: what a
    summary made without ``--metrics desync,ib`` shows."""
    out: dict[str, dict] = {}
    for r in read_jsonl(os.path.join(run_dir, FILE)):
        out[r["metric"]] = {k: r.get(k) for k in SETTINGS}
    return out


def failed_clips(run_dir, generated: dict, methods) -> int:
    """Clips of ``methods`` whose newest sync record of their current attempt is an error (under any
    settings still the newest for that metric)."""
    wanted = newest_settings(run_dir)
    return len({(m, c) for (m, c, k, key), r in latest_sync(run_dir).items()
                if m in methods and k in wanted and key == settings_key(wanted[k]) and r["status"] == "error"
                and (generated.get((m, c)) or {}).get("attempt") == r.get("attempt")})


def sync_columns(method: str, records: dict, generated: dict | None, wanted: dict[str, dict]) -> dict[str, Any]:
    """The summary columns of ``method`` for each metric of ``wanted`` (``{metric: {"lineage", "short",
    "duration_s", "weights_sha256"}}``, the run's settings): the mean and 95% bootstrap CI (over
    clips) of its clips scored ``ok``, ``*_n``, ``*_na`` (clips not applicable), ``*_err`` (clips that
    failed), ``*_lineage`` and ``*_note`` (the footnote's reason).  Only records of the method's
    current generation attempts and of exactly these settings count."""
    out: dict[str, Any] = {}
    for metric, s in wanted.items():
        mine = [r for (m, c, k, key), r in records.items() if m == method and k == metric
                and key == settings_key(s)
                and (generated is None or (generated.get((m, c)) or {}).get("attempt") == r.get("attempt"))]
        if not mine:
            continue
        ok = [r for r in mine if r["status"] == "ok"]
        values = sorted(r["value"] for r in ok)
        na = [r for r in mine if r["status"] == "not_applicable"]
        low, high = bootstrap_ci(values) if values else (None, None)  # over clips
        # DeSync of the set: the mean over all windows (av-benchmark's); IB: the mean over clips
        value = (set_desync(ok) if metric == "desync" else float(np.mean(values))) if values else None
        out.update({metric: value, f"{metric}_ci_low": low,
                    f"{metric}_ci_high": high, f"{metric}_n": len(values), f"{metric}_na": len(na),
                    f"{metric}_err": sum(r["status"] == "error" for r in mine),
                    f"{metric}_lineage": SyncProtocol(s["duration_s"], s["short"]).describe(s["lineage"])})
        if na:  # the footnote: the first clip's reason (every clip of one length gives the same)
            out[f"{metric}_note"] = na[0]["error"]
    return out
