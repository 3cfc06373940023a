"""``python -m tempotokens``: ``make-tiny DIR``, ``toy OUT``, ``fit-vae``, ``probe`` and ``generate``.

Bad input (missing or unreadable audio, neither audio nor prompt, a folder that is not a model)
gets one line on stderr and exit status 2; Ctrl-C and SIGTERM end with 130 and 143, keeping the
finished checkpoints (:mod:`avalign.runctl`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from avalign.runctl import exit_with
from avalign.flags import HelpFormatter, UsageError, parse_size, run_cli
from avalign.runctl import EXIT_OK, EXIT_USAGE  # noqa: F401  (re-exported: the statuses)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tempotokens", description="TempoTokens audio-to-video generation.",
                                     formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tiny = sub.add_parser("make-tiny", formatter_class=HelpFormatter, help="write a tiny random-weight model folder",
                          description="Write a complete tiny random-weight model (no download) usable as --model.")
    tiny.add_argument("dir", help="output folder")
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights")

    toy = sub.add_parser("toy", formatter_class=HelpFormatter, help="train the toy model on the synthetic clips (make toy)",
                         description="Run (or resume) the toy recipe into OUT: data, VAE, text-to-video backbone, "
                                     "adaptor, fp16 export in OUT/model (see tempotokens.toy).")
    toy.add_argument("out", help="build folder (never the shipped tempotokens/toy_model)")
    toy.add_argument("--overwrite", action="store_true", help="rebuild a folder that holds a finished toy model (or another recipe's run); "
                     "a folder the recipe did not make is never deleted")
    toy.add_argument("--micro", action="store_true", help="a few steps per stage on a few clips (the code path only)")
    toy.add_argument("--set", nargs="*", metavar="FIELD=VALUE",
                     help="recipe fields (tempotokens.toy.ToyRecipe), e.g. adaptor_unet=lora adaptor_steps=400")
    toy.add_argument("--install", action="store_true",
                     help="afterwards, copy OUT/model over the shipped tempotokens/toy_model (explicit step)")

    vae = sub.add_parser("fit-vae", formatter_class=HelpFormatter, help="fit a model folder's VAE on a folder of clips",
                         description="Train the VAE of MODEL on single frames of the training clips of DATA_ROOT; "
                                     "writes OUT/vae (resumes from OUT's last checkpoint).")
    vae.add_argument("--model", required=True, metavar="DIR", help="model folder whose vae/ is the starting point")
    vae.add_argument("--data-root", required=True, metavar="DIR", help="dataset folder (video/, audio/, the split CSV)")
    vae.add_argument("--dataset", default="synthetic", metavar="D", help="dataset layout (tempotokens.data.datasets.DATASETS)")
    vae.add_argument("--out", required=True, metavar="DIR", help="output folder (checkpoints, metrics.jsonl, vae/)")
    vae.add_argument("--steps", type=int, default=600, metavar="N", help="optimiser steps")
    vae.add_argument("--batch-size", type=int, default=32, metavar="B", help="frames per step")
    vae.add_argument("--lr", type=float, default=1e-3, metavar="LR", help="AdamW learning rate")
    vae.add_argument("--size", default="32x32", metavar="WxH", help="pixels after the protocol's resize")
    vae.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the frame draws")

    probe = sub.add_parser("probe", formatter_class=HelpFormatter, help="does a model use its audio? loss with own vs another clip's audio",
                           description="Noise-prediction MSE of MODEL on clips of DATA_ROOT conditioned on each clip's own "
                                       "audio and on another clip's of the same label, per timestep "
                                       "(tempotokens.training.probe); prints a table, writes --out as JSON.")
    probe.add_argument("--model", required=True, metavar="DIR", help="model folder")
    probe.add_argument("--data-root", required=True, metavar="DIR", help="dataset folder (video/, audio/, the split CSV)")
    probe.add_argument("--dataset", default="synthetic", metavar="D", help="dataset layout (tempotokens.data.datasets.DATASETS)")
    probe.add_argument("--split", default="train", choices=("train", "test"), help="split the clips come from")
    probe.add_argument("--clips", type=int, default=12, metavar="N", help="the last N clips of the split (the toy's validation "
                                                              "clips for --split train)")
    probe.add_argument("--num-frames", type=int, default=24, metavar="N", help="frames per clip fed to the model")
    probe.add_argument("--fps", type=float, default=12.0, metavar="F", help="frame rate the clips are sampled at")
    probe.add_argument("--size", default="32x32", metavar="WxH", help="pixels after the protocol's resize")
    probe.add_argument("--timesteps", default="100,300,500,700,850,950", metavar="LIST", help="comma-separated training timesteps")
    probe.add_argument("--repeats", type=int, default=3, metavar="R", help="noise draws per timestep")
    probe.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the noise draws")
    probe.add_argument("--device", metavar="D", help="torch device (default: cuda when available, else cpu)")
    probe.add_argument("--out", metavar="JSON", help="JSON file for the rows (written atomically)")

    gen = sub.add_parser("generate", formatter_class=HelpFormatter, help="generate a video from audio, text, or both",
                         description="Generate one video; writes OUT.mp4 (audio muxed in) and OUT.wav.")
    gen.add_argument("--model", required=True, metavar="DIR", help="model folder (ours, or a zeroscope diffusers folder with --beats/--adaptor)")
    gen.add_argument("--out", required=True, metavar="OUT.mp4", help="output .mp4 (the sibling .wav is written too)")
    gen.add_argument("--audio", metavar="WAV", help="conditioning audio (any format soundfile or PyAV reads)")
    gen.add_argument("--audio-start", type=float, default=0.0, metavar="S", help="start of the audio span, seconds")
    gen.add_argument("--prompt", metavar="TEXT", help="text; with audio, may contain the placeholders <temp> ... <class>")
    gen.add_argument("--negative-prompt", default=None, metavar="TEXT", help="unconditional branch of guidance")
    by_model = "default: by model, see tempotokens.defaults"
    gen.add_argument("--num-frames", type=int, metavar="N", help=f"frames generated ({by_model})")
    gen.add_argument("--fps", type=float, metavar="F", help=f"frames per second; frames / fps = audio seconds ({by_model})")
    gen.add_argument("--steps", type=int, metavar="N", help=f"denoising steps, DPM-Solver++ ({by_model})")
    gen.add_argument("--guidance", type=float, metavar="G", help=f"classifier-free guidance scale ({by_model})")
    gen.add_argument("--seed", type=int, default=0, metavar="K", help="seed of the initial noise")
    gen.add_argument("--size", metavar="WxH", help=f"pixels generated, width x height ({by_model})")
    gen.add_argument("--device", default=None, metavar="D", help="torch device (default: cuda if available, else cpu)")
    gen.add_argument("--dtype", default=None, choices=("float32", "float16", "bfloat16"),
                     help="generation dtype (default: float16 on a GPU, else float32)")
    gen.add_argument("--beats", metavar="CKPT", help="BEATs checkpoint (.pt) or folder, if the model has none")
    gen.add_argument("--adaptor", metavar="PATH", help="adaptor weights (learned_embeds.pth) or folder, if the model has none")
    return parser


def run_make_tiny(args: argparse.Namespace) -> int:
    from .tiny import make_tiny

    out = make_tiny(args.dir, seed=args.seed)
    print(f"tiny model written to {out}")
    return EXIT_OK


def run_toy(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from .toy import MICRO, ToyError, ToyRecipe, install, run_recipe

    recipe = MICRO if args.micro else ToyRecipe()
    fields = {f.name: f.type for f in dataclasses.fields(ToyRecipe)}
    changes = {}
    for item in args.set or []:
        key, _, value = item.partition("=")
        if key not in fields or not _:
            raise UsageError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {', '.join(fields)}")
        kind = type(getattr(recipe, key))
        try:
            changes[key] = kind(value)
        except ValueError:
            raise UsageError(f"--set {item!r}: {key} takes a {kind.__name__}") from None
    recipe = dataclasses.replace(recipe, **changes)
    try:
        record = Path(args.out) / "toy.json"
        if args.install and record.is_file() and not args.overwrite:
            built = json.loads(record.read_text())["recipe"]
            if built != dataclasses.asdict(recipe):  # never install a build of another recipe unasked
                diff = ", ".join(f"{k}={built.get(k)!r} (asked {v!r})" for k, v in dataclasses.asdict(recipe).items()
                                 if built.get(k) != v)
                raise UsageError(f"{args.out}: its finished build is of another recipe ({diff}); "
                                 "give the same --micro/--set, or --overwrite to rebuild")
            model = Path(args.out) / "model"  # a finished build of this recipe: install it as it is
        else:
            model = run_recipe(args.out, recipe, overwrite=args.overwrite)
        print(f"toy model written to {model}")
        if args.install:
            print(f"installed over {install(model)}")
    except ToyError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


def run_fit_vae(args: argparse.Namespace) -> int:
    from diffusers import AutoencoderKL

    from .training.vae import VaeFitConfig, fit_vae

    w, h = parse_size(args.size)
    if w < 8 or h < 8:
        raise UsageError(f"--size {args.size}: at least 8x8 pixels")
    if not (Path(args.model) / "vae" / "config.json").is_file():
        raise UsageError(f"{args.model}: no vae/ folder (a diffusers model folder)")
    import json

    factor = 2 ** (len(json.loads((Path(args.model) / "vae" / "config.json").read_text())["block_out_channels"]) - 1)
    if w % factor or h % factor:
        raise UsageError(f"--size {args.size}: this VAE needs multiples of {factor} pixels")
    if not Path(args.data_root).is_dir():
        raise UsageError(f"{args.data_root}: data root not found")
    cfg = VaeFitConfig(data_root=args.data_root, dataset=args.dataset, height=h, width=w, steps=args.steps,
                       batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed)
    try:
        fit_vae(AutoencoderKL.from_pretrained(Path(args.model) / "vae"), cfg, args.out)
    except ValueError as exc:
        raise UsageError(" ".join(str(exc).split())) from None
    print(f"VAE written to {Path(args.out) / 'vae'}")
    return EXIT_OK


def run_probe(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .data.datasets import AudioVideoClips, DatasetError, collate, index_dataset
    from avalign.io import write_json_atomic
    from .training.probe import audio_dependence

    w, h = parse_size(args.size)
    try:
        timesteps = [int(t) for t in args.timesteps.split(",")]
    except ValueError:
        raise UsageError(f"--timesteps {args.timesteps!r}: comma-separated integers") from None
    if args.clips < 2 or args.repeats < 1 or args.num_frames < 2:
        raise UsageError("--clips needs at least 2, --repeats at least 1, --num-frames at least 2")
    if not args.fps > 0 or w < 8 or h < 8:
        raise UsageError(f"--fps must be positive and --size at least 8x8, got --fps {args.fps} --size {args.size}")
    if not (Path(args.model) / "model_index.json").is_file():
        raise UsageError(f"{args.model}: not a model folder (no model_index.json)")
    import torch

    from .pipeline import AudioToVideoPipeline

    pipe = AudioToVideoPipeline.from_pretrained(args.model, use_dpm_solver=False)
    n_train = pipe.scheduler.config.num_train_timesteps
    if any(not 0 <= t < n_train for t in timesteps):
        raise UsageError(f"--timesteps {args.timesteps}: each must be in [0, {n_train}) for this model")
    try:
        pipe.to(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except (RuntimeError, ValueError) as exc:
        raise UsageError(f"--device {args.device}: {' '.join(str(exc).split())[:200]}") from None
    try:
        clips = index_dataset(args.data_root, args.dataset, split=args.split)[-args.clips:]
    except (DatasetError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if len(clips) < 2:
        raise UsageError(f"{args.data_root}: {len(clips)} {args.split} clip(s); the probe needs at least 2")
    data = AudioVideoClips(clips, args.num_frames, h, w, random_start=False, fps=args.fps)
    try:
        rows = audio_dependence(pipe, collate([data[i] for i in range(len(data))]), timesteps, args.repeats, args.seed)
    except ValueError as exc:
        raise UsageError(" ".join(str(exc).split())) from None
    print(f"{'timestep':>8}  {'mse own audio':>13}  {'mse other audio':>15}  {'gain':>7}")
    for r in rows:
        print(f"{r.timestep:>8}  {r.mse_own:>13.6f}  {r.mse_other:>15.6f}  {100 * r.gain:>6.2f}%")
    if args.out:
        write_json_atomic(Path(args.out), {"model": str(args.model), "data_root": str(args.data_root),
                                           "split": args.split, "clip_ids": [c.clip_id for c in clips],
                                           "num_frames": args.num_frames, "fps": args.fps, "size": [w, h],
                                           "timesteps": timesteps, "repeats": args.repeats, "seed": args.seed, "rows": [asdict(r) for r in rows]})
    return EXIT_OK


def run_generate(args: argparse.Namespace) -> int:
    import torch

    from avalign.io import MediaError, load_audio, write_clip

    if args.audio is None and args.prompt is None:
        raise UsageError("give --audio, --prompt, or both")
    if args.audio is not None:
        try:
            load_audio(args.audio, None)
        except MediaError as exc:
            raise UsageError(str(exc)) from None
    if not (Path(args.model) / "model_index.json").is_file():
        raise UsageError(f"{args.model}: not a model folder (no model_index.json); see 'make-tiny'")
    from .defaults import for_model

    g = for_model(args.model).given(parse_size(args.size), num_frames=args.num_frames, fps=args.fps, steps=args.steps,
                                    guidance=args.guidance)
    fps, frames, steps, w, h = g.fps, g.num_frames, g.steps, g.width, g.height
    if frames < 1 or steps < 1 or not fps > 0:
        raise UsageError(f"--num-frames and --steps must be at least 1 and --fps positive, got {frames}, {steps}, {fps}")
    if w < 8 or h < 8:
        raise UsageError(f"--size must be at least 8x8 pixels, got {w}x{h}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, args.dtype or ("float16" if device.startswith("cuda") else "float32"))

    from .pipeline import AudioToVideoPipeline

    try:
        pipe = AudioToVideoPipeline.from_pretrained(args.model, beats=args.beats, adaptor=args.adaptor)
    except (ValueError, OSError, EnvironmentError) as exc:
        raise UsageError(f"{args.model}: cannot load the model ({' '.join(str(exc).split())[:300]})") from None
    pipe = pipe.to(device)
    if dtype != torch.float32:
        pipe = pipe.to(dtype)
    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    out = pipe(audio=args.audio, prompt=args.prompt, negative_prompt=args.negative_prompt,
               num_frames=frames, fps=fps, height=h, width=w, num_inference_steps=steps,
               guidance_scale=g.guidance, generator=generator,
               audio_start_s=args.audio_start, output_type="uint8")
    audio = out.audio[0] if out.audio else None
    mp4, wav = write_clip(args.out, out.frames[0], fps, audio, out.audio_sample_rates[0] if audio is not None else None)
    print(f"wrote {mp4}" + (f" and {wav}" if wav else ""))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    run = {"make-tiny": run_make_tiny, "toy": run_toy, "fit-vae": run_fit_vae, "probe": run_probe,
           "generate": run_generate}
    return run_cli("tempotokens", lambda: run[args.command](args), fatal=(ValueError,))


def console() -> None:
    """The console script: :func:`main`, then :func:`avalign.runctl.exit_with` its status."""
    exit_with(main())
