"""The sensitivity study: the offset curve of clips with known sync, and conditions that are the
protocol's own conform step."""

from pathlib import Path

import pytest

from avalign import Protocol, score_file
from avalign.cli import main
from avalign.io import probe_video, read_jsonl
from avalign.study import StudySettings, run_study, shift_audio, summary_rows

EVENTS = [0.5, 1.2, 2.0, 2.7]


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    from avalign.io import write_video, write_wav
    from tests.fixtures.media import click_track, jump_frames

    folder = tmp_path_factory.mktemp("synced")
    clips = []
    for i, fps in enumerate((10, 12, 15)):
        events = [t + 0.05 * i for t in EVENTS]
        write_video(folder / f"s{i}.mp4", jump_frames(events, int(3.5 * fps), fps), fps)
        write_wav(folder / f"s{i}.wav", click_track(events, 3.5, 16000), 16000)
        clips.append(str(folder / f"s{i}.mp4"))
    return clips


def test_shift_audio_by_hand():
    import numpy as np

    y = np.arange(1, 11, dtype=np.float32)
    assert shift_audio(y, 10, 0.3).tolist() == [0, 0, 0, 1, 2, 3, 4, 5, 6, 7]  # later, zero-padded, same length
    assert shift_audio(y, 10, -0.2).tolist() == [3, 4, 5, 6, 7, 8, 9, 10, 0, 0]


def test_offset_curve_peaks_at_zero_and_falls_by_two_frames(synced, tmp_path):
    rows = run_study(synced, tmp_path, StudySettings(offsets=3, factors=("offset",)), workers=1)
    curve = {r["value"]: r["mean"] for r in summary_rows(rows) if r["factor"] == "offset"}
    assert curve[0] == 1.0 and curve[0] == max(curve.values())
    assert curve[2] < 0.35 and curve[-2] < 0.35 and curve[3] < 0.35 and curve[-3] < 0.35
    assert (tmp_path / "offset.png").stat().st_size > 5000 and (tmp_path / "study.csv").exists()


def test_retiming_and_resizing_are_the_conform_step(synced, tmp_path, capsys):
    assert main(["study", *synced, "--out", str(tmp_path), "--offsets", "0", "--vary-fps", "8", "--vary-size", "48",
                 "--vary-crf", "28", "--vary-flow", "farneback,dis-ultrafast", "--workers", "2"]) == 0
    rows = read_jsonl(tmp_path / "study.jsonl")
    got = {(r["clip"], r["factor"], str(r["value"])): r["score"] for r in rows}
    for clip in synced:  # 64x64 clips: a short side of 48 is 48x48
        assert got[(clip, "fps", "8.0")] == score_file(clip, protocol=Protocol(fps=8)).score
        assert got[(clip, "size", "48")] == score_file(clip, protocol=Protocol(width=48, height=48)).score
        assert got[(clip, "flow", "dis-ultrafast")] == score_file(clip, protocol=Protocol(flow="dis-ultrafast")).score
        assert got[(clip, "flow", "farneback")] == got[(clip, "offset", "0")] == score_file(clip).score
        # "native" is the clip as it is: scored independently at its own rate and its own 64x64 size
        own_fps, _ = probe_video(clip)
        assert got[(clip, "fps", "native")] == score_file(clip, protocol=Protocol(fps=own_fps)).score
        assert got[(clip, "size", "native")] == score_file(clip, protocol=Protocol(width=64, height=64)).score
        crf = next(r for r in rows if r["clip"] == clip and r["factor"] == "crf")
        assert crf["status"] == "ok" and crf["score"] is not None and crf["n_video"] > 0
    assert {r["factor"] for r in rows} == {"offset", "fps", "size", "crf", "flow"}
    assert "study:" in capsys.readouterr().out and (tmp_path / "factors.png").exists()
    before = (tmp_path / "study.jsonl").read_bytes()
    assert main(["study", *synced, "--out", str(tmp_path), "--offsets", "0", "--vary-fps", "8", "--vary-size", "48",
                 "--vary-crf", "28", "--vary-flow", "farneback,dis-ultrafast", "--workers", "2"]) == 0
    assert (tmp_path / "study.jsonl").read_bytes() == before  # resumed: nothing redone


def test_study_on_golden_clips_small(golden_clips, tmp_path):
    clips = [str(golden_clips / f"{n}.mp4") for n in ("c01_sync_bounce_24fps_256x256_4s", "c03_sync_burst_8fps_64x64_2s",
                                                      "c04_sync_burst_10fps_128x128_3s")]
    rows = run_study(clips, tmp_path, StudySettings(offsets=2, fps=(12.0,), sizes=(128,), crf=(28,),
                                                    flow=("farneback", "farneback-half")), workers=2)
    table = {(r["factor"], r["value"]): r for r in summary_rows(rows)}
    assert table[("offset", 0)]["n"] == 3 and table[("offset", 0)]["mean_abs_delta"] == 0.0
    assert table[("flow", "farneback")]["mean"] == table[("offset", 0)]["mean"]
    assert len(rows) == 3 * (5 + 2 + 2 + 1 + 2)  # offsets, fps (+ native), size (+ native), crf, flow


def test_bad_study_arguments(tmp_path, golden_clips):
    assert main(["study", str(golden_clips), "--out", str(tmp_path), "--factors", "offset,colour"]) == 2
    assert main(["study", str(golden_clips), "--out", str(tmp_path), "--vary-flow", "magic"]) == 2
    assert main(["study", str(golden_clips), "--out", str(tmp_path), "--size", "0x9"]) == 2


def test_every_condition_keeps_the_rest_of_the_base_protocol(synced, tmp_path):
    """--fps/--size/--duration/--flow set the base protocol (a benchmark run's, reproduced): the
    unchanged rows, each condition and the re-encoded clips are scored under it, with one part changed."""
    assert main(["study", *synced[:2], "--out", str(tmp_path), "--offsets", "1", "--size", "32x32", "--fps", "12",
                 "--duration", "3", "--vary-fps", "8,12", "--vary-size", "48", "--vary-crf", "28",
                 "--vary-flow", "farneback,dis-ultrafast", "--workers", "1"]) == 0
    rows = read_jsonl(tmp_path / "study.jsonl")
    got = {(r["clip"], r["factor"], str(r["value"])): r["score"] for r in rows}
    base = dict(fps=12.0, width=32, height=32, duration_s=3.0)
    for clip in synced[:2]:
        assert got[(clip, "offset", "0")] == score_file(clip, protocol=Protocol(**base)).score
        assert got[(clip, "fps", "8.0")] == score_file(clip, protocol=Protocol(**{**base, "fps": 8.0})).score
        assert got[(clip, "fps", "12.0")] == got[(clip, "size", "32x32")] == got[(clip, "offset", "0")]
        assert got[(clip, "size", "48")] == score_file(clip, protocol=Protocol(**{**base, "width": 48, "height": 48})).score
        assert got[(clip, "flow", "dis-ultrafast")] == score_file(
            clip, protocol=Protocol(**base, flow="dis-ultrafast")).score
        (encoded,) = (tmp_path / "work").glob(f"crf28_*_{Path(clip).stem}.mp4")  # scored with the clip's own audio
        assert got[(clip, "crf", "28")] == score_file(str(encoded), clip[:-4] + ".wav", protocol=Protocol(**base)).score
    assert not any(r["value"] == "native" for r in rows)  # the base sets fps and size: no "native" label


def test_resume_redoes_nothing_for_any_factor_set_and_any_directory(synced, tmp_path, monkeypatch):
    import os

    import avalign.study as study

    calls = []
    real = study.score_files
    monkeypatch.setattr(study, "score_files", lambda jobs, *a, **k: calls.append(len(list(jobs))) or real(jobs, *a, **k))
    settings = StudySettings(factors=("flow",), flow=("farneback", "farneback-half"))
    run_study(synced[:2], tmp_path / "s", settings, workers=1)
    assert calls == [2, 2]
    calls.clear()
    monkeypatch.chdir(os.path.dirname(synced[0]))  # the same clips by relative paths, from their folder
    rows = run_study([os.path.basename(c) for c in synced[:2]], tmp_path / "s", settings, workers=1)
    assert calls == [0, 0] and len(rows) == 2 * 3  # offset 0, flow farneback (a copy), flow farneback-half
    assert all(os.path.isabs(r["clip"]) for r in rows)


def test_a_study_refuses_another_variant_and_exits_1_for_a_bad_clip(synced, tmp_path, capsys):
    args = ["study", synced[0], "--out", str(tmp_path), "--offsets", "1", "--factors", "offset", "--workers", "1"]
    assert main(args) == 0
    rows = (tmp_path / "study.jsonl").read_bytes()
    assert main([*args, "--variant", "tempotokens-2023"]) == 2  # the rows were made with tempotokens-2025
    assert 'variant "tempotokens-2025" -> "tempotokens-2023"' in capsys.readouterr().err
    assert (tmp_path / "study.jsonl").read_bytes() == rows
    missing = str(tmp_path / "missing.mp4")
    assert main(["study", missing, "--out", str(tmp_path / "bad"), "--offsets", "1", "--factors", "offset"]) == 1
    assert "1 clips could not be scored" in capsys.readouterr().err
