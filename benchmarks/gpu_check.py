"""``python -m benchmarks.gpu_check --out DIR --budget-s 420``: every GPU figure in one bounded run.

Made for a borrowed GPU machine (its own Python, no package registry; see the README's *GPU check*):
the measurements run in order of value, each group that shares a model in its own process (the
model is built once per group) under a timeout no longer than the budget left, and no measurement
starts once the budget is spent.  Every figure becomes one record in ``DIR/gpu.json`` (name, value,
unit, settings, device, torch/CUDA versions, seconds, status ``ok | skipped | timeout | error`` with
the reason) and a row of ``DIR/gpu.md``; last, within the same budget, the ``gpu``-marked tests run.

``--dry-run`` is the same code path and the same measurement list at tiny sizes on the CPU (the test
suite runs it, so the script cannot rot).  The import path needs none of PyAV, librosa, soundfile
or omegaconf (the GPU machine has none of them; a test checks it).

Groups, in order: ``generation`` (our pipeline in fp16, bf16, with VAE slicing, without SDPA, and
the stock diffusers ``TextToVideoSDPipeline`` on the same UNet as a ratio), ``training`` (one step of
the shipped vggsound config with fp16 mixed precision, with and without gradient checkpointing),
``correctness`` (one denoising step in fp16 and bf16 against fp32), ``metrics`` (FVD, IS and CLIPSIM
feature passes at batch 8 and 32), then the ``gpu`` tests.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

#: (group, measurement names) in order of value; every name gets exactly one record.
PLAN = (
    ("generation", ("generate-fp16", "generate-bf16", "generate-fp16-vae-slicing", "generate-fp16-no-sdpa",
                    "generate-stock-ratio")),
    ("training", ("train-step-fp16", "train-step-fp16-checkpointing")),
    ("correctness", ("denoise-step-fp16-vs-fp32", "denoise-step-bf16-vs-fp32")),
    ("metrics", ("features-fvd-styleganv", "features-fvd-videogpt", "features-is-c3d", "features-clipsim")),
    ("tests", ("gpu-tests",)),
)
#: What ``make gpu-wheels`` downloads into ``.whl/`` for the GPU machine (cp312): what our import path
#: needs that its image lacks (a test checks the two lists against the imports).
GPU_WHEELS = ("diffusers==0.42.1",)
GRACE_S = 15.0  #: how long past the budget a run may take: killing a group and writing the files


def _now() -> float:
    return time.monotonic()


def environment() -> dict:
    import torch

    cuda = torch.cuda.is_available()
    return {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
            "cuda": torch.version.cuda if cuda else None}


def record(name: str, status: str, value=None, unit: str | None = None, settings: dict | None = None,
           seconds: float = 0.0, reason: str | None = None, env: dict | None = None) -> dict:
    return {"name": name, "status": status, "value": value, "unit": unit, "settings": settings or {},
            "seconds": round(seconds, 3), "reason": reason, **(env or {})}


# ----------------------------------------------------------------------------------------------
# the parent: one process per group, the budget, the files
def run_plan(out: Path, budget_s: float, dry_run: bool, plan=PLAN, inject_slow_s: float = 0.0) -> list[dict]:
    """Run every group of ``plan`` under ``budget_s`` seconds in all; returns the records (also
    written to ``out/gpu.json`` and ``out/gpu.md``)."""
    out.mkdir(parents=True, exist_ok=True)
    deadline = _now() + budget_s
    records: list[dict] = []
    for group, names in plan:
        left = deadline - _now()
        if left <= 0:
            records += [record(n, "skipped", reason="budget spent before it started") for n in names]
            continue
        part = out / f"records-{group}.jsonl"
        part.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--worker", group, "--out", str(out),
               "--deadline-in-s", f"{left:.3f}"] + (["--dry-run"] if dry_run else []) + \
              (["--inject-slow-s", str(inject_slow_s)] if inject_slow_s else [])
        t0 = _now()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        status, reason = "error", None
        try:
            log, _ = proc.communicate(timeout=left)
            if proc.returncode != 0:
                reason = (log.strip().splitlines() or ["no output"])[-1][:300]
                reason = f"group process exited {proc.returncode}: {reason}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            status, reason = "timeout", f"the group ran out of the budget after {_now() - t0:.0f} s"
        done = [json.loads(line) for line in part.read_text().splitlines()] if part.is_file() else []
        seen = {r["name"] for r in done}
        records += done + [record(n, status, reason=reason or "no record written") for n in names if n not in seen]
    (out / "gpu.json").write_text(json.dumps({"budget_s": budget_s, "dry_run": dry_run, "records": records},
                                             indent=1))
    (out / "gpu.md").write_text(markdown(records, dry_run))
    return records


def markdown(records: list[dict], dry_run: bool) -> str:
    head = "# GPU check" + (" (dry run: tiny sizes on the CPU, not GPU figures)" if dry_run else "") + "\n\n"
    env = next((r for r in records if r.get("device")), {})
    head += f"device {env.get('device', '?')}, torch {env.get('torch', '?')}, CUDA {env.get('cuda', '?')}\n\n"
    rows = ["| measurement | value | unit | status | seconds | settings / reason |", "|---|---|---|---|---|---|"]
    for r in records:
        value = r["value"]
        shown = ", ".join(f"{k} {v:.4g}" for k, v in value.items()) if isinstance(value, dict) else \
            ("" if value is None else f"{value:.4g}")
        note = r["reason"] or ", ".join(f"{k}={v}" for k, v in r["settings"].items())
        rows.append(f"| {r['name']} | {shown} | {r['unit'] or ''} | {r['status']} | {r['seconds']} | {note} |")
    return head + "\n".join(rows) + "\n"


# ----------------------------------------------------------------------------------------------
# a worker: one group's measurements, in order, each record written as soon as it is made
def run_group(group: str, out: Path, deadline: float, dry_run: bool, inject_slow_s: float = 0.0) -> None:
    from . import gpu_measure

    names = dict(PLAN)[group]
    env = environment()
    part = out / f"records-{group}.jsonl"

    def emit(r: dict) -> None:
        with open(part, "a") as f:
            f.write(json.dumps({**r, **env}) + "\n")

    try:
        context = gpu_measure.setup(group, dry_run)
    except Exception as exc:  # the group's model could not be built: every measurement says why
        for n in names:
            emit(record(n, "error", reason=f"setup: {type(exc).__name__}: {exc}"[:300]))
        return
    for name in names:
        if _now() >= deadline:
            emit(record(name, "skipped", reason="budget spent before it started"))
            continue
        t0 = _now()
        try:
            if inject_slow_s:
                time.sleep(inject_slow_s)  # the budget test's stand-in for a slow measurement
            value, unit, settings = gpu_measure.measure(name, context, deadline)
            emit(record(name, "ok", value, unit, settings, _now() - t0))
        except gpu_measure.Skip as exc:
            emit(record(name, "skipped", seconds=_now() - t0, reason=str(exc)))
        except Exception as exc:
            emit(record(name, "error", seconds=_now() - t0, reason=f"{type(exc).__name__}: {exc}"[:300]))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="folder for gpu.json, gpu.md and the per-group records")
    p.add_argument("--budget-s", type=float, default=420.0, help="seconds for everything, the tests included")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: the same code path and list")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--deadline-in-s", type=float, help=argparse.SUPPRESS)
    p.add_argument("--inject-slow-s", type=float, default=0.0, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.budget_s <= 0:
        print(f"gpu_check: error: --budget-s must be positive, got {args.budget_s}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if args.worker:
        run_group(args.worker, out, _now() + args.deadline_in_s, args.dry_run, args.inject_slow_s)
        return 0
    try:
        records = run_plan(out, args.budget_s, args.dry_run, inject_slow_s=args.inject_slow_s)
    except OSError as exc:
        print(f"gpu_check: error: {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    counts = {s: sum(r["status"] == s for r in records) for s in ("ok", "skipped", "timeout", "error")}
    print(f"wrote {out / 'gpu.json'} and {out / 'gpu.md'}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
