"""Scoring many clips: :func:`score_files` runs a batch on the executor asked for.

* ``workers=1``: in this process, one clip after the other (:func:`avalign.score.score_file`);
* ``executor="local"``: worker processes on this machine (:mod:`avalign.local_executor`);
* ``executor="ray"``: Ray tasks (:mod:`avalign.ray_executor`, imported only then).

Every executor scores a clip with the same code (:mod:`avalign.assembly`), so the records are
identical to the last bit whichever runs them.
"""

from __future__ import annotations

import os
import warnings
from typing import Iterable, Iterator

from .assembly import ExecutorError, Job
from .local_executor import LocalRun, UnguardedMain
from .protocol import NATIVE, Protocol
from .score import AVAlignResult, score_file
from .variants import DEFAULT_VARIANT, Variant, get_variant

__all__ = ["ExecutorError", "Job", "default_workers", "score_files"]


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
    run = LocalRun(jobs, variant, protocol, workers, empty_score, max(1, int(chunk_pairs)), start_method)
    try:
        yield from run.results()
    except UnguardedMain:
        warnings.warn(
            "score_files: the worker processes died at start-up because the calling script has no "
            "`if __name__ == \"__main__\":` guard (each worker re-runs the script's top level). Scoring with one "
            "worker instead; put the calling code under that guard to use several.", RuntimeWarning, stacklevel=2)
        left = [run.clips[i].job for i in range(len(jobs)) if not run.clips[i].done]
        yield from score_files(left, variant, protocol=protocol, workers=1, empty_score=empty_score)
