"""The CLI: records, exit codes, resume after a kill, plots, containers, partial files, --help,
resume keys, refusals and audio errors."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avalign import score_file
from avalign.cli import build_parser, collect_jobs, main
from avalign.io import read_jsonl, write_video, write_wav

RECORD_KEYS = {
    "video", "audio", "variant", "fps", "n_frames", "audio_peaks", "video_peaks", "matches", "n_matches",
    "score", "status", "error", "flow_trajectory", "audio_sr", "frame_shape", "seconds",
}
SMALL = ["c03_sync_burst_8fps_64x64_2s", "c09_two_frames_8fps_64x64", "c12_static_silent_10fps_64x64_1s",
         "c04_sync_burst_10fps_128x128_3s"]


@pytest.fixture
def small_dir(tmp_path, golden_clips):
    d = tmp_path / "clips"
    d.mkdir()
    for name in SMALL:
        for ext in (".mp4", ".wav"):
            shutil.copy(golden_clips / f"{name}{ext}", d / f"{name}{ext}")
    return d


def test_records_and_summary(small_dir, tmp_path, capsys, golden):
    out = tmp_path / "r.jsonl"
    assert main(["score", str(small_dir), "--out", str(out), "--workers", "2"]) == 0
    records = read_jsonl(out)
    assert len(records) == len(SMALL)
    for r in records:
        assert RECORD_KEYS <= set(r)
        ref = golden[r["video"].rsplit("/", 1)[1][:-4]]
        assert r["variant"] == "tempotokens-2025"
        assert r["audio"].endswith(".wav")
        assert r["score"] == ref["score"]
        assert r["n_matches"] == len(r["matches"])
    text = capsys.readouterr().out
    # 3 defined scores (1.0, 0.0, 1.0), one undefined
    assert "AV-Align 0.6667" in text and "n=4, n_undefined=1, n_error=0" in text
    # the docs' schema table lists exactly the fields a record has (and the protocol's parts)
    page = (Path(__file__).parents[2] / "docs" / "reference" / "records.md").read_text()
    table = page.split("## `avalign score --out`")[1].split("\n## ")[0]
    documented = {name for row in table.splitlines() if row.startswith("| `")
                  for name in re.findall(r"`(\w+)`", row.split(" | ")[0])}
    assert documented == set(records[0]), "docs/reference/records.md: the avalign score table is stale"
    protocol_row = next(row for row in table.splitlines() if row.startswith("| `protocol`"))
    assert set(re.findall(r"`(\w+)`", protocol_row.split(" | ")[1])) == set(records[0]["protocol"])


def test_bad_file_gives_exit_1_one_line_and_the_batch_goes_on(small_dir, tmp_path, capsys):
    (small_dir / "broken.mp4").write_bytes(b"\x00" * 100)
    out = tmp_path / "r.jsonl"
    assert main(["score", str(small_dir), "--out", str(out), "--workers", "2", "--quiet"]) == 1
    records = {r["video"].rsplit("/", 1)[1]: r for r in read_jsonl(out)}
    assert len(records) == len(SMALL) + 1
    assert records["broken.mp4"]["status"] == "error" and records["broken.mp4"]["score"] is None
    assert sum(r["status"] == "ok" for r in records.values()) == 3
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if "broken.mp4" in l]
    assert len(lines) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["score", "a.mp4", "b.mp4", "--audio", "x.wav"],  # --audio with two videos
        ["score", "{empty}"],  # a folder without videos
        ["score", "a.mp4", "--workers", "0"],
    ],
)
def test_usage_errors_exit_2(argv, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [a.replace("{empty}", str(empty)) for a in argv]
    assert main(argv) == 2
    assert "avalign: error:" in capsys.readouterr().err


def test_argparse_usage_errors_exit_2():
    with pytest.raises(SystemExit) as exc:
        main(["score", "x.mp4", "--variant", "nope"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["score", "--help"])
    assert exc.value.code == 0


def test_resume_after_kill_neither_redoes_nor_duplicates(small_dir, tmp_path, monkeypatch):
    out = tmp_path / "r.jsonl"
    assert main(["score", str(small_dir), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    lines = out.read_bytes().splitlines(keepends=True)
    # a run killed while writing its third record: two whole lines and a torn one
    out.write_bytes(b"".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    kept = {json.loads(l)["video"] for l in lines[:2]}

    scored = []
    import avalign.cli as cli

    real = cli.score_files

    def spy(jobs, *a, **k):
        scored.extend(j.video for j in jobs)
        return real(jobs, *a, **k)

    monkeypatch.setattr(cli, "score_files", spy)
    assert main(["score", str(small_dir), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    records = read_jsonl(out)
    videos = [r["video"] for r in records]
    assert len(videos) == len(set(videos)) == len(SMALL)
    assert not kept & set(scored) and len(scored) == len(SMALL) - 2
    assert out.read_bytes().count(b"\n") == len(SMALL)  # the torn line is gone


def test_retry_errors_rescores_only_errors(small_dir, tmp_path):
    out = tmp_path / "r.jsonl"
    (small_dir / "late.mp4").write_bytes(b"not yet")
    assert main(["score", str(small_dir), "--out", str(out), "--quiet", "--workers", "1"]) == 1
    shutil.copy(small_dir / "c03_sync_burst_8fps_64x64_2s.mp4", small_dir / "late.mp4")
    shutil.copy(small_dir / "c03_sync_burst_8fps_64x64_2s.wav", small_dir / "late.wav")
    assert main(["score", str(small_dir), "--out", str(out), "--quiet", "--workers", "1"]) == 1  # kept as error
    assert main(["score", str(small_dir), "--out", str(out), "--quiet", "--retry-errors", "--workers", "1"]) == 0
    records = read_jsonl(out)
    assert len(records) == len(SMALL) + 1 and all(r["status"] != "error" for r in records)


def test_variant_mismatch_with_existing_out(small_dir, tmp_path):
    out = tmp_path / "r.jsonl"
    clip = str(small_dir / "c03_sync_burst_8fps_64x64_2s.mp4")
    assert main(["score", clip, "--out", str(out), "--quiet"]) == 0
    assert main(["score", clip, "--out", str(out), "--variant", "javisbench", "--quiet"]) == 2


def test_explicit_audio_and_plots(small_dir, tmp_path, golden):
    out, plots = tmp_path / "r.jsonl", tmp_path / "plots"
    video = small_dir / "c04_sync_burst_10fps_128x128_3s.mp4"
    wav = tmp_path / "other.wav"
    shutil.copy(small_dir / "c04_sync_burst_10fps_128x128_3s.wav", wav)
    (small_dir / "c04_sync_burst_10fps_128x128_3s.wav").unlink()
    assert main(["score", str(video), "--audio", str(wav), "--out", str(out), "--plot", str(plots)]) == 0
    (record,) = read_jsonl(out)
    assert record["audio"] == str(wav)
    assert record["score"] == golden["c04_sync_burst_10fps_128x128_3s"]["score"]
    png = plots / "c04_sync_burst_10fps_128x128_3s.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_variants_command(capsys):
    assert main(["variants"]) == 0
    text = capsys.readouterr().out
    assert "tempotokens-2025 (default)" in text and "javisbench" in text and "tempotokens-2023" in text


def test_module_entry_point_exit_status(tmp_path):

    proc = subprocess.run([sys.executable, "-m", "avalign", "score", str(tmp_path / "none.mp4")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "none.mp4" in proc.stderr and "Traceback" not in proc.stderr


def test_folders_take_other_containers_and_skip_partial_files(tmp_path):
    frames = np.zeros((4, 16, 16, 3), np.uint8)
    for name in ("a.mp4", "b.mkv", "c.partial.mp4", ".d.mp4", "e.mov"):
        write_video(tmp_path / name, frames, 8)
    (tmp_path / "f.mp4.tmp").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    assert [Path(j.video).name for j in collect_jobs([str(tmp_path)], None)] == ["a.mp4", "b.mkv", "e.mov"]
    write_wav(tmp_path / "b.wav", np.zeros(8000, np.float32), 16000)
    r = score_file(tmp_path / "b.mkv")
    assert r.status == "undefined" and r.n_frames == 4  # an mkv decodes like an mp4


def test_a_run_with_no_scored_clip_says_so(tmp_path, capsys):
    assert main(["score", str(tmp_path / "absent.mp4")]) == 1
    out = capsys.readouterr().out
    assert "no clip scored" in out and "nan" not in out


def test_help_shows_each_default_once():
    sub = build_parser()._subparsers._group_actions[0].choices["score"]
    text = sub.format_help()
    assert "(default: None)" not in text and "(default: False)" not in text
    assert text.count("default") == len([line for line in text.splitlines() if "default" in line])
    for line in text.split("  --"):
        assert line.count("default") <= 1, line


def test_resume_key_survives_a_change_of_directory(make_clip, tmp_path, monkeypatch, capsys):
    mp4 = make_clip("k", [0.5], [0.5], fps=10, duration_s=1.5)
    out = tmp_path / "r.jsonl"
    monkeypatch.chdir(mp4.parent)
    assert main(["score", mp4.name, "--out", str(out), "--workers", "1"]) == 0
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    capsys.readouterr()
    assert main(["score", os.path.relpath(mp4, other), "--out", str(out), "--workers", "1"]) == 0
    assert "1 of 1 clips already scored" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 1


def test_another_audio_or_empty_score_into_the_same_out_is_refused(make_clip, tmp_path, capsys):
    mp4 = make_clip("a", [0.5], [0.5], fps=10, duration_s=1.5)
    other = tmp_path / "other.wav"
    write_wav(other, np.zeros(16000, np.float32), 16000)
    out = tmp_path / "r.jsonl"
    assert main(["score", str(mp4), "--out", str(out), "--workers", "1"]) == 0
    before = out.read_bytes()
    assert main(["score", str(mp4), "--audio", str(other), "--out", str(out)]) == 2
    assert "was scored with audio" in capsys.readouterr().err
    assert main(["score", str(mp4), "--empty-score", "0", "--out", str(out)]) == 2
    assert "--empty-score" in capsys.readouterr().err and out.read_bytes() == before
    # another clip into the same file with another --empty-score: refused too (one file, one setting)
    new = make_clip("b", [0.5], [0.5], fps=10, duration_s=1.5)
    assert main(["score", str(new), "--empty-score", "1", "--out", str(out)]) == 2
    # scored with --audio, then rerun without it (its sibling wav would be used): refused
    out2 = tmp_path / "r2.jsonl"
    assert main(["score", str(mp4), "--audio", str(other), "--out", str(out2), "--workers", "1"]) == 0
    assert main(["score", str(mp4), "--out", str(out2)]) == 2
    assert "was scored with audio" in capsys.readouterr().err


def test_address_needs_the_ray_executor(make_clip, capsys):
    mp4 = make_clip("x", [0.5], [0.5], fps=10, duration_s=1.5)
    assert main(["score", str(mp4), "--address", "auto"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--executor ray" in err[0]


def test_a_bad_audio_file_is_named_with_its_clip(make_clip, tmp_path):
    mp4 = make_clip("v", [0.5], [0.5], fps=10, duration_s=1.5, wav=False)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    r = score_file(mp4, bad)
    assert r.status == "error" and str(mp4) in r.error and str(bad) in r.error
