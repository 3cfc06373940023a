"""Report tables and plots, from stored results only."""

import contextlib
import csv
import math
import shutil

import pytest

from reports.__main__ import main
from reports.tables import best_cells, read_summary, write_tables

NAN = float("nan")


def _row(method, av, s, mem, dataset="d", role="compared", delta=NAN, lo=NAN, hi=NAN, protocol="12 fps, 32x32 px, 2 s",
         variant="tempotokens-2025"):
    generative = role == "compared"
    return {"dataset": dataset, "method": method, "role": role, "protocol": protocol, "variant": variant, "n": 3.0,
            "n_undefined": 0.0, "n_error": 0.0, "av_align": av, "av_align_ci_low": av - 0.1, "av_align_ci_high": av + 0.1,
            "reference": "ref", "n_paired": 3.0, "delta": delta, "delta_ci_low": lo, "delta_ci_high": hi,
            "load_s": 1.0 if generative else NAN, "load_mem_mb": 300.0 if generative else NAN,
            "s_per_clip_p50": s if generative else NAN, "s_per_clip_p90": s if generative else NAN,
            "frames_per_s": 10 / s if generative else NAN, "clips_per_hour": 3600 / s if generative else NAN,
            "peak_mem_mb": mem if generative else NAN, "device": "cpu"}


def test_best_cells_follow_roles_and_direction():
    rows = [_row("a", 0.3, 2.0, 500), _row("b", 0.5, 3.0, 400), _row("my_ceiling", 1.0, 0.01, 10, role="ceiling"),
            _row("c", 0.9, 1.0, 900, dataset="other"), _row("e", 0.2, 5.0, 100, dataset="other")]
    best = best_cells(rows)
    assert (1, "av_align") in best and (0, "s_per_clip_p50") in best and (1, "peak_mem_mb") in best
    assert not any(i == 2 for i, _ in best)  # a ceiling, whatever its name, is never "best"
    assert (3, "av_align") in best and (4, "peak_mem_mb") in best  # judged per table
    # rows of another protocol are another table: never compared with these
    rows.append(_row("f", 0.99, 0.5, 50, protocol="native fps, native size, 2 s"))
    assert (1, "av_align") in best_cells(rows) and (5, "av_align") not in best_cells(rows)


def test_table_files(tmp_path):
    rows = [_row("a", 0.3, 2.0, 500, delta=0.1, lo=0.02, hi=0.2), _row("ref", 0.5, 3.0, 400),
            _row("static_frame", 0.0, NAN, NAN, role="floor", delta=-0.5, lo=-0.6, hi=-0.4),
            _row("b", 0.2, 1.0, 100, delta=-0.05, lo=-0.2, hi=0.1)]
    paths = write_tables(rows, tmp_path)
    md = paths["md"].read_text()
    assert md.startswith("**d — protocol: 12 fps, 32x32 px, 2 s; AV-Align variant: tempotokens-2025; Δ: paired "
                         "difference to ref")
    # FVD, FVD n, IS and CLIPSIM were not run: "—"
    assert "| a | compared | 3 | 0 | 0 | 0.300 | 0.200 to 0.400 | — | — | — | — | 3 | **+0.100 †** | +0.020 to +0.200 |" in md
    assert "| b | compared | 3 | 0 | 0 | 0.200 | 0.100 to 0.300 | — | — | — | — | 3 | -0.050 | -0.200 to +0.100 |" in md
    floor = next(line for line in md.splitlines() if line.startswith("| static_frame"))
    assert floor.endswith("| -0.500 † | -0.600 to -0.400 | — | — | — | — | — | — | cpu |")  # no resources: dashes
    tex = paths["tex"].read_text()
    assert r"\textbf{+0.100 $^\dagger$}" in tex and r"static\_frame" in tex and "---" in tex
    assert r"protocol: 12 fps, 32x32 px, 2 s; AV-Align variant: tempotokens-2025" in tex
    back = list(csv.DictReader(open(paths["csv"])))
    assert [r["method"] for r in back] == ["a", "ref", "static_frame", "b"]
    assert back[2]["peak_mem_mb"] == "" and back[0]["protocol"] == "12 fps, 32x32 px, 2 s"


@pytest.mark.slow  # 14 s: a benchmark run first
def test_report_from_a_run_reads_records_only(tmp_path, tiny_dir):
    from benchmarks.run import main as bench
    from tempotokens.data.synthetic import make_synthetic

    make_synthetic(tmp_path / "data", num_clips=8, seed=1, duration_s=2.0, size=32)
    run = tmp_path / "run"
    assert bench(["--data-root", str(tmp_path / "data"), "--model", str(tiny_dir), "--out", str(run),
                  "--num-frames", "12", "--fps", "12", "--size", "32x32", "--steps", "1",
                  "--methods", "tempotokens,ground_truth,static_frame", "--workers", "1"]) == 0
    from avalign.io import read_jsonl
    from reports.plots import plot_filmstrip

    records = read_jsonl(run / "records.jsonl")
    clip = sorted(r["clip_id"] for r in records)[0]
    order = ["tempotokens", "ground_truth", "static_frame"]
    strip = plot_filmstrip(records, order, clip, tmp_path / "strip.png")
    import matplotlib.image as mpimg

    # a frames + timeline pair per method: 1.9 inches each at the reports' 110 dpi
    assert mpimg.imread(strip).shape[:2] == (round(3 * 1.9 * 110), 11 * 110)
    two = plot_filmstrip(records, order[:2], clip, tmp_path / "strip2.png")
    assert mpimg.imread(two).shape[:2] == (round(2 * 1.9 * 110), 11 * 110)
    assert plot_filmstrip(records, order, "no-such-clip", tmp_path / "none.png") is None
    shutil.rmtree(run / "clips")  # the report must not need a single media file
    assert plot_filmstrip(records, order, clip, tmp_path / "gone.png") is None  # strips need the clips
    assert main([str(run), "--out", str(tmp_path / "report"), "--timelines", "1"]) == 0
    out = tmp_path / "report"
    for name in ("table.csv", "table.md", "table.tex", "av_align.png", "time_memory.png", "score_distribution.png",
                 "profile.png", "index.md"):
        assert (out / name).exists(), name
    for png in list(out.glob("*.png")) + list((out / "timelines").glob("*.png")):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((out / "timelines").glob("*.png"))) == 3
    index = (out / "index.md").read_text()
    assert "av_align.png" in index and "profile.png" in index and "timelines/" in index
    assert "protocol: 12 fps, 32x32 px, 1 s; AV-Align variant: tempotokens-2025" in index
    rows = read_summary(run / "summary.csv")
    assert rows[1]["method"] == "ground_truth" and rows[1]["role"] == "ceiling" and math.isnan(rows[1]["load_s"])



@contextlib.contextmanager
def _figures():
    """Every figure saved inside the block (matplotlib's ``Figure.savefig``), kept for inspection."""
    from matplotlib.figure import Figure

    figs, real = [], Figure.savefig

    def keep(fig, *args, **kwargs):
        figs.append(fig)
        return real(fig, *args, **kwargs)

    Figure.savefig = keep
    try:
        yield figs
    finally:
        Figure.savefig = real


def test_the_av_align_bars_are_the_summary_rows(tmp_path):
    """Bar heights, CI whiskers and n labels are the rows' own values; the title names the protocol."""
    from reports.plots import plot_av_align

    rows = [dict(dataset="d", protocol="12 fps, 32x32 px, 2 s", variant="v", method=m, role=role, av_align=mean,
                 av_align_ci_low=lo, av_align_ci_high=hi, n_scored=n)
            for m, role, mean, lo, hi, n in (("a", "compared", 0.3, 0.25, 0.36, 24.0), ("gt", "ceiling", 0.9, 0.85, 0.95, 24.0),
                                             ("none", "floor", float("nan"), float("nan"), float("nan"), 0.0))]
    with _figures() as figs:
        plot_av_align(rows, tmp_path / "a.png")
    (ax,) = figs[0].axes
    assert [round(b.get_height(), 9) for b in ax.patches] == [0.3, 0.9, 0.0]
    from matplotlib.container import ErrorbarContainer

    bars = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
    whiskers = bars.lines[2][0].get_segments()
    assert [tuple(round(float(v), 9) for v in seg[:, 1]) for seg in whiskers[:2]] == [(0.25, 0.36), (0.85, 0.95)]
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["0.30\nn=24", "0.90\nn=24", "—\nn=0"]
    assert "protocol: 12 fps, 32x32 px, 2 s; AV-Align variant: v" in ax.get_title()


def test_missing_run(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no summary.csv" in capsys.readouterr().err


def test_stage_means_by_hand():
    from reports.plots import stage_means

    def clip(method, denoise, steps, audio=None):
        stages = {"prompt_encoding": 0.1, "denoising": denoise, "vae_decoding": 0.3, "writing": 0.05}
        if audio is not None:
            stages["audio_encoding"] = audio
        return {"kind": "clip", "method": method, "clip_id": "x", "stages_s": stages, "step_s": steps}

    profiles = [clip("a", 2.0, [1.0, 1.0], audio=0.2), clip("a", 4.0, [2.0, 2.0], audio=0.4),
                clip("t", 1.0, [0.5, 0.5]), {"kind": "load", "method": "a", "load_s": 9.0}]
    means = stage_means(profiles, ["a", "t", "absent"])
    assert set(means) == {"a", "t"}
    assert means["a"] == pytest.approx({"audio_encoding": 0.3, "prompt_encoding": 0.1, "denoising": 3.0,
                                        "vae_decoding": 0.3, "writing": 0.05, "step": 1.5})
    assert means["t"]["audio_encoding"] == 0.0 and means["t"]["step"] == 0.5  # text-only: no audio stage


def test_labels_and_counts_on_bars():
    from reports.plots import n_scored, value_labels

    assert value_labels([1.234, NAN, None], ".1f") == ["1.2", "—", "—"]  # a missing figure is never a 0
    row = _row("m", 0.5, 1.0, 10.0)
    row.update(n=5.0, n_error=2.0, n_undefined=1.0, n_scored=NAN)
    assert n_scored(row) == 2  # the mean is over the clips with a score, and so is the n shown
    row["n_scored"] = 3.0
    assert n_scored(row) == 3


@pytest.mark.parametrize("stages", [1, 2])
def test_profile_plot(tmp_path, stages):
    from reports.plots import plot_profile

    clip = {"kind": "clip", "method": "m", "clip_id": "a",
            "stages_s": {"audio_encoding": 0.1, "prompt_encoding": 0.1, "denoising": 2.0, "vae_decoding": 0.3,
                         "writing": 0.05},
            "step_s": [1.0, 1.0], "stage_peak_mem_mb": {"denoising": 900.0, "vae_decoding": 1200.0} if stages == 2 else None}
    with _figures() as figs:
        assert plot_profile([clip], ["m"], tmp_path / "p.png", "t").is_file()
    (fig,) = figs
    time_ax = fig.axes[0]
    # one stacked bar per stage, in stage order, each as tall as that stage's seconds (the input above)
    heights = [round(b.get_height(), 9) for b in time_ax.patches]
    assert heights == [0.1, 0.1, 2.0, 0.3, 0.05]
    assert [round(b.get_y(), 9) for b in time_ax.patches] == [0.0, 0.1, 0.2, 2.2, 2.5]  # stacked
    assert "2.55 s" in " ".join(t.get_text() for t in time_ax.texts) and "1.000 s/step" in time_ax.texts[0].get_text()
    if stages == 2:  # the memory panel: the peaks given, per stage
        mem = sorted(round(b.get_height(), 3) for b in fig.axes[1].patches if b.get_height() > 0)
        assert mem == [900.0, 1200.0]
    else:
        assert len(fig.axes) == 1
    assert plot_profile([{"kind": "load", "method": "m"}], ["m"], tmp_path / "q.png") is None


def test_calibration_panel_from_a_run_with_study(tmp_path, tiny_dir):
    from avalign.io import read_jsonl
    from benchmarks.run import main as bench
    from tempotokens.data.synthetic import make_synthetic

    make_synthetic(tmp_path / "data", num_clips=8, seed=1, duration_s=3.0, size=48)
    run = tmp_path / "run"
    assert bench(["--data-root", str(tmp_path / "data"), "--model", str(tiny_dir), "--out", str(run),
                  "--num-frames", "24", "--fps", "12", "--size", "32x32", "--methods", "ground_truth",
                  "--workers", "2", "--study"]) == 0
    rows = read_jsonl(run / "study" / "study.jsonl")
    assert {r["factor"] for r in rows} == {"offset"} and len(rows) == 2 * 13  # 2 test clips, offsets -6..6
    gt = {r["clip_id"]: r["avalign"]["score"] for r in read_jsonl(run / "records.jsonl")}
    zero = {r["clip"]: r["score"] for r in rows if r["value"] == 0}
    assert sorted(zero.values()) == sorted(gt.values())  # offset 0 is the run's own ground-truth score
    with _figures() as figs:
        assert main([str(run), "--out", str(tmp_path / "report"), "--timelines", "0"]) == 0
    assert (tmp_path / "report" / "calibration.png").is_file()
    panel = next(f for f in figs if "offset" in " ".join(a.get_xlabel() for a in f.axes).lower())
    line = next(ln for ln in panel.axes[0].get_lines() if len(ln.get_xdata()) == 13)
    by_offset = {}  # the curve, by hand: the mean study score of the clips at each offset
    for r in rows:
        by_offset.setdefault(r["value"], []).append(r["score"])
    assert [float(x) for x in line.get_xdata()] == list(range(-6, 7))
    assert [float(y) for y in line.get_ydata()] == pytest.approx([sum(v) / len(v) for _, v in sorted(by_offset.items())])
    assert "**Calibration**" in (tmp_path / "report" / "index.md").read_text()


def test_quality_metric_columns_have_a_direction(tmp_path):
    q = [dict(fvd=120.0, fvd_n=3.0, fvd_lineage="styleganv, 16 frames", **{"is": 2.5}, is_std=0.25, clipsim=0.21,
              clipsim_ci_low=0.2, clipsim_ci_high=0.22),
         dict(fvd=80.0, fvd_n=3.0, fvd_lineage="styleganv, 16 frames", **{"is": 1.5}, is_std=0.1, clipsim=0.25,
              clipsim_ci_low=0.24, clipsim_ci_high=0.26),
         dict(fvd=0.5, fvd_n=3.0, fvd_lineage="styleganv, 16 frames", **{"is": 9.0}, is_std=0.0, clipsim=0.9,
              clipsim_ci_low=0.9, clipsim_ci_high=0.9)]
    rows = [{**_row("a", 0.3, 2.0, 500), **q[0]}, {**_row("b", 0.5, 3.0, 400), **q[1]},
            {**_row("gt", 1.0, NAN, NAN, role="ceiling"), **q[2]}]
    best = best_cells(rows)
    assert (1, "fvd") in best and (0, "is") in best and (1, "clipsim") in best  # FVD: lower; IS, CLIPSIM: higher
    assert not any(i == 2 for i, _ in best)
    md = write_tables(rows, tmp_path)["md"].read_text()
    assert "| AV-Align ↑ | 95% CI | FVD ↓ | FVD n | IS ↑ | CLIPSIM ↑ |" in md
    assert "FVD: styleganv, 16 frames vs the same clips' ground truth" in md.splitlines()[0]
    assert "| 0.300 | 0.200 to 0.400 | 120.0 | 3 | **2.50 ± 0.25** | 0.210 (0.200 to 0.220) |" in md
    assert "| **80.0** | 3 | 1.50 ± 0.10 | **0.250 (0.240 to 0.260)** |" in md
    tex = (tmp_path / "table.tex").read_text()
    assert r"FVD $\downarrow$" in tex and r"$\pm$" in tex
