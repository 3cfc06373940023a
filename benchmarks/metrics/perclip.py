"""``python -m benchmarks.metrics desync|ib``: the learned per-clip sync metrics of files and folders.

::

    python -m benchmarks.metrics desync PATH... --weights DIR [--duration S] [--lineage avbench|synchformer]
            [--short error|pad] [--out R.jsonl] [--device D] [--batch-size B]
    python -m benchmarks.metrics ib PATH... --weights DIR [--duration S] [--lineage avbench|javisbench] ...

A PATH is a video or a folder of videos; a clip's audio is ``X.wav`` beside ``X.mp4``, else its own
track.  ``--duration`` is the clip length L the reference calls ``audio_length``; without it, L is the
shorter of the video's and the audio's durations.  ``--fps`` and ``--size`` are refused: these
lineages fix their own.  One JSONL record per clip is written as it is made (``--out``; a rerun skips
the clips already there), then a summary with a 95% bootstrap CI is printed and written beside the
records (``R.summary.json``), never into the JSONL.  Exit status: 0; 1 when a clip failed; 2 for bad
usage, a missing or wrong weights file; 130/143 after SIGINT/SIGTERM (the records are kept).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from contextlib import nullcontext
from pathlib import Path

from avalign.flags import HelpFormatter, UsageError
from avalign.io import JsonlWriter, read_jsonl, write_json_atomic
from avalign.io.lock import lock_output
from avalign.runctl import EXIT_ITEM_ERROR, EXIT_OK
from avalign.stats import bootstrap_ci

from ..syncprotocol import SHORT_POLICIES, SyncProtocol
from .weights import load_sync_model

#: metric -> (record value key, lineages, direction)
METRICS = {"desync": ("desync", ("avbench", "synchformer"), "lower"),
           "ib": ("ib_score", ("avbench", "javisbench"), "higher")}


def add_parsers(sub) -> None:
    """The ``desync`` and ``ib`` subcommands of ``python -m benchmarks.metrics``."""
    helps = {"desync": "DeSync: Synchformer's predicted audio-visual offset per clip, seconds (lower is better)",
             "ib": "IB-score: ImageBind's video-audio cosine per clip, in [-1, 1] (higher is better)"}
    for name, (_, lineages, _) in METRICS.items():
        p = sub.add_parser(name, help=helps[name], description=helps[name] + ". " + " ".join(__doc__.split("\n\n")[3].split()),
                           formatter_class=HelpFormatter)
        p.add_argument("paths", nargs="+", metavar="PATH", help="videos or folders of videos")
        p.add_argument("--weights", required=True, metavar="DIR", help="folder with the published weight files "
                                                                       "(docs: Weights)")
        p.add_argument("--lineage", default="avbench", choices=lineages,
                       help="the published computation (docs: Sync metrics); avbench is av-benchmark's")
        p.add_argument("--duration", type=float, metavar="S",
                       help="clip length L in seconds (default: the shorter of the video's and the audio's)")
        p.add_argument("--short", default="error", choices=SHORT_POLICIES,
                       help="a clip shorter than the lineage needs: an error record, or JavisBench's padding")
        p.add_argument("--out", metavar="R.jsonl", help="per-clip records (resumable); the summary goes to "
                                                        "R.summary.json")
        p.add_argument("--device", default=None, metavar="D", help="torch device (default: cuda if available, else cpu)")
        p.add_argument("--batch-size", type=int, default=None, metavar="B",
                       help="segments or views per model call (default: DeSync 1 video segment on a CPU, 8 on a GPU, "
                            "8 mel segments; IB 3 views on a CPU, 8 on a GPU)")
        p.add_argument("--fps", help=argparse.SUPPRESS)  # refused with a reason (see run)
        p.add_argument("--size", help=argparse.SUPPRESS)


def expand(paths) -> list[Path]:
    """Videos of the given files and folders (folders: their videos, sorted); raises UsageError."""
    from avalign.io import MediaError

    from .videos import list_videos

    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            try:
                out += list_videos(p)
            except MediaError as exc:
                raise UsageError(str(exc)) from None
        elif p.is_file():
            out.append(p)
        else:
            raise UsageError(f"{p}: not found")
    return out


def check_duration(seconds: float | None) -> None:
    """``--duration`` of the sync commands: None, or a finite positive number of seconds (UsageError)."""
    if seconds is not None and not (seconds > 0 and math.isfinite(seconds)):
        raise UsageError(f"--duration must be a positive number of seconds, got {seconds:g}")


def one_line(exc: BaseException, video=None) -> str:
    """An exception as one line, without a leading ``"<video>: "`` (the record names the clip)."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    prefix = f"{video}: "
    return reason[len(prefix):] if video is not None and reason.startswith(prefix) else reason


def summary_of(records: list[dict], metric: str) -> dict:
    from .desync import set_desync

    key = METRICS[metric][0]
    ok = [r for r in records if r["status"] == "ok"]
    values = sorted(float(r[key]) for r in ok)
    low, high = bootstrap_ci(values)  # over clips
    # DeSync of the set: the mean over all windows, as av-benchmark takes it (the clips' mean when
    # every clip has the same number of windows)
    mean = (set_desync(ok) if metric == "desync" else float(sum(values) / len(values))) if values else None
    return {"metric": metric, "value": mean, "ci_low": None if not values else low, "ci_high": None if not values else high,
            "n": len(records), "n_ok": len(values), "n_error": sum(r["status"] == "error" for r in records),
            "direction": METRICS[metric][2]}


def run(args: argparse.Namespace, device: str) -> int:
    """Score every clip (module docstring); returns the exit status."""
    for flag in ("fps", "size"):
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag} is refused: the {args.metric} lineage {args.lineage} fixes its own frame rate "
                             "and size (docs: Sync metrics)")
    check_duration(args.duration)
    from .desync import check_batch  # torch: imported here, so --help stays light

    try:
        check_batch(args.batch_size)
    except ValueError as e:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}") from e
    videos = expand(args.paths)
    model, weights, digest = load_sync_model(args.metric, args.weights)
    settings = {"metric": args.metric, "lineage": args.lineage, "duration_arg_s": args.duration, "short": args.short,
                "weights_sha256": digest}
    with lock_output(args.out) if args.out else nullcontext():
        return _score(args, device, videos, model, weights, settings)


def _score(args, device, videos, model, weights, settings) -> int:
    from tqdm import tqdm

    from . import desync, ib
    from .avdecode import DecodeCache, DecodeError

    previous: dict[str, dict] = {}
    if args.out and Path(args.out).exists():
        for r in read_jsonl(args.out):
            mine = {k: r.get(k) for k in settings}
            if mine != settings:
                diff = ", ".join(f"{k} {mine[k]!r} -> {v!r}" for k, v in settings.items() if mine[k] != v)
                raise UsageError(f"{args.out}: holds records made with other settings ({diff}); use another --out")
            previous[r["key"]] = r
    # a clip that failed is tried again (a clip too short for the lineage stays as it is)
    todo = [v for v in videos if os.path.abspath(v) not in previous
            or (previous[os.path.abspath(v)]["status"] == "error" and not previous[os.path.abspath(v)].get("too_short"))]
    if previous:
        print(f"{len(videos) - len(todo)} of {len(videos)} clips already in {args.out}; scoring {len(todo)}",
              file=sys.stderr)
    scorer = desync.score_clip if args.metric == "desync" else ib.score_clip
    key = METRICS[args.metric][0]
    writer = JsonlWriter(args.out) if args.out else None
    fresh: dict[str, dict] = {}
    try:
        for video in tqdm(todo, unit="clip", desc=args.metric, disable=None, file=sys.stderr):
            base = {"video": str(video), "key": os.path.abspath(video), **settings, "weights": weights,
                    "protocol": SyncProtocol(args.duration, args.short).to_record()}
            cache = DecodeCache(video)
            try:
                r = scorer(model, cache, args.duration, args.lineage, args.short, args.batch_size, device)
                record = {**base, "status": "ok", **r}
                tqdm.write(f"{video}: {key} {r[key]:.4g}", file=sys.stdout)
            except (DecodeError, ValueError, RuntimeError, OSError) as exc:  # one clip's failure, with its reason
                reason = one_line(exc, video)  # the path is said once
                record = {**base, "status": "error", "error": reason, "too_short": isinstance(exc, desync.TooShort),
                          "duration_s": _length(cache, args.duration)}
                tqdm.write(f"{args.metric}: error: {video}: {reason}", file=sys.stderr)
            if writer is not None:
                writer.write(record)
            fresh[record["key"]] = record
    finally:  # the summary covers what is done, also after Ctrl-C
        if writer is not None:
            writer.close()
        summary = _summarize(args, videos, {**previous, **fresh}, weights, settings)
    value = "—" if summary["value"] is None else (f"{summary['value']:.4g} (95% CI {summary['ci_low']:.4g}.."
                                                  f"{summary['ci_high']:.4g})")
    print(f"{args.metric} [{args.lineage}]: {value}; n={summary['n_ok']} scored, {summary['n_error']} failed")
    return EXIT_ITEM_ERROR if summary["n_error"] else EXIT_OK


def _length(cache, duration_s: float | None) -> float | None:
    """A failed clip's length L in seconds: ``--duration``, else measured when its files can be read."""
    from .avdecode import DecodeError
    from .desync import clip_duration

    if duration_s is not None:
        return duration_s
    try:
        return clip_duration(cache)
    except (DecodeError, ValueError, RuntimeError, OSError):
        return None


def _summarize(args, videos, records: dict, weights, settings) -> dict:
    wanted = {os.path.abspath(v) for v in videos}
    done = [r for k, r in records.items() if k in wanted]
    summary = {**summary_of(done, args.metric), "lineage": args.lineage, "short": args.short,
               "duration_arg_s": args.duration, "weights": weights, "weights_sha256": settings["weights_sha256"]}
    if args.out:
        write_json_atomic(Path(args.out).with_suffix(".summary.json"), summary)
    return summary
