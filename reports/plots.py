"""Plots from benchmark runs (matplotlib, PNG), drawn from the stored records and summaries only.

Every title names the scoring protocol and the AV-Align variant; every bar shows its n; figures a
row does not have (resources of methods that generate nothing) are drawn as "—", never as 0.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from avalign.io import save_figure
from tempotokens.profiling import STAGES

ROLE_COLORS = {"compared": "#1f77b4", "ceiling": "#4c9a2a", "chance": "#9e9e9e", "floor": "#bdbdbd"}
STAGE_COLORS = ("#8c564b", "#e377c2", "#1f77b4", "#ff7f0e", "#2ca02c")
DASH = "—"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _color(row: dict) -> str:
    return ROLE_COLORS.get(row.get("role") or "compared", ROLE_COLORS["compared"])


def how(protocol: str, variant: str) -> str:
    """The line every plot title carries: how its numbers were made."""
    return f"protocol: {protocol}; AV-Align variant: {variant}"


def _groups(rows: Sequence[dict]) -> list[tuple[str, str, str]]:
    return list(dict.fromkeys((r["dataset"], r["protocol"], r["variant"]) for r in rows))


def n_scored(row: dict) -> int:
    """Clips with a score (what a bar's mean is over): errors and undefined clips are left out."""
    value = row.get("n_scored", float("nan"))
    if isinstance(value, float) and math.isnan(value):
        value = row["n"] - row["n_error"] - row["n_undefined"]
    return int(value)


def value_labels(values: Sequence[float], fmt: str) -> list[str]:
    """The label over each bar: the value, or "—" where a row has none (never a 0)."""
    return [DASH if v is None or math.isnan(v) else format(v, fmt) for v in values]


def stage_means(profiles: Sequence[dict], order: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{method: {stage: mean seconds per clip}}`` over the ``kind: "clip"`` profiles (a stage a clip
    did not run counts 0 s), plus ``"step"``: the mean seconds of one denoising step."""
    clips = [p for p in profiles if p.get("kind") == "clip"]
    out = {}
    for m in order:
        mine = [p for p in clips if p["method"] == m]
        if mine:
            out[m] = {stage: float(np.mean([p["stages_s"].get(stage, 0.0) for p in mine])) for stage in STAGES}
            steps = [s for p in mine for s in p.get("step_s", [])]
            out[m]["step"] = float(np.mean(steps)) if steps else float("nan")
    return out


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    _plt().close(fig)
    return path


def plot_av_align(rows: Sequence[dict], path: Path) -> Path:
    """AV-Align per method with 95% CI bars and n, one panel per (dataset, protocol, variant)."""
    plt = _plt()
    panels = _groups(rows)
    fig, axes = plt.subplots(1, len(panels), figsize=(max(6.5, 1.3 * max(len(rows), 4)), 4.6), squeeze=False)
    for ax, group in zip(axes[0], panels):
        mine = [r for r in rows if (r["dataset"], r["protocol"], r["variant"]) == group]
        x = np.arange(len(mine))
        mean = np.array([r["av_align"] for r in mine])
        low = np.array([r["av_align_ci_low"] for r in mine])
        high = np.array([r["av_align_ci_high"] for r in mine])
        err = np.nan_to_num(np.vstack([mean - low, high - mean]), nan=0.0)
        ax.bar(x, np.nan_to_num(mean), yerr=err, capsize=4, color=[_color(r) for r in mine])
        for xi, m, h, r in zip(x, mean, high, mine):
            top = max(0 if math.isnan(m) else m, 0 if math.isnan(h) else h)
            value = DASH if math.isnan(m) else f"{m:.2f}"
            ax.text(xi, top + 0.02, f"{value}\nn={n_scored(r)}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, [f"{r['method']}\n({r.get('role') or 'compared'})" for r in mine], rotation=30, ha="right",
                      fontsize=7)
        ax.set_ylim(0, max(1.2, np.nanmax(high) + 0.2 if np.isfinite(high).any() else 1.2))
        ax.set_title(f"{group[0]}: AV-Align (95% bootstrap CI; n = clips with a score)\n{how(group[1], group[2])}",
                     fontsize=9)
        ax.set_ylabel("AV-Align")
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _bars_or_dash(ax, x, values, colors, fmt: str) -> None:
    """Bars for the values that exist, and "—" where a row has none."""
    values = np.asarray(values, dtype=float)
    have = ~np.isnan(values)
    ax.bar(x[have], values[have], color=[c for c, h in zip(colors, have) if h])
    top = np.nanmax(values) if have.any() else 1.0
    for xi, v, label in zip(x, values, value_labels(values, fmt)):
        missing = label == DASH
        ax.text(xi, (0 if missing else v) + 0.02 * top, label, ha="center", va="bottom", fontsize=14 if missing else 7)


def plot_time_memory(rows: Sequence[dict], path: Path) -> Path:
    """Seconds per clip (median, with the 90th percentile) and peak memory per method; rows that
    generate nothing show "—"."""
    plt = _plt()
    many = len({r["dataset"] for r in rows}) > 1
    labels = [f"{r['method']}\n({r['dataset']})" if many else r["method"] for r in rows]
    x = np.arange(len(rows))
    colors = [_color(r) for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(max(9, 1.6 * len(rows)), 4.6))
    _bars_or_dash(a, x, [r["s_per_clip_p50"] for r in rows], colors, ".2f")
    a.scatter(x, [r["s_per_clip_p90"] for r in rows], color="black", marker="_", s=200, label="90th percentile",
              zorder=3)
    a.set_ylabel("seconds per clip (median)")
    a.set_title("generation time per clip (its own process)", fontsize=9)
    a.legend(fontsize=8)
    _bars_or_dash(b, x, [r["peak_mem_mb"] for r in rows], colors, ".0f")
    b.set_ylabel("peak memory (MiB)")
    kinds = {"GPU: torch max allocated" if r["device"].startswith("cuda") else "CPU: the method's process peak RSS"
             for r in rows}
    b.set_title(f"peak memory ({', '.join(sorted(kinds))})", fontsize=9)
    for ax in (a, b):
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    groups = _groups(rows)
    fig.suptitle("; ".join(f"{g[0]}: {how(g[1], g[2])}" for g in groups), fontsize=9)
    return _save(fig, path)


def plot_distribution(records: Sequence[dict], order: Sequence[str], path: Path, title: str = "") -> Path:
    """Per-clip AV-Align per method: a box per method and every clip as a dot (n under each name)."""
    plt = _plt()
    methods = [m for m in order if any(r["method"] == m for r in records)]
    data = [[r["avalign"]["score"] for r in records if r["method"] == m and r.get("avalign")
             and r["avalign"].get("score") is not None] for m in methods]
    roles = {r["method"]: r.get("role") for r in records}
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(methods)), 4.4))
    ax.boxplot([d if d else [np.nan] for d in data], widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(d)), d, s=14, alpha=0.7, zorder=3,
                   color=_color({"role": roles.get(methods[i - 1])}))
    ax.set_xticks(range(1, len(methods) + 1), [f"{m}\nn={len(d)}" for m, d in zip(methods, data)], rotation=30,
                  ha="right", fontsize=7)
    ax.set_ylabel("AV-Align per clip")
    ax.set_title(f"per-clip scores (undefined clips left out)\n{title}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_profile(profiles: Sequence[dict], order: Sequence[str], path: Path, title: str = "") -> Path | None:
    """Where each generating method's time goes: mean seconds per clip and stage, stacked; on a GPU
    also the peak memory of each stage.  None when no method was profiled."""
    clips = [p for p in profiles if p.get("kind") == "clip"]
    means = stage_means(profiles, order)
    methods = list(means)
    if not methods:
        return None
    plt = _plt()
    gpu = any(p.get("stage_peak_mem_mb") for p in clips)
    fig, axes = plt.subplots(1, 2 if gpu else 1, figsize=(max(6.5, 1.6 * len(methods)) * (2 if gpu else 1), 4.6),
                             squeeze=False)
    x = np.arange(len(methods))
    bottom = np.zeros(len(methods))
    n = [sum(p["method"] == m for p in clips) for m in methods]
    for stage, color in zip(STAGES, STAGE_COLORS):
        secs = np.array([means[m][stage] for m in methods])
        axes[0][0].bar(x, secs, bottom=bottom, color=color, label=stage.replace("_", " "))
        bottom += secs
    for xi, total, k, m in zip(x, bottom, n, methods):
        axes[0][0].text(xi, total, f"{total:.2f} s\n{means[m]['step']:.3f} s/step\nn={k}", ha="center",
                        va="bottom", fontsize=7)
    axes[0][0].set_ylabel("seconds per clip (mean)")
    axes[0][0].set_ylim(0, bottom.max() * 1.6)
    axes[0][0].legend(fontsize=7, ncols=3, loc="upper center")
    axes[0][0].set_title(f"time per stage\n{title}", fontsize=9)
    if gpu:
        width = 0.8 / len(STAGES)
        for j, (stage, color) in enumerate(zip(STAGES, STAGE_COLORS)):
            peak = [max((p["stage_peak_mem_mb"] or {}).get(stage, np.nan) for p in clips if p["method"] == m)
                    for m in methods]
            axes[0][1].bar(x - 0.4 + (j + 0.5) * width, np.nan_to_num(peak), width, color=color, label=stage)
        axes[0][1].set_ylabel("peak GPU memory (MiB, torch)")
        axes[0][1].set_title("peak memory per stage", fontsize=9)
        axes[0][1].legend(fontsize=7, ncols=3, loc="upper center")
    for ax in axes[0]:
        ax.set_xticks(x, methods, rotation=20, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_timelines(records: Sequence[dict], order: Sequence[str], folder: Path, per_method: int = 2) -> list[Path]:
    """Alignment timelines (onset envelope, flow, matched peaks) of the first clips of each method,
    drawn from the stored records (no media file is read)."""
    from avalign import AVAlignResult
    from avalign.plot import plot_result

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for m in order:
        mine = [r for r in records if r["method"] == m and r.get("avalign") and r["status"] != "error"]
        for r in sorted(mine, key=lambda r: r["clip_id"])[:per_method]:
            result = AVAlignResult.from_record(r["avalign"])
            safe = m.replace(":", "_")
            title = f"{m} / {r['clip_id']} [{result.protocol.label}]"
            written.append(plot_result(result, folder / f"{safe}__{r['clip_id']}.png", title=title))
    return written


def plot_filmstrip(records: Sequence[dict], order: Sequence[str], clip_id: str, path: Path, title: str = "") -> Path | None:
    """One clip as every method made it: per method, its frames side by side on the time axis (as
    scored: the record's protocol) over its alignment timeline: the onset envelope with the audio
    peaks, the flow with the video peaks; matched peaks green, unmatched red.

    The peaks, flow and envelope come from the stored records; the video is read only to show its
    frames (nothing is scored again); a method whose clip file is gone is left out.  Returns None when
    no method has a scored record of the clip with its file.
    """
    from avalign import AVAlignResult
    from avalign.core import ONSET_HOP
    from avalign.readers import read_video_rgb

    rows = []
    for m in order:
        found = [r for r in records if r["method"] == m and r["clip_id"] == clip_id and r.get("avalign")
                 and r["status"] != "error"]
        if found and Path(found[-1]["avalign"]["video"]).is_file():  # a run folder without its clips: no strip
            rows.append((m, found[-1]["role"] if found[-1].get("role") else "compared",
                         AVAlignResult.from_record(found[-1]["avalign"])))
    if not rows:
        return None
    plt = _plt()
    fig, axes = plt.subplots(2 * len(rows), 1, figsize=(11, 1.9 * len(rows)), sharex=True,
                             gridspec_kw={"height_ratios": [1.1, 1] * len(rows)})
    for k, (m, role, result) in enumerate(rows):
        ax_img, ax_t = axes[2 * k], axes[2 * k + 1]
        frames, _ = read_video_rgb(result.video, result.protocol)
        fps = float(result.fps)
        strip = np.concatenate(list(frames), axis=1)
        ax_img.imshow(strip, extent=(-0.5 / fps, (len(frames) - 0.5) / fps, 0, 1), aspect="auto",
                      interpolation="nearest")
        ax_img.set_yticks([])
        score = "undefined" if result.score is None else f"{result.score:.2f}"
        ax_img.set_title(f"{m} ({role}): AV-Align {score}, {result.n_matches} of {len(result.audio_peaks)} audio / "
                         f"{len(result.video_peaks)} video peaks matched", fontsize=8, loc="left")
        matched_a, matched_v = {a for a, _ in result.matches}, {v for _, v in result.matches}
        env = result.onset_envelope
        if env is not None and len(env) and result.audio_sr:
            t = np.arange(len(env)) * ONSET_HOP / result.audio_sr
            ax_t.plot(t, env / max(float(np.max(env)), 1e-12), color="tab:blue", lw=0.8)
        traj = np.asarray(result.flow_trajectory)
        if traj.size:
            ax_t.plot(np.arange(traj.size) / fps, traj / max(float(traj.max()), 1e-12), color="tab:orange", lw=0.8,
                      marker=".", ms=2)
        for a in result.audio_peaks:
            ax_t.axvline(a, ymin=0.5, ymax=1.0, color="tab:green" if a in matched_a else "tab:red", lw=1.2)
        for v in result.video_peaks:
            ax_t.axvline(v, ymin=0.0, ymax=0.5, color="tab:green" if v in matched_v else "tab:red", lw=1.2, ls="--")
        ax_t.set_yticks([])
        ax_t.set_ylabel("audio (top)\nvideo (bottom)", fontsize=6)
    axes[-1].set_xlabel("time (s): blue onset strength, orange flow (each normalised); solid lines audio peaks, "
                        "dashed video peaks; green matched, red not")
    fig.suptitle(f"clip {clip_id}" + (f" [{title}]" if title else ""), fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


__all__ = ["plot_av_align", "plot_time_memory", "plot_distribution", "plot_profile", "plot_timelines",
           "plot_filmstrip"]
