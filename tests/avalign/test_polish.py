"""Small things found in use: containers, partial files, empty runs, --help, resume keys, refusals,
metric input checks, audio errors, and scripts without a __main__ guard."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avalign import AVAlignMetric, score_file
from avalign.cli import build_parser, collect_jobs, main
from avalign.media import write_video, write_wav

ROOT = Path(__file__).resolve().parents[2]


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


def test_metric_rejects_floats_outside_0_1():
    metric = AVAlignMetric(fps=8, sample_rate=16000)
    with pytest.raises(ValueError, match="finite"):
        metric.update(np.full((1, 4, 16, 16, 3), np.nan, np.float32), np.zeros((1, 16000), np.float32))
    video = np.full((1, 4, 16, 16, 3), -0.5, np.float32)  # a [-1, 1] output passed as is
    with pytest.raises(ValueError, match=r"float frames must be in \[0, 1\]"):
        metric.update(video, np.zeros((1, 16000), np.float32))
    with pytest.raises(ValueError, match="uint8 or float"):
        metric.update(np.zeros((1, 4, 16, 16, 3), np.int32), np.zeros((1, 16000), np.float32))


def test_a_bad_audio_file_is_named_with_its_clip(make_clip, tmp_path):
    mp4 = make_clip("v", [0.5], [0.5], fps=10, duration_s=1.5, wav=False)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    r = score_file(mp4, bad)
    assert r.status == "error" and str(mp4) in r.error and str(bad) in r.error


@pytest.mark.timeout(300)
def test_a_script_without_a_main_guard_falls_back_to_one_worker(tmp_path, golden_clips):
    script = tmp_path / "score_them.py"
    script.write_text("import logging\nfrom pathlib import Path\nfrom avalign import score_files\n"
                      "log = logging.getLogger(__name__)  # __name__ appears, but there is no guard\n"
                      f"clips = sorted(Path({str(golden_clips)!r}).glob('c0[34]*.mp4'))\n"
                      "for r in score_files(clips, workers=2):\n    print(r.status, r.score)\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=280)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["ok", "1.0", "ok", "1.0"]
    assert 'no `if __name__ == "__main__":` guard' in proc.stderr
