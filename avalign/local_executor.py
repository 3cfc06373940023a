"""Scoring many clips in worker processes on this machine (``executor="local"``).

Optical flow is ~97% of AV-Align's time, so the work is cut at that grain
(:mod:`avalign.assembly`):

* a *prepare* task decodes a clip once (gray frames) and computes the flow of its first
  ``chunk_pairs`` frame pairs; a clip with more pairs leaves its gray frames in a temporary
  ``.npy`` file,
* *chunk* tasks compute the flow of the remaining pairs from that file (memory-mapped), spread
  over all workers, so a single long clip uses every core,
* the parent analyses the audio (cheap, and it keeps librosa's 2-3 s import out of the workers)
  and assembles the result with :class:`~avalign.assembly.ClipState`, the same code as every
  executor, so parallel and serial results are identical.

Workers start from a ``forkserver`` (a clean single-threaded process that has imported this
module), never by forking the caller: a caller that has run torch, OpenCV or FFmpeg holds thread
pools whose locks a forked child can inherit mid-operation and hang on.  Each worker uses one
OpenCV thread and ignores SIGINT: on Ctrl-C or SIGTERM the parent terminates the workers at once
(:func:`avalign.runctl.stop_pool`) and the caller keeps every result already yielded.  A worker
that dies (a crash in a decoder, out of memory) does not stop the batch: the pool is restarted, the
clips it held are retried once, then recorded as errors.
"""

from __future__ import annotations

import errno
import multiprocessing as mp
import os
import re
import sys
import tempfile
import uuid
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Iterator

import numpy as np

from .assembly import ClipState, ExecutorRun, Job, PreparedClip, chunk_magnitudes, prepare_clip
from .io import DiskFullError, is_disk_full
from .protocol import Protocol
from .runctl import ignore_interrupts, stop_pool
from .score import AVAlignResult, error_reason
from .variants import Variant


class UnguardedMain(RuntimeError):
    """Workers died before any task finished and the main script has no ``__main__`` guard."""


def unguarded_main() -> bool:
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
    ignore_interrupts()


def _prepare_task(job: Job, chunk_pairs: int, tmpdir: str, protocol: Protocol) -> PreparedClip:
    meta, frames = prepare_clip(job, chunk_pairs, protocol)
    if frames is not None and meta.n_frames - 1 > len(meta.first_mags):  # chunks will read them from disk
        meta.frames_ref = os.path.join(tmpdir, f"{uuid.uuid4().hex}.npy")
        try:
            np.save(meta.frames_ref, frames)
        except OSError as exc:  # numpy's short write has no errno: the temporary folder is full
            if exc.errno is None or is_disk_full(exc):
                raise DiskFullError(meta.frames_ref, exc.errno or errno.ENOSPC) from None
            raise
    return meta


def _chunk_task(frames_file: str, start: int, stop: int, flow: str, full_width: int | None = None
                ) -> tuple[np.ndarray | str, float]:
    try:
        return chunk_magnitudes(np.load(frames_file, mmap_mode="r"), start, stop, flow, full_width)
    except Exception as exc:
        return error_reason(frames_file, exc), 0.0


# --------------------------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------------------------
class LocalRun(ExecutorRun):
    """One batch on a local process pool; :meth:`results` yields each clip's result when finished."""

    def __init__(self, jobs: list[Job], variant: Variant, protocol: Protocol, workers: int, empty_score: float | None,
                 chunk_pairs: int, start_method: str | None = None):
        self.protocol = protocol
        self.variant, self.workers, self.empty_score, self.chunk_pairs = variant, workers, empty_score, chunk_pairs
        methods = mp.get_all_start_methods()
        self.start_method = start_method or ("forkserver" if "forkserver" in methods else "spawn")
        self.clips = [ClipState.for_job(job) for job in jobs]
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
            except BaseException:  # Ctrl-C, SIGTERM, the caller closing the generator: end the workers now
                stop_pool(self.pool)
                raise
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _new_pool(self) -> ProcessPoolExecutor:
        context = mp.get_context(self.start_method)
        if self.start_method == "forkserver":
            context.set_forkserver_preload(["avalign.local_executor"])
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
                self.inflight[self.pool.submit(_chunk_task, prepared.frames_ref, start, stop, self.protocol.flow,
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

    def _collect(self, future: Future) -> Iterator[AVAlignResult]:
        idx, start = self.inflight.pop(future)
        clip = self.clips[idx]
        try:
            outcome = future.result()
        except BrokenProcessPool:
            if self.finished_tasks == 0 and self.start_method != "fork" and unguarded_main():
                raise UnguardedMain() from None
            yield from self._recover(idx)
            return
        self.finished_tasks += 1
        if start is None:
            for s, stop in clip.add_prepared(outcome, self.chunk_pairs):
                self.chunk_todo.append((idx, s, stop))
            if outcome.error is not None:
                yield self._fail(idx, outcome.error)
                return
        else:
            mags, seconds = outcome
            if isinstance(mags, str):
                yield self._fail(idx, f"{clip.job.video}: flow failed ({mags})")
                return
            clip.add_chunk(start, mags, seconds)
        yield from self._try_finish(idx)

    def _try_finish(self, idx: int) -> Iterator[AVAlignResult]:
        clip = self.clips[idx]
        if clip.ready:
            frames_file = clip.prepared.frames_ref
            result = clip.finish(self.variant, self.protocol, self.empty_score)
            self._release(idx, frames_file)
            yield result

    def _fail(self, idx: int, reason: str) -> AVAlignResult:
        clip = self.clips[idx]
        frames_file = clip.prepared.frames_ref if clip.prepared is not None else None
        result = clip.fail(self.variant, self.protocol, reason)
        self._release(idx, frames_file)
        return result

    def _release(self, idx: int, frames_file: str | None) -> None:
        """A clip is done: forget its queued tasks and delete its frames file."""
        if self.isolated == idx:
            self.isolated = None
        self.chunk_todo = deque(c for c in self.chunk_todo if c[0] != idx)
        for future, (i, _) in list(self.inflight.items()):
            if i == idx:
                future.cancel()
                del self.inflight[future]
        _remove(frames_file)

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
            if clip.prepared is not None:
                _remove(clip.prepared.frames_ref)
            clip.reset()
            self.suspects.append(i)


def _remove(path: str | None) -> None:
    if path and os.path.exists(path):
        os.remove(path)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
