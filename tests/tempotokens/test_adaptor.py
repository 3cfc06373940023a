"""The audio-token adaptor: conformance, pooling and windows, any length, dropout, save/load."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from tempotokens import AudioTokenAdaptor
from tempotokens.adaptor import LOCAL_RADII

CONF = Path(__file__).resolve().parents[1] / "data" / "conformance"
TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def expected():
    return load_file(CONF / "expected.safetensors")


@pytest.fixture(scope="module")
def adaptor():
    return AudioTokenAdaptor.from_reference_checkpoint(CONF / "mapper_tiny.pth")


def _check_conformance(model, expected):
    with torch.no_grad():
        out = model(expected["beats_layers_cat"])
    torch.testing.assert_close(out.temporal, expected["mapper_temporal"], **TOL)
    for r, local in enumerate(out.local, start=1):
        torch.testing.assert_close(local, expected[f"mapper_local_{r}"], **TOL)
    torch.testing.assert_close(out.class_token, expected["mapper_class_token"], **TOL)


def test_conformance(adaptor, expected):
    assert adaptor.config.input_size == 144 and adaptor.config.hidden_size == 40 and adaptor.config.output_size == 32
    _check_conformance(adaptor, expected)


def test_reference_checkpoint_to_ours_and_back(adaptor, expected, tmp_path):
    adaptor.save_pretrained(tmp_path / "adaptor")
    assert {p.name for p in (tmp_path / "adaptor").iterdir()} >= {"config.json"}
    assert any(p.suffix == ".safetensors" for p in (tmp_path / "adaptor").iterdir())
    again = AudioTokenAdaptor.from_pretrained(tmp_path / "adaptor").eval()
    _check_conformance(again, expected)


def test_ddp_prefixed_state_dict(tmp_path, expected):
    state = torch.load(CONF / "mapper_tiny.pth", weights_only=True)
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ddp.pth")
    _check_conformance(AudioTokenAdaptor.from_reference_checkpoint(tmp_path / "ddp.pth"), expected)


def test_not_an_adaptor(tmp_path):
    torch.save({"x": torch.zeros(1)}, tmp_path / "x.pth")
    with pytest.raises(ValueError, match="not an adaptor"):
        AudioTokenAdaptor.from_reference_checkpoint(tmp_path / "x.pth")


def _reference_local(T, r):
    """The reference's loop, written from the spec: mean of T[max(f-r,0) : min(f+r,F)]."""
    F_ = T.shape[1]
    return torch.stack([T[:, max(f - r, 0): min(f + r, F_)].mean(1) for f in range(F_)], dim=1)


def _tiny(**kw):
    torch.manual_seed(0)
    return AudioTokenAdaptor(input_size=12, hidden_size=10, output_size=8, **kw).eval()


@pytest.mark.parametrize("frames", [24, 16, 7, 30, 1])
def test_local_windows_equal_the_reference_loop(frames):
    model = _tiny()
    with torch.no_grad():
        out = model(torch.randn(2, 48, 12), num_frames=frames)
    assert out.temporal.shape == (2, frames, 8) and out.class_token.shape == (2, 8)
    for r, local in zip(LOCAL_RADII, out.local):
        torch.testing.assert_close(local, _reference_local(out.temporal, r), rtol=1e-6, atol=1e-6)


def test_reference_pooling_equals_group_mean_when_divisible():
    model = _tiny()
    x = torch.randn(2, 96, 12)
    with torch.no_grad():
        h = model.fc3(F.gelu(model.fc2(F.gelu(model.fc1(x)))))
        expected = model.fc4(F.gelu(h.view(2, 24, 4, -1).mean(2)))
        out = model(x)
    torch.testing.assert_close(out.temporal, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("tokens, frames", [(56, 24), (496, 24), (48, 13), (8, 24)])
def test_any_token_count_and_frame_count(tokens, frames):
    model = _tiny()
    x = torch.randn(1, tokens, 12)
    with torch.no_grad():
        out = model(x, num_frames=frames)
        h = model.fc3(F.gelu(model.fc2(F.gelu(model.fc1(x)))))
        pooled = F.adaptive_avg_pool1d(h.transpose(1, 2), frames).transpose(1, 2)  # independent pooling
    torch.testing.assert_close(out.temporal, model.fc4(F.gelu(pooled)), rtol=1e-6, atol=1e-6)


def test_temporal_pooling_averages_frequency_then_time():
    model = _tiny(token_pooling="temporal")
    x = torch.randn(2, 96, 12)  # 12 time steps x 8 frequency patches
    with torch.no_grad():
        out = model(x, num_frames=6)
        h = model.fc3(F.gelu(model.fc2(F.gelu(model.fc1(x)))))
        per_time = h.view(2, 12, 8, -1).mean(2)
        expected = model.fc4(F.gelu(per_time.view(2, 6, 2, -1).mean(2)))
    torch.testing.assert_close(out.temporal, expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError):
        _tiny(token_pooling="spectral")


def test_padding_mask_equals_one_by_one():
    model = _tiny()
    a, b = torch.randn(1, 96, 12), torch.randn(1, 56, 12)
    batch = torch.cat([a, torch.cat([b, torch.randn(1, 40, 12)], dim=1)])
    mask = torch.zeros(2, 96, dtype=torch.bool)
    mask[1, 56:] = True
    with torch.no_grad():
        out = model(batch, padding_mask=mask)
        for i, x in enumerate((a, b)):
            alone = model(x)
            torch.testing.assert_close(out.temporal[i], alone.temporal[0], rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(out.class_token[i], alone.class_token[0], rtol=1e-6, atol=1e-6)


def test_eval_is_deterministic_and_training_drops_out():
    model = _tiny()
    x = torch.randn(2, 48, 12)
    with torch.no_grad():
        a, b = model(x), model(x)
        assert torch.equal(a.class_token, b.class_token)
        model.train()
        torch.manual_seed(1)
        c = model(x)
        torch.manual_seed(2)
        d = model(x)
    assert torch.equal(c.temporal, a.temporal)  # no dropout before the class token
    assert not torch.equal(c.class_token, d.class_token)  # the unary branch's dropout acts


def test_class_token_is_a_convex_combination():
    model = _tiny()
    x = torch.randn(1, 1, 12).expand(1, 48, 12)  # every token equal -> every frame token equal
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(out.class_token, out.temporal[:, 0], rtol=1e-6, atol=1e-6)


def test_released_size_parameter_count():
    # the released adaptor (9216 -> 2304 -> 1024 with FGA pooling) has 33,106,435 parameters
    assert sum(p.numel() for p in AudioTokenAdaptor().parameters()) == 33_106_435


def test_input_stats_standardize_and_zero_biases_zero(tmp_path):
    """The toy recipe's adaptor preparation, against hand-made statistics."""
    import torch

    from tempotokens.adaptor import AudioTokenAdaptor

    torch.manual_seed(0)
    a = AudioTokenAdaptor(input_size=4, hidden_size=8, output_size=6, num_frames=3, token_pooling="temporal",
                          freq_patches=2)
    layers = torch.randn(2, 50, 4) * torch.tensor([1.0, 2.0, 0.5, 3.0]) + torch.tensor([5.0, -1.0, 0.0, 2.0])
    a.set_input_stats(layers)
    flat = layers.reshape(-1, 4)
    mean = flat.sum(0) / flat.shape[0]
    std = ((flat - mean) ** 2).sum(0).div(flat.shape[0] - 1).sqrt()
    torch.testing.assert_close(a.input_mean, mean)
    torch.testing.assert_close(a.input_std, std)
    a.zero_biases()
    for fc in (a.fc1, a.fc2, a.fc3, a.fc4):
        assert torch.count_nonzero(fc.bias) == 0
    # saved with the weights; a reference checkpoint (no such keys) loads as identity statistics
    state = a.reference_state_dict()
    assert "input_mean" in a.state_dict() and set(a.state_dict()) - set(state) == {"input_mean", "input_std"}
    torch.save(state, tmp_path / "learned_embeds.pth")
    b = AudioTokenAdaptor.from_reference_checkpoint(tmp_path / "learned_embeds.pth", num_frames=3,
                                                    token_pooling="temporal", freq_patches=2)
    assert torch.equal(b.input_mean, torch.zeros(4)) and torch.equal(b.input_std, torch.ones(4))
    assert torch.equal(b.fc1.weight, a.fc1.weight)
