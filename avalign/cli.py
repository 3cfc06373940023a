"""Command line: ``python -m avalign score PATH... [options]`` and ``python -m avalign variants``.

Exit status (:mod:`avalign.runctl`): 0 when no clip has status ``error``, 1 when any has (the others
are still scored and written), 2 for usage and fatal errors (a full disk, an ``--out`` held by a live
run), 130 after Ctrl-C and 143 after SIGTERM (the records written so far are kept; a rerun resumes).
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import closing, nullcontext
from pathlib import Path
from typing import Sequence

from .core import FLOW_MODES
from .runctl import exit_with
from .flags import HelpFormatter as _HelpFormatter
from .flags import UsageError, add_protocol_flags, protocol_from_args, run_cli
from .io import VIDEO_EXTENSIONS, JsonlWriter, is_partial, lock_output, read_jsonl, rewrite_jsonl
from .parallel import ExecutorError, Job, default_workers, score_files
from .protocol import Protocol
from .runctl import EXIT_ITEM_ERROR, EXIT_OK, EXIT_USAGE  # noqa: F401  (re-exported: the statuses)
from .score import AVAlignResult, resolve_audio
from .stats import summarize
from .variants import DEFAULT_VARIANT, VARIANTS

EXIT_CLIP_ERROR = EXIT_ITEM_ERROR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m avalign",
        description="AV-Align: audio-video temporal alignment of clips (Yariv et al., arXiv 2309.16429).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    score = sub.add_parser(
        "score",
        help="score videos (files or folders of *.mp4)",
        description=(
            "Score videos. Each X.mp4 is paired with X.wav beside it when present (the authors' layout), "
            "else with its own audio track. Records are written to --out as each clip finishes; rerunning "
            "the same command skips clips already in --out."
        ),
        formatter_class=_HelpFormatter,
    )
    score.add_argument("paths", nargs="+", metavar="PATH",
                       help="video files or folders (every .mp4, .mkv, .webm, .mov and .avi inside, sorted)")
    score.add_argument("--audio", metavar="WAV", help="audio file to use for the (single) video PATH")
    score.add_argument(
        "--variant", default=DEFAULT_VARIANT, choices=list(VARIANTS),
        help="scorer semantics; see 'python -m avalign variants'",
    )
    add_protocol_flags(score)  # --fps, --size, --duration, --flow: a benchmark run's protocol, reproduced
    score.add_argument("--out", metavar="R.jsonl", help="append one JSON record per clip to this file")
    score.add_argument("--workers", type=int, default=default_workers(), metavar="N",
                       help="worker processes (default: the CPUs this process may use; with --executor ray and no "
                            "cluster: the local cluster's CPUs)")
    score.add_argument("--executor", default="local", choices=("local", "ray"),
                       help="local: processes on this machine; ray: Ray tasks (pip install 'tempotokens[ray]')")
    score.add_argument("--address", metavar="ADDR",
                       help="Ray cluster to use ('auto', host:port; default RAY_ADDRESS, else a local one for the run)")
    score.add_argument("--shard", metavar="I/N",
                       help="score only every N-th clip from the I-th (0-based), for job arrays; "
                            "concatenating the shards' --out files is the merge")
    score.add_argument("--plot", metavar="DIR", help="write a PNG timeline per clip into DIR")
    score.add_argument(
        "--empty-score", type=float, choices=(0.0, 1.0), default=None, metavar="{0,1}",
        help="score for clips with no peak in either stream (default: undefined, null)",
    )
    score.add_argument("--retry-errors", action="store_true", help="rescore clips whose record in --out is an error")
    score.add_argument("--quiet", action="store_true", help="no per-clip lines, only the summary")

    study = sub.add_parser(
        "study", help="how far the score moves under offsets, fps, size, re-encoding and flow modes",
        description="Score each clip under audio offsets, re-timing, resizing, H.264 re-encoding and every flow "
                    "mode; write study.jsonl (resumable), study.csv and plots into --out.",
        formatter_class=_HelpFormatter,
    )
    study.add_argument("paths", nargs="+", metavar="PATH", help="video files or folders")
    study.add_argument("--out", required=True, metavar="DIR", help="study folder")
    study.add_argument("--offsets", type=int, default=6, metavar="K", help="audio offsets -K..K frames")
    add_protocol_flags(study)  # the base protocol: how the unchanged clips (and every condition) are scored
    study.add_argument("--vary-fps", default="8,12,24", metavar="LIST", help="re-timing rates, comma-separated")
    study.add_argument("--vary-size", default="128,256,384", metavar="LIST",
                       help="short sides in px, comma-separated")
    study.add_argument("--vary-crf", default="18,28,38", metavar="LIST", help="H.264 CRFs, comma-separated")
    study.add_argument("--vary-flow", default=",".join(FLOW_MODES), metavar="LIST", help="flow modes, comma-separated")
    study.add_argument("--factors", default="offset,fps,size,crf,flow", metavar="LIST",
                       help="which factors to vary, comma-separated")
    study.add_argument("--variant", default=DEFAULT_VARIANT, choices=list(VARIANTS), help="AV-Align variant")
    study.add_argument("--workers", type=int, default=default_workers(), metavar="N",
                       help="worker processes (default: the CPUs this process may use)")
    study.add_argument("--executor", default="local", choices=("local", "ray"), help="where clips are scored")
    study.add_argument("--address", metavar="ADDR", help="Ray cluster (see score --help)")

    sub.add_parser("variants", help="list the AV-Align variants", description="List the AV-Align variants.")
    return parser


def run_study_cli(args: argparse.Namespace) -> int:
    from .study import StudyFolderError, StudySettings, iter_factors, run_study, summary_rows

    if args.workers < 1 or args.offsets < 0:
        raise UsageError("--workers must be at least 1 and --offsets at least 0")
    try:
        factors = tuple(iter_factors(args.factors))
    except ValueError as exc:
        raise UsageError(f"--factors: {exc}") from None
    settings = StudySettings(
        offsets=args.offsets, fps=_values("--vary-fps", args.vary_fps, float, lambda f: Protocol(fps=f)),
        sizes=_values("--vary-size", args.vary_size, int, lambda n: Protocol(width=n, height=n)),
        crf=_values("--vary-crf", args.vary_crf, int, _check_crf),
        flow=_values("--vary-flow", args.vary_flow, str, lambda m: Protocol(flow=m)), factors=factors)
    base = protocol_from_args(args)
    videos = [j.video for j in collect_jobs(args.paths, None)]
    try:
        rows = run_study(videos, args.out, settings, variant=args.variant, workers=args.workers,
                         executor=args.executor, address=args.address, protocol=base)
    except StudyFolderError as exc:
        raise UsageError(str(exc)) from None
    for r in summary_rows(rows):
        print(f"{r['factor']:<7}{str(r['value']):>18}  mean {r['mean']:.3f} ({r['ci_low']:.3f}-{r['ci_high']:.3f})  "
              f"|d| {r['mean_abs_delta']:.3f}  rho {r['spearman_rho']:.2f}  n={r['n']}")
    print(f"study: {Path(args.out) / 'study.csv'}")
    failed = sorted({r["clip"] for r in rows if r["status"] == "error"})
    if failed:
        why = next((r.get("error") for r in rows if r["clip"] == failed[0] and r.get("error")), None)
        print(f"avalign study: {len(failed)} clips could not be scored (their rows say error), e.g. {failed[0]}"
              + (f": {why}" if why else ""), file=sys.stderr)
    return EXIT_ITEM_ERROR if failed else EXIT_OK


def _check_crf(crf: int) -> None:
    if not 0 <= crf <= 51:
        raise ValueError(f"H.264 CRFs are 0..51, got {crf}")


def _values(flag: str, text: str, kind: type, check) -> tuple:
    """The comma-separated values of a study's ``--vary-*`` flag, each checked now (before any
    row is written); a bad one is a usage error naming the flag."""
    out = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        try:
            value = kind(item)
        except ValueError:
            raise UsageError(f"{flag}: bad value {item!r} (not {'an integer' if kind is int else 'a number'})") from None
        try:
            check(value)
        except ValueError as exc:
            raise UsageError(f"{flag}: bad value {item!r} ({exc})") from None
        out.append(value)
    return tuple(out)


def collect_jobs(paths: Sequence[str], audio: str | None) -> list[Job]:
    """Expand files and folders into jobs (folders: every video inside, sorted)."""
    videos: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(str(f) for f in Path(p).iterdir()
                           if f.suffix.lower() in VIDEO_EXTENSIONS and f.is_file() and not is_partial(f))
            if not found:
                raise UsageError(f"{p}: folder holds no {'/'.join(VIDEO_EXTENSIONS)} file")
            videos.extend(found)
        else:
            videos.append(p)  # a missing file becomes an error record, the batch goes on
    if audio is not None:
        if len(videos) != 1:
            raise UsageError(f"--audio needs exactly one video, got {len(videos)}")
        if not os.path.isfile(audio):
            raise UsageError(f"{audio}: audio file not found")
    seen: set[str] = set()
    jobs = []
    for v in videos:
        key = os.path.abspath(v)
        if key not in seen:
            seen.add(key)
            jobs.append(Job(v, audio))
    return jobs


def _abs(path: str | None) -> str | None:
    return os.path.abspath(path) if path else None


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` → ``(I, N)`` with ``0 <= I < N``."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must be I/N (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard {text}: need 0 <= I < N")
    return index, count


def _plot_name(result: AVAlignResult, used: set[str]) -> str:
    path = Path(result.video)
    name = path.stem
    if name in used:
        name = f"{path.parent.name}_{path.stem}"
    used.add(name)
    return name + ".png"


def _clip_line(r: AVAlignResult) -> str:
    if r.status == "error":
        return f"error      {r.video}"
    score = "undefined" if r.score is None else f"{r.score:.4f}"
    return (
        f"{score:<10} {r.video}  ({len(r.audio_peaks)} audio / {len(r.video_peaks)} video peaks, "
        f"{r.n_matches} matched)"
    )


def run_score(args: argparse.Namespace) -> int:

    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    protocol = protocol_from_args(args)
    jobs = collect_jobs(args.paths, args.audio)
    if args.shard:
        index, count = parse_shard(args.shard)
        jobs = jobs[index::count]
    with lock_output(args.out) if args.out else nullcontext():  # one live run per --out (else one line, exit 2)
        return _score_jobs(args, protocol, jobs)


def _score_jobs(args: argparse.Namespace, protocol: Protocol, jobs: list[Job]) -> int:
    from tqdm import tqdm

    wanted = {os.path.abspath(j.video) for j in jobs}
    previous: dict[str, dict] = {}  # records already in --out, by absolute video path (key)
    if args.out:
        records = read_jsonl(args.out)
        other = {r.get("variant") for r in records} - {args.variant}
        if other:
            raise UsageError(f"{args.out}: holds results of variant {sorted(other)[0]}; choose another --out")
        protocols = {Protocol.from_record(r.get("protocol")) for r in records} - {protocol}
        if protocols:
            raise UsageError(f"{args.out}: holds results scored at {protocols.pop().label}, not {protocol.label}; "
                             "choose another --out")
        if args.retry_errors and any(r["status"] == "error" for r in records):
            records = [r for r in records if r["status"] != "error"]
            rewrite_jsonl(args.out, records)
        previous = {r.get("key") or os.path.abspath(r["video"]): r for r in records}
        for job in jobs:
            old = previous.get(os.path.abspath(job.video))
            if old is None:
                continue
            used = old.get("audio_key", old.get("audio") and os.path.abspath(old["audio"]))
            if args.audio is not None and used != os.path.abspath(args.audio):
                raise UsageError(f"{args.out}: {job.video} was scored with audio {old.get('audio') or 'its own track'}, "
                                 f"not {args.audio}; choose another --out")
            if old.get("audio_key") is not None and old["status"] != "error" and \
                    old["audio_key"] != _abs(resolve_audio(job.video, job.audio)):
                raise UsageError(f"{args.out}: {job.video} was scored with audio {old['audio_key']}, not "
                                 f"{_abs(resolve_audio(job.video, job.audio)) or 'its own track'}; choose another --out")
        other = {r.get("empty_score") for r in records} - {args.empty_score}
        if other:
            raise UsageError(f"{args.out}: holds results of --empty-score {other.pop()}, not {args.empty_score}; "
                             "choose another --out")
    todo = [j for j in jobs if os.path.abspath(j.video) not in previous]
    if previous and not args.quiet:
        print(f"{len(jobs) - len(todo)} of {len(jobs)} clips already scored in {args.out}; scoring {len(todo)}",
              file=sys.stderr)

    writer = JsonlWriter(args.out) if args.out else None
    used_names: set[str] = set()
    fresh: list[dict] = []
    try:
        with tqdm(total=len(todo), unit="clip", desc="AV-Align", disable=None, file=sys.stderr) as bar, \
                closing(score_files(todo, args.variant, protocol=protocol, workers=args.workers,
                                    empty_score=args.empty_score, executor=args.executor,
                                    address=args.address)) as results:  # closing ends the workers at once
            for result in results:
                record = {**result.to_record(), "key": os.path.abspath(result.video),
                          "audio_key": os.path.abspath(result.audio) if result.audio else None,
                          "empty_score": args.empty_score}
                if writer is not None:
                    writer.write(record)
                fresh.append(record)
                if result.status == "error":
                    tqdm.write(f"error: {result.error}", file=sys.stderr)
                elif args.plot:
                    from .plot import plot_result

                    plot_result(result, Path(args.plot) / _plot_name(result, used_names))
                if not args.quiet:
                    tqdm.write(_clip_line(result))
                bar.update()
    finally:
        if writer is not None:
            writer.close()

    done = [r for k, r in previous.items() if k in wanted] + fresh
    summary = summarize(done)
    print(summary.line() + ("" if protocol.is_native else f"; protocol {protocol.label}"))
    if VARIANTS[args.variant].can_exceed_one:
        print(f"note: variant {args.variant} matches many-to-one, so scores can exceed 1")
    return EXIT_CLIP_ERROR if summary.n_error else EXIT_OK


def run_variants() -> int:
    for v in VARIANTS.values():
        mark = " (default)" if v.name == DEFAULT_VARIANT else ""
        print(f"{v.name}{mark}: {v.description}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (``python -m avalign`` exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits with status 2 on bad usage

    def body() -> int:
        if args.command == "variants":
            return run_variants()
        if args.command == "study":
            return run_study_cli(args)
        return run_score(args)

    return run_cli("avalign", body, fatal=(ExecutorError,))


def console() -> None:
    """The console script: :func:`main`, then :func:`avalign.runctl.exit_with` its status."""
    exit_with(main())
