"""``python -m reports RUN_DIR... [--out DIR] [--timelines N]``: tables, plots and an index page.

Everything is drawn from what the runs stored (``summary.csv``, ``records.jsonl``,
``profiles-*.jsonl``); no media file is read or scored again.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from avalign.runctl import exit_with
from avalign.flags import HelpFormatter, run_cli
from avalign.io import read_jsonl, write_text_atomic
from benchmarks.runfolder import latest, read_all

from .plots import how, plot_av_align, plot_distribution, plot_filmstrip, plot_profile, plot_time_memory, plot_timelines
from .tables import caption, groups, read_summary, write_tables


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reports", formatter_class=HelpFormatter,
                                     description="Tables (CSV, Markdown, LaTeX) and PNG plots from benchmark runs.")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="folders written by python -m benchmarks.run")
    parser.add_argument("--out", metavar="DIR", help="report folder (default: RUN_DIR/report for one run, else runs/report)")
    parser.add_argument("--timelines", type=int, default=2, metavar="N", help="alignment timelines per method and run")
    parser.add_argument("--filmstrips", type=int, default=2, metavar="N",
                        help="clips per run drawn as every method made them (frames over their timelines)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0, or 2 for a folder that is not a finished run)."""
    args = build_parser().parse_args(argv)
    return run_cli("reports", lambda: _report(args))


def _report(args: argparse.Namespace) -> int:

    rows, runs = [], []
    for run in map(Path, args.runs):
        if not (run / "summary.csv").is_file():
            print(f"reports: error: {run}: no summary.csv (run python -m benchmarks.run first)", file=sys.stderr)
            return 2
        mine = read_summary(run / "summary.csv")
        if mine and "protocol" not in mine[0]:
            print(f"reports: error: {run}: summary.csv has no protocol column (made by an older version); "
                  "rerun its summarize stage", file=sys.stderr)
            return 2
        rows += mine
        records = list(latest(read_jsonl(run / "records.jsonl")).values())  # a retried clip's newest attempt
        runs.append((run, mine, records, read_all(run, "profiles-*.jsonl")))
    out = Path(args.out) if args.out else (Path(args.runs[0]) / "report" if len(args.runs) == 1 else Path("runs/report"))
    out.mkdir(parents=True, exist_ok=True)

    tables = write_tables(rows, out)
    figures = [plot_av_align(rows, out / "av_align.png"), plot_time_memory(rows, out / "time_memory.png")]
    timelines, calibration = [], []
    for run, mine, records, profiles in runs:
        study = run / "study" / "study.jsonl"
        if study.is_file():  # the calibration panel: the metric's own offset curve on this run's real clips
            from avalign.study import plot_offset_panel

            tag = f"_{run.name}" if len(runs) > 1 else ""
            title = "; ".join(how(r["protocol"], r["variant"]) for r in mine[:1])
            calibration.append(plot_offset_panel(read_jsonl(study), out / f"calibration{tag}.png",
                                                 f"{mine[0]['dataset']} ground truth" if mine else "", title))
        order = [r["method"] for r in mine]
        tag = f"_{run.name}" if len(runs) > 1 else ""
        title = "; ".join(how(r["protocol"], r["variant"]) for r in mine[:1])
        figures.append(plot_distribution(records, order, out / f"score_distribution{tag}.png", title))
        profile = plot_profile(profiles, order, out / f"profile{tag}.png", title)
        if profile is not None:
            figures.append(profile)
        timelines += plot_timelines(records, order, out / "timelines" / run.name if tag else out / "timelines",
                                    args.timelines)
        for clip_id in sorted({r["clip_id"] for r in records})[: args.filmstrips]:
            strip = plot_filmstrip(records, order, clip_id, out / f"filmstrip{tag}_{clip_id}.png", title)
            if strip is not None:
                figures.append(strip)

    def rel(p: Path) -> str:
        return os.path.relpath(p, out)

    index = ["# Benchmark report", "", f"Runs: {', '.join(str(r) for r, *_ in runs)}", ""]
    index += [f"- {caption(g, rows)}" for g in groups(rows)]
    index += ["", "Every row of a table is scored under the protocol and variant in its header. Best value per "
              "column in bold among the rows whose role is `compared`; `ceiling` (the real clip), `chance` (a video "
              "scored against another clip's audio) and `floor` (a still frame) show the metric's range. Resource figures "
              "are each generating method's own process; rows that generate nothing show —.", "",
              tables["md"].read_text(), ""]
    if calibration:
        index += ["**Calibration** — the metric's own response on this dataset's real clips: their mean AV-Align "
                  "with the audio shifted by k frames (a sync metric peaks at 0; the fall-off says how much "
                  "desynchronisation the numbers above can detect).", ""]
        index += [f"![{p.stem}]({os.path.relpath(p, out)})" for p in calibration] + [""]
    index += [
              f"Tables: [CSV]({rel(tables['csv'])}), [Markdown]({rel(tables['md'])}), [LaTeX]({rel(tables['tex'])})", ""]
    index += [f"![{p.stem}]({rel(p)})" for p in figures]
    index += ["", "## Alignment timelines", ""] + [f"- [{p.stem}]({rel(p)})" for p in timelines]
    write_text_atomic(out / "index.md", "\n".join(index) + "\n")
    print(f"report: {out / 'index.md'}")
    return 0


def console() -> None:
    """The console script: :func:`main`, then :func:`avalign.runctl.exit_with` its status."""
    exit_with(main())


if __name__ == "__main__":
    exit_with(main())
