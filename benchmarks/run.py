"""``python -m benchmarks.run``: datasets x methods → generated files → AV-Align → comparison table.

Stages, each resumable and reading only the files the previous stage wrote (``RUN_DIR``):

1. **generate**: every method writes ``clips/<method>/<clip_id>.mp4`` (+ ``.wav``); one record per
   clip in ``generate-<rank>.jsonl`` (seconds, peak memory, status) and the method's model load
   time in ``profiles-<rank>.jsonl``.  Under ``accelerate launch`` (or torchrun) each process takes
   every WORLD_SIZE-th clip and writes its own files.
2. **score**: AV-Align of every generated file, in parallel worker processes, into
   ``records.jsonl`` (one record per clip and method, with the AV-Align record inside).
3. **summarize**: ``summary.csv`` (one row per dataset and method) and ``env.json``.

Records are appended as they are made and flushed, so ``kill -9`` loses nothing already written;
rerunning the same command redoes nothing done and duplicates no record.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from avalign.records import JsonlWriter, read_jsonl
from avalign.stats import summarize
from baselines import ALL_METHODS, GenerationSettings, RunContext, get_method

DATASETS = ("synthetic", "vggsound", "landscape", "audioset_drum")
TINY_MODEL = Path("runs/tiny-model")
SYNTHETIC_ROOT = Path("runs/data/synthetic")
SUMMARY_COLUMNS = ("dataset", "method", "n", "n_undefined", "n_error", "av_align", "av_align_ci_low",
                   "av_align_ci_high", "load_s", "s_per_clip_p50", "s_per_clip_p90", "frames_per_s", "peak_mem_mb",
                   "device")
#: Generation settings of the tiny model (CPU, seconds per clip) and of a real model (the authors').
TINY_DEFAULTS = dict(num_frames=16, fps=8.0, height=32, width=32, steps=10, guidance=5.0)
REAL_DEFAULTS = dict(num_frames=24, fps=12.0, height=384, width=384, steps=25, guidance=25.0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="synthetic", choices=DATASETS)
    p.add_argument("--data-root", help="dataset folder (synthetic: made on the fly if absent)")
    p.add_argument("--methods", default=",".join(ALL_METHODS),
                   help="comma-separated: " + ", ".join(ALL_METHODS) + ", external:DIR")
    p.add_argument("--num-clips", type=int, default=None, help="first N test clips (default: all)")
    p.add_argument("--out", help="run folder (default runs/<dataset>)")
    p.add_argument("--model", help="model folder (default: the tiny model, made if absent)")
    p.add_argument("--beats", help="BEATs checkpoint if the model folder has none")
    p.add_argument("--adaptor", help="adaptor weights (learned_embeds.pth or folder)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--dtype", default=None, choices=("float32", "float16", "bfloat16"))
    p.add_argument("--workers", type=int, default=None, help="scoring processes (default: CPU count)")
    for name, kind in (("num-frames", int), ("fps", float), ("height", int), ("width", int), ("steps", int),
                       ("guidance", float)):
        p.add_argument(f"--{name}", type=kind, default=None, help="generation setting (default: by model)")
    p.add_argument("--stages", default="generate,score,summarize", help="which stages to run")
    return p


def shard(items: Sequence, rank: int, world: int) -> list:
    """Process ``rank``'s share: every ``world``-th item from ``rank``."""
    return list(items[rank::world])


def resolve(args: argparse.Namespace) -> tuple[GenerationSettings, Path, Path]:
    """Generation settings, dataset root and run folder from the arguments (with defaults)."""
    import torch

    model = Path(args.model) if args.model else TINY_MODEL
    defaults = TINY_DEFAULTS if args.model is None else REAL_DEFAULTS
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    local = int(os.environ.get("LOCAL_RANK", 0))
    if device == "cuda" and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        device = f"cuda:{local}"
    values = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in defaults.items()}
    settings = GenerationSettings(**values, seed=args.seed, device=device,
                                  dtype=args.dtype or ("float16" if device.startswith("cuda") else "float32"),
                                  model=str(model), beats=args.beats, adaptor=args.adaptor)
    if args.data_root:
        root = Path(args.data_root)
    elif args.dataset == "synthetic":
        root = SYNTHETIC_ROOT
    else:
        raise ValueError(f"--data-root is required for {args.dataset}")
    return settings, root, Path(args.out or f"runs/{args.dataset}")


# --------------------------------------------------------------------------------------------
# Stage 1: generate
# --------------------------------------------------------------------------------------------
def peak_memory_mb(device: str) -> float:
    """Peak GPU memory allocated by torch on a CUDA device, else this process's peak RSS."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stage_generate(run_dir: Path, clips: list, method_names: list[str], settings: GenerationSettings,
                   rank: int = 0, world: int = 1) -> None:
    import torch
    from tqdm import tqdm

    done = {(r["method"], r["clip_id"]) for f in run_dir.glob("generate-*.jsonl") for r in read_jsonl(f)}
    ctx = RunContext(clips=clips, settings=settings)
    mine = shard(clips, rank, world)
    with JsonlWriter(run_dir / f"generate-{rank}.jsonl") as records, \
            JsonlWriter(run_dir / f"profiles-{rank}.jsonl") as profiles:
        for name in method_names:
            method = get_method(name)
            todo = [c for c in mine if (method.name, c.clip_id) not in done]
            if not todo:
                continue
            start = time.perf_counter()
            try:
                load_s = method.load(ctx)
            except Exception as exc:  # the other methods still run
                print(f"benchmarks.run: error: {method.name}: cannot load ({exc})", file=sys.stderr)
                for clip in todo:
                    records.write(_gen_record(clip, method.name, settings, 0.0, None, None, f"load failed: {exc}"))
                continue
            if method.generative:  # copying real clips has no model to load and no memory to report
                profiles.write({"method": method.name, "load_s": load_s if load_s is not None else
                                time.perf_counter() - start, "device": settings.device, "rank": rank})
            for clip in tqdm(todo, desc=method.name, unit="clip", disable=None, file=sys.stderr):
                if settings.device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats(settings.device)
                out = run_dir / "clips" / method.name.replace(":", "_") / f"{clip.clip_id}.mp4"
                t0 = time.perf_counter()
                try:
                    video, error = str(method.generate(clip, out, ctx)), None
                except Exception as exc:  # one bad clip never stops the batch
                    video, error = None, " ".join(f"{type(exc).__name__}: {exc}".split())
                    print(f"benchmarks.run: error: {method.name} {clip.clip_id}: {error}", file=sys.stderr)
                peak = peak_memory_mb(settings.device) if method.generative else None
                records.write(_gen_record(clip, method.name, settings, time.perf_counter() - t0, peak, video, error))


def _gen_record(clip, method: str, s: GenerationSettings, seconds: float, peak: float | None, video: str | None,
                error: str | None) -> dict:
    return {"clip_id": clip.clip_id, "method": method, "seed": s.seed, "seconds": seconds, "peak_mem_mb": peak,
            "num_frames": s.num_frames, "device": s.device, "video": video,
            "status": "ok" if error is None else "error", "error": error}


def wait_for_ranks(run_dir: Path, token: str, world: int, poll_s: float = 2.0) -> None:
    """File barrier: return once every rank has marked ``token`` done."""
    while not all((run_dir / f".done-{token}-{r}").exists() for r in range(world)):
        time.sleep(poll_s)


# --------------------------------------------------------------------------------------------
# Stage 2: score
# --------------------------------------------------------------------------------------------
def stage_score(run_dir: Path, workers: int | None = None) -> None:
    from avalign import Job, score_files

    generated = [r for f in sorted(run_dir.glob("generate-*.jsonl")) for r in read_jsonl(f)]
    done = {(r["method"], r["clip_id"]) for r in read_jsonl(run_dir / "records.jsonl")}
    todo = {}
    for r in generated:
        if (r["method"], r["clip_id"]) not in done:
            todo[(r["method"], r["clip_id"])] = r  # the last attempt of a clip wins
    with JsonlWriter(run_dir / "records.jsonl") as out:
        for key, r in list(todo.items()):
            if r["status"] != "ok":
                out.write({**_base(r), "status": "error", "error": r["error"], "avalign": None})
                del todo[key]
        by_video = {os.path.abspath(r["video"]): r for r in todo.values()}
        for result in score_files([Job(r["video"]) for r in todo.values()], workers=workers):
            r = by_video[os.path.abspath(result.video)]
            out.write({**_base(r), "status": result.status, "error": result.error, "avalign": result.to_record()})


def _base(r: dict) -> dict:
    return {k: r[k] for k in ("clip_id", "method", "seed", "seconds", "peak_mem_mb", "num_frames", "device")}


# --------------------------------------------------------------------------------------------
# Stage 3: summarize
# --------------------------------------------------------------------------------------------
def summary_rows(dataset: str, records: list[dict], profiles: list[dict], order: Sequence[str]) -> list[dict]:
    """One row per method (in ``order``, then any other method found)."""
    methods = list(dict.fromkeys([m for m in order if any(r["method"] == m for r in records)] +
                                 [r["method"] for r in records]))
    rows = []
    for m in methods:
        mine = [r for r in records if r["method"] == m]
        s = summarize({"status": r["status"], "score": (r["avalign"] or {}).get("score")} for r in mine)
        ok = [r for r in mine if r["status"] != "error"]
        secs = np.array([r["seconds"] for r in ok]) if ok else np.array([np.nan])
        frames = sum(r["num_frames"] for r in ok)
        load = [p["load_s"] for p in profiles if p["method"] == m]
        rows.append({
            "dataset": dataset, "method": m, "n": s.n, "n_undefined": s.n_undefined, "n_error": s.n_error,
            "av_align": s.mean, "av_align_ci_low": s.ci_low, "av_align_ci_high": s.ci_high,
            "load_s": max(load) if load else float("nan"),
            "s_per_clip_p50": float(np.percentile(secs, 50)), "s_per_clip_p90": float(np.percentile(secs, 90)),
            "frames_per_s": frames / float(np.sum(secs)) if ok and np.sum(secs) > 0 else float("nan"),
            "peak_mem_mb": max((r["peak_mem_mb"] for r in ok if r["peak_mem_mb"] is not None), default=float("nan")),
            "device": mine[0]["device"],
        })
    return rows


def stage_summarize(run_dir: Path, dataset: str, order: Sequence[str]) -> list[dict]:
    records = read_jsonl(run_dir / "records.jsonl")
    profiles = [p for f in sorted(run_dir.glob("profiles-*.jsonl")) for p in read_jsonl(f)]
    rows = summary_rows(dataset, records, profiles, order)
    tmp = run_dir / "summary.csv.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    os.replace(tmp, run_dir / "summary.csv")
    return rows


def write_env(run_dir: Path, config: dict) -> None:
    """``env.json``: versions, device, git commit and the resolved configuration."""
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
           "git_commit": commit, "config": config}
    (run_dir / "env.json").write_text(json.dumps(env, indent=1, default=str))


def print_table(rows: list[dict]) -> None:
    print(f"{'method':<26}{'n':>4}{'undef':>6}{'err':>5}{'AV-Align':>10}{'95% CI':>17}{'s/clip':>8}{'mem MB':>8}")
    for r in rows:
        print(f"{r['method']:<26}{r['n']:>4}{r['n_undefined']:>6}{r['n_error']:>5}{r['av_align']:>10.4f}"
              f"   {r['av_align_ci_low']:.3f}-{r['av_align_ci_high']:.3f}{r['s_per_clip_p50']:>8.2f}"
              f"{r['peak_mem_mb']:>8.0f}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tempotokens.data.datasets import index_dataset

    try:
        settings, root, run_dir = resolve(args)
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        for m in methods:
            get_method(m)
    except ValueError as exc:
        print(f"benchmarks.run: error: {exc}", file=sys.stderr)
        return 2
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if args.dataset == "synthetic" and not root.exists() and rank == 0:
        from tempotokens.data.synthetic import make_synthetic

        make_synthetic(root, num_clips=24, seed=0)
    if args.model is None and not (TINY_MODEL / "model_index.json").exists() and rank == 0:
        from tempotokens.tiny import make_tiny

        make_tiny(TINY_MODEL)
    clips = index_dataset(root, args.dataset, split="test")[: args.num_clips]
    if not clips:
        print(f"benchmarks.run: error: {root}: no test clips for {args.dataset}", file=sys.stderr)
        return 2
    run_dir.mkdir(parents=True, exist_ok=True)
    stages = set(args.stages.split(","))
    token = hashlib.sha1(json.dumps([methods, [c.clip_id for c in clips]]).encode()).hexdigest()[:10]
    if "generate" in stages:
        stage_generate(run_dir, clips, methods, settings, rank, world)
        (run_dir / f".done-{token}-{rank}").touch()
    if rank != 0:
        return 0
    wait_for_ranks(run_dir, token, world if "generate" in stages else 0)
    if "score" in stages:
        stage_score(run_dir, args.workers)
    if "summarize" in stages:
        config = {"args": vars(args), "settings": settings.__dict__, "dataset_root": str(root),
                  "methods": methods, "clips": [c.clip_id for c in clips], "world_size": world}
        write_env(run_dir, config)
        rows = stage_summarize(run_dir, args.dataset, [get_method(m).name for m in methods])
        print_table(rows)
        print(f"summary: {run_dir / 'summary.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
