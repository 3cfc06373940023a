"""Loading a folder laid out as the published ``cerspense/zeroscope_v2_576w``, built here from the
published formats (not our save_pretrained): a TextToVideoSDPipeline model_index, 0.17-era diffusers
configs, a DDIM scheduler, a CLIP tokenizer with the full 49,408-entry vocab.json + merges.txt, and
``.bin`` weights; plus BEATs' official ``.pt`` and the authors' ``learned_embeds.pth``."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

OLD = "0.17.0"
DOWN = ["CrossAttnDownBlock3D", "DownBlock3D"]
UP = ["UpBlock3D", "CrossAttnUpBlock3D"]


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def _clip_vocab(folder: Path) -> int:
    """vocab.json + merges.txt in CLIP's layout: 256 byte symbols, the same with ``</w>``, 48,894
    merges, then the two special tokens: 49,408 entries."""
    from tokenizers.pre_tokenizers import ByteLevel

    chars = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    merges = []
    letters = [c for c in chars if c.isalpha()]
    for a in letters:
        for b in chars:
            for tail in ("", "</w>"):
                if len(merges) == 48894:
                    break
                token = a + b + tail
                if token not in vocab:
                    vocab[token] = len(vocab)
                    merges.append(f"{a} {b}{tail}")
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "tokenizer").mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer" / "vocab.json").write_text(json.dumps(vocab))
    (folder / "tokenizer" / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    _write_json(folder / "tokenizer" / "special_tokens_map.json",
                {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                 "unk_token": "<|endoftext|>"})
    _write_json(folder / "tokenizer" / "tokenizer_config.json",
                {"add_prefix_space": False, "bos_token": "<|startoftext|>", "do_lower_case": True,
                 "eos_token": "<|endoftext|>", "errors": "replace", "model_max_length": 77, "pad_token": "<|endoftext|>",
                 "tokenizer_class": "CLIPTokenizer", "unk_token": "<|endoftext|>"})
    return len(vocab)


@pytest.fixture(scope="module")
def zeroscope_dir(tmp_path_factory):
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = tmp_path_factory.mktemp("zeroscope") / "zeroscope_v2_576w"
    n_vocab = _clip_vocab(folder)
    assert n_vocab == 49408
    _write_json(folder / "model_index.json", {
        "_class_name": "TextToVideoSDPipeline", "_diffusers_version": OLD, "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet3DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]})
    _write_json(folder / "scheduler" / "scheduler_config.json", {
        "_class_name": "DDIMScheduler", "_diffusers_version": OLD, "beta_end": 0.012, "beta_schedule": "scaled_linear",
        "beta_start": 0.00085, "clip_sample": False, "num_train_timesteps": 1000, "prediction_type": "epsilon",
        "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None})
    text_config = {"architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0,
                   "eos_token_id": 2, "hidden_act": "gelu", "hidden_size": 32, "initializer_factor": 1.0,
                   "initializer_range": 0.02, "intermediate_size": 64, "layer_norm_eps": 1e-05,
                   "max_position_embeddings": 77, "model_type": "clip_text_model", "num_attention_heads": 4,
                   "num_hidden_layers": 2, "pad_token_id": 1, "projection_dim": 32, "torch_dtype": "float16",
                   "transformers_version": "4.27.0.dev0", "vocab_size": n_vocab}
    _write_json(folder / "text_encoder" / "config.json", text_config)
    torch.manual_seed(0)
    text = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in text_config.items() if k not in ("architectures",)}))
    state = text.state_dict()
    state["text_model.embeddings.position_ids"] = torch.arange(77)[None]  # an old checkpoint's extra buffer
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()},
               folder / "text_encoder" / "pytorch_model.bin")
    unet_config = {"_class_name": "UNet3DConditionModel", "_diffusers_version": OLD, "act_fn": "silu",
                   "attention_head_dim": 8, "block_out_channels": [32, 64], "cross_attention_dim": 32,
                   "down_block_types": DOWN, "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0,
                   "in_channels": 4, "layers_per_block": 1, "norm_eps": 1e-05, "norm_num_groups": 8,
                   "out_channels": 4, "sample_size": 16, "up_block_types": UP}
    _write_json(folder / "unet" / "config.json", unet_config)
    unet = UNet3DConditionModel.from_config(unet_config)  # old keys are ignored, as on loading
    torch.save(unet.state_dict(), folder / "unet" / "diffusion_pytorch_model.bin")
    vae_config = {"_class_name": "AutoencoderKL", "_diffusers_version": OLD, "act_fn": "silu",
                  "block_out_channels": [16, 32], "down_block_types": ["DownEncoderBlock2D"] * 2, "in_channels": 3,
                  "latent_channels": 4, "layers_per_block": 1, "norm_num_groups": 8, "out_channels": 3,
                  "sample_size": 32, "up_block_types": ["UpDecoderBlock2D"] * 2}
    _write_json(folder / "vae" / "config.json", vae_config)
    vae = AutoencoderKL.from_config(vae_config)
    torch.save(vae.state_dict(), folder / "vae" / "diffusion_pytorch_model.bin")
    return folder


def test_zeroscope_layout_loads_and_generates(zeroscope_dir, tiny_dir):
    from diffusers import DPMSolverMultistepScheduler
    from transformers import CLIPTokenizer

    from tempotokens import AudioToVideoPipeline
    from tempotokens.conditioning import PLACEHOLDERS
    from tempotokens.pipeline import DEFAULT_SIZE

    assert not any(zeroscope_dir.rglob("*.safetensors"))  # really the .bin layout
    pipe = AudioToVideoPipeline.from_pretrained(zeroscope_dir, beats=tiny_dir / "beats_tiny.pt",
                                                adaptor=tiny_dir / "learned_embeds.pth")
    assert isinstance(pipe.tokenizer, CLIPTokenizer) and len(pipe.tokenizer) == 49408 + len(PLACEHOLDERS)
    assert pipe.text_encoder.get_input_embeddings().num_embeddings == len(pipe.tokenizer)
    assert isinstance(pipe.scheduler, DPMSolverMultistepScheduler)
    assert pipe.default_frame_size == DEFAULT_SIZE == (384, 384)  # the folder gives no size: the authors'
    assert pipe.tokenizer("a dog barking").input_ids[0] == pipe.tokenizer.bos_token_id
    # the weights are the .bin files' (fp16 text encoder weights up-cast on load)
    saved = torch.load(zeroscope_dir / "unet" / "diffusion_pytorch_model.bin", weights_only=True)
    key = next(k for k in saved if k.endswith("conv_in.weight"))
    assert torch.equal(pipe.unet.state_dict()[key], saved[key])
    pipe.set_progress_bar_config(disable=True)
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    out = pipe(audio=audio, prompt="a dog barking", num_frames=4, fps=4, height=32, width=32, num_inference_steps=2,
               generator=torch.Generator().manual_seed(0), output_type="uint8")
    assert out.frames.shape == (1, 4, 32, 32, 3)
    again = pipe.to(torch.bfloat16)
    assert again.beats.dtype == again.adaptor.dtype == torch.float32


def test_trainer_loads_the_zeroscope_layout(zeroscope_dir, tiny_dir, tmp_path):
    from tempotokens.data.synthetic import make_synthetic
    from tempotokens.training.config import load_config
    from tempotokens.training.loop import train

    make_synthetic(tmp_path / "data", num_clips=4, seed=0, duration_s=2.0, size=32)
    cfg = load_config("vggsound", [f"model={zeroscope_dir}", f"beats={tiny_dir / 'beats_tiny.pt'}",
                                   "data.dataset=synthetic", "data.exclude_ids=null", f"data.root={tmp_path / 'data'}",
                                   "data.num_frames=8", "data.height=32", "data.width=32", "data.num_workers=0",
                                   "adaptor.hidden_size=48", "validation.steps=0", "max_steps=1",
                                   f"output_dir={tmp_path / 'out'}"])
    adaptor = train(cfg)
    from tempotokens import AudioTokenAdaptor

    assert AudioTokenAdaptor.from_pretrained(adaptor).config.output_size == 32  # the text encoder's width
