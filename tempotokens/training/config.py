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
    dataset: str = "synthetic"  #: vggsound | landscape | audioset_drum | synthetic
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
    num_clips: int = 4  #: held-out (test split) clips generated each time
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
                     (cfg.max_steps >= 1, f"max_steps must be at least 1, got {cfg.max_steps}")):
        if not ok:
            raise ValueError(what)
    if cfg.data.fps is not None and cfg.validation.fps is not None and cfg.validation.fps != cfg.data.fps:
        raise ValueError(f"validation.fps {cfg.validation.fps} differs from data.fps {cfg.data.fps}: validation "
                         "generates at the time scale of training (set one, or both equal)")
    return cfg


def validation_fps(cfg: TrainConfig) -> float:
    """The frame rate validation generates at: the training data's when it has one, else
    ``validation.fps``, else 12 (the authors')."""
    return float(cfg.data.fps or cfg.validation.fps or 12.0)


def to_yaml(cfg: TrainConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
