"""What trains in each ``train.unet`` mode, with and without audio: tensors before and after steps."""

import pytest
import torch

from tempotokens.training.config import load_config

from tests.fixtures.training import tiny_train_config




def _cfg(tiny_dir, root, out, **over):
    """3 steps at learning rates large enough that every trained tensor visibly moves; no weight decay
    and no L1 term, so only a gradient of the denoising loss can move a tensor."""
    return tiny_train_config(tiny_dir, root, out, **{"max_steps": 3, "checkpointing_steps": 3,
                                                     "optim.learning_rate": 1e-2, "optim.unet_learning_rate": 1e-2,
                                                     "optim.weight_decay": 0.0, "optim.l1_weight": 0.0, **over})


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


MODES = {
    "frozen": {},
    "full": {"train.unet": "full"},
    "lora": {"train.unet": "lora", "lora.rank": 2, "lora.learning_rate": 1e-2},
    "text-full": {"train.unet": "full", "train.audio": False, "data.prompt": "A video of {label}"},
    "text-lora": {"train.unet": "lora", "lora.rank": 2, "train.audio": False, "data.prompt": "a {label}"},
}


@pytest.mark.parametrize("mode", list(MODES))
def test_only_what_the_mode_trains_changes(mode, tiny_dir, synthetic_root, tmp_path):
    from tempotokens.training.loop import Trainer

    trainer = Trainer(_cfg(tiny_dir, synthetic_root, tmp_path / mode, **MODES[mode]))
    pipe, acc = trainer.pipe, trainer.accelerator
    unet = acc.unwrap_model(pipe.unet)
    frozen = {name: _snapshot(getattr(pipe, name)) for name in ("beats", "vae", "text_encoder")}
    before_unet, before_adaptor = _snapshot(unet), _snapshot(acc.unwrap_model(trainer.adaptor))
    trainable = {n for n, p in unet.named_parameters() if p.requires_grad}
    trainer.run()
    after_unet, after_adaptor = _snapshot(unet), _snapshot(acc.unwrap_model(trainer.adaptor))

    for name, state in frozen.items():  # BEATs, the VAE and the text encoder: bit-identical in every mode
        now = getattr(pipe, name).state_dict()
        assert all(torch.equal(v, now[k]) for k, v in state.items()), name
    changed = {k for k in before_unet if not torch.equal(before_unet[k], after_unet[k])}
    params = {n for n, _ in unet.named_parameters()}
    if mode == "frozen":
        assert not changed
    elif mode.endswith("full"):
        assert trainable == params and changed >= params  # every trainable UNet parameter moved
    else:
        assert changed and all("lora_" in k for k in changed)
        assert trainable == {n for n in params if "lora_" in n}
        assert any("lora_B" in k for k in changed)
    adaptor_changed = any(not torch.equal(v, after_adaptor[k]) for k, v in before_adaptor.items())
    assert adaptor_changed == (not mode.startswith("text"))  # text-only never touches the adaptor


def test_text_only_saves_the_unet_and_resumes_exactly(tiny_dir, synthetic_root, tmp_path):
    from diffusers import UNet3DConditionModel

    from tempotokens.training.loop import train

    over = dict(MODES["text-full"], **{"data.prompt_dropout": 0.5})
    whole = train(_cfg(tiny_dir, synthetic_root, tmp_path / "whole", **over))
    assert whole.name == "unet" and not (whole.parent / "adaptor").exists()
    part = tmp_path / "part"
    train(_cfg(tiny_dir, synthetic_root, part, **{**over, "max_steps": 2, "checkpointing_steps": 2}))
    resumed = train(_cfg(tiny_dir, synthetic_root, part, **over), resume="latest")
    a = UNet3DConditionModel.from_pretrained(whole).state_dict()
    b = UNet3DConditionModel.from_pretrained(resumed).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_prompts_come_from_the_template_and_dropout_empties_some(tiny_dir, synthetic_root, tmp_path, monkeypatch):
    from tempotokens.training.loop import Trainer

    cfg = _cfg(tiny_dir, synthetic_root, tmp_path / "p", **MODES["text-full"], **{"data.prompt_dropout": 0.5,
                                                                                   "max_steps": 6})
    trainer = Trainer(cfg)
    seen = []
    real = trainer.pipe.encode_prompt

    def spy(prompts, tokens=None, num_frames=1, *a, **k):
        seen.append((list(prompts), tokens))
        return real(prompts, tokens, num_frames, *a, **k)

    monkeypatch.setattr(trainer.pipe, "encode_prompt", spy)
    trainer.run()
    labels = {"drum hits", "bouncing ball", "hand claps"}
    flat = [p for prompts, _ in seen for p in prompts]
    assert all(tokens is None for _, tokens in seen)  # no audio path
    assert set(flat) <= {f"A video of {x}" for x in labels} | {""}
    assert "" in flat and any(p for p in flat)  # 12 draws at p = 0.5: both kinds (fixed seed)


def test_text_only_trains_on_a_plain_folder_of_silent_captioned_clips(tiny_dir, tmp_path, monkeypatch):
    """Text-To-Video fine-tuning data: ``data.dataset=folder``, mp4 files without sound, each with
    ``<name>.txt``; the captions are the prompts and no audio is read."""
    import numpy as np

    from avalign.io import write_video
    from tempotokens.training.loop import Trainer

    folder = tmp_path / "clips"
    folder.mkdir()
    captions = {"a": "a red square moves", "b": "a blue disc rests", "c": "stripes drift left"}
    rng = np.random.default_rng(0)
    for name, text in captions.items():
        write_video(folder / f"{name}.mp4", rng.integers(0, 255, (24, 32, 32, 3), dtype=np.uint8), 12)
        (folder / f"{name}.txt").write_text(text + "\n")
    cfg = _cfg(tiny_dir, folder, tmp_path / "out", **{"data.dataset": "folder", "train.unet": "full",
                                                       "train.audio": False, "data.prompt": "a {label}"})
    trainer = Trainer(cfg)
    assert [c.clip_id for c in trainer.dataset.clips] == ["a", "b", "c"]
    seen = []
    real = trainer.pipe.encode_prompt
    monkeypatch.setattr(trainer.pipe, "encode_prompt",
                        lambda prompts, tokens=None, *a, **k: seen.extend(prompts) or real(prompts, tokens, *a, **k))
    unet = trainer.accelerator.unwrap_model(trainer.pipe.unet)
    before = _snapshot(unet)
    trainer.run()
    assert seen and set(seen) <= set(captions.values())  # 3 steps x 2 clips, every prompt a caption
    assert all(not torch.equal(v, unet.state_dict()[k]) for k, v in before.items() if "weight" in k)


@pytest.mark.parametrize("override, message", [
    (["train.unet=lora"], "needs lora.rank > 0"),
    (["lora.rank=4"], "needs train.unet=lora"),
    (["train.unet=everything"], "train.unet must be one of frozen, lora, full"),
    (["train.audio=false", "train.unet=full"], "needs data.prompt"),
    (["train.audio=false", "data.prompt=a {label}"], "trains nothing"),
    (["train.unet=full", "data.prompt_dropout=0.1"], "for text-only training"),
    (["train.audio=false", "train.unet=full", "data.prompt=a {label}", "data.prompt_dropout=1.0"], "in [0, 1)"),
    (["validation.holdout=-1"], "validation.holdout"),
])
def test_bad_mode_combinations_are_config_errors(override, message, capsys):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_config("tiny", override)
    from tempotokens.train import main

    assert main(["--config", "tiny", *override]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err


def test_holdout_validates_on_train_clips_only(tiny_dir, synthetic_root, tmp_path):
    from tempotokens.data.datasets import index_dataset
    from tempotokens.training.loop import Trainer

    trainer = Trainer(_cfg(tiny_dir, synthetic_root, tmp_path / "h", **{"validation.holdout": 2,
                                                                         "validation.num_clips": 2}))
    train_ids = [c.clip_id for c in index_dataset(synthetic_root, "synthetic", split="train")]
    assert [c.clip_id for c in trainer.val_clips] == train_ids[-2:]
    assert [c.clip_id for c in trainer.dataset.clips] == train_ids[:-2]


@pytest.mark.slow  # 10 s: a subprocess under bf16 (CI runs it)
def test_full_unet_with_mixed_precision_validates(tiny_dir, synthetic_root, tmp_path):
    """An fp32 UNet (train.unet: full) beside a bf16 VAE and text encoder: training and validation run
    (in a fresh process: accelerate's mixed-precision state is one per process)."""
    import subprocess
    import sys

    from avalign.io import read_jsonl

    out = tmp_path / "bf16"
    over = {"model": tiny_dir, "make_tiny": "false", "output_dir": out, "data.root": synthetic_root,
            "data.make_synthetic": 0, "train.unet": "full", "train.audio": "false", "data.prompt": "a {label}",
            "mixed_precision": "bf16", "max_steps": 1, "checkpointing_steps": 1, "batch_size": 2,
            "validation.steps": 1, "validation.num_clips": 1, "validation.num_inference_steps": 1,
            "validation.height": 32, "validation.width": 32, "validation.num_frames": 8}
    done = subprocess.run([sys.executable, "-m", "tempotokens.train", "--config", "tiny",
                           *[f"{k}={v}" for k, v in over.items()]], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    val = [r for r in read_jsonl(out / "metrics.jsonl") if "val_av_align" in r]
    assert len(val) == 1 and val[0]["val_n"] == 1
