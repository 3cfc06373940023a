"""``AudioToVideoPipeline``: video from audio, from text, or from both (TempoTokens).

Components: a ModelScope/zeroscope text-to-video model (``vae``, ``text_encoder``, ``tokenizer``,
``unet``, ``scheduler``) plus ``beats`` (:class:`~tempotokens.beats.BEATs`) and ``adaptor``
(:class:`~tempotokens.adaptor.AudioTokenAdaptor`).  All stock diffusers/transformers classes; the
audio reaches the UNet through placeholder tokens and per-frame cross-attention
(:mod:`tempotokens.conditioning`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, DPMSolverMultistepScheduler, UNet3DConditionModel
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from .adaptor import AudioTokenAdaptor, load_adaptor
from .beats import SAMPLE_RATE, BEATs, load_beats
from .conditioning import (
    PLACEHOLDERS,
    add_placeholder_tokens,
    encode_text,
    encode_with_audio,
    has_placeholders,
    tokenize,
    with_placeholders,
)
from .frame_attention import FRAME_STATES, ensure_frame_attention
from .profiling import OFF, StageProfiler

__all__ = ["AudioToVideoPipeline", "AudioToVideoPipelineOutput", "DEFAULT_SIZE", "load_adaptor", "load_beats"]

#: Frame size (height, width) when neither the call nor the model folder gives one: the authors' 384x384.
DEFAULT_SIZE = (384, 384)

logger = logging.getLogger(__name__)

AudioInput = str | os.PathLike | np.ndarray | torch.Tensor


def mix_noise(per_frame: torch.Tensor, shared: torch.Tensor, rho: float) -> torch.Tensor:
    """The noise prior's mix ``sqrt(rho) * shared + sqrt(1 - rho) * per_frame`` (``shared`` has one
    frame and broadcasts over the frames); the generator, the trainer and the probe all use it."""
    return rho**0.5 * shared + (1 - rho) ** 0.5 * per_frame


@dataclass
class AudioToVideoPipelineOutput(BaseOutput):
    """Output of :class:`AudioToVideoPipeline`.

    Attributes
    ----------
    frames : np.ndarray or torch.Tensor
        ``output_type="np"``: float ``(B, F, H, W, 3)`` in [0, 1]; ``"uint8"``: the same as uint8;
        ``"pt"``: float ``(B, F, 3, H, W)`` in [0, 1]; ``"latent"``: ``(B, C, F, h, w)``.
    audio : list of np.ndarray, or None
        Per clip, the exact audio span that conditioned it (mono float32), at ``audio_sample_rates``.
    audio_sample_rates : list of int
    fps : float
        Frame rate the audio span was cut for (``num_frames / fps`` seconds).
    """

    frames: Any
    audio: list[np.ndarray] | None
    audio_sample_rates: list[int]
    fps: float


class AudioToVideoPipeline(DiffusionPipeline):
    """Generate videos conditioned on audio, text, or both.

    Examples
    --------
    >>> pipe = AudioToVideoPipeline.from_pretrained(
    ...     "zeroscope_v2_576w", beats="BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt",
    ...     adaptor="models/vggsound/learned_embeds.pth").to("cuda", torch.float16)
    >>> out = pipe(audio="dog.wav", num_frames=24, fps=12, height=384, width=384,
    ...            generator=torch.Generator("cuda").manual_seed(0))
    >>> out.frames.shape        # (1, 24, 384, 384, 3)
    """

    model_cpu_offload_seq = "beats->adaptor->text_encoder->unet->vae"

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder,
        tokenizer,
        unet: UNet3DConditionModel,
        scheduler,
        beats: BEATs,
        adaptor: AudioTokenAdaptor,
        default_size: Sequence[int] | None = None,
        noise_correlation: float = 0.0,
    ):
        super().__init__()
        self.register_modules(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
            beats=beats, adaptor=adaptor,
        )
        if not 0.0 <= float(noise_correlation) < 1.0:
            raise ValueError(f"noise_correlation must be in [0, 1), got {noise_correlation}")
        self.register_to_config(default_size=list(default_size) if default_size else None,
                                noise_correlation=float(noise_correlation))
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    def prepare_conditioning(self) -> list[int]:
        """Make the components carry audio (idempotent; cheap when already done): add the six
        placeholder tokens to the tokenizer (growing the text encoder's embedding table), and install
        per-frame cross-attention on the UNet (again, if ``set_attn_processor`` replaced it).  Called
        by :meth:`from_pretrained` and before every use.  Returns the placeholder ids."""
        ids = self.tokenizer.convert_tokens_to_ids(list(PLACEHOLDERS))
        if any(i is None or i == self.tokenizer.unk_token_id for i in ids) or \
                self.text_encoder.get_input_embeddings().num_embeddings < len(self.tokenizer):
            add_placeholder_tokens(self.tokenizer, self.text_encoder)
        ensure_frame_attention(self.unet, self.tokenizer.model_max_length)
        return self.placeholder_ids

    @property
    def default_frame_size(self) -> tuple[int, int]:
        """(height, width) in pixels when a call gives none: the model folder's ``default_size``
        (``model_index.json``), else the authors' 384x384."""
        size = self.config.get("default_size")
        return (int(size[0]), int(size[1])) if size else DEFAULT_SIZE

    @property
    def noise_correlation(self) -> float:
        """The model's noise prior (``model_index.json``; 0 for ModelScope/zeroscope): the share ``rho`` of
        each frame's initial noise that all frames of a clip have in common, ``sqrt(rho) * e_clip +
        sqrt(1 - rho) * e_frame`` (the "mixed" noise of Ge et al., PYoCo, arXiv 2305.10474).  A model
        is trained with the prior it generates with (the trainer reads it from the model folder)."""
        return float(self.config.get("noise_correlation") or 0.0)

    def prepare_latents(self, shape: tuple[int, ...], generator, device, dtype) -> torch.Tensor:
        """Initial noise ``(B, C, F, h, w)`` under the model's noise prior (independent per frame when
        :attr:`noise_correlation` is 0; the shared part is drawn after the per-frame part)."""
        latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        rho = self.noise_correlation
        if rho > 0:
            shared = randn_tensor((*shape[:2], 1, *shape[3:]), generator=generator, device=device, dtype=dtype)
            latents = mix_noise(latents, shared, rho)
        return latents

    @property
    def placeholder_ids(self) -> list[int]:
        """Token ids of the placeholders, in :data:`~tempotokens.conditioning.PLACEHOLDERS` order."""
        return self.tokenizer.convert_tokens_to_ids(list(PLACEHOLDERS))

    def to(self, *args, **kwargs):
        """As diffusers' ``to``, except that BEATs and the adaptor stay float32 (as the authors and our
        trainer run them) whatever dtype the rest is cast to."""
        pipe = super().to(*args, **kwargs)
        for module in (pipe.beats, pipe.adaptor):
            if module is not None and module.dtype != torch.float32:
                module.to(torch.float32)
        return pipe

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        beats: str | os.PathLike | BEATs | None = None,
        adaptor: str | os.PathLike | AudioTokenAdaptor | None = None,
        use_dpm_solver: bool = True,
        **kwargs,
    ) -> "AudioToVideoPipeline":
        """Load a local folder: one of ours, or a ModelScope/zeroscope diffusers folder plus
        ``beats`` (official ``.pt`` or folder) and ``adaptor`` (``learned_embeds.pth`` or folder).

        Nothing is downloaded (``local_files_only``).  Weights load as float32 unless ``dtype``
        says otherwise (whatever dtype the files hold).  The scheduler becomes DPM-Solver++ unless
        ``use_dpm_solver=False``.
        """
        path = Path(pretrained_model_name_or_path)
        if not (path / "model_index.json").is_file():
            raise ValueError(f"{path}: not a diffusers model folder (no model_index.json)")
        if beats is not None:
            kwargs["beats"] = load_beats(beats)
        if adaptor is not None:
            kwargs["adaptor"] = load_adaptor(adaptor)
        for name in ("beats", "adaptor"):
            if name not in kwargs and not (path / name).is_dir():
                raise ValueError(f"{path}: has no {name}/ folder; pass {name}=... (a file or folder)")
        kwargs.setdefault("local_files_only", True)
        # float32 unless asked: a folder stored in fp16 (the shipped toy) still runs in fp32 on a CPU
        if "torch_dtype" not in kwargs:
            kwargs.setdefault("dtype", torch.float32)
        pipe = super().from_pretrained(str(path), **kwargs)
        if use_dpm_solver and not isinstance(pipe.scheduler, DPMSolverMultistepScheduler):
            pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
        for module in (pipe.beats, pipe.adaptor):  # float32 whatever torch_dtype the rest was loaded in
            if module.dtype != torch.float32:  # (diffusers' to(dtype) prints a note even for a no-op)
                module.to(torch.float32)
        pipe.prepare_conditioning()
        return pipe

    # ------------------------------------------------------------------------------------------
    # helpers
    # ------------------------------------------------------------------------------------------
    def prepare_audio(
        self, audio: AudioInput | Sequence[AudioInput], start_s: float, duration_s: float, sample_rate: int
    ) -> tuple[list[np.ndarray], list[int], torch.Tensor]:
        """Cut the span ``[start_s, start_s + duration_s)`` of each audio (zero-padded past its end).

        Returns the spans at their own rates (what is written next to the video) and the batch
        ``(B, S)`` at 16 kHz for BEATs.
        """
        from avalign.io import load_audio, resample_exact

        items = list(audio) if isinstance(audio, (list, tuple)) else [audio]
        if len(items) == 1 and isinstance(items[0], (np.ndarray, torch.Tensor)) and np.ndim(items[0]) == 2:
            items = list(items[0])  # a (B, S) array
        spans, rates, model_in = [], [], []
        for item in items:
            if isinstance(item, (str, os.PathLike)):
                y, sr = load_audio(item, None, start_s=start_s, duration_s=duration_s, pad=True)
            else:
                y = np.asarray(item.detach().cpu().float() if isinstance(item, torch.Tensor) else item, np.float32)
                if y.ndim != 1:
                    raise ValueError(f"an audio array must be (S,) or (B, S), got shape {y.shape}")
                sr = int(sample_rate)
                y = resample_exact(y[int(round(start_s * sr)):], sr, sr, duration_s)  # the span, zero-padded
            spans.append(y)
            rates.append(sr)
            model_in.append(resample_exact(y, sr, SAMPLE_RATE, duration_s))
        n = max(len(y) for y in model_in)
        batch = torch.zeros(len(model_in), n)
        for i, y in enumerate(model_in):
            batch[i, : len(y)] = torch.from_numpy(y)
        return spans, rates, batch

    @torch.no_grad()
    def encode_audio(self, waveform: torch.Tensor, num_frames: int):
        """BEATs + adaptor, once per clip: ``(B, S)`` at 16 kHz → tokens for ``num_frames`` frames."""
        device = self._execution_device
        features = self.beats(waveform.to(device, self.beats.dtype))
        return self.adaptor(features.layers.to(self.adaptor.dtype), num_frames=num_frames)

    def decode_latents(self, latents: torch.Tensor, chunk: int = 8) -> torch.Tensor:
        """``(B, C, F, h, w)`` latents → ``(B, F, 3, H, W)`` pixels in [0, 1], ``chunk`` frames at a time."""
        B, C, F, h, w = latents.shape
        flat = (latents / self.vae.config.scaling_factor).permute(0, 2, 1, 3, 4).reshape(B * F, C, h, w)
        flat = flat.to(self.vae.dtype)  # a UNet trained in fp32 beside an fp16/bf16 VAE
        images = torch.cat([self.vae.decode(flat[i : i + chunk]).sample for i in range(0, B * F, chunk)])
        images = (images.float().clamp(-1, 1) + 1) / 2
        return images.reshape(B, F, *images.shape[1:])

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        audio: AudioInput | Sequence[AudioInput] | None = None,
        prompt: str | Sequence[str] | None = None,
        negative_prompt: str | Sequence[str] | None = None,
        num_frames: int = 24,
        fps: float = 12.0,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 25,
        guidance_scale: float = 25.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "np",
        audio_start_s: float = 0.0,
        audio_sample_rate: int = SAMPLE_RATE,
        decode_chunk_size: int = 8,
        return_dict: bool = True,
        profiler: StageProfiler | None = None,
    ) -> AudioToVideoPipelineOutput | tuple:
        """Generate a batch of videos.

        Parameters
        ----------
        audio : path, array, tensor, or a list of them, optional
            Audio files, or waveforms ``(S,)`` / ``(B, S)`` at ``audio_sample_rate``.  The span
            ``[audio_start_s, audio_start_s + num_frames / fps)`` conditions the clip.
        prompt : str or list of str, optional
            Text.  With audio, free text may surround the placeholders
            ``<temp> <local1> <local2> <local3> <local4> <class>``; a prompt without them gets them
            appended, and no prompt means the placeholders alone (the reference's default).
        negative_prompt : str or list of str, optional
            The unconditional branch of classifier-free guidance (default: the empty prompt); it
            never carries audio tokens, as in the reference.  A list has one per video.
        num_frames, fps : int, float
            Video length in frames, and the frame rate that maps frames to audio time.
        height, width : int, optional
            Pixels, multiples of ``vae_scale_factor * 2 ** (levels - 1)``; default: the model folder's
            ``default_size``, else the authors' 384x384 (:data:`DEFAULT_SIZE`).
        num_inference_steps, guidance_scale : int, float
            Denoising steps and the guidance weight (the reference uses 25 and 25).
        generator : torch.Generator or list, optional
            Seeds: identical generators give identical videos.
        output_type : {"np", "uint8", "pt", "latent"}
        profiler : StageProfiler, optional
            Records the seconds (and CUDA peak memory) of each stage: ``audio_encoding``,
            ``prompt_encoding``, ``denoising`` (and each step) and ``vae_decoding``.
        """
        prof = profiler or OFF
        # 1. Check inputs and batch size
        if audio is None and prompt is None:
            raise ValueError("give audio, a prompt, or both")
        if output_type not in ("np", "uint8", "pt", "latent"):
            raise ValueError(f"output_type must be np, uint8, pt or latent, got {output_type!r}")
        if num_frames < 1 or fps <= 0:
            raise ValueError(f"need num_frames >= 1 and fps > 0, got {num_frames} and {fps}")
        height, width = height or self.default_frame_size[0], width or self.default_frame_size[1]
        multiple = self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)
        if height % multiple or width % multiple:
            raise ValueError(f"height and width must be multiples of {multiple}, got {height}x{width}")
        device = self._execution_device
        duration = num_frames / fps

        spans, rates, tokens = None, [], None
        if audio is not None:
            with prof.stage("audio_encoding"):
                spans, rates, waveform = self.prepare_audio(audio, audio_start_s, duration, audio_sample_rate)
        prompts = [prompt] if isinstance(prompt, str) or prompt is None else list(prompt)
        batch = len(spans) if spans is not None else len(prompts)
        if len(prompts) == 1:
            prompts = prompts * batch
        if len(prompts) != batch:
            raise ValueError(f"{len(prompts)} prompts for {batch} audio clips")
        if isinstance(negative_prompt, (list, tuple)) and len(negative_prompt) != batch:
            raise ValueError(f"{len(negative_prompt)} negative prompts for a batch of {batch}; give one per video, "
                             "or a single string")
        do_cfg = guidance_scale > 1.0

        # 2. Encode audio (once per clip) and prompts
        if spans is not None:
            with prof.stage("audio_encoding"):
                tokens = self.encode_audio(waveform, num_frames)
        with prof.stage("prompt_encoding"):
            cond, frame_states = self.encode_prompt(prompts, tokens, num_frames, negative_prompt if do_cfg else None,
                                                    do_cfg)
        cond = cond.to(device, self.unet.dtype)
        frame_kwargs = None if frame_states is None else {FRAME_STATES: frame_states.to(device, self.unet.dtype)}

        # 3. Prepare latents
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        shape = (batch, self.unet.config.in_channels, num_frames, height // self.vae_scale_factor,
                 width // self.vae_scale_factor)
        if latents is None:
            latents = self.prepare_latents(shape, generator, device, self.unet.dtype)
        latents = latents.to(device, self.unet.dtype) * self.scheduler.init_noise_sigma

        # 4. Denoise
        with prof.stage("denoising"):
            for t in self.progress_bar(self.scheduler.timesteps):
                with prof.step():
                    model_in = torch.cat([latents] * 2) if do_cfg else latents
                    model_in = self.scheduler.scale_model_input(model_in, t)
                    noise = self.unet(model_in, t, encoder_hidden_states=cond,
                                      cross_attention_kwargs=frame_kwargs).sample
                    if do_cfg:
                        noise_uncond, noise_cond = noise.chunk(2)
                        noise = noise_uncond + guidance_scale * (noise_cond - noise_uncond)
                    latents = self.scheduler.step(noise, t, latents).prev_sample

        # 5. Decode
        if output_type == "latent":
            frames = latents
        else:
            with prof.stage("vae_decoding"):
                frames = self.decode_latents(latents, decode_chunk_size)
                if output_type != "pt":
                    frames = frames.permute(0, 1, 3, 4, 2).cpu().numpy()
                    if output_type == "uint8":
                        frames = np.round(frames * 255).astype(np.uint8)
        self.maybe_free_model_hooks()
        out = AudioToVideoPipelineOutput(frames=frames, audio=spans, audio_sample_rates=rates, fps=float(fps))
        return out if return_dict else (frames, spans)

    def encode_prompt(
        self,
        prompts: Sequence[str | None],
        tokens=None,
        num_frames: int = 1,
        negative_prompt: str | Sequence[str] | None = None,
        do_classifier_free_guidance: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Step 2's text side, shared with the trainer.

        Parameters
        ----------
        prompts : list of str or None
            One per video; with ``tokens`` each gets the placeholders (:func:`with_placeholders`).
        tokens : AdaptorOutput, optional
            The adaptor's tokens for ``num_frames`` frames (audio conditioning).
        negative_prompt, do_classifier_free_guidance
            With guidance, the unconditional rows (no audio) come first.

        Returns
        -------
        encoder_hidden_states : torch.Tensor, shape (N, L, D)
            What the UNet takes as ``encoder_hidden_states`` (N = videos, doubled with guidance).
        frame_states : torch.Tensor of shape (N * F, L, D), or None
            With audio, each frame's own sequence (row ``n * F + f``), for
            ``cross_attention_kwargs={"frame_states": ...}``; None for text alone.
        """
        self.prepare_conditioning()  # every use re-checks: also after set_attn_processor replaced the processors
        prompts, batch = list(prompts), len(prompts)
        if tokens is not None:
            prompts = [with_placeholders(p) for p in prompts]
            frames = encode_with_audio(self.tokenizer, self.text_encoder, prompts, tokens, self.placeholder_ids)
            cond = frames[::num_frames]  # the UNet needs a (N, L, D); every frame's own rows are in frame_states
        else:
            if any(p is not None and has_placeholders(p) for p in prompts):
                raise ValueError("the prompt has audio placeholders but no audio was given")
            frames, cond = None, encode_text(self.text_encoder, tokenize(self.tokenizer, [p or "" for p in prompts]))
        if do_classifier_free_guidance:
            negatives = list(negative_prompt) if isinstance(negative_prompt, (list, tuple)) else \
                [negative_prompt or ""] * batch
            uncond = encode_text(self.text_encoder, tokenize(self.tokenizer, negatives))
            cond = torch.cat([uncond, cond.to(uncond.dtype)])
            if frames is not None:
                frames = torch.cat([uncond.repeat_interleave(num_frames, dim=0), frames.to(uncond.dtype)])
        return cond, frames
