"""``python -m benchmarks.gpu_check --out DIR --budget-s 420``: every GPU figure in one bounded run.

Made for a borrowed GPU machine (its own Python, no package registry; see the docs' *GPU check*):
the measurements run in order of value, each group that shares a model in its own process (the
model is built once per group) under a timeout no longer than the budget left, and no measurement
starts once the budget is spent.  Every figure becomes one record in ``DIR/gpu.json`` (name, value,
unit, settings, device, torch/CUDA versions, seconds, status ``ok | skipped | timeout | error`` with
the reason) and a row of ``DIR/gpu.md``; the groups' output goes to ``DIR/log.txt`` (four files in
all: within what the device tool brings back); last, within the same budget, the ``gpu`` tests run.

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
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from avalign.flags import HelpFormatter
from avalign.io.atomic import write_json_atomic, write_text_atomic

#: (group, measurement names) in order of value; every name gets exactly one record.
PLAN = (
    ("generation", ("generate-fp16", "generate-bf16", "generate-fp16-vae-slicing", "generate-fp16-no-sdpa",
                    "generate-stock-ratio")),
    ("training", ("train-step-fp16", "train-step-fp16-checkpointing")),
    ("correctness", ("denoise-step-fp16-vs-fp32", "denoise-step-bf16-vs-fp32")),
    ("metrics", ("features-fvd-styleganv", "features-fvd-videogpt", "features-is-c3d", "features-clipsim")),
    ("sync", ("features-desync", "features-ib")),
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
def _read_part(part: Path) -> tuple[list[dict], dict]:
    """The records a worker wrote, and the measurements it started (name -> wall-clock start)."""
    done, started = [], {}
    if part.is_file():
        for line in part.read_text().splitlines():
            item = json.loads(line)
            if "started" in item:
                started[item["started"]] = item["at"]
            else:
                done.append(item)
    return done, started


def run_plan(out: Path, budget_s: float, dry_run: bool, plan=PLAN, inject_slow: str | None = None) -> list[dict]:
    """Run every group of ``plan`` under ``budget_s`` seconds in all; returns the records (also
    written to ``out/gpu.json`` and ``out/gpu.md``; the groups' output goes to ``out/log.txt``).

    Ctrl-C or SIGTERM kills the running group and still writes what was finished (the rest
    ``skipped``, reason ``interrupted``), then raises KeyboardInterrupt."""
    out.mkdir(parents=True, exist_ok=True)
    deadline = _now() + budget_s
    import torch  # versions only: the parent never initialises CUDA (its context would hold GPU memory)

    env = {"device": None, "torch": torch.__version__, "cuda": torch.version.cuda}
    records: list[dict] = []
    part, log = out / "records.jsonl", out / "log.txt"
    part.unlink(missing_ok=True)
    log.write_text("")
    interrupted = False
    for group, names in plan:
        try:
            records += _run_one(group, names, out, deadline, dry_run, inject_slow, env, interrupted, part, log)
        except KeyboardInterrupt:  # between two groups: the rest is skipped, the files still written
            interrupted = True
            done = {r["name"] for r in records}
            records += [record(n, "skipped", reason="interrupted", env=env) for n in names if n not in done]
        if records and records[-1].get("device") and not env.get("device"):
            env = {k: records[-1].get(k) for k in ("device", "torch", "cuda")}
        interrupted = interrupted or any(r["reason"] == "interrupted" for r in records)
    # written whole or not at all (a kill mid-write leaves the previous files, never half of one)
    write_json_atomic(out / "gpu.json", {"budget_s": budget_s, "dry_run": dry_run, "records": records})
    write_text_atomic(out / "gpu.md", markdown(records, dry_run))
    if interrupted:
        raise KeyboardInterrupt
    return records


def _run_one(group: str, names: Sequence[str], out: Path, deadline: float, dry_run: bool, inject_slow: str | None,
             env: dict, interrupted: bool, part: Path, log: Path) -> list[dict]:
    """One group's records: run in its own process under the budget left (or skipped)."""
    records: list[dict] = []
    left = deadline - _now()
    if interrupted or left <= 0:
        reason = "interrupted" if interrupted else "budget spent before it started"
        return [record(n, "skipped", reason=reason, env=env) for n in names]
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--worker", group, "--out", str(out),
           "--deadline-in-s", f"{left:.3f}"] + (["--dry-run"] if dry_run else []) + \
          (["--inject-slow", inject_slow] if inject_slow else [])
    t0 = _now()
    with open(log, "a") as f:
        f.write(f"==> group {group} ({left:.0f} s of budget left)\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        status, reason = "error", None
        try:
            proc.wait(timeout=left)
            if proc.returncode != 0:
                reason = f"group process exited {proc.returncode} (see log.txt)"
        except subprocess.TimeoutExpired:
            status, reason = "timeout", f"its group was stopped at the budget, after {_now() - t0:.0f} s"
        except KeyboardInterrupt:
            status, reason = "skipped", "interrupted"
        finally:
            if proc.poll() is None:  # never leave a worker holding the GPU
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    done, started = _read_part(part)
    mine = [r for r in done if r["name"] in names]
    if done:  # the device name, as a worker saw it, for the records the parent writes
        env = {k: done[0].get(k) for k in ("device", "torch", "cuda")}
    seen = {r["name"] for r in mine}
    records += mine
    for n in names:
        if n in seen:
            continue
        if n in started:  # it was running when the group stopped
            records.append(record(n, status, seconds=time.time() - started[n], reason=reason, env=env))
        else:
            why = reason if status == "error" or reason == "interrupted" else f"not started: {reason}"
            records.append(record(n, "skipped" if status != "error" else "error", reason=why, env=env))
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
def run_group(group: str, out: Path, deadline: float, dry_run: bool, inject_slow: str | None = None) -> None:
    from . import gpu_measure

    names = dict(PLAN)[group]
    env = environment()
    part = out / "records.jsonl"
    slow_name, _, slow_s = (inject_slow or "").partition("=")

    def emit(r: dict) -> None:
        with open(part, "a") as f:
            f.write(json.dumps({**r, **env} if "started" not in r else r) + "\n")

    try:
        context = gpu_measure.setup(group, dry_run)
    except Exception as exc:  # the group's model could not be built: every measurement says why
        for n in names:
            emit(record(n, "error", reason=f"setup: {type(exc).__name__}: {exc}"[:300]))
        return
    try:
        for name in names:
            if _now() >= deadline:
                emit(record(name, "skipped", reason="budget spent before it started"))
                continue
            emit({"started": name, "at": time.time()})
            t0 = _now()
            try:
                if name == slow_name:
                    time.sleep(float(slow_s))  # the budget test's stand-in for one slow measurement
                value, unit, settings = gpu_measure.measure(name, context, deadline)
                emit(record(name, "ok", value, unit, settings, _now() - t0))
            except gpu_measure.Skip as exc:
                emit(record(name, "skipped", seconds=_now() - t0, reason=str(exc)))
            except gpu_measure.Timeout as exc:
                emit(record(name, "timeout", seconds=_now() - t0, reason=str(exc)))
            except Exception as exc:
                emit(record(name, "error", seconds=_now() - t0, reason=f"{type(exc).__name__}: {exc}"[:300]))
    finally:
        gpu_measure.teardown(context)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check",
                                description="Every GPU figure in one bounded run: generation, training, correctness and "
                                            "metric feature passes at full size, then the gpu tests; writes "
                                            "DIR/gpu.json and DIR/gpu.md.",
                                formatter_class=HelpFormatter)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for gpu.json, gpu.md and the per-group records")
    p.add_argument("--budget-s", type=float, default=420.0, metavar="S", help="seconds for everything, the tests included")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: the same code path and list")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--deadline-in-s", type=float, help=argparse.SUPPRESS)
    p.add_argument("--inject-slow", help=argparse.SUPPRESS)  # NAME=SECONDS: that measurement sleeps first
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not (math.isfinite(args.budget_s) and args.budget_s > 0):
        print(f"gpu_check: error: --budget-s must be a positive number of seconds, got {args.budget_s}",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    if args.worker:
        run_group(args.worker, out, _now() + args.deadline_in_s, args.dry_run, args.inject_slow)
        return 0

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        records = run_plan(out, args.budget_s, args.dry_run, inject_slow=args.inject_slow)
    except OSError as exc:
        print(f"gpu_check: error: {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gpu_check: interrupted; what finished is in {out / 'gpu.json'}", file=sys.stderr)
        return 130
    counts = {s: sum(r["status"] == s for r in records) for s in ("ok", "skipped", "timeout", "error")}
    print(f"wrote {out / 'gpu.json'} and {out / 'gpu.md'}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
