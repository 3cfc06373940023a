"""Training configuration: frozen dataclasses, read from YAML (OmegaConf) with overrides.

Every field is documented here; ``tempotokens/configs/*.yaml`` set them per dataset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "synthetic"  #: vggsound | landscape | audioset_drum | synthetic | avsync15 | greatest_hits | folder
    root: str = "runs/data/synthetic"  #: folder with video/, audio/ and the split CSV
    csv: str | None = None  #: split table (default: ROOT/<dataset>.csv)
    classes: list[str] | None = None  #: labels to keep (null: all)
    exclude_ids: str | None = None  #: VGGSound's unmatch_videos.pkl (or a text file of ids)
    num_frames: int = 24  #: frames per item
    #: frames/s the item's frames are sampled at (the AV-Align protocol's re-timing rule), with exactly
    #: the audio they cover; null: consecutive native frames (the authors' way, 0.8-1.0 s for 24 frames)
    fps: float | None = None
    height: int = 256  #: pixels after resize + center crop
    width: int = 384
    random_start: bool = True  #: random first frame per epoch (from the seed); false: frame 0
    #: prompt of a clip without a caption: a template where ``{label}`` is the clip's class (e.g.
    #: "A video of {label}"); null: ``fallback_prompt`` (the placeholders alone, the authors' way).
    #: With audio, the placeholders are appended to a prompt that has none.
    prompt: str | None = None
    #: text-only training: the chance that an item's prompt is replaced by the empty prompt, so the
    #: model learns the unconditional branch classifier-free guidance needs (from the step's draws)
    prompt_dropout: float = 0.0
    num_workers: int = 0  #: DataLoader worker processes
    make_synthetic: int = 0  #: if > 0 and ROOT is missing, write this many synthetic clips there
    #: stop (exit 2) after this many unusable items in a row; the message names the last reasons
    max_consecutive_skips: int = 64


@dataclass(frozen=True)
class AdaptorConfig:
    hidden_size: int = 2304  #: per-token MLP width (output width = the text encoder's)
    token_pooling: str = "reference"  #: reference | temporal
    fga_dropout: float = 0.5  #: class-token attention dropout (training only)
    init: str | None = None  #: start from these adaptor weights (.pth or folder); null: fresh


@dataclass(frozen=True)
class OptimConfig:
    learning_rate: float = 1e-5  #: AdamW learning rate of the adaptor (the reference's effective value)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    weight_decay: float = 1e-2
    lr_scheduler: str = "constant"  #: any diffusers scheduler name
    lr_warmup_steps: int = 0
    max_grad_norm: float = 1.0  #: clipping of the trained parameters' gradients (0: off)
    l1_weight: float = 0.01  #: weight of mean |temporal tokens| in the loss
    unet_learning_rate: float = 1e-5  #: AdamW learning rate of the UNet with ``train.unet: full``
    #: training timesteps are drawn uniformly from ``[timestep_min, timestep_max)`` (null: the
    #: scheduler's ``num_train_timesteps``); the default is every timestep, as the reference trains
    timestep_min: int = 0
    timestep_max: int | None = None


#: What ``train.unet`` may be: the paper's frozen backbone, LoRA adapters on it, or all of it.
UNET_MODES = ("frozen", "lora", "full")


@dataclass(frozen=True)
class TrainModeConfig:
    """What trains.  The paper: ``unet: frozen`` with ``audio: true`` (the adaptor alone)."""

    unet: str = "frozen"  #: frozen | lora (LoRA adapters; needs lora.rank > 0) | full (every UNet weight)
    #: false: text-only training (no BEATs, no adaptor; prompts from captions or data.prompt): the
    #: Text-To-Video-Finetuning path the authors built on
    audio: bool = True


@dataclass(frozen=True)
class LoraConfig:
    rank: int = 0  #: LoRA rank on the UNet's attention projections (0: off; needs peft)
    learning_rate: float = 1e-5


@dataclass(frozen=True)
class CacheConfig:
    dir: str | None = None  #: cache folder (default OUTPUT_DIR/cache); useful with random_start false
    beats_features: bool = False  #: keep BEATs layer outputs on disk
    vae_latents: bool = False  #: keep VAE posterior mean/std on disk


@dataclass(frozen=True)
class ValidationConfig:
    steps: int = 200  #: validate every N steps (0: never)
    #: clips generated each time: the first N of the test split, or (with ``holdout``) the held-out ones
    num_clips: int = 4
    #: if > 0, hold out this many training clips (the last in id order) as the validation split and
    #: never train on them; 0: validate on the test split (the authors' way)
    holdout: int = 0
    #: keep the trained weights of the best validation AV-Align so far in OUTPUT_DIR/best/ (+ best.json)
    select_best: bool = False
    num_frames: int = 24
    fps: float | None = None  #: null: data.fps (12 when that is null too); must equal data.fps when both are set
    height: int = 384
    width: int = 384
    num_inference_steps: int = 25
    guidance_scale: float = 25.0
    seed: int = 0


@dataclass(frozen=True)
class TrainConfig:
    model: str = "runs/tiny-model"  #: diffusers folder (ours, or zeroscope + beats)
    make_tiny: bool = False  #: if MODEL does not exist, write the tiny random model there first
    beats: str | None = None  #: BEATs .pt or folder when the model folder has none
    output_dir: str = "runs/train"
    seed: int = 64
    batch_size: int = 1  #: per process
    max_steps: int = 100000
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"  #: no | fp16 | bf16
    gradient_checkpointing: bool = True  #: on the frozen UNet's down/mid/up blocks (saves memory)
    checkpointing_steps: int = 1000  #: save adaptor + training state every N steps
    checkpoints_total_limit: int | None = None  #: keep only the newest N checkpoints
    fallback_prompt: str = "<temp> <local1> <local2> <local3> <local4> <class>"
    train: TrainModeConfig = field(default_factory=TrainModeConfig)
    data: DataConfig = field(default_factory=DataConfig)
    adaptor: AdaptorConfig = field(default_factory=AdaptorConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Defaults ← YAML file (a path, or a name in ``tempotokens/configs``) ← ``key=value`` overrides.

    Unknown keys and wrong types raise with the key's name.
    """
    schema = OmegaConf.structured(TrainConfig)
    layers = [schema]
    if path is not None:
        p = Path(path)
        if not p.exists() and (CONFIG_DIR / f"{path}.yaml").exists():
            p = CONFIG_DIR / f"{path}.yaml"
        layers.append(OmegaConf.load(p))
    layers.append(OmegaConf.from_dotlist(list(overrides)))
    merged = OmegaConf.merge(*layers)
    cfg = OmegaConf.to_object(merged)
    for ok, what in ((cfg.data.fps is None or cfg.data.fps > 0, f"data.fps must be positive or null, got {cfg.data.fps}"),
                     (cfg.validation.fps is None or cfg.validation.fps > 0, "validation.fps must be positive or null"),
                     (cfg.data.num_frames >= 2, f"data.num_frames must be at least 2, got {cfg.data.num_frames}"),
                     (cfg.data.max_consecutive_skips >= 1,
                      f"data.max_consecutive_skips must be at least 1, got {cfg.data.max_consecutive_skips}"),
                     (cfg.batch_size >= 1, f"batch_size must be at least 1, got {cfg.batch_size}"),
                     (cfg.max_steps >= 1, f"max_steps must be at least 1, got {cfg.max_steps}"),
                     (cfg.validation.holdout >= 0, f"validation.holdout must not be negative, got {cfg.validation.holdout}"),
                     *check_train_mode(cfg)):
        if not ok:
            raise ValueError(what)
    if cfg.data.fps is not None and cfg.validation.fps is not None and cfg.validation.fps != cfg.data.fps:
        raise ValueError(f"validation.fps {cfg.validation.fps} differs from data.fps {cfg.data.fps}: validation "
                         "generates at the time scale of training (set one, or both equal)")
    return cfg


def check_train_mode(cfg: TrainConfig) -> list[tuple[bool, str]]:
    """(condition, message) pairs: ``train.unet`` is a known mode, LoRA exactly when ``lora.rank > 0``,
    and something trains with a usable prompt."""
    mode = cfg.train.unet
    return [(mode in UNET_MODES, f"train.unet must be one of {', '.join(UNET_MODES)}, got {mode!r}"),
            (mode != "lora" or cfg.lora.rank > 0, "train.unet=lora needs lora.rank > 0"),
            (mode == "lora" or cfg.lora.rank == 0, f"lora.rank={cfg.lora.rank} needs train.unet=lora (it is {mode!r})"),
            (cfg.train.audio or mode != "frozen",
             "train.audio=false with train.unet=frozen trains nothing: set train.unet to full or lora"),
            (cfg.train.audio or cfg.data.prompt is not None,
             "train.audio=false needs data.prompt (a text per clip, e.g. 'A video of {label}'); the fallback prompt "
             "is audio placeholders"),
            (0.0 <= cfg.data.prompt_dropout < 1.0, f"data.prompt_dropout must be in [0, 1), got {cfg.data.prompt_dropout}"),
            (not cfg.train.audio or cfg.data.prompt_dropout == 0.0,
             "data.prompt_dropout is for text-only training (train.audio=false)")]


def validation_fps(cfg: TrainConfig) -> float:
    """The frame rate validation generates at: the training data's when it has one, else
    ``validation.fps``, else 12 (the authors')."""
    return float(cfg.data.fps or cfg.validation.fps or 12.0)


def to_yaml(cfg: TrainConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
