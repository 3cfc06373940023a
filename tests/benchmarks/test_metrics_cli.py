"""``python -m benchmarks.metrics``: results against hand computations, R.json, and bad input."""

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from avalign.io import write_video
from benchmarks.metrics.cli import main
from benchmarks.metrics.weights import load_torchscript

MEAN = np.array([0.48145466, 0.4578275, 0.40821073])  # CLIP's published normalisation
STD = np.array([0.26862954, 0.26130258, 0.27577711])


def _write(folder, n, frames=16, seed=0, size=(32, 48)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        base = rng.integers(0, 256, size=(1, *size, 3))
        video = np.clip(base + rng.integers(-40, 40, size=(frames, *size, 3)), 0, 255).astype(np.uint8)
        paths.append(write_video(folder / f"clip{i:02d}.mp4", video, 12))
    return paths


def _decoded(path, n=None):
    cap = cv2.VideoCapture(str(path))
    out = []
    while n is None or len(out) < n:
        ok, f = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    return np.stack(out)


def _svd_sqrt(m):
    u, s, v = torch.svd(m)
    return u @ torch.diag(torch.sqrt(s.clamp(min=0))) @ v.t()


def test_fvd_styleganv_against_an_independent_computation(tiny_weights, tmp_path, capsys):
    real, fake = _write(tmp_path / "real", 24, seed=0), _write(tmp_path / "fake", 20, seed=1)
    _write(tmp_path / "fake_short", 1, frames=8, seed=2)
    (tmp_path / "fake" / "short.mp4").write_bytes((tmp_path / "fake_short" / "clip00.mp4").read_bytes())
    out = tmp_path / "r.json"
    assert main(["fvd", str(tmp_path / "real"), str(tmp_path / "fake"), "--weights", str(tiny_weights),
                 "--out", str(out)]) == 1  # a refused clip: exit 1, the value of the others written
    result = json.loads(out.read_text())
    det = load_torchscript(tiny_weights, "styleganv")

    def feats(paths):
        x = torch.stack([torch.from_numpy(_decoded(p, 16)).permute(3, 0, 1, 2) for p in paths])
        return det(x, rescale=True, resize=True, return_features=True).detach().double()

    fr, ff = feats(real), feats(fake)
    mr, mf = fr.mean(0), ff.mean(0)
    sr, sf = fr.T @ fr / len(fr) - torch.outer(mr, mr), ff.T @ ff / len(ff) - torch.outer(mf, mf)  # biased
    root = _svd_sqrt(sr)
    expected = float(((mr - mf) ** 2).sum() + torch.trace(sr + sf) - 2 * torch.trace(_svd_sqrt(root @ sf @ root)))
    assert result["fvd"] == pytest.approx(expected, rel=1e-4)
    # KVD on the same features, by hand: unbiased MMD^2, k(x, y) = (x.y / d + 1)^3, every pair in a loop
    d = fr.shape[1]

    def k(a, b):
        return float((a @ b / d + 1) ** 3)

    n, m = len(fr), len(ff)
    kvd = (sum(k(ff[i], ff[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
           + sum(k(fr[i], fr[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
           - 2 * sum(k(ff[i], fr[j]) for i in range(m) for j in range(n)) / (m * n))
    assert result["kvd"] == pytest.approx(kvd, rel=1e-4, abs=1e-9) and "cubic polynomial" in result["kvd_description"]
    assert (result["n_real"], result["n_fake"], result["lineage"], result["frames_per_clip"]) == (24, 20, "styleganv", 16)
    assert result["weights"].endswith("i3d_torchscript.pt") and len(result["weights_sha256"]) == 16
    assert list(result["skipped"]) == [str(tmp_path / "fake" / "short.mp4")]
    assert "needs 16" in result["skipped"][str(tmp_path / "fake" / "short.mp4")]
    assert any("2048" in w for w in result["warnings"])
    err = capsys.readouterr().err
    assert "short.mp4: has 8 frames" in err and "2048" in err
    # the other lineage reads another file and uses the unbiased covariance: another number
    assert main(["fvd", str(tmp_path / "real"), str(tmp_path / "fake"), "--weights", str(tiny_weights),
                 "--lineage", "videogpt", "--out", str(tmp_path / "v.json")]) == 1
    v = json.loads((tmp_path / "v.json").read_text())
    assert v["weights"].endswith("i3d_pretrained_400.pt") and v["lineage"] == "videogpt" and v["fvd"] != result["fvd"]


def test_is_cli_caps_splits_and_records_its_protocol(tiny_weights, tmp_path, capsys):
    paths = _write(tmp_path / "fake", 3)
    assert main(["is", str(tmp_path / "fake"), "--weights", str(tiny_weights), "--out", str(tmp_path / "i.json")]) == 0
    r = json.loads((tmp_path / "i.json").read_text())
    assert (r["n"], r["splits"], r["lineage"], r["frames_per_clip"]) == (3, 3, "isv2048_ucf", 16)
    assert r["is"] == pytest.approx(1.0) and r["is_std"] == pytest.approx(0.0)  # one clip per split
    assert "using 3" in capsys.readouterr().err
    assert main(["is", str(tmp_path / "fake"), "--weights", str(tiny_weights), "--splits", "1",
                 "--out", str(tmp_path / "i1.json")]) == 0
    det = load_torchscript(tiny_weights, "c3d")
    p = det(torch.stack([torch.from_numpy(_decoded(q, 16)).permute(3, 0, 1, 2) for q in paths])).detach().double()
    kl = torch.special.xlogy(p, p) - torch.special.xlogy(p, p.mean(0, keepdim=True).expand_as(p))
    expected = torch.exp(kl.sum(1).mean())
    assert json.loads((tmp_path / "i1.json").read_text())["is"] == pytest.approx(float(expected), rel=1e-4)


def _hand_clipsim(folder, frames, text):
    """CLIP by hand: PIL bicubic resize of the short side (long side truncated, as torchvision's Resize),
    center crop, CLIP mean/std; projections; cosines."""
    from transformers import CLIPModel, CLIPTokenizer

    model = CLIPModel.from_pretrained(folder).eval()
    tok = CLIPTokenizer.from_pretrained(folder)
    side = model.config.vision_config.image_size
    pixels = []
    for f in frames:
        h, w = f.shape[:2]
        long = int(side * max(h, w) / min(h, w))
        img = Image.fromarray(f).resize((long, side) if w > h else (side, long), Image.BICUBIC)
        a = np.asarray(img, np.float64) / 255
        top, left = (a.shape[0] - side) // 2, (a.shape[1] - side) // 2
        pixels.append(((a[top: top + side, left: left + side] - MEAN) / STD).transpose(2, 0, 1))
    with torch.no_grad():
        img = model.visual_projection(model.vision_model(torch.tensor(np.stack(pixels), dtype=torch.float32)).pooler_output)
        ids = torch.tensor([tok(text)["input_ids"]])
        txt = model.text_projection(model.text_model(input_ids=ids).pooler_output)
    img = img / img.norm(dim=-1, keepdim=True)
    txt = txt / txt.norm(dim=-1, keepdim=True)
    return float((img @ txt[0]).mean())


def test_clipsim_equals_a_hand_computation(tiny_weights, tmp_path):
    paths = _write(tmp_path / "v", 3, frames=5, size=(40, 56))
    labels = tmp_path / "labels.csv"
    labels.write_text("video,label\nclip00.mp4,dog barking\nclip01,playing drums\nclip02.mp4,dog barking\n")
    out = tmp_path / "c.json"
    assert main(["clipsim", str(tmp_path / "v"), "--labels", str(labels), "--weights", str(tiny_weights),
                 "--template", "a video of {label}", "--scale", "100", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    folder = tiny_weights / "clip-vit-base-patch32"
    hand = [100 * _hand_clipsim(folder, _decoded(p), f"a video of {lab}")
            for p, lab in zip(paths, ["dog barking", "playing drums", "dog barking"])]
    assert [r["per_video"][p.name] for p in paths] == pytest.approx(hand, abs=2e-4)
    assert r["clipsim"] == pytest.approx(np.mean(hand), abs=2e-4)
    assert r["clipsim_ci_low"] <= r["clipsim"] <= r["clipsim_ci_high"]
    assert (r["n"], r["template"], r["scale"]) == (3, "a video of {label}", 100.0)


def test_clipsim_text_labels_and_unlabelled_videos(tiny_weights, tmp_path, capsys):
    _write(tmp_path / "v", 2, frames=3)
    labels = tmp_path / "labels.txt"
    labels.write_text("# name label\nclip01 a dog barking\n")
    out = tmp_path / "c.json"
    assert main(["clipsim", str(tmp_path / "v"), "--labels", str(labels), "--weights", str(tiny_weights),
                 "--out", str(out)]) == 1  # an unlabelled video is a refused item
    r = json.loads(out.read_text())
    assert list(r["per_video"]) == ["clip01.mp4"] and r["n"] == 1
    assert "clip00.mp4: no (or an empty) label" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["fvd", "R", "F", "--weights", "W"], "i3d_torchscript.pt: not found; FVD (styleganv) needs i3d_torchscript.pt from StyleGAN-V"),
    (["fvd", "R", "F", "--weights", "W", "--lineage", "videogpt"], "i3d_pretrained_400.pt: not found; FVD (videogpt) needs"),
    (["is", "F", "--weights", "W"], "c3d_ucf101.pt: not found; IS needs c3d_ucf101.pt from StyleGAN-V"),
    (["clipsim", "F", "--labels", "L", "--weights", "W"], "clip-vit-base-patch32: not found; CLIPSIM needs"),
    (["fvd", "R", "EMPTY", "--weights", "TINY"], "EMPTY: holds no video"),
    (["fvd", "R", "F", "--weights", "TINY", "--metric-frames", "8"], "at least 10 frames"),
    (["clipsim", "F", "--labels", "L", "--weights", "TINY", "--template", "{name}"], "--template '{name}' must contain"),
    (["clipsim", "F", "--labels", "MISSING", "--weights", "TINY"], "MISSING: labels file not found"),
    (["fvd", "R", "F", "--weights", "TINY", "--size", "big"], "size must be WIDTHxHEIGHT"),
])
def test_bad_input_is_one_line_and_exit_2(tiny_weights, tmp_path, capsys, argv, message):
    _write(tmp_path / "R", 2)
    _write(tmp_path / "F", 2)
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "W").mkdir()
    (tmp_path / "L").write_text("clip00 dog\n")
    subst = {"R": tmp_path / "R", "F": tmp_path / "F", "W": tmp_path / "W", "TINY": tiny_weights, "L": tmp_path / "L",
             "EMPTY": tmp_path / "EMPTY", "MISSING": tmp_path / "MISSING"}
    assert main([str(subst.get(a, a)) for a in argv]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("benchmarks.metrics")]
    assert len(err) == 1 and message in err[0].replace(str(tmp_path) + "/", ""), err


@pytest.mark.parametrize("sub", ["fvd", "is", "clipsim"])
def test_help(sub, capsys):
    with pytest.raises(SystemExit) as e:
        main([sub, "--help"])
    assert e.value.code == 0 and "--weights" in capsys.readouterr().out


def test_kvd_by_hand_on_three_and_two_points():
    from benchmarks.metrics.frechet import FrechetError, kvd

    fake = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    real = np.array([[2.0, 0.0], [0.0, 0.0]])
    # k(x, y) = (x.y / 2 + 1)^3.  fake pairs (i != j): x.y = 0, 1, 1 -> 1, 3.375, 3.375 (each twice) / 6
    # real pairs: x.y = 0 -> 1 (twice) / 2; cross: x.y = 2, 0, 0, 0, 2, 0 -> 8, 1, 1, 1, 8, 1 / 6
    want = (1 + 3.375 + 3.375) * 2 / 6 + 1 - 2 * (8 + 1 + 1 + 1 + 8 + 1) / 6
    assert kvd(real, fake) == pytest.approx(want, abs=1e-12)
    with pytest.raises(FrechetError, match="at least 2"):
        kvd(real[:1], fake)
