"""The benchmark runner: every method on tiny data, resume after kill -9, statistics, sharding."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from avalign.records import read_jsonl
from avalign.stats import bootstrap_ci
from baselines.shuffled_audio import derangement
from benchmarks.run import main, shard, summary_rows

SMALL = ["--num-frames", "8", "--fps", "8", "--height", "32", "--width", "32", "--steps", "2", "--guidance", "3",
         "--workers", "2"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from tempotokens.data.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("bench-data")
    make_synthetic(root, num_clips=12, seed=0, duration_s=2.0, size=32)  # 3 test clips
    return root


@pytest.fixture(scope="module")
def run(tiny_dir, data_root, tmp_path_factory):
    """One run of every built-in method plus external (a copy of ground truth's files)."""
    out = tmp_path_factory.mktemp("bench") / "run"
    args = ["--data-root", str(data_root), "--model", str(tiny_dir), "--out", str(out), *SMALL]
    assert main([*args, "--methods", "ground_truth"]) == 0
    external = out.parent / "external"
    shutil.copytree(out / "clips" / "ground_truth", external)
    assert main([*args, "--methods", "tempotokens,tempotokens_text_audio,text_to_video,ground_truth,"
                                     f"shuffled_audio,static_frame,external:{external}"]) == 0
    return out


def test_every_method_writes_scores_and_a_summary_row(run):
    import csv

    rows = {r["method"]: r for r in csv.DictReader(open(run / "summary.csv"))}
    assert set(rows) == {"tempotokens", "tempotokens_text_audio", "text_to_video", "ground_truth", "shuffled_audio",
                         "static_frame", "external:external"}
    for r in rows.values():
        assert r["n"] == "3" and r["n_error"] == "0" and r["dataset"] == "synthetic" and r["device"] == "cpu"
    assert float(rows["ground_truth"]["av_align"]) == 1.0  # synthetic clips are aligned by construction
    assert float(rows["external:external"]["av_align"]) == 1.0  # the same files, scored from another folder
    assert float(rows["shuffled_audio"]["av_align"]) < 1.0
    assert float(rows["tempotokens"]["load_s"]) > 0 and float(rows["tempotokens"]["peak_mem_mb"]) > 0
    assert rows["ground_truth"]["load_s"] == "nan"
    records = read_jsonl(run / "records.jsonl")
    assert len(records) == 7 * 3 and len({(r["method"], r["clip_id"]) for r in records}) == 21
    for r in records:
        assert {"clip_id", "method", "seed", "seconds", "peak_mem_mb", "status", "avalign"} <= set(r)
        assert Path(r["avalign"]["video"]).exists() and r["avalign"]["audio"].endswith(".wav")
    env = json.loads((run / "env.json").read_text())
    assert env["torch"] and env["config"]["settings"]["num_frames"] == 8 and "git_commit" in env


def test_generated_clips_cover_the_same_span(run):
    from avalign.media import read_video_gray

    gen = read_video_gray(next((run / "clips" / "tempotokens").glob("*.mp4")))
    real = read_video_gray(next((run / "clips" / "ground_truth").glob("*.mp4")))
    assert gen.n_frames / gen.fps == pytest.approx(1.0) and real.n_frames / real.fps == pytest.approx(1.0, abs=0.05)


def test_static_frame_has_no_video_peaks(run):
    for r in read_jsonl(run / "records.jsonl"):
        if r["method"] == "static_frame":
            assert r["avalign"]["video_peaks"] == [] and r["avalign"]["score"] in (0.0, None)


def test_rerun_redoes_nothing(run, tiny_dir, data_root):
    before = {p.name: p.read_bytes() for p in run.glob("*.jsonl")}
    assert main(["--data-root", str(data_root), "--model", str(tiny_dir), "--out", str(run), *SMALL,
                 "--methods", "ground_truth,static_frame"]) == 0
    assert {p.name: p.read_bytes() for p in run.glob("*.jsonl")} == before


def test_derangement_has_no_fixed_point():
    for n in range(2, 30):
        for seed in range(5):
            perm = derangement(n, seed)
            assert sorted(perm) == list(range(n)) and all(perm[i] != i for i in range(n))
    assert derangement(9, 3) == derangement(9, 3)


def test_summary_statistics_on_known_data():
    scores = [1.0, 0.5, 0.25, 0.0, None]
    records = [{"method": "m", "clip_id": str(i), "status": "ok" if s is not None else "undefined",
                "seconds": float(i + 1), "num_frames": 10, "peak_mem_mb": 100.0 + i, "device": "cpu",
                "avalign": {"score": s}} for i, s in enumerate(scores)]
    records.append({"method": "m", "clip_id": "x", "status": "error", "seconds": 0.0, "num_frames": 10,
                    "peak_mem_mb": None, "device": "cpu", "avalign": None})
    (row,) = summary_rows("d", records, [{"method": "m", "load_s": 2.5}], ["m"])
    assert (row["n"], row["n_undefined"], row["n_error"]) == (6, 1, 1)
    assert row["av_align"] == pytest.approx(np.mean([1.0, 0.5, 0.25, 0.0]))
    low, high = bootstrap_ci(sorted([1.0, 0.5, 0.25, 0.0]))
    assert (row["av_align_ci_low"], row["av_align_ci_high"]) == (low, high)
    secs = [1.0, 2.0, 3.0, 4.0, 5.0]  # the error is not timed
    assert row["s_per_clip_p50"] == 3.0 and row["s_per_clip_p90"] == pytest.approx(np.percentile(secs, 90))
    assert row["frames_per_s"] == pytest.approx(50 / 15) and row["peak_mem_mb"] == 104.0 and row["load_s"] == 2.5


def test_shards_cover_every_clip_once():
    for n in range(0, 20):
        for world in range(1, 5):
            parts = [shard(list(range(n)), r, world) for r in range(world)]
            assert sorted(sum(parts, [])) == list(range(n))


def test_two_processes_share_the_clips(tiny_dir, data_root, tmp_path, monkeypatch):
    out = tmp_path / "sharded"
    args = ["--data-root", str(data_root), "--model", str(tiny_dir), "--out", str(out), *SMALL,
            "--methods", "ground_truth,static_frame"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(args) == 0  # rank 1 generates its share and leaves
    assert not (out / "summary.csv").exists()
    monkeypatch.setenv("RANK", "0")
    assert main(args) == 0  # rank 0 generates its share, waits for rank 1, scores, summarizes
    shares = [{(r["method"], r["clip_id"]) for r in read_jsonl(out / f"generate-{k}.jsonl")} for k in (0, 1)]
    assert not shares[0] & shares[1] and len(shares[0] | shares[1]) == 2 * 3
    assert len(read_jsonl(out / "records.jsonl")) == 6


@pytest.mark.parametrize("argv", [["--dataset", "vggsound"], ["--methods", "nonsense"]])
def test_usage_errors(argv, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    assert "benchmarks.run: error" in capsys.readouterr().err


@pytest.mark.timeout(300)
def test_kill_9_loses_nothing_and_the_rerun_duplicates_nothing(tiny_dir, data_root, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "benchmarks.run", "--data-root", str(data_root), "--model", str(tiny_dir),
           "--out", str(out), *SMALL, "--methods", "tempotokens,ground_truth"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and len(read_jsonl(out / "generate-0.jsonl")) < 1:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = (out / "generate-0.jsonl").read_bytes()
    assert written.count(b"\n") >= 1
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True).returncode == 0
    after = (out / "generate-0.jsonl").read_bytes()
    kept = written[: written.rfind(b"\n") + 1]
    assert after.startswith(kept)  # nothing written before the kill was lost or redone
    gen = read_jsonl(out / "generate-0.jsonl")
    assert len(gen) == len({(r["method"], r["clip_id"]) for r in gen}) == 6
    assert len(read_jsonl(out / "records.jsonl")) == 6
