"""Loaders and feature passes: the published signatures and key layouts, and the frames they see."""

import cv2
import numpy as np
import pytest
import torch

from avalign.io import write_video
from benchmarks.metrics import fvd as fvd_module
from benchmarks.metrics import inception as is_module
from benchmarks.metrics import weights as weights_module
from benchmarks.metrics.fvd import fvd_extractor, videogpt_preprocess
from benchmarks.metrics.i3d import InceptionI3d, same_padding
from benchmarks.metrics.inception import is_extractor
from tests.fixtures.weights import tiny_i3d
from benchmarks.metrics.videos import extract
from benchmarks.metrics.weights import WeightsError, load_i3d

MIXED = ["Mixed_3b", "Mixed_3c", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f", "Mixed_5b", "Mixed_5c"]


def published_keys() -> set[str]:
    """The key layout of i3d_pretrained_400.pt, written out by hand from its description."""
    units = ["Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"] + [
        f"{m}.{b}" for m in MIXED for b in ("b0", "b1a", "b1b", "b2a", "b2b", "b3b")]
    keys = {f"{u}.{p}" for u in units for p in ("conv3d.weight", "bn.weight", "bn.bias", "bn.running_mean",
                                                 "bn.running_var")}
    return keys | {"logits.conv3d.weight", "logits.conv3d.bias"}


def test_i3d_has_the_published_key_layout_and_shapes():
    state = InceptionI3d().state_dict()
    assert {k for k in state if not k.endswith("num_batches_tracked")} == published_keys()
    assert len(published_keys()) == 57 * 5 + 2
    shapes = {"Conv3d_1a_7x7.conv3d.weight": (64, 3, 7, 7, 7), "Conv3d_2c_3x3.conv3d.weight": (192, 64, 3, 3, 3),
              "Mixed_3b.b1b.conv3d.weight": (128, 96, 3, 3, 3), "Mixed_4b.b0.conv3d.weight": (192, 480, 1, 1, 1),
              "Mixed_5b.b0.conv3d.weight": (256, 832, 1, 1, 1), "Mixed_5c.b3b.conv3d.weight": (128, 832, 1, 1, 1),
              "logits.conv3d.weight": (400, 1024, 1, 1, 1), "logits.conv3d.bias": (400,)}
    for k, shape in shapes.items():
        assert tuple(state[k].shape) == shape, k
    assert sum(v.numel() for k, v in state.items() if k.endswith("weight") or k.endswith("bias")) == 12_697_264


@pytest.mark.parametrize("size, kernel, stride", [(7, 3, 2), (8, 3, 2), (16, 7, 2), (5, 3, 1), (9, 2, 2)])
def test_same_padding_gives_tensorflows_output_size(size, kernel, stride):
    x = torch.zeros(1, 1, size, size, size)
    padded = same_padding(x, (kernel,) * 3, (stride,) * 3)
    out = torch.nn.functional.max_pool3d(padded, kernel, stride)
    assert out.shape[2:] == (-(-size // stride),) * 3  # TF "SAME": ceil(size / stride)
    total = padded.shape[2] - size
    assert total == max(kernel - (stride if size % stride == 0 else size % stride), 0)


def test_i3d_output_is_the_time_average_of_the_logits():
    model = tiny_i3d(0)
    x = torch.rand(2, 3, 16, 224, 224) * 2 - 1
    with torch.no_grad():
        out = model(x)
        h = x
        for name in ["Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
                     *MIXED[:2], "MaxPool3d_4a_3x3", *MIXED[2:7], "MaxPool3d_5a_2x2", *MIXED[7:]]:
            h = getattr(model, name)(h)
        assert h.shape[2:] == (2, 7, 7)
        pooled = h.mean(dim=(2, 3, 4), keepdim=True)  # AvgPool3d([2, 7, 7]) on (2, 7, 7): one full mean
        logits = torch.nn.functional.conv3d(pooled, model.logits.conv3d.weight, model.logits.conv3d.bias)
    assert out.shape == (2, 400)
    torch.testing.assert_close(out, logits.flatten(1), rtol=1e-4, atol=1e-5)


def test_i3d_loader_accepts_the_published_layout(tmp_path):
    model = tiny_i3d(1)
    for name, state in (("plain.pt", {k: v for k, v in model.state_dict().items() if "num_batches" not in k}),
                        ("with_counts.pt", model.state_dict())):
        (tmp_path / name).mkdir()
        torch.save(state, tmp_path / name / "i3d_pretrained_400.pt")
        loaded = load_i3d(tmp_path / name)
        x = torch.rand(1, 3, 10, 224, 224)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), model(x))
        assert not loaded.training


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("Mixed_4c.b2b.bn.running_var"), "missing 1 keys"),
    (lambda s: s.update({"Mixed_6a.b0.conv3d.weight": torch.zeros(1)}), "1 unexpected keys"),
    (lambda s: s.update({"module.fc.weight": torch.zeros(1)}), "unexpected"),
    (lambda s: s.update({"Mixed_3b.b0.conv3d.weight": torch.zeros(2, 2, 1, 1, 1)}), "1 shapes differ"),
    (lambda s: s.clear(), "not an InceptionI3d state dict"),
])
def test_i3d_loader_refuses_other_layouts(tmp_path, change, message):
    state = {k: v for k, v in tiny_i3d(0).state_dict().items() if "num_batches" not in k}
    change(state)
    torch.save(state, tmp_path / "i3d_pretrained_400.pt")
    with pytest.raises(WeightsError, match=message) as err:
        load_i3d(tmp_path)
    assert "i3d_pretrained_400.pt" in str(err.value) and "\n" not in str(err.value)


def test_arbitrary_pickles_are_not_loaded(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "i3d_pretrained_400.pt", _use_new_zipfile_serialization=True)
    with pytest.raises(WeightsError, match="weights-only"):
        load_i3d(tmp_path)


@pytest.mark.parametrize("key, loader", [("styleganv", lambda d: fvd_extractor(d, "styleganv")),
                                         ("c3d", lambda d: is_extractor(d))])
def test_torchscript_loaders_refuse_other_files(tmp_path, key, loader):
    name = weights_module.WEIGHTS[key].name
    with pytest.raises(WeightsError, match=f"{name}: not found.*stylegan-v"):
        loader(tmp_path)
    torch.save({"a": torch.zeros(1)}, tmp_path / name)  # a state dict, not TorchScript
    with pytest.raises(WeightsError, match="not a TorchScript archive"):
        loader(tmp_path)


@pytest.mark.parametrize("key, other, message", [("styleganv", "c3d", "fails on a dummy clip"),
                                                 ("c3d", "styleganv", "does not return class probabilities")])
def test_the_other_metrics_detector_is_refused_by_name(tiny_weights, tmp_path, key, other, message):
    import shutil

    shutil.copy(tiny_weights / weights_module.WEIGHTS[other].name, tmp_path / weights_module.WEIGHTS[key].name)
    with pytest.raises(WeightsError, match=f"{weights_module.WEIGHTS[key].name}: {message}"):
        weights_module.check(tmp_path, [key])


def _clip(path, frames=20, h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    video = np.zeros((frames, h, w, 3), np.uint8)
    for t in range(frames):  # a red square moving right on a blue-green gradient: colours and time matter
        video[t, :, :, 1] = np.linspace(0, 200, w, dtype=np.uint8)[None]
        video[t, :, :, 2] = 90
        x = (3 * t + int(rng.integers(0, 4))) % (w - 10)
        video[t, 10:26, x: x + 10] = (250, 20, 20)
    write_video(path, video, 12)
    return path


def _decoded_rgb(path, n):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < n:
        ok, f = cap.read()
        assert ok
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    return np.stack(frames)


def _capture_loaded(monkeypatch, module):
    seen = []
    real = module.load_torchscript

    def spy(*args, **kwargs):
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(module, "load_torchscript", spy)
    return seen


def test_styleganv_detector_gets_the_published_call(tiny_weights, tmp_path, monkeypatch):
    videos = [_clip(tmp_path / f"v{i}.mp4", seed=i) for i in range(3)]
    seen = _capture_loaded(monkeypatch, fvd_module)
    ex = fvd_extractor(tiny_weights, "styleganv", num_frames=16, batch_size=2)
    feats, skipped = extract(videos, ex)
    assert not skipped
    detector = seen[0]
    # exactly (x uint8 (B, 3, 16, H, W), rescale=True, resize=True, return_features=True), batched 2 + 1,
    # after the loader's probe on a dummy clip (called the same way)
    assert [list(c) for c in detector.calls] == [[1, 1, 1, 1, 1, 3, 16, 64, 64], [1, 1, 1, 1, 2, 3, 16, 48, 64],
                                                  [1, 1, 1, 1, 1, 3, 16, 48, 64]]
    # the features are the detector's on the clip's first 16 decoded frames, RGB, channels first
    x = torch.from_numpy(_decoded_rgb(videos[2], 16)).permute(3, 0, 1, 2)[None].contiguous()
    expected = detector(x, rescale=True, resize=True, return_features=True)[0].detach().numpy()
    np.testing.assert_allclose(feats[str(videos[2])], expected, rtol=1e-6)


def test_c3d_gets_uint8_16_frames_and_no_keywords(tiny_weights, tmp_path, monkeypatch):
    videos = [_clip(tmp_path / f"v{i}.mp4", frames=24, seed=i) for i in range(2)]
    seen = _capture_loaded(monkeypatch, is_module)
    feats, _ = extract(videos, is_extractor(tiny_weights))
    assert [list(c) for c in seen[0].calls] == [[1, 1, 3, 16, 64, 64], [1, 2, 3, 16, 48, 64]]  # probe, then the clips
    x = torch.from_numpy(_decoded_rgb(videos[0], 16)).permute(3, 0, 1, 2)[None].contiguous()
    np.testing.assert_allclose(feats[str(videos[0])], seen[0](x)[0].detach().numpy(), rtol=1e-4, atol=1e-9)
    assert feats[str(videos[0])].sum() == pytest.approx(1.0)


def test_short_clips_are_refused_with_their_reason(tiny_weights, tmp_path):
    short = _clip(tmp_path / "short.mp4", frames=12)
    ok = _clip(tmp_path / "ok.mp4", frames=16)
    feats, skipped = extract([short, ok], fvd_extractor(tiny_weights, "styleganv", num_frames=16))
    assert list(feats) == [str(ok)]
    assert skipped == {str(short): "has 12 frames under the protocol (12 fps), the metric needs 16"}
    with pytest.raises(ValueError, match="at least 10"):
        fvd_extractor(tiny_weights, "styleganv", num_frames=8)


def test_videogpt_preprocessing_by_hand():
    """Short side to 224 (bilinear, half-pixel centres), center crop, (x/255 - 0.5) * 2."""
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, size=(2, 112, 168, 3), dtype=np.uint8)  # T, H, W, C (scale exactly 2)
    x = torch.from_numpy(clip).permute(3, 0, 1, 2)[None]
    out = videogpt_preprocess(x)
    assert out.shape == (1, 3, 2, 224, 224)
    for t in range(2):
        big = cv2.resize(clip[t].astype(np.float32) / 255, (336, 224), interpolation=cv2.INTER_LINEAR)
        crop = big[:, 56: 56 + 224]
        np.testing.assert_allclose(out[0, :, t].permute(1, 2, 0).numpy(), (crop - 0.5) * 2, atol=2e-5)
    white = videogpt_preprocess(torch.full((1, 3, 1, 8, 8), 255, dtype=torch.uint8))
    black = videogpt_preprocess(torch.zeros((1, 3, 1, 8, 8), dtype=torch.uint8))
    assert float(white.min()) == pytest.approx(1.0) and float(black.max()) == pytest.approx(-1.0)


def test_videogpt_lineage_runs_our_i3d_on_the_preprocessed_clip(tiny_weights, tmp_path):
    video = _clip(tmp_path / "v.mp4", frames=16)
    feats, _ = extract([video], fvd_extractor(tiny_weights, "videogpt"))
    model = load_i3d(tiny_weights)
    x = torch.from_numpy(_decoded_rgb(video, 16)).permute(3, 0, 1, 2)[None].contiguous()
    with torch.no_grad():
        expected = model(videogpt_preprocess(x))[0].numpy()
    np.testing.assert_allclose(feats[str(video)], expected, rtol=1e-5, atol=1e-6)


def test_unit3d_is_conv_then_batch_norm_eps_1e3_then_relu():
    from benchmarks.metrics.i3d import Unit3D

    unit = Unit3D(2, 3).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        unit.conv3d.weight.copy_(torch.randn(3, 2, 1, 1, 1, generator=g))
        unit.bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        unit.bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        unit.bn.running_mean.copy_(torch.tensor([0.5, -0.5, 0.0]))
        unit.bn.running_var.copy_(torch.tensor([1e-3, 2e-3, 4e-3]))  # small: eps 1e-3 vs 1e-5 shows
        x = torch.randn(1, 2, 3, 4, 4, generator=g)
        conv = torch.einsum("oi,bithw->bothw", unit.conv3d.weight[:, :, 0, 0, 0], x)
        shape = (1, 3, 1, 1, 1)
        expected = torch.relu((conv - unit.bn.running_mean.view(shape)) / torch.sqrt(unit.bn.running_var.view(shape) + 1e-3)
                              * unit.bn.weight.view(shape) + unit.bn.bias.view(shape))
        torch.testing.assert_close(unit(x), expected, rtol=1e-5, atol=1e-5)


def test_same_padding_puts_the_odd_pixel_at_the_end():
    x = torch.ones(1, 1, 8, 8, 8)
    p = same_padding(x, (3, 3, 3), (2, 2, 2))  # total 1 per axis: 0 before, 1 after
    assert p.shape == (1, 1, 9, 9, 9)
    assert float(p[0, 0, 0, 0, 0]) == 1.0 and float(p[0, 0, -1].abs().sum()) == 0.0
    assert float(p[0, 0, :, -1].abs().sum()) == 0.0 and float(p[0, 0, :, :, -1].abs().sum()) == 0.0
    q = same_padding(torch.ones(1, 1, 7, 7, 7), (7, 7, 7), (2, 2, 2))  # total 6: 3 before, 3 after
    assert q.shape == (1, 1, 13, 13, 13) and float(q[0, 0, 2, 3, 3]) == 0.0 and float(q[0, 0, 3, 3, 3]) == 1.0


def test_i3d_follows_the_published_layer_table():
    """Pools (kernel, stride) and the feature map after each block for a 16x224x224 clip, from the paper's figure."""
    model = InceptionI3d().eval()
    assert {n: (getattr(model, n).kernel, getattr(model, n).stride) for n in
            ("MaxPool3d_2a_3x3", "MaxPool3d_3a_3x3", "MaxPool3d_4a_3x3", "MaxPool3d_5a_2x2")} == {
        "MaxPool3d_2a_3x3": ((1, 3, 3), (1, 2, 2)), "MaxPool3d_3a_3x3": ((1, 3, 3), (1, 2, 2)),
        "MaxPool3d_4a_3x3": ((3, 3, 3), (2, 2, 2)), "MaxPool3d_5a_2x2": ((2, 2, 2), (2, 2, 2))}
    assert model.Conv3d_1a_7x7.kernel == (7, 7, 7) and model.Conv3d_1a_7x7.stride == (2, 2, 2)
    assert model.avg_pool.kernel_size == (2, 7, 7) and model.avg_pool.stride == (1, 1, 1)
    expected = {"Conv3d_1a_7x7": (64, 8, 112, 112), "MaxPool3d_2a_3x3": (64, 8, 56, 56), "Conv3d_2c_3x3": (192, 8, 56, 56),
                "MaxPool3d_3a_3x3": (192, 8, 28, 28), "Mixed_3b": (256, 8, 28, 28), "Mixed_3c": (480, 8, 28, 28),
                "MaxPool3d_4a_3x3": (480, 4, 14, 14), "Mixed_4b": (512, 4, 14, 14), "Mixed_4f": (832, 4, 14, 14),
                "MaxPool3d_5a_2x2": (832, 2, 7, 7), "Mixed_5b": (832, 2, 7, 7), "Mixed_5c": (1024, 2, 7, 7)}
    seen = {}
    hooks = [getattr(model, n).register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, tuple(o.shape[1:])))
             for n in expected]
    with torch.no_grad():
        model(torch.zeros(1, 3, 16, 224, 224))
    for h in hooks:
        h.remove()
    assert seen == expected


def test_videogpt_preprocessing_downscales_with_the_published_rounding():
    """300x500: short side 224, long side ceil(500 * 224 / 300) = ceil(373.33) = 374, no antialiasing."""
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, size=(300, 500, 3), dtype=np.uint8)
    out = videogpt_preprocess(torch.from_numpy(frame).permute(2, 0, 1)[None, :, None])
    big = cv2.resize(frame.astype(np.float32) / 255, (374, 224), interpolation=cv2.INTER_LINEAR)
    left = (374 - 224) // 2  # 75
    np.testing.assert_allclose(out[0, :, 0].permute(1, 2, 0).numpy(), (big[:, left: left + 224] - 0.5) * 2, atol=2e-4)
