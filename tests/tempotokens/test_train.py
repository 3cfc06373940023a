"""The trainer on the tiny model and synthetic clips (CPU)."""

from pathlib import Path

import pytest
import torch

from avalign.io import read_jsonl
from tempotokens.training.config import CONFIG_DIR, load_config

from tests.fixtures.training import adaptor_weights, tiny_train_config


_cfg = tiny_train_config


_weights = adaptor_weights


@pytest.mark.parametrize("name", ["vggsound", "landscape", "audioset_drum", "tiny"])
def test_configs_parse(name):
    cfg = load_config(CONFIG_DIR / f"{name}.yaml")
    assert cfg.optim.l1_weight == 0.01 and cfg.optim.lr_scheduler == "constant"
    assert cfg.data.classes is None  # all classes
    if name != "tiny":
        assert cfg.optim.learning_rate == 1e-5 and cfg.data.num_frames == 24 and cfg.validation.guidance_scale == 25
        assert cfg.batch_size == (1 if name == "vggsound" else 4)


def test_bad_config_key_is_named():
    with pytest.raises(Exception, match="no_such_field"):
        load_config("tiny", ["optim.no_such_field=1"])
    from tempotokens.train import main

    assert main(["--config", "tiny", "optim.no_such_field=1"]) == 2


def test_resume_equals_uninterrupted(tiny_dir, synthetic_root, tmp_path):
    from tempotokens.training.loop import train

    whole = train(_cfg(tiny_dir, synthetic_root, tmp_path / "whole"))
    part = tmp_path / "part"
    train(_cfg(tiny_dir, synthetic_root, part, max_steps=2))
    assert (part / "checkpoint-2" / "trainer_state.json").exists()
    # a killed run may have logged past its checkpoint: resume drops those lines
    with open(part / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "loss": 99}\n')
    resumed = train(_cfg(tiny_dir, synthetic_root, part), resume="latest")
    a, b = _weights(whole), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [r["step"] for r in read_jsonl(part / "metrics.jsonl") if "loss" in r]
    assert steps == [1, 2, 3, 4]
    assert [r["loss"] for r in read_jsonl(part / "metrics.jsonl")] == [r["loss"] for r in read_jsonl(tmp_path / "whole" / "metrics.jsonl")]


def test_frozen_models_stay_bit_identical_and_adaptor_moves(tiny_dir, synthetic_root, tmp_path):
    from tempotokens.training.loop import Trainer

    trainer = Trainer(_cfg(tiny_dir, synthetic_root, tmp_path / "run", max_steps=2))
    frozen = {name: {k: v.clone() for k, v in getattr(trainer.pipe, name).state_dict().items()}
              for name in ("unet", "vae", "text_encoder", "beats")}
    before = {k: v.clone() for k, v in trainer.accelerator.unwrap_model(trainer.adaptor).state_dict().items()}
    trainer.run()
    for name, state in frozen.items():
        after = getattr(trainer.pipe, name).state_dict()
        assert all(torch.equal(state[k], after[k]) for k in state), name
    after = trainer.accelerator.unwrap_model(trainer.adaptor).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(not p.requires_grad for p in trainer.pipe.unet.parameters())


@pytest.mark.slow  # 13 s: 30+ training steps (CI runs it)
def test_overfitting_two_clips_lowers_the_loss(tiny_dir, synthetic_root, tmp_path):
    from tempotokens.data.datasets import collate
    from tempotokens.training.loop import Trainer

    cfg = _cfg(tiny_dir, synthetic_root, tmp_path / "fit", **{"data.random_start": False, "optim.learning_rate": 3e-3,
                                                               "max_steps": 40, "checkpointing_steps": 1000})
    trainer = Trainer(cfg)
    batch = collate([trainer.dataset[0], trainer.dataset[1]])
    seeds = range(100, 108)  # a fixed set of noise levels and draws
    before = sum(trainer.evaluate_loss(batch, s) for s in seeds)
    for step in range(40):
        trainer.training_step(batch, step)
    after = sum(trainer.evaluate_loss(batch, s) for s in seeds)
    assert after < before


def test_validation_logs_av_align_and_writes_clips(tiny_dir, synthetic_root, tmp_path):
    from tempotokens.training.loop import train

    out = tmp_path / "val"
    adaptor = train(_cfg(tiny_dir, synthetic_root, out, **{"validation.steps": 2, "validation.num_clips": 1,
                                                           "max_steps": 2}))
    vals = [r for r in read_jsonl(out / "metrics.jsonl") if "val_av_align" in r]
    assert len(vals) == 1 and vals[0]["step"] == 2 and vals[0]["val_n"] == 1
    clips = list((out / "validation" / "step-2").glob("*.mp4"))
    assert len(clips) == 1 and clips[0].with_suffix(".wav").exists()
    from tempotokens import AudioToVideoPipeline

    pipe = AudioToVideoPipeline.from_pretrained(tiny_dir, adaptor=adaptor)  # loadable by the pipeline
    assert pipe.adaptor.config.output_size == 32


def test_skipped_items_are_logged_with_their_reason(tiny_dir, synthetic_root, tmp_path):
    import shutil

    from tempotokens.training.loop import train

    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    (root / "video" / "syn00000000.mp4").write_bytes(b"broken")
    out = tmp_path / "skip"
    train(_cfg(tiny_dir, root, out, max_steps=3))
    skipped = read_jsonl(out / "skipped.jsonl")
    assert skipped and all(r["clip_id"] == "syn00000000" and "syn00000000.mp4" in r["reason"] for r in skipped)
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")][-1] == 3


def test_lora_trains_only_the_lora(tiny_dir, synthetic_root, tmp_path):
    pytest.importorskip("peft")
    from tempotokens.training.loop import Trainer

    trainer = Trainer(_cfg(tiny_dir, synthetic_root, tmp_path / "lora", **{"train.unet": "lora", "lora.rank": 2, "max_steps": 2}))
    unet = trainer.accelerator.unwrap_model(trainer.pipe.unet)
    base = {k: v.clone() for k, v in unet.state_dict().items() if "lora" not in k}
    lora = {k: v.clone() for k, v in unet.state_dict().items() if "lora_B" in k}
    trainer.run()
    state = unet.state_dict()
    assert all(torch.equal(base[k], state[k]) for k in base)
    assert any(not torch.equal(lora[k], state[k]) for k in lora)
    assert (Path(trainer.out) / "checkpoint-2" / "unet_lora.safetensors").exists()
