"""DeSync against the reference: av-benchmark's outputs on the conformance clips (tests/data/
conformance/sync, made by running the public code), and the decoding rules checked by hand."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.metrics.avdecode import (DecodeCache, center_crop_offsets, decode_at_rate, fps_filter_indices,
                                         long_side_crops)
from benchmarks.metrics.desync import (LINEAGES, TooShort, mel_segments, score_clip, video_input, waveform_16k,
                                       window_indices)
from benchmarks.metrics.weights import WeightsError, load_synchformer

from tests.fixtures.sync import CLIPS, EXPECTED, REF, SYNC


@pytest.fixture(scope="module")
def model():
    return load_synchformer(SYNC / "weights")[0]


@pytest.fixture(scope="module")
def scored(model):
    return {c: score_clip(model, DecodeCache(SYNC / "clips" / f"{c}.mp4"), REF[c]["audio_length"]) for c in CLIPS}


@pytest.mark.parametrize("clip", CLIPS)
def test_frames_and_mel_are_the_references(clip, sync_tensors):
    _, inter = sync_tensors
    ref = REF[clip]
    frames = decode_at_rate(SYNC / "clips" / f"{clip}.mp4", 25)[: int(25 * ref["audio_length"])]
    assert len(frames) == ref["n_sync_video_frames"]
    x = video_input(frames)
    sel = ref["intermediates"]["sync_selected_frame_indices"]
    u8 = torch.round((x[sel] * 0.5 + 0.5) * 255).to(torch.uint8)  # back to the resized, cropped uint8 frames
    assert torch.equal(u8, inter[f"{clip}/sync_resized_cropped_u8_selected"])
    torch.testing.assert_close(x[0], inter[f"{clip}/sync_video_input_frame0"], atol=1e-6, rtol=0)
    from benchmarks.metrics.avdecode import load_audio

    audio, sr = load_audio(SYNC / "clips" / f"{clip}.mp4")
    wave = waveform_16k(audio, sr, int(16000 * ref["audio_length"]))
    torch.testing.assert_close(wave, inter[f"{clip}/sync_audio_waveform"], atol=1e-6, rtol=0)
    mel = mel_segments(wave)
    assert mel.shape[0] == ref["n_sync_audio_segments"]
    torch.testing.assert_close(mel, inter[f"{clip}/sync_mel_input"][:, 0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("clip", CLIPS)
def test_features_logits_offsets_and_desync_are_the_references(clip, model, sync_tensors, scored):
    exp, inter = sync_tensors
    with torch.inference_mode():  # each branch alone, on the reference's own inputs: localises a mismatch
        a = model.audio_features(inter[f"{clip}/sync_mel_input"][:, 0])
    torch.testing.assert_close(a, exp[f"{clip}/sync_audio_features"], atol=2e-3, rtol=0)
    r = scored[clip]
    torch.testing.assert_close(torch.tensor(r["logits"]), exp[f"{clip}/sync_logits"], atol=1e-3, rtol=0)
    windows = REF[clip]["desync"]["windows"]
    assert r["windows"] == [w["segments"] for w in windows]
    assert [int(np.argmax(lg)) for lg in r["logits"]] == [w["argmax"] for w in windows]
    assert r["offsets_s"] == [w["offset_sec_float32"] for w in windows]  # float32 linspace values, exactly
    assert r["desync"] == EXPECTED["summary"]["per_clip"][clip]["DeSync"]
    # the softmax-expected offset, by hand from the reference's logits
    lg = np.array([w["logits"] for w in windows], dtype=np.float64)
    p = np.exp(lg - lg.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert r["expected_offsets_s"] == pytest.approx(p @ np.linspace(-2, 2, 21), abs=1e-4)


def test_video_features_are_the_references(model, sync_tensors):
    """The MotionFormer branch on every segment of the shorter clip (atol 2e-3)."""
    exp, _ = sync_tensors
    clip = "pub02_orbit"
    frames = decode_at_rate(SYNC / "clips" / f"{clip}.mp4", 25)[: int(25 * REF[clip]["audio_length"])]
    from benchmarks.metrics.desync import video_segments

    with torch.inference_mode():
        v = model.video_features(video_segments(video_input(frames)))
    torch.testing.assert_close(v, exp[f"{clip}/sync_video_features"], atol=2e-3, rtol=0)


def _indexed_clip(path: Path, fps: int, seconds: float) -> None:
    """A clip whose frame k is flat, red 16 (k mod 16) and green 16 (k // 16), so a decoded frame names
    its source (:func:`_source`) through the codec's few levels of error."""
    from avalign.io import write_video

    n = int(round(fps * seconds))
    frames = np.zeros((n, 32, 32, 3), np.uint8)
    for k in range(n):
        frames[k, ..., 0], frames[k, ..., 1] = 16 * (k % 16), 16 * (k // 16)
    write_video(path, frames, fps)


def _source(frame: np.ndarray) -> int:
    r, g = (float(frame[16, 16, c]) for c in (0, 1))
    return int(round(r / 16)) + 16 * int(round(g / 16))


@pytest.mark.parametrize("fps, rate, first", [
    (25, 25, list(range(12))),
    (30, 25, [0, 1, 2, 4, 5, 6, 7, 8, 10, 11, 12]),  # SYNC_METRICS.md: 0, 1, 2, 4, 5, 6, 7, 8, 10, ...
    (24, 25, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11, 12]),  # ... 0..11, 11, 12, ...
    (30, 0.5, [29, 89, 149]),  # slots at about 0.96 s, 2.96 s, 4.96 s, not 0, 2, 4 s
])
def test_the_fps_filter_selects_frames_as_by_hand(fps, rate, first, tmp_path):
    path = tmp_path / f"c{fps}.mp4"
    _indexed_clip(path, fps, 6.0)
    decoded = decode_at_rate(path, rate)
    assert [_source(f) for f in decoded[: len(first)]] == first
    by_hand = fps_filter_indices([k / fps for k in range(int(6 * fps))], rate)
    assert by_hand[: len(first)] == first and len(by_hand) == len(decoded)


def test_crop_offsets_round_half_to_even_versus_ceil_by_hand():
    # DeSync: top/left = Python round((h - 224) / 2); 298 -> 37, 297 -> round(36.5) = 36, 299 -> round(37.5) = 38
    assert center_crop_offsets(224, 298, 224) == (0, 37)
    assert center_crop_offsets(224, 297, 224) == (0, 36)
    assert center_crop_offsets(224, 299, 224) == (0, 38)
    assert center_crop_offsets(297, 224, 224) == (36, 0)
    # IB: three crops along the long side at 0, ceil((long - 224) / 2), long - 224; 297 -> ceil(36.5) = 37
    assert long_side_crops(224, 297, 224) == [(0, 0), (0, 37), (0, 73)]
    assert long_side_crops(398, 224, 224) == [(0, 0), (87, 0), (174, 0)]


def test_desync_mixes_channels_by_their_mean():
    left = np.sin(np.arange(16000) / 10).astype(np.float32)
    stereo = np.stack([left, 0.5 * left])
    torch.testing.assert_close(waveform_16k(stereo, 16000, 16000), torch.from_numpy(0.75 * left), atol=1e-7, rtol=0)


def test_short_clips_error_or_pad_as_javisbench():
    avb = LINEAGES["avbench"]
    with pytest.raises(TooShort, match="fewer than the 14"):
        window_indices(5, avb, "error")
    assert window_indices(5, avb, "pad") == [[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3]]  # by hand
    assert window_indices(14, avb, "error") == [list(range(14))] * 2  # S = 14: the same window twice
    assert window_indices(20, avb, "pad") == [list(range(14)), list(range(6, 20))]
    assert window_indices(20, LINEAGES["synchformer"], "error") == [list(range(3, 17))]


def test_a_two_second_clip_under_each_policy(model, tmp_path):
    from avalign.io import write_video, write_wav

    rng = np.random.default_rng(0)
    write_video(tmp_path / "c.mp4", rng.integers(0, 255, (50, 64, 80, 3), dtype=np.uint8), 25)
    write_wav(tmp_path / "c.wav", rng.standard_normal(32000).astype(np.float32) * 0.1, 16000)
    with pytest.raises(TooShort):
        score_clip(model, DecodeCache(tmp_path / "c.mp4"))
    r = score_clip(model, DecodeCache(tmp_path / "c.mp4"), short="pad")
    assert r["padded"] and r["n_segments"] == 5 and len(r["offsets_s"]) == 1 and r["duration_s"] == 2.0


def test_the_synchformer_lineage_scores_a_5_s_crop_centred_in_the_clip(model, tmp_path):
    """A 10 s clip: the crop starts at (10 - 5) / 2 = 2.5 s, frame 62 at 25 fps and sample 40,000 at
    16 kHz; its 125 frames make 14 segments, one window; the short side goes to 256.  The logits
    are those of that crop, cut by hand."""
    from avalign.io import write_video, write_wav

    from benchmarks.metrics.desync import mel_segments, video_segments

    rng = np.random.default_rng(1)
    write_video(tmp_path / "c.mp4", rng.integers(0, 255, (250, 64, 80, 3), dtype=np.uint8), 25)
    wave = rng.standard_normal(160000).astype(np.float32) * 0.1
    write_wav(tmp_path / "c.wav", wave, 16000)
    r = score_clip(model, DecodeCache(tmp_path / "c.mp4"), lineage="synchformer")
    assert r["n_segments"] == 14 and r["windows"] == [list(range(14))] and r["dtype"] == "float32"
    frames = decode_at_rate(tmp_path / "c.mp4", 25)[62:62 + 125]
    audio = torch.from_numpy(DecodeCache(tmp_path / "c.mp4").audio()[0][0])[40000:40000 + 80000]
    with torch.inference_mode():
        v = model.video_features(video_segments(video_input(frames, 256)))
        a = model.audio_features(mel_segments(audio))
        logits = model.logits(v[None], a[None])
    torch.testing.assert_close(torch.tensor(r["logits"]), logits.float(), atol=1e-5, rtol=0)
    whole = score_clip(model, DecodeCache(tmp_path / "c.mp4"), lineage="avbench")
    assert whole["n_segments"] == 30 and len(whole["offsets_s"]) == 2  # (250 - 16) // 8 + 1


def test_the_original_checkpoint_loads_through_a_restricted_unpickler(tmp_path):
    a = load_synchformer(SYNC / "weights")[0].state_dict()
    b, path = load_synchformer(SYNC / "original")
    assert path.name == "24-01-04T16-39-21.pt" and all(torch.equal(a[k], b.state_dict()[k]) for k in a)
    import os

    evil = tmp_path / "24-01-04T16-39-21.pt"
    torch.save({"model": {}, "hook": os.system}, evil)  # a pickled callable
    with pytest.raises(WeightsError) as exc:
        load_synchformer(tmp_path)
    assert "not a weights-only checkpoint" in str(exc.value) and "\n" not in str(exc.value)


def test_published_sizes_have_the_published_keys_shapes_and_dtypes():
    from benchmarks.metrics.synchformer import Synchformer

    ref = json.loads((SYNC / "full_keys_synchformer.json").read_text())
    with torch.device("meta"):
        ours = Synchformer().state_dict()
    assert {k: (list(v.shape), str(v.dtype)) for k, v in ours.items()} == {
        e["key"]: (e["shape"], f"torch.{e['dtype']}") for e in ref["state_dict"]}
    assert sum(math.prod(v.shape) for v in ours.values()) == ref["n_elements"]


def test_a_wrong_weights_file_is_one_line(tmp_path):
    import shutil

    shutil.copy(SYNC / "weights" / "imagebind_huge.pth", tmp_path / "synchformer_state_dict.pth")
    with pytest.raises(WeightsError) as exc:
        load_synchformer(tmp_path)
    assert "not the DeSync model's layout" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(WeightsError, match="synchformer_state_dict.pth: not found"):
        load_synchformer(tmp_path / "empty")


def test_the_set_desync_is_the_mean_over_windows():
    from benchmarks.metrics.desync import set_desync

    # a two-window clip (|0.2|, |-0.4|) and a one-window padded clip (0.8): (0.2 + 0.4 + 0.8) / 3, not
    # the clips' mean (0.3 + 0.8) / 2 = 0.55
    assert set_desync([{"offsets_s": [0.2, -0.4]}, {"offsets_s": [0.8]}]) == pytest.approx(1.4 / 3)
    assert set_desync([]) is None


@pytest.mark.parametrize("clip", CLIPS)
def test_frames_counted_from_packets_equal_the_decoded_frames(clip, monkeypatch):
    """L's default needs the 25 fps frame count; IB-score alone gets it from the packets, so it does
    not decode the clip at 25 fps only to count."""
    from benchmarks.metrics import avdecode
    from benchmarks.metrics.desync import clip_duration

    path = SYNC / "clips" / f"{clip}.mp4"
    for rate in (25, 0.5):
        assert DecodeCache(path).count_at_rate(rate) == len(decode_at_rate(path, rate))
    decoded = []
    real = avdecode.decode_at_rate
    monkeypatch.setattr(avdecode, "decode_at_rate", lambda v, r: decoded.append(r) or real(v, r))
    cache = DecodeCache(path)
    assert clip_duration(cache) == min(len(decode_at_rate(path, 25)) / 25, cache.audio()[0].shape[1] / cache.audio()[1])
    decoded.clear()
    clip_duration(DecodeCache(path))
    assert decoded == []


def test_without_a_wav_the_audio_is_the_mp4s_own_track(tmp_path):
    """No ``X.wav`` beside ``X.mp4``: the mp4's AAC track is read (a 440 Hz tone, 1 s at 16 kHz, comes
    back as that tone: its spectrum peaks at 440 Hz); a given audio path that is missing is one line."""
    from avalign.io import write_video

    from benchmarks.metrics.avdecode import DecodeError, load_audio

    t = np.arange(16000) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    write_video(tmp_path / "c.mp4", np.zeros((12, 32, 32, 3), np.uint8), 12, tone, 16000)
    audio, sr = load_audio(tmp_path / "c.mp4")
    assert sr == 16000 and audio.shape[0] == 1 and abs(audio.shape[1] - 16000) <= 2048  # AAC's priming frames
    spectrum = np.abs(np.fft.rfft(audio[0][:16000]))
    assert abs(np.argmax(spectrum) * sr / 16000 - 440) <= 1
    with pytest.raises(DecodeError, match="nope.wav: audio file not found"):
        load_audio(tmp_path / "c.mp4", tmp_path / "nope.wav")
