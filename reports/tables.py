"""Comparison tables from benchmark runs: CSV, Markdown and LaTeX.

One table per (dataset, protocol, AV-Align variant): rows of a table are always scored the same way,
and its header says how.  "Best" (bold) is judged among the rows whose role is ``compared``; the
other roles (``ceiling``, ``chance``, ``floor``, declared by each method in ``baselines/``) show the
metric's range and are never bold.  A delta whose 95% paired interval excludes 0 is marked with a
dagger.  Figures a row does not have (resources of methods that generate nothing) read "—".  A DeSync
or IB-score cell whose clips are shorter than the metric's lineage needs reads "—" with a footnote
mark (``*``, ``**``, ...); the footnote under the table names the reason.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

from avalign.io import atomic_path, write_text_atomic
from benchmarks.summary import cell_key, significant, sync_footnotes

DASH = "—"
#: Columns shown, their header, and which direction is better (None: not judged).
COLUMNS = (
    ("method", "method", None),
    ("role", "role", None),
    ("n", "n", None),
    ("n_undefined", "undef.", None),
    ("n_error", "err.", None),
    ("av_align", "AV-Align ↑", "max"),
    ("av_align_ci", "95% CI", None),
    ("fvd", "FVD ↓", "min"),
    ("fvd_n", "FVD n", None),
    ("is", "IS ↑", "max"),
    ("clipsim", "CLIPSIM ↑", "max"),
    ("desync", "DeSync ↓", "min"),
    ("ib", "IB ↑", "max"),
    ("n_paired", "n paired", None),
    ("delta", "Δ vs ref.", "max"),
    ("delta_ci", "Δ 95% CI", None),
    ("s_per_clip_p50", "s/clip p50", "min"),
    ("s_per_clip_p90", "s/clip p90", "min"),
    ("clips_per_hour", "clips/h", "max"),
    ("peak_mem_mb", "peak MB", "min"),
    ("load_mem_mb", "load MB", "min"),
    ("load_s", "load s", "min"),
    ("device", "device", None),
)
NUMERIC = ("n", "n_undefined", "n_error", "n_scored", "av_align", "av_align_ci_low", "av_align_ci_high", "fvd", "fvd_n",
           "is", "is_std", "is_n", "clipsim", "clipsim_ci_low", "clipsim_ci_high", "clipsim_n", "desync", "desync_ci_low",
           "desync_ci_high", "desync_n", "desync_na", "desync_err", "ib", "ib_ci_low", "ib_ci_high", "ib_n", "ib_na",
           "ib_err", "n_paired", "delta",
           "delta_ci_low", "delta_ci_high", "load_s", "load_mem_mb", "peak_mem_mb", "s_per_clip_p50",
           "s_per_clip_p90", "frames_per_s", "clips_per_hour")


def read_summary(path: str | Path) -> list[dict]:
    """Rows of a run's ``summary.csv`` with numbers parsed (NaN for an empty cell)."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for k in NUMERIC:
                try:
                    row[k] = float(row.get(k))
                except (ValueError, TypeError):
                    row[k] = float("nan")
            rows.append(row)
    return rows


def groups(rows: Sequence[dict]) -> list[tuple[str, str, str]]:
    """The (dataset, protocol, variant) of each table, in first-seen order."""
    return list(dict.fromkeys((r["dataset"], r["protocol"], r["variant"]) for r in rows))


def _fmt(key: str, row: dict, marks: dict | None = None) -> str:
    if key in ("desync", "ib"):
        mark = (marks or {}).get(cell_key(row, key), "")
        err = row.get(f"{key}_err", math.nan)
        failed = f" ({int(err)} failed)" if isinstance(err, float) and not math.isnan(err) and err > 0 else ""
        value = row.get(key, math.nan)
        if isinstance(value, str) or math.isnan(value):
            return DASH + mark + failed
        return f"{value:.3f} ({row[f'{key}_ci_low']:.3f} to {row[f'{key}_ci_high']:.3f}){mark}{failed}"
    if key in ("av_align_ci", "delta_ci"):
        lo, hi = row[f"{key[:-3]}_ci_low"], row[f"{key[:-3]}_ci_high"]
        sign = "+" if key == "delta_ci" else ""
        return DASH if math.isnan(lo) else f"{lo:{sign}.3f} to {hi:{sign}.3f}"
    value = row.get(key, math.nan)
    if isinstance(value, str):
        return value or DASH
    if math.isnan(value):
        return DASH
    if key in ("n", "n_undefined", "n_error", "n_paired", "fvd_n"):
        return str(int(value))
    if key == "is":
        return f"{value:.2f} ± {row['is_std']:.2f}"
    if key == "clipsim":
        return f"{value:.3f} ({row['clipsim_ci_low']:.3f} to {row['clipsim_ci_high']:.3f})"
    if key == "fvd":
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"
    if key == "av_align":
        return f"{value:.3f}"
    if key == "delta":
        return f"{value:+.3f}" + (" †" if significant(row) else "")
    if key in ("peak_mem_mb", "load_mem_mb", "clips_per_hour"):
        return f"{value:.0f}"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def shown_columns(rows: Sequence[dict]) -> tuple:
    """:data:`COLUMNS`, less DeSync and IB-score when no row was scored with them (``*_lineage``)."""
    return tuple(c for c in COLUMNS if c[0] not in ("desync", "ib") or any(r.get(f"{c[0]}_lineage") for r in rows))


def best_cells(rows: Sequence[dict]) -> set[tuple[int, str]]:
    """(row index, column) of the best value per table and judged column, among compared rows."""
    best = set()
    for group in groups(rows):
        idx = [i for i, r in enumerate(rows) if (r["dataset"], r["protocol"], r["variant"]) == group
               and r.get("role", "compared") == "compared"]
        for key, _, direction in COLUMNS:
            # DeSync / IB-score: judged only among rows scored with the same lineage, policy and L
            lineages = {rows[i].get(f"{key}_lineage") for i in idx} if key in ("desync", "ib") else {None}
            for lineage in lineages:
                values = [(rows[i][key], i) for i in idx if direction and not math.isnan(rows[i].get(key, math.nan))
                          and (key not in ("desync", "ib") or rows[i].get(f"{key}_lineage") == lineage)]
                if len(values) < 2:
                    continue
                target = (max if direction == "max" else min)(v for v, _ in values)
                best |= {(i, key) for v, i in values if v == target}
    return best


def caption(group: tuple[str, str, str], rows: Sequence[dict]) -> str:
    """The header line of one table: dataset, protocol, variant, reference method, FVD lineage."""
    dataset, protocol, variant = group
    mine = [r for r in rows if (r["dataset"], r["protocol"], r["variant"]) == group]
    refs = {r.get("reference") or "" for r in mine} - {""}
    ref = f"; Δ: paired difference to {', '.join(sorted(refs))} (95% paired bootstrap; † excludes 0)" if refs else ""
    fvds = {r.get("fvd_lineage") or "" for r in mine} - {""}
    fvd = f"; FVD: {', '.join(sorted(fvds))} vs the same clips' ground truth" if fvds else ""
    sync = ""
    for key, name in (("desync", "DeSync (s)"), ("ib", "IB-score (cosine)")):
        lineages = {r.get(f"{key}_lineage") or "" for r in mine} - {""}
        if lineages:
            sync += f"; {name}: {', '.join(sorted(lineages))}"
    return f"{dataset} — protocol: {protocol}; AV-Align variant: {variant}{ref}{fvd}{sync}"


def write_tables(rows: Sequence[dict], out: Path) -> dict[str, Path]:
    """``table.csv``, ``table.md`` and ``table.tex`` in ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    bold = best_cells(rows)
    paths = {"csv": out / "table.csv", "md": out / "table.md", "tex": out / "table.tex"}

    with atomic_path(paths["csv"]) as tmp, open(tmp, "w", newline="") as f:
        keys = ["dataset", "protocol", "variant", "reference"] + [k for k, _, _ in COLUMNS if not k.endswith("_ci")] + \
               ["av_align_ci_low", "av_align_ci_high", "is_std", "is_n", "clipsim_ci_low", "clipsim_ci_high", "clipsim_n",
                "fvd_lineage", "desync_ci_low", "desync_ci_high", "desync_n", "desync_na", "desync_err",
                "desync_lineage", "desync_note", "ib_ci_low", "ib_ci_high", "ib_n", "ib_na", "ib_err", "ib_lineage",
                "ib_note", "delta_ci_low",
                "delta_ci_high", "frames_per_s"]
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows)

    md = []
    notes, marks = sync_footnotes(rows)
    shown = shown_columns(rows)
    for group in groups(rows):
        md += [f"**{caption(group, rows)}**", "", "| " + " | ".join(h for _, h, _ in shown) + " |",
               "|" + "|".join("---" if k in ("method", "role", "device") else "---:" for k, _, _ in shown) + "|"]
        for i, r in enumerate(rows):
            if (r["dataset"], r["protocol"], r["variant"]) == group:
                cells = [_fmt(k, r, marks).replace("*", "\\*") for k, _, _ in shown]  # a mark, not emphasis
                cells = [f"**{c}**" if (i, k) in bold else c for c, (k, _, _) in zip(cells, shown)]
                md.append("| " + " | ".join(cells) + " |")
        md.append("")
    md += [f"{mark.replace('*', chr(92) + '*')} {text}  " for mark, text in notes] + ([""] if notes else [])
    write_text_atomic(paths["md"], "\n".join(md))

    def tex(s: str) -> str:
        return (s.replace("_", r"\_").replace("%", r"\%").replace("Δ", r"$\Delta$").replace("†", r"$^\dagger$")
                .replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$").replace("±", r"$\pm$")
                .replace(DASH, "---"))

    lines = [r"\begin{tabular}{ll" + "r" * (len(shown) - 3) + "l}", r"\toprule",
             " & ".join(tex(h) for _, h, _ in shown) + r" \\"]
    for group in groups(rows):
        lines += [r"\midrule", rf"\multicolumn{{{len(shown)}}}{{l}}{{\textit{{{tex(caption(group, rows))}}}}} \\"]
        for i, r in enumerate(rows):
            if (r["dataset"], r["protocol"], r["variant"]) == group:
                cells = [rf"\textbf{{{tex(_fmt(k, r, marks))}}}" if (i, k) in bold else tex(_fmt(k, r, marks))
                         for k, _, _ in shown]
                lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    lines += [rf"\par\noindent {tex(mark)} {tex(text)}" for mark, text in notes] + ([""] if notes else [])
    write_text_atomic(paths["tex"], "\n".join(lines))
    return paths
