"""Scoring many files in parallel worker processes.

Optical flow is ~97% of AV-Align's time, so the work is cut at that grain:

* a *prepare* task decodes a clip once (gray frames) and computes the flow of its first
  ``chunk_pairs`` frame pairs; a clip with more pairs leaves its gray frames in a temporary
  ``.npy`` file,
* *chunk* tasks compute the flow of the remaining pairs from that file (memory-mapped), spread
  over all workers, so a single long clip uses every core,
* the parent analyses the audio (cheap, and it keeps librosa's 2-3 s import out of the workers)
  and assembles peaks, matching and score with :func:`avalign.score.assemble`, the same code as
  the serial path, so parallel and serial results are identical.

Workers start from a ``forkserver`` (a clean single-threaded process that has imported this
module), never by forking the caller: a caller that has run torch, OpenCV or FFmpeg holds thread
pools whose locks a forked child can inherit mid-operation and hang on.  Each worker uses one
OpenCV thread.  A worker that dies (a crash in
a decoder, out of memory) does not stop the batch: the pool is restarted, the clips it held are
retried once, then recorded as errors.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import sys
import warnings
import tempfile
import time
import uuid
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from . import core
from .media import read_video_for_flow
from .protocol import NATIVE, Protocol
from .score import (
    AudioAnalysis,
    AVAlignResult,
    analyze_audio_file,
    assemble,
    audio_error,
    error_reason,
    error_result,
    resolve_audio,
    score_file,
)
from .variants import DEFAULT_VARIANT, Variant, get_variant


@dataclass(frozen=True)
class Job:
    """One clip to score: a video and, optionally, an explicit audio file."""

    video: str
    audio: str | None = None


def default_workers() -> int:
    """Worker processes by default: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def score_files(
    jobs: Iterable[Job | str | os.PathLike],
    variant: str | Variant = DEFAULT_VARIANT,
    *,
    protocol: Protocol = NATIVE,
    workers: int | None = None,
    empty_score: float | None = None,
    chunk_pairs: int = 32,
    start_method: str | None = None,
    executor: str = "local",
    address: str | None = None,
) -> Iterator[AVAlignResult]:
    """Score many clips, yielding each :class:`AVAlignResult` as soon as it is finished.

    Parameters
    ----------
    jobs : iterable of Job, str or path
        Videos to score (a plain path uses its sibling wav or its own audio track).
    variant : str or Variant
        AV-Align variant.
    protocol : Protocol
        Frame rate, size and span every clip is conformed to before scoring (default: as decoded).
    workers : int, optional
        Worker processes; default :func:`default_workers`.  1 scores in this process.
    empty_score : float, optional
        Score given to clips with no peak in either stream (default None: undefined).
    chunk_pairs : int
        Frame pairs per flow task; longer clips are split across workers.
    start_method : str, optional
        multiprocessing start method of the workers (default ``"forkserver"`` where available).
    executor : {"local", "ray"}
        ``local``: processes on this machine; ``ray``: Ray tasks on a running cluster (``address``,
        ``"auto"`` or ``RAY_ADDRESS``) or on a local one of ``workers`` CPUs started for the call
        (:mod:`avalign.ray_executor`; needs ``pip install 'tempotokens[ray]'``).  Same results.
    address : str, optional
        The Ray cluster to use.

    Yields
    ------
    AVAlignResult
        In completion order (with ``workers > 1``, not necessarily the input order).
    """
    jobs = [j if isinstance(j, Job) else Job(str(j)) for j in jobs]
    variant = get_variant(variant)
    workers = default_workers() if workers is None else int(workers)
    if executor == "ray":
        if not jobs:
            return
        from .ray_executor import score_files_ray  # Ray is imported only here

        yield from score_files_ray(jobs, variant, protocol, empty_score=empty_score, chunk_pairs=max(1, int(chunk_pairs)),
                                   address=address, workers=workers)
        return
    if executor != "local":
        raise ExecutorError(f"unknown executor {executor!r}; choose local or ray")
    if address is not None:
        raise ExecutorError("--address names a Ray cluster: it needs --executor ray")
    if workers <= 1 or not jobs:
        import cv2

        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)  # one worker = one core, like each pool worker
        try:
            for job in jobs:
                yield score_file(job.video, job.audio, variant, protocol=protocol, empty_score=empty_score)
        finally:
            cv2.setNumThreads(threads)
        return
    run = _ParallelRun(jobs, variant, protocol, workers, empty_score, max(1, int(chunk_pairs)), start_method)
    try:
        yield from run.results()
    except _UnguardedMain:
        warnings.warn(
            "score_files: the worker processes died at start-up because the calling script has no "
            "`if __name__ == \"__main__\":` guard (each worker re-runs the script's top level). Scoring with one "
            "worker instead; put the calling code under that guard to use several.", RuntimeWarning, stacklevel=2)
        left = [run.clips[i].job for i in range(len(jobs)) if not run.clips[i].done]
        yield from score_files(left, variant, protocol=protocol, workers=1, empty_score=empty_score)


class ExecutorError(RuntimeError):
    """The executor cannot run at all (Ray missing or unreachable, a bad option): one line."""


class _UnguardedMain(RuntimeError):
    """Workers died before any task finished and the main script has no ``__main__`` guard."""


def _unguarded_main() -> bool:
    """True when ``__main__`` is a script file without an ``if __name__ == "__main__":`` guard: every
    spawned or forkserver worker then re-runs its top level and dies starting a pool of its own."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    try:
        source = Path(path).read_text(errors="replace") if path else ""
    except OSError:
        return False
    return bool(path) and not re.search(r"^\s*if\s+__name__\s*==\s*['\"]__main__['\"]", source, re.MULTILINE)


# --------------------------------------------------------------------------------------------
# Worker side (module-level so they pickle by reference)
# --------------------------------------------------------------------------------------------
def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)


@dataclass
class _Prepared:
    seconds: float
    error: str | None = None
    fps: float = 0.0
    n_frames: int = 0
    frame_shape: tuple[int, ...] = ()
    first_mags: np.ndarray | None = None
    frames_file: str | None = None
    full_width: int | None = None  #: the frames are at a fast flow mode's working size (GrayVideo.full_width)


def _prepare_arrays(job: Job, chunk_pairs: int, protocol: Protocol) -> tuple[_Prepared, np.ndarray | None]:
    """Decode and conform a clip and compute the flow of its first ``chunk_pairs`` pairs; returns the
    description and the gray frames (None on error).  Shared by the local and the Ray executor."""
    start = time.perf_counter()
    crash = os.environ.get("_AVALIGN_CRASH_ON")  # fault injection for the tests: kill this worker
    if crash and crash in job.video:
        os._exit(1)
    try:
        clip = read_video_for_flow(job.video, protocol)  # conformed: frames are selected before any flow
        first = min(max(clip.n_frames - 1, 0), chunk_pairs)
        mags = core.pair_magnitudes(clip.frames, 0, first, mode=protocol.flow, full_width=clip.full_width)
    except Exception as exc:  # the batch goes on; the reason is recorded
        return _Prepared(time.perf_counter() - start, error=error_reason(job.video, exc)), None
    return _Prepared(time.perf_counter() - start, fps=clip.fps, n_frames=clip.n_frames, frame_shape=clip.frame_shape,
                     first_mags=mags, full_width=clip.full_width), clip.frames


def _prepare_task(job: Job, chunk_pairs: int, tmpdir: str, protocol: Protocol) -> _Prepared:
    meta, frames = _prepare_arrays(job, chunk_pairs, protocol)
    if frames is not None and meta.n_frames - 1 > len(meta.first_mags):  # chunks will read them from disk
        meta.frames_file = os.path.join(tmpdir, f"{uuid.uuid4().hex}.npy")
        np.save(meta.frames_file, frames)
    return meta


def _chunk_task(frames_file: str, start: int, stop: int, flow: str = core.DEFAULT_FLOW,
                full_width: int | None = None) -> tuple[np.ndarray | str, float]:
    t0 = time.perf_counter()
    try:
        frames = np.load(frames_file, mmap_mode="r")
        return core.pair_magnitudes(frames, start, stop, mode=flow, full_width=full_width), time.perf_counter() - t0
    except Exception as exc:
        return error_reason(frames_file, exc), time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------------------------
@dataclass
class _Clip:
    job: Job
    audio_path: str | None
    audio: AudioAnalysis | None = None
    prepared: _Prepared | None = None
    chunks: dict[int, np.ndarray] = field(default_factory=dict)
    missing: int = 0
    seconds: float = 0.0
    done: bool = False


class _ParallelRun:
    def __init__(self, jobs: list[Job], variant: Variant, protocol: Protocol, workers: int, empty_score: float | None,
                 chunk_pairs: int, start_method: str | None = None):
        self.protocol = protocol
        self.variant, self.workers, self.empty_score, self.chunk_pairs = variant, workers, empty_score, chunk_pairs
        methods = mp.get_all_start_methods()
        self.start_method = start_method or ("forkserver" if "forkserver" in methods else "spawn")
        self.clips = [_Clip(job, resolve_audio(job.video, job.audio)) for job in jobs]
        # Largest first (file size as the cost estimate): the batch ends with short clips.
        self.todo: deque[int] = deque(sorted(range(len(jobs)), key=lambda i: -_size(jobs[i].video)))
        self.chunk_todo: deque[tuple[int, int, int]] = deque()
        self.audio_todo: deque[int] = deque()
        self.suspects: deque[int] = deque()  # clips in flight when a worker died
        self.isolated: int | None = None  # a suspect being scored alone
        self.inflight: dict[Future, tuple[int, int | None]] = {}
        self.finished_tasks = 0  # tasks that came back from a worker

    def results(self) -> Iterator[AVAlignResult]:
        with tempfile.TemporaryDirectory(prefix="avalign-") as tmpdir:
            self.tmpdir = tmpdir
            self.pool = self._new_pool()
            try:
                while self.todo or self.chunk_todo or self.audio_todo or self.suspects or self.inflight:
                    self._fill()
                    while self.audio_todo:  # the parent's share, done while the workers run
                        yield from self._analyze_audio(self.audio_todo.popleft())
                    if not self.inflight:
                        continue
                    done, _ = wait(list(self.inflight), return_when=FIRST_COMPLETED)
                    for future in done:
                        if future in self.inflight:  # a pool restart may have dropped it
                            yield from self._collect(future)
            finally:
                self.pool.shutdown(wait=True, cancel_futures=True)

    def _new_pool(self) -> ProcessPoolExecutor:
        context = mp.get_context(self.start_method)
        if self.start_method == "forkserver":
            context.set_forkserver_preload(["avalign.parallel"])
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker)

    def _fill(self) -> None:
        """Keep every worker busy, finishing started clips before starting new ones.

        After a worker died, the clips it may have held are scored one at a time (alone in the
        pool), so that a second crash names the guilty clip.
        """
        if self.isolated is None and self.suspects:
            if self.inflight:
                return  # let the others finish first
            self.isolated = self.suspects.popleft()
            self._submit_prepare(self.isolated)
        while len(self.inflight) < 2 * self.workers:
            chunks = [c for c in self.chunk_todo if self.isolated in (None, c[0])]
            if chunks:
                self.chunk_todo.remove(chunks[0])
                idx, start, stop = chunks[0]
                prepared = self.clips[idx].prepared
                self.inflight[self.pool.submit(_chunk_task, prepared.frames_file, start, stop, self.protocol.flow,
                                               prepared.full_width)] = (idx, start)
            elif self.todo and self.isolated is None and not self.suspects:
                self._submit_prepare(self.todo.popleft())
            else:
                break

    def _submit_prepare(self, idx: int) -> None:
        future = self.pool.submit(_prepare_task, self.clips[idx].job, self.chunk_pairs, self.tmpdir, self.protocol)
        self.inflight[future] = (idx, None)
        if self.clips[idx].audio is None:
            self.audio_todo.append(idx)

    def _analyze_audio(self, idx: int) -> Iterator[AVAlignResult]:
        clip = self.clips[idx]
        if clip.done:
            return
        start = time.perf_counter()
        try:
            clip.audio = analyze_audio_file(clip.audio_path or clip.job.video, self.variant, self.protocol)
        except Exception as exc:
            yield self._fail(idx, audio_error(clip.job.video, clip.audio_path, exc))
            return
        clip.seconds += time.perf_counter() - start
        yield from self._try_finish(idx)

    def _collect(self, future: Future) -> Iterator[AVAlignResult]:
        idx, start = self.inflight.pop(future)
        clip = self.clips[idx]
        try:
            outcome = future.result()
        except BrokenProcessPool:
            if self.finished_tasks == 0 and self.start_method != "fork" and _unguarded_main():
                raise _UnguardedMain() from None
            yield from self._recover(idx)
            return
        self.finished_tasks += 1
        if start is None:
            clip.prepared = outcome
            clip.seconds += outcome.seconds
            if outcome.error is not None:
                yield self._fail(idx, outcome.error)
                return
            n_pairs, first = outcome.n_frames - 1, len(outcome.first_mags)
            clip.chunks[0] = outcome.first_mags
            for s in range(first, n_pairs, self.chunk_pairs):
                self.chunk_todo.append((idx, s, min(s + self.chunk_pairs, n_pairs)))
                clip.missing += 1
        else:
            mags, seconds = outcome
            clip.seconds += seconds
            if isinstance(mags, str):
                yield self._fail(idx, f"{clip.job.video}: flow failed ({mags})")
                return
            clip.chunks[start] = mags
            clip.missing -= 1
        yield from self._try_finish(idx)

    def _try_finish(self, idx: int) -> Iterator[AVAlignResult]:
        clip = self.clips[idx]
        p = clip.prepared
        if clip.done or p is None or clip.audio is None or clip.missing:
            return
        mags = np.concatenate([clip.chunks[s] for s in sorted(clip.chunks)])
        self._release(idx)
        yield assemble(
            clip.job.video, clip.audio_path, self.variant, p.fps, p.n_frames, mags, clip.audio,
            protocol=self.protocol, frame_shape=p.frame_shape, empty_score=self.empty_score, seconds=clip.seconds,
        )

    def _fail(self, idx: int, reason: str) -> AVAlignResult:
        self._release(idx)
        return error_result(self.clips[idx].job.video, self.clips[idx].audio_path, self.variant, reason, self.protocol)

    def _release(self, idx: int) -> None:
        """Mark a clip done: forget its queued tasks and delete its frames file."""
        clip = self.clips[idx]
        clip.done = True
        clip.chunks.clear()
        if self.isolated == idx:
            self.isolated = None
        self.chunk_todo = deque(c for c in self.chunk_todo if c[0] != idx)
        for future, (i, _) in list(self.inflight.items()):
            if i == idx:
                future.cancel()
                del self.inflight[future]
        if clip.prepared is not None and clip.prepared.frames_file and os.path.exists(clip.prepared.frames_file):
            os.remove(clip.prepared.frames_file)

    def _recover(self, idx: int) -> Iterator[AVAlignResult]:
        """A worker died: restart the pool; a clip scored alone is guilty, others become suspects."""
        affected = {idx} | {i for i, _ in self.inflight.values()} | {c[0] for c in self.chunk_todo}
        self.inflight.clear()
        self.chunk_todo.clear()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._new_pool()
        if self.isolated is not None:
            yield self._fail(self.isolated, f"{self.clips[self.isolated].job.video}: a worker process died "
                                            "while decoding this clip (crash or out of memory)")
            return
        for i in sorted(affected):
            clip = self.clips[i]
            if clip.done:
                continue
            if clip.prepared is not None and clip.prepared.frames_file and os.path.exists(clip.prepared.frames_file):
                os.remove(clip.prepared.frames_file)
            clip.prepared, clip.chunks, clip.missing = None, {}, 0
            self.suspects.append(i)

def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
