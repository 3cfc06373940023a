"""Stage 1 of a benchmark run: every method writes its clips, with figures that are its own.

Each *generating* method runs in a fresh process of its own (``spawn``): it loads its models once,
then generates its clips, so its load time, the memory it holds after loading and its peak memory
belong to it alone, whatever ran before it.  Methods that copy real clips run in the caller.

Per clip, a record goes to ``generate-<rank>.jsonl``; a generating method also writes to
``profiles-<rank>.jsonl`` one ``load`` record (``load_s``, ``load_mem_mb``) and, per clip, where the
time (and, on a GPU, the memory) went, stage by stage (:class:`tempotokens.profiling.StageProfiler`).
Memory is MiB: on CPU the process's resident set (peak: ``VmHWM``), on a GPU what torch allocated
(``memory_allocated``; the peak is ``max_memory_allocated``, reset after loading, per clip).
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from avalign.io import JsonlWriter, read_jsonl
from avalign.runctl import end_processes, ignore_interrupts
from baselines import GenerationSettings, RunContext, get_method
from tempotokens.data.datasets import ClipInfo

from .records import ClipProfile, GenerationRecord, LoadProfile
from .runfolder import latest, read_all


def shard(items: Sequence, rank: int, world: int) -> list:
    """Process ``rank``'s share: every ``world``-th item from ``rank``."""
    return list(items[rank::world])


def _proc_status_mb(field: str) -> float | None:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in MiB; None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def current_memory_mb(device: str) -> float:
    """Memory held now (MiB): torch's allocation on a CUDA device, else this process's resident set."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.memory_allocated(device) / 2**20
    rss = _proc_status_mb("VmRSS")
    return rss if rss is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory_mb(device: str) -> float:
    """Peak memory (MiB): torch's ``max_memory_allocated`` on a CUDA device, else this process's peak
    resident set.

    On Linux the peak is ``VmHWM``, the high-water mark of this process's own address space.
    ``ru_maxrss`` is not used there: Linux carries it across ``fork`` + ``exec``, so a freshly spawned
    process would report its parent's memory at the fork.
    """
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20
    hwm = _proc_status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class MethodJob:
    """One method's share of the clips: everything its process needs (picklable)."""

    run_dir: Path
    method: str
    clips: tuple[ClipInfo, ...]  # every clip of the run (seeds and shuffles index into them)
    todo: tuple[str, ...]  # the clip ids to generate
    settings: GenerationSettings
    settings_hash: str
    rank: int = 0


def clip_path(run_dir: Path, method: str, clip_id: str) -> Path:
    return run_dir / "clips" / method.replace(":", "_") / f"{clip_id}.mp4"


def run_method(job: MethodJob) -> None:
    """Load one method and generate its clips, writing a record per clip as it is made."""
    import torch
    from tqdm import tqdm

    from tempotokens.profiling import StageProfiler
    from tempotokens.quiet import no_loading_bars

    no_loading_bars()  # the per-clip bar below says what is happening
    method = get_method(job.method)
    s = job.settings
    ctx = RunContext(clips=list(job.clips), settings=s)
    by_id = {c.clip_id: c for c in job.clips}
    cuda = s.device.startswith("cuda")
    with JsonlWriter(job.run_dir / f"generate-{job.rank}.jsonl") as records, \
            JsonlWriter(job.run_dir / f"profiles-{job.rank}.jsonl") as profiles:
        tag = {"method": method.name, "rank": job.rank, "settings_hash": job.settings_hash}
        start = time.perf_counter()
        try:
            load_s = method.load(ctx)
        except Exception as exc:  # the other methods still run
            reason = f"load failed: {' '.join(str(exc).split())}"
            print(f"benchmarks.run: error: {method.name}: {reason}", file=sys.stderr)
            for clip_id in job.todo:
                records.write(_record(by_id[clip_id], method, ctx, job, 0.0, None, None, reason))
            return
        if method.generative:
            profiles.write(LoadProfile(**tag, device=s.device,
                                       load_s=load_s if load_s is not None else time.perf_counter() - start,
                                       load_mem_mb=current_memory_mb(s.device)).to_record())
        for clip_id in tqdm(job.todo, desc=method.name, unit="clip", disable=None, file=sys.stderr):
            clip = by_id[clip_id]
            ctx.profiler = StageProfiler(s.device) if method.generative else None
            if cuda and method.generative:
                torch.cuda.reset_peak_memory_stats(s.device)
            t0 = time.perf_counter()
            try:
                out, error = method.generate(clip, clip_path(job.run_dir, method.name, clip_id), ctx), None
            except Exception as exc:  # one bad clip never stops the batch
                out, error = None, " ".join(f"{type(exc).__name__}: {exc}".split())
                print(f"benchmarks.run: error: {method.name} {clip_id}: {error}", file=sys.stderr)
            seconds = time.perf_counter() - t0
            peak = None
            if method.generative:
                peak = max(peak_memory_mb(s.device), ctx.profiler.peak_mb or 0.0)
                if error is None:
                    profiles.write(ClipProfile(**tag, clip_id=clip_id, **ctx.profiler.to_record()).to_record())
            records.write(_record(clip, method, ctx, job, seconds, peak, out, error))


def _record(clip: ClipInfo, method, ctx: RunContext, job: MethodJob, seconds: float, peak: float | None, out,
            error: str | None) -> dict:
    s = ctx.settings
    return GenerationRecord(
        clip_id=clip.clip_id, method=method.name, role=method.role, generative=method.generative,
        seed=ctx.seed_for(clip), seconds=seconds, peak_mem_mb=peak, num_frames=s.num_frames, device=s.device,
        settings_hash=job.settings_hash, attempt=uuid.uuid4().hex[:12], video=str(out.video) if out else None,
        audio=str(out.audio) if out and out.audio else None, source=method_source(method),
        status="ok" if error is None else "error", error=error).to_record()


def method_source(method) -> str | None:
    """Where a method's clips come from when its name does not say it all (an external folder)."""
    folder = getattr(method, "folder", None)
    return str(Path(folder).resolve()) if folder is not None else None


def _child(job: MethodJob) -> None:
    import threading

    from tqdm import tqdm

    ignore_interrupts()  # Ctrl-C reaches the whole group: the parent decides, and terminates this process
    # tqdm's default lock is a multiprocessing semaphore; a process ended by SIGTERM cannot release it,
    # and the resource tracker then warns of a "leaked semaphore" after a Ctrl-C. This process is the
    # only writer of its bars, so a thread lock does.
    tqdm.set_lock(threading.RLock())
    run_method(job)


def run_isolated(job: MethodJob) -> None:
    """:func:`run_method` in a fresh process; clips it left without a record (it died) become errors.
    On Ctrl-C or SIGTERM the process is terminated at once (its finished clips and records are kept;
    the clip in flight was being written under a temporary name) and the interrupt goes on up."""
    process = mp.get_context("spawn").Process(target=_child, args=(job,), name=f"generate-{job.method}")
    process.start()
    try:
        process.join()
    except BaseException:
        end_processes([process])
        raise
    if process.exitcode == 0:
        return
    written = {r["clip_id"] for r in read_jsonl(job.run_dir / f"generate-{job.rank}.jsonl")
               if r["method"] == get_method(job.method).name}
    lost = [c for c in job.todo if c not in written]
    print(f"benchmarks.run: error: {job.method}: its process died (exit code {process.exitcode}); "
          f"{len(lost)} clips recorded as errors", file=sys.stderr)
    method = get_method(job.method)
    ctx = RunContext(clips=list(job.clips), settings=job.settings)
    by_id = {c.clip_id: c for c in job.clips}
    with JsonlWriter(job.run_dir / f"generate-{job.rank}.jsonl") as records:
        for clip_id in lost:
            records.write(_record(by_id[clip_id], method, ctx, job, 0.0, None, None,
                                  f"the method's process died (exit code {process.exitcode})"))


def stage_generate(run_dir: Path, clips: list[ClipInfo], method_names: Sequence[str], settings: GenerationSettings,
                   settings_hash: str, *, rank: int = 0, world: int = 1, retry_errors: bool = False) -> None:
    """Generate every method's clips of this rank's shard that have no record yet (and, with
    ``retry_errors``, those whose last record is an error)."""
    previous = latest(read_all(run_dir, "generate-*.jsonl"))
    done = {k for k, r in previous.items() if r["status"] == "ok" or not retry_errors}
    mine = shard(clips, rank, world)
    # methods that read other methods' clips (``needs``) run after all the others
    ordered = sorted(method_names, key=lambda n: bool(getattr(get_method(n), "needs", ())))
    for name in ordered:
        method = get_method(name)
        todo = tuple(c.clip_id for c in mine if (method.name, c.clip_id) not in done)
        if not todo:
            continue
        job = MethodJob(run_dir, name, tuple(clips), todo, settings, settings_hash, rank)
        (run_isolated if method.generative else run_method)(job)
