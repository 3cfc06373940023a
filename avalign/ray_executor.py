"""Scoring on a Ray cluster: the same tasks as the local process pool, as Ray tasks.

Imported only when ``executor="ray"`` is asked for, so ``avalign`` never needs Ray otherwise
(``pip install 'tempotokens[ray]'``).  The work is cut as in :mod:`avalign.local_executor`, with the same
per-clip code (:mod:`avalign.assembly`):

* a *prepare* task per clip decodes and conforms it and computes the flow of its first
  ``chunk_pairs`` frame pairs; its gray frames go to Ray's object store (no shared disk needed),
* *chunk* tasks compute the flow of the remaining pairs of long clips from those frames, on any node,
* the driver analyses each clip's audio while the tasks run (as the local executor's parent does:
  it is ~3% of the work, and the onset envelope is then computed in the same kind of process, so the
  records are identical to the local executor's to the last bit) and assembles peaks, matching and
  score with :func:`avalign.score.assemble`.

A task that kills its worker (a decoder crash, out of memory) is retried once by Ray, then costs only
its clip: an error record says so.  The videos and audio files must be readable from every node (a
shared filesystem), as for any cluster job.  With ``address`` None and no ``RAY_ADDRESS``, a local
cluster of ``workers`` CPUs is started for the run and stopped after it.  On Ctrl-C or SIGTERM the
tasks in flight are cancelled (forcefully) and a cluster started for the run is shut down.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Iterator

import numpy as np

from .assembly import ClipState, ExecutorRun, ExecutorError, Job, PreparedClip, chunk_magnitudes, prepare_clip
from .protocol import Protocol
from .score import AVAlignResult
from .variants import Variant

#: Tasks in flight per CPU of the cluster (bounds the frames held in the object store).
INFLIGHT_PER_CPU = 2


def _remote_functions(ray):
    @ray.remote(num_cpus=1, max_retries=1)
    def prepare(job: Job, chunk_pairs: int, protocol: Protocol):
        import cv2

        cv2.setNumThreads(1)
        return prepare_clip(job, chunk_pairs, protocol)  # (description, gray frames): two object refs

    @ray.remote(num_cpus=1, max_retries=1)
    def chunk(frames: np.ndarray, start: int, stop: int, flow: str, full_width: int | None = None):
        import cv2

        cv2.setNumThreads(1)
        return chunk_magnitudes(frames, start, stop, flow, full_width)

    return prepare, chunk


def import_ray():
    """Ray, or :class:`~avalign.assembly.ExecutorError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ExecutorError("--executor ray needs Ray: pip install 'tempotokens[ray]'") from None
    return ray


def connect(ray, address: str | None, workers: int) -> None:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start a local one of ``workers`` CPUs."""
    address = address or os.environ.get("RAY_ADDRESS")
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith("_AVALIGN_")}})
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ExecutorError(f"cannot reach the Ray cluster {address or '(local)'}: {' '.join(str(exc).split())}") \
            from None


def score_files_ray(jobs: list[Job], variant: Variant, protocol: Protocol, *, empty_score: float | None,
                    chunk_pairs: int, address: str | None, workers: int) -> Iterator[AVAlignResult]:
    """Yield each clip's result as soon as it is finished (completion order)."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        connect(ray, address, workers)
    run = RayRun(ray, jobs, variant, protocol, empty_score, chunk_pairs)
    try:
        yield from run.results()
    except BaseException:  # Ctrl-C, SIGTERM, the caller closing the generator: end the tasks now
        run.cancel_all()
        raise
    finally:
        if started:
            ray.shutdown()


class RayRun(ExecutorRun):
    """One batch as Ray tasks; :meth:`results` yields each clip's result when finished."""

    def __init__(self, ray, jobs, variant, protocol, empty_score, chunk_pairs):
        self.ray, self.jobs, self.variant, self.protocol = ray, jobs, variant, protocol
        self.empty_score, self.chunk_pairs = empty_score, chunk_pairs
        self.prepare, self.chunk = _remote_functions(ray)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.limit = max(2, INFLIGHT_PER_CPU * cpus)
        self.clips: dict[int, ClipState] = {}
        self.pending: dict = {}  # ObjectRef -> (clip index, chunk start or None for the prepare task)

    def results(self) -> Iterator[AVAlignResult]:
        ray = self.ray
        todo = deque(range(len(self.jobs)))  # O(1) pops: a dataset can hold 200k clips
        audio_todo: deque[int] = deque()
        while todo or self.pending or audio_todo:
            while todo and len(self.pending) < self.limit:
                audio_todo.append(self._start(todo.popleft()))
            while audio_todo:  # the driver's share, done while the tasks run
                yield from self._analyze_audio(audio_todo.popleft())
            if not self.pending:
                continue
            done, _ = ray.wait(list(self.pending), num_returns=1)
            for ref in done:
                yield from self._collect(ref)

    def cancel_all(self) -> None:
        """Cancel every task in flight (force: their workers are killed)."""
        for ref in list(self.pending):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # an already finished task, a lost connection: nothing left to stop
                pass
        self.pending.clear()

    def _start(self, i: int) -> int:
        clip = self.clips[i] = ClipState.for_job(self.jobs[i])
        meta_ref, clip.frames = self.prepare.options(num_returns=2).remote(clip.job, self.chunk_pairs, self.protocol)
        self.pending[meta_ref] = (i, None)
        return i

    def _collect(self, ref) -> Iterator[AVAlignResult]:
        ray = self.ray
        i, start = self.pending.pop(ref)
        clip = self.clips[i]
        if clip.done:
            return
        try:
            value = ray.get(ref)
        except ray.exceptions.RayError as exc:  # a crashed or OOM-killed worker, a lost node or object
            yield self._fail(i, f"{self.jobs[i].video}: a Ray worker died while scoring this clip "
                                f"({type(exc).__name__})")
            return
        if start is None:
            meta: PreparedClip = value
            for s, stop in clip.add_prepared(meta, self.chunk_pairs):
                self.pending[self.chunk.remote(clip.frames, s, stop, self.protocol.flow, meta.full_width)] = (i, s)
            if meta.error is not None:
                yield self._fail(i, meta.error)
                return
        else:
            mags, seconds = value
            clip.add_chunk(start, mags, seconds)
        yield from self._try_finish(i)

    def _try_finish(self, i: int) -> Iterator[AVAlignResult]:
        clip = self.clips[i]
        if clip.ready:
            result = clip.finish(self.variant, self.protocol, self.empty_score)
            self._release(i)
            yield result

    def _fail(self, i: int, reason: str) -> AVAlignResult:
        result = self.clips[i].fail(self.variant, self.protocol, reason)
        self._release(i)
        return result

    def _release(self, i: int) -> None:
        for ref, (j, _) in list(self.pending.items()):
            if j == i:
                self.ray.cancel(ref, force=False)
                del self.pending[ref]
