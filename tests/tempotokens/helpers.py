"""Helpers shared by the trainer tests."""

from tempotokens.training.config import load_config


def tiny_train_config(tiny_dir, root, out, **over):
    """``configs/tiny.yaml`` on the tiny model and ``root``'s clips: 4 steps, checkpoints every 2,
    no validation; ``over`` sets any other field (``{"lora.rank": 2}``)."""
    items = {"model": str(tiny_dir), "make_tiny": False, "output_dir": str(out), "data.root": str(root),
             "data.make_synthetic": 0, "validation.steps": 0, "max_steps": 4, "checkpointing_steps": 2,
             "batch_size": 2, **over}
    return load_config("tiny", [f"{k}={v}" for k, v in items.items()])


def adaptor_weights(path):
    """The state dict of an adaptor folder (``save_pretrained``)."""
    from tempotokens import AudioTokenAdaptor

    return AudioTokenAdaptor.from_pretrained(path).state_dict()
