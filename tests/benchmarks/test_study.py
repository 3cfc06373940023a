"""``python -m benchmarks.study``: the offset study of AV-Align, DeSync and IB-score side by side,
with the fixture weights: offset 0 is the reference's value, a shifted row is the metric on a clip
shifted by hand, the AUC is checked by hand."""

import csv
import shutil

import numpy as np
import pytest
import soundfile as sf

from avalign.io import read_jsonl
from benchmarks.study import auc, main, offsets_s

from tests.fixtures.sync import EXPECTED, SYNC

WEIGHTS = SYNC / "weights"


def test_auc_by_hand():
    # higher is synchronous: pairs (0.1<0.5) 1, (0.1<0.9) 1, (0.5=0.5) 1/2, (0.5<0.9) 1 -> 3.5 / 4
    assert auc([0.1, 0.5], [0.5, 0.9], +1) == 0.875
    # DeSync (lower is synchronous): shifted 1.0 and 0.2 against unshifted 0.2 and 0.0 -> 1, 1, 1/2, 1
    assert auc([1.0, 0.2], [0.2, 0.0], -1) == 0.875
    assert auc([0.0], [1.0], +1) == 1.0 and auc([1.0], [0.0], +1) == 0.0 and np.isnan(auc([], [1.0], 1))
    assert offsets_s([2, 1]) == [-0.08, -0.04, 0.0, 0.04, 0.08]  # frames at 25 fps, both signs


def _shifted_copy(tmp_path, clip, frames):
    """The clip with its int16 wav moved ``frames / 25`` s later, by hand (zeros in front, same length)."""
    folder = tmp_path / f"shifted{frames}"
    folder.mkdir()
    shutil.copy(SYNC / "clips" / f"{clip}.mp4", folder / f"{clip}.mp4")
    y, sr = sf.read(SYNC / "clips" / f"{clip}.wav", dtype="int16")
    n = sr * frames // 25
    sf.write(folder / f"{clip}.wav", np.concatenate([np.zeros(n, np.int16), y[: len(y) - n]]), sr, subtype="PCM_16")
    return folder


@pytest.mark.slow
def test_the_study_of_every_metric(tmp_path, capsys):
    from avalign import score_file
    from benchmarks.metrics.cli import main as metrics_main

    out = tmp_path / "study"
    argv = [str(SYNC / "clips"), "--weights", str(WEIGHTS), "--out", str(out), "--offsets", "4", "--duration", "5"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| DeSync | 2 |" in printed and "+0.16 s" in printed and "-0.16 s" in printed
    rows = read_jsonl(out / "study.jsonl")
    assert len(rows) == 2 * 3 * 3  # clips x metrics x offsets (-4, 0, 4 frames)
    value = {(r["clip"].rsplit("/", 1)[-1][:-4], r["metric"], r["offset_s"]): r for r in rows}
    # offset 0: the reference's numbers (pub02_orbit was run by the reference at L = 5 s)
    ref = EXPECTED["summary"]["per_clip"]["pub02_orbit"]
    assert value[("pub02_orbit", "desync", 0.0)]["value"] == pytest.approx(ref["DeSync"], abs=1e-6)
    assert value[("pub02_orbit", "ib", 0.0)]["value"] == pytest.approx(ref["IB_score"], abs=1e-5)
    for clip in EXPECTED["summary"]["per_clip"]:
        assert value[(clip, "av_align", 0.0)]["value"] == score_file(SYNC / "clips" / f"{clip}.mp4").score
    # +4 frames: each metric on a copy whose audio was moved 0.16 s later by hand
    clip = "pub01_bounce"
    folder = _shifted_copy(tmp_path, clip, 4)
    assert value[(clip, "av_align", 0.16)]["value"] == pytest.approx(score_file(folder / f"{clip}.mp4").score,
                                                                      abs=1e-9)
    for metric, key in (("desync", "desync"), ("ib", "ib_score")):
        assert metrics_main([metric, str(folder / f"{clip}.mp4"), "--weights", str(WEIGHTS), "--duration", "5",
                             "--out", str(tmp_path / f"{metric}.jsonl")]) == 0
        by_hand = read_jsonl(tmp_path / f"{metric}.jsonl")[0]
        assert value[(clip, metric, 0.16)]["value"] == pytest.approx(by_hand[key], abs=1e-5)
        if metric == "desync":  # Synchformer's sign (positive: audio earlier) turned to the study's axis
            r = value[(clip, "desync", 0.16)]
            assert r["offsets_s"] == pytest.approx(by_hand["offsets_s"], abs=1e-6)
            assert r["offset_study_axis_s"] == pytest.approx(-np.mean(by_hand["offsets_s"]))
    # the AUC table is the hand formula on the rows (pooled over the two clips)
    table = {r["metric"]: r for r in csv.DictReader(open(out / "auc.csv"))}
    for metric, direction in (("av_align", 1), ("desync", -1), ("ib", 1)):
        zero = [value[(c, metric, 0.0)]["value"] for c in EXPECTED["summary"]["per_clip"]]
        later = [value[(c, metric, 0.16)]["value"] for c in EXPECTED["summary"]["per_clip"]]
        pairs = [(s * direction < z * direction) + 0.5 * (s == z) for s in later for z in zero]
        assert float(table[metric]["0.16"]) == pytest.approx(sum(pairs) / 4)
    assert (out / "offset.png").stat().st_size > 0
    # a rerun redoes nothing; other settings in the same folder are one line, exit 2
    before = (out / "study.jsonl").read_bytes()
    assert main(argv) == 0 and (out / "study.jsonl").read_bytes() == before
    assert main([*argv[:-4], "--offsets", "2", "--duration", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "made with other settings (offsets_s" in err[0]


@pytest.mark.parametrize("extra, words", [(["--offsets", "0"], "positive whole numbers"),
                                          (["--offsets", "x"], "whole numbers of frames"),
                                          (["--metrics", "fvd"], "choose from av_align, desync, ib"),
                                          (["--duration", "-1"], "--duration must be a positive number of seconds"),
                                          (["--duration", "inf"], "got inf")])
def test_bad_usage_is_one_line(tmp_path, extra, words, capsys):
    assert main([str(SYNC / "clips"), "--weights", str(WEIGHTS), "--out", str(tmp_path / "s"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]
    assert not (tmp_path / "s").exists()


def test_missing_weights_are_one_line_before_any_work(tmp_path, capsys):
    assert main([str(SYNC / "clips"), "--weights", str(tmp_path), "--out", str(tmp_path / "s"),
                 "--metrics", "av_align,desync"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "synchformer_state_dict.pth: not found" in err[0]
    assert not (tmp_path / "s").exists()
