"""The trainer at the authors' scale: checkpointing on the stock UNet3D, every shipped config,
reproducible starts, bad data that never hangs, and training at the generation's time scale."""

import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from avalign.io import read_jsonl
from tempotokens.training.config import CONFIG_DIR, load_config
from tests.fixtures.training import adaptor_weights as _adaptor
from tests.fixtures.training import tiny_train_config as _tiny_cfg

ROOT = Path(__file__).resolve().parents[2]




def _cfg(model, root, out, **over):
    """The tiny config of ``test_train``, writing the model first when it is absent."""
    return _tiny_cfg(model, root, out, **{"make_tiny": True, **over})


def _grads(trainer, batch):
    for p in trainer.trained:
        p.grad = None
    loss = trainer._losses(batch, 0)[0]
    loss.backward()
    return [p.grad.detach().clone() for p in trainer.trained]


def test_checkpointing_keeps_gradients_and_is_removable(tiny_dir, synthetic_root, tmp_path, monkeypatch):
    import tempotokens.training.checkpointing as ckpt
    from tempotokens.training.loop import Trainer

    trainer = Trainer(_cfg(tiny_dir, synthetic_root, tmp_path / "t", gradient_checkpointing=False))
    batch = next(iter(trainer.loader))
    plain = _grads(trainer, batch)
    calls = []
    monkeypatch.setattr(ckpt, "checkpoint", lambda *a, **k: calls.append(k["use_reentrant"]) or
                        torch.utils.checkpoint.checkpoint(*a, **k))
    unet = trainer.pipe.unet
    handle = ckpt.install_checkpointing(unet)
    with pytest.raises(RuntimeError, match="already installed"):
        ckpt.install_checkpointing(unet)
    checkpointed = _grads(trainer, batch)
    n_blocks = len(unet.down_blocks) + 1 + len(unet.up_blocks)
    assert calls == [False] * n_blocks  # every down, mid and up block, non-reentrant
    for a, b in zip(plain, checkpointed):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-12 * float(a.abs().max())), float((a - b).abs().max())
    assert any(float(g.abs().max()) > 0 for g in plain)  # the comparison is not of zeros
    handle.remove()
    assert all("forward" not in b.__dict__ for b in [*unet.down_blocks, unet.mid_block, *unet.up_blocks])
    calls.clear()
    _grads(trainer, batch)
    assert calls == []


# the tiny config in the quick suite; CI trains every shipped config (each ~8 s on 2 cores)
@pytest.mark.parametrize("config", [c if c == "tiny" else pytest.param(c, marks=pytest.mark.slow)
                                    for c in sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))])
def test_every_shipped_config_trains_two_steps(config, tiny_dir, synthetic_root, tmp_path, monkeypatch):
    """Each YAML with its own switches (checkpointing, fps, batch size, workers...), only KEY=VALUE
    overrides putting in the tiny model, the synthetic data and small sizes."""
    import tempotokens.training.loop as loop
    from tempotokens.train import main

    installed = []
    real = loop.install_checkpointing
    monkeypatch.setattr(loop, "install_checkpointing", lambda unet: installed.append(1) or real(unet))
    out = tmp_path / "out"
    overrides = [f"model={tiny_dir}", "make_tiny=true", "beats=null", "data.dataset=synthetic",
                 "data.exclude_ids=null", "data.num_frames=8", "data.height=32", "data.width=32",
                 "adaptor.hidden_size=48", "validation.steps=0", f"data.root={synthetic_root}",
                 "data.make_synthetic=0", "max_steps=2", f"output_dir={out}"]
    assert main(["--config", config, *overrides]) == 0
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2]
    cfg = load_config(config)
    assert installed == ([1] if cfg.gradient_checkpointing else [])
    if config != "tiny":
        assert cfg.gradient_checkpointing and cfg.data.fps == 12  # the configs state their time scale


def test_adaptor_init_depends_on_the_seed_alone(tiny_dir, synthetic_root, tmp_path):
    from tempotokens.training.loop import Trainer

    states = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)  # whatever ran before
        np.random.seed(global_seed)
        trainer = Trainer(_cfg(tiny_dir, synthetic_root, tmp_path / f"s{global_seed}"))
        states.append({k: v.clone() for k, v in trainer.accelerator.unwrap_model(trainer.adaptor).state_dict().items()})
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    other = Trainer(_cfg(tiny_dir, synthetic_root, tmp_path / "s3", seed=1))
    assert not all(torch.equal(states[0][k], v) for k, v in other.accelerator.unwrap_model(other.adaptor).state_dict().items())


@pytest.mark.slow  # 5 s
def test_resume_equals_straight_when_the_first_run_writes_the_model(synthetic_root, tmp_path):
    from tempotokens.training.loop import train

    model = tmp_path / "model"  # absent: the straight run writes it first
    straight = train(_cfg(model, synthetic_root, tmp_path / "straight", max_steps=8, checkpointing_steps=4))
    assert (model / "model_index.json").exists()
    part = tmp_path / "part"
    train(_cfg(model, synthetic_root, part, max_steps=4, checkpointing_steps=4))
    resumed = train(_cfg(model, synthetic_root, part, max_steps=8, checkpointing_steps=4), resume="latest")
    a, b = _adaptor(straight), _adaptor(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_every_draw_depends_on_the_process_and_the_stream(tiny_dir, synthetic_root, tmp_path, monkeypatch):
    from tempotokens.training import loop

    seeds = {loop.step_seed(64, k, r, stream) for k in range(100) for r in range(8) for stream in range(3)}
    assert len(seeds) == 2400  # (seed, step, process, stream) never collide here, e.g. dropout of 0 vs batch of 1
    used = []
    real = loop.step_seed
    monkeypatch.setattr(loop, "step_seed", lambda *a: used.append(a) or real(*a))
    trainer = loop.Trainer(_cfg(tiny_dir, synthetic_root, tmp_path / "d", seed=7))
    monkeypatch.setattr(trainer.accelerator.state, "process_index", 1, raising=False)
    trainer._losses(next(iter(trainer.loader)), 5)
    assert (7, 5, 1, loop.BATCH) in used and (7, 5, 1, loop.DROPOUT) in used  # step 5 as process 1


def test_adaptor_init_honours_and_checks_the_config(tiny_dir, synthetic_root, tmp_path):
    from tempotokens.training.loop import Trainer

    init = tiny_dir / "adaptor"
    trainer = Trainer(_cfg(tiny_dir, synthetic_root, tmp_path / "i", **{"adaptor.init": init, "data.num_frames": 8,
                                                                          "adaptor.fga_dropout": 0.25}))
    adaptor = trainer.accelerator.unwrap_model(trainer.adaptor)
    assert adaptor.config.num_frames == 8 and adaptor.config.fga_dropout == 0.25
    assert all(torch.equal(v, _adaptor(init)[k]) for k, v in adaptor.state_dict().items())
    with pytest.raises(ValueError, match="pools tokens"):
        Trainer(_cfg(tiny_dir, synthetic_root, tmp_path / "j", **{"adaptor.init": init,
                                                                   "adaptor.token_pooling": "temporal"}))


def _broken_copy(root, dst, names):
    shutil.copytree(root, dst)
    for name in names:
        (dst / "video" / f"{name}.mp4").write_bytes(b"not a video")
    return dst


@pytest.mark.timeout(120)
@pytest.mark.parametrize("limit, message", [(3, "3 training items in a row were unusable"),
                                            (1000, "no usable training item in a whole epoch")])
def test_all_bad_data_stops_with_exit_2(tiny_dir, synthetic_root, tmp_path, capsys, limit, message):
    from tempotokens.train import main

    train_ids = [f"syn{k:08d}" for k in range(4)]
    root = _broken_copy(synthetic_root, tmp_path / "bad", train_ids)
    out = tmp_path / "out"
    argv = ["--config", "tiny", f"model={tiny_dir}", f"data.root={root}", "data.make_synthetic=0",
            f"output_dir={out}", "validation.steps=0", "batch_size=1", f"data.max_consecutive_skips={limit}"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("tempotokens.train: error:") and message in err
    assert "cannot open video" in err or "no frame" in err or "frames" in err  # the last reasons are named
    assert len(read_jsonl(out / "skipped.jsonl")) >= min(limit, 4)


def test_a_programming_error_is_not_skipped(tiny_dir, synthetic_root, tmp_path, monkeypatch):
    import tempotokens.data.datasets as datasets
    from tempotokens.training.loop import train

    def broken(*args, **kwargs):
        raise TypeError("a bug, not a bad file")

    monkeypatch.setattr(datasets, "load_audio", broken)
    with pytest.raises(TypeError, match="a bug"):
        train(_cfg(tiny_dir, synthetic_root, tmp_path / "bug"))


def test_items_at_the_generation_fps(tmp_path):
    """data.fps: frames chosen by the protocol's rule, and exactly the audio they cover."""
    from avalign.io import write_video, write_wav
    from tempotokens.data.datasets import AudioVideoClips, ClipInfo

    n, src = 50, 25.0
    frames = np.zeros((n, 32, 64, 3), np.uint8)
    for i in range(n):  # frame i shows i in binary, 8 bands of 8 px
        for b in range(8):
            if (i >> b) & 1:
                frames[i, :, 8 * b: 8 * b + 8] = 255
    write_video(tmp_path / "v.mp4", frames, src)
    write_wav(tmp_path / "v.wav", np.zeros(int(2 * 16000), np.float32), 16000)
    clip = ClipInfo("v", str(tmp_path / "v.mp4"), str(tmp_path / "v.wav"), "x", "train")
    item = AudioVideoClips([clip], num_frames=12, height=32, width=64, random_start=False, fps=12.0)[0]
    gray = ((item["pixel_values"].mean(1) + 1) * 127.5).numpy()
    codes = [sum(1 << b for b in range(8) if gray[k, :, 8 * b: 8 * b + 8].mean() > 127) for k in range(12)]
    assert codes == [math.floor(k * src / 12 + 0.5) for k in range(12)]  # 0, 2, 4, 6, 8, 10, 13, 15, ...
    assert item["fps"] == 12.0 and len(item["audio"]) == 16000  # 12 frames at 12 fps: 1.0 s of audio
    native = AudioVideoClips([clip], num_frames=12, height=32, width=64, random_start=False)[0]
    assert native["fps"] == 25.0 and len(native["audio"]) == round(12 / 25 * 16000)
    # random starts never run the audio span past the clip's end (audio exactly as long as the video)
    ds = AudioVideoClips([clip], num_frames=12, height=32, width=64, random_start=True, fps=12.0)
    starts = set()
    for epoch in range(40):
        ds.epoch = epoch
        got = ds[0]
        assert "error" not in got, got.get("error")
        starts.add(got["start_frame"])
    assert max(starts) == n - 25  # the last start whose 1 s of audio fits: 25 frames at 25 fps


@pytest.mark.parametrize("override, message", [("data.fps=0", "data.fps"), ("data.fps=-5", "data.fps"),
                                               ("data.max_consecutive_skips=0", "max_consecutive_skips"),
                                               ("data.num_frames=1", "num_frames"), ("batch_size=0", "batch_size")])
def test_bad_settings_are_refused(override, message, capsys):
    from tempotokens.train import main

    with pytest.raises(ValueError, match=message):
        load_config("tiny", [override])
    assert main(["--config", "tiny", override]) == 2
    assert message in capsys.readouterr().err


def test_validation_fps_must_match_training(tmp_path):
    with pytest.raises(ValueError, match="validation.fps"):
        load_config("tiny", ["data.fps=12", "validation.fps=8"])
    from tempotokens.training.config import validation_fps

    assert validation_fps(load_config("tiny", ["data.fps=10"])) == 10.0
    assert validation_fps(load_config("tiny", ["data.fps=null"])) == 12.0


@pytest.mark.slow  # 31 s: two processes (one-process stop and resume are in make test)
@pytest.mark.timeout(600)
def test_two_process_ddp_stop_and_resume_with_a_corrupt_clip(tiny_dir, synthetic_root, tmp_path):
    """Two CPU processes (torch.distributed.run, gloo), batch 1 each, one corrupt clip, a UNet LoRA:
    both take the same steps (no hang), both processes' skips are logged, and stop at 2 + resume to 4
    equals straight to 4."""
    import os

    pytest.importorskip("peft")
    root = _broken_copy(synthetic_root, tmp_path / "data", ["syn00000001"])
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}

    def launch(out, steps, *extra):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "tempotokens.train", "--config", "tiny", "--output-dir", str(out), "--max-steps", str(steps),
               f"model={tiny_dir}", "make_tiny=false", f"data.root={root}", "data.make_synthetic=0",
               "validation.steps=0", "checkpointing_steps=2", "batch_size=1", "train.unet=lora", "lora.rank=2", *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=280, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]

    launch(tmp_path / "straight", 4)
    launch(tmp_path / "part", 2)
    launch(tmp_path / "part", 4, "--resume", "latest")
    import json

    state = json.loads((tmp_path / "straight" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["num_processes"] == 2 and state["step"] == 4  # really two processes
    a, b = _adaptor(tmp_path / "straight" / "adaptor"), _adaptor(tmp_path / "part" / "adaptor")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in read_jsonl(tmp_path / "straight" / "metrics.jsonl")] == [1, 2, 3, 4]
    skipped = read_jsonl(tmp_path / "straight" / "skipped.jsonl")
    assert skipped and {r["clip_id"] for r in skipped} == {"syn00000001"}
    assert {r["process"] for r in skipped} <= {0, 1} and len(skipped) >= 1
