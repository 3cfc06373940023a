"""The training timestep range (``optim.timestep_min/max``) and the audio-dependence probe."""

import json

import pytest
import torch


def test_training_draws_timesteps_only_inside_the_range(tmp_path, synthetic_root):
    from tempotokens.tiny import make_tiny
    from tempotokens.training.loop import Trainer

    from tests.fixtures.training import tiny_train_config

    model = make_tiny(tmp_path / "m")
    trainer = Trainer(tiny_train_config(model, synthetic_root, tmp_path / "out", max_steps=1, batch_size=2,
                                        **{"data.num_frames": 4, "optim.timestep_min": 995,
                                           "optim.timestep_max": 996}))
    seen = []
    real = trainer.noise_scheduler.add_noise
    trainer.noise_scheduler.add_noise = lambda x, noise, t: seen.append(t.clone()) or real(x, noise, t)
    trainer.run()
    assert torch.cat(seen).tolist() == [995, 995]  # [995, 996) holds one timestep; without the range: any


@pytest.mark.parametrize("low, high", [(-1, None), (500, 500), (0, 1001), (900, 100)])
def test_a_bad_timestep_range_is_one_clear_error(tmp_path, synthetic_root, low, high):
    from tempotokens.tiny import make_tiny
    from tempotokens.training.loop import Trainer

    from tests.fixtures.training import tiny_train_config

    over = {"optim.timestep_min": low, **({} if high is None else {"optim.timestep_max": high})}
    model = make_tiny(tmp_path / "m")
    with pytest.raises(ValueError, match=r"optim.timestep_min/max must satisfy 0 <= min < max <= 1000"):
        Trainer(tiny_train_config(model, synthetic_root, tmp_path / "out", max_steps=1, **over))  # before any step


def test_partners_share_the_label_and_are_never_the_clip_itself():
    from tempotokens.training.probe import partners

    assert partners(["a", "b", "a", "c", "b", "a"]) == [2, 4, 5, 4, 1, 0]  # by hand; "c" is alone: next clip
    assert partners(["x", "y"]) == [1, 0]


def _batch(root, n):
    from tempotokens.data.datasets import AudioVideoClips, collate, index_dataset

    clips = index_dataset(root, "synthetic", split=None)[:n]
    data = AudioVideoClips(clips, 8, 32, 32, random_start=False, fps=12.0)
    return collate([data[i] for i in range(len(data))])


def test_a_model_whose_tokens_ignore_the_audio_gains_exactly_nothing(synthetic_root):
    from tempotokens.tiny import build_tiny_pipeline
    from tempotokens.training.probe import audio_dependence

    pipe = build_tiny_pipeline(seed=0, num_frames=8)
    with torch.no_grad():  # every adaptor output a constant: fc4's weight zero leaves its bias
        pipe.adaptor.fc4.weight.zero_()
    rows = audio_dependence(pipe, _batch(synthetic_root, 3), timesteps=(10, 900), repeats=2)  # 2: the mean
    assert [r.timestep for r in rows] == [10, 900]
    for r in rows:
        assert r.mse_own == r.mse_other and r.gain == 0.0 and r.clips == 3 and r.repeats == 2


def test_the_probe_mse_is_the_noise_prediction_error_by_hand(synthetic_root):
    """One clip pair, one timestep, one draw: recomputed here from the DDPM formula and the UNet."""
    from tempotokens.frame_attention import FRAME_STATES
    from tempotokens.tiny import build_tiny_pipeline
    from tempotokens.training.loop import step_seed
    from tempotokens.training.probe import audio_dependence

    pipe = build_tiny_pipeline(seed=1, num_frames=8)
    batch = _batch(synthetic_root, 2)
    [row] = audio_dependence(pipe, batch, timesteps=(600,), repeats=1, seed=3)
    mse = {}
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2  # scaled_linear
    abar = torch.cumprod(1 - betas, 0)[600].float()
    with torch.no_grad():
        x0 = torch.stack([pipe.vae.encode(batch["pixel_values"][i]).latent_dist.mean for i in range(2)])
        x0 = x0.permute(0, 2, 1, 3, 4) * pipe.vae.config.scaling_factor
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(step_seed(3, 600, 0)))
        noisy = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        for which, order in (("own", (0, 1)), ("other", (1, 0))):  # other: the swapped audio
            layers = torch.cat([pipe.beats(batch["audio"][i: i + 1]).layers for i in order])
            cond, states = pipe.encode_prompt([None, None], pipe.adaptor(layers, num_frames=8), 8)
            pred = pipe.unet(noisy, torch.tensor([600, 600]), encoder_hidden_states=cond,
                             cross_attention_kwargs={FRAME_STATES: states}).sample
            mse[which] = ((pred - noise) ** 2).mean().item()
    assert abs(mse["own"] - mse["other"]) > 2e-5 * mse["own"]  # the case tells own from other (10x the tolerance)
    assert row.mse_own == pytest.approx(mse["own"], rel=2e-6) and row.mse_other == pytest.approx(mse["other"], rel=2e-6)


def test_probe_cli_writes_the_rows_and_refuses_bad_input(tmp_path, synthetic_root, capsys):
    from tempotokens.cli import main
    from tempotokens.tiny import make_tiny

    model = make_tiny(tmp_path / "m", num_frames=8)
    out = tmp_path / "probe.json"
    assert main(["probe", "--model", str(model), "--data-root", str(synthetic_root), "--clips", "3",
                 "--num-frames", "8", "--timesteps", "200,800", "--repeats", "1", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert [r["timestep"] for r in record["rows"]] == [200, 800] and len(record["clip_ids"]) == 3
    assert "gain" in capsys.readouterr().out
    for argv, message in ((["--timesteps", "1000"], "must be in [0, 1000)"), (["--timesteps", "a"], "comma-separated"),
                          (["--clips", "1"], "at least 2"), (["--fps", "0"], "--fps must be positive"),
                          (["--size", "0x0"], "at least 8x8")):
        assert main(["probe", "--model", str(model), "--data-root", str(synthetic_root), *argv]) == 2
        assert message in capsys.readouterr().err
    assert main(["probe", "--model", str(tmp_path), "--data-root", str(synthetic_root)]) == 2
    assert "not a model folder" in capsys.readouterr().err
