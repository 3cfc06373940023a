"""``python -m reports RUN_DIR... [--out DIR] [--timelines N]``: tables, plots and an index page."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from avalign.records import read_jsonl

from .plots import plot_av_align, plot_distribution, plot_time_memory, plot_timelines
from .tables import read_summary, write_tables


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports",
                                     description="Tables (CSV, Markdown, LaTeX) and PNG plots from benchmark runs.")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="folders written by python -m benchmarks.run")
    parser.add_argument("--out", help="report folder (default: RUN_DIR/report for one run, else runs/report)")
    parser.add_argument("--timelines", type=int, default=2, help="alignment timelines per method and run")
    args = parser.parse_args(argv)

    rows, runs = [], []
    for run in map(Path, args.runs):
        if not (run / "summary.csv").is_file():
            print(f"reports: error: {run}: no summary.csv (run python -m benchmarks.run first)", file=sys.stderr)
            return 2
        mine = read_summary(run / "summary.csv")
        rows += mine
        runs.append((run, mine, read_jsonl(run / "records.jsonl")))
    out = Path(args.out) if args.out else (Path(args.runs[0]) / "report" if len(args.runs) == 1 else Path("runs/report"))
    out.mkdir(parents=True, exist_ok=True)

    tables = write_tables(rows, out)
    figures = [plot_av_align(rows, out / "av_align.png"), plot_time_memory(rows, out / "time_memory.png")]
    timelines = []
    for run, mine, records in runs:
        order = [r["method"] for r in mine]
        tag = run.name if len(runs) > 1 else ""
        figures.append(plot_distribution(records, order, out / f"score_distribution{'_' + tag if tag else ''}.png"))
        timelines += plot_timelines(records, order, out / "timelines" / tag if tag else out / "timelines",
                                    args.timelines)

    def rel(p: Path) -> str:
        return os.path.relpath(p, out)

    index = ["# Benchmark report", "", f"Runs: {', '.join(str(r) for r, _, _ in runs)}", "",
             "Best value per column and dataset in bold, among compared methods (ground_truth, shuffled_audio and "
             "static_frame calibrate the metric: its ceiling, chance level and floor).", "",
             tables["md"].read_text(), "",
             f"Tables: [CSV]({rel(tables['csv'])}), [Markdown]({rel(tables['md'])}), [LaTeX]({rel(tables['tex'])})", ""]
    index += [f"![{p.stem}]({rel(p)})" for p in figures]
    index += ["", "## Alignment timelines", ""] + [f"- [{p.stem}]({rel(p)})" for p in timelines]
    (out / "index.md").write_text("\n".join(index) + "\n")
    print(f"report: {out / 'index.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
