"""The toy TempoTokens: trained here, on the synthetic clips, with our own trainer.

``python -m tempotokens toy OUT`` (``make toy``) runs the recipe, every stage resumable:

1. **data**: the demo's synthetic dataset (:data:`~tempotokens.data.synthetic.DEMO_DATASET`); the last
   ``holdout`` training clips are the validation split, the test clips are never seen;
2. **init**: the tiny random-weight model (:func:`~tempotokens.tiny.build_tiny_pipeline`) with BEATs'
   patch at 8 (80 ms, about one frame at 12 fps) and ``token_pooling: temporal``; BEATs and the text
   encoder stay random and frozen through every stage; the adaptor's input standardized with BEATs'
   statistics on the training clips and its biases zeroed (:func:`prepare_adaptor`);
3. **vae**: the VAE fitted on single training frames (:mod:`tempotokens.training.vae`);
4. **backbone**: a text-to-video UNet trained in full on the class prompts ``A video of {label}``
   (``train.audio: false``, ``train.unet: full``);
5. **adaptor**: the paper's step, the adaptor on the backbone with LoRA (``train.unet: lora``, the
   default: the toy's frozen backbones never used the audio; ``frozen`` when the recipe says so),
   validated every ``val_every`` steps on the held-out clips; the best validation AV-Align selects
   the weights;
6. **export**: the model folder in fp16 safetensors, ``OUT/model/``, and the learning curves
   (``OUT/metrics.jsonl``, ``OUT/curves.png``).

Everything is drawn from the recipe's seed, so a rerun on the same machine and thread count is
bit-identical, and a killed run resumes in the stage it stopped in, from its last checkpoint, to the
same weights.  ``tempotokens/toy_model/`` is the shipped copy (:data:`SHIPPED`); the recipe never
writes there (``--install`` copies a finished build over it, explicitly).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from avalign.io import publish_dir, save_figure, write_json_atomic

from .data.synthetic import DEMO_DATASET, MOTIONS
from .defaults import TOY

SHIPPED = Path(__file__).resolve().parent / "toy_model"
#: Generation settings of the toy model (and of every demo row), fixed before it was trained.
TOY_GENERATION = TOY.as_dict()
MAX_MODEL_BYTES = 5 * 2**20


class ToyError(ValueError):
    """A recipe that cannot run as asked (one line; exit status 2)."""


@dataclass(frozen=True)
class ToyRecipe:
    """Every setting of the recipe (recorded in ``OUT/toy.json``)."""

    seed: int = 0
    #: the dataset (the demo's, DEMO_DATASET, by default): clips, seed, test fraction, seconds and source size
    data_clips: int = DEMO_DATASET["num_clips"]
    data_seed: int = DEMO_DATASET["seed"]
    data_test_fraction: float = DEMO_DATASET["test_fraction"]
    data_duration_s: float = 4.0
    data_size: int = 96
    #: how an event moves the object (tempotokens.data.synthetic.MOTIONS): "jolt" returns to rest, so a
    #: frame's content is a function of the sound just before it (the "step" motion's is not)
    data_motion: str = DEMO_DATASET["motion"]
    data_jolt_amplitude: float = DEMO_DATASET["jolt_amplitude"]
    data_jolt_tau_s: float = DEMO_DATASET["jolt_tau_s"]
    holdout: int = 12  #: training clips held out as the validation split
    beats_patch: int = 8
    token_pooling: str = "temporal"
    vae_levels: int = 3  #: 8x8 latents for 32x32 frames
    #: the model's noise prior: the share of each frame's noise common to the clip (PYoCo's mixed noise)
    noise_correlation: float = 0.8
    batch_size: int = 4
    vae_steps: int = 600
    vae_batch: int = 32
    vae_lr: float = 1e-3
    backbone_steps: int = 1500
    backbone_lr: float = 1e-3  #: peak of a cosine schedule after 100 warm-up steps
    prompt_dropout: float = 0.1  #: the backbone's empty-prompt rate (classifier-free guidance)
    adaptor_steps: int = 3500
    adaptor_lr: float = 3e-3  #: adaptor lr; 3e-3 over 1e-3 on validation (0.526 vs 0.460, CIs overlap; docs)
    adaptor_l1: float = 0.0  #: optim.l1_weight of the adaptor stage (the authors' is 0.01)
    adaptor_unet: str = "lora"  #: frozen (the paper) | lora
    lora_rank: int = 16
    lora_lr: float = 3e-3  #: the LoRA weights' lr (changed with adaptor_lr)
    checkpointing_steps: int = 100
    val_every: int = 250  #: adaptor-stage validation period (steps); the backbone's: its last step
    val_clips: int = 12


#: A few steps per stage on a few small clips: the recipe's code path in seconds (the test suite's).
MICRO = ToyRecipe(data_clips=8, data_test_fraction=0.25, data_duration_s=2.5, data_size=32, holdout=2,
                  batch_size=2, vae_steps=3, vae_batch=4, backbone_steps=2, adaptor_steps=2,
                  checkpointing_steps=1, val_every=2, val_clips=1)


def _train_config(recipe: ToyRecipe, stage: str, model: Path, out: Path, data: Path):
    from .training.config import load_config

    g = TOY_GENERATION
    common = {
        "model": str(model), "output_dir": str(out), "seed": recipe.seed + {"backbone": 1, "adaptor": 2}[stage],
        "batch_size": recipe.batch_size, "checkpointing_steps": recipe.checkpointing_steps,
        "checkpoints_total_limit": 1, "gradient_checkpointing": False,
        "data.dataset": "synthetic", "data.root": str(data), "data.num_frames": g["num_frames"], "data.fps": g["fps"],
        "data.height": g["height"], "data.width": g["width"], "validation.holdout": recipe.holdout,
        "validation.num_clips": recipe.val_clips, "validation.num_frames": g["num_frames"],
        "validation.height": g["height"], "validation.width": g["width"],
        "validation.num_inference_steps": g["steps"], "validation.guidance_scale": g["guidance"],
    }
    if stage == "backbone":
        steps = recipe.backbone_steps
        over = {"train.audio": False, "train.unet": "full", "data.prompt": "A video of {label}",
                "data.prompt_dropout": recipe.prompt_dropout, "optim.lr_scheduler": "cosine",
                "optim.lr_warmup_steps": min(100, steps // 10),
                "optim.unet_learning_rate": recipe.backbone_lr, "validation.steps": steps}
    else:
        steps = recipe.adaptor_steps
        over = {"train.unet": recipe.adaptor_unet, "optim.learning_rate": recipe.adaptor_lr,
                "optim.l1_weight": recipe.adaptor_l1,
                "adaptor.hidden_size": 48, "adaptor.token_pooling": recipe.token_pooling,
                "validation.steps": recipe.val_every, "validation.select_best": True,
                "adaptor.init": str(model / "adaptor")}
        if recipe.adaptor_unet == "lora":
            over.update({"lora.rank": recipe.lora_rank, "lora.learning_rate": recipe.lora_lr})
    items = {**common, "max_steps": steps, **over}
    return load_config(None, [f"{k}={v}" for k, v in items.items()])


def check_recipe(recipe: ToyRecipe) -> None:
    """Refuse (:class:`ToyError`, one line) a recipe that could not run to its end: checked before
    anything is written, so a bad ``--set`` never costs a stage."""
    if recipe.adaptor_unet not in ("frozen", "lora"):
        raise ToyError(f"adaptor_unet must be frozen or lora (the paper's step), got {recipe.adaptor_unet!r}")
    positive = ("data_clips", "batch_size", "vae_steps", "vae_batch", "backbone_steps", "adaptor_steps",
                "checkpointing_steps", "val_every", "val_clips", "beats_patch")
    bad = [f"{k}={getattr(recipe, k)}" for k in positive if getattr(recipe, k) < 1]
    n_test = max(1, int(round(recipe.data_clips * recipe.data_test_fraction)))
    if not 0 <= recipe.holdout < recipe.data_clips - n_test:
        bad.append(f"holdout={recipe.holdout} (the train split has {recipe.data_clips - n_test} clips)")
    if not 0.0 <= recipe.noise_correlation < 1.0:
        bad.append(f"noise_correlation={recipe.noise_correlation} (needs [0, 1))")
    if recipe.data_motion not in MOTIONS:
        bad.append(f"data_motion={recipe.data_motion!r} (one of {', '.join(MOTIONS)})")
    if recipe.token_pooling not in ("reference", "temporal"):
        bad.append(f"token_pooling={recipe.token_pooling!r} (reference or temporal)")
    if not 0.0 < recipe.data_test_fraction < 1.0:
        bad.append(f"data_test_fraction={recipe.data_test_fraction} (needs (0, 1))")
    if not 0.0 <= recipe.prompt_dropout < 1.0:
        bad.append(f"prompt_dropout={recipe.prompt_dropout} (needs [0, 1))")
    bad += [f"{k}={getattr(recipe, k)} (needs > 0)" for k in ("vae_lr", "backbone_lr", "adaptor_lr", "lora_lr",
                                                                "data_duration_s", "data_size", "data_jolt_tau_s")
            if not getattr(recipe, k) > 0]
    bad += [f"{k}={getattr(recipe, k)} (needs >= 0)" for k in ("seed", "data_seed", "adaptor_l1", "lora_rank")
            if getattr(recipe, k) < 0]
    if bad:
        raise ToyError("bad recipe: " + ", ".join(bad))
    for stage in ("backbone", "adaptor"):  # the trainer's own checks, before any stage runs
        try:
            _train_config(recipe, stage, Path("model"), Path("out"), Path("data"))
        except ValueError as exc:
            raise ToyError(f"bad recipe for the {stage} stage: {' '.join(str(exc).split())}") from None


def prepare_adaptor(model: Path, data: Path, holdout: int, seconds: float = 2.0) -> dict:
    """Ready the fresh adaptor of ``model`` for training (written back to ``model/adaptor``):

    * its input standardized with the per-channel mean and standard deviation of BEATs' layers over
      the training clips' first ``seconds`` (the validation split's ``holdout`` clips excluded);
    * its fc1..fc4 biases zeroed.

    Random BEATs layers vary little from frame to frame (0.2 of their norm) and the random biases
    flatten what is left: untrained, the per-frame tokens vary 0.03 of their norm, 2.4 after this.
    Returns the statistics' summary (``clips``, ``tokens``).
    """
    import torch

    from avalign.io import load_audio

    from .adaptor import AudioTokenAdaptor
    from .beats import load_beats
    from .data.datasets import index_dataset

    clips = index_dataset(root=data, dataset="synthetic", split="train")
    clips = clips[:-holdout] if holdout else clips
    beats = load_beats(model / "beats")
    layers = []
    with torch.no_grad():
        for clip in clips:
            audio, _ = load_audio(clip.audio or clip.video, 16000, duration_s=seconds)
            layers.append(beats(torch.as_tensor(audio, dtype=torch.float32)[None]).layers[0])
    layers = torch.cat(layers)
    adaptor = AudioTokenAdaptor.from_pretrained(model / "adaptor")
    adaptor.set_input_stats(layers)
    adaptor.zero_biases()
    tmp = model / ".tmp-adaptor"
    adaptor.save_pretrained(tmp)
    publish_dir(tmp, model / "adaptor")
    return {"clips": len(clips), "tokens": int(layers.shape[0])}


def _assemble(dst: Path, base: Path, **components: Path) -> Path:
    """``dst``: a copy of the model folder ``base`` with some component folders replaced."""
    tmp = dst.with_name(f".tmp-{dst.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(base, tmp)
    for name, src in components.items():
        shutil.rmtree(tmp / name)
        shutil.copytree(src, tmp / name)
    return publish_dir(tmp, dst)


def _done(folder: Path) -> bool:
    return (folder / "DONE.json").is_file()


def _mark_done(folder: Path, **info) -> None:
    write_json_atomic(folder / "DONE.json", info)


def export(model: Path, out: Path) -> int:
    """The model at ``model`` in fp16 safetensors at ``out`` (diffusers layout); returns its bytes."""
    from .pipeline import AudioToVideoPipeline

    pipe = AudioToVideoPipeline.from_pretrained(model, use_dpm_solver=False)
    tmp = out.with_name(f".tmp-{out.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    for name in ("vae", "text_encoder", "unet", "beats", "adaptor"):
        getattr(pipe, name).half()  # nn.Module.half: no dtype note from diffusers' to()
    pipe.save_pretrained(tmp, safe_serialization=True)
    for config in [tmp / "model_index.json", *tmp.glob("*/config.json")]:  # no build path in the shipped files
        data = json.loads(config.read_text())
        if data.pop("_name_or_path", None) is not None:
            config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    size = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
    publish_dir(tmp, out)
    return size


def run_recipe(out_dir: str | os.PathLike, recipe: ToyRecipe = ToyRecipe(), overwrite: bool = False,
               progress: bool = True) -> Path:
    """Run (or resume) the recipe into ``out_dir``; returns the exported model folder ``OUT/model``.

    Raises :class:`ToyError` when ``out_dir`` holds a finished toy model or a run of another recipe
    (unless ``overwrite``), or is not empty and not a toy build (always: ``overwrite`` replaces only
    what the recipe made).
    """
    import torch

    from .data.synthetic import make_synthetic
    from .tiny import make_tiny
    from .training.loop import train
    from .training.vae import VaeFitConfig, fit_vae

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ToyError(f"{out}: exists and is not a folder")
    package = SHIPPED.parent
    if out.resolve() == package or package in out.resolve().parents or out.resolve() in package.parents:
        raise ToyError(f"{out}: inside (or above) the tempotokens package; build elsewhere and use --install")
    check_recipe(recipe)
    record = out / "toy.json"
    started = out / "recipe.json"
    if record.is_file():
        if not overwrite:
            raise ToyError(f"{out}: holds a finished toy model ({record}); pass --overwrite to rebuild it")
        shutil.rmtree(out)
    elif started.is_file() and json.loads(started.read_text()) != asdict(recipe):
        if not overwrite:
            raise ToyError(f"{out}: a run of another recipe is in progress there ({started}); pass --overwrite "
                           "to discard it, or use another folder")
        shutil.rmtree(out)
    elif out.is_dir() and any(out.iterdir()) and not started.is_file():
        # never delete what the recipe did not make, --overwrite or not
        raise ToyError(f"{out}: not empty and not a toy build (no recipe.json); use an empty or new folder"
                       + (" (--overwrite only replaces a toy build)" if overwrite else ""))
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(started, asdict(recipe))
    stages, seconds = out / "stages", {}

    data = out / "data"
    if not (data / "DONE.json").is_file():
        if data.exists():
            shutil.rmtree(data)
        make_synthetic(data, num_clips=recipe.data_clips, seed=recipe.data_seed, duration_s=recipe.data_duration_s,
                       size=recipe.data_size, test_fraction=recipe.data_test_fraction, motion=recipe.data_motion,
                       jolt_amplitude=recipe.data_jolt_amplitude, jolt_tau_s=recipe.data_jolt_tau_s)
        _mark_done(data)

    init = stages / "init"
    if not _done(init):
        if init.exists():
            shutil.rmtree(init)
        make_tiny(init, seed=recipe.seed, num_frames=TOY_GENERATION["num_frames"], beats_patch=recipe.beats_patch,
                  token_pooling=recipe.token_pooling, vae_levels=recipe.vae_levels,
                  noise_correlation=recipe.noise_correlation)
        _mark_done(init, adaptor_input_stats=prepare_adaptor(init, data, recipe.holdout))

    vae_dir = stages / "vae"
    if not _done(vae_dir):
        from diffusers import AutoencoderKL

        t0 = time.perf_counter()
        vae = AutoencoderKL.from_pretrained(init / "vae")
        g = TOY_GENERATION
        fit_vae(vae, VaeFitConfig(data_root=str(data), holdout=recipe.holdout, height=g["height"], width=g["width"],
                                  steps=recipe.vae_steps, batch_size=recipe.vae_batch, learning_rate=recipe.vae_lr,
                                  seed=recipe.seed, checkpointing_steps=recipe.checkpointing_steps),
                vae_dir, progress=progress)
        _mark_done(vae_dir, seconds=time.perf_counter() - t0)

    backbone = stages / "backbone"
    if not _done(backbone):
        t0 = time.perf_counter()
        model = _assemble(stages / "backbone-model", init, vae=vae_dir / "vae")
        train(_train_config(recipe, "backbone", model, backbone, data), resume="latest")
        _mark_done(backbone, seconds=time.perf_counter() - t0)

    adaptor = stages / "adaptor"
    if not _done(adaptor):
        t0 = time.perf_counter()
        model = _assemble(stages / "adaptor-model", stages / "backbone-model", unet=backbone / "unet")
        train(_train_config(recipe, "adaptor", model, adaptor, data), resume="latest")
        _mark_done(adaptor, seconds=time.perf_counter() - t0)

    best = adaptor / "best" if (adaptor / "best" / "adaptor").is_dir() else adaptor
    parts = {"adaptor": best / "adaptor"}
    if recipe.adaptor_unet == "lora":
        parts["unet"] = merge_lora(stages / "adaptor-model", best / "unet_lora.safetensors", stages / "merged-unet")
    final = _assemble(stages / "final-model", stages / "adaptor-model", **parts)
    size = export(final, out / "model")
    if size > MAX_MODEL_BYTES:
        raise ToyError(f"{out / 'model'}: {size / 2**20:.2f} MiB, over the {MAX_MODEL_BYTES / 2**20:.0f} MiB budget")
    curves = collect_curves(out)
    try:
        plot_curves(curves, out / "curves.png")
    except ImportError:  # matplotlib is a core dependency; this only guards odd installs
        pass
    for stage in ("vae", "backbone", "adaptor"):
        done = json.loads((stages / stage / "DONE.json").read_text())
        seconds[stage] = done.get("seconds")
    selected = json.loads((best / "best.json").read_text()) if (best / "best.json").is_file() else None
    write_json_atomic(record, {"recipe": asdict(recipe), "generation": TOY_GENERATION, "model_bytes": size,
                               "selected": selected, "stage_seconds": seconds, "torch_threads": torch.get_num_threads(),
                               "torch": torch.__version__})
    return out / "model"


def merge_lora(model: Path, lora_file: Path, dst: Path) -> Path:
    """The UNet of ``model`` with the LoRA weights of ``lora_file`` merged in, saved at ``dst``."""
    from diffusers import UNet3DConditionModel
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    unet = UNet3DConditionModel.from_pretrained(model / "unet")
    state = load_file(lora_file)
    rank = next(v.shape[0] for k, v in state.items() if "lora_A" in k)
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_k", "to_q", "to_v", "to_out.0"])
    inject_adapter_in_model(config, unet)
    set_peft_model_state_dict(unet, state)
    from peft.tuners.lora import LoraLayer

    for module in unet.modules():
        if isinstance(module, LoraLayer):
            module.merge()
    plain = {k.replace(".base_layer", ""): v for k, v in unet.state_dict().items() if "lora_" not in k}
    merged = UNet3DConditionModel.from_config(unet.config)
    merged.load_state_dict(plain)
    merged.save_pretrained(dst)
    return dst


def collect_curves(out: Path) -> list[dict]:
    """Every stage's ``metrics.jsonl`` rows tagged with ``stage``, into ``OUT/metrics.jsonl``."""
    from avalign.io import read_jsonl, rewrite_jsonl

    rows = [{"stage": stage, **r} for stage in ("vae", "backbone", "adaptor")
            for r in read_jsonl(out / "stages" / stage / "metrics.jsonl")]
    rewrite_jsonl(out / "metrics.jsonl", rows)
    return rows


def plot_curves(rows: list[dict], path: Path) -> Path:
    """Loss per stage (running mean over 25 steps) and validation AV-Align with its 95% CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for ax, stage, key in zip(axes[:3], ("vae", "backbone", "adaptor"), ("mse", "mse", "mse")):
        y = np.array([r[key] for r in rows if r["stage"] == stage and key in r])
        x = np.array([r["step"] for r in rows if r["stage"] == stage and key in r])
        if len(y):
            k = min(25, len(y))
            ax.plot(x, y, color="0.8", lw=0.6)
            ax.plot(x[k - 1:], np.convolve(y, np.ones(k) / k, mode="valid"), color="C0")
            ax.set_yscale("log")
        ax.set_title(f"{stage}: {'reconstruction' if stage == 'vae' else 'noise-prediction'} MSE")
        ax.set_xlabel("step")
    ax = axes[3]
    for stage, color in (("backbone", "C1"), ("adaptor", "C2")):
        val = [r for r in rows if r["stage"] == stage and r.get("val_av_align") is not None]
        if val:
            x = np.array([r["step"] for r in val])
            y = np.array([r["val_av_align"] for r in val])
            lo = np.array([r["val_ci_low"] for r in val])
            hi = np.array([r["val_ci_high"] for r in val])
            ax.errorbar(x, y, yerr=[y - lo, hi - y], color=color, marker="o", capsize=3,
                        label=f"{stage} ({'text' if stage == 'backbone' else 'audio'})")
    ax.set_title("validation AV-Align, held-out clips (95% CI)", fontsize=10)
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def install(model: Path, target: Path | None = None) -> Path:
    """Copy a finished build's model over the shipped copy (``target``, default :data:`SHIPPED`; the
    explicit, separate step)."""
    target = SHIPPED if target is None else target
    if not (model / "model_index.json").is_file():
        raise ToyError(f"{model}: not a model folder (no model_index.json)")
    try:
        return _assemble(target, model)
    except PermissionError as exc:
        raise ToyError(f"{exc.filename or target}: cannot write there (permission denied); install from a "
                       "writable checkout (pip install -e .)") from None
