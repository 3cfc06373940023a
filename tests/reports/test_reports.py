"""Report tables and plots."""

import csv
import math

import pytest

from reports.__main__ import main
from reports.tables import best_cells, read_summary, write_tables


def _row(method, av, s, mem, dataset="d"):
    return {"dataset": dataset, "method": method, "n": 3.0, "n_undefined": 0.0, "n_error": 0.0, "av_align": av,
            "av_align_ci_low": av - 0.1, "av_align_ci_high": av + 0.1, "load_s": 1.0, "s_per_clip_p50": s,
            "s_per_clip_p90": s, "frames_per_s": 10 / s, "peak_mem_mb": mem, "device": "cpu"}


def test_best_cells_ignore_reference_rows_and_follow_direction():
    rows = [_row("a", 0.3, 2.0, 500), _row("b", 0.5, 3.0, 400), _row("ground_truth", 1.0, 0.01, 10),
            _row("c", 0.9, 1.0, 900, dataset="other"), _row("e", 0.2, 5.0, 100, dataset="other")]
    best = best_cells(rows)
    assert (1, "av_align") in best and (0, "s_per_clip_p50") in best and (1, "peak_mem_mb") in best
    assert (0, "frames_per_s") in best
    assert not any(i == 2 for i, _ in best)  # the ceiling is never "best"
    assert (3, "av_align") in best and (4, "peak_mem_mb") in best  # judged per dataset


def test_table_files(tmp_path):
    rows = [_row("a", 0.3, 2.0, 500), _row("b", 0.5, 3.0, 400), _row("static_frame", 0.0, 0.01, float("nan"))]
    paths = write_tables(rows, tmp_path)
    md = paths["md"].read_text()
    assert "| b | 3 | 0 | 0 | **0.500** |" in md and "| a | 3 | 0 | 0 | 0.300 |" in md
    tex = paths["tex"].read_text()
    assert r"\textbf{0.500}" in tex and r"static\_frame" in tex and tex.count(r"\\") >= 5
    back = list(csv.DictReader(open(paths["csv"])))
    assert [r["method"] for r in back] == ["a", "b", "static_frame"]


def test_report_from_a_run(tmp_path, tiny_dir):
    from benchmarks.run import main as bench
    from tempotokens.data.synthetic import make_synthetic

    make_synthetic(tmp_path / "data", num_clips=8, seed=1, duration_s=2.0, size=32)
    run = tmp_path / "run"
    assert bench(["--data-root", str(tmp_path / "data"), "--model", str(tiny_dir), "--out", str(run),
                  "--num-frames", "8", "--fps", "8", "--height", "32", "--width", "32", "--steps", "1",
                  "--methods", "tempotokens,ground_truth,static_frame", "--workers", "1"]) == 0
    assert main([str(run), "--out", str(tmp_path / "report"), "--timelines", "1"]) == 0
    out = tmp_path / "report"
    for name in ("table.csv", "table.md", "table.tex", "av_align.png", "time_memory.png", "score_distribution.png",
                 "index.md"):
        assert (out / name).exists(), name
    for png in list(out.glob("*.png")) + list((out / "timelines").glob("*.png")):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert len(list((out / "timelines").glob("*.png"))) == 3
    index = (out / "index.md").read_text()
    assert "av_align.png" in index and "table.tex" in index and "timelines/" in index
    rows = read_summary(run / "summary.csv")
    assert rows[1]["method"] == "ground_truth" and rows[1]["av_align"] == 1.0 and math.isnan(rows[1]["load_s"])


def test_missing_run(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no summary.csv" in capsys.readouterr().err
