"""The functional core on hand-computed cases and synthetic signals."""

import numpy as np
import pytest

from avalign import core
from tests.fixtures.media import click_track


def test_flow_trajectory_duplicates_first_pair():
    assert core.flow_trajectory(np.array([3.0, 1.0, 2.0])).tolist() == [3.0, 3.0, 1.0, 2.0]
    assert core.flow_trajectory(np.array([])).size == 0


@pytest.mark.parametrize(
    "traj, threshold, expected_idx",
    [
        ([0, 1, 0, 2, 0], 0.1, [1, 3]),  # two strict maxima
        ([0, 1, 1, 0, 0], 0.1, []),  # plateaus never peak
        ([0, 0.05, 0, 0.5, 0], 0.1, [3]),  # below the threshold
        ([0, 0.05, 0, 0.5, 0], None, [1, 3]),  # no threshold (2023 semantics)
        ([0, 0.1, 0], 0.1, [1]),  # the threshold is inclusive
        ([5, 0], 0.1, []),  # fewer than 3 values
        ([2, 3, 1], 0.1, [1]),
    ],
)
def test_video_peaks_hand_cases(traj, threshold, expected_idx):
    fps = 8.0
    peaks = core.video_peaks(np.array(traj, dtype=float), fps, threshold)
    np.testing.assert_array_equal(peaks, np.array(expected_idx) / fps)


def test_index_one_never_peaks_after_duplication():
    traj = core.flow_trajectory(np.array([1.0, 0.2, 0.1, 0.5, 0.0]))  # pair 0 is the largest
    assert 1 / 10 not in core.video_peaks(traj, 10.0).tolist()


def test_matching_window_is_strict_and_open():
    fps = 4.0  # window 0.25 s, exactly representable
    assert core.match_peaks([1.25], [1.0], fps) == []
    assert core.match_peaks([0.75], [1.0], fps) == []
    assert core.match_peaks([1.2], [1.0], fps) == [(1.2, 1.0)]


def test_one_to_one_versus_many_to_one():
    audio, video, fps = [1.0, 1.05], [1.0], 10.0
    assert core.match_peaks(audio, video, fps, one_to_one=True) == [(1.0, 1.0)]
    assert core.match_peaks(audio, video, fps, one_to_one=False) == [(1.0, 1.0), (1.05, 1.0)]
    # IoU: 1 / (2 + 1 - 1) = 0.5 one-to-one; 2 / (2 + 1 - 2) = 2.0 many-to-one (exceeds 1)
    assert core.iou(1, 2, 1) == 0.5
    assert core.iou(2, 2, 1) == 2.0


def test_greedy_takes_first_unused_video_peak():
    fps = 10.0  # window 0.1 s
    # a=0.95 could match 0.9 or 1.0; it takes the first (0.9), leaving 1.0 for a=1.04
    assert core.match_peaks([0.95, 1.04], [0.9, 1.0], fps) == [(0.95, 0.9), (1.04, 1.0)]
    # with both audio peaks nearest 1.0, the second one still finds nothing left
    assert core.match_peaks([0.99, 1.01], [1.0], fps) == [(0.99, 1.0)]


def test_iou_edge_cases():
    assert core.iou(0, 0, 0) is None
    assert core.iou(0, 0, 0, eps=1e-6) == 0.0
    assert core.iou(0, 3, 0) == 0.0
    assert core.iou(1, 1, 1, eps=1e-6) == pytest.approx(1 / (1 + 1e-6), abs=0)


def test_audio_peaks_find_clicks():
    sr, events = 22050, [0.5, 1.2, 2.0]
    peaks = core.audio_peaks(click_track(events, 3.0, sr), sr)
    assert len(peaks) == len(events)
    hop = core.ONSET_HOP / sr
    np.testing.assert_allclose(peaks, events, atol=1.5 * hop)
    # times are whole hops
    np.testing.assert_allclose(peaks / hop, np.round(peaks / hop), atol=1e-9)


def test_digital_silence_has_no_onsets():
    assert core.audio_peaks(np.zeros(22050, dtype=np.float32), 22050).size == 0


def test_flow_magnitude_of_a_translation():
    rng = np.random.default_rng(0)
    base = (rng.random((96, 96)) * 255).astype(np.uint8)
    import cv2

    base = cv2.GaussianBlur(base, (7, 7), 2)
    shifted = np.roll(base, 2, axis=1)  # 2 px to the right
    assert core.flow_magnitude(base, base) < 0.01  # Farneback is not exactly 0 on equal frames
    # interior pixels move 2 px; the mean over all pixels is close to it
    assert core.flow_magnitude(base, shifted) == pytest.approx(2.0, rel=0.15)


def test_pair_magnitudes_chunks_concatenate():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, size=(7, 32, 32), dtype=np.uint8)
    whole = core.pair_magnitudes(frames)
    parts = np.concatenate([core.pair_magnitudes(frames, 0, 2), core.pair_magnitudes(frames, 2, 6)])
    assert whole.shape == (6,)
    np.testing.assert_array_equal(whole, parts)


def test_to_gray_orders():
    frame = np.zeros((2, 2, 3), np.uint8)
    frame[..., 0] = 255  # blue in BGR, red in RGB
    assert core.to_gray(frame, "bgr")[0, 0] == 29  # 0.114 * 255
    assert core.to_gray(frame, "rgb")[0, 0] == 76  # 0.299 * 255
