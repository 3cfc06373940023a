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


@pytest.mark.slow  # 5 s
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


@pytest.mark.parametrize("flag, value, says", [
    ("--vary-fps", "a,b", "--vary-fps: bad value 'a' (not a number)"),
    ("--vary-fps", "0", "--vary-fps: bad value '0' (protocol fps must be positive"),
    ("--vary-size", "1.5", "--vary-size: bad value '1.5' (not an integer)"),
    ("--vary-crf", "99", "--vary-crf: bad value '99' (H.264 CRFs are 0..51"),
    ("--vary-flow", "magic", "--vary-flow: bad value 'magic'"),
    ("--factors", "offset,colour", "--factors: unknown factor 'colour'"),
])
def test_a_bad_condition_is_one_line_naming_its_flag_before_anything_is_written(golden_clips, tmp_path, capsys,
                                                                                 flag, value, says):
    out = tmp_path / "study"
    assert main(["study", str(golden_clips), "--out", str(out), flag, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"avalign: error: {says}") and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.slow  # 3 s: every condition on the golden clips
def test_every_condition_keeps_the_rest_of_the_base_protocol(golden_clips, tmp_path, monkeypatch):
    """--fps/--size/--duration/--flow set the base protocol (a benchmark run's, reproduced): the
    unchanged rows, each condition and the re-encoded clips are scored under it with one part changed.
    Checked two ways: the protocols the study asks for (listed by hand), and the rows' scores against
    scoring each clip directly, on a clip whose scores move with every part of the base."""
    import avalign.study as study

    asked = []
    real = study.score_files
    monkeypatch.setattr(study, "score_files", lambda jobs, *a, protocol=None, **k: (
        asked.append(protocol), real(jobs, *a, protocol=protocol, **k))[1])
    square, wide = (str(golden_clips / f"{n}.mp4") for n in ("c01_sync_bounce_24fps_256x256_4s",
                                                            "c11_oscillate_30fps_256x144_4s"))
    assert main(["study", square, wide, "--out", str(tmp_path), "--offsets", "1", "--size", "96x96", "--fps", "12",
                 "--duration", "3", "--vary-fps", "8,12", "--vary-size", "48", "--vary-crf", "28",
                 "--vary-flow", "farneback,dis-ultrafast", "--workers", "1"]) == 0
    base = dict(fps=12.0, width=96, height=96, duration_s=3.0)
    assert set(asked) == {
        Protocol(**base),  # the unchanged clips, and the re-encoded ones
        Protocol(**{**base, "fps": 8.0}),
        Protocol(**base, flow="dis-ultrafast"),
        Protocol(**{**base, "width": 48, "height": 48}),  # 256x256 -> a short side of 48
        Protocol(**{**base, "width": 85, "height": 48}),  # 256x144 -> 85x48: the clip's own shape, not the base's
    }
    rows = read_jsonl(tmp_path / "study.jsonl")
    got = {(r["clip"], r["factor"], str(r["value"])): r["score"] for r in rows}
    direct = {"unchanged": Protocol(**base), "fps 8": Protocol(**{**base, "fps": 8.0}),
              "flow": Protocol(**base, flow="dis-ultrafast")}
    without_base = {"unchanged": Protocol(), "fps 8": Protocol(fps=8.0), "flow": Protocol(flow="dis-ultrafast")}
    rowkey = {"unchanged": ("offset", "0"), "fps 8": ("fps", "8.0"), "flow": ("flow", "dis-ultrafast")}
    for name, protocol in direct.items():
        want = score_file(square, protocol=protocol).score
        assert got[(square, *rowkey[name])] == want
        assert want != score_file(square, protocol=without_base[name]).score  # so the check can fail
    assert got[(square, "fps", "12.0")] == got[(square, "size", "96x96")] == got[(square, "offset", "0")]
    (encoded,) = (tmp_path / "work").glob(f"crf28_*_{Path(square).stem}.mp4")  # scored with the clip's own audio
    assert got[(square, "crf", "28")] == score_file(str(encoded), square[:-4] + ".wav", protocol=Protocol(**base)).score
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
    err = capsys.readouterr().err
    assert f"1 clips could not be scored (their rows say error), e.g. {missing}: " in err and "not found" in err.lower()
    assert {r["error"] is not None for r in read_jsonl(tmp_path / "bad" / "study.jsonl")} == {True}
