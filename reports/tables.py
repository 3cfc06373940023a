"""Comparison tables from benchmark runs: CSV, Markdown and LaTeX, best value per column in bold.

"Best" is judged per dataset among the compared methods only: the reference rows
(``ground_truth``, ``shuffled_audio``, ``static_frame``) show the metric's range and are never bold.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

#: Rows that calibrate the metric rather than compete.
REFERENCE_ROWS = ("ground_truth", "shuffled_audio", "static_frame")
#: Columns shown, their header, and which direction is better (None: not judged).
COLUMNS = (
    ("method", "method", None),
    ("n", "n", None),
    ("n_undefined", "undef.", None),
    ("n_error", "err.", None),
    ("av_align", "AV-Align", "max"),
    ("av_align_ci", "95% CI", None),
    ("s_per_clip_p50", "s/clip p50", "min"),
    ("s_per_clip_p90", "s/clip p90", "min"),
    ("frames_per_s", "frames/s", "max"),
    ("peak_mem_mb", "peak MB", "min"),
    ("load_s", "load s", "min"),
    ("device", "device", None),
)
NUMERIC = ("n", "n_undefined", "n_error", "av_align", "av_align_ci_low", "av_align_ci_high", "load_s",
           "s_per_clip_p50", "s_per_clip_p90", "frames_per_s", "peak_mem_mb")


def read_summary(path: str | Path) -> list[dict]:
    """Rows of a run's ``summary.csv`` with numbers parsed (NaN for empty or 'nan')."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for k in NUMERIC:
                try:
                    row[k] = float(row[k])
                except (ValueError, TypeError):
                    row[k] = float("nan")
            rows.append(row)
    return rows


def _fmt(key: str, row: dict) -> str:
    if key == "av_align_ci":
        lo, hi = row["av_align_ci_low"], row["av_align_ci_high"]
        return "-" if math.isnan(lo) else f"{lo:.3f}-{hi:.3f}"
    value = row[key]
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "-"
    if key in ("n", "n_undefined", "n_error"):
        return str(int(value))
    if key == "av_align":
        return f"{value:.3f}"
    if key == "peak_mem_mb":
        return f"{value:.0f}"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def best_cells(rows: Sequence[dict]) -> set[tuple[int, str]]:
    """(row index, column) of the best value per dataset and judged column."""
    best = set()
    for dataset in {r["dataset"] for r in rows}:
        idx = [i for i, r in enumerate(rows) if r["dataset"] == dataset and r["method"] not in REFERENCE_ROWS]
        for key, _, direction in COLUMNS:
            values = [(rows[i][key], i) for i in idx if direction and not math.isnan(rows[i][key])]
            if len(values) < 2:
                continue
            target = (max if direction == "max" else min)(v for v, _ in values)
            best |= {(i, key) for v, i in values if v == target}
    return best


def write_tables(rows: Sequence[dict], out: Path) -> dict[str, Path]:
    """``table.csv``, ``table.md`` and ``table.tex`` in ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    bold = best_cells(rows)
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    paths = {"csv": out / "table.csv", "md": out / "table.md", "tex": out / "table.tex"}

    with open(paths["csv"], "w", newline="") as f:
        keys = ["dataset"] + [k for k, _, _ in COLUMNS if k != "av_align_ci"] + ["av_align_ci_low", "av_align_ci_high"]
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    md = []
    for dataset in datasets:
        md += [f"**{dataset}**", "", "| " + " | ".join(h for _, h, _ in COLUMNS) + " |",
               "|" + "|".join("---" if k in ("method", "device") else "---:" for k, _, _ in COLUMNS) + "|"]
        for i, r in enumerate(rows):
            if r["dataset"] == dataset:
                cells = [f"**{_fmt(k, r)}**" if (i, k) in bold else _fmt(k, r) for k, _, _ in COLUMNS]
                md.append("| " + " | ".join(cells) + " |")
        md.append("")
    paths["md"].write_text("\n".join(md))

    def tex(s: str) -> str:
        return s.replace("_", r"\_").replace("%", r"\%")

    lines = [r"\begin{tabular}{l" + "r" * (len(COLUMNS) - 2) + "l}", r"\toprule",
             " & ".join(tex(h) for _, h, _ in COLUMNS) + r" \\"]
    for dataset in datasets:
        lines += [r"\midrule", rf"\multicolumn{{{len(COLUMNS)}}}{{l}}{{\textit{{{tex(dataset)}}}}} \\"]
        for i, r in enumerate(rows):
            if r["dataset"] == dataset:
                cells = [rf"\textbf{{{tex(_fmt(k, r))}}}" if (i, k) in bold else tex(_fmt(k, r)) for k, _, _ in COLUMNS]
                lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    paths["tex"].write_text("\n".join(lines))
    return paths
