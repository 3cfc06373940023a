"""AudioToVideoPipeline on the tiny random-weight model."""

import json
import shutil

import numpy as np
import pytest
import torch

from tempotokens import AudioToVideoPipeline
from tests.fixtures.media import click_track

SR = 16000
KW = dict(num_inference_steps=3, num_frames=8, fps=8.0)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def waves():
    return click_track([0.2, 0.6], 1.0, SR), click_track([0.4, 0.9], 1.0, SR, seed=3)


def test_audio_only_text_only_and_both(tiny_pipe, waves):
    audio = tiny_pipe(audio=waves[0], generator=_gen(0), **KW)
    text = tiny_pipe(prompt="a dog", generator=_gen(0), **KW)
    both = tiny_pipe(audio=waves[0], prompt="a dog", generator=_gen(0), **KW)
    for out in (audio, text, both):
        assert out.frames.shape == (1, 8, 32, 32, 3) and out.frames.dtype == np.float32
        assert 0.0 <= out.frames.min() and out.frames.max() <= 1.0
    assert text.audio is None
    assert not np.allclose(audio.frames, text.frames) and not np.allclose(audio.frames, both.frames)
    # the span that conditioned the clip: num_frames / fps = 1 s at the array's rate
    assert audio.audio_sample_rates == [SR] and audio.audio[0].shape == (SR,)
    np.testing.assert_array_equal(audio.audio[0], waves[0])


def _conditional_states(pipe, wave, monkeypatch, reverse: bool = False) -> torch.Tensor:
    """The per-frame states ``(F, L, D)`` the UNet's conditional half is given (first call), with the
    adaptor's per-frame tokens optionally fed in reversed frame order."""
    from dataclasses import replace

    seen, real_forward, real_adaptor = [], pipe.unet.forward, pipe.adaptor.forward

    def spy(sample, t, encoder_hidden_states, cross_attention_kwargs=None, **kw):
        seen.append(cross_attention_kwargs["frame_states"].clone())
        return real_forward(sample, t, encoder_hidden_states=encoder_hidden_states,
                            cross_attention_kwargs=cross_attention_kwargs, **kw)

    def reversed_tokens(*a, **k):
        out = real_adaptor(*a, **k)
        flip = lambda x: x.flip(1)  # noqa: E731  (B, F, D): frames reversed
        return replace(out, temporal=flip(out.temporal), local=tuple(flip(x) for x in out.local))

    with monkeypatch.context() as m:
        m.setattr(pipe.unet, "forward", spy)
        if reverse:
            m.setattr(pipe.adaptor, "forward", reversed_tokens)
        pipe(audio=wave, generator=_gen(0), num_inference_steps=1, num_frames=4, fps=4.0, guidance_scale=5.0)
    return seen[0][4:]  # rows of the unconditional half come first


def test_each_frame_is_conditioned_on_its_own_audio_tokens(tiny_pipe, waves, monkeypatch):
    """Frame f of the UNet gets the tokens of frame f: feeding the adaptor's tokens in reversed frame
    order reverses the frames' states, row for row (a pipeline that shifted, pooled or mixed up the
    frames' tokens fails), and the audio reaches them (another clip's audio gives other states)."""
    states = _conditional_states(tiny_pipe, waves[0], monkeypatch)
    flipped = _conditional_states(tiny_pipe, waves[0], monkeypatch, reverse=True)
    torch.testing.assert_close(flipped, states.flip(0), rtol=0, atol=1e-6)
    assert not torch.allclose(states[0], states[-1], atol=1e-4)  # the frames' tokens are not one and the same
    other = _conditional_states(tiny_pipe, waves[1], monkeypatch)
    assert not torch.allclose(other, states, atol=1e-4)


def test_seeded_determinism(tiny_pipe, waves):
    a = tiny_pipe(audio=waves[0], generator=_gen(1), **KW).frames
    b = tiny_pipe(audio=waves[0], generator=_gen(1), **KW).frames
    c = tiny_pipe(audio=waves[0], generator=_gen(2), **KW).frames
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_batch_of_two_equals_one_by_one(tiny_pipe, waves):
    batch = tiny_pipe(audio=list(waves), generator=[_gen(4), _gen(5)], **KW).frames
    assert batch.shape[0] == 2
    for i, seed in enumerate((4, 5)):
        alone = tiny_pipe(audio=waves[i], generator=_gen(seed), **KW).frames[0]
        np.testing.assert_allclose(batch[i], alone, atol=1e-4)


@pytest.mark.parametrize("frames", [13, 24])
def test_any_frame_count(tiny_pipe, waves, frames):
    out = tiny_pipe(audio=waves[0], generator=_gen(0), num_inference_steps=2, num_frames=frames, fps=frames / 1.0,
                    output_type="uint8")
    assert out.frames.shape == (1, frames, 32, 32, 3) and out.frames.dtype == np.uint8


def test_unconditional_branch_has_no_audio(tiny_pipe, waves, monkeypatch):
    seen = []
    real = tiny_pipe.unet.forward

    def spy(sample, t, encoder_hidden_states, cross_attention_kwargs=None, **kw):
        seen.append(cross_attention_kwargs["frame_states"].clone())  # (2 * F, L, D): unconditional rows first
        return real(sample, t, encoder_hidden_states=encoder_hidden_states,
                    cross_attention_kwargs=cross_attention_kwargs, **kw)

    monkeypatch.setattr(tiny_pipe.unet, "forward", spy)
    tiny_pipe(audio=waves[0], generator=_gen(0), num_inference_steps=1, num_frames=4, fps=4.0, guidance_scale=5.0)
    tiny_pipe(audio=waves[1], generator=_gen(0), num_inference_steps=1, num_frames=4, fps=4.0, guidance_scale=5.0)
    a, b = seen[0][:4], seen[1][:4]
    assert torch.equal(a, b)  # the unconditional half does not depend on the audio
    from tempotokens.conditioning import encode_text, tokenize

    empty = encode_text(tiny_pipe.text_encoder, tokenize(tiny_pipe.tokenizer, [""]))
    torch.testing.assert_close(a, empty.repeat(4, 1, 1))
    assert seen[0].shape == (8, 77, 32)  # O(F): one 77-token sequence per frame, not F of them
    assert not torch.equal(seen[0][4:], seen[1][4:])


def test_input_errors(tiny_pipe, waves):
    with pytest.raises(ValueError, match="audio, a prompt"):
        tiny_pipe(**KW)
    with pytest.raises(ValueError, match="placeholders but no audio"):
        tiny_pipe(prompt="<temp> dog", **KW)
    with pytest.raises(ValueError, match="multiples"):
        tiny_pipe(prompt="dog", height=30, **KW)


def test_save_load_round_trip_and_authors_formats(tiny_dir, waves, tmp_path):
    pipe = AudioToVideoPipeline.from_pretrained(tiny_dir)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(audio=waves[0], generator=_gen(0), **KW).frames

    pipe.save_pretrained(tmp_path / "again")
    again = AudioToVideoPipeline.from_pretrained(tmp_path / "again")
    again.set_progress_bar_config(disable=True)
    assert np.array_equal(again(audio=waves[0], generator=_gen(0), **KW).frames, ref)

    # a zeroscope-style folder (no beats/ or adaptor/) with the official BEATs .pt and the
    # authors' learned_embeds.pth
    zs = tmp_path / "zeroscope"
    shutil.copytree(tiny_dir, zs)
    for name in ("beats", "adaptor"):
        shutil.rmtree(zs / name)
    index = json.loads((zs / "model_index.json").read_text())
    for name in ("beats", "adaptor"):
        index.pop(name)
    (zs / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="no beats/ folder"):
        AudioToVideoPipeline.from_pretrained(zs)
    loaded = AudioToVideoPipeline.from_pretrained(zs, beats=tiny_dir / "beats_tiny.pt",
                                                  adaptor=tiny_dir / "learned_embeds.pth")
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_allclose(loaded(audio=waves[0], generator=_gen(0), **KW).frames, ref, atol=1e-6)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(ValueError, match="model_index.json"):
        AudioToVideoPipeline.from_pretrained(tmp_path)


def test_write_clip_is_scored_directly(tiny_pipe, tmp_path):
    from avalign import score_file
    from avalign.io import read_audio, write_clip

    wave = click_track([0.25, 0.75], 1.0, SR)
    out = tiny_pipe(audio=wave, generator=_gen(0), output_type="uint8", **KW)
    mp4, wav = write_clip(tmp_path / "clip.mp4", out.frames[0], 8.0, out.audio[0], out.audio_sample_rates[0])
    assert mp4.exists() and wav.exists() and not list(tmp_path.glob("*.partial.*"))
    track, sr = read_audio(mp4)  # the muxed track
    assert sr == SR and abs(len(track) - SR) < 2048
    result = score_file(mp4)
    assert result.status in ("ok", "undefined") and result.audio == str(wav)
    assert result.n_frames == 8 and result.fps == 8.0
    np.testing.assert_allclose(result.audio_peaks, [0.25, 0.75], atol=0.05)


def test_audio_encoders_run_once_per_clip_not_per_step(tiny_pipe, waves, monkeypatch):
    calls = {"beats": 0, "adaptor": 0, "unet": 0}
    for name in calls:
        module = getattr(tiny_pipe, name)
        real = module.forward

        def counted(*a, _real=real, _name=name, **k):
            calls[_name] += 1
            return _real(*a, **k)

        monkeypatch.setattr(module, "forward", counted)
    tiny_pipe(audio=waves[0], generator=_gen(0), num_inference_steps=4, num_frames=4, fps=4.0)
    assert calls == {"beats": 1, "adaptor": 1, "unet": 4}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_on_gpu(tiny_dir, waves, dtype):
    pipe = AudioToVideoPipeline.from_pretrained(tiny_dir).to("cuda", dtype)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(audio=waves[0], generator=torch.Generator().manual_seed(0), **KW)
    assert out.frames.shape == (1, 8, 32, 32, 3) and np.isfinite(out.frames).all()


def test_negative_prompt_list_must_match_the_batch(tiny_pipe):
    audio = np.zeros((2, 16000), np.float32)
    with pytest.raises(ValueError, match="3 negative prompts for a batch of 2"):
        tiny_pipe(audio=audio, negative_prompt=["a", "b", "c"], num_frames=2, fps=2, num_inference_steps=1)


def test_audio_path_stays_float32_in_half_precision(tiny_dir):
    from tempotokens import AudioToVideoPipeline

    pipe = AudioToVideoPipeline.from_pretrained(tiny_dir).to(torch.bfloat16)
    assert pipe.unet.dtype == pipe.text_encoder.dtype == torch.bfloat16
    assert pipe.beats.dtype == pipe.adaptor.dtype == torch.float32  # as the authors and our trainer run them
    loaded = AudioToVideoPipeline.from_pretrained(tiny_dir, torch_dtype=torch.bfloat16)
    assert loaded.unet.dtype == torch.bfloat16 and loaded.beats.dtype == loaded.adaptor.dtype == torch.float32


def test_default_size_is_the_folders_else_the_authors(tiny_pipe, tiny_dir, tmp_path):
    """A call without a size generates at the folder's ``default_size``; a folder without one (a
    zeroscope/ModelScope folder) at the paper's 384x384."""
    assert tiny_pipe.config.default_size == [32, 32]
    out = tiny_pipe(prompt="a dog", generator=_gen(0), num_inference_steps=1, num_frames=2, fps=2.0)
    assert out.frames.shape[2:4] == (32, 32)
    bare = tmp_path / "bare"
    shutil.copytree(tiny_dir, bare)
    index = json.loads((bare / "model_index.json").read_text())
    index.pop("default_size", None)
    (bare / "model_index.json").write_text(json.dumps(index))
    assert AudioToVideoPipeline.from_pretrained(bare).default_frame_size == (384, 384)  # Yariv et al., Sec. 4
