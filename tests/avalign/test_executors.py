"""The Ray executor's guarantees (crash isolation, the CLI's records and resume) and --shard."""

import json
import os
from pathlib import Path

import pytest

from avalign import score_files
from avalign.cli import main, parse_shard, UsageError


def _records(path: Path) -> dict[str, dict]:
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        r.pop("seconds")
        out[os.path.basename(r["video"])] = r
    return out


@pytest.mark.slow  # 9 s: a Ray cluster
def test_ray_task_that_kills_its_worker_costs_only_its_clip(golden_clips, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("_AVALIGN_CRASH_ON", "c09_two_frames")  # fault injection: that clip's task exits
    clips = [golden_clips / f"{n}.mp4" for n in ("c03_sync_burst_8fps_64x64_2s", "c09_two_frames_8fps_64x64",
                                                  "c04_sync_burst_10fps_128x128_3s")]
    results = {os.path.basename(r.video): r for r in score_files(clips, workers=2, executor="ray")}
    assert len(results) == 3
    bad = results["c09_two_frames_8fps_64x64.mp4"]
    assert bad.status == "error" and "Ray worker died" in bad.error
    assert results["c03_sync_burst_8fps_64x64_2s.mp4"].score == 1.0
    assert results["c04_sync_burst_10fps_128x128_3s.mp4"].score == 1.0


@pytest.mark.slow  # 8 s: a Ray cluster
def test_cli_ray_writes_the_local_records_and_resumes(golden_clips, tmp_path, capsys):
    pytest.importorskip("ray")
    clips = [str(golden_clips / f"{n}.mp4") for n in ("c01_sync_bounce_24fps_256x256_4s", "c03_sync_burst_8fps_64x64_2s")]
    local, ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert main(["score", *clips, "--out", str(local), "--workers", "2", "--quiet"]) == 0
    assert main(["score", *clips, "--out", str(ray), "--workers", "2", "--executor", "ray", "--quiet"]) == 0
    assert _records(local) == _records(ray)
    capsys.readouterr()
    assert main(["score", *clips, "--out", str(ray), "--executor", "ray"]) == 0  # nothing left to score
    assert "2 of 2 clips already scored" in capsys.readouterr().err and len(_records(ray)) == 2


def test_shards_partition_the_clips_and_concatenate_to_the_whole(golden_clips, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for n in ("c03_sync_burst_8fps_64x64_2s", "c04_sync_burst_10fps_128x128_3s", "c07_silent_audio_24fps_128x128_2s",
              "c09_two_frames_8fps_64x64", "c12_static_silent_10fps_64x64_1s"):
        for ext in (".mp4", ".wav"):
            if (golden_clips / f"{n}{ext}").exists():
                (folder / f"{n}{ext}").symlink_to(golden_clips / f"{n}{ext}")
    whole = tmp_path / "whole.jsonl"
    assert main(["score", str(folder), "--out", str(whole), "--workers", "1", "--quiet"]) in (0, 1)
    parts = []
    for i in range(3):
        part = tmp_path / f"part{i}.jsonl"
        assert main(["score", str(folder), "--shard", f"{i}/3", "--out", str(part), "--workers", "1", "--quiet"]) in (0, 1)
        parts.append(_records(part))
    assert sum(len(p) for p in parts) == 5 and set().union(*parts) == set(_records(whole))
    merged = tmp_path / "merged.jsonl"
    merged.write_text("".join((tmp_path / f"part{i}.jsonl").read_text() for i in range(3)))
    assert _records(merged) == _records(whole)  # concatenation is the merge
    names = sorted(p.name for p in folder.glob("*.mp4"))
    assert sorted(parts[1]) == names[1::3]


@pytest.mark.parametrize("text", ["3", "1/0", "3/3", "-1/2", "a/b"])
def test_bad_shard(text):
    with pytest.raises(UsageError):
        parse_shard(text)
    assert parse_shard("2/5") == (2, 5)


def test_ray_stays_out_of_the_import_path():
    import subprocess
    import sys

    code = ("import sys, avalign, avalign.cli, avalign.study\n"
            "from avalign import score_files\n"
            "assert 'ray' not in sys.modules, 'ray imported'\n")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
