"""The CLI: records, exit codes, resume after a kill, plots."""

import json
import shutil

import pytest

from avalign.cli import main
from avalign.records import read_jsonl

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
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "avalign", "score", str(tmp_path / "none.mp4")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "none.mp4" in proc.stderr and "Traceback" not in proc.stderr
