"""Plots from benchmark runs (matplotlib, PNG)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

COLORS = {"ground_truth": "#4c9a2a", "shuffled_audio": "#9e9e9e", "static_frame": "#bdbdbd"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _color(method: str) -> str:
    return COLORS.get(method, "#1f77b4")


def plot_av_align(rows: Sequence[dict], path: Path) -> Path:
    """AV-Align per method with 95% CI bars, one panel per dataset."""
    plt = _plt()
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(max(6, 1.3 * max(len(rows), 4)), 4.2), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        mine = [r for r in rows if r["dataset"] == dataset]
        x = np.arange(len(mine))
        mean = np.array([r["av_align"] for r in mine])
        low = np.array([r["av_align_ci_low"] for r in mine])
        high = np.array([r["av_align_ci_high"] for r in mine])
        err = np.nan_to_num(np.vstack([mean - low, high - mean]), nan=0.0)
        ax.bar(x, np.nan_to_num(mean), yerr=err, capsize=4, color=[_color(r["method"]) for r in mine])
        for xi, m, h in zip(x, mean, high):
            top = max(0 if math.isnan(m) else m, 0 if math.isnan(h) else h)
            ax.text(xi, top + 0.02, "-" if math.isnan(m) else f"{m:.2f}", ha="center", fontsize=8)
        ax.set_xticks(x, [r["method"] for r in mine], rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, max(1.05, np.nanmax(high) + 0.1 if np.isfinite(high).any() else 1.05))
        ax.set_title(f"{dataset}: AV-Align (95% bootstrap CI)", fontsize=10)
        ax.set_ylabel("AV-Align")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_time_memory(rows: Sequence[dict], path: Path) -> Path:
    """Seconds per clip (median, with the 90th percentile) and peak memory per method."""
    plt = _plt()
    labels = [f"{r['method']}\n({r['dataset']})" if len({x['dataset'] for x in rows}) > 1 else r["method"]
              for r in rows]
    x = np.arange(len(rows))
    fig, (a, b) = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(rows)), 4.2))
    p50 = np.array([r["s_per_clip_p50"] for r in rows])
    p90 = np.array([r["s_per_clip_p90"] for r in rows])
    a.bar(x, np.nan_to_num(p50), color=[_color(r["method"]) for r in rows], label="median")
    a.scatter(x, p90, color="black", marker="_", s=200, label="90th percentile", zorder=3)
    a.set_yscale("log")
    a.set_ylabel("seconds per clip (log)")
    a.set_title("time per clip", fontsize=10)
    a.legend(fontsize=8)
    b.bar(x, np.nan_to_num([r["peak_mem_mb"] for r in rows]), color=[_color(r["method"]) for r in rows])
    b.set_ylabel("peak memory (MB)")
    kinds = {"GPU: torch allocated" if r["device"].startswith("cuda") else "CPU: process RSS" for r in rows}
    b.set_title(f"peak memory of generating methods ({', '.join(sorted(kinds))})", fontsize=9)
    for ax in (a, b):
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_distribution(records: Sequence[dict], order: Sequence[str], path: Path) -> Path:
    """Per-clip AV-Align per method: a box per method and every clip as a dot."""
    plt = _plt()
    methods = [m for m in order if any(r["method"] == m for r in records)]
    data = [[r["avalign"]["score"] for r in records if r["method"] == m and r.get("avalign")
             and r["avalign"].get("score") is not None] for m in methods]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(methods)), 4.2))
    ax.boxplot([d if d else [np.nan] for d in data], widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(d)), d, s=14, alpha=0.7, color=_color(methods[i - 1]), zorder=3)
    ax.set_xticks(range(1, len(methods) + 1), methods, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("AV-Align per clip")
    ax.set_title("distribution of per-clip scores (undefined clips left out)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_timelines(records: Sequence[dict], order: Sequence[str], folder: Path, per_method: int = 2) -> list[Path]:
    """Alignment timelines (onset envelope, flow, matched peaks) for the first clips of each method,
    rescored from their files (the records keep no onset envelope)."""
    from avalign import score_file
    from avalign.plot import plot_result

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for m in order:
        mine = [r for r in records if r["method"] == m and r.get("avalign") and r["status"] != "error"]
        for r in sorted(mine, key=lambda r: r["clip_id"])[:per_method]:
            rec = r["avalign"]
            result = score_file(rec["video"], rec["audio"], rec["variant"])
            safe = m.replace(":", "_")
            written.append(plot_result(result, folder / f"{safe}__{r['clip_id']}.png", title=f"{m} / {r['clip_id']}"))
    return written


__all__ = ["plot_av_align", "plot_time_memory", "plot_distribution", "plot_timelines"]
