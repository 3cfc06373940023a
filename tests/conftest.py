"""Shared fixtures: the golden data and a maker of synthetic clips with known events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.media import click_track, jump_frames

DATA = Path(__file__).parent / "data"
GOLDEN_DIR = DATA / "golden"


def pytest_collection_modifyitems(config, items):
    """Skip GPU tests without CUDA."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def golden() -> dict:
    """The authors' scorer's outputs on the 12 golden clips, keyed by file stem."""
    data = json.loads((GOLDEN_DIR / "avalign_golden.json").read_text())
    return {c["file"]: c for c in data["clips"]}


@pytest.fixture(scope="session")
def golden_clips() -> Path:
    return GOLDEN_DIR / "clips"


@pytest.fixture
def make_clip(tmp_path):
    """Factory: write a synthetic clip and return its mp4 path.

    ``make_clip(name, video_events, audio_events, fps=..., duration_s=..., sr=..., wav=True,
    track=False)`` writes ``name.mp4`` (with an AAC track of the audio when ``track``) and,
    when ``wav``, the sibling ``name.wav``.
    """
    from avalign.io import write_video, write_wav

    def make(name, video_events, audio_events, fps=10, duration_s=3.0, sr=16000, wav=True, track=False,
             folder=None, track_events=None):
        folder = Path(folder or tmp_path)
        n_frames = int(round(duration_s * fps))
        frames = jump_frames(video_events, n_frames, fps)
        audio = click_track(audio_events, duration_s, sr)
        track_audio = click_track(track_events, duration_s, sr, seed=1) if track_events is not None else audio
        mp4 = folder / f"{name}.mp4"
        write_video(mp4, frames, fps, audio=track_audio if track else None, sample_rate=sr)
        if wav:
            write_wav(folder / f"{name}.wav", audio, sr)
        return mp4

    return make


@pytest.fixture(scope="session")
def tiny_pipe():
    from tempotokens.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from tempotokens.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny") / "model", seed=0)
