"""Dataset readers on tiny fixture folders in each layout, and audio spans that match the frames."""

import csv
import pickle

import numpy as np
import pytest
import torch

from avalign.io import write_video, write_wav
from tempotokens.data.datasets import AudioVideoClips, collate, index_dataset, read_id_list, read_split_table
from tempotokens.data.synthetic import make_synthetic
from tests.fixtures.media import click_track, jump_frames


def _clip(folder, name, fps=24, seconds=2.0, events=(0.5, 1.2), wav=True, track=False):
    (folder / "video").mkdir(parents=True, exist_ok=True)
    frames = jump_frames(events, int(round(seconds * fps)), fps)
    audio = click_track(events, seconds, 16000)
    write_video(folder / "video" / f"{name}.mp4", frames, fps, audio=audio if track else None, sample_rate=16000)
    if wav:
        (folder / "audio").mkdir(exist_ok=True)
        write_wav(folder / "audio" / f"{name}.wav", audio, 16000)


def _table(path, rows, header=True):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(["ytid", "start_time", "class", "set"])
        w.writerows(rows)


def test_vggsound_layout_headerless_csv_names_and_exclusions(tmp_path):
    for name in ("abcdefghijk_10000_20000", "zyxwvutsrqp_0_10000", "a_b-cdefghi_5000_15000", "excluded000_0_10"):
        _clip(tmp_path, name)
    _table(tmp_path / "vggsound.csv", [["abcdefghijk", 10, "dog barking", "train"],
                                       ["zyxwvutsrqp", 0, "playing drums", "test"],
                                       ["a_b-cdefghi", 5, "cat purring", "train"],
                                       ["excluded000", 0, "dog barking", "train"]], header=False)
    with open(tmp_path / "unmatch.pkl", "wb") as f:
        pickle.dump(["excluded000"], f)
    clips = index_dataset(tmp_path, "vggsound", "train", exclude_ids=read_id_list(tmp_path / "unmatch.pkl"))
    assert [c.clip_id for c in clips] == ["a_b-cdefghi_5000_15000", "abcdefghijk_10000_20000"]
    assert {c.label for c in clips} == {"dog barking", "cat purring"}
    assert [c.clip_id for c in index_dataset(tmp_path, "vggsound", "test")] == ["zyxwvutsrqp_0_10000"]
    assert len(index_dataset(tmp_path, "vggsound", "train", classes=["cat purring"])) == 1


def test_filter_list_unpickling_is_restricted(tmp_path):
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump(torch.zeros(1), f)  # anything but plain strings is refused
    with pytest.raises(pickle.UnpicklingError):
        read_id_list(tmp_path / "evil.pkl")
    (tmp_path / "ids.txt").write_text("aaa\nbbb\n")
    assert read_id_list(tmp_path / "ids.txt") == {"aaa", "bbb"}


def test_landscape_and_drum_layouts_and_a_corrupt_item(tmp_path):
    land, drum = tmp_path / "landscape", tmp_path / "drum"
    _clip(land, "wind0000001_0_10")
    _clip(land, "rain0000001_0_10")
    (land / "video" / "broken00001_0_10.mp4").write_bytes(b"\x00" * 64)
    _table(land / "landscape.csv", [["wind0000001", 0, "wind noise", "train"], ["rain0000001", 10, "raining", "train"],
                                    ["broken00001", 0, "thunder", "train"]])
    _clip(drum, "578", wav=False, track=True)  # audio from the mp4's own track
    _table(drum / "audioset-drum.csv", [["578", 0, "drum kit", "train"]])
    (drum / "video" / "578.txt").write_text("a drummer <temp> <class>")

    clips = index_dataset(land, "landscape", "train")
    assert [c.clip_id for c in clips] == ["broken00001_0_10", "rain0000001_0_10", "wind0000001_0_10"]
    ds = AudioVideoClips(clips, num_frames=8, height=32, width=48, random_start=False)
    items = [ds[i] for i in range(3)]
    assert "error" in items[0] and "broken00001_0_10.mp4" in items[0]["error"]
    batch = collate(items)
    assert batch["skipped"][0][0] == "broken00001_0_10" and batch["pixel_values"].shape == (2, 8, 3, 32, 48)
    assert batch["pixel_values"].min() >= -1 and batch["pixel_values"].max() <= 1

    (drum_clip,) = index_dataset(drum, "audioset_drum", "train")
    assert drum_clip.audio is None and drum_clip.caption == "a drummer <temp> <class>"
    item = AudioVideoClips([drum_clip], 8, 32, 32)[0]
    assert item["prompt"] == "a drummer <temp> <class>" and item["audio"].shape == (round(8 / 24 * 16000),)


def test_too_short_clip_is_an_error_not_a_replacement(tmp_path):
    _clip(tmp_path, "short000000", seconds=0.25)
    _table(tmp_path / "landscape.csv", [["short000000", 0, "x", "train"]])
    (clip,) = index_dataset(tmp_path, "landscape", "train")
    item = AudioVideoClips([clip], num_frames=24, height=32, width=32)[0]
    assert "error" in item and "needs 24" in item["error"]
    assert collate([item]) == {"skipped": [("short000000", item["error"])]}


@pytest.mark.parametrize("fps", [24.0, 25.0, 29.97])
def test_audio_span_matches_the_frames(tmp_path, fps):
    """A click at frame e lands, in the item's audio, at (e - start) / fps seconds."""
    e = 30
    _clip(tmp_path, "clip0000000", fps=fps, seconds=3.0, events=(e / fps,))
    _table(tmp_path / "landscape.csv", [["clip0000000", 0, "x", "train"]])
    clips = index_dataset(tmp_path, "landscape", "train")
    for epoch in range(3):
        ds = AudioVideoClips(clips, num_frames=24, height=32, width=32, random_start=True, seed=epoch)
        item = ds[0]
        start = item["start_frame"]
        assert item["fps"] == pytest.approx(fps, abs=1e-3)
        assert item["audio"].shape == (round(24 / fps * 16000),)
        if start <= e < start + 24:
            onset = int(np.flatnonzero(np.abs(item["audio"].numpy()) > 0.05)[0])
            assert onset == pytest.approx((e - start) / fps * 16000, abs=2)
            # and the jump is between frames e-1 and e of the item: the only change of picture
            diffs = (item["pixel_values"][1:] - item["pixel_values"][:-1]).abs().flatten(1).mean(1)
            assert int(diffs.argmax()) + 1 == e - start


def test_random_starts_are_reproducible(tmp_path):
    make_synthetic(tmp_path, num_clips=3, seed=1, duration_s=2.0, size=32)
    clips = index_dataset(tmp_path, "synthetic", None)
    a = AudioVideoClips(clips, 8, 32, 32, seed=5)
    b = AudioVideoClips(clips, 8, 32, 32, seed=5)
    assert [a[i]["start_frame"] for i in range(3)] == [b[i]["start_frame"] for i in range(3)]
    b.epoch = 1
    assert [a[i]["start_frame"] for i in range(3)] != [b[i]["start_frame"] for i in range(3)]


def test_synthetic_dataset_is_deterministic_and_aligned(tmp_path):
    from avalign import score_file

    one = make_synthetic(tmp_path / "a", num_clips=3, seed=2, duration_s=2.0, size=64)
    two = make_synthetic(tmp_path / "b", num_clips=3, seed=2, duration_s=2.0, size=64)
    assert one == two
    assert (tmp_path / "a" / "audio" / "syn00000000.wav").read_bytes() == \
           (tmp_path / "b" / "audio" / "syn00000000.wav").read_bytes()
    assert read_split_table(tmp_path / "a" / "synthetic.csv")[0]["class"] == "drum hits"
    for clip in one:  # objects move when sounds happen: the metric's ceiling
        r = score_file(tmp_path / "a" / "video" / f"{clip.clip_id}.mp4", tmp_path / "a" / "audio" / f"{clip.clip_id}.wav")
        assert r.score == 1.0, (clip, r.audio_peaks, r.video_peaks)


def test_only_writes_the_same_bytes_and_splits_as_the_full_set(tmp_path):
    full = make_synthetic(tmp_path / "full", num_clips=5, seed=3, duration_s=1.0, size=32, test_fraction=0.4)
    part = make_synthetic(tmp_path / "part", num_clips=5, seed=3, duration_s=1.0, size=32, test_fraction=0.4,
                          only=[4, 1])
    assert part == [full[1], full[4]] and [c.split for c in part] == ["train", "test"]
    for c in part:
        for sub, ext in (("video", "mp4"), ("audio", "wav")):
            assert (tmp_path / "part" / sub / f"{c.clip_id}.{ext}").read_bytes() == \
                   (tmp_path / "full" / sub / f"{c.clip_id}.{ext}").read_bytes()
    assert sorted(p.name for p in (tmp_path / "part" / "video").iterdir()) == ["syn00000001.mp4", "syn00000004.mp4"]
    with pytest.raises(ValueError, match=r"range\(5\)"):
        make_synthetic(tmp_path / "bad", num_clips=5, only=[5])


def test_a_jolt_is_thrown_in_one_frame_and_returns_to_rest_by_hand():
    """motion="jolt": amplitude x size at the event frame, then exp(-(f - e) / (tau_s fps)); events add."""
    import math

    from tempotokens.data.synthetic import _position

    def pos(f):
        return _position(f, [10, 14], 32, "jolt", fps=12.0, amplitude=0.25, tau_s=0.05)

    assert pos(9) == 0.0 and pos(10) == 8.0
    assert pos(11) == pytest.approx(8.0 * math.exp(-1 / 0.6))
    assert pos(14) == pytest.approx(8.0 * math.exp(-4 / 0.6) + 8.0)
    with pytest.raises(ValueError, match="motion must be one of"):
        _position(3, [1], 32, "wobble")


def test_jolt_clips_are_aligned_at_the_demo_protocol_and_the_default_is_unchanged(tmp_path):
    """One flow peak per event under the demo's protocol (12 fps, 32x32, 2 s); the default motion
    still draws the very same clips."""
    import json

    from avalign import Protocol, score_file

    clips = make_synthetic(tmp_path / "jolt", num_clips=3, seed=2, duration_s=2.0, size=32, motion="jolt")
    meta = json.loads((tmp_path / "jolt" / "events.json").read_text())
    assert {m["motion"] for m in meta.values()} == {"jolt"} and meta[clips[0].clip_id]["amplitude"] == 0.25
    for clip in clips:
        r = score_file(tmp_path / "jolt" / "video" / f"{clip.clip_id}.mp4",
                       tmp_path / "jolt" / "audio" / f"{clip.clip_id}.wav",
                       protocol=Protocol(fps=12, width=32, height=32, duration_s=2.0))
        assert r.score >= 0.6, (clip, r.audio_peaks, r.video_peaks)
    # the default frames, hashed before the motion option existed (the demo's dataset must not move)
    import hashlib

    import numpy as np

    from tempotokens.data.synthetic import render_video

    digests = [hashlib.sha1(render_video(label, [0.5, 1.25], 12.0, 24, 32, np.random.default_rng(0)).tobytes())
               .hexdigest()[:16] for label in ("drum hits", "bouncing ball", "hand claps")]
    assert digests == ["76c5a645f294b820", "fb40c35b441e1eb1", "04892c921de3423d"]


@pytest.mark.slow  # 11 s: the demo's 120 clips, twice, in two fresh processes (fails with the old writer)
def test_two_processes_render_the_demo_dataset_byte_for_byte(tmp_path):
    """The toy's bit-identical rebuild starts here: with swscale's automatic threads (PyAV's default
    before the writer converted on one thread) 2-4 of the 120 mp4 files had other bytes in every
    second rendering (measured 2026-12-02), so every trained weight differed."""
    import subprocess
    import sys

    code = ("import sys; from tempotokens.data.synthetic import DEMO_DATASET, make_synthetic; "
            "make_synthetic(sys.argv[1], **DEMO_DATASET)")
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 2 * 120 + 2
    differ = [str(f) for f in files if (tmp_path / "a" / f).read_bytes() != (tmp_path / "b" / f).read_bytes()]
    assert not differ, differ
