"""BEATs: conformance with the authors' vendored code, padding, save/load."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tempotokens import BEATs
from tempotokens.beats import fbank, num_tokens

CONF = Path(__file__).resolve().parents[1] / "data" / "conformance"
TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def expected():
    return load_file(CONF / "expected.safetensors")


@pytest.fixture(scope="module")
def beats():
    return BEATs.from_checkpoint(CONF / "beats_tiny.pt")


def test_fbank_conformance(expected):
    # the log of low-energy mel bins carries float32 FFT noise of ~1e-5 (a float64 fbank differs
    # from the fixture by 2e-5), hence rtol as well as atol
    torch.testing.assert_close(fbank(expected["waveform"]), expected["fbank"], **TOL)


def test_encoder_conformance(beats, expected):
    with torch.no_grad():
        out = beats(expected["waveform"])
    torch.testing.assert_close(out.last_hidden_state, expected["beats_last"], **TOL)
    torch.testing.assert_close(out.layers, expected["beats_layers_cat"], **TOL)
    torch.testing.assert_close(out.probs, expected["beats_lprobs"], **TOL)
    assert out.padding_mask is None
    # the last layer is the last block of the concatenation
    assert torch.equal(out.layers[..., -out.last_hidden_state.shape[-1]:], out.last_hidden_state)


def test_checkpoint_without_head(expected):
    model = BEATs.from_checkpoint(CONF / "beats_tiny.pt", load_head=False)
    with torch.no_grad():
        out = model(expected["waveform"])
    assert out.probs is None and model.predictor is None
    torch.testing.assert_close(out.layers, expected["beats_layers_cat"], **TOL)


def test_loaded_model_is_in_eval_mode_and_deterministic(beats, expected):
    assert not beats.training
    with torch.no_grad():
        a, b = beats(expected["waveform"]), beats(expected["waveform"])
    assert torch.equal(a.layers, b.layers)


@pytest.mark.parametrize("seconds, tokens", [(1.0, 48), (2.0, 96), (1.5, 72), (1.2, 56), (10.0, 496)])
def test_token_counts_match_the_spec(seconds, tokens):
    assert num_tokens(int(seconds * 16000)) == tokens


def test_token_count_of_outputs(beats):
    for n in (3000, 19200, 24123):
        with torch.no_grad():
            out = beats(torch.randn(1, n) * 0.1)
        assert out.layers.shape[1] == num_tokens(n)


def test_padded_batch_equals_one_by_one(beats):
    torch.manual_seed(0)
    lengths = [32000, 19200, 24123]
    waves = [torch.randn(n) * 0.1 for n in lengths]
    batch = torch.zeros(len(waves), max(lengths))
    mask = torch.ones_like(batch, dtype=torch.bool)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
        mask[i, : len(w)] = False
    with torch.no_grad():
        out = beats(batch, padding_mask=mask)
        for i, w in enumerate(waves):
            alone = beats(w[None])
            n = alone.layers.shape[1]
            assert (~out.padding_mask[i]).sum() == n
            torch.testing.assert_close(out.layers[i, :n], alone.layers[0], **TOL)
            torch.testing.assert_close(out.probs[i], alone.probs[0], **TOL)


def test_save_pretrained_round_trip(beats, expected, tmp_path):
    beats.save_pretrained(tmp_path / "beats")
    assert (tmp_path / "beats" / "config.json").exists()
    again = BEATs.from_pretrained(tmp_path / "beats").eval()
    with torch.no_grad():
        a, b = beats(expected["waveform"]), again(expected["waveform"])
    assert torch.equal(a.layers, b.layers) and torch.equal(a.probs, b.probs)


def test_random_model_from_config_has_the_right_shapes():
    model = BEATs(embed_dim=16, encoder_layers=2, encoder_embed_dim=24, encoder_ffn_embed_dim=32,
                  encoder_attention_heads=2, conv_pos=8, conv_pos_groups=2, predictor_class=5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 16000) * 0.1)
    assert out.last_hidden_state.shape == (2, 48, 24)
    assert out.layers.shape == (2, 48, 48)
    assert out.probs.shape == (2, 5) and ((out.probs > 0) & (out.probs < 1)).all()


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="at least"):
        BEATs(encoder_layers=1, encoder_embed_dim=16, embed_dim=16, encoder_ffn_embed_dim=16,
              encoder_attention_heads=2, conv_pos=4, conv_pos_groups=2)(torch.zeros(1, 1000))
    bogus = tmp_path / "bogus.pt"
    torch.save({"weights": torch.zeros(1)}, bogus)
    with pytest.raises(ValueError, match="not a BEATs checkpoint"):
        BEATs.from_checkpoint(bogus)


def test_official_format_round_trip(beats, expected, tmp_path):
    beats.save_checkpoint(tmp_path / "b.pt")
    ck = torch.load(tmp_path / "b.pt", weights_only=True)
    reference = torch.load(CONF / "beats_tiny.pt", weights_only=True)
    assert set(ck["model"]) == set(reference["model"])  # same keys as the official file
    again = BEATs.from_checkpoint(tmp_path / "b.pt")
    with torch.no_grad():
        assert torch.equal(again(expected["waveform"]).layers, beats(expected["waveform"]).layers)
