"""Run control shared by every command: exit statuses, and stopping when asked.

Every tool exits with the same statuses (:data:`EXIT_OK` ... :data:`EXIT_SIGTERM`).  Ctrl-C raises
:class:`KeyboardInterrupt` in the main thread as usual; inside :func:`stop_on_signals` SIGTERM does
too (as :class:`Terminated`), so one ``except KeyboardInterrupt`` path stops the work, ends the
workers, keeps what was finished, and :func:`interrupt_status` gives 130 or 143.  Worker processes
ignore SIGINT (:func:`ignore_interrupts`): a terminal's Ctrl-C reaches the whole process group, and
the parent, not each worker, decides how the run stops.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

#: All items done (items whose metric does not apply count as done).
EXIT_OK = 0
#: Some items failed; every other item was written.
EXIT_ITEM_ERROR = 1
#: Bad usage, or a fatal error (missing weights, a full disk, an output held by another run).
EXIT_USAGE = 2
#: Stopped by SIGINT (Ctrl-C) or SIGTERM: what was finished is kept, a rerun resumes.
EXIT_SIGINT, EXIT_SIGTERM = 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread the way Ctrl-C raises :class:`KeyboardInterrupt`."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block SIGTERM raises :class:`Terminated` and SIGINT :class:`KeyboardInterrupt`
    (unless the process inherited SIGINT ignored); the previous handlers come back after it.
    Outside the main thread it does nothing (signals are only delivered there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    inherited = signal.getsignal(signal.SIGINT)
    old = {signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_terminated),
           # a job started in the background with SIGINT ignored (``cmd &`` in a script) stays immune
           # to the terminal's Ctrl-C, as the shell meant; SIGTERM still stops it
           signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN if inherited == signal.SIG_IGN
                                        else signal.default_int_handler)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def interrupt_status(exc: KeyboardInterrupt) -> int:
    """143 for :class:`Terminated` (SIGTERM), else 130 (SIGINT)."""
    return EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT


def interrupt_name(exc: KeyboardInterrupt) -> str:
    return "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"


def ignore_interrupts() -> None:
    """For a worker process's initializer: ignore SIGINT (the parent stops the workers) and take
    SIGTERM's default action (the parent's terminate ends the worker at once)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def end_processes(processes, timeout_s: float = 3.0) -> None:
    """End :class:`multiprocessing.Process` objects now: SIGTERM each, wait up to ``timeout_s`` for
    them, then SIGKILL what is left."""
    processes = list(processes)
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout_s)
        if p.is_alive():
            p.kill()
            p.join(1.0)


def stop_pool(pool, timeout_s: float = 3.0) -> None:
    """End a :class:`concurrent.futures.ProcessPoolExecutor` now: its workers are ended
    (:func:`end_processes`; a task in flight is abandoned), then the pool is shut down."""
    end_processes((getattr(pool, "_processes", None) or {}).values(), timeout_s)  # no public API before 3.14
    pool.shutdown(wait=False, cancel_futures=True)


def exit_with(status: int) -> None:
    """End the process with ``status`` (what ``python -m`` entry points and console scripts call).

    After an interrupt (130, 143) the process ends at once: stdio and logging are flushed and
    ``os._exit`` skips the interpreter's finalization, which takes seconds with torch loaded and
    has nothing left to do (the records are written and fsynced, the workers already ended)."""
    if status in (EXIT_SIGINT, EXIT_SIGTERM):
        import logging
        import os
        import sys

        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)
    raise SystemExit(status)
