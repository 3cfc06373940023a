"""Parallel scoring: chunked long clips, crashed workers, records."""

import os
import subprocess
import sys

import numpy as np
import pytest

from avalign import Job, score_file, score_files
from avalign.io import JsonlWriter, read_jsonl


def _strip(r):
    d = r.to_record()
    d.pop("seconds")
    return d


def test_chunking_a_long_clip_changes_nothing(golden_clips):
    clip = golden_clips / "c04_sync_burst_10fps_128x128_3s.mp4"  # 30 frames -> 29 pairs
    serial = _strip(score_file(clip))
    for chunk in (1, 4, 29, 100):
        (r,) = list(score_files([clip], workers=2, chunk_pairs=chunk))
        assert _strip(r) == serial, chunk


@pytest.mark.timeout(120)
def test_a_crashing_worker_costs_only_its_clip(monkeypatch, golden_clips):
    """A worker killed in a decoder: that clip is an error, the pool restarts, the rest are scored."""
    import avalign.assembly as parallel

    real = parallel.read_video_for_flow

    def crash_on_c09(path, protocol=None):
        if "c09" in str(path):
            os._exit(1)  # like a segfault: no exception, the process is gone
        return real(path, protocol)

    monkeypatch.setattr(parallel, "read_video_for_flow", crash_on_c09)  # inherited by *forked* workers
    clips = [golden_clips / f"{n}.mp4" for n in ("c03_sync_burst_8fps_64x64_2s", "c09_two_frames_8fps_64x64",
                                                  "c04_sync_burst_10fps_128x128_3s", "c12_static_silent_10fps_64x64_1s")]
    results = {os.path.basename(r.video): r for r in score_files(clips, workers=2, chunk_pairs=4, start_method="fork")}
    assert len(results) == 4
    assert results["c09_two_frames_8fps_64x64.mp4"].status == "error"
    assert "worker process died" in results["c09_two_frames_8fps_64x64.mp4"].error
    assert results["c03_sync_burst_8fps_64x64_2s.mp4"].score == 1.0
    assert results["c04_sync_burst_10fps_128x128_3s.mp4"].score == 1.0
    assert results["c12_static_silent_10fps_64x64_1s.mp4"].status == "undefined"


def test_explicit_audio_job(golden_clips):
    video = golden_clips / "c03_sync_burst_8fps_64x64_2s.mp4"
    other = golden_clips / "c04_sync_burst_10fps_128x128_3s.wav"
    (r,) = list(score_files([Job(str(video), str(other))], workers=2))
    assert r.audio == str(other)
    assert r.audio_peaks == score_file(video, other).audio_peaks


def test_record_round_trip_and_torn_line(tmp_path, golden_clips):
    r = score_file(golden_clips / "c03_sync_burst_8fps_64x64_2s.mp4")
    path = tmp_path / "x.jsonl"
    with JsonlWriter(path) as w:
        w.write(r.to_record())
    with open(path, "ab") as f:
        f.write(b'{"video": "torn')  # a killed writer
    (back,) = read_jsonl(path)
    assert back == r.to_record()
    from avalign import AVAlignResult

    assert AVAlignResult.from_record(back).to_record() == back
    with JsonlWriter(path) as w:  # reopening repairs the file before appending
        w.write(r.to_record())
    assert len(read_jsonl(path)) == 2 and path.read_bytes().endswith(b"}\n")
    assert np.isfinite(back["score"])


@pytest.mark.slow  # 4 s: a fresh interpreter
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
