"""``python -m benchmarks.study``: the audio-offset study of every per-clip metric, side by side.

::

    python -m benchmarks.study PATH... --out DIR [--metrics av_align,desync,ib] [--weights DIR]
            [--offsets 1,2,4,8,12] [--duration S] [--variant V] [--short error|pad]

Each clip's audio is shifted by ``k / 25`` s for every ``k`` of ``--offsets`` and its negative
(positive = audio later, zero-padded, same length: :func:`avalign.study.shift_audio`), and scored by
each metric against the unchanged video: AV-Align (the clip as decoded, its video peaks computed
once; ``avalign.study.offset_row``), DeSync and IB-score (their ``avbench`` lineage at L =
``--duration``, else the clip's length; the video decoded once per rule for every offset).  Rows go
to ``DIR/study.jsonl`` as they are made (a killed study resumes; nothing is redone), then:

* ``DIR/auc.csv`` and ``auc.md``: per metric and offset, the **offset-detection AUC**: the
  probability that a shifted clip looks less synchronous than an unshifted one (Mann-Whitney, ties
  count one half; shifted and unshifted values pooled over the clips).  "Less synchronous" is a lower
  AV-Align or IB-score, or a higher DeSync.  0.5 is chance; 1 is perfect detection.
* ``DIR/offset.png``: each metric's mean against the offset, and DeSync's predicted offset on the
  study's axis (Synchformer's sign, positive = audio earlier, converted: ``-mean(offsets_s)``).

Findings need the published weights: with the test fixture's random weights the curves mean nothing.
``avalign`` does not import this module (nor the learned metrics): the dependency runs one way.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from avalign import DEFAULT_VARIANT, VARIANTS
from avalign.flags import HelpFormatter, UsageError, run_cli
from avalign.io import (FolderClaimError, JsonlWriter, claim_folder, lock_output, read_jsonl, save_figure,
                        write_text_atomic)
from avalign.runctl import EXIT_ITEM_ERROR, EXIT_OK, exit_with

from .syncprotocol import SHORT_POLICIES

STUDY_FPS = 25  #: offsets are frame periods at 25 fps, the learned metrics' video rate
METRICS = ("av_align", "desync", "ib")
NAMES = {"av_align": "AV-Align", "desync": "DeSync", "ib": "IB-score"}
#: +1: a higher value means "looks synchronous"; -1: a lower one does (DeSync)
DIRECTION = {"av_align": 1, "desync": -1, "ib": 1}


class StudyFolderError(FolderClaimError):
    """A study folder made with other settings: one line (exit status 2)."""


def offsets_s(frames: Sequence[int]) -> list[float]:
    """The signed offsets in seconds, ascending: ``±k / 25`` for each ``k``, and 0."""
    ks = sorted({0, *frames, *(-k for k in frames)})
    return [k / STUDY_FPS for k in ks]


def auc(shifted: Sequence[float], unshifted: Sequence[float], direction: int) -> float:
    """P(a shifted clip looks less synchronous than an unshifted one), ties 1/2 (Mann-Whitney U /
    (m n)); ``direction`` +1 when a higher value is more synchronous.  NaN when a side is empty."""
    a, b = np.asarray(shifted, float) * direction, np.asarray(unshifted, float) * direction
    if a.size == 0 or b.size == 0:
        return float("nan")
    less = (a[:, None] < b[None, :]).sum() + 0.5 * (a[:, None] == b[None, :]).sum()
    return float(less / (a.size * b.size))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.study", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="videos or folders of videos (audio: X.wav beside, "
                                                            "else the mp4's own track)")
    p.add_argument("--out", required=True, metavar="DIR", help="study folder (resumable)")
    p.add_argument("--metrics", default=",".join(METRICS), metavar="LIST", help="comma-separated: "
                                                                                 + ", ".join(METRICS))
    p.add_argument("--weights", metavar="DIR", help="folder with the published weight files (desync, ib)")
    p.add_argument("--offsets", default="1,2,4,8,12", metavar="LIST", help="offsets in frames at 25 fps; each "
                                                                            "is studied with both signs")
    p.add_argument("--duration", type=float, metavar="S", help="clip length L of DeSync and IB-score "
                                                               "(default: each clip's)")
    p.add_argument("--variant", default=DEFAULT_VARIANT, choices=list(VARIANTS), help="AV-Align variant")
    p.add_argument("--short", default="error", choices=SHORT_POLICIES,
                   help="DeSync / IB of a clip shorter than the lineage needs: not applicable, or padded")
    p.add_argument("--device", default=None, metavar="D", help="torch device (default: cuda if available, else cpu)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status: 0, 1 when a clip failed, 2 for bad usage or weights."""
    from benchmarks.metrics.weights import WeightsError

    args = build_parser().parse_args(argv)
    return run_cli("benchmarks.study", lambda: _run(args), fatal=(WeightsError, StudyFolderError))


def _parse(args) -> tuple[list[str], list[float]]:
    metrics = list(dict.fromkeys(m.strip() for m in args.metrics.split(",") if m.strip()))
    if not metrics or any(m not in METRICS for m in metrics):
        raise UsageError(f"--metrics {args.metrics!r}: choose from {', '.join(METRICS)} (comma-separated)")
    try:
        frames = [int(k) for k in args.offsets.split(",") if k.strip()]
    except ValueError:
        raise UsageError(f"--offsets {args.offsets!r}: whole numbers of frames, comma-separated") from None
    if not frames or any(k <= 0 for k in frames):
        raise UsageError(f"--offsets {args.offsets!r}: positive whole numbers of frames (both signs are studied)")
    from benchmarks.metrics.perclip import check_duration

    check_duration(args.duration)
    return metrics, offsets_s(frames)


def _run(args) -> int:
    import torch

    from benchmarks.metrics.perclip import expand
    from benchmarks.metrics.weights import load_sync_model

    metrics, offsets = _parse(args)
    videos = [os.path.abspath(v) for v in expand(args.paths)]
    models = {m: load_sync_model(m, args.weights) for m in metrics if m != "av_align"}  # a bad file: before any work
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    identity = {"metrics": metrics, "offsets_s": offsets, "variant": args.variant, "duration_s": args.duration,
                "short": args.short, "lineage": "avbench",
                "weights_sha256": {m: models[m][2] for m in models}}
    with lock_output(out, kind="dir"):
        claim_folder(out, identity, file="study.json", records="study.jsonl", error=StudyFolderError)
        _score(out / "study.jsonl", videos, metrics, offsets, models, args, device)
        newest = {(r["clip"], r["metric"], r["offset_s"]): r for r in read_jsonl(out / "study.jsonl")}
        rows = [r for r in newest.values() if r["clip"] in set(videos)]
        failed = sum(r["status"] == "error" for r in rows)  # of this run and of those before it
        table = auc_table(rows, metrics, offsets)
        write_auc(table, out, offsets)
        plot_offsets(rows, metrics, out / "offset.png")
    print(render_auc(table, offsets))
    print(f"study: {out / 'auc.csv'}, {out / 'offset.png'}")
    if failed:
        print(f"benchmarks.study: {failed} rows failed (recorded; a rerun tries them again)", file=sys.stderr)
    return EXIT_ITEM_ERROR if failed else EXIT_OK


def _score(path: Path, videos, metrics, offsets, models, args, device) -> None:
    from tqdm import tqdm

    from avalign.io import read_audio
    from avalign.study import offset_row, shift_audio
    from avalign.score import score_file
    from avalign.variants import get_variant

    from benchmarks.metrics import desync, ib
    from benchmarks.metrics.avdecode import DecodeCache, DecodeError
    from benchmarks.metrics.perclip import one_line

    # a row that failed is tried again; the newest row of each (clip, metric, offset) counts
    done = {(r["clip"], r["metric"], r["offset_s"]): r["status"] for r in read_jsonl(path)}
    done = {k for k, status in done.items() if status != "error"}
    variant = get_variant(args.variant)
    with JsonlWriter(path) as writer:
        for video in tqdm(videos, unit="clip", desc="offset study", disable=None, file=sys.stderr):
            def emit(metric, offset, status, value=None, error=None, **extra):
                writer.write({"clip": video, "metric": metric, "offset_s": offset, "status": status, "value": value,
                              "error": error, **extra})
                done.add((video, metric, offset))

            missing = {m: [o for o in offsets if (video, m, o) not in done] for m in metrics}
            if "av_align" in metrics and missing["av_align"]:
                base = score_file(video, variant=variant)
                if base.status == "error":
                    for o in missing["av_align"]:
                        emit("av_align", o, "error", error=base.error)
                else:
                    audio = read_audio(base.audio or base.video)
                    for o in missing["av_align"]:
                        r = offset_row(base, variant, o, audio) if o else {"score": base.score, "status": base.status}
                        emit("av_align", o, r["status"], r["score"])
            cache = DecodeCache(video)  # the video decoded once per rule, for every offset
            for m in (m for m in metrics if m != "av_align" and missing[m]):
                for o in missing[m]:
                    try:
                        y, sr = cache.audio()
                        shifted = cache.with_audio(shift_audio(y, sr, o), sr)
                        scorer = desync.score_clip if m == "desync" else ib.score_clip
                        r = scorer(models[m][0], shifted, args.duration, "avbench", args.short, None, device)
                    except desync.TooShort as exc:
                        emit(m, o, "not_applicable", error=one_line(exc, video))
                    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
                        emit(m, o, "error", error=one_line(exc, video))
                        tqdm.write(f"benchmarks.study: {m} of {video} at {o:+g} s: {exc}", file=sys.stderr)
                    else:
                        if m == "desync":  # Synchformer's sign (positive: audio earlier) on the study's axis
                            emit(m, o, "ok", r["desync"], offset_study_axis_s=-float(np.mean(r["offsets_s"])),
                                 offsets_s=r["offsets_s"])
                        else:
                            emit(m, o, "ok", r["ib_score"])


def auc_table(rows: Sequence[dict], metrics: Sequence[str], offsets: Sequence[float]) -> dict[str, dict]:
    """``{metric: {offset_s: auc}}`` for every non-zero offset, with ``n`` (clips with both values)."""
    table: dict[str, dict] = {}
    for m in metrics:
        values = {(r["clip"], r["offset_s"]): r["value"] for r in rows if r["metric"] == m and r["status"] == "ok"
                  and r["value"] is not None}
        zero = {c: v for (c, o), v in values.items() if o == 0}
        table[m] = {"n": len(zero)}
        for o in offsets:
            if o:
                shifted = [v for (c, k), v in values.items() if k == o and c in zero]
                table[m][o] = auc(shifted, list(zero.values()), DIRECTION[m])
    return table


def render_auc(table: dict, offsets: Sequence[float]) -> str:
    """The AUC table as Markdown (offsets in seconds, positive = audio later)."""
    cols = [o for o in offsets if o]
    head = "| metric | n | " + " | ".join(f"{o:+.2f} s" for o in cols) + " |"
    lines = ["Offset-detection AUC (shifted vs unshifted; 0.5 = chance; offsets at 25 fps, positive = audio later)",
             "", head, "|---|---:|" + "---:|" * len(cols)]
    for m, row in table.items():
        cells = ["—" if np.isnan(row[o]) else f"{row[o]:.3f}" for o in cols]
        lines.append(f"| {NAMES[m]} | {row['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_auc(table: dict, out: Path, offsets: Sequence[float]) -> None:
    cols = [o for o in offsets if o]
    lines = ["metric,n," + ",".join(f"{o:g}" for o in cols)]
    lines += [f"{m},{row['n']}," + ",".join("" if np.isnan(row[o]) else f"{row[o]:.6g}" for o in cols)
              for m, row in table.items()]
    write_text_atomic(out / "auc.csv", "\n".join(lines) + "\n")
    write_text_atomic(out / "auc.md", render_auc(table, offsets) + "\n")


def plot_offsets(rows: Sequence[dict], metrics: Sequence[str], path: Path) -> Path:
    """Each metric's mean (and DeSync's predicted offset on the study's axis) against the offset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(metrics) + (["desync_axis"] if "desync" in metrics else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8), squeeze=False)
    for ax, m in zip(axes[0], panels):
        key, metric = ("offset_study_axis_s", "desync") if m == "desync_axis" else ("value", m)
        by: dict[float, list[float]] = {}
        for r in rows:
            if r["metric"] == metric and r["status"] == "ok" and r.get(key) is not None:
                by.setdefault(r["offset_s"], []).append(r[key])
        xs = sorted(by)
        ax.plot(xs, [np.mean(by[x]) for x in xs], marker="o")
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_xlabel("audio offset, s (positive: later)")
        ax.set_title("DeSync predicted offset (study axis), s" if m == "desync_axis" else NAMES[m], fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def console() -> None:
    exit_with(main())


if __name__ == "__main__":
    exit_with(main())
