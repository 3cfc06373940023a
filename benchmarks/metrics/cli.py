"""``python -m benchmarks.metrics``: FVD, IS and CLIPSIM of folders of videos, from local weights.

::

    python -m benchmarks.metrics fvd REAL_DIR FAKE_DIR --weights DIR [--protocol styleganv|videogpt] [--num-frames 16]
    python -m benchmarks.metrics is FAKE_DIR --weights DIR [--splits 10]
    python -m benchmarks.metrics clipsim DIR --labels CSV_OR_TXT --weights DIR [--template "{label}"] [--scale 100]

Each prints its value and, with ``--out R.json``, writes the value with everything that made it
(clip counts, protocol, weight file and digest, frames per clip, the clips refused and why).
Clips are read as decoded (``--fps``/``--size`` conform them first, as ``avalign score`` does).
Exit status 2 for bad input (a missing weight file, an empty folder, no usable clip).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from avalign.media import MediaError
from avalign.protocol import Protocol

from .frechet import FrechetError
from .videos import extract, list_videos, stack
from .weights import WeightsError


class InputError(ValueError):
    """Bad input: one line, exit status 2."""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help="folder with the published weight files (see the README's Weights table)")
    p.add_argument("--fps", type=float, default=None, help="re-time every clip to this rate first (None: as decoded)")
    p.add_argument("--size", default=None, help="cover-and-crop every frame to WIDTHxHEIGHT first (None: as decoded)")
    p.add_argument("--device", default=None, help="torch device (None: cuda if available, else cpu)")
    p.add_argument("--batch-size", type=int, default=8, help="clips per detector call")
    p.add_argument("--out", help="write the result as JSON to this file")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.metrics", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="metric", required=True)
    f = sub.add_parser("fvd", help="Fréchet Video Distance of two folders (lower is better)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    f.add_argument("real_dir")
    f.add_argument("fake_dir")
    f.add_argument("--protocol", default="styleganv", choices=("styleganv", "videogpt"),
                   help="styleganv: i3d_torchscript.pt, biased covariance; videogpt: i3d_pretrained_400.pt, "
                        "224 crop, unbiased covariance")
    f.add_argument("--num-frames", type=int, default=16, help="first N consecutive frames of each clip")
    _common(f)
    i = sub.add_parser("is", help="Inception Score with C3D on UCF-101 (higher is better)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    i.add_argument("fake_dir")
    i.add_argument("--splits", type=int, default=10, help="splits of the shuffled clips (capped at N)")
    _common(i)
    c = sub.add_parser("clipsim", help="CLIP similarity of each video's frames to its label (higher is better)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("video_dir")
    c.add_argument("--labels", required=True,
                   help="CSV with a name column (video, file, name or clip_id) and a label column; or a text "
                        "file of lines 'NAME LABEL...' (NAME: file name or stem)")
    c.add_argument("--template", default="{label}", help="text compared with the frames; {label} is filled in")
    c.add_argument("--scale", type=float, default=1.0, help="multiply the cosine (100: the torchmetrics convention)")
    c.add_argument("--num-frames", type=int, default=None, help="first N frames of each clip (None: all)")
    _common(c)
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
    try:
        return Protocol.parse(fps=args.fps, size=args.size)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _write(out: str | None, result: dict) -> None:
    if out:
        out_path = Path(out)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_name(out_path.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=1, default=str))
        os.replace(tmp, out_path)


def run_fvd(args: argparse.Namespace, device: str) -> dict:
    from .fvd import LINEAGES, fvd, fvd_extractor

    real, fake = list_videos(args.real_dir), list_videos(args.fake_dir)
    ex = fvd_extractor(args.weights, args.protocol, args.num_frames, device, args.batch_size)
    protocol = _protocol(args)
    rf, rs = extract(real, ex, protocol, desc="real")
    ff, fs = extract(fake, ex, protocol, desc="fake")
    if len(rf) < 2 or len(ff) < 2:
        raise InputError(f"FVD needs at least 2 usable clips on each side; got {len(rf)} real and {len(ff)} fake")
    value = fvd(stack(rf, map(str, real)), stack(ff, map(str, fake)), args.protocol)
    return {"metric": "fvd", "fvd": value, "n_real": len(rf), "n_fake": len(ff), "protocol": args.protocol,
            "protocol_description": LINEAGES[args.protocol].description, **ex.describe(),
            "video_protocol": protocol.to_record(), "skipped": {**rs, **fs}}


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
            "protocol": "isv2048_ucf", **ex.describe(), "video_protocol": protocol.to_record(), "skipped": fs}


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
    ex = clip.extractor(args.num_frames)
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
            "protocol": "mean over frames of cos(image, text), L2-normalised CLIP features; 95% bootstrap over videos",
            "template": args.template, "scale": args.scale, **ex.describe(), "video_protocol": protocol.to_record(),
            "frames_used": {v.name: frames.get(str(v)) for v in used},
            "per_video": {v.name: float(s) for v, s in zip(used, scores)}, "skipped": {**skipped, **bad}}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.batch_size < 1 or getattr(args, "num_frames", 1) is not None and getattr(args, "num_frames", 1) < 1:
        print("benchmarks.metrics: error: --batch-size and --num-frames must be at least 1", file=sys.stderr)
        return 2
    if args.metric == "is" and args.splits < 1:
        print(f"benchmarks.metrics: error: --splits must be at least 1, got {args.splits}", file=sys.stderr)
        return 2
    run = {"fvd": run_fvd, "is": run_is, "clipsim": run_clipsim}[args.metric]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run(args, device)
    except (InputError, WeightsError, MediaError, FrechetError, ValueError) as exc:
        print(f"benchmarks.metrics: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    notes = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))
    for note in notes:
        print(f"benchmarks.metrics: warning: {note}", file=sys.stderr)
    result["warnings"] = notes
    _write(args.out, result)
    value = result[args.metric]
    extra = f" ± {result['is_std']:.4g}" if args.metric == "is" else (
        f" (95% CI {result['clipsim_ci_low']:.4g}..{result['clipsim_ci_high']:.4g})" if args.metric == "clipsim" else "")
    n = f"n_real={result['n_real']}, n_fake={result['n_fake']}" if args.metric == "fvd" else f"n={result['n']}"
    print(f"{args.metric}: {value:.6g}{extra} ({n}; {len(result['skipped'])} skipped)")
    return 0
