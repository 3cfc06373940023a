"""The accumulating metric equals the functional scorer, whatever the input layout."""

import numpy as np
import pytest

from avalign import AVAlignMetric, score_arrays
from tests.fixtures.media import click_track, jump_frames


def _batch():
    fps, sr = 10, 16000
    videos = np.stack([jump_frames([0.5, 1.5], 25, fps), jump_frames([0.8], 25, fps, seed=2)])
    audio = np.stack([click_track([0.5, 1.5], 2.5, sr), click_track([1.2, 2.0], 2.5, sr)])
    return videos, audio, fps, sr


def test_update_compute_reset():
    videos, audio, fps, sr = _batch()
    metric = AVAlignMetric(fps=fps, sample_rate=sr)
    batch = metric.update(videos, audio)
    expected = [score_arrays(v, fps, a, sr).score for v, a in zip(videos, audio)]
    assert [r.score for r in batch] == expected
    assert expected[0] == 1.0 and expected[1] == 0.0
    assert metric.compute() == pytest.approx(np.mean(expected))
    metric.update(videos[:1], audio[:1])
    assert metric.summary().n == 3
    metric.reset()
    assert metric.results == [] and np.isnan(metric.compute())


def test_channel_first_float_input_equals_uint8():
    videos, audio, fps, sr = _batch()
    as_float = videos.transpose(0, 1, 4, 2, 3).astype(np.float32) / 255.0  # (B, T, 3, H, W) in [0, 1]
    a = AVAlignMetric(fps=fps, sample_rate=sr)
    b = AVAlignMetric(fps=fps, sample_rate=sr)
    a.update(videos, audio)
    b.update(as_float, audio)
    assert [r.to_record() | {"seconds": 0, "video": ""} for r in a.results] == \
           [r.to_record() | {"seconds": 0, "video": ""} for r in b.results]


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    videos, audio, fps, sr = _batch()
    metric = AVAlignMetric(fps=fps, sample_rate=sr)
    metric.update(torch.from_numpy(videos), torch.from_numpy(audio).to(torch.bfloat16))
    assert metric.compute() == pytest.approx(0.5)


def test_batch_size_mismatch():
    videos, audio, fps, sr = _batch()
    with pytest.raises(ValueError, match="2 videos but 1 waveforms"):
        AVAlignMetric(fps=fps, sample_rate=sr).update(videos, audio[:1])


def test_metric_rejects_floats_outside_0_1():
    metric = AVAlignMetric(fps=8, sample_rate=16000)
    with pytest.raises(ValueError, match="finite"):
        metric.update(np.full((1, 4, 16, 16, 3), np.nan, np.float32), np.zeros((1, 16000), np.float32))
    video = np.full((1, 4, 16, 16, 3), -0.5, np.float32)  # a [-1, 1] output passed as is
    with pytest.raises(ValueError, match=r"float frames must be in \[0, 1\]"):
        metric.update(video, np.zeros((1, 16000), np.float32))
    with pytest.raises(ValueError, match="uint8 or float"):
        metric.update(np.zeros((1, 4, 16, 16, 3), np.int32), np.zeros((1, 16000), np.float32))
