"""``python -m tempotokens.data make-synthetic OUT --num-clips N [--seed S]``."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tempotokens.data", description="Dataset tools.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    syn = sub.add_parser("make-synthetic", help="write the synthetic audio-visual dataset",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                         description="Write clips whose objects move when sounds happen, in the layout of a real "
                                     "dataset (video/, audio/, synthetic.csv, events.json). Deterministic for a seed.")
    syn.add_argument("out", help="output folder")
    syn.add_argument("--num-clips", type=int, default=24)
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--duration", type=float, default=4.0, help="seconds per clip")
    syn.add_argument("--size", type=int, default=96, help="frame side in pixels (even)")
    args = parser.parse_args(argv)
    if args.num_clips < 1 or args.size % 2 or args.duration < 1.0:
        print("tempotokens.data: error: need --num-clips >= 1, an even --size and --duration >= 1", file=sys.stderr)
        return 2
    from .synthetic import make_synthetic

    clips = make_synthetic(args.out, args.num_clips, args.seed, args.duration, args.size)
    n_test = sum(c.split == "test" for c in clips)
    print(f"wrote {len(clips)} clips ({len(clips) - n_test} train, {n_test} test) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
