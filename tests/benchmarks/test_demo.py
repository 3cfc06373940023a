"""`make demo`'s job on its defaults (the shipped toy model, the demo's synthetic test clips): the
targets of issue 16, asserted on the run's own summary.csv."""

import csv

import pytest

from benchmarks.run import main


@pytest.mark.slow  # about 3 minutes: 24 clips x 5 generated rows, the dataset rendered first
def test_the_demo_tells_the_papers_story(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the demo's dataset folder (runs/data/...) is relative: make it here
    assert main(["--dataset", "synthetic", "--out", str(tmp_path / "demo")]) == 0
    rows = {r["method"]: r for r in csv.DictReader(open(tmp_path / "demo" / "summary.csv"))}

    def v(method, key="av_align"):
        return float(rows[method][key])

    assert {r["protocol"] for r in rows.values()} == {"12 fps, 32x32 px, 2 s"}  # one protocol for every row
    assert all(int(r["n"]) >= 24 and r["n_error"] == "0" for r in rows.values())
    assert rows["text_to_video"]["role"] == "compared" and rows["tempotokens"]["reference"] == "text_to_video"
    # audio: at least text-only + 0.20, with a paired 95% CI that excludes 0
    assert v("tempotokens", "delta") >= 0.20 and v("tempotokens", "delta_ci_low") > 0
    assert v("tempotokens_text_audio") > v("text_to_video")
    generated = ("tempotokens", "tempotokens_text_audio", "text_to_video", "tempotokens_other_audio")
    assert all(v("ground_truth") > v(m) for m in generated)
    # the control: the tempotokens clips against another clip's audio sit at chance
    assert {rows[m]["role"] for m in ("shuffled_audio", "tempotokens_other_audio")} == {"chance"}
    assert abs(v("tempotokens_other_audio") - v("shuffled_audio")) <= 0.10
    out = capsys.readouterr().out
    assert "tempotokens_other_audio" in out and "paired 95% CI" in out
