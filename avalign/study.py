"""``python -m avalign study PATH... --out DIR``: how far AV-Align moves under what should and should not move it.

Per clip, the score under:

* ``offset``: the audio shifted by k frame periods (k/fps s; positive = audio later; zero-padded,
  same length).  The video side does not change, so each offset re-analyses only the shifted audio
  against the unchanged clip's video peaks.  A sync metric should peak at offset 0;
* ``fps``: re-timing to 8, 12, 24 fps (the protocol's conform step), and ``native`` (the unchanged clip);
* ``size``: resizing to a short side of 128, 256, 384 px (aspect kept: the conform step's
  cover-and-crop crops nothing), and ``native``;
* ``crf``: H.264 re-encoding at CRF 18, 28, 38 (PyAV, in the driver, written under ``DIR/work/``),
  then scored through the executors;
* ``flow``: every flow mode.

Every condition changes one part of the base protocol (``--fps``/``--size``/``--duration``/``--flow``,
by default each clip as decoded) and keeps the rest; ``native`` rows are the unchanged clips (labelled
with the base's value where the base sets it).  Every condition but the offsets is one pass of
:func:`avalign.score_files` (local processes or Ray).
Rows go to ``DIR/study.jsonl`` as they are made (a killed study resumes; nothing is redone);
``study.csv`` summarises each factor and value: the mean with a bootstrap CI, the mean |Δ| against the
unchanged clip and Spearman's ρ against the unchanged scores; ``offset.png`` and ``factors.png`` plot them.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from . import core
from .io import (FolderClaimError, JsonlWriter, atomic_path, claim_folder, lock_output, read_audio, read_jsonl,
                 save_figure)
from .parallel import Job, score_files
from .protocol import Protocol
from .score import AVAlignResult, analyze_audio, resolve_audio
from .stats import bootstrap_ci
from .variants import Variant, get_variant

FACTORS = ("offset", "fps", "size", "crf", "flow")


@dataclass(frozen=True)
class StudySettings:
    """What a study varies (a small setting makes it quick)."""

    offsets: int = 6  #: offsets -k..k frames
    fps: tuple[float, ...] = (8.0, 12.0, 24.0)
    sizes: tuple[int, ...] = (128, 256, 384)  #: short side, px
    crf: tuple[int, ...] = (18, 28, 38)
    flow: tuple[str, ...] = core.FLOW_MODES
    factors: tuple[str, ...] = FACTORS


def shift_audio(y: np.ndarray, sr: int, seconds: float) -> np.ndarray:
    """``(n,)`` or ``(channels, n)`` samples moved later by ``seconds`` (earlier when negative),
    zero-padded, same length."""
    n = int(round(abs(seconds) * sr))
    out = np.zeros_like(y)
    if n >= y.shape[-1]:
        return out
    if seconds >= 0:
        out[..., n:] = y[..., : y.shape[-1] - n]
    else:
        out[..., : y.shape[-1] - n] = y[..., n:]
    return out


def _row(clip: str, factor: str, value, result: AVAlignResult | None = None, *, score=None, n_audio=0, n_video=0,
         n_matches=0, status="ok", error=None) -> dict:
    if result is not None:
        score, status, error = result.score, result.status, result.error
        n_audio, n_video, n_matches = len(result.audio_peaks), len(result.video_peaks), result.n_matches
    return {"clip": clip, "factor": factor, "value": value, "score": score, "status": status, "n_audio": n_audio,
            "n_video": n_video, "n_matches": n_matches, "error": error}


def offset_rows(base: AVAlignResult, variant: Variant, offsets: int) -> list[dict]:
    """Rows of the audio offsets -k..k frames (0 is ``base`` itself), from the base result's video
    peaks and the shifted audio."""
    y, sr = read_audio(base.audio or base.video)
    return [_row(base.video, "offset", 0, base) if k == 0 else
            {**offset_row(base, variant, k / base.fps, (y, sr)), "value": k}
            for k in range(-offsets, offsets + 1)]


def offset_row(base: AVAlignResult, variant: Variant, seconds: float, audio: tuple | None = None) -> dict:
    """The row of ``base``'s clip with its audio shifted by ``seconds`` (positive: later; the row's
    ``value``), scored against the unchanged video peaks; ``audio`` is ``(y, sr)`` when already read."""
    y, sr = audio if audio is not None else read_audio(base.audio or base.video)
    v_peaks = np.asarray(base.video_peaks)
    peaks = analyze_audio(shift_audio(y, sr, seconds), sr, variant, base.protocol).peaks
    matches = core.match_peaks(peaks, v_peaks, base.fps, one_to_one=variant.one_to_one)
    undefined = len(peaks) == 0 and len(v_peaks) == 0
    score = None if undefined else core.iou(len(matches), len(peaks), len(v_peaks), variant.iou_eps)
    return _row(base.video, "offset", seconds, score=score, n_audio=len(peaks), n_video=len(v_peaks),
                n_matches=len(matches), status="undefined" if undefined else "ok")


def short_side_size(shape: Sequence[int], side: int) -> tuple[int, int]:
    """(width, height) with the shorter side ``side`` px and the aspect ratio kept."""
    h, w = int(shape[0]), int(shape[1])
    if h <= w:
        return max(1, round(w * side / h)), side
    return side, max(1, round(h * side / w))


def reencode(video: str, crf: int, out: Path) -> Path:
    """``video`` re-encoded with H.264 at ``crf`` (PyAV), at its own rate and size (even sizes)."""
    from .io import read_video_frames, write_video

    if out.exists():
        return out
    frames, fps = read_video_frames(video)
    h, w = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    with atomic_path(out) as tmp:
        write_video(tmp, frames[:, :h, :w], fps, crf=crf)
    return out


def run_study(paths: Iterable[str], out_dir: str | os.PathLike, settings: StudySettings = StudySettings(), *,
              variant: str | Variant = "tempotokens-2025", workers: int | None = None, executor: str = "local",
              address: str | None = None, progress=None, protocol: Protocol | None = None) -> list[dict]:
    """Run (or resume) the study of the clips ``paths``; returns every row of ``study.jsonl``.

    ``protocol`` is how the unchanged clips (and so the offsets, in its frame periods) are scored; by
    default each clip as decoded; every condition changes one part of it.  Rows name each clip by
    its absolute path, so a study resumes from any working directory.  With ``executor="ray"`` one
    cluster serves every condition."""
    if executor == "ray":
        from .ray_executor import connect, import_ray

        ray = import_ray()
        if not ray.is_initialized():
            connect(ray, address, workers or 1)
            try:
                return run_study(paths, out_dir, settings, variant=variant, workers=workers, executor=executor,
                                 address=address, progress=progress, protocol=protocol)
            finally:
                ray.shutdown()
    variant = get_variant(variant)
    base = protocol or Protocol()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with lock_output(out, kind="dir"):  # one live study per folder (else LockedError: one line)
        # DIR/study.json names the variant and base protocol; a resumed study must use the same
        claim_folder(out, {"variant": variant.name, "protocol": base.to_record()},
                     file="study.json", records="study.jsonl", error=StudyFolderError)
        rows_path = out / "study.jsonl"
        done = {(r["clip"], r["factor"], str(r["value"])) for r in read_jsonl(rows_path)}
        videos = [os.path.abspath(p) for p in paths]
        run = dict(workers=workers, executor=executor, address=address)

        def todo(factor, value):
            return [v for v in videos if (v, factor, str(value)) not in done]

        with JsonlWriter(rows_path) as writer:
            def emit(rows):
                for r in rows:
                    if (r["clip"], r["factor"], str(r["value"])) not in done:
                        writer.write(r)
                        done.add((r["clip"], r["factor"], str(r["value"])))
                if progress:
                    progress()

            # the unchanged clips (offset 0), then every offset from their video peaks
            bases: dict[str, AVAlignResult] = {}
            wanted = range(-settings.offsets, settings.offsets + 1) if "offset" in settings.factors else [0]
            need_base = [v for v in videos if any((v, "offset", str(k)) not in done for k in wanted)]
            for r in score_files(need_base, variant, protocol=base, **run):
                bases[r.video] = r
                emit(offset_rows(r, variant, settings.offsets) if r.status != "error" and "offset" in settings.factors
                     else [_row(r.video, "offset", 0, r)])
            # each condition changes one part of the base protocol and keeps the others
            conditions: list[tuple[str, object, Protocol]] = []
            if "fps" in settings.factors:
                conditions += [("fps", f, replace(base, fps=f)) for f in settings.fps if f != base.fps]
            if "flow" in settings.factors:
                conditions += [("flow", m, replace(base, flow=m)) for m in settings.flow if m != base.flow]
            for factor, value, condition in conditions:
                emit(_row(r.video, factor, value, r) for r in score_files(todo(factor, value), variant,
                                                                          protocol=condition, **run))
            # the unchanged clip is also the base protocol's value of fps, size and flow ("native":
            # the clip's own, where the base keeps it)
            copies = []
            if "fps" in settings.factors:
                copies.append(("fps", base.fps if base.fps is not None else "native"))
            if "size" in settings.factors:
                copies.append(("size", f"{base.width}x{base.height}" if base.width is not None else "native"))
            if "flow" in settings.factors and base.flow in settings.flow:
                copies.append(("flow", base.flow))
            unchanged = [r for r in read_jsonl(rows_path) if r["factor"] == "offset" and r["value"] == 0
                         and r["clip"] in videos]
            for factor, value in copies:
                emit(_row(r["clip"], factor, value, score=r["score"], n_audio=r["n_audio"], n_video=r["n_video"],
                          n_matches=r["n_matches"], status=r["status"], error=r.get("error")) for r in unchanged)
            if "size" in settings.factors:
                # the short side is the clip's own, never the base's resized frames (a resumed study
                # probes it; a fresh one must give the same sizes)
                shapes = _shapes(videos, bases if base.width is None else {})
                for side in settings.sizes:
                    groups: dict[tuple[int, int], list[str]] = {}
                    for v in todo("size", side):
                        if v in shapes:
                            groups.setdefault(short_side_size(shapes[v], side), []).append(v)
                    for (w, h), group in sorted(groups.items()):
                        emit(_row(r.video, "size", side, r) for r in score_files(group, variant, protocol=replace(
                            base, width=w, height=h), **run))
            if "crf" in settings.factors:
                work = out / "work"
                work.mkdir(exist_ok=True)
                for crf in settings.crf:
                    jobs, back = [], {}
                    for i, v in enumerate(todo("crf", crf)):
                        try:
                            encoded = reencode(v, crf, work / f"crf{crf}_{i:05d}_{Path(v).stem}.mp4")
                        except Exception as exc:  # a clip that cannot be read: its row says so
                            emit([_row(v, "crf", crf, status="error",
                                       error=f"cannot re-encode: {' '.join(f'{type(exc).__name__}: {exc}'.split())}")])
                            continue
                        jobs.append(Job(str(encoded), resolve_audio(v) or v))
                        back[str(encoded)] = v
                    emit(_row(back[r.video], "crf", crf, r) for r in score_files(jobs, variant, protocol=base, **run))
        rows = read_jsonl(rows_path)
        write_summary(rows, out / "study.csv")
        plot_study(rows, out)
    return rows


class StudyFolderError(FolderClaimError):
    """A study folder made with another variant or base protocol: one line (exit status 2)."""


def _shapes(videos: list[str], bases: dict[str, AVAlignResult]) -> dict[str, tuple[int, int]]:
    """(H, W) of each clip: from this run's base results, else probed."""
    import cv2

    from .io import open_capture

    shapes = {v: tuple(r.frame_shape[:2]) for v, r in bases.items() if r.frame_shape}
    for v in videos:
        if v not in shapes:
            try:
                with open_capture(v) as (cap, _):
                    shapes[v] = (int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
            except Exception:
                continue
    return shapes


# --------------------------------------------------------------------------------------------
def summary_rows(rows: Sequence[dict]) -> list[dict]:
    """Per factor and value: n, mean with a bootstrap 95% CI, mean |Δ| and Spearman ρ against the
    unchanged clips (offset 0), over the clips with a score in both."""
    from scipy.stats import spearmanr

    base = {r["clip"]: r["score"] for r in rows if r["factor"] == "offset" and r["value"] == 0
            and r["score"] is not None}
    out = []
    keys = list(dict.fromkeys((r["factor"], r["value"]) for r in rows))
    keys.sort(key=lambda k: (FACTORS.index(k[0]), _order(k[1])))
    for factor, value in keys:
        scores = {r["clip"]: r["score"] for r in rows if r["factor"] == factor and r["value"] == value
                  and r["score"] is not None}
        values = [scores[c] for c in sorted(scores)]
        low, high = bootstrap_ci(values)
        paired = sorted(set(scores) & set(base))
        a, b = np.array([scores[c] for c in paired]), np.array([base[c] for c in paired])
        rho = float(spearmanr(a, b).statistic) if len(paired) > 2 and a.std() > 0 and b.std() > 0 else float("nan")
        out.append({"factor": factor, "value": value, "n": len(values),
                    "mean": float(np.mean(values)) if values else float("nan"), "ci_low": low, "ci_high": high,
                    "mean_abs_delta": float(np.mean(np.abs(a - b))) if paired else float("nan"),
                    "spearman_rho": rho, "n_paired": len(paired)})
    return out


def _order(value) -> tuple:
    return (0, float(value)) if isinstance(value, (int, float)) else (1, str(value))  # "native" last


def write_summary(rows: Sequence[dict], path: Path) -> list[dict]:
    table = summary_rows(rows)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]) if table else ["factor"])
        writer.writeheader()
        for r in table:
            writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else
                                 f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return table


def plot_study(rows: Sequence[dict], out: Path, title: str = "") -> list[Path]:
    """``offset.png`` (mean score against audio offset, CI band) and ``factors.png`` (mean score and
    mean |Δ| per value of the other factors)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summary_rows(rows)
    written = []
    off = [r for r in table if r["factor"] == "offset"]
    if off:
        written.append(plot_offset_panel(rows, out / "offset.png", title=title))
    others = [f for f in FACTORS[1:] if any(r["factor"] == f for r in table)]
    if others:
        base = next((r["mean"] for r in off if r["value"] == 0), float("nan"))
        fig, axes = plt.subplots(1, len(others), figsize=(3.6 * len(others), 3.8), squeeze=False)
        for ax, factor in zip(axes[0], others):
            mine = [r for r in table if r["factor"] == factor]
            x = np.arange(len(mine))
            mean = np.array([r["mean"] for r in mine])
            err = np.nan_to_num(np.vstack([mean - [r["ci_low"] for r in mine], [r["ci_high"] for r in mine] - mean]))
            ax.bar(x, np.nan_to_num(mean), yerr=err, capsize=3, color="#1f77b4")
            ax.axhline(base, color="black", lw=0.8, ls="--", label="unchanged")
            for xi, r in zip(x, mine):
                ax.text(xi, 0.02, f"|Δ| {r['mean_abs_delta']:.2f}\nρ {r['spearman_rho']:.2f}", ha="center",
                        fontsize=6, color="white")
            ax.set_xticks(x, [str(r["value"]) for r in mine], rotation=30, ha="right", fontsize=7)
            ax.set_title(factor, fontsize=9)
            ax.set_ylim(0, 1.05)
        axes[0][0].set_ylabel("mean AV-Align (95% CI)")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        save_figure(fig, out / "factors.png", dpi=110)
        plt.close(fig)
        written.append(out / "factors.png")
    return written


def plot_offset_panel(rows: Sequence[dict], path: Path, label: str = "", title: str = "") -> Path:
    """The offset curve: mean AV-Align (95% bootstrap band) against the audio offset in frames."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    off = [r for r in summary_rows(rows) if r["factor"] == "offset"]
    x = np.array([r["value"] for r in off], float)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.fill_between(x, [r["ci_low"] for r in off], [r["ci_high"] for r in off], alpha=0.25, label="95% CI")
    ax.plot(x, [r["mean"] for r in off], marker="o", label=f"mean AV-Align{' — ' + label if label else ''}")
    ax.axvline(0, color="gray", lw=0.8, ls=":")
    ax.set_xlabel("audio offset (frames; positive = audio later)")
    ax.set_ylabel("AV-Align")
    n = off[0]["n"] if off else 0
    ax.set_title(f"offset curve (n={n} clips){chr(10) + title if title else ''}", fontsize=9)
    highs = [r["ci_high"] for r in off if r["ci_high"] == r["ci_high"]]  # no CI where no clip scored (NaN)
    ax.set_ylim(0, max(1.05, max(highs) + 0.05) if highs else 1.05)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def iter_factors(text: str) -> Iterator[str]:
    for f in (x.strip() for x in text.split(",") if x.strip()):
        if f not in FACTORS:
            raise ValueError(f"unknown factor {f!r}; choose from {', '.join(FACTORS)}")
        yield f
