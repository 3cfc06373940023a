"""``python -m benchmarks.metrics desync|ib``: records, resume, summary, refusals and exit statuses."""

import json
import shutil
from pathlib import Path

import pytest

from avalign.io import read_jsonl
from benchmarks.metrics.cli import main

from tests.fixtures.sync import EXPECTED, SYNC

WINDOWS = {c["name"]: c["desync"]["windows"] for c in EXPECTED["clips"]}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """pub02 (mp4 + wav beside it) and a broken file."""
    d = tmp_path_factory.mktemp("clips")
    for ext in ("mp4", "wav"):
        shutil.copy(SYNC / "clips" / f"pub02_orbit.{ext}", d / f"pub02_orbit.{ext}")
    (d / "broken.mp4").write_bytes(b"not a video")
    return d


def test_desync_records_summary_resume_and_exit_status(clips, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    args = ["desync", str(clips), "--weights", str(SYNC / "weights"), "--duration", "5", "--out", str(out)]
    assert main(args) == 1  # the broken clip failed; the other is scored
    records = {Path(r["video"]).stem: r for r in read_jsonl(out)}
    ok, bad = records["pub02_orbit"], records["broken"]
    assert (ok["status"], ok["lineage"], ok["duration_s"]) == ("ok", "avbench", 5.0)
    assert ok["protocol"] == bad["protocol"] == {"duration_s": 5.0, "short": "error"}
    assert ok["offsets_s"] == [w["offset_sec_float32"] for w in WINDOWS["pub02_orbit"]]
    assert ok["desync"] == EXPECTED["summary"]["per_clip"]["pub02_orbit"]["DeSync"] and len(ok["logits"]) == 2
    assert bad["status"] == "error" and bad["video"].endswith("broken.mp4") and bad["duration_s"] == 5
    assert bad["error"].startswith("cannot open")  # not "cannot read its audio"
    assert "broken.mp4" not in bad["error"]  # the path is in "video", and said once on the terminal
    summary = json.loads((tmp_path / "r.summary.json").read_text())
    assert (summary["value"], summary["n_ok"], summary["n_error"]) == (ok["desync"], 1, 1)
    assert all("value" not in r for r in read_jsonl(out))  # the summary is never a record
    text = capsys.readouterr()
    assert "desync [avbench]: 0.8" in text.out and "error" in text.err
    assert text.err.count("broken.mp4") == 1
    before = out.read_bytes()
    assert main(args) == 1  # a rerun scores only the failed clip again, and appends its new record
    assert "1 of 2 clips already" in capsys.readouterr().err
    after = read_jsonl(out)
    assert out.read_bytes().startswith(before) and len(after) == 3 and after[-1]["video"].endswith("broken.mp4")
    assert json.loads((tmp_path / "r.summary.json").read_text())["n_error"] == 1  # the newest record per clip
    assert main([*args[:-4], "--duration", "4.9", "--out", str(out)]) == 2  # other settings: refused
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other settings" in err[0] and "duration_arg_s 5.0 -> 4.9" in err[0]


@pytest.mark.parametrize("batch", [[], ["--batch-size", "2"]])
def test_ib_command_matches_the_reference(clips, tmp_path, capsys, batch):
    out = tmp_path / "ib.jsonl"  # its 3 views in the default batch (3 on a CPU) or split 2 + 1
    assert main(["ib", str(clips / "pub02_orbit.mp4"), "--weights", str(SYNC / "weights"), "--duration", "5",
                 "--out", str(out), *batch]) == 0
    (r,) = read_jsonl(out)
    assert r["ib_score"] == pytest.approx(EXPECTED["summary"]["per_clip"]["pub02_orbit"]["IB_score"], abs=1e-5)
    assert r["n_views"] == 3 and r["lineage"] == "avbench"


def test_desync_batch_size_keeps_the_reference_result(clips, tmp_path):
    out = tmp_path / "r.jsonl"  # 5 segments per call: the windows' segments span calls
    assert main(["desync", str(clips / "pub02_orbit.mp4"), "--weights", str(SYNC / "weights"), "--duration", "5",
                 "--batch-size", "5", "--out", str(out)]) == 0
    (r,) = read_jsonl(out)
    assert r["offsets_s"] == [w["offset_sec_float32"] for w in WINDOWS["pub02_orbit"]]
    assert r["desync"] == EXPECTED["summary"]["per_clip"]["pub02_orbit"]["DeSync"]


@pytest.mark.parametrize("extra, message", [
    (["--fps", "12"], "--fps is refused"),
    (["--size", "32x32"], "--size is refused"),
    (["--duration", "0"], "--duration must be a positive number of seconds"),
    (["--duration", "inf"], "--duration must be a positive number of seconds, got inf"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
])
def test_usage_errors_are_one_line(clips, extra, message, capsys):
    assert main(["desync", str(clips), "--weights", str(SYNC / "weights"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_missing_weights_and_inputs_are_one_line(clips, tmp_path, capsys):
    assert main(["desync", str(clips), "--weights", str(tmp_path)]) == 2
    assert main(["ib", str(clips), "--weights", str(tmp_path)]) == 2
    assert main(["desync", str(tmp_path / "nope.mp4"), "--weights", str(SYNC / "weights")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "synchformer_state_dict.pth: not found" in err[0]
    assert "imagebind_huge.pth: not found" in err[1] and "nope.mp4: not found" in err[2]


def test_a_short_clip_is_an_error_record_or_padded(tmp_path, capsys):
    import numpy as np

    from avalign.io import write_video, write_wav

    rng = np.random.default_rng(0)
    write_video(tmp_path / "s.mp4", rng.integers(0, 255, (50, 48, 64, 3), dtype=np.uint8), 25)
    write_wav(tmp_path / "s.wav", rng.standard_normal(32000).astype(np.float32) * 0.1, 16000)
    base = ["desync", str(tmp_path / "s.mp4"), "--weights", str(SYNC / "weights")]
    assert main([*base, "--out", str(tmp_path / "e.jsonl")]) == 1
    (r,) = read_jsonl(tmp_path / "e.jsonl")
    assert r["status"] == "error" and r["too_short"] and "fewer than the 14" in r["error"]
    assert r["duration_s"] == 2.0  # measured: 50 frames at 25 fps, 32,000 samples at 16 kHz
    assert main([*base, "--short", "pad", "--out", str(tmp_path / "p.jsonl")]) == 0
    (r,) = read_jsonl(tmp_path / "p.jsonl")
    assert r["status"] == "ok" and r["padded"] and r["windows"] == [[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3]]


def test_sync_protocol_record_and_words():
    from benchmarks.syncprotocol import SyncProtocol

    p = SyncProtocol(2.0, "pad")
    assert p.to_record() == {"duration_s": 2.0, "short": "pad"}
    assert p.describe("javisbench") == "javisbench, L = 2 s, short clips: padded"
    assert SyncProtocol().describe("avbench") == "avbench, each clip's length, short clips: not applicable"
    with pytest.raises(ValueError, match="short must be one of error, pad"):
        SyncProtocol(2.0, "repeat")


@pytest.mark.parametrize("metric, device, flag, calls", [
    ("desync", "cpu", [], [1] * 14),  # the CPU default: one segment per MotionFormer call
    ("desync", "cpu", ["--batch-size", "5"], [5, 5, 4]),
    ("ib", "cpu", [], [3]),  # the CPU default: three views per call
    ("ib", "cpu", ["--batch-size", "2"], [2, 1]),
])
def test_batch_sizes_reach_the_model(clips, tmp_path, monkeypatch, metric, device, flag, calls):
    """Each model call's batch, recorded: the default and --batch-size are what the models see."""
    from benchmarks.metrics.imagebind import ImageBind
    from benchmarks.metrics.synchformer import Synchformer

    cls, name = (Synchformer, "video_features") if metric == "desync" else (ImageBind, "embed_video")
    seen, original = [], getattr(cls, name)

    def recorded(self, x):
        seen.append(x.shape[0])
        return original(self, x)

    monkeypatch.setattr(cls, name, recorded)
    assert main([metric, str(clips / "pub02_orbit.mp4"), "--weights", str(SYNC / "weights"), "--duration", "5",
                 "--device", device, "--out", str(tmp_path / "r.jsonl"), *flag]) == 0
    assert seen == calls


def test_default_batches_by_device():
    from benchmarks.metrics import desync, ib

    assert (desync.video_batch("cpu"), desync.video_batch("cuda:0"), desync.AUDIO_BATCH) == (1, 8, 8)
    assert (ib.view_batch("cpu"), ib.view_batch("cuda")) == (3, 8)
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        desync.check_batch(0)


def test_timed_feature_passes_are_those_of_an_8_s_clip():
    """What ``make bench`` and the GPU check time (``syncpasses``) is what the scorers' own input
    builders make of an 8 s clip (200 frames at 25 fps, 128,000 samples at 16 kHz; IB's 4 frames at
    0.5 fps give 3 pairs x 3 crops), in the default batches."""
    from types import SimpleNamespace

    import numpy as np
    import torch

    from benchmarks.metrics import desync, ib
    from benchmarks.metrics.syncpasses import feature_passes

    model = SimpleNamespace(video_features="v", audio_features="a", embed_video="v", embed_audio="a")
    built = {"desync": {"video": desync.video_segments(torch.zeros(200, 3, 224, 224, dtype=torch.uint8)).shape,
                        "audio": desync.mel_segments(torch.zeros(128_000)).shape},
             "ib": {"video": ib.pair_views(torch.zeros(4, 3, 224, 298), [(0, 1), (1, 2), (2, 3)]).shape,
                    "audio": ib.fbank_clips(np.zeros((1, 128_000), dtype=np.float32), 16_000).shape}}
    for device, batches in (("cpu", {"desync": (1, 8), "ib": (3, 3)}), ("cuda", {"desync": (8, 8), "ib": (8, 3)})):
        for metric in ("desync", "ib"):
            passes = feature_passes(metric, model, device)
            assert {p: (fn, shape) for p, (fn, shape, _) in passes.items()} == {
                p: (p[0], tuple(s)) for p, s in built[metric].items()}, metric
            assert (passes["video"][2], passes["audio"][2]) == batches[metric], (metric, device)
