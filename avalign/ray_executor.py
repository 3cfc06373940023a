"""Scoring on a Ray cluster: the same tasks as the local process pool, as Ray tasks.

Imported only when ``executor="ray"`` is asked for, so ``avalign`` never needs Ray otherwise
(``pip install 'tempotokens[ray]'``).  The work is cut as in :mod:`avalign.parallel`:

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
cluster of ``workers`` CPUs is started for the run and stopped after it.
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Iterator

import numpy as np

from . import core
from .parallel import Job, _Prepared, _prepare_arrays
from .protocol import Protocol
from .score import AVAlignResult, analyze_audio_file, assemble, audio_error, error_result, resolve_audio
from .variants import Variant

#: Tasks in flight per CPU of the cluster (bounds the frames held in the object store).
INFLIGHT_PER_CPU = 2


def _remote_functions(ray):
    @ray.remote(num_cpus=1, max_retries=1)
    def prepare(job: Job, chunk_pairs: int, protocol: Protocol):
        import cv2

        cv2.setNumThreads(1)
        return _prepare_arrays(job, chunk_pairs, protocol)  # (description, gray frames): two object refs

    @ray.remote(num_cpus=1, max_retries=1)
    def chunk(frames: np.ndarray, start: int, stop: int, flow: str, full_width: int | None = None):
        import cv2

        cv2.setNumThreads(1)
        t0 = time.perf_counter()
        return core.pair_magnitudes(frames, start, stop, mode=flow, full_width=full_width), time.perf_counter() - t0

    return prepare, chunk


def import_ray():
    """Ray, or :class:`~avalign.parallel.ExecutorError` saying how to install it."""
    from .parallel import ExecutorError

    try:
        import ray
    except ImportError:
        raise ExecutorError("--executor ray needs Ray: pip install 'tempotokens[ray]'") from None
    return ray


def connect(ray, address: str | None, workers: int) -> None:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start a local one of ``workers`` CPUs."""
    from .parallel import ExecutorError

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
    try:
        yield from _RayRun(ray, jobs, variant, protocol, empty_score, chunk_pairs).results()
    finally:
        if started:
            ray.shutdown()


class _RayRun:
    def __init__(self, ray, jobs, variant, protocol, empty_score, chunk_pairs):
        self.ray, self.jobs, self.variant, self.protocol = ray, jobs, variant, protocol
        self.empty_score, self.chunk_pairs = empty_score, chunk_pairs
        self.prepare, self.chunk = _remote_functions(ray)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.limit = max(2, INFLIGHT_PER_CPU * cpus)
        self.state: dict[int, dict] = {}
        self.pending: dict = {}  # ObjectRef -> (clip index, kind, start)

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

    def _analyze_audio(self, i: int) -> Iterator[AVAlignResult]:
        st = self.state[i]
        if st["done"]:
            return
        t0 = time.perf_counter()
        try:
            st["audio"] = analyze_audio_file(st["audio_path"] or self.jobs[i].video, self.variant, self.protocol)
        except Exception as exc:
            yield self._fail(i, audio_error(self.jobs[i].video, st["audio_path"], exc))
            return
        st["seconds"] += time.perf_counter() - t0
        yield from self._try_finish(i)

    def _start(self, i: int) -> int:
        job = self.jobs[i]
        audio_path = resolve_audio(job.video, job.audio)
        meta_ref, frames_ref = self.prepare.options(num_returns=2).remote(job, self.chunk_pairs, self.protocol)
        self.state[i] = {"audio_path": audio_path, "frames": frames_ref, "chunks": {}, "missing": None,
                         "meta": None, "audio": None, "seconds": 0.0, "done": False}
        self.pending[meta_ref] = (i, "prepare", None)
        return i

    def _collect(self, ref) -> Iterator[AVAlignResult]:
        ray = self.ray
        i, kind, start = self.pending.pop(ref)
        st = self.state[i]
        if st["done"]:
            return
        try:
            value = ray.get(ref)
        except ray.exceptions.RayError as exc:  # a crashed or OOM-killed worker, a lost node or object
            yield self._fail(i, f"{self.jobs[i].video}: a Ray worker died while scoring this clip "
                                f"({type(exc).__name__})")
            return
        if kind == "prepare":
            meta: _Prepared = value
            st["seconds"] += meta.seconds
            if meta.error is not None:
                yield self._fail(i, meta.error)
                return
            st["meta"], st["chunks"][0] = meta, meta.first_mags
            n_pairs, first = meta.n_frames - 1, len(meta.first_mags)
            starts = list(range(first, n_pairs, self.chunk_pairs))
            st["missing"] = len(starts)
            for s in starts:
                self.pending[self.chunk.remote(st["frames"], s, min(s + self.chunk_pairs, n_pairs),
                                               self.protocol.flow, meta.full_width)] = (i, "chunk", s)
        else:
            mags, seconds = value
            st["chunks"][start] = mags
            st["missing"] -= 1
            st["seconds"] += seconds
        yield from self._try_finish(i)

    def _try_finish(self, i: int) -> Iterator[AVAlignResult]:
        st = self.state[i]
        if not st["done"] and st["meta"] is not None and st["audio"] is not None and st["missing"] == 0:
            meta = st["meta"]
            mags = np.concatenate([st["chunks"][s] for s in sorted(st["chunks"])])
            self._release(i)
            yield assemble(self.jobs[i].video, st["audio_path"], self.variant, meta.fps, meta.n_frames, mags,
                           st["audio"], protocol=self.protocol, frame_shape=meta.frame_shape,
                           empty_score=self.empty_score, seconds=st["seconds"])

    def _fail(self, i: int, reason: str) -> AVAlignResult:
        self._release(i)
        return error_result(self.jobs[i].video, self.state[i]["audio_path"], self.variant, reason, self.protocol)

    def _release(self, i: int) -> None:
        st = self.state[i]
        st["done"] = True
        st["chunks"], st["frames"] = {}, None
        for ref, (j, _, _) in list(self.pending.items()):
            if j == i:
                self.ray.cancel(ref, force=False)
                del self.pending[ref]
