"""Token injection into a stock CLIP text encoder and per-frame conditioning of a stock UNet3D."""

import copy

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from tempotokens.adaptor import AdaptorOutput
from tempotokens.conditioning import (
    PLACEHOLDERS,
    PerFrameCrossAttnProcessor,
    enable_per_frame_conditioning,
    encode_text,
    encode_with_audio,
    pack_frames,
    spatial_cross_attention_keys,
    tokenize,
)


def test_per_frame_with_identical_rows_equals_stock_broadcast(tiny_pipe):
    """The equivalence of item 2: packed per-frame conditioning whose rows are all the same
    gives exactly the stock UNet's output with the ordinary (B, L, D) broadcast."""
    from diffusers import UNet3DConditionModel

    stock = UNet3DConditionModel.from_config(tiny_pipe.unet.config).eval()
    stock.load_state_dict(tiny_pipe.unet.state_dict())
    ours = copy.deepcopy(stock)
    enable_per_frame_conditioning(ours, seq_len=77)
    assert isinstance(stock.attn_processors[spatial_cross_attention_keys(stock)[0]], AttnProcessor2_0)
    torch.manual_seed(0)
    B, F = 2, 5
    sample, text = torch.randn(B, 4, F, 16, 16), torch.randn(B, 77, 32)
    with torch.no_grad():
        expected = stock(sample, 7, encoder_hidden_states=text).sample
        packed = pack_frames(text.repeat_interleave(F, dim=0), F)  # (B, F * 77, D)
        assert torch.equal(ours(sample, 7, encoder_hidden_states=packed).sample, expected)
        assert torch.equal(ours(sample, 7, encoder_hidden_states=text).sample, expected)  # plain text: no-op


def test_only_spatial_cross_attention_is_replaced(tiny_pipe):
    procs = tiny_pipe.unet.attn_processors
    spatial = spatial_cross_attention_keys(tiny_pipe.unet)
    assert spatial and all(".attentions." in k and "attn2" in k for k in spatial)
    for key, proc in procs.items():
        assert isinstance(proc, PerFrameCrossAttnProcessor) == (key in spatial), key
    assert not any("temp_attentions" in k or "transformer_in" in k for k in spatial)


def test_processor_gives_each_frame_its_own_sequence(tiny_pipe):
    attn = tiny_pipe.unet.get_submodule(spatial_cross_attention_keys(tiny_pipe.unet)[0].rsplit(".", 1)[0])
    B, F, L, D = 2, 3, 77, 32
    torch.manual_seed(1)
    hidden = torch.randn(B * F, 16, attn.to_q.in_features)
    rows = torch.randn(B * F, L, D)
    packed = pack_frames(rows, F).repeat_interleave(F, dim=0)  # what the UNet hands the processor
    with torch.no_grad():
        ours = PerFrameCrossAttnProcessor(L)(attn, hidden, packed)
        plain = AttnProcessor2_0()(attn, hidden, rows)  # row r with its own sequence, explicitly
    torch.testing.assert_close(ours, plain)


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
        PerFrameCrossAttnProcessor(77)(None, torch.zeros(2, 4, 8), torch.zeros(2, 100, 8))
