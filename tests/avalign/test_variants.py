"""Named variants on hand-computed cases and on real clips."""

import numpy as np
import pytest

from avalign import VARIANTS, get_variant, score_file
from avalign.score import AudioAnalysis, assemble


def _assemble(variant, pair_mags, audio_peaks, fps=10.0):
    audio = AudioAnalysis(sr=22050, envelope=np.zeros(4), peaks=np.asarray(audio_peaks, dtype=float))
    return assemble("x.mp4", None, get_variant(variant), fps, len(pair_mags) + 1, np.asarray(pair_mags, dtype=float), audio)


# flow pairs -> trajectory [1, 1, 0, 0.05, 0, 0.5, 0, 0]: candidate peaks at frames 3 (0.05) and 5 (0.5)
PAIRS = [1.0, 0.0, 0.05, 0.0, 0.5, 0.0, 0.0]


def test_2025_one_to_one_and_threshold():
    # video peaks: only frame 5 (0.5 s); audio 0.48 and 0.52 both fall in its window
    r = _assemble("tempotokens-2025", PAIRS, [0.3, 0.48, 0.52])
    assert r.video_peaks == (0.5,)
    assert r.matches == ((0.48, 0.5),)
    assert r.score == pytest.approx(1 / (3 + 1 - 1))


def test_2023_many_to_one_and_no_threshold():
    r = _assemble("tempotokens-2023", PAIRS, [0.3, 0.48, 0.52])
    assert r.video_peaks == (0.3, 0.5)
    assert r.matches == ((0.3, 0.3), (0.48, 0.5), (0.52, 0.5))
    assert r.score == pytest.approx(3 / (3 + 2 - 3))  # 1.5: can exceed 1
    assert get_variant("tempotokens-2023").can_exceed_one


def test_javisbench_epsilon():
    r = _assemble("javisbench", PAIRS, [0.3, 0.48])
    assert r.score == pytest.approx(2 / (2 + 2 - 2 + 1e-6), rel=0, abs=1e-15)
    assert r.score < 1.0


def test_all_variants_undefined_when_both_streams_empty():
    for name in VARIANTS:
        r = _assemble(name, [0.0, 0.0, 0.0], [])
        assert r.status == "undefined" and r.score is None


def test_unknown_variant_message():
    with pytest.raises(ValueError, match="choose one of"):
        get_variant("nope")


def test_javisbench_keeps_native_sample_rate(golden_clips):
    # c03's wav is at 16 kHz: the default resamples to 22,050 Hz, javisbench keeps 16 kHz
    clip = golden_clips / "c03_sync_burst_8fps_64x64_2s.mp4"
    default, javis = score_file(clip), score_file(clip, variant="javisbench")
    assert default.audio_sr == 22050 and javis.audio_sr == 16000
    hops = np.asarray(javis.audio_peaks) * 16000 / 512
    np.testing.assert_allclose(hops, np.round(hops), atol=1e-9)
    assert javis.variant == "javisbench"


@pytest.mark.slow  # 9 s: both variants on every golden clip (CI runs it)
def test_2023_finds_at_least_the_matches_of_2025(golden_clips):
    clip = golden_clips / "c10_drums_24fps_512x320_6s.mp4"  # 42 audio peaks, 11 video peaks
    new, old = score_file(clip), score_file(clip, variant="tempotokens-2023")
    assert set(new.video_peaks) <= set(old.video_peaks)
    assert old.n_matches >= new.n_matches
    assert old.audio_peaks == new.audio_peaks
