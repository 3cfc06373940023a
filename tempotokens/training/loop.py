"""Training the audio-token adaptor (and optionally a UNet LoRA) with accelerate.

What is trained is the paper's: the adaptor only; BEATs, CLIP, the VAE and the UNet are frozen
(never wrapped for DDP).  Loss = noise-prediction MSE + ``l1_weight * mean|temporal tokens|``.

Every random draw of step ``k`` on process ``r`` (latent sample, noise, timesteps, dropout) comes
from a generator seeded by ``(seed, k, r)``, each epoch's order and clip starts from
``(seed, epoch)``, and the adaptor's initial weights from ``seed`` alone (whatever ran before), so a
run stopped at step k and resumed (``--resume``) ends with exactly the weights of an uninterrupted
run, and N processes draw N different timesteps and noises per step.

Bad data never hangs a run: only media problems are skipped (and logged, from every process, in
``skipped.jsonl``); ``data.max_consecutive_skips`` unusable items in a row, or an epoch without one
usable item, stop the run with :class:`DataError` (exit status 2).  A step is taken only when every
process has a usable batch, so all processes take the same number of optimizer steps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from tqdm import tqdm

from avalign.io import (JsonlWriter, build_once, publish_dir, read_jsonl, rewrite_jsonl, write_json_atomic,
                        write_text_atomic)

from ..adaptor import AudioTokenAdaptor
from ..frame_attention import FRAME_STATES
from ..pipeline import mix_noise
from ..data.datasets import AudioVideoClips, collate, index_dataset, read_id_list
from .cache import FeatureCache, producer
from .checkpointing import install_checkpointing
from .config import TrainConfig, to_yaml, validation_fps

logger = logging.getLogger(__name__)


class DataError(ValueError):
    """Training data that cannot feed the run (too many unusable items, none usable): exit status 2."""


#: Independent random streams of one step: the draws of the batch (latents, noise, timesteps), the
#: adaptor's dropout, and (per epoch, not per step) the sampler's order.
BATCH, DROPOUT, ORDER = 0, 1, 2


def step_seed(seed: int, step: int, rank: int = 0, stream: int = BATCH) -> int:
    """The seed of a random stream of ``step`` on process ``rank`` (numpy's SeedSequence of all four:
    distinct inputs give unrelated seeds, with no overlap between streams or processes)."""
    return int(np.random.SeedSequence([seed, step, rank, stream]).generate_state(1, np.uint64)[0] >> 1)


class EpochSampler(torch.utils.data.Sampler):
    """A permutation per epoch from ``(seed, epoch)``; set :attr:`epoch` before iterating."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        gen = torch.Generator().manual_seed(step_seed(self.seed, self.epoch, 0, ORDER))
        return iter(torch.randperm(self.n, generator=gen).tolist())


def pad_layers(layers: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """BEATs layer outputs ``(N_b, D)`` of a batch, zero-padded to ``(B, N, D)``, and the padding
    mask ``(B, N)`` (True at padding), on the layers' device and dtype."""
    n_max = max(len(x) for x in layers)
    feats = torch.zeros(len(layers), n_max, layers[0].shape[-1], dtype=layers[0].dtype, device=layers[0].device)
    mask = torch.ones(len(layers), n_max, dtype=torch.bool, device=layers[0].device)
    for i, x in enumerate(layers):
        feats[i, : len(x)], mask[i, : len(x)] = x, False
    return feats, mask


def timestep_range(cfg: TrainConfig, scheduler) -> tuple[int, int]:
    """``[low, high)`` of the training timesteps (``optim.timestep_min/max``; every timestep by default)."""
    n = scheduler.config.num_train_timesteps
    low, high = cfg.optim.timestep_min, n if cfg.optim.timestep_max is None else cfg.optim.timestep_max
    if not 0 <= low < high <= n:
        raise ValueError(f"optim.timestep_min/max must satisfy 0 <= min < max <= {n}, got [{low}, {high})")
    return low, high


def _checkpoints(output_dir: Path) -> list[Path]:
    found = [p for p in output_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def resolve_resume(output_dir: Path, resume: str | None) -> Path | None:
    """``latest`` → the newest complete checkpoint (None if there is none); else the path itself."""
    if resume is None:
        return None
    if resume == "latest":
        found = _checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not (path / "trainer_state.json").is_file():
        raise ValueError(f"{path}: not a checkpoint (no trainer_state.json)")
    return path


class Trainer:
    """Holds the models and state of one run; :meth:`run` trains to ``cfg.max_steps``."""

    def __init__(self, cfg: TrainConfig):
        from accelerate.utils import set_seed

        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self.accelerator = Accelerator(mixed_precision=cfg.mixed_precision,
                                       gradient_accumulation_steps=cfg.gradient_accumulation_steps)
        set_seed(cfg.seed)
        self._load_models()
        self._load_data()

    # ---------------------------------------------------------------------------------------
    def _load_models(self) -> None:
        from diffusers import DDPMScheduler, DPMSolverMultistepScheduler
        from diffusers.optimization import get_scheduler

        from ..beats import load_beats
        from ..pipeline import AudioToVideoPipeline

        cfg, acc = self.cfg, self.accelerator
        model = Path(cfg.model)
        if cfg.make_tiny and not (model / "model_index.json").exists():
            from ..tiny import make_tiny

            if model.is_dir():  # not ours to delete: it may be the user's folder
                raise ValueError(f"{model}: exists without model_index.json (an unfinished build?); remove it "
                                 "or name another model folder")

            build_once(model, make_tiny)  # whole or not at all; every process waits for the one that builds it
            acc.wait_for_everyone()
        beats = load_beats(cfg.beats or model / "beats")
        width = json.loads((model / "text_encoder" / "config.json").read_text())["hidden_size"]
        adaptor = self._initial_adaptor(beats, width)
        pipe = AudioToVideoPipeline.from_pretrained(model, beats=beats, adaptor=adaptor, use_dpm_solver=False)
        self.weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cfg.mixed_precision, torch.float32)
        mode, audio = cfg.train.unet, cfg.train.audio
        for frozen in (pipe.vae, pipe.text_encoder, pipe.unet):
            frozen.requires_grad_(False).eval().to(acc.device)
            if self.weight_dtype != torch.float32 and not (frozen is pipe.unet and mode == "full"):
                frozen.to(self.weight_dtype)
        pipe.beats.requires_grad_(False).eval().to(acc.device)  # the audio front end stays in fp32
        self.checkpointing = install_checkpointing(pipe.unet) if cfg.gradient_checkpointing else None
        self.pipe = pipe
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        self.timesteps = timestep_range(cfg, self.noise_scheduler)  # a bad range fails here, before any step
        self.val_scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)

        params = [{"params": list(adaptor.parameters()), "lr": cfg.optim.learning_rate}] if audio else []
        if mode == "lora":
            params.append({"params": self._add_lora(pipe.unet), "lr": cfg.lora.learning_rate})
        elif mode == "full":
            pipe.unet.requires_grad_(True).train()
            params.append({"params": list(pipe.unet.parameters()), "lr": cfg.optim.unet_learning_rate})
        optimizer = torch.optim.AdamW(params, betas=(cfg.optim.adam_beta1, cfg.optim.adam_beta2),
                                      eps=cfg.optim.adam_epsilon, weight_decay=cfg.optim.weight_decay)
        lr_scheduler = get_scheduler(cfg.optim.lr_scheduler, optimizer=optimizer,
                                     num_warmup_steps=cfg.optim.lr_warmup_steps * acc.num_processes,
                                     num_training_steps=cfg.max_steps * acc.num_processes)
        # only what trains is prepared (wrapped for DDP); frozen models are moved, not wrapped
        if audio:
            adaptor.train()
            self.adaptor, self.optimizer, self.lr_scheduler = acc.prepare(adaptor, optimizer, lr_scheduler)
        else:  # text-only: the adaptor is neither used nor trained
            self.adaptor = adaptor.to(acc.device)
            self.optimizer, self.lr_scheduler = acc.prepare(optimizer, lr_scheduler)
        if mode != "frozen":
            pipe.unet = acc.prepare(pipe.unet)
        #: the module gradient accumulation keys on (the first that trains)
        self.accumulating = self.adaptor if audio else pipe.unet
        self.trained = [p for group in self.optimizer.param_groups for p in group["params"]]

    def _initial_adaptor(self, beats, width: int) -> AudioTokenAdaptor:
        """A fresh adaptor seeded from the config seed alone (the global RNG is left as it was), or
        ``adaptor.init`` with the config's ``num_frames`` and ``fga_dropout`` (its ``token_pooling``
        must be the config's)."""
        from ..adaptor import load_adaptor

        cfg = self.cfg
        if cfg.adaptor.init:
            loaded = load_adaptor(cfg.adaptor.init)
            if loaded.config.token_pooling != cfg.adaptor.token_pooling:
                raise ValueError(f"adaptor.init {cfg.adaptor.init} pools tokens {loaded.config.token_pooling!r}, "
                                 f"the config says {cfg.adaptor.token_pooling!r}")
            config = {**loaded.config, "num_frames": cfg.data.num_frames, "fga_dropout": cfg.adaptor.fga_dropout}
            adaptor = AudioTokenAdaptor.from_config(config)
            adaptor.load_state_dict(loaded.state_dict())
            return adaptor
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            return AudioTokenAdaptor(
                input_size=beats.config.encoder_layers * beats.config.encoder_embed_dim,
                hidden_size=cfg.adaptor.hidden_size, output_size=width, num_frames=cfg.data.num_frames,
                token_pooling=cfg.adaptor.token_pooling, fga_dropout=cfg.adaptor.fga_dropout,
                freq_patches=128 // beats.config.input_patch_size)

    def _add_lora(self, unet) -> list[torch.nn.Parameter]:
        """LoRA adapters (peft) on the UNet's attention projections; returns their parameters (fp32)."""
        try:
            from peft import LoraConfig, inject_adapter_in_model
        except ImportError:
            raise RuntimeError("lora.rank > 0 needs peft: pip install 'tempotokens[lora]'") from None
        r = self.cfg.lora.rank
        inject_adapter_in_model(LoraConfig(r=r, lora_alpha=r, init_lora_weights="gaussian",
                                           target_modules=["to_k", "to_q", "to_v", "to_out.0"]), unet)
        for name, p in unet.named_parameters():
            p.requires_grad_("lora_" in name)
        params = [p for p in unet.parameters() if p.requires_grad]
        for p in params:
            p.data = p.data.float()
        return params

    def _load_data(self) -> None:
        cfg = self.cfg
        root = Path(cfg.data.root)
        if cfg.data.make_synthetic and not root.exists():
            from ..data.synthetic import make_synthetic

            build_once(root, lambda tmp: make_synthetic(tmp, cfg.data.make_synthetic, seed=cfg.seed))
            self.accelerator.wait_for_everyone()
        exclude = read_id_list(cfg.data.exclude_ids) if cfg.data.exclude_ids else ()
        index = dict(root=root, dataset=cfg.data.dataset, csv_path=cfg.data.csv, classes=cfg.data.classes,
                     exclude_ids=exclude)
        train_clips = index_dataset(split="train", **index)
        holdout = cfg.validation.holdout
        if holdout:  # a validation split carved from the training clips; the test split is never seen
            if holdout >= len(train_clips):
                raise ValueError(f"{root}: validation.holdout={holdout} leaves no training clip "
                                 f"(the train split has {len(train_clips)})")
            train_clips, held = train_clips[:-holdout], train_clips[-holdout:]
            self.val_clips = held[: cfg.validation.num_clips]
        if not train_clips:
            raise ValueError(f"{root}: no training clips found for dataset {cfg.data.dataset}")
        if not holdout:
            self.val_clips = index_dataset(split="test", **index)[: cfg.validation.num_clips]
        self.dataset = AudioVideoClips(train_clips, cfg.data.num_frames, cfg.data.height, cfg.data.width,
                                       random_start=cfg.data.random_start, seed=cfg.seed,
                                       fallback_prompt=cfg.fallback_prompt, fps=cfg.data.fps,
                                       prompt=cfg.data.prompt, audio=cfg.train.audio)
        self.sampler = EpochSampler(len(self.dataset), cfg.seed)
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=cfg.batch_size, sampler=self.sampler,
                                             collate_fn=collate, num_workers=cfg.data.num_workers)
        self.loader = self.accelerator.prepare(loader)
        # the data too: clip ids repeat across datasets (every synthetic set has syn00000000)
        shape = {"fps": cfg.data.fps, "num_frames": cfg.data.num_frames, "data_root": str(root.resolve()),
                 "clips_digest": hashlib.sha256(json.dumps(
                     [[c.clip_id, _file_stamp(c.video, c.audio)] for c in train_clips]).encode()).hexdigest()[:16]}
        producers = {}
        if cfg.cache.vae_latents:  # digests only when a kind is cached (hashing a real VAE takes a second)
            producers["vae"] = producer(self.pipe.vae, **shape, height=cfg.data.height, width=cfg.data.width,
                                        dtype=str(self.weight_dtype))
        if cfg.cache.beats_features:
            producers["beats"] = producer(self.pipe.beats, **shape, sample_rate=self.dataset.sample_rate)
        self.cache = FeatureCache(cfg.cache, self.out, producers)

    # ---------------------------------------------------------------------------------------
    def _encode_batch(self, batch: dict, gen: torch.Generator):
        """Latents ``(B, C, F, h, w)`` (a posterior sample) and BEATs layers + token mask."""
        pipe, dev = self.pipe, self.accelerator.device
        pixels = batch["pixel_values"]
        B, Fn = pixels.shape[:2]
        keys = [f"{c}_{s}_{Fn}" for c, s in zip(batch["clip_id"], batch["start_frame"])]

        def vae_stats(i):
            with torch.no_grad():
                d = pipe.vae.encode(pixels[i].to(dev, self.weight_dtype)).latent_dist
            return torch.stack([d.mean, d.std]).float().cpu()

        stats = torch.stack([self.cache.get("vae", f"{k}_{pixels.shape[-2]}x{pixels.shape[-1]}", lambda i=i: vae_stats(i))
                             for i, k in enumerate(keys)])  # (B, 2, F, C, h, w)
        eps = torch.randn(stats[:, 0].shape, generator=gen)
        latents = (stats[:, 0] + stats[:, 1] * eps).permute(0, 2, 1, 3, 4) * pipe.vae.config.scaling_factor
        if not self.cfg.train.audio:
            return latents.to(dev), None, None

        def beats_layers(i):
            n = int((~batch["audio_padding_mask"][i]).sum())
            with torch.no_grad():
                return pipe.beats(batch["audio"][i: i + 1, :n].to(dev)).layers[0].float().cpu()

        layers = [self.cache.get("beats", k, lambda i=i: beats_layers(i)) for i, k in enumerate(keys)]
        feats, mask = pad_layers(layers)
        return latents.to(dev), feats.to(dev), mask.to(dev)

    def _losses(self, batch: dict, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, mse, l1) of a batch, every random draw seeded by ``(seed, step, process)``."""
        cfg, pipe, dev = self.cfg, self.pipe, self.accelerator.device
        rank = self.accelerator.process_index
        gen = torch.Generator().manual_seed(step_seed(cfg.seed, step, rank, BATCH))
        torch.manual_seed(step_seed(cfg.seed, step, rank, DROPOUT))  # the adaptor's dropout
        latents, feats, mask = self._encode_batch(batch, gen)
        B, Fn = latents.shape[0], latents.shape[2]
        noise = torch.randn(latents.shape, generator=gen).to(dev)
        t = torch.randint(*self.timesteps, (B,), generator=gen).to(dev)
        prompts = list(batch["prompt"])
        # later draws come after the earlier ones, so switching one on changes none of those before it
        if cfg.data.prompt_dropout > 0:
            drop = torch.rand(B, generator=gen) < cfg.data.prompt_dropout
            prompts = ["" if d else p for p, d in zip(prompts, drop.tolist())]
        rho = pipe.noise_correlation  # the model's noise prior: the noise it will generate from
        if rho > 0:
            shared = torch.randn((*latents.shape[:2], 1, *latents.shape[3:]), generator=gen).to(dev)
            noise = mix_noise(noise, shared, rho)
        noisy = self.noise_scheduler.add_noise(latents, noise, t)
        target = noise if self.noise_scheduler.config.prediction_type == "epsilon" else \
            self.noise_scheduler.get_velocity(latents, noise, t)
        unet_dtype = torch.float32 if cfg.train.unet == "full" else self.weight_dtype
        with self.accelerator.autocast():
            tokens = self.adaptor(feats, num_frames=Fn, padding_mask=mask) if cfg.train.audio else None
            cond, frame_states = pipe.encode_prompt(prompts, tokens, Fn)  # the pipeline's own step 2
            frame_kwargs = None if frame_states is None else {FRAME_STATES: frame_states.to(unet_dtype)}
            pred = pipe.unet(noisy.to(unet_dtype), t, encoder_hidden_states=cond.to(unet_dtype),
                             cross_attention_kwargs=frame_kwargs).sample
        mse = F.mse_loss(pred.float(), target.float())
        l1 = tokens.temporal.float().abs().mean() if tokens is not None else torch.zeros((), device=mse.device)
        return mse + cfg.optim.l1_weight * l1, mse, l1

    @torch.no_grad()
    def evaluate_loss(self, batch: dict, seed_step: int = 0) -> float:
        """The loss of a batch with fixed draws (no update; dropout as in training)."""
        return self._losses(batch, seed_step)[0].item()

    def training_step(self, batch: dict, step: int) -> dict:
        """One optimizer step on the trained parameters (with gradient accumulation and clipping)."""
        with self.accelerator.accumulate(self.accumulating):
            loss, mse, l1 = self._losses(batch, step)
            self.accelerator.backward(loss)
            if self.accelerator.sync_gradients and self.cfg.optim.max_grad_norm > 0:
                self.accelerator.clip_grad_norm_(self.trained, self.cfg.optim.max_grad_norm)
            self.optimizer.step()
            self.lr_scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        return {"loss": loss.item(), "mse": mse.item(), "l1": l1.item()}

    # ---------------------------------------------------------------------------------------
    def save_checkpoint(self, step: int, batches_done: int) -> Path:
        """``checkpoint-<step>/``: accelerate state (adaptor, optimizer, scheduler, RNG), the adaptor in
        safetensors, the UNet LoRA if any, and ``trainer_state.json``; written under a temporary
        name and renamed, so ``--resume latest`` never finds half a checkpoint.  Also refreshes
        ``OUTPUT_DIR/adaptor/``."""
        acc = self.accelerator
        final = self.out / f"checkpoint-{step}"
        tmp = self.out / f".tmp-checkpoint-{step}"
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        if acc.is_main_process:
            self.save_trained(tmp)
            (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "batches_done": batches_done,
                                                                "num_processes": acc.num_processes}))
            publish_dir(tmp, final)
            self.save_trained(self.out)
            limit = self.cfg.checkpoints_total_limit
            for old in (_checkpoints(self.out)[:-limit] if limit else []):
                shutil.rmtree(old)
        acc.wait_for_everyone()
        return final

    def save_trained(self, folder: Path) -> Path:
        """What trains, into ``folder``: ``adaptor/`` (with audio), ``unet/`` (``train.unet: full``) or
        ``unet_lora.safetensors`` (``lora``), each loadable by ``from_pretrained`` / the pipeline.
        Returns the main one (the adaptor's folder, or the UNet's without audio)."""
        acc, mode = self.accelerator, self.cfg.train.unet
        if self.cfg.train.audio:
            acc.unwrap_model(self.adaptor).save_pretrained(folder / "adaptor")
        if mode == "full":
            acc.unwrap_model(self.pipe.unet).save_pretrained(folder / "unet")
        elif mode == "lora":
            from peft.utils import get_peft_model_state_dict
            from safetensors.torch import save_file

            lora = get_peft_model_state_dict(acc.unwrap_model(self.pipe.unet))
            save_file({k: v.contiguous() for k, v in lora.items()}, folder / "unet_lora.safetensors")
        return folder / ("adaptor" if self.cfg.train.audio else "unet" if mode == "full" else "unet_lora.safetensors")

    def load_checkpoint(self, path: Path) -> tuple[int, int]:
        self.accelerator.load_state(str(path))
        state = json.loads((path / "trainer_state.json").read_text())
        return int(state["step"]), int(state["batches_done"])

    @torch.no_grad()
    def validate(self, step: int) -> dict:
        """Generate from held-out audio with the current adaptor, write mp4+wav, score AV-Align."""
        from avalign import score_files, summarize
        from avalign.io import load_audio, write_clip

        from ..pipeline import AudioToVideoPipeline

        cfg, v = self.cfg, self.cfg.validation
        audio = cfg.train.audio
        adaptor = self.accelerator.unwrap_model(self.adaptor).eval()
        unet = self.accelerator.unwrap_model(self.pipe.unet)
        was_training = unet.training
        unet.eval()
        pipe = self.pipe
        val = AudioToVideoPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                                   unet=unet, scheduler=self.val_scheduler,
                                   beats=pipe.beats, adaptor=adaptor, noise_correlation=pipe.noise_correlation)
        val.set_progress_bar_config(disable=True)
        folder = self.out / "validation" / f"step-{step}"
        written = []
        fps = validation_fps(cfg)  # the time scale training sees
        for i, clip in enumerate(self.val_clips):
            prompt = None if audio and cfg.data.prompt is None and not clip.caption else self.dataset.prompt_for(clip)
            out = val(audio=(clip.audio or clip.video) if audio else None, prompt=prompt, num_frames=v.num_frames, fps=fps, height=v.height,
                      width=v.width, num_inference_steps=v.num_inference_steps, guidance_scale=v.guidance_scale,
                      generator=torch.Generator().manual_seed(v.seed + i), output_type="uint8")
            if audio:
                span, rate = out.audio[0], out.audio_sample_rates[0]
            else:  # text-only: scored against the clip's own audio span
                span, rate = load_audio(clip.audio or clip.video, None, start_s=0.0, duration_s=v.num_frames / fps,
                                        pad=True)
            mp4, _ = write_clip(folder / f"{clip.clip_id}.mp4", out.frames[0], fps, span, rate)
            written.append(mp4)
        if audio:
            adaptor.train()
        unet.train(was_training)
        summary = summarize(r.to_record() for r in score_files(written, workers=1))
        return {"step": step, "val_av_align": summary.mean, "val_ci_low": summary.ci_low,
                "val_ci_high": summary.ci_high, "val_n": summary.n, "val_n_undefined": summary.n_undefined}

    # ---------------------------------------------------------------------------------------
    def run(self, resume: str | None = None) -> Path:
        cfg, acc = self.cfg, self.accelerator
        step, batches_done = 0, 0
        ckpt = resolve_resume(self.out, resume)
        if ckpt is not None:
            step, batches_done = self.load_checkpoint(ckpt)
        metrics_path, skipped_path = self.out / "metrics.jsonl", self.out / "skipped.jsonl"
        if acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.out / "config.yaml", to_yaml(cfg))
            for path in (metrics_path, skipped_path):  # drop what a killed run logged past the checkpoint
                rewrite_jsonl(path, [r for r in read_jsonl(path) if r.get("step", 0) <= step])
        metrics = JsonlWriter(metrics_path, fsync=False) if acc.is_main_process else None
        skipped = JsonlWriter(skipped_path, fsync=False) if acc.is_main_process else None
        tb = _tensorboard(self.out) if acc.is_main_process else None
        bar = tqdm(total=cfg.max_steps, initial=step, desc="train", disable=not acc.is_main_process)
        per_epoch = len(self.loader)
        if per_epoch == 0:
            raise DataError(f"{cfg.data.root}: fewer training clips than processes x batch size")
        self.unusable_in_a_row, self.last_reasons = 0, deque(maxlen=3)
        # the best validation so far (of this run up to ``step``: a resumed run selects as a straight one)
        best = max((r["val_av_align"] for r in read_jsonl(metrics_path) if r.get("val_av_align") is not None),
                   default=-math.inf) if acc.is_main_process else -math.inf
        try:
            while step < cfg.max_steps:
                epoch, skip = divmod(batches_done, per_epoch)
                self.sampler.epoch = self.dataset.epoch = epoch
                loader = acc.skip_first_batches(self.loader, skip) if skip else self.loader
                usable_in_epoch = 0  # usable items on any process
                for batch in loader:
                    batches_done += 1
                    usable, everywhere = self._usable_everywhere(batch, step, skipped)
                    usable_in_epoch += usable
                    if not everywhere:
                        continue
                    t0 = time.perf_counter()
                    out = self.training_step(batch, step)
                    step += 1
                    record = {"step": step, **out, "lr": self.lr_scheduler.get_last_lr()[0],
                              "seconds": time.perf_counter() - t0, "epoch": epoch}
                    if metrics:
                        metrics.write(record)
                    if tb:
                        for k in ("loss", "mse", "l1", "lr"):
                            tb.add_scalar(f"train/{k}", record[k], step)
                    bar.update()
                    bar.set_postfix(loss=f"{out['loss']:.4f}")
                    if cfg.validation.steps and step % cfg.validation.steps == 0 and self.val_clips:
                        if acc.is_main_process:
                            val = self.validate(step)
                            metrics.write(val)
                            if cfg.validation.select_best and val["val_av_align"] is not None \
                                    and val["val_av_align"] > best:
                                best = val["val_av_align"]
                                self.save_trained(self.out / "best")
                                write_json_atomic(self.out / "best" / "best.json", val)
                            if tb:
                                tb.add_scalar("val/av_align", val["val_av_align"], step)
                        acc.wait_for_everyone()
                    if step % cfg.checkpointing_steps == 0 or step >= cfg.max_steps:
                        self.save_checkpoint(step, batches_done)
                    if step >= cfg.max_steps:
                        break
                if usable_in_epoch == 0 and not skip and step < cfg.max_steps:
                    raise DataError(f"{cfg.data.root}: no usable training item in a whole epoch; last reasons: "
                                    + "; ".join(self.last_reasons))
        finally:
            bar.close()
            for writer in (metrics, skipped, tb):
                if writer:
                    writer.close()
            if self.checkpointing is not None:
                self.checkpointing.remove()
        return self.out / ("adaptor" if cfg.train.audio else "unet" if cfg.train.unet == "full"
                           else "unet_lora.safetensors")

    def _usable_everywhere(self, batch: dict, step: int, skipped) -> tuple[int, bool]:
        """Log every process's skipped items (into process 0's ``skipped.jsonl``); return how many
        processes have a usable batch and whether all do (a step is taken everywhere or nowhere).
        Raises :class:`DataError` after ``data.max_consecutive_skips`` unusable items in a row."""
        from accelerate.utils import gather_object

        acc = self.accelerator
        rank = acc.process_index
        mine = [(rank, clip_id, reason) for clip_id, reason in batch["skipped"]]
        has = "pixel_values" in batch
        if acc.num_processes > 1:
            mine, flags = gather_object(mine), gather_object([has])
        else:
            flags = [has]
        for r, clip_id, reason in mine:
            logger.warning("skipped %s (process %d): %s", clip_id, r, reason)
            self.last_reasons.append(reason)
            if skipped:
                skipped.write({"step": step, "clip_id": clip_id, "reason": reason, "process": r})
        self.unusable_in_a_row = self.unusable_in_a_row + len(mine) if not any(flags) else 0
        limit = self.cfg.data.max_consecutive_skips
        if self.unusable_in_a_row >= limit:
            raise DataError(f"{self.unusable_in_a_row} training items in a row were unusable "
                            f"(data.max_consecutive_skips = {limit}); last reasons: " + "; ".join(self.last_reasons))
        if not all(flags) and any(flags):
            logger.warning("step %d: a process has no usable item in its batch; every process skips it", step)
        return sum(bool(f) for f in flags), all(flags)


def _file_stamp(*paths: str | None) -> list:
    """Size and modification time of each file: a changed file changes the cache key."""
    out = []
    for p in paths:
        if p:
            try:
                st = os.stat(p)
                out.append([st.st_size, st.st_mtime_ns])
            except OSError:
                out.append(None)
    return out


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: metrics.jsonl only
        return None
    return SummaryWriter(str(folder / "tensorboard"))


def train(cfg: TrainConfig, resume: str | None = None) -> Path:
    """Train to ``cfg.max_steps`` (resuming from a checkpoint if asked); returns the adaptor folder."""
    return Trainer(cfg).run(resume)
