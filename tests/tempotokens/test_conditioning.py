"""Token injection into a stock CLIP text encoder and per-frame conditioning of a stock UNet3D."""

import copy

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from tempotokens.adaptor import AdaptorOutput
from tempotokens.conditioning import PLACEHOLDERS, encode_text, encode_with_audio, tokenize
from tempotokens.frame_attention import (
    FrameCrossAttnProcessor,
    IgnoreFrameStates,
    enable_frame_attention,
    pack_frames,
    spatial_cross_attention_keys,
)


def test_per_frame_with_identical_rows_equals_stock_broadcast(tiny_pipe):
    """Per-frame conditioning whose rows are all the same gives exactly the stock UNet's output with
    the ordinary (B, L, D) broadcast, through frame_states and through the old packed layout."""
    from diffusers import UNet3DConditionModel

    stock = UNet3DConditionModel.from_config(tiny_pipe.unet.config).eval()
    stock.load_state_dict(tiny_pipe.unet.state_dict())
    ours = copy.deepcopy(stock)
    enable_frame_attention(ours, seq_len=77)
    assert isinstance(stock.attn_processors[spatial_cross_attention_keys(stock)[0]], AttnProcessor2_0)
    torch.manual_seed(0)
    B, F = 2, 5
    sample, text = torch.randn(B, 4, F, 16, 16), torch.randn(B, 77, 32)
    rows = text.repeat_interleave(F, dim=0)  # (B * F, 77, D)
    with torch.no_grad():
        expected = stock(sample, 7, encoder_hidden_states=text).sample
        assert torch.equal(ours(sample, 7, encoder_hidden_states=text, cross_attention_kwargs={"frame_states": rows})
                           .sample, expected)
        assert torch.equal(ours(sample, 7, encoder_hidden_states=pack_frames(rows, F)).sample, expected)
        assert torch.equal(ours(sample, 7, encoder_hidden_states=text).sample, expected)  # plain text: no-op


def test_frame_states_equal_the_packed_layout_with_distinct_rows(tiny_pipe):
    """O(F) frame_states and the O(F^2) packed layout condition every frame identically."""
    unet = tiny_pipe.unet
    torch.manual_seed(2)
    B, F = 2, 4
    sample, rows = torch.randn(B, 4, F, 16, 16), torch.randn(B * F, 77, 32)
    with torch.no_grad():
        packed = unet(sample, 3, encoder_hidden_states=pack_frames(rows, F)).sample
        frames = unet(sample, 3, encoder_hidden_states=rows[::F], cross_attention_kwargs={"frame_states": rows}).sample
        broadcast = unet(sample, 3, encoder_hidden_states=rows[::F]).sample
    torch.testing.assert_close(frames, packed)
    assert not torch.allclose(frames, broadcast)  # the frames really see different tokens


def test_only_spatial_cross_attention_is_replaced(tiny_pipe):
    procs = tiny_pipe.unet.attn_processors
    spatial = spatial_cross_attention_keys(tiny_pipe.unet)
    assert spatial and all(".attentions." in k and "attn2" in k for k in spatial)
    for key, proc in procs.items():
        assert isinstance(proc, FrameCrossAttnProcessor if key in spatial else IgnoreFrameStates), key
    assert not any("temp_attentions" in k or "transformer_in" in k for k in spatial)


def test_processor_gives_each_frame_its_own_sequence(tiny_pipe):
    attn = tiny_pipe.unet.get_submodule(spatial_cross_attention_keys(tiny_pipe.unet)[0].rsplit(".", 1)[0])
    B, F, L, D = 2, 3, 77, 32
    torch.manual_seed(1)
    hidden = torch.randn(B * F, 16, attn.to_q.in_features)
    rows = torch.randn(B * F, L, D)
    packed = pack_frames(rows, F).repeat_interleave(F, dim=0)  # what the UNet hands the processor
    with torch.no_grad():
        plain = AttnProcessor2_0()(attn, hidden, rows)  # row r with its own sequence, explicitly
        torch.testing.assert_close(FrameCrossAttnProcessor(L)(attn, hidden, packed), plain)
        torch.testing.assert_close(FrameCrossAttnProcessor(L)(attn, hidden, rows[::F].repeat_interleave(F, 0),
                                                              frame_states=rows), plain)
    with pytest.raises(ValueError, match="rows"):
        FrameCrossAttnProcessor(L)(attn, hidden, rows, frame_states=rows[:2])


def test_replaced_processors_are_reinstalled_around_the_new_ones(tiny_dir):
    """set_attn_processor after loading must not silently turn per-frame conditioning off."""
    from tempotokens import AudioToVideoPipeline

    pipe = AudioToVideoPipeline.from_pretrained(tiny_dir)
    pipe.set_progress_bar_config(disable=True)
    audio = torch.randn(16000).numpy() * 0.1
    kwargs = dict(audio=audio, num_frames=4, fps=4, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    before = pipe(**kwargs).frames
    pipe.unet.set_attn_processor(AttnProcessor2_0())  # e.g. another attention backend
    kwargs["generator"] = torch.Generator().manual_seed(0)
    after = pipe(**kwargs).frames
    assert torch.equal(torch.from_numpy(before), torch.from_numpy(after))
    spatial = spatial_cross_attention_keys(pipe.unet)
    assert all(isinstance(pipe.unet.attn_processors[k].inner, AttnProcessor2_0) for k in spatial)


def _embedding_of(pipe, word):
    ids = pipe.tokenizer(word, add_special_tokens=False).input_ids
    assert len(ids) == 1
    return pipe.text_encoder.get_input_embeddings().weight[ids[0]]


def test_injected_token_equals_the_word_it_carries(tiny_pipe):
    """Injecting a real word's embedding at a placeholder gives that word's encoding, for every
    frame row, laid out sample-major: row b * F + f is sample b, frame f."""
    pipe, B, F = tiny_pipe, 2, 3
    words = [["a", "b", "c"], ["d", "e", "f"]]
    D = 32
    temporal = torch.stack([torch.stack([_embedding_of(pipe, w) for w in row]) for row in words]).detach()
    zeros = torch.zeros(B, F, D)
    tokens = AdaptorOutput(temporal=temporal, local=(zeros,) * 4, class_token=torch.zeros(B, D))
    with torch.no_grad():
        ours = encode_with_audio(pipe.tokenizer, pipe.text_encoder, ["x <temp> y"] * B, tokens, pipe.placeholder_ids)
        for b in range(B):
            for f in range(F):
                plain = encode_text(pipe.text_encoder, tokenize(pipe.tokenizer, [f"x {words[b][f]} y"]))[0]
                torch.testing.assert_close(ours[b * F + f], plain, rtol=1e-5, atol=1e-5)


def test_placeholders_are_added_once(tiny_pipe):
    from tempotokens.conditioning import add_placeholder_tokens

    n = len(tiny_pipe.tokenizer)
    ids = add_placeholder_tokens(tiny_pipe.tokenizer, tiny_pipe.text_encoder)
    assert len(tiny_pipe.tokenizer) == n and ids == tiny_pipe.placeholder_ids
    assert tiny_pipe.tokenizer.convert_ids_to_tokens(ids) == list(PLACEHOLDERS)
    assert tiny_pipe.text_encoder.get_input_embeddings().num_embeddings >= n


def test_packed_length_must_be_a_multiple():
    with pytest.raises(ValueError, match="multiple"):
        FrameCrossAttnProcessor(77)(None, torch.zeros(2, 4, 8), torch.zeros(2, 100, 8))


def test_long_prompts_lose_text_never_placeholders(tiny_pipe, caplog):
    tok = tiny_pipe.tokenizer
    ids = tiny_pipe.placeholder_ids
    long_text = "a very long description of a scene " * 20  # byte-level: far over 77 tokens
    prompt = f"{long_text} {' '.join(PLACEHOLDERS)}"
    plain = tokenize(tok, [prompt])[0]
    assert not any(int(t) in ids for t in plain)  # plain truncation would lose every placeholder
    kept = tokenize(tok, [prompt], ids)[0]
    assert len(kept) == tok.model_max_length and [int(t) for t in kept if int(t) in ids] == ids
    assert int(kept[0]) == tok.bos_token_id and int(kept[-1]) == tok.eos_token_id
    assert "cut from the end of its text" in caplog.text
    short = "x <temp> y"
    assert torch.equal(tokenize(tok, [short], ids), tokenize(tok, [short]))  # what fits is unchanged
