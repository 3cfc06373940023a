"""Alignment timeline plots: onset envelope, flow trajectory, both peak sets and the matches."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .core import ONSET_HOP
from .io import save_figure
from .score import AVAlignResult


def plot_result(result: AVAlignResult, path: str | os.PathLike, title: str | None = None) -> Path:
    """Write one PNG with the audio and video evidence of a result on one time axis.

    Top: the onset envelope (normalised to [0, 1]) with the audio peaks.  Bottom: the flow
    trajectory (pixels/frame) with the video peaks and the 0.1 threshold when the variant has
    one.  Matched pairs are joined by green lines across both panels; unmatched peaks are red.

    Returns
    -------
    Path
        The written file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import ConnectionPatch

    from .variants import get_variant

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax_a, ax_v) = plt.subplots(2, 1, figsize=(10, 5), sharex=True, constrained_layout=True)

    matched_a = {a for a, _ in result.matches}
    matched_v = {v for _, v in result.matches}

    env = result.onset_envelope
    if env is not None and len(env) and result.audio_sr:
        t_env = np.arange(len(env)) * ONSET_HOP / result.audio_sr
        peak = float(np.max(env))
        ax_a.plot(t_env, env / peak if peak > 0 else env, color="tab:blue", lw=1, label="onset strength")
    ax_a.set_ylabel("onset strength\n(normalised)")
    for a in result.audio_peaks:
        ax_a.axvline(a, color="tab:green" if a in matched_a else "tab:red", lw=1, alpha=0.8)

    traj = np.asarray(result.flow_trajectory)
    if traj.size and result.fps:
        ax_v.plot(np.arange(traj.size) / result.fps, traj, color="tab:orange", lw=1, marker=".", ms=3, label="flow")
        threshold = get_variant(result.variant).flow_threshold
        if threshold is not None:
            ax_v.axhline(threshold, color="gray", lw=0.8, ls=":", label=f"threshold {threshold}")
    ax_v.set_ylabel("mean flow\n(pixels/frame)")
    ax_v.set_xlabel("time (s)")
    for v in result.video_peaks:
        ax_v.axvline(v, color="tab:green" if v in matched_v else "tab:red", lw=1, alpha=0.8)

    for a, v in result.matches:
        ax_a_y = ax_a.get_ylim()[0]
        ax_v_y = ax_v.get_ylim()[1]
        fig.add_artist(ConnectionPatch((a, ax_a_y), (v, ax_v_y), "data", "data", axesA=ax_a, axesB=ax_v,
                                       color="tab:green", lw=1.5))

    score = "undefined" if result.score is None else f"{result.score:.3f}"
    head = title or Path(result.video).name
    ax_a.set_title(
        f"{head} - AV-Align {score} ({result.variant}): {len(result.audio_peaks)} audio / "
        f"{len(result.video_peaks)} video peaks, {result.n_matches} matched (green)",
        fontsize=10,
    )
    ax_v.legend(loc="upper right", fontsize=8)
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path
