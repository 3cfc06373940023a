"""``python -m benchmarks.run``: datasets x methods → generated files → AV-Align → comparison table.

Stages, each resumable and reading only the files the previous stage wrote (``RUN_DIR``):

1. **generate** (:mod:`benchmarks.generate`): every method writes ``clips/<method>/<clip_id>.mp4``
   (+ ``.wav``); one record per clip in ``generate-<rank>.jsonl``.  Each generating method runs in
   its own process, so its load time and memory are its own; where its time goes per stage is in
   ``profiles-<rank>.jsonl``.  Clip ``i`` is generated with seed ``seed + i``.  Under
   ``accelerate launch`` (or torchrun) each process takes every WORLD_SIZE-th clip.
2. **score**: AV-Align of every clip *under one protocol* (by default the generation's fps, size and
   span, for every method alike), in parallel worker processes, into ``records.jsonl``.
2b. **metrics** (:mod:`benchmarks.metrics.stage`, with ``--metrics fvd,is,clipsim --weights DIR``): FVD
   against the ground-truth clips of the same test clips, IS and CLIPSIM, under the same protocol,
   into ``metrics.jsonl``; with ``--metrics desync,ib`` (:mod:`benchmarks.metrics.syncstage`) DeSync
   and IB-score of every clip at the run's span, into ``sync.jsonl`` (a clip shorter than a
   lineage needs is ``not_applicable``: "—" and a footnote, not a failure).
3. **summarize** (:mod:`benchmarks.summary`): ``summary.csv`` (one row per method, with paired deltas
   against a reference method) and ``env.json``.

Records are appended as they are made and flushed, so ``kill -9`` loses nothing already written;
rerunning the same command redoes nothing done and duplicates no record.  Every record carries the
hash of the settings that made it, and a run folder made with other settings is refused
(:mod:`benchmarks.runfolder`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Sequence

import numpy as np

from avalign import DEFAULT_VARIANT, VARIANTS, Protocol
from avalign.core import FLOW_MODES
from avalign.runctl import exit_with
from avalign.flags import HelpFormatter, UsageError, parse_size, run_cli
from avalign.io import JsonlWriter, RunLock, build_once, read_jsonl, write_json_atomic
from avalign.runctl import EXIT_ITEM_ERROR, EXIT_OK
from baselines import ALL_METHODS, GenerationSettings, get_method
from baselines import default_reference as baselines_default_reference
from tempotokens.data.datasets import DATASETS, DatasetError, index_dataset
from tempotokens.toy import SHIPPED as TOY_MODEL
from tempotokens.defaults import TOY, for_model

from .generate import method_source, shard, stage_generate  # noqa: F401  (shard is re-exported)
from .metrics.weights import WeightsError, tree_sha256
from .records import ClipKey, ScoreRecord
from .runfolder import RunFolderError, claim, latest, read_all
from .summary import print_table, summary_rows, write_summary
from .syncprotocol import SHORT_POLICIES

#: The random tiny model (``--model tiny``: tests, fast checks), made on first use.
TINY_MODEL = Path("runs/tiny-model")
#: The demo dataset (tempotokens.data.synthetic.DEMO_DATASET), made on first use; its own folder, so
#: the 12-clip training set of configs/tiny.yaml (runs/data/synthetic) is never mistaken for it; named
#: for DEMO_DATASET's motion and the writer's version (v2: single-threaded RGB to YUV, so every file is
#: a function of its frames), so a folder of the earlier step clips, or of the racy writer, is not reused.
SYNTHETIC_ROOT = Path("runs/data/synthetic-demo-jolt-v3")
STAGES = ("generate", "score", "metrics", "summarize")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--dataset", default="synthetic", choices=DATASETS,
                   help="folder: any folder of mp4s (sibling wav or own track, optional <name>.txt captions)")
    p.add_argument("--data-root", metavar="DIR", help="dataset folder (synthetic: made on the fly if absent)")
    p.add_argument("--methods", default=",".join(ALL_METHODS), metavar="LIST",
                   help="comma-separated: " + ", ".join(ALL_METHODS) + ", external:DIR, external:DIR:own-audio")
    p.add_argument("--num-clips", type=int, default=None, metavar="N", help="first N test clips (default: all)")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder (default: runs/<dataset>)")
    p.add_argument("--model", metavar="DIR", help="model folder; 'tiny': the random tiny model (made if absent); default: the "
                                   "shipped toy model trained on the synthetic clips (tempotokens/toy_model), while "
                                   "none is shipped the tiny model")
    p.add_argument("--beats", metavar="CKPT", help="BEATs checkpoint if the model folder has none")
    p.add_argument("--adaptor", metavar="PATH", help="adaptor weights (learned_embeds.pth or folder)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="clip i is generated with seed + i")
    p.add_argument("--device", default=None, metavar="D", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--dtype", default=None, choices=("float32", "float16", "bfloat16"),
                   help="generation dtype (default: float16 on a GPU, else float32)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="scoring worker processes (default: the CPUs this process may use)")
    p.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="where clips are scored: local processes, or Ray tasks (RAY_ADDRESS or a local cluster)")
    p.add_argument("--num-frames", type=int, metavar="N", help="frames generated per clip (default: by model)")
    p.add_argument("--fps", type=float, metavar="F", help="frames per second generated (default: by model)")
    p.add_argument("--size", metavar="WxH", help="pixels generated, width x height (default: by model)")
    p.add_argument("--steps", type=int, metavar="N", help="denoising steps (default: by model)")
    p.add_argument("--guidance", type=float, metavar="G", help="classifier-free guidance scale (default: by model)")
    p.add_argument("--protocol", default="generation", choices=("generation", "native"),
                   help="generation: score every clip at the generation fps, size and span; native: at each "
                        "clip's own fps and size (the paper's way for ground truth)")
    p.add_argument("--variant", default=DEFAULT_VARIANT, choices=list(VARIANTS), help="AV-Align variant")
    p.add_argument("--flow", default="farneback", choices=FLOW_MODES,
                   help="optical flow of the scoring protocol (farneback: the reference; the others: faster)")
    p.add_argument("--reference-method", default=None, metavar="M",
                   help="method the paired deltas are taken against (default: text_to_video when it runs)")
    p.add_argument("--metrics", default="av_align", metavar="LIST",
                   help="comma-separated: av_align, fvd, is, clipsim, desync, ib (all but av_align need --weights)")
    p.add_argument("--weights", metavar="DIR", help="folder with the metric weight files (docs: Video-quality metrics, Weights)")
    p.add_argument("--lineage", default="styleganv", choices=("styleganv", "videogpt"),
                   help="FVD's published computation (docs: Video-quality metrics)")
    p.add_argument("--metric-frames", type=int, default=16, metavar="N", help="frames per clip fed to FVD")
    p.add_argument("--desync-lineage", default="avbench", choices=("avbench", "synchformer"),
                   help="DeSync's published computation (docs: Sync metrics)")
    p.add_argument("--ib-lineage", default="avbench", choices=("avbench", "javisbench"),
                   help="IB-score's published computation (docs: Sync metrics)")
    p.add_argument("--short", default="error", choices=SHORT_POLICIES,
                   help="DeSync / IB-score of a clip shorter than the lineage needs: not applicable (a dash "
                        "and a footnote), or scored padded as JavisBench pads")
    p.add_argument("--clipsim-template", default="{label}", metavar="TEXT", help="text each clip's dataset label is put through")
    p.add_argument("--retry-errors", action="store_true", help="regenerate and rescore clips whose record is an error")
    p.add_argument("--study", action="store_true",
                   help="also run the audio-offset study on the ground-truth clips (a calibration panel in reports)")
    p.add_argument("--stages", default=",".join(STAGES), metavar="LIST", help="which stages to run: " + ", ".join(STAGES))
    return p


def resolve(args: argparse.Namespace) -> tuple[GenerationSettings, Path, Path]:
    """Generation settings, dataset root and run folder from the arguments (with defaults)."""
    import torch

    model = Path(args.model) if args.model not in (None, "tiny") else default_model(args.model)
    # the toy's settings (tempotokens.defaults.TOY) for the default and tiny models (made later if absent),
    # else by the folder.  The toy runs at the authors' time scale (24 frames at 12 fps): at 8 fps a frame
    # lasts 125 ms, longer than the synthetic clips' ~100 ms jolts, and the ground truth itself loses matches.
    defaults = TOY if args.model in (None, "tiny") else for_model(model)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    local = int(os.environ.get("LOCAL_RANK", 0))
    if device == "cuda" and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        device = f"cuda:{local}"
    values = defaults.given(parse_size(args.size), num_frames=args.num_frames, fps=args.fps, steps=args.steps,
                            guidance=args.guidance).as_dict()
    settings = GenerationSettings(**values, seed=args.seed, device=device,
                                  dtype=args.dtype or ("float16" if device.startswith("cuda") else "float32"),
                                  model=str(model), beats=args.beats, adaptor=args.adaptor)
    if args.data_root:
        root = Path(args.data_root)
    elif args.dataset == "synthetic":
        root = SYNTHETIC_ROOT
    else:
        raise UsageError(f"--data-root is required for {args.dataset}")
    return settings, root, Path(args.out or f"runs/{args.dataset}")


def default_model(name: str | None) -> Path:
    """``tiny``: the random tiny model; no ``--model``: the shipped toy model, or, while none is
    shipped (``make toy`` then ``python -m tempotokens toy runs/toy --install`` makes one), the tiny
    model, with a note."""
    if name is None and (TOY_MODEL / "model_index.json").is_file():
        return TOY_MODEL
    if name is None:
        print(f"benchmarks.run: note: no shipped toy model in {TOY_MODEL}; using the random tiny model "
              f"({TINY_MODEL})", file=sys.stderr)
    return TINY_MODEL


def protocol_for(name: str, s: GenerationSettings, flow: str = "farneback") -> Protocol:
    """The scoring protocol: the generation's fps, size and span, or (``native``) each clip's own
    fps and size over the same span; with the given flow mode."""
    if name == "native":
        return Protocol(duration_s=s.duration_s, flow=flow)
    return Protocol(fps=s.fps, width=s.width, height=s.height, duration_s=s.duration_s, flow=flow)


def identity(args: argparse.Namespace, settings: GenerationSettings, root: Path, clips: list,
             protocol: Protocol) -> dict:
    """Everything that decides what a record holds (the settings hash is taken over it)."""
    def absolute(p: str | None) -> str | None:
        return str(Path(p).resolve()) if p else None

    s = settings
    return {"dataset": args.dataset, "data_root": absolute(str(root)), "clips": [c.clip_id for c in clips],
            "model": absolute(s.model), "beats": absolute(s.beats), "adaptor": absolute(s.adaptor),
            "weights_sha256": {k: tree_sha256(p) for k, p in (("model", s.model), ("beats", s.beats),
                                                              ("adaptor", s.adaptor)) if p},
            "num_frames": s.num_frames, "fps": s.fps, "height": s.height, "width": s.width, "steps": s.steps,
            "guidance": s.guidance, "seed": s.seed, "dtype": s.dtype, "device_type": s.device.split(":")[0],
            "protocol": protocol.to_record(), "variant": args.variant}


def wait_for_ranks(run_dir: Path, token: str, world: int, poll_s: float = 2.0) -> None:
    """File barrier: return once every rank has marked ``token`` done."""
    while not all((run_dir / f".done-{token}-{r}").exists() for r in range(world)):
        time.sleep(poll_s)


# --------------------------------------------------------------------------------------------
# Stage 2: score
# --------------------------------------------------------------------------------------------
BASE_KEYS = ClipKey.columns()  #: what a score record copies from its generation record


def stage_score(run_dir: Path, protocol: Protocol, variant: str, workers: int | None = None,
                retry_errors: bool = False, executor: str = "local") -> None:
    """Score every generated clip whose newest generation attempt has no score record yet (so a
    regenerated clip is always rescored) and, with ``retry_errors``, those whose score record is an
    error, under ``protocol``; records keep the onset envelope for plots."""
    from avalign import Job, score_files
    from avalign.score import resolve_audio

    generated = latest(read_all(run_dir, "generate-*.jsonl"))
    scored = latest(read_jsonl(run_dir / "records.jsonl"))
    todo = {k: r for k, r in generated.items()
            if k not in scored or scored[k].get("attempt") != r.get("attempt")
            or (retry_errors and scored[k]["status"] == "error")}
    with JsonlWriter(run_dir / "records.jsonl") as out:
        waiting: dict[tuple[str, str | None], list[dict]] = {}
        for r in todo.values():
            if r["status"] != "ok":
                out.write({**{k: r.get(k) for k in BASE_KEYS}, "status": "error", "error": r["error"], "avalign": None})
            else:
                key = (os.path.abspath(r["video"]), resolve_audio(os.path.abspath(r["video"]), r.get("audio")))
                waiting.setdefault(key, []).append(r)
        jobs = [Job(video, audio) for video, audio in waiting]  # a result names the audio it used
        with closing(score_files(jobs, variant, protocol=protocol, workers=workers, executor=executor)) as results:
            for result in results:  # closing: an interrupt ends the workers at once
                for r in waiting.pop((os.path.abspath(result.video), result.audio)):
                    out.write(ScoreRecord(**{k: r.get(k) for k in BASE_KEYS}, status=result.status,
                                          error=result.error, avalign=result.to_record(envelope=True)).to_record())


def stage_study(run_dir: Path, protocol: Protocol, variant: str, workers: int | None, executor: str) -> None:
    """The audio-offset study (-6..6 frames) of the run's ground-truth clips, under the run's protocol,
    into ``RUN_DIR/study/``: how the metric itself responds to desynchronisation on this dataset."""
    from avalign.study import StudySettings, run_study

    clips = sorted(r["avalign"]["video"] for r in latest(read_jsonl(run_dir / "records.jsonl")).values()
                   if r.get("role") == "ceiling" and r.get("avalign") and r["status"] != "error")
    if not clips:
        print("benchmarks.run: --study needs the clips of a ceiling method (ground_truth); none were scored",
              file=sys.stderr)
        return
    run_study(clips, run_dir / "study", StudySettings(offsets=6, factors=("offset",)), variant=variant,
              workers=workers, executor=executor, protocol=protocol)


# --------------------------------------------------------------------------------------------
# Stage 3: summarize
# --------------------------------------------------------------------------------------------
def default_reference(requested: str | None, methods: Sequence[str]) -> str | None:
    """The reference of the paired deltas: the one asked for, else the method among ``methods`` (those
    run now and those already in the folder) that declares itself the reference (``text_to_video``),
    else none."""
    return requested or baselines_default_reference(methods)


def sync_lineages(args: argparse.Namespace) -> dict[str, str]:
    return {"desync": args.desync_lineage, "ib": args.ib_lineage}


def sync_settings(args: argparse.Namespace, protocol: Protocol, run_dir: Path) -> dict[str, dict]:
    """``{metric: {lineage, short, duration_s, weights_sha256}}``: the sync records the summary's DeSync
    and IB columns are made of: those of ``--metrics`` (this run's settings), and for a metric not
    asked for, the settings of its newest record in the folder (so ``--stages summarize`` keeps them)."""
    from .metrics.syncstage import SYNC_METRICS, newest_settings, settings_of
    from .metrics.weights import sync_weights_digest

    out = newest_settings(run_dir)
    for m in args.metric_names:
        if m in SYNC_METRICS:
            out[m] = settings_of(m, sync_lineages(args)[m], args.short, protocol.duration_s,
                                 sync_weights_digest(m, args.weights))
    return out


def stage_summarize(run_dir: Path, dataset: str, order: Sequence[str], *, protocol: Protocol, variant: str,
                    reference: str | None, sync_settings: dict | None = None) -> list[dict]:
    """``summary.csv`` over every method of the folder (those of this call first); a method's clips
    that have no AV-Align record (``--metrics`` without av_align) count as unscored."""
    from .metrics.stage import latest_metrics
    from .metrics.syncstage import latest_sync

    generated = latest(read_all(run_dir, "generate-*.jsonl"))
    scored = latest(read_jsonl(run_dir / "records.jsonl"))
    records = list(scored.values()) + [{**{k: r.get(k) for k in BASE_KEYS}, "status": r["status"], "avalign": None}
                                       for key, r in generated.items() if key not in scored]
    profiles = read_all(run_dir, "profiles-*.jsonl")
    rows = summary_rows(dataset, records, profiles, order, protocol=protocol.label, variant=variant,
                        reference=default_reference(reference, [r["method"] for r in records]),
                        metrics=latest_metrics(run_dir), generated=generated, sync=latest_sync(run_dir),
                        sync_settings=sync_settings)
    write_summary(run_dir / "summary.csv", rows)
    return rows


def write_env(run_dir: Path, config: dict) -> None:
    """``env.json``: versions, device, git commit and the run's settings (those of its records)."""
    import platform
    import subprocess

    import cv2
    import diffusers
    import librosa
    import torch
    import transformers

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    device = config["settings"]["device"]
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor() or platform.machine()
    env = {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
           "transformers": transformers.__version__, "opencv": cv2.__version__, "librosa": librosa.__version__,
           "numpy": np.__version__, "device": device, "device_name": name, "cpu_count": os.cpu_count(),
           "git_commit": commit, **config}
    write_json_atomic(run_dir / "env.json", env, default=str)


# --------------------------------------------------------------------------------------------
def prepare(args: argparse.Namespace, rank: int):
    """Validate everything before anything is written to the run folder (raises UsageError,
    DatasetError or ValueError with one line)."""
    settings, root, run_dir = resolve(args)
    s = settings
    for ok, what in ((s.num_frames >= 2, f"--num-frames must be at least 2, got {s.num_frames}"),
                     (s.fps > 0, f"--fps must be positive, got {s.fps}"),
                     (s.height >= 8 and s.width >= 8, f"--size must be at least 8x8, got {s.width}x{s.height}"),
                     (s.steps >= 1, f"--steps must be at least 1, got {s.steps}"),
                     (s.guidance >= 0, f"--guidance must not be negative, got {s.guidance}"),
                     (args.num_clips is None or args.num_clips >= 1, f"--num-clips must be at least 1, got {args.num_clips}"),
                     (args.workers is None or args.workers >= 1, f"--workers must be at least 1, got {args.workers}")):
        if not ok:
            raise UsageError(what)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if bad or not stages:
        raise UsageError(f"--stages {args.stages!r}: choose from {', '.join(STAGES)} (comma-separated)")
    from .metrics.stage import parse_metrics
    from .metrics.weights import check

    args.metric_names = parse_metrics(args.metrics)
    # a missing or wrong weight file fails before anything is generated
    if args.study and ("score" not in stages or "av_align" not in args.metric_names):
        raise UsageError("--study scores the ground-truth clips with AV-Align: it needs the score stage in --stages "
                         "and av_align in --metrics")
    check(args.weights, [{"fvd": args.lineage, "is": "c3d", "clipsim": "clip"}[m] for m in args.metric_names
                         if m in ("fvd", "is", "clipsim")])
    from .metrics.weights import load_sync_model, sync_weight_path

    for m in args.metric_names:  # loaded once, where they score: the sync stage uses these very models
        if m in ("desync", "ib"):
            sync_weight_path(m, args.weights)  # every rank: a missing file is one line before any work
            if rank == 0 and "metrics" in stages:
                load_sync_model(m, args.weights)
    if "fvd" in args.metric_names and args.metric_frames < 10:
        raise UsageError(f"--metric-frames must be at least 10 (I3D's temporal pooling), got {args.metric_frames}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise UsageError("--methods is empty")
    names = [get_method(m).name for m in methods]  # raises for an unknown method
    previous = latest(read_all(run_dir, "generate-*.jsonl"))
    for m in methods:  # a control that reads another method's clips needs them in this run or the folder
        missing = [n for n in getattr(get_method(m), "needs", ()) if n not in names + [k[0] for k in previous]]
        if missing:
            raise UsageError(f"{get_method(m).name} reads the clips of {', '.join(missing)}: add it to --methods")
    for m in methods:  # a method name must keep meaning the same clips (external:DIR is named by DIR's name)
        source = method_source(get_method(m))
        known = {r.get("source") for (name, _), r in previous.items() if name == get_method(m).name}
        if source is not None and known and known != {source}:
            raise RunFolderError(f"{run_dir}: {get_method(m).name} in this folder came from {known.pop()}, "
                                 f"not {source}; use another --out")
    reference = default_reference(args.reference_method, names + [k[0] for k in previous])
    if reference is not None and reference not in names + [k[0] for k in previous]:
        raise UsageError(f"--reference-method {reference!r} is neither run nor in {run_dir} ({', '.join(names)})")
    if args.dataset == "synthetic" and not args.data_root:
        from tempotokens.data.synthetic import DEMO_DATASET, make_synthetic

        # the built-in dataset, made once, whole (an interrupted build leaves nothing), shared by ranks
        _drop_unfinished(root, "synthetic.csv")
        build_once(root, lambda tmp: make_synthetic(tmp, **DEMO_DATASET))
    if root.is_dir() and not any(root.iterdir()):
        raise DatasetError(f"{root}: data root is empty")
    clips = index_dataset(root, args.dataset, split="test")[: args.num_clips]
    if not clips:
        raise DatasetError(f"{root}: no test clips for dataset {args.dataset}")
    if args.model in (None, "tiny") and Path(settings.model) == TINY_MODEL:
        from tempotokens.quiet import no_loading_bars
        from tempotokens.tiny import make_tiny

        no_loading_bars()  # "Writing model shards" of a 2 MB model: noise
        _drop_unfinished(TINY_MODEL, "model_index.json")
        build_once(TINY_MODEL, make_tiny)
    return settings, root, run_dir, stages, methods, names, reference, clips


def _drop_unfinished(folder: Path, marker: str) -> None:
    """Remove a built-in folder (the demo dataset, the tiny model) that an older version left half
    written (no ``marker`` file), so that it is built again."""
    if folder.is_dir() and not (folder / marker).exists():
        import shutil

        print(f"benchmarks.run: note: {folder} is unfinished (no {marker}); building it again", file=sys.stderr)
        shutil.rmtree(folder)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (:mod:`avalign.runctl`): 0 every clip done, 1 some clip
    failed (generation or scoring; every other clip written), 2 usage or fatal errors (one line),
    130 after SIGINT, 143 after SIGTERM (what was finished is kept; a rerun resumes)."""
    args = build_parser().parse_args(argv)
    return run_cli("benchmarks.run", lambda: _run(args), fatal=(DatasetError, RunFolderError, WeightsError, ValueError))


def _run(args: argparse.Namespace) -> int:
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    settings, root, run_dir, stages, methods, names, reference, clips = prepare(args, rank)
    protocol = protocol_for(args.protocol, settings, args.flow)
    ident = identity(args, settings, root, clips, protocol)
    with RunLock(run_dir / f".lock-{rank}", what=run_dir):  # one live run (per rank) per folder
        digest = claim(run_dir, ident, rank)
        return _stages(args, rank, world, settings, run_dir, stages, methods, names, reference, clips, protocol,
                       ident, digest)


def _stages(args, rank, world, settings, run_dir, stages, methods, names, reference, clips, protocol, ident,
            digest) -> int:
    print(f"benchmarks.run: {len(clips)} clips x {len(methods)} methods into {run_dir}; protocol {protocol.label}; "
          f"AV-Align variant {args.variant}; settings {digest}", file=sys.stderr)
    token = hashlib.sha1(json.dumps([digest, names]).encode()).hexdigest()[:10]
    if "generate" in stages:
        stage_generate(run_dir, clips, methods, settings, digest, rank=rank, world=world,
                       retry_errors=args.retry_errors)
        (run_dir / f".done-{token}-{rank}").touch()
    if rank != 0:
        return failed_status(run_dir, names, rank)
    wait_for_ranks(run_dir, token, world if "generate" in stages else 0)
    if "score" in stages and "av_align" in args.metric_names:
        stage_score(run_dir, protocol, args.variant, args.workers, retry_errors=args.retry_errors,
                    executor=args.executor)
    if "metrics" in stages:
        from .metrics.stage import stage_metrics

        from .metrics.syncstage import stage_sync

        generated = latest(read_all(run_dir, "generate-*.jsonl"))
        stage_metrics(run_dir, generated, clips, protocol, args.metric_names,
                      args.weights, fvd_lineage=args.lineage, num_frames=args.metric_frames,
                      template=args.clipsim_template, device=settings.device)
        stage_sync(run_dir, generated, args.metric_names, args.weights, duration_s=protocol.duration_s,
                   lineages=sync_lineages(args), short=args.short, device=settings.device,
                   retry_errors=args.retry_errors)
    if args.study:
        stage_study(run_dir, protocol, args.variant, args.workers, args.executor)
    if "summarize" in stages:
        rows = stage_summarize(run_dir, args.dataset, names, protocol=protocol, variant=args.variant,
                               reference=reference, sync_settings=sync_settings(args, protocol, run_dir))
        write_env(run_dir, {"settings_hash": digest, "settings": {**settings.__dict__}, "run": ident,
                            "protocol": protocol.to_record(), "protocol_label": protocol.label,
                            "variant": args.variant, "reference_method": rows[0]["reference"] if rows else None,
                            "metrics": args.metric_names, "lineage": args.lineage,
                            "desync_lineage": args.desync_lineage, "ib_lineage": args.ib_lineage, "short": args.short,
                            "metric_frames": args.metric_frames, "clipsim_template": args.clipsim_template,
                            "methods": [r["method"] for r in rows], "methods_run_last": names,
                            "world_size": world, "args": vars(args)})
        print_table(rows)
        print(f"summary: {run_dir / 'summary.csv'}")
    return failed_status(run_dir, names, None)


def failed_status(run_dir: Path, names: Sequence[str], rank: int | None) -> int:
    """1 when a clip of the methods ``names`` failed: its newest generation record is an error, or
    the score record of that same attempt is (of ``rank``'s generation file, or of every file and
    the scores); else 0."""
    pattern = "generate-*.jsonl" if rank is None else f"generate-{rank}.jsonl"
    generated = {k: r for k, r in latest(read_all(run_dir, pattern)).items() if k[0] in names}
    scored = latest(read_jsonl(run_dir / "records.jsonl")) if rank is None else {}
    failed = sum(1 for k, g in generated.items() if g.get("status") == "error" or (
        k in scored and scored[k].get("attempt") == g.get("attempt") and scored[k].get("status") == "error"))
    if rank is None:  # DeSync / IB-score failures count too (not_applicable is not a failure)
        from .metrics.syncstage import failed_clips

        failed += failed_clips(run_dir, generated, names)
    if failed:
        print(f"benchmarks.run: {failed} clips failed (the others are written); rerun with --retry-errors "
              "to redo them", file=sys.stderr)
    return EXIT_ITEM_ERROR if failed else EXIT_OK


def console() -> None:
    """The console script: :func:`main`, then :func:`avalign.runctl.exit_with` its status."""
    exit_with(main())


if __name__ == "__main__":
    exit_with(main())
