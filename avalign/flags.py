"""The one command-line vocabulary of every tool (``avalign``, ``benchmarks.run``,
``benchmarks.metrics``, ``tempotokens``, ``reports``), and the one way they end.

The same flag means the same thing everywhere:

==================  ===================================================================
``--fps F``         frames per second (generated, or a protocol's re-timing rate)
``--size WxH``      pixels, width x height (generated, or a protocol's cover-and-crop)
``--duration S``    the span in seconds (a protocol's: clips are cut to it)
``--variant V``     the AV-Align variant
``--flow M``        the optical-flow mode of AV-Align
``--lineage L``     a metric's published computation variant (FVD: ``styleganv``/``videogpt``)
``--protocol P``    only the evaluation protocol of a run (``generation`` or ``native``)
``--num-frames N``  frames *generated* per clip
``--metric-frames`` frames *fed to a metric* per clip (FVD's 16, CLIPSIM's all)
``--workers N``     worker processes
``--out PATH``      where results go
==================  ===================================================================

:func:`run_cli` gives every tool the same exit statuses (:mod:`avalign.runctl`): 0 all done, 1 some
items failed (every other item written), 2 usage or fatal errors, 130 after SIGINT, 143 after
SIGTERM, each error on one line.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from . import protocol
from .io import DiskFullError, LockedError, MediaError
from .io.files import disk_full, is_disk_full
from .runctl import EXIT_USAGE, interrupt_name, interrupt_status, stop_on_signals


class UsageError(ValueError):
    """Bad command-line use or a fatal input problem: reported on one line, exit status 2."""


class HelpFormatter(argparse.HelpFormatter):
    """Shows "(default: X)" once: not when the help already names its default, nor for None/False."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


def parse_size(text: str | None) -> tuple[int, int] | None:
    """:func:`avalign.protocol.parse_size`, with a bad value as :class:`UsageError` (one line, exit 2)."""
    try:
        return protocol.parse_size(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def add_protocol_flags(parser: argparse.ArgumentParser, *, flow: bool = True) -> None:
    """``--fps``, ``--size``, ``--duration`` (and ``--flow``): the evaluation protocol a clip is
    conformed to before it is scored; each unset part keeps the clip's own."""
    parser.add_argument("--fps", type=float, metavar="F",
                        help="re-time every clip to F frames/s first (default: each clip's own)")
    parser.add_argument("--size", metavar="WxH",
                        help="resize every clip to cover WxH pixels, then center-crop (default: each clip's own)")
    parser.add_argument("--duration", type=float, metavar="S",
                        help="score only the first S seconds of video and audio (default: the whole clip)")
    if flow:
        from .core import FLOW_MODES

        parser.add_argument("--flow", default="farneback", choices=FLOW_MODES,
                            help="optical flow: farneback is the reference (exact); the others are faster "
                                 "approximations")


def protocol_from_args(args: argparse.Namespace) -> protocol.Protocol:
    """The :class:`~avalign.protocol.Protocol` of :func:`add_protocol_flags`' flags."""
    try:
        return protocol.Protocol.parse(args.fps, args.size, duration_s=args.duration, flow=getattr(args, "flow", "farneback"))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run_cli(prog: str, body: Callable[[], int], fatal: tuple[type[BaseException], ...] = ()) -> int:
    """Run a command's ``body`` and map its end to the shared exit statuses, one line each.

    ``fatal`` adds a tool's own exception types that mean "usage or fatal error" (exit 2)."""
    try:
        with stop_on_signals():
            return body()
    except (UsageError, LockedError, DiskFullError, *fatal) as exc:
        print(f"{prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    except MediaError as exc:  # a fatal bad input (a single-item command): one line
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader went away (``| head``): no traceback; what it read was whole
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:  # a full disk outside the layer's writers (which raise DiskFullError)
        if not is_disk_full(exc):
            raise
        print(f"{prog}: error: {disk_full(exc, exc.filename or '(unnamed file)')}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        print(f"{prog}: {interrupt_name(exc)}; what was finished is kept (rerun to resume)", file=sys.stderr)
        return interrupt_status(exc)
