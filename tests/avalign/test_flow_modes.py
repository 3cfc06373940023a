"""Fast flow modes: full-resolution pixels/frame in every mode, recorded with every score."""

import cv2
import numpy as np
import pytest

from avalign import Protocol, score_file, score_files
from avalign.cli import main
from avalign.core import FLOW_MODES, flow_magnitude, pair_magnitudes


def _shifted_pair(shift: int, size: int = 128) -> list[np.ndarray]:
    """A smooth random texture and the same texture moved right by ``shift`` pixels."""
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.integers(0, 256, (size, size + 32), dtype=np.uint8), (0, 0), 2.0)
    return [np.ascontiguousarray(big[:, 16:16 + size]), np.ascontiguousarray(big[:, 16 - shift:16 - shift + size])]


@pytest.mark.parametrize("mode", FLOW_MODES)
def test_every_mode_measures_full_resolution_pixels(mode):
    # the whole frame moves 4 px: every mode must read about 4 px/frame (the border pixels read less)
    (m,) = pair_magnitudes(_shifted_pair(4), mode=mode)
    assert 3.0 < m < 4.6, (mode, m)
    (still,) = pair_magnitudes(_shifted_pair(0), mode=mode)
    assert still < 0.05


def test_downscaled_modes_by_hand():
    a, b = _shifted_pair(4)
    half = [cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in (a, b)]
    assert pair_magnitudes([a, b], mode="farneback-half")[0] == pytest.approx(flow_magnitude(*half) * 2.0, rel=1e-12)
    quarter = [cv2.resize(f, (32, 32), interpolation=cv2.INTER_AREA) for f in (a, b)]
    assert pair_magnitudes([a, b], mode="farneback-quarter")[0] == pytest.approx(flow_magnitude(*quarter) * 4.0,
                                                                                  rel=1e-12)
    assert pair_magnitudes([a, b])[0] == flow_magnitude(a, b)  # the exact mode is the reference's call
    frames = [a, b, a, b, a]
    whole = pair_magnitudes(frames, mode="dis-fast")
    assert np.array_equal(np.concatenate([pair_magnitudes(frames, 0, 2, "dis-fast"),
                                          pair_magnitudes(frames, 2, 4, "dis-fast")]), whole)  # chunks concatenate


def test_mode_is_recorded_and_parallel_equals_serial(make_clip, tmp_path):
    mp4 = make_clip("f", [0.5, 1.5], [0.5, 1.5], fps=10, duration_s=2.5)
    protocol = Protocol(flow="dis-fast")
    serial = score_file(mp4, protocol=protocol)
    (parallel,) = list(score_files([mp4], protocol=protocol, workers=2, chunk_pairs=4))
    assert serial.flow_trajectory == parallel.flow_trajectory and serial.score == parallel.score
    assert serial.to_record()["protocol"]["flow"] == "dis-fast" and "flow dis-fast" in protocol.label
    exact = score_file(mp4)
    assert exact.flow_trajectory != serial.flow_trajectory and exact.protocol.flow == "farneback"
    assert main(["score", str(mp4), "--flow", "farneback-quarter", "--out", str(tmp_path / "r.jsonl")]) == 0
    assert "farneback-quarter" in (tmp_path / "r.jsonl").read_text()
    with pytest.raises(ValueError, match="unknown flow mode"):
        Protocol(flow="lucas-kanade")
