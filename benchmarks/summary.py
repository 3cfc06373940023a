"""Stage 3 of a benchmark run: ``summary.csv``, one row per method, from the records alone.

``av_align`` and ``n`` are per method.  Because methods can have scores on different clips (errors,
undefined clips), every row is also compared with a reference method *on the clips both scored*:
``n_paired``, the mean paired difference ``delta`` (this method minus the reference) and its seeded
95% paired bootstrap interval.  The video-quality metrics (``--metrics fvd,is,clipsim``) come from
``metrics.jsonl``: ``fvd`` (with ``fvd_n`` clips per side and ``fvd_lineage``), ``is`` and ``is_std``,
``clipsim`` and its interval; a metric not run, or run on clips since regenerated, is empty ("—").
DeSync and IB-score (``--metrics desync,ib``) come from ``sync.jsonl``
(:func:`benchmarks.metrics.syncstage.sync_columns`): the mean and CI over the clips they apply to,
with the count of clips too short for the lineage (``*_na``) and the reason (``*_note``).
Resource figures are those of generating methods only (None, shown
as "—", for rows that copy real clips).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from avalign.io import atomic_path
from avalign.stats import bootstrap_ci, summarize

from .records import SummaryRow

#: ``summary.csv``'s columns: the fields of :class:`benchmarks.records.SummaryRow`, in order.
COLUMNS = SummaryRow.columns()


def clip_scores(records: Sequence[dict], method: str) -> dict[str, float]:
    """``{clip_id: score}`` of one method's clips that have a score."""
    return {r["clip_id"]: float(r["avalign"]["score"]) for r in records
            if r["method"] == method and r["status"] != "error" and (r.get("avalign") or {}).get("score") is not None}


def paired_delta(scores: dict[str, float], reference: dict[str, float], seed: int = 0
                 ) -> tuple[int, float, float, float]:
    """``(n_paired, delta, ci_low, ci_high)`` over the clips in both: the mean of ``score - reference``
    and a percentile bootstrap of it (clips resampled together, in clip-id order, ``seed``)."""
    common = sorted(set(scores) & set(reference))
    if not common:
        return 0, float("nan"), float("nan"), float("nan")
    diffs = [scores[c] - reference[c] for c in common]
    low, high = bootstrap_ci(diffs, seed=seed)
    return len(common), float(np.mean(diffs)), low, high


def metric_columns(method: str, metrics: dict | None, generated: dict | None) -> dict[str, Any]:
    """The video-quality columns of one method from the newest ``metrics.jsonl`` records, when they
    cover the method's current clips (their ``inputs`` digest matches)."""
    from .metrics.stage import inputs_digest

    out: dict[str, Any] = {}
    current = inputs_digest(generated, method) if generated is not None and metrics else None
    for metric in ("fvd", "is", "clipsim"):
        r = (metrics or {}).get((method, metric))
        if r is None or r.get("value") is None or (generated is not None and r.get("inputs") != current):
            continue
        out[metric] = float(r["value"])
        if metric == "fvd":
            lineage = r.get("fvd_lineage", r.get("fvd_protocol"))  # fvd_protocol: run folders made before 0.2
            out.update(fvd_n=r["n"], fvd_lineage=f"{lineage}, {r['frames_per_clip']} frames")
        elif metric == "is":
            out.update(is_std=r["std"], is_n=r["n"])
        else:
            out.update(clipsim_ci_low=r["ci_low"], clipsim_ci_high=r["ci_high"], clipsim_n=r["n"])
    return out


def summary_rows(dataset: str, records: Sequence[dict], profiles: Sequence[dict], order: Sequence[str], *,
                 protocol: str, variant: str, reference: str | None, metrics: dict | None = None,
                 generated: dict | None = None, sync: dict | None = None,
                 sync_settings: dict | None = None) -> list[dict[str, Any]]:
    """One row per method (in ``order``, then any other method found), from the latest record of
    each clip, the methods' ``load`` profiles, the newest video-quality metric records and the
    per-clip DeSync / IB records ``sync`` scored with ``sync_settings`` (``{metric: {lineage, short,
    duration_s, weights_sha256}}``)."""
    from .metrics.syncstage import sync_columns

    methods = list(dict.fromkeys([m for m in order if any(r["method"] == m for r in records)] +
                                 [r["method"] for r in records]))
    ref_scores = clip_scores(records, reference) if reference in methods else None
    rows = []
    for m in methods:
        mine = [r for r in records if r["method"] == m]
        s = summarize({"status": r["status"], "score": (r["avalign"] or {}).get("score")} for r in mine)
        row: dict[str, Any] = {
            "dataset": dataset, "method": m, "role": mine[0].get("role", "compared"), "protocol": protocol,
            "variant": variant, "n": s.n, "n_undefined": s.n_undefined, "n_error": s.n_error, "n_scored": s.n_scored,
            "av_align": s.mean,
            "av_align_ci_low": s.ci_low, "av_align_ci_high": s.ci_high, "reference": reference if ref_scores is not None
            else None, "device": mine[0]["device"], **metric_columns(m, metrics, generated),
            **sync_columns(m, sync or {}, generated, sync_settings or {}),
        }
        if ref_scores is not None and m != reference:
            row["n_paired"], row["delta"], row["delta_ci_low"], row["delta_ci_high"] = paired_delta(
                clip_scores(records, m), ref_scores)
        elif ref_scores is not None:
            row["n_paired"] = len(ref_scores)
        if any(r.get("generative") for r in mine):
            row.update(resource_figures(mine, [p for p in profiles if p["method"] == m and p.get("kind") == "load"]))
        rows.append(SummaryRow.from_record(row, strict=True).to_record())
    return rows


def resource_figures(records: Sequence[dict], loads: Sequence[dict]) -> dict[str, float | None]:
    """Time and memory of one generating method: clips with errors are not timed."""
    ok = [r for r in records if r["status"] != "error" and r.get("seconds") is not None]
    secs = np.array([r["seconds"] for r in ok], dtype=np.float64)
    total = float(secs.sum())
    peaks = [r["peak_mem_mb"] for r in ok if r.get("peak_mem_mb") is not None]
    return {
        "load_s": max((p["load_s"] for p in loads), default=None),
        "load_mem_mb": max((p["load_mem_mb"] for p in loads), default=None),
        "peak_mem_mb": max(peaks, default=None),
        "s_per_clip_p50": float(np.percentile(secs, 50)) if ok else None,
        "s_per_clip_p90": float(np.percentile(secs, 90)) if ok else None,
        "frames_per_s": sum(r["num_frames"] for r in ok) / total if total > 0 else None,
        "clips_per_hour": 3600.0 * len(ok) / total if total > 0 else None,
    }


def write_summary(path: Path, rows: Sequence[dict]) -> None:
    """``summary.csv`` (atomically): floats to 6 significant digits; None and NaN (no value: no
    scored clip, no paired clip, not a generating method) as an empty cell."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None or (isinstance(v, float) and np.isnan(v)) else
                             (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def significant(row: dict) -> bool:
    """True when the delta's paired 95% interval excludes 0 (None or NaN bounds: no interval)."""
    lo, hi = row.get("delta_ci_low"), row.get("delta_ci_high")
    if lo is None or hi is None or np.isnan(lo) or np.isnan(hi):
        return False
    return lo > 0 or hi < 0


def print_table(rows: Sequence[dict]) -> None:
    """The summary on the terminal (resource figures only for generating methods)."""
    def num(v, fmt):
        return "—" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, fmt)

    if rows:
        print(f"protocol: {rows[0]['protocol']}; AV-Align variant: {rows[0]['variant']}; "
              f"reference: {rows[0]['reference'] or '—'}")
    quality = [k for k in ("fvd", "is", "clipsim") if any(r.get(k) is not None for r in rows)]
    quality += [k for k in ("desync", "ib") if any(r.get(f"{k}_lineage") for r in rows)]
    heads = {"fvd": "FVD↓", "is": "IS↑", "clipsim": "CLIPSIM↑", "desync": "DeSync↓", "ib": "IB↑"}
    footnotes, marks = sync_footnotes(rows)
    print(f"{'method':<28}{'role':<10}{'n':>4}{'err':>5}{'AV-Align↑':>10}{'95% CI':>15}{'delta':>9}"
          f"{'paired 95% CI':>18}" + "".join(f"{heads[k]:>10}" for k in quality) + f"{'s/clip':>8}{'peak MB':>9}")
    for r in rows:
        ci = f"{num(r['av_align_ci_low'], '.3f')}-{num(r['av_align_ci_high'], '.3f')}"
        dci = ("—" if r.get("delta_ci_low") is None or np.isnan(r["delta_ci_low"]) else
               f"{r['delta_ci_low']:+.3f}..{r['delta_ci_high']:+.3f}" + ("†" if significant(r) else " "))
        print(f"{r['method']:<28}{r['role']:<10}{r['n']:>4}{r['n_error']:>5}{num(r['av_align'], '.4f'):>10}"
              f"{ci:>15}{num(r.get('delta'), '+.3f'):>9}{dci:>18}"
              + "".join(f"{num(r.get(k), '.4g') + marks.get(cell_key(r, k), ' '):>10}" for k in quality)
              + f"{num(r['s_per_clip_p50'], '.2f'):>8}{num(r['peak_mem_mb'], '.0f'):>9}")
    if any(significant(r) for r in rows):
        print("†: the paired 95% CI of the delta to the reference excludes 0")
    for k in ("desync", "ib"):
        lineage = next((r[f"{k}_lineage"] for r in rows if r.get(f"{k}_lineage")), None)
        if lineage:
            print(f"{heads[k]}: {SYNC_NAMES[k]} [{lineage}] (mean over the clips it applies to)")
    for mark, text in footnotes:
        print(f"{mark} {text}")


SYNC_NAMES = {"desync": "DeSync", "ib": "IB-score"}


def _footnote(row: dict, metric: str) -> str | None:
    note = row.get(f"{metric}_note")
    return f"{SYNC_NAMES[metric]} not applicable ({row.get(f'{metric}_lineage')}): {note}" if note else None


def sync_footnotes(rows: Sequence[dict]) -> tuple[list[tuple[str, str]], dict[tuple, str]]:
    """``(notes, marks)``: ``notes`` is ``[(mark, text)]``, one footnote per distinct reason a sync
    cell has clips it does not apply to (marks ``*``, ``**``, ...), in first-seen order; ``marks`` is
    ``{cell_key: mark}`` for the cells they explain."""
    seen: dict[str, str] = {}
    marks: dict[tuple, str] = {}
    for r in rows:
        for k in SYNC_NAMES:
            text = _footnote(r, k)
            if text:
                marks[cell_key(r, k)] = seen.setdefault(text, "*" * (len(seen) + 1))
    return [(mark, text) for text, mark in seen.items()], marks


def cell_key(row: dict, metric: str) -> tuple:
    """One table cell: the row's table (dataset, protocol, variant), its method, the metric."""
    return row.get("dataset"), row.get("protocol"), row.get("variant"), row["method"], metric
