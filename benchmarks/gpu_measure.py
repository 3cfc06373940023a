"""The measurements of :mod:`benchmarks.gpu_check`: ``setup(group, dry_run)`` builds a group's model
once, ``measure(name, context, deadline)`` makes one figure ``(value, unit, settings)``.

Full size is the published zeroscope_v2_576w architecture (UNet3D, the SD 2 VAE, the OpenCLIP ViT-H
text encoder) plus BEATs and the adaptor at their published sizes, random weights, no download; the
dry run uses the tiny model on the CPU.  Imports stay off PyAV, librosa, soundfile and omegaconf.
"""

from __future__ import annotations

import time
from pathlib import Path


class Skip(Exception):
    """A measurement that does not apply here (the reason is recorded)."""


class Timeout(Exception):
    """A measurement that ran out of the budget (recorded as ``timeout``)."""


def teardown(ctx: dict) -> None:
    """Remove what ``setup`` wrote to disk (the metric weights: about 1 GB at full size)."""
    import shutil

    if ctx.get("weights_folder"):
        shutil.rmtree(ctx["weights_folder"], ignore_errors=True)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peaks(device: str) -> dict:
    import torch

    if not device.startswith("cuda"):
        return {}
    return {"peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
            "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30}


def _reset(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def full_size_pipeline():
    """The zeroscope_v2_576w architecture with random weights, plus BEATs and the adaptor (fp32, CPU)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from tempotokens.adaptor import AudioTokenAdaptor
    from tempotokens.beats import BEATs
    from tempotokens.pipeline import AudioToVideoPipeline
    from tempotokens.tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer()  # ids < 514 index the full 49408-row table; no vocabulary download
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=1024, intermediate_size=4096,
                                                num_hidden_layers=23, num_attention_heads=16,
                                                max_position_embeddings=77, hidden_act="gelu", projection_dim=1024))
    text_encoder.resize_token_embeddings(max(49408, len(tokenizer)))
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4,
                        sample_size=768)
    unet = UNet3DConditionModel(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                                down_block_types=("CrossAttnDownBlock3D",) * 3 + ("DownBlock3D",),
                                up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 3,
                                cross_attention_dim=1024, attention_head_dim=64, norm_num_groups=32)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = AudioToVideoPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                scheduler=scheduler, beats=BEATs().eval(), adaptor=AudioTokenAdaptor().eval())
    pipe.prepare_conditioning()
    return pipe


def _dpm(pipe):
    from diffusers import DPMSolverMultistepScheduler

    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    return pipe


def setup(group: str, dry_run: bool) -> dict:
    import torch

    device = "cpu" if dry_run or not torch.cuda.is_available() else "cuda"
    if group in ("generation", "correctness", "training"):
        from tempotokens.tiny import build_tiny_pipeline

        pipe = build_tiny_pipeline(seed=0, num_frames=4) if dry_run else full_size_pipeline()
        size = dict(num_frames=4, height=32, width=32, steps=2) if dry_run else \
            dict(num_frames=24, height=384, width=384, steps=25)
        return {"pipe": _dpm(pipe), "device": device, "size": size, "dry_run": dry_run}
    if group == "metrics":
        import tempfile

        from tests.fixtures.weights import make_full_size_weights, make_tiny_weights

        folder = Path(tempfile.mkdtemp(prefix="gpu-check-weights-"))
        weights = make_tiny_weights(folder) if dry_run else make_full_size_weights(folder)
        return {"weights": weights, "weights_folder": folder, "device": device, "dry_run": dry_run,
                "side": 32 if dry_run else 384}
    return {"device": device, "dry_run": dry_run}


def measure(name: str, ctx: dict, deadline: float):
    if name.startswith("generate-"):
        return _generate(name, ctx)
    if name.startswith("train-step"):
        return _train_step(name, ctx)
    if name.startswith("denoise-step"):
        return _denoise_step(name, ctx)
    if name in ("features-desync", "features-ib"):
        return _sync_features(name, ctx)
    if name.startswith("features-"):
        return _features(name, ctx)
    if name == "gpu-tests":
        return _gpu_tests(ctx, deadline)
    raise ValueError(f"unknown measurement {name!r}")


def _dtype(ctx: dict, name: str):
    """fp16 or bf16 as named; on the CPU (the dry run) bf16 for both: the half-precision code path runs,
    where CPU fp16 kernels are missing or not what is measured."""
    import torch

    if ctx["device"] == "cpu":
        return torch.bfloat16
    return torch.bfloat16 if "bf16" in name else torch.float16


def _generate(name: str, ctx: dict):
    """One clip, timed after an untimed 2-step warm-up of the same call (kernels, allocator)."""
    import torch
    from diffusers.models.attention_processor import AttnProcessor

    pipe, device, s = ctx["pipe"], ctx["device"], ctx["size"]
    dtype = _dtype(ctx, name)
    pipe.to(device, dtype)
    chunk = 1 if name.endswith("vae-slicing") else (s["num_frames"] if name.endswith("stock-ratio") else 8)
    settings = {**s, "dtype": str(dtype).removeprefix("torch."), "guidance": 7.5, "scheduler": "DPM-Solver++",
                "decode_chunk_size": chunk, "device": device}
    audio = torch.zeros(int(s["num_frames"] / 12.0 * 16000) + 1600)
    saved = pipe.unet.attn_processors
    if name.endswith("no-sdpa"):
        pipe.unet.set_attn_processor(AttnProcessor())  # re-wrapped for per-frame conditioning by the pipeline
        settings["attention"] = "AttnProcessor (no SDPA)"

    def kwargs(steps):
        return dict(num_frames=s["num_frames"], height=s["height"], width=s["width"], num_inference_steps=steps,
                    guidance_scale=7.5, generator=torch.Generator("cpu").manual_seed(0), output_type="np")

    def timed(call):
        call(2)  # warm-up
        _sync(device)
        _reset(device)
        t0 = time.perf_counter()
        call(s["steps"])
        _sync(device)
        return time.perf_counter() - t0

    try:
        if name.endswith("stock-ratio"):  # like with like: both text-only, both decoding every frame at once
            from diffusers import TextToVideoSDPipeline

            prompt = "a dog barking"
            ours = timed(lambda n: pipe(prompt=prompt, decode_chunk_size=chunk, **kwargs(n)))
            plain = {k: getattr(p, "inner", p) for k, p in pipe.unet.attn_processors.items()}
            pipe.unet.set_attn_processor(plain)
            stock = TextToVideoSDPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                                          unet=pipe.unet, scheduler=pipe.scheduler)
            theirs = timed(lambda n: stock(prompt=prompt, **kwargs(n)))
            settings["prompt"] = prompt
            return {"ours_over_stock": ours / theirs, "ours_s_per_clip": ours, "stock_s_per_clip": theirs}, \
                "ratio, s", settings
        seconds = timed(lambda n: pipe(audio=audio, decode_chunk_size=chunk, **kwargs(n)))
        return {"s_per_clip": seconds, "clips_per_hour": 3600 / seconds, **_peaks(device)}, "s, clips/h, GiB", settings
    finally:
        pipe.unet.set_attn_processor(saved)


def _train_step(name: str, ctx: dict):
    """One adaptor step as the trainer takes it (``tempotokens.training.loop``): frozen VAE, text
    encoder and UNet cast to the mixed-precision dtype, BEATs in fp32 outside the step (the trainer's
    feature pass), the adaptor in fp32 under autocast, gradient clipping; timed after one warm-up step."""
    import torch
    import torch.nn.functional as F
    import yaml

    from tempotokens.frame_attention import FRAME_STATES
    from tempotokens.training.checkpointing import install_checkpointing

    pipe, device = ctx["pipe"], ctx["device"]
    config = Path(__file__).resolve().parents[1] / "tempotokens" / "configs" / "vggsound.yaml"
    cfg = yaml.safe_load(config.read_text())  # the shipped config as it stands, read without omegaconf
    batch, frames = int(cfg["batch_size"]), int(cfg["data"]["num_frames"])
    height, width = int(cfg["data"]["height"]), int(cfg["data"]["width"])
    fps = float(cfg["data"].get("fps") or 12.0)
    clip = float(cfg.get("optim", {}).get("max_grad_norm", 1.0))
    if ctx["dry_run"]:
        frames, height, width = 4, 32, 32
    checkpointing = name.endswith("checkpointing")
    low = torch.float16 if device != "cpu" else torch.bfloat16  # bf16 on the CPU: the same autocast path
    pipe.to(device, torch.float32)
    for frozen in (pipe.vae, pipe.text_encoder, pipe.unet):
        frozen.requires_grad_(False).eval().to(low)
    pipe.beats.requires_grad_(False).eval()
    adaptor = pipe.adaptor.train().requires_grad_(True)
    if checkpointing:
        install_checkpointing(pipe.unet)
    settings = {"config": "vggsound.yaml", "batch_size": batch, "num_frames": frames, "fps": fps, "height": height,
                "width": width, "mixed_precision": str(low).removeprefix("torch."), "max_grad_norm": clip,
                "gradient_checkpointing": checkpointing, "device": device}
    optimizer = torch.optim.AdamW(adaptor.parameters(), lr=1e-5)
    scaler = torch.amp.GradScaler("cuda", enabled=low == torch.float16)
    factor = pipe.vae_scale_factor
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(batch, 4, frames, height // factor, width // factor, generator=g).to(device)
    with torch.no_grad():  # the trainer's BEATs pass (fp32, cached in real runs)
        audio = torch.randn(batch, int(frames / fps * 16000), generator=g).to(device)
        layers = torch.cat([pipe.beats(audio[i: i + 1]).layers for i in range(batch)])

    def step():
        with torch.autocast(device_type="cuda" if device != "cpu" else "cpu", dtype=low):
            tokens = adaptor(layers, num_frames=frames)
            cond, states = pipe.encode_prompt([None] * batch, tokens, frames)
            t = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (batch,), generator=g).to(device)
            noise = torch.randn(latents.shape, generator=g).to(device)
            pred = pipe.unet((latents + noise).to(low), t, encoder_hidden_states=cond.to(low),
                             cross_attention_kwargs={FRAME_STATES: states.to(low)}).sample
        loss = F.mse_loss(pred.float(), noise)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(adaptor.parameters(), clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up (allocator, kernels)
    _sync(device)
    _reset(device)
    t0 = time.perf_counter()
    step()
    _sync(device)
    return {"s_per_step": time.perf_counter() - t0, **_peaks(device)}, "s, GiB", settings


def _denoise_step(name: str, ctx: dict):
    import torch

    pipe, device, s = ctx["pipe"], ctx["device"], ctx["size"]
    low = torch.bfloat16 if "bf16" in name else torch.float16
    if device == "cpu" and low == torch.float16:
        raise Skip("fp16 UNet kernels are a GPU measurement (the dry run checks bf16 only)")
    factor = pipe.vae_scale_factor
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, s["num_frames"], s["height"] // factor, s["width"] // factor, generator=g)
    pipe.to("cpu", torch.float32)
    with torch.no_grad():
        layers = pipe.beats(torch.randn(1, 32000, generator=g)).layers
        tokens = pipe.adaptor(layers, num_frames=s["num_frames"])
        cond, states = pipe.encode_prompt([None], tokens, s["num_frames"])
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # a true fp32 reference
    try:
        out = _forward_pair(pipe, device, low, x, cond, states)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    diff = (out[low] - out[torch.float32]).abs()
    settings = {"what": "one UNet forward (the noise prediction of one denoising step), not a scheduler step",
                "timestep": 500, "seed": 0, "dtype": str(low).removeprefix("torch."), "reference": "fp32, TF32 off",
                "device": device}
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean())}, "noise prediction units", settings


def _forward_pair(pipe, device, low, x, cond, states) -> dict:
    """The UNet's output at t = 500 in fp32 and in ``low`` (a copy), on ``device``."""
    import copy

    import torch

    from tempotokens.frame_attention import FRAME_STATES

    out = {}
    for dtype in (torch.float32, low):
        unet = copy.deepcopy(pipe.unet).to(device, dtype) if dtype != torch.float32 else pipe.unet.to(device)
        with torch.no_grad():
            out[dtype] = unet(x.to(device, dtype), torch.tensor([500], device=device),
                              encoder_hidden_states=cond.to(device, dtype),
                              cross_attention_kwargs={FRAME_STATES: states.to(device, dtype)}).sample.float().cpu()
        if dtype != torch.float32:
            del unet
    return out


def _features(name: str, ctx: dict):
    import numpy as np

    from benchmarks.metrics.clipsim import ClipSim
    from benchmarks.metrics.fvd import fvd_extractor
    from benchmarks.metrics.inception import is_extractor

    device, side, weights = ctx["device"], ctx["side"], ctx["weights"]
    kind = name.removeprefix("features-")
    batches = (2,) if ctx["dry_run"] else (8, 32)
    value = {}
    for batch in batches:
        if kind.startswith("fvd"):
            ex, frames = fvd_extractor(weights, kind.split("-")[1], 16, device=device, batch_size=batch), 16
        elif kind == "is-c3d":
            ex, frames = is_extractor(weights, device=device, batch_size=batch), 16
        else:
            ex, frames = ClipSim(weights, device=device).extractor(batch_size=batch), 24
        clips = list(np.random.default_rng(0).integers(0, 256, size=(batch, frames, side, side, 3), dtype=np.uint8))
        ex.fn(clips)  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        ex.fn(clips)
        _sync(device)
        value[f"clips_per_s_batch{batch}"] = batch / (time.perf_counter() - t0)
    return value, "clips/s", {"frames": frames, "size": side, "device": device, "weights": "random, full size"
                              if not ctx["dry_run"] else "random, tiny"}


#: Dry-run sizes of the sync models (the published ones are the constructors' defaults).
_TINY_SYNC = {"desync": dict(video={"VIT.EMBED_DIM": 64, "VIT.DEPTH": 1, "VIT.NUM_HEADS": 4, "VIT.MLP_RATIO": 4},
                             audio={"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
                                    "intermediate_size": 128},
                             transformer={"n_layer": 1, "n_head": 2, "n_embd": 64}),
              "ib": dict(out_embed_dim=32, vision_embed_dim=64, vision_num_blocks=1, vision_num_heads=4,
                         audio_embed_dim=64, audio_num_blocks=1, audio_num_heads=4)}


def _sync_features(name: str, ctx: dict):
    """Seconds per 8 s clip of a learned sync metric's feature passes, as ``make bench`` times them
    on the CPU (``benchmarks/suites/test_bench_sync.py``): DeSync's 24 video segments (16 x 224 x 224)
    and 24 mel segments, IB's 9 views (2 x 224 x 224) and 3 fbank clips
    (:func:`benchmarks.metrics.syncpasses.feature_passes`), random weights at the published sizes,
    float32 (the ``avbench`` lineages), in the scorers' default batches for the device.  The dry
    run: 2 of each, tiny sizes."""
    import torch

    from benchmarks.metrics.imagebind import ImageBind, ImageBindSizes
    from benchmarks.metrics.synchformer import Synchformer, SynchformerSizes
    from benchmarks.metrics.syncpasses import feature_passes

    device, dry = ctx["device"], ctx["dry_run"]
    torch.manual_seed(0)
    if name == "features-desync":
        metric, model = "desync", Synchformer(SynchformerSizes(**_TINY_SYNC["desync"]) if dry else SynchformerSizes())
    else:
        metric, model = "ib", ImageBind(ImageBindSizes(**_TINY_SYNC["ib"]) if dry else ImageBindSizes())
    passes = feature_passes(metric, model, device, {"video": 2, "audio": 2} if dry else None)
    model = model.to(device).eval()
    g = torch.Generator().manual_seed(0)
    value, batches = {}, {}
    with torch.inference_mode():
        for part, (fn, shape, batch) in passes.items():
            x = torch.randn(*shape, generator=g).to(device)
            fn(x[:batch])  # warm-up
            _sync(device)
            t0 = time.perf_counter()
            for i in range(0, shape[0], batch):
                fn(x[i:i + batch])
            _sync(device)
            value[f"{part}_s_per_clip"] = time.perf_counter() - t0
            batches[part] = {"items": shape[0], "batch": batch}
    del model
    return value, "s per 8 s clip", {"passes": batches, "dtype": "float32", "device": device,
                                     "weights": "random, tiny" if dry else "random, full size"}


def gpu_test_files(root: Path) -> list[Path]:
    """The test files with ``gpu``-marked tests (only these are collected: the other test modules
    import packages the GPU machine lacks)."""
    return sorted(p for p in (root / "tests").rglob("test_*.py") if "pytest.mark.gpu" in p.read_text())


def _gpu_tests(ctx: dict, deadline: float):
    import subprocess
    import sys

    left = deadline - time.monotonic()
    if left <= 5:
        raise Skip("too little budget left for the gpu tests")
    root = Path(__file__).resolve().parents[1]
    files = gpu_test_files(root)
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", *map(str, files)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=left - 2, cwd=root)
    except subprocess.TimeoutExpired:
        raise Timeout(f"the gpu tests ran out of the budget ({left - 2:.0f} s)") from None
    summary = (done.stdout.strip().splitlines() or ["no output"])[-1]
    if done.returncode not in (0, 5):  # 5: no test collected
        raise RuntimeError(f"pytest exited {done.returncode}: {summary}")
    return {"exit_code": done.returncode}, "pytest", {"summary": summary, "device": ctx["device"]}
