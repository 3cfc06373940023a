"""``python -m benchmarks.metrics``: FVD, IS and CLIPSIM of folders of videos, from local weights.

::

    python -m benchmarks.metrics fvd REAL_DIR FAKE_DIR --weights DIR [--lineage styleganv|videogpt] [--metric-frames 16]
    python -m benchmarks.metrics is FAKE_DIR --weights DIR [--splits 10]
    python -m benchmarks.metrics clipsim DIR --labels CSV_OR_TXT --weights DIR [--template "{label}"] [--scale 100]
    python -m benchmarks.metrics desync PATH... --weights DIR [--duration S] [--lineage L] [--out R.jsonl]
    python -m benchmarks.metrics ib PATH... --weights DIR [--duration S] [--lineage L] [--out R.jsonl]

``desync`` and ``ib`` write one record per clip (:mod:`benchmarks.metrics.perclip`).

Each prints its value and, with ``--out R.json``, writes the value with everything that made it
(clip counts, ``lineage``: the metric's published computation, ``protocol``: the evaluation
protocol, weight file and digest, frames per clip, the clips refused and why).  Clips are read as
decoded; ``--fps``/``--size``/``--duration`` conform them first, as ``avalign score`` does, so a
benchmark run's protocol is reproduced with the same flags.  Exit status (:mod:`avalign.runctl`):
0, 1 when some clip was refused (the value is still computed from the others and written), 2 for
bad input (a missing weight file, an empty folder, no usable clip), 130/143 after SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from avalign.runctl import exit_with
from avalign.flags import HelpFormatter, UsageError, add_protocol_flags, protocol_from_args, run_cli
from avalign.io import MediaError, write_json_atomic
from avalign.protocol import Protocol
from avalign.runctl import EXIT_ITEM_ERROR, EXIT_OK

from .frechet import FrechetError
from .videos import extract, list_videos, stack
from .weights import WeightsError


InputError = UsageError  # bad input: one line, exit status 2


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, metavar="DIR", help="folder with the published weight files (docs: Weights)")
    add_protocol_flags(p, flow=False)
    p.add_argument("--device", default=None, metavar="D", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--batch-size", type=int, default=8, metavar="B", help="clips per detector call")
    p.add_argument("--out", metavar="R.json", help="write the result as JSON to this file")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.metrics", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="metric", required=True)
    f = sub.add_parser("fvd", help="Fréchet Video Distance of two folders (lower is better)",
                       formatter_class=HelpFormatter)
    f.add_argument("real_dir", metavar="REAL_DIR", help="folder of real clips")
    f.add_argument("fake_dir", metavar="FAKE_DIR", help="folder of generated clips")
    f.add_argument("--lineage", default="styleganv", choices=("styleganv", "videogpt"),
                   help="styleganv: i3d_torchscript.pt, biased covariance; videogpt: i3d_pretrained_400.pt, "
                        "224 crop, unbiased covariance")
    f.add_argument("--metric-frames", type=int, default=16, metavar="N",
                   help="first N consecutive frames of each clip fed to I3D")
    _common(f)
    i = sub.add_parser("is", help="Inception Score with C3D on UCF-101 (higher is better)",
                       formatter_class=HelpFormatter)
    i.add_argument("fake_dir", metavar="FAKE_DIR", help="folder of generated clips")
    i.add_argument("--splits", type=int, default=10, metavar="K", help="splits of the shuffled clips (capped at N)")
    _common(i)
    c = sub.add_parser("clipsim", help="CLIP similarity of each video's frames to its label (higher is better)",
                       formatter_class=HelpFormatter)
    c.add_argument("video_dir", metavar="DIR", help="folder of clips")
    c.add_argument("--labels", required=True, metavar="CSV_OR_TXT",
                   help="CSV with a name column (video, file, name or clip_id) and a label column; or a text "
                        "file of lines 'NAME LABEL...' (NAME: file name or stem)")
    c.add_argument("--template", default="{label}", metavar="TEXT", help="text compared with the frames; {label} is filled in")
    c.add_argument("--scale", type=float, default=1.0, metavar="X", help="multiply the cosine (100: the torchmetrics convention)")
    c.add_argument("--metric-frames", type=int, default=None, metavar="N",
                   help="first N frames of each clip fed to CLIP (default: all)")
    _common(c)
    from .perclip import add_parsers

    add_parsers(sub)
    return p


def read_labels(path: str | os.PathLike) -> dict[str, str]:
    """``{name: label}`` from a CSV (header with a name column and ``label``) or a text file of
    ``NAME LABEL...`` lines; names are matched by file name or stem."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: labels file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as exc:
        raise InputError(f"{path}: cannot read the labels ({type(exc).__name__}: not UTF-8 text?)") from None
    labels: dict[str, str] = {}
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        rows = list(reader)
        fields = reader.fieldnames or []
        key = next((k for k in ("video", "file", "name", "clip_id", "path") if k in fields), None)
        if key is None or "label" not in fields:
            raise InputError(f"{path}: the CSV needs a label column and a name column (video, file, name or clip_id)")
        labels = {Path(r[key]).name: (r["label"] or "").strip() for r in rows if r.get(key)}
    else:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.strip().split(None, 1)
            if len(parts) < 2:
                raise InputError(f"{path}:{n}: expected 'NAME LABEL', got {line.strip()!r}")
            labels[Path(parts[0]).name] = parts[1].strip()
    if not labels:
        raise InputError(f"{path}: no label")
    return labels


def label_for(video: Path, labels: dict[str, str]) -> str | None:
    """The video's label (by file name, else stem); None when it has none or an empty one."""
    return labels.get(video.name, labels.get(video.stem)) or None


def _protocol(args: argparse.Namespace) -> Protocol:
    return protocol_from_args(args)


def _write(out: str | None, result: dict) -> None:
    if out:
        write_json_atomic(out, result, default=str)


def run_fvd(args: argparse.Namespace, device: str) -> dict:
    from .fvd import LINEAGES, fvd, fvd_extractor

    real, fake = list_videos(args.real_dir), list_videos(args.fake_dir)
    ex = fvd_extractor(args.weights, args.lineage, args.metric_frames, device, args.batch_size)
    protocol = _protocol(args)
    rf, rs = extract(real, ex, protocol, desc="real")
    ff, fs = extract(fake, ex, protocol, desc="fake")
    if len(rf) < 2 or len(ff) < 2:
        raise InputError(f"FVD needs at least 2 usable clips on each side; got {len(rf)} real and {len(ff)} fake")
    real_x, fake_x = stack(rf, map(str, real)), stack(ff, map(str, fake))
    value = fvd(real_x, fake_x, args.lineage)
    from .frechet import KVD_DESCRIPTION, kvd

    return {"metric": "fvd", "fvd": value, "kvd": kvd(real_x, fake_x), "kvd_description": KVD_DESCRIPTION,
            "n_real": len(rf), "n_fake": len(ff), "lineage": args.lineage,
            "lineage_description": LINEAGES[args.lineage].description, **ex.describe(),
            "protocol": protocol.to_record(), "skipped": {**rs, **fs}}


def run_is(args: argparse.Namespace, device: str) -> dict:
    from .inception import is_extractor, inception_score

    fake = list_videos(args.fake_dir)
    ex = is_extractor(args.weights, device, args.batch_size)
    protocol = _protocol(args)
    ff, fs = extract(fake, ex, protocol)
    if not ff:
        raise InputError(f"{args.fake_dir}: no usable clip")
    mean, std = inception_score(stack(ff, map(str, fake)), args.splits)
    return {"metric": "is", "is": mean, "is_std": std, "n": len(ff), "splits": min(args.splits, len(ff)),
            "lineage": "isv2048_ucf", **ex.describe(), "protocol": protocol.to_record(), "skipped": fs}


def run_clipsim(args: argparse.Namespace, device: str) -> dict:
    from .clipsim import ClipSim, clip_scores, render, summarize_scores

    videos = list_videos(args.video_dir)
    labels = read_labels(args.labels)
    render(args.template, "x")  # a bad template fails before any model is loaded
    skipped = {str(v): f"no (or an empty) label in {args.labels}" for v in videos if label_for(v, labels) is None}
    for v in skipped:
        print(f"clipsim: skipped {v}: {skipped[v]}", file=sys.stderr)
    videos = [v for v in videos if str(v) not in skipped]
    if not videos:
        raise InputError(f"{args.labels}: labels none of the videos in {args.video_dir}")
    clip = ClipSim(args.weights, device)
    ex = clip.extractor(args.metric_frames, args.batch_size)
    frames: dict[str, int] = {}
    protocol = _protocol(args)
    feats, bad = extract(videos, ex, protocol, frame_counts=frames)
    used = [v for v in videos if str(v) in feats]
    if not used:
        raise InputError(f"{args.video_dir}: no usable clip")
    texts = [render(args.template, label_for(v, labels)) for v in used]
    unique = sorted(set(texts))
    text_feats = dict(zip(unique, clip.text_features(unique)))
    scores = clip_scores(stack(feats, map(str, used)), np.stack([text_feats[t] for t in texts]), args.scale)
    mean, low, high = summarize_scores(scores)
    return {"metric": "clipsim", "clipsim": mean, "clipsim_ci_low": low, "clipsim_ci_high": high, "n": len(used),
            "lineage": "mean over frames of cos(image, text), L2-normalised CLIP features; 95% bootstrap over videos",
            "template": args.template, "scale": args.scale, **ex.describe(), "protocol": protocol.to_record(),
            "frames_used": {v.name: frames.get(str(v)) for v in used},
            "per_video": {v.name: float(s) for v, s in zip(used, scores)}, "skipped": {**skipped, **bad}}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (module docstring)."""
    args = build_parser().parse_args(argv)
    return run_cli("benchmarks.metrics", lambda: _run(args), fatal=(WeightsError, MediaError, FrechetError, ValueError))


def _run(args: argparse.Namespace) -> int:
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.metric in ("desync", "ib"):  # per-clip records (benchmarks.metrics.perclip)
        from .perclip import run

        return run(args, device)
    frames = getattr(args, "metric_frames", None)
    if args.batch_size < 1 or (frames is not None and frames < 1):
        raise UsageError("--batch-size and --metric-frames must be at least 1")
    if args.metric == "is" and args.splits < 1:
        raise UsageError(f"--splits must be at least 1, got {args.splits}")
    run = {"fvd": run_fvd, "is": run_is, "clipsim": run_clipsim}[args.metric]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run(args, device)
    notes = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))
    for note in notes:
        print(f"benchmarks.metrics: warning: {note}", file=sys.stderr)
    result["warnings"] = notes
    _write(args.out, result)
    value = result[args.metric]
    extra = f" ± {result['is_std']:.4g}" if args.metric == "is" else f"; kvd: {result['kvd']:.6g}" if \
        args.metric == "fvd" else (
        f" (95% CI {result['clipsim_ci_low']:.4g}..{result['clipsim_ci_high']:.4g})" if args.metric == "clipsim" else "")
    n = f"n_real={result['n_real']}, n_fake={result['n_fake']}" if args.metric == "fvd" else f"n={result['n']}"
    print(f"{args.metric}: {value:.6g}{extra} ({n}; {len(result['skipped'])} skipped)")
    return EXIT_ITEM_ERROR if result["skipped"] else EXIT_OK


def console() -> None:
    """The console script: :func:`main`, then :func:`avalign.runctl.exit_with` its status."""
    exit_with(main())
