"""The Python snippets of the docs run, with their text taken from the pages.

Each ``python`` block runs as written (``__name__ == "__main__"``) in a scratch folder that holds
files under the names the snippet uses: golden clips for ``clip.mp4``, ``a.mp4``, ``b.mp4`` and
their audio, the tiny model's files for the published checkpoints (``zeroscope_v2_576w/``,
``BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt``, ``models/vggsound/learned_embeds.pth``). The
in-memory inputs a snippet only names (``frames``, ``wav``, ``videos``, ``waveforms``) are given. On a
machine without CUDA, ``.to("cuda", torch.float16)`` runs as ``.to("cpu", torch.float32)``, and the
tiny model generates 64x64 frames where the snippet asks the real one for 384x384. The
snippet's own checks are its comments; these tests add what each block must have produced.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden" / "clips"


def python_blocks(page: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (ROOT / "docs" / page).read_text(), flags=re.S | re.M)


def test_every_page_with_python_is_covered():
    pages = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")
                   if "```python" in p.read_text())
    assert pages == ["concepts/protocol.md", "how-to/generate.md", "how-to/score.md"]


@pytest.fixture
def clips_here(tmp_path, monkeypatch):
    """clip.mp4 (+ clip.wav), other.wav, a.mp4 (+ a.wav), b.mp4 and b_audio.flac, from golden clips."""
    import soundfile as sf

    sync = GOLDEN / "c01_sync_bounce_24fps_256x256_4s"
    for name in ("clip", "a", "b"):
        shutil.copy(f"{sync}.mp4", tmp_path / f"{name}.mp4")
    shutil.copy(f"{sync}.wav", tmp_path / "clip.wav")
    shutil.copy(f"{sync}.wav", tmp_path / "a.wav")
    shutil.copy(GOLDEN / "c02_offbeat_bounce_24fps_256x256_4s.wav", tmp_path / "other.wav")
    y, sr = sf.read(f"{sync}.wav")
    sf.write(tmp_path / "b_audio.flac", y, sr)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _exec(code: str, names: dict | None = None) -> dict:
    scope = {"__name__": "__main__", **(names or {})}
    exec(compile(code, "<docs snippet>", "exec"), scope)
    return scope


@pytest.mark.timeout(300)
def test_the_scoring_snippets_run(clips_here):
    from avalign import Protocol, score_file

    rng = np.random.default_rng(0)
    given = {"frames": rng.integers(0, 255, (24, 32, 32, 3), dtype=np.uint8),
             "wav": rng.standard_normal(32000).astype(np.float32) * 0.1,
             "videos": rng.integers(0, 255, (2, 24, 32, 32, 3), dtype=np.uint8),
             "waveforms": rng.standard_normal((2, 32000)).astype(np.float32) * 0.1}
    (score_block,) = python_blocks("how-to/score.md")
    scope = _exec(score_block, given)
    # the last score_file call of the block: the clip conformed to 12 fps, 256x256 first
    got, want = scope["r"].to_record(), score_file("clip.mp4", protocol=Protocol(fps=12, width=256, height=256)).to_record()
    assert {**got, "seconds": None} == {**want, "seconds": None} and got["protocol"]["fps"] == 12
    assert scope["metric"].summary().n == 2
    (protocol_block,) = python_blocks("concepts/protocol.md")
    _exec(protocol_block)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_generation_snippets_run(tmp_path, monkeypatch, tiny_dir):
    """With the tiny model's files under the published names (its sizes, not the published ones)."""
    import soundfile as sf
    import torch

    from tempotokens.tiny import ADAPTOR_CHECKPOINT, BEATS_CHECKPOINT

    shutil.copytree(tiny_dir, tmp_path / "zeroscope_v2_576w")
    shutil.copy(tiny_dir / BEATS_CHECKPOINT, tmp_path / "BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt")
    (tmp_path / "models" / "vggsound").mkdir(parents=True)
    shutil.copy(tiny_dir / ADAPTOR_CHECKPOINT, tmp_path / "models" / "vggsound" / "learned_embeds.pth")
    y, sr = sf.read(GOLDEN / "c01_sync_bounce_24fps_256x256_4s.wav")
    for name in ("dog", "a", "b"):
        sf.write(tmp_path / f"{name}.wav", y, sr)
    monkeypatch.chdir(tmp_path)
    tokens_block, pipe_block = python_blocks("how-to/generate.md")
    scope = _exec(tokens_block)
    assert scope["tokens"].temporal.shape[:2] == (1, 24) and (tmp_path / "my_adaptor" / "config.json").is_file()
    if not torch.cuda.is_available():
        pipe_block = pipe_block.replace('.to("cuda", torch.float16)', '.to("cpu", torch.float32)')
    pipe_block = pipe_block.replace("height=384, width=384", "height=64, width=64")  # the tiny model, on a CPU
    scope = _exec(pipe_block)
    from avalign.io import probe_video

    fps, n = probe_video(tmp_path / "dog.mp4")
    assert (fps, n) == (12.0, 24) and (tmp_path / "dog.wav").is_file()
    assert (tmp_path / "my_model" / "model_index.json").is_file()
