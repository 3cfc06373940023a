"""``python -m tempotokens.data make-synthetic OUT --num-clips N [--seed S]``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from avalign.flags import HelpFormatter, UsageError, parse_size, run_cli
from avalign.io import build_once
from avalign.runctl import exit_with


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tempotokens.data", description="Dataset tools.",
                                     formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    syn = sub.add_parser("make-synthetic", help="write the synthetic audio-visual dataset",
                         formatter_class=HelpFormatter,
                         description="Write clips whose objects move when sounds happen, in the layout of a real "
                                     "dataset (video/, audio/, synthetic.csv, events.json). Deterministic for a seed.")
    syn.add_argument("out", metavar="OUT", help="output folder")
    syn.add_argument("--num-clips", type=int, default=24, metavar="N", help="clips written")
    syn.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the events and textures")
    syn.add_argument("--duration", type=float, default=4.0, metavar="SEC", help="seconds per clip")
    syn.add_argument("--size", default="96x96", metavar="WxH", help="frame size in pixels (square, even)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0, or 2 for bad input)."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        w, h = parse_size(args.size)
        if args.num_clips < 1 or w != h or w % 2 or args.duration < 1.0:
            raise UsageError("need --num-clips >= 1, a square even --size (e.g. 96x96) and --duration >= 1")
        from .synthetic import make_synthetic

        if Path(args.out).exists():
            raise UsageError(f"{args.out}: exists; choose a new folder (the dataset is written whole)")
        made = []
        build_once(args.out, lambda tmp: made.extend(make_synthetic(tmp, args.num_clips, args.seed, args.duration, w)))
        n_test = sum(c.split == "test" for c in made)
        print(f"wrote {len(made)} clips ({len(made) - n_test} train, {n_test} test) to {args.out}")
        return 0

    return run_cli("tempotokens.data", body)


if __name__ == "__main__":
    exit_with(main())
