"""``python -m tempotokens``: ``make-tiny DIR`` and ``generate``.

Bad input (missing or unreadable audio, neither audio nor prompt, a folder that is not a model)
gets one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

EXIT_OK, EXIT_USAGE = 0, 2


class UsageError(Exception):
    """Reported on one line; exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tempotokens", description="TempoTokens audio-to-video generation.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tiny = sub.add_parser("make-tiny", help="write a tiny random-weight model folder",
                          description="Write a complete tiny random-weight model (no download) usable as --model.")
    tiny.add_argument("dir", help="output folder")
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights")

    gen = sub.add_parser("generate", help="generate a video from audio, text, or both",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                         description="Generate one video; writes OUT.mp4 (audio muxed in) and OUT.wav.")
    gen.add_argument("--model", required=True, help="model folder (ours, or a zeroscope diffusers folder with --beats/--adaptor)")
    gen.add_argument("--out", required=True, help="output .mp4 (the sibling .wav is written too)")
    gen.add_argument("--audio", help="conditioning audio (any format soundfile or PyAV reads)")
    gen.add_argument("--audio-start", type=float, default=0.0, help="start of the audio span, seconds")
    gen.add_argument("--prompt", help="text; with audio, may contain the placeholders <temp> ... <class>")
    gen.add_argument("--negative-prompt", default=None, help="unconditional branch of guidance")
    gen.add_argument("--num-frames", type=int, default=24)
    gen.add_argument("--fps", type=float, default=12.0, help="frames per second (frames / fps = audio seconds)")
    gen.add_argument("--steps", type=int, default=25, help="denoising steps (DPM-Solver++)")
    gen.add_argument("--guidance", type=float, default=25.0, help="classifier-free guidance scale")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--height", type=int, default=None, help="pixels (default: the model's)")
    gen.add_argument("--width", type=int, default=None, help="pixels (default: the model's)")
    gen.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    gen.add_argument("--dtype", default=None, choices=("float32", "float16", "bfloat16"),
                     help="default: float16 on GPU, float32 on CPU")
    gen.add_argument("--beats", help="BEATs checkpoint (.pt) or folder, if the model has none")
    gen.add_argument("--adaptor", help="adaptor weights (learned_embeds.pth) or folder, if the model has none")
    return parser


def run_make_tiny(args: argparse.Namespace) -> int:
    from .tiny import make_tiny

    out = make_tiny(args.dir, seed=args.seed)
    print(f"tiny model written to {out}")
    return EXIT_OK


def run_generate(args: argparse.Namespace) -> int:
    import torch

    from avalign.media import MediaError, load_audio, write_clip

    if args.audio is None and args.prompt is None:
        raise UsageError("give --audio, --prompt, or both")
    if args.audio is not None:
        try:
            load_audio(args.audio, None)
        except MediaError as exc:
            raise UsageError(str(exc)) from None
    if not (Path(args.model) / "model_index.json").is_file():
        raise UsageError(f"{args.model}: not a model folder (no model_index.json); see 'make-tiny'")
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
               num_frames=args.num_frames, fps=args.fps, height=args.height, width=args.width,
               num_inference_steps=args.steps, guidance_scale=args.guidance, generator=generator,
               audio_start_s=args.audio_start, output_type="uint8")
    audio = out.audio[0] if out.audio else None
    mp4, wav = write_clip(args.out, out.frames[0], args.fps, audio, out.audio_sample_rates[0] if audio is not None else None)
    print(f"wrote {mp4}" + (f" and {wav}" if wav else ""))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return run_make_tiny(args) if args.command == "make-tiny" else run_generate(args)
    except UsageError as exc:
        print(f"tempotokens: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
