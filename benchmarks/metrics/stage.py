"""The benchmark's metrics stage: FVD, IS and CLIPSIM of every method's clips, beside AV-Align.

Reads only what the generate stage wrote (``generate-*.jsonl``) and the dataset's clips, under the
run's evaluation protocol.  Per-clip features are appended to
``RUN_DIR/features/<kind>/<method>.jsonl`` as they are made (keyed by clip and generation attempt;
the folder name carries the weights' digest, the frames per clip and the protocol), so a killed run
resumes without redoing a clip.  One record per (method, metric) is appended to ``metrics.jsonl``
with the value, the clip count, how it was made, and a digest of the generated clips it covers
(:mod:`benchmarks.summary` ignores a record whose clips have since been regenerated).

* **FVD** compares each method's clips with the dataset's ground-truth clips of the *same* test
  clips (the real side is featurised once, as ``_real``).
* **IS** takes each method's clips alone.
* **CLIPSIM** compares each clip with its dataset label through ``template``.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from avalign.protocol import Protocol
from avalign.io import JsonlWriter, read_jsonl

from ..records import MetricRecord
from ..runfolder import settings_hash
from .videos import Extractor, extract

QUALITY_METRICS = ("fvd", "is", "clipsim")
METRICS = ("av_align",) + QUALITY_METRICS + ("desync", "ib")  #: desync, ib: benchmarks.metrics.syncstage
REAL = "_real"


def parse_metrics(text: str) -> list[str]:
    """``"av_align,fvd"`` → ``["av_align", "fvd"]``; raises ValueError naming an unknown metric."""
    names = list(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise ValueError(f"--metrics {text!r}: choose from {', '.join(METRICS)} (comma-separated)")
    return names


def digest(items: Sequence) -> str:
    """12 hex digits naming a set of items, whatever their order (the run folder's settings hash)."""
    return settings_hash(sorted(items))


class FeatureStore:
    """Per-clip features of one extractor and method, appended as made (``<dir>/<method>.jsonl``)."""

    def __init__(self, folder: Path, method: str):
        self.path = folder / f"{method}.jsonl"
        self.rows = {(r["clip_id"], r.get("attempt")): r for r in read_jsonl(self.path)}

    def get(self, clip_id: str, attempt) -> dict | None:
        return self.rows.get((clip_id, attempt))


def featurise(folder: Path, method: str, items: Sequence[tuple[str, object, str]], extractor: Extractor,
              protocol: Protocol) -> dict[str, np.ndarray]:
    """``{clip_id: features}`` of ``items`` ``(clip_id, attempt, video)``, from the store where there,
    else computed and appended; a refused clip is stored with its reason (and left out)."""
    store = FeatureStore(folder, method)
    todo = [(c, a, v) for c, a, v in items if store.get(c, a) is None]
    if todo:
        folder.mkdir(parents=True, exist_ok=True)
        by_video = {str(v): (c, a) for c, a, v in todo}
        with JsonlWriter(store.path) as out:
            def save(batch: dict[str, np.ndarray]) -> None:
                for video, f in batch.items():
                    c, a = by_video[video]
                    row = {"clip_id": c, "attempt": a, "video": video, "features": [float(x) for x in f]}
                    out.write(row)
                    store.rows[(c, a)] = row

            _, skipped = extract([v for _, _, v in todo], extractor, protocol, desc=f"{extractor.kind} {method}",
                                 on_batch=save)
            for video, reason in skipped.items():
                c, a = by_video[video]
                row = {"clip_id": c, "attempt": a, "video": video, "error": reason}
                out.write(row)
                store.rows[(c, a)] = row
    found = {c: store.get(c, a) for c, a, _ in items}
    return {c: np.asarray(r["features"]) for c, r in found.items() if r and "features" in r}


def stage_metrics(run_dir: Path, generated: dict, clips: Sequence, protocol: Protocol, metrics: Sequence[str],
                  weights: str | None, *, fvd_lineage: str = "styleganv", num_frames: int = 16,
                  template: str = "{label}", device: str = "cpu") -> None:
    """Compute ``metrics`` (of :data:`QUALITY_METRICS`) for every method with generated clips and
    append one record per (method, metric) to ``RUN_DIR/metrics.jsonl``.

    ``generated`` is the latest generation record per ``(method, clip_id)``; ``clips`` the run's
    dataset clips (:class:`~tempotokens.data.datasets.ClipInfo`: the real video and label).
    Raises WeightsError (before any feature is computed) when a weight file is missing.
    """
    from .clipsim import ClipSim, clip_scores, render, summarize_scores
    from .frechet import FrechetError
    from .fvd import fvd, fvd_extractor
    from .inception import SPLITS, inception_score, is_extractor

    info = {c.clip_id: c for c in clips}
    methods: dict[str, list[tuple[str, object, str]]] = {}
    for (method, clip_id), r in sorted(generated.items()):
        if r["status"] == "ok" and clip_id in info:
            methods.setdefault(method, []).append((clip_id, r.get("attempt"), r["video"]))
    proto = digest([json.dumps(protocol.to_record(), sort_keys=True)])[:8]
    loaded: dict[str, tuple[Extractor, ClipSim | None]] = {}  # every weight file loaded before any feature
    for m in metrics:
        if m == "fvd":
            loaded[m] = (fvd_extractor(weights, fvd_lineage, num_frames, device), None)
        elif m == "is":
            loaded[m] = (is_extractor(weights, device), None)
        elif m == "clipsim":
            model = ClipSim(weights, device)
            loaded[m] = (model.extractor(), model)
    if not loaded:
        return
    previous = latest_metrics(run_dir)
    warned: set = set()
    with JsonlWriter(run_dir / "metrics.jsonl") as out:
        for metric, (ex, clip_model) in loaded.items():
            folder = run_dir / "features" / f"{ex.kind}-{ex.num_frames or 'all'}f-{ex.sha256[:8]}-{proto}"
            if metric == "fvd":
                every = sorted({c for items in methods.values() for c, _, _ in items})
                real = featurise(folder, REAL, [(c, None, info[c].video) for c in every], ex, protocol)
            for method, items in methods.items():
                feats = featurise(folder, method, items, ex, protocol)
                ids = [c for c, _, _ in items if c in feats]
                record = {"method": method, "metric": metric, "inputs": digest([[c, a] for c, a, _ in items]),
                          "n_clips": len(items), **ex.describe(), "protocol": protocol.to_record()}
                try:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        if metric == "fvd":
                            common = [c for c in ids if c in real]
                            value = fvd(np.stack([real[c] for c in common]) if common else np.zeros((0, 1)),
                                        np.stack([feats[c] for c in common]) if common else np.zeros((0, 1)),
                                        fvd_lineage)
                            record.update(value=value, n=len(common), fvd_lineage=fvd_lineage)
                        elif metric == "is":
                            if not ids:
                                raise ValueError("no usable clip")
                            mean, std = inception_score(np.stack([feats[c] for c in ids]))
                            record.update(value=mean, std=std, n=len(ids), splits=min(SPLITS, len(ids)))
                        else:
                            if not ids:
                                raise ValueError("no usable clip")
                            texts = [render(template, info[c].label) for c in ids]
                            unique = sorted(set(texts))
                            table = dict(zip(unique, clip_model.text_features(unique)))
                            scores = clip_scores(np.stack([feats[c] for c in ids]), np.stack([table[t] for t in texts]))
                            mean, low, high = summarize_scores(scores)
                            record.update(value=mean, ci_low=low, ci_high=high, n=len(ids), template=template)
                except (ValueError, FrechetError) as exc:  # one method's failure costs one cell, with its reason
                    record.update(value=None, n=len(ids), error=" ".join(str(exc).split()))
                    print(f"benchmarks.metrics: {metric} of {method}: {record['error']}", file=sys.stderr)
                notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
                if notes:
                    record["warnings"] = notes
                    for note in notes:  # each kind of note once per metric (e.g. N below 2048, splits capped)
                        key = (metric, note.split(" from ")[0].split(":")[0])
                        if key not in warned:
                            warned.add(key)
                            print(f"benchmarks.metrics: warning: {metric}: {note}", file=sys.stderr)
                typed = MetricRecord.from_record(record, strict=True).to_record()
                if previous.get((method, metric)) != typed:  # a rerun adds no duplicate
                    out.write(typed)


def latest_metrics(run_dir: Path) -> dict[tuple[str, str], dict]:
    """The newest record per (method, metric) of ``RUN_DIR/metrics.jsonl``."""
    return {(r["method"], r["metric"]): r for r in read_jsonl(run_dir / "metrics.jsonl")}


def inputs_digest(generated: dict, method: str) -> str:
    """The digest a metrics record of ``method`` must carry to describe its current clips."""
    return digest([[c, r.get("attempt")] for (m, c), r in generated.items() if m == method and r["status"] == "ok"])
