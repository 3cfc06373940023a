"""``accelerate launch -m tempotokens.train --config CONFIG.yaml`` (or ``python -m tempotokens.train``).

Trains the audio-token adaptor; see :mod:`tempotokens.training.loop` and the docs (Train the
adaptor).  Exit statuses as every tool's (:mod:`avalign.runctl`): 0, 2 for a bad config or input,
130/143 after SIGINT/SIGTERM with the finished checkpoints kept.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from avalign.runctl import exit_with
from avalign.flags import HelpFormatter, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tempotokens.train",
        description="Train the TempoTokens audio-token adaptor (accelerate: one GPU, many, or CPU).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--config", default="tiny", metavar="CONFIG.yaml",
                        help="YAML file, or a name in tempotokens/configs (vggsound, landscape, audioset_drum, tiny)")
    parser.add_argument("--data-root", metavar="DIR", help="override data.root")
    parser.add_argument("--out", "--output-dir", dest="output_dir", metavar="DIR",
                        help="override output_dir (--output-dir: the same, the older name)")
    parser.add_argument("--max-steps", type=int, metavar="N", help="override max_steps")
    parser.add_argument("--seed", type=int, metavar="S", help="override seed")
    parser.add_argument("--resume", metavar="latest|PATH", help="continue from the newest or a given checkpoint")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="any other field, e.g. optim.learning_rate=3e-5 data.num_workers=2")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .training.config import load_config

    overrides = list(args.overrides)
    for flag, key in (("data_root", "data.root"), ("output_dir", "output_dir"), ("max_steps", "max_steps"),
                      ("seed", "seed")):
        if getattr(args, flag) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    try:
        cfg = load_config(args.config, overrides)
    except Exception as exc:  # OmegaConf names the bad key
        print(f"tempotokens.train: error: bad configuration: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .training.loop import train

    def body() -> int:
        import os
        from pathlib import Path

        from avalign.io import RunLock

        rank = int(os.environ.get("RANK", 0))  # each process of a DDP run holds its own rank's lock
        with RunLock(Path(cfg.output_dir) / f".lock-{rank}", what=cfg.output_dir):
            print(f"adaptor saved to {train(cfg, args.resume)}")
        return 0

    # Ctrl-C / SIGTERM: 130 / 143 within seconds; the checkpoints written so far are kept and
    # ``--resume latest`` continues from the newest (a checkpoint is published whole or not at all)
    return run_cli("tempotokens.train", body, fatal=(ValueError, FileNotFoundError))


def console() -> None:
    """The console script: :func:`main`, then :func:`avalign.runctl.exit_with` its status."""
    exit_with(main())


if __name__ == "__main__":
    exit_with(main())
