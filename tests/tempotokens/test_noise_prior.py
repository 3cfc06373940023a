"""The model's noise prior (``noise_correlation``): generation and training draw the same mixed noise."""

import numpy as np
import pytest
import torch


def _pipe(rho):
    from tempotokens.tiny import build_tiny_pipeline

    return build_tiny_pipeline(0, num_frames=4, noise_correlation=rho)


def test_independent_noise_is_unchanged():
    from diffusers.utils.torch_utils import randn_tensor

    pipe = _pipe(0.0)
    got = pipe.prepare_latents((2, 4, 6, 8, 8), torch.Generator().manual_seed(3), "cpu", torch.float32)
    assert torch.equal(got, randn_tensor((2, 4, 6, 8, 8), generator=torch.Generator().manual_seed(3)))


def test_mixed_noise_by_hand_and_its_frame_correlation():
    rho = 0.8
    pipe = _pipe(rho)
    got = pipe.prepare_latents((2, 4, 6, 8, 8), torch.Generator().manual_seed(3), "cpu", torch.float32)
    g = torch.Generator().manual_seed(3)
    per_frame = torch.randn((2, 4, 6, 8, 8), generator=g)
    shared = torch.randn((2, 4, 1, 8, 8), generator=g)
    assert torch.allclose(got, np.sqrt(rho) * shared + np.sqrt(1 - rho) * per_frame, atol=1e-6)
    big = pipe.prepare_latents((8, 4, 2, 32, 32), torch.Generator().manual_seed(0), "cpu", torch.float32)
    a, b = big[:, :, 0].flatten().numpy(), big[:, :, 1].flatten().numpy()
    assert abs(np.corrcoef(a, b)[0, 1] - rho) < 0.03 and abs(a.var() - 1) < 0.05  # unit variance, rho apart


def test_the_prior_is_saved_with_the_model_and_checked(tmp_path):
    from tempotokens import AudioToVideoPipeline
    from tempotokens.tiny import make_tiny

    make_tiny(tmp_path / "m", noise_correlation=0.5)
    assert AudioToVideoPipeline.from_pretrained(tmp_path / "m").noise_correlation == 0.5
    with pytest.raises(ValueError, match="noise_correlation"):
        _pipe(1.0)


def test_training_noise_follows_the_model_prior(tmp_path, synthetic_root):
    from tempotokens.tiny import make_tiny
    from tempotokens.training.loop import Trainer

    from tests.fixtures.training import tiny_train_config

    model = make_tiny(tmp_path / "m", noise_correlation=0.9)
    trainer = Trainer(tiny_train_config(model, synthetic_root, tmp_path / "out", max_steps=1, batch_size=2,
                                        **{"data.num_frames": 8}))
    seen = []
    real = trainer.noise_scheduler.add_noise
    trainer.noise_scheduler.add_noise = lambda x, noise, t: seen.append(noise.clone()) or real(x, noise, t)
    trainer.run()
    noise = seen[-1]  # (B, C, F, h, w)
    frames = noise.permute(2, 0, 1, 3, 4).reshape(noise.shape[2], -1).numpy()
    corr = np.corrcoef(frames)[np.triu_indices(len(frames), 1)]
    assert abs(corr.mean() - 0.9) < 0.05 and abs(frames.var() - 1) < 0.15
