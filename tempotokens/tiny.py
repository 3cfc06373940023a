"""A complete tiny random-weight TempoTokens model, built offline from configs.

``python -m tempotokens make-tiny DIR`` writes it; every command that takes ``--model`` accepts it.
It has the real architecture (CLIP text encoder, 2D VAE, ModelScope UNet3D, BEATs, adaptor) at
toy sizes, so that the full generate/train/benchmark paths run on a CPU in seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

#: Files written next to the diffusers layout, in the formats users own for the real models.
BEATS_CHECKPOINT = "beats_tiny.pt"  # official BEATs {"cfg", "model"}
ADAPTOR_CHECKPOINT = "learned_embeds.pth"  # the authors' adaptor state dict


def tiny_tokenizer():
    """A byte-level CLIP tokenizer with no merges (514 tokens), built without any download."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    chars = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def build_tiny_pipeline(seed: int = 0, num_frames: int = 8, beats_patch: int = 16, token_pooling: str = "reference",
                        vae_levels: int = 2, noise_correlation: float = 0.0):
    """The tiny pipeline in memory (random weights from ``seed``).

    ``beats_patch`` is BEATs' ``input_patch_size`` (16 as published: 160 ms per time patch; the toy
    model uses 8, 80 ms, about one frame at 12 fps), ``token_pooling`` the adaptor's, and
    ``vae_levels`` the VAE's resolution levels (2: latents at 1/2 of the frame size; the toy's 3: 1/4,
    8x8 latents for 32x32 frames, a 4x cheaper UNet) and ``noise_correlation`` the model's noise
    prior (:attr:`~tempotokens.pipeline.AudioToVideoPipeline.noise_correlation`).
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from .adaptor import AudioTokenAdaptor
    from .beats import BEATs
    from .pipeline import AudioToVideoPipeline

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, projection_dim=32,
    ))
    vae = AutoencoderKL(
        block_out_channels=(16, 32, 64)[:vae_levels], down_block_types=("DownEncoderBlock2D",) * vae_levels,
        up_block_types=("UpDecoderBlock2D",) * vae_levels, latent_channels=4, layers_per_block=1, norm_num_groups=8,
        sample_size=32,
    )
    unet = UNet3DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"), cross_attention_dim=32, attention_head_dim=8,
        norm_num_groups=8, sample_size=16,
    )
    # zeroscope's scheduler config (DDIM, SD-style scaled-linear betas, epsilon prediction)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    beats = BEATs(input_patch_size=beats_patch, embed_dim=32, encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                  encoder_attention_heads=4, conv_pos=16, conv_pos_groups=4, predictor_class=10).eval()
    adaptor = AudioTokenAdaptor(input_size=2 * 32, hidden_size=48, output_size=32, num_frames=num_frames,
                                token_pooling=token_pooling, freq_patches=128 // beats_patch).eval()
    pipe = AudioToVideoPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                scheduler=scheduler, beats=beats, adaptor=adaptor, default_size=(32, 32),
                                noise_correlation=noise_correlation)
    pipe.prepare_conditioning()
    return pipe


def make_tiny(out_dir: str | os.PathLike, seed: int = 0, **options) -> Path:
    """Write the tiny model: our diffusers layout (``model_index.json``, one folder per component,
    including ``beats/`` and ``adaptor/``), plus ``beats_tiny.pt`` and ``learned_embeds.pth`` in
    the official/authors' formats."""
    out = Path(out_dir)
    pipe = build_tiny_pipeline(seed, **options)
    pipe.save_pretrained(out, safe_serialization=True)
    pipe.beats.save_checkpoint(out / BEATS_CHECKPOINT)
    torch.save(pipe.adaptor.reference_state_dict(), out / ADAPTOR_CHECKPOINT)
    return out
