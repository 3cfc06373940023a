"""The toy recipe at its micro setting: every stage, the export, refusals, kill and resume."""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from tempotokens.toy import MICRO, ToyError, run_recipe


def _tensors(model: Path) -> dict:
    out = {}
    for f in sorted(model.rglob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            out.update({f"{f.parent.name}/{k}": st.get_tensor(k) for k in st.keys()})
    return out


@pytest.fixture(scope="module")
def micro_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "build"
    run_recipe(out, MICRO, progress=False)
    return out


def test_micro_recipe_writes_every_stage_and_an_fp16_model(micro_build):
    from tempotokens import AudioToVideoPipeline

    record = json.loads((micro_build / "toy.json").read_text())
    assert record["recipe"]["adaptor_steps"] == MICRO.adaptor_steps and set(record["stage_seconds"]) == {
        "vae", "backbone", "adaptor"}
    tensors = _tensors(micro_build / "model")
    assert {k.split("/")[0] for k in tensors} == {"vae", "text_encoder", "unet", "beats", "adaptor"}
    assert all(t.dtype == torch.float16 for t in tensors.values())
    assert record["model_bytes"] == sum(f.stat().st_size for f in (micro_build / "model").rglob("*") if f.is_file())
    rows = [json.loads(line) for line in (micro_build / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in rows} == {"vae", "backbone", "adaptor"}
    val = [r for r in rows if "val_av_align" in r]
    assert {r["stage"] for r in val} == {"backbone", "adaptor"} and all("val_ci_low" in r for r in val)
    assert (micro_build / "curves.png").stat().st_size > 0
    # the exported model is what the selected (best) adaptor and the trained backbone were, in fp16
    best = micro_build / "stages" / "adaptor" / "best"
    assert record["selected"]["step"] == json.loads((best / "best.json").read_text())["step"]
    for part, src in (("adaptor", best / "adaptor"), ("unet", micro_build / "stages" / "merged-unet"),
                      ("vae", micro_build / "stages" / "vae" / "vae")):
        with safe_open(str(next(src.glob("*.safetensors"))), "pt") as st:
            ref = {k: st.get_tensor(k) for k in st.keys()}
        assert all(torch.equal(tensors[f"{part}/{k}"], v.half()) for k, v in ref.items()), part
    # the default recipe's LoRA (rank r, alpha r): the merged UNet is the backbone plus B @ A on the
    # attention projections, and the backbone elsewhere (computed here by hand from the two files)
    with safe_open(str(next((micro_build / "stages" / "backbone" / "unet").glob("*.safetensors"))), "pt") as st:
        backbone = {k: st.get_tensor(k) for k in st.keys()}
    with safe_open(str(best / "unet_lora.safetensors"), "pt") as st:
        lora = {k: st.get_tensor(k) for k in st.keys()}
    merged = {k[len("unet/"):]: v for k, v in tensors.items() if k.startswith("unet/")}
    adapted = {k.replace(".lora_A.weight", ".weight") for k in lora if ".lora_A." in k}
    assert len(adapted) == 72
    for k, w in backbone.items():
        if k in adapted:
            a, b = lora[k.replace(".weight", ".lora_A.weight")], lora[k.replace(".weight", ".lora_B.weight")]
            torch.testing.assert_close(merged[k].float(), (w + b @ a).half().float(), atol=2e-3, rtol=0)
        else:
            assert torch.equal(merged[k], w.half()), k
    # BEATs and the text encoder are the random initial ones, frozen through every stage
    init = _tensors(micro_build / "stages" / "init")
    for part in ("beats", "text_encoder"):
        assert all(torch.equal(tensors[k], v.half()) for k, v in init.items() if k.startswith(part + "/")), part
    pipe = AudioToVideoPipeline.from_pretrained(micro_build / "model")
    assert pipe.unet.dtype == torch.float32 and pipe.beats.config.input_patch_size == 8
    assert pipe.adaptor.config.token_pooling == "temporal"


def test_a_finished_build_is_refused_without_overwrite(micro_build, capsys):
    from tempotokens.cli import main

    with pytest.raises(ToyError, match="--overwrite"):
        run_recipe(micro_build, MICRO)
    assert main(["toy", str(micro_build), "--micro"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "finished toy model" in err[0] and str(micro_build) in err[0]


def test_the_shipped_folder_is_never_a_build_target():
    from tempotokens.toy import SHIPPED

    with pytest.raises(ToyError, match="tempotokens package"):
        run_recipe(SHIPPED, MICRO)


def test_bad_recipe_fields_are_one_line(capsys, tmp_path):
    from tempotokens.cli import main

    assert main(["toy", str(tmp_path / "x"), "--micro", "--set", "no_such=1"]) == 2
    assert main(["toy", str(tmp_path / "x"), "--micro", "--set", "vae_steps=many"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no_such" in err[0] and "int" in err[1]


@pytest.mark.slow
def test_killed_recipe_resumes_in_its_stage_to_the_same_weights(micro_build, tmp_path, monkeypatch):
    """Killed in the VAE stage, then again in the adaptor stage: each rerun continues from the
    stage's last checkpoint, and the final model equals the uninterrupted build bit for bit."""
    real_step = torch.optim.AdamW.step
    calls = {"n": 0, "kill_at": 0}

    def step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == calls["kill_at"]:
            raise KeyboardInterrupt
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    out = tmp_path / "killed"
    for kill_at, stage in ((2, "vae"), (MICRO.vae_steps - 1 + MICRO.backbone_steps + 2, "adaptor")):
        calls.update(n=0, kill_at=kill_at)
        with pytest.raises(KeyboardInterrupt):
            run_recipe(out, MICRO, progress=False)
        assert not (out / "stages" / stage / "DONE.json").exists()
        assert list((out / "stages" / stage).glob("checkpoint-*"))  # it stopped in that stage, after a checkpoint
    calls.update(n=0, kill_at=0)
    run_recipe(out, MICRO, progress=False)
    # only the adaptor's steps after its checkpoint were taken again (a restart would retake them all);
    # the second run's kill landing in the adaptor stage shows the same of the VAE's resume
    assert calls["n"] == MICRO.adaptor_steps - 1
    a, b = _tensors(micro_build / "model"), _tensors(out / "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fit_vae_command_fits_resumes_and_sets_the_latent_scale(micro_build, tmp_path, capsys):
    """``python -m tempotokens fit-vae``: every flag; the scaling factor is 1 / std of the fitted
    VAE's latent means over the training frames (recomputed here from the saved weights)."""
    from diffusers import AutoencoderKL

    from tempotokens.cli import main
    from tempotokens.training.vae import VaeFitConfig, training_frames

    args = ["fit-vae", "--model", str(micro_build / "stages" / "init"), "--data-root", str(micro_build / "data"),
            "--dataset", "synthetic", "--out", str(tmp_path / "v"), "--steps", "2", "--batch-size", "4", "--lr", "1e-3",
            "--size", "32x32", "--seed", "3"]
    assert main(args) == 0
    vae = AutoencoderKL.from_pretrained(tmp_path / "v" / "vae")
    pixels = training_frames(VaeFitConfig(data_root=str(micro_build / "data")))
    with torch.no_grad():
        std = float(vae.encode(pixels).latent_dist.mean.std())
    assert abs(vae.config.scaling_factor - 1 / std) < 1e-4 * vae.config.scaling_factor
    assert [r["step"] for r in map(json.loads, (tmp_path / "v" / "metrics.jsonl").read_text().splitlines())] == [1, 2]
    # more steps resume from checkpoint 2 instead of starting again
    assert main([*args[:-6], "--steps", "3", *args[-4:]]) == 0
    steps = [r["step"] for r in map(json.loads, (tmp_path / "v" / "metrics.jsonl").read_text().splitlines())]
    assert steps == [1, 2, 3]
    capsys.readouterr()
    assert main(["fit-vae", "--model", str(tmp_path), "--data-root", str(micro_build / "data"), "--out",
                 str(tmp_path / "w")]) == 2
    assert main([*args[:3], "--data-root", str(tmp_path / "nope"), *args[5:]]) == 2
    assert main([*args[:-4], "--size", "big", *args[-2:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "no vae/" in err[0] and "not found" in err[1] and "WxH" in err[2]


def test_a_folder_the_recipe_did_not_make_is_never_deleted(tmp_path):
    import tempotokens

    victim = tmp_path / "victim"
    (victim / "data").mkdir(parents=True)
    (victim / "data" / "keep.txt").write_text("mine")
    for overwrite in (False, True):  # --overwrite replaces a toy build only
        with pytest.raises(ToyError, match="not a toy build"):
            run_recipe(victim, MICRO, overwrite=overwrite)
        assert (victim / "data" / "keep.txt").read_text() == "mine"
    for inside in (Path(tempotokens.__file__).parent, Path(tempotokens.__file__).parent / "data",
                   Path(tempotokens.__file__).parents[1]):
        with pytest.raises(ToyError, match="tempotokens package"):
            run_recipe(inside, MICRO)


@pytest.mark.parametrize("setting, message", [("adaptor_unet=full", "frozen or lora"),
                                              ("holdout=1000", "holdout=1000"),
                                              ("noise_correlation=1.0", "noise_correlation"),
                                              ("batch_size=0", "batch_size=0"),
                                              ("data_motion=wobble", "data_motion='wobble'"),
                                              ("token_pooling=mean", "token_pooling='mean'"),
                                              ("data_test_fraction=1.0", "data_test_fraction=1.0"),
                                              ("adaptor_lr=0", "adaptor_lr=0.0 (needs > 0)"),
                                              ("seed=-1", "seed=-1 (needs >= 0)")])
def test_bad_recipes_are_refused_before_anything_is_written(setting, message, tmp_path, capsys):
    from tempotokens.cli import main

    assert main(["toy", str(tmp_path / "x"), "--micro", "--set", setting]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "x").exists()


def test_install_copies_a_finished_build_without_rebuilding(micro_build, tmp_path, monkeypatch, capsys):
    import tempotokens.toy as toy
    from tempotokens.cli import main

    monkeypatch.setattr(toy, "SHIPPED", tmp_path / "shipped")
    monkeypatch.setattr(toy, "run_recipe", lambda *a, **k: pytest.fail("rebuilt instead of installing"))
    assert main(["toy", str(micro_build), "--micro", "--install"]) == 0
    a, b = _tensors(micro_build / "model"), _tensors(tmp_path / "shipped")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fit_vae_refuses_to_resume_other_settings(micro_build, tmp_path, capsys):
    from tempotokens.cli import main

    base = ["fit-vae", "--model", str(micro_build / "stages" / "init"), "--data-root", str(micro_build / "data"),
            "--out", str(tmp_path / "v"), "--steps", "1", "--batch-size", "2"]
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--lr", "0.01"]) == 2
    assert main([*base[:-2], "--batch-size", "0"]) == 2
    assert main([*base, "--size", "30x30"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "learning_rate 0.001 -> 0.01" in err[0] and "at least 1" in err[1] and "multiples" in err[2]


def test_install_refuses_a_finished_build_of_another_recipe(micro_build, tmp_path, monkeypatch, capsys):
    """``toy OUT --install`` without --micro on a micro build: one line naming the difference, nothing
    copied (a micro build is never installed as the shipped model by accident)."""
    import tempotokens.toy as toy
    from tempotokens.cli import main

    monkeypatch.setattr(toy, "SHIPPED", tmp_path / "shipped")
    assert main(["toy", str(micro_build), "--install"]) == 2
    assert main(["toy", str(micro_build), "--micro", "--set", "seed=3", "--install"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "another recipe" in err[0] and "vae_steps=3 (asked 600)" in err[0]
    assert "seed=0 (asked 3)" in err[1] and not (tmp_path / "shipped").exists()


def test_out_that_is_a_file_and_a_run_of_another_recipe_are_one_line(tmp_path, capsys):
    import dataclasses
    import json

    from tempotokens.cli import main

    (tmp_path / "file").write_text("x")
    out = tmp_path / "started"
    out.mkdir()
    (out / "recipe.json").write_text(json.dumps(dataclasses.asdict(dataclasses.replace(MICRO, seed=5))))
    assert main(["toy", str(tmp_path / "file"), "--micro"]) == 2
    assert main(["toy", str(out), "--micro"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "is not a folder" in err[0] and "another recipe is in progress" in err[1]
    assert (out / "recipe.json").is_file()  # kept: refused, not discarded


@pytest.mark.slow  # a second micro build (30 s)
def test_overwrite_rebuilds_with_a_frozen_backbone_and_exports_it_unmerged(micro_build, tmp_path):
    """--overwrite on a finished build of another recipe rebuilds it; with adaptor_unet=frozen the
    exported UNet is the backbone's, bit for bit in fp16 (no LoRA merged), and no LoRA file is made."""
    import dataclasses
    import shutil

    out = tmp_path / "b"
    shutil.copytree(micro_build, out)
    frozen = dataclasses.replace(MICRO, adaptor_unet="frozen")
    with pytest.raises(ToyError, match="--overwrite"):
        run_recipe(out, frozen, progress=False)
    run_recipe(out, frozen, overwrite=True, progress=False)
    assert json.loads((out / "toy.json").read_text())["recipe"]["adaptor_unet"] == "frozen"
    assert not list((out / "stages").rglob("unet_lora.safetensors")) and not (out / "stages" / "merged-unet").exists()
    with safe_open(str(next((out / "stages" / "backbone" / "unet").glob("*.safetensors"))), "pt") as st:
        backbone = {k: st.get_tensor(k) for k in st.keys()}
    unet = {k[len("unet/"):]: v for k, v in _tensors(out / "model").items() if k.startswith("unet/")}
    assert unet.keys() == backbone.keys() and all(torch.equal(unet[k], v.half()) for k, v in backbone.items())
